"""Kayenta's canary config format, loaded as Kayenta reads it."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from kayenta_py.config.messages import _issues, _unknown_fields
from kayenta_py.config.model import (
    DEFAULT_JUDGE,
    KAYENTA_JUDGE_NAMES,
    SEQUENTIAL_DEFAULT_JUDGE,
    CanaryConfig,
    MetricConfig,
    MetricKind,
    Mode,
)
from kayenta_py.config.native import _check_groups, _check_judge, _filter_template, _judge_params, _thresholds
from kayenta_py.config.registry import Registry
from kayenta_py.config.schemas import _KayentaModel
from kayenta_py.model.errors import ConfigError, ConfigIssue
from kayenta_py.model.preprocessing import NanStrategy, Outliers, OutlierStrategy
from kayenta_py.model.types import Direction, Thresholds


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
