"""Serving over HTTP (Streamable HTTP or SSE), from the socket up:

- connections: at most `SOPHIA_HTTP__MAX_CONNECTIONS` (and what the file-descriptor limit leaves), each with
  `HEADER_TIMEOUT_S` to send a request's headers, idle keep-alives closed after `KEEP_ALIVE_S` (`http_connections`);
- per client: the body within `BODY_TIMEOUT_S` and `MAX_BODY_MB`, `RATE_PER_MINUTE` requests, `SESSIONS_PER_CLIENT`
  open sessions (`http_limits`);
- the SDK's app: Host and Origin checks (DNS-rebinding protection, loopback names always allowed, more from
  `ALLOWED_HOSTS` / `ALLOWED_ORIGINS`), then the token verifier (`http_auth`): 401 or 403 before any MCP handling;
- the dashboards a server builds at `/dashboards/{name}`, behind the same checks and token, linked from Slack under
  `PUBLIC_URL`;
- for the composite server over Streamable HTTP, and for `sophia-mcp hooks`, the webhook receivers at `/hooks/...`
  (`http_hooks`): signed by their providers rather than holding the token, behind the Host check and the body
  limits but not the per-client rate (a provider's retries and bursts come from a few addresses, and are all
  wanted), with an inbox worker beside them for as long as they serve.

A server refuses to listen beyond loopback without authentication.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
import uvicorn
from mcp.server.auth.middleware.bearer_auth import RequireAuthMiddleware
from mcp.server.mcpserver import RequestStateSecurity
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route, request_response

from sophia_mcp.app.backends import start_services
from sophia_mcp.errors import NotFound
from sophia_mcp.http.auth import NotSafeToServe, Verifier, auth_options, subject_finder
from sophia_mcp.http.connections import BACKLOG, ConnectionPool, connection_cap
from sophia_mcp.http.hooks import PROVIDERS, SETTING, Receivers, configured
from sophia_mcp.http.limits import ClientLimits, Scope, SessionLedger, client_rate
from sophia_mcp.settings import Settings
from sophia_mcp.workflows.dashboard import CSP, dashboard_path

log = logging.getLogger(__name__)

# The event loop HTTP serving runs on: uvloop's (libuv) where it builds, for a fifth less CPU a request than asyncio's.
new_event_loop: Callable[[], asyncio.AbstractEventLoop]
if sys.platform == "win32":  # uvloop builds everywhere but Windows
    new_event_loop = asyncio.new_event_loop
else:
    import uvloop

    new_event_loop = uvloop.new_event_loop

LOOPBACK = ("127.0.0.1", "localhost", "::1")
# A dashboard page: its own policy (no fetch of any kind, no framing), never sniffed, cached by no one but the reader.
DASHBOARD_HEADERS = {
    "Content-Security-Policy": f"{CSP}; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "private, no-store",
}


def transport_security(settings: Settings, host: str) -> TransportSecuritySettings:
    http = settings.http
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", *http.allowed_hosts]
    if host not in LOOPBACK and host not in ("0.0.0.0", "::"):  # noqa: S104 (a check, not a bind)
        hosts.append(f"{host}:*")
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", *http.allowed_origins]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def check_safe(settings: Settings, host: str) -> None:
    if host in LOOPBACK:
        return
    if settings.http.bearer_token is None and not settings.http.jwks_url:
        raise NotSafeToServe(
            f"Refusing to listen on {host} without authentication: set SOPHIA_HTTP__BEARER_TOKEN (clients send it as "
            "'Authorization: Bearer <token>'), or listen on 127.0.0.1"
        )
    check_host_names(settings, host, "clients", "mcp.example.com")


def check_host_names(settings: Settings, host: str, who: str, example: str) -> None:
    """Listening on every address needs the names `who` reach the server by, for the Host check to let through."""
    if host in ("0.0.0.0", "::") and not settings.http.allowed_hosts:  # noqa: S104
        raise NotSafeToServe(
            f"Listening on {host} needs SOPHIA_HTTP__ALLOWED_HOSTS: the host names {who} reach this server by "
            f'(JSON list, e.g. ["{example}:*"]), which the Host check lets through'
        )


def public_url(settings: Settings, host: str, port: int) -> str:
    """The base URL users reach the server by: SOPHIA_HTTP__PUBLIC_URL, else the address it listens on."""
    if settings.http.public_url:
        return settings.http.public_url.rstrip("/")
    return listening_url(host, port)


def listening_url(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def dashboard_route(
    server: Any, settings: Settings, security: TransportSecuritySettings, verifier: Verifier | None
) -> Route:
    """GET /dashboards/{name}: a dashboard the server built, for the bearer token /mcp takes (when it takes one),
    under the dashboard's own Content-Security-Policy. A name that is not a dashboard's is a 404, so nothing
    outside the dashboards folder is ever read; the Host and Origin checks of /mcp apply here too."""
    checks = TransportSecurityMiddleware(security)

    async def page(request: Request) -> Response:
        refused = await checks.validate_request(request)
        if refused is not None:
            return refused
        try:
            path = dashboard_path(server.services, request.path_params["name"])
        except NotFound as exc:
            return PlainTextResponse(str(exc), status_code=404)
        html = await anyio.Path(path).read_text(encoding="utf-8")
        return HTMLResponse(html, headers=DASHBOARD_HEADERS)

    endpoint: Any = request_response(page)
    if verifier is not None:
        endpoint = RequireAuthMiddleware(endpoint, settings.http.required_scopes)
    return Route("/dashboards/{name}", endpoint, methods=["GET"])


def http_app(
    server: Any, settings: Settings, transport: str, host: str, verifier: Verifier | None, hooks: bool = False
) -> Any:
    """The server's ASGI app for `transport` ("http" or "sse") behind the per-client limits; a server that builds
    dashboards serves them too; with `hooks` (the composite over Streamable HTTP), the webhook receivers, and an
    inbox worker while it serves."""
    http = settings.http
    security = transport_security(settings, host)
    limit = int(http.max_body_mb * 1024 * 1024)
    sessions = None
    if transport == "sse":
        app = server.sse_app(transport_security=security, host=host, max_request_body_size=limit)
    else:
        app = server.streamable_http_app(
            transport_security=security, host=host, stateless_http=http.stateless, max_request_body_size=limit,
            session_idle_timeout=http.session_idle_s, max_sessions=http.max_sessions,
        )  # fmt: skip
        if not http.stateless:
            sessions = SessionLedger(per_client=http.sessions_per_client, idle_s=http.session_idle_s)
    if server.serves_dashboards:
        # Behind the SDK's authentication middleware, which runs app-wide: the route sees who is calling.
        app.router.routes.append(dashboard_route(server, settings, security, verifier))
    limited = ClientLimits(
        app, identify=subject_finder(verifier) if verifier else _nobody, max_body_bytes=limit,
        body_timeout_s=http.body_timeout_s, rate=client_rate(http.rate_per_minute, settings.redis.url),
        sessions=sessions,
    )  # fmt: skip
    if not hooks:
        return limited
    receivers = Receivers(settings, lambda: server.services, security, settings.http.public_url)
    # Inside the SDK's lifespan, which opens the server's services and closes them after the worker has stopped.
    opened = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(starlette: Any) -> AsyncIterator[Any]:
        async with opened(starlette) as state, receivers.working():
            yield state

    app.router.lifespan_context = lifespan
    return HooksBeside(hooks_app(receivers.router(), settings), limited)


def hooks_app(receivers: Any, settings: Settings) -> ClientLimits:
    """The receivers' app behind the body limits only: no per-client rate, no token (their providers sign)."""
    http = settings.http
    return ClientLimits(
        receivers, identify=_nobody, max_body_bytes=int(http.max_body_mb * 1024 * 1024),
        body_timeout_s=http.body_timeout_s, rate=None, sessions=None,
    )  # fmt: skip


