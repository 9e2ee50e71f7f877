"""Contact enrichment: enrich → score → write back only what changed, one contact or thousands.

Contacts are matched in the enricher's bulk size (10 for Apollo) with bounded concurrency, scored (the lead score
reads the enriched title and seniority, the client's size and industry, its recent calls and health) and written
in the CRM's batch size (100 for HubSpot) as soon as a batch fills, so writing overlaps enriching.

Nothing is spent or written twice. Every answer of the enricher is kept in the store's enrichment ledger as it
arrives, and reused for `refresh_days` (no second credit for the same contact); every write is a diff against
what the CRM holds when the contact is read, so a re-run after a crash finds the contacts already written
unchanged and writes only the rest. A contact that fails (enricher down for its batch, a write refused) is
recorded with its reason and the batch goes on.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import anyio
from pydantic import Field

from sophia_mcp.analysis.lead_score import LeadScore, LeadSignals, score_lead, seniority_of
from sophia_mcp.app.services import Services
from sophia_mcp.domain.crm import Client, Contact, ContactChanges, ContactQuery, FieldValue
from sophia_mcp.domain.enrich import Person, PersonQuery
from sophia_mcp.domain.model import Model
from sophia_mcp.domain.plural import plural
from sophia_mcp.domain.times import iso, utcnow
from sophia_mcp.errors import InvalidInput, SophiaError
from sophia_mcp.ports.progress import Progress
from sophia_mcp.store.enrichment import Answer, Finished
from sophia_mcp.store.runs import describe_error
from sophia_mcp.workflows.runs import Run, start_run

# What enrichment may fill in on a contact (identity fields, like the email, are never changed by it).
ENRICHED_FIELDS = ("first_name", "last_name", "title", "city", "state", "country", "linkedin_url")
ENGAGEMENT_DAYS = 90
MAX_SELECTED = 10_000
OUTCOMES_SHOWN = 25  # a report is read by a model: failures first, then a sample; the ledger has them all
ROWS_UP_TO = 10  # a run over more contacts reports totals and its failures, not a row per contact
TOP_LEADS = 5


class ContactOutcome(Model):
    contact_id: str
    status: Literal["written", "unchanged", "failed"] = Field(
        description="written: changes were saved to the CRM; unchanged: the CRM already held all of it; "
        "failed: see error (the rest of the batch went on)."
    )
    matched: bool = Field(description="Whether the enricher knew this person.")
    reused: bool = Field(default=False, description="The enricher's earlier answer was reused (no new credit).")
    changes: ContactChanges = Field(default_factory=dict, description="Fields written, with their new values.")
    score: LeadScore | None = None
    error: str | None = None


class TopLead(Model):
    contact_id: str
    score: float
    grade: str


class EnrichmentSummary(Model):
    """Totals of a long run, instead of a row per contact."""

    fields_written: dict[str, int] = Field(description="How many contacts had each field written.")
    grades: dict[str, int] = Field(description="Contacts scored, by lead grade (A is best).")
    top_leads: list[TopLead] = Field(description=f"The {TOP_LEADS} highest lead scores.")
    errors: dict[str, int] = Field(description="Failed contacts, by reason.")


class EnrichmentReport(Model):
    run_id: str
    crm: str
    enricher: str
    requested: int
    written: int
    unchanged: int
    failed: int
    matched: int
    reused: int
    summary: EnrichmentSummary | None = Field(
        default=None, description=f"For more than {ROWS_UP_TO} contacts: totals, and outcomes lists failures only."
    )
    outcomes: list[ContactOutcome] = Field(
        description=f"Up to {ROWS_UP_TO} contacts: one each; more: the failures only. At most {OUTCOMES_SHOWN}, "
        "failures first (see outcomes_omitted)."
    )
    outcomes_omitted: int = 0


@dataclass
class ScoringContext:
    """What the lead score needs beyond the contact: its client, the client's recent calls and health."""

    clients: dict[str, Client] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    health: dict[str, float] = field(default_factory=dict)

    def signals(self, contact: Contact, person: Person | None, title: str | None) -> LeadSignals:
        client = self.clients.get(contact.client_id or "")
        org = person.organization if person else None
        return LeadSignals(
            title=title,
            seniority=person.seniority if person else None,
            units_managed=(client.units_managed if client else None) or (org.units_managed if org else None),
            employees=org.employees if org else None,
            industry=(client.industry if client else None) or (org.industry if org else None),
            recent_calls=self.calls.get(contact.client_id or "", 0),
            client_health=self.health.get(contact.client_id or ""),
        )


