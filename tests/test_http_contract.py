"""The HTTP contract, through a real server: error shapes, documented statuses, Allow, bounds, health.

One test per promise: 422 bodies in FastAPI's shape, every status in the OpenAPI document with
a bearer security scheme, OPTIONS and 405 with ``Allow``, bounded paging, /readyz honest about a
database that takes no writes, 503 with ``Retry-After`` while SQLite is busy, JSON 500s without a
traceback, and an unreadable stored row named in a JSON error.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import LiveServer
from sqlalchemy import create_engine, event, text

from kayenta_py.http.app import MAX_OFFSET
from kayenta_py.service.settings import Settings

WRITER = "contract-writer-token"
WRITE = {"Authorization": f"Bearer {WRITER}"}
CONFIG = {"name": "web", "metrics": [{"name": "latency", "kind": "latency"}]}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("KAYENTA_"):
            monkeypatch.delenv(name)


def serve(url: str, tmp: Path) -> LiveServer:
    return LiveServer(
        Settings(database_url=url, data_dir=tmp, api_tokens=f"write:{WRITER},read:contract-reader")
    )


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[LiveServer]:
    with serve(f"sqlite:///{tmp_path / 'k.db'}", tmp_path) as server:
        yield server


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    with serve(database_url, tmp_path) as server:
        yield server


def items(answer: httpx.Response) -> list[dict[str, Any]]:
    """The ``detail`` list of a JSON error, each entry checked for FastAPI's keys."""
    assert answer.headers["content-type"].startswith("application/json"), answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, list) and detail, answer.text
    for item in detail:
        assert isinstance(item["type"], str) and item["type"], item
        assert isinstance(item["loc"], list) and isinstance(item["msg"], str), item
    return detail


def past_window() -> dict[str, Any]:
    now = time.time()
    start, end = (datetime.fromtimestamp(t, UTC).isoformat() for t in (now - 300, now - 60))
    return {
        "config": CONFIG,
        "baseline_scope": "baseline",
        "canary_scope": "canary",
        "source": "demo",
        "start": start,
        "end": end,
        "step": 5,
    }


def test_every_422_has_type_loc_and_msg(sqlite_server: LiveServer) -> None:
    base = sqlite_server.url
    bad_config = {"name": "x", "config": {"metrics": [{"name": "a", "knd": "latency"}]}}
    answers = {
        "ConfigError": httpx.post(f"{base}/api/v1/configs", json=bad_config, headers=WRITE),
        "pydantic body": httpx.post(f"{base}/api/v1/configs", json={"name": ""}, headers=WRITE),
        "query check": httpx.get(f"{base}/api/v1/analyses", params={"status": "nope"}, headers=WRITE),
        "not UTF-8": httpx.post(f"{base}/api/v1/configs", content=b"\xff\xfe{", headers=WRITE),
        "unknown metric": httpx.post(
            f"{base}/api/v1/judge",
            json={"config": CONFIG, "baseline": {"latncy": [1.0]}, "canary": {"latency": [1.0]}},
            headers=WRITE,
        ),
    }
    for what, answer in answers.items():
        assert answer.status_code == 422, (what, answer.text)
        items(answer)
    assert items(answers["ConfigError"])[0]["loc"] == ["body", "config", "metrics", 0, "knd"]
    assert items(answers["query check"])[0]["loc"] == ["query", "status"]
    assert items(answers["unknown metric"])[0]["loc"] == ["body", "baseline", "latncy"]


