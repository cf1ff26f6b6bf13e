"""Flagger webhooks: ``POST /api/v1/flagger/{hook}``.

Flagger counts only 200-202 as success. The first call for a (namespace, name,
checksum) starts an analysis; later calls answer from it:

* ``confirm-rollout``, ``pre-rollout``, ``rollout``, ``confirm-traffic-increase``:
  200 unless the analysis is failing (then 409 with the reason);
* ``confirm-promotion``: 200 only on a conclusive pass; while pending 425 (Flagger
  waits without counting a failure), after a fail 409;
* ``rollback``: 200 only when the canary failed ("roll back now"), else 409;
* ``post-rollout``, ``event``: 200, acknowledged.

Answers are short plain-text reasons, which Flagger shows in its events. A call that cannot
start its analysis gets a short JSON error naming the metadata field at fault: 404 for an
unknown config or version, 422 for anything else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ConfigDict, Field

from kayenta_py.config.registry import did_you_mean
from kayenta_py.http.dependencies import ServiceDep, require_compat
from kayenta_py.http.errors import AsciiJSONResponse
from kayenta_py.model.errors import ConfigError, FieldError, KayentaError
from kayenta_py.model.limits import JsonSafeErrors, check_text, json_issue
from kayenta_py.model.redact import redact
from kayenta_py.model.spec import AnalysisSpec, DoorRecord
from kayenta_py.model.types import Thresholds, threshold_values
from kayenta_py.service.analyses import ConfigNotFoundError, Service
from kayenta_py.service.settings_parsing import parse_duration
from kayenta_py.service.store.records import Analysis

HOOKS = (
    "confirm-rollout",
    "pre-rollout",
    "rollout",
    "confirm-traffic-increase",
    "confirm-promotion",
    "rollback",
    "post-rollout",
    "event",
)
_STARTING = frozenset(
    {"confirm-rollout", "pre-rollout", "rollout", "confirm-traffic-increase", "confirm-promotion"}
)
_METADATA = (
    "config",
    "config_version",
    "thresholds",
    "baseline_scope",
    "canary_scope",
    "lifetime",
    "interval",
    "step",
    "mode",
    "warmup",
    "lookback",
    "source",
    "location",
    "baseline_offset",
)


class FlaggerPayload(JsonSafeErrors):
    """Flagger's webhook payload (unknown fields are accepted, as Flagger adds some over time).

    The lengths are Kubernetes' (a name of 253 characters, a namespace of 63), so that the
    analysis' key ``namespace/name/checksum`` fits the store's column.
    """

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=253)
    namespace: str = Field(min_length=1, max_length=63)
    phase: str = Field("", max_length=100)
    checksum: str = Field("", max_length=128)
    metadata: dict[str, Any] = Field(default_factory=dict)


router = APIRouter(tags=["flagger"], dependencies=[Depends(require_compat)])
"""Flagger's webhooks; ``require_compat`` authorizes each call."""


@router.post("/api/v1/flagger/{hook}", response_class=PlainTextResponse)
def webhook(hook: str, payload: FlaggerPayload, service: ServiceDep) -> Response:
    """Answer one Flagger webhook for a canary, starting its analysis on the first call."""
    if hook not in HOOKS:
        return _text(404, f"unknown hook {hook!r}; use one of {', '.join(HOOKS)}")
    problem = _payload_problem(service, payload)
    if problem is not None:
        return problem
    key = f"{payload.namespace}/{payload.name}/{payload.checksum}"
    # A fast path only: two first calls at once both start, and the store's unique key
    # (kind, external_key) gives the second the analysis the first stored.
    record = service.store.find_analysis("flagger", key)
    if record is None:
        if hook not in _STARTING:
            if hook == "rollback":
                return _text(409, "no analysis for this canary revision: nothing to roll back")
            return _text(200, "acknowledged")
        started = _started(service, payload, key)
        if not isinstance(started, Analysis):
            return started
        record = started
        if hook != "confirm-promotion":
            return _text(200, f"analysis {record.id} started")
    return _answer(hook, record)


def _payload_problem(service: Service, payload: FlaggerPayload) -> JSONResponse | None:
    """The 422 for a name, namespace, phase or checksum too long or holding a control character, or a
    payload past the JSON limits; None for a payload fit to start from."""
    for field in ("name", "namespace", "phase", "checksum"):
        try:
            check_text(getattr(payload, field), field, 253)
        except KayentaError as exc:
            return _error(422, field, str(exc))
    issue = json_issue(payload.model_dump(), service.limits)
    if issue is not None:
        return _error(422, issue.path or "body", issue.message)
    return None


def _started(service: Service, payload: FlaggerPayload, key: str) -> Analysis | JSONResponse:
    """The analysis the first call starts, or the JSON error naming the metadata field at fault."""
    try:
        return _start(service, payload, key)
    except ConfigNotFoundError as exc:
        field = "config" if exc.field == "config_name" else exc.field
        return _error(404, f"metadata.{field}", exc.message)
    except ConfigError as exc:  # the stored config no longer loads
        issue = exc.issues[0] if exc.issues else None
        return _error(422, "metadata.config", str(issue) if issue else str(exc))
    except FieldError as exc:  # the field a native request's or metadata's
        field = exc.field if _is_path(exc.field) else "metadata"
        message = exc.problem if _is_path(exc.field) else str(exc)
        return _error(422, field if field.startswith("metadata") else f"metadata.{field}", message)
    except KayentaError as exc:
        return _error(422, "metadata", str(exc))


