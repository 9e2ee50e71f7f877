"""Chooses, on the "tune" calls of tests/data/eval_calls, the risk meaning's thresholds and the sentiment band.

Only the tune part is read: the held-out parts are for tests/test_call_eval.py to report. Each choice is printed
beside the module's value, and made again in 6 folds of the tune part (chosen on five sixths, counted on the
sixth): how it is likely to do on calls it was not chosen on.

Risks (analysis/risk_meaning.py): for each risk kind, every
(cosine threshold, tone limit) pair of a grid is scored on the tune calls by the F0.5 (precision counted twice
recall) of the meaning method alone, call by call; the best pair wins, the highest threshold among equals. Then the
phrase rules, the meaning and both are shown.

Sentiment (analysis/sentiment.py): the neutral band (`POSITIVE_AT`, `NEGATIVE_AT`), the client side's weight
(`CLIENT_WEIGHT`) and a complaint's weight over good news (`NEGATIVE_WEIGHT`), by accuracy of the call's label; the
sentences' business scores, the risk tones and the mixed rule are the module's own.
Run: python bench/eval_tuning.py
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sophia_mcp.adapters.gong_payloads import parse_call, parse_transcript
from sophia_mcp.adapters.local_embed import LocalEmbedder
from sophia_mcp.analysis import sentiment
from sophia_mcp.analysis.risk import find_risk_factors, risk_kinds
from sophia_mcp.analysis.risk_meaning import EXAMPLES, THRESHOLDS, TONE_AT, RiskMeaning
from sophia_mcp.analysis.sentiment import business_sentiment
from sophia_mcp.analysis.speakers import side_of, speaker_index
from sophia_mcp.domain.calls import Call, Transcript
from sophia_mcp.domain.results import RiskKind
from sophia_mcp.domain.weights import DEFAULT_COMPETITORS

EVAL = Path(__file__).parent.parent / "tests" / "data" / "eval_calls"
COSINES = [round(0.3 + 0.025 * i, 3) for i in range(25)]
TONES: list[float | None] = [None, 0.3, 0.05, -0.05]
Sentence = tuple[dict[RiskKind, float], float, list[RiskKind]]  # similarity, tone, the rules' kinds
POSITIVE_ATS = (0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2)
BANDS = [(p, n) for p in POSITIVE_ATS for n in (-0.02, -0.04, -0.06, -0.08, -0.1, -0.15)]
WEIGHTS = [(c, w) for c in (0.5, 0.65, 0.8, 0.9, 1.0) for w in (1.0, 1.5, 2.0)]
Tones = tuple[str, list[float], list[float]]  # the label, the client's and our sentences' business scores
Sentiment = tuple[float, float, float, float]  # POSITIVE_AT, NEGATIVE_AT, CLIENT_WEIGHT, NEGATIVE_WEIGHT


def tune_parts() -> Iterator[tuple[dict[str, Any], Call, Transcript]]:
    """Each tune call's labels, call and transcript, as the import reads them."""
    for label in json.loads((EVAL / "labels.json").read_text())["calls"]:
        if label["split"] == "tune":
            pages = json.loads((EVAL / "gong" / label["file"]).read_text())
            yield label, parse_call(pages[0]["calls"][0]).call, parse_transcript(pages[1]["callTranscripts"][0])


def tune_calls() -> list[tuple[set[str], list[Sentence]]]:
    """Each tune call's labelled risk kinds, and its client sentences read by the meaning and the rules."""
    meaning = RiskMeaning(LocalEmbedder().embed_now)
    calls = []
    for label, call, transcript in tune_parts():
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
    choose_risk_meaning()
    choose_sentiment()


def choose_risk_meaning() -> None:
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


def tune_tones() -> list[Tones]:
    """Each tune call's sentiment label and its sentences' business scores, risks floored as the analyst does."""
    calls = []
    for label, call, transcript in tune_parts():
        risks = find_risk_factors(transcript, call.parties, DEFAULT_COMPETITORS)
        risky = {(r.speaker_id, r.at_ms): r.kind for r in risks}
        index = speaker_index(call.parties)
        client: list[float] = []
        internal: list[float] = []
        for m in transcript.monologues:
            for s in m.sentences:
                score = business_sentiment(s.text)
                kind = risky.get((m.speaker_id, s.start_ms))
                if kind is not None:
                    score = min(score, sentiment.CHURN_TONE if kind == "churn_intent" else sentiment.RISK_TONE)
                (internal if side_of(m.speaker_id, index) == "Internal" else client).append(score)
        calls.append((label["sentiment"], client, internal))
    return calls


def sentiment_right(calls: list[Tones], choice: Sentiment) -> int:
    positive_at, negative_at, client_weight, negative_weight = choice
    return sum(
        sentiment.label(sentiment.call_score(client, ours, client_weight, negative_weight), positive_at, negative_at)
        == wanted
        for wanted, client, ours in calls
    )


def best_sentiment(calls: list[Tones]) -> Sentiment:
    """The most right labels; among equals the band and weights nearest the middle of the grid's order."""
    grid = [(p, n, c, w) for (p, n), (c, w) in itertools.product(BANDS, WEIGHTS)]
    scores = [sentiment_right(calls, choice) for choice in grid]
    tied = [choice for choice, score in zip(grid, scores, strict=True) if score == max(scores)]
    return tied[len(tied) // 2]


def choose_sentiment() -> None:
    calls = tune_tones()
    chosen = best_sentiment(calls)
    module = (sentiment.POSITIVE_AT, sentiment.NEGATIVE_AT, sentiment.CLIENT_WEIGHT, sentiment.NEGATIVE_WEIGHT)
    mark = "" if chosen == module else f"   <- differs from the module's {module}"
    print(f"sentiment (positive at, negative at, client weight, negative weight): {chosen}{mark}")
    print(f"  tune, the module's choice  sentiment {sentiment_right(calls, module) / len(calls):.0%}")
    folds, right = 6, 0
    for fold in range(folds):
        choice = best_sentiment([c for i, c in enumerate(calls) if i % folds != fold])
        right += sentiment_right([c for i, c in enumerate(calls) if i % folds == fold], choice)
    print(f"  tune in {folds} folds            sentiment {right / len(calls):.0%}")


if __name__ == "__main__":
    main()
