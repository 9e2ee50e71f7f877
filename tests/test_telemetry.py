"""Workflow runs as OpenTelemetry spans (a span per run, one per step under it), exported over OTLP to the
endpoint in the standard variables; and the workflow metrics resource."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sophia_mcp.servers.composite import create_server
from tests.fakes.server import serve
from tests.support.processes import SCRIPT, env_for
from tests.support.results import structured
from tests.support.settings import make_settings
from tests.support.store_file import newest_call_ids

pytestmark = pytest.mark.anyio
EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)  # this process's provider; the CLI test below runs in its own process
    return EXPORTER


async def test_a_run_is_a_span_with_its_steps_under_it_and_metrics_count_it(
    data_dir: Path, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    call_id = newest_call_ids(data_dir, 1)[0]
    async with Client(create_server(make_settings(data_dir))) as client:
        structured(await client.call_tool("gong_analyze_call", {"call_id": call_id}))
        failed = await client.call_tool("gong_analyze_call", {"call_id": "123"})
        metrics = json.loads((await client.read_resource("sophia://metrics")).contents[0].text)  # type: ignore[union-attr]
    finished = spans.get_finished_spans()
    [run] = [s for s in finished if s.name == "workflow analyze_call" and s.status.is_ok]
    steps = [s for s in finished if s.parent is not None and s.parent.span_id == run.context.span_id]
    assert run.attributes and run.attributes["sophia.subject"] == call_id
    names = [s.name for s in steps]
    assert names[:2] == ["step fetch_call", "step fetch_transcript"] and "step store_analysis" in names, names
    assert failed.is_error
    [analyze] = [m for m in metrics["workflows"] if m["workflow"] == "analyze_call"]
    assert analyze["runs"] >= 1 and analyze["p50_ms"] is not None and 0 < analyze["success_rate"] <= 1


def test_the_cli_exports_its_spans_to_the_otlp_endpoint(data_dir: Path) -> None:
    received: list[ExportTraceServiceRequest] = []

    async def traces(request: Request) -> Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.body())
        received.append(message)
        return Response(b"", 200, media_type="application/x-protobuf")

    with serve(Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])) as url:
        env = env_for(data_dir, OTEL_EXPORTER_OTLP_ENDPOINT=url, OTEL_SERVICE_NAME="sophia-test")
        done = subprocess.run([SCRIPT, "run", "health-monitor"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    names: list[str] = []
    services: set[Any] = set()
    for message in received:
        for resource_spans in message.resource_spans:
            services |= {a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"}
            for scope in resource_spans.scope_spans:
                names += [s.name for s in scope.spans]
    assert "workflow health_monitor" in names and "step load clients and health" in names
    assert services == {"sophia-test"}
