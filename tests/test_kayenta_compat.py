"""Kayenta's clients replayed against a real kayenta-py server, byte for byte as they call.

* Argo Rollouts' ``kayenta`` metric provider (metricproviders/kayenta/kayenta.go): the
  config-id lookup, the hand-formatted job payload, the polling that reads only
  ``complete`` and ``result.judgeResult.score.score``, and its Successful /
  Inconclusive / Failed decision, against a real Prometheus.
* Spinnaker's ``kayentaCanary`` stage (Orca's KayentaService and CanaryResults model):
  ``POST /canary/{configId}`` with a CanaryExecutionRequest, then
  ``GET /canary/{id}?storageAccountName=``, decoded as Orca's Kotlin data classes would.
* Kayenta's RemoteJudge: ``POST /judge`` with a metricSetPairList, answered with the
  same CanaryJudgeResult the core computes.
* The rest of Kayenta's surface: canary config CRUD, judges, credentials, metrics
  services, standalone canary analysis, and token protection of these endpoints.

The server is uvicorn on a loopback port in a background thread; every client call goes
over TCP.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from live_server import LiveServer, settings_for
from prometheus_harness import (
    HEALTHY_PAIR,
    QUERIES,
    REGRESSED_PAIR,
    PrometheusServer,
    canary_dataset,
    default_start,
    ensure_prometheus,
)
from pydantic import SecretStr

import kayenta_py
from kayenta_py import MetricSet, MetricSetPair

START = default_start()
WINDOW = (START + 120, START + 3590)  # the dataset spans [START, START + 3590]; skip the first rate() windows
STEP = 30
APPLICATION = "web"
CONFIG_NAME = "web-canary"
STORAGE_ACCOUNT = "kayenta-py"
READ_TOKEN = "reader-token-0001"
WRITE_TOKEN = "writer-token-0001"


# ---------------------------------------------------------------- a real HTTP server and Prometheus


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    ensure_prometheus()
    with PrometheusServer(canary_dataset(START, seed=5)) as server:
        yield server


@pytest.fixture(scope="module")
def server(prometheus: PrometheusServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(settings_for(tmp_path_factory.mktemp("kayenta"), prometheus_url=prometheus.url)) as live:
        yield live


# ---------------------------------------------------------------- a Kayenta canary config


def kayenta_config(name: str = CONFIG_NAME, applications: tuple[str, ...] = (APPLICATION,)) -> dict[str, Any]:
    """A Kayenta canary config over the harness' queries, as Kayenta's UI saves one."""

    def metric(metric_name: str, group: str, critical: bool = False) -> dict[str, Any]:
        return {
            "name": metric_name,
            "query": {
                "type": "prometheus",
                "serviceType": "prometheus",
                "customInlineTemplate": "PromQL:" + QUERIES[metric_name],
            },
            "groups": [group],
            "analysisConfigurations": {
                "canary": {"direction": "increase", "critical": critical, "nanStrategy": "remove"}
            },
            "scopeName": "default",
        }

    return {
        "name": name,
        "description": "web service: errors, latency, saturation",
        "configVersion": "1",
        "applications": list(applications),
        "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": {}},
        "metrics": [
            metric("error-ratio", "errors", critical=True),
            metric("p99-latency", "latency"),
            metric("p50-latency", "latency"),
            metric("cpu", "saturation"),
        ],
        "templates": {},
        "classifier": {"groupWeights": {"errors": 50, "latency": 40, "saturation": 10}},
    }


def store_config(base: str, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> str:
    answer = httpx.post(
        f"{base}/canaryConfig",
        params={"configurationAccountName": STORAGE_ACCOUNT},
        json=dict(body),
        headers=dict(headers or {}),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    config_id = answer.json()["canaryConfigId"]
    assert isinstance(config_id, str) and config_id
    return config_id


@pytest.fixture(scope="module")
def config_id(server: LiveServer) -> str:
    # A decoy first: same name, another application. Argo must find the right one by application.
    store_config(server.url, kayenta_config(applications=("another-app",)))
    return store_config(server.url, kayenta_config())


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def wait_for(check: Callable[[], bool], timeout: float, what: str, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


# ---------------------------------------------------------------- Argo Rollouts' kayenta provider


@dataclass(frozen=True)
class GoResponse:
    status: int
    body: bytes


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # redirects are followed by hand, with Go's rules


_OPENER = urllib.request.build_opener(_NoRedirect)


def go_http(method: str, url: str, body: bytes | None = None, timeout: float = 15.0) -> GoResponse:
    """One request as Go's net/http client sends it (http.Client{Timeout: 15s}.Get/Post).

    Go follows up to 10 redirects: 307/308 repeat the method and body, 301/302/303 turn a
    POST into a bodyless GET. Its transport asks for gzip and decompresses transparently.
    """
    for _ in range(10):
        request = urllib.request.Request(url, data=body, method=method)
        request.add_header("User-Agent", "Go-http-client/1.1")
        request.add_header("Accept-Encoding", "gzip")
        if body is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                status, raw, headers = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            status, raw, headers = error.code, error.read(), error.headers
        if status in (301, 302, 303, 307, 308) and headers.get("Location"):
            url = urllib.parse.urljoin(url, headers["Location"])
            if status in (301, 302, 303):
                method, body = "GET", None
            continue
        if headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        return GoResponse(status, raw)
    raise AssertionError("stopped after 10 redirects")


def go_marshal(value: Mapping[str, Any]) -> str:
    """encoding/json.Marshal: compact, struct field order, HTML characters escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# The provider's job payload, formatted by hand (fmt.Sprintf), whitespace as in the Go source.
