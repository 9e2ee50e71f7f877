"""Polling connectors, for when webhooks cannot reach us (behind a firewall, on a laptop): scheduled workflows that
pull what is new since a stored cursor and keep it in the inbox as the webhooks would (`via="poll"`), for the
inbox worker to act on.

A cursor moves only once what it covers is recorded (`ConnectorCursors.record_then_move`): a crash in between
re-reads, never skips, and the inbox keeps a re-read event once (the event ids are the webhooks': a call, a
contact's change, a message, a file's content). Each connector also reads a little before its cursor, for what a
service shows late: Gong lists a call when it is processed, hours after it started; HubSpot's search shows a write a
few seconds after it; the same event read again is kept once.

On the embedded default there is nothing to poll: a connector says so in its summary rather than failing.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio.to_thread

from sophia_mcp.analysis.documents import FORMAT_OF_SUFFIX
from sophia_mcp.app.services import Services
from sophia_mcp.domain.inbox import Incoming
from sophia_mcp.domain.times import iso, parse_iso, utcnow
from sophia_mcp.errors import InvalidInput, SophiaError
from sophia_mcp.ports.calls import CallFeed
from sophia_mcp.ports.crm import ContactFeed
from sophia_mcp.ports.notify import ChannelHistory
from sophia_mcp.workflows.watched_folder import reconcile_file

GONG, HUBSPOT, SLACK, FOLDER = "gong-calls", "hubspot-contacts", "slack-bugs", "watch-folder"
HASH_CHUNK = 1 << 20


def _first_start(services: Services) -> datetime:
    """Where a connector that has never read starts."""
    return utcnow() - timedelta(hours=services.settings.connectors.backfill_hours)


async def _window(services: Services, name: str, back: timedelta) -> tuple[bool, datetime, datetime]:
    """Whether the connector has read before, the newest moment it has read up to, and where this poll starts:
    `back` before that (for what the service shows late), or the first poll's start."""
    cursor = await services.connector_cursors.get(name)
    if cursor is None:
        start = _first_start(services)
        return False, start, start
    newest = parse_iso(cursor)
    return True, newest, newest - back


async def poll_gong_calls(services: Services) -> dict[str, Any]:
    """Keep as `gong.call` events the Gong calls started since the last one seen (less the lookback)."""
    calls = services.calls
    if not isinstance(calls, CallFeed):
        return {"skipped": "no Gong to poll: calls come from the store (SOPHIA_GONG__BACKEND=local)"}
    # Inclusive, and before the cursor: calls that started in the same second, and calls processed late, are read
    # again; the inbox keeps each call once.
    lookback = timedelta(hours=services.settings.connectors.gong_lookback_hours)
    _, newest, since = await _window(services, GONG, lookback)
    events: list[Incoming] = []
    async for page in calls.calls_started_since(since):
        for call in page:
            meta = call.get("metaData") or {}
            if not meta.get("id"):
                continue
            events.append(Incoming("gong", f"call:{meta['id']}", "gong.call", call, via="poll"))
            if meta.get("started"):
                newest = max(newest, parse_iso(str(meta["started"])))
    # Gong's pages are not in start order: the cursor moves once every page is kept.
    fresh = await services.connector_cursors.record_then_move(services.inbox, events, GONG, iso(newest))
    return {"read": len(events), "new": sum(fresh), "since": iso(since), "cursor": iso(newest)}


async def poll_hubspot_contacts(services: Services) -> dict[str, Any]:
    """Keep as `hubspot.contact` events (`contact.poll`) the HubSpot contacts created or modified since the last
    change seen (less the search's lag)."""
    crm = services.crm
    if not isinstance(crm, ContactFeed):
        return {"skipped": "no HubSpot to poll: contacts come from the store (SOPHIA_HUBSPOT__BACKEND=local)"}
    lag = timedelta(seconds=services.settings.connectors.hubspot_lag_s)
    read_before, newest, since = await _window(services, HUBSPOT, lag)
    read = new = 0
    seen: set[str] = set()  # a restarted search reads the last millisecond's changes again
    # Earliest change first, so the cursor may move after each page: all before it is kept.
    async for page in crm.contacts_modified_since(since):
        events = []
        for contact in page:
            props = dict(contact.get("properties") or {})
            modified = str(props.get("lastmodifieddate") or contact.get("updatedAt") or "")
            object_id = str(contact["id"])
            if f"{object_id}:{modified}" in seen:
                continue
            seen.add(f"{object_id}:{modified}")
            payload = {"objectId": int(object_id) if object_id.isdigit() else object_id,
                       "subscriptionType": "contact.poll", "properties": props}  # fmt: skip
            events.append(Incoming("hubspot", f"contact:{object_id}:{modified}", "hubspot.contact", payload, "poll"))
            if modified:
                newest = max(newest, parse_iso(modified))
        fresh = await services.connector_cursors.record_then_move(services.inbox, events, HUBSPOT, iso(newest))
        read, new = read + len(events), new + sum(fresh)
    if not read and not read_before:
        await services.connector_cursors.set(HUBSPOT, iso(newest))  # the first poll's start stays where it was
    return {"read": read, "new": new, "since": iso(since), "cursor": iso(newest)}