async def scoring_context(services: Services, contacts: list[Contact]) -> ScoringContext:
    context = ScoringContext()
    client_ids = sorted({c.client_id for c in contacts if c.client_id})
    if not client_ids:
        return context
    context.clients = await services.crm.get_clients(client_ids)
    since = utcnow() - timedelta(days=ENGAGEMENT_DAYS)
    context.calls = await services.local_calls.call_counts(client_ids, since)
    context.health = await services.warehouse.health_scores(client_ids)
    return context


async def last_enrichment(services: Services, contact_id: str) -> Person | None:
    """The enricher's latest answer about a contact, however old (None: never asked, or not known)."""
    return await services.enrichments.last_person(services.crm.name, contact_id)


class _Work:
    """One contact on its way through the pipeline."""

    def __init__(self, contact: Contact) -> None:
        self.contact = contact
        self.person: Person | None = None
        self.matched = False
        self.reused = False
        self.error: str | None = None


def _query(contact: Contact, client: Client | None) -> PersonQuery | None:
    domain = client.domain if client else None
    if not contact.email and not (contact.first_name and contact.last_name and (domain or contact.company)):
        return None  # nothing an enricher could match on
    return PersonQuery(
        email=contact.email,
        first_name=contact.first_name,
        last_name=contact.last_name,
        title=contact.title,
        domain=domain,
        organization_name=contact.company,
    )


def _same(current: FieldValue, new: FieldValue) -> bool:
    if isinstance(current, float | int) and isinstance(new, float | int):
        return math.isclose(float(current), float(new), abs_tol=0.05)
    return current == new


Pending = tuple[_Work, ContactChanges, LeadScore]  # a contact scored, with what to write


