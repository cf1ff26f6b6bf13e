"""Slack notifications: a message per finished analysis and a scheduled digest, over incoming webhooks.

Nothing is sent inline. An analysis' final verdict is stored with an outbox event
for this notifier, in one transaction; expanding it (``notify_finished``, called by
:class:`kayenta_py.service.notifiers.OutboxNotifier` right after the verdict, on start
and periodically) builds a ``finished`` message per interested channel and queues it
in the store's ``notifications`` table, once: (kind, channel, key) is unique and the
key is the analysis id, so expanding again after a crash queues nothing twice. A
scheduler job delivers queued messages (slack-sdk's ``WebhookClient``, with
short immediate retries on 429 honouring ``Retry-After``, on 5xx and on
connection errors). A delivery that still fails stays ``pending`` with its
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

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.base import BaseScheduler
from slack_sdk.webhook import WebhookClient

from kayenta_py.integrations.slack.channels import (
    Channel,
    channels_from_settings,
)
from kayenta_py.integrations.slack.delivery import (
    _SDK_LOG,
    HTTP_TIMEOUT_S,
    MAX_BACKOFF_S,
    Outcome,
    retry_after,
    retry_handlers,
)
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
__all__ = ["FAILED", "PENDING", "SENDING", "SENT", "SKIPPED", "Channel", "SlackNotifier"]
DELIVERY_JOB = "slack-delivery"
DIGEST_JOB_PREFIX = "slack-digest:"

STALE_SENDING_S = 30.0  # a claim not renewed for this long was left by a replica that died
LEASE_RENEW_S = 10.0  # how often a post in progress renews its claim

_SDK_LOG.disabled = True


# ---------------------------------------------------------------- delivery


class SlackNotifier:
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
        self.store = store
        self.channels = dict(channels)
        for channel in self.channels.values():  # the URLs and their paths never show
            register_webhook(channel.webhook_url.get_secret_value())
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.max_attempts = max_attempts
        self.retry_interval = retry_interval
        self.timezone = timezone
        self.zone = ZoneInfo(timezone)
        self.timeout = timeout
        self.clock = clock
        self.handlers = retry_handlers(retries)
        self.scheduler: BaseScheduler | None = None
        self._not_before: dict[str, float] = {}  # channel -> time (Slack's long Retry-After)

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
        self.scheduler = scheduler
        scheduler.add_job(
            self.deliver_pending,
            "interval",
            seconds=self.retry_interval,
            id=DELIVERY_JOB,
            name="slack delivery",
            replace_existing=True,
            next_run_time=datetime.now(UTC),
        )
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

    def wake(self) -> None:
        """Run the delivery job now (if the scheduler runs it), instead of at its next interval."""
        if self.scheduler is None or not self.scheduler.running:
            return
        with contextlib.suppress(JobLookupError):
            self.scheduler.modify_job(DELIVERY_JOB, next_run_time=datetime.now(UTC))

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

    # ------------------------------------------------------------ delivery

    def deliver_pending(self, *, now: float | None = None) -> int:
        """Post every pending message that is due; return how many were delivered (never raises)."""
        try:
            return self._deliver_pending(self.clock() if now is None else now)
        except Exception:
            log.exception("slack: delivery run failed; pending messages are tried again later")
            return 0

    def backoff(self, attempts: int) -> float:
        """Return the wait after ``attempts`` failed attempts: the interval, doubling, at most an hour."""
        return min(MAX_BACKOFF_S, self.retry_interval * 2.0 ** max(0, attempts - 1))

    def _deliver_pending(self, now: float) -> int:
        self._release_stale(now)
        delivered = 0
        down: set[str] = set()  # channels that failed in this run: their other messages wait too
        for notification in self.store.pending_notifications():
            channel = self.channels.get(notification.channel)
            if channel is None:
                self.store.mark_notification(
                    notification.id, FAILED, f"channel {notification.channel!r} is no longer configured"
                )
                continue
            if channel.name in down or now < self._not_before.get(channel.name, 0.0):
                continue
            if notification.attempts and now < notification.updated_ts + self.backoff(notification.attempts):
                continue
            if not self._claim(notification.id, now):
                continue  # another replica took it
            with self._lease(notification.id, now):
                outcome = self._post(channel, notification.payload)
            delivered += self._record(notification, outcome, now)
            if not outcome.sent and not outcome.permanent:
                down.add(channel.name)
        return delivered

    def _record(self, notification: Notification, outcome: Outcome, now: float) -> int:
        what = f"{notification.kind} message {notification.id} to channel {notification.channel!r}"
        if outcome.sent:
            self.store.mark_notification(notification.id, SENT)
            log.info("slack: delivered %s", what)
            return 1
        attempts = notification.attempts + 1
        if outcome.wait:
            self._not_before[notification.channel] = now + outcome.wait
        if outcome.permanent or attempts >= self.max_attempts:
            self.store.mark_notification(notification.id, FAILED, outcome.error)
            log.error("slack: %s failed for good after %d attempts: %s", what, attempts, outcome.error)
        else:
            self.store.mark_notification(notification.id, PENDING, outcome.error)
            log.warning(
                "slack: %s not delivered (attempt %d of %d): %s; next attempt in %.0f s",
                what,
                attempts,
                self.max_attempts,
                outcome.error,
                max(outcome.wait, self.backoff(attempts)),
            )
        return 0

    def _claim(self, notification_id: int, now: float) -> bool:
        """Take a pending message for posting; False when another replica took it."""
        return self.store.claim_notification(notification_id, now)

    @contextlib.contextmanager
    def _lease(self, notification_id: int, claimed: float) -> Iterator[None]:
        """Renew the claim of a message every ``LEASE_RENEW_S`` while it is being posted."""
        stop = threading.Event()
        start = time.monotonic()

        def renew() -> None:
            while not stop.wait(LEASE_RENEW_S):
                try:
                    self.store.renew_claim(notification_id, claimed + time.monotonic() - start)
                except Exception as exc:
                    log.warning("slack: could not renew the claim of message %d: %s", notification_id, exc)

        thread = threading.Thread(target=renew, name=f"slack-lease-{notification_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _release_stale(self, now: float) -> None:
        """Put messages whose claim was not renewed for ``STALE_SENDING_S`` back to ``pending``.

        Such a message was being posted by a replica that died; that counts as a failed attempt
        (a message that kills its poster cannot be retried for ever).
        """
        released = self.store.release_stale_notifications(STALE_SENDING_S, now=now)
        if released:
            log.warning("slack: %d message(s) left in 'sending' by a stopped process are retried", released)

    def _post(self, channel: Channel, payload: Mapping[str, Any]) -> Outcome:
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
