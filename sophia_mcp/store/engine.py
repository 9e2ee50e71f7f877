"""Which engine the store runs on: PostgreSQL when `SOPHIA_STORE__URL` names a database, else the SQLite file."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from sophia_mcp.errors import InvalidInput
from sophia_mcp.store.database import Store
from sophia_mcp.store.store_url import SETTING, is_postgres_url, mask_url


def open_store(path: Path, url: SecretStr | None) -> Store:
    """The store: on the PostgreSQL database at `url` when one is given, else in the SQLite file at `path`.
    Nothing is connected yet (the first use connects and migrates)."""
    if url is None or not url.get_secret_value().strip():
        return Store(path)
    value = url.get_secret_value().strip()
    if not is_postgres_url(value):
        raise InvalidInput(
            f"{SETTING}={mask_url(value)} is not a PostgreSQL URL: write postgresql://user:password@host:port/db, "
            "or unset it to keep the store in SQLite under SOPHIA_DATA_DIR"
        )
    # psycopg takes a few hundred milliseconds to import: only a store on PostgreSQL loads it.
    from sophia_mcp.store.postgres import PostgresStore

    return PostgresStore(value)
