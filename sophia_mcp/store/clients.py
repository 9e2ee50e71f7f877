"""The embedded CRM: client companies and contacts kept in the local store (filled by the demo or imports)."""

from __future__ import annotations

import bisect
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from sophia_mcp.domain.crm import (
    WORKFLOW_WRITABLE,
    Client,
    ClientPage,
    Contact,
    ContactChanges,
    ContactPage,
    ContactQuery,
)
from sophia_mcp.domain.cursors import decode_cursor, encode_cursor
from sophia_mcp.domain.times import iso, utcnow
from sophia_mcp.errors import InvalidInput, NotFound
from sophia_mcp.store.call_links import name_key
from sophia_mcp.store.database import Store, contains

CLIENT_COLUMNS = tuple(Client.model_fields)
CONTACT_COLUMNS = ("id", "client_id", *WORKFLOW_WRITABLE)

_CONTACT_SELECT = f"""
    SELECT {", ".join(f"ct.{c}" for c in CONTACT_COLUMNS)}, ct.updated_at, cl.name AS company
    FROM contacts ct LEFT JOIN clients cl ON cl.id = ct.client_id
"""


def _upsert(conn: sqlite3.Connection, table: str, columns: tuple[str, ...], rows: Iterable[dict[str, Any]]) -> None:
    """Insert or update rows by id; `columns` are both the table's columns and the rows' keys."""
    names = ", ".join((*columns, "updated_at"))
    marks = ", ".join("?" for _ in range(len(columns) + 1))
    updates = ", ".join(f"{c} = excluded.{c}" for c in (*columns[1:], "updated_at"))
    now = iso(utcnow())
    conn.executemany(
        f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT (id) DO UPDATE SET {updates}",
        [(*(row.get(c) for c in columns), now) for row in rows],
    )


def _contact(row: sqlite3.Row) -> Contact:
    # Validated in one call of pydantic-core, the timestamp parsed there: twice as quick as constructing it field by
    # field in Python (a page builds a hundred).
    return Contact.model_validate(dict(zip(row.keys(), row, strict=True)))


def _id_and_name(row: sqlite3.Row) -> tuple[str, str]:
    return row[0], row[1]


def _client(row: sqlite3.Row) -> Client:
    return Client.model_validate({c: row[c] for c in CLIENT_COLUMNS})


