"""Fits the learned analyst (analysis/learned_reading.py) on the "tune" and "train" calls of tests/data/eval_calls,
estimates it by folds of those calls beside the phrase rules and the lexicon, and writes its weights to
sophia_mcp/data/learned_analyst.json.

Only the tune and train calls are read; the held-out parts are for tests/test_call_eval.py to report.
Sentence labels for the risk models: a train call's tagged sentences (tests/data/eval_calls/train_sentences.json);
on a tune call, the sentences where the rules raise a kind the call is labelled with (the kinds a tune call is
labelled with and no rule reached leave its sentences out of that kind's model). Per kind, a logistic model over the
sentence features (balanced classes); over what their scores add up to in a call, the call model (one logistic model
for all kinds, `kind_features`), fitted on the sentence scores of inner folds (each call scored by sentence models
that did not see it) and on the calls' labels. The regularisation of the sentence models and of the sentiment model is
chosen by folds: each figure printed is out of fold, with the call model fitted on inner folds of the fitting part
only. The call model's regularisation (`KIND_C`) and threshold (`KIND_THRESHOLD`) were chosen on these figures (four
fold seeds, 20 to 23, by the train part's risk kinds and at-risk calls). "At risk" is whether the health the call
alone suggests with the kinds found (its own tone, talk and competitors) is under the threshold, against the call's
label. The tune part's figures flatter the rules (they were written on it); the train part's are the fair comparison.
Run: python bench/fit_analyst.py [--check]   (--check: print the estimate and the choice, write nothing, and exit
1 unless the shipped weights are what it would write, each number within 1e-5)
"""

from __future__ import annotations

import argparse
import json
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from sophia_mcp.adapters.gong_payloads import parse_call, parse_transcript
from sophia_mcp.adapters.lexicon_analyst import shared_embedder, shared_meaning
from sophia_mcp.analysis.health import call_health
from sophia_mcp.analysis.insights import build_analysis, local_insights
from sophia_mcp.analysis.learned_reading import (
    KINDS,
    ClientSentences,
    call_features,
    kind_features,
    read_client_sentences,
    risk_features,
)
from sophia_mcp.analysis.sentiment import label as lexicon_label
from sophia_mcp.domain.results import CallAnalysis, RiskFactor
from sophia_mcp.domain.weights import DEFAULT_COMPETITORS
from sophia_mcp.settings import HealthSettings

ROOT = Path(__file__).parent.parent
EVAL = ROOT / "tests" / "data" / "eval_calls"
WEIGHTS = ROOT / "sophia_mcp" / "data" / "learned_analyst.json"
FOLDS, INNER, SEED = 5, 4, 20
HEALTH = HealthSettings()
RISK_C = (0.1, 0.3, 1.0)
KIND_C, KIND_THRESHOLD = 1.0, 0.5
SENTIMENT_C = (0.003, 0.01, 0.03, 0.1)


@dataclass
class LabelledCall:
    split: str
    sentiment: str
    risks: set[str]
    sentences: ClientSentences
    tags: list[set[str]]  # per client sentence, the kinds it raises
    unknown: set[str]  # kinds the call raises in sentences not known
    lexicon: str  # the lexicon's own label, for comparison
    at_risk: bool  # labelled: the call alone puts the client at risk
    analysis: CallAnalysis  # the rules' reading: the health a set of kinds gives this call (`health_at_risk`)

    @cached_property
    def rows(self) -> np.ndarray[Any, Any]:
        """The risk models' features of its client sentences."""
        return risk_features(self.sentences)

    @property
    def rules(self) -> set[str]:
        f = self.sentences.features
        n = len(KINDS)
        return {k for i, k in enumerate(KINDS) if f.size and f[:, -2 - n + i].any()}


def labelled_calls() -> list[LabelledCall]:
    embed, meaning = shared_embedder().embed_now, shared_meaning()
    tags = {c["call_id"]: c["sentences"] for c in json.loads((EVAL / "train_sentences.json").read_text())}
    calls = []
    for label in json.loads((EVAL / "labels.json").read_text())["calls"]:
        if label["split"] not in ("tune", "train"):
            continue
        pages = json.loads((EVAL / "gong" / label["file"]).read_text())
        call, transcript = parse_call(pages[0]["calls"][0]).call, parse_transcript(pages[1]["callTranscripts"][0])
        sentences = read_client_sentences(transcript, call.parties, DEFAULT_COMPETITORS, embed, meaning)
        wanted = set(label["risks"])
        n = len(KINDS)
        if label["split"] == "train":
            tagged = tags[label["call_id"]]
            assert [t["text"] for t in tagged] == sentences.texts, label["file"]
            per_sentence = [set(t["kinds"]) for t in tagged]
        else:
            f = sentences.features
            per_sentence = [{k for i, k in enumerate(KINDS) if row[-2 - n + i] and k in wanted} for row in f]
        unknown = wanted - set().union(set(), *per_sentence)
        score = lexicon_score(sentences)
        analysis = build_analysis(call, transcript, local_insights(call, transcript, DEFAULT_COMPETITORS), "local")
        calls.append(LabelledCall(label["split"], label["sentiment"], wanted, sentences, per_sentence, unknown,
                                  lexicon_label(score), label["at_risk"], analysis))  # fmt: skip
    return calls


