"""Fuzzing every tool of the composite server through an MCP client session: arguments generated from each
tool's input schema (valid ones) and arbitrary JSON objects (mostly invalid). Every answer must be a result or a
clean isError (no traceback, no internal error text), and the server must keep answering."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from sophia_mcp.servers.composite import create_server
from tests.support.settings import make_settings

# Tools that reach far (every competitor, the web, a model, many calls) get fewer examples: they are slow, not fragile.
SLOW = {"competitive_intelligence", "predict_churn", "crm_enrich_contacts", "alerts_run_health_monitor",
        "strategic_query", "build_dashboard"}  # fmt: skip
# One test per tool, so the workers share them out: the names come from the composite server's pinned tool list.
SNAPSHOT = Path(__file__).parent / "snapshots" / "composite_tools.json"
TOOLS = sorted(t["name"] for t in json.loads(SNAPSHOT.read_text()))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)


def from_schema(schema: dict[str, Any], root: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """Values valid for the JSON Schema subset pydantic writes (refs, anyOf, enum, const, patterns, bounds)."""
    root = root or schema
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return st.deferred(lambda: from_schema(root["$defs"][name], root))
    if "anyOf" in schema or "oneOf" in schema:
        return st.one_of([from_schema(s, root) for s in schema.get("anyOf") or schema["oneOf"]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**schema, "type": k}, root) for k in kind])
    if kind == "object":
        properties = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        return st.fixed_dictionaries(
            {k: from_schema(v, root) for k, v in properties.items() if k in required},
            optional={k: from_schema(v, root) for k, v in properties.items() if k not in required},
        )
    if kind == "array":
        items = from_schema(schema.get("items") or {}, root)
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 4), 4))
    if kind == "string":
        if schema.get("format") == "date":
            return st.dates().map(str)
        if schema.get("format") == "date-time":
            return st.datetimes().map(lambda d: d.isoformat() + "Z")
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(
                lambda v: schema.get("minLength", 0) <= len(v) <= schema.get("maxLength", 10**6)
            )
        return st.text(min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 40), 40))
    if kind == "integer":
        return st.integers(schema.get("minimum", -1000), schema.get("maximum", 1000))
    if kind == "number":
        low = schema.get("minimum", schema.get("exclusiveMinimum", -1000.0))
        high = schema.get("maximum", schema.get("exclusiveMaximum", 1000.0))
        return st.floats(low, high, allow_nan=False, exclude_min="exclusiveMinimum" in schema,
                         exclude_max="exclusiveMaximum" in schema)  # fmt: skip
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return JSON


def tool_schemas(server: Any) -> dict[str, dict[str, Any]]:
    async def listing() -> dict[str, dict[str, Any]]:
        async with Client(server) as client:
            return {t.name: t.input_schema for t in (await client.list_tools()).tools}

    return anyio.run(listing)


def check(answer: Any, tool: str, arguments: dict[str, Any]) -> None:
    text = " ".join(getattr(c, "text", "") for c in answer.content)
    where = f"{tool}({json.dumps(arguments, default=str)[:300]})"
    assert "Traceback" not in text, where
    if answer.is_error:
        assert "Error executing tool" not in text, f"{where} -> {text[:300]}"


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_answers_generated_arguments_cleanly(data_dir: Path, tool: str) -> None:
    server = create_server(make_settings(data_dir, tool_timeout_s=20))
    schemas = tool_schemas(server)
    assert set(schemas) == set(TOOLS)  # every tool the server lists is fuzzed
    fuzz(server, tool, schemas[tool])


def fuzz(server: Any, tool: str, schema: dict[str, Any]) -> None:
    examples = 3 if tool in SLOW else 12

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    @given(valid=from_schema(schema), noise=st.dictionaries(st.text(max_size=12), JSON, max_size=4))
    def run(valid: dict[str, Any], noise: dict[str, Any]) -> None:
        async def call() -> None:
            async with Client(server) as client:
                for arguments in (valid, noise):
                    check(await client.call_tool(tool, arguments), tool, arguments)
                assert (await client.list_tools()).tools  # still up

        anyio.run(call)

    run()


@pytest.mark.parametrize("arguments", [[], "text", 7, None])
def test_arguments_that_are_not_an_object_are_refused(data_dir: Path, arguments: Any) -> None:
    async def call() -> Any:
        async with Client(create_server(make_settings(data_dir))) as client:
            return await client.session.call_tool("run_metric", arguments)  # type: ignore[arg-type]

    try:
        answer = anyio.run(call)
    except Exception as exc:  # the client may refuse to send it; the server must not be reached with it
        assert "Traceback" not in str(exc)
    else:
        assert answer.is_error
