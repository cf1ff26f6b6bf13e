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

The data are drawn a block of :data:`BLOCK` grid points at a time (one generator per metric, step
and block; blocks are cached, since every scope shares them) and each scope's own noise is a hash
of (metric, scope, time), so a fetch costs a few array operations, not a generator per point:
thousands of live analyses can read it at once (``bench/live_capacity.py``).
"""

from __future__ import annotations

import math
import zlib
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy.special import ndtri

from kayenta_py.plugin import (
    Effects,
    FloatArray,
    KayentaError,
    MetricConfig,
    MetricKind,
    MetricSet,
    Scope,
    TrafficModel,
    traffic_cycle,
)

MODEL = TrafficModel()  # the bundled example's checkout service
HEALTHY = Effects()
REGRESSION = Effects(errors=4.0, p50=1.5, p99=1.5, saturation=1.25)  # a scope named *regressed*


BLOCK = 64
"""Grid points drawn together: the shared draw of a metric, step and block is one generator's."""

OWN_NOISE_SD = 0.01
"""Log-sd of each scope's own noise on the shared draw."""


class DemoSource:
    """Generated baseline and canary metrics for demos, tests and notebooks."""

    name = "demo"
    description = "generated data"  # what the service's start line says it reads
    in_process = True  # computed here, no I/O: fetched in the caller's thread, not a pool's

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
        first = math.ceil(start / step)  # an absolute grid: restarts see the same points
        last = math.floor(end / step)
        grid = np.arange(first, last + 1, dtype=np.int64)
        grid = grid[grid * step <= end]
        timestamps = grid.astype(np.float64) * step
        values = _values(metric, name, grid, float(step))
        return [MetricSet(metric.name, values, {}, timestamps)]


def _values(metric: MetricConfig, scope: str, grid: npt.NDArray[np.int64], step: float) -> FloatArray:
    """The metric's values at the grid points ``grid * step`` for one scope.

    The model's draw is shared by every scope at a given time (they serve the same users); each
    scope adds 1% noise of its own. So a healthy canary tracks its baseline closely and the demo's
    healthy canary passes reliably, while a regression always shows.
    """
    if grid.size == 0:
        return np.empty(0, dtype=np.float64)
    regressed = "regressed" in scope
    kind = _kind(metric)
    first, last = int(grid[0]) // BLOCK, int(grid[-1]) // BLOCK  # the grid is contiguous
    p99 = "99" in metric.name
    drawn = np.concatenate(
        [_shared_block(metric.name, kind, p99, step, block, regressed) for block in range(first, last + 1)]
    )
    shared = drawn[grid - first * BLOCK]
    own: FloatArray = np.exp(OWN_NOISE_SD * ndtri(_uniforms(f"{metric.name}/{scope}", grid, step)))
    values: FloatArray = shared * own
    if kind is MetricKind.SATURATION:
        values = np.minimum(1.0, values)
    elif kind is MetricKind.BUSINESS:
        values = np.round(values)
    return values


@lru_cache(maxsize=8192)
def _shared_block(
    name: str, kind: MetricKind, p99: bool, step: float, block: int, regressed: bool
) -> FloatArray:
    """One block's shared draw of a metric (read-only; cached: every scope reads the same)."""
    timestamps = (np.arange(BLOCK, dtype=np.float64) + block * BLOCK) * step
    rng = np.random.default_rng([_key(f"{name}@{step!r}"), block % 2**63])
    effects = REGRESSION if regressed else HEALTHY
    traffic = MODEL.simulate(rng, traffic_cycle(timestamps, period=3600.0), effects)
    if kind is MetricKind.ERRORS:
        values = traffic.error_ratio
    elif kind is MetricKind.LATENCY:
        values = traffic.p99 if p99 else traffic.p50
    elif kind is MetricKind.SATURATION:
        values = traffic.saturation
    elif kind is MetricKind.BUSINESS:
        values = traffic.orders
    else:
        values = traffic.requests
    values = np.array(values, dtype=np.float64)
    values.setflags(write=False)
    return values


def _key(text: str) -> int:
    return zlib.crc32(text.encode())


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _uniforms(key: str, grid: npt.NDArray[np.int64], step: float) -> FloatArray:
    """Uniforms in (0, 1), one per grid point: SplitMix64 of (key, step, grid index).

    SplitMix64's finaliser (Steele, Lea and Flood, "Fast splittable pseudorandom number
    generators", OOPSLA 2014), vectorised: the same point always gets the same number.
    """
    salt = np.uint64((_key(f"{key}@{step!r}") << 32) & 0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        z = (grid.astype(np.uint64) ^ salt) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53


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
