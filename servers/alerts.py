"""The alerts server: send alerts to channels (Slack, or the local outbox), see them and retry them."""

from collections.abc import Sequence
from datetime import UTC, datetime, time
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.prompts.base import Message, UserMessage
from pydantic import Field, TypeAdapter, ValidationError

from sophia_mcp.app.services import Services
from sophia_mcp.domain.cursors import MAX_INT, decode_cursor, encode_cursor
from sophia_mcp.domain.meetings import Attendee
from sophia_mcp.domain.model import Model
from sophia_mcp.domain.notify import Alert, Severity
from sophia_mcp.domain.outbox import OutboxEntry, OutboxStatus
from sophia_mcp.domain.schedules import ScheduleInfo
from sophia_mcp.domain.times import utcnow
from sophia_mcp.errors import InvalidInput, NotFound
from sophia_mcp.mcp.server import (
    DEMO_HINT,
    KEY_PATTERN,
    CalendarDate,
    Cursor,
    EmptyNote,
    SlackChannel,
    SophiaServer,
    complete_client_names,
    none_yet,
    services_of,
    tool_hints,
)
from sophia_mcp.settings import ScheduledWorkflow, ScheduleSpec, Settings
from sophia_mcp.workflows import scheduler
from sophia_mcp.workflows.alerts import SentAlert
from sophia_mcp.workflows.alerts import retry_alerts as retry_alerts_workflow
from sophia_mcp.workflows.alerts import send_alert as send_alert_workflow
from sophia_mcp.workflows.health_monitor import MonitorReport, monitor_health

INSTRUCTIONS = """\
Alerts to the team's channels (Slack, or the local outbox when Slack is not configured), and client-health
monitoring. send_alert posts one: name a channel, or a topic whose route picks it (health -> #client-health,
churn -> #leadership, competitive -> #competitive-intel, bug -> #bugs); the same idempotency key within the
dedupe window is sent once. list_alerts shows what was sent or is waiting, with errors; retry_alerts sends
again what could not be sent. run_health_monitor opens an issue, a meeting request and an alert for each client
under the health threshold, once per period; list_schedules and set_schedule show and change what runs when.
list_meetings shows the meetings booked with CSMs (by the health monitor and the churn prediction)."""

Channel = Annotated[SlackChannel, Field(description="A channel by #name (lower case) or Slack id.")]
Topic = Annotated[
    str, Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$", max_length=40, description="Routing topic, e.g. health, churn.")
]
RECENT = 50

Block = Annotated[dict[str, Any], Field(description="A Slack Block Kit block: an object with a `type`.")]


class AttachedFile(Model):
    filename: str
    mime_type: str


class ListedAlert(Model):
    """An alert as a listing shows it: what it says, where it went and how its delivery stands. Its Slack blocks
    (the same message laid out) and its files' contents are left to `uri`: a page stays small for a model to read."""

    id: int
    key: str
    channel: str
    severity: Severity
    title: str
    text: str
    thread_ts: str | None = Field(description="Slack's ts of the message it replies to, in that thread.")
    attachments: list[AttachedFile] = Field(description="The files it carries (an invite); their contents at `uri`.")
    status: OutboxStatus
    attempts: int
    last_error: str | None
    external_ref: str | None = Field(description="The receiver's reference: Slack's ts of the message.")
    run_id: str | None
    created_at: datetime
    delivered_at: datetime | None
    uri: str = Field(description="The whole alert as sent (blocks and attachments included), as a resource.")

    @staticmethod
    def listing(entries: Sequence[OutboxEntry]) -> "list[ListedAlert]":
        """The entries as listed: their alerts read and the listing validated each in one call of pydantic-core,
        not two models built in Python an entry (a page of 20: 118 -> 67 us)."""
        alerts = _ALERTS.validate_python([entry.payload for entry in entries])
        return _LISTED.validate_python([{
            "id": entry.id, "key": entry.key, "channel": entry.target, "severity": alert.severity,
            "title": alert.title, "text": alert.text, "thread_ts": alert.thread_ts,
            "attachments": [{"filename": a.filename, "mime_type": a.mime_type} for a in alert.attachments],
            "status": entry.status, "attempts": entry.attempts, "last_error": entry.last_error,
            "external_ref": entry.external_ref, "run_id": entry.run_id, "created_at": entry.created_at,
            "delivered_at": entry.delivered_at, "uri": f"alerts://{entry.id}",
        } for entry, alert in zip(entries, alerts, strict=True)])  # fmt: skip


