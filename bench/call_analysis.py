"""The local analyser's time per call on the tune and train calls of tests/data/eval_calls (p50 and p90, warm).

Each call is read (sentiment, competitors, risks) `--rounds` times after one warm-up pass that loads VADER's
lexicon (and, with the risk meaning or the learned reading, the embedding model: its load is printed once); the
figure is the local analyst's own work, without the store or the MCP surface. Three readings are timed: the phrase
rules alone (SOPHIA_ANALYST__LEARNED=false), with the risk meaning (SOPHIA_ANALYST__RISK_MEANING) and the learned
reading (the default). To compare with an
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
from sophia_mcp.adapters.lexicon_analyst import LocalAnalyst
from sophia_mcp.domain.weights import DEFAULT_COMPETITORS

EVAL = Path(__file__).parent.parent / "tests" / "data" / "eval_calls"
PARTS = ("tune", "train")  # the held-out parts are read by tests/test_call_eval.py only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    rounds = parser.parse_args().rounds
    calls = []
    for label in json.loads((EVAL / "labels.json").read_text())["calls"]:
        if label["split"] not in PARTS:
            continue
        pages = json.loads((EVAL / "gong" / label["file"]).read_text())
        calls.append((parse_call(pages[0]["calls"][0]).call, parse_transcript(pages[1]["callTranscripts"][0])))
    sentences = sum(len(m.sentences) for _, t in calls for m in t.monologues) / len(calls)
    print(f"sophia_mcp from {Path(sophia_mcp.__file__).parent}")
    for name, analyst in (("rules", LocalAnalyst(DEFAULT_COMPETITORS)),
                          ("with the risk meaning", LocalAnalyst(DEFAULT_COMPETITORS, risk_meaning=True)),
                          ("learned", LocalAnalyst(DEFAULT_COMPETITORS, learned=True))):  # fmt: skip
        start = time.perf_counter()
        for call, transcript in calls:  # warm-up: VADER's lexicon, compiled patterns, the embedding model
            analyst.read_now(call, transcript)
        if analyst.risk_meaning or analyst.learned:
            print(f"warm-up with the model's load: {(time.perf_counter() - start) * 1000:.0f} ms")
        times = []
        for _ in range(rounds):
            for call, transcript in calls:
                start = time.perf_counter()
                analyst.read_now(call, transcript)
                times.append(time.perf_counter() - start)
        times.sort()
        print(
            f"local analyser, {name}, {len(calls)} calls (~{sentences:.0f} sentences each) x {rounds}: "
            f"p50 {statistics.median(times) * 1000:.2f} ms, p90 {times[int(len(times) * 0.9)] * 1000:.2f} ms per call"
        )


if __name__ == "__main__":
    main()
