"""Limits on what a request may ask for, checked at every door before anything is stored.

Every door (native API, Flagger webhooks, Kayenta's API, the command line) refuses, naming the
field, a time outside 1970..2200 or further ahead than ``max_start_ahead``, a duration or step
that is not finite, not positive or beyond its maximum, too many intervals or points, a name
or scope too long or holding control characters, and a JSON document (config, request) nested
too deep, too large, or holding a NUL, a lone surrogate or a non-finite number. The defaults
are :class:`Limits`'; the service's come from its settings (``KAYENTA_MAX_*``).
"""

from __future__ import annotations

import json
import math
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError, ValidatorFunctionWrapHandler, model_validator
from pydantic_core import PydanticCustomError

from kayenta_py.model.errors import ConfigError, ConfigIssue, FieldError

EARLIEST = 0.0  # 1970-01-01T00:00:00Z
LATEST = datetime(2200, 1, 1, tzinfo=UTC).timestamp()  # 2200-01-01T00:00:00Z
NAME_COLUMN = 200  # widths of the store's columns: a limit can be lowered, never raised past them
SCOPE_COLUMN = 500
DAY = 86400.0


@dataclass(frozen=True)
class Limits:
    """The limits a service applies (defaults documented in the README, Limits)."""

    max_start_ahead_s: float = 30 * DAY  # how far in the future an analysis may start
    max_lifetime_s: float = 90 * DAY  # lifetime, interval, warmup and lookback each at most this
    max_step_s: float = DAY
    max_intervals: int = 10_000  # judgements per analysis
    max_points_per_series: int = 1_000_000  # points a series may have over an analysis
    max_name_chars: int = NAME_COLUMN  # config names, Kayenta config ids, locations, sources
    max_scope_chars: int = SCOPE_COLUMN  # scopes and scope parameters
    max_json_depth: int = 32  # nesting of a config or a stored request
    max_json_bytes: int = 262_144  # a config (or stored request) as compact JSON


DEFAULT_LIMITS = Limits()


def check_time(value: float, field: str, *, ahead: float | None = None, now: float | None = None) -> float:
    """Return ``value`` (epoch seconds) if finite, in 1970..2200 and at most ``ahead`` s from now."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FieldError(field, f"{_show(value)} is not a finite time")
    if not EARLIEST <= value <= LATEST:
        raise FieldError(field, f"{_show(value)} is outside 1970-01-01 .. 2200-01-01 (epoch seconds)")
    if ahead is not None:
        moment = time.time() if now is None else now
        if value > moment + ahead:
            raise FieldError(
                field, f"starts {(value - moment) / DAY:.0f} days from now; at most {ahead / DAY:g} days "
                "ahead (KAYENTA_MAX_START_AHEAD)"
            )
    return float(value)


def check_duration(value: float, field: str, maximum: float, *, positive: bool = True) -> float:
    """Return seconds if finite, positive (or, ``positive=False``, not negative) and at most ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FieldError(field, f"{_show(value)} is not a finite duration")
    if value < 0 or (positive and value == 0):
        raise FieldError(field, f"{_show(value)} s must be {'positive' if positive else 'zero or more'}")
    if value > maximum:
        raise FieldError(field, f"{value:g} s is longer than the maximum, {maximum:g} s")
    return float(value)


def check_text(value: Any, field: str, maximum: int, *, required: bool = False) -> str:
    """Return ``value`` if a string of at most ``maximum`` characters without control characters."""
    if not isinstance(value, str):
        raise FieldError(field, f"{_show(value)} is not a string")
    if required and not value.strip():
        raise FieldError(field, "must not be empty")
    if len(value) > maximum:
        raise FieldError(field, f"{len(value)} characters; at most {maximum}")
    bad = next((c for c in value if unicodedata.category(c) in ("Cc", "Cs")), None)
    if bad is not None:
        raise FieldError(field, f"holds the control character U+{ord(bad):04X}")
    return value


