"""The local analyst's reading of a call, and the assembly of a whole analysis from any analyst's reading."""

from __future__ import annotations

from collections.abc import Sequence

from sophia_mcp.analysis.competitors import find_competitor_mentions
from sophia_mcp.analysis.conversation import talk_stats
from sophia_mcp.analysis.learned_reading import (
    Embed,
    LearnedWeights,
    learned_risk_factors,
    learned_sentiment,
    read_client_sentences,
)
from sophia_mcp.analysis.risk import SentenceMeaning, client_sentences, risk_factors
from sophia_mcp.analysis.sentiment import Tones, summarize_sentiment, transcript_tones
from sophia_mcp.domain.calls import Call, Transcript
from sophia_mcp.domain.results import CallAnalysis, CallInsights, CompetitorMention, RiskFactor, SentimentSummary
from sophia_mcp.domain.weights import Competitor


def local_insights(
    call: Call, transcript: Transcript, competitors: Sequence[Competitor], meaning: SentenceMeaning | None = None
) -> CallInsights:
    """Sentiment, competitor mentions and risk factors by the lexicon and phrase rules (and, with `meaning`, by
    closeness to written examples of each risk), with a short summary."""
    mentions = find_competitor_mentions(transcript, call.parties, competitors)
    tones = transcript_tones(transcript)
    risks = risk_factors(client_sentences(transcript, call.parties, competitors, tones), call.parties, meaning)
    return _insights(call, mentions, risks, _lexicon_sentiment(call, transcript, risks, tones))


def learned_insights(
    call: Call,
    transcript: Transcript,
    competitors: Sequence[Competitor],
    embed: Embed,
    meaning: SentenceMeaning,
    weights: LearnedWeights,
) -> CallInsights:
    """The local reading with what the fitted weights add (analysis/learned_reading.py): the risks the client's
    sentences score for beyond the rules', and the sentiment model's label."""
    mentions = find_competitor_mentions(transcript, call.parties, competitors)
    tones = transcript_tones(transcript)  # each sentence scored once, for the reading, the rules and the summary
    sentences = read_client_sentences(transcript, call.parties, competitors, embed, meaning, tones)
    risks = learned_risk_factors(sentences, call.parties, weights)
    sentiment = learned_sentiment(_lexicon_sentiment(call, transcript, risks, tones), sentences, weights)
    return _insights(call, mentions, risks, sentiment)


def _lexicon_sentiment(
    call: Call, transcript: Transcript, risks: Sequence[RiskFactor], tones: Tones
) -> SentimentSummary:
    return summarize_sentiment(
        transcript, call.parties, {(r.speaker_id, r.at_ms) for r in risks},
        {(r.speaker_id, r.at_ms) for r in risks if r.kind == "churn_intent"}, tones,
    )  # fmt: skip


def _insights(
    call: Call, mentions: list[CompetitorMention], risks: list[RiskFactor], sentiment: SentimentSummary
) -> CallInsights:
    who = call.client_name or "The client"
    summary = f"{who} sounded {sentiment.label}" + (" (mixed: good news and a complaint)" if sentiment.mixed else "")
    kinds = sorted({r.kind.replace("_", " ") for r in risks})
    summary += f" and raised {', '.join(kinds)}." if kinds else " and raised no risks."
    named = sorted({m.competitor for m in mentions})
    if named:
        summary += f" Competitors named: {', '.join(named)}."
    return CallInsights(sentiment=sentiment, competitor_mentions=mentions, risk_factors=risks, summary=summary)


def build_analysis(call: Call, transcript: Transcript, insights: CallInsights, analyst: str) -> CallAnalysis:
    """A whole analysis: the analyst's insights plus figures always computed from the transcript's timings."""
    return CallAnalysis(
        **insights.model_dump(),
        call_id=call.id,
        client_id=call.client_id,
        started=call.started,
        talk=talk_stats(transcript, call.parties),
        analyst=analyst,
    )
