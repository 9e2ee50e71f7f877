"""Loading calls and transcripts given in Gong API v2's own JSON shapes (exports, the demo, a sync).

A body is the response of `/v2/calls/extensive` (`calls`) or `/v2/calls/transcript` (`callTranscripts`), or a
list of such pages. Calls are upserted by id, so importing the same export twice changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from sophia_mcp.adapters.gong_payloads import ParsedCall, parse_call, parse_transcript
from sophia_mcp.app.services import Services
from sophia_mcp.domain.calls import Transcript
from sophia_mcp.domain.model import Model
from sophia_mcp.errors import InvalidInput, SophiaError
from sophia_mcp.ports.progress import Progress
from sophia_mcp.workflows.runs import start_run

BATCH = 100


class ImportReport(Model):
    run_id: str | None = None
    sources: int = 0
    calls_new: int = 0
    calls_updated: int = 0
    calls_unchanged: int = Field(default=0, description="Calls already stored exactly as given.")
    transcripts: int = 0
    problems: list[str] = Field(default_factory=list, description="What could not be imported, and why.")


def export_files(paths: Sequence[Path]) -> list[Path]:
    """The JSON files named, or found (recursively) under the folders named."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*.json") if p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise InvalidInput(f"{path} does not exist; give a Gong export file or a folder of them")
    return files


def read_export(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path} is not readable JSON: {exc}") from exc


def _pages(body: Any) -> Iterable[dict[str, Any]]:
    pages = body if isinstance(body, list) else [body]
    for page in pages:
        if not isinstance(page, dict) or not ({"calls", "callTranscripts"} & page.keys()):
            raise InvalidInput("not a Gong /v2/calls/extensive or /v2/calls/transcript response")
        yield page


async def import_gong_bodies(
    services: Services, bodies: Sequence[tuple[str, Any]], progress: Progress | None = None
) -> ImportReport:
    """Import `(source name, parsed JSON body)` pairs; a bad record is reported, the rest still land."""
    report = ImportReport(sources=len(bodies))
    calls: list[ParsedCall] = []
    transcripts: list[Transcript] = []
    for source, body in bodies:
        try:
            for page in _pages(body):
                for raw in page.get("calls") or []:
                    try:
                        calls.append(parse_call(raw))
                    except SophiaError as exc:
                        report.problems.append(f"{source}: {exc}")
                for raw in page.get("callTranscripts") or []:
                    try:
                        transcripts.append(parse_transcript(raw))
                    except SophiaError as exc:
                        report.problems.append(f"{source}: {exc}")
        except SophiaError as exc:
            report.problems.append(f"{source}: {exc}")

    total = len(calls) + len(transcripts)

    async with start_run(services.runs, "import_calls", None, {"sources": [s for s, _ in bodies]}) as run:
        report.run_id = run.id
        done = 0
        for start in range(0, len(calls), BATCH):
            batch = calls[start : start + BATCH]
            new, updated, unchanged = await services.local_calls.save_calls(batch, source="gong")
            report.calls_new += new
            report.calls_updated += updated
            report.calls_unchanged += unchanged
            done += len(batch)
            if progress:
                await progress(done, total, "calls")
        for start in range(0, len(transcripts), BATCH):
            tbatch = transcripts[start : start + BATCH]
            saved, missing = await services.local_calls.save_transcripts(tbatch)
            report.transcripts += saved
            report.problems.extend(missing)
            done += len(tbatch)
            if progress:
                await progress(done, total, "transcripts")
        run.output = report.model_dump(exclude={"run_id"})
    return report


async def import_gong_export(
    services: Services, paths: Sequence[Path], progress: Progress | None = None
) -> ImportReport:
    """`sophia-mcp calls import PATH...`: files or folders of saved Gong responses."""
    bodies: list[tuple[str, Any]] = []
    problems: list[str] = []
    for path in export_files(paths):
        try:
            bodies.append((str(path), read_export(path)))
        except InvalidInput as exc:
            problems.append(str(exc))
    report = await import_gong_bodies(services, bodies, progress)
    report.sources += len(problems)
    report.problems[:0] = problems
    return report
