"""Secrets out of everything the service says: answers, log lines, reasons, reports, messages.

The security rule first: a secret the service knows (a token, a webhook URL, a password in
a URL it was configured with) never leaves it in clear, and a credential embedded in any URL
(``scheme://user:password@host``) is masked wherever that URL appears, known or not.
``redact`` is the one function every door and sink calls; ``RedactingFilter`` applies it to
log records, ``install_log_redaction`` to every handler, ``install_excepthooks`` to tracebacks
printed outside logging. ``register_settings_secrets`` registers what a service is configured
with. Tests: ``tests/test_redact.py``, ``tests/test_secrets.py`` (a live service).
"""

from __future__ import annotations

import base64
import logging
import re
import sys
import threading
import traceback
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"
MIN_SECRET = 6  # shorter values are not registered (they would mask ordinary words)

# scheme://user:password@  or  scheme://token@  (userinfo before a host)
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/\s@'\"<>]+)@")
# ?password=..., &token=..., api_key=...: query parameters that name a secret
_SECRET_WORDS = r"(?:password|passwd|secret|token|api[_-]?key|apikey|auth)"
_SECRET_PARAM = re.compile(
    rf"(?P<key>[?&;](?:[A-Za-z0-9_\-]*?){_SECRET_WORDS}[A-Za-z0-9_\-]*=)(?P<value>[^&\s'\"<>#]+)",
    re.IGNORECASE,
)
_SECRET_KEY = re.compile(_SECRET_WORDS, re.IGNORECASE)

_known: set[str] = set()
_lock = threading.Lock()


def _url_secrets(url: str) -> list[str]:
    """The secret parts of a URL: its password (as written, decoded, and as HTTP basic auth) and
    the values of query parameters that name a secret."""
    try:
        parts = urlsplit(url)
        password = parts.password
        query = parse_qsl(parts.query, keep_blank_values=False)
    except ValueError:
        return []
    found: list[str] = []
    if password:
        found += [password, unquote(password)]
        user = unquote(parts.username or "")
        found.append(base64.b64encode(f"{user}:{unquote(password)}".encode()).decode())
    found += [value for key, value in query if _SECRET_KEY.search(key)]
    return found


def register_secret(*secrets: str | None) -> None:
    """Remember values (tokens, webhook URLs, URLs with passwords) that must never be shown.

    A URL registers its password (and the secret query parameters) and, for a webhook, its path
    (the secret part) as well. Values shorter than 6 characters are ignored (they would mask
    ordinary words).
    """
    found: list[str] = []
    for secret in secrets:
        if not secret:
            continue
        found.append(secret)
        found += _url_secrets(secret)
        try:
            parts = urlsplit(secret)
        except ValueError:
            continue
        webhook = parts.scheme in ("http", "https") and "hooks" in (parts.hostname or "")
        if webhook and len(parts.path) > 1:
            found.append(parts.path)
    _remember(found)


def register_webhook(url: str | None) -> None:
    """Remember a webhook URL and its path (the secret part), whatever its host."""
    if not url:
        return
    register_secret(url)
    try:
        path = urlsplit(url).path
    except ValueError:
        return
    if len(path) > 1:
        _remember([path, path.lstrip("/")])


def register_url(url: str | None) -> None:
    """Remember the secret parts of a URL (password, secret query parameters), not the URL itself.

    For URLs that are shown (masked) rather than hidden: a source's or a database's address.
    """
    if url:
        _remember(_url_secrets(url))


def register_settings_secrets(settings: Any) -> None:
    """Register every secret a service's settings hold (a :class:`kayenta_py.service.settings.Settings`).

    API tokens, every secret of the sources' own settings (the Prometheus token), the passwords
    in their URLs (fields named ``url`` or ``*_url``) and the database URL, and the Slack
    webhook URLs (with their paths).
    """
    for token in settings.tokens():
        register_secret(token.token.get_secret_value())
    for own in settings.source_settings().values():
        for name, value in own:
            if hasattr(value, "get_secret_value"):
                register_secret(value.get_secret_value())
            elif isinstance(value, str) and (name == "url" or name.endswith("_url")):
                register_url(value)
    register_url(settings.database_url)
    if settings.slack_webhook_url is not None:
        register_webhook(settings.slack_webhook_url.get_secret_value())
    for channel in settings.slack_channels.values():
        register_webhook(channel.webhook_url.get_secret_value())


def _remember(values: Iterable[str]) -> None:
    with _lock:
        _known.update(v for v in values if len(v) >= MIN_SECRET)


def known_secrets() -> Iterable[str]:
    with _lock:
        return sorted(_known, key=len, reverse=True)


def redact(text: str) -> str:
    """Return ``text`` with URL credentials, secret query parameters and known secrets masked."""
    if not text:
        return text
    for secret in known_secrets():
        if secret in text:
            text = text.replace(secret, MASK)
    text = _USERINFO.sub(_masked_userinfo, text)
    return _SECRET_PARAM.sub(lambda m: f"{m['key']}{MASK}", text)


def _masked_userinfo(match: re.Match[str]) -> str:
    """``user:password@`` keeps the user (it says which account); ``token@`` is all secret."""
    user, colon, _secret = match["userinfo"].partition(":")
    return f"{match['scheme']}{user}:{MASK}@" if colon else f"{match['scheme']}{MASK}@"


def redact_url(url: str) -> str:
    """A URL fit to show: its user information and secret query parameters masked."""
    return redact(url)


def redact_json(value: Any) -> Any:
    """Return a JSON-like value (dicts, lists, strings) with every string (keys too) redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redact(k) if isinstance(k, str) else k: redact_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_json(v) for v in value]
    return value


def _redact_arg(value: Any) -> Any:
    """A log argument, redacted if a string; other objects are left to the formatted message's check."""
    return redact(value) if isinstance(value, str) else value


class RedactingFilter(logging.Filter):
    """A logging filter that redacts a record's message, arguments, exception text and stack.

    Arguments are redacted one by one and keep their shape (uvicorn's access formatter unpacks
    them); should the formatted message still show a secret, it replaces message and arguments.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler's error report
            return True
        cleaned = redact(message)
        if cleaned != message or not isinstance(record.msg, str):
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add a :class:`RedactingFilter` to every handler (idempotent).

    With ``logger``: its handlers. Without: the root logger's and those of every logger created
    so far (uvicorn's own loggers do not propagate to the root).
    """
    if logger is not None:
        targets = [logger]
    else:
        others = logging.Logger.manager.loggerDict.values()
        targets = [logging.getLogger(), *(lg for lg in others if isinstance(lg, logging.Logger))]
    for target in targets:
        for handler in target.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())


def _print_redacted(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    text = "".join(traceback.format_exception(exc_type, exc, tb))
    print(redact(text), file=sys.stderr, end="", flush=True)


def _thread_hook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    name = args.thread.name if args.thread is not None else "?"
    print(f"Exception in thread {name}:", file=sys.stderr)
    _print_redacted(args.exc_type, args.exc_value, args.exc_traceback)


def install_excepthooks() -> None:
    """Redact tracebacks Python prints itself (an uncaught exception, in the main thread or another)."""
    sys.excepthook = _print_redacted
    threading.excepthook = _thread_hook
