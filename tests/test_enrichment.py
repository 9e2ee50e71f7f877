"""Enrichment against HubSpot and Apollo (their fakes): batch sizes, a crash and its re-run, partial failures,
and the user's confirmation before a real CRM is written."""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from mcp import Client
from mcp_types import ElicitRequestParams, ElicitResult

from sophia_mcp.app.backends import build_services
from sophia_mcp.app.services import Services
from sophia_mcp.servers.crm import create_server
from sophia_mcp.settings import Settings
from sophia_mcp.workflows.enrichment import enrich_contacts
from tests.fakes import apollo, hubspot
from tests.fakes.server import serve
from tests.support.demo_states import apollo_state, demo, hubspot_state
from tests.support.results import structured, text_of
from tests.support.settings import real_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def fakes() -> Iterator[tuple[str, hubspot.HubSpotState, str, apollo.ApolloState]]:
    h_state, a_state = hubspot_state(retry_after="0.05"), apollo_state(retry_after="0.05")
    with serve(hubspot.hubspot_app(h_state)) as h_url, serve(apollo.apollo_app(a_state)) as a_url:
        yield h_url, h_state, a_url, a_state


def asked_emails(state: apollo.ApolloState, since: int = 0) -> list[str]:
    """Every email Apollo was asked about (from its `since`-th request on), one entry per time asked."""
    out = []
    for path, body in state.requests[since:]:
        out += [d.get("email") for d in body["details"]] if path.endswith("bulk_match") else [body.get("email")]
    return out


def settings_for(data_dir: Path, fakes: tuple[str, Any, str, Any], **more: Any) -> Settings:
    h_url, _, a_url, _ = fakes
    return real_settings(data_dir, hubspot_url=h_url, apollo_url=a_url, **more)


def services_for(data_dir: Path, fakes: tuple[str, Any, str, Any], **more: Any) -> Services:
    return build_services(settings_for(data_dir, fakes, **more))


async def test_every_contact_in_bulk_matches_of_ten_and_batch_writes_of_a_hundred(
    data_dir: Path, fakes: tuple[str, Any, str, Any]
) -> None:
    _, h_state, _, a_state = fakes
    ids = [c.id for c in demo().contacts]
    services = services_for(data_dir, fakes)
    try:
        report = await enrich_contacts(services, ids)
    finally:
        await services.aclose()
        services.close()
    assert report.requested == len(ids) and report.failed == 0 and report.written == len(ids)
    assert report.matched == len(a_state.people)
    # Ten people per request; a lone last one goes to the single match, which Apollo throttles less.
    assert a_state.count("/people/bulk_match") + a_state.count("/people/match") == math.ceil(len(ids) / 10)
    assert all(len(body["details"]) <= 10 for path, body in a_state.requests if path.endswith("bulk_match"))
    assert h_state.count("POST", "/contacts/batch/update") == math.ceil(len(ids) / 100)
    assert h_state.count("POST", "/contacts/batch/read") == math.ceil(len(ids) / 100)
    written = Counter(i for i, _ in h_state.updates)
    assert set(written) == set(ids) and max(written.values()) == 1
    # So many contacts are reported in totals, not a row each.
    assert report.outcomes == [] and report.summary is not None
    assert report.summary.fields_written["linkedin_url"] == report.matched
    assert sum(report.summary.grades.values()) == len(ids)
    best = report.summary.top_leads[0]
    changes = dict(next(p for i, p in h_state.updates if i == best.contact_id))
    assert changes["hs_linkedin_url"].startswith("http://www.linkedin.com/in/")
    assert changes["sophia_lead_score"] == f"{best.score:g}"
    assert "email" not in changes and "firstname" not in changes  # present already: never overwritten by default


