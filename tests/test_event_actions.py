"""What each event from outside does, once: events kept in the inbox (as the receivers and the polling connectors
keep them) and processed by the inbox worker or `sophia-mcp inbox process`, checked through the fakes of Slack,
Linear, HubSpot, Apollo and Gong."""

from __future__ import annotations

import copy
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from typer.testing import CliRunner, Result

from sophia_mcp.app.backends import build_services
from sophia_mcp.cli.main import app
from sophia_mcp.domain.inbox import InboxEvent, Incoming
from sophia_mcp.domain.issues import IssueQuery
from sophia_mcp.servers.alerts import create_server as create_alerts_server
from sophia_mcp.servers.gong import create_server as create_gong_server
from sophia_mcp.settings import Settings
from sophia_mcp.workflows.bugs import notify_status_changes
from sophia_mcp.workflows.event_actions import ACTIONS, Ignored
from sophia_mcp.workflows.events import InboxWorker
from tests.fakes import apollo, hubspot
from tests.fakes.gong import ACCESS_KEY, ACCESS_SECRET, GongState, gong_app
from tests.fakes.linear import API_KEY, LinearState, linear_app
from tests.fakes.server import serve
from tests.fakes.slack import BOT_TOKEN, SlackState, slack_app
from tests.support.demo_states import apollo_state, demo, hubspot_state
from tests.support.exports import EVAL
from tests.support.processes import env_for
from tests.support.results import structured
from tests.support.settings import make_settings, real_settings
from tests.support.store_file import outbox_rows

pytestmark = pytest.mark.anyio
BUGS = "C0BUGS0001"  # #bugs in the Slack fake
REPORT = "bug: owner statements export fails with a 500 since this morning"


@pytest.fixture
def slack_linear() -> Iterator[tuple[str, SlackState, str, LinearState]]:
    s_state, l_state = SlackState(), LinearState()
    with serve(slack_app(s_state)) as s_url, serve(linear_app(l_state)) as l_url:
        yield s_url, s_state, l_url, l_state


def bug_sections(fakes: tuple[str, SlackState, str, LinearState]) -> dict[str, Any]:
    s_url, _, l_url, _ = fakes
    return {
        "slack": {"backend": "slack", "base_url": f"{s_url}/api/", "bot_token": BOT_TOKEN, "timeout_s": 5,
                  "max_retries": 0},
        "linear": {"backend": "linear", "base_url": f"{l_url}/graphql", "api_key": API_KEY, "team": "ENG",
                   "timeout_s": 15, "max_retries": 0},
        "bugs": {"channels": ["#bugs"]},
    }  # fmt: skip


def message(ts: str, channel: str = BUGS, text: str = REPORT, **more: Any) -> Incoming:
    """A Slack message event as the receiver (or the slack-bugs connector) keeps it."""
    event = {"type": "message", "channel": channel, "user": "U0MARIA01", "text": text, "ts": ts, **more}
    return Incoming("slack", f"{channel}/{ts}", "slack.message", event | {"team_id": "T0PAYREADY"})


async def keep(settings: Settings, *events: Incoming) -> list[bool]:
    services = build_services(settings)
    try:
        return await services.inbox.record(events)
    finally:
        services.close()


async def drain(settings: Settings) -> tuple[int, dict[str, InboxEvent]]:
    """Process every due event, as `sophia-mcp inbox process` does; how many, and every event by its own id."""
    services = build_services(settings)
    try:
        count = await InboxWorker(services).drain()
        return count, {e.event_id: e for e in await services.inbox.list(limit=1000)}
    finally:
        await services.aclose()
        services.close()


async def run_again(settings: Settings, event_id: str) -> dict[str, Any] | str:
    """Process a finished event once more, as a worker that died before recording its end would."""
    services = build_services(settings)
    try:
        [event] = [e for e in await services.inbox.list(limit=1000) if e.event_id == event_id]
        try:
            return await ACTIONS[event.kind](services, event)
        except Ignored as why:
            return f"ignored: {why}"
    finally:
        await services.aclose()
        services.close()


