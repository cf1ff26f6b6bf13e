"""Trying to get a wrong ``pass`` out of the running service through its HTTP doors.

Native API, Kayenta's API (RemoteJudge, ``/canary``, standalone) and Flagger webhooks, on a
real in-process server (``tests/live_server.py``) with seeded numpy data and the ``demo`` source.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from live_server import LiveServer, settings_for

Json = dict[str, Any]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp("doors")
    with (
        LiveServer(settings_for(tmp, default_source="demo")) as server,
        httpx.Client(base_url=server.url, timeout=30.0) as http,
    ):
        yield http


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _normal(rng: np.random.Generator, mean: float, sd: float, n: int) -> list[float]:
    return [float(x) for x in rng.normal(mean, sd, n)]


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _window(minutes: int) -> tuple[str, str]:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return _iso(now - timedelta(minutes=minutes)), _iso(now)


NATIVE = {
    "name": "doors",
    "thresholds": {"pass": 95, "marginal": 75},
    "metrics": [{"name": "lat", "kind": "latency"}, {"name": "err", "kind": "errors"}],
}


def _kayenta_config(metrics: list[tuple[str, Json]], passing: float = 95, marginal: float = 75) -> Json:
    return {
        "name": "doors-k",
        "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": {}},
        "metrics": [
            {
                "name": name,
                "query": {"type": "prometheus", "customInlineTemplate": f"PromQL:{name}"},
                "groups": [name],
                "analysisConfigurations": {"canary": canary},
                "scopeName": "default",
            }
            for name, canary in metrics
        ],
        "classifier": {
            "groupWeights": {name: 100 / len(metrics) for name, _ in metrics},
            "scoreThresholds": {"pass": passing, "marginal": marginal},
        },
    }


def _pair(
    name: str, control: list[float], experiment: list[float], tags: dict[str, str] | None = None
) -> Json:
    return {
        "name": name,
        "id": f"{name}-{len(control)}-{len(experiment)}-{sorted((tags or {}).items())}",
        "tags": tags or {},
        "values": {"control": control, "experiment": experiment},
        "attributes": {"control": {}, "experiment": {}},
    }


def _wait_verdict(client: httpx.Client, analysis_id: str) -> Json:
    deadline = time.monotonic() + 20
    verdict: Json = {}
    while time.monotonic() < deadline:
        verdict = client.get(f"/api/v1/analyses/{analysis_id}/verdict").json()
        if verdict["complete"]:
            return verdict
        time.sleep(0.1)
    raise AssertionError(f"analysis {analysis_id} not complete: {verdict}")


def _wait_execution(client: httpx.Client, path: str) -> Json:
    deadline = time.monotonic() + 20
    body: Json = {}
    while time.monotonic() < deadline:
        body = client.get(path).json()
        if body.get("complete"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"{path} not complete: {body}")


# --- native /api/v1/judge -----------------------------------------------------------------


@pytest.mark.parametrize("missing", ["absent", "empty", "nulls", "nans_as_nulls_partial"])
def test_native_judge_missing_canary_data_never_passes(client: httpx.Client, missing: str) -> None:
    rng = _rng(11)
    baseline = {"lat": _normal(rng, 100, 5, 30), "err": _normal(rng, 1, 0.1, 30)}
    canary: Json = {"err": _normal(rng, 1, 0.1, 30)}
    if missing == "empty":
        canary["lat"] = []
    elif missing == "nulls":
        canary["lat"] = [None] * 30
    elif missing == "nans_as_nulls_partial":
        canary["lat"] = [None] * 29 + [None]
    for thresholds in ({"pass": 95, "marginal": 75}, {"pass": 60, "marginal": 10}):
        answer = client.post(
            "/api/v1/judge",
            json={"config": NATIVE, "baseline": baseline, "canary": canary, "thresholds": thresholds},
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        lat = next(m for m in body["metrics"] if m["name"] == "lat")
        assert lat["classification"] == "NodataFailMetric"
        assert body["verdict"] != "pass", body["reason"]


@pytest.mark.parametrize("side", ["canary", "baseline"])
def test_native_judge_misspelt_metric_name_is_refused(client: httpx.Client, side: str) -> None:
    """A metric name in ``baseline``/``canary`` that the config does not know is a misspelt key.

    With pass 50 and two metrics, the ignored ``latt`` leaves ``lat`` NodataFailMetric at score
    50: a ``pass`` for a canary whose latency data was posted but thrown away.
    """
    rng = _rng(12)
    good = {"lat": _normal(rng, 100, 5, 30), "err": _normal(rng, 1, 0.1, 30)}
    other = {"latt": [2 * x for x in _normal(rng, 100, 5, 30)], "err": _normal(rng, 1, 0.1, 30)}
    body = {"config": NATIVE, "thresholds": {"pass": 50, "marginal": 10}}
    body["baseline"], body["canary"] = (good, other) if side == "canary" else (other, good)
    answer = client.post("/api/v1/judge", json=body)
    assert 400 <= answer.status_code < 500, (
        answer.status_code,
        answer.json().get("verdict"),
        answer.text[:300],
    )


def test_native_judge_misspelt_request_keys_are_refused(client: httpx.Client) -> None:
    rng = _rng(13)
    values = {"lat": _normal(rng, 100, 5, 30), "err": _normal(rng, 1, 0.1, 30)}
    base: Json = {"config": NATIVE, "baseline": values, "canary": values}
    assert client.post("/api/v1/judge", json={**base, "threshold": {"pass": 50}}).status_code == 422
    assert client.post("/api/v1/judge", json={**base, "thresholds": {"pas": 50}}).status_code == 422
    bad_config = {**NATIVE, "metrics": [{"name": "lat", "kind": "latency", "must_have_dat": False}]}
    answer = client.post("/api/v1/judge", json={**base, "config": bad_config})
    assert answer.status_code == 422, answer.text


@pytest.mark.parametrize(
    "thresholds", [{"pass": 0}, {"pass": 0, "marginal": 0}, {"pass": -5, "marginal": -10}]
)
def test_thresholds_pass_zero_is_4xx_on_every_door(client: httpx.Client, thresholds: Json) -> None:
    rng = _rng(14)
    values = {"lat": _normal(rng, 100, 5, 30), "err": _normal(rng, 1, 0.1, 30)}
    start, end = _window(30)
    answers = {
        "judge": client.post(
            "/api/v1/judge",
            json={"config": NATIVE, "baseline": values, "canary": values, "thresholds": thresholds},
        ),
        "judge-config": client.post(
            "/api/v1/judge",
            json={"config": {**NATIVE, "thresholds": thresholds}, "baseline": values, "canary": values},
        ),
        "analyses": client.post(
            "/api/v1/analyses",
            json={
                "config": NATIVE,
                "baseline_scope": "v1",
                "canary_scope": "v2",
                "source": "demo",
                "start": start,
                "end": end,
                "thresholds": thresholds,
            },
        ),
    }
    kcfg = _kayenta_config([("latency", {"direction": "increase"})])
    scopes = {
        "default": {
            "controlScope": {"scope": "v1", "start": start, "end": end, "step": 60},
            "experimentScope": {"scope": "v2", "start": start, "end": end, "step": 60},
        }
    }
    answers["remote-judge"] = client.post(
        "/judge",
        json={
            "canaryConfig": kcfg,
            "scoreThresholds": thresholds,
            "metricSetPairList": [_pair("latency", values["lat"], values["lat"])],
        },
    )
    answers["canary-thresholds"] = client.post(
        "/canary",
        json={"canaryConfig": kcfg, "executionRequest": {"scopes": scopes, "thresholds": thresholds}},
    )
    answers["canary-scoreThresholds"] = client.post(
        "/canary",
        json={"canaryConfig": kcfg, "executionRequest": {"scopes": scopes, "scoreThresholds": thresholds}},
    )
    kcfg0 = _kayenta_config([("latency", {"direction": "increase"})], passing=0, marginal=0)
    answers["canary-config-thresholds"] = client.post(
        "/canary", json={"canaryConfig": kcfg0, "executionRequest": {"scopes": scopes}}
    )
    answers["remote-judge-config-thresholds"] = client.post(
        "/judge",
        json={"canaryConfig": kcfg0, "metricSetPairList": [_pair("latency", values["lat"], values["lat"])]},
    )
    _store_demo_config(client)
    answers["flagger"] = client.post(
        "/api/v1/flagger/confirm-promotion",
        json={
            "name": f"t0-{len(thresholds)}-{thresholds['pass']}",
            "namespace": "ns",
            "checksum": "c1",
            "metadata": {
                "config": "demo-doors",
                "thresholds": json.dumps(thresholds),
                "source": "demo",
                "lifetime": "PT1M",
            },
        },
    )
    problems = {
        door: (a.status_code, a.text[:200]) for door, a in answers.items() if not 400 <= a.status_code < 500
    }
    assert not problems


DEMO_NATIVE = {
    "name": "demo-doors",
    "metrics": [
        {"name": "latency", "kind": "latency", "query": "latency"},
        {"name": "errors", "kind": "errors", "query": "errors", "traffic_query": "requests"},
    ],
}


def _store_demo_config(client: httpx.Client) -> None:
    if client.get("/api/v1/configs/demo-doors").status_code == 404:
        answer = client.post("/api/v1/configs", json={"name": "demo-doors", "config": DEMO_NATIVE})
        assert answer.status_code in (200, 201), answer.text


@pytest.mark.parametrize("thresholds", [{"pass": 1, "marginal": 0}, {"pass": 10, "marginal": 5}])
def test_critical_metric_failing_fails_with_lenient_thresholds(
    client: httpx.Client, thresholds: Json
) -> None:
    rng = _rng(15)
    baseline = {"lat": _normal(rng, 100, 5, 30), "err": _normal(rng, 1, 0.1, 30)}
    canary = {"lat": _normal(rng, 100, 5, 30), "err": _normal(rng, 3, 0.3, 30)}
    answer = client.post(
        "/api/v1/judge",
        json={"config": NATIVE, "baseline": baseline, "canary": canary, "thresholds": thresholds},
    ).json()
    assert answer["verdict"] == "fail", answer["reason"]
    kcfg = _kayenta_config(
        [("latency", {"direction": "increase"}), ("errors", {"direction": "increase", "critical": True})]
    )
    remote = client.post(
        "/judge",
        json={
            "canaryConfig": kcfg,
            "scoreThresholds": thresholds,
            "metricSetPairList": [
                _pair("latency", baseline["lat"], canary["lat"]),
                _pair("errors", baseline["err"], canary["err"]),
            ],
        },
    ).json()
    assert remote["score"]["classification"] == "Fail", remote["score"]
    assert remote["score"]["score"] < thresholds["pass"]


@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.parametrize("measure", ["meanRatio", "cles"])
@pytest.mark.parametrize("seed", [21, 22, 23])
def test_few_points_doubled_canary_never_passes(
    client: httpx.Client, n: int, measure: str, seed: int
) -> None:
    rng = _rng(seed)
    baseline = _normal(rng, 100, 5, n)
    canary = [2 * x for x in _normal(rng, 100, 5, n)]
    config = {
        "name": "few",
        "metrics": [
            {
                "name": "lat",
                "kind": "latency",
                "judge": {"type": "mann-whitney", "effect_size": {"measure": measure}},
            }
        ],
    }
    for thresholds in ({"pass": 95, "marginal": 75}, {"pass": 20, "marginal": 10}):
        body = client.post(
            "/api/v1/judge",
            json={
                "config": config,
                "baseline": {"lat": baseline},
                "canary": {"lat": canary},
                "thresholds": thresholds,
            },
        ).json()
        assert body["verdict"] in ("marginal", "fail"), body["reason"]
        if body["verdict"] == "marginal":
            assert body["score"] < thresholds["pass"]
    kcfg = _kayenta_config([("latency", {"direction": "increase", "effectSize": {"measure": measure}})])
    remote = client.post(
        "/judge",
        json={
            "canaryConfig": kcfg,
            "scoreThresholds": {"pass": 95, "marginal": 75},
            "metricSetPairList": [_pair("latency", baseline, canary)],
        },
    ).json()
    assert remote["score"]["classification"] != "Pass", remote["score"]
    assert remote["score"]["score"] < 95


@pytest.mark.parametrize("seed", [31, 32])
def test_cles_effect_size_regression_fails(client: httpx.Client, seed: int) -> None:
    rng = _rng(seed)
    baseline = _normal(rng, 100, 5, 40)
    canary = _normal(rng, 110, 5, 40)
    config = {
        "name": "cles",
        "metrics": [
            {
                "name": "lat",
                "kind": "latency",
                "judge": {
                    "type": "mann-whitney",
                    "effect_size": {"measure": "cles", "allowed_increase": 0.6},
                },
            }
        ],
    }
    body = client.post(
        "/api/v1/judge", json={"config": config, "baseline": {"lat": baseline}, "canary": {"lat": canary}}
    ).json()
    assert body["verdict"] == "fail", body["reason"]
    bad = {
        "name": "cles",
        "metrics": [
            {
                "name": "lat",
                "kind": "latency",
                "judge": {
                    "type": "mann-whitney",
                    "effect_size": {"measure": "cles", "allowed_increase": 1.5},
                },
            }
        ],
    }
    refused = client.post(
        "/api/v1/judge", json={"config": bad, "baseline": {"lat": baseline}, "canary": {"lat": canary}}
    )
    assert refused.status_code == 422, refused.text


@pytest.mark.parametrize("seed", [41, 42, 43])
def test_negative_valued_metric_regression_fails(client: httpx.Client, seed: int) -> None:
    """From about -10 to about -5 is an increase; a meanRatio of 0.5 must not make it pass."""
    rng = _rng(seed)
    baseline = _normal(rng, -10, 0.5, 40)
    canary = _normal(rng, -5, 0.5, 40)
    config = {"name": "neg", "metrics": [{"name": "lat", "kind": "latency"}]}
    body = client.post(
        "/api/v1/judge", json={"config": config, "baseline": {"lat": baseline}, "canary": {"lat": canary}}
    ).json()
    assert body["verdict"] == "fail", body["reason"]
    kcfg = _kayenta_config([("latency", {"direction": "increase"})])
    remote = client.post(
        "/judge",
        json={
            "canaryConfig": kcfg,
            "scoreThresholds": {"pass": 95, "marginal": 75},
            "metricSetPairList": [_pair("latency", baseline, canary)],
        },
    ).json()
    assert remote["score"]["classification"] == "Fail", remote["score"]


def test_zero_traffic_canary_native_never_passes(client: httpx.Client) -> None:
    """No traffic: no latency samples and an error ratio of NaN (null) or 0 on the canary.

    Reported, not asserted: with a lenient pass threshold (40) a canary posting ``err`` as 0.0
    and no latency passes at score 50 (``lat`` NodataFailMetric counts as a failure in its
    group only, as documented); a source reporting 0/0 as 0 is indistinguishable from a
    healthy canary without errors.
    """
    rng = _rng(51)
    baseline = {"lat": _normal(rng, 100, 5, 30), "err": _normal(rng, 0.01, 0.002, 30)}
    cases: list[tuple[Json, Json]] = [
        ({"lat": [], "err": [0.0] * 30}, {"pass": 95, "marginal": 75}),
        ({"lat": [None] * 30, "err": [None] * 30}, {"pass": 95, "marginal": 75}),
        ({"lat": [None] * 30, "err": [None] * 30}, {"pass": 1, "marginal": 0}),
        ({"lat": [], "err": []}, {"pass": 1, "marginal": 0}),
    ]
    for canary, thresholds in cases:
        body = client.post(
            "/api/v1/judge",
            json={"config": NATIVE, "baseline": baseline, "canary": canary, "thresholds": thresholds},
        ).json()
        assert body["verdict"] != "pass", (canary, body["reason"])


def test_zero_traffic_canary_kayenta_remote_judge_report(client: httpx.Client) -> None:
    """Kayenta configs keep Nodata (mustHaveData false); with mustHaveData it must not pass."""
    rng = _rng(52)
    baseline = _normal(rng, 100, 5, 30)
    others = [_pair(f"m{i}", _normal(rng, 10, 1, 30), _normal(rng, 10, 1, 30)) for i in range(4)]
    metrics = [(f"m{i}", {"direction": "increase"}) for i in range(4)]
    lax = _kayenta_config([*metrics, ("latency", {"direction": "increase"})])
    remote = client.post(
        "/judge", json={"canaryConfig": lax, "metricSetPairList": [*others, _pair("latency", baseline, [])]}
    ).json()
    latency = next(r for r in remote["results"] if r["name"] == "latency")
    assert latency["classification"] == "Nodata"  # Kayenta's semantics (reported, not a finding)
    strict = _kayenta_config([*metrics, ("latency", {"direction": "increase", "mustHaveData": True})])
    remote = client.post(
        "/judge",
        json={"canaryConfig": strict, "metricSetPairList": [*others, _pair("latency", baseline, [])]},
    ).json()
    assert remote["score"]["classification"] != "Pass", remote["score"]


@pytest.mark.parametrize("labels", [("v1", "v2"), ("v1", "v2-canary")])
def test_remote_judge_scope_labelled_series_pair(client: httpx.Client, labels: tuple[str, str]) -> None:
    """One control and one experiment series of a metric, tagged with their own scopes.

    README (Pairing): labels carrying the side's own scope are ignored, and "when each side
    returns one series, they pair whatever their labels". Left unpaired, each half is Nodata
    and a doubled canary latency disappears from the score: a wrong pass.
    """
    rng = _rng(61)
    others = [_pair(f"m{i}", _normal(rng, 10, 1, 30), _normal(rng, 10, 1, 30)) for i in range(5)]
    metrics = [(f"m{i}", {"direction": "increase"}) for i in range(5)]
    kcfg = _kayenta_config([*metrics, ("latency", {"direction": "increase"})])
    control = _normal(rng, 100, 5, 30)
    experiment = [2 * x for x in _normal(rng, 100, 5, 30)]
    split = [
        _pair("latency", control, [], {"version": labels[0]}),
        _pair("latency", [], experiment, {"version": labels[1]}),
    ]
    answer = client.post(
        "/judge",
        json={
            "canaryConfig": kcfg,
            "scoreThresholds": {"pass": 95, "marginal": 75},
            "metricSetPairList": [*others, *split],
        },
    )
    assert answer.status_code == 200, answer.text
    score = answer.json()["score"]
    assert score["classification"] != "Pass", score


def test_remote_judge_misspelt_keys(client: httpx.Client) -> None:
    rng = _rng(71)
    kcfg = _kayenta_config(
        [("latency", {"direction": "increase"}), ("errors", {"direction": "increase"})],
        passing=50,
        marginal=10,
    )
    pairs = [
        _pair("latency", _normal(rng, 100, 5, 30), [2 * x for x in _normal(rng, 100, 5, 30)]),
        _pair("errors", _normal(rng, 1, 0.1, 30), _normal(rng, 1, 0.1, 30)),
    ]
    inner = client.post(
        "/judge",
        json={
            "canaryConfig": kcfg,
            "scoreThresholds": {"pas": 99, "marginal": 95},
            "metricSetPairList": pairs,
        },
    )
    assert inner.status_code == 422, inner.text
    unknown_metric = client.post(
        "/judge",
        json={"canaryConfig": kcfg, "metricSetPairList": [*pairs, _pair("latancy", [1.0] * 5, [1.0] * 5)]},
    )
    assert unknown_metric.status_code == 422, unknown_metric.text


def test_remote_judge_misspelt_score_thresholds_key_is_not_silently_ignored(client: httpx.Client) -> None:
    """``scoreThreshold`` (no s) asking for pass 99: ignored, the config's pass 50 passes a score of 50.

    Correct: a 4xx, or at least a warning naming the field (CanaryJudgeResult has none).
    """
    rng = _rng(72)
    kcfg = _kayenta_config(
        [("latency", {"direction": "increase"}), ("errors", {"direction": "increase"})],
        passing=50,
        marginal=10,
    )
    pairs = [
        _pair("latency", _normal(rng, 100, 5, 30), [2 * x for x in _normal(rng, 100, 5, 30)]),
        _pair("errors", _normal(rng, 1, 0.1, 30), _normal(rng, 1, 0.1, 30)),
    ]
    answer = client.post(
        "/judge",
        json={
            "canaryConfig": kcfg,
            "scoreThreshold": {"pass": 99, "marginal": 95},
            "metricSetPairList": pairs,
        },
    )
    refused = 400 <= answer.status_code < 500
    assert refused or "scoreThreshold" in answer.text.replace("scoreThresholds", ""), answer.text[-400:]


def test_native_analysis_misspelt_keys_are_refused(client: httpx.Client) -> None:
    start, end = _window(30)
    base: Json = {
        "config": DEMO_NATIVE,
        "baseline_scope": "v1",
        "canary_scope": "v2",
        "source": "demo",
        "start": start,
        "end": end,
    }
    for extra in ({"mdoe": "sequential"}, {"thresholds": {"pas": 10}}, {"fail_fats": False}):
        answer = client.post("/api/v1/analyses", json={**base, **extra})
        assert answer.status_code == 422, (extra, answer.text)
    answer = client.post("/api/v1/analyses", json={**base, "config": {**DEMO_NATIVE, "mdoe": "sequential"}})
    assert answer.status_code == 422, answer.text


@pytest.mark.parametrize("canary_scope", ["v2-regressed", "regressed", "checkout-regressed-canary"])
@pytest.mark.parametrize("step", [10, 60])
def test_sequential_demo_regressed_never_passes(client: httpx.Client, canary_scope: str, step: int) -> None:
    start, end = _window(60)
    for thresholds in ({"pass": 95, "marginal": 75}, {"pass": 10, "marginal": 5}):
        answer = client.post(
            "/api/v1/analyses",
            json={
                "config": DEMO_NATIVE,
                "baseline_scope": "v1",
                "canary_scope": canary_scope,
                "source": "demo",
                "start": start,
                "end": end,
                "step": step,
                "mode": "sequential",
                "thresholds": thresholds,
            },
        )
        assert answer.status_code == 201, answer.text
        verdict = _wait_verdict(client, answer.json()["id"])
        # One minute at a 60-s step is 2 points: too thin to establish anything, so marginal is right.
        allowed = ("fail",) if step == 10 else ("fail", "marginal")
        assert verdict["verdict"] in allowed, verdict


def test_sequential_healthy_marginal_score_below_pass(client: httpx.Client) -> None:
    start, end = _window(60)
    for thresholds in ({"pass": 95, "marginal": 75}, {"pass": 30, "marginal": 10}):
        answer = client.post(
            "/api/v1/analyses",
            json={
                "config": DEMO_NATIVE,
                "baseline_scope": "v1",
                "canary_scope": "v2",
                "source": "demo",
                "start": start,
                "end": end,
                "step": 60,
                "mode": "sequential",
                "thresholds": thresholds,
            },
        )
        verdict = _wait_verdict(client, answer.json()["id"])
        if verdict["verdict"] == "marginal":
            assert verdict["score"] is not None and verdict["score"] < thresholds["pass"], verdict


def _canary_execution(client: httpx.Client, cfg: Json, scope: str, minutes: int, extra: Json) -> Json:
    start, end = _window(minutes)
    request = {
        "scopes": {
            "default": {
                "controlScope": {"scope": "v1", "location": "", "start": start, "end": end, "step": 60},
                "experimentScope": {"scope": scope, "location": "", "start": start, "end": end, "step": 60},
            }
        },
        **extra,
    }
    answer = client.post("/canary", json={"canaryConfig": cfg, "executionRequest": request})
    assert answer.status_code == 200, answer.text
    return _wait_execution(client, f"/canary/{answer.json()['canaryExecutionId']}")


@pytest.mark.parametrize(
    "request_thresholds",
    [{"pass": 95, "marginal": 75}, {"pass": 60, "marginal": 40}, {"pass": 40, "marginal": 20}, None],
)
@pytest.mark.parametrize("scope", ["v2", "v2-regressed"])
def test_argo_reads_score_marginal_below_pass_threshold(
    client: httpx.Client, request_thresholds: Json | None, scope: str
) -> None:
    """Argo's kayenta provider compares result.judgeResult.score.score with its own thresholds."""
    cfg = _kayenta_config(
        [("latency", {"direction": "increase"}), ("errors", {"direction": "increase", "critical": True})]
    )
    extra = {} if request_thresholds is None else {"thresholds": request_thresholds}
    execution = _canary_execution(client, cfg, scope, 3, extra)
    passing = (request_thresholds or {"pass": 95})["pass"]
    score = execution["result"]["judgeResult"]["score"]
    assert score["classification"] != "Pass", score
    assert score["score"] < passing, (score, request_thresholds)


