"""The resilient HTTP layer: retries on what is transient, honours Retry-After, fails typed, leaks no secret."""

from __future__ import annotations

import logging
import time

import anyio
import httpx
import pytest

from sophia_mcp.adapters.http import ServiceClient
from sophia_mcp.errors import ConfigurationError, InvalidInput, RateLimited, ServiceUnavailable
from sophia_mcp.settings import Integration

pytestmark = pytest.mark.anyio
SECRET = "s3cr3t-token-value"


def client(answers: list[httpx.Response | Exception], **settings: object) -> tuple[ServiceClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0) if answers else httpx.Response(200, json={"ok": True})
        if isinstance(answer, Exception):
            raise answer
        return answer

    config = Integration(
        base_url="http://127.0.0.1:9", rate_per_second=1000, retry_base_s=0.001, retry_max_s=0.5, **settings
    )
    http = ServiceClient(
        "Svc",
        config,
        headers={"Authorization": f"Bearer {SECRET}"},
        secrets=[SECRET],
        transport=httpx.MockTransport(handle),
    )
    return http, seen


async def test_retries_transient_failures_then_succeeds() -> None:
    http, seen = client(
        [
            httpx.Response(503),
            httpx.ConnectError("refused"),
            httpx.ReadTimeout("slow"),
            httpx.Response(200, text="not json"),
            httpx.Response(200, json={"value": 42}),
        ]
    )
    _, body = await http.request("GET", "/thing")
    assert body == {"value": 42} and len(seen) == 5


async def test_honours_retry_after() -> None:
    http, seen = client([httpx.Response(429, headers={"Retry-After": "0.3"}), httpx.Response(200, json={})])
    started = time.perf_counter()
    await http.request("GET", "/x")
    assert time.perf_counter() - started >= 0.3
    assert len(seen) == 2


async def test_a_burst_never_puts_more_than_the_rate_in_any_one_second_window() -> None:
    # A service counts requests as they arrive. The first is slow on the way: starts spaced 1/rate apart then put
    # it in one second with the three after it, and a sliding-window limit answers 429.
    arrivals: list[float] = []
    on_the_way = [0.6]

    async def handle(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(on_the_way.pop() if on_the_way else 0)
        arrivals.append(anyio.current_time())
        return httpx.Response(200, json={})

    config = Integration(base_url="http://127.0.0.1:9", rate_per_second=3, max_concurrency=3, max_retries=0)
    http = ServiceClient("Svc", config, transport=httpx.MockTransport(handle))
    async with anyio.create_task_group() as group:
        for _ in range(9):
            group.start_soon(http.request, "GET", "/x")
    assert len(arrivals) == 9
    assert max(sum(first <= t < first + 1.0 for t in arrivals) for first in arrivals) == 3


async def test_rate_limited_after_the_retry_budget() -> None:
    http, seen = client([httpx.Response(429, headers={"Retry-After": "0"})] * 10, max_retries=3)
    with pytest.raises(RateLimited, match="kept answering that it is rate limited") as caught:
        await http.request("GET", "/x")
    assert len(seen) == 4 and caught.value.retry_after == 0


async def test_unavailable_after_the_retry_budget() -> None:
    http, _ = client([httpx.Response(500)] * 10, max_retries=2)
    with pytest.raises(ServiceUnavailable, match="Svc is not answering properly"):
        await http.request("GET", "/x")


async def test_client_errors_are_not_retried_and_name_the_fix() -> None:
    http, seen = client([httpx.Response(401, text=f"bad token {SECRET}")])
    with pytest.raises(ConfigurationError, match="refused the credentials") as caught:
        await http.request("GET", "/x")
    assert SECRET not in str(caught.value) and len(seen) == 1
    http, _ = client([httpx.Response(400, json={"error": "no such field"})])
    with pytest.raises(InvalidInput, match="no such field"):
        await http.request("GET", "/x")
    http, _ = client([httpx.Response(404, json={"errors": ["none"]})])
    response, body = await http.request("GET", "/x", ok={404})
    assert response.status_code == 404 and body == {"errors": ["none"]}


async def test_secrets_never_reach_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    http, _ = client([httpx.ConnectError(f"could not send Bearer {SECRET}")] * 5, max_retries=2)
    with pytest.raises(ServiceUnavailable) as caught:
        await http.request("GET", "/x")
    assert SECRET not in str(caught.value)
    assert caplog.records and all(SECRET not in r.getMessage() for r in caplog.records)
