"""Slack notifications: a message per finished analysis and a scheduled digest, over incoming webhooks.

Nothing is sent inline. When an analysis finishes, a ``finished`` message per
interested channel is built and queued in the store's ``notifications`` table;
a scheduler job delivers queued messages (slack-sdk's ``WebhookClient``, with
short immediate retries on 429 honouring ``Retry-After``, on 5xx and on
connection errors). A delivery that still fails stays ``pending`` with its
attempts and last error recorded, and is tried again later with a growing delay,
until ``max_attempts`` (then ``failed``). A cron job per channel queues a digest
of the analyses finished since the previous digest. Slack can never delay or
change a verdict: the verdict is stored before the message is queued, and every
failure here is logged, never raised into the runner.

Several replicas may share one database: a message is claimed (``pending`` to
``sending``) in one conditional update before it is posted, so only one replica
posts it; of the digests several replicas queue for the same cron minute, only
the first is posted. A claim is a lease: while a post is in progress its row's
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
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, cast
from zoneinfo import ZoneInfo

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.base import BaseScheduler
from pydantic import SecretStr
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.webhook import WebhookClient
from sqlalchemy import CursorResult, func, select, update

from kayenta_py.model.redact import redact, redact_json, register_webhook
from kayenta_py.service.settings import Settings, cron_trigger
from kayenta_py.service.store.repository import Store
from kayenta_py.service.store.tables import AnalysisRecord, IntervalRecord, NotificationRecord

log = logging.getLogger(__name__)

DEFAULT_CHANNEL = "default"
FINISHED, DIGEST = "finished", "digest"
PENDING, SENDING, SENT, FAILED, SKIPPED = "pending", "sending", "sent", "failed", "skipped"
DELIVERY_JOB = "slack-delivery"
DIGEST_JOB_PREFIX = "slack-digest:"

# Slack's Block Kit limits (https://api.slack.com/reference/block-kit).
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_URL = 3000
MAX_FALLBACK_TEXT = 3000  # Slack accepts more, but a notification preview shows a line or two
MAX_METRIC_LINE = 600  # one metric's entry; a longer reason is cut
MAX_METRIC_SECTIONS = 5  # sections listing metrics; the rest is counted and left to the report
TOP_N = 5  # failing metrics and configs in a digest
DIGEST_DEFAULT_WINDOW_S = 86_400.0  # the first digest covers the last 24 hours
MAX_RETRY_AFTER_S = 30.0  # a longer Retry-After is not slept through: the message waits for a later run
MAX_BACKOFF_S = 3600.0
STALE_SENDING_S = 30.0  # a claim not renewed for this long was left by a replica that died
LEASE_RENEW_S = 10.0  # how often a post in progress renews its claim
HTTP_TIMEOUT_S = 10

FAILING = frozenset({"High", "Low", "NodataFailMetric", "Error"})
VERDICT_EMOJI = {"pass": ":white_check_mark:", "marginal": ":warning:", "fail": ":x:"}

# slack-sdk logs the request URL (the secret) at DEBUG and INFO: give it a logger that says nothing.
_SDK_LOG = logging.Logger("kayenta_py.slack.sdk", logging.CRITICAL + 1)
_SDK_LOG.disabled = True


# ---------------------------------------------------------------- channels


@dataclass(frozen=True)
class Channel:
    """A Slack channel: where its messages go, which analyses it hears of, and its digest cron."""

    name: str
    webhook_url: SecretStr = field(repr=False)
    digest_cron: str | None = None
    configs: frozenset[str] = frozenset()
    verdicts: frozenset[str] = frozenset()

    def wants(self, analysis: AnalysisRecord) -> bool:
        """Return whether a message about this finished analysis goes to this channel."""
        if self.configs and config_label(analysis) not in self.configs:
            return False
        return not self.verdicts or analysis.verdict in self.verdicts


def channels_from_settings(settings: Settings) -> dict[str, Channel]:
    """Return the configured channels: ``default`` (``slack_webhook_url``) and ``slack_channels``."""
    channels: dict[str, Channel] = {}
    if settings.slack_webhook_url is not None:
        channels[DEFAULT_CHANNEL] = Channel(
            DEFAULT_CHANNEL, settings.slack_webhook_url, settings.slack_digest_cron
        )
    for name, extra in settings.slack_channels.items():
        channels[name] = Channel(
            name, extra.webhook_url, extra.digest_cron, frozenset(extra.configs), frozenset(extra.verdicts)
        )
    return channels


def config_label(analysis: AnalysisRecord) -> str:
    """Return the name people know the analysis' config by (stored name, else the body's name)."""
    name = analysis.config_name or (analysis.config_body or {}).get("name")
    return str(name) if name else "(unnamed config)"


# ---------------------------------------------------------------- Block Kit helpers


def escape(text: str) -> str:
    """Escape text for Slack mrkdwn, so user input cannot make links or mentions (``<!channel>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int, ellipsis: str = "…") -> str:
    """Return ``text`` cut to at most ``limit`` characters, ending with ``ellipsis`` when cut."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - len(ellipsis))]
    amp = cut.rfind("&", max(0, len(cut) - 5))
    if amp != -1 and ";" not in cut[amp:]:  # never leave half an escape (``&am``)
        cut = cut[:amp]
    return cut + ellipsis


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, MAX_SECTION_TEXT)}}


def _header(text: str) -> dict[str, Any]:
    plain = {"type": "plain_text", "text": clip(text, MAX_HEADER_TEXT), "emoji": True}
    return {"type": "header", "text": plain}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, MAX_SECTION_TEXT)}]}


def _button(text: str, url: str, action_id: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": clip(text, MAX_BUTTON_TEXT), "emoji": True},
        "url": url[:MAX_URL],
        "action_id": action_id,
    }


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "n/a"
    return f"{value:.4g}"


def _score(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.1f}"


def _when(epoch: float, zone: tzinfo) -> str:
    return datetime.fromtimestamp(epoch, zone).strftime("%Y-%m-%d %H:%M %Z")


def metric_label(metric: Mapping[str, Any]) -> str:
    """Return a metric's name with its tags (``latency{region=eu}``)."""
    tags = metric.get("tags") or {}
    name = str(metric.get("name", "?"))
    return name + ("{" + ",".join(f"{k}={v}" for k, v in sorted(tags.items())) + "}" if tags else "")


