"""The sequential judge of histogram buckets: sequential-histogram (rate ratios of the slow tail)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from judges.sequential.common import final_share_p
from judges.sequential.count import CountParams, FloatArray, _count_stats, _RateRatioJudge
from kayenta_py import KayentaError
from kayenta_py.plugin import Assessment, clip_p


class HistogramParams(CountParams):
    """Parameters of ``sequential-histogram``: the rate-ratio test's, per quantile of interest."""

    buckets: list[float] | None = Field(
        None,
        min_length=2,
        description="bucket upper bounds (le), the last may be inf; default: the first batch's le labels",
    )
    quantiles: list[float] = Field([0.5, 0.9, 0.99], min_length=1)

    @field_validator("quantiles")
    @classmethod
    def _between_0_and_1(cls, value: list[float]) -> list[float]:
        if any(not 0 < q < 1 for q in value):
            raise ValueError("each must be between 0 and 1")
        return value


class SequentialHistogramJudge(_RateRatioJudge):
    """Latency histograms (Prometheus ``_bucket`` counters): is the canary stochastically slower?

    A batch per side is a 2-D array (time steps x buckets) of counts, cumulative over
    the buckets as Prometheus reports them (``increase(x_bucket[step])``), bucket
    bounds given by ``buckets`` (by default the ``le`` labels of the first batch, given as a
    mapping of bound to column, kept in the state). For each quantile of interest the threshold is the
    bucket bound nearest the pooled quantile of the first batch; requests slower than
    it are events, all requests the traffic, and the rate ratio test above decides in the
    metric's direction (``increase``, the default: more slow requests on the canary, a slower
    canary; ``decrease``: fewer, a faster one; ``either``: both), Bonferroni over the quantiles.
    The shift is reported per quantile (interpolated within buckets). As in
    ``sequential-count``, ``final_share`` of the alpha is kept for one fixed-horizon
    look at the end, and a quantile with fewer than ``min_events`` slow requests (on the
    smaller arm at the pooled rate) or an estimate past ``min_effect`` leaves the metric
    inconclusive.
    Test: ``tests/test_sequential.py``, ``tests/test_wrong_pass.py``.
    """

    name = "sequential-histogram"
    batch_shape = "histogram"
    params_model = HistogramParams

    buckets: list[float] | None
    quantiles: list[float]

    def _setup(self) -> None:
        super()._setup()
        self.buckets = None if self.buckets is None else _bounds([float(b) for b in self.buckets])

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
            pr, ps, er = self._test.p_values(test, self.direction)
            p_final = min(p_final, count * self._test.final_p(test, self.direction))
            slow = self._test.expected_events(test)
            if slow < self.min_events:
                too_few = True
                thin.append(
                    f"p{q * 100:g}: {slow:.3g} slow requests expected on the smaller arm, "
                    f"fewer than min_events {self.min_events:g}"
                )
            elif (leaning := self._test.leaning(test, self.direction)) is not None:
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


