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
import math
import re
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

from sophia_mcp.domain.crm import Client, Contact

ACCESS_TOKEN = "pat-na1-fake-hubspot-token"
READ_ONLY = {"hs_object_id", "createdate", "lastmodifieddate", "hubspotscore"}
CONTACT_PROPERTIES = {
    "email", "firstname", "lastname", "jobtitle", "phone", "company", "lifecyclestage", "city", "state", "country",
    "hs_linkedin_url", "sophia_seniority", "sophia_lead_score", "sophia_lead_grade",
}  # fmt: skip
COMPANY_PROPERTIES = {"name", "domain", "industry", "city", "sophia_units_managed", "sophia_arr", "sophia_segment"}
DATETIME_PROPERTIES = {"createdate", "lastmodifieddate"}
OPERATORS = {
    "EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN",
    "HAS_PROPERTY", "NOT_HAS_PROPERTY", "CONTAINS_TOKEN",
}  # fmt: skip
SEARCH_REACH = 10_000  # the most results one search query can page through
TEXT_FIELDS = {
    "contacts": ("firstname", "lastname", "email", "company", "phone"),
    "companies": ("name", "domain"),
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(value: str) -> int:
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


def _number(value: Any) -> float | None:
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _epoch_ms(value: Any) -> int:
    """A datetime property or filter value as epoch milliseconds: filters send digits, objects hold ISO-8601."""
    text = str(value).strip()
    return int(text) if text.lstrip("-").isdigit() else _ms(text)


def _pair(name: str, value: Any, target: Any) -> tuple[Any, Any]:
    """An object's value and a filter's, made comparable: instants, numbers when both parse, else text case-blind."""
    if name in DATETIME_PROPERTIES:
        return _epoch_ms(value), _epoch_ms(target)
    left, right = _number(value), _number(target)
    if left is not None and right is not None:
        return left, right
    return str(value).lower(), str(target).lower()


def _contains_token(value: Any, token: str) -> bool:
    """CONTAINS_TOKEN: a case-blind token or substring, where `*` stands for any run of characters."""
    text, token = str(value).lower(), token.lower().strip()
    if "*" not in token:
        return token in text
    pattern = re.compile(".*".join(re.escape(part) for part in token.split("*")))
    return bool(pattern.search(text))


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
    search_reach: int = SEARCH_REACH
    # Contacts written but not searchable yet: HubSpot's search shows a write a few seconds late.
    unindexed: set[str] = field(default_factory=set)
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
        if request.path_params.get("kind", "contacts") not in ("contacts", "companies"):
            return _error(404, "OBJECT_NOT_FOUND", f"Unknown object type: {request.path_params['kind']}")
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
            if not isinstance(body, dict):
                return _error(400, "VALIDATION_ERROR", "Invalid input JSON: expected an object")
        logged = body if body is not None else dict(request.query_params)
        state.requests.append((request.method, request.url.path, logged))
        request.state.body = body
        return None

    def render(kind: str, object_id: str, wanted: list[str] | None, associations: bool = False) -> dict[str, Any]:
        props = state.objects(kind)[object_id]
        base = {"hs_object_id", "createdate", "lastmodifieddate"}
        chosen = {k: v for k, v in props.items() if k in base or (wanted is not None and k in wanted)}
        chosen.update({k: None for k in wanted or [] if k in state.schema(kind) and k not in chosen})
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
        """An `after` this fake gave out: an opaque (base64) one from a list, a plain offset from a search."""
        if not after:
            return 0
        try:
            offset = int(after) if after.isdigit() else int(base64.b64decode(after, validate=True).decode().strip())
        except ValueError:
            return None
        return offset if offset >= 0 else None

    def paged(
        request: Request, kind: str, ids: list[str], offset: int, limit: int, wanted: list[str], search: bool = False
    ) -> dict[str, Any]:
        reach = min(len(ids), state.search_reach) if search else len(ids)
        page = ids[offset : min(offset + limit, reach)]
        body: dict[str, Any] = {"results": [render(kind, i, wanted) for i in page]}
        if offset + limit < reach:
            after = str(offset + limit) if search else encode(offset + limit)
            body["paging"] = {"next": {"after": after, "link": str(request.url.include_query_params(after=after))}}
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

    def props_of(kind: str, object_id: str) -> dict[str, str | None]:
        props = {"hs_object_id": object_id, **state.objects(kind)[object_id]}
        if kind == "contacts":
            props["associatedcompanyid"] = state.associations.get(object_id)
        return props

    def matches(kind: str, object_id: str, flt: dict[str, Any]) -> bool:
        """One filter against one object; ValueError when a value cannot be compared (a 400, as HubSpot's)."""
        name, op = str(flt.get("propertyName")), flt.get("operator")
        value = props_of(kind, object_id).get(name)
        if op == "HAS_PROPERTY":
            return value not in (None, "")
        if op == "NOT_HAS_PROPERTY":
            return value in (None, "")
        if value in (None, ""):
            return op in ("NEQ", "NOT_IN")
        if op == "CONTAINS_TOKEN":
            return _contains_token(value, str(flt.get("value") or ""))
        if op in ("IN", "NOT_IN"):
            inside = any(a == b for a, b in (_pair(name, value, v) for v in flt.get("values") or []))
            return inside if op == "IN" else not inside
        left, right = _pair(name, value, flt.get("value"))
        if op == "BETWEEN":
            high = _pair(name, value, flt.get("highValue"))[1]
            return bool(right <= left <= high)
        return bool(
            {"EQ": left == right, "NEQ": left != right, "LT": left < right, "LTE": left <= right,
             "GT": left > right, "GTE": left >= right}[str(op)]
        )  # fmt: skip

    def sort_key(kind: str, name: str, ids: list[str]) -> Any:
        """Numbers as numbers, datetimes as instants, other text case-blind; an empty value sorts last."""
        values = {i: props_of(kind, i).get(name) for i in ids}
        present = [v for v in values.values() if v not in (None, "")]
        if name in DATETIME_PROPERTIES:
            typed: Any = _epoch_ms
        elif all(_number(v) is not None for v in present):
            typed = _number
        else:
            typed = str.lower
        return lambda i: (values[i] in (None, ""), typed(values[i]) if values[i] not in (None, "") else 0)

    async def search(request: Request) -> Response:
        kind = request.path_params["kind"]
        if (refusal := await guard(request, search=True)) is not None:
            return refusal
        body = request.state.body if isinstance(request.state.body, dict) else {}
        groups = body.get("filterGroups") or []
        if len(groups) > 5 or any(len(g.get("filters") or []) > 6 for g in groups):
            return _error(400, "VALIDATION_ERROR", "Too many filter groups or filters: at most 5 groups of 6 filters")
        unknown = {f.get("operator") for g in groups for f in g.get("filters") or []} - OPERATORS
        if unknown:
            return _error(400, "VALIDATION_ERROR", f"Unknown filter operator: {sorted(map(str, unknown))[0]}")
        if len(body.get("sorts") or []) > 1:
            return _error(400, "VALIDATION_ERROR", "A search takes one sort rule")
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or not 1 <= limit <= 100:
            return _error(400, "VALIDATION_ERROR", "limit must be between 1 and 100")
        offset = decode(str(body.get("after") or ""))
        if offset is None:
            return _error(400, "VALIDATION_ERROR", "Invalid after value")
        if offset >= state.search_reach:
            return _error(400, "VALIDATION_ERROR", f"A search can page through at most {state.search_reach} results")
        query = str(body.get("query") or "").lower().strip()
        chosen = []
        try:
            for object_id, props in state.objects(kind).items():
                if object_id in state.unindexed:
                    continue
                if groups and not any(all(matches(kind, object_id, f) for f in g.get("filters") or []) for g in groups):
                    continue
                fields = [str(props.get(f) or "").lower() for f in TEXT_FIELDS[kind]]
                if (
                    query
                    and not any(query in text for text in fields)
                    and not all(any(word in text for text in fields) for word in query.split())
                ):
                    continue
                chosen.append(object_id)
        except (ValueError, TypeError) as exc:
            return _error(400, "VALIDATION_ERROR", f"Invalid filter value: {exc}")
        chosen.sort(key=int)
        for sort in reversed(body.get("sorts") or []):
            name = str(sort.get("propertyName"))
            chosen.sort(key=sort_key(kind, name, chosen), reverse=sort.get("direction") == "DESCENDING")
        wanted = list(body.get("properties") or [])
        return answer({"total": len(chosen), **paged(request, kind, chosen, offset, limit, wanted, True)}, search=True)

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


def _field(record: Any, name: str) -> Any:
    return getattr(record, name, None)


def _text(value: Any) -> str | None:
    """A HubSpot property value: a string, numbers without exponent or a needless `.0`, or null."""
    if value is None:
        return None
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def state_from_demo(clients: list[Client], contacts: list[Contact], **kwargs: Any) -> HubSpotState:
    """The demo's clients as companies and its contacts as contacts, with the same ids, in HubSpot's shape."""
    created = "2025-06-02T15:04:05.000Z"
    stamps = {"createdate": created, "lastmodifieddate": created}
    companies: dict[str, dict[str, str | None]] = {}
    for c in clients:
        companies[c.id] = {
            "hs_object_id": c.id, **stamps, "name": _field(c, "name"), "domain": _field(c, "domain"),
            "industry": _field(c, "industry"), "city": _field(c, "city"),
            "sophia_units_managed": _text(_field(c, "units_managed")), "sophia_arr": _text(_field(c, "arr")),
            "sophia_segment": _field(c, "segment"),
        }  # fmt: skip
    people: dict[str, dict[str, str | None]] = {}
    links: dict[str, str] = {}
    for p in contacts:
        client_id = _field(p, "client_id")
        people[p.id] = {
            "hs_object_id": p.id, **stamps, "email": _field(p, "email"), "firstname": _field(p, "first_name"),
            "lastname": _field(p, "last_name"), "jobtitle": _field(p, "title"), "phone": _field(p, "phone"),
            "company": (companies.get(client_id or "") or {}).get("name"), "lifecyclestage": "customer",
        }  # fmt: skip
        people[p.id].update(dict.fromkeys(CONTACT_PROPERTIES - set(people[p.id])))
        if client_id:
            links[p.id] = client_id
    return HubSpotState(contacts=people, companies=companies, associations=links, **kwargs)
