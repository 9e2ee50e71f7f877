"""The composite server: every domain server's tools under its prefix, and the higher-level workflows.

The domain servers' `register` functions declare their tools, resources, prompts and completions here again
under prefixes (`gong_list_calls`, `crm_get_contact`, ...): the same functions, no copies.
"""

import json
import logging
from typing import Annotated, Any, Literal

from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context, Resolve, Sample
from mcp.server.mcpserver.prompts.base import Message, UserMessage
from mcp.server.mcpserver.resolve import Elicit
from mcp_types import CreateMessageResult, TextContent
from pydantic import Field

from sophia_mcp.adapters.sampling_writer import sample_of
from sophia_mcp.domain.designed import DesignedWorkflow, DryRun, Name, WorkflowSpec
from sophia_mcp.domain.incidents import Incident, IncidentStatus
from sophia_mcp.domain.model import Model
from sophia_mcp.errors import InvalidInput, NotFound
from sophia_mcp.mcp.sampling import Asking, clients_model, unasked, writers
from sophia_mcp.mcp.server import (
    SlackChannel,
    SophiaServer,
    complete_client_names,
    offers,
    progress_of,
    says_errors,
    server_of,
    services_of,
    tool_hints,
)
from sophia_mcp.ports.writer import Writer
from sophia_mcp.servers import alerts, crm, gong, knowledge, linear
from sophia_mcp.servers.crm import Declined
from sophia_mcp.settings import Settings
from sophia_mcp.workflows import analytics, churn, competitive, dashboard, designed, healing, strategic
from sophia_mcp.workflows.analytics import MetricArgs, TableResult, WarehouseSchema
from sophia_mcp.workflows.churn import ChurnReport
from sophia_mcp.workflows.clients import resolve_client
from sophia_mcp.workflows.competitive import IntelReport
from sophia_mcp.workflows.dashboard import DashboardReport
from sophia_mcp.workflows.strategic import Evidence, SourceName, StrategicAnswer

log = logging.getLogger(__name__)
NO_ANSWER: Any = None  # never used: the SDK fills a Resolve(...) parameter before the tool runs

DASHBOARD_UI = "ui://sophia/dashboard"
MCP_APP = "text/html;profile=mcp-app"
DOMAINS = {"gong": gong, "crm": crm, "knowledge": knowledge, "alerts": alerts, "linear": linear}

INSTRUCTIONS = """\
sophia: a revenue team's calls, CRM, knowledge base, alerts and issues, and workflows over them.
- A question about the business ("which clients are at risk and why?", "what is AppFolio doing?") ->
  strategic_query: the warehouse, call insights, the knowledge base and the web at once, with citations.
- One number (clients at risk, health trend, ARR by segment, competitor mentions) -> run_metric; anything
  else the warehouse holds -> query_warehouse (one read-only SELECT; describe_warehouse lists its tables and
  columns).
- A call -> gong_analyze_call (sentiment, competitors, risks, client health, an alert when at risk).
- A contact -> crm_enrich_contact (enrich, update the CRM, score the lead); many -> crm_enrich_contacts.
- Client health for everyone now -> alerts_run_health_monitor (issue, meeting and alert per at-risk client).
- A document or text to keep -> knowledge_ingest_document / knowledge_ingest_text; to look something up ->
  knowledge_search_documents.
- A bug report -> linear_report_bug; an issue -> linear_create_issue.
- A dashboard ("show me client health and competitor mentions") -> build_dashboard.
- What competitors are doing, refreshed now -> competitive_intelligence (it also runs daily).
- A workflow asked for in words ("every Monday, alert #cs-leads of clients under 50") -> design_workflow,
  then dry_run_workflow, then deploy_workflow; list_workflows, get_workflow, disable_workflow.
- Which clients may leave, and acting on it -> predict_churn (weekly too); a renewal or loss -> record_outcome.
Tools of one area carry its prefix: gong_, crm_, knowledge_, alerts_, linear_."""


MetricName = Literal["at_risk_clients", "client_health", "health_trend", "revenue_by_segment", "competitor_mentions"]
RowLimit = Annotated[
    int | None, Field(ge=1, le=analytics.ROW_LIMIT, description="Most rows to return; null: the default.")
]


