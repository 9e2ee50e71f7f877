"""`sophia-mcp calls sync`: pull calls and their transcripts from Gong into the local store, page by page.

Each page is imported as soon as it arrives, so an interruption keeps what came before; importing is an upsert,
so running the sync again (or over an overlapping range) never duplicates a call. The next page is fetched while
the last one is imported: Gong's rate limit, not the import, sets the pace.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from sophia_mcp.adapters.gong import CONTENT_SELECTOR, GongCalls
from sophia_mcp.app.services import Services
from sophia_mcp.ports.progress import Progress
from sophia_mcp.workflows.call_import import ImportReport, import_gong_bodies

Fetched = tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]  # a page of calls, and it with its transcripts


async def _fetch_pages(gong: GongCalls, body: dict[str, Any], pages: MemoryObjectSendStream[Fetched]) -> None:
    """Every page of calls with its transcripts, one page ahead of the import."""
    async with pages:
        async for page in gong.pages("/v2/calls/extensive", body):
            ids = [str(c["metaData"]["id"]) for c in page.get("calls") or []]
            bodies = [("gong:/v2/calls/extensive", page)]
            if ids:
                async for transcripts in gong.pages("/v2/calls/transcript", {"filter": gong.call_filter(call_ids=ids)}):
                    bodies.append(("gong:/v2/calls/transcript", transcripts))
            await pages.send((page, bodies))


async def sync_calls(
    services: Services,
    gong: GongCalls,
    since: datetime,
    until: datetime | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    total = ImportReport()
    body = {"filter": gong.call_filter(since, until), "contentSelector": CONTENT_SELECTOR}
    sending, receiving = anyio.create_memory_object_stream[Fetched](1)
    try:
        async with anyio.create_task_group() as group, receiving:
            group.start_soon(_fetch_pages, gong, body, sending)
            async for page, bodies in receiving:
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
    except BaseExceptionGroup as failed:  # Gong's or the store's error, raised as itself for the caller to say
        if len(failed.exceptions) != 1:
            raise
        error = failed.exceptions[0]
        raise error from error.__cause__
    return total