async def test_a_crash_midway_then_a_rerun_writes_no_contact_twice_and_asks_no_kept_answer_again(
    data_dir: Path, fakes: tuple[str, Any, str, Any]
) -> None:
    _, h_state, _, a_state = fakes
    ids = [c.id for c in demo().contacts]
    services = services_for(data_dir, fakes)
    real_update = services.crm.update_contacts
    calls = 0

    class Crash(BaseException):
        """The process dying right after HubSpot took a batch, before the ledger heard of it."""

    async def update_then_crash(changes: dict[str, Any]) -> dict[str, str | None]:
        nonlocal calls
        calls += 1
        result = await real_update(changes)
        if calls == 1:
            raise Crash
        return result

    services.crm.update_contacts = update_then_crash  # type: ignore[method-assign]
    try:
        with pytest.raises(BaseExceptionGroup) as caught:
            await enrich_contacts(services, ids)
        assert caught.group_contains(Crash)
    finally:
        await services.aclose()
        services.close()
    written_before = len(h_state.updates)
    assert 0 < written_before < len(ids)
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        kept = {r[0] for r in conn.execute("SELECT contact_id FROM enrichments WHERE person IS NOT NULL")}
    assert kept, "the answers that arrived before the crash were kept"
    asked_before = len(a_state.requests)

    services = services_for(data_dir, fakes)
    try:
        report = await enrich_contacts(services, ids)
    finally:
        await services.aclose()
        services.close()
    written = Counter(i for i, _ in h_state.updates)
    assert set(written) == set(ids) and max(written.values()) == 1
    assert report.failed == 0 and report.unchanged == written_before and report.written == len(ids) - written_before
    # An answer that arrived is never paid for again; only what was in flight when the process died is re-asked.
    emails = {c.id: c.email for c in demo().contacts}
    asked_again = set(asked_emails(a_state, since=asked_before))
    assert asked_again == {emails[i] for i in ids if i not in kept}
    assert report.reused > 0


async def test_a_failing_batch_is_recorded_per_contact_and_the_rest_go_on(
    data_dir: Path, fakes: tuple[str, Any, str, Any]
) -> None:
    _, h_state, _, a_state = fakes
    ids = [c.id for c in demo().contacts[:50]]
    a_state.faults += ["500"]
    services = services_for(data_dir, fakes, apollo={"max_retries": 0, "max_concurrency": 1})
    try:
        report = await enrich_contacts(services, ids)
        rerun = await enrich_contacts(services, ids)
    finally:
        await services.aclose()
        services.close()
    assert report.failed == 10 and report.written == 40
    failures = [o for o in report.outcomes if o.status == "failed"]
    assert all("Apollo" in (o.error or "") for o in failures)
    assert rerun.failed == 0 and rerun.written == 10 and rerun.unchanged == 40
    assert max(Counter(i for i, _ in h_state.updates).values()) == 1


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_user_confirms_before_hubspot_is_written(
    data_dir: Path, fakes: tuple[str, Any, str, Any], mode: Literal["auto", "legacy"]
) -> None:
    _, h_state, _, _ = fakes
    contact_id = demo().contacts[0].id
    asked: list[str] = []
    answer = {"action": "decline"}

    async def elicit(_: Any, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        if answer["action"] == "accept":
            return ElicitResult(action="accept", content={"confirm": True})
        return ElicitResult(action="decline")

    server = create_server(settings_for(data_dir, fakes))
    async with Client(server, mode=mode, elicitation_callback=elicit) as client:
        unknown = await client.call_tool("update_contact", {"contact_id": "99999999999", "changes": {"city": "Reno"}})
        assert unknown.is_error and "No HubSpot contact" in text_of(unknown) and asked == []
        declined = await client.call_tool("update_contact", {"contact_id": contact_id, "changes": {"city": "Reno"}})
        assert declined.is_error and "Nothing was written" in text_of(declined)
        assert h_state.updates == []
        answer["action"] = "accept"
        accepted = structured(
            await client.call_tool("update_contact", {"contact_id": contact_id, "changes": {"city": "Reno"}})
        )
        enriched = structured(await client.call_tool("enrich_contact", {"contact_id": contact_id}))
    assert accepted["city"] == "Reno" and enriched["outcome"]["status"] in ("written", "unchanged")
    assert len(asked) == 3 and "hubspot" in asked[0] and "city" in asked[0]
    assert next(i for i, _ in h_state.updates) == contact_id


async def test_hubspot_refusing_a_property_reaches_the_client_as_a_clear_error(
    data_dir: Path, fakes: tuple[str, Any, str, Any]
) -> None:
    _, h_state, _, _ = fakes
    settings = settings_for(data_dir, fakes)
    mapping = dict(settings.hubspot.contact_properties, city="hs_object_id")
    server = create_server(settings.model_copy(update={"hubspot": settings.hubspot.model_copy(
        update={"contact_properties": mapping, "confirm_writes": False})}))  # fmt: skip
    async with Client(server) as client:
        result = await client.call_tool(
            "update_contact", {"contact_id": demo().contacts[0].id, "changes": {"city": "Reno"}}
        )
    assert result.is_error
    assert "HubSpot refused the change" in text_of(result) and "hs_object_id" in text_of(result)
    assert h_state.updates == []
