"""The store's URL (`SOPHIA_STORE__URL`): which engine it names, and how it is shown (never with its password)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
SETTING = "SOPHIA_STORE__URL"


def is_postgres_url(url: str) -> bool:
    """Whether `url` names a PostgreSQL database (the schemes psycopg accepts)."""
    return url.startswith(POSTGRES_SCHEMES)


def mask_url(url: str) -> str:
    """The URL with its password replaced by `***`: what errors and `doctor` show."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<an unreadable URL>"
    if password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.split(":", 1)[0]
    return urlunsplit((parts.scheme, f"{name}:***@{host}", parts.path, parts.query, parts.fragment))
