"""The lead score: a transparent points model, 0-100, with the reason for every point.

Five factors, each worth at most its points in `LeadScoreWeights` (settings `lead_score`): seniority (the
enricher's when known, else read from the job title), company size (units managed in tiers, else employees in
tiers), industry fit, engagement (calls in the last 90 days, capped) and the client's current health (in tiers; a
middling figure when unknown). The score is their sum, capped at
100, and the grade follows it (A >= 75, B >= 55, C >= 35, else D).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from sophia_mcp.analysis.health import format_score
from sophia_mcp.domain.crm import Seniority
from sophia_mcp.domain.model import Model
from sophia_mcp.domain.plural import plural
from sophia_mcp.domain.weights import LeadScoreWeights

# Checked in order: the first pattern that matches a title decides its seniority.
SENIORITY_PATTERNS: list[tuple[Seniority, re.Pattern[str]]] = [
    (
        "executive",
        re.compile(r"\b(?:ceo|coo|cfo|cto|cio|chief|owner|founder|(?<!vice )(?<!vice-)president|principal)\b", re.I),
    ),
    ("vp", re.compile(r"\b(?:vp|svp|evp|vice[- ]president|head of)\b", re.I)),
    ("director", re.compile(r"\bdirector\b", re.I)),
    ("manager", re.compile(r"\b(?:manager|controller|supervisor|lead)\b", re.I)),
]


# Apollo's seniority vocabulary, folded into ours.
APOLLO_SENIORITY: dict[str, Seniority] = {
    "c_suite": "executive",
    "founder": "executive",
    "owner": "executive",
    "partner": "executive",
    "vp": "vp",
    "head": "vp",
    "director": "director",
    "manager": "manager",
    "senior": "staff",
    "entry": "staff",
    "intern": "staff",
}


class LeadSignals(Model):
    """What is known about a contact and its company when it is scored."""

    title: str | None = None
    seniority: Seniority | None = Field(default=None, description="From an enricher; wins over the title.")
    units_managed: int | None = Field(default=None, ge=0)
    employees: int | None = Field(default=None, ge=0)
    industry: str | None = None
    recent_calls: int = Field(default=0, ge=0, description="Calls with the company in the last 90 days.")
    client_health: float | None = Field(default=None, ge=0, le=100)


class ScoreReason(Model):
    factor: Literal["seniority", "company_size", "industry", "engagement", "client_health"]
    points: float
    max_points: float
    why: str


class LeadScore(Model):
    score: float = Field(ge=0, le=100)
    grade: Literal["A", "B", "C", "D"]
    reasons: list[ScoreReason]


def seniority_of(title: str | None) -> Seniority:
    for level, pattern in SENIORITY_PATTERNS:
        if title and pattern.search(title):
            return level
    return "staff"


def _tier(value: float, tiers: list[tuple[float, float]] | list[tuple[int, float]]) -> float:
    for floor, points in tiers:
        if value >= floor:
            return points
    return 0.0


def _size(signals: LeadSignals, weights: LeadScoreWeights) -> tuple[float, str]:
    if signals.units_managed is not None:
        return _tier(signals.units_managed, weights.size_tiers), f"{signals.units_managed:,} units managed"
    if signals.employees is not None:
        return _tier(signals.employees, weights.employee_tiers), f"about {signals.employees:,} employees"
    return 0.0, "size unknown"


def score_lead(signals: LeadSignals, weights: LeadScoreWeights) -> LeadScore:
    """Score a lead and say why, factor by factor."""
    level = signals.seniority or seniority_of(signals.title)
    told = "the enricher rates" if signals.seniority else "reads as"
    top_size = max((p for _, p in [*weights.size_tiers, *weights.employee_tiers]), default=0.0)
    top_health = max((p for _, p in weights.health_tiers), default=0.0)
    size_points, size_why = _size(signals, weights)
    industries = {name.casefold(): points for name, points in weights.industry.items()}
    reasons = [
        ScoreReason(
            factor="seniority",
            points=weights.seniority.get(level, 0.0),
            max_points=max(weights.seniority.values(), default=0.0),
            why=f"{signals.title or 'no title'} {told} {level}",
        ),
        ScoreReason(factor="company_size", points=size_points, max_points=top_size, why=size_why),
        ScoreReason(
            factor="industry",
            points=industries.get((signals.industry or "").casefold(), 0.0),
            max_points=max(weights.industry.values(), default=0.0),
            why=f"industry {signals.industry}" if signals.industry else "industry unknown",
        ),
        ScoreReason(
            factor="engagement",
            points=min(weights.engagement_cap, signals.recent_calls * weights.points_per_recent_call),
            max_points=weights.engagement_cap,
            why=f"{plural(signals.recent_calls, 'call')} in the last 90 days",
        ),
        ScoreReason(
            factor="client_health",
            points=(
                _tier(signals.client_health, weights.health_tiers)
                if signals.client_health is not None
                else weights.health_unknown
            ),
            max_points=top_health,
            why=(
                f"client health {format_score(signals.client_health)}/100"
                if signals.client_health is not None
                else "client health not known yet"
            ),
        ),
    ]
    score = round(min(100.0, sum(r.points for r in reasons)), 1)
    grade: Literal["A", "B", "C", "D"] = "A" if score >= 75 else "B" if score >= 55 else "C" if score >= 35 else "D"
    return LeadScore(score=score, grade=grade, reasons=reasons)