async def run_metric(
    ctx: Context,
    name: Annotated[
        MetricName, Field(description="at_risk_clients, health_trend, revenue_by_segment or competitor_mentions.")
    ],
    threshold: Annotated[
        float | None, Field(ge=0, le=100, description="Health threshold; default the setting.")
    ] = None,
    days: Annotated[int, Field(ge=1, le=3650, description="How far back (trend, mentions).")] = 90,
    client_id: Annotated[str | None, Field(max_length=100, description="One client (trend, mentions).")] = None,
    limit: RowLimit = 50,
) -> TableResult:
    """A named business metric from the warehouse: clients at risk (health under the threshold, with ARR and
    CSM), the health trend by day (newest day first), ARR by segment with ARR at risk, or competitors named on calls."""
    args = MetricArgs(threshold=threshold, days=days, client_id=client_id)
    return await analytics.run_metric(services_of(ctx), name, args, limit or 50)


async def query_warehouse(
    ctx: Context,
    sql: Annotated[
        str,
        Field(
            min_length=1,
            max_length=10_000,
            description="One SELECT over the tables clients, "
            "contacts, calls, call_analyses, call_mentions, client_health, client_health_history.",
        ),
    ],
    limit: RowLimit = 100,
) -> TableResult:
    """Run one read-only SELECT on the warehouse (row-capped, 5 s timeout). describe_warehouse (or the resource
    sophia://warehouse/schema) lists the tables this warehouse holds and their columns. Anything else (writes, DDL,
    several statements, other tables) is refused with the reason; a query the warehouse refuses (an unknown column,
    say) answers with the warehouse's own message. Prefer run_metric when a named metric answers."""
    return await analytics.query_warehouse(services_of(ctx), sql, limit or 100)


async def describe_warehouse(ctx: Context) -> WarehouseSchema:
    """The warehouse's tables that query_warehouse may read, each with its columns (name, type, what it holds),
    the SQL dialect it takes, its row limit and timeout, and the named metrics of run_metric. Cheap; call it
    before writing a query."""
    return await analytics.describe_warehouse(services_of(ctx))


@says_errors
async def _evidence(ctx: Context, question: str, client: str | None, sources: list[SourceName] | None) -> Evidence:
    """Resolver: the evidence bundle. On 2026-07-28 it runs again on the round that brings the client's answer,
    where each source's cached answer (from the first round) makes it the same evidence, so the same question."""
    services = services_of(ctx)
    client_id = (await resolve_client(services, client)).id if client else None
    return await strategic.gather_recorded(services, question, client_id, sources)


async def _answer_asking(ctx: Context, synthesize: bool, evidence: Annotated[Evidence, Resolve(_evidence)]) -> Asking:
    """Resolver: ask the client's model to write the answer when the client offers sampling (a synthesis has no
    setting of its own), and only when there is evidence to write from; otherwise the configured model (or none)
    writes it."""
    if not synthesize or not evidence.citations:
        return Asking(wanted=False)
    return unasked(ctx, "auto") or Asking(wanted=True, requests=[strategic.synthesis_request(evidence)])


_answer_writer = clients_model(_answer_asking)


async def strategic_query(
    ctx: Context,
    question: Annotated[str, Field(min_length=3, max_length=2000, description="The question, in plain words.")],
    # Filled by the SDK before the body runs, not arguments: the evidence, and the client's model with its answer.
    evidence: Annotated[Evidence, Resolve(_evidence)],
    clients_model: Annotated[Writer | None, Resolve(_answer_writer)],
    client: Annotated[
        str | None,
        Field(
            max_length=200,
            description="Narrow calls, trend and mentions to one client (id or name); default the client the "
            "question names.",
        ),
    ] = None,
    sources: Annotated[
        list[SourceName] | None, Field(description="Which of warehouse, calls, knowledge, web (default all).")
    ] = None,
    synthesize: Annotated[
        bool, Field(description="Write an answer from the evidence when a model is available.")
    ] = True,
) -> StrategicAnswer:
    """Answer an executive's question from the warehouse (clients at risk, ARR by segment, health trend,
    competitor mentions), call insights, the knowledge base and the web, asked at once. The client, period ("over
    the last two weeks", "this month", "Q3") and competitors the question names choose the numbers and narrow
    them and the calls (scope says how it was read; 90 days when it names no period). Returns an evidence
    bundle with numbered citations and, when the client's model or a configured model is available, a synthesis
    that cites them. A source that fails or is slow is reported as a gap; the rest still answer."""
    # The client's model when it offered sampling and answered in words, else the configured model, else none.
    chosen = writers(clients_model, services_of(ctx).writer) if synthesize else []
    return await strategic.synthesize(evidence, chosen)


