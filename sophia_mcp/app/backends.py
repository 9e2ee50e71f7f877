"""The one place that reads settings and builds the adapters behind each port: the registry of backends.

Each port has one entry listing its backends, each the value of its `SOPHIA_<SECTION>__BACKEND` setting with the
function that builds it; `doctor` shows the choice, `build_services` builds what is chosen. Adding a backend is an
entry here and its name in the section's `backend` Literal (settings cannot import this module: the adapters it
builds import their settings sections), and the two are checked against each other when this module loads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, get_args

from pydantic import BaseModel

from sophia_mcp.adapters.lexicon_analyst import LocalAnalyst
from sophia_mcp.adapters.local_warehouse import LocalWarehouse
from sophia_mcp.adapters.memory_cache import MemoryCache
from sophia_mcp.adapters.no_web_search import NoWebSearch
from sophia_mcp.adapters.outbox_notifier import LocalNotifier
from sophia_mcp.app.services import ServiceCheck, Services
from sophia_mcp.errors import SophiaError
from sophia_mcp.ports.analyst import Analyst
from sophia_mcp.ports.cache import Cache
from sophia_mcp.ports.calls import CallSource
from sophia_mcp.ports.crm import CRM
from sophia_mcp.ports.embed import Embedder
from sophia_mcp.ports.enrich import Enricher
from sophia_mcp.ports.issues import IssueTracker
from sophia_mcp.ports.meetings import MeetingScheduler
from sophia_mcp.ports.notify import Notifier
from sophia_mcp.ports.vectors import VectorIndex
from sophia_mcp.ports.warehouse import Warehouse
from sophia_mcp.ports.web import WebSearch
from sophia_mcp.ports.writer import Writer
from sophia_mcp.settings import Settings
from sophia_mcp.store.bugs import BugReports
from sophia_mcp.store.calls import LocalCalls
from sophia_mcp.store.churn import ChurnSignals
from sophia_mcp.store.clients import LocalCRM
from sophia_mcp.store.competition import Competition
from sophia_mcp.store.database import Store
from sophia_mcp.store.designed_workflows import DesignedWorkflows
from sophia_mcp.store.documents import Documents
from sophia_mcp.store.engine import open_store
from sophia_mcp.store.enrichment import EnrichmentLedger
from sophia_mcp.store.firmographics import LocalEnricher
from sophia_mcp.store.health_alerts import HealthAlertLedger
from sophia_mcp.store.inbox import ConnectorCursors, Inbox
from sophia_mcp.store.incidents import Incidents
from sophia_mcp.store.meetings import Meetings
from sophia_mcp.store.outbox import Outbox
from sophia_mcp.store.runs import RunLedger
from sophia_mcp.store.schedules import Schedules
from sophia_mcp.store.snapshots import Snapshots
from sophia_mcp.store.suggestions import Suggestions
from sophia_mcp.store.tracker import LocalTracker

T = TypeVar("T", covariant=True)


@dataclass(frozen=True)
class Embedded:
    """What every backend may build on: the settings, the store, and the store's own copies of calls and clients
    (the local backends of CallSource and CRM are those copies)."""

    settings: Settings
    store: Store
    local_calls: LocalCalls
    clients: LocalCRM


@dataclass(frozen=True)
class Backend(Generic[T]):
    """One way to serve a port: the name its setting takes, what it is, and what builds it."""

    name: str
    description: str
    build: Callable[[Embedded], T]


@dataclass(frozen=True)
class Port(Generic[T]):
    """A port, the settings section whose `backend` chooses its adapter (None: chosen otherwise), and its
    backends, the embedded default first."""

    name: str
    field: str  # the `Services` attribute it fills
    section: str | None
    backends: tuple[Backend[T], ...]
    chooser: Callable[[Settings], str] | None = None  # for a port with no `backend` setting

    def choice(self, settings: Settings) -> str:
        """The name of the backend the settings choose."""
        if self.chooser is not None or self.section is None:
            assert self.chooser is not None, f"{self.name} has neither a settings section nor a chooser"
            return self.chooser(settings)
        chosen: str = getattr(settings, self.section).backend
        return chosen

    def build(self, base: Embedded) -> T:
        """The adapter of the chosen backend."""
        name = self.choice(base.settings)
        return next(b for b in self.backends if b.name == name).build(base)


# Every client of a real service (httpx with its retries and rate limits, openai, snowflake-connector, slack-sdk
# with aiohttp, redis) and the bundled embedding model (numpy and its weights) load with the backend that needs them,
# not with this module: a server on the embedded default pays only for what it is configured with.


def _gong(base: Embedded) -> CallSource:
    from sophia_mcp.adapters.gong import GongCalls, gong_client

    return GongCalls(gong_client(base.settings.gong))


def _hubspot(base: Embedded) -> CRM:
    from sophia_mcp.adapters.hubspot import HubSpotCRM, hubspot_client

    return HubSpotCRM(hubspot_client(base.settings.hubspot), base.settings.hubspot)


def _apollo(base: Embedded) -> Enricher:
    from sophia_mcp.adapters.apollo import ApolloEnricher, apollo_client

    return ApolloEnricher(apollo_client(base.settings.apollo), base.settings.apollo)


def _pinecone(base: Embedded) -> VectorIndex:
    from sophia_mcp.adapters.pinecone import PineconeIndex, pinecone_client

    return PineconeIndex(pinecone_client(base.settings.pinecone), base.settings.pinecone.namespace)


def _linear(base: Embedded) -> IssueTracker:
    from sophia_mcp.adapters.linear import LinearTracker, linear_client
    from sophia_mcp.store.issue_keys import IssueKeys

    return LinearTracker(linear_client(base.settings.linear), IssueKeys(base.store, "linear"), base.settings.linear)


def _tavily(base: Embedded) -> WebSearch:
    from sophia_mcp.adapters.web_search import TavilySearch

    return TavilySearch(base.settings.tavily)


def _perplexity(base: Embedded) -> WebSearch:
    from sophia_mcp.adapters.web_search import PerplexitySearch

    return PerplexitySearch(base.settings.perplexity)


def _caldav(base: Embedded) -> MeetingScheduler:
    from sophia_mcp.adapters.caldav_calendar import CalDAVCalendar

    return CalDAVCalendar(base.settings.calendar, Meetings(base.store))


def _writer(settings: Settings) -> Writer | None:
    """The configured model that writes answers, when there is one."""
    if settings.openai.api_key is None:
        return None
    from sophia_mcp.adapters.openai_writer import OpenAIWriter

    return OpenAIWriter(settings.openai)


def _local_embedder(base: Embedded) -> Embedder:
    from sophia_mcp.adapters.local_embed import LocalEmbedder

    return LocalEmbedder()


def _local_vectors(base: Embedded) -> VectorIndex:
    from sophia_mcp.store.vectors import LocalVectorIndex

    return LocalVectorIndex(base.store)


def _openai_embedder(base: Embedded) -> Embedder:
    from sophia_mcp.adapters.openai_embed import OpenAIEmbedder

    return OpenAIEmbedder(base.settings.openai)


def _openai_analyst(base: Embedded) -> Analyst:
    from sophia_mcp.adapters.openai_analyst import OpenAIAnalyst

    settings = base.settings
    return OpenAIAnalyst(settings.openai, settings.competitors, fallback=LocalAnalyst.configured(settings))


def _snowflake(base: Embedded) -> Warehouse:
    from sophia_mcp.adapters.snowflake import SnowflakeWarehouse

    return SnowflakeWarehouse(base.settings.snowflake)


def _slack(base: Embedded) -> Notifier:
    from sophia_mcp.adapters.slack import SlackNotifier

    return SlackNotifier(base.settings.slack)


def _redis(base: Embedded) -> Cache:
    from sophia_mcp.adapters.redis_cache import RedisCache

    return RedisCache(base.settings.redis.url or "")


def _auto_analyst(base: Embedded) -> Analyst:
    if base.settings.openai.api_key is not None:
        return _openai_analyst(base)
    return LocalAnalyst.configured(base.settings)


CALL_SOURCE = Port[CallSource](
    "CallSource", "calls", "gong", (
        Backend("local", "the calls kept in the store", lambda b: b.local_calls),
        Backend("gong", "Gong's API", _gong),
    ),
)  # fmt: skip
ANALYST = Port[Analyst](
    "Analyst", "analyst", "analyst", (
        Backend("local", "the lexicon: VADER sentiment, competitor aliases, risk phrases",
                lambda b: LocalAnalyst.configured(b.settings)),
        Backend("openai", "an OpenAI-compatible model, the lexicon when it fails", _openai_analyst),
        # The client's model is picked per request by the MCP surface; this is what stands behind it.
        Backend("sampling", "the connected client's model (MCP sampling)",
                lambda b: LocalAnalyst.configured(b.settings)),
        Backend("auto", "OpenAI when SOPHIA_OPENAI__API_KEY is set, else the lexicon", _auto_analyst),
    ),
)  # fmt: skip
WAREHOUSE = Port[Warehouse](
    "Warehouse", "warehouse", "snowflake", (
        Backend("local", "SQLite tables in the store",
                lambda b: LocalWarehouse(b.store, b.settings.analytics.max_value_kb * 1024)),
        Backend("snowflake", "Snowflake", _snowflake),
    ),
)  # fmt: skip
NOTIFIER = Port[Notifier](
    "Notifier", "notifier", "slack", (
        Backend("local", "the outbox in the store", lambda b: LocalNotifier()),
        Backend("slack", "Slack", _slack),
    ),
)  # fmt: skip
CRM_PORT = Port[CRM](
    "CRM", "crm", "hubspot", (
        Backend("local", "the clients and contacts kept in the store", lambda b: b.clients),
        Backend("hubspot", "HubSpot", _hubspot),
    ),
)  # fmt: skip
ENRICHER = Port[Enricher](
    "Enricher", "enricher", "apollo", (
        Backend("local", "the firmographics kept in the store", lambda b: LocalEnricher(b.store)),
        Backend("apollo", "Apollo", _apollo),
    ),
)  # fmt: skip
EMBEDDER = Port[Embedder](
    "Embedder", "embedder", "embeddings", (
        Backend("local", "the bundled model (wordllama)", _local_embedder),
        Backend("openai", "OpenAI's embeddings", _openai_embedder),
    ),
)  # fmt: skip
VECTOR_INDEX = Port[VectorIndex](
    "VectorIndex", "vectors", "pinecone", (
        Backend("local", "vectors kept in the store", _local_vectors),
        Backend("pinecone", "Pinecone", _pinecone),
    ),
)  # fmt: skip
ISSUE_TRACKER = Port[IssueTracker](
    "IssueTracker", "tracker", "linear", (
        Backend("local", "issues kept in the store", lambda b: LocalTracker(b.store)),
        Backend("linear", "Linear", _linear),
    ),
)  # fmt: skip
MEETINGS = Port[MeetingScheduler](
    "MeetingScheduler", "meetings", "calendar", (
        Backend("local", "iCalendar invites kept in the store", lambda b: Meetings(b.store)),
        Backend("caldav", "a CalDAV calendar, at the first free slot of working hours", _caldav),
    ),
)  # fmt: skip
WEB_SEARCH = Port[WebSearch](
    "WebSearch", "web", "web_search", (
        Backend("local", "none: the strategic query reports the gap", lambda b: NoWebSearch()),
        Backend("tavily", "Tavily", _tavily),
        Backend("perplexity", "Perplexity", _perplexity),
    ),
)  # fmt: skip
CACHE = Port[Cache](
    "Cache", "cache", None, (
        Backend("memory", "this process's memory", lambda b: MemoryCache()),
        Backend("redis", "Redis, shared by replicas", _redis),
    ),
    chooser=lambda settings: "redis" if settings.redis.url else "memory",
)  # fmt: skip

PORTS: tuple[Port[object], ...] = (
    CALL_SOURCE, ANALYST, WAREHOUSE, NOTIFIER, CRM_PORT, ENRICHER, EMBEDDER, VECTOR_INDEX, ISSUE_TRACKER, WEB_SEARCH,
    CACHE, MEETINGS,
)  # fmt: skip


def check_registry(ports: Sequence[Port[object]] = PORTS) -> None:
    """Raise if a port's backends and the values its `backend` setting accepts differ."""
    for port in ports:
        if port.section is None:
            continue
        section = Settings.model_fields[port.section].annotation
        assert isinstance(section, type) and issubclass(section, BaseModel)
        accepted = set(get_args(section.model_fields["backend"].annotation))
        registered = {backend.name for backend in port.backends}
        if accepted != registered:
            raise RuntimeError(f"{port.name}: SOPHIA_{port.section.upper()}__BACKEND takes {sorted(accepted)}, the "
                               f"registry in app/backends.py builds {sorted(registered)}")  # fmt: skip


