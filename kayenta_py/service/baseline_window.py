"""A baseline from another time window: an offset from the canary's window, or an explicit window.

Blue-green switches compare the environment after the switch with the one before it, and
"against last week" compares with the same hours seven days earlier. Either is given as

* ``baseline_offset``: a signed duration (ISO 8601 ``-P7D``, ``-PT1H``, Go-style ``-1h30m``,
  or seconds), negative for an earlier baseline; or
* ``baseline_start`` and ``baseline_end``: an explicit window, as long as the canary's
  (start to end, warmup included); it becomes the offset ``baseline_start - start``.

Each interval's baseline window is then the canary interval shifted by the offset. A baseline
must come from data already recorded: a window that ends in the future is refused (a negative
offset never is, as each interval's baseline ends before its canary interval does). Errors name
the field (the door's own names through ``fields``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from kayenta_py.model.errors import FieldError
from kayenta_py.model.limits import check_time
from kayenta_py.model.types import rfc3339
from kayenta_py.service.settings_parsing import parse_duration

MAX_OFFSET_S = 400 * 86_400.0
"""The farthest a baseline may lie from its canary (a little over a year)."""

LENGTH_TOLERANCE_S = 1.0
"""How much an explicit baseline window's length may differ from the canary's (rounding of times)."""

FIELDS = ("baseline_offset", "baseline_start", "baseline_end")


@dataclass(frozen=True)
class BaselineRequest:
    """What a door asked for: an offset, or an explicit window (epoch seconds), or neither."""

    offset: str | float | None = None
    start: float | None = None
    end: float | None = None


def parse_offset(value: str | float | int, field: str = "baseline_offset") -> float:
    """Return a signed duration in seconds: ``-P7D``, ``-PT1H``, ``+1h``, ``-90m``, ``-3600``.

    The sign comes first (ISO 8601-2 and Go both put it there); the rest is any duration
    :func:`parse_duration` reads. A number is seconds.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FieldError(field, f"{value!r} is not a duration (like -P7D, -PT1H, -1h30m or -3600)")
    if isinstance(value, str):
        text = value.strip()
        sign = -1.0 if text.startswith("-") else 1.0
        body = text[1:] if text[:1] in ("-", "+") else text
        if not body or body[:1] in ("-", "+"):
            raise FieldError(field, f"{value!r} is not a duration (like -P7D, -PT1H, -1h30m or -3600)")
        try:
            seconds = sign * parse_duration(body, field)
        except FieldError:
            raise FieldError(
                field, f"{value!r} is not a duration (like -P7D, -PT1H, -1h30m or -3600)"
            ) from None
    else:
        seconds = float(value)
    if not math.isfinite(seconds):
        raise FieldError(field, f"{value!r} is not a finite duration")
    if abs(seconds) > MAX_OFFSET_S:
        raise FieldError(field, f"{value!r} is more than {MAX_OFFSET_S / 86_400:g} days away")
    return seconds


def resolve_offset(
    given: BaselineRequest,
    *,
    start_ts: float,
    end_ts: float,
    now: float,
    fields: Mapping[str, str] | None = None,
) -> float | None:
    """Return the baseline's offset in seconds from the canary window [start_ts, end_ts] (None: same window).

    ``fields`` renames :data:`FIELDS` in errors (a door's own names, e.g. Kayenta's control scope).
    """
    names = {name: name for name in FIELDS} | dict(fields or {})
    explicit = given.start is not None or given.end is not None
    if given.offset is not None and explicit:
        raise FieldError(
            names["baseline_offset"],
            f"give either {names['baseline_offset']} or {names['baseline_start']} and "
            f"{names['baseline_end']}, not both",
        )
    if given.offset is not None:
        offset = parse_offset(given.offset, names["baseline_offset"])
        field = names["baseline_offset"]
    elif explicit:
        offset = _explicit_offset(given, start_ts, end_ts, names)
        field = names["baseline_end"]
    else:
        return None
    check_time(start_ts + offset, names["baseline_start"] if explicit else field)
    baseline_end = end_ts + offset
    if offset > 0 and baseline_end > now:
        raise FieldError(
            field,
            f"the baseline window would end at {rfc3339(baseline_end)}, in the future (now "
            f"{rfc3339(now)}); a baseline comes from recorded data: give an earlier one (negative offset)",
        )
    return offset or None


def _explicit_offset(
    given: BaselineRequest, start_ts: float, end_ts: float, names: Mapping[str, str]
) -> float:
    """The offset of an explicit baseline window, which must be as long as the canary's."""
    if given.start is None or given.end is None:
        missing, other = ("baseline_start", "baseline_end")
        if given.start is not None:
            missing, other = other, missing
        raise FieldError(names[missing], f"required with {names[other]}")
    check_time(given.start, names["baseline_start"])
    check_time(given.end, names["baseline_end"])
    if given.end <= given.start:
        raise FieldError(names["baseline_end"], f"must come after {names['baseline_start']}")
    baseline_length, canary_length = given.end - given.start, end_ts - start_ts
    if abs(baseline_length - canary_length) > LENGTH_TOLERANCE_S:
        raise FieldError(
            names["baseline_end"],
            f"the baseline window lasts {baseline_length:g} s and the canary's {canary_length:g} s; "
            "give windows of one length (points pair by their time since each window's start)",
        )
    return given.start - start_ts