class Enrichment:
    """One enrichment run over a set of contacts."""

    def __init__(self, services: Services, run: Run, force: bool, progress: Progress | None) -> None:
        self.services = services
        self.settings = services.settings
        self.run = run
        self.force = force
        self.progress = progress
        self.context = ScoringContext()
        self.outcomes: dict[str, ContactOutcome] = {}
        self.total = 0
        self.done = 0
        self._unstored: list[ContactOutcome] = []  # outcomes with no write behind them, not yet in the ledger

    # -- ledger -----------------------------------------------------------------------------------------

    async def _load_ledger(self, contact_ids: list[str]) -> dict[str, Person | None]:
        """Earlier enricher answers still fresh enough to reuse (None: asked, and it did not know the person)."""
        fresh_since = utcnow() - timedelta(days=self.settings.enrichment.refresh_days)
        return await self.services.enrichments.fresh(self.services.crm.name, contact_ids, fresh_since)

    async def _remember(self, works: list[_Work]) -> None:
        """Keep the enricher's answers the moment they arrive: a crash after this spends no credit again."""
        answers = [Answer(w.contact.id, w.person, w.error) for w in works]
        await self.services.enrichments.remember(self.services.crm.name, self.run.id, answers)

    async def _finish(self, outcomes: list[ContactOutcome]) -> None:
        finished = [
            Finished(o.contact_id, o.status, dict(o.changes), o.score.model_dump_json() if o.score else None, o.error)
            for o in outcomes
        ]
        await self.services.enrichments.finish(self.services.crm.name, self.run.id, finished)

    # -- the pipeline ---------------------------------------------------------------------------------

    async def enrich(self, contacts: list[Contact]) -> list[ContactOutcome]:
        self.total = len(contacts)
        await self._report("reading the CRM's clients and the calls and health behind the score")
        self.context = await self.run.step(
            "context", lambda: scoring_context(self.services, contacts), lambda c: {"clients": len(c.clients)}
        )
        known = await self._load_ledger([c.id for c in contacts]) if not self.force else {}
        works = [_Work(c) for c in contacts]
        fresh: list[_Work] = []
        for work in works:
            if work.contact.id in known:
                work.person, work.reused = known[work.contact.id], True
                work.matched = work.person is not None
            else:
                fresh.append(work)

        enricher = self.services.enricher
        size = enricher.bulk_size
        chunks = [fresh[i : i + size] for i in range(0, len(fresh), size)]
        reused = [w for w in works if w.reused]
        send, receive = anyio.create_memory_object_stream[list[_Work]](max(1, len(chunks) + 1))

        async def enrich_chunk(chunk: list[_Work], limiter: anyio.CapacityLimiter) -> None:
            async with limiter:
                await self._match(chunk)
            await send.send(chunk)

        async def produce() -> None:
            async with send:
                if reused:
                    await send.send(reused)
                limiter = anyio.CapacityLimiter(self._enricher_concurrency())
                async with anyio.create_task_group() as group:
                    for chunk in chunks:
                        group.start_soon(enrich_chunk, chunk, limiter)

        async def consume() -> None:
            batch: list[Pending] = []
            async with receive, anyio.create_task_group() as writers:
                limiter = anyio.CapacityLimiter(self._crm_concurrency())
                async for arrived in receive:
                    for work in arrived:
                        if work.error:
                            self._record([self._outcome(work, "failed", error=work.error)])
                            continue
                        changes, score = self._changes(work)
                        if changes:
                            batch.append((work, changes, score))
                        else:
                            self._record([self._outcome(work, "unchanged", score=score)])
                    await self._flush_unchanged()
                    while len(batch) >= self.services.crm.batch_size:
                        ready, batch = batch[: self.services.crm.batch_size], batch[self.services.crm.batch_size :]
                        writers.start_soon(self._write, ready, limiter)
                if batch:
                    writers.start_soon(self._write, batch, limiter)

        async def pipeline() -> None:
            async with anyio.create_task_group() as group:
                group.start_soon(produce)
                group.start_soon(consume)

        await self.run.step(
            "enrich, score and write",
            pipeline,
            lambda _: {
                "contacts": len(works),
                "enricher_batches": len(chunks),
                "reused": len(reused),
                "written": sum(o.status == "written" for o in self.outcomes.values()),
                "failed": sum(o.status == "failed" for o in self.outcomes.values()),
            },
        )
        return [self.outcomes[c.id] for c in contacts]

    def _enricher_concurrency(self) -> int:
        return self.settings.apollo.max_concurrency if self.services.enricher.name == "apollo" else 4

    def _crm_concurrency(self) -> int:
        return self.settings.hubspot.max_concurrency if self.services.crm.name == "hubspot" else 1

    async def _match(self, chunk: list[_Work]) -> None:
        asked = [(w, q) for w in chunk if (q := _query(w.contact, self.context.clients.get(w.contact.client_id or "")))]
        try:
            answers = await self.services.enricher.match_people([q for _, q in asked]) if asked else []
        except SophiaError as exc:
            for work in chunk:
                work.error = f"{self.services.enricher.name}: {describe_error(exc)}"
        else:
            for (work, _), person in zip(asked, answers, strict=True):
                work.person, work.matched = person, person is not None
        with anyio.CancelScope(shield=True):  # an answer paid for is kept, even if the run is being torn down
            await self._remember(chunk)

    def _changes(self, work: _Work) -> tuple[ContactChanges, LeadScore]:
        contact, person = work.contact, work.person
        overwrite = self.settings.enrichment.overwrite
        changes: ContactChanges = {}
        if person is not None:
            for name in ENRICHED_FIELDS:
                new, current = getattr(person, name), getattr(contact, name)
                if new and (current is None or (overwrite and current != new)):
                    changes[name] = new
        title = changes.get("title", contact.title)
        signals = self.context.signals(contact, person, title if isinstance(title, str) else None)
        score = score_lead(signals, self.settings.lead_score)
        level = (person.seniority if person else None) or seniority_of(title if isinstance(title, str) else None)
        for name, value in (("seniority", level), ("lead_score", score.score), ("lead_grade", score.grade)):
            if not _same(getattr(contact, name), value):
                changes[name] = value
        return changes, score

    async def _write(self, batch: list[Pending], limiter: anyio.CapacityLimiter) -> None:
        async with limiter:
            try:
                errors = await self.services.crm.update_contacts({w.contact.id: ch for w, ch, _ in batch})
            except SophiaError as exc:
                errors = {w.contact.id: f"{self.services.crm.name}: {describe_error(exc)}" for w, _, _ in batch}
        outcomes = [
            self._outcome(
                w, "failed" if errors.get(w.contact.id) else "written", changes, score, error=errors.get(w.contact.id)
            )
            for w, changes, score in batch
        ]
        await self._finish(outcomes)
        self._record(outcomes, stored=True)
        await self._report(f"wrote {plural(len(batch), 'contact')} to {self.services.crm.name}")

    @staticmethod
    def _outcome(
        work: _Work,
        status: Literal["written", "unchanged", "failed"],
        changes: ContactChanges | None = None,
        score: LeadScore | None = None,
        error: str | None = None,
    ) -> ContactOutcome:
        return ContactOutcome(
            contact_id=work.contact.id,
            status=status,
            matched=work.matched,
            reused=work.reused,
            changes=changes or {},
            score=score,
            error=error,
        )

    def _record(self, outcomes: list[ContactOutcome], stored: bool = False) -> None:
        for outcome in outcomes:
            self.outcomes[outcome.contact_id] = outcome
        if not stored:
            self._unstored.extend(outcomes)
        self.done = len(self.outcomes)

    async def _flush_unchanged(self) -> None:
        pending, self._unstored = self._unstored, []
        if pending:
            await self._finish(pending)
            await self._report(f"{plural(len(pending), 'contact')} needed no write")

    async def _report(self, message: str) -> None:
        if self.progress is not None:
            await self.progress(self.done, max(self.total, 1), message)