_ALERTS = TypeAdapter(list[Alert])
_LISTED = TypeAdapter(list[ListedAlert])


class AlertPage(Model):
    alerts: list[ListedAlert]
    next_cursor: str | None = Field(description="Pass as `cursor` for older alerts; null on the last page.")
    note: EmptyNote = None


class ScheduleList(Model):
    schedules: list[ScheduleInfo]


class MeetingListing(Model):
    uid: str
    key: str = Field(description="What it is about: health-meeting:{client}:{period} or churn-meeting:{client}:{week}.")
    title: str
    organizer: Attendee
    attendees: list[Attendee]
    starts_at: datetime
    ends_at: datetime
    uri: str = Field(description="The invite (.ics) as a resource.")


class MeetingPage(Model):
    meetings: list[MeetingListing]
    next_cursor: str | None = Field(description="Pass as `cursor` for earlier meetings; null on the last page.")


RETRIED_SHOWN = 50


class Retried(Model):
    alerts: list[OutboxEntry] = Field(description=f"Up to {RETRIED_SHOWN} of them, those still pending first.")
    alerts_omitted: int = Field(default=0, description="How many more were retried than are listed.")
    delivered: int
    pending: int


async def send_alert(
    ctx: Context,
    text: Annotated[str, Field(min_length=1, max_length=40_000, description="The message, in plain text.")],
    severity: Annotated[Severity, Field(description="info, warning or critical.")] = "warning",
    channel: Annotated[Channel | None, Field(description="Where to post; default: the topic's route.")] = None,
    topic: Annotated[Topic | None, Field(description="Routes the alert when no channel is named.")] = None,
    title: Annotated[str | None, Field(max_length=150, description="Short heading; default: the first line.")] = None,
    blocks: Annotated[list[Block] | None, Field(max_length=50, description="Optional rich layout.")] = None,
    idempotency_key: Annotated[
        str | None,
        Field(
            pattern=KEY_PATTERN,
            max_length=200,
            description="What the alert is about, e.g. health:acme:2026-11-25; "
            "the same key within the dedupe window is not sent twice. Default: the message itself.",
        ),
    ] = None,
) -> SentAlert:
    """Post an alert to a channel, routed by topic when no channel is named, sent once per key within the dedupe
    window. If Slack cannot take it now, it is kept and sent later (status pending, with the error)."""
    if blocks and any(not isinstance(b.get("type"), str) for b in blocks):
        raise InvalidInput("Every block needs a string `type` (section, header, divider, ...), as Block Kit requires")
    return await send_alert_workflow(
        services_of(ctx), text, severity=severity, channel=channel, topic=topic, title=title, blocks=blocks,
        key=idempotency_key,
    )  # fmt: skip


async def list_alerts(
    ctx: Context,
    status: Annotated[OutboxStatus | None, Field(description="Only alerts with this status.")] = None,
    channel: Annotated[Channel | None, Field(description="Only alerts to this channel.")] = None,
    limit: Annotated[int | None, Field(ge=1, le=200, description="Alerts per page, 1-200; null: 20.")] = 20,
    cursor: Cursor = None,
) -> AlertPage:
    """Alerts sent or waiting to be sent, newest first: what each says, with its delivery status, attempts and last
    error. Each one's `uri` (alerts://{id}) reads it whole, with its Slack blocks and attachments."""
    limit = limit or 20
    before = decode_cursor(cursor, "alerts", int)[0] if cursor else None
    alerts = await services_of(ctx).outbox.list(status, limit + 1, channel, before, kind="alert")
    following = encode_cursor("alerts", alerts[limit - 1].id) if len(alerts) > limit else None
    how = f"{DEMO_HINT} and raises its alerts; run_health_monitor raises those due"
    note = none_yet(alerts, not (status or channel or cursor), "alerts", how)
    return AlertPage(alerts=ListedAlert.listing(alerts[:limit]), next_cursor=following, note=note)


