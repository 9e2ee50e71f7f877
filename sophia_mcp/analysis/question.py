"""What a business question is about, read from its words: a client it names, the period it asks about, and
the topics (risk, revenue, trend, competitors) that say which numbers answer it. Pure: no I/O.

A period is a window [since, until) in UTC; `until` None means up to now. Understood:
- "the last/past N days|weeks|months|quarters|years" (N in digits or words, "a couple of", "a few"), and
  "the last week" or "past month": that long up to now;
- "last week|month|quarter|year" (without "the"): the calendar one before this one;
- "this week|month|quarter|year", "so far this ...", "year to date" / "YTD": from its start up to now;
- "today", "yesterday"; "Q3" or "Q3 2026" (a quarter, this year's unless it has not begun); a month by name
  ("in October", "October 2026": this year's unless it has not begun; "May" and "March" only capitalised).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal

Topic = Literal["risk", "revenue", "trend", "competitors"]
# Word beginnings (a word may go on: "improv" is "improving" too) and whole words (ending in \b) of each topic.
TOPIC_WORDS: dict[Topic, tuple[str, ...]] = {
    "risk": ("risk", "churn", "health", "leav", "renew", "unhappy", r"los(e|ing)\b", "cancel"),
    "revenue": ("revenue", r"arr\b", "segment", "money", "dollar", "contract value", "spend"),
    "trend": ("trend", "over time", "improv", "declin", "wors", r"better\b", "chang", "histor", "trajector"),
    "competitors": ("compet", "rival", "mention", "switch"),
}
TOPICS = {topic: re.compile("|".join(rf"\b{w}" for w in words), re.I) for topic, words in TOPIC_WORDS.items()}
NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "couple of": 2, "a few": 3, "few": 3,
}  # fmt: skip
UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "quarter": 91, "year": 365}
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")  # fmt: skip
CAPITALISED_ONLY = {"may", "march"}  # ordinary words too: only "May" and "March" name a month

_UNIT = r"(day|week|month|quarter|year)s?"
_COUNT = "|".join(sorted((re.escape(k) for k in NUMBERS), key=len, reverse=True))
ROLLING = re.compile(rf"\b(the\s+)?(?:last|past|previous|recent)\s+(?:(\d{{1,4}}|{_COUNT})\s+)?{_UNIT}\b", re.I)
THIS = re.compile(rf"\b(?:this|so far this|current)\s+{_UNIT}\b", re.I)
TO_DATE = re.compile(r"\b(?:year[\s-]to[\s-]date|ytd)\b", re.I)
DAY = re.compile(r"\b(today|yesterday)\b", re.I)
QUARTER = re.compile(r"\bQ([1-4])(?:\s*(?:of\s+)?'?(\d{4}|\d{2}))?\b", re.I)
MONTH = re.compile(rf"\b({'|'.join(MONTHS)})(?:\s+(\d{{4}}))?\b", re.I)


@dataclass(frozen=True)
class Period:
    since: datetime
    until: datetime | None  # None: up to now
    label: str  # in words, e.g. "the last 14 days", "Q3 2026"


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _start_of(unit: str, day: date) -> date:
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    if unit == "quarter":
        return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    if unit == "year":
        return date(day.year, 1, 1)
    return day


def _before(unit: str, start: date) -> date:
    """The start of the calendar `unit` before the one starting on `start`."""
    if unit == "week":
        return start - timedelta(days=7)
    if unit == "day":
        return start - timedelta(days=1)
    months = {"month": 1, "quarter": 3, "year": 12}[unit]
    index = start.year * 12 + start.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def _month_after(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def read_period(question: str, now: datetime) -> Period | None:
    """The period the question asks about, or None when it names none (see the module's list)."""
    today = now.astimezone(UTC).date()
    if match := ROLLING.search(question):
        the, count, unit = match.group(1), match.group(2), match.group(3).casefold()
        if count is None and not the and not match.group(0).casefold().startswith(("past", "recent")):
            start = _before(unit, _start_of(unit, today))  # "last month": the calendar month before this one
            return Period(_midnight(start), _midnight(_start_of(unit, today)), _calendar_label(unit, start))
        n = int(count) if count and count.isdigit() else NUMBERS.get((count or "one").casefold(), 1)
        days = max(1, n) * UNIT_DAYS[unit]
        label = f"the last {days} days" if unit != "day" or n != 1 else "the last day"
        return Period(now - timedelta(days=days), None, label)
    if match := THIS.search(question):
        unit = match.group(1).casefold()
        return Period(_midnight(_start_of(unit, today)), None, f"this {unit}")
    if TO_DATE.search(question):
        return Period(_midnight(date(today.year, 1, 1)), None, "this year")
    if match := DAY.search(question):
        if match.group(1).casefold() == "today":
            return Period(_midnight(today), None, "today")
        return Period(_midnight(today - timedelta(days=1)), _midnight(today), "yesterday")
    if match := QUARTER.search(question):
        quarter, year = int(match.group(1)), match.group(2)
        start = date(_year(year, today), quarter * 3 - 2, 1)
        if year is None and start > today:
            start = start.replace(year=start.year - 1)
        return Period(_midnight(start), _midnight(_month_after(start, 3)), f"Q{quarter} {start.year}")
    for match in MONTH.finditer(question):
        name = match.group(1)
        if name.casefold() in CAPITALISED_ONLY and not name[0].isupper():
            continue
        start = date(_year(match.group(2), today), MONTHS.index(name.casefold()) + 1, 1)
        if match.group(2) is None and start > today:
            start = start.replace(year=start.year - 1)
        return Period(_midnight(start), _midnight(_month_after(start, 1)), _calendar_label("month", start))
    return None


def _calendar_label(unit: str, start: date) -> str:
    if unit == "month":
        return f"{start:%B %Y}"
    if unit == "quarter":
        return f"Q{(start.month - 1) // 3 + 1} {start.year}"
    if unit == "year":
        return str(start.year)
    return f"the week of {start:%Y-%m-%d}" if unit == "week" else f"{start:%Y-%m-%d}"


def _year(text: str | None, today: date) -> int:
    if text is None:
        return today.year
    return int(text) if len(text) == 4 else 2000 + int(text)


def _words(text: str) -> list[str]:
    """Lower-cased words of a text, a possessive ("Acme's") read as the name."""
    return re.findall(r"[\w&]+", re.sub(r"['’]s\b", "", text.casefold()))


@lru_cache(maxsize=8)
def _name_prefixes(clients: tuple[tuple[str, str], ...]) -> tuple[dict[tuple[str, ...], tuple[str, str]], int]:
    """Each client's whole name and its beginnings of two or more words, as lower-cased words, that name that
    client alone, and the most words in one. Built once per list of clients (most of `find_client`'s time): a
    changed list is another key, so an answer is never from an old one. Read it, never change it."""
    owners: dict[tuple[str, ...], set[tuple[str, str]]] = {}
    for client in clients:
        words = tuple(_words(client[1]))
        for n in range(min(2, len(words)), len(words) + 1):
            owners.setdefault(words[:n], set()).add(client)
    alone = {prefix: next(iter(named)) for prefix, named in owners.items() if len(named) == 1}
    return alone, max((len(p) for p in owners), default=0)


def find_client(question: str, clients: Iterable[tuple[str, str]]) -> tuple[str, str] | None:
    """The (id, name) of the client the question names: by its whole name, or by the first two or more words of
    it that no other client's name begins with ("Aspen Grove" for Aspen Grove Properties), in any case. The
    longest name found wins; None when it names none, or two clients as much."""
    alone, longest = _name_prefixes(tuple(clients))
    asked = _words(question)
    for n in range(min(longest, len(asked)), 0, -1):
        found = {alone[p] for i in range(len(asked) - n + 1) if (p := tuple(asked[i : i + n])) in alone}
        if found:
            return found.pop() if len(found) == 1 else None
    return None


def topics_of(question: str) -> set[Topic]:
    """The topics whose words the question uses (none: a general question)."""
    return {topic for topic, pattern in TOPICS.items() if pattern.search(question)}
