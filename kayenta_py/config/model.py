"""Canary configuration: strict native YAML/JSON and Kayenta canary-config JSON, one model."""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kayenta_py.config.registry import Registry, default_registry, did_you_mean
from kayenta_py.engine.stats import NanStrategy, Outliers, OutlierStrategy
from kayenta_py.model.errors import ConfigError, ConfigIssue, KayentaError
from kayenta_py.model.limits import Limits, check_config_document
from kayenta_py.model.types import Direction, Thresholds


class MetricKind(StrEnum):
    """What a metric measures; each kind brings defaults (see :data:`KIND_DEFAULTS`)."""

    ERRORS = "errors"
    LATENCY = "latency"
    SATURATION = "saturation"
    BUSINESS = "business"
    CUSTOM = "custom"


@dataclass(frozen=True)
class KindDefaults:
    """Defaults a metric kind gives: direction (None: the user must say) and criticality."""

    direction: Direction | None
    critical: bool


KIND_DEFAULTS: Mapping[MetricKind, KindDefaults] = MappingProxyType(
    {
        MetricKind.ERRORS: KindDefaults(Direction.INCREASE, critical=True),
        MetricKind.LATENCY: KindDefaults(Direction.INCREASE, critical=False),
        MetricKind.SATURATION: KindDefaults(Direction.INCREASE, critical=False),
        MetricKind.BUSINESS: KindDefaults(None, critical=False),
        MetricKind.CUSTOM: KindDefaults(Direction.EITHER, critical=False),
    }
)

DEFAULT_JUDGE = "mann-whitney"
# In sequential mode a metric without a judge gets its kind's sequential judge
# (``sequential_default_judge``): counts with a traffic query, histograms from ``_bucket`` series.
SEQUENTIAL_DEFAULT_JUDGE: Mapping[MetricKind, str] = MappingProxyType(
    {
        MetricKind.ERRORS: "sequential-count",
        MetricKind.LATENCY: "sequential-rank",
        MetricKind.SATURATION: "sequential-rank",
        MetricKind.BUSINESS: "sequential-rank",
        MetricKind.CUSTOM: "sequential-rank",
    }
)
# A Prometheus histogram's bucket series (``http_request_duration_seconds_bucket``).
_BUCKET_SERIES = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*_bucket\b")
# A percentile computed per step (``histogram_quantile(0.99, ...)``, ``quantile_over_time``).
_PER_STEP_PERCENTILE = re.compile(r"\b(histogram_quantile|quantile_over_time|quantile)\s*\(")


def sequential_default_judge(kind: MetricKind, query: str | None, traffic_query: str | None) -> str:
    """The sequential judge of a metric that names none.

    Errors are counts (``sequential-count``, batches of events and requests), unless the
    metric queries a source without a ``traffic_query``: that query gives a ratio, judged
    as a series (``sequential-rank``). A latency metric
    whose query reads a histogram's ``_bucket`` series but computes no percentile is
    judged from its bucket counts (``sequential-histogram``): per-step percentiles of
    arms with unequal traffic are biased (README, "Latency").
    """
    if kind is MetricKind.ERRORS and query and not traffic_query:
        return "sequential-rank"
    if (
        kind is MetricKind.LATENCY
        and query
        and _BUCKET_SERIES.search(query)
        and not _PER_STEP_PERCENTILE.search(query)
    ):
        return "sequential-histogram"
    return SEQUENTIAL_DEFAULT_JUDGE[kind]


def per_step_percentile_warning(path: str, kind: MetricKind, query: str | None) -> str | None:
    """A warning when a latency query computes a percentile per step (biased under unequal traffic)."""
    if kind is not MetricKind.LATENCY or not query or not _PER_STEP_PERCENTILE.search(query):
        return None
    return (
        f"{path}.query: a percentile computed per step is biased low on the arm with less traffic "
        "(a 10% canary's p99 hides regressions); query the histogram's buckets, "
        "sum by (le) (increase(..._bucket[step])), to judge them with sequential-histogram"
    )


Mode = Literal["fixed", "sequential"]
KAYENTA_JUDGE_NAMES = {"NetflixACAJudge-v1.0": "mann-whitney"}


