"""Processing the inbox: a worker claims due events with a lease, hands each to its action
(`workflows.event_actions.ACTIONS`), and records what came of it.

A failed attempt is retried with doubling backoff (`SOPHIA_INBOX__RETRY_BASE_S` .. `RETRY_MAX_S`); after
`MAX_ATTEMPTS` the event is dead: kept, listed by `sophia-mcp inbox list --status dead`, and given fresh attempts by
`sophia-mcp inbox retry`. A worker that dies mid-event (a crash, SIGKILL) leaves its lease to run out, and the next
worker takes the event again; the actions are idempotent, so that does nothing twice. Several workers (processes,
hosts) may share one inbox: a claim is one transaction.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import Any

import anyio
import anyio.abc

from sophia_mcp.app.services import Services
from sophia_mcp.domain.inbox import InboxEvent
from sophia_mcp.domain.times import utcnow
from sophia_mcp.errors import SophiaError
from sophia_mcp.store.inbox import worker_name
from sophia_mcp.store.runs import describe_error
from sophia_mcp.workflows.designed import run_for_event
from sophia_mcp.workflows.event_actions import ACTIONS, Action, Ignored

log = logging.getLogger(__name__)


def retry_at(services: Services, attempts: int, now: datetime) -> datetime | None:
    """When an event that failed its `attempts`-th attempt is due again; None once it has had its last."""
    inbox = services.settings.inbox
    if attempts >= inbox.max_attempts:
        return None
    wait = min(inbox.retry_max_s, inbox.retry_base_s * 2 ** (attempts - 1))
    return now + timedelta(seconds=wait * random.uniform(0.9, 1.1))


class InboxWorker:
    """Processes the inbox's due events; `serve` until stopped, `drain` until none is due."""

    def __init__(self, services: Services, owner: str | None = None, actions: dict[str, Action] | None = None) -> None:
        self.services = services
        self.inbox = services.inbox
        self.settings = services.settings.inbox
        self.owner = owner or worker_name()
        self.actions = ACTIONS if actions is None else actions
        self._woken = anyio.Event()
        self._limit = anyio.CapacityLimiter(self.settings.concurrency)

    def wake(self) -> None:
        """Something was just kept: look now rather than at the next poll."""
        self._woken.set()

    async def process_due(self) -> int:
        """Claim one batch of due events and process it to its end; how many were claimed."""
        lease = timedelta(seconds=self.settings.lease_s)
        events = await self.inbox.claim(self.owner, self.settings.batch, lease)
        if events:
            async with anyio.create_task_group() as group:
                for event in events:
                    group.start_soon(self._process, event)
        return len(events)

    async def drain(self) -> int:
        """Process batches until none is due now; how many events were processed."""
        total = 0
        while count := await self.process_due():
            total += count
        return total

    async def _process(self, event: InboxEvent) -> None:
        async with self._limit:
            outcome: dict[str, Any] | None = None
            try:
                action = self.actions.get(event.kind)
                if action is None:
                    raise LookupError(f"no action for events of kind {event.kind!r}")
                # Within its lease: past it another worker may take the event, so this attempt counts as failed.
                with anyio.fail_after(self.settings.lease_s * 0.8):
                    outcome = await action(self.services, event)
                    # Designed workflows on this kind (issue 21) run after the built-in action, once per event.
                    outcome = {**(outcome or {}), **await run_for_event(self.services, event.kind, event.id)}
            except Ignored as why:
                await self.inbox.finish(event.id, self.owner, {"ignored": str(why)}, status="ignored")
                return
            except Exception as exc:  # recorded, retried; the worker goes on
                await self._failed(event, exc)
                return
            if not await self.inbox.finish(event.id, self.owner, outcome):
                log.warning("inbox event %d: its lease ran out before it was done; another worker takes it", event.id)

    async def _failed(self, event: InboxEvent, exc: Exception) -> None:
        if isinstance(exc, LookupError):
            error = str(exc)
        elif isinstance(exc, TimeoutError):
            error = f"took longer than {self.settings.lease_s * 0.8:.0f} s"
        else:
            error = describe_error(exc)
        again = retry_at(self.services, event.attempts, utcnow())
        # Our own errors (a service down, refused credentials) say all there is; anything else is a bug: its trace.
        log.warning(
            "inbox event %d (%s %s) failed on attempt %d: %s%s", event.id, event.source, event.kind, event.attempts,
            error, "" if again else "; giving up (dead)",
            exc_info=not isinstance(exc, SophiaError | LookupError | TimeoutError),
        )  # fmt: skip
        await self.inbox.fail(event.id, self.owner, error, again)

    async def _seconds_to_next(self) -> float:
        due = await self.inbox.next_due()
        if due is None:
            return self.settings.poll_s
        return max(0.0, min(self.settings.poll_s, (due - utcnow()).total_seconds()))

    async def serve(self, stop: anyio.Event | None = None) -> None:
        """Process events as they fall due until `stop` is set (or forever): at once when `wake` is called, else
        when the next one is due, and at least every `POLL_S` for events kept by other processes."""
        stop = stop or anyio.Event()
        while not stop.is_set():
            try:
                if await self.process_due() == self.settings.batch:
                    continue  # more may be waiting
                wait = await self._seconds_to_next()
            except Exception as exc:  # the store unreachable for a moment: say so, try again
                log.warning("inbox worker: %s", describe_error(exc), exc_info=True)
                wait = self.settings.poll_s
            if wait > 0:
                with anyio.move_on_after(wait):
                    async with anyio.create_task_group() as group:
                        group.start_soon(_cancel_once_set, stop, group)
                        await self._woken.wait()
                        group.cancel_scope.cancel()
            self._woken = anyio.Event()


async def _cancel_once_set(stop: anyio.Event, group: anyio.abc.TaskGroup) -> None:
    await stop.wait()
    group.cancel_scope.cancel()
