"""Load over Streamable HTTP: concurrent MCP clients against the composite server beside a bare MCPServer echo in
the same HTTP mode: with sessions (one replica on SQLite, as one host serves by default) and stateless (on SQLite,
on PostgreSQL, and three replicas on PostgreSQL behind a round-robin balancer).

Every server runs as its own process on 127.0.0.1 (`sophia-mcp serve composite --transport http`, and
bench/bare_echo_server.py over the same transport, with and without sessions), loaded in the same run by the same
client: N concurrent MCP sessions (default 32) for each, each initialized as a client does, sharing a budget of M
tool calls per server (default 20,000; --calls for a quick run). The servers run side by side and are loaded in
turns (bare, composite, bare stateless, composite stateless, ...: --rounds of each), their figures summed per
server, so what the machine's other work costs falls on all alike. Each composite is compared with the bare echo
in its own mode: a stateless server builds a session for every request, which costs the bare echo too. The echo
runs as the SDK's own `run` starts it, on asyncio's event loop; the composite serves HTTP on uvloop's, so a third
echo, stateless on uvloop, is loaded too, and the stateless composite is compared with both. The bench
starts its own PostgreSQL and Redis (tests/support), a database each for the two PostgreSQL set-ups, loaded with
the demo data as the SQLite stores are.
The stateless composites run as replicas must (`SOPHIA_HTTP__STATELESS=true`); all of them as deployed on a
network: bearer token, Host/Origin checks, the per-client rate limit (counted in Redis on PostgreSQL; raised so the
load stays under it) and the body cap on. The three replicas share only the database and Redis, each with its own
data dir, behind tests/support/round_robin.py run as its own process (each request to the next replica).
They get a mix of their read tools over the demo data (calls, clients, contacts, lead scores, knowledge search,
metrics, read-only SQL, alerts and issues, the strategic query) and an idempotent write (a repeated alert with its
key); the bare servers get `echo`. "get_contact alone" is the stateless SQLite composite given only one small
read (a contact by id): what the server's own layers (token, limits, middleware, validation) cost beside the echo,
apart from what the tools of the mix do. Every tool is called once before the clock starts, since a server builds
a tool on its first call.

An error is any HTTP status but 200, a JSON-RPC error or a result with isError; the run prints them and exits
1 if there is any. The client speaks JSON-RPC over httpx itself, so what is measured is the servers, not a client
library's validation. Run: python bench/http_load.py [--clients 32] [--calls 20000] [--rounds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support: PostgreSQL, Redis, the balancer
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gong_server import BARE, SCRIPT, pct, prepare_data_dir

from sophia_mcp.app.backends import build_services
from sophia_mcp.demo.load import load_demo
from sophia_mcp.settings import load_settings
from tests.support.postgres import PostgresServer, running_postgres
from tests.support.redis_server import redis_server

ROOT = Path(__file__).resolve().parent.parent
Args = Callable[[int], dict[str, Any]]
PROTOCOL = "2025-06-18"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(command: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen[bytes]:
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("SOPHIA_")}, **env}
    return subprocess.Popen(command, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd)


def wait_listening(proc: subprocess.Popen[bytes], port: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            assert proc.stderr is not None
            raise RuntimeError(f"server exited: {proc.stderr.read().decode(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout_s} s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


class CallFailed(Exception):
    pass


class Connection:
    """HTTP/1.1 over one kept-alive loopback socket: small enough that the load client costs less than a server.

    (httpx costs about 3 ms of client CPU a request here, so with it the bench measured the client.)
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        if self.reader is not None and self.reader.at_eof():  # the server closed it while idle (keep-alive timeout)
            await self.close()
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = f"{method} /mcp HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.writer.write(head.encode() + b"\r\n" + body)
        lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        reply_headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                reply_headers[name.strip().lower()] = value.strip()
        if reply_headers.get("transfer-encoding") == "chunked":
            chunks = []
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                chunks.append((await self.reader.readexactly(size + 2))[:-2])
            await self.reader.readuntil(b"\r\n")
            payload = b"".join(chunks)
        else:
            payload = await self.reader.readexactly(int(reply_headers.get("content-length", "0")))
        if reply_headers.get("connection") == "close":
            await self.close()
        return status, reply_headers, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


