"""Settings for a test: the demo's data dir, or backends pointed at the fakes on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sophia_mcp.settings import Settings, load_settings
from tests.fakes import apollo, hubspot
from tests.fakes.web_search import TAVILY_KEY

# Fast retries and no client-side throttling, so a fake's 429 costs milliseconds.
FAST = {"retry_base_s": 0.01, "rate_per_second": 1000, "max_concurrency": 8}
SNOWFLAKE = {
    "backend": "snowflake",
    "account": "acme-test",
    "user": "sophia",
    "password": "snowflake-password-value",
    "warehouse": "COMPUTE_WH",
    "database": "SOPHIA",
    "schema": "ANALYTICS",
}


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings as the product loads them, for `data_dir`, with `overrides` by section."""
    return load_settings(data_dir=data_dir, **overrides)


def with_web(data_dir: Path, url: str, **strategic: object) -> Settings:
    """Settings with web search on the Tavily fake at `url`."""
    return make_settings(
        data_dir, web_search={"backend": "tavily"}, strategic=strategic,
        tavily={"base_url": url, "api_key": TAVILY_KEY, "timeout_s": 2, "max_retries": 0},
    )  # fmt: skip


def real_settings(
    data_dir: Path, hubspot_url: str | None = None, apollo_url: str | None = None, **more: Any
) -> Settings:
    """Settings with the CRM on the HubSpot fake and the enricher on the Apollo fake, for those given a URL."""
    sections: dict[str, Any] = {}
    if hubspot_url:
        token = hubspot.ACCESS_TOKEN
        sections["hubspot"] = {"backend": "hubspot", "base_url": hubspot_url, "access_token": token,
                               "search_per_second": 1000, **FAST, **more.pop("hubspot", {})}  # fmt: skip
    if apollo_url:
        base = f"{apollo_url}{apollo.PREFIX}"
        sections["apollo"] = {"backend": "apollo", "base_url": base, "api_key": apollo.API_KEY,
                              "bulk_per_minute": 60_000, **FAST, **more.pop("apollo", {})}  # fmt: skip
    return make_settings(data_dir, **sections, **more)