def _summary(outcomes: list[ContactOutcome]) -> EnrichmentSummary:
    scores = sorted(((o.score, o.contact_id) for o in outcomes if o.score), key=lambda s: (-s[0].score, s[1]))
    return EnrichmentSummary(
        fields_written=dict(Counter(f for o in outcomes if o.status == "written" for f in o.changes).most_common()),
        grades=dict(sorted(Counter(score.grade for score, _ in scores).items())),
        top_leads=[TopLead(contact_id=i, score=score.score, grade=score.grade) for score, i in scores[:TOP_LEADS]],
        errors=dict(Counter(o.error or "unknown" for o in outcomes if o.status == "failed").most_common()),
    )


def _report(run: Run, services: Services, outcomes: list[ContactOutcome]) -> EnrichmentReport:
    long = len(outcomes) > ROWS_UP_TO
    listed = [o for o in outcomes if o.status == "failed"] if long else outcomes
    ordered = sorted(listed, key=lambda o: o.status != "failed")
    return EnrichmentReport(
        summary=_summary(outcomes) if long else None,
        run_id=run.id,
        crm=services.crm.name,
        enricher=services.enricher.name,
        requested=len(outcomes),
        written=sum(o.status == "written" for o in outcomes),
        unchanged=sum(o.status == "unchanged" for o in outcomes),
        failed=sum(o.status == "failed" for o in outcomes),
        matched=sum(o.matched for o in outcomes),
        reused=sum(o.reused for o in outcomes),
        outcomes=ordered[:OUTCOMES_SHOWN],
        outcomes_omitted=max(0, len(ordered) - OUTCOMES_SHOWN),
    )