def test_canary_regressed_fails_and_unknown_fields_warned(client: httpx.Client) -> None:
    cfg = _kayenta_config(
        [("latency", {"direction": "increase"}), ("errors", {"direction": "increase", "critical": True})]
    )
    execution = _canary_execution(
        client, cfg, "v2-regressed", 60, {"thresholds": {"pass": 10, "marginal": 5}}
    )
    assert execution["result"]["judgeResult"]["score"]["classification"] == "Fail"
    warned = _canary_execution(client, cfg, "v2", 60, {"thresholdz": {"pass": 10}})
    assert any("thresholdz" in w for w in map(str, warned["warnings"])), warned["warnings"]
    start, end = _window(60)
    scopes = {
        "default": {
            "controlScope": {"scope": "v1", "start": start, "end": end, "step": 60},
            "experimentScope": {"scope": "v2", "start": start, "end": end, "step": 60},
        }
    }
    refused = client.post(
        "/canary",
        json={
            "canaryConfig": cfg,
            "executionRequest": {"scopes": scopes, "thresholds": {"pas": 10, "marginal": 5}},
        },
    )
    assert refused.status_code == 422, refused.text


def test_standalone_regressed_does_not_pass(client: httpx.Client) -> None:
    cfg = _kayenta_config(
        [("latency", {"direction": "increase"}), ("errors", {"direction": "increase", "critical": True})]
    )
    start, _ = _window(60)
    body = {
        "canaryConfig": cfg,
        "executionRequest": {
            "scopes": [
                {
                    "scopeName": "default",
                    "controlScope": "v1",
                    "experimentScope": "v2-regressed",
                    "startTimeIso": start,
                    "step": 60,
                }
            ],
            "thresholds": {"pass": 10, "marginal": 5},
            "lifetimeDurationMins": 30,
            "analysisIntervalMins": 30,
        },
    }
    answer = client.post("/standalone_canary_analysis", json=body)
    assert answer.status_code in (200, 201, 202), answer.text
    ident = next(v for k, v in answer.json().items() if k.lower().endswith("id"))
    status = _wait_execution(client, f"/standalone_canary_analysis/{ident}")
    result = status["canaryAnalysisExecutionResult"]
    assert result["didPassThresholds"] is False, result["canaryScoreMessage"]
    assert all(score < 10 for score in result["canaryScores"]), result["canaryScores"]


