"""One settings tree for every server, workflow and CLI command.

Read, highest precedence first, from: keyword arguments, environment variables (`SOPHIA_` prefix, `__`
between nested names: `SOPHIA_GONG__BASE_URL`), a `.env` file in the working directory, and a TOML file
(`SOPHIA_CONFIG_FILE`, else `sophia.toml` in the working directory). Secrets are `SecretStr` and never printed.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from platformdirs import user_data_dir
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from sophia_mcp.domain.weights import (
    DEFAULT_COMPANY_PROPERTIES,
    DEFAULT_COMPETITORS,
    DEFAULT_CONTACT_PROPERTIES,
    Competitor,
    HealthWeights,
    LeadScoreWeights,
)


class Integration(BaseModel):
    """What every external service has: which backend serves it, where it lives, how hard to lean on it."""

    backend: str = "local"
    base_url: str | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    retry_base_s: float = Field(default=0.5, gt=0, description="First backoff wait; it doubles, with jitter.")
    retry_max_s: float = Field(default=30.0, gt=0, description="Longest wait between attempts, Retry-After included.")
    rate_per_second: float = Field(default=10.0, gt=0, description="Requests per second this client allows itself.")
    max_concurrency: int = Field(default=4, ge=1)


class GongSettings(Integration):
    backend: Literal["local", "gong"] = "local"
    base_url: str | None = "https://api.gong.io"
    access_key: SecretStr | None = None
    access_key_secret: SecretStr | None = None
    webhook_public_key: str | None = Field(
        default=None,
        description="The public key (PEM) Gong shows for an automation rule's signed-JWT webhook: /hooks/gong takes "
        "only calls signed by it.",
    )
    # Gong allows 3 requests per second, company-wide.
    rate_per_second: float = Field(default=3.0, gt=0)
    max_concurrency: int = Field(default=3, ge=1)


class HubSpotSettings(Integration):
    backend: Literal["local", "hubspot"] = "local"
    base_url: str | None = "https://api.hubapi.com"
    access_token: SecretStr | None = None
    # Private apps on Free/Starter get 100 requests per 10 s; search endpoints 5 per second on any plan.
    rate_per_second: float = Field(default=9.0, gt=0)
    search_per_second: float = Field(default=4.0, gt=0)
    webhook_secret: SecretStr | None = Field(
        default=None, description="The app's client secret, which signs its webhooks (X-HubSpot-Signature-v3)."
    )
    contact_properties: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_CONTACT_PROPERTIES),
        description="Our contact field -> the HubSpot contact property that holds it. The sophia_* ones are "
        "custom properties to create in HubSpot (Settings > Properties) or map to your own.",
    )
    company_properties: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_COMPANY_PROPERTIES),
        description="Our client field -> the HubSpot company property that holds it.",
    )
    confirm_writes: bool = Field(
        default=True, description="Ask the user (MCP elicitation, when the client offers it) before writing."
    )


class ApolloSettings(Integration):
    backend: Literal["local", "apollo"] = "local"
    base_url: str | None = "https://api.apollo.io/api/v1"
    api_key: SecretStr | None = None
    rate_per_second: float = Field(default=1.0, gt=0)
    bulk_per_minute: float = Field(
        default=20.0, gt=0, description="Bulk people matches per minute (Apollo throttles bulk harder)."
    )
    max_concurrency: int = Field(default=2, ge=1)


class EnrichmentSettings(BaseModel):
    """How contact enrichment treats what the CRM already holds."""

    overwrite: bool = Field(
        default=False,
        description="Replace values the CRM already has with the enricher's; by default only blanks are filled.",
    )
    refresh_days: int = Field(
        default=30, ge=0, description="A contact enriched more recently than this is skipped unless forced."
    )


class SnowflakeSettings(Integration):
    backend: Literal["local", "snowflake"] = "local"
    account: str | None = None
    user: str | None = None
    password: SecretStr | None = None
    private_key_file: Path | None = None
    private_key_file_pwd: SecretStr | None = None
    warehouse: str | None = None
    database: str | None = None
    schema_: str | None = Field(default=None, alias="schema")
    role: str | None = None
    query_timeout_s: int = Field(default=60, gt=0)


class PineconeSettings(Integration):
    backend: Literal["local", "pinecone"] = "local"
    api_key: SecretStr | None = None
    index_host: str | None = None
    namespace: str = "sophia"


class OpenAISettings(Integration):
    backend: Literal["local", "openai"] = "local"
    base_url: str | None = "https://api.openai.com/v1"
    api_key: SecretStr | None = None
    model: str = "gpt-4o-mini"
    embedding_model: str = "text-embedding-3-small"
    max_input_chars: int = Field(
        default=48_000, ge=2_000, description="Transcript text per request; longer calls are read in chunks."
    )
    max_retries: int = Field(default=2, ge=0)


class SlackSettings(Integration):
    backend: Literal["local", "slack"] = "local"
    base_url: str | None = "https://slack.com/api/"
    bot_token: SecretStr | None = None
    rate_per_second: float = Field(default=1.0, gt=0)
    signing_secret: SecretStr | None = Field(
        default=None, description="The app's signing secret, which signs Events API requests to /hooks/slack."
    )


class LinearSettings(Integration):
    backend: Literal["local", "linear"] = "local"
    base_url: str | None = "https://api.linear.app/graphql"
    api_key: SecretStr | None = Field(
        default=None, description="A personal API key (sent as is) or an OAuth token (sent as a Bearer token)."
    )
    team: str | None = Field(default=None, description="Key or id of the team issues go to when none is named.")
    bug_team: str | None = Field(default=None, description="Team for bug reports; default `team`.")
    webhook_secret: SecretStr | None = Field(
        default=None, description="The webhook's signing secret (Linear-Signature) for /hooks/linear."
    )


class BugsSettings(BaseModel):
    """Where bug reports come from by themselves: Slack messages in these channels (by the Events API at
    /hooks/slack, or read by the slack-bugs connector) are filed as bugs, and the issue is replied in the thread."""

    channels: list[str] = Field(
        default_factory=list, description='Slack channel ids (or #names) whose messages are bug reports: ["C0123"].'
    )
    assignees: list[str] = Field(
        default_factory=list,
        description='Who bug reports are assigned to, in turn (Linear users by email or name): ["dana@example.com"]. '
        "Anyone the tracker marks inactive is skipped; none set leaves reports to the team's triage.",
    )


class GithubSettings(BaseModel):
    """GitHub's pull request webhooks: a pull request naming a bug's issue moves it."""

    webhook_secret: SecretStr | None = Field(
        default=None, description="The webhook's secret (X-Hub-Signature-256) for /hooks/github."
    )


class VercelSettings(BaseModel):
    """Vercel's deployment webhooks: a deployment naming a bug's issue is noted on it, and a live fix told."""

    webhook_secret: SecretStr | None = Field(
        default=None, description="The webhook's secret (x-vercel-signature, HMAC-SHA1) for /hooks/vercel."
    )


class ConnectorSettings(BaseModel):
    """The polling connectors (for when webhooks cannot reach us): where a first poll starts, and how far each poll
    reads back before its cursor, for what a service shows late."""

    backfill_hours: float = Field(
        default=24.0, ge=0, description="A connector's first poll reads what is new since this many hours ago."
    )
    gong_lookback_hours: float = Field(
        default=6.0, ge=0, description="Gong lists a call once it is processed, hours after it started: each poll "
        "reads calls that started this long before the last one seen (the inbox keeps a call once)."
    )  # fmt: skip
    hubspot_lag_s: float = Field(
        default=60.0, ge=0, description="HubSpot's search shows a write a few seconds late: each poll reads contacts "
        "modified this long before the last one seen (the inbox keeps a change once)."
    )  # fmt: skip


class InboxSettings(BaseModel):
    """How events from outside are processed once kept: retried with backoff, given up on after the last attempt."""

    max_attempts: int = Field(default=8, ge=1, le=100, description="Attempts before an event is dead (kept, shown).")
    retry_base_s: float = Field(default=10.0, gt=0, description="Wait before the first retry; it doubles.")
    retry_max_s: float = Field(default=3600.0, gt=0, description="Longest wait between attempts.")
    lease_s: float = Field(
        default=120.0, gt=0, description="How long a worker holds an event; one that dies leaves it for this long."
    )
    batch: int = Field(default=50, ge=1, le=1000, description="Events a worker claims at a time.")
    concurrency: int = Field(default=8, ge=1, le=200, description="Events a worker processes at once.")
    poll_s: float = Field(default=2.0, gt=0, description="How often an idle worker looks for events kept elsewhere.")


DEFAULT_ROUTES = {
    "health": "#client-health",
    "churn": "#leadership",
    "competitive": "#competitive-intel",
    "bug": "#bugs",
    "dashboard": "#dashboards",
}


class MonitorSettings(BaseModel):
    """Scheduled client-health monitoring: what it opens for a client under the health threshold."""

    period_days: int = Field(
        default=7, ge=1, le=90, description="One issue, meeting and alert per client per period (7: per ISO week)."
    )
    team: str | None = Field(default=None, description="Team for its issues; default SOPHIA_LINEAR__TEAM.")
    priority: int = Field(default=2, ge=0, le=4, description="Issue priority (1 urgent .. 4 low).")
    meeting_hour_utc: int = Field(default=15, ge=0, le=23, description="Meetings are asked for the next weekday "
                                  "at this hour (UTC).")  # fmt: skip
    meeting_minutes: int = Field(default=30, ge=5, le=240)
    organizer_email: str = Field(default="cs-ops@sophia.local", description="Who sends the meeting requests.")


class CalendarSettings(BaseModel):
    """Where meetings are booked: .ics invites kept in the store (local), or a CalDAV calendar (Google Calendar,
    iCloud, Fastmail, Nextcloud, Radicale), at the first free slot of the organizer's working hours."""

    backend: Literal["local", "caldav"] = "local"
    url: str | None = Field(default=None, description="The CalDAV server, or the calendar's own URL.")
    username: str | None = None
    password: SecretStr | None = Field(default=None, description="The password, or an app password.")
    calendar: str | None = Field(
        default=None, max_length=200, description="The calendar's name when the URL names a server; default the first."
    )
    timezone: str = Field(default="UTC", description="The organizer's time zone (IANA name, e.g. America/Chicago).")
    work_start_hour: int = Field(default=9, ge=0, le=23, description="Working hours start (local time).")
    work_end_hour: int = Field(default=17, ge=1, le=24, description="Working hours end (local time).")
    search_days: int = Field(default=10, ge=1, le=60, description="How many days ahead a free slot is looked for.")
    timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Europe/Berlin") from None
        return value

    @model_validator(mode="after")
    def _hours_in_order(self) -> CalendarSettings:
        if self.work_end_hour <= self.work_start_hour:
            raise ValueError("work_end_hour must come after work_start_hour")
        return self


