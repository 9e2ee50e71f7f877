"""Sentence sentiment with the VADER lexicon, rolled up per speaker, for the client side, and for the call.

VADER is tuned on social media, where "thanks, great, perfect" carry feeling; on a business call they are
manners. The call's score is calibrated for that: courtesy words (and apologies) are taken out before a sentence
is scored, a sentence whose negative words are all denied or hypothetical ("nobody complained", "the team would
have been upset if...") reads neutral, a sentence in which the client raises a risk reads at least as negative as
`RISK_TONE` (`CHURN_TONE` when it says it may leave), a negative sentence weighs
`NEGATIVE_WEIGHT` times a positive one (a complaint is not cancelled by a thank-you: a call with both is `mixed`
and leans to the complaint), and the client side makes `CLIENT_WEIGHT` of the score. The neutral band
(`NEGATIVE_AT` < score < `POSITIVE_AT`), `CLIENT_WEIGHT` and `NEGATIVE_WEIGHT` were chosen on the labelled calls in
tests/data/eval_calls (the "tune" part only; bench/eval_tuning.py makes the choice again and prints it).

Known limits of a lexicon: negation further than three words back ("nobody on my team is happy") and idioms
("above and beyond") are missed; the model-backed analysts read those right.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import cache
from statistics import fmean
from typing import TYPE_CHECKING

from sophia_mcp.analysis.speakers import name_of, side_of, speaker_index
from sophia_mcp.domain.calls import Party, Transcript
from sophia_mcp.domain.results import SentimentSummary, SpeakerSentiment

if TYPE_CHECKING:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

# VADER is tuned on social media; these words carry a different weight on a software customer's call.
# "increase" is neutral here because "price increase" is bad news and "revenue increase" good news;
# "honestly" and "frankly" usually announce bad news on a call rather than carry good feeling.
DOMAIN_LEXICON = {
    "rough": -1.5,
    "expensive": -1.5,
    "overpriced": -2.2,
    "outage": -2.0,
    "outages": -2.0,
    "downtime": -1.8,
    "buggy": -2.0,
    "glitch": -1.5,
    "glitches": -1.5,
    "slow": -1.0,
    "sluggish": -1.5,
    "workaround": -0.8,
    "workarounds": -0.8,
    "escalate": -1.0,
    "escalated": -1.0,
    "churn": -1.5,
    "canceling": -0.8,
    "seamless": 1.8,
    "seamlessly": 1.8,
    "intuitive": 1.5,
    "reliable": 1.5,
    "smooth": 1.2,
    "smoothly": 1.2,
    "increase": 0.0,
    "increases": 0.0,
    "honestly": 0.0,
    "frankly": 0.0,
    # Routine on a call: "can you help with the settings", "the office is closed for the holiday", "residents pay".
    "help": 0.3,
    "helps": 0.3,
    "holiday": 0.0,
    "holidays": 0.0,
    "pay": 0.0,
    "stopped": 0.0,
}

POSITIVE_AT = 0.06
NEGATIVE_AT = -0.04
CLIENT_WEIGHT = 0.8
NEGATIVE_WEIGHT = 1.5
RISK_TONE = -0.4
CHURN_TONE = -0.8  # a client saying it will leave is the worst news a call carries, however politely it is put
MIXED_AT = (0.4, -0.3)  # a client sentence at least this positive and one at most this negative: a mixed call

# Manners, not feeling: taken out of a sentence before it is scored.
COURTESY = re.compile(
    r"^(?:great|perfect|sure|okay|ok|wonderful|awesome|excellent|good|cool|lovely|fantastic|yes|yeah|right)\b[,.!]*\s*"
    r"|\b(?:thank you(?: (?:so|very) much)?|thanks(?: (?:a lot|so much))?|please|sounds (?:good|great)|that works"
    r"|no problem|happy to help|(?:i |we )?(?:really )?appreciate (?:it|that|you|the)|much appreciated"
    r"|good to (?:see|hear from) you|nice to (?:meet|see) you|happy to(?=[.!]*$)"
    r"|(?:i am |i'm |we are |we're )?(?:so |very )?sorry"
    r"|(?:that|it) would be (?:great|helpful|easier|ideal|nice)"
    r"|have a (?:good|great|nice) (?:day|weekend|holiday))\b[,.!]*",
    re.IGNORECASE,
)


# A negative word after one of these in its clause is denied or hypothetical: "nobody complained", "it does not mean
# anyone is unhappy", "the team would have been upset if we had to switch", "we will not have a problem".
DENIAL = re.compile(r"\b(?:not|no|nobody|no one|never|none|nothing|without|would have|n't)\b|n't\b", re.IGNORECASE)
CLAUSE = re.compile(r"[,;:]|\b(?:but|although|though|however|because|until|unless)\b", re.IGNORECASE)
WORD = re.compile(r"[a-z']+")


@cache
def _analyzer() -> SentimentIntensityAnalyzer:
    # Imported here: loading the lexicon costs tens of milliseconds that a starting server should not pay.
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    analyzer.lexicon.update(DOMAIN_LEXICON)
    return analyzer


def sentence_sentiment(text: str) -> float:
    """VADER's compound score of one sentence, from -1 (most negative) to 1 (most positive)."""
    return float(_analyzer().polarity_scores(text)["compound"])


