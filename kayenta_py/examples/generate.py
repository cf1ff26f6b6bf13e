"""Generate the example CSVs: one hour of 1-minute samples for a baseline and two canaries.

The regressed canary has a 40% slower p99, a tripled error ratio and a hotter
CPU; the healthy canary is drawn from the baseline's distributions with its
own seed. Run ``python -m kayenta_py.examples.generate [DIR]``.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from kayenta_py.examples import EXAMPLES_DIR

START = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
MINUTES = 60
COLUMNS = ("error-ratio", "p50-latency", "p99-latency", "cpu-utilization", "orders-per-minute")


@dataclass(frozen=True)
class Regression:
    """Multipliers applied to a canary's metrics."""

    errors: float = 1.0
    p99: float = 1.0
    cpu: float = 1.0


def generate(seed: int, regression: Regression) -> list[dict[str, str]]:
    """Return one row per minute with realistic, autocorrelated metric values."""
    rng = np.random.default_rng(seed)
    traffic = 1.0 + 0.15 * np.sin(np.linspace(0.0, np.pi, MINUTES))  # a gentle daily ramp
    rows = []
    for minute in range(MINUTES):
        load = traffic[minute]
        error_ratio = 0.002 * regression.errors * rng.gamma(8.0, 1 / 8.0)
        p50 = 0.045 * load * rng.lognormal(0.0, 0.05)
        p99 = 0.180 * load * regression.p99 * rng.lognormal(0.0, 0.08)
        cpu = min(1.0, 0.42 * load * regression.cpu * rng.lognormal(0.0, 0.04))
        orders = rng.poisson(120.0 * load)
        rows.append(
            {
                "timestamp": (START + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z"),
                "error-ratio": f"{error_ratio:.6f}",
                "p50-latency": f"{p50:.5f}",
                "p99-latency": f"{p99:.5f}",
                "cpu-utilization": f"{cpu:.4f}",
                "orders-per-minute": str(orders),
            }
        )
    return rows


FILES = {
    "baseline.csv": (11, Regression()),
    "canary-healthy.csv": (23, Regression()),
    "canary-regressed.csv": (37, Regression(errors=3.0, p99=1.4, cpu=1.25)),
}


def write_examples(directory: Path) -> list[Path]:
    """Write the example CSVs into ``directory`` and return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (seed, regression) in FILES.items():
        path = directory / name
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=("timestamp", *COLUMNS), lineterminator="\n")
            writer.writeheader()
            writer.writerows(generate(seed, regression))
        written.append(path)
    return written


def main() -> None:
    """Write the examples into the directory given, or the bundled one."""
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else EXAMPLES_DIR
    for path in write_examples(target):
        print(path)


if __name__ == "__main__":
    main()
