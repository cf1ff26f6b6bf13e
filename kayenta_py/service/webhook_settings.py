"""The generic webhook notifier's settings: value types the service's :class:`Settings` declares.

``webhook_url`` (with ``webhook_secret`` and ``webhook_header``) is the default webhook;
``webhooks`` adds more by name, each a :class:`WebhookTarget`. The notifier itself is
:mod:`kayenta_py.integrations.webhook`; docs/webhooks.md says what it posts.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationInfo

from kayenta_py.service.settings_parsing import _CHANNEL_NAME, _webhook_url

DEFAULT_WEBHOOK = "default"
SIGNATURE_HEADER = "X-Kayenta-Signature-256"  # sha256=<hex HMAC-SHA256 of the body>
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")  # an HTTP token (RFC 9110)
_RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", SIGNATURE_HEADER.lower()})


def _empty_is_unset(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _secret_header(value: SecretStr) -> SecretStr:
    """A ``Name: value`` header (a secret: its value is never shown in an error)."""
    name, colon, text = value.get_secret_value().partition(":")
    name = name.strip()
    if not colon or not _HEADER_NAME.match(name) or not text.strip():
        raise ValueError("must be 'Name: value', e.g. 'Authorization: Bearer TOKEN' (the value is not shown)")
    if name.lower() in _RESERVED_HEADERS:
        raise ValueError(f"{name!r} is set by the notifier itself; use another header")
    if any(c in text for c in "\r\n\x00"):
        raise ValueError("the header value may not hold line breaks (the value is not shown)")
    return value


def _long_secret(value: SecretStr) -> SecretStr:
    if len(value.get_secret_value()) < 16:
        raise ValueError("an HMAC key needs at least 16 characters (the value is not shown)")
    return value


def _needs_default_url(value: Any, info: ValidationInfo) -> Any:
    if value is not None and info.data.get("webhook_url") is None:
        raise ValueError("needs webhook_url (it belongs to the default webhook; see also webhooks)")
    return value


def _webhook_name(value: str) -> str:
    if not _CHANNEL_NAME.match(value):
        raise ValueError(f"webhook name {value!r}: letters, digits, '_', '.', '-' (at most 100)")
    if value == DEFAULT_WEBHOOK:
        raise ValueError("'default' is the webhook of webhook_url; give this one another name")
    return value


WebhookURL = Annotated[SecretStr, AfterValidator(_webhook_url)]
"""An http(s) URL to post to (a SecretStr: credentials in it never show)."""
SecretHeader = Annotated[SecretStr, AfterValidator(_secret_header)]
"""A ``Name: value`` header sent with every post (a secret)."""
HmacKey = Annotated[SecretStr, AfterValidator(_long_secret)]
"""The key of the ``X-Kayenta-Signature-256`` HMAC-SHA256 signature of the body."""
WebhookName = Annotated[str, AfterValidator(_webhook_name)]

DefaultURL = Annotated[WebhookURL | None, BeforeValidator(_empty_is_unset)]
DefaultKey = Annotated[HmacKey | None, BeforeValidator(_empty_is_unset), AfterValidator(_needs_default_url)]
DefaultHeader = Annotated[
    SecretHeader | None, BeforeValidator(_empty_is_unset), AfterValidator(_needs_default_url)
]


class WebhookTarget(BaseModel):
    """A webhook by name: its URL, signature key, secret header, and which analyses it hears of."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    url: WebhookURL = Field(description="where finished analyses are posted (a secret)")
    secret: HmacKey | None = Field(None, description="HMAC-SHA256 key of the X-Kayenta-Signature-256 header")
    header: SecretHeader | None = Field(None, description="'Name: value' header sent with every post")
    configs: list[str] = Field(default_factory=list, description="only these configs (empty: every one)")
    verdicts: list[Literal["pass", "marginal", "fail"]] = Field(
        default_factory=list, description="only analyses ending with these verdicts (empty: every one)"
    )


Webhooks = dict[WebhookName, WebhookTarget]
"""The ``webhooks`` setting: more webhooks by name."""
