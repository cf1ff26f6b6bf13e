"""Notifiers of finished analyses (Slack, webhooks): plugins found through an entry-point group.

The service never names a notifier: each class registered under ``kayenta_py.notifiers`` is asked
for an instance with ``from_settings(settings, store)`` (None: not configured, nothing is queued),
then told of every finished analysis after its verdict is stored, and registers its own
delivery jobs on the runner's scheduler.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, Protocol

from kayenta_py.model.errors import PluginError
from kayenta_py.service.settings import Settings
from kayenta_py.service.store.records import Analysis
from kayenta_py.service.store.repository import Store

NOTIFIERS_GROUP = "kayenta_py.notifiers"


class Notifier(Protocol):
    """What the service asks of a notifier."""

    def register(self, scheduler: Any) -> None:
        """Add the notifier's delivery jobs to the scheduler."""

    def notify_finished(self, analysis: Analysis) -> None:
        """Queue what a finished analysis calls for (never raises)."""


def build_notifiers(settings: Settings, store: Store) -> dict[str, Notifier]:
    """Return the configured notifiers by entry-point name (sorted, so their order is stable)."""
    notifiers: dict[str, Notifier] = {}
    for point in sorted(entry_points(group=NOTIFIERS_GROUP), key=lambda p: p.name):
        try:
            factory = point.load()
        except Exception as exc:
            raise PluginError(f"notifier {point.name!r} ({point.value}) failed to load: {exc}") from exc
        notifier = factory.from_settings(settings, store)
        if notifier is not None:
            notifiers[point.name] = notifier
    return notifiers
