"""How reports show a baseline from another time window: its offset and both windows."""

from __future__ import annotations

from kayenta_py.model.formatting import format_utc


def format_offset(seconds: float) -> str:
    """Return a signed offset for people: ``-1h``, ``-7d``, ``+90m``, ``-45s``, ``-1h30m``."""
    sign = "-" if seconds < 0 else "+"
    rest = round(abs(seconds))
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + ("".join(parts) or "0s")


def window_facts(start: float, end: float, offset: float | None) -> list[tuple[str, str]]:
    """Return the report's facts on the windows: one ``window``, or the canary's and the baseline's."""
    canary = f"{format_utc(start)} to {format_utc(end)}"
    if not offset:
        return [("window", canary)]
    baseline = f"{format_utc(start + offset)} to {format_utc(end + offset)} (offset {format_offset(offset)})"
    return [("canary window", canary), ("baseline window", baseline)]


def baseline_cell(start: float, end: float, offset: float | None) -> str:
    """Return the baseline's window of one interval as plain text (empty when it shares the canary's)."""
    if not offset:
        return ""
    return f"baseline {format_utc(start + offset)} to {format_utc(end + offset)}"
