"""Secrets out of everything the service says: answers, log lines, reasons, reports, messages.

The security rule first: a secret the service knows (a token, a webhook URL, a password in
a URL it was configured with) never leaves it in clear, and a credential embedded in any URL
(``scheme://user:password@host``) is masked wherever that URL appears, known or not.
``redact`` is the one function every door and sink calls; ``RedactingFilter`` applies it to
log records. Test: ``tests/test_redact.py``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import urlsplit

MASK = "***"

# scheme://user:password@  or  scheme://token@  (userinfo before a host)
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/\s@'\"<>]+)@")
# ?password=..., &token=..., api_key=...: query parameters that name a secret
_SECRET_PARAM = re.compile(
    r"(?P<key>[?&;](?:[A-Za-z0-9_\-]*?)(?:password|passwd|secret|token|api[_-]?key|apikey|auth)"
    r"[A-Za-z0-9_\-]*=)(?P<value>[^&\s'\"<>#]+)",
    re.IGNORECASE,
)

_known: set[str] = set()
_lock = threading.Lock()


def register_secret(*secrets: str | None) -> None:
    """Remember values (tokens, webhook URLs, URLs with passwords) that must never be shown.

    A URL registers its password and, for a webhook, its path (the secret part) as well.
    Values shorter than 6 characters are ignored (they would mask ordinary words).
    """
    found: list[str] = []
    for secret in secrets:
        if not secret:
            continue
        found.append(secret)
        try:
            parts = urlsplit(secret)
        except ValueError:
            continue
        if parts.password:
            found.append(parts.password)
        webhook = parts.scheme in ("http", "https") and "hooks" in (parts.hostname or "")
        if webhook and len(parts.path) > 1:
            found.append(parts.path)
    with _lock:
        _known.update(s for s in found if len(s) >= 6)


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
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _SECRET_PARAM.sub(lambda m: f"{m['key']}{MASK}", text)


def redact_url(url: str) -> str:
    """A URL fit to show: its user information and secret query parameters masked."""
    return redact(url)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message (and any exception text) of a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Redact every record that reaches the root logger's handlers (idempotent)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
