"""Fetching an analysis from a real Prometheus: serial against concurrent, in the same run.

Starts a real Prometheus (backfilled by the test harness in
``tests/prometheus_harness.py`` with one hour of 10 s canary data), builds a
native config of ``--metrics`` distinct PromQL queries (variants of the
harness' ``QUERIES``: other rate windows, other ``histogram_quantile``
levels, ``*_over_time`` of the CPU gauge), then times, alternating and
``--repeats`` times each, ``kayenta_py.fetch_metric_sets`` of both scopes
(``v2-base`` baseline, ``v2-canary`` canary) over the hour at ``--step``:

(a) serial: ``concurrency=1``;
(b) concurrent: ``concurrency=--concurrency``.

Every fetch must give the same data (values and timestamps, NaN equal to
NaN), or the run fails. Last, one full ``kayenta_py.analyze`` is timed at
``--concurrency``. Run from the project root::

    .venv/bin/python bench/prometheus_fetch.py                     # 50 metrics, concurrency 8
    .venv/bin/python bench/prometheus_fetch.py --concurrency 16 --repeats 5
"""

from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import requests

import kayenta_py
from kayenta_py import CanaryConfig, FetchedData, MetricSet, Scope, tag_key
from metrics_sources import PrometheusSource

# tests/ is not a package: put it on the path to import the harness. ``mypy bench`` alone does not
# see tests/ (a whole-project ``mypy`` run does), hence the ignore; the names are typed where used.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from prometheus_harness import (  # type: ignore[import-not-found, unused-ignore]
    QUERIES,
    PrometheusServer,
    canary_dataset,
    dataset_window,
    default_start,
)

TEMPLATES: dict[str, str] = dict(QUERIES)
BASELINE = "v2-base"
CANARY = "v2-canary"
DATASET_MINUTES = 60
DATASET_STEP_S = 10

# Rate / *_over_time windows, one per round through the query families; later rounds go on in 30 s steps.
WINDOWS = ("1m", "2m", "5m", "3m", "4m", "90s", "150s", "6m", "8m", "10m")
# histogram_quantile levels of the two latency families, one per round (cycled after the last).
HIGH_LEVELS = (0.99, 0.999, 0.95, 0.975, 0.98, 0.995, 0.9, 0.97, 0.985, 0.96)
LOW_LEVELS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
CPU_FUNCTIONS = ("avg_over_time", "max_over_time", "min_over_time")
KINDS = {
    "error-ratio": "errors",
    "p99-latency": "latency",
    "p50-latency": "latency",
    "cpu": "saturation",
    "request-rate": "custom",
}


class BenchError(RuntimeError):
    """The benchmark cannot go on: no data, or fetches that disagree."""


@dataclass(frozen=True)
class Timed:
    """One timed fetch."""

    label: str
    seconds: float
    data: FetchedData


# --------------------------------------------------------------------------------------------------
# Queries
# --------------------------------------------------------------------------------------------------


def window(round_: int) -> str:
    """The range window of a round: :data:`WINDOWS`, then 630s, 660s, ..."""
    if round_ < len(WINDOWS):
        return WINDOWS[round_]
    return f"{600 + 30 * (round_ - len(WINDOWS) + 1)}s"


def substitute(template: str, pattern: str, replacement: str | Callable[[re.Match[str]], str]) -> str:
    """``re.subn`` that insists on at least one match (so a changed harness query fails loudly)."""
    text, count = re.subn(pattern, replacement, template)
    if count == 0:
        raise BenchError(f"pattern {pattern!r} not found in query template {template!r}")
    return text


def variant(family: str, round_: int) -> str:
    """Round ``round_`` of the harness query ``family``, with other parameters (round 0 keeps most)."""
    template = TEMPLATES[family]
    span = window(round_)
    if family == "cpu":
        if round_ == 0:
            return template  # the plain gauge, as the harness has it
        function = CPU_FUNCTIONS[round_ % len(CPU_FUNCTIONS)]
        return substitute(
            template,
            r'process_cpu_utilization\{.*?"\}',
            lambda match: f"{function}({match.group(0)}[{span}])",
        )
    query = substitute(template, r"\[1m\]", f"[{span}]")
    if family in ("p99-latency", "p50-latency"):
        levels = HIGH_LEVELS if family == "p99-latency" else LOW_LEVELS
        level = levels[round_ % len(levels)]
        query = substitute(query, r"histogram_quantile\([0-9.]+,", f"histogram_quantile({level},")
    return query


