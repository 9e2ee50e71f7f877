"""Webhook requests signed exactly as each provider signs them (../shared/apis/webhooks.md), the bodies they send,
and what the inbox kept, read from the store's file as an operator would: for the webhook tests and the bench."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.processes import SCRIPT, env_for, free_port, wait_until_listening

SLACK_SECRET = "slack-signing-secret-for-tests"
HUBSPOT_SECRET = "hubspot-client-secret-for-tests"
LINEAR_SECRET = "linear-webhook-secret-for-tests"
GITHUB_SECRET = "github-webhook-secret-for-tests"
VERCEL_SECRET = "vercel-webhook-secret-for-tests"


@dataclass(frozen=True)
class GongKey:
    """An RSA key pair standing in for the one Gong holds for an automation rule: Gong signs with the private
    key and shows the public one (PEM), which the receiver is given."""

    private: rsa.RSAPrivateKey
    public_pem: str

    @classmethod
    def generate(cls) -> GongKey:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(private, pem.decode())


def secrets_env(gong: GongKey) -> dict[str, str]:
    """The settings that give every receiver its secret."""
    return {
        "SOPHIA_SLACK__SIGNING_SECRET": SLACK_SECRET,
        "SOPHIA_HUBSPOT__WEBHOOK_SECRET": HUBSPOT_SECRET,
        "SOPHIA_LINEAR__WEBHOOK_SECRET": LINEAR_SECRET,
        "SOPHIA_GONG__WEBHOOK_PUBLIC_KEY": gong.public_pem,
        "SOPHIA_GITHUB__WEBHOOK_SECRET": GITHUB_SECRET,
        "SOPHIA_VERCEL__WEBHOOK_SECRET": VERCEL_SECRET,
    }


def encode(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


# -- signatures ------------------------------------------------------------------------------------------------


def slack_headers(body: bytes, secret: str = SLACK_SECRET, at: float | None = None, retry: int = 0) -> dict[str, str]:
    """Slack's v0 signature over `v0:{timestamp}:{body}`; a retry carries `X-Slack-Retry-Num`."""
    stamp = str(int(time.time() if at is None else at))
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    headers = {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/json",
    }
    if retry:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    return headers


def hubspot_headers(
    uri: str, body: bytes, secret: str = HUBSPOT_SECRET, at: float | None = None, method: str = "POST"
) -> dict[str, str]:
    """HubSpot's v3 signature: base64 HMAC-SHA256 of method + URI + body + timestamp (milliseconds)."""
    stamp = str(int((time.time() if at is None else at) * 1000))
    message = method.encode() + uri.encode() + body + stamp.encode()
    signature = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()
    return {
        "X-HubSpot-Request-Timestamp": stamp,
        "X-HubSpot-Signature-v3": signature,
        "Content-Type": "application/json",
    }


def linear_headers(body: bytes, delivery: str, secret: str = LINEAR_SECRET) -> dict[str, str]:
    """Linear's signature: hex HMAC-SHA256 of the body (which carries its own `webhookTimestamp`)."""
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Linear-Signature": signature, "Linear-Delivery": delivery, "Linear-Event": "Issue",
            "Content-Type": "application/json"}  # fmt: skip


def gong_headers(key: GongKey, url: str, body: bytes, at: float | None = None, ttl_s: float = 300) -> dict[str, str]:
    """Gong's signed JWT (RS256) in `Authorization`: the target URL, the body's SHA-256 and an expiry."""
    now = time.time() if at is None else at
    claims = {"webhook_url": url, "body_sha256": hashlib.sha256(body).hexdigest(), "iat": int(now),
              "exp": int(now + ttl_s)}  # fmt: skip
    return {"Authorization": jwt.encode(claims, key.private, algorithm="RS256"), "Content-Type": "application/json"}


def github_headers(
    body: bytes, delivery: str, event: str = "pull_request", secret: str = GITHUB_SECRET
) -> dict[str, str]:
    """GitHub's signature: `sha256=` + hex HMAC-SHA256 of the body; the event's name and its delivery's GUID."""
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": signature, "X-GitHub-Event": event, "X-GitHub-Delivery": delivery,
            "User-Agent": "GitHub-Hookshot/test", "Content-Type": "application/json"}  # fmt: skip


def vercel_headers(body: bytes, secret: str = VERCEL_SECRET) -> dict[str, str]:
    """Vercel's signature: hex HMAC-SHA1 of the body."""
    signature = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    return {"x-vercel-signature": signature, "Content-Type": "application/json"}


# -- bodies ----------------------------------------------------------------------------------------------------