INTERVAL = re.compile(r"^(\d{1,6})(s|m|h|d)$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def interval_seconds(every: str) -> int:
    """`every` ("30s", "5m", "2h", "1d") in seconds; ValueError if it is not one of those forms."""
    match = INTERVAL.match(every.strip())
    if match is None or int(match[1]) == 0:
        raise ValueError(f"{every!r} is not an interval: write a number and s, m, h or d, e.g. 5m")
    return int(match[1]) * UNIT_SECONDS[match[2]]


def check_cron(cron: str) -> str:
    """A five-field cron expression (minute hour day month weekday, in UTC), or ValueError saying what is wrong."""
    try:
        CronSim(cron, datetime.now(UTC))
    except CronSimError as exc:
        raise ValueError(f"{cron!r} is not a cron expression ({exc}); e.g. '0 2 * * *' is 02:00 every day") from None
    return cron.strip()


ScheduledWorkflow = Literal[
    "health-monitor", "deliver-outbox", "bug-status", "competitive-intel", "churn",
    "gong-calls", "hubspot-contacts", "slack-bugs", "watch-folder",
]  # fmt: skip


class ScheduleSpec(BaseModel):
    """A workflow run on a cron expression (UTC) or at an interval."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,59}$")
    workflow: ScheduledWorkflow
    cron: str | None = Field(default=None, description="minute hour day month weekday, UTC: '0 2 * * *'.")
    every: str | None = Field(default=None, description="An interval: 30s, 5m, 2h, 1d.")
    enabled: bool = True

    @model_validator(mode="after")
    def _one_timing(self) -> ScheduleSpec:
        if (self.cron is None) == (self.every is None):
            raise ValueError("give exactly one of cron (e.g. '0 2 * * *') or every (e.g. '5m')")
        if self.cron is not None:
            self.cron = check_cron(self.cron)
        if self.every is not None:
            interval_seconds(self.every)
        return self

    @property
    def spec(self) -> str:
        return f"cron {self.cron}" if self.cron else f"every {self.every}"


DEFAULT_SCHEDULES = [
    ScheduleSpec(name="health-monitor", workflow="health-monitor", every="5m"),
    ScheduleSpec(name="deliver-outbox", workflow="deliver-outbox", every="1m"),
    ScheduleSpec(name="bug-status", workflow="bug-status", every="10m"),
    ScheduleSpec(name="competitive-intel", workflow="competitive-intel", cron="0 2 * * *"),
    ScheduleSpec(name="churn", workflow="churn", cron="0 6 * * 1"),
]


CONNECTOR_SCHEDULES = {
    "gong-calls": ScheduleSpec(name="gong-calls", workflow="gong-calls", every="5m"),
    "hubspot-contacts": ScheduleSpec(name="hubspot-contacts", workflow="hubspot-contacts", every="2m"),
    "slack-bugs": ScheduleSpec(name="slack-bugs", workflow="slack-bugs", every="1m"),
    "watch-folder": ScheduleSpec(name="watch-folder", workflow="watch-folder", every="1m"),
}


def polling_connectors(settings: Settings) -> list[ScheduleSpec]:
    """The connectors the default schedules run: each whose service is configured for real and cannot reach us by
    webhook (no webhook secret set), and the folder one when a folder is watched."""
    wanted = {
        "gong-calls": settings.gong.backend == "gong" and not settings.gong.webhook_public_key,
        "hubspot-contacts": settings.hubspot.backend == "hubspot" and settings.hubspot.webhook_secret is None,
        "slack-bugs": settings.slack.backend == "slack" and bool(settings.bugs.channels)
        and settings.slack.signing_secret is None,
        "watch-folder": settings.knowledge.watch is not None,
    }  # fmt: skip
    return [CONNECTOR_SCHEDULES[name] for name, on in wanted.items() if on]


class HTTPSettings(BaseModel):
    """Serving over HTTP: who may call, and from where."""

    bearer_token: SecretStr | None = Field(
        default=None, description="Required as 'Authorization: Bearer <token>'; must be set to listen beyond loopback."
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Host headers let through beside the loopback names (JSON or commas)."
    )
    public_url: str | None = Field(
        default=None, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$", max_length=500,
        description="The base URL users reach this server by (e.g. https://sophia.example.com): the dashboard links "
        "posted to Slack start with it. Default http://{host}:{port} of `serve --transport http`.",
    )  # fmt: skip
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins let through beside loopback ones (JSON or commas)."
    )
    stateless: bool = Field(default=False, description="Streamable HTTP without sessions, for several replicas.")
    request_state_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Keys (32+ characters; JSON or commas, the first seals) sealing the state a "
        "2026-07-28 client carries between the rounds of one request: the same on every replica, so any may resume "
        "it. None: a key of the process's own, so only the replica that asked can resume."
    )  # fmt: skip
    max_body_mb: float = Field(default=4.0, gt=0, description="Larger request bodies are refused (413).")
    rate_per_minute: float = Field(
        default=600.0, ge=0, description="Requests per minute one client (its OAuth subject, else its address) may "
        "make; beyond, 429 with Retry-After. 0: no limit."
    )  # fmt: skip
    max_connections: int = Field(
        default=1000, ge=1, description="Open connections at most (and what the file-descriptor limit leaves); beyond, "
        "the one waiting longest for its headers is closed, or the new one if none is."
    )  # fmt: skip
    header_timeout_s: float = Field(default=10.0, gt=0, description="A request's headers must arrive within this.")
    body_timeout_s: float = Field(default=30.0, gt=0, description="A request's body must arrive within this (408).")
    keep_alive_s: int = Field(default=5, ge=1, description="An idle keep-alive connection is closed after this.")
    sessions_per_client: int = Field(
        default=16, ge=1, description="Streamable HTTP sessions one client may hold open; beyond, 429."
    )
    max_sessions: int = Field(default=1000, ge=1, description="Streamable HTTP sessions open at most; beyond, 503.")
    session_idle_s: float = Field(
        default=600.0, gt=0, description="A Streamable HTTP session with no request for this long is closed."
    )
    jwks_url: str | None = Field(default=None, description="OAuth: the authorization server's JWKS; tokens are JWTs.")
    write_scope: str = Field(default="sophia:write", description="OAuth: the scope a token needs for every tool "
                             "that is not read-only.")  # fmt: skip
    issuer: str | None = Field(default=None, description="OAuth: the tokens' required issuer (iss).")
    audience: str | None = Field(default=None, description="OAuth: the tokens' required audience (aud): this server.")
    required_scopes: Annotated[list[str], NoDecode] = Field(default_factory=list, description="OAuth: scopes every "
                                                           "request needs (JSON or commas).")  # fmt: skip

    @field_validator("jwks_url", "issuer", "audience")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("must be an http(s) URL, e.g. https://mcp.example.com/mcp")
        return value

    @field_validator("allowed_hosts", "allowed_origins", "required_scopes", "request_state_keys", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            return json.loads(text) if text.startswith("[") else [p.strip() for p in text.split(",") if p.strip()]
        return value

    @field_validator("request_state_keys")
    @classmethod
    def _long_enough(cls, keys: list[SecretStr]) -> list[SecretStr]:
        if any(len(k.get_secret_value().encode()) < 32 for k in keys):
            raise ValueError("each request-state key needs at least 32 characters of secret randomness")
        return keys


class ChurnSettings(BaseModel):
    threshold: float = Field(
        default=0.7, gt=0, lt=1, description="Above this churn probability: an urgent issue, a meeting, an alert."
    )


class RedisSettings(BaseModel):
    url: str | None = Field(
        default=None,
        description="redis://host:port/db: cached answers and each client's HTTP rate shared by "
        "replicas; none keeps them in each process.",
    )


class StoreSettings(BaseModel):
    url: SecretStr | None = Field(
        default=None,
        description=(
            "postgresql://user:password@host:port/db: the operational store on PostgreSQL, shared by replicas on any "
            "host; none keeps it in SQLite under the data directory."
        ),
    )


class StrategicSettings(BaseModel):
    """The strategic query's sources: how long each may take, and how long an answer is reused."""

    source_budget_s: float = Field(default=3.0, gt=0, le=60, description="Time each source gets.")
    cache_ttl_s: float = Field(default=300.0, ge=0, description="How long a source's answer is reused.")


class AnalyticsSettings(BaseModel):
    """Bounds on the SQL query_warehouse and run_metric run: how long it may take, how large a value it may build."""

    timeout_s: float = Field(default=5.0, gt=0, le=600, description="A query running longer is stopped.")
    max_value_kb: int = Field(
        default=256, ge=16, le=1_000_000, description="The largest text, blob or row a query may build on the local "
        "warehouse; one larger stops it (SQLite's length limit, which also bounds the time a text function takes)."
    )  # fmt: skip


class AlertsSettings(BaseModel):
    """Where alerts go, by topic, and how long the same alert is kept from being sent again."""

    routes: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_ROUTES),
        description="Topic -> channel, e.g. health alerts to #client-health, churn to #leadership (JSON).",
    )
    default_channel: str = Field(default="#alerts", description="Where an alert with no topic or channel goes.")
    dedupe_minutes: float = Field(
        default=60.0, ge=0, description="An alert with the same idempotency key within this window is not sent "
        "again; the earlier one is returned. 0: a key is sent once, ever."
    )  # fmt: skip

    def channel_for(self, topic: str | None) -> str:
        """The channel for a topic: its route, else the built-in route (routes given replace the whole table),
        else the default channel."""
        topic = topic or ""
        return self.routes.get(topic) or DEFAULT_ROUTES.get(topic) or self.default_channel


