"""The workflows start themselves, end to end: signed provider requests to the real composite server over HTTP on
127.0.0.1, processed by the worker it runs beside uvicorn, acting on the fakes of Slack, Linear, HubSpot, Apollo
and Gong. Each event is delivered three times, as the providers retry; each acts once."""

from __future__ import annotations

import copy
import json
import shutil
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.fakes import apollo, hubspot
from tests.fakes.gong import ACCESS_KEY, ACCESS_SECRET, GongState, gong_app
from tests.fakes.linear import API_KEY, LinearState, linear_app
from tests.fakes.server import serve
from tests.fakes.slack import BOT_TOKEN, SlackState, slack_app
from tests.support.demo_states import apollo_state, demo, hubspot_state
from tests.support.exports import EVAL
from tests.support.processes import http_server
from tests.support.store_file import outbox_rows
from tests.support.webhooks import (
    GongKey,
    encode,
    github_headers,
    github_pull_request,
    gong_headers,
    hubspot_event,
    hubspot_headers,
    linear_headers,
    secrets_env,
    slack_headers,
    slack_message,
    vercel_deployment,
    vercel_headers,
)

BUGS = "C0BUGS0001"  # #bugs in the Slack fake
FAST = {"RETRY_BASE_S": "0.01", "RATE_PER_SECOND": "1000", "MAX_RETRIES": "0"}


def section(name: str, **values: str) -> dict[str, str]:
    return {f"SOPHIA_{name}__{key}": value for key, value in values.items()}


def bug_path_env(gong: GongKey, slack_url: str, linear_url: str) -> dict[str, str]:
    """Every receiver's secret, Slack and Linear on their fakes, and #bugs as the channel bug reports come in."""
    return (
        secrets_env(gong)
        | section("SLACK", BACKEND="slack", BASE_URL=f"{slack_url}/api/", BOT_TOKEN=BOT_TOKEN, **FAST)
        | section("LINEAR", BACKEND="linear", BASE_URL=f"{linear_url}/graphql", API_KEY=API_KEY, TEAM="ENG", **FAST)
        | {"SOPHIA_BUGS__CHANNELS": '["#bugs"]'}
    )


