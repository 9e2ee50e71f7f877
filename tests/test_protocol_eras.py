"""Both protocol eras, in process and over Streamable HTTP (a server process): a 2025-11-25 session (`legacy`, where
the server asks the client mid-call) and a 2026-07-28 client (`auto`, where the server answers `InputRequiredResult`
and the client retries with the answers). The client's model writes the strategic answer and reads a call, its user
confirms a CRM write; without the callbacks each degrades as the README says; the answers are the same on both."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import (
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequestParams,
    ElicitResult,
    ErrorData,
    ListRootsResult,
    Root,
    TextContent,
)
from pydantic import ValidationError

from sophia_mcp.servers import gong, knowledge
from sophia_mcp.servers.composite import create_server
from tests.fakes import hubspot
from tests.fakes.openai import read_transcript
from tests.fakes.server import serve
from tests.support.demo_states import demo, hubspot_state
from tests.support.processes import http_server
from tests.support.results import structured, text_of
from tests.support.settings import make_settings
from tests.support.store_file import newest_call_ids

pytestmark = pytest.mark.anyio
Mode = Literal["auto", "legacy"]
QUESTION = "Which clients are at risk, and what is AppFolio doing on pricing?"
ANSWER = "Three clients are under the threshold [W1]; AppFolio is named on calls [C1]."
# Sources that answer the same whichever process asks (no web search configured, no model-built index to warm).
SOURCES = ["warehouse", "calls"]


@dataclass
class TheClient:
    """A client's model and user: what they were asked, and their answers."""

    sampled: list[CreateMessageRequestParams] = field(default_factory=list)
    elicited: list[str] = field(default_factory=list)

    async def sample(self, _: Any, params: CreateMessageRequestParams) -> CreateMessageResult:
        self.sampled.append(params)
        prompt = params.messages[-1].content.text  # type: ignore[union-attr]
        reading = "JSON schema" in (params.system_prompt or "")
        text = json.dumps(read_transcript(prompt)) if reading else ANSWER
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text=text), model="client-llm")

    async def elicit(self, _: Any, params: ElicitRequestParams) -> ElicitResult:
        self.elicited.append(params.message)
        return ElicitResult(action="accept", content={"confirm": True})


@dataclass
class Deployment:
    """One demo data dir and HubSpot fake, served in process and by two server processes (sessions, stateless)."""

    data_dir: Path
    sections: dict[str, Any]
    urls: dict[str, str]
    hubspot: hubspot.HubSpotState

    @asynccontextmanager
    async def connect(self, where: str, mode: Mode, client: TheClient | None) -> AsyncIterator[Client]:
        callbacks: dict[str, Any] = {}
        if client is not None:
            callbacks = {"sampling_callback": client.sample, "elicitation_callback": client.elicit}
        target: Any = create_server(make_settings(self.data_dir, **self.sections)) if where == "inproc" else None
        if target is None:
            target = streamable_http_client(self.urls[where], http_client=httpx2.AsyncClient(timeout=60))
        async with Client(target, mode=mode, **callbacks) as session:
            yield session


def environment(sections: dict[str, Any]) -> dict[str, str]:
    """The settings `sections` as the SOPHIA_ environment variables a server process reads."""
    return {f"SOPHIA_{s.upper()}__{k.upper()}": str(v) for s, values in sections.items() for k, v in values.items()}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, demo_template: Path) -> Iterator[Deployment]:
    data_dir = tmp_path_factory.mktemp("eras") / "data"
    data_dir.mkdir()
    shutil.copy(demo_template / "sophia.db", data_dir / "sophia.db")
    state = hubspot_state()
    with serve(hubspot.hubspot_app(state)) as hubspot_url:
        sections = {
            "analyst": {"backend": "sampling"},
            "hubspot": {"backend": "hubspot", "base_url": hubspot_url, "access_token": hubspot.ACCESS_TOKEN},
        }
        env = environment(sections)
        with (
            http_server(data_dir, "http", server="composite", **env) as sessions,
            http_server(data_dir, "http", server="composite", SOPHIA_HTTP__STATELESS="true", **env) as stateless,
        ):
            urls = {"http": f"{sessions}/mcp", "stateless-http": f"{stateless}/mcp"}
            yield Deployment(data_dir, sections, urls, state)


