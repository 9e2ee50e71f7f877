"""The one resilient HTTP layer every httpx-based adapter shares.

Per service: a base URL and auth from settings, timeouts, a request rate (a sliding window) and a concurrency
bound, bounded retries with exponential backoff and jitter on 429, 5xx, timeouts, dropped connections and
unparseable bodies, honouring `Retry-After`; a typed error when the retries run out. Secrets never reach a
log line or an error message.
"""

from __future__ import annotations

import base64
import logging
import math
import re
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from email.utils import parsedate_to_datetime
from typing import Any

import anyio
import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from sophia_mcp.adapters.live_clients import LIVE_CLIENTS
from sophia_mcp.domain.times import utcnow
from sophia_mcp.errors import (
    ConfigurationError,
    CredentialsRefused,
    InvalidInput,
    RateLimited,
    ServiceUnavailable,
    of_service,
)
from sophia_mcp.settings import Integration

log = logging.getLogger(__name__)

REDACTED = "***"

# Credentials by their shape, whosever they are: Slack and Linear tokens, and what follows Bearer or Basic.
CREDENTIAL_SHAPES = re.compile(r"\b(?:xox[a-z]|xapp|lin_api|lin_oauth)[-_][\w-]{6,}|(?<=Bearer )[\w.~+/=-]{8,}|"
                               r"(?<=Basic )[\w+/=]{8,}", re.IGNORECASE)  # fmt: skip


class Redactor:
    """Replaces every configured secret (and its Basic-auth and Bearer forms), and anything shaped like a
    credential, with *** in text: every error text and log line about a service goes through one of these."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = {s for s in secrets if s and len(s) >= 4}
        forms = set(values)
        for value in values:
            forms.add(base64.b64encode(value.encode()).decode())
        pairs = [f"{a}:{b}" for a in values for b in values if a != b]
        forms.update(base64.b64encode(pair.encode()).decode() for pair in pairs)
        self._forms = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str, limit: int | None = None) -> str:
        """`text` without secrets, cut to `limit` characters (after redacting, so no secret is cut in half)."""
        for form in self._forms:
            text = text.replace(form, REDACTED)
        text = CREDENTIAL_SHAPES.sub(REDACTED, text)
        return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


class RedactingFilter(logging.Filter):
    """Redacts a logger's records before any handler sees them (for a library's own logging)."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redact(record.getMessage()), None
        return True


class RetryableResponse(Exception):
    """An answer worth asking again for: 429, a 5xx, or a body that is not the JSON promised."""

    def __init__(self, response: httpx.Response, reason: str, wait_s: float | None = None) -> None:
        super().__init__(reason)
        self.response = response
        self.retry_after = retry_after(response) if wait_s is None else wait_s
        # A service may say "rate limited" with another status (Linear: 400 and a RATELIMITED error code).
        self.rate_limited = response.status_code == 429 or wait_s is not None


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the service asked us to wait, from `Retry-After` (seconds or an HTTP date)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, (parsedate_to_datetime(value) - utcnow()).total_seconds())
        except (TypeError, ValueError):
            return None


