"""A fake HubSpot CRM API v3 that behaves like the real one, per ../shared/apis/hubspot.md.

Bearer private-app token (401 INVALID_AUTHENTICATION otherwise); contacts and companies: get (by id or
`idProperty=email`), list with `after` paging, search (filter groups, operators, free-text query, sorts, its own
per-second limit and no rate-limit headers), batch read and batch update of at most 100 (207 Multi-Status beside
the results that went through), PATCH, create (409 on a duplicate email), v4 associations. A read-only or unknown
property is a VALIDATION_ERROR naming it. A rolling ten-second limit answers 429 RATE_LIMITS with Retry-After.
Every write is logged in `updates`, so a test can prove nothing was written twice.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sophia_mcp.ports.crm import Client, Contact

ACCESS_TOKEN = "pat-na1-fake-hubspot-token-0001"
READ_ONLY = {"hs_object_id", "createdate", "lastmodifieddate", "hubspotscore", "associatedcompanyid"}
CONTACT_PROPERTIES = {
    "email", "firstname", "lastname", "jobtitle", "phone", "company", "lifecyclestage", "city", "state", "country",
    "hs_linkedin_url", "sophia_seniority", "sophia_lead_score", "sophia_lead_grade",
}  # fmt: skip
COMPANY_PROPERTIES = {"name", "domain", "industry", "city", "sophia_units_managed", "sophia_arr", "sophia_segment"}
DATETIME_PROPERTIES = {"createdate", "lastmodifieddate"}
TEXT_FIELDS = {
    "contacts": ("firstname", "lastname", "email", "company", "phone"),
    "companies": ("name", "domain"),
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(value: str) -> int:
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


@dataclass
class HubSpotState:
    contacts: dict[str, dict[str, str | None]]
    companies: dict[str, dict[str, str | None]]
    associations: dict[str, str] = field(default_factory=dict)  # contact id -> company id
    contact_schema: set[str] = field(default_factory=lambda: CONTACT_PROPERTIES | READ_ONLY)
    company_schema: set[str] = field(default_factory=lambda: COMPANY_PROPERTIES | READ_ONLY)
    read_only: set[str] = field(default_factory=lambda: set(READ_ONLY))
    per_ten_seconds: int = 1000
    search_per_second: int = 5
    retry_after: str = "1"
    faults: list[str] = field(default_factory=list)
    slow_seconds: float = 2.0
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    updates: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    throttled: int = 0
    _general: deque[float] = field(default_factory=deque)
    _search: deque[float] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def objects(self, kind: str) -> dict[str, dict[str, str | None]]:
        return self.contacts if kind == "contacts" else self.companies

    def schema(self, kind: str) -> set[str]:
        return self.contact_schema if kind == "contacts" else self.company_schema

    def over(self, search: bool) -> bool:
        """Sliding windows: ten seconds for the general limit, one second for search."""
        window, limit, stamps = (1.0, self.search_per_second, self._search) if search else (
            10.0, self.per_ten_seconds, self._general)  # fmt: skip
        now = time.monotonic()
        with self._lock:
            while stamps and now - stamps[0] >= window:
                stamps.popleft()
            if len(stamps) >= limit:
                self.throttled += 1
                return True
            stamps.append(now)
            return False

    def remaining(self) -> int:
        with self._lock:
            return max(0, self.per_ten_seconds - len(self._general))

    def next_fault(self) -> str | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None

    def count(self, method: str, path_end: str) -> int:
        return sum(1 for m, p, _ in self.requests if m == method and p.endswith(path_end))


def _error(status: int, category: str, message: str, **extra: Any) -> JSONResponse:
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category, **extra}
    return JSONResponse(body, status)


def hubspot_app(state: HubSpotState) -> Starlette:
    def limit_headers() -> dict[str, str]:
        return {
            "X-HubSpot-RateLimit-Max": str(state.per_ten_seconds),
            "X-HubSpot-RateLimit-Remaining": str(state.remaining()),
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Daily": "250000",
            "X-HubSpot-RateLimit-Daily-Remaining": "249000",
        }

    def answer(body: Any, status: int = 200, search: bool = False) -> JSONResponse:
        return JSONResponse(body, status, headers=None if search else limit_headers())

    async def guard(request: Request, search: bool = False) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {ACCESS_TOKEN}":
            return _error(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
                "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            )
        fault = state.next_fault()
        if fault == "500":
            return _error(500, "INTERNAL_ERROR", "internal error")
        if fault == "429" or state.over(search):
            return JSONResponse(
                {"status": "error", "message": "You have reached your secondly limit." if search else
                 "You have reached your ten_secondly_rolling limit.", "errorType": "RATE_LIMIT",
                 "correlationId": str(uuid.uuid4()), "policyName": "SECONDLY" if search else "TEN_SECONDLY_ROLLING",
                 "category": "RATE_LIMITS"},
                429,
                headers={"Retry-After": state.retry_after},
            )  # fmt: skip
        if fault == "slow":
            await anyio.sleep(state.slow_seconds)
        if fault == "malformed":
            return Response('{"results": [', 200, media_type="application/json")
        body: Any = None
        if request.method in ("POST", "PATCH"):
            try:
                body = await request.json()
            except ValueError:
                return _error(400, "VALIDATION_ERROR", "Invalid input JSON on line 1")
        logged = body if body is not None else dict(request.query_params)
        state.requests.append((request.method, request.url.path, logged))
        request.state.body = body
        return None

    def render(kind: str, object_id: str, wanted: list[str] | None, associations: bool = False) -> dict[str, Any]:
        props = state.objects(kind)[object_id]
        base = {"hs_object_id", "createdate", "lastmodifieddate"}
        chosen = {k: v for k, v in props.items() if k in base or (wanted is not None and k in wanted)}
        if kind == "contacts" and wanted and "associatedcompanyid" in wanted:
            chosen["associatedcompanyid"] = state.associations.get(object_id)
        out: dict[str, Any] = {
            "id": object_id,
            "properties": chosen,
            "createdAt": props["createdate"],
            "updatedAt": props["lastmodifieddate"],
            "archived": False,
        }
        if associations and kind == "contacts" and object_id in state.associations:
            company = state.associations[object_id]
            out["associations"] = {"companies": {"results": [{"id": company, "type": "contact_to_company"}]}}
        return out

    def refused(kind: str, properties: dict[str, Any]) -> list[str]:
        return [name for name in properties if name in state.read_only or name not in state.schema(kind)]

    def validation(names: list[str], object_id: str | None = None) -> dict[str, Any]:
        context: dict[str, Any] = {"propertyName": names}
        if object_id is not None:
            context["ids"] = [object_id]
        return {
            "status": "error",
            "category": "VALIDATION_ERROR",
            "message": f'Property values were not valid: [{{"isValid":false,"message":"Property \\"{names[0]}\\" '
            f'does not exist or is read-only","error":"PROPERTY_DOESNT_EXIST","name":"{names[0]}"}}]',
            "errors": [
                {
                    "message": f"Property {names[0]!r} is read-only or does not exist",
                    "code": "INVALID_PROPERTY",
                    "context": context,
                }
            ],
            "context": context,
        }

    def apply(kind: str, object_id: str, properties: dict[str, Any]) -> None:
        props = state.objects(kind)[object_id]
        for name, value in properties.items():
            props[name] = None if value in ("", None) else str(value)
        props["lastmodifieddate"] = _now()
        state.updates.append((object_id, dict(properties)))

    def find(kind: str, key: str, id_property: str | None) -> str | None:
        objects = state.objects(kind)
        if id_property == "email":
            return next((i for i, p in objects.items() if (p.get("email") or "").lower() == key.lower()), None)
        return key if key in objects else None

    async def one(request: Request) -> Response:
        kind, key = request.path_params["kind"], request.path_params["object_id"]
        if (refusal := await guard(request)) is not None:
            return refusal
        object_id = find(kind, key, request.query_params.get("idProperty"))
        if object_id is None:
            return _error(404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.")
        if request.method == "PATCH":
            properties = (request.state.body or {}).get("properties") or {}
            if bad := refused(kind, properties):
                return JSONResponse({**validation(bad), "correlationId": str(uuid.uuid4())}, 400)
            apply(kind, object_id, properties)
            return answer(render(kind, object_id, list(properties)))
        wanted = [p for p in request.query_params.get("properties", "").split(",") if p]
        associations = "companies" in request.query_params.get("associations", "")
        return answer(render(kind, object_id, wanted, associations))

    def encode(offset: int) -> str:
        return base64.b64encode(f"{offset}\n".encode()).decode()

    def decode(after: str | None) -> int | None:
        if not after:
            return 0
        try:
            return int(base64.b64decode(after).decode().strip()) if not after.isdigit() else int(after)
        except ValueError:
            return None

    def paged(request: Request, kind: str, ids: list[str], offset: int, limit: int, wanted: list[str]) -> dict:
        page = ids[offset : offset + limit]
        body: dict[str, Any] = {"results": [render(kind, i, wanted) for i in page]}
        if offset + limit < len(ids):
            after = encode(offset + limit)
            body["paging"] = {"next": {"after": after, "link": f"{request.url.path}?after={after}"}}
        return body

    async def collection(request: Request) -> Response:
        kind = request.path_params["kind"]
        if (refusal := await guard(request)) is not None:
            return refusal
        if request.method == "POST":
            properties = (request.state.body or {}).get("properties") or {}
            if bad := refused(kind, properties):
                return JSONResponse({**validation(bad), "correlationId": str(uuid.uuid4())}, 400)
            email = (properties.get("email") or "").lower()
            if kind == "contacts" and email and find(kind, email, "email"):
                return _error(409, "CONFLICT", f"Contact already exists. Existing ID: {find(kind, email, 'email')}")
            object_id = str(max((int(i) for i in state.objects(kind)), default=0) + 1)
            now = _now()
            state.objects(kind)[object_id] = {"hs_object_id": object_id, "createdate": now, "lastmodifieddate": now}
            apply(kind, object_id, properties)
            return answer(render(kind, object_id, list(properties)), 201)
        try:
            limit = int(request.query_params.get("limit", "10"))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 100:
            return _error(400, "VALIDATION_ERROR", "limit must be between 1 and 100")
        offset = decode(request.query_params.get("after"))
        if offset is None:
            return _error(400, "VALIDATION_ERROR", "Invalid after value")
        ids = sorted(state.objects(kind), key=int)
        wanted = [p for p in request.query_params.get("properties", "").split(",") if p]
        return answer(paged(request, kind, ids, offset, limit, wanted))

    def matches(kind: str, object_id: str, flt: dict[str, Any]) -> bool:
        props = dict(state.objects(kind)[object_id])
        if kind == "contacts":
            props["associatedcompanyid"] = state.associations.get(object_id)
        name, op = flt.get("propertyName"), flt.get("operator")
        value = props.get(name)
        if op == "HAS_PROPERTY":
            return value not in (None, "")
        if op == "NOT_HAS_PROPERTY":
            return value in (None, "")
        if value is None:
            return op in ("NEQ", "NOT_IN")

        def comparable(x: Any) -> Any:
            if name in DATETIME_PROPERTIES:
                return _ms(str(x)) if not str(x).isdigit() else int(x)
            try:
                return float(x)
            except (TypeError, ValueError):
                return str(x).lower()

        left = comparable(value)
        if op in ("IN", "NOT_IN"):
            inside = left in [comparable(v) for v in flt.get("values") or []]
            return inside if op == "IN" else not inside
        if op == "CONTAINS_TOKEN":
            token = str(flt.get("value", "")).lower().replace("*", "")
            return token in str(value).lower()
        right = comparable(flt.get("value"))
        if type(left) is not type(right):
            left, right = str(left), str(right)
        if op == "BETWEEN":
            high = comparable(flt.get("highValue"))
            return bool(right <= left <= high)
        return bool(
            {"EQ": left == right, "NEQ": left != right, "LT": left < right, "LTE": left <= right,
             "GT": left > right, "GTE": left >= right}.get(str(op), False)
        )  # fmt: skip

    async def search(request: Request) -> Response:
        kind = request.path_params["kind"]
        if (refusal := await guard(request, search=True)) is not None:
            return refusal
        body = request.state.body or {}
        groups = body.get("filterGroups") or []
        if len(groups) > 5 or any(len(g.get("filters") or []) > 6 for g in groups):
            return _error(400, "VALIDATION_ERROR", "Too many filter groups or filters: at most 5 groups of 6")
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or not 1 <= limit <= 100:
            return _error(400, "VALIDATION_ERROR", "limit must be between 1 and 100")
        offset = decode(str(body.get("after") or ""))
        if offset is None:
            return _error(400, "VALIDATION_ERROR", "Invalid after value")
        words = str(body.get("query") or "").lower().split()
        chosen = []
        for object_id, props in state.objects(kind).items():
            if groups and not any(all(matches(kind, object_id, f) for f in g.get("filters") or []) for g in groups):
                continue
            text = " ".join(str(props.get(f) or "") for f in TEXT_FIELDS[kind]).lower()
            if any(w not in text for w in words):
                continue
            chosen.append(object_id)
        for sort in reversed(body.get("sorts") or [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]):
            key = sort.get("propertyName")
            numeric = key in ("hs_object_id",) or key in DATETIME_PROPERTIES
            chosen.sort(
                key=lambda i, k=key, n=numeric: (
                    (int(i) if k == "hs_object_id" else _ms(state.objects(kind)[i][k] or "1970-01-01T00:00:00Z"))
                    if n else str(state.objects(kind)[i].get(k) or "")
                ),
                reverse=sort.get("direction") == "DESCENDING",
            )  # fmt: skip
        chosen = chosen[:10_000]
        wanted = list(body.get("properties") or [])
        return answer({"total": len(chosen), **paged(request, kind, chosen, offset, limit, wanted)}, search=True)

    def batch_envelope(results: list[Any], errors: list[Any]) -> JSONResponse:
        now = _now()
        body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
        if errors:
            body["errors"] = errors
            body["numErrors"] = len(errors)
        return answer(body, 207 if errors else 200)

    async def batch_read(request: Request) -> Response:
        kind = request.path_params["kind"]
        if (refusal := await guard(request)) is not None:
            return refusal
        body = request.state.body or {}
        inputs = body.get("inputs") or []
        if len(inputs) > 100:
            return _error(400, "VALIDATION_ERROR", f"Batch of {len(inputs)} inputs is over the limit of 100")
        wanted = list(body.get("properties") or [])
        results, missing = [], []
        for item in inputs:
            object_id = find(kind, str(item.get("id")), body.get("idProperty"))
            if object_id is None:
                missing.append(str(item.get("id")))
            else:
                results.append(render(kind, object_id, wanted))
        errors = (
            [{"status": "error", "category": "OBJECT_NOT_FOUND", "message": "Could not get some objects, they may be "
              "deleted or not exist.", "context": {"ids": missing}}] if missing else []
        )  # fmt: skip
        return batch_envelope(results, errors)

    async def batch_update(request: Request) -> Response:
        kind = request.path_params["kind"]
        if (refusal := await guard(request)) is not None:
            return refusal
        inputs = (request.state.body or {}).get("inputs") or []
        if len(inputs) > 100:
            return _error(400, "VALIDATION_ERROR", f"Batch of {len(inputs)} inputs is over the limit of 100")
        results, errors = [], []
        for item in inputs:
            object_id, properties = str(item.get("id")), item.get("properties") or {}
            if object_id not in state.objects(kind):
                errors.append({"status": "error", "category": "OBJECT_NOT_FOUND", "message": "Object not found",
                               "context": {"ids": [object_id]}})  # fmt: skip
                continue
            if bad := refused(kind, properties):
                errors.append(validation(bad, object_id))
                continue
            apply(kind, object_id, properties)
            results.append(render(kind, object_id, list(properties)))
        return batch_envelope(results, errors)

    async def associations(request: Request) -> Response:
        if (refusal := await guard(request)) is not None:
            return refusal
        contact_id = request.path_params["object_id"]
        if contact_id not in state.contacts:
            return _error(404, "OBJECT_NOT_FOUND", "Object not found")
        company = state.associations.get(contact_id)
        results = (
            [{"toObjectId": int(company), "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 1,
                                                                "label": "Primary"}]}] if company else []
        )  # fmt: skip
        return answer({"results": results})

    base = "/crm/v3/objects/{kind:str}"
    return Starlette(
        routes=[
            Route(f"{base}/search", search, methods=["POST"]),
            Route(f"{base}/batch/read", batch_read, methods=["POST"]),
            Route(f"{base}/batch/update", batch_update, methods=["POST"]),
            Route(f"{base}/{{object_id:str}}", one, methods=["GET", "PATCH"]),
            Route(base, collection, methods=["GET", "POST"]),
            Route("/crm/v4/objects/contacts/{object_id:str}/associations/companies", associations, methods=["GET"]),
        ]
    )


def state_from_demo(clients: list[Client], contacts: list[Contact], **kwargs: Any) -> HubSpotState:
    """The demo's clients as companies and its contacts as contacts, with the same ids, in HubSpot's shape."""
    created = "2025-06-02T15:04:05.000Z"
    names = {c.id: c.name for c in clients}
    companies = {
        c.id: {
            "hs_object_id": c.id, "createdate": created, "lastmodifieddate": created, "name": c.name,
            "domain": c.domain, "industry": c.industry, "city": c.city,
            "sophia_units_managed": str(c.units_managed) if c.units_managed is not None else None,
            "sophia_arr": f"{c.arr:g}" if c.arr is not None else None, "sophia_segment": c.segment,
        }
        for c in clients
    }  # fmt: skip
    people: dict[str, dict[str, str | None]] = {}
    for c in contacts:
        people[c.id] = {
            "hs_object_id": c.id, "createdate": created, "lastmodifieddate": created, "email": c.email,
            "firstname": c.first_name, "lastname": c.last_name, "jobtitle": c.title, "phone": c.phone,
            "company": names.get(c.client_id or ""), "lifecyclestage": "customer",
        }  # fmt: skip
        people[c.id].update(dict.fromkeys(CONTACT_PROPERTIES - set(people[c.id])))
    links = {c.id: c.client_id for c in contacts if c.client_id}
    return HubSpotState(contacts=people, companies=companies, associations=links, **kwargs)
