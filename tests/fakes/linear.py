"""A fake Linear GraphQL API, per ../shared/apis/linear.md.

Every query is parsed and validated (graphql-core) against the subset of Linear's schema that the facts
describe, so a query Linear would refuse is refused here too (HTTP 400, GRAPHQL_VALIDATION_FAILED). Auth is a
personal API key in `Authorization` without "Bearer", or an OAuth token with it; a bad one answers 401 with an
AUTHENTICATION_ERROR. Errors are GraphQL `errors` on HTTP 200 (ENTITY_NOT_FOUND, INVALID_INPUT); rate limiting
is HTTP 400 with RATELIMITED and the X-RateLimit headers. Relay paging (`first` up to 250, `after`). Faults
can be queued: "ratelimited", "500", "lost" (the mutation is done, the answer comes too late), and "leaky" (an
error that quotes the request's credentials).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
from graphql import GraphQLError, build_schema, graphql_sync, parse, validate
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

API_KEY = "lin_api_fake0000000000000000000000000000000000"
OAUTH_TOKEN = "lin_oauth_fake000000000000000000000000"

SCHEMA = build_schema(
    """
    scalar DateTime
    scalar TimelessDate

    type Query {
      teams(first: Int, after: String): TeamConnection!
      users(first: Int, after: String): UserConnection!
      issueLabels(first: Int, after: String, filter: IssueLabelFilter): IssueLabelConnection!
      workflowStates(first: Int, after: String, filter: WorkflowStateFilter): WorkflowStateConnection!
      issue(id: String!): Issue!
      issues(filter: IssueFilter, first: Int, after: String): IssueConnection!
      searchIssues(term: String!, first: Int, after: String): IssueSearchPayload!
      comment(id: String!): Comment!
    }

    type Mutation {
      issueCreate(input: IssueCreateInput!): IssuePayload!
      issueUpdate(id: String!, input: IssueUpdateInput!): IssuePayload!
      attachmentCreate(input: AttachmentCreateInput!): AttachmentPayload!
      commentCreate(input: CommentCreateInput!): CommentPayload!
    }

    type Attachment { id: ID! url: String! title: String! }
    type AttachmentPayload { success: Boolean! attachment: Attachment }
    type Comment { id: ID! body: String! }
    type CommentPayload { success: Boolean! comment: Comment }
    input AttachmentCreateInput { id: String title: String! subtitle: String url: String! issueId: String! }
    input CommentCreateInput { id: String body: String issueId: String parentId: String }

    type PageInfo { hasNextPage: Boolean! endCursor: String }
    type Team { id: ID! key: String! name: String! }
    type TeamConnection { nodes: [Team!]! pageInfo: PageInfo! }
    type User { id: ID! name: String! email: String! active: Boolean! }
    type UserConnection { nodes: [User!]! pageInfo: PageInfo! }
    type IssueLabel { id: ID! name: String! }
    type IssueLabelConnection { nodes: [IssueLabel!]! pageInfo: PageInfo! }
    type WorkflowState { id: ID! name: String! type: String! }
    type WorkflowStateConnection { nodes: [WorkflowState!]! pageInfo: PageInfo! }
    type Issue {
      id: ID! identifier: String! title: String! description: String priority: Int! url: String!
      createdAt: DateTime! updatedAt: DateTime! dueDate: TimelessDate
      state: WorkflowState! team: Team! assignee: User labels: IssueLabelConnection!
    }
    type IssueConnection { nodes: [Issue!]! pageInfo: PageInfo! }
    type IssueSearchPayload { nodes: [Issue!]! pageInfo: PageInfo! }
    type IssuePayload { success: Boolean! issue: Issue }

    input IDComparator { eq: ID }
    input StringComparator { eq: String eqIgnoreCase: String containsIgnoreCase: String in: [String!] }
    input TeamFilter { id: IDComparator key: StringComparator }
    input IssueLabelFilter { team: TeamFilter name: StringComparator }
    input WorkflowStateFilter { team: TeamFilter name: StringComparator }
    input IssueLabelCollectionFilter { name: StringComparator }
    input IssueFilter {
      and: [IssueFilter!] or: [IssueFilter!] title: StringComparator team: TeamFilter state: WorkflowStateFilter
      labels: IssueLabelCollectionFilter
    }
    input IssueCreateInput {
      teamId: String! title: String description: String priority: Int assigneeId: String labelIds: [String!]
      stateId: String dueDate: TimelessDate projectId: String parentId: String subscriberIds: [String!]
    }
    input IssueUpdateInput {
      title: String description: String priority: Int assigneeId: String labelIds: [String!] stateId: String
      dueDate: TimelessDate
    }
    """
)

STATE_NAMES = [("Backlog", "backlog"), ("Todo", "unstarted"), ("In Progress", "started"), ("In Review", "started"),
               ("Done", "completed"), ("Canceled", "canceled")]  # fmt: skip


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _error(code: str, message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, "type": code.lower(), "userPresentableMessage": message})


@dataclass
class LinearState:
    teams: list[dict[str, Any]] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)  # each with a team_id
    states: list[dict[str, Any]] = field(default_factory=list)  # each with a team_id
    issues: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)  # each with its issue_id
    comments: list[dict[str, Any]] = field(default_factory=list)  # each with its issue_id
    faults: list[str] = field(default_factory=list)
    slow_seconds: float = 3.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not self.teams:
            self.teams = [{"id": str(uuid.uuid4()), "key": k, "name": n}
                          for k, n in [("CS", "Customer Success"), ("ENG", "Engineering")]]  # fmt: skip
            self.users = [{"id": str(uuid.uuid4()), "name": "Dana Reyes", "email": "dana@example.com", "active": True}]
            for team in self.teams:
                self.labels += [{"id": str(uuid.uuid4()), "name": n, "team_id": team["id"]}
                                for n in ("bug", "client-health", "churn")]  # fmt: skip
                self.states += [{"id": str(uuid.uuid4()), "name": n, "type": t, "team_id": team["id"]}
                                for n, t in STATE_NAMES]  # fmt: skip

    def move(self, issue: dict[str, Any], state: str) -> dict[str, Any]:
        """Move `issue` to its team's state named `state`, as a person does in Linear; that state."""
        found = next(s for s in self.states if s["team_id"] == issue["team_id"] and s["name"] == state)
        issue["state_id"] = found["id"]
        return found

    def next_fault(self) -> str | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None


