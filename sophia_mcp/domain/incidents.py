"""Incidents of the healing watch: a workflow step failing too often for one cause, what was seen and what was done."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from sophia_mcp.domain.model import Model

Cause = Literal["credentials", "rate_limited", "unavailable", "bad_input", "bug"]
IncidentStatus = Literal["open", "closed"]
Action = Literal["pause_source", "lower_concurrency", "fallback_analyst", "hold_side_effects"]

CAUSE_NAMES: dict[str, str] = {
    "credentials": "credentials refused",
    "rate_limited": "rate limited",
    "unavailable": "a service down or slow",
    "bad_input": "bad input data",
    "bug": "a bug",
}


class Diagnosis(Model):
    """What the runs recorded of one step's failures for one cause, in the watch's window."""

    runs: int = Field(description="The step's runs in the window.")
    failures: int = Field(description="Of them, failed for this cause.")
    examples: list[str] = Field(description="A few of the errors recorded, newest first.")
    first_seen: datetime
    last_seen: datetime


class Remediation(Model):
    """One bounded, reversible change the watch made; it ends when its incident closes."""

    action: Action
    target: str = Field(description="The source, service or outbox kind it applies to.")
    detail: str
    applied_at: datetime
    ended_at: datetime | None = None


class Incident(Model):
    id: int
    workflow: str
    step: str
    cause: Cause
    service: str | None = Field(description="The external service that failed, when the errors named one.")
    status: IncidentStatus
    error_rate: float = Field(description="Failures for this cause of the step's runs in the window, last seen.")
    diagnosis: Diagnosis
    remediations: list[Remediation]
    issue_key: str | None = Field(description="The idempotency key of its tracker issue.")
    summary: str | None = Field(description="Written when it closes.")
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None


# The strategic query's optional sources and the services behind them: an incident on one pauses that source.
SOURCE_SERVICES: dict[str, tuple[str, ...]] = {
    "warehouse": ("snowflake",), "calls": ("gong",), "knowledge": ("pinecone",), "web": ("tavily", "perplexity"),
}  # fmt: skip
# The analyst's model service: an incident on it makes the analyst choice fall back to the local analyst.
ANALYST_SERVICES = ("openai",)