async def retry_alerts(
    ctx: Context,
    alert_ids: Annotated[
        list[Annotated[int, Field(ge=1, le=MAX_INT)]] | None,
        Field(max_length=100, description="Default: every pending one."),
    ] = None,
) -> Retried:
    """Send again alerts that could not be sent (Slack down, say). Delivered alerts are never sent twice."""
    alerts = await retry_alerts_workflow(services_of(ctx), alert_ids)
    delivered = sum(a.status == "delivered" for a in alerts)
    shown = sorted(alerts, key=lambda a: a.status == "delivered")[:RETRIED_SHOWN]  # stable: pending ones first
    return Retried(
        alerts=shown, alerts_omitted=len(alerts) - len(shown), delivered=delivered, pending=len(alerts) - delivered
    )


async def alert_resource(alert_id: str, ctx: Context) -> str:
    # An alert's id is an integer SQLite can hold: anything else names no alert (and must not reach the store).
    if alert_id.isascii() and alert_id.isdigit() and len(alert_id) <= 19 and int(alert_id) <= MAX_INT:
        try:
            return (await services_of(ctx).outbox.get(int(alert_id))).model_dump_json(indent=2)
        except LookupError:
            pass
    raise NotFound(f"No alert {alert_id!r}; alerts://recent lists them")


async def run_health_monitor(ctx: Context) -> MonitorReport:
    """Check every client's health now: for each under the threshold, open an issue for its team, send its CSM a
    meeting request and alert the health channel, once per client per period (a week by default) however often
    it runs. Reports how many are healthy, at risk, newly flagged, and anything still waiting to be sent."""
    return await monitor_health(services_of(ctx))


async def list_schedules(ctx: Context) -> ScheduleList:
    """The scheduled workflows: timing, next and last run, whether one is running, and their recent runs with
    results or errors; those configured in settings too before any scheduler has run them. `sophia-mcp schedule`
    runs them."""
    services = services_of(ctx)
    configured = services.settings.schedules
    return ScheduleList(schedules=await scheduler.list_schedules(services, configured))