async def build_dashboard(
    ctx: Context,
    request: Annotated[
        str,
        Field(
            min_length=3,
            max_length=300,
            description="What to show, in words, e.g. "
            "'client health and competitor mentions'; it also becomes the title.",
        ),
    ],
    channel: Annotated[
        SlackChannel | None, Field(description="Where to post the link; default the dashboard route (#dashboards).")
    ] = None,
    requested_by: Annotated[str | None, Field(max_length=200, description="Who asked (named in the post).")] = None,
) -> DashboardReport:
    """Build a self-contained HTML dashboard (client health and its trend, ARR by segment, competitor mentions,
    the designed workflows' runs by version: the panels the request names, or all), save it in the data dir, post
    where it is to the channel (its URL when the server serves HTTP) and return it as a resource; hosts with MCP
    Apps show it inline."""
    server = server_of(ctx)
    return await dashboard.build_dashboard(
        server.services, request, channel, requested_by, public_url=server.public_url, progress=progress_of(ctx)
    )


async def competitive_intelligence(ctx: Context) -> IntelReport:
    """For each configured competitor: this week's web news and what clients said about it on calls, kept as an
    insight document in the knowledge base; a significant change (mentions doubling, new news) alerts
    #competitive-intel once a day. Runs daily on the scheduler; call it to refresh now."""
    return await competitive.competitive_intelligence(services_of(ctx), progress=progress_of(ctx))


async def predict_churn(
    ctx: Context,
    threshold: Annotated[
        float | None,
        Field(
            gt=0, lt=1, description="Churn probability that triggers actions; default SOPHIA_CHURN__THRESHOLD (0.7)."
        ),
    ] = None,
    act: Annotated[bool, Field(description="Open issues, book meetings and alert for clients above it.")] = True,
) -> ChurnReport:
    """Score every client's churn risk with a calibrated model trained on the store's history (health and its
    trend, call sentiment and its trend, competitor mentions, engagement, size), each with its reasons. For those
    above the threshold: an urgent issue, a meeting request with the CSM and a #leadership alert, once a week.
    Runs weekly on the scheduler."""
    return await churn.predict_churn(services_of(ctx), threshold, act, progress=progress_of(ctx))


class OutcomeRecorded(Model):
    client_id: str
    name: str
    outcome: str
    snapshots: int = Field(description="Weekly snapshots now labelled with the outcome.")


async def record_outcome(
    ctx: Context,
    client: Annotated[str, Field(min_length=1, max_length=200, description="Client id or name.")],
    outcome: Annotated[Literal["renewed", "churned"], Field(description="How the client's contract ended.")],
) -> OutcomeRecorded:
    """Record that a client renewed or churned: its recent weekly snapshots become history the churn model
    learns from."""
    services = services_of(ctx)
    found = await resolve_client(services, client)
    count = await churn.record_outcome(services, found.id, outcome)
    return OutcomeRecorded(client_id=found.id, name=found.name, outcome=outcome, snapshots=count)


class IncidentList(Model):
    incidents: list[Incident]


async def list_incidents(
    ctx: Context,
    status: Annotated[IncidentStatus | None, Field(description="open or closed; null: both.")] = None,
    limit: Annotated[int, Field(ge=1, le=200, description="Most incidents to return, newest first.")] = 50,
) -> IncidentList:
    """Incidents the healing watch opened: a workflow step failing too often for one cause (credentials refused,
    rate limited, a service down or slow, bad input data, a bug), with the diagnosis (examples, first and last
    seen), the reversible remediations applied and when they ended, and the tracker issue's key. Cheap: a read."""
    return IncidentList(incidents=await healing.list_incidents(services_of(ctx), status, limit))


async def dashboard_resource(name: str, ctx: Context) -> str:
    return dashboard.dashboard_path(services_of(ctx), name).read_text(encoding="utf-8")


def executive_briefing(
    question: Annotated[str, Field(max_length=2000, description="What the executive wants to know.")],
) -> list[Message]:
    """Answer a business question from every source, with citations."""
    return [UserMessage(
        f"{question}\n\nUse strategic_query with this question. Answer in three short paragraphs, citing the "
        "evidence ids it returns (e.g. [W1], [K2]); name any source that was a gap, and end with the two actions "
        "you would take first."
    )]  # fmt: skip


