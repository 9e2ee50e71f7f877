"""The `IssueTracker` port on the store: teams, issues with Linear's fields and states, and the key ledger.

The embedded default for issues: what the health monitor and bug reports open lands here, shown by the linear
server's tools and resources. An issue and its idempotency key are written in one transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Sequence
from typing import Any

from sophia_mcp.domain.cursors import decode_cursor, encode_cursor
from sophia_mcp.domain.issues import Issue, IssueChanges, IssueDraft, IssuePage, IssueQuery, Team
from sophia_mcp.domain.times import iso, parse_iso, utcnow
from sophia_mcp.errors import InvalidInput, NotFound
from sophia_mcp.store.database import Store, contains

STATES = ("Backlog", "Todo", "In Progress", "In Review", "Done", "Canceled")
# Each state's type, as Linear types its states.
STATE_TYPES = {"Backlog": "backlog", "Todo": "unstarted", "In Progress": "started", "In Review": "started",
               "Done": "completed", "Canceled": "canceled"}  # fmt: skip
NEW_STATE = "Todo"

ISSUE_COLUMNS = "i.*, t.key AS team_key"
CHUNK = 500  # ids bound in one IN (...) list
# One issue by its id or its identifier in any case (both indexed).
BY_REF = f"""
    SELECT {ISSUE_COLUMNS} FROM tracker_issues i JOIN tracker_teams t ON t.id = i.team_id
    WHERE i.id = ? OR i.identifier = ? COLLATE NOCASE
