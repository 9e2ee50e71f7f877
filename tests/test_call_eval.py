"""The analysis measured on 294 hand-written calls in Gong's JSON (tests/data/eval_calls), through the gong server.

Each call is labelled by a person (labels.json): the client's sentiment, the risk kinds the client raised, the
competitors named, the client the call belongs to, and whether the call alone puts the client at risk. Every fourth
of the first 88 is held out: thresholds were chosen on the others ("tune"); the held-out part only reports, and
the targets of issue 20 are asserted on it. The held-out part had been read while the analyser was being written,
so 26 calls were written afterwards ("held_out_2", different speakers, phrasing and traps), before the method was
changed again, and never tuned on: the targets are asserted on both parts. 180 more calls ("train") were
written to fit the learned reading on (with the tune part; bench/fit_analyst.py), with the sentences that raise
each risk tagged. Run with `-s` to see every part, for the default analyst (the learned reading), the lexicon and
rules alone, and the risk meaning.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client as MCPClient

from sophia_mcp.app.backends import build_services
from sophia_mcp.servers.gong import create_server
from sophia_mcp.settings import Settings
from tests.fakes.openai import API_KEY, RISK_WORDS, OpenAIState, openai_app
from tests.fakes.server import serve
from tests.support.exports import EVAL, imported_eval_calls
from tests.support.results import structured
from tests.support.settings import make_settings

LABELS: list[dict[str, Any]] = json.loads((EVAL / "labels.json").read_text())["calls"]
KNOWN = {c["id"] for c in json.loads((EVAL / "clients.json").read_text())}
TARGETS = {"sentiment": 0.90, "risk_precision": 0.90, "risk_recall": 0.90, "competitor_precision": 0.95,
           "competitor_recall": 0.95, "at_risk": 0.90, "linked": 1.0}  # fmt: skip
# Measured on each held-out part and not met by the local analyser (the default: the learned reading), beside what
# the lexicon and rules alone measured; strict, so reaching a target fails here until its mark is removed. Why each
# falls short is not looked for in the held-out calls, which are not read: the train part's out-of-fold figures
# (bench/fit_analyst.py) fall short alike. The lexicon and rules alone (SOPHIA_ANALYST__LEARNED=false) and the risk
# meaning (SOPHIA_ANALYST__RISK_MEANING) are measured beside the default.
NOT_MET = {
    "held_out": {
        "risk_precision": "0.80 (the rules alone: 0.86): the learned scorer adds kinds the calls are not labelled with",
    },
    "held_out_2": {
        "sentiment": "73% (the lexicon alone: 50%)",
        "risk_precision": "0.78 (the rules alone: 0.60)",
        "risk_recall": "0.50 (the rules alone: 0.21; with the risk meaning: 0.29)",
        "at_risk": "77% (the rules alone: 65%): follows from the risks missed",
    },
}


@dataclass
class Figures:
    calls: int = 0
    sentiment_right: int = 0
    at_risk_right: int = 0
    linked_right: int = 0
    risk: list[int] = field(default_factory=lambda: [0, 0, 0])  # true positives, false positives, false negatives
    competitor: list[int] = field(default_factory=lambda: [0, 0, 0])

    def add(self, label: dict[str, Any], report: dict[str, Any]) -> None:
        analysis = report["analysis"]
        self.calls += 1
        self.sentiment_right += analysis["sentiment"]["label"] == label["sentiment"]
        self.at_risk_right += (report["call_health"]["score"] < report["threshold"]) == label["at_risk"]
        self.linked_right += linked_right(label["client"], report)
        for counts, found, wanted in (
            (self.risk, {r["kind"] for r in analysis["risk_factors"]}, set(label["risks"])),
            (self.competitor, {m["competitor"] for m in analysis["competitor_mentions"]}, set(label["competitors"])),
        ):
            counts[0] += len(found & wanted)
            counts[1] += len(found - wanted)
            counts[2] += len(wanted - found)

    def values(self) -> dict[str, float]:
        def ratio(a: int, b: int) -> float:
            return a / (a + b) if a + b else 1.0

        return {
            "sentiment": self.sentiment_right / self.calls,
            "risk_precision": ratio(self.risk[0], self.risk[1]),
            "risk_recall": ratio(self.risk[0], self.risk[2]),
            "competitor_precision": ratio(self.competitor[0], self.competitor[1]),
            "competitor_recall": ratio(self.competitor[0], self.competitor[2]),
            "at_risk": self.at_risk_right / self.calls,
            "linked": self.linked_right / self.calls,
        }

    def line(self, name: str) -> str:
        v = self.values()
        return (
            f"{name:>9} ({self.calls} calls): sentiment {v['sentiment']:.0%}, risk kinds P {v['risk_precision']:.2f} "
            f"R {v['risk_recall']:.2f}, competitors P {v['competitor_precision']:.2f} R {v['competitor_recall']:.2f}"
            f", at risk {v['at_risk']:.0%}, linked to the right client {v['linked']:.0%}"
        )


def linked_right(expected: dict[str, str] | None, report: dict[str, Any]) -> bool:
    if expected is None:
        return report["client_id"] is None and report["at_risk"] is None and bool(report["unlinked_reason"])
    if "new_name" in expected:
        return report["client_name"] == expected["new_name"] and report["client_id"] not in KNOWN | {None}
    return bool(report["client_id"] == expected["id"])


async def evaluate(settings: Settings) -> tuple[dict[str, Figures], list[dict[str, Any]]]:
    figures = {"tune": Figures(), "train": Figures(), "held_out": Figures(), "held_out_2": Figures()}
    reports = []
    async with MCPClient(create_server(settings)) as client:
        for label in LABELS:  # oldest call first, as a team would analyse them
            report = structured(await client.call_tool("analyze_call", {"call_id": label["call_id"]}))
            figures[label["split"]].add(label, report)
            reports.append(report)
    return figures, reports


def show(analyst: str, figures: dict[str, Figures]) -> None:
    print(f"\n{analyst} analyst on tests/data/eval_calls")
    for name, part in figures.items():
        print(part.line(name))


Run = tuple[dict[str, Figures], list[dict[str, Any]]]


@pytest.fixture(scope="module")
def eval_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return imported_eval_calls(tmp_path_factory.mktemp("eval") / "data")


def run_on_a_copy(store: Path, key: str, name: str, **analyst: bool) -> Run:
    """The evaluation on a copy of the imported store, so each analyst starts from the same calls and no alerts."""
    data_dir = store.parent / f"data-{key}"
    shutil.copytree(store, data_dir)
    run = anyio.run(evaluate, make_settings(data_dir, analyst=analyst) if analyst else make_settings(data_dir))
    show(name, run[0])
    return run


@pytest.fixture(scope="module")
def local_run(eval_store: Path) -> Run:
    return run_on_a_copy(eval_store, "local", "local (the default: the learned reading)")


@pytest.fixture(scope="module")
def local_figures(local_run: Run) -> dict[str, Figures]:
    return local_run[0]


@pytest.fixture(scope="module")
def rules_run(eval_store: Path) -> Run:
    return run_on_a_copy(eval_store, "rules", "lexicon and rules alone (SOPHIA_ANALYST__LEARNED=false)", learned=False)


@pytest.fixture(scope="module")
def meaning_run(eval_store: Path) -> Run:
    name = "lexicon and rules with the risk meaning (SOPHIA_ANALYST__RISK_MEANING, no learned reading)"
    return run_on_a_copy(eval_store, "meaning", name, learned=False, risk_meaning=True)


@pytest.mark.parametrize(
    ("part", "figure"),
    [pytest.param(part, name, marks=pytest.mark.xfail(strict=True, reason=f"not met on {part}: {not_met[name]}"))
     if name in not_met else (part, name) for part, not_met in NOT_MET.items() for name in TARGETS],
)  # fmt: skip
def test_the_local_analyser_on_calls_it_was_not_tuned_on(
    local_figures: dict[str, Figures], part: str, figure: str
) -> None:
    assert local_figures[part].values()[figure] >= TARGETS[figure]


def test_the_risk_meaning_reaches_risks_said_in_words_the_rules_miss(rules_run: Run, meaning_run: Run) -> None:
    """On the calls written after the rules (held_out_2), the meaning raises labelled risks the rules did not, each
    kept with its quote: a sentence the client said on that call."""
    reached = added_risks(rules_run, meaning_run, "held_out_2")
    assert reached
    assert meaning_run[0]["held_out_2"].values()["risk_recall"] > rules_run[0]["held_out_2"].values()["risk_recall"]


def test_the_learned_reading_adds_risks_with_their_quotes(rules_run: Run, local_run: Run) -> None:
    """Each risk the learned reading adds to the rules' is quoted by a sentence the client said on that call; on the
    train part (what it was fitted on) it reaches risks the rules missed."""
    assert added_risks(rules_run, local_run, "train")


def added_risks(before_run: Run, after_run: Run, part: str) -> list[str]:
    """The labelled risk kinds on `part` that `after_run` raised beyond `before_run`; checks that every risk it
    adds is quoted by a sentence an External party said on the call."""
    reached = []
    for label, before_report, after_report in zip(LABELS, before_run[1], after_run[1], strict=True):
        before = {(r["kind"], r["text"]) for r in before_report["analysis"]["risk_factors"]}
        said = external_sentences(label["file"])
        for factor in after_report["analysis"]["risk_factors"]:
            if (factor["kind"], factor["text"]) in before:
                continue
            assert factor["affiliation"] != "Internal" and factor["text"] in said
            if label["split"] == part and factor["kind"] in label["risks"]:
                reached.append(factor["kind"])
    return reached


def external_sentences(file: str) -> set[str]:
    """What the External parties said on a call, from its Gong JSON."""
    pages = json.loads((EVAL / "gong" / file).read_text())
    external = {p["speakerId"] for p in pages[0]["calls"][0]["parties"] if p["affiliation"] == "External"}
    return {
        s["text"] for m in pages[1]["callTranscripts"][0]["transcript"] if m["speakerId"] in external
        for s in m["sentences"]
    }  # fmt: skip


@pytest.fixture
def fake_openai() -> Iterator[tuple[str, OpenAIState]]:
    state = OpenAIState()
    with serve(openai_app(state)) as url:
        yield f"{url}/v1", state


def test_the_openai_analysts_answers_are_parsed_and_used(tmp_path: Path, fake_openai: tuple[str, OpenAIState]) -> None:
    url, state = fake_openai
    data_dir = imported_eval_calls(tmp_path / "data")
    settings = make_settings(
        data_dir, analyst={"backend": "openai"},
        openai={"api_key": API_KEY, "base_url": url, "model": "gpt-test", "max_retries": 0},
    )  # fmt: skip
    figures, reports = anyio.run(evaluate, settings)
    show("openai (on the fake's keyword reading)", figures)
    assert len(state.requests) == len(LABELS)
    for report in reports:
        analysis = report["analysis"]
        assert (analysis["analyst"], analysis["fallback_reason"]) == ("openai", None)
        assert analysis["summary"] == "The client discussed the account."  # the fake's words, not the local ones
        # The risks are the fake's reading of the client's lines, kept line by line.
        detail = client_lines(data_dir, report["call_id"])
        wanted = {kind for text in detail for kind, rx in RISK_WORDS.items() if re.search(rx, text, re.I)}
        assert {r["kind"] for r in analysis["risk_factors"]} == wanted


def client_lines(data_dir: Path, call_id: str) -> list[str]:
    """The sentences the client side (External parties) said on a call, from the stored transcript."""
    services = build_services(make_settings(data_dir))
    try:
        call = anyio.run(services.local_calls.get_call, call_id)
        transcript = anyio.run(services.local_calls.get_transcript, call_id)
    finally:
        services.close()
    external = {p.speaker_id for p in call.parties if p.affiliation == "External"}
    return [s.text for m in transcript.monologues if m.speaker_id in external for s in m.sentences]
