"""The HTTP service end to end: a real uvicorn server on a real TCP port, talked to with httpx.

A server runs per database (a SQLite file, then a fresh PostgreSQL database)
for the whole module, with read and write bearer tokens configured. Every
response body and every log record the server emits is kept, so the last
checks can prove that no token ever leaked. ``kayenta-py serve`` is tested as a
subprocess.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from conftest import fresh_postgres_database
from live_server import LiveServer
from prometheus_harness import free_port

import kayenta_py
from kayenta_py import Scope, default_registry, fetch_metric_sets, judge_pairs, load_config, pair_metric_sets
from kayenta_py.examples import EXAMPLES_DIR
from kayenta_py.service.analyses import Service
from kayenta_py.service.runner_support import live_fixed_config
from kayenta_py.service.settings import Settings

WRITE_TOKEN = "writer-token-1"
READ_TOKEN = "reader-token-1"
TOKENS = f"write:{WRITE_TOKEN},read:{READ_TOKEN}"
SECRETS = (WRITE_TOKEN, READ_TOKEN)
CHECKOUT: dict[str, Any] = yaml.safe_load((EXAMPLES_DIR / "checkout.yaml").read_text(encoding="utf-8"))
SMALL_CONFIG: dict[str, Any] = {
    "name": "small",
    "groups": {"latency": 70, "errors": 30},
    "metrics": [
        {"name": "latency", "kind": "latency"},
        {"name": "errors", "kind": "errors", "critical": False},
    ],
}
KAYENTA_PY = Path(sys.executable).with_name("kayenta-py")
INTERVAL_S, INTERVALS, STEP_S = 180, 3, 10.0


# ---------------------------------------------------------------- the server


class Collected(logging.Handler):
    """Keeps every formatted log record (message, arguments and traceback)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class Running:
    """A running server: its URL, its service, and everything it answered and logged."""

    url: str
    service: Service
    logs: Collected
    bodies: list[str] = field(default_factory=list)

    def client(self, token: str | None = WRITE_TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}

        def keep(response: httpx.Response) -> None:
            response.read()
            self.bodies.append(response.text)

        return httpx.Client(base_url=self.url, headers=headers, timeout=30, event_hooks={"response": [keep]})


@contextlib.contextmanager
def serving(settings: Settings, logs: Collected) -> Iterator[Running]:
    """Run the app on a real port in a background thread until the block ends."""
    server = LiveServer(settings, stop_timeout=20)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # uvicorn's loggers do not propagate
        logging.getLogger(name).addHandler(logs)  # (after uvicorn.Config has configured them)
    try:
        with server:
            yield Running(server.url, server.service, logs)
    finally:
        assert not server.thread.is_alive(), "the server did not stop"


@pytest.fixture(scope="module")
def logs() -> Iterator[Collected]:
    """Every log record of the module's servers, at DEBUG for kayenta-py's own loggers."""
    handler = Collected()
    root, ours = logging.getLogger(), logging.getLogger("kayenta_py")
    previous = ours.level
    root.addHandler(handler)
    ours.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        ours.setLevel(previous)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logging.getLogger(name).removeHandler(handler)


@pytest.fixture(scope="module")
def clean_environment() -> Iterator[None]:
    """No KAYENTA_* variable of the caller's environment changes these servers."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("KAYENTA_"):
                patch.delenv(name)
        yield


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    logs: Collected,
    clean_environment: None,
) -> Iterator[Running]:
    """A server with read and write tokens, on SQLite, then on PostgreSQL."""
    data_dir = tmp_path_factory.mktemp("data")
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{data_dir / 'kayenta.db'}"
        else:
            url = stack.enter_context(contextlib.contextmanager(fresh_postgres_database)())
        settings = Settings(database_url=url, data_dir=data_dir, api_tokens=TOKENS)
        yield stack.enter_context(serving(settings, logs))


@pytest.fixture
def client(live: Running) -> Iterator[httpx.Client]:
    with live.client() as http:
        yield http


# ---------------------------------------------------------------- helpers


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def locs(response: httpx.Response) -> list[list[Any]]:
    detail = response.json()["detail"]
    assert isinstance(detail, list), detail
    return [list(item["loc"]) for item in detail]


def named(response: httpx.Response, name: str) -> bool:
    """Return whether a 422 answer's ``detail[].loc`` names the field ``name``."""
    return any(name in (str(part) for part in loc) for loc in locs(response))