def check_params(value: Mapping[str, Any], field: str, limits: Limits = DEFAULT_LIMITS) -> dict[str, str]:
    """Return scope parameters if every key and value is a short string without control characters."""
    out = {}
    for key, item in value.items():
        check_text(key, f"{field}", limits.max_name_chars)
        out[key] = check_text(item, f"{field}.{key}" if key.isidentifier() else field, limits.max_scope_chars)
    return out


def json_issue(document: Any, limits: Limits = DEFAULT_LIMITS) -> ConfigIssue | None:
    """Return the first reason ``document`` cannot be stored as JSON (path and message), else None."""
    stack: list[tuple[Any, str, int]] = [(document, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if depth > limits.max_json_depth:
            return ConfigIssue(path, f"nested more than {limits.max_json_depth} levels deep")
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    return ConfigIssue(path, f"key {key!r} is not a string")
                if _bad_char(key):
                    return ConfigIssue(path, f"key {_printable(key)} holds a NUL or a lone surrogate")
                stack.append((item, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(value, list | tuple):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))
        elif isinstance(value, str):
            if _bad_char(value):
                return ConfigIssue(path, "holds a NUL character or a lone surrogate")
        elif isinstance(value, float):
            if not math.isfinite(value):
                hint = ' (write an infinite bucket bound as "+Inf")'
                return ConfigIssue(path, f"{_show(value)} is not a finite number{hint}")
        elif not (value is None or isinstance(value, bool | int)):
            return ConfigIssue(path, f"{type(value).__name__} is not a JSON value")
    size = len(json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode())
    if size > limits.max_json_bytes:
        return ConfigIssue(
            "", f"{size} bytes as JSON; at most {limits.max_json_bytes} (KAYENTA_MAX_JSON_BYTES)"
        )
    return None


def check_config_document(
    document: Any, limits: Limits = DEFAULT_LIMITS, *, source: str | None = None
) -> None:
    """Raise :class:`ConfigError` naming the path when a config cannot be stored as JSON."""
    issue = json_issue(document, limits)
    if issue is not None:
        raise ConfigError([issue], source=source)


def check_json(document: Any, field: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """Raise :class:`KayentaError` ``field[.path]: message`` when ``document`` cannot be stored as JSON."""
    issue = json_issue(document, limits)
    if issue is not None:
        where = (
            f"{field}.{issue.path}" if issue.path and not issue.path.startswith("[") else field + issue.path
        )
        raise FieldError(where, f"{issue.message}")


def json_safe(value: Any, depth: int = 0) -> Any:
    """Return ``value`` as strict JSON for an error body (a NaN as "NaN", other objects as text)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= 1000 else value[:1000] + "…"
    if depth >= 8:
        return "…"
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, depth + 1) for k, v in list(value.items())[:100]}
    if isinstance(value, list | tuple):
        return [json_safe(v, depth + 1) for v in value[:100]]
    return str(value)[:1000]


class JsonSafeErrors(BaseModel):
    """A model whose validation errors carry JSON-safe inputs (a NaN shown as "NaN", never a 500)."""

    @model_validator(mode="wrap")
    @classmethod
    def _json_safe_errors(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(data)
        except ValidationError as exc:
            errors: list[Any] = [
                {key: value for key, value in e.items() if key in ("type", "loc", "ctx")}
                | {"input": json_safe(e.get("input"))}
                for e in exc.errors()
            ]
            try:
                safe = ValidationError.from_exception_data(exc.title, errors)
            except (KeyError, TypeError, ValueError):  # a custom error type: keep its message
                custom: list[Any] = [
                    {
                        "type": PydanticCustomError(e["type"], e["msg"].replace("{", "(").replace("}", ")")),
                        "loc": e["loc"],
                        "input": json_safe(e.get("input")),
                    }
                    for e in exc.errors()
                ]
                safe = ValidationError.from_exception_data(exc.title, custom)
            raise safe from None


def _bad_char(text: str) -> bool:
    return "\x00" in text or any("\ud800" <= c <= "\udfff" for c in text)


def _printable(text: str) -> str:
    return repr(text.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace"))[:100]


def _show(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    return repr(value)[:100]
