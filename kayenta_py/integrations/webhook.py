"""A generic webhook notifier: a JSON document per finished analysis, POSTed to any URL.

Beside Slack, through the same transactional outbox and the same delivery loop
(:class:`kayenta_py.integrations.outbox_delivery.OutboxDelivery`). A final verdict is
stored with an outbox event for this notifier; expanding it (:meth:`WebhookNotifier.
notify_finished`) queues one ``webhook`` notification per interested webhook, keyed by
the analysis id, so expanding again after a crash or on another replica queues nothing
twice; a scheduler job posts them, claimed once across replicas, retried with backoff.

Each post is ``Content-Type: application/json``; its body is the stored document, as
compact UTF-8 JSON with sorted keys (docs/webhooks.md describes its fields). With a
secret, ``X-Kayenta-Signature-256: sha256=<hex>`` is the HMAC-SHA256 of those exact
bytes under it; with a header (``Name: value``), that header is sent too. Short
immediate retries on 429 (a ``Retry-After`` of at most 30 s), 5xx, timeouts and
connection errors; then the message waits for a later run (the delivery interval,
doubling). Other 4xx and redirects are failed at once (retrying cannot help).

URLs are shown with their credentials masked (user information, secret query
parameters); the HMAC keys and header values are registered as secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from apscheduler.schedulers.base import BaseScheduler
from pydantic import SecretStr

from kayenta_py._version import __version__
from kayenta_py.integrations.outbox_delivery import MAX_RETRY_AFTER_S, OutboxDelivery, Outcome, retry_after
from kayenta_py.model.redact import redact, redact_json, register_secret, register_url
from kayenta_py.service.settings import Settings
from kayenta_py.service.store.outbox import QueuedMessage
from kayenta_py.service.store.records import Analysis
from kayenta_py.service.store.repository import Store
from kayenta_py.service.webhook_settings import DEFAULT_WEBHOOK, SIGNATURE_HEADER

log = logging.getLogger(__name__)

WEBHOOK = "webhook"  # the kind of its notifications
EVENT = "analysis.finished"
SCHEMA_VERSION = 1
MAX_METRICS = 500  # per document; more are counted in ``metrics_omitted``
MAX_REASON_CHARS = 500
RETRY_BACKOFF_S = 0.5  # the first wait between immediate retries (doubling)


@dataclass(frozen=True)
class Endpoint:
    """A webhook: where it posts, how it signs, and which finished analyses it hears of."""

    name: str
    url: SecretStr = field(repr=False)
    secret: SecretStr | None = field(default=None, repr=False)
    header: SecretStr | None = field(default=None, repr=False)
    configs: frozenset[str] = frozenset()
    verdicts: frozenset[str] = frozenset()

    @property
    def shown(self) -> str:
        """The URL fit to show: its credentials masked."""
        return redact(self.url.get_secret_value())

    def wants(self, analysis: Analysis) -> bool:
        """Return whether this webhook hears of this finished analysis."""
        if self.configs and config_label(analysis) not in self.configs:
            return False
        return not self.verdicts or analysis.verdict in self.verdicts


def endpoints_from_settings(settings: Settings) -> dict[str, Endpoint]:
    """Return the configured webhooks: ``default`` (``webhook_url``) and ``webhooks`` by name."""
    endpoints: dict[str, Endpoint] = {}
    if settings.webhook_url is not None:
        endpoints[DEFAULT_WEBHOOK] = Endpoint(
            DEFAULT_WEBHOOK, settings.webhook_url, settings.webhook_secret, settings.webhook_header
        )
    for name, target in settings.webhooks.items():
        configs, verdicts = frozenset(target.configs), frozenset(target.verdicts)
        endpoints[name] = Endpoint(name, target.url, target.secret, target.header, configs, verdicts)
    return endpoints


def config_label(analysis: Analysis) -> str:
    """The name people know the analysis' config by (stored name, else the body's name)."""
    name = analysis.config_name or (analysis.config_body or {}).get("name")
    return str(name) if name else "(unnamed config)"


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def finished_document(
    analysis: Analysis, metrics: Sequence[Mapping[str, Any]], *, base_url: str
) -> dict[str, Any]:
    """Return the JSON document a finished analysis posts (see docs/webhooks.md).

    ``metrics`` are the per-metric results of its last judged interval.
    """
    base = f"{base_url.rstrip('/')}/api/v1/analyses/{analysis.id}"
    shown = [
        {
            "name": m.get("name"),
            "tags": dict(m.get("tags") or {}),
            "classification": m.get("classification"),
            "effect_size": m.get("effect_size"),
            "effect_measure": m.get("effect_measure"),
            "critical": bool(m.get("critical", False)),
            "reason": str(m.get("reason") or "")[:MAX_REASON_CHARS],
        }
        for m in metrics[:MAX_METRICS]
    ]
    return {
        "event": EVENT,
        "schema_version": SCHEMA_VERSION,
        "analysis_id": analysis.id,
        "config": config_label(analysis),
        "config_version": analysis.config_version,
        "status": analysis.status,
        "verdict": analysis.verdict,
        "score": analysis.score,
        "reason": analysis.reason[:MAX_REASON_CHARS],
        "baseline_scope": analysis.baseline_scope,
        "canary_scope": analysis.canary_scope,
        "window": {"start": _iso(analysis.start_ts), "end": _iso(analysis.end_ts)},
        "finished_at": _iso(analysis.completed_ts),
        "report_url": f"{base}/report",
        "analysis_url": base,
        "metrics": shown,
        "metrics_omitted": max(0, len(metrics) - MAX_METRICS),
    }


def encode_body(document: Mapping[str, Any]) -> bytes:
    """The bytes posted (and signed): compact UTF-8 JSON with sorted keys."""
    return json.dumps(document, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def sign(secret: str, body: bytes) -> str:
    """The ``X-Kayenta-Signature-256`` value of ``body``: ``sha256=`` and the HMAC-SHA256 in hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookNotifier(OutboxDelivery[Endpoint]):
    """Queues a JSON document per finished analysis and webhook, and posts them; see the module."""

    def __init__(
        self,
        store: Store,
        endpoints: Mapping[str, Endpoint],
        *,
        base_url: str,
        timeout: float = 10.0,
        retries: int = 2,
        max_attempts: int = 8,
        retry_interval: float = 30.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            store,
            endpoints,
            name="webhook",
            kinds=frozenset({WEBHOOK}),
            max_attempts=max_attempts,
            retry_interval=retry_interval,
            clock=clock,
        )
        for endpoint in self.targets.values():
            register_url(endpoint.url.get_secret_value())  # its password, secret query parameters
            for secret in (endpoint.secret, endpoint.header):
                if secret is not None:
                    value = secret.get_secret_value()
                    register_secret(value, value.partition(":")[2].strip())
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.sleep = sleep
        self.http = requests.Session()

    @classmethod
    def from_settings(cls, settings: Settings, store: Store) -> WebhookNotifier | None:
        """Return the notifier the settings describe, or None when no webhook is configured."""
        endpoints = endpoints_from_settings(settings)
        if not endpoints:
            return None
        base_url = settings.public_url or f"http://{settings.host}:{settings.port}"
        if not settings.public_url:
            log.warning("webhook: KAYENTA_PUBLIC_URL is not set; report links point at %s", base_url)
        return cls(
            store,
            endpoints,
            base_url=base_url,
            timeout=settings.webhook_timeout,
            retries=settings.webhook_retries,
            max_attempts=settings.webhook_max_attempts,
            retry_interval=settings.webhook_delivery_interval,
        )

    def register(self, scheduler: BaseScheduler) -> None:
        """Add the delivery job (now, then every ``retry_interval``)."""
        self.add_delivery_job(scheduler)

    def describe(self) -> list[str]:
        """Where this notifier posts, fit to show: ``name: URL`` with credentials masked."""
        return [f"{name}: {endpoint.shown}" for name, endpoint in sorted(self.targets.items())]

    def notify_finished(self, analysis: Analysis) -> None:
        """Queue the finished analysis' document for each webhook that wants it, once.

        Idempotent (the outbox may call it again): each message's key is the analysis id. An
        error is raised, so the outbox keeps the event and tries again later.
        """
        endpoints = [e for e in self.targets.values() if e.wants(analysis)]
        if not endpoints:
            return
        metrics = list((self.store.last_result(analysis.id) or {}).get("metrics", []))
        document = redact_json(finished_document(analysis, metrics, base_url=self.base_url))
        self.store.add_notifications(
            [QueuedMessage(WEBHOOK, e.name, document, analysis.id, key=analysis.id) for e in endpoints]
        )
        self.wake()

    def headers(self, endpoint: Endpoint, body: bytes, payload: Mapping[str, Any]) -> dict[str, str]:
        """The headers of a post of ``body`` to ``endpoint`` (its signature and secret header)."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"kayenta-py/{__version__}",
            "X-Kayenta-Event": str(payload.get("event", EVENT)),
            "X-Kayenta-Delivery": str(payload.get("analysis_id", "")),
        }
        if endpoint.header is not None:
            name, _, value = endpoint.header.get_secret_value().partition(":")
            headers[name.strip()] = value.strip()
        if endpoint.secret is not None:
            headers[SIGNATURE_HEADER] = sign(endpoint.secret.get_secret_value(), body)
        return headers

    def post(self, endpoint: Endpoint, payload: Mapping[str, Any]) -> Outcome:
        """Post one document, with up to ``retries`` immediate retries; the URL never shows in clear."""
        body = encode_body(payload)
        headers = self.headers(endpoint, body, payload)
        outcome = Outcome(False, "not posted")
        for attempt in range(self.retries + 1):
            outcome, wait = self._post_once(endpoint, body, headers)
            if outcome.sent or outcome.permanent or wait is None or attempt == self.retries:
                break
            self.sleep(wait if wait else RETRY_BACKOFF_S * 2.0**attempt)
        return outcome

    def _post_once(
        self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str]
    ) -> tuple[Outcome, float | None]:
        """One POST: its outcome and, when an immediate retry may help, how long to wait (0: backoff)."""
        try:
            response = self.http.post(
                endpoint.url.get_secret_value(),
                data=body,
                headers=dict(headers),
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return Outcome(False, redact(f"{type(exc).__name__}: {exc}")[:500]), 0.0
        status = response.status_code
        if 200 <= status < 300:
            return Outcome(True), None
        text = re.sub(r"\s+", " ", response.text or "")[:200]
        error = redact(f"HTTP {status}" + (f": {text}" if text else ""))
        if status == 429:
            wait = retry_after(response.headers) or 0.0
            if 0 < wait <= MAX_RETRY_AFTER_S:
                return Outcome(False, error, wait=wait), wait
            return Outcome(False, error + (f" (Retry-After {wait:g} s)" if wait else ""), wait=wait), None
        if 500 <= status < 600 or status == 408:
            return Outcome(False, error), 0.0
        if 300 <= status < 400:
            return Outcome(False, error + " (redirects are not followed)", permanent=True), None
        return Outcome(False, error, permanent=True), None
