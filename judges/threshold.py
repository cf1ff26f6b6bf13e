"""Judge ``threshold``: absolute bounds on a canary aggregate and bounds relative to the baseline."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

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
    negative: bool = False

    @classmethod
    def parse(cls, text: str | float) -> RelativeBound:
        """Parse ``"+10%"``, ``"10%"``, ``"<= +10%"``, ``"+5"`` or a number (a delta)."""
        if isinstance(text, int | float):
            return cls(abs(float(text)), percent=False, negative=text < 0)
        match = _RELATIVE.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not a relative bound such as '+10%' or '+5'")
        number = float(match.group(1).replace(" ", ""))
        return cls(abs(number), percent=bool(match.group(2)), negative=number < 0)

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

    @field_validator("max_increase")
    @classmethod
    def _increase(cls, value: str | float | None) -> str | float | None:
        if value is not None and RelativeBound.parse(value).negative:
            raise ValueError(f"{value!r} is negative; max_increase is an allowed increase, e.g. '+10%'")
        return value

    @field_validator("max_decrease")
    @classmethod
    def _decrease(cls, value: str | float | None) -> str | float | None:
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
        baseline of 0 any percentage bound is exceeded by any change. A
        negative ``max_increase`` is an error; ``max_decrease`` may be written
        ``"10%"`` or ``"-10%"``.

    Notes
    -----
    ``direction`` decides which bounds may be set: an ``increase`` metric may
    only have ``upper``/``max_increase``. At least one bound is required.
    Test: ``tests/test_threshold_judge.py``.
    """

    name = "threshold"
    version = "1.0"
    params_model = ThresholdParams

    aggregate: str
    upper: float | None
    lower: float | None
    max_increase: str | float | None
    max_decrease: str | float | None

    def _setup(self) -> None:
        self._increase = None if self.max_increase is None else RelativeBound.parse(self.max_increase)
        self._decrease = None if self.max_decrease is None else RelativeBound.parse(self.max_decrease)
        high_bounds = self.upper is not None or self._increase is not None
        low_bounds = self.lower is not None or self._decrease is not None
        if not (high_bounds or low_bounds):
            raise KayentaError(
                "threshold judge needs at least one of upper, lower, max_increase, max_decrease"
            )
        if high_bounds and not self.direction.allows_high():
            raise KayentaError("upper/max_increase set, but direction 'decrease' never flags an increase")
        if low_bounds and not self.direction.allows_low():
            raise KayentaError("lower/max_decrease set, but direction 'increase' never flags a decrease")
        if self.upper is not None and self.lower is not None and self.lower > self.upper:
            raise KayentaError(f"lower ({self.lower:g}) is above upper ({self.upper:g})")

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
        base = f"baseline {format_number(baseline_value)}"
        # Each configured bound as (description, breached?), the High side and the Low side.
        high: list[tuple[str, bool]] = []
        low: list[tuple[str, bool]] = []
        if self.upper is not None:
            high.append((f"upper bound {format_number(self.upper)}", canary_value > self.upper))
        if self._increase is not None:
            limit = self._increase.limit(baseline_value, +1.0)
            high.append((f"{base} + {self._increase} = {format_number(limit)}", canary_value > limit))
        if self.lower is not None:
            low.append((f"lower bound {format_number(self.lower)}", canary_value < self.lower))
        if self._decrease is not None:
            limit = self._decrease.limit(baseline_value, -1.0)
            low.append((f"{base} - {self._decrease} = {format_number(limit)}", canary_value < limit))
        what = f"canary {self.aggregate} {format_number(canary_value)}"
        breached_high = [text for text, breached in high if breached]
        breached_low = [text for text, breached in low if breached]
        if breached_high:
            classification = Classification.HIGH
            reason = f"{what} is above " + " and ".join(breached_high)
        elif breached_low:
            classification = Classification.LOW
            reason = f"{what} is below " + " and ".join(breached_low)
        else:
            classification = Classification.PASS
            bounds = [f"<= {text}" for text, _ in high] + [f">= {text}" for text, _ in low]
            reason = f"{what} is within bounds: " + ", ".join(bounds)
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
