"""The linear server: issues in Linear (or the local tracker): create once per key, search, update, teams."""

import hashlib
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.prompts.base import Message, UserMessage
from pydantic import Field

from sophia_mcp.app.services import Services
from sophia_mcp.domain.issues import Issue, IssueChanges, IssueDraft, IssuePage, IssueQuery, Priority, Team
from sophia_mcp.domain.model import Model
from sophia_mcp.errors import InvalidInput
from sophia_mcp.mcp.server import KEY_PATTERN, CalendarDate, Cursor, SlackChannel, SophiaServer, services_of, tool_hints
from sophia_mcp.settings import Settings
from sophia_mcp.workflows.bugs import BugReportResult, notify_state
from sophia_mcp.workflows.bugs import report_bug as report_bug_workflow
from sophia_mcp.workflows.issues import default_team

INSTRUCTIONS = """\
Issues in Linear (or the local tracker when Linear is not configured). create_issue opens one in a team (by key,
e.g. CS, or the default team) with a priority (1 urgent .. 4 low), assignee and labels; the same
idempotency_key never opens a second issue. search_issues finds issues by title words, team, state or label;
update_issue changes state, priority, assignee, labels or text; list_teams shows the teams and their keys.
report_bug files a bug report as it was written (e.g. a Slack message) and keeps its channel told.
get_issue reads one issue by its identifier (CS-12)."""

IssueRef = Annotated[
    str, Field(pattern=r"^([A-Za-z][A-Za-z0-9]{0,9}-\d{1,9}|[0-9a-f-]{36})$", max_length=36,
               description="Issue identifier (CS-12) or id.", examples=["CS-12"])
]  # fmt: skip
TeamRef = Annotated[str, Field(min_length=1, max_length=80, description="Team key (e.g. CS) or id.")]
Label = Annotated[str, Field(min_length=1, max_length=80)]


class CreatedIssue(Model):
    issue: Issue
    new: bool = Field(description="False when this idempotency key had already opened the issue.")


class TeamList(Model):
    teams: list[Team]
    default_team: str | None = Field(description="Where issues go when no team is named.")


async def create_issue(
    ctx: Context,
    title: Annotated[str, Field(min_length=1, max_length=255, description="One line saying what is wrong or wanted.")],
    description: Annotated[str, Field(max_length=50_000, description="Markdown: context, links, next steps.")] = "",
    team: Annotated[TeamRef | None, Field(description="Default: SOPHIA_LINEAR__TEAM.")] = None,
    priority: Priority = 0,
    assignee: Annotated[str | None, Field(max_length=200, description="A member's email or name.")] = None,
    labels: Annotated[list[Label] | None, Field(max_length=20, description="Label names, e.g. bug.")] = None,
    due_date: Annotated[CalendarDate | None, Field(description="YYYY-MM-DD.")] = None,
    idempotency_key: Annotated[
        str | None,
        Field(
            pattern=KEY_PATTERN,
            max_length=200,
            description="What the issue is about, e.g. health:acme:2026-W48; "
            "a key that already opened an issue returns that issue. Default: the team, title and text.",
        ),
    ] = None,
) -> CreatedIssue:
    """Open an issue in a team, once per idempotency key: calling again with the same key (or the same team, title
    and description) returns the issue already opened instead of a duplicate."""
    services = services_of(ctx)
    team = team or default_team(services)
    if not team:
        raise InvalidInput("Name a team (list_teams shows them) or set SOPHIA_LINEAR__TEAM")
    draft = IssueDraft(
        team=team, title=title, description=description, priority=priority, assignee=assignee, labels=labels or [],
        due_date=due_date,
    )  # fmt: skip
    key = idempotency_key or "issue:" + hashlib.sha256(f"{team}\n{title}\n{description}".encode()).hexdigest()[:20]
    issue, new = await services.tracker.create(draft, key)
    return CreatedIssue(issue=issue, new=new)


async def search_issues(
    ctx: Context,
    text: Annotated[str | None, Field(max_length=200, description="Words in the title, or an identifier.")] = None,
    team: TeamRef | None = None,
    state: Annotated[str | None, Field(max_length=80, description="e.g. Todo, In Progress, Done.")] = None,
    labels: Annotated[list[Label] | None, Field(max_length=20, description="Issues with any of these.")] = None,
    limit: Annotated[int | None, Field(ge=1, le=100, description="Issues per page, 1-100; null: 20.")] = 20,
    cursor: Cursor = None,
) -> IssuePage:
    """Find issues by title words, team, state or label, newest first."""
    query = IssueQuery(text=text, team=team, state=state, labels=labels, limit=limit or 20, cursor=cursor)
    return await services_of(ctx).tracker.search(query)


async def get_issue(ctx: Context, issue_id: IssueRef) -> Issue:
    """One issue by its identifier (CS-12) or id: title, description, state, priority, assignee, labels, link."""
    return await services_of(ctx).tracker.get(issue_id)


