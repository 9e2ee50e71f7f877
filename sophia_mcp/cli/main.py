"""The `sophia-mcp` command: serve a server, load the demo, import calls, run a workflow, check the setup.

A command imports its workflows, and the tables it prints, when it runs: `sophia-mcp serve` is this same program, and
a server's start should not load the workflows of every other command (bench/server_speed.py measures it). For the
same reason annotations here are not postponed (no `from __future__ import annotations`): typer reads every
command's parameters at each start, and evaluating postponed ones costs more than the definitions; the few names
imported only for type checking are quoted."""

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import anyio
import typer

from sophia_mcp.analysis.health import format_score, format_threshold
from sophia_mcp.app.logs import configure_logging
from sophia_mcp.cli import started
from sophia_mcp.cli.serve import SERVER_NAMES, run_hooks, run_server, settings_problems
from sophia_mcp.domain.plural import plural
from sophia_mcp.domain.strategic import SOURCES, SourceName
from sophia_mcp.errors import ConfigurationError, SophiaError
from sophia_mcp.mcp.tool_names import SNAKE_WORD
from sophia_mcp.store.database import file_failure

if TYPE_CHECKING:
    from rich.console import Console

    from sophia_mcp.app.services import ServiceCheck, Services
    from sophia_mcp.domain.inbox import InboxEvent
    from sophia_mcp.domain.outbox import OutboxEntry
    from sophia_mcp.domain.schedules import ScheduleRun
    from sophia_mcp.settings import Settings
    from sophia_mcp.workflows.call_health import CallHealthReport
    from sophia_mcp.workflows.strategic import StrategicAnswer

T = TypeVar("T")

app = typer.Typer(
    help="sophia-mcp: MCP servers over a revenue team's workflows.", no_args_is_help=True, add_completion=False
)
calls_app = typer.Typer(help="Calls and transcripts.", no_args_is_help=True)
run_app = typer.Typer(help="Run a workflow once, from the command line.", no_args_is_help=True)
outbox_app = typer.Typer(help="Side effects waiting to be delivered, and those delivered.", no_args_is_help=True)
app.add_typer(calls_app, name="calls")
app.add_typer(run_app, name="run")
app.add_typer(outbox_app, name="outbox")
crm_app = typer.Typer(help="Contacts, enrichment and lead scores; firmographics for the local enricher.",
                      no_args_is_help=True)  # fmt: skip
app.add_typer(crm_app, name="crm")
inbox_app = typer.Typer(help="Events from outside (webhooks, polling connectors) and what came of them.",
                        no_args_is_help=True)  # fmt: skip
app.add_typer(inbox_app, name="inbox")


def _version(asked: bool) -> None:
    if asked:
        from sophia_mcp import __version__

        print(f"sophia-mcp {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """sophia-mcp: MCP servers over a revenue team's workflows."""
    started()


def _signed(value: float | None) -> str:
    return "unknown" if value is None else f"{value:+.2f}"


def _percent(ratio: float | None) -> str:
    return "an unknown share" if ratio is None else f"{ratio:.0%}"


kb_app = typer.Typer(help="The knowledge base: ingest documents, search them.", no_args_is_help=True)
app.add_typer(kb_app, name="kb")


ServerName = StrEnum("ServerName", {name: name for name in SERVER_NAMES})  # type: ignore[misc]


class Transport(StrEnum):
    stdio = "stdio"
    sse = "sse"
    http = "http"


def _console(stderr: bool = False) -> "Console":
    from sophia_mcp.cli.terminal import console_for

    return console_for(stderr)


# The tools our messages name, as a person at the command line reaches them.
CLI_FOR_TOOL = {
    "list_calls": "sophia-mcp calls list", "analyze_call": "sophia-mcp run analyze-call",
    "link_call": "sophia-mcp calls link", "list_alerts": "sophia-mcp outbox list",
    "retry_alerts": "sophia-mcp outbox deliver", "run_health_monitor": "sophia-mcp run health-monitor",
    "search_documents": "sophia-mcp kb search", "ingest_document": "sophia-mcp kb ingest",
    "enrich_contact": "sophia-mcp crm enrich", "enrich_contacts": "sophia-mcp crm enrich",
}  # fmt: skip
# Those with no command of their own, by the server that offers them.
SERVER_OF_TOOL = {"list_documents": "knowledge", "search_contacts": "crm", "list_clients": "crm",
                  "list_schedules": "alerts", "list_teams": "linear"}  # fmt: skip


def for_the_cli(text: str) -> str:
    """A message written for a model (naming tools) as a person at the command line reads it: naming commands."""

    def command(word: re.Match[str]) -> str:
        name = word.group()
        if name in CLI_FOR_TOOL:
            return f"`{CLI_FOR_TOOL[name]}`"
        if name in SERVER_OF_TOOL:
            return f"the {name} tool of `sophia-mcp serve {SERVER_OF_TOOL[name]}`"
        return name

    return SNAKE_WORD.sub(command, text)


def _say(text: str, style: str = "red", console: "Console | None" = None) -> None:
    """A failure in one line, whatever the terminal's width, its text taken as it is (no markup), naming commands
    where it names tools."""
    from rich.text import Text

    (console or _console(stderr=True)).print(Text(for_the_cli(text), style=style), soft_wrap=True)


def _settings() -> "Settings":
    from pydantic import ValidationError

    from sophia_mcp.settings import load_settings

    try:
        settings = load_settings()
    except ValidationError as exc:
        _say(settings_problems(exc))
        raise typer.Exit(2) from exc
    configure_logging(settings.log_level)
    return settings


def _with_services(work: "Callable[[Services], Awaitable[T]]") -> T:
    """Build the services from settings, run `work`, and turn our errors into a message and exit code 1."""
    from sophia_mcp.app.backends import start_services
    from sophia_mcp.app.telemetry import configure_from_environment, shutdown

    configure_from_environment("sophia-cli")
    try:
        services = start_services(_settings())
    except SophiaError as exc:
        _say(str(exc))
        raise typer.Exit(1) from exc

    async def main() -> T:
        try:
            return await work(services)
        finally:
            await services.aclose()

    try:
        return anyio.run(main)
    except (SophiaError, OSError) as exc:
        failure = exc if isinstance(exc, SophiaError) else file_failure(exc)  # a file beside the store: full disk
        if failure is None:
            raise
        _say(str(failure))
        raise typer.Exit(1) from exc
    finally:
        services.close()
        shutdown()


def _progress_bar() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_console(stderr=True),
        transient=False,
    )


