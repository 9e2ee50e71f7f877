"""Replicas behind a round-robin load balancer hold each client to one rate between them, counted in Redis."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.processes import http_server
from tests.support.redis_server import redis_server

pytestmark = pytest.mark.anyio
INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}  # fmt: skip
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
# 6 a minute: a burst of 5, then one every 10 s, so the burst cannot refill while the test runs.
SLOW = {"SOPHIA_HTTP__RATE_PER_MINUTE": "6", "SOPHIA_HTTP__STATELESS": "true"}


async def statuses_round_robin(bases: list[str], requests: int) -> list[int]:
    """What `requests` initialize requests of one client get, sent to the replicas in turn."""
    async with httpx.AsyncClient(timeout=30) as http:
        return [
            (await http.post(f"{bases[i % len(bases)]}/mcp", json=INITIALIZE, headers=ACCEPT)).status_code
            for i in range(requests)
        ]


async def test_a_client_cannot_multiply_its_rate_by_spreading_requests_over_replicas(
    data_dir: Path, tmp_path: Path, redis_url: str
) -> None:
    shared = SLOW | {"SOPHIA_REDIS__URL": redis_url}
    with http_server(data_dir, "http", **shared) as one, http_server(tmp_path / "two", "http", **shared) as two:
        codes = await statuses_round_robin([one, two], 12)
    assert codes[:5] == [200] * 5 and codes.count(200) == 5 and set(codes[5:]) == {429}


async def test_without_redis_each_replica_counts_alone(data_dir: Path, tmp_path: Path) -> None:
    # The other side of the test above: what a shared count prevents.
    with http_server(data_dir, "http", **SLOW) as one, http_server(tmp_path / "two", "http", **SLOW) as two:
        codes = await statuses_round_robin([one, two], 12)
    assert codes.count(200) == 10


async def test_redis_going_away_leaves_each_replica_limiting_its_clients(data_dir: Path, tmp_path: Path) -> None:
    output: list[str] = []
    with redis_server(tmp_path / "redis") as url:
        server = http_server(data_dir, "http", output=output, **SLOW, SOPHIA_REDIS__URL=url)
        base = server.__enter__()
    try:  # Redis has stopped: the replica still answers, and still holds the client to its rate
        codes = await statuses_round_robin([base], 8)
    finally:
        server.__exit__(None, None, None)
    assert codes[:5] == [200] * 5 and set(codes[5:]) == {429}
    assert any("each replica counts its clients' rate alone" in line for line in output)
