"""Workflow run records: every run and each of its steps (status, timings, errors) kept in the store."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import Field

from sophia_mcp.app.telemetry import span
from sophia_mcp.domain.model import Model
from sophia_mcp.domain.times import iso, parse_iso, utcnow
from sophia_mcp.errors import DiskFull, SophiaError
from sophia_mcp.store.database import Store, dumps, file_failure

T = TypeVar("T")

log = logging.getLogger(__name__)

RunStatus = Literal["running", "succeeded", "failed"]
# How a workflow tells its caller how far it has got: (done, total, message); a tool passes its MCP client's.


async def no_progress(done: float, total: float, message: str) -> None:
    """Progress nobody asked to hear."""


def describe_error(exc: BaseException) -> str:
    """What a run record says about a failure: our own messages verbatim, anything else by type only."""
    if isinstance(exc, SophiaError):
        return str(exc)
    if isinstance(failure := file_failure(exc), DiskFull):  # a file other than the store's: a dashboard
        return str(failure)
    return f"internal error ({type(exc).__name__})"


class StepRecord(Model):
    seq: int
    name: str
    status: str
    detail: Any = None
    error: str | None = None
    started_at: datetime
    duration_ms: float | None = None


class RunRecord(Model):
    id: str
    workflow: str
    subject: str | None
    status: RunStatus
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    steps: list[StepRecord]


class Run:
    """One run of a workflow; `step` wraps each unit of work so the record shows where time and errors went."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
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
        self._seq += 1
        seq = self._seq
        started = time.perf_counter()
        await self.store.run(self._write_step_start, seq, name)
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
                    await self.store.run(self._write_step_end, failure[0], "failed", None, failure[1], failure[2])
                except DiskFull:
                    self.unwritten_failures.append(failure)
                raise
        detail = describe(result) if describe else None
        await self.store.run(self._write_step_end, seq, "succeeded", detail, None, time.perf_counter() - started)
        return result

    async def skip(self, name: str, reason: str) -> None:
        """Record a step that was deliberately not taken, and why."""
        self._seq += 1
        await self.store.run(self._write_skip, self._seq, name, reason)

    def _write_step_start(self, seq: int, name: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO run_steps (run_id, seq, name, status, started_at) VALUES (?, ?, ?, 'running', ?)",
                (self.id, seq, name, iso(utcnow())),
            )

    def _write_step_end(self, seq: int, status: str, detail: Any, error: str | None, seconds: float) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                """
                UPDATE run_steps SET status = ?, detail = ?, error = ?, finished_at = ?, duration_ms = ?
                WHERE run_id = ? AND seq = ?
                """,
                (
                    status,
                    None if detail is None else dumps(detail),
                    error,
                    iso(utcnow()),
                    round(seconds * 1000, 3),
                    self.id,
                    seq,
                ),
            )

    def _write_skip(self, seq: int, name: str, reason: str) -> None:
        now = iso(utcnow())
        with self.store.transaction() as conn:
            conn.execute(
                """
                INSERT INTO run_steps (run_id, seq, name, status, detail, started_at, finished_at, duration_ms)
                VALUES (?, ?, ?, 'skipped', ?, ?, ?, 0)
                """,
                (self.id, seq, name, dumps(reason), now, now),
            )


@asynccontextmanager
async def start_run(store: Store, workflow: str, subject: str | None, inputs: Any) -> AsyncIterator[Run]:
    """Record a run from start to end; a failure marks the run failed with its reason and is re-raised."""
    run = Run(store, uuid.uuid4().hex)

    def begin() -> None:
        with store.transaction() as conn:
            conn.execute(
                """
                INSERT INTO workflow_runs (id, workflow, subject, input, status, pid, started_at)
                VALUES (?, ?, ?, ?, 'running', ?, ?)
                """,
                (run.id, workflow, subject, dumps(inputs), os.getpid(), iso(utcnow())),
            )

    await store.run(begin)
    with span(f"workflow {workflow}", run_id=run.id, workflow=workflow, subject=subject):
        try:
            yield run
        except BaseException as exc:
            await _end(run, "failed", describe_error(exc))
            raise
    await _end(run, "succeeded", None)