ARGO_JOB_PAYLOAD = (
    '\n\t\t\t\t\t\t\t{\n\t\t\t\t\t\t\t\t"scopes": {\n\t\t\t\t\t\t\t\t\t\t{scopes}\n\t\t\t\t\t\t\t\t},\n'
    '                                "thresholds" : {\n'
    '                                    "pass": {pass_},\n'
    '                                    "marginal": {marginal}\n'
    "                                }\n"
    "                            }"
)


@dataclass(frozen=True)
class ArgoScope:
    """Argo's KayentaScope: a name and two ScopeDetail {scope, region, step, start, end}."""

    name: str
    control: str
    experiment: str
    region: str
    step: int
    start: str
    end: str

    def detail(self, scope: str) -> dict[str, Any]:
        return {
            "scope": scope,
            "region": self.region,
            "step": self.step,
            "start": self.start,
            "end": self.end,
        }


@dataclass(frozen=True)
class ArgoMetric:
    """Argo's KayentaMetric, as an AnalysisTemplate's ``provider.kayenta`` holds it."""

    address: str
    application: str
    canary_config_name: str
    metrics_account_name: str
    configuration_account_name: str
    storage_account_name: str
    pass_: int
    marginal: int
    scopes: tuple[ArgoScope, ...]


@dataclass
class ArgoMeasurement:
    phase: str  # Successful, Inconclusive, Failed, Error
    message: str = ""
    value: str = ""
    execution_id: str = ""
    polls: int = 0
    incomplete_polls: int = 0


def _go_decode_config_summaries(data: bytes) -> list[dict[str, Any]]:
    """json.Unmarshal into []canaryConfig{Id, Name string; UpdatedTimestamp int; ...}: strict types."""
    decoded = json.loads(data)
    if not isinstance(decoded, list):
        raise TypeError(f"cannot unmarshal {type(decoded).__name__} into []canaryConfig")
    for item in decoded:
        if not isinstance(item, dict):
            raise TypeError("cannot unmarshal into canaryConfig")
        for key in ("id", "name", "updatedTimestampIso"):
            if item.get(key) is not None and not isinstance(item[key], str):
                raise TypeError(f"cannot unmarshal {key} into Go string")
        stamp = item.get("updatedTimestamp")
        if stamp is not None and (isinstance(stamp, bool) or not isinstance(stamp, int)):
            raise TypeError(f"cannot unmarshal number {stamp!r} into Go int")
        apps = item.get("applications")
        if apps is not None and not (isinstance(apps, list) and all(isinstance(a, str) for a in apps)):
            raise TypeError("cannot unmarshal applications into []string")
    return decoded


def _nested(document: Any, *path: str) -> tuple[Any, bool]:
    """unstructured.NestedFieldNoCopy: (value, found); a non-object on the way is an error."""
    value = document
    for key in path:
        if not isinstance(value, dict):
            raise TypeError(f"{'.'.join(path)} accessor error: {value!r} is not a map")
        if key not in value:
            return None, False
        value = value[key]
    return value, True


def argo_run(metric: ArgoMetric, *, poll_every: float = 0.5, deadline_s: float = 90.0) -> ArgoMeasurement:
    """Replay the provider's Run and then its Resume until the measurement completes."""
    kayenta = metric
    # getCanaryConfigId: the STORAGE account goes into configurationAccountName.
    lookup = go_http(
        "GET",
        f"{kayenta.address}/canaryConfig?application={kayenta.application}"
        f"&configurationAccountName={kayenta.storage_account_name}",
    )
    if lookup.status != 200:
        return ArgoMeasurement("Error", "Invalid Response")
    config_id = ""
    for summary in _go_decode_config_summaries(lookup.body):
        if summary.get("name") == kayenta.canary_config_name:
            config_id = summary.get("id") or ""
            break  # the first one whose Name matches
    # (No match is not an error in Go: the job is posted to ".../canary/" with an empty id.)
    job_url = (
        f"{kayenta.address}/canary/{config_id}?application={kayenta.application}"
        f"&metricsAccountName={kayenta.metrics_account_name}"
        f"&configurationAccountName={kayenta.configuration_account_name}"
        f"&storageAccountName={kayenta.storage_account_name}"
    )
    scopes = ",".join(
        f'"{s.name}":{{"controlScope": {go_marshal(s.detail(s.control))}, '
        f'"experimentScope": {go_marshal(s.detail(s.experiment))}}}'
        for s in kayenta.scopes
    )
    payload = (
        ARGO_JOB_PAYLOAD.replace("{scopes}", scopes)
        .replace("{pass_}", str(int(kayenta.pass_)))
        .replace("{marginal}", str(int(kayenta.marginal)))
    )
    job = go_http("POST", job_url, payload.encode())
    if job.status != 200:
        return ArgoMeasurement("Error", "Invalid Response")
    job_id = json.loads(job.body).get("canaryExecutionId")
    execution_id = "<nil>" if job_id is None else str(job_id)  # fmt.Sprintf("%v", jobId)
    measurement = ArgoMeasurement("Running", execution_id=execution_id)

    # Resume: every resumeDelay (15 s in Argo; shortened here), GET the score URL, no query string.
    stop = time.monotonic() + deadline_s
    while time.monotonic() < stop:
        measurement.polls += 1
        answer = go_http("GET", f"{kayenta.address}/canary/{execution_id}")
        if answer.status != 200:
            measurement.phase, measurement.message = "Error", "Invalid Response"
            return measurement
        patch = json.loads(answer.body)
        complete, found = _nested(patch, "complete")
        if not found or not isinstance(complete, bool):
            measurement.phase, measurement.message = "Error", "Missing Complete Status"
            return measurement
        if not complete:
            measurement.incomplete_polls += 1
            time.sleep(poll_every)
            continue
        try:
            score, found = _nested(patch, "result", "judgeResult", "score", "score")
        except TypeError as exc:
            measurement.phase, measurement.message = "Error", str(exc)
            return measurement
        if not found or isinstance(score, bool) or not isinstance(score, int | float):
            measurement.phase, measurement.message = "Error", "Missing Score"
            return measurement
        value = int(score)  # Go's int(float64): truncation
        measurement.value = str(value)
        if value >= kayenta.pass_:
            measurement.phase = "Successful"
        elif value >= kayenta.marginal:
            measurement.phase = "Inconclusive"
        else:
            measurement.phase = "Failed"
        return measurement
    raise AssertionError(f"the canary execution {execution_id} did not complete in {deadline_s:g} s")


