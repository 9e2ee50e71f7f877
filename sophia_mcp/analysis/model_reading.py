"""What a language model is asked about a call, and how its answer is checked against the transcript.

Shared by the model-backed analysts (an OpenAI-compatible API, or the MCP client's own model via sampling):
the prompt, the answer's schema, the numbered transcript lines (in chunks that fit a budget), and the turning of
an answer into insights that keep only what the transcript bears out.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import fmean
from typing import Literal

from sophia_mcp.analysis.sentiment import label
from sophia_mcp.analysis.speakers import name_of, side_of, speaker_index
from sophia_mcp.domain.calls import Call, Party, Sentence, Transcript
from sophia_mcp.domain.model import Model
from sophia_mcp.domain.results import (
    CallInsights,
    CompetitorMention,
    RiskFactor,
    RiskKind,
    SentimentSummary,
    SpeakerSentiment,
)
from sophia_mcp.domain.weights import Competitor
from sophia_mcp.domain.writing import WritingRequest

SYSTEM_PROMPT = """You analyse recorded sales and customer-success calls of Pay Ready, a software vendor to
property-management companies. Internal speakers are Pay Ready staff; External speakers are the client. Read the
transcript lines (each: line number, start time in ms, speaker id, name and side, text) and answer in the schema:
- speakers: each speaker's overall sentiment from -1 (hostile) to 1 (delighted);
- competitor_mentions: every line naming one of these competitors: {competitors};
- risk_factors: client-side lines that signal pricing pressure, churn intent, budget cuts, implementation trouble
  or evaluation of competitors; ignore what Pay Ready staff say, and negated statements ("no plans to cancel");
- summary: two sentences on how the client feels and why.
Quote the line number of each mention and risk. Do not invent lines."""
READING_TOKENS = 4000  # a reading of one part of a transcript fits well within this


class SpeakerReading(Model):
    speaker_id: str
    sentiment: float


class LineReference(Model):
    line: int


class MentionReading(LineReference):
    competitor: str


class RiskReading(LineReference):
    kind: Literal["pricing", "churn_intent", "budget", "implementation", "competitor_evaluation"]


class ModelReading(Model):
    """The answer asked of the model (strict-schema friendly: no bounds, every field required)."""

    speakers: list[SpeakerReading]
    competitor_mentions: list[MentionReading]
    risk_factors: list[RiskReading]
    summary: str


def transcript_lines(transcript: Transcript) -> list[tuple[str, Sentence]]:
    return [(m.speaker_id, s) for m in transcript.monologues for s in m.sentences]


def transcript_chunks(call: Call, transcript: Transcript, max_chars: int) -> list[list[tuple[int, str, Sentence]]]:
    """Numbered transcript lines in chunks of at most `max_chars` of rendered text."""
    index = speaker_index(call.parties)
    chunks: list[list[tuple[int, str, Sentence]]] = [[]]
    size = 0
    for number, (speaker, sentence) in enumerate(transcript_lines(transcript)):
        line = render_line(number, speaker, sentence, index)
        if chunks[-1] and size + len(line) > max_chars:
            chunks.append([])
            size = 0
        chunks[-1].append((number, speaker, sentence))
        size += len(line) + 1
    return [c for c in chunks if c]


def render_line(number: int, speaker: str, sentence: Sentence, index: dict[str, Party]) -> str:
    """One transcript line as a model reads it: number, start ms, speaker (name, side), text."""
    who = f"{name_of(speaker, index) or 'unknown'}, {side_of(speaker, index)}"
    return f"{number}\t{sentence.start_ms}\t{speaker} ({who})\t{sentence.text}"


def reading_requests(
    call: Call, transcript: Transcript, competitors: Sequence[Competitor], max_chars: int
) -> list[WritingRequest]:
    """What a model is asked to read a call: one request per part of the transcript, answered as a `ModelReading`."""
    system = SYSTEM_PROMPT.format(competitors=", ".join(c.name for c in competitors))
    chunks = transcript_chunks(call, transcript, max_chars)
    return [
        WritingRequest(
            chunk_prompt(call, chunk, part, len(chunks)),
            system=system,
            max_tokens=READING_TOKENS,
            temperature=0,
            answer_schema=ModelReading,
        )
        for part, chunk in enumerate(chunks, 1)
    ]


def chunk_prompt(call: Call, chunk: list[tuple[int, str, Sentence]], part: int, parts: int) -> str:
    """The user message for one chunk of a call's transcript."""
    index = speaker_index(call.parties)
    where = f" (part {part} of {parts})" if parts > 1 else ""
    text = "\n".join(render_line(n, speaker, sentence, index) for n, speaker, sentence in chunk)
    return f"Call: {call.title} with {call.client_name or 'a client'}{where}\n{text}"


def reading_to_insights(
    call: Call, transcript: Transcript, readings: list[ModelReading], competitors: Sequence[Competitor]
) -> CallInsights:
    """Turn the model's answers into insights, keeping only what the transcript bears out."""
    index = speaker_index(call.parties)
    lines = transcript_lines(transcript)
    by_alias = {alias.casefold(): c.name for c in competitors for alias in c.names}
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
    score = overall if external_mean is None else external_mean
    sentiment = SentimentSummary(
        overall=round(overall, 4),
        external=None if external_mean is None else round(external_mean, 4),
        score=round(score, 4),
        label=label(score),
        speakers=speakers,
    )
    summary = " ".join(r.summary.strip() for r in readings if r.summary.strip())
    return CallInsights(sentiment=sentiment, competitor_mentions=mentions, risk_factors=risks, summary=summary)
