"""Records of workflow runs: each run and its steps as the run ledger keeps them, and per-workflow figures."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from sophia_mcp.domain.model import Model

RunStatus = Literal["running", "succeeded", "failed"]


class StepRecord(Model):
    seq: int
    name: str
    status: str
    detail: Any = None
    error: str | None = None
    started_at: datetime
    duration_ms: float | None = None


class RunRecord(Model):
    id: str
    workflow: str
    subject: str | None
    status: RunStatus
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    steps: list[StepRecord]


class WorkflowMetrics(Model):
    workflow: str
    runs: int
    succeeded: int
    failed: int
    running: int
    success_rate: float | None = Field(description="Succeeded of finished runs; null before any finished.")
    error_rate: float | None
    p50_ms: float | None = Field(description="Median duration of finished runs (the last 1,000).")
    p95_ms: float | None