def _start(service: Service, payload: FlaggerPayload, key: str) -> Analysis:
    meta: Mapping[str, Any] = payload.metadata
    config_name = meta.get("config")
    if not config_name:
        raise FieldError("metadata.config", "name a stored canary config")
    for field in ("config", "baseline_scope", "canary_scope", "location", "source", "mode"):
        if meta.get(field) is not None and not isinstance(meta[field], str):
            raise FieldError(f"metadata.{field}", f"{_short(repr(meta[field]), 100)} is not a string")
    mode = meta.get("mode")
    if mode is not None and mode not in ("fixed", "sequential"):
        raise FieldError("metadata.mode", f"{mode!r} is not 'fixed' or 'sequential'")
    for key in sorted(set(meta) - set(_METADATA)):
        # A misspelt key (config_versoin) must not fall back to a default silently.
        raise FieldError(f"metadata.{key}", f"unknown field{did_you_mean(str(key), _METADATA)}")
    spec = AnalysisSpec(
        config_name=str(config_name),
        config_version=_version(meta.get("config_version")),
        thresholds=_thresholds(meta.get("thresholds")),
        baseline_scope=str(meta.get("baseline_scope") or f"{payload.name}-primary"),
        canary_scope=str(meta.get("canary_scope") or payload.name),
        scope_params={"namespace": payload.namespace, "name": payload.name},
        location=str(meta.get("location", "")),
        source=meta.get("source"),
        lifetime=meta.get("lifetime"),
        interval=meta.get("interval"),
        warmup=meta.get("warmup", 0),
        lookback=meta.get("lookback"),
        step=parse_duration(meta.get("step", 60), "metadata.step"),
        door="flagger",
        mode=mode,
        baseline_offset=meta.get("baseline_offset"),  # blue-green: the primary before the switch
        baseline_fields={"baseline_offset": "metadata.baseline_offset"},
        external_key=key,
        record=DoorRecord(request=payload.model_dump()),
    )
    return service.create_analysis(spec)


def _version(value: Any) -> int | None:
    """Parse ``metadata.config_version`` (Flagger's metadata are strings): a stored version, 1 or more."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or len(text) > 10 or int(text) < 1:
        raise FieldError("metadata.config_version", f"{value!r} is not a version number (1, 2, ...)")
    return int(text)


def _thresholds(value: Any) -> dict[str, float] | None:
    """Parse ``metadata.thresholds``: ``{"pass": 95, "marginal": 75}``, as an object or a JSON string."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise KayentaError(
                'metadata.thresholds: not JSON; give {"pass": 95, "marginal": 75} as a string'
            ) from None
    limits = threshold_values(value, "metadata.thresholds")
    if "pass" in limits and "marginal" in limits:  # out of range or inverted: names the key
        Thresholds().overridden(limits, field="metadata.thresholds")
    return limits


def _error(status: int, field: str, message: str) -> JSONResponse:
    """A short JSON error naming the field (Flagger shows the body in its events)."""
    text = _short(redact(message if message.startswith(field) else f"{field}: {message}"), 300)
    kind = "not_found" if status == 404 else "value_error"
    item = {"type": kind, "loc": ["body", *field.split(".")], "msg": text}
    return AsciiJSONResponse({"detail": [item]}, status_code=status)


def _answer(hook: str, record: Analysis) -> PlainTextResponse:
    failing = record.verdict == "fail"
    passed = record.complete and record.verdict == "pass"
    summary = f"analysis {record.id}: {record.verdict}" + (
        f" (score {record.score:g})" if record.score is not None else ""
    )
    if hook in ("post-rollout", "event"):
        return _text(200, f"acknowledged; {summary}")
    if hook == "rollback":
        return (
            _text(200, f"roll back: {summary}: {_short(record.reason)}")
            if failing and record.complete
            else _text(409, f"no rollback: {summary}")
        )
    if hook == "confirm-promotion":
        if passed:
            return _text(200, f"promote: {summary}")
        if failing:
            return _text(409, f"do not promote: {summary}: {_short(record.reason)}")
        if record.complete:  # marginal, or cancelled: no conclusive pass, so a person decides
            final = f"do not promote: {summary} is final but not a pass; promote or roll back by hand"
            return _text(409, final)
        return _text(425, f"waiting: {summary}, not complete yet")
    if failing:
        return _text(409, f"canary failing: {summary}: {_short(record.reason)}")
    return _text(200, summary)


def _text(status: int, message: str) -> PlainTextResponse:
    return PlainTextResponse(message + "\n", status_code=status)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_path(field: str) -> bool:
    """Whether ``field`` is a dotted path of names (``metadata.mode``), not a flag or a file."""
    return all(part.isidentifier() for part in field.split("."))
