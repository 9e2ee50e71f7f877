"""Per-client limits over HTTP, as one ASGI middleware in front of the MCP app: the request body must arrive within a
deadline and a size, each client gets a request rate, and a number of open sessions.

A client is its verified identity when it has one (the subject of an OAuth token the verifier accepts), else its
network address (an IPv6 address by its /64, which one host usually holds whole). What a client merely sends, such
as an Authorization header it has not proved, never makes it a new client.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]
SESSION_HEADER = b"mcp-session-id"
# Buckets and session records kept for this many clients at most; the least recently seen are forgotten first.
MAX_CLIENTS = 10_000

log = logging.getLogger(__name__)
# After Redis failed to answer, requests are counted in the process for this long before Redis is tried again.
REDIS_RETRY_S = 5.0


def client_address(scope: Scope) -> str:
    host = str((scope.get("client") or ("unknown",))[0])
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def bearer_token(scope: Scope) -> str | None:
    """The token of an `Authorization: Bearer ...` header (the scheme is case-insensitive, RFC 6750)."""
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() or None if scheme.lower() == "bearer" else None
    return None


async def refuse(send: Send, status: int, error: str, description: str, **headers: str) -> None:
    """Answer `status` and close the connection after it: a refusal may come before the request's body has arrived
    (a declared size over the cap, a rate), and what is left of that body must not be read as the next request's
    headers on the same connection (the connection guard would take a large remainder for a header flood)."""
    body = json.dumps({"error": error, "error_description": description}).encode()
    extra = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    await send({
        "type": "http.response.start", "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"), *extra],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def burst_of(per_minute: float) -> float:
    """How many requests a client may make at once: a tenth of its rate a minute, at least 5."""
    return max(5.0, per_minute / 10)


class Rate(Protocol):
    async def take(self, client: str) -> float:
        """0 when the client's request may go; else the seconds until it could."""
        ...


class TokenBuckets:
    """A token bucket per client, in this process: `per_minute` requests a minute, with a burst (`burst_of`)."""

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60
        self.burst = burst_of(per_minute)
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    async def take(self, client: str) -> float:
        return self.take_now(client)

    def take_now(self, client: str) -> float:
        """0 when the request may go; else the seconds until it could."""
        now = time.monotonic()
        tokens, then = self.buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
        self.buckets[client] = (tokens - 1 if not wait else tokens, now)
        while len(self.buckets) > MAX_CLIENTS:  # a forgotten client comes back with a full bucket: nothing gained
            self.buckets.popitem(last=False)
        return wait


class SharedRate:
    """The per-client rate counted in Redis, so replicas behind a load balancer hold a client to one rate between
    them, not one each. The `limits` library's sliding window counter: `burst_of(per_minute)` requests in a window
    that many requests' worth long, the bucket's burst and rate. Redis unreachable: this process's own buckets
    count instead (a client then gets the rate from each replica, never none), with one warning per outage."""

    def __init__(self, redis_url: str, per_minute: float) -> None:
        # Loaded only when Redis is configured: a single host needs neither library.
        from limits import RateLimitItemPerSecond
        from limits.aio.storage import RedisStorage
        from limits.aio.strategies import SlidingWindowCounterRateLimiter
        from limits.errors import StorageError

        burst = burst_of(per_minute)
        window_s = max(1, math.ceil(burst * 60 / per_minute))
        self.item = RateLimitItemPerSecond(int(burst), window_s)
        storage = RedisStorage(
            f"async+{redis_url}", implementation="redispy", wrap_exceptions=True, key_prefix="sophia:rate",
            socket_timeout=1.0, socket_connect_timeout=1.0,
        )  # fmt: skip
        self.limiter = SlidingWindowCounterRateLimiter(storage)
        self.storage_error = StorageError
        self.local = TokenBuckets(per_minute)
        self.shared = True
        self.retry_at = 0.0

    async def take(self, client: str) -> float:
        if not self.shared and time.monotonic() < self.retry_at:
            return self.local.take_now(client)  # no request waits on a Redis that just failed to answer
        try:
            if await self.limiter.hit(self.item, client):
                wait = 0.0
            else:
                stats = await self.limiter.get_window_stats(self.item, client)
                wait = max(1.0, stats.reset_time - time.time())
        except self.storage_error as exc:
            if self.shared:
                log.warning("Redis cannot be reached (%s): each replica counts its clients' rate alone until it can",
                            type(exc.storage_error).__name__)  # fmt: skip
            self.shared = False
            self.retry_at = time.monotonic() + REDIS_RETRY_S
            return self.local.take_now(client)
        if not self.shared:
            log.warning("Redis answers again: the replicas count their clients' rate together")
            self.shared = True
        return wait


def client_rate(per_minute: float, redis_url: str | None) -> Rate | None:
    """The per-client rate: none at 0, shared by the replicas through Redis when it is configured, else this
    process's own."""
    if per_minute <= 0:
        return None
    return SharedRate(redis_url, per_minute) if redis_url else TokenBuckets(per_minute)


