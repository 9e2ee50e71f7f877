"""Risk factors a client raises on a call: pricing, churn intent, budget, implementation trouble, competitors.

Only the client side counts (External and unknown speakers): our own team talking about price is not a risk.
Each kind is a set of phrasings; a phrase just after a negation ("no plans to cancel") does not count.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sophia_mcp.analysis.competitors import find_in_text
from sophia_mcp.analysis.results import RiskFactor, RiskKind
from sophia_mcp.analysis.speakers import name_of, side_of, speaker_index
from sophia_mcp.ports.calls import Party, Transcript
from sophia_mcp.settings import Competitor


def _rx(*alternatives: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.IGNORECASE)


PATTERNS: dict[RiskKind, re.Pattern[str]] = {
    "pricing": _rx(
        r"(?:too|so|really|very) (?:expensive|pricey|costly)",
        r"overpriced",
        r"price (?:increase|hike|jump|change)s?",
        r"(?:pric(?:e|es|ing)|costs?|fees?|rates?|renewal quote)"
        r" (?:is|are|was|were|went|have gone|has gone|seem|seems)"
        r" (?:up|higher|high|steep|too high|hard to justify|out of line)",
        r"hard to justify (?:the )?(?:price|cost|spend|increase)",
        r"(?:paying|pay) (?:too much|more than)",
        r"(?:need|want|asking for|expect) (?:a |some )?(?:discount|better (?:price|rate|deal)|lower (?:price|rate))",
    ),
    "churn_intent": _rx(
        r"cancel(?:l?ing|l?ed)?",
        r"cancellation",
        r"(?:not|won'?t|will not) (?:be )?renew(?:ing)?",
        r"non-?renew(?:al)?",
        r"terminat(?:e|ing|ion)(?: (?:of )?(?:the|our) (?:contract|agreement))?",
        r"switch(?:ing)? (?:away|providers|vendors|platforms|to (?:another|a different|a new))",
        r"(?:move|moving) (?:away|off (?:of )?(?:you|the platform|pay ready))",
        r"end (?:our|the) (?:contract|subscription|agreement)",
        r"(?:leave|leaving) (?:you|pay ready)",
        r"churn(?:ing)?",
        r"replac(?:e|ing) (?:you|pay ready|the platform|your (?:platform|software|system))",
    ),
    "budget": _rx(
        r"budget (?:cuts?|freeze|is tight|constraints?|pressure|was cut|got cut|has been cut|is frozen)",
        r"(?:cut|cutting|slash(?:ing)?|reduc(?:e|ing)|trim(?:ming)?)"
        r" (?:our |the )?(?:budget|costs|spend(?:ing)?|software spend)",
        r"cost[- ]cutting",
        r"no budget",
        r"(?:tight|tighter|smaller|reduced|limited|frozen) budgets?",
        r"(?:hiring|spending) freeze",
        r"belt[- ]tightening",
    ),
    "implementation": _rx(
        r"outages?",
        r"downtime",
        r"bugs?",
        r"buggy",
        r"glitch(?:es|y)?",
        r"(?:not|isn'?t|aren'?t|wasn'?t|weren'?t|stopped|still not) (?:working|syncing|loading|posting|importing)",
        r"broken",
        r"(?:is|are|keeps?|kept) (?:failing|crashing|timing out)",
        r"(?:failed|failing) (?:payments?|imports?|syncs?|transactions?)",
        r"(?:payments?|imports?|syncs?|integrations?) (?:failed|failing|fail)",
        r"errors?",
        r"crash(?:es|ed|ing)?",
        r"(?:migration|onboarding|implementation|integration|rollout|data import)"
        r" (?:issues?|problems?|delays?|errors?)",
        r"(?:rough|slow|painful|stalled|delayed|messy) (?:rollout|implementation|onboarding|migration|go-live)",
        r"workarounds?",
        r"still waiting on support",
    ),
    "competitor_evaluation": _rx(
        r"evaluat(?:e|ing|ion of) (?:other|alternatives?|options|vendors|providers|platforms)",
        r"look(?:ing)? (?:at|into) (?:other|alternatives?|options|another|a few)",
        r"other (?:vendors|options|providers|platforms|solutions)",
        r"alternatives?",
        r"rfp",
        r"request for proposals?",
        r"shopping around",
        r"compar(?:e|ing) (?:you|options|vendors|providers|platforms|pricing)",
        r"(?:had|have|got|took|booked|scheduled|set up) a demo",
        r"(?:quoted us|proposal from|pilot with|trial with|talking to|talked to|meeting with|reached out)",
    ),
}

# Words that, shortly before a risk phrase, turn it around: "no plans to switch", "we haven't had outages".
NEGATION = re.compile(r"\b(?:not|no|never|without|zero|none|hardly)\b|n't\b", re.IGNORECASE)
CLAUSE_BREAK = re.compile(r"[,;:.!?]|\b(?:but|although|though|however|and)\b", re.IGNORECASE)
NEGATION_WINDOW_WORDS = 4

# With a competitor named, these words make it an evaluation rather than a passing mention.
EVALUATION_WORDS = _rx(
    r"demo", r"quot(?:e|ed|es)", r"proposal", r"pitch(?:ed)?", r"offer(?:ed|ing)?", r"cheaper", r"less",
    r"trial", r"pilot", r"talking", r"talked", r"meeting", r"reached out", r"looking", r"switch(?:ing)?",
    r"evaluat(?:e|ing)", r"consider(?:ing)?", r"pricing",
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
        for match in pattern.finditer(text):
            # "not working" carries its own negation; only negations before the phrase turn it around.
            if not _negated(text, match.start()):
                kinds.append(kind)
                break
    if "competitor_evaluation" not in kinds and competitors and find_in_text(text, competitors):
        evaluation = EVALUATION_WORDS.search(text)
        if evaluation and not _negated(text, evaluation.start()):
            kinds.append("competitor_evaluation")
    return kinds


def find_risk_factors(
    transcript: Transcript, parties: Sequence[Party], competitors: Sequence[Competitor] = ()
) -> list[RiskFactor]:
    """Client-side sentences that express a risk to the account, at most one factor per sentence and kind."""
    index = speaker_index(parties)
    factors = []
    for monologue in transcript.monologues:
        side = side_of(monologue.speaker_id, index)
        if side == "Internal":
            continue
        for sentence in monologue.sentences:
            for kind in risk_kinds(sentence.text, competitors):
                factors.append(
                    RiskFactor(
                        kind=kind,
                        text=sentence.text,
                        speaker_id=monologue.speaker_id,
                        speaker_name=name_of(monologue.speaker_id, index),
                        affiliation=side,
                        at_ms=sentence.start_ms,
                    )
                )
    return factors
