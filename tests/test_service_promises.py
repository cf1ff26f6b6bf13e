"""The service's promises that keep a wrong pass out, over real HTTP (issue 11, parts 5 and 6).

Every test talks to a real uvicorn server on a loopback port (``live_server.LiveServer``); the
ones that involve the store run on a SQLite file and on a fresh PostgreSQL database.

1. ``config_version`` pins that stored version of a config, at every door that names a stored
   config (native analyses and judge, Flagger metadata, Kayenta's ``/canary/{configId}``); an
   analysis keeps judging with the version it started with when newer versions are stored.
2. Kayenta-compatible writes never change or delete a config created through the native API
   without a write token, even with ``compat_endpoints_open``.
4. The ``demo`` source is used only when asked; an analysis with no source configured is a 422
   naming the settings.
6. Thresholds that would let a score of 0 pass are a 422 naming the field, at every door.

The data come from the ``demo`` source (deterministic; a scope containing ``regressed`` has 4x
the errors). ``STRICT`` fails that canary, ``LENIENT`` passes it: which one judged is visible.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import LiveServer
from sqlalchemy import text

from kayenta_py.service.settings import Settings
from kayenta_py.service.store.migrate import upgrade
from kayenta_py.service.store.repository import Store


def _errors_config(name: str, allowed_increase: str) -> dict[str, Any]:
    """One critical errors metric judged by bounds on its mean (deterministic on the demo data)."""
    return {
        "name": name,
        "thresholds": {"pass": 95, "marginal": 75},
        "metrics": [
            {
                "name": "error-ratio",
                "kind": "errors",
                "judge": {"type": "threshold", "aggregate": "mean", "max_increase": allowed_increase},
            }
        ],
    }


STRICT = _errors_config("strict", "+50%")  # the regressed canary's 4x errors fail it
LENIENT = _errors_config("lenient", "+1000%")  # ... and pass this one
WRITE_TOKEN = "promise-writer-0001"
READ_TOKEN = "promise-reader-0001"
TOKENS = f"write:{WRITE_TOKEN},read:{READ_TOKEN}"
WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}"}
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
SETTINGS_NAMES = ("KAYENTA_PROMETHEUS_URL", "KAYENTA_DEFAULT_SOURCE")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No KAYENTA_* variable of the caller's environment changes these servers."""
    for name in list(os.environ):
        if name.startswith("KAYENTA_"):
            monkeypatch.delenv(name)


def serve(database_url: str, tmp_path: Path, **settings: Any) -> LiveServer:
    """A server on ``database_url`` (its data dir in ``tmp_path``) with ``settings``."""
    return LiveServer(Settings(database_url=database_url, data_dir=tmp_path, **settings))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'promises.db'}"


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def past_window(**extra: Any) -> dict[str, Any]:
    """An analysis request of the regressed canary over a window in the past (judged at once)."""
    now = time.time()
    return {
        "baseline_scope": "baseline",
        "canary_scope": "canary-regressed",
        "source": "demo",
        "start": rfc3339(now - 300),
        "end": rfc3339(now - 60),
        "step": 5,
        **extra,
    }


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(0.2)


