"""The ``kayenta-py`` command line.

Exit codes: 0 pass, 1 fail, 2 usage or input error, 3 marginal, 4 internal error,
5 metrics source failure (unreachable, timing out, refusing a query).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from kayenta_py._version import __version__
from kayenta_py.backtest.runs import add_backtest_parser, run_backtest
from kayenta_py.config.loader import load_config
from kayenta_py.config.model import CanaryConfig, MetricConfig
from kayenta_py.config.registry import Registry, default_registry
from kayenta_py.engine.judge import format_number
from kayenta_py.engine.pipeline import analyze as analyze_canary
from kayenta_py.engine.pipeline import judge as judge_canary
from kayenta_py.engine.pipeline import pair_metric_sets
from kayenta_py.engine.source import MetricsSource, Scope, SourceError
from kayenta_py.model.errors import KayentaError
from kayenta_py.model.limits import DEFAULT_LIMITS, check_duration, check_time
from kayenta_py.model.redact import redact
from kayenta_py.model.types import CanaryResult, MetricSet, MetricSetPair, Thresholds, Verdict, rfc3339

EXIT_PASS, EXIT_FAIL, EXIT_INPUT, EXIT_MARGINAL, EXIT_INTERNAL, EXIT_SOURCE = 0, 1, 2, 3, 4, 5
VERDICT_EXIT = {Verdict.PASS: EXIT_PASS, Verdict.FAIL: EXIT_FAIL, Verdict.MARGINAL: EXIT_MARGINAL}


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


def _add_prometheus_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prometheus",
        default=os.environ.get("KAYENTA_PROMETHEUS_URL"),
        metavar="URL",
        help="Prometheus base URL (default: $KAYENTA_PROMETHEUS_URL)",
    )
    parser.add_argument("--location", default="", help="the scopes' location (${location})")
    parser.add_argument(
        "--scope-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an extended scope parameter (${KEY}); repeatable",
    )
    parser.add_argument(
        "--bearer-token-file",
        type=Path,
        metavar="FILE",
        help="file holding a bearer token (default: $KAYENTA_PROMETHEUS_TOKEN)",
    )
    parser.add_argument("--username", help="basic-auth user")
    parser.add_argument(
        "--password-file", type=Path, metavar="FILE", help="file holding the basic-auth password"
    )
    parser.add_argument("--insecure", action="store_true", help="do not verify the server's TLS certificate")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    parser.add_argument("--retries", type=int, default=3, help="retries on errors, 429 and 5xx (default 3)")


def _add_window_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    when = "RFC 3339, epoch seconds, 'now' or 'now-30m'"
    parser.add_argument(
        "--start",
        required=required,
        default=None if required else "now-1h",
        help=f"window start ({when})" + ("" if required else "; default now-1h"),
    )
    parser.add_argument(
        "--end",
        required=required,
        default=None if required else "now",
        help=f"window end ({when})" + ("" if required else "; default now"),
    )
    parser.add_argument(
        "--step", type=_step, default=60.0, help="seconds between points (default 60, at most 86400)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return (and, as a script, exit with) its exit code."""
    args = _parser().parse_args(argv)
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


def _judge(args: argparse.Namespace, registry: Registry, out: TextIO) -> int:
    config = load_config(args.config, registry=registry)
    thresholds = _thresholds(config, args.pass_, args.marginal)
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
    result = judge_canary(config, baseline, canary, thresholds=thresholds, registry=registry)
    code = _emit(config, result, args.format, out)
    if args.html is not None:
        details = {"config": config.name, "baseline": str(args.baseline), "canary": str(args.canary)}
        _write_report(args.html, result, pair_metric_sets(config, baseline, canary), config, details)
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


def _emit(config: CanaryConfig, result: CanaryResult, output: str, out: TextIO) -> int:
    """Print warnings, then the result; return the verdict's exit code."""
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if output == "json":
        json.dump(result.to_dict(), out, indent=2, allow_nan=False)
        out.write("\n")
    else:
        out.write(render_text(config, result))
    return VERDICT_EXIT.get(result.verdict, EXIT_FAIL)


