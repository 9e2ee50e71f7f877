"""A small round-robin load balancer on 127.0.0.1, for replicas of a server: each HTTP request goes to the next
replica in turn (per request, not per connection: a client's kept-alive connection still spreads its requests over
every replica). A replica whose connection is refused is taken out of the turn for good and the request goes to
the next one, as a load balancer's health check would; a request a replica dies in the middle of answers 502.

Run in a test's thread (`round_robin`) or as its own process (`python -m tests.support.round_robin PORT URL...`,
for a bench, so that the balancer's work is not the load client's)."""

from __future__ import annotations

import itertools
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.server import serve

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}


@dataclass
class Balancer:
    """The replicas' base URLs, the ones still in the turn, and how many requests each was sent."""

    replicas: list[str]
    down: set[str] = field(default_factory=set)
    sent: dict[str, int] = field(default_factory=dict)
    _turn: Iterator[int] = field(default_factory=itertools.count)

    def next_live(self) -> str | None:
        live = [r for r in self.replicas if r not in self.down]
        return live[next(self._turn) % len(live)] if live else None


def balancer_app(balancer: Balancer) -> Starlette:
    # A new connection to the replica for each request: one kept alive may be closed by the replica the moment a
    # request goes out on it, and that request would fail (502) though the replica is up.
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    client = httpx.AsyncClient(timeout=httpx.Timeout(120, connect=2), limits=limits)

    async def forward(request: Request) -> Response:
        body = await request.body()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        while (replica := balancer.next_live()) is not None:
            outgoing = client.build_request(
                request.method, replica + request.url.path, params=request.query_params, headers=headers, content=body
            )
            try:
                answer = await client.send(outgoing, stream=True)
            except httpx.ConnectError:
                balancer.down.add(replica)  # refused: out of the turn, and the request goes to the next one
                continue
            except httpx.TransportError as error:
                return Response(f"bad gateway: {type(error).__name__}", 502)
            balancer.sent[replica] = balancer.sent.get(replica, 0) + 1
            return StreamingResponse(
                _relay(answer),
                answer.status_code,
                headers=_kept(answer.headers),
                background=BackgroundTask(answer.aclose),
            )
        return Response("no replica is up", 503)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    methods = ["GET", "POST", "DELETE", "PUT", "PATCH"]
    return Starlette(routes=[Route("/{path:path}", forward, methods=methods)], lifespan=lifespan)


def _kept(headers: httpx.Headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}


async def _relay(answer: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    except httpx.TransportError:
        return  # the replica died mid-answer: the client sees the answer cut short


@contextmanager
def round_robin(replicas: list[str]) -> Iterator[tuple[str, Balancer]]:
    """The balancer over `replicas` (base URLs), served in a thread on a free port: its base URL and its state."""
    balancer = Balancer(replicas)
    with serve(balancer_app(balancer)) as url:
        yield url, balancer


if __name__ == "__main__":
    port, *urls = sys.argv[1:]
    uvicorn.run(balancer_app(Balancer(urls)), host="127.0.0.1", port=int(port), log_level="warning")