def health_at_risk(call: LabelledCall, kinds: set[str]) -> bool:
    """Whether the health the call alone suggests is under the threshold when these kinds are its risks (the health
    reads only a risk's kind; the client's tone, talk and competitors are the call's own)."""
    said = [RiskFactor(kind=k, text="", speaker_id="", at_ms=0) for k in sorted(kinds)]  # type: ignore[arg-type]
    health = call_health(call.analysis.model_copy(update={"risk_factors": said}), HEALTH.weights)
    return health.score < HEALTH.threshold


def lexicon_score(sentences: ClientSentences) -> float:
    return float(call_features(sentences, shared_embedder().dimension)[0])


# Risks ------------------------------------------------------------------------------------------------------------


def fit_kind(calls: list[LabelledCall], k: int, c: float) -> LogisticRegression:
    kind = KINDS[k]
    rows = [(row, kind in tags) for call in calls if kind not in call.unknown
            for row, tags in zip(call.rows, call.tags, strict=True)]  # fmt: skip
    x = np.array([r for r, _ in rows])
    y = np.array([t for _, t in rows])
    return LogisticRegression(C=c, max_iter=5000, class_weight="balanced").fit(x, y)


def sentence_scores(models: list[LogisticRegression], call: LabelledCall) -> np.ndarray[Any, Any]:
    """Per client sentence and kind, the sentence models' probability (sentences x kinds)."""
    if not call.sentences.texts:
        return np.zeros((0, len(KINDS)))
    return np.column_stack([m.predict_proba(call.rows)[:, 1] for m in models])


def f1(pairs: list[tuple[bool, bool]], beta: float = 1.0) -> float:
    """F-beta of (found, wanted) pairs; beta under 1 weighs precision more than recall."""
    tp = sum(a and b for a, b in pairs)
    fp = sum(a and not b for a, b in pairs)
    fn = sum(b and not a for a, b in pairs)
    return (1 + beta**2) * tp / ((1 + beta**2) * tp + beta**2 * fn + fp) if tp else 0.0


def inner_scores(calls: list[LabelledCall], c: float) -> list[np.ndarray[Any, Any]]:
    """Each call's sentence scores by sentence models fitted on the other inner folds of `calls`."""
    scores: list[np.ndarray[Any, Any]] = [np.zeros(0)] * len(calls)
    for fold in range(INNER):
        fit = [x for i, x in enumerate(calls) if i % INNER != fold]
        models = [fit_kind(fit, k, c) for k in range(len(KINDS))]
        for i, x in enumerate(calls):
            if i % INNER == fold:
                scores[i] = sentence_scores(models, x)
    return scores


KindModels = tuple[list[LogisticRegression], StandardScaler, LogisticRegression]


def fit_kinds(calls: list[LabelledCall], c: float) -> KindModels:
    """The sentence model of each kind, and the call model over the scores of inner folds."""
    rows = [kind_features(x.sentences, s) for x, s in zip(calls, inner_scores(calls, c), strict=True)]
    x = np.vstack(rows)
    y = np.array([kind in call.risks for call in calls for kind in KINDS])
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=KIND_C, max_iter=2000).fit(scaler.transform(x), y)
    return [fit_kind(calls, k, c) for k in range(len(KINDS))], scaler, model


def learned_kinds(fit: list[LabelledCall], test: list[LabelledCall], c: float) -> list[set[str]]:
    models, scaler, model = fit_kinds(fit, c)
    found: list[set[str]] = []
    for x in test:
        p = model.predict_proba(scaler.transform(kind_features(x.sentences, sentence_scores(models, x))))[:, 1]
        added = {kind for kind, q in zip(KINDS, p, strict=True) if q >= KIND_THRESHOLD} if x.sentences.texts else set()
        found.append(set(x.rules) | added)
    return found


# Sentiment --------------------------------------------------------------------------------------------------------


def call_matrix(calls: list[LabelledCall]) -> np.ndarray[Any, Any]:
    return np.array([call_features(x.sentences, shared_embedder().dimension) for x in calls])


