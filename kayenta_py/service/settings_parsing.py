"""Parsing settings values: durations (Go and ISO 8601), cron expressions, channel names, webhook URLs."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, tzinfo
from urllib.parse import urlsplit

from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    SecretStr,
)

from kayenta_py.model.errors import FieldError

_GO_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h|d))+$")


_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


_GO_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


_ISO_DURATION = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(value: str | float | int, what: str = "duration") -> float:
    """Parse an ISO 8601 duration (``PT30M``), a Go/Prometheus one (``1m30s``) or seconds into seconds."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        shown = repr(value) if len(repr(value)) <= 100 else repr(value)[:99] + "…"
        raise FieldError(what, f"{shown} is not a duration (ISO 8601 like PT30M, 1m30s, or seconds)")
    if isinstance(value, int | float):
        seconds = float(value)
    elif len(value) > 100 or "\x00" in value:
        raise FieldError(what, "not a duration (ISO 8601 like PT30M, 1m30s, or seconds)")
    else:
        text = value.strip().upper()
        match = _ISO_DURATION.match(text)
        if match and text not in ("P", "PT") and not text.endswith("T"):
            parts = {k: float(v) for k, v in match.groupdict().items() if v}
            seconds = (
                parts.get("days", 0) * 86400
                + parts.get("hours", 0) * 3600
                + parts.get("minutes", 0) * 60
                + parts.get("seconds", 0)
            )
        elif _GO_DURATION.match(value.strip()):
            seconds = sum(float(n) * _GO_UNITS[unit] for n, unit in _GO_PART.findall(value.strip()))
        else:
            try:
                seconds = float(text)
            except ValueError:
                raise FieldError(
                    what, f"{value!r} is not a duration (ISO 8601 like PT30M, 1m30s, or seconds)"
                ) from None
    if not math.isfinite(seconds):
        raise FieldError(what, f"{value!r} is not a finite duration")
    if seconds < 0:
        raise FieldError(what, f"{value!r} is negative")
    return seconds


_CRON_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def cron_trigger(expression: str, timezone: tzinfo | str = UTC) -> CronTrigger:
    """Return the APScheduler trigger of a five-field crontab (minute hour day month weekday).

    Weekday numbers mean what they mean in cron (0 and 7 are Sunday), unlike
    APScheduler 3's ``CronTrigger.from_crontab`` (where 0 is Monday).
    """
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"{expression!r} has {len(fields)} fields; a cron expression has five: "
            "minute hour day-of-month month day-of-week"
        )
    minute, hour, day, month, weekday = fields
    try:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_cron_weekdays(weekday),
            timezone=timezone,
        )
    except ValueError as exc:
        raise ValueError(f"{expression!r} is not a valid cron expression: {exc}") from None


def _cron_weekdays(field: str) -> str:
    """Translate a cron day-of-week field (0/7 = Sunday, names, ranges, steps) into weekday names."""
    if field in ("*", "?"):
        return "*"

    def day(token: str) -> int:
        if token.isdigit() and int(token) <= 7:
            return int(token)
        if token.lower() in _CRON_WEEKDAYS:
            return _CRON_WEEKDAYS.index(token.lower())
        raise ValueError(f"day of week {token!r} is not 0-7 or sun-sat")

    days: set[int] = set()
    for item in field.split(","):
        part, slash, step_text = item.partition("/")
        if slash and not (step_text.isdigit() and int(step_text) >= 1):
            raise ValueError(f"day of week {item!r}: the step must be a positive number")
        step = int(step_text) if slash else 1
        if part == "*":
            low, high = 0, 6
        elif "-" in part:
            first, _, last = part.partition("-")
            low, high = day(first), day(last)
            if high == 0 and low > 0:  # a range ending on Sunday (``fri-sun``)
                high = 7
        else:
            low = day(part)
            high = 7 if slash else low
        if low > high:
            raise ValueError(f"day of week {item!r}: the range runs backwards")
        days.update(d % 7 for d in range(low, high + 1, step))
    return ",".join(_CRON_WEEKDAYS[d] for d in sorted(days))


def _webhook_url(value: SecretStr) -> SecretStr:
    parts = urlsplit(value.get_secret_value())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http(s) URL (the value is a secret and is not shown)")
    return value


def _cron(value: str | None) -> str | None:
    if value is not None:
        cron_trigger(value)
    return value


SCOPES = ("read", "write")


@dataclass(frozen=True)
class ApiToken:
    """A bearer token and the scope it grants (``write`` implies ``read``)."""

    token: SecretStr
    scope: str

    def allows(self, scope: str) -> bool:
        """Return whether this token grants ``scope``."""
        return self.scope == "write" or scope == self.scope


def parse_tokens(text: str) -> list[ApiToken]:
    """Parse ``read:abc,write:def`` into tokens; a malformed entry is an error (never echoing it)."""
    tokens = []
    for position, entry in enumerate(filter(None, (e.strip() for e in text.split(","))), start=1):
        scope, sep, token = entry.partition(":")
        if not sep or scope not in SCOPES or len(token) < 8:
            raise ValueError(
                f"api_tokens entry {position} must be SCOPE:TOKEN with SCOPE read or write "
                "and a token of at least 8 characters"
            )
        tokens.append(ApiToken(SecretStr(token), scope))
    return tokens
