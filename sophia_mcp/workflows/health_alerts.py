"""Each client's last health alert, so a client is alerted when its health changes rather than on every call.

A client is alerted when it crosses under the threshold; while it stays under, again only once it falls a further
`realert_drop` points below the score of its last alert; and again after it has recovered and fallen once more.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sophia_mcp.analysis.health import format_score, format_threshold
from sophia_mcp.domain.results import HealthScore
from sophia_mcp.domain.times import iso, parse_iso, utcnow
from sophia_mcp.store.database import Store


@dataclass(frozen=True)
class LastAlert:
    key: str
    score: float
    components: dict[str, float]
    call_id: str
    call_started: datetime
    recovered_score: float | None


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


class HealthAlertLedger:
    """The `health_alert_state` table: one row per client that has had a health alert."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def last(self, client_id: str) -> LastAlert | None:
        row = self.store.query_one("SELECT * FROM health_alert_state WHERE client_id = ?", (client_id,))
        if row is None:
            return None
        return LastAlert(
            key=row["alert_key"], score=row["score"], components=json.loads(row["components"]),
            call_id=row["call_id"], call_started=parse_iso(row["call_started"]),
            recovered_score=row["recovered_score"],
        )  # fmt: skip

    def alerted(self, client_id: str, key: str, health: HealthScore, call_id: str, started: datetime) -> None:
        components = json.dumps({c.name: c.score for c in health.components})
        with self.store.transaction() as conn:
            conn.execute(
                """
                INSERT INTO health_alert_state (client_id, alert_key, score, components, call_id, call_started,
                                                recovered_score, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, NULL, ?)
                ON CONFLICT (client_id) DO UPDATE SET
                    alert_key = excluded.alert_key, score = excluded.score, components = excluded.components,
                    call_id = excluded.call_id, call_started = excluded.call_started, recovered_score = NULL,
                    updated_at = excluded.updated_at
                """,
                (client_id, key, health.score, components, call_id, iso(started), iso(utcnow())),
            )

    def recovered(self, client_id: str, score: float) -> None:
        """The client is at or above the threshold again: its next fall under it alerts."""
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE health_alert_state SET recovered_score = max(coalesce(recovered_score, 0), ?), updated_at = ? "
                "WHERE client_id = ?",
                (score, iso(utcnow()), client_id),
            )
