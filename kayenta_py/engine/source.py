"""What a metrics source is: scopes, the source protocol, and concurrent fetching of an analysis."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from kayenta_py.model.errors import KayentaError
from kayenta_py.model.types import MetricSet

if TYPE_CHECKING:
    from kayenta_py.config.model import CanaryConfig, MetricConfig


@dataclass(frozen=True)
class Scope:
    """Where a side's metrics come from: Kayenta's scope, location and extended scope parameters."""

    scope: str
    location: str = ""
    params: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType({str(k): str(v) for k, v in self.params.items()}))

    def variables(self) -> dict[str, str]:
        """Return the template variables this scope defines (``scope``, ``location`` and its params)."""
        return {**self.params, "scope": self.scope, "location": self.location}


@runtime_checkable
class MetricsSource(Protocol):
    """A metrics source: returns one metric's series for one scope and time window.

    A source whose fetch does no I/O (it computes its data, as the demo source does) may say so
    with a class attribute ``in_process = True``: :func:`fetch_metric_sets` then calls it in the
    caller's thread, one metric after another, instead of through a pool of threads (which only
    costs a CPU-bound fetch: thread start-up and the GIL).
    """

    def fetch(
        self,
        metric: MetricConfig,
        scope: Scope,
        start: float | None = None,
        end: float | None = None,
        step: float | None = None,
    ) -> list[MetricSet]:
        """Return the series of ``metric`` for ``scope`` in [start, end] (epoch seconds)."""
        ...


class SourceError(KayentaError):
    """A metrics source failed (unreachable, timing out, refusing the query); names where and what.

    ``transient`` says whether trying again may help: True for connection errors, timeouts,
    429 and 5xx (the default, for sources that do not say); False for a refusal that will
    not change, such as an HTTP 4xx other than 429 (``status`` holds the HTTP status if any).
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        metric: str | None = None,
        status: int | None = None,
        transient: bool = True,
    ) -> None:
        self.url = url
        self.metric = metric
        self.status = status
        self.transient = transient
        super().__init__(message)


Progress = Callable[[int, int, str, str], None]
"""Called after each fetch as progress(done, total, metric name, side)."""


@dataclass(frozen=True)
class FetchedData:
    """Baseline and canary metric sets of an analysis, by metric name."""

    baseline: dict[str, list[MetricSet]]
    canary: dict[str, list[MetricSet]]


def fetch_metric_sets(
    config: CanaryConfig,
    source: MetricsSource,
    baseline: Scope,
    canary: Scope,
    *,
    start: float | None,
    end: float | None,
    step: float | None,
    concurrency: int = 8,
    progress: Progress | None = None,
    deadline: float | None = None,
    baseline_offset: float = 0.0,
) -> FetchedData:
    """Fetch every metric of ``config`` for both scopes, ``concurrency`` requests at a time.

    The canary is fetched over [start, end], the baseline over its own window, the canary's
    shifted by ``baseline_offset`` seconds (negative: earlier, as a blue-green switch or
    "against last week"); each side's series keep their own timestamps.

    The first failure cancels what has not started and is raised (as
    :class:`SourceError` when the source raised one); nothing is judged on
    partial data. ``deadline`` (seconds) bounds the whole fetch: past it a transient
    :class:`SourceError` is raised at once and fetches still running are abandoned.
    """
    if concurrency < 1:
        raise KayentaError(f"concurrency must be at least 1, got {concurrency}")
    if deadline is not None and not (math.isfinite(deadline) and deadline > 0):
        raise KayentaError(f"deadline must be a positive number of seconds, got {deadline!r}")
    tasks = [
        (metric, side, scope)
        for metric in config.metrics
        for side, scope in (("baseline", baseline), ("canary", canary))
    ]
    out: dict[str, dict[str, list[MetricSet]]] = {"baseline": {}, "canary": {}}
    lock = threading.Lock()
    done = 0

    if not math.isfinite(baseline_offset):
        raise KayentaError(f"baseline_offset must be a finite number of seconds, got {baseline_offset!r}")

    def shifted(moment: float | None, side: str) -> float | None:
        return moment if moment is None or side == "canary" else moment + baseline_offset

    def run(metric: MetricConfig, side: str, scope: Scope) -> None:
        nonlocal done
        sets = source.fetch(metric, scope, shifted(start, side), shifted(end, side), step)
        with lock:
            out[side][metric.name] = sets
            done += 1
            count = done
        if progress is not None:
            progress(count, len(tasks), metric.name, side)

    if getattr(source, "in_process", False) is True:  # no I/O to wait for: no threads
        for task in tasks:
            run(*task)
        return FetchedData(out["baseline"], out["canary"])
    pool = ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(tasks))))
    abandon = False
    try:
        futures: list[Future[None]] = [pool.submit(run, *task) for task in tasks]
        finished, unfinished = wait(futures, timeout=deadline, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f in finished and f.exception() is not None), None)
        if failed is not None:
            for future in futures:
                future.cancel()
            error = failed.exception()
            assert error is not None
            raise error
        if unfinished:
            abandon = True
            raise SourceError(
                f"the metrics source gave no complete answer within {deadline:g} s "
                f"({len(unfinished)} of {len(tasks)} fetches unfinished)"
            )
    finally:
        pool.shutdown(wait=not abandon, cancel_futures=True)
    return FetchedData(out["baseline"], out["canary"])
