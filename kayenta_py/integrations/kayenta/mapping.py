"""Kayenta executions mapped to native analyses: scopes, configs (stored or ad hoc), sources and accounts."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fastapi import HTTPException

from kayenta_py.config.loader import load_config
from kayenta_py.config.registry import did_you_mean
from kayenta_py.integrations.kayenta.fields import (
    _EXECUTION_FIELDS,
    _SCOPE_FIELDS,
    _STANDALONE_FIELDS,
    _STANDALONE_SCOPE_FIELDS,
    _bad,
    _limited,
    _location,
    _minutes,
    _mode,
    _params,
    _request_thresholds,
    _step,
    _text,
    _time,
    _unknown,
)
from kayenta_py.model.limits import check_duration, check_time
from kayenta_py.model.spec import AnalysisSpec, DoorRecord
from kayenta_py.service.analyses import NO_SOURCE, Service
from kayenta_py.service.store.records import ConfigVersion


def _start_execution(
    service: Service,
    config: dict[str, Any],
    config_id: str | None,
    execution: Mapping[str, Any],
    query: Mapping[str, str],
    warnings: list[str] | None = None,
    *,
    version: int | None = None,
) -> dict[str, str]:
    warnings = list(warnings or [])
    warnings += _unknown(execution, _EXECUTION_FIELDS, "executionRequest")
    parsed = load_config(config, registry=service.registry, limits=service.limits)
    warnings += list(parsed.warnings)
    scopes = execution.get("scopes")
    if not isinstance(scopes, Mapping) or not scopes:
        raise _bad("scopes", "required: {<scopeName>: {controlScope, experimentScope}}")
    name, pair = _scope_pair(scopes, {m.scope_name for m in parsed.metrics})
    control, experiment = pair.get("controlScope"), pair.get("experimentScope")
    if not isinstance(control, Mapping) or not isinstance(experiment, Mapping):
        raise _bad(f"scopes.{name}", "needs controlScope and experimentScope objects")
    for side, scope in (("controlScope", control), ("experimentScope", experiment)):
        warnings += _unknown(scope, _SCOPE_FIELDS, f"scopes.{name}.{side}")
    # Each scope has its own window (a blue-green switch: the control before it); the canary's is the
    # experiment's, the control's must be as long (points pair by their time since each window's start).
    control_window = (
        _time(control.get("start"), f"scopes.{name}.controlScope.start"),
        _time(control.get("end"), f"scopes.{name}.controlScope.end"),
    )
    start = _time(experiment.get("start"), f"scopes.{name}.experimentScope.start")
    end = _time(experiment.get("end"), f"scopes.{name}.experimentScope.end")
    for side, (first, last) in (("controlScope", control_window), ("experimentScope", (start, end))):
        if last <= first:
            raise _bad(f"scopes.{name}.{side}.end", "must come after start")
        _limited(check_duration, last - first, f"scopes.{name}.{side}.end", service.limits.max_lifetime_s)
    own_window = control_window != (start, end)
    step = _step(control.get("step", 60), f"scopes.{name}.controlScope.step", service.limits)
    limits, where = service.limits, f"scopes.{name}"
    source, more = _source(service, query.get("metricsAccountName"))
    warnings += more
    thresholds = _request_thresholds(execution, parsed.thresholds)
    spec = AnalysisSpec(
        **_config_arguments(config, config_id, version),
        baseline_scope=_text(control.get("scope"), f"{where}.controlScope.scope", limits.max_scope_chars),
        canary_scope=_text(experiment.get("scope"), f"{where}.experimentScope.scope", limits.max_scope_chars),
        scope_params=_params(control.get("extendedScopeParams"), f"{where}.controlScope", limits),
        location=_location(control, f"{where}.controlScope", limits),
        source=source,
        start=start,
        end=end,
        step=step,
        thresholds=thresholds.to_dict(),
        door="kayenta",
        mode=_mode(execution),
        canary_location=_location(experiment, f"{where}.experimentScope", limits),
        canary_scope_params=_params(
            experiment.get("extendedScopeParams"), f"{where}.experimentScope", limits
        ),
        baseline_start=control_window[0] if own_window else None,
        baseline_end=control_window[1] if own_window else None,
        baseline_fields={
            "baseline_offset": f"{where}.controlScope",
            "baseline_start": f"{where}.controlScope.start",
            "baseline_end": f"{where}.controlScope.end",
        },
        record=DoorRecord(
            request=dict(execution), query=dict(query), config_id=config_id, warnings=tuple(warnings)
        ),
    )
    return {"canaryExecutionId": service.create_analysis(spec).id}


def _start_standalone(
    service: Service,
    config: dict[str, Any],
    config_id: str | None,
    request: Mapping[str, Any],
    query: Mapping[str, str],
    warnings: list[str] | None = None,
    *,
    version: int | None = None,
) -> dict[str, str]:
    warnings = list(warnings or []) + _unknown(request, _STANDALONE_FIELDS, "executionRequest")
    parsed = load_config(config, registry=service.registry, limits=service.limits)
    limits = service.limits
    scopes = request.get("scopes")
    if not isinstance(scopes, list) or not scopes or not isinstance(scopes[0], Mapping):
        raise _bad("scopes", "required: a list of {controlScope, experimentScope, ...}")
    if len(scopes) > 1:
        warnings.append(f"scopes: {len(scopes)} given; kayenta-py analyzes the first only")
    scope = scopes[0]
    warnings += _unknown(scope, _STANDALONE_SCOPE_FIELDS, "scopes[0]")
    warmup = _minutes(request.get("beginAfterMins", 0), "beginAfterMins", limits, positive=False)
    lookback = _minutes(request.get("lookbackMins", 0), "lookbackMins", limits, positive=False)
    start_field = "scopes[0].startTimeIso" if scope.get("startTimeIso") else "scopes[0].startTimeMillis"
    start = _time(scope.get("startTimeIso") or scope.get("startTimeMillis"), start_field, True)
    _limited(check_time, start, start_field, ahead=limits.max_start_ahead_s)
    # As Kayenta's calculateLifetime: an end time, when given, wins over lifetimeDurationMins.
    end_value = scope.get("endTimeIso") or scope.get("endTimeMillis")
    if end_value:
        end_field = "scopes[0].endTimeIso" if scope.get("endTimeIso") else "scopes[0].endTimeMillis"
        end = _time(end_value, end_field)
        if request.get("lifetimeDurationMins") is not None:
            warnings.append("lifetimeDurationMins: ignored, scopes[0].endTimeIso gives the lifetime")
        lifetime = end - start - warmup
        if lifetime <= 0:
            raise _bad(end_field, "must come after startTimeIso (and beginAfterMins)")
        _limited(check_duration, lifetime, end_field, limits.max_lifetime_s)
    else:
        lifetime = _minutes(request.get("lifetimeDurationMins"), "lifetimeDurationMins", limits)
    interval = _minutes(request.get("analysisIntervalMins", lifetime / 60), "analysisIntervalMins", limits)
    # Kayenta's controlOffsetInMinutes is subtracted from the control's start and end: an earlier baseline.
    offset_field = "scopes[0].controlOffsetInMinutes"
    control_offset = _signed_minutes(scope.get("controlOffsetInMinutes"), offset_field)
    source, more = _source(service, query.get("metricsAccountName"))
    warnings += more
    thresholds = _request_thresholds(request, parsed.thresholds)
    spec = AnalysisSpec(
        **_config_arguments(config, config_id, version),
        baseline_scope=_text(scope.get("controlScope"), "scopes[0].controlScope", limits.max_scope_chars),
        canary_scope=_text(scope.get("experimentScope"), "scopes[0].experimentScope", limits.max_scope_chars),
        scope_params=_params(scope.get("extendedScopeParams"), "scopes[0]", limits),
        location=_text(scope.get("controlLocation"), "scopes[0].controlLocation", limits.max_name_chars),
        source=source,
        start=start,
        lifetime=lifetime,
        interval=interval,
        warmup=warmup,
        lookback=lookback or None,
        step=_step(scope.get("step", 60), "scopes[0].step", limits),
        thresholds=thresholds.to_dict(),
        door="kayenta-standalone",
        mode=_mode(request),
        baseline_offset=-control_offset if control_offset else None,
        baseline_fields={"baseline_offset": offset_field},
        canary_location=_text(
            scope.get("experimentLocation", scope.get("controlLocation")),
            "scopes[0].experimentLocation",
            limits.max_name_chars,
        ),
        record=DoorRecord(
            request=dict(request), query=dict(query), config_id=config_id, warnings=tuple(warnings)
        ),
    )
    return {"canaryAnalysisExecutionId": service.create_analysis(spec).id}


def _signed_minutes(value: Any, field: str) -> float:
    """Return a signed number of minutes (Kayenta sends a number or a numeric string) in seconds."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float | str) or len(str(value)) > 32:
        raise _bad(field, f"{str(value)[:40]!r} is not a number of minutes")
    try:
        minutes = float(value)
    except ValueError:
        raise _bad(field, f"{value!r} is not a number of minutes") from None
    if not math.isfinite(minutes):
        raise _bad(field, f"{value!r} is not a finite number of minutes")
    return minutes * 60.0


