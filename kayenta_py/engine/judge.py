"""The judge interface every built-in and third-party judge implements."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel

from kayenta_py.engine.judge_params import JudgeParameters
from kayenta_py.engine.stats import summarize
from kayenta_py.model.preprocessing import NanStrategy, Outliers, preprocess
from kayenta_py.model.types import (
    Classification,
    Direction,
    FloatArray,
    MetricResult,
    MetricSetPair,
    SummaryStats,
)


class Judge(JudgeParameters, ABC):
    """Base class of judges: keyword-only parameters, stored unchanged; ``judge(pair)``.

    The common parameters say how a metric is read: which ``direction`` is a
    regression, whether it is ``critical`` (a failure fails the canary),
    whether it ``must_have_data``, what to do with NaN (``nan_strategy``) and
    with outliers. Subclasses add their own parameters, declare them in
    ``params_model`` (a pydantic model used to validate configuration files),
    and implement :meth:`compare` on preprocessed, non-empty samples. A subclass declares its
    own parameters once, in ``params_model`` (see :mod:`kayenta_py.engine.judge_params`); its
    ``_setup`` derives state from them.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1.0"
    params_model: ClassVar[type[BaseModel] | None] = None

    def __init__(
        self,
        *,
        direction: Direction | str = Direction.EITHER,
        critical: bool = False,
        must_have_data: bool = False,
        nan_strategy: NanStrategy | str = NanStrategy.REMOVE,
        outliers: Outliers | None = None,
        **params: Any,
    ) -> None:
        self.direction = Direction(direction)
        self.critical = critical
        self.must_have_data = must_have_data
        self.nan_strategy = NanStrategy(nan_strategy)
        self.outliers = outliers
        self._store_params(params)

    @property
    def full_name(self) -> str:
        """Return the versioned judge name, e.g. ``mann-whitney-v1.0``."""
        return f"{self.name}-v{self.version}"

    def get_params(self) -> dict[str, Any]:
        """Return the judge's parameters as given (scikit-learn style)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    def judge(self, pair: MetricSetPair) -> MetricResult:
        """Preprocess both sides, handle missing data, then compare them."""
        baseline = preprocess(pair.baseline.values, self.nan_strategy, self.outliers)
        canary = preprocess(pair.canary.values, self.nan_strategy, self.outliers)
        baseline_stats, canary_stats = summarize(baseline), summarize(canary)
        if baseline.size == 0 or canary.size == 0:
            result = self.no_data(pair, baseline_stats, canary_stats)
        else:
            result = self.compare(pair, baseline, canary, baseline_stats, canary_stats)
        infinite = {
            side: int(np.isinf(values).sum())
            for side, values in (("baseline", pair.baseline.values), ("canary", pair.canary.values))
        }
        if any(infinite.values()):
            # Infinite values cannot be ranked into an interval; say that they were dropped.
            dropped = ", ".join(f"{n} from the {side}" for side, n in infinite.items() if n)
            result = dataclasses.replace(
                result,
                reason=f"{result.reason} (dropped infinite values: {dropped})",
                details={**result.details, "dropped_infinite": infinite},
            )
        return result

    @abstractmethod
    def compare(
        self,
        pair: MetricSetPair,
        baseline: FloatArray,
        canary: FloatArray,
        baseline_stats: SummaryStats,
        canary_stats: SummaryStats,
    ) -> MetricResult:
        """Classify a pair whose preprocessed sides both have data."""

    def no_data(
        self, pair: MetricSetPair, baseline_stats: SummaryStats, canary_stats: SummaryStats
    ) -> MetricResult:
        """Classify a pair with an empty side, with Kayenta's rules.

        ``Nodata`` (critical if the metric is), or ``NodataFailMetric`` when the
        metric must have data and is not critical; with NaN strategy
        ``replace`` missing data was declared harmless, so ``Pass``.
        """
        sides = [
            label
            for label, stats in (("baseline", baseline_stats), ("canary", canary_stats))
            if stats.count == 0
        ]
        missing = " and ".join(sides)
        if self.nan_strategy is NanStrategy.REPLACE:
            return self.result(
                pair,
                Classification.PASS,
                f"no data for the {missing}; nan_strategy 'replace' treats missing data as a pass",
                baseline_stats,
                canary_stats,
            )
        if self.must_have_data and not self.critical:
            return self.result(
                pair,
                Classification.NODATA_FAIL_METRIC,
                f"no data for the {missing}, and the metric must have data",
                baseline_stats,
                canary_stats,
            )
        reason = f"no data for the {missing}"
        if self.critical:
            reason += " (critical metric: the canary fails)"
        return self.result(
            pair, Classification.NODATA, reason, baseline_stats, canary_stats, critical=self.critical
        )

    def result(
        self,
        pair: MetricSetPair,
        classification: Classification,
        reason: str,
        baseline_stats: SummaryStats,
        canary_stats: SummaryStats,
        *,
        critical: bool = False,
        **extras: Any,
    ) -> MetricResult:
        """Build a :class:`MetricResult` for ``pair`` with this judge's name and flags."""
        return MetricResult(
            name=pair.name,
            classification=classification,
            reason=reason,
            baseline=baseline_stats,
            canary=canary_stats,
            judge=self.full_name,
            critical=critical,
            critical_metric=self.critical,
            tags=pair.tags,
            **extras,
        )
