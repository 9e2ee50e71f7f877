"""crm server speed beside a bare MCPServer, measured in the same run, over stdio like a desktop client.

The same method as bench/gong_server.py (whose driver this reuses): cold start is spawn -> initialize ->
tools/list, the median of N alternating starts; tool-call latency is p50 and p99 of `get_contact`,
`search_contacts`, `score_lead` and `list_clients` against the bare server's `echo`, taken in turns.
Targets: cold start within 1.2x of the bare server, a tool call within 1.5x. Run: python bench/crm_server.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gong_server import BARE, SCRIPT, StdioPeer, cold_start, latencies, pct, prepare_data_dir


def measure(starts: int, calls: int) -> None:
    data_dir = anyio.run(prepare_data_dir)
    env = {"SOPHIA_DATA_DIR": str(data_dir)}
    crm = [SCRIPT, "serve", "crm"]
    cold_start(BARE), cold_start(crm, env)  # first starts write bytecode caches; not counted
    bare_starts, crm_starts = [], []
    for _ in range(starts):
        bare_starts.append(cold_start(BARE))
        crm_starts.append(cold_start(crm, env))

    bare, server = StdioPeer(BARE), StdioPeer(crm, env)
    bare.initialize()
    server.initialize()
    contact_ids = [c["id"] for c in server.call("search_contacts", {"limit": 100})["structuredContent"]["contacts"]]

    def one_of(i: int) -> dict[str, Any]:
        return {"contact_id": contact_ids[i % len(contact_ids)]}

    series = latencies(
        {
            "echo (bare)": (bare, "echo", lambda i: {"text": f"hello {i}"}),
            "get_contact": (server, "get_contact", one_of),
            "search_contacts": (server, "search_contacts", lambda i: {"query": "manager", "limit": 20}),
            "score_lead": (server, "score_lead", one_of),
            "list_clients": (server, "list_clients", lambda i: {"limit": 20}),
        },
        calls,
    )
    bare.close()
    server.close()

    cold_bare, cold_crm = statistics.median(bare_starts), statistics.median(crm_starts)
    print("cold start (spawn -> initialize -> tools/list), median of the runs:")
    print(f"  bare MCPServer  {cold_bare * 1000:8.1f} ms")
    print(f"  crm server      {cold_crm * 1000:8.1f} ms   ratio {cold_crm / cold_bare:.2f}  (target <= 1.2)")
    print("tool-call latency over stdio (server + pipes, no client-side validation):")
    base = series["echo (bare)"]
    for label, values in series.items():
        ratios = "" if values is base else (
            f"   ratio p50 {pct(values, 50) / pct(base, 50):.2f} p99 {pct(values, 99) / pct(base, 99):.2f}"
        )  # fmt: skip
        print(f"  {label:16s} p50 {pct(values, 50) * 1000:7.2f} ms  p99 {pct(values, 99) * 1000:7.2f} ms{ratios}")
    print("target: a tool call within 1.5x of the bare echo")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--calls", type=int, default=300)
    options = parser.parse_args()
    measure(options.starts, options.calls)
