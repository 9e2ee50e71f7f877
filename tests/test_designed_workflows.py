"""Workflows designed from a request in words (issue 21, part 1): drafted by a scripted model through the client's
sampling (both protocol eras) or the OpenAI-compatible fake, dry-run on the demo data, deployed with the user's
yes, and run on their trigger with each side effect exactly once."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams, ElicitResult, TextContent

from sophia_mcp.app.backends import build_services
from sophia_mcp.domain.designed import WorkflowSpec
from sophia_mcp.domain.times import parse_iso
from sophia_mcp.servers.composite import create_server
from sophia_mcp.workflows import designed
from sophia_mcp.workflows.connectors import scan_watched_folder
from sophia_mcp.workflows.events import InboxWorker
from tests.fakes import hubspot
from tests.fakes.openai import API_KEY, OpenAIState, openai_app
from tests.fakes.server import serve
from tests.support.demo_states import hubspot_state
from tests.support.results import structured, text_of
from tests.support.settings import make_settings, real_settings
from tests.support.store_file import set_health

pytestmark = pytest.mark.anyio

WEEKLY = (
    "Every Monday at 9, post the competitors named on 10 or more calls to #competitive-intel and open an issue for each"
)
DAILY = "Every day, alert #competitive-intel about each competitor that 5 or more clients named"
FRIDAY = "Every Friday, open one issue listing the competitors named on more than 20 calls"
CARE = (
    "Every Monday, for clients under 70 health, book a review with their CSM, rescore their contacts in the CRM "
    "and post a dashboard of client health and the workflows to #cs-leads"
)


def spec_of(name: str, trigger: dict[str, str], step: dict[str, Any], actions: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "trigger": trigger, "steps": [step], "actions": actions}


MENTIONS = {"id": "mentions", "use": "competitor_mentions", "days": 3650}
WEEKLY_SPEC = spec_of(
    "weekly-competitors", {"cron": "0 9 * * 1"}, {**MENTIONS, "where": [{"field": "calls", "op": "ge", "value": 10}]},
    [
        {"do": "alert", "rows_of": "mentions", "channel": "#competitive-intel", "title": "Competitors on 10+ calls"},
        {"do": "issue", "rows_of": "mentions", "each": True, "title": "{competitor}: named on {calls} calls"},
    ],
)  # fmt: skip
DAILY_SPEC = spec_of(
    "daily-competitors", {"every": "1d"}, {**MENTIONS, "where": [{"field": "clients", "op": "ge", "value": 5}]},
    [{"do": "alert", "rows_of": "mentions", "each": True, "channel": "#competitive-intel",
      "title": "{competitor}: named by {clients} clients"}],
)  # fmt: skip
FRIDAY_SPEC = spec_of(
    "friday-competitors", {"cron": "0 8 * * 5"}, {**MENTIONS, "where": [{"field": "calls", "op": "gt", "value": 20}]},
    [{"do": "issue", "rows_of": "mentions", "title": "Competitors on more than 20 calls"}],
)  # fmt: skip
CARE_SPEC = spec_of(
    "client-care", {"cron": "0 9 * * 1"}, {"id": "risky", "use": "client_health",
                                           "where": [{"field": "health", "op": "lt", "value": 70}]},
    [{"do": "meeting", "rows_of": "risky", "each": True, "title": "{name}: health review"},
     {"do": "crm_update", "rows_of": "risky", "each": True, "title": "{name}: contacts rescored"},
     {"do": "dashboard", "rows_of": "risky", "channel": "#cs-leads", "title": "Client health and workflows"}],
)  # fmt: skip
AT_RISK = {"c-1": 38.0, "c-2": 55.5, "c-3": 69.9}  # the first three clients by id; the rest healthy
# A first draft naming a step the project does not have: the model is told so and answers again.
WRONG_FIRST = {**WEEKLY_SPEC, "steps": [{"id": "mentions", "use": "competitor_news"}]}


class ScriptedModel:
    """The client's model: for each request, its answers in order; it records every prompt it was sent."""

    def __init__(self, script: dict[str, list[Any]]) -> None:
        self.script = {request: list(answers) for request, answers in script.items()}
        self.prompts: list[str] = []

    async def sample(self, context: Any, params: CreateMessageRequestParams) -> CreateMessageResult:
        prompt = params.messages[0].content.text  # type: ignore[union-attr]
        self.prompts.append(prompt)
        request = next(r for r in self.script if r in prompt)
        answer = self.script[request].pop(0)
        return CreateMessageResult(
            role="assistant", model="client-llm", content=TextContent(type="text", text=json.dumps(answer))
        )

    async def elicit(self, context: Any, params: ElicitRequestParams) -> ElicitResult:
        return ElicitResult(action="accept", content={"confirm": True})


