"""The healing watch: a fault injected into the Linear fake (401s, then a storm of 429s, then a 5xx outage that
recovers) opens one incident per cause, applies its remediation, files one issue and one alert for each, and
closes each when the service recovers, the side effects held meanwhile then delivered once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from mcp import Client

from sophia_mcp.adapters.live_clients import LIVE_CLIENTS
from sophia_mcp.adapters.openai_embed import OpenAIEmbedder
from sophia_mcp.adapters.slack import SlackNotifier
from sophia_mcp.app.backends import build_services
from sophia_mcp.app.services import Services
from sophia_mcp.domain.issues import IssueQuery
from sophia_mcp.domain.notify import Alert
from sophia_mcp.errors import SophiaError
from sophia_mcp.servers.composite import create_server
from sophia_mcp.settings import OpenAISettings, Settings, SlackSettings
from sophia_mcp.workflows.call_health import analyze_call
from sophia_mcp.workflows.healing import watch
from sophia_mcp.workflows.runs import start_run
from sophia_mcp.workflows.strategic import gather_evidence
from tests.fakes.linear import API_KEY, LinearState
from tests.fakes.openai import OpenAIState, openai_app
from tests.fakes.server import serve
from tests.fakes.slack import SlackState, slack_app
from tests.support.processes import SCRIPT, env_for
from tests.support.results import structured
from tests.support.settings import make_settings
from tests.support.store_file import newest_call_ids

pytestmark = pytest.mark.anyio


def settings_for(data_dir: Path, url: str) -> Settings:
    section = {
        "backend": "linear", "base_url": f"{url}/graphql", "api_key": API_KEY, "team": "CS", "timeout_s": 2,
        "retry_base_s": 0.01, "retry_max_s": 0.01, "max_retries": 0, "max_concurrency": 4,
    }  # fmt: skip
    return make_settings(data_dir, linear=section)


async def sync_once(services: Services, state: LinearState, fault: str | None = None) -> None:
    """One run of a workflow whose step reads Linear, with `fault` injected into that one request."""
    if fault:
        state.faults.append(fault)
    with suppress(SophiaError):
        async with start_run(services.runs, "issue_sync", None, {}) as run:
            await run.step("search issues", lambda: services.tracker.search(IssueQuery(limit=1)))


def linear_concurrency() -> set[float]:
    return {client.slots.total_tokens for client in LIVE_CLIENTS if client.service == "Linear"}


async def runs_then_watch(services: Services, state: LinearState, faults: list[str | None]) -> list[int]:
    opened = []
    for fault in faults:
        await sync_once(services, state, fault)
        opened += (await watch(services)).opened
    return opened


def incident_issues(state: LinearState) -> list[dict[str, object]]:
    return [i for i in state.issues if str(i["title"]).startswith("Incident:")]


async def test_a_failing_service_opens_one_incident_per_cause_and_heals(
    data_dir: Path, linear: tuple[str, LinearState]
) -> None:
    url, state = linear
    settings = settings_for(data_dir, url)
    services = build_services(settings)
    assert await runs_then_watch(services, state, [None] * 10) == []

    [refused] = await runs_then_watch(services, state, ["401"] * 3)
    assert len(incident_issues(state)) == 1  # Linear answers again: its issue is filed at once

    [limited] = await runs_then_watch(services, state, ["ratelimited"] * 3)
    assert linear_concurrency() == {settings.healing.reduced_concurrency}

    [down] = await runs_then_watch(services, state, ["500"] * 3)
    held = await services.outbox.states([f"incident:{down}"])
    assert held[f"incident:{down}"][1] == "pending"  # held while Linear is down: not even tried
    assert len(incident_issues(state)) == 2

    assert await runs_then_watch(services, state, [None] * 20) == []
    assert linear_concurrency() == {4}

    async with Client(create_server(settings)) as client:
        listed = structured(await client.call_tool("list_incidents", {"status": "closed"}))["incidents"]
        still_open = structured(await client.call_tool("list_incidents", {"status": "open"}))["incidents"]
        resource = json.loads((await client.read_resource("sophia://incidents")).contents[0].text)  # type: ignore[union-attr]
    assert still_open == [] and len(resource["incidents"]) == 3
    by_cause = {i["cause"]: i for i in listed}
    assert set(by_cause) == {"credentials", "rate_limited", "unavailable"}
    assert [i["id"] for i in sorted(listed, key=lambda i: i["id"])] == [refused, limited, down]
    assert {i["service"] for i in listed} == {"Linear"}
    assert by_cause["credentials"]["remediations"] == []  # credentials are for a person
    assert [r["action"] for r in by_cause["rate_limited"]["remediations"]] == ["lower_concurrency"]
    assert [r["action"] for r in by_cause["unavailable"]["remediations"]] == ["hold_side_effects"]
    assert all(r["ended_at"] for i in listed for r in i["remediations"])
    diagnosis = by_cause["credentials"]["diagnosis"]
    assert diagnosis["failures"] == 3 and "refused the credentials" in diagnosis["examples"][0]
    assert all(i["summary"].startswith("Back under 10%") for i in listed)

    issues = incident_issues(state)
    assert len(issues) == 3  # one each, the held one delivered once after the outage
    for issue in issues:
        found = await services.tracker.get(str(issue["id"]))
        assert found.state == "Done" and "**Closed**" in found.description and "**For a person**" in found.description
    alerts = [e for e in await services.outbox.list() if e.key.startswith("incident-alert:")]
    assert sorted(e.key for e in alerts) == [f"incident-alert:{i}" for i in (refused, limited, down)]
    assert {e.status for e in alerts} == {"delivered"}
    services.close()


async def record_outcomes(services: Services, workflow: str, step: str, service: str) -> None:
    """Twelve runs of a step, every other one failing because `service` is down, as the run ledger records them."""
    runs = services.runs
    for n in range(12):
        async with start_run(runs, workflow, None, {}) as run:
            run_id = run.id
        await runs.step_started(run_id, 1, step)
        failed = n % 2 == 0
        await runs.step_ended(run_id, 1, "failed" if failed else "succeeded", None, f"{service} is down" if failed
                              else None, 0.01, ("unavailable", service) if failed else None)  # fmt: skip


async def test_an_incident_on_a_sources_service_pauses_it_in_the_strategic_query(
    data_dir: Path, linear: tuple[str, LinearState]
) -> None:
    url, _ = linear
    services = build_services(settings_for(data_dir, url))
    await record_outcomes(services, "strategic_query", "web", "Tavily")
    [opened] = (await watch(services)).opened
    evidence = await gather_evidence(services, "what is AppFolio doing?", sources=["web", "calls"])
    [web] = [r for r in evidence.sources if r.source == "web"]
    assert web.status == "gap" and "paused" in (web.reason or "")
    assert opened and any(g.startswith("web: paused") for g in evidence.gaps)
    services.close()


class ModelReader:
    """An analyst standing for the configured model: it must not be asked while the fallback holds."""

    name = "openai"

    async def read_call(self, call: object, transcript: object) -> object:
        raise AssertionError("the model was asked while the healing watch had fallen back to the local analyst")


async def test_an_incident_on_the_models_service_falls_back_to_the_local_analyst(
    data_dir: Path, linear: tuple[str, LinearState]
) -> None:
    url, _ = linear
    services = build_services(settings_for(data_dir, url))
    await record_outcomes(services, "analyze_call", "read_call", "OpenAI")
    [opened] = (await watch(services)).opened
    report = await analyze_call(services, newest_call_ids(data_dir, 1)[0], analyst=ModelReader())  # type: ignore[arg-type]
    assert opened and report.analysis.analyst == "local"
    services.close()


def incidents_in(data_dir: Path) -> list[tuple[str, str]]:
    """The incidents' causes and states, read from the store's file as an operator would."""
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        return [(r[0], r[1]) for r in conn.execute("SELECT cause, status FROM incidents ORDER BY id").fetchall()]


@contextmanager
def scheduler_process(data_dir: Path, env: dict[str, str]) -> Iterator[None]:
    """`sophia-mcp schedule` running on `data_dir`, stopped at the end."""
    proc = subprocess.Popen([SCRIPT, "schedule"], env=env_for(data_dir, **env), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def state_of(state: LinearState, issue: dict[str, object]) -> str:
    return str(next(s["name"] for s in state.states if s["id"] == issue["state_id"]))


def until(seen: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    """Wait for the scheduler's process to get somewhere: the test can only watch the store and the fake."""
    deadline = time.monotonic() + timeout_s
    while not seen():
        assert time.monotonic() < deadline, f"the scheduler never {what}"
        time.sleep(0.1)