def _analyze(args: argparse.Namespace, registry: Registry, out: TextIO) -> int:
    config = load_config(args.config, registry=registry)
    thresholds = _thresholds(config, args.pass_, args.marginal)
    source = _prometheus(args, registry)
    start, end = parse_time(args.start, "--start"), parse_time(args.end, "--end")
    params = _scope_params(args.scope_param)

    def progress(done: int, total: int, metric: str, side: str) -> None:
        print(f"fetched {done}/{total}: {metric} ({side})", file=sys.stderr)

    recording = _RecordingSource(source)
    baseline_scope = Scope(args.baseline_scope, args.location, params)
    canary_scope = Scope(args.canary_scope, args.location, params)
    result = analyze_canary(
        config,
        recording,
        baseline_scope,
        canary_scope,
        start=start,
        end=end,
        step=args.step,
        thresholds=thresholds,
        concurrency=args.concurrency,
        progress=progress if args.progress else None,
        registry=registry,
    )
    code = _emit(config, result, args.format, out)
    if args.html is not None:
        details = {
            "config": config.name,
            "baseline scope": args.baseline_scope,
            "canary scope": args.canary_scope,
            "window": f"{rfc3339(start)} to {rfc3339(end)}, step {args.step:g} s",
            "source": _without_credentials(str(args.prometheus)),
        }
        baseline, canary = recording.split(baseline_scope)
        pairs = pair_metric_sets(config, baseline, canary, scopes=(baseline_scope, canary_scope))
        _write_report(args.html, result, pairs, config, details)
    return code


def _without_credentials(url: str) -> str:
    """Return ``url`` without user info, query or fragment (shown in a report, never a secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    with contextlib.suppress(ValueError):  # an invalid port: leave it out
        netloc += f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class _RecordingSource:
    """A metrics source that keeps what it fetched, so ``--html`` can plot the values judged."""

    def __init__(self, source: MetricsSource) -> None:
        self.source = source
        self.fetched: list[tuple[Scope, str, list[MetricSet]]] = []
        self._lock = threading.Lock()

    def fetch(
        self,
        metric: MetricConfig,
        scope: Scope,
        start: float | None = None,
        end: float | None = None,
        step: float | None = None,
    ) -> list[MetricSet]:
        sets = self.source.fetch(metric, scope, start, end, step)
        with self._lock:
            self.fetched.append((scope, metric.name, sets))
        return sets

    def split(self, baseline: Scope) -> tuple[dict[str, list[MetricSet]], dict[str, list[MetricSet]]]:
        """Return the baseline's and the canary's metric sets by metric name."""
        sides: tuple[dict[str, list[MetricSet]], dict[str, list[MetricSet]]] = ({}, {})
        for scope, name, sets in self.fetched:
            sides[0 if scope is baseline else 1][name] = sets
        return sides


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


def _prometheus(args: argparse.Namespace, registry: Registry) -> Any:
    if not args.prometheus:
        raise KayentaError("--prometheus: no Prometheus URL given (nor KAYENTA_PROMETHEUS_URL)")
    token = _read_secret(args.bearer_token_file, "--bearer-token-file") if args.bearer_token_file else None
    token = token or os.environ.get("KAYENTA_PROMETHEUS_TOKEN") or None
    password = _read_secret(args.password_file, "--password-file") if args.password_file else None
    if (args.username is None) != (password is None):
        raise KayentaError("--username and --password-file go together")
    return registry.source_class("prometheus")(
        args.prometheus,
        bearer_token=token,
        username=args.username,
        password=password,
        verify_tls=not args.insecure,
        timeout=args.timeout,
        retries=args.retries,
    )


def _read_secret(path: Path, option: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise KayentaError(f"{option}: cannot read {path}: {exc.strerror}") from None


def _scope_params(pairs: Sequence[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise KayentaError(f"--scope-param: {pair!r} is not KEY=VALUE")
        params[key] = value
    return params


_RELATIVE_TIME = re.compile(r"^now(?:-(\d+(?:\.\d+)?)([smhd]))?$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, option: str) -> float:
    """Parse RFC 3339, epoch seconds, ``now`` or ``now-<n><s|m|h|d>`` into epoch seconds."""
    text = text.strip()
    relative = _RELATIVE_TIME.match(text)
    if relative:
        amount, unit = relative.groups()
        return check_time(time.time() - (float(amount) * _UNIT_SECONDS[unit] if amount else 0.0), option)
    try:
        return check_time(float(text), option)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise KayentaError(
            f"{option}: {text!r} is not a time (RFC 3339 like 2026-11-26T09:00:00Z, epoch seconds, "
            "'now' or 'now-30m')"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return check_time(moment.timestamp(), option)


def _step(text: str) -> float:
    """Parse ``--step``: seconds, finite, positive and at most a day (argparse names the option)."""
    try:
        return check_duration(float(text), "step", DEFAULT_LIMITS.max_step_s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    except KayentaError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("step: ")) from None


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


def _serve(args: argparse.Namespace, registry: Registry) -> int:
    import uvicorn

    from kayenta_py.http.app import create_app
    from kayenta_py.service.analyses import Service
    from kayenta_py.service.demo import start_demo
    from kayenta_py.service.settings import load_settings

    overrides: dict[str, Any] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    settings = load_settings(args.settings, **overrides)
    _redact_logs(settings)
    if args.demo and settings.resolved_default_source() is None:
        # --demo asks for the demo source: analyses that name none use it (never implicitly otherwise)
        settings = settings.model_copy(update={"default_source": "demo"})
    if not _is_loopback(settings.host) and not settings.tokens() and not args.insecure:
        raise KayentaError(
            f"refusing to bind {settings.host} without API tokens: anyone who can reach it could start "
            "and cancel analyses. Set KAYENTA_API_TOKENS (e.g. 'write:<token>,read:<token>'), "
            "or pass --insecure to allow unauthenticated access."
        )
    sock = _listen_socket(settings.host, settings.port)
    try:
        service = Service(settings, registry=registry)
        _migrate(service)
        app = create_app(service, on_started=start_demo if args.demo else None)
        print(_serve_banner(service), file=sys.stderr, flush=True)
        uvicorn_config = uvicorn.Config(app, log_level=args.log_level, log_config=_uvicorn_log_config())
        _redact_logs(settings)  # uvicorn configured its loggers in Config(): their handlers too
        server = uvicorn.Server(uvicorn_config)
        try:
            server.run(sockets=[sock])
        except SystemExit as exc:  # uvicorn exits 3 (our "marginal") when the application fails to start
            if exc.code not in (None, 0):
                server.started = False
    finally:
        sock.close()
    if not server.started:  # the database was usable (checked above): an internal error, logged above
        print("internal error: the service did not start (see the messages above)", file=sys.stderr)
        return EXIT_INTERNAL
    return EXIT_PASS


def _redact_logs(settings: Any) -> None:
    """Register the settings' secrets and redact every log handler and printed traceback (idempotent)."""
    from kayenta_py.model.redact import install_excepthooks, install_log_redaction, register_settings_secrets

    register_settings_secrets(settings)
    install_log_redaction()
    install_excepthooks()


