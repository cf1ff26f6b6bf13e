"""Self-contained HTML reports of canary judgements.

A report shows the verdict (with its score, thresholds, reason and warnings), a
row per metric (classification, confidence interval, effect size, baseline and
canary statistics, reason), two plots per metric of baseline against canary (a
time series and a distribution) and, for a stored analysis, every interval it
judged. The page needs nothing else: the CSS is inline, the plots are inline SVG
drawn here, there is no JavaScript and no external resource (users sit on
closed networks). Every string that comes from a config, a metric or a reason is
escaped.
"""

from __future__ import annotations

import html
import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from kayenta_py._version import __version__
from kayenta_py.engine.judge import format_number
from kayenta_py.model.types import CanaryResult, FloatArray, MetricSet, MetricSetPair, tag_key


class StoredAnalysis(Protocol):
    """What a report reads of a stored analysis (the store's record satisfies it)."""

    id: str
    status: str
    verdict: str
    score: float | None
    reason: str
    error: str | None
    mode: str
    source: str
    location: str
    config_name: str | None
    config_version: int | None
    config_body: Any
    thresholds: Any
    baseline_scope: str
    canary_scope: str
    created_ts: float
    start_ts: float
    completed_ts: float | None
    warmup_s: float
    lifetime_s: float
    intervals_total: int
    intervals: Any

    @property
    def complete(self) -> bool: ...

__all__ = ["FAILING_ROW_COLOR", "MAX_PLOT_POINTS", "downsample", "render_analysis_html", "render_result_html"]

FAILING_ROW_COLOR = "#fbd5d5"
"""Background of a failing metric's row (a color used nowhere else on the page)."""

MAX_PLOT_POINTS = 500
"""At most this many points per line of a time series; longer series are downsampled (min/max per bucket)."""

BASELINE_COLOR = "#1f6fb4"
CANARY_COLOR = "#e8710a"
FAILING_CLASSES = frozenset({"High", "Low", "NodataFailMetric", "Error"})
VERDICT_COLORS = {"pass": "#1a7f37", "marginal": "#b26b00", "fail": "#c62828", "pending": "#5f6b7a"}

CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'"
"""The page's policy: inline styles only; no script, font, frame or fetch of anything."""