def test_openapi_documents_every_status_and_the_bearer_scheme(sqlite_server: LiveServer) -> None:
    spec = httpx.get(f"{sqlite_server.url}/openapi.json").json()
    bearer = spec["components"]["securitySchemes"]["bearer"]
    assert bearer["type"] == "http" and bearer["scheme"] == "bearer"
    error = {"$ref": "#/components/schemas/Error"}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            responses = operation["responses"]
            assert "500" in responses, where
            health = "health" in operation["tags"]
            expected = set() if health else {"401", "403", "503"}
            expected |= {"404"} if "{" in path else set()
            expected |= {"413", "422"} if "requestBody" in operation else set()
            assert expected <= set(responses), (where, sorted(responses))
            for status in expected:
                assert responses[status]["content"]["application/json"]["schema"] == error, (where, status)
            if not health:
                assert operation["security"] == [{"bearer": []}], where
                assert "Retry-After" in responses["503"]["headers"], where
            names = [p["name"].lower() for p in operation.get("parameters", [])]
            assert "authorization" not in names, where
    listing = spec["paths"]["/api/v1/analyses"]["get"]["parameters"]
    offset = next(p for p in listing if p["name"] == "offset")
    assert offset["schema"]["maximum"] == MAX_OFFSET


def test_options_answers_allow_and_405_carries_it(sqlite_server: LiveServer) -> None:
    spec = httpx.get(f"{sqlite_server.url}/openapi.json").json()
    by_shape: dict[str, set[str]] = {}  # /canary/{config_id} and /canary/{execution_id} are one shape
    for path, operations in spec["paths"].items():
        by_shape.setdefault(re.sub(r"\{[^}]+\}", "{}", path), set()).update(m.upper() for m in operations)
    for shape, methods in by_shape.items():
        path = shape
        url = sqlite_server.url + shape.replace("{}", "some-id")
        documented = methods | {"OPTIONS"}
        options = httpx.options(url)
        assert options.status_code == 204, (path, options.status_code, options.text)
        assert set(options.headers["allow"].split(", ")) == documented, path
        unused = next(m for m in ("PATCH", "PUT", "DELETE", "POST") if m not in documented)
        refused = httpx.request(unused, url, headers=WRITE)
        assert refused.status_code == 405, (path, unused, refused.text)
        assert set(refused.headers["allow"].split(", ")) == documented, path
        assert items(refused)[0]["type"] == "method_not_allowed"


def test_paging_and_versions_are_bounded(server: LiveServer) -> None:
    base = server.url
    for params in ({"offset": 2**63}, {"offset": MAX_OFFSET + 1}, {"limit": 501}, {"limit": 0}):
        answer = httpx.get(f"{base}/api/v1/analyses", params=params, headers=WRITE)
        assert answer.status_code == 422, (params, answer.text)
        assert items(answer)[0]["loc"] == ["query", next(iter(params))]
    last = httpx.get(f"{base}/api/v1/analyses", params={"offset": MAX_OFFSET, "limit": 500}, headers=WRITE)
    assert last.status_code == 200 and last.json()["items"] == [], last.text
    huge = httpx.get(f"{base}/api/v1/configs/web", params={"version": 2**63}, headers=WRITE)
    assert huge.status_code == 422 and items(huge)[0]["loc"] == ["query", "version"], huge.text
    top = httpx.get(f"{base}/api/v1/configs/web", params={"version": 2**31 - 1}, headers=WRITE)
    assert top.status_code == 404, top.text


def test_readyz_says_not_ready_when_the_database_takes_no_writes(sqlite_server: LiveServer) -> None:
    assert httpx.get(f"{sqlite_server.url}/readyz").json()["writable"] is True
    engine = sqlite_server.service.store.engine
    with engine.connect() as connection:
        pages = connection.execute(text("PRAGMA page_count")).scalar_one()

    def full(dbapi_connection: Any, _record: Any) -> None:  # the disk has no room past these pages
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    event.listen(engine, "connect", full)
    engine.dispose()
    ready = httpx.get(f"{sqlite_server.url}/readyz")
    assert ready.status_code == 503, ready.text
    assert ready.json()["writable"] is False and ready.json()["status"] == "not ready"
    assert "full" in ready.json()["problem"]