def argo_metric(base: str, pair: tuple[str, str], **changes: Any) -> ArgoMetric:
    scope = ArgoScope("default", pair[0], pair[1], "us-east-1", STEP, rfc3339(WINDOW[0]), rfc3339(WINDOW[1]))
    fields: dict[str, Any] = {
        "address": base,
        "application": APPLICATION,
        "canary_config_name": CONFIG_NAME,
        "metrics_account_name": "prometheus",
        "configuration_account_name": STORAGE_ACCOUNT,
        "storage_account_name": STORAGE_ACCOUNT,
        "pass_": 90,
        "marginal": 75,
        "scopes": (scope,),
    }
    fields.update(changes)
    return ArgoMetric(**fields)


@pytest.mark.parametrize(
    ("pair", "phase", "classification"),
    [
        pytest.param(HEALTHY_PAIR, "Successful", "Pass", id="healthy"),
        pytest.param(REGRESSED_PAIR, "Failed", "High", id="regressed"),
        pytest.param(("v1-base", "v9-not-deployed"), "Failed", "Nodata", id="no-canary-data"),
    ],
)
def test_argo_rollouts_provider_against_real_prometheus(
    server: LiveServer, config_id: str, pair: tuple[str, str], phase: str, classification: str
) -> None:
    measurement = argo_run(argo_metric(server.url, pair))
    assert measurement.phase == phase, measurement
    score = int(measurement.value)
    if phase == "Successful":
        assert score >= 90
    else:
        assert score < 75
    # The execution ran with what Argo sent: the stored config, the region as the location, step 30.
    document = httpx.get(f"{server.url}/canary/{measurement.execution_id}", timeout=10).json()
    assert document["canaryConfigId"] == config_id
    assert document["status"] == "succeeded" and document["exception"] is None
    assert document["warnings"] == []  # Argo's fields (region included) are all understood
    analysis = httpx.get(f"{server.url}/api/v1/analyses/{measurement.execution_id}", timeout=10).json()
    assert (analysis["baseline_scope"], analysis["canary_scope"]) == pair
    assert analysis["location"] == "us-east-1" and analysis["step_s"] == STEP
    assert analysis["source"] == "prometheus"
    results = document["result"]["judgeResult"]["results"]
    assert {r["name"]: r["classification"] for r in results} == dict.fromkeys(
        ("error-ratio", "p99-latency", "p50-latency", "cpu"), classification
    )
    # ~116 points at 30 s over 58 minutes on the control side.
    assert all(r["controlMetadata"]["stats"]["count"] >= 100 for r in results)


def test_argo_polls_until_the_execution_completes(server: LiveServer, config_id: str) -> None:
    # A window that ends in the future (demo source): Argo sees complete=false, resumes, then scores.
    now = time.time()
    scope = ArgoScope(
        "default", "web-primary", "web-canary", "us-east-1", 1, rfc3339(now - 60), rfc3339(now + 3)
    )
    metric = argo_metric(server.url, HEALTHY_PAIR, metrics_account_name="demo", scopes=(scope,))
    measurement = argo_run(metric, poll_every=0.5, deadline_s=30)
    assert measurement.phase == "Successful", measurement
    assert measurement.incomplete_polls >= 1 and measurement.polls > measurement.incomplete_polls


def test_argo_with_a_config_name_not_found_gets_no_200(server: LiveServer, config_id: str) -> None:
    # Go's lookup returns "" without an error: the job goes to ".../canary/?..." and must not succeed.
    measurement = argo_run(argo_metric(server.url, HEALTHY_PAIR, canary_config_name="no-such-config"))
    assert measurement.phase == "Error"


def test_argo_scopes_without_times_are_refused_naming_the_field(server: LiveServer, config_id: str) -> None:
    # Argo's docs say start/end may be left out; its ScopeDetail has no omitempty, so it sends "".
    scope = ArgoScope("default", *HEALTHY_PAIR, region="us-east-1", step=STEP, start="", end="")
    assert argo_run(argo_metric(server.url, HEALTHY_PAIR, scopes=(scope,))).phase == "Error"
    body = {
        "scopes": {
            "default": {
                "controlScope": scope.detail(scope.control),
                "experimentScope": scope.detail(scope.experiment),
            }
        },
        "thresholds": {"pass": 90, "marginal": 75},
    }
    answer = httpx.post(f"{server.url}/canary/{config_id}", json=body, timeout=10)
    assert answer.status_code == 422
    assert "scopes.default.controlScope.start" in json.dumps(answer.json()["detail"])