async def test_a_message_in_bugs_is_filed_once_and_answered_in_its_thread(
    data_dir: Path, slack_linear: tuple[str, SlackState, str, LinearState]
) -> None:
    _, slack, _, linear = slack_linear
    settings = make_settings(data_dir, **bug_sections(slack_linear))
    kept = await keep(
        settings,
        message("1764600000.000100"),
        message("1764600000.000100"),  # Slack's retry of the same event
        message("1764600001.000200", bot_id="B0SOPHIA", subtype="bot_message"),
        message("1764600002.000300", thread_ts="1764600000.000100", text="same here, also broken"),
        message("1764600003.000400", channel="C0RANDOM01"),
        message("1764600004.000500", subtype="message_changed"),
    )
    assert kept == [True, False, True, True, True, True]
    count, events = await drain(settings)
    assert count == 5
    [issue] = linear.issues
    assert (
        issue["identifier"] == "ENG-1"
        and issue["title"] == "owner statements export fails with a 500 since this morning"
    )
    [reply] = slack.messages
    assert reply["channel"] == BUGS and reply["thread_ts"] == "1764600000.000100"
    assert "filed as ENG-1" in reply["text"] and "/issue/ENG-1" in reply["text"] and "<@U0MARIA01>" in reply["text"]
    filed = events[f"{BUGS}/1764600000.000100"]
    assert filed.status == "done" and filed.deliveries == 2 and filed.result is not None
    assert filed.result["issue"] == "ENG-1" and filed.result["reply"] == "delivered"
    reasons = {e.event_id.split("/")[1]: (e.status, (e.result or {}).get("ignored")) for e in events.values()}
    assert reasons["1764600001.000200"] == ("ignored", "a bot's message")
    assert reasons["1764600002.000300"] == ("ignored", "a reply in a thread, not a new report")
    assert reasons["1764600003.000400"] == (
        "ignored",
        "channel C0RANDOM01 is not a bug channel (SOPHIA_BUGS__CHANNELS)",
    )
    assert reasons["1764600004.000500"] == ("ignored", "a message_changed message, not a new one")

    # Processed again (a worker killed before it recorded the end): no second issue, no second reply.
    again = await run_again(settings, f"{BUGS}/1764600000.000100")
    assert isinstance(again, dict) and again["status"] == "already filed" and again["issue"] == "ENG-1"
    assert len(linear.issues) == 1 and len(slack.messages) == 1


async def test_a_linear_state_change_tells_the_reports_thread_once_and_the_poll_not_again(
    data_dir: Path, slack_linear: tuple[str, SlackState, str, LinearState]
) -> None:
    _, slack, _, linear = slack_linear
    settings = make_settings(data_dir, **bug_sections(slack_linear))
    await keep(settings, message("1764600000.000100"))
    await drain(settings)
    [issue] = linear.issues
    before = issue["state_id"]
    linear.move(issue, "In Progress")

    def webhook(delivery: str, action: str = "update", updated_from: dict[str, Any] | None = None) -> Incoming:
        body = {"action": action, "type": "Issue", "url": f"https://linear.app/x/issue/{issue['identifier']}",
                "data": {"id": issue["id"], "identifier": issue["identifier"], "title": issue["title"],
                         "state": {"id": issue["state_id"], "name": "In Progress", "type": "started"}},
                "updatedFrom": {"stateId": before, "updatedAt": "2026-12-01T10:00:00.000Z"} if updated_from is None
                else updated_from, "webhookTimestamp": 1764583200000}  # fmt: skip
        return Incoming("linear", delivery, "linear.issue", body)

    await keep(
        settings,
        webhook("d-1"),
        webhook("d-2"),  # a second delivery (a retry Linear numbered anew): the channel heard it already
        webhook("d-3", updated_from={"title": "old title", "updatedAt": "2026-12-01T10:00:00.000Z"}),
        webhook("d-4", action="create"),
    )
    _, events = await drain(settings)
    # The two deliveries are processed side by side: whichever takes the change tells it, the other hears it is told.
    first, second = sorted((events["d-1"], events["d-2"]), key=lambda e: e.status)
    assert first.status == "done" and first.result == {"issue": "ENG-1", "state": "In Progress", "told": True}
    assert second.result == {"ignored": "its channel has already heard ENG-1 is In Progress"}
    assert events["d-4"].result == {"ignored": "an issue's create that is no change of state"}
    assert events["d-3"].result == {"ignored": "an issue's update that is no change of state"}
    filed, moved = slack.messages
    assert moved["thread_ts"] == filed["thread_ts"] == "1764600000.000100"
    assert "ENG-1" in moved["text"] and moved["text"].endswith("is now In Progress.")

    # The poll, the fallback, finds nothing new to tell; a later change it sees first, the webhook does not repeat.
    services = build_services(settings)
    try:
        assert (await notify_status_changes(services))["state_changes"] == 0
        linear.move(issue, "Done")
        assert (await notify_status_changes(services))["state_changes"] == 1
    finally:
        await services.aclose()
        services.close()
    await keep(settings, webhook("d-5"))
    _, events = await drain(settings)
    assert events["d-5"].result == {"ignored": "its channel has already heard ENG-1 is Done"}
    assert [m["text"].rsplit(" is now ", 1)[-1] for m in slack.messages[1:]] == ["In Progress.", "Done."]
    assert all(m["thread_ts"] == "1764600000.000100" for m in slack.messages)


