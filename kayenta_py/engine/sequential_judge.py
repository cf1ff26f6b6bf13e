"""The base of sequential judges: a JSON state updated batch by batch, and its Assessment at each look."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel

from kayenta_py.engine.judge_params import JudgeParameters
from kayenta_py.model.types import (
    Direction,
    SummaryStats,
)

EMPTY_STATS = SummaryStats(0.0, 0.0, 0.0, 0.0, 0)


@dataclass(frozen=True)
class Assessment:
    """A sequential judge's current evidence on one metric.

    ``p_regression`` is an anytime-valid p-value for "no relevant regression"
    (small: a regression is established); ``p_safe`` one for "a relevant
    regression" (small: it is excluded). ``e_regression`` is the current
    e-value behind ``p_regression`` (for e-BH). ``ci`` is the confidence
    sequence of ``effect_measure`` at the level asked for. ``p_final`` is a
    fixed-horizon p-value for "no relevant regression", read once, when the
    lifetime ends; a judge that keeps part of its alpha for that final look
    reports both p-values already divided by their shares (1: no final look).
    ``inconclusive`` says why the evidence is too thin for a pass at the end of
    the lifetime (fewer points or events than the judge's minimum, or an estimate
    past the relevant effect that is not established); None when it suffices.
    """

    p_regression: float
    p_safe: float
    e_regression: float
    ci: tuple[float, float] | None
    estimate: float | None
    effect_measure: str
    observations: int
    neutral: float = 1.0  # the effect's value when nothing changed (a ratio's 1, theta's 0.5)
    baseline: SummaryStats = EMPTY_STATS
    canary: SummaryStats = EMPTY_STATS
    details: Mapping[str, Any] = field(default_factory=dict)
    p_final: float = 1.0
    inconclusive: str | None = None


BatchShape = Literal["values", "counts", "histogram"]
"""The batch shapes the engine can fetch for a sequential judge, per side and interval:

``values``
    One series' new values, aligned by time with the other side's (the first pair of series).
``counts``
    ``(events, traffic)``: the metric's ``query`` (events per step) and its ``traffic_query``
    (requests per step), each summed over series and aligned by time.
``histogram``
    ``{bound: counts}``: bucket series labelled ``le`` summed per bound, aligned by time
    (the bounds are the judge's ``buckets`` parameter when given, else the baseline's).
"""


class SequentialJudge(JudgeParameters, ABC):
    """Base class of sequential judges: keyword-only parameters, a JSON state, batch updates.

    Like :class:`Judge`, a subclass declares its own parameters once, in ``params_model``.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1.0"
    sequential: ClassVar[bool] = True
    params_model: ClassVar[type[BaseModel] | None] = None
    batch_shape: ClassVar[BatchShape] = "values"
    """How the engine shapes each side's batch for :meth:`update` (see :data:`BatchShape`)."""

    def __init__(
        self,
        *,
        direction: Direction | str = Direction.INCREASE,
        critical: bool = False,
        must_have_data: bool = False,
        nan_strategy: str = "remove",
        outliers: Any = None,
        **params: Any,
    ) -> None:
        self.direction = Direction(direction)
        self.critical = critical
        self.must_have_data = must_have_data
        self.nan_strategy = nan_strategy
        self.outliers = outliers
        self._store_params(params)

    @property
    def full_name(self) -> str:
        """Return the versioned judge name."""
        return f"{self.name}-v{self.version}"

    def get_params(self) -> dict[str, Any]:
        """Return the judge's parameters as given."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    @abstractmethod
    def new_state(self, alpha: float) -> dict[str, Any]:
        """Return the empty state of a metric judged at level ``alpha`` (JSON-serializable)."""

    @abstractmethod
    def update(self, state: dict[str, Any], baseline: Any, canary: Any) -> dict[str, Any]:
        """Fold one batch of new baseline and canary data into ``state`` and return it."""

    @abstractmethod
    def assess(self, state: Mapping[str, Any]) -> Assessment:
        """Return the current evidence held in ``state``."""


def copy_state(value: Any) -> Any:
    """A deep copy of a JSON-like judge state (dicts, lists, scalars), much faster than ``copy.deepcopy``.

    A list of scalars (a grid of log-likelihoods) is copied in one step; scalars are immutable.
    """
    if isinstance(value, dict):
        return {k: copy_state(v) for k, v in value.items()}
    if isinstance(value, list):
        if not value or not (isinstance(value[0], dict | list) or isinstance(value[-1], dict | list)):
            return list(value)  # a list of scalars (state lists are homogeneous or short records)
        return [copy_state(v) for v in value]
    return value


def clip_p(value: float) -> float:
    """Return ``value`` clipped into [0, 1] (NaN becomes 1)."""
    if math.isnan(value):
        return 1.0
    return min(1.0, max(0.0, value))