def outbox_keys(data_dir: Path, name: str, occurrence: str = "") -> list[tuple[str, str, str]]:
    """The outbox entries of a designed workflow (of one trigger occurrence)."""
    pattern = f"designed:{name}:v%:{occurrence}%" if occurrence else f"designed:{name}:%"
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        rows = conn.execute("SELECT kind, key, status FROM outbox WHERE key LIKE ? ORDER BY key", (pattern,)).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


async def run_on_trigger(data_dir: Path, name: str) -> list[designed.DesignedRun]:
    """The scheduler's pass at the workflow's next fire time, twice; then that occurrence re-run by hand."""
    services = build_services(make_settings(data_dir))
    try:
        workflow = await designed.get(services, name)
        assert workflow.next_at is not None
        due = parse_iso(workflow.next_at)
        first = [r for r in await designed.run_due(services, due) if r.name == name]
        # A second scheduler at the same moment: that occurrence is claimed already.
        again = [r for r in await designed.run_due(services, due) if r.name == name]
        rerun = await designed.run_designed(services, workflow, first[0].occurrence)
    finally:
        services.close()
    assert len(first) == 1 and again == [] and first[0].occurrence == workflow.next_at
    return [first[0], rerun]


def kinds(effects: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return sorted((e["kind"], e["target"], e["title"]) for e in effects)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_requests_in_words_become_workflows_that_send_once_on_their_trigger(data_dir: Path, mode: str) -> None:
    set_health(data_dir, AT_RISK)
    model = ScriptedModel({WEEKLY: [WRONG_FIRST, WEEKLY_SPEC], DAILY: [DAILY_SPEC], CARE: [CARE_SPEC]})
    server = create_server(make_settings(data_dir))
    async with Client(server, mode=mode, sampling_callback=model.sample, elicitation_callback=model.elicit) as client:
        weekly = structured(await client.call_tool("design_workflow", {"request": WEEKLY}))
        daily = structured(await client.call_tool("design_workflow", {"request": DAILY}))
        care = structured(await client.call_tool("design_workflow", {"request": CARE}))
        assert weekly["attempts"] == 2 and weekly["designed_by"] == "sampling" and daily["attempts"] == 1
        retry = next(p for p in model.prompts if "It was refused" in p)
        assert "step 'competitor_news' does not exist; the steps are at_risk_clients" in retry

        dry = structured(await client.call_tool("dry_run_workflow", {"spec": weekly["spec"]}))
        assert dry["rows"] == {"mentions": 3}
        assert kinds(dry["would_do"]) == [
            ("alert", "#competitive-intel", "Competitors on 10+ calls"),
            ("issue", "CS", "Entrata: named on 10 calls"),
            ("issue", "CS", "RealPage: named on 10 calls"),
            ("issue", "CS", "Yardi: named on 24 calls"),
        ]
        assert "Yardi" in dry["would_do"][0]["text"] and "RealPage" in dry["would_do"][0]["text"]
        daily_dry = structured(await client.call_tool("dry_run_workflow", {"spec": daily["spec"]}))
        care_dry = structured(await client.call_tool("dry_run_workflow", {"spec": care["spec"]}))
        assert outbox_keys(data_dir, "weekly-competitors") == []  # a dry run sends nothing
        assert [e["kind"] for e in care_dry["would_do"]] == ["meeting"] * 3 + ["crm_update"] * 3 + ["dashboard"]
        assert all("@" in e["target"] and e["starts_at"] for e in care_dry["would_do"][:3])  # the CSMs' emails
        rescore = {c: ch for e in care_dry["would_do"] if e["kind"] == "crm_update" for c, ch in e["changes"].items()}
        assert rescore and all(set(ch) <= {"lead_score", "lead_grade"} for ch in rescore.values())
        assert care_dry["would_do"][-1]["target"] == "#cs-leads"
        assert "Panels: health, workflows" in care_dry["would_do"][-1]["text"]

        for spec, request in ((weekly["spec"], WEEKLY), (daily["spec"], DAILY)):
            deployed = structured(await client.call_tool("deploy_workflow", {"spec": spec, "request": request}))
            assert deployed["version"] == 1 and deployed["enabled"]
        again = structured(await client.call_tool("deploy_workflow", {"spec": weekly["spec"], "request": WEEKLY}))
        assert again["version"] == 2
        listed = structured(await client.call_tool("list_workflows", {}))
        assert [w["name"] for w in listed["workflows"]] == ["daily-competitors", "weekly-competitors"]

    for name, dry_effects in (("weekly-competitors", dry["would_do"]), ("daily-competitors", daily_dry["would_do"])):
        first, rerun = await run_on_trigger(data_dir, name)
        assert kinds([e.model_dump() for e in first.done]) == kinds(dry_effects)
        assert first.new == len(first.done) > 0 and rerun.new == 0
        sent = outbox_keys(data_dir, name, first.occurrence)
        assert len(sent) == len(first.done) and {s for _, _, s in sent} == {"delivered"}

    # Deployed once the others have run, so its first Monday is its own occurrence (the scheduler runs all that is due).
    async with Client(create_server(make_settings(data_dir)), mode=mode, elicitation_callback=model.elicit) as client:
        structured(await client.call_tool("deploy_workflow", {"spec": care["spec"], "request": CARE}))
    await care_runs_once(data_dir, care_dry["would_do"], rescore)

    async with Client(create_server(make_settings(data_dir))) as client:
        metrics = json.loads((await client.read_resource("sophia://metrics")).contents[0].text)  # type: ignore[union-attr]
        names = {m["workflow"]: m for m in metrics["workflows"]}
        assert names["designed:weekly-competitors"]["runs"] == 2
        versions = {(d["name"], d["version"]): d for d in metrics["designed"]}
        assert set(versions) == {("client-care", 1), ("daily-competitors", 1), ("weekly-competitors", 2)}
        assert versions[("weekly-competitors", 2)]["runs"] == versions[("weekly-competitors", 2)]["succeeded"] == 2
        board = structured(await client.call_tool("build_dashboard", {"request": "the designed workflows"}))
        page = (await client.read_resource(board["uri"])).contents[0].text  # type: ignore[union-attr]
        assert board["panels"] == ["workflows"] and "<td>weekly-competitors</td><td>2</td><td>2</td>" in page
        off = structured(await client.call_tool("disable_workflow", {"name": "daily-competitors"}))
        assert off["enabled"] is False


async def care_runs_once(data_dir: Path, dry_effects: list[dict[str, Any]], rescore: dict[str, Any]) -> None:
    """The client-care workflow on its trigger: each CSM's meeting booked, each changed contact's score written to
    the CRM and the dashboard built and posted, each once (the re-run of the occurrence makes none of them again)."""
    first, rerun = await run_on_trigger(data_dir, "client-care")
    assert kinds([e.model_dump() for e in first.done]) == kinds(dry_effects)
    assert first.new == len(first.done) == 7 and rerun.new == 0
    services = build_services(make_settings(data_dir))
    try:
        meetings = [e.key for e in first.done if e.kind == "meeting"]
        assert await services.meetings.booked(meetings) == set(meetings)
        contacts = await services.crm.get_contacts(list(rescore))
        written = {i: {k: getattr(contacts[i], k) for k in ch} for i, ch in rescore.items()}
        assert written == rescore  # the CRM holds the scores the dry run showed
    finally:
        services.close()
    sent = outbox_keys(data_dir, "client-care", first.occurrence)
    assert [k for k, _, _ in sent] == ["crm"] * 3 + ["alert"] and {s for _, _, s in sent} == {"delivered"}
    assert len(list((data_dir / "dashboards").glob("dashboard-*.html"))) == 1


async def test_the_configured_model_designs_when_the_client_cannot_sample(data_dir: Path) -> None:
    state = OpenAIState(answers=[json.dumps(FRIDAY_SPEC)])
    with serve(openai_app(state)) as url:
        settings = make_settings(data_dir, openai={"api_key": API_KEY, "base_url": f"{url}/v1", "max_retries": 0})
        async with Client(create_server(settings)) as client:
            friday = structured(await client.call_tool("design_workflow", {"request": FRIDAY}))
            dry = structured(await client.call_tool("dry_run_workflow", {"spec": friday["spec"]}))
            structured(await client.call_tool("deploy_workflow", {"spec": friday["spec"], "request": FRIDAY}))
    assert friday["designed_by"] == "openai" and FRIDAY in state.requests[0]["messages"][-1]["content"]
    assert kinds(dry["would_do"]) == [("issue", "CS", "Competitors on more than 20 calls")]
    assert "Yardi" in dry["would_do"][0]["text"]
    first, rerun = await run_on_trigger(data_dir, "friday-competitors")
    assert first.new == 1 and rerun.new == 0 and len(outbox_keys(data_dir, "friday-competitors")) == 1


NO_SUCH_STEP = "Every day, scrape LinkedIn for our clients' new hires and alert #sales"
WRITE_OUTSIDE = "Every day, delete every contact in the CRM that has no email"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_request_the_project_cannot_do_is_refused_with_the_reason_and_never_deployed(
    data_dir: Path, mode: str
) -> None:
    scrape = {**DAILY_SPEC, "name": "scrape", "steps": [{"id": "hires", "use": "linkedin_scrape"}]}
    delete = {**DAILY_SPEC, "name": "delete", "actions": [
        {"do": "crm_delete_contact", "rows_of": "mentions", "title": "delete"}]}  # fmt: skip
    model = ScriptedModel({NO_SUCH_STEP: [scrape] * 3, WRITE_OUTSIDE: [delete] * 3})
    async with Client(create_server(make_settings(data_dir)), mode=mode, sampling_callback=model.sample) as client:
        step = await client.call_tool("design_workflow", {"request": NO_SUCH_STEP})
        write = await client.call_tool("design_workflow", {"request": WRITE_OUTSIDE})
        forced = await client.call_tool("deploy_workflow", {"spec": delete, "request": WRITE_OUTSIDE})
        listed = structured(await client.call_tool("list_workflows", {}))
    assert step.is_error and "No valid workflow after 3 answers" in text_of(step)
    assert "step 'linkedin_scrape' does not exist; the steps are at_risk_clients" in text_of(step)
    assert write.is_error and "action 'crm_delete_contact' is not one of the project's actions" in text_of(write)
    assert forced.is_error and "nothing was deployed" in text_of(forced)
    assert listed["workflows"] == [] and len(model.prompts) == 6


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_deploy_the_user_declines_is_not_deployed(data_dir: Path, mode: str) -> None:
    async def decline(context: Any, params: ElicitRequestParams) -> ElicitResult:
        assert "weekly-competitors" in params.message  # type: ignore[union-attr]
        return ElicitResult(action="decline")

    async with Client(create_server(make_settings(data_dir)), mode=mode, elicitation_callback=decline) as client:
        refused = await client.call_tool("deploy_workflow", {"spec": WEEKLY_SPEC, "request": WEEKLY})
        listed = structured(await client.call_tool("list_workflows", {}))
    assert refused.is_error and "the user did not confirm" in text_of(refused) and listed["workflows"] == []


async def test_a_title_with_a_format_spec_or_attribute_is_refused_not_formatted(data_dir: Path) -> None:
    """A title may name a row's field and nothing more: a huge width or an attribute walk is refused by validation."""
    action = DAILY_SPEC["actions"][0]
    async with Client(create_server(make_settings(data_dir))) as client:
        for title in ("{competitor:>999999999}", "{competitor.__class__}"):
            spec = {**DAILY_SPEC, "actions": [{**action, "title": title}]}
            result = await client.call_tool("dry_run_workflow", {"spec": spec})
            assert result.is_error and "it may name the fields of mentions" in text_of(result)


NOTE_FILED = "When a note lands in the watched folder, alert #competitive-intel about each competitor on 20+ calls"
NOTE_SPEC = spec_of(
    "note-competitors", {"event": "folder.file"}, {**MENTIONS, "where": [{"field": "calls", "op": "ge", "value": 20}]},
    [{"do": "alert", "rows_of": "mentions", "each": True, "channel": "#competitive-intel",
      "title": "{competitor}: named on {calls} calls"}],
)  # fmt: skip


async def test_an_event_triggered_workflow_runs_once_per_event_the_inbox_worker_handles(
    data_dir: Path, tmp_path: Path
) -> None:
    """A workflow on `folder.file`: the watched folder's connector keeps an event per new or changed file, the inbox
    worker handles each (the built-in action ingests the file, then the designed workflow runs), and an event
    handled again (redelivered) sends nothing twice."""
    watched = tmp_path / "watched"
    watched.mkdir()
    settings = make_settings(data_dir, knowledge={"roots": [str(tmp_path)], "watch": str(watched)})
    model = ScriptedModel({NOTE_FILED: [NOTE_SPEC]})
    async with Client(create_server(settings), sampling_callback=model.sample) as client:
        spec = structured(await client.call_tool("design_workflow", {"request": NOTE_FILED}))["spec"]
        deployed = structured(await client.call_tool("deploy_workflow", {"spec": spec, "request": NOTE_FILED}))
    assert deployed["next_at"] is None  # an event-triggered one never runs on the scheduler's clock

    services = build_services(settings)
    try:
        worker = InboxWorker(services)
        note = watched / "yardi.md"
        note.write_text("# Yardi\n\nYardi bundles screening with its accounting suite.\n")
        await scan_watched_folder(services)
        await scan_watched_folder(services)  # the same file unchanged: no second event
        assert await worker.drain() == 1
        note.write_text("# Yardi\n\nYardi now bundles screening and payments.\n")
        await scan_watched_folder(services)
        assert await worker.drain() == 1
        events = await services.inbox.list(limit=10)
        # The first event handled again, as when its lease ran out mid-way and another worker took it: a new run of
        # the same occurrence, which sends nothing new.
        again = await designed.run_for_event(services, "folder.file", events[-1].id)
        rerun = await services.runs.get(again["designed"]["note-competitors"])
        outcomes = [(await services.inbox.get(e.id)) for e in events]
    finally:
        services.close()
    assert [o.status for o in outcomes if o] == ["done", "done"]
    assert rerun is not None and rerun.status == "succeeded" and rerun.subject == f"event-{events[-1].id}"
    assert all("note-competitors" in (o.result or {}).get("designed", {}) for o in outcomes if o)
    per_event = {e.id: outbox_keys(data_dir, "note-competitors", f"event-{e.id}") for e in events}
    assert [len(sent) for sent in per_event.values()] == [1, 1]  # Yardi, once per event, the redelivery included
    assert {status for sent in per_event.values() for _, _, status in sent} == {"delivered"}


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ({"do": "meeting", "each": True, "title": "{competitor}"}, "meeting is about clients: rows_of must be a step"),
        ({"do": "crm_update", "title": "rescore"}, "crm_update is about clients"),
        ({"do": "dashboard", "each": True, "title": "{competitor}"}, "a dashboard is built once per run"),
        ({"do": "crm_write", "title": "set the lifecycle stage"}, "action 'crm_write' is not one of the project's"),
    ],
)
async def test_an_action_its_rows_cannot_take_is_refused_with_the_reason(
    data_dir: Path, action: dict[str, Any], expected: str
) -> None:
    """A meeting or a CRM write needs clients to be about; a dashboard is one per run; no other CRM write exists."""
    spec = {**DAILY_SPEC, "actions": [{"rows_of": "mentions", **action}]}
    async with Client(create_server(make_settings(data_dir))) as client:
        dry = await client.call_tool("dry_run_workflow", {"spec": spec})
        deploy = await client.call_tool("deploy_workflow", {"spec": spec, "request": "a request of ten letters"})
    assert dry.is_error and expected in text_of(dry)
    assert deploy.is_error and "nothing was deployed" in text_of(deploy)