async def test_a_failing_tracker_retries_the_event_then_gives_up_visibly_and_loses_nothing(
    data_dir: Path, slack_linear: tuple[str, SlackState, str, LinearState]
) -> None:
    _, slack, _, linear = slack_linear
    sections = bug_sections(slack_linear)
    linear.faults = ["500"] * 1000
    # Backing off for an hour: one attempt now, the event waits.
    waiting = make_settings(data_dir, **sections, inbox={"retry_base_s": 3600, "max_attempts": 3})
    await keep(waiting, message("1764600000.000100"))
    count, events = await drain(waiting)
    [event] = events.values()
    assert count == 1 and event.status == "pending" and event.attempts == 1
    assert event.last_error is not None and "tracker could not be reached" in event.last_error
    assert (await drain(waiting))[0] == 0  # not due again yet
    [received] = slack.messages
    assert received["thread_ts"] == "1764600000.000100" and "received" in received["text"]

    # Backing off for a microsecond: every attempt now, until the last; then dead, kept with its error.
    hurried = make_settings(data_dir, **sections, inbox={"retry_base_s": 1e-6, "max_attempts": 3})
    await keep(hurried, message("1764600009.000900"))
    _, events = await drain(hurried)
    dead = events[f"{BUGS}/1764600009.000900"]
    assert dead.status == "dead" and dead.attempts == 3 and "tracker" in (dead.last_error or "")
    assert linear.issues == [] and len(slack.messages) == 2  # each report told once it was received

    # Linear is back: `inbox retry` gives the dead event fresh attempts, `inbox process` files it.
    linear.faults.clear()
    s_url, _, l_url, _ = slack_linear
    env = env_for(
        data_dir, SOPHIA_SLACK__BACKEND="slack", SOPHIA_SLACK__BASE_URL=f"{s_url}/api/",
        SOPHIA_SLACK__BOT_TOKEN=BOT_TOKEN, SOPHIA_LINEAR__BACKEND="linear",
        SOPHIA_LINEAR__BASE_URL=f"{l_url}/graphql", SOPHIA_LINEAR__API_KEY=API_KEY, SOPHIA_LINEAR__TEAM="ENG",
        SOPHIA_LINEAR__MAX_RETRIES="0", SOPHIA_BUGS__CHANNELS='["#bugs"]',
    )  # fmt: skip

    def cli(*args: str) -> Result:  # the CLI runs its own event loop: in a thread beside this test's
        return CliRunner().invoke(app, list(args), env=env, terminal_width=200)

    retried = await anyio.to_thread.run_sync(cli, "inbox", "retry", str(dead.id))
    assert retried.exit_code == 0 and "1 dead event of 1 will be tried again" in retried.output
    processed = await anyio.to_thread.run_sync(cli, "inbox", "process")
    assert processed.exit_code == 0, processed.output
    assert "Processed 1 event; the inbox now holds 1 done, 1 pending." in processed.output
    listed = await anyio.to_thread.run_sync(cli, "inbox", "list", "--status", "done")
    assert listed.exit_code == 0 and "slack.message" in listed.output and "ENG-1" in listed.output
    assert len(linear.issues) == 1
    told = [m for m in slack.messages if m["thread_ts"] == "1764600009.000900"]
    assert [("received" in m["text"], "filed as ENG-1" in m["text"]) for m in told] == [(True, False), (False, True)]


@pytest.fixture
def crm_fakes() -> Iterator[tuple[str, hubspot.HubSpotState, str, apollo.ApolloState]]:
    h_state, a_state = hubspot_state(retry_after="0.05"), apollo_state(retry_after="0.05")
    with serve(hubspot.hubspot_app(h_state)) as h_url, serve(apollo.apollo_app(a_state)) as a_url:
        yield h_url, h_state, a_url, a_state