def churn_review(
    client: Annotated[
        str | None, Field(max_length=200, description="One client to focus on (name), or none for all.")
    ] = None,
) -> list[Message]:
    """Review churn risk and what to do about it."""
    focus = f" Focus on {client}: why its risk is what it is." if client else ""
    return [UserMessage(
        "Run predict_churn with act=false first and show the ten highest risks with their reasons." + focus
        + " Then say which clients deserve the urgent issue, meeting and #leadership alert that predict_churn "
        "opens when run with act=true, and ask before running it."
    )]  # fmt: skip


def competitor_watch(
    competitor: Annotated[str, Field(max_length=100, description="A competitor, e.g. AppFolio.")],
) -> list[Message]:
    """What a competitor is doing, from the web, our calls and our notes."""
    return [UserMessage(
        f"Run competitive_intelligence, then search_documents for '{competitor}' (types competitor_insight and "
        f"competitor_note). Summarise what {competitor} is doing this week, what clients say about it on calls, "
        "and how we answer it, with citations."
    )]  # fmt: skip


def dashboard_request(
    audience: Annotated[str, Field(max_length=200, description="Who it is for, e.g. the Monday leadership meeting.")],
) -> list[Message]:
    """A dashboard for an audience."""
    return [UserMessage(
        f"Build a dashboard for {audience} with build_dashboard: client health and its trend, ARR by segment and "
        "competitor mentions. Then point out the three things on it that need attention."
    )]  # fmt: skip


def _complete_competitors(services: Any, typed: str, _: dict[str, str]) -> list[str]:
    names = [c.name for c in services.settings.competitors]
    return [n for n in names if n.casefold().startswith(typed.casefold())]


# -- workflows designed from a request in words ---------------------------------------------------------------

WorkflowRequest = Annotated[
    str, Field(min_length=10, max_length=2000, description="What the workflow should do and when, in words.")
]
Sampled = CreateMessageResult | None


def _text(answer: Sampled) -> str | None:
    return answer.content.text if answer is not None and isinstance(answer.content, TextContent) else None


def _retry(answers: list[Sampled], request: str) -> Sample | None:
    """The next request of the client's model: none once an answer is usable (or none was asked), else the
    request again with what was wrong with each earlier answer."""
    texts = [_text(a) or "" for a in answers]
    if any(a is None for a in answers):
        return None
    found, feedback = designed.settle(texts)
    return None if found is not None else sample_of(designed.design_request(request, feedback))


async def _design_1(ctx: Context, request: str) -> Sample | None:
    """Resolver: the first draft, asked of the client's model when it offers sampling."""
    return None if unasked(ctx, "auto") is not None else sample_of(designed.design_request(request))


async def _design_2(request: str, first: Annotated[Sampled, Resolve(_design_1)]) -> Sample | None:
    """Resolver: asked again, told what failed, when the first draft was not valid (another round on 2026-07-28)."""
    return _retry([first], request)


async def _design_3(
    request: str, first: Annotated[Sampled, Resolve(_design_1)], second: Annotated[Sampled, Resolve(_design_2)]
) -> Sample | None:
    """Resolver: the last try of the client's model (`designed.MAX_ATTEMPTS` in all)."""
    return _retry([first, second], request)


class WorkflowDesign(Model):
    spec: WorkflowSpec = Field(description="Valid against the catalogue; dry_run_workflow it, then deploy_workflow.")
    attempts: int = Field(description="Answers the model gave before this one was valid, this one included.")
    designed_by: str = Field(description="sampling: the client's own model; openai: the configured model.")


async def design_workflow(
    ctx: Context,
    request: WorkflowRequest,
    first: Annotated[Sampled, Resolve(_design_1)],
    second: Annotated[Sampled, Resolve(_design_2)],
    third: Annotated[Sampled, Resolve(_design_3)],
) -> WorkflowDesign:
    """Turn a request in words ("every Monday, alert #cs-leads of clients under 50 health and open an issue for
    each") into a workflow spec drawn only from the project's catalogue of read steps and actions, drafted by the
    client's model (sampling) or the configured model, validated and redrafted up to 3 times. Nothing runs or is
    deployed; a request the catalogue cannot do is refused with the reason."""
    answers = [t for t in map(_text, (first, second, third)) if t is not None]
    services = services_of(ctx)
    outcome = await designed.design(request, answers, None if answers else services.writer)
    if outcome.spec is None:
        raise InvalidInput(f"{outcome.refused}. Nothing was designed or deployed.")
    return WorkflowDesign(spec=outcome.spec, attempts=outcome.attempts, designed_by=outcome.by or "sampling")


