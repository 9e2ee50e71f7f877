"""The Gong exports under tests/data, and importing them the way a user does: `sophia-mcp calls import`."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sophia_mcp.app.backends import build_services
from sophia_mcp.cli.main import app
from sophia_mcp.domain.crm import Client
from sophia_mcp.store.clients import LocalCRM
from tests.support.processes import env_for
from tests.support.settings import make_settings

DATA = Path(__file__).parent.parent / "data"
# A hand-built export of two calls, in the API's own shapes; CALL is the one its figures are checked on.
EXPORT = DATA / "gong_export"
CALL = "7782342274025937895"
# Hand-written and labelled calls (114, and 180 more written to fit the learned analyst on), with their CRM clients.
EVAL = DATA / "eval_calls"


def imported_eval_calls(data_dir: Path) -> Path:
    """A store holding the eval's CRM clients, and its calls imported the way a user imports an export."""
    services = build_services(make_settings(data_dir))
    try:
        clients = [Client.model_validate(c) for c in json.loads((EVAL / "clients.json").read_text())]
        with services.store.transaction() as conn:
            LocalCRM.save_clients(conn, clients)
    finally:
        services.close()
    result = CliRunner().invoke(app, ["calls", "import", str(EVAL / "gong")], env=env_for(data_dir))
    assert result.exit_code == 0, result.output
    calls = len(list((EVAL / "gong").glob("*.json")))
    assert f"{calls} new calls, 0 updated, 0 unchanged; {calls} transcripts" in result.output
    return data_dir