def test_config_list_decodes_as_argo_decodes_it(server: LiveServer, config_id: str) -> None:
    lookup = go_http(
        "GET",
        f"{server.url}/canaryConfig?application={APPLICATION}&configurationAccountName={STORAGE_ACCOUNT}",
    )
    assert lookup.status == 200
    summaries = _go_decode_config_summaries(lookup.body)
    assert [s["id"] for s in summaries if s["name"] == CONFIG_NAME] == [config_id]
    for summary in summaries:
        assert set(summary) == {"id", "name", "updatedTimestamp", "updatedTimestampIso", "applications"}
        assert APPLICATION in summary["applications"]
        iso = datetime.fromisoformat(summary["updatedTimestampIso"].replace("Z", "+00:00"))
        assert abs(iso.timestamp() * 1000 - summary["updatedTimestamp"]) < 1000


# ---------------------------------------------------------------- Spinnaker's kayentaCanary stage

# Orca's ExecutionStatus: CanaryResults.executionStatus is ExecutionStatus.valueOf(status.toUpperCase()).
ORCA_EXECUTION_STATUSES = {
    "NOT_STARTED",
    "RUNNING",
    "PAUSED",
    "SUSPENDED",
    "SUCCEEDED",
    "FAILED_CONTINUE",
    "TERMINAL",
    "CANCELED",
    "REDIRECT",
    "STOPPED",
    "BUFFERED",
    "SKIPPED",
}
_ISO_DURATION = re.compile(r"^PT(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?$")


def _instant(value: Any) -> datetime:
    assert isinstance(value, str), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def orca_decode(document: Mapping[str, Any]) -> None:
    """Decode a status answer as Orca's Kotlin CanaryResults does: non-null fields must be there."""
    assert isinstance(document["complete"], bool)
    assert document["status"].upper() in ORCA_EXECUTION_STATUSES
    assert isinstance(document["application"], str)  # `val application: String` (non-null)
    for key in ("buildTimeIso", "startTimeIso", "endTimeIso"):
        if document.get(key) is not None:
            _instant(document[key])
    request = document.get("canaryExecutionRequest")
    if request is not None:
        for scopes in request["scopes"].values():
            for side in ("controlScope", "experimentScope"):
                _instant(scopes[side]["start"])
                _instant(scopes[side]["end"])
        assert isinstance(request["thresholds"]["pass"], int | float)
    result = document.get("result")
    if result is not None:
        assert _ISO_DURATION.match(result["canaryDuration"]), result["canaryDuration"]  # java.time.Duration
        score = result["judgeResult"]["score"]
        assert isinstance(score["score"], int | float)
        assert isinstance(score["classification"], str) and isinstance(score["classificationReason"], str)
        for entry in result["judgeResult"]["results"]:
            assert isinstance(entry["controlMetadata"]["stats"]["count"], int)
    if document.get("exception") is not None:
        assert isinstance(document["exception"], dict)


def spinnaker_scope(scope: str) -> dict[str, Any]:
    """Orca's CanaryScope, serialized by Jackson."""
    return {
        "scope": scope,
        "location": "us-east-1",
        "start": rfc3339(WINDOW[0]),
        "end": rfc3339(WINDOW[1]),
        "step": STEP,
        "extendedScopeParams": {"environment": "prod"},
    }


def spinnaker_request(pair: tuple[str, str]) -> dict[str, Any]:
    return {
        "scopes": {
            "default": {"controlScope": spinnaker_scope(pair[0]), "experimentScope": spinnaker_scope(pair[1])}
        },
        "thresholds": {"pass": 90, "marginal": 75},
        "siteLocal": {"executionId": "01HSPINNAKER"},
        "madeUpField": {"from": "a newer Orca"},
    }


def poll_spinnaker(base: str, execution_id: str, timeout: float = 60) -> tuple[dict[str, Any], list[str]]:
    statuses: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = httpx.get(
            f"{base}/canary/{execution_id}", params={"storageAccountName": STORAGE_ACCOUNT}, timeout=10
        )
        assert answer.status_code == 200, answer.text
        document = answer.json()
        orca_decode(document)
        statuses.append(document["status"])
        if document["complete"]:
            return document, statuses
        time.sleep(0.25)
    raise AssertionError(f"execution {execution_id} not complete after {timeout:g} s: {statuses[-3:]}")


