"""Judge ``threshold``: absolute bounds on a canary aggregate and bounds relative to the baseline."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kayenta_py import (
    Classification,
    FloatArray,
    Judge,
    KayentaError,
    MetricResult,
    MetricSetPair,
    SummaryStats,
    format_number,
    mean_ratio,
    percentile,
)

_PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?|100)$")
_RELATIVE = re.compile(r"^\s*(?:<=\s*)?([+-]?\s*\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*(%?)\s*$")
AGGREGATES = ("mean", "median", "min", "max", "last", "sum")


def aggregate(values: FloatArray, how: str) -> float:
    """Return the aggregate ``how`` (mean, median, min, max, last, sum or pNN) of ``values``."""
    if how == "mean":
        return float(np.mean(values))
    if how == "median":
        return percentile(values, 50.0)
    if how == "min":
        return float(np.min(values))
    if how == "max":
        return float(np.max(values))
    if how == "last":
        return float(values[-1])
    if how == "sum":
        return float(np.sum(values))
    match = _PERCENTILE.match(how)
    if match is None:
        raise ValueError(f"unknown aggregate {how!r}")
    return percentile(values, float(match.group(1)))


@dataclass(frozen=True)
class RelativeBound:
    """A bound relative to the baseline: a percentage of it, or an absolute delta."""

    amount: float
    percent: bool

    @classmethod
    def parse(cls, text: str | float) -> RelativeBound:
        """Parse ``"+10%"``, ``"10%"``, ``"<= +10%"``, ``"+5"`` or a number (a delta)."""
        if isinstance(text, int | float):
            return cls(abs(float(text)), percent=False)
        match = _RELATIVE.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not a relative bound such as '+10%' or '+5'")
        return cls(abs(float(match.group(1).replace(" ", ""))), percent=bool(match.group(2)))

    def limit(self, baseline: float, sign: float) -> float:
        """Return the canary limit above (sign +1) or below (sign -1) the baseline aggregate."""
        delta = abs(baseline) * self.amount / 100.0 if self.percent else self.amount
        return baseline + sign * delta

    def __str__(self) -> str:
        return f"{self.amount:g}%" if self.percent else f"{self.amount:g}"


class ThresholdParams(BaseModel):
    """Parameters of the ``threshold`` judge in a configuration file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    aggregate: str = "mean"
    upper: float | None = None
    lower: float | None = None
    max_increase: str | float | None = Field(None, description="e.g. '+10%' or 5 (absolute delta)")
    max_decrease: str | float | None = Field(None, description="e.g. '-10%' or 5 (absolute delta)")

    @field_validator("aggregate")
    @classmethod
    def _known_aggregate(cls, value: str) -> str:
        if value not in AGGREGATES and not _PERCENTILE.match(value):
            raise ValueError(f"{value!r} is not one of {', '.join(AGGREGATES)} or pNN (e.g. p99)")
        return value

    @field_validator("max_increase", "max_decrease")
    @classmethod
    def _relative(cls, value: str | float | None) -> str | float | None:
        if value is not None:
            RelativeBound.parse(value)
        return value