async def _end(run: Run, status: RunStatus, error: str | None) -> None:
    """Record the run's end, with its failed steps not written yet, in one transaction. A store that cannot take
    it now (a full disk) owes it: the next write that succeeds records it, so no run is left `running`."""
    now = iso(utcnow())
    output = None if run.output is None else dumps(run.output)
    failures = list(run.unwritten_failures)

    def write(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE workflow_runs SET status = ?, output = ?, error = ?, finished_at = ? WHERE id = ?",
            (status, output, error, now, run.id),
        )
        conn.executemany(
            "UPDATE run_steps SET status = 'failed', error = ?, finished_at = ?, duration_ms = ? "
            "WHERE run_id = ? AND seq = ?",
            [(message, now, round(seconds * 1000, 3), run.id, seq) for seq, message, seconds in failures],
        )

    def record() -> None:
        with run.store.transaction() as conn:
            write(conn)

    try:
        await run.store.run(record)
        return
    except DiskFull:
        if run.store.release_reserve():  # the space set aside is for this: a run never left `running`
            try:
                await run.store.run(record)
                return
            except DiskFull:
                pass
    run.store.owe(write)
    log.warning("Run %s (%s) is recorded when the store can take writes again: its disk is full", run.id, status)


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def reap_interrupted(store: Store) -> int:
    """Mark runs whose process died mid-run (killed, crashed) as failed, saying so, with their open steps.
    Re-running the workflow finishes the work: its side effects are keyed, so none done is repeated."""
    rows = store.query("SELECT id, pid FROM workflow_runs WHERE status = 'running' AND pid IS NOT NULL")
    dead = [(r["id"], r["pid"]) for r in rows if r["pid"] != os.getpid() and not process_alive(r["pid"])]
    claimers = [r[0] for r in store.query("SELECT DISTINCT claimed_by FROM outbox WHERE status = 'sending'")]
    gone = [pid for pid in claimers if pid is not None and pid != os.getpid() and not process_alive(pid)]
    if not dead and not gone:
        return 0
    now = iso(utcnow())
    with store.transaction() as conn:
        # What a dead process was sending goes back to pending: the next delivery sends it (a receiver that
        # took it already is asked first, or is idempotent by the entry's key).
        conn.executemany(
            "UPDATE outbox SET status = 'pending', claimed_at = NULL WHERE status = 'sending' AND claimed_by = ?",
            [(pid,) for pid in gone],
        )
        for run_id, pid in dead:
            reason = f"interrupted: its process ({pid}) ended mid-run; run it again to finish the rest"
            conn.execute(
                "UPDATE workflow_runs SET status = 'failed', error = ?, finished_at = ? "
                "WHERE id = ? AND status = 'running'",
                (reason, now, run_id),
            )
            conn.execute(
                "UPDATE run_steps SET status = 'failed', error = 'interrupted', finished_at = ? "
                "WHERE run_id = ? AND status = 'running'",
                (now, run_id),
            )
    return len(dead)


def get_run(store: Store, run_id: str) -> RunRecord | None:
    row = store.query_one("SELECT * FROM workflow_runs WHERE id = ?", (run_id,))
    if row is None:
        return None
    steps = store.query("SELECT * FROM run_steps WHERE run_id = ? ORDER BY seq", (run_id,))
    return RunRecord(
        id=row["id"],
        workflow=row["workflow"],
        subject=row["subject"],
        status=row["status"],
        error=row["error"],
        started_at=parse_iso(row["started_at"]),
        finished_at=parse_iso(row["finished_at"]) if row["finished_at"] else None,
        steps=[
            StepRecord(
                seq=s["seq"],
                name=s["name"],
                status=s["status"],
                detail=None if s["detail"] is None else json.loads(s["detail"]),
                error=s["error"],
                started_at=parse_iso(s["started_at"]),
                duration_ms=s["duration_ms"],
            )
            for s in steps
        ],
    )


class WorkflowMetrics(Model):
    workflow: str
    runs: int
    succeeded: int
    failed: int
    running: int
    success_rate: float | None = Field(description="Succeeded of finished runs; null before any finished.")
    error_rate: float | None
    p50_ms: float | None = Field(description="Median duration of finished runs (the last 1,000).")
    p95_ms: float | None


def _percentile(ordered: list[float], p: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))], 1)


def workflow_metrics(store: Store) -> list[WorkflowMetrics]:
    """Per workflow: runs, success and error rates, and p50/p95 latency of its recent finished runs."""
    counts = store.query(
        """
        SELECT workflow, count(*) AS runs, sum(status = 'succeeded') AS ok, sum(status = 'failed') AS failed,
            sum(status = 'running') AS running
        FROM workflow_runs GROUP BY workflow ORDER BY workflow
        """
    )
    out = []
    for row in counts:
        durations = sorted(
            r[0]
            for r in store.query(
                """
                SELECT (julianday(finished_at) - julianday(started_at)) * 86400000 FROM workflow_runs
                WHERE workflow = ? AND finished_at IS NOT NULL ORDER BY started_at DESC LIMIT 1000
                """,
                (row["workflow"],),
            )
        )
        finished = row["ok"] + row["failed"]
        out.append(
            WorkflowMetrics(
                workflow=row["workflow"], runs=row["runs"], succeeded=row["ok"], failed=row["failed"],
                running=row["running"], success_rate=round(row["ok"] / finished, 4) if finished else None,
                error_rate=round(row["failed"] / finished, 4) if finished else None,
                p50_ms=_percentile(durations, 50), p95_ms=_percentile(durations, 95),
            )
        )  # fmt: skip
    return out
