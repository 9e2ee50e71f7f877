"""What every sophia-mcp server shares on the MCP side: errors as `isError` results that say what to fix,
lazily built services, `logging/setLevel`, completions from several providers, and tool annotations.

Servers under `sophia_mcp.servers` declare their tools on a `SophiaServer` (`declare_tool`, `declare_resource`, the
SDK's `prompt`); the composite server declares the same functions again under prefixes. Everything here is built on
the SDK's public API: what wraps a call (errors, time limit, size cap, names) is MCP middleware.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import typing
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal, TypeVar, cast

import anyio
import anyio.to_thread
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.elicitation import AcceptedElicitation
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import (
    ResourceError,
    ToolError,
)
from mcp.server.mcpserver.resolve import find_resolved_parameters
from mcp.server.mcpserver.utilities.context_injection import find_context_parameter
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata, func_metadata
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    CallToolResult,
    Completion,
    CompletionArgument,
    CompletionContext,
    EmptyResult,
    LoggingLevel,
    PromptReference,
    ResourceTemplateReference,
    SetLevelRequestParams,
    TextContent,
    ToolAnnotations,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from opentelemetry import trace
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from sophia_mcp import __version__
from sophia_mcp.app.backends import start_services
from sophia_mcp.app.services import Services
from sophia_mcp.errors import DiskFull, InvalidInput, NotFound, SophiaError
from sophia_mcp.mcp.tool_names import ToolNames, close_names, render_prose
from sophia_mcp.ports.progress import Progress
from sophia_mcp.settings import Settings, load_settings
from sophia_mcp.store.database import file_failure
from sophia_mcp.workflows.delivery import deliver_pending

log = logging.getLogger(__name__)

LEVELS: tuple[LoggingLevel, ...] = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
PYTHON_LEVELS: dict[LoggingLevel, int] = {
    "debug": logging.DEBUG, "info": logging.INFO, "notice": logging.INFO, "warning": logging.WARNING,
    "error": logging.ERROR, "critical": logging.CRITICAL, "alert": logging.CRITICAL, "emergency": logging.CRITICAL,
}  # fmt: skip

MAX_COMPLETIONS = 20
# The longest value a completion is looked up for: every id and name a tool takes is shorter.
MAX_TYPED = 200

# An idempotency key a caller gives: word characters and : . - / @ #. Its length is bounded by max_length, not in
# the pattern: a bounded repeat of \w compiles to a large automaton.
KEY_PATTERN = r"^[\w:.\-/@#]+$"

# A page cursor as a listing hands it out (sophia_mcp.domain.cursors): opaque to the caller, bounded like every string.
Cursor = Annotated[str | None, Field(max_length=1000, description="next_cursor from the previous page.")]
# Dates and times a tool takes: bounded, so no date arithmetic on them can overflow (9999-12-31 plus a day).
EARLIEST, LATEST = date(1900, 1, 1), date(2999, 12, 31)
CalendarDate = Annotated[date, Field(ge=EARLIEST, le=LATEST)]
Timestamp = Annotated[
    datetime, Field(ge=datetime.combine(EARLIEST, time.min, UTC), le=datetime.combine(LATEST, time.max, UTC))
]
# A listing's word on an empty store, so a model can tell the person what would fill it.
DEMO_HINT = "`sophia-mcp demo` loads the demo data"
EmptyNote = Annotated[str | None, Field(description="Set only when there are none at all yet: what would fill them.")]


def none_yet(found: Sequence[Any], everything_asked: bool, what: str, how: str) -> str | None:
    """The note for a listing that asked for everything (no filter, first page) and found nothing."""
    return f"There are no {what} yet: {how}." if everything_asked and not found else None


# A Slack channel by #name (lower case) or by id.
SlackChannel = Annotated[
    str, Field(pattern=r"^(#[a-z0-9][a-z0-9_-]{0,79}|[CGD][A-Z0-9]{6,20})$", max_length=81, examples=["#client-health"])
]

# (services, what the user typed so far, arguments already chosen) -> suggestions; runs in a worker thread.
Completer = Callable[[Services, str, dict[str, str]], list[str]]


def tool_hints(
    title: str, *, read_only: bool, destructive: bool = False, idempotent: bool = True, open_world: bool = False
) -> ToolAnnotations:
    """Tool hints for clients; `open_world` is true when the tool reaches a service outside this machine."""
    return ToolAnnotations(
        title=title,
        read_only_hint=read_only,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=open_world,
    )


# An error's text is for a model to read and act on: past this it is cut (an argument echoed whole, say 10 MB).
MAX_ERROR_CHARS = 2000
# Problems listed of one call's arguments; the rest are counted.
MAX_PROBLEMS = 10


def brief(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """`text` cut to `limit` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters not shown)"


