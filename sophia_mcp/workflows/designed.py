"""Workflows designed from a request in words: the catalogue they are drawn from, validation against it, the
drafting prompt, the dry run, and real runs through the run records and the outbox.

A designed workflow's side effects (alerts, issues, meetings with a client's CSM, a dashboard, a CRM write of the
lead score) carry the key `designed:{name}:v{version}:{occurrence}:{action}{n}:{target}:{subject}`: the same
trigger occurrence, re-run or run by a second scheduler, keeps and makes each of them once.
"""

from __future__ import annotations

import json
import logging
import operator
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from cronsim import CronSim, CronSimError
from pydantic import ValidationError

from sophia_mcp.app.services import Services
from sophia_mcp.domain.designed import (
    Action,
    Condition,
    DesignedRun,
    DesignedWorkflow,
    DryRun,
    PlannedEffect,
    Refusal,
    WorkflowSpec,
)
from sophia_mcp.domain.issues import IssueDraft
from sophia_mcp.domain.meetings import Attendee, MeetingRequest
from sophia_mcp.domain.notify import Alert
from sophia_mcp.domain.times import iso, parse_iso, utcnow
from sophia_mcp.domain.writing import UnusableAnswer, WritingRequest
from sophia_mcp.errors import InvalidInput, NotFound
from sophia_mcp.ports.writer import Writer
from sophia_mcp.settings import interval_seconds
from sophia_mcp.store.designed_workflows import RUN_PREFIX
from sophia_mcp.store.runs import describe_error
from sophia_mcp.workflows import analytics, dashboard
from sophia_mcp.workflows.delivery import deliver_all
from sophia_mcp.workflows.enrichment import rescored
from sophia_mcp.workflows.event_actions import ACTIONS as EVENT_KINDS
from sophia_mcp.workflows.health_monitor import next_weekday_at
from sophia_mcp.workflows.issues import default_team
from sophia_mcp.workflows.runs import start_run

log = logging.getLogger(__name__)

# A model is told what failed and asked again at most this many times in all.
MAX_ATTEMPTS = 3
ROWS_LISTED = 25  # rows one listing action names at most


@dataclass(frozen=True)
class ReadStep:
    """A read step of the catalogue: what it returns, and the row fields conditions and titles may name."""

    description: str
    fields: dict[str, str]  # name -> "number" or "text"


_CLIENT_ROW = {"client_id": "text", "name": "text", "segment": "text", "arr": "number", "csm_name": "text",
               "health": "number"}  # fmt: skip
STEPS: dict[str, ReadStep] = {
    "at_risk_clients": ReadStep(analytics.METRICS["at_risk_clients"].description, _CLIENT_ROW),
    "client_health": ReadStep(analytics.METRICS["client_health"].description, _CLIENT_ROW),
    "health_trend": ReadStep(
        analytics.METRICS["health_trend"].description,
        {"day": "text", "clients": "number", "avg_health": "number", "under_threshold": "number"},
    ),
    "revenue_by_segment": ReadStep(
        analytics.METRICS["revenue_by_segment"].description,
        {"segment": "text", "clients": "number", "arr": "number", "avg_health": "number", "arr_at_risk": "number"},
    ),
    "competitor_mentions": ReadStep(
        analytics.METRICS["competitor_mentions"].description,
        {"competitor": "text", "mentions": "number", "calls": "number", "clients": "number"},
    ),
}
# The side-effecting steps a designed workflow may take, and what each needs: each is a step the project's own
# workflows take (the alert and issue of the health monitor, its meeting with the CSM, build_dashboard, the lead
# score enrichment writes to the CRM), and each is kept under its occurrence's key, so done once.
ACTIONS: dict[str, str] = {
    "alert": "A Slack alert to `channel` (e.g. #cs-leads), through the outbox.",
    "issue": "A Linear issue for `team` (default the setting), through the outbox.",
    "meeting": "A meeting request (an iCalendar invite) with each kept client's CSM, as the health monitor books; "
    "rows of a step with client_id, each true.",
    "dashboard": "Build the dashboard of build_dashboard whose panels the title names (health, trend, revenue, "
    "competitors, workflows) and post where it is to `channel` (default the dashboard route); each false.",
    "crm_update": "Write the lead score and grade of each kept client's contacts to the CRM (the score enrichment "
    "writes, recomputed now; only contacts whose score changed); rows of a step with client_id, each true.",
}
PER_CLIENT = ("meeting", "crm_update")  # actions about a client: rows with client_id, one per row
# What an action is kept as in the outbox (a meeting is kept by the meeting scheduler, a dashboard's post as an alert).
OUTBOX_KINDS = {"alert": "alert", "issue": "issue", "crm_update": "crm"}