def _page(items: list[Any], first: int | None, after: str | None) -> dict[str, Any]:
    size = min(first or 50, 250)
    start = int(after) if after and after.isdigit() else 0
    chunk = items[start : start + size]
    more = start + size < len(items)
    return {"nodes": chunk, "pageInfo": {"hasNextPage": more, "endCursor": str(start + len(chunk)) if chunk else None}}


def _text_ok(value: str | None, comparator: dict[str, Any] | None) -> bool:
    if not comparator:
        return True
    value = value or ""
    if "eq" in comparator and value != comparator["eq"]:
        return False
    if "eqIgnoreCase" in comparator and value.casefold() != str(comparator["eqIgnoreCase"]).casefold():
        return False
    if "containsIgnoreCase" in comparator and str(comparator["containsIgnoreCase"]).casefold() not in value.casefold():
        return False
    return not ("in" in comparator and value not in comparator["in"])


class Root:
    """Resolvers: graphql-core calls these methods for the top-level fields."""

    def __init__(self, state: LinearState, base: str) -> None:
        self.state = state
        self.base = base

    def _view(self, issue: dict[str, Any]) -> dict[str, Any]:
        s = self.state
        team = next(t for t in s.teams if t["id"] == issue["team_id"])
        return {
            **issue,
            "team": team,
            "state": next(x for x in s.states if x["id"] == issue["state_id"]),
            "assignee": next((u for u in s.users if u["id"] == issue.get("assignee_id")), None),
            "labels": {"nodes": [lb for lb in s.labels if lb["id"] in issue["label_ids"]],
                       "pageInfo": {"hasNextPage": False, "endCursor": None}},
            "url": f"{self.base}/issue/{issue['identifier']}",
        }  # fmt: skip

    def teams(self, info: Any, first: int | None = None, after: str | None = None) -> dict[str, Any]:
        return _page(self.state.teams, first, after)

    def users(self, info: Any, first: int | None = None, after: str | None = None) -> dict[str, Any]:
        return _page(self.state.users, first, after)

    @staticmethod
    def _team_ok(team_id: str, flt: dict[str, Any] | None, teams: list[dict[str, Any]]) -> bool:
        if not flt:
            return True
        team = next((t for t in teams if t["id"] == team_id), {})
        wanted = (flt.get("id") or {}).get("eq")
        return (wanted is None or team.get("id") == wanted) and _text_ok(team.get("key"), flt.get("key"))

    def issueLabels(self, info: Any, first: int | None = None, after: str | None = None,
                    filter: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
        flt = filter or {}
        rows = [
            lb for lb in self.state.labels
            if self._team_ok(lb["team_id"], flt.get("team"), self.state.teams) and _text_ok(lb["name"], flt.get("name"))
        ]  # fmt: skip
        return _page(rows, first, after)

    def workflowStates(self, info: Any, first: int | None = None, after: str | None = None,
                       filter: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
        flt = filter or {}
        rows = [x for x in self.state.states if self._team_ok(x["team_id"], flt.get("team"), self.state.teams)]
        return _page(rows, first, after)

    def _find(self, ref: str) -> dict[str, Any]:
        for issue in self.state.issues:
            if ref in (issue["id"], issue["identifier"]):
                return issue
        raise _error("ENTITY_NOT_FOUND", f"Could not find referenced Issue: {ref}")

    def issue(self, info: Any, id: str) -> dict[str, Any]:
        return self._view(self._find(id))

    def _matches(self, issue: dict[str, Any], flt: dict[str, Any] | None) -> bool:
        if not flt:
            return True
        view = self._view(issue)
        if "and" in flt and not all(self._matches(issue, part) for part in flt["and"]):
            return False
        if "or" in flt and not any(self._matches(issue, part) for part in flt["or"]):
            return False
        if not _text_ok(issue["title"], flt.get("title")):
            return False
        if not self._team_ok(issue["team_id"], flt.get("team"), self.state.teams):
            return False
        if "state" in flt and not _text_ok(view["state"]["name"], flt["state"].get("name")):
            return False
        labels = flt.get("labels")
        return not (labels and not any(_text_ok(lb["name"], labels.get("name")) for lb in view["labels"]["nodes"]))

    def issues(self, info: Any, filter: dict[str, Any] | None = None, first: int | None = None,
               after: str | None = None) -> dict[str, Any]:  # fmt: skip
        rows = [self._view(i) for i in reversed(self.state.issues) if self._matches(i, filter)]
        return _page(rows, first, after)

    def searchIssues(self, info: Any, term: str, first: int | None = None, after: str | None = None) -> dict[str, Any]:
        words = term.casefold()
        rows = [self._view(i) for i in reversed(self.state.issues)
                if words in i["title"].casefold() or words in (i["description"] or "").casefold()]  # fmt: skip
        return _page(rows, first, after)

    def _check_input(self, team_id: str, data: dict[str, Any]) -> None:
        s = self.state
        if "priority" in data and data["priority"] is not None and not 0 <= data["priority"] <= 4:
            raise _error("INVALID_INPUT", "priority must be between 0 and 4")
        if data.get("title") is not None and not str(data["title"]).strip():
            raise _error("INVALID_INPUT", "title must not be empty")
        if data.get("assigneeId") and not any(u["id"] == data["assigneeId"] for u in s.users):
            raise _error("INVALID_INPUT", "assigneeId must be a user in the workspace")
        for label_id in data.get("labelIds") or []:
            if not any(lb["id"] == label_id and lb["team_id"] == team_id for lb in s.labels):
                raise _error("INVALID_INPUT", f"labelIds: {label_id} is not a label of the team")
        if data.get("stateId") and not any(x["id"] == data["stateId"] and x["team_id"] == team_id for x in s.states):
            raise _error("INVALID_INPUT", "stateId must be a state of the issue's team")

    def issueCreate(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        s = self.state
        team = next((t for t in s.teams if t["id"] == input["teamId"]), None)
        if team is None:
            raise _error("INVALID_INPUT", "teamId must be the id of a team")
        if not (input.get("title") or "").strip():
            raise _error("INVALID_INPUT", "title must not be empty")
        self._check_input(team["id"], input)
        with s._lock:
            number = sum(1 for i in s.issues if i["team_id"] == team["id"]) + 1
            issue = {
                "id": str(uuid.uuid4()), "identifier": f"{team['key']}-{number}", "title": input["title"],
                "description": input.get("description"), "priority": input.get("priority") or 0,
                "team_id": team["id"], "assignee_id": input.get("assigneeId"), "label_ids": input.get("labelIds") or [],
                "state_id": input.get("stateId") or next(x["id"] for x in s.states
                                                         if x["team_id"] == team["id"] and x["name"] == "Todo"),
                "dueDate": input.get("dueDate"), "createdAt": _now(), "updatedAt": _now(),
            }  # fmt: skip
            s.issues.append(issue)
        return {"success": True, "issue": self._view(issue)}

    def issueUpdate(self, info: Any, id: str, input: dict[str, Any]) -> dict[str, Any]:
        issue = self._find(id)
        self._check_input(issue["team_id"], input)
        renames = {"assigneeId": "assignee_id", "labelIds": "label_ids", "stateId": "state_id"}
        for name, value in input.items():
            issue[renames.get(name, name)] = value if name != "labelIds" else (value or [])
        issue["updatedAt"] = _now()
        return {"success": True, "issue": self._view(issue)}

    def comment(self, info: Any, id: str) -> dict[str, Any]:
        found = next((c for c in self.state.comments if c["id"] == id), None)
        if found is None:
            raise _error("ENTITY_NOT_FOUND", f"Could not find referenced Comment: {id}")
        return found

    def attachmentCreate(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        # Linear keeps one attachment per URL on an issue: creating it again updates it.
        issue = self._find(input["issueId"])
        with self.state._lock:
            found = next((a for a in self.state.attachments
                          if a["issue_id"] == issue["id"] and a["url"] == input["url"]), None)  # fmt: skip
            if found is None:
                found = {"id": input.get("id") or str(uuid.uuid4()), "issue_id": issue["id"], "url": input["url"]}
                self.state.attachments.append(found)
            found["title"] = input["title"]
        return {"success": True, "attachment": found}

    def commentCreate(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        if not input.get("issueId"):
            raise _error("INVALID_INPUT", "issueId is required")
        issue = self._find(input["issueId"])
        with self.state._lock:
            wanted = input.get("id") or str(uuid.uuid4())
            if any(c["id"] == wanted for c in self.state.comments):
                raise _error("INVALID_INPUT", "Entity with this id already exists")
            made = {"id": wanted, "issue_id": issue["id"], "body": input.get("body") or ""}
            self.state.comments.append(made)
        return {"success": True, "comment": made}


def linear_app(state: LinearState) -> Starlette:
    def limits() -> dict[str, str]:
        reset = str(int((time.time() + 1) * 1000))
        return {"X-RateLimit-Requests-Limit": "5000", "X-RateLimit-Requests-Remaining": "4999",
                "X-RateLimit-Requests-Reset": reset, "X-Complexity": "10"}  # fmt: skip

    async def graphql_endpoint(request: Request) -> JSONResponse:
        auth = request.headers.get("authorization", "")
        if auth not in (API_KEY, f"Bearer {OAUTH_TOKEN}"):
            refused = {"code": "AUTHENTICATION_ERROR", "type": "authentication error"}
            body = {"errors": [{"message": "Authentication required, not authenticated", "extensions": refused}]}
            return JSONResponse(body, 401)
        payload = await request.json()
        state.requests.append(payload)
        fault = state.next_fault()
        if fault == "401":  # the key revoked for this one request
            body = {"errors": [{"message": "Authentication required, not authenticated"}]}
            return JSONResponse(body, 401)
        if fault == "500":
            return JSONResponse({"errors": [{"message": "Internal server error"}]}, 500)
        if fault == "leaky":  # an error that quotes the request's credentials
            said = f"Invalid input: the request with Authorization {auth} cannot be served"
            return JSONResponse({"errors": [{"message": said, "extensions": {"code": "INVALID_INPUT"}}]}, 200)
        if fault == "ratelimited":
            body = {"errors": [{"message": "Rate limit exceeded", "extensions": {"code": "RATELIMITED"}}]}
            return JSONResponse(body, 400, headers=limits() | {"X-RateLimit-Requests-Remaining": "0"})
        try:
            document = parse(payload.get("query") or "")
        except GraphQLError as exc:
            return JSONResponse({"errors": [exc.formatted]}, 400)
        problems = validate(SCHEMA, document)
        if problems:
            errors = [p.formatted | {"extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}} for p in problems]
            return JSONResponse({"errors": errors}, 400, headers=limits())
        base = f"{request.url.scheme}://{request.url.netloc}"
        result = graphql_sync(
            SCHEMA, payload["query"], root_value=Root(state, base), variable_values=payload.get("variables")
        )
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [e.formatted for e in result.errors]
        if fault == "lost":
            await anyio.sleep(state.slow_seconds)
        return JSONResponse(body, 200, headers=limits())

    return Starlette(routes=[Route("/graphql", graphql_endpoint, methods=["POST"])])