async def test_the_scheduler_process_runs_the_watch_that_opens_and_closes_an_incident(
    data_dir: Path, linear: tuple[str, LinearState]
) -> None:
    """`sophia-mcp schedule`, as an operator runs it: its own healing watch, with no call from the test, opens the
    incident of a fault injected into the Linear fake (refused credentials), files its one issue there, and closes
    it, with the issue, once the service answers again."""
    url, state = linear
    services = build_services(settings_for(data_dir, url))
    env = {
        "SOPHIA_LINEAR__BACKEND": "linear", "SOPHIA_LINEAR__BASE_URL": f"{url}/graphql",
        "SOPHIA_LINEAR__API_KEY": API_KEY, "SOPHIA_LINEAR__TEAM": "CS", "SOPHIA_LINEAR__MAX_RETRIES": "0",
        "SOPHIA_HEALING__INTERVAL_S": "0.2", "SOPHIA_SCHEDULES": "[]",
    }  # fmt: skip
    # The faults are spent before the scheduler starts: a fault waiting in the fake would be taken by whichever
    # request comes next, the incident's own issue among them.
    for fault in [None] * 10 + ["401"] * 3:
        await sync_once(services, state, fault)
    with scheduler_process(data_dir, env):
        until(lambda: incidents_in(data_dir) == [("credentials", "open")], "opened the incident")
        until(lambda: len(incident_issues(state)) == 1, "filed the incident's issue")
        for _ in range(20):
            await sync_once(services, state)
        until(lambda: incidents_in(data_dir) == [("credentials", "closed")], "closed the incident")
        until(lambda: state_of(state, incident_issues(state)[0]) == "Done", "closed the incident's issue")
    services.close()
    assert len(incident_issues(state)) == 1


