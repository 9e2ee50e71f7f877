"""The CallSource contract, run against the local store and against the Gong adapter pointed at the Gong fake,
plus `calls sync` and the adapter's behaviour under Gong's faults."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from mcp import Client
from typer.testing import CliRunner

from sophia_mcp.app.backends import build_services
from sophia_mcp.cli.main import app
from sophia_mcp.domain.calls import CallFilter
from sophia_mcp.domain.times import utcnow
from sophia_mcp.errors import InvalidInput, NotFound, ServiceUnavailable
from sophia_mcp.ports.calls import CallSource
from sophia_mcp.servers.gong import create_server
from sophia_mcp.settings import Settings
from tests.fakes.gong import ACCESS_KEY, ACCESS_SECRET, GongState, gong_app
from tests.fakes.server import serve
from tests.support.demo_states import gong_state
from tests.support.processes import env_for
from tests.support.results import structured
from tests.support.settings import make_settings

pytestmark = pytest.mark.anyio


def gong_settings(data_dir: Path, base_url: str, **gong: object) -> Settings:
    section = {
        "backend": "gong",
        "base_url": base_url,
        "access_key": ACCESS_KEY,
        "access_key_secret": ACCESS_SECRET,
        "retry_base_s": 0.01,
        "rate_per_second": 1000,
        "max_concurrency": 8,
    } | gong
    return make_settings(data_dir, gong=section)


@pytest.fixture
def gong_fake() -> Iterator[tuple[str, GongState]]:
    state = gong_state(page_size=40, retry_after="0.05")
    with serve(gong_app(state)) as url:
        yield url, state


@pytest.fixture(params=["local", "gong"])
async def source(request: pytest.FixtureRequest, data_dir: Path) -> AsyncIterator[CallSource]:
    """The same demo calls behind either backend."""
    if request.param == "local":
        services = build_services(make_settings(data_dir))
        yield services.calls
        services.close()
        return
    state = gong_state(page_size=40)
    with serve(gong_app(state)) as url:
        services = build_services(gong_settings(data_dir, url))
        yield services.calls
        await services.aclose()
        services.close()


def demo_ids(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        return [r[0] for r in conn.execute("SELECT id FROM calls ORDER BY started DESC, id DESC")]


# -- the contract ----------------------------------------------------------------------------------------


async def test_contract_get_call(source: CallSource, data_dir: Path) -> None:
    call_id = demo_ids(data_dir)[3]
    call = await source.get_call(call_id)
    assert call.id == call_id and call.client_id and call.client_name
    assert {p.affiliation for p in call.parties} >= {"Internal", "External"}
    assert call.duration_s > 0 and call.started.tzinfo is not None


async def test_contract_unknown_call(source: CallSource) -> None:
    with pytest.raises(NotFound, match="No call with id '1234'"):
        await source.get_call("1234")
    with pytest.raises(NotFound):
        await source.get_transcript("1234")


async def test_contract_transcript(source: CallSource, data_dir: Path) -> None:
    call_id = demo_ids(data_dir)[0]
    transcript = await source.get_transcript(call_id)
    assert transcript.call_id == call_id and len(transcript.monologues) >= 5
    starts = [s.start_ms for m in transcript.monologues for s in m.sentences]
    assert starts == sorted(starts)


async def test_contract_pages_cover_a_date_range_once(source: CallSource, data_dir: Path) -> None:
    until = utcnow()
    since = until - timedelta(days=30)
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        expected = {
            r[0]
            for r in conn.execute(
                "SELECT id FROM calls WHERE started >= ? AND started < ?",
                (since.isoformat().replace("+00:00", "Z"), until.isoformat().replace("+00:00", "Z")),
            )
        }
    seen: list[str] = []
    cursor = None
    while True:
        page = await source.list_calls(CallFilter(started_from=since, started_to=until), 25, cursor)
        seen += [c.id for c in page.calls]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) and set(seen) == expected


async def test_contract_bad_cursor(source: CallSource) -> None:
    with pytest.raises(InvalidInput, match="cursor is not one this tool returned; omit it for the first page"):
        await source.list_calls(CallFilter(), 10, "garbage!")


async def test_contract_empty_range(source: CallSource) -> None:
    long_ago = datetime(2001, 1, 1, tzinfo=UTC)
    page = await source.list_calls(CallFilter(started_from=long_ago, started_to=long_ago + timedelta(days=1)), 10, None)
    assert page.calls == [] and page.next_cursor is None


# -- the adapter against the fake ---------------------------------------------------------------------


def sync(data_dir: Path, url: str, *extra: str, **gong: str) -> tuple[int, str]:
    section = {
        "BACKEND": "gong",
        "BASE_URL": url,
        "ACCESS_KEY": ACCESS_KEY,
        "ACCESS_KEY_SECRET": ACCESS_SECRET,
        "RETRY_BASE_S": "0.01",
        "RATE_PER_SECOND": "1000",
    } | {k.upper(): v for k, v in gong.items()}
    env = env_for(data_dir, COLUMNS="200", **{f"SOPHIA_GONG__{k}": v for k, v in section.items()})
    since = (utcnow() - timedelta(days=95)).strftime("%Y-%m-%d")
    result = CliRunner().invoke(app, ["calls", "sync", "--since", since, *extra], env=env)
    return result.exit_code, result.output


def test_calls_sync_pulls_every_page_idempotently(tmp_path: Path, gong_fake: tuple[str, GongState]) -> None:
    url, state = gong_fake
    total = len(state.calls)
    code, out = sync(tmp_path / "data", url)
    assert code == 0, out
    assert f"{total} new calls, 0 updated, 0 unchanged; {total} transcripts from Gong." in out
    code, out = sync(tmp_path / "data", url)
    assert f"0 new calls, 0 updated, {total} unchanged; {total} transcripts" in out
    with sqlite3.connect(tmp_path / "data" / "sophia.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == total
        assert conn.execute("SELECT COUNT(*) FROM transcripts").fetchone()[0] == total
    cursors = [body.get("cursor") for path, body in state.requests if path == "/v2/calls/extensive"]
    assert cursors.count(None) == 2 and len(cursors) == 2 * -(-total // 40)  # every page, each sync
    first = next(body for path, body in state.requests if path == "/v2/calls/extensive")
    assert first["contentSelector"]["exposedFields"]["parties"] is True


def test_sync_rides_out_faults(tmp_path: Path, gong_fake: tuple[str, GongState]) -> None:
    url, state = gong_fake
    state.faults = ["429", "429", "500", "malformed", "reset", "429", "500"]
    code, out = sync(tmp_path / "data", url, MAX_RETRIES="8")
    assert code == 0, out
    assert f"{len(state.calls)} new calls" in out
    assert state.faults == []


def test_sync_gives_up_with_a_clear_error_and_no_secret(
    tmp_path: Path, gong_fake: tuple[str, GongState], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url, state = gong_fake
    state.faults = ["500"] * 50
    code, out = sync(tmp_path / "data", url, MAX_RETRIES="2")
    assert code == 1
    assert "Gong is not answering properly (HTTP 500) after 2 retries; try again later" in out
    for text in [out, *(r.getMessage() for r in caplog.records)]:
        assert ACCESS_SECRET not in text and ACCESS_KEY not in text


def test_slow_gong_times_out_and_retries(tmp_path: Path, gong_fake: tuple[str, GongState]) -> None:
    url, state = gong_fake
    state.faults = ["slow"]
    state.slow_seconds = 2
    code, out = sync(tmp_path / "data", url, TIMEOUT_S="0.3")
    assert code == 0, out


def test_wrong_credentials(tmp_path: Path, gong_fake: tuple[str, GongState]) -> None:
    url, _ = gong_fake
    code, out = sync(tmp_path / "data", url, ACCESS_KEY_SECRET="wrong-secret-value")
    assert code == 1
    assert "Gong refused the credentials (HTTP 401)" in out
    assert "wrong-secret-value" not in out


def test_sync_needs_the_gong_backend(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["calls", "sync", "--since", "2026-01-01"], env=env_for(tmp_path))
    assert result.exit_code == 1 and "SOPHIA_GONG__BACKEND=gong" in result.output


async def test_gong_server_on_the_gong_backend(tmp_path: Path, gong_fake: tuple[str, GongState]) -> None:
    url, state = gong_fake
    settings = gong_settings(tmp_path / "data", url)
    first = state.calls[0]["metaData"]["id"]
    newest = max(state.calls, key=lambda c: c["metaData"]["started"])["metaData"]["id"]
    async with Client(create_server(settings)) as client:
        listed = structured(await client.call_tool("list_calls", {"limit": 5}))
        report = structured(await client.call_tool("analyze_call", {"call_id": newest}))
        missing = await client.call_tool("get_call", {"call_id": "99"})
        by_competitor = await client.call_tool("list_calls", {"competitor": "AppFolio"})
    assert listed["calls"][0]["id"] == first and len(listed["calls"]) == 5 and listed["next_cursor"]
    assert report["client_id"] and 0 <= report["health"]["score"] <= 100
    assert missing.is_error and "No call with id '99' in Gong" in missing.content[0].text  # type: ignore[union-attr]
    assert by_competitor.is_error and "calls sync" in by_competitor.content[0].text  # type: ignore[union-attr]


async def test_gong_pacing_keeps_under_its_rate_limit(tmp_path: Path) -> None:
    state = gong_state(page_size=10, rate_per_second=3, retry_after="0.2")
    with serve(gong_app(state)) as url:
        services = build_services(gong_settings(tmp_path / "data", url, rate_per_second=3, max_concurrency=3))
        ids = demo_ids_from(state)[:12]
        started = time.perf_counter()
        try:
            async with anyio.create_task_group() as group:
                for call_id in ids:  # all at once: the client, not the caller, must pace them
                    group.start_soon(services.calls.get_call, call_id)
        finally:
            await services.aclose()
            services.close()
        elapsed = time.perf_counter() - started
    # Unpaced, twelve concurrent calls would draw nine 429s at once. Paced against the limit's sliding window, none:
    # three at a time, each three a second after the three before them had their answers.
    assert state.throttled == 0
    assert elapsed >= len(ids) / 3 - 1
    # However the requests travelled, no one-second window the service counts in ever held more than three.
    arrivals = state.arrivals
    assert len(arrivals) == len(ids)
    assert max(sum(start <= t < start + 1 for t in arrivals) for start in arrivals) == 3


def demo_ids_from(state: GongState) -> list[str]:
    return [c["metaData"]["id"] for c in state.calls]


async def test_unreachable_gong_is_a_clear_error(tmp_path: Path) -> None:
    services = build_services(gong_settings(tmp_path / "data", "http://127.0.0.1:9", max_retries=1))
    try:
        with pytest.raises(ServiceUnavailable, match="Gong could not be reached"):
            await services.calls.get_call("1")
    finally:
        await services.aclose()
        services.close()
