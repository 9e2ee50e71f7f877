"""The lead score: points per factor from settings, a reason for each, bounds and grades."""

from __future__ import annotations

import pytest

from sophia_mcp.analysis.lead_score import LeadSignals, score_lead, seniority_of
from sophia_mcp.domain.weights import LeadScoreWeights


@pytest.mark.parametrize(
    ("title", "level"),
    [
        ("COO", "executive"),
        ("Owner", "executive"),
        ("Chief Financial Officer", "executive"),
        ("VP Finance", "vp"),
        ("Vice President, Operations", "vp"),
        ("Head of Leasing", "vp"),
        ("Director of Operations", "director"),
        ("Regional Manager", "manager"),
        ("Controller", "manager"),
        ("Leasing Agent", "staff"),
        (None, "staff"),
    ],
)
def test_seniority_from_title(title: str | None, level: str) -> None:
    assert seniority_of(title) == level


def test_points_and_reasons() -> None:
    score = score_lead(
        LeadSignals(title="VP Finance", units_managed=3200, industry="Multifamily", recent_calls=2, client_health=72),
        LeadScoreWeights(),
    )
    points = {r.factor: r.points for r in score.reasons}
    assert points == {"seniority": 20, "company_size": 14, "industry": 15, "engagement": 10, "client_health": 12}
    assert score.score == 71 and score.grade == "B"
    why = {r.factor: r.why for r in score.reasons}
    assert why["company_size"] == "3,200 units managed" and why["client_health"] == "client health 72/100"


def test_unknowns_score_honestly() -> None:
    score = score_lead(LeadSignals(), LeadScoreWeights())
    points = {r.factor: r.points for r in score.reasons}
    assert points == {"seniority": 4, "company_size": 0, "industry": 0, "engagement": 0, "client_health": 8}
    assert score.grade == "D"
    assert {r.why for r in score.reasons} >= {"size unknown", "industry unknown", "client health not known yet"}


def test_best_lead_is_capped_at_100_and_weights_come_from_settings() -> None:
    best = LeadSignals(title="CEO", units_managed=50000, industry="Property Management", recent_calls=9,
                       client_health=95)  # fmt: skip
    assert score_lead(best, LeadScoreWeights()).score == 100 and score_lead(best, LeadScoreWeights()).grade == "A"
    heavier = LeadScoreWeights(seniority={"executive": 60, "staff": 0}, points_per_recent_call=10, engagement_cap=40)
    generous = score_lead(best, heavier)
    assert generous.score == 100  # still capped
    junior = score_lead(LeadSignals(title="Leasing Agent", recent_calls=3), heavier)
    assert {r.factor: r.points for r in junior.reasons}["engagement"] == 30


def test_enricher_signals_seniority_employees_and_industry_case() -> None:
    score = score_lead(
        LeadSignals(title="Partner", seniority="executive", employees=300, industry="real estate"), LeadScoreWeights()
    )
    points = {r.factor: r.points for r in score.reasons}
    assert points["seniority"] == 25 and points["company_size"] == 14 and points["industry"] == 10
    why = {r.factor: r.why for r in score.reasons}
    assert why["seniority"] == "Partner the enricher rates executive" and why["company_size"] == "about 300 employees"
