"""The gong server through an in-process MCP client session: tools, resources, prompts, completions, errors."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types import PromptReference, ResourceTemplateReference, TextResourceContents

from sophia_mcp.servers.gong import create_server
from sophia_mcp.settings import Settings
from sophia_mcp.store.migrations import MIGRATIONS
from tests.support.results import structured, text_of
from tests.support.settings import make_settings
from tests.support.store_file import StoreSQL, newest_call_ids, outbox_rows, sqlite_only

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("demo_store")]

GONG_TOOLS = {"list_calls", "get_call", "get_transcript", "analyze_call", "link_call"}


async def test_lists_the_gong_tools_with_schemas_and_annotations(settings: Settings) -> None:
    async with Client(create_server(settings)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == GONG_TOOLS
    for tool in tools.values():
        assert tool.output_schema is not None, tool.name
        assert tool.annotations is not None and tool.annotations.title, tool.name
        assert tool.description and len(tool.description) > 60, tool.name
    assert tools["list_calls"].annotations.read_only_hint is True
    assert tools["analyze_call"].annotations.read_only_hint is False
    assert tools["analyze_call"].annotations.idempotent_hint is True
    assert tools["link_call"].annotations.read_only_hint is False


async def test_analyze_call_returns_analysis_and_health(settings: Settings, demo_store: StoreSQL) -> None:
    call_id = newest_call_ids(demo_store, 1)[0]
    async with Client(create_server(settings)) as client:
        report = structured(await client.call_tool("analyze_call", {"call_id": call_id}))
    analysis = report["analysis"]
    assert report["call_id"] == call_id
    assert report["client_id"]
    assert -1 <= analysis["sentiment"]["overall"] <= 1
    assert analysis["sentiment"]["label"] in {"positive", "neutral", "negative"}
    assert 0 <= analysis["talk"]["internal_ratio"] <= 1
    assert isinstance(analysis["competitor_mentions"], list)
    assert 0 <= report["health"]["score"] <= 100
    assert {c["name"] for c in report["health"]["components"]} == {"sentiment", "risk", "engagement", "competition"}
    assert report["health"]["explanation"]


async def test_analysis_finds_competitor_mentions_with_quotes(settings: Settings) -> None:
    async with Client(create_server(settings)) as client:
        page = structured(await client.call_tool("list_calls", {"competitor": "AppFolio", "limit": 5}))
        assert page["calls"], "the demo mentions AppFolio on some calls"
        call_id = page["calls"][0]["id"]
        report = structured(await client.call_tool("analyze_call", {"call_id": call_id}))
    mentions = report["analysis"]["competitor_mentions"]
    assert any(m["competitor"] == "AppFolio" for m in mentions)
    for mention in mentions:
        assert mention["text"] and mention["speaker_id"] and mention["at_ms"] >= 0


async def test_analysing_the_same_call_twice_alerts_once(data_dir: Path, demo_store: StoreSQL) -> None:
    # A threshold of 100 puts every client under it, so the first analysis must alert.
    settings = make_settings(data_dir, health={"threshold": 100})
    call_id = newest_call_ids(demo_store, 1)[0]
    async with Client(create_server(settings)) as client:
        first = structured(await client.call_tool("analyze_call", {"call_id": call_id}))
        second = structured(await client.call_tool("analyze_call", {"call_id": call_id}))
    assert first["at_risk"] and second["at_risk"]
    assert first["alert"]["new"] is True and first["alert"]["status"] == "delivered"
    assert second["alert"]["new"] is False and second["alert"]["key"] == first["alert"]["key"]
    assert first["alert"]["channel"] == "#client-health"
    assert outbox_rows(demo_store) == [(first["alert"]["key"], "delivered")]


async def test_healthy_threshold_sends_no_alert(data_dir: Path, demo_store: StoreSQL) -> None:
    settings = make_settings(data_dir, health={"threshold": 0})
    call_id = newest_call_ids(demo_store, 1)[0]
    async with Client(create_server(settings)) as client:
        report = structured(await client.call_tool("analyze_call", {"call_id": call_id}))
    assert report["at_risk"] is False and report["alert"] is None
    assert outbox_rows(demo_store) == []


async def test_analyze_call_records_a_run_with_its_steps(data_dir: Path, demo_store: StoreSQL) -> None:
    settings = make_settings(data_dir, health={"threshold": 0})
    call_id = newest_call_ids(demo_store, 1)[0]
    async with Client(create_server(settings)) as client:
        report = structured(await client.call_tool("analyze_call", {"call_id": call_id}))
        contents = (await client.read_resource(f"sophia://runs/{report['run_id']}")).contents[0]
    assert isinstance(contents, TextResourceContents)
    run = json.loads(contents.text)
    assert (run["workflow"], run["subject"], run["status"], run["error"]) == (
        "analyze_call",
        call_id,
        "succeeded",
        None,
    )
    steps = [(s["name"], s["status"]) for s in run["steps"]]
    assert steps == [
        ("fetch_call", "succeeded"),
        ("fetch_transcript", "succeeded"),
        ("read_call", "succeeded"),
        ("store_analysis", "succeeded"),
        ("update_health", "succeeded"),
        ("send_alert", "skipped"),
    ]
    assert all(s["duration_ms"] is not None for s in run["steps"])


async def test_failed_run_is_recorded_with_its_reason(settings: Settings, demo_store: StoreSQL) -> None:
    async with Client(create_server(settings)) as client:
        assert (await client.call_tool("analyze_call", {"call_id": "4242"})).is_error
    status, error = demo_store.one("SELECT status, error FROM workflow_runs WHERE subject = '4242'")
    step = demo_store.rows(
        "SELECT s.name, s.status FROM run_steps s JOIN workflow_runs r ON r.id = s.run_id WHERE r.subject = '4242'"
    )
    assert status == "failed" and error.startswith("No call with id '4242'")
    assert step == [("fetch_call", "failed")]


def a_clients_oldest_calls(db: StoreSQL, n: int) -> tuple[str, list[str]]:
    client_id = db.value(
        "SELECT client_id FROM calls GROUP BY client_id HAVING COUNT(*) >= ? ORDER BY client_id LIMIT 1", (n,)
    )
    ids = [r[0] for r in db.rows("SELECT id FROM calls WHERE client_id = ? ORDER BY started LIMIT ?", (client_id, n))]
    return client_id, ids


def health_history(db: StoreSQL, client_id: str) -> list[tuple[float, str, str]]:
    return db.rows(
        "SELECT score, explanation, source_call_id FROM client_health_history WHERE client_id = ? ORDER BY as_of",
        (client_id,),
    )


async def test_health_history_grows_with_each_newer_call(settings: Settings, demo_store: StoreSQL) -> None:
    client_id, ids = a_clients_oldest_calls(demo_store, 3)
    async with Client(create_server(settings)) as client:
        for call_id in ids:
            structured(await client.call_tool("analyze_call", {"call_id": call_id}))
    history = health_history(demo_store, client_id)
    current = demo_store.value("SELECT score FROM client_health WHERE client_id = ?", (client_id,))
    assert [source for _, _, source in history] == ids
    assert all(0 <= score <= 100 and explanation.startswith("Health ") for score, explanation, _ in history)
    assert current == history[-1][0]


async def test_analysing_a_call_again_leaves_one_history_row_per_source(
    settings: Settings, demo_store: StoreSQL
) -> None:
    client_id, ids = a_clients_oldest_calls(demo_store, 2)
    async with Client(create_server(settings)) as client:
        for call_id in [ids[0], ids[0], ids[1], ids[1], ids[0]]:
            structured(await client.call_tool("analyze_call", {"call_id": call_id}))
        last = structured(await client.call_tool("analyze_call", {"call_id": ids[1]}))
    history = health_history(demo_store, client_id)
    # Analysing the older call again recomputes health as of the newer one: still one row for it.
    assert [source for _, _, source in history] == ids
    assert history[-1][0] == last["health"]["score"]


async def test_list_calls_pages_through_every_call_once(settings: Settings, demo_store: StoreSQL) -> None:
    total = demo_store.value("SELECT COUNT(*) FROM calls")
    seen: list[str] = []
    cursor = None
    async with Client(create_server(settings)) as client:
        while True:
            args = {"limit": 37} | ({"cursor": cursor} if cursor else {})
            page = structured(await client.call_tool("list_calls", args))
            seen += [c["id"] for c in page["calls"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert len(seen) == total == len(set(seen))


async def test_list_calls_filters_by_client_and_dates(settings: Settings, demo_store: StoreSQL) -> None:
    client_id, name, day = demo_store.one(
        "SELECT client_id, client_name, substr(started, 1, 10) FROM calls ORDER BY started DESC LIMIT 1"
    )
    expected_for_client = demo_store.value("SELECT COUNT(*) FROM calls WHERE client_id = ?", (client_id,))
    expected_on_day = demo_store.value("SELECT COUNT(*) FROM calls WHERE substr(started, 1, 10) = ?", (day,))
    async with Client(create_server(settings)) as client:
        by_name = structured(await client.call_tool("list_calls", {"client": name.lower()[:8], "limit": 100}))
        by_id = structured(await client.call_tool("list_calls", {"client": client_id, "limit": 100}))
        on_day = structured(await client.call_tool("list_calls", {"from_date": day, "to_date": day, "limit": 100}))
    assert len(by_id["calls"]) == expected_for_client
    assert {c["client_id"] for c in by_id["calls"]} == {client_id}
    assert client_id in {c["client_id"] for c in by_name["calls"]}
    assert len(on_day["calls"]) == expected_on_day
    assert all(c["started"].startswith(day) for c in on_day["calls"])


async def test_get_call_and_paged_transcript(settings: Settings, demo_store: StoreSQL) -> None:
    call_id = newest_call_ids(demo_store, 1)[0]
    async with Client(create_server(settings)) as client:
        detail = structured(await client.call_tool("get_call", {"call_id": call_id}))
        first = structured(await client.call_tool("get_transcript", {"call_id": call_id, "limit": 10}))
        rest = structured(
            await client.call_tool("get_transcript", {"call_id": call_id, "cursor": first["next_cursor"], "limit": 500})
        )
    affiliations = {p["affiliation"] for p in detail["call"]["parties"]}
    assert {"Internal", "External"} <= affiliations
    assert detail["analysis"] is None
    assert len(first["lines"]) == 10
    assert len(first["lines"]) + len(rest["lines"]) == first["total_sentences"]
    assert rest["next_cursor"] is None
    starts = [line["start_ms"] for line in first["lines"] + rest["lines"]]
    assert starts == sorted(starts)


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("get_call", {"call_id": "1234567890123"}, "No call with id '1234567890123'. Use list_calls to find call ids."),
        ("analyze_call", {"call_id": "99"}, "No call with id '99'. Use list_calls to find call ids."),
        ("get_call", {"call_id": "12; DROP TABLE calls"}, "- call_id: String should match pattern"),
        ("list_calls", {"limit": -1}, "- limit: Input should be greater than or equal to 1 (got -1)"),
        ("list_calls", {"limit": 100000}, "- limit: Input should be less than or equal to 100 (got 100000)"),
        ("list_calls", {"from_date": "2026-13-45"}, "- from_date: Input should be a valid date"),
        ("list_calls", {"limit": "many"}, "- limit: Input should be a valid integer"),
        ("list_calls", {"from_date": "2026-05-02", "to_date": "2026-05-01"}, "from_date 2026-05-02 is after to_date"),
        ("list_calls", {"cursor": "not-a-cursor"}, "cursor is not one this tool returned; omit it for the first page"),
        ("list_calls", {"competitor": "Salesforce"}, "Unknown competitor 'Salesforce'; the configured competitors are"),
        ("get_call", {}, "- call_id: Field required"),
        ("get_transcript", {"call_id": "1", "cursor": "x"}, "No call with id '1'"),
    ],
)
async def test_bad_input_gets_a_clear_error_and_the_server_keeps_serving(
    settings: Settings, tool: str, arguments: dict[str, object], expected: str
) -> None:
    async with Client(create_server(settings)) as client:
        result = await client.call_tool(tool, arguments)
        assert result.is_error
        message = text_of(result)
        assert expected in message
        assert "Traceback" not in message and 'File "' not in message
        assert "errors.pydantic.dev" not in message
        still = await client.call_tool("list_calls", {"limit": 1})
        assert not still.is_error


async def test_resources_read_calls_and_transcripts(settings: Settings, demo_store: StoreSQL) -> None:
    call_id = newest_call_ids(demo_store, 1)[0]
    async with Client(create_server(settings)) as client:
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        call = await client.read_resource(f"gong://calls/{call_id}")
        transcript = await client.read_resource(f"gong://calls/{call_id}/transcript")
    assert templates == {"gong://calls/{call_id}", "gong://calls/{call_id}/transcript", "sophia://runs/{run_id}"}
    call_text = call.contents[0]
    assert isinstance(call_text, TextResourceContents) and call_id in call_text.text
    lines = transcript.contents[0]
    assert isinstance(lines, TextResourceContents)
    assert "(External):" in lines.text and "(Internal):" in lines.text


async def test_unknown_call_resource_is_not_found(settings: Settings) -> None:
    async with Client(create_server(settings)) as client:
        with pytest.raises(MCPError, match="No call with id '4242'"):
            await client.read_resource("gong://calls/4242")


async def test_prompts_are_described_and_render(settings: Settings, demo_store: StoreSQL) -> None:
    call_id = newest_call_ids(demo_store, 1)[0]
    async with Client(create_server(settings)) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        rendered = await client.get_prompt("review_call", {"call_id": call_id, "focus": "pricing"})
    assert set(prompts) == {"review_call", "review_client_calls"}
    assert all(p.description for p in prompts.values())
    texts = [m.content.text for m in rendered.messages]  # type: ignore[union-attr]
    assert "analyze_call" in texts[0] and "pricing" in texts[0]
    assert "Transcript:" in texts[1]


async def test_completions_suggest_call_ids_and_client_names(settings: Settings, demo_store: StoreSQL) -> None:
    newest = newest_call_ids(demo_store, 1)[0]
    name = demo_store.value("SELECT name FROM clients ORDER BY name LIMIT 1")
    async with Client(create_server(settings)) as client:
        ids = await client.complete(
            ResourceTemplateReference(type="ref/resource", uri="gong://calls/{call_id}"),
            {"name": "call_id", "value": newest[:6]},
        )
        names = await client.complete(
            PromptReference(type="ref/prompt", name="review_client_calls"), {"name": "client", "value": name[:4]}
        )
    assert newest in ids.completion.values
    assert all(v.startswith(newest[:6]) for v in ids.completion.values)
    assert name in names.completion.values


async def test_logging_set_level_filters_messages(settings: Settings, demo_store: StoreSQL) -> None:
    call_id = newest_call_ids(demo_store, 1)[0]
    received: list[tuple[str, object]] = []

    async def on_log(params: object) -> None:
        received.append((params.level, params.data))  # type: ignore[attr-defined]

    async with Client(create_server(settings), mode="legacy", logging_callback=on_log) as client:
        assert client.server_capabilities.logging is not None
        await client.call_tool("analyze_call", {"call_id": call_id})
        assert ("info", f"Analysing call {call_id}") in received
        received.clear()
        # Deprecated at the 2026-07-28 revision; handshake-era clients (Claude Desktop among them) still send it.
        with pytest.warns(MCPDeprecationWarning):
            await client.set_logging_level("error")
        await client.call_tool("analyze_call", {"call_id": call_id})
        assert [level for level, _ in received if level in ("info", "warning")] == []


@sqlite_only  # rewinds the file's schema with SQLite's own script
async def test_the_migration_keeps_the_newest_of_repeated_history_rows(
    settings: Settings, data_dir: Path, demo_store: StoreSQL
) -> None:
    client_id, [call_id] = a_clients_oldest_calls(demo_store, 1)
    async with Client(create_server(settings)) as client:
        structured(await client.call_tool("analyze_call", {"call_id": call_id}))
    # The store as the version before this migration left it: every re-analysis had appended the same point again.
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        conn.execute("DROP INDEX client_health_history_source")
        for score in (11.0, 22.0):
            conn.execute(
                "INSERT INTO client_health_history (client_id, score, components, explanation, as_of, source_call_id, "
                "run_id, recorded_at) SELECT client_id, ?, components, explanation, as_of, source_call_id, run_id, "
                "recorded_at FROM client_health_history WHERE client_id = ? LIMIT 1",
                (score, client_id),
            )
        conn.execute(
            "INSERT INTO client_health_history (client_id, score, components, explanation, as_of, recorded_at) "
            "VALUES ('no-source', 50, '[]', '', '2026-01-01', '2026-01-01'), "
            "('no-source', 50, '[]', '', '2026-01-02', '2026-01-02')"
        )
        conn.executescript(next(m for m in MIGRATIONS if "client_health_history_source" in m))
    history = health_history(demo_store, client_id)
    assert [(score, source) for score, _, source in history] == [(22.0, call_id)]
    assert len(health_history(demo_store, "no-source")) == 2  # rows without a source call are not the same point
