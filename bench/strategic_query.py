"""The strategic query's fan-out: four sources that each take 200 ms answer in about 200 ms, not 800.

The web source asks the Tavily fake (tests/fakes/web_search.py), which answers after 200 ms; the warehouse,
calls and knowledge sources run on the demo store and are each given 200 ms more latency, as a remote
warehouse or index would add. The cache is off, so every query asks every source. Target: the whole answer
within 1.3x of the slowest source. Then the same with the web down: the answer still comes, the gap named.
Run: python bench/strategic_query.py [--queries 20]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gong_server import prepare_data_dir

from sophia_mcp.app.backends import build_services
from sophia_mcp.settings import load_settings
from sophia_mcp.workflows import strategic
from tests.fakes.server import serve
from tests.fakes.web_search import TAVILY_KEY, WebState, tavily_app

LATENCY_S = 0.2
QUESTIONS = [
    "Which clients are at risk and why?",
    "What is AppFolio doing on pricing?",
    "How is revenue by segment holding up?",
    "What are customers saying about Yardi?",
]


def slowed(source: strategic.Source) -> strategic.Source:
    async def ask(services: Any, question: str, client_id: str | None) -> list[strategic.Citation]:
        await anyio.sleep(LATENCY_S)
        return await source(services, question, client_id)

    return ask


async def main(queries: int) -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    data_dir = await prepare_data_dir()
    state = WebState(delay_s=LATENCY_S)
    for name in ("warehouse", "calls", "knowledge"):
        strategic.ASK[name] = slowed(strategic.ASK[name])  # type: ignore[index]
    with serve(tavily_app(state)) as url:
        settings = load_settings(
            data_dir=data_dir, web_search={"backend": "tavily"}, strategic={"cache_ttl_s": 0},
            tavily={"base_url": url, "api_key": TAVILY_KEY, "max_retries": 0},
        )  # fmt: skip
        services = build_services(settings)
        try:
            await strategic.gather_evidence(services, QUESTIONS[0])  # warm: model, first connections
            totals, slowest, sums = [], [], []
            for i in range(queries):
                started = time.perf_counter()
                evidence = await strategic.gather_evidence(services, QUESTIONS[i % len(QUESTIONS)])
                totals.append(time.perf_counter() - started)
                assert not evidence.gaps, evidence.gaps
                slowest.append(max(s.seconds for s in evidence.sources))
                sums.append(sum(s.seconds for s in evidence.sources))
            state.faults = ["500"] * 3
            down = await strategic.gather_evidence(services, QUESTIONS[1])
        finally:
            await services.aclose()
            services.close()
    total, slow, added = statistics.median(totals), statistics.median(slowest), statistics.median(sums)
    print(f"strategic query, 4 sources of {LATENCY_S * 1000:.0f} ms each, {queries} questions (medians):")
    print(f"  answer {total * 1000:6.1f} ms; slowest source {slow * 1000:6.1f} ms; the sources one after another "
          f"{added * 1000:6.1f} ms")  # fmt: skip
    print(f"  ratio to the slowest source {total / slow:.2f}  (target <= 1.3); to their sum {total / added:.2f}")
    print(f"  web down: answered in {down.seconds * 1000:.0f} ms with {len(down.citations)} citations; gaps: "
          f"{'; '.join(down.gaps)}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=20)
    anyio.run(main, parser.parse_args().queries)
