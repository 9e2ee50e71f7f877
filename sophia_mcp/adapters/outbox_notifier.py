"""The embedded notifier: an alert is delivered into the store, where the outbox entry is the message (a reply's
`thread_ts` kept with it, so the thread it answers is shown)."""

from __future__ import annotations

import logging
import uuid

from sophia_mcp.domain.notify import Alert

log = logging.getLogger(__name__)


class LocalNotifier:
    """Delivers into the store: the outbox entry itself is the delivered message, shown by `list_alerts`."""

    name = "local"

    async def send(self, alert: Alert) -> str:
        where = f"{alert.channel} (thread {alert.thread_ts})" if alert.thread_ts else alert.channel
        log.info("Alert for %s: %s", where, alert.title)
        return f"local:{uuid.uuid4().hex[:12]}"

    async def already_sent(self, alert: Alert) -> str | None:
        return None  # delivery and its record are one store transaction: nothing can be half-sent
