"""The registry of backends per port: what `doctor` shows and `build_services` builds, kept in step with settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from sophia_mcp.app.backends import CALL_SOURCE, PORTS, backend_choices, check_registry
from sophia_mcp.settings import load_settings

HEAVY = ("openai", "snowflake.connector", "slack_sdk", "aiohttp", "redis", "sklearn", "wordllama")


def test_a_backend_setting_without_a_registry_entry_is_refused() -> None:
    without_gong = replace(CALL_SOURCE, backends=CALL_SOURCE.backends[:1])
    with pytest.raises(RuntimeError, match=r"CallSource: SOPHIA_GONG__BACKEND takes \['gong', 'local'\]"):
        check_registry([without_gong])
    check_registry(PORTS)


def test_doctor_choices_come_from_the_registry(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, gong={"backend": "gong"}, redis={"url": "redis://127.0.0.1:9/0"})
    choices = backend_choices(settings)
    assert list(choices) == [port.name for port in PORTS]
    assert choices["CallSource"] == "gong" and choices["Cache"] == "redis" and choices["CRM"] == "local"


# The risk meaning's embedding model loads with the first call analysed, not with the services a server starts with.
@pytest.mark.parametrize("extra", [{}, {"SOPHIA_ANALYST__RISK_MEANING": "true"}])
def test_the_embedded_default_loads_no_heavy_client(tmp_path: Path, extra: dict[str, str]) -> None:
    code = (
        "import json, sys\n"
        "from sophia_mcp.app.backends import build_services\n"
        "from sophia_mcp.settings import load_settings\n"
        "services = build_services(load_settings())\n"
        "services.close()\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    env = {**os.environ, "SOPHIA_DATA_DIR": str(tmp_path), **extra}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
