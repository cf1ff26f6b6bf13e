"""Where ``sequential-rank`` loses power on persistent series: its final look, with the AR(1)
inflation it estimates against the true one (issue 12's "+25% latency on AR(1) 0.8" row).

Each run: one hour at a 1-minute step (60 aligned points), log-latency an AR(1) per arm
(``--phi``, marginal log-sd ``--sd``, independent arms as in ``tests/real_traffic.py``), the
canary x``--effect``. The judge's state after 60 points gives theta (the mean score) and its
inflation (``_inflation``: from the 70% upper bound of phi); the final look's one-sided normal
test of theta <= min_effect is then read with that inflation and, for reference, with the true
one (Sheppard's arcsin formula at the true phi), at the alpha share ``final_share`` keeps, and
with a few alternatives. Prints the share of runs each variant would fail (power on an effect,
false fails with ``--effect 1``). Run from the project root::

    .venv/bin/python bench/rank_final_look.py                     # phi 0.8, x1.25, 200 runs
    .venv/bin/python bench/rank_final_look.py --phi 0.98 --effect 1  # A/A on a persistent series
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from real_traffic import ar1

from judges.sequential.rank import SequentialRankJudge, _inflation


def true_inflation(phi: float, n: int) -> float:
    """Sheppard's inflation of the mean of n sign scores of a Gaussian AR(1) difference."""
    lags = np.arange(1, n, dtype=np.float64)
    return float(1.0 + 2.0 * np.sum((1.0 - lags / n) * (2.0 / math.pi) * np.arcsin(phi**lags)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--phi", type=float, default=0.8)
    parser.add_argument("--sd", type=float, default=0.1)
    parser.add_argument("--effect", type=float, default=1.25)
    parser.add_argument("--points", type=int, default=60)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args()
    judge = SequentialRankJudge()
    n, exact = args.points, true_inflation(args.phi, args.points)
    variants = {
        "current (estimated inflation, final_share 0.7, min_effect 0.56)": (None, 0.7, 0.56),
        "true inflation": (exact, 0.7, 0.56),
        "final_share 0.9": (None, 0.9, 0.56),
        "true inflation, final_share 0.9": (exact, 0.9, 0.56),
        "min_effect 0.53": (None, 0.7, 0.53),
    }
    fails = dict.fromkeys(variants, 0)
    estimated = []
    for run in range(args.runs):
        rng = np.random.default_rng(args.seed + run)
        baseline = 100.0 * np.exp(ar1(rng, n, phi=args.phi, sd=args.sd))
        canary = 100.0 * args.effect * np.exp(ar1(rng, n, phi=args.phi, sd=args.sd))
        state = judge.new_state(args.alpha)
        for t in range(n):
            state = judge.update(state, baseline[t : t + 1], canary[t : t + 1])
        theta, inflation = state["sum"] / state["n"], _inflation(state)
        estimated.append(inflation)
        for name, (fixed, share, margin) in variants.items():
            variance = max(margin * (1 - margin), theta * (1 - theta)) * (fixed or inflation)
            p = float(norm.sf((theta - margin) / math.sqrt(variance / n)))
            fails[name] += p <= args.alpha * share
    print(
        f"{args.runs} runs, {n} points, AR(1) phi {args.phi} log-sd {args.sd}, canary x{args.effect}; "
        f"inflation: true {exact:.2f}, estimated median {float(np.median(estimated)):.2f}"
    )
    for name, count in fails.items():
        print(f"  {name:<66} fails {count / args.runs:.3f}")


if __name__ == "__main__":
    main()