check_registry()


def backend_choices(settings: Settings) -> dict[str, str]:
    """Which backend serves each port, as configured (for `doctor`)."""
    return {port.name: port.choice(settings) for port in PORTS}


def build_services(settings: Settings) -> Services:
    """The adapters the settings choose, on the store `SOPHIA_STORE__URL` names (else the file at
    `settings.store_path`)."""
    store = open_store(settings.store_path, settings.store.url)
    local_calls = LocalCalls(store, settings.competitors)
    clients = LocalCRM(store)
    base = Embedded(settings, store, local_calls, clients)
    # In the order a misconfigured backend has always been reported in (`doctor` names the first).
    calls, analyst, warehouse = CALL_SOURCE.build(base), ANALYST.build(base), WAREHOUSE.build(base)
    crm, enricher, embedder = CRM_PORT.build(base), ENRICHER.build(base), EMBEDDER.build(base)
    vectors, tracker, web = VECTOR_INDEX.build(base), ISSUE_TRACKER.build(base), WEB_SEARCH.build(base)
    cache, notifier, meetings = CACHE.build(base), NOTIFIER.build(base), MEETINGS.build(base)

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
        meetings=meetings,
        documents=Documents(store),
        bug_reports=BugReports(store),
        outbox=Outbox(store),
        inbox=Inbox(store),
        connector_cursors=ConnectorCursors(store),
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
        incidents=Incidents(store),
        designed_workflows=DesignedWorkflows(store),
        writer=_writer(settings),
    )


def start_services(settings: Settings) -> Services:
    """The services a process works with: built, and what a process of this machine that died left half done put
    back (its runs marked interrupted, what it was sending and the events it held due again). Blocking."""
    services = build_services(settings)
    services.runs.reap_interrupted()
    services.inbox.release_abandoned()
    return services


def adapters_by_port(services: Services) -> dict[str, object]:
    """The adapter behind each port, by port name."""
    return {port.name: getattr(services, port.field) for port in PORTS}


async def check_real_services(services: Services) -> list[ServiceCheck]:
    """What each port served by a real service said, or why it failed: a failure of an optional one (a cache) is
    only a warning, the port works without it."""
    results: list[ServiceCheck] = []
    for port, adapter in adapters_by_port(services).items():
        check = getattr(adapter, "check", None)
        if check is None:
            continue
        try:
            results.append(ServiceCheck(port, await check()))
        except SophiaError as exc:
            optional = getattr(adapter, "optional", False)
            results.append(ServiceCheck(port, warning=str(exc)) if optional else ServiceCheck(port, problem=str(exc)))
    return results
