"""The crm server: contacts and clients, enrichment (Apollo or local firmographics), lead scores, client health."""

from datetime import datetime
from typing import Annotated, Any

from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context, Resolve
from mcp.server.mcpserver.prompts.base import Message, UserMessage
from mcp.server.mcpserver.resolve import Elicit
from pydantic import AfterValidator, ConfigDict, Field, model_validator

from sophia_mcp.analysis.lead_score import LeadScore, LeadSignals, score_lead
from sophia_mcp.app.services import Services
from sophia_mcp.domain.crm import USER_WRITABLE, Client, Contact, ContactPage, ContactQuery
from sophia_mcp.domain.enrich import Person
from sophia_mcp.domain.model import Model
from sophia_mcp.domain.plural import plural
from sophia_mcp.domain.warehouse import HealthRecord
from sophia_mcp.errors import InvalidInput, NotFound, SophiaError
from sophia_mcp.mcp.server import (
    DEMO_HINT,
    Cursor,
    EmptyNote,
    SophiaServer,
    Timestamp,
    complete_client_names,
    none_yet,
    offers,
    says_errors,
    server_of,
    services_of,
    tool_hints,
)
from sophia_mcp.settings import Settings
from sophia_mcp.workflows.clients import resolve_client
from sophia_mcp.workflows.enrichment import (
    ContactOutcome,
    EnrichmentReport,
    enrich_one,
    last_enrichment,
    scoring_context,
)
from sophia_mcp.workflows.enrichment import (
    enrich_contacts as enrich_contacts_workflow,
)

INSTRUCTIONS = """\
The CRM's contacts and client companies (HubSpot, or the local store), with enrichment and lead scoring.
Find people with search_contacts and read one with get_contact; enrich_contact fills in what a data provider
(Apollo, or local firmographics) knows, scores the lead (0-100, with a reason per factor) and writes back only
what changed; enrich_contacts does the same for many contacts. list_clients and get_client_health show client
companies and their health score from call analysis. update_contact changes a contact's fields."""

ContactId = Annotated[
    str,
    Field(pattern=r"^\d{1,20}$", max_length=20, description="CRM contact id (digits), as search_contacts returns it.",
          examples=["10123405707"]),
]  # fmt: skip
ClientRef = Annotated[
    str,
    Field(min_length=1, max_length=200, description="Client id, or the client's name (or a unique part of it)."),
]


def _valid_email(value: str) -> str:
    """email-validator's syntax check (no DNS lookup). It loads with the first address to check: its Unicode and
    domain tables are a sizeable part of a server's start, and most sessions check no address."""
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None


Email = Annotated[str, AfterValidator(_valid_email), Field(max_length=254, json_schema_extra={"format": "email"})]

READ_ONLY_FIELDS = {
    "id": "the CRM assigns it",
    "client_id": "it follows the contact's company association in the CRM",
    "company": "it is the client's name",
    "updated_at": "the CRM keeps it",
    "seniority": "enrich_contact sets it from the enricher or the title",
    "lead_score": "enrich_contact sets it (score_lead shows it without writing)",
    "lead_grade": "enrich_contact sets it with the lead score",
}


class ContactUpdate(Model):
    """The contact fields to change; a field given as null or "" is cleared, a field left out is kept."""

    model_config = ConfigDict(extra="forbid")

    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    email: Email | None = Field(default=None, description="A valid email address, e.g. ana@example.com.")
    title: str | None = Field(default=None, max_length=200, description="Job title.")
    phone: str | None = Field(default=None, pattern=r"^$|^[+()\d][\d\s().+-]{5,30}$", max_length=31)
    city: str | None = Field(default=None, max_length=100)
    state: str | None = Field(default=None, max_length=100)
    country: str | None = Field(default=None, max_length=100)
    linkedin_url: str | None = Field(
        default=None, pattern=r"^$|^https?://([a-z]+\.)?linkedin\.com/\S+$", max_length=300
    )

    @model_validator(mode="before")
    @classmethod
    def _writable_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key in READ_ONLY_FIELDS:
                    raise ValueError(f"{key} is read-only: {READ_ONLY_FIELDS[key]}")
                if key not in cls.model_fields:
                    raise ValueError(f"{key} is not a contact field; writable fields: {', '.join(USER_WRITABLE)}")
            if not data:
                raise ValueError(f"give at least one field to change: {', '.join(USER_WRITABLE)}")
        return data


class ContactDetail(Model):
    contact: Contact
    client: Client | None = Field(description="The contact's client company, when the CRM links one.")
    enrichment: Person | None = Field(description="What the enricher last said about this contact, if asked.")


class ContactEnrichment(Model):
    run_id: str
    contact: Contact = Field(description="The contact as the CRM holds it now.")
    outcome: ContactOutcome


