"""The `IssueTracker` port: teams and issues (Linear, or the local tracker in the store).

Creating an issue takes an idempotency key naming what it is about (`health:{client}:{period}`); a key that
already has an issue returns that issue instead of a second one, whichever tracker it is."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import Field

from sophia_mcp.domain.model import Model

Priority = Annotated[int, Field(ge=0, le=4, description="0 none, 1 urgent, 2 high, 3 medium, 4 low.")]


PRIORITY_NAMES = {0: "none", 1: "urgent", 2: "high", 3: "medium", 4: "low"}


class Team(Model):
    id: str
    key: str = Field(description="Short key, the prefix of its issues' identifiers (e.g. CS in CS-12).")
    name: str


class IssueDraft(Model):
    team: str = Field(description="Team key or id.")
    title: Annotated[str, Field(min_length=1, max_length=255)]
    description: str = Field(default="", max_length=50_000, description="Markdown.")
    priority: Priority = 0
    assignee: str | None = Field(default=None, description="Email or name of a member.")
    labels: list[Annotated[str, Field(min_length=1, max_length=80)]] = Field(default_factory=list, max_length=20)
    due_date: date | None = None


class IssueChanges(Model):
    title: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    description: Annotated[str, Field(max_length=50_000)] | None = None
    priority: Priority | None = None
    state: Annotated[str, Field(min_length=1, max_length=80)] | None = None
    assignee: str | None = None
    labels: list[Annotated[str, Field(min_length=1, max_length=80)]] | None = Field(default=None, max_length=20)

    def is_empty(self) -> bool:
        return not self.model_dump(exclude_none=True)


class Issue(Model):
    id: str
    identifier: str = Field(description="Team key and number, e.g. CS-12.")
    title: str
    description: str
    priority: int
    state: str
    team_key: str
    assignee: str | None
    labels: list[str]
    url: str | None
    created_at: datetime
    updated_at: datetime


class IssueQuery(Model):
    text: str | None = Field(default=None, description="Words in the title.")
    team: str | None = None
    state: str | None = None
    labels: list[str] | None = None
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = None


class IssuePage(Model):
    issues: list[Issue]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
