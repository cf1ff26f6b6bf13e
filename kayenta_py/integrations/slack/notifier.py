"""Slack notifications: a message per finished analysis and a scheduled digest, over incoming webhooks.

Nothing is sent inline. An analysis' final verdict is stored with an outbox event
for this notifier, in one transaction; expanding it (``notify_finished``, called by
:class:`kayenta_py.service.notifiers.OutboxNotifier` right after the verdict, on start
and periodically) builds a ``finished`` message per interested channel and queues it
in the store's ``notifications`` table, once: (kind, channel, key) is unique and the
key is the analysis id, so expanding again after a crash queues nothing twice. A
scheduler job delivers queued messages (the delivery loop the notifiers share,
:class:`kayenta_py.integrations.outbox_delivery.OutboxDelivery`; posts with
slack-sdk's ``WebhookClient``, with short immediate retries on 429 honouring
``Retry-After``, on 5xx and on connection errors). A delivery that still fails stays ``pending`` with its
attempts and last error recorded, and is tried again later with a growing delay,
until ``max_attempts`` (then ``failed``). A cron job per channel queues a digest
of the analyses finished since the previous digest. Slack can never delay or
change a verdict: the verdict (with its outbox event) is stored before any message
is queued; a failure to queue is raised to the outbox, which logs it and tries again,
never into the runner; every delivery failure is logged.

Several replicas may share one database: a message is claimed (``pending`` to
``sending``) in one conditional update before it is posted, so only one replica
posts it; the digests several replicas queue for the same cron minute are one row
(its key is the minute). A claim is a lease: while a post is in progress its row's
``updated_ts`` is renewed every ``LEASE_RENEW_S``; a replica that dies while posting
(kill -9) stops renewing, and the next delivery run after ``STALE_SENDING_S`` puts the
row back to ``pending`` as a failed attempt (at-least-once delivery: with the default
30 s delivery interval, retried within a minute).

Webhook URLs are secrets: they are registered with :mod:`kayenta_py.model.redact` (URL and
path) and read only when posting; every message is redacted before it is stored and
before it is posted, and every recorded error and log line is redacted.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.base import BaseScheduler
from slack_sdk.webhook import WebhookClient

from kayenta_py.integrations.outbox_delivery import (
    LEASE_RENEW_S,
    STALE_SENDING_S,
    OutboxDelivery,
    Outcome,
    retry_after,
)
from kayenta_py.integrations.slack.channels import (
    Channel,
    channels_from_settings,
)
from kayenta_py.integrations.slack.delivery import _SDK_LOG, HTTP_TIMEOUT_S, retry_handlers
from kayenta_py.integrations.slack.messages import (
    DIGEST_DEFAULT_WINDOW_S,
    digest_message,
    finished_message,
    summarize,
)
from kayenta_py.model.redact import redact, redact_json, register_webhook
from kayenta_py.service.settings import Settings
from kayenta_py.service.settings_parsing import cron_trigger
from kayenta_py.service.store.outbox import FAILED, PENDING, SENDING, SENT, SKIPPED, QueuedMessage
from kayenta_py.service.store.records import Analysis, Notification
from kayenta_py.service.store.repository import Store

log = logging.getLogger(__name__)

FINISHED, DIGEST = "finished", "digest"
__all__ = [
    "FAILED",
    "LEASE_RENEW_S",
    "PENDING",
    "SENDING",
    "SENT",
    "SKIPPED",
    "STALE_SENDING_S",
    "Channel",
    "SlackNotifier",
]
DELIVERY_JOB = "slack-delivery"
DIGEST_JOB_PREFIX = "slack-digest:"

_SDK_LOG.disabled = True


# ---------------------------------------------------------------- delivery


class SlackNotifier(OutboxDelivery[Channel]):
    """Queues Slack messages in the store and delivers them; see the module's docstring."""

    def __init__(
        self,
        store: Store,
        channels: Mapping[str, Channel],
        *,
        base_url: str,
        retries: int = 2,
        max_attempts: int = 8,
        retry_interval: float = 30.0,
        timezone: str = "UTC",
        timeout: int = HTTP_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            store,
            channels,
            name="slack",
            kinds=frozenset({FINISHED, DIGEST}),
            max_attempts=max_attempts,
            retry_interval=retry_interval,
            clock=clock,
        )
        self.channels = self.targets
        for channel in self.channels.values():  # the URLs and their paths never show
            register_webhook(channel.webhook_url.get_secret_value())
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.timezone = timezone
        self.zone = ZoneInfo(timezone)
        self.timeout = timeout
        self.handlers = retry_handlers(retries)

    @classmethod
    def from_settings(cls, settings: Settings, store: Store) -> SlackNotifier | None:
        """Return the notifier the settings describe, or None when no Slack channel is configured."""
        channels = channels_from_settings(settings)
        if not channels:
            return None
        base_url = settings.public_url or f"http://{settings.host}:{settings.port}"
        if not settings.public_url:
            log.warning("slack: KAYENTA_PUBLIC_URL is not set; report links point at %s", base_url)
        return cls(
            store,
            channels,
            base_url=base_url,
            retries=settings.slack_retries,
            max_attempts=settings.slack_max_attempts,
            retry_interval=settings.slack_delivery_interval,
            timezone=settings.slack_digest_timezone,
        )

    # ------------------------------------------------------------ scheduling

    def register(self, scheduler: BaseScheduler) -> None:
        """Add the delivery job (now, then every ``retry_interval``) and each channel's digest job."""
        self.add_delivery_job(scheduler)
        for channel in self.channels.values():
            if channel.digest_cron:
                scheduler.add_job(
                    self.digest_job,
                    cron_trigger(channel.digest_cron, self.zone),
                    args=[channel.name],
                    id=DIGEST_JOB_PREFIX + channel.name,
                    name=f"slack digest {channel.name}",
                    replace_existing=True,
                )

    def describe(self) -> list[str]:
        """The channels this notifier posts to, by name (their webhook URLs are secrets)."""
        return sorted(self.channels)

    # ------------------------------------------------------------ queueing

    def notify_finished(self, analysis: Analysis) -> None:
        """Queue a message about a finished analysis for each channel that wants it, once.

        Idempotent (the outbox may call it again): each message's key is the analysis id. An
        error is raised, so the outbox keeps the event and tries again later.
        """
        channels = [c for c in self.channels.values() if c.wants(analysis)]
        if not channels:
            return
        metrics = self._last_metrics(analysis.id)
        message = redact_json(finished_message(analysis, metrics, base_url=self.base_url))
        self.store.add_notifications(
            [QueuedMessage(FINISHED, c.name, message, analysis.id, key=analysis.id) for c in channels]
        )
        self.wake()

    def _last_metrics(self, analysis_id: str) -> list[Mapping[str, Any]]:
        return list((self.store.last_result(analysis_id) or {}).get("metrics", []))

    def enqueue_digest(self, channel_name: str, *, now: float | None = None) -> Notification:
        """Queue a digest of the analyses finished since the channel's previous digest (or 24 h).

        One per channel and cron minute (its key): a replica queueing it again gets the row
        already queued.
        """
        channel = self.channels[channel_name]
        until = self.clock() if now is None else now
        previous = self.store.last_notification(DIGEST, channel_name)
        since = until - DIGEST_DEFAULT_WINDOW_S
        if previous is not None:
            since = float(previous.payload.get("window", {}).get("until", previous.created_ts))
        summary = summarize(self.store, since, until, configs=channel.configs)
        message = digest_message(summary, base_url=self.base_url, channel=channel_name, zone=self.zone)
        key = datetime.fromtimestamp(until, UTC).strftime("%Y-%m-%dT%H:%M")  # one digest per cron minute
        message = redact_json(message)
        message["window"] = {"since": since, "until": until, "key": key}
        return self.store.add_notification(DIGEST, channel_name, message, key=key)

    def digest_job(self, channel_name: str) -> None:
        """The cron job: queue the channel's digest and deliver it now."""
        try:
            self.enqueue_digest(channel_name)
        except Exception:
            log.exception("slack: could not build the digest of channel %r", channel_name)
            return
        self.wake()

    def post(self, channel: Channel, payload: Mapping[str, Any]) -> Outcome:
        """Post one message, with slack-sdk's immediate retries; the URL never leaves this method."""
        url = channel.webhook_url.get_secret_value()
        client = WebhookClient(url, timeout=self.timeout, logger=_SDK_LOG, retry_handlers=self.handlers)
        clean = redact_json({"text": payload.get("text"), "blocks": payload.get("blocks")})
        try:
            response = client.send(
                text=clean["text"],
                blocks=clean["blocks"],
                unfurl_links=False,
                unfurl_media=False,
            )
        except Exception as exc:
            return Outcome(False, redact(f"{type(exc).__name__}: {exc}"))
        status = response.status_code
        if 200 <= status < 300:
            return Outcome(True)
        body = re.sub(r"\s+", " ", str(response.body or ""))[:200]
        error = redact(f"HTTP {status}" + (f": {body}" if body else ""))
        if status == 429:
            wait = retry_after(response.headers or {})
            return Outcome(False, error + (f" (Retry-After {wait:g} s)" if wait else ""), wait=wait or 0.0)
        return Outcome(False, error, permanent=400 <= status < 500 and status != 408)
