"""The healing watch: workflows that notice their own failures.

It reads each workflow step's last runs (`SOPHIA_HEALING__WINDOW_RUNS`); a step failing for one cause more often
than `SOPHIA_HEALING__ERROR_RATE`, over at least `SOPHIA_HEALING__MIN_RUNS` runs, opens an incident (one per
workflow, step and cause), diagnosed from what the runs recorded. Remediation is bounded and reversible, each
logged on the incident and ended when it closes: pause an optional source of the strategic query, lower a
service's concurrency after a storm of 429s, fall back to the local analyst, hold side effects for a service
that is down (the outbox keeps them; delivery skips it) and release them when it answers again. Nothing else is
changed, never code or settings: the incident's issue says what a person should do. Each incident has one issue
(updated while it lasts, closed with a summary) and one alert when it opens, through the outbox.
"""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import Field

from sophia_mcp.adapters.live_clients import set_concurrency
from sophia_mcp.app.services import Services
from sophia_mcp.domain.incidents import (
    ANALYST_SERVICES,
    CAUSE_NAMES,
    SOURCE_SERVICES,
    Diagnosis,
    Incident,
    Remediation,
)
from sophia_mcp.domain.issues import IssueChanges, IssueDraft
from sophia_mcp.domain.model import Model
from sophia_mcp.domain.notify import Alert
from sophia_mcp.domain.times import utcnow
from sophia_mcp.errors import SophiaError
from sophia_mcp.store.incidents import Failures, StepWindow, ended
from sophia_mcp.store.runs import describe_error
from sophia_mcp.workflows.delivery import deliver_all, deliver_pending
from sophia_mcp.workflows.issues import default_team

log = logging.getLogger(__name__)

EXAMPLES = 3

ADVICE = {
    "credentials": "Check the service's credentials in the settings (a new key or token, or a missing permission).",
    "rate_limited": "Check what sends so many requests, or ask the service for a higher limit; lower its "
    "rate_per_second in the settings if it keeps happening.",
    "unavailable": "Check the service's status page; nothing is lost meanwhile: side effects wait in the outbox.",
    "bad_input": "Look at the inputs in the examples: the data a workflow reads is not what it expects.",
    "bug": "A bug: the run records (sophia://runs/{id}) and the logs hold the details; fix the code.",
}


class WatchReport(Model):
    opened: list[int] = Field(description="Incidents opened by this look.")
    updated: list[int]
    closed: list[int]
    open: int = Field(description="Incidents open after it.")


def _diagnosis(window: StepWindow, failures: Failures) -> Diagnosis:
    return Diagnosis(
        runs=window.runs, failures=len(failures.errors), examples=list(dict.fromkeys(failures.errors))[:EXAMPLES],
        first_seen=min(failures.seen), last_seen=max(failures.seen),
    )  # fmt: skip


def remediations_for(incident: Incident, services: Services, now: datetime) -> list[Remediation]:
    """The bounded remediations an incident's cause and service call for (none for bad input or a bug)."""
    service = (incident.service or "").casefold()
    if not service or incident.cause in ("bad_input", "bug"):
        return []
    out = [
        Remediation(action="pause_source", target=source, detail=f"the strategic query skips {source} (a gap)",
                    applied_at=now)
        for source, behind in SOURCE_SERVICES.items() if service in behind
    ]  # fmt: skip
    if service in ANALYST_SERVICES:
        out.append(Remediation(action="fallback_analyst", target="analyst", detail="the local analyst reads calls",
                               applied_at=now))  # fmt: skip
    if incident.cause == "rate_limited":
        limit = services.settings.healing.reduced_concurrency
        out.append(Remediation(action="lower_concurrency", target=service, detail=f"{limit} request(s) at once",
                               applied_at=now))  # fmt: skip
    if incident.cause == "unavailable":
        out.append(
            Remediation(
                action="hold_side_effects",
                target=service,
                detail="the outbox keeps its side effects until it answers again",
                applied_at=now,
            )
        )
    return out