def local_judgements(canary: str, start: float) -> list[kayenta_py.CanaryResult]:
    """Judge the demo source's data for each cumulative interval, as the service should.

    A live fixed-mode interval of a native config applies the effective-points rule
    (``live_fixed_config``), so the library judges with it too.
    """
    config = live_fixed_config(load_config(CHECKOUT), default_registry())
    source = default_registry().source_class("demo")()
    results = []
    for index in range(INTERVALS):
        data = fetch_metric_sets(
            config,
            source,
            Scope("baseline"),
            Scope(canary),
            start=start,
            end=start + INTERVAL_S * (index + 1),
            step=STEP_S,
        )
        results.append(judge_pairs(config, pair_metric_sets(config, data.baseline, data.canary)))
    return results


def past_window() -> float:
    """Return a start about 10 minutes ago whose healthy demo data passes every interval.

    The demo source is deterministic noise: a healthy canary differs from its baseline
    only by chance, and on a few percent of windows a statistical judge reports that
    chance as a difference. Choosing a window known to pass keeps the test exact.
    """
    now = math.floor(time.time())
    for shift in range(0, 600, 10):
        start = float(now - 600 - shift)
        if all(r.verdict.value == "pass" for r in local_judgements("canary-healthy", start)):
            return start
    raise AssertionError("no passing healthy window in the last 20 minutes")


def analysis_body(canary: str, start: float, **extra: Any) -> dict[str, Any]:
    return {
        "config": CHECKOUT,
        "baseline_scope": "baseline",
        "canary_scope": canary,
        "source": "demo",
        "start": rfc3339(start),
        "end": rfc3339(start + INTERVAL_S * INTERVALS),
        "interval": "PT3M",
        "step": STEP_S,
        **extra,
    }