async def test_a_crm_update_writes_each_changed_contact_to_hubspot_once(data_dir: Path) -> None:
    """With the CRM on the HubSpot fake, a run's CRM write is the project's own batch update of the lead score and
    grade, once per contact however often the occurrence is run."""
    set_health(data_dir, AT_RISK)
    state = hubspot_state()
    spec = WorkflowSpec.model_validate({**CARE_SPEC, "actions": [CARE_SPEC["actions"][1]]})
    with serve(hubspot.hubspot_app(state)) as url:
        services = build_services(real_settings(data_dir, hubspot_url=url))
        try:
            dry = await designed.dry_run(services, spec)
            workflow = await designed.deploy(services, spec, CARE)
            runs = [await designed.run_designed(services, workflow, "2026-12-07T09:00:00.000Z") for _ in range(2)]
        finally:
            services.close()
    planned = {c: ch for e in dry.would_do for c, ch in (e.changes or {}).items()}
    assert planned and [e.target for e in dry.would_do] == ["hubspot"] * len(dry.would_do)
    assert sorted(c for c, _ in state.updates) == sorted(planned)  # each changed contact written once
    assert {p for _, props in state.updates for p in props} <= {"sophia_lead_score", "sophia_lead_grade"}
    assert runs[0].new == len(dry.would_do) and runs[1].new == 0
