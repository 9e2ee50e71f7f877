"""The Warehouse contract, on the local store and on Snowflake (fakesnow: Snowflake SQL run on DuckDB)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fakesnow
import pytest
from mcp import Client

from sophia_mcp.adapters.gong_payloads import AccountRef, ParsedCall
from sophia_mcp.analysis.health import call_health
from sophia_mcp.analysis.insights import build_analysis, local_insights
from sophia_mcp.app.backends import build_services
from sophia_mcp.domain.calls import Call, Monologue, Party, Sentence, Transcript
from sophia_mcp.domain.results import CallAnalysis
from sophia_mcp.domain.warehouse import HealthRecord
from sophia_mcp.domain.weights import DEFAULT_COMPETITORS, HealthWeights
from sophia_mcp.errors import ConfigurationError
from sophia_mcp.ports.warehouse import Warehouse
from sophia_mcp.servers.gong import create_server
from tests.support.results import structured
from tests.support.settings import SNOWFLAKE, make_settings
from tests.support.store_file import newest_call_ids

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 11, 20, 15, tzinfo=UTC)


@pytest.fixture
def patched_snowflake() -> Iterator[None]:
    with fakesnow.patch():
        yield


@pytest.fixture(params=["local", "snowflake"])
async def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Warehouse]:
    if request.param == "snowflake":
        with fakesnow.patch():
            services = build_services(make_settings(tmp_path, snowflake=SNOWFLAKE))
            yield services.warehouse
            await services.aclose()
            services.close()
        return
    services = build_services(make_settings(tmp_path))
    # The local warehouse keeps analyses beside the calls they are about.

    def seed() -> None:
        with services.store.transaction() as conn:
            for i in range(3):
                call = a_call(f"{i + 1}", NOW - timedelta(days=i * 10))
                services.local_calls.save_call(conn, ParsedCall(call, AccountRef("c1", "Acme"), {}), "test")

    await services.store.run(seed)
    yield services.warehouse
    services.close()


def a_call(call_id: str, started: datetime) -> Call:
    parties = [Party(id="p", name="Sam", affiliation="External", speaker_id="s")]
    return Call(id=call_id, title="t", started=started, duration_s=60, client_id="c1", client_name="Acme",
                parties=parties)  # fmt: skip


def an_analysis(call_id: str, started: datetime, text: str = "We love it.") -> CallAnalysis:
    call = a_call(call_id, started)
    transcript = Transcript(
        call_id=call_id, monologues=[Monologue(speaker_id="s", sentences=[Sentence(start_ms=0, end_ms=900, text=text)])]
    )
    return build_analysis(call, transcript, local_insights(call, transcript, DEFAULT_COMPETITORS), "local")


async def test_contract_analyses_round_trip_and_replace(warehouse: Warehouse) -> None:
    first = an_analysis("1", NOW)
    await warehouse.save_analysis(first)
    assert await warehouse.get_analysis("1") == first
    changed = an_analysis("1", NOW, "We will cancel, this is terrible.")
    await warehouse.save_analysis(changed)
    assert await warehouse.get_analysis("1") == changed
    assert await warehouse.get_analysis("404") is None


async def test_contract_client_analyses_since_newest_first(warehouse: Warehouse) -> None:
    for i in range(3):
        await warehouse.save_analysis(an_analysis(f"{i + 1}", NOW - timedelta(days=i * 10)))
    recent = await warehouse.client_analyses("c1", NOW - timedelta(days=15))
    assert [a.call_id for a in recent] == ["1", "2"]
    assert await warehouse.client_analyses("someone-else", NOW - timedelta(days=99)) == []


async def test_contract_health_is_set_and_kept(warehouse: Warehouse) -> None:
    health = call_health(an_analysis("1", NOW), HealthWeights())
    await warehouse.record_health(HealthRecord(client_id="c1", health=health, as_of=NOW, source_call_id="1"))
    worse = call_health(an_analysis("2", NOW, "This is awful, we will cancel."), HealthWeights())
    await warehouse.record_health(HealthRecord(client_id="c1", health=worse, as_of=NOW, source_call_id="2"))
    stored = await warehouse.get_health("c1")
    assert stored is not None and stored.health == worse and stored.source_call_id == "2"
    assert stored.as_of == NOW
    assert await warehouse.get_health("nobody") is None
    await warehouse.record_health(HealthRecord(client_id="c2", health=health, as_of=NOW))
    scores = await warehouse.health_scores(["c1", "c2", "nobody"])
    assert scores == {"c1": pytest.approx(worse.score), "c2": pytest.approx(health.score)}
    assert await warehouse.health_scores([]) == {}
    assert await warehouse.all_health_scores() == scores


async def test_contract_history_keeps_one_row_per_client_and_source_call(warehouse: Warehouse) -> None:
    health = call_health(an_analysis("1", NOW), HealthWeights())
    worse = call_health(an_analysis("2", NOW, "This is awful, we will cancel."), HealthWeights())
    for score, source in [(health, "1"), (health, "1"), (worse, "2"), (worse, "1"), (health, None), (health, None)]:
        await warehouse.record_health(HealthRecord(client_id="c1", health=score, as_of=NOW, source_call_id=source))
    rows = await warehouse.read(
        "SELECT source_call_id, score FROM client_health_history WHERE client_id = ?", ["c1"], 5
    )
    by_source: dict[str | None, list[float]] = {}
    for source, score in rows.rows:
        by_source.setdefault(source, []).append(score)
    # The same source again replaces its row's figures; records without a source call are each kept.
    assert by_source == {
        "1": [pytest.approx(worse.score)], "2": [pytest.approx(worse.score)], None: [pytest.approx(health.score)] * 2
    }  # fmt: skip


async def test_snowflake_needs_its_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="SOPHIA_SNOWFLAKE__ACCOUNT"):
        build_services(make_settings(tmp_path, snowflake={"backend": "snowflake"}))


async def test_call_analysis_runs_on_snowflake(data_dir: Path, patched_snowflake: None) -> None:
    call_id = newest_call_ids(data_dir, 1)[0]
    async with Client(create_server(make_settings(data_dir, snowflake=SNOWFLAKE))) as client:
        report = structured(await client.call_tool("analyze_call", {"call_id": call_id}))
        detail = structured(await client.call_tool("get_call", {"call_id": call_id}))
    assert 0 <= report["health"]["score"] <= 100
    assert detail["analysis"]["call_id"] == call_id  # read back from Snowflake


async def test_snowflake_drops_repeated_history_rows_at_login(tmp_path: Path) -> None:
    import snowflake.connector

    with fakesnow.patch():
        first = build_services(make_settings(tmp_path, snowflake=SNOWFLAKE))
        health = call_health(an_analysis("1", NOW), HealthWeights())
        await first.warehouse.record_health(HealthRecord(client_id="c1", health=health, as_of=NOW, source_call_id="1"))
        await first.aclose()
        first.close()
        # What record_health left before it merged: the same point appended again at each re-analysis.
        conn = snowflake.connector.connect(database="SOPHIA", schema="ANALYTICS")
        for n in range(1, 3):
            conn.cursor().execute(
                "INSERT INTO CLIENT_HEALTH_HISTORY (CLIENT_ID, SCORE, SOURCE_CALL_ID, RECORDED_AT) "
                f"VALUES ('c1', {n}, '1', DATEADD(day, {n}, CURRENT_TIMESTAMP()))"
            )
        conn.close()
        again = build_services(make_settings(tmp_path, snowflake=SNOWFLAKE))
        rows = await again.warehouse.read("SELECT SCORE FROM CLIENT_HEALTH_HISTORY WHERE CLIENT_ID = 'c1'", [], 5)
        await again.aclose()
        again.close()
    assert rows.rows == [[2.0]]
