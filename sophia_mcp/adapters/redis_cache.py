"""The `Cache` port on Redis (redis-py's asyncio client), for replicas that should share cached answers.

Keys are prefixed `sophia:`; values expire with SET's PX. Redis being unreachable is a cache miss and a
warning in the log, never a failed answer. This module is imported only when Redis is configured.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from sophia_mcp.errors import ServiceUnavailable

log = logging.getLogger(__name__)
PREFIX = "sophia:"


class RedisCache:
    name = "redis"
    optional = True  # unreachable, it is a cache miss: a warning for `doctor`, not a failure

    def __init__(self, url: str, client: Any = None) -> None:
        if client is None:
            client = Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0, decode_responses=True)
        self.client = client

    async def aclose(self) -> None:
        await self.client.aclose()

    async def check(self) -> str:
        """PING, for `doctor`. Redis down is a warning there: answers are then cached in each process."""
        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            raise ServiceUnavailable(
                f"Redis cannot be reached ({type(exc).__name__}); until it can, each process caches its own answers "
                "and counts its HTTP clients' rate alone"
            ) from None
        return "Redis answered PING"

    async def get(self, key: str) -> str | None:
        try:
            value = await self.client.get(PREFIX + key)
        except (RedisError, OSError) as exc:
            log.warning("Redis cache unavailable (%s); answering without it", type(exc).__name__)
            return None
        return value if isinstance(value, str) or value is None else value.decode()

    async def put(self, key: str, value: str, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        try:
            await self.client.set(PREFIX + key, value, px=max(1, int(ttl_s * 1000)))
        except (RedisError, OSError) as exc:
            log.warning("Redis cache unavailable (%s); the answer is not kept", type(exc).__name__)