def _uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with a redacting filter on each of its handlers."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": "kayenta_py.model.redact.RedactingFilter"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
    return config


def _listen_socket(host: str, port: int) -> Any:
    """Bind ``host:port`` for the service; an address in use (or not bindable) is a usage error."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        reasons = {
            errno.EADDRINUSE: "the address is already in use (is another kayenta-py running?); "
            "stop it or choose another port with --port or KAYENTA_PORT",
            errno.EACCES: "permission denied (ports below 1024 need privileges); choose another port",
            errno.EADDRNOTAVAIL: "the address is not one of this machine's; check --host or KAYENTA_HOST",
        }
        reason = reasons.get(exc.errno or 0, exc.strerror or str(exc))
        if isinstance(exc, socket.gaierror):
            reason = f"cannot resolve the host ({exc.strerror}); check --host or KAYENTA_HOST"
        raise KayentaError(f"cannot listen on {where}: {reason}") from None
    sock.set_inheritable(True)
    return sock


def _migrate(service: Any) -> None:
    """Create or upgrade the schema before serving: a database that cannot be used is a usage error."""
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    try:
        service.store.migrate()
    except (SQLAlchemyError, CommandError) as exc:
        service.store.close()
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise KayentaError(f"database {service.store.display_url}: cannot be used: {first}") from None


def _serve_banner(service: Any) -> str:
    """Return the start line: address, authentication, default source and database (password masked)."""
    settings = service.settings
    auth = "bearer tokens required" if settings.tokens() else "no authentication (loopback only)"
    default = service.default_source()
    if default is None:
        source = "none (analyses must name a source: set KAYENTA_PROMETHEUS_URL or KAYENTA_DEFAULT_SOURCE)"
    elif default == "demo":
        source = "demo (generated data)"
    else:
        source = f"{default} ({_without_credentials(str(settings.prometheus_url))})"
    return (
        f"kayenta-py {__version__} serving on http://{settings.host}:{settings.port} ({auth}); "
        f"default source {source}; database {service.store.display_url}; API docs at /docs"
    )


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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
