"""Kayenta's HTTP API, so that Argo Rollouts' kayenta provider, Spinnaker's canary stage and
Kayenta's RemoteJudge work against kayenta-py by changing one address.

Field names and semantics follow Kayenta's controllers: ``/canaryConfig``, ``/canary``,
``/standalone_canary_analysis``, ``/judge``, ``/judges``, ``/credentials``,
``/metricsServices``. Like Kayenta, unknown request fields are accepted; unlike Kayenta, each
is reported in the execution's ``warnings``.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, Depends, Header, HTTPException, Request, Response

from kayenta_py.config.loader import load_config
from kayenta_py.config.model import CanaryConfig
from kayenta_py.config.registry import did_you_mean
from kayenta_py.engine.pipeline import judge_pairs, pair_metric_sets
from kayenta_py.model.errors import KayentaError, StoreError, ThresholdsError
from kayenta_py.model.limits import Limits, check_duration, check_text, check_time, json_issue
from kayenta_py.model.redact import redact_json
from kayenta_py.model.types import MetricSet, MetricSetPair, Thresholds, rfc3339
from kayenta_py.service.analyses import NO_SOURCE, Service
from kayenta_py.service.store.errors import OriginError, WriteConflictError
from kayenta_py.service.store.tables import (
    CANCELLED,
    COMPLETED,
    FAILED,
    KAYENTA,
    AnalysisRecord,
    ConfigVersionRecord,
)

CONFIG_ACCOUNT = "kayenta-py"
CONFIG_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")  # a config id is a path segment
KAYENTA_JUDGE = "NetflixACAJudge-v1.0"

JsonBody = Annotated[dict[str, Any], Body()]
Authorization = Annotated[str | None, Header()]
_SCOPE_FIELDS = ("scope", "location", "region", "start", "end", "step", "extendedScopeParams", "type")
_EXECUTION_FIELDS = ("scopes", "thresholds", "scoreThresholds", "siteLocal", "mode")
_STANDALONE_SCOPE_FIELDS = (
    "scopeName",
    "controlScope",
    "controlLocation",
    "experimentScope",
    "experimentLocation",
    "startTimeIso",
    "endTimeIso",
    "startTimeMillis",
    "endTimeMillis",
    "step",
    "extendedScopeParams",
)
_STANDALONE_FIELDS = (
    "scopes",
    "thresholds",
    "scoreThresholds",
    "lifetimeDurationMins",
    "beginAfterMins",
    "lookbackMins",
    "analysisIntervalMins",
    "siteLocal",
    "mode",
)


def kayenta_router(
    service: Service, guard: Callable[..., None], native_write: Callable[[str, str | None], None]
) -> APIRouter:
    """Return the router with Kayenta's endpoints; ``guard`` authorizes each call.

    These endpoints may be open to clients without a token. Their writes stay among the configs
    created through them (origin ``kayenta``): changing or deleting a config created through the
    native API also passes ``native_write(config_id, authorization)``, which demands a write token.
    """
    router = APIRouter(tags=["kayenta"], dependencies=[Depends(guard)])

    def writable(config_id: str, authorization: str | None) -> str | None:
        """Return the origin a write to ``config_id`` is limited to (None: any, with a write token)."""
        origin = service.store.config_origin(config_id)
        if origin is None or origin == KAYENTA:
            return KAYENTA
        native_write(config_id, authorization)
        return None

    def refused(config_id: str, authorization: str | None) -> HTTPException:
        # The config changed origin between the check and the write: check again, now it is native.
        native_write(config_id, authorization)
        return HTTPException(409, f"canary config {config_id!r} changed meanwhile; try again")

    # ------------------------------------------------------------ canary configs

    @router.get("/canaryConfig")
    def list_canary_configs(
        application: str | None = None,
        configurationAccountName: str | None = None,  # noqa: N803
    ) -> list[dict[str, Any]]:
        """Kayenta's canary config list, optionally for one application."""
        out = []
        for record in service.store.list_configs():
            applications = record.body.get("applications") or []
            if application and application not in applications:
                continue
            out.append(
                {
                    "id": record.name,
                    "name": record.body.get("name", record.name),
                    "updatedTimestamp": int(record.created_ts * 1000),
                    "updatedTimestampIso": rfc3339(record.created_ts),
                    "applications": applications,
                }
            )
        return out

    @router.post("/canaryConfig")
    def create_canary_config(
        body: JsonBody,
        configurationAccountName: str | None = None,  # noqa: N803
        authorization: Authorization = None,
    ) -> dict[str, str]:
        """Store a canary config; answer its id."""
        document = {k: v for k, v in body.items() if k != "id"}
        load_config(document, registry=service.registry, limits=service.limits)
        config_id = str(body.get("id") or uuid.uuid4().hex)
        if len(config_id) > service.limits.max_name_chars or not CONFIG_ID.match(config_id):
            raise _bad(
                "id",
                f"{config_id[:100]!r} is not a config id: 1 to {service.limits.max_name_chars} letters, "
                "digits, '.', '_', ':' or '-', starting with a letter or digit",
            )
        only = writable(config_id, authorization)
        try:
            service.store.create_config(config_id, document, origin=KAYENTA, only_origin=only)
        except OriginError:
            raise refused(config_id, authorization) from None
        except StoreError as exc:
            raise HTTPException(409, [{"loc": ["body", "id"], "msg": f"id: {exc}"}]) from None
        return {"canaryConfigId": config_id}

    @router.get("/canaryConfig/{config_id}")
    def get_canary_config(config_id: str, configurationAccountName: str | None = None) -> dict[str, Any]:  # noqa: N803
        """A stored canary config, with its id."""
        return {**_stored_config(service, config_id).body, "id": config_id}

    @router.put("/canaryConfig/{config_id}")
    def update_canary_config(
        config_id: str,
        body: JsonBody,
        configurationAccountName: str | None = None,  # noqa: N803
        authorization: Authorization = None,
    ) -> dict[str, str]:
        """Replace a canary config (its earlier versions stay in the history)."""
        document = {k: v for k, v in body.items() if k != "id"}
        load_config(document, registry=service.registry, limits=service.limits)
        _stored_config(service, config_id)
        only = writable(config_id, authorization)
        try:
            service.store.update_config(config_id, document, only_origin=only)
        except OriginError:
            raise refused(config_id, authorization) from None
        except WriteConflictError as exc:
            raise HTTPException(409, str(exc)) from None
        except StoreError:  # deleted meanwhile
            raise HTTPException(404, f"no canary config {config_id!r}") from None
        return {"canaryConfigId": config_id}

    @router.delete("/canaryConfig/{config_id}", status_code=204)
    def delete_canary_config(
        config_id: str,
        configurationAccountName: str | None = None,  # noqa: N803
        authorization: Authorization = None,
    ) -> Response:
        """Delete a canary config."""
        _stored_config(service, config_id)
        only = writable(config_id, authorization)
        try:
            service.store.delete_config(config_id, only_origin=only)
        except OriginError:
            raise refused(config_id, authorization) from None
        except StoreError:  # deleted meanwhile
            raise HTTPException(404, f"no canary config {config_id!r}") from None
        return Response(status_code=204)

    # ------------------------------------------------------------ canary executions

    @router.post("/canary/{config_id}")
    def start_canary(
        config_id: str,
        request: Request,
        body: JsonBody,
    ) -> dict[str, str]:
        """Start a canary execution with a stored config (Argo Rollouts, Spinnaker).

        The execution keeps the version stored now, whatever is stored later.
        """
        _check_body(body, service.limits)
        record = _stored_config(service, config_id)
        return _start_execution(
            service, dict(record.body), config_id, body, dict(request.query_params), version=record.version
        )

    @router.post("/canary")
    def start_adhoc_canary(request: Request, body: JsonBody) -> dict[str, str]:
        """Start a canary execution with an inline config: ``{canaryConfig, executionRequest}``."""
        _check_body(body, service.limits)
        config, execution, warnings = _adhoc(body)
        return _start_execution(service, config, None, execution, dict(request.query_params), warnings)

    @router.get("/canary/{execution_id}")
    def canary_status(execution_id: str, storageAccountName: str | None = None) -> dict[str, Any]:  # noqa: N803
        """Kayenta's CanaryExecutionStatusResponse."""
        record = service.store.get_analysis(execution_id)
        if record is None or record.kind != "kayenta":
            raise HTTPException(404, f"no canary execution {execution_id!r}")
        return execution_status(record)

    # ------------------------------------------------------------ standalone canary analysis

    @router.post("/standalone_canary_analysis/{config_id}")
    def start_standalone(config_id: str, request: Request, body: JsonBody) -> dict[str, str]:
        """Start a standalone canary analysis (several intervals) with a stored config, as stored now."""
        _check_body(body, service.limits)
        record = _stored_config(service, config_id)
        return _start_standalone(
            service, dict(record.body), config_id, body, dict(request.query_params), version=record.version
        )

    @router.post("/standalone_canary_analysis")
    def start_adhoc_standalone(request: Request, body: JsonBody) -> dict[str, str]:
        """Start a standalone canary analysis with an inline config."""
        _check_body(body, service.limits)
        config, execution, warnings = _adhoc(body)
        return _start_standalone(service, config, None, execution, dict(request.query_params), warnings)

    @router.get("/standalone_canary_analysis/{execution_id}")
    def standalone_status(execution_id: str) -> dict[str, Any]:
        """Kayenta's CanaryAnalysisExecutionStatusResponse."""
        record = service.store.get_analysis(execution_id)
        if record is None or record.kind != "kayenta-standalone":
            raise HTTPException(404, f"no canary analysis execution {execution_id!r}")
        return standalone_document(record)

    # ------------------------------------------------------------ judging and accounts

    @router.post("/judge")
    def remote_judge(body: JsonBody) -> dict[str, Any]:
        """Kayenta's RemoteJudge contract: ``{canaryConfig, scoreThresholds, metricSetPairList}``."""
        fields = ("canaryConfig", "scoreThresholds", "metricSetPairList")
        for key in body:
            # A misspelt field (scoreThreshold) must not be ignored; other extras are, as in Kayenta.
            near = did_you_mean(str(key), fields) if key not in fields else ""
            if near:
                raise _bad(str(key), f"unknown field{near}")
        config_body = body.get("canaryConfig")
        pairs_body = body.get("metricSetPairList")
        if not isinstance(config_body, dict):
            raise _bad("canaryConfig", "required: the canary config to judge with")
        if not isinstance(pairs_body, list):
            raise _bad("metricSetPairList", "required: a list of metric set pairs")
        config = load_config(config_body, registry=service.registry)
        thresholds = _thresholds(body.get("scoreThresholds"), config.thresholds, "scoreThresholds")
        pairs = [_pair(p, i) for i, p in enumerate(pairs_body)]
        known = {m.name for m in config.metrics}
        for pair in pairs:
            if pair.name not in known:
                raise _bad(
                    "metricSetPairList",
                    f"metric {pair.name!r} is not in the canary config{did_you_mean(pair.name, known)}",
                )
        pairs = _repaired(config, pairs)
        result = judge_pairs(config, pairs, thresholds=thresholds, registry=service.registry)
        return result.to_kayenta()

    @router.get("/judges")
    def judges() -> list[dict[str, Any]]:
        """The judges a canary config may name."""
        names = [KAYENTA_JUDGE] + [f"{n}-v1.0" for n in service.registry.judge_names()]
        return [{"name": name, "visible": True} for name in dict.fromkeys(names)]

    @router.get("/credentials")
    def credentials() -> list[dict[str, Any]]:
        """The configured accounts: metrics sources, and the store for configs and results."""
        accounts = [_source_account(service, name) for name in service.source_names()]
        accounts.append(
            {
                "name": CONFIG_ACCOUNT,
                "type": "kayenta-py",
                "supportedTypes": ["CONFIGURATION_STORE", "OBJECT_STORE"],
            }
        )
        return list(redact_json(accounts))  # a source URL's credentials are masked

    @router.get("/metricsServices")
    def metrics_services() -> list[dict[str, Any]]:
        """The metrics services, as Kayenta lists them (a URL's credentials masked)."""
        return list(redact_json([_source_account(service, name) for name in service.source_names()]))

    return router