def _ts(moment: datetime) -> str:
    return f"{moment.timestamp():.6f}"


async def poll_slack_bugs(services: Services) -> dict[str, Any]:
    """Keep as `slack.message` events the messages posted in each bug channel since the last one seen there."""
    channels = services.settings.bugs.channels
    notifier = services.notifier
    if not channels:
        return {"skipped": "no bug channel to read (SOPHIA_BUGS__CHANNELS)"}
    if not isinstance(notifier, ChannelHistory):
        return {"skipped": "no Slack to poll: alerts stay in the store (SOPHIA_SLACK__BACKEND=local)"}
    read = new = 0
    problems: dict[str, str] = {}
    for channel in channels:
        name = f"{SLACK}:{channel}"
        oldest = await services.connector_cursors.get(name) or _ts(_first_start(services))
        try:
            channel_id, messages = await notifier.channel_messages(channel, oldest)
        except SophiaError as exc:  # one channel unreadable (not invited, say): the others are still read
            problems[channel] = str(exc)
            continue
        events = [
            Incoming("slack", f"{channel_id}/{m['ts']}", "slack.message",
                     {**m, "type": m.get("type") or "message", "channel": channel_id, "team_id": m.get("team")}, "poll")
            for m in messages
        ]  # fmt: skip
        newest = max([oldest, *(str(m["ts"]) for m in messages)], key=Decimal)
        fresh = await services.connector_cursors.record_then_move(services.inbox, events, name, newest)
        read, new = read + len(events), new + sum(fresh)
    if problems and len(problems) == len(channels):
        raise InvalidInput("; ".join(f"{channel}: {why}" for channel, why in problems.items()))
    return {"read": read, "new": new, "channels": len(channels) - len(problems)} | (
        {"failed": problems} if problems else {}
    )


# -- the watched folder -----------------------------------------------------------------------------------

Seen = dict[str, list[Any]]  # path -> [sha256, size, mtime_ns]: the folder as the last scan kept it


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def scan_folder(folder: Path, known: Seen) -> Seen:
    """Every file of a format the knowledge base reads under `folder` (hidden ones, and symbolic links, left
    alone), with its content hash: read again only when its size or modification time changed."""
    found: Seen = {}
    for top, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = Path(top) / name
            if name.startswith((".", "~$")) or path.suffix.lower() not in FORMAT_OF_SUFFIX or path.is_symlink():
                continue
            try:
                stat = path.stat()
                before = known.get(str(path))
                if before is not None and before[1:] == [stat.st_size, stat.st_mtime_ns]:
                    found[str(path)] = before
                else:
                    found[str(path)] = [_sha256(path), stat.st_size, stat.st_mtime_ns]
            except OSError:  # gone or unreadable since the listing: as if it were not there
                continue
    return found


async def scan_watched_folder(services: Services) -> dict[str, Any]:
    """Keep as `folder.file` events the files of the watched folder that are new, changed or gone since the last
    scan."""
    watch = services.settings.knowledge.watch
    if watch is None:
        return {"skipped": "no folder is watched (SOPHIA_KNOWLEDGE__WATCH)"}
    folder = watch.resolve()
    if not await anyio.to_thread.run_sync(folder.is_dir):
        raise InvalidInput(f"The watched folder {watch} is not a folder; check SOPHIA_KNOWLEDGE__WATCH")
    cursor = await services.connector_cursors.get(FOLDER)
    known: Seen = json.loads(cursor) if cursor else {}
    current = await anyio.to_thread.run_sync(scan_folder, folder, known)
    events = [
        Incoming("folder", f"{path}@{sha}", "folder.file", {"path": path, "sha256": sha, "removed": False}, "poll")
        for path, (sha, *_) in current.items()
        if (known.get(path) or [None])[0] != sha
    ]
    events += [
        Incoming("folder", f"{path}@removed@{sha}", "folder.file", {"path": path, "sha256": sha, "removed": True},
                 "poll")
        for path, (sha, *_) in known.items()
        if path not in current
    ]  # fmt: skip
    fresh = await services.inbox.record(events)
    # A file back to content it had before (an undo, a file put back) is an event the inbox already kept, so no
    # worker would see it again: it is brought in step here, before the cursor moves past it.
    again = [e.payload["path"] for e, new in zip(events, fresh, strict=True) if not new]
    for path in again:
        await reconcile_file(services, path)
    await services.connector_cursors.set(FOLDER, json.dumps(current))  # its events are kept above
    changed = sum(1 for e in events if not e.payload["removed"])
    return {"files": len(current), "changed": changed, "removed": len(events) - changed, "new": sum(fresh),
            "reconciled_here": len(again)}  # fmt: skip