def _apply(incident: Incident, services: Services) -> None:
    """Put an open incident's remediations in force in this process (those kept in the store need nothing)."""
    limit = services.settings.healing.reduced_concurrency
    for r in incident.remediations:
        if r.action == "lower_concurrency" and r.ended_at is None:
            set_concurrency(r.target, limit)


def _issue_text(incident: Incident) -> str:
    d = incident.diagnosis
    done = (
        "\n".join(
            f"- {r.action} on {r.target}: {r.detail} (since {r.applied_at:%Y-%m-%d %H:%M} UTC"
            + (f", ended {r.ended_at:%Y-%m-%d %H:%M} UTC)" if r.ended_at else ")")
            for r in incident.remediations
        )
        or "- nothing: this cause is for a person"
    )
    examples = "\n".join(f"- `{e[:300]}`" for e in d.examples)
    return (
        f"**Seen**: step `{incident.step}` of `{incident.workflow}` failed {d.failures} of its last {d.runs} runs "
        f"({incident.error_rate:.0%}): {CAUSE_NAMES[incident.cause]}"
        + (f" on {incident.service}" if incident.service else "")
        + f", first {d.first_seen:%Y-%m-%d %H:%M:%S} UTC, last {d.last_seen:%Y-%m-%d %H:%M:%S} UTC.\n\n"
        f"Examples:\n{examples}\n\n**Done** (reversible, ends when the incident closes):\n{done}\n\n"
        f"**For a person**: {ADVICE[incident.cause]}"
        + (f"\n\n**Closed**: {incident.summary}" if incident.summary else "")
    )


def _title(incident: Incident) -> str:
    where = f" on {incident.service}" if incident.service else ""
    return f"Incident: {incident.workflow} / {incident.step}: {CAUSE_NAMES[incident.cause]}{where}"[:255]


async def _announce(services: Services, incident: Incident) -> None:
    """The incident's issue and its one alert, kept in the outbox under the incident's keys and sent."""
    team = default_team(services)
    issue_ids = []
    if team is not None and incident.issue_key:
        draft = IssueDraft(team=team, title=_title(incident), description=_issue_text(incident), priority=2,
                           labels=["incident"])  # fmt: skip
        payload = {"key": incident.issue_key, "draft": draft.model_dump(mode="json")}
        issue_ids = await services.outbox.enqueue_many("issue", [(incident.issue_key, team, payload)])
    channel = services.settings.healing.channel or services.settings.alerts.channel_for("incidents")
    alert = Alert(
        key=f"incident-alert:{incident.id}", channel=channel, severity="critical", title=_title(incident),
        text=f"{_title(incident)}: {incident.error_rate:.0%} of its last {incident.diagnosis.runs} runs failed. "
        + (f"Done: {', '.join(f'{r.action} on {r.target}' for r in incident.remediations)}. "
           if incident.remediations else "") + "See sophia://incidents.",
    )  # fmt: skip
    alert_ids = await services.outbox.enqueue_many("alert", [(alert.key, channel, alert.model_dump(mode="json"))])
    await deliver_all(services, [i for i, _ in issue_ids] + [i for i, _ in alert_ids])


async def _update_issue(services: Services, incident: Incident, close: bool) -> None:
    """Bring the incident's issue up to date (and close it), once the outbox has delivered it."""
    if not incident.issue_key:
        return
    states = await services.outbox.states([incident.issue_key])
    _, status, ref = states.get(incident.issue_key, (0, "pending", None))
    if status != "delivered" or not ref:
        return  # not created yet (held, or its service down): its creation carries the latest text next time
    changes = IssueChanges(description=_issue_text(incident), state="Done" if close else None)
    try:
        await services.tracker.update(ref, changes)
    except SophiaError as exc:  # the next look tries again
        log.warning("Incident %s: its issue %s could not be updated: %s", incident.id, ref, describe_error(exc))


