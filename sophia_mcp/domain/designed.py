"""Workflows a person asks for in words: the declarative spec a model drafts, and what a run of one would do.

A spec names only steps and actions of the project's own catalogue (`workflows.designed.CATALOGUE`): a trigger,
read steps, conditions over their rows (a closed set of comparisons on named fields), and side-effecting actions.
There is no code and no expression language in it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from sophia_mcp.domain.model import Model

Name = Annotated[
    str, Field(max_length=60, pattern=r"^[a-z0-9][a-z0-9_-]{0,59}$", description="lowercase, digits, - and _.")
]
StepId = Annotated[str, Field(max_length=40, pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Comparison = Literal["lt", "le", "gt", "ge", "eq", "ne"]


class Trigger(Model):
    """When the workflow runs: a schedule (cron, UTC, or an interval) or an event kind of the inbox."""

    cron: str | None = Field(default=None, max_length=100, description="minute hour day month weekday, UTC.")
    every: str | None = Field(default=None, max_length=20, description="An interval: 30m, 2h, 1d.")
    event: str | None = Field(default=None, max_length=40, description="An inbox event kind, e.g. gong.call.")


class Condition(Model):
    """Keep a row of the step's output when `field` compares to `value` as `op` says."""

    field: str = Field(max_length=60)
    op: Comparison
    value: float | Annotated[str, Field(max_length=200)] = Field(description="A number, or text for eq/ne.")


class Step(Model):
    """One read step of the catalogue, its inputs, and the conditions its rows must meet."""

    id: StepId
    use: str = Field(max_length=60, description="A step of the catalogue.")
    threshold: float | None = Field(default=None, ge=0, le=100)
    days: int | None = Field(default=None, ge=1, le=3650)
    where: list[Condition] = Field(default_factory=list, max_length=10)


class Action(Model):
    """One side effect of the catalogue, over the rows a step kept: one per row (`each`) or one listing them."""

    do: str = Field(
        max_length=40, description="An action of the catalogue: alert, issue, meeting, dashboard or crm_update."
    )
    rows_of: StepId = Field(description="The step whose kept rows the action is about.")
    each: bool = Field(default=False, description="One side effect per row; false: one listing every row.")
    title: str = Field(min_length=1, max_length=200, description="May name the row's fields as {field}.")
    channel: str | None = Field(
        default=None,
        max_length=80,
        pattern=r"^#[a-z0-9][a-z0-9_-]{0,79}$",
        description="alert (and dashboard): where, e.g. #cs-leads.",
    )
    team: str | None = Field(default=None, max_length=40, description="issue: the team; default the setting.")


class WorkflowSpec(Model):
    name: Name
    description: str = Field(default="", max_length=500)
    trigger: Trigger
    steps: list[Step] = Field(min_length=1, max_length=8)
    actions: list[Action] = Field(min_length=1, max_length=8)


class Refusal(Model):
    """What a model answers instead of a spec when the project cannot do what was asked."""

    refuse: str = Field(max_length=500)


class PlannedEffect(Model):
    """One side effect a run decided on: what, where, and its idempotency key."""

    kind: str
    target: str = Field(description="A channel, a team, a CSM's email (meeting) or the CRM (crm_update).")
    title: str
    text: str
    key: str
    starts_at: datetime | None = Field(default=None, description="meeting: when it would start (UTC).")
    changes: dict[str, dict[str, float | str]] | None = Field(
        default=None, description="crm_update: per contact id, the fields written and their new values."
    )


class DryRun(Model):
    name: str
    rows: dict[str, int] = Field(description="Rows each step kept after its conditions.")
    would_do: list[PlannedEffect] = Field(description="Every side effect a real run would make; none was made.")


class DesignedWorkflow(Model):
    name: str
    version: int = Field(description="The deployed version (1, 2, ...); 0 when never deployed.")
    enabled: bool
    request: str = Field(description="The request in words it was designed from.")
    spec: WorkflowSpec
    deployed_at: str | None = None
    next_at: str | None = Field(default=None, description="When a schedule-triggered workflow runs next (UTC).")


class DesignedRun(Model):
    name: str
    version: int
    occurrence: str = Field(description="The trigger occurrence: a fire time, or inbox event id.")
    run_id: str
    done: list[PlannedEffect]
    new: int = Field(description="Side effects kept for the first time (0 on a re-run of the same occurrence).")


class DesignedRuns(Model):
    """The runs of one version of a designed workflow, as sophia://metrics and the dashboard show them."""

    name: str
    version: int
    runs: int
    succeeded: int
    failed: int
    running: int
    last_started_at: str | None = Field(description="When its latest run started (UTC).")
    last_status: str | None = Field(description="running, succeeded or failed: its latest run's.")
