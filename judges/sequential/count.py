"""Sequential judges of event counts: ``sequential-count`` and ``sequential-histogram``.

Both run the anytime-valid rate-ratio test of Lindon & Malek (NeurIPS 2022); the state is a
small JSON document (log-likelihoods over a fixed grid) updated batch by batch, so live
analyses persist and resume it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import betaln, logsumexp
from scipy.stats import chi2, norm

from judges.sequential.common import check_final_share, final_share_p
from judges.sequential.robust_score import RobustScoreSequence
from kayenta_py import Direction, KayentaError
from kayenta_py.plugin import Assessment, SequentialJudge, clip_p

FloatArray = npt.NDArray[np.float64]

# ---------------------------------------------------------------- rate ratio of counts

LOG_RATIO_GRID = np.linspace(-7.0, 7.0, 1401)  # log rate ratio, steps of 0.01 (1%)
_HUBER = 1.5  # Huber's clipping constant of the burst-robust estimate
DISPERSION_QUANTILE = 0.5  # the chi-square quantile dividing Pearson's X (see RateRatioTest.dispersion)


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


class CountParams(BaseModel):
    """Parameters of ``sequential-count`` (and, with its buckets, ``sequential-histogram``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_effect: float = Field(1.2, ge=1, description="smallest relevant ratio of event rates")
    concentration: float = Field(100.0, gt=0, description="k of the Beta prior on the canary's event share")
    min_events: float = Field(
        20,
        ge=0,
        description="effective events the smaller arm would have at the pooled rate; fewer: inconclusive",
    )
    final_share: float = Field(
        0.5, ge=0, lt=1, description="share of the metric's alpha kept for one fixed-horizon look at the end"
    )


class _RateRatioJudge(SequentialJudge):
    """What the two rate-ratio judges share: the test's parameters and the final-look share."""

    def __init__(
        self,
        *,
        min_effect: float = 1.2,
        concentration: float = 100.0,
        min_events: float = 20,
        final_share: float = 0.5,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        check_final_share(final_share)
        self.min_effect = min_effect
        self.concentration = concentration
        self.min_events = min_events
        self.final_share = final_share
        self._test = RateRatioTest(min_effect, concentration)


class SequentialCountJudge(_RateRatioJudge):
    """Error counts: anytime-valid test and confidence sequence for the error-rate ratio.

    A batch per side is ``(events, traffic)``: arrays aligned by time step (errors and
    requests per step). Fails a canary with errors where the baseline has none. Steps
    where either side has no traffic carry no information and are skipped, so a canary
    that never got traffic has no data.

    ``final_share`` of the metric's alpha is kept for one fixed-horizon look when the
    lifetime ends (``RateRatioTest.final_p``); the anytime test gets the rest. At the
    end the metric is inconclusive when the smaller arm (by traffic) would have had
    fewer than ``min_events`` events at the pooled event rate (all events times its
    traffic share: a 10% canary of 130 events expects 13), or when the estimated ratio
    lies past ``min_effect`` without the regression being established: thin evidence
    is never a pass.
    Test: ``tests/test_sequential.py``, ``tests/test_wrong_pass.py``.
    """

    name = "sequential-count"
    params_model = CountParams

    def new_state(self, alpha: float) -> dict[str, Any]:
        """Return the empty state."""
        return {"alpha": alpha, "test": self._test.new_state(), "points": 0}

    def update(self, state: dict[str, Any], baseline: Any, canary: Any) -> dict[str, Any]:
        """Add a batch of ``(events, traffic)`` per side."""
        eb, tb = _events_traffic(baseline, "baseline")
        ec, tc = _events_traffic(canary, "canary")
        if eb.size != ec.size:
            raise KayentaError(f"baseline has {eb.size} steps and canary {ec.size}: align them by time")
        state["test"] = self._test.update(state["test"], eb, tb, ec, tc)
        state["points"] += int(eb.size)
        return state

    def assess(self, state: Mapping[str, Any]) -> Assessment:
        """Evidence on the error-rate ratio."""
        test = state["test"]
        p_reg, p_safe, e_reg = self._test.p_values(test, self.direction)
        events, traffic = test["events"], test["traffic"]
        rates = [e / t if t else math.nan for e, t in zip(events, traffic, strict=True)]
        expected = self._test.expected_events(test)
        inconclusive = None
        if expected < self.min_events:
            inconclusive = (
                f"{events[0] + events[1]:g} events in all, {expected:.3g} effective ones expected on the "
                f"smaller arm at the pooled rate, fewer than min_events {self.min_events:g}"
            )
        elif (leaning := self._test.leaning(test, self.direction)) is not None:
            inconclusive = (
                f"the error-rate ratio estimate {leaning:.3g} is past the relevant "
                f"{self.min_effect:g} (or its inverse) without the regression being established"
            )
        return Assessment(
            p_regression=clip_p(p_reg / (1.0 - self.final_share)),
            # No pass, early or late, before min_events effective events: bursts make fewer unreliable.
            p_safe=p_safe if expected >= self.min_events else 1.0,
            e_regression=e_reg * (1.0 - self.final_share),
            p_final=final_share_p(self._test.final_p(test, self.direction), self.final_share),
            inconclusive=inconclusive,
            ci=self._test.confidence_sequence(test, state["alpha"]),
            estimate=self._test.estimate(test),
            effect_measure="error-rate ratio",
            neutral=1.0,
            observations=int(state["points"]) if test["loglik"] is not None else 0,
            baseline=_count_stats(events[0], traffic[0], state["points"]),
            canary=_count_stats(events[1], traffic[1], state["points"]),
            details={
                "events": {"baseline": events[0], "canary": events[1]},
                "traffic": {"baseline": traffic[0], "canary": traffic[1]},
                "rate": {"baseline": rates[0], "canary": rates[1]},
                "min_effect": self.min_effect,
                "min_events": self.min_events,
                "final_share": self.final_share,
            },
        )


# ---------------------------------------------------------------- histograms


class HistogramParams(CountParams):
    """Parameters of ``sequential-histogram``: the rate-ratio test's, per quantile of interest."""

    buckets: list[float] | None = Field(
        None,
        min_length=2,
        description="bucket upper bounds (le), the last may be inf; default: the first batch's le labels",
    )
    quantiles: list[float] = Field([0.5, 0.9, 0.99], min_length=1)


class SequentialHistogramJudge(_RateRatioJudge):
    """Latency histograms (Prometheus ``_bucket`` counters): is the canary stochastically slower?

    A batch per side is a 2-D array (time steps x buckets) of counts, cumulative over
    the buckets as Prometheus reports them (``increase(x_bucket[step])``), bucket
    bounds given by ``buckets`` (by default the ``le`` labels of the first batch, given as a
    mapping of bound to column, kept in the state). For each quantile of interest the threshold is the
    bucket bound nearest the pooled quantile of the first batch; requests slower than
    it are events, all requests the traffic, and the rate ratio test above decides
    (one-sided: more slow requests on the canary), Bonferroni over the quantiles.
    The shift is reported per quantile (interpolated within buckets). As in
    ``sequential-count``, ``final_share`` of the alpha is kept for one fixed-horizon
    look at the end, and a quantile with fewer than ``min_events`` slow requests (on the
    smaller arm at the pooled rate) or an estimate past ``min_effect`` leaves the metric
    inconclusive.
    Test: ``tests/test_sequential.py``, ``tests/test_wrong_pass.py``.
    """

    name = "sequential-histogram"
    params_model = HistogramParams

    def __init__(
        self,
        *,
        buckets: Sequence[float] | None = None,
        quantiles: Sequence[float] = (0.5, 0.9, 0.99),
        **rate_ratio: Any,
    ) -> None:
        super().__init__(**rate_ratio)
        self.buckets = None if buckets is None else _bounds([float(b) for b in buckets])
        if any(not 0 < q < 1 for q in quantiles):
            raise KayentaError("quantiles: each must be between 0 and 1")
        self.quantiles = [float(q) for q in quantiles]

    def new_state(self, alpha: float) -> dict[str, Any]:
        """Return the empty state."""
        return {
            "alpha": alpha,
            "thresholds": None,
            "tests": [],
            "counts": None,
            "points": 0,
            "buckets": _json_bounds(self.buckets),
        }

    def update(self, state: dict[str, Any], baseline: Any, canary: Any) -> dict[str, Any]:
        """Add a batch of bucket counts per side."""
        if state.get("buckets") is None:
            state["buckets"] = _json_bounds(self.buckets or _bounds_of(baseline, canary))
            if state["buckets"] is None:
                return state  # no bucket series yet
        bounds = [float(b) for b in state["buckets"]]
        cb, cc = self._counts(baseline, "baseline", bounds), self._counts(canary, "canary", bounds)
        if cb.shape[0] != cc.shape[0]:
            raise KayentaError(f"baseline has {cb.shape[0]} steps and canary {cc.shape[0]}: align them")
        if cb.shape[0] == 0:
            return state
        pooled = (cb + cc).sum(axis=0)
        if state["thresholds"] is None:
            if pooled[-1] <= 0:
                return state
            state["thresholds"] = [self._threshold(pooled, q) for q in self.quantiles]
            state["tests"] = [self._test.new_state() for _ in self.quantiles]
            state["counts"] = [[0.0] * len(bounds), [0.0] * len(bounds)]
        for i, index in enumerate(state["thresholds"]):
            slow_b = cb[:, -1] - cb[:, index]
            slow_c = cc[:, -1] - cc[:, index]
            state["tests"][i] = self._test.update(state["tests"][i], slow_b, cb[:, -1], slow_c, cc[:, -1])
        state["counts"] = [
            (np.asarray(state["counts"][0]) + cb.sum(axis=0)).tolist(),
            (np.asarray(state["counts"][1]) + cc.sum(axis=0)).tolist(),
        ]
        state["points"] += int(cb.shape[0])
        return state

    @staticmethod
    def _counts(value: Any, side: str, bounds: Sequence[float]) -> FloatArray:
        if isinstance(value, Mapping):
            columns = {float(k): v for k, v in value.items()}
            if not columns:  # no bucket series in this window
                return np.zeros((0, len(bounds)))
            missing = [b for b in bounds if b not in columns]
            if missing:
                raise KayentaError(f"{side}: no bucket column for le={missing[0]:g} (the judge's buckets)")
            array = np.column_stack([np.asarray(columns[b], dtype=np.float64) for b in bounds])
        else:
            array = np.asarray(value, dtype=np.float64)
            if array.ndim == 1 and array.size == 0:
                array = array.reshape(0, len(bounds))
        if array.ndim != 2 or array.shape[1] != len(bounds):
            raise KayentaError(f"{side}: expected a (steps x {len(bounds)}) array of bucket counts")
        array = np.nan_to_num(array, nan=0.0)
        if np.any(np.diff(array, axis=1) < -1e-9):
            raise KayentaError(f"{side}: bucket counts must be cumulative over the buckets (le)")
        return array

    @staticmethod
    def _threshold(cumulative: FloatArray, q: float) -> int:
        """Index of the bucket bound nearest the pooled q-quantile (never the last bucket)."""
        fraction = cumulative / cumulative[-1]
        index = int(np.searchsorted(fraction, q, side="left"))
        return min(index, cumulative.size - 2)

    def assess(self, state: Mapping[str, Any]) -> Assessment:
        """Evidence per quantile; the metric regresses if any quantile does (Bonferroni)."""
        if state["thresholds"] is None:
            return Assessment(1.0, 1.0, 1.0, None, None, "slow-request ratio", 0)
        bounds = [float(b) for b in state["buckets"] or self.buckets or []]
        count = len(self.quantiles)
        per_quantile = []
        p_reg, p_safe, e_reg, p_final = 1.0, 0.0, 0.0, 1.0
        thin: list[str] = []
        too_few = False  # a quantile below min_events: no pass at all, early or late
        worst: tuple[tuple[float, float] | None, float | None] = (None, None)
        for q, index, test in zip(self.quantiles, state["thresholds"], state["tests"], strict=True):
            pr, ps, er = self._test.p_values(test, Direction.INCREASE)
            p_final = min(p_final, count * self._test.final_p(test, Direction.INCREASE))
            slow = self._test.expected_events(test)
            if slow < self.min_events:
                too_few = True
                thin.append(
                    f"p{q * 100:g}: {slow:.3g} slow requests expected on the smaller arm, "
                    f"fewer than min_events {self.min_events:g}"
                )
            elif (leaning := self._test.leaning(test, Direction.INCREASE)) is not None:
                thin.append(f"p{q * 100:g}: slow-request ratio {leaning:.3g} past {self.min_effect:g}")
            ci = self._test.confidence_sequence(test, state["alpha"] / count)
            per_quantile.append(
                {
                    "quantile": q,
                    "threshold": float(state["buckets"][index]),
                    "ratio_ci": list(ci) if ci else None,
                    "ratio": self._test.estimate(test),
                    "p_regression": pr,
                    "baseline_quantile": _bucket_quantile(state["counts"][0], bounds, q),
                    "canary_quantile": _bucket_quantile(state["counts"][1], bounds, q),
                }
            )
            if count * pr < p_reg:
                p_reg, worst = count * pr, (ci, self._test.estimate(test))
            p_safe = max(p_safe, ps)
            e_reg = max(e_reg, er / count)
        baseline_total, canary_total = state["counts"][0][-1], state["counts"][1][-1]
        return Assessment(
            p_regression=clip_p(p_reg / (1.0 - self.final_share)),
            p_safe=1.0 if too_few else clip_p(count * p_safe),
            e_regression=e_reg * (1.0 - self.final_share),
            p_final=final_share_p(p_final, self.final_share),
            inconclusive="; ".join(thin) or None,
            ci=worst[0] if worst[0] is not None else _widest(per_quantile),
            estimate=worst[1],
            effect_measure="slow-request ratio",
            neutral=1.0,
            observations=int(state["points"]),
            baseline=_count_stats(baseline_total, baseline_total, state["points"]),
            canary=_count_stats(canary_total, canary_total, state["points"]),
            details={
                "quantiles": per_quantile,
                "min_effect": self.min_effect,
                "min_events": self.min_events,
                "final_share": self.final_share,
            },
        )


def _json_bounds(bounds: list[float] | None) -> list[float | str] | None:
    """Bucket bounds as strict JSON: the infinite last bound as Prometheus writes it, "+Inf"."""
    return None if bounds is None else [b if math.isfinite(b) else "+Inf" for b in bounds]


def _bounds(bounds: list[float]) -> list[float]:
    if len(bounds) < 2:
        raise KayentaError(f"buckets: {len(bounds)} bucket bound(s); a histogram needs at least 2")
    if any(b2 <= b1 for b1, b2 in itertools.pairwise(bounds)):
        raise KayentaError("buckets: bounds must increase")
    return bounds


def _bounds_of(baseline: Any, canary: Any) -> list[float] | None:
    """The bucket bounds of a first batch given as mappings of bound (le) to column."""
    if not isinstance(baseline, Mapping) or not isinstance(canary, Mapping):
        raise KayentaError(
            "sequential-histogram without buckets: give each batch as a mapping of bucket bound (le) "
            "to counts, or set buckets"
        )
    if not baseline or not canary:
        return None
    sides = [sorted(float(k) for k in side) for side in (baseline, canary)]
    if sides[0] != sides[1]:
        raise KayentaError(f"baseline buckets {sides[0]} differ from canary buckets {sides[1]}")
    return _bounds(sides[0])


def _bucket_quantile(cumulative: Sequence[float], bounds: Sequence[float], q: float) -> float | None:
    """Prometheus-style histogram_quantile: linear interpolation inside the bucket."""
    counts = np.asarray(cumulative, dtype=np.float64)
    if counts.size == 0 or counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    index = int(np.searchsorted(counts, rank, side="left"))
    if index >= len(bounds) - 1 and math.isinf(bounds[-1]):
        return float(bounds[-2])
    lower = 0.0 if index == 0 else bounds[index - 1]
    below = 0.0 if index == 0 else counts[index - 1]
    inside = counts[index] - below
    if inside <= 0:
        return float(bounds[index])
    return float(lower + (bounds[index] - lower) * (rank - below) / inside)


def _widest(per_quantile: list[dict[str, Any]]) -> tuple[float, float] | None:
    cis = [tuple(p["ratio_ci"]) for p in per_quantile if p["ratio_ci"]]
    return (min(c[0] for c in cis), max(c[1] for c in cis)) if cis else None


# ---------------------------------------------------------------- helpers


def _exp(log_value: float) -> float:
    """exp() that saturates instead of overflowing (e-values past 1e300 are all decisive)."""
    return math.exp(min(log_value, 690.0))


def _events_traffic(value: Any, side: str) -> tuple[FloatArray, FloatArray]:
    if isinstance(value, Mapping):
        events, traffic = value.get("events"), value.get("traffic")
    elif isinstance(value, tuple | list) and len(value) == 2:
        events, traffic = value
    else:
        raise KayentaError(f"{side}: expected (events, traffic) arrays for a sequential-count metric")
    e = np.asarray(events, dtype=np.float64).reshape(-1)
    t = np.asarray(traffic, dtype=np.float64).reshape(-1)
    if e.size != t.size:
        raise KayentaError(f"{side}: {e.size} event counts but {t.size} traffic counts")
    if np.any(e[np.isfinite(e)] > t[np.isfinite(e)] * 1e6 + 1e12):
        raise KayentaError(f"{side}: event counts far above the traffic; are events and traffic swapped?")
    return e, t


def _count_stats(events: float, traffic: float, steps: int) -> Any:
    """The pooled event rate, as summary statistics over ``steps`` time steps."""
    from kayenta_py import SummaryStats

    if not steps:
        return SummaryStats(0.0, 0.0, 0.0, 0.0, 0)
    rate = events / traffic if traffic else 0.0
    return SummaryStats(rate, rate, rate, 0.0, int(steps))
