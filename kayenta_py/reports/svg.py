"""SVG plots of a report: each metric's baseline and canary series over time, or their distributions."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import numpy as np

from kayenta_py.model.types import FloatArray, MetricSet, MetricSetPair
from kayenta_py.reports.templates import (
    BASELINE_COLOR,
    CANARY_COLOR,
    MAX_PLOT_POINTS,
    _e,
)

_W, _H = 560, 250
_LEFT, _RIGHT, _TOP, _BOTTOM = 58, 24, 24, 38


def _svg(label: str, content: Sequence[str]) -> str:
    return (
        f'<svg viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="{_e(label)}"><title>{_e(label)}</title>{"".join(content)}</svg>'
    )


def _legend(baseline_n: int, canary_n: int) -> str:
    x = _LEFT
    out = []
    for color, text in (
        (BASELINE_COLOR, f"baseline (n={baseline_n})"),
        (CANARY_COLOR, f"canary (n={canary_n})"),
    ):
        out.append(f'<rect x="{x}" y="6" width="12" height="10" fill="{color}"/>')
        out.append(f'<text x="{x + 16}" y="15">{_e(text)}</text>')
        x += 170
    return "".join(out)


def _finite_count(values: FloatArray) -> int:
    return int(np.count_nonzero(np.isfinite(values)))


def _nice_step(span: float, target: int) -> float:
    raw = span / max(target, 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for multiple in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= multiple * magnitude:
            return multiple * magnitude
    return 10.0 * magnitude


def _ticks(low: float, high: float, target: int = 5) -> list[float]:
    if not high - low > 0 or not math.isfinite(high - low):
        return []
    step = _nice_step(high - low, target)
    first = math.ceil(low / step - 1e-9) * step
    count = math.floor((high - first) / step + 1e-9) + 1
    return [first + i * step for i in range(max(count, 0))]


_TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def _time_ticks(low: float, high: float, target: int = 5) -> list[float]:
    raw = (high - low) / target
    if not raw > 0 or not math.isfinite(raw):
        return []
    step = float(next((s for s in _TIME_STEPS if s >= raw), math.ceil(raw / 86400) * 86400))
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) // step) + 1)]


def _tick_text(value: float, kind: str, span: float) -> str:
    if kind == "time":
        try:
            moment = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):  # not a time a calendar can show
            return f"{value:.4g}"
        if span >= 2 * 86400:
            return moment.strftime("%Y-%m-%d" if span >= 180 * 86400 else "%m-%d %H:%M")
        return moment.strftime("%H:%M:%S" if span < 300 else "%H:%M")
    if kind == "elapsed":
        seconds = round(value)
        if seconds % 3600 == 0 and seconds:
            return f"{seconds // 3600}h"
        if seconds % 60 == 0 and seconds:
            return f"{seconds // 60}m"
        return f"{seconds}s"
    if abs(value) < 1e-9 * span:
        return "0"
    return f"{value:.3g}"


def _padded(low: float, high: float) -> tuple[float, float]:
    if high > low:
        pad = (high - low) * 0.05
        return low - pad, high + pad
    spread = abs(low) * 0.1 or 1.0
    return low - spread, high + spread


def downsample(x: FloatArray, y: FloatArray, limit: int = MAX_PLOT_POINTS) -> tuple[FloatArray, FloatArray]:
    """Return at most ``limit`` points of a line: the min and max of each of ``limit // 2`` buckets.

    Spikes survive (each bucket keeps its extremes, in time order); a bucket with no
    finite value becomes one NaN point, so gaps stay gaps.
    """
    if x.size <= limit:
        return x, y
    buckets = max(limit // 2, 1)
    edges = np.linspace(0, x.size, buckets + 1).astype(int)
    keep_x: list[float] = []
    keep_y: list[float] = []
    for start, end in itertools.pairwise(edges):
        if end <= start:
            continue
        segment = y[start:end]
        finite = np.isfinite(segment)
        if not finite.any():
            keep_x.append(float(x[(start + end - 1) // 2]))
            keep_y.append(math.nan)
            continue
        masked_low = np.where(finite, segment, np.inf)
        masked_high = np.where(finite, segment, -np.inf)
        for offset in sorted({int(np.argmin(masked_low)), int(np.argmax(masked_high))}):
            keep_x.append(float(x[start + offset]))
            keep_y.append(float(segment[offset]))
    return np.asarray(keep_x, dtype=np.float64), np.asarray(keep_y, dtype=np.float64)


def _x_values(pair: MetricSetPair) -> tuple[FloatArray, FloatArray, str]:
    """Return the x of baseline and canary points and their kind: time, elapsed, or index.

    Time-stamped sides share a time axis when their windows overlap; otherwise each is
    drawn against the time since its first point. Without timestamps, x is the index.
    """
    sides = [s for s in (pair.baseline, pair.canary) if len(s)]
    if sides and all(s.timestamps is not None and bool(np.isfinite(s.timestamps).all()) for s in sides):

        def stamps(side: MetricSet) -> FloatArray:
            return side.timestamps if side.timestamps is not None and len(side) else np.empty(0)

        base_x, canary_x = stamps(pair.baseline), stamps(pair.canary)
        if len(sides) < 2 or (base_x.min() <= canary_x.max() and canary_x.min() <= base_x.max()):
            return base_x, canary_x, "time"
        return base_x - base_x.min(), canary_x - canary_x.min(), "elapsed"
    return (
        np.arange(len(pair.baseline), dtype=np.float64),
        np.arange(len(pair.canary), dtype=np.float64),
        "index",
    )


def _series_svg(pair: MetricSetPair) -> str:
    base_x, canary_x, kind = _x_values(pair)
    lines = [
        (BASELINE_COLOR, *downsample(base_x, pair.baseline.values)),
        (CANARY_COLOR, *downsample(canary_x, pair.canary.values)),
    ]
    finite_x = np.concatenate([x[np.isfinite(y)] for _, x, y in lines])
    finite_y = np.concatenate([y[np.isfinite(y)] for _, _, y in lines])
    label = f"time series of {pair.name}: baseline against canary"
    content = [_legend(_finite_count(pair.baseline.values), _finite_count(pair.canary.values))]
    if finite_y.size == 0:
        content.append(f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle">no finite values</text>')
        return _svg(label, content)
    x_low, x_high = float(finite_x.min()), float(finite_x.max())
    if x_high <= x_low:
        x_low, x_high = x_low - 1.0, x_high + 1.0
    y_low, y_high = _padded(float(finite_y.min()), float(finite_y.max()))
    if not _drawable(x_low, x_high, y_low, y_high):
        content.append(_too_large())
        return _svg(label, content)
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def px(value: float) -> float:
        return _LEFT + (value - x_low) / (x_high - x_low) * plot_w

    def py(value: float) -> float:
        return _TOP + (y_high - value) / (y_high - y_low) * plot_h

    content.extend(_y_axis(y_low, y_high, py))
    x_ticks = _time_ticks(x_low, x_high) if kind in ("time", "elapsed") else _ticks(x_low, x_high)
    for tick in x_ticks:
        if kind == "index" and tick != int(tick):
            continue
        content.append(
            f'<line class="grid" x1="{px(tick):.1f}" x2="{px(tick):.1f}" y1="{_TOP}" y2="{_H - _BOTTOM}"/>'
        )
        content.append(
            f'<text x="{px(tick):.1f}" y="{_H - _BOTTOM + 14}" text-anchor="middle">'
            f"{_e(_tick_text(tick, kind, x_high - x_low))}</text>"
        )
    axis_name = {"time": "time (UTC)", "elapsed": "time since each side's first point", "index": "sample"}
    content.append(
        f'<text x="{_LEFT + plot_w / 2}" y="{_H - 6}" text-anchor="middle">{axis_name[kind]}</text>'
    )
    content.append(_frame())
    for color, x, y in lines:
        content.append(_polyline(x, y, px, py, color))
    return _svg(label, content)


def _y_axis(low: float, high: float, py: Callable[[float], float]) -> list[str]:
    out = []
    for tick in _ticks(low, high):
        out.append(
            f'<line class="grid" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{py(tick):.1f}" y2="{py(tick):.1f}"/>'
        )
        out.append(
            f'<text x="{_LEFT - 4}" y="{py(tick) + 4:.1f}" text-anchor="end">'
            f"{_e(_tick_text(tick, 'value', high - low))}</text>"
        )
    return out


def _drawable(*bounds: float) -> bool:
    """Return whether axis bounds (low, high pairs) and their spans are finite numbers."""
    spans = [high - low for low, high in zip(bounds[::2], bounds[1::2], strict=True)]
    return all(math.isfinite(v) for v in (*bounds, *spans))


def _too_large() -> str:
    return f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle">values too large to draw</text>'


def _frame() -> str:
    return (
        f'<rect class="axis" x="{_LEFT}" y="{_TOP}" width="{_W - _LEFT - _RIGHT}" '
        f'height="{_H - _TOP - _BOTTOM}" fill="none"/>'
    )


def _polyline(
    x: FloatArray, y: FloatArray, px: Callable[[float], float], py: Callable[[float], float], color: str
) -> str:
    commands = []
    pen_down = False
    dots = []
    show_dots = _finite_count(y) <= 80
    for xi, yi in zip(x.tolist(), y.tolist(), strict=True):
        if not (math.isfinite(xi) and math.isfinite(yi)):
            pen_down = False
            continue
        commands.append(f"{'L' if pen_down else 'M'}{px(xi):.1f},{py(yi):.1f}")
        pen_down = True
        if show_dots:
            dots.append(f'<circle cx="{px(xi):.1f}" cy="{py(yi):.1f}" r="1.8" fill="{color}"/>')
    if not commands:
        return ""
    path = (
        f'<path d="{" ".join(commands)}" fill="none" stroke="{color}" stroke-width="1.4" '
        'stroke-linejoin="round"/>'
    )
    return path + "".join(dots)


def _distribution_svg(pair: MetricSetPair) -> str:
    base = pair.baseline.values[np.isfinite(pair.baseline.values)]
    canary = pair.canary.values[np.isfinite(pair.canary.values)]
    label = f"distribution of {pair.name}: baseline against canary"
    content = [_legend(base.size, canary.size)]
    both = np.concatenate([base, canary])
    if both.size == 0:
        content.append(f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle">no finite values</text>')
        return _svg(label, content)
    low, high = float(both.min()), float(both.max())
    if high <= low:
        low, high = _padded(low, high)
    if not _drawable(low, high):
        content.append(_too_large())
        return _svg(label, content)
    bins = int(min(30, max(5, math.ceil(math.sqrt(both.size)))))
    edges = np.linspace(low, high, bins + 1)
    shares = []
    for side in (base, canary):
        counts = np.histogram(side, bins=edges)[0].astype(np.float64)
        shares.append(counts / side.size if side.size else counts)
    top = float(max(s.max() for s in shares)) or 1.0
    y_high = top * 1.08
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def px(value: float) -> float:
        return _LEFT + (value - low) / (high - low) * plot_w

    def py(value: float) -> float:
        return _TOP + (y_high - value) / y_high * plot_h

    content.extend(_y_axis(0.0, y_high, py))
    for tick in _ticks(low, high):
        content.append(
            f'<text x="{px(tick):.1f}" y="{_H - _BOTTOM + 14}" text-anchor="middle">'
            f"{_e(_tick_text(tick, 'value', high - low))}</text>"
        )
    content.append(
        f'<text x="{_LEFT + plot_w / 2}" y="{_H - 6}" text-anchor="middle">'
        "value (bars: share of points per bin; dashed: means)</text>"
    )
    for color, share in zip((BASELINE_COLOR, CANARY_COLOR), shares, strict=True):
        for i, value in enumerate(share.tolist()):
            if value <= 0:
                continue
            x0, x1 = px(float(edges[i])), px(float(edges[i + 1]))
            content.append(
                f'<rect x="{x0:.1f}" y="{py(value):.1f}" width="{max(x1 - x0, 0.5):.1f}" '
                f'height="{py(0.0) - py(value):.1f}" fill="{color}" fill-opacity="0.45" stroke="{color}" '
                'stroke-width="0.8"/>'
            )
    for color, side in ((BASELINE_COLOR, base), (CANARY_COLOR, canary)):
        mean = float(np.mean(side)) if side.size else math.nan
        if math.isfinite(mean):  # (a sum of huge values overflows)
            x = px(mean)
            content.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP}" y2="{_H - _BOTTOM}" stroke="{color}" '
                'stroke-width="1.5" stroke-dasharray="4 3"/>'
            )
    content.append(_frame())
    return _svg(label, content)


