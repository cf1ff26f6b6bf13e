"""Judge-parameter overrides of a backtest: KEY=VALUE assignments, sweeps, nesting and validation."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from kayenta_py.config.loader import load_config
from kayenta_py.config.model import DEFAULT_JUDGE, CanaryConfig
from kayenta_py.config.registry import Registry, default_registry
from kayenta_py.model.errors import ConfigError, FieldError, KayentaError


def describe_params(params: Mapping[str, Any]) -> str:
    """Return ``key=value, ...`` for a setting, or ``config as is`` for no overrides."""
    if not params:
        return "config as is"
    return ", ".join(f"{key}={_show(value)}" for key, value in params.items())


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse_assignment(text: str, option: str) -> tuple[str, str]:
    """Split ``KEY=VALUE``; a missing ``=`` or key is an error naming the option."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise FieldError(option, f"{text!r} is not KEY=VALUE (e.g. tolerance=0.3)")
    return key, value.strip()


def parse_value(text: str) -> Any:
    """Return a JSON scalar (``0.3``, ``1e-3``, ``true``) as such, anything else as the string."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str | int | float | bool) else text


def nest(params: Mapping[str, Any]) -> dict[str, Any]:
    """Turn dotted keys (``effect_size.allowed_increase``) into nested mappings."""
    nested: dict[str, Any] = {}
    for dotted, value in params.items():
        *parents, leaf = dotted.split(".")
        node = nested
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise KayentaError(f"--set {dotted}: {part} is given a value and sub-keys")
            node = child
        if isinstance(node.get(leaf), dict):
            raise KayentaError(f"--set {dotted}: {leaf} is given a value and sub-keys")
        node[leaf] = value
    return nested


def _merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = _merge(current, value)
        else:
            merged[key] = value
    return merged


def validate_overrides(
    params: Mapping[str, Any], *, judge_type: str = DEFAULT_JUDGE, registry: Registry | None = None
) -> dict[str, Any]:
    """Validate dotted judge-parameter overrides with :func:`load_config`; return them nested.

    A config with one metric judged by ``judge_type`` with these parameters is
    loaded, so every check a config file gets applies: an unknown or misspelled
    key is an error naming it (with the nearest known key), a bad value too.
    """
    nested = nest(params)
    if "type" in nested:
        raise KayentaError("--set type: the judge type is chosen with --judge, not --set")
    probe = {
        "name": "backtest-overrides",
        "metrics": [{"name": "probe", "kind": "custom", "judge": {"type": judge_type, **nested}}],
    }
    try:
        load_config(probe, registry=registry)
    except ConfigError as exc:
        prefix = "metrics[0].judge"
        problems = []
        for issue in exc.issues:
            if issue.path == prefix:
                continue  # the probe's judge as a whole (a missing bound): each metric's is checked later
            key = issue.path.removeprefix(prefix).lstrip(".")
            problems.append(f"--set {key}: {issue.message}")
        if problems:
            raise KayentaError("; ".join(problems)) from None
    return nested


def apply_overrides(
    config: CanaryConfig,
    params: Mapping[str, Any],
    *,
    judge_type: str = DEFAULT_JUDGE,
    registry: Registry | None = None,
) -> CanaryConfig:
    """Return ``config`` with ``params`` (dotted keys) set in every ``judge_type`` metric's judge.

    Raises
    ------
    KayentaError
        An unknown key or bad value (naming it), or no metric of the config uses ``judge_type``.
    """
    if not params:
        return config
    registry = registry or default_registry()
    nested = validate_overrides(params, judge_type=judge_type, registry=registry)
    params_model = registry.judge_class(judge_type).params_model
    metrics = []
    changed = False
    for metric in config.metrics:
        if metric.judge_type != judge_type:
            metrics.append(metric)
            continue
        merged = _merge(metric.judge_params, nested)
        if params_model is not None:
            merged = params_model.model_validate(merged).model_dump(by_alias=False)
        updated = dataclasses.replace(metric, judge_params=MappingProxyType(merged))
        try:
            updated.build_judge(registry)
        except (KayentaError, ValueError, TypeError) as exc:
            raise KayentaError(f"--set: metric {metric.name!r}: {exc}") from None
        metrics.append(updated)
        changed = True
    if not changed:
        raise KayentaError(
            f"--set: no metric of config {config.name!r} is judged by {judge_type} "
            "(choose the judge whose parameters to change with --judge)"
        )
    return dataclasses.replace(config, metrics=tuple(metrics))


def parse_sweep(texts: Sequence[str]) -> list[dict[str, Any]]:
    """Return the grid of settings ``--sweep KEY=V1,V2 ...`` spans (one empty setting without any)."""
    axes: list[tuple[str, list[Any]]] = []
    for text in texts:
        key, values = parse_assignment(text, "--sweep")
        parsed = [parse_value(v.strip()) for v in values.split(",") if v.strip()]
        if not parsed:
            raise KayentaError(f"--sweep {key}: no values (e.g. {key}=0.1,0.25,0.4)")
        if any(key == other for other, _ in axes):
            raise KayentaError(f"--sweep {key}: given twice; list every value in one --sweep")
        axes.append((key, parsed))
    return [
        dict(zip([k for k, _ in axes], combo, strict=True))
        for combo in itertools.product(*(values for _, values in axes))
    ]


