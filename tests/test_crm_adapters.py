"""The CRM and Enricher contracts, run against the embedded backends and against the HubSpot and Apollo adapters
pointed at their fakes; plus what only the real services do (auth, 429, 207, read-only properties)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sophia_mcp.app.backends import build_services
from sophia_mcp.domain.crm import ContactQuery
from sophia_mcp.domain.enrich import PersonQuery
from sophia_mcp.domain.times import utcnow
from sophia_mcp.errors import ConfigurationError, InvalidInput, NotFound
from sophia_mcp.ports.crm import CRM
from sophia_mcp.ports.enrich import Enricher
from tests.fakes import apollo, hubspot
from tests.fakes.server import serve
from tests.support.demo_states import apollo_state, demo, hubspot_state
from tests.support.settings import make_settings, real_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def hubspot_fake() -> Iterator[tuple[str, hubspot.HubSpotState]]:
    state = hubspot_state(retry_after="0.05")
    with serve(hubspot.hubspot_app(state)) as url:
        yield url, state


@pytest.fixture
def apollo_fake() -> Iterator[tuple[str, apollo.ApolloState]]:
    state = apollo_state(retry_after="0.05")
    with serve(apollo.apollo_app(state)) as url:
        yield url, state


@pytest.fixture(params=["local", "hubspot"])
async def crm(request: pytest.FixtureRequest, data_dir: Path) -> AsyncIterator[CRM]:
    """The same demo contacts and clients behind either backend."""
    if request.param == "local":
        services = build_services(make_settings(data_dir))
        yield services.crm
        services.close()
        return
    with serve(hubspot.hubspot_app(hubspot_state())) as url:
        services = build_services(real_settings(data_dir, hubspot_url=url))
        yield services.crm
        await services.aclose()
        services.close()


@pytest.fixture(params=["local", "apollo"])
async def enricher(request: pytest.FixtureRequest, data_dir: Path) -> AsyncIterator[Enricher]:
    if request.param == "local":
        services = build_services(make_settings(data_dir))
        yield services.enricher
        services.close()
        return
    with serve(apollo.apollo_app(apollo_state())) as url:
        services = build_services(real_settings(data_dir, apollo_url=url))
        yield services.enricher
        await services.aclose()
        services.close()


# -- the CRM contract -------------------------------------------------------------------------------------


async def test_contract_get_contact_and_unknown_ids(crm: CRM) -> None:
    known = demo().contacts[0]
    contact = await crm.get_contact(known.id)
    assert (contact.id, contact.email, contact.first_name, contact.title) == (
        known.id, known.email, known.first_name, known.title
    )  # fmt: skip
    assert contact.client_id == known.client_id and contact.company
    with pytest.raises(NotFound, match="99999999999"):
        await crm.get_contact("99999999999")
    found = await crm.get_contacts([known.id, "99999999999"])
    assert set(found) == {known.id}


async def test_contract_search_by_client_email_text_and_pages_to_the_end(crm: CRM) -> None:
    data = demo()
    known = data.contacts[3]
    by_client = await crm.search_contacts(ContactQuery(client_id=known.client_id), 100, None)
    assert {c.id for c in by_client.contacts} == {c.id for c in data.contacts if c.client_id == known.client_id}
    by_email = await crm.search_contacts(ContactQuery(email=known.email), 10, None)
    assert [c.id for c in by_email.contacts] == [known.id]
    by_text = await crm.search_contacts(ContactQuery(text=f"{known.first_name} {known.last_name}"), 100, None)
    assert known.id in {c.id for c in by_text.contacts}
    seen: list[str] = []
    cursor = None
    while True:
        page = await crm.search_contacts(ContactQuery(), 40, cursor)
        seen += [c.id for c in page.contacts]
        cursor = page.next_cursor
        if not cursor:
            break
    assert sorted(seen) == sorted(c.id for c in data.contacts)
    recent = await crm.search_contacts(ContactQuery(updated_since=utcnow() + timedelta(days=1)), 10, None)
    assert recent.contacts == []


async def test_contract_updates_write_only_what_is_given(crm: CRM) -> None:
    first, second = demo().contacts[:2]
    updated = await crm.update_contact(first.id, {"city": "Boise", "lead_score": 61.5, "lead_grade": "B"})
    assert (updated.city, updated.lead_score, updated.lead_grade, updated.title) == ("Boise", 61.5, "B", first.title)
    outcome = await crm.update_contacts({second.id: {"seniority": "manager"}, "99999999999": {"city": "Nowhere"}})
    assert outcome[second.id] is None and outcome["99999999999"]
    assert (await crm.get_contact(second.id)).seniority == "manager"
    cleared = await crm.update_contact(first.id, {"city": None})
    assert cleared.city is None
    with pytest.raises(NotFound):
        await crm.update_contact("99999999999", {"city": "Boise"})


async def test_contract_clients(crm: CRM) -> None:
    data = demo()
    known = data.clients[0]
    client = await crm.get_client(known.id)
    assert client is not None and (client.name, client.domain, client.units_managed) == (
        known.name, known.domain, known.units_managed
    )  # fmt: skip
    assert await crm.get_client("0000000001") is None
    assert set(await crm.get_clients([known.id, "0000000001"])) == {known.id}
    named = await crm.list_clients(known.name, 10, None)
    assert known.id in {c.id for c in named.clients}
    seen: list[str] = []
    cursor = None
    while True:
        page = await crm.list_clients(None, 20, cursor)
        seen += [c.id for c in page.clients]
        cursor = page.next_cursor
        if not cursor:
            break
    assert sorted(seen) == sorted(c.id for c in data.clients)


# -- the Enricher contract --------------------------------------------------------------------------------


async def test_contract_match_people_answers_in_order_with_none_for_unknowns(enricher: Enricher) -> None:
    data = demo()
    known = next(c for c in data.contacts if c.email and c.email.endswith(data.firmographics[0].domain or "-"))
    queries = [
        PersonQuery(email=known.email, first_name=known.first_name, last_name=known.last_name, title=known.title),
        PersonQuery(email="nobody@unknown-firm.example"),
    ]
    answers = await enricher.match_people(queries)
    assert len(answers) == 2 and answers[1] is None
    person = answers[0]
    assert person is not None and person.source == enricher.name
    assert person.organization is not None and person.organization.domain == data.firmographics[0].domain
    assert len(await enricher.match_people(queries[:1])) == 1


async def test_contract_organizations_by_domain(enricher: Enricher) -> None:
    domain = demo().firmographics[0].domain or ""
    found = await enricher.organizations([domain, domain.upper(), "unknown-firm.example"])
    assert set(found) == {domain}
    assert found[domain].name and found[domain].employees


# -- what only the real services do ------------------------------------------------------------------------


async def test_hubspot_refusals_name_the_property(data_dir: Path, hubspot_fake: tuple[str, Any]) -> None:
    url, state = hubspot_fake
    contact = demo().contacts[0]
    mapping = dict(make_settings(data_dir).hubspot.contact_properties, linkedin_url="hubspotscore")
    services = build_services(real_settings(data_dir, hubspot_url=url, hubspot={"contact_properties": mapping}))
    try:
        with pytest.raises(InvalidInput, match="hubspotscore"):
            await services.crm.update_contact(contact.id, {"linkedin_url": "http://www.linkedin.com/in/x"})
        outcome = await services.crm.update_contacts(
            {contact.id: {"linkedin_url": "http://www.linkedin.com/in/x"}, demo().contacts[1].id: {"city": "Reno"}}
        )
        assert "hubspotscore" in (outcome[contact.id] or "") and outcome[demo().contacts[1].id] is None
        assert [i for i, _ in state.updates] == [demo().contacts[1].id]
    finally:
        await services.aclose()
        services.close()


async def test_hubspot_bad_token_is_a_configuration_error(data_dir: Path, hubspot_fake: tuple[str, Any]) -> None:
    url, _ = hubspot_fake
    services = build_services(real_settings(data_dir, hubspot_url=url, hubspot={"access_token": "pat-wrong-token"}))
    try:
        with pytest.raises(ConfigurationError, match="HubSpot refused the credentials") as caught:
            await services.crm.get_contact(demo().contacts[0].id)
        assert "pat-wrong-token" not in str(caught.value)
    finally:
        await services.aclose()
        services.close()


async def test_hubspot_and_apollo_429s_are_waited_out(
    data_dir: Path, hubspot_fake: tuple[str, Any], apollo_fake: tuple[str, Any]
) -> None:
    (h_url, h_state), (a_url, a_state) = hubspot_fake, apollo_fake
    h_state.faults += ["429", "429"]
    a_state.faults += ["429"]
    services = build_services(real_settings(data_dir, hubspot_url=h_url, apollo_url=a_url))
    try:
        contact = await services.crm.get_contact(demo().contacts[0].id)
        answers = await services.enricher.match_people([PersonQuery(email=contact.email)])
    finally:
        await services.aclose()
        services.close()
    assert contact.id == demo().contacts[0].id and len(answers) == 1
    assert h_state.faults == [] and a_state.faults == []


async def test_apollo_bulk_match_sends_ten_at_most_and_bad_key_is_reported(
    data_dir: Path, apollo_fake: tuple[str, Any]
) -> None:
    url, state = apollo_fake
    services = build_services(real_settings(data_dir, apollo_url=url))
    try:
        with pytest.raises(ValueError, match="at most 10"):
            await services.enricher.match_people([PersonQuery(email=f"p{i}@x.example") for i in range(11)])
        answers = await services.enricher.match_people([PersonQuery(email=c.email) for c in demo().contacts[:10]])
        assert len(answers) == 10 and state.count("/people/bulk_match") == 1
        assert state.credits_consumed == sum(a is not None for a in answers)
    finally:
        await services.aclose()
        services.close()
    wrong = build_services(real_settings(data_dir, apollo_url=url, apollo={"api_key": "apollo-wrong-key"}))
    try:
        with pytest.raises(ConfigurationError, match="Apollo refused the credentials"):
            await wrong.enricher.match_people([PersonQuery(email="a@b.example")])
    finally:
        await wrong.aclose()
        wrong.close()