@app.command()
def serve(
    name: Annotated[ServerName, typer.Argument(help="Which server to run.")],
    transport: Annotated[Transport, typer.Option(help="stdio (default), sse, or http (Streamable HTTP at /mcp).")] = (
        Transport.stdio
    ),
    host: Annotated[str, typer.Option(help="Address to listen on (sse and http).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (sse and http).")] = 8000,
) -> None:
    """Run an MCP server. Under stdio nothing but protocol is written to stdout."""
    run_server(name.value, transport.value, host, port)


@app.command()
def hooks(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Receive provider webhooks at /hooks/<provider> and process what they bring.

    Slack, HubSpot, Linear, Gong, GitHub and Vercel, each checked against its provider's signature; beyond loopback at least one provider's secret must be set."""  # noqa: E501
    run_hooks(host, port)


@app.command()
def demo() -> None:
    """Load the demo into an empty data dir, analyse every call and report client health, then score the leads."""
    from sophia_mcp.demo.load import load_demo
    from sophia_mcp.workflows.call_health import analyze_calls

    console = _console()

    async def work(services: "Services") -> None:
        console.print(f"Data dir: [bold]{services.settings.data_dir}[/bold]")
        with _progress_bar() as bar:
            task = bar.add_task("Loading demo calls and transcripts", total=None)

            async def loading(done: float, total: float, _: str) -> None:
                bar.update(task, completed=done, total=total)

            loaded = await load_demo(services, progress=loading)
        if loaded.loaded and loaded.calls:
            console.print(
                f"Loaded {plural(loaded.clients, 'client')}, {plural(loaded.contacts, 'contact')}, "
                f"{plural(loaded.calls.calls_new, 'call')} and {plural(loaded.calls.transcripts, 'transcript')}, "
                f"{plural(loaded.documents, 'knowledge-base document')}."
            )
        else:
            console.print(f"The store already holds {plural(loaded.clients, 'client')}; not loading the demo again.")

        call_ids = await services.local_calls.all_call_ids()
        with _progress_bar() as bar:
            task = bar.add_task("Analysing calls", total=len(call_ids))

            async def analysing(done: float, total: float, _: str) -> None:
                bar.update(task, completed=done)

            reports = await analyze_calls(services, call_ids, analysing)
        _demo_health(services, console, reports, await services.outbox.list(limit=10_000, kind="alert"))
        await _demo_leads(services, console)

    _with_services(work)


def _demo_health(
    services: "Services", console: "Console", reports: "list[CallHealthReport]", health_alerts: "list[OutboxEntry]"
) -> None:
    """Every client's health after the analysis, and the health alerts in the outbox (those this run raised, and
    those raised before)."""
    from rich.text import Text

    from sophia_mcp.cli.terminal import Column, Report

    threshold = services.settings.health.threshold
    latest = {r.client_id: r for r in reports if r.client_id and r.health}
    calls: dict[str, int] = {}
    for r in reports:
        if r.client_id:
            calls[r.client_id] = calls.get(r.client_id, 0) + 1
    table = Report(
        f"Client health after {plural(len(reports), 'call')} (threshold {format_threshold(threshold)})",
        [Column("Client", share=2), Column("Health", number=True), Column("Calls", number=True),
         Column("Weakest part of the score", share=3)],
    )  # fmt: skip
    for report in sorted(latest.values(), key=lambda r: r.health.score if r.health else 0):
        assert report.health is not None
        weakest = min(report.health.components, key=lambda c: c.score)
        table.add(
            report.client_name or str(report.client_id),
            Text(format_score(report.health.score, threshold), style="red" if report.at_risk else "green"),
            str(calls[str(report.client_id)]),
            f"{weakest.name} {format_score(weakest.score)}: {weakest.detail}",
        )
    table.print(console)
    at_risk = sum(1 for r in latest.values() if r.at_risk)
    console.print(
        f"{at_risk} of {plural(len(latest), 'client')} {'is' if at_risk == 1 else 'are'} under the threshold."
    )
    from sophia_mcp.workflows.call_health import HEALTH_ALERT

    new = {r.alert.key for r in reports if r.alert and r.alert.new}
    sent = [e for e in health_alerts if e.key.startswith(HEALTH_ALERT)]
    alerts = Report(
        f"Health alerts: {len(sent)}, {len(new)} of them raised by this run",
        [Column("Alert", share=3), Column("Channel", keep=True), Column("Raised", keep=True)],
    )
    for entry in sorted(sent, key=lambda e: e.id):
        alerts.add(entry.title, entry.target, "now" if entry.key in new else "before")
    alerts.print(console, empty="No health alerts: every client is at or over the threshold.")
    console.print("Each is in the outbox: sophia-mcp outbox list")


async def _demo_leads(services: "Services", console: "Console") -> None:
    """The demo's second job: enrich and score every contact, then show the best leads and why."""
    from sophia_mcp.analysis.lead_score import LeadScore
    from sophia_mcp.cli.terminal import Column, Report
    from sophia_mcp.store.demo import DemoStore
    from sophia_mcp.workflows.enrichment import enrich_contacts

    report = await enrich_contacts(services, since=datetime(2000, 1, 1, tzinfo=UTC))
    leads = await DemoStore(services.store).best_leads(services.crm.name)
    best = {contact_id: LeadScore.model_validate_json(score) for contact_id, score in leads}
    found = await services.crm.get_contacts(list(best))
    table = Report(
        f"Top leads of {plural(report.requested, 'contact')} (enriched via {services.enricher.name})",
        [Column("Contact", share=2), Column("Company", share=2), Column("Score", number=True), Column("Why", share=3)],
    )
    for contact_id, score in best.items():
        contact = found.get(contact_id)
        if contact is None:
            continue
        strongest = sorted(score.reasons, key=lambda r: r.points, reverse=True)[:2]
        table.add(
            f"{contact.first_name} {contact.last_name}, {contact.title}",
            contact.company or "",
            f"{score.score:.0f} {score.grade}",
            "; ".join(r.why for r in strongest),
        )
    table.print(
        console, empty="No lead was scored: `sophia-mcp crm enrich --since 2000-01-01` scores the CRM's contacts."
    )
    console.print(
        f"{plural(report.written, 'contact')} updated, {report.unchanged} already up to date, {report.matched} known "
        "to the enricher. Ask the crm server for more: sophia-mcp serve crm"
    )