# ---------------------------------------------------------------- executions


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
    start = _time(control.get("start"), f"scopes.{name}.controlScope.start")
    end = _time(control.get("end"), f"scopes.{name}.controlScope.end")
    experiment_window = (
        _time(experiment.get("start"), f"scopes.{name}.experimentScope.start"),
        _time(experiment.get("end"), f"scopes.{name}.experimentScope.end"),
    )
    if end <= start:
        raise _bad(f"scopes.{name}.controlScope.end", "must come after start")
    _limited(check_duration, end - start, f"scopes.{name}.controlScope.end", service.limits.max_lifetime_s)
    if experiment_window != (start, end):
        raise _bad(
            f"scopes.{name}.experimentScope",
            "start and end must equal the controlScope's "
            "(kayenta-py compares both scopes over the same window)",
        )
    step = _step(control.get("step", 60), f"scopes.{name}.controlScope.step", service.limits)
    limits, where = service.limits, f"scopes.{name}"
    source, more = _source(service, query.get("metricsAccountName"))
    warnings += more
    thresholds = _request_thresholds(execution, parsed.thresholds)
    record = service.create_analysis(
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
        kind="kayenta",
        mode=_mode(execution),
        extra={
            "canary_location": _location(experiment, f"{where}.experimentScope", limits),
            "canary_scope_params": _params(
                experiment.get("extendedScopeParams"), f"{where}.experimentScope", limits
            ),
            "request": dict(execution),
            "query": dict(query),
            "config_id": config_id,
            "warnings": warnings,
        },
    )
    return {"canaryExecutionId": record.id}


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
    source, more = _source(service, query.get("metricsAccountName"))
    warnings += more
    thresholds = _request_thresholds(request, parsed.thresholds)
    record = service.create_analysis(
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
        kind="kayenta-standalone",
        mode=_mode(request),
        extra={
            "canary_location": _text(
                scope.get("experimentLocation", scope.get("controlLocation")),
                "scopes[0].experimentLocation",
                limits.max_name_chars,
            ),
            "request": dict(request),
            "query": dict(query),
            "config_id": config_id,
            "warnings": warnings,
        },
    )
    return {"canaryAnalysisExecutionId": record.id}


