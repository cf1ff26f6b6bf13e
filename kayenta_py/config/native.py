"""The native canary config format, loaded strictly, and the checks both formats share (judges, groups)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ValidationError

from kayenta_py.config.messages import _issues
from kayenta_py.config.model import (
    DEFAULT_JUDGE,
    KIND_DEFAULTS,
    CanaryConfig,
    MetricConfig,
    MetricKind,
    Mode,
    effective_group_weight,
    per_step_percentile_warning,
    sequential_default_judge,
)
from kayenta_py.config.registry import Registry, did_you_mean
from kayenta_py.config.schemas import _NativeModel, _ThresholdsModel
from kayenta_py.model.errors import ConfigError, ConfigIssue, KayentaError, ThresholdsError
from kayenta_py.model.preprocessing import NanStrategy, Outliers, OutlierStrategy
from kayenta_py.model.types import Direction, Thresholds


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
    except ThresholdsError as exc:
        issues.append(ConfigIssue(exc.field.replace("thresholds", path, 1), exc.problem))
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