_CSS = f"""
:root {{ color-scheme: light; }}
* {{ box-sizing: border-box; }}
body {{ margin: 0; padding: 24px 32px 48px; font: 14px/1.45 "DejaVu Sans", Verdana, Arial, sans-serif;
  color: #1d2733; background: #ffffff; }}
h1 {{ font-size: 22px; margin: 0 0 4px; }}
h2 {{ font-size: 18px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #d8dee6; }}
h3 {{ font-size: 15px; margin: 0 0 6px; }}
.sub {{ color: #5f6b7a; margin: 0 0 18px; }}
.summary {{ display: flex; gap: 28px; align-items: flex-start; flex-wrap: wrap; }}
.verdict {{ min-width: 190px; padding: 14px 20px; border-radius: 8px; color: #ffffff; text-align: center; }}
.verdict .word {{ font-size: 34px; font-weight: bold; letter-spacing: 2px; }}
.verdict .score {{ font-size: 16px; }}
.facts {{ flex: 1; min-width: 380px; }}
.facts table {{ width: auto; }}
.facts table td, .facts table th {{ border: none; padding: 2px 12px 2px 0; background: none; }}
.facts th {{ text-align: left; color: #5f6b7a; font-weight: normal; white-space: nowrap; }}
.reason {{ margin: 14px 0 0; padding: 10px 14px; background: #f3f5f8; border-left: 4px solid #9aa6b2; }}
.error {{ margin: 10px 0 0; padding: 10px 14px; background: #fff0f0; border-left: 4px solid #c62828; }}
.warnings {{ margin: 10px 0 0; padding: 8px 14px 8px 30px; background: #fff8e1;
  border-left: 4px solid #e0a800; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #d8dee6; padding: 5px 8px; text-align: left; vertical-align: top; }}
thead th {{ background: #eef1f5; font-size: 13px; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.v {{ white-space: nowrap; }}
td.name {{ white-space: nowrap; }}
td.reason-cell {{ font-size: 12.5px; color: #3a4653; min-width: 260px; }}
tr.metric.failing td {{ background: {FAILING_ROW_COLOR}; }}
tr.metric.nodata td {{ background: #fff3cd; }}
tr.metric.muted td {{ color: #7b8794; }}
.badge {{ display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: bold;
  color: #ffffff; white-space: nowrap; }}
.badge.pass {{ background: #1a7f37; }}
.badge.failing {{ background: #c62828; }}
.badge.nodata {{ background: #b26b00; }}
.badge.muted {{ background: #7b8794; }}
.pill {{ display: inline-block; padding: 0 6px; border: 1px solid #c62828; border-radius: 8px; color: #c62828;
  font-size: 11px; margin-left: 4px; }}
.tags {{ color: #5f6b7a; font-size: 12px; }}
.n {{ color: #5f6b7a; font-size: 12px; }}
.groups td, .groups th {{ padding: 2px 10px; }}
.groups {{ width: auto; margin-top: 10px; }}
.plots {{ display: grid; grid-template-columns: 1fr; gap: 18px; }}
.card {{ border: 1px solid #d8dee6; border-radius: 6px; padding: 10px 12px; }}
.card.failing {{ border-color: #c62828; border-width: 2px; }}
.card .pair {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 12px; }}
.card svg {{ width: 100%; height: auto; display: block; }}
.card .none {{ color: #5f6b7a; font-style: italic; }}
svg text {{ font: 11px "DejaVu Sans", Verdana, Arial, sans-serif; fill: #3a4653; }}
svg .axis {{ stroke: #9aa6b2; stroke-width: 1; }}
svg .grid {{ stroke: #e6eaef; stroke-width: 1; }}
a {{ color: #1f6fb4; }}
footer {{ margin-top: 36px; color: #7b8794; font-size: 12px; }}
"""


# ---------------------------------------------------------------- public


def render_result_html(
    result: CanaryResult,
    pairs: Sequence[MetricSetPair] | None = None,
    *,
    title: str = "Canary report",
    details: Mapping[str, str] | None = None,
) -> str:
    """Return a self-contained HTML report of one judgement.

    ``pairs`` are the metric pairs that were judged (their values are plotted; without
    them the report has no plots); ``details`` are extra facts shown under the verdict
    (for example the config's name and the input files).
    """
    document = result.to_dict()
    facts = [(str(k), str(v)) for k, v in (details or {}).items()]
    summary = _summary(
        verdict=result.verdict.value,
        score=result.score,
        thresholds=document["thresholds"],
        reason=result.reason,
        facts=facts,
        warnings=list(result.warnings),
        groups=document["groups"],
    )
    sections = [
        _metrics_section(document["metrics"], "Metrics"),
        _plots_section(document["metrics"], pairs),
    ]
    return _page(title, f"judged {_when(time.time())}", summary, sections)


