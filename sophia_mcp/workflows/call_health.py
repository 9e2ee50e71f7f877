"""Call analysis → client health → alert: the first whole workflow.

Fetch the call and its transcript, read it (the configured analyst), keep the analysis, recompute the
client's health from its recent analysed calls, and when health is under the threshold send one alert per
(client, call) through the outbox, so analysing the same call again never alerts twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Literal

from pydantic import Field

from sophia_mcp.analysis.health import client_health
from sophia_mcp.analysis.insights import build_analysis
from sophia_mcp.analysis.results import CallAnalysis, HealthScore
from sophia_mcp.model import Model
from sophia_mcp.ports.analyst import Analyst
from sophia_mcp.ports.calls import Call
from sophia_mcp.ports.notify import Alert
from sophia_mcp.ports.warehouse import HealthRecord
from sophia_mcp.runs import start_run
from sophia_mcp.services import Services

Progress = Callable[[float, float, str], Awaitable[None]]

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
    threshold: float
    at_risk: bool
    alert: AlertOutcome | None = None


def health_alert(call: Call, health: HealthScore, threshold: float, channel: str) -> Alert:
    """The Slack-ready alert for a client whose health, as of `call` (its newest), is under the threshold."""
    client = call.client_name or call.client_id or "Unknown client"
    when = call.started.strftime("%Y-%m-%d")
    title = f"{client}: health {health.score:.0f}/100 (threshold {threshold:.0f})"
    link = f"<{call.url}|{call.title}>" if call.url else call.title
    severity = "critical" if health.score < threshold / 2 else "warning"
    return Alert(
        key=f"health-alert:{call.client_id}:{call.id}",
        channel=channel,
        severity=severity,
        title=title,
        text=f"{title} after the call “{call.title}” on {when}. {health.explanation}",
        blocks=[
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": health.explanation[:3000]}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{c.name.title()}*\n{c.score:.0f}/100 · {c.detail}"[:2000]}
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
    threshold = settings.health.threshold

    async def report(done: int, message: str) -> None:
        if progress is not None:
            await progress(done, STEPS, message)

    async with start_run(services.store, "analyze_call", call_id, {"call_id": call_id}) as run:
        call = await run.step("fetch_call", lambda: services.calls.get_call(call_id), lambda c: {"title": c.title})
        await report(1, "fetched call")
        transcript = await run.step(
            "fetch_transcript",
            lambda: services.calls.get_transcript(call_id),
            lambda t: {"monologues": len(t.monologues)},
        )
        if services.calls is not services.local_calls:
            # Analyses and health live in the store and refer to the call: keep a copy of what was read.
            await run.step(
                "keep_call",
                lambda: services.store.run(services.local_calls.keep, call, transcript, services.calls.name),
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
        anchor = call
        if call.client_id is None:
            await run.skip("update_health", "the call is not linked to a client")
        else:
            client_id = call.client_id

            async def update_health() -> tuple[HealthScore | None, CallAnalysis]:
                # A client's health is as of its newest analysed call, so it does not depend on the order in
                # which calls are analysed, and re-analysing an older call reproduces the same figures.
                window = timedelta(days=settings.health.window_days)
                analyses = await services.warehouse.client_analyses(client_id, since=call.started - window)
                newest = max(analyses, key=lambda a: (a.started, a.call_id), default=analysis)
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
                            client_id=client_id,
                            health=score,
                            as_of=newest.started,
                            source_call_id=newest.call_id,
                            run_id=run.id,
                        )
                    )
                return score, newest

            health, newest = await run.step(
                "update_health", update_health, lambda r: {"score": r[0] and r[0].score, "as_of_call": r[1].call_id}
            )
            if newest.call_id != call.id:
                anchor = await services.calls.get_call(newest.call_id)
        await report(5, "updated client health")

        alert_outcome: AlertOutcome | None = None
        at_risk = health is not None and health.score < threshold
        if health is not None and at_risk:
            # One alert per client and newest call: new evidence may alert again, a re-run never does.
            alert = health_alert(anchor, health, threshold, settings.alerts.channel_for("health"))

            async def send_alert() -> AlertOutcome:
                entry, new = await services.outbox.enqueue(alert, run.id)
                if entry.status == "pending":
                    entry = await services.outbox.deliver(entry.id)
                return AlertOutcome(
                    key=entry.key, channel=entry.target, status=entry.status, new=new, last_error=entry.last_error
                )

            alert_outcome = await run.step("send_alert", send_alert, lambda a: a.model_dump())
        else:
            await run.skip("send_alert", "client health is not under the threshold")
        await report(6, "done")

        result = CallHealthReport(
            run_id=run.id,
            call_id=call.id,
            client_id=call.client_id,
            client_name=call.client_name,
            analysis=analysis,
            health=health,
            threshold=threshold,
            at_risk=at_risk,
            alert=alert_outcome,
        )
        run.output = {
            "health": health and health.score,
            "at_risk": at_risk,
            "alert": alert_outcome and alert_outcome.key,
        }
        return result


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
