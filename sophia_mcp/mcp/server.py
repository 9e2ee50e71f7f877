"""What every sophia-mcp server shares on the MCP side: errors as `isError` results that say what to fix,
lazily built services, `logging/setLevel`, completions from several providers, and tool annotations.

Servers under `sophia_mcp.servers` declare their tools with the SDK's decorators on a `SophiaServer`; the
composite server registers the same functions again under prefixes.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import warnings
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal, TypeVar, cast

import anyio
import anyio.to_thread
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer, Resolve, Sample
from mcp.server.mcpserver.exceptions import (
    ResourceError,
    ResourceNotFoundError,
    ToolError,
    UnexpectedResourceError,
    UnexpectedToolError,
)
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    CallToolResult,
    Completion,
    CompletionArgument,
    CompletionContext,
    CreateMessageResult,
    EmptyResult,
    GetPromptResult,
    Icon,
    InputRequiredResult,
    LoggingLevel,
    Prompt,
    PromptReference,
    Resource,
    ResourceTemplate,
    ResourceTemplateReference,
    SetLevelRequestParams,
    TextContent,
    ToolAnnotations,
)
from mcp_types import Tool as MCPTool
from opentelemetry import trace
from pydantic import AnyUrl, Field, ValidationError

from sophia_mcp.adapters.sampling_analyst import MAX_PARTS, SamplingAnalyst, prompt_of, sampling_requests
from sophia_mcp.app.services import Services
from sophia_mcp.errors import DiskFull, InvalidInput, NotFound, SophiaError
from sophia_mcp.mcp.tool_names import ToolNames, close_names, render_prose
from sophia_mcp.ports.analyst import Analyst
from sophia_mcp.ports.progress import Progress
from sophia_mcp.settings import Settings, load_settings
from sophia_mcp.store.database import file_failure

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
# the pattern: a bounded repeat of \w compiles to an automaton that costs a server's start 80 ms.
KEY_PATTERN = r"^[\w:.\-/@#]+$"

# A page cursor as a listing hands it out (sophia_mcp.mcp.cursors): opaque to the caller, bounded like every string.
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


T = TypeVar("T")


async def _within(seconds: float, call: Awaitable[T]) -> T:
    """Await `call`, raising TimeoutError after `seconds`. On asyncio (how every server here runs) with asyncio's
    own timeout: anyio's cancel scope, which finds the event loop library on every call, cost a tenth of a small
    tool call's CPU over HTTP. anyio's elsewhere."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        with anyio.fail_after(seconds):
            return await call
    async with asyncio.timeout(seconds):
        return await call


def _result_size(result: object) -> int:
    """The characters of a result's text content (its structured content is there too); 0 for no tool result."""
    if not isinstance(result, CallToolResult):
        return 0
    return sum(len(c.text) for c in result.content if isinstance(c, TextContent))


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


