"""Scheduled client-health monitoring: one set-based pass over every client.

Each client under the health threshold gets, once per period however often the monitor runs, an issue for its
team (Linear, or the local tracker), a meeting request with its CSM (an iCalendar invite) and an alert to the
health channel that carries the invite. The clients at risk are taken a batch at a time, worst first, and a
batch's side effects are kept in the outbox before any of them is sent, so Slack or Linear being down loses
nothing: what could not be sent stays pending and goes out on a later run or retry, and nothing is sent twice.
Clients at or above the threshold are counted as healthy.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from pydantic import Field

from sophia_mcp.analysis.health import format_score, format_threshold
from sophia_mcp.app.services import Services
from sophia_mcp.domain.crm import Client
from sophia_mcp.domain.issues import IssueDraft
from sophia_mcp.domain.meetings import Attendee, Meeting, MeetingRequest
from sophia_mcp.domain.model import Model
from sophia_mcp.domain.notify import Alert, Attachment
from sophia_mcp.domain.outbox import OutboxEntry, OutboxStatus
from sophia_mcp.domain.times import utcnow
from sophia_mcp.errors import InvalidInput
from sophia_mcp.store.meetings import meeting_uid
from sophia_mcp.workflows.delivery import held_kinds, send_all, send_claimed, sent_at_once
from sophia_mcp.workflows.issues import default_team
from sophia_mcp.workflows.runs import start_run

log = logging.getLogger(__name__)

SHOWN = 50  # at-risk clients listed in a report, worst first
BATCH = 500  # at-risk clients booked, kept and sent together, before the next batch is read
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


def _issue(client: Client, health: str, under: str, period: str, team: str, priority: int) -> IssueDraft:
    lines = [
        f"**{client.name}**'s health is **{health}**/100, under the threshold of {under}.",
        "",
        f"- CSM: {client.csm_name or 'none assigned'}" + (f" ({client.csm_email})" if client.csm_email else ""),
        f"- Segment: {client.segment or 'unknown'}; ARR: {f'${client.arr:,.0f}' if client.arr else 'unknown'}",
        f"- Health and its reasons: `crm://clients/{client.id}/health`",
        "",
        "Next: meet the client (a meeting request went to the CSM), find the cause, agree a recovery plan.",
    ]
    return IssueDraft(
        team=team, title=f"{client.name}: health {health} ({period})", description="\n".join(lines),
        priority=priority, labels=["client-health"],
    )  # fmt: skip


def _meeting(client: Client, health: str, key: str, starts: datetime, organizer: Attendee, csm: Attendee,
             minutes: int) -> MeetingRequest:  # fmt: skip
    return MeetingRequest(
        key=key, title=f"{client.name}: health review",
        description=f"{client.name}'s health is {health}/100. Review the recent calls and agree next steps.",
        organizer=organizer, attendees=[csm], starts_at=starts, minutes=minutes,
    )  # fmt: skip


def _alert(client: Client, health: str, under: str, critical: bool, period: str, channel: str,
           meeting: Meeting | None) -> Alert:  # fmt: skip
    text = f"{client.name}'s health is {health}/100 (threshold {under}); an issue is open for {period}."
    if meeting is not None:
        text += f" Meeting request to {client.csm_name or client.csm_email}: {_when(meeting.starts_at)} UTC."
    return Alert(
        key=f"health-monitor:{client.id}:{period}", channel=channel, severity="critical" if critical else "warning",
        title=f"{client.name} is at risk", text=text,
        attachments=[Attachment(filename="health-review.ics", mime_type="text/calendar", content=meeting.ics)]
        if meeting else [],
    )  # fmt: skip


@functools.lru_cache(maxsize=16)  # a pass's meetings share their start
def _when(starts: datetime) -> str:
    return f"{starts:%a %d %b %H:%M}"


@dataclass
class Tally:
    """What a pass's batches came to, for its report."""

    at_risk: int = 0
    new_meetings: int = 0
    new_issues: int = 0
    new_alerts: int = 0
    pending: int = 0
    worst: list[AtRiskClient] = field(default_factory=list)


