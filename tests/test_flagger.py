"""Flagger's webhooks replayed against a real kayenta-py server.

Flagger POSTs ``{"name", "namespace", "phase", "checksum", "metadata"}`` (Go's encoding/json:
struct order, metadata a map[string]string with sorted keys, left out when empty) and
counts only 200-202 as success. The analyses here use the ``demo`` source, where a scope
containing "regressed" is regressed.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import LiveServer, settings_for

from kayenta_py.integrations.flagger import HOOKS

CONFIG_NAME = "podinfo-canary-config"
NATIVE_CONFIG: dict[str, Any] = {
    "name": "podinfo",
    "description": "podinfo's errors and latency",
    "thresholds": {"pass": 95, "marginal": 75},
    "groups": {"errors": 50, "latency": 50},
    "metrics": [
        {
            "name": "error-ratio",
            "kind": "errors",
            "judge": {
                "type": "mann-whitney",
                "effect_size": {"measure": "meanRatio", "allowed_increase": 1.5},
                # About Flagger's hooks, not thin intervals (test_fixed_effective_points.py)
                "min_effective": 0,
            },
        },
        {
            "name": "p99-latency",
            "kind": "latency",
            "judge": {
                "type": "mann-whitney",
                "effect_size": {"measure": "meanRatio", "allowed_increase": 1.2},
                "min_effective": 0,
            },
        },
    ],
}
MAX_REASON = 400  # Flagger puts the body into a Kubernetes event: it must stay short


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp: Path = tmp_path_factory.mktemp("flagger")
    with LiveServer(settings_for(tmp)) as live:
        stored = httpx.post(
            f"{live.url}/api/v1/configs", json={"name": CONFIG_NAME, "config": NATIVE_CONFIG}, timeout=10
        )
        assert stored.status_code == 201, stored.text
        yield live


class Flagger:
    """Calls kayenta-py's hooks the way Flagger's callWebhook does for one canary revision."""

    def __init__(
        self, base: str, checksum: str, metadata: Mapping[str, str] | None, name: str = "podinfo"
    ) -> None:
        self.base = base
        self.checksum = checksum
        self.metadata = dict(metadata) if metadata is not None else None
        self.name = name
        self.client = httpx.Client(timeout=10.0, headers={"User-Agent": "Go-http-client/1.1"})

    def payload(self, phase: str) -> bytes:
        document: dict[str, Any] = {
            "name": self.name,
            "namespace": "test",
            "phase": phase,
            "checksum": self.checksum,
        }
        if self.metadata:  # `json:"metadata,omitempty"`
            document["metadata"] = dict(sorted(self.metadata.items()))
        return json.dumps(document, separators=(",", ":")).encode()

    def call(self, hook: str, phase: str = "Progressing") -> httpx.Response:
        answer = self.client.post(
            f"{self.base}/api/v1/flagger/{hook}",
            content=self.payload(phase),
            headers={"Content-Type": "application/json"},
        )
        if answer.headers["content-type"].startswith("application/json"):
            # an analysis that cannot start: 404 (unknown config or version) or 422, naming the field
            assert answer.status_code in (404, 422), answer.text
            assert all(item["loc"] and item["msg"] for item in answer.json()["detail"]), answer.text
            assert len(answer.text) <= MAX_REASON, answer.text
        else:
            assert answer.headers["content-type"].startswith("text/plain"), answer.headers
            assert 0 < len(answer.text) <= MAX_REASON and answer.text.count("\n") <= 1, answer.text
        return answer

    def succeeded(self, hook: str, phase: str = "Progressing") -> bool:
        """Flagger's rule: a status above 202 is a failed hook."""
        return self.call(hook, phase).status_code <= 202


def metadata(**values: str) -> dict[str, str]:
    base = {"config": CONFIG_NAME, "lifetime": "PT20S", "interval": "PT5S", "step": "1", "source": "demo"}
    base.update(values)
    return base


def started_id(answer: httpx.Response) -> str:
    match = re.fullmatch(r"analysis (\S+) started\n?", answer.text)
    assert answer.status_code == 200 and match, (answer.status_code, answer.text)
    return match.group(1)


def analysis(base: str, analysis_id: str) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(f"{base}/api/v1/analyses/{analysis_id}", timeout=10).json()
    return document


