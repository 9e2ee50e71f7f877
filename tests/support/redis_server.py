"""A real Redis for tests: Debian's `redis-server`, started on 127.0.0.1 in a temporary folder, nothing persisted.

Without the binary the tests that need it skip, unless `SOPHIA_TEST_REDIS=required` (CI sets it): then they fail."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.processes import free_port


def redis_server_binary() -> str:
    """The path of `redis-server`, or the test is skipped (failed when CI requires Redis)."""
    found = shutil.which("redis-server")
    if found is None:
        reason = "redis-server is not installed (Debian: apt-get install redis-server)"
        if os.environ.get("SOPHIA_TEST_REDIS") == "required":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A fresh Redis on a free port of 127.0.0.1; yields its `redis://` URL and stops it afterwards."""
    binary = redis_server_binary()
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
         "--appendonly", "no", "--protected-mode", "yes", "--loglevel", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {proc.stdout.read() if proc.stdout else ''}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer PING within 30 s")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
