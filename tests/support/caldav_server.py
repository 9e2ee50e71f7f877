"""A real CalDAV server for tests: Radicale (PyPI), started on 127.0.0.1 in a temporary folder with one user."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import free_port


@dataclass(frozen=True)
class CalDAVServer:
    url: str
    username: str
    password: str


@contextmanager
def radicale(folder: Path, username: str = "csm", password: str = "calendar-secret") -> Iterator[CalDAVServer]:
    """Radicale serving `folder` on a free port of 127.0.0.1, with `username`/`password` (htpasswd, plain)."""
    users = folder / "users"
    users.write_text(f"{username}:{password}\n")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "radicale", "--server-hosts", f"127.0.0.1:{port}",
         "--storage-filesystem-folder", str(folder / "collections"), "--auth-type", "htpasswd",
         "--auth-htpasswd-filename", str(users), "--auth-htpasswd-encryption", "plain", "--logging-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"radicale exited: {proc.stderr.read() if proc.stderr else ''}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("radicale did not listen within 30 s") from None
                time.sleep(0.05)
        yield CalDAVServer(f"http://127.0.0.1:{port}/", username, password)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