def test_scenario_a_healthy_canary_is_promoted_never_rolled_back(server: LiveServer) -> None:
    flagger = Flagger(
        server.url, "7d8f9a0b1c", metadata(baseline_scope="podinfo-primary", canary_scope="podinfo-canary")
    )
    # Flagger calls rollback hooks while Waiting too: nothing to roll back yet.
    assert flagger.call("rollback", "Waiting").status_code == 409

    analysis_id = started_id(flagger.call("confirm-rollout"))
    assert flagger.succeeded("pre-rollout")
    assert flagger.succeeded("rollout")
    first = flagger.call("confirm-promotion")
    assert first.status_code == 425, first.text  # pending: Flagger waits without counting a failure
    assert not flagger.succeeded("rollback")

    promotion: list[int] = []
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        assert flagger.succeeded("rollout"), "rollout must stay 200 while the canary is healthy"
        assert flagger.call("rollback").status_code == 409
        promotion.append(flagger.call("confirm-promotion").status_code)
        if promotion[-1] == 200:
            break
        time.sleep(0.5)
    assert promotion and promotion[-1] == 200, promotion
    assert set(promotion[:-1]) <= {425}, promotion
    assert len(promotion) > 1  # it really was pending before it passed

    document = analysis(server.url, analysis_id)
    assert document["verdict"] == "pass" and document["complete"] is True
    assert (document["baseline_scope"], document["canary_scope"]) == ("podinfo-primary", "podinfo-canary")
    assert document["source"] == "demo" and document["interval_s"] == 5 and document["lifetime_s"] == 20
    assert document["step_s"] == 1 and len(document["intervals"]) == 4
    assert document["scope_params"] == {"namespace": "test", "name": "podinfo"}

    assert flagger.succeeded("rollout")
    assert flagger.call("confirm-promotion").status_code == 200
    assert flagger.call("rollback").status_code == 409
    assert flagger.call("post-rollout", "Succeeded").status_code == 200
    assert flagger.call("event", "Succeeded").status_code == 200


def test_scenario_b_regressed_canary_is_rolled_back(server: LiveServer) -> None:
    flagger = Flagger(
        server.url,
        "regressed-checksum-1",
        metadata(baseline_scope="podinfo-primary", canary_scope="podinfo-regressed"),
    )
    analysis_id = started_id(flagger.call("pre-rollout"))
    assert flagger.call("rollback").status_code == 409  # not failed yet: no rollback

    rollout: list[int] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rollout.append(flagger.call("rollout").status_code)
        if rollout[-1] > 202:
            break
        time.sleep(0.5)
    assert rollout and rollout[-1] > 202, rollout
    assert set(rollout[:-1]) <= {200}, rollout
    failing = flagger.call("rollout")
    assert failing.status_code == 409 and "fail" in failing.text

    promotion = flagger.call("confirm-promotion")
    assert promotion.status_code > 202 and promotion.status_code != 425, promotion.text
    rollback = flagger.call("rollback")
    assert rollback.status_code == 200, rollback.text
    assert flagger.call("post-rollout", "Failed").status_code == 200
    assert flagger.call("event", "Failed").status_code == 200

    document = analysis(server.url, analysis_id)
    assert document["verdict"] == "fail" and document["complete"] is True
    # (With ~5 points per side it is the latency, the errors or both that fail the interval.)
    failed = {m["name"]: m["classification"] for m in document["intervals"][-1]["metrics"]}
    assert "High" in failed.values(), failed


def test_a_new_checksum_starts_a_new_analysis(server: LiveServer) -> None:
    meta = metadata(lifetime="PT60S", interval="PT30S")
    first = started_id(Flagger(server.url, "rev-1", meta, name="checksums").call("rollout"))
    again = Flagger(server.url, "rev-1", meta, name="checksums").call("rollout")
    assert again.status_code == 200 and again.text.startswith(f"analysis {first}:"), again.text
    second = started_id(Flagger(server.url, "rev-2", meta, name="checksums").call("rollout"))
    assert second != first
    # Another namespace/name with the same checksum is another canary.
    third = started_id(Flagger(server.url, "rev-1", meta, name="other-app").call("rollout"))
    assert third not in (first, second)


def test_confirm_promotion_as_the_first_call_starts_and_waits(server: LiveServer) -> None:
    flagger = Flagger(
        server.url, "promotion-first", metadata(lifetime="PT60S", interval="PT30S"), name="promo"
    )
    answer = flagger.call("confirm-promotion")
    assert answer.status_code == 425, answer.text
    assert flagger.succeeded("rollout")


def test_default_scopes_are_the_primary_and_the_target(server: LiveServer) -> None:
    flagger = Flagger(server.url, "defaults-1", metadata(lifetime="PT60S", interval="PT30S"))
    analysis_id = started_id(flagger.call("confirm-rollout"))
    document = analysis(server.url, analysis_id)
    assert (document["baseline_scope"], document["canary_scope"]) == ("podinfo-primary", "podinfo")
    assert document["config_name"] == CONFIG_NAME


def test_acknowledging_hooks_and_unknown_hooks(server: LiveServer) -> None:
    flagger = Flagger(server.url, "ack-only", metadata(), name="ack")
    assert flagger.call("post-rollout", "Succeeded").status_code == 200
    assert flagger.call("event", "Progressing").status_code == 200
    # Flagger's event payload carries eventMessage/eventType/timestamp in metadata.
    event = Flagger(
        server.url,
        "ack-only",
        {"eventMessage": "New revision detected", "eventType": "Normal", "timestamp": "1"},
    )
    assert event.call("event", "Initializing").status_code == 200
    unknown = flagger.call("pre-promotion")
    assert unknown.status_code == 404 and "pre-promotion" in unknown.text
    assert set(HOOKS) == {
        "confirm-rollout",
        "pre-rollout",
        "rollout",
        "confirm-traffic-increase",
        "confirm-promotion",
        "rollback",
        "post-rollout",
        "event",
    }


