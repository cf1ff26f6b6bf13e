"""Throughput of the ``mann-whitney`` judgement through the public API, against plain sorting.

Builds ``--metrics`` latency metrics with ``--points`` values per side (seeded
lognormal, rounded to 3 significant figures so there are ties; about 10% of
the metrics get a shifted-up canary), then times, on the same data in the
same run:

(a) the reference: ``np.sort`` of each of the 2 x metrics arrays separately;
(b) ``kayenta_py.load_config`` of a native config naming every metric, then
    ``kayenta_py.judge(config, baseline, canary)``.

Nothing is cached between (a) and (b), and each is run once. Run from the
project root::

    .venv/bin/python bench/judge_throughput.py                  # 1000 x 10000
    .venv/bin/python bench/judge_throughput.py --metrics 50     # quick run
    .venv/bin/python bench/judge_throughput.py --profile        # + cProfile of (b)
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import pstats
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import kayenta_py
from kayenta_py import Classification, FloatArray

SHIFTED_FRACTION = 0.10


@dataclass(frozen=True)
class BenchData:
    """The metrics' values and which metrics had a shifted canary planted."""

    baseline: dict[str, FloatArray]
    canary: dict[str, FloatArray]
    planted: frozenset[str]


def round_significant(values: FloatArray, digits: int = 3) -> FloatArray:
    """Round positive values to ``digits`` significant figures (creates ties)."""
    scale = 10.0 ** (digits - 1 - np.floor(np.log10(values)))
    rounded: FloatArray = np.round(values * scale) / scale
    return rounded


def build_data(metrics: int, points: int, seed: int) -> BenchData:
    """Seeded lognormal latencies; about 10% of the metrics get a canary shifted up."""
    rng = np.random.default_rng(seed)
    planted_count = max(1, round(SHIFTED_FRACTION * metrics)) if metrics > 0 else 0
    planted_idx = {int(i) for i in rng.choice(metrics, size=planted_count, replace=False)}
    baseline: dict[str, FloatArray] = {}
    canary: dict[str, FloatArray] = {}
    for i in range(metrics):
        name = f"m{i}"
        mu = float(rng.uniform(2.0, 6.0))  # medians from ~7 to ~400 (ms)
        sigma = float(rng.uniform(0.3, 1.0))
        shift = float(rng.uniform(0.15, 0.4)) if i in planted_idx else 0.0
        baseline[name] = round_significant(rng.lognormal(mu, sigma, size=points))
        canary[name] = round_significant(rng.lognormal(mu + shift, sigma, size=points))
    return BenchData(baseline, canary, frozenset(f"m{i}" for i in planted_idx))


def config_mapping(metrics: int) -> dict[str, Any]:
    """A native config with one latency metric per data series (default judge: mann-whitney)."""
    return {"name": "bench", "metrics": [{"name": f"m{i}", "kind": "latency"} for i in range(metrics)]}


def time_sort(data: BenchData) -> float:
    """Seconds to ``np.sort`` every array separately (the reference cost)."""
    arrays = [*data.baseline.values(), *data.canary.values()]
    start = time.perf_counter()
    for array in arrays:
        np.sort(array)
    return time.perf_counter() - start


def time_judge(
    data: BenchData, metrics: int, profiler: cProfile.Profile | None = None
) -> tuple[float, float, kayenta_py.CanaryResult]:
    """Seconds for load_config + judge through the public API, of which load_config, and the result.

    ``load_config`` includes the plugin registry loading its entry points on
    first use (a one-off cost of each process).
    """
    raw = config_mapping(metrics)
    if profiler is not None:
        profiler.enable()
    start = time.perf_counter()
    config = kayenta_py.load_config(raw)
    loaded = time.perf_counter()
    result = kayenta_py.judge(config, data.baseline, data.canary)
    end = time.perf_counter()
    if profiler is not None:
        profiler.disable()
    return end - start, loaded - start, result


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--metrics", type=int, default=1000, help="number of metrics (1000)")
    parser.add_argument("--points", type=int, default=10000, help="values per side per metric (10000)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (7)")
    parser.add_argument(
        "--profile", action="store_true", help="run (b) under cProfile and print the top functions"
    )
    parser.add_argument("--profile-top", type=int, default=25, help="functions to list (25)")
    args = parser.parse_args(argv)
    if args.metrics < 1 or args.points < 3:
        parser.error("need --metrics >= 1 and --points >= 3")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(
        f"judge throughput: {args.metrics} metrics x 2 sides x {args.points} points, "
        f"seed {args.seed} (numpy {np.__version__}, Python {sys.version.split()[0]})"
    )
    start = time.perf_counter()
    data = build_data(args.metrics, args.points, args.seed)
    print(f"data built in {time.perf_counter() - start:.2f} s (not timed below)")

    sort_seconds = time_sort(data)
    profiler = cProfile.Profile() if args.profile else None
    judge_seconds, config_seconds, result = time_judge(data, args.metrics, profiler)

    high = {m.name for m in result.metrics if m.classification is Classification.HIGH}
    others = sorted({m.classification.value for m in result.metrics} - {"Pass", "High"})
    planted = data.planted
    ratio = judge_seconds / sort_seconds if sort_seconds > 0 else math.inf
    rows = [
        (f"(a) np.sort of {2 * args.metrics} arrays", f"{sort_seconds:.3f} s"),
        ("(b) load_config + judge (mann-whitney)", f"{judge_seconds:.3f} s"),
        ("    of which load_config (+ plugin load)", f"{config_seconds:.3f} s"),
        ("ratio (b)/(a)", f"{ratio:.1f}"),
        ("metrics per second (b)", f"{args.metrics / judge_seconds:.1f}"),
    ]
    for label, value in rows:
        print(f"{label + ':':<42}{value:>12}")
    score = "n/a" if result.score is None else f"{result.score:.2f}"
    print(f"verdict: {result.verdict.value}, score {score}")
    print(
        f"High metrics: {len(high)} found, {len(planted)} planted "
        f"({len(high & planted)} planted found, {len(high - planted)} unplanted High, "
        f"{len(planted - high)} planted missed)"
    )
    if others:
        print(f"other classifications seen: {', '.join(others)}")
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(args.profile_top)
        stats.sort_stats("tottime").print_stats(args.profile_top)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
