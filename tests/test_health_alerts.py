"""Health alerts follow changes: once when a client crosses under the threshold, again only after a further drop
of SOPHIA_HEALTH__REALERT_DROP points or after it recovered and fell again, each saying what changed."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client as MCPClient
from typer.testing import CliRunner

from sophia_mcp.cli.main import app
from sophia_mcp.domain.health_alerts import LastAlert
from sophia_mcp.domain.results import HealthComponent, HealthScore
from sophia_mcp.servers.gong import create_server
from sophia_mcp.workflows.health_alerts import decide
from tests.support.exports import EVAL
from tests.support.processes import env_for
from tests.support.results import structured
from tests.support.settings import make_settings
from tests.support.store_file import outbox_rows

UNHAPPY = "call_07.json"  # Alder Street: not sure it will renew, its VP liked a competitor's demo


def five_unhappy_calls(data_dir: Path) -> list[str]:
    """Five calls a week apart with the same unhappy client, imported from one Gong export."""
    pages = json.loads((EVAL / "gong" / UNHAPPY).read_text())
    calls, transcripts, ids = [], [], []
    for n in range(5):
        call = copy.deepcopy(pages[0]["calls"][0])
        transcript = copy.deepcopy(pages[1]["callTranscripts"][0])
        call_id = f"42000000000000000{n:02d}"
        started = datetime(2026, 9, 1, 15, tzinfo=UTC) + timedelta(days=7 * n)
        call["metaData"] |= {"id": call_id, "started": started.isoformat()}
        transcript["callId"] = call_id
        calls.append(call)
        transcripts.append(transcript)
        ids.append(call_id)
    export = data_dir.parent / "five.json"
    export.write_text(json.dumps([{"calls": calls}, {"callTranscripts": transcripts}]))
    result = CliRunner().invoke(app, ["calls", "import", str(export)], env=env_for(data_dir))
    assert result.exit_code == 0, result.output
    return ids


def analyse_all(data_dir: Path, call_ids: list[str]) -> list[dict[str, Any]]:
    async def session() -> list[dict[str, Any]]:
        async with MCPClient(create_server(make_settings(data_dir))) as client:
            return [structured(await client.call_tool("analyze_call", {"call_id": c})) for c in call_ids]

    return anyio.run(session)


def test_a_client_under_the_threshold_for_five_calls_in_a_row_is_alerted_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ids = five_unhappy_calls(data_dir)
    reports = analyse_all(data_dir, ids)
    assert all(r["at_risk"] for r in reports)
    assert [r["alert"] is not None for r in reports] == [True, False, False, False, False]
    assert reports[0]["alert_change"] == "Health crossed under the threshold of 70."
    assert all(r["alert_change"].startswith("already alerted since the last alert on 2026-09-01") for r in reports[1:])
    assert [key for key, _ in outbox_rows(data_dir) if key.startswith("health-alert:")] == [reports[0]["alert"]["key"]]
    # Analysing a call again sends nothing new.
    [again] = analyse_all(data_dir, ids[:1])
    assert again["alert"] is None and again["at_risk"] is True
    assert len([key for key, _ in outbox_rows(data_dir) if key.startswith("health-alert:")]) == 1


def health(score: float, risk: float = 50) -> HealthScore:
    parts = {"sentiment": 50.0, "risk": risk, "engagement": 80.0, "competition": 70.0}
    components = [HealthComponent(name=n, score=s, weight=0.25, detail="") for n, s in parts.items()]  # type: ignore[arg-type]
    return HealthScore(score=score, components=components, explanation="")


def last(score: float, recovered: float | None = None) -> LastAlert:
    return LastAlert(
        key="health-alert:c1:1", score=score, components={"sentiment": 50, "risk": 80, "engagement": 80,
        "competition": 70}, call_id="1", call_started=datetime(2026, 9, 1, tzinfo=UTC), recovered_score=recovered,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("previous", "now", "alert", "says"),
    [
        (None, 65, True, "Health crossed under the threshold of 70."),
        (last(65), 56, False, "already alerted since the last alert on 2026-09-01 (65/100); alerts again at 55"),
        (last(65), 55, True, "Down 10 points since the last alert on 2026-09-01 (65/100) (risk 80 → 50)."),
        (last(65, recovered=74), 66, True, "Back under the threshold after recovering to 74/100 since the last"),
        (last(65), 72, False, "client health is not under the threshold"),
    ],
)
def test_a_further_drop_or_a_fall_after_recovering_alerts_again(
    previous: LastAlert | None, now: float, alert: bool, says: str
) -> None:
    decision = decide(previous, health(now), threshold=70, drop=10, key="health-alert:c1:2")
    assert decision.alert is alert and decision.change.startswith(says)
