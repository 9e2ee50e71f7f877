"""Tools built when first called, and the tool list kept between starts.

Building a tool (its arguments model, input and output schemas) costs pydantic a few milliseconds; the composite
server has over thirty, which made its start half again as slow as a bare server's. The list a client asks for
at start is the same on every start of the same code, so it is kept in the user's cache dir, keyed by the
versions of sophia-mcp, mcp and pydantic and by the size and time of every source file; a tool itself is
built when it is first called. A missing or stale list is built in full and written again, like bytecode.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent


def cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(os.environ.get("SOPHIA_CACHE_DIR") or user_cache_dir("sophia-mcp", appauthor=False)) / "tools"


def code_key(server: str, tools: list[str]) -> str:
    """What the tool list depends on: the code (file sizes and times), the library versions, the tools' names."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    for name in ("sophia-mcp", "mcp", "pydantic", "pydantic-core"):
        try:
            digest.update(f"{name}={version(name)};".encode())
        except Exception:  # a library without metadata (a source checkout): its files below still count
            digest.update(f"{name}=?;".encode())
    roots = [PACKAGE, PACKAGE.parent / "servers"]
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            stat = path.stat()
            digest.update(f"{path.relative_to(root.parent)}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    digest.update(f"{server}:{','.join(tools)}".encode())
    return digest.hexdigest()[:24]


def load(server: str, key: str) -> list[dict[str, Any]] | None:
    path = cache_dir() / f"{server}-{key}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, list) else None


def save(server: str, key: str, tools: list[dict[str, Any]]) -> None:
    """Write atomically (two servers starting at once each write a whole file); a read-only home is no error."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(f"{server}-*.json"):
            stale.unlink(missing_ok=True)
        handle, temp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(handle, "w") as out:
            json.dump(tools, out)
        os.replace(temp, folder / f"{server}-{key}.json")
    except OSError:
        pass
