"""Bug report -> issue: a Slack-style report becomes an issue with labels and a priority, the reporter's channel
is told, and told again whenever the issue's state changes. A report that is a Slack message (the bug channels'
events) is filed once per message, and everything its channel hears goes in that message's thread.

The issue goes through the outbox like every side effect: if the tracker is down the report is kept, the
channel hears it was received, and the issue is opened (and the channel told) when the tracker is back.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field

from sophia_mcp.app.services import Services
from sophia_mcp.domain.bugs import BugReport
from sophia_mcp.domain.issues import Issue, IssueChanges, IssueDraft
from sophia_mcp.domain.model import Model
from sophia_mcp.domain.notify import Alert
from sophia_mcp.domain.times import utcnow
from sophia_mcp.errors import InvalidInput, NotFound, SophiaError
from sophia_mcp.workflows.delivery import deliver
from sophia_mcp.workflows.issues import default_team
from sophia_mcp.workflows.runs import start_run

LOCAL_BUG_TEAM = "ENG"
# The key of a report made by a Slack message: this, then "{channel}/{ts}".
SLACK_REPORT = "bug:slack:"
CLOSED = ("Done", "Canceled")
# A closed issue is still watched this long after it closed: it may be re-opened in the tracker itself.
CLOSED_WATCHED = timedelta(days=30)
MENTION = re.compile(r"<[@#!][^>]*>|(?<!\w)@[\w.-]+")
PREFIX = re.compile(r"^\s*(\[(bug|issue|problem)\]\s*[:\-–]?|(bug|issue|problem)\s*[:\-–])\s*", re.IGNORECASE)
# (priority, words that set it), most urgent first; the first that matches wins.
PRIORITY_WORDS: list[tuple[int, tuple[str, ...]]] = [
    (1, ("urgent", "outage", "is down", "blocker", "blocking", "can't log in", "cannot log in", "data loss", "asap")),
    (2, ("broken", "fails", "failing", "failed", "error", "crash", "500", "not working", "doesn't work", "wrong")),
    (4, ("typo", "cosmetic", "minor", "nice to have", "alignment")),
]
AREA_LABELS = {
    "reporting": ("report", "export", "statement", "dashboard"),
    "payments": ("payment", "rent", "ach", "card", "invoice", "fee"),
    "auth": ("login", "log in", "password", "sso", "2fa", "sign in"),
    "mobile": ("mobile", "ios", "android", "app store"),
    "integrations": ("sync", "integration", "api", "webhook", "yardi", "appfolio"),
}


class BugReportResult(Model):
    issue: Issue | None = Field(description="The issue, once the tracker has it.")
    status: Literal["filed", "already filed", "received"] = Field(
        description="received: the tracker could not be reached; the issue is opened when it is back."
    )
    title: str
    priority: int
    labels: list[str]
    channel: str
    acknowledgement: str = Field(description="Delivery status of the message to the reporter's channel.")


def draft_from_report(text: str, reporter: str, channel: str, team: str) -> IssueDraft:
    """Title from the first line (mentions and a 'bug:' prefix dropped), priority and labels from its words."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        raise InvalidInput("The bug report is empty; say what went wrong")
    title = PREFIX.sub("", MENTION.sub("", lines[0])).strip(" :-") or "Bug report"
    if len(title) > 120:
        title = title[:117].rsplit(" ", 1)[0] + "..."
    lowered = text.casefold()
    priority = next((p for p, words in PRIORITY_WORDS if any(w in lowered for w in words)), 3)
    labels = ["bug", *(label for label, words in AREA_LABELS.items() if any(w in lowered for w in words))]
    description = f"{text.strip()}\n\n---\nReported by {reporter} in {channel}."
    return IssueDraft(team=team, title=title, description=description, priority=priority, labels=labels)


def slack_report_key(channel: str, ts: str) -> str:
    """The key of the report a Slack message makes: the message itself, so however often it arrives (a retry, a
    replay, the webhook and the poll) it is filed once."""
    return f"{SLACK_REPORT}{channel}/{ts}"


def report_thread(report_key: str) -> str | None:
    """The Slack thread a report's messages go to: the message it came from, when it came from Slack."""
    return report_key.rpartition("/")[2] if report_key.startswith(SLACK_REPORT) else None


def _ack(key: str, report_key: str, channel: str, text: str, title: str) -> Alert:
    return Alert(key=key, channel=channel, severity="info", title=title, text=text, thread_ts=report_thread(report_key))


