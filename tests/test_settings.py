"""Settings come from the environment (SOPHIA_ prefix, __ nesting), a .env file and a TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sophia_mcp.settings import load_settings

INTEGRATIONS = {
    "gong",
    "hubspot",
    "apollo",
    "snowflake",
    "pinecone",
    "openai",
    "slack",
    "linear",
    "tavily",
    "perplexity",
}


def test_every_integration_has_a_local_default_and_a_base_url() -> None:
    settings = load_settings()
    sections = settings.integrations()
    assert set(sections) == INTEGRATIONS
    assert all(section.backend == "local" for section in sections.values())
    assert all(hasattr(section, "base_url") for section in sections.values())
    assert settings.health.threshold == 70
    assert {c.name for c in settings.competitors} == {"AppFolio", "Yardi", "RealPage", "Buildium", "Entrata"}


def test_environment_nests_with_double_underscore(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOPHIA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SOPHIA_GONG__BASE_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("SOPHIA_GONG__ACCESS_KEY_SECRET", "gong-secret-value")
    monkeypatch.setenv("SOPHIA_HEALTH__THRESHOLD", "55")
    monkeypatch.setenv("SOPHIA_SNOWFLAKE__SCHEMA", "ANALYTICS")
    monkeypatch.setenv("SOPHIA_COMPETITORS", '[{"name": "Rentvine", "aliases": ["Rent Vine"]}]')
    settings = load_settings()
    assert settings.data_dir == tmp_path
    assert settings.store_path == tmp_path / "sophia.db"
    assert settings.gong.base_url == "http://127.0.0.1:9/"
    assert settings.health.threshold == 55
    assert settings.snowflake.schema_ == "ANALYTICS"
    assert [c.names for c in settings.competitors] == [["Rentvine", "Rent Vine"]]
    assert "gong-secret-value" not in repr(settings) and "gong-secret-value" not in str(settings.model_dump())


def test_toml_file_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sophia.toml").write_text('[alerts.routes]\nhealth = "#cs-alerts"\n[health]\nthreshold = 65\n')
    (tmp_path / ".env").write_text("SOPHIA_HEALTH__THRESHOLD=60\n")
    settings = load_settings()
    assert settings.alerts.channel_for("health") == "#cs-alerts"
    assert settings.health.threshold == 60  # .env outranks the TOML file
    monkeypatch.setenv("SOPHIA_HEALTH__THRESHOLD", "50")
    assert load_settings().health.threshold == 50  # and the environment outranks both


def test_invalid_threshold_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOPHIA_HEALTH__THRESHOLD", "140")
    with pytest.raises(ValidationError, match="less than or equal to 100"):
        load_settings()
