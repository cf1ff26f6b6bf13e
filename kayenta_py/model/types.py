"""Domain model: frozen dataclasses over read-only numpy arrays."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from kayenta_py.model.errors import ThresholdsError
from kayenta_py.model.formatting import did_you_mean
from kayenta_py.model.kayenta_result import kayenta_judge_result, kayenta_metric_result

FloatArray = npt.NDArray[np.float64]


class Classification(StrEnum):
    """A metric's classification, with Kayenta's labels."""

    PASS = "Pass"
    HIGH = "High"
    LOW = "Low"
    NODATA = "Nodata"
    NODATA_FAIL_METRIC = "NodataFailMetric"
    ERROR = "Error"


FAILING_CLASSIFICATIONS = frozenset(
    {Classification.HIGH, Classification.LOW, Classification.NODATA_FAIL_METRIC, Classification.ERROR}
)
"""Classifications that count against a canary (a report's or a message's failing metrics)."""


class Direction(StrEnum):
    """Which change of a metric counts as a regression."""

    INCREASE = "increase"
    DECREASE = "decrease"
    EITHER = "either"

    def allows_high(self) -> bool:
        """Return whether an increase may be flagged."""
        return self is not Direction.DECREASE

    def allows_low(self) -> bool:
        """Return whether a decrease may be flagged."""
        return self is not Direction.INCREASE


class Verdict(StrEnum):
    """A canary's verdict."""

    PASS = "pass"
    MARGINAL = "marginal"
    FAIL = "fail"
    PENDING = "pending"


def as_values(values: npt.ArrayLike) -> FloatArray:
    """Return a read-only 1-D float64 copy of ``values``."""
    array = np.array(values, dtype=np.float64, copy=True).reshape(-1)
    array.setflags(write=False)
    return array


def _frozen_tags(tags: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType({str(k): str(v) for k, v in sorted((tags or {}).items())})


def tag_key(tags: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Return a hashable, order-independent key for a tag set."""
    return tuple(sorted(tags.items()))


@dataclass(frozen=True)
class MetricSet:
    """The values of one metric for one scope and one tag set, optionally time-stamped."""

    name: str
    values: FloatArray
    tags: Mapping[str, str] = field(default_factory=dict)
    timestamps: FloatArray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", as_values(self.values))
        object.__setattr__(self, "tags", _frozen_tags(self.tags))
        if self.timestamps is not None:
            stamps = as_values(self.timestamps)
            if stamps.shape != self.values.shape:
                raise ValueError(
                    f"metric {self.name!r}: {stamps.size} timestamps for {self.values.size} values"
                )
            object.__setattr__(self, "timestamps", stamps)

    @classmethod
    def empty(cls, name: str, tags: Mapping[str, str] | None = None) -> MetricSet:
        """Return a metric set with no values (a side with no data)."""
        return cls(name, np.empty(0), tags or {})

    def __len__(self) -> int:
        return int(self.values.size)


@dataclass(frozen=True)
class MetricSetPair:
    """Baseline and canary values of one metric and tag set; a missing side is empty.

    ``warning`` says why a series found no partner when pairing left it unpaired.
    """

    name: str
    baseline: MetricSet
    canary: MetricSet
    tags: Mapping[str, str] = field(default_factory=dict)
    warning: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", _frozen_tags(self.tags))

    @classmethod
    def of(
        cls,
        name: str,
        baseline: npt.ArrayLike,
        canary: npt.ArrayLike,
        tags: Mapping[str, str] | None = None,
    ) -> MetricSetPair:
        """Build a pair from two array-likes."""
        tags = tags or {}
        return cls(
            name, MetricSet(name, as_values(baseline), tags), MetricSet(name, as_values(canary), tags), tags
        )


@dataclass(frozen=True)
class SummaryStats:
    """Kayenta's descriptive statistics; an empty sample gives all zeros."""

    min: float
    max: float
    mean: float
    std: float
    count: int

    def to_dict(self) -> dict[str, float | int]:
        """Return the statistics as a JSON-ready mapping."""
        return {"min": self.min, "max": self.max, "mean": self.mean, "std": self.std, "count": self.count}


@dataclass(frozen=True)
class MetricResult:
    """A judge's verdict on one metric pair, with the numbers that explain it.

    ``critical`` is Kayenta's flag: this result fails the whole canary when it is
    not ``Pass``. ``ci`` is the confidence interval for canary minus baseline (or
    the judge's own quantity, named in ``details``); ``effect_size`` is measured by
    ``effect_measure``; ``mean_ratio`` is Kayenta's deviation.
    """

    name: str
    classification: Classification
    reason: str
    baseline: SummaryStats
    canary: SummaryStats
    judge: str
    critical: bool = False
    critical_metric: bool = False
    muted: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)
    groups: tuple[str, ...] = ()
    ci: tuple[float, float] | None = None
    estimate: float | None = None
    effect_size: float | None = None
    effect_measure: str | None = None
    mean_ratio: float = math.nan
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", _frozen_tags(self.tags))
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))

    @property
    def label(self) -> str:
        """Return the metric name with its tags, as shown to people."""
        if not self.tags:
            return self.name
        return self.name + "{" + ",".join(f"{k}={v}" for k, v in self.tags.items()) + "}"

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a JSON-ready mapping (NaN becomes null)."""
        return {
            "name": self.name,
            "tags": dict(self.tags),
            "classification": self.classification.value,
            "reason": self.reason,
            "critical": self.critical,
            "critical_metric": self.critical_metric,
            "muted": self.muted,
            "groups": list(self.groups),
            "judge": self.judge,
            "ci": None if self.ci is None else [json_number(self.ci[0]), json_number(self.ci[1])],
            "estimate": json_number(self.estimate),
            "effect_size": json_number(self.effect_size),
            "effect_measure": self.effect_measure,
            "mean_ratio": json_number(self.mean_ratio),
            "baseline": self.baseline.to_dict(),
            "canary": self.canary.to_dict(),
            "details": {k: _jsonable(v) for k, v in self.details.items()},
        }

    def to_kayenta(self) -> dict[str, Any]:
        """Return Kayenta's CanaryAnalysisResult for this metric."""
        return kayenta_metric_result(self.to_dict())


