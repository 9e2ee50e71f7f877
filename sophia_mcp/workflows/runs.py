"""The run context a workflow runs in: `start_run` records the run, `Run.step` each unit of work in it."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sophia_mcp.app.telemetry import span
from sophia_mcp.errors import DiskFull
from sophia_mcp.store.runs import RunLedger, describe_cause, describe_error

T = TypeVar("T")

# How a workflow tells its caller how far it has got: (done, total, message); a tool passes its MCP client's.


async def no_progress(done: float, total: float, message: str) -> None:
    """Progress nobody asked to hear."""


class Run:
    """One run of a workflow; `step` wraps each unit of work so the record shows where time and errors went."""

    def __init__(self, ledger: RunLedger, run_id: str) -> None:
        self.ledger = ledger
        self.id = run_id
        self.output: Any = None
        self._seq = 0
        # Failed steps not written yet, (seq, error, seconds): the run's end writes them with it.
        self.unwritten_failures: list[tuple[int, str, float]] = []

    async def step(
        self,
        name: str,
        work: Callable[[], Awaitable[T]],
        describe: Callable[[T], Any] | None = None,
    ) -> T:
        """Run `work` as the next step, recording its start, its end and what `describe` says of its result."""
        self._seq += 1
        seq = self._seq
        started = time.perf_counter()
        await self.ledger.step_started(self.id, seq, name)
        with span(f"step {name}", run_id=self.id, step=seq):
            try:
                result = await work()
            except BaseException as exc:
                failure = (seq, describe_error(exc), time.perf_counter() - started)
                if isinstance(exc, DiskFull):
                    # A full disk may take one more small write: keep it for the run's end, which records both.
                    self.unwritten_failures.append(failure)
                    raise
                try:
                    await self.ledger.step_ended(
                        self.id, seq, "failed", None, failure[1], failure[2], describe_cause(exc)
                    )
                except DiskFull:
                    self.unwritten_failures.append(failure)
                raise
        detail = describe(result) if describe else None
        await self.ledger.step_ended(self.id, seq, "succeeded", detail, None, time.perf_counter() - started)
        return result

    async def skip(self, name: str, reason: str) -> None:
        """Record a step that was deliberately not taken, and why."""
        self._seq += 1
        await self.ledger.step_skipped(self.id, self._seq, name, reason)


@asynccontextmanager
async def start_run(ledger: RunLedger, workflow: str, subject: str | None, inputs: Any) -> AsyncIterator[Run]:
    """Record a run from start to end; a failure marks the run failed with its reason and is re-raised."""
    run = Run(ledger, uuid.uuid4().hex)
    await ledger.begin(run.id, workflow, subject, inputs)
    with span(f"workflow {workflow}", run_id=run.id, workflow=workflow, subject=subject):
        try:
            yield run
        except BaseException as exc:
            await ledger.finish(run.id, "failed", run.output, describe_error(exc), run.unwritten_failures)
            raise
    await ledger.finish(run.id, "succeeded", run.output, None, run.unwritten_failures)