def not_passing(metrics: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Return the metrics that did not pass: critical failures first, then failures, then no data."""
    chosen = [m for m in metrics if m.get("classification") != "Pass" and not m.get("muted")]

    def rank(metric: Mapping[str, Any]) -> int:
        failing = metric.get("classification") in FAILING
        return 0 if failing and metric.get("critical") else 1 if failing else 2

    return sorted(chosen, key=rank)  # stable: the config's order within a rank


def metric_line(metric: Mapping[str, Any]) -> str:
    """Return one metric's mrkdwn entry: classification, effect size, confidence interval, reason."""
    critical = " (critical)" if metric.get("critical") else ""
    parts = [f"• *{escape(metric_label(metric))}*{critical}: {escape(str(metric.get('classification')))}"]
    if metric.get("effect_size") is not None:
        measure = metric.get("effect_measure")
        size = f"effect size {_number(metric['effect_size'])}"
        parts.append(size + (f" ({escape(str(measure))})" if measure else ""))
    ci = metric.get("ci")
    if isinstance(ci, Sequence) and len(ci) == 2:
        parts.append(f"CI [{_number(ci[0])}, {_number(ci[1])}]")
    line = ", ".join(parts)
    reason = str(metric.get("reason") or "").strip()
    if reason:
        line += f"\n   _{escape(reason)}_"
    return clip(line, MAX_METRIC_LINE)


def pack_lines(lines: Sequence[str], *, heading: str, max_sections: int) -> list[str]:
    """Pack lines into at most ``max_sections`` texts of at most 3,000 characters each.

    Lines that do not fit are counted in a closing "…and N more metrics" line.
    """
    texts: list[str] = []
    current = heading
    for index, line in enumerate(lines):
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) <= MAX_SECTION_TEXT:
            current = candidate
            continue
        if len(texts) + 1 < max_sections:  # start a new section
            texts.append(current)
            current = line
            continue
        rest = len(lines) - index
        more = f"\n…and {rest} more metric{'s' if rest != 1 else ''} (see the report)"
        while current and len(current) + len(more) > MAX_SECTION_TEXT:  # make room for the note
            current = current.rsplit("\n", 1)[0] if "\n" in current else ""
            rest += 1
            more = f"\n…and {rest} more metrics (see the report)"
        texts.append(current + more)
        return texts
    if current:
        texts.append(current)
    return texts


