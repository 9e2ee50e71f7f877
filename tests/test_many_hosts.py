"""Many hosts, simulated: three replicas of the composite server over stateless Streamable HTTP, each a process
with its own data and cache dirs, sharing only one PostgreSQL database and one Redis, behind a round-robin
balancer (tests/support/round_robin.py, per request). 32 clients drive the health monitor, churn, bug reports and
alerts through it at once, and one replica is SIGKILLed midway. Every alert, issue and meeting happens exactly
once, counted where it lands (the Slack and Linear fakes, the meetings in the store), no run is left running,
and what the dead replica held is finished by the others."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
from mcp import Client

from sophia_mcp.app.backends import build_services
from sophia_mcp.demo.load import load_demo
from tests.fakes.linear import API_KEY, LinearState, linear_app
from tests.fakes.server import serve
from tests.fakes.slack import BOT_TOKEN, CHANNELS, SlackState, slack_app
from tests.support.processes import SCRIPT, env_for, http_server
from tests.support.results import structured
from tests.support.round_robin import round_robin
from tests.support.settings import make_settings

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

CLIENTS = 32
AT_RISK = 12  # the demo's first clients by id, put under the health threshold
BUGS = [f"Payments page {n} shows a 500 error when a resident pays by card" for n in range(8)]
DRILLS = 16  # alerts sent by key, each by two clients
CALLS = CLIENTS * 2 + CLIENTS // 2 + CLIENTS // 16


def seed(url: str, data_dir: Path) -> None:
    """The demo's clients, calls and history in the shared database, the first AT_RISK clients unhealthy."""
    services = build_services(make_settings(data_dir, store={"url": url}))
    try:
        anyio.run(load_demo, services)
        with services.store.transaction() as conn:
            ids = [row[0] for row in conn.execute("SELECT id FROM clients ORDER BY id").fetchall()]
            conn.executemany(
                "INSERT INTO client_health (client_id, score, components, explanation, as_of, updated_at) "
                "VALUES (?, ?, '[]', 'seeded', '2026-12-01T00:00:00+00:00', '2026-12-01T00:00:00+00:00')",
                [(client_id, 40.0 + n if n < AT_RISK else 85.0) for n, client_id in enumerate(ids)],
            )
    finally:
        services.close()


def replica_env(tmp_path: Path, name: str, shared: dict[str, str]) -> dict[str, str]:
    cache = tmp_path / name / "cache"
    cache.mkdir(parents=True)
    return {**shared, "XDG_CACHE_HOME": str(cache)}


@pytest.fixture
def receivers() -> Iterator[tuple[str, SlackState, str, LinearState]]:
    slack, linear = SlackState(), LinearState()
    with serve(slack_app(slack)) as slack_url, serve(linear_app(linear)) as linear_url:
        yield slack_url, slack, linear_url, linear


async def drive(base: str, number: int, kill: anyio.Event, done: list[int]) -> None:
    """One client's calls (an alert and a bug report, each made by two clients; for every other client the health
    monitor, for every sixteenth churn), each tried again on a new connection when the replica answering dies
    under it, as a client would. Half the clients speak 2025-11-25, half 2026-07-28."""
    calls: list[tuple[str, dict[str, Any]]] = [
        ("alerts_send_alert", {"text": f"Replica drill {number % DRILLS}", "channel": "#random",
                               "idempotency_key": f"drill:{number % DRILLS}"}),
        ("linear_report_bug", {"text": BUGS[number % len(BUGS)], "reporter": f"@reporter{number % len(BUGS)}",
                               "channel": "#bugs"}),
    ]  # fmt: skip
    if number % 2 == 0:
        calls.insert(number % 3, ("alerts_run_health_monitor", {}))
    if number % 16 == 0:
        calls.insert(0, ("predict_churn", {"threshold": 0.5}))
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(Client(f"{base}/mcp", mode="auto" if number % 2 else "legacy"))
        for tool, arguments in calls:
            for _ in range(5):
                try:
                    result = await client.call_tool(tool, arguments)
                except Exception:  # the replica died mid-answer (502, a cut stream): again, on a new connection
                    await stack.aclose()
                    client = await stack.enter_async_context(Client(f"{base}/mcp", mode="auto"))
                    continue
                assert not result.is_error, (tool, result.content)
                break
            else:
                raise AssertionError(f"{tool} failed 5 times")
            done.append(number)
            if len(done) == CALLS // 2:
                kill.set()


