"""The scheduled health monitor: once per client per period however often it runs, nothing lost or doubled when
Slack or Linear is down, and invites that are valid iCalendar."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from icalendar import Calendar
from mcp import Client

from sophia_mcp.app.backends import build_services
from sophia_mcp.domain.incidents import Diagnosis, Incident, Remediation
from sophia_mcp.domain.times import utcnow
from sophia_mcp.servers.alerts import create_server
from sophia_mcp.settings import Settings, load_settings
from sophia_mcp.workflows.delivery import send_all, sent_at_once
from sophia_mcp.workflows.health_monitor import BATCH
from tests.fakes.linear import API_KEY, LinearState, linear_app
from tests.fakes.server import serve
from tests.fakes.slack import BOT_TOKEN, SlackState, slack_app
from tests.support.cli import invoke
from tests.support.processes import SCRIPT, env_for
from tests.support.results import structured
from tests.support.settings import make_settings
from tests.support.store_file import StoreSQL, set_health, sqlite_only

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from health_monitor import seed

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("demo_store")]
AT_RISK = {"c-low-1": 38.0, "c-low-2": 55.5, "c-low-3": 69.9}


def counts(db: StoreSQL) -> dict[str, int]:
    return {
        "meetings": db.value("SELECT count(*) FROM meetings"),
        "issues": db.value("SELECT count(*) FROM outbox WHERE kind = 'issue'"),
        "alerts": db.value("SELECT count(*) FROM outbox WHERE key LIKE 'health-monitor:%'"),
    }


async def test_three_runs_open_each_issue_meeting_and_alert_once(data_dir: Path, demo_store: StoreSQL) -> None:
    set_health(demo_store, AT_RISK)
    async with Client(create_server(make_settings(data_dir))) as client:
        runs = [structured(await client.call_tool("run_health_monitor", {})) for _ in range(3)]
        issues = structured(await client.call_tool("list_alerts", {"channel": "#client-health"}))
    first, second, third = runs
    assert first["at_risk"] == 3 and first["healthy"] == first["clients"] - 3
    assert (first["new_issues"], first["new_meetings"], first["new_alerts"], first["pending"]) == (3, 3, 3, 0)
    for later in (second, third):
        assert (later["new_issues"], later["new_meetings"], later["new_alerts"]) == (0, 0, 0)
        assert later["period"] == first["period"] and not any(r["first_this_period"] for r in later["worst"])
    assert [r["score"] for r in first["worst"]] == [38.0, 55.5, 69.9]
    assert all(r["issue"].startswith("CS-") and r["meeting_uid"] for r in first["worst"])
    assert counts(demo_store) == {"meetings": 3, "issues": 3, "alerts": 3}
    assert len(issues["alerts"]) == 3


async def test_the_invite_is_an_icalendar_request_to_the_csm(data_dir: Path, demo_store: StoreSQL) -> None:
    set_health(demo_store, {"c-low-1": 40.0})
    async with Client(create_server(make_settings(data_dir))) as client:
        report = structured(await client.call_tool("run_health_monitor", {}))
        alerts = structured(await client.call_tool("list_alerts", {"channel": "#client-health"}))
        invite = await client.read_resource(f"meetings://{report['worst'][0]['meeting_uid']}")
        whole = json.loads((await client.read_resource(alerts["alerts"][0]["uri"])).contents[0].text)  # type: ignore[union-attr]
    assert alerts["alerts"][0]["attachments"] == [{"filename": "health-review.ics", "mime_type": "text/calendar"}]
    assert invite.contents[0].text == whole["payload"]["attachments"][0]["content"]  # type: ignore[union-attr]
    [attachment] = whole["payload"]["attachments"]
    calendar = Calendar.from_ical(attachment["content"])
    [event] = calendar.walk("VEVENT")
    csm = demo_store.value("SELECT csm_email FROM clients WHERE id = ?", (report["worst"][0]["client_id"],))
    assert calendar["METHOD"] == "REQUEST" and attachment["mime_type"] == "text/calendar"
    assert str(event["UID"]) == report["worst"][0]["meeting_uid"]
    assert [str(a) for a in (event["ATTENDEE"] if isinstance(event["ATTENDEE"], list) else [event["ATTENDEE"]])] == [
        f"mailto:{csm}"
    ]
    assert event.decoded("DTEND") > event.decoded("DTSTART")


@pytest.fixture
def services_down() -> Iterator[tuple[str, SlackState, str, LinearState]]:
    slack, linear = SlackState(retry_after="0"), LinearState()
    with serve(slack_app(slack)) as slack_url, serve(linear_app(linear)) as linear_url:
        yield slack_url, slack, linear_url, linear


def on_services(data_dir: Path, slack_url: str, linear_url: str) -> Settings:
    # The services fail by answering 500, not by being slow: a timeout long enough that a loaded machine's slow
    # answer is not taken for a failure (at 1 s the test failed once, at load 8).
    return make_settings(
        data_dir,
        slack={"backend": "slack", "base_url": f"{slack_url}/api/", "bot_token": BOT_TOKEN, "timeout_s": 10},
        linear={"backend": "linear", "base_url": f"{linear_url}/graphql", "api_key": API_KEY, "team": "CS",
                "timeout_s": 10, "max_retries": 0},
    )  # fmt: skip


async def test_slack_and_linear_down_lose_nothing_and_double_nothing(
    data_dir: Path, demo_store: StoreSQL, services_down: tuple[str, SlackState, str, LinearState]
) -> None:
    slack_url, slack, linear_url, linear = services_down
    set_health(demo_store, AT_RISK)
    settings = on_services(data_dir, slack_url, linear_url)
    slack.faults = ["500"] * 3
    linear.faults = ["500"] * 3
    async with Client(create_server(settings)) as client:
        down = structured(await client.call_tool("run_health_monitor", {}))
        back = structured(await client.call_tool("run_health_monitor", {}))
        again = structured(await client.call_tool("run_health_monitor", {}))
    assert down["pending"] == 6 and down["new_issues"] == 3
    assert back["pending"] == 0 and back["new_issues"] == 0 and again["pending"] == 0
    assert sorted(i["title"].split(":")[0] for i in linear.issues) == sorted(r["name"] for r in back["worst"])
    assert len(slack.posted_to("C0HEALTH01")) == 3
    assert all(r["issue"] and r["issue"].startswith("CS-") for r in back["worst"])


async def test_the_report_says_what_the_outbox_recorded_when_slack_is_down(
    data_dir: Path, demo_store: StoreSQL, services_down: tuple[str, SlackState, str, LinearState]
) -> None:
    slack_url, slack, linear_url, _ = services_down
    set_health(demo_store, AT_RISK)
    slack.faults = ["500"] * 3
    async with Client(create_server(on_services(data_dir, slack_url, linear_url))) as client:
        report = structured(await client.call_tool("run_health_monitor", {}))
    recorded = dict(demo_store.rows("SELECT key, status FROM outbox"))
    issues = dict(demo_store.rows("SELECT key, external_ref FROM outbox WHERE kind = 'issue'"))
    for row in report["worst"]:
        issue_key, alert_key = (
            f"health-issue:{row['client_id']}:{report['period']}",
            f"health-monitor:{row['client_id']}:{report['period']}",
        )
        assert (
            (row["issue_status"], row["alert_status"])
            == (recorded[issue_key], recorded[alert_key])
            == ("delivered", "pending")
        )
        assert row["issue"] == issues[issue_key] and row["issue"].startswith("CS-")
    assert report["pending"] == 3


def test_only_what_goes_into_the_store_itself_is_kept_claimed_and_sent_at_once(
    data_dir: Path, services_down: tuple[str, SlackState, str, LinearState]
) -> None:
    # A real service's entries are claimed as they are sent, a batch at a time: a batch of hundreds kept claimed
    # and then paced out to Slack could outlive its claim's lease and be taken again by another process.
    slack_url, _, linear_url, _ = services_down
    local, remote = (
        build_services(make_settings(data_dir)),
        build_services(on_services(data_dir, slack_url, linear_url)),
    )
    try:
        assert sent_at_once(local) == {"issue", "alert"} and sent_at_once(remote) == set()
    finally:
        local.close()
        remote.close()


async def test_send_all_returns_what_it_recorded(data_dir: Path, demo_store: StoreSQL) -> None:
    services = build_services(make_settings(data_dir))
    try:
        kept = await services.outbox.enqueue_many(
            "alert", [(f"drill:{n}", "#random", {"key": f"drill:{n}", "channel": "#random", "title": "t", "text": "x"})
                      for n in range(3)],
        )  # fmt: skip
        outcomes = await send_all(services, [entry_id for entry_id, _ in kept])
        entries = {e.id: e for e in await services.outbox.entries([entry_id for entry_id, _ in kept])}
        again = await send_all(services, [entry_id for entry_id, _ in kept])
    finally:
        services.close()
    assert sorted(i for i, _, _ in outcomes) == sorted(entries) and again == []
    assert all(entries[i].status == "delivered" and entries[i].external_ref == ref and error is None
               for i, ref, error in outcomes)  # fmt: skip


async def test_what_an_incident_holds_is_kept_pending_by_the_monitor_and_sent_once_when_it_closes(
    data_dir: Path, demo_store: StoreSQL
) -> None:
    set_health(demo_store, AT_RISK)
    settings = make_settings(data_dir)
    services = build_services(settings)
    now = utcnow()
    try:
        incident, _ = await services.incidents.open(
            Incident(
                id=0, workflow="health_monitor", step="book, keep and send", cause="unavailable", service="local",
                status="open", error_rate=1.0,
                diagnosis=Diagnosis(runs=1, failures=1, examples=["down"], first_seen=now, last_seen=now),
                remediations=[Remediation(action="hold_side_effects", target="local", detail="held", applied_at=now)],
                issue_key=None, summary=None, opened_at=now, updated_at=now, closed_at=None,
            )
        )  # fmt: skip
        async with Client(create_server(settings)) as client:
            held = structured(await client.call_tool("run_health_monitor", {}))
        kept = demo_store.rows("SELECT kind, status, attempts FROM outbox WHERE key LIKE 'health-%' ORDER BY kind")
        created = demo_store.value("SELECT count(*) FROM tracker_issues")
        await services.incidents.save(incident.model_copy(update={"status": "closed", "closed_at": utcnow()}))
        async with Client(create_server(settings)) as client:
            back = structured(await client.call_tool("run_health_monitor", {}))
    finally:
        services.close()
    # Held: kept, neither claimed nor sent; once the incident closes, the next pass sends each once.
    assert (held["new_issues"], held["new_alerts"], held["pending"]) == (3, 3, 6) and created == 0
    assert kept == [("alert", "pending", 0)] * 3 + [("issue", "pending", 0)] * 3
    assert (back["new_issues"], back["new_alerts"], back["pending"]) == (0, 0, 0)
    assert (
        demo_store.rows("SELECT kind, status, attempts FROM outbox WHERE key LIKE 'health-%' ORDER BY kind")
        == [("alert", "delivered", 1)] * 3 + [("issue", "delivered", 1)] * 3
    )
    assert demo_store.value("SELECT count(*) FROM tracker_issues") == 3


def test_run_health_monitor_from_the_command_line(data_dir: Path, demo_store: StoreSQL) -> None:
    set_health(demo_store, AT_RISK)
    code, out = invoke(data_dir, "run", "health-monitor")
    assert code == 0, out
    assert "3 under 70" in out and "New this run: 3 issues, 3 meeting requests, 3 alerts" in out
    code, again = invoke(data_dir, "run", "health-monitor")
    assert code == 0 and "New this run: 0 issues, 0 meeting requests, 0 alerts" in again


async def test_alerts_are_listed_without_the_issues_and_the_meetings_booked_are_listed_too(
    data_dir: Path, demo_store: StoreSQL
) -> None:
    set_health(demo_store, AT_RISK)
    first_at_risk = demo_store.value("SELECT id FROM clients ORDER BY id LIMIT 1")
    async with Client(create_server(make_settings(data_dir))) as client:
        structured(await client.call_tool("run_health_monitor", {}))
        alerts = structured(await client.call_tool("list_alerts", {"limit": 200}))["alerts"]
        page = structured(await client.call_tool("list_meetings", {"limit": 2}))
        rest = structured(await client.call_tool("list_meetings", {"limit": 2, "cursor": page["next_cursor"]}))
        theirs = structured(await client.call_tool("list_meetings", {"client_id": first_at_risk}))["meetings"]
        none_yet = structured(await client.call_tool("list_meetings", {"from_date": "2999-01-01"}))["meetings"]
        invite = await client.read_resource(page["meetings"][0]["uri"])
    assert counts(demo_store) == {"meetings": 3, "issues": 3, "alerts": 3}
    assert [a["key"].split(":")[0] for a in alerts] == ["health-monitor"] * 3
    listed = page["meetings"] + rest["meetings"]
    assert len(listed) == 3 and len({m["uid"] for m in listed}) == 3 and rest["next_cursor"] is None
    assert [m["starts_at"] for m in listed] == sorted((m["starts_at"] for m in listed), reverse=True)
    assert len(theirs) == 1 and f":{first_at_risk}:" in theirs[0]["key"] and none_yet == []
    assert all(m["attendees"] and m["uri"] == f"meetings://{m['uid']}" for m in listed)
    assert invite.contents[0].text.startswith("BEGIN:VCALENDAR")  # type: ignore[union-attr]


@sqlite_only  # a fresh SQLite file, failed by a trigger of SQLite's own
def test_a_pass_that_dies_between_creating_issues_and_recording_them_is_finished_once_by_the_next(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "fresh"  # not the demo's copy (the fixture's `data`)
    services = build_services(load_settings(data_dir=data_dir))
    try:
        seed(services, 2000, 0.25)  # about 500 at risk: issues and alerts claimed and sent a batch at a time
    finally:
        services.close()
    db = data_dir / "sophia.db"
    with sqlite3.connect(db) as conn:
        at_risk = conn.execute("SELECT count(*) FROM client_health WHERE score < 70").fetchone()[0]
        # The store fails once some issues are recorded: the next batch's issues are in the tracker, their outbox
        # entries still say "sending", and the rest of the pass never runs.
        conn.execute(
            """
            CREATE TRIGGER dies_midway BEFORE UPDATE OF status ON outbox
            WHEN NEW.status = 'delivered' AND (SELECT count(*) FROM outbox WHERE status = 'delivered') >= 250
            BEGIN SELECT RAISE(FAIL, 'the disk went away'); END
            """
        )
    code, out = invoke_process(data_dir)
    assert code != 0
    with sqlite3.connect(db) as conn:
        created = conn.execute("SELECT count(*) FROM tracker_issues").fetchone()[0]
        sending = conn.execute("SELECT count(*) FROM outbox WHERE status = 'sending'").fetchone()[0]
        conn.execute("DROP TRIGGER dies_midway")
    assert 250 < created < at_risk and sending > 0, (created, sending, at_risk)

    code, out = invoke_process(data_dir)
    assert code == 0, out
    with sqlite3.connect(db) as conn:
        issues = conn.execute("SELECT count(*), count(DISTINCT title) FROM tracker_issues").fetchone()
        keys = conn.execute("SELECT count(*), count(DISTINCT issue_id) FROM issue_keys").fetchone()
        meetings = conn.execute("SELECT count(*) FROM meetings").fetchone()[0]
        sent = conn.execute("SELECT kind, count(*) FROM outbox WHERE status = 'delivered' GROUP BY kind").fetchall()
        undelivered = conn.execute("SELECT count(*) FROM outbox WHERE status != 'delivered'").fetchone()[0]
        runs = [r[0] for r in conn.execute("SELECT status FROM workflow_runs ORDER BY started_at")]
    assert issues == (at_risk, at_risk) and keys == (at_risk, at_risk) and meetings == at_risk
    assert dict(sent) == {"alert": at_risk, "issue": at_risk} and undelivered == 0
    assert runs == ["failed", "succeeded"]


@sqlite_only  # a fresh SQLite file, failed by a trigger of SQLite's own
def test_a_pass_that_fails_after_its_first_batch_has_sent_the_worst_clients_theirs(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh"
    services = build_services(load_settings(data_dir=data_dir))
    try:
        seed(services, 3 * BATCH, 0.5)  # about 1.5 batches at risk
    finally:
        services.close()
    db = data_dir / "sophia.db"
    with sqlite3.connect(db) as conn:
        at_risk = conn.execute("SELECT count(*) FROM client_health WHERE score < 70").fetchone()[0]
        worst = conn.execute("SELECT client_id FROM client_health WHERE score < 70 ORDER BY score LIMIT ?", (BATCH,))
        worst_ids = sorted(row[0] for row in worst)
        # The store takes the first batch's issues and alerts, then nothing more.
        conn.execute(
            f"""
            CREATE TRIGGER full_after_one_batch BEFORE INSERT ON outbox
            WHEN (SELECT count(*) FROM outbox) >= {2 * BATCH} BEGIN SELECT RAISE(FAIL, 'the disk went away'); END
            """
        )
    code, out = invoke(data_dir, "run", "health-monitor")
    assert code != 0 and at_risk > BATCH, out
    with sqlite3.connect(db) as conn:
        sent = conn.execute("SELECT kind, key FROM outbox WHERE status = 'delivered'").fetchall()
        conn.execute("DROP TRIGGER full_after_one_batch")
    for kind in ("issue", "alert"):
        assert sorted(key.split(":")[1] for k, key in sent if k == kind) == worst_ids

    code, out = invoke(data_dir, "run", "health-monitor")
    assert code == 0, out
    with sqlite3.connect(db) as conn:
        issues = conn.execute("SELECT count(*), count(DISTINCT title) FROM tracker_issues").fetchone()
        sent_now = conn.execute("SELECT kind, count(*) FROM outbox WHERE status = 'delivered' GROUP BY kind").fetchall()
    assert issues == (at_risk, at_risk) and dict(sent_now) == {"alert": at_risk, "issue": at_risk}


def invoke_process(data_dir: Path) -> tuple[int, str]:
    """`sophia-mcp run health-monitor` as its own process: one that fails leaves its claims to the next."""
    done = subprocess.run([SCRIPT, "run", "health-monitor"], env=env_for(data_dir), capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    return done.returncode, done.stdout + done.stderr


async def test_an_invite_with_awkward_names_reads_back_as_icalendar_writes_it(
    data_dir: Path, demo_store: StoreSQL
) -> None:
    set_health(demo_store, {"c-low-1": 40.0})
    name = "Ünïcødé Property Group; Lofts, Towers & Co \\ North: a name long enough to fold more than once"
    first = demo_store.value("SELECT id FROM clients ORDER BY id LIMIT 1")
    demo_store.execute("UPDATE clients SET name = ?, csm_name = ? WHERE id = ?", (name, "Zoë O'Brien, Jr", first))
    async with Client(create_server(make_settings(data_dir))) as client:
        report = structured(await client.call_tool("run_health_monitor", {}))
        invite = await client.read_resource(f"meetings://{report['worst'][0]['meeting_uid']}")
    text = invite.contents[0].text  # type: ignore[union-attr]
    calendar = Calendar.from_ical(text)
    [event] = calendar.walk("VEVENT")
    assert calendar.to_ical().decode() == text  # byte for byte what icalendar itself writes
    assert str(event["SUMMARY"]) == f"{name}: health review" and name in str(event["DESCRIPTION"])
    assert event["ATTENDEE"].params["CN"] == "Zoë O'Brien, Jr"
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
