"""The composite server: the domain servers' tools under their prefixes, plus its own, all described for a
model (annotations and output schemas), and instructions that say which tool serves which ask."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client
from mcp_types import PromptReference

from sophia_mcp.servers import alerts, crm, gong, knowledge, linear
from sophia_mcp.servers.composite import create_server
from tests.support.results import structured, text_of
from tests.support.settings import make_settings
from tests.support.store_file import StoreSQL, newest_call_ids

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("demo_store")]


async def test_every_domain_tool_is_there_under_its_prefix_with_annotations_and_output_schema(
    data_dir: Path,
) -> None:
    settings = make_settings(data_dir)
    async with Client(create_server(settings)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        instructions = client.instructions or ""
    for prefix, module in {
        "gong": gong,
        "crm": crm,
        "knowledge": knowledge,
        "alerts": alerts,
        "linear": linear,
    }.items():
        async with Client(module.create_server(settings)) as domain:
            names = [t.name for t in (await domain.list_tools()).tools]
        assert {f"{prefix}_{n}" for n in names} <= set(tools), prefix
    assert {"run_metric", "query_warehouse"} <= set(tools)
    for tool in tools.values():
        assert tool.annotations is not None and tool.annotations.title, tool.name
        assert tool.output_schema is not None, tool.name
        assert tool.description and len(tool.description) > 40, tool.name
    assert instructions and "run_metric" in instructions and "gong_analyze_call" in instructions


async def test_workflow_prompts_and_their_completions(data_dir: Path) -> None:
    async with Client(create_server(make_settings(data_dir))) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        briefing = await client.get_prompt("executive_briefing", {"question": "Where is ARR at risk?"})
        competitors = await client.complete(
            PromptReference(type="ref/prompt", name="competitor_watch"), {"name": "competitor", "value": "App"}
        )
        clients = await client.complete(
            PromptReference(type="ref/prompt", name="churn_review"), {"name": "client", "value": "Oak"}
        )
    assert {"executive_briefing", "churn_review", "competitor_watch", "dashboard_request"} <= set(prompts)
    assert all(p.description for p in prompts.values())
    assert "strategic_query" in briefing.messages[0].content.text  # type: ignore[union-attr]
    assert competitors.completion.values == ["AppFolio"]
    assert clients.completion.values and all("Oak" in v for v in clients.completion.values)


async def test_every_workflow_runs_through_the_composite_server_on_the_embedded_default(
    data_dir: Path, demo_store: StoreSQL
) -> None:
    async with Client(create_server(make_settings(data_dir))) as client:
        call = await client.call_tool("gong_analyze_call", {"call_id": newest_call_ids(demo_store, 1)[0]})
        contacts = structured(await client.call_tool("crm_search_contacts", {"limit": 2}))["contacts"]
        runs = {
            "analyze call": call,
            "enrich contact": await client.call_tool("crm_enrich_contact", {"contact_id": contacts[0]["id"]}),
            "enrich contacts": await client.call_tool(
                "crm_enrich_contacts", {"contact_ids": [c["id"] for c in contacts]}
            ),
            "ingest": await client.call_tool("knowledge_ingest_text", {"title": "Note", "text": "Gate code 4512."}),
            "search": await client.call_tool("knowledge_search_documents", {"query": "gate code"}),
            "health monitor": await client.call_tool("alerts_run_health_monitor", {}),
            "bug report": await client.call_tool(
                "linear_report_bug", {"text": "Export fails", "reporter": "@maria", "channel": "#support"}
            ),
            "strategic query": await client.call_tool("strategic_query", {"question": "Who is at risk?"}),
            "metric": await client.call_tool("run_metric", {"name": "revenue_by_segment"}),
            "sql": await client.call_tool("query_warehouse", {"sql": "SELECT count(*) FROM calls"}),
            "churn": await client.call_tool("predict_churn", {"act": False}),
            "competitive": await client.call_tool("competitive_intelligence", {}),
            "dashboard": await client.call_tool("build_dashboard", {"request": "client health"}),
        }
    failed = {name: r.content for name, r in runs.items() if r.is_error or r.structured_content is None}
    assert failed == {}


async def test_every_tool_that_takes_seconds_reports_progress_to_the_client(data_dir: Path) -> None:
    calls = {
        "predict_churn": {"act": False},
        "competitive_intelligence": {},
        "knowledge_ingest_text": {"title": "Gate codes", "text": "The gate code is 4512."},
        "build_dashboard": {"request": "client health and competitor mentions"},
    }
    heard: dict[str, list[tuple[float, float | None, str | None]]] = {name: [] for name in calls}
    async with Client(create_server(make_settings(data_dir))) as client:
        for name, arguments in calls.items():

            async def on_progress(done: float, total: float | None, message: str | None, name: str = name) -> None:
                heard[name].append((done, total, message))

            structured(await client.call_tool(name, arguments, progress_callback=on_progress))
    for name, updates in heard.items():
        assert len(updates) >= 3 and all(message for _, _, message in updates), (name, updates)
        assert updates[-1][0] == updates[-1][1], (name, updates)  # it ends at its total
        assert [done for done, _, _ in updates] == sorted(done for done, _, _ in updates), name
    assert "embedding 1 chunk" in [m for _, _, m in heard["knowledge_ingest_text"]], heard["knowledge_ingest_text"]


async def test_metrics_cover_the_strategic_query_dashboards_and_bug_reports(data_dir: Path) -> None:
    async with Client(create_server(make_settings(data_dir))) as client:
        question = {"question": "Who is at risk?", "sources": ["warehouse"], "synthesize": False}
        structured(await client.call_tool("strategic_query", question))
        structured(await client.call_tool("build_dashboard", {"request": "client health"}))
        bug = {"text": "Export fails", "reporter": "@maria", "channel": "#support"}
        structured(await client.call_tool("linear_report_bug", bug))
        metrics = json.loads((await client.read_resource("sophia://metrics")).contents[0].text)  # type: ignore[union-attr]
    counted = {m["workflow"]: (m["runs"], m["succeeded"]) for m in metrics["workflows"]}
    assert {"strategic_query", "build_dashboard", "report_bug"} <= set(counted), counted
    assert counted["strategic_query"] == counted["build_dashboard"] == counted["report_bug"] == (1, 1)


async def test_a_health_trend_for_an_unknown_client_is_an_error_not_an_empty_table(
    data_dir: Path, demo_store: StoreSQL
) -> None:
    async with Client(create_server(make_settings(data_dir))) as client:
        unknown = await client.call_tool("run_metric", {"name": "health_trend", "client_id": "no-such-client"})
        mentions = await client.call_tool("run_metric", {"name": "competitor_mentions", "client_id": "nobody"})
        known = await client.call_tool("run_metric", {"name": "health_trend", "client_id": first_client(demo_store)})
    assert unknown.is_error and "No client 'no-such-client'" in text_of(unknown)
    assert mentions.is_error and "No client 'nobody'" in text_of(mentions)
    assert not known.is_error


async def test_a_null_limit_means_the_default(data_dir: Path) -> None:
    calls = {
        "gong_list_calls": {}, "crm_list_clients": {}, "crm_search_contacts": {}, "alerts_list_alerts": {},
        "alerts_list_meetings": {}, "linear_search_issues": {}, "knowledge_list_documents": {},
        "knowledge_search_documents": {"query": "pricing"}, "run_metric": {"name": "client_health"},
        "query_warehouse": {"sql": "SELECT id FROM calls"},
    }  # fmt: skip
    async with Client(create_server(make_settings(data_dir))) as client:
        structured(await client.call_tool("alerts_run_health_monitor", {}))  # alerts and meetings to list
        pages = {
            name: (
                structured(await client.call_tool(name, arguments | {"limit": None})),
                structured(await client.call_tool(name, arguments)),
            )
            for name, arguments in calls.items()
        }
    different = {name: null for name, (null, default) in pages.items() if null != default}
    assert different == {}
    assert len(pages["gong_list_calls"][0]["calls"]) == 20 and len(pages["query_warehouse"][0]["rows"]) == 100


async def test_the_warehouse_reads_the_store_s_own_engine_in_sqlite_s_dialect(
    data_dir: Path, demo_store: StoreSQL
) -> None:
    renewals = demo_store.value("SELECT count(*) FROM calls WHERE lower(title) LIKE '%renewal%'")
    forever = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
    counting = "SELECT count(*) AS n FROM calls WHERE title LIKE '%RENEWAL%' AND title <> 'why? 100%'"
    async with Client(create_server(make_settings(data_dir, analytics={"timeout_s": 0.5}))) as client:
        counted = structured(await client.call_tool("query_warehouse", {"sql": counting}))
        stopped = await client.call_tool("query_warehouse", {"sql": forever})
        unknown = await client.call_tool("query_warehouse", {"sql": "SELECT nope FROM calls"})
        segments = structured(await client.call_tool("run_metric", {"name": "revenue_by_segment"}))
        schema = structured(await client.call_tool("describe_warehouse", {}))
    assert renewals > 0 and counted["rows"] == [[renewals]]  # LIKE ignores case on both, as SQLite's does
    assert stopped.is_error and "ran past its 0.5 s" in text_of(stopped)
    assert unknown.is_error and "nope" in text_of(unknown) and "Traceback" not in text_of(unknown)
    assert sum(row[1] for row in segments["rows"]) == demo_store.value("SELECT count(*) FROM clients")
    assert schema["dialect"] == "sqlite"
    calls = next(t for t in schema["tables"] if t["name"] == "calls")
    assert {"id", "title", "started", "client_id"} <= {c["name"] for c in calls["columns"]}


def first_client(db: StoreSQL) -> str:
    return str(db.value("SELECT id FROM clients ORDER BY id LIMIT 1"))
