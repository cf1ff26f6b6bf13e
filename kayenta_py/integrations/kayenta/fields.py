"""Fields of Kayenta's requests as Kayenta sends them, checked against the limits; errors name them."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
from fastapi import HTTPException

from kayenta_py.config.model import CanaryConfig
from kayenta_py.config.registry import did_you_mean
from kayenta_py.engine.pipeline import pair_metric_sets
from kayenta_py.model.errors import KayentaError, ThresholdsError
from kayenta_py.model.formatting import parse_rfc3339
from kayenta_py.model.limits import Limits, check_duration, check_text, check_time, json_issue
from kayenta_py.model.types import MetricSet, MetricSetPair, Thresholds

CONFIG_ACCOUNT = "kayenta-py"


CONFIG_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")  # a config id is a path segment


KAYENTA_JUDGE = "NetflixACAJudge-v1.0"


_SCOPE_FIELDS = ("scope", "location", "region", "start", "end", "step", "extendedScopeParams", "type")


_EXECUTION_FIELDS = ("scopes", "thresholds", "scoreThresholds", "siteLocal", "mode")


_STANDALONE_SCOPE_FIELDS = (
    "scopeName",
    "controlScope",
    "controlLocation",
    "experimentScope",
    "experimentLocation",
    "controlOffsetInMinutes",
    "startTimeIso",
    "endTimeIso",
    "startTimeMillis",
    "endTimeMillis",
    "step",
    "extendedScopeParams",
)


_STANDALONE_FIELDS = (
    "scopes",
    "thresholds",
    "scoreThresholds",
    "lifetimeDurationMins",
    "beginAfterMins",
    "lookbackMins",
    "analysisIntervalMins",
    "siteLocal",
    "mode",
)


def _mode(request: Mapping[str, Any]) -> str | None:
    """kayenta-py's extension: ``"mode": "sequential"`` in a request picks the sequential judges."""
    mode = request.get("mode")
    if mode is not None and mode not in ("fixed", "sequential"):
        raise _bad("mode", f"{mode!r} is not 'fixed' or 'sequential'")
    return None if mode is None else str(mode)


def _unknown(document: Mapping[str, Any], known: tuple[str, ...], path: str) -> list[str]:
    return [
        f"{path}.{key}: unknown field, ignored{did_you_mean(str(key), known)}"
        for key in document
        if key not in known
    ]


def _location(scope: Mapping[str, Any], where: str, limits: Limits) -> str:
    # Argo Rollouts' kayenta provider sends the location as "region".
    key = "location" if scope.get("location") else "region"
    return _text(scope.get(key), f"{where}.{key}", limits.max_name_chars)


def _params(value: Any, where: str, limits: Limits) -> dict[str, str]:
    field = f"{where}.extendedScopeParams"
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _bad(field, "must be an object of strings")
    params = {}
    for key, item in value.items():
        if isinstance(item, Mapping | list) or item is None:
            raise _bad(f"{field}.{key}", f"{_short(item)} is not a string")
        _limited(check_text, key, field, limits.max_name_chars)
        params[key] = _limited(check_text, str(item), f"{field}.{key}", limits.max_scope_chars)
    return params


def _text(value: Any, field: str, maximum: int) -> str:
    """Return a string field (absent: empty) if short and free of control characters."""
    if value is None:
        return ""
    if isinstance(value, Mapping | list | bool):
        raise _bad(field, f"{_short(value)} is not a string")
    return str(_limited(check_text, str(value), field, maximum))


def _step(value: Any, field: str, limits: Limits) -> float:
    return float(_limited(check_duration, _number(value, field), field, limits.max_step_s))


def _minutes(value: Any, field: str, limits: Limits, *, positive: bool = True) -> float:
    """Return a ``*Mins`` field in seconds, finite and at most ``max_lifetime``."""
    seconds = _number(value, field) * 60
    return float(_limited(check_duration, seconds, field, limits.max_lifetime_s, positive=positive))


def _limited(check: Callable[..., Any], value: Any, field: str, *args: Any, **kwargs: Any) -> Any:
    """Run a check of :mod:`kayenta_py.model.limits`, answering its error as a 422 naming ``field``."""
    try:
        return check(value, field, *args, **kwargs)
    except KayentaError as exc:
        raise _bad(field, str(exc).removeprefix(f"{field}: ")) from None


