"""The backtest command: its options, progress bar and printed confusion tables."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from kayenta_py.backtest.loading import load_csv_canaries, load_stored_canaries
from kayenta_py.backtest.overrides import parse_assignment, parse_sweep, parse_value, validate_overrides
from kayenta_py.backtest.runs import LABELS, MARGINAL_NOTE, OUTCOMES, SettingResult, backtest
from kayenta_py.cli.options import cli_thresholds
from kayenta_py.config.loader import load_config
from kayenta_py.config.model import DEFAULT_JUDGE
from kayenta_py.config.registry import Registry
from kayenta_py.model.errors import KayentaError
from kayenta_py.model.types import Thresholds


def add_backtest_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Define the ``backtest`` subcommand and its arguments."""
    parser = commands.add_parser(
        "backtest",
        help="judge labelled past canaries again under other judge parameters",
        description="Replay labelled past canaries (CSV directories, or the completed analyses in the "
        "service's store) under a canary config and judge-parameter overrides, and print a confusion "
        "table of verdicts against labels with the false-fail and missed-regression rates. "
        f"{MARGINAL_NOTE.capitalize()}.",
    )
    inputs = parser.add_mutually_exclusive_group(required=True)
    inputs.add_argument(
        "--canaries",
        type=Path,
        metavar="DIR",
        help="one subdirectory per canary with baseline.csv, canary.csv and a 'label' file "
        "(regression or healthy), or a labels.csv (canary,label) in DIR",
    )
    inputs.add_argument(
        "--database-url",
        metavar="URL",
        help="the service's store (SQLAlchemy URL): every completed analysis' last interval, "
        "labelled by its past verdict (fail: regression, pass: healthy) unless --labels says otherwise",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="canary config to judge with (required with --canaries; with --database-url, default: "
        "each analysis' own config)",
    )
    parser.add_argument(
        "--labels",
        type=Path,
        metavar="FILE",
        help="labels CSV (canary,label); canary is an analysis id for stores",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a judge parameter on every metric judged by the --judge judge, e.g. tolerance=0.3, "
        "confidence=0.95, effect_size.allowed_increase=1.1; repeatable",
    )
    parser.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="judge once per value (repeat for a grid), e.g. tolerance=0.1,0.25,0.4",
    )
    parser.add_argument(
        "--judge",
        dest="judge_type",
        default=DEFAULT_JUDGE,
        metavar="NAME",
        help=f"the judge whose parameters --set and --sweep change (default {DEFAULT_JUDGE})",
    )
    parser.add_argument(
        "--pass",
        dest="pass_",
        type=float,
        metavar="SCORE",
        help="pass threshold (default: the config's; for stored analyses without --config, each one's own)",
    )
    parser.add_argument(
        "--marginal", type=float, metavar="SCORE", help="marginal threshold (default: as for --pass)"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run_backtest(args: argparse.Namespace, registry: Registry, out: TextIO) -> int:
    """Run ``kayenta-py backtest``: print the confusion table(s); return exit code 0."""
    fixed: dict[str, Any] = {}
    for text in args.overrides:
        key, value = parse_assignment(text, "--set")
        fixed[key] = parse_value(value)
    grid = parse_sweep(args.sweep)
    for key in grid[0] if grid else {}:
        if key in fixed:
            raise KayentaError(f"--sweep {key}: also given with --set; give it once")
    settings = [{**fixed, **combo} for combo in grid] or [fixed]
    for params in settings:  # every typo is reported before anything is judged
        if params:
            validate_overrides(params, judge_type=args.judge_type, registry=registry)
    config = load_config(args.config, registry=registry) if args.config is not None else None
    skipped: list[str] = []
    if args.canaries is not None:
        if config is None:
            raise KayentaError("--config: required with --canaries (the canary config to judge with)")
        canaries = load_csv_canaries(args.canaries, config, labels_path=args.labels, registry=registry)
        origin = str(args.canaries)
    else:
        stored = load_stored_canaries(args.database_url, labels_path=args.labels, registry=registry)
        canaries, skipped = stored.canaries, stored.skipped
        origin = _safe_url(args.database_url)
        if not canaries:
            raise KayentaError(f"--database-url: no completed analysis to backtest in {origin}")
    thresholds = cli_thresholds(
        config.thresholds if config is not None else Thresholds(), args.pass_, args.marginal
    )
    bar = _progress_bar(len(settings) * len(canaries), disable=args.no_progress)
    try:
        results = backtest(
            canaries,
            settings,
            config=config,
            thresholds=thresholds,
            judge_type=args.judge_type,
            registry=registry,
            progress=bar.update,
        )
    finally:
        bar.close()
    header = {
        "source": origin,
        "config": config.name if config is not None else "each analysis' own",
        "judge": args.judge_type,
        "canaries": len(canaries),
        "labels": {label: sum(c.label == label for c in canaries) for label in LABELS},
        "skipped": skipped,
        "marginal": MARGINAL_NOTE,
    }
    if args.format == "json":
        json.dump({**header, "settings": [r.to_dict() for r in results]}, out, indent=2, allow_nan=False)
        out.write("\n")
    else:
        out.write(render_backtest(header, results))
    return 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


class _Bar:
    """The small part of tqdm's interface the backtest uses (a no-op when there is no bar)."""

    def __init__(self, bar: Any = None) -> None:
        self._bar = bar

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _progress_bar(total: int, *, disable: bool) -> _Bar:
    """Return a tqdm bar on stderr, or none when disabled or stderr is not a terminal."""
    if disable or not sys.stderr.isatty():
        return _Bar()
    tqdm = importlib.import_module("tqdm").tqdm  # tqdm ships no type information
    return _Bar(tqdm(total=total, desc="backtest", unit="canary", file=sys.stderr, leave=False))


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def render_backtest(header: Mapping[str, Any], results: Sequence[SettingResult]) -> str:
    """Render one confusion table per setting, the rates, and a summary of every setting."""
    labels = header["labels"]
    lines = [
        f"backtest of {header['canaries']} canaries ({labels['regression']} labelled regression, "
        f"{labels['healthy']} labelled healthy) from {header['source']}; config {header['config']}",
    ]
    skipped = header["skipped"]
    if skipped:
        lines.append(f"skipped {len(skipped)}:")
        lines += [f"  {note}" for note in skipped]
    lines.append(f"({MARGINAL_NOTE})")
    for result in results:
        confusion = result.confusion
        lines += ["", f"setting: {result.label}" + (f" ({header['judge']} metrics)" if result.params else "")]
        columns = ("failed", "passed", "marginal", "total")
        lines.append(" " * 21 + "".join(f"{c:>10}" for c in columns))
        for label in LABELS:
            row = confusion.counts[label]
            cells = [row[o] for o in OUTCOMES] + [confusion.total(label)]
            lines.append(f"labelled {label:<12}" + "".join(f"{n:>10}" for n in cells))
        healthy, regressions = confusion.counts["healthy"], confusion.counts["regression"]
        lines.append(
            f"false-fail rate: {_rate(confusion.false_fail_rate)} ({healthy['failed']} of "
            f"{confusion.total('healthy')} healthy canaries failed)"
        )
        lines.append(
            f"missed-regression rate: {_rate(confusion.missed_regression_rate)} "
            f"({regressions['passed'] + regressions['marginal']} of {confusion.total('regression')} "
            f"regressions not failed: {regressions['passed']} passed, {regressions['marginal']} marginal)"
        )
    if len(results) > 1:
        lines += ["", f"summary ({MARGINAL_NOTE}):"]
        width = max(len(r.label) for r in results)
        for result in results:
            confusion = result.confusion
            lines.append(
                f"  {result.label:<{width}}  false-fail {_rate(confusion.false_fail_rate):>6}  "
                f"missed-regression {_rate(confusion.missed_regression_rate):>6}"
            )
    return "\n".join(lines) + "\n"


