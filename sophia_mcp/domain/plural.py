"""Counts in words: "1 mention", "2 mentions", "1,204 contacts", wherever a count is written for a person."""

from __future__ import annotations


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """`count` and `noun`, the noun in the plural unless the count is one ("1 call", "0 calls", "1,204 calls");
    `plural_noun` for a noun that does not just take an s ("analysis", "analyses")."""
    return f"{count:,} {noun if count == 1 else plural_noun or noun + 's'}"
