"""Starting sophia-mcp as a real process, the way a client or a user does."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCRIPT = str(Path(sys.executable).with_name("sophia-mcp"))


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPHIA_") or k == "SOPHIA_CACHE_DIR"}
    env.update({"SOPHIA_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}, **extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def http_server(
    data_dir: Path, transport: str, timeout_s: float = 60, port: int | None = None, server: str = "gong", **env: str
) -> Iterator[str]:
    """Run `sophia-mcp serve SERVER` over HTTP on 127.0.0.1 and yield its base URL once it listens."""
    port = port or free_port()
    proc = subprocess.Popen(
        [SCRIPT, "serve", server, "--transport", transport, "--port", str(port)],
        env=env_for(data_dir, SOPHIA_LOG_LEVEL="INFO", **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        seen = []
        # uvicorn says so on stderr once the socket is bound; no sleeping or polling needed.
        for line in proc.stderr:
            seen.append(line)
            if "Uvicorn running on" in line:
                break
        else:
            raise AssertionError("server exited before listening:\n" + "".join(seen))
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
