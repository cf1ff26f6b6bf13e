"""Parameters of the mann-whitney judge: confidence, tolerance and effect-size thresholds, declared once."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


class EffectMeasure(StrEnum):
    """How the size of a difference is measured."""

    MEAN_RATIO = "meanRatio"
    CLES = "cles"

    @property
    def neutral(self) -> float:
        """The value of "no difference": mean ratio 1, CLES 0.5."""
        return 1.0 if self is EffectMeasure.MEAN_RATIO else 0.5


THRESHOLD_NAMES = ("allowed_increase", "allowed_decrease", "critical_increase", "critical_decrease")


@dataclass(frozen=True)
class EffectThresholds:
    """The four effect-size thresholds of one judgement, every default resolved."""

    allowed_increase: float
    allowed_decrease: float
    critical_increase: float
    critical_decrease: float

    @classmethod
    def neutral(cls, measure: EffectMeasure) -> EffectThresholds:
        """Every threshold at the measure's neutral value: only the CI decides."""
        value = measure.neutral
        return cls(value, value, value, value)


class EffectSizeParams(BaseModel):
    """Effect-size thresholds: a High needs >= ``allowed_increase``, a Low <= ``allowed_decrease``.

    A threshold left out (``None``) is the measure's neutral value: 1.0 for
    ``meanRatio`` (Kayenta's default), 0.5 for ``cles`` (which lies in [0, 1]),
    so that the CI alone decides. A threshold given is used as given; with
    ``cles`` it must lie in [0, 1]. Kayenta configurations always pass all four
    (Kayenta's defaults are 1.0 for either measure), so they keep Kayenta's results.
    Test: ``tests/test_unit_invariance.py`` (effect-size defaults).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    measure: Literal["meanRatio", "cles"] = "meanRatio"
    allowed_increase: float | None = Field(None, ge=0)
    allowed_decrease: float | None = Field(None, ge=0)
    critical_increase: float | None = Field(None, ge=0)
    critical_decrease: float | None = Field(None, ge=0)

    @field_validator(*THRESHOLD_NAMES)
    @classmethod
    def _within_measure_range(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and info.data.get("measure") == EffectMeasure.CLES.value and not 0 <= value <= 1:
            raise ValueError(
                f"{info.field_name} {value:g} is outside [0, 1]: with measure cles it is a "
                "probability (0.5: no difference)"
            )
        return value

    def thresholds(self) -> EffectThresholds:
        """Return the thresholds with each one left out set to the measure's neutral value."""
        neutral = EffectMeasure(self.measure).neutral
        values = [getattr(self, name) for name in THRESHOLD_NAMES]
        resolved = [neutral if v is None else float(v) for v in values]
        return EffectThresholds(*resolved)


class MannWhitneyParams(BaseModel):
    """Parameters of the ``mann-whitney`` judge in a configuration file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    confidence: float = Field(0.98, gt=0, lt=1)
    tolerance: float = Field(0.25, ge=0)
    effect_size: EffectSizeParams = EffectSizeParams()
    estimate: Literal["r", "kayenta"] = "r"
    min_effective: float | None = Field(
        None,
        ge=0,
        description="effectively independent points a side needs for a conclusive judgement "
        "(0: no such rule, as in Kayenta; unset: 8 in live fixed-mode analyses of native configs, else 0)",
    )