@calls_app.command("import")
def calls_import(
    paths: Annotated[list[Path], typer.Argument(help="Gong export files (JSON) or folders of them.")],
) -> None:
    """Import calls and transcripts saved from Gong's /v2/calls/extensive and /v2/calls/transcript."""
    from sophia_mcp.workflows.call_import import import_gong_export

    console = _console()

    async def work(services: "Services") -> None:
        with _progress_bar() as bar:
            task = bar.add_task("Importing", total=None)

            async def progress(done: float, total: float, _: str) -> None:
                bar.update(task, completed=done, total=total)

            report = await import_gong_export(services, paths, progress)
        console.print(
            f"{plural(report.calls_new, 'new call')}, {report.calls_updated} updated, {report.calls_unchanged} "
            f"unchanged; {plural(report.transcripts, 'transcript')} from {plural(report.sources, 'file')}."
        )
        for problem in report.problems:
            console.print(f"[yellow]{problem}[/yellow]")
        if report.problems and not (
            report.calls_new or report.calls_updated or report.calls_unchanged or report.transcripts
        ):
            raise typer.Exit(1)

    _with_services(work)


@calls_app.command("list")
def calls_list(
    client: Annotated[str | None, typer.Option(help="Client id, or part of its name.")] = None,
    from_date: Annotated[datetime | None, typer.Option("--from", formats=["%Y-%m-%d"], help="From this day.")] = None,
    to_date: Annotated[
        datetime | None, typer.Option("--to", formats=["%Y-%m-%d"], help="To this day (included).")
    ] = None,
    competitor: Annotated[str | None, typer.Option(help="Only calls where this competitor was mentioned.")] = None,
    unlinked: Annotated[bool, typer.Option("--unlinked", help="Only calls linked to no client.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many, newest first.")] = 20,
) -> None:
    """List calls newest first, with their ids (for `sophia-mcp run analyze-call`), dates and clients."""
    from sophia_mcp.cli.terminal import Column, Report
    from sophia_mcp.domain.calls import CallFilter

    console = _console()

    async def work(services: "Services") -> None:
        days = (from_date.date() if from_date else None, to_date.date() if to_date else None)
        page = await services.calls.list_calls(
            CallFilter.on_days(client, *days, competitor, unlinked=unlinked), limit, None
        )
        table = Report(
            f"{plural(len(page.calls), 'call')}, newest first" + (" (more: narrow it, or raise --limit)"
                                                                 if page.next_cursor else ""),
            [Column("Id", keep=True), Column("Started", keep=True), Column("Client", share=2), Column("Title", share=3),
             Column("Minutes", number=True)],
        )  # fmt: skip
        for call in page.calls:
            table.add(call.id, f"{call.started:%Y-%m-%d %H:%M}", call.client_name or "-", call.title,
                      f"{call.duration_s / 60:.0f}")  # fmt: skip
        narrowed = client or from_date or to_date or competitor or unlinked
        table.print(console, empty="No call matches: widen the filters." if narrowed else "No calls yet: run "
                    "`sophia-mcp demo`, or `sophia-mcp calls import` / `calls sync` for your own.")  # fmt: skip

    _with_services(work)


