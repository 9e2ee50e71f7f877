"""The polling connectors, through the CLI against the fakes: each keeps exactly the new events as the webhooks would,
moves its cursor only once they are kept (a failed cursor write re-reads and keeps nothing twice), follows pages,
honours 429, and on the embedded default says there is nothing to poll. The watched folder ends in search."""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from typer.testing import CliRunner

from sophia_mcp.app.backends import build_services
from sophia_mcp.cli.main import app
from sophia_mcp.domain.inbox import InboxEvent
from sophia_mcp.domain.times import iso
from sophia_mcp.settings import load_settings
from tests.fakes import hubspot, slack
from tests.fakes.gong import ACCESS_KEY, ACCESS_SECRET, GongState, gong_app
from tests.fakes.hubspot import HubSpotState, hubspot_app
from tests.fakes.server import serve
from tests.fakes.slack import SlackState, slack_app
from tests.support.exports import EXPORT
from tests.support.processes import env_for
from tests.support.settings import make_settings

runner = CliRunner()
EVERYTHING = "100000"  # hours: a first poll that reads everything the fake holds
BASE = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def sophia(data_dir: Path, *args: str, **env: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=env_for(data_dir, COLUMNS="200", **env))
    return result.exit_code, result.output


def events(data_dir: Path, source: str) -> list[InboxEvent]:
    services = build_services(make_settings(data_dir))
    try:
        return sorted(anyio.run(lambda: services.inbox.list(source=source, limit=1000)), key=lambda e: e.id)
    finally:
        services.close()


def cursor(data_dir: Path, name: str) -> str | None:
    services = build_services(make_settings(data_dir))
    try:
        return anyio.run(services.connector_cursors.get, name)
    finally:
        services.close()


def cursor_writes_fail(data_dir: Path, failing: bool) -> None:
    """A store whose cursor writes fail (as a crash between keeping the events and moving the cursor), or not."""
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        conn.execute("DROP TRIGGER IF EXISTS no_insert")
        conn.execute("DROP TRIGGER IF EXISTS no_update")
        if failing:
            for name, what in (("no_insert", "INSERT"), ("no_update", "UPDATE")):
                conn.execute(f"CREATE TRIGGER {name} BEFORE {what} ON connector_cursors "
                             "BEGIN SELECT RAISE(ABORT, 'disk gone'); END")  # fmt: skip


# -- Gong ---------------------------------------------------------------------------------------------------


def gong_call(number: int, started: datetime) -> dict[str, Any]:
    call = copy.deepcopy(json.loads((EXPORT / "calls_extensive.json").read_text())["calls"][0])
    call["metaData"] |= {"id": f"90000000000000000{number:02d}", "started": iso(started)}
    return call


@pytest.fixture
def gong() -> Iterator[tuple[GongState, dict[str, str]]]:
    state = GongState(calls=[gong_call(n, BASE + timedelta(hours=n)) for n in range(5)], transcripts={}, page_size=2,
                      retry_after="0.2")  # fmt: skip
    with serve(gong_app(state)) as url:
        yield state, {
            "SOPHIA_GONG__BACKEND": "gong", "SOPHIA_GONG__BASE_URL": url, "SOPHIA_GONG__ACCESS_KEY": ACCESS_KEY,
            "SOPHIA_GONG__ACCESS_KEY_SECRET": ACCESS_SECRET, "SOPHIA_GONG__RETRY_BASE_S": "0.01",
            "SOPHIA_GONG__RATE_PER_SECOND": "1000", "SOPHIA_CONNECTORS__BACKFILL_HOURS": EVERYTHING,
            "SOPHIA_SCHEDULES": json.dumps([{"name": "gong-calls", "workflow": "gong-calls", "every": "5m"}]),
        }  # fmt: skip


