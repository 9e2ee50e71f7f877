"""Churn prediction: a calibrated logistic regression trained on the store's history, per-client reasons, and
for each client above the threshold an urgent issue, a meeting with its CSM and a #leadership alert, once a week.

History is `client_snapshots`: a client's features as of a date, with its outcome (renewed or churned) once
known. Each run also snapshots every current client (outcome unknown), so the history grows; `record_outcome`
labels a client's recent snapshots when it renews or churns. The demo seeds two years of labelled snapshots.
scikit-learn is imported when the model is first trained, not when a server starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import anyio.to_thread
from pydantic import Field

from sophia_mcp.analysis.churn import FEATURES, ChurnFeatures, log1p, reason
from sophia_mcp.app.services import Services
from sophia_mcp.domain.crm import Client
from sophia_mcp.domain.issues import IssueDraft
from sophia_mcp.domain.meetings import Attendee, MeetingRequest
from sophia_mcp.domain.model import Model
from sophia_mcp.domain.notify import Alert, Attachment
from sophia_mcp.domain.plural import plural
from sophia_mcp.domain.times import iso, utcnow
from sophia_mcp.errors import InvalidInput
from sophia_mcp.ports.progress import Progress
from sophia_mcp.workflows.delivery import deliver_all
from sophia_mcp.workflows.health_monitor import next_weekday_at, period_of
from sophia_mcp.workflows.issues import default_team
from sophia_mcp.workflows.runs import no_progress, start_run

MIN_HISTORY = 30  # labelled snapshots needed, with both outcomes
SHOWN = 25
STAGES = 4  # features, training, scoring, acting: what progress counts


class ChurnRisk(Model):
    client_id: str
    name: str
    probability: float = Field(description="Calibrated probability of churning, 0-1.")
    reasons: list[str] = Field(description="What pushes the risk up most, strongest first.")
    features: ChurnFeatures
    actions: dict[str, str] = Field(description="For clients above the threshold: issue, meeting, alert status.")


class ChurnReport(Model):
    run_id: str
    threshold: float
    trained_on: int = Field(description="Labelled snapshots the model learned from.")
    churn_rate: float = Field(description="Share of them that churned.")
    brier: float = Field(description="Brier score of the calibrated model on its history (lower is better).")
    clients: int
    above_threshold: int
    clients_at_risk: list[ChurnRisk] = Field(description=f"Up to {SHOWN}, highest risk first.")


@dataclass
class ChurnModel:
    calibrated: Any
    explainer: Any  # a plain logistic regression on the same standardised features, for reasons
    scaler: Any
    trained_on: int
    churn_rate: float
    brier: float


# -- features ----------------------------------------------------------------------------------------------


async def current_features(services: Services, now: datetime) -> dict[str, tuple[Client, ChurnFeatures]]:
    """Every client's features as of now, in a few set-based queries."""
    clients = {c.id: c for c in await services.clients.all_clients()}
    since30 = iso(now - timedelta(days=30))
    signals = await services.churn_signals.since(now - timedelta(days=90))
    health = signals.health
    trend = {
        client_id: (last - first) / days * 30 if days and days > 1 else 0.0
        for client_id, first, last, days in signals.health_spans
    }
    calls: dict[str, list[Any]] = {}
    for client_id, started, sentiment in signals.calls:
        calls.setdefault(client_id, []).append((started, sentiment or 0.0))
    mentions, last_call = signals.mentions, signals.last_call
    out = {}
    for client_id, client in clients.items():
        mine = calls.get(client_id, [])
        recent = [s for t, s in mine if t >= since30]
        older = [s for t, s in mine if t < since30]
        average = sum(s for _, s in mine) / len(mine) if mine else 0.0
        last = last_call.get(client_id)
        days_since = (now - datetime.fromisoformat(last.replace("Z", "+00:00"))).days if last else 180
        out[client_id] = (client, ChurnFeatures(
            health=health.get(client_id, 75.0), health_trend=trend.get(client_id, 0.0), sentiment=average,
            sentiment_trend=_mean(recent, average) - _mean(older, average),
            competitor_mentions=float(mentions.get(client_id, 0)), calls_90d=float(len(mine)),
            days_since_call=float(days_since), log_units=log1p(client.units_managed), log_arr=log1p(client.arr),
        ))  # fmt: skip
    return out


