"""The anytime-valid rate-ratio test of event counts: Lindon & Malek's mixture, a burst-robust companion."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.special import betaln, logsumexp
from scipy.stats import chi2, norm

from judges.sequential.robust_score import RobustScoreSequence
from kayenta_py import Direction, KayentaError
from kayenta_py.plugin import FloatArray, clip_p

LOG_RATIO_GRID = np.linspace(-7.0, 7.0, 1401)  # log rate ratio, steps of 0.01 (1%)


_HUBER = 1.5  # Huber's clipping constant of the burst-robust estimate


DISPERSION_QUANTILE = 0.5  # the chi-square quantile dividing Pearson's X (see RateRatioTest.dispersion)


def _exp(log_value: float) -> float:
    """exp() that saturates instead of overflowing (e-values past 1e300 are all decisive)."""
    return math.exp(min(log_value, 690.0))



class RateRatioTest:
    """Anytime-valid inference on the canary/baseline rate ratio of event counts.

    Each event falls on the canary with probability ``p(r) = rho_c r / (rho_b + rho_c r)``
    where ``rho`` are the traffic shares and ``r`` the rate ratio: conditioning on the
    total number of events cancels the shared time trend (traffic cycles), as in
    Lindon & Malek's Dirichlet-multinomial test (two arms: beta-binomial). The
    alternative mixes over ``r`` with the prior that a Beta(k rho_c, k rho_b) prior on
    the canary's event share induces (``k`` the concentration); with constant
    shares the mixture equals their closed-form Bayes factor

        BF = B(k rho_c + N_c, k rho_b + N_b) / [B(k rho_c, k rho_b) rho_c^N_c rho_b^N_b].

    Shares may change between batches; the log-likelihood of every ratio on a grid
    (log r in [-7, 7], steps of 0.01) is accumulated, so each batch costs O(grid).

    That mixture is exact for Poisson counts; real counts are overdispersed. So every
    decision (a regression established or excluded, at any look or at the final look)
    needs a second, overdispersion-robust test to agree: the self-normalized score
    sequence of ``judges.sequential.robust_score`` on the same steps. The mixture keeps the
    decisions exact on few events, the score sequence keeps them valid on bursts; the
    confidence sequence reported is the union of both (each covers the ratio).

    Test: ``tests/test_sequential.py`` (closed form, simulation of the false-alarm rate),
    ``tests/test_sequential_real_traffic.py`` (bursty and overdispersed traffic).
    """

    def __init__(self, min_effect: float, concentration: float = 100.0) -> None:
        if min_effect < 1:
            raise KayentaError(f"min_effect: {min_effect} must be a ratio of at least 1")
        self.min_effect = min_effect
        self.concentration = concentration
        self._robust = RobustScoreSequence(math.log(min_effect))

    def new_state(self) -> dict[str, Any]:
        """Return the empty state."""
        return {
            "loglik": None,
            "log_prior": None,
            "events": [0.0, 0.0],
            "traffic": [0.0, 0.0],
            "max_log_e": {"up": 0.0, "down": 0.0, "safe_up": 0.0, "safe_down": 0.0},
            "log_e": {},
            # Pearson's statistic of the canary's event share per step, at every grid ratio, and the
            # number of steps with events: the overdispersion estimate (see ``dispersion``).
            "pearson": None,
            "steps": 0,
            # Huber's estimating function at every grid ratio (see ``robust_estimate``).
            "huber": None,
            # The overdispersion-robust score sequence (``judges.sequential.robust_score``).
            "robust": self._robust.new_state(),
        }

    def update(
        self,
        state: dict[str, Any],
        events_b: FloatArray,
        traffic_b: FloatArray,
        events_c: FloatArray,
        traffic_c: FloatArray,
    ) -> dict[str, Any]:
        """Add one batch (arrays aligned by time step) to ``state``."""
        keep = (traffic_b > 0) & (traffic_c > 0) & np.isfinite(events_b) & np.isfinite(events_c)
        eb, ec, tb, tc = events_b[keep], events_c[keep], traffic_b[keep], traffic_c[keep]
        if eb.size == 0:
            return state
        if np.any(eb < 0) or np.any(ec < 0):
            raise KayentaError("event counts must not be negative")
        rho_c = tc / (tb + tc)
        ratio = np.exp(LOG_RATIO_GRID)
        if state["log_prior"] is None:
            state["log_prior"] = self._log_prior(float(rho_c[0])).tolist()
            state["loglik"] = np.zeros(LOG_RATIO_GRID.size).tolist()
        # log p(r) and log(1 - p(r)) per step and grid point; events of a step share its p.
        share = rho_c[:, None] * ratio[None, :]
        denominator = np.log((1.0 - rho_c)[:, None] + share)
        log_p = np.log(share) - denominator
        log_q = np.log((1.0 - rho_c)[:, None]) - denominator
        loglik = np.asarray(state["loglik"]) + ec @ log_p + eb @ log_q
        state["loglik"] = loglik.tolist()
        total = eb + ec
        busy = total > 0
        p = np.exp(log_p[busy])
        expected = total[busy, None] * p
        residual = (ec[busy, None] - expected) ** 2 / (expected * (1.0 - p))
        pearson = np.asarray(state["pearson"] if state.get("pearson") is not None else 0.0)  # older states
        state["pearson"] = (pearson + residual.sum(axis=0)).tolist()
        state["steps"] = int(state.get("steps", 0)) + int(busy.sum())
        z = (ec[busy, None] - expected) / np.sqrt(expected * (1.0 - p))
        huber = np.asarray(state["huber"] if state.get("huber") is not None else 0.0)
        state["huber"] = (huber + np.clip(z, -_HUBER, _HUBER).sum(axis=0)).tolist()
        if "robust" not in state:  # a state from before the robust sequence: it starts now
            state["robust"] = self._robust.new_state()
        self._robust.update(state["robust"], total[busy], ec[busy], rho_c[busy])
        state["events"] = [state["events"][0] + float(eb.sum()), state["events"][1] + float(ec.sum())]
        state["traffic"] = [state["traffic"][0] + float(tb.sum()), state["traffic"][1] + float(tc.sum())]
        # Running maxima of the one-sided e-processes (the running max gives anytime p-values).
        current = self._log_e(state)
        state["log_e"] = current
        state["max_log_e"] = {k: max(state["max_log_e"][k], v) for k, v in current.items()}
        return state

    def _log_prior(self, rho_c: float) -> FloatArray:
        k = self.concentration
        ratio = np.exp(LOG_RATIO_GRID)
        p = rho_c * ratio / (1.0 - rho_c + rho_c * ratio)
        # Beta(k rho_c, k rho_b) density of p, times dp / dlog r = p (1 - p).
        log_density = (
            (k * rho_c) * np.log(p)
            + (k * (1.0 - rho_c)) * np.log1p(-p)
            - betaln(k * rho_c, k * (1.0 - rho_c))
        )
        log_w = log_density + math.log(LOG_RATIO_GRID[1] - LOG_RATIO_GRID[0])
        return np.asarray(log_w - logsumexp(log_w), dtype=np.float64)

    @staticmethod
    def dispersion(state: Mapping[str, Any]) -> float:
        """Overdispersion of the events' split between the arms, at least 1 (1: binomial).

        Real errors come in bursts (a pod's hiccup, negative-binomial minutes), so the
        canary's share of a step's events varies more than a binomial allows. Pearson's
        statistic X at the maximum-likelihood ratio, chi-square with (steps with events - 1)
        degrees of freedom under a binomial split, estimates the dispersion phi (McCullagh &
        Nelder 1989, 4.5); we take X over the chi-square median, X / chi2_0.5(df)
        (``DISPERSION_QUANTILE``): a point estimate, since every decision also needs the
        robust score sequence (``judges.sequential.robust_score``), which is the conservative bound. The
        log-likelihood is tempered by it (a quasi-likelihood: evidence counts 1/phi as much).
        Test: ``tests/test_sequential.py``.
        """
        pearson, steps = state.get("pearson"), int(state.get("steps", 0))
        if pearson is None or steps < 2 or state["loglik"] is None:
            return 1.0
        best = int(np.argmax(state["loglik"]))
        return max(1.0, float(pearson[best]) / float(chi2.ppf(DISPERSION_QUANTILE, steps - 1)))

    def _loglik(self, state: Mapping[str, Any]) -> FloatArray:
        """The log-likelihood over the ratio grid, tempered by the overdispersion."""
        return np.asarray(state["loglik"], dtype=np.float64) / self.dispersion(state)

    def _log_e(self, state: Mapping[str, Any]) -> dict[str, float]:
        """One-sided mixture e-values against the boundaries r = m and r = 1/m."""
        loglik = self._loglik(state)
        log_prior = np.asarray(state["log_prior"])
        log_m = math.log(self.min_effect)
        out = {}
        for key, boundary, side in (
            ("up", log_m, log_m < LOG_RATIO_GRID),  # regression up: H0 r <= m
            ("down", -log_m, -log_m > LOG_RATIO_GRID),  # regression down: H0 r >= 1/m
            ("safe_up", log_m, log_m > LOG_RATIO_GRID),  # excludes regression up: H0 r >= m
            ("safe_down", -log_m, -log_m < LOG_RATIO_GRID),  # excludes regression down: H0 r <= 1/m
        ):
            at_boundary = float(np.interp(boundary, LOG_RATIO_GRID, loglik))
            weights = log_prior[side] - logsumexp(log_prior[side])
            out[key] = float(logsumexp(weights + loglik[side]) - at_boundary)
        return out

    def confidence_sequence(self, state: Mapping[str, Any], level: float) -> tuple[float, float] | None:
        """Return the ratios not rejected at ``level`` by either test (the union of both sequences)."""
        if state["loglik"] is None:
            return None
        loglik = self._loglik(state)
        log_prior = np.asarray(state["log_prior"])
        log_e = logsumexp(log_prior + loglik) - loglik  # mixture e-value against each grid ratio
        kept = np.flatnonzero(log_e < math.log(1.0 / level))
        sequences = [] if kept.size == 0 else [(LOG_RATIO_GRID[kept[0]], LOG_RATIO_GRID[kept[-1]])]
        robust = self._robust.confidence_sequence(state["robust"], level) if "robust" in state else None
        if robust is not None:  # grid ratios: positive and finite
            sequences.append((math.log(robust[0]), math.log(robust[1])))
        if not sequences:
            return None
        low, high = min(low for low, _ in sequences), max(high for _, high in sequences)
        return float(math.exp(low)), float(math.exp(min(high, 700.0)))

    @staticmethod
    def estimate(state: Mapping[str, Any]) -> float | None:
        """Return the maximum-likelihood ratio on the grid."""
        if state["loglik"] is None:
            return None
        return float(math.exp(LOG_RATIO_GRID[int(np.argmax(state["loglik"]))]))

    def final_p(self, state: Mapping[str, Any], direction: Direction) -> float:
        """Fixed-horizon p-value of "no relevant regression" on all events, for the final look.

        The signed root of the likelihood ratio against the boundary ``r = m``
        (``1/m`` for a decrease), ``z = sign(log r_hat - log m) sqrt(2 (l(r_hat) - l(m)))``,
        is asymptotically standard normal at the boundary (Cox & Hinkley 1974,
        9.3); ``p = 1 - Phi(z)``, on the log-likelihood tempered by the
        overdispersion (``dispersion``), and the robust score sequence's fixed-horizon
        deviate; the larger p counts. Both directions at once: twice the smaller p.
        """
        if state["loglik"] is None:
            return 1.0
        loglik = self._loglik(state)
        best = int(np.argmax(loglik))
        log_m = math.log(self.min_effect)

        def one_sided(boundary: float, above: bool) -> float:
            gap = max(0.0, float(loglik[best]) - float(np.interp(boundary, LOG_RATIO_GRID, loglik)))
            beyond = LOG_RATIO_GRID[best] > boundary if above else LOG_RATIO_GRID[best] < boundary
            z = math.sqrt(2.0 * gap) * (1.0 if beyond else -1.0)
            return float(norm.sf(z))

        up, down = one_sided(log_m, True), one_sided(-log_m, False)
        if "robust" in state:  # both tests must establish the regression
            robust_up, robust_down = self._robust.final_p(state["robust"])
            up, down = max(up, robust_up), max(down, robust_down)
        if direction is Direction.INCREASE:
            return up
        if direction is Direction.DECREASE:
            return down
        return clip_p(2.0 * min(up, down))

    def expected_events(self, state: Mapping[str, Any]) -> float:
        """Events the smaller arm would have had at the pooled event rate, over the dispersion.

        Overdispersed events carry 1/phi of the information of as many independent ones, so
        this counts effective events: a 10% canary of 130 events expects 13, and 4.3 when
        bursts triple the variance.
        """
        events, traffic = state["events"], state["traffic"]
        total = traffic[0] + traffic[1]
        if total <= 0:
            return 0.0
        return float((events[0] + events[1]) * min(traffic) / total / self.dispersion(state))

    @staticmethod
    def robust_estimate(state: Mapping[str, Any]) -> float | None:
        """Huber's M-estimate of the ratio: the root of sum_t psi(z_t(r)) (None before any event).

        ``z_t(r)`` is step t's Pearson residual of the canary's events at ratio r and psi
        clips it to [-1.5, 1.5] (Huber 1964), so the few minutes of a burst on one arm
        weigh no more than any other minute; the sum decreases in r and is kept on the
        grid. Read only to flag a canary as inconclusive, never to fail or pass one.
        """
        huber = state.get("huber")
        if huber is None:
            return None
        below = np.flatnonzero(np.asarray(huber) <= 0.0)
        index = int(below[0]) if below.size else LOG_RATIO_GRID.size - 1
        return float(math.exp(LOG_RATIO_GRID[index]))

    def leaning(self, state: Mapping[str, Any], direction: Direction) -> float | None:
        """The estimated ratio when it lies past the relevant effect in a direction judged bad.

        Both the maximum-likelihood and Huber's estimates are read: a burst of errors on the
        baseline can hide a canary whose other minutes point to a regression.
        """
        for estimate in (self.estimate(state), self.robust_estimate(state)):
            if estimate is None:
                continue
            up = estimate >= self.min_effect and direction is not Direction.DECREASE
            down = estimate <= 1.0 / self.min_effect and direction is not Direction.INCREASE
            if up or down:
                return estimate
        return None

    def p_values(self, state: Mapping[str, Any], direction: Direction) -> tuple[float, float, float]:
        """Return (p_regression, p_safe, current e-value of regression) for ``direction``.

        Anytime p-values from the running maxima of both tests' e-values; a decision
        needs both, so each p is the larger of the two.
        """
        best, now = state["max_log_e"], state.get("log_e") or {}
        robust = state.get("robust") or {}
        zero = {"up": 0.0, "down": 0.0, "safe_up": 0.0, "safe_down": 0.0}
        robust_best, robust_now = robust.get("min_p", zero), robust.get("p", zero)
        up = (
            max(_exp(-best["up"]), robust_best["up"]),
            max(_exp(-best["safe_up"]), robust_best["safe_up"]),
            min(_exp(now.get("up", 0.0)), 1.0 / max(robust_now["up"], 1e-300)),
        )
        down = (
            max(_exp(-best["down"]), robust_best["down"]),
            max(_exp(-best["safe_down"]), robust_best["safe_down"]),
            min(_exp(now.get("down", 0.0)), 1.0 / max(robust_now["down"], 1e-300)),
        )
        if direction is Direction.INCREASE:
            p = up
        elif direction is Direction.DECREASE:
            p = down
        else:  # either way: a union of two one-sided tests, each at half the level
            p = (2 * min(up[0], down[0]), max(up[1], down[1]), max(up[2], down[2]) / 2)
        return clip_p(p[0]), clip_p(p[1]), p[2]


