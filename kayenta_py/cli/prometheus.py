"""The analyze and query commands: a retrospective window judged from Prometheus, or one metric dry-run."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

import numpy as np

from kayenta_py.cli.judge import _emit, _write_report
from kayenta_py.cli.options import (
    EXIT_PASS,
    _prometheus,
    _scope_params,
    _without_credentials,
    cli_baseline_offset,
    cli_thresholds,
    parse_time,
)
from kayenta_py.config.loader import load_config
from kayenta_py.config.registry import Registry
from kayenta_py.engine.pipeline import evaluate_window
from kayenta_py.engine.source import Scope
from kayenta_py.model.errors import KayentaError
from kayenta_py.model.formatting import format_number
from kayenta_py.model.types import rfc3339
from kayenta_py.reports.windows import format_offset


def _analyze(args: argparse.Namespace, registry: Registry, out: TextIO) -> int:
    config = load_config(args.config, registry=registry)
    thresholds = cli_thresholds(config.thresholds, args.pass_, args.marginal)
    source = _prometheus(args, registry)
    start, end = parse_time(args.start, "--start"), parse_time(args.end, "--end")
    if end <= start:
        raise KayentaError("--end: must come after --start")
    offset = cli_baseline_offset(args, start, end)
    params = _scope_params(args.scope_param)

    def progress(done: int, total: int, metric: str, side: str) -> None:
        print(f"fetched {done}/{total}: {metric} ({side})", file=sys.stderr)

    baseline_scope = Scope(args.baseline_scope, args.location, params)
    canary_scope = Scope(args.canary_scope, args.location, params)
    judgement = evaluate_window(
        config,
        source,
        baseline_scope,
        canary_scope,
        start=start,
        end=end,
        step=args.step,
        thresholds=thresholds,
        concurrency=args.concurrency,
        progress=progress if args.progress else None,
        registry=registry,
        baseline_offset=offset or 0.0,
    )
    result = judgement.result
    shift = offset or 0.0
    windows = {
        "canary": {"start": rfc3339(start), "end": rfc3339(end)},
        "baseline": {"start": rfc3339(start + shift), "end": rfc3339(end + shift), "offset_s": offset},
    }
    code = _emit(config, result, args.format, out, windows if offset or args.format == "json" else None)
    if args.html is not None:
        details = {
            "config": config.name,
            "baseline scope": args.baseline_scope,
            "canary scope": args.canary_scope,
            "window": f"{rfc3339(start)} to {rfc3339(end)}, step {args.step:g} s",
            **_baseline_detail(start, end, offset),
            "source": _without_credentials(str(args.prometheus)),
        }
        _write_report(args.html, result, judgement.pairs, config, details)
    return code


def _baseline_detail(start: float, end: float, offset: float | None) -> dict[str, str]:
    """The report's line on the baseline's own window (none when it shares the canary's)."""
    if not offset:
        return {}
    window = f"{rfc3339(start + offset)} to {rfc3339(end + offset)}"
    return {"baseline window": f"{window} (offset {format_offset(offset)})"}


def _query(args: argparse.Namespace, registry: Registry, out: TextIO) -> int:
    config = load_config(args.config, registry=registry)
    try:
        metric = config.metric(args.metric)
    except KeyError as exc:
        raise KayentaError(f"--metric: {exc.args[0]}") from None
    source = _prometheus(args, registry)
    scope = Scope(args.scope, args.location, _scope_params(args.scope_param))
    start, end = parse_time(args.start, "--start"), parse_time(args.end, "--end")
    out.write(f"query: {source.render(metric, scope)}\n")
    out.write(f"window: {rfc3339(start)} .. {rfc3339(end)}, step {args.step:g} s\n")
    sets = source.fetch(metric, scope, start, end, args.step)
    out.write(f"series: {len(sets)}\n")
    for metric_set in sets:
        values = metric_set.values
        finite = values[np.isfinite(values)]
        tags = ",".join(f"{k}={v}" for k, v in metric_set.tags.items()) or "(no labels)"
        summary = (
            f"min {format_number(float(finite.min()))}, mean {format_number(float(finite.mean()))}, "
            f"max {format_number(float(finite.max()))}"
            if finite.size
            else "no finite values"
        )
        out.write(f"  {{{tags}}}: {values.size} points, {values.size - finite.size} missing; {summary}\n")
    return EXIT_PASS