class ThresholdJudge(Judge):
    """Bounds on an aggregate of the canary, absolute or relative to the baseline's.

    Parameters
    ----------
    aggregate : str
        ``mean``, ``median``, ``min``, ``max``, ``last``, ``sum`` or ``pNN``
        (R-7 percentile, e.g. ``p99``, ``p99.9``), applied to each side.
    upper, lower : float, optional
        Absolute bounds: the canary aggregate above ``upper`` is High, below
        ``lower`` is Low (Argo Rollouts' ``successCondition``, Flagger's
        ``thresholdRange``).
    max_increase, max_decrease : str or float, optional
        Bounds relative to the baseline aggregate: ``"+10%"`` (of the baseline)
        or a number (an absolute delta), as in Keptn's SLO criteria. With a
        baseline of 0 any percentage bound is exceeded by any change.

    Notes
    -----
    ``direction`` decides which bounds may be set: an ``increase`` metric may
    only have ``upper``/``max_increase``. At least one bound is required.
    Test: ``tests/test_threshold_judge.py``.
    """

    name = "threshold"
    version = "1.0"
    params_model = ThresholdParams

    def __init__(
        self,
        *,
        aggregate: str = "mean",
        upper: float | None = None,
        lower: float | None = None,
        max_increase: str | float | None = None,
        max_decrease: str | float | None = None,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        params = ThresholdParams(
            aggregate=aggregate,
            upper=upper,
            lower=lower,
            max_increase=max_increase,
            max_decrease=max_decrease,
        )
        self.aggregate = params.aggregate
        self.upper = upper
        self.lower = lower
        self.max_increase = max_increase
        self.max_decrease = max_decrease
        self._increase = None if max_increase is None else RelativeBound.parse(max_increase)
        self._decrease = None if max_decrease is None else RelativeBound.parse(max_decrease)
        high_bounds = upper is not None or max_increase is not None
        low_bounds = lower is not None or max_decrease is not None
        if not (high_bounds or low_bounds):
            raise KayentaError(
                "threshold judge needs at least one of upper, lower, max_increase, max_decrease"
            )
        if high_bounds and not self.direction.allows_high():
            raise KayentaError("upper/max_increase set, but direction 'decrease' never flags an increase")
        if low_bounds and not self.direction.allows_low():
            raise KayentaError("lower/max_decrease set, but direction 'increase' never flags a decrease")
        if upper is not None and lower is not None and lower > upper:
            raise KayentaError(f"lower ({lower:g}) is above upper ({upper:g})")

    def compare(
        self,
        pair: MetricSetPair,
        baseline: FloatArray,
        canary: FloatArray,
        baseline_stats: SummaryStats,
        canary_stats: SummaryStats,
    ) -> MetricResult:
        """Check the canary aggregate against every configured bound."""
        canary_value = aggregate(canary, self.aggregate)
        baseline_value = aggregate(baseline, self.aggregate)
        what = f"canary {self.aggregate} {format_number(canary_value)}"
        breaches_high, breaches_low = [], []
        if self.upper is not None and canary_value > self.upper:
            breaches_high.append(f"{what} > upper bound {format_number(self.upper)}")
        if self._increase is not None:
            limit = self._increase.limit(baseline_value, +1.0)
            if canary_value > limit:
                breaches_high.append(
                    f"{what} > baseline {format_number(baseline_value)} + {self._increase} "
                    f"= {format_number(limit)}"
                )
        if self.lower is not None and canary_value < self.lower:
            breaches_low.append(f"{what} < lower bound {format_number(self.lower)}")
        if self._decrease is not None:
            limit = self._decrease.limit(baseline_value, -1.0)
            if canary_value < limit:
                breaches_low.append(
                    f"{what} < baseline {format_number(baseline_value)} - {self._decrease} "
                    f"= {format_number(limit)}"
                )
        if breaches_high:
            classification, reason = Classification.HIGH, "; ".join(breaches_high)
        elif breaches_low:
            classification, reason = Classification.LOW, "; ".join(breaches_low)
        else:
            classification = Classification.PASS
            reason = f"{what} within bounds (baseline {format_number(baseline_value)})"
        critical = self.critical and classification is not Classification.PASS
        if critical:
            reason += " (critical: the canary fails)"
        ratio = canary_value / baseline_value if baseline_value != 0 else math.nan
        return self.result(
            pair,
            classification,
            reason,
            baseline_stats,
            canary_stats,
            critical=critical,
            estimate=canary_value - baseline_value,
            effect_size=ratio,
            effect_measure=f"{self.aggregate} ratio",
            mean_ratio=mean_ratio(canary, baseline),
            details={
                "aggregate": self.aggregate,
                "canary_value": canary_value,
                "baseline_value": baseline_value,
            },
        )