def test_spinnaker_canary_stage(server: LiveServer, config_id: str) -> None:
    parent = str(uuid.uuid4())
    request = spinnaker_request(HEALTHY_PAIR)
    started = httpx.post(
        f"{server.url}/canary/{config_id}",
        params={
            "application": "app",
            "parentPipelineExecutionId": parent,
            "metricsAccountName": "prometheus",
            "storageAccountName": STORAGE_ACCOUNT,
        },
        json=request,
        timeout=10,
    )
    assert started.status_code == 200, started.text
    execution_id = started.json()["canaryExecutionId"]

    document, statuses = poll_spinnaker(server.url, execution_id)
    assert set(statuses) <= {"running", "succeeded"} and statuses[-1] == "succeeded"
    assert document["complete"] is True and document["exception"] is None
    assert document["application"] == "app" and document["parentPipelineExecutionId"] == parent
    assert (
        document["storageAccountName"] == STORAGE_ACCOUNT and document["metricsAccountName"] == "prometheus"
    )
    assert document["canaryExecutionRequest"] == request
    assert document["canaryConfigId"] == config_id
    assert document["config"]["name"] == CONFIG_NAME
    assert [m["name"] for m in document["config"]["metrics"]] == [
        "error-ratio",
        "p99-latency",
        "p50-latency",
        "cpu",
    ]
    assert _instant(document["startTimeIso"]).timestamp() == pytest.approx(WINDOW[0], abs=1)
    assert _instant(document["endTimeIso"]).timestamp() == pytest.approx(WINDOW[1], abs=1)
    assert document["startTimeMillis"] == pytest.approx(WINDOW[0] * 1000, abs=1000)
    assert document["result"]["canaryDuration"] == "PT57M50S"
    judge = document["result"]["judgeResult"]
    assert judge["score"]["score"] >= 90 and judge["score"]["classification"] == "Pass"
    # Orca warns when a metric has fewer than 50 control points; this window gives ~116.
    assert all(r["controlMetadata"]["stats"]["count"] >= 50 for r in judge["results"])
    # Unknown fields are accepted, and each is reported; Orca's own fields raise no warning.
    assert len(document["warnings"]) == 1 and "madeUpField" in document["warnings"][0], document["warnings"]


def test_spinnaker_regressed_canary_is_a_succeeded_execution_with_a_failing_score(
    server: LiveServer, config_id: str
) -> None:
    # In Kayenta a low score is still a SUCCEEDED execution; Orca compares the score itself.
    started = httpx.post(
        f"{server.url}/canary/{config_id}",
        params={
            "application": "app",
            "metricsAccountName": "prometheus",
            "storageAccountName": STORAGE_ACCOUNT,
        },
        json=spinnaker_request(REGRESSED_PAIR),
        timeout=10,
    )
    assert started.status_code == 200, started.text
    document, _ = poll_spinnaker(server.url, started.json()["canaryExecutionId"])
    assert document["status"] == "succeeded" and document["exception"] is None
    score = document["result"]["judgeResult"]["score"]
    assert score["score"] < 75 and score["classification"] == "Fail"
    classes = {r["name"]: r["classification"] for r in document["result"]["judgeResult"]["results"]}
    assert classes["error-ratio"] == "High" and classes["p99-latency"] == "High"


def test_adhoc_canary_with_an_inline_config(server: LiveServer) -> None:
    config = kayenta_config(name="inline-config")
    started = httpx.post(
        f"{server.url}/canary",
        params={
            "application": "app",
            "metricsAccountName": "prometheus",
            "storageAccountName": STORAGE_ACCOUNT,
        },
        json={"canaryConfig": config, "executionRequest": spinnaker_request(HEALTHY_PAIR)},
        timeout=10,
    )
    assert started.status_code == 200, started.text
    document, _ = poll_spinnaker(server.url, started.json()["canaryExecutionId"])
    assert document["status"] == "succeeded"
    assert document["canaryConfigId"] is None and document["config"] == config
    assert document["result"]["judgeResult"]["score"]["score"] >= 90


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"executionRequest": {}}, "body", id="no-config"),
        pytest.param({"canaryConfig": kayenta_config()}, "body", id="no-request"),
        pytest.param(
            {"canaryConfig": kayenta_config(), "executionRequest": {"thresholds": {}}},
            "scopes",
            id="no-scopes",
        ),
    ],
)
def test_adhoc_canary_rejects_incomplete_bodies(server: LiveServer, body: dict[str, Any], field: str) -> None:
    answer = httpx.post(f"{server.url}/canary", json=body, timeout=10)
    assert answer.status_code == 422
    assert field in json.dumps(answer.json()["detail"])


def test_a_failed_execution_is_terminal_for_orca_and_an_error_for_argo(server: LiveServer) -> None:
    # A query kayenta-py cannot build (no template, no metricName) fails the execution at fetch time.
    config = kayenta_config(name="unbuildable", applications=("broken-app",))
    config["metrics"][0]["query"] = {"type": "prometheus"}
    config_id = store_config(server.url, config)
    started = httpx.post(
        f"{server.url}/canary/{config_id}",
        params={"application": "broken-app", "storageAccountName": STORAGE_ACCOUNT},
        json=spinnaker_request(HEALTHY_PAIR),
        timeout=10,
    )
    assert started.status_code == 200, started.text
    document, _ = poll_spinnaker(server.url, started.json()["canaryExecutionId"])
    assert document["status"] == "terminal" and document["complete"] is True
    assert document["result"] is None
    assert "metricName" in document["exception"]["message"]
    # Argo reads complete=true, then finds no score: the measurement is an Error (not Failed),
    # so the AnalysisRun fails only after consecutiveErrorLimit such errors.
    measurement = argo_run(
        argo_metric(server.url, HEALTHY_PAIR, application="broken-app", canary_config_name="unbuildable")
    )
    assert measurement.phase == "Error" and "accessor error" in measurement.message


def test_control_windows_of_another_length_are_refused_clearly(server: LiveServer, config_id: str) -> None:
    # Each scope may have its own window (tests/test_baseline_window.py), but points pair by their
    # time since each window's start, so the control's must be as long as the experiment's.
    request = spinnaker_request(HEALTHY_PAIR)
    request["scopes"]["default"]["controlScope"]["start"] = rfc3339(WINDOW[0] - 600)
    answer = httpx.post(f"{server.url}/canary/{config_id}", json=request, timeout=10)
    assert answer.status_code == 422
    assert "scopes.default.controlScope.end" in json.dumps(answer.json()["detail"])