@dataclass
class _Session:
    client: str
    last_seen: float
    in_flight: int = 0


@dataclass
class SessionLedger:
    """Which client opened which Streamable HTTP session, so one client cannot fill the server's session table.

    The SDK closes a session after `idle_s` without a request in flight; the ledger counts it as gone at the same
    moment, and at once when the client deletes it or the server no longer knows it (404)."""

    per_client: int
    idle_s: float
    sessions: dict[str, _Session] = field(default_factory=dict)

    def open_count(self, client: str) -> int:
        now = time.monotonic()
        stale = [sid for sid, s in self.sessions.items() if not s.in_flight and now - s.last_seen > self.idle_s]
        for sid in stale:
            del self.sessions[sid]
        return sum(1 for s in self.sessions.values() if s.client == client)

    def opened(self, session_id: str, client: str) -> None:
        self.sessions[session_id] = _Session(client, time.monotonic())

    def begin(self, session_id: str) -> _Session | None:
        session = self.sessions.get(session_id)
        if session is not None:
            session.in_flight += 1
            session.last_seen = time.monotonic()
        return session

    def end(self, session_id: str, session: _Session, gone: bool) -> None:
        session.in_flight -= 1
        session.last_seen = time.monotonic()
        if gone:
            self.sessions.pop(session_id, None)


class ClientLimits:
    """ASGI middleware: the body deadline and size, the rate per client, and the sessions per client."""

    def __init__(
        self,
        app: Any,
        *,
        identify: Callable[[str], Awaitable[str | None]],
        max_body_bytes: int,
        body_timeout_s: float,
        rate: Rate | None,
        sessions: SessionLedger | None,
    ) -> None:
        self.app = app
        self.identify = identify
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.rate = rate
        self.sessions = sessions

    async def client_of(self, scope: Scope) -> str:
        token = bearer_token(scope)
        subject = await self.identify(token) if token else None
        return f"subject:{subject}" if subject else f"address:{client_address(scope)}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = await self.client_of(scope)
        wait = await self.rate.take(client) if self.rate is not None else 0.0
        if wait:
            retry = str(math.ceil(wait))
            await refuse(send, 429, "rate_limited", "too many requests; wait and retry", retry_after=retry)
            return
        body = await self._read_body(scope, receive, send)
        if body is None:
            return
        replay = _Replay(body, receive)
        if self.sessions is None:
            await self.app(scope, replay, send)
            return
        await self._with_session(scope, replay, send, client)

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole request body, or None once the request has been answered 408 or 413."""
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await refuse(send, 413, "too_large", f"the request body may be at most {self.max_body_bytes} bytes")
            return None
        chunks: list[bytes] = []
        size = 0
        with anyio.move_on_after(self.body_timeout_s) as deadline:
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return b""  # the client went away; the app sees the disconnect when it reads
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body_bytes:
                    await refuse(send, 413, "too_large", f"the request body may be at most {self.max_body_bytes} bytes")
                    return None
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
        assert deadline.cancelled_caught
        await refuse(send, 408, "request_timeout", f"the request body did not arrive within {self.body_timeout_s:g} s")
        return None

    async def _with_session(self, scope: Scope, receive: Receive, send: Send, client: str) -> None:
        assert self.sessions is not None
        ledger = self.sessions
        given = dict(scope.get("headers") or ()).get(SESSION_HEADER)
        if given is None:
            if scope["method"] == "POST" and ledger.open_count(client) >= ledger.per_client:
                await refuse(
                    send, 429, "too_many_sessions",
                    f"this client already has {ledger.per_client} open sessions: end one (HTTP DELETE with its "
                    f"mcp-session-id) or reuse it; idle ones close after {ledger.idle_s:g} s",
                    retry_after=str(math.ceil(ledger.idle_s)),
                )  # fmt: skip
                return

            async def noting_new_session(message: Message) -> None:
                if message["type"] == "http.response.start" and message["status"] < 300:
                    opened = dict(message.get("headers") or ()).get(SESSION_HEADER)
                    if opened is not None:
                        ledger.opened(opened.decode("latin-1"), client)
                await send(message)

            await self.app(scope, receive, noting_new_session)
            return
        session_id = given.decode("latin-1")
        session = ledger.begin(session_id)
        status = 0

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        finally:
            if session is not None:
                ledger.end(session_id, session, gone=scope["method"] == "DELETE" or status == 404)


class _Replay:
    """An ASGI `receive` that gives the body already read, then whatever the client sends next (its disconnect)."""

    def __init__(self, body: bytes, receive: Receive) -> None:
        self.body: bytes | None = body
        self.receive = receive

    async def __call__(self) -> Message:
        if self.body is not None:
            body, self.body = self.body, None
            return {"type": "http.request", "body": body, "more_body": False}
        return await self.receive()
