"""The `IssueTracker` port on Linear's GraphQL API (`POST /graphql`), over the shared HTTP layer.

Linear answers errors as GraphQL `errors`, also on HTTP 200, and says "rate limited" with HTTP 400 and the
code RATELIMITED: that is paced and retried like a 429, waiting until `X-RateLimit-Requests-Reset`. Linear has
no idempotency key: an issue's key goes into the store's ledger before the create is sent and into a footer of
its description, so a create whose answer was lost is found by searching for the key instead of being repeated.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from typing import Any

import httpx

from sophia_mcp.adapters.http import RetryableResponse, ServiceClient
from sophia_mcp.domain.cursors import decode_cursor, encode_cursor
from sophia_mcp.domain.issues import Issue, IssueChanges, IssueDraft, IssuePage, IssueQuery, Team
from sophia_mcp.domain.times import parse_iso
from sophia_mcp.errors import ConfigurationError, InvalidInput, NotFound
from sophia_mcp.settings import LinearSettings
from sophia_mcp.store.issue_keys import IssueKeys

log = logging.getLogger(__name__)

# What of Linear's own error message an error keeps.
DETAIL_CHARS = 300

ISSUE = """id identifier title description priority url createdAt updatedAt
state { name } team { key } assignee { name email } labels { nodes { name } }"""
TEAMS = "query Teams { teams(first: 250) { nodes { id key name } } }"
USERS = "query Users { users(first: 250) { nodes { id name email active } } }"
LABELS = """query Labels($teamId: ID) {
  issueLabels(first: 250, filter: { team: { id: { eq: $teamId } } }) { nodes { id name } }
}"""
STATES = """query States($teamId: ID) {
  workflowStates(first: 250, filter: { team: { id: { eq: $teamId } } }) { nodes { id name type } }
}"""
GET = f"query Issue($id: String!) {{ issue(id: $id) {{ {ISSUE} }} }}"
SEARCH = f"""query Issues($filter: IssueFilter, $first: Int, $after: String) {{
  issues(filter: $filter, first: $first, after: $after) {{ nodes {{ {ISSUE} }} pageInfo {{ hasNextPage endCursor }} }}
}}"""
FIND_KEY = f"query Find($term: String!) {{ searchIssues(term: $term, first: 5) {{ nodes {{ {ISSUE} }} }} }}"
CREATE = f"""mutation IssueCreate($input: IssueCreateInput!) {{
  issueCreate(input: $input) {{ success issue {{ {ISSUE} }} }}
}}"""
UPDATE = f"""mutation IssueUpdate($id: String!, $input: IssueUpdateInput!) {{
  issueUpdate(id: $id, input: $input) {{ success issue {{ {ISSUE} }} }}
}}"""

ATTACH = """mutation AttachmentCreate($input: AttachmentCreateInput!) {
  attachmentCreate(input: $input) { success }
}"""
COMMENT = """mutation CommentCreate($input: CommentCreateInput!) {
  commentCreate(input: $input) { success }
}"""
COMMENT_BY_ID = "query Comment($id: String!) { comment(id: $id) { id } }"


def comment_id(key: str) -> str:
    """The id a keyed comment is created with (Linear takes a client-given UUID v4): the same key, the same id,
    so a comment whose answer was lost is found, not made twice."""
    return str(uuid.UUID(bytes=hashlib.sha256(key.encode()).digest()[:16], version=4))


def key_footer(key: str) -> str:
    return f"sophia-mcp key: {key}"


class LinearHTTP(ServiceClient):
    """The shared client, reading Linear's "rate limited" (HTTP 400, RATELIMITED) as a 429."""

    endpoint = "/graphql"

    def _check(self, response: httpx.Response, accepted: set[int]) -> Any:
        if response.status_code == 400 and b"RATELIMITED" in response.content:
            reset = response.headers.get("x-ratelimit-requests-reset")
            wait = max(0.0, int(reset) / 1000 - time.time()) if reset and reset.isdigit() else 1.0
            raise RetryableResponse(response, "HTTP 400 RATELIMITED", wait_s=wait)
        return super()._check(response, accepted)


def linear_client(settings: LinearSettings, transport: httpx.AsyncBaseTransport | None = None) -> LinearHTTP:
    if settings.api_key is None:
        raise ConfigurationError("The linear backend needs SOPHIA_LINEAR__API_KEY (a personal API key, lin_api_...)")
    key = settings.api_key.get_secret_value()
    # A personal API key is sent as it is; an OAuth access token as a Bearer token.
    authorization = key if key.startswith("lin_api_") else f"Bearer {key}"
    # The endpoint is one URL; the client's base is its origin (httpx would add a slash to a base with a path).
    url = httpx.URL(settings.base_url or "https://api.linear.app/graphql")
    origin = settings.model_copy(update={"base_url": f"{url.scheme}://{url.netloc.decode()}"})
    client = LinearHTTP("Linear", origin, headers={"Authorization": authorization}, secrets=[key], transport=transport)
    client.endpoint = url.path or "/"
    return client


