"""Churn features and what they mean: the numbers a client is judged by, and reasons in words.

The model (workflows/churn.py) is a calibrated logistic regression over these features, standardised; a
client's reasons are the features that push its risk up the most (coefficient times standardised value).
"""

from __future__ import annotations

import math

from pydantic import Field

from sophia_mcp.analysis.health import format_score
from sophia_mcp.domain.model import Model
from sophia_mcp.domain.plural import plural

FEATURES = (
    "health", "health_trend", "sentiment", "sentiment_trend", "competitor_mentions", "calls_90d",
    "days_since_call", "log_units", "log_arr",
)  # fmt: skip


class ChurnFeatures(Model):
    health: float = Field(description="Current health score, 0-100.")
    health_trend: float = Field(description="Health change per 30 days over the last 90.")
    sentiment: float = Field(description="Average client-side sentiment of the last 90 days' calls, -1..1.")
    sentiment_trend: float = Field(description="Last 30 days' sentiment minus the 60 before.")
    competitor_mentions: float = Field(description="Competitor mentions on calls in the last 90 days.")
    calls_90d: float = Field(description="Calls in the last 90 days (engagement).")
    days_since_call: float
    log_units: float = Field(description="log(1 + units managed), from enrichment.")
    log_arr: float = Field(description="log(1 + ARR).")

    def vector(self) -> list[float]:
        return [float(getattr(self, name)) for name in FEATURES]


def log1p(value: float | None) -> float:
    return math.log1p(max(0.0, value or 0.0))


def reason(feature: str, value: float) -> str:
    """What a feature's value says, in words, when it pushes churn risk up."""
    match feature:
        case "health":
            return f"health is {format_score(value)}/100"
        case "health_trend":
            return f"health {'falling' if value < 0 else 'rising'} {abs(value):.1f} points a month"
        case "sentiment":
            return f"calls sound {'negative' if value < 0 else 'lukewarm'} (sentiment {value:+.2f})"
        case "sentiment_trend":
            return f"sentiment {'worsening' if value < 0 else 'changing'} ({value:+.2f} against the 60 days before)"
        case "competitor_mentions":
            return f"{plural(round(value), 'competitor mention')} on calls in 90 days"
        case "calls_90d":
            return f"{'only ' if value < 4 else ''}{plural(round(value), 'call')} in 90 days"
        case "days_since_call":
            return f"no call for {plural(round(value), 'day')}"
        case "log_units":
            return f"portfolio of about {math.expm1(value):,.0f} units"
        case _:
            return f"ARR of about ${math.expm1(value):,.0f}"