async def _select(services: Services, ids: list[str] | None, since: datetime | None) -> tuple[list[Contact], list[str]]:
    """The contacts to enrich, and the requested ids the CRM does not have."""
    if ids:
        wanted = list(dict.fromkeys(ids))
        found = await services.crm.get_contacts(wanted)
        return [found[i] for i in wanted if i in found], [i for i in wanted if i not in found]
    assert since is not None
    return await searched(services, ContactQuery(updated_since=since)), []


async def searched(services: Services, query: ContactQuery) -> list[Contact]:
    """Every contact the CRM's search finds (page after page), up to `MAX_SELECTED`."""
    contacts: list[Contact] = []
    cursor: str | None = None
    while True:
        page = await services.crm.search_contacts(query, 100, cursor)
        contacts += page.contacts
        cursor = page.next_cursor
        if not cursor or len(contacts) >= MAX_SELECTED:
            return contacts[:MAX_SELECTED]


async def enrich_contacts(
    services: Services,
    ids: list[str] | None = None,
    since: datetime | None = None,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> EnrichmentReport:
    """Enrich, score and write back the given contacts, or those changed in the CRM since `since`."""
    if not ids and since is None:
        raise InvalidInput("Give contact ids, or `since` (contacts changed in the CRM since then)")
    subject = plural(len(ids), "contact") if ids else f"contacts changed since {iso(since)}" if since else None
    inputs = {"ids": ids, "since": iso(since) if since else None, "force": force}
    async with start_run(services.runs, "enrich_contacts", subject, inputs) as run:
        contacts, missing = await run.step(
            "select contacts", lambda: _select(services, ids, since), lambda r: {"found": len(r[0]), "missing": r[1]}
        )
        outcomes = await Enrichment(services, run, force, progress).enrich(contacts)
        outcomes += [
            ContactOutcome(
                contact_id=i, status="failed", matched=False, error=f"No contact with id {i!r} in {services.crm.name}"
            )
            for i in missing
        ]
        report = _report(run, services, outcomes)
        run.output = report.model_dump(exclude={"outcomes"})
    return report


async def enrich_one(
    services: Services, contact_id: str, *, force: bool = False, progress: Progress | None = None
) -> tuple[EnrichmentReport, Contact]:
    """Enrich, score and write back one contact; returns the run's report and the contact as it is now."""
    contact = await services.crm.get_contact(contact_id)
    async with start_run(services.runs, "enrich_contact", contact_id, {"contact_id": contact_id}) as run:
        outcomes = await Enrichment(services, run, force, progress).enrich([contact])
        report = _report(run, services, outcomes)
        run.output = report.model_dump()
    return report, await services.crm.get_contact(contact_id)


async def rescored(services: Services, client_ids: list[str]) -> dict[str, dict[str, ContactChanges]]:
    """The lead score and grade enrichment writes, recomputed now for the contacts of these clients (from what the
    enricher last said, no new credit): per client, per contact, only the fields that differ from the CRM's."""
    out: dict[str, dict[str, ContactChanges]] = {}
    for client_id in client_ids:
        contacts = await searched(services, ContactQuery(client_id=client_id))
        context = await scoring_context(services, contacts)
        for contact in contacts:
            person = await last_enrichment(services, contact.id)
            score = score_lead(context.signals(contact, person, contact.title), services.settings.lead_score)
            changes: ContactChanges = {
                name: value
                for name, value in (("lead_score", score.score), ("lead_grade", score.grade))
                if not _same(getattr(contact, name), value)
            }
            if changes:
                out.setdefault(client_id, {})[contact.id] = changes
    return out
