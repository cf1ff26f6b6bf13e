"""Finished analyses' outcomes as Prometheus metrics: what Argo Rollouts and Flagger users alert on.

Read from the shared store when ``/metrics`` is scraped (two bounded statements,
:mod:`kayenta_py.service.store.outcomes`), so every replica exports the same values (aggregate
replicas with ``max``, not ``sum``). No series carries an analysis id: the number of series is
bounded by configs (at most ``MAX_CONFIGS`` for the ``kayenta_last_*`` families) and their
metrics (at most ``MAX_METRICS`` each)::

    kayenta_analyses_finished_total{config, status, verdict}      finished analyses (a counter)
    kayenta_last_analysis_verdict{config, verdict}                1 for the latest's verdict, else 0
    kayenta_last_analysis_score{config}                           its score (absent: none)
    kayenta_last_analysis_timestamp_seconds{config}               when it finished
    kayenta_last_metric_classification{config, metric, classification}   one-hot, per metric
    kayenta_last_metric_effect_size{config, metric}               the judge's effect size (absent: none)
    kayenta_outcome_metrics_up                                    0 when the store could not be read

``metric`` is the metric's name with its tags (``latency{region=eu}``). Label values are
escaped by the exposition (backslash, double quote, line feed).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kayenta_py.model.types import Classification, Verdict
from kayenta_py.service.store.base import StoreBase
from kayenta_py.service.store.outcomes import finished_counts, latest_outcomes

log = logging.getLogger(__name__)

MAX_CONFIGS = 200  # configs with kayenta_last_* series: the most recently finished ones
MAX_METRICS = 200  # metrics per config in kayenta_last_metric_* series
VERDICTS = tuple(v.value for v in Verdict if v is not Verdict.PENDING)
CLASSIFICATIONS = tuple(c.value for c in Classification)


def metric_label(result: Mapping[str, Any]) -> str:
    """A metric result's name with its tags, as people see it (``latency{region=eu}``)."""
    name = str(result.get("name") or "")
    tags = result.get("tags") or {}
    if not isinstance(tags, Mapping) or not tags:
        return name
    return name + "{" + ",".join(f"{k}={v}" for k, v in tags.items()) + "}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


class OutcomeCollector(Collector):
    """A Prometheus collector of finished analyses' outcomes, read from ``store`` at each scrape."""

    def __init__(self, store: StoreBase, *, max_configs: int = MAX_CONFIGS, max_metrics: int = MAX_METRICS):
        self.store = store
        self.max_configs = max_configs
        self.max_metrics = max_metrics

    def describe(self) -> list[Metric]:
        """Nothing: the registry must not read the store when the collector is registered."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield the outcome families (``kayenta_outcome_metrics_up`` 0 when the store fails)."""
        up = GaugeMetricFamily("kayenta_outcome_metrics_up", "1 when finished analyses could be read")
        try:
            families = self._families()
        except Exception as exc:  # the scrape goes on: the service's other metrics still matter
            log.warning("/metrics: finished analyses could not be read: %s: %s", type(exc).__name__, exc)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from families

    def _families(self) -> list[Metric]:
        finished = CounterMetricFamily(
            "kayenta_analyses_finished",
            "Finished analyses by config, status (completed, failed, cancelled) and verdict",
            labels=["config", "status", "verdict"],
        )
        for config, status, verdict, count in finished_counts(self.store):
            finished.add_metric([config, status, verdict], float(count))
        verdict_family = GaugeMetricFamily(
            "kayenta_last_analysis_verdict",
            "The latest finished analysis of each config: 1 for its verdict, 0 for the others",
            labels=["config", "verdict"],
        )
        score = GaugeMetricFamily(
            "kayenta_last_analysis_score",
            "Score of the latest finished analysis of each config",
            labels=["config"],
        )
        finished_at = GaugeMetricFamily(
            "kayenta_last_analysis_timestamp_seconds",
            "When the latest finished analysis of each config finished (Unix time)",
            labels=["config"],
        )
        classification = GaugeMetricFamily(
            "kayenta_last_metric_classification",
            "Each metric of each config's latest finished analysis: 1 for its classification, else 0",
            labels=["config", "metric", "classification"],
        )
        effect = GaugeMetricFamily(
            "kayenta_last_metric_effect_size",
            "Each metric's effect size (as its judge measures it) in each config's latest finished analysis",
            labels=["config", "metric"],
        )
        for outcome in latest_outcomes(self.store, limit=self.max_configs):
            config = outcome.config
            for verdict in (*VERDICTS, *([outcome.verdict] if outcome.verdict not in VERDICTS else [])):
                verdict_family.add_metric([config, verdict], float(verdict == outcome.verdict))
            if (value := _number(outcome.score)) is not None:
                score.add_metric([config], value)
            finished_at.add_metric([config], outcome.completed_ts)
            seen: set[str] = set()
            for result in outcome.metrics:
                metric = metric_label(result)
                if metric in seen or len(seen) >= self.max_metrics:
                    continue
                seen.add(metric)
                given = str(result.get("classification") or "")
                for name in (*CLASSIFICATIONS, *([given] if given and given not in CLASSIFICATIONS else [])):
                    classification.add_metric([config, metric, name], float(name == given))
                if (value := _number(result.get("effect_size"))) is not None:
                    effect.add_metric([config, metric], value)
        return [finished, verdict_family, score, finished_at, classification, effect]
