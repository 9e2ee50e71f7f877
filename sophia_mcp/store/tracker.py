"""The `IssueTracker` port on the store: teams, issues with Linear's fields and states, and the key ledger.

The embedded default for issues: what the health monitor and bug reports open lands here, shown by the linear
server's tools and resources. An issue and its idempotency key are written in one transaction.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

from sophia_mcp.domain.cursors import decode_cursor, encode_cursor
from sophia_mcp.domain.issues import Issue, IssueChanges, IssueDraft, IssuePage, IssueQuery, Team
from sophia_mcp.domain.times import iso, parse_iso, utcnow
from sophia_mcp.errors import InvalidInput, NotFound
from sophia_mcp.store.database import Store

STATES = ("Backlog", "Todo", "In Progress", "In Review", "Done", "Canceled")
NEW_STATE = "Todo"

ISSUE_COLUMNS = "i.*, t.key AS team_key"


def _issue(row: sqlite3.Row) -> Issue:
    return Issue(
        id=row["id"], identifier=row["identifier"], title=row["title"], description=row["description"],
        priority=row["priority"], state=row["state"], team_key=row["team_key"], assignee=row["assignee"],
        labels=json.loads(row["labels"]), url=None, created_at=parse_iso(row["created_at"]),
        updated_at=parse_iso(row["updated_at"]),
    )  # fmt: skip


def _state(name: str) -> str:
    for state in STATES:
        if state.casefold() == name.strip().casefold():
            return state
    raise InvalidInput(f"Unknown state {name!r}; the states are {', '.join(STATES)}")


def _labels(names: list[str]) -> str:
    return json.dumps(sorted({n.strip() for n in names if n.strip()}, key=str.casefold))


class LocalTracker:
    name = "local"

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- reads --------------------------------------------------------------------------------------------

    def _teams(self) -> list[Team]:
        rows = self.store.query("SELECT id, key, name FROM tracker_teams ORDER BY key")
        return [Team(id=r["id"], key=r["key"], name=r["name"]) for r in rows]

    async def teams(self) -> list[Team]:
        return await self.store.run(self._teams)

    def _team(self, conn: sqlite3.Connection, ref: str) -> sqlite3.Row:
        row = conn.execute(
            "SELECT * FROM tracker_teams WHERE id = ? OR key = ? COLLATE NOCASE", (ref.strip(), ref.strip())
        ).fetchone()
        if row is None:
            known = ", ".join(r["key"] for r in conn.execute("SELECT key FROM tracker_teams ORDER BY key"))
            raise InvalidInput(f"Unknown team {ref!r}; the teams are {known} (list_teams shows them)")
        return row

    def _get(self, conn: sqlite3.Connection, ref: str) -> Issue:
        row = conn.execute(
            f"""
            SELECT {ISSUE_COLUMNS} FROM tracker_issues i JOIN tracker_teams t ON t.id = i.team_id
            WHERE i.id = ? OR i.identifier = ? COLLATE NOCASE
            """,
            (ref.strip(), ref.strip()),
        ).fetchone()
        if row is None:
            raise NotFound(f"No issue {ref!r}; search_issues finds issues by title, team, state or label")
        return _issue(row)

    def _get_one(self, issue_id: str) -> Issue:
        with self.store.transaction() as conn:
            return self._get(conn, issue_id)

    async def get(self, issue_id: str) -> Issue:
        return await self.store.run(self._get_one, issue_id)

    def _search(self, query: IssueQuery) -> IssuePage:
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if query.text:
            where.append("(i.title LIKE ? OR i.identifier = ? COLLATE NOCASE)")
            params += [f"%{query.text.strip()}%", query.text.strip()]
        if query.team:
            where.append("(t.key = ? COLLATE NOCASE OR t.id = ?)")
            params += [query.team, query.team]
        if query.state:
            where.append("i.state = ?")
            params.append(_state(query.state))
        if query.labels:
            marks = ", ".join("?" for _ in query.labels)
            where.append(f"EXISTS (SELECT 1 FROM json_each(i.labels) WHERE value IN ({marks}) COLLATE NOCASE)")
            params += query.labels
        offset = decode_cursor(query.cursor, "issues", int)[0] if query.cursor else 0
        rows = self.store.query(
            f"""
            SELECT {ISSUE_COLUMNS} FROM tracker_issues i JOIN tracker_teams t ON t.id = i.team_id
            WHERE {" AND ".join(where)} ORDER BY i.created_at DESC, i.id DESC LIMIT ? OFFSET ?
            """,
            [*params, query.limit + 1, offset],
        )
        following = encode_cursor("issues", offset + query.limit) if len(rows) > query.limit else None
        return IssuePage(issues=[_issue(r) for r in rows[: query.limit]], next_cursor=following)

    async def search(self, query: IssueQuery) -> IssuePage:
        # Title words match anywhere, so the search may scan every issue: here while they are few, else in a thread.
        held = await self.store.read(self.store.query_one, "SELECT max(rowid) AS n FROM tracker_issues")
        return await self.store.read(self._search, query, keys=int(held["n"] or 0) if held else 0)

    # -- writes -------------------------------------------------------------------------------------------

    def _create(self, draft: IssueDraft, key: str) -> tuple[Issue, bool]:
        with self.store.transaction() as conn:
            known = conn.execute("SELECT issue_id FROM issue_keys WHERE key = ?", (key,)).fetchone()
            if known is not None and known["issue_id"]:
                return self._get(conn, known["issue_id"]), False
            team = self._team(conn, draft.team)
            number = conn.execute(
                "UPDATE tracker_teams SET issue_count = issue_count + 1 WHERE id = ? RETURNING issue_count",
                (team["id"],),
            ).fetchone()[0]
            issue_id, identifier, now = str(uuid.uuid4()), f"{team['key']}-{number}", iso(utcnow())
            conn.execute(
                """
                INSERT INTO tracker_issues (id, identifier, team_id, title, description, priority, state, assignee,
                    labels, due_date, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                (
                    issue_id, identifier, team["id"], draft.title.strip(), draft.description, draft.priority,
                    NEW_STATE, draft.assignee, _labels(draft.labels),
                    draft.due_date.isoformat() if draft.due_date else None, now, now,
                ),
            )  # fmt: skip
            conn.execute(
                """
                INSERT INTO issue_keys (key, backend, issue_id, identifier, created_at) VALUES (?, 'local', ?, ?, ?)
                ON CONFLICT (key) DO UPDATE SET issue_id = excluded.issue_id, identifier = excluded.identifier
                """,
                (key, issue_id, identifier, now),
            )
            return self._get(conn, issue_id), True

    async def create(self, draft: IssueDraft, key: str) -> tuple[Issue, bool]:
        return await self.store.run(self._create, draft, key)

    def _update(self, issue_id: str, changes: IssueChanges) -> Issue:
        with self.store.transaction() as conn:
            issue = self._get(conn, issue_id)
            values: dict[str, Any] = changes.model_dump(exclude_none=True)
            if "title" in values:
                values["title"] = values["title"].strip()
            if "state" in values:
                values["state"] = _state(values["state"])
            if "assignee" in values:
                values["assignee"] = values["assignee"] or None
            if "labels" in values:
                values["labels"] = _labels(values["labels"])
            if values:
                values["updated_at"] = iso(utcnow())
                assignments = ", ".join(f"{column} = :{column}" for column in values)
                conn.execute(f"UPDATE tracker_issues SET {assignments} WHERE id = :id", {**values, "id": issue.id})
            return self._get(conn, issue.id)

    async def update(self, issue_id: str, changes: IssueChanges) -> Issue:
        return await self.store.run(self._update, issue_id, changes)
