"""Risk factors a client raises on a call: pricing, churn intent, budget, implementation trouble, competitors.

Only the client side counts (External and unknown speakers): our own team talking about price is not a risk.
Each kind is a set of phrasings; a phrase just after a negation ("no plans to cancel") does not count. The phrasings
name what a risk is made of rather than whole sentences (a cost word with a pressure word: "the price comes down",
"under what we pay"; a named competitor with a move: "moving to RealPage"), so they reach wordings they were not
written from; tests/data/eval_calls measures that on calls kept aside. Given a `SentenceMeaning` (the local
embedding model, analysis/risk_meaning.py), a sentence also raises the kinds whose written examples it is close to
in meaning, for the wordings no rule was written for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from sophia_mcp.analysis.competitors import find_in_text
from sophia_mcp.analysis.risk_meaning import raised_by_meaning
from sophia_mcp.analysis.sentiment import SentenceTone, Tones, transcript_tones
from sophia_mcp.analysis.speakers import name_of, side_of, speaker_index
from sophia_mcp.domain.calls import Party, Transcript
from sophia_mcp.domain.results import RiskFactor, RiskKind
from sophia_mcp.domain.weights import Competitor


def _rx(*alternatives: str) -> str:
    """The phrasings as one pattern of whole words; it is compiled where it is first matched (`_compiled`), so a
    server that analyses no call does not spend its start compiling them."""
    return r"\b(?:" + "|".join(alternatives) + r")\b"


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


COST = (
    r"(?:price|prices|pricing|rate|rates|fee|fees|cost|costs|quote|uplift"
    r"|per[- ](?:bed|unit|door) (?:rate|cost|price))"
)
WE_PAY = r"what (?:we|i) (?:pay|paid|are paying|am paying)"

PATTERNS: dict[RiskKind, str] = {
    "pricing": _rx(
        r"(?:too|so|really|very) (?:expensive|pricey|costly)",
        r"overpric(?:ed|ing)",
        r"overpay(?:ing)?",
        r"price (?:increase|hike|jump|change)s?",
        rf"{COST} (?:is|are|was|were|went|have gone|has gone|seem|seems|looks?|comes? in)(?: still)?"
        r" (?:up|higher|high|steep|too high|hard to justify|out of line|above|more than (?:we|i|what|before|last))",
        r"hard to justify (?:the )?(?:price|cost|spend|increase)",
        r"(?:can ?not|can't|could not|couldn't|no longer) (?:\w+ ){0,2}justify",
        r"(?:paying|pay) (?:too much|more than|the difference)",
        r"(?:need|want|asking for|expect) (?:a |some )?(?:discount|better (?:price|rate|deal)|lower (?:price|rate))",
        rf"{COST} (?:\w+ ){{0,2}}(?:comes?|coming|to come) down",
        rf"(?:under|below|less than|lower than|half(?: of)?) {WE_PAY}",
        r"(?:lower|cheaper|better|smaller) (?:per[- ]\w+ )?(?:rate|price|quote|offer|deal|number)",
        r"(?:cheaper|less expensive|lower[- ]priced) (?:proposals?|offers?|options?|quotes?|alternatives?|vendors?)",
        rf"{COST} (?:that is |which is )?(?:noticeably |much |a lot |significantly )?(?:lower|cheaper|less)",
        rf"{COST} (?:\w+ ){{0,2}}(?:caught|surprised|took) (?:me|us)",
        rf"(?:hoping|hoped|expected|expecting) (?:the )?{COST} (?:would |to )?(?:stay|remain) (?:flat|the same)",
        r"meet (?:me|us) (?:halfway|in the middle)",
        r"match(?:ing)? (?:their|the other|that) (?:rate|price|offer|quote|number)",
        r"(?:the )?(?:gap|difference) (?:\w+ ){0,5}(?:a (?:bed|unit|door|month|year)|thousand|percent|dollars)",
        r"(?:real|serious) money",
        r"(?:still )?above what (?:the board|we|finance|they) (?:set aside|budgeted|planned)",
    ),
    "churn_intent": _rx(
        r"cancel(?:l?ing|l?ed)?",
        r"cancellation",
        r"(?:not|won'?t|will not) (?:be )?renew(?:ing)?",
        r"not (?:sure|certain) (?:that )?we(?:'ll| will)? (?:renew|stay)",
        r"non-?renew(?:al)?",
        r"terminat(?:e|ing|ion)(?: (?:of )?(?:the|our) (?:contract|agreement))?",
        r"switch(?:ing)? (?:away|providers|vendors|platforms|to (?:another|a different|a new))",
        r"(?:move|moving) (?:away|off (?:of )?(?:you|the platform|pay ready))",
        r"(?:asked|told|want|wants) (?:us|me) to (?:move|switch|migrate|leave)",
        r"end (?:our|the) (?:contract|subscription|agreement)",
        r"(?:leave|leaving) (?:you|pay ready)",
        r"churn(?:ing)?",
        r"replac(?:e|ing) (?:you|pay ready|the platform|your (?:platform|software|system))",
        r"(?:search|looking|look) for (?:a )?(?:replacement|new (?:system|vendor|provider|platform))",
        r"(?:looking|look) for the exit",
        r"reconsider(?:ing)? (?:the whole|whether|our|the) ",
        r"(?:review|re-?evaluate|reconsider) (?:all |every |our )?(?:vendors?|options|systems?|providers?)"
        r" before renew(?:ing|al|s)?",
        r"(?:could|can) live without",
    ),
    "budget": _rx(
        r"budget (?:cuts?|freeze|is tight|constraints?|pressure|was cut|got cut|has been cut|is frozen)",
        r"(?:cut|cuts|slashed|reduced|trimmed|lowered) (?:our |the |their )?(?:\w+ ){0,2}budgets?",
        r"(?:cut|cutting|slash(?:ing)?|reduc(?:e|ing)|trim(?:ming)?|lower(?:ing)?)"
        r" (?:our |the )?(?:software |technology |vendor |operating )?(?:budget|costs|spend(?:ing)?)",
        r"(?:did not|didn't|won't|will not|refused to) approve (?:the )?(?:\w+ ){0,2}budget",
        r"cost[- ]cutting",
        r"no (?:budget|money) (?:for|left|to)",
        r"money (?:for (?:it|this) )?(?:is not|isn't) in (?:next year's|the|our) (?:plan|budget)",
        r"(?:tight|tighter|smaller|reduced|limited|frozen) budgets?",
        r"(?:hiring|spending) freeze",
        r"belt[- ]tightening",
        r"(?:find|finding|look for|looking for) (?:\w+ )?savings",
        r"(?:line items?|every line item) trimmed",
        r"(?:keep|kept) the same spend",
        r"to save money",
    ),
    "implementation": _rx(
        r"outages?",
        r"downtime",
        r"bugs?",
        r"buggy",
        r"glitch(?:es|y)?",
        r"malfunction(?:ed|ing|s)?",
        r"(?:not|isn'?t|aren'?t|wasn'?t|weren'?t|stopped|still not) (?:working|syncing|loading|posting|importing)",
        r"(?:did not|didn't|does not|doesn't|do not|don't|will not|won't|would not|wouldn't)"
        r" (?:reach|arrive|accept|load|post|sync|save|match|balance)",
        r"broken",
        r"(?:is|are|keeps?|kept) (?:failing|crashing|timing out|rejecting|mismatching|logging)",
        r"(?:failed|failing) (?:payments?|imports?|syncs?|transactions?)",
        r"(?:payments?|imports?|syncs?|integrations?|exports?) (?:failed|failing|fail)",
        r"errors?",
        r"crash(?:es|ed|ing)?",
        r"mismatch(?:es|ed|ing)?",
        r"(?:charged|billed|received|got) (?:\w+ ){0,4}twice",
        r"double[- ](?:charged|charges?|billed)",
        r"(?:dropped|lost|lose|losing|missing) (?:about |a |some |half |whatever |all )?(?:\w+ ){0,4}"
        r"(?:balances|data|records|photos|leases|entries|payments)",
        r"(?:rejects?|rejecting|rejected) (?:valid|half|the|our)",
        r"(?:get|gets|got|are|were) stuck",
        r"(?:logs?|logged|logging) (?:\w+ ){0,2}out every",
        r"(?:wrong|incorrect) (?:\w+ )?(?:account|fee|amount|balances?|totals?)",
        r"(?:is|was|went|been) down for",
        r"(?:arriving|arrived|came|comes?) (?:in )?empty",
        r"(?:onboarding|implementation|rollout|go-live|migration|import)"
        r" (?:is |was |has been )?(?:behind|late|delayed|slipping)",
        r"(?:migration|onboarding|implementation|integration|rollout|data import)"
        r" (?:issues?|problems?|delays?|errors?)",
        r"(?:rough|slow|painful|stalled|delayed|messy) (?:rollout|implementation|onboarding|migration|go-live)",
        r"(?:re-?enter(?:ing)?|revers(?:e|ing)|fix(?:ing)?|correct(?:ing)?) (?:\w+ ){0,4}by hand",
        r"spins? and",
        r"blank page",
        r"workarounds?",
        r"still waiting on support",
    ),
    "competitor_evaluation": _rx(
        r"evaluat(?:e|ing|ion of) (?:other|alternatives?|options|vendors|providers|platforms)",
        r"look(?:ing)? (?:at|into) (?:other|alternatives?|options|another|a few)",
        r"other (?:vendors|options|providers|platforms|solutions|proposals|offers|quotes|bids)",
        r"alternatives?",
        r"rfp",
        r"request for proposals?",
        r"shopping around",
        r"compar(?:e|ing) (?:a few |several |some |other )?(?:you|options|vendors|providers|platforms|pricing|systems)",
        r"(?:had|have|got|took|booked|scheduled|set up) a demo",
        r"(?:quoted us|proposal from|pilot with|trial with|talking to|talked to|meeting with|reached out)",
        r"(?:their|the other) (?:final )?(?:proposal|offer|quote|bid)",
    ),
}

# Moving to a named competitor is churn, not only an evaluation: "we will be moving to RealPage in March".
MOVE_TO = _rx(r"(?:move|moving|migrat(?:e|ing)|switch(?:ing)?|go(?:ing)? over) (?:\w+ ){0,5}(?:to|onto)")

# Words that, shortly before a risk phrase, turn it around: "no plans to switch", "we haven't had outages".
NEGATION = re.compile(r"\b(?:not|no|never|without|zero|none|hardly)\b|n't\b", re.IGNORECASE)
CLAUSE_BREAK = re.compile(r"[,;:.!?]|\b(?:but|although|though|however|and)\b", re.IGNORECASE)
NEGATION_WINDOW_WORDS = 4

# With a competitor named, these words make it an evaluation rather than a passing mention.
EVALUATION_WORDS = _rx(
    r"demo", r"quot(?:e|ed|es)", r"proposal", r"pitch(?:ed)?", r"offer(?:ed|ing)?", r"cheaper", r"less",
    r"trial", r"pilot", r"talking", r"talked", r"meeting", r"reached out", r"looking", r"switch(?:ing)?",
    r"evaluat(?:e|ing)", r"consider(?:ing)?", r"pricing", r"compare", r"invited", r"presents", r"brochure",
    r"standardi[sz]ed on", r"sat through",
)  # fmt: skip


def _negated(text: str, start: int) -> bool:
    before = text[:start]
    clause = CLAUSE_BREAK.split(before)[-1] if before else ""
    window = " ".join(clause.split()[-NEGATION_WINDOW_WORDS:])
    return bool(NEGATION.search(window))


def risk_kinds(text: str, competitors: Sequence[Competitor] = ()) -> list[RiskKind]:
    """The kinds of risk a client's sentence expresses, in a fixed order."""
    kinds: list[RiskKind] = []
    for kind, pattern in PATTERNS.items():
        for match in _compiled(pattern).finditer(text):
            # "not working" carries its own negation; only negations before the phrase turn it around.
            if not _negated(text, match.start()):
                kinds.append(kind)
                break
    if competitors and find_in_text(text, competitors):
        move = _compiled(MOVE_TO).search(text)
        moving = move is not None and not _negated(text, move.start())
        if "churn_intent" not in kinds and moving:
            kinds.insert(1 if "pricing" in kinds else 0, "churn_intent")
        # Moving to a competitor is a decision taken, not an evaluation: "move two properties to Entrata as a trial".
        evaluation = None if moving else _compiled(EVALUATION_WORDS).search(text)
        if "competitor_evaluation" not in kinds and evaluation and not _negated(text, evaluation.start()):
            kinds.append("competitor_evaluation")
    return kinds


