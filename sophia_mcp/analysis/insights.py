"""The local analyst's reading of a call, and the assembly of a whole analysis from any analyst's reading."""

from __future__ import annotations

from collections.abc import Sequence

from sophia_mcp.analysis.competitors import find_competitor_mentions
from sophia_mcp.analysis.conversation import talk_stats
from sophia_mcp.analysis.risk import SentenceMeaning, find_risk_factors
from sophia_mcp.analysis.sentiment import summarize_sentiment
from sophia_mcp.domain.calls import Call, Transcript
from sophia_mcp.domain.results import CallAnalysis, CallInsights
from sophia_mcp.domain.weights import Competitor


def local_insights(
    call: Call, transcript: Transcript, competitors: Sequence[Competitor], meaning: SentenceMeaning | None = None
) -> CallInsights:
    """Sentiment, competitor mentions and risk factors by the lexicon and phrase rules (and, with `meaning`, by
    closeness to written examples of each risk), with a short summary."""
    mentions = find_competitor_mentions(transcript, call.parties, competitors)
    risks = find_risk_factors(transcript, call.parties, competitors, meaning)
    sentiment = summarize_sentiment(
        transcript, call.parties, {(r.speaker_id, r.at_ms) for r in risks},
        {(r.speaker_id, r.at_ms) for r in risks if r.kind == "churn_intent"},
    )  # fmt: skip
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
