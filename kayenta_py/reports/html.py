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

import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from kayenta_py.model.formatting import format_utc
from kayenta_py.model.types import CanaryResult, MetricSetPair
from kayenta_py.reports.sections import (
    _history_section,
    _merged_pairs,
    _metrics_section,
    _page,
    _plots_section,
    _stored_pairs,
    _summary,
)
from kayenta_py.reports.svg import (
    downsample,
)
from kayenta_py.reports.templates import (
    FAILING_ROW_COLOR,
    MAX_PLOT_POINTS,
)
from kayenta_py.reports.windows import window_facts


class StoredAnalysis(Protocol):
    """What a report reads of a stored analysis (read-only; the store's record satisfies it)."""

    @property
    def id(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def verdict(self) -> str: ...

    @property
    def score(self) -> float | None: ...

    @property
    def reason(self) -> str: ...

    @property
    def error(self) -> str | None: ...

    @property
    def mode(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def location(self) -> str: ...

    @property
    def config_name(self) -> str | None: ...

    @property
    def config_version(self) -> int | None: ...

    @property
    def config_body(self) -> Any: ...

    @property
    def thresholds(self) -> Any: ...

    @property
    def baseline_scope(self) -> str: ...

    @property
    def canary_scope(self) -> str: ...

    @property
    def created_ts(self) -> float: ...

    @property
    def start_ts(self) -> float: ...

    @property
    def completed_ts(self) -> float | None: ...

    @property
    def warmup_s(self) -> float: ...

    @property
    def lifetime_s(self) -> float: ...

    @property
    def intervals_total(self) -> int: ...

    @property
    def intervals(self) -> Any: ...

    @property
    def end_ts(self) -> float: ...

    @property
    def complete(self) -> bool: ...


__all__ = ["FAILING_ROW_COLOR", "MAX_PLOT_POINTS", "downsample", "render_analysis_html", "render_result_html"]


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
    return _page(title, f"judged {format_utc(time.time())}", summary, sections)


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
    end_ts = record.end_ts
    config = record.config_name or str(record.config_body.get("name") or "inline config")
    if record.config_name and record.config_version:
        config += f" (version {record.config_version})"
    facts = [
        ("status", record.status + ("" if record.complete else " (verdict provisional)")),
        ("config", config),
        ("baseline scope", record.baseline_scope),
        ("canary scope", record.canary_scope),
        ("source", record.source + (f", location {record.location}" if record.location else "")),
        *window_facts(record.start_ts, end_ts, getattr(record, "baseline_offset_s", None)),
        ("intervals judged", f"{len(intervals)} of {record.intervals_total}, mode {record.mode}"),
        ("created", format_utc(record.created_ts)),
    ]
    if record.completed_ts is not None:
        facts.append(("completed", format_utc(record.completed_ts)))
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
            f"({format_utc(last.window_start_ts)} to {format_utc(last.window_end_ts)})"
        )
        if record.mode == "sequential":  # each interval holds only its new points: plot them all
            pairs = _merged_pairs([_stored_pairs(i) for i in intervals])
        else:  # each interval's window holds everything it judged (rebuilt from stored deltas)
            pairs = _stored_pairs(last)
        sections = [_metrics_section(metrics, heading), _plots_section(metrics, pairs)]
    offset = getattr(record, "baseline_offset_s", None)
    sections.append(_history_section(intervals, record.intervals_total, baseline_offset=offset))
    title = f"Canary analysis {record.id}"
    subtitle = f"config {config}: {record.baseline_scope} against {record.canary_scope}"
    return _page(title, subtitle, summary, sections)