"""


# An issue carrying any of the labels (whatever their case), from its labels' JSON list: each engine's own way. (On
# SQLite the collation goes on the left of IN: on the right it was ignored, and "bug" did not find "Bug".)
LABELS = {
    "sqlite": "EXISTS (SELECT 1 FROM json_each(i.labels) WHERE value COLLATE NOCASE IN ({marks}))",
    "postgresql": "EXISTS (SELECT 1 FROM json_array_elements_text(i.labels::json) AS l (value) "
    "WHERE lower(value) IN ({lowered}))",
}


def _fields(row: sqlite3.Row) -> dict[str, Any]:
    """An issue's fields from its row, for pydantic-core to validate (timestamps parsed there)."""
    return {
        "id": row["id"], "identifier": row["identifier"], "title": row["title"], "description": row["description"],
        "priority": row["priority"], "state": row["state"], "team_key": row["team_key"], "assignee": row["assignee"],
        "labels": json.loads(row["labels"]), "url": None, "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }  # fmt: skip


def _issue(row: sqlite3.Row) -> Issue:
    return Issue.model_validate(_fields(row))


def _page(rows: Sequence[sqlite3.Row], next_cursor: str | None) -> IssuePage:
    """A page of issues validated in one call of pydantic-core (timestamps parsed there), not a model per row."""
    return IssuePage.model_validate({"issues": [_fields(row) for row in rows], "next_cursor": next_cursor})


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

    @staticmethod
    def _found(row: sqlite3.Row | None, ref: str) -> Issue:
        if row is None:
            raise NotFound(f"No issue {ref!r}; search_issues finds issues by title, team, state or label")
        return _issue(row)

    def _get(self, conn: sqlite3.Connection, ref: str) -> Issue:
        return self._found(conn.execute(BY_REF, (ref.strip(), ref.strip())).fetchone(), ref)

    def _get_one(self, issue_id: str) -> Issue:
        return self._found(self.store.query_one(BY_REF, (issue_id.strip(), issue_id.strip())), issue_id)

    async def get(self, issue_id: str) -> Issue:
        # By id or by identifier (either case): two index lookups, short enough to read here.
        return await self.store.read(self._get_one, issue_id)

    def _search(self, query: IssueQuery) -> IssuePage:
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if query.text:
            where.append("(i.title LIKE ? ESCAPE '\\' OR i.identifier = ? COLLATE NOCASE)")
            params += [contains(query.text.strip()), query.text.strip()]
        if query.team:
            where.append("(t.key = ? COLLATE NOCASE OR t.id = ?)")
            params += [query.team, query.team]
        if query.state:
            where.append("i.state = ?")
            params.append(_state(query.state))
        if query.labels:
            marks = ", ".join("?" for _ in query.labels)
            lowered = ", ".join("lower(?)" for _ in query.labels)
            where.append(LABELS[self.store.dialect].format(marks=marks, lowered=lowered))
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
        return _page(rows[: query.limit], following)

    async def search(self, query: IssueQuery) -> IssuePage:
        # Title words match anywhere, so the search may scan every issue: here while they are few, else in a thread.
        return await self.store.scan("tracker_issues", self._search, query)

    # -- writes -------------------------------------------------------------------------------------------

    def _by_id(self, conn: sqlite3.Connection, issue_ids: list[str]) -> dict[str, Issue]:
        # Along the primary key, by ids alone.
        found: dict[str, Issue] = {}
        for start in range(0, len(issue_ids), CHUNK):
            chunk = issue_ids[start : start + CHUNK]
            rows = conn.execute(
                f"""
                SELECT {ISSUE_COLUMNS} FROM tracker_issues i JOIN tracker_teams t ON t.id = i.team_id
                WHERE i.id IN ({", ".join("?" * len(chunk))})
                """,
                chunk,
            )
            found.update((row["id"], _issue(row)) for row in rows)
        return found

    def _create_many(self, items: list[tuple[IssueDraft, str]]) -> list[tuple[Issue, bool]]:
        with self.store.transaction() as conn:
            keys = list({key: None for _, key in items})
            known: dict[str, str] = {}
            listed: set[str] = set()  # keys with a row, an issue of theirs or not
            for start in range(0, len(keys), CHUNK):
                chunk = keys[start : start + CHUNK]
                rows = conn.execute(
                    f"SELECT key, issue_id FROM issue_keys WHERE key IN ({', '.join('?' * len(chunk))})", chunk
                )
                for r in rows:
                    listed.add(r["key"])
                    if r["issue_id"]:
                        known[r["key"]] = r["issue_id"]
            earlier = self._by_id(conn, list(set(known.values())))
            first: dict[str, IssueDraft] = {}
            for draft, key in items:
                if key not in known:
                    first.setdefault(key, draft)
            fresh = list(first.items())
            teams = {ref: self._team(conn, ref) for ref in {draft.team for _, draft in fresh}}
            numbers: dict[str, int] = {}  # the team's first number for this batch
            for ref, team in teams.items():
                wanted = sum(1 for _, draft in fresh if draft.team == ref)
                last = conn.execute(
                    "UPDATE tracker_teams SET issue_count = issue_count + ? WHERE id = ? RETURNING issue_count",
                    (wanted, team["id"]),
                ).fetchone()[0]
                numbers[ref] = last - wanted + 1
            stamp = iso(utcnow())
            now = parse_iso(stamp)  # as stored, to the millisecond
            made: dict[str, Issue] = {}
            issue_rows: list[tuple[Any, ...]] = []
            key_rows: list[tuple[str, ...]] = []
            # The new issues' ids drawn from the system's randomness in one read, not one a uuid4.
            drawn = os.urandom(16 * len(fresh))
            for n, (key, draft) in enumerate(fresh):
                team = teams[draft.team]
                issue = Issue(
                    id=str(uuid.UUID(bytes=drawn[16 * n : 16 * n + 16], version=4)),
                    identifier=f"{team['key']}-{numbers[draft.team]}", title=draft.title.strip(),
                    description=draft.description, priority=draft.priority, state=NEW_STATE, team_key=team["key"],
                    assignee=draft.assignee, labels=json.loads(_labels(draft.labels)), url=None, created_at=now,
                    updated_at=now,
                )  # fmt: skip
                numbers[draft.team] += 1
                made[key] = issue
                issue_rows.append(
                    (
                        issue.id, issue.identifier, team["id"], issue.title, issue.description, issue.priority,
                        NEW_STATE, issue.assignee, json.dumps(issue.labels),
                        draft.due_date.isoformat() if draft.due_date else None, stamp, stamp,
                    )
                )  # fmt: skip
                key_rows.append((key, issue.id, issue.identifier, stamp))
            conn.executemany(
                """
                INSERT INTO tracker_issues (id, identifier, team_id, title, description, priority, state, assignee,
                    labels, due_date, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                issue_rows,
            )
            # Keys without a row (read above, under the write lock) go in as a plain insert, which PostgreSQL takes
            # by COPY; a key listed without its issue has it set.
            conn.executemany(
                "INSERT INTO issue_keys (key, backend, issue_id, identifier, created_at) VALUES (?, ?, ?, ?, ?)",
                [(key, "local", *rest) for key, *rest in key_rows if key not in listed],
            )
            conn.executemany(
                """
                INSERT INTO issue_keys (key, backend, issue_id, identifier, created_at) VALUES (?, 'local', ?, ?, ?)
                ON CONFLICT (key) DO UPDATE SET issue_id = excluded.issue_id, identifier = excluded.identifier
                """,
                [row for row in key_rows if row[0] in listed],
            )
            # A key twice in one batch is one issue: its later mentions are not new.
            seen: set[str] = set()
            out: list[tuple[Issue, bool]] = []
            for _, key in items:
                if key in known:
                    out.append((earlier[known[key]], False))
                else:
                    out.append((made[key], key not in seen))
                    seen.add(key)
            return out

    async def create_many(self, items: list[tuple[IssueDraft, str]]) -> list[tuple[Issue, bool]]:
        """Create many issues, (draft, idempotency key) each, in one transaction: each issue, and whether it is new
        (False: its key had one already, which is returned instead)."""
        return await self.store.run(self._create_many, items)

    def _create(self, draft: IssueDraft, key: str) -> tuple[Issue, bool]:
        return self._create_many([(draft, key)])[0]

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

    # -- the bug's path: states, links, comments ----------------------------------------------------------

    async def states(self, issue_id: str) -> list[tuple[str, str]]:
        await self.get(issue_id)
        return [(name, STATE_TYPES[name]) for name in STATES]

    def _link(self, issue_id: str, url: str, title: str) -> None:
        with self.store.transaction() as conn:
            issue = self._get(conn, issue_id)
            conn.execute(
                """
                INSERT INTO tracker_links (issue_id, url, title, created_at) VALUES (?, ?, ?, ?)
                ON CONFLICT (issue_id, url) DO UPDATE SET title = excluded.title
                """,
                (issue.id, url, title, iso(utcnow())),
            )

    async def link(self, issue_id: str, url: str, title: str) -> None:
        await self.store.run(self._link, issue_id, url, title)

    def _comment(self, issue_id: str, body: str, key: str) -> bool:
        with self.store.transaction() as conn:
            issue = self._get(conn, issue_id)
            row = conn.execute(
                """
                INSERT INTO tracker_comments (key, issue_id, body, created_at) VALUES (?, ?, ?, ?)
                ON CONFLICT (key) DO NOTHING RETURNING key
                """,
                (key, issue.id, body, iso(utcnow())),
            ).fetchone()
            return row is not None

    async def comment(self, issue_id: str, body: str, key: str) -> bool:
        return await self.store.run(self._comment, issue_id, body, key)

    def _extras(self, issue_id: str) -> tuple[list[tuple[str, str]], list[str]]:
        links = self.store.query("SELECT url, title FROM tracker_links WHERE issue_id = ? ORDER BY created_at",
                                 (issue_id,))  # fmt: skip
        comments = self.store.query(
            "SELECT body FROM tracker_comments WHERE issue_id = ? ORDER BY created_at, key", (issue_id,)
        )
        return [(r["url"], r["title"]) for r in links], [r["body"] for r in comments]

    async def extras(self, issue_id: str) -> tuple[list[tuple[str, str]], list[str]]:
        """The issue's links (url, title) and comments, oldest first."""
        issue = await self.get(issue_id)
        return await self.store.run(self._extras, issue.id)

    async def available(self, people: list[str]) -> list[str]:
        # The local tracker has no members to deactivate: everyone named can take work.
        return list(people)
