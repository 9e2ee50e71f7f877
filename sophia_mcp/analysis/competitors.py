"""Competitor mentions: configured names and aliases found in transcript sentences, with the quote."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from sophia_mcp.analysis.speakers import name_of, side_of, speaker_index
from sophia_mcp.domain.calls import Party, Transcript
from sophia_mcp.domain.results import CompetitorMention
from sophia_mcp.domain.weights import Competitor


def _pattern(alias: str, ignore_case: bool) -> re.Pattern[str]:
    words = r"\s+".join(re.escape(word) for word in alias.split())
    # Whole words only; a possessive ("AppFolio's") still counts.
    return re.compile(rf"(?<![\w-]){words}(?:['’]s)?(?![\w-])", re.IGNORECASE if ignore_case else 0)


@lru_cache(maxsize=32)
def _matchers(competitors: tuple[tuple[str, tuple[str, ...]], ...]) -> list[tuple[str, re.Pattern[str]]]:
    """(competitor, pattern) pairs, longest alias first so "Yardi Breeze" wins over "Yardi" and "Breeze".

    A competitor's own name matches in any case; aliases match only as capitalised in the settings, because
    aliases tend to be ordinary words ("Breeze", "Real Page") that appear in plain speech.
    """
    pairs = [(name, name, True) for name, _ in competitors] + [
        (name, alias, False) for name, aliases in competitors for alias in aliases
    ]
    pairs.sort(key=lambda pair: len(pair[1]), reverse=True)
    return [(name, _pattern(alias, ignore_case)) for name, alias, ignore_case in pairs]


def find_in_text(text: str, competitors: Sequence[Competitor]) -> list[tuple[str, str]]:
    """(competitor, matched text) for each competitor named in `text`, once each, in order of appearance."""
    taken: list[tuple[int, int]] = []
    found: dict[str, tuple[int, str]] = {}
    for name, pattern in _matchers(tuple((c.name, tuple(c.aliases)) for c in competitors)):
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            taken.append((start, end))
            if name not in found or start < found[name][0]:
                found[name] = (start, match.group(0))
    return [(name, matched) for name, (_, matched) in sorted(found.items(), key=lambda item: item[1][0])]


def find_competitor_mentions(
    transcript: Transcript, parties: Sequence[Party], competitors: Sequence[Competitor]
) -> list[CompetitorMention]:
    """Every sentence naming a competitor (one mention per sentence and competitor), with who said it and when."""
    index = speaker_index(parties)
    mentions = []
    for monologue in transcript.monologues:
        for sentence in monologue.sentences:
            for name, matched in find_in_text(sentence.text, competitors):
                mentions.append(
                    CompetitorMention(
                        competitor=name,
                        matched=matched,
                        text=sentence.text,
                        speaker_id=monologue.speaker_id,
                        speaker_name=name_of(monologue.speaker_id, index),
                        affiliation=side_of(monologue.speaker_id, index),
                        at_ms=sentence.start_ms,
                    )
                )
    return mentions