class TavilySettings(Integration):
    backend: Literal["local", "tavily"] = "local"
    base_url: str | None = "https://api.tavily.com"
    api_key: SecretStr | None = None


class PerplexitySettings(Integration):
    backend: Literal["local", "perplexity"] = "local"
    base_url: str | None = "https://api.perplexity.ai"
    api_key: SecretStr | None = None


class WebSearchSettings(BaseModel):
    """Which web search serves the strategic query; `local` means none (the source is reported as a gap)."""

    backend: Literal["local", "tavily", "perplexity"] = "local"


class AnalystSettings(BaseModel):
    """Who reads transcripts: the local analyzers, an OpenAI-compatible model, or the client's model."""

    backend: Literal["local", "openai", "sampling", "auto"] = "local"
    risk_meaning: bool = Field(
        default=False,
        description="Without the learned reading, the local analyst also raises the risks a client sentence is close "
        "to in meaning to written "
        "examples of each kind (the local embedding model, loaded with the first call analysed). On the eval's "
        "held-out calls it reaches more risks said in other words but lowers precision, so it is off by default.",
    )
    learned: bool = Field(
        default=True,
        description="The local analyst reads a call with weights fitted on labelled calls besides the lexicon: the "
        "sentiment label, and the risks a client sentence scores for beyond the phrase rules' (the local embedding "
        "model, loaded with the first call analysed). On the eval's held-out calls it reads sentiment better and "
        "reaches more risks than the lexicon and rules alone (false), at a lower risk precision on one of the two "
        "parts; the README's gong section has the figures.",
    )


