"""The `Cache` port on Redis (redis-py's asyncio client), for replicas that should share cached answers.

Keys are prefixed `sophia:`; values expire with SET's PX. Redis being unreachable is a cache miss and a
warning in the log, never a failed answer. redis-py is imported only when Redis is configured.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)
PREFIX = "sophia:"


class RedisCache:
    name = "redis"

    def __init__(self, url: str, client: Any = None) -> None:
        if client is None:
            from redis.asyncio import Redis

            client = Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0, decode_responses=True)
        self.client = client

    async def aclose(self) -> None:
        await self.client.aclose()

    async def check(self) -> str:
        await self.client.ping()
        return "Redis answered PING"

    async def get(self, key: str) -> str | None:
        from redis.exceptions import RedisError

        try:
            value = await self.client.get(PREFIX + key)
        except (RedisError, OSError) as exc:
            log.warning("Redis cache unavailable (%s); answering without it", type(exc).__name__)
            return None
        return value if isinstance(value, str) or value is None else value.decode()

    async def put(self, key: str, value: str, ttl_s: float) -> None:
        from redis.exceptions import RedisError

        if ttl_s <= 0:
            return
        try:
            await self.client.set(PREFIX + key, value, px=max(1, int(ttl_s * 1000)))
        except (RedisError, OSError) as exc:
            log.warning("Redis cache unavailable (%s); the answer is not kept", type(exc).__name__)
