"""Issues from workflows: which team they go to by default."""

from __future__ import annotations

from sophia_mcp.services import Services

LOCAL_DEFAULT_TEAM = "CS"


def default_team(services: Services, preferred: str | None = None) -> str | None:
    """`preferred`, else SOPHIA_LINEAR__TEAM, else (on the local tracker) Customer Success."""
    return (
        preferred or services.settings.linear.team or (LOCAL_DEFAULT_TEAM if services.tracker.name == "local" else None)
    )