@dataclass(frozen=True)
class GroupScore:
    """The score of one metric group: 100 * Pass / (Pass + High + Low + NodataFailMetric)."""

    name: str
    score: float
    no_data: bool
    weight: float
    counts: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the group score as a JSON-ready mapping."""
        return {
            "name": self.name,
            "score": self.score,
            "weight": self.weight,
            "no_data": self.no_data,
            "counts": dict(self.counts),
        }


@dataclass(frozen=True)
class Thresholds:
    """Score thresholds: ``pass`` or more passes, above ``marginal`` is marginal, else fail."""

    pass_: float = 95.0
    marginal: float = 75.0

    def __post_init__(self) -> None:
        for label, value in (("pass", self.pass_), ("marginal", self.marginal)):
            if not 0.0 <= value <= 100.0 or math.isnan(value):
                raise ThresholdsError(f"thresholds.{label}", f"{value:g} is not between 0 and 100", key=label)
        if self.pass_ <= 0.0:
            # A score of 0 (a critical failure, mostly missing data) must never pass.
            raise ThresholdsError(
                "thresholds.pass", "0 would let a score of 0 pass; it must be above 0", key="pass"
            )
        if self.marginal > self.pass_:
            raise ThresholdsError(
                "thresholds.marginal",
                f"{self.marginal:g} is above thresholds.pass ({self.pass_:g})",
                key="marginal",
            )

    @classmethod
    def from_dict(cls, stored: Mapping[str, float]) -> Thresholds:
        """Return the thresholds :meth:`to_dict` wrote."""
        return cls(float(stored["pass"]), float(stored["marginal"]))

    def overridden(
        self, given: Mapping[str, Any] | None, *, field: str | Mapping[str, str] = "thresholds"
    ) -> Thresholds:
        """Return these thresholds with the keys ``given`` states replaced: every door's one parser.

        ``given`` holds ``pass`` and/or ``marginal`` (a number or a numeric string; a None value
        is not given). Errors (:class:`ThresholdsError`) name ``<field>.<key>``, or ``field[key]``
        when ``field`` maps keys to a door's own names (``--pass``). Test: ``tests/test_config.py``.
        """
        values = {"pass": self.pass_, "marginal": self.marginal, **threshold_values(given, field)}
        try:
            return Thresholds(values["pass"], values["marginal"])
        except ThresholdsError as exc:
            if exc.key is None:
                raise
            where = _threshold_field(field, exc.key)
            problem = exc.problem
            for key in ("pass", "marginal"):
                problem = problem.replace(f"thresholds.{key}", _threshold_field(field, key))
            raise ThresholdsError(where, problem, key=exc.key) from None

    def classify(self, score: float) -> Verdict:
        """Return Kayenta's verdict for a score: pass at or above ``pass``, fail at or below ``marginal``."""
        if score >= self.pass_:
            return Verdict.PASS
        if score > self.marginal:
            return Verdict.MARGINAL
        return Verdict.FAIL

    def marginal_score(self) -> float:
        """Return the score halfway between the thresholds, for a marginal verdict without a score."""
        return round((self.pass_ + self.marginal) / 2.0, 2)

    def to_dict(self) -> dict[str, float]:
        """Return the thresholds as ``{"pass": ..., "marginal": ...}``."""
        return {"pass": self.pass_, "marginal": self.marginal}