@dataclass(frozen=True)
class MetricConfig:
    """One metric of a canary config, every default resolved."""

    name: str
    kind: MetricKind
    groups: tuple[str, ...]
    direction: Direction
    critical: bool
    must_have_data: bool = False
    muted: bool = False
    nan_strategy: NanStrategy = NanStrategy.REMOVE
    outliers: Outliers | None = None
    judge_type: str = DEFAULT_JUDGE
    judge_params: Mapping[str, Any] = field(default_factory=dict)
    query: str | None = None
    traffic_query: str | None = None
    kayenta_query: Mapping[str, Any] | None = None
    filter_template: str | None = None
    scope_name: str = "default"
    pair_on: tuple[str, ...] | None = None
    pair_ignoring: tuple[str, ...] = ()

    def build_judge(self, registry: Registry | None = None) -> Any:
        """Return this metric's judge, configured (a Judge, or a sequential judge)."""
        cls = (registry or default_registry()).judge_class(self.judge_type)
        return cls(
            direction=self.direction,
            critical=self.critical,
            must_have_data=self.must_have_data,
            nan_strategy=self.nan_strategy,
            outliers=self.outliers,
            **self.judge_params,
        )


@dataclass(frozen=True)
class CanaryConfig:
    """A validated canary config: metrics, group weights, score thresholds."""

    name: str
    metrics: tuple[MetricConfig, ...]
    group_weights: Mapping[str, float] = field(default_factory=dict)
    thresholds: Thresholds = field(default_factory=Thresholds)
    description: str = ""
    source: str | None = None
    templates: Mapping[str, str] = field(default_factory=dict)
    mode: Mode = "fixed"
    # Whether the config (or the caller) chose the mode; live native analyses default to sequential.
    mode_stated: bool = True
    format: Literal["native", "kayenta"] = "native"
    warnings: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict)

    def metric(self, name: str) -> MetricConfig:
        """Return the metric called ``name``."""
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise KeyError(f"no metric {name!r}{did_you_mean(name, [m.name for m in self.metrics])}")


# ---------------------------------------------------------------- native format


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


# ---------------------------------------------------------------- Kayenta format


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


# ---------------------------------------------------------------- loading


def load_config(
    source: str | Path | Mapping[str, Any],
    *,
    registry: Registry | None = None,
    mode: Mode | None = None,
    limits: Limits | None = None,
) -> CanaryConfig:
    """Load and validate a canary config: a path to YAML/JSON, or a mapping.

    Native configs are validated strictly (an unknown key is an error naming
    its path, with the nearest known key). Kayenta canary configs are
    recognised by their shape and accepted as Kayenta accepts them: unknown
    fields become warnings on the returned config. ``mode`` overrides the
    config's own (``sequential`` gives metrics without a judge their kind's
    sequential judge). A config that could not be stored as JSON (nested deeper or
    larger than ``limits`` allow, holding a NUL or a non-finite number) is refused first.

    Raises
    ------
    ConfigError
        With every problem found, each naming its path.
    """
    origin: str | None = None
    if isinstance(source, Mapping):
        raw: Any = source
    else:
        path = Path(source)
        origin = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([ConfigIssue("", f"cannot read: {exc.strerror}")], source=origin) from None
        raw = _parse_text(text, origin)
    if not isinstance(raw, Mapping):
        raise ConfigError([ConfigIssue("", "the config must be a mapping of keys")], source=origin)
    if limits is not None:  # a door of the service: the document is stored as strict JSON
        check_config_document(raw, limits)
    registry = registry or default_registry()
    if is_kayenta_config(raw):
        return _from_kayenta(raw, registry, origin, mode)
    return _from_native(raw, registry, origin, mode)


def _parse_text(text: str, origin: str) -> Any:
    try:
        if origin.endswith(".json"):
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            [ConfigIssue(f"line {exc.lineno}", f"invalid JSON: {exc.msg}")], source=origin
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue(where, f"invalid YAML: {problem}")], source=origin) from None