def catalogue_text() -> str:
    """The catalogue as a model reads it: steps with their fields, actions, event kinds."""
    steps = "\n".join(
        f"- {name}: {step.description} Fields: {', '.join(f'{f} ({t})' for f, t in step.fields.items())}."
        for name, step in STEPS.items()
    )
    actions = "\n".join(f"- {name}: {text}" for name, text in ACTIONS.items())
    return f"Steps (reads):\n{steps}\nActions (side effects):\n{actions}\nEvent kinds: {', '.join(EVENT_KINDS)}."


def _check_trigger(spec: WorkflowSpec) -> list[str]:
    trigger = spec.trigger
    given = [k for k in ("cron", "every", "event") if getattr(trigger, k) is not None]
    if len(given) != 1:
        return ["the trigger needs exactly one of cron (e.g. '0 9 * * 1'), every (e.g. '1d') or event"]
    if trigger.event is not None and trigger.event not in EVENT_KINDS:
        kinds = ", ".join(EVENT_KINDS)
        return [f"event {trigger.event!r} is not one the project receives; the event kinds are {kinds}"]
    try:
        if trigger.every is not None:
            interval_seconds(trigger.every)
        if trigger.cron is not None:
            next_fire(spec, utcnow())
    except (ValueError, InvalidInput) as exc:
        return [f"the trigger's timing is not valid: {exc}"]
    return []


def _check_condition(step_id: str, use: str, condition: Condition) -> str | None:
    fields = STEPS[use].fields
    kind = fields.get(condition.field)
    if kind is None:
        return f"step {step_id!r} ({use}) has no field {condition.field!r}; its fields are {', '.join(fields)}"
    if kind == "text" and condition.op not in ("eq", "ne"):
        return f"field {condition.field!r} of step {step_id!r} is text: compare it with eq or ne only"
    if kind == "number" and not isinstance(condition.value, float | int):
        return f"field {condition.field!r} of step {step_id!r} is a number: give a number to compare with"
    return None


def _placeholders(title: str) -> list[str]:
    """The fields a title names; one with a format spec or conversion (`{name:>99999}`) is named as given, so
    validation refuses it: a title names a field, nothing more."""
    try:
        parsed = list(string.Formatter().parse(title))
    except ValueError:
        return ["{"]
    return [name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") for _, name, spec, conv in parsed
            if name is not None]  # fmt: skip


def _action_problems(action: Action, fields: dict[str, str]) -> list[str]:
    """What an action needs of its rows and settings."""
    if action.do == "alert" and action.channel is None:
        return ["an alert needs a channel, e.g. #cs-leads"]
    if action.do in PER_CLIENT and "client_id" not in fields:
        return [f"{action.do} is about clients: rows_of must be a step whose rows have client_id "
                f"({', '.join(n for n, s in STEPS.items() if 'client_id' in s.fields)})"]  # fmt: skip
    if action.do in PER_CLIENT and not action.each:
        return [f"{action.do} is done per client: set each to true"]
    if action.do == "dashboard" and action.each:
        return ["a dashboard is built once per run: set each to false"]
    return []