def threshold_values(
    given: Mapping[str, Any] | None, field: str | Mapping[str, str] = "thresholds"
) -> dict[str, float]:
    r"""Return the thresholds ``given`` states (``pass``, ``marginal``) as numbers, each checked.

    Unknown keys, booleans, non-numbers and non-finite numbers are :class:`ThresholdsError`\ s
    naming the field (see :meth:`Thresholds.overridden`); the pair is checked by ``Thresholds``.
    """
    if given is None:
        return {}
    name = field if isinstance(field, str) else "thresholds"
    if not isinstance(given, Mapping):
        raise ThresholdsError(name, 'must be {"pass": ..., "marginal": ...}')
    values: dict[str, float] = {}
    for key, value in given.items():
        if key not in ("pass", "marginal"):
            near = did_you_mean(str(key), ("pass", "marginal"))
            raise ThresholdsError(f"{name}.{key}", f"unknown field{near or '; give pass and/or marginal'}")
        if value is None:
            continue
        where = _threshold_field(field, key)
        try:
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValueError
            number = float(value)
        except ValueError:
            raise ThresholdsError(where, f"{str(value)[:64]!r} is not a number", key=key) from None
        if not math.isfinite(number):
            raise ThresholdsError(where, f"{number:g} is not a finite number", key=key)
        values[key] = number
    return values


def _threshold_field(field: str | Mapping[str, str], key: str) -> str:
    return f"{field}.{key}" if isinstance(field, str) else field[key]


@dataclass(frozen=True)
class CanaryResult:
    """The outcome of judging a canary: verdict, score, reason, and every metric's result."""

    verdict: Verdict
    score: float | None
    reason: str
    thresholds: Thresholds
    metrics: tuple[MetricResult, ...]
    groups: tuple[GroupScore, ...]
    judge_name: str = "kayenta-py"
    warnings: tuple[str, ...] = ()

    def metric(self, name: str) -> MetricResult:
        """Return the (first) result of the metric called ``name``."""
        for result in self.metrics:
            if result.name == name:
                return result
        raise KeyError(name)

    @property
    def failed_metrics(self) -> tuple[MetricResult, ...]:
        """Return the unmuted metrics that did not pass."""
        return tuple(m for m in self.metrics if not m.muted and m.classification is not Classification.PASS)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a JSON-ready mapping."""
        return {
            "verdict": self.verdict.value,
            "score": self.score,
            "reason": self.reason,
            "thresholds": self.thresholds.to_dict(),
            "groups": [g.to_dict() for g in self.groups],
            "metrics": [m.to_dict() for m in self.metrics],
            "warnings": list(self.warnings),
        }

    def to_kayenta(self) -> dict[str, Any]:
        """Return Kayenta's CanaryJudgeResult JSON (derived from :meth:`to_dict`)."""
        return kayenta_judge_result(self.to_dict(), self.judge_name)


def rfc3339(epoch: float | None) -> str | None:
    """Return RFC 3339 UTC with milliseconds for epoch seconds (None stays None)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_number(value: float | None) -> float | None:
    """Return ``value`` as a JSON-safe number: NaN and infinities become None."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return json_number(float(value))
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence | Iterable) and not isinstance(value, str | bytes):
        return [_jsonable(v) for v in value]
    return value