def is_kayenta_config(raw: Mapping[str, Any]) -> bool:
    """Return whether a mapping looks like a Kayenta canary config rather than a native one."""
    if "classifier" in raw or "applications" in raw or "configVersion" in raw:
        return True
    judge = raw.get("judge")
    if isinstance(judge, Mapping) and "judgeConfigurations" in judge:
        return True
    metrics = raw.get("metrics")
    if isinstance(metrics, list):
        return any(
            isinstance(m, Mapping) and ("analysisConfigurations" in m or isinstance(m.get("query"), Mapping))
            for m in metrics
        )
    return False


def _from_native(
    raw: Mapping[str, Any], registry: Registry, origin: str | None, mode: Mode | None
) -> CanaryConfig:
    try:
        model = _NativeModel.model_validate(raw)
    except ValidationError as exc:
        issues = _issues(exc, _NativeModel)
        issues.extend(_raw_judge_issues(raw, registry))
        raise ConfigError(issues, source=origin) from None
    issues = []
    warnings: list[str] = []
    mode_stated = bool(mode or model.mode)
    mode = mode or model.mode or "fixed"
    thresholds = _thresholds(model.thresholds, "thresholds", issues)
    metrics: list[MetricConfig] = []
    seen: set[str] = set()
    for index, m in enumerate(model.metrics):
        path = f"metrics[{index}]"
        before = len(issues)
        if m.name in seen:
            issues.append(ConfigIssue(f"{path}.name", f"duplicate metric name {m.name!r}"))
        seen.add(m.name)
        kind = MetricKind(m.kind)
        defaults = KIND_DEFAULTS[kind]
        direction = Direction(m.direction) if m.direction else defaults.direction
        if direction is None:
            issues.append(
                ConfigIssue(
                    f"{path}.direction",
                    f"required for kind {kind.value} (say which change is bad; usually 'decrease')",
                )
            )
            direction = Direction.EITHER
        elif defaults.direction is Direction.INCREASE and direction is Direction.DECREASE:
            warnings.append(
                f"{path}.direction: 'decrease' on a {kind.value} metric judges only a drop as a "
                f"regression, so a rise in {kind.value} passes; did you mean 'increase' or 'either'?"
            )
        if m.pair_on is not None and m.pair_ignoring:
            issues.append(
                ConfigIssue(f"{path}.pair_ignoring", "give either pair_on or pair_ignoring, not both")
            )
        if m.group is not None and m.groups is not None:
            issues.append(ConfigIssue(f"{path}.groups", "give either group or groups, not both"))
        groups = tuple(m.groups) if m.groups else (m.group or kind.value,)
        if (percentile := per_step_percentile_warning(path, kind, m.query)) is not None:
            warnings.append(percentile)
        judge_type, params = _judge_params(
            path,
            f"{path}.judge",
            m.judge,
            model.judge,
            {"confidence": m.confidence, "tolerance": m.tolerance},
            registry,
            issues,
            default_type=sequential_default_judge(kind, m.query, m.traffic_query)
            if mode == "sequential"
            else DEFAULT_JUDGE,
        )
        metrics.append(
            MetricConfig(
                name=m.name,
                kind=kind,
                groups=groups,
                direction=direction,
                critical=defaults.critical if m.critical is None else m.critical,
                must_have_data=m.must_have_data,
                muted=m.muted,
                nan_strategy=NanStrategy(m.nan_strategy),
                outliers=Outliers(OutlierStrategy(m.outliers.strategy), m.outliers.factor)
                if m.outliers
                else None,
                judge_type=judge_type,
                judge_params=params,
                query=m.query,
                traffic_query=m.traffic_query,
                pair_on=tuple(m.pair_on) if m.pair_on is not None else None,
                pair_ignoring=tuple(m.pair_ignoring),
            )
        )
        _check_judge(metrics[-1], f"{path}.judge", registry, issues, before)
    _check_groups(model.groups, metrics, "groups", issues, warnings, unscored_is_error=True)
    if issues:
        raise ConfigError(issues, source=origin)
    return CanaryConfig(
        name=model.name,
        description=model.description,
        source=model.source,
        metrics=tuple(metrics),
        group_weights=MappingProxyType(dict(model.groups)),
        thresholds=thresholds,
        templates=MappingProxyType(dict(model.templates)),
        format="native",
        mode=mode,
        mode_stated=mode_stated,
        warnings=tuple(warnings),
        raw=MappingProxyType(dict(raw)),
    )


