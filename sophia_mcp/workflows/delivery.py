"""Delivery of the outbox: each entry claimed, sent by the sender of its kind, and marked as it went.

A delivery that fails leaves the entry pending with its error, to be sent by a later `deliver_pending` (the
scheduler's `deliver-outbox`, or the MCP server's background retry). Each kind of entry (an alert, an issue)
has its sender: alerts the notifier, issues the tracker, CRM writes the CRM.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import anyio

from sophia_mcp.adapters.outbox_notifier import LocalNotifier
from sophia_mcp.app.services import Services
from sophia_mcp.domain.crm import ContactChanges
from sophia_mcp.domain.issues import IssueDraft
from sophia_mcp.domain.notify import Alert
from sophia_mcp.domain.outbox import OutboxEntry
from sophia_mcp.domain.plural import plural
from sophia_mcp.errors import InvalidInput
from sophia_mcp.ports.crm import CRM
from sophia_mcp.ports.issues import IssueTracker
from sophia_mcp.ports.notify import Notifier
from sophia_mcp.store.outbox import Outcome
from sophia_mcp.store.runs import describe_error
from sophia_mcp.store.tracker import LocalTracker

log = logging.getLogger(__name__)


class Sender(Protocol):
    """Delivers one kind of entry: `send` returns the receiver's reference; `already_sent` finds an earlier
    delivery whose answer was lost (None when there was none, or when sending is idempotent by itself)."""

    async def send(self, payload: dict[str, Any]) -> str: ...

    async def already_sent(self, payload: dict[str, Any]) -> str | None: ...


class AlertSender:
    """Alerts go through the notifier (Slack, or the local outbox itself)."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    async def send(self, payload: dict[str, Any]) -> str:
        return str(await self.notifier.send(Alert.model_validate(payload)))

    async def already_sent(self, payload: dict[str, Any]) -> str | None:
        found = await self.notifier.already_sent(Alert.model_validate(payload))
        return None if found is None else str(found)


class IssueSender:
    """Issues go to the tracker, whose create is idempotent by the entry's key: a lost answer needs no lookup."""

    def __init__(self, tracker: IssueTracker) -> None:
        self.tracker = tracker

    async def send(self, payload: dict[str, Any]) -> str:
        issue, _ = await self.tracker.create(IssueDraft.model_validate(payload["draft"]), payload["key"])
        return issue.identifier

    async def already_sent(self, payload: dict[str, Any]) -> str | None:
        return None


class CRMSender:
    """CRM writes (a designed workflow's crm_update): the contacts' changed fields in one batch. Writing the same
    values again changes nothing, so a lost answer needs no lookup."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    async def send(self, payload: dict[str, Any]) -> str:
        changes: dict[str, ContactChanges] = payload["changes"]
        refused = {i: why for i, why in (await self.crm.update_contacts(changes)).items() if why}
        if refused:
            raise InvalidInput(f"{self.crm.name} refused: " + "; ".join(f"{i}: {why}" for i, why in refused.items()))
        return f"{plural(len(changes), 'contact')} written"

    async def already_sent(self, payload: dict[str, Any]) -> str | None:
        return None


@runtime_checkable
class BatchSender(Protocol):
    """A sender into the store itself, which delivers many entries in one go (one transaction, no task each)."""

    async def send_many(self, payloads: list[dict[str, Any]]) -> list[str]: ...


class LocalAlertSender(AlertSender):
    """Alerts on the local notifier: the outbox entry is the message, so there is nothing to wait for."""

    async def send_many(self, payloads: list[dict[str, Any]]) -> list[str]:
        return [await self.send(payload) for payload in payloads]


class LocalIssueSender(IssueSender):
    """Issues on the local tracker: created together in one of its transactions, each by its key."""

    def __init__(self, tracker: LocalTracker) -> None:
        super().__init__(tracker)
        self.local = tracker

    async def send_many(self, payloads: list[dict[str, Any]]) -> list[str]:
        drafts = [(IssueDraft.model_validate(p["draft"]), p["key"]) for p in payloads]
        return [issue.identifier for issue, _ in await self.local.create_many(drafts)]


def senders(services: Services) -> dict[str, Sender]:
    """The sender of each kind of entry, on the services' notifier and tracker."""
    notifier, tracker = services.notifier, services.tracker
    return {
        "alert": LocalAlertSender(notifier) if isinstance(notifier, LocalNotifier) else AlertSender(notifier),
        "issue": LocalIssueSender(tracker) if isinstance(tracker, LocalTracker) else IssueSender(tracker),
        "crm": CRMSender(services.crm),
    }


def sent_at_once(services: Services) -> set[str]:
    """The kinds of entry whose sender delivers into the store itself, a batch in one go with no service to wait
    for: those may be kept claimed and sent at once (`send_claimed`) without outliving their claim's lease. Entries
    for a real service are claimed a batch at a time as they are sent (`send_all`)."""
    return {kind for kind, sender in senders(services).items() if isinstance(sender, BatchSender)}


