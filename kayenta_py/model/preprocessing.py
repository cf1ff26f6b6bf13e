"""Preprocessing of metric values before judging: missing values and outliers (IQR, k-sigma)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from kayenta_py.model.types import FloatArray, as_values

FENCE_SLACK = 1e-12


class NanStrategy(StrEnum):
    """What to do with NaN values before judging."""

    REMOVE = "remove"
    REPLACE = "replace"


def remove_nans(values: npt.ArrayLike) -> FloatArray:
    """Return the values without NaN, in input order."""
    data = as_values(values)
    return as_values(data[~np.isnan(data)])


def replace_nans(values: npt.ArrayLike, value: float = 0.0) -> FloatArray:
    """Return the values with every NaN replaced by ``value``, in input order."""
    data = np.array(as_values(values))
    data[np.isnan(data)] = value
    return as_values(data)


def iqr_outliers(
    values: npt.ArrayLike, factor: float = 1.5, *, reduce_sensitivity: bool = False
) -> npt.NDArray[np.bool_]:
    """Flag values outside [Q1 - k IQR, Q3 + k IQR] (R-7 quartiles).

    With ``reduce_sensitivity`` the fences widen to at least the 1st and 99th
    percentiles, as Kayenta's judge does: lower = min(P1, Q1 - k IQR),
    upper = max(P99, Q3 + k IQR). Values strictly outside are flagged.

    A value on a fence in exact arithmetic (common with counts: Q3 + 3 IQR = 14
    for integer data) is not flagged in any unit: the fences are computed with
    rounding that differs once the data are multiplied by 10^k, so a value
    counts as outside only beyond 1e-12 of the fences' magnitude
    (:data:`FENCE_SLACK`); no real gap is that small.
    Test: ``iqr_*`` conformance cases; ``tests/test_unit_invariance.py``.
    """
    data = as_values(values)
    if data.size == 0:
        return np.zeros(0, dtype=bool)
    q1, q3 = np.percentile(data, [25.0, 75.0], method="linear")
    iqr = q3 - q1
    lower, upper = q1 - factor * iqr, q3 + factor * iqr
    if reduce_sensitivity:
        p1, p99 = np.percentile(data, [1.0, 99.0], method="linear")
        lower, upper = min(p1, lower), max(p99, upper)
    slack = FENCE_SLACK * max(abs(float(lower)), abs(float(upper)))
    return np.asarray((data < lower - slack) | (data > upper + slack))


def ksigma_outliers(values: npt.ArrayLike, factor: float = 3.0) -> npt.NDArray[np.bool_]:
    """Flag values with |v - mean| > k * population standard deviation.

    Test: ``ksigma_*`` conformance cases.
    """
    data = as_values(values)
    if data.size == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(np.abs(data - data.mean()) > factor * data.std())


class OutlierStrategy(StrEnum):
    """Whether outliers are kept or removed before judging."""

    KEEP = "keep"
    REMOVE = "remove"


@dataclass(frozen=True)
class Outliers:
    """Outlier handling of a metric: Kayenta's IQR detector with P1/P99 widening."""

    strategy: OutlierStrategy = OutlierStrategy.KEEP
    factor: float = 3.0

    def apply(self, values: FloatArray) -> FloatArray:
        """Return the values without outliers (or unchanged when keeping them)."""
        if self.strategy is OutlierStrategy.KEEP or values.size == 0:
            return values
        mask = iqr_outliers(values, self.factor, reduce_sensitivity=True)
        return as_values(values[~mask])


def preprocess(
    values: npt.ArrayLike, nan_strategy: NanStrategy, outliers: Outliers | None = None
) -> FloatArray:
    """Apply the NaN strategy, then outlier removal, as Kayenta's judge does."""
    data = remove_nans(values) if nan_strategy is NanStrategy.REMOVE else replace_nans(values)
    data = as_values(data[np.isfinite(data)]) if not np.isfinite(data).all() else data
    return outliers.apply(data) if outliers is not None else data
