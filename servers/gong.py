"""The gong server: calls and transcripts, and the call-analysis → client-health → alert workflow."""

from datetime import datetime
from typing import Annotated, Any

from mcp.server.mcpserver import Context, Resolve
from mcp.server.mcpserver.prompts.base import Message, UserMessage
from pydantic import Field

from sophia_mcp.analysis.health import format_score, format_threshold
from sophia_mcp.app.services import Services
from sophia_mcp.domain.calls import Affiliation, Call, CallFilter, Party, Transcript
from sophia_mcp.domain.cursors import decode_cursor, encode_cursor
from sophia_mcp.domain.model import Model
from sophia_mcp.domain.plural import plural
from sophia_mcp.domain.results import CallAnalysis
from sophia_mcp.errors import InvalidInput, NotFound
from sophia_mcp.mcp.sampling import analyst_for
from sophia_mcp.mcp.server import (
    DEMO_HINT,
    CalendarDate,
    Cursor,
    EmptyNote,
    SophiaServer,
    complete_client_names,
    none_yet,
    server_of,
    services_of,
    tool_hints,
)
from sophia_mcp.ports.analyst import Analyst
from sophia_mcp.settings import Settings
from sophia_mcp.workflows.call_health import CallHealthReport, LinkReport
from sophia_mcp.workflows.call_health import analyze_call as analyze_call_workflow
from sophia_mcp.workflows.call_health import link_call as link_call_workflow

INSTRUCTIONS = """\
Sales and customer-success calls recorded by Gong, with their transcripts. Find calls with list_calls
(by client, dates or a competitor named on the call), read one with get_call and get_transcript, and run
analyze_call to score a call's sentiment, talk ratio, competitor mentions and risks, update the client's
health score (0-100) and alert the health channel when a client falls under the threshold."""

CallId = Annotated[
    str,
    Field(
        pattern=r"^\d{1,20}$",
        max_length=20,
        description="Gong call id: up to 20 digits, as list_calls returns it.",
        examples=["7782342274025937895"],
    ),
]


class CallSummary(Model):
    id: str
    title: str
    started: datetime
    duration_s: int
    client_id: str | None
    client_name: str | None
    unlinked_reason: str | None = Field(default=None, description="Why the call has no client, when it has none.")
    url: str | None


