"""The ``kayenta-py`` command line.

Exit codes: 0 pass, 1 fail, 2 usage or input error, 3 marginal, 4 internal error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from kayenta_py import __version__
from kayenta_py._config import CanaryConfig, load_config
from kayenta_py._errors import KayentaError
from kayenta_py._judge import format_number
from kayenta_py._model import CanaryResult, MetricSet, Thresholds, Verdict
from kayenta_py._pipeline import judge as judge_canary
from kayenta_py._registry import Registry, default_registry

EXIT_PASS, EXIT_FAIL, EXIT_INPUT, EXIT_MARGINAL, EXIT_INTERNAL = 0, 1, 2, 3, 4
VERDICT_EXIT = {Verdict.PASS: EXIT_PASS, Verdict.FAIL: EXIT_FAIL, Verdict.MARGINAL: EXIT_MARGINAL}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kayenta-py",
        description="Automated canary analysis: judge a canary's metrics against its baseline.",
        epilog="Exit codes: 0 pass, 1 fail, 2 usage or input error, 3 marginal, 4 internal error.",
    )
    parser.add_argument("--version", action="version", version=f"kayenta-py {__version__}")
    parser.add_argument("--debug", action="store_true", help="log debug output and show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    judge = commands.add_parser(
        "judge",
        help="judge a canary from CSV files",
        description="Judge canary metrics against baseline metrics read from CSV files "
        "(wide: a timestamp column and one column per metric; long: timestamp, metric, value "
        "and tag columns).",
    )
    judge.add_argument(
        "--config", required=True, type=Path, help="canary config (YAML or JSON, native or Kayenta)"
    )
    judge.add_argument("--baseline", required=True, type=Path, help="baseline metrics CSV")
    judge.add_argument("--canary", required=True, type=Path, help="canary metrics CSV")
    judge.add_argument(
        "--pass",
        dest="pass_",
        type=float,
        metavar="SCORE",
        help="pass threshold (default: the config's, else 95)",
    )
    judge.add_argument(
        "--marginal", type=float, metavar="SCORE", help="marginal threshold (default: the config's, else 75)"
    )
    judge.add_argument("--format", choices=("text", "json"), default="text", help="output format")

    validate = commands.add_parser("validate", help="validate a canary config and show its metrics")
    validate.add_argument("--config", required=True, type=Path)

    commands.add_parser("plugins", help="list the registered judges and metrics sources")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return (and, as a script, exit with) its exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        registry = default_registry()
        if args.command == "judge":
            return _judge(args, registry, sys.stdout)
        if args.command == "validate":
            return _validate(args, registry, sys.stdout)
        return _plugins(registry, sys.stdout)
    except KayentaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except Exception as exc:  # a bug: say so plainly, traceback only on request
        if args.debug:
            traceback.print_exc()
        print(
            f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)", file=sys.stderr
        )
        return EXIT_INTERNAL


def _judge(args: argparse.Namespace, registry: Registry, out: TextIO) -> int:
    config = load_config(args.config, registry=registry)
    thresholds = _thresholds(config, args.pass_, args.marginal)
    source = registry.source_class("csv")(files={"baseline": args.baseline, "canary": args.canary})
    baseline: dict[str, list[MetricSet]] = {}
    canary: dict[str, list[MetricSet]] = {}
    for metric in config.metrics:
        baseline[metric.name] = source.fetch(metric, "baseline")
        canary[metric.name] = source.fetch(metric, "canary")
    result = judge_canary(config, baseline, canary, thresholds=thresholds, registry=registry)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.format == "json":
        json.dump(result.to_dict(), out, indent=2, allow_nan=False)
        out.write("\n")
    else:
        out.write(render_text(config, result))
    return VERDICT_EXIT.get(result.verdict, EXIT_FAIL)


def _thresholds(config: CanaryConfig, pass_: float | None, marginal: float | None) -> Thresholds:
    try:
        return Thresholds(
            config.thresholds.pass_ if pass_ is None else pass_,
            config.thresholds.marginal if marginal is None else marginal,
        )
    except ValueError as exc:
        raise KayentaError(
            str(exc).replace("thresholds.pass", "--pass").replace("thresholds.marginal", "--marginal")
        ) from None


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
    score = "n/a" if result.score is None else f"{result.score:.2f}"
    lines += [
        "",
        f"score: {score}  (pass >= {result.thresholds.pass_:g}, marginal > {result.thresholds.marginal:g})",
        f"verdict: {result.verdict.value.upper()}",
        f"reason: {result.reason}",
        "",
    ]
    return "\n".join(lines)


def _validate(args: argparse.Namespace, registry: Registry, out: TextIO) -> int:
    config = load_config(args.config, registry=registry)
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    out.write(
        f"ok: {args.config} is a valid {config.format} config '{config.name}' "
        f"with {len(config.metrics)} metrics\n"
    )
    for m in config.metrics:
        params: dict[str, Any] = dict(m.judge_params)
        out.write(
            f"  {m.name}: kind {m.kind.value}, groups {','.join(m.groups)}, direction "
            f"{m.direction.value}, critical {str(m.critical).lower()}, judge {m.judge_type} "
            f"{json.dumps(params, sort_keys=True)}\n"
        )
    return EXIT_PASS


def _plugins(registry: Registry, out: TextIO) -> int:
    out.write("judges: " + ", ".join(registry.judge_names()) + "\n")
    out.write("metrics sources: " + ", ".join(registry.source_names()) + "\n")
    return EXIT_PASS


if __name__ == "__main__":
    sys.exit(main())