def render_analysis_html(record: StoredAnalysis, *, links: Mapping[str, str] | None = None) -> str:
    """Return a self-contained HTML report of a stored analysis.

    The summary is the analysis' own (its published verdict, score and reason); the
    metrics table comes from its last judged interval, the plots from the values that
    interval judged (for a sequential analysis, whose intervals each hold only their new
    points, from every interval's values); a history table lists every interval.
    ``links`` (name to URL, e.g. the analysis' JSON documents) are shown in the summary.
    """
    intervals = list(record.intervals)
    last = intervals[-1] if intervals else None
    result: Mapping[str, Any] = last.result if last is not None and isinstance(last.result, Mapping) else {}
    window = f"{_when(record.start_ts)} to {_when(record.start_ts + record.warmup_s + record.lifetime_s)}"
    config = record.config_name or str(record.config_body.get("name") or "inline config")
    if record.config_name and record.config_version:
        config += f" (version {record.config_version})"
    facts = [
        ("status", record.status + ("" if record.complete else " (verdict provisional)")),
        ("config", config),
        ("baseline scope", record.baseline_scope),
        ("canary scope", record.canary_scope),
        ("source", record.source + (f", location {record.location}" if record.location else "")),
        ("window", window),
        ("intervals judged", f"{len(intervals)} of {record.intervals_total}, mode {record.mode}"),
        ("created", _when(record.created_ts)),
    ]
    if record.completed_ts is not None:
        facts.append(("completed", _when(record.completed_ts)))
    summary = _summary(
        verdict=record.verdict,
        score=record.score,
        thresholds=record.thresholds,
        reason=record.reason,
        facts=facts,
        warnings=[str(w) for w in result.get("warnings", [])],
        groups=result.get("groups", []),
        error=record.error,
        links=links,
    )
    if last is None:
        sections = [
            '<section id="metrics"><h2>Metrics</h2><p class="none">No interval has been judged yet.</p>'
            "</section>"
        ]
    else:
        metrics = list(result.get("metrics", []))
        heading = (
            f"Metrics of interval {last.index + 1} "
            f"({_when(last.window_start_ts)} to {_when(last.window_end_ts)})"
        )
        if record.mode == "sequential":  # each interval holds only its new points: plot them all
            pairs = _merged_pairs([_stored_pairs(i) for i in intervals])
        else:  # each interval's window holds everything it judged (rebuilt from stored deltas)
            pairs = _stored_pairs(last)
        sections = [_metrics_section(metrics, heading), _plots_section(metrics, pairs)]
    sections.append(_history_section(intervals, record.intervals_total))
    title = f"Canary analysis {record.id}"
    subtitle = f"config {config}: {record.baseline_scope} against {record.canary_scope}"
    return _page(title, subtitle, summary, sections)


# ---------------------------------------------------------------- page parts


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(epoch: float | None) -> str:
    if epoch is None or not math.isfinite(epoch):
        return "n/a"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _score(score: float | None) -> str:
    return "n/a" if score is None or not math.isfinite(score) else f"{score:.2f}"


def _number(value: Any) -> str:
    return format_number(None if value is None else float(value))


