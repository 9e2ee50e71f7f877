"""The `CRM` port on HubSpot's CRM API v3: contacts and companies, read, searched and written.

A private-app token as a bearer; our field names mapped to HubSpot properties by settings (some are custom
properties a portal creates); `paging.next.after` followed; batch reads and writes of at most 100; search paced
under its own 5-per-second limit; 207 Multi-Status answers read contact by contact; HubSpot's error bodies turned
into messages that name the property it refused.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, TypeVar

import httpx
from aiolimiter import AsyncLimiter
from pydantic import BaseModel, ValidationError

from sophia_mcp.adapters.http import ServiceClient
from sophia_mcp.domain.crm import Client, ClientPage, Contact, ContactChanges, ContactPage, ContactQuery
from sophia_mcp.domain.cursors import decode_cursor, encode_cursor
from sophia_mcp.domain.times import parse_iso
from sophia_mcp.errors import ConfigurationError, InvalidInput, NotFound
from sophia_mcp.settings import HubSpotSettings

log = logging.getLogger(__name__)

CONTACTS = "/crm/v3/objects/contacts"
COMPANIES = "/crm/v3/objects/companies"
BATCH = 100
SEARCH_MAX = 100


def hubspot_client(settings: HubSpotSettings, transport: httpx.AsyncBaseTransport | None = None) -> ServiceClient:
    if settings.access_token is None:
        raise ConfigurationError(
            "The hubspot backend needs SOPHIA_HUBSPOT__ACCESS_TOKEN, a private app's access token "
            "(HubSpot: Settings > Integrations > Private Apps, with crm.objects.contacts and companies scopes)."
        )
    token = settings.access_token.get_secret_value()
    return ServiceClient(
        "HubSpot", settings, headers={"Authorization": f"Bearer {token}"}, secrets=[token], transport=transport
    )


def hubspot_error(payload: Any) -> str:
    """HubSpot's own account of a refusal: its message, and the properties it names."""
    if not isinstance(payload, dict):
        return "no details given"
    names: list[str] = []
    for item in payload.get("errors") or []:
        names += ((item.get("context") or {}).get("propertyName") or []) if isinstance(item, dict) else []
    message = str(payload.get("message") or payload.get("category") or "no details given")
    return f"{message} (property: {', '.join(dict.fromkeys(names))})" if names else message


