"""Connections that cannot outstay their welcome: a bound on how many are open, and on how long a request's headers
may take to arrive.

uvicorn holds a connection that sends half a request forever, and accepts connections until the process runs out of
file descriptors. `ConnectionPool.protocol` wraps uvicorn's own HTTP protocol (given to `uvicorn.Config(http=...)`):
each connection must deliver a request's headers within `header_timeout_s` of connecting, or of its first byte after a
response; at the cap, the connection that has waited longest for its headers makes room for the new one (the slowest
client loses, not the next real one), and when every connection is busy the new one is closed at once.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

HEADER_END = b"\r\n\r\n"
# A request's line and headers may take this many bytes, as h11 allows; httptools, the parser inside, sets no bound.
MAX_HEADER_BYTES = 16 * 1024
HEADERS_TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
# The listen queue, which is also how many connections asyncio accepts at once, before any of them reaches the
# pool's cap.
BACKLOG = 100
# Batches of accepted connections open beyond the cap at the moment of an accept, under a flood: asyncio accepts a
# batch in one loop pass, builds their transports in the next, hands them to the pool (which closes as many
# waiting ones) in the one after, and only then are those closed. So while one batch is accepted, the one before
# waits for the pool and the victims of the one before that wait to be closed.
BATCHES_IN_FLIGHT = 3
# File descriptors kept free for everything that is not a client connection: the store, logs, imports, threads.
RESERVED_FDS = 64


def connection_cap(configured: int) -> int:
    """The configured cap, lowered to what the process's file-descriptor limit leaves for connections."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, soft - RESERVED_FDS - BATCHES_IN_FLIGHT * BACKLOG))


@dataclass
class PoolCounts:
    """What the guard did, for the log and the benchmark."""

    accepted: int = 0
    header_timeouts: int = 0
    headers_too_large: int = 0
    evicted: int = 0
    refused: int = 0


class GuardedConnection(asyncio.Protocol):
    """One client connection: uvicorn's protocol inside, a header deadline and the pool's cap around it."""

    def __init__(self, inner: asyncio.Protocol, pool: ConnectionPool) -> None:
        self.inner = inner
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.awaiting_headers = True
        self.answered = False  # the server has written since this request's headers arrived
        self.tail = b""
        self.header_bytes = 0  # of this request's line and headers, so far
        self.deadline: asyncio.TimerHandle | None = None
        self.started = False  # uvicorn's protocol has the connection

    # -- asyncio.Protocol -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's classes
        if not self.pool.admit(self):
            self.transport.abort()
            return
        self.inner.connection_made(_WatchedTransport(self.transport, self))
        self.started = True
        self._start_deadline()

    def data_received(self, data: bytes) -> None:
        if self.answered:  # a byte after a response starts the next request on this connection
            self.answered = False
            self.awaiting_headers = True
            self.tail = b""
            self.header_bytes = 0
            self._start_deadline()
        if self.awaiting_headers:
            seen = self.tail + data
            end = seen.find(HEADER_END)
            self.header_bytes += len(data) if end < 0 else end + len(HEADER_END) - len(self.tail)
            if self.header_bytes > MAX_HEADER_BYTES:
                self._headers_too_large()
                return
            if end >= 0:
                self.awaiting_headers = False
                self._stop_deadline()
            self.tail = seen[-(len(HEADER_END) - 1) :]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        self.pool.release(self)
        if self.started:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    # -- the guard --------------------------------------------------------------------------------------

    def wrote(self) -> None:
        if not self.awaiting_headers:
            self.answered = True

    def close(self) -> None:
        """Drop the connection now (its headers are late, or a newer connection needs its place)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def _start_deadline(self) -> None:
        self._stop_deadline()
        self.deadline = asyncio.get_running_loop().call_later(self.pool.header_timeout_s, self._headers_late)

    def _stop_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _headers_too_large(self) -> None:
        self._stop_deadline()
        self.pool.counts.headers_too_large += 1
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(HEADERS_TOO_LARGE)
            self.transport.close()

    def _headers_late(self) -> None:
        self.deadline = None
        if self.awaiting_headers:
            self.pool.counts.header_timeouts += 1
            self.close()


class _WatchedTransport(asyncio.Transport):
    """The transport as uvicorn's protocol sees it: every call goes through, and writes are noted."""

    def __init__(self, transport: asyncio.Transport, owner: GuardedConnection) -> None:
        super().__init__()
        self.transport = transport
        self.owner = owner

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.owner.wrote()
        self.transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self.owner.wrote()
        self.transport.writelines(list_of_data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def close(self) -> None:
        self.transport.close()

    def abort(self) -> None:
        self.transport.abort()

    def is_reading(self) -> bool:
        return self.transport.is_reading()

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.transport.get_write_buffer_limits()

    def write_eof(self) -> None:
        self.transport.write_eof()

    def can_write_eof(self) -> bool:
        return self.transport.can_write_eof()


class ConnectionPool:
    """The open connections of one server, oldest first."""

    def __init__(self, max_connections: int, header_timeout_s: float) -> None:
        self.max_connections = max_connections
        self.header_timeout_s = header_timeout_s
        self.open: dict[GuardedConnection, None] = {}  # insertion order: oldest first
        self.counts = PoolCounts()

    def protocol(self, **uvicorn_state: Any) -> GuardedConnection:
        """What `uvicorn.Config(http=...)` builds for each connection (it passes config, server_state, app_state)."""
        return GuardedConnection(HttpToolsProtocol(**uvicorn_state), self)

    def admit(self, connection: GuardedConnection) -> bool:
        if len(self.open) >= self.max_connections:
            waiting = next((c for c in self.open if c.awaiting_headers), None)
            if waiting is None:
                self.counts.refused += 1
                log.warning("Refused a connection: %d are open and busy", len(self.open))
                return False
            self.counts.evicted += 1
            self.release(waiting)
            waiting.close()
        self.open[connection] = None
        self.counts.accepted += 1
        return True

    def release(self, connection: GuardedConnection) -> None:
        self.open.pop(connection, None)
