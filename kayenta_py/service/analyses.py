"""The service's parts wired together: settings, store, sources, runner, analyses."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from kayenta_py.config.loader import load_config
from kayenta_py.config.model import CanaryConfig
from kayenta_py.config.registry import Registry, default_registry
from kayenta_py.engine.batches import check_traffic_queries
from kayenta_py.engine.sequential import SequentialAnalysis
from kayenta_py.engine.source import MetricsSource
from kayenta_py.model.errors import ConfigError, ConfigIssue, FieldError, KayentaError
from kayenta_py.model.limits import (
    DEFAULT_LIMITS,
    check_duration,
    check_json,
    check_params,
    check_text,
    check_time,
)
from kayenta_py.model.redact import register_settings_secrets
from kayenta_py.model.spec import AnalysisSpec
from kayenta_py.service.baseline_window import BaselineRequest, resolve_offset
from kayenta_py.service.dispatch import build_dispatcher
from kayenta_py.service.modes import choose_mode
from kayenta_py.service.notifiers import build_notifiers
from kayenta_py.service.outcome_metrics import OutcomeCollector
from kayenta_py.service.runner import AnalysisRunner
from kayenta_py.service.runner_support import RunnerMetrics, interval_count, runner_options
from kayenta_py.service.settings import Settings
from kayenta_py.service.settings_parsing import parse_duration
from kayenta_py.service.sources import (
    NO_SOURCE,
    build_source,
    configured_sources,
    describe_source,
    first_set_up_source,
    is_service_source,
    source_endpoint,
)
from kayenta_py.service.store.records import Analysis, stored_extra
from kayenta_py.service.store.repository import Store
from kayenta_py.service.store.tables import STATUSES

log = logging.getLogger(__name__)

MAX_INTERVALS = DEFAULT_LIMITS.max_intervals  # judgements per analysis (KAYENTA_MAX_INTERVALS)
MAX_POINTS_PER_SERIES = DEFAULT_LIMITS.max_points_per_series  # KAYENTA_MAX_POINTS_PER_SERIES
MAX_VERSION = 2**31 - 1  # a config version fits the store's integer column
__all__ = ["NO_SOURCE", "ConfigNotFoundError", "Service", "choose_mode"]


class ConfigNotFoundError(LookupError):
    """A stored config (or the version of it) an analysis names does not exist; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class Service:
    """Everything the HTTP API needs: the store, the runner, the sources and metrics."""

    def __init__(self, settings: Settings, *, registry: Registry | None = None) -> None:
        self.settings = settings
        register_settings_secrets(settings)  # every answer, log line and message masks them
        self.limits = settings.limits
        self.registry = registry or default_registry()
        self.store = Store(settings.resolved_database_url)
        self.metrics_registry = CollectorRegistry()
        self.replica_id = settings.resolved_replica_id
        self.runner_metrics = RunnerMetrics.create(self.metrics_registry, replica=self.replica_id)
        self._analyses_gauge = Gauge(
            "kayenta_analyses", "Analyses by status", ["status"], registry=self.metrics_registry
        )
        self.metrics_registry.register(OutcomeCollector(self.store))  # finished analyses' outcomes
        self._sources: dict[str, MetricsSource] = {}
        self._source_settings = settings.model_dump()  # what each source builds itself from
        self._sources_lock = threading.Lock()
        self.runner = AnalysisRunner(
            self.store,
            self.source,
            registry=self.registry,
            metrics=self.runner_metrics,
            dispatcher=build_dispatcher(settings),  # procrastinate on PostgreSQL: replicas share the work
            **runner_options(settings),
        )
        # Notifiers (Slack, ...): a final verdict is stored with an outbox event per notifier, in one
        # transaction; each notifier expands its events into messages (right after the verdict, and
        # periodically), and its scheduler jobs deliver them. None configured: nothing is queued.
        self.notifiers = build_notifiers(settings, self.store)
        for notifier in self.notifiers.values():
            self.runner.on_finish = _chained(self.runner.on_finish, notifier.notify_finished)
        self.started = False

    def start(self) -> None:
        """Migrate the database, then resume running analyses."""
        self.store.migrate()
        resumed = self.runner.start()
        for notifier in self.notifiers.values():
            notifier.register(self.runner.scheduler)
        self.started = True
        log.info(
            "kayenta-py service started: database %s, default source %s, dispatch %s (replica %s); "
            "%d analyses resumed",
            self.store.display_url,
            self.default_source() or "none",
            self.runner.dispatcher.engine,
            self.replica_id,
            resumed,
        )

    def stop(self) -> None:
        """Stop the dispatcher (handing running jobs back) and the scheduler, close the database."""
        self.runner.shutdown()
        self.store.close()
        self.started = False

    # ------------------------------------------------------------ sources

    def source_names(self) -> list[str]:
        """Return the sources analyses may name (every registered source its settings set up)."""
        return configured_sources(self.registry, self._source_settings)

    def default_source(self) -> str | None:
        """Return the source used when an analysis and its config name none (None: such are refused)."""
        return self.settings.default_source or first_set_up_source(self.registry, self._source_settings)

    def describe_source(self, name: str) -> str:
        """Return what source ``name`` reads, for people (its endpoint, else its description)."""
        return describe_source(self.registry, name, self._source_settings)

    def source_endpoint(self, name: str) -> str | None:
        """Return the address source ``name`` reads (None: it names none)."""
        return source_endpoint(self.registry, name, self._source_settings)

    def choose_source(self, requested: str | None, config: CanaryConfig | None = None) -> str:
        """Return the source of an analysis: the request's, else its config's, else the default one.

        A config's source that is never a service source (one declaring ``service_source =
        False``: ``csv``, the command line's files) is passed over. With none of them, the
        analysis is refused (it never falls back to demo data).
        """
        config_source = config.source if config is not None else None
        if config_source is not None and not is_service_source(self.registry, config_source):
            config_source = None
        name = requested or config_source or self.default_source()
        if not name:
            raise FieldError("source", f"{NO_SOURCE}")
        return name

    def source(self, name: str) -> MetricsSource:
        """Return the metrics source called ``name``, built once."""
        with self._sources_lock:
            if name not in self._sources:
                self._sources[name] = self._build_source(name)
            return self._sources[name]

    def _build_source(self, name: str) -> MetricsSource:
        return build_source(self.registry, name, self._source_settings)

    # ------------------------------------------------------------ analyses

    def resolve_config(
        self, config: Mapping[str, Any] | None, config_name: str | None, config_version: int | None = None
    ) -> tuple[CanaryConfig, dict[str, Any], str | None, int | None]:
        """Return the validated config, its body, and the stored name and version it came from.

        ``config_version`` pins that stored version of ``config_name`` (default: the latest);
        an unknown config or version raises :class:`ConfigNotFoundError`.
        """
        if (config is None) == (config_name is None):
            raise ConfigError([ConfigIssue("config", "give exactly one of config and config_name")])
        if config is not None:
            if config_version is not None:
                raise FieldError("config_version", "pins a stored config; give it with config_name")
            body = dict(config)
            return load_config(body, registry=self.registry, limits=self.limits), body, None, None
        assert config_name is not None
        check_text(config_name, "config_name", self.limits.max_name_chars, required=True)
        if config_version is not None and not 1 <= config_version <= MAX_VERSION:
            raise FieldError("config_version", f"{config_version!r} is not a version (1 to {MAX_VERSION})")
        latest = self.store.get_config(config_name)
        if latest is None:  # unknown, or deleted: a deleted config starts no analysis, pinned or not
            deleted = " (it was deleted)" if self.store.config_versions(config_name) else ""
            raise ConfigNotFoundError("config_name", f"no config {config_name!r}{deleted}")
        record = latest if config_version is None else self.store.get_config(config_name, config_version)
        if record is None:
            raise ConfigNotFoundError(
                "config_version",
                f"config {config_name!r} has no version {config_version} (latest: {latest.version})",
            )
        return (
            load_config(record.body, registry=self.registry, limits=self.limits),
            dict(record.body),
            config_name,
            record.version,
        )

    def create_analysis(self, spec: AnalysisSpec) -> Analysis:
        """Validate and store a new analysis, then schedule it.

        Every field is checked against :attr:`limits` before anything is stored. With an
        ``external_key`` the store returns the analysis already stored under it, if any (the
        unique key (kind, external_key) settles concurrent first calls).
        """
        limits = self.limits
        config, config_name, config_version = spec.config, spec.config_name, spec.config_version
        baseline_scope, canary_scope, location = spec.baseline_scope, spec.canary_scope, spec.location
        source, start, end, step = spec.source, spec.start, spec.end, spec.step
        lifetime, interval, warmup, lookback = spec.lifetime, spec.interval, spec.warmup, spec.lookback
        mode, alpha, family, kind = spec.mode, spec.alpha, spec.family, spec.door
        check_text(baseline_scope, "baseline_scope", limits.max_scope_chars, required=True)
        check_text(canary_scope, "canary_scope", limits.max_scope_chars, required=True)
        check_text(location, "location", limits.max_name_chars)
        scope_params = check_params(spec.scope_params or {}, "scope_params", limits)
        canary_scope_params = None
        if spec.canary_scope_params is not None:
            canary_scope_params = check_params(spec.canary_scope_params, "canary_scope_params", limits)
        if spec.canary_location is not None:
            check_text(spec.canary_location, "canary_location", limits.max_name_chars)
        if source is not None:
            check_text(source, "source", limits.max_name_chars)
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
            raise FieldError("alpha", f"{alpha!r} is not between 0 and 1")
        step = check_duration(step, "step", limits.max_step_s)
        check_json(spec.record.to_json(), "request", limits)
        parsed, body, name, version = self.resolve_config(config, config_name, config_version)
        if mode is not None and mode not in ("fixed", "sequential"):
            raise FieldError("mode", f"{mode!r} is not 'fixed' or 'sequential'")
        mode, mode_reason = choose_mode(mode, parsed, body, kind=kind, registry=self.registry)
        if family not in ("bonferroni", "e-bh"):
            raise FieldError("family", f"{family!r} is not 'bonferroni' or 'e-bh'")
        if mode == "sequential":
            # Checks that every metric has (or defaults to) a sequential judge, and the queries it fetches.
            sequential = load_config(body, registry=self.registry, mode="sequential")
            SequentialAnalysis(sequential, alpha, family=family, registry=self.registry)  # type: ignore[arg-type]
            try:
                check_traffic_queries(sequential, self.registry)
            except KayentaError as exc:
                raise FieldError("config", str(exc)) from None
        else:
            for metric in load_config(body, registry=self.registry, mode="fixed").metrics:
                if getattr(self.registry.judge_class(metric.judge_type), "sequential", False):
                    raise FieldError(
                        "mode", f"metric {metric.name!r} names the sequential judge {metric.judge_type}, "
                        "which runs only in mode sequential"
                    )
        source_name = self.choose_source(source, parsed)
        self.source(source_name)  # an unknown or unconfigured source fails now, not at the first interval
        now = time.time()
        if start is not None:
            check_time(start, "start", ahead=limits.max_start_ahead_s, now=now)
        if end is not None:
            check_time(end, "end")
        start_ts = now if start is None else start
        if start is None and mode == "sequential":
            # On the step grid: each interval then fetches whole steps, and the first point of a window
            # is never the last of the previous one (a source rounds a fractional start to its grid).
            start_ts = math.floor(now / step) * step
        longest = limits.max_lifetime_s
        warmup_s = check_duration(parse_duration(warmup or 0, "warmup"), "warmup", longest, positive=False)
        if end is not None:
            if lifetime is not None:
                raise FieldError("end", "give either end or lifetime, not both")
            if end <= start_ts + warmup_s:
                raise FieldError("end", "must come after start (and warmup)")
            lifetime_s = check_duration(end - start_ts - warmup_s, "end", longest)
        else:
            lifetime_s = parse_duration(lifetime if lifetime is not None else "PT30M", "lifetime")
            lifetime_s = check_duration(lifetime_s, "lifetime", longest)
        interval_s = parse_duration(interval, "interval") if interval is not None else lifetime_s
        interval_s = check_duration(interval_s, "interval", longest)
        check_time(start_ts + warmup_s + lifetime_s, "end" if end is not None else "lifetime")
        if interval_s > lifetime_s:
            raise FieldError("interval", f"{interval_s:g} s is longer than the lifetime ({lifetime_s:g} s)")
        if lifetime_s / interval_s > limits.max_intervals:
            raise FieldError(
                "interval", f"{lifetime_s / interval_s:.0f} intervals in the lifetime; "
                f"at most {limits.max_intervals} (KAYENTA_MAX_INTERVALS)"
            )
        lookback_s = None
        if lookback is not None:
            lookback_s = check_duration(parse_duration(lookback, "lookback"), "lookback", longest)
        if (lifetime_s + warmup_s) / step > limits.max_points_per_series:
            raise FieldError(
                "step", f"{step:g} s gives {(lifetime_s + warmup_s) / step:.0f} points per series over the "
                f"analysis; at most {limits.max_points_per_series} (KAYENTA_MAX_POINTS_PER_SERIES)"
            )
        baseline = BaselineRequest(spec.baseline_offset, spec.baseline_start, spec.baseline_end)
        end_ts = start_ts + warmup_s + lifetime_s
        baseline_offset_s = resolve_offset(
            baseline, start_ts=start_ts, end_ts=end_ts, now=now, fields=spec.baseline_fields
        )
        score_limits = parsed.thresholds.overridden(spec.thresholds)
        record = self.store.create_analysis(
            kind=kind,
            external_key=spec.external_key,
            config_name=name,
            config_version=version,
            config_body=body,
            baseline_scope=baseline_scope,
            canary_scope=canary_scope,
            location=location,
            scope_params=dict(scope_params or {}),
            source=source_name,
            start_ts=start_ts,
            lifetime_s=lifetime_s,
            interval_s=interval_s,
            warmup_s=warmup_s,
            lookback_s=lookback_s,
            step_s=step,
            thresholds=score_limits.to_dict(),
            fail_fast=spec.fail_fast,
            intervals_total=interval_count(lifetime_s, interval_s),
            mode=mode,
            extra=stored_extra(
                mode_reason=mode_reason,
                alpha=alpha,
                family=family,
                canary_location=spec.canary_location,
                canary_scope_params=canary_scope_params,
                door=spec.record,
                baseline_offset_s=baseline_offset_s,
            ),
        )
        self.runner.schedule(record.id)
        return record

    def update_gauges(self) -> None:
        """Refresh the analyses-by-status and dispatch gauges (called when /metrics is scraped)."""
        self.runner.update_metrics()
        for status in STATUSES:
            _, total = self.store.list_analyses(status=status, limit=1)
            self._analyses_gauge.labels(status).set(total)


def _chained(
    previous: Callable[[Analysis], None] | None, then: Callable[[Analysis], None]
) -> Callable[[Analysis], None]:
    """Return an on-finish hook that runs ``previous`` (if any), then ``then``."""

    def on_finish(record: Analysis) -> None:
        if previous is not None:
            previous(record)
        then(record)

    return on_finish
