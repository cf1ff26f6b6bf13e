"""The ``kayenta-py`` command line.

Exit codes: 0 pass, 1 fail, 2 usage or input error, 3 marginal, 4 internal error,
5 metrics source failure (unreachable, timing out, refusing a query).
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from kayenta_py._version import __version__
from kayenta_py.cli.backtest import add_backtest_parser, run_backtest
from kayenta_py.cli.judge import _judge
from kayenta_py.cli.options import (
    EXIT_INPUT,
    EXIT_INTERNAL,
    EXIT_SOURCE,
    _add_baseline_window_arguments,
    _add_prometheus_arguments,
    _add_window_arguments,
)
from kayenta_py.cli.prometheus import _analyze, _query
from kayenta_py.cli.serve import (
    _serve,
)
from kayenta_py.cli.validate import _plugins, _validate
from kayenta_py.config.registry import default_registry
from kayenta_py.engine.source import SourceError
from kayenta_py.model.errors import KayentaError
from kayenta_py.model.redact import redact


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kayenta-py",
        description="Automated canary analysis: judge a canary's metrics against its baseline.",
        epilog="Exit codes: 0 pass, 1 fail, 2 usage or input error, 3 marginal, 4 internal error, "
        "5 metrics source failure.",
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
    judge.add_argument(
        "--html", type=Path, metavar="FILE", help="also write an HTML report with plots to FILE"
    )

    analyze = commands.add_parser(
        "analyze",
        help="judge one retrospective window fetched from Prometheus",
        description="Fetch baseline and canary metrics for one time window from Prometheus and judge them.",
    )
    analyze.add_argument(
        "--config", required=True, type=Path, help="canary config (YAML or JSON, native or Kayenta)"
    )
    _add_prometheus_arguments(analyze)
    analyze.add_argument(
        "--baseline-scope", required=True, help="the baseline's scope (substituted for ${scope})"
    )
    analyze.add_argument("--canary-scope", required=True, help="the canary's scope")
    _add_window_arguments(analyze, required=True)
    _add_baseline_window_arguments(analyze)
    analyze.add_argument("--pass", dest="pass_", type=float, metavar="SCORE", help="pass threshold")
    analyze.add_argument("--marginal", type=float, metavar="SCORE", help="marginal threshold")
    analyze.add_argument("--concurrency", type=int, default=8, help="metrics fetched at once (default 8)")
    analyze.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    analyze.add_argument(
        "--html", type=Path, metavar="FILE", help="also write an HTML report with plots to FILE"
    )
    analyze.add_argument("--progress", action="store_true", help="report fetch progress on stderr")

    query = commands.add_parser(
        "query",
        help="dry-run one metric: show its PromQL and what it fetches",
        description="Render one metric's query for a scope, run it, and summarize the series returned.",
    )
    query.add_argument("--config", required=True, type=Path)
    query.add_argument("--metric", required=True, help="the metric's name in the config")
    query.add_argument("--scope", required=True, help="the scope to render and fetch")
    _add_prometheus_arguments(query)
    _add_window_arguments(query, required=False)

    serve = commands.add_parser(
        "serve",
        help="run the HTTP service (live analyses, verdicts, Kayenta-style API)",
        description="Run the HTTP service. Settings come from KAYENTA_* environment variables, a .env "
        "file, or the YAML file given with --settings (see the README).",
    )
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8090)")
    serve.add_argument("--settings", type=Path, metavar="FILE", help="YAML settings file")
    serve.add_argument(
        "--insecure", action="store_true", help="allow binding a non-loopback address without API tokens"
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="start two live demo analyses (healthy and regressed) on the demo source, and make demo "
        "the default source unless KAYENTA_DEFAULT_SOURCE or KAYENTA_PROMETHEUS_URL is set",
    )
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))

    add_backtest_parser(commands)

    validate = commands.add_parser("validate", help="validate a canary config and show its metrics")
    validate.add_argument("--config", required=True, type=Path)

    commands.add_parser("plugins", help="list the registered judges and metrics sources")
    return parser


def _offsets_joined(argv: list[str]) -> list[str]:
    """Return ``argv`` with ``--baseline-offset -1h`` as ``--baseline-offset=-1h`` (argparse would take
    a value starting with ``-`` for an option)."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == "--baseline-offset" and arg.startswith("-") and arg != "--":
            out[-1] = f"--baseline-offset={arg}"
        else:
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return (and, as a script, exit with) its exit code."""
    args = _parser().parse_args(_offsets_joined(sys.argv[1:] if argv is None else list(argv)))
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.debug:  # urllib3 logs each retry; our error message says what happened
        logging.getLogger("urllib3").setLevel(logging.ERROR)
    try:
        registry = default_registry()
        if args.command == "judge":
            return _judge(args, registry, sys.stdout)
        if args.command == "analyze":
            return _analyze(args, registry, sys.stdout)
        if args.command == "query":
            return _query(args, registry, sys.stdout)
        if args.command == "serve":
            return _serve(args, registry)
        if args.command == "backtest":
            return run_backtest(args, registry, sys.stdout)
        if args.command == "validate":
            return _validate(args, registry, sys.stdout)
        return _plugins(registry, sys.stdout)
    except SourceError as exc:
        print(redact(f"error: {exc}"), file=sys.stderr)
        return EXIT_SOURCE
    except KayentaError as exc:
        print(redact(f"error: {exc}"), file=sys.stderr)
        return EXIT_INPUT
    except Exception as exc:  # a bug: say so plainly, traceback only on request
        if args.debug:
            traceback.print_exc()
        print(
            redact(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)"),
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
