"""The one place that reads settings and builds the adapters behind each port.

Real-service adapters are imported only when their backend is chosen, so a server on the embedded
default never pays for importing their clients.
"""

from __future__ import annotations

from sophia_mcp.adapters.local import LocalAnalyst, LocalNotifier, MemoryCache, NoWebSearch
from sophia_mcp.adapters.local_warehouse import LocalWarehouse
from sophia_mcp.adapters.openai_writer import OpenAIWriter
from sophia_mcp.app.services import Services
from sophia_mcp.ports.analyst import Analyst
from sophia_mcp.ports.cache import Cache
from sophia_mcp.ports.calls import CallSource
from sophia_mcp.ports.crm import CRM
from sophia_mcp.ports.embed import Embedder
from sophia_mcp.ports.enrich import Enricher
from sophia_mcp.ports.issues import IssueTracker
from sophia_mcp.ports.notify import Notifier
from sophia_mcp.ports.vectors import VectorIndex
from sophia_mcp.ports.warehouse import Warehouse
from sophia_mcp.ports.web import WebSearch
from sophia_mcp.settings import Settings
from sophia_mcp.store.bugs import BugReports
from sophia_mcp.store.calls import LocalCalls
from sophia_mcp.store.churn import ChurnSignals
from sophia_mcp.store.clients import LocalCRM
from sophia_mcp.store.competition import Competition
from sophia_mcp.store.database import Store
from sophia_mcp.store.documents import Documents
from sophia_mcp.store.enrichment import EnrichmentLedger
from sophia_mcp.store.firmographics import LocalEnricher
from sophia_mcp.store.health_alerts import HealthAlertLedger
from sophia_mcp.store.meetings import Meetings
from sophia_mcp.store.outbox import Outbox
from sophia_mcp.store.runs import RunLedger
from sophia_mcp.store.schedules import Schedules
from sophia_mcp.store.snapshots import Snapshots
from sophia_mcp.store.suggestions import Suggestions
from sophia_mcp.store.tracker import LocalTracker


def backend_choices(settings: Settings) -> dict[str, str]:
    """Which backend serves each port, as configured (for `doctor`)."""
    return {
        "CallSource": settings.gong.backend,
        "Analyst": settings.analyst.backend,
        "Warehouse": settings.snowflake.backend,
        "Notifier": settings.slack.backend,
        "CRM": settings.hubspot.backend,
        "Enricher": settings.apollo.backend,
        "Embedder": settings.embeddings.backend,
        "VectorIndex": settings.pinecone.backend,
        "IssueTracker": settings.linear.backend,
        "WebSearch": settings.web_search.backend,
        "Cache": "redis" if settings.redis.url else "memory",
    }


def build_services(settings: Settings) -> Services:
    store = Store(settings.store_path)
    local_calls = LocalCalls(store, settings.competitors)

    calls: CallSource
    if settings.gong.backend == "gong":
        from sophia_mcp.adapters.gong import GongCalls, gong_client

        calls = GongCalls(gong_client(settings.gong))
    else:
        calls = local_calls

    analyst: Analyst = LocalAnalyst(settings.competitors)
    choice = settings.analyst.backend
    # "sampling" needs the request's client, so the MCP surface picks it per call; this is what stands behind it.
    if choice == "openai" or (choice == "auto" and settings.openai.api_key is not None):
        from sophia_mcp.adapters.openai_analyst import OpenAIAnalyst

        analyst = OpenAIAnalyst(settings.openai, settings.competitors, fallback=analyst)

    warehouse: Warehouse
    if settings.snowflake.backend == "snowflake":
        from sophia_mcp.adapters.snowflake import SnowflakeWarehouse

        warehouse = SnowflakeWarehouse(settings.snowflake)
    else:
        warehouse = LocalWarehouse(store, settings.analytics.max_value_kb * 1024)

    clients = LocalCRM(store)
    crm: CRM = clients
    if settings.hubspot.backend == "hubspot":
        from sophia_mcp.adapters.hubspot import HubSpotCRM, hubspot_client

        crm = HubSpotCRM(hubspot_client(settings.hubspot), settings.hubspot)

    enricher: Enricher
    if settings.apollo.backend == "apollo":
        from sophia_mcp.adapters.apollo import ApolloEnricher, apollo_client

        enricher = ApolloEnricher(apollo_client(settings.apollo), settings.apollo)
    else:
        enricher = LocalEnricher(store)

    from sophia_mcp.adapters.local_embed import LocalEmbedder
    from sophia_mcp.store.vectors import LocalVectorIndex

    embedder: Embedder = LocalEmbedder()
    if settings.embeddings.backend == "openai":
        from sophia_mcp.adapters.openai_embed import OpenAIEmbedder

        embedder = OpenAIEmbedder(settings.openai)
    vectors: VectorIndex = LocalVectorIndex(store)
    if settings.pinecone.backend == "pinecone":
        from sophia_mcp.adapters.pinecone import PineconeIndex, pinecone_client

        vectors = PineconeIndex(pinecone_client(settings.pinecone), settings.pinecone.namespace)

    tracker: IssueTracker = LocalTracker(store)
    if settings.linear.backend == "linear":
        from sophia_mcp.adapters.linear import LinearTracker, linear_client

        tracker = LinearTracker(linear_client(settings.linear), store, settings.linear)

    web: WebSearch
    if settings.web_search.backend == "tavily":
        from sophia_mcp.adapters.web_search import TavilySearch

        web = TavilySearch(settings.tavily)
    elif settings.web_search.backend == "perplexity":
        from sophia_mcp.adapters.web_search import PerplexitySearch

        web = PerplexitySearch(settings.perplexity)
    else:
        web = NoWebSearch()

    cache: Cache = MemoryCache()
    if settings.redis.url:
        from sophia_mcp.adapters.redis_cache import RedisCache

        cache = RedisCache(settings.redis.url)

    notifier: Notifier
    if settings.slack.backend == "slack":
        from sophia_mcp.adapters.slack import SlackNotifier

        notifier = SlackNotifier(settings.slack)
    else:
        notifier = LocalNotifier()

    return Services(
        settings=settings,
        store=store,
        calls=calls,
        analyst=analyst,
        warehouse=warehouse,
        notifier=notifier,
        crm=crm,
        enricher=enricher,
        embedder=embedder,
        vectors=vectors,
        tracker=tracker,
        web=web,
        cache=cache,
        meetings=Meetings(store),
        documents=Documents(store),
        bug_reports=BugReports(store),
        outbox=Outbox(store),
        runs=RunLedger(store),
        schedules=Schedules(store),
        health_alerts=HealthAlertLedger(store),
        local_calls=local_calls,
        clients=clients,
        enrichments=EnrichmentLedger(store),
        snapshots=Snapshots(store),
        churn_signals=ChurnSignals(store),
        competition=Competition(store),
        suggestions=Suggestions(store),
        writer=OpenAIWriter(settings.openai) if settings.openai.api_key is not None else None,
    )
