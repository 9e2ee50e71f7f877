"""Churn prediction through the composite server: a calibrated model trained on the store's history, risks with
reasons, actions once a week for clients above the threshold, and clear errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from mcp import Client

from sophia_mcp.servers.composite import create_server
from tests.support.results import structured, text_of
from tests.support.settings import make_settings
from tests.support.store_file import newest_call_ids

pytestmark = pytest.mark.anyio


def churn_side_effects(data_dir: Path) -> dict[str, int]:
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        return {
            kind: conn.execute(f"SELECT count(*) FROM outbox WHERE key LIKE '{kind}:%'").fetchone()[0]
            for kind in ("churn-issue", "churn-alert")
        } | {"meetings": conn.execute("SELECT count(*) FROM meetings WHERE key LIKE 'churn-meeting:%'").fetchone()[0]}


async def test_risks_with_reasons_and_actions_once(data_dir: Path) -> None:
    settings = make_settings(data_dir, churn={"threshold": 0.5})
    async with Client(create_server(settings)) as client:
        for call_id in newest_call_ids(data_dir, 200):
            structured(await client.call_tool("gong_analyze_call", {"call_id": call_id}))
        runs = [structured(await client.call_tool("predict_churn", {})) for _ in range(3)]
        health = {r[0]: r[5] for r in structured(
            await client.call_tool("run_metric", {"name": "client_health", "limit": 200}))["rows"]}  # fmt: skip
        leadership = structured(await client.call_tool("alerts_list_alerts", {"channel": "#leadership"}))
    first = runs[0]
    assert first["trained_on"] >= 300 and 0.1 < first["churn_rate"] < 0.5 and first["brier"] < 0.25
    risks = first["clients_at_risk"]
    assert [r["probability"] for r in risks] == sorted((r["probability"] for r in risks), reverse=True)
    assert all(0 <= r["probability"] <= 1 for r in risks) and all(r["reasons"] for r in risks[:5])
    above = [r for r in risks if r["probability"] >= 0.5]
    assert first["above_threshold"] == len(above) > 0
    assert all(set(r["actions"]) == {"issue", "alert", "meeting"} for r in above)
    assert all(r["actions"]["issue"].startswith("CS-") for r in above)
    # Risk follows health: the clients above the threshold are, on average, less healthy than the rest.
    scored = [r for r in risks if r["client_id"] in health]
    low = [health[r["client_id"]] for r in scored if r["probability"] >= 0.5]
    rest = [health[r["client_id"]] for r in scored if r["probability"] < 0.5]
    assert sum(low) / len(low) < sum(rest) / len(rest)
    counts = churn_side_effects(data_dir)
    assert counts["churn-issue"] == counts["churn-alert"] == first["above_threshold"]
    assert counts["meetings"] <= first["above_threshold"] and len(leadership["alerts"]) == first["above_threshold"]
    assert runs[2]["above_threshold"] == first["above_threshold"]


async def test_bad_threshold_thin_history_and_outcomes(data_dir: Path, tmp_path: Path) -> None:
    async with Client(create_server(make_settings(data_dir))) as client:
        bad = await client.call_tool("predict_churn", {"threshold": 1.5})
        structured(await client.call_tool("predict_churn", {"act": False}))  # snapshots this week's features
        clients = structured(await client.call_tool("crm_list_clients", {"limit": 1}))["clients"]
        recorded = structured(
            await client.call_tool("record_outcome", {"client": clients[0]["client"]["id"], "outcome": "churned"})
        )
        unknown = await client.call_tool("record_outcome", {"client": "No Such Firm", "outcome": "renewed"})
    assert bad.is_error and "threshold" in text_of(bad)
    assert recorded["snapshots"] == 1 and recorded["outcome"] == "churned"
    assert unknown.is_error and "No client matches" in text_of(unknown)
    async with Client(create_server(make_settings(tmp_path / "empty"))) as client:
        thin = await client.call_tool("predict_churn", {})
    assert thin.is_error and "labelled snapshots" in text_of(thin) and "record_outcome" in text_of(thin)