def problems(spec: WorkflowSpec) -> list[str]:
    """What is wrong with `spec` against the catalogue, each in words a model can act on; empty when valid."""
    found = _check_trigger(spec)
    uses: dict[str, str] = {}
    for step in spec.steps:
        if step.use not in STEPS:
            found.append(f"step {step.use!r} does not exist; the steps are {', '.join(STEPS)}")
            continue
        if step.id in uses:
            found.append(f"two steps have the id {step.id!r}: give each its own")
        uses[step.id] = step.use
        found += [p for c in step.where if (p := _check_condition(step.id, step.use, c)) is not None]
    for action in spec.actions:
        if action.do not in ACTIONS:
            actions = ", ".join(ACTIONS)
            found.append(f"action {action.do!r} is not one of the project's actions; the actions are {actions}")
            continue
        if action.rows_of not in uses:
            found.append(f"action {action.do} names rows_of {action.rows_of!r}, which is no step's id")
            continue
        fields = STEPS[uses[action.rows_of]].fields
        found += _action_problems(action, fields)
        bad = [n for n in _placeholders(action.title) if n not in fields or not action.each]
        if bad:
            allowed = f"the fields of {action.rows_of}: {', '.join(fields)}" if action.each else "none (each is false)"
            found.append(f"the title of action {action.do} names {', '.join(map(repr, bad))}; it may name {allowed}")
    return found


SYSTEM = """You turn a revenue team's request into a workflow spec for sophia-mcp. Use ONLY the catalogue below:
no other steps, actions, code or SQL. Answer with one JSON object and nothing else: either a spec of this JSON
schema:
{schema}
or, when the catalogue cannot do what is asked, {{"refuse": "why, in one sentence"}}.

{catalogue}"""


def design_request(request: str, feedback: Sequence[tuple[str, list[str]]] = ()) -> WritingRequest:
    """What the model is asked: the request, and, on a retry, its earlier answers and what was wrong with them."""
    prompt = f"Request: {request}"
    for answer, wrong in feedback:
        prompt += f"\n\nYour answer:\n{answer}\nIt was refused: " + "; ".join(wrong) + ". Answer again, fixed."
    system = SYSTEM.format(schema=json.dumps(WorkflowSpec.model_json_schema()), catalogue=catalogue_text())
    return WritingRequest(prompt=prompt, system=system, max_tokens=1500, temperature=0)


def read_answer(text: str) -> WorkflowSpec | Refusal | list[str]:
    """A model's answer: a valid spec, a refusal, or what is wrong with it."""
    raw = text.strip()
    if raw.startswith("```"):
        raw = raw.strip("`").removeprefix("json").strip()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        return ["the answer was not one JSON object"]
    if isinstance(data, dict) and set(data) == {"refuse"}:
        return Refusal.model_validate(data)
    try:
        spec = WorkflowSpec.model_validate(data)
    except ValidationError as exc:
        return [f"{'.'.join(map(str, e['loc'])) or 'spec'}: {e['msg']}" for e in exc.errors()[:10]]
    return problems(spec) or spec


class Designed:
    """The outcome of designing: the spec, or why it was refused, and how many answers it took."""

    def __init__(self, spec: WorkflowSpec | None, refused: str | None, attempts: int, by: str | None) -> None:
        self.spec, self.refused, self.attempts, self.by = spec, refused, attempts, by


def settle(answers: Sequence[str]) -> tuple[WorkflowSpec | Refusal | None, list[tuple[str, list[str]]]]:
    """The first usable answer of a sequence (a spec or a refusal), with the feedback owed to those before it."""
    feedback: list[tuple[str, list[str]]] = []
    for answer in answers:
        read = read_answer(answer)
        if not isinstance(read, list):
            return read, feedback
        feedback.append((answer, read))
    return None, feedback