class CallList(Model):
    calls: list[CallSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page.")
    note: EmptyNote = None


class CallDetail(Model):
    call: Call
    analysis: CallAnalysis | None = Field(description="The latest analysis of this call, if it has been analysed.")


class TranscriptLine(Model):
    speaker_id: str
    speaker_name: str | None
    affiliation: Affiliation
    topic: str | None
    start_ms: int
    end_ms: int
    text: str


class TranscriptPage(Model):
    call_id: str
    total_sentences: int
    lines: list[TranscriptLine]
    next_cursor: str | None = Field(description="Pass as `cursor` for the following sentences; null at the end.")


def _summary(call: Call) -> CallSummary:
    return CallSummary(
        id=call.id,
        title=call.title,
        started=call.started,
        duration_s=call.duration_s,
        client_id=call.client_id,
        client_name=call.client_name,
        unlinked_reason=call.unlinked_reason,
        url=call.url,
    )


async def list_calls(
    ctx: Context,
    client: Annotated[
        str | None, Field(max_length=200, description="Client id, or part of the client's name (case-insensitive).")
    ] = None,
    from_date: Annotated[CalendarDate | None, Field(description="Earliest call date, YYYY-MM-DD (inclusive).")] = None,
    to_date: Annotated[CalendarDate | None, Field(description="Latest call date, YYYY-MM-DD (inclusive).")] = None,
    competitor: Annotated[
        str | None,
        Field(max_length=100, description="Only calls where this competitor (name or alias) was mentioned."),
    ] = None,
    unlinked: Annotated[
        bool, Field(description="Only calls linked to no client (each says why); link_call links one.")
    ] = False,
    limit: Annotated[int | None, Field(ge=1, le=100, description="Calls per page, 1-100; null: 20.")] = 20,
    cursor: Cursor = None,
) -> CallList:
    """List recorded calls, optionally for one client, a date range, a competitor mentioned on the call, or only
    the calls linked to no client. Returns call ids, titles, dates and clients, newest first (in Gong's order when
    served live from Gong); page with `cursor`."""
    if from_date and to_date and from_date > to_date:
        raise InvalidInput(f"from_date {from_date} is after to_date {to_date}; swap them or drop one")
    if unlinked and client:
        raise InvalidInput("unlinked lists the calls with no client; drop client, or unlinked")
    page = await services_of(ctx).calls.list_calls(
        CallFilter.on_days(client, from_date, to_date, competitor, unlinked=unlinked), limit or 20, cursor
    )
    everything = not (client or from_date or to_date or competitor or unlinked or cursor)
    how = f"{DEMO_HINT}; `sophia-mcp calls import` or `calls sync` brings your own from Gong"
    note = none_yet(page.calls, everything, "calls", how)
    return CallList(calls=[_summary(c) for c in page.calls], next_cursor=page.next_cursor, note=note)


async def get_call(ctx: Context, call_id: CallId) -> CallDetail:
    """Get one call's details: title, time, duration, client, every party (name, title, internal or external)
    and, if the call has been analysed, that analysis."""
    services = services_of(ctx)
    call = await services.calls.get_call(call_id)
    return CallDetail(call=call, analysis=await services.warehouse.get_analysis(call_id))


async def get_transcript(
    ctx: Context,
    call_id: CallId,
    cursor: Cursor = None,
    limit: Annotated[int | None, Field(ge=1, le=500, description="Sentences per page, 1-500; null: 200.")] = 200,
) -> TranscriptPage:
    """Read a call's transcript sentence by sentence, with speaker names, sides (Internal = our team, External =
    the client) and timings in milliseconds. Long calls come in pages: follow `next_cursor`."""
    call, transcript = await _call_and_transcript(services_of(ctx), call_id)
    start = _offset(cursor)
    speakers: dict[str, Party] = {p.speaker_id: p for p in call.parties if p.speaker_id}
    sentences = [(m, s) for m in transcript.monologues for s in m.sentences]
    if start > len(sentences):
        told = plural(len(sentences), "sentence")
        raise InvalidInput(f"cursor is past the end of this transcript ({told}); omit it to start over")
    end = start + (limit or 200)
    lines: list[dict[str, Any]] = []  # only the page's: a long call's other sentences are counted, not built
    for m, s in sentences[start:end]:
        party = speakers.get(m.speaker_id)
        lines.append({
            "speaker_id": m.speaker_id, "speaker_name": party.name if party else None,
            "affiliation": party.affiliation if party else "Unknown", "topic": m.topic, "start_ms": s.start_ms,
            "end_ms": s.end_ms, "text": s.text,
        })  # fmt: skip
    # The page validated in one call of pydantic-core: quicker than a model built line by line.
    return TranscriptPage.model_validate({
        "call_id": call_id, "total_sentences": len(sentences), "lines": lines,
        "next_cursor": encode_cursor("transcript", end) if end < len(sentences) else None,
    })  # fmt: skip


def _offset(cursor: str | None) -> int:
    return int(decode_cursor(cursor, "transcript", int)[0]) if cursor else 0


async def analyze_call(
    ctx: Context,
    call_id: CallId,
    analyst: Annotated[Analyst, Resolve(analyst_for)],  # filled by the SDK (the client's model, maybe), not an argument
) -> CallHealthReport:
    """Analyse a call and update its client's health: sentiment per speaker and for the client side, talk ratio,
    longest monologue, questions, competitor mentions with quotes, risk factors (pricing, churn intent, budget,
    implementation, competitor evaluation). Recomputes the client's health score (0-100, with the reasons) and
    alerts the health channel when it crosses under the threshold, falls a further step, or falls again after
    recovering; safe to repeat. A call with no client is still analysed: at_risk is null and unlinked_reason says
    why (link_call links it)."""
    server = server_of(ctx)
    await server.log(ctx, "info", f"Analysing call {call_id}")

    async def progress(done: float, total: float, message: str) -> None:
        await ctx.report_progress(done, total, message)

    report = await analyze_call_workflow(server.services, call_id, progress, analyst=analyst)
    if report.unlinked_reason:
        await server.log(ctx, "warning", f"Call {call_id} has no client: {report.unlinked_reason}")
    if report.at_risk and report.health is not None:
        await server.log(
            ctx,
            "warning",
            f"{report.client_name or report.client_id} is at risk: health "
            f"{format_score(report.health.score, report.threshold)}/100 "
            f"(threshold {format_threshold(report.threshold)})",
        )
    return report


async def link_call(
    ctx: Context,
    call_id: CallId,
    client: Annotated[
        str,
        Field(
            min_length=1,
            max_length=200,
            description="The client's id, or its name (case and punctuation "
            "aside); the CRM's client ids are listed by the crm server.",
        ),
    ],
) -> LinkReport:
    """Link a call to its client by hand, for a call that list_calls(unlinked=true) shows with no client (or one
    linked to the wrong client). Recomputes the client's health with the call and alerts the health channel if it
    changed for the worse; the client it was linked to before gets its health recomputed too. Safe to repeat."""
    return await link_call_workflow(services_of(ctx), call_id, client)


async def call_resource(call_id: str, ctx: Context) -> str:
    """A call's details and latest analysis, as JSON."""
    detail = await get_call(ctx, call_id)
    return detail.model_dump_json(indent=2)


async def transcript_resource(call_id: str, ctx: Context) -> str:
    """A call's transcript as readable text: one line per sentence, with time, speaker and side."""
    return await _transcript_text(services_of(ctx), call_id)


async def _call_and_transcript(services: Services, call_id: str) -> tuple[Call, Transcript]:
    return await services.calls.get_call(call_id), await services.calls.get_transcript(call_id)


async def _transcript_text(services: Services, call_id: str) -> str:
    call, transcript = await _call_and_transcript(services, call_id)
    speakers = {p.speaker_id: p for p in call.parties if p.speaker_id}
    out = [f"{call.title} ({call.started:%Y-%m-%d %H:%M} UTC, {call.duration_s // 60} min)"]
    for monologue in transcript.monologues:
        party = speakers.get(monologue.speaker_id)
        who = f"{party.name or monologue.speaker_id} ({party.affiliation})" if party else "Unknown speaker"
        for sentence in monologue.sentences:
            seconds = sentence.start_ms // 1000
            out.append(f"[{seconds // 60:02d}:{seconds % 60:02d}] {who}: {sentence.text}")
    return "\n".join(out)


async def run_resource(run_id: str, ctx: Context) -> str:
    """A workflow run as JSON: its status, error if any, and each step with its timing and outcome."""
    services = services_of(ctx)
    record = await services.runs.get(run_id)
    if record is None:
        raise NotFound(f"No run with id {run_id!r}; analyze_call returns the run_id of the run it made.")
    return record.model_dump_json(indent=2)


async def review_call(
    ctx: Context,
    call_id: Annotated[CallId, Field(description="Gong call id to review.")],
    focus: Annotated[
        str, Field(max_length=500, description="What to pay most attention to, e.g. pricing or next steps.")
    ] = "",
) -> list[Message]:
    """Review one call as a customer-success lead would: risks, competitor pressure, commitments, next steps."""
    transcript = await _transcript_text(services_of(ctx), call_id)
    ask = (
        "Review this customer call as a customer-success lead. Call analyze_call with the call id "
        f"{call_id} for sentiment, talk ratio, competitor mentions and the client's health, then write: "
        "1) a three-sentence summary, 2) risks to the account with quotes, 3) competitor pressure, "
        "4) what we committed to, 5) the next steps you recommend."
    )
    if focus.strip():
        ask += f" Pay particular attention to: {focus.strip()}."
    return [UserMessage(ask), UserMessage(f"Transcript:\n{transcript}")]


def review_client_calls(
    client: Annotated[str, Field(max_length=200, description="Client name or id.")],
    days: Annotated[int, Field(ge=1, le=365, description="How many days back to look.")] = 30,
) -> list[Message]:
    """Review a client's recent calls and its health trend, to prepare for an account review."""
    return [
        UserMessage(
            f"Prepare an account review for {client}. Use list_calls with client={client!r} and from_date set "
            f"{days} days before today, run analyze_call on each call that has no analysis yet, and report the "
            "client's health score with its reasons, how sentiment moved over time, competitors mentioned, "
            "and the three actions most likely to keep the account."
        )
    ]


def _complete_call_ids(services: Services, typed: str, _: dict[str, str]) -> list[str]:
    return services.local_calls.call_ids(typed, 100)


def register(server: SophiaServer, prefix: str = "") -> None:
    """Declare the gong tools, resources, prompts and completions on `server` (tool names get `prefix`)."""
    read = tool_hints
    server.declare_tool(list_calls, name="list_calls", prefix=prefix, annotations=read("List calls", read_only=True))
    server.declare_tool(get_call, name="get_call", prefix=prefix, annotations=read("Get call", read_only=True))
    server.declare_tool(
        get_transcript, name="get_transcript", prefix=prefix, annotations=read("Get call transcript", read_only=True)
    )
    server.declare_tool(
        analyze_call,
        name="analyze_call",
        prefix=prefix,
        annotations=read("Analyse call and update client health", read_only=False, idempotent=True),
    )
    server.declare_tool(
        link_call,
        name="link_call",
        prefix=prefix,
        annotations=read("Link call to client", read_only=False, idempotent=True),
    )
    server.declare_resource("gong://calls/{call_id}", name="call", title="Gong call", mime_type="application/json")(
        call_resource
    )
    server.declare_resource(
        "gong://calls/{call_id}/transcript", name="call_transcript", title="Call transcript", mime_type="text/plain"
    )(transcript_resource)
    server.declare_resource("sophia://runs/{run_id}", name="run", title="Workflow run", mime_type="application/json")(
        run_resource
    )
    server.prompt(name="review_call", title="Review a call")(review_call)
    server.prompt(name="review_client_calls", title="Review a client's recent calls")(review_client_calls)
    for ref in ("review_call", "gong://calls/{call_id}", "gong://calls/{call_id}/transcript"):
        server.add_completer(ref, "call_id", _complete_call_ids)
    server.add_completer("review_client_calls", "client", complete_client_names)


def create_server(settings: Settings | None = None, **kwargs: Any) -> SophiaServer:
    server = SophiaServer("sophia-gong", INSTRUCTIONS, settings, **kwargs)
    register(server)
    return server
