"""Calls find their client without a CRM id: by the account's name, by email domain; the rest are unlinked, say
why, are listed, and are linked by hand (tool and CLI), which recomputes the client's health."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client as MCPClient
from mcp.types import CallToolResult
from typer.testing import CliRunner

from sophia_mcp.cli.main import app
from sophia_mcp.servers.gong import create_server
from tests.support.exports import EVAL, imported_eval_calls
from tests.support.processes import env_for
from tests.support.results import structured, text_of
from tests.support.settings import make_settings

NAME_ONLY = (
    "3100000000000000002"  # Account "Oak and Ivy Residential, LLC", no objectId; the CRM has "Oak & Ivy Residential"
)
BY_DOMAIN = "3100000000000000005"  # no CRM context; the client writes from redwoodcreekmgmt.com
SUBDOMAIN = "3100000000000000069"  # no CRM context; mail.sapphirebaymgmt.com
NEW_NAME = "3100000000000000042"  # Account "Lone Star Lofts", unknown to the CRM
FREE_MAIL = "3100000000000000043"  # no CRM context; the client writes from gmail.com, and means to cancel
UNKNOWN_DOMAIN = "3100000000000000045"  # no CRM context; meadowbrook-mgmt.net is no client's domain


def tools(data_dir: Path, *calls: tuple[str, dict[str, Any]]) -> list[CallToolResult]:
    """Call gong server tools in order, in one session (the tests also run the CLI, which runs its own loop)."""

    async def session() -> list[CallToolResult]:
        async with MCPClient(create_server(make_settings(data_dir))) as client:
            return [await client.call_tool(name, args) for name, args in calls]

    return anyio.run(session)


@pytest.fixture(scope="module")
def eval_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return imported_eval_calls(tmp_path_factory.mktemp("linking") / "data")


@pytest.fixture
def data_dir(eval_store: Path, tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(eval_store, target)
    return target


def test_a_call_whose_account_has_no_crm_id_finds_its_client_by_name(data_dir: Path) -> None:
    detail, analysed = tools(data_dir, ("get_call", {"call_id": NAME_ONLY}), ("analyze_call", {"call_id": NAME_ONLY}))
    call, report = structured(detail)["call"], structured(analysed)
    assert (call["client_id"], call["client_name"], call["linked_by"]) == ("acct-2002", "Oak & Ivy Residential",
                                                                          "account_name")  # fmt: skip
    # The client said its budget was cut and the fee can no longer be justified: it is at risk, and alerted.
    assert report["at_risk"] is True and report["alert"]["new"] is True
    assert {r["kind"] for r in report["analysis"]["risk_factors"]} == {"budget", "pricing"}


def test_a_call_without_crm_context_finds_its_client_by_email_domain(data_dir: Path) -> None:
    plain, sub = (
        structured(r)["call"]
        for r in tools(data_dir, ("get_call", {"call_id": BY_DOMAIN}), ("get_call", {"call_id": SUBDOMAIN}))
    )
    assert (plain["client_id"], plain["linked_by"]) == ("acct-2005", "email_domain")
    assert (sub["client_id"], sub["linked_by"]) == ("acct-2039", "email_domain")


def test_an_account_name_no_client_has_becomes_a_client_with_the_callers_domain(data_dir: Path) -> None:
    [detail] = tools(data_dir, ("get_call", {"call_id": NEW_NAME}))
    call = structured(detail)["call"]
    assert (call["client_name"], call["linked_by"]) == ("Lone Star Lofts", "new_account")
    # A later call from that domain, with no CRM context, finds the new client.
    pages = json.loads((EVAL / "gong" / "call_42.json").read_text())
    later = pages[0]["calls"][0]
    later["metaData"]["id"] = "3100000000000009042"
    del later["context"]
    pages[1]["callTranscripts"][0]["callId"] = "3100000000000009042"
    export = data_dir.parent / "later.json"
    export.write_text(json.dumps(pages))
    assert CliRunner().invoke(app, ["calls", "import", str(export)], env=env_for(data_dir)).exit_code == 0
    [later_detail] = tools(data_dir, ("get_call", {"call_id": "3100000000000009042"}))
    again = structured(later_detail)["call"]
    assert (again["client_id"], again["linked_by"]) == (call["client_id"], "email_domain")


def test_an_unlinked_call_is_analysed_reported_listed_and_linked_by_hand(data_dir: Path) -> None:
    analysed, listed = tools(
        data_dir, ("analyze_call", {"call_id": FREE_MAIL}), ("list_calls", {"unlinked": True, "limit": 100})
    )
    report, unlinked = structured(analysed), structured(listed)["calls"]
    # The client announced it will cancel: the analysis says so, but makes no claim about a client it lacks.
    assert "churn_intent" in {r["kind"] for r in report["analysis"]["risk_factors"]}
    assert (report["client_id"], report["health"], report["at_risk"], report["alert"]) == (None, None, None, None)
    assert "gmail.com" in report["unlinked_reason"] and "link_call" in report["unlinked_reason"]
    assert report["call_health"]["score"] < report["threshold"]
    assert {c["id"] for c in unlinked} == {FREE_MAIL, UNKNOWN_DOMAIN}
    assert all(c["client_id"] is None and c["unlinked_reason"] for c in unlinked)

    linked, detail, left, unknown = tools(
        data_dir,
        ("link_call", {"call_id": FREE_MAIL, "client": "harbor view properties"}),
        ("get_call", {"call_id": FREE_MAIL}),
        ("list_calls", {"unlinked": True}),
        ("link_call", {"call_id": FREE_MAIL, "client": "Nobody Realty"}),
    )
    link = structured(linked)
    assert (link["client_id"], link["previous_client_id"]) == ("acct-2001", None)
    assert link["health"] is not None and link["at_risk"] is True and link["alert"]["new"] is True
    assert (structured(detail)["call"]["linked_by"], structured(detail)["analysis"]["client_id"]) == (
        "manual", "acct-2001"
    )  # fmt: skip
    assert [c["id"] for c in structured(left)["calls"]] == [UNKNOWN_DOMAIN]
    assert unknown.is_error and "No client 'Nobody Realty'" in text_of(unknown)
    # Importing the call again keeps the client it was linked to by hand.
    again = CliRunner().invoke(app, ["calls", "import", str(EVAL / "gong" / "call_43.json")], env=env_for(data_dir))
    assert again.exit_code == 0, again.output
    [after] = tools(data_dir, ("get_call", {"call_id": FREE_MAIL}))
    call = structured(after)["call"]
    assert (call["client_id"], call["linked_by"], call["unlinked_reason"]) == ("acct-2001", "manual", None)


def test_calls_link_on_the_command_line_recomputes_the_clients_health(data_dir: Path) -> None:
    runner = CliRunner()
    env = env_for(data_dir)
    assert runner.invoke(app, ["run", "analyze-call", UNKNOWN_DOMAIN], env=env).exit_code == 0
    result = runner.invoke(app, ["calls", "link", UNKNOWN_DOMAIN, "acct-2018"], env=env)
    assert result.exit_code == 0, result.output
    assert "linked to Evergreen Terrace Management (acct-2018)" in result.output
    assert "Health: " in result.output
    missing = runner.invoke(app, ["calls", "link", "999", "acct-2018"], env=env)
    assert missing.exit_code != 0 and "No call with id '999'" in missing.output