async def design(request: str, answers: Sequence[str], configured: Writer | None) -> Designed:
    """A spec for `request`: from the client's model's `answers` (asked before the tool ran), else drafted by the
    configured model, told what failed and asked again up to `MAX_ATTEMPTS` times in all."""
    found, feedback = settle(answers)
    by = "sampling" if answers else None
    if found is None and not answers and configured is not None:
        by = configured.name
        for _ in range(MAX_ATTEMPTS):
            try:
                text = await configured.write(design_request(request, feedback))
            except UnusableAnswer as exc:
                feedback.append(("(no answer)", [str(exc)]))
                continue
            found, more = settle([text])
            feedback += more
            if found is not None:
                break
    attempts = len(feedback) + (found is not None)
    if isinstance(found, WorkflowSpec):
        return Designed(found, None, attempts, by)
    if isinstance(found, Refusal):
        return Designed(None, f"The model says the project cannot do this: {found.refuse}", attempts, by)
    if by is None:
        raise InvalidInput(
            "No model to design with: connect a client that offers sampling, or set SOPHIA_OPENAI__API_KEY"
        )
    why = "; ".join(feedback[-1][1]) if feedback else "no answer"
    return Designed(None, f"No valid workflow after {attempts} answers; the last was refused: {why}", attempts, by)


# -- running ---------------------------------------------------------------------------------------------------


def next_fire(spec: WorkflowSpec, after: datetime) -> datetime | None:
    """The next fire time of a schedule-triggered spec after `after`; None for an event-triggered one."""
    if spec.trigger.every is not None:
        return after + timedelta(seconds=interval_seconds(spec.trigger.every))
    if spec.trigger.cron is not None:
        try:
            return next(CronSim(spec.trigger.cron, after))
        except CronSimError as exc:
            raise InvalidInput(f"cron {spec.trigger.cron!r}: {exc}") from None
    return None


COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge, "eq": operator.eq, "ne": operator.ne,
}  # fmt: skip


def _keeps(row: dict[str, Any], condition: Condition) -> bool:
    value, wanted = row.get(condition.field), condition.value
    if value is None:
        return False
    if isinstance(wanted, str) or isinstance(value, str):  # text is compared as text (eq, ne)
        return COMPARE[condition.op](str(value), str(wanted))
    return COMPARE[condition.op](float(value), float(wanted))


async def read_steps(services: Services, spec: WorkflowSpec) -> dict[str, list[dict[str, Any]]]:
    """Each step's rows on the current data, kept by its conditions."""
    out: dict[str, list[dict[str, Any]]] = {}
    for step in spec.steps:
        args = analytics.MetricArgs(threshold=step.threshold, days=step.days or 90)
        table = await analytics.run_metric(services, step.use, args, analytics.ROW_LIMIT)
        rows = [dict(zip(table.columns, r, strict=True)) for r in table.rows]
        out[step.id] = [r for r in rows if all(_keeps(r, c) for c in step.where)]
    return out


def _label(row: dict[str, Any]) -> str:
    first = next((str(row[k]) for k in ("name", "segment", "competitor", "day") if k in row), "row")
    return first + "".join(f", {k} {v:g}" if isinstance(v, float) else "" for k, v in row.items())


def _subject(row: dict[str, Any]) -> str:
    """What a row is about, for its side effect's key: its identity, never a value that changes between runs."""
    return next((str(row[k]) for k in ("client_id", "segment", "competitor", "day") if row.get(k)), "row")


def describe_action(services: Services, action: Action) -> str:
    """An action and where it goes, as the user is asked to confirm it."""
    where = {"meeting": "each client's CSM", "crm_update": f"the {services.crm.name} CRM's contacts"}
    return f"{action.do} ({where.get(action.do) or _target(services, action)})"


def _target(services: Services, action: Action) -> str:
    """Where an action's side effect goes, before its rows are known (a per-client one's is each client's)."""
    if action.do == "alert":
        return action.channel or ""
    if action.do == "issue":
        return default_team(services, action.team) or "CS"
    if action.do == "dashboard":
        return action.channel or services.settings.alerts.channel_for("dashboard")
    return ""


