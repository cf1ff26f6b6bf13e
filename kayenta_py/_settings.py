"""Service settings: environment (``KAYENTA_*``), a ``.env`` file, or a YAML file."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from kayenta_py._errors import ConfigError, ConfigIssue, KayentaError

SCOPES = ("read", "write")
_GO_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h|d))+$")
_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_GO_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_ISO_DURATION = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(value: str | float | int, what: str = "duration") -> float:
    """Parse an ISO 8601 duration (``PT30M``), a Go/Prometheus one (``1m30s``) or seconds into seconds."""
    if isinstance(value, bool):
        raise KayentaError(f"{what}: {value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().upper()
        match = _ISO_DURATION.match(text)
        if match and text not in ("P", "PT") and not text.endswith("T"):
            parts = {k: float(v) for k, v in match.groupdict().items() if v}
            seconds = (
                parts.get("days", 0) * 86400
                + parts.get("hours", 0) * 3600
                + parts.get("minutes", 0) * 60
                + parts.get("seconds", 0)
            )
        elif _GO_DURATION.match(value.strip()):
            seconds = sum(float(n) * _GO_UNITS[unit] for n, unit in _GO_PART.findall(value.strip()))
        else:
            try:
                seconds = float(text)
            except ValueError:
                raise KayentaError(
                    f"{what}: {value!r} is not a duration (ISO 8601 like PT30M, 1m30s, or seconds)"
                ) from None
    if seconds < 0 or seconds != seconds:
        raise KayentaError(f"{what}: {value!r} is negative")
    return seconds


@dataclass(frozen=True)
class ApiToken:
    """A bearer token and the scope it grants (``write`` implies ``read``)."""

    token: SecretStr
    scope: str

    def allows(self, scope: str) -> bool:
        """Return whether this token grants ``scope``."""
        return self.scope == "write" or scope == self.scope


class Settings(BaseSettings):
    """Settings of the kayenta-py service; every field can be set as ``KAYENTA_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="KAYENTA_", env_file=".env", extra="forbid")

    data_dir: Path = Field(Path("kayenta-data"), description="where the SQLite database lives")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in data_dir")
    prometheus_url: str | None = Field(None, description="the default Prometheus source")
    prometheus_token: SecretStr | None = Field(None, description="bearer token for that Prometheus")
    prometheus_timeout: float = Field(10.0, gt=0)
    prometheus_retries: int = Field(3, ge=0)
    api_tokens: SecretStr | None = Field(
        None, description="comma-separated SCOPE:TOKEN entries, SCOPE read or write"
    )
    host: str = "127.0.0.1"
    port: int = Field(8090, ge=0, le=65535)
    max_body_bytes: int = Field(1_048_576, gt=0, description="largest request body accepted")
    default_source: str | None = Field(None, description="source of analyses that name none")
    fetch_concurrency: int = Field(8, ge=1, le=256)
    public_url: str | None = Field(None, description="base of links in answers and reports")
    source_retry_limit: int = Field(3, ge=1, description="failed fetches of one interval before it fails")
    compat_endpoints_open: bool = Field(
        False, description="Kayenta-compatible and Flagger endpoints need no token (clients send none)"
    )

    @field_validator("api_tokens")
    @classmethod
    def _valid_tokens(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_tokens(value.get_secret_value())
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read init arguments, then the environment, ``.env``, and ``$KAYENTA_SETTINGS_FILE`` (YAML)."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        yaml_file = os.environ.get("KAYENTA_SETTINGS_FILE")
        if yaml_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        return tuple(sources)

    @property
    def resolved_database_url(self) -> str:
        """Return the database URL, defaulting to SQLite under ``data_dir``."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'kayenta.db').resolve()}"

    def tokens(self) -> list[ApiToken]:
        """Return the configured API tokens."""
        return parse_tokens(self.api_tokens.get_secret_value()) if self.api_tokens else []


def parse_tokens(text: str) -> list[ApiToken]:
    """Parse ``read:abc,write:def`` into tokens; a malformed entry is an error (never echoing it)."""
    tokens = []
    for position, entry in enumerate(filter(None, (e.strip() for e in text.split(","))), start=1):
        scope, sep, token = entry.partition(":")
        if not sep or scope not in SCOPES or len(token) < 8:
            raise ValueError(
                f"api_tokens entry {position} must be SCOPE:TOKEN with SCOPE read or write "
                "and a token of at least 8 characters"
            )
        tokens.append(ApiToken(SecretStr(token), scope))
    return tokens


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load settings from the environment, ``.env`` and the YAML file ``path`` (or $KAYENTA_SETTINGS_FILE)."""
    previous = os.environ.get("KAYENTA_SETTINGS_FILE")
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError([ConfigIssue("", "settings file not found")], source=str(path))
        os.environ["KAYENTA_SETTINGS_FILE"] = str(path)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        issues = [
            ConfigIssue(".".join(str(p) for p in error["loc"]), _message(error)) for error in exc.errors()
        ]
        raise ConfigError(issues, source=str(path) if path else "settings") from None
    finally:
        if path is not None:
            if previous is None:
                os.environ.pop("KAYENTA_SETTINGS_FILE", None)
            else:
                os.environ["KAYENTA_SETTINGS_FILE"] = previous


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown setting"
    return str(error["msg"])