def _from_kayenta(
    raw: Mapping[str, Any], registry: Registry, origin: str | None, mode: Mode | None
) -> CanaryConfig:
    try:
        model = _KayentaModel.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_issues(exc, _KayentaModel), source=origin) from None
    issues: list[ConfigIssue] = []
    warnings = [f"{path}: {message}" for path, message in _unknown_fields(model, "")]
    mode = mode or model.mode
    judge_type = KAYENTA_JUDGE_NAMES.get(model.judge.name, model.judge.name.removesuffix("-v1.0"))
    try:
        registry.judge_class(judge_type)
    except Exception as exc:
        issues.append(ConfigIssue("judge.name", str(exc)))
    thresholds = Thresholds()
    if model.classifier.scoreThresholds is not None:
        thresholds = _thresholds(model.classifier.scoreThresholds, "classifier.scoreThresholds", issues)
    metrics: list[MetricConfig] = []
    seen: set[str] = set()
    for index, m in enumerate(model.metrics):
        path = f"metrics[{index}]"
        before = len(issues)
        if m.name in seen:
            issues.append(ConfigIssue(f"{path}.name", f"duplicate metric name {m.name!r}"))
        seen.add(m.name)
        canary = m.analysisConfigurations.canary
        sequential = mode == "sequential"
        judge_block: dict[str, Any] = {
            "type": SEQUENTIAL_DEFAULT_JUDGE[MetricKind.CUSTOM] if sequential else judge_type
        }
        if judge_type == DEFAULT_JUDGE and not sequential:
            judge_block["min_effective"] = 0  # Kayenta's judge has no effective-points rule (parity)
        if canary.effectSize is not None and not sequential:
            es = canary.effectSize
            judge_block["effect_size"] = {
                "measure": es.measure,
                "allowed_increase": es.allowedIncrease,
                "allowed_decrease": es.allowedDecrease,
                "critical_increase": es.criticalIncrease,
                "critical_decrease": es.criticalDecrease,
            }
        where = f"{path}.analysisConfigurations.canary"
        judge_name, params = _judge_params(
            where,
            where,
            judge_block,
            None,
            {} if sequential else {"confidence": canary.confidence, "tolerance": canary.tolerance},
            registry,
            issues,
        )
        outliers = canary.outliers
        metrics.append(
            MetricConfig(
                name=m.name,
                kind=MetricKind.CUSTOM,
                groups=tuple(m.groups),
                direction=Direction(canary.direction),
                critical=canary.critical,
                must_have_data=canary.mustHaveData,
                muted=canary.muted,
                nan_strategy=NanStrategy.REPLACE if canary.nanStrategy == "replace" else NanStrategy.REMOVE,
                outliers=Outliers(OutlierStrategy(outliers.strategy), outliers.outlierFactor)
                if outliers
                else None,
                judge_type=judge_name,
                judge_params=params,
                kayenta_query=MappingProxyType(dict(m.query)),
                filter_template=_filter_template(m.query, model.templates, f"{path}.query", issues),
                scope_name=m.scopeName,
            )
        )
        _check_judge(metrics[-1], where, registry, issues, before)
    _check_groups(
        model.classifier.groupWeights,
        metrics,
        "classifier.groupWeights",
        issues,
        warnings,
        unscored_is_error=False,
    )
    if issues:
        raise ConfigError(issues, source=origin)
    return CanaryConfig(
        name=model.name,
        description=model.description,
        metrics=tuple(metrics),
        group_weights=MappingProxyType(dict(model.classifier.groupWeights)),
        thresholds=thresholds,
        templates=MappingProxyType(dict(model.templates)),
        format="kayenta",
        mode=mode,
        warnings=tuple(warnings),
        raw=MappingProxyType(dict(raw)),
    )


def _raw_judge_issues(raw: Mapping[str, Any], registry: Registry) -> list[ConfigIssue]:
    """Check the judge blocks of a config whose outer structure failed, to report everything at once."""
    issues: list[ConfigIssue] = []
    metrics = raw.get("metrics")
    default = raw.get("judge") if isinstance(raw.get("judge"), Mapping) else None
    if not isinstance(metrics, list):
        return issues
    for index, metric in enumerate(metrics):
        if isinstance(metric, Mapping) and isinstance(metric.get("judge"), Mapping):
            path = f"metrics[{index}]"
            _judge_params(path, f"{path}.judge", metric["judge"], default, {}, registry, issues)
    return issues


