"""The overdispersion-robust half of the rate-ratio test: a self-normalized score sequence.

Real errors come in bursts (a pod's hiccup, negative-binomial minutes), so the split of a
step's events between the arms varies far more than a binomial allows, and a test that
trusts the binomial likelihood fails healthy canaries. This sequence only assumes that
each step's events split with mean ``n_t p_t(r)``, whatever their variance:

* the score of step t at ratio r is ``d_t(r) = c_t - n_t p_t(r)`` (canary events minus
  their expectation; the binomial score in log r), whose sum ``S(r)`` is a martingale
  at the true ratio however overdispersed the counts are;
* its variance is estimated from the steps themselves, never below the binomial
  ``sum n_t p_t (1 - p_t)``: the centred sum of squared scores, and the same over blocks
  of ``BLOCK`` steps (batch means: a burst lasting a few minutes). Each gives a
  self-normalized statistic, read as Student's t on its degrees of freedom and turned
  into the normal deviate of the same tail (a handful of steps decides nothing); the
  smallest of the three deviates counts;
* that deviate, on the variance behind it, enters Robbins' normal-mixture boundary
  (the time-uniform boundary of a martingale with estimated variance: Howard,
  Ramdas, McAuliffe & Sekhon, Annals of Statistics 2021; asymptotically valid with an
  estimated variance, Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas, Annals of
  Statistics 2024). A single step, however extreme, moves the statistic by at most
  about one standard deviation: a burst on one arm cannot fail a canary by itself.

Test: ``tests/test_sequential.py`` (false-fail rate under Poisson, negative-binomial
and hiccup counts), ``tests/test_sequential_real_traffic.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr, ndtri, stdtr

FloatArray = npt.NDArray[np.float64]

BLOCK = 3  # steps per block of the batch-means variance
MIXTURE_V0 = 20.0  # the normal mixture's prior variance, in events: tight from ~200 events of information
COARSE_GRID = np.linspace(-7.0, 7.0, 141)  # log rate ratio, steps of 0.1, for the confidence sequence


class RobustScoreSequence:
    """The self-normalized score sequence of the rate ratio at a few log ratios (module docstring)."""

    def __init__(self, log_boundary: float) -> None:
        grid = np.concatenate([COARSE_GRID, [log_boundary, -log_boundary, 0.0]])
        self.grid: FloatArray = np.unique(grid)
        self.up = int(np.searchsorted(self.grid, log_boundary))
        self.down = int(np.searchsorted(self.grid, -log_boundary))

    def new_state(self) -> dict[str, Any]:
        """Return the empty state: sums per grid ratio, and the running minima of the p-values."""
        zeros = [0.0] * self.grid.size
        return {
            "steps": 0,  # steps with events
            "score": zeros,  # S(r) = sum d_t(r)
            "squares": zeros,  # sum d_t(r)^2
            "binomial": zeros,  # sum n_t p_t(r) (1 - p_t(r))
            "open": zeros,  # the open block's sum of d_t(r)
            "open_steps": 0,
            "blocks": 0,  # closed blocks
            "block_squares": zeros,  # sum over closed blocks of their sum squared
            "min_p": {"up": 1.0, "down": 1.0, "safe_up": 1.0, "safe_down": 1.0},
        }

    def update(
        self, state: dict[str, Any], events: FloatArray, canary_events: FloatArray, rho_c: FloatArray
    ) -> None:
        """Add steps with events: all events ``events``, the canary's, and the canary's traffic share."""
        if events.size == 0:
            return
        ratio = np.exp(self.grid)
        p = rho_c[:, None] * ratio / ((1.0 - rho_c)[:, None] + rho_c[:, None] * ratio)
        d = canary_events[:, None] - events[:, None] * p
        state["score"] = (np.asarray(state["score"]) + d.sum(axis=0)).tolist()
        state["squares"] = (np.asarray(state["squares"]) + (d * d).sum(axis=0)).tolist()
        binomial = (events[:, None] * p * (1.0 - p)).sum(axis=0)
        state["binomial"] = (np.asarray(state["binomial"]) + binomial).tolist()
        open_sum, open_steps = np.asarray(state["open"]), int(state["open_steps"])
        block_squares, blocks = np.asarray(state["block_squares"]), int(state["blocks"])
        for row in d:  # steps in time order fill blocks of BLOCK
            open_sum = open_sum + row
            open_steps += 1
            if open_steps == BLOCK:
                block_squares = block_squares + open_sum * open_sum
                blocks += 1
                open_sum, open_steps = np.zeros_like(open_sum), 0
        state["open"], state["open_steps"] = open_sum.tolist(), open_steps
        state["block_squares"], state["blocks"] = block_squares.tolist(), blocks
        state["steps"] = int(state["steps"]) + int(events.size)
        current = self._p_values(state)
        state["p"] = current
        for key, value in current.items():
            state["min_p"][key] = min(state["min_p"][key], value)

    def deviates(self, state: Mapping[str, Any]) -> tuple[FloatArray, FloatArray]:
        """Return (z, variance) per grid ratio: the most cautious normal deviate of S(r) and its variance."""
        k = int(state["steps"])
        score = np.asarray(state["score"])
        binomial = np.maximum(np.asarray(state["binomial"]), 1e-12)
        if k < 3:
            return np.zeros_like(score), binomial
        mean = score / k
        z = score / np.sqrt(binomial)
        variance = binomial
        # Sum of squares about the mean: Var(S) ~ k s^2 on k - 1 degrees of freedom.
        step_var = np.maximum(np.asarray(state["squares"]) - score * mean, 0.0) * k / (k - 1)
        z, variance = _more_cautious(z, variance, score, step_var, k - 1)
        blocks, open_steps = int(state["blocks"]), int(state["open_steps"])
        count = blocks + (open_steps > 0)
        if count >= 2:
            open_sum = np.asarray(state["open"])
            closed_sum = score - open_sum
            weighted = BLOCK * closed_sum + open_steps * open_sum  # sum of n_b D_b
            squares = np.asarray(state["block_squares"]) + open_sum * open_sum
            centred = squares - 2.0 * mean * weighted + mean * mean * (BLOCK * BLOCK * blocks + open_steps**2)
            block_var = np.maximum(centred, 0.0) / (count - 1) * k / BLOCK
            z, variance = _more_cautious(z, variance, score, block_var, count - 1)
        return z, variance

    def _e_values(self, z: FloatArray, variance: FloatArray) -> FloatArray:
        """Robbins' normal mixture over the deviate on its variance (the two-sided mixture e-value)."""
        v = variance + MIXTURE_V0
        log_e = 0.5 * np.log(MIXTURE_V0 / v) + z * z * variance / (2.0 * v)
        return np.asarray(log_e, dtype=np.float64)

    def _p_values(self, state: Mapping[str, Any]) -> dict[str, float]:
        z, variance = self.deviates(state)
        log_e = self._e_values(z, variance)

        def p(index: int, positive: bool) -> float:
            if (z[index] > 0) != positive or z[index] == 0:
                return 1.0
            return float(min(1.0, math.exp(-min(log_e[index], 690.0))))

        return {
            "up": p(self.up, True),  # more canary events than r = m allows: regression up
            "safe_up": p(self.up, False),
            "down": p(self.down, False),
            "safe_down": p(self.down, True),
        }

    def final_p(self, state: Mapping[str, Any]) -> tuple[float, float]:
        """Fixed-horizon p-values of "no regression" up (r <= m) and down (r >= 1/m) on all steps."""
        z, _ = self.deviates(state)
        if int(state["steps"]) < 3:
            return 1.0, 1.0
        return float(ndtr(-z[self.up])), float(ndtr(z[self.down]))

    def confidence_sequence(self, state: Mapping[str, Any], level: float) -> tuple[float, float] | None:
        """Ratios not rejected at ``level`` (grid steps of 0.1 in log r); None before three steps."""
        if int(state["steps"]) < 3:
            return None
        z, variance = self.deviates(state)
        kept = np.flatnonzero(self._e_values(z, variance) < math.log(1.0 / level))
        if kept.size == 0:
            return None
        return float(math.exp(self.grid[kept[0]])), float(math.exp(self.grid[kept[-1]]))


def _more_cautious(
    z: FloatArray, variance: FloatArray, score: FloatArray, estimate: FloatArray, df: int
) -> tuple[FloatArray, FloatArray]:
    """Keep, per grid ratio, the smaller deviate: the current one or Student's t on ``estimate``."""
    estimate = np.maximum(estimate, 1e-12)
    t_stat = score / np.sqrt(estimate)
    # The normal deviate with the same tail probability as t on df degrees of freedom.
    tail = stdtr(df, -np.abs(t_stat))  # Student's t upper tail (scipy.special: no rv overhead)
    deviate = -np.sign(t_stat) * ndtri(np.maximum(tail, 1e-300))
    smaller = np.abs(deviate) < np.abs(z)
    # The variance that deviate implies for S (S / sqrt(V) = deviate): what the mixture boundary reads.
    implied = np.divide(score * score, deviate * deviate, out=estimate.copy(), where=np.abs(deviate) > 1e-12)
    return np.where(smaller, deviate, z), np.where(smaller, implied, variance)