def _config_arguments(config: dict[str, Any], config_id: str | None, version: int | None) -> dict[str, Any]:
    """Name a stored config by id and the version read at the request (it stays pinned), else inline."""
    if version is not None and config_id is not None:
        return {"config": None, "config_name": config_id, "config_version": version}
    return {"config": config, "config_name": None}


def execution_status(record: AnalysisRecord) -> dict[str, Any]:
    """Return Kayenta's CanaryExecutionStatusResponse for an analysis."""
    extra, query = record.extra, record.extra.get("query", {})
    end_ts = record.start_ts + record.warmup_s + record.lifetime_s
    last = record.intervals[-1] if record.intervals else None
    result = None
    if record.status == COMPLETED and last is not None:
        result = {
            "judgeResult": last.result.get("kayenta"),
            "canaryDuration": _duration(end_ts - record.start_ts),
            "metricSetPairListId": record.id,
        }
    return {
        "application": query.get("application"),
        "parentPipelineExecutionId": query.get("parentPipelineExecutionId"),
        "pipelineId": record.id,
        "canaryConfigId": extra.get("config_id"),
        "complete": record.complete,
        "status": _status(record),
        "exception": _exception(record),
        "result": result,
        "config": record.config_body,
        "canaryExecutionRequest": extra.get("request"),
        "metricSetPairListId": record.id if last is not None else None,
        "buildTimeMillis": int(record.created_ts * 1000),
        "buildTimeIso": rfc3339(record.created_ts),
        "startTimeMillis": int(record.start_ts * 1000),
        "startTimeIso": rfc3339(record.start_ts),
        "endTimeMillis": int(end_ts * 1000),
        "endTimeIso": rfc3339(end_ts),
        "storageAccountName": query.get("storageAccountName"),
        "configurationAccountName": query.get("configurationAccountName"),
        "metricsAccountName": query.get("metricsAccountName"),
        "warnings": extra.get("warnings", []),
    }


