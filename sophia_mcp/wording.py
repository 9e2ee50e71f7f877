"""How counts read: "1 call", "2 calls"."""

from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """`count` and the noun in the number it takes; irregular plurals are given (plural(2, "company", "companies"))."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"
