"""Live analyses default to sequential mode for native configs (DESIGN 7), end to end.

``choose_mode`` decides a live analysis' mode in one place: the request's, else the config's
``mode:``, else ``sequential`` for a native config whose every metric resolves to a sequential
judge (explicit fixed judges win, and so does a metric its sequential judge cannot run on), and
``fixed`` for Kayenta configs and Kayenta's API (parity). Its table is tested first, then the
doors (native API, Flagger, Kayenta's API) on an in-process server.

Then, live: a real ``kayenta-py serve`` process per database (SQLite and PostgreSQL, side by
side), a real Prometheus scraping :class:`live_app.FakeApp` every second, and a native config
that names no mode and only sequential judges (``live_app.live_sequential_config``): errors as counts with a
``traffic_query`` (``sequential-count``), latency from ``_bucket`` series (``sequential-histogram``)
and CPU (``sequential-rank``), a 1 s step, 15 s intervals, a one-minute lifetime. A healthy canary
ends ``pass``, a regressed one (errors x5, latency x2, CPU x1.3) ``fail``; killed with SIGKILL
mid-analysis and started again, the service judges every interval exactly once and every point
of the metrics once.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import fresh_postgres_database
from live_app import (
    SEQUENTIAL_QUERIES,
    FakeApp,
    LivePrometheus,
    TrafficProfile,
    live_sequential_config,
)
from live_server import LiveServer, settings_for
from prometheus_harness import ensure_prometheus, for_scope
from sqlalchemy import create_engine, text
from test_live_service import (
    ServiceProcess,
    epoch,
    get_analysis,
    get_verdict,
    wait_complete,
    wait_intervals,
)

import kayenta_py
from kayenta_py.service.analyses import choose_mode

# --------------------------------------------------------------------------------------------------
# choose_mode: one function decides
# --------------------------------------------------------------------------------------------------

COUNTS = {"name": "errors", "kind": "errors", "query": "e", "traffic_query": "t"}
BUCKETS = {"name": "latency", "kind": "latency", "query": "sum by (le) (increase(x_bucket[1m]))"}
CPU = {"name": "cpu", "kind": "saturation", "query": "avg(cpu)"}
KAYENTA_CONFIG: dict[str, Any] = {
    "name": "k",
    "classifier": {"groupWeights": {"g": 100}},
    "metrics": [{"name": "m", "query": {"type": "prometheus", "metricName": "m"}, "groups": ["g"]}],
}


def native(*metrics: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "c", "metrics": list(metrics), **top}


def mode_of(body: dict[str, Any], requested: str | None = None, kind: str = "native") -> tuple[str, str]:
    return choose_mode(requested, kayenta_py.load_config(body), body, kind=kind)


@pytest.mark.parametrize(
    ("body", "requested", "kind", "mode", "why"),
    [
        (native(COUNTS, BUCKETS, CPU), None, "native", "sequential", "default for native configs"),
        (native(COUNTS, BUCKETS, CPU), None, "flagger", "sequential", "default for native configs"),
        # explicit sequential judges are sequential judges
        (
            native({"name": "m", "judge": {"type": "sequential-rank"}}),
            None,
            "native",
            "sequential",
            "default",
        ),
        # explicit fixed judges win
        (
            native(COUNTS, {**CPU, "judge": {"type": "mann-whitney"}}),
            None,
            "native",
            "fixed",
            "metric 'cpu' names the fixed judge mann-whitney",
        ),
        (
            native(COUNTS, {**CPU, "judge": {"type": "threshold", "upper": 1}}),
            None,
            "native",
            "fixed",
            "fixed judge threshold",
        ),
        (
            native(COUNTS, CPU, judge={"type": "mann-whitney"}),
            None,
            "native",
            "fixed",
            "default judge is the",
        ),
        # a mann-whitney parameter on the metric
        (native(COUNTS, {**CPU, "tolerance": 0.3}), None, "native", "fixed", "'cpu' sets tolerance"),
        # a sequential-count named without the traffic_query it needs
        (
            native({"name": "e", "kind": "errors", "judge": {"type": "sequential-count"}}),
            None,
            "native",
            "fixed",
            "no traffic_query",
        ),
        # errors without a traffic_query nor a query: sequential-count cannot run
        (native({"name": "errors", "kind": "errors"}), None, "native", "fixed", "no traffic_query"),
        # stated modes
        (native(COUNTS, mode="fixed"), None, "native", "fixed", "stated in the config"),
        (native({"name": "m"}, mode="sequential"), None, "native", "sequential", "stated in the config"),
        (native(COUNTS, BUCKETS, CPU), "fixed", "native", "fixed", "stated in the request"),
        (native({"name": "m", "kind": "errors"}), "sequential", "native", "sequential", "request"),
        # Kayenta configs and Kayenta's API: fixed, for parity
        (KAYENTA_CONFIG, None, "native", "fixed", "Kayenta configs"),
        ({**KAYENTA_CONFIG, "mode": "sequential"}, None, "native", "sequential", "stated in the config"),
        (native(COUNTS, BUCKETS, CPU), None, "kayenta", "fixed", "Kayenta's API"),
        (native(COUNTS, BUCKETS, CPU), None, "kayenta-standalone", "fixed", "Kayenta's API"),
    ],
)
def test_choose_mode(body: dict[str, Any], requested: str | None, kind: str, mode: str, why: str) -> None:
    chosen, reason = mode_of(body, requested, kind)
    assert (chosen, why in reason) == (mode, True), reason


def test_the_default_judges_of_the_live_config_are_the_kinds_sequential_ones() -> None:
    config = kayenta_py.load_config(live_sequential_config(), mode="sequential")
    assert [m.judge_type for m in config.metrics] == [
        "sequential-count",
        "sequential-histogram",
        "sequential-rank",
    ]
    assert mode_of(live_sequential_config()) == (
        "sequential",
        "the default for native configs (every metric has a sequential judge)",
    )


def test_the_doors_record_the_default_mode(tmp_path: Path) -> None:
    """Native API and Flagger get the default; Kayenta's API keeps fixed; answers show the mode."""
    past = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:10:00Z"}
    sequential_config = native({"name": "m", "judge": {"type": "sequential-rank"}})
    with (
        LiveServer(settings_for(tmp_path, default_source="demo")) as server,
        httpx.Client(base_url=server.url, timeout=15) as client,
    ):
        created = client.post(
            "/api/v1/analyses",
            json={
                "config": sequential_config,
                "baseline_scope": "b",
                "canary_scope": "c",
                "step": 60,
                **past,
            },
        )
        assert created.status_code == 201, created.text
        assert (created.json()["mode"], created.json()["mode_reason"]) == (
            "sequential",
            "the default for native configs (every metric has a sequential judge)",
        )
        assert get_analysis(client, created.json()["id"])["mode"] == "sequential"
        fixed = client.post(
            "/api/v1/analyses",
            json={"config": native({"name": "m"}), "baseline_scope": "b", "canary_scope": "c", **past},
        )
        assert fixed.status_code == 201, fixed.text
        assert fixed.json()["mode"] == "sequential"  # custom kind: sequential-rank
        stated = client.post(
            "/api/v1/analyses",
            json={
                "config": native({"name": "m"}),
                "mode": "fixed",
                "baseline_scope": "b",
                "canary_scope": "c",
                **past,
            },
        )
        assert (stated.json()["mode"], stated.json()["mode_reason"]) == ("fixed", "stated in the request")
        # a sequential judge cannot run in fixed mode: refused, not judged as an error
        refused = client.post(
            "/api/v1/analyses",
            json={
                "config": sequential_config,
                "mode": "fixed",
                "baseline_scope": "b",
                "canary_scope": "c",
                **past,
            },
        )
        assert refused.status_code == 422 and "sequential judge sequential-rank" in refused.text, refused.text

        stored = client.post("/api/v1/configs", json={"name": "seq", "config": sequential_config})
        assert stored.status_code == 201, stored.text
        hook = client.post(
            "/api/v1/flagger/confirm-rollout",
            json={
                "name": "app",
                "namespace": "ns",
                "checksum": "1",
                "metadata": {"config": "seq", "lifetime": "PT1M"},
            },
        )
        assert hook.status_code == 200, hook.text
        flagger = server.service.store.find_analysis("flagger", "ns/app/1")
        assert flagger is not None and flagger.mode == "sequential"

        scope = {"start": past["start"], "end": past["end"], "step": 60}
        execution = {
            "scopes": {
                "default": {
                    "controlScope": {"scope": "b", **scope},
                    "experimentScope": {"scope": "c", **scope},
                }
            }
        }
        for canary_config in (native({"name": "m"}), KAYENTA_CONFIG):
            answer = client.post(
                "/canary", json={"canaryConfig": canary_config, "executionRequest": execution}
            )
            assert answer.status_code in (200, 201, 202), answer.text
            record = get_analysis(client, answer.json()["canaryExecutionId"])
            assert record["mode"] == "fixed", record["mode_reason"]
            assert "Kayenta's API" in record["mode_reason"]