def test_an_unknown_metrics_account_falls_back_with_a_warning(server: LiveServer, config_id: str) -> None:
    measurement = argo_run(argo_metric(server.url, HEALTHY_PAIR, metrics_account_name="my-prom-account"))
    assert measurement.phase == "Successful"
    document = httpx.get(f"{server.url}/canary/{measurement.execution_id}", timeout=10).json()
    assert len(document["warnings"]) == 1 and "my-prom-account" in document["warnings"][0]


def test_unknown_execution_and_config_ids_are_404(server: LiveServer, config_id: str) -> None:
    assert httpx.get(f"{server.url}/canary/no-such-execution", timeout=10).status_code == 404
    started = httpx.post(
        f"{server.url}/canary/no-such-config", json=spinnaker_request(HEALTHY_PAIR), timeout=10
    )
    assert started.status_code == 404
    assert httpx.get(f"{server.url}/standalone_canary_analysis/nope", timeout=10).status_code == 404


# ---------------------------------------------------------------- Kayenta's RemoteJudge


JUDGE_CONFIG: dict[str, Any] = {
    "name": "remote-judge",
    "applications": ["web"],
    "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": {}},
    "metrics": [
        {
            "name": "latency",
            "query": {"type": "prometheus", "customInlineTemplate": 'PromQL:up{version="${scope}"}'},
            "groups": ["latency"],
            "analysisConfigurations": {"canary": {"direction": "increase"}},
            "scopeName": "default",
        },
        {
            "name": "errors",
            "query": {"type": "prometheus", "customInlineTemplate": 'PromQL:up{version="${scope}"}'},
            "groups": ["errors"],
            "analysisConfigurations": {"canary": {"direction": "increase", "critical": True}},
            "scopeName": "default",
        },
    ],
    "classifier": {"groupWeights": {"latency": 60, "errors": 40}},
}


def seeded_values() -> dict[str, tuple[list[float], list[float]]]:
    rng = np.random.default_rng(5)
    latency_control = (0.2 * rng.lognormal(0.0, 0.1, 60)).tolist()
    latency_experiment = (0.3 * rng.lognormal(0.0, 0.1, 60)).tolist()  # regressed: 1.5x slower
    errors_control = rng.gamma(8.0, 0.002 / 8.0, 60).tolist()
    errors_experiment = rng.gamma(8.0, 0.002 / 8.0, 60).tolist()  # healthy
    latency_control[7] = math.nan  # Kayenta serializes NaN as the string "NaN"
    return {"latency": (latency_control, latency_experiment), "errors": (errors_control, errors_experiment)}


def metric_set_pair(name: str, control: list[float], experiment: list[float], index: int) -> dict[str, Any]:
    """A MetricSetPair as Kayenta's RemoteJudge serializes it."""
    start_ms = int(WINDOW[0] * 1000)
    scope = {"startTimeIso": rfc3339(WINDOW[0]), "startTimeMillis": start_ms, "stepMillis": 60_000}
    return {
        "name": name,
        "id": f"pair-{index}",
        "tags": {"region": "us-east-1"},
        "values": {
            "control": ["NaN" if math.isnan(v) else v for v in control],
            "experiment": ["NaN" if math.isnan(v) else v for v in experiment],
        },
        "scopes": {"control": scope, "experiment": scope},
        "attributes": {"control": {"query": "up"}, "experiment": {"query": "up"}},
    }


def test_remote_judge_equals_the_core_judgement(server: LiveServer) -> None:
    values = seeded_values()
    body = {
        "canaryConfig": JUDGE_CONFIG,
        "scoreThresholds": {"pass": 90, "marginal": 75},
        "metricSetPairList": [metric_set_pair(n, c, e, i) for i, (n, (c, e)) in enumerate(values.items())],
    }
    answer = httpx.post(f"{server.url}/judge", json=body, timeout=20)
    assert answer.status_code == 200, answer.text
    remote = answer.json()

    tags = {"region": "us-east-1"}
    pairs = [
        MetricSetPair(
            name,
            MetricSet(name, np.array(control, dtype=np.float64), tags),
            MetricSet(name, np.array(experiment, dtype=np.float64), tags),
            tags,
        )
        for name, (control, experiment) in values.items()
    ]
    local = kayenta_py.judge_pairs(
        kayenta_py.load_config(JUDGE_CONFIG), pairs, thresholds={"pass": 90, "marginal": 75}
    ).to_kayenta()

    assert remote == json.loads(json.dumps(local))
    # The seeded data says what the judgement must be: latency regressed, errors healthy.
    assert {r["name"]: r["classification"] for r in remote["results"]} == {
        "latency": "High",
        "errors": "Pass",
    }
    assert {g["name"]: g["score"] for g in remote["groupScores"]} == {"latency": 0.0, "errors": 100.0}
    assert remote["score"]["score"] == pytest.approx(40.0) and remote["score"]["classification"] == "Fail"
    latency = next(r for r in remote["results"] if r["name"] == "latency")
    assert latency["controlMetadata"]["stats"]["count"] == 59  # the "NaN" was removed
    assert set(latency) >= {
        "name",
        "classification",
        "classificationReason",
        "groups",
        "controlMetadata",
        "experimentMetadata",
        "resultMetadata",
        "critical",
        "muted",
    }
    assert remote["judgeName"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param(lambda b: b.pop("metricSetPairList"), "metricSetPairList", id="no-pair-list"),
        pytest.param(lambda b: b.pop("canaryConfig"), "canaryConfig", id="no-config"),
        pytest.param(
            lambda b: b["metricSetPairList"][0].update(name="latencyy"), "latencyy", id="metric-not-in-config"
        ),
        pytest.param(
            lambda b: b["metricSetPairList"][0]["values"].update(control="oops"),
            "values.control",
            id="bad-values",
        ),
    ],
)
def test_remote_judge_rejects_bad_bodies(
    server: LiveServer, change: Callable[[dict[str, Any]], object], field: str
) -> None:
    values = seeded_values()
    body: dict[str, Any] = {
        "canaryConfig": JUDGE_CONFIG,
        "scoreThresholds": {"pass": 90, "marginal": 75},
        "metricSetPairList": [metric_set_pair(n, c, e, i) for i, (n, (c, e)) in enumerate(values.items())],
    }
    change(body)
    answer = httpx.post(f"{server.url}/judge", json=body, timeout=20)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert field in json.dumps(answer.json()["detail"])


