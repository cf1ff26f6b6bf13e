"""Sections of a report page: summary, metrics table, interval history, plots."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from kayenta_py._version import __version__
from kayenta_py.model.formatting import format_number, format_score, format_utc
from kayenta_py.model.types import FAILING_CLASSIFICATIONS, MetricSet, MetricSetPair, tag_key
from kayenta_py.reports.svg import (
    _distribution_svg,
    _series_svg,
)
from kayenta_py.reports.templates import (
    _CSS,
    CONTENT_SECURITY_POLICY,
    VERDICT_COLORS,
    _e,
    _float,
    _v,
)
from kayenta_py.reports.windows import baseline_cell


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
<footer>Report generated {_e(format_utc(time.time()))} by kayenta-py {_e(__version__)}.
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
    limits = f"pass ≥ {format_number(pass_)}, marginal > {format_number(marginal)}, otherwise fail"
    rows = [("thresholds", limits), *facts]
    table = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    if links:
        anchors = " · ".join(f'<a href="{_e(url)}">{_e(name)}</a>' for name, url in links.items())
        table += f"<tr><th>links</th><td>{anchors}</td></tr>"
    parts = [
        '<section id="summary" class="summary">',
        f'<div class="verdict verdict-{_e(verdict)}" style="background:{color}">'
        f'<div class="word">{_e(verdict.upper())}</div>'
        f'<div class="score">score {_e(format_score(score))} / 100</div></div>',
        f'<div class="facts"><table>{table}</table>',
    ]
    if groups:
        cells = "".join(
            f"<tr><td>{_e(g.get('name', ''))}</td>"
            f"<td class=num>{_e(format_score(_float(g.get('score'))))}</td>"
            f"<td class=num>{_e(format_number(g.get('weight')))}</td>"
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


def _state(metric: Mapping[str, Any]) -> str:
    """Return how a metric's row is shown: pass, failing, nodata or muted."""
    classification = str(metric.get("classification", ""))
    if classification == "Pass":
        return "pass"
    if metric.get("muted"):
        return "muted"
    return "failing" if classification in FAILING_CLASSIFICATIONS else "nodata"


def _label(metric: Mapping[str, Any]) -> tuple[str, str]:
    """Return a metric's name and its tags as text (``k=v,...``, empty without tags)."""
    tags = metric.get("tags") or {}
    return str(metric.get("name", "")), ",".join(f"{k}={v}" for k, v in sorted(tags.items()))


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


def _history_section(intervals: Sequence[Any], total: int, *, baseline_offset: float | None = None) -> str:
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
            f"<td>{_e(format_utc(interval.window_start_ts))} to {_e(format_utc(interval.window_end_ts))}"
            f"{_baseline_line(interval, baseline_offset)}</td>"
            f"<td class=num>{_e(format_score(interval.score))}</td>"
            f'<td><span class="badge" style="background:{color}">{_e(interval.verdict)}</span></td>'
            f'<td class="reason-cell">{_e(interval.reason)}</td></tr>'
        )
    return (
        f'<section id="history"><h2>Intervals ({len(intervals)} of {total} judged)</h2>'
        "<table><thead><tr><th>#</th><th>window</th><th>score</th><th>verdict</th><th>reason</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _baseline_line(interval: Any, offset: float | None) -> str:
    """The baseline's own window of an interval, on a line of its own (nothing without an offset)."""
    text = baseline_cell(interval.window_start_ts, interval.window_end_ts, offset)
    return f"<br><small>{_e(text)}</small>" if text else ""


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


