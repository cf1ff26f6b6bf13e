"""Unit tests of :mod:`kayenta_py.model.redact`: URLs, registered secrets, JSON, log records, tracebacks.

The live counterpart (a real service, its answers, log, Slack posts and database) is
``tests/test_secrets.py``.
"""

from __future__ import annotations

import base64
import io
import logging
import subprocess
import sys
import textwrap

from pydantic import SecretStr
from uvicorn.logging import AccessFormatter

from kayenta_py.model.redact import (
    MASK,
    RedactingFilter,
    install_log_redaction,
    redact,
    redact_json,
    redact_url,
    register_secret,
    register_settings_secrets,
    register_url,
    register_webhook,
)
from kayenta_py.service.settings import Settings, SlackChannel


def test_url_credentials_are_masked_known_or_not() -> None:
    shown = redact_url("http://alice:Unregistered9@prom.example:9090/api/v1/query?x=1")
    assert shown == f"http://alice:{MASK}@prom.example:9090/api/v1/query?x=1"  # the user says which account
    assert redact("error at postgresql+psycopg://bob:pw-in-text@db:5432/k: refused") == (
        f"error at postgresql+psycopg://bob:{MASK}@db:5432/k: refused"
    )
    assert redact_url("https://prom.example/api?access_token=abc123&step=60") == (
        f"https://prom.example/api?access_token={MASK}&step=60"
    )
    assert redact_url("http://prom.example:9090") == "http://prom.example:9090"  # nothing to hide
    # a token alone as the user information is all secret
    assert redact_url("https://glpat-Token123@git.example/x") == f"https://{MASK}@git.example/x"


def test_a_registered_url_password_is_masked_alone_encoded_and_as_basic_auth() -> None:
    register_url("http://carol:p%40ssW0rd-carol@prom.internal:9090")
    assert redact("auth failed for p%40ssW0rd-carol") == f"auth failed for {MASK}"
    assert redact("auth failed for p@ssW0rd-carol") == f"auth failed for {MASK}"
    basic = base64.b64encode(b"carol:p@ssW0rd-carol").decode()
    assert redact(f"Authorization: Basic {basic}") == f"Authorization: Basic {MASK}"
    # the URL itself is shown, masked, not hidden: its host stays readable
    assert redact("http://carol:p%40ssW0rd-carol@prom.internal:9090") == f"http://carol:{MASK}@prom.internal:9090"
    assert redact("http://prom.internal:9090") == "http://prom.internal:9090"


def test_a_webhook_path_is_a_secret_whatever_the_host() -> None:
    url = "http://127.0.0.1:5999/services/T0REDACT/B0REDACT/wbhkSecretPart"
    register_webhook(url)
    assert redact(f"POST {url} failed") == f"POST {MASK} failed"
    assert redact("404 for /services/T0REDACT/B0REDACT/wbhkSecretPart") == f"404 for {MASK}"
    assert "wbhkSecretPart" not in redact("path services/T0REDACT/B0REDACT/wbhkSecretPart")


def test_short_values_are_not_registered() -> None:
    register_secret("abc", "", None)
    assert redact("abc is a word") == "abc is a word"


def test_every_secret_of_the_settings_is_registered() -> None:
    settings = Settings(
        api_tokens=SecretStr("read:readTOKENaaaa1,write:writeTOKENbbbb2"),
        prometheus_url="http://dave:promPASSdave@prom:9090",
        prometheus_token=SecretStr("promBEARERtoken3"),
        database_url="postgresql+psycopg://eve:dbPASSeve@db:5432/kayenta",
        slack_webhook_url=SecretStr("https://hooks.slack.com/services/TSET/BSET/defaultHOOKsecret"),
        slack_channels={
            "ops": SlackChannel(webhook_url=SecretStr("http://127.0.0.1:1/services/TOPS/BOPS/opsHOOKsecret"))
        },
    )
    register_settings_secrets(settings)
    text = (
        "readTOKENaaaa1 writeTOKENbbbb2 promPASSdave promBEARERtoken3 dbPASSeve "
        "/services/TSET/BSET/defaultHOOKsecret /services/TOPS/BOPS/opsHOOKsecret"
    )
    assert redact(text) == " ".join([MASK] * 7)
    assert redact("prom:9090 and db:5432") == "prom:9090 and db:5432"


def test_json_values_keys_and_nesting_are_redacted() -> None:
    register_secret("jsonSECRETvalue")
    document = {
        "endpoint": {"baseUrl": "http://u:p4ssword@h:1"},
        "list": ["jsonSECRETvalue", 3, None, True],
        "jsonSECRETvalue": 1.5,
    }
    assert redact_json(document) == {
        "endpoint": {"baseUrl": f"http://u:{MASK}@h:1"},
        "list": [MASK, 3, None, True],
        MASK: 1.5,
    }


def _logger(name: str, formatter: logging.Formatter | None = None) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter or logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    install_log_redaction(logger)
    return logger, stream


def test_log_messages_arguments_and_tracebacks_are_redacted() -> None:
    register_secret("logSECRETtoken")
    logger, stream = _logger("test_redact.app")
    logger.warning("fetch %s failed: %r", "http://u:logPASSword@h/q", ValueError("logSECRETtoken"))
    try:
        raise RuntimeError("boom with http://u:tracePASSword@h/q")
    except RuntimeError:
        logger.exception("query failed (token %s)", "logSECRETtoken")
    logger.info("%(url)s answered", {"url": "http://x:mapPASSword@h"})
    out = stream.getvalue()
    for secret in ("logPASSword", "logSECRETtoken", "tracePASSword", "mapPASSword"):
        assert secret not in out, out
    assert "RuntimeError: boom with http://u:***@h/q" in out  # the traceback is kept, redacted
    assert f"fetch http://u:{MASK}@h/q failed: ValueError('{MASK}')" in out


def test_uvicorn_access_records_keep_their_arguments() -> None:
    """uvicorn's access formatter unpacks the record's arguments: redaction must keep the tuple."""
    register_secret("accessTOKENvalue")
    logger, stream = _logger(
        "test_redact.access", AccessFormatter("%(client_addr)s %(request_line)s %(status_code)s")
    )
    logger.info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/api?token=accessTOKENvalue&x=1", "1.1", 200
    )
    out = stream.getvalue()
    assert out.strip() == f"127.0.0.1:5000 GET /api?token={MASK}&x=1 HTTP/1.1 200 OK", out


def test_filter_is_installed_once_per_handler() -> None:
    logger, _ = _logger("test_redact.once")
    install_log_redaction(logger)
    install_log_redaction(logger)
    assert sum(isinstance(f, RedactingFilter) for f in logger.handlers[0].filters) == 1


def test_uncaught_exceptions_print_redacted_tracebacks() -> None:
    """A real interpreter: an uncaught exception in a thread and in the main thread."""
    program = textwrap.dedent(
        """
        import threading
        from kayenta_py.model.redact import install_excepthooks, register_secret
        register_secret("hookSECRETvalue")
        install_excepthooks()
        def work():
            raise ValueError("thread saw hookSECRETvalue and http://u:hookPASSword@h")
        thread = threading.Thread(target=work, name="worker")
        thread.start()
        thread.join()
        raise KeyError("main saw hookSECRETvalue")
        """
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "hookSECRETvalue" not in done.stderr and "hookPASSword" not in done.stderr, done.stderr
    assert "Exception in thread worker:" in done.stderr
    assert f"ValueError: thread saw {MASK} and http://u:{MASK}@h" in done.stderr
    assert f"KeyError: 'main saw {MASK}'" in done.stderr
