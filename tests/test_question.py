"""Reading a business question: the period it asks about, the client it names, the topics it is about."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sophia_mcp.analysis.question import find_client, read_period, topics_of

NOW = datetime(2026, 12, 1, 11, 30, tzinfo=UTC)  # a Tuesday
DAY = timedelta(days=1)


def midnight(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=UTC)


@pytest.mark.parametrize(
    ("question", "since", "until", "label"),
    [
        ("How is Acme doing over the last two weeks?", NOW - 14 * DAY, None, "the last 14 days"),
        ("at risk in the past 30 days", NOW - 30 * DAY, None, "the last 30 days"),
        ("the last couple of weeks", NOW - 14 * DAY, None, "the last 14 days"),
        ("over the past month", NOW - 30 * DAY, None, "the last 30 days"),
        ("What changed last month?", midnight(2026, 11, 1), midnight(2026, 12, 1), "November 2026"),
        ("last week's calls", midnight(2026, 11, 23), midnight(2026, 11, 30), "the week of 2026-11-23"),
        ("ARR this quarter", midnight(2026, 10, 1), None, "this quarter"),
        ("so far this month", midnight(2026, 12, 1), None, "this month"),
        ("revenue YTD", midnight(2026, 1, 1), None, "this year"),
        ("yesterday", midnight(2026, 11, 30), midnight(2026, 12, 1), "yesterday"),
        ("How did Q3 go?", midnight(2026, 7, 1), midnight(2026, 10, 1), "Q3 2026"),
        ("Q1 2025 churn", midnight(2025, 1, 1), midnight(2025, 4, 1), "Q1 2025"),
        ("In October, who was at risk?", midnight(2026, 10, 1), midnight(2026, 11, 1), "October 2026"),
        ("December 2025", midnight(2025, 12, 1), midnight(2026, 1, 1), "December 2025"),
    ],
)
def test_the_period_a_question_asks_about(question: str, since: datetime, until: datetime | None, label: str) -> None:
    period = read_period(question, NOW)
    assert period is not None and (period.since, period.until, period.label) == (since, until, label)


def test_a_question_without_a_period_has_none() -> None:
    # "may" and "march" are words as well as months: only capitalised do they name one.
    for question in ("Which clients may churn?", "Who will march on with us?", "Which clients are at risk?"):
        assert read_period(question, NOW) is None
    assert read_period("In May, who renewed?", NOW) is not None


CLIENTS = [
    ("1", "Aspen Grove Properties"), ("2", "Summit Ridge Property Group"), ("3", "Summit Peak Rentals"),
    ("4", "Cedar & Stone Realty"), ("5", "Riverbend Property Co."), ("6", "Acme"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("question", "client"),
    [
        ("How is Aspen Grove Properties doing?", "1"),
        ("how is aspen grove doing?", "1"),  # the first words no other client's name begins with
        ("Acme's health over the last two weeks", "6"),
        ("Summit Ridge: any risk?", "2"),
        ("Is Summit at risk?", None),  # two clients' names begin so
        ("cedar & stone's renewal", "4"),
        ("Riverbend Property Co. and Acme", "5"),  # the longest name named
        ("Which clients are at risk?", None),
    ],
)
def test_the_client_a_question_names(question: str, client: str | None) -> None:
    found = find_client(question, CLIENTS)
    assert (found and found[0]) == client


def test_the_topics_a_question_is_about() -> None:
    assert topics_of("Which clients are at risk, and what is AppFolio doing?") == {"risk"}
    assert topics_of("ARR by segment and competitor mentions") == {"revenue", "competitors"}
    assert topics_of("Is health improving?") == {"risk", "trend"}
    assert topics_of("When did the carrier arrive?") == set()  # not "arr", not "risk"


def test_the_client_named_is_found_among_the_clients_as_they_are_now() -> None:
    """The names' table is built once per list of clients: a client renamed, added or gone changes the answer."""
    question = "How is Summit Peak doing?"
    assert find_client(question, CLIENTS) == ("3", "Summit Peak Rentals")
    renamed = [c if c[0] != "3" else ("3", "Granite Peak Rentals") for c in CLIENTS]
    assert find_client(question, renamed) is None
    added = [*CLIENTS, ("7", "Summit Peak Holdings")]
    assert find_client(question, added) is None  # two clients' names begin so now
    assert find_client(question, CLIENTS) == ("3", "Summit Peak Rentals")