@calls_app.command("link")
def calls_link(
    call_id: Annotated[str, typer.Argument(help="Gong call id.")],
    client: Annotated[str, typer.Argument(help="The client's id, or its name (case and punctuation aside).")],
) -> None:
    """Link a call to its client by hand (for calls imported with none), and recompute that client's health."""
    from sophia_mcp.workflows.call_health import link_call

    console = _console()

    async def work(services: "Services") -> None:
        report = await link_call(services, call_id, client)
        console.print(f"Call {report.call_id} linked to [bold]{report.client_name}[/bold] ({report.client_id}).")
        if report.previous_client_id and report.previous_client_id != report.client_id:
            console.print(f"It was linked to {report.previous_client_id} before; that client's health was recomputed.")
        if report.health:
            console.print(f"Health: {format_score(report.health.score)}/100. {report.health.explanation}")
        else:
            console.print("The call has not been analysed yet: sophia-mcp run analyze-call " + report.call_id)
        if report.alert:
            console.print(f"Alert {report.alert.key} to {report.alert.channel}: {report.alert.status}")

    _with_services(work)


@calls_app.command("sync")
def calls_sync(
    since: Annotated[
        datetime, typer.Option(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"], help="Pull calls from this date.")
    ],
    until: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"], help="Up to this date (excluded).")
    ] = None,
) -> None:
    """Pull calls and transcripts from Gong into the local store (needs SOPHIA_GONG__BACKEND=gong)."""
    from sophia_mcp.adapters.gong import GongCalls
    from sophia_mcp.workflows.call_sync import sync_calls

    console = _console()

    async def work(services: "Services") -> None:
        if not isinstance(services.calls, GongCalls):
            raise ConfigurationError(
                "calls sync pulls from Gong: set SOPHIA_GONG__BACKEND=gong with SOPHIA_GONG__ACCESS_KEY, "
                "SOPHIA_GONG__ACCESS_KEY_SECRET and SOPHIA_GONG__BASE_URL"
            )
        with _progress_bar() as bar:
            task = bar.add_task("Syncing from Gong", total=None)

            async def progress(done: float, total: float, _: str) -> None:
                bar.update(task, completed=done, total=total or None)

            report = await sync_calls(
                services, services.calls, since.replace(tzinfo=UTC), until and until.replace(tzinfo=UTC), progress
            )
        console.print(
            f"{plural(report.calls_new, 'new call')}, {report.calls_updated} updated, {report.calls_unchanged} "
            f"unchanged; {plural(report.transcripts, 'transcript')} from Gong."
        )
        for problem in report.problems:
            console.print(f"[yellow]{problem}[/yellow]")

    _with_services(work)


@run_app.command("analyze-call")
def run_analyze_call(call_id: Annotated[str, typer.Argument(help="Gong call id.")]) -> None:
    """Analyse one call, update its client's health and alert if it is under the threshold."""
    from sophia_mcp.workflows.call_health import analyze_call

    console = _console()

    async def work(services: "Services") -> None:
        report = await analyze_call(services, call_id)
        analysis = report.analysis
        console.print(f"[bold]{report.client_name or 'No client'}[/bold] · call {report.call_id} · run {report.run_id}")
        if report.unlinked_reason:
            console.print(f"[yellow]{report.unlinked_reason}[/yellow]")
        console.print(
            f"Sentiment: {analysis.sentiment.label} (client side {_signed(analysis.sentiment.external)}); "
            f"our side talked {_percent(analysis.talk.internal_ratio)} of the time"
        )
        for mention in analysis.competitor_mentions:
            console.print(f"  {mention.competitor}: “{mention.text}” ({mention.speaker_name or mention.speaker_id})")
        for risk in analysis.risk_factors:
            console.print(f"  risk {risk.kind}: “{risk.text}”")
        if report.health:
            console.print(f"Health: {format_score(report.health.score)}/100. {report.health.explanation}")
        if report.alert:
            console.print(f"Alert {report.alert.key} to {report.alert.channel}: {report.alert.status}")

    _with_services(work)


@run_app.command("health-monitor")
def run_health_monitor() -> None:
    # typer keeps a docstring's line breaks in --help; one paragraph reads as one.
    """One pass of the client-health monitor: an issue, a meeting request and an alert for each client under the threshold, once per period however often it runs."""  # noqa: E501
    from sophia_mcp.workflows.health_monitor import monitor_health

    console = _console()

    async def work(services: "Services") -> None:
        report = await monitor_health(services)
        console.print(
            f"Health monitor {report.period} (run {report.run_id}): {plural(report.clients, 'client')}, "
            f"{report.healthy} healthy, {report.at_risk} under {format_threshold(report.threshold)}, "
            f"{report.without_health} without a score yet."
        )
        console.print(
            f"New this run: {plural(report.new_issues, 'issue')}, {plural(report.new_meetings, 'meeting request')}, "
            f"{plural(report.new_alerts, 'alert')}; {report.pending} waiting to be sent."
        )
        for row in report.worst[:10]:
            console.print(
                f"  {format_score(row.score, report.threshold):>5}  {row.name}  issue {row.issue or row.issue_status}, "
                f"alert {row.alert_status}"
            )

    _with_services(work)


