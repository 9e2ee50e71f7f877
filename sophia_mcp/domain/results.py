"""What call analysis produces: the records every analyzer (local or model-backed) must fill."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from sophia_mcp.domain.model import Model

RiskKind = Literal["pricing", "churn_intent", "budget", "implementation", "competitor_evaluation"]
Side = Literal["Internal", "External", "Unknown"]


class SpeakerSentiment(Model):
    speaker_id: str
    name: str | None = None
    affiliation: Side = "Unknown"
    sentences: int = Field(ge=0)
    compound: float = Field(ge=-1, le=1, description="Mean VADER compound score of the speaker's sentences.")


class SentimentSummary(Model):
    overall: float = Field(ge=-1, le=1, description="Mean compound score over every sentence.")
    external: float | None = Field(
        default=None, ge=-1, le=1, description="Mean compound score of the client side; None if they never spoke."
    )
    score: float = Field(
        default=0.0,
        ge=-1,
        le=1,
        description="The call's calibrated sentiment, which sets the label: the client side "
        "weighted over ours, courtesy discounted, complaints and risks weighing more.",
    )
    mixed: bool = Field(default=False, description="The client brought both good news and a complaint.")
    label: Literal["positive", "neutral", "negative"]
    speakers: list[SpeakerSentiment]


class TalkStats(Model):
    internal_ms: int = Field(ge=0)
    external_ms: int = Field(ge=0)
    unknown_ms: int = Field(ge=0)
    internal_ratio: float | None = Field(
        default=None, ge=0, le=1, description="Internal share of internal+external talk time; None if nobody spoke."
    )
    longest_monologue_ms: int = Field(ge=0)
    longest_monologue_speaker_id: str | None = None
    questions_internal: int = Field(ge=0)
    questions_external: int = Field(ge=0)


class Quote(Model):
    text: str
    speaker_id: str
    speaker_name: str | None = None
    affiliation: Side = "Unknown"
    at_ms: int = Field(ge=0, description="Start of the sentence, in milliseconds from the start of the call.")


class CompetitorMention(Quote):
    competitor: str
    matched: str = Field(description="The name or alias as it appeared in the sentence.")


class RiskFactor(Quote):
    kind: RiskKind


class CallInsights(Model):
    """The judgement part of an analysis: what an analyzer (lexicon or model) read out of the words."""

    sentiment: SentimentSummary
    competitor_mentions: list[CompetitorMention]
    risk_factors: list[RiskFactor]
    summary: str = ""
    fallback_reason: str | None = Field(
        default=None, description="Why the configured analyst's reading was not used, when the local one stood in."
    )
    # Who stood in when the configured analyst's reading was not used: CallAnalysis.analyst says it on the wire.
    read_by: SkipJsonSchema[str | None] = Field(default=None, exclude=True)


class CallAnalysis(CallInsights):
    """A whole analysis of one call: the insights plus figures computed from transcript timings."""

    call_id: str
    client_id: str | None = None
    started: datetime
    talk: TalkStats
    analyst: str = Field(description="Which analyzer produced the insights (local, openai, sampling).")


class HealthComponent(Model):
    name: Literal["sentiment", "risk", "engagement", "competition"]
    score: float = Field(ge=0, le=100)
    weight: float = Field(ge=0, le=1, description="Normalised weight; the weights of a score add up to 1.")
    detail: str


class HealthScore(Model):
    score: float = Field(ge=0, le=100)
    components: list[HealthComponent]
    explanation: str
