"""The ports and shared pieces a workflow runs on, bundled; `app.backends.build_services` fills it from settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

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
from sophia_mcp.store.enrichment import EnrichmentLedger
from sophia_mcp.store.health_alerts import HealthAlertLedger
from sophia_mcp.store.inbox import ConnectorCursors, Inbox
from sophia_mcp.store.incidents import Incidents
from sophia_mcp.store.outbox import Outbox
from sophia_mcp.store.runs import RunLedger
from sophia_mcp.store.schedules import Schedules
from sophia_mcp.store.snapshots import Snapshots
from sophia_mcp.store.suggestions import Suggestions


class ServiceCheck(NamedTuple):
    """What `doctor` shows for one port: what its service said, or a problem, or a warning."""

    port: str
    fine: str | None = None
    problem: str | None = None
    warning: str | None = None


@dataclass
class Services:
    """Every port's adapter, as `app.backends` chose it, and the store's own pieces the workflows share."""

    settings: Settings
    store: Store
    calls: CallSource
    analyst: Analyst
    warehouse: Warehouse
    notifier: Notifier
    crm: CRM
    enricher: Enricher
    embedder: Embedder
    vectors: VectorIndex
    tracker: IssueTracker
    web: WebSearch
    cache: Cache
    meetings: MeetingScheduler
    documents: Documents
    bug_reports: BugReports
    outbox: Outbox
    # Events from outside (webhooks, polling connectors) and how far each connector has read.
    inbox: Inbox
    connector_cursors: ConnectorCursors
    # The store's repositories: runs, schedules and the last health alert of each client.
    runs: RunLedger
    schedules: Schedules
    health_alerts: HealthAlertLedger
    # The store's own copies, always present whatever the backends: imports land here, completions read here.
    local_calls: LocalCalls
    clients: LocalCRM
    # Repositories of the store.
    enrichments: EnrichmentLedger
    snapshots: Snapshots
    churn_signals: ChurnSignals
    competition: Competition
    suggestions: Suggestions
    # The healing watch's incidents: what it opened, and the remediations in force that delivery, the strategic
    # query and the analyst choice obey.
    incidents: Incidents
    # The designed workflows deployed (their specs by version) and their runs.
    designed_workflows: DesignedWorkflows
    # The configured model that writes text (the strategic answer); None when no model is configured.
    writer: Writer | None = None

    def close(self) -> None:
        self.store.close()

    async def aclose(self) -> None:
        """Close the network clients of real backends, each once (the store closes with `close`)."""
        closed: set[int] = set()
        for adapter in vars(self).values():
            closer = getattr(adapter, "aclose", None)
            if closer is not None and id(adapter) not in closed:
                closed.add(id(adapter))
                await closer()