class Connector(StrEnum):
    gong_calls = "gong-calls"
    hubspot_contacts = "hubspot-contacts"
    slack_bugs = "slack-bugs"
    watch_folder = "watch-folder"


@run_app.command("poll")
def run_poll(connector: Annotated[Connector, typer.Argument(help="Which polling connector.")]) -> None:
    """Run one polling connector now: keep in the inbox what is new since its cursor (`inbox process`, or the
    worker of `schedule` or `hooks`, then acts on it)."""
    from rich.text import Text

    from sophia_mcp.workflows.scheduler import WORKFLOWS

    console = _console()

    async def work(services: "Services") -> None:
        summary = await WORKFLOWS[connector.value](services)
        console.print(Text(f"{connector.value}: " + ", ".join(f"{k} {v}" for k, v in summary.items())), soft_wrap=True)

    _with_services(work)


def _schedules_help() -> str:
    from sophia_mcp.settings import DEFAULT_SCHEDULES

    listed = "; ".join(f"{s.name} ({s.workflow}) {s.spec}" for s in DEFAULT_SCHEDULES)
    return (
        "Run the scheduled workflows until stopped with Ctrl-C, one line per run as it ends. They are "
        f"SOPHIA_SCHEDULES; by default: {listed} (cron in UTC), and the polling connectors that apply "
        "(gong-calls, hubspot-contacts, slack-bugs, watch-folder: see the README)."
    )


def _run_line(run: "ScheduleRun") -> str:
    took = f"{(run.finished_at - run.started_at).total_seconds():.1f} s" if run.finished_at else "still running"
    did = run.error or ", ".join(f"{k} {v}" for k, v in (run.summary or {}).items()) or "nothing to do"
    missed = f", standing for {plural(run.missed, 'missed run')}" if run.missed else ""
    return f"{run.schedule}: {run.status} in {took} (due {run.due_at:%Y-%m-%d %H:%M} UTC{missed}): {did}"


@app.command(help=_schedules_help(), short_help="Run the scheduled workflows until stopped, a line per run.")
def schedule(
    once: Annotated[bool, typer.Option("--once", help="Run what is due now, then stop.")] = False,
) -> None:
    from rich.text import Text

    from sophia_mcp.domain.times import utcnow
    from sophia_mcp.workflows.events import InboxWorker
    from sophia_mcp.workflows.scheduler import Scheduler, list_schedules, sync_schedules

    console = _console()

    async def work(services: "Services") -> None:
        scheduler = Scheduler(services, finished=lambda run: console.print(Text(_run_line(run)), soft_wrap=True))
        specs = services.settings.schedules
        if once:
            await sync_schedules(services, specs, utcnow())
            if not await scheduler.run_due():
                upcoming = [s for s in await list_schedules(services) if s.enabled]
                soonest = min(upcoming, key=lambda s: s.next_run_at, default=None)
                when = f"; next: {soonest.name} at {soonest.next_run_at:%Y-%m-%d %H:%M} UTC" if soonest else ""
                console.print(f"Nothing is due now{when}.")
            return
        console.print(
            f"Running {plural(len(specs), 'schedule')} ({', '.join(s.name + ' ' + s.spec for s in specs)}); "
            "each run is a line here as it ends. Ctrl-C stops."
        )
        # Events the polling connectors keep, and any a hooks server kept and did not finish, are processed here.
        async with anyio.create_task_group() as group:
            group.start_soon(InboxWorker(services).serve)
            await scheduler.serve(specs)

    try:
        _with_services(work)
    except KeyboardInterrupt:
        console.print("Stopped.")


@crm_app.command("enrich")
def crm_enrich(
    contact_ids: Annotated[list[str] | None, typer.Argument(help="Contact ids; or use --since.")] = None,
    since: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"], help="Every contact changed in the CRM since then."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Ask the enricher again for contacts it answered recently.")] = False,
) -> None:
    """Enrich contacts, score them as leads and write back what changed; safe to re-run after a failure."""
    from sophia_mcp.workflows.enrichment import enrich_contacts

    console = _console()
    if not contact_ids and since is None:  # said before anything starts
        _say("Give contact ids (sophia-mcp crm enrich 10123405707 ...), or --since YYYY-MM-DD for every contact "
             "changed in the CRM since then")  # fmt: skip
        raise typer.Exit(2)

    async def work(services: "Services") -> None:
        with _progress_bar() as bar:
            task = bar.add_task(f"Enriching via {services.enricher.name} into {services.crm.name}", total=None)

            async def progress(done: float, total: float, _: str) -> None:
                bar.update(task, completed=done, total=total)

            report = await enrich_contacts(
                services, contact_ids or None, since and since.replace(tzinfo=UTC), force=force, progress=progress
            )
        console.print(
            f"{plural(report.requested, 'contact')}: {report.written} written, {report.unchanged} unchanged, "
            f"{report.failed} failed; {report.matched} known to the enricher ({report.reused} from earlier answers). "
            f"Run {report.run_id}."
        )
        for outcome in report.outcomes:
            if outcome.status == "failed":
                _say(f"{outcome.contact_id}: {outcome.error}", "yellow", console)
        if report.failed:
            raise typer.Exit(1)

    _with_services(work)


