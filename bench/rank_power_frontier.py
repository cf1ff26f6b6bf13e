"""The best power any test of 60 paired points can have on a persistent series: the frontier behind issue 12.

A canary judged on one-minute latency points over an hour has n = 60 paired differences
``d_t = log canary - log baseline``. Their location (the share of positive differences, or
mean / sd) and their lag-1 autocorrelation ``r`` are what a judge can read; a persistent
healthy series (AR(1) phi 0.95 or 0.98) often stays on one side for the whole hour, which
looks like a regression unless ``r`` gives the persistence away. This script simulates, for
an alternative (AR(1) phi 0.8, +25% latency: the canary's log level 0.223 higher) and a healthy
persistent series, every test of the form "fail iff location >= L and r <= R" and prints the
most powerful one whose false-fail rate on the healthy series stays within a cap. It is an
upper bound for judges that read these two numbers and know the one healthy phi they must
hold against; a real judge must hold against every phi at once, and at alpha / k in a family
of k metrics (cap 0.01 for five metrics under Bonferroni). Run::

    .venv/bin/python bench/rank_power_frontier.py            # about a minute
    .venv/bin/python bench/rank_power_frontier.py --reps 50000
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
CAPS = (0.05, 0.075, 0.01)


def ar1(rng: np.random.Generator, reps: int, n: int, phi: float, sd: float) -> FloatArray:
    """``reps`` stationary Gaussian AR(1) series of ``n`` points with marginal sd ``sd``."""
    x = np.empty((reps, n))
    x[:, 0] = rng.normal(0.0, sd, reps)
    shocks = rng.normal(0.0, sd * math.sqrt(1.0 - phi * phi), (reps, n))
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + shocks[:, t]
    return x


def summaries(d: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Share of positive differences, mean / sd, and the mean-centred lag-1 autocorrelation."""
    centred = d - d.mean(axis=1, keepdims=True)
    r = (centred[:, 1:] * centred[:, :-1]).sum(axis=1) / (centred * centred).sum(axis=1)
    return (d > 0).mean(axis=1), d.mean(axis=1) / d.std(axis=1), r


def best_rectangle(
    healthy: tuple[FloatArray, FloatArray], regressed: tuple[FloatArray, FloatArray], cap: float
) -> tuple[float, float, float, float]:
    """The most powerful "location >= L and r <= R" with a healthy false-fail rate <= cap."""
    (loc0, r0), (loc1, r1) = healthy, regressed
    best = (0.0, math.nan, math.nan, math.nan)
    for level in np.quantile(loc1, np.linspace(0.0, 0.99, 100)):
        for bound in np.linspace(0.3, 1.0, 71):
            false_fail = float(((loc0 >= level) & (r0 <= bound)).mean())
            if false_fail <= cap:
                power = float(((loc1 >= level) & (r1 <= bound)).mean())
                if power > best[0]:
                    best = (power, float(level), float(bound), false_fail)
    return best


def best_region(
    healthy: tuple[FloatArray, FloatArray],
    regressed: tuple[FloatArray, FloatArray],
    cap: float,
    bins: int = 24,
) -> float:
    """Neyman-Pearson on a grid of (location, r) cells: cells by likelihood ratio until the cap.

    The most powerful test that reads the two numbers, up to the grid; in-sample, so optimistic.
    """
    (loc0, r0), (loc1, r1) = healthy, regressed
    loc_edges = np.quantile(np.concatenate([loc0, loc1]), np.linspace(0.0, 1.0, bins + 1))
    r_edges = np.quantile(np.concatenate([r0, r1]), np.linspace(0.0, 1.0, bins + 1))
    p0 = np.histogram2d(loc0, r0, [loc_edges, r_edges])[0].ravel() / loc0.size
    p1 = np.histogram2d(loc1, r1, [loc_edges, r_edges])[0].ravel() / loc1.size
    order = np.argsort(-(p1 / np.maximum(p0, 1e-12)))
    spent = np.cumsum(p0[order])
    return float(p1[order][spent <= cap].sum())


def main() -> None:
    """Simulate and print the frontier per healthy phi, spread and location statistic."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20000)
    parser.add_argument("--points", type=int, default=60)
    parser.add_argument("--phi", type=float, default=0.8, help="AR(1) coefficient of the regressed series")
    parser.add_argument("--factor", type=float, default=1.25, help="the canary's latency factor")
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    n = args.points
    print(f"{args.reps} runs of {n} points; regressed: AR(1) {args.phi:g}, x{args.factor:g}")
    print("power of the best rectangle / of the best region (Neyman-Pearson on a grid), per false-fail cap")
    print(
        f"{'log sd':>6} {'healthy phi':>11} {'location':>10}  "
        + "  ".join(f"{'@' + str(c):<11}" for c in CAPS)
    )
    for sd in (0.1, 0.2):
        regressed_d = (
            math.log(args.factor)
            + ar1(rng, args.reps, n, args.phi, sd)
            - ar1(rng, args.reps, n, args.phi, sd)
        )
        share1, ratio1, r1 = summaries(regressed_d)
        for healthy_phi in (0.95, 0.98):
            healthy_d = ar1(rng, args.reps, n, healthy_phi, sd) - ar1(rng, args.reps, n, healthy_phi, sd)
            share0, ratio0, r0 = summaries(healthy_d)
            for name, loc0, loc1 in (("share>0", share0, share1), ("mean/sd", ratio0, ratio1)):
                rectangles = [best_rectangle((loc0, r0), (loc1, r1), cap)[0] for cap in CAPS]
                regions = [best_region((loc0, r0), (loc1, r1), cap) for cap in CAPS]
                cells = "  ".join(f"{a:>5.3f}/{b:<5.3f}" for a, b in zip(rectangles, regions, strict=True))
                print(f"{sd:>6g} {healthy_phi:>11g} {name:>10}  {cells}")


if __name__ == "__main__":
    main()
