"""Call analysis → client health → alert: the first whole workflow.

Fetch the call and its transcript, read it (the configured analyst), keep the analysis, recompute the
client's health from its recent analysed calls, and alert through the outbox when that health changes for the
worse: when it crosses under the threshold, falls a further `realert_drop` points, or falls again after recovering
(`health_alerts`). Alerts are keyed by (client, call), so analysing the same call again never alerts twice. A call
with no client is analysed and reported as unlinked; `link_call` links it by hand and recomputes the health.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field

from sophia_mcp.adapters.lexicon_analyst import LocalAnalyst
from sophia_mcp.analysis.health import call_health, client_health, format_score, format_threshold
from sophia_mcp.analysis.insights import build_analysis
from sophia_mcp.app.services import Services
from sophia_mcp.domain.calls import Call
from sophia_mcp.domain.model import Model
from sophia_mcp.domain.notify import Alert
from sophia_mcp.domain.results import CallAnalysis, HealthScore
from sophia_mcp.domain.warehouse import HealthRecord
from sophia_mcp.ports.analyst import Analyst
from sophia_mcp.ports.progress import Progress
from sophia_mcp.workflows.delivery import deliver
from sophia_mcp.workflows.health_alerts import decide
from sophia_mcp.workflows.runs import Run, start_run

# The key of every alert this workflow raises starts so: `health-alert:{client}:{call}`.
HEALTH_ALERT = "health-alert:"
STEPS = 6


class AlertOutcome(Model):
    key: str
    channel: str
    status: Literal["delivered", "pending", "sending", "failed"]
    new: bool = Field(description="False when this alert had already been raised by an earlier run.")
    last_error: str | None = None


class CallHealthReport(Model):
    run_id: str
    call_id: str
    client_id: str | None
    client_name: str | None
    analysis: CallAnalysis
    health: HealthScore | None = Field(
        description="The client's health as of its newest analysed call; None when the call has no known client."
    )
    call_health: HealthScore = Field(description="The health this call alone suggests, whether or not it is linked.")
    threshold: float
    at_risk: bool | None = Field(
        description="Whether the client's health is under the threshold; null when the call has no client."
    )
    unlinked_reason: str | None = Field(
        default=None, description="Why the call has no client, and how to link it; null when it has one."
    )
    alert: AlertOutcome | None = None
    alert_change: str | None = Field(
        default=None, description="What changed since the client's last alert, or why no new alert was sent."
    )


class LinkReport(Model):
    run_id: str
    call_id: str
    client_id: str
    client_name: str | None
    previous_client_id: str | None = Field(description="The client the call was linked to before, if any.")
    health: HealthScore | None = Field(description="The client's health, recomputed with this call.")
    threshold: float
    at_risk: bool | None
    alert: AlertOutcome | None = None
    alert_change: str | None = None


def health_alert(call: Call, health: HealthScore, threshold: float, channel: str, change: str = "") -> Alert:
    """The Slack-ready alert for a client whose health, as of `call` (its newest), is under the threshold;
    `change` says what changed since the client's last alert."""
    client = call.client_name or call.client_id or "Unknown client"
    when = call.started.strftime("%Y-%m-%d")
    title = f"{client}: health {format_score(health.score, threshold)}/100 (threshold {format_threshold(threshold)})"
    link = f"<{call.url}|{call.title}>" if call.url else call.title
    severity = "critical" if health.score < threshold / 2 else "warning"
    return Alert(
        key=f"{HEALTH_ALERT}{call.client_id}:{call.id}",
        channel=channel,
        severity=severity,
        title=title,
        text=f"{title} after the call “{call.title}” on {when}. {change + ' ' if change else ''}{health.explanation}",
        blocks=[
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            *([{"type": "section", "text": {"type": "mrkdwn", "text": change[:3000]}}] if change else []),
            {"type": "section", "text": {"type": "mrkdwn", "text": health.explanation[:3000]}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{c.name.title()}*\n{format_score(c.score)}/100 · {c.detail}"[:2000]}
                    for c in health.components
                ],
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"Call {link} · {when}"}]},
        ],
    )


