"""A call read by weights fitted on labelled calls: risk kinds per client sentence, and the call's sentiment.

The phrase rules and the lexicon stay (analysis/risk.py, analysis/sentiment.py); what was learned adds to them:

- Risks: each client sentence is scored per risk kind by a logistic model over its embedding (the local model),
  its closeness in meaning to each kind's written examples (analysis/risk_meaning.py), the phrase rules' kinds, its
  tone, the mean embedding of the client sentences either side of it (a risk said across two sentences) and its
  form (a question, a hedge). The calls are labelled per call, so a second model reads the call: per kind, a
  logistic model (one for all kinds, with each kind's own intercept and slopes for its best score and the rules') over
  what the sentence scores add up to (the best and second best score, how many sentences score over a half and over
  0.8, the rules' hit, the closest sentence's closeness, the best score of any other kind, the client's tone, its
  share of the sentences, how many it said). A kind the rules did not raise is raised when that model gives it at
  least the fitted threshold, and the call's best sentence for it (one the client said) is the risk's quote. One
  sentence over a threshold no longer raises a kind alone: the call model weighs it against the rest of the call.
- Sentiment: a multinomial logistic model over the call's lexicon figures (the calibrated score, the share of
  positive and negative client sentences, the rules' risks, per kind the closest sentence's closeness, the share of
  questions and hedges, ...) and the mean embedding of the client's sentences.
  The label is the likeliest class; the score is P(positive) - P(negative).

The weights are fitted on the "tune" and "train" calls of tests/data/eval_calls by bench/fit_analyst.py (which
chooses the thresholds and regularisation by folds of those calls and prints what that estimates), and shipped as
sophia_mcp/data/learned_analyst.json. This module is pure: the caller passes the weights and the model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from sophia_mcp.analysis.risk import PATTERNS, ClientSentence, SentenceMeaning, client_sentences, risk_factors
from sophia_mcp.analysis.sentiment import RISK_TONE, Tones, call_score, is_mixed, transcript_tones
from sophia_mcp.analysis.speakers import name_of, side_of, speaker_index
from sophia_mcp.domain.calls import Party, Transcript
from sophia_mcp.domain.results import RiskFactor, RiskKind, SentimentSummary
from sophia_mcp.domain.weights import Competitor

if TYPE_CHECKING:  # numpy is imported by whoever builds the weights: a server that reads no call loads none of it
    import numpy as np
    import numpy.typing as npt

    Matrix = npt.NDArray[np.float64]

KINDS: tuple[RiskKind, ...] = tuple(PATTERNS)
LEXICON_FEATURES = 27  # the call features before the mean embedding (`call_features`)
Label = Literal["positive", "neutral", "negative"]
Embed = Callable[[list[str]], Any]  # texts -> unit-length rows (the local embedding model's `embed_now`)

# A sentence's form: a question asks rather than tells ("is there a fee for that?"), a hedge says what may happen.
QUESTION_START = re.compile(
    r"^(?:what|how|when|where|why|who|which|is|are|can|could|do|does|did|will|would|should)\b", re.IGNORECASE
)
HEDGE = re.compile(
    r"\b(?:might|may|maybe|perhaps|could|would|if|unless|whether|considering|thinking about|not sure|wonder)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class LearnedWeights:
    """What bench/fit_analyst.py fitted: per risk kind a sentence model, the call model over their scores and its
    threshold, and the sentiment model (its features' standardisation, one row of weights per class)."""

    risk_coef: Matrix  # kinds x sentence features
    risk_intercept: Matrix  # kinds
    kind_mean: Matrix  # the call model's features (`kind_features`), standardised
    kind_scale: Matrix
    kind_coef: Matrix
    kind_intercept: float
    kind_threshold: float
    sentiment_mean: Matrix  # call features
    sentiment_scale: Matrix
    sentiment_coef: Matrix  # classes x call features
    sentiment_intercept: Matrix  # classes
    classes: tuple[Label, ...]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LearnedWeights:
        import numpy as np

        risk = data["risk"]
        if tuple(risk["kinds"]) != KINDS:
            raise ValueError(f"the weights are for the risk kinds {risk['kinds']}, not {list(KINDS)}")
        sentiment = data["sentiment"]
        return cls(
            risk_coef=np.asarray(risk["coef"], dtype=np.float64),
            risk_intercept=np.asarray(risk["intercept"], dtype=np.float64),
            kind_mean=np.asarray(risk["call"]["mean"], dtype=np.float64),
            kind_scale=np.asarray(risk["call"]["scale"], dtype=np.float64),
            kind_coef=np.asarray(risk["call"]["coef"], dtype=np.float64),
            kind_intercept=float(risk["call"]["intercept"]),
            kind_threshold=float(risk["call"]["threshold"]),
            sentiment_mean=np.asarray(sentiment["mean"], dtype=np.float64),
            sentiment_scale=np.asarray(sentiment["scale"], dtype=np.float64),
            sentiment_coef=np.asarray(sentiment["coef"], dtype=np.float64),
            sentiment_intercept=np.asarray(sentiment["intercept"], dtype=np.float64),
            classes=tuple(sentiment["classes"]),
        )


@dataclass(frozen=True)
class ClientSentences:
    """A call's client-side sentences, read once: what both models' features are made of."""

    client: list[ClientSentence]
    features: Matrix  # sentences x sentence features
    ours: list[float]  # our side's business tones
    form: Matrix  # sentences x 3: each one's `sentence_form`, which the risk and the sentiment models both read

    @property
    def texts(self) -> list[str]:
        return [s.text for s in self.client]

    @property
    def embeddings(self) -> Matrix:
        return self.features[:, : self.features.shape[1] - 2 * len(KINDS) - 2]


def read_client_sentences(
    transcript: Transcript,
    parties: Sequence[Party],
    competitors: Sequence[Competitor],
    embed: Embed,
    meaning: SentenceMeaning,
    tones: Tones | None = None,
) -> ClientSentences:
    """Per client sentence: its embedding, its closeness to each kind's examples, the rules' kinds (0 or 1 each),
    its business tone and its raw VADER score, in that order, and beside them its form (`sentence_form`). `tones`,
    the transcript's tones if the caller has them."""
    import numpy as np

    tones = transcript_tones(transcript) if tones is None else tones
    index = speaker_index(parties)
    ours = [
        tone.business
        for monologue, monologue_tones in zip(transcript.monologues, tones, strict=True)
        if side_of(monologue.speaker_id, index) == "Internal"
        for tone in monologue_tones
    ]
    client = client_sentences(transcript, parties, competitors, tones)
    if not client:
        return ClientSentences([], np.zeros((0, 0)), ours, np.zeros((0, 3)))
    texts = [s.text for s in client]
    vectors = np.asarray(embed(texts), dtype=np.float64)
    closeness = np.array([[s[k] for k in KINDS] for s in meaning(texts)], dtype=np.float64)
    rules = np.array([[k in s.kinds for k in KINDS] for s in client], dtype=np.float64)
    scores = np.array([[s.tone.business, s.tone.raw] for s in client], dtype=np.float64)
    form = np.array([sentence_form(text) for text in texts], dtype=np.float64)
    return ClientSentences(client, np.hstack([vectors, closeness, rules, scores]), ours, form)


def sentence_form(text: str) -> tuple[float, float, float]:
    """Whether the sentence ends as a question, starts as one, and hedges (1.0 or 0.0 each)."""
    return float(text.rstrip().endswith("?")), float(bool(QUESTION_START.match(text))), float(bool(HEDGE.search(text)))


def risk_features(sentences: ClientSentences) -> Matrix:
    """The risk models' features per client sentence: its own (`read_client_sentences`), the mean of the embeddings
    of the client sentences before and after it (zeros where there is none) and its form (`sentence_form`)."""
    import numpy as np

    embeddings = sentences.embeddings
    neighbours = np.zeros_like(embeddings)
    neighbours[1:] += embeddings[:-1]
    neighbours[:-1] += embeddings[1:]
    return np.hstack([sentences.features, neighbours / 2, sentences.form])


def sentence_risk_scores(sentences: ClientSentences, weights: LearnedWeights) -> Matrix:
    """Per client sentence and kind, the model's probability that the sentence raises that kind."""
    import numpy as np

    logits = risk_features(sentences) @ weights.risk_coef.T + weights.risk_intercept
    return cast("Matrix", 1 / (1 + np.exp(-logits)))


def call_features(sentences: ClientSentences, dimension: int) -> Matrix:
    """The call's features for the sentiment model: its lexicon figures, then the client's mean embedding."""
    import numpy as np

    if not sentences.client:
        empty = np.zeros(1)
        business, raw, rules, closeness = empty, empty, np.zeros((1, len(KINDS))), np.zeros((1, len(KINDS)))
        form, mean_vector = np.zeros((1, 3)), np.zeros(dimension)
    else:
        n = len(KINDS)
        f = sentences.features
        business, raw = f[:, -2], f[:, -1]
        rules, closeness = f[:, -2 - n : -2], f[:, -2 - 2 * n : -2 - n]
        form = sentences.form
        mean_vector = sentences.embeddings.mean(axis=0)
    ours = np.array(sentences.ours) if sentences.ours else np.zeros(1)
    risky = rules.any(axis=1)
    floored = np.where(risky, np.minimum(business, RISK_TONE), business)
    lexicon = [
        call_score(list(floored), list(ours)), float(is_mixed(list(business))), business.mean(), business.min(),
        business.max(), (business > 0.3).mean(), (business < -0.05).mean(), raw.mean(), raw.min(), raw.max(),
        ours.mean(), float(risky.sum()) if sentences.client else 0.0, float(len(business)), closeness.max(),
    ]  # fmt: skip
    per_kind = [closeness.max(axis=0), rules.max(axis=0), form.mean(axis=0)]
    return np.concatenate([np.array(lexicon, dtype=np.float64), *per_kind, mean_vector])


def sentiment_probabilities(features: Matrix, weights: LearnedWeights) -> dict[Label, float]:
    """The sentiment model's probability of each label for a call's features."""
    import numpy as np

    logits = ((features - weights.sentiment_mean) / weights.sentiment_scale) @ weights.sentiment_coef.T
    logits = logits + weights.sentiment_intercept
    exp = np.exp(logits - logits.max())
    probabilities = exp / exp.sum()
    return {label: float(p) for label, p in zip(weights.classes, probabilities, strict=True)}


def kind_features(sentences: ClientSentences, scores: Matrix) -> Matrix:
    """Per risk kind, the call model's features from its sentences' `scores` (sentences x kinds): the logit of the
    best score and the second best score (0 when the client said one sentence: as a probability, not a logit, so a
    call that short is not read as one that contradicts its best sentence), how many sentences score at least 0.5 and
    0.8, whether the rules raised it, the closest sentence's closeness to its examples, the best score of any other
    kind, the client's mean raw tone, its share of the call's sentences and log(1 + its sentences); then the kind's
    indicator, and the indicator times the best logit and times the rules' hit (each kind's own intercept and slopes
    for them)."""
    import numpy as np

    n = len(KINDS)
    f = sentences.features
    said = len(sentences.client)
    best = scores.max(axis=0) if said else np.zeros(n)
    ranked = -np.sort(-scores, axis=0) if said else np.zeros((0, n))
    second = ranked[1] if said > 1 else np.zeros(n)
    rules = f[:, -2 - n : -2].max(axis=0) if said else np.zeros(n)
    closeness = f[:, -2 - 2 * n : -2 - n].max(axis=0) if said else np.zeros(n)
    tone = f[:, -1].mean() if said else 0.0
    share = said / max(1, said + len(sentences.ours))
    others = np.array([np.delete(best, k).max() for k in range(n)])
    figures = np.column_stack([
        logit(best), second, (scores >= 0.5).sum(axis=0), (scores >= 0.8).sum(axis=0), rules, closeness,
        others, np.full(n, tone), np.full(n, share), np.full(n, np.log1p(said)),
    ])  # fmt: skip
    indicator = np.eye(n)
    return np.hstack([figures, indicator, indicator * figures[:, :1], indicator * figures[:, 4:5]])


def logit(p: Matrix) -> Matrix:
    """log(p / (1 - p)), with p kept off 0 and 1 (a kind no sentence scores for reads as very unlikely, not -inf)."""
    import numpy as np

    clipped = np.clip(p, 1e-6, 1 - 1e-6)
    return cast("Matrix", np.log(clipped / (1 - clipped)))


def kind_probabilities(sentences: ClientSentences, scores: Matrix, weights: LearnedWeights) -> Matrix:
    """Per risk kind, the call model's probability that the client raised it on this call."""
    import numpy as np

    features = (kind_features(sentences, scores) - weights.kind_mean) / weights.kind_scale
    return cast("Matrix", 1 / (1 + np.exp(-(features @ weights.kind_coef + weights.kind_intercept))))


def learned_risk_factors(
    sentences: ClientSentences, parties: Sequence[Party], weights: LearnedWeights
) -> list[RiskFactor]:
    """The rules' risk factors, and for each kind they did not raise that the call model gives at least its
    threshold, the call's best client sentence for it as the kind's factor."""
    factors = risk_factors(sentences.client, parties)
    if not sentences.client:
        return factors
    index = speaker_index(parties)
    raised = {f.kind for f in factors}
    scores = sentence_risk_scores(sentences, weights)
    probabilities = kind_probabilities(sentences, scores, weights)
    for k, kind in enumerate(KINDS):
        if kind not in raised and probabilities[k] >= weights.kind_threshold:
            said = sentences.client[int(scores[:, k].argmax())]
            factors.append(
                RiskFactor(
                    kind=kind, text=said.text, speaker_id=said.speaker_id, speaker_name=name_of(said.speaker_id, index),
                    affiliation=side_of(said.speaker_id, index), at_ms=said.start_ms,
                )
            )  # fmt: skip
    return factors


def learned_sentiment(
    lexicon: SentimentSummary, sentences: ClientSentences, weights: LearnedWeights
) -> SentimentSummary:
    """The lexicon's summary (per speaker, the raw means, mixed) with the model's label and score."""
    dimension = weights.sentiment_mean.size - LEXICON_FEATURES
    probabilities = sentiment_probabilities(call_features(sentences, dimension), weights)
    label = max(probabilities, key=lambda c: probabilities[c])
    score = probabilities.get("positive", 0.0) - probabilities.get("negative", 0.0)
    return lexicon.model_copy(update={"label": label, "score": round(max(-1.0, min(1.0, score)), 4)})
