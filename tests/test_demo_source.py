"""The demo source: deterministic, vectorised, fetched without threads (issue 15, capacity).

Its data are a function of (metric, scope, step, time) only: overlapping windows, block
boundaries and a new instance (a restarted service) see the same values; a healthy canary
tracks its baseline within the 1% own noise, a scope named *regressed* is slower. Being
computed, it is fetched in the caller's thread; a source doing I/O still gets a pool.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from kayenta_py.config.loader import load_config
from kayenta_py.engine.source import Scope, fetch_metric_sets
from kayenta_py.model.types import MetricSet
from metrics_sources.demo import BLOCK, DemoSource

CONFIG = load_config(
    {
        "name": "demo",
        "thresholds": {"pass": 95, "marginal": 75},
        "metrics": [
            {"name": "p50-latency", "kind": "latency"},
            {"name": "error-ratio", "kind": "errors"},
            {"name": "cpu-utilization", "kind": "saturation"},
            {"name": "orders-per-minute", "kind": "business", "direction": "decrease"},
        ],
    },
    mode="fixed",
)
STEP = 10.0
T0 = 1_790_000_000.0


def values(metric: int, scope: str, start: float, end: float, source: DemoSource | None = None) -> MetricSet:
    (series,) = (source or DemoSource()).fetch(CONFIG.metrics[metric], scope, start, end, STEP)
    return series


def test_overlapping_windows_block_edges_and_restarts_see_the_same_values() -> None:
    whole = values(0, "canary", T0, T0 + 3 * BLOCK * STEP)
    assert whole.values.size == 3 * BLOCK + 1
    assert whole.timestamps is not None
    assert np.array_equal(whole.timestamps, T0 + STEP * np.arange(3 * BLOCK + 1))
    for first, last in [(5, 70), (BLOCK - 1, BLOCK + 1), (130, 150), (0, 0)]:
        part = values(0, "canary", T0 + first * STEP, T0 + last * STEP, DemoSource())
        assert np.array_equal(part.values, whole.values[first : last + 1]), (first, last)
    off_grid = values(0, "canary", T0 + 3.0, T0 + 25.0)  # the grid is absolute: 10 s and 20 s
    assert np.array_equal(off_grid.values, whole.values[1:3])


def test_scopes_share_the_draw_and_add_their_own_noise() -> None:
    end = T0 + 359 * STEP
    baseline = values(0, "baseline", T0, end).values
    canary = values(0, "canary-7", T0, end).values
    other = values(0, "canary-8", T0, end).values
    ratio = canary / baseline
    assert not np.array_equal(canary, other)  # each scope its own noise
    assert 0.005 < float(np.std(np.log(ratio))) < 0.03  # two 1% noises
    assert abs(float(np.mean(np.log(ratio)))) < 0.01
    regressed = values(0, "canary-regressed", T0, end).values
    assert 1.4 < float(np.median(regressed / baseline)) < 1.6  # latency x1.5
    errors = values(1, "baseline", T0, end).values
    assert np.all((errors >= 0) & (errors < 0.05))
    assert np.all(values(2, "canary-regressed", T0, end).values <= 1.0)  # saturation capped
    orders = values(3, "baseline", T0, end).values
    assert np.array_equal(orders, np.round(orders))


class Threaded:
    """A source doing "I/O": it records the thread of every fetch."""

    def __init__(self) -> None:
        self.threads: set[int] = set()

    def fetch(
        self, metric: Any, scope: Any, start: Any = None, end: Any = None, step: Any = None
    ) -> list[MetricSet]:
        self.threads.add(threading.get_ident())
        return DemoSource().fetch(metric, scope, start, end, step)


class InProcess(Threaded):
    in_process = True


def test_in_process_sources_are_fetched_in_the_callers_thread() -> None:
    for source, in_caller in ((InProcess(), True), (Threaded(), False)):
        fetched = fetch_metric_sets(
            CONFIG, source, Scope("baseline"), Scope("canary"), start=T0, end=T0 + 600, step=STEP
        )
        assert set(fetched.canary) == {m.name for m in CONFIG.metrics}
        assert (source.threads == {threading.get_ident()}) is in_caller, source.threads
        direct = DemoSource().fetch(CONFIG.metrics[0], Scope("canary"), T0, T0 + 600, STEP)[0]
        assert np.array_equal(fetched.canary["p50-latency"][0].values, direct.values)