# Per sentence, its similarity to each risk kind's examples (analysis/risk_meaning.py's RiskMeaning).
SentenceMeaning = Callable[[Sequence[str]], list[dict[RiskKind, float]]]


@dataclass(frozen=True)
class ClientSentence:
    """A sentence the client side said, read once per call: who said it and when, its tone and the phrase rules'
    kinds, which the rules' factors, the risk meaning and the learned reading all start from."""

    speaker_id: str
    text: str
    start_ms: int
    tone: SentenceTone
    kinds: list[RiskKind]


def client_sentences(
    transcript: Transcript, parties: Sequence[Party], competitors: Sequence[Competitor], tones: Tones
) -> list[ClientSentence]:
    """The client side's sentences (External and unknown speakers) with their tones (`transcript_tones`) and the
    phrase rules' kinds, in the transcript's order."""
    index = speaker_index(parties)
    return [
        ClientSentence(
            monologue.speaker_id, sentence.text, sentence.start_ms, tone, risk_kinds(sentence.text, competitors)
        )
        for monologue, monologue_tones in zip(transcript.monologues, tones, strict=True)
        if side_of(monologue.speaker_id, index) != "Internal"
        for sentence, tone in zip(monologue.sentences, monologue_tones, strict=True)
    ]


def risk_factors(
    client: Sequence[ClientSentence], parties: Sequence[Party], meaning: SentenceMeaning | None = None
) -> list[RiskFactor]:
    """The client's sentences' risk factors, at most one per sentence and kind: the phrase rules' kinds, and with
    `meaning` the kinds the sentence is close to in meaning."""
    index = speaker_index(parties)
    similarities = meaning([s.text for s in client]) if meaning else [{} for _ in client]
    factors = []
    for sentence, similarity in zip(client, similarities, strict=True):
        kinds = list(sentence.kinds)
        if similarity:
            more = raised_by_meaning(similarity, sentence.tone.business)
            kinds += [kind for kind in PATTERNS if kind in more and kind not in kinds]
        for kind in kinds:
            factors.append(
                RiskFactor(
                    kind=kind,
                    text=sentence.text,
                    speaker_id=sentence.speaker_id,
                    speaker_name=name_of(sentence.speaker_id, index),
                    affiliation=side_of(sentence.speaker_id, index),
                    at_ms=sentence.start_ms,
                )
            )
    return factors


def find_risk_factors(
    transcript: Transcript,
    parties: Sequence[Party],
    competitors: Sequence[Competitor] = (),
    meaning: SentenceMeaning | None = None,
) -> list[RiskFactor]:
    """Client-side sentences that express a risk to the account (`risk_factors` of the transcript's
    `client_sentences`)."""
    client = client_sentences(transcript, parties, competitors, transcript_tones(transcript))
    return risk_factors(client, parties, meaning)