class SophiaServer(MCPServer[Any]):
    """An `MCPServer` wired to sophia-mcp's services, with our error, logging and completion conventions."""

    def __init__(self, name: str, instructions: str, settings: Settings | None = None, **kwargs: Any) -> None:
        from sophia_mcp import __version__

        super().__init__(name=name, instructions=instructions, version=__version__, lifespan=self._lifespan, **kwargs)
        self._settings = settings
        self._services: Services | None = None
        self._services_lock = threading.Lock()
        self._completers: dict[tuple[str, str], Completer] = {}
        self._log_levels: weakref.WeakKeyDictionary[Any, LoggingLevel] = weakref.WeakKeyDictionary()
        # MCPServer does not serve logging/setLevel itself; handshake-era clients rely on it.
        self._lowlevel_server.add_request_handler("logging/setLevel", SetLevelRequestParams, self._set_level)
        self.completion()(self._complete)
        # Tools are declared here and built when first called; the list comes from the tool cache when it can.
        self._pending_tools: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {}
        self._deferred: list[Callable[[], Any]] = []
        # Tools that change data, each with the boolean argument that must be false for a call to only read (if any).
        self._writes: dict[str, tuple[str, Any] | None] = {}
        self._tool_list: list[MCPTool] | None = None
        # The name each tool has here, by its bare name: every text naming a tool is shown with these names.
        self.tool_names = ToolNames()
        self.middleware.append(WriteScope(self))
        # Whether the client runs on this machine (the serve command sets it for stdio): only then do its file://
        # roots name this machine's folders. Over HTTP or SSE they name the client's, so they are ignored.
        self.client_is_local = False
        # The base URL users reach the server by when it serves HTTP (the serve command sets it); None on stdio.
        self.public_url: str | None = None
        # Whether GET /dashboards/{name} serves the dashboards it builds, when it serves HTTP.
        self.serves_dashboards = False

    # -- tools, built lazily --------------------------------------------------------------------------

    def add_tool(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
        icons: list[Icon] | None = None,
        meta: dict[str, Any] | None = None,
        structured_output: bool | None = None,
        *,
        prefix: str = "",
    ) -> None:
        """Declare a tool, named `prefix` + `name` here (texts name it `name`); it is built (arguments model,
        schemas) when it is first called or listed uncached."""
        options = {"title": title, "description": description, "annotations": annotations, "icons": icons,
                   "meta": meta, "structured_output": structured_output}  # fmt: skip
        mounted = self.tool_names.add(name or fn.__name__, prefix)
        self._pending_tools[mounted] = (fn, options)
        if annotations is None or not annotations.read_only_hint:
            self._writes[mounted] = None
        self._tool_list = None

    def writes_only_when(self, tool: str, argument: str) -> None:
        """`tool` changes data only when its boolean `argument` is true (or left at a true default)."""
        fn, _ = self._pending_tools[tool]
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
        scope = (self._settings or self.services.settings).http.write_scope
        if token is None or scope in token.scopes:
            return None
        how = f" with {gate[0]}=true" if gate else ""
        only = f" ({gate[0]}=false only reads)" if gate else ""
        return f"{tool}{how} changes data: the access token needs the scope {scope!r}{only}"

    def _build_tool(self, name: str) -> None:
        pending = self._pending_tools.pop(name, None)
        if pending is not None:
            fn, options = pending
            super().add_tool(fn, name=name, **options)

    async def list_tools(self) -> list[MCPTool]:
        if self._tool_list is None:
            from sophia_mcp import tool_cache

            names = sorted([*self._pending_tools, *(t.name for t in self._tool_manager.list_tools())])
            key = tool_cache.code_key(self.name, names)
            cached = tool_cache.load(self.name, key)
            if cached is not None:
                self._tool_list = [MCPTool.model_validate(t) for t in cached]
            else:
                for name in list(self._pending_tools):
                    self._build_tool(name)
                self._tool_list = [self._named(t) for t in await super().list_tools()]
                tool_cache.save(self.name, key, [t.model_dump(mode="json", by_alias=True) for t in self._tool_list])
        return list(self._tool_list)

    def _named(self, item: T) -> T:
        """A tool, prompt or resource as listed, or a rendered prompt, its prose naming tools as named here."""
        if not self.tool_names.prefixed or not isinstance(
            item, MCPTool | Prompt | Resource | ResourceTemplate | GetPromptResult
        ):
            return item
        return cast(T, render_prose(item, self.tool_names.render))

    # -- prompts and resources, declared at once and built on the first ask for either ----------------

    def prompt(
        self,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        icons: list[Icon] | None = None,
    ) -> Callable[[Any], Any]:
        def declare(fn: Any) -> Any:
            self._deferred.append(lambda: MCPServer.prompt(self, name, title, description, icons)(fn))
            return fn

        return declare

    def resource(self, uri: str, **options: Any) -> Callable[[Any], Any]:
        def declare(fn: Any) -> Any:
            self._deferred.append(lambda: MCPServer.resource(self, uri, **options)(fn))
            return fn

        return declare

    def _declare_deferred(self) -> None:
        """Build the prompts and resources declared so far (a few milliseconds each: not on the way to tools)."""
        while self._deferred:
            self._deferred.pop(0)()

    async def list_prompts(self) -> Any:
        self._declare_deferred()
        return [self._named(p) for p in await super().list_prompts()]

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Context[Any, Any] | None = None
    ) -> Any:
        """A prompt, rendered; a prompt that does not exist, a missing argument or one it cannot take (an unknown id,
        a bad value) is an invalid-params error saying what to fix, not an internal error."""
        self._declare_deferred()
        await self._check_prompt_call(name, arguments or {})
        try:
            return self._named(await super().get_prompt(name, arguments, context))
        except ValueError as exc:  # the SDK wraps whatever rendering raised, twice
            cause: BaseException = exc
            while cause.__cause__ is not None:
                cause = cause.__cause__
            if isinstance(cause, ValidationError):
                text = describe_validation(f"the prompt {name}", cause)
                raise MCPError(INVALID_PARAMS, self.tool_names.render(text)) from cause
            if isinstance(cause, NotFound | InvalidInput):
                raise MCPError(INVALID_PARAMS, self._said(cause)) from cause
            if isinstance(cause, SophiaError):  # a service or the store could not answer: not the caller's mistake
                raise MCPError(INTERNAL_ERROR, self._said(cause)) from cause
            raise

    async def _check_prompt_call(self, name: str, arguments: Mapping[str, Any]) -> None:
        """Refuse, before rendering, a prompt that does not exist or a call without an argument it needs."""
        prompts = {p.name: p for p in await super().list_prompts()}
        prompt = prompts.get(name)
        if prompt is None:
            raise MCPError(INVALID_PARAMS, unknown("prompt", name, close_names(name, list(prompts)), "prompts/list"))
        missing = [a for a in prompt.arguments or [] if a.required and a.name not in arguments]
        if missing:
            lines = [f"- {a.name}: required ({a.description or 'no description'})" for a in missing]
            raise MCPError(INVALID_PARAMS, self.tool_names.render(
                f"Missing arguments for the prompt {name}; give these and ask again:\n" + "\n".join(lines)
            ))  # fmt: skip

    async def list_resources(self) -> Any:
        self._declare_deferred()
        return [self._named(r) for r in await super().list_resources()]

    async def list_resource_templates(self) -> Any:
        self._declare_deferred()
        return [self._named(t) for t in await super().list_resource_templates()]

    def _tool_input_schema(self, name: str) -> dict[str, Any] | None:
        self._build_tool(name)
        return super()._tool_input_schema(name)

    # -- services -----------------------------------------------------------------------------------

    @property
    def services(self) -> Services:
        """Built on first use, so starting a server and listing its tools touches no store or network."""
        if self._services is None:
            with self._services_lock:
                if self._services is None:
                    from sophia_mcp.app.backends import build_services

                    self._services = build_services(self._settings or load_settings())
                    from sophia_mcp.runs import reap_interrupted

                    reap_interrupted(self._services.store)
        return self._services

    def close(self) -> None:
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
                await services.outbox.deliver_pending()
            except SophiaError as exc:
                log.warning("Background outbox delivery failed: %s", exc)

    # -- errors -------------------------------------------------------------------------------------

    def _said(self, error: BaseException) -> str:
        """An error's text for the caller: cut short, naming tools as they are named here."""
        return brief(self.tool_names.render(str(error)))

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        if name not in self.tool_names:  # said here, not rendered: the name asked for is quoted as it was asked
            raise ToolError(unknown("tool", name, self.tool_names.nearest(name), "tools/list"))
        self._build_tool(name)
        settings = self._settings or self.services.settings
        try:
            result = await _within(settings.tool_timeout_s, super().call_tool(name, arguments, context))
        except TimeoutError:
            raise ToolError(
                f"{name} took longer than {settings.tool_timeout_s:g} s and was stopped; try a smaller request"
            ) from None
        except UnexpectedToolError as exc:
            if isinstance(exc.__cause__, SophiaError):
                raise ToolError(self._said(exc.__cause__)) from exc.__cause__
            if isinstance(full := file_failure(exc.__cause__), DiskFull):  # a file beside the store
                raise ToolError(str(full)) from exc.__cause__
            raise
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                text = describe_validation(name, exc.__cause__)
                raise ToolError(self.tool_names.render(text)) from exc.__cause__
            raise ToolError(self._said(exc)) from exc
        size, cap = _result_size(result), settings.max_result_kb * 1024
        if size > cap:
            schema = next((t.input_schema for t in await self.list_tools() if t.name == name), {})
            raise ToolError(
                f"{name}'s result is {size // 1024} KB, over the {settings.max_result_kb} KB a result may be "
                f"(SOPHIA_MAX_RESULT_KB): {how_to_shrink(schema, arguments, size, cap)}"
            )
        return result

    async def read_resource(
        self, uri: AnyUrl | str, context: Context[Any, Any] | None = None
    ) -> Iterable[ReadResourceContents] | InputRequiredResult:
        self._declare_deferred()
        try:
            return await super().read_resource(uri, context)
        except UnexpectedResourceError as exc:
            cause = exc.__cause__
            if isinstance(cause, NotFound):
                raise ResourceNotFoundError(self._said(cause)) from cause
            if isinstance(cause, SophiaError | ValidationError):
                raise ResourceError(brief(f"Cannot read {uri}: {self.tool_names.render(str(cause))}")) from cause
            raise
        except ResourceError as exc:  # the SDK's own, e.g. "Unknown resource: <the URI asked for>"
            raise type(exc)(brief(str(exc))) from exc

    # -- logging ------------------------------------------------------------------------------------

    @staticmethod
    def _connection_of(session: Any) -> Any:
        # Each request gets its own ServerSession over one per-client connection; the level belongs to the latter.
        return getattr(session, "_connection", session)

    async def _set_level(self, ctx: ServerRequestContext[Any, Any], params: SetLevelRequestParams) -> EmptyResult:
        self._log_levels[self._connection_of(ctx.session)] = params.level
        return EmptyResult()

    async def log(self, ctx: Context[Any, Any], level: LoggingLevel, message: str) -> None:
        """Log to stderr and to the request's OpenTelemetry span (both eras), and send it to the client unless it
        asked (logging/setLevel, or the request's log level on 2026-07-28) for higher levels only."""
        log.log(PYTHON_LEVELS[level], "%s", message)
        trace.get_current_span().add_event(message, {"log.severity": level})
        wanted = self._log_levels.get(self._connection_of(ctx.session), "info")
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
                return CallToolResult(content=[TextContent(type="text", text=refusal)], is_error=True)
        return await call_next(ctx)


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