def test_gong_calls_are_kept_once_each_with_their_content_and_the_cursor_moves(
    tmp_path: Path, gong: tuple[GongState, dict[str, str]]
) -> None:
    state, env = gong
    data_dir = tmp_path / "data"
    code, out = sophia(data_dir, "schedule", "--once", **env)
    assert code == 0, out
    assert "gong-calls: succeeded" in out and "read 5," in out and "new 5" in out
    kept = events(data_dir, "gong")
    assert [e.event_id for e in kept] == [f"call:{c['metaData']['id']}" for c in state.calls]
    assert {(e.kind, e.via, e.status) for e in kept} == {("gong.call", "poll", "pending")}
    assert kept[0].payload == state.calls[0]  # the /v2/calls/extensive shape, as the webhook carries it
    pages = [body for path, body in state.requests if path == "/v2/calls/extensive"]
    assert len(pages) == 3 and [p.get("cursor") for p in pages] == [None, "2", "4"]
    assert pages[0]["contentSelector"]["exposedFields"]["parties"] is True
    assert cursor(data_dir, "gong-calls") == iso(BASE + timedelta(hours=4))

    # Later: a new call, and one that started before the cursor but was processed (listed) only now.
    state.calls += [gong_call(5, BASE + timedelta(hours=5)), gong_call(6, BASE + timedelta(hours=3, minutes=30))]
    state.requests.clear()
    code, out = sophia(data_dir, "run", "poll", "gong-calls", **env)
    assert code == 0, out
    assert "new 2" in out
    assert state.requests[0][1]["filter"]["fromDateTime"] == iso(BASE + timedelta(hours=4 - 6))  # the lookback
    assert len(events(data_dir, "gong")) == 7
    assert cursor(data_dir, "gong-calls") == iso(BASE + timedelta(hours=5))

    code, out = sophia(data_dir, "run", "poll", "gong-calls", **env)
    assert code == 0 and "new 0" in out, out
    kept = events(data_dir, "gong")
    assert len(kept) == 7 and len({e.event_id for e in kept}) == 7
    assert max(e.deliveries for e in kept) == 3  # read again in the lookback, kept once


def test_a_failed_cursor_write_rereads_and_keeps_nothing_twice(
    tmp_path: Path, gong: tuple[GongState, dict[str, str]]
) -> None:
    _, env = gong
    data_dir = tmp_path / "data"
    assert sophia(data_dir, "inbox", "list", **env)[0] == 0  # the store exists
    cursor_writes_fail(data_dir, True)
    code, out = sophia(data_dir, "run", "poll", "gong-calls", **env)
    assert code != 0
    assert len(events(data_dir, "gong")) == 5  # kept before the cursor write failed
    assert cursor(data_dir, "gong-calls") is None
    cursor_writes_fail(data_dir, False)
    code, out = sophia(data_dir, "run", "poll", "gong-calls", **env)
    assert code == 0 and "read 5," in out and "new 0" in out, out
    kept = events(data_dir, "gong")
    assert len(kept) == 5 and {e.deliveries for e in kept} == {2}
    assert cursor(data_dir, "gong-calls") == iso(BASE + timedelta(hours=4))


def test_gong_429_is_waited_out_as_retry_after_says(tmp_path: Path, gong: tuple[GongState, dict[str, str]]) -> None:
    state, env = gong
    state.faults = ["429", "429"]
    code, out = sophia(tmp_path / "data", "run", "poll", "gong-calls", **env)
    assert code == 0 and "read 5," in out and "new 5" in out, out
    assert state.faults == []


# -- HubSpot ------------------------------------------------------------------------------------------------


def contact(number: int, modified: datetime) -> dict[str, str | None]:
    props: dict[str, str | None] = dict.fromkeys(hubspot.CONTACT_PROPERTIES)
    stamp = modified.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return props | {"hs_object_id": str(number), "createdate": stamp, "lastmodifieddate": stamp,
                    "email": f"person{number}@example.com", "firstname": f"Person{number}"}  # fmt: skip


