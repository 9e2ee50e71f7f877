"""Who said what: joining transcript speakers to call parties."""

from __future__ import annotations

from collections.abc import Iterable

from sophia_mcp.domain.calls import Party
from sophia_mcp.domain.results import Side


def speaker_index(parties: Iterable[Party]) -> dict[str, Party]:
    """Parties by the speaker id the transcript uses; parties who never spoke have none and are left out."""
    return {p.speaker_id: p for p in parties if p.speaker_id}


def side_of(speaker_id: str, index: dict[str, Party]) -> Side:
    """Internal (our team), External (the client) or Unknown (a speaker with no party, such as a dial-in)."""
    party = index.get(speaker_id)
    return party.affiliation if party else "Unknown"


def name_of(speaker_id: str, index: dict[str, Party]) -> str | None:
    party = index.get(speaker_id)
    return party.name if party else None
