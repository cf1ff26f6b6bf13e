"""Delivery of queued notifications, shared by the notifiers (Slack, webhooks).

A notifier queues its messages in the store's ``notifications`` table (idempotently, see
:meth:`kayenta_py.service.store.outbox.NotificationStore.add_notifications`); an
:class:`OutboxDelivery` posts them. Each run of its scheduler job takes the pending messages of
its own ``kinds``, skips those whose target failed in this run or asked to wait (a long
``Retry-After``) and those still in their backoff (the delivery interval, doubling per failed
attempt, at most an hour), claims each (``pending`` to ``sending`` in one conditional update, so
one replica posts it), renews the claim every ``LEASE_RENEW_S`` while posting, and records the
outcome: ``sent``; ``failed`` when retrying cannot help or after ``max_attempts``; else
``pending`` with the attempt and its (redacted) error. A claim not renewed for
``STALE_SENDING_S`` was left by a replica that died (kill -9): the row goes back to ``pending``
as a failed attempt (at-least-once delivery). Subclasses say how one message is posted
(:meth:`OutboxDelivery.post`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.base import BaseScheduler

from kayenta_py.service.store.outbox import FAILED, PENDING, SENT
from kayenta_py.service.store.records import Notification
from kayenta_py.service.store.repository import Store

log = logging.getLogger(__name__)

STALE_SENDING_S = 30.0  # a claim not renewed for this long was left by a replica that died
LEASE_RENEW_S = 10.0  # how often a post in progress renews its claim
MAX_BACKOFF_S = 3600.0  # the longest wait between two attempts of a message
MAX_RETRY_AFTER_S = 30.0  # a longer Retry-After is not slept through: the message waits for a later run

TargetT = TypeVar("TargetT")


@dataclass(frozen=True)
class Outcome:
    """The result of one delivery attempt."""

    sent: bool
    error: str | None = None
    permanent: bool = False  # retrying cannot help (a 4xx such as an invalid payload or a dead webhook)
    wait: float = 0.0  # the receiver asked to wait this long (a long Retry-After)


def retry_after(headers: Mapping[str, Any]) -> float | None:
    """Return a ``Retry-After`` header's seconds (1 when absent), or None when it is not a number."""
    for key, value in headers.items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) else value
            text = str(raw).strip()
            return float(text) if text.isdigit() else None
    return 1.0


class OutboxDelivery(Generic[TargetT]):
    """Posts a notifier's queued messages to its targets (channels, URLs) by name.

    ``name`` prefixes log lines and names the scheduler job (``<name>-delivery``); ``kinds`` are
    the notification kinds this notifier queued (other notifiers' rows are left alone).
    """

    def __init__(
        self,
        store: Store,
        targets: Mapping[str, TargetT],
        *,
        name: str,
        kinds: frozenset[str],
        max_attempts: int,
        retry_interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.targets = dict(targets)
        self.name = name
        self.kinds = kinds
        self.max_attempts = max_attempts
        self.retry_interval = retry_interval
        self.clock = clock
        self.delivery_job = f"{name}-delivery"
        self.scheduler: BaseScheduler | None = None
        self._not_before: dict[str, float] = {}  # target -> time (a long Retry-After)

    def post(self, target: TargetT, payload: Mapping[str, Any]) -> Outcome:
        """Post one message to ``target``; never raises (an error is an :class:`Outcome`)."""
        raise NotImplementedError

    # ------------------------------------------------------------ scheduling

    def add_delivery_job(self, scheduler: BaseScheduler) -> None:
        """Add the delivery job: now, then every ``retry_interval`` seconds."""
        self.scheduler = scheduler
        scheduler.add_job(
            self.deliver_pending,
            "interval",
            seconds=self.retry_interval,
            id=self.delivery_job,
            name=f"{self.name} delivery",
            replace_existing=True,
            next_run_time=datetime.now(UTC),
        )

    def wake(self) -> None:
        """Run the delivery job now (if the scheduler runs it), instead of at its next interval."""
        if self.scheduler is None or not self.scheduler.running:
            return
        with contextlib.suppress(JobLookupError):
            self.scheduler.modify_job(self.delivery_job, next_run_time=datetime.now(UTC))

    # ------------------------------------------------------------ delivery

    def deliver_pending(self, *, now: float | None = None) -> int:
        """Post every pending message that is due; return how many were delivered (never raises)."""
        try:
            return self._deliver_pending(self.clock() if now is None else now)
        except Exception:
            log.exception("%s: delivery run failed; pending messages are tried again later", self.name)
            return 0

    def backoff(self, attempts: int) -> float:
        """Return the wait after ``attempts`` failed attempts: the interval, doubling, at most an hour."""
        return min(MAX_BACKOFF_S, self.retry_interval * 2.0 ** max(0, attempts - 1))

    def _deliver_pending(self, now: float) -> int:
        self._release_stale(now)
        delivered = 0
        down: set[str] = set()  # targets that failed in this run: their other messages wait too
        for notification in self.store.pending_notifications():
            if notification.kind not in self.kinds:
                continue  # another notifier's
            target = self.targets.get(notification.channel)
            if target is None:
                self.store.mark_notification(
                    notification.id, FAILED, f"{self.name} {notification.channel!r} is no longer configured"
                )
                continue
            if notification.channel in down or now < self._not_before.get(notification.channel, 0.0):
                continue
            if notification.attempts and now < notification.updated_ts + self.backoff(notification.attempts):
                continue
            if not self._claim(notification.id, now):
                continue  # another replica took it
            with self._lease(notification.id, now):
                outcome = self.post(target, notification.payload)
            delivered += self._record(notification, outcome, now)
            if not outcome.sent and not outcome.permanent:
                down.add(notification.channel)
        return delivered

    def _record(self, notification: Notification, outcome: Outcome, now: float) -> int:
        what = f"{notification.kind} message {notification.id} to {notification.channel!r}"
        if outcome.sent:
            self.store.mark_notification(notification.id, SENT)
            log.info("%s: delivered %s", self.name, what)
            return 1
        attempts = notification.attempts + 1
        if outcome.wait:
            self._not_before[notification.channel] = now + outcome.wait
        if outcome.permanent or attempts >= self.max_attempts:
            self.store.mark_notification(notification.id, FAILED, outcome.error)
            log.error(
                "%s: %s failed for good after %d attempts: %s", self.name, what, attempts, outcome.error
            )
        else:
            self.store.mark_notification(notification.id, PENDING, outcome.error)
            log.warning(
                "%s: %s not delivered (attempt %d of %d): %s; next attempt in %.0f s",
                self.name,
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
                    log.warning(
                        "%s: could not renew the claim of message %d: %s", self.name, notification_id, exc
                    )

        thread = threading.Thread(target=renew, name=f"{self.name}-lease-{notification_id}", daemon=True)
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
            log.warning(
                "%s: %d message(s) left in 'sending' by a stopped process are retried", self.name, released
            )