def describe_validation(tool: str, error: ValidationError) -> str:
    """A short, fixable account of bad arguments: which argument, what is wrong, what was sent."""
    problems = error.errors(include_url=False)
    lines = []
    for item in problems[:MAX_PROBLEMS]:
        where = brief(".".join(str(part) for part in item["loc"]) or "arguments", 80)
        sent = "" if item["type"] == "missing" else f" (got {item['input']!r:.80})"
        lines.append(f"- {where}: {brief(item['msg'], 300)}{sent}")
    if len(problems) > MAX_PROBLEMS:
        lines.append(f"- and {len(problems) - MAX_PROBLEMS} more like these")
    return f"Invalid arguments for {tool}; fix these and call again:\n" + "\n".join(lines)


def unknown(kind: str, asked: str, nearest: list[str], listing: str) -> str:
    """What to say to a call of a tool or prompt that does not exist: the nearest real names, else where to look."""
    hint = f"did you mean {' or '.join(nearest)}?" if nearest else f"{listing} lists what this server offers"
    return f"Unknown {kind} {brief(asked, 100)}; {hint}"


def how_to_shrink(schema: Mapping[str, Any], arguments: Mapping[str, Any], size: int, cap: int) -> str:
    """What to call a tool with for a result under `cap` characters, from its own arguments (its input schema):
    a smaller limit (with a number that fits), its cursor to page on, the optional arguments that narrow it."""
    properties: Mapping[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    ways = []
    for name, prop in properties.items():
        if "limit" in name:
            asked = arguments.get(name) or prop.get("default")
            if isinstance(asked, int) and asked > 1:
                fits = max(1, asked * cap * 4 // (size * 5))  # in proportion, with a fifth to spare
                ways.append(f"a smaller {name} (this call's was {asked}; about {fits} fit)")
            else:
                ways.append(f"a smaller {name}")
    if "cursor" in properties:
        ways.append("cursor to read it a page at a time")

    def narrows(name: str, prop: Mapping[str, Any]) -> bool:
        if name in required or "limit" in name or name == "cursor" or name.endswith("_key"):
            return False
        return "boolean" not in {prop.get("type"), *(part.get("type") for part in prop.get("anyOf", []))}

    filters = [name for name, prop in properties.items() if narrows(name, prop)]
    if filters:
        ways.append(f"{', '.join(filters)} to narrow it")
    if not ways:
        return "this tool takes nothing that makes its result smaller: ask for less at a time"
    return "call it again with " + "; or ".join(ways)


# The SDK wraps what a `Resolve(...)` resolver returns in `AcceptedElicitation[Any]`, and pydantic keeps a parametrized
# model only while something refers to it: without this reference the class was built anew (3 ms) each time the
# collector had freed it, every few tens of strategic queries under load.
RESOLVED = AcceptedElicitation[Any]

# A structured result as compact JSON: the text copy a record's result carries (the SDK indents it, twice the bytes).
STRUCTURED = TypeAdapter(dict[str, Any])


def returns_record(fn: Callable[..., Any]) -> bool:
    """Whether `fn` returns a pydantic model, so the text copy of its result is the structured content's JSON."""
    returned = typing.get_type_hints(fn).get("return")
    return isinstance(returned, type) and issubclass(returned, BaseModel)


# Our errors raised while answering one request (by a tool, a resolver or a resource), noted where they are caught
# so the middleware answering the request can say them; the SDK passes on only its own wrapper's text.
NOTED: ContextVar[list[BaseException] | None] = ContextVar("sophia_noted_errors", default=None)

F = TypeVar("F", bound=Callable[..., Any])


def _noted(error: BaseException) -> BaseException | None:
    """`error` as ours to say (noted for the request's middleware), or None when it is not ours."""
    if not isinstance(error, SophiaError | ValidationError):
        error = file_failure(error) if isinstance(error, OSError) else None  # type: ignore[assignment]
        if not isinstance(error, DiskFull):  # a file beside the store
            return None
    noted = NOTED.get()
    if noted is not None:
        noted.append(error)
    return error


def says_errors(fn: F, raises: type[Exception] = ToolError) -> F:
    """`fn` (a tool, a resolver or a resource function), its own errors (`SophiaError`, a full disk) raised as the
    SDK's `raises` (a failure it reports, not a crash it logs) and noted for the middleware that says them."""
    wanted = (SophiaError, OSError) if raises is ToolError else (SophiaError, OSError, ValidationError)

    def fail(exc: Exception) -> Exception:
        error = _noted(exc)
        return exc if error is None else raises(str(error))

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except wanted as exc:
                raise fail(exc) from exc

        return cast(F, run_async)

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except wanted as exc:
            raise fail(exc) from exc

    return cast(F, run)


def says_resource_errors(fn: F) -> F:
    """`says_errors` for a resource function: its errors raised as the SDK's `ResourceError`."""
    return says_errors(fn, ResourceError)


class SophiaServer(MCPServer[Any]):
    """An `MCPServer` wired to sophia-mcp's services, with our error, logging and completion conventions, built on
    the SDK's public API: tools and resources are declared through `declare_tool` and `declare_resource` (names
    under a prefix, errors said), and the middleware below answers what the SDK leaves to the application."""

    def __init__(self, name: str, instructions: str, settings: Settings | None = None, **kwargs: Any) -> None:
        super().__init__(name=name, instructions=instructions, version=__version__, lifespan=self._lifespan, **kwargs)
        self._settings = settings
        self._services: Services | None = None
        self._services_lock = threading.Lock()
        self._completers: dict[tuple[str, str], Completer] = {}
        # The level each client connection asked for (logging/setLevel), by its handshake's identity.
        self._log_levels: dict[int, LoggingLevel] = {}
        self.completion()(self._complete)
        # Each tool's function by the name it has here, and its arguments model once a bad call needs it.
        self._tool_functions: dict[str, Callable[..., Any]] = {}
        self._arguments: dict[str, FuncMetadata] = {}
        # Tools that change data, each with the boolean argument that must be false for a call to only read (if any).
        self._writes: dict[str, tuple[str, Any] | None] = {}
        # Tools whose result is a record: its text copy is sent as compact JSON of the structured content.
        self.record_tools: set[str] = set()
        # The name each tool has here, by its bare name: every text naming a tool is shown with these names.
        self.tool_names = ToolNames()
        self.middleware.extend(
            [LogLevels(self), WriteScope(self), ToolCalls(self), ResourceReads(self), PromptGets(self), Named(self)]
        )
        # Whether the client runs on this machine (the serve command sets it for stdio): only then do its file://
        # roots name this machine's folders. Over HTTP or SSE they name the client's, so they are ignored.
        self.client_is_local = False
        # The base URL users reach the server by when it serves HTTP (the serve command sets it); None on stdio.
        self.public_url: str | None = None
        # Whether GET /dashboards/{name} serves the dashboards it builds, when it serves HTTP.
        self.serves_dashboards = False

    # -- tools and resources ------------------------------------------------------------------------

    def declare_tool(
        self,
        fn: Callable[..., Any],
        name: str,
        *,
        annotations: ToolAnnotations,
        prefix: str = "",
        title: str | None = None,
        description: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        """Add a tool, named `prefix` + `name` here (texts name it `name`), its own errors said to the caller."""
        mounted = self.tool_names.add(name, prefix)
        self._tool_functions[mounted] = fn
        if not annotations.read_only_hint:
            self._writes[mounted] = None
        if returns_record(fn):
            self.record_tools.add(mounted)
        self.add_tool(
            says_errors(fn), name=mounted, title=title, description=description, annotations=annotations, meta=meta
        )

    def declare_resource(self, uri: str, **options: Any) -> Callable[[F], F]:
        """The SDK's `resource` decorator, the function's own errors said to the caller."""

        def declare(fn: F) -> F:
            self.resource(uri, **options)(says_resource_errors(fn))
            return fn

        return declare

    def writes_only_when(self, tool: str, argument: str) -> None:
        """`tool` changes data only when its boolean `argument` is true (or left at a true default)."""
        fn = self._tool_functions[tool]
        self._writes[tool] = (argument, inspect.signature(fn).parameters[argument].default)

    def write_refusal(self, tool: str, arguments: Mapping[str, Any]) -> str | None:
        """Why this call may not run for the caller (its access token lacks the write scope), or None if it may.

        With no access token (stdio, or HTTP on loopback without authentication) every tool may run."""
        if tool not in self._writes:
            return None
        gate = self._writes[tool]
        if gate is not None and arguments.get(gate[0], gate[1]) is False:
            return None
        token = get_access_token()
        scope = self.current_settings.http.write_scope
        if token is None or scope in token.scopes:
            return None
        how = f" with {gate[0]}=true" if gate else ""
        only = f" ({gate[0]}=false only reads)" if gate else ""
        return f"{tool}{how} changes data: the access token needs the scope {scope!r}{only}"

    def bad_arguments(self, tool: str, arguments: dict[str, Any]) -> ValidationError | None:
        """What is wrong with `arguments` for `tool`, checked as the SDK checks them; None if nothing is."""
        if tool not in self._arguments:
            fn = self._tool_functions[tool]
            skip = [*filter(None, [find_context_parameter(fn)]), *find_resolved_parameters(fn)]
            self._arguments[tool] = func_metadata(fn, skip_names=skip)
        try:
            self._arguments[tool].validate_arguments(arguments)
        except ValidationError as exc:
            return exc
        return None

    async def check_prompt_call(self, name: str, arguments: Mapping[str, Any]) -> None:
        """Refuse, before rendering, a prompt that does not exist or a call without an argument it needs."""
        prompts = {p.name: p for p in await self.list_prompts()}
        prompt = prompts.get(name)
        if prompt is None:
            raise MCPError(INVALID_PARAMS, unknown("prompt", name, close_names(name, list(prompts)), "prompts/list"))
        missing = [a for a in prompt.arguments or [] if a.required and a.name not in arguments]
        if missing:
            lines = [f"- {a.name}: required ({a.description or 'no description'})" for a in missing]
            raise MCPError(INVALID_PARAMS, self.tool_names.render(
                f"Missing arguments for the prompt {name}; give these and ask again:\n" + "\n".join(lines)
            ))  # fmt: skip

    # -- services -----------------------------------------------------------------------------------

    @property
    def services(self) -> Services:
        """Built on first use, so starting a server and listing its tools touches no store or network."""
        if self._services is None:
            with self._services_lock:
                if self._services is None:
                    self._services = start_services(self._settings or load_settings())
        return self._services

    @property
    def current_settings(self) -> Settings:
        """The settings this server was given, else those its services were built from."""
        return self._settings or self.services.settings

    def close(self) -> None:
        """Close the services' store, if they were built."""
        if self._services is not None:
            self._services.close()

    @asynccontextmanager
    async def _lifespan(self, _: MCPServer[Any]) -> AsyncIterator[dict[str, Any]]:
        """While serving, retry side effects that a real service could not take (Slack down, say)."""
        settings = self._settings or load_settings()
        try:
            if settings.slack.backend == settings.linear.backend == "local":  # local delivery cannot fail half-way
                yield {}
            else:
                async with anyio.create_task_group() as group:
                    group.start_soon(self._deliver_pending_forever, settings.outbox_interval_s)
                    yield {}
                    group.cancel_scope.cancel()
        finally:
            # Network clients belong to the event loop that served; close them with it.
            services, self._services = self._services, None
            if services is not None:
                await services.aclose()
                services.close()

    async def _deliver_pending_forever(self, interval_s: float) -> None:
        while True:
            await anyio.sleep(interval_s)
            try:
                services = self.services
                await deliver_pending(services)
            except SophiaError as exc:
                log.warning("Background outbox delivery failed: %s", exc)

    # -- errors -------------------------------------------------------------------------------------

    def said(self, error: BaseException | str) -> str:
        """An error's text for the caller: cut short, naming tools as they are named here."""
        return brief(self.tool_names.render(str(error)))

    # -- logging ------------------------------------------------------------------------------------

    def set_log_level(self, session: Any, level: LoggingLevel) -> None:
        """Send this client connection's log messages at `level` and above only."""
        handshake = session.client_params
        if handshake is None:  # no handshake (2026-07-28): each request carries its own level
            return
        key = id(handshake)
        if key not in self._log_levels:
            weakref.finalize(handshake, self._log_levels.pop, key, None)
        self._log_levels[key] = level

    async def log(self, ctx: Context[Any, Any], level: LoggingLevel, message: str) -> None:
        """Log to stderr and to the request's OpenTelemetry span (both eras), and send it to the client unless it
        asked (logging/setLevel, or the request's log level on 2026-07-28) for higher levels only."""
        log.log(PYTHON_LEVELS[level], "%s", message)
        trace.get_current_span().add_event(message, {"log.severity": level})
        handshake = ctx.session.client_params
        wanted = self._log_levels.get(id(handshake), "info") if handshake is not None else "info"
        if LEVELS.index(level) < LEVELS.index(wanted):
            return
        with warnings.catch_warnings():
            # Deprecated at the 2026-07-28 protocol revision, still what handshake-era clients show users.
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await ctx.log(level, message, logger_name=self.name)

    # -- completions --------------------------------------------------------------------------------

    def add_completer(self, ref: str, argument: str, completer: Completer) -> None:
        """Suggest values for `argument` of a prompt (by name) or a resource template (by URI template)."""
        self._completers[(ref, argument)] = completer

    async def _complete(
        self,
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion | None:
        key = ref.name if isinstance(ref, PromptReference) else ref.uri
        completer = self._completers.get((key, argument.name))
        if completer is None:
            return None
        if len(argument.value) > MAX_TYPED:  # what was typed (60,000 characters, say) is longer than anything suggested
            return Completion(values=[], total=0, has_more=False)
        resolved = {k: v[:MAX_TYPED] for k, v in (context.arguments or {}).items()} if context else {}
        values = await anyio.to_thread.run_sync(completer, self.services, argument.value, resolved)
        return Completion(values=values[:MAX_COMPLETIONS], total=len(values), has_more=len(values) > MAX_COMPLETIONS)


def error_result(text: str) -> CallToolResult:
    """A tool call's answer that it failed, saying why."""
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def _text_of(result: Mapping[str, Any]) -> str:
    return "".join(c.get("text", "") for c in result.get("content") or [] if c.get("type") == "text")


class LogLevels:
    """MCP middleware: `logging/setLevel` for handshake-era clients (MCPServer leaves it to the application), and
    the logging capability that tells them it is served."""

    def __init__(self, server: SophiaServer) -> None:
        self.server = server

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "logging/setLevel" and ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            params = SetLevelRequestParams.model_validate(ctx.params or {}, by_name=False)
            self.server.set_log_level(ctx.session, params.level)
            return EmptyResult()
        result = await call_next(ctx)
        if ctx.method == "initialize" and isinstance(result, dict) and isinstance(result.get("capabilities"), dict):
            result = {**result, "capabilities": {**result["capabilities"], "logging": {}}}
        return result


class WriteScope:
    """MCP middleware: a call of a tool that changes data is answered with an error naming the missing scope, before
    the tool is built or run, unless the caller's access token has the write scope. Which tools change data comes
    from their annotations (anything not read-only), so a new tool cannot forget it."""

    def __init__(self, server: SophiaServer) -> None:
        self.server = server

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "tools/call" and isinstance(ctx.params, Mapping):
            arguments = ctx.params.get("arguments")
            refusal = self.server.write_refusal(
                str(ctx.params.get("name")), arguments if isinstance(arguments, Mapping) else {}
            )
            if refusal is not None:
                return error_result(refusal)
        return await call_next(ctx)


class ToolCalls:
    """MCP middleware for `tools/call`: an unknown tool is told the nearest names, a call is stopped after the tool
    timeout, an error says what to fix (bad arguments argument by argument, our errors in their own words), and a
    result over the size cap is refused with how to ask for less. A record's text copy goes out as compact JSON."""

    def __init__(self, server: SophiaServer) -> None:
        self.server = server

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call" or not isinstance(ctx.params, Mapping):
            return await call_next(ctx)
        server, name = self.server, str(ctx.params.get("name"))
        given = ctx.params.get("arguments")
        arguments: dict[str, Any] = dict(given) if isinstance(given, Mapping) else {}
        if name not in server.tool_names:  # said here, not rendered: the name asked for is quoted as it was asked
            return error_result(unknown("tool", name, server.tool_names.nearest(name), "tools/list"))
        settings = server.current_settings
        noted: list[BaseException] = []
        token = NOTED.set(noted)
        try:
            with anyio.fail_after(settings.tool_timeout_s):
                result = await call_next(ctx)
        except TimeoutError:
            return error_result(
                f"{name} took longer than {settings.tool_timeout_s:g} s and was stopped; try a smaller request"
            )
        finally:
            NOTED.reset(token)
        if not isinstance(result, dict) or "content" not in result:  # input_required (2026-07-28)
            return result
        if result.get("isError"):
            return {
                **result,
                "content": [{"type": "text", "text": self.said(name, arguments, _text_of(result), noted)}],
            }
        if name in server.record_tools and isinstance(structured := result.get("structuredContent"), dict):
            # The same record as the structured content, without the indentation the SDK gives its text copy.
            result = {**result, "content": [{"type": "text", "text": STRUCTURED.dump_json(structured).decode()}]}
        size, cap = len(_text_of(result)), settings.max_result_kb * 1024
        if size > cap:
            schema = next((t.input_schema for t in await server.list_tools() if t.name == name), {})
            return error_result(
                f"{name}'s result is {size // 1024} KB, over the {settings.max_result_kb} KB a result may be "
                f"(SOPHIA_MAX_RESULT_KB): {how_to_shrink(schema, arguments, size, cap)}"
            )
        return result

    def said(self, name: str, arguments: dict[str, Any], text: str, noted: list[BaseException]) -> str:
        """What a failed call tells the caller, from what the SDK said and what our code noted."""
        if noted:
            error = noted[-1]
            return str(error) if isinstance(error, DiskFull) else self.server.said(error)
        if text.startswith(f"Error executing tool {name}: ") and (bad := self.server.bad_arguments(name, arguments)):
            return self.server.tool_names.render(describe_validation(name, bad))
        return self.server.said(text)


class ResourceReads:
    """MCP middleware for `resources/read`: a record that does not exist is invalid params saying so, another of our
    errors says what could not be read and why, and no error echoes a huge URI whole."""

    def __init__(self, server: SophiaServer) -> None:
        self.server = server

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "resources/read" or not isinstance(ctx.params, Mapping):
            return await call_next(ctx)
        uri = str(ctx.params.get("uri"))
        noted: list[BaseException] = []
        token = NOTED.set(noted)
        try:
            return await call_next(ctx)
        except MCPError as exc:
            if noted:
                cause = noted[-1]
                if isinstance(cause, NotFound):
                    raise MCPError(INVALID_PARAMS, self.server.said(cause), {"uri": uri}) from cause
                text = brief(f"Cannot read {uri}: {self.server.tool_names.render(str(cause))}")
                raise MCPError(INTERNAL_ERROR, text, {"uri": uri}) from cause
            if len(exc.message) > MAX_ERROR_CHARS:  # the SDK's own, e.g. "Unknown resource: <the URI asked for>"
                raise MCPError(exc.code, brief(exc.message), exc.data) from exc
            raise
        finally:
            NOTED.reset(token)


class PromptGets:
    """MCP middleware for `prompts/get`: a prompt that does not exist, a missing argument or one it cannot take (an
    unknown id, a bad value) is an invalid-params error saying what to fix, not an internal error."""

    def __init__(self, server: SophiaServer) -> None:
        self.server = server

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "prompts/get" or not isinstance(ctx.params, Mapping):
            return await call_next(ctx)
        name = str(ctx.params.get("name"))
        given = ctx.params.get("arguments")
        await self.server.check_prompt_call(name, given if isinstance(given, Mapping) else {})
        try:
            return await call_next(ctx)
        except ValueError as exc:  # the SDK wraps whatever rendering raised, twice
            cause: BaseException = exc
            while cause.__cause__ is not None:
                cause = cause.__cause__
            if isinstance(cause, ValidationError):
                text = describe_validation(f"the prompt {name}", cause)
                raise MCPError(INVALID_PARAMS, self.server.tool_names.render(text)) from cause
            if isinstance(cause, NotFound | InvalidInput):
                raise MCPError(INVALID_PARAMS, self.server.said(cause)) from cause
            if isinstance(cause, SophiaError):  # a service or the store could not answer: not the caller's mistake
                raise MCPError(INTERNAL_ERROR, self.server.said(cause)) from cause
            raise


# The answers whose prose names tools: what a server that mounts tools under prefixes renders with its names.
NAMING = {"tools/list", "prompts/list", "prompts/get", "resources/list", "resources/templates/list"}


class Named:
    """MCP middleware: on a server that mounts tools under prefixes, the prose of listed tools, prompts and
    resources and of rendered prompts names every tool as it is named here."""

    def __init__(self, server: SophiaServer) -> None:
        self.server = server

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method in NAMING and self.server.tool_names.prefixed and isinstance(result, dict):
            return cast(dict[str, Any], render_prose(result, self.server.tool_names.render))
        return result


def complete_client_names(services: Services, typed: str, _: dict[str, str]) -> list[str]:
    """Client names for a `client` argument, whichever server offers it."""
    return services.clients.client_names(typed, 100)


ClientFeature = Literal["sampling", "elicitation", "roots"]


def offers(ctx: Context[Any, Any], feature: ClientFeature) -> bool:
    """Whether the client of this request declared `feature` (per connection on 2025-11-25, per request on
    2026-07-28): a resolver asks only what is offered, and answers without asking otherwise."""
    capabilities = ctx.client_capabilities
    if capabilities is None:
        return False
    if feature == "elicitation":  # a form is what is asked; a client offering only URL elicitation cannot fill one
        elicitation = capabilities.elicitation
        return elicitation is not None and (elicitation.form is not None or elicitation.url is None)
    return getattr(capabilities, feature) is not None


def progress_of(ctx: Context[Any, Any]) -> Progress:
    """Progress for a workflow to report to this request's client (nothing is sent if it asked for none)."""

    async def report(done: float, total: float, message: str) -> None:
        await ctx.report_progress(done, total, message)

    return report


def server_of(ctx: Context[Any, Any]) -> SophiaServer:
    return cast(SophiaServer, ctx.mcp_server)


def services_of(ctx: Context[Any, Any]) -> Services:
    """The services of the server handling this request."""
    return server_of(ctx).services