async def set_schedule(
    ctx: Context,
    name: Annotated[
        str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,59}$", max_length=60, description="e.g. health-monitor.")
    ],
    workflow: Annotated[ScheduledWorkflow, Field(description="What it runs.")],
    cron: Annotated[
        str | None,
        Field(max_length=100, description="minute hour day month weekday (UTC), e.g. '0 2 * * *' for 02:00 daily."),
    ] = None,
    every: Annotated[str | None, Field(max_length=12, description="Or an interval: 30s, 5m, 2h, 1d.")] = None,
    enabled: bool = True,
) -> ScheduleInfo:
    """Add or change a schedule (kept in the store; schedules named in settings are set from them again when the
    scheduler starts). Give exactly one of cron or every."""
    services = services_of(ctx)
    try:
        spec = ScheduleSpec(name=name, workflow=workflow, cron=cron, every=every, enabled=enabled)
    except ValidationError as exc:
        raise InvalidInput("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
    await scheduler.set_schedule(services, spec, utcnow())
    return await scheduler.get_schedule(services, name, services.settings.schedules)


async def list_meetings(
    ctx: Context,
    client_id: Annotated[
        str | None, Field(pattern=r"^[\w.-]+$", max_length=100, description="Only this client's meetings (its id).")
    ] = None,
    from_date: Annotated[
        CalendarDate | None, Field(description="Only meetings starting on or after, YYYY-MM-DD.")
    ] = None,
    limit: Annotated[int | None, Field(ge=1, le=100, description="Meetings per page, 1-100; null: 20.")] = 20,
    cursor: Cursor = None,
) -> MeetingPage:
    """The meetings booked with CSMs (by the health monitor for clients at risk, and by the churn prediction), latest
    start first: title, attendees, time and the invite's resource. Page with `cursor`."""
    starts_from = datetime.combine(from_date, time.min, UTC) if from_date else None
    meetings, following = await services_of(ctx).meetings.page(client_id, starts_from, limit or 20, cursor)
    return MeetingPage(
        meetings=[
            MeetingListing(
                uid=m.uid, key=m.key, title=m.title, organizer=m.organizer, attendees=m.attendees,
                starts_at=m.starts_at, ends_at=m.ends_at, uri=f"meetings://{m.uid}",
            )
            for m in meetings
        ],
        next_cursor=following,
    )  # fmt: skip


async def meeting_resource(uid: str, ctx: Context) -> str:
    """A meeting request as its iCalendar invite (.ics)."""
    return (await services_of(ctx).meetings.get(uid)).ics


def escalate(
    client: Annotated[str, Field(max_length=200, description="The client at risk.")],
    reason: Annotated[str, Field(max_length=2000, description="What happened.")],
) -> list[Message]:
    """Write and send a clear escalation about a client."""
    return [
        UserMessage(
            f"Write a short escalation about {client}: {reason}. Say what happened, why it matters and who should "
            "act by when, in three lines. Then send it with send_alert, topic 'health', severity 'critical', and "
            f"idempotency_key 'escalation:{client}' so it is sent once."
        )
    ]


def _complete_alert_ids(services: Services, typed: str, _: dict[str, str]) -> list[str]:
    return services.suggestions.alert_ids(typed)


def register(server: SophiaServer, prefix: str = "") -> None:
    """Declare the alerts tools, resources, prompts and completions on `server` (tool names get `prefix`)."""
    server.declare_tool(
        send_alert, name="send_alert", prefix=prefix,
        annotations=tool_hints("Send alert", read_only=False, idempotent=True, open_world=True),
    )  # fmt: skip
    server.declare_tool(
        list_alerts, name="list_alerts", prefix=prefix, annotations=tool_hints("List alerts", read_only=True)
    )
    server.declare_tool(
        list_schedules, name="list_schedules", prefix=prefix, annotations=tool_hints("List schedules", read_only=True)
    )
    server.declare_tool(
        list_meetings, name="list_meetings", prefix=prefix, annotations=tool_hints("List meetings", read_only=True)
    )
    server.declare_tool(
        set_schedule, name="set_schedule", prefix=prefix,
        annotations=tool_hints("Set a schedule", read_only=False, idempotent=True),
    )  # fmt: skip
    server.declare_tool(
        run_health_monitor, name="run_health_monitor", prefix=prefix,
        annotations=tool_hints("Run the health monitor", read_only=False, idempotent=True, open_world=True),
    )  # fmt: skip
    server.declare_tool(
        retry_alerts, name="retry_alerts", prefix=prefix,
        annotations=tool_hints("Retry alerts", read_only=False, idempotent=True, open_world=True),
    )  # fmt: skip

    async def recent_alerts() -> str:
        """The 50 newest alerts with their delivery status."""
        alerts = await server.services.outbox.list(limit=RECENT, kind="alert")
        return AlertPage(alerts=ListedAlert.listing(alerts), next_cursor=None).model_dump_json(indent=2)

    server.declare_resource(
        "alerts://recent", name="recent_alerts", title="Recent alerts", mime_type="application/json"
    )(recent_alerts)
    server.declare_resource("alerts://{alert_id}", name="alert", title="Alert", mime_type="application/json")(
        alert_resource
    )
    server.declare_resource("meetings://{uid}", name="meeting", title="Meeting request", mime_type="text/calendar")(
        meeting_resource
    )
    server.prompt(name="escalate", title="Escalate a client")(escalate)
    server.add_completer("alerts://{alert_id}", "alert_id", _complete_alert_ids)
    server.add_completer("escalate", "client", complete_client_names)


def create_server(settings: Settings | None = None, **kwargs: Any) -> SophiaServer:
    server = SophiaServer("sophia-alerts", INSTRUCTIONS, settings, **kwargs)
    register(server)
    return server
