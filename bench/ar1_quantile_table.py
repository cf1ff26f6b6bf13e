"""Print the table behind ``kayenta_py.engine.stats.ar1_upper_bound``: quantiles of the lag-1 autocorrelation.

For each series length n and AR(1) coefficient phi, 20,000 Gaussian AR(1) series
(stationary start, seed 12345) give the distribution of the mean-centred lag-1
autocorrelation; the row printed per n is its ``--quantile`` (0.3 for the table in
``_stats.py``; 0.5 gives the medians of Andrews' median-unbiased estimator). Run::

    .venv/bin/python bench/ar1_quantile_table.py            # about 15 s
    .venv/bin/python bench/ar1_quantile_table.py --quantile 0.5
"""

from __future__ import annotations

import argparse

import numpy as np

LENGTHS = (10, 15, 20, 30, 45, 60, 90, 120, 240, 480)
COEFFICIENTS = (0.0, 0.2, 0.4, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995)


def main() -> None:
    """Simulate and print one row per series length."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quantile", type=float, default=0.3)
    parser.add_argument("--reps", type=int, default=20000)
    args = parser.parse_args()
    rng = np.random.default_rng(12345)
    for n in LENGTHS:
        row = []
        for phi in COEFFICIENTS:
            x = np.empty((args.reps, n))
            x[:, 0] = rng.normal(size=args.reps)
            noise = rng.normal(0.0, np.sqrt(1.0 - phi**2), (args.reps, n))
            for i in range(1, n):
                x[:, i] = phi * x[:, i - 1] + noise[:, i]
            centred = x - x.mean(axis=1, keepdims=True)
            r = (centred[:, 1:] * centred[:, :-1]).sum(axis=1) / (centred * centred).sum(axis=1)
            row.append(round(float(np.quantile(r, args.quantile)), 3))
        print(n, row, flush=True)


if __name__ == "__main__":
    main()
