"""The demo data set is deterministic, big enough, realistic in shape, and exactly Gong API v2's JSON."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import cache

import pytest

from sophia_mcp.demo.calls import DemoData, generate_demo

TODAY = date(2026, 11, 25)
META_KEYS = {
    "id", "url", "title", "scheduled", "started", "duration", "primaryUserId", "direction", "system", "scope",
    "media", "language", "workspaceId", "purpose", "meetingUrl", "isPrivate", "calendarEventId",
}  # fmt: skip


@cache
def demo() -> DemoData:
    return generate_demo(TODAY)


def test_same_day_and_seed_give_the_same_data() -> None:
    assert generate_demo(TODAY) == demo()
    assert generate_demo(TODAY, seed=8) != demo()


def test_enough_clients_contacts_and_calls_in_the_last_90_days() -> None:
    data = demo()
    assert len(data.clients) >= 40 and len({c.domain for c in data.clients}) == len(data.clients)
    assert all(2 <= sum(1 for p in data.contacts if p.client_id == c.id) <= 5 for c in data.clients)
    calls = data.calls_extensive["calls"]
    assert len(calls) >= 200
    assert len({c["metaData"]["id"] for c in calls}) == len(calls)
    earliest = datetime.combine(TODAY - timedelta(days=90), datetime.min.time()).date()
    for call in calls:
        started = datetime.fromisoformat(call["metaData"]["started"].replace("Z", "+00:00")).date()
        assert earliest <= started < TODAY
        assert len(call["metaData"]["id"]) == 19 and call["metaData"]["id"].isdigit()
        assert META_KEYS <= call["metaData"].keys()


def test_transcripts_join_parties_and_have_sane_timings() -> None:
    data = demo()
    calls = {c["metaData"]["id"]: c for c in data.calls_extensive["calls"]}
    dial_ins = 0
    for entry in data.transcripts["callTranscripts"]:
        call = calls[entry["callId"]]
        speakers = {p["speakerId"]: p["affiliation"] for p in call["parties"]}
        spoken = {m["speakerId"] for m in entry["transcript"]}
        unknown = spoken - speakers.keys()
        assert len(unknown) <= 1
        dial_ins += len(unknown)
        assert {"Internal", "External"} <= {speakers[s] for s in spoken if s in speakers}
        previous_end = 0
        sentences = 0
        for monologue in entry["transcript"]:
            for sentence in monologue["sentences"]:
                assert previous_end <= sentence["start"] < sentence["end"]
                previous_end = sentence["end"]
                sentences += 1
        assert 20 <= sentences <= 90
        assert call["metaData"]["duration"] * 1000 >= previous_end
    assert dial_ins > 0, "some calls should have a dial-in speaker with no party"


@pytest.mark.parametrize("competitor", ["AppFolio", "Yardi", "RealPage", "Buildium", "Entrata"])
def test_every_competitor_comes_up(competitor: str) -> None:
    text = " ".join(
        s["text"] for t in demo().transcripts["callTranscripts"] for m in t["transcript"] for s in m["sentences"]
    )
    assert competitor in text


def test_calls_link_to_their_account() -> None:
    clients = {c.id: c.name for c in demo().clients}
    for call in demo().calls_extensive["calls"]:
        account = call["context"][0]["objects"][0]
        assert account["objectType"] == "Account"
        assert clients[account["objectId"]] == account["fields"][0]["value"]
        assert call["metaData"]["title"].startswith(account["fields"][0]["value"])
