"""A fake Apollo.io API v1 (enrichment) that behaves like the real one, per ../shared/apis/apollo.md.

`x-api-key` auth (401 `{"error"}` otherwise); people match and bulk match (at most 10, else 422; misses are
`null`, positionally aligned; credits per record matched), organization enrich by domain (unknown: `{}`) and
bulk enrich (at most 10). Per-minute windows, a harder one for bulk endpoints, answered with 429 and
Retry-After; usage headers on every answer. Mounted under /api/v1, as the real base URL is.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import unicodedata
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sophia_mcp.domain.crm import Client, Contact

API_KEY = "apollo-fake-key-123456"
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
    slow_seconds: float = 2.0
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
            message = (
                f"The maximum number of api calls allowed for {request.url.path} is {limit} times per minute. "
                "You have hit the rate limit."
            )
            throttled = JSONResponse({"error": message}, 429, headers={**headers, "Retry-After": state.retry_after})
            return throttled, {}, None
        if fault == "slow":
            await anyio.sleep(state.slow_seconds)
        if fault == "malformed":
            return Response('{"person": {"id": ', 200, media_type="application/json", headers=headers), {}, None
        body: Any = dict(request.query_params)
        if request.method == "POST":
            try:
                body = await request.json()
            except ValueError:
                return JSONResponse({"error": "Invalid JSON"}, 400, headers=headers), {}, None
            if not isinstance(body, dict):
                return JSONResponse({"error": "The body must be a JSON object"}, 400, headers=headers), {}, None
        state.requests.append((request.url.path, body))
        return None, headers, body

    def match(details: dict[str, Any]) -> dict[str, Any] | None:
        """By email first (case-blind); failing that, by first and last name at a domain or organization name."""
        email = str(details.get("email") or "").strip().lower()
        if email and email in state.people:
            return state.people[email]
        first, last = str(details.get("first_name") or "").lower(), str(details.get("last_name") or "").lower()
        if not (first and last) and details.get("name"):
            first, _, last = str(details["name"]).lower().strip().partition(" ")
        domain = _domain(details.get("domain"))
        company = str(details.get("organization_name") or "").strip().lower()
        if not (first and last and (domain or company)):
            return None
        for person in state.people.values():
            org = person.get("organization") or {}
            same_name = (str(person.get("first_name")).lower(), str(person.get("last_name")).lower()) == (first, last)
            if same_name and (
                (domain and domain == str(org.get("primary_domain") or "").lower())
                or (company and company == str(org.get("name") or "").lower())
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
        domain = _domain(request.query_params.get("domain"))
        return JSONResponse({"organization": state.organizations.get(domain, {})}, headers=headers)

    async def organization_bulk(request: Request) -> Response:
        refusal, headers, body = await guard(request, "bulk")
        if refusal is not None:
            return refusal
        domains = (body or {}).get("domains") if isinstance(body, dict) else None
        if not isinstance(domains, list) or not domains or len(domains) > 10:
            return JSONResponse({"error": "domains must hold 1 to 10 domains"}, 422, headers=headers)
        wanted = list(dict.fromkeys(_domain(d) for d in domains))
        found = [state.organizations[d] for d in wanted if d in state.organizations]
        return JSONResponse(
            {"status": "success", "organizations": found, "total_requested_domains": len(domains),
             "unique_domains": len(wanted), "unique_enriched_records": len(found),
             "missing_records": len(wanted) - len(found)},
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


def _domain(value: Any) -> str:
    """`https://www.Example.com/about` and `example.com` alike as `example.com`."""
    text = str(value or "").strip().lower()
    text = text.split("://", 1)[-1].split("/", 1)[0]
    return text.removeprefix("www.")


def _hex(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:24]


SENIORITY = [
    ("Owner", "owner"), ("Founder", "founder"), ("Partner", "partner"), ("Chief", "c_suite"), ("COO", "c_suite"),
    ("CEO", "c_suite"), ("CFO", "c_suite"), ("President", "c_suite"), ("VP", "vp"), ("Vice President", "vp"),
    ("Head", "head"), ("Director", "director"), ("Manager", "manager"), ("Controller", "manager"),
    ("Senior", "senior"), ("Coordinator", "entry"), ("Assistant", "entry"), ("Intern", "intern"),
]  # fmt: skip
DEPARTMENTS = [
    ("Financ", "master_finance"), ("Controller", "master_finance"), ("Account", "master_finance"),
    ("Leasing", "master_sales"), ("Sales", "master_sales"), ("Marketing", "master_marketing"),
    ("Technology", "master_information_technology"), ("Maintenance", "master_operations"),
]  # fmt: skip
US_STATES = {
    "AZ": "Arizona", "CA": "California", "CO": "Colorado", "FL": "Florida", "GA": "Georgia", "ID": "Idaho",
    "MN": "Minnesota", "MO": "Missouri", "NC": "North Carolina", "OH": "Ohio", "OR": "Oregon", "TN": "Tennessee",
    "TX": "Texas", "UT": "Utah", "VA": "Virginia", "WA": "Washington", "NY": "New York", "IL": "Illinois",
}  # fmt: skip
TECHNOLOGIES = ["AppFolio", "Yardi", "Buildium", "RentManager", "Salesforce", "HubSpot", "Google Workspace", "Zoom"]


def _field(record: Any, name: str) -> Any:
    return getattr(record, name, None)


def _seniority(title: str) -> str:
    """Apollo's seniority from a job title: the first telling word, else `senior` or `entry`."""
    words = set(title.replace(",", " ").replace("/", " ").split())
    for word, seniority in SENIORITY:
        if (word in words) if word.isupper() else (word.lower() in title.lower()):
            return seniority
    return "senior" if len(words) > 2 else "entry"