def finished(client: httpx.Client, analysis_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """Wait for an analysis to complete; return it with its intervals."""
    wait_until(
        lambda: bool(client.get(f"/api/v1/analyses/{analysis_id}/verdict").json()["complete"]),
        timeout,
        f"analysis {analysis_id}",
    )
    document: dict[str, Any] = client.get(f"/api/v1/analyses/{analysis_id}").json()
    return document


def total(client: httpx.Client) -> int:
    count: int = client.get("/api/v1/analyses", params={"limit": 1}).json()["total"]
    return count


def detail_loc(answer: httpx.Response) -> list[list[Any]]:
    assert answer.headers["content-type"].startswith("application/json"), answer.text
    return [list(item["loc"]) for item in answer.json()["detail"]]


def store_versions(client: httpx.Client, name: str, *bodies: dict[str, Any]) -> None:
    """Store ``bodies`` as versions 1, 2, ... of the native config ``name``."""
    first = client.post("/api/v1/configs", json={"name": name, "config": bodies[0]})
    assert first.status_code == 201, first.text
    for version, body in enumerate(bodies[1:], start=2):
        put = client.put(f"/api/v1/configs/{name}", json={"config": body})
        assert put.status_code == 200 and put.json()["version"] == version, put.text


# ================================================================ 1. config_version pins


def test_config_version_pins_that_version_of_the_stored_config(database_url: str, tmp_path: Path) -> None:
    """The reported bug: version 1 (strict) was pinned, version 2 (lenient) judged, and a regressed
    canary passed. Pinned, version 1 fails it; version 2 and the latest pass it; an unknown version
    is a 404 naming config and version, and starts nothing."""
    with serve(database_url, tmp_path) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        store_versions(client, "checkout", STRICT, LENIENT)

        pinned = client.post("/api/v1/analyses", json=past_window(config_name="checkout", config_version=1))
        assert pinned.status_code == 201, pinned.text
        document = finished(client, pinned.json()["id"])
        assert (document["verdict"], document["config_version"]) == ("fail", 1), document["reason"]
        assert document["config"] == STRICT

        for version in (2, None):  # the lenient version: by number, and as the latest
            body = past_window(config_name="checkout", **({"config_version": version} if version else {}))
            lenient = finished(client, client.post("/api/v1/analyses", json=body).json()["id"])
            assert (lenient["verdict"], lenient["config_version"]) == ("pass", 2), lenient["reason"]

        before = total(client)
        missing = client.post("/api/v1/analyses", json=past_window(config_name="checkout", config_version=3))
        assert missing.status_code == 404, missing.text
        assert detail_loc(missing) == [["body", "config_version"]]
        message = missing.json()["detail"][0]["msg"]
        assert "'checkout'" in message and "version 3" in message and "latest: 2" in message
        unknown = client.post("/api/v1/analyses", json=past_window(config_name="nope", config_version=1))
        assert unknown.status_code == 404 and detail_loc(unknown) == [["body", "config_name"]]
        inline = client.post("/api/v1/analyses", json=past_window(config=STRICT, config_version=1))
        assert inline.status_code == 422 and detail_loc(inline) == [["body", "config_version"]]
        assert total(client) == before

        # a deleted config starts nothing, pinned or not (its history stays for its analyses)
        assert client.delete("/api/v1/configs/checkout").status_code == 204
        gone = client.post("/api/v1/analyses", json=past_window(config_name="checkout", config_version=1))
        assert gone.status_code == 404 and "deleted" in gone.text
        assert client.get(f"/api/v1/analyses/{pinned.json()['id']}").json()["config"] == STRICT


def test_a_live_analysis_keeps_its_version_when_newer_ones_are_stored(
    database_url: str, tmp_path: Path
) -> None:
    """Pinned to version 1, a live analysis still judges with it after version 2 is stored:
    every interval, also those judged after the change, fails the regressed canary."""
    with serve(database_url, tmp_path) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        store_versions(client, "live", STRICT)
        body = {
            "config_name": "live",
            "config_version": 1,
            "baseline_scope": "baseline",
            "canary_scope": "canary-regressed",
            "source": "demo",
            "lifetime": "PT6S",
            "interval": "PT2S",
            "step": 1,
            "fail_fast": False,  # judge every interval
        }
        created = client.post("/api/v1/analyses", json=body)
        assert created.status_code == 201, created.text
        store_versions_after = client.put("/api/v1/configs/live", json={"config": LENIENT})
        assert store_versions_after.status_code == 200 and store_versions_after.json()["version"] == 2
        document = finished(client, created.json()["id"])
        assert document["verdict"] == "fail" and document["config_version"] == 1
        assert len(document["intervals"]) == 3
        assert all(interval["verdict"] == "fail" for interval in document["intervals"])
        # and an unpinned analysis takes the latest version when it starts
        latest = client.post(
            "/api/v1/analyses", json={k: v for k, v in body.items() if k != "config_version"}
        )
        assert client.get(f"/api/v1/analyses/{latest.json()['id']}").json()["config_version"] == 2
        client.post(f"/api/v1/analyses/{latest.json()['id']}/cancel")


def test_the_judge_endpoint_pins_config_version(database_url: str, tmp_path: Path) -> None:
    """``POST /api/v1/judge`` with config_name judges with the pinned version."""
    baseline = {"error-ratio": [0.002] * 30}
    canary = {"error-ratio": [0.008] * 30}  # 4x the errors
    with serve(database_url, tmp_path) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        store_versions(client, "judged", STRICT, LENIENT)

        def judge(**fields: Any) -> httpx.Response:
            return client.post("/api/v1/judge", json={"baseline": baseline, "canary": canary, **fields})

        assert judge(config_name="judged", config_version=1).json()["verdict"] == "fail"
        assert judge(config_name="judged", config_version=2).json()["verdict"] == "pass"
        assert judge(config_name="judged").json()["verdict"] == "pass"  # the latest
        missing = judge(config_name="judged", config_version=7)
        assert missing.status_code == 404 and detail_loc(missing) == [["body", "config_version"]]
        assert "version 7" in missing.text
        inline = judge(config=STRICT, config_version=1)
        assert inline.status_code == 422 and detail_loc(inline) == [["body", "config_version"]]


def test_flagger_metadata_pins_config_version(database_url: str, tmp_path: Path) -> None:
    """Flagger's ``metadata.config_version`` (a string, as Flagger's metadata are) pins the version."""
    with serve(database_url, tmp_path) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        store_versions(client, "podinfo", STRICT, LENIENT)

        def hook(name: str, checksum: str, **meta: str) -> httpx.Response:
            metadata = {"config": "podinfo", "lifetime": "PT4S", "interval": "PT2S", "step": "1"}
            payload = {
                "name": name,
                "namespace": "test",
                "phase": "Progressing",
                "checksum": checksum,
                "metadata": {**metadata, "source": "demo", "canary_scope": "podinfo-regressed", **meta},
            }
            return client.post("/api/v1/flagger/confirm-rollout", json=payload)

        started = hook("pinned", "c1", config_version="1")
        assert started.status_code == 200, started.text
        analysis_id = started.text.split()[1]
        document = finished(client, analysis_id)
        assert (document["verdict"], document["config_version"]) == ("fail", 1), document["reason"]
        latest = hook("latest", "c2")
        assert client.get(f"/api/v1/analyses/{latest.text.split()[1]}").json()["config_version"] == 2
        missing = hook("missing", "c3", config_version="3")
        assert missing.status_code == 404 and detail_loc(missing) == [["body", "metadata", "config_version"]]


def test_kayenta_canary_keeps_the_version_stored_when_it_started(database_url: str, tmp_path: Path) -> None:
    """``POST /canary/{configId}`` reads the config once: a PUT before the window ends changes
    nothing, and the execution records the version it judged with."""
    with serve(database_url, tmp_path) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        stored = client.post("/canaryConfig", json={**STRICT, "id": "web"})
        assert stored.status_code == 200, stored.text
        now = time.time()
        window = {"start": rfc3339(now - 60), "end": rfc3339(now + 3), "step": 1}
        request = {
            "scopes": {
                "default": {
                    "controlScope": {"scope": "baseline", **window},
                    "experimentScope": {"scope": "canary-regressed", **window},
                }
            },
            "thresholds": {"pass": 95, "marginal": 75},
        }
        started = client.post("/canary/web", params={"metricsAccountName": "demo"}, json=request)
        assert started.status_code == 200, started.text
        execution_id = started.json()["canaryExecutionId"]
        assert client.put("/canaryConfig/web", json=LENIENT).status_code == 200  # before it is judged
        wait_until(
            lambda: bool(client.get(f"/canary/{execution_id}").json()["complete"]), 30, "the execution"
        )
        status = client.get(f"/canary/{execution_id}").json()
        assert status["result"]["judgeResult"]["score"]["classification"] == "Fail"
        assert status["config"] == STRICT and status["canaryConfigId"] == "web"
        analysis = client.get(f"/api/v1/analyses/{execution_id}").json()
        assert (analysis["config_name"], analysis["config_version"]) == ("web", 1)


# ================================================================ 2. Kayenta writes and native configs


def test_open_compat_endpoints_cannot_change_native_configs_without_a_write_token(
    database_url: str, tmp_path: Path
) -> None:
    """The reported bug: with compat endpoints open, an anonymous PUT /canaryConfig/{id} lowered
    a native config's thresholds and DELETE removed it. Now both need a write token; configs
    created through the Kayenta API stay writable without one."""
    with serve(database_url, tmp_path, api_tokens=TOKENS, compat_endpoints_open=True) as server:
        base = server.url
        native = httpx.post(
            f"{base}/api/v1/configs", json={"name": "native", "config": STRICT}, headers=WRITE, timeout=10
        )
        assert native.status_code == 201, native.text
        weakened = {**STRICT, "thresholds": {"pass": 1, "marginal": 0.5}}

        def native_config() -> dict[str, Any]:
            got = httpx.get(f"{base}/api/v1/configs/native", headers=READ, timeout=10)
            assert got.status_code == 200, got.text
            document: dict[str, Any] = got.json()
            return document

        for headers, status in (({}, 401), ({"Authorization": "Bearer not-a-token"}, 401), (READ, 403)):
            put = httpx.put(f"{base}/canaryConfig/native", json=weakened, headers=headers, timeout=10)
            assert put.status_code == status, put.text
            assert "native API" in put.text and put.headers["content-type"].startswith("application/json")
            delete = httpx.delete(f"{base}/canaryConfig/native", headers=headers, timeout=10)
            assert delete.status_code == status, delete.text
        clash = httpx.post(f"{base}/canaryConfig", json={**weakened, "id": "native"}, timeout=10)
        assert clash.status_code == 401, clash.text
        taken = httpx.post(
            f"{base}/canaryConfig", json={**weakened, "id": "native"}, headers=WRITE, timeout=10
        )
        assert taken.status_code == 409 and detail_loc(taken) == [["body", "id"]]
        assert (native_config()["version"], native_config()["config"]) == (1, STRICT)

        # Reads stay open (Argo and Spinnaker look configs up), and the write token may write.
        assert httpx.get(f"{base}/canaryConfig/native", timeout=10).status_code == 200
        put = httpx.put(f"{base}/canaryConfig/native", json=LENIENT, headers=WRITE, timeout=10)
        assert put.status_code == 200, put.text
        assert (native_config()["version"], native_config()["config"]) == (2, LENIENT)

        # A deleted native config's name cannot be taken over without a token either.
        assert httpx.delete(f"{base}/api/v1/configs/native", headers=WRITE, timeout=10).status_code == 204
        takeover = httpx.post(f"{base}/canaryConfig", json={**weakened, "id": "native"}, timeout=10)
        assert takeover.status_code == 401, takeover.text
        assert httpx.get(f"{base}/api/v1/configs/native", headers=READ, timeout=10).status_code == 404

        # The Kayenta API's own configs: created, changed and deleted without a token, as before.
        created = httpx.post(f"{base}/canaryConfig", json=STRICT, timeout=10)
        assert created.status_code == 200, created.text
        config_id = created.json()["canaryConfigId"]
        assert httpx.put(f"{base}/canaryConfig/{config_id}", json=LENIENT, timeout=10).status_code == 200
        assert httpx.get(f"{base}/canaryConfig/{config_id}", timeout=10).json()["name"] == "lenient"
        assert httpx.delete(f"{base}/canaryConfig/{config_id}", timeout=10).status_code == 204
        assert (
            httpx.post(f"{base}/canaryConfig", json={**STRICT, "id": config_id}, timeout=10).status_code
            == 200
        )


def test_without_tokens_compat_writes_never_touch_native_configs(database_url: str, tmp_path: Path) -> None:
    """No tokens configured (every client is anonymous): the Kayenta API cannot change or delete a
    native config at all, and says where to change it."""
    with serve(database_url, tmp_path) as server:
        base = server.url
        assert (
            httpx.post(
                f"{base}/api/v1/configs", json={"name": "native", "config": STRICT}, timeout=10
            ).status_code
            == 201
        )
        put = httpx.put(f"{base}/canaryConfig/native", json=LENIENT, timeout=10)
        assert put.status_code == 403 and "/api/v1/configs/native" in put.text, put.text
        assert detail_loc(put) == [["path", "config_id"]]
        assert httpx.delete(f"{base}/canaryConfig/native", timeout=10).status_code == 403
        kept = httpx.get(f"{base}/api/v1/configs/native", timeout=10).json()
        assert (kept["version"], kept["config"]) == (1, STRICT)
        # its own configs, and the native API, work as before
        config_id = httpx.post(f"{base}/canaryConfig", json=STRICT, timeout=10).json()["canaryConfigId"]
        assert httpx.put(f"{base}/canaryConfig/{config_id}", json=LENIENT, timeout=10).status_code == 200
        assert (
            httpx.put(f"{base}/api/v1/configs/{config_id}", json={"config": STRICT}, timeout=10).status_code
            == 200
        )
        assert httpx.put(f"{base}/canaryConfig/{config_id}", json=LENIENT, timeout=10).status_code == 200


def test_closed_compat_endpoints_let_a_write_token_change_native_configs(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Tokens configured, compat endpoints closed (the default): a write token writes, as before."""
    with serve(sqlite_url, tmp_path, api_tokens=TOKENS) as server:
        base = server.url
        httpx.post(
            f"{base}/api/v1/configs", json={"name": "native", "config": STRICT}, headers=WRITE, timeout=10
        )
        assert httpx.put(f"{base}/canaryConfig/native", json=LENIENT, timeout=10).status_code == 401
        assert (
            httpx.put(f"{base}/canaryConfig/native", json=LENIENT, headers=READ, timeout=10).status_code
            == 403
        )
        put = httpx.put(f"{base}/canaryConfig/native", json=LENIENT, headers=WRITE, timeout=10)
        assert put.status_code == 200, put.text
        assert httpx.delete(f"{base}/canaryConfig/native", headers=WRITE, timeout=10).status_code == 204


def test_configs_stored_before_the_origin_column_count_as_native(database_url: str) -> None:
    """Migration 0004: every config stored before it is native (the safe side)."""
    store = Store(database_url)
    try:
        upgrade(store.engine, "0003")
        with store.engine.begin() as connection:
            connection.execute(text("INSERT INTO canary_configs (name, created_ts) VALUES ('old', 1.0)"))
        store.migrate()
        assert store.config_origin("old") == "native"
        created = store.create_config("new-kayenta", STRICT, origin="kayenta")
        assert created.origin == "kayenta" and store.config_origin("missing") is None
    finally:
        store.close()


# ================================================================ 4. the demo source only when asked


def stored_config_request(config_id: str, **params: str) -> tuple[str, dict[str, Any], dict[str, str]]:
    now = time.time()
    window = {"start": rfc3339(now - 300), "end": rfc3339(now - 60), "step": 5}
    request = {
        "scopes": {
            "default": {
                "controlScope": {"scope": "baseline", **window},
                "experimentScope": {"scope": "canary", **window},
            }
        }
    }
    return f"/canary/{config_id}", request, params


def standalone_request() -> dict[str, Any]:
    return {
        "scopes": [
            {
                "controlScope": "baseline",
                "experimentScope": "canary",
                "startTimeIso": rfc3339(time.time() - 300),
                "step": 5,
            }
        ],
        "lifetimeDurationMins": 2,
    }


def test_no_configured_source_is_a_422_naming_the_settings_at_every_door(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The reported bug: with no KAYENTA_PROMETHEUS_URL, analyses silently ran on generated data
    and passed. Now each door refuses an analysis that needs a source when none is configured."""
    with serve(sqlite_url, tmp_path) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        store_versions(client, "stored", STRICT)
        before = total(client)
        refused: list[httpx.Response] = []
        native = {k: v for k, v in past_window(config=STRICT).items() if k != "source"}
        refused.append(client.post("/api/v1/analyses", json=native))
        path, request, _ = stored_config_request("stored")
        refused.append(client.post(path, json=request))
        refused.append(client.post("/canary", json={"canaryConfig": STRICT, "executionRequest": request}))
        refused.append(client.post("/standalone_canary_analysis/stored", json=standalone_request()))
        flagger = {"config": "stored", "lifetime": "PT4S", "interval": "PT2S", "step": "1"}
        refused.append(
            client.post(
                "/api/v1/flagger/confirm-rollout",
                json={"name": "app", "namespace": "ns", "checksum": "1", "metadata": flagger},
            )
        )
        for answer in refused:
            assert answer.status_code == 422, (answer.request.url, answer.text)
            assert all(name in answer.text for name in SETTINGS_NAMES), answer.text
            assert any("source" in loc for loc in detail_loc(answer)), answer.text
        # an unknown Kayenta metrics account has no default to fall back to
        unknown = client.post(path, params={"metricsAccountName": "my-prometheus"}, json=request)
        assert unknown.status_code == 422 and detail_loc(unknown) == [["query", "metricsAccountName"]]
        # a config meant for CSV files does not make the service pick a source either
        csv = client.post("/api/v1/analyses", json={**native, "config": {**STRICT, "source": "csv"}})
        assert csv.status_code == 422 and "KAYENTA_PROMETHEUS_URL" in csv.text
        assert total(client) == before

        # asked for explicitly: by the request, the config, or Kayenta's metrics account
        by_request = client.post("/api/v1/analyses", json={**native, "source": "demo"})
        by_config = client.post("/api/v1/analyses", json={**native, "config": {**STRICT, "source": "demo"}})
        by_account = client.post(path, params={"metricsAccountName": "demo"}, json=request)
        for answer in (by_request, by_config, by_account):
            assert answer.status_code in (200, 201), answer.text
        ids = [by_request.json()["id"], by_config.json()["id"], by_account.json()["canaryExecutionId"]]
        assert [client.get(f"/api/v1/analyses/{i}").json()["source"] for i in ids] == ["demo"] * 3


def test_default_source_demo_is_used_when_set(sqlite_url: str, tmp_path: Path) -> None:
    """KAYENTA_DEFAULT_SOURCE=demo (what `serve --demo` sets) is an explicit ask."""
    with (
        serve(sqlite_url, tmp_path, default_source="demo") as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        native = {k: v for k, v in past_window(config=STRICT).items() if k != "source"}
        created = client.post("/api/v1/analyses", json=native)
        assert created.status_code == 201, created.text
        assert finished(client, created.json()["id"])["source"] == "demo"


# ================================================================ 6. thresholds that let 0 pass


ZERO = {"pass": 0, "marginal": 0}


def door_requests() -> Iterator[tuple[str, str, dict[str, Any], dict[str, str], list[str]]]:
    """Yield ``(id, path, body, query, loc)``: each door given thresholds that would pass a score of 0."""
    path, kayenta, _ = stored_config_request("stored")
    yield (
        "native-analysis",
        "/api/v1/analyses",
        past_window(config=STRICT, thresholds=ZERO),
        {},
        [
            "body",
            "thresholds",
            "pass",
        ],
    )
    yield (
        "native-analysis-pass-only",
        "/api/v1/analyses",
        past_window(config=STRICT, thresholds={"pass": 0}),
        {},
        ["body", "thresholds", "pass"],
    )
    judge = {"config": STRICT, "baseline": {"error-ratio": [1.0] * 5}, "canary": {"error-ratio": [1.0] * 5}}
    yield "native-judge", "/api/v1/judge", {**judge, "thresholds": ZERO}, {}, ["body", "thresholds", "pass"]
    yield (
        "native-judge-stored",
        "/api/v1/judge",
        {
            **{k: v for k, v in judge.items() if k != "config"},
            "config_name": "stored",
            "thresholds": ZERO,
        },
        {},
        ["body", "thresholds", "pass"],
    )
    demo = {"metricsAccountName": "demo"}
    yield "kayenta-canary", path, {**kayenta, "thresholds": ZERO}, demo, ["body", "thresholds", "pass"]
    yield (
        "kayenta-canary-scoreThresholds",
        path,
        {**kayenta, "scoreThresholds": ZERO},
        demo,
        [
            "body",
            "scoreThresholds",
            "pass",
        ],
    )
    yield (
        "kayenta-canary-strings",
        path,
        {**kayenta, "thresholds": {"pass": "0", "marginal": "0"}},
        demo,
        [
            "body",
            "thresholds",
            "pass",
        ],
    )
    yield (
        "kayenta-adhoc",
        "/canary",
        {
            "canaryConfig": STRICT,
            "executionRequest": {**kayenta, "thresholds": ZERO},
        },
        demo,
        ["body", "thresholds", "pass"],
    )
    yield (
        "kayenta-standalone",
        "/standalone_canary_analysis/stored",
        {
            **standalone_request(),
            "thresholds": ZERO,
        },
        demo,
        ["body", "thresholds", "pass"],
    )
    yield (
        "kayenta-standalone-adhoc",
        "/standalone_canary_analysis",
        {
            "canaryConfig": STRICT,
            "executionRequest": {**standalone_request(), "scoreThresholds": ZERO},
        },
        demo,
        ["body", "scoreThresholds", "pass"],
    )
    pair = {"name": "error-ratio", "tags": {}, "values": {"control": [1.0] * 5, "experiment": [1.0] * 5}}
    yield (
        "kayenta-judge",
        "/judge",
        {
            "canaryConfig": STRICT,
            "scoreThresholds": ZERO,
            "metricSetPairList": [pair],
        },
        {},
        ["body", "scoreThresholds", "pass"],
    )
    flagger = {"config": "stored", "lifetime": "PT4S", "interval": "PT2S", "step": "1", "source": "demo"}
    for label, value in (("json-string", json.dumps(ZERO)), ("object", ZERO)):
        yield (
            f"flagger-{label}",
            "/api/v1/flagger/confirm-rollout",
            {
                "name": f"app-{label}",
                "namespace": "ns",
                "checksum": "1",
                "metadata": {**flagger, "thresholds": value},
            },
            {},
            ["body", "metadata", "thresholds", "pass"],
        )


DOORS = list(door_requests())


@pytest.fixture(scope="module")
def door_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server (SQLite, no tokens) with the stored config ``stored``, for every door."""
    tmp = tmp_path_factory.mktemp("doors")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("KAYENTA_"):
                patch.delenv(name)
        with LiveServer(Settings(database_url=f"sqlite:///{tmp / 'doors.db'}", data_dir=tmp)) as server:
            stored = httpx.post(f"{server.url}/api/v1/configs", json={"name": "stored", "config": STRICT})
            assert stored.status_code == 201, stored.text
            yield server


@pytest.mark.parametrize(("path", "body", "query", "loc"), [d[1:] for d in DOORS], ids=[d[0] for d in DOORS])
def test_thresholds_that_let_a_score_of_0_pass_are_a_422_naming_the_field(
    door_server: LiveServer, path: str, body: dict[str, Any], query: dict[str, str], loc: list[str]
) -> None:
    with httpx.Client(base_url=door_server.url, timeout=30) as client:
        before = total(client)
        answer = client.post(path, params=query, json=body)
        assert answer.status_code == 422, answer.text
        assert detail_loc(answer) == [loc], answer.text
        assert ".".join(loc[1:]) in answer.json()["detail"][0]["msg"], answer.text
        assert total(client) == before  # nothing started


def test_stored_configs_with_such_thresholds_are_refused(door_server: LiveServer) -> None:
    """A config whose own thresholds would pass a score of 0 is not stored, through either API."""
    with httpx.Client(base_url=door_server.url, timeout=30) as client:
        native = client.post(
            "/api/v1/configs", json={"name": "zero", "config": {**STRICT, "thresholds": ZERO}}
        )
        assert native.status_code == 422, native.text
        assert ["body", "config", "thresholds", "pass"] in detail_loc(native)
        kayenta = {**STRICT, "thresholds": ZERO}
        assert client.post("/canaryConfig", json=kayenta).status_code == 422
        assert client.get("/api/v1/configs/zero").status_code == 404


def test_thresholds_above_0_are_accepted_and_a_key_left_out_is_the_configs(door_server: LiveServer) -> None:
    """The rule is pass > 0: a low but positive pass is the caller's choice. A request giving only
    ``marginal`` keeps the config's ``pass`` (not the request body's default of 95)."""
    with httpx.Client(base_url=door_server.url, timeout=30) as client:
        low = client.post(
            "/api/v1/analyses", json=past_window(config=STRICT, thresholds={"pass": 1, "marginal": 0})
        )
        assert low.status_code == 201, low.text
        stricter = {**STRICT, "thresholds": {"pass": 99, "marginal": 75}}
        partial = client.post(
            "/api/v1/analyses", json=past_window(config=stricter, thresholds={"marginal": 50})
        )
        assert partial.status_code == 201, partial.text
        document = client.get(f"/api/v1/analyses/{partial.json()['id']}").json()
        assert document["thresholds"] == {"pass": 99, "marginal": 50}
        path, request, _ = stored_config_request("stored")
        typo = client.post(
            path, params={"metricsAccountName": "demo"}, json={**request, "thresholds": {"Pass": 99}}
        )
        assert typo.status_code == 422 and detail_loc(typo) == [["body", "thresholds", "Pass"]]
        assert "did you mean pass" in typo.text
