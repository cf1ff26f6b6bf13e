"""Generate the example CSVs: one hour of 1-minute samples for a baseline and two canaries.

The data come from the synthetic traffic model (:mod:`kayenta_py.synthetic`): requests on a
traffic cycle, gamma-Poisson error counts (the CSVs hold their ratio), lognormal latency
percentiles, CPU and orders. The regressed canary has a 40% slower p99, a tripled error rate and
a 25% hotter CPU; the healthy canary is drawn from the baseline's model with its own seed. Run
``python -m kayenta_py.examples.generate [DIR]``.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from kayenta_py.examples import EXAMPLES_DIR
from kayenta_py.synthetic import NO_EFFECT, Effects, Traffic, TrafficModel, traffic_cycle

START = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
MINUTES = 60
COLUMNS = ("error-ratio", "p50-latency", "p99-latency", "cpu-utilization", "orders-per-minute")
EFFECT_OF_COLUMN = {
    "error-ratio": "errors",
    "p50-latency": "p50",
    "p99-latency": "p99",
    "cpu-utilization": "saturation",
    "orders-per-minute": "orders",
}
MODEL = TrafficModel()  # a checkout service: 6000 requests and 120 orders a minute


def effects_of(multipliers: Mapping[str, float]) -> Effects:
    """Return the :class:`Effects` of multipliers named by column (``{"p99-latency": 1.4}``)."""
    return Effects(**{EFFECT_OF_COLUMN[column]: value for column, value in multipliers.items()})


def csv_rows(start: datetime, traffic: Traffic) -> list[dict[str, str]]:
    """Return one wide CSV row per step of ``traffic`` (one a minute from ``start``)."""
    columns = (traffic.error_ratio, traffic.p50, traffic.p99, traffic.saturation, traffic.orders)
    formats = ("{:.6f}", "{:.5f}", "{:.5f}", "{:.4f}", "{:.0f}")
    return [
        {
            "timestamp": (start + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z"),
            **{
                name: fmt.format(values[minute])
                for name, fmt, values in zip(COLUMNS, formats, columns, strict=True)
            },
        }
        for minute in range(len(traffic.requests))
    ]


def write_csv(path: Path, rows: Sequence[Mapping[str, str]]) -> None:
    """Write wide rows (``timestamp`` and :data:`COLUMNS`) to ``path``."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=("timestamp", *COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def generate(seed: int, effects: Effects = NO_EFFECT) -> list[dict[str, str]]:
    """Return one row per minute of the model's traffic (half a traffic cycle over the hour)."""
    load = traffic_cycle(60.0 * np.arange(MINUTES), period=2 * 3600.0)  # a gentle ramp up and down
    return csv_rows(START, MODEL.simulate(np.random.default_rng(seed), load, effects))


FILES = {
    "baseline.csv": (11, NO_EFFECT),
    "canary-healthy.csv": (23, NO_EFFECT),
    "canary-regressed.csv": (37, Effects(errors=3.0, p99=1.4, saturation=1.25)),
}


def write_examples(directory: Path) -> list[Path]:
    """Write the example CSVs into ``directory`` and return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (seed, effects) in FILES.items():
        path = directory / name
        write_csv(path, generate(seed, effects))
        written.append(path)
    return written


def main() -> None:
    """Write the examples into the directory given, or the bundled one."""
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else EXAMPLES_DIR
    for path in write_examples(target):
        print(path)


if __name__ == "__main__":
    main()