def _judge_params(
    path: str,
    where: str,
    block: Mapping[str, Any] | None,
    default_block: Mapping[str, Any] | None,
    overrides: Mapping[str, Any],
    registry: Registry,
    issues: list[ConfigIssue],
    *,
    default_type: str = DEFAULT_JUDGE,
) -> tuple[str, dict[str, Any]]:
    """Resolve a metric's judge type and validate its parameters with the judge's own model."""
    block = dict(block or {})
    base = dict(default_block or {})
    judge_type = block.pop("type", None) or base.get("type") or default_type
    if not isinstance(judge_type, str):
        issues.append(ConfigIssue(f"{where}.type", "must be a judge name"))
        return DEFAULT_JUDGE, {}
    try:
        cls = registry.judge_class(judge_type)
    except Exception as exc:
        issues.append(ConfigIssue(f"{where}.type", str(exc)))
        return judge_type, {}
    merged: dict[str, Any] = {}
    if base.get("type", judge_type) == judge_type:
        merged.update({k: v for k, v in base.items() if k != "type"})
    merged.update(block)
    for key, value in overrides.items():
        if value is None:
            continue
        if key in block:
            issues.append(ConfigIssue(f"{path}.{key}", f"also set in {where}.{key}; set it once"))
            continue
        merged[key] = value
    params_model: type[BaseModel] | None = getattr(cls, "params_model", None)
    if params_model is None:
        for key in merged:
            source = path if key in overrides and overrides[key] is not None else where
            issues.append(ConfigIssue(f"{source}.{key}", f"judge {judge_type} takes no parameter {key}"))
        return judge_type, {}
    for key in list(merged):
        if key in overrides and overrides[key] is not None and key not in params_model.model_fields:
            issues.append(ConfigIssue(f"{path}.{key}", f"judge {judge_type} has no parameter {key}"))
            del merged[key]
    try:
        params = params_model.model_validate(merged)
    except ValidationError as exc:
        issues.extend(
            ConfigIssue(f"{where}.{issue.path}" if issue.path else where, issue.message)
            for issue in _issues(exc, params_model)
        )
        return judge_type, {}
    return judge_type, params.model_dump(by_alias=False)


def _filter_template(
    query: Mapping[str, Any], templates: Mapping[str, str], path: str, issues: list[ConfigIssue]
) -> str | None:
    """Resolve a Kayenta query's ``customFilterTemplate`` name to the template's text."""
    name = query.get("customFilterTemplate")
    if not name or query.get("customInlineTemplate"):
        return None
    if not isinstance(name, str) or name not in templates:
        issues.append(
            ConfigIssue(
                f"{path}.customFilterTemplate",
                f"no template {name!r} in templates{did_you_mean(str(name), templates)}",
            )
        )
        return None
    return templates[name]


def _thresholds(model: _ThresholdsModel, path: str, issues: list[ConfigIssue]) -> Thresholds:
    try:
        return Thresholds(model.pass_, model.marginal)
    except ValueError as exc:
        where, message = str(exc).split(": ", 1)
        issues.append(ConfigIssue(where.replace("thresholds", path, 1), message))
        return Thresholds()


def _check_judge(
    metric: MetricConfig, path: str, registry: Registry, issues: list[ConfigIssue], before: int
) -> None:
    """Build the metric's judge once, so that conflicting parameters fail at load time."""
    if len(issues) > before:
        return  # the parameters are already known to be wrong
    try:
        metric.build_judge(registry)
    except (KayentaError, ValueError, TypeError) as exc:
        issues.append(ConfigIssue(path, str(exc)))