def wait_complete(client: httpx.Client, analysis_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/api/v1/analyses/{analysis_id}/verdict")
        assert response.status_code == 200, response.text
        verdict: dict[str, Any] = response.json()
        if verdict["complete"]:
            return verdict
        assert time.monotonic() < deadline, (
            f"analysis {analysis_id} not complete after {timeout} s: {verdict}"
        )
        time.sleep(0.1)


def create(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/v1/analyses", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


# ---------------------------------------------------------------- health, docs, metrics


def test_health_readiness_and_docs(live: Running) -> None:
    with live.client(token=None) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        ready = anonymous.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["database"] is True
        docs = anonymous.get("/docs")
        assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
        spec = anonymous.get("/openapi.json")
        assert spec.status_code == 200
        paths = spec.json()["paths"]
        assert {
            "/api/v1/analyses",
            "/api/v1/analyses/{analysis_id}",
            "/api/v1/analyses/{analysis_id}/verdict",
            "/api/v1/analyses/{analysis_id}/cancel",
            "/api/v1/judge",
            "/api/v1/configs",
            "/api/v1/configs/{name}",
        } <= set(paths)


# ---------------------------------------------------------------- configs


def test_configs_crud(client: httpx.Client) -> None:
    name = unique("checkout")
    created = client.post("/api/v1/configs", json={"name": name, "config": CHECKOUT})
    assert created.status_code == 201, created.text
    assert (created.json()["name"], created.json()["version"]) == (name, 1)

    got = client.get(f"/api/v1/configs/{name}")
    assert got.status_code == 200 and got.json()["version"] == 1 and got.json()["config"] == CHECKOUT
    assert name in [c["name"] for c in client.get("/api/v1/configs").json()]

    changed = {**CHECKOUT, "description": "version two"}
    updated = client.put(f"/api/v1/configs/{name}", json={"config": changed})
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2
    assert client.get(f"/api/v1/configs/{name}").json()["config"]["description"] == "version two"
    first = client.get(f"/api/v1/configs/{name}", params={"version": 1})
    assert first.status_code == 200 and first.json()["config"] == CHECKOUT
    versions = client.get(f"/api/v1/configs/{name}/versions")
    assert versions.status_code == 200 and [v["version"] for v in versions.json()] == [1, 2]

    deleted = client.delete(f"/api/v1/configs/{name}")
    assert deleted.status_code == 204 and deleted.content == b""
    gone = client.get(f"/api/v1/configs/{name}")
    assert gone.status_code == 404
    assert gone.headers["content-type"].startswith("application/json") and "detail" in gone.json()
    assert name not in [c["name"] for c in client.get("/api/v1/configs").json()]
    assert client.delete(f"/api/v1/configs/{name}").status_code == 404
    assert client.put(f"/api/v1/configs/{name}", json={"config": CHECKOUT}).status_code == 404
    missing = client.get(f"/api/v1/configs/{unique('never')}/versions")
    assert missing.status_code == 404 and "detail" in missing.json()


def test_invalid_config_is_422_naming_the_path(client: httpx.Client) -> None:
    broken = json.loads(json.dumps(CHECKOUT))
    broken["metrics"][1]["knd"] = broken["metrics"][1].pop("kind")
    response = client.post("/api/v1/configs", json={"name": unique("broken"), "config": broken})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    hits = [d for d in detail if "config" in d["loc"] and any("metrics" in str(p) for p in d["loc"])]
    assert hits, detail
    assert any("did you mean" in d["msg"] for d in hits), detail
    assert any("knd" in str(d["loc"]) for d in hits), detail
    bad_name = client.post("/api/v1/configs", json={"name": "no spaces allowed", "config": CHECKOUT})
    assert bad_name.status_code == 422 and named(bad_name, "name")


def test_duplicate_config_is_409(client: httpx.Client) -> None:
    name = unique("dup")
    assert client.post("/api/v1/configs", json={"name": name, "config": CHECKOUT}).status_code == 201
    again = client.post("/api/v1/configs", json={"name": name, "config": CHECKOUT})
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/json") and "detail" in again.json()
    assert [v["version"] for v in client.get(f"/api/v1/configs/{name}/versions").json()] == [1]


# ---------------------------------------------------------------- analyses


def test_regressed_canary_fails_and_healthy_passes(client: httpx.Client, live: Running) -> None:
    start = past_window()
    regressed = create(client, analysis_body("canary-regressed", start))
    healthy = create(client, analysis_body("canary-healthy", start))
    for created in (regressed, healthy):
        assert created["status"] in ("running", "completed")
        assert set(created["links"]) >= {"self", "verdict", "cancel"}
        assert created["links"]["verdict"] == f"{live.url}/api/v1/analyses/{created['id']}/verdict"

    assert wait_complete(client, regressed["id"])["verdict"] == "fail"
    assert wait_complete(client, healthy["id"])["verdict"] == "pass"

    expected = local_judgements("canary-healthy", start)
    document = client.get(healthy["links"]["self"]).json()
    assert (document["status"], document["verdict"], document["complete"]) == ("completed", "pass", True)
    assert document["intervals_total"] == INTERVALS
    intervals = document["intervals"]
    assert len(intervals) == document["intervals_total"]
    assert [i["index"] for i in intervals] == list(range(INTERVALS))
    metric_names = [m["name"] for m in CHECKOUT["metrics"]]
    for interval, local in zip(intervals, expected, strict=True):
        assert {"index", "window", "score", "verdict", "metrics"} <= set(interval)
        assert epoch(interval["window"]["start"]) == pytest.approx(start)
        assert epoch(interval["window"]["end"]) == pytest.approx(start + INTERVAL_S * (interval["index"] + 1))
        assert interval["verdict"] == "pass"
        # the service judged exactly the data the library judges for that window
        assert interval["score"] == pytest.approx(local.score)
        assert [m["name"] for m in interval["metrics"]] == metric_names
        assert [m["classification"] for m in interval["metrics"]] == [
            m.classification.value for m in local.metrics
        ]
    assert document["score"] == pytest.approx(intervals[-1]["score"])

    failed = client.get(regressed["links"]["self"]).json()
    assert (failed["status"], failed["verdict"], failed["complete"]) == ("completed", "fail", True)
    indices = [i["index"] for i in failed["intervals"]]
    assert indices == sorted(set(indices)) and indices[0] == 0
    assert len(indices) < INTERVALS  # failed fast at the first failing interval
    assert failed["intervals"][-1]["verdict"] == "fail"
    assert "fail" in failed["reason"]
    by_name = {m["name"]: m for m in failed["intervals"][0]["metrics"]}
    assert by_name["p50-latency"]["classification"] == "High"


def test_list_analyses_filters_and_pages(client: httpx.Client) -> None:
    name = unique("listed")
    assert client.post("/api/v1/configs", json={"name": name, "config": CHECKOUT}).status_code == 201
    start = past_window()
    ids = []
    for _ in range(2):
        body = analysis_body("canary-healthy", start)
        del body["config"]
        ids.append(create(client, {**body, "config_name": name})["id"])
    for analysis_id in ids:
        wait_complete(client, analysis_id)

    page = client.get("/api/v1/analyses", params={"config": name, "status": "completed", "limit": 1})
    assert page.status_code == 200
    first = page.json()
    assert (first["total"], first["limit"], first["offset"], first["next_offset"]) == (2, 1, 0, 1)
    assert [item["id"] for item in first["items"]] == [ids[1]]  # newest first
    assert first["items"][0]["config_name"] == name and first["items"][0]["config_version"] == 1
    second = client.get(
        "/api/v1/analyses", params={"config": name, "status": "completed", "limit": 1, "offset": 1}
    ).json()
    assert [item["id"] for item in second["items"]] == [ids[0]] and second["next_offset"] is None

    completed = client.get("/api/v1/analyses", params={"status": "completed", "limit": 500}).json()
    assert completed["total"] >= 2
    assert {item["status"] for item in completed["items"]} == {"completed"}
    assert all("intervals" not in item for item in completed["items"])
    assert client.get("/api/v1/analyses", params={"status": "running", "config": name}).json()["total"] == 0
    bad = client.get("/api/v1/analyses", params={"status": "finished"})
    assert bad.status_code == 422 and named(bad, "status")
    assert client.get("/api/v1/analyses", params={"limit": 0}).status_code == 422


def test_live_analysis_cancel(client: httpx.Client, live: Running) -> None:
    body = {
        "config": CHECKOUT,
        "baseline_scope": "baseline",
        "canary_scope": "canary-healthy",
        "source": "demo",
        "lifetime": "PT1M",
        "interval": "PT10S",
        "step": 1,
    }
    created = create(client, body)
    assert created["status"] == "running"
    pending = client.get(created["links"]["verdict"])
    assert pending.status_code == 200
    assert pending.json()["verdict"] == "pending" and pending.json()["complete"] is False
    document = client.get(created["links"]["self"]).json()
    assert document["intervals_total"] == 6 and document["intervals"] == []

    with live.client(READ_TOKEN) as reader:
        assert reader.post(created["links"]["cancel"]).status_code == 403
    cancelled = client.post(created["links"]["cancel"])
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"

    verdict = client.get(created["links"]["verdict"])
    assert verdict.status_code == 200
    assert verdict.headers["content-type"].startswith("application/json")
    assert set(verdict.json()) == {"verdict", "score", "complete", "reason"}
    assert verdict.json()["verdict"] == "fail" and verdict.json()["complete"] is True
    assert isinstance(verdict.json()["reason"], str) and verdict.json()["reason"]
    assert client.get(created["links"]["self"]).json()["status"] == "cancelled"
    listed = client.get("/api/v1/analyses", params={"status": "cancelled", "limit": 500}).json()
    assert created["id"] in [item["id"] for item in listed["items"]]
    # cancelling again changes nothing
    again = client.post(created["links"]["cancel"])
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


def test_unknown_analysis_is_404_json(client: httpx.Client) -> None:
    for path in ("/api/v1/analyses/nope", "/api/v1/analyses/nope/verdict"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/json") and "detail" in response.json()
    assert client.post("/api/v1/analyses/nope/cancel").status_code == 404


# ---------------------------------------------------------------- validation


def valid_body() -> dict[str, Any]:
    return {
        "config": CHECKOUT,
        "baseline_scope": "baseline",
        "canary_scope": "canary-healthy",
        "source": "demo",
        "lifetime": "PT30M",
        "interval": "PT1M",
    }


def without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


@pytest.mark.parametrize(
    ("body", "field_name"),
    [
        (without(valid_body(), "baseline_scope"), "baseline_scope"),
        ({**valid_body(), "step": -1}, "step"),
        ({**without(valid_body(), "baseline_scope"), "basline_scope": "baseline"}, "basline_scope"),
        ({**valid_body(), "lifetime": "thirty"}, "lifetime"),
        ({**valid_body(), "interval": "every minute"}, "interval"),
        ({**valid_body(), "start": "yesterday"}, "start"),
        ({**valid_body(), "thresholds": {"pass": 150}}, "thresholds"),
        ({**valid_body(), "scope_params": {"namespace": ["not", "a", "string"]}}, "scope_params"),
        ({**valid_body(), "canary_scope": ""}, "canary_scope"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_malformed_analysis_is_422_naming_the_field(
    client: httpx.Client, body: dict[str, Any], field_name: str
) -> None:
    before = client.get("/api/v1/analyses", params={"limit": 1}).json()["total"]
    response = client.post("/api/v1/analyses", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert named(response, field_name), response.json()
    assert client.get("/api/v1/analyses", params={"limit": 1}).json()["total"] == before


def test_unknown_stored_config_is_404_naming_the_field(client: httpx.Client) -> None:
    before = client.get("/api/v1/analyses", params={"limit": 1}).json()["total"]
    response = client.post(
        "/api/v1/analyses", json={**without(valid_body(), "config"), "config_name": "no-such-config"}
    )
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert named(response, "config_name") and "no-such-config" in response.text
    assert client.get("/api/v1/analyses", params={"limit": 1}).json()["total"] == before


def test_other_invalid_analyses_are_422(client: httpx.Client) -> None:
    unknown_source = client.post("/api/v1/analyses", json={**valid_body(), "source": "nope"})
    assert unknown_source.status_code == 422, unknown_source.text
    assert "source" in unknown_source.text
    too_long = client.post("/api/v1/analyses", json={**valid_body(), "interval": "PT2H"})
    assert too_long.status_code == 422 and "interval" in too_long.text
    both = client.post(
        "/api/v1/analyses",
        json={**without(valid_body(), "config"), "config_name": "x"} | {"config": CHECKOUT},
    )
    assert both.status_code == 422
    neither = client.post("/api/v1/analyses", json=without(valid_body(), "config"))
    assert neither.status_code == 422 and "config" in neither.text
    broken = json.loads(json.dumps(CHECKOUT))
    broken["metrics"][0]["directoin"] = "increase"
    bad_config = client.post("/api/v1/analyses", json={**valid_body(), "config": broken})
    assert bad_config.status_code == 422
    assert any("config" in loc and any("metrics" in str(p) for p in loc) for loc in locs(bad_config))
    not_json = client.post(
        "/api/v1/analyses", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 422 and "detail" in not_json.json()


@pytest.mark.parametrize("endpoint", ["/api/v1/analyses", "/api/v1/judge"])
def test_inverted_thresholds_are_422(client: httpx.Client, endpoint: str) -> None:
    inverted = {"pass": 50, "marginal": 80}
    if endpoint == "/api/v1/judge":
        body: dict[str, Any] = {"config": SMALL_CONFIG, "baseline": {}, "canary": {}, "thresholds": inverted}
    else:
        body = {**valid_body(), "thresholds": inverted}
    response = client.post(endpoint, json=body)
    assert response.status_code == 422, f"{response.status_code} {response.text}"
    assert named(response, "thresholds")


@pytest.mark.parametrize(
    ("extra", "field_name"), [({"source": "nope"}, "source"), ({"interval": "PT2H"}, "interval")]
)
def test_service_level_422_loc_names_the_field(
    client: httpx.Client, extra: dict[str, Any], field_name: str
) -> None:
    response = client.post("/api/v1/analyses", json={**valid_body(), **extra})
    assert response.status_code == 422
    assert named(response, field_name), response.json()


# ---------------------------------------------------------------- judge


def test_judge_endpoint(client: httpx.Client) -> None:
    rng = np.random.default_rng(11)
    baseline: dict[str, list[float | None]] = {
        "latency": [float(v) for v in rng.lognormal(0.0, 0.1, 60)],
        "errors": [float(v) for v in rng.gamma(4.0, 0.001, 60)],
    }
    canary: dict[str, list[float | None]] = {
        "latency": [float(v) for v in rng.lognormal(0.0, 0.1, 60) * 1.6],
        "errors": [float(v) for v in rng.gamma(4.0, 0.001, 60)],
    }
    canary["latency"][4] = None
    baseline["errors"][7] = None
    response = client.post(
        "/api/v1/judge", json={"config": SMALL_CONFIG, "baseline": baseline, "canary": canary}
    )
    assert response.status_code == 200, response.text
    document = response.json()
    assert {"verdict", "score", "reason", "thresholds", "groups", "metrics"} <= set(document)
    by_name = {m["name"]: m for m in document["metrics"]}
    assert by_name["latency"]["classification"] == "High"
    assert document["verdict"] == "fail"
    assert {"min", "max", "mean", "std", "count"} <= set(by_name["latency"]["canary"])

    def nan(values: dict[str, list[float | None]]) -> dict[str, list[float]]:
        return {k: [math.nan if v is None else v for v in series] for k, series in values.items()}

    local = kayenta_py.judge(SMALL_CONFIG, nan(baseline), nan(canary))
    assert document == json.loads(json.dumps(local.to_dict()))

    lenient = client.post(
        "/api/v1/judge",
        json={
            "config": SMALL_CONFIG,
            "baseline": baseline,
            "canary": canary,
            "thresholds": {"pass": 10, "marginal": 5},
        },
    )
    assert lenient.status_code == 200 and lenient.json()["thresholds"] == {"pass": 10, "marginal": 5}
    unknown = client.post(
        "/api/v1/judge", json={"config_name": unique("none"), "baseline": baseline, "canary": canary}
    )
    assert unknown.status_code == 404 and named(unknown, "config_name")
    missing = client.post("/api/v1/judge", json={"config": SMALL_CONFIG, "baseline": baseline})
    assert missing.status_code == 422 and named(missing, "canary")


# ---------------------------------------------------------------- security


def test_tokens_and_scopes(live: Running) -> None:
    body = {"name": unique("secured"), "config": SMALL_CONFIG}
    with live.client(token=None) as anonymous:
        refused = anonymous.post("/api/v1/configs", json=body)
        assert refused.status_code == 401
        assert refused.headers["content-type"].startswith("application/json") and "detail" in refused.json()
        assert refused.headers["www-authenticate"].lower().startswith("bearer")
        assert anonymous.get("/api/v1/analyses").status_code == 401
        basic = anonymous.post(
            "/api/v1/configs", json=body, headers={"Authorization": f"Basic {WRITE_TOKEN}"}
        )
        assert basic.status_code == 401
    with live.client("wrong-token-123") as stranger:
        assert stranger.post("/api/v1/configs", json=body).status_code == 401
        assert stranger.get("/api/v1/configs").status_code == 401
    with live.client(WRITE_TOKEN[:-1]) as almost:
        assert almost.get("/api/v1/configs").status_code == 401
    with live.client(READ_TOKEN) as reader:
        forbidden = reader.post("/api/v1/configs", json=body)
        assert forbidden.status_code == 403 and "detail" in forbidden.json()
        assert (
            reader.post(
                "/api/v1/judge", json={"config": SMALL_CONFIG, "baseline": {}, "canary": {}}
            ).status_code
            == 403
        )
        assert reader.get("/api/v1/configs").status_code == 200
        assert reader.get("/api/v1/analyses").status_code == 200
    with live.client(WRITE_TOKEN) as writer:
        assert writer.post("/api/v1/configs", json=body).status_code == 201
        assert writer.get(f"/api/v1/configs/{body['name']}").status_code == 200  # write implies read
        assert writer.delete(f"/api/v1/configs/{body['name']}").status_code == 204


def test_metrics_after_an_analysis_completes(client: httpx.Client, live: Running) -> None:
    start = past_window()
    wait_complete(client, create(client, analysis_body("canary-healthy", start))["id"])
    with live.client(token=None) as anonymous:
        response = anonymous.get("/metrics")
    assert response.status_code == 200
    text = response.text
    assert "kayenta_judgements_total" in text
    completed = re.search(r'^kayenta_analyses\{status="completed"\} (\S+)$', text, re.MULTILINE)
    assert completed is not None and float(completed.group(1)) >= 1
    judgements = re.search(r'^kayenta_judgements_total\{verdict="pass"\} (\S+)$', text, re.MULTILINE)
    assert judgements is not None and float(judgements.group(1)) >= INTERVALS
    assert "kayenta_judge_duration_seconds_bucket" in text
    assert "kayenta_source_errors" in text


def test_tokens_never_appear_in_answers_or_logs(live: Running) -> None:
    # provoke every kind of answer with the tokens in play, then look at everything kept so far
    with live.client(READ_TOKEN) as reader:
        reader.post("/api/v1/analyses", json=valid_body())
        reader.get("/api/v1/analyses/unknown")
    with live.client(WRITE_TOKEN) as writer:
        writer.post("/api/v1/analyses", json={**valid_body(), "lifetime": "thirty"})
        writer.get("/openapi.json")
        writer.get("/metrics")
        writer.get("/readyz")
    with live.client(WRITE_TOKEN + "x") as stranger:
        stranger.get("/api/v1/configs")
    assert len(live.bodies) >= 7
    assert live.logs.lines, "the server logged nothing: the capture is not working"
    assert any("kayenta_py" in line for line in live.logs.lines)
    for secret in SECRETS:
        assert not [b for b in live.bodies if secret in b]
        assert not [line for line in live.logs.lines if secret in line]
        assert secret not in repr(live.service.settings)
        assert secret not in repr(live.service.store)


# ---------------------------------------------------------------- body limit


@pytest.fixture(scope="module")
def small_bodies(
    tmp_path_factory: pytest.TempPathFactory, logs: Collected, clean_environment: None
) -> Iterator[Running]:
    """A server accepting request bodies of at most 2000 bytes."""
    data_dir = tmp_path_factory.mktemp("small")
    settings = Settings(
        database_url=f"sqlite:///{data_dir / 'kayenta.db'}",
        data_dir=data_dir,
        api_tokens=TOKENS,
        max_body_bytes=2000,
    )
    with serving(settings, logs) as running:
        yield running


def big_config_body() -> dict[str, Any]:
    return {"name": unique("big"), "config": {**SMALL_CONFIG, "description": "x" * 10_000}}


def test_body_limit_is_413_json(small_bodies: Running) -> None:
    with small_bodies.client() as writer:
        small = writer.post("/api/v1/configs", json={"name": unique("small"), "config": SMALL_CONFIG})
        assert small.status_code == 201, small.text
        body = big_config_body()
        large = writer.post("/api/v1/configs", json=body)
        assert large.status_code == 413
        assert large.headers["content-type"].startswith("application/json")
        assert "2000" in large.json()["detail"]
        assert writer.get(f"/api/v1/configs/{body['name']}").status_code == 404
        # the server still answers afterwards
        assert writer.get("/healthz").status_code == 200


def test_body_limit_applies_to_chunked_bodies(small_bodies: Running) -> None:
    body = big_config_body()
    payload = json.dumps(body).encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent with chunked transfer encoding
        for offset in range(0, len(payload), 1000):
            yield payload[offset : offset + 1000]

    with small_bodies.client() as writer:
        response = writer.post(
            "/api/v1/configs", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert writer.get(f"/api/v1/configs/{body['name']}").status_code == 404
    assert response.status_code == 413, response.text
    assert "detail" in response.json()


# ---------------------------------------------------------------- kayenta-py serve


def cli_environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAYENTA_")}
    env.update({"KAYENTA_DATA_DIR": str(tmp_path / "data"), **extra})
    return env


def run_kayenta_py(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``kayenta-py *args`` to its end in ``tmp_path`` with :func:`cli_environment`, output captured."""
    return subprocess.run(
        [str(KAYENTA_PY), *args],
        cwd=tmp_path,
        env=cli_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_refuses_a_public_bind_without_tokens(tmp_path: Path) -> None:
    began = time.monotonic()
    done = run_kayenta_py(tmp_path, "serve", "--host", "0.0.0.0", "--port", str(free_port()))
    assert done.returncode == 2, done.stderr
    assert time.monotonic() - began < 30
    assert "KAYENTA_API_TOKENS" in done.stderr and "--insecure" in done.stderr


def test_serve_starts_on_a_public_bind_with_tokens(tmp_path: Path) -> None:
    token = "cli-writer-token-42"
    port = free_port()
    out, err = (tmp_path / "stdout").open("w+"), (tmp_path / "stderr").open("w+")
    process = subprocess.Popen(
        [str(KAYENTA_PY), "serve", "--host", "0.0.0.0", "--port", str(port)],
        cwd=tmp_path,
        env=cli_environment(tmp_path, KAYENTA_API_TOKENS=f"write:{token}"),
        stdout=out,
        stderr=err,
    )
    try:
        deadline = time.monotonic() + 40
        while True:
            if process.poll() is not None:
                err.seek(0)
                pytest.fail(f"serve exited with {process.returncode}: {err.read()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "serve did not become ready in 40 s"
            time.sleep(0.1)
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/analyses", timeout=10).status_code == 401
        authorized = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/analyses",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert authorized.status_code == 200
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    out.seek(0)
    err.seek(0)
    output = out.read() + err.read()
    out.close()
    err.close()
    assert "0.0.0.0" in output
    assert token not in output
    assert (tmp_path / "data" / "kayenta.db").is_file()  # the embedded default: SQLite in the data dir


def test_serve_names_an_unknown_setting(tmp_path: Path) -> None:
    settings = tmp_path / "settings.yaml"
    settings.write_text("port: 8099\nprometheus_urll: http://prometheus:9090\n", encoding="utf-8")
    done = run_kayenta_py(tmp_path, "serve", "--settings", str(settings))
    assert done.returncode == 2, done.stderr
    assert "prometheus_urll" in done.stderr
