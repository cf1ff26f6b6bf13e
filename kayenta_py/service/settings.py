"""Service settings: environment (``KAYENTA_*``), a ``.env`` file, or a YAML file.

The service's own settings are the fields of :class:`Settings`. Each metrics source with a
``settings_model`` adds its own, read as ``<settings_prefix>_<field>`` (``prometheus_url``,
``KAYENTA_PROMETHEUS_URL``) and validated by that model (:meth:`Settings.source_settings`);
the service names no source. Every other key is an error that names it.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from kayenta_py.config.registry import default_registry, did_you_mean
from kayenta_py.model.errors import ConfigError, ConfigIssue
from kayenta_py.model.limits import Limits
from kayenta_py.service import webhook_settings as hooks
from kayenta_py.service.settings_parsing import (  # ApiToken, parse_tokens: re-exported
    _CHANNEL_NAME,
    ApiToken,
    _cron,
    _webhook_url,
    parse_tokens,
)
from kayenta_py.service.source_settings import (
    ENV_PREFIX,
    SourceSettingsEnvironment,
    secret_source_fields,
    source_setting_fields,
    source_settings_models,
    validate_source_settings,
)
from kayenta_py.service.sources import (
    ambiguous_default_source,
    first_set_up_source,
    is_configured,
    is_service_source,
)

# KAYENTA_* variables that are not settings but are read by this project's own tooling; every
# other unknown KAYENTA_* variable is an error at start (a misspelt setting must not be ignored).
TOOLING_VARIABLES: dict[str, str] = {
    "KAYENTA_SETTINGS_FILE": "the YAML settings file (like --settings)",
    "KAYENTA_TEST_POSTGRES_URL": "the test suite's PostgreSQL",
    "KAYENTA_CONFORMANCE_FILE": "the test suite's Kayenta conformance vectors",
    "KAYENTA_NOTEBOOK_SMALL": "quick runs of the notebooks",
    "KAYENTA_NAB_DIR": "the notebooks' NAB data",
    "KAYENTA_BENCH_TOKEN": "the verdict-endpoint benchmark's token",
    "KAYENTA_BENCH_POSTGRES": "the capacity benchmark's PostgreSQL server",
}
# Kubernetes injects <SERVICE>_SERVICE_HOST, <SERVICE>_PORT_8090_TCP... for a Service named "kayenta".
_SERVICE_LINK = re.compile(
    r"^KAYENTA_(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT_\d+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)$"
)


class SlackChannel(BaseModel):
    """An extra Slack channel: its incoming webhook, which analyses it hears of, and its digest."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    webhook_url: SecretStr = Field(description="the channel's incoming-webhook URL (a secret)")
    digest_cron: str | None = Field(None, description="five-field cron of the channel's digest")
    configs: list[str] = Field(
        default_factory=list, description="only analyses of these config names (default: all)"
    )
    verdicts: list[Literal["pass", "marginal", "fail"]] = Field(
        default_factory=list, description="only analyses ending with these verdicts (default: all)"
    )

    @field_validator("webhook_url")
    @classmethod
    def _valid_url(cls, value: SecretStr) -> SecretStr:
        return _webhook_url(value)

    @field_validator("digest_cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        return _cron(value)


class Settings(BaseSettings):
    """Settings of the kayenta-py service; every field can be set as ``KAYENTA_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="KAYENTA_", env_file=".env", extra="allow", hide_input_in_errors=True
    )

    data_dir: Path = Field(Path("kayenta-data"), description="where the SQLite database lives")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in data_dir")
    api_tokens: SecretStr | None = Field(
        None, description="comma-separated SCOPE:TOKEN entries, SCOPE read or write"
    )
    host: str = "127.0.0.1"
    port: int = Field(8090, ge=0, le=65535)
    max_body_bytes: int = Field(1_048_576, gt=0, description="largest request body accepted")
    default_source: str | None = Field(
        None,
        description="source of analyses that name none (default: the one source its own settings "
        "set up, prometheus when only prometheus_url is set; required when several are; with none, "
        "such analyses are refused); demo serves generated data",
    )
    fetch_concurrency: int = Field(8, ge=1, le=256)
    public_url: str | None = Field(None, description="base of links in answers and reports")
    source_retry_limit: int = Field(
        3, ge=1, description="attempts of an interval on a transient error before the analysis fails"
    )
    fetch_deadline: float = Field(120.0, gt=0, description="total seconds of one interval's fetch")
    source_workers: int = Field(4, ge=1, le=256, description="scheduler threads per metrics source")
    retry_backoff: float = Field(2.0, gt=0, description="first wait before a retry; doubles each time")
    retry_max_delay: float = Field(60.0, gt=0, description="longest wait between retries")
    retry_max_seconds: float = Field(600.0, gt=0, description="total retry time before the analysis fails")
    # Dispatch of intervals (kayenta_py/service/dispatch.py, docs/replicas.md).
    dispatch: Literal["auto", "embedded", "procrastinate"] = Field(
        "auto", description="who runs due intervals: auto (procrastinate on PostgreSQL, else embedded), "
        "embedded (this process only), procrastinate (PostgreSQL jobs shared by every replica)",
    )
    replica_id: str | None = Field(None, description="this replica in logs, metrics (default host-pid)")
    dispatch_concurrency: int = Field(8, ge=1, le=256, description="intervals a worker judges at once")
    dispatch_poll_interval: float = Field(1.0, gt=0, le=60, description="seconds between looks for due jobs")
    dispatch_heartbeat: float = Field(5.0, gt=0, le=300, description="seconds between a worker's heartbeats")
    dispatch_stalled_timeout: float = Field(
        20.0, gt=0, le=3600, description="seconds without heartbeat before a replica's jobs go to another"
    )
    dispatch_shutdown_timeout: float = Field(
        15.0, ge=0, le=600, description="seconds a stopping replica waits for its running intervals"
    )
    outbox_retention: float = Field(7 * 86400.0, gt=0, description="seconds expanded outbox events are kept")
    compat_endpoints_open: bool = Field(
        False, description="Kayenta-compatible and Flagger endpoints need no token (clients send none)"
    )
    slack_webhook_url: SecretStr | None = Field(
        None, description="incoming-webhook URL of the default Slack channel (a secret)"
    )
    slack_digest_cron: str | None = Field(
        None, description="five-field cron of the default channel's digest, e.g. '0 9 * * 1-5'"
    )
    slack_digest_timezone: str = Field("UTC", description="time zone of the digest crons")
    slack_channels: dict[str, SlackChannel] = Field(
        default_factory=dict, description="extra Slack channels by name (JSON in the environment)"
    )
    slack_retries: int = Field(2, ge=0, le=10, description="immediate retries of a Slack post (429, 5xx)")
    slack_max_attempts: int = Field(8, ge=1, description="delivery attempts before a message is failed")
    slack_delivery_interval: float = Field(
        30.0, gt=0, description="seconds between deliveries of pending Slack messages"
    )
    # The generic webhook notifier (kayenta_py/integrations/webhook.py, docs/webhooks.md).
    webhook_url: hooks.DefaultURL = Field(None, description="where the default webhook posts to")
    webhook_secret: hooks.DefaultKey = Field(None, description="its HMAC-SHA256 signing key")
    webhook_header: hooks.DefaultHeader = Field(None, description="'Name: value' secret header of its posts")
    webhooks: hooks.Webhooks = Field(default_factory=dict, description="more webhooks by name (JSON)")
    webhook_timeout: float = Field(10.0, gt=0, le=300, description="seconds one webhook post may take")
    webhook_retries: int = Field(2, ge=0, le=10, description="immediate retries of a webhook post (429, 5xx)")
    webhook_max_attempts: int = Field(8, ge=1, description="delivery attempts of a webhook message")
    webhook_delivery_interval: float = Field(30.0, gt=0, description="seconds between webhook deliveries")
    # Limits on requests, checked at every door before anything is stored (kayenta_py/model/limits.py).
    max_start_ahead: float = Field(
        30 * 86400.0, ge=0, le=100 * 365 * 86400.0, description="seconds an analysis may start in the future"
    )
    max_lifetime: float = Field(
        90 * 86400.0,
        gt=0,
        le=100 * 365 * 86400.0,
        description="longest lifetime, interval, warmup and lookback of an analysis, in seconds",
    )
    max_step: float = Field(86400.0, gt=0, le=100 * 365 * 86400.0, description="largest step, in seconds")
    max_intervals: int = Field(10_000, ge=1, le=1_000_000, description="most intervals in an analysis")
    max_points_per_series: int = Field(
        1_000_000, ge=1, le=100_000_000, description="most points per series over an analysis"
    )
    max_name_chars: int = Field(
        200, ge=1, le=200, description="longest config name, Kayenta config id, location and source"
    )
    max_scope_chars: int = Field(500, ge=1, le=500, description="longest scope and scope parameter")
    max_json_depth: int = Field(32, ge=2, le=200, description="deepest nesting of a config or request")
    max_json_bytes: int = Field(262_144, ge=1024, description="largest config or request, as JSON bytes")

    @field_validator(
        "slack_webhook_url",
        "slack_digest_cron",
        "default_source",
        "database_url",
        "replica_id",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _sources_are_set_up(self) -> Settings:
        models = source_settings_models()
        for key in self.model_extra or {}:
            if key not in source_setting_fields(models):
                raise ValueError(f"{key}: unknown setting{did_you_mean(key, setting_names())}")
        self.source_settings()  # each source's settings are valid
        if self.default_source is not None:
            registry = default_registry()
            if self.default_source not in registry.source_names() or not is_service_source(
                registry, self.default_source
            ):
                known = ", ".join(n for n in registry.source_names() if is_service_source(registry, n))
                raise ValueError(f"default_source: {self.default_source!r} is not a service source ({known})")
            cls = registry.source_class(self.default_source)
            if not is_configured(cls, self.model_dump()):
                hint = getattr(cls, "setup_hint", "its settings are not set")
                raise ValueError(f"default_source: {self.default_source!r} is not set up: {hint}")
        elif (problem := ambiguous_default_source(default_registry(), self.model_dump())) is not None:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _dispatch_fits(self) -> Settings:
        if self.dispatch == "procrastinate" and not self.resolved_database_url.startswith("postgresql"):
            raise ValueError("dispatch: 'procrastinate' needs a PostgreSQL database_url")
        if self.dispatch_stalled_timeout <= 2 * self.dispatch_heartbeat:
            raise ValueError(
                f"dispatch_stalled_timeout: {self.dispatch_stalled_timeout:g} s must be more than twice "
                f"dispatch_heartbeat ({self.dispatch_heartbeat:g} s), or live replicas look dead"
            )
        if self.replica_id is not None and not re.fullmatch(r"[\w.:@-]{1,100}", self.replica_id):
            raise ValueError(f"replica_id: {self.replica_id!r}: letters, digits, '_.:@-' (at most 100)")
        return self

    @field_validator("slack_webhook_url")
    @classmethod
    def _valid_webhook(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else _webhook_url(value)

    @field_validator("slack_digest_cron")
    @classmethod
    def _valid_digest_cron(cls, value: str | None) -> str | None:
        return _cron(value)

    @field_validator("slack_digest_timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone name (like UTC or Europe/Berlin)") from None
        return value

    @field_validator("slack_channels")
    @classmethod
    def _valid_channel_names(cls, value: dict[str, SlackChannel]) -> dict[str, SlackChannel]:
        for name in value:
            if not _CHANNEL_NAME.match(name):
                raise ValueError(f"channel name {name!r}: letters, digits, '_', '.', '-' (at most 100)")
        return value

    @model_validator(mode="after")
    def _default_channel_once(self) -> Settings:
        if self.slack_webhook_url is not None and "default" in self.slack_channels:
            raise ValueError(
                "slack_channels: 'default' is the channel of slack_webhook_url; give the extra channel "
                "another name"
            )
        if self.slack_digest_cron is not None and self.slack_webhook_url is None:
            raise ValueError("slack_digest_cron: needs slack_webhook_url (the default channel)")
        return self

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
        """Read init arguments, then the environment, ``.env``, and ``$KAYENTA_SETTINGS_FILE`` (YAML).

        An unknown ``KAYENTA_*`` environment variable is an error (:func:`environment_issues`).
        """
        issues = environment_issues(os.environ)
        if issues:
            raise ConfigError(issues, source="environment")
        env_file = settings_cls.model_config.get("env_file")
        if isinstance(env_file, str) and Path(env_file).is_file():
            issues = environment_issues({k: v or "" for k, v in dotenv_values(env_file).items()})
            if issues:
                raise ConfigError(issues, source=env_file)
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            env_settings,
            SourceSettingsEnvironment(settings_cls),
            dotenv_settings,
        ]
        yaml_file = os.environ.get("KAYENTA_SETTINGS_FILE")
        if yaml_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        return tuple(sources)

    @property
    def resolved_database_url(self) -> str:
        """Return the database URL, defaulting to SQLite under ``data_dir``."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'kayenta.db').resolve()}"

    @property
    def resolved_replica_id(self) -> str:
        """Return the replica id, defaulting to ``hostname-pid``."""
        return self.replica_id or f"{socket.gethostname()}-{os.getpid()}"

    @property
    def limits(self) -> Limits:
        """Return the request limits these settings give."""
        return Limits(
            max_start_ahead_s=self.max_start_ahead,
            max_lifetime_s=self.max_lifetime,
            max_step_s=self.max_step,
            max_intervals=self.max_intervals,
            max_points_per_series=self.max_points_per_series,
            max_name_chars=self.max_name_chars,
            max_scope_chars=self.max_scope_chars,
            max_json_depth=self.max_json_depth,
            max_json_bytes=self.max_json_bytes,
        )

    def tokens(self) -> list[ApiToken]:
        """Return the configured API tokens."""
        return parse_tokens(self.api_tokens.get_secret_value()) if self.api_tokens else []

    def resolved_default_source(self) -> str | None:
        """Return the source of analyses naming none: the setting, else the one source that its own
        settings set up (prometheus when only prometheus_url is set; several: refused), else None."""
        return self.default_source or first_set_up_source(default_registry(), self.model_dump())

    def source_settings(self) -> dict[str, BaseModel]:
        """Return each source's own settings (by prefix), validated by its ``settings_model``."""
        return validate_source_settings(self.model_extra or {})

    def __repr_args__(self) -> Any:
        """Fields and extra keys as pydantic shows them, the sources' secrets masked like SecretStr's."""
        secret = secret_source_fields()
        for key, value in super().__repr_args__():
            yield key, (SecretStr(str(value)) if key in secret and value is not None else value)


def setting_names() -> list[str]:
    """Return every setting's key: the service's own, then the sources'."""
    return [*Settings.model_fields, *source_setting_fields()]


def setting_variables() -> list[str]:
    """Return the environment variable of every setting (``KAYENTA_PROMETHEUS_URL``...)."""
    return [ENV_PREFIX + name.upper() for name in setting_names()]


def environment_issues(environ: Mapping[str, str]) -> list[ConfigIssue]:
    """Return a problem for every ``KAYENTA_*`` variable that is neither a setting nor a tooling variable.

    Names are compared in upper case, as the settings read them case-insensitively.
    """
    known = set(setting_variables()) | set(TOOLING_VARIABLES)
    issues = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known:
            continue
        if _SERVICE_LINK.match(upper):
            hint = (
                "; a Kubernetes service link (a Service named 'kayenta'): set enableServiceLinks: false "
                "in the pod spec, or name the Service otherwise"
            )
        else:
            hint = did_you_mean(upper, sorted(known))
        issues.append(ConfigIssue(name, f"unknown environment variable (not a kayenta-py setting){hint}"))
    return issues


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
        key = str(error["loc"][-1]) if error["loc"] else ""
        if key.upper().startswith(ENV_PREFIX):  # a variable of the .env file
            return "unknown setting" + did_you_mean(key.upper(), setting_variables())
        return "unknown setting" + did_you_mean(key, setting_names())
    return str(error["msg"]).removeprefix("Value error, ")