@crm_app.command("import-firmographics")
def crm_import_firmographics(
    path: Annotated[Path, typer.Argument(help="CSV with a header: domain, name, industry, employees, ...")],
) -> None:
    """Load firmographics (one firm per row, by domain) for the local enricher; rows update firms already known."""
    from sophia_mcp.store.firmographics import read_firmographics_csv, save_firmographics

    console = _console()

    async def work(services: "Services") -> None:
        organizations, problems = read_firmographics_csv(path)

        def save() -> int:
            with services.store.transaction() as conn:
                return save_firmographics(conn, organizations, source=f"csv:{path.name}")

        saved = await services.store.run(save)
        console.print(f"{plural(saved, 'firm')} imported from {path}.")
        for problem in problems:
            console.print(f"[yellow]{problem}[/yellow]")
        if problems and not saved:
            raise typer.Exit(1)

    _with_services(work)


@kb_app.command("ingest")
def kb_ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files, or folders to walk, under SOPHIA_KNOWLEDGE__ROOTS.")],
    type: Annotated[
        str | None,
        typer.Option(
            help="Document type, e.g. playbook, product_note, policy; by default the type it had, else document."
        ),
    ] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeat for several).")] = None,
) -> None:
    """Ingest documents (PDF, DOCX, HTML, Markdown, text); the same content again changes nothing."""
    from sophia_mcp.analysis.documents import FORMAT_OF_SUFFIX
    from sophia_mcp.workflows.knowledge import ingest_file, ingested_batch

    console = _console()
    files = [p for path in paths for p in (sorted(path.rglob("*")) if path.is_dir() else [path])
             if p.is_file() or not p.exists()]  # fmt: skip
    files = [f for f in files if not f.exists() or f.suffix.lower() in FORMAT_OF_SUFFIX or f in paths]

    async def work(services: "Services") -> None:
        failed = 0
        for file in files:
            try:
                report = await ingest_file(services, str(file.absolute()), name_folders=True, type=type, tags=tag or [])
            except SophiaError as exc:
                failed += 1
                _say(f"{file}: {exc}", "yellow", console)
                continue
            doc = report.document
            console.print(f"{report.status:9s} {doc.title} ({plural(doc.chunk_count, 'chunk')}) {doc.id}")
        await ingested_batch(services)
        if failed:
            raise typer.Exit(1)

    _with_services(work)


@kb_app.command("search")
def kb_search(
    query: Annotated[str, typer.Argument(help="A question or keywords.")],
    limit: Annotated[int, typer.Option(min=1, max=50)] = 5,
    type: Annotated[list[str] | None, typer.Option(help="Only this document type (repeat for several).")] = None,
) -> None:
    """Search the knowledge base and print the passages with their citations."""
    from sophia_mcp.domain.knowledge import DocumentFilter
    from sophia_mcp.workflows.knowledge import search

    console = _console()

    async def work(services: "Services") -> None:
        hits = await search(services, query, DocumentFilter(types=type or None), limit)
        if not hits:
            console.print("Nothing found.")
        for number, hit in enumerate(hits, 1):
            console.print(f"[bold]{number}. {hit.citation}[/bold]  ({hit.type}, score {hit.score:.4f})")
            console.print(hit.text, markup=False, highlight=False)
            console.print()

    _with_services(work)


EvidenceSource = StrEnum("EvidenceSource", {name: name for name in SOURCES})  # type: ignore[misc]
NO_MODEL = (
    "No model is configured to write an answer (SOPHIA_OPENAI__API_KEY and SOPHIA_OPENAI__BASE_URL choose one); "
    "the evidence stands alone."
)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in plain words.")],
    client: Annotated[
        str | None, typer.Option(help="Narrow calls, trend and mentions to one client (id or name).")
    ] = None,
    source: Annotated[
        list[EvidenceSource] | None, typer.Option(help="Only this source (repeat for several; default all).")
    ] = None,
) -> None:
    """Answer a business question from the warehouse, the calls, the knowledge base and the web at once: the evidence with numbered citations, and an answer citing them when a model is configured."""  # noqa: E501
    from sophia_mcp.workflows.clients import resolve_client
    from sophia_mcp.workflows.strategic import strategic_query

    console = _console()

    async def work(services: "Services") -> None:
        client_id = (await resolve_client(services, client)).id if client else None
        sources = [cast(SourceName, s.value) for s in source] if source else None
        writers = [services.writer] if services.writer else []
        if sources is None or "knowledge" in sources:
            # A command starts cold: the embedding model loads before the sources' time budgets start, not in one.
            await services.embedder.embed([question])
        _print_answer(console, await strategic_query(services, question, client_id, sources, writers))

    _with_services(work)


def _print_answer(console: "Console", result: "StrategicAnswer") -> None:
    """The answer (or why there is none), then each citation with its quote, then the gaps; at a terminal, lines
    wrap between words (piped, the console has no width and nothing folds)."""
    from rich.text import Text

    evidence, scope = result.evidence, result.evidence.scope
    whose = scope.client_name or "every client"
    named = f"; competitors named: {', '.join(scope.competitors)}" if scope.competitors else ""
    console.print(Text(f"Read as: {whose}, {scope.period}{named}.", style="dim"))
    console.print()
    if result.answer:
        console.print(Text(f"Answer (written by {result.synthesized_by}):", style="bold"))
        console.print(Text(result.answer))
    elif evidence.citations:
        console.print(Text(NO_MODEL, style="yellow"))
    else:
        console.print(Text("No source had anything on this question.", style="yellow"))
    for citation in evidence.citations:
        console.print()
        console.print(Text(f"[{citation.id}] {citation.title} ({citation.locator})", style="bold"))
        console.print(Text(citation.quote))
    if evidence.gaps:
        console.print()
        for gap in evidence.gaps:
            console.print(Text(f"Gap: {gap}", style="yellow"))


