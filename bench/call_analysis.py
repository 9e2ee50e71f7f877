"""The local analyser's time per call on the 88 labelled calls of tests/data/eval_calls (p50 and p90, warm).

Each call is read (sentiment, competitors, risks) `--rounds` times after one warm-up pass that loads VADER's
lexicon; the figure is the local analyst's own work, without the store or the MCP surface. To compare with an
older version, run it with that version's package first on the path:
  git archive <commit> sophia_mcp | tar -x -C /tmp/old && PYTHONPATH=/tmp/old python bench/call_analysis.py
Run: python bench/call_analysis.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import sophia_mcp
from sophia_mcp.adapters.gong_payloads import parse_call, parse_transcript
from sophia_mcp.analysis.insights import local_insights
from sophia_mcp.domain.weights import DEFAULT_COMPETITORS

EVAL = Path(__file__).parent.parent / "tests" / "data" / "eval_calls" / "gong"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    calls = []
    for path in sorted(EVAL.glob("*.json")):
        pages = json.loads(path.read_text())
        calls.append((parse_call(pages[0]["calls"][0]).call, parse_transcript(pages[1]["callTranscripts"][0])))
    for call, transcript in calls:  # warm-up: VADER's lexicon, compiled patterns
        local_insights(call, transcript, DEFAULT_COMPETITORS)
    times = []
    for _ in range(args.rounds):
        for call, transcript in calls:
            start = time.perf_counter()
            local_insights(call, transcript, DEFAULT_COMPETITORS)
            times.append(time.perf_counter() - start)
    times.sort()
    sentences = sum(len(m.sentences) for _, t in calls for m in t.monologues) / len(calls)
    print(f"sophia_mcp from {Path(sophia_mcp.__file__).parent}")
    print(
        f"local analyser, {len(calls)} calls (~{sentences:.0f} sentences each) x {args.rounds}: "
        f"p50 {statistics.median(times) * 1000:.2f} ms, p90 {times[int(len(times) * 0.9)] * 1000:.2f} ms per call"
    )


if __name__ == "__main__":
    main()
