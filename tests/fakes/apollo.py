"""A fake Apollo.io API v1 (enrichment) that behaves like the real one, per ../shared/apis/apollo.md.

`x-api-key` auth (401 `{"error"}` otherwise); people match and bulk match (at most 10, else 422; misses are
`null`, positionally aligned; credits per record matched), organization enrich by domain (unknown: `{}`) and
bulk enrich (at most 10). Per-minute windows, a harder one for bulk endpoints, answered with 429 and
Retry-After; usage headers on every answer. Mounted under /api/v1, as the real base URL is.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sophia_mcp.ports.crm import Client, Contact

API_KEY = "apollo-fake-key-0123456789"
PREFIX = "/api/v1"


@dataclass
class ApolloState:
    people: dict[str, dict[str, Any]]  # by lower-case email
    organizations: dict[str, dict[str, Any]]  # by primary domain
    per_minute: int = 1000
    bulk_per_minute: int = 1000
    window_s: float = 60.0
    retry_after: str = "1"
    faults: list[str] = field(default_factory=list)
    requests: list[tuple[str, Any]] = field(default_factory=list)
    credits_consumed: int = 0
    throttled: int = 0
    _stamps: dict[str, deque[float]] = field(default_factory=lambda: {"single": deque(), "bulk": deque()})
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, kind: str) -> tuple[bool, int, int]:
        """(allowed, limit, used) in the sliding window for `kind` (single or bulk)."""
        limit = self.bulk_per_minute if kind == "bulk" else self.per_minute
        stamps, now = self._stamps[kind], time.monotonic()
        with self._lock:
            while stamps and now - stamps[0] >= self.window_s:
                stamps.popleft()
            if len(stamps) >= limit:
                self.throttled += 1
                return False, limit, len(stamps)
            stamps.append(now)
            return True, limit, len(stamps)

    def next_fault(self) -> str | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None

    def count(self, path_end: str) -> int:
        return sum(1 for p, _ in self.requests if p.endswith(path_end))


def apollo_app(state: ApolloState) -> Starlette:
    async def guard(request: Request, kind: str) -> tuple[Response | None, dict[str, str], Any]:
        if request.headers.get("x-api-key") != API_KEY:
            return JSONResponse({"error": "Invalid access credentials."}, 401), {}, None
        fault = state.next_fault()
        if fault == "500":
            return JSONResponse({"error": "Internal Server Error"}, 500), {}, None
        allowed, limit, used = state.take(kind)
        headers = {
            "x-rate-limit-minute": str(limit), "x-minute-usage": str(used),
            "x-minute-requests-left": str(max(0, limit - used)),
            "x-rate-limit-hourly": str(limit * 10), "x-hourly-usage": str(used),
            "x-hourly-requests-left": str(limit * 10 - used),
            "x-rate-limit-24-hour": str(limit * 50), "x-24-hour-usage": str(used),
            "x-24-hour-requests-left": str(limit * 50 - used),
        }  # fmt: skip
        if fault == "429" or not allowed:
            message = f"The maximum number of api calls allowed for {request.url.path} is {limit} times per minute."
            throttled = JSONResponse({"error": message}, 429, headers={**headers, "Retry-After": state.retry_after})
            return throttled, {}, None
        body: Any = dict(request.query_params)
        if request.method == "POST":
            try:
                body = await request.json()
            except ValueError:
                return JSONResponse({"error": "Invalid JSON"}, 400, headers=headers), {}, None
        state.requests.append((request.url.path, body))
        return None, headers, body

    def match(details: dict[str, Any]) -> dict[str, Any] | None:
        email = str(details.get("email") or "").lower()
        if email:
            return state.people.get(email)
        first, last = str(details.get("first_name") or "").lower(), str(details.get("last_name") or "").lower()
        where = str(details.get("domain") or details.get("organization_name") or "").lower()
        for person in state.people.values():
            org = person.get("organization") or {}
            if (person["first_name"].lower(), person["last_name"].lower()) == (first, last) and where in (
                str(org.get("primary_domain", "")).lower(),
                str(org.get("name", "")).lower(),
            ):
                return person
        return None

    async def people_match(request: Request) -> Response:
        refusal, headers, body = await guard(request, "single")
        if refusal is not None:
            return refusal
        person = match(body if isinstance(body, dict) else {})
        state.credits_consumed += person is not None
        return JSONResponse({"person": person}, headers=headers)

    async def bulk_match(request: Request) -> Response:
        refusal, headers, body = await guard(request, "bulk")
        if refusal is not None:
            return refusal
        details = (body or {}).get("details") if isinstance(body, dict) else None
        if not isinstance(details, list) or not details:
            return JSONResponse({"error": "details must be a non-empty array"}, 422, headers=headers)
        if len(details) > 10:
            return JSONResponse({"error": "You can only enrich up to 10 records at a time"}, 422, headers=headers)
        matches = [match(d if isinstance(d, dict) else {}) for d in details]
        found = [m for m in matches if m is not None]
        state.credits_consumed += len(found)
        return JSONResponse(
            {"status": "success", "error_code": None, "error_message": None,
             "total_requested_enrichments": len(details), "unique_enriched_records": len({m["id"] for m in found}),
             "missing_records": len(details) - len(found), "credits_consumed": len(found), "matches": matches},
            headers=headers,
        )  # fmt: skip

    async def organization_enrich(request: Request) -> Response:
        refusal, headers, _ = await guard(request, "single")
        if refusal is not None:
            return refusal
        domain = request.query_params.get("domain", "").lower()
        return JSONResponse({"organization": state.organizations.get(domain, {})}, headers=headers)

    async def organization_bulk(request: Request) -> Response:
        refusal, headers, body = await guard(request, "bulk")
        if refusal is not None:
            return refusal
        domains = (body or {}).get("domains") if isinstance(body, dict) else None
        if not isinstance(domains, list) or not domains or len(domains) > 10:
            return JSONResponse({"error": "domains must hold 1 to 10 domains"}, 422, headers=headers)
        found = [state.organizations[d.lower()] for d in domains if d.lower() in state.organizations]
        return JSONResponse(
            {"status": "success", "organizations": found, "total_requested_domains": len(domains),
             "unique_domains": len(set(domains)), "unique_enriched_records": len(found),
             "missing_records": len(domains) - len(found)},
            headers=headers,
        )  # fmt: skip

    return Starlette(
        routes=[
            Route(f"{PREFIX}/people/match", people_match, methods=["POST"]),
            Route(f"{PREFIX}/people/bulk_match", bulk_match, methods=["POST"]),
            Route(f"{PREFIX}/organizations/enrich", organization_enrich, methods=["GET"]),
            Route(f"{PREFIX}/organizations/bulk_enrich", organization_bulk, methods=["POST"]),
        ]
    )


def _hex(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:24]


SENIORITY = [("COO", "c_suite"), ("Owner", "owner"), ("VP", "vp"), ("Director", "director"), ("Manager", "manager"),
             ("Controller", "manager"), ("Coordinator", "entry")]  # fmt: skip


def state_from_demo(clients: list[Client], contacts: list[Contact], miss_every: int = 7, **kwargs: Any) -> ApolloState:
    """A person for each demo contact but every `miss_every`-th (people a provider does not know), and a firm each."""
    organizations: dict[str, dict[str, Any]] = {}
    for c in clients:
        domain = (c.domain or "").lower()
        city, _, state = (c.city or "").partition(", ")
        units = c.units_managed or 0
        organizations[domain] = {
            "id": _hex(domain), "name": c.name, "website_url": f"http://www.{domain}", "primary_domain": domain,
            "linkedin_url": f"http://www.linkedin.com/company/{domain.removesuffix('.com')}",
            "industry": "real estate", "keywords": ["property management", "rentals"],
            "estimated_num_employees": max(5, units // 60), "annual_revenue": units * 120,
            "annual_revenue_printed": f"{units * 120 / 1e6:.1f}M", "founded_year": 1990 + len(c.name) % 30,
            "city": city or None, "state": state or None, "country": "United States",
            "short_description": f"{c.name} manages residential properties.", "technology_names": ["Salesforce"],
        }  # fmt: skip
    by_client = {c.id: c for c in clients}
    people: dict[str, dict[str, Any]] = {}
    for index, p in enumerate(contacts):
        if miss_every and index % miss_every == miss_every - 1:
            continue
        client = by_client.get(p.client_id or "")
        org = organizations.get((client.domain or "").lower()) if client else None
        title = p.title or ""
        seniority = next((s for word, s in SENIORITY if word in title), "senior")
        first, last = p.first_name or "", p.last_name or ""
        people[(p.email or "").lower()] = {
            "id": _hex(p.id), "first_name": first, "last_name": last, "name": f"{first} {last}", "title": title,
            "headline": f"{title} at {client.name if client else 'a property manager'}", "seniority": seniority,
            "departments": ["master_operations"], "email": p.email, "email_status": "verified",
            "linkedin_url": f"http://www.linkedin.com/in/{first.lower()}-{last.lower()}-{p.id[-5:]}",
            "city": org["city"] if org else None, "state": org["state"] if org else None, "country": "United States",
            "employment_history": [{"organization_name": client.name if client else None, "title": title,
                                    "start_date": "2019-03-01", "end_date": None, "current": True}],
            "organization_id": org["id"] if org else None, "organization": org,
        }  # fmt: skip
    return ApolloState(people=people, organizations=organizations, **kwargs)