def _mean(values: list[float], otherwise: float) -> float:
    return sum(values) / len(values) if values else otherwise


async def history(services: Services) -> tuple[list[list[float]], list[int]]:
    """The labelled snapshots the model learns from: their feature vectors, and 1 for each that churned."""
    rows = await services.snapshots.labelled()
    x = [ChurnFeatures.model_validate_json(features).vector() for features, _ in rows]
    return x, [1 if outcome == "churned" else 0 for _, outcome in rows]


async def snapshot(services: Services, features: dict[str, tuple[Client, ChurnFeatures]], now: datetime) -> None:
    """Keep this week's features of every client (outcome unknown yet), once a week per client."""
    week = datetime.combine(period_of(now.date(), 7)[0], datetime.min.time(), now.tzinfo)
    await services.snapshots.keep(week, {cid: f.model_dump_json() for cid, (_, f) in features.items()})


async def record_outcome(
    services: Services, client_id: str, outcome: Literal["renewed", "churned"], days: int = 180
) -> int:
    """Label the client's snapshots of the last `days` with how it ended; returns how many were labelled."""
    return await services.snapshots.label(client_id, outcome, utcnow() - timedelta(days=days))


# -- the model ---------------------------------------------------------------------------------------------


def train(x: list[list[float]], y: list[int]) -> ChurnModel:
    if len(y) < MIN_HISTORY or len(set(y)) < 2:
        raise InvalidInput(
            f"Churn prediction needs at least {MIN_HISTORY} labelled snapshots with both outcomes; the store has "
            f"{len(y)} ({sum(y)} churned). Record outcomes with record_outcome (or load the demo)."
        )
    import numpy as np
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import brier_score_loss
    from sklearn.preprocessing import StandardScaler

    features, labels = np.asarray(x, dtype=float), np.asarray(y)
    scaler = StandardScaler().fit(features)
    scaled = scaler.transform(features)
    folds = max(2, min(5, int(labels.sum()), int((1 - labels).sum())))
    calibrated = CalibratedClassifierCV(LogisticRegression(max_iter=1000), method="sigmoid", cv=folds)
    calibrated.fit(scaled, labels)
    explainer = LogisticRegression(max_iter=1000).fit(scaled, labels)
    brier = float(brier_score_loss(labels, calibrated.predict_proba(scaled)[:, 1]))
    return ChurnModel(calibrated, explainer, scaler, len(labels), float(labels.mean()), round(brier, 4))


def predict(model: ChurnModel, features: ChurnFeatures) -> tuple[float, list[str]]:
    scaled = model.scaler.transform([features.vector()])
    probability = float(model.calibrated.predict_proba(scaled)[0, 1])
    pushes = sorted(zip(model.explainer.coef_[0] * scaled[0], FEATURES, strict=True), reverse=True)
    reasons = [reason(name, getattr(features, name)) for weight, name in pushes[:3] if weight > 0]
    return probability, reasons


# -- the run -----------------------------------------------------------------------------------------------


async def predict_churn(
    services: Services, threshold: float | None = None, act: bool = True, progress: Progress | None = None
) -> ChurnReport:
    """Score every client's churn risk with a model trained on the store's history; act on those above it."""
    report_progress = progress or no_progress
    settings = services.settings
    threshold = settings.churn.threshold if threshold is None else threshold
    if not 0 < threshold < 1:
        raise InvalidInput(f"The threshold is a probability between 0 and 1, not {threshold}")
    now = utcnow()
    _, period = period_of(now.date(), 7)
    async with start_run(services.runs, "predict_churn", period, {"threshold": threshold, "act": act}) as run:
        await report_progress(0, STAGES, "reading each client's features")
        features = await run.step("features", lambda: current_features(services, now), lambda f: {"clients": len(f)})
        await report_progress(1, STAGES, f"training on the history of {plural(len(features), 'client')}")
        x, y = await history(services)
        model = await run.step("train", lambda: anyio.to_thread.run_sync(train, x, y),
                               lambda m: {"trained_on": m.trained_on, "brier": m.brier})  # fmt: skip
        await report_progress(2, STAGES, "scoring")
        scored = []
        for client, f in features.values():
            probability, reasons = predict(model, f)
            scored.append((probability, client, f, reasons))
        scored.sort(key=lambda s: -s[0])
        above = [s for s in scored if s[0] >= threshold]
        if act and above:
            await report_progress(3, STAGES, f"acting on {plural(len(above), 'client')} above {threshold:.0%}")
        actions = await run.step("act", lambda: _act(services, above, period, now), lambda a: {"clients": len(a)}) \
            if act and above else {}  # fmt: skip
        await snapshot(services, features, now)
        risks = [
            ChurnRisk(
                client_id=c.id,
                name=c.name,
                probability=round(p, 3),
                reasons=r,
                features=f,
                actions=actions.get(c.id, {}),
            )
            for p, c, f, r in scored[:SHOWN]
        ]
        report = ChurnReport(
            run_id=run.id, threshold=threshold, trained_on=model.trained_on, churn_rate=round(model.churn_rate, 3),
            brier=model.brier, clients=len(scored), above_threshold=len(above), clients_at_risk=risks,
        )  # fmt: skip
        run.output = report.model_dump(mode="json", exclude={"clients_at_risk"})
    await report_progress(STAGES, STAGES, "done")
    return report


