"""The run ledger: every workflow run and each of its steps (status, timings, errors), kept in the store."""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
from collections.abc import Sequence
from typing import Any

from sophia_mcp.domain.runs import RunRecord, RunStatus, StepRecord, WorkflowMetrics
from sophia_mcp.domain.times import iso, parse_iso, utcnow
from sophia_mcp.domain.writing import UnusableAnswer
from sophia_mcp.errors import (
    CredentialsRefused,
    DiskFull,
    InvalidInput,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    SophiaError,
)
from sophia_mcp.store.database import Store, dumps, file_failure

log = logging.getLogger(__name__)


def describe_error(exc: BaseException) -> str:
    """What a run record says about a failure: our own messages verbatim, anything else by type only."""
    if isinstance(exc, SophiaError):
        return str(exc)
    if isinstance(failure := file_failure(exc), DiskFull):  # a file other than the store's: a dashboard
        return str(failure)
    return f"internal error ({type(exc).__name__})"


def describe_cause(exc: BaseException) -> tuple[str, str | None]:
    """Why a step failed, as the healing watch groups it, by the error's type (never its text), and the external
    service that failed when the error names one: credentials, rate_limited, unavailable, bad_input or bug."""
    service = exc.service if isinstance(exc, SophiaError | UnusableAnswer) else None
    if isinstance(exc, CredentialsRefused):
        return "credentials", service
    if isinstance(exc, RateLimited):
        return "rate_limited", service
    if isinstance(exc, ServiceUnavailable):  # down, slow (timeouts) or a full disk
        return "unavailable", service
    if isinstance(exc, InvalidInput | NotFound):
        return "bad_input", service
    return "bug", service


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _percentile(ordered: list[float], p: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))], 1)