async def watch(services: Services) -> WatchReport:
    """One look over the run records: open, update and close incidents, applying and ending their remediations."""
    settings = services.settings.healing
    incidents = services.incidents
    now = utcnow()
    windows = {(w.workflow, w.step): w for w in await incidents.windows(settings.window_runs)}
    current: dict[tuple[str, str, str], Incident] = {
        (i.workflow, i.step, i.cause): i for i in await incidents.list("open", limit=1000)
    }
    opened, updated, closed = [], [], []
    for (workflow, step), window in windows.items():
        if window.runs < settings.min_runs:
            continue
        for cause, failures in window.failures.items():
            rate = len(failures.errors) / window.runs
            if rate <= settings.error_rate or (workflow, step, cause) in current:
                continue
            draft = Incident(
                id=0, workflow=workflow, step=step, cause=cause, service=failures.service, status="open",
                error_rate=round(rate, 4), diagnosis=_diagnosis(window, failures), remediations=[], issue_key=None,
                summary=None, opened_at=now, updated_at=now, closed_at=None,
            )  # fmt: skip
            incident, new = await incidents.open(draft)
            if new:
                incident = incident.model_copy(update={
                    "remediations": remediations_for(incident, services, now), "issue_key": f"incident:{incident.id}",
                })  # fmt: skip
                await incidents.save(incident)
                log.warning("Incident %s opened: %s", incident.id, _title(incident))
                await _announce(services, incident)
                opened.append(incident.id)
            current[(workflow, step, cause)] = incident
    released = False
    for (workflow, step, cause), incident in current.items():
        seen = windows.get((workflow, step))
        failing = seen.failures.get(cause) if seen else None
        rate = len(failing.errors) / seen.runs if seen and failing else 0.0
        if rate > settings.error_rate and seen is not None and failing is not None:
            _apply(incident, services)
            diagnosis = _diagnosis(seen, failing)
            if incident.id in opened or diagnosis == incident.diagnosis:
                continue
            incident = incident.model_copy(update={"diagnosis": diagnosis, "error_rate": round(rate, 4)})
            await incidents.save(incident)
            await _update_issue(services, incident, close=False)
            updated.append(incident.id)
            continue
        for r in incident.remediations:
            if r.action == "lower_concurrency" and r.ended_at is None:
                set_concurrency(r.target, None)
            released = released or r.action == "hold_side_effects"
        summary = (
            f"Back under {settings.error_rate:.0%}: {rate:.0%} of the step's last {seen.runs if seen else 0} "
            f"runs failed for this cause. It lasted from {incident.opened_at:%Y-%m-%d %H:%M} to {now:%Y-%m-%d %H:%M} "
            f"UTC; {incident.diagnosis.failures} of {incident.diagnosis.runs} runs failed when last counted failing; "
            + (f"{len(incident.remediations)} remediation(s) ended." if incident.remediations else "nothing was done.")
        )
        incident = incident.model_copy(update={
            "status": "closed", "error_rate": round(rate, 4), "remediations": ended(incident.remediations, now),
            "summary": summary, "closed_at": now,
        })  # fmt: skip
        await incidents.save(incident)
        closed.append(incident.id)
        log.warning("Incident %s closed: %s", incident.id, summary)
    if released:  # what was held goes out now, once: the outbox's keys make sure of that
        await deliver_pending(services, limit=500)
    for incident_id in closed:
        [incident] = [i for i in await incidents.list("closed", limit=len(closed) + 50) if i.id == incident_id]
        await _update_issue(services, incident, close=True)
    still = len(current) - len(closed)
    return WatchReport(opened=opened, updated=updated, closed=closed, open=still)


async def list_incidents(services: Services, status: str | None = None, limit: int = 50) -> list[Incident]:
    """Incidents, newest first: open, closed or all."""
    return await services.incidents.list(status, limit)  # type: ignore[arg-type]
