"""Client companies and contacts kept in the local store (the embedded CRM, filled by the demo or imports)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from pydantic import BaseModel

from sophia_mcp.ports.crm import Client, Contact
from sophia_mcp.store import Store, iso, utcnow

_CLIENT_FIELDS = tuple(Client.model_fields)
_CONTACT_FIELDS = tuple(Contact.model_fields)


def _upsert(conn: sqlite3.Connection, table: str, fields: tuple[str, ...], records: Iterable[BaseModel]) -> None:
    """Insert or update records by id; `fields` are the model's fields, which are also the table's columns."""
    columns = ", ".join((*fields, "updated_at"))
    marks = ", ".join("?" for _ in range(len(fields) + 1))
    updates = ", ".join(f"{f} = excluded.{f}" for f in (*fields[1:], "updated_at"))
    now = iso(utcnow())
    conn.executemany(
        f"INSERT INTO {table} ({columns}) VALUES ({marks}) ON CONFLICT (id) DO UPDATE SET {updates}",
        [(*(getattr(r, f) for f in fields), now) for r in records],
    )


class LocalClients:
    """Reads and writes of client companies and contacts."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def save_clients(conn: sqlite3.Connection, clients: Iterable[Client]) -> None:
        _upsert(conn, "clients", _CLIENT_FIELDS, clients)

    @staticmethod
    def save_contacts(conn: sqlite3.Connection, contacts: Iterable[Contact]) -> None:
        _upsert(conn, "contacts", _CONTACT_FIELDS, contacts)

    def _get_client(self, client_id: str) -> Client | None:
        row = self.store.query_one("SELECT * FROM clients WHERE id = ?", (client_id,))
        return Client.model_validate({f: row[f] for f in _CLIENT_FIELDS}) if row else None

    async def get_client(self, client_id: str) -> Client | None:
        return await self.store.run(self._get_client, client_id)

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

    def count(self) -> int:
        row = self.store.query_one("SELECT COUNT(*) AS n FROM clients")
        return int(row["n"]) if row else 0