class Session:
    """One MCP client session over Streamable HTTP, speaking JSON-RPC itself on its own connection."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.connection = Connection(port)
        self.headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json", **headers}
        self.next_id = 0

    async def _post(self, message: dict[str, Any]) -> tuple[dict[str, str], bytes]:
        status, headers, payload = await self.connection.request("POST", self.headers, json.dumps(message).encode())
        if status not in (200, 202):
            raise CallFailed(f"HTTP {status}: {payload[:200]!r}")
        return headers, payload

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        headers, payload = await self._post({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        if headers.get("content-type", "").startswith("text/event-stream"):
            messages = [json.loads(line[5:]) for line in payload.decode().splitlines() if line.startswith("data:")]
        else:
            messages = [json.loads(payload)]
        reply = next((m for m in messages if m.get("id") == self.next_id), None)
        if reply is None:
            raise CallFailed(f"{method}: no reply in {payload[:200]!r}")
        if "error" in reply:
            raise CallFailed(f"{method}: {reply['error']}")
        return dict(reply["result"])

    async def open(self) -> None:
        self.next_id += 1
        message = {
            "jsonrpc": "2.0", "id": self.next_id, "method": "initialize",
            "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "load", "version": "1"}},
        }  # fmt: skip
        headers, _ = await self._post(message)
        if "mcp-session-id" in headers:  # none from a stateless server
            self.headers["mcp-session-id"] = headers["mcp-session-id"]
        self.headers["mcp-protocol-version"] = PROTOCOL
        await self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = await self.request("tools/call", {"name": tool, "arguments": arguments})
        if result.get("isError"):
            text = " ".join(c.get("text", "") for c in result.get("content", []))
            raise CallFailed(f"{tool}: isError: {text[:200]}")
        return result

    async def close(self) -> None:
        if "mcp-session-id" in self.headers:
            await self.connection.request("DELETE", self.headers)
        await self.connection.close()


async def composite_mix(session: Session) -> list[tuple[str, Args]]:
    """The composite server's calls, with ids read from the demo data through the server itself."""
    calls = (await session.call("gong_list_calls", {"limit": 50}))["structuredContent"]["calls"]
    contacts = (await session.call("crm_search_contacts", {"limit": 50}))["structuredContent"]["contacts"]
    clients = (await session.call("crm_list_clients", {"limit": 50}))["structuredContent"]["clients"]
    call_ids, contact_ids = [c["id"] for c in calls], [c["id"] for c in contacts]
    client_names = [c["client"]["name"] for c in clients]
    questions = ["who approves a discount", "card fees for residents", "AppFolio pricing", "onboarding weeks"]
    return [
        ("gong_list_calls", lambda i: {"limit": 20}),
        ("gong_get_call", lambda i: {"call_id": call_ids[i % len(call_ids)]}),
        ("crm_list_clients", lambda i: {"limit": 20}),
        ("crm_get_contact", lambda i: {"contact_id": contact_ids[i % len(contact_ids)]}),
        ("crm_score_lead", lambda i: {"contact_id": contact_ids[i % len(contact_ids)]}),
        ("crm_get_client_health", lambda i: {"client": client_names[i % len(client_names)]}),
        ("knowledge_search_documents", lambda i: {"query": questions[i % len(questions)], "limit": 5}),
        ("knowledge_list_documents", lambda i: {"limit": 20}),
        ("run_metric", lambda i: {"name": "revenue_by_segment"}),
        ("run_metric", lambda i: {"name": "at_risk_clients"}),
        ("query_warehouse", lambda i: {"sql": "SELECT segment, count(*) FROM clients GROUP BY 1"}),
        ("alerts_list_alerts", lambda i: {"limit": 20}),
        ("alerts_send_alert", lambda i: {"text": "Load test alert", "topic": "health", "idempotency_key": "load:1"}),
        ("linear_search_issues", lambda i: {"text": "renewal", "limit": 10}),
        ("strategic_query", lambda i: {"question": f"Which clients are at risk this quarter? ({i % 4})"}),
    ]


async def echo_mix(session: Session) -> list[tuple[str, Args]]:
    return [("echo", lambda i: {"text": f"hello {i}"})]