async def analyze_call(
    services: Services, call_id: str, progress: Progress | None = None, analyst: Analyst | None = None
) -> CallHealthReport:
    """Analyse one call, update its client's health, and alert when that health is under the threshold.

    `analyst` overrides the configured one for this run (the MCP surface passes the client's own model).
    """
    settings = services.settings
    reader = analyst or services.analyst
    # The healing watch's fallback: while an incident on the model's service lasts, the local analyst reads calls.
    if reader.name != "local" and await services.incidents.active_targets("fallback_analyst"):
        reader = LocalAnalyst.configured(settings)
    threshold = settings.health.threshold

    async def report(done: int, message: str) -> None:
        if progress is not None:
            await progress(done, STEPS, message)

    async with start_run(services.runs, "analyze_call", call_id, {"call_id": call_id}) as run:
        call = await run.step("fetch_call", lambda: services.calls.get_call(call_id), lambda c: {"title": c.title})
        await report(1, "fetched call")
        transcript = await run.step(
            "fetch_transcript",
            lambda: services.calls.get_transcript(call_id),
            lambda t: {"monologues": len(t.monologues)},
        )
        if services.calls is not services.local_calls:
            # Analyses and health live in the store and refer to the call: keep a copy of what was read, linked
            # to its client here (by account name or email domain when Gong has no CRM id).
            call = await run.step(
                "keep_call",
                lambda: services.local_calls.keep(call, transcript, services.calls.name),
                lambda c: {"client_id": c.client_id, "linked_by": c.linked_by},
            )
        await report(2, "fetched transcript")
        insights = await run.step(
            "read_call",
            lambda: reader.read_call(call, transcript),
            lambda i: {
                "analyst": i.read_by or reader.name,
                "risks": len(i.risk_factors),
                "fallback": i.fallback_reason,
            },
        )
        # The analyst that really read it: the configured one's fallback when its reading could not be used.
        analysis = build_analysis(call, transcript, insights, insights.read_by or reader.name)
        await report(3, "analysed transcript")
        await run.step("store_analysis", lambda: services.warehouse.save_analysis(analysis))
        await report(4, "stored analysis")

        health: HealthScore | None = None
        outcome: AlertOutcome | None = None
        change: str | None = None
        if call.client_id is None:
            await run.skip("update_health", "the call is not linked to a client")
            await report(5, "the call has no client")
            await run.skip("send_alert", "the call is not linked to a client")
        else:
            health, newest = await refresh_health(services, run, call.client_id, call.started, analysis)
            await report(5, "updated client health")
            if health is not None and newest is not None:
                outcome, change = await alert_on_change(services, run, call.client_id, health, newest.call_id, call)
        await report(6, "done")

        result = CallHealthReport(
            run_id=run.id,
            call_id=call.id,
            client_id=call.client_id,
            client_name=call.client_name,
            analysis=analysis,
            health=health,
            call_health=call_health(analysis, settings.health.weights),
            threshold=threshold,
            at_risk=None if call.client_id is None else health is not None and health.score < threshold,
            unlinked_reason=call.unlinked_reason if call.client_id is None else None,
            alert=outcome,
            alert_change=change,
        )
        run.output = {
            "health": health and health.score,
            "at_risk": result.at_risk,
            "alert": outcome and outcome.key,
        }
        return result


async def refresh_health(
    services: Services, run: Run, client_id: str, around: datetime, analysis: CallAnalysis | None = None
) -> tuple[HealthScore | None, CallAnalysis | None]:
    """Recompute and record a client's health as of its newest analysed call (step `update_health`).

    As of the newest call, so it does not depend on the order in which calls are analysed, and re-analysing an
    older call reproduces the same figures. `around` is the date of the call that prompted it.
    """
    settings = services.settings

    async def update_health() -> tuple[HealthScore | None, CallAnalysis | None]:
        window = timedelta(days=settings.health.window_days)
        analyses = await services.warehouse.client_analyses(client_id, since=around - window)
        newest = max(analyses, key=lambda a: (a.started, a.call_id), default=analysis)
        if newest is None:
            return None, None
        score = client_health(
            analyses,
            settings.health.weights,
            as_of=newest.started,
            half_life_days=settings.health.half_life_days,
            window_days=settings.health.window_days,
        )
        if score is not None:
            await services.warehouse.record_health(
                HealthRecord(
                    client_id=client_id, health=score, as_of=newest.started, source_call_id=newest.call_id,
                    run_id=run.id,
                )
            )  # fmt: skip
        return score, newest

    return await run.step(
        "update_health", update_health, lambda r: {"score": r[0] and r[0].score, "as_of_call": r[1] and r[1].call_id}
    )


