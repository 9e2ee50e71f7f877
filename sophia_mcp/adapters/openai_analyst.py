"""The `Analyst` port on an OpenAI-compatible chat model with structured outputs.

The model reads the transcript and answers in a JSON schema made from a pydantic model; `base_url` makes the same
code serve OpenAI, Azure OpenAI or a local OpenAI-compatible server. Long transcripts are read in chunks that fit
`max_input_chars`. Whatever the model answers is checked against the transcript (speakers, competitors, kinds);
an answer that cannot be used (an error, a refusal, a cut-off or invalid answer) falls back to the local analyst,
with the reason kept in the analysis.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from statistics import fmean
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ValidationError

from sophia_mcp.analysis.results import (
    CallInsights,
    CompetitorMention,
    RiskFactor,
    RiskKind,
    SentimentSummary,
    SpeakerSentiment,
)
from sophia_mcp.analysis.sentiment import label
from sophia_mcp.analysis.speakers import name_of, side_of, speaker_index
from sophia_mcp.errors import ConfigurationError
from sophia_mcp.ports.analyst import Analyst
from sophia_mcp.ports.calls import Call, Party, Sentence, Transcript
from sophia_mcp.settings import Competitor, OpenAISettings

if TYPE_CHECKING:
    from openai import AsyncOpenAI

log = logging.getLogger(__name__)

SYSTEM_PROMPT = """You analyse recorded sales and customer-success calls of Pay Ready, a software vendor to
property-management companies. Internal speakers are Pay Ready staff; External speakers are the client. Read the
transcript lines (each: line number, start time in ms, speaker id, name and side, text) and answer in the schema:
- speakers: each speaker's overall sentiment from -1 (hostile) to 1 (delighted);
- competitor_mentions: every line naming one of these competitors: {competitors};
- risk_factors: client-side lines that signal pricing pressure, churn intent, budget cuts, implementation trouble
  or evaluation of competitors; ignore what Pay Ready staff say, and negated statements ("no plans to cancel");
