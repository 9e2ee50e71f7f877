"""`sophia-mcp demo`: the bundled demo data set, loaded through the same import path as a real Gong export."""

from __future__ import annotations

from datetime import date

from sophia_mcp.app.services import Services
from sophia_mcp.demo.calls import generate_demo
from sophia_mcp.demo.documents import DOCUMENTS
from sophia_mcp.demo.history import churn_history
from sophia_mcp.domain.model import Model
from sophia_mcp.domain.times import utcnow
from sophia_mcp.ports.progress import Progress
from sophia_mcp.store.demo import DemoStore
from sophia_mcp.workflows.call_import import ImportReport, import_gong_bodies
from sophia_mcp.workflows.knowledge import ingest_text, ingested_batch


class DemoLoad(Model):
    loaded: bool
    clients: int
    contacts: int
    calls: ImportReport | None = None
    documents: int = 0


async def load_demo(services: Services, today: date | None = None, progress: Progress | None = None) -> DemoLoad:
    """Load the demo clients, contacts and calls into an empty store; a store with clients is left as it is."""
    existing = await services.clients.count()
    if existing:
        return DemoLoad(loaded=False, clients=existing, contacts=0)
    day = today or utcnow().date()
    data = generate_demo(day)
    await DemoStore(services.store).seed(data.clients, data.contacts, data.firmographics, churn_history(day))
    report = await import_gong_bodies(
        services,
        [("demo:/v2/calls/extensive", data.calls_extensive), ("demo:/v2/calls/transcript", data.transcripts)],
        progress,
    )
    documents = await load_demo_documents(services)
    return DemoLoad(
        loaded=True, clients=len(data.clients), contacts=len(data.contacts), calls=report, documents=documents
    )


async def load_demo_documents(services: Services) -> int:
    """Ingest the demo's playbooks, product and competitor notes, pricing policy and meeting notes."""
    for doc in DOCUMENTS:
        await ingest_text(
            services, doc.title, doc.text, document_id=f"demo-{doc.slug}", type=doc.type, tags=doc.tags,
            doc_date=doc.date,
        )  # fmt: skip
    await ingested_batch(services)
    return len(DOCUMENTS)
