"""The crm commands of the CLI, configured the way a user does it (SOPHIA_HUBSPOT__*, SOPHIA_APOLLO__* variables)."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sophia_mcp.cli.main import app
from tests.fakes import apollo, hubspot
from tests.fakes.server import serve
from tests.support.demo_states import apollo_state, demo, hubspot_state
from tests.support.processes import SCRIPT, env_for


def run(env: dict[str, str], *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == code, result.output
    return result.output


def test_enrich_and_doctor_on_hubspot_and_apollo(data_dir: Path) -> None:
    h_state, a_state = hubspot_state(), apollo_state()
    with serve(hubspot.hubspot_app(h_state)) as h_url, serve(apollo.apollo_app(a_state)) as a_url:
        env = env_for(
            data_dir,
            COLUMNS="200",
            SOPHIA_HUBSPOT__BACKEND="hubspot",
            SOPHIA_HUBSPOT__ACCESS_TOKEN=hubspot.ACCESS_TOKEN,
            SOPHIA_HUBSPOT__BASE_URL=h_url,
            SOPHIA_APOLLO__BACKEND="apollo",
            SOPHIA_APOLLO__API_KEY=apollo.API_KEY,
            SOPHIA_APOLLO__BASE_URL=f"{a_url}{apollo.PREFIX}",
            SOPHIA_APOLLO__BULK_PER_MINUTE="6000",
            SOPHIA_APOLLO__RATE_PER_SECOND="100",
            SOPHIA_HUBSPOT__RATE_PER_SECOND="100",
            SOPHIA_HUBSPOT__SEARCH_PER_SECOND="5",
        )
        doctor = run(env, "doctor")
        first = run(env, "crm", "enrich", "--since", "2000-01-01")
        again = run(env, "crm", "enrich", "--since", "2000-01-01")
        missing = run(env, "crm", "enrich", demo().contacts[0].id, "99999999999", code=1)
    assert "HubSpot at" in doctor and "Apollo at" in doctor and "accepted" in doctor
    for secret in (hubspot.ACCESS_TOKEN, apollo.API_KEY):
        assert secret not in doctor + first + again + missing
    total = len(demo().contacts)
    assert f"{total} contacts: {total} written" in first
    assert "0 written" in again and f"{total} unchanged" in again
    assert "99999999999: No contact with id '99999999999' in hubspot" in missing
    assert max(Counter(i for i, _ in h_state.updates).values()) == 1


def test_import_firmographics_reports_bad_rows_and_keeps_the_rest(tmp_path: Path, data_dir: Path) -> None:
    env = env_for(data_dir, COLUMNS="200")
    csv = tmp_path / "firms.csv"
    csv.write_text(
        "domain,name,industry,employees,units_managed,technologies\n"
        "newfirm.example,New Firm,Multifamily,120,4000,Yardi;HubSpot\n"
        ",No Domain,,,,\n"
        "bad.example,Bad,,lots,,\n"
    )
    out = run(env, "crm", "import-firmographics", str(csv))
    assert "1 firm imported" in out and "line 3: domain is empty" in out and "line 4: employees" in out
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("website,name\nx.example,X\n")
    assert "no 'domain' column" in run(env, "crm", "import-firmographics", str(wrong), code=1)


@pytest.mark.parametrize("argv", [["serve", "crm", "--port", "notaport"], ["serve", "nope"]])
def test_a_bad_serve_command_gets_the_full_cli_error(argv: list[str], data_dir: Path) -> None:
    result = subprocess.run([SCRIPT, *argv], env=env_for(data_dir), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Usage: sophia-mcp serve" in result.stderr + result.stdout
