"""The rollout manifests in config/ checked against the engine they call.

* ``config/argo-rollouts/kayenta-analysis-template.yaml``: valid against Argo Rollouts'
  CRD (KayentaMetric and friends, every field required, unknown fields pruned), calling
  only routes the app serves, then replayed as Argo's kayenta provider would run it.
* ``config/flagger/canary.yaml``: a Flagger Canary whose webhooks name hooks the engine
  answers, with metadata the engine reads, then its first hook replayed.
* ``config/spinnaker/kayenta-canary-stage.json``: a ``kayentaCanary`` stage whose fields are
  Orca's, mapped onto ``POST /canary/{configId}`` (what Orca sends per interval) and onto
  ``POST /standalone_canary_analysis/{configId}``, both replayed.

The replays run on a real HTTP server with the ``demo`` source (no Prometheus here), so
``metricsAccountName``/``source`` are swapped for ``demo``; everything else is the manifest's.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI
from fastapi.routing import APIRoute
from live_server import LiveServer, settings_for

from kayenta_py import load_config
from kayenta_py.http.app import create_app
from kayenta_py.integrations.flagger import _METADATA, HOOKS
from kayenta_py.integrations.kayenta.fields import (
    _EXECUTION_FIELDS,
    _SCOPE_FIELDS,
    _STANDALONE_FIELDS,
    _STANDALONE_SCOPE_FIELDS,
    CONFIG_ACCOUNT,
)
from kayenta_py.service.analyses import Service
from kayenta_py.service.settings import Settings
from kayenta_py.service.settings_parsing import parse_duration

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
ARGO_TEMPLATE = CONFIG_DIR / "argo-rollouts" / "kayenta-analysis-template.yaml"
FLAGGER_CANARY = CONFIG_DIR / "flagger" / "canary.yaml"
SPINNAKER_STAGE = CONFIG_DIR / "spinnaker" / "kayenta-canary-stage.json"
DEFAULT_PORT = 8090  # kayenta-py's (and Kayenta's) default port


def load_yaml(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), path
    return document


def argo_template() -> dict[str, Any]:
    return load_yaml(ARGO_TEMPLATE)


def argo_kayenta() -> dict[str, Any]:
    metrics = argo_template()["spec"]["metrics"]
    assert len(metrics) == 1
    kayenta: dict[str, Any] = metrics[0]["provider"]["kayenta"]
    return kayenta


def flagger_canary() -> dict[str, Any]:
    return load_yaml(FLAGGER_CANARY)


def kayenta_py_webhooks() -> list[dict[str, Any]]:
    hooks = flagger_canary()["spec"]["analysis"]["webhooks"]
    return [h for h in hooks if "/api/v1/flagger/" in h["url"]]


def spinnaker_stage() -> dict[str, Any]:
    stage: dict[str, Any] = json.loads(SPINNAKER_STAGE.read_text(encoding="utf-8"))
    return stage


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    tmp = tmp_path_factory.mktemp("routes")
    return create_app(Service(settings_for(tmp, prometheus_url="http://127.0.0.1:9")))


def served_routes(app: FastAPI) -> list[APIRoute]:
    """Every APIRoute of ``app.routes``, descending into included routers.

    (FastAPI 0.16x wraps an included router in one entry of ``app.routes`` that keeps the
    router as ``original_router``; older versions copy its routes into ``app.routes``.)
    """
    found: list[APIRoute] = []
    pending: list[Any] = list(app.routes)
    while pending:
        item = pending.pop(0)
        if isinstance(item, APIRoute):
            found.append(item)
            continue
        router = getattr(item, "original_router", item)
        pending.extend(getattr(router, "routes", []))
    return found


def route(app: FastAPI, method: str, path: str) -> APIRoute:
    """The route of ``app`` that serves ``method path`` (the OpenAPI document agrees)."""
    documented = app.openapi()["paths"]
    for candidate in served_routes(app):
        if method in (candidate.methods or ()) and candidate.path_regex.match(path):
            assert method.lower() in documented[candidate.path], candidate.path
            return candidate
    raise AssertionError(f"no route of the app serves {method} {path}")


def engine_sources() -> list[str]:
    settings = Settings(database_url="sqlite://", prometheus_url="http://127.0.0.1:9")
    return Service(settings).source_names()


# ---------------------------------------------------------------- a real server for the replays


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("replay")
    with LiveServer(settings_for(tmp)) as server:
        yield server


def kayenta_config(name: str, applications: list[str]) -> dict[str, Any]:
    def metric(metric_name: str, group: str, critical: bool = False) -> dict[str, Any]:
        return {
            "name": metric_name,
            "query": {
                "type": "prometheus",
                "customInlineTemplate": f'PromQL:up{{version="${{scope}}"}} # {metric_name}',
            },
            "groups": [group],
            "analysisConfigurations": {"canary": {"direction": "increase", "critical": critical}},
            "scopeName": "default",
        }

    return {
        "name": name,
        "applications": applications,
        "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": {}},
        "metrics": [metric("error-ratio", "errors", critical=True), metric("p99-latency", "latency")],
        "classifier": {"groupWeights": {"errors": 60, "latency": 40}},
    }


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- Argo Rollouts

Schema = dict[str, Any]
STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
ANY: Schema = {"type": "any"}


def obj(required: Mapping[str, Schema], optional: Mapping[str, Schema] | None = None) -> Schema:
    return {"type": "object", "required": dict(required), "optional": dict(optional or {})}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


# Argo Rollouts' v1alpha1 types: KayentaMetric and its parts have no omitempty, so the CRD
# requires every field; a field the CRD does not know is pruned on apply.
SCOPE_DETAIL = obj({"scope": STRING, "region": STRING, "step": INTEGER, "start": STRING, "end": STRING})
KAYENTA_METRIC = obj(
    {
        "address": STRING,
        "application": STRING,
        "canaryConfigName": STRING,
        "metricsAccountName": STRING,
        "configurationAccountName": STRING,
        "storageAccountName": STRING,
        "threshold": obj({"pass": INTEGER, "marginal": INTEGER}),
        "scopes": array(obj({"name": STRING, "controlScope": SCOPE_DETAIL, "experimentScope": SCOPE_DETAIL})),
    }
)
ARGUMENT = obj({"name": STRING}, {"value": STRING, "valueFrom": ANY})
METRIC = obj(
    {"name": STRING, "provider": obj({}, {"kayenta": KAYENTA_METRIC})},
    {
        "interval": STRING,
        "initialDelay": STRING,
        "count": ANY,
        "successCondition": STRING,
        "failureCondition": STRING,
        "failureLimit": ANY,
        "inconclusiveLimit": ANY,
        "consecutiveErrorLimit": ANY,
    },
)
ANALYSIS_TEMPLATE = obj(
    {
        "apiVersion": STRING,
        "kind": STRING,
        "metadata": obj({"name": STRING}, {"namespace": STRING, "labels": ANY, "annotations": ANY}),
        "spec": obj(
            {"metrics": array(METRIC)}, {"args": array(ARGUMENT), "dryRun": ANY, "measurementRetention": ANY}
        ),
    }
)


def violations(value: Any, schema: Schema, path: str = "") -> list[str]:
    """Where ``value`` breaks ``schema`` (a small structural-schema check, as the API server does)."""
    kind = schema["type"]
    if kind == "any":
        return []
    if kind == "string":
        return [] if isinstance(value, str) else [f"{path}: must be a string, got {value!r}"]
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{path}: must be an integer, got {value!r}"]
    if kind == "array":
        if not isinstance(value, list):
            return [f"{path}: must be a list"]
        return [v for i, item in enumerate(value) for v in violations(item, schema["items"], f"{path}[{i}]")]
    if not isinstance(value, dict):
        return [f"{path}: must be an object"]
    problems = [f"{path}.{key}: required" for key in schema["required"] if key not in value]
    known = {**schema["required"], **schema["optional"]}
    for key, item in value.items():
        if key not in known:
            problems.append(f"{path}.{key}: not in the CRD (pruned on apply)")
        else:
            problems.extend(violations(item, known[key], f"{path}.{key}"))
    return problems


def test_argo_template_is_valid_against_the_crd() -> None:
    template = argo_template()
    assert template["apiVersion"] == "argoproj.io/v1alpha1" and template["kind"] == "AnalysisTemplate"
    assert violations(template, ANALYSIS_TEMPLATE) == []
    # Every {{args.X}} used is declared, and every declared arg is used.
    declared = {a["name"] for a in template["spec"].get("args", [])}
    used = set(
        re.findall(r"\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}", ARGO_TEMPLATE.read_text(encoding="utf-8"))
    )
    assert used == declared, (used, declared)


def test_argo_docs_spelling_would_be_pruned() -> None:
    # Argo's own docs example writes `thresholds`; the CRD knows `threshold` only.
    kayenta = {**argo_kayenta()}
    kayenta["thresholds"] = kayenta.pop("threshold")
    problems = violations(kayenta, KAYENTA_METRIC, "kayenta")
    assert "kayenta.threshold: required" in problems
    assert "kayenta.thresholds: not in the CRD (pruned on apply)" in problems


def test_argo_template_calls_routes_of_the_engine(app: FastAPI) -> None:
    kayenta = argo_kayenta()
    address = urllib.parse.urlsplit(kayenta["address"])
    assert address.scheme == "http" and address.port == DEFAULT_PORT
    assert address.path == "" and not kayenta["address"].endswith("/")  # Argo appends "/canary/..."
    # The three calls of the provider, with the paths it formats.
    assert route(app, "GET", "/canaryConfig").name == "list_canary_configs"
    assert route(app, "POST", "/canary/3f2c9a").name == "start_canary"
    assert route(app, "GET", "/canary/3f2c9a").name == "canary_status"


def test_argo_template_fields_are_the_ones_the_engine_reads() -> None:
    kayenta = argo_kayenta()
    threshold = kayenta["threshold"]
    assert isinstance(threshold["pass"], int) and isinstance(threshold["marginal"], int)
    assert 0 <= threshold["marginal"] <= threshold["pass"] <= 100
    assert kayenta["metricsAccountName"] in engine_sources()
    assert kayenta["configurationAccountName"] == kayenta["storageAccountName"] == CONFIG_ACCOUNT
    for scope in kayenta["scopes"]:
        assert scope["name"] == "default"  # the scopeName of the config's metrics
        control, experiment = scope["controlScope"], scope["experimentScope"]
        for detail in (control, experiment):
            assert set(detail) <= set(_SCOPE_FIELDS)
            assert detail["region"] and isinstance(detail["step"], int) and detail["step"] > 0
            assert re.fullmatch(r"\{\{args\.[a-z-]+\}\}", detail["start"])
            assert re.fullmatch(r"\{\{args\.[a-z-]+\}\}", detail["end"])
        # kayenta-py judges both scopes over one window.
        assert (control["start"], control["end"]) == (experiment["start"], experiment["end"])
        assert control["scope"] != experiment["scope"]


def render_args(text: str, args: Mapping[str, str]) -> str:
    return re.sub(r"\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}", lambda m: args[m.group(1)], text)


def test_argo_template_replayed_against_the_engine(live: LiveServer) -> None:
    now = time.time()
    args = {
        # 7 minutes at Argo's 60 s step: 7 points a side (5 minutes give 4 or 5 by the clock's
        # phase, and 4 a side are too few for the judge's 98% interval ever to decide: marginal)
        "start-time": rfc3339(now - 425),
        "end-time": rfc3339(now - 5),
        "stable-hash": "6c54544bf9",
        "canary-hash": "7d65655cg0",
    }
    rendered = yaml.safe_load(render_args(ARGO_TEMPLATE.read_text(encoding="utf-8"), args))
    kayenta = rendered["spec"]["metrics"][0]["provider"]["kayenta"]
    kayenta["address"] = live.url  # the one change from Kayenta to kayenta-py, here to a test server
    kayenta["metricsAccountName"] = "demo"  # no Prometheus on this server
    config_id = httpx.post(
        f"{live.url}/canaryConfig",
        json=kayenta_config(kayenta["canaryConfigName"], [kayenta["application"]]),
        timeout=10,
    ).json()["canaryConfigId"]

    lookup = httpx.get(
        f"{kayenta['address']}/canaryConfig?application={kayenta['application']}"
        f"&configurationAccountName={kayenta['storageAccountName']}",
        timeout=15,
    ).json()
    found = [c["id"] for c in lookup if c["name"] == kayenta["canaryConfigName"]]
    assert found == [config_id]

    scopes = ",".join(
        f'"{s["name"]}":{{"controlScope": {json.dumps(s["controlScope"], separators=(",", ":"))}, '
        f'"experimentScope": {json.dumps(s["experimentScope"], separators=(",", ":"))}}}'
        for s in kayenta["scopes"]
    )
    payload = (
        f'{{"scopes": {{{scopes}}}, "thresholds" : {{"pass": {kayenta["threshold"]["pass"]}, '
        f'"marginal": {kayenta["threshold"]["marginal"]}}}}}'
    )
    job = httpx.post(
        f"{kayenta['address']}/canary/{config_id}?application={kayenta['application']}"
        f"&metricsAccountName={kayenta['metricsAccountName']}"
        f"&configurationAccountName={kayenta['configurationAccountName']}"
        f"&storageAccountName={kayenta['storageAccountName']}",
        content=payload.encode(),
        headers={"Content-Type": "application/json"},
        timeout=15,
    )
    assert job.status_code == 200, job.text
    execution_id = job.json()["canaryExecutionId"]

    deadline = time.monotonic() + 30
    while True:
        status = httpx.get(f"{kayenta['address']}/canary/{execution_id}", timeout=15).json()
        if status["complete"] is True or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert status["complete"] is True
    score = int(status["result"]["judgeResult"]["score"]["score"])
    assert score >= kayenta["threshold"]["pass"]  # Argo: Successful
    assert status["warnings"] == []
    analysis = httpx.get(f"{live.url}/api/v1/analyses/{execution_id}", timeout=10).json()
    control = kayenta["scopes"][0]["controlScope"]
    assert analysis["location"] == control["region"] and analysis["step_s"] == control["step"]
    assert (analysis["baseline_scope"], analysis["canary_scope"]) == (
        args["stable-hash"],
        args["canary-hash"],
    )


# ---------------------------------------------------------------- Flagger

# Flagger's HookType values (the CRD's enum for analysis.webhooks[].type).
FLAGGER_HOOK_TYPES = {
    "confirm-rollout",
    "pre-rollout",
    "rollout",
    "confirm-traffic-increase",
    "confirm-promotion",
    "post-rollout",
    "rollback",
    "event",
}
FLAGGER_WEBHOOK_FIELDS = {"name", "type", "url", "timeout", "metadata", "muteAlert", "retries"}
GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")


def test_flagger_canary_is_a_canary() -> None:
    canary = flagger_canary()
    assert canary["apiVersion"] == "flagger.app/v1beta1" and canary["kind"] == "Canary"
    spec = canary["spec"]
    assert spec["targetRef"]["kind"] == "Deployment" and spec["targetRef"]["name"]
    assert isinstance(spec["service"]["port"], int)
    analysis = spec["analysis"]
    assert GO_DURATION.match(analysis["interval"])
    assert isinstance(analysis["threshold"], int) and analysis["threshold"] > 0
    names = [h["name"] for h in analysis["webhooks"]]
    assert len(names) == len(set(names))


def test_flagger_webhooks_call_hooks_the_engine_answers(app: FastAPI) -> None:
    hooks = kayenta_py_webhooks()
    assert {h["type"] for h in hooks} >= {
        "confirm-rollout",
        "pre-rollout",
        "rollout",
        "confirm-promotion",
        "rollback",
        "post-rollout",
    }
    for hook in hooks:
        assert set(hook) <= FLAGGER_WEBHOOK_FIELDS, hook["name"]
        assert hook["type"] in FLAGGER_HOOK_TYPES
        url = urllib.parse.urlsplit(hook["url"])
        assert url.scheme == "http" and url.port == DEFAULT_PORT
        assert url.hostname is not None and url.hostname.startswith("kayenta-py.")
        endpoint = route(app, "POST", url.path)
        assert endpoint.path == "/api/v1/flagger/{hook}"
        name = url.path.rsplit("/", 1)[1]
        assert name in HOOKS and name == hook["type"], hook["url"]
        assert GO_DURATION.match(hook["timeout"])


def test_flagger_metadata_is_what_the_engine_reads() -> None:
    hooks = kayenta_py_webhooks()
    first = hooks[0]["metadata"]
    for hook in hooks:
        # Whichever hook Flagger calls first starts the analysis with its metadata.
        assert hook["metadata"] == first, hook["name"]
    assert all(isinstance(v, str) for v in first.values())  # map[string]string in the CRD
    assert set(first) <= set(_METADATA)
    assert first["config"]
    lifetime = parse_duration(first["lifetime"], "lifetime")
    interval = parse_duration(first["interval"], "interval")
    assert 0 < interval <= lifetime
    assert float(first["step"]) > 0
    assert first.get("source", "prometheus") in engine_sources()
    target = flagger_canary()["spec"]["targetRef"]["name"]
    assert first.get("baseline_scope", f"{target}-primary") == f"{target}-primary"
    assert first.get("canary_scope", target) == target
    assert parse_duration(first.get("warmup", 0), "warmup") >= 0


def test_flagger_manifest_replayed_against_the_engine(live: LiveServer) -> None:
    canary = flagger_canary()
    hook = next(h for h in kayenta_py_webhooks() if h["type"] == "confirm-rollout")
    meta = {**hook["metadata"], "source": "demo"}  # no Prometheus on this server
    native = {
        "name": meta["config"],
        "groups": {"errors": 50, "latency": 50},
        "metrics": [{"name": "error-ratio", "kind": "errors"}, {"name": "p99-latency", "kind": "latency"}],
    }
    stored = httpx.post(
        f"{live.url}/api/v1/configs", json={"name": meta["config"], "config": native}, timeout=10
    )
    assert stored.status_code == 201, stored.text
    payload = {
        "name": canary["metadata"]["name"],
        "namespace": canary["metadata"]["namespace"],
        "phase": "Progressing",
        "checksum": "5d8c6b9f7",
        "metadata": dict(sorted(meta.items())),
    }
    path = urllib.parse.urlsplit(hook["url"]).path
    answer = httpx.post(
        f"{live.url}{path}",
        content=json.dumps(payload, separators=(",", ":")).encode(),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    match = re.fullmatch(r"analysis (\S+) started\n?", answer.text)
    assert match, answer.text
    analysis = httpx.get(f"{live.url}/api/v1/analyses/{match.group(1)}", timeout=10).json()
    assert analysis["lifetime_s"] == parse_duration(meta["lifetime"])
    assert analysis["interval_s"] == parse_duration(meta["interval"])
    assert analysis["step_s"] == float(meta["step"])
    assert analysis["warmup_s"] == parse_duration(meta.get("warmup", 0))
    assert (analysis["baseline_scope"], analysis["canary_scope"]) == (
        meta["baseline_scope"],
        meta["canary_scope"],
    )
    assert analysis["config_name"] == meta["config"]


# ---------------------------------------------------------------- Spinnaker

# Orca's KayentaCanaryContext and CanaryConfigScope (orca-integrations-kayenta).
ORCA_CONTEXT_FIELDS = {
    "metricsAccountName",
    "configurationAccountName",
    "storageAccountName",
    "canaryConfigId",
    "scopes",
    "scoreThresholds",
    "siteLocal",
    "lifetimeHours",
    "lifetimeDuration",
    "beginCanaryAnalysisAfterMins",
    "baselineAnalysisOffsetInMins",
    "lookbackMins",
    "canaryAnalysisIntervalMins",
}
ORCA_SCOPE_FIELDS = {
    "scopeName",
    "controlScope",
    "controlLocation",
    "experimentScope",
    "experimentLocation",
    "startTimeIso",
    "endTimeIso",
    "step",
    "extendedScopeParams",
}


def test_spinnaker_stage_fields_are_orcas() -> None:
    stage = spinnaker_stage()
    assert stage["type"] == "kayentaCanary"
    assert stage["analysisType"] in {"realTime", "realTimeAutomatic", "retrospective"}
    context = stage["canaryConfig"]
    assert set(context) <= ORCA_CONTEXT_FIELDS
    assert context["canaryConfigId"]
    thresholds = context["scoreThresholds"]
    assert (
        set(thresholds) == {"pass", "marginal"} and 0 <= thresholds["marginal"] <= thresholds["pass"] <= 100
    )
    assert parse_duration(context["lifetimeDuration"]) > 0  # java.time.Duration text
    assert context["metricsAccountName"] in engine_sources()
    assert context["storageAccountName"] == context["configurationAccountName"] == CONFIG_ACCOUNT
    for scope in context["scopes"]:
        assert set(scope) <= ORCA_SCOPE_FIELDS
        assert scope["scopeName"] == "default" and scope["controlScope"] != scope["experimentScope"]
        assert all(isinstance(v, str) for v in scope["extendedScopeParams"].values())
    if stage["analysisType"] == "retrospective":
        assert all("startTimeIso" in s and "endTimeIso" in s for s in context["scopes"])


def orca_execution_request(context: Mapping[str, Any], start: float, end: float) -> dict[str, Any]:
    """The CanaryExecutionRequest Orca posts for one interval of the stage."""

    def side(scope: Mapping[str, Any], prefix: str) -> dict[str, Any]:
        return {
            "scope": scope[f"{prefix}Scope"],
            "location": scope[f"{prefix}Location"],
            "start": rfc3339(start),
            "end": rfc3339(end),
            "step": scope.get("step", 60),
            "extendedScopeParams": scope.get("extendedScopeParams", {}),
        }

    return {
        "scopes": {
            s["scopeName"]: {"controlScope": side(s, "control"), "experimentScope": side(s, "experiment")}
            for s in context["scopes"]
        },
        "thresholds": context["scoreThresholds"],
    }


def standalone_request(context: Mapping[str, Any]) -> dict[str, Any]:
    """The stage's fields as Kayenta's standalone canary analysis takes them."""
    scopes = []
    for scope in context["scopes"]:
        # Orca's CanaryConfigScope and Kayenta's standalone scope share their field names.
        scopes.append({key: value for key, value in scope.items() if key in ORCA_SCOPE_FIELDS})
    return {
        "scopes": scopes,
        "thresholds": context["scoreThresholds"],
        "lifetimeDurationMins": parse_duration(context["lifetimeDuration"]) / 60,
        "beginAfterMins": context.get("beginCanaryAnalysisAfterMins", 0),
        "analysisIntervalMins": context["canaryAnalysisIntervalMins"],
        "lookbackMins": context.get("lookbackMins", 0),
    }


def test_spinnaker_stage_maps_onto_the_engine(app: FastAPI) -> None:
    context = spinnaker_stage()["canaryConfig"]
    config_id = context["canaryConfigId"]
    assert route(app, "POST", f"/canary/{config_id}").name == "start_canary"
    assert route(app, "GET", "/canary/some-execution").name == "canary_status"
    assert route(app, "POST", f"/standalone_canary_analysis/{config_id}").name == "start_standalone"
    request = orca_execution_request(context, 0, 60)
    assert set(request) <= set(_EXECUTION_FIELDS)
    for scopes in request["scopes"].values():
        assert set(scopes["controlScope"]) <= set(_SCOPE_FIELDS)
    standalone = standalone_request(context)
    assert set(standalone) <= set(_STANDALONE_FIELDS)
    assert all(set(s) <= set(_STANDALONE_SCOPE_FIELDS) for s in standalone["scopes"])
    # The stage's scope name is the one its canary config's metrics use.
    body = kayenta_config("checkout", ["checkout"])
    assert {m.scope_name for m in load_config(body).metrics} == set(request["scopes"])


def test_spinnaker_stage_replayed_against_the_engine(live: LiveServer) -> None:
    stage = spinnaker_stage()
    context = stage["canaryConfig"]
    body = {**kayenta_config("checkout", ["checkout"]), "id": context["canaryConfigId"]}
    created = httpx.post(f"{live.url}/canaryConfig", json=body, timeout=10)
    assert created.status_code == 200 and created.json()["canaryConfigId"] == context["canaryConfigId"]
    params = {
        "application": "checkout",
        "metricsAccountName": "demo",  # no Prometheus on this server
        "configurationAccountName": context["configurationAccountName"],
        "storageAccountName": context["storageAccountName"],
    }

    # What Orca posts for the first interval: begin after 5 minutes, one 15-minute interval.
    now = time.time()
    begin = now - 20 * 60
    end = begin + context["beginCanaryAnalysisAfterMins"] * 60 + context["canaryAnalysisIntervalMins"] * 60
    started = httpx.post(
        f"{live.url}/canary/{context['canaryConfigId']}",
        params={**params, "parentPipelineExecutionId": "01J0PIPELINE"},
        json=orca_execution_request(context, begin + context["beginCanaryAnalysisAfterMins"] * 60, end),
        timeout=10,
    )
    assert started.status_code == 200, started.text
    execution = httpx.get(
        f"{live.url}/canary/{started.json()['canaryExecutionId']}",
        params={"storageAccountName": context["storageAccountName"]},
        timeout=10,
    ).json()
    assert execution["warnings"] == []
    assert execution["canaryExecutionRequest"]["thresholds"] == context["scoreThresholds"]

    standalone = httpx.post(
        f"{live.url}/standalone_canary_analysis/{context['canaryConfigId']}",
        params=params,
        json=standalone_request(context),
        timeout=10,
    )
    assert standalone.status_code == 200, standalone.text
    analysis_id = standalone.json()["canaryAnalysisExecutionId"]
    document = httpx.get(f"{live.url}/standalone_canary_analysis/{analysis_id}", timeout=10).json()
    assert document["warnings"] == []
    assert document["executionStatus"] == "RUNNING" and document["complete"] is False
    analysis = httpx.get(f"{live.url}/api/v1/analyses/{analysis_id}", timeout=10).json()
    scope = context["scopes"][0]
    assert analysis["lifetime_s"] == parse_duration(context["lifetimeDuration"])
    assert analysis["interval_s"] == context["canaryAnalysisIntervalMins"] * 60
    assert analysis["warmup_s"] == context["beginCanaryAnalysisAfterMins"] * 60
    assert analysis["intervals_total"] == 4
    assert (analysis["baseline_scope"], analysis["canary_scope"]) == (
        scope["controlScope"],
        scope["experimentScope"],
    )
    assert analysis["location"] == scope["controlLocation"] and analysis["step_s"] == scope["step"]
    assert analysis["scope_params"] == scope["extendedScopeParams"]
    assert analysis["thresholds"] == context["scoreThresholds"]