def business_sentiment(text: str, raw: float | None = None) -> float:
    """A sentence's score with its courtesy words taken out: "Thanks, that is all." reads neutral. `raw`, the
    sentence's own score if known, is reused when there is no courtesy to take out."""
    plain = COURTESY.sub(" ", text).strip(" ,.!")
    if raw is not None and plain == text.strip(" ,.!"):
        score = raw
    else:
        score = sentence_sentiment(plain) if plain else 0.0
    return 0.0 if score < 0 and _only_denied_negatives(plain) else score


@dataclass(frozen=True)
class SentenceTone:
    """A sentence's scores, taken once per call and passed to the summary, the rules' meaning and the learned
    reading: VADER's compound score of the sentence as said, and its business score (`business_sentiment`)."""

    raw: float
    business: float


Tones = list[list[SentenceTone]]  # per monologue, per sentence, in the transcript's order


def sentence_tone(text: str) -> SentenceTone:
    """A sentence's raw and business scores, VADER scoring it once (twice when there is courtesy to take out)."""
    raw = sentence_sentiment(text)
    return SentenceTone(raw=raw, business=business_sentiment(text, raw))


def transcript_tones(transcript: Transcript) -> Tones:
    """Every sentence's tone, per monologue in the transcript's order."""
    return [[sentence_tone(s.text) for s in monologue.sentences] for monologue in transcript.monologues]


def _only_denied_negatives(text: str) -> bool:
    """Whether the sentence's negative words are all denied or hypothetical ("nobody complained"): such a sentence
    reports that nothing is wrong, which a lexicon that flips the word's sign reads as bad news (or, further than
    three words from the negation, does not flip at all)."""
    lexicon = _analyzer().lexicon
    negatives = 0
    for clause in CLAUSE.split(text.lower()):
        for match in WORD.finditer(clause):
            if lexicon.get(match.group(), 0.0) < 0:
                negatives += 1
                if not DENIAL.search(clause[: match.start()]):
                    return False
    return negatives > 0


def _weighted_mean(scores: Sequence[float], negative_weight: float) -> float:
    weights = [negative_weight if s < 0 else 1.0 for s in scores]
    return sum(w * s for w, s in zip(weights, scores, strict=True)) / sum(weights)


def label(score: float, positive_at: float = POSITIVE_AT, negative_at: float = NEGATIVE_AT) -> str:
    """The call's label from its calibrated score and the neutral band (bench/eval_tuning.py chooses it)."""
    if score >= positive_at:
        return "positive"
    if score <= negative_at:
        return "negative"
    return "neutral"


def call_score(
    client: Sequence[float],
    internal: Sequence[float],
    client_weight: float = CLIENT_WEIGHT,
    negative_weight: float = NEGATIVE_WEIGHT,
) -> float:
    """The call's calibrated score from its sentences' business scores: the client side weighted over ours."""
    if client and internal:
        ours = (1 - client_weight) * _weighted_mean(internal, negative_weight)
        return client_weight * _weighted_mean(client, negative_weight) + ours
    return _weighted_mean(client or internal, negative_weight) if client or internal else 0.0


def is_mixed(client: Sequence[float]) -> bool:
    """Good news and a complaint from the client on one call."""
    high, low = MIXED_AT
    return any(s >= high for s in client) and any(s <= low for s in client)


def summarize_sentiment(
    transcript: Transcript,
    parties: Sequence[Party],
    risky: Collection[tuple[str, int]] = (),
    leaving: Collection[tuple[str, int]] = (),
    tones: Tones | None = None,
) -> SentimentSummary:
    """Sentiment per speaker, for the client (External) side and for the call.

    `risky` holds (speaker id, sentence start ms) of the sentences in which the client raised a risk, `leaving`
    those in which it said it may leave (churn intent); `tones`, the transcript's tones if the caller has them.
    """
    tones = transcript_tones(transcript) if tones is None else tones
    index = speaker_index(parties)
    by_speaker: dict[str, list[float]] = {}
    client: list[float] = []
    internal: list[float] = []
    for monologue, monologue_tones in zip(transcript.monologues, tones, strict=True):
        scores = by_speaker.setdefault(monologue.speaker_id, [])
        side = side_of(monologue.speaker_id, index)
        for sentence, tone in zip(monologue.sentences, monologue_tones, strict=True):
            scores.append(tone.raw)
            business = tone.business
            if (monologue.speaker_id, sentence.start_ms) in leaving:
                business = min(business, CHURN_TONE)
            elif (monologue.speaker_id, sentence.start_ms) in risky:
                business = min(business, RISK_TONE)
            (internal if side == "Internal" else client).append(business)
    everything = [score for scores in by_speaker.values() for score in scores]
    external = [
        score for speaker, scores in by_speaker.items() if side_of(speaker, index) == "External" for score in scores
    ]
    overall = fmean(everything) if everything else 0.0
    external_mean = fmean(external) if external else None
    score = call_score(client, internal)
    return SentimentSummary(
        overall=round(overall, 4),
        external=None if external_mean is None else round(external_mean, 4),
        score=round(max(-1.0, min(1.0, score)), 4),
        mixed=is_mixed(client),
        label=label(score),
        speakers=[
            SpeakerSentiment(
                speaker_id=speaker,
                name=name_of(speaker, index),
                affiliation=side_of(speaker, index),
                sentences=len(scores),
                compound=round(fmean(scores), 4),
            )
            for speaker, scores in by_speaker.items()
            if scores
        ],
    )
