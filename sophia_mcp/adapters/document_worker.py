"""Parsing PDF, DOCX and HTML files in a worker process with a time limit, off the event loop.

A crafted file can keep a parser busy for minutes or fill memory; on the event loop it would stall every session
of the server. Each parse runs in a process of its own, killed when its time is up or its caller gives up, and
at most `PARALLEL` run at once per event loop. The processes fork from a forkserver that imported the parsers
once, so a parse starts in milliseconds rather than paying for a new interpreter (spawn, where there is no
forkserver).
"""

from __future__ import annotations

import logging
import multiprocessing
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext, SpawnContext

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar

from sophia_mcp.analysis.documents import ParsedDocument, parse_document
from sophia_mcp.domain.knowledge import Format
from sophia_mcp.errors import InvalidInput

log = logging.getLogger(__name__)

PARALLEL = 2  # parses at once per event loop: each holds a file and its text in a process of its own
IN_PROCESS: frozenset[Format] = frozenset({"markdown", "text"})  # decoding text needs no parser to fear
PRELOAD = [__name__, "docx", "docx.enum.style", "docx.table", "docx.text.paragraph", "pypdf", "selectolax.lexbor"]

_limiter: RunVar[anyio.CapacityLimiter] = RunVar("document parsers")
_context: ForkServerContext | SpawnContext | None = None


def _start_method() -> ForkServerContext | SpawnContext:
    global _context
    if _context is None:
        if "forkserver" in multiprocessing.get_all_start_methods():
            forkserver = multiprocessing.get_context("forkserver")
            forkserver.set_forkserver_preload(PRELOAD)
            _context = forkserver
        else:
            _context = multiprocessing.get_context("spawn")
    return _context


def _parsers() -> anyio.CapacityLimiter:
    try:
        return _limiter.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(PARALLEL)
        _limiter.set(limiter)
        return limiter


def _parse_here(reply: Connection, data: bytes, fmt: Format, max_unpacked: int) -> None:
    """The worker's whole life: parse, send back the document or why not, exit."""
    try:
        reply.send(parse_document(data, fmt, max_unpacked))
    except InvalidInput as exc:
        reply.send(exc)
    except Exception as exc:  # a parser's own failure on a file it cannot take: the file's fault, said so
        reply.send(InvalidInput(f"This {fmt.upper()} file cannot be read ({type(exc).__name__}); it may be damaged"))
    finally:
        reply.close()


def _receive(answers: Connection) -> ParsedDocument | InvalidInput | None:
    try:
        answer = answers.recv()
    except (EOFError, OSError):  # the worker died before answering
        return None
    return answer if isinstance(answer, ParsedDocument | InvalidInput) else None


async def read_document(data: bytes, fmt: Format, *, time_limit_s: float, max_unpacked: int) -> ParsedDocument:
    """`parse_document` in a worker process, stopped after `time_limit_s`; its refusals are raised here."""
    if fmt in IN_PROCESS:
        return parse_document(data, fmt, max_unpacked)
    async with _parsers():
        context = _start_method()
        answers, reply = context.Pipe(duplex=False)
        worker = context.Process(target=_parse_here, args=(reply, data, fmt, max_unpacked), daemon=True)
        try:
            await anyio.to_thread.run_sync(worker.start)
            reply.close()  # the worker holds the other end: its exit ends the wait below
            # Cancelling the call abandons the wait; killing the worker (below) then ends it.
            ready = await anyio.to_thread.run_sync(answers.poll, time_limit_s, abandon_on_cancel=True)
            answer = await anyio.to_thread.run_sync(_receive, answers) if ready else None
        finally:
            if worker.pid is not None:  # started
                if worker.is_alive():
                    worker.kill()
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(worker.join)
            answers.close()
            reply.close()
    if isinstance(answer, ParsedDocument):
        return answer
    if isinstance(answer, InvalidInput):
        raise answer
    if not ready:
        raise InvalidInput(
            f"Reading this {fmt.upper()} file took longer than {time_limit_s:g} s and was stopped "
            "(SOPHIA_KNOWLEDGE__PARSE_TIMEOUT_S); it may be built to be slow, or too large: split it"
        )
    log.warning("the %s parser ended without an answer (exit code %s)", fmt, worker.exitcode)
    raise InvalidInput(f"This {fmt.upper()} file could not be read: its parser stopped (out of memory?)")
