"""A metrics source owns its settings: a third-party source is set up, validated and built by the
service without the service naming it (kayenta_py/service/settings.py, service/sources.py)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from pydantic import BaseModel, Field, SecretStr

from kayenta_py.config.registry import Registry, use_registry
from kayenta_py.model.errors import ConfigError
from kayenta_py.model.redact import redact
from kayenta_py.plugin import MetricConfig, MetricSet, Scope
from kayenta_py.service.analyses import Service
from kayenta_py.service.settings import Settings, load_settings, setting_variables


class AcmeSettings(BaseModel):
    url: str | None = None
    token: SecretStr | None = None
    timeout: float = Field(5.0, gt=0)


class AcmeSource:
    """A third-party source: its settings are ``acme_*`` (``KAYENTA_ACME_*``)."""

    name = "acme"
    settings_prefix: ClassVar[str] = "acme"
    settings_model: ClassVar[type[BaseModel]] = AcmeSettings
    setup_hint: ClassVar[str] = "it needs acme_url (KAYENTA_ACME_URL)"

    def __init__(self, url: str, timeout: float) -> None:
        self.url, self.timeout = url, timeout

    @classmethod
    def _own(cls, settings: Mapping[str, Any]) -> AcmeSettings:
        return AcmeSettings.model_validate({k[5:]: v for k, v in settings.items() if k.startswith("acme_")})

    @classmethod
    def is_configured(cls, settings: Mapping[str, Any]) -> bool:
        return bool(cls._own(settings).url)

    @classmethod
    def endpoint(cls, settings: Mapping[str, Any]) -> str | None:
        return cls._own(settings).url

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> AcmeSource:
        own = cls._own(settings)
        assert own.url is not None
        return cls(own.url, own.timeout)

    def fetch(self, metric: MetricConfig, scope: Scope, *window: Any) -> list[MetricSet]:
        return [MetricSet(metric.name, np.ones(3))]


@pytest.fixture
def acme() -> Iterator[Registry]:
    registry = Registry().load_entry_points()
    registry.register_source(AcmeSource)
    with use_registry(registry):
        yield registry


def test_a_third_party_sources_settings_are_read_validated_and_built(
    acme: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "KAYENTA_ACME_URL" in setting_variables()
    monkeypatch.setenv("KAYENTA_ACME_URL", "http://acme.example:8080")
    monkeypatch.setenv("KAYENTA_ACME_TIMEOUT", "2.5")
    settings = load_settings(database_url=f"sqlite:///{tmp_path}/k.db", data_dir=tmp_path)
    own = settings.source_settings()["acme"]
    assert isinstance(own, AcmeSettings) and own.timeout == 2.5
    service = Service(settings, registry=acme)
    assert "acme" in service.source_names()
    assert service.default_source() == "acme"  # the only source its own settings set up
    source = service.source("acme")
    assert isinstance(source, AcmeSource)
    assert (source.url, source.timeout) == ("http://acme.example:8080", 2.5)
    assert service.source_endpoint("acme") == "http://acme.example:8080"


def test_a_third_party_sources_bad_or_misspelt_setting_is_an_error_naming_it(
    acme: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAYENTA_ACME_TIMEOUT", "-1")
    with pytest.raises(ConfigError, match="acme_timeout: "):
        load_settings()
    monkeypatch.delenv("KAYENTA_ACME_TIMEOUT")
    monkeypatch.setenv("KAYENTA_ACME_URLL", "http://acme.example")
    with pytest.raises(ConfigError, match="did you mean KAYENTA_ACME_URL"):
        load_settings()
    monkeypatch.delenv("KAYENTA_ACME_URLL")
    with pytest.raises(ConfigError, match=r"acme_tiemout: unknown setting; did you mean acme_timeout\?"):
        load_settings(acme_tiemout=3)


def test_default_source_must_be_set_up_by_its_own_settings(acme: Registry) -> None:
    with pytest.raises(ConfigError, match=r"default_source: 'acme' is not set up: it needs acme_url"):
        load_settings(default_source="acme")
    with pytest.raises(ConfigError, match="default_source: 'csv' is not a service source"):
        load_settings(default_source="csv")


def test_secrets_of_a_sources_settings_are_redacted(acme: Registry) -> None:
    from kayenta_py.model.redact import register_settings_secrets

    settings = Settings(acme_url="http://u:acmePASSWORD1@acme:1", acme_token=SecretStr("acmeTOKENsecret9"))
    register_settings_secrets(settings)
    text = redact("failed: http://u:acmePASSWORD1@acme:1 with acmeTOKENsecret9")
    assert "acmePASSWORD1" not in text and "acmeTOKENsecret9" not in text


def test_two_sources_set_up_and_no_default_is_an_error_naming_both(acme: Registry, tmp_path: Path) -> None:
    # Taking the first by name would move every analysis naming no source when a second is set up.
    base: dict[str, Any] = {"database_url": f"sqlite:///{tmp_path}/k.db", "data_dir": tmp_path}
    with pytest.raises(ConfigError, match=r"default_source: 2 sources are set up \(acme, prometheus\)"):
        load_settings(acme_url="http://acme.example", prometheus_url="http://prom.example", **base)
    both: dict[str, Any] = {"acme_url": "http://acme.example", "prometheus_url": "http://prom.example"}
    chosen = load_settings(default_source="prometheus", **both, **base)
    assert chosen.resolved_default_source() == "prometheus"
    only = load_settings(prometheus_url="http://prom.example", **base)
    assert only.resolved_default_source() == "prometheus"


def test_a_sources_secret_settings_are_masked_in_the_settings_repr(acme: Registry) -> None:
    settings = Settings(
        acme_url="http://acme.example", acme_token="acmeTOKENsecret9", prometheus_token="promTOKENsecret7"
    )
    for text in (repr(settings), str(settings)):
        assert "acmeTOKENsecret9" not in text and "promTOKENsecret7" not in text
        assert "acme_token=SecretStr('**********')" in text
    assert "http://acme.example" in repr(settings)  # only secrets are masked