def limit_blocks(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return at most 50 blocks, keeping the last (the links) when blocks must be dropped."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    return [*blocks[: MAX_BLOCKS - 1], blocks[-1]]


# ---------------------------------------------------------------- messages


def analysis_links(base_url: str, analysis_id: str) -> dict[str, str]:
    """Return the report and verdict URLs of an analysis."""
    base = f"{base_url.rstrip('/')}/api/v1/analyses/{analysis_id}"
    return {"report": f"{base}/report", "verdict": f"{base}/verdict"}


def finished_message(
    analysis: AnalysisRecord, metrics: Sequence[Mapping[str, Any]], *, base_url: str
) -> dict[str, Any]:
    """Return the Slack message (``text`` and ``blocks``) about a finished analysis.

    ``metrics`` are the per-metric results of its last judged interval.
    """
    verdict = analysis.verdict.lower()
    config = config_label(analysis)
    links = analysis_links(base_url, analysis.id)
    emoji = VERDICT_EMOJI.get(verdict, ":grey_question:")
    title = f"{emoji} Canary {verdict.upper()}: {config} (score {_score(analysis.score)})"
    failing = not_passing(metrics)
    thresholds = analysis.thresholds or {}
    version = f" v{analysis.config_version}" if analysis.config_version else ""
    location = f" in {escape(analysis.location)}" if analysis.location else ""
    summary = "\n".join(
        [
            f"*<{links['report']}|Canary analysis {escape(analysis.id)}>*: *{verdict.upper()}*, score "
            f"{_score(analysis.score)} (pass ≥ {_number(thresholds.get('pass'))}, "
            f"marginal ≥ {_number(thresholds.get('marginal'))})",
            f"*Config:* {escape(config)}{version}",
            f"*Canary:* `{escape(analysis.canary_scope)}` against baseline "
            f"`{escape(analysis.baseline_scope)}`{location}",
            f"*Status:* {escape(analysis.status)}",
            f"*Reason:* {escape(analysis.reason)}",
        ]
    )
    blocks: list[dict[str, Any]] = [_header(title), _section(summary)]
    if failing:
        count = len(failing)
        heading = f"*{count} metric{'s' if count != 1 else ''} did not pass* (last interval):"
        lines = [metric_line(m) for m in failing]
        texts = pack_lines(lines, heading=heading, max_sections=MAX_METRIC_SECTIONS)
        blocks.append({"type": "divider"})
        blocks.extend(_section(text) for text in texts)
    elif metrics:
        blocks.append(_context("Every metric passed in the last interval."))
    blocks.append(
        {
            "type": "actions",
            "elements": [
                _button("Report", links["report"], "report"),
                _button("Verdict", links["verdict"], "verdict"),
            ],
        }
    )
    names = ", ".join(metric_label(m) for m in failing[:10]) + (", …" if len(failing) > 10 else "")
    text = f"Canary {verdict.upper()}: {config} (score {_score(analysis.score)})"
    if failing:
        text += f"; did not pass: {names}"
    text = clip(escape(text), MAX_FALLBACK_TEXT - len(links["report"]) - 3) + f" - {links['report']}"
    return {"text": text, "blocks": limit_blocks(blocks)}


@dataclass(frozen=True)
class DigestSummary:
    """What a digest reports: the analyses finished in ``(since, until]``."""

    since: float
    until: float
    total: int
    verdicts: Mapping[str, int]
    statuses: Mapping[str, int]
    failing_metrics: Sequence[tuple[str, str, int, int]]
    """(metric, config, analyses where it failed, analyses of that config), most failures first."""
    failing_configs: Sequence[tuple[str, int, int, int]]
    """(config, fail, marginal, analyses), most failures first."""


def summarize(
    store: Store, since: float, until: float, *, configs: frozenset[str] = frozenset(), top: int = TOP_N
) -> DigestSummary:
    """Count the analyses finished in ``(since, until]`` and find what failed most often."""
    finished = (
        select(AnalysisRecord)
        .where(AnalysisRecord.completed_ts > since, AnalysisRecord.completed_ts <= until)
        .order_by(AnalysisRecord.completed_ts)
    )
    ids = select(AnalysisRecord.id).where(
        AnalysisRecord.completed_ts > since, AnalysisRecord.completed_ts <= until
    )
    last = (
        select(IntervalRecord.analysis_id, func.max(IntervalRecord.index).label("last"))
        .where(IntervalRecord.analysis_id.in_(ids))
        .group_by(IntervalRecord.analysis_id)
        .subquery()
    )
    results = select(IntervalRecord.analysis_id, IntervalRecord.result).join(
        last, (IntervalRecord.analysis_id == last.c.analysis_id) & (IntervalRecord.index == last.c.last)
    )
    with store.session() as session:
        analyses = [a for a in session.scalars(finished) if not configs or config_label(a) in configs]
        last_results = {row[0]: row[1] for row in session.execute(results)}
    verdicts: Counter[str] = Counter(a.verdict for a in analyses)
    statuses: Counter[str] = Counter(a.status for a in analyses)
    per_config: Counter[str] = Counter()
    fails: Counter[str] = Counter()
    marginals: Counter[str] = Counter()
    metric_failures: Counter[tuple[str, str]] = Counter()
    for analysis in analyses:
        config = config_label(analysis)
        per_config[config] += 1
        fails[config] += analysis.verdict == "fail"
        marginals[config] += analysis.verdict == "marginal"
        result = last_results.get(analysis.id) or {}
        failed = {
            metric_label(m)
            for m in result.get("metrics", [])
            if m.get("classification") in FAILING and not m.get("muted")
        }
        for name in failed:
            metric_failures[(name, config)] += 1
    top_metrics = sorted(metric_failures.items(), key=lambda item: (-item[1], item[0]))[:top]
    top_configs = sorted(
        (c for c in per_config if fails[c] or marginals[c]), key=lambda c: (-fails[c], -marginals[c], c)
    )[:top]
    return DigestSummary(
        since=since,
        until=until,
        total=len(analyses),
        verdicts=dict(verdicts),
        statuses=dict(statuses),
        failing_metrics=[(name, config, n, per_config[config]) for (name, config), n in top_metrics],
        failing_configs=[(c, fails[c], marginals[c], per_config[c]) for c in top_configs],
    )


def digest_message(
    summary: DigestSummary, *, base_url: str, channel: str, zone: tzinfo = UTC
) -> dict[str, Any]:
    """Return the digest's Slack message (``text`` and ``blocks``)."""
    window = f"{_when(summary.since, zone)} to {_when(summary.until, zone)}"
    plural = "analysis" if summary.total == 1 else "analyses"
    title = f":bar_chart: Canary digest: {summary.total} {plural} finished"
    counts = "  ".join(
        f"{VERDICT_EMOJI[v]} {v} *{summary.verdicts.get(v, 0)}*" for v in ("pass", "marginal", "fail")
    )
    unusual = [
        f"{summary.statuses[s]} {label}"
        for s, label in (("cancelled", "cancelled"), ("failed", "ended by an error"))
        if summary.statuses.get(s)
    ]
    blocks: list[dict[str, Any]] = [
        _header(title),
        _section(f"*{window}*\n{counts}" + (f"\n_({', '.join(unusual)})_" if unusual else "")),
    ]
    text = f"Canary digest ({window}): {summary.total} {plural}"
    if summary.total:
        text += ", " + ", ".join(f"{summary.verdicts.get(v, 0)} {v}" for v in ("pass", "marginal", "fail"))
        metric_lines = [
            f"{i}. `{escape(name)}` ({escape(config)}): failed in {n} of {total} "
            f"{'analysis' if total == 1 else 'analyses'}"
            for i, (name, config, n, total) in enumerate(summary.failing_metrics, start=1)
        ]
        config_lines = [
            f"{i}. *{escape(config)}*: {fail} fail, {marginal} marginal of {total}"
            for i, (config, fail, marginal, total) in enumerate(summary.failing_configs, start=1)
        ]
        blocks.append({"type": "divider"})
        blocks.append(
            _section("*Most frequently failing metrics*\n" + ("\n".join(metric_lines) or "_None failed._"))
        )
        blocks.append(
            _section("*Configs failing most often*\n" + ("\n".join(config_lines) or "_Every config passed._"))
        )
        if summary.failing_metrics:
            text += "; most failing metric: " + summary.failing_metrics[0][0]
    else:
        blocks.append(_context("No canary analysis finished in this period."))
    listing = f"{base_url.rstrip('/')}/api/v1/analyses?status=completed"
    blocks.append(_context(f"<{listing}|All analyses> · channel {escape(channel)}"))
    return {"text": clip(escape(text), MAX_FALLBACK_TEXT), "blocks": limit_blocks(blocks)}


# ---------------------------------------------------------------- delivery


class _RateLimitRetry(RateLimitErrorRetryHandler):
    """Retry a 429 after its ``Retry-After`` (whole seconds), unless that is too long to wait inline."""

    def __init__(self, max_retry_count: int, max_wait: float) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        wait = retry_after(response.headers)
        return wait is not None and wait <= self.max_wait


class _ServerErrorRetry(ServerErrorRetryHandler):
    """Retry any 5xx answer (slack-sdk's own handler retries only 500 and 503)."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and 500 <= response.status_code < 600


def retry_after(headers: Mapping[str, Any]) -> float | None:
    """Return a ``Retry-After`` header's seconds (1 when absent), or None when it is not a number."""
    for key, value in headers.items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) else value
            text = str(raw).strip()
            return float(text) if text.isdigit() else None
    return 1.0


