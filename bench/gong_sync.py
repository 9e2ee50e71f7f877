"""Gong sync of 1,000 calls across pages, against the time the fake's rate limit allows.

The Gong fake (tests/fakes/gong.py) serves 1,000 calls in pages of 100 and allows 3 requests per second, as
Gong does; `calls sync` must fetch 10 call pages and 10 transcript pages. The floor is the time the limit
allows for those requests ((requests - 1) / rate); the target is to stay within 10% of it, drawing no 429.
The client paces against the limit's own sliding window (sophia_mcp/adapters/http.py `SlidingWindow`), and the
sync fetches the next page while it imports the last. Each run is printed, then the worst and median ratio.
Run: python bench/gong_sync.py [--runs 5]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sophia_mcp.app.backends import build_services
from sophia_mcp.demo.calls import generate_demo
from sophia_mcp.domain.times import utcnow
from sophia_mcp.settings import load_settings
from sophia_mcp.workflows.call_sync import sync_calls
from tests.fakes.gong import ACCESS_KEY, ACCESS_SECRET, GongState, gong_app
from tests.fakes.server import serve


def thousand_calls(n: int) -> GongState:
    """n distinct calls, made by repeating the demo's calls under new ids (and the same transcripts)."""
    data = generate_demo(utcnow().date())
    calls, transcripts = [], {}
    base = data.calls_extensive["calls"]
    by_id = {t["callId"]: t["transcript"] for t in data.transcripts["callTranscripts"]}
    for i in range(n):
        call = copy.deepcopy(base[i % len(base)])
        original = call["metaData"]["id"]
        call["metaData"]["id"] = f"{9000000000000000000 + i}"
        calls.append(call)
        transcripts[call["metaData"]["id"]] = by_id[original]
    return GongState(calls=calls, transcripts=transcripts, page_size=100, rate_per_second=3, retry_after="1")


async def run(n: int, rate: float) -> tuple[float, float, int, float]:
    """One sync: its elapsed seconds, the rate-limit floor, the 429s drawn and the seconds spent waiting a turn."""
    state = thousand_calls(n)
    state.rate_per_second = rate
    with serve(gong_app(state)) as url:
        settings = load_settings(
            data_dir=Path(tempfile.mkdtemp(prefix="sophia-sync-")),
            gong={"backend": "gong", "base_url": url, "access_key": ACCESS_KEY, "access_key_secret": ACCESS_SECRET,
                  "rate_per_second": rate, "max_concurrency": 3},
        )  # fmt: skip
        services = build_services(settings)
        started = time.perf_counter()
        try:
            report = await sync_calls(services, services.calls, utcnow() - timedelta(days=95))  # type: ignore[arg-type]
            waited = services.calls.http.window.waited_s  # type: ignore[attr-defined]
        finally:
            await services.aclose()
            services.close()
        elapsed = time.perf_counter() - started
    requests = len(state.requests)
    assert report.calls_new == n and report.transcripts == n, report
    return elapsed, (requests - 1) / rate, state.throttled, waited


async def main(n: int, rate: float, runs: int) -> None:
    print(f"Gong sync of {n:,} calls and their transcripts at {rate:g} requests/s, {runs} runs")
    ratios, throttled = [], 0
    for i in range(runs):
        elapsed, floor, drawn, waited = await run(n, rate)
        ratios.append(elapsed / floor)
        throttled += drawn
        print(f"  run {i + 1}: elapsed {elapsed:6.2f} s; floor {floor:6.2f} s; ratio {elapsed / floor:.3f}; "
              f"429s {drawn}; waited for a turn {waited:5.2f} s (summed over requests)")  # fmt: skip
    print(f"ratio worst {max(ratios):.3f}, median {statistics.median(ratios):.3f} (target <= 1.10 in every run); "
          f"429s drawn in all runs: {throttled}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    anyio.run(main, options.calls, options.rate, options.runs)
