"""The judge command (CSV files) and how a result is printed: text table, JSON, HTML report, exit code."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from kayenta_py.cli.options import (
    EXIT_FAIL,
    EXIT_MARGINAL,
    EXIT_PASS,
    cli_thresholds,
)
from kayenta_py.config.loader import load_config
from kayenta_py.config.model import CanaryConfig
from kayenta_py.config.registry import Registry
from kayenta_py.engine.pipeline import evaluate
from kayenta_py.model.errors import KayentaError
from kayenta_py.model.formatting import format_number, format_score
from kayenta_py.model.types import CanaryResult, MetricSet, MetricSetPair, Verdict

VERDICT_EXIT = {Verdict.PASS: EXIT_PASS, Verdict.FAIL: EXIT_FAIL, Verdict.MARGINAL: EXIT_MARGINAL}


def _judge(args: argparse.Namespace, registry: Registry, out: TextIO) -> int:
    config = load_config(args.config, registry=registry)
    thresholds = cli_thresholds(config.thresholds, args.pass_, args.marginal)
    source = registry.source_class("csv")(files={"baseline": args.baseline, "canary": args.canary})
    baseline: dict[str, list[MetricSet]] = {}
    canary: dict[str, list[MetricSet]] = {}
    for side, sets in (("baseline", baseline), ("canary", canary)):
        # Every metric the file holds, so that judge() names a column the config does not know.
        names = [m.name for m in config.metrics] + source.metric_names(side)
        for name in dict.fromkeys(names):
            series = source.fetch(replace(config.metrics[0], name=name), side)
            if series:
                sets[name] = series
    judgement = evaluate(config, baseline, canary, thresholds=thresholds, registry=registry)
    result = judgement.result
    code = _emit(config, result, args.format, out)
    if args.html is not None:
        details = {"config": config.name, "baseline": str(args.baseline), "canary": str(args.canary)}
        _write_report(args.html, result, judgement.pairs, config, details)
    return code


def _write_report(
    path: Path,
    result: CanaryResult,
    pairs: Sequence[MetricSetPair],
    config: CanaryConfig,
    details: dict[str, str],
) -> None:
    """Write the HTML report of ``result`` to ``path`` (``--html``); a failure is an input error."""
    from kayenta_py.reports.html import render_result_html

    page = render_result_html(result, pairs, title=f"Canary report: {config.name}", details=details)
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise KayentaError(f"--html: cannot write {path}: {exc.strerror or exc}") from None


def _emit(
    config: CanaryConfig,
    result: CanaryResult,
    output: str,
    out: TextIO,
    windows: dict[str, Any] | None = None,
) -> int:
    """Print warnings, then the result (and ``windows``, the fetched windows); return the exit code."""
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if output == "json":
        document = result.to_dict() if windows is None else {"windows": windows, **result.to_dict()}
        json.dump(document, out, indent=2, allow_nan=False)
        out.write("\n")
    else:
        for side, window in (windows or {}).items():
            out.write(f"{side} window: {window['start']} to {window['end']}\n")
        out.write(render_text(config, result))
    return VERDICT_EXIT.get(result.verdict, EXIT_FAIL)


def render_text(config: CanaryConfig, result: CanaryResult) -> str:
    """Render a result as a table, then the score, verdict and reason."""
    header = (
        "metric",
        "group",
        "class",
        "effect",
        "CI (canary - baseline)",
        "baseline mean (n)",
        "canary mean (n)",
        "reason",
    )
    rows = []
    for m in result.metrics:
        effect = "" if m.effect_size is None else f"{m.effect_measure} {format_number(m.effect_size)}"
        ci = "" if m.ci is None else f"[{format_number(m.ci[0])}, {format_number(m.ci[1])}]"
        label = m.classification.value + (" !" if m.critical else "") + (" (muted)" if m.muted else "")
        rows.append(
            (
                m.label,
                ",".join(m.groups),
                label,
                effect,
                ci,
                f"{format_number(m.baseline.mean)} ({m.baseline.count})",
                f"{format_number(m.canary.mean)} ({m.canary.count})",
                m.reason,
            )
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header[:-1])]
    lines = [f"canary config: {config.name} ({len(config.metrics)} metrics)", ""]
    for row in (header, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    lines.append("")
    for group in result.groups:
        lines.append(
            f"group {group.name}: score {format_number(group.score)}, weight {format_number(group.weight)}"
            + (" (no data)" if group.no_data else "")
        )
    score = format_score(result.score)
    lines += [
        "",
        f"score: {score}  (pass >= {result.thresholds.pass_:g}, marginal > {result.thresholds.marginal:g})",
        f"verdict: {result.verdict.value.upper()}",
        f"reason: {result.reason}",
        "",
    ]
    return "\n".join(lines)