def _place(city_state: str | None) -> tuple[str | None, str | None]:
    """`Austin, TX` as (`Austin`, `Texas`)."""
    city, _, state = (city_state or "").partition(",")
    state = state.strip()
    return city.strip() or None, US_STATES.get(state, state) or None


def _organization(client: Client) -> dict[str, Any]:
    domain = _domain(_field(client, "domain"))
    name = str(_field(client, "name") or domain)
    city, state = _place(_field(client, "city"))
    units = int(_field(client, "units_managed") or 0)
    digest = int(hashlib.sha1(domain.encode()).hexdigest(), 16)
    revenue = units * 1_200 + digest % 250_000
    industry = str(_field(client, "industry") or "Real Estate").lower()
    return {
        "id": _hex(domain), "name": name, "website_url": f"http://www.{domain}", "primary_domain": domain,
        "linkedin_url": f"http://www.linkedin.com/company/{domain.rsplit('.', 1)[0]}",
        "industry": "real estate" if industry == "property management" else industry,
        "keywords": list(dict.fromkeys(["property management", "real estate", industry, "residential rentals"])),
        "estimated_num_employees": max(5, units // 60), "annual_revenue": revenue,
        "annual_revenue_printed": f"{revenue / 1e6:.1f}M" if revenue >= 1e6 else f"{revenue / 1e3:.0f}K",
        "founded_year": 1975 + digest % 45, "city": city, "state": state, "country": "United States",
        "short_description": f"{name} is a {industry} company managing about {units:,} units.",
        "technology_names": sorted(TECHNOLOGIES[digest % 3 : digest % 3 + 3 + digest % 4]),
    }  # fmt: skip


def _person(contact: Contact, client: Client | None, org: dict[str, Any] | None) -> dict[str, Any]:
    title = str(_field(contact, "title") or "")
    first, last = str(_field(contact, "first_name") or ""), str(_field(contact, "last_name") or "")
    digest = int(hashlib.sha1(contact.id.encode()).hexdigest(), 16)
    plain = unicodedata.normalize("NFKD", f"{first} {last}").encode("ascii", "ignore").decode().lower()
    slug = "-".join(re.findall(r"[a-z0-9]+", plain))
    company = str(_field(client, "name")) if client else None
    city, state = _place(_field(client, "city")) if client else (None, None)
    department = next((d for word, d in DEPARTMENTS if word in title), "master_operations")
    return {
        "id": _hex(contact.id), "first_name": first, "last_name": last, "name": f"{first} {last}".strip(),
        "title": title, "headline": f"{title} at {company}" if company else title, "seniority": _seniority(title),
        "departments": [department], "email": _field(contact, "email"), "email_status": "verified",
        "linkedin_url": f"http://www.linkedin.com/in/{slug}-{digest % 10**8:08d}",
        "city": city, "state": state, "country": "United States",
        "employment_history": [{"organization_name": company, "title": title,
                                "start_date": f"{2012 + digest % 12}-{1 + digest % 12:02d}-01", "end_date": None,
                                "current": True}],
        "organization_id": org["id"] if org else None, "organization": org,
    }  # fmt: skip


def state_from_demo(clients: list[Client], contacts: list[Contact], miss_every: int = 7, **kwargs: Any) -> ApolloState:
    """A person for each demo contact but every `miss_every`-th (people a provider does not know), and a firm each."""
    organizations = {org["primary_domain"]: org for org in map(_organization, clients) if org["primary_domain"]}
    by_client = {c.id: c for c in clients}
    people: dict[str, dict[str, Any]] = {}
    for index, contact in enumerate(contacts):
        email = str(_field(contact, "email") or "").lower()
        if not email or (miss_every and index % miss_every == miss_every - 1):
            continue
        client = by_client.get(_field(contact, "client_id") or "")
        org = organizations.get(_domain(_field(client, "domain"))) if client else None
        people[email] = _person(contact, client, org)
    return ApolloState(people=people, organizations=organizations, **kwargs)
