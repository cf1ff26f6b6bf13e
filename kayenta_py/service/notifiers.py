"""Notifiers of finished analyses (Slack, webhooks): plugins found through an entry-point group.

The service never names a notifier: each class registered under ``kayenta_py.notifiers`` is asked
for an instance with ``from_settings(settings, store)`` (None: not configured, nothing is queued).
It hears of finished analyses through the store's transactional outbox: a final verdict is stored
with an outbox event per notifier, in one transaction, and :class:`OutboxNotifier` (which
``build_notifiers`` puts around each notifier) expands each pending event by calling the notifier's
``notify_finished``, then marks it done. It does so right after the verdict (the runner's
``on_finish``), when the service starts, and every ``EXPAND_INTERVAL_S``, so a crash (kill -9) at
any point after the verdict's commit still leads to the messages, on this replica or another.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from importlib.metadata import entry_points
from typing import Any, Protocol

from kayenta_py.model.errors import PluginError
from kayenta_py.model.redact import redact
from kayenta_py.service.settings import Settings
from kayenta_py.service.store.outbox import FAILED
from kayenta_py.service.store.records import Analysis, OutboxEvent
from kayenta_py.service.store.repository import Store

log = logging.getLogger(__name__)

NOTIFIERS_GROUP = "kayenta_py.notifiers"
EXPAND_INTERVAL_S = 30.0  # how often pending outbox events are looked for (also at start)
RETENTION_S = 7 * 86400.0  # how long an expanded (done) event is kept: the periodic run deletes older
OUTBOX_JOB_PREFIX = "outbox:"


class Notifier(Protocol):
    """What the service asks of a notifier."""

    def register(self, scheduler: Any) -> None:
        """Add the notifier's delivery jobs to the scheduler."""

    def notify_finished(self, analysis: Analysis) -> None:
        """Queue what a finished analysis calls for.

        Called from the outbox at least once per finished analysis: again after a crash before
        its event was marked done, and perhaps on two replicas at once. Queue idempotently
        (``Store.add_notification(..., key=...)`` queues a (kind, channel, key) once). Raising
        leaves the event pending: it is expanded again later.
        """


class OutboxNotifier:
    """A notifier fed from the outbox: expands its pending events with ``notifier.notify_finished``.

    ``name`` is the notifier's entry-point name, the consumer of its outbox events. It is a
    :class:`Notifier` itself: ``register`` adds the expansion job (run at once, then every
    ``interval`` seconds) and the notifier's own jobs; ``notify_finished`` (the runner's hook)
    expands the analysis' pending event now. Neither raises into the runner. The periodic run
    also deletes this notifier's events expanded more than ``retention`` seconds ago.
    """

    def __init__(
        self,
        name: str,
        notifier: Notifier,
        store: Store,
        *,
        interval: float = EXPAND_INTERVAL_S,
        retention: float = RETENTION_S,
    ):
        self.name = name
        self.notifier = notifier
        self.store = store
        self.interval = interval
        self.retention = retention
        self._lock = threading.Lock()  # one expansion at a time in this process
        store.add_outbox_consumer(name)

    def register(self, scheduler: Any) -> None:
        """Add the expansion job (now, then every ``interval``), then the notifier's own jobs."""
        scheduler.add_job(
            self.expand_and_clean,
            "interval",
            seconds=self.interval,
            id=OUTBOX_JOB_PREFIX + self.name,
            name=f"outbox {self.name}",
            replace_existing=True,
            next_run_time=datetime.now(UTC),
        )
        self.notifier.register(scheduler)

    def describe(self) -> list[str]:
        """Where the notifier delivers, fit to show (its own ``describe()``; none: nothing said)."""
        describe = getattr(self.notifier, "describe", None)
        return [redact(str(item)) for item in describe()] if callable(describe) else []

    def notify_finished(self, analysis: Analysis) -> None:
        """Expand the finished analysis' pending event now (the periodic job retries a failure)."""
        self.expand_pending(analysis_id=analysis.id, analysis=analysis)

    def expand_and_clean(self) -> int:
        """The periodic run: expand every pending event, then delete the old done ones; return how
        many were expanded (never raises)."""
        expanded = self.expand_pending()
        try:
            deleted = self.store.delete_done_events(self.name, older_than_s=self.retention)
        except Exception:
            log.exception("outbox %s: could not delete old events; tried again later", self.name)
        else:
            if deleted:
                log.info("outbox %s: deleted %d events expanded long ago", self.name, deleted)
        return expanded

    def expand_pending(self, *, analysis_id: str | None = None, analysis: Analysis | None = None) -> int:
        """Expand pending events (of one analysis, if given); return how many (never raises)."""
        expanded = 0
        try:
            with self._lock:
                while True:
                    events = self.store.pending_events(self.name, analysis_id=analysis_id)
                    done = sum(self._expand(event, analysis) for event in events)
                    expanded += done
                    if done < len(events) or len(events) < 100:  # a failure waits for the next run
                        break
        except Exception:
            log.exception("outbox %s: could not read pending events; tried again later", self.name)
        return expanded

    def _expand(self, event: OutboxEvent, known: Analysis | None) -> bool:
        """Tell the notifier of one event's finished analysis; True once the event is done."""
        try:
            analysis = known if known is not None and known.id == event.analysis_id else None
            if analysis is None:
                analysis = self.store.get_analysis(event.analysis_id, with_intervals=False)
            if analysis is not None:
                self.notifier.notify_finished(analysis)
        except Exception as exc:
            error = redact(f"{type(exc).__name__}: {exc}"[:500])
            try:
                status = self.store.settle_event(event.id, error)
            except Exception:
                status = None
            log.warning(
                "outbox %s: analysis %s not expanded (%s)%s",
                self.name,
                event.analysis_id,
                error,
                "; given up" if status == FAILED else "; tried again later",
            )
            return False
        self.store.settle_event(event.id)
        return True


def build_notifiers(settings: Settings, store: Store) -> dict[str, OutboxNotifier]:
    """Return the configured notifiers by entry-point name (sorted, so their order is stable),
    each fed from the store's outbox (a final verdict then writes an event for each)."""
    notifiers: dict[str, OutboxNotifier] = {}
    for point in sorted(entry_points(group=NOTIFIERS_GROUP), key=lambda p: p.name):
        try:
            factory = point.load()
        except Exception as exc:
            raise PluginError(f"notifier {point.name!r} ({point.value}) failed to load: {exc}") from exc
        notifier = factory.from_settings(settings, store)
        if notifier is not None:
            notifiers[point.name] = OutboxNotifier(
                point.name, notifier, store, retention=settings.outbox_retention
            )
    return notifiers