def _config_arguments(config: dict[str, Any], config_id: str | None, version: int | None) -> dict[str, Any]:
    """Name a stored config by id and the version read at the request (it stays pinned), else inline."""
    if version is not None and config_id is not None:
        return {"config": None, "config_name": config_id, "config_version": version}
    return {"config": config, "config_name": None}


def _stored_config(service: Service, config_id: str) -> ConfigVersion:
    """Return a stored canary config, or answer 404."""
    record = service.store.get_config(config_id)
    if record is None:
        raise HTTPException(404, f"no canary config {config_id!r}")
    return record


def _adhoc(body: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Unpack an ad hoc request ``{canaryConfig, executionRequest}``; other fields become warnings."""
    config, execution = body.get("canaryConfig"), body.get("executionRequest")
    if not isinstance(config, dict) or not isinstance(execution, dict):
        raise _bad("body", "an ad hoc request needs canaryConfig and executionRequest objects")
    wrapper = ("canaryConfig", "executionRequest")
    return config, execution, [f"{k}: unknown field, ignored" for k in body if k not in wrapper]


def _scope_pair(scopes: Mapping[str, Any], used: set[str]) -> tuple[str, Mapping[str, Any]]:
    """Pick the scope set the config's metrics use: kayenta-py runs one scope pair per analysis."""
    if len(used) > 1:
        raise _bad(
            "scopes",
            f"the config's metrics use several scopes ({', '.join(sorted(used))}); "
            "kayenta-py compares one baseline/canary pair per analysis",
        )
    wanted = next(iter(used), "default")
    name = wanted if wanted in scopes else next(iter(scopes))
    if name != wanted:
        raise _bad("scopes", f"no scope {wanted!r} (the metrics' scopeName){did_you_mean(wanted, scopes)}")
    pair = scopes[name]
    if not isinstance(pair, Mapping):
        raise _bad(f"scopes.{name}", "must be {controlScope, experimentScope}")
    return name, pair


def _source(service: Service, account: str | None) -> tuple[str | None, list[str]]:
    """Map Kayenta's metrics account onto a source; an unknown account uses the default, with a warning.

    No account: None, so the service picks the config's source or the default one (or refuses).
    """
    names = service.source_names()
    if account in names:
        return str(account), []
    if account is None:
        return None, []
    default = service.default_source()
    if default is None:
        raise HTTPException(
            422,
            [
                {
                    "loc": ["query", "metricsAccountName"],
                    "msg": f"metricsAccountName: {account!r} is not a kayenta-py source "
                    f"(known: {', '.join(names)}), and {NO_SOURCE}",
                }
            ],
        )
    return default, [f"metricsAccountName {account!r} is not a kayenta-py source; using {default!r}"]


def _source_account(service: Service, name: str) -> dict[str, Any]:
    account: dict[str, Any] = {"name": name, "type": name, "supportedTypes": ["METRICS_STORE"]}
    endpoint = service.source_endpoint(name)
    if endpoint:
        account["endpoint"] = {"baseUrl": endpoint}
    return account