def _page(title: str, subtitle: str, summary: str, sections: Iterable[str]) -> str:
    body = "\n".join(sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">
<meta name="generator" content="kayenta-py {_e(__version__)}">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>{_e(title)}</h1>
<p class="sub">{_e(subtitle)}</p>
</header>
<main>
{summary}
{body}
</main>
<footer>Report generated {_e(_when(time.time()))} by kayenta-py {_e(__version__)}.
Baseline is drawn in blue, canary in orange.</footer>
</body>
</html>
"""


def _summary(
    *,
    verdict: str,
    score: float | None,
    thresholds: Mapping[str, Any],
    reason: str,
    facts: Sequence[tuple[str, str]],
    warnings: Sequence[str],
    groups: Sequence[Mapping[str, Any]],
    error: str | None = None,
    links: Mapping[str, str] | None = None,
) -> str:
    color = VERDICT_COLORS.get(verdict, VERDICT_COLORS["pending"])
    pass_, marginal = thresholds.get("pass"), thresholds.get("marginal")
    limits = f"pass ≥ {_number(pass_)}, marginal > {_number(marginal)}, otherwise fail"
    rows = [("thresholds", limits), *facts]
    table = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    if links:
        anchors = " · ".join(f'<a href="{_e(url)}">{_e(name)}</a>' for name, url in links.items())
        table += f"<tr><th>links</th><td>{anchors}</td></tr>"
    parts = [
        '<section id="summary" class="summary">',
        f'<div class="verdict verdict-{_e(verdict)}" style="background:{color}">'
        f'<div class="word">{_e(verdict.upper())}</div>'
        f'<div class="score">score {_e(_score(score))} / 100</div></div>',
        f'<div class="facts"><table>{table}</table>',
    ]
    if groups:
        cells = "".join(
            f"<tr><td>{_e(g.get('name', ''))}</td><td class=num>{_e(_score(_float(g.get('score'))))}</td>"
            f"<td class=num>{_e(_number(g.get('weight')))}</td>"
            f"<td>{'no data' if g.get('no_data') else ''}</td></tr>"
            for g in groups
        )
        parts.append(
            '<table class="groups"><thead><tr><th>group</th><th>score</th><th>weight</th><th></th></tr>'
            f"</thead><tbody>{cells}</tbody></table>"
        )
    parts.append("</div></section>")
    parts.append(f'<p class="reason"><strong>Reason:</strong> {_e(reason)}</p>')
    if error:
        parts.append(f'<p class="error"><strong>Error:</strong> {_e(error)}</p>')
    if warnings:
        items = "".join(f"<li>{_e(w)}</li>" for w in warnings)
        parts.append(f'<ul class="warnings">{items}</ul>')
    return "\n".join(parts)


def _float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _state(metric: Mapping[str, Any]) -> str:
    """Return how a metric's row is shown: pass, failing, nodata or muted."""
    classification = str(metric.get("classification", ""))
    if classification == "Pass":
        return "pass"
    if metric.get("muted"):
        return "muted"
    return "failing" if classification in FAILING_CLASSES else "nodata"


def _label(metric: Mapping[str, Any]) -> tuple[str, str]:
    """Return a metric's name and its tags as text (``k=v,...``, empty without tags)."""
    tags = metric.get("tags") or {}
    return str(metric.get("name", "")), ",".join(f"{k}={v}" for k, v in sorted(tags.items()))


def _v(value: Any) -> str:
    """Return a number as an unbreakable span (a table cell may wrap between numbers, not inside)."""
    return f'<span class="v">{_e(_number(value))}</span>'


def _stats(side: Mapping[str, Any] | None) -> str:
    side = side or {}
    return (
        f"{_v(side.get('mean'))} ± {_v(side.get('std'))}<br><span class=n>n={_e(side.get('count', 0))}</span>"
    )


def _metrics_section(metrics: Sequence[Mapping[str, Any]], heading: str) -> str:
    rows = []
    for index, m in enumerate(metrics):
        state = _state(m)
        name, tags = _label(m)
        classification = str(m.get("classification", ""))
        ci = m.get("ci")
        ci_html = "" if not ci else f"[{_v(ci[0])}, {_v(ci[1])}]"
        effect = m.get("effect_size")
        effect_html = "" if effect is None else f"{_e(m.get('effect_measure') or 'effect')} {_v(effect)}"
        estimate = m.get("estimate")
        badge = _e(classification) + (" (muted)" if m.get("muted") else "")
        rows.append(
            f'<tr class="metric {state}" data-metric="{_e(name)}" data-classification="{_e(classification)}">'
            f'<td class="name"><a href="#plot-{index}">{_e(name)}</a>'
            + (' <span class="pill">critical</span>' if m.get("critical") else "")
            + (f'<div class="tags">{_e(tags)}</div>' if tags else "")
            + "</td>"
            f"<td>{_e(', '.join(str(g) for g in m.get('groups') or []))}</td>"
            f'<td><span class="badge {state}">{badge}</span></td>'
            f"<td class=num>{ci_html}</td>"
            f"<td class=num>{'' if estimate is None else _v(estimate)}</td>"
            f"<td class=num>{effect_html}</td>"
            f"<td class=num>{_stats(m.get('baseline'))}</td>"
            f"<td class=num>{_stats(m.get('canary'))}</td>"
            f'<td class="reason-cell">{_e(m.get("reason", ""))}</td></tr>'
        )
    failing = sum(1 for m in metrics if _state(m) == "failing")
    note = f"{len(metrics)} metrics, {failing} failing" + (" (highlighted)" if failing else "")
    if not rows:
        return f'<section id="metrics"><h2>{_e(heading)}</h2><p class="none">No metric results.</p></section>'
    return (
        f'<section id="metrics"><h2>{_e(heading)}</h2><p class="sub">{_e(note)}</p>'
        "<table><thead><tr><th>metric</th><th>groups</th><th>classification</th>"
        "<th>CI (canary − baseline)</th><th>estimate</th><th>effect size</th>"
        "<th>baseline mean ± std</th><th>canary mean ± std</th><th>reason</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _history_section(intervals: Sequence[Any], total: int) -> str:
    if not intervals:
        return (
            f'<section id="history"><h2>Intervals</h2><p class="none">None of {total} judged yet.</p>'
            "</section>"
        )
    rows = []
    for interval in intervals:
        color = VERDICT_COLORS.get(interval.verdict, VERDICT_COLORS["pending"])
        rows.append(
            f"<tr><td class=num>{interval.index + 1}</td>"
            f"<td>{_e(_when(interval.window_start_ts))} to {_e(_when(interval.window_end_ts))}</td>"
            f"<td class=num>{_e(_score(interval.score))}</td>"
            f'<td><span class="badge" style="background:{color}">{_e(interval.verdict)}</span></td>'
            f'<td class="reason-cell">{_e(interval.reason)}</td></tr>'
        )
    return (
        f'<section id="history"><h2>Intervals ({len(intervals)} of {total} judged)</h2>'
        "<table><thead><tr><th>#</th><th>window</th><th>score</th><th>verdict</th><th>reason</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _stored_pairs(interval: Any) -> list[MetricSetPair] | None:
    """Return an interval's full stored pairs (its ``pairs``: deltas joined), None if unreadable."""
    from kayenta_py.model.errors import StoreError
    from kayenta_py.model.pairs_codec import pairs_from_json

    try:
        return pairs_from_json(interval.pairs or [])
    except (KeyError, TypeError, ValueError, StoreError):  # an unreadable stored document: no plots
        return None


def _merged_pairs(batches: Sequence[Sequence[MetricSetPair] | None]) -> list[MetricSetPair] | None:
    """Return the pairs of consecutive batches joined per metric and tags (a sequential analysis)."""
    if any(batch is None for batch in batches):
        return None
    merged: dict[tuple[str, tuple[tuple[str, str], ...]], list[MetricSetPair]] = {}
    for batch in batches:
        for pair in batch or ():
            merged.setdefault((pair.name, tag_key(pair.tags)), []).append(pair)

    def join(sets: Sequence[MetricSet]) -> MetricSet:
        present = [s for s in sets if len(s)]
        if not present:
            return MetricSet.empty(sets[0].name, sets[0].tags)
        stamps = [s.timestamps for s in present if s.timestamps is not None]
        return MetricSet(
            present[0].name,
            np.concatenate([s.values for s in present]),
            present[0].tags,
            np.concatenate(stamps) if len(stamps) == len(present) else None,
        )

    return [
        MetricSetPair(
            parts[0].name, join([p.baseline for p in parts]), join([p.canary for p in parts]), parts[0].tags
        )
        for parts in merged.values()
    ]


def _plots_section(metrics: Sequence[Mapping[str, Any]], pairs: Sequence[MetricSetPair] | None) -> str:
    by_key = {(p.name, tag_key(p.tags)): p for p in pairs or ()}
    cards = []
    for index, m in enumerate(metrics):
        name, tags = _label(m)
        state = _state(m)
        pair = by_key.get((name, tag_key({str(k): str(v) for k, v in (m.get("tags") or {}).items()})))
        heading = (
            f"<h3>{_e(name)}{f' <span class=tags>{_e(tags)}</span>' if tags else ''} "
            f'<span class="badge {state}">{_e(m.get("classification", ""))}</span></h3>'
        )
        if pair is None:
            body = '<p class="none">No raw values were kept for this metric.</p>'
        elif len(pair.baseline) == 0 and len(pair.canary) == 0:
            body = '<p class="none">Neither side has any value.</p>'
        else:
            body = f'<div class="pair">{_series_svg(pair)}{_distribution_svg(pair)}</div>'
        cards.append(
            f'<div class="card {state}" id="plot-{index}" data-metric="{_e(name)}">{heading}{body}</div>'
        )
    if not cards:
        return ""
    return (
        '<section id="plots"><h2>Baseline against canary</h2>'
        f'<div class="plots">{"".join(cards)}</div></section>'
    )


# ---------------------------------------------------------------- SVG plots

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