@dataclass(frozen=True)
class SamplingParts:
    """What to ask the client's model about a call: a request per transcript part, or why it is not asked."""

    wanted: bool  # the settings choose the client's model (sampling, or auto with sampling offered)
    requests: list[Sample] = field(default_factory=list)
    unavailable: str | None = None


async def sampling_parts(ctx: Context[Any, Any], call_id: str) -> SamplingParts:
    """Resolver for a tool taking `call_id`: the transcript's parts to ask the client's model, when the analyst
    setting wants it and the client offers sampling. It never fails the call: a call it cannot read is left to the
    workflow, which reports it in its run."""
    services = services_of(ctx)
    choice = services.settings.analyst.backend
    if choice not in ("sampling", "auto") or (choice == "auto" and not offers(ctx, "sampling")):
        return SamplingParts(wanted=False)
    if not offers(ctx, "sampling"):
        return SamplingParts(wanted=True, unavailable="the client does not offer sampling")
    try:
        call = await services.calls.get_call(call_id)
        transcript = await services.calls.get_transcript(call_id)
    except SophiaError as exc:
        return SamplingParts(wanted=True, unavailable=str(exc))
    max_chars = services.settings.openai.max_input_chars
    requests = sampling_requests(call, transcript, services.settings.competitors, max_chars)
    if len(requests) > MAX_PARTS:
        why = f"the transcript is {len(requests)} parts of {max_chars} characters, over the {MAX_PARTS} asked at most"
        return SamplingParts(wanted=True, unavailable=why)
    return SamplingParts(wanted=True, requests=requests)


