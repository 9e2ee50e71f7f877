"""The webhook receivers through the real HTTP server on 127.0.0.1, with requests signed exactly as each provider
signs them: a good signature is kept (once, however often it is delivered); a forged one, a replay past the
timestamp window and a body changed after signing are refused with 401 and nothing is kept."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.cli import invoke
from tests.support.processes import http_server
from tests.support.webhooks import (
    HUBSPOT_SECRET,
    SLACK_SECRET,
    GongKey,
    encode,
    github_headers,
    github_pull_request,
    gong_call,
    gong_headers,
    hooks_server,
    hubspot_event,
    hubspot_headers,
    kept,
    linear_headers,
    linear_issue_update,
    secrets_env,
    slack_headers,
    slack_message,
    vercel_deployment,
    vercel_headers,
)

TOKEN = "mcp-bearer-token-for-the-webhook-tests-0123"
STALE_S = 6 * 60


@dataclass
class Hooks:
    base: str
    data_dir: Path
    gong: GongKey
    http: httpx.Client

    def post(self, provider: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return self.http.post(f"{self.base}/hooks/{provider}", content=body, headers=headers)

    def url(self, provider: str) -> str:
        return f"{self.base}/hooks/{provider}"


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory, demo_template: Path) -> Iterator[Hooks]:
    """The composite server over Streamable HTTP with every provider's secret set, a bearer token on /mcp, and a
    low per-client rate (60 a minute) that a provider's burst must not meet."""
    data_dir = tmp_path_factory.mktemp("hooks") / "data"
    data_dir.mkdir()
    shutil.copy(demo_template / "sophia.db", data_dir / "sophia.db")
    gong = GongKey.generate()
    env = secrets_env(gong) | {"SOPHIA_HTTP__BEARER_TOKEN": TOKEN, "SOPHIA_HTTP__RATE_PER_MINUTE": "60"}
    with http_server(data_dir, "http", server="composite", **env) as base, httpx.Client(timeout=30) as http:
        yield Hooks(base, data_dir, gong, http)


def _ts() -> str:
    """A fresh Slack message ts, so every test's events are its own."""
    return f"{time.time():.6f}{uuid.uuid4().int % 10}"


def _kept_ids(hooks: Hooks, source: str) -> dict[str, int]:
    return {k.event_id: k.deliveries for k in kept(hooks.data_dir, source)}


# -- Slack -----------------------------------------------------------------------------------------------------


