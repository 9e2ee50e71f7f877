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
from sophia_mcp.domain.outbox import OutboxEntry
from sophia_mcp.domain.times import utcnow
from sophia_mcp.errors import InvalidInput
from sophia_mcp.workflows.delivery import deliver_all
from sophia_mcp.workflows.issues import default_team
from sophia_mcp.workflows.runs import start_run

log = logging.getLogger(__name__)

SHOWN = 50  # at-risk clients listed in a report, worst first


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

        async def load() -> tuple[list[Client], dict[str, float]]:
            clients = await services.clients.all_clients()
            return clients, await services.warehouse.health_scores([c.id for c in clients])

        clients, scores = await run.step(
            "load clients and health", load, lambda r: {"clients": len(r[0]), "with_health": len(r[1])}
        )
        at_risk = sorted((c for c in clients if scores.get(c.id, threshold) < threshold), key=lambda c: scores[c.id])
        starts = next_weekday_at(now, monitor.meeting_hour_utc)

        async def book_all() -> tuple[dict[str, Meeting], int]:
            booking = [
                (client, _meeting(client, scores[client.id], period, starts, services))
                for client in at_risk
                if client.csm_email
            ]
            booked = await services.meetings.book_all([request for _, request in booking])
            meetings = {client.id: meeting for (client, _), (meeting, _) in zip(booking, booked, strict=True)}
            return meetings, sum(created for _, created in booked)

        meetings, new_meetings = await run.step(
            "request meetings", book_all, lambda r: {"booked": len(r[0]), "new": r[1]}
        )
        channel = settings.alerts.channel_for("health")

        async def keep() -> tuple[list[tuple[int, bool]], list[tuple[int, bool]]]:
            issues = [
                (key, team, {"key": key, "draft": _issue(c, scores[c.id], threshold, period, team,
                                                         monitor.priority).model_dump(mode="json")})
                for c in at_risk
                for key in [f"health-issue:{c.id}:{period}"]
            ]  # fmt: skip
            alerts = [
                (alert.key, channel, alert.model_dump(mode="json"))
                for c in at_risk
                for alert in [_alert(c, scores[c.id], threshold, period, channel, meetings.get(c.id))]
            ]
            return (
                await services.outbox.enqueue_many("issue", issues, run.id),
                await services.outbox.enqueue_many("alert", alerts, run.id),
            )

        issue_ids, alert_ids = await run.step(
            "keep issues and alerts", keep,
            lambda r: {"new_issues": sum(n for _, n in r[0]), "new_alerts": sum(n for _, n in r[1])},
        )  # fmt: skip

        async def deliver() -> dict[int, OutboxEntry]:
            return await deliver_all(services, [i for i, _ in issue_ids] + [i for i, _ in alert_ids])

        entries = await run.step(
            "send", deliver, lambda r: {"pending": sum(e.status != "delivered" for e in r.values())}
        )
        rows = []
        for client, (issue_id, new), (alert_id, _) in zip(at_risk, issue_ids, alert_ids, strict=True):
            issue, alert = entries[issue_id], entries[alert_id]
            rows.append(
                AtRiskClient(
                    client_id=client.id, name=client.name, score=round(scores[client.id], 1), csm=client.csm_name,
                    issue=issue.external_ref, issue_status=issue.status, alert_status=alert.status,
                    meeting_uid=meetings[client.id].uid if client.id in meetings else None, first_this_period=new,
                )
            )  # fmt: skip
        healthy = sum(1 for c in clients if c.id in scores and scores[c.id] >= threshold)
        log.info("health monitor %s: %d clients healthy, %d at risk", period, healthy, len(at_risk))
        report = MonitorReport(
            run_id=run.id, period=period, threshold=threshold, clients=len(clients),
            without_health=len(clients) - len(scores), healthy=healthy, at_risk=len(at_risk),
            new_issues=sum(n for _, n in issue_ids), new_meetings=new_meetings, new_alerts=sum(n for _, n in alert_ids),
            pending=sum(e.status != "delivered" for e in entries.values()), worst=rows[:SHOWN],
        )  # fmt: skip
        run.output = report.model_dump(mode="json", exclude={"worst"})
    return report