async def plan(
    services: Services, spec: WorkflowSpec, version: int, occurrence: str, rows: dict[str, list[dict[str, Any]]]
) -> list[PlannedEffect]:
    """The side effects of one occurrence: one per row kept (`each`) or one listing them, none for no rows; a
    meeting only for a client with a CSM's email, a CRM write only for contacts whose score changed."""
    effects: list[PlannedEffect] = []
    starts = next_weekday_at(utcnow(), services.settings.monitor.meeting_hour_utc)
    for number, action in enumerate(spec.actions, 1):
        kept = rows[action.rows_of]
        groups = [[r] for r in kept] if action.each else ([kept] if kept else [])
        ids = [str(r["client_id"]) for r in kept] if action.do in PER_CLIENT and kept else []
        clients = await services.clients.get_clients(ids) if action.do == "meeting" and ids else {}
        scores = await rescored(services, ids) if action.do == "crm_update" and ids else {}
        for group in groups:
            title = (action.title.format(**group[0]) if action.each else action.title)[:200]
            text = "\n".join(f"- {_label(r)}" for r in group[:ROWS_LISTED])
            subject = _subject(group[0]) if action.each else "all"
            target, extra = _target(services, action), dict[str, Any]()
            if action.do == "meeting":
                client = clients.get(subject)
                if client is None or not client.csm_email:
                    continue
                target, extra = client.csm_email, {"starts_at": starts}
                text = f"With {client.csm_name or client.csm_email}, about {_label(group[0])}."
            elif action.do == "crm_update":
                changes = scores.get(subject)
                if not changes:
                    continue
                target, extra = services.crm.name, {"changes": changes}
                text = "\n".join(f"- contact {c}: " + ", ".join(f"{k} {v}" for k, v in ch.items())
                                 for c, ch in changes.items())  # fmt: skip
            elif action.do == "dashboard":
                text = "Panels: " + ", ".join(dashboard.panels_for(title)) + "\n" + text
            key = f"designed:{spec.name}:v{version}:{occurrence}:{action.do}{number}:{target}:{subject}"
            effects.append(PlannedEffect(kind=action.do, target=target, title=title, text=text, key=key, **extra))
    return effects


async def dry_run(services: Services, spec: WorkflowSpec) -> DryRun:
    """Run `spec` on the current data with every side effect recorded as would-do, none kept or sent."""
    wrong = problems(spec)
    if wrong:
        raise InvalidInput("The spec is not valid: " + "; ".join(wrong))
    rows = await read_steps(services, spec)
    would = await plan(services, spec, 0, "dry-run", rows)
    return DryRun(name=spec.name, rows={k: len(v) for k, v in rows.items()}, would_do=would)


def _outbox_item(effect: PlannedEffect) -> tuple[str, str, dict[str, Any]]:
    if effect.kind == "alert":
        alert = Alert(key=effect.key, channel=effect.target, title=effect.title, text=effect.text or effect.title)
        return effect.key, effect.target, alert.model_dump(mode="json")
    if effect.kind == "crm_update":
        return effect.key, effect.target, {"key": effect.key, "changes": effect.changes}
    draft = IssueDraft(team=effect.target, title=effect.title, description=effect.text, labels=["designed"])
    return effect.key, effect.target, {"key": effect.key, "draft": draft.model_dump(mode="json")}


def _meeting(services: Services, effect: PlannedEffect) -> MeetingRequest:
    monitor = services.settings.monitor
    return MeetingRequest(
        key=effect.key, title=effect.title, description=effect.text,
        organizer=Attendee(email=monitor.organizer_email, name="sophia-mcp"), attendees=[Attendee(email=effect.target)],
        starts_at=effect.starts_at or next_weekday_at(utcnow(), monitor.meeting_hour_utc),
        minutes=monitor.meeting_minutes,
    )  # fmt: skip


async def _build_dashboard(services: Services, effect: PlannedEffect, name: str) -> bool:
    """Build and post the effect's dashboard unless its post is kept already (this occurrence built it)."""
    if effect.key in await services.outbox.states([effect.key]):
        return False
    await dashboard.build_dashboard(services, effect.title, effect.target, f"the workflow {name}", key=effect.key)
    return True


