"""The HubSpot and Apollo fakes keep the documented shapes (../shared/apis/hubspot.md, apollo.md) over real HTTP."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from functools import cache
from typing import Any

import httpx
import pytest

from sophia_mcp.demo.calls import generate_demo
from tests.fakes import apollo, hubspot
from tests.fakes.server import serve

HUBSPOT_AUTH = {"Authorization": f"Bearer {hubspot.ACCESS_TOKEN}"}
APOLLO_AUTH = {"X-Api-Key": apollo.API_KEY}  # header names are case-blind, as HTTP's are
CONTACTS = "/crm/v3/objects/contacts"


@cache
def demo() -> Any:
    return generate_demo(date.today())


@pytest.fixture
def hub() -> Iterator[tuple[httpx.Client, hubspot.HubSpotState]]:
    state = hubspot.state_from_demo(demo().clients, demo().contacts, search_per_second=1000)
    with serve(hubspot.hubspot_app(state)) as url, httpx.Client(base_url=url, headers=HUBSPOT_AUTH) as client:
        yield client, state


@pytest.fixture
def apo() -> Iterator[tuple[httpx.Client, apollo.ApolloState]]:
    state = apollo.state_from_demo(demo().clients, demo().contacts)
    with serve(apollo.apollo_app(state)) as url, httpx.Client(base_url=f"{url}/api/v1", headers=APOLLO_AUTH) as c:
        yield c, state


def test_hubspot_refuses_a_bad_token_with_its_error_body(hub: tuple[httpx.Client, hubspot.HubSpotState]) -> None:
    client, _ = hub
    for headers in ({"Authorization": "Bearer wrong"}, {"Authorization": ""}):
        response = client.get(CONTACTS, headers=headers)
        body = response.json()
        assert response.status_code == 401
        assert body["status"] == "error" and body["category"] == "INVALID_AUTHENTICATION"
        assert body["message"] and len(body["correlationId"]) == 36


def test_hubspot_list_pages_through_every_contact_once(hub: tuple[httpx.Client, hubspot.HubSpotState]) -> None:
    client, state = hub
    seen: list[str] = []
    after: str | None = None
    while True:
        params = {"limit": "10", "properties": "email,firstname"} | ({"after": after} if after else {})
        response = client.get(CONTACTS, params=params)
        assert response.status_code == 200
        assert response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        page = response.json()
        assert len(page["results"]) <= 10
        first = page["results"][0]
        assert set(first) == {"id", "properties", "createdAt", "updatedAt", "archived"} and first["archived"] is False
        assert set(first["properties"]) == {"email", "firstname", "hs_object_id", "createdate", "lastmodifieddate"}
        seen += [r["id"] for r in page["results"]]
        if "paging" not in page:
            break
        after = page["paging"]["next"]["after"]
        assert page["paging"]["next"]["link"].startswith("http://127.0.0.1")
    assert seen == sorted(state.contacts, key=int) and len(seen) == len(set(seen)) == len(demo().contacts)
    assert client.get(CONTACTS, params={"limit": "101"}).json()["category"] == "VALIDATION_ERROR"


def test_hubspot_get_by_email_with_associations(hub: tuple[httpx.Client, hubspot.HubSpotState]) -> None:
    client, _ = hub
    contact = demo().contacts[0]
    params = {"idProperty": "email", "properties": "email", "associations": "companies"}
    body = client.get(f"{CONTACTS}/{contact.email.upper()}", params=params).json()
    assert body["id"] == contact.id
    assert body["associations"]["companies"]["results"] == [{"id": contact.client_id, "type": "contact_to_company"}]
    missing = client.get(f"{CONTACTS}/1", params={"properties": "email"})
    assert missing.status_code == 404 and missing.json()["category"] == "OBJECT_NOT_FOUND"
    v4 = client.get(f"/crm/v4/objects/contacts/{contact.id}/associations/companies").json()
    assert v4["results"][0]["toObjectId"] == int(contact.client_id)
    assert v4["results"][0]["associationTypes"][0]["label"] == "Primary"


def test_hubspot_search_with_a_gte_filter_and_query_text(hub: tuple[httpx.Client, hubspot.HubSpotState]) -> None:
    client, state = hub
    contact = demo().contacts[3]
    written = client.patch(f"{CONTACTS}/{contact.id}", json={"properties": {"city": "Reno"}})
    assert written.status_code == 200 and state.updates == [(contact.id, {"city": "Reno"})]
    since = int(datetime.fromisoformat(written.json()["properties"]["lastmodifieddate"]).timestamp() * 1000)
    body = {
        "filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(since)}]}],
        "properties": ["email", "city"],
        "limit": 100,
    }
    response = client.post(f"{CONTACTS}/search", json=body)
    assert response.status_code == 200 and "X-HubSpot-RateLimit-Max" not in response.headers
    found = response.json()
    assert found["total"] == 1 and found["results"][0]["properties"]["city"] == "Reno" and "paging" not in found

    surname = str(contact.last_name)
    by_text = client.post(f"{CONTACTS}/search", json={"query": surname.lower(), "limit": 100}).json()
    expected = {c.id for c in demo().contacts if surname.lower() in f"{c.first_name} {c.last_name} {c.email}".lower()}
    assert {r["id"] for r in by_text["results"]} >= {contact.id} and by_text["total"] >= len(expected) > 0

    ored = {
        "filterGroups": [
            {"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": contact.id}]},
            {"filters": [{"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@nowhere.example"}]},
        ]
    }
    assert [r["id"] for r in client.post(f"{CONTACTS}/search", json=ored).json()["results"]] == [contact.id]
    too_many = {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}] * 7}]}
    assert client.post(f"{CONTACTS}/search", json=too_many).status_code == 400
    assert client.post(f"{CONTACTS}/search", json={"limit": 101}).status_code == 400


def test_hubspot_batch_update_answers_207_for_a_read_only_property(
    hub: tuple[httpx.Client, hubspot.HubSpotState],
) -> None:
    client, state = hub
    first, second = demo().contacts[0].id, demo().contacts[1].id
    inputs = [
        {"id": first, "properties": {"sophia_lead_score": "71"}},
        {"id": second, "properties": {"hubspotscore": "5"}},
        {"id": "99999999999", "properties": {"city": "Nowhere"}},
    ]
    response = client.post(f"{CONTACTS}/batch/update", json={"inputs": inputs})
    body = response.json()
    assert response.status_code == 207
    assert [r["id"] for r in body["results"]] == [first] and state.updates == [(first, {"sophia_lead_score": "71"})]
    by_category = {e["category"]: e for e in body["errors"]}
    assert by_category["VALIDATION_ERROR"]["context"]["propertyName"] == ["hubspotscore"]
    assert "hubspotscore" in by_category["VALIDATION_ERROR"]["message"]
    assert by_category["OBJECT_NOT_FOUND"]["context"]["ids"] == ["99999999999"]
    assert state.contacts[second].get("hubspotscore") is None

    ok = client.post(f"{CONTACTS}/batch/update", json={"inputs": [{"id": second, "properties": {"city": "Reno"}}]})
    assert ok.status_code == 200 and ok.json()["status"] == "COMPLETE"
    patch = client.patch(f"{CONTACTS}/{second}", json={"properties": {"createdate": "1"}})
    assert patch.status_code == 400 and patch.json()["category"] == "VALIDATION_ERROR"
    assert Counter(i for i, _ in state.updates) == {first: 1, second: 1}


def test_hubspot_batches_hold_at_most_100(hub: tuple[httpx.Client, hubspot.HubSpotState]) -> None:
    client, state = hub
    inputs = [{"id": c.id} for c in demo().contacts[:101]]
    for path, body in (("batch/read", {"properties": ["email"], "inputs": inputs}), ("batch/update", {"inputs": [
        {**i, "properties": {"city": "x"}} for i in inputs
    ]})):  # fmt: skip
        response = client.post(f"{CONTACTS}/{path}", json=body)
        assert response.status_code == 400 and response.json()["category"] == "VALIDATION_ERROR"
    assert state.updates == []
    read = client.post(f"{CONTACTS}/batch/read", json={"properties": ["email"], "inputs": [*inputs[:3], {"id": "1"}]})
    assert read.status_code == 207 and len(read.json()["results"]) == 3
    assert read.json()["errors"][0]["context"]["ids"] == ["1"]


def test_hubspot_create_refuses_a_duplicate_email(hub: tuple[httpx.Client, hubspot.HubSpotState]) -> None:
    client, _ = hub
    taken = {"properties": {"email": demo().contacts[0].email.upper(), "firstname": "Dup"}}
    assert client.post(CONTACTS, json=taken).json()["category"] == "CONFLICT"
    created = client.post(CONTACTS, json={"properties": {"email": "new.person@example.com"}})
    assert created.status_code == 201 and created.json()["properties"]["email"] == "new.person@example.com"


def test_hubspot_limits_answer_429_with_retry_after() -> None:
    state = hubspot.state_from_demo(demo().clients, demo().contacts, per_ten_seconds=2, search_per_second=1)
    state.retry_after = "3"
    with serve(hubspot.hubspot_app(state)) as url, httpx.Client(base_url=url, headers=HUBSPOT_AUTH) as client:
        codes = [client.get(CONTACTS).status_code for _ in range(3)]
        throttled = client.get(CONTACTS)
        searches = [client.post(f"{CONTACTS}/search", json={}) for _ in range(2)]
    assert codes == [200, 200, 429] and throttled.headers["Retry-After"] == "3"
    assert throttled.json()["policyName"] == "TEN_SECONDLY_ROLLING" and throttled.json()["category"] == "RATE_LIMITS"
    assert searches[0].status_code == 200 and searches[1].status_code == 429
    assert searches[1].json()["policyName"] == "SECONDLY" and state.throttled == 3


def test_apollo_refuses_a_bad_key(apo: tuple[httpx.Client, apollo.ApolloState]) -> None:
    client, _ = apo
    for headers in ({"x-api-key": "nope"}, {"x-api-key": ""}):
        response = client.post("/people/match", json={"email": demo().contacts[0].email}, headers=headers)
        assert response.status_code == 401 and response.json() == {"error": "Invalid access credentials."}


def test_apollo_bulk_match_is_aligned_with_null_misses(apo: tuple[httpx.Client, apollo.ApolloState]) -> None:
    client, state = apo
    contacts = demo().contacts[:10]
    details: list[dict[str, Any]] = [{"email": c.email.upper()} for c in contacts]
    details[0] = {"first_name": contacts[0].first_name, "last_name": contacts[0].last_name, "domain": "www.x.com"}
    response = client.post("/people/bulk_match", json={"details": details})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success"
    assert response.headers["x-rate-limit-minute"] == "1000" and response.headers["x-minute-requests-left"] == "999"
    matches = body["matches"]
    assert len(matches) == 10 and matches[0] is None  # the wrong domain: no match
    assert matches[6] is None  # the 7th demo contact is one Apollo does not know
    for contact, person in zip(contacts[1:], matches[1:], strict=True):
        if person is not None:
            assert person["email"] == contact.email and person["organization"]["primary_domain"]
            assert len(person["id"]) == 24 and person["linkedin_url"].startswith("http://www.linkedin.com/in/")
    found = sum(m is not None for m in matches)
    assert body["missing_records"] == 10 - found and body["credits_consumed"] == found == state.credits_consumed
    assert body["total_requested_enrichments"] == 10 and body["unique_enriched_records"] == found

    client_domain = next(c.domain for c in demo().clients if c.id == contacts[1].client_id)
    by_name = {"first_name": contacts[1].first_name, "last_name": contacts[1].last_name, "domain": client_domain}
    assert client.post("/people/match", json=by_name).json()["person"]["email"] == contacts[1].email
    assert client.post("/people/match", json={"email": "nobody@example.com"}).json() == {"person": None}


def test_apollo_organizations_and_the_ten_record_limit(apo: tuple[httpx.Client, apollo.ApolloState]) -> None:
    client, _ = apo
    domain = str(demo().clients[0].domain)
    org = client.get("/organizations/enrich", params={"domain": domain}).json()["organization"]
    assert org["primary_domain"] == domain and org["industry"] == org["industry"].lower()
    assert client.get("/organizations/enrich", params={"domain": "unknown.example"}).json() == {"organization": {}}
    bulk = client.post("/organizations/bulk_enrich", json={"domains": [domain, "unknown.example"]}).json()
    assert [o["primary_domain"] for o in bulk["organizations"]] == [domain] and bulk["missing_records"] == 1
    eleven = [{"email": c.email} for c in demo().contacts[:11]]
    too_many = client.post("/people/bulk_match", json={"details": eleven})
    assert too_many.status_code == 422 and "error" in too_many.json()
    assert client.post("/organizations/bulk_enrich", json={"domains": ["a.com"] * 11}).status_code == 422


def test_apollo_bulk_limit_answers_429_with_retry_after() -> None:
    state = apollo.state_from_demo(demo().clients, demo().contacts, bulk_per_minute=1, retry_after="2")
    with serve(apollo.apollo_app(state)) as url, httpx.Client(base_url=f"{url}/api/v1", headers=APOLLO_AUTH) as c:
        details = {"details": [{"email": demo().contacts[0].email}]}
        first, second = (c.post("/people/bulk_match", json=details) for _ in range(2))
        single = c.post("/people/match", json={"email": demo().contacts[0].email})
    assert first.status_code == 200 and second.status_code == 429
    assert second.headers["Retry-After"] == "2" and "rate limit" in second.json()["error"]
    assert single.status_code == 200 and state.throttled == 1
