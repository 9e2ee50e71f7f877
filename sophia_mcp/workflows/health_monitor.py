"""Scheduled client-health monitoring: one set-based pass over every client.

Each client under the health threshold gets, once per period however often the monitor runs, an issue for its
team (Linear, or the local tracker), a meeting request with its CSM (an iCalendar invite) and an alert to the
health channel that carries the invite. The side effects are kept in the outbox in one transaction before any
is sent, so Slack or Linear being down loses nothing: what could not be sent stays pending and goes out on a
later run or retry, and nothing is sent twice. Clients at or above the threshold are counted as healthy.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta

from pydantic import Field

from sophia_mcp.analysis.health import format_score, format_threshold
from sophia_mcp.app.services import Services
from sophia_mcp.domain.crm import Client
from sophia_mcp.domain.issues import IssueDraft
from sophia_mcp.domain.meetings import Attendee, Meeting, MeetingRequest
from sophia_mcp.domain.model import Model
from sophia_mcp.domain.notify import Alert, Attachment
from sophia_mcp.domain.outbox import OutboxStatus
from sophia_mcp.domain.times import utcnow
from sophia_mcp.errors import InvalidInput
from sophia_mcp.store.meetings import meeting_uid
from sophia_mcp.workflows.delivery import send_all
from sophia_mcp.workflows.issues import default_team
from sophia_mcp.workflows.runs import start_run

log = logging.getLogger(__name__)

SHOWN = 50  # at-risk clients listed in a report, worst first
Kept = tuple[int, OutboxStatus, str | None]  # an outbox entry: its id, status and the receiver's reference


class AtRiskClient(Model):
    client_id: str
    name: str
    score: float
    csm: str | None
    issue: str | None = Field(description="The issue's identifier once the tracker has it.")
    issue_status: str
    alert_status: str
    meeting_uid: str | None = Field(description="The meeting request's invite, when the client has a CSM.")
    first_this_period: bool = Field(description="False when an earlier run this period already flagged it.")


class MonitorReport(Model):
    run_id: str
    period: str = Field(description="The period side effects are counted in, e.g. 2026-W48.")
    threshold: float
    clients: int
    without_health: int = Field(description="Clients with no health score yet (no analysed call).")
    healthy: int
    at_risk: int
    new_issues: int
    new_meetings: int
    new_alerts: int
    pending: int = Field(description="Side effects not sent yet (a service was down); sent on a later run or retry.")
    worst: list[AtRiskClient] = Field(description=f"Up to {SHOWN} at-risk clients, lowest health first.")


def period_of(day: date, days: int) -> tuple[date, str]:
    """The period `day` falls in: its first day, and its label (an ISO week when periods are 7 days)."""
    start = date.fromordinal((day.toordinal() - 1) // days * days + 1)  # ordinal 1 is a Monday
    if days == 7:
        year, week, _ = start.isocalendar()
        return start, f"{year}-W{week:02d}"
    return start, start.isoformat()


def next_weekday_at(now: datetime, hour: int) -> datetime:
    day = now.date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime.combine(day, time(hour), tzinfo=UTC)


def _issue(client: Client, score: float, threshold: float, period: str, team: str, priority: int) -> IssueDraft:
    lines = [
        f"**{client.name}**'s health is **{format_score(score, threshold)}**/100, under the threshold of "
        f"{format_threshold(threshold)}.",
        "",
        f"- CSM: {client.csm_name or 'none assigned'}" + (f" ({client.csm_email})" if client.csm_email else ""),
        f"- Segment: {client.segment or 'unknown'}; ARR: {f'${client.arr:,.0f}' if client.arr else 'unknown'}",
        f"- Health and its reasons: `crm://clients/{client.id}/health`",
        "",
        "Next: meet the client (a meeting request went to the CSM), find the cause, agree a recovery plan.",
    ]
    return IssueDraft(
        team=team, title=f"{client.name}: health {format_score(score, threshold)} ({period})",
        description="\n".join(lines), priority=priority, labels=["client-health"],
    )  # fmt: skip


def _meeting(client: Client, score: float, period: str, starts: datetime, services: Services) -> MeetingRequest:
    monitor, threshold = services.settings.monitor, services.settings.health.threshold
    return MeetingRequest(
        key=f"health-meeting:{client.id}:{period}",
        title=f"{client.name}: health review",
        description=f"{client.name}'s health is {format_score(score, threshold)}/100. Review the recent calls and "
        "agree next steps.",
        organizer=Attendee(email=monitor.organizer_email, name="sophia-mcp"),
        attendees=[Attendee(email=client.csm_email or "", name=client.csm_name)],
        starts_at=starts,
        minutes=monitor.meeting_minutes,
    )


def _alert(client: Client, score: float, threshold: float, period: str, channel: str, meeting: Meeting | None) -> Alert:
    text = (
        f"{client.name}'s health is {format_score(score, threshold)}/100 (threshold {format_threshold(threshold)}); "
        f"an issue is open for {period}."
    )
    if meeting is not None:
        text += f" Meeting request to {client.csm_name or client.csm_email}: {meeting.starts_at:%a %d %b %H:%M} UTC."
    return Alert(
        key=f"health-monitor:{client.id}:{period}", channel=channel,
        severity="critical" if score < threshold - 20 else "warning", title=f"{client.name} is at risk", text=text,
        attachments=[Attachment(filename="health-review.ics", mime_type="text/calendar", content=meeting.ics)]
        if meeting else [],
    )  # fmt: skip


async def monitor_health(services: Services, now: datetime | None = None) -> MonitorReport:
    settings = services.settings
    monitor, threshold = settings.monitor, settings.health.threshold
    now = now or utcnow()
    _, period = period_of(now.date(), monitor.period_days)
    team = default_team(services, monitor.team)
    if team is None:
        raise InvalidInput("The health monitor needs a team for its issues: set SOPHIA_MONITOR__TEAM or "
                           "SOPHIA_LINEAR__TEAM")  # fmt: skip

    async with start_run(services.runs, "health_monitor", period, {"threshold": threshold, "period": period}) as run:

        async def load() -> tuple[list[str], dict[str, float], list[Client]]:
            # Whole records only of the clients at risk: the rest are counted by id and score, all read in one query.
            ids = await services.clients.all_client_ids()
            every = await services.warehouse.all_health_scores()
            scores = {i: every[i] for i in ids if i in every}
            risky = [i for i in ids if scores.get(i, threshold) < threshold]
            records = await services.clients.get_clients(risky)
            return ids, scores, [records[i] for i in risky if i in records]

        client_ids, scores, risky = await run.step(
            "load clients and health", load, lambda r: {"clients": len(r[0]), "with_health": len(r[1])}
        )
        at_risk = sorted(risky, key=lambda c: scores[c.id])
        starts = next_weekday_at(now, monitor.meeting_hour_utc)
        issue_keys = {c.id: f"health-issue:{c.id}:{period}" for c in at_risk}
        alert_keys = {c.id: f"health-monitor:{c.id}:{period}" for c in at_risk}
        meeting_keys = {c.id: f"health-meeting:{c.id}:{period}" for c in at_risk if c.csm_email}

        async def book_all() -> tuple[dict[str, Kept], dict[str, Meeting], int]:
            # What an earlier run this period kept is read by key alone: a repeat pass renders and rewrites nothing.
            kept = await services.outbox.states([*issue_keys.values(), *alert_keys.values()])
            booked = await services.meetings.booked(list(meeting_keys.values()))
            # A meeting is booked once; it is read back only for an alert still to be kept, which carries it.
            booking = [
                (client, _meeting(client, scores[client.id], period, starts, services))
                for client in at_risk
                if client.id in meeting_keys
                and (meeting_keys[client.id] not in booked or alert_keys[client.id] not in kept)
            ]
            made = await services.meetings.book_all([request for _, request in booking]) if booking else []
            meetings = {client.id: meeting for (client, _), (meeting, _) in zip(booking, made, strict=True)}
            return kept, meetings, sum(created for _, created in made)

        kept, meetings, new_meetings = await run.step(
            "request meetings", book_all, lambda r: {"booked": len(meeting_keys), "new": r[2]}
        )
        channel = settings.alerts.channel_for("health")

        async def keep() -> dict[str, tuple[int, bool]]:
            issues = [
                (key, team, {"key": key, "draft": _issue(c, scores[c.id], threshold, period, team,
                                                         monitor.priority).model_dump(mode="json")})
                for c in at_risk
                for key in [issue_keys[c.id]] if key not in kept
            ]  # fmt: skip
            alerts = [
                (alert.key, channel, alert.model_dump(mode="json"))
                for c in at_risk
                if alert_keys[c.id] not in kept
                for alert in [_alert(c, scores[c.id], threshold, period, channel, meetings.get(c.id))]
            ]
            ids: dict[str, tuple[int, bool]] = {key: (entry_id, False) for key, (entry_id, _, _) in kept.items()}
            for kind, items in (("issue", issues), ("alert", alerts)):
                if items:
                    added = await services.outbox.enqueue_many(kind, items, run.id)
                    ids.update((key, entry) for (key, _, _), entry in zip(items, added, strict=True))
            return ids

        kept_ids = await run.step(
            "keep issues and alerts", keep,
            lambda r: {"new_issues": sum(r[k][1] for k in issue_keys.values()),
                       "new_alerts": sum(r[k][1] for k in alert_keys.values())},
        )  # fmt: skip

        async def deliver() -> dict[str, Kept]:
            due = [k for k in kept_ids if k not in kept or kept[k][1] != "delivered"]
            sent = {i: (ref, error) for i, ref, error in await send_all(services, [kept_ids[k][0] for k in due])}
            # What this pass sent is as its outcome says; only the rest (held, or another process's) is read back.
            after: dict[str, Kept] = {}
            for k in due:
                entry_id = kept_ids[k][0]
                if entry_id in sent:
                    ref, error = sent[entry_id]
                    after[k] = (entry_id, "delivered", ref) if error is None else (entry_id, "pending", None)
            unsent = [k for k in due if k not in after]
            return {**kept, **after, **(await services.outbox.states(unsent) if unsent else {})}

        states = await run.step(
            "send", deliver, lambda r: {"pending": sum(status != "delivered" for _, status, _ in r.values())}
        )
        rows = [
            AtRiskClient(
                client_id=client.id, name=client.name, score=round(scores[client.id], 1), csm=client.csm_name,
                issue=states[issue_keys[client.id]][2], issue_status=states[issue_keys[client.id]][1],
                alert_status=states[alert_keys[client.id]][1],
                meeting_uid=meeting_uid(meeting_keys[client.id]) if client.id in meeting_keys else None,
                first_this_period=kept_ids[issue_keys[client.id]][1],
            )
            for client in at_risk[:SHOWN]
        ]  # fmt: skip
        healthy = sum(1 for i in client_ids if i in scores and scores[i] >= threshold)
        log.info("health monitor %s: %d clients healthy, %d at risk", period, healthy, len(at_risk))
        report = MonitorReport(
            run_id=run.id, period=period, threshold=threshold, clients=len(client_ids),
            without_health=len(client_ids) - len(scores), healthy=healthy, at_risk=len(at_risk),
            new_issues=sum(kept_ids[k][1] for k in issue_keys.values()), new_meetings=new_meetings,
            new_alerts=sum(kept_ids[k][1] for k in alert_keys.values()),
            pending=sum(status != "delivered" for _, status, _ in states.values()), worst=rows,
        )  # fmt: skip
        run.output = report.model_dump(mode="json", exclude={"worst"})
    return report
