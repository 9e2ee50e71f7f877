"""A hand-built Gong export (the API's own shapes) imported and analysed, with figures checked exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from sophia_mcp.servers.gong import create_server
from tests.support.exports import CALL
from tests.support.results import structured
from tests.support.settings import make_settings

pytestmark = pytest.mark.anyio


async def test_exact_figures_from_the_transcript(imported: Path) -> None:
    async with Client(create_server(make_settings(imported, health={"threshold": 70}))) as client:
        detail = structured(await client.call_tool("get_call", {"call_id": CALL}))
        report = structured(await client.call_tool("analyze_call", {"call_id": CALL}))
    call = detail["call"]
    assert call["client_id"] == "9001" and call["client_name"] == "Lakeshore Living"
    assert call["duration_s"] == 62
    assert {p["name"]: p["affiliation"] for p in call["parties"]} == {
        "Dana Reyes": "Internal",
        "Sam Ortiz": "External",
        "Notetaker": "Unknown",
    }
    talk = report["analysis"]["talk"]
    assert talk["internal_ms"] == 12000
    assert talk["external_ms"] == 24000
    assert talk["unknown_ms"] == 2000  # the dial-in speaker has no party and must not break anything
    assert talk["internal_ratio"] == pytest.approx(1 / 3)
    assert talk["longest_monologue_ms"] == 24000
    assert talk["longest_monologue_speaker_id"] == "222"
    assert (talk["questions_internal"], talk["questions_external"]) == (2, 0)
    mentions = report["analysis"]["competitor_mentions"]
    assert [(m["competitor"], m["speaker_name"], m["at_ms"]) for m in mentions] == [("AppFolio", "Sam Ortiz", 19000)]
    kinds = {r["kind"] for r in report["analysis"]["risk_factors"]}
    assert {"pricing", "churn_intent", "competitor_evaluation"} <= kinds
    assert report["analysis"]["sentiment"]["label"] == "negative"
    assert report["health"]["score"] < 70 and report["at_risk"]
    assert report["alert"]["key"] == f"health-alert:9001:{CALL}"


async def test_call_without_client_or_transcript(imported: Path) -> None:
    async with Client(create_server(make_settings(imported))) as client:
        report = structured(await client.call_tool("analyze_call", {"call_id": "1234500000000000001"}))
        page = structured(await client.call_tool("get_transcript", {"call_id": "1234500000000000001"}))
    assert report["client_id"] is None and report["health"] is None and report["alert"] is None
    assert report["analysis"]["talk"]["internal_ratio"] is None
    assert page["total_sentences"] == 0 and page["lines"] == [] and page["next_cursor"] is None


async def test_competitor_filter_uses_mentions_found_at_import(imported: Path) -> None:
    async with Client(create_server(make_settings(imported))) as client:
        appfolio = structured(await client.call_tool("list_calls", {"competitor": "appfolio"}))
        yardi = structured(await client.call_tool("list_calls", {"competitor": "Yardi Breeze"}))
    assert [c["id"] for c in appfolio["calls"]] == [CALL]
    assert yardi["calls"] == []