class LeadScoreReport(Model):
    contact_id: str
    score: LeadScore
    signals: LeadSignals = Field(description="What the score was computed from.")
    stored_score: float | None = Field(description="The score the CRM holds now (set by the last enrich_contact).")


class ClientSummary(Model):
    client: Client
    health_score: float | None = Field(description="Current health 0-100 from call analysis; null if none yet.")


class ClientList(Model):
    clients: list[ClientSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page.")
    note: EmptyNote = None


class ClientHealth(Model):
    client: Client
    health: HealthRecord | None = Field(description="Null when none of the client's calls has been analysed yet.")
    threshold: float
    at_risk: bool


class Declined(SophiaError):
    """The user said no to a write."""


class Confirm(Model):
    confirm: bool = Field(description="Write these changes to the CRM?")


NO_QUESTION = Confirm(confirm=True)
NO_ANSWER: Any = None  # never used: the SDK fills a Resolve(...) parameter before the tool runs

# What a writing tool receives: the user's answer, or an implicit yes when nobody needs asking.
Confirmation = ElicitationResult[Confirm]


def _ask(ctx: Context, what: str) -> Confirm | Elicit[Confirm]:
    """Ask before a real CRM is written to, when settings want it and the client can ask (elicitation); a client
    that cannot ask goes by the tool's destructive hint instead."""
    services = services_of(ctx)
    if services.crm.name == "local" or not services.settings.hubspot.confirm_writes:
        return NO_QUESTION
    if not offers(ctx, "elicitation"):
        return NO_QUESTION
    return Elicit(f"{what} in {services.crm.name}. Go ahead?", Confirm)


def _confirmed(answer: Confirmation, what: str) -> None:
    if not isinstance(answer, AcceptedElicitation) or not answer.data.confirm:
        raise Declined(f"Nothing was written: the user did not confirm ({what}).")


@says_errors
def _ask_enrich_one(ctx: Context, contact_id: str) -> Confirm | Elicit[Confirm]:
    return _ask(ctx, f"Enrich contact {contact_id} and write its changed fields and lead score")


def _either_ids_or_since(contact_ids: list[str] | None, since: datetime | None) -> None:
    if bool(contact_ids) == (since is not None):
        raise InvalidInput("Give either contact_ids or since, not both and not neither")


@says_errors
def _ask_enrich_many(ctx: Context, contact_ids: list[str] | None, since: datetime | None) -> Confirm | Elicit[Confirm]:
    _either_ids_or_since(contact_ids, since)  # before anyone is asked anything
    what = f"{len(contact_ids)} contacts" if contact_ids else f"every contact changed since {since:%Y-%m-%d %H:%M}"
    return _ask(ctx, f"Enrich {what} and write changed fields and lead scores")


@says_errors
async def _ask_update(ctx: Context, contact_id: str, changes: ContactUpdate) -> Confirm | Elicit[Confirm]:
    await services_of(ctx).crm.get_contact(contact_id)  # an unknown id is reported before anyone is asked anything
    return _ask(ctx, f"Change {', '.join(changes.model_dump(exclude_unset=True))} of contact {contact_id}")


async def get_contact(ctx: Context, contact_id: ContactId) -> ContactDetail:
    """Get one contact: name, email, title, phone, location, company, seniority and lead score, with their client
    company and what the enricher last said about them."""
    services = services_of(ctx)
    contact = await services.crm.get_contact(contact_id)
    client = await services.crm.get_client(contact.client_id) if contact.client_id else None
    person = await last_enrichment(services, contact_id)
    return ContactDetail(contact=contact, client=client, enrichment=person)


async def search_contacts(
    ctx: Context,
    query: Annotated[
        str | None, Field(max_length=200, description="Words in the name, email, title or company.")
    ] = None,
    client_id: Annotated[
        str | None, Field(pattern=r"^\d{1,20}$", max_length=20, description="Only this client's contacts.")
    ] = None,
    email: Annotated[Email | None, Field(description="Exact email address.")] = None,
    updated_since: Annotated[
        Timestamp | None, Field(description="Only contacts changed since then (ISO 8601, e.g. 2026-11-01T00:00:00Z).")
    ] = None,
    limit: Annotated[int | None, Field(ge=1, le=100, description="Contacts per page, 1-100; null: 20.")] = 20,
    cursor: Cursor = None,
) -> ContactPage:
    """Search contacts by words in their name, email, title or company, by client, exact email, or recent change.
    Page with `cursor`."""
    q = ContactQuery(text=query, client_id=client_id, email=email, updated_since=updated_since)
    return await services_of(ctx).crm.search_contacts(q, limit or 20, cursor)


async def enrich_contact(
    ctx: Context,
    contact_id: ContactId,
    force: Annotated[
        bool, Field(description="Ask the enricher again even if it answered recently (spends a credit).")
    ] = False,
    confirmation: Annotated[Confirmation, Resolve(_ask_enrich_one)] = NO_ANSWER,
) -> ContactEnrichment:
    """Enrich one contact (title, seniority, location, LinkedIn, company size and industry from the enricher),
    score them as a lead (0-100 with a reason per factor) and write back only the fields that changed. Fills blank
    fields only unless settings say to overwrite; safe to repeat (a repeat writes nothing new)."""
    _confirmed(confirmation, f"enrich contact {contact_id}")
    services = services_of(ctx)

    async def progress(done: float, total: float, message: str) -> None:
        await ctx.report_progress(done, total, message)

    report, contact = await enrich_one(services, contact_id, force=force, progress=progress)
    return ContactEnrichment(run_id=report.run_id, contact=contact, outcome=report.outcomes[0])


async def enrich_contacts(
    ctx: Context,
    contact_ids: Annotated[
        list[ContactId] | None, Field(max_length=1000, description="Up to 1,000 contact ids to enrich.")
    ] = None,
    since: Annotated[
        Timestamp | None,
        Field(description="Instead of ids: every contact changed in the CRM since then (ISO 8601)."),
    ] = None,
    force: Annotated[bool, Field(description="Ask the enricher again for contacts it answered recently.")] = False,
    confirmation: Annotated[Confirmation, Resolve(_ask_enrich_many)] = NO_ANSWER,
) -> EnrichmentReport:
    """Enrich, score and write back many contacts: by ids, or all changed since a time. Works in the enricher's
    and the CRM's batch sizes within their rate limits, reports progress, records a failure per contact without
    stopping, and is safe to re-run (contacts already done are not written again)."""
    _either_ids_or_since(contact_ids, since)
    _confirmed(confirmation, "enrich contacts")
    server = server_of(ctx)

    async def progress(done: float, total: float, message: str) -> None:
        await ctx.report_progress(done, total, message)

    report = await enrich_contacts_workflow(server.services, contact_ids, since, force=force, progress=progress)
    if report.failed:
        failed = f"{report.failed} of {plural(report.requested, 'contact')} failed; see outcomes"
        await server.log(ctx, "warning", failed)
    return report


async def update_contact(
    ctx: Context,
    contact_id: ContactId,
    changes: ContactUpdate,
    confirmation: Annotated[Confirmation, Resolve(_ask_update)] = NO_ANSWER,
) -> Contact:
    """Change a contact's fields (name, email, title, phone, location, LinkedIn URL). Only the fields given are
    written; null or "" clears one. Returns the contact as the CRM holds it afterwards."""
    services = services_of(ctx)
    fields = {k: (v or None) for k, v in changes.model_dump(exclude_unset=True).items()}
    _confirmed(confirmation, f"change contact {contact_id}")
    return await services.crm.update_contact(contact_id, fields)


async def score_lead_tool(ctx: Context, contact_id: ContactId) -> LeadScoreReport:
    """Score a contact as a lead, 0-100 with a grade and the reason for every point (seniority, company size,
    industry, recent calls, client health), from what is known now. Writes nothing; enrich_contact stores it."""
    services = services_of(ctx)
    contact = await services.crm.get_contact(contact_id)
    person = await last_enrichment(services, contact_id)
    context = await scoring_context(services, [contact])
    signals = context.signals(contact, person, contact.title)
    return LeadScoreReport(
        contact_id=contact_id,
        score=score_lead(signals, services.settings.lead_score),
        signals=signals,
        stored_score=contact.lead_score,
    )


async def list_clients(
    ctx: Context,
    query: Annotated[str | None, Field(max_length=200, description="Part of the client's name or domain.")] = None,
    limit: Annotated[int | None, Field(ge=1, le=100, description="Clients per page, 1-100; null: 20.")] = 20,
    cursor: Cursor = None,
) -> ClientList:
    """List client companies (name, domain, industry, segment, size, ARR, CSM) with their current health score."""
    services = services_of(ctx)
    page = await services.crm.list_clients(query, limit or 20, cursor)
    scores = await services.warehouse.health_scores([c.id for c in page.clients])
    how = DEMO_HINT if services.crm.name == "local" else f"{services.crm.name} holds no companies"
    return ClientList(
        clients=[ClientSummary(client=c, health_score=scores.get(c.id)) for c in page.clients],
        next_cursor=page.next_cursor,
        note=none_yet(page.clients, not (query or cursor), "clients", how),
    )


async def get_client_health(ctx: Context, client: ClientRef) -> ClientHealth:
    """A client's current health score (0-100), its components (sentiment, risk, engagement, competition) and the
    reasons, as of its newest analysed call; at_risk when under the alert threshold."""
    services = services_of(ctx)
    found = await resolve_client(services, client)
    record = await services.warehouse.get_health(found.id)
    threshold = services.settings.health.threshold
    return ClientHealth(
        client=found,
        health=record,
        threshold=threshold,
        at_risk=record is not None and record.health.score < threshold,
    )


async def contact_resource(contact_id: str, ctx: Context) -> str:
    """A contact, their client company and their latest enrichment, as JSON."""
    return (await get_contact(ctx, contact_id)).model_dump_json(indent=2)


async def client_resource(client_id: str, ctx: Context) -> str:
    """A client company as JSON."""
    client = await services_of(ctx).crm.get_client(client_id)
    if client is None:
        raise NotFound(f"No client with id {client_id!r}. Use list_clients to find client ids.")
    return client.model_dump_json(indent=2)


async def client_health_resource(client_id: str, ctx: Context) -> str:
    """A client's current health with its components and reasons, as JSON."""
    services = services_of(ctx)
    if await services.crm.get_client(client_id) is None:
        raise NotFound(f"No client with id {client_id!r}. Use list_clients to find client ids.")
    return (await get_client_health(ctx, client_id)).model_dump_json(indent=2)


def qualify_lead(contact_id: Annotated[ContactId, Field(description="CRM contact id.")]) -> list[Message]:
    """Qualify a contact as a lead: enrich, score, and recommend the next step."""
    return [
        UserMessage(
            f"Qualify contact {contact_id} as a lead. Call get_contact with contact_id={contact_id!r}, then "
            "enrich_contact to fill in what the enricher knows and score them. Report the score and grade with the "
            "reason for each factor, what changed on the contact, how healthy their company is as a client "
            "(get_client_health), and the next step you recommend, with who should take it."
        )
    ]


def account_brief(client: ClientRef) -> list[Message]:
    """Brief an account: its people, their lead scores, and the client's health."""
    return [
        UserMessage(
            f"Write an account brief for {client}. Use get_client_health with client={client!r}, then "
            "search_contacts with that client's id to list its people with titles and lead scores. Say who the "
            "decision makers are, how healthy the account is and why, and the two actions that matter most now."
        )
    ]


def _complete_contact_ids(services: Services, typed: str, _: dict[str, str]) -> list[str]:
    return services.clients.contact_ids(typed, 100)


def _complete_client_ids(services: Services, typed: str, _: dict[str, str]) -> list[str]:
    return services.clients.client_ids(typed, 100)


def register(server: SophiaServer, prefix: str = "") -> None:
    """Declare the crm tools, resources, prompts and completions on `server` (tool names get `prefix`)."""
    hints = tool_hints
    read_crm = {"read_only": True}
    server.declare_tool(get_contact, name="get_contact", prefix=prefix, annotations=hints("Get contact", **read_crm))
    server.declare_tool(
        search_contacts, name="search_contacts", prefix=prefix, annotations=hints("Search contacts", **read_crm)
    )
    write = {"read_only": False, "destructive": True, "idempotent": True}
    server.declare_tool(
        enrich_contact, name="enrich_contact", prefix=prefix, annotations=hints("Enrich and score contact", **write)
    )
    server.declare_tool(
        enrich_contacts, name="enrich_contacts", prefix=prefix, annotations=hints("Enrich and score contacts", **write)
    )
    server.declare_tool(
        update_contact, name="update_contact", prefix=prefix, annotations=hints("Update contact", **write)
    )
    server.declare_tool(score_lead_tool, name="score_lead", prefix=prefix, annotations=hints("Score lead", **read_crm))
    server.declare_tool(list_clients, name="list_clients", prefix=prefix, annotations=hints("List clients", **read_crm))
    server.declare_tool(
        get_client_health, name="get_client_health", prefix=prefix, annotations=hints("Get client health", **read_crm)
    )
    server.declare_resource(
        "crm://contacts/{contact_id}", name="contact", title="CRM contact", mime_type="application/json"
    )(contact_resource)
    server.declare_resource(
        "crm://clients/{client_id}", name="client", title="Client company", mime_type="application/json"
    )(client_resource)
    server.declare_resource(
        "crm://clients/{client_id}/health", name="client_health", title="Client health", mime_type="application/json"
    )(client_health_resource)
    server.prompt(name="qualify_lead", title="Qualify a lead")(qualify_lead)
    server.prompt(name="account_brief", title="Brief an account")(account_brief)
    for ref in ("qualify_lead", "crm://contacts/{contact_id}"):
        server.add_completer(ref, "contact_id", _complete_contact_ids)
    for ref in ("crm://clients/{client_id}", "crm://clients/{client_id}/health"):
        server.add_completer(ref, "client_id", _complete_client_ids)
    server.add_completer("account_brief", "client", complete_client_names)


def create_server(settings: Settings | None = None, **kwargs: Any) -> SophiaServer:
    server = SophiaServer("sophia-crm", INSTRUCTIONS, settings, **kwargs)
    register(server)
    return server