def _issue(node: dict[str, Any]) -> Issue:
    assignee = node.get("assignee") or {}
    return Issue(
        id=node["id"], identifier=node["identifier"], title=node["title"], description=node.get("description") or "",
        priority=int(node.get("priority") or 0), state=(node.get("state") or {}).get("name", ""),
        team_key=(node.get("team") or {}).get("key", ""), assignee=assignee.get("email") or assignee.get("name"),
        labels=[label["name"] for label in (node.get("labels") or {}).get("nodes") or []], url=node.get("url"),
        created_at=parse_iso(node["createdAt"]), updated_at=parse_iso(node["updatedAt"]),
    )  # fmt: skip


class LinearTracker:
    name = "linear"

    def __init__(self, http: LinearHTTP, keys: IssueKeys, settings: LinearSettings) -> None:
        self.http = http
        self.keys = keys
        self.settings = settings
        self._teams: list[Team] | None = None

    async def aclose(self) -> None:
        await self.http.aclose()

    async def check(self) -> str:
        teams = await self.teams()
        return f"Linear accepted the API key ({len(teams)} teams: {', '.join(t.key for t in teams[:10])})"

    async def _graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        request = {"query": query, "variables": variables or {}}
        _, body = await self.http.request("POST", self.http.endpoint, json=request, ok={400})
        errors = (body or {}).get("errors") or []
        if errors:
            first = errors[0]
            extensions = first.get("extensions") or {}
            code = extensions.get("code", "")
            said = str(extensions.get("userPresentableMessage") or first.get("message") or code)
            message = self.http.redact(said, DETAIL_CHARS)  # Linear's words may quote what it was sent
            if code == "ENTITY_NOT_FOUND":
                raise NotFound(f"Linear has no such record: {message}")
            if code in ("FORBIDDEN", "AUTHENTICATION_ERROR"):
                raise ConfigurationError(f"Linear refused: {message}; check SOPHIA_LINEAR__API_KEY and its access")
            raise InvalidInput(f"Linear rejected the request: {message}")
        data = (body or {}).get("data")
        if not isinstance(data, dict):
            raise InvalidInput("Linear answered without data")
        return data

    # -- names to ids ------------------------------------------------------------------------------------

    async def teams(self) -> list[Team]:
        if self._teams is None:
            data = await self._graphql(TEAMS)
            self._teams = [Team(id=t["id"], key=t["key"], name=t["name"]) for t in data["teams"]["nodes"]]
        return self._teams

    async def _team(self, ref: str) -> Team:
        teams = await self.teams()
        for team in teams:
            if ref.strip() == team.id or ref.strip().casefold() == team.key.casefold():
                return team
        known = ", ".join(t.key for t in teams)
        raise InvalidInput(f"Unknown team {ref!r}; the teams are {known} (list_teams shows them)")

    async def _user_id(self, ref: str) -> str:
        users = (await self._graphql(USERS))["users"]["nodes"]
        wanted = ref.strip().casefold()
        for user in users:
            if wanted in (str(user.get("email", "")).casefold(), str(user.get("name", "")).casefold(), user["id"]):
                return str(user["id"])
        raise InvalidInput(f"No Linear member {ref!r}; give a member's email or name")

    async def _label_ids(self, team_id: str, names: list[str]) -> list[str]:
        labels = (await self._graphql(LABELS, {"teamId": team_id}))["issueLabels"]["nodes"]
        by_name = {str(label["name"]).casefold(): str(label["id"]) for label in labels}
        missing = [n for n in names if n.casefold() not in by_name]
        if missing:
            log.warning("Linear has no labels %s for this team; the issue goes without them", missing)
        return [by_name[n.casefold()] for n in names if n.casefold() in by_name]

    async def _state_id(self, team_id: str, name: str) -> str:
        states = (await self._graphql(STATES, {"teamId": team_id}))["workflowStates"]["nodes"]
        for state in states:
            if str(state["name"]).casefold() == name.strip().casefold():
                return str(state["id"])
        raise InvalidInput(f"Unknown state {name!r}; the team's states are {', '.join(s['name'] for s in states)}")

    # -- issues -----------------------------------------------------------------------------------------

    async def get(self, issue_id: str) -> Issue:
        node = (await self._graphql(GET, {"id": issue_id.strip()})).get("issue")
        if not node:
            raise NotFound(f"No issue {issue_id!r} in Linear")
        return _issue(node)

    async def search(self, query: IssueQuery) -> IssuePage:
        parts: list[dict[str, Any]] = []
        if query.text:
            parts.append({"title": {"containsIgnoreCase": query.text.strip()}})
        if query.team:
            parts.append({"team": {"key": {"eq": (await self._team(query.team)).key}}})
        if query.state:
            parts.append({"state": {"name": {"eqIgnoreCase": query.state.strip()}}})
        if query.labels:
            parts.append({"labels": {"name": {"in": query.labels}}})
        after = decode_cursor(query.cursor, "issues", str)[0] if query.cursor else None
        variables = {"filter": {"and": parts} if parts else None, "first": query.limit, "after": after}
        issues = (await self._graphql(SEARCH, variables))["issues"]
        page = issues.get("pageInfo") or {}
        return IssuePage(
            issues=[_issue(n) for n in issues["nodes"]],
            next_cursor=encode_cursor("issues", str(page["endCursor"])) if page.get("hasNextPage") else None,
        )

    async def _find_by_key(self, key: str) -> Issue | None:
        nodes = (await self._graphql(FIND_KEY, {"term": key}))["searchIssues"]["nodes"]
        return next((_issue(n) for n in nodes if key_footer(key) in (n.get("description") or "")), None)

    async def create(self, draft: IssueDraft, key: str) -> tuple[Issue, bool]:
        known, begun = await self.keys.claim(key)
        if known:
            return await self.get(known), False
        if begun:  # an earlier create's answer was lost: it may have gone through
            found = await self._find_by_key(key)
            if found is not None:
                await self.keys.record(key, found)
                return found, False
        team = await self._team(draft.team)
        payload: dict[str, Any] = {
            "teamId": team.id,
            "title": draft.title.strip(),
            "description": f"{draft.description}\n\n---\n{key_footer(key)}".lstrip(),
            "priority": draft.priority,
        }
        try:
            if draft.assignee:
                payload["assigneeId"] = await self._user_id(draft.assignee)
            if draft.labels:
                payload["labelIds"] = await self._label_ids(team.id, draft.labels)
            if draft.due_date:
                payload["dueDate"] = draft.due_date.isoformat()
            answer = (await self._graphql(CREATE, {"input": payload}))["issueCreate"]
        except (InvalidInput, NotFound, ConfigurationError):
            await self.keys.record(key, None)  # refused: nothing was created, the key is free again
            raise
        if not answer.get("success") or not answer.get("issue"):
            await self.keys.record(key, None)
            raise InvalidInput("Linear did not create the issue")
        issue = _issue(answer["issue"])
        await self.keys.record(key, issue)
        return issue, True

    async def update(self, issue_id: str, changes: IssueChanges) -> Issue:
        current = await self.get(issue_id)
        team = await self._team(current.team_key)
        payload: dict[str, Any] = changes.model_dump(exclude_none=True, include={"title", "description", "priority"})
        if "title" in payload:
            payload["title"] = payload["title"].strip()
        if changes.state is not None:
            payload["stateId"] = await self._state_id(team.id, changes.state)
        if changes.assignee is not None:
            payload["assigneeId"] = await self._user_id(changes.assignee) if changes.assignee else None
        if changes.labels is not None:
            payload["labelIds"] = await self._label_ids(team.id, changes.labels)
        if not payload:
            return current
        answer = (await self._graphql(UPDATE, {"id": current.id, "input": payload}))["issueUpdate"]
        if not answer.get("success") or not answer.get("issue"):
            raise InvalidInput(f"Linear did not update {current.identifier}")
        return _issue(answer["issue"])

    # -- the bug's path ---------------------------------------------------------------------------------

    async def states(self, issue_id: str) -> list[tuple[str, str]]:
        current = await self.get(issue_id)
        team = await self._team(current.team_key)
        nodes = (await self._graphql(STATES, {"teamId": team.id}))["workflowStates"]["nodes"]
        return [(str(n["name"]), str(n.get("type") or "")) for n in nodes]

    async def link(self, issue_id: str, url: str, title: str) -> None:
        # Linear keeps one attachment per URL on an issue: the same URL again updates it.
        current = await self.get(issue_id)
        answer = await self._graphql(ATTACH, {"input": {"issueId": current.id, "url": url, "title": title}})
        if not answer["attachmentCreate"].get("success"):
            raise InvalidInput(f"Linear did not link {url} on {current.identifier}")

    async def comment(self, issue_id: str, body: str, key: str) -> bool:
        current = await self.get(issue_id)
        wanted = comment_id(key)
        try:
            answer = await self._graphql(COMMENT, {"input": {"id": wanted, "issueId": current.id, "body": body}})
        except InvalidInput as refused:
            # Refused because a comment has this id already (an earlier attempt's), or for a reason of its own.
            try:
                await self._graphql(COMMENT_BY_ID, {"id": wanted})
            except NotFound:
                raise refused from None
            return False
        if not answer["commentCreate"].get("success"):
            raise InvalidInput(f"Linear did not comment on {current.identifier}")
        return True

    async def available(self, people: list[str]) -> list[str]:
        users = (await self._graphql(USERS))["users"]["nodes"]
        active = {str(u.get(f, "")).casefold() for u in users if u.get("active", True) for f in ("email", "name")}
        return [p for p in people if p.strip().casefold() in active]
