"""The service's parts wired together: settings, store, sources, runner, analyses."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from kayenta_py._config import CanaryConfig, load_config
from kayenta_py._errors import ConfigError, ConfigIssue, KayentaError
from kayenta_py._model import Thresholds
from kayenta_py._registry import Registry, default_registry
from kayenta_py._runner import AnalysisRunner, RunnerMetrics, interval_count
from kayenta_py._sequential import SequentialAnalysis
from kayenta_py._settings import Settings, parse_duration
from kayenta_py._slack import SlackNotifier
from kayenta_py._source import MetricsSource
from kayenta_py._store import STATUSES, AnalysisRecord, Store

log = logging.getLogger(__name__)

MAX_INTERVALS = 10_000  # judgements per analysis
MAX_POINTS_PER_SERIES = 1_000_000  # points a series may have over an analysis
NO_SOURCE = (
    "no metrics source is configured: set KAYENTA_PROMETHEUS_URL (the prometheus source) or "
    "KAYENTA_DEFAULT_SOURCE, or name a source in the request (the demo source serves generated "
    "data only when asked: source demo, KAYENTA_DEFAULT_SOURCE=demo or kayenta-py serve --demo)"
)


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
        self.registry = registry or default_registry()
        self.store = Store(settings.resolved_database_url)
        self.metrics_registry = CollectorRegistry()
        self.runner_metrics = RunnerMetrics.create(self.metrics_registry)
        self._analyses_gauge = Gauge(
            "kayenta_analyses", "Analyses by status", ["status"], registry=self.metrics_registry
        )
        self._sources: dict[str, MetricsSource] = {}
        self._sources_lock = threading.Lock()
        self.runner = AnalysisRunner(
            self.store,
            self.source,
            registry=self.registry,
            metrics=self.runner_metrics,
            concurrency=settings.fetch_concurrency,
            retry_limit=settings.source_retry_limit,
        )
        # Slack: a finished analysis queues a message (after its verdict is stored); a scheduler
        # job delivers it. None when no channel is configured: then nothing is ever queued.
        self.slack = SlackNotifier.from_settings(settings, self.store)
        if self.slack is not None:
            previous, notify = self.runner.on_finish, self.slack.notify_finished

            def on_finish(record: AnalysisRecord) -> None:
                if previous is not None:
                    previous(record)
                notify(record)

            self.runner.on_finish = on_finish
        self.started = False

    def start(self) -> None:
        """Migrate the database, then resume running analyses."""
        self.store.migrate()
        resumed = self.runner.start()
        if self.slack is not None:
            self.slack.register(self.runner.scheduler)
        self.started = True
        log.info(
            "kayenta-py service started: database %s, default source %s; %d analyses resumed",
            self.store.display_url,
            self.default_source() or "none",
            resumed,
        )

    def stop(self) -> None:
        """Stop the scheduler and close the database."""
        self.runner.shutdown()
        self.store.close()
        self.started = False

    # ------------------------------------------------------------ sources

    def source_names(self) -> list[str]:
        """Return the sources analyses may name."""
        names = ["demo"]
        if self.settings.prometheus_url:
            names.insert(0, "prometheus")
        return names

    def default_source(self) -> str | None:
        """Return the source used when an analysis and its config name none (None: such are refused)."""
        return self.settings.resolved_default_source()

    def choose_source(self, requested: str | None, config: CanaryConfig | None = None) -> str:
        """Return the source of an analysis: the request's, else its config's, else the default one.

        A config's ``csv`` (the command line's file source) is not a service source and is
        passed over. With none of them, the analysis is refused (it never falls back to demo data).
        """
        config_source = config.source if config is not None and config.source != "csv" else None
        name = requested or config_source or self.default_source()
        if not name:
            raise KayentaError(f"source: {NO_SOURCE}")
        return name

    def source(self, name: str) -> MetricsSource:
        """Return the metrics source called ``name``, built once."""
        with self._sources_lock:
            if name not in self._sources:
                self._sources[name] = self._build_source(name)
            return self._sources[name]

    def _build_source(self, name: str) -> MetricsSource:
        if name == "prometheus":
            if not self.settings.prometheus_url:
                raise KayentaError("source: 'prometheus' is not set up (KAYENTA_PROMETHEUS_URL is not set)")
            token = self.settings.prometheus_token
            source: MetricsSource = self.registry.source_class("prometheus")(
                self.settings.prometheus_url,
                bearer_token=token.get_secret_value() if token else None,
                timeout=self.settings.prometheus_timeout,
                retries=self.settings.prometheus_retries,
                pool_size=max(32, self.settings.fetch_concurrency),
            )
            return source
        if name == "demo":
            demo: MetricsSource = self.registry.source_class("demo")()
            return demo
        raise KayentaError(f"source: unknown source {name!r} (known: {', '.join(self.source_names())})")

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
                raise KayentaError("config_version: pins a stored config; give it with config_name")
            body = dict(config)
            return load_config(body, registry=self.registry), body, None, None
        assert config_name is not None
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
            load_config(record.body, registry=self.registry),
            dict(record.body),
            config_name,
            record.version,
        )

    def create_analysis(
        self,
        *,
        config: Mapping[str, Any] | None,
        config_name: str | None,
        config_version: int | None = None,
        baseline_scope: str,
        canary_scope: str,
        scope_params: Mapping[str, str] | None = None,
        location: str = "",
        source: str | None = None,
        start: float | None = None,
        end: float | None = None,
        lifetime: str | float | None = None,
        interval: str | float | None = None,
        warmup: str | float | None = 0,
        lookback: str | float | None = None,
        step: float = 60.0,
        thresholds: Mapping[str, float] | None = None,
        fail_fast: bool = True,
        kind: str = "native",
        mode: str | None = None,
        alpha: float = 0.05,
        family: str = "bonferroni",
        external_key: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> AnalysisRecord:
        """Validate and store a new analysis, then schedule it."""
        parsed, body, name, version = self.resolve_config(config, config_name, config_version)
        mode = mode or parsed.mode
        if mode not in ("fixed", "sequential"):
            raise KayentaError(f"mode: {mode!r} is not 'fixed' or 'sequential'")
        if family not in ("bonferroni", "e-bh"):
            raise KayentaError(f"family: {family!r} is not 'bonferroni' or 'e-bh'")
        if mode == "sequential":
            # Checks that every metric has (or defaults to) a sequential judge.
            SequentialAnalysis(
                load_config(body, registry=self.registry, mode="sequential"),
                alpha,
                family=family,  # type: ignore[arg-type]
                registry=self.registry,
            )
        source_name = self.choose_source(source, parsed)
        self.source(source_name)  # an unknown or unconfigured source fails now, not at the first interval
        now = time.time()
        start_ts = now if start is None else start
        warmup_s = parse_duration(warmup or 0, "warmup")
        if end is not None:
            if lifetime is not None:
                raise KayentaError("end: give either end or lifetime, not both")
            if end <= start_ts + warmup_s:
                raise KayentaError("end: must come after start (and warmup)")
            lifetime_s = end - start_ts - warmup_s
        else:
            lifetime_s = parse_duration(lifetime if lifetime is not None else "PT30M", "lifetime")
        interval_s = parse_duration(interval, "interval") if interval is not None else lifetime_s
        if interval_s <= 0 or lifetime_s <= 0:
            raise KayentaError("lifetime: lifetime and interval must be positive")
        if interval_s > lifetime_s:
            raise KayentaError(f"interval: {interval_s:g} s is longer than the lifetime ({lifetime_s:g} s)")
        if lifetime_s / interval_s > MAX_INTERVALS:
            raise KayentaError(
                f"interval: {lifetime_s / interval_s:.0f} intervals in the lifetime; at most {MAX_INTERVALS}"
            )
        lookback_s = parse_duration(lookback, "lookback") if lookback is not None else None
        if step <= 0:
            raise KayentaError("step: must be positive")
        if (lifetime_s + warmup_s) / step > MAX_POINTS_PER_SERIES:
            raise KayentaError(
                f"step: {step:g} s gives {(lifetime_s + warmup_s) / step:.0f} points per series over the "
                f"analysis; at most {MAX_POINTS_PER_SERIES}"
            )
        limits = Thresholds(
            float((thresholds or {}).get("pass", parsed.thresholds.pass_)),
            float((thresholds or {}).get("marginal", parsed.thresholds.marginal)),
        )
        record = self.store.create_analysis(
            kind=kind,
            external_key=external_key,
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
            thresholds=limits.to_dict(),
            fail_fast=fail_fast,
            intervals_total=interval_count(lifetime_s, interval_s),
            mode=mode,
            extra={
                **dict(extra or {}),
                **({"alpha": alpha, "family": family} if mode == "sequential" else {}),
            },
        )
        self.runner.schedule(record.id)
        return record

    def update_gauges(self) -> None:
        """Refresh the analyses-by-status gauge (called when /metrics is scraped)."""
        for status in STATUSES:
            _, total = self.store.list_analyses(status=status, limit=1)
            self._analyses_gauge.labels(status).set(total)
