"""Slack messages: a finished analysis, and the digest of a period's analyses."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any

from kayenta_py.integrations.slack.blocks import (
    MAX_FALLBACK_TEXT,
    MAX_METRIC_SECTIONS,
    VERDICT_EMOJI,
    _button,
    _context,
    _header,
    _section,
    _when,
    clip,
    escape,
    limit_blocks,
    metric_label,
    metric_line,
    not_passing,
    pack_lines,
)
from kayenta_py.integrations.slack.channels import (
    config_label,
)
from kayenta_py.model.formatting import format_number, format_score
from kayenta_py.model.types import FAILING_CLASSIFICATIONS
from kayenta_py.service.store.records import Analysis
from kayenta_py.service.store.repository import Store

TOP_N = 5  # failing metrics and configs in a digest


DIGEST_DEFAULT_WINDOW_S = 86_400.0  # the first digest covers the last 24 hours


def analysis_links(base_url: str, analysis_id: str) -> dict[str, str]:
    """Return the report and verdict URLs of an analysis."""
    base = f"{base_url.rstrip('/')}/api/v1/analyses/{analysis_id}"
    return {"report": f"{base}/report", "verdict": f"{base}/verdict"}


def finished_message(
    analysis: Analysis, metrics: Sequence[Mapping[str, Any]], *, base_url: str
) -> dict[str, Any]:
    """Return the Slack message (``text`` and ``blocks``) about a finished analysis.

    ``metrics`` are the per-metric results of its last judged interval.
    """
    verdict = analysis.verdict.lower()
    config = config_label(analysis)
    links = analysis_links(base_url, analysis.id)
    emoji = VERDICT_EMOJI.get(verdict, ":grey_question:")
    title = f"{emoji} Canary {verdict.upper()}: {config} (score {format_score(analysis.score)})"
    failing = not_passing(metrics)
    thresholds = analysis.thresholds or {}
    version = f" v{analysis.config_version}" if analysis.config_version else ""
    location = f" in {escape(analysis.location)}" if analysis.location else ""
    summary = "\n".join(
        [
            f"*<{links['report']}|Canary analysis {escape(analysis.id)}>*: *{verdict.upper()}*, score "
            f"{format_score(analysis.score)} (pass ≥ {format_number(thresholds.get('pass'))}, "
            f"marginal ≥ {format_number(thresholds.get('marginal'))})",
            f"*Config:* {escape(config)}{version}",
            f"*Canary:* `{escape(analysis.canary_scope)}` against baseline "
            f"`{escape(analysis.baseline_scope)}`{location}",
            f"*Status:* {escape(analysis.status)}",
            f"*Reason:* {escape(analysis.reason)}",
        ]
    )
    blocks: list[dict[str, Any]] = [_header(title), _section(summary)]
    if failing:
        count = len(failing)
        heading = f"*{count} metric{'s' if count != 1 else ''} did not pass* (last interval):"
        lines = [metric_line(m) for m in failing]
        texts = pack_lines(lines, heading=heading, max_sections=MAX_METRIC_SECTIONS)
        blocks.append({"type": "divider"})
        blocks.extend(_section(text) for text in texts)
    elif metrics:
        blocks.append(_context("Every metric passed in the last interval."))
    blocks.append(
        {
            "type": "actions",
            "elements": [
                _button("Report", links["report"], "report"),
                _button("Verdict", links["verdict"], "verdict"),
            ],
        }
    )
    names = ", ".join(metric_label(m) for m in failing[:10]) + (", …" if len(failing) > 10 else "")
    text = f"Canary {verdict.upper()}: {config} (score {format_score(analysis.score)})"
    if failing:
        text += f"; did not pass: {names}"
    text = clip(escape(text), MAX_FALLBACK_TEXT - len(links["report"]) - 3) + f" - {links['report']}"
    return {"text": text, "blocks": limit_blocks(blocks)}


@dataclass(frozen=True)
class DigestSummary:
    """What a digest reports: the analyses finished in ``(since, until]``."""

    since: float
    until: float
    total: int
    verdicts: Mapping[str, int]
    statuses: Mapping[str, int]
    failing_metrics: Sequence[tuple[str, str, int, int]]
    """(metric, config, analyses where it failed, analyses of that config), most failures first."""
    failing_configs: Sequence[tuple[str, int, int, int]]
    """(config, fail, marginal, analyses), most failures first."""


def summarize(
    store: Store, since: float, until: float, *, configs: frozenset[str] = frozenset(), top: int = TOP_N
) -> DigestSummary:
    """Count the analyses finished in ``(since, until]`` and find what failed most often."""
    finished = [
        (analysis, result)
        for analysis, result in store.finished_between(since, until)
        if not configs or config_label(analysis) in configs
    ]
    analyses = [analysis for analysis, _ in finished]
    last_results = {analysis.id: result for analysis, result in finished}
    verdicts: Counter[str] = Counter(a.verdict for a in analyses)
    statuses: Counter[str] = Counter(a.status for a in analyses)
    per_config: Counter[str] = Counter()
    fails: Counter[str] = Counter()
    marginals: Counter[str] = Counter()
    metric_failures: Counter[tuple[str, str]] = Counter()
    for analysis in analyses:
        config = config_label(analysis)
        per_config[config] += 1
        fails[config] += analysis.verdict == "fail"
        marginals[config] += analysis.verdict == "marginal"
        result = last_results.get(analysis.id) or {}
        failed = {
            metric_label(m)
            for m in result.get("metrics", [])
            if m.get("classification") in FAILING_CLASSIFICATIONS and not m.get("muted")
        }
        for name in failed:
            metric_failures[(name, config)] += 1
    top_metrics = sorted(metric_failures.items(), key=lambda item: (-item[1], item[0]))[:top]
    top_configs = sorted(
        (c for c in per_config if fails[c] or marginals[c]), key=lambda c: (-fails[c], -marginals[c], c)
    )[:top]
    return DigestSummary(
        since=since,
        until=until,
        total=len(analyses),
        verdicts=dict(verdicts),
        statuses=dict(statuses),
        failing_metrics=[(name, config, n, per_config[config]) for (name, config), n in top_metrics],
        failing_configs=[(c, fails[c], marginals[c], per_config[c]) for c in top_configs],
    )


def digest_message(
    summary: DigestSummary, *, base_url: str, channel: str, zone: tzinfo = UTC
) -> dict[str, Any]:
    """Return the digest's Slack message (``text`` and ``blocks``)."""
    window = f"{_when(summary.since, zone)} to {_when(summary.until, zone)}"
    plural = "analysis" if summary.total == 1 else "analyses"
    title = f":bar_chart: Canary digest: {summary.total} {plural} finished"
    counts = "  ".join(
        f"{VERDICT_EMOJI[v]} {v} *{summary.verdicts.get(v, 0)}*" for v in ("pass", "marginal", "fail")
    )
    unusual = [
        f"{summary.statuses[s]} {label}"
        for s, label in (("cancelled", "cancelled"), ("failed", "ended by an error"))
        if summary.statuses.get(s)
    ]
    blocks: list[dict[str, Any]] = [
        _header(title),
        _section(f"*{window}*\n{counts}" + (f"\n_({', '.join(unusual)})_" if unusual else "")),
    ]
    text = f"Canary digest ({window}): {summary.total} {plural}"
    if summary.total:
        text += ", " + ", ".join(f"{summary.verdicts.get(v, 0)} {v}" for v in ("pass", "marginal", "fail"))
        metric_lines = [
            f"{i}. `{escape(name)}` ({escape(config)}): failed in {n} of {total} "
            f"{'analysis' if total == 1 else 'analyses'}"
            for i, (name, config, n, total) in enumerate(summary.failing_metrics, start=1)
        ]
        config_lines = [
            f"{i}. *{escape(config)}*: {fail} fail, {marginal} marginal of {total}"
            for i, (config, fail, marginal, total) in enumerate(summary.failing_configs, start=1)
        ]
        blocks.append({"type": "divider"})
        blocks.append(
            _section("*Most frequently failing metrics*\n" + ("\n".join(metric_lines) or "_None failed._"))
        )
        blocks.append(
            _section("*Configs failing most often*\n" + ("\n".join(config_lines) or "_Every config passed._"))
        )
        if summary.failing_metrics:
            text += "; most failing metric: " + summary.failing_metrics[0][0]
    else:
        blocks.append(_context("No canary analysis finished in this period."))
    listing = f"{base_url.rstrip('/')}/api/v1/analyses?status=completed"
    blocks.append(_context(f"<{listing}|All analyses> · channel {escape(channel)}"))
    return {"text": clip(escape(text), MAX_FALLBACK_TEXT), "blocks": limit_blocks(blocks)}