async def _act(services: Services, above: list[Any], period: str, now: datetime) -> dict[str, dict[str, str]]:
    """An urgent issue, a meeting with the CSM and a #leadership alert per client, each once per week."""
    settings = services.settings
    team = default_team(services, settings.monitor.team)
    if team is None:
        raise InvalidInput(
            "Churn actions need a team for their issues: set SOPHIA_MONITOR__TEAM or SOPHIA_LINEAR__TEAM"
        )
    starts = next_weekday_at(now, settings.monitor.meeting_hour_utc)
    booking = [
        (client, MeetingRequest(
            key=f"churn-meeting:{client.id}:{period}", title=f"{client.name}: churn risk review",
            description=f"Churn risk {p:.0%}: " + "; ".join(reasons),
            organizer=Attendee(email=settings.monitor.organizer_email, name="sophia-mcp"),
            attendees=[Attendee(email=client.csm_email, name=client.csm_name)], starts_at=starts,
            minutes=settings.monitor.meeting_minutes,
        ))
        for p, client, _, reasons in above
        if client.csm_email
    ]  # fmt: skip
    booked = await services.meetings.book_all([request for _, request in booking])
    meetings = {client.id: meeting for (client, _), (meeting, _) in zip(booking, booked, strict=True)}
    channel = settings.alerts.channel_for("churn")
    issues, alerts = [], []
    for p, client, _, reasons in above:
        key = f"churn-issue:{client.id}:{period}"
        draft = IssueDraft(
            team=team, title=f"{client.name}: churn risk {p:.0%} ({period})", priority=1, labels=["churn"],
            description=f"Churn risk **{p:.0%}**.\n\nWhy: " + "; ".join(reasons)
            + f"\n\nCSM: {client.csm_name or 'none'}; health: `crm://clients/{client.id}/health`",
        )  # fmt: skip
        issues.append((key, team, {"key": key, "draft": draft.model_dump(mode="json")}))
        meeting = meetings.get(client.id)
        alert = Alert(
            key=f"churn-alert:{client.id}:{period}", channel=channel, severity="critical",
            title=f"{client.name} may churn ({p:.0%})",
            text=f"{client.name}: churn risk {p:.0%}. " + "; ".join(reasons),
            attachments=[Attachment(filename="churn-review.ics", mime_type="text/calendar", content=meeting.ics)]
            if meeting else [],
        )  # fmt: skip
        alerts.append((alert.key, channel, alert.model_dump(mode="json")))
    issue_ids = await services.outbox.enqueue_many("issue", issues)
    alert_ids = await services.outbox.enqueue_many("alert", alerts)
    entries = await deliver_all(services, [i for i, _ in issue_ids] + [i for i, _ in alert_ids])
    out = {}
    for (_, client, _, _), (issue_id, _), (alert_id, _) in zip(above, issue_ids, alert_ids, strict=True):
        issue = entries[issue_id]
        out[client.id] = {
            "issue": issue.external_ref or issue.status, "alert": entries[alert_id].status,
            "meeting": meetings[client.id].uid if client.id in meetings else "no CSM",
        }  # fmt: skip
    return out


def summary(report: ChurnReport) -> dict[str, Any]:
    return json.loads(report.model_dump_json(exclude={"clients_at_risk"}))
