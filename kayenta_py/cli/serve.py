"""The serve command: the HTTP service on one socket, its log redaction, migrations and banner."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import Any

from kayenta_py._version import __version__
from kayenta_py.cli.options import EXIT_INTERNAL, EXIT_PASS, _without_credentials
from kayenta_py.config.registry import Registry
from kayenta_py.model.errors import KayentaError


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
    else:
        source = f"{default} ({_without_credentials(service.describe_source(default))})"
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


