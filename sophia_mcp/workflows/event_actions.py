"""What each kind of event from outside does, by kind (`Incoming.kind`): one action per kind.

- `gong.call`: the call imported as `sophia-mcp calls import` does, then analysed as `run analyze-call` does
  (health, history, the alert when at risk).
- `hubspot.contact`: a new contact, a change of a property enrichment reads, or one the poll saw changed is
  enriched, written back and scored (the enrichment workflow for one contact); our own write-back is not.
- `slack.message`: a person's message (not a bot's, not a thread reply) in a bug channel is filed as a bug, and the
  issue's link replied in its thread.
- `linear.issue`: a state change of a bug report's issue is told to the reporter's channel (in the report's
  thread when it came from Slack), once per state whether the webhook or the `bug-status` poll sees it first.
- `github.pull_request`: a pull request naming a bug's issue (branch, title, body) moves it (opened or ready for
  review: In Review; merged: Merged or Done; closed unmerged: In Progress) and is linked on it.
- `vercel.deployment`: a deployment naming a bug's issue (commit ref, message): production succeeded comments its
  URL and tells the report's thread the fix is live; an error tells the assignee (a comment naming them); a
  preview is noted on the issue only.

An action is idempotent (its side effects carry keys derived from the event's subject: the call, the contact, the
message, the issue and its state), so an event processed again after a worker died half-way does nothing twice. It
returns a summary for the inbox, raises `Ignored` when the event asks for nothing, and raises any other error when
what it asked for is not done yet (a service down), so the inbox retries it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from sophia_mcp.adapters.gong_payloads import parse_call, parse_transcript
from sophia_mcp.app.services import Services
from sophia_mcp.domain.bugs import BugReport
from sophia_mcp.domain.inbox import InboxEvent
from sophia_mcp.domain.issues import Issue
from sophia_mcp.domain.times import utcnow
from sophia_mcp.errors import InvalidInput, NotFound, ServiceUnavailable
from sophia_mcp.workflows.bugs import (
    IN_PROGRESS,
    IN_REVIEW,
    MERGED,
    bug_issue,
    move_issue,
    named_identifiers,
    notify_state,
    report_bug,
    told_live,
)
from sophia_mcp.workflows.call_health import analyze_call
from sophia_mcp.workflows.call_import import import_gong_bodies
from sophia_mcp.workflows.enrichment import ENRICHED_FIELDS, enrich_one
from sophia_mcp.workflows.watched_folder import apply_folder_file


class Ignored(Exception):
    """The event needs nothing done; its text says why (kept as the event's result)."""


Action = Callable[[Services, InboxEvent], Awaitable[dict[str, Any]]]

# What enrichment matches a person on, or scores with: a change of one of these is worth enriching again.
READ_FIELDS = ("email", "first_name", "last_name", "title", "company")
# HubSpot's own property for the contact's company, which gives the domain and the client behind the score.
COMPANY_LINK = "associatedcompanyid"
# The `changeSource` of a write made through the API with a token (ours): the write-back itself.
API_SOURCES = frozenset({"INTEGRATION", "API"})
CONTACT_EVENTS = ("contact.creation", "contact.propertyChange", "contact.poll")


@runtime_checkable
class ChannelDirectory(Protocol):
    """A notifier that knows a channel's id from its `#name` (Slack's)."""

    async def channel_id(self, channel: str) -> str | None: ...


# -- gong.call ----------------------------------------------------------------------------------------


async def gong_call(services: Services, event: InboxEvent) -> dict[str, Any]:
    """Import the call (the `/v2/calls/extensive` shape, and its transcript when the event carries one), then
    analyse it: health, history, and one alert when its client is at risk. A call given again is unchanged, and
    its analysis raises no new alert (the alert is keyed by client and call)."""
    raw = {k: v for k, v in event.payload.items() if k != "transcript"}
    try:
        call = parse_call(raw).call
        transcript = (
            parse_transcript({"callId": call.id, "transcript": event.payload["transcript"]})
            if event.payload.get("transcript")
            else None
        )
    except InvalidInput as exc:
        raise Ignored(str(exc)) from None
    body: dict[str, Any] = {"calls": [raw]}
    if transcript is not None:
        body["callTranscripts"] = [{"callId": call.id, "transcript": event.payload["transcript"]}]
    imported = await import_gong_bodies(services, [(f"gong call {call.id}", body)])
    if imported.problems:
        raise InvalidInput("; ".join(imported.problems))
    # The transcript comes through the call source (Gong's API when it is the backend; the store's copy when not).
    report = await analyze_call(services, call.id)
    return {
        "call_id": call.id,
        "imported": "new" if imported.calls_new else "updated" if imported.calls_updated else "unchanged",
        "client_id": report.client_id,
        "health": report.health.score if report.health else None,
        "at_risk": report.at_risk,
        "alert": report.alert.key if report.alert else None,
        "alert_new": report.alert.new if report.alert else None,
        "alert_status": report.alert.status if report.alert else None,
        "alert_change": report.alert_change,
        "analysis_run": report.run_id,
    }


# -- hubspot.contact ----------------------------------------------------------------------------------


def read_properties(services: Services) -> set[str]:
    """The HubSpot properties enrichment reads (whose change makes it enrich the contact again)."""
    mapped = services.settings.hubspot.contact_properties
    return {mapped[f] for f in READ_FIELDS if f in mapped} | {COMPANY_LINK}


def written_properties(services: Services) -> set[str]:
    """The HubSpot properties enrichment writes back."""
    mapped = services.settings.hubspot.contact_properties
    return {mapped[f] for f in (*ENRICHED_FIELDS, "seniority", "lead_score", "lead_grade") if f in mapped}


def _occurred(payload: dict[str, Any]) -> datetime:
    at = payload.get("occurredAt")
    if isinstance(at, int | float) and at > 0:
        return datetime.fromtimestamp(at / 1000, tz=UTC)
    return utcnow()


async def hubspot_contact(services: Services, event: InboxEvent) -> dict[str, Any]:
    """Enrich, write back and score the contact of a creation, of a change of a property enrichment reads (email,
    first and last name, job title, company, its company link), or seen changed by the poll. A change made by an
    API write to a property enrichment writes (our own write-back), or of a property it does not read, is
    ignored, so writing back never starts it again."""
    payload = event.payload
    kind = str(payload.get("subscriptionType") or "")
    contact_id = str(payload.get("objectId") or "")
    if kind not in CONTACT_EVENTS:
        raise Ignored(f"a {kind or 'nameless'} event: only {', '.join(CONTACT_EVENTS)} start enrichment")
    if not contact_id:
        raise Ignored("the event names no contact (no objectId)")
    if services.crm.name != "hubspot":
        raise Ignored(f"the CRM backend is {services.crm.name}, not HubSpot: this contact is not in it")
    force = False
    if kind == "contact.propertyChange":
        name = str(payload.get("propertyName") or "")
        source = str(payload.get("changeSource") or "").upper()
        if name in written_properties(services) and source in API_SOURCES:
            raise Ignored(f"{name} changed through the API ({source}): our own write-back")
        if name not in read_properties(services):
            raise Ignored(f"{name or 'a property'} changed: enrichment does not read it")
        # What the enricher said before this change was about the person as they were: ask again, once (an
        # answer given since the change, by an earlier attempt at this event, is reused).
        since = _occurred(payload)
        force = contact_id not in await services.enrichments.fresh(services.crm.name, [contact_id], since)
    try:
        report, _ = await enrich_one(services, contact_id, force=force)
    except NotFound:
        raise Ignored(f"contact {contact_id} is not in HubSpot (deleted since?)") from None
    [outcome] = report.outcomes
    if outcome.status == "failed":
        raise ServiceUnavailable(f"contact {contact_id} not enriched: {outcome.error}")
    return {
        "contact_id": contact_id,
        "status": outcome.status,
        "matched": outcome.matched,
        "reused": outcome.reused,
        "written": sorted(outcome.changes),
        "score": outcome.score.score if outcome.score else None,
        "grade": outcome.score.grade if outcome.score else None,
        "enrichment_run": report.run_id,
    }


# -- slack.message ------------------------------------------------------------------------------------


async def is_bug_channel(services: Services, channel: str) -> bool:
    """Whether `channel` (an id, as Slack's events give it) is one of `SOPHIA_BUGS__CHANNELS`: listed by id, or by
    `#name` as the notifier resolves it (the local notifier's channels are their names)."""
    wanted = services.settings.bugs.channels
    if channel in wanted:
        return True
    names = [c for c in wanted if c.startswith("#")]
    notifier = services.notifier
    if names and isinstance(notifier, ChannelDirectory):
        return channel in {await notifier.channel_id(name) for name in names}
    return "#" + channel.lstrip("#") in names


async def slack_message(services: Services, event: InboxEvent) -> dict[str, Any]:
    """File a person's message in a bug channel as a bug, once per message, and reply the issue's link in the
    message's thread (the report's acknowledgement is that reply). Bots' messages, edits and other subtypes,
    thread replies and other channels are ignored."""
    message = event.payload
    channel, ts = str(message.get("channel") or ""), str(message.get("ts") or "")
    if message.get("type", "message") != "message":
        raise Ignored(f"a {message.get('type')} event, not a message")
    if message.get("bot_id") or message.get("subtype") == "bot_message":
        raise Ignored("a bot's message")
    if message.get("subtype"):
        raise Ignored(f"a {message['subtype']} message, not a new one")
    if not channel or not ts:
        raise Ignored("the message has no channel or ts")
    if message.get("thread_ts") and message["thread_ts"] != ts:
        raise Ignored("a reply in a thread, not a new report")
    if not await is_bug_channel(services, channel):
        raise Ignored(f"channel {channel} is not a bug channel (SOPHIA_BUGS__CHANNELS)")
    user = str(message.get("user") or "")
    try:
        result = await report_bug(services, str(message.get("text") or ""), f"<@{user}>" if user else "someone",
                                  channel, thread_ts=ts)  # fmt: skip
    except InvalidInput as exc:
        raise Ignored(str(exc)) from None
    if result.issue is None:
        # Kept, and the thread told it was received; the next attempt (or the bug-status check) files it.
        raise ServiceUnavailable("the tracker could not be reached; the report is kept and filed when it is back")
    if result.acknowledgement != "delivered":
        raise ServiceUnavailable(f"the reply in the thread is {result.acknowledgement}; it is sent on the next try")
    return {
        "channel": channel,
        "ts": ts,
        "status": result.status,
        "issue": result.issue.identifier,
        "url": result.issue.url,
        "reply": result.acknowledgement,
    }


# -- linear.issue -------------------------------------------------------------------------------------


async def linear_issue(services: Services, event: InboxEvent) -> dict[str, Any]:
    """Tell a bug report's channel its issue changed state: an `update` whose `updatedFrom` has `stateId`. The
    state told is the tracker's now (a late delivery tells nothing stale), once per state, whether the webhook or
    the `bug-status` poll sees it first."""
    body = event.payload
    data = body.get("data") or {}
    if body.get("type") != "Issue":
        raise Ignored(f"a {body.get('type') or 'nameless'} event, not an issue's")
    if body.get("action") != "update" or "stateId" not in (body.get("updatedFrom") or {}):
        raise Ignored(f"an issue's {body.get('action') or 'event'} that is no change of state")
    issue_id = str(data.get("id") or "")
    if await services.bug_reports.of_issue(issue_id) is None:
        raise Ignored(f"{data.get('identifier') or issue_id or 'the issue'} was not filed from a bug report")
    try:
        issue = await services.tracker.get(issue_id)
    except NotFound:
        raise Ignored(f"{data.get('identifier') or issue_id} is not in the tracker (deleted since?)") from None
    if not await notify_state(services, issue):
        raise Ignored(f"its channel has already heard {issue.identifier} is {issue.state}")
    return {"issue": issue.identifier, "state": issue.state, "told": True}


# -- github.pull_request -----------------------------------------------------------------------------


async def reported_issue(services: Services, named: list[str], none_named: str) -> tuple[BugReport, Issue]:
    """The bug report's issue among the identifiers an event names, with its report; `Ignored` (saying
    `none_named` when it names none) when none is an issue this project opened from a report."""
    if not named:
        raise Ignored(none_named)
    found = await bug_issue(services, named)
    if found is None:
        raise Ignored(f"{', '.join(named)}: no issue this project opened from a bug report")
    return found


async def github_pull_request(services: Services, event: InboxEvent) -> dict[str, Any]:
    """Move the bug's issue a pull request names, by what happened to the pull request, and link it on the issue.
    Only states the team has are used; an issue already finished is not moved back by a late `opened`."""
    body = event.payload
    action = str(body.get("action") or "")
    pr = body.get("pull_request") or {}
    merged = bool(pr.get("merged"))
    if action in ("opened", "ready_for_review", "reopened"):
        wanted = IN_PROGRESS if pr.get("draft") else IN_REVIEW
    elif action == "closed":
        wanted = MERGED if merged else IN_PROGRESS
    else:
        raise Ignored(f"a pull request's {action or 'event'}: only opened, ready_for_review, reopened, closed move")
    head = pr.get("head") or {}
    named = named_identifiers(str(head.get("ref") or ""), str(pr.get("title") or ""), str(pr.get("body") or ""))
    _, issue = await reported_issue(services, named, "the pull request names no issue (in its branch, title or body)")
    url = str(pr.get("html_url") or "")
    if url:
        await services.tracker.link(issue.id, url, f"PR #{pr.get('number')}: {pr.get('title') or ''}".strip())
    moved = await move_issue(services, issue, wanted, reopen=action == "reopened")
    return {"issue": issue.identifier, "action": "merged" if merged else action, "state": moved.state,
            "moved": moved.state != issue.state, "linked": url or None}  # fmt: skip


# -- vercel.deployment --------------------------------------------------------------------------------


async def vercel_deployment(services: Services, event: InboxEvent) -> dict[str, Any]:
    """Note a deployment on the bug's issue its commit names (once per deployment); a production success also
    tells the report's thread that the fix is live (once per report), and an error tells the assignee."""
    body = event.payload
    kind = str(body.get("type") or "")
    if kind not in ("deployment.succeeded", "deployment.error"):
        raise Ignored(f"a {kind or 'nameless'} event: only deployment.succeeded and deployment.error are acted on")
    payload = body.get("payload") or {}
    deployment = payload.get("deployment") or {}
    meta = deployment.get("meta") or {}
    named = named_identifiers(str(meta.get("githubCommitRef") or ""), str(meta.get("githubCommitMessage") or ""))
    report, issue = await reported_issue(
        services, named, "the deployment's commit names no issue (its branch or message)"
    )
    raw_url = str(deployment.get("url") or payload.get("url") or "")
    url = raw_url if raw_url.startswith("http") or not raw_url else f"https://{raw_url}"
    production = payload.get("target") == "production"
    key = f"vercel:{deployment.get('id') or body.get('id')}:{kind}:{issue.id}"
    live = None
    if kind == "deployment.error":
        who = f"@{issue.assignee}: " if issue.assignee else ""
        text = f"{who}the {'production' if production else 'preview'} deployment failed: {url}"
    elif production:
        text = f"Deployed to production: {url}"
    else:
        text = f"Preview deployed: {url}"
    commented = await services.tracker.comment(issue.id, text, key)
    if kind == "deployment.succeeded" and production:
        live = await told_live(services, report, issue, url)
    return {"issue": issue.identifier, "type": kind, "production": production, "url": url,
            "commented": commented, "live": live}  # fmt: skip


ACTIONS: dict[str, Action] = {
    "gong.call": gong_call,
    "hubspot.contact": hubspot_contact,
    "slack.message": slack_message,
    "linear.issue": linear_issue,
    "folder.file": apply_folder_file,
    "github.pull_request": github_pull_request,
    "vercel.deployment": vercel_deployment,
}