async def dry_run_workflow(ctx: Context, spec: WorkflowSpec) -> DryRun:
    """Run a workflow spec (from design_workflow) once on the current data: each step's rows and every side effect
    it would make (alerts, issues, meetings with CSMs, a dashboard, CRM writes of the lead score) with its target,
    text and idempotency key, none of them made."""
    return await designed.dry_run(services_of(ctx), spec)


class DeployConfirm(Model):
    confirm: bool = Field(description="Deploy this workflow, to run on its trigger?")


DeployConfirmation = ElicitationResult[DeployConfirm]


@says_errors
def _ask_deploy(ctx: Context, spec: WorkflowSpec) -> DeployConfirm | Elicit[DeployConfirm]:
    """Resolver: the user's yes, asked where the client can ask (elicitation); otherwise the write scope and the
    tool's hints stand for it."""
    if designed.problems(spec):
        return DeployConfirm(confirm=True)  # the body refuses it before anything is written
    if not offers(ctx, "elicitation"):
        return DeployConfirm(confirm=True)
    effects = ", ".join(sorted({designed.describe_action(services_of(ctx), a) for a in spec.actions}))
    trigger = spec.trigger.cron or spec.trigger.every or spec.trigger.event
    return Elicit(f"Deploy workflow {spec.name!r} ({trigger}): {effects}. Go ahead?", DeployConfirm)


async def deploy_workflow(
    ctx: Context,
    spec: WorkflowSpec,
    request: WorkflowRequest,
    confirmation: Annotated[DeployConfirmation, Resolve(_ask_deploy)] = NO_ANSWER,
) -> DesignedWorkflow:
    """Deploy a workflow spec (validated again): version 1, or the next version of a workflow of the same name.
    The scheduler runs a cron/every one on its times, the event router an event one after the built-in action;
    its side effects go through the outbox, each once. Needs the write scope and, where the client can ask, the
    user's yes."""
    if not designed.problems(spec) and (
        not isinstance(confirmation, AcceptedElicitation) or not confirmation.data.confirm
    ):
        raise Declined(f"Nothing was deployed: the user did not confirm workflow {spec.name!r}.")
    return await designed.deploy(services_of(ctx), spec, request)


class WorkflowList(Model):
    workflows: list[DesignedWorkflow]


async def list_workflows(ctx: Context) -> WorkflowList:
    """Every deployed designed workflow with its version, trigger, whether it is enabled and when it runs next."""
    return WorkflowList(workflows=await services_of(ctx).designed_workflows.all())


async def get_workflow(ctx: Context, name: Name) -> DesignedWorkflow:
    """One deployed designed workflow: its spec, version, request and next run; its runs are on sophia://metrics
    (as designed:{name}, and by version under "designed") and on build_dashboard's workflows panel."""
    return await designed.get(services_of(ctx), name)


async def disable_workflow(ctx: Context, name: Name) -> DesignedWorkflow:
    """Stop a designed workflow from running on its trigger (deploy_workflow enables it again, as a new version)."""
    return await designed.disable(services_of(ctx), name)