def standalone_document(record: AnalysisRecord) -> dict[str, Any]:
    """Return Kayenta's CanaryAnalysisExecutionStatusResponse for a standalone analysis."""
    extra, query = record.extra, record.extra.get("query", {})
    status = _status(record)
    executions = [
        {
            "executionId": f"{record.id}-{interval.index}",
            "executionStatus": "SUCCEEDED",
            "result": {"judgeResult": interval.result.get("kayenta")},
            "warnings": [],
        }
        for interval in record.intervals
    ]
    result = None
    if record.complete:
        passed = record.status == COMPLETED and record.verdict == "pass"
        result = {
            "didPassThresholds": passed,
            "hasWarnings": bool(extra.get("warnings")),
            "canaryScoreMessage": record.reason,
            "canaryScores": [i.score if i.score is not None else 0.0 for i in record.intervals],
            "canaryExecutionResults": executions,
            "buildTimeIso": rfc3339(record.created_ts),
            "startTimeIso": rfc3339(record.start_ts),
            "endTimeIso": rfc3339(record.completed_ts),
        }
    return {
        "application": query.get("application"),
        "user": query.get("user"),
        "parentPipelineExecutionId": query.get("parentPipelineExecutionId"),
        "pipelineId": record.id,
        "complete": record.complete,
        "executionStatus": status.upper(),
        "status": status,
        "exception": _exception(record),
        "canaryAnalysisExecutionResult": result,
        "canaryExecutionResults": executions,
        "canaryAnalysisExecutionRequest": extra.get("request"),
        "canaryConfig": record.config_body,
        "canaryConfigId": extra.get("config_id"),
        "metricsAccountName": query.get("metricsAccountName"),
        "storageAccountName": query.get("storageAccountName"),
        "buildTimeIso": rfc3339(record.created_ts),
        "startTimeIso": rfc3339(record.start_ts),
        "endTimeIso": rfc3339(record.completed_ts),
        "warnings": extra.get("warnings", []),
    }