async def ask_everything(session: Client, data_dir: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A strategic question, a call analysed, a contact changed in HubSpot."""
    strategic = structured(await session.call_tool("strategic_query", {"question": QUESTION, "sources": SOURCES}))
    call_id = newest_call_ids(data_dir, 1)[0]
    analysis = structured(await session.call_tool("gong_analyze_call", {"call_id": call_id}))["analysis"]
    changes = {"contact_id": demo().contacts[0].id, "changes": {"city": "Reno"}}
    contact = structured(await session.call_tool("crm_update_contact", changes))
    return strategic, analysis, contact


TARGETS = [
    ("inproc", "auto"), ("inproc", "legacy"), ("http", "auto"), ("http", "legacy"), ("stateless-http", "auto"),
]  # fmt: skip


@pytest.mark.parametrize(("where", "mode"), TARGETS)
async def test_the_clients_model_and_user_are_asked_on_both_eras(
    deployment: Deployment, where: str, mode: Mode
) -> None:
    client = TheClient()
    async with deployment.connect(where, mode, client) as session:
        strategic, analysis, contact = await ask_everything(session, deployment.data_dir)
    assert strategic["synthesized_by"] == "sampling" and strategic["answer"] == ANSWER
    assert analysis["analyst"] == "sampling" and analysis["fallback_reason"] is None
    assert contact["city"] == "Reno"
    synthesis, reading = client.sampled
    assert "[W1]" in synthesis.messages[0].content.text  # type: ignore[union-attr]
    assert "JSON schema" in (reading.system_prompt or "")
    [confirmation] = client.elicited
    assert "hubspot" in confirmation and "city" in confirmation


@pytest.mark.parametrize(("where", "mode"), [*TARGETS, ("stateless-http", "legacy")])
async def test_without_sampling_or_elicitation_each_tool_degrades_as_documented(
    deployment: Deployment, where: str, mode: Mode
) -> None:
    writes = len(deployment.hubspot.updates)
    async with deployment.connect(where, mode, None) as session:
        strategic, analysis, contact = await ask_everything(session, deployment.data_dir)
    # No sampling and no model configured: the evidence alone; the configured analyst, saying why; no question.
    assert strategic["answer"] is None and strategic["synthesized_by"] is None and strategic["evidence"]["citations"]
    assert (
        analysis["analyst"] == "local" and analysis["fallback_reason"] == "sampling: the client does not offer sampling"
    )
    assert contact["city"] == "Reno" and len(deployment.hubspot.updates) == writes + 1


async def test_a_2025_session_on_stateless_http_is_never_asked(deployment: Deployment) -> None:
    """Without a session there is no back-channel to ask on, nor a record of the client's capabilities."""
    client = TheClient()
    async with deployment.connect("stateless-http", "legacy", client) as session:
        strategic, analysis, _ = await ask_everything(session, deployment.data_dir)
    assert client.sampled == [] and client.elicited == []
    assert strategic["synthesized_by"] is None and analysis["analyst"] == "local"


async def test_the_answers_are_the_same_on_both_eras(deployment: Deployment) -> None:
    call_id = newest_call_ids(deployment.data_dir, 1)[0]
    answers: dict[str, list[Any]] = {"legacy": [], "auto": []}
    # Every analysis adds to the health history the evidence quotes: both eras answer the question, then both
    # analyse the call.
    for ask in ("strategic_query", "gong_analyze_call"):
        for mode in ("legacy", "auto"):
            client = TheClient()
            async with deployment.connect("inproc", mode, client) as session:
                arguments = (
                    {"question": QUESTION, "sources": SOURCES} if ask == "strategic_query" else {"call_id": call_id}
                )
                result = structured(await session.call_tool(ask, arguments))
            if ask == "strategic_query":
                evidence = result.pop("evidence")
                result["citations"] = [{k: c[k] for k in ("id", "locator", "quote")} for c in evidence["citations"]]
            else:
                result = {k: result[k] for k in ("analysis", "health", "at_risk")}  # the run and alert are new once
            answers[mode] += [result, [p.model_dump(mode="json") for p in client.sampled]]
    assert answers["legacy"] == answers["auto"]


async def test_a_refused_sampling_request_fails_the_call_on_both_eras(deployment: Deployment) -> None:
    async def refuse(_: Any, params: CreateMessageRequestParams) -> ErrorData:
        return ErrorData(code=-1, message="The user declined to share their model")

    for mode in ("legacy", "auto"):
        target = create_server(make_settings(deployment.data_dir, **deployment.sections))
        async with Client(target, mode=mode, sampling_callback=refuse) as session:
            with pytest.raises(MCPError, match="declined to share their model"):
                await session.call_tool("strategic_query", {"question": QUESTION, "sources": SOURCES})


def test_replicas_sharing_a_request_state_key_resume_each_others_rounds(deployment: Deployment) -> None:
    """A 2026-07-28 round answered on one replica and retried on another (round-robin, stateless HTTP)."""
    key = "k" * 40
    env = environment(deployment.sections) | {"SOPHIA_HTTP__STATELESS": "true"}

    async def ask(urls: list[str]) -> dict[str, Any]:
        client = TheClient()
        http = httpx2.AsyncClient(timeout=60, transport=RoundRobin(urls))
        async with Client(
            streamable_http_client(f"{urls[0]}/mcp", http_client=http), sampling_callback=client.sample
        ) as s:
            try:
                return structured(await s.call_tool("strategic_query", {"question": QUESTION, "sources": SOURCES}))
            except MCPError as exc:
                return {"error": exc.error.message}

    keyed = {"SOPHIA_HTTP__REQUEST_STATE_KEYS": key, **env}
    with (
        http_server(deployment.data_dir, "http", server="composite", **keyed) as one,
        http_server(deployment.data_dir, "http", server="composite", **keyed) as two,
    ):
        shared = anyio.run(ask, [one, two])
        # The module's stateless server seals with a key of its own.
        unshared = anyio.run(ask, [one, deployment.urls["stateless-http"].removesuffix("/mcp")])
    assert shared["synthesized_by"] == "sampling", shared
    assert unshared == {"error": "Invalid or expired requestState"}


class RoundRobin(httpx2.AsyncBaseTransport):
    """Send each request to the next of `bases` in turn, as a load balancer in front of replicas does."""

    def __init__(self, bases: list[str]) -> None:
        self.bases = [httpx2.URL(b) for b in bases]
        self.turn = 0
        self.inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        base = self.bases[self.turn % len(self.bases)]
        self.turn += 1
        request.url = request.url.copy_with(host=base.host, port=base.port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_local_clients_roots_narrow_ingestion_on_both_eras(data_dir: Path, tmp_path: Path, mode: Mode) -> None:
    opened = tmp_path / "opened"
    shared = opened / "shared"
    shared.mkdir(parents=True)
    (shared / "inside.md").write_text("# Inside\n\nShared by the client and open on the server.\n")
    (opened / "unshared.md").write_text("# Unshared\n\nOpen on the server, not shared by the client.\n")
    asked: list[str] = []

    async def roots(_: Any) -> ListRootsResult:
        asked.append("roots")
        return ListRootsResult(roots=[Root(uri=shared.as_uri(), name="shared")])  # type: ignore[arg-type]

    server = knowledge.create_server(make_settings(data_dir, knowledge={"roots": [str(opened)]}))
    server.client_is_local = True  # as `serve` says over stdio: the client's file:// roots name this machine's folders
    async with Client(server, mode=mode, list_roots_callback=roots) as session:
        inside = structured(await session.call_tool("ingest_document", {"path": str(shared / "inside.md")}))
        narrowed = await session.call_tool("ingest_document", {"path": str(opened / "unshared.md")})
    assert inside["status"] == "new" and asked == ["roots", "roots"]
    assert narrowed.is_error and "not a file that may be ingested" in text_of(narrowed)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_log_message_goes_to_stderr_on_both_eras_and_to_a_client_that_asks_for_it(
    data_dir: Path, caplog: pytest.LogCaptureFixture, mode: Mode
) -> None:
    call_id = newest_call_ids(data_dir, 1)[0]
    received: list[str] = []

    async def on_log(params: Any) -> None:
        received.append(params.data)

    caplog.set_level(logging.INFO, logger="sophia_mcp.mcp.server")
    server = gong.create_server(make_settings(data_dir))
    # On 2026-07-28 a request carries the log level it wants; without one no message is sent to the client.
    for log_level in (None, "info"):
        async with Client(server, mode=mode, logging_callback=on_log, log_level=log_level) as session:
            structured(await session.call_tool("analyze_call", {"call_id": call_id}))
    said = f"Analysing call {call_id}"
    assert [r.getMessage() for r in caplog.records].count(said) == 2
    assert received.count(said) == (2 if mode == "legacy" else 1)


def test_a_request_state_key_too_short_to_be_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="at least 32 characters"):
        make_settings(tmp_path, http={"request_state_keys": "short-key"})
    two = make_settings(tmp_path, http={"request_state_keys": f"{'a' * 32},{'b' * 32}"}).http.request_state_keys
    assert [k.get_secret_value() for k in two] == ["a" * 32, "b" * 32]
