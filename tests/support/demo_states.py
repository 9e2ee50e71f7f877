"""The fakes' states seeded with today's demo data, so a fake serves the clients, contacts and calls the demo has."""

from __future__ import annotations

from typing import Any

from sophia_mcp.demo.calls import generate_demo
from sophia_mcp.domain.times import utcnow
from tests.fakes import apollo, hubspot
from tests.fakes.gong import GongState, state_from_demo


def demo() -> Any:
    """Today's demo data (clients, contacts, calls, firmographics)."""
    return generate_demo(utcnow().date())


def hubspot_state(**kwargs: Any) -> hubspot.HubSpotState:
    """A HubSpot fake holding the demo's companies and contacts."""
    data = demo()
    return hubspot.state_from_demo(data.clients, data.contacts, **kwargs)


def apollo_state(**kwargs: Any) -> apollo.ApolloState:
    """An Apollo fake that knows the demo's people and organisations."""
    data = demo()
    return apollo.state_from_demo(data.clients, data.contacts, **kwargs)


def gong_state(**kwargs: object) -> GongState:
    """A Gong fake holding the demo's calls and transcripts."""
    data = demo()
    return state_from_demo(data.calls_extensive, data.transcripts, **kwargs)  # type: ignore[arg-type]