class RunLedger:
    """The `workflow_runs` and `run_steps` tables."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _begin(self, run_id: str, workflow: str, subject: str | None, inputs: Any) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                """
                INSERT INTO workflow_runs (id, workflow, subject, input, status, pid, host, started_at)
                VALUES (?, ?, ?, ?, 'running', ?, ?, ?)
                """,
                (run_id, workflow, subject, dumps(inputs), os.getpid(), socket.gethostname(), iso(utcnow())),
            )

    async def begin(self, run_id: str, workflow: str, subject: str | None, inputs: Any) -> None:
        """Record a run as running, by this process."""
        await self.store.run(self._begin, run_id, workflow, subject, inputs)

    def _step_started(self, run_id: str, seq: int, name: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO run_steps (run_id, seq, name, status, started_at) VALUES (?, ?, ?, 'running', ?)",
                (run_id, seq, name, iso(utcnow())),
            )

    async def step_started(self, run_id: str, seq: int, name: str) -> None:
        """Record a step as running."""
        await self.store.run(self._step_started, run_id, seq, name)

    def _step_ended(
        self,
        run_id: str,
        seq: int,
        status: str,
        detail: Any,
        error: str | None,
        seconds: float,
        cause: tuple[str, str | None] | None,
    ) -> None:
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
                    run_id,
                    seq,
                ),
            )
            # Every outcome in order, for the healing watch's window; a failure with its cause (None: succeeded).
            why, service = cause if status == "failed" and cause is not None else (None, None)
            conn.execute(
                """
                INSERT INTO step_outcomes (run_id, seq, workflow, step, cause, service, error, at)
                SELECT s.run_id, s.seq, r.workflow, s.name, ?, ?, ?, ? FROM run_steps s
                JOIN workflow_runs r ON r.id = s.run_id WHERE s.run_id = ? AND s.seq = ?
                """,
                (why or ("bug" if status == "failed" else None), service, error, iso(utcnow()), run_id, seq),
            )

    async def step_ended(
        self,
        run_id: str,
        seq: int,
        status: str,
        detail: Any,
        error: str | None,
        seconds: float,
        cause: tuple[str, str | None] | None = None,
    ) -> None:
        """Record a step's end: its status, what it produced (`detail`) or its error, how long it took, and for a
        failure its cause and failing service (`describe_cause`)."""
        await self.store.run(self._step_ended, run_id, seq, status, detail, error, seconds, cause)

    def _step_skipped(self, run_id: str, seq: int, name: str, reason: str) -> None:
        now = iso(utcnow())
        with self.store.transaction() as conn:
            conn.execute(
                """
                INSERT INTO run_steps (run_id, seq, name, status, detail, started_at, finished_at, duration_ms)
                VALUES (?, ?, ?, 'skipped', ?, ?, ?, 0)
                """,
                (run_id, seq, name, dumps(reason), now, now),
            )

    async def step_skipped(self, run_id: str, seq: int, name: str, reason: str) -> None:
        """Record a step that was deliberately not taken, and why."""
        await self.store.run(self._step_skipped, run_id, seq, name, reason)

    async def finish(
        self,
        run_id: str,
        status: RunStatus,
        output: Any,
        error: str | None,
        failures: Sequence[tuple[int, str, float]] = (),
    ) -> None:
        """Record the run's end, with its failed steps not written yet (seq, error, seconds), in one transaction.
        A store that cannot take it now (a full disk) owes it: the next write that succeeds records it, so no run
        is left `running`."""
        now = iso(utcnow())
        written = None if output is None else dumps(output)
        failed = list(failures)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE workflow_runs SET status = ?, output = ?, error = ?, finished_at = ? WHERE id = ?",
                (status, written, error, now, run_id),
            )
            conn.executemany(
                "UPDATE run_steps SET status = 'failed', error = ?, finished_at = ?, duration_ms = ? "
                "WHERE run_id = ? AND seq = ?",
                [(message, now, round(seconds * 1000, 3), run_id, seq) for seq, message, seconds in failed],
            )

        def record() -> None:
            with self.store.transaction() as conn:
                write(conn)

        try:
            await self.store.run(record)
            return
        except DiskFull:
            if self.store.release_reserve():  # the space set aside is for this: a run never left `running`
                try:
                    await self.store.run(record)
                    return
                except DiskFull:
                    pass
            why = "its disk is full"
        except ServiceUnavailable:
            if self.store.dialect != "postgresql":
                raise  # a damaged file: no later write would take it either
            why = "its database cannot be reached"
        self.store.owe(write)
        log.warning("Run %s (%s) is recorded when the store can take writes again: %s", run_id, status, why)

    def reap_interrupted(self) -> int:
        """Mark runs whose process died mid-run (killed, crashed) as failed, saying so, with their open steps, and
        put back what a dead process was sending from the outbox; returns how many runs. Re-running the workflow
        finishes the work: its side effects are keyed, so none done is repeated. Blocking: called once, as the
        services start."""
        store = self.store
        here = socket.gethostname()  # another host's process ids say nothing here (a store shared by many hosts)
        rows = store.query(
            "SELECT id, pid FROM workflow_runs WHERE status = 'running' AND pid IS NOT NULL AND coalesce(host, ?) = ?",
            (here, here),
        )
        dead = [(r["id"], r["pid"]) for r in rows if r["pid"] != os.getpid() and not process_alive(r["pid"])]
        claimers = [r[0] for r in store.query(
            "SELECT DISTINCT claimed_by FROM outbox WHERE status = 'sending' AND coalesce(claimed_host, ?) = ?",
            (here, here),
        )]  # fmt: skip
        gone = [pid for pid in claimers if pid is not None and pid != os.getpid() and not process_alive(pid)]
        if not dead and not gone:
            return 0
        now = iso(utcnow())
        with store.transaction() as conn:
            # What a dead process was sending goes back to pending: the next delivery sends it (a receiver that
            # took it already is asked first, or is idempotent by the entry's key).
            conn.executemany(
                "UPDATE outbox SET status = 'pending', claimed_at = NULL "
                "WHERE status = 'sending' AND claimed_by = ? AND coalesce(claimed_host, ?) = ?",
                [(pid, here, here) for pid in gone],
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

    def _get(self, run_id: str) -> RunRecord | None:
        row = self.store.query_one("SELECT * FROM workflow_runs WHERE id = ?", (run_id,))
        if row is None:
            return None
        steps = self.store.query("SELECT * FROM run_steps WHERE run_id = ? ORDER BY seq", (run_id,))
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

    async def get(self, run_id: str) -> RunRecord | None:
        """A run with its steps, or None when there is no such run."""
        return await self.store.run(self._get, run_id)

    def _metrics(self) -> list[WorkflowMetrics]:
        counts = self.store.query(
            """
            SELECT workflow, count(*) AS runs, sum(CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END) AS ok,
                sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed,
                sum(CASE WHEN status = 'running' THEN 1 ELSE 0 END) AS running
            FROM workflow_runs GROUP BY workflow ORDER BY workflow
            """
        )
        out = []
        for row in counts:
            # Durations from the ISO times in Python: the same on either engine (no julianday on PostgreSQL).
            durations = sorted(
                (parse_iso(r[1]) - parse_iso(r[0])).total_seconds() * 1000
                for r in self.store.query(
                    """
                    SELECT started_at, finished_at FROM workflow_runs
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

    async def metrics(self) -> list[WorkflowMetrics]:
        """Per workflow: runs, success and error rates, and p50/p95 latency of its recent finished runs."""
        return await self.store.run(self._metrics)