class OutboxStatus(StrEnum):
    pending = "pending"
    sending = "sending"
    delivered = "delivered"
    failed = "failed"


@outbox_app.command("list")
def outbox_list(
    status: Annotated[OutboxStatus | None, typer.Option(help="Only entries in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
) -> None:
    """Show the newest outbox entries: alerts, issues and meetings, each with its delivery state."""
    from sophia_mcp.cli.terminal import Column, Report

    console = _console()

    async def work(services: "Services") -> None:
        entries = await services.outbox.list(status.value if status else None, limit)
        table = Report(
            f"The newest {plural(len(entries), 'outbox entry', 'outbox entries')}"
            + (f" {status.value}" if status else ""),
            [Column("Id", number=True), Column("Status", keep=True), Column("To", keep=True), Column("Title", share=3),
             Column("Created", keep=True)],
        )  # fmt: skip
        for e in entries:
            table.add(str(e.id), e.status, e.target, e.title, f"{e.created_at:%Y-%m-%d %H:%M}")
        if status:
            empty = f"No outbox entry is {status.value}; `sophia-mcp outbox list` shows them all."
        else:
            empty = (
                "The outbox is empty: `sophia-mcp demo` raises the demo's alerts, `sophia-mcp run health-monitor` "
                "those due now."
            )
        table.print(console, empty=empty)

    _with_services(work)


class InboxStatus(StrEnum):
    pending = "pending"
    working = "working"
    done = "done"
    ignored = "ignored"
    dead = "dead"


class InboxSource(StrEnum):
    slack = "slack"
    hubspot = "hubspot"
    linear = "linear"
    gong = "gong"
    folder = "folder"


def _inbox_holds(counts: dict[str, int], empty: str = "none yet") -> str:
    """How many events the inbox holds in each state: "1 dead, 3 done"."""
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or empty


def _inbox_outcome(event: "InboxEvent") -> str:
    if event.last_error:
        return event.last_error
    if event.result is None:
        return ""
    if "ignored" in event.result:  # the status says it was ignored; this says why
        return str(event.result["ignored"])
    return ", ".join(f"{k} {v}" for k, v in event.result.items() if not isinstance(v, dict | list))


@inbox_app.command("list")
def inbox_list(
    status: Annotated[InboxStatus | None, typer.Option(help="Only events in this state (dead: given up on).")] = None,
    source: Annotated[InboxSource | None, typer.Option(help="Only events from this source.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
) -> None:
    """Show the newest events received (webhooks and polling connectors): what each was, its state, attempts and
    what came of it."""
    from sophia_mcp.cli.terminal import Column, Report

    console = _console()

    async def work(services: "Services") -> None:
        events = await services.inbox.list(status.value if status else None, source.value if source else None,
                                           limit=limit)  # fmt: skip
        counts = await services.inbox.counts()
        summary = _inbox_holds(counts)
        table = Report(
            f"The newest{' ' + status.value if status else ''} events{' from ' + source.value if source else ''}: "
            f"{len(events)} (the inbox holds {summary})",
            # The kind names its source (slack.message): the outcome gets the width a source column would take.
            [Column("Id", number=True), Column("Kind", keep=True), Column("Status", keep=True),
             Column("Tries", number=True), Column("Received", keep=True), Column("Outcome", share=3)],
        )  # fmt: skip
        for e in events:
            table.add(str(e.id), e.kind, e.status, str(e.attempts), f"{e.received_at:%m-%d %H:%M}", _inbox_outcome(e))
        empty = (
            "No event has been received: webhooks arrive at /hooks/slack, /hooks/hubspot, /hooks/linear and "
            "/hooks/gong of `sophia-mcp hooks` (or `serve composite --transport http`); connectors poll on "
            "`sophia-mcp schedule`."
        )
        if status or source:
            empty = "No event matches; `sophia-mcp inbox list` shows them all."
        table.print(console, empty=empty)

    _with_services(work)


@inbox_app.command("retry")
def inbox_retry(event_ids: Annotated[list[int], typer.Argument(help="Ids of dead events (inbox list).")]) -> None:
    """Give dead events a fresh set of attempts; the next worker (hooks, schedule, inbox process) takes them."""
    console = _console()

    async def work(services: "Services") -> None:
        count = await services.inbox.requeue(event_ids)
        console.print(f"{plural(count, 'dead event')} of {len(event_ids)} will be tried again.")

    _with_services(work)


@inbox_app.command("process")
def inbox_process() -> None:
    """Process every event due now, here, then stop (a hooks server or `sophia-mcp schedule` does this as they
    arrive)."""
    from sophia_mcp.workflows.events import InboxWorker

    console = _console()

    async def work(services: "Services") -> None:
        count = await InboxWorker(services).drain()
        counts = await services.inbox.counts()
        console.print(f"Processed {plural(count, 'event')}; the inbox now holds {_inbox_holds(counts, 'nothing')}.")

    _with_services(work)


@outbox_app.command("deliver")
def outbox_deliver() -> None:
    """Deliver every pending side effect now."""
    from sophia_mcp.workflows.delivery import deliver_pending

    console = _console()

    async def work(services: "Services") -> None:
        entries = await deliver_pending(services)
        delivered = sum(1 for e in entries if e.status == "delivered")
        console.print(f"Delivered {delivered} of {len(entries)} pending entries.")

    _with_services(work)


def _doctor_store_file(settings: "Settings", console: "Console") -> bool:
    """The SQLite store's line in `doctor`: its schema version and whether its pages are sound."""
    from rich.markup import escape

    from sophia_mcp.store.database import Store

    store = Store(settings.store_path)
    try:
        version = store.schema_version
        damage = store.integrity_problems()
    except SophiaError as exc:
        console.print(f"[red]Store[/red] {escape(str(exc))}")
        return False
    finally:
        store.close()
    if damage:
        found = "; ".join(damage[:3]) + (f"; and {len(damage) - 3} more" if len(damage) > 3 else "")
        console.print(
            f"[red]Store[/red] {settings.store_path} is damaged (SQLite's quick_check: {escape(found)}); restore "
            "it from a backup, or salvage what is readable with sqlite3's .recover"
        )
        return False
    console.print(f"[green]Store[/green] {settings.store_path} (schema version {version}, pages sound)")
    return True


def _doctor_database(settings: "Settings", console: "Console") -> bool:
    """The PostgreSQL store's line in `doctor`: reachable, its server's version, the schema version (migrating it
    if it is behind, as any start does). The URL is shown with its password masked."""
    from rich.markup import escape

    from sophia_mcp.store.engine import open_store
    from sophia_mcp.store.store_url import mask_url

    url = settings.store.url.get_secret_value() if settings.store.url else ""
    try:
        store = open_store(settings.store_path, settings.store.url)
    except SophiaError as exc:
        console.print(f"[red]Store[/red] {escape(str(exc))}")
        return False
    try:
        version = store.schema_version
        server = store.server_version()
    except SophiaError as exc:
        console.print(f"[red]Store[/red] {escape(str(exc))}")
        return False
    finally:
        store.close()
    console.print(
        f"[green]Store[/green] {escape(server)} at {escape(mask_url(url))} (reachable, schema version {version})"
    )
    return True


@app.command()
def doctor() -> None:
    """Show which backend serves each port, where data lives, and check what is configured."""
    from pydantic import SecretStr
    from rich.markup import escape
    from rich.table import Table

    from sophia_mcp.app.backends import backend_choices, build_services, check_real_services

    console = _console()
    settings = _settings()
    table = Table(title="Ports")
    table.add_column("Port")
    table.add_column("Backend")
    for port, backend in backend_choices(settings).items():
        if port == "WebSearch" and backend == "local":  # there is no local web: the strategic query names it a gap
            shown = "off (set SOPHIA_WEB_SEARCH__BACKEND=tavily or perplexity, with its API key)"
        else:
            shown = backend if backend != "local" else "local (embedded)"
        table.add_row(port, shown)
    console.print(table)

    services = Table(title="Integrations")
    for column in ("Service", "Backend", "Base URL", "Credentials"):
        services.add_column(column)
    for name, section in settings.integrations().items():
        secrets = [field for field, value in section if isinstance(value, SecretStr)]
        services.add_row(name, section.backend, section.base_url or "-", ", ".join(secrets) or "none set")
    console.print(services)

    ok, warnings = True, 0
    ok = (
        _doctor_database(settings, console) if settings.store.url is not None else _doctor_store_file(settings, console)
    )
    try:
        built = build_services(settings)
    except SophiaError as exc:
        ok = False
        console.print(f"[red]Configuration[/red] {exc}")
    else:

        async def check() -> "tuple[list[ServiceCheck], dict[str, int]]":
            try:
                return await check_real_services(built), await built.inbox.counts()
            finally:
                await built.aclose()
                built.close()

        checks, inbox = anyio.run(check)
        for port, fine, problem, warning in checks:
            ok = ok and problem is None
            if problem is not None:
                console.print(f"[red]{port}[/red] {escape(problem)}")
            elif warning is not None:
                warnings += 1
                console.print(f"[yellow]{port}[/yellow] {escape(warning)}")
            else:
                console.print(f"[green]{port}[/green] {escape(fine or '')}")
        held = _inbox_holds(inbox)
        if inbox.get("dead"):
            warnings += 1
            console.print(
                f"[yellow]Inbox[/yellow] events from outside: {held}; {plural(inbox['dead'], 'dead event')} gave up "
                "after the last attempt: `sophia-mcp inbox list --status dead` shows why, `inbox retry ID` tries again"
            )
        else:
            console.print(f"[green]Inbox[/green] events from outside: {held}")
    if not ok:
        raise typer.Exit(1)
    # A warning is something that works without what failed (Redis down: a cache miss): still usable, exit 0.
    noted = f", with {plural(warnings, 'warning')} above" if warnings else ""
    console.print(f"[green]Everything configured can be used{noted}.[/green]")