def fit_sentiment(calls: list[LabelledCall], c: float) -> tuple[StandardScaler, LogisticRegression]:
    x = call_matrix(calls)
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=c, max_iter=10000).fit(scaler.transform(x), [x.sentiment for x in calls])
    return scaler, model


def learned_labels(fit: list[LabelledCall], test: list[LabelledCall], c: float) -> list[str]:
    scaler, model = fit_sentiment(fit, c)
    return [str(p) for p in model.predict(scaler.transform(call_matrix(test)))]


# Estimate and choice ----------------------------------------------------------------------------------------------


def folds_of(n: int) -> list[int]:
    order = np.random.default_rng(SEED).permutation(n)
    fold = [0] * n
    for position, i in enumerate(order):
        fold[int(i)] = position % FOLDS
    return fold


def out_of_fold(calls: list[LabelledCall], risk_c: float, sentiment_c: float) -> tuple[list[set[str]], list[str]]:
    fold = folds_of(len(calls))
    kinds: list[set[str]] = [set() for _ in calls]
    labels = [""] * len(calls)
    for f in range(FOLDS):
        fit = [x for i, x in enumerate(calls) if fold[i] != f]
        test = [i for i in range(len(calls)) if fold[i] == f]
        for i, found in zip(test, learned_kinds(fit, [calls[i] for i in test], risk_c), strict=True):
            kinds[i] = found
        for i, found_label in zip(test, learned_labels(fit, [calls[i] for i in test], sentiment_c), strict=True):
            labels[i] = found_label
    return kinds, labels


def split_figures(calls: list[LabelledCall], kinds: list[set[str]], labels: list[str], split: str) -> dict[str, float]:
    """The figures of one part of the calls: risk kinds' P, R and F1 (micro over kinds), at risk and sentiment."""
    tp = fp = fn = right = at_risk = n = 0
    for x, found, got in zip(calls, kinds, labels, strict=True):
        if x.split != split:
            continue
        n += 1
        right += got == x.sentiment
        at_risk += health_at_risk(x, found) == x.at_risk
        tp, fp, fn = tp + len(found & x.risks), fp + len(found - x.risks), fn + len(x.risks - found)
    return {
        "P": tp / max(tp + fp, 1), "R": tp / max(tp + fn, 1), "F1": 2 * tp / max(2 * tp + fp + fn, 1),
        "at_risk": at_risk / n, "sentiment": right / n,
    }  # fmt: skip


def figures(calls: list[LabelledCall], kinds: list[set[str]], labels: list[str], split: str) -> str:
    got = split_figures(calls, kinds, labels, split)
    return (
        f"sentiment {got['sentiment']:.0%}, risk kinds P {got['P']:.2f} R {got['R']:.2f} F1 {got['F1']:.2f}"
        f", at risk {got['at_risk']:.1%}"
    )


def kinds_f1(calls: list[LabelledCall], kinds: list[set[str]]) -> float:
    """F1 of the kinds found against the calls' labels, micro over kinds."""
    return f1([(k in found, k in x.risks) for x, found in zip(calls, kinds, strict=True) for k in KINDS])


def accuracy(calls: list[LabelledCall], labels: list[str]) -> float:
    """The share of calls whose sentiment label is theirs."""
    return sum(g == x.sentiment for g, x in zip(labels, calls, strict=True)) / len(calls)