async def alert_on_change(
    services: Services, run: Run, client_id: str, health: HealthScore, newest_call_id: str, call: Call
) -> tuple[AlertOutcome | None, str]:
    """Alert the health channel when the client's health changed for the worse since its last alert (step
    `send_alert`); returns the alert, if one was raised, and what changed (or why no alert went out)."""
    settings = services.settings
    threshold = settings.health.threshold
    ledger = services.health_alerts
    key = f"{HEALTH_ALERT}{client_id}:{newest_call_id}"
    last = await ledger.last(client_id)
    decision = decide(last, health, threshold, settings.health.realert_drop, key)
    if not decision.alert:
        if last is not None and last.recovered_score is None and health.score >= threshold:
            await ledger.recovered(client_id, health.score)
        await run.skip("send_alert", decision.change)
        return None, decision.change
    anchor = call if newest_call_id == call.id else await services.calls.get_call(newest_call_id)
    alert = health_alert(anchor, health, threshold, settings.alerts.channel_for("health"), decision.change)

    async def send_alert() -> AlertOutcome:
        entry, new = await services.outbox.enqueue(alert, run.id)
        if entry.status == "pending":
            entry = await deliver(services, entry.id)
        await ledger.alerted(client_id, alert.key, health, anchor.id, anchor.started)
        return AlertOutcome(
            key=entry.key, channel=entry.target, status=entry.status, new=new, last_error=entry.last_error
        )

    return await run.step("send_alert", send_alert, lambda a: a.model_dump()), decision.change


async def link_call(services: Services, call_id: str, client: str) -> LinkReport:
    """Link a call to a client by hand (its id or name), then recompute that client's health (and the health of
    the client it was linked to before) and alert if it changed for the worse."""
    threshold = services.settings.health.threshold
    async with start_run(services.runs, "link_call", call_id, {"call_id": call_id, "client": client}) as run:
        call, previous = await run.step(
            "link_call",
            lambda: services.local_calls.link_call(call_id, client),
            lambda r: {"client_id": r[0].client_id, "previous": r[1]},
        )
        assert call.client_id is not None
        client_id = call.client_id
        analysis = await services.warehouse.get_analysis(call_id)
        health: HealthScore | None = None
        outcome: AlertOutcome | None = None
        change: str | None = None
        if analysis is None:
            await run.skip("update_health", "the call has not been analysed yet: analyze_call will count it")
        else:
            if analysis.client_id != client_id:
                moved = analysis.model_copy(update={"client_id": client_id})
                await run.step("relink_analysis", lambda: services.warehouse.save_analysis(moved))
            health, newest = await refresh_health(services, run, client_id, call.started, analysis)
            if health is not None and newest is not None:
                outcome, change = await alert_on_change(services, run, client_id, health, newest.call_id, call)
            if previous and previous != client_id:
                await refresh_health(services, run, previous, call.started)
        report = LinkReport(
            run_id=run.id, call_id=call_id, client_id=client_id, client_name=call.client_name,
            previous_client_id=previous, health=health, threshold=threshold,
            at_risk=None if health is None else health.score < threshold, alert=outcome, alert_change=change,
        )  # fmt: skip
        run.output = {"client_id": client_id, "health": health and health.score, "alert": outcome and outcome.key}
        return report


async def analyze_calls(
    services: Services, call_ids: list[str], progress: Progress | None = None
) -> list[CallHealthReport]:
    """Analyse calls one after another, in the order given (oldest first keeps health history in order)."""
    reports = []
    for done, call_id in enumerate(call_ids, start=1):
        reports.append(await analyze_call(services, call_id))
        if progress is not None:
            await progress(done, len(call_ids), call_id)
    return reports
