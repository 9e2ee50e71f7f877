"""Chooses analysis/risk_meaning.py's thresholds on the "tune" calls of tests/data/eval_calls, and prints them.

Only the tune part is read: the held-out parts are for tests/test_call_eval.py to report. For each risk kind, every
(cosine threshold, tone limit) pair of a grid is scored on the tune calls by the F0.5 (precision counted twice
recall) of the meaning method alone, call by call; the best pair wins, the highest threshold among equals. Then the
phrase rules, the meaning and both are shown on the tune part, and the same choice made in 6 folds of the tune
part (chosen on five sixths, counted on the sixth): how the meaning is likely to do on calls it was not chosen on.
Run: python bench/risk_meaning.py
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from pathlib import Path

from sophia_mcp.adapters.gong_payloads import parse_call, parse_transcript
from sophia_mcp.adapters.local_embed import LocalEmbedder
from sophia_mcp.analysis.risk import risk_kinds
from sophia_mcp.analysis.risk_meaning import EXAMPLES, THRESHOLDS, TONE_AT, RiskMeaning
from sophia_mcp.analysis.sentiment import business_sentiment
from sophia_mcp.analysis.speakers import side_of, speaker_index
from sophia_mcp.domain.results import RiskKind
from sophia_mcp.domain.weights import DEFAULT_COMPETITORS

EVAL = Path(__file__).parent.parent / "tests" / "data" / "eval_calls"
COSINES = [round(0.3 + 0.025 * i, 3) for i in range(25)]
TONES: list[float | None] = [None, 0.3, 0.05, -0.05]
Sentence = tuple[dict[RiskKind, float], float, list[RiskKind]]  # similarity, tone, the rules' kinds


def tune_calls() -> list[tuple[set[str], list[Sentence]]]:
    """Each tune call's labelled risk kinds, and its client sentences read by the meaning and the rules."""
    meaning = RiskMeaning(LocalEmbedder().embed_now)
    calls = []
    for label in json.loads((EVAL / "labels.json").read_text())["calls"]:
        if label["split"] != "tune":
            continue
        pages = json.loads((EVAL / "gong" / label["file"]).read_text())
        call = parse_call(pages[0]["calls"][0]).call
        transcript = parse_transcript(pages[1]["callTranscripts"][0])
        index = speaker_index(call.parties)
        texts = [
            s.text for m in transcript.monologues if side_of(m.speaker_id, index) != "Internal" for s in m.sentences
        ]
        rows = [
            (similarity, business_sentiment(text), risk_kinds(text, DEFAULT_COMPETITORS))
            for text, similarity in zip(texts, meaning(texts), strict=True)
        ]
        calls.append((set(label["risks"]), rows))
    return calls


def hits(sentence: Sentence, kind: RiskKind, cosine: float, tone: float | None) -> bool:
    """The module's rule (`raised_by_meaning`) with this kind's threshold and tone limit."""
    similarity, sentence_tone, _ = sentence
    closest = max(similarity, key=lambda k: similarity[k])
    return closest == kind and similarity[kind] >= cosine and (tone is None or sentence_tone <= tone)


def counts(pairs: Iterable[tuple[bool, bool]]) -> tuple[int, int, int]:
    tp = fp = fn = 0
    for found, wanted in pairs:
        tp += found and wanted
        fp += found and not wanted
        fn += wanted and not found
    return tp, fp, fn


def f_half(tp: int, fp: int, fn: int) -> float:
    return 1.25 * tp / (1.25 * tp + 0.25 * fn + fp) if tp else 0.0


Calls = list[tuple[set[str], list[Sentence]]]
Choice = dict[RiskKind, tuple[float, float | None]]


def choose(calls: Calls) -> tuple[Choice, dict[RiskKind, tuple[int, int, int]]]:
    """Per kind, the (cosine, tone limit) with the best F0.5 of the meaning alone on `calls`, and its counts."""
    chosen: Choice = {}
    tallies = {}
    for kind in EXAMPLES:
        scored = []
        for cosine, tone in itertools.product(COSINES, TONES):
            c = counts((any(hits(s, kind, cosine, tone) for s in rows), kind in wanted) for wanted, rows in calls)
            scored.append((f_half(*c), cosine, tone, c))
        best = max(scored, key=lambda row: (row[0], row[1]))
        chosen[kind], tallies[kind] = (best[1], best[2]), best[3]
    return chosen, tallies


def found_in(rows: list[Sentence], rules: bool, choice: Choice | None) -> set[str]:
    found: set[str] = set()
    for s in rows:
        found |= set(s[2]) if rules else set()
        found |= {k for k, (cosine, tone) in (choice or {}).items() if hits(s, k, cosine, tone)}
    return found


def line(name: str, pairs: Iterable[tuple[set[str], set[str]]]) -> str:
    tp = fp = fn = 0
    for found, wanted in pairs:
        tp, fp, fn = tp + len(found & wanted), fp + len(found - wanted), fn + len(wanted - found)
    return f"  {name:<28} risk kinds P {tp / max(tp + fp, 1):.2f} R {tp / max(tp + fn, 1):.2f}"


def main() -> None:
    calls = tune_calls()
    chosen, tallies = choose(calls)
    print(f"{len(calls)} tune calls; chosen per kind (cosine, tone at most, tp fp fn of the meaning alone):")
    for kind, (cosine, tone) in chosen.items():
        mark = "" if (cosine, tone) == (THRESHOLDS[kind], TONE_AT[kind]) else "   <- differs from the module"
        print(f"  {kind:<22} {cosine:.3f} {tone!s:>5}  {tallies[kind]}{mark}")
    module: Choice = {k: (THRESHOLDS[k], TONE_AT[k]) for k in EXAMPLES}
    for name, rules, choice in (("rules", True, None), ("meaning", False, module), ("both", True, module)):
        print(line(f"tune, {name}", ((found_in(rows, rules, choice), wanted) for wanted, rows in calls)))
    folds = 6
    for name, rules in (("meaning", False), ("both", True)):
        pairs = []
        for fold in range(folds):
            fold_choice, _ = choose([c for i, c in enumerate(calls) if i % folds != fold])
            pairs += [(found_in(rows, rules, fold_choice), w) for i, (w, rows) in enumerate(calls) if i % folds == fold]
        print(line(f"tune in {folds} folds, {name}", pairs))


if __name__ == "__main__":
    main()
