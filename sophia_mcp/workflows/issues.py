"""Issues from workflows: which team they go to by default."""

from __future__ import annotations

from sophia_mcp.app.services import Services

LOCAL_DEFAULT_TEAM = "CS"


def default_team(
    services: Services, preferred: str | None = None, local_default: str = LOCAL_DEFAULT_TEAM
) -> str | None:
    """`preferred`, else SOPHIA_LINEAR__TEAM, else (on the local tracker) `local_default`."""
    local = local_default if services.tracker.name == "local" else None
    return preferred or services.settings.linear.team or local
