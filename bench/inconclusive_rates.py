"""How often a one-hour sequential-count canary ends pass, marginal or fail, by error volume.

The price of "thin evidence is never a pass" (issue 11): a healthy canary with few errors
ends ``marginal`` (a person decides) instead of ``pass``; a doubled error rate must never
end ``pass``. One-minute steps, 12 looks of 5 steps, Poisson errors, then ``finish()``.
Rows: expected errors per arm over the hour, canary traffic share, true rate ratio.

    .venv/bin/python bench/inconclusive_rates.py            # 300 runs a row
    .venv/bin/python bench/inconclusive_rates.py --runs 50  # quicker
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np

import kayenta_py

CONFIG = {"name": "errors", "metrics": [{"name": "errors", "kind": "errors"}]}
STEPS, PER_LOOK, REQUESTS = 60, 5, 100_000.0
ROWS = [  # (events per arm at equal traffic under the baseline's rate, canary share, rate ratio)
    (30, 0.5, 1.0),
    (60, 0.5, 1.0),
    (120, 0.5, 1.0),
    (240, 0.5, 1.0),
    (120, 0.1, 1.0),
    (600, 0.1, 1.0),
    (60, 0.5, 2.0),
    (60, 0.1, 2.0),
    (120, 0.5, 1.5),
]


def run(seed: int, per_arm: float, share: float, ratio: float) -> str:
    """Return the final verdict of one seeded canary."""
    rng = np.random.default_rng(seed)
    traffic_c = np.full(STEPS, REQUESTS * share)
    traffic_b = np.full(STEPS, REQUESTS * (1.0 - share))
    rate = per_arm / (STEPS * REQUESTS * 0.5)
    events_b = rng.poisson(rate * traffic_b).astype(np.float64)
    events_c = rng.poisson(ratio * rate * traffic_c).astype(np.float64)
    analysis = kayenta_py.SequentialAnalysis(CONFIG)
    for start in range(0, STEPS, PER_LOOK):
        part = slice(start, start + PER_LOOK)
        result = analysis.update(
            {"errors": (events_b[part], traffic_b[part])}, {"errors": (events_c[part], traffic_c[part])}
        )
        if result.verdict is not kayenta_py.Verdict.PENDING:
            return result.verdict.value
    return analysis.finish().verdict.value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"{'errors/arm':>10} {'share':>6} {'ratio':>6} {'pass':>7} {'marginal':>9} {'fail':>7}")
    for per_arm, share, ratio in ROWS:
        seeds = range(args.seed * 100_000, args.seed * 100_000 + args.runs)
        counts = Counter(run(seed, per_arm, share, ratio) for seed in seeds)
        rates = {v: counts.get(v, 0) / args.runs for v in ("pass", "marginal", "fail")}
        print(
            f"{per_arm:>10} {share:>6.0%} {ratio:>6g} {rates['pass']:>7.1%} "
            f"{rates['marginal']:>9.1%} {rates['fail']:>7.1%}"
        )
    print("ratio 1: healthy (pass is right, marginal costs a person); ratio > 1: pass is a wrong pass")


if __name__ == "__main__":
    main()
