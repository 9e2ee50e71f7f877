"""The `folder.file` action: the knowledge base brought in step with one file of the watched folder
(`SOPHIA_KNOWLEDGE__WATCH`), as the file is now.

It looks at the file itself rather than at what the event says was seen: a file there is ingested (the same content
again is a no-op), a file gone is removed. Events of one file processed late or out of order, or twice, all end
where the folder is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio.to_thread

from sophia_mcp.app.services import Services
from sophia_mcp.domain.inbox import InboxEvent
from sophia_mcp.errors import InvalidInput, NotFound
from sophia_mcp.workflows.knowledge import delete_document, file_document_id, ingest_file


async def apply_folder_file(services: Services, event: InboxEvent) -> dict[str, Any]:
    """Ingest the event's file as it is now, or remove its document if the file is gone."""
    return await reconcile_file(services, str(event.payload.get("path") or ""))


async def reconcile_file(services: Services, path: str) -> dict[str, Any]:
    """Make the knowledge base hold the file at `path` as it is now (ingested), or not at all (gone). A file that
    cannot be ingested (too big, no text, outside the roots) is skipped with the reason: trying again would not help."""
    watch = services.settings.knowledge.watch
    file = Path(path)
    if watch is None or not file.is_absolute() or not file.parent.resolve().is_relative_to(watch.resolve()):
        return {"path": path, "status": "skipped", "why": "not in the watched folder (SOPHIA_KNOWLEDGE__WATCH)"}
    if await anyio.to_thread.run_sync(file.is_file):
        try:
            report = await ingest_file(services, path)
        except InvalidInput as exc:
            return {"path": path, "status": "skipped", "why": str(exc)}
        return {"path": path, "status": report.status, "document_id": report.document.id}
    try:
        document = await delete_document(services, file_document_id(file.parent.resolve() / file.name))
    except NotFound:
        return {"path": path, "status": "gone", "why": "the file is gone and was not in the knowledge base"}
    return {"path": path, "status": "removed", "document_id": document.id}