def test_a_count_judge_without_traffic_query_is_refused_when_the_analysis_is_created(tmp_path: Path) -> None:
    """Asked for in mode sequential, sequential-count without a traffic_query is refused at creation
    (it needs each step's requests), not failed at its first interval; by default the mode is fixed."""
    past = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:10:00Z", "step": 60}
    errors = native({"name": "error-ratio", "kind": "errors"})  # no query, no traffic_query: counts
    with (
        LiveServer(settings_for(tmp_path, default_source="demo")) as server,
        httpx.Client(base_url=server.url, timeout=15) as client,
    ):
        request = {"config": errors, "baseline_scope": "b", "canary_scope": "c", **past}
        refused = client.post("/api/v1/analyses", json={**request, "mode": "sequential"})
        assert refused.status_code == 422, refused.text
        assert "'error-ratio': sequential-count" in refused.text and "traffic_query" in refused.text
        assert server.service.store.list_analyses()[1] == 0  # nothing stored, nothing to fail later
        default = client.post("/api/v1/analyses", json=request)
        assert default.status_code == 201 and default.json()["mode"] == "fixed", default.text
        assert "no traffic_query" in default.json()["mode_reason"]
        ranked = native({"name": "error-ratio", "kind": "errors", "judge": {"type": "sequential-rank"}})
        answer = client.post("/api/v1/analyses", json={**request, "config": ranked, "mode": "sequential"})
        assert answer.status_code == 201, answer.text


