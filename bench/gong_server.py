"""Gong server speed beside a bare MCPServer, measured in the same run, over stdio like a desktop client.

- cold start: spawn -> initialize -> tools/list, median of N alternating starts of each server;
- tool-call latency: p50 and p99 over many calls on one connection (gong `get_call`, `list_calls`,
  `get_transcript` against the bare server's `echo`), plus `analyze_call` (a whole workflow) for reference.

The driver speaks JSON-RPC over the pipes itself, so the figures are the servers' and not a client library's
(the Python SDK client re-validates every structured result with jsonschema, which costs more than the call).
Targets: cold start within 1.5x of the bare server, a tool call within 1.5x. Run: python bench/gong_server.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

HERE = Path(__file__).parent
SCRIPT = str(Path(sys.executable).with_name("sophia-mcp"))
BARE = [sys.executable, str(HERE / "bare_echo_server.py")]


class StdioPeer:
    """A server process and a bare JSON-RPC client on its stdin/stdout."""

    def __init__(self, command: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            # Both servers may cache bytecode, as an installed package does (pip compiles at install).
            env={**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}, **(env or {})},
        )
        self.next_id = 0

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.next_id += 1
        message = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params or {}}
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"server exited during {method}")
            reply = json.loads(line)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply["result"])

    def initialize(self) -> None:
        self.request(
            "initialize",
            {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}},
        )
        assert self.proc.stdin
        self.proc.stdin.write(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
        self.proc.stdin.flush()

    def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = self.request("tools/call", {"name": tool, "arguments": arguments})
        if result.get("isError"):
            raise RuntimeError(f"{tool} failed: {result}")
        return result

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def prepare_data_dir() -> Path:
    from sophia_mcp.app.backends import build_services
    from sophia_mcp.demo.load import load_demo
    from sophia_mcp.settings import load_settings

    data_dir = Path(tempfile.mkdtemp(prefix="sophia-bench-"))
    services = build_services(load_settings(data_dir=data_dir))
    try:
        await load_demo(services)
    finally:
        services.close()
    return data_dir


def cold_start(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    peer = StdioPeer(command, env)
    peer.initialize()
    peer.request("tools/list")
    elapsed = time.perf_counter() - started
    peer.close()
    return elapsed


Probe = tuple[StdioPeer, str, Callable[[int], dict[str, Any]]]


def latencies(probes: dict[str, Probe], n: int) -> dict[str, list[float]]:
    """Time each probe's call n times, taking them in turns so machine noise falls on all of them alike."""
    for peer, tool, args in probes.values():
        for i in range(20):  # warm-up: lazy imports, caches, the store connection
            peer.call(tool, args(i))
    out: dict[str, list[float]] = {label: [] for label in probes}
    for i in range(n):
        for label, (peer, tool, args) in probes.items():
            started = time.perf_counter()
            peer.call(tool, args(i))
            out[label].append(time.perf_counter() - started)
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def measure(starts: int, calls: int) -> dict[str, Any]:
    data_dir = anyio.run(prepare_data_dir)
    env = {"SOPHIA_DATA_DIR": str(data_dir)}
    gong = [SCRIPT, "serve", "gong"]

    bare_starts: list[float] = []
    gong_starts: list[float] = []
    cold_start(BARE), cold_start(gong, env)  # first starts write bytecode caches; not counted
    for _ in range(starts):
        bare_starts.append(cold_start(BARE))
        gong_starts.append(cold_start(gong, env))

    bare = StdioPeer(BARE)
    bare.initialize()
    server = StdioPeer(gong, env)
    server.initialize()
    call_ids = [c["id"] for c in server.call("list_calls", {"limit": 100})["structuredContent"]["calls"]]

    def one_of(i: int) -> dict[str, Any]:
        return {"call_id": call_ids[i % len(call_ids)]}

    series = latencies(
        {
            "echo (bare)": (bare, "echo", lambda i: {"text": f"hello {i}"}),
            "get_call": (server, "get_call", one_of),
            "list_calls": (server, "list_calls", lambda i: {"limit": 20}),
            "get_transcript": (server, "get_transcript", lambda i: {**one_of(i), "limit": 50}),
        },
        calls,
    )
    series |= latencies({"analyze_call": (server, "analyze_call", one_of)}, max(50, calls // 10))
    bare.close()
    server.close()

    cold_bare, cold_gong = statistics.median(bare_starts), statistics.median(gong_starts)
    results: dict[str, Any] = {
        "cold_start_s": {"bare": cold_bare, "gong": cold_gong, "ratio": cold_gong / cold_bare, "target": 1.5},
        "calls": {},
    }
    base = series["echo (bare)"]
    for label, values in series.items():
        row = {"p50_ms": pct(values, 50) * 1000, "p99_ms": pct(values, 99) * 1000, "n": len(values)}
        if values is not base:
            row["p50_ratio"] = pct(values, 50) / pct(base, 50)
            row["p99_ratio"] = pct(values, 99) / pct(base, 99)
        results["calls"][label] = row
    return results


def report(results: dict[str, Any]) -> None:
    cold = results["cold_start_s"]
    print("cold start (spawn -> initialize -> tools/list), median of the runs:")
    print(f"  bare MCPServer  {cold['bare'] * 1000:8.1f} ms")
    print(f"  gong server     {cold['gong'] * 1000:8.1f} ms   ratio {cold['ratio']:.2f}  (target <= {cold['target']})")
    print("tool-call latency over stdio (server + pipes, no client-side validation):")
    for label, row in results["calls"].items():
        ratios = f"   ratio p50 {row['p50_ratio']:.2f} p99 {row['p99_ratio']:.2f}" if "p50_ratio" in row else ""
        print(f"  {label:15s} p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms  (n={row['n']}){ratios}")
    print("target: a tool call within 1.5x of the bare echo; analyze_call is a whole workflow, shown for reference")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()
    figures = measure(options.starts, options.calls)
    report(figures)
    if options.json:
        options.json.write_text(json.dumps(figures, indent=2))