@contextmanager
def composite(demo_template: Path, tmp_path: Path, **env: str) -> Iterator[tuple[str, Path, httpx.Client]]:
    """The composite server over Streamable HTTP on the demo's data, with every receiver's secret."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(demo_template / "sophia.db", data_dir / "sophia.db")
    with http_server(data_dir, "http", server="composite", **env) as base, httpx.Client(timeout=30) as http:
        yield base, data_dir, http


def settled(data_dir: Path, finished: int, timeout_s: float = 90) -> dict[str, str]:
    """Wait until the server's worker has finished `finished` events (done, ignored or dead); each event's state
    by its id. The worker runs in the server process: the test can only watch the store."""
    deadline = time.monotonic() + timeout_s
    while True:
        with sqlite3.connect(data_dir / "sophia.db") as conn:
            states = dict(conn.execute("SELECT event_id, status FROM inbox").fetchall())
        if sum(s in ("done", "ignored", "dead") for s in states.values()) >= finished:
            return states
        assert time.monotonic() < deadline, f"the worker did not finish: {states}"
        time.sleep(0.05)


def test_a_slack_bug_report_opens_one_issue_replied_in_its_thread_and_its_state_change_is_told_once(
    demo_template: Path, tmp_path: Path
) -> None:
    slack, linear, gong = SlackState(), LinearState(), GongKey.generate()
    with serve(slack_app(slack)) as s_url, serve(linear_app(linear)) as l_url:
        env = bug_path_env(gong, s_url, l_url)
        with composite(demo_template, tmp_path, **env) as (base, data_dir, http):
            ts = f"{time.time():.6f}"
            body = encode(slack_message(BUGS, ts, "bug: owner statements export fails with a 500 since this morning"))
            answers = [http.post(f"{base}/hooks/slack", content=body, headers=slack_headers(body, retry=n))
                       for n in range(3)]  # fmt: skip
            assert [a.status_code for a in answers] == [200, 200, 200]
            assert settled(data_dir, 1) == {f"{BUGS}/{ts}": "done"}
            [issue] = linear.issues
            [reply] = slack.messages
            assert reply["channel"] == BUGS and reply["thread_ts"] == ts and issue["identifier"] in reply["text"]

            # The issue moves in Linear, whose webhook says so (twice: a retry): the report's thread hears it once.
            before = issue["state_id"]
            started = linear.move(issue, "In Progress")
            change = encode({
                "action": "update", "type": "Issue", "url": f"https://linear.app/acme/issue/{issue['identifier']}",
                "data": {"id": issue["id"], "identifier": issue["identifier"], "title": issue["title"],
                         "state": {"id": started["id"], "name": "In Progress", "type": "started"}},
                "updatedFrom": {"stateId": before, "updatedAt": "2026-12-01T10:00:00.000Z"},
                "webhookTimestamp": int(time.time() * 1000), "webhookId": "hook-1",
            })  # fmt: skip
            for delivery in ("delivery-1", "delivery-1", "delivery-2"):
                assert http.post(f"{base}/hooks/linear", content=change,
                                 headers=linear_headers(change, delivery)).status_code == 200  # fmt: skip
            settled(data_dir, 3)
    assert len(linear.issues) == 1
    filed, moved = slack.messages
    assert filed == reply and moved["thread_ts"] == ts and moved["text"].endswith("is now In Progress.")


def test_a_new_hubspot_contact_is_enriched_written_back_once_and_scored(demo_template: Path, tmp_path: Path) -> None:
    h_state, a_state = hubspot_state(retry_after="0.05"), apollo_state(retry_after="0.05")
    contact = next(c for c in demo().contacts if c.email and c.title)
    with serve(hubspot.hubspot_app(h_state)) as h_url, serve(apollo.apollo_app(a_state)) as a_url:
        env = (
            secrets_env(GongKey.generate())
            | section("HUBSPOT", BACKEND="hubspot", BASE_URL=h_url, ACCESS_TOKEN=hubspot.ACCESS_TOKEN,
                      SEARCH_PER_SECOND="1000", **FAST)
            | section("APOLLO", BACKEND="apollo", BASE_URL=f"{a_url}{apollo.PREFIX}", API_KEY=apollo.API_KEY,
                      BULK_PER_MINUTE="60000", **FAST)
        )  # fmt: skip
        with composite(demo_template, tmp_path, **env) as (base, data_dir, http):
            url = f"{base}/hooks/hubspot"
            for attempt in range(3):  # HubSpot retries with the same eventId, counting attempts
                body = encode([hubspot_event(9001, int(contact.id), attempt=attempt)])
                assert http.post(url, content=body, headers=hubspot_headers(url, body)).status_code == 200
            assert settled(data_dir, 1) == {"9001": "done"}
    written = [dict(p) for i, p in h_state.updates if i == contact.id]
    assert len(written) == 1 and "sophia_lead_score" in written[0] and written[0].get("sophia_lead_grade")
    assert a_state.requests, "the contact was not enriched"


def test_a_gong_call_is_analysed_and_one_alert_raised(demo_template: Path, tmp_path: Path) -> None:
    pages = json.loads((EVAL / "gong" / "call_07.json").read_text())  # Alder Street, unhappy, eyeing a competitor
    call = copy.deepcopy(pages[0]["calls"][0])
    transcript = copy.deepcopy(pages[1]["callTranscripts"][0]["transcript"])
    state, key = GongState(calls=[call], transcripts={call["metaData"]["id"]: transcript}), GongKey.generate()
    with serve(gong_app(state)) as g_url:
        env = secrets_env(key) | section(
            "GONG", BACKEND="gong", BASE_URL=g_url, ACCESS_KEY=ACCESS_KEY, ACCESS_KEY_SECRET=ACCESS_SECRET, **FAST
        )
        with composite(demo_template, tmp_path, **env) as (base, data_dir, http):
            url = f"{base}/hooks/gong"
            body = encode({"callData": call, "isTest": False})
            for _ in range(3):
                assert http.post(url, content=body, headers=gong_headers(key, url, body)).status_code == 200
            assert settled(data_dir, 1) == {f"call:{call['metaData']['id']}": "done"}
    alerts = Counter(
        k for k, _ in outbox_rows(data_dir) if k.startswith("health-alert:") and call["metaData"]["id"] in k
    )
    assert list(alerts.values()) == [1], alerts


def _state_name(linear: LinearState, issue: dict[str, object]) -> str:
    return str(next(s["name"] for s in linear.states if s["id"] == issue["state_id"]))


def test_a_bug_goes_its_whole_path_assigned_reviewed_merged_and_live_each_step_once(
    demo_template: Path, tmp_path: Path
) -> None:
    slack, linear, gong = SlackState(), LinearState(), GongKey.generate()
    away = {"id": "user-away", "name": "Ari Away", "email": "ari@example.com", "active": False}
    linear.users.append(away)
    with serve(slack_app(slack)) as s_url, serve(linear_app(linear)) as l_url:
        env = bug_path_env(gong, s_url, l_url) | {"SOPHIA_BUGS__ASSIGNEES": '["ari@example.com", "dana@example.com"]'}
        with composite(demo_template, tmp_path, **env) as (base, data_dir, http):

            def post(provider: str, body: bytes, headers: dict[str, str]) -> None:
                answer = http.post(f"{base}/hooks/{provider}", content=body, headers=headers)
                assert answer.status_code == 200, answer.text

            ts = f"{time.time():.6f}"
            report = encode(slack_message(BUGS, ts, "bug: owner statements export fails with a 500"))
            post("slack", report, slack_headers(report))
            settled(data_dir, 1)
            [issue] = linear.issues
            dana = next(u for u in linear.users if u["email"] == "dana@example.com")
            assert issue["assignee_id"] == dana["id"]  # Ari is away (deactivated in Linear): skipped
            branch = f"{str(issue['identifier']).lower()}-fix-statements-export"

            opened = encode(github_pull_request("opened", branch))
            for _ in range(2):  # redelivered by hand: the same X-GitHub-Delivery
                post("github", opened, github_headers(opened, "gh-delivery-1"))
            settled(data_dir, 2)
            assert _state_name(linear, issue) == "In Review"
            merged = encode(github_pull_request("closed", branch, merged=True))
            post("github", merged, github_headers(merged, "gh-delivery-2"))
            settled(data_dir, 3)
            assert _state_name(linear, issue) == "Done"

            live = encode(vercel_deployment("evt_live1", branch))
            for _ in range(2):
                post("vercel", live, vercel_headers(live))
            preview = encode(vercel_deployment("evt_prev1", branch, target=None))
            post("vercel", preview, vercel_headers(preview))
            other = encode(github_pull_request("opened", "eng-999-someone-elses-work", number=7))
            post("github", other, github_headers(other, "gh-delivery-3"))
            states = settled(data_dir, 6)
            # Every delivery again, after the fact: nothing moves back, nothing is said twice.
            post("github", opened, github_headers(opened, "gh-delivery-1"))
            post("vercel", live, vercel_headers(live))
            assert settled(data_dir, 6) == states
            assert states["gh-delivery-3"] == "ignored"
    assert _state_name(linear, issue) == "Done"
    assert [a["url"] for a in linear.attachments] == ["https://github.com/acme/app/pull/42"]
    bodies = [c["body"] for c in linear.comments if c["issue_id"] == issue["id"]]
    assert bodies == ["Deployed to production: https://app-evt_live1.vercel.app",
                      "Preview deployed: https://app-evt_prev1.vercel.app"]  # fmt: skip
    texts = [m["text"] for m in slack.messages]
    assert all(m["thread_ts"] == ts for m in slack.messages)
    assert "assigned to dana@example.com" in texts[0]
    assert [t.rsplit(" ", 1)[-1] for t in texts[1:3]] == ["Review.", "Done."]
    assert len(texts) == 4 and "is live: https://app-evt_live1.vercel.app" in texts[3]
    mutations = [r["query"].split("(")[0] for r in linear.requests if r["query"].startswith("mutation")]
    assert Counter(mutations) == Counter({
        "mutation IssueCreate": 1, "mutation IssueUpdate": 2, "mutation AttachmentCreate": 2,
        "mutation CommentCreate": 2,
    })  # fmt: skip


def test_on_the_local_tracker_bugs_take_turns_and_a_merged_pull_request_and_its_deployment_act_once(
    demo_template: Path, tmp_path: Path
) -> None:
    env = secrets_env(GongKey.generate()) | {
        "SOPHIA_BUGS__CHANNELS": '["C0LOCAL"]', "SOPHIA_BUGS__ASSIGNEES": '["pat@example.com", "sam@example.com"]',
    }  # fmt: skip
    with composite(demo_template, tmp_path, **env) as (base, data_dir, http):

        def post(provider: str, body: bytes, headers: dict[str, str]) -> None:
            assert http.post(f"{base}/hooks/{provider}", content=body, headers=headers).status_code == 200

        first, second = f"{time.time():.6f}", f"{time.time() + 1:.6f}"
        for ts, text in ((first, "bug: the rent ledger export fails"), (second, "bug: login page typo")):
            report = encode(slack_message("C0LOCAL", ts, text))
            post("slack", report, slack_headers(report))
        settled(data_dir, 2)
        with sqlite3.connect(data_dir / "sophia.db") as conn:
            issues = conn.execute("SELECT id, identifier, assignee FROM tracker_issues ORDER BY identifier").fetchall()
        by_assignee = {assignee: (issue_id, identifier) for issue_id, identifier, assignee in issues[-2:]}
        assert set(by_assignee) == {"pat@example.com", "sam@example.com"}  # one each, in turn
        issue_id, identifier = by_assignee["pat@example.com"]
        branch = f"{identifier.lower()}-fix-ledger-export"
        for n, pr in enumerate([github_pull_request("opened", branch),
                                github_pull_request("closed", branch, merged=True)]):  # fmt: skip
            body = encode(pr)
            for _ in range(2):
                post("github", body, github_headers(body, f"gh-local-{n}"))
            settled(data_dir, 3 + n)
        live = encode(vercel_deployment("evt_local", branch))
        post("vercel", live, vercel_headers(live))
        post("vercel", live, vercel_headers(live))
        settled(data_dir, 5)
        with sqlite3.connect(data_dir / "sophia.db") as conn:
            state = conn.execute("SELECT state FROM tracker_issues WHERE id = ?", (issue_id,)).fetchone()[0]
            links = conn.execute("SELECT url FROM tracker_links WHERE issue_id = ?", (issue_id,)).fetchall()
            comments = conn.execute("SELECT body FROM tracker_comments WHERE issue_id = ?", (issue_id,)).fetchall()
    assert state == "Done"
    assert links == [("https://github.com/acme/app/pull/42",)]
    assert comments == [("Deployed to production: https://app-evt_local.vercel.app",)]
    said = Counter(key.split(":")[0] for key, _ in outbox_rows(data_dir) if f"C0LOCAL/{first}" in key)
    assert said == Counter({"bug": 1, "bug-filed": 1, "bug-state": 2, "bug-live": 1})  # the issue, then messages
