"""The client health score, 0-100, from four documented components of each analysed call.

Per call, each component is scored 0-100:

- sentiment:   50 + 50 * s, where s is the client side's mean VADER compound score (all speakers' if the client
               never spoke), clamped to 0..100.
- risk:        100 minus a penalty per distinct kind of risk the client raised: churn intent 45, competitor
               evaluation 30, budget 25, implementation trouble 25, pricing 20; at least 0.
- engagement:  from the client's share e of talk time (1 - internal ratio): 100 while 0.35 <= e <= 0.65;
               100 * e / 0.35 below; falling linearly to 60 at e = 1 above; 50 when nobody spoke.
- competition: 100 minus 35 per distinct competitor the client named and 10 per one only others named; at least 0.

A client's component score is the mean of its calls' component scores over the window (default 90 days before
`as_of`), each call weighted by 0.5 ** (age in days / half-life); the health score is the sum of the component
scores times their weights, normalised to add up to 1 (defaults 0.35, 0.30, 0.20, 0.15).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sophia_mcp.domain.plural import plural
from sophia_mcp.domain.results import CallAnalysis, HealthComponent, HealthScore, RiskKind
from sophia_mcp.domain.weights import HealthWeights

RISK_PENALTIES: dict[RiskKind, float] = {
    "churn_intent": 45,
    "competitor_evaluation": 30,
    "budget": 25,
    "implementation": 25,
    "pricing": 20,
}
EXTERNAL_COMPETITOR_PENALTY = 35
OTHER_COMPETITOR_PENALTY = 10
BALANCED_SHARE = (0.35, 0.65)
MONOLOGUE_FLOOR = 60.0

COMPONENTS = ("sentiment", "risk", "engagement", "competition")
RISK_WORDS: dict[str, str] = {
    "churn_intent": "churn intent",
    "competitor_evaluation": "competitor evaluation",
    "budget": "budget",
    "implementation": "implementation trouble",
    "pricing": "pricing",
}


def format_score(score: float, threshold: float | None = None) -> str:
    """A score as text, the one way every message, issue and page prints one: to one decimal, a whole number
    without its ".0" ("72", "69.8"). Beside a threshold, with as many more decimals as it takes to read on the
    same side of it as the score does (69.96 under 70 is "69.96", never "70")."""
    for digits in range(1, 7):
        text = f"{score:.{digits}f}"
        if threshold is None or (float(text) < threshold) == (score < threshold):
            break
    return text.rstrip("0").rstrip(".")


def format_threshold(threshold: float) -> str:
    """A threshold as text: as set, never rounded ("70", "62.5", "70.04"), so a score printed beside it by
    `format_score` compares with it as the numbers do."""
    return f"{threshold:g}"


def _clamp(value: float) -> float:
    return max(0.0, min(100.0, value))


def _sentiment(analysis: CallAnalysis) -> tuple[float, str]:
    compound = analysis.sentiment.external if analysis.sentiment.external is not None else analysis.sentiment.overall
    side = "the client side" if analysis.sentiment.external is not None else "the call"
    return _clamp(50 + 50 * compound), f"{side} sounded {analysis.sentiment.label}"


def _risk(analysis: CallAnalysis) -> tuple[float, str]:
    kinds = sorted({r.kind for r in analysis.risk_factors}, key=lambda k: -RISK_PENALTIES[k])
    score = _clamp(100 - sum(RISK_PENALTIES[k] for k in kinds))
    return score, ", ".join(RISK_WORDS[k] for k in kinds) if kinds else "no risks raised"


def _engagement(analysis: CallAnalysis) -> tuple[float, str]:
    ratio = analysis.talk.internal_ratio
    if ratio is None:
        return 50.0, "nobody spoke"
    share = 1 - ratio
    low, high = BALANCED_SHARE
    if share < low:
        score = 100 * share / low
    elif share > high:
        score = 100 - (100 - MONOLOGUE_FLOOR) * (share - high) / (1 - high)
    else:
        score = 100.0
    return _clamp(score), f"the client spoke {share:.0%} of the time"


def _competition(analysis: CallAnalysis) -> tuple[float, str]:
    by_client = {m.competitor for m in analysis.competitor_mentions if m.affiliation == "External"}
    by_others = {m.competitor for m in analysis.competitor_mentions} - by_client
    score = _clamp(100 - EXTERNAL_COMPETITOR_PENALTY * len(by_client) - OTHER_COMPETITOR_PENALTY * len(by_others))
    if not by_client and not by_others:
        return score, "no competitors named"
    parts = []
    if by_client:
        parts.append("the client named " + ", ".join(sorted(by_client)))
    if by_others:
        parts.append("others named " + ", ".join(sorted(by_others)))
    return score, "; ".join(parts)


def call_components(analysis: CallAnalysis) -> dict[str, tuple[float, str]]:
    """Each component's score (0-100) for one call, with a few words on why."""
    return {
        "sentiment": _sentiment(analysis),
        "risk": _risk(analysis),
        "engagement": _engagement(analysis),
        "competition": _competition(analysis),
    }