def retry_handlers(retries: int, *, max_retry_after: float = MAX_RETRY_AFTER_S) -> list[RetryHandler]:
    """Return the retry handlers of a post: 429 (honouring Retry-After), 5xx, connection errors."""
    backoff = BackoffRetryIntervalCalculator(backoff_factor=0.5)
    return [
        _RateLimitRetry(retries, max_retry_after),
        _ServerErrorRetry(max_retry_count=retries, interval_calculator=backoff),
        ConnectionErrorRetryHandler(max_retry_count=retries, interval_calculator=backoff),
    ]


@dataclass(frozen=True)
class Outcome:
    """The result of one delivery attempt."""

    sent: bool
    error: str | None = None
    permanent: bool = False  # retrying cannot help (a 4xx such as an invalid payload or a dead webhook)
    wait: float = 0.0  # Slack asked to wait this long (a long Retry-After)


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

    def notify_finished(self, analysis: AnalysisRecord) -> None:
        """Queue a message about a finished analysis for each channel that wants it (never raises)."""
        try:
            channels = [c for c in self.channels.values() if c.wants(analysis)]
            if not channels:
                return
            metrics = self._last_metrics(analysis.id)
            message = redact_json(finished_message(analysis, metrics, base_url=self.base_url))
            for channel in channels:
                self.store.add_notification(FINISHED, channel.name, message, analysis_id=analysis.id)
            self.wake()
        except Exception:
            log.exception("slack: could not queue the message about analysis %s", analysis.id)

    def _last_metrics(self, analysis_id: str) -> list[Mapping[str, Any]]:
        query = (
            select(IntervalRecord.result)
            .where(IntervalRecord.analysis_id == analysis_id)
            .order_by(IntervalRecord.index.desc())
            .limit(1)
        )
        with self.store.session() as session:
            result = session.scalar(query)
        return list((result or {}).get("metrics", []))

    def enqueue_digest(self, channel_name: str, *, now: float | None = None) -> NotificationRecord:
        """Queue a digest of the analyses finished since the channel's previous digest (or 24 h)."""
        channel = self.channels[channel_name]
        until = self.clock() if now is None else now
        previous = self._last_digest(channel_name)
        since = until - DIGEST_DEFAULT_WINDOW_S
        if previous is not None:
            since = float(previous.payload.get("window", {}).get("until", previous.created_ts))
        summary = summarize(self.store, since, until, configs=channel.configs)
        message = digest_message(summary, base_url=self.base_url, channel=channel_name, zone=self.zone)
        key = datetime.fromtimestamp(until, UTC).strftime("%Y-%m-%dT%H:%M")  # one digest per cron minute
        message = redact_json(message)
        message["window"] = {"since": since, "until": until, "key": key}
        return self.store.add_notification(DIGEST, channel_name, message)

    def digest_job(self, channel_name: str) -> None:
        """The cron job: queue the channel's digest and deliver it now."""
        try:
            self.enqueue_digest(channel_name)
        except Exception:
            log.exception("slack: could not build the digest of channel %r", channel_name)
            return
        self.wake()

    def _last_digest(self, channel_name: str) -> NotificationRecord | None:
        with self.store.session() as session:
            return session.scalar(
                select(NotificationRecord)
                .where(
                    NotificationRecord.kind == DIGEST,
                    NotificationRecord.channel == channel_name,
                    NotificationRecord.status != SKIPPED,
                )
                .order_by(NotificationRecord.id.desc())
                .limit(1)
            )

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
            if notification.kind == DIGEST and self._duplicate_digest(notification):
                self.store.mark_notification(notification.id, SKIPPED, "another replica sent this digest")
                continue
            with self._lease(notification.id, now):
                outcome = self._post(channel, notification.payload)
            delivered += self._record(notification, outcome, now)
            if not outcome.sent and not outcome.permanent:
                down.add(channel.name)
        return delivered

    def _record(self, notification: NotificationRecord, outcome: Outcome, now: float) -> int:
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
        with self.store.session() as session:
            result = session.execute(
                update(NotificationRecord)
                .where(NotificationRecord.id == notification_id, NotificationRecord.status == PENDING)
                .values(status=SENDING, updated_ts=now)
            )
            return cast(CursorResult[Any], result).rowcount == 1

    @contextlib.contextmanager
    def _lease(self, notification_id: int, claimed: float) -> Iterator[None]:
        """Renew the claim of a message every ``LEASE_RENEW_S`` while it is being posted."""
        stop = threading.Event()
        start = time.monotonic()

        def renew() -> None:
            while not stop.wait(LEASE_RENEW_S):
                try:
                    with self.store.session() as session:
                        session.execute(
                            update(NotificationRecord)
                            .where(NotificationRecord.id == notification_id)
                            .where(NotificationRecord.status == SENDING)
                            .values(updated_ts=claimed + time.monotonic() - start)
                        )
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

    def _duplicate_digest(self, notification: NotificationRecord) -> bool:
        key = notification.payload.get("window", {}).get("key")
        with self.store.session() as session:
            earlier = session.scalars(
                select(NotificationRecord).where(
                    NotificationRecord.kind == DIGEST,
                    NotificationRecord.channel == notification.channel,
                    NotificationRecord.id < notification.id,
                    NotificationRecord.status != SKIPPED,
                    NotificationRecord.created_ts > notification.created_ts - 3600,
                )
            ).all()
        return any(e.payload.get("window", {}).get("key") == key for e in earlier)

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