class Load:
    """One server under load: its sessions opened and its tools warmed once, then loaded a round at a time."""

    def __init__(
        self, label: str, pids: list[int], port: int, headers: dict[str, str], clients: int,
        base: Load | None = None, balancer: int | None = None, only: str | None = None, also: Load | None = None,
    ) -> None:  # fmt: skip
        self.label, self.pids, self.port, self.headers, self.clients = label, pids, port, headers, clients
        self.base = base  # the bare echo in the same HTTP mode, compared with; None for a bare echo itself
        self.also = also  # a second bare echo compared with: the same mode on the composite's event loop
        self.only = only  # the one tool of the mix this server is given, if not the whole mix
        self.balancer, self.replicas = balancer, len(pids)
        self.sessions: list[Session] = []
        self.mix: list[tuple[str, Args]] = []
        self.latencies: dict[str, list[float]] = {}
        self.every: list[float] = []
        self.errors: Counter[str] = Counter()
        self.wall = self.client_cpu = self.server_cpu = self.balancer_cpu = 0.0
        self.called = 0

    async def open(self, mix_of: Callable[[Session], Any]) -> None:
        first = Session(self.port, self.headers)
        await first.open()
        self.mix = [(tool, args) for tool, args in await mix_of(first) if self.only in (None, tool)]
        for tool, args in self.mix:  # every tool once on each replica before the clock starts (round-robin)
            for _ in range(self.replicas):
                await first.call(tool, args(0))
        self.sessions = [first]
        for _ in range(self.clients - 1):
            self.sessions.append(Session(self.port, self.headers))
            await self.sessions[-1].open()
        self.latencies = {tool: [] for tool, _ in self.mix}

    async def round(self, calls: int) -> None:
        """`calls` more tool calls shared by every session; their time added to the totals."""
        counter = itertools.count(self.called)
        last = self.called + calls

        async def client(session: Session) -> None:
            while (i := next(counter)) < last:
                tool, args = self.mix[i % len(self.mix)]
                began = time.perf_counter()
                try:
                    await session.call(tool, args(i))
                except (CallFailed, OSError, asyncio.IncompleteReadError) as error:
                    self.errors[f"{type(error).__name__}: {error}"[:300]] += 1
                    continue
                took = time.perf_counter() - began
                self.latencies[tool].append(took)
                self.every.append(took)

        server_cpu = sum(map(cpu_seconds, self.pids))
        balancer_cpu = cpu_seconds(self.balancer) if self.balancer else 0.0
        cpu_began, began = time.process_time(), time.perf_counter()
        await asyncio.gather(*(client(session) for session in self.sessions))
        self.wall += time.perf_counter() - began
        self.client_cpu += time.process_time() - cpu_began
        self.server_cpu += sum(map(cpu_seconds, self.pids)) - server_cpu
        if self.balancer:
            self.balancer_cpu += cpu_seconds(self.balancer) - balancer_cpu
        self.called = last

    async def close(self) -> None:
        for session in self.sessions:
            await session.close()


async def interleaved(loads: list[Load], calls: int, rounds: int) -> None:
    """Every server loaded in turns (bare, SQLite, PostgreSQL, ...), so the machine's noise falls on all alike."""
    for load in loads:
        await load.open(echo_mix if load.base is None else composite_mix)
    for number in range(rounds):
        share = calls // rounds + (1 if number < calls % rounds else 0)
        for load in loads:
            await load.round(share)
    for load in loads:
        await load.close()


def throughput(figures: Load) -> float:
    return len(figures.every) / figures.wall


def report(figures: Load) -> None:
    every = figures.every
    print(
        f"  {figures.label:28s} calls {len(every):6d}  errors {sum(figures.errors.values()):4d}  "
        f"p50 {pct(every, 50) * 1000:7.2f} ms  p99 {pct(every, 99) * 1000:7.2f} ms  "
        f"throughput {throughput(figures):5.0f} calls/s  wall {figures.wall:6.1f} s  "
        f"server CPU {figures.server_cpu / max(1, len(every)) * 1000:.2f} ms/call"
        + (f" (balancer {figures.balancer_cpu / max(1, len(every)) * 1000:.2f})" if figures.balancer else "")
    )
    for base in (figures.base, figures.also):
        if base is not None:
            print(
                f"  {'':28s} / {base.label}: p50 {pct(every, 50) / pct(base.every, 50):.2f}  "
                f"p99 {pct(every, 99) / pct(base.every, 99):.2f}  "
                f"throughput {throughput(figures) / throughput(base):.2f}"
            )
    for error, count in figures.errors.most_common(5):
        print(f"      {count} x {error}")


def demo_database(postgres: PostgresServer, folder: Path) -> str:
    """A new database on `postgres` holding the demo data, as the SQLite store does; its URL."""
    url = postgres.url(postgres.create_database())
    services = build_services(load_settings(data_dir=folder, store={"url": url}))
    try:
        anyio.run(load_demo, services)
    finally:
        services.close()
    return url