def slack_message(channel: str, ts: str, text: str = "the export button does nothing", **extra: Any) -> dict[str, Any]:
    """An Events API `event_callback` carrying one message."""
    event = {"type": "message", "channel": channel, "user": "U0TESTER", "text": text, "ts": ts, **extra}
    return {"type": "event_callback", "team_id": "T0TEAM", "api_app_id": "A0APP",
            "event_id": f"Ev{ts.replace('.', '')}", "event_time": int(float(ts)), "event": event}  # fmt: skip


def hubspot_event(event_id: int, contact_id: int, attempt: int = 0, kind: str = "contact.creation") -> dict[str, Any]:
    return {"eventId": event_id, "subscriptionId": 2, "portalId": 3, "appId": 4,
            "occurredAt": int(time.time() * 1000), "subscriptionType": kind, "attemptNumber": attempt,
            "objectId": contact_id, "changeSource": "CRM"}  # fmt: skip


def linear_issue_update(issue_id: str, state: str = "Done", at: float | None = None) -> dict[str, Any]:
    """An `Issue` update whose state changed (`updatedFrom.stateId`)."""
    now = time.time() if at is None else at
    return {
        "action": "update", "type": "Issue", "url": f"https://linear.app/acme/issue/{issue_id}",
        "data": {"id": issue_id, "identifier": "ENG-1", "title": "Export broken",
                 "updatedAt": "2026-12-01T10:00:00.000Z",
                 "state": {"id": f"state-{state}", "name": state, "type": "completed"}},
        "updatedFrom": {"stateId": "state-Todo", "updatedAt": "2026-12-01T09:00:00.000Z"},
        "createdAt": "2026-12-01T10:00:00.000Z", "organizationId": "org-1", "webhookTimestamp": int(now * 1000),
        "webhookId": "hook-1",
    }  # fmt: skip


def github_pull_request(
    action: str, branch: str, number: int = 42, merged: bool = False, title: str = "Fix the export", body: str = ""
) -> dict[str, Any]:
    """A `pull_request` event: `closed` with `merged` is a merge."""
    return {
        "action": action, "number": number,
        "pull_request": {"number": number, "title": title, "body": body, "state": "closed" if action == "closed"
                         else "open", "merged": merged, "merged_at": "2026-12-01T12:00:00Z" if merged else None,
                         "draft": False, "html_url": f"https://github.com/acme/app/pull/{number}",
                         "head": {"ref": branch, "sha": "abc123"}, "base": {"ref": "main"}},
        "repository": {"full_name": "acme/app"}, "sender": {"login": "dana"},
    }  # fmt: skip


def vercel_deployment(
    event_id: str, branch: str, kind: str = "deployment.succeeded", target: str | None = "production",
    message: str = "Fix the export",
) -> dict[str, Any]:  # fmt: skip
    """A deployment event as Vercel posts it."""
    return {
        "id": event_id, "type": kind, "createdAt": int(time.time() * 1000),
        "payload": {"deployment": {"id": f"dpl_{event_id}", "url": f"app-{event_id}.vercel.app",
                                   "meta": {"githubCommitRef": branch, "githubCommitSha": "abc123",
                                            "githubCommitMessage": message}},
                    "target": target, "project": {"id": "prj_1"}, "url": f"app-{event_id}.vercel.app"},
    }  # fmt: skip


def gong_call(call_id: str, is_test: bool = False) -> dict[str, Any]:
    """A call as an automation rule posts it (`callData` in the /v2/calls/extensive shape)."""
    return {
        "callData": {
            "metaData": {"id": call_id, "title": "Renewal check-in", "started": "2026-12-01T10:00:00Z",
                         "duration": 1800},
            "parties": [{"id": "p1", "emailAddress": "pat@client.example", "affiliation": "External"}],
            "content": {"topics": []},
        },
        "isTest": is_test,
    }  # fmt: skip


# -- what was kept ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kept:
    source: str
    event_id: str
    kind: str
    deliveries: int
    status: str
    payload: dict[str, Any]


def kept(data_dir: Path, source: str | None = None) -> list[Kept]:
    """The inbox's events (of one source when given), oldest first."""
    path = data_dir / "sophia.db"
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT source, event_id, kind, deliveries, status, payload FROM inbox WHERE ? IS NULL OR source = ? "
            "ORDER BY id",
            (source, source),
        ).fetchall()
    return [Kept(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]


def status_counts(data_dir: Path) -> dict[str, int]:
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        return dict(conn.execute("SELECT status, count(*) FROM inbox GROUP BY status").fetchall())


# -- the hooks command -----------------------------------------------------------------------------------------


@contextmanager
def hooks_server(
    data_dir: Path, port: int | None = None, output: list[str] | None = None, **env: str
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Run `sophia-mcp hooks` on 127.0.0.1; yield its base URL and process once it says it listens."""
    port = port or free_port()
    proc = subprocess.Popen(
        [SCRIPT, "hooks", "--port", str(port)], env=env_for(data_dir, **env), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until_listening(proc, output if output is not None else [])
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
