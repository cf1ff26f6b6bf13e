"""The documents a config may hold: native (strict: a misspelt key is an error) and Kayenta's (lenient)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _ThresholdsModel(_Strict):
    pass_: float = Field(95.0, alias="pass", ge=0, le=100)
    marginal: float = Field(75.0, ge=0, le=100)


class _OutliersModel(_Strict):
    strategy: Literal["keep", "remove"] = "keep"
    factor: float = Field(3.0, gt=0)


class _MetricModel(_Strict):
    name: str = Field(min_length=1)
    kind: Literal["errors", "latency", "saturation", "business", "custom"] = "custom"
    description: str = ""
    group: str | None = Field(None, min_length=1)
    groups: list[str] | None = Field(None, min_length=1)
    query: str | None = None
    traffic_query: str | None = None
    direction: Literal["increase", "decrease", "either"] | None = None
    critical: bool | None = None
    must_have_data: bool = True
    muted: bool = False
    nan_strategy: Literal["remove", "replace"] = "remove"
    outliers: _OutliersModel | None = None
    confidence: float | None = Field(None, gt=0, lt=1)
    tolerance: float | None = Field(None, ge=0)
    pair_on: list[str] | None = None
    pair_ignoring: list[str] = Field(default_factory=list)
    judge: dict[str, Any] | None = None


class _NativeModel(_Strict):
    name: str = Field("canary", min_length=1)
    description: str = ""
    source: str | None = None
    thresholds: _ThresholdsModel = _ThresholdsModel()
    groups: dict[str, float] = Field(default_factory=dict)
    templates: dict[str, str] = Field(default_factory=dict)
    mode: Literal["fixed", "sequential"] | None = None
    judge: dict[str, Any] | None = None
    metrics: list[_MetricModel] = Field(min_length=1)


class _Lenient(BaseModel):
    """Kayenta accepts unknown fields; we accept them too and warn about each."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class _KEffectSize(_Lenient):
    measure: Literal["meanRatio", "cles"] = "meanRatio"
    allowedIncrease: float = Field(1.0, ge=0)  # noqa: N815 - Kayenta's field names
    allowedDecrease: float = Field(1.0, ge=0)  # noqa: N815
    criticalIncrease: float = Field(1.0, ge=0)  # noqa: N815
    criticalDecrease: float = Field(1.0, ge=0)  # noqa: N815


class _KOutliers(_Lenient):
    strategy: Literal["keep", "remove"] = "keep"
    outlierFactor: float = Field(3.0, gt=0)  # noqa: N815


class _KCanary(_Lenient):
    direction: Literal["increase", "decrease", "either"] = "either"
    nanStrategy: Literal["remove", "replace", "none"] = "remove"  # noqa: N815
    critical: bool = False
    mustHaveData: bool = False  # noqa: N815
    muted: bool = False
    effectSize: _KEffectSize | None = None  # noqa: N815
    outliers: _KOutliers | None = None
    confidence: float | None = Field(None, gt=0, lt=1)
    tolerance: float | None = Field(None, ge=0)


class _KAnalysis(_Lenient):
    canary: _KCanary = _KCanary()


class _KMetric(_Lenient):
    name: str = Field(min_length=1)
    query: dict[str, Any]
    groups: list[str] = Field(min_length=1)
    analysisConfigurations: _KAnalysis = _KAnalysis()  # noqa: N815
    scopeName: str = "default"  # noqa: N815


class _KClassifier(_Lenient):
    groupWeights: dict[str, float] = Field(default_factory=dict)  # noqa: N815
    scoreThresholds: _ThresholdsModel | None = None  # noqa: N815


class _KJudge(_Lenient):
    name: str = "NetflixACAJudge-v1.0"
    judgeConfigurations: dict[str, Any] = Field(default_factory=dict)  # noqa: N815


class _KayentaModel(_Lenient):
    name: str = "canary"
    description: str = ""
    id: str | None = None
    applications: list[str] = Field(default_factory=list)
    createdTimestamp: int | None = None  # noqa: N815
    updatedTimestamp: int | None = None  # noqa: N815
    createdTimestampIso: str | None = None  # noqa: N815
    updatedTimestampIso: str | None = None  # noqa: N815
    configVersion: str | None = None  # noqa: N815
    judge: _KJudge = _KJudge()
    metrics: list[_KMetric] = Field(min_length=1)
    templates: dict[str, str] = Field(default_factory=dict)
    classifier: _KClassifier = _KClassifier()
    mode: Literal["fixed", "sequential"] = "fixed"  # kayenta-py's extension
