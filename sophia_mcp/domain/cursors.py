"""Page cursors: opaque tokens a listing hands out with a page, and takes back for the next one.

Every listing encodes its position with `encode_cursor` and reads it back with `decode_cursor`, which refuses
anything it did not issue (garbage, a bare number, another listing's cursor, a negative or overflowing offset)
instead of silently serving the first page or crashing on it.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from sophia_mcp.errors import InvalidInput

NOT_OURS = "cursor is not one this tool returned; omit it for the first page"

# The largest integer SQLite stores: an offset or an id past it cannot be one we issued.
MAX_INT = 2**63 - 1

Value = str | int | None


def encode_cursor(kind: str, *values: Value) -> str:
    """A cursor for the listing `kind` holding `values` (strings, integers, None)."""
    raw = json.dumps([kind, *values], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(token: str, kind: str, *shape: type | tuple[type, ...]) -> tuple[Any, ...]:
    """The values `encode_cursor(kind, ...)` put in `token`, each an instance of its entry in `shape` (integers
    between 0 and SQLite's largest); InvalidInput saying how to start over for anything else."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error):  # not base64, not UTF-8, not JSON
        raise InvalidInput(NOT_OURS) from None
    if not isinstance(decoded, list) or len(decoded) != len(shape) + 1 or decoded[0] != kind:
        raise InvalidInput(NOT_OURS)
    values = tuple(decoded[1:])
    for value, expected in zip(values, shape, strict=True):
        wrong_int = isinstance(value, int) and (isinstance(value, bool) or not 0 <= value <= MAX_INT)
        if wrong_int or not isinstance(value, expected):
            raise InvalidInput(NOT_OURS)
    return values
