"""The `CallSource` port and the call records it hands out.

Records follow Gong's vocabulary (parties, monologues, sentences with millisecond timings) because Gong is
the system of record for calls; the local store keeps the same shape."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from pydantic import Field

from sophia_mcp.domain.model import Model

Affiliation = Literal["Internal", "External", "Unknown"]


class Party(Model):
    """One person on a call. `speaker_id` joins to the transcript; it is absent for silent parties."""

    id: str
    name: str | None = None
    email: str | None = None
    title: str | None = None
    affiliation: Affiliation = "Unknown"
    speaker_id: str | None = None
    user_id: str | None = None


class Sentence(Model):
    start_ms: int = Field(ge=0, description="Milliseconds from the start of the call.")
    end_ms: int = Field(ge=0)
    text: str


class Monologue(Model):
    """One speaker's consecutive sentences, as Gong's transcript groups them."""

    speaker_id: str
    topic: str | None = None
    sentences: list[Sentence]


class Call(Model):
    id: str = Field(description="Gong call id: a string of up to 20 digits.")
    title: str
    started: datetime
    duration_s: int = Field(ge=0)
    direction: str = "Unknown"
    scope: str = "Unknown"
    url: str | None = None
    client_id: str | None = Field(default=None, description="The client company this call was with, if known.")
    client_name: str | None = None
    linked_by: Literal["crm_id", "account_name", "new_account", "email_domain", "manual"] | None = Field(
        default=None, description="How the call was linked to its client: Gong's CRM account id, the account's name "
        "(a known client, or a new one made from it), the client side's email domain, or by hand."
    )  # fmt: skip
    unlinked_reason: str | None = Field(default=None, description="Why the call has no client, when it has none.")
    parties: list[Party] = Field(default_factory=list)


class Transcript(Model):
    call_id: str
    monologues: list[Monologue]


class CallFilter(Model):
    """What `CallSource.list_calls` narrows by; every field is optional."""

    client: str | None = None
    started_from: datetime | None = None
    started_to: datetime | None = None
    competitor: str | None = None
    unlinked: bool = False

    @classmethod
    def on_days(
        cls,
        client: str | None,
        from_day: date | None,
        to_day: date | None,
        competitor: str | None,
        unlinked: bool = False,
    ) -> CallFilter:
        """Calls of whole days, `from_day` to `to_day` inclusive (UTC)."""

        def start(day: date) -> datetime:
            return datetime.combine(day, time.min, tzinfo=UTC)

        return cls(
            client=client,
            started_from=start(from_day) if from_day else None,
            started_to=start(to_day + timedelta(days=1)) if to_day else None,
            competitor=competitor,
            unlinked=unlinked,
        )


class CallPage(Model):
    calls: list[Call]
    next_cursor: str | None = None


@dataclass(frozen=True)
class AccountRef:
    """The CRM account a Gong call is linked to, as Gong's context gives it (an id, a name, or both)."""

    id: str | None
    name: str | None


@dataclass(frozen=True)
class ParsedCall:
    """A call read from a provider's record, with the account it names and the record itself."""

    call: Call
    account: AccountRef
    raw: dict[str, Any]