def test_three_replicas_and_a_kill_make_every_side_effect_once(
    tmp_path: Path, postgres_url: str, redis_url: str, receivers: tuple[str, SlackState, str, LinearState]
) -> None:
    slack_url, slack, linear_url, linear = receivers
    seed(postgres_url, tmp_path / "seed")
    shared = {
        "SOPHIA_STORE__URL": postgres_url, "SOPHIA_REDIS__URL": redis_url, "SOPHIA_HTTP__STATELESS": "true",
        "SOPHIA_HTTP__REQUEST_STATE_KEYS": secrets.token_urlsafe(32), "SOPHIA_HTTP__RATE_PER_MINUTE": "100000",
        "SOPHIA_SLACK__BACKEND": "slack", "SOPHIA_SLACK__BASE_URL": f"{slack_url}/api/",
        "SOPHIA_SLACK__BOT_TOKEN": BOT_TOKEN, "SOPHIA_SLACK__RATE_PER_SECOND": "1000",
        "SOPHIA_LINEAR__BACKEND": "linear", "SOPHIA_LINEAR__BASE_URL": f"{linear_url}/graphql",
        "SOPHIA_LINEAR__API_KEY": API_KEY, "SOPHIA_LINEAR__TEAM": "CS", "SOPHIA_LINEAR__BUG_TEAM": "ENG",
        "SOPHIA_LOG_LEVEL": "WARNING",
    }  # fmt: skip
    running: list[subprocess.Popen[str]] = []
    done: list[int] = []
    with ExitStack() as stack:
        bases = [
            stack.enter_context(http_server(tmp_path / name / "data", "http", server="composite", running=running,
                                            **replica_env(tmp_path, name, shared)))
            for name in ["a", "b", "c"]
        ]  # fmt: skip
        base, balancer = stack.enter_context(round_robin(bases))

        async def load() -> None:
            kill = anyio.Event()
            async with anyio.create_task_group() as group:
                for number in range(CLIENTS):
                    group.start_soon(drive, base, number, kill, done)
                await kill.wait()
                running[1].send_signal(signal.SIGKILL)  # midway: half the calls answered, the rest to come

        anyio.run(load)
        killed = running[1]
        assert killed.wait(timeout=10) == -signal.SIGKILL
        assert balancer.down == {bases[1]} and all(balancer.sent[b] > 0 for b in bases)

        # A scheduler starting beside the survivors (on the dead one's host) puts back what the dead replica was
        # sending and marks its runs; its runs send what is left, and the next bug check tells the channels of the
        # bugs filed meanwhile. The two run one after the other, as a minute apart: run at once, the check may find
        # a bug's issue being sent by the delivery beside it and leave telling its channel to its next run, which a
        # single pass never has (seen once under load: 7 of the 8 bug channels told).
        for name in ("deliver-outbox", "bug-status"):
            schedules = json.dumps([{"name": name, "workflow": name, "every": "1m"}])
            scheduler = subprocess.run(
                [SCRIPT, "schedule", "--once"],
                env=env_for(tmp_path / "scheduler", **shared, SOPHIA_SCHEDULES=schedules),
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert scheduler.returncode == 0, scheduler.stderr

        async def monitor_again() -> dict[str, Any]:
            async with Client(f"{base}/mcp") as client:
                return structured(await client.call_tool("alerts_run_health_monitor", {}))

        again = anyio.run(monitor_again)

    assert len(done) == CALLS
    assert (again["at_risk"], again["new_issues"], again["new_alerts"], again["pending"]) == (AT_RISK, 0, 0, 0)
    by_channel = Counter(CHANNELS.get(m["channel"], m["channel"]) for m in slack.messages)
    texts = Counter((m["channel"], m["text"]) for m in slack.messages)
    assert [t for t, n in texts.items() if n > 1] == []  # nothing posted twice
    issues = Counter(i["title"] for i in linear.issues)
    assert [t for t, n in issues.items() if n > 1] == []
    with psycopg.connect(postgres_url) as conn:
        churn_clients = conn.execute("SELECT count(*) FROM outbox WHERE key LIKE 'churn-issue:%'").fetchone()[0]  # type: ignore[index]
        meetings = dict(conn.execute(
            "SELECT split_part(key, ':', 1), count(*) FROM meetings GROUP BY 1").fetchall())  # fmt: skip
        runs = dict(conn.execute("SELECT status, count(*) FROM workflow_runs GROUP BY 1").fetchall())
        outbox = dict(conn.execute("SELECT status, count(*) FROM outbox GROUP BY 1").fetchall())
        dead = conn.execute(
            "SELECT count(*) FROM workflow_runs WHERE pid = %s AND status = 'running'", (killed.pid,)
        ).fetchone()[0]  # type: ignore[index]
    assert churn_clients > 0
    assert by_channel["client-health"] == AT_RISK and by_channel["leadership"] == churn_clients
    assert by_channel["random"] == DRILLS and by_channel["bugs"] == len(BUGS)
    assert sum(t.endswith(")") and ": health " in t for t in issues) == AT_RISK
    assert sum(": churn risk " in t for t in issues) == churn_clients
    assert sum(t.startswith("Payments page") for t in issues) == len(BUGS)
    assert meetings == {"health-meeting": AT_RISK, "churn-meeting": churn_clients}
    assert "running" not in runs and dead == 0
    assert set(outbox) == {"delivered"}
