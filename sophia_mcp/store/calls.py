"""Calls and transcripts kept in the local store: the embedded `CallSource`, and where imports land."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from sophia_mcp.analysis.competitors import find_competitor_mentions
from sophia_mcp.domain.calls import AccountRef, Call, CallFilter, CallPage, Monologue, ParsedCall, Party, Transcript
from sophia_mcp.domain.cursors import decode_cursor, encode_cursor
from sophia_mcp.domain.times import iso, parse_iso, utcnow
from sophia_mcp.domain.weights import Competitor
from sophia_mcp.errors import InvalidInput, NotFound
from sophia_mcp.store.call_links import LINK_HINT, fill_name_keys, name_key, resolve_link
from sophia_mcp.store.database import Store, contains, dumps

OLD_UNLINKED = f"The call was imported before calls were linked by account name and email domain; {LINK_HINT}"

# Parsing the stored JSON straight into models in one pass is several times faster than loads-then-validate.
_MONOLOGUES = TypeAdapter(list[Monologue])
# A transcript's JSON up to this long parses in a fraction of a millisecond; a longer one goes to a worker thread.
PARSE_HERE_CHARS = 20_000


def _call_from_row(row: sqlite3.Row, parties: Sequence[sqlite3.Row] = ()) -> Call:
    return Call(
        id=row["id"],
        title=row["title"],
        started=parse_iso(row["started"]),
        duration_s=row["duration_s"],
        direction=row["direction"] or "Unknown",
        scope=row["scope"] or "Unknown",
        url=row["url"],
        client_id=row["client_id"],
        client_name=row["client_name"],
        linked_by=row["link"],
        unlinked_reason=None if row["client_id"] else (row["unlinked_reason"] or OLD_UNLINKED),
        parties=[_party_from_row(p) for p in parties],
    )


def _party_from_row(row: sqlite3.Row) -> Party:
    return Party(
        id=row["party_id"],
        name=row["name"],
        email=row["email"],
        title=row["title"],
        affiliation=row["affiliation"],
        speaker_id=row["speaker_id"],
        user_id=row["user_id"],
    )


class LocalCalls:
    """The store's calls. Also the sink of `calls import`, the demo, and (later) Gong sync."""

    name = "local"

    def __init__(self, store: Store, competitors: Sequence[Competitor]) -> None:
        self.store = store
        self.competitors = list(competitors)

    def canonical_competitor(self, name: str) -> str:
        """The configured competitor a name or alias stands for; unknown names are an input error."""
        wanted = " ".join(name.split()).casefold()
        for competitor in self.competitors:
            if any(" ".join(alias.split()).casefold() == wanted for alias in competitor.names):
                return competitor.name
        known = ", ".join(c.name for c in self.competitors)
        raise InvalidInput(f"Unknown competitor {name!r}; the configured competitors are: {known}")

    async def list_calls(self, filter: CallFilter, limit: int, cursor: str | None) -> CallPage:
        competitor = self.canonical_competitor(filter.competitor) if filter.competitor else None
        after = decode_cursor(cursor, "calls", str, str) if cursor else (None, None)
        client = filter.client.strip() if filter.client else None
        like = contains(client) if client else None
        params = {
            "client": client,
            "client_like": like,
            "from": iso(filter.started_from) if filter.started_from else None,
            "to": iso(filter.started_to) if filter.started_to else None,
            "competitor": competitor,
            "unlinked": int(filter.unlinked),
            "after_started": after[0],
            "after_id": after[1],
            "limit": limit + 1,
        }
        # Unfiltered, or by dates, the page is read along the calls_started index: quick enough to read here.
        read = self.store.run if client or competitor else self.store.read
        rows = await read(
            self.store.query,
            """
            SELECT * FROM calls c
            WHERE (:client IS NULL OR c.client_id = :client OR c.client_name LIKE :client_like ESCAPE '\\')
              AND (:from IS NULL OR c.started >= :from)
              AND (:to IS NULL OR c.started < :to)
              AND (:unlinked = 0 OR c.client_id IS NULL)
              AND (:competitor IS NULL OR EXISTS (
                    SELECT 1 FROM call_mentions m WHERE m.call_id = c.id AND m.competitor = :competitor))
              AND (:after_started IS NULL OR (c.started, c.id) < (:after_started, :after_id))
            ORDER BY c.started DESC, c.id DESC
            LIMIT :limit
            """,
            params,
        )
        page = [_call_from_row(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_cursor("calls", last["started"], last["id"])
        return CallPage(calls=page, next_cursor=next_cursor)

    def _get_call(self, call_id: str) -> Call:
        row = self.store.query_one("SELECT * FROM calls WHERE id = ?", (call_id,))
        if row is None:
            raise NotFound(f"No call with id {call_id!r}. Use list_calls to find call ids.")
        parties = self.store.query(
            "SELECT * FROM call_parties WHERE call_id = ? ORDER BY affiliation DESC, party_id", (call_id,)
        )
        return _call_from_row(row, parties)

    async def get_call(self, call_id: str) -> Call:
        return await self.store.read(self._get_call, call_id)

    def _transcript_json(self, call_id: str) -> str | None:
        row = self.store.query_one(
            "SELECT c.id, t.monologues FROM calls c LEFT JOIN transcripts t ON t.call_id = c.id WHERE c.id = ?",
            (call_id,),
        )
        if row is None:
            raise NotFound(f"No call with id {call_id!r}. Use list_calls to find call ids.")
        return row["monologues"] or None

    async def get_transcript(self, call_id: str) -> Transcript:
        # The row is one lookup by key; a long call's transcript is parsed in a worker thread, a short one here.
        text = await self.store.read(self._transcript_json, call_id)
        if text is None:
            monologues: list[Monologue] = []
        elif len(text) > PARSE_HERE_CHARS:
            monologues = await self.store.run(_MONOLOGUES.validate_json, text)
        else:
            monologues = _MONOLOGUES.validate_json(text)
        return Transcript.model_construct(call_id=call_id, monologues=monologues)

    def call_ids(self, prefix: str, limit: int) -> list[str]:
        """Ids starting with `prefix`, newest calls first (for completions)."""
        rows = self.store.query(
            "SELECT id FROM calls WHERE id LIKE ? ORDER BY started DESC LIMIT ?",
            (prefix.replace("%", "").replace("_", "") + "%", limit),
        )
        return [r["id"] for r in rows]

    async def all_call_ids(self) -> list[str]:
        """Every call id, oldest call first."""
        rows = await self.store.run(self.store.query, "SELECT id FROM calls ORDER BY started, id")
        return [r["id"] for r in rows]

    async def call_counts(self, client_ids: Sequence[str], since: datetime) -> dict[str, int]:
        """How many calls each client had since `since` (clients with none are absent)."""
        return await self.store.read(self._call_counts, client_ids, since, keys=len(client_ids))

    def _call_counts(self, client_ids: Sequence[str], since: datetime) -> dict[str, int]:
        """How many calls each client had since `since` (clients with none are absent)."""
        ids = list(dict.fromkeys(client_ids))
        counts: dict[str, int] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self.store.query(
                f"SELECT client_id, COUNT(*) AS n FROM calls WHERE started >= ? AND client_id IN "
                f"({', '.join('?' for _ in chunk)}) GROUP BY client_id",
                [iso(since), *chunk],
            )
            counts.update((r["client_id"], int(r["n"])) for r in rows)
        return counts

    # -- writes ---------------------------------------------------------------------------------------

    def save_call(self, conn: sqlite3.Connection, parsed: ParsedCall, source: str) -> Call:
        """Insert or update one call and its parties, linking it to a client; run inside a transaction."""
        call = parsed.call
        link = resolve_link(conn, parsed.account, call.parties)
        now = iso(utcnow())
        # A call linked by hand keeps its client when it is imported again.
        conn.execute(
            """
            INSERT INTO calls (id, title, started, duration_s, direction, scope, url, client_id, client_name,
                               link, unlinked_reason, source, raw, imported_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (id) DO UPDATE SET
                title = excluded.title, started = excluded.started, duration_s = excluded.duration_s,
                direction = excluded.direction, scope = excluded.scope, url = excluded.url,
                client_id = CASE WHEN calls.link = 'manual' THEN calls.client_id ELSE excluded.client_id END,
                client_name = CASE WHEN calls.link = 'manual' THEN calls.client_name ELSE excluded.client_name END,
                unlinked_reason = CASE WHEN calls.link = 'manual' THEN NULL ELSE excluded.unlinked_reason END,
                link = CASE WHEN calls.link = 'manual' THEN calls.link ELSE excluded.link END,
                source = excluded.source, raw = excluded.raw, imported_at = excluded.imported_at
            """,
            (
                call.id,
                call.title,
                iso(call.started),
                call.duration_s,
                call.direction,
                call.scope,
                call.url,
                link.client_id,
                link.client_name,
                link.linked_by,
                link.unlinked_reason,
                source,
                dumps(parsed.raw),
                now,
            ),
        )
        conn.execute("DELETE FROM call_parties WHERE call_id = ?", (call.id,))
        conn.executemany(
            """
            INSERT INTO call_parties (call_id, party_id, name, email, title, affiliation, speaker_id, user_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [(call.id, p.id, p.name, p.email, p.title, p.affiliation, p.speaker_id, p.user_id) for p in call.parties],
        )
        row = conn.execute("SELECT client_id, client_name, link, unlinked_reason FROM calls WHERE id = ?", (call.id,))
        stored = row.fetchone()
        return call.model_copy(
            update={"client_id": stored["client_id"], "client_name": stored["client_name"],
                    "linked_by": stored["link"], "unlinked_reason": stored["unlinked_reason"]}
        )  # fmt: skip

    async def link_call(self, call_id: str, client: str) -> tuple[Call, str | None]:
        """Link a call to a client by hand (its id, or its name with case and punctuation aside); returns the
        linked call and the client it was linked to before, if any."""
        return await self.store.run(self._link_call, call_id, client)

    def _link_call(self, call_id: str, client: str) -> tuple[Call, str | None]:
        wanted = client.strip()
        with self.store.transaction() as conn:
            before = conn.execute("SELECT client_id FROM calls WHERE id = ?", (call_id,)).fetchone()
            if before is None:
                raise NotFound(f"No call with id {call_id!r}. Use list_calls to find call ids.")
            fill_name_keys(conn)
            row = (
                conn.execute("SELECT id, name FROM clients WHERE id = ?", (wanted,)).fetchone()
                or conn.execute(
                    "SELECT id, name FROM clients WHERE name_key = ? ORDER BY id LIMIT 1", (name_key(wanted),)
                ).fetchone()
            )
            if row is None:
                raise NotFound(
                    f"No client {wanted!r}: give a client id or its name, as list_clients (crm server) shows them"
                )
            conn.execute(
                "UPDATE calls SET client_id = ?, client_name = ?, link = 'manual', unlinked_reason = NULL WHERE id = ?",
                (row["id"], row["name"], call_id),
            )
        return self._get_call(call_id), before["client_id"]

    def save_transcript(self, conn: sqlite3.Connection, transcript: Transcript) -> None:
        """Insert or replace a call's transcript and the competitor mentions found in it."""
        monologues = [m.model_dump() for m in transcript.monologues]
        conn.execute(
            """
            INSERT INTO transcripts (call_id, monologues, sentence_count, imported_at) VALUES (?, ?, ?, ?)
            ON CONFLICT (call_id) DO UPDATE SET
                monologues = excluded.monologues, sentence_count = excluded.sentence_count,
                imported_at = excluded.imported_at
            """,
            (
                transcript.call_id,
                dumps(monologues),
                sum(len(m.sentences) for m in transcript.monologues),
                iso(utcnow()),
            ),
        )
        parties = [
            _party_from_row(p)
            for p in conn.execute("SELECT * FROM call_parties WHERE call_id = ?", (transcript.call_id,))
        ]
        mentions: dict[str, int] = {}
        for mention in find_competitor_mentions(transcript, parties, self.competitors):
            mentions[mention.competitor] = mentions.get(mention.competitor, 0) + 1
        conn.execute("DELETE FROM call_mentions WHERE call_id = ?", (transcript.call_id,))
        conn.executemany(
            "INSERT INTO call_mentions (call_id, competitor, mentions) VALUES (?, ?, ?)",
            [(transcript.call_id, name, count) for name, count in sorted(mentions.items())],
        )

    async def keep(self, call: Call, transcript: Transcript, source: str) -> Call:
        """Keep a copy of a call read from elsewhere (Gong), so its analysis and health link to it here; returns
        the call as kept, linked to its client."""
        return await self.store.run(self._keep, call, transcript, source)

    def _keep(self, call: Call, transcript: Transcript, source: str) -> Call:
        parsed = ParsedCall(
            call=call, account=AccountRef(call.client_id, call.client_name), raw=call.model_dump(mode="json")
        )
        with self.store.transaction() as conn:
            kept = self.save_call(conn, parsed, source)
            self.save_transcript(conn, transcript)
        return kept

    async def save_calls(self, batch: Sequence[ParsedCall], source: str) -> tuple[int, int, int]:
        """Insert or update calls in one transaction, leaving those stored exactly as given alone; returns how
        many were new, updated and unchanged."""
        return await self.store.run(self._save_calls, batch, source)

    def _save_calls(self, batch: Sequence[ParsedCall], source: str) -> tuple[int, int, int]:
        new = updated = unchanged = 0
        with self.store.transaction() as conn:
            for parsed in batch:
                stored = self._stored_record(conn, parsed.call.id)
                if stored == parsed.raw:
                    unchanged += 1
                    continue
                if stored is None:
                    new += 1
                else:
                    updated += 1
                self.save_call(conn, parsed, source)
        return new, updated, unchanged

    async def save_transcripts(self, batch: Sequence[Transcript]) -> tuple[int, list[str]]:
        """Insert or replace transcripts in one transaction; returns how many were saved and, for each transcript
        whose call is not in the store, why it was skipped."""
        return await self.store.run(self._save_transcripts, batch)

    def _save_transcripts(self, batch: Sequence[Transcript]) -> tuple[int, list[str]]:
        saved, missing = 0, []
        with self.store.transaction() as conn:
            for transcript in batch:
                if conn.execute("SELECT 1 FROM calls WHERE id = ?", (transcript.call_id,)).fetchone() is None:
                    missing.append(
                        f"transcript of call {transcript.call_id} skipped: its call is not in the store; "
                        "import the call's /v2/calls/extensive record with it"
                    )
                    continue
                self.save_transcript(conn, transcript)
                saved += 1
        return saved, missing

    @staticmethod
    def _stored_record(conn: sqlite3.Connection, call_id: str) -> Any:
        """The Gong record a call was last saved from, or None if the call is not in the store."""
        row = conn.execute("SELECT raw FROM calls WHERE id = ?", (call_id,)).fetchone()
        return None if row is None else json.loads(row[0])