def both(calls: list[LabelledCall], kinds: list[set[str]], labels: list[str]) -> str:
    at_risk = sum(health_at_risk(x, found) == x.at_risk for x, found in zip(calls, kinds, strict=True)) / len(calls)
    return f"sentiment {accuracy(calls, labels):.0%}, risk kinds F1 {kinds_f1(calls, kinds):.2f}, at risk {at_risk:.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="print the estimate and the choice, write nothing; exit 1 unless the shipped weights are what it writes",
    )
    check = parser.parse_args().check
    warnings.filterwarnings("ignore", category=UserWarning)
    calls = labelled_calls()
    tune, train = (sum(x.split == split for x in calls) for split in ("tune", "train"))
    sentences = sum(len(x.sentences.texts) for x in calls)
    print(f"{tune} tune and {train} train calls, {sentences} client sentences; {FOLDS} folds, {INNER} inner")
    current = ([x.rules for x in calls], [x.lexicon for x in calls])
    for split in ("tune", "train"):
        print(f"  {split:<5} rules and lexicon             {figures(calls, *current, split)}")
    print(f"  both parts, rules and lexicon: {both(calls, *current)}")
    best: dict[str, tuple[float, float]] = {}
    for risk_c in RISK_C:
        kinds, _ = out_of_fold(calls, risk_c, SENTIMENT_C[0])
        on_train = figures(calls, kinds, current[1], "train")
        print(f"  risk C={risk_c:<5}  F1 of both parts {kinds_f1(calls, kinds):.2f}  ({on_train} on train)")
        best["risk"] = max(best.get("risk", (-1.0, 0.0)), (kinds_f1(calls, kinds), risk_c))
    for sentiment_c in SENTIMENT_C:
        right = accuracy(calls, out_of_fold_labels(calls, sentiment_c))
        print(f"  sentiment C={sentiment_c:<5}  accuracy of both parts {right:.0%}")
        best["sentiment"] = max(best.get("sentiment", (-1.0, 0.0)), (right, sentiment_c))
    risk_c, sentiment_c = best["risk"][1], best["sentiment"][1]
    kinds, labels = out_of_fold(calls, risk_c, sentiment_c)
    for split in ("tune", "train"):
        print(f"  {split:<5} learned, out of fold          {figures(calls, kinds, labels, split)}")
    print(f"  both parts, learned out of fold: {both(calls, kinds, labels)}")
    print(f"chosen: risk C={risk_c}, sentiment C={sentiment_c}")
    risk_models, kind_scaler, kind_model = fit_kinds(calls, risk_c)
    scaler, sentiment = fit_sentiment(calls, sentiment_c)
    weights = {
        "about": "Fitted by bench/fit_analyst.py on the tune and train calls of tests/data/eval_calls; read by "
        "sophia_mcp/analysis/learned_reading.py.",
        "risk": {
            "kinds": list(KINDS), "c": risk_c,
            "coef": [[round(float(v), 6) for v in m.coef_[0]] for m in risk_models],
            "intercept": [round(float(m.intercept_[0]), 6) for m in risk_models],
            "call": {
                "c": KIND_C, "threshold": KIND_THRESHOLD,
                "mean": [round(float(v), 6) for v in kind_scaler.mean_],
                "scale": [round(float(v), 6) for v in kind_scaler.scale_],
                "coef": [round(float(v), 6) for v in kind_model.coef_[0]],
                "intercept": round(float(kind_model.intercept_[0]), 6),
            },
        },
        "sentiment": {
            "c": sentiment_c, "classes": [str(c) for c in sentiment.classes_],
            "mean": [round(float(v), 6) for v in scaler.mean_], "scale": [round(float(v), 6) for v in scaler.scale_],
            "coef": [[round(float(v), 6) for v in row] for row in sentiment.coef_],
            "intercept": [round(float(v), 6) for v in sentiment.intercept_],
        },
    }  # fmt: skip
    written = json.dumps(weights) + "\n"
    if check:
        same = WEIGHTS.exists() and alike(json.loads(WEIGHTS.read_text()), weights)
        print(f"{WEIGHTS.relative_to(ROOT)} " + ("is what this writes" if same else "differs from what this writes"))
        raise SystemExit(0 if same else 1)
    WEIGHTS.parent.mkdir(exist_ok=True)
    WEIGHTS.write_text(written)
    print(f"written: {WEIGHTS.relative_to(ROOT)}")


def out_of_fold_labels(calls: list[LabelledCall], sentiment_c: float) -> list[str]:
    """Each call's sentiment label from a model fitted on the folds it is not in."""
    fold = folds_of(len(calls))
    labels = [""] * len(calls)
    for f in range(FOLDS):
        test = [i for i in range(len(calls)) if fold[i] == f]
        fit = [x for i, x in enumerate(calls) if fold[i] != f]
        for i, got in zip(test, learned_labels(fit, [calls[i] for i in test], sentiment_c), strict=True):
            labels[i] = got
    return labels


def alike(shipped: Any, fitted: Any) -> bool:
    """The same weights: the same shape and names, every number within 1e-5 of the refit (the solver's last digits
    differ from one machine's floating point to another's: a refit on a new machine moved some in the 6th decimal)."""
    if isinstance(shipped, dict) and isinstance(fitted, dict):
        return shipped.keys() == fitted.keys() and all(alike(shipped[k], fitted[k]) for k in shipped)
    if isinstance(shipped, list) and isinstance(fitted, list):
        return len(shipped) == len(fitted) and all(alike(a, b) for a, b in zip(shipped, fitted, strict=True))
    if isinstance(shipped, int | float) and isinstance(fitted, int | float) and not isinstance(shipped, bool):
        return abs(shipped - fitted) <= 1e-5
    return bool(shipped == fitted)


if __name__ == "__main__":
    main()