def _flagger_until_decided(client: httpx.Client, hook: str, payload: Json, seconds: float) -> httpx.Response:
    deadline = time.monotonic() + seconds
    answer = client.post(f"/api/v1/flagger/{hook}", json=payload)
    while answer.status_code == 425 and time.monotonic() < deadline:
        time.sleep(0.5)
        answer = client.post(f"/api/v1/flagger/{hook}", json=payload)
    return answer


@pytest.mark.parametrize(
    ("scope", "metadata"),
    [
        # Enough evidence to fail: fixed mode (DEMO_NATIVE's metrics all have sequential judges, so
        # sequential is its default, which needs 60 points) and up to 31 points a side (a native
        # mann-whitney needs 8 effectively independent points a side to decide).
        ("v2-regressed", {"lifetime": "PT30S", "interval": "PT10S", "step": "1", "mode": "fixed"}),
        # Lenient but valid thresholds: a pass threshold of 10 lets a score of 50 pass by the user's own
        # choice (only a forced 0 fails whatever the thresholds), so the bound here is 80.
        ("regressed", {"lifetime": "PT6S", "step": "1", "thresholds": '{"pass": 80, "marginal": 5}'}),
        # 3-4 points a side: thin evidence, marginal at best
        ("v2", {"lifetime": "PT3S", "step": "1"}),
        ("v2", {"lifetime": "PT3S", "step": "1", "thresholds": '{"pass": 20, "marginal": 10}'}),
        ("v2-regressed", {"lifetime": "PT3S", "step": "1", "thresholds": '{"pass": 20, "marginal": 10}'}),
    ],
)
def test_flagger_regressed_and_thin_never_promote(client: httpx.Client, scope: str, metadata: Json) -> None:
    _store_demo_config(client)
    payload = {
        "name": scope,
        "namespace": f"ns-{abs(hash(json.dumps(metadata, sort_keys=True))) % 10**8}",
        "checksum": "a",
        "metadata": {"config": "demo-doors", "canary_scope": scope, "baseline_scope": "v1", "source": "demo"}
        | metadata,
    }
    answer = _flagger_until_decided(client, "confirm-promotion", payload, 45)
    assert answer.status_code != 200, answer.text
    if "regressed" in scope and metadata.get("mode") == "fixed":
        assert answer.status_code == 409, answer.text
        assert client.post("/api/v1/flagger/rollback", json=payload).status_code == 200


def test_flagger_misspelt_metadata_is_refused(client: httpx.Client) -> None:
    _store_demo_config(client)
    misspelt = client.post(
        "/api/v1/flagger/confirm-promotion",
        json={
            "name": "x",
            "namespace": "nsm",
            "checksum": "a",
            "metadata": {"config": "demo-doors", "config_versoin": "1", "source": "demo"},
        },
    )
    assert misspelt.status_code == 422 and "config_version" in misspelt.text, misspelt.text
    misspelt = client.post(
        "/api/v1/flagger/confirm-promotion",
        json={
            "name": "y",
            "namespace": "nsm",
            "checksum": "a",
            "metadata": {"config": "demo-doors", "thresholds": '{"pas": 10}', "source": "demo"},
        },
    )
    assert 400 <= misspelt.status_code < 500, misspelt.text
