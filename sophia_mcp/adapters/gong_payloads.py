"""Gong API v2 payloads (`/v2/calls/extensive`, `/v2/calls/transcript`) read into call records.

Shared by `sophia-mcp calls import` (exports saved as JSON) and the Gong HTTP adapter.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field, ValidationError

from sophia_mcp.domain.calls import AccountRef, Call, Monologue, ParsedCall, Party, Sentence, Transcript
from sophia_mcp.domain.model import Model
from sophia_mcp.errors import InvalidInput


class _Loose(Model):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class GongContextObject(_Loose):
    object_type: str | None = Field(default=None, alias="objectType")
    object_id: str | None = Field(default=None, alias="objectId")
    fields: list[dict[str, Any]] = Field(default_factory=list)

    def field(self, name: str) -> str | None:
        for item in self.fields:
            if str(item.get("name", "")).lower() == name.lower() and item.get("value") is not None:
                return str(item["value"])
        return None


class GongContext(_Loose):
    system: str | None = None
    objects: list[GongContextObject] = Field(default_factory=list)


class GongParty(_Loose):
    id: str
    email_address: str | None = Field(default=None, alias="emailAddress")
    name: str | None = None
    title: str | None = None
    user_id: str | None = Field(default=None, alias="userId")
    speaker_id: str | None = Field(default=None, alias="speakerId")
    affiliation: str | None = None
    context: list[GongContext] = Field(default_factory=list)


class GongMetaData(_Loose):
    id: str
    url: str | None = None
    title: str | None = None
    started: datetime
    duration: float = 0
    direction: str | None = None
    scope: str | None = None


class GongCall(_Loose):
    meta_data: GongMetaData = Field(alias="metaData")
    parties: list[GongParty] = Field(default_factory=list)
    context: list[GongContext] = Field(default_factory=list)


class GongSentence(_Loose):
    start: int
    end: int
    text: str


class GongMonologue(_Loose):
    speaker_id: str = Field(alias="speakerId")
    topic: str | None = None
    sentences: list[GongSentence] = Field(default_factory=list)


class GongCallTranscript(_Loose):
    call_id: str = Field(alias="callId")
    transcript: list[GongMonologue] = Field(default_factory=list)


def _affiliation(value: str | None) -> Any:
    return value if value in ("Internal", "External") else "Unknown"


def _account(contexts: list[GongContext]) -> AccountRef | None:
    """The first CRM account named in `contexts`: by id, by name, or both (a context may carry only the name)."""
    for context in contexts:
        for obj in context.objects:
            if (obj.object_type or "").lower() == "account" and (obj.object_id or obj.field("Name")):
                return AccountRef(id=obj.object_id or None, name=obj.field("Name"))
    return None


def parse_call(raw: dict[str, Any]) -> ParsedCall:
    """One element of `/v2/calls/extensive`'s `calls`."""
    try:
        gong = GongCall.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(f"Not a Gong call record: {_first_error(exc)}") from exc
    meta = gong.meta_data
    account = _account(gong.context)
    for party in gong.parties:
        account = account or _account(party.context)
    call = Call(
        id=meta.id,
        title=meta.title or f"Call {meta.id}",
        started=meta.started,
        duration_s=int(meta.duration),
        direction=meta.direction or "Unknown",
        scope=meta.scope or "Unknown",
        url=meta.url,
        parties=[
            Party(
                id=p.id,
                name=p.name,
                email=p.email_address,
                title=p.title,
                affiliation=_affiliation(p.affiliation),
                speaker_id=p.speaker_id,
                user_id=p.user_id,
            )
            for p in gong.parties
        ],
    )
    return ParsedCall(call=call, account=account or AccountRef(None, None), raw=raw)


def parse_transcript(raw: dict[str, Any]) -> Transcript:
    """One element of `/v2/calls/transcript`'s `callTranscripts`."""
    try:
        gong = GongCallTranscript.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(f"Not a Gong call transcript: {_first_error(exc)}") from exc
    return Transcript(
        call_id=gong.call_id,
        monologues=[
            Monologue(
                speaker_id=m.speaker_id,
                topic=m.topic,
                sentences=[Sentence(start_ms=s.start, end_ms=s.end, text=s.text) for s in m.sentences],
            )
            for m in gong.transcript
        ],
    )


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}"