async def _send_many(sender: BatchSender, entries: list[OutboxEntry]) -> list[Outcome]:
    try:
        refs = await sender.send_many([e.payload for e in entries])
    except Exception as exc:
        log.warning("Delivery of %d outbox entries (%s) failed: %s", len(entries), entries[0].kind,
                    describe_error(exc))  # fmt: skip
        return [(e.id, None, describe_error(exc)) for e in entries]
    return [(e.id, ref, None) for e, ref in zip(entries, refs, strict=True)]


async def _send(entry: OutboxEntry, by_kind: Mapping[str, Sender]) -> Outcome:
    sender = by_kind.get(entry.kind)
    if sender is None:
        return entry.id, None, f"nothing here delivers {entry.kind!r} entries"
    try:
        # A second attempt may follow one whose answer was lost after it went through: look before sending.
        earlier = await sender.already_sent(entry.payload) if entry.attempts > 1 else None
        return entry.id, earlier or await sender.send(entry.payload), None
    except Exception as exc:
        log.warning("Delivery of outbox entry %s (%s) failed: %s", entry.id, entry.kind, describe_error(exc))
        return entry.id, None, describe_error(exc)


async def held_kinds(services: Services) -> set[str]:
    """The kinds of entry whose receiver is held by an open incident (the healing watch: that service is down);
    the outbox keeps them until the incident closes."""
    held = await services.incidents.active_targets("hold_side_effects")
    if not held:
        return set()
    receivers = {"alert": services.notifier.name, "issue": services.tracker.name, "crm": services.crm.name}
    return {kind for kind, name in receivers.items() if name.casefold() in held}


async def deliver(services: Services, entry_id: int) -> OutboxEntry:
    """Send one entry unless it is delivered, another process is sending it, or its receiver is held by an
    incident; never raises on send failure."""
    if held := await held_kinds(services):
        entry = await services.outbox.get(entry_id)
        if entry.kind in held:
            return entry
    claimed = await services.outbox.claim([entry_id])
    if not claimed:
        return await services.outbox.get(entry_id)
    return (await services.outbox.finish([await _send(claimed[0], senders(services))]))[0]


async def send_all(
    services: Services, entry_ids: Sequence[int], concurrency: int = 4, batch: int = 200
) -> list[Outcome]:
    """Send these entries: claimed and recorded a batch at a time, sent a few at a time (each service's own
    limits pace them further), or a batch in one go by a sender into the store. Entries delivered already, or
    being sent by another process, are left alone. Returns the outcome of each entry this call sent, as recorded."""
    if held := await held_kinds(services):  # kept in the outbox while an incident holds their receiver
        entry_ids = [e.id for e in await services.outbox.entries(entry_ids) if e.kind not in held]
    recorded: list[Outcome] = []
    for start in range(0, len(entry_ids), batch):
        recorded += await send_claimed(services, await services.outbox.claim(entry_ids[start : start + batch]),
                                       concurrency)  # fmt: skip
    return recorded


async def send_claimed(services: Services, claimed: Sequence[OutboxEntry], concurrency: int = 4) -> list[Outcome]:
    """Send entries this process holds claimed (by `Outbox.claim`, or kept claimed by `Outbox.enqueue_claimed`)
    and record how each went, as `send_all` does; returns the outcomes."""
    slots = anyio.Semaphore(concurrency)
    by_kind = senders(services)
    batched = {kind: sender for kind, sender in by_kind.items() if isinstance(sender, BatchSender)}

    async def one(entry: OutboxEntry, outcomes: list[Outcome]) -> None:
        async with slots:
            outcomes.append(await _send(entry, by_kind))

    outcomes: list[Outcome] = []
    together: dict[str, list[OutboxEntry]] = {}
    async with anyio.create_task_group() as group:
        for entry in claimed:
            if entry.kind in batched:
                together.setdefault(entry.kind, []).append(entry)
            else:
                group.start_soon(one, entry, outcomes)
        for kind, entries in together.items():
            outcomes += await _send_many(batched[kind], entries)
    if outcomes:
        await services.outbox.settle(outcomes)
    return outcomes


async def deliver_all(
    services: Services, entry_ids: Sequence[int], concurrency: int = 4, batch: int = 200
) -> dict[int, OutboxEntry]:
    """Send these entries as `send_all` does; returns every entry as it is afterwards, by id."""
    await send_all(services, entry_ids, concurrency, batch)
    return {e.id: e for e in await services.outbox.entries(entry_ids)}


async def deliver_pending(services: Services, limit: int = 100) -> list[OutboxEntry]:
    """Try every pending entry (oldest first), and any whose sender died mid-send."""
    return [await deliver(services, entry_id) for entry_id in await services.outbox.due(limit)]