async def report_bug(
    services: Services, text: str, reporter: str, channel: str, thread_ts: str | None = None
) -> BugReportResult:
    """File the report as an issue once (the same report again finds it), and tell the reporter's channel. With
    `thread_ts` the report is that Slack message of `channel`: filed once per message, answered in its thread."""
    team = default_team(services, services.settings.linear.bug_team, LOCAL_BUG_TEAM)
    if team is None:
        raise InvalidInput("Bug reports need a team: set SOPHIA_LINEAR__BUG_TEAM or SOPHIA_LINEAR__TEAM")
    draft = draft_from_report(text, reporter, channel, team)
    if thread_ts:
        key = slack_report_key(channel, thread_ts)
    else:
        key = "bug:" + hashlib.sha256(f"{reporter}\n{text.strip()}".encode()).hexdigest()[:20]
    draft = draft.model_copy(update={"assignee": await assign(services, key)})
    async with start_run(services.runs, "report_bug", key, {"reporter": reporter, "channel": channel}) as run:
        result = await _file(services, key, draft, reporter, channel)
        run.output = {"status": result.status, "issue": result.issue.identifier if result.issue else None}
    return result


async def assign(services: Services, key: str) -> str | None:
    """Who the report `key` goes to: the next in `SOPHIA_BUGS__ASSIGNEES` whose turn it is, skipping anyone the
    tracker says cannot take work (a deactivated Linear member); None, for the team's triage, when none is set or
    none can. The same report asks again and gets the same answer."""
    people = [p.strip() for p in services.settings.bugs.assignees if p.strip()]
    if not people:
        return None
    try:
        available = set(await services.tracker.available(people))
    except SophiaError:
        # The tracker cannot say now (it may be down): everyone named is taken as available.
        available = set(people)
    return await services.bug_reports.assign(key, people, available)


async def _file(services: Services, key: str, draft: IssueDraft, reporter: str, channel: str) -> BugReportResult:
    team = draft.team
    await services.bug_reports.keep(key, reporter, channel)
    [(entry_id, new)] = await services.outbox.enqueue_many(
        "issue", [(key, team, {"key": key, "draft": draft.model_dump(mode="json")})]
    )
    entry = await deliver(services, entry_id)
    issue = None
    if entry.status == "delivered" and entry.external_ref:
        issue = await services.tracker.get(entry.external_ref)
        ack = await _told_filed(services, key, channel, reporter, issue)
    elif entry.status == "sending":
        # The same report, filed this moment by another process (a replica): that one tells the channel.
        ack = "sending"
    else:
        alert = _ack(
            f"bug-received:{key}", key, channel,
            f"Thanks {reporter}: your report \"{draft.title}\" is received. The tracker cannot be reached just now; "
            f"the issue will be opened as soon as it is back, and this {'thread' if report_thread(key) else 'channel'} "
            "told.", "Bug report received",
        )  # fmt: skip
        ack = await _send(services, alert)
    return BugReportResult(
        issue=issue, status="filed" if issue and new else "already filed" if issue else "received",
        title=draft.title, priority=draft.priority, labels=draft.labels, channel=channel, acknowledgement=ack,
    )  # fmt: skip


async def _send(services: Services, alert: Alert) -> str:
    [(entry_id, _)] = await services.outbox.enqueue_many("alert", [(alert.key, alert.channel, alert.model_dump())])
    # Kept before by a run that failed to send it (or died before it could): this one sends it.
    entry = await deliver(services, entry_id)
    return entry.status


async def _told_filed(services: Services, key: str, channel: str, reporter: str, issue: Issue) -> str:
    await services.bug_reports.filed(key, issue.id, issue.state)
    where = f" ({issue.url})" if issue.url else ""
    who = f"assigned to {issue.assignee}" if issue.assignee else "left to the team's triage"
    alert = _ack(
        f"bug-filed:{key}", key, channel,
        f"Thanks {reporter}: filed as {issue.identifier} \"{issue.title}\"{where}, priority "
        f"{issue.priority}, state {issue.state}, {who}. This {'thread' if report_thread(key) else 'channel'} hears "
        "when its state changes.",
        f"Bug filed as {issue.identifier}",
    )  # fmt: skip
    return await _send(services, alert)


async def notify_state(services: Services, issue: Issue, when: datetime | None = None) -> bool:
    """Tell a bug report's channel that its issue changed state: every change, a re-opening and a second closing
    too; False if it is no bug report's issue or its state is the one the channel last heard."""

    def announce(report: BugReport, number: int) -> Alert:
        return _ack(
            f"bug-state:{report.issue_key}:{number}:{issue.state}", report.issue_key, report.channel,
            f"{issue.identifier} \"{issue.title}\" (reported by {report.reporter}) is now {issue.state}.",
            f"{issue.identifier}: {issue.state}",
        )  # fmt: skip

    taken = await services.bug_reports.take_transition(issue.id, issue.state, when or utcnow(), announce)
    if taken is None:
        return False
    await _send(services, taken[1])
    return True


