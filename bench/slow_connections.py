"""Slow connections against a server under a low file limit: does a normal client keep working?

Each server runs as its own process on 127.0.0.1 under `ulimit -n 512` (the composite server as deployed, with a
token and its HTTP limits; beside it a bare MCPServer echo server over the same transport). A normal client opens
a new connection for every round (initialize, one tool call, end the session) and is timed alone first, then
while N connections (default 520, more than the server may open files) each send the start of a request's
headers and nothing more. Printed per server: the normal client's rounds that failed, its p50 and p99 alone and
under the attack, what became of the slow connections (closed by the server, and how soon; still open when the
bench stopped waiting), and whether the server was still running at the end.

Run: python bench/slow_connections.py [--slow 520] [--rounds 50]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import secrets
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gong_server import BARE, SCRIPT, pct, prepare_data_dir
from http_load import CallFailed, Session, free_port, stop, wait_listening

FILE_LIMIT = 512
HEADER_TIMEOUT_S = 3.0


def start_limited(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, FILE_LIMIT))

    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=limit)


async def rounds(port: int, headers: dict[str, str], tool: str, arguments: dict[str, Any], count: int) -> dict:
    """`count` new clients one after another: each connects, initializes, calls `tool` once and ends."""
    times, errors = [], []
    for _ in range(count):
        began = time.perf_counter()
        session = Session(port, headers)
        try:
            async with asyncio.timeout(15):
                await session.open()
                await session.call(tool, arguments)
                await session.close()
            times.append(time.perf_counter() - began)
        except (CallFailed, OSError, TimeoutError, asyncio.IncompleteReadError, KeyError) as exc:
            errors.append(type(exc).__name__)
            await session.connection.close()
    return {"times": times, "errors": errors}


class SlowClients:
    """N connections that send half a request's headers and then wait; notes when the server closes each."""

    def __init__(self, port: int, count: int) -> None:
        self.opened: dict[socket.socket, float] = {}
        self.closed_after: list[float] = []
        self.refused = 0
        for _ in range(count):
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n")
            except OSError:
                self.refused += 1
                continue
            self.opened[sock] = time.monotonic()
        self.stopping = threading.Event()
        self.watcher = threading.Thread(target=self._watch, daemon=True)
        self.watcher.start()

    def _watch(self) -> None:
        while self.opened and not self.stopping.is_set():
            ready, _, _ = select.select(list(self.opened), [], [], 0.2)
            for sock in ready:
                try:
                    gone = sock.recv(1024) == b""
                except OSError:
                    gone = True
                if gone:
                    self.closed_after.append(time.monotonic() - self.opened.pop(sock))
                    sock.close()

    def finish(self, wait_s: float) -> int:
        """Wait up to `wait_s` for the server to close the rest; close what is left; how many were left."""
        self.watcher.join(timeout=wait_s)
        self.stopping.set()
        self.watcher.join()
        left = len(self.opened)
        for sock in self.opened:
            sock.close()
        return left


def attack(command: list[str], env: dict[str, str], headers: dict[str, str], tool: str, slow: int, count: int) -> dict:
    port = free_port()
    server = start_limited([*command, str(port)], env)
    try:
        wait_listening(server, port)
        asyncio.run(rounds(port, headers, tool, {"limit": 1} if tool != "echo" else {"text": "hi"}, 3))  # warm up
        arguments = {"limit": 1} if tool != "echo" else {"text": "hi"}
        alone = asyncio.run(rounds(port, headers, tool, arguments, count))
        slow_clients = SlowClients(port, slow)
        under = asyncio.run(rounds(port, headers, tool, arguments, count))
        left = slow_clients.finish(HEADER_TIMEOUT_S + 5)
        alive = server.poll() is None
    finally:
        stop(server)
    return {"alone": alone, "under": under, "slow": slow_clients, "left": left, "alive": alive}


def report(label: str, figures: dict, slow: int, count: int) -> None:
    alone, under, clients = figures["alone"], figures["under"], figures["slow"]

    def ms(values: list[float], p: float) -> str:
        return f"{pct(values, p) * 1000:7.1f}" if values else "    n/a"

    closed = clients.closed_after
    print(f"  {label}")
    print(f"    normal client alone:        {count - len(alone['errors'])}/{count} rounds, "
          f"p50 {ms(alone['times'], 50)} ms, p99 {ms(alone['times'], 99)} ms")  # fmt: skip
    print(f"    under {slow} slow connections: {count - len(under['errors'])}/{count} rounds, "
          f"p50 {ms(under['times'], 50)} ms, p99 {ms(under['times'], 99)} ms"
          + (f"  (failures: {', '.join(sorted(set(under['errors'])))})" if under["errors"] else ""))  # fmt: skip
    print(f"    slow connections: {len(closed)} closed by the server"
          + (f" (after {pct(closed, 50):.1f} s median, {max(closed):.1f} s at most)" if closed else "")
          + f", {clients.refused} not accepted, {figures['left']} still open when the bench stopped")  # fmt: skip
    print(f"    server running at the end: {'yes' if figures['alive'] else 'NO'}")


def main(slow: int, count: int) -> int:
    data_dir = anyio.run(prepare_data_dir)
    token = secrets.token_urlsafe(24)
    bare = attack([*BARE, "--http"], {}, {}, "echo", slow, count)
    env = {
        "SOPHIA_DATA_DIR": str(data_dir), "SOPHIA_LOG_LEVEL": "WARNING", "SOPHIA_HTTP__BEARER_TOKEN": token,
        "SOPHIA_HTTP__RATE_PER_MINUTE": "600000", "SOPHIA_HTTP__HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
    }  # fmt: skip
    command = [SCRIPT, "serve", "composite", "--transport", "http", "--port"]
    ours = attack(command, env, {"Authorization": f"Bearer {token}"}, "gong_list_calls", slow, count)
    print(f"Slow connections on 127.0.0.1, each server under a limit of {FILE_LIMIT} open files; a normal client opens")
    print(f"a new connection for each of {count} rounds (initialize, one tool call, end the session)")
    report("bare MCPServer (echo)", bare, slow, count)
    report(f"composite (header timeout {HEADER_TIMEOUT_S:g} s)", ours, slow, count)
    if ours["alone"]["times"] and ours["under"]["times"]:
        ratio = pct(ours["under"]["times"], 99) / pct(ours["alone"]["times"], 99)
        print(f"  composite p99 under attack / alone: {ratio:.2f}")
    return 0 if ours["alive"] and not ours["under"]["errors"] else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow", type=int, default=520)
    parser.add_argument("--rounds", type=int, default=50)
    options = parser.parse_args()
    sys.exit(main(options.slow, options.rounds))
