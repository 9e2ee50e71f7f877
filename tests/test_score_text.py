"""A score printed beside its threshold reads on the same side of it as the score is: a client at 69.8 is never
"70 (threshold 70)", in an alert, an issue, a meeting request or on the dashboard."""

from __future__ import annotations

import json
import math
import re
import sqlite3
from pathlib import Path

import anyio
import pytest
from mcp import Client

from sophia_mcp.analysis.health import format_score, format_threshold
from sophia_mcp.servers.composite import create_server
from tests.support.results import structured
from tests.support.settings import make_settings
from tests.support.store_file import newest_call_ids, set_health

pytestmark = pytest.mark.anyio


def payloads(data_dir: Path, key_like: str) -> list[str]:
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        rows = conn.execute("SELECT payload FROM outbox WHERE key LIKE ? ORDER BY id", (key_like,)).fetchall()
    return [json.dumps(json.loads(r[0]), ensure_ascii=False) for r in rows]


def test_a_score_reads_on_its_own_side_of_the_threshold() -> None:
    assert [format_score(s) for s in (72.0, 69.8, 0.0, 100.0, 62.5)] == ["72", "69.8", "0", "100", "62.5"]
    assert format_score(69.8, 70) == "69.8" and format_score(70.0, 70) == "70"
    assert format_score(69.96, 70) == "69.96" and format_score(69.999, 70) == "69.999"
    assert format_score(70.04, 70) == "70"  # not under 70, and reads so
    # A threshold is printed as set: a score of 70 under a threshold of 70.04 does not read "70 (threshold 70)".
    assert (format_score(70.0, 70.04), format_threshold(70.04)) == ("70", "70.04") and format_threshold(70) == "70"


async def test_a_client_at_69_8_is_not_called_70_under_70_anywhere(data_dir: Path) -> None:
    set_health(data_dir, {"low": 69.8, "even": 70.0})
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        low, even = (r[0] for r in conn.execute("SELECT name FROM clients ORDER BY id LIMIT 2"))
    async with Client(create_server(make_settings(data_dir))) as client:
        report = structured(await client.call_tool("alerts_run_health_monitor", {}))
        page = structured(await client.call_tool("build_dashboard", {"request": "client health"}))
    assert [(r["name"], r["score"]) for r in report["worst"]] == [(low, 69.8)]
    [issue], [alert] = payloads(data_dir, "health-issue:%"), payloads(data_dir, "health-monitor:%")
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        [meeting] = [r[0] for r in conn.execute("SELECT title || ' ' || ics FROM meetings")]
    assert "health is **69.8**/100, under the threshold of 70" in issue and f"{low}: health 69.8 (" in issue
    assert "health is 69.8/100 (threshold 70)" in alert and "69.8/100" in meeting.replace("\r\n ", "")
    for text in (issue, alert, meeting):
        assert not re.search(r"\b70\**/100", text), text
    html = await anyio.Path(page["path"]).read_text()
    # Each bar's label beside its colour: the one under the threshold is red and says 69.8, the one at it 70.
    labels = re.findall(r'<rect class="bar" data-value="([\d.]+)"[^>]*fill="(#\w+)"/><text [^>]*>([\d.]+)</text>', html)
    assert ("69.80", "#c0392b", "69.8") in labels and ("70.00", "#2e8b57", "70") in labels, labels
    assert f"<td>{low}</td>" in html and "<td>69.8</td>" in html and f"<td>{even}</td>" not in html  # under it


async def test_the_call_alert_says_the_score_beside_a_threshold_it_is_under(data_dir: Path) -> None:
    [call_id] = newest_call_ids(data_dir, 1)
    async with Client(create_server(make_settings(data_dir, health={"threshold": 0}))) as client:
        score = structured(await client.call_tool("gong_analyze_call", {"call_id": call_id}))["health"]["score"]
    # A threshold just over the score, which rounding both to whole numbers would print as the same number.
    threshold = math.ceil(score) if score - math.floor(score) >= 0.5 else math.floor(score) + 0.49
    assert f"{score:.0f}" == f"{threshold:.0f}" and score < threshold
    async with Client(create_server(make_settings(data_dir, health={"threshold": threshold}))) as client:
        report = structured(await client.call_tool("gong_analyze_call", {"call_id": call_id}))
    assert report["at_risk"] and report["alert"]["new"]
    [alert] = payloads(data_dir, "health-alert:%")
    assert f"health {format_score(score)}/100 (threshold {format_threshold(threshold)})" in alert
    assert f"health {score:.0f}/100 (threshold {threshold:.0f})" not in alert