def contact_event(event_id: int, contact_id: str, kind: str = "contact.creation", **more: Any) -> Incoming:
    """A HubSpot webhook event as the receiver keeps it (one element of the array HubSpot posts)."""
    body = {
        "eventId": event_id, "subscriptionId": 7, "portalId": 62515, "appId": 1160452, "objectId": int(contact_id),
        "occurredAt": 1764583200000, "subscriptionType": kind, "attemptNumber": 0, "changeSource": "CRM_UI", **more,
    }  # fmt: skip
    return Incoming("hubspot", str(event_id), "hubspot.contact", body)


async def test_a_new_hubspot_contact_is_enriched_written_back_once_and_scored(
    data_dir: Path, crm_fakes: tuple[str, hubspot.HubSpotState, str, apollo.ApolloState]
) -> None:
    h_url, h_state, a_url, a_state = crm_fakes
    settings = real_settings(data_dir, hubspot_url=h_url, apollo_url=a_url)
    contact = next(c for c in demo().contacts if c.email and c.title)
    await keep(
        settings,
        contact_event(101, contact.id),
        contact_event(101, contact.id),  # HubSpot's retry
        # Our own write-back comes back as changes: of what enrichment writes, through the API.
        contact_event(
            102,
            contact.id,
            "contact.propertyChange",
            propertyName="sophia_lead_score",
            propertyValue="71.5",
            changeSource="INTEGRATION",
        ),
        contact_event(
            103,
            contact.id,
            "contact.propertyChange",
            propertyName="jobtitle",
            propertyValue="VP Operations",
            changeSource="INTEGRATION",
        ),
        contact_event(104, contact.id, "contact.propertyChange", propertyName="hs_lead_status", propertyValue="OPEN"),
        contact_event(105, contact.id, "contact.deletion"),
    )
    count, events = await drain(settings)
    assert count == 5
    created = events["101"]
    assert created.status == "done" and created.deliveries == 2 and created.result is not None
    assert created.result["status"] == "written" and created.result["matched"] is True
    assert created.result["grade"] in "ABCD" and "sophia_lead_score" not in created.result["written"]
    assert {"lead_score", "lead_grade", "linkedin_url"} <= set(created.result["written"])
    written = [dict(p) for i, p in h_state.updates if i == contact.id]
    assert len(written) == 1 and float(written[0]["sophia_lead_score"]) == created.result["score"]
    assert [(e.status, (e.result or {}).get("ignored")) for e in (events[k] for k in ("102", "103", "104", "105"))] == [
        ("ignored", "sophia_lead_score changed through the API (INTEGRATION): our own write-back"),
        ("ignored", "jobtitle changed through the API (INTEGRATION): our own write-back"),
        ("ignored", "hs_lead_status changed: enrichment does not read it"),
        ("ignored", "a contact.deletion event: only contact.creation, contact.propertyChange, contact.poll start "
                    "enrichment"),
    ]  # fmt: skip
    asked = len(a_state.requests)

    # Again (a worker killed before it recorded the end), and the poll seeing the contact changed by our write:
    # the enricher's answer is reused and nothing needs writing.
    again = await run_again(settings, "101")
    poll = Incoming("hubspot", f"contact:{contact.id}:1764583300000", "hubspot.contact",
                    {"objectId": contact.id, "subscriptionType": "contact.poll", "properties": {}})  # fmt: skip
    await keep(settings, poll)
    _, events = await drain(settings)
    polled = events[poll.event_id].result or {}
    assert isinstance(again, dict) and again["status"] == "unchanged" and again["reused"] is True
    assert polled["status"] == "unchanged" and polled["reused"] is True
    assert len(a_state.requests) == asked and len([1 for i, _ in h_state.updates if i == contact.id]) == 1

    # A person changing the email in HubSpot: enrichment asks about the person anew, once for the change.
    changed = contact_event(106, contact.id, "contact.propertyChange", propertyName="email",
                            propertyValue=contact.email, occurredAt=int(time.time() * 1000))  # fmt: skip
    await keep(settings, changed)
    _, events = await drain(settings)
    assert events["106"].status == "done" and (events["106"].result or {})["reused"] is False
    assert len(a_state.requests) == asked + 1
    again = await run_again(settings, "106")
    assert isinstance(again, dict) and again["reused"] is True and len(a_state.requests) == asked + 1