def test_slack_url_verification_is_answered_with_its_challenge(hooks: Hooks) -> None:
    body = encode(
        {"type": "url_verification", "token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    )
    answer = hooks.post("slack", body, slack_headers(body))
    assert answer.status_code == 200
    assert answer.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


def test_a_signed_slack_message_is_kept_by_channel_and_ts_without_the_mcp_token(hooks: Hooks) -> None:
    ts = _ts()
    body = encode(slack_message("C0BUGS", ts))
    answer = hooks.post("slack", body, slack_headers(body))
    assert answer.status_code == 200, answer.text
    [event] = [k for k in kept(hooks.data_dir, "slack") if k.event_id == f"C0BUGS/{ts}"]
    assert (event.kind, event.deliveries) == ("slack.message", 1)
    assert event.payload["text"] == "the export button does nothing"
    assert (event.payload["team_id"], event.payload["event_id"]) == ("T0TEAM", f"Ev{ts.replace('.', '')}")
    # /mcp beside it still wants its token.
    assert hooks.http.post(f"{hooks.base}/mcp", json={}).status_code == 401


def test_a_forged_slack_signature_is_refused_and_nothing_kept(hooks: Hooks) -> None:
    ts = _ts()
    body = encode(slack_message("C0BUGS", ts))
    answer = hooks.post("slack", body, slack_headers(body, secret="not-the-signing-secret"))
    assert (answer.status_code, answer.text) == (401, "refused: bad X-Slack-Signature")
    unsigned = hooks.post("slack", body, {"Content-Type": "application/json"})
    assert unsigned.status_code == 401
    assert f"C0BUGS/{ts}" not in _kept_ids(hooks, "slack")


def test_a_slack_request_replayed_after_five_minutes_is_refused(hooks: Hooks) -> None:
    ts = _ts()
    body = encode(slack_message("C0BUGS", ts))
    answer = hooks.post("slack", body, slack_headers(body, at=time.time() - STALE_S))
    assert answer.status_code == 401
    assert "X-Slack-Request-Timestamp" in answer.text
    assert f"C0BUGS/{ts}" not in _kept_ids(hooks, "slack")


def test_a_slack_body_changed_after_signing_is_refused(hooks: Hooks) -> None:
    ts = _ts()
    signed = encode(slack_message("C0BUGS", ts))
    changed = encode(slack_message("C0BUGS", ts, text="wire the money to account 42"))
    answer = hooks.post("slack", changed, slack_headers(signed))
    assert answer.status_code == 401
    assert f"C0BUGS/{ts}" not in _kept_ids(hooks, "slack")


def test_slack_retrying_a_message_three_times_keeps_it_once(hooks: Hooks) -> None:
    ts = _ts()
    body = encode(slack_message("C0BUGS", ts))
    statuses = [hooks.post("slack", body, slack_headers(body, retry=n)).status_code for n in (0, 1, 2)]
    assert statuses == [200, 200, 200]
    assert _kept_ids(hooks, "slack")[f"C0BUGS/{ts}"] == 3


def test_slack_events_no_action_takes_are_acknowledged_and_not_kept(hooks: Hooks) -> None:
    before = len(kept(hooks.data_dir, "slack"))
    body = encode({"type": "event_callback", "team_id": "T0TEAM", "event_id": "EvREACT",
                   "event": {"type": "reaction_added", "user": "U1", "reaction": "eyes"}})  # fmt: skip
    assert hooks.post("slack", body, slack_headers(body)).status_code == 200
    assert len(kept(hooks.data_dir, "slack")) == before


def test_a_providers_burst_is_not_refused_by_the_per_client_rate(hooks: Hooks) -> None:
    # 60 a minute lets a client burst 6; Slack delivering 30 messages at once gets every one kept.
    stamps = [_ts() for _ in range(30)]
    bodies = [encode(slack_message("C0BURST", ts)) for ts in stamps]
    statuses = [hooks.post("slack", body, slack_headers(body)).status_code for body in bodies]
    assert statuses == [200] * 30
    ids = _kept_ids(hooks, "slack")
    assert all(f"C0BURST/{ts}" in ids for ts in stamps)


def test_a_rebinding_host_is_refused_before_any_signature_is_checked(hooks: Hooks) -> None:
    body = encode(slack_message("C0BUGS", _ts()))
    answer = hooks.post("slack", body, slack_headers(body) | {"Host": "evil.example.com"})
    assert answer.status_code == 421


def test_a_body_over_the_size_cap_is_refused_before_it_is_checked_or_kept(hooks: Hooks) -> None:
    ts = _ts()
    body = encode(slack_message("C0BUGS", ts, text="x" * (5 * 1024 * 1024)))  # the cap is 4 MB
    answer = hooks.post("slack", body, slack_headers(body))
    assert answer.status_code == 413
    assert f"C0BUGS/{ts}" not in _kept_ids(hooks, "slack")


# -- HubSpot ---------------------------------------------------------------------------------------------------


def _event_ids(n: int) -> list[int]:
    first = uuid.uuid4().int % 10**12
    return list(range(first, first + n))


def test_a_signed_hubspot_batch_keeps_its_contact_events_in_one_delivery(hooks: Hooks) -> None:
    created, changed, deleted = _event_ids(3)
    events = [hubspot_event(created, 101), hubspot_event(changed, 102, kind="contact.propertyChange"),
              hubspot_event(deleted, 103, kind="contact.deletion")]  # fmt: skip
    body = encode(events)
    answer = hooks.post("hubspot", body, hubspot_headers(hooks.url("hubspot"), body))
    assert answer.status_code == 200, answer.text
    assert answer.json()["kept"] == 2
    ids = _kept_ids(hooks, "hubspot")
    assert (ids.get(str(created)), ids.get(str(changed)), str(deleted) in ids) == (1, 1, False)
    [event] = [k for k in kept(hooks.data_dir, "hubspot") if k.event_id == str(created)]
    assert (event.kind, event.payload["objectId"]) == ("hubspot.contact", 101)


def test_a_forged_hubspot_signature_is_refused_and_nothing_kept(hooks: Hooks) -> None:
    [event_id] = _event_ids(1)
    body = encode([hubspot_event(event_id, 101)])
    answer = hooks.post("hubspot", body, hubspot_headers(hooks.url("hubspot"), body, secret="another-apps-secret"))
    assert (answer.status_code, answer.text) == (401, "refused: bad X-HubSpot-Signature-v3")
    assert str(event_id) not in _kept_ids(hooks, "hubspot")


def test_a_hubspot_signature_for_another_url_is_refused(hooks: Hooks) -> None:
    [event_id] = _event_ids(1)
    body = encode([hubspot_event(event_id, 101)])
    answer = hooks.post("hubspot", body, hubspot_headers("https://attacker.example.com/hooks/hubspot", body))
    assert answer.status_code == 401
    assert str(event_id) not in _kept_ids(hooks, "hubspot")


def test_a_hubspot_request_replayed_after_five_minutes_is_refused(hooks: Hooks) -> None:
    [event_id] = _event_ids(1)
    body = encode([hubspot_event(event_id, 101)])
    answer = hooks.post("hubspot", body, hubspot_headers(hooks.url("hubspot"), body, at=time.time() - STALE_S))
    assert answer.status_code == 401
    assert "X-HubSpot-Request-Timestamp" in answer.text
    assert str(event_id) not in _kept_ids(hooks, "hubspot")


def test_a_hubspot_body_changed_after_signing_is_refused(hooks: Hooks) -> None:
    [event_id] = _event_ids(1)
    signed = encode([hubspot_event(event_id, 101)])
    changed = encode([hubspot_event(event_id, 999)])
    answer = hooks.post("hubspot", changed, hubspot_headers(hooks.url("hubspot"), signed))
    assert answer.status_code == 401
    assert str(event_id) not in _kept_ids(hooks, "hubspot")


def test_hubspot_retrying_an_event_three_times_keeps_it_once(hooks: Hooks) -> None:
    [event_id] = _event_ids(1)
    for attempt in range(3):
        body = encode([hubspot_event(event_id, 101, attempt=attempt)])
        assert hooks.post("hubspot", body, hubspot_headers(hooks.url("hubspot"), body)).status_code == 200
    assert _kept_ids(hooks, "hubspot")[str(event_id)] == 3


# -- Linear ----------------------------------------------------------------------------------------------------


def test_a_signed_linear_issue_update_is_kept_by_its_delivery(hooks: Hooks) -> None:
    delivery = str(uuid.uuid4())
    body = encode(linear_issue_update("issue-1"))
    answer = hooks.post("linear", body, linear_headers(body, delivery))
    assert answer.status_code == 200, answer.text
    [event] = [k for k in kept(hooks.data_dir, "linear") if k.event_id == delivery]
    assert (event.kind, event.payload["updatedFrom"]["stateId"]) == ("linear.issue", "state-Todo")


def test_a_forged_linear_signature_is_refused_and_nothing_kept(hooks: Hooks) -> None:
    delivery = str(uuid.uuid4())
    body = encode(linear_issue_update("issue-1"))
    answer = hooks.post("linear", body, linear_headers(body, delivery, secret="another-webhooks-secret"))
    assert (answer.status_code, answer.text) == (401, "refused: bad Linear-Signature")
    assert delivery not in _kept_ids(hooks, "linear")


def test_a_linear_delivery_replayed_after_five_minutes_is_refused(hooks: Hooks) -> None:
    delivery = str(uuid.uuid4())
    body = encode(linear_issue_update("issue-1", at=time.time() - STALE_S))
    answer = hooks.post("linear", body, linear_headers(body, delivery))
    assert answer.status_code == 401
    assert "webhookTimestamp" in answer.text
    assert delivery not in _kept_ids(hooks, "linear")


def test_a_linear_body_changed_after_signing_is_refused(hooks: Hooks) -> None:
    delivery = str(uuid.uuid4())
    signed = encode(linear_issue_update("issue-1"))
    changed = encode(linear_issue_update("issue-1", state="Canceled"))
    answer = hooks.post("linear", changed, linear_headers(signed, delivery))
    assert answer.status_code == 401
    assert delivery not in _kept_ids(hooks, "linear")


def test_linear_delivering_the_same_webhook_three_times_keeps_it_once(hooks: Hooks) -> None:
    delivery = str(uuid.uuid4())
    body = encode(linear_issue_update("issue-1"))
    assert [hooks.post("linear", body, linear_headers(body, delivery)).status_code for _ in range(3)] == [200] * 3
    assert _kept_ids(hooks, "linear")[delivery] == 3


# -- Gong ------------------------------------------------------------------------------------------------------


def _call_id() -> str:
    return str(uuid.uuid4().int % 10**18)


def test_a_gong_call_signed_by_the_rules_key_is_kept_by_its_id(hooks: Hooks) -> None:
    call_id = _call_id()
    body = encode(gong_call(call_id))
    answer = hooks.post("gong", body, gong_headers(hooks.gong, hooks.url("gong"), body))
    assert answer.status_code == 200, answer.text
    [event] = [k for k in kept(hooks.data_dir, "gong") if k.event_id == f"call:{call_id}"]
    assert (event.kind, event.payload["metaData"]["id"]) == ("gong.call", call_id)


def test_a_gong_jwt_signed_by_another_key_is_refused_and_nothing_kept(hooks: Hooks) -> None:
    call_id = _call_id()
    body = encode(gong_call(call_id))
    answer = hooks.post("gong", body, gong_headers(GongKey.generate(), hooks.url("gong"), body))
    assert answer.status_code == 401
    assert "bad JWT" in answer.text
    assert f"call:{call_id}" not in _kept_ids(hooks, "gong")


def test_an_expired_gong_jwt_is_refused(hooks: Hooks) -> None:
    call_id = _call_id()
    body = encode(gong_call(call_id))
    answer = hooks.post("gong", body, gong_headers(hooks.gong, hooks.url("gong"), body, at=time.time() - STALE_S))
    assert (answer.status_code, answer.text) == (401, "refused: the JWT has expired")
    assert f"call:{call_id}" not in _kept_ids(hooks, "gong")


def test_a_gong_body_changed_after_signing_is_refused(hooks: Hooks) -> None:
    call_id = _call_id()
    signed = encode(gong_call(call_id))
    changed = encode(gong_call(_call_id()))
    answer = hooks.post("gong", changed, gong_headers(hooks.gong, hooks.url("gong"), signed))
    assert answer.status_code == 401
    assert "body_sha256" in answer.text
    assert f"call:{call_id}" not in _kept_ids(hooks, "gong")


def test_a_gong_jwt_signed_for_another_url_is_refused(hooks: Hooks) -> None:
    call_id = _call_id()
    body = encode(gong_call(call_id))
    answer = hooks.post("gong", body, gong_headers(hooks.gong, "https://other.example.com/hooks/gong", body))
    assert answer.status_code == 401
    assert "webhook_url" in answer.text
    assert f"call:{call_id}" not in _kept_ids(hooks, "gong")


def test_gong_delivering_a_call_three_times_keeps_it_once_and_test_calls_never(hooks: Hooks) -> None:
    call_id, test_id = _call_id(), _call_id()
    for _ in range(3):
        body = encode(gong_call(call_id))
        assert hooks.post("gong", body, gong_headers(hooks.gong, hooks.url("gong"), body)).status_code == 200
    body = encode(gong_call(test_id, is_test=True))
    assert hooks.post("gong", body, gong_headers(hooks.gong, hooks.url("gong"), body)).status_code == 200
    ids = _kept_ids(hooks, "gong")
    assert (ids[f"call:{call_id}"], f"call:{test_id}" in ids) == (3, False)


# -- the hooks command -----------------------------------------------------------------------------------------


# -- GitHub ----------------------------------------------------------------------------------------------------


def test_a_github_ping_is_answered_and_nothing_kept(hooks: Hooks) -> None:
    body = encode({"zen": "Keep it logically awesome.", "hook_id": 1})
    answer = hooks.post("github", body, github_headers(body, "gh-ping-1", event="ping"))
    assert answer.status_code == 200 and answer.json()["pong"] == "Keep it logically awesome."
    assert "gh-ping-1" not in _kept_ids(hooks, "github")


def test_a_forged_github_signature_is_refused_and_nothing_kept(hooks: Hooks) -> None:
    body = encode(github_pull_request("opened", "eng-1-fix"))
    answer = hooks.post("github", body, github_headers(body, "gh-forged", secret="not-the-webhook-secret"))
    assert (answer.status_code, answer.text) == (401, "refused: bad X-Hub-Signature-256")
    unsigned = hooks.post("github", body, {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "gh-forged"})
    assert unsigned.status_code == 401
    assert "gh-forged" not in _kept_ids(hooks, "github")


def test_a_github_body_changed_after_signing_is_refused(hooks: Hooks) -> None:
    signed = encode(github_pull_request("opened", "eng-1-fix"))
    changed = encode(github_pull_request("closed", "eng-1-fix", merged=True))
    answer = hooks.post("github", changed, github_headers(signed, "gh-tampered"))
    assert answer.status_code == 401
    assert "gh-tampered" not in _kept_ids(hooks, "github")


def test_a_replayed_github_delivery_is_kept_once_as_more_deliveries(hooks: Hooks) -> None:
    # GitHub signs no time, so a stale request is a replay of a delivery: the same X-GitHub-Delivery, kept once.
    body = encode(github_pull_request("opened", "eng-1-fix"))
    for _ in range(3):
        assert hooks.post("github", body, github_headers(body, "gh-replayed")).status_code == 200
    assert _kept_ids(hooks, "github")["gh-replayed"] == 3
    [event] = [k for k in kept(hooks.data_dir, "github") if k.event_id == "gh-replayed"]
    assert event.kind == "github.pull_request"


# -- Vercel ----------------------------------------------------------------------------------------------------


def test_a_forged_vercel_signature_is_refused_and_nothing_kept(hooks: Hooks) -> None:
    body = encode(vercel_deployment("evt_forged", "eng-1-fix"))
    answer = hooks.post("vercel", body, vercel_headers(body, secret="not-the-webhook-secret"))
    assert (answer.status_code, answer.text) == (401, "refused: bad x-vercel-signature")
    assert hooks.post("vercel", body, {"Content-Type": "application/json"}).status_code == 401
    assert "evt_forged" not in _kept_ids(hooks, "vercel")


def test_a_vercel_body_changed_after_signing_is_refused(hooks: Hooks) -> None:
    signed = encode(vercel_deployment("evt_tampered", "eng-1-fix", target=None))
    changed = encode(vercel_deployment("evt_tampered", "eng-1-fix", target="production"))
    assert hooks.post("vercel", changed, vercel_headers(signed)).status_code == 401
    assert "evt_tampered" not in _kept_ids(hooks, "vercel")


def test_a_replayed_vercel_event_is_kept_once_as_more_deliveries(hooks: Hooks) -> None:
    body = encode(vercel_deployment("evt_replayed", "eng-1-fix"))
    for _ in range(3):
        assert hooks.post("vercel", body, vercel_headers(body)).status_code == 200
    assert _kept_ids(hooks, "vercel")["evt_replayed"] == 3


def test_hooks_serves_the_receivers_alone_and_a_provider_without_its_secret_is_not_configured(data_dir: Path) -> None:
    output: list[str] = []
    with hooks_server(data_dir, output=output, SOPHIA_SLACK__SIGNING_SECRET=SLACK_SECRET) as (base, _):
        with httpx.Client(timeout=30) as http:
            ts = _ts()
            body = encode(slack_message("C0BUGS", ts))
            kept_now = http.post(f"{base}/hooks/slack", content=body, headers=slack_headers(body))
            missing = http.post(f"{base}/hooks/hubspot", content=b"[]")
            github = http.post(f"{base}/hooks/github", content=b"{}")
            vercel = http.post(f"{base}/hooks/vercel", content=b"{}")
            mcp = http.post(f"{base}/mcp", json={})
    assert kept_now.status_code == 200, kept_now.text
    assert (missing.status_code, missing.text) == (
        404, "not configured: set SOPHIA_HUBSPOT__WEBHOOK_SECRET to receive hubspot webhooks"
    )  # fmt: skip
    assert mcp.status_code == 404
    assert (github.status_code, github.text) == (
        404, "not configured: set SOPHIA_GITHUB__WEBHOOK_SECRET to receive github webhooks"
    )  # fmt: skip
    assert (vercel.status_code, vercel.text) == (
        404, "not configured: set SOPHIA_VERCEL__WEBHOOK_SECRET to receive vercel webhooks"
    )  # fmt: skip
    assert f"C0BUGS/{ts}" in {k.event_id for k in kept(data_dir, "slack")}
    assert output[0].startswith(f"sophia-mcp: hooks serving webhooks at {base}/hooks/... (webhooks from slack")


def test_hubspot_is_checked_against_the_public_url_it_was_sent_to_behind_a_proxy(data_dir: Path) -> None:
    public = "https://hooks.example.com/sophia"
    env = {"SOPHIA_HUBSPOT__WEBHOOK_SECRET": HUBSPOT_SECRET, "SOPHIA_HTTP__PUBLIC_URL": public}
    first, second = _event_ids(2)
    with hooks_server(data_dir, **env) as (base, _), httpx.Client(timeout=30) as http:
        # HubSpot signs the URL it was given, with some characters percent-decoded (here `%40` and `%2C`).
        query = "?portal=3&who=ops%40example.com%2Cops"
        body = encode([hubspot_event(first, 101)])
        signed_public = hubspot_headers(f"{public}/hooks/hubspot?portal=3&who=ops@example.com,ops", body)
        through_proxy = http.post(f"{base}/hooks/hubspot{query}", content=body, headers=signed_public)
        body = encode([hubspot_event(second, 102)])
        signed_local = hubspot_headers(f"{base}/hooks/hubspot", body)
        local = http.post(f"{base}/hooks/hubspot", content=body, headers=signed_local)
    assert (through_proxy.status_code, local.status_code) == (200, 401)
    assert {k.event_id for k in kept(data_dir, "hubspot")} == {str(first)}


def test_hooks_refuses_to_listen_beyond_loopback_with_no_provider_secret(data_dir: Path) -> None:
    code, said = invoke(data_dir, "hooks", "--host", "192.0.2.10")
    assert code == 2
    assert "no provider's secret set" in said