# ---------------------------------------------------------------- helpers


def _mode(request: Mapping[str, Any]) -> str | None:
    """kayenta-py's extension: ``"mode": "sequential"`` in a request picks the sequential judges."""
    mode = request.get("mode")
    if mode is not None and mode not in ("fixed", "sequential"):
        raise _bad("mode", f"{mode!r} is not 'fixed' or 'sequential'")
    return None if mode is None else str(mode)


def _stored_config(service: Service, config_id: str) -> ConfigVersionRecord:
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


def _status(record: AnalysisRecord) -> str:
    return {COMPLETED: "succeeded", FAILED: "terminal", CANCELLED: "canceled"}.get(record.status, "running")


def _exception(record: AnalysisRecord) -> dict[str, Any] | None:
    if record.status != FAILED:
        return None
    message = record.error or record.reason
    return {"message": message, "details": {"error": message, "errors": [message]}}


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


def _unknown(document: Mapping[str, Any], known: tuple[str, ...], path: str) -> list[str]:
    return [
        f"{path}.{key}: unknown field, ignored{did_you_mean(str(key), known)}"
        for key in document
        if key not in known
    ]


def _location(scope: Mapping[str, Any], where: str, limits: Limits) -> str:
    # Argo Rollouts' kayenta provider sends the location as "region".
    key = "location" if scope.get("location") else "region"
    return _text(scope.get(key), f"{where}.{key}", limits.max_name_chars)