def _text(value: Any) -> str:
    """HubSpot property values are strings; an empty string clears one."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _ms(value: datetime) -> str:
    return str(int(value.timestamp() * 1000))


class HubSpotCRM:
    name = "hubspot"
    batch_size = BATCH

    def __init__(self, http: ServiceClient, settings: HubSpotSettings) -> None:
        self.http = http
        self.fields = dict(settings.contact_properties)
        self.company_fields = dict(settings.company_properties)
        self._search_pace = AsyncLimiter(1, 1 / settings.search_per_second)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def check(self) -> str:
        """One small authenticated request, for `doctor`."""
        await self.http.request("GET", CONTACTS, params={"limit": 1})
        return f"HubSpot at {self.http.settings.base_url} accepted the token"

    # -- mapping --------------------------------------------------------------------------------------

    @property
    def _contact_properties(self) -> list[str]:
        return [*self.fields.values(), "associatedcompanyid", "lastmodifieddate"]

    def _contact(self, obj: dict[str, Any]) -> Contact:
        props = obj.get("properties") or {}
        values: dict[str, Any] = {field: props.get(name) or None for field, name in self.fields.items()}
        values["id"] = str(obj["id"])
        values["client_id"] = props.get("associatedcompanyid") or None
        values["updated_at"] = props.get("lastmodifieddate") or obj.get("updatedAt")
        return _lenient(Contact, values)

    def _client(self, obj: dict[str, Any]) -> Client:
        props = obj.get("properties") or {}
        values = {field: props.get(name) or None for field, name in self.company_fields.items()}
        values["id"] = str(obj["id"])
        values["name"] = values.get("name") or f"Company {obj['id']}"
        return _lenient(Client, values)

    def _properties(self, changes: ContactChanges) -> dict[str, str]:
        unknown = [f for f in changes if f not in self.fields]
        if unknown:
            raise InvalidInput(
                f"No HubSpot property is mapped to {', '.join(unknown)}; map it in SOPHIA_HUBSPOT__CONTACT_PROPERTIES"
            )
        return {self.fields[f]: _text(v) for f, v in changes.items()}

    # -- contacts -------------------------------------------------------------------------------------

    async def get_contact(self, contact_id: str) -> Contact:
        response, payload = await self.http.request(
            "GET",
            f"{CONTACTS}/{contact_id}",
            params={"properties": ",".join(self._contact_properties)},
            ok={404},
        )
        if response.status_code == 404:
            raise NotFound(f"No HubSpot contact with id {contact_id!r}. Use search_contacts to find contact ids.")
        return self._contact(payload)

    async def _batch_read(self, path: str, properties: list[str], ids: list[str]) -> list[dict[str, Any]]:
        """The objects that exist among `ids`, read 100 at a time (a 207 answer leaves the missing ones out)."""
        objects: list[dict[str, Any]] = []
        for start in range(0, len(ids), BATCH):
            chunk = ids[start : start + BATCH]
            _, payload = await self.http.request(
                "POST", f"{path}/batch/read", json={"properties": properties, "inputs": [{"id": i} for i in chunk]}
            )
            objects += (payload or {}).get("results") or []
        return objects

    async def get_contacts(self, contact_ids: list[str]) -> dict[str, Contact]:
        objects = await self._batch_read(CONTACTS, self._contact_properties, contact_ids)
        return {contact.id: contact for contact in map(self._contact, objects)}

    async def search_contacts(self, query: ContactQuery, limit: int, cursor: str | None) -> ContactPage:
        filters: list[dict[str, Any]] = []
        if query.client_id:
            filters.append({"propertyName": "associatedcompanyid", "operator": "EQ", "value": query.client_id})
        if query.email:
            filters.append({"propertyName": "email", "operator": "EQ", "value": query.email})
        if query.updated_since:
            filters.append({"propertyName": "lastmodifieddate", "operator": "GTE", "value": _ms(query.updated_since)})
        body: dict[str, Any] = {
            "properties": self._contact_properties,
            "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            "limit": min(limit, SEARCH_MAX),
        }
        if filters:
            body["filterGroups"] = [{"filters": filters}]
        if query.text:
            body["query"] = query.text
        if cursor:
            body["after"] = decode_cursor(cursor, "contacts", str)[0]
        async with self._search_pace:
            _, payload = await self.http.request("POST", f"{CONTACTS}/search", json=body)
        payload = payload or {}
        return ContactPage(
            contacts=[self._contact(obj) for obj in payload.get("results") or []],
            next_cursor=_following(payload, "contacts"),
            total=payload.get("total"),
        )

    async def update_contact(self, contact_id: str, changes: ContactChanges) -> Contact:
        response, payload = await self.http.request(
            "PATCH", f"{CONTACTS}/{contact_id}", json={"properties": self._properties(changes)}, ok={400, 404, 409}
        )
        if response.status_code == 404:
            raise NotFound(f"No HubSpot contact with id {contact_id!r}. Use search_contacts to find contact ids.")
        if response.status_code >= 400:
            raise InvalidInput(f"HubSpot refused the change to contact {contact_id}: {hubspot_error(payload)}")
        return await self.get_contact(contact_id)

    async def update_contacts(self, changes: dict[str, ContactChanges]) -> dict[str, str | None]:
        outcome: dict[str, str | None] = {}
        ids = list(changes)
        for start in range(0, len(ids), BATCH):
            chunk = ids[start : start + BATCH]
            inputs = [{"id": i, "properties": self._properties(changes[i])} for i in chunk]
            response, payload = await self.http.request(
                "POST", f"{CONTACTS}/batch/update", json={"inputs": inputs}, ok={400}
            )
            if response.status_code == 400:  # the whole batch refused
                reason = hubspot_error(payload)
                outcome.update({i: reason for i in chunk})
                continue
            payload = payload or {}
            written = {str(obj.get("id")) for obj in payload.get("results") or []}
            for error in payload.get("errors") or []:
                reason = hubspot_error({"errors": [error], "message": error.get("message")})
                for contact_id in (error.get("context") or {}).get("ids") or []:
                    outcome[str(contact_id)] = reason
            for contact_id in chunk:
                if contact_id in written:
                    outcome[contact_id] = None
                else:
                    outcome.setdefault(contact_id, "HubSpot did not confirm this write")
        return outcome

    # -- companies ------------------------------------------------------------------------------------

    async def get_client(self, client_id: str) -> Client | None:
        response, payload = await self.http.request(
            "GET",
            f"{COMPANIES}/{client_id}",
            params={"properties": ",".join(self.company_fields.values())},
            ok={404},
        )
        return None if response.status_code == 404 else self._client(payload)

    async def get_clients(self, client_ids: list[str]) -> dict[str, Client]:
        objects = await self._batch_read(COMPANIES, list(self.company_fields.values()), client_ids)
        return {client.id: client for client in map(self._client, objects)}

    async def list_clients(self, text: str | None, limit: int, cursor: str | None) -> ClientPage:
        properties = list(self.company_fields.values())
        after = decode_cursor(cursor, "clients", str)[0] if cursor else None
        if text:
            body: dict[str, Any] = {"query": text, "properties": properties, "limit": min(limit, SEARCH_MAX)}
            if after:
                body["after"] = after
            async with self._search_pace:
                _, payload = await self.http.request("POST", f"{COMPANIES}/search", json=body)
        else:
            params: dict[str, Any] = {"limit": min(limit, 100), "properties": ",".join(properties)}
            if after:
                params["after"] = after
            _, payload = await self.http.request("GET", COMPANIES, params=params)
        payload = payload or {}
        return ClientPage(
            clients=[self._client(obj) for obj in payload.get("results") or []],
            next_cursor=_following(payload, "clients"),
        )

    async def contacts_modified_since(self, since: datetime) -> AsyncIterator[list[dict[str, Any]]]:
        """Every contact modified at or after `since`, earliest change first, a page at a time, as HubSpot's search
        gives them (`id`, `properties` with ours and `lastmodifieddate`). One search reaches 10,000 results at most:
        past that, the search starts again at the last one read's modification time (so those modified in that
        millisecond are read twice: a caller keeps each change once)."""
        start = int(_ms(since))
        while True:
            read, total, after, last = 0, 0, None, None
            while True:
                # HubSpot's search takes one sort rule.
                body: dict[str, Any] = {
                    "filterGroups": [{"filters": [
                        {"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(start)}]}],
                    "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
                    "properties": self._contact_properties,
                    "limit": SEARCH_MAX,
                }  # fmt: skip
                if after:
                    body["after"] = after
                async with self._search_pace:
                    _, payload = await self.http.request("POST", f"{CONTACTS}/search", json=body)
                payload = payload or {}
                results = list(payload.get("results") or [])
                total = int(payload.get("total") or 0)
                if results:
                    read, last = read + len(results), results[-1]
                    yield results
                after = ((payload.get("paging") or {}).get("next") or {}).get("after")
                if not after or not results:
                    break
            if last is None or read >= total:
                return
            following = modified_ms(last)
            if following <= start:
                # A whole search's reach modified in one millisecond (a bulk import): the rest of it cannot be paged to.
                log.warning("HubSpot: over %d contacts were modified at %d ms; reading on after it", read, start)
                following = start + 1
            start = following


def modified_ms(contact: dict[str, Any]) -> int:
    """When a contact (as the search gives it) was last modified, in epoch milliseconds."""
    props = contact.get("properties") or {}
    value = str(props.get("lastmodifieddate") or contact.get("updatedAt") or "")
    if value.isdigit():
        return int(value)
    try:
        return int(parse_iso(value).timestamp() * 1000)
    except ValueError:
        raise InvalidInput(f"HubSpot gave contact {contact.get('id')} a lastmodifieddate of {value!r}") from None


def _following(payload: dict[str, Any], kind: str) -> str | None:
    """Our cursor for the page after this one, holding HubSpot's own `paging.next.after`."""
    after = ((payload.get("paging") or {}).get("next") or {}).get("after")
    return encode_cursor(kind, str(after)) if after else None


M = TypeVar("M", bound=BaseModel)


def _lenient(model: type[M], values: dict[str, Any]) -> M:
    """The record, without any value our model cannot hold (a grade typed by hand in HubSpot, say)."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        bad = {str(item["loc"][0]) for item in exc.errors() if item["loc"]}
        return model.model_validate({k: v for k, v in values.items() if k not in bad})