def create_server(settings: Settings | None = None, **kwargs: Any) -> SophiaServer:
    server = SophiaServer("sophia", INSTRUCTIONS, settings, **kwargs)
    server.serves_dashboards = True
    for prefix, module in DOMAINS.items():
        module.register(server, prefix=f"{prefix}_")
    read = tool_hints
    server.prompt(name="executive_briefing", title="Executive briefing")(executive_briefing)
    server.prompt(name="churn_review", title="Churn review")(churn_review)
    server.prompt(name="competitor_watch", title="Competitor watch")(competitor_watch)
    server.prompt(name="dashboard_request", title="Dashboard for an audience")(dashboard_request)
    server.add_completer("churn_review", "client", complete_client_names)
    server.add_completer("competitor_watch", "competitor", _complete_competitors)

    async def metrics() -> str:
        """Per workflow: runs, success and error rates, p50/p95 latency; each designed workflow's runs by version."""
        rows = await server.services.runs.metrics()
        versions = await server.services.designed_workflows.runs()
        return json.dumps(
            {"workflows": [r.model_dump() for r in rows], "designed": [v.model_dump() for v in versions]}, indent=2
        )

    server.declare_resource("sophia://metrics", name="metrics", title="Workflow metrics", mime_type="application/json")(
        metrics
    )

    async def inbox() -> str:
        """Events received from outside (webhooks, polling connectors), newest first: how many are in each state,
        and the latest fifty with what came of each (a dead one was given up on after its last attempt)."""
        events = await server.services.inbox.list(limit=50)
        counts = await server.services.inbox.counts()
        shown = [e.model_dump(mode="json", exclude={"payload"}) for e in events]
        return json.dumps({"counts": counts, "events": shown}, indent=2)

    async def inbox_event(event_id: str) -> str:
        """One event from outside, with what it carried and what came of it."""
        event = await server.services.inbox.get(int(event_id)) if event_id.isdigit() else None
        if event is None:
            raise NotFound(f"No inbox event {event_id!r}; sophia://inbox lists them")
        return event.model_dump_json(indent=2)

    async def incidents() -> str:
        """The healing watch's incidents, newest first (the open ones and the last closed)."""
        found = await healing.list_incidents(server.services, None, 50)
        return IncidentList(incidents=found).model_dump_json(indent=2)

    server.declare_resource("sophia://incidents", name="incidents", title="Incidents", mime_type="application/json")(
        incidents
    )
    server.declare_resource("sophia://inbox", name="inbox", title="Inbox of events", mime_type="application/json")(
        inbox
    )
    server.declare_resource(
        "sophia://inbox/{event_id}", name="inbox_event", title="Inbox event", mime_type="application/json"
    )(inbox_event)

    async def latest_dashboard() -> str:
        """The newest dashboard, as an MCP Apps UI."""
        return dashboard.latest_dashboard(server.services).read_text(encoding="utf-8")

    async def warehouse_schema() -> str:
        """The warehouse's tables and columns that query_warehouse may read, and the named metrics."""
        schema = await analytics.describe_warehouse(server.services)
        return schema.model_dump_json(indent=2)

    server.declare_resource(
        "sophia://warehouse/schema", name="warehouse_schema", title="Warehouse schema", mime_type="application/json"
    )(warehouse_schema)

    server.declare_resource(DASHBOARD_UI, name="dashboard_ui", title="Dashboard", mime_type=MCP_APP)(latest_dashboard)
    server.declare_resource("sophia://dashboards/{name}", name="dashboard", title="Dashboard", mime_type="text/html")(
        dashboard_resource
    )
    server.declare_tool(
        predict_churn, name="predict_churn",
        annotations=read("Predict churn", read_only=False, idempotent=True, open_world=True),
    )  # fmt: skip
    server.writes_only_when("predict_churn", "act")
    server.declare_tool(
        record_outcome, name="record_outcome",
        annotations=read("Record a renewal or churn", read_only=False, idempotent=True),
    )  # fmt: skip
    server.declare_tool(
        competitive_intelligence, name="competitive_intelligence",
        annotations=read("Competitive intelligence", read_only=False, idempotent=True, open_world=True),
    )  # fmt: skip
    server.declare_tool(
        build_dashboard, name="build_dashboard", meta={"ui": {"resourceUri": DASHBOARD_UI}},
        annotations=read("Build a dashboard", read_only=False, idempotent=False),
    )  # fmt: skip
    server.declare_tool(
        strategic_query, name="strategic_query", annotations=read("Strategic query", read_only=True, open_world=True)
    )
    server.declare_tool(list_incidents, name="list_incidents", annotations=read("List incidents", read_only=True))
    server.declare_tool(run_metric, name="run_metric", annotations=read("Business metric", read_only=True))
    server.declare_tool(
        query_warehouse, name="query_warehouse", annotations=read("Query the warehouse", read_only=True)
    )
    server.declare_tool(
        describe_warehouse, name="describe_warehouse",
        annotations=read("Describe the warehouse", read_only=True),
    )  # fmt: skip
    server.declare_tool(design_workflow, name="design_workflow", annotations=read("Design a workflow", read_only=True))
    server.declare_tool(
        dry_run_workflow, name="dry_run_workflow", annotations=read("Dry-run a workflow", read_only=True)
    )
    server.declare_tool(
        deploy_workflow, name="deploy_workflow",
        annotations=read("Deploy a workflow", read_only=False, idempotent=False, open_world=True),
    )  # fmt: skip
    server.declare_tool(list_workflows, name="list_workflows", annotations=read("Designed workflows", read_only=True))
    server.declare_tool(get_workflow, name="get_workflow", annotations=read("A designed workflow", read_only=True))
    server.declare_tool(
        disable_workflow, name="disable_workflow",
        annotations=read("Disable a workflow", read_only=False, idempotent=True),
    )  # fmt: skip
    return server