def normalised_weights(weights: HealthWeights) -> dict[str, float]:
    raw = {name: float(getattr(weights, name)) for name in COMPONENTS}
    total = sum(raw.values())
    if total <= 0:
        raise ValueError("at least one health weight must be above 0")
    return {name: value / total for name, value in raw.items()}


def _score(component_scores: dict[str, float], details: dict[str, str], weights: HealthWeights) -> HealthScore:
    norm = normalised_weights(weights)
    components = [
        HealthComponent(
            name=name,
            score=round(component_scores[name], 1),
            weight=round(norm[name], 4),
            detail=details[name],
        )
        for name in COMPONENTS
    ]
    total = round(_clamp(sum(norm[n] * component_scores[n] for n in COMPONENTS)), 1)
    return HealthScore(score=total, components=components, explanation="")


def call_health(analysis: CallAnalysis, weights: HealthWeights) -> HealthScore:
    """The health one call alone suggests."""
    parts = call_components(analysis)
    score = _score({n: s for n, (s, _) in parts.items()}, {n: d for n, (_, d) in parts.items()}, weights)
    score.explanation = _explain(score, "this call")
    return score


def client_health(
    analyses: Sequence[CallAnalysis],
    weights: HealthWeights,
    as_of: datetime,
    half_life_days: float,
    window_days: int,
) -> HealthScore | None:
    """A client's health from its analysed calls in the window before `as_of`; None when there are none."""
    since = as_of - timedelta(days=window_days)
    recent = [a for a in analyses if since <= a.started <= as_of]
    if not recent:
        return None
    sums = dict.fromkeys(COMPONENTS, 0.0)
    total_weight = 0.0
    reasons: dict[str, list[str]] = {name: [] for name in COMPONENTS}
    for analysis in sorted(recent, key=lambda a: a.started, reverse=True):
        age_days = (as_of - analysis.started).total_seconds() / 86400
        weight = 0.5 ** (age_days / half_life_days)
        total_weight += weight
        for name, (score, detail) in call_components(analysis).items():
            sums[name] += weight * score
            reasons[name].append(detail)
    scores = {name: sums[name] / total_weight for name in COMPONENTS}
    details = {
        "sentiment": reasons["sentiment"][0] + " on the latest call",
        "risk": _merge_risks(recent),
        "engagement": reasons["engagement"][0] + " on the latest call",
        "competition": _merge_competitors(recent),
    }
    health = _score(scores, details, weights)
    calls = f"{plural(len(recent), 'call')} in the last {plural(window_days, 'day')}"
    health.explanation = _explain(health, calls)
    return health


def _merge_risks(analyses: Sequence[CallAnalysis]) -> str:
    counts: dict[str, int] = {}
    for analysis in analyses:
        for kind in {r.kind for r in analysis.risk_factors}:
            counts[kind] = counts.get(kind, 0) + 1
    if not counts:
        return "no risks raised"
    ordered = sorted(counts, key=lambda k: (-RISK_PENALTIES[k], k))  # type: ignore[index]
    return ", ".join(f"{RISK_WORDS[k]} ({plural(counts[k], 'call')})" for k in ordered)


def _merge_competitors(analyses: Sequence[CallAnalysis]) -> str:
    named = sorted({m.competitor for a in analyses for m in a.competitor_mentions if m.affiliation == "External"})
    return "the client named " + ", ".join(named) if named else "the client named no competitor"


def _explain(health: HealthScore, basis: str) -> str:
    parts = [f"Health {format_score(health.score)}/100 from {basis}."]
    for c in sorted(health.components, key=lambda c: c.score):
        parts.append(f"{c.name} {format_score(c.score)} (weight {c.weight:.2f}): {c.detail}.")
    return " ".join(parts)
