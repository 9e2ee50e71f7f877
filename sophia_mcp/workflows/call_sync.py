"""`sophia-mcp calls sync`: pull calls and their transcripts from Gong into the local store, page by page.

Each page is imported as soon as it arrives, so an interruption keeps what came before; importing is an upsert,
so running the sync again (or over an overlapping range) never duplicates a call.
"""

from __future__ import annotations

from datetime import datetime

from sophia_mcp.adapters.gong import CONTENT_SELECTOR, GongCalls
from sophia_mcp.app.services import Services
from sophia_mcp.ports.progress import Progress
from sophia_mcp.workflows.call_import import ImportReport, import_gong_bodies


async def sync_calls(
    services: Services,
    gong: GongCalls,
    since: datetime,
    until: datetime | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    total = ImportReport()
    body = {"filter": gong.call_filter(since, until), "contentSelector": CONTENT_SELECTOR}
    async for page in gong.pages("/v2/calls/extensive", body):
        ids = [str(c["metaData"]["id"]) for c in page.get("calls") or []]
        bodies = [("gong:/v2/calls/extensive", page)]
        if ids:
            async for transcripts in gong.pages("/v2/calls/transcript", {"filter": gong.call_filter(call_ids=ids)}):
                bodies.append(("gong:/v2/calls/transcript", transcripts))
        report = await import_gong_bodies(services, bodies)
        total.sources += report.sources
        total.calls_new += report.calls_new
        total.calls_updated += report.calls_updated
        total.calls_unchanged += report.calls_unchanged
        total.transcripts += report.transcripts
        total.problems += report.problems
        total.run_id = report.run_id
        if progress is not None:
            records = page.get("records") or {}
            await progress(
                total.calls_new + total.calls_updated + total.calls_unchanged,
                float(records.get("totalRecords") or 0),
                "calls",
            )
    return total