def _sampled_part(index: int) -> Callable[..., Awaitable[Sample | None]]:
    async def sample_part(parts: Annotated[SamplingParts, Resolve(sampling_parts)]) -> Sample | None:
        """Part `index` of the transcript, asked of the client's model; nothing when there is no such part."""
        return parts.requests[index] if index < len(parts.requests) else None

    return sample_part


# One resolver per part: independent, so on 2026-07-28 every part is asked in the same round.
_PART_1, _PART_2, _PART_3, _PART_4 = (_sampled_part(i) for i in range(MAX_PARTS))
Sampled = CreateMessageResult | None


async def analyst_for(
    ctx: Context[Any, Any],
    parts: Annotated[SamplingParts, Resolve(sampling_parts)],
    part_1: Annotated[Sampled, Resolve(_PART_1)],
    part_2: Annotated[Sampled, Resolve(_PART_2)],
    part_3: Annotated[Sampled, Resolve(_PART_3)],
    part_4: Annotated[Sampled, Resolve(_PART_4)],
) -> Analyst:
    """Resolver: the analyst for this call. The client's own model when sampling is chosen (or `auto`) and offered,
    from its answers to the transcript's parts; when sampling is chosen but cannot be used, the configured analyst
    stands in and says why."""
    services = services_of(ctx)
    if not parts.wanted:
        return services.analyst
    answers = [part_1, part_2, part_3, part_4]
    return SamplingAnalyst(
        {prompt_of(request): answer for request, answer in zip(parts.requests, answers, strict=False) if answer},
        services.settings.competitors,
        fallback=services.analyst,
        max_chars=services.settings.openai.max_input_chars,
        unavailable=parts.unavailable,
    )


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