def composite(env: dict[str, str], folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    """One replica of the composite server with its own data dir (and working dir) `folder`, and its port."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    command = [SCRIPT, "serve", "composite", "--transport", "http", "--port", str(port)]
    return start(command, {**env, "SOPHIA_DATA_DIR": str(folder)}, cwd=folder), port


def main(clients: int, calls: int, rounds: int) -> int:
    sqlite_dir, sessions_dir = anyio.run(prepare_data_dir), anyio.run(prepare_data_dir)
    token = secrets.token_urlsafe(24)
    env = {
        "SOPHIA_LOG_LEVEL": "WARNING",
        "SOPHIA_HTTP__BEARER_TOKEN": token,
        "SOPHIA_HTTP__STATELESS": "true",
        "SOPHIA_HTTP__REQUEST_STATE_KEYS": secrets.token_urlsafe(32),
        "SOPHIA_HTTP__RATE_PER_MINUTE": "600000",
    }
    auth = {"Authorization": f"Bearer {token}"}
    work = Path(tempfile.mkdtemp(prefix="sophia-http-load-"))
    procs: list[subprocess.Popen[bytes]] = []
    with running_postgres() as postgres, redis_server(work / "redis") as redis_url:
        try:
            one_url, three_url = demo_database(postgres, work / "seed-1"), demo_database(postgres, work / "seed-3")
            bare_port, bare_stateless_port, bare_uvloop_port = free_port(), free_port(), free_port()
            procs.append(bare := start([*BARE, "--http", str(bare_port)], {}))
            procs.append(bare_stateless := start([*BARE, "--http", str(bare_stateless_port), "--stateless"], {}))
            procs.append(bare_uvloop := start([*BARE, "--http", str(bare_uvloop_port), "--stateless", "--uvloop"], {}))
            one_host = {**env, "SOPHIA_HTTP__STATELESS": "false", "SOPHIA_HTTP__SESSIONS_PER_CLIENT": str(clients)}
            sessions, sessions_port = composite(one_host, sessions_dir)
            sqlite, sqlite_port = composite(env, sqlite_dir)
            on_pg = {**env, "SOPHIA_REDIS__URL": redis_url}
            one, one_port = composite({**on_pg, "SOPHIA_STORE__URL": one_url}, work / "one")
            replicas = [composite({**on_pg, "SOPHIA_STORE__URL": three_url}, work / f"replica-{n}") for n in range(3)]
            procs += [sessions, sqlite, one, *(proc for proc, _ in replicas)]
            started = [(bare, bare_port), (bare_stateless, bare_stateless_port), (bare_uvloop, bare_uvloop_port),
                       (sessions, sessions_port), (sqlite, sqlite_port), (one, one_port), *replicas]  # fmt: skip
            for proc, port in started:
                wait_listening(proc, port)
            proxy_port = free_port()
            urls = [f"http://127.0.0.1:{port}" for _, port in replicas]
            procs.append(proxy := start([sys.executable, "-m", "tests.support.round_robin", str(proxy_port), *urls],
                                        {}, cwd=ROOT))  # fmt: skip
            wait_listening(proxy, proxy_port)
            with_sessions = Load("bare echo, sessions", [bare.pid], bare_port, {}, clients)
            stateless = Load("bare echo, stateless", [bare_stateless.pid], bare_stateless_port, {}, clients)
            on_uvloop = Load("bare echo, stateless, uvloop", [bare_uvloop.pid], bare_uvloop_port, {}, clients)
            mix = Load("composite, SQLite", [sqlite.pid], sqlite_port, auth, clients, base=stateless, also=on_uvloop)
            loads = [
                with_sessions,
                Load("composite, SQLite, sessions", [sessions.pid], sessions_port, auth, clients, base=with_sessions),
                stateless,
                on_uvloop,
                mix,
                Load("  get_contact alone", [sqlite.pid], sqlite_port, auth, clients, stateless,
                     only="crm_get_contact", also=on_uvloop),
                Load("composite, PostgreSQL", [one.pid], one_port, auth, clients, base=stateless),
                Load("3 replicas, PostgreSQL", [p.pid for p, _ in replicas], proxy_port, auth, clients, stateless,
                     proxy.pid),
            ]  # fmt: skip
            asyncio.run(interleaved(loads, calls, rounds))
        finally:
            for proc in procs:
                stop(proc)

    print(
        f"Streamable HTTP on 127.0.0.1: {clients} concurrent MCP sessions, {calls} tool calls each server, "
        f"in {rounds} interleaved rounds"
    )
    for load in loads:
        report(load)
    for load in (mix, loads[-1]):
        print(f"  per tool, {load.label} (p50 / p99 ms):")
        for tool, values in load.latencies.items():
            if values:
                p50, p99 = pct(values, 50) * 1000, pct(values, 99) * 1000
                print(f"    {tool:28s} {p50:7.2f} / {p99:7.2f}  ({len(values)} calls)")
    return 1 if any(load.errors for load in loads) else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--calls", type=int, default=20_000, help="tool calls each server (default 20,000)")
    parser.add_argument("--rounds", type=int, default=6, help="turns each server takes (default 6)")
    options = parser.parse_args()
    sys.exit(main(options.clients, options.calls, options.rounds))