@pytest.fixture
def crm() -> Iterator[tuple[HubSpotState, dict[str, str]]]:
    # 250 contacts, a search reaching 120 of them: pages by `after`, and the search started again twice.
    people = {str(n): contact(n, BASE + timedelta(seconds=n // 2)) for n in range(1, 251)}
    state = HubSpotState(contacts=people, companies={}, search_per_second=1000, search_reach=120, retry_after="0.2")
    with serve(hubspot_app(state)) as url:
        yield state, {
            "SOPHIA_HUBSPOT__BACKEND": "hubspot", "SOPHIA_HUBSPOT__BASE_URL": url,
            "SOPHIA_HUBSPOT__ACCESS_TOKEN": hubspot.ACCESS_TOKEN, "SOPHIA_HUBSPOT__RETRY_BASE_S": "0.01",
            "SOPHIA_HUBSPOT__RATE_PER_SECOND": "1000", "SOPHIA_HUBSPOT__SEARCH_PER_SECOND": "1000",
            "SOPHIA_CONNECTORS__BACKFILL_HOURS": EVERYTHING,
        }  # fmt: skip


def test_hubspot_contacts_are_kept_once_per_change_across_pages_and_the_search_cap(
    tmp_path: Path, crm: tuple[HubSpotState, dict[str, str]]
) -> None:
    state, env = crm
    data_dir = tmp_path / "data"
    state.faults = ["429"]
    code, out = sophia(data_dir, "run", "poll", "hubspot-contacts", **env)
    assert code == 0 and "read 250," in out and "new 250" in out, out
    kept = events(data_dir, "hubspot")
    first = kept[0]
    assert first.kind == "hubspot.contact" and first.via == "poll"
    assert first.event_id == f"contact:1:{state.contacts['1']['lastmodifieddate']}"
    assert first.payload["objectId"] == 1 and first.payload["subscriptionType"] == "contact.poll"
    assert first.payload["properties"]["email"] == "person1@example.com"
    assert sorted(int(e.payload["objectId"]) for e in kept) == list(range(1, 251))
    searches = [body for method, path, body in state.requests if path.endswith("/contacts/search")]
    assert [s.get("after") for s in searches] == [None, "100", None, "100", None]  # paged; started again at 120
    restarted = searches[2]["filterGroups"][0]["filters"][0]
    assert restarted["value"] == str(int(BASE.timestamp() * 1000) + 60_000)  # at the 120th's lastmodifieddate
    assert cursor(data_dir, "hubspot-contacts") == state.contacts["250"]["lastmodifieddate"]

    code, out = sophia(data_dir, "run", "poll", "hubspot-contacts", **env)
    assert code == 0 and "new 0" in out, out

    # Two contacts change; a third changed earlier but the search shows it only later (HubSpot's lag).
    later = BASE + timedelta(minutes=10)
    for number, when in (("7", later), ("8", later + timedelta(seconds=1)), ("9", later - timedelta(seconds=20))):
        state.contacts[number]["lastmodifieddate"] = iso(when)
    state.unindexed = {"9"}
    code, out = sophia(data_dir, "run", "poll", "hubspot-contacts", **env)
    assert code == 0 and "new 2" in out, out
    state.unindexed = set()
    code, out = sophia(data_dir, "run", "poll", "hubspot-contacts", **env)
    assert code == 0 and "new 1" in out, out  # read from before the cursor, by the lag
    kept = events(data_dir, "hubspot")
    assert len(kept) == 253 and len({e.event_id for e in kept}) == 253


# -- Slack --------------------------------------------------------------------------------------------------

BUGS = "C0BUGS0001"


def message(n: int, **more: str) -> dict[str, Any]:
    return {"type": "message", "user": f"U0{n:04d}", "text": f"bug {n}: the export is broken", "ts": f"17640000{n:02d}."
            f"{n:06d}", "team": "T0PAYREADY"} | more  # fmt: skip


@pytest.fixture
def slack_fake() -> Iterator[tuple[SlackState, dict[str, str]]]:
    history = [message(1), message(2, bot_id="B0SOPHIA", subtype="bot_message"), message(3),
               message(4, thread_ts="1764000004.000004"), message(5)]  # fmt: skip
    state = SlackState(history={BUGS: history}, history_page=2, retry_after="0")
    with serve(slack_app(state)) as url:
        yield state, {
            "SOPHIA_SLACK__BACKEND": "slack", "SOPHIA_SLACK__BASE_URL": f"{url}/api/",
            "SOPHIA_SLACK__BOT_TOKEN": slack.BOT_TOKEN, "SOPHIA_BUGS__CHANNELS": json.dumps([BUGS]),
            "SOPHIA_CONNECTORS__BACKFILL_HOURS": EVERYTHING,
        }  # fmt: skip


def test_slack_bug_channel_messages_are_kept_once_by_channel_and_ts(
    tmp_path: Path, slack_fake: tuple[SlackState, dict[str, str]]
) -> None:
    state, env = slack_fake
    data_dir = tmp_path / "data"
    state.history_faults = ["429"]
    code, out = sophia(data_dir, "run", "poll", "slack-bugs", **env)
    assert code == 0 and "read 5," in out and "new 5" in out, out
    assert state.calls.count("conversations.history") == 4  # a 429, then three pages of two
    kept = events(data_dir, "slack")
    assert [e.event_id for e in kept] == [f"{BUGS}/{m['ts']}" for m in state.history[BUGS]]
    assert kept[0].kind == "slack.message" and kept[0].via == "poll"
    assert {k: kept[0].payload[k] for k in ("type", "channel", "user", "text", "ts", "team_id")} == {
        "type": "message", "channel": BUGS, "user": "U00001", "text": "bug 1: the export is broken",
        "ts": "1764000001.000001", "team_id": "T0PAYREADY",
    }  # fmt: skip
    assert kept[1].payload["bot_id"] == "B0SOPHIA"  # the action, not the connector, decides what to ignore
    assert cursor(data_dir, f"slack-bugs:{BUGS}") == "1764000005.000005"

    state.history[BUGS].append(message(6))
    code, out = sophia(data_dir, "run", "poll", "slack-bugs", **env)
    assert code == 0 and "read 1," in out and "new 1" in out, out
    code, out = sophia(data_dir, "run", "poll", "slack-bugs", **env)
    assert code == 0 and "read 0," in out and "new 0" in out, out
    assert len(events(data_dir, "slack")) == 6


# -- the embedded default, and the schedules --------------------------------------------------------------


def test_on_the_embedded_default_the_service_connectors_have_nothing_to_read(tmp_path: Path) -> None:
    names = ["gong-calls", "hubspot-contacts", "slack-bugs", "watch-folder"]
    schedules = json.dumps([{"name": n, "workflow": n, "every": "5m"} for n in names])
    code, out = sophia(tmp_path / "data", "schedule", "--once", SOPHIA_SCHEDULES=schedules)
    assert code == 0, out
    for name in names:
        assert f"{name}: succeeded" in out
    assert "skipped no Gong to poll" in out and "skipped no HubSpot to poll" in out
    assert "skipped no bug channel to read" in out and "skipped no folder is watched" in out


def test_connectors_join_the_default_schedules_only_where_no_webhook_can_reach_us(tmp_path: Path) -> None:
    def scheduled(**sections: Any) -> list[str]:
        return [s.name for s in load_settings(data_dir=tmp_path, **sections).schedules]

    assert "gong-calls" not in scheduled()
    assert "gong-calls" in scheduled(gong={"backend": "gong"})
    assert "gong-calls" not in scheduled(gong={"backend": "gong", "webhook_public_key": "-----BEGIN PUBLIC KEY-----"})
    assert "hubspot-contacts" in scheduled(hubspot={"backend": "hubspot"})
    assert "hubspot-contacts" not in scheduled(hubspot={"backend": "hubspot", "webhook_secret": "s"})
    assert "slack-bugs" not in scheduled(slack={"backend": "slack"})  # no bug channel
    assert "slack-bugs" in scheduled(slack={"backend": "slack"}, bugs={"channels": ["C1"]})
    assert "watch-folder" in scheduled(knowledge={"roots": [str(tmp_path)], "watch": str(tmp_path / "in")})
    mine = [{"name": "outbox", "workflow": "deliver-outbox", "every": "1m"}]
    assert scheduled(gong={"backend": "gong"}, schedules=mine) == ["outbox"]  # the user's list is all that runs


# -- the watched folder -------------------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "kb"
    (root / "watched" / "notes").mkdir(parents=True)
    return root / "watched", {"SOPHIA_KNOWLEDGE__ROOTS": str(root), "SOPHIA_KNOWLEDGE__WATCH": str(root / "watched")}


def poll_and_process(data_dir: Path, env: dict[str, str]) -> str:
    code, out = sophia(data_dir, "run", "poll", "watch-folder", **env)
    assert code == 0, out
    code, processed = sophia(data_dir, "inbox", "process", **env)
    assert code == 0, processed
    return out


def test_a_file_dropped_in_the_watched_folder_is_found_by_search_then_changed_then_gone(
    tmp_path: Path, folder: tuple[Path, dict[str, str]]
) -> None:
    watched, env = folder
    data_dir = tmp_path / "data"
    note = watched / "notes" / "escrow.md"
    note.write_text("# Escrow refunds\n\nRefunds of escrow deposits go through the zephyrquartz ledger.\n")
    (watched / ".draft.md").write_text("# Hidden\n\nnot for the knowledge base\n")
    (watched / "picture.png").write_bytes(b"\x89PNG")
    out = poll_and_process(data_dir, env)
    assert "files 1, changed 1, removed 0, new 1" in out
    [event] = events(data_dir, "folder")
    digest = event.payload["sha256"]
    assert event.event_id == f"{note}@{digest}" and event.payload == {"path": str(note), "sha256": digest,
                                                                      "removed": False}  # fmt: skip
    assert event.status == "done" and event.result is not None and event.result["status"] == "new"
    code, found = sophia(data_dir, "kb", "search", "zephyrquartz ledger", **env)
    assert code == 0 and "Escrow refunds" in found and "zephyrquartz" in found, found

    out = poll_and_process(data_dir, env)
    assert "changed 0, removed 0, new 0" in out  # nothing new: nothing kept

    note.write_text("# Escrow refunds\n\nRefunds of escrow deposits now go through the marigoldvault ledger.\n")
    poll_and_process(data_dir, env)
    code, found = sophia(data_dir, "kb", "search", "marigoldvault ledger", **env)
    assert "marigoldvault" in found and "zephyrquartz" not in found, found

    note.unlink()
    out = poll_and_process(data_dir, env)
    assert "files 0, changed 0, removed 1, new 1" in out
    removed = events(data_dir, "folder")[-1]
    assert removed.event_id.startswith(f"{note}@removed@") and removed.payload["removed"] is True
    code, found = sophia(data_dir, "kb", "search", "marigoldvault ledger", **env)
    assert "Nothing found." in found, found


def test_a_file_back_to_content_it_had_before_is_ingested_again(
    tmp_path: Path, folder: tuple[Path, dict[str, str]]
) -> None:
    watched, env = folder
    data_dir = tmp_path / "data"
    note = watched / "policy.md"
    first = "# Policy\n\nLate fees are waived with the saffronkettle code.\n"
    note.write_text(first)
    poll_and_process(data_dir, env)
    note.write_text("# Policy\n\nLate fees are never waived.\n")
    poll_and_process(data_dir, env)
    note.write_text(first)  # an undo: the event of this content was kept before, and is not processed again
    poll_and_process(data_dir, env)
    _, found = sophia(data_dir, "kb", "search", "saffronkettle", **env)
    assert "saffronkettle" in found and "never waived" not in found, found


def test_a_watched_folder_outside_the_roots_is_refused(tmp_path: Path) -> None:
    env = {"SOPHIA_KNOWLEDGE__ROOTS": str(tmp_path / "kb"), "SOPHIA_KNOWLEDGE__WATCH": str(tmp_path / "elsewhere")}
    code, out = sophia(tmp_path / "data", "run", "poll", "watch-folder", **env)
    assert code == 2
    assert "not inside SOPHIA_KNOWLEDGE__ROOTS" in out


def test_a_folder_scan_whose_cursor_write_failed_rereads_and_keeps_nothing_twice(
    tmp_path: Path, folder: tuple[Path, dict[str, str]]
) -> None:
    watched, env = folder
    data_dir = tmp_path / "data"
    (watched / "faq.md").write_text("# FAQ\n\nThe onboarding call is booked by the quillberry form.\n")
    assert sophia(data_dir, "inbox", "list", **env)[0] == 0
    cursor_writes_fail(data_dir, True)
    code, _ = sophia(data_dir, "run", "poll", "watch-folder", **env)
    assert code != 0 and len(events(data_dir, "folder")) == 1
    cursor_writes_fail(data_dir, False)
    out = poll_and_process(data_dir, env)
    assert "changed 1, removed 0, new 0" in out
    [event] = events(data_dir, "folder")
    assert event.deliveries == 2 and event.status == "done"
    _, found = sophia(data_dir, "kb", "search", "quillberry", **env)
    assert "quillberry" in found, found