def _params(value: Any, where: str, limits: Limits) -> dict[str, str]:
    field = f"{where}.extendedScopeParams"
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _bad(field, "must be an object of strings")
    params = {}
    for key, item in value.items():
        if isinstance(item, Mapping | list) or item is None:
            raise _bad(f"{field}.{key}", f"{_short(item)} is not a string")
        _limited(check_text, key, field, limits.max_name_chars)
        params[key] = _limited(check_text, str(item), f"{field}.{key}", limits.max_scope_chars)
    return params


def _text(value: Any, field: str, maximum: int) -> str:
    """Return a string field (absent: empty) if short and free of control characters."""
    if value is None:
        return ""
    if isinstance(value, Mapping | list | bool):
        raise _bad(field, f"{_short(value)} is not a string")
    return str(_limited(check_text, str(value), field, maximum))


def _step(value: Any, field: str, limits: Limits) -> float:
    return float(_limited(check_duration, _number(value, field), field, limits.max_step_s))


def _minutes(value: Any, field: str, limits: Limits, *, positive: bool = True) -> float:
    """Return a ``*Mins`` field in seconds, finite and at most ``max_lifetime``."""
    seconds = _number(value, field) * 60
    return float(_limited(check_duration, seconds, field, limits.max_lifetime_s, positive=positive))


def _limited(check: Callable[..., Any], value: Any, field: str, *args: Any, **kwargs: Any) -> Any:
    """Run a check of :mod:`kayenta_py.model.limits`, answering its error as a 422 naming ``field``."""
    try:
        return check(value, field, *args, **kwargs)
    except KayentaError as exc:
        raise _bad(field, str(exc).removeprefix(f"{field}: ")) from None


def _check_body(body: Mapping[str, Any], limits: Limits) -> None:
    """Refuse a request body that could not be stored as JSON (it is kept with the execution)."""
    issue = json_issue(body, limits)
    if issue is not None:
        raise _bad(issue.path or "body", issue.message)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 100 else text[:99] + "…"