class EmbeddingSettings(BaseModel):
    """Who turns text into vectors: the bundled local model, or OpenAI's embeddings (settings `openai`)."""

    backend: Literal["local", "openai"] = "local"


class KnowledgeSettings(BaseModel):
    """Where documents may be ingested from, and how they are cut up."""

    roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="The only directories files may be ingested from (an MCP client's roots may narrow them, never "
        "widen them): a JSON list, or paths separated by the OS path separator (':' on Linux and macOS).",
    )
    max_file_mb: float = Field(default=25.0, gt=0, description="Larger files are refused.")
    max_unpacked_mb: float = Field(
        default=20.0,
        gt=0,
        description="A DOCX whose XML unpacks to more is refused before it is inflated (a zip bomb).",
    )
    parse_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Reading one PDF, DOCX or HTML file (in a worker process) is stopped after this.",
    )
    chunk_tokens: int = Field(default=256, ge=32, le=2048, description="Most tokens in one chunk.")
    min_chunk_tokens: int = Field(default=96, ge=1, description="A chunk is filled to at least this if it can be.")
    overlap_tokens: int = Field(default=32, ge=0, description="Tokens a chunk shares with the one before it.")
    lexical_budget_ms: float = Field(
        default=50.0, gt=0, description="Most time full-text ranking may take in a search; past it the vectors rank "
        "alone (it matters only over many thousands of chunks sharing common words)."
    )  # fmt: skip
    watch: Path | None = Field(
        default=None, description="A folder inside the roots that the watch-folder connector keeps the knowledge base "
        "in step with: new and changed files ingested, deleted ones removed."
    )  # fmt: skip

    @field_validator("roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part for part in text.split(os.pathsep) if part.strip()]
        return value

    @field_validator("roots", mode="after")
    @classmethod
    def _expand_roots(cls, value: list[Path]) -> list[Path]:
        return [path.expanduser() for path in value]

    @field_validator("watch", mode="after")
    @classmethod
    def _expand_watch(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @model_validator(mode="after")
    def _watch_inside_roots(self) -> KnowledgeSettings:
        if self.watch is not None and not any(self.watch.resolve().is_relative_to(r.resolve()) for r in self.roots):
            roots = ", ".join(str(r) for r in self.roots) or "none is set"
            raise ValueError(
                f"the watched folder {self.watch} is not inside SOPHIA_KNOWLEDGE__ROOTS ({roots}): watch a folder "
                "under one of the roots, or add it to them"
            )
        return self


class HealthSettings(BaseModel):
    threshold: float = Field(default=70.0, ge=0, le=100, description="Below this a client is at risk.")
    realert_drop: float = Field(
        default=10.0, gt=0, le=100, description="A client under the threshold is alerted again only once its health "
        "falls this many points below the score of its last alert (or after it recovered and fell again)."
    )  # fmt: skip
    weights: HealthWeights = Field(default_factory=HealthWeights)
    half_life_days: float = Field(
        default=30.0, gt=0, description="How fast an older call's weight in client health fades."
    )
    window_days: int = Field(default=90, gt=0, description="Calls older than this do not count towards health.")


class HealingSettings(BaseModel):
    error_rate: float = Field(
        default=0.1, gt=0, lt=1, description="A workflow step failing for one cause more often than this (of its "
        "last runs) opens an incident; back at or under it, the incident closes."
    )  # fmt: skip
    min_runs: int = Field(default=10, ge=1, description="No incident before a step has run this many times.")
    window_runs: int = Field(default=20, ge=1, description="The sliding window: a step's last this many runs.")
    interval_s: float = Field(default=60.0, gt=0, description="How often the scheduler's process looks.")
    reduced_concurrency: int = Field(
        default=1, ge=1, description="A service's requests at once while an incident of 429s on it lasts."
    )
    channel: str | None = Field(default=None, description="Where an incident is announced (default: the alerts').")


def default_data_dir() -> Path:
    return Path(user_data_dir("sophia-mcp", appauthor=False))


class Settings(BaseSettings):
    """Everything configurable about sophia-mcp."""

    model_config = SettingsConfigDict(
        env_prefix="SOPHIA_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    data_dir: Path = Field(default_factory=default_data_dir, description="Where the local store lives.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    tool_timeout_s: float = Field(
        default=600.0, gt=0, description="A tool call running longer is stopped and answered with an error."
    )
    max_result_kb: int = Field(
        default=1024, ge=16, description="A tool result larger than this is refused with advice to ask for less."
    )
    outbox_interval_s: float = Field(
        default=30.0, gt=0, description="How often a running server retries side effects that could not be sent."
    )

    gong: GongSettings = Field(default_factory=GongSettings)
    hubspot: HubSpotSettings = Field(default_factory=HubSpotSettings)
    apollo: ApolloSettings = Field(default_factory=ApolloSettings)
    snowflake: SnowflakeSettings = Field(default_factory=SnowflakeSettings)
    pinecone: PineconeSettings = Field(default_factory=PineconeSettings)
    openai: OpenAISettings = Field(default_factory=OpenAISettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    linear: LinearSettings = Field(default_factory=LinearSettings)
    tavily: TavilySettings = Field(default_factory=TavilySettings)
    perplexity: PerplexitySettings = Field(default_factory=PerplexitySettings)
    web_search: WebSearchSettings = Field(default_factory=WebSearchSettings)
    analyst: AnalystSettings = Field(default_factory=AnalystSettings)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    calendar: CalendarSettings = Field(default_factory=CalendarSettings)
    bugs: BugsSettings = Field(default_factory=BugsSettings)
    github: GithubSettings = Field(default_factory=GithubSettings)
    vercel: VercelSettings = Field(default_factory=VercelSettings)
    inbox: InboxSettings = Field(default_factory=InboxSettings)
    connectors: ConnectorSettings = Field(default_factory=ConnectorSettings)
    strategic: StrategicSettings = Field(default_factory=StrategicSettings)
    analytics: AnalyticsSettings = Field(default_factory=AnalyticsSettings)
    churn: ChurnSettings = Field(default_factory=ChurnSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    http: HTTPSettings = Field(default_factory=HTTPSettings)
    schedules: list[ScheduleSpec] = Field(
        default_factory=lambda: [s.model_copy() for s in DEFAULT_SCHEDULES],
        description="What `sophia-mcp schedule` runs (JSON list); the health monitor every 5 minutes by default.",
    )

    competitors: list[Competitor] = Field(default_factory=lambda: list(DEFAULT_COMPETITORS))
    health: HealthSettings = Field(default_factory=HealthSettings)
    healing: HealingSettings = Field(default_factory=HealingSettings)
    lead_score: LeadScoreWeights = Field(default_factory=LeadScoreWeights)
    enrichment: EnrichmentSettings = Field(default_factory=EnrichmentSettings)
    embeddings: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    knowledge: KnowledgeSettings = Field(default_factory=KnowledgeSettings)

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @model_validator(mode="after")
    def _connectors_join_defaults(self) -> Settings:
        # Only when SOPHIA_SCHEDULES is not given: schedules the user lists are all that runs.
        if "schedules" not in self.model_fields_set:
            self.schedules += [s.model_copy() for s in polling_connectors(self)]
        return self

    @property
    def store_path(self) -> Path:
        return self.data_dir / "sophia.db"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("SOPHIA_CONFIG_FILE", "sophia.toml"))
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
            file_secret_settings,
        )

    def integrations(self) -> dict[str, Integration]:
        """Each external service's section, by name, in a stable order."""
        return {name: value for name, value in self if isinstance(value, Integration)}


def load_settings(**overrides: Any) -> Settings:
    """Read the settings once; overrides win over every source (tests and the CLI use them)."""
    return Settings(**overrides)
