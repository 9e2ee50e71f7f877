"""Gong server speed beside a bare MCPServer, measured in the same run, over stdio like a desktop client.

- cold start: spawn -> initialize -> tools/list, median of N alternating starts of each server;
- tool-call latency: p50 and p99 over many calls in one session (gong `get_call` and `list_calls` against
  the bare server's `echo`), plus `analyze_call` (a whole workflow) for reference.

Targets: cold start within 1.2x of the bare server, a tool call within 1.5x. Run: python bench/gong_server.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

HERE = Path(__file__).parent
SCRIPT = str(Path(sys.executable).with_name("sophia-mcp"))


def prepare_data_dir() -> Path:
    from sophia_mcp.demo import load_demo
    from sophia_mcp.settings import load_settings
    from sophia_mcp.wiring import build_services

    data_dir = Path(tempfile.mkdtemp(prefix="sophia-bench-"))
    services = build_services(load_settings(data_dir=data_dir))
    try:
        anyio.run(load_demo, services)
    finally:
        services.close()
    return data_dir


def bare() -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=[str(HERE / "bare_echo_server.py")])


def gong(data_dir: Path) -> StdioServerParameters:
    return StdioServerParameters(command=SCRIPT, args=["serve", "gong"], env={"SOPHIA_DATA_DIR": str(data_dir)})


async def cold_start(params: StdioServerParameters) -> float:
    started = time.perf_counter()
    async with Client(params, mode="legacy") as client:
        await client.list_tools()
        elapsed = time.perf_counter() - started
    return elapsed


async def latencies(
    params: StdioServerParameters, name: str, args: Callable[[int], dict[str, Any]], n: int
) -> list[float]:
    async with Client(params, mode="legacy") as client:
        for i in range(20):  # warm-up: imports, caches, the store connection
            await client.call_tool(name, args(i))
        out = []
        for i in range(n):
            started = time.perf_counter()
            result = await client.call_tool(name, args(i))
            out.append(time.perf_counter() - started)
            assert not result.is_error, result
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main(starts: int, calls: int) -> dict[str, Any]:
    data_dir = prepare_data_dir()
    from sophia_mcp.settings import load_settings
    from sophia_mcp.store import Store

    store = Store(load_settings(data_dir=data_dir).store_path)
    call_ids = [r["id"] for r in store.query("SELECT id FROM calls ORDER BY started DESC")]
    store.close()

    bare_starts: list[float] = []
    gong_starts: list[float] = []
    for _ in range(starts):
        bare_starts.append(await cold_start(bare()))
        gong_starts.append(await cold_start(gong(data_dir)))

    echo = await latencies(bare(), "echo", lambda i: {"text": f"hello {i}"}, calls)
    get_call = await latencies(gong(data_dir), "get_call", lambda i: {"call_id": call_ids[i % len(call_ids)]}, calls)
    list_calls = await latencies(gong(data_dir), "list_calls", lambda i: {"limit": 20}, calls)
    analyze = await latencies(
        gong(data_dir), "analyze_call", lambda i: {"call_id": call_ids[i % len(call_ids)]}, max(50, calls // 10)
    )

    cold_bare, cold_gong = statistics.median(bare_starts), statistics.median(gong_starts)
    results: dict[str, Any] = {
        "cold_start_s": {"bare": cold_bare, "gong": cold_gong, "ratio": cold_gong / cold_bare, "target": 1.2},
        "calls": {},
    }
    for label, values in (
        ("echo (bare)", echo),
        ("get_call", get_call),
        ("list_calls", list_calls),
        ("analyze_call", analyze),
    ):
        results["calls"][label] = {"p50_ms": pct(values, 50) * 1000, "p99_ms": pct(values, 99) * 1000, "n": len(values)}
    for label in ("get_call", "list_calls", "analyze_call"):
        row = results["calls"][label]
        row["p50_ratio"] = row["p50_ms"] / results["calls"]["echo (bare)"]["p50_ms"]
        row["p99_ratio"] = row["p99_ms"] / results["calls"]["echo (bare)"]["p99_ms"]
    return results


def report(results: dict[str, Any]) -> None:
    cold = results["cold_start_s"]
    print("cold start (spawn -> initialize -> tools/list), median of the runs:")
    print(f"  bare MCPServer  {cold['bare'] * 1000:8.1f} ms")
    print(f"  gong server     {cold['gong'] * 1000:8.1f} ms   ratio {cold['ratio']:.2f}  (target <= {cold['target']})")
    print("tool-call latency over stdio:")
    for label, row in results["calls"].items():
        ratios = f"   ratio p50 {row['p50_ratio']:.2f} p99 {row['p99_ratio']:.2f}" if "p50_ratio" in row else ""
        print(f"  {label:14s} p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms  (n={row['n']}){ratios}")
    print("target: a tool call within 1.5x of the bare server (get_call, list_calls); analyze_call is a whole workflow")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()
    figures = anyio.run(main, options.starts, options.calls)
    report(figures)
    if options.json:
        options.json.write_text(json.dumps(figures, indent=2))
