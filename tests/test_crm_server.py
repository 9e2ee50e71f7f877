"""The crm server on the embedded default, through an in-process MCP client session."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import Client
from mcp_types import PromptReference, ResourceTemplateReference, TextResourceContents

from sophia_mcp.app.backends import build_services
from sophia_mcp.servers.crm import create_server
from sophia_mcp.settings import Settings
from sophia_mcp.workflows.call_health import analyze_call
from tests.support.results import structured, text_of
from tests.support.store_file import StoreSQL, newest_call_ids

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("demo_store")]

CRM_TOOLS = {
    "get_contact", "search_contacts", "enrich_contact", "enrich_contacts", "update_contact", "score_lead",
    "list_clients", "get_client_health",
}  # fmt: skip


def contacts(db: StoreSQL, where: str = "1 = 1") -> list[dict[str, Any]]:
    columns = ["id", "client_id", "email", "last_name", "lead_score", "lead_grade"]
    rows = db.rows(f"SELECT {', '.join(columns)} FROM contacts WHERE {where} ORDER BY id")
    return [dict(zip(columns, row, strict=True)) for row in rows]


def firm_known(db: StoreSQL, email: str) -> bool:
    return bool(db.rows("SELECT 1 FROM firmographics WHERE domain = ?", (email.rsplit("@", 1)[1],)))


async def test_lists_the_crm_tools_with_schemas_and_annotations(settings: Settings) -> None:
    async with Client(create_server(settings)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == CRM_TOOLS
    for tool in tools.values():
        assert tool.output_schema is not None, tool.name
        assert tool.annotations is not None and tool.annotations.title, tool.name
        assert tool.description and len(tool.description) > 60, tool.name
    for name in ("enrich_contact", "enrich_contacts", "update_contact"):
        hints = tools[name].annotations
        assert hints is not None and hints.destructive_hint is True and hints.read_only_hint is False, name
    for name in ("get_contact", "search_contacts", "score_lead", "list_clients", "get_client_health"):
        hints = tools[name].annotations
        assert hints is not None and hints.read_only_hint is True, name


async def test_enrich_contact_scores_writes_changes_and_a_repeat_writes_nothing(
    settings: Settings, demo_store: StoreSQL
) -> None:
    row = next(r for r in contacts(demo_store) if firm_known(demo_store, r["email"]))
    async with Client(create_server(settings)) as client:
        first = structured(await client.call_tool("enrich_contact", {"contact_id": row["id"]}))
        again = structured(await client.call_tool("enrich_contact", {"contact_id": row["id"]}))
    outcome = first["outcome"]
    assert outcome["status"] == "written" and outcome["matched"] is True
    assert set(outcome["changes"]) >= {"seniority", "lead_score", "lead_grade"}
    score = outcome["score"]
    assert 0 <= score["score"] <= 100 and score["grade"] in "ABCD"
    assert {r["factor"] for r in score["reasons"]} == {
        "seniority", "company_size", "industry", "engagement", "client_health"
    }  # fmt: skip
    assert sum(r["points"] for r in score["reasons"]) == pytest.approx(score["score"], abs=0.1)
    stored = contacts(demo_store, f"id = '{row['id']}'")[0]
    assert stored["lead_score"] == score["score"] and stored["lead_grade"] == score["grade"]
    assert first["contact"]["lead_score"] == score["score"]
    assert again["outcome"]["status"] == "unchanged" and again["outcome"]["reused"] is True
    assert again["outcome"]["changes"] == {}


async def test_a_contact_the_enricher_does_not_know_is_scored_honestly(
    settings: Settings, demo_store: StoreSQL
) -> None:
    row = next(r for r in contacts(demo_store) if not firm_known(demo_store, r["email"]))
    async with Client(create_server(settings)) as client:
        result = structured(await client.call_tool("enrich_contact", {"contact_id": row["id"]}))
    outcome = result["outcome"]
    assert outcome["matched"] is False and outcome["status"] == "written"
    assert set(outcome["changes"]) <= {"seniority", "lead_score", "lead_grade"}
    assert result["contact"]["city"] is None  # nothing invented


async def test_enrich_contacts_reports_progress_and_each_contact(settings: Settings, demo_store: StoreSQL) -> None:
    ids = [r["id"] for r in contacts(demo_store)[:30]]
    seen: list[tuple[float, float | None]] = []

    async def on_progress(done: float, total: float | None, _: str | None) -> None:
        seen.append((done, total))

    async with Client(create_server(settings)) as client:
        result = await client.call_tool(
            "enrich_contacts", {"contact_ids": [*ids, "99999999999"]}, progress_callback=on_progress
        )
        report = structured(result)
        rerun = structured(await client.call_tool("enrich_contacts", {"contact_ids": ids}))
    assert report["requested"] == 31 and report["written"] == 30 and report["failed"] == 1
    failure = report["outcomes"][0]
    assert failure["contact_id"] == "99999999999" and "No contact" in failure["error"]
    assert seen and seen[-1][0] == seen[-1][1] == 30
    assert rerun["written"] == 0 and rerun["unchanged"] == 30 and rerun["reused"] == 30


async def test_a_long_enrichment_reports_totals_not_a_row_per_contact(settings: Settings, demo_store: StoreSQL) -> None:
    ids = [r["id"] for r in contacts(demo_store)]
    async with Client(create_server(settings)) as client:
        few = structured(await client.call_tool("enrich_contacts", {"contact_ids": ids[:3]}))
        many = structured(await client.call_tool("enrich_contacts", {"contact_ids": [*ids[3:], "99999999999"]}))
        text = text_of(await client.call_tool("enrich_contacts", {"contact_ids": ids[3:]}))
    assert few["summary"] is None and len(few["outcomes"]) == 3
    summary = many["summary"]
    assert [o["contact_id"] for o in many["outcomes"]] == ["99999999999"]  # the failures only
    assert summary["errors"] == {"No contact with id '99999999999' in local": 1}
    assert sum(summary["grades"].values()) == len(ids) - 3 and set(summary["grades"]) <= {"A", "B", "C", "D"}
    scores = [lead["score"] for lead in summary["top_leads"]]
    assert len(scores) == 5 and scores == sorted(scores, reverse=True)
    assert len(text) < 2_000  # a thousand contacts or a hundred: a page a model reads at a glance


async def test_enrich_contacts_since_takes_recently_changed_contacts(settings: Settings) -> None:
    async with Client(create_server(settings)) as client:
        report = structured(await client.call_tool("enrich_contacts", {"since": "2000-01-01T00:00:00Z"}))
        neither = await client.call_tool("enrich_contacts", {})
    assert report["requested"] == report["written"] > 100
    assert neither.is_error and "contact_ids or since" in text_of(neither)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"contact_id": "99999999999", "changes": {"title": "CEO"}}, "No contact with id '99999999999'"),
        ({"contact_id": "CONTACT", "changes": {"title": "CEO"}}, "contact_id"),
        ({"changes": {"email": "not-an-email"}}, "email"),
        ({"changes": {"lead_score": 99}}, "lead_score is read-only"),
        ({"changes": {"hs_object_id": "1"}}, "hs_object_id is not a contact field"),
        ({"changes": {}}, "give at least one field"),
        ({"changes": {"linkedin_url": "javascript:alert(1)"}}, "linkedin_url"),
    ],
)
async def test_bad_updates_get_a_clear_error(
    settings: Settings, demo_store: StoreSQL, arguments: dict[str, Any], expected: str
) -> None:
    contact_id = contacts(demo_store)[0]["id"]
    async with Client(create_server(settings)) as client:
        result = await client.call_tool("update_contact", {"contact_id": contact_id} | arguments)
    assert result.is_error
    text = text_of(result)
    assert expected in text
    assert "Traceback" not in text and "pydantic.dev" not in text


async def test_update_contact_writes_and_clears_fields(settings: Settings, demo_store: StoreSQL) -> None:
    contact_id = contacts(demo_store)[0]["id"]
    async with Client(create_server(settings)) as client:
        updated = structured(
            await client.call_tool(
                "update_contact",
                {
                    "contact_id": contact_id,
                    "changes": {"title": "Chief Operating Officer", "email": "Ana@Example.com", "phone": ""},
                },
            )
        )
        scored = structured(await client.call_tool("score_lead", {"contact_id": contact_id}))
    assert updated["title"] == "Chief Operating Officer" and updated["phone"] is None
    assert updated["email"].lower() == "ana@example.com"
    assert scored["signals"]["title"] == "Chief Operating Officer"
    assert {r["factor"]: r["points"] for r in scored["score"]["reasons"]}["seniority"] == 25


async def test_search_get_and_client_health(settings: Settings, demo_store: StoreSQL) -> None:
    services = build_services(settings)
    call_id = newest_call_ids(demo_store, 1)[0]
    report = await analyze_call(services, call_id)
    await services.aclose()
    services.close()
    async with Client(create_server(settings)) as client:
        page = structured(await client.call_tool("search_contacts", {"client_id": report.client_id, "limit": 2}))
        assert page["contacts"] and all(c["client_id"] == report.client_id for c in page["contacts"])
        detail = structured(await client.call_tool("get_contact", {"contact_id": page["contacts"][0]["id"]}))
        by_name = structured(await client.call_tool("get_client_health", {"client": report.client_name}))
        clients = structured(await client.call_tool("list_clients", {"query": report.client_name[:6]}))
        text = structured(await client.call_tool("search_contacts", {"query": detail["contact"]["last_name"]}))
        unknown = await client.call_tool("get_client_health", {"client": "No Such Company Inc"})
    assert detail["client"]["id"] == report.client_id
    assert by_name["client"]["id"] == report.client_id
    assert by_name["health"]["health"]["score"] == pytest.approx(report.health.score if report.health else -1)
    assert by_name["at_risk"] == (by_name["health"]["health"]["score"] < by_name["threshold"])
    assert any(c["client"]["id"] == report.client_id and c["health_score"] is not None for c in clients["clients"])
    assert any(c["id"] == detail["contact"]["id"] for c in text["contacts"])
    assert unknown.is_error and "No client matches" in text_of(unknown)


async def test_search_words_match_the_company_in_any_case_and_take_wildcards_as_themselves(
    settings: Settings, demo_store: StoreSQL
) -> None:
    rows = demo_store.rows(
        "SELECT ct.id, ct.first_name, ct.last_name, ct.email, ct.title, cl.name "
        "FROM contacts ct LEFT JOIN clients cl ON cl.id = ct.client_id"
    )
    member = next(r for r in rows if r[5])
    company = max(member[5].split(), key=len)

    def holding(word: str) -> set[str]:
        return {
            r[0] for r in rows
            if any(word.lower() in (part or "").lower() for part in (f"{r[1]} {r[2]}", r[3], r[4], r[5]))
        }  # fmt: skip

    async with Client(create_server(settings)) as client:
        found = {}
        for word in (company.upper(), "_", "%", "a%b"):
            page = structured(await client.call_tool("search_contacts", {"query": word, "limit": 100}))
            found[word] = ({c["id"] for c in page["contacts"]}, page["total"])
    assert found[company.upper()][0] == holding(company) and found[company.upper()][1] == len(holding(company))
    assert member[0] in found[company.upper()][0]
    for word in ("_", "%", "a%b"):
        assert found[word] == (holding(word), len(holding(word))), word


async def test_search_pages_through_every_contact_once(settings: Settings, demo_store: StoreSQL) -> None:
    seen: list[str] = []
    cursor = None
    async with Client(create_server(settings)) as client:
        while True:
            page = structured(await client.call_tool("search_contacts", {"limit": 50, "cursor": cursor}))
            seen += [c["id"] for c in page["contacts"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert sorted(seen) == [r["id"] for r in contacts(demo_store)]


async def test_a_search_paged_gives_its_matches_in_id_order_with_one_total(
    settings: Settings, demo_store: StoreSQL
) -> None:
    pages = []
    cursor = None
    async with Client(create_server(settings)) as client:
        while True:
            pages.append(
                structured(await client.call_tool("search_contacts", {"query": "a", "limit": 7, "cursor": cursor}))
            )
            cursor = pages[-1]["next_cursor"]
            if cursor is None:
                break
    seen = [c["id"] for page in pages for c in page["contacts"]]
    assert len(pages) > 2 and {page["total"] for page in pages} == {len(seen)}
    assert seen == sorted(set(seen)) and all(len(page["contacts"]) == 7 for page in pages[:-1])


async def test_resources_prompts_and_completions(settings: Settings, demo_store: StoreSQL) -> None:
    row = contacts(demo_store)[0]
    async with Client(create_server(settings)) as client:
        contact = await client.read_resource(f"crm://contacts/{row['id']}")
        client_doc = await client.read_resource(f"crm://clients/{row['client_id']}")
        health = await client.read_resource(f"crm://clients/{row['client_id']}/health")
        prompt = await client.get_prompt("qualify_lead", {"contact_id": row["id"]})
        by_name = await client.complete(
            PromptReference(name="qualify_lead"), {"name": "contact_id", "value": row["last_name"][:4]}
        )
        client_ids = await client.complete(
            ResourceTemplateReference(uri="crm://clients/{client_id}/health"),
            {"name": "client_id", "value": row["client_id"][:3]},
        )
        missing = None
        try:
            await client.read_resource("crm://clients/0000000001/health")
        except Exception as exc:
            missing = str(exc)

    def body(result: Any) -> dict[str, Any]:
        content = result.contents[0]
        assert isinstance(content, TextResourceContents)
        return dict(json.loads(content.text))

    assert body(contact)["contact"]["id"] == row["id"]
    assert body(client_doc)["id"] == row["client_id"]
    assert body(health)["client"]["id"] == row["client_id"]
    assert row["id"] in text_of_prompt(prompt)
    assert row["id"] in by_name.completion.values
    assert row["client_id"] in client_ids.completion.values
    assert missing is not None and "No client with id" in missing


def text_of_prompt(prompt: Any) -> str:
    return "\n".join(getattr(m.content, "text", "") for m in prompt.messages)
