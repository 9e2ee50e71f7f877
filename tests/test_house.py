"""The house rules that keep the code easy to change, checked on the source itself: SQL only in the store and the
warehouse adapters (so a second database is one more set of repositories), and nothing the MCP SDK keeps private
(so an SDK release cannot break the servers from underneath). The import layers are import-linter's contracts in
pyproject.toml, which CI runs."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import mcp

ROOT = Path(__file__).resolve().parent.parent
SQL = re.compile(
    r"^\s*(SELECT\s.+\sFROM\s|INSERT\s+(OR\s+\w+\s+)?INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s"
    r"|CREATE\s+(TABLE|UNIQUE|INDEX|TRIGGER|VIEW)\s|PRAGMA\s)",
    re.S,
)
WHERE_SQL_BELONGS = ("sophia_mcp/store/", "sophia_mcp/adapters/local_warehouse.py", "sophia_mcp/adapters/snowflake.py",
                     "sophia_mcp/adapters/warehouse_sql.py")  # fmt: skip
DEFINED = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def product_sources() -> dict[str, str]:
    files = [*(ROOT / "sophia_mcp").rglob("*.py"), *(ROOT / "servers").rglob("*.py")]
    return {path.relative_to(ROOT).as_posix(): path.read_text() for path in sorted(files)}


def sql_outside_the_store(sources: dict[str, str]) -> list[str]:
    found = []
    for name, source in sources.items():
        if name.startswith(WHERE_SQL_BELONGS):
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.match(node.value):
                found.append(f"{name}:{node.lineno}: {node.value.strip()[:60]}")
    return found


@functools.cache
def sdk_private_names() -> frozenset[str]:
    names = set()
    for path in Path(mcp.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            name = node.name if isinstance(node, DEFINED) else node.attr if isinstance(node, ast.Attribute) else ""
            if name.startswith("_") and not name.startswith("__"):
                names.add(name)
    return frozenset(names)


def sdk_privates_used(sources: dict[str, str], private: frozenset[str]) -> list[str]:
    found = []
    for name, source in sources.items():
        tree = ast.parse(source)
        ours = {n.name for n in ast.walk(tree) if isinstance(n, DEFINED)}  # our own private names may match the SDK's
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                ours |= {t.attr for t in targets if isinstance(t, ast.Attribute)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("mcp", "mcp_types"):
                if any(
                    part.startswith("_") for part in [*(node.module or "").split("."), *(a.name for a in node.names)]
                ):
                    found.append(f"{name}:{node.lineno}: from {node.module} import ...")
            elif isinstance(node, ast.Attribute) and node.attr in private and node.attr not in ours:
                found.append(f"{name}:{node.lineno}: .{node.attr}")
    return found


def test_no_sql_outside_the_store_and_the_warehouse_adapters() -> None:
    assert sql_outside_the_store(product_sources()) == []


def test_sql_written_in_a_workflow_is_found() -> None:
    sources = {"sophia_mcp/workflows/x.py": 'ROWS = """\n    SELECT id FROM calls WHERE client_id = ?"""\n',
               "sophia_mcp/store/x.py": 'ROWS = "SELECT id FROM calls"\n'}  # fmt: skip
    assert sql_outside_the_store(sources) == ["sophia_mcp/workflows/x.py:1: SELECT id FROM calls WHERE client_id = ?"]


def test_no_private_name_of_the_sdk_is_used() -> None:
    assert sdk_privates_used(product_sources(), sdk_private_names()) == []


def test_reaching_into_the_sdk_is_found() -> None:
    source = (
        "from mcp.client._input_required import x\ndef names(server):\n    return server._tool_manager.list_tools()\n"
    )
    assert sdk_privates_used({"servers/x.py": source}, sdk_private_names()) == [
        "servers/x.py:1: from mcp.client._input_required import ...",
        "servers/x.py:3: ._tool_manager",
    ]