def test_a_busy_sqlite_answers_503_with_retry_after(sqlite_server: LiveServer, tmp_path: Path) -> None:
    engine = sqlite_server.service.store.engine
    event.listen(engine, "connect", lambda c, _r: c.execute("PRAGMA busy_timeout = 300"))
    engine.dispose()  # new connections wait 0.3 s for a lock, not 30 s
    holder = sqlite3.connect(tmp_path / "k.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        busy = httpx.post(
            f"{sqlite_server.url}/api/v1/configs", json={"name": "web", "config": CONFIG}, headers=WRITE
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert busy.status_code == 503, busy.text
    assert int(busy.headers["retry-after"]) > 0
    assert items(busy)[0]["type"] == "database_busy"
    again = httpx.post(
        f"{sqlite_server.url}/api/v1/configs", json={"name": "web", "config": CONFIG}, headers=WRITE
    )
    assert again.status_code == 201, again.text


def test_an_unexpected_error_is_a_json_500_without_traceback(server: LiveServer, database_url: str) -> None:
    outside = create_engine(database_url)
    with outside.begin() as connection:  # the table vanishes under the running service
        connection.execute(text("ALTER TABLE canary_configs RENAME TO canary_configs_gone"))
    outside.dispose()
    with httpx.Client(base_url=server.url, headers=WRITE) as client:  # one keep-alive connection
        answer = client.get("/api/v1/configs")
        assert answer.status_code == 500, answer.text
        (item,) = items(answer)
        assert item["type"] == "internal_error" and "reference" in item["msg"]
        for leak in ("Traceback", "[SQL:", 'File "', WRITER):
            assert leak not in answer.text, leak
        # The 500 did not cost the connection: the next request on it is answered, not reset.
        assert client.get("/healthz").status_code == 200


def test_an_unreadable_stored_analysis_is_named_in_a_json_error(
    server: LiveServer, database_url: str
) -> None:
    created = httpx.post(f"{server.url}/api/v1/analyses", json=past_window(), headers=WRITE)
    assert created.status_code == 201, created.text
    analysis_id = created.json()["id"]
    outside = create_engine(database_url)
    cast = "CAST(:bad AS JSON)" if outside.dialect.name == "postgresql" else ":bad"
    with outside.begin() as connection:  # valid JSON, but not the object thresholds must be
        connection.execute(
            text(f"UPDATE analyses SET thresholds = {cast} WHERE id = :id"),
            {"bad": '"pass"', "id": analysis_id},
        )
    outside.dispose()
    for path in (f"/api/v1/analyses/{analysis_id}", f"/api/v1/analyses/{analysis_id}/verdict"):
        answer = httpx.get(server.url + path, headers=WRITE)
        assert answer.status_code == 500, (path, answer.text)
        (item,) = items(answer)
        assert item["type"] == "unreadable_record" and analysis_id in item["msg"], item
        assert "Traceback" not in answer.text


# ---------------------------------------------------------------- found by a black-box attack


SURROGATE = "\ud800"


def test_a_lone_surrogate_anywhere_is_a_422_at_every_door(server: LiveServer, database_url: str) -> None:
    base = server.url
    config = {"name": "x", "metrics": [{"name": "m", "kind": "latency"}]}
    kayenta_config = {
        "name": "k",
        "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": {}},
        "metrics": [{"name": "m", "query": {"type": "prometheus", "metricName": "m"}, "groups": [SURROGATE]}],
        "classifier": {"groupWeights": {"g": 100}},
    }
    flagger = {"name": SURROGATE, "namespace": "n", "phase": "Progressing", "checksum": "c", "metadata": {}}
    doors: list[tuple[str, dict[str, Any], list[str | int]]] = [
        ("/api/v1/analyses", {**past_window(), "baseline_scope": SURROGATE}, ["body", "baseline_scope"]),
        ("/api/v1/analyses", {**past_window(), "start": SURROGATE}, ["body", "start"]),
        (
            "/api/v1/judge",
            {"config": config, "baseline": {"m": [1, 2]}, "canary": {SURROGATE: [1]}},
            ["body", "canary"],
        ),
        ("/api/v1/configs", {"name": SURROGATE, "config": config}, ["body", "name"]),
        (
            "/judge",
            {"canaryConfig": kayenta_config, "metricSetPairList": []},
            ["body", "canaryConfig", "metrics", 0, "groups", 0],
        ),
        ("/api/v1/flagger/confirm-rollout", flagger, ["body", "name"]),
    ]
    for path, body, loc in doors:
        raw = json.dumps(body)  # ensure_ascii: the surrogate travels as the escape "\ud800"
        answer = httpx.post(base + path, content=raw, headers={**WRITE, "content-type": "application/json"})
        assert answer.status_code == 422, (path, answer.status_code, answer.text)
        assert items(answer)[0]["loc"] == loc, (path, answer.text)
    assert httpx.get(f"{base}/api/v1/analyses", headers=WRITE).json()["total"] == 0
    assert httpx.get(f"{base}/api/v1/configs", headers=WRITE).json() == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_utf8_is_a_422_whatever_its_content_type(
    sqlite_server: LiveServer, content_type: str | None
) -> None:
    headers = {**WRITE, **({"content-type": content_type} if content_type else {})}
    for path in ("/canaryConfig", "/canary", "/standalone_canary_analysis", "/judge", "/api/v1/configs"):
        answer = httpx.post(sqlite_server.url + path, content=b'{"name":"\xff"}', headers=headers)
        assert answer.status_code == 422, (path, answer.text)
        assert items(answer)[0]["type"] == "json_invalid"