class LocalCRM:
    """The `CRM` port on the store; also where imports and completions read and write, whatever the backend."""

    name = "local"
    batch_size = 500

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- writes used by the demo and imports ----------------------------------------------------------

    @staticmethod
    def save_clients(conn: sqlite3.Connection, clients: Iterable[Client]) -> None:
        saved = list(clients)
        _upsert(conn, "clients", CLIENT_COLUMNS, (c.model_dump() for c in saved))
        # Calls find their client by this key of its name; a renamed client gets a new one.
        conn.executemany("UPDATE clients SET name_key = ? WHERE id = ?", [(name_key(c.name), c.id) for c in saved])

    @staticmethod
    def save_contacts(conn: sqlite3.Connection, contacts: Iterable[Contact]) -> None:
        _upsert(conn, "contacts", CONTACT_COLUMNS, (c.model_dump() for c in contacts))

    async def save(self, clients: Iterable[Client] = (), contacts: Iterable[Contact] = ()) -> None:
        """Insert or update clients, then contacts, by id in one transaction (imports, the demo)."""
        await self.store.run(self._save, list(clients), list(contacts))

    def _save(self, clients: list[Client], contacts: list[Contact]) -> None:
        with self.store.transaction() as conn:
            self.save_clients(conn, clients)
            self.save_contacts(conn, contacts)

    # -- contacts -------------------------------------------------------------------------------------

    def _rows_by_id(self, contact_ids: Sequence[str]) -> list[sqlite3.Row]:
        rows: list[sqlite3.Row] = []
        for start in range(0, len(contact_ids), 500):
            chunk = list(contact_ids[start : start + 500])
            rows += self.store.query(f"{_CONTACT_SELECT} WHERE ct.id IN ({', '.join('?' for _ in chunk)})", chunk)
        return rows

    def _contacts_by_id(self, contact_ids: Sequence[str]) -> dict[str, Contact]:
        return {row["id"]: _contact(row) for row in self._rows_by_id(contact_ids)}

    async def get_contacts(self, contact_ids: list[str]) -> dict[str, Contact]:
        return await self.store.read(self._contacts_by_id, contact_ids, keys=len(contact_ids))

    async def get_contact(self, contact_id: str) -> Contact:
        found = await self.get_contacts([contact_id])
        if contact_id not in found:
            raise NotFound(f"No contact with id {contact_id!r}. Use search_contacts to find contact ids.")
        return found[contact_id]

    def _search(self, query: ContactQuery, limit: int, cursor: str | None) -> ContactPage:
        where, params = ["1 = 1"], []
        for word in (query.text or "").split():
            # The company's name is matched among the clients once, not joined to each contact: the scan then
            # reads contacts alone (a third quicker, with LIKE, than instr of lower() on every row).
            where.append(
                "(ct.first_name || ' ' || ct.last_name LIKE ? ESCAPE '\\' OR ct.email LIKE ? ESCAPE '\\' "
                "OR ct.title LIKE ? ESCAPE '\\' "
                "OR ct.client_id IN (SELECT id FROM clients WHERE name LIKE ? ESCAPE '\\'))"
            )
            params += [contains(word)] * 4
        if query.client_id:
            where.append("ct.client_id = ?")
            params.append(query.client_id)
        if query.email:
            where.append("ct.email = ? COLLATE NOCASE")
            params.append(query.email)
        if query.updated_since:
            where.append("ct.updated_at >= ?")
            params.append(iso(query.updated_since))
        # One pass over the contacts: the ids that match, counted and paged here, then the page's rows by key. A
        # COUNT and a page query matched every row twice, and the page's walk along the id index read each row
        # it passed from the table (a search matching a few of the demo's 181 contacts: 76 us instead of 196;
        # one matching 83: 207 instead of 226).
        ids = sorted(
            row[0] for row in self.store.query(f"SELECT ct.id FROM contacts ct WHERE {' AND '.join(where)}", params)
        )
        start = bisect.bisect_right(ids, decode_cursor(cursor, "contacts", str)[0]) if cursor else 0
        page = ids[start : start + limit]
        found = {row["id"]: row for row in self._rows_by_id(page)}
        rows = [found[i] for i in page if i in found]  # one deleted since is left out
        keys = rows[0].keys() if rows else []
        # The page validated in one call of pydantic-core (timestamps parsed there), not a call per contact.
        return ContactPage.model_validate({
            "contacts": [dict(zip(keys, row, strict=True)) for row in rows],
            "next_cursor": encode_cursor("contacts", page[-1]) if start + limit < len(ids) else None,
            "total": len(ids),
        })  # fmt: skip

    async def search_contacts(self, query: ContactQuery, limit: int, cursor: str | None) -> ContactPage:
        # The search may scan every contact (words match anywhere): here while they are few, else in a worker thread.
        return await self.store.scan("contacts", self._search, query, limit, cursor)

    def _update(self, changes: dict[str, ContactChanges]) -> dict[str, str | None]:
        outcome: dict[str, str | None] = {}
        now = iso(utcnow())
        with self.store.transaction() as conn:
            for contact_id, fields in changes.items():
                refused = [f for f in fields if f not in WORKFLOW_WRITABLE]
                if refused:
                    outcome[contact_id] = f"{', '.join(refused)} cannot be written"
                    continue
                assignments = ", ".join(f"{f} = ?" for f in fields)
                cursor = conn.execute(
                    f"UPDATE contacts SET {assignments}, updated_at = ? WHERE id = ?",
                    [*fields.values(), now, contact_id],
                )
                outcome[contact_id] = None if cursor.rowcount else f"no contact with id {contact_id!r}"
        return outcome

    async def update_contacts(self, changes: dict[str, ContactChanges]) -> dict[str, str | None]:
        return await self.store.run(self._update, changes)

    async def update_contact(self, contact_id: str, changes: ContactChanges) -> Contact:
        error = (await self.update_contacts({contact_id: changes}))[contact_id]
        if error and error.startswith("no contact"):
            raise NotFound(f"No contact with id {contact_id!r}. Use search_contacts to find contact ids.")
        if error:
            raise InvalidInput(f"Contact {contact_id} was not changed: {error}")
        return await self.get_contact(contact_id)

    # -- clients --------------------------------------------------------------------------------------

    def _get_client(self, client_id: str) -> Client | None:
        row = self.store.query_one("SELECT * FROM clients WHERE id = ?", (client_id,))
        return _client(row) if row else None

    async def get_client(self, client_id: str) -> Client | None:
        return await self.store.read(self._get_client, client_id)

    def _clients_by_id(self, client_ids: list[str]) -> dict[str, Client]:
        found: dict[str, Client] = {}
        for start in range(0, len(client_ids), 500):
            chunk = client_ids[start : start + 500]
            rows = self.store.query(f"SELECT * FROM clients WHERE id IN ({', '.join('?' for _ in chunk)})", chunk)
            found.update((row["id"], _client(row)) for row in rows)
        return found

    async def get_clients(self, client_ids: list[str]) -> dict[str, Client]:
        return await self.store.read(self._clients_by_id, client_ids, keys=len(client_ids))

    def _list_clients(self, text: str | None, limit: int, cursor: str | None) -> ClientPage:
        after = decode_cursor(cursor, "clients", str)[0] if cursor else None
        rows = self.store.query(
            """
            SELECT * FROM clients WHERE (? IS NULL OR name LIKE ? ESCAPE '\\' OR domain LIKE ? ESCAPE '\\')
            AND (? IS NULL OR id > ?) ORDER BY id LIMIT ?
            """,
            (text, contains(text or ""), contains(text or ""), after, after, limit + 1),
        )
        clients = [_client(r) for r in rows[:limit]]
        following = encode_cursor("clients", clients[-1].id) if len(rows) > limit else None
        return ClientPage(clients=clients, next_cursor=following)

    async def list_clients(self, text: str | None, limit: int, cursor: str | None) -> ClientPage:
        # A page along the key is a short read; a search for text scans: here while the clients are few.
        if text is None:
            return await self.store.read(self._list_clients, text, limit, cursor)
        return await self.store.scan("clients", self._list_clients, text, limit, cursor)

    async def all_clients(self) -> list[Client]:
        """Every client, in one query (the health monitor's set-based pass)."""
        rows = await self.store.run(self.store.query, "SELECT * FROM clients ORDER BY id")
        return [_client(r) for r in rows]

    def _ids_and_names(self) -> list[tuple[str, str]]:
        return self.store.query_values("SELECT id, name FROM clients ORDER BY id", (), _id_and_name)

    async def ids_and_names(self) -> list[tuple[str, str]]:
        """Every client's (id, name), along the key: what a question is read against for the client it names
        (two columns, not whole records; here while the clients are few)."""
        return await self.store.scan("clients", self._ids_and_names)

    async def all_client_ids(self) -> list[str]:
        """Every client's id, along the key (the health monitor's pass loads whole records only of those at risk)."""
        return await self.store.run(self.store.query_values, "SELECT id FROM clients ORDER BY id")

    # -- completions and counts -----------------------------------------------------------------------

    def client_names(self, prefix: str, limit: int) -> list[str]:
        """Client names containing `prefix` (case-insensitive), those starting with it first."""
        needle = prefix.replace("%", "").replace("_", "")
        rows = self.store.query(
            """
            SELECT name FROM clients WHERE name LIKE ? ORDER BY (name NOT LIKE ?), name LIMIT ?
            """,
            (f"%{needle}%", f"{needle}%", limit),
        )
        return [r["name"] for r in rows]

    def client_ids(self, typed: str, limit: int) -> list[str]:
        """Ids of clients whose id starts with, or whose name contains, what was typed."""
        rows = self.store.query(
            "SELECT id FROM clients WHERE id LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\' ORDER BY name LIMIT ?",
            (contains(typed)[1:], contains(typed), limit),
        )
        return [r["id"] for r in rows]

    def contact_ids(self, typed: str, limit: int) -> list[str]:
        """Ids of contacts whose id starts with, or whose name or email contains, what was typed."""
        rows = self.store.query(
            """
            SELECT id FROM contacts WHERE id LIKE ? ESCAPE '\\' OR email LIKE ? ESCAPE '\\'
            OR first_name || ' ' || last_name LIKE ? ESCAPE '\\' ORDER BY last_name, first_name LIMIT ?
            """,
            (contains(typed)[1:], contains(typed), contains(typed), limit),
        )
        return [r["id"] for r in rows]

    async def count(self) -> int:
        """How many clients the store holds."""
        row = await self.store.run(self.store.query_one, "SELECT COUNT(*) AS n FROM clients")
        return int(row["n"]) if row else 0
