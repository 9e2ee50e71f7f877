"""The demo's churn history: two years of labelled snapshots of former clients' features, as a warehouse that
kept a weekly snapshot per client and later learned who renewed and who churned would hold.

Churned clients' snapshots lean to low and falling health, sour calls, competitor talk and few calls; renewed
ones the other way, with overlap, so the model has something real to learn and to be unsure about.
"""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

from sophia_mcp.analysis.churn import ChurnFeatures
from sophia_mcp.store.demo import PastSnapshot

FORMER_CLIENTS = 160
CHURN_SHARE = 0.3


def _snapshot(rng: random.Random, churned: bool) -> ChurnFeatures:
    g = rng.gauss
    health = min(100.0, max(5.0, g(55, 13) if churned else g(79, 9)))
    sentiment = max(-1.0, min(1.0, g(-0.05, 0.22) if churned else g(0.32, 0.2)))
    units = math.exp(g(6.8, 1.0))
    return ChurnFeatures(
        health=round(health, 1),
        health_trend=round(g(-6, 5) if churned else g(0.5, 4), 2),
        sentiment=round(sentiment, 3),
        sentiment_trend=round(g(-0.15, 0.15) if churned else g(0.02, 0.1), 3),
        competitor_mentions=float(max(0, round(g(3.0, 2.0) if churned else g(0.8, 1.0)))),
        calls_90d=float(max(0, round(g(3, 1.5) if churned else g(6, 2)))),
        days_since_call=float(max(0, round(g(38, 18) if churned else g(14, 9)))),
        log_units=round(math.log1p(units), 3),
        log_arr=round(math.log1p(units * rng.uniform(40, 90)), 3),
    )


def churn_history(today: date, seed: int = 7) -> list[PastSnapshot]:
    """Three snapshots each of the former clients, before they renewed or churned (the same for the same seed)."""
    rng = random.Random(seed)
    rows = []
    for n in range(FORMER_CLIENTS):
        churned = rng.random() < CHURN_SHARE
        ended = today - timedelta(days=rng.randint(30, 700))
        for weeks_before in (12, 6, 2):
            as_of = ended - timedelta(weeks=weeks_before)
            features = _snapshot(rng, churned)
            rows.append(PastSnapshot(f"former-{n:03d}", as_of.isoformat() + "T00:00:00.000Z",
                                     features.model_dump_json(), "churned" if churned else "renewed"))  # fmt: skip
    return rows
