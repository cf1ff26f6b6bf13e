"""Demo metrics source: realistic generated data for any scope and time, no service needed.

The data come from kayenta-py's synthetic traffic model (``kayenta_py.plugin.TrafficModel``:
requests on an hourly traffic cycle, gamma-Poisson error counts, lognormal latency percentiles,
CPU, orders). The value of a metric at a time is a deterministic function of (scope, metric,
time), so a restarted service fetches exactly the same data again. A scope whose name contains
``regressed`` has slower latency (x1.5), more errors (x4) and a hotter CPU (x1.25); every other
scope is healthy. Every scope shares the model's draw of a given moment (they serve the same
users) and adds 1% noise of its own, so a healthy canary tracks its baseline closely (a demo that
passes reliably). Values follow the metric's kind: errors get the error ratio, latency the p50
(the p99 when the name has ``99``), saturation the CPU, business the orders, and any other metric
the requests per step; a ``custom`` metric (every metric of a Kayenta config) gets the kind its
name suggests (``error``, ``latency``, ``cpu``, ``orders``...).
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from kayenta_py import KayentaError, MetricConfig, MetricKind, MetricSet, Scope
from kayenta_py.plugin import Effects, TrafficModel, traffic_cycle

MODEL = TrafficModel()  # the bundled example's checkout service
HEALTHY = Effects()
REGRESSION = Effects(errors=4.0, p50=1.5, p99=1.5, saturation=1.25)  # a scope named *regressed*


class DemoSource:
    """Generated baseline and canary metrics for demos, tests and notebooks."""

    name = "demo"
    description = "generated data"  # what the service's start line says it reads

    def fetch(
        self,
        metric: MetricConfig,
        scope: Scope | str,
        start: float | None = None,
        end: float | None = None,
        step: float | None = None,
    ) -> list[MetricSet]:
        """Return one series on the grid ``start, start+step, ... <= end``."""
        if start is None or end is None or step is None or step <= 0 or end < start:
            raise KayentaError(f"metric {metric.name!r}: the demo source needs start <= end and step > 0")
        name = scope.scope if isinstance(scope, Scope) else scope
        first = math.ceil(start / step) * step  # an absolute grid: restarts see the same points
        timestamps = np.arange(first, end + step / 2, step, dtype=np.float64)
        timestamps = timestamps[timestamps <= end]
        regressed = "regressed" in name
        values = np.array([self._value(metric, name, float(t), regressed) for t in timestamps])
        return [MetricSet(metric.name, values, {}, timestamps)]

    @staticmethod
    def _value(metric: MetricConfig, scope: str, timestamp: float, regressed: bool) -> float:
        # The model's draw is shared by every scope at a given time (they serve the same users);
        # each scope adds 1% noise of its own. So a healthy canary tracks its baseline closely
        # and the demo's healthy canary passes reliably, while a regression always shows.
        shared = np.random.default_rng(_seed(metric.name, timestamp))
        own = float(np.random.default_rng(_seed(f"{metric.name}/{scope}", timestamp)).lognormal(0.0, 0.01))
        load = traffic_cycle([timestamp], period=3600.0)
        step = MODEL.simulate(shared, load, REGRESSION if regressed else HEALTHY)
        kind = _kind(metric)
        if kind is MetricKind.ERRORS:
            return float(step.error_ratio[0]) * own
        if kind is MetricKind.LATENCY:
            return float((step.p99 if "99" in metric.name else step.p50)[0]) * own
        if kind is MetricKind.SATURATION:
            return min(1.0, float(step.saturation[0]) * own)
        if kind is MetricKind.BUSINESS:
            return float(round(float(step.orders[0]) * own))
        return float(step.requests[0]) * own


def _seed(key: str, timestamp: float) -> int:
    return (zlib.crc32(key.encode()) * 1_000_003 + int(timestamp * 1000)) % 2**63


_NAME_HINTS = (
    (("error", "fail", "5xx"), MetricKind.ERRORS),
    (("latency", "duration", "p99", "p95", "p50", "response"), MetricKind.LATENCY),
    (("cpu", "memory", "saturation", "utilization"), MetricKind.SATURATION),
    (("order", "revenue", "checkout", "conversion"), MetricKind.BUSINESS),
)


def _kind(metric: MetricConfig) -> MetricKind:
    """Return the metric's kind; for a ``custom`` metric (all of Kayenta's), guess it from the name."""
    if metric.kind is not MetricKind.CUSTOM:
        return metric.kind
    name = metric.name.lower()
    for words, kind in _NAME_HINTS:
        if any(word in name for word in words):
            return kind
    return MetricKind.CUSTOM