# ---------------------------------------------------------------- canary configs, judges, accounts


def test_canary_config_crud(server: LiveServer) -> None:
    base = server.url
    body = kayenta_config(name="crud-config", applications=("crud-app",))
    config_id = store_config(base, body)

    listed = httpx.get(f"{base}/canaryConfig", params={"application": "crud-app"}, timeout=10).json()
    assert [(c["id"], c["name"], c["applications"]) for c in listed] == [
        (config_id, "crud-config", ["crud-app"])
    ]
    assert set(listed[0]) == {"id", "name", "updatedTimestamp", "updatedTimestampIso", "applications"}
    first_stamp = listed[0]["updatedTimestamp"]
    every = httpx.get(f"{base}/canaryConfig", timeout=10).json()
    assert config_id in {c["id"] for c in every}
    assert httpx.get(f"{base}/canaryConfig", params={"application": "nobody"}, timeout=10).json() == []

    got = httpx.get(f"{base}/canaryConfig/{config_id}", timeout=10).json()
    assert got == {**body, "id": config_id}

    time.sleep(0.01)
    renamed = {**body, "name": "crud-config-v2"}
    put = httpx.put(f"{base}/canaryConfig/{config_id}", json=renamed, timeout=10)
    assert put.status_code == 200 and put.json() == {"canaryConfigId": config_id}
    assert httpx.get(f"{base}/canaryConfig/{config_id}", timeout=10).json()["name"] == "crud-config-v2"
    listed = httpx.get(f"{base}/canaryConfig", params={"application": "crud-app"}, timeout=10).json()
    assert listed[0]["name"] == "crud-config-v2" and listed[0]["updatedTimestamp"] > first_stamp

    # A client-chosen id (Kayenta accepts one); posting it twice is a client error, not a 500.
    chosen = store_config(base, {**body, "id": "my-chosen-id"})
    assert chosen == "my-chosen-id"
    again = httpx.post(f"{base}/canaryConfig", json={**body, "id": "my-chosen-id"}, timeout=10)
    assert 400 <= again.status_code < 500, again.text

    assert httpx.delete(f"{base}/canaryConfig/{config_id}", timeout=10).status_code == 204
    assert httpx.get(f"{base}/canaryConfig/{config_id}", timeout=10).status_code == 404
    assert config_id not in {c["id"] for c in httpx.get(f"{base}/canaryConfig", timeout=10).json()}
    for method in ("GET", "DELETE"):
        assert httpx.request(method, f"{base}/canaryConfig/unknown-id", timeout=10).status_code == 404
    assert httpx.put(f"{base}/canaryConfig/unknown-id", json=body, timeout=10).status_code == 404


def test_an_invalid_canary_config_is_refused_with_its_path(server: LiveServer) -> None:
    body = kayenta_config(name="broken")
    body["metrics"][0]["analysisConfigurations"]["canary"]["direction"] = "sideways"
    answer = httpx.post(f"{server.url}/canaryConfig", json=body, timeout=10)
    assert answer.status_code == 422
    assert "direction" in json.dumps(answer.json()["detail"])


def test_judges_credentials_and_metrics_services(server: LiveServer) -> None:
    judges = httpx.get(f"{server.url}/judges", timeout=10).json()
    assert "NetflixACAJudge-v1.0" in {j["name"] for j in judges}

    credentials = httpx.get(f"{server.url}/credentials", timeout=10).json()
    by_name = {c["name"]: c for c in credentials}
    assert all(isinstance(c["name"], str) and isinstance(c["type"], str) for c in credentials)  # Orca's model
    assert "METRICS_STORE" in by_name["prometheus"]["supportedTypes"]
    assert by_name["prometheus"]["type"] == "prometheus"
    assert "METRICS_STORE" in by_name["demo"]["supportedTypes"]
    storage = [c for c in credentials if "OBJECT_STORE" in c["supportedTypes"]]
    assert [c["name"] for c in storage] == [STORAGE_ACCOUNT]
    assert "CONFIGURATION_STORE" in storage[0]["supportedTypes"]

    services = httpx.get(f"{server.url}/metricsServices", timeout=10).json()
    assert {s["name"] for s in services} == {"prometheus", "demo"}
    assert all(s["supportedTypes"] == ["METRICS_STORE"] for s in services)


# ---------------------------------------------------------------- standalone canary analysis


