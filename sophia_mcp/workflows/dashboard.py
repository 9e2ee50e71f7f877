"""A dashboard on request: client health, its trend, ARR by segment, competitor mentions and the designed
workflows' runs, as one HTML file.

Self-contained: styles inline, charts as server-drawn SVG, no script, and a Content-Security-Policy that allows
no fetch of any kind, so it opens anywhere (a browser, a host's sandboxed iframe as an MCP Apps UI) with no
network. Written to the data dir, served as a resource, and a link posted to the requester's channel.
"""

from __future__ import annotations

import re
import socket
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Literal

import anyio.to_thread
from pydantic import Field

from sophia_mcp.analysis.charts import bar_chart, line_chart, table
from sophia_mcp.analysis.health import format_score, format_threshold
from sophia_mcp.app.services import Services
from sophia_mcp.domain.model import Model
from sophia_mcp.domain.outbox import OutboxEntry
from sophia_mcp.domain.plural import plural
from sophia_mcp.domain.times import utcnow
from sophia_mcp.errors import NotFound
from sophia_mcp.ports.progress import Progress
from sophia_mcp.workflows import analytics
from sophia_mcp.workflows.alerts import SentAlert, send_alert
from sophia_mcp.workflows.runs import no_progress, start_run

Panel = Literal["health", "trend", "revenue", "competitors", "workflows"]
PANELS: tuple[Panel, ...] = ("health", "trend", "revenue", "competitors", "workflows")
KEYWORDS: dict[Panel, tuple[str, ...]] = {
    "health": ("health", "risk", "churn", "client"),
    "trend": ("trend", "over time", "history", "week"),
    "revenue": ("revenue", "arr", "segment", "money"),
    "competitors": ("competitor", "competition", "mention", "appfolio", "yardi", "realpage", "buildium", "entrata"),
    "workflows": ("workflow", "automation", "designed"),
}
STAGES = 3  # render, save, post: what progress counts
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.meta{color:#5c6370;margin-bottom:16px}section{max-width:700px}
table{border-collapse:collapse;margin-top:8px}th,td{border-bottom:1px solid #e3e6ea;padding:4px 10px;text-align:left}
th{background:#f4f6f8}
"""


class DashboardReport(Model):
    name: str
    title: str
    path: str = Field(description="The HTML file in the data dir, on the server's machine.")
    url: str | None = Field(
        description="Where a browser reads it (with the bearer token /mcp takes) when the server serves HTTP; null "
        "over stdio, where the path is the only place it is."
    )
    uri: str = Field(description="The dashboard as a resource.")
    panels: list[Panel]
    posted: OutboxEntry | None = Field(description="The message posted to the channel, with its delivery status.")
    run_id: str


def panels_for(request: str) -> list[Panel]:
    """The panels a request names; all of them when it names none."""
    text = request.casefold()
    named = [p for p in PANELS if any(k in text for k in KEYWORDS[p])]
    return named or list(PANELS)


def dashboards_dir(services: Services) -> Path:
    return services.settings.data_dir / "dashboards"


def dashboard_path(services: Services, name: str) -> Path:
    if not re.fullmatch(r"dashboard-\d{8}-\d{6}(-\d+)?", name):
        raise NotFound(f"No dashboard {name!r}")
    path = dashboards_dir(services) / f"{name}.html"
    if not path.is_file():
        raise NotFound(f"No dashboard {name!r}; build_dashboard makes one")
    return path


def latest_dashboard(services: Services) -> Path:
    found = sorted(dashboards_dir(services).glob("dashboard-*.html")) if dashboards_dir(services).is_dir() else []
    if not found:
        raise NotFound("No dashboard yet; build_dashboard makes one")
    return found[-1]


async def render(services: Services, title: str, panels: list[Panel], now: datetime) -> str:
    threshold = services.settings.health.threshold
    sections = []
    if "health" in panels:
        everyone = await analytics.run_metric(services, "client_health", analytics.MetricArgs(), 500)
        col = {c: i for i, c in enumerate(everyone.columns)}
        worst = everyone.rows[:15]
        at_risk = [r for r in everyone.rows if r[col["health"]] < threshold]
        sections.append(
            f"<section id='health'><h2>Client health (lowest 15; threshold {format_threshold(threshold)})</h2>"
            + bar_chart(
                "Client health",
                [(r[col["name"]], float(r[col["health"]])) for r in worst],
                maximum=100,
                threshold=threshold,
            )
            + f"<h2>{plural(len(at_risk), 'client')} under {format_threshold(threshold)}</h2>"
            + table(
                ["Client", "Segment", "ARR", "CSM", "Health"],
                [
                    [
                        r[col["name"]],
                        r[col["segment"]],
                        r[col["arr"]],
                        r[col["csm_name"]],
                        format_score(r[col["health"]], threshold),
                    ]
                    for r in at_risk
                ],
            )
            + "</section>"
        )
    if "trend" in panels:
        trend = await analytics.run_metric(services, "health_trend", analytics.MetricArgs(threshold=threshold), 200)
        points = [(str(r[0]), float(r[2])) for r in reversed(trend.rows) if r[2] is not None]  # oldest day first
        sections.append("<section id='trend'><h2>Average health by day (last 90 days)</h2>"
                        + line_chart("Average health", points) + "</section>")  # fmt: skip
    if "revenue" in panels:
        revenue = await analytics.run_metric(services, "revenue_by_segment", analytics.MetricArgs(threshold=threshold))
        sections.append(
            "<section id='revenue'><h2>ARR by segment</h2>"
            + bar_chart("ARR by segment", [(str(r[0]), float(r[2] or 0)) for r in revenue.rows])
            + table(["Segment", "Clients", "ARR", "Average health", "ARR at risk"], revenue.rows)
            + "</section>"
        )
    if "competitors" in panels:
        mentions = await analytics.run_metric(services, "competitor_mentions", analytics.MetricArgs())
        sections.append(
            "<section id='competitors'><h2>Competitors named on calls (last 90 days)</h2>"
            + bar_chart("Competitor mentions", [(str(r[0]), float(r[1])) for r in mentions.rows])
            + "</section>"
        )
    if "workflows" in panels:
        runs = await services.designed_workflows.runs()
        sections.append(
            "<section id='workflows'><h2>Designed workflows: runs by version</h2>"
            + bar_chart("Runs", [(f"{r.name} v{r.version}", float(r.runs)) for r in runs])
            + table(
                ["Workflow", "Version", "Runs", "Succeeded", "Failed", "Latest run (UTC)", "Latest status"],
                [[r.name, r.version, r.runs, r.succeeded, r.failed, r.last_started_at, r.last_status] for r in runs],
            )
            + "</section>"
        )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
        f"<meta name='viewport' content='width=device-width'><title>{escape(title)}</title><style>{STYLE}</style>"
        f"</head><body><h1>{escape(title)}</h1><div class='meta'>Built {now:%Y-%m-%d %H:%M} UTC by sophia-mcp</div>"
        + "".join(sections)
        + "</body></html>"
    )


def _save(folder: Path, now: datetime, html: str) -> Path:
    """Write the page under a name of its time (a second one in the same second gets -2, -3, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"dashboard-{now:%Y%m%d-%H%M%S}"
    n = 1
    while (folder / f"{name}.html").exists():
        n += 1
        name = f"dashboard-{now:%Y%m%d-%H%M%S}-{n}"
    path = folder / f"{name}.html"
    path.write_text(html, encoding="utf-8")
    return path


def dashboard_url(public_url: str, name: str) -> str:
    """Where a browser reads dashboard `name` from a server reached at `public_url`."""
    return f"{public_url.rstrip('/')}/dashboards/{name}"


def where_it_is(path: Path, uri: str, url: str | None) -> str:
    """How the posted message says where to find the dashboard: its web address when the server serves HTTP, else
    plainly that it is a file on the server's machine (a file:// link would open nothing on the reader's)."""
    if url is not None:
        return f": {url} (an MCP client reads it as the resource {uri})"
    return (
        f". It is a file on the machine that runs sophia-mcp ({socket.gethostname()}): {path}. Open it there in a "
        f"browser; an MCP client reads it as the resource {uri}"
    )


async def build_dashboard(
    services: Services,
    request: str,
    channel: str | None = None,
    requested_by: str | None = None,
    *,
    public_url: str | None = None,
    progress: Progress | None = None,
    key: str | None = None,
) -> DashboardReport:
    """Render the panels the request names, save the page in the data dir and post where it is to the channel;
    `public_url` is the base URL of a server serving HTTP (None on stdio); `key`, the post's idempotency key when
    the caller owns one (a designed workflow's occurrence), else one of the page."""
    report_progress = progress or no_progress
    now = utcnow()
    panels = panels_for(request)
    title = request.strip()[:120] or "Client dashboard"
    inputs = {"request": request, "channel": channel, "requested_by": requested_by}
    async with start_run(services.runs, "build_dashboard", title, inputs) as run:
        await report_progress(0, STAGES, f"reading the data of {plural(len(panels), 'panel')}")
        html = await run.step("render", lambda: render(services, title, panels, now), lambda h: {"chars": len(h)})
        await report_progress(1, STAGES, "saving the page")
        path = await run.step(
            "save", lambda: anyio.to_thread.run_sync(_save, dashboards_dir(services), now, html), lambda p: str(p)
        )
        name = path.stem
        uri = f"sophia://dashboards/{name}"
        url = dashboard_url(public_url, name) if public_url else None
        who = f" for {requested_by}" if requested_by else ""
        text = f'Dashboard "{title}"{who} is ready{where_it_is(path, uri, url)}.'
        await report_progress(2, STAGES, "posting where it is")

        async def post() -> SentAlert:
            # A caller's own key is kept once, ever; the page's own is deduped as any alert is.
            return await send_alert(services, text, severity="info", channel=channel, topic="dashboard",
                                    title="Dashboard ready", key=key or f"dashboard:{name}",
                                    once=key is not None)  # fmt: skip

        sent = await run.step("post", post, lambda s: {"channel": s.entry.target, "status": s.entry.status})
        run.output = {"name": name, "panels": panels, "url": url}
    await report_progress(STAGES, STAGES, "done")
    return DashboardReport(
        name=name, title=title, path=str(path), url=url, uri=uri, panels=panels, posted=sent.entry, run_id=run.id
    )