@dataclass
class Pass:
    """One pass over the clients at risk, a batch at a time: each batch's meetings are booked, its issues and
    alerts kept in the outbox and then sent before the next batch is read, so a pass holds one batch's records,
    drafts and invites at a time however many clients are at risk."""

    services: Services
    run_id: str
    period: str
    team: str
    starts: datetime
    scores: dict[str, float]
    tally: Tally = field(default_factory=Tally)
    # Built once a pass: the organizer, each CSM (a few dozen for many clients), the threshold as text.
    organizer: Attendee = field(init=False)
    csms: dict[tuple[str, str | None], Attendee] = field(default_factory=dict)
    under: str = field(init=False)

    def __post_init__(self) -> None:
        settings = self.services.settings
        self.organizer = Attendee(email=settings.monitor.organizer_email, name="sophia-mcp")
        self.under = format_threshold(settings.health.threshold)

    def csm(self, client: Client) -> Attendee:
        found = self.csms.get((client.csm_email or "", client.csm_name))
        if found is None:
            found = self.csms[(client.csm_email or "", client.csm_name)] = Attendee(
                email=client.csm_email or "", name=client.csm_name
            )
        return found

    async def act_on(self, client_ids: list[str]) -> None:
        """Book, keep and send what these clients at risk (worst first) are owed this period, and count it."""
        records = await self.services.clients.get_clients(client_ids)
        batch = [records[i] for i in client_ids if i in records]
        period = self.period
        issue_keys = {c.id: f"health-issue:{c.id}:{period}" for c in batch}
        alert_keys = {c.id: f"health-monitor:{c.id}:{period}" for c in batch}
        meeting_keys = {c.id: f"health-meeting:{c.id}:{period}" for c in batch if c.csm_email}
        threshold = self.services.settings.health.threshold
        health = {c.id: format_score(self.scores[c.id], threshold) for c in batch}  # as every message prints it
        # What an earlier run this period kept is read by key alone: a repeat pass renders and rewrites nothing.
        kept = await self.services.outbox.states([*issue_keys.values(), *alert_keys.values()])
        alerting = {c.id for c in batch if alert_keys[c.id] not in kept}
        meetings = await self.book(batch, health, meeting_keys, alerting)
        kept_ids, claimed = await self.keep(batch, health, issue_keys, alert_keys, kept, meetings)
        states = await self.send(kept, kept_ids, claimed)
        tally = self.tally
        tally.at_risk += len(batch)
        tally.new_issues += sum(kept_ids[k][1] for k in issue_keys.values())
        tally.new_alerts += sum(kept_ids[k][1] for k in alert_keys.values())
        tally.pending += sum(status != "delivered" for _, status, _ in states.values())
        tally.worst += [
            AtRiskClient(
                client_id=client.id, name=client.name, score=round(self.scores[client.id], 1), csm=client.csm_name,
                issue=states[issue_keys[client.id]][2], issue_status=states[issue_keys[client.id]][1],
                alert_status=states[alert_keys[client.id]][1],
                meeting_uid=meeting_uid(meeting_keys[client.id]) if client.id in meeting_keys else None,
                first_this_period=kept_ids[issue_keys[client.id]][1],
            )
            for client in batch[: SHOWN - len(tally.worst)]
        ]  # fmt: skip

    async def book(
        self, batch: list[Client], health: dict[str, str], meeting_keys: dict[str, str], alerting: set[str]
    ) -> dict[str, Meeting]:
        """Book each client's meeting once; returns the meetings of the clients whose alert, still to be kept
        (`alerting`), carries the invite."""
        booked = await self.services.meetings.booked(list(meeting_keys.values()))
        minutes = self.services.settings.monitor.meeting_minutes
        booking = [
            (c, _meeting(c, health[c.id], key, self.starts, self.organizer, self.csm(c), minutes))
            for c in batch
            for key in [meeting_keys.get(c.id)]
            if key is not None and (key not in booked or c.id in alerting)
        ]
        made = await self.services.meetings.book_all([request for _, request in booking]) if booking else []
        self.tally.new_meetings += sum(created for _, created in made)
        return {client.id: meeting for (client, _), (meeting, _) in zip(booking, made, strict=True)}

    async def keep(
        self,
        batch: list[Client],
        health: dict[str, str],
        issue_keys: dict[str, str],
        alert_keys: dict[str, str],
        kept: dict[str, Kept],
        meetings: dict[str, Meeting],
    ) -> tuple[dict[str, tuple[int, bool]], list[OutboxEntry]]:
        """Keep the issues and alerts not kept yet in the outbox: (entry id, new) of every one, by key, and the new
        entries kept claimed for this pass to send at once: those delivered into the store itself (a real service's
        are kept pending and claimed as they are sent, and so are those of a receiver an incident holds)."""
        settings = self.services.settings
        monitor, threshold = settings.monitor, settings.health.threshold
        channel = settings.alerts.channel_for("health")
        issues = [
            (key, self.team, {"key": key, "draft": _issue(c, health[c.id], self.under, self.period, self.team,
                                                          monitor.priority).model_dump(mode="json")})
            for c in batch
            for key in [issue_keys[c.id]] if key not in kept
        ]  # fmt: skip
        alerts = [
            (alert.key, channel, alert.model_dump(mode="json"))
            for c in batch
            if alert_keys[c.id] not in kept
            for alert in [_alert(c, health[c.id], self.under, self.scores[c.id] < threshold - 20, self.period,
                                 channel, meetings.get(c.id))]
        ]  # fmt: skip
        ids: dict[str, tuple[int, bool]] = {key: (entry_id, False) for key, (entry_id, _, _) in kept.items()}
        claimed: list[OutboxEntry] = []
        at_once = sent_at_once(self.services) - await held_kinds(self.services) if issues or alerts else set()
        for kind, items in (("issue", issues), ("alert", alerts)):
            if not items:
                continue
            if kind in at_once:
                added, entries = await self.services.outbox.enqueue_claimed(kind, items, self.run_id)
                claimed += entries
            else:
                added = await self.services.outbox.enqueue_many(kind, items, self.run_id)
            ids.update((key, entry) for (key, _, _), entry in zip(items, added, strict=True))
        return ids, claimed

    async def send(
        self, kept: dict[str, Kept], kept_ids: dict[str, tuple[int, bool]], claimed: list[OutboxEntry]
    ) -> dict[str, Kept]:
        """Send what is not delivered yet: what this pass kept claimed at once, the rest (a real service's, or kept by
        an earlier run) claimed a batch at a time as it is sent; the state of every entry afterwards, by key."""
        due = [k for k in kept_ids if k not in kept or kept[k][1] != "delivered"]
        mine = {entry.id for entry in claimed}
        ids = [kept_ids[k][0] for k in due if kept_ids[k][0] not in mine]
        outcomes = await send_claimed(self.services, claimed) if claimed else []
        outcomes += await send_all(self.services, ids) if ids else []
        sent = {i: (ref, error) for i, ref, error in outcomes}
        # What this pass sent is as its outcome says; only the rest (held, or another process's) is read back.
        after: dict[str, Kept] = {}
        for k in due:
            entry_id = kept_ids[k][0]
            if entry_id in sent:
                ref, error = sent[entry_id]
                after[k] = (entry_id, "delivered", ref) if error is None else (entry_id, "pending", None)
        unsent = [k for k in due if k not in after]
        return {**kept, **after, **(await self.services.outbox.states(unsent) if unsent else {})}


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

        async def load() -> tuple[int, dict[str, float]]:
            # Ids and scores of every client in two queries; whole records are read later, of those at risk only.
            ids = await services.clients.all_client_ids()
            every = await services.warehouse.all_health_scores()
            return len(ids), {i: every[i] for i in ids if i in every}

        clients, scores = await run.step(
            "load clients and health", load, lambda r: {"clients": r[0], "with_health": len(r[1])}
        )
        risky = sorted((i for i, score in scores.items() if score < threshold), key=scores.__getitem__)
        monitoring = Pass(services, run.id, period, team, next_weekday_at(now, monitor.meeting_hour_utc), scores)

        async def act() -> Tally:
            for start in range(0, len(risky), BATCH):
                await monitoring.act_on(risky[start : start + BATCH])
            return monitoring.tally

        tally = await run.step(
            "book, keep and send", act,
            lambda t: {"at_risk": t.at_risk, "new_meetings": t.new_meetings, "new_issues": t.new_issues,
                       "new_alerts": t.new_alerts, "pending": t.pending},
        )  # fmt: skip
        healthy = len(scores) - len(risky)
        log.info("health monitor %s: %d clients healthy, %d at risk", period, healthy, tally.at_risk)
        report = MonitorReport(
            run_id=run.id, period=period, threshold=threshold, clients=clients,
            without_health=clients - len(scores), healthy=healthy, at_risk=tally.at_risk,
            new_issues=tally.new_issues, new_meetings=tally.new_meetings, new_alerts=tally.new_alerts,
            pending=tally.pending, worst=tally.worst,
        )  # fmt: skip
        run.output = report.model_dump(mode="json", exclude={"worst"})
    return report