def _check_body(body: Mapping[str, Any], limits: Limits) -> None:
    """Refuse a request body that could not be stored as JSON (it is kept with the execution)."""
    issue = json_issue(body, limits)
    if issue is not None:
        raise _bad(issue.path or "body", issue.message)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 100 else text[:99] + "…"


def _time(value: Any, field: str, optional: bool = False) -> float:
    if value is None or value == "":
        if optional:
            return datetime.now(UTC).timestamp()
        raise _bad(field, "required: an RFC 3339 time")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(_limited(check_time, float(value) / 1000.0, field))  # Kayenta's *Millis fields
    if not isinstance(value, str) or len(value) > 64:
        raise _bad(field, f"{_short(value)} is not an RFC 3339 time")
    try:
        epoch = parse_rfc3339(value)
    except ValueError:
        raise _bad(field, f"{_short(value)} is not an RFC 3339 time") from None
    return float(_limited(check_time, epoch, field))


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or (isinstance(value, str) and len(value) > 64):
        raise _bad(field, f"{_short(value)} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _bad(field, f"{value!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise _bad(field, f"{value!r} must be a non-negative number")
    return number


def _request_thresholds(request: Mapping[str, Any], default: Thresholds) -> Thresholds:
    """Return an execution request's ``thresholds`` (Kayenta's name) or ``scoreThresholds`` (Orca's)."""
    given = [key for key in ("thresholds", "scoreThresholds") if request.get(key) is not None]
    if len(given) == 2 and request["thresholds"] != request["scoreThresholds"]:
        raise _bad("scoreThresholds", "differs from thresholds; give one of them")
    return _thresholds(request.get(given[0]) if given else None, default, given[0] if given else "thresholds")


def _thresholds(value: Any, default: Thresholds, field: str) -> Thresholds:
    """Return thresholds from ``{pass, marginal}`` (a missing key is the config's); errors name ``field``."""
    try:
        return default.overridden(value, field=field)
    except ThresholdsError as exc:
        raise _bad(exc.field, exc.problem) from None


def _pair(document: Any, index: int) -> MetricSetPair:
    where = f"metricSetPairList[{index}]"
    if not isinstance(document, Mapping) or not isinstance(document.get("values"), Mapping):
        raise _bad(where, "needs name and values {control, experiment}")
    name = document.get("name")
    if not isinstance(name, str) or not name:
        raise _bad(f"{where}.name", "required")
    raw_tags = document.get("tags") or {}
    if not isinstance(raw_tags, Mapping) or not all(
        isinstance(v, str | int | float | bool) for v in raw_tags.values()
    ):
        raise _bad(f"{where}.tags", "must be an object of label names to values")
    tags = {str(k): str(v) for k, v in raw_tags.items()}

    def side(key: str) -> MetricSet:
        raw = document["values"].get(key, [])
        if not isinstance(raw, list):
            raise _bad(f"{where}.values.{key}", "must be a list of numbers")
        try:
            values = [math.nan if v is None or v == "NaN" else float(v) for v in raw]
        except (TypeError, ValueError):
            raise _bad(f"{where}.values.{key}", "must be a list of numbers") from None
        return MetricSet(name, np.array(values, dtype=np.float64), tags)

    return MetricSetPair(name, side("control"), side("experiment"), tags)


def _repaired(config: CanaryConfig, pairs: list[MetricSetPair]) -> list[MetricSetPair]:
    """Pair the posted series again by the engine's rules, for the metrics the list names.

    A client that pairs by full labels sends a series labelled with its own scope
    (``version="v2"``) as two half-empty pairs; one series per side pairs (README, Pairing).
    """
    named = dict.fromkeys(p.name for p in pairs)
    baseline: dict[str, list[MetricSet]] = {name: [] for name in named}
    canary: dict[str, list[MetricSet]] = {name: [] for name in named}
    for pair in pairs:
        if len(pair.baseline):
            baseline[pair.name].append(pair.baseline)
        if len(pair.canary):
            canary[pair.name].append(pair.canary)
    metrics = {m.name: m for m in config.metrics}
    listed = replace(config, metrics=tuple(metrics[name] for name in named))
    return pair_metric_sets(listed, baseline, canary)


def _bad(field: str, message: str) -> HTTPException:
    return HTTPException(422, [{"loc": ["body", *field.split(".")], "msg": f"{field}: {message}"}])


def _duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return (
        "PT"
        + (f"{hours}H" if hours else "")
        + (f"{minutes}M" if minutes else "")
        + (f"{secs}S" if secs or not (hours or minutes) else "")
    )


