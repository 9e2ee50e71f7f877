"""The `sophia-mcp` command through typer's runner, in a test's data dir."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from sophia_mcp.cli.main import app
from tests.support.processes import env_for

runner = CliRunner()


def invoke(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run `sophia-mcp ARGS...` on `data_dir` (200 columns wide, with `env` set); its exit code and output."""
    result = runner.invoke(app, list(args), env=env_for(data_dir, COLUMNS="200", **(env or {})))
    return result.exit_code, result.output
