"""Starting sophia-mcp as a real process, the way a client or a user does."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCRIPT = str(Path(sys.executable).with_name("sophia-mcp"))


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    # None of a developer's settings, but the store a test chose (conftest's `demo_store`): every process it starts
    # shares that database.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPHIA_") or k == "SOPHIA_STORE__URL"}
    env.update({"SOPHIA_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}, **extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_listening(proc: subprocess.Popen[str], seen: list[str]) -> None:
    """Read what a server process logs into `seen` until it says it listens (it says so on stderr once its socket
    listens: no sleeping or polling needed), then go on reading it in a thread, so a busy server never blocks on a
    full pipe."""
    assert proc.stderr is not None
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("sophia-mcp: ") and " serving " in line:
            break
    else:
        raise AssertionError("the server exited before listening:\n" + "".join(seen))
    threading.Thread(target=seen.extend, args=(proc.stderr,), daemon=True).start()


@contextmanager
def http_server(
    data_dir: Path,
    transport: str,
    timeout_s: float = 60,
    port: int | None = None,
    server: str = "gong",
    fd_limit: int | None = None,
    running: list[subprocess.Popen[str]] | None = None,
    output: list[str] | None = None,
    **env: str,
) -> Iterator[str]:
    """Run `sophia-mcp serve SERVER` over HTTP on 127.0.0.1 and yield its base URL once it listens; with `fd_limit`,
    under that many open files at most. The process is appended to `running`, and what it logs to `output`, for a
    test to check on."""

    def limit_files() -> None:
        if fd_limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

    port = port or free_port()
    proc = subprocess.Popen(
        [SCRIPT, "serve", server, "--transport", transport, "--port", str(port)],
        env=env_for(data_dir, **{"SOPHIA_LOG_LEVEL": "INFO"} | env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=limit_files if fd_limit is not None else None,
    )
    if running is not None:
        running.append(proc)
    try:
        wait_until_listening(proc, output if output is not None else [])
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