async def notify_status_changes(services: Services) -> dict[str, Any]:
    """The scheduled check: open the issues of reports kept while the tracker was down (telling their channels),
    and tell each channel whose issue changed state in the tracker since it last heard, a closed issue's too for
    `CLOSED_WATCHED` after it closed (it may be re-opened)."""
    async with start_run(services.runs, "bug_status", None, {}) as run:
        summary = await _check_reports(services)
        run.output = summary
    return summary


async def _check_reports(services: Services) -> dict[str, Any]:
    reports = await services.bug_reports.all()
    closed_before = utcnow() - CLOSED_WATCHED
    filed = changed = 0
    for report in reports:
        if report.issue_id is None:
            if report.entry_id is None:
                continue
            entry = await deliver(services, report.entry_id)
            if entry.status == "delivered" and entry.external_ref:
                issue = await services.tracker.get(entry.external_ref)
                await _told_filed(services, report.issue_key, report.channel, report.reporter, issue)
                filed += 1
            continue
        if report.last_state in CLOSED and report.updated_at < closed_before:
            continue
        changed += await notify_state(services, await services.tracker.get(report.issue_id))
    return {"reports": len(reports), "filed": filed, "state_changes": changed}


# -- the fix's path: pull requests and deployments ---------------------------------------------------------

# An issue identifier as Linear links it: `ENG-123`; in a branch name in any case (`eng-123-fix-escrow`).
IDENTIFIER = re.compile(r"(?<![A-Za-z0-9])([A-Z][A-Z0-9]{0,9}-[0-9]{1,9})(?![0-9])")
BRANCH_IDENTIFIER = re.compile(r"(?<![A-Za-z0-9])([A-Za-z][A-Za-z0-9]{0,9}-[0-9]{1,9})(?![0-9])")
# (state names wanted, most wanted first; the type standing in when the team has none of them).
Wanted = tuple[tuple[str, ...], str]
IN_REVIEW: Wanted = (("In Review",), "started")
IN_PROGRESS: Wanted = (("In Progress",), "started")
MERGED: Wanted = (("Merged", "Done"), "completed")
FINISHED_TYPES = ("completed", "canceled")


def named_identifiers(branch: str, *texts: str) -> list[str]:
    """The issue identifiers a branch name (in any case) and texts (as Linear writes them) name, in order."""
    found = [m.upper() for m in BRANCH_IDENTIFIER.findall(branch or "")]
    for text in texts:
        found += IDENTIFIER.findall(text or "")
    return list(dict.fromkeys(found))


async def bug_issue(services: Services, identifiers: list[str]) -> tuple[BugReport, Issue] | None:
    """The first of `identifiers` that is the issue of a bug report, with its report."""
    for identifier in identifiers:
        try:
            issue = await services.tracker.get(identifier)
        except NotFound:
            continue
        report = await services.bug_reports.of_issue(issue.id)
        if report is not None:
            return report, issue
    return None


def pick_state(states: list[tuple[str, str]], wanted: Wanted) -> str | None:
    """The team's state for `wanted`: one of its names, else the first state of its type; None if neither."""
    names, kind = wanted
    by_name = {name.casefold(): name for name, _ in states}
    for name in names:
        if name.casefold() in by_name:
            return by_name[name.casefold()]
    return next((name for name, type_ in states if type_ == kind), None)


async def move_issue(services: Services, issue: Issue, wanted: Wanted, reopen: bool) -> Issue:
    """Move the issue to the team's state for `wanted` (an issue already finished stays so unless `reopen`), and
    tell its report's thread of the change once."""
    states = await services.tracker.states(issue.id)
    target = pick_state(states, wanted)
    current_type = next((t for n, t in states if n.casefold() == issue.state.casefold()), "")
    if target is None or target.casefold() == issue.state.casefold():
        return issue
    if current_type in FINISHED_TYPES and not reopen:
        return issue
    moved = await services.tracker.update(issue.id, IssueChanges(state=target))
    await notify_state(services, moved)
    return moved


async def told_live(services: Services, report: BugReport, issue: Issue, url: str) -> str:
    """Tell the report's thread that the fix is live, once per report."""
    alert = _ack(
        f"bug-live:{report.issue_key}", report.issue_key, report.channel,
        f"The fix for {issue.identifier} \"{issue.title}\" (reported by {report.reporter}) is live: {url}",
        f"{issue.identifier}: the fix is live",
    )  # fmt: skip
    return await _send(services, alert)