def config_mapping(metrics: int) -> dict[str, Any]:
    """A native config of ``metrics`` distinct queries, cycling through the harness' query families."""
    families = list(TEMPLATES)
    digits = len(str(metrics - 1))
    entries = []
    for i in range(metrics):
        family = families[i % len(families)]
        entries.append(
            {
                "name": f"m{i:0{digits}d}-{family}",
                "kind": KINDS.get(family, "custom"),
                "query": variant(family, i // len(families)),
            }
        )
    queries = [str(entry["query"]) for entry in entries]
    if len(set(queries)) != len(queries):
        raise BenchError("the generated queries are not all distinct")
    return {"name": "bench", "metrics": entries}


# --------------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------------


def sides(data: FetchedData) -> tuple[tuple[str, dict[str, list[MetricSet]]], ...]:
    return (("baseline", data.baseline), ("canary", data.canary))


def count_points(data: FetchedData) -> tuple[int, int, int]:
    """Series, points (sum of the values' sizes) and finite points of a fetch."""
    series = points = finite = 0
    for _, by_name in sides(data):
        for sets in by_name.values():
            for metric_set in sets:
                series += 1
                points += int(metric_set.values.size)
                finite += int(np.isfinite(metric_set.values).sum())
    return series, points, finite


def check_has_data(config: CanaryConfig, data: FetchedData) -> None:
    """Every metric must have at least one series with a finite value on both sides."""
    empty = [
        f"{metric.name} ({side})"
        for metric in config.metrics
        for side, by_name in sides(data)
        if not any(np.isfinite(s.values).any() for s in by_name.get(metric.name, []))
    ]
    if empty:
        queries = {m.name: m.query for m in config.metrics}
        detail = "\n".join(f"  {name}: {queries.get(name.split(' ')[0])}" for name in empty)
        raise BenchError(f"{len(empty)} metric/scope fetches returned no data:\n{detail}")


def _same_array(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(np.array_equal(a, b, equal_nan=True))


def differences(reference: FetchedData, other: FetchedData) -> list[str]:
    """What differs between two fetches (metric names, tag sets, values, timestamps); empty if none."""
    found: list[str] = []
    for (side, ref_side), (_, other_side) in zip(sides(reference), sides(other), strict=True):
        if ref_side.keys() != other_side.keys():
            found.append(f"{side}: metric names differ: {sorted(ref_side.keys() ^ other_side.keys())}")
        for name in sorted(ref_side.keys() & other_side.keys()):
            ref_sets = {tag_key(s.tags): s for s in ref_side[name]}
            other_sets = {tag_key(s.tags): s for s in other_side[name]}
            if len(ref_sets) != len(ref_side[name]) or len(other_sets) != len(other_side[name]):
                found.append(f"{side} {name}: two series with the same tags")
            if ref_sets.keys() != other_sets.keys():
                found.append(f"{side} {name}: tag sets differ: {sorted(ref_sets.keys() ^ other_sets.keys())}")
            for key in ref_sets.keys() & other_sets.keys():
                a, b = ref_sets[key], other_sets[key]
                if not _same_array(a.values, b.values):
                    found.append(f"{side} {name} {dict(key)}: values differ")
                if not _same_array(a.timestamps, b.timestamps):
                    found.append(f"{side} {name} {dict(key)}: timestamps differ")
    return found


# --------------------------------------------------------------------------------------------------
# Run
# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--metrics", type=int, default=50, help="number of metrics (50)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrency of the concurrent fetch (8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed fetches of each kind (3)")
    parser.add_argument("--step", type=float, default=10.0, help="query step in seconds (10)")
    args = parser.parse_args(argv)
    if args.metrics < 1 or args.concurrency < 1 or args.repeats < 1:
        parser.error("need --metrics, --concurrency and --repeats >= 1")
    if not (math.isfinite(args.step) and args.step > 0):
        parser.error("need --step > 0")
    return args


def prometheus_version(url: str) -> str:
    try:
        answer = requests.get(f"{url}/api/v1/status/buildinfo", timeout=5.0)
        return str(answer.json()["data"]["version"])
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return "(version unknown)"


def usable_cores() -> int | None:
    if not hasattr(os, "sched_getaffinity"):  # not on macOS or Windows
        return None
    return len(os.sched_getaffinity(0))


def run(args: argparse.Namespace) -> None:
    start: float = default_start()
    hour: tuple[float, float] = dataset_window(start, DATASET_MINUTES, DATASET_STEP_S)
    first, last = hour
    grid_points = int((round(last) - round(first)) // args.step) + 1
    print(
        f"prometheus fetch: {args.metrics} metrics x 2 scopes ({BASELINE}, {CANARY}) x "
        f"{DATASET_MINUTES} min at {args.step:g} s step = {grid_points} points per series "
        f"(Python {sys.version.split()[0]}, numpy {np.__version__})"
    )
    print(
        f"cores: os.cpu_count() = {os.cpu_count()}, usable by this process: {usable_cores() or '?'} "
        "(Prometheus shares them)"
    )
    config = kayenta_py.load_config(config_mapping(args.metrics))
    began = time.perf_counter()
    dataset: str = canary_dataset(start, minutes=DATASET_MINUTES, step_s=DATASET_STEP_S)
    built = time.perf_counter() - began

    with PrometheusServer(dataset) as prom:
        print(
            f"Prometheus {prometheus_version(prom.url)} at {prom.url}: data built in {built:.2f} s, "
            f"backfilled in {prom.backfill_seconds or 0:.2f} s, ready in {prom.startup_seconds or 0:.2f} s "
            "(not timed below)"
        )
        source = PrometheusSource(prom.url, timeout=30.0, retries=0, pool_size=max(32, args.concurrency))
        try:
            measure(args, config, source, first, last)
        finally:
            source.close()


def measure(
    args: argparse.Namespace, config: CanaryConfig, source: PrometheusSource, first: float, last: float
) -> None:
    baseline, canary = Scope(BASELINE), Scope(CANARY)

    def fetch(concurrency: int) -> tuple[float, FetchedData]:
        began = time.perf_counter()
        data = kayenta_py.fetch_metric_sets(
            config, source, baseline, canary, start=first, end=last, step=args.step, concurrency=concurrency
        )
        return time.perf_counter() - began, data

    warm_seconds, reference = fetch(args.concurrency)
    check_has_data(config, reference)
    series, points, finite = count_points(reference)
    chunks = math.ceil((int((round(last) - round(first)) // args.step) + 1) / source.max_points)
    requests_per_fetch = 2 * len(config.metrics) * chunks
    print(
        f"per fetch: {requests_per_fetch} range requests, {series} series, {points} points fetched "
        f"({finite} finite)"
    )
    print(f"warm-up fetch (concurrency {args.concurrency}, not counted): {warm_seconds:.3f} s")

    kinds = (("serial", 1), ("concurrent", args.concurrency))
    runs: list[Timed] = []
    for repeat in range(args.repeats):
        order = kinds if repeat % 2 == 0 else kinds[::-1]  # alternate who goes first
        for label, concurrency in order:
            seconds, data = fetch(concurrency)
            runs.append(Timed(label, seconds, data))
            found = differences(reference, data)
            if found:
                shown = "\n".join(f"  {line}" for line in found[:20])
                more = f"\n  ... and {len(found) - 20} more" if len(found) > 20 else ""
                raise BenchError(
                    f"{label} fetch #{repeat + 1} (concurrency {concurrency}) differs from the warm-up "
                    f"fetch in {len(found)} place(s):\n{shown}{more}"
                )

    times = {label: [r.seconds for r in runs if r.label == label] for label, _ in kinds}
    for label, concurrency in kinds:
        listed = " ".join(f"{s:.3f}" for s in times[label])
        print(f"{label} runs (concurrency {concurrency}), in order: {listed} s")
    serial_median, concurrent_median = (
        statistics.median(times["serial"]),
        statistics.median(times["concurrent"]),
    )
    serial_min, concurrent_min = min(times["serial"]), min(times["concurrent"])
    print(f"{'':<34}{'median':>10}{'min':>10}{'req/s':>10}{'points/s':>12}")
    for name, median, least in (
        ("(a) serial, concurrency 1", serial_median, serial_min),
        (f"(b) concurrent, concurrency {args.concurrency}", concurrent_median, concurrent_min),
    ):
        print(
            f"{name:<34}{median:>9.3f}s{least:>9.3f}s"
            f"{requests_per_fetch / median:>10.1f}{points / median:>12.0f}"
        )
    print(
        f"{'ratio (a)/(b)':<34}{serial_median / concurrent_median:>9.2f}x{serial_min / concurrent_min:>9.2f}x"
        "   (req/s and points/s from the medians)"
    )
    print(
        f"data: all {len(runs) + 1} fetches identical to each other "
        "(metric names, tags, values and timestamps; NaN == NaN)"
    )

    began = time.perf_counter()
    result = kayenta_py.analyze(
        config, source, baseline, canary, start=first, end=last, step=args.step, concurrency=args.concurrency
    )
    analyze_seconds = time.perf_counter() - began
    classes: dict[str, int] = {}
    for metric in result.metrics:
        classes[metric.classification.value] = classes.get(metric.classification.value, 0) + 1
    summary = ", ".join(f"{name} {count}" for name, count in sorted(classes.items()))
    score = "n/a" if result.score is None else f"{result.score:.2f}"
    print(f"analyze (fetch + judge, concurrency {args.concurrency}): {analyze_seconds:.3f} s")
    print(f"verdict: {result.verdict.value}, score {score} (metric results: {summary})")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except BenchError as exc:
        print(f"FAIL: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
