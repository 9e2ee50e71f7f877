"""Risks said in other words: a client's sentence compared by meaning with written examples of each risk kind.

Each example is a short phrasing of one risk ("the budget was cut", "a cheaper offer"), written for this module,
not taken from the labelled calls. A sentence is cut into windows of `WINDOW_WORDS` words, so that the clause that
carries the risk is compared rather than the whole sentence, and each window is embedded with the local model
(static embeddings: a window is close to a phrasing when their words are). A sentence raises the kind closest to
it when its closest window is within `THRESHOLDS[kind]` (cosine) of one of that kind's examples and the sentence
reads at least as negative as `TONE_AT[kind]`: the same words in good news ("the portal keeps us running") are no
risk. The thresholds were chosen on the "tune" part of tests/data/eval_calls only (bench/eval_tuning.py chooses
and prints them, and estimates by folds of that part a precision near 0.7 on calls it was not chosen on); the
held-out parts bear that out, so the lexicon and rules use it only when `SOPHIA_ANALYST__RISK_MEANING` asks. The
learned reading (analysis/learned_reading.py) takes the similarities as features of each sentence instead.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from itertools import accumulate, pairwise
from typing import TYPE_CHECKING

from sophia_mcp.domain.results import RiskKind

if TYPE_CHECKING:  # the vectors' methods do the arithmetic: a server that analyses no call imports no numpy
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]

WINDOW_WORDS = 5
WORD = re.compile(r"[\w'-]+")

EXAMPLES: dict[RiskKind, tuple[str, ...]] = {
    "pricing": (
        "the price is too high", "costs more than it is worth", "hard to justify the fee", "a cheaper offer",
        "a lower rate elsewhere", "bring the price down", "the quote went up", "paying too much", "need a discount",
        "the increase is too steep", "match their price", "the fees are not worth it", "too expensive for us",
    ),
    "churn_intent": (
        "we will not renew", "cancel the contract", "leave for another provider", "end our agreement",
        "stop using the platform", "move off your system", "our last year with you", "walk away from the account",
        "give notice to terminate", "drop the service", "not stay a customer",
    ),
    "budget": (
        "the budget was cut", "spending is frozen", "less money for software", "reduce operating expenses",
        "no room in the budget", "trim our spend", "lost our funding", "find savings", "money is tight",
        "costs must come down across the company",
    ),
    "implementation": (
        "the system keeps failing", "payments did not post", "the integration broke", "the rollout is behind",
        "fix it by hand", "the portal was down", "charged the wrong amount", "the import lost data",
        "support has not answered", "the reports do not match", "residents could not pay", "it crashed again",
        "the sync stopped working", "a billing malfunction",
    ),
    "competitor_evaluation": (
        "looking at other vendors", "proposals from other companies", "a competitor gave us a demo",
        "comparing a few platforms", "another provider is courting us", "put the contract out to bid",
        "see what else is on the market", "a trial of a different tool", "two other quotes",
    ),
}  # fmt: skip

# Chosen on the tune calls (bench/eval_tuning.py): per kind, the cosine and the business tone a sentence must be at
# or under that give this method alone its best F0.5 (precision counted twice recall), the highest among equals.
THRESHOLDS: dict[RiskKind, float] = {
    "pricing": 0.625,
    "churn_intent": 0.7,
    "budget": 0.85,
    "implementation": 0.4,
    "competitor_evaluation": 0.625,
}
TONE_AT: dict[RiskKind, float | None] = {  # None: any tone
    "pricing": -0.05,
    "churn_intent": None,
    "budget": None,
    "implementation": -0.05,
    "competitor_evaluation": 0.3,
}


def phrase_windows(text: str) -> list[str]:
    """The sentence's runs of `WINDOW_WORDS` consecutive words (the whole sentence when it is shorter)."""
    words = WORD.findall(text)
    if len(words) <= WINDOW_WORDS:
        return [" ".join(words)]
    return [" ".join(words[i : i + WINDOW_WORDS]) for i in range(len(words) - WINDOW_WORDS + 1)]


class RiskMeaning:
    """Per sentence and kind, the cosine of its closest window to the kind's closest example.

    `embed` turns texts into unit-length rows (the local embedding model's `embed_now`); the examples are embedded
    on the first call, so building one costs nothing until a call is analysed."""

    def __init__(self, embed: Callable[[list[str]], Vectors]) -> None:
        self._embed = embed
        self._examples: dict[RiskKind, Vectors] | None = None
        self._lock = threading.Lock()

    def _example_vectors(self) -> dict[RiskKind, Vectors]:
        with self._lock:
            if self._examples is None:
                self._examples = {kind: self._embed(list(texts)) for kind, texts in EXAMPLES.items()}
            return self._examples

    def __call__(self, sentences: Sequence[str]) -> list[dict[RiskKind, float]]:
        if not sentences:
            return []
        examples = self._example_vectors()
        windows = [phrase_windows(text) for text in sentences]
        vectors = self._embed([w for ws in windows for w in ws])
        bounds = list(accumulate((len(ws) for ws in windows), initial=0))
        best = {kind: (vectors @ rows.T).max(axis=1) for kind, rows in examples.items()}
        return [
            {kind: float(scores[start:end].max()) for kind, scores in best.items()} for start, end in pairwise(bounds)
        ]


def raised_by_meaning(similarity: dict[RiskKind, float], tone: float) -> list[RiskKind]:
    """The kind a sentence raises by meaning, if any, given its similarities and its business tone: only its closest
    kind counts (a late fee is closer to a billing fault than to pricing, and is not both)."""
    if not similarity:
        return []
    kind = max(similarity, key=lambda k: similarity[k])
    at_most = TONE_AT[kind]
    return [kind] if similarity[kind] >= THRESHOLDS[kind] and (at_most is None or tone <= at_most) else []