# --------------------------------------------------------------------------------------------------
# Live: a fake app, a real Prometheus, real service processes on SQLite and PostgreSQL
# --------------------------------------------------------------------------------------------------

STEP = 1.0
INTERVAL = 15.0
LIFETIME = 60.0
POINTS = int(LIFETIME / STEP) + 1  # the step grid from start to end, both included

PROFILES = (
    TrafficProfile("seq-v1-base"),
    TrafficProfile("seq-v1-canary"),
    TrafficProfile("seq-v2-base"),
    TrafficProfile("seq-v2-canary", latency_median_s=0.05 * 2.0, error_share=0.001 * 5, cpu=0.40 * 1.3),
)
HEALTHY = ("seq-v1-base", "seq-v1-canary")
REGRESSED = ("seq-v2-base", "seq-v2-canary")
JUDGES = {"errors": "sequential-count", "latency": "sequential-histogram", "cpu": "sequential-rank"}


@pytest.fixture(scope="module")
def live_prometheus() -> Iterator[LivePrometheus]:
    """The fake app (2,000 requests a second per version), scraped every second by a real Prometheus."""
    ensure_prometheus()
    with FakeApp(PROFILES) as app, LivePrometheus(app.target) as prometheus:
        prometheus.wait_for_samples(5)
        for profile in PROFILES:
            for name, query in SEQUENTIAL_QUERIES.items():
                if name == "latency-buckets":
                    query = f"sum({query})"  # one value to wait for
                prometheus.wait_for(for_scope(query, profile.version), what=f"{name} of {profile.version}")
        yield prometheus