def test_kayenta_judge_refuses_tags_that_are_not_an_object(sqlite_server: LiveServer) -> None:
    config = {
        "name": "k",
        "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": {}},
        "metrics": [{"name": "err", "query": {"type": "prometheus", "metricName": "e"}, "groups": ["g"]}],
        "classifier": {"groupWeights": {"g": 100}},
    }
    for tags in ("x", 3, True, ["a"]):
        pair = {"name": "err", "tags": tags, "values": {"control": [1, 2, 3], "experiment": [1, 2, 3]}}
        answer = httpx.post(
            f"{sqlite_server.url}/judge",
            json={"canaryConfig": config, "metricSetPairList": [pair]},
            headers=WRITE,
        )
        assert answer.status_code == 422, (tags, answer.text)
        assert "metricSetPairList[0].tags" in answer.text


def test_concurrent_config_writes_conflict_cleanly(server: LiveServer) -> None:
    base = server.url
    config = {"name": "race", "metrics": [{"name": "m", "kind": "latency"}]}
    assert (
        httpx.post(
            f"{base}/api/v1/configs", json={"name": "race", "config": config}, headers=WRITE
        ).status_code
        == 201
    )

    def put(_: int) -> int:
        return httpx.put(
            f"{base}/api/v1/configs/race", json={"config": config}, headers=WRITE, timeout=30
        ).status_code

    def create_kayenta(_: int) -> int:
        body = {
            "id": "kayenta-race",
            "name": "kayenta-race",
            "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": {}},
            "metrics": [{"name": "m", "query": {"type": "prometheus", "metricName": "m"}, "groups": ["g"]}],
            "classifier": {"groupWeights": {"g": 100}},
        }
        return httpx.post(f"{base}/canaryConfig", json=body, headers=WRITE, timeout=30).status_code

    with ThreadPoolExecutor(16) as pool:
        puts = list(pool.map(put, range(16)))
        creates = list(pool.map(create_kayenta, range(16)))
    assert set(puts) <= {200, 409} and puts.count(200) >= 8, puts  # 409 only after 8 lost races in a row
    assert creates.count(200) == 1 and set(creates) == {200, 409}, creates
    versions = httpx.get(f"{base}/api/v1/configs/race/versions", headers=WRITE).json()
    numbers = [v["version"] for v in versions]
    assert sorted(numbers) == list(range(1, 2 + puts.count(200))), numbers  # each write its own version


