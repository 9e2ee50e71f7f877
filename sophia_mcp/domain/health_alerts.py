"""A client's last health alert, as its ledger keeps it: what the next alert is decided against."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class LastAlert:
    key: str
    score: float
    components: dict[str, float]
    call_id: str
    call_started: datetime
    recovered_score: float | None