@pytest.fixture
def databases(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A fresh SQLite file and a fresh PostgreSQL database."""
    with contextlib.contextmanager(fresh_postgres_database)() as postgres:
        yield {"sqlite": f"sqlite:///{tmp_path / 'kayenta.db'}", "postgresql": postgres}


StartService = Callable[[str, str], ServiceProcess]


@pytest.fixture
def start_service(live_prometheus: LivePrometheus, tmp_path: Path) -> Iterator[StartService]:
    """Start ``kayenta-py serve`` on a database URL (``label`` names its log); all are stopped afterwards."""
    started: list[ServiceProcess] = []

    def start(label: str, database_url: str) -> ServiceProcess:
        data_dir = tmp_path / f"data-{label}"
        data_dir.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAYENTA_")}
        env.update(
            KAYENTA_DATA_DIR=str(data_dir),
            KAYENTA_DATABASE_URL=database_url,
            KAYENTA_PROMETHEUS_URL=live_prometheus.url,
            PYTHONUNBUFFERED="1",
        )
        service = ServiceProcess(env, data_dir, tmp_path / f"service-{label}-{len(started)}.log")
        started.append(service)
        service.start()
        return service

    try:
        yield start
    finally:
        for service in started:
            service.stop()


def post_default_mode(client: httpx.Client, scopes: tuple[str, str]) -> str:
    """POST an analysis that states no mode (the config neither); check the default's answer."""
    body = {
        "config": live_sequential_config(),
        "baseline_scope": scopes[0],
        "canary_scope": scopes[1],
        "lifetime": f"PT{LIFETIME:g}S",
        "interval": f"PT{INTERVAL:g}S",
        "step": STEP,
        "source": "prometheus",
    }
    answer = client.post("/api/v1/analyses", json=body)
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["mode"] == "sequential", created
    assert "default for native configs" in created["mode_reason"]
    analysis_id: str = created["id"]
    return analysis_id


def by_name(interval: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in interval["metrics"]}


def explain(document: dict[str, Any]) -> str:
    """Every interval's verdict and each metric's classification and reason (for failure messages)."""
    lines = [f"{document['verdict']} ({document['score']}): {document['reason']}"]
    for interval in document["intervals"]:
        lines.append(f"  interval {interval['index']}: {interval['verdict']}")
        for m in interval["metrics"]:
            lines.append(f"    {m['name']}: {m['classification']}: {m['reason']}")
    return "\n".join(lines)


def check_sequential_intervals(document: dict[str, Any]) -> None:
    """Each interval judged once, over its own new points: windows tile the lifetime, no gap, no overlap."""
    start = epoch(document["start"]) + document["warmup_s"]
    assert document["mode"] == "sequential" and document["intervals_total"] == 4
    previous = 0
    for position, interval in enumerate(document["intervals"]):
        index = interval["index"]
        assert index == position
        due = start + (index + 1) * INTERVAL
        assert epoch(interval["due"]) == pytest.approx(due, abs=0.01)
        assert epoch(interval["window"]["start"]) == pytest.approx(start + index * INTERVAL, abs=0.01)
        assert epoch(interval["window"]["end"]) == pytest.approx(due, abs=0.01)
        assert epoch(interval["judged"]) >= due - 0.01, interval  # never judged early
        metrics = by_name(interval)
        assert set(metrics) == set(JUDGES)
        for name, judge in JUDGES.items():
            assert metrics[name]["judge"].startswith(judge), metrics[name]
        # The judges' state holds every point once: cpu's aligned points grow by the window's.
        observations = metrics["cpu"]["details"]["observations"]
        expected = int(INTERVAL / STEP) * (index + 1) + 1
        assert expected - 2 * (index + 1) <= observations <= expected, (index, observations, expected)
        assert observations > previous
        previous = observations


def test_default_mode_live_healthy_passes_and_regressed_fails_on_sqlite_and_postgresql(
    databases: dict[str, str], start_service: StartService
) -> None:
    services = {label: start_service(label, url) for label, url in databases.items()}
    clients = {label: httpx.Client(base_url=s.url, timeout=15.0) for label, s in services.items()}
    try:
        posted = time.time()
        ids = {
            (label, outcome): post_default_mode(client, scopes)
            for label, client in clients.items()
            for outcome, scopes in (("healthy", HEALTHY), ("regressed", REGRESSED))
        }
        answered = time.time()
        for (label, _), analysis_id in ids.items():
            pending = get_verdict(clients[label], analysis_id)
            assert (pending["verdict"], pending["complete"]) == ("pending", False)
        documents: dict[tuple[str, str], dict[str, Any]] = {}
        for (label, outcome), analysis_id in sorted(ids.items(), key=lambda item: item[0][1] != "regressed"):
            timeout = LIFETIME - (time.time() - posted) + 45.0
            verdict = wait_complete(clients[label], analysis_id, timeout, services[label])
            documents[label, outcome] = {**get_analysis(clients[label], analysis_id), "final": verdict}
    finally:
        for client in clients.values():
            client.close()

    for key, document in sorted(documents.items()):
        print(f"\n{key}: {explain(document)}")  # the verdicts seen (pytest -s)
    for label in databases:
        regressed = documents[label, "regressed"]
        assert regressed["status"] == "completed", explain(regressed)
        assert regressed["verdict"] == "fail" and regressed["score"] == 0.0, explain(regressed)
        assert "regression established in" in regressed["reason"], explain(regressed)
        check_sequential_intervals(regressed)
        # The first regression established decides (latency's slow-request ratio, usually, within
        # the first interval); every metric established is High, none Low.
        deciding = by_name(regressed["intervals"][-1])
        established = {n for n, m in deciding.items() if m["classification"] != "Pass"}
        assert established and established <= {"errors", "latency", "cpu"}, explain(regressed)
        assert all(deciding[n]["classification"] == "High" for n in established), explain(regressed)
        assert all(n in regressed["reason"] for n in established), explain(regressed)
        assert deciding["errors"]["critical"] == ("errors" in established), deciding["errors"]

        healthy = documents[label, "healthy"]
        assert healthy["status"] == "completed", explain(healthy)
        check_sequential_intervals(healthy)
        assert [i["index"] for i in healthy["intervals"]] == [0, 1, 2, 3], explain(healthy)
        assert healthy["reason"].startswith("final interval 4 of 4"), explain(healthy)
        assert epoch(healthy["completed"]) >= epoch(healthy["start"]) + LIFETIME  # it ran its lifetime
        # Started when posted, on the step grid: the grid point at or before the service's clock
        # (which may cross a step boundary after the client read ``posted``).
        assert posted - STEP <= epoch(healthy["start"]) <= answered
        # No loosening: a healthy canary passes. A marginal here names the judge that lacked evidence.
        assert healthy["verdict"] == "pass" and healthy["score"] == 100.0, f"{label}:\n{explain(healthy)}"
        for result in healthy["intervals"][-1]["metrics"]:
            assert result["classification"] == "Pass", result
        assert by_name(healthy["intervals"][-1])["cpu"]["details"]["observations"] >= POINTS - 4


def test_default_mode_kill_9_mid_analysis_then_restart_judges_every_interval_once(
    databases: dict[str, str], start_service: StartService
) -> None:
    first = {label: start_service(label, url) for label, url in databases.items()}
    ids: dict[str, str] = {}
    before: dict[str, dict[str, Any]] = {}
    for label, service in first.items():
        with httpx.Client(base_url=service.url, timeout=15.0) as client:
            ids[label] = post_default_mode(client, HEALTHY)
    for label, service in first.items():
        with httpx.Client(base_url=service.url, timeout=15.0) as client:
            before[label] = wait_intervals(client, ids[label], 1, INTERVAL + 15.0, service)
    killed_at = time.time()
    for service in first.values():
        service.kill()  # SIGKILL: no shutdown hook, the scheduler and the database as they are
    dues = {
        label: [epoch(doc["start"]) + doc["warmup_s"] + (i + 1) * INTERVAL for i in range(4)]
        for label, doc in before.items()
    }
    for label, doc in before.items():
        assert [i["index"] for i in doc["intervals"]] == [0], doc["intervals"]
        assert killed_at < dues[label][1] - 2.0, "the first interval came too late to kill before the second"

    # Stay down while interval 1 falls due, then start again on the same databases.
    time.sleep(max(0.0, max(d[1] for d in dues.values()) + 2.0 - time.time()))
    second = {label: start_service(f"{label}-restarted", url) for label, url in databases.items()}
    documents: dict[str, dict[str, Any]] = {}
    for label, service in second.items():
        with httpx.Client(base_url=service.url, timeout=15.0) as client:
            verdict = wait_complete(client, ids[label], dues[label][-1] - time.time() + 45.0, service)
            documents[label] = {**get_analysis(client, ids[label]), "final": verdict}

    for label, url in databases.items():
        document, restarted_at = documents[label], second[label].spawned_at
        intervals = document["intervals"]
        assert document["status"] == "completed", explain(document)
        assert [i["index"] for i in intervals] == [0, 1, 2, 3], explain(document)  # none skipped or repeated
        check_sequential_intervals(document)
        assert intervals[0] == before[label]["intervals"][0]  # stored before the kill: unchanged
        judged = [epoch(i["judged"]) for i in intervals]
        assert judged[1] >= restarted_at, (judged[1], restarted_at)  # fell due while down: judged late, once
        # Due after the restart was ready (a loaded machine may take a while): on time again.
        on_time = [i for i in (2, 3) if dues[label][i] > second[label].ready_at + 0.5]
        assert 3 in on_time, (label, second[label].ready_at, dues[label])
        for index in on_time:
            assert 0.0 <= judged[index] - dues[label][index] < 5.0, (
                index,
                judged[index] - dues[label][index],
            )
        assert document["reason"].startswith("final interval 4 of 4"), explain(document)
        # The state resumed from the database: pass, or marginal naming what lacked evidence, never fail.
        assert document["verdict"] in ("pass", "marginal"), explain(document)
        if document["verdict"] == "marginal":
            assert "inconclusive" in document["reason"], explain(document)

        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                rows = connection.execute(
                    text('SELECT "index", count(*) FROM intervals WHERE analysis_id = :id GROUP BY "index"'),
                    {"id": ids[label]},
                ).all()
                finals = connection.execute(
                    text("SELECT count(*) FROM verdicts WHERE analysis_id = :id AND complete"),
                    {"id": ids[label]},
                ).scalar_one()
        finally:
            engine.dispose()
        assert sorted((int(i), int(n)) for i, n in rows) == [(i, 1) for i in range(4)]
        assert finals == 1