def _check_groups(
    weights: Mapping[str, float],
    metrics: Sequence[MetricConfig],
    path: str,
    issues: list[ConfigIssue],
    warnings: list[str],
    *,
    unscored_is_error: bool,
) -> None:
    """Check group weights; a scored metric whose every group weighs 0 would never count.

    Native configs refuse it (``unscored_is_error``); Kayenta configs keep Kayenta's
    semantics and get a warning.
    """
    used = {g for m in metrics for g in m.groups}
    for name, weight in weights.items():
        if not 0 <= weight <= 100:
            issues.append(ConfigIssue(f"{path}.{name}", f"weight {weight:g} is not between 0 and 100"))
        if name not in used:
            warnings.append(f"{path}.{name}: no metric is in group {name!r}{did_you_mean(name, used)}")
    total = sum(weights.values())
    if total > 100 + 1e-9:
        issues.append(ConfigIssue(path, f"weights add up to {total:g}, more than 100"))
    elif used and used <= set(weights) and total < 100 - 1e-9:
        warnings.append(
            f"{path}: weights add up to {total:g} and every group has one, "
            f"so the best possible score is {total:g}"
        )
    scored = {g for m in metrics if not m.muted for g in m.groups}
    for index, metric in enumerate(metrics):
        weightless = [g for g in metric.groups if effective_group_weight(weights, scored, g) <= 0]
        if metric.muted or len(weightless) < len(metric.groups):
            continue
        groups = ", ".join(repr(g) for g in weightless)
        message = (
            f"metric {metric.name!r} is scored but its group weight in {path} is 0 ({groups}), "
            "so it could never change the score; give the group a weight or mute the metric"
        )
        if unscored_is_error:
            issues.append(ConfigIssue(f"metrics[{index}].group", message))
        else:
            warnings.append(f"metrics[{index}]: {message}")


def effective_group_weight(weights: Mapping[str, float], groups: Iterable[str], group: str) -> float:
    """Return a group's weight: its own, or an equal share of what the given weights leave of 100.

    ``groups`` are the scored groups; those without a weight share the rest equally.
    """
    if group in weights:
        return float(weights[group])
    unweighted = [g for g in dict.fromkeys(groups) if g not in weights]
    return (100.0 - sum(weights.values())) / len(unweighted) if unweighted else 0.0


# ---------------------------------------------------------------- error messages


def _issues(exc: ValidationError, root: type[BaseModel]) -> list[ConfigIssue]:
    """Turn pydantic's errors into issues with dotted paths and near-match suggestions."""
    issues = []
    for error in exc.errors():
        loc = error["loc"]
        path = _format_path(loc)
        kind = error["type"]
        if kind == "extra_forbidden":
            known = _known_keys(root, loc[:-1])
            message = f"unknown key{did_you_mean(str(loc[-1]), known)}"
        elif kind == "missing":
            message = "required key is missing"
        elif kind == "literal_error":
            expected = error.get("ctx", {}).get("expected", "")
            message = f"{error['input']!r} is not one of {expected}"
            if isinstance(error["input"], str):
                message += did_you_mean(
                    error["input"], [s.strip(" '") for s in str(expected).replace(" or ", ",").split(",")]
                )
        else:
            message = f"{error['msg'].lower()} (got {error['input']!r})"
        issues.append(ConfigIssue(path, message))
    return issues


def _format_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _known_keys(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """Return the keys the model accepts at ``loc`` (field names and aliases)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        info = _field_by_key(current, part)
        if info is None:
            return []
        current = _model_in(info.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [info.alias or name for name, info in current.model_fields.items()]
    return []


def _field_by_key(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None


def _model_in(annotation: Any) -> Any:
    """Return the pydantic model inside an annotation such as ``list[M] | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple, dict):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _unknown_fields(model: BaseModel, path: str) -> list[tuple[str, str]]:
    """List the unknown keys a lenient (Kayenta) model accepted, recursively."""
    found = []
    known = [info.alias or name for name, info in type(model).model_fields.items()]
    for key in model.model_extra or {}:
        where = f"{path}.{key}" if path else key
        found.append((where, f"unknown field, ignored{did_you_mean(key, known)}"))
    for name in type(model).model_fields:
        value = getattr(model, name)
        where = f"{path}.{name}" if path else name
        if isinstance(value, BaseModel):
            found.extend(_unknown_fields(value, where))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    found.extend(_unknown_fields(item, f"{where}[{index}]"))
    return found