@pytest.mark.parametrize(
    ("meta", "status", "field"),
    [
        pytest.param(None, 422, "metadata.config", id="no-metadata"),  # omitempty: no metadata key at all
        pytest.param({"lifetime": "PT20S"}, 422, "metadata.config", id="no-config"),
        pytest.param(metadata(config="no-such-config"), 404, "metadata.config", id="unknown-config"),
        pytest.param(metadata(lifetime="twenty seconds"), 422, "metadata.lifetime", id="bad-lifetime"),
        pytest.param(metadata(mode="bayesian"), 422, "metadata.mode", id="unknown-mode"),
        pytest.param(metadata(source="prometheus"), 422, "metadata.source", id="unconfigured-source"),
        pytest.param(metadata(config_version="9"), 404, "metadata.config_version", id="unknown-version"),
        pytest.param(metadata(config_version="one"), 422, "metadata.config_version", id="bad-version"),
        # A misspelt key would silently judge with the latest version: refused, with the near match.
        pytest.param(metadata(config_versoin="1"), 422, "metadata.config_versoin", id="misspelt-key"),
    ],
)
def test_an_analysis_that_cannot_start_is_a_short_json_error_naming_the_field(
    server: LiveServer, meta: dict[str, str] | None, status: int, field: str
) -> None:
    answer = Flagger(server.url, "bad-" + field + str(status), meta, name="broken").call("confirm-rollout")
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    detail = answer.json()["detail"]
    assert detail[0]["loc"] == ["body", *field.split(".")], detail
    assert field in detail[0]["msg"], detail
    # nothing was started: a later call tries again (and fails the same way)
    again = Flagger(server.url, "bad-" + field + str(status), meta, name="broken").call("confirm-rollout")
    assert again.status_code == status


MARGINAL_CONFIG: dict[str, Any] = {
    "name": "marginal",
    "thresholds": {"pass": 95, "marginal": 75},
    "groups": {"latency": 10, "throughput": 90},
    "metrics": [
        # min_effective 0: a weighted-score marginal, not the live rule's inconclusive interval
        {"name": "p99-latency", "kind": "latency", "judge": {"type": "mann-whitney", "min_effective": 0}},
        {
            "name": "widgets",  # not a kind the demo source regresses
            "kind": "custom",
            "direction": "increase",
            "group": "throughput",
            "judge": {
                "type": "mann-whitney",
                "effect_size": {"measure": "meanRatio", "allowed_increase": 1.5},
                "min_effective": 0,
            },
        },
    ],
}


@pytest.fixture(scope="module")
def marginal_canary(server: LiveServer) -> tuple[Flagger, dict[str, Any]]:
    """A canary whose one-interval analysis ends marginal: latency High (weight 10), the rest Pass."""
    stored = httpx.post(
        f"{server.url}/api/v1/configs", json={"name": "marginal", "config": MARGINAL_CONFIG}, timeout=10
    )
    assert stored.status_code == 201, stored.text
    flagger = Flagger(
        server.url,
        "marginal-1",
        metadata(config="marginal", canary_scope="podinfo-regressed", lifetime="PT7S", interval="PT7S"),
        name="marginal",
    )
    analysis_id = started_id(flagger.call("confirm-rollout"))
    deadline = time.monotonic() + 30
    while not (document := analysis(server.url, analysis_id))["complete"]:
        assert time.monotonic() < deadline, "the marginal analysis did not complete"
        time.sleep(0.25)
    return flagger, document


def test_a_final_marginal_verdict_holds_promotion_without_rollback(
    marginal_canary: tuple[Flagger, dict[str, Any]],
) -> None:
    flagger, document = marginal_canary
    assert document["verdict"] == "marginal" and document["score"] == pytest.approx(90.0), document["reason"]
    assert flagger.succeeded("rollout")  # not failing
    assert not flagger.succeeded("confirm-promotion")  # not a conclusive pass
    assert flagger.call("rollback").status_code == 409  # not a fail either


def test_a_final_marginal_verdict_is_not_reported_as_not_complete(
    marginal_canary: tuple[Flagger, dict[str, Any]],
) -> None:
    flagger, _ = marginal_canary
    answer = flagger.call("confirm-promotion")
    assert "not complete" not in answer.text, answer.text


def test_a_non_numeric_step_is_a_short_422(server: LiveServer) -> None:
    flagger = Flagger(server.url, "bad-step", metadata(step="fast"), name="broken-step")
    answer = flagger.call("confirm-rollout")
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "metadata", "step"]
    assert "metadata.step" in answer.text


def test_flagger_duration_style_step_is_accepted(server: LiveServer) -> None:
    answer = Flagger(server.url, "go-step", metadata(step="1s"), name="go-step").call("confirm-rollout")
    assert answer.status_code == 200, answer.text