async def update_issue(
    ctx: Context,
    issue_id: IssueRef,
    title: Annotated[str | None, Field(min_length=1, max_length=255)] = None,
    description: Annotated[str | None, Field(max_length=50_000)] = None,
    state: Annotated[str | None, Field(min_length=1, max_length=80, description="e.g. In Progress, Done.")] = None,
    priority: Priority | None = None,
    assignee: Annotated[str | None, Field(max_length=200, description="Email or name; empty to unassign.")] = None,
    labels: Annotated[list[Label] | None, Field(max_length=20, description="The labels it should have.")] = None,
) -> Issue:
    """Change an issue's state, priority, assignee, labels, title or description; what is not given stays."""
    changes = IssueChanges(
        title=title, description=description, state=state, priority=priority, assignee=assignee, labels=labels
    )
    if changes.is_empty():
        raise InvalidInput("Nothing to change: give at least one of title, description, state, priority, assignee "
                           "or labels")  # fmt: skip
    services = services_of(ctx)
    issue = await services.tracker.update(issue_id, changes)
    if changes.state is not None:
        await notify_state(services, issue)  # a bug report's channel hears of the new state
    return issue


async def report_bug(
    ctx: Context,
    text: Annotated[
        str,
        Field(
            min_length=3,
            max_length=20_000,
            description="The report as written, e.g. a Slack message: the first line becomes the title.",
        ),
    ],
    reporter: Annotated[str, Field(min_length=1, max_length=200, description="Who reported it (name or @handle).")],
    channel: Annotated[
        SlackChannel,
        Field(
            description="Where it was reported; told when the issue is filed and when its state changes.",
            examples=["#support"],
        ),
    ],
) -> BugReportResult:
    """File a bug report as an issue: title from its first line, priority and labels (bug, and areas such as
    payments or reporting) from its words; the reporter's channel is told, and told again on each state change.
    The same report again returns the issue already filed."""
    return await report_bug_workflow(services_of(ctx), text, reporter, channel)


async def list_teams(ctx: Context) -> TeamList:
    """The teams issues can go to, with their keys, and the default team."""
    services = services_of(ctx)
    return TeamList(teams=await services.tracker.teams(), default_team=default_team(services))


async def issue_resource(issue_id: str, ctx: Context) -> str:
    return (await services_of(ctx).tracker.get(issue_id)).model_dump_json(indent=2)


def triage_bug(
    report: Annotated[str, Field(max_length=20_000, description="The bug report, as the reporter wrote it.")],
) -> list[Message]:
    """Turn a bug report into a well-formed issue."""
    return [
        UserMessage(
            "Turn this bug report into an issue: a one-line title, a description with steps, expected and actual "
            "behaviour, and a priority (1 urgent if customers are blocked, 2 high if many are affected, 3 medium "
            "otherwise). Create it with create_issue in team ENG with the label bug.\n\n" + report
        )
    ]


def _complete_issue_ids(services: Services, typed: str, _: dict[str, str]) -> list[str]:
    return services.suggestions.issue_identifiers(typed, 100)


def register(server: SophiaServer, prefix: str = "") -> None:
    """Declare the linear tools, resources, prompts and completions on `server` (tool names get `prefix`)."""
    hints = tool_hints
    server.declare_tool(
        create_issue, name="create_issue", prefix=prefix,
        annotations=hints("Create issue", read_only=False, idempotent=True, open_world=True),
    )  # fmt: skip
    server.declare_tool(
        search_issues,
        name="search_issues",
        prefix=prefix,
        annotations=hints("Search issues", read_only=True, open_world=True),
    )
    server.declare_tool(
        get_issue, name="get_issue", prefix=prefix, annotations=hints("Get issue", read_only=True, open_world=True)
    )
    server.declare_tool(
        update_issue, name="update_issue", prefix=prefix,
        annotations=hints("Update issue", read_only=False, idempotent=True, open_world=True),
    )  # fmt: skip
    server.declare_tool(list_teams, name="list_teams", prefix=prefix, annotations=hints("List teams", read_only=True))
    server.declare_tool(
        report_bug, name="report_bug", prefix=prefix,
        annotations=hints("Report a bug", read_only=False, idempotent=True, open_world=True),
    )  # fmt: skip
    server.declare_resource("linear://issues/{issue_id}", name="issue", title="Issue", mime_type="application/json")(
        issue_resource
    )
    server.prompt(name="triage_bug", title="Triage a bug report")(triage_bug)
    server.add_completer("linear://issues/{issue_id}", "issue_id", _complete_issue_ids)


def create_server(settings: Settings | None = None, **kwargs: Any) -> SophiaServer:
    server = SophiaServer("sophia-linear", INSTRUCTIONS, settings, **kwargs)
    register(server)
    return server