- summary: two sentences on how the client feels and why.
Quote the line number of each mention and risk. Do not invent lines."""


class SpeakerReading(BaseModel):
    speaker_id: str
    sentiment: float


class LineReference(BaseModel):
    line: int


class MentionReading(LineReference):
    competitor: str


class RiskReading(LineReference):
    kind: Literal["pricing", "churn_intent", "budget", "implementation", "competitor_evaluation"]


class ModelReading(BaseModel):
    """The answer asked of the model (strict-schema friendly: no bounds, every field required)."""

    speakers: list[SpeakerReading]
    competitor_mentions: list[MentionReading]
    risk_factors: list[RiskReading]
    summary: str


class UnusableAnswer(Exception):
    """The model answered, but not with something that can be used."""


def _lines(transcript: Transcript) -> list[tuple[str, Sentence]]:
    return [(m.speaker_id, s) for m in transcript.monologues for s in m.sentences]


class OpenAIAnalyst:
    name = "openai"

    def __init__(self, settings: OpenAISettings, competitors: Sequence[Competitor], fallback: Analyst) -> None:
        if settings.api_key is None:
            raise ConfigurationError("The openai analyst needs SOPHIA_OPENAI__API_KEY (and SOPHIA_OPENAI__BASE_URL).")
        # Imported here: the openai package takes most of a second to import, paid only when it is configured.
        from openai import AsyncOpenAI

        self.settings = settings
        self.competitors = list(competitors)
        self.fallback = fallback
        self.client: AsyncOpenAI = AsyncOpenAI(
            api_key=settings.api_key.get_secret_value(),
            base_url=settings.base_url,
            timeout=settings.timeout_s,
            max_retries=settings.max_retries,  # the client's own retry of 408/429/5xx; no second loop on top
        )
        self._secret = settings.api_key.get_secret_value()

    async def aclose(self) -> None:
        await self.client.close()

    async def read_call(self, call: Call, transcript: Transcript) -> CallInsights:
        try:
            return await self._read(call, transcript)
        except Exception as exc:  # any failure of the model path leaves the call to the local analyst
            reason = self._reason(exc)
            log.warning("OpenAI analysis of call %s unusable, using the local analyst: %s", call.id, reason)
            insights = await self.fallback.read_call(call, transcript)
            return insights.model_copy(update={"fallback_reason": f"openai: {reason}"})

    def _reason(self, exc: Exception) -> str:
        import openai

        if isinstance(exc, UnusableAnswer):
            text = str(exc)
        elif isinstance(exc, openai.LengthFinishReasonError):
            text = "the answer was cut off (finish_reason length)"
        elif isinstance(exc, openai.ContentFilterFinishReasonError):
            text = "the answer was withheld by the content filter"
        elif isinstance(exc, openai.APIStatusError):
            text = f"HTTP {exc.status_code} {type(exc).__name__}"
        elif isinstance(exc, openai.APIError):
            text = type(exc).__name__
        elif isinstance(exc, ValidationError):
            text = f"the answer did not match the schema ({exc.error_count()} errors)"
        else:
            text = f"{type(exc).__name__}"
        return text.replace(self._secret, "***")

    def _chunks(self, call: Call, transcript: Transcript) -> list[list[tuple[int, str, Sentence]]]:
        index = speaker_index(call.parties)
        chunks: list[list[tuple[int, str, Sentence]]] = [[]]
        size = 0
        for number, (speaker, sentence) in enumerate(_lines(transcript)):
            line = self._render(number, speaker, sentence, index)
            if chunks[-1] and size + len(line) > self.settings.max_input_chars:
                chunks.append([])
                size = 0
            chunks[-1].append((number, speaker, sentence))
            size += len(line) + 1
        return [c for c in chunks if c]

    @staticmethod
    def _render(number: int, speaker: str, sentence: Sentence, index: dict[str, Party]) -> str:
        who = f"{name_of(speaker, index) or 'unknown'}, {side_of(speaker, index)}"
        return f"{number}\t{sentence.start_ms}\t{speaker} ({who})\t{sentence.text}"

    async def _ask(self, call: Call, chunk: list[tuple[int, str, Sentence]], part: str) -> ModelReading:
        index = speaker_index(call.parties)
        text = "\n".join(self._render(n, sp, s, index) for n, sp, s in chunk)
        names = ", ".join(c.name for c in self.competitors)
        completion = await self.client.chat.completions.parse(
            model=self.settings.model,
            messages=[
                {"role": "system", "content": SYSTEM_PROMPT.format(competitors=names)},
                {"role": "user", "content": f"Call: {call.title} with {call.client_name or 'a client'}{part}\n{text}"},
            ],
            response_format=ModelReading,
        )
        choice = completion.choices[0]
        if choice.finish_reason == "length":
            raise UnusableAnswer("the answer was cut off (finish_reason length)")
        if choice.message.refusal:
            raise UnusableAnswer("the model refused")
        if choice.message.parsed is None:
            raise UnusableAnswer("the answer had no parsable content")
        return choice.message.parsed

    async def _read(self, call: Call, transcript: Transcript) -> CallInsights:
        chunks = self._chunks(call, transcript)
        readings = []
        for i, chunk in enumerate(chunks):
            part = f" (part {i + 1} of {len(chunks)})" if len(chunks) > 1 else ""
            readings.append(await self._ask(call, chunk, part))
        return self._insights(call, transcript, readings)

    def _insights(self, call: Call, transcript: Transcript, readings: list[ModelReading]) -> CallInsights:
        """Turn the model's answers into insights, keeping only what the transcript bears out."""
        index = speaker_index(call.parties)
        lines = _lines(transcript)
        by_alias = {alias.casefold(): c.name for c in self.competitors for alias in c.names}
        counts: dict[str, int] = {}
        for speaker, _ in lines:
            counts[speaker] = counts.get(speaker, 0) + 1
        scores: dict[str, list[float]] = {}
        mentions, risks = [], []
        for reading in readings:
            for s in reading.speakers:
                if s.speaker_id in counts:
                    scores.setdefault(s.speaker_id, []).append(max(-1.0, min(1.0, s.sentiment)))
            for m in reading.competitor_mentions:
                name = by_alias.get(m.competitor.casefold())
                if name and 0 <= m.line < len(lines):
                    speaker, sentence = lines[m.line]
                    mentions.append(
                        CompetitorMention(
                            competitor=name,
                            matched=m.competitor,
                            text=sentence.text,
                            speaker_id=speaker,
                            speaker_name=name_of(speaker, index),
                            affiliation=side_of(speaker, index),
                            at_ms=sentence.start_ms,
                        )
                    )
            for r in reading.risk_factors:
                if 0 <= r.line < len(lines) and side_of(lines[r.line][0], index) != "Internal":
                    speaker, sentence = lines[r.line]
                    kind: RiskKind = r.kind
                    risks.append(
                        RiskFactor(
                            kind=kind,
                            text=sentence.text,
                            speaker_id=speaker,
                            speaker_name=name_of(speaker, index),
                            affiliation=side_of(speaker, index),
                            at_ms=sentence.start_ms,
                        )
                    )
        speakers = [
            SpeakerSentiment(
                speaker_id=speaker,
                name=name_of(speaker, index),
                affiliation=side_of(speaker, index),
                sentences=counts[speaker],
                compound=round(fmean(values), 4),
            )
            for speaker, values in scores.items()
        ]
        weighted = [(s.compound, s.sentences) for s in speakers]
        total = sum(n for _, n in weighted)
        overall = sum(c * n for c, n in weighted) / total if total else 0.0
        external = [(s.compound, s.sentences) for s in speakers if s.affiliation == "External"]
        ext_total = sum(n for _, n in external)
        external_mean = sum(c * n for c, n in external) / ext_total if ext_total else None
        sentiment = SentimentSummary(
            overall=round(overall, 4),
            external=None if external_mean is None else round(external_mean, 4),
            label=label(overall if external_mean is None else external_mean),
            speakers=speakers,
        )
        summary = " ".join(r.summary.strip() for r in readings if r.summary.strip())
        return CallInsights(sentiment=sentiment, competitor_mentions=mentions, risk_factors=risks, summary=summary)
