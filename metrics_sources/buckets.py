"""The step grid of bucketing sources (InfluxDB, Graphite, CloudWatch): whole steps, chunks, stitching.

A bucket ``t`` holds the aggregate of ``[t, t+step)``; buckets sit on multiples of the step (as the
servers align them), and a window [start, end] keeps the whole buckets inside it: ``first`` is the
first multiple of the step at or after ``start``, ``last`` the last whose bucket ends by ``end``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from kayenta_py.plugin import KayentaError, MetricSet

Tags = tuple[tuple[str, str], ...]
Series = tuple[Tags, list[tuple[float, float]]]
"""One series of an answer: its tags and its ``(timestamp, value)`` rows."""


def bucket_grid(metric: str, start: float, end: float, step: float) -> tuple[int, int, int]:
    """Return ``(first, last, step)`` in whole seconds; ``last < first`` when no bucket fits."""
    if not all(map(math.isfinite, (start, end, step))) or step <= 0 or end < start:
        raise KayentaError(f"metric {metric!r}: need finite start, end and step, step > 0 and end >= start")
    if not float(step).is_integer():
        raise KayentaError(f"metric {metric!r}: this source needs a step of whole seconds, got {step!r}")
    step_s = int(step)
    first = math.ceil(start / step_s) * step_s
    last = math.floor(end / step_s) * step_s - step_s
    return first, max(last, first - step_s), step_s


def whole_step(metric: str, step: float) -> int:
    """Return ``step`` in whole seconds, refused as :func:`bucket_grid` refuses it."""
    return bucket_grid(metric, 0, float(step), step)[2]


def chunks(first: int, last: int, step: int, max_points: int) -> Iterator[tuple[int, int]]:
    """Yield ``(chunk_first, chunk_last)`` bucket starts of at most ``max_points`` buckets each."""
    points = (last - first) // step + 1
    for chunk in range(0, max(points, 0), max_points):
        yield first + chunk * step, first + (min(points, chunk + max_points) - 1) * step


class Grid:
    """Series stitched from chunks onto the grid ``first, first+step, ... <= last`` (NaN: no data)."""

    def __init__(self, first: int, last: int, step: int) -> None:
        self.first, self.step = first, step
        self.points = max((last - first) // step + 1, 0)
        self._series: dict[Tags, np.ndarray[Any, np.dtype[np.float64]]] = {}
        self._with_rows: set[Tags] = set()

    def add(self, tags: Tags, rows: Iterable[tuple[float, float]]) -> None:
        """Place ``(timestamp, value)`` rows of the series ``tags`` (off-grid rows are dropped)."""
        column = self._series.setdefault(tags, np.full(self.points, math.nan))
        for timestamp, value in rows:
            self._with_rows.add(tags)
            index = round((timestamp - self.first) / self.step)
            if 0 <= index < self.points:
                column[index] = value

    def metric_sets(self, name: str, *, empty: bool = True) -> list[MetricSet]:
        """Return one :class:`MetricSet` per series, on the grid (``empty=False``: only those given rows)."""
        grid = self.first + self.step * np.arange(self.points, dtype=np.float64)
        return [
            MetricSet(name, values, dict(tags), grid)
            for tags, values in self._series.items()
            if empty or tags in self._with_rows
        ]


def number(value: Any) -> float:
    """A JSON value as a float: null (and anything not a number) is NaN."""
    if value is None or isinstance(value, bool | str):
        return math.nan
    return float(value)