def _time(value: Any, field: str, optional: bool = False) -> float:
    if value is None or value == "":
        if optional:
            return datetime.now(UTC).timestamp()
        raise _bad(field, "required: an RFC 3339 time")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(_limited(check_time, float(value) / 1000.0, field))  # Kayenta's *Millis fields
    if not isinstance(value, str) or len(value) > 64:
        raise _bad(field, f"{_short(value)} is not an RFC 3339 time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(field, f"{_short(value)} is not an RFC 3339 time") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return float(_limited(check_time, moment.timestamp(), field))


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or (isinstance(value, str) and len(value) > 64):
        raise _bad(field, f"{_short(value)} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _bad(field, f"{value!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise _bad(field, f"{value!r} must be a non-negative number")
    return number


def _request_thresholds(request: Mapping[str, Any], default: Thresholds) -> Thresholds:
    """Return an execution request's ``thresholds`` (Kayenta's name) or ``scoreThresholds`` (Orca's)."""
    given = [key for key in ("thresholds", "scoreThresholds") if request.get(key) is not None]
    if len(given) == 2 and request["thresholds"] != request["scoreThresholds"]:
        raise _bad("scoreThresholds", "differs from thresholds; give one of them")
    return _thresholds(request.get(given[0]) if given else None, default, given[0] if given else "thresholds")


def _thresholds(value: Any, default: Thresholds, field: str) -> Thresholds:
    """Return thresholds from ``{pass, marginal}`` (a missing key is the config's); errors name ``field``."""
    if value is None:
        return default
    if not isinstance(value, Mapping):
        raise _bad(field, "must be {pass, marginal}")
    for key in value:
        if key not in ("pass", "marginal"):
            raise _bad(f"{field}.{key}", f"unknown field{did_you_mean(str(key), ('pass', 'marginal'))}")
    limits = {"pass": default.pass_, "marginal": default.marginal}
    for key in limits:
        if key in value:
            number = value[key]
            if isinstance(number, bool) or not isinstance(number, int | float | str):
                raise _bad(f"{field}.{key}", f"{number!r} is not a number")
            try:
                limits[key] = float(number)
            except ValueError:
                raise _bad(f"{field}.{key}", f"{number!r} is not a number") from None
    try:
        return Thresholds(limits["pass"], limits["marginal"])
    except ThresholdsError as exc:  # "thresholds.pass: ..." names the key at fault
        where, _, message = str(exc).partition(": ")
        key = where.rpartition(".")[2] if where.startswith("thresholds.") else ""
        raise _bad(f"{field}.{key}" if key in limits else field, message or str(exc)) from None


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
    kind = "prometheus" if name == "prometheus" else name
    account: dict[str, Any] = {"name": name, "type": kind, "supportedTypes": ["METRICS_STORE"]}
    if name == "prometheus" and service.settings.prometheus_url:
        account["endpoint"] = {"baseUrl": service.settings.prometheus_url}
    return account


def _pair(document: Any, index: int) -> MetricSetPair:
    where = f"metricSetPairList[{index}]"
    if not isinstance(document, Mapping) or not isinstance(document.get("values"), Mapping):
        raise _bad(where, "needs name and values {control, experiment}")
    name = document.get("name")
    if not isinstance(name, str) or not name:
        raise _bad(f"{where}.name", "required")
    raw_tags = document.get("tags") or {}
    if not isinstance(raw_tags, Mapping) or not all(
        isinstance(v, str | int | float | bool) for v in raw_tags.values()
    ):
        raise _bad(f"{where}.tags", "must be an object of label names to values")
    tags = {str(k): str(v) for k, v in raw_tags.items()}

    def side(key: str) -> MetricSet:
        raw = document["values"].get(key, [])
        if not isinstance(raw, list):
            raise _bad(f"{where}.values.{key}", "must be a list of numbers")
        try:
            values = [math.nan if v is None or v == "NaN" else float(v) for v in raw]
        except (TypeError, ValueError):
            raise _bad(f"{where}.values.{key}", "must be a list of numbers") from None
        return MetricSet(name, np.array(values, dtype=np.float64), tags)

    return MetricSetPair(name, side("control"), side("experiment"), tags)


def _repaired(config: CanaryConfig, pairs: list[MetricSetPair]) -> list[MetricSetPair]:
    """Pair the posted series again by the engine's rules, for the metrics the list names.

    A client that pairs by full labels sends a series labelled with its own scope
    (``version="v2"``) as two half-empty pairs; one series per side pairs (README, Pairing).
    """
    named = dict.fromkeys(p.name for p in pairs)
    baseline: dict[str, list[MetricSet]] = {name: [] for name in named}
    canary: dict[str, list[MetricSet]] = {name: [] for name in named}
    for pair in pairs:
        if len(pair.baseline):
            baseline[pair.name].append(pair.baseline)
        if len(pair.canary):
            canary[pair.name].append(pair.canary)
    metrics = {m.name: m for m in config.metrics}
    listed = replace(config, metrics=tuple(metrics[name] for name in named))
    return pair_metric_sets(listed, baseline, canary)


def _bad(field: str, message: str) -> HTTPException:
    return HTTPException(422, [{"loc": ["body", *field.split(".")], "msg": f"{field}: {message}"}])


def _duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return (
        "PT"
        + (f"{hours}H" if hours else "")
        + (f"{minutes}M" if minutes else "")
        + (f"{secs}S" if secs or not (hours or minutes) else "")
    )
