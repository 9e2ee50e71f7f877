"""The `sophia-mcp` command, through typer's runner and as a real process."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from datetime import date
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from sophia_mcp.cli.main import app
from sophia_mcp.demo.calls import generate_demo
from tests.support.cli import invoke, runner
from tests.support.processes import SCRIPT, env_for, free_port
from tests.support.results import structured
from tests.support.store_file import newest_call_ids


def write_export(folder: Path, calls: int) -> list[str]:
    """A Gong export as a user would save it: one extensive page and one transcript page."""
    data = generate_demo(date(2026, 6, 1), seed=11)
    chosen = data.calls_extensive["calls"][:calls]
    ids = {c["metaData"]["id"] for c in chosen}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "calls.json").write_text(json.dumps(data.calls_extensive | {"calls": chosen}))
    transcripts = [t for t in data.transcripts["callTranscripts"] if t["callId"] in ids]
    (folder / "nested").mkdir(exist_ok=True)
    (folder / "nested" / "transcripts.json").write_text(json.dumps(data.transcripts | {"callTranscripts": transcripts}))
    return sorted(ids)


def count(data_dir: Path, sql: str) -> int:
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        return int(conn.execute(sql).fetchone()[0])


def test_calls_import_is_idempotent(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ids = write_export(tmp_path / "export", 12)
    code, out = invoke(data_dir, "calls", "import", str(tmp_path / "export"))
    assert code == 0, out
    assert "12 new calls, 0 updated, 0 unchanged; 12 transcripts from 2 files" in out
    code, out = invoke(data_dir, "calls", "import", str(tmp_path / "export"))
    assert code == 0, out
    assert "0 new calls, 0 updated, 12 unchanged; 12 transcripts" in out  # the same export again changes nothing
    assert count(data_dir, "SELECT COUNT(*) FROM calls") == 12
    assert count(data_dir, "SELECT COUNT(*) FROM call_parties") == count(
        data_dir, "SELECT COUNT(*) FROM (SELECT DISTINCT call_id, party_id FROM call_parties)"
    )
    # Calls link to the CRM account Gong names, even with no CRM data loaded.
    assert count(data_dir, "SELECT COUNT(*) FROM calls WHERE client_id IS NULL") == 0
    code, out = invoke(data_dir, "run", "analyze-call", ids[0])
    assert code == 0, out
    assert "Health:" in out


def test_calls_import_reports_what_it_cannot_read(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    code, out = invoke(data_dir, "calls", "import", str(tmp_path / "bad.json"), str(tmp_path / "other.json"))
    assert code == 1
    assert "bad.json is not readable JSON" in out
    assert "other.json: not a Gong /v2/calls/extensive or /v2/calls/transcript response" in out
    code, out = invoke(data_dir, "calls", "import", str(tmp_path / "missing"))
    assert code == 1 and "does not exist" in out


def test_transcript_without_its_call_is_reported(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    write_export(tmp_path / "export", 3)
    code, out = invoke(data_dir, "calls", "import", str(tmp_path / "export" / "nested" / "transcripts.json"))
    assert code == 1
    assert "its call is not in the store" in out


def test_run_analyze_call_unknown_id(tmp_path: Path) -> None:
    code, out = invoke(tmp_path / "data", "run", "analyze-call", "123")
    assert code == 1
    assert "No call with id '123'" in out


def test_doctor_shows_ports_and_hides_secrets(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["doctor"],
        env=env_for(tmp_path / "data", COLUMNS="200", SOPHIA_SLACK__BOT_TOKEN="xoxb-very-secret-token"),
    )
    assert result.exit_code == 0, result.output
    assert "CallSource" in result.output and "local (embedded)" in result.output
    assert "bot_token" in result.output
    assert "xoxb-very-secret-token" not in result.output


def test_doctor_reports_redis_down_as_a_warning_not_a_traceback(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens there: Redis is down
    env = env_for(tmp_path / "data", COLUMNS="200", SOPHIA_REDIS__URL=f"redis://127.0.0.1:{closed}/0")
    result = runner.invoke(app, ["doctor"], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output
    assert "Cache Redis cannot be reached (ConnectionError); until it can, each process caches" in result.output
    assert result.output.strip().endswith("Everything configured can be used, with 1 warning above.")


def test_doctor_finds_a_store_whose_pages_are_damaged(data_dir: Path) -> None:
    store = data_dir / "sophia.db"
    pages = store.stat().st_size // 4096
    with store.open("r+b") as db:  # garbage over every seventh page of the middle third, the header intact
        for number in range(pages // 3, 2 * pages // 3, 7):
            db.seek(number * 4096 + 100)
            db.write(bytes(range(256)) * 12)
    code, out = invoke(data_dir, "doctor")
    assert code == 1, out
    assert f"Store {store} is damaged (SQLite's quick_check: " in out
    assert "Everything configured can be used" not in out and "Traceback" not in out


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"SOPHIA_GONG__BACKEND": "gong"}, "The gong backend needs SOPHIA_GONG__ACCESS_KEY"),
        ({"SOPHIA_SLACK__BACKEND": "slack"}, "The slack backend needs SOPHIA_SLACK__BOT_TOKEN"),
        ({"SOPHIA_SNOWFLAKE__BACKEND": "snowflake"}, "The snowflake warehouse needs SOPHIA_SNOWFLAKE__ACCOUNT"),
        (
            {"SOPHIA_OPENAI__BASE_URL": "http://127.0.0.1:9", "SOPHIA_ANALYST__BACKEND": "openai"},
            "SOPHIA_OPENAI__API_KEY",
        ),
    ],
)
def test_doctor_flags_a_backend_that_cannot_be_built(tmp_path: Path, variables: dict[str, str], expected: str) -> None:
    result = runner.invoke(app, ["doctor"], env=env_for(tmp_path / "data", COLUMNS="200", **variables))
    assert result.exit_code == 1
    assert expected in result.output


def test_demo_loads_an_empty_data_dir_and_reports_health(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    code, out = invoke(data_dir, "demo")
    assert code == 0, out
    assert "Loaded" in out and "clients" in out
    assert "clients are under the threshold" in out
    calls = count(data_dir, "SELECT COUNT(*) FROM calls")
    assert calls >= 200
    assert count(data_dir, "SELECT COUNT(*) FROM call_analyses") == calls
    assert count(data_dir, "SELECT COUNT(*) FROM client_health") >= 40
    under = count(data_dir, "SELECT COUNT(*) FROM client_health WHERE score < 70")
    assert 3 <= under <= 20, "the demo should hold some at-risk clients and mostly healthy ones"
    alerts = count(data_dir, "SELECT COUNT(*) FROM outbox WHERE status = 'delivered'")
    assert alerts >= under
    contacts = count(data_dir, "SELECT COUNT(*) FROM contacts")
    assert "Top leads" in out and f"{contacts} contacts updated" in out
    assert count(data_dir, "SELECT COUNT(*) FROM contacts WHERE lead_grade IS NOT NULL") == contacts
    # Running the demo again loads nothing new, sends no alert twice and finds every contact up to date.
    code, out = invoke(data_dir, "demo")
    assert code == 0, out
    assert "already holds" in out and f"{contacts} already up to date" in out
    assert count(data_dir, "SELECT COUNT(*) FROM outbox") == alerts
    assert count(data_dir, "SELECT COUNT(*) FROM calls") == calls


def test_server_and_demo_share_the_store_at_once(data_dir: Path) -> None:
    """A server process analysing calls while `sophia-mcp demo` analyses every call in another process."""
    demo = subprocess.Popen([SCRIPT, "demo"], env=env_for(data_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    call_ids = newest_call_ids(data_dir, 40)

    async def serve_while_demo_runs() -> int:
        done = 0
        params = StdioServerParameters(command=SCRIPT, args=["serve", "gong"], env=env_for(data_dir))
        async with Client(params) as client:
            for call_id in call_ids:
                structured(await client.call_tool("analyze_call", {"call_id": call_id}))
                done += 1
                if demo.poll() is not None and done >= 10:
                    break
        return done

    served = anyio.run(serve_while_demo_runs)
    _, err = demo.communicate(timeout=600)
    assert demo.returncode == 0, err.decode()
    assert served >= 10
    assert count(data_dir, "SELECT COUNT(*) FROM workflow_runs WHERE status != 'succeeded'") == 0
    # One alert per (client, call) whichever process raised it.
    assert count(data_dir, "SELECT COUNT(*) FROM outbox") == count(data_dir, "SELECT COUNT(DISTINCT key) FROM outbox")


@pytest.mark.parametrize("args", [["serve", "nope"], ["serve", "gong", "--transport", "carrier-pigeon"]])
def test_serve_rejects_unknown_names(tmp_path: Path, args: list[str]) -> None:
    code, out = invoke(tmp_path, *args)
    assert code == 2
    assert "Invalid value" in out
