"""A new user's first hour, as a real process: the demo at 80 and 160 columns and piped, what the CLI says when it
refuses something, and how servers say they are up and stop."""

from __future__ import annotations

import os
import pty
import re
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest
from mcp import Client

from sophia_mcp.cli.main import CLI_FOR_TOOL
from sophia_mcp.servers.composite import create_server
from tests.support.processes import SCRIPT, env_for, free_port, http_server
from tests.support.results import structured
from tests.support.settings import make_settings

# A terminal as rich recognises one, at a width; without these the output is piped.
TERMINAL = {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "0", "NO_COLOR": "1"}
BOX = re.compile(r"[│|]")


def run(data_dir: Path, *args: str, timeout: float = 240, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, *args], env=env_for(data_dir, **env), capture_output=True, text=True, timeout=timeout, check=False
    )


def table_rows(output: str, title: str) -> list[list[str]]:
    """The cells of each data row of the table under `title` (box-drawn or ASCII)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if title in line)
    rows, header_done = [], False
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if not stripped or stripped[0] not in "┏┃┡│└+|":
            break
        if stripped[0] in "┡" or (stripped.startswith("|-") or stripped.startswith("|=")):
            header_done = True
            continue
        if header_done and BOX.match(stripped):
            rows.append([cell.strip() for cell in BOX.split(stripped)[1:-1]])
    return rows


def health_scores(data_dir: Path) -> list[float]:
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        return sorted(r[0] for r in conn.execute("SELECT score FROM client_health"))


@pytest.mark.parametrize(
    ("how", "env"),
    [("80 columns", TERMINAL | {"COLUMNS": "80"}), ("160 columns", TERMINAL | {"COLUMNS": "160"}), ("piped", {})],
)
def test_the_demo_shows_every_clients_health_and_every_leads_score(tmp_path: Path, how: str, env: dict) -> None:
    done = run(tmp_path / "data", "demo", **env)
    assert done.returncode == 0, done.stderr
    health = table_rows(done.stdout, "Client health after")
    leads = table_rows(done.stdout, "Top leads of")
    shown = sorted(float(row[1]) for row in health)
    stored = health_scores(tmp_path / "data")
    assert len(shown) == len(stored) == 46
    assert all(abs(a - b) <= 0.5 for a, b in zip(shown, stored, strict=True))  # each as a person reads it
    assert len(leads) == 5 and all(re.fullmatch(r"\d+ [A-F]", row[2]) for row in leads)
    if how == "piped":
        assert "…" not in done.stdout and "\x1b[" not in done.stdout  # complete and plain
        assert not {"┃", "│"} & set(done.stdout)
    everything = done.stdout + done.stderr
    assert not re.search(r"^(INFO|DEBUG|WARNING)\b|INFO:|\bINFO\s", everything, re.M)  # no log line at the default


def test_the_demo_lists_the_alerts_it_raised_and_counts_that_agree_with_the_outbox(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = run(data_dir, "demo")
    second = run(data_dir, "demo")
    listed = run(data_dir, "outbox", "list", "--limit", "1000")
    raised = table_rows(first.stdout, "Health alerts:")
    again = table_rows(second.stdout, "Health alerts:")
    outbox = [row for row in table_rows(listed.stdout, "outbox entr") if row[2] == "#client-health"]
    assert raised and len(raised) == len(outbox)
    assert all(": health " in row[0] and row[1] == "#client-health" and row[2] == "now" for row in raised)
    assert f"Health alerts: {len(raised)}, {len(raised)} of them raised by this run" in first.stdout
    assert f"Health alerts: {len(raised)}, 0 of them raised by this run" in second.stdout
    assert [row[0] for row in again] == [row[0] for row in raised] and {row[2] for row in again} == {"before"}
    assert "Loading demo calls and transcripts" in first.stderr


def test_what_the_cli_refuses_it_says_in_words_a_person_can_act_on(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    enrich = run(data_dir, "crm", "enrich")
    status = run(data_dir, "outbox", "list", "--status", "bogus", COLUMNS="200")
    empty = run(data_dir, "outbox", "list")
    no_calls = run(data_dir, "calls", "list")
    version = run(data_dir, "--version")
    assert enrich.returncode == 2 and "--since" in enrich.stderr and "Enriching" not in enrich.stderr
    assert status.returncode == 2 and "'pending', 'sending', 'delivered', 'failed'" in status.stderr
    assert "The outbox is empty: `sophia-mcp demo`" in empty.stdout
    assert "No calls yet: run `sophia-mcp demo`" in no_calls.stdout
    assert re.fullmatch(r"sophia-mcp \d+\.\d+\.\d+\S*\n", version.stdout)


def test_an_error_at_the_command_line_names_a_command_that_exists(data_dir: Path) -> None:
    unknown = run(data_dir, "run", "analyze-call", "12345")
    named = re.findall(r"`(sophia-mcp [^`]+)`", unknown.stderr)
    assert unknown.returncode == 1 and named == ["sophia-mcp calls list"] and "list_calls" not in unknown.stderr
    for command in sorted(set(CLI_FOR_TOOL.values())):  # every command a message may name is there to run
        assert run(data_dir, *command.split()[1:], "--help").returncode == 0, command


def test_calls_list_finds_the_ids_that_run_analyze_call_takes(data_dir: Path) -> None:
    listed = run(data_dir, "calls", "list", "--client", "oakhaven", "--limit", "2")
    rows = table_rows(listed.stdout, "newest first")
    analysed = run(data_dir, "run", "analyze-call", rows[0][0])
    assert len(rows) == 2 and all("Oakhaven" in row[2] for row in rows)
    assert analysed.returncode == 0 and re.search(r"our side talked \d+% of the time", analysed.stdout)


def test_the_scheduler_says_what_each_run_did_and_when_nothing_is_due(data_dir: Path) -> None:
    first = run(data_dir, "schedule", "--once")
    second = run(data_dir, "schedule", "--once")
    help_text = run(data_dir, "schedule", "--help", COLUMNS="200")
    assert first.returncode == 0, first.stderr
    names = {line.split(":")[0] for line in first.stdout.splitlines()}
    assert {"health-monitor", "deliver-outbox", "bug-status"} <= names
    assert re.search(r"^health-monitor: succeeded in \d+\.\d s \(due ", first.stdout, re.M)
    assert re.fullmatch(r"Nothing is due now; next: [\w-]+ at \d{4}-\d\d-\d\d \d\d:\d\d UTC\.\n", second.stdout)
    listed = " ".join(help_text.stdout.split())
    assert all(
        name in listed for name in ("health-monitor", "deliver-outbox", "bug-status", "competitive-intel", "churn")
    )


def test_a_folder_ingested_again_keeps_each_documents_type(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "playbook.md").write_text("# Renewal playbook\n\nCall the client ninety days before the renewal.\n")
    env = {"SOPHIA_KNOWLEDGE__ROOTS": str(folder)}
    run(tmp_path / "data", "kb", "ingest", str(folder / "playbook.md"), "--type", "playbook", **env)
    (folder / "playbook.md").write_text("# Renewal playbook\n\nCall the client a hundred days before the renewal.\n")
    again = run(tmp_path / "data", "kb", "ingest", str(folder), **env)
    with sqlite3.connect(tmp_path / "data" / "sophia.db") as conn:
        types = [r[0] for r in conn.execute("SELECT type FROM documents WHERE source LIKE '%playbook.md'")]
    assert again.returncode == 0 and "updated" in again.stdout and "(1 chunk)" in again.stdout
    assert types == ["playbook"]


def test_doctor_says_web_search_is_off_and_how_to_turn_it_on(tmp_path: Path) -> None:
    done = run(tmp_path / "data", "doctor", COLUMNS="200")
    assert re.search(r"WebSearch\W+off \(set SOPHIA_WEB_SEARCH__BACKEND=tavily or perplexity", done.stdout)


def test_a_setting_that_cannot_be_used_stops_the_start_in_one_line(tmp_path: Path) -> None:
    env = {"SOPHIA_HTTP__JWKS_URL": "https://auth.example.com/jwks", "SOPHIA_HTTP__ISSUER": "https://auth.example.com",
           "SOPHIA_HTTP__AUDIENCE": "my-server"}  # fmt: skip
    done = run(tmp_path / "data", "serve", "gong", "--transport", "http", "--port", str(free_port()), **env)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "sophia-mcp: SOPHIA_HTTP__AUDIENCE: Value error, must be an http(s) URL, e.g. https://mcp.example.com/mcp "
        "(got 'my-server')"
    ]


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_an_http_server_says_where_it_listens_and_ctrl_c_stops_it_in_one_line(data_dir: Path, transport: str) -> None:
    running: list[subprocess.Popen[str]] = []
    logged: list[str] = []
    port = free_port()
    with http_server(data_dir, transport, port=port, running=running, output=logged, SOPHIA_LOG_LEVEL="WARNING"):
        running[0].send_signal(signal.SIGINT)
        code = running[0].wait(timeout=30)
    path = "/sse" if transport == "sse" else "/mcp"
    assert logged[0] == f"sophia-mcp: sophia-gong serving {'SSE' if transport == 'sse' else 'Streamable HTTP'} at "\
        f"http://127.0.0.1:{port}{path} (no authentication: listening on loopback only)\n"  # fmt: skip
    assert code == 130 and [line for line in logged[1:] if line.strip()] == ["sophia-mcp: stopped\n"]


def test_a_stdio_server_at_a_terminal_says_what_it_is_and_ctrl_c_stops_it_at_once(data_dir: Path) -> None:
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [SCRIPT, "serve", "gong"], env=env_for(data_dir), stdin=terminal, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    os.close(terminal)
    try:
        assert proc.stderr is not None
        hint = proc.stderr.readline()
        proc.send_signal(signal.SIGINT)  # while the server waits on a terminal that never sends a line
        code = proc.wait(timeout=30)
        rest = proc.stderr.read()
    finally:
        os.close(controller)
        if proc.poll() is None:
            proc.kill()
    assert "speaks MCP on stdin and stdout" in hint and "--transport http" in hint
    assert code == 130 and rest == "sophia-mcp: stopped\n"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_tools_on_an_empty_store_say_what_would_fill_it(tmp_path: Path, anyio_backend: str) -> None:
    async with Client(create_server(make_settings(tmp_path / "data"))) as client:
        answers = {
            "calls": structured(await client.call_tool("gong_list_calls", {})),
            "clients": structured(await client.call_tool("crm_list_clients", {})),
            "documents": structured(await client.call_tool("knowledge_list_documents", {})),
            "alerts": structured(await client.call_tool("alerts_list_alerts", {})),
            "filtered": structured(await client.call_tool("gong_list_calls", {"client": "Acme"})),
        }
    notes = {what: answer.get("note") or "" for what, answer in answers.items()}
    assert all(notes[w].startswith(f"There are no {w} yet: `sophia-mcp demo`") for w in ("calls", "clients", "alerts"))
    assert notes["documents"].startswith("There are no documents yet: `sophia-mcp demo`")
    assert notes["filtered"] == ""  # a filter that matches nothing is not an empty store