def test_an_id_of_a_slash_is_not_found_never_redirected(sqlite_server: LiveServer) -> None:
    for method, path in (
        ("GET", "/api/v1/analyses/%2F"),
        ("GET", "/api/v1/configs/%2F"),
        ("GET", "/canaryConfig/%2F"),
        ("DELETE", "/canaryConfig/%2F"),
        ("POST", "/canary/%2F"),
        ("GET", "/api/v1/analyses/"),
    ):
        answer = httpx.request(
            method, sqlite_server.url + path, headers=WRITE, json={}, follow_redirects=False
        )
        assert answer.status_code in (404, 405, 422), (method, path, answer.status_code, answer.text)
        assert answer.headers["content-type"].startswith("application/json"), (path, answer.text)


def test_a_full_disk_answers_503_with_retry_after(sqlite_server: LiveServer) -> None:
    engine = sqlite_server.service.store.engine
    with engine.connect() as connection:
        pages = connection.execute(text("PRAGMA page_count")).scalar_one()
    event.listen(engine, "connect", lambda c, _r: c.execute(f"PRAGMA max_page_count = {pages}"))
    engine.dispose()
    big = {"name": "full", "config": {**CONFIG, "description": "x" * 50_000}}
    answer = httpx.post(f"{sqlite_server.url}/api/v1/configs", json=big, headers=WRITE)
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["retry-after"]) > 0
    assert items(answer)[0]["type"] == "database_unavailable"


def test_a_secret_sent_as_a_name_is_not_echoed(sqlite_server: LiveServer) -> None:
    for path, body in (
        ("/api/v1/analyses", {**past_window(), "config": None, "config_name": WRITER}),
        ("/api/v1/judge", {"config_name": WRITER, "baseline": {"m": [1]}, "canary": {"m": [1]}}),
        (
            "/api/v1/flagger/confirm-rollout",
            {
                "name": "a",
                "namespace": "n",
                "phase": "Progressing",
                "checksum": "c",
                "metadata": {"config": WRITER},
            },
        ),
    ):
        answer = httpx.post(sqlite_server.url + path, json=body, headers=WRITE)
        assert answer.status_code == 404, (path, answer.text)
        assert WRITER not in answer.text, (path, answer.text)


def test_a_surrogate_inside_a_json_string_field_still_answers_422(sqlite_server: LiveServer) -> None:
    # Flagger's thresholds are JSON inside a string: parsed again, its odd key is echoed in the error.
    stored = httpx.post(
        f"{sqlite_server.url}/api/v1/configs", json={"name": "t", "config": CONFIG}, headers=WRITE
    )
    assert stored.status_code == 201, stored.text
    thresholds = json.dumps({SURROGATE: 1})
    body = {"name": "emb", "namespace": "n", "metadata": {"config": "t", "thresholds": thresholds}}
    answer = httpx.post(
        f"{sqlite_server.url}/api/v1/flagger/confirm-rollout",
        content=json.dumps(body),
        headers={**WRITE, "content-type": "application/json"},
    )
    assert answer.status_code == 422, answer.text
    (item,) = items(answer)
    assert item["loc"][:2] == ["body", "metadata"] and "metadata.thresholds" in item["msg"], item


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
def test_deeply_nested_bodies_are_a_422_at_every_door(sqlite_server: LiveServer, depth: int) -> None:
    arrays = "[" * depth + "]" * depth
    objects = '{"a":' * depth + "1" + "}" * depth
    for path in ("/api/v1/judge", "/judge", "/canaryConfig", "/api/v1/analyses", "/api/v1/flagger/event"):
        for body in (arrays, objects):
            answer = httpx.post(
                sqlite_server.url + path, content=body, headers={**WRITE, "content-type": "application/json"}
            )
            assert answer.status_code in (413, 422), (path, depth, answer.status_code, answer.text[:200])
            assert "Error" not in answer.text, answer.text[:200]  # no exception text