class SlidingWindow:
    """At most `limit` requests in any `window_s`, as a service counts them on arrival: each of `limit` turns is
    taken for one request and free again `window_s` after that request's answer began to come back. A request
    arrives after its turn was taken and before its answer begins, so two requests on one turn arrive at least
    `window_s` apart, however long each was on the way, and `limit` + 1 never fit in one window.

    Spacing starts 1/rate apart does not: a request that arrives late and one that arrives early land in the
    same window with the ones between them."""

    def __init__(self, limit: int, window_s: float = 1.0) -> None:
        self.limit, self.window_s = limit, window_s
        self._turns = anyio.Semaphore(limit)
        self._free_at: deque[float] = deque([-math.inf] * limit)  # when each free turn may be taken, oldest first
        self.waited_s = 0.0  # how long requests have waited for a turn, all told

    @classmethod
    def per_second(cls, rate: float) -> SlidingWindow:
        """The window for `rate` requests a second: whole requests in one second, or one every 1/rate seconds."""
        return cls(math.floor(rate), 1.0) if rate >= 1 else cls(1, 1 / rate)

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for a turn; the request is sent inside the block."""
        async with self._turns:
            free_at = self._free_at.popleft()
            self.waited_s += max(0.0, free_at - anyio.current_time())
            try:
                await anyio.sleep_until(free_at)
            except BaseException:
                self._free_at.appendleft(free_at)  # cancelled before sending: the turn is as free as it was
                raise
            try:
                yield
            finally:
                self._free_at.append(anyio.current_time() + self.window_s)


TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError, RetryableResponse)


class ServiceClient:
    """An httpx client for one service, configured once from its settings section and passed to adapters."""

    def __init__(
        self,
        service: str,
        settings: Integration,
        *,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not settings.base_url:
            raise ConfigurationError(f"No base URL is set for {service}")
        self.service = service
        self.settings = settings
        self.redact = Redactor(secrets)
        self.client = httpx.AsyncClient(
            base_url=settings.base_url,
            auth=auth,
            headers=dict(headers or {}),
            timeout=settings.timeout_s,
            transport=transport,
            limits=httpx.Limits(max_connections=settings.max_concurrency),
        )
        self.window = SlidingWindow.per_second(settings.rate_per_second)
        # A limiter, not a semaphore: the healing watch may lower (and restore) how many requests run at once.
        self.max_concurrency = settings.max_concurrency
        self.slots = anyio.CapacityLimiter(settings.max_concurrency)
        LIVE_CLIENTS.add(self)
        self._backoff = wait_exponential_jitter(multiplier=settings.retry_base_s, max=settings.retry_max_s)

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetryableResponse) and error.retry_after is not None:
            return min(error.retry_after, self.settings.retry_max_s)
        return float(self._backoff(state))

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s: attempt %d failed (%s); retrying in %.2fs",
            self.service,
            state.attempt_number,
            self.redact(_describe(error)),
            wait,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        ok: Iterable[int] = (),
    ) -> tuple[httpx.Response, Any]:
        """Send with pacing and retries; return the response and its JSON body (None when it has none).

        4xx answers other than 429 are returned as they are when listed in `ok` (a 404 an adapter reads as
        "not found"); otherwise they raise: 401/403 a configuration error, the rest an input error.
        """
        accepted = set(ok)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type(TRANSIENT),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    async with self.slots:
                        request = self.client.build_request(method, path, json=json, params=params)
                        # The service counted the request before it began its answer: the turn is free again a
                        # window after the answer's headers, however long its body then takes to arrive.
                        async with self.window.turn():
                            response = await self.client.send(request, stream=True)
                        try:
                            await response.aread()
                        finally:
                            await response.aclose()
                    return response, self._check(response, accepted)
        except RetryableResponse as exc:
            if exc.rate_limited:
                raise of_service(
                    RateLimited(
                        f"{self.service} kept answering that it is rate limited after "
                        f"{self.settings.max_retries} retries; "
                        "try again later",
                        retry_after=exc.retry_after,
                    ),
                    self.service,
                ) from None
            raise of_service(
                ServiceUnavailable(
                    f"{self.service} is not answering properly ({self.redact(str(exc))}) after "
                    f"{self.settings.max_retries} retries; try again later"
                ),
                self.service,
            ) from None
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise of_service(
                ServiceUnavailable(
                    f"{self.service} could not be reached ({self.redact(_describe(exc))}) after "
                    f"{self.settings.max_retries} retries; try again later"
                ),
                self.service,
            ) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _check(self, response: httpx.Response, accepted: set[int]) -> Any:
        status = response.status_code
        if status == 429 or status >= 500:
            raise RetryableResponse(response, f"HTTP {status}")
        if status >= 400 and status not in accepted:
            detail = self.redact(response.text, 300)
            if status in (401, 403):
                raise of_service(
                    CredentialsRefused(
                        f"{self.service} refused the credentials (HTTP {status}); check its settings. {detail}"
                    ),
                    self.service,
                )
            raise of_service(
                InvalidInput(f"{self.service} rejected the request (HTTP {status}): {detail}"), self.service
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise RetryableResponse(response, f"HTTP {status} with a body that is not JSON") from None

    async def aclose(self) -> None:
        await self.client.aclose()


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "no error"
    if isinstance(error, RetryableResponse):
        return str(error)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
