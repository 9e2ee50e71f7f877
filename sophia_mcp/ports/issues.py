"""The `IssueTracker` port: teams and issues (Linear, or the local tracker in the store).

Creating an issue takes an idempotency key naming what it is about (`health:{client}:{period}`); a key that
already has an issue returns that issue instead of a second one, whichever tracker it is."""

from __future__ import annotations

from typing import Protocol

from sophia_mcp.domain.issues import (
    Issue,
    IssueChanges,
    IssueDraft,
    IssuePage,
    IssueQuery,
    Team,
)


class IssueTracker(Protocol):
    name: str

    async def teams(self) -> list[Team]: ...

    async def create(self, draft: IssueDraft, key: str) -> tuple[Issue, bool]:
        """The issue for `key`: created now (True), or the one an earlier call with the key created (False).
        An unknown team, assignee or state is InvalidInput naming the known ones."""
        ...

    async def get(self, issue_id: str) -> Issue:
        """By id or identifier (CS-12); NotFound if there is none."""
        ...

    async def search(self, query: IssueQuery) -> IssuePage: ...

    async def update(self, issue_id: str, changes: IssueChanges) -> Issue: ...

    async def states(self, issue_id: str) -> list[tuple[str, str]]:
        """The states the issue's team has, as (name, type): type is Linear's (backlog, unstarted, started,
        completed, canceled)."""
        ...

    async def link(self, issue_id: str, url: str, title: str) -> None:
        """Link `url` on the issue (Linear's attachment); linking the same URL again changes nothing."""
        ...

    async def comment(self, issue_id: str, body: str, key: str) -> bool:
        """Comment on the issue once per `key`: False if a comment with the key was made before."""
        ...

    async def available(self, people: list[str]) -> list[str]:
        """Those of `people` (emails or names) who can be given work now, in their order: the tracker's members
        that are active (a deactivated Linear member is away)."""
        ...
