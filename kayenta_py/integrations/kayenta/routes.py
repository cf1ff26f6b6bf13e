"""Kayenta's HTTP API, so that Argo Rollouts' kayenta provider, Spinnaker's canary stage and
Kayenta's RemoteJudge work against kayenta-py by changing one address.

Field names and semantics follow Kayenta's controllers: ``/canaryConfig``, ``/canary``,
``/standalone_canary_analysis``, ``/judge``, ``/judges``, ``/credentials``,
``/metricsServices``. Like Kayenta, unknown request fields are accepted; unlike Kayenta, each
is reported in the execution's ``warnings``.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Request, Response

from kayenta_py.config.loader import load_config
from kayenta_py.config.registry import did_you_mean
from kayenta_py.engine.pipeline import judge_pairs
from kayenta_py.http.dependencies import ServiceDep, native_write, require_compat
from kayenta_py.integrations.kayenta.documents import (
    execution_status,
    standalone_document,
)
from kayenta_py.integrations.kayenta.fields import (
    CONFIG_ACCOUNT,
    CONFIG_ID,
    KAYENTA_JUDGE,
    _bad,
    _check_body,
    _pair,
    _repaired,
    _thresholds,
)
from kayenta_py.integrations.kayenta.mapping import (
    _adhoc,
    _source_account,
    _start_execution,
    _start_standalone,
    _stored_config,
)
from kayenta_py.model.errors import StoreError
from kayenta_py.model.redact import redact_json
from kayenta_py.model.types import rfc3339
from kayenta_py.service.analyses import Service
from kayenta_py.service.store.errors import OriginError, WriteConflictError
from kayenta_py.service.store.tables import (
    KAYENTA,
)

JsonBody = Annotated[dict[str, Any], Body()]
Authorization = Annotated[str | None, Header()]


router = APIRouter(tags=["kayenta"], dependencies=[Depends(require_compat)])
"""Kayenta's endpoints; ``require_compat`` authorizes each call.

These endpoints may be open to clients without a token. Their writes stay among the configs
created through them (origin ``kayenta``): changing or deleting a config created through the
native API also passes ``native_write``, which demands a write token.
"""


def _writable(service: Service, config_id: str, authorization: str | None) -> str | None:
    """Return the origin a write to ``config_id`` is limited to (None: any, with a write token)."""
    origin = service.store.config_origin(config_id)
    if origin is None or origin == KAYENTA:
        return KAYENTA
    native_write(service, config_id, authorization)
    return None


def _refused(service: Service, config_id: str, authorization: str | None) -> HTTPException:
    # The config changed origin between the check and the write: check again, now it is native.
    native_write(service, config_id, authorization)
    return HTTPException(409, f"canary config {config_id!r} changed meanwhile; try again")


# ------------------------------------------------------------ canary configs


@router.get("/canaryConfig")
def list_canary_configs(
    service: ServiceDep,
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
    service: ServiceDep,
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
    only = _writable(service, config_id, authorization)
    try:
        service.store.create_config(config_id, document, origin=KAYENTA, only_origin=only)
    except OriginError:
        raise _refused(service, config_id, authorization) from None
    except StoreError as exc:
        raise HTTPException(409, [{"loc": ["body", "id"], "msg": f"id: {exc}"}]) from None
    return {"canaryConfigId": config_id}


@router.get("/canaryConfig/{config_id}")
def get_canary_config(
    config_id: str,
    service: ServiceDep,
    configurationAccountName: str | None = None,  # noqa: N803
) -> dict[str, Any]:
    """A stored canary config, with its id."""
    return {**_stored_config(service, config_id).body, "id": config_id}


@router.put("/canaryConfig/{config_id}")
def update_canary_config(
    config_id: str,
    body: JsonBody,
    service: ServiceDep,
    configurationAccountName: str | None = None,  # noqa: N803
    authorization: Authorization = None,
) -> dict[str, str]:
    """Replace a canary config (its earlier versions stay in the history)."""
    document = {k: v for k, v in body.items() if k != "id"}
    load_config(document, registry=service.registry, limits=service.limits)
    _stored_config(service, config_id)
    only = _writable(service, config_id, authorization)
    try:
        service.store.update_config(config_id, document, only_origin=only)
    except OriginError:
        raise _refused(service, config_id, authorization) from None
    except WriteConflictError as exc:
        raise HTTPException(409, str(exc)) from None
    except StoreError:  # deleted meanwhile
        raise HTTPException(404, f"no canary config {config_id!r}") from None
    return {"canaryConfigId": config_id}


@router.delete("/canaryConfig/{config_id}", status_code=204)
def delete_canary_config(
    config_id: str,
    service: ServiceDep,
    configurationAccountName: str | None = None,  # noqa: N803
    authorization: Authorization = None,
) -> Response:
    """Delete a canary config."""
    _stored_config(service, config_id)
    only = _writable(service, config_id, authorization)
    try:
        service.store.delete_config(config_id, only_origin=only)
    except OriginError:
        raise _refused(service, config_id, authorization) from None
    except StoreError:  # deleted meanwhile
        raise HTTPException(404, f"no canary config {config_id!r}") from None
    return Response(status_code=204)


# ------------------------------------------------------------ canary executions


@router.post("/canary/{config_id}")
def start_canary(config_id: str, request: Request, body: JsonBody, service: ServiceDep) -> dict[str, str]:
    """Start a canary execution with a stored config (Argo Rollouts, Spinnaker).

    The execution keeps the version stored now, whatever is stored later.
    """
    _check_body(body, service.limits)
    record = _stored_config(service, config_id)
    return _start_execution(
        service, dict(record.body), config_id, body, dict(request.query_params), version=record.version
    )


@router.post("/canary")
def start_adhoc_canary(request: Request, body: JsonBody, service: ServiceDep) -> dict[str, str]:
    """Start a canary execution with an inline config: ``{canaryConfig, executionRequest}``."""
    _check_body(body, service.limits)
    config, execution, warnings = _adhoc(body)
    return _start_execution(service, config, None, execution, dict(request.query_params), warnings)


@router.get("/canary/{execution_id}")
def canary_status(
    execution_id: str,
    service: ServiceDep,
    storageAccountName: str | None = None,  # noqa: N803
) -> dict[str, Any]:
    """Kayenta's CanaryExecutionStatusResponse."""
    record = service.store.get_analysis(execution_id)
    if record is None or record.kind != "kayenta":
        raise HTTPException(404, f"no canary execution {execution_id!r}")
    return execution_status(record)


