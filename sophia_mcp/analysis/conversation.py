"""Talk time, talk ratio, longest monologue and questions, computed from transcript sentence timings."""

from __future__ import annotations

from collections.abc import Sequence

from sophia_mcp.analysis.speakers import side_of, speaker_index
from sophia_mcp.domain.calls import Party, Transcript
from sophia_mcp.domain.results import TalkStats


def talk_stats(transcript: Transcript, parties: Sequence[Party]) -> TalkStats:
    """Talk time per side, the internal share of it, the longest uninterrupted stretch, and questions asked."""
    index = speaker_index(parties)
    talk = {"Internal": 0, "External": 0, "Unknown": 0}
    questions = {"Internal": 0, "External": 0, "Unknown": 0}
    longest_ms, longest_speaker = 0, None
    # A stretch is one speaker talking until someone else does; Gong may split it into several monologues.
    stretch_speaker: str | None = None
    stretch_start = 0
    for monologue in transcript.monologues:
        side = side_of(monologue.speaker_id, index)
        for sentence in monologue.sentences:
            talk[side] += max(0, sentence.end_ms - sentence.start_ms)
            if sentence.text.strip().endswith("?"):
                questions[side] += 1
            if monologue.speaker_id != stretch_speaker:
                stretch_speaker, stretch_start = monologue.speaker_id, sentence.start_ms
            if sentence.end_ms - stretch_start > longest_ms:
                longest_ms, longest_speaker = sentence.end_ms - stretch_start, stretch_speaker
    spoken = talk["Internal"] + talk["External"]
    return TalkStats(
        internal_ms=talk["Internal"],
        external_ms=talk["External"],
        unknown_ms=talk["Unknown"],
        internal_ratio=talk["Internal"] / spoken if spoken else None,
        longest_monologue_ms=longest_ms,
        longest_monologue_speaker_id=longest_speaker,
        questions_internal=questions["Internal"],
        questions_external=questions["External"],
    )