def unhappy_call() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A call with an unhappy client (Alder Street, its VP liked a competitor's demo) and its transcript."""
    pages = json.loads((EVAL / "gong" / "call_07.json").read_text())
    return copy.deepcopy(pages[0]["calls"][0]), copy.deepcopy(pages[1]["callTranscripts"][0]["transcript"])


async def test_a_gong_call_is_imported_analysed_and_alerted_once(tmp_path: Path) -> None:
    call, transcript = unhappy_call()
    state = GongState(calls=[call], transcripts={call["metaData"]["id"]: transcript})
    data_dir = tmp_path / "data"
    with serve(gong_app(state)) as url:
        gong = {"backend": "gong", "base_url": url, "access_key": ACCESS_KEY, "access_key_secret": ACCESS_SECRET,
                "retry_base_s": 0.01, "rate_per_second": 1000}  # fmt: skip
        settings = make_settings(data_dir, gong=gong)
        event = Incoming("gong", f"call:{call['metaData']['id']}", "gong.call", call)  # as Gong posts it: no transcript
        assert await keep(settings, event, event) == [True, False]
        count, events = await drain(settings)
        again = await run_again(settings, event.event_id)
    result = events[event.event_id].result or {}
    assert count == 1 and events[event.event_id].status == "done"
    assert result["imported"] == "new" and result["at_risk"] is True and result["client_id"]
    assert result["alert"] == f"health-alert:{result['client_id']}:{call['metaData']['id']}"
    # The transcript came from Gong: the analysis read the VP's doubts.
    assert any(path.endswith("/v2/calls/transcript") for path, _ in state.requests)
    assert result["alert_new"] is True and result["alert_status"] == "delivered"
    assert isinstance(again, dict) and again["alert"] == result["alert"] and again["alert_new"] is False
    alerts = Counter(key for key, _ in outbox_rows(data_dir) if key.startswith("health-alert:"))
    assert alerts == {result["alert"]: 1}


async def test_on_the_local_backends_the_reply_keeps_its_thread(data_dir: Path) -> None:
    settings = make_settings(data_dir, bugs={"channels": [BUGS]})
    await keep(settings, message("1764600000.000100"))
    _, events = await drain(settings)
    result = events[f"{BUGS}/1764600000.000100"].result or {}
    assert result["status"] == "filed" and result["issue"].startswith("ENG-")
    async with Client(create_alerts_server(settings)) as client:
        listed = structured(await client.call_tool("list_alerts", {"channel": BUGS}))
    [reply] = listed["alerts"]
    assert reply["key"] == f"bug-filed:bug:slack:{BUGS}/1764600000.000100" and reply["status"] == "delivered"
    assert reply["thread_ts"] == "1764600000.000100" and result["issue"] in reply["text"]


async def test_a_gong_call_carrying_its_transcript_needs_no_gong_backend(tmp_path: Path) -> None:
    call, transcript = unhappy_call()
    settings = make_settings(tmp_path / "data")  # the local call source: the store, which the import fills
    event = Incoming("gong", f"call:{call['metaData']['id']}", "gong.call", call | {"transcript": transcript})
    await keep(settings, event)
    _, events = await drain(settings)
    result = events[event.event_id].result or {}
    assert result["imported"] == "new" and result["at_risk"] is True and result["alert_new"] is True
    async with Client(create_gong_server(settings)) as client:
        kept = structured(await client.call_tool("get_transcript", {"call_id": call["metaData"]["id"]}))
    assert kept["total_sentences"] == sum(len(m["sentences"]) for m in transcript) > 0


async def test_a_thread_reply_whose_answer_was_lost_is_found_in_the_thread_not_posted_again(
    data_dir: Path, slack_linear: tuple[str, SlackState, str, LinearState]
) -> None:
    _, slack, _, linear = slack_linear
    sections = bug_sections(slack_linear)
    sections["slack"] |= {"timeout_s": 1}
    slack.faults = ["lost"]  # Slack posts the reply, then its answer comes after the client gave up
    settings = make_settings(data_dir, **sections, inbox={"retry_base_s": 1e-6, "max_attempts": 3})
    await keep(settings, message("1764600000.000100"))
    _, events = await drain(settings)
    event = events[f"{BUGS}/1764600000.000100"]
    assert event.status == "done" and event.attempts == 2 and (event.result or {})["reply"] == "delivered"
    [reply] = slack.messages
    assert reply["thread_ts"] == "1764600000.000100" and len(linear.issues) == 1
    assert slack.calls.count("chat.postMessage") == 1 and "conversations.replies" in slack.calls


def pull_request(delivery: str, action: str, branch: str, merged: bool = False) -> Incoming:
    pr = {"number": 5, "title": "Fix the export", "body": "", "merged": merged, "draft": False,
          "html_url": "https://github.com/acme/app/pull/5", "head": {"ref": branch}}  # fmt: skip
    return Incoming("github", delivery, "github.pull_request", {"action": action, "pull_request": pr})


def deployment(event_id: str, kind: str, branch: str, target: str | None = "production") -> Incoming:
    body = {"id": event_id, "type": kind, "payload": {"target": target, "deployment": {
        "id": f"dpl_{event_id}", "url": f"{event_id}.vercel.app", "meta": {"githubCommitRef": branch}}}}  # fmt: skip
    return Incoming("vercel", event_id, "vercel.deployment", body)


async def test_a_team_without_in_review_but_with_merged_gets_its_own_states_and_a_failed_deploy_names_the_assignee(
    data_dir: Path, slack_linear: tuple[str, SlackState, str, LinearState]
) -> None:
    _, slack, _, linear = slack_linear
    eng = next(t for t in linear.teams if t["key"] == "ENG")
    linear.states = [s for s in linear.states if not (s["team_id"] == eng["id"] and s["name"] == "In Review")]
    linear.states.append({"id": "state-merged", "name": "Merged", "type": "completed", "team_id": eng["id"]})
    sections = bug_sections(slack_linear)
    sections["bugs"] = {"channels": ["#bugs"], "assignees": ["dana@example.com"]}
    settings = make_settings(data_dir, **sections)
    await keep(settings, message("1764600100.000100"))
    await drain(settings)
    [issue] = linear.issues
    branch = "eng-1-fix-the-export"
    names = {s["id"]: s["name"] for s in linear.states}

    await keep(settings, pull_request("gh-1", "opened", branch))
    await drain(settings)
    assert names[issue["state_id"]] == "In Progress"  # no In Review: the team's started state stands in
    await keep(settings, pull_request("gh-2", "closed", branch, merged=True))
    await drain(settings)
    assert names[issue["state_id"]] == "Merged"
    await keep(settings, deployment("evt_bad", "deployment.error", branch))
    _, events = await drain(settings)
    assert events["evt_bad"].status == "done"
    comments = [c["body"] for c in linear.comments]
    assert comments == ["@dana@example.com: the production deployment failed: https://evt_bad.vercel.app"]

    # Processed again (a worker killed before it recorded the end): nothing moves, is said or commented twice.
    told = len(slack.messages)
    for event_id in ("gh-2", "evt_bad"):
        assert isinstance(await run_again(settings, event_id), dict)
    assert names[issue["state_id"]] == "Merged" and len(linear.comments) == 1 and len(slack.messages) == told
    assert [m["text"].rsplit(" ", 1)[-1] for m in slack.messages[1:]] == ["Progress.", "Merged."]


async def test_the_assignees_take_turns_across_processes_and_none_set_leaves_triage(data_dir: Path) -> None:
    settings = make_settings(
        data_dir, bugs={"channels": ["C0LOCAL"], "assignees": ["pat@example.com", "sam@example.com"]}
    )
    for n in range(3):  # each drain is a process of its own: the turn is in the store
        await keep(settings, message(f"176460020{n}.000100", channel="C0LOCAL", text=f"bug: report {n} is broken"))
        await drain(settings)
    await keep(make_settings(data_dir, bugs={"channels": ["C0LOCAL"]}),
               message("1764600299.000100", channel="C0LOCAL", text="bug: report 9 is broken"))  # fmt: skip
    await drain(make_settings(data_dir, bugs={"channels": ["C0LOCAL"]}))
    services = build_services(settings)
    try:
        found = await services.tracker.search(IssueQuery(text="is broken", limit=10))
    finally:
        services.close()
    by_title = {i.title: i.assignee for i in found.issues}
    assert by_title == {"report 0 is broken": "pat@example.com", "report 1 is broken": "sam@example.com",
                        "report 2 is broken": "pat@example.com", "report 9 is broken": None}  # fmt: skip