class HooksBeside:
    """ASGI: requests under /hooks/ go to the receivers, everything else (the lifespan too) to the server's app."""

    def __init__(self, hooks: Any, app: Any) -> None:
        self.hooks = hooks
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith("/hooks/"):
            await self.hooks(scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def _nobody(_: str) -> None:
    return None


def serve_http(
    create_server: Callable[..., Any], settings: Settings, transport: str, host: str, port: int, hooks: bool = False
) -> None:
    """Build the server with the configured authentication and serve it on `host`:`port` until stopped; once it
    listens, say so in one line on stderr. With `hooks` (the composite), the webhook receivers beside /mcp."""
    check_safe(settings, host)
    options = auth_options(settings)
    if keys := settings.http.request_state_keys:  # replicas resume each other's multi-round requests
        options["request_state_security"] = RequestStateSecurity(keys=[k.get_secret_value() for k in keys])
    listening = _listen(host, port)
    server = create_server(settings, log_level=settings.log_level, **options)
    server.public_url = public_url(settings, host, port)
    hooks = hooks and transport == "http"
    try:
        app = http_app(server, settings, transport, host, options.get("token_verifier"), hooks=hooks)
        started = f"sophia-mcp: {server.name} {where(transport, host, port)} ({who_may_call(settings)})"
        if hooks:
            started += f"; {receiving(settings)}"
        _run(app, settings, started, listening)
    finally:
        listening.close()
        server.close()


def check_hooks_safe(settings: Settings, host: str) -> None:
    """Beyond loopback the receivers need at least one provider's secret, and the Host check its names."""
    if host in LOOPBACK:
        return
    if not any(configured(settings).values()):
        raise NotSafeToServe(
            f"Refusing to receive webhooks on {host} with no provider's secret set: set at least one of "
            f"{', '.join(SETTING.values())}, or listen on 127.0.0.1"
        )
    check_host_names(settings, host, "providers", "hooks.example.com")


def serve_hooks(settings: Settings, host: str, port: int) -> None:
    """Serve only the webhook receivers (and the inbox worker beside them) on `host`:`port` until stopped."""
    check_hooks_safe(settings, host)
    listening = _listen(host, port)
    services: list[Any] = []

    def current() -> Any:
        if not services:
            services.append(start_services(settings))
        return services[0]

    receivers = Receivers(settings, current, transport_security(settings, host), settings.http.public_url)

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        try:
            async with receivers.working():
                yield
        finally:
            if services:
                await services[0].aclose()
                services[0].close()

    app = hooks_app(Starlette(routes=receivers.routes(), lifespan=lifespan), settings)
    started = f"sophia-mcp: hooks serving webhooks at {listening_url(host, port)}/hooks/... ({receiving(settings)})"
    try:
        _run(app, settings, started, listening)
    finally:
        listening.close()


def receiving(settings: Settings) -> str:
    """Which receivers take events, and which wait for their secret."""
    ready = configured(settings)
    taking = [p for p in PROVIDERS if ready[p]]
    waiting = [p for p in PROVIDERS if not ready[p]]
    said = f"webhooks from {', '.join(taking)} at /hooks/<provider>" if taking else "no webhook secret set"
    return said + (f"; not configured: {', '.join(waiting)}" if waiting else "")


def _listen(host: str, port: int) -> socket.socket:
    try:
        listening = socket.create_server((host, port), family=_family(host), backlog=BACKLOG)
    except OSError as exc:
        raise NotSafeToServe(f"Cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    # asyncio turns Nagle off only on sockets made with IPPROTO_TCP, which these are not; accepted connections take
    # it from here instead, or a response's second write waits for the client's delayed ACK (some 40 ms).
    listening.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return listening


def _run(app: Any, settings: Settings, started: str, listening: socket.socket) -> None:
    http = settings.http
    pool = ConnectionPool(connection_cap(http.max_connections), http.header_timeout_s)
    config = uvicorn.Config(
        app, log_level=settings.log_level.lower(), lifespan="on",
        http=cast(type[asyncio.Protocol], pool.protocol),  # uvicorn builds each connection's protocol by calling it
        timeout_keep_alive=http.keep_alive_s, backlog=BACKLOG,
    )  # fmt: skip
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(_serve(_Announcing(config, started), listening))
    except KeyboardInterrupt:  # uvicorn has shut down gracefully, then passed Ctrl-C on
        print("sophia-mcp: stopped", file=sys.stderr)
        raise SystemExit(130) from None


def where(transport: str, host: str, port: int) -> str:
    base = listening_url(host, port)
    return f"serving SSE at {base}/sse" if transport == "sse" else f"serving Streamable HTTP at {base}/mcp"


def who_may_call(settings: Settings) -> str:
    http = settings.http
    if http.jwks_url:
        return f"OAuth: access tokens from {http.issuer}"
    if http.bearer_token is not None:
        return "a bearer token is required"
    return "no authentication: listening on loopback only"


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class _Announcing(uvicorn.Server):
    """uvicorn's server, saying it listens once it has started: its own Ctrl-C handling is in place by then, so a
    Ctrl-C that follows the line stops it gracefully, in one line, rather than cancelling a startup half done
    (which printed a traceback of the lifespan)."""

    def __init__(self, config: uvicorn.Config, announcement: str) -> None:
        super().__init__(config)
        self.announcement = announcement

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            print(self.announcement, file=sys.stderr, flush=True)


async def _serve(server: uvicorn.Server, listening: socket.socket) -> None:
    asyncio.get_running_loop().set_exception_handler(report_loop_error)
    await server.serve(sockets=[listening])


def report_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Log what the event loop could not handle (an `accept` out of file descriptors, say) and keep serving: when
    even logging fails for want of a file, one line goes to the already open stderr."""
    try:
        loop.default_exception_handler(context)
    except Exception:  # the handler must never take the loop down with it
        what = f"{context.get('message', 'event loop error')}: {context.get('exception')!r}"
        os.write(2, f"sophia-mcp: {what}\n".encode())
