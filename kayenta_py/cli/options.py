"""Options the commands share: Prometheus connection, time windows, scopes, thresholds, secrets from files."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kayenta_py.config.registry import Registry
from kayenta_py.model.errors import FieldError, KayentaError
from kayenta_py.model.formatting import parse_rfc3339
from kayenta_py.model.limits import DEFAULT_LIMITS, check_duration, check_time
from kayenta_py.model.types import Thresholds

# Exit codes (the --help epilog lists them).
EXIT_PASS, EXIT_FAIL, EXIT_INPUT, EXIT_MARGINAL, EXIT_INTERNAL, EXIT_SOURCE = 0, 1, 2, 3, 4, 5


def _add_prometheus_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        metavar="NAME",
        help="a registered metrics source, set up from its own KAYENTA_<SOURCE>_* environment "
        "variables (e.g. KAYENTA_INFLUXDB_URL); default: Prometheus from the options below",
    )
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


def _add_baseline_window_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--baseline-offset",
        metavar="DURATION",
        help="fetch the baseline over the window shifted by this signed duration (-1h, -PT1H, -P7D; "
        "negative: earlier), as after a blue-green switch or against last week",
    )
    parser.add_argument(
        "--baseline-start", metavar="TIME", help="an explicit baseline window's start (with --baseline-end)"
    )
    parser.add_argument(
        "--baseline-end",
        metavar="TIME",
        help="an explicit baseline window's end; the window is as long as --start to --end",
    )


def _without_credentials(url: str) -> str:
    """Return ``url`` without user info, query or fragment (shown in a report, never a secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    with contextlib.suppress(ValueError):  # an invalid port: leave it out
        netloc += f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _prometheus(args: argparse.Namespace, registry: Registry) -> Any:
    if args.source is not None:  # a named source: built from its own settings (environment)
        from kayenta_py.service.settings import Settings
        from kayenta_py.service.source_settings import SourceSettingsEnvironment
        from kayenta_py.service.sources import build_source

        return build_source(registry, args.source, SourceSettingsEnvironment(Settings)())
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
        raise FieldError(option, f"cannot read {path}: {exc.strerror}") from None


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
        return check_time(parse_rfc3339(text), option)
    except ValueError:
        raise FieldError(
            option, f"{text!r} is not a time (RFC 3339 like 2026-11-26T09:00:00Z, epoch seconds, "
            "'now' or 'now-30m')"
        ) from None


def _step(text: str) -> float:
    """Parse ``--step``: seconds, finite, positive and at most a day (argparse names the option)."""
    try:
        return check_duration(float(text), "step", DEFAULT_LIMITS.max_step_s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    except KayentaError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("step: ")) from None


def cli_baseline_offset(args: argparse.Namespace, start: float, end: float) -> float | None:
    """Return the baseline's offset from ``--baseline-offset`` or ``--baseline-start``/``--baseline-end``.

    None: the baseline shares the canary's window. Errors name the option.
    """
    from kayenta_py.service.baseline_window import BaselineRequest, resolve_offset

    given = BaselineRequest(
        args.baseline_offset,
        None if args.baseline_start is None else parse_time(args.baseline_start, "--baseline-start"),
        None if args.baseline_end is None else parse_time(args.baseline_end, "--baseline-end"),
    )
    names = {"baseline_offset": "--baseline-offset", "baseline_start": "--baseline-start"}
    names["baseline_end"] = "--baseline-end"
    return resolve_offset(given, start_ts=start, end_ts=end, now=time.time(), fields=names)


def cli_thresholds(default: Thresholds, pass_: float | None, marginal: float | None) -> Thresholds | None:
    """Return ``default`` with ``--pass`` and ``--marginal`` applied (None: neither was given)."""
    if pass_ is None and marginal is None:
        return None
    return default.overridden({"pass": pass_, "marginal": marginal}, field=_THRESHOLD_OPTIONS)


_THRESHOLD_OPTIONS = {"pass": "--pass", "marginal": "--marginal"}


