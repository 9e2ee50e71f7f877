"""Sentence sentiment with the VADER lexicon, rolled up per speaker and for the client side.

Known limits of a lexicon: negation further than three words back ("nobody on my team is happy") and idioms
("above and beyond") are missed; the model-backed analysts read those right.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from statistics import fmean
from typing import TYPE_CHECKING

from sophia_mcp.analysis.results import SentimentSummary, SpeakerSentiment
from sophia_mcp.analysis.speakers import name_of, side_of, speaker_index
from sophia_mcp.ports.calls import Party, Transcript

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
}

POSITIVE_AT = 0.05
NEGATIVE_AT = -0.05


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


def label(score: float) -> str:
    if score >= POSITIVE_AT:
        return "positive"
    if score <= NEGATIVE_AT:
        return "negative"
    return "neutral"


def summarize_sentiment(transcript: Transcript, parties: Sequence[Party]) -> SentimentSummary:
    """Mean sentiment over all sentences, per speaker, and for the client (External) side."""
    index = speaker_index(parties)
    by_speaker: dict[str, list[float]] = {}
    for monologue in transcript.monologues:
        scores = by_speaker.setdefault(monologue.speaker_id, [])
        scores.extend(sentence_sentiment(s.text) for s in monologue.sentences)
    everything = [score for scores in by_speaker.values() for score in scores]
    external = [
        score for speaker, scores in by_speaker.items() if side_of(speaker, index) == "External" for score in scores
    ]
    overall = fmean(everything) if everything else 0.0
    external_mean = fmean(external) if external else None
    return SentimentSummary(
        overall=round(overall, 4),
        external=None if external_mean is None else round(external_mean, 4),
        label=label(overall if external_mean is None else external_mean),
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
