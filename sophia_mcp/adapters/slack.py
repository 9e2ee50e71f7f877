"""The `Notifier` port on Slack's Web API (`chat.postMessage`) with slack-sdk's async client.

An alert with a `thread_ts` is posted as a reply in that message's thread.

Slack has no idempotency key, so a post whose answer was lost may have gone through. Each message carries its
alert key in Slack message metadata; before sending an alert again, `already_sent` looks for that key in the
channel's recent history (or the thread's replies), and the outbox records the existing message instead of
posting a second one.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from aiohttp import ClientError
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from sophia_mcp.adapters.http import RedactingFilter, Redactor
from sophia_mcp.domain.notify import Alert
from sophia_mcp.errors import (
    ConfigurationError,
    CredentialsRefused,
    InvalidInput,
    RateLimited,
    ServiceUnavailable,
    SophiaError,
    of_service,
)
from sophia_mcp.settings import SlackSettings

EVENT_TYPE = "sophia_alert"
SERVICE = "Slack"  # named on every error, as the HTTP layer names its services
# Slack's errors that say the token itself is refused (a subset of the setup errors below).
CREDENTIAL_ERRORS = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
# Slack's errors that only a change of settings fixes (token, scopes, channel membership).
SETUP_ERRORS = {
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "missing_scope",
    "channel_not_found",
    "not_in_channel",
    "is_archived",
}
MESSAGE_ERRORS = {"msg_too_long", "no_text", "invalid_blocks", "too_many_attachments", "invalid_metadata_format"}
HISTORY_LOOKBACK = 200
HISTORY_PAGE = 200  # conversations.history allows up to 1000; Slack recommends 200 or fewer
# What of Slack's own words an error message keeps (an error code is a few dozen characters).
DETAIL_CHARS = 200


class SlackNotifier:
    name = "slack"

    def __init__(self, settings: SlackSettings) -> None:
        if settings.bot_token is None:
            raise ConfigurationError("The slack backend needs SOPHIA_SLACK__BOT_TOKEN (a bot token, xoxb-...).")
        base_url = settings.base_url or "https://slack.com/api/"
        token = settings.bot_token.get_secret_value()
        self.redact = Redactor([token])
        # slack-sdk logs each answer's body at debug level: through the redactor too, a body may echo a token.
        # One token per process (the setting's): the newest notifier's redactor serves the logger.
        sdk_log = logging.getLogger(f"{__name__}.sdk")
        for old in [f for f in sdk_log.filters if isinstance(f, RedactingFilter)]:
            sdk_log.removeFilter(old)
        sdk_log.addFilter(RedactingFilter(self.redact))
        self.client: AsyncWebClient = AsyncWebClient(
            token=token,
            base_url=base_url if base_url.endswith("/") else base_url + "/",
            timeout=int(max(1, settings.timeout_s)),
            logger=sdk_log,
        )
        # A 429 means Slack did not post, so retrying it is safe. Connection errors are left to the outbox,
        # which checks the channel before sending again: a blind retry after a lost answer could post twice.
        self.client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=settings.max_retries))
        self._channel_ids: dict[str, str] = {}

    async def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return await getattr(self.client, method)(**kwargs)
        except SlackApiError as exc:
            raise of_service(self._refusal(method, exc), SERVICE) from None
        except (TimeoutError, ClientError, SlackClientError, OSError) as exc:
            message = self.redact(str(exc), DETAIL_CHARS)
            raise of_service(
                ServiceUnavailable(f"Slack could not be reached ({type(exc).__name__}: {message})"), SERVICE
            ) from None

    def _refusal(self, method: str, exc: SlackApiError) -> SophiaError:
        """Our error for Slack's answer, of the type the healing watch groups by (credentials, rate limited...)."""
        code = self.redact(str(exc.response.get("error", "unknown_error")), DETAIL_CHARS)
        status = getattr(exc.response, "status_code", "?")
        if code in SETUP_ERRORS:
            refused = CredentialsRefused if code in CREDENTIAL_ERRORS else ConfigurationError
            return refused(f"Slack refused {method}: {code}; check the bot token, scopes and channel")
        if code in MESSAGE_ERRORS:
            return InvalidInput(f"Slack rejected the message: {code}")
        if code == "ratelimited" or status == 429:  # still limited after the SDK's own retries
            return RateLimited(f"Slack answered {method} with {code} (HTTP {status}); try again later")
        return ServiceUnavailable(f"Slack answered {method} with {code} (HTTP {status})")

    async def send(self, alert: Alert) -> str:
        response = await self._call(
            "chat_postMessage",
            channel=alert.channel,
            text=alert.text[:40000],
            blocks=alert.blocks[:50] or None,
            unfurl_links=False,
            thread_ts=alert.thread_ts,
            metadata={"event_type": EVENT_TYPE, "event_payload": {"key": alert.key, "severity": alert.severity}},
        )
        channel = str(response.get("channel") or "")
        if channel and alert.channel.startswith("#"):
            self._channel_ids[alert.channel.lstrip("#")] = channel
        return str(response["ts"])

    async def check(self) -> str:
        """`auth.test`, for `doctor`."""
        answer = await self._call("auth_test")
        return f"Slack accepted the bot token (team {answer.get('team')}, user {answer.get('user')})"

    async def channel_id(self, channel: str) -> str | None:
        """The id of a channel given by id or `#name` (names looked up once with `conversations.list`); None
        when the bot sees no such channel."""
        if not channel.startswith("#"):
            return channel
        name = channel.lstrip("#")
        cursor = None
        while name not in self._channel_ids:
            page = await self._call("conversations_list", limit=1000, cursor=cursor, exclude_archived=True)
            for item in page.get("channels") or []:
                self._channel_ids[str(item.get("name"))] = str(item.get("id"))
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return self._channel_ids.get(name)

    async def already_sent(self, alert: Alert) -> str | None:
        """The `ts` of a message already posted for this alert, if a lost answer hid it."""
        channel = await self.channel_id(alert.channel)
        if channel is None:
            return None
        if alert.thread_ts:  # a thread's replies are not in the channel's history
            history = await self._call(
                "conversations_replies", channel=channel, ts=alert.thread_ts, limit=HISTORY_LOOKBACK,
                include_all_metadata=True,
            )  # fmt: skip
        else:
            history = await self._call(
                "conversations_history", channel=channel, limit=HISTORY_LOOKBACK, include_all_metadata=True
            )
        for message in history.get("messages") or []:
            metadata = message.get("metadata") or {}
            if (
                metadata.get("event_type") == EVENT_TYPE
                and (metadata.get("event_payload") or {}).get("key") == alert.key
            ):
                return str(message["ts"])
        return None

    async def channel_messages(self, channel: str, oldest: str) -> tuple[str, list[dict[str, Any]]]:
        """The channel's id (a #name resolved) and its messages posted after `oldest` (a ts), oldest first: every
        page of `conversations.history`. Thread replies are not in a channel's history; their parents are."""
        channel_id = await self.channel_id(channel)
        if channel_id is None:
            raise ConfigurationError(f"Slack knows no channel {channel}; check SOPHIA_BUGS__CHANNELS")
        messages: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = await self._call(
                "conversations_history", channel=channel_id, oldest=oldest, limit=HISTORY_PAGE, cursor=cursor
            )
            messages += [dict(m) for m in page.get("messages") or []]
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return channel_id, sorted(messages, key=lambda m: Decimal(str(m["ts"])))
