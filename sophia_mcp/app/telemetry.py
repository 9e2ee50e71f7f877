"""OpenTelemetry spans for workflow runs and their steps, exported over OTLP when an endpoint is configured.

The standard variables configure it (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`, ...). Without an endpoint no exporter is set up, and spans
go to whatever tracer provider the host process installed (none: they cost nearly nothing). The SDK and its
exporter load only when an endpoint is configured.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from sophia_mcp.store.runs import describe_error

_provider: Any = None


def configure_from_environment(service_name: str) -> None:
    """Install a tracer provider exporting to the OTLP endpoint in the environment, once; else do nothing."""
    global _provider
    if _provider is not None:
        return
    if not (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return
    # The SDK and its exporter are heavy: loaded only by a process that exports.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME") or service_name
    _provider = TracerProvider(resource=Resource.create({"service.name": name}))
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(_provider)


def shutdown() -> None:
    """Send what is buffered (a CLI command is about to exit)."""
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """A span around a run or a step; an exception marks it failed, with the error's description."""
    tracer = trace.get_tracer("sophia_mcp")
    with tracer.start_as_current_span(name, record_exception=False, set_status_on_exception=False) as current:
        for key, value in attributes.items():
            if value is not None:
                current.set_attribute(f"sophia.{key}", value)
        try:
            yield current
        except BaseException as exc:
            current.set_status(Status(StatusCode.ERROR, describe_error(exc)))
            raise