async def run_designed(services: Services, workflow: DesignedWorkflow, occurrence: str) -> DesignedRun:
    """One run of a deployed workflow for one trigger occurrence, recorded as the run of `designed:{name}`; its side
    effects kept under keys of the occurrence (the outbox's, the meeting scheduler's) and made, each once however
    often it is run."""
    spec = workflow.spec
    inputs = {"version": workflow.version, "occurrence": occurrence}
    async with start_run(services.runs, f"{RUN_PREFIX}{spec.name}", occurrence, inputs) as run:
        rows = await run.step("read", lambda: read_steps(services, spec), lambda r: {k: len(v) for k, v in r.items()})
        effects = await run.step("plan", lambda: plan(services, spec, workflow.version, occurrence, rows), len)
        new = 0
        for kind, outbox_kind in OUTBOX_KINDS.items():
            items = [_outbox_item(e) for e in effects if e.kind == kind]
            if items:
                kept = await services.outbox.enqueue_many(outbox_kind, items, run.id)
                new += sum(fresh for _, fresh in kept)
                await run.step(f"send {kind}", partial(deliver_all, services, [i for i, _ in kept]), len)
        if requests := [_meeting(services, e) for e in effects if e.kind == "meeting"]:
            made = await run.step("book meetings", partial(services.meetings.book_all, requests),
                                  lambda m: {"booked": len(m), "new": sum(c for _, c in m)})  # fmt: skip
            new += sum(created for _, created in made)
        for effect in [e for e in effects if e.kind == "dashboard"]:
            new += await run.step("build dashboard", partial(_build_dashboard, services, effect, spec.name))
        run.output = {"effects": len(effects), "new": new}
    return DesignedRun(
        name=spec.name, version=workflow.version, occurrence=occurrence, run_id=run.id, done=effects, new=new
    )


async def deploy(services: Services, spec: WorkflowSpec, request: str) -> DesignedWorkflow:
    """Deploy a valid spec (version n+1 of its name); a schedule-triggered one first fires at its next time."""
    wrong = problems(spec)
    if wrong:
        raise InvalidInput("The spec is not valid, nothing was deployed: " + "; ".join(wrong))
    return await services.designed_workflows.deploy(spec, request, next_fire(spec, utcnow()))


async def get(services: Services, name: str) -> DesignedWorkflow:
    found = await services.designed_workflows.get(name)
    if found is None:
        raise NotFound(f"No designed workflow {name!r}; list_workflows shows them")
    return found


async def disable(services: Services, name: str) -> DesignedWorkflow:
    found = await services.designed_workflows.disable(name)
    if found is None:
        raise NotFound(f"No designed workflow {name!r}; list_workflows shows them")
    return found


async def run_due(services: Services, now: datetime) -> list[DesignedRun]:
    """Run every schedule-triggered designed workflow due at `now`, each occurrence claimed once (the scheduler)."""
    repo, out = services.designed_workflows, []
    for workflow in await repo.due(now):
        due = workflow.next_at
        following = next_fire(workflow.spec, now)
        if due is None or following is None or not await repo.claim(workflow.name, due, following):
            continue
        out.append(await run_designed(services, workflow, iso(parse_iso(due))))
    return out


async def run_for_event(services: Services, kind: str, event_id: int) -> dict[str, Any]:
    """Run every designed workflow triggered by `kind` for one inbox event (the event router, after the built-in
    action): the event's id is the occurrence, so a retried or redelivered event sends nothing twice. What came of
    them, for the event's outcome; empty when none is triggered."""
    triggered = await services.designed_workflows.for_event(kind)
    runs = [await run_designed(services, w, f"event-{event_id}") for w in triggered]
    return {"designed": {r.name: r.run_id for r in runs}} if runs else {}


async def run_due_logged(services: Services, now: datetime) -> None:
    """`run_due` for the scheduler's loop: a failure is in the run's record and the log, never the loop's end."""
    try:
        await run_due(services, now)
    except Exception as exc:
        log.warning("designed workflows: %s", describe_error(exc))
