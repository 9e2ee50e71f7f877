"""The learned reading (analysis/learned_reading.py) through the local analyst: a risk said in words no rule has is
raised with the client's own sentence as its quote, our side saying it raises nothing, and without the embedding
model the lexicon and rules still read the call and say why; each sentence is scored by VADER once a call."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from sophia_mcp.adapters.lexicon_analyst import LocalAnalyst
from sophia_mcp.adapters.local_embed import LocalEmbedder
from sophia_mcp.domain.calls import Call, Monologue, Party, Sentence, Transcript
from sophia_mcp.domain.results import CallInsights
from sophia_mcp.domain.weights import DEFAULT_COMPETITORS
from sophia_mcp.errors import ConfigurationError

PARTIES = [
    Party(id="1", name="Ana Ruiz", affiliation="Internal", speaker_id="s-ours"),
    Party(id="2", name="Bo Lind", affiliation="External", speaker_id="s-client"),
]
# Billing trouble in words none of the implementation rules has ("charged on the wrong date", "undoing it").
TROUBLE = "Residents keep getting charged on the wrong date and my staff spend hours undoing it."


def read(ours: list[str], theirs: list[str], learned: bool = True, risk_meaning: bool = False) -> CallInsights:
    monologues = [
        Monologue(speaker_id="s-ours", sentences=[Sentence(start_ms=i * 1000, end_ms=i * 1000 + 900, text=t)
                                                  for i, t in enumerate(ours)]),
        Monologue(speaker_id="s-client", sentences=[Sentence(start_ms=60_000 + i * 1000, end_ms=60_900 + i * 1000,
                                                             text=t) for i, t in enumerate(theirs)]),
    ]  # fmt: skip
    call = Call(id="9", title="Check-in", started=datetime(2026, 9, 1, tzinfo=UTC), duration_s=120, parties=PARTIES)
    analyst = LocalAnalyst(DEFAULT_COMPETITORS, learned=learned, risk_meaning=risk_meaning)
    return anyio.run(analyst.read_call, call, Transcript(call_id="9", monologues=monologues))


def test_a_risk_in_words_no_rule_has_is_raised_with_the_clients_quote() -> None:
    assert read(["How is the month going?"], [TROUBLE], learned=False).risk_factors == []
    [factor] = read(["How is the month going?"], [TROUBLE]).risk_factors
    assert (factor.kind, factor.text, factor.speaker_name, factor.affiliation, factor.at_ms) == (
        "implementation", TROUBLE, "Bo Lind", "External", 60_000
    )  # fmt: skip
    # Our side saying it is no risk to the account.
    assert read([TROUBLE], ["Thanks, I will look at it."]).risk_factors == []


def test_without_the_embedding_model_the_lexicon_and_rules_read_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: LocalEmbedder) -> None:
        raise ConfigurationError("The local embedding model could not be loaded: no weights")

    monkeypatch.setattr(LocalEmbedder, "_load", broken)
    said = ["Our budget was cut for next year.", TROUBLE]
    insights = read(["How is the month going?"], said)
    rules = read(["How is the month going?"], said, learned=False)
    assert insights.fallback_reason == "learned reading: The local embedding model could not be loaded: no weights"
    assert insights.model_copy(update={"fallback_reason": None}) == rules
    assert [r.kind for r in insights.risk_factors] == ["budget"]


@pytest.mark.parametrize(
    ("learned", "risk_meaning"), [(True, False), (False, False), (False, True)], ids=["learned", "rules", "meaning"]
)
def test_each_sentence_is_scored_by_vader_once_a_call(
    monkeypatch: pytest.MonkeyPatch, learned: bool, risk_meaning: bool
) -> None:
    scored: list[str] = []
    polarity_scores = SentimentIntensityAnalyzer.polarity_scores

    def counted(self: SentimentIntensityAnalyzer, text: str) -> dict[str, float]:
        scored.append(text)
        return polarity_scores(self, text)

    monkeypatch.setattr(SentimentIntensityAnalyzer, "polarity_scores", counted)
    # No courtesy words: with them, the sentence without them is scored as well.
    ours = ["How is the month going?", "The new reports went out on Monday."]
    theirs = ["The reports look great!", "Our budget was cut for next year.", TROUBLE]
    insights = read(ours, theirs, learned=learned, risk_meaning=risk_meaning)
    assert insights.fallback_reason is None
    assert sorted(scored) == sorted(ours + theirs)