@pytest.mark.parametrize(
    ("experiment", "passed"),
    [pytest.param("web-canary", True, id="healthy"), pytest.param("web-regressed", False, id="regressed")],
)
def test_standalone_canary_analysis(
    server: LiveServer, config_id: str, experiment: str, passed: bool
) -> None:
    begin = time.time() - 600  # a past window: every interval is due, so it completes at once
    request = {
        "scopes": [
            {
                "controlScope": "web-baseline",
                "controlLocation": "us-east-1",
                "experimentScope": experiment,
                "experimentLocation": "us-east-1",
                "startTimeIso": rfc3339(begin),
                "step": 10,
                "extendedScopeParams": {},
            }
        ],
        "thresholds": {"pass": 90, "marginal": 75},
        "lifetimeDurationMins": 6,
        "analysisIntervalMins": 2,
        "beginAfterMins": 0,
        "lookbackMins": 0,
        "notAKayentaField": True,
    }
    started = httpx.post(
        f"{server.url}/standalone_canary_analysis/{config_id}",
        params={
            "application": APPLICATION,
            "metricsAccountName": "demo",
            "storageAccountName": STORAGE_ACCOUNT,
        },
        json=request,
        timeout=10,
    )
    assert started.status_code == 200, started.text
    execution_id = started.json()["canaryAnalysisExecutionId"]

    url = f"{server.url}/standalone_canary_analysis/{execution_id}"
    wait_for(lambda: bool(httpx.get(url, timeout=10).json()["complete"]), 30, "the standalone analysis")
    document = httpx.get(url, timeout=10).json()
    result = document["canaryAnalysisExecutionResult"]
    assert result["didPassThresholds"] is passed
    assert document["canaryConfigId"] == config_id and document["canaryAnalysisExecutionRequest"] == request
    assert document["executionStatus"] == "SUCCEEDED"
    if passed:
        assert len(result["canaryScores"]) == 3  # 6 minutes, an interval every 2
        assert all(score >= 90 for score in result["canaryScores"])
    else:
        assert 1 <= len(result["canaryScores"]) <= 3 and result["canaryScores"][-1] < 75
    assert len(result["canaryExecutionResults"]) == len(result["canaryScores"])
    for execution, score in zip(result["canaryExecutionResults"], result["canaryScores"], strict=True):
        assert execution["result"]["judgeResult"]["score"]["score"] == score
    assert any("notAKayentaField" in w for w in document["warnings"])
    assert result["hasWarnings"] is True


def test_standalone_retrospective_window_from_start_and_end(server: LiveServer, config_id: str) -> None:
    now = time.time()
    request = {
        "scopes": [
            {
                "controlScope": "web-baseline",
                "controlLocation": "us-east-1",
                "experimentScope": "web-canary",
                "experimentLocation": "us-east-1",
                "startTimeIso": rfc3339(now - 600),
                "endTimeIso": rfc3339(now - 240),
                "step": 10,
            }
        ],
        "thresholds": {"pass": 90, "marginal": 75},
        "analysisIntervalMins": 2,
    }
    started = httpx.post(
        f"{server.url}/standalone_canary_analysis/{config_id}",
        params={"metricsAccountName": "demo", "storageAccountName": STORAGE_ACCOUNT},
        json=request,
        timeout=10,
    )
    assert started.status_code == 200, started.text
    url = f"{server.url}/standalone_canary_analysis/{started.json()['canaryAnalysisExecutionId']}"
    wait_for(lambda: bool(httpx.get(url, timeout=10).json()["complete"]), 30, "the standalone analysis")
    result = httpx.get(url, timeout=10).json()["canaryAnalysisExecutionResult"]
    assert len(result["canaryScores"]) == 3  # 6 minutes from start to end, an interval every 2


# ---------------------------------------------------------------- tokens on Kayenta's endpoints


def test_kayenta_endpoints_need_a_token_unless_opened(tmp_path: Path) -> None:
    tokens = SecretStr(f"read:{READ_TOKEN},write:{WRITE_TOKEN}")
    read = {"Authorization": f"Bearer {READ_TOKEN}"}
    write = {"Authorization": f"Bearer {WRITE_TOKEN}"}
    body = kayenta_config(name="guarded")

    with LiveServer(
        settings_for(tmp_path / "closed", api_tokens=tokens, compat_endpoints_open=False)
    ) as live:
        base = live.url
        for path in ("/canaryConfig", "/judges", "/credentials", "/metricsServices", "/canary/x"):
            assert httpx.get(f"{base}{path}", timeout=10).status_code == 401, path
        assert httpx.post(f"{base}/canaryConfig", json=body, timeout=10).status_code == 401
        assert httpx.post(f"{base}/judge", json={}, timeout=10).status_code == 401
        assert httpx.get(f"{base}/canaryConfig", headers=read, timeout=10).status_code == 200
        assert httpx.post(f"{base}/canaryConfig", json=body, headers=read, timeout=10).status_code == 403
        store_config(base, body, headers=write)
        wrong = {"Authorization": "Bearer not-a-token-at-all"}
        assert httpx.get(f"{base}/canaryConfig", headers=wrong, timeout=10).status_code == 401

    with LiveServer(settings_for(tmp_path / "open", api_tokens=tokens, compat_endpoints_open=True)) as live:
        base = live.url
        config_id = store_config(base, body)  # no token: Argo and Spinnaker send none
        assert httpx.get(f"{base}/canaryConfig/{config_id}", timeout=10).status_code == 200
        assert httpx.get(f"{base}/credentials", timeout=10).status_code == 200
        # The native API stays protected.
        assert httpx.get(f"{base}/api/v1/configs", timeout=10).status_code == 401
