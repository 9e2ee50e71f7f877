"""`sophia-mcp ask`: the strategic query from the command line, on the embedded default and with a configured model."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from sophia_mcp.cli.main import app
from tests.fakes.openai import API_KEY, OpenAIState, openai_app
from tests.fakes.server import serve
from tests.support.processes import env_for

runner = CliRunner()
QUESTION = "Which clients are at risk, and what is AppFolio doing on pricing?"


def ask(data_dir: Path, *args: str, **env: str) -> tuple[int, str]:
    result = runner.invoke(app, ["ask", *args], env=env_for(data_dir, COLUMNS="200", **env))
    return result.exit_code, result.output


def test_ask_without_a_model_prints_the_evidence_and_says_why_there_is_no_answer(data_dir: Path) -> None:
    code, out = ask(data_dir, QUESTION)
    assert code == 0, out
    assert "Read as: every client, the last 90 days; competitors named: AppFolio." in out
    assert "No model is configured to write an answer" in out and "Answer (written by" not in out
    # The warehouse's numbers and the knowledge base answer on the embedded default, each citation with its quote.
    assert "[W1] Competitors named on calls, the last 90 days (metric:competitor_mentions)\ncompetitor, mentions" in out
    assert "[K1] " in out and "(kb://documents/demo-" in out
    assert "Gap: web: Web search is not configured" in out and "Gap: knowledge" not in out


def test_ask_has_the_configured_model_write_the_answer_citing_the_evidence(data_dir: Path) -> None:
    state = OpenAIState()
    with serve(openai_app(state)) as url:
        env = {"SOPHIA_OPENAI__API_KEY": API_KEY, "SOPHIA_OPENAI__BASE_URL": f"{url}/v1",
               "SOPHIA_OPENAI__MAX_RETRIES": "0"}  # fmt: skip
        code, out = ask(data_dir, QUESTION, "--source", "warehouse", "--source", "knowledge", **env)
    assert code == 0, out
    assert "Answer (written by openai):\nFrom the evidence [W1]." in out and "No model is configured" not in out
    [request] = state.requests
    prompt = request["messages"][-1]["content"]
    assert prompt.startswith(f"Question: {QUESTION}") and "[W1]" in prompt and "[K1]" in prompt
    assert "[X1]" not in out and "Gap:" not in out  # only the sources asked for


def test_ask_a_model_that_fails_leaves_the_evidence_standing(data_dir: Path) -> None:
    state = OpenAIState(answers=["500"])
    with serve(openai_app(state)) as url:
        env = {"SOPHIA_OPENAI__API_KEY": API_KEY, "SOPHIA_OPENAI__BASE_URL": f"{url}/v1",
               "SOPHIA_OPENAI__MAX_RETRIES": "0"}  # fmt: skip
        code, out = ask(data_dir, QUESTION, "--source", "warehouse", **env)
    assert code == 0, out
    assert "Answer (written by" not in out and "[W1] " in out and API_KEY not in out


def test_ask_about_an_unknown_client_says_how_to_find_one(data_dir: Path) -> None:
    code, out = ask(data_dir, QUESTION, "--client", "Nobody Such Holdings")
    assert code == 1
    assert "No client matches 'Nobody Such Holdings'" in out and "sophia-mcp serve crm" in out
