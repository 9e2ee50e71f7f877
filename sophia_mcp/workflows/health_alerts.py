"""When a client's health alerts: when its health changes for the worse, rather than on every call (the last
alert of each client is kept by `services.health_alerts`).

A client is alerted when it crosses under the threshold; while it stays under, again only once it falls a further
`realert_drop` points below the score of its last alert; and again after it has recovered and fallen once more.
"""

from __future__ import annotations

from dataclasses import dataclass

from sophia_mcp.analysis.health import format_score, format_threshold
from sophia_mcp.domain.health_alerts import LastAlert
from sophia_mcp.domain.results import HealthScore


@dataclass(frozen=True)
class AlertDecision:
    """Whether to alert, and what changed since the last alert (or why not)."""

    alert: bool
    change: str


def decide(last: LastAlert | None, health: HealthScore, threshold: float, drop: float, key: str) -> AlertDecision:
    """The rule of the module docstring, for a client whose health is now `health` (as of the call behind `key`)."""
    score = health.score
    if score >= threshold:
        return AlertDecision(False, "client health is not under the threshold")
    if last is None:
        return AlertDecision(True, f"Health crossed under the threshold of {format_threshold(threshold)}.")
    if last.key == key:
        return AlertDecision(True, "The same analysis as the last alert.")  # a re-run: the outbox keeps it once
    since = f"since the last alert on {last.call_started:%Y-%m-%d} ({format_score(last.score, threshold)}/100)"
    if last.recovered_score is not None:
        recovered = format_score(last.recovered_score, threshold)
        return AlertDecision(True, f"Back under the threshold after recovering to {recovered}/100 {since}.")
    if score <= last.score - drop:
        moved = [
            f"{c.name} {format_score(last.components[c.name])} → {format_score(c.score)}"
            for c in health.components
            if c.name in last.components and abs(c.score - last.components[c.name]) >= 1
        ]
        detail = f" ({'; '.join(moved)})" if moved else ""
        return AlertDecision(True, f"Down {format_score(last.score - score)} points {since}{detail}.")
    return AlertDecision(
        False,
        f"already alerted {since}; alerts again at {format_score(last.score - drop)} or after the client recovers",
    )