async def test_the_sdk_adapters_name_their_service_so_their_failures_group_by_it(data_dir: Path) -> None:
    """Slack (slack-sdk) refusing its token and OpenAI (openai) refusing its key: each incident names the service."""
    slack, openai = SlackState(), OpenAIState()
    with serve(slack_app(slack)) as slack_url, serve(openai_app(openai)) as openai_url:
        notifier = SlackNotifier(SlackSettings(base_url=f"{slack_url}/api/", bot_token="xoxb-wrong-token-123456"))
        embedder = OpenAIEmbedder(OpenAISettings(base_url=f"{openai_url}/v1", api_key="sk-wrong", max_retries=0))
        services = build_services(make_settings(data_dir))
        try:
            for _ in range(10):
                with suppress(SophiaError):
                    async with start_run(services.runs, "post_summary", None, {}) as run:
                        await run.step("post", lambda: notifier.send(Alert(key="k", channel="#x", title="t", text="t")))
                with suppress(SophiaError):
                    async with start_run(services.runs, "index_notes", None, {}) as run:
                        await run.step("embed", lambda: embedder.embed(["a note"]))
            await watch(services)
            found = {(i.workflow, i.cause, i.service) for i in await services.incidents.list("open", limit=10)}
        finally:
            await embedder.aclose()
            services.close()
    assert found == {("post_summary", "credentials", "Slack"), ("index_notes", "credentials", "OpenAI")}