# ------------------------------------------------------------ standalone canary analysis


@router.post("/standalone_canary_analysis/{config_id}")
def start_standalone(config_id: str, request: Request, body: JsonBody, service: ServiceDep) -> dict[str, str]:
    """Start a standalone canary analysis (several intervals) with a stored config, as stored now."""
    _check_body(body, service.limits)
    record = _stored_config(service, config_id)
    return _start_standalone(
        service, dict(record.body), config_id, body, dict(request.query_params), version=record.version
    )


@router.post("/standalone_canary_analysis")
def start_adhoc_standalone(request: Request, body: JsonBody, service: ServiceDep) -> dict[str, str]:
    """Start a standalone canary analysis with an inline config."""
    _check_body(body, service.limits)
    config, execution, warnings = _adhoc(body)
    return _start_standalone(service, config, None, execution, dict(request.query_params), warnings)


@router.get("/standalone_canary_analysis/{execution_id}")
def standalone_status(execution_id: str, service: ServiceDep) -> dict[str, Any]:
    """Kayenta's CanaryAnalysisExecutionStatusResponse."""
    record = service.store.get_analysis(execution_id)
    if record is None or record.kind != "kayenta-standalone":
        raise HTTPException(404, f"no canary analysis execution {execution_id!r}")
    return standalone_document(record)


# ------------------------------------------------------------ judging and accounts


@router.post("/judge")
def remote_judge(body: JsonBody, service: ServiceDep) -> dict[str, Any]:
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
def judges(service: ServiceDep) -> list[dict[str, Any]]:
    """The judges a canary config may name."""
    names = [KAYENTA_JUDGE] + [f"{n}-v1.0" for n in service.registry.judge_names()]
    return [{"name": name, "visible": True} for name in dict.fromkeys(names)]


@router.get("/credentials")
def credentials(service: ServiceDep) -> list[dict[str, Any]]:
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
def metrics_services(service: ServiceDep) -> list[dict[str, Any]]:
    """The metrics services, as Kayenta lists them (a URL's credentials masked)."""
    return list(redact_json([_source_account(service, name) for name in service.source_names()]))
