"""The metrics sources' own settings inside the service's: ``<settings_prefix>_<field>`` keys.

A source with a ``settings_model`` (see :mod:`kayenta_py.service.sources`) adds its fields to the
service's settings, read from the environment as ``KAYENTA_<PREFIX>_<FIELD>`` like any other.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_settings import PydanticBaseSettingsSource

from kayenta_py.config.registry import default_registry

ENV_PREFIX = "KAYENTA_"
"""The prefix of every setting's environment variable."""


def source_settings_models() -> dict[str, type[BaseModel]]:
    """Return the settings model of every registered source that has one, by settings prefix."""
    registry = default_registry()
    out: dict[str, type[BaseModel]] = {}
    for name in registry.source_names():
        cls = registry.source_class(name)
        model = getattr(cls, "settings_model", None)
        if model is not None:
            out[str(getattr(cls, "settings_prefix", name))] = model
    return out


def validate_source_settings(given: Mapping[str, Any]) -> dict[str, BaseModel]:
    """Return each source's own settings (by prefix) from the service's extra keys, validated.

    Raises ``ValueError`` naming the first bad key (``<prefix>_<field>: ...``), never its value.
    """
    out: dict[str, BaseModel] = {}
    for prefix, model in source_settings_models().items():
        mine = {k.removeprefix(prefix + "_"): v for k, v in given.items() if k.startswith(prefix + "_")}
        try:
            out[prefix] = model.model_validate(mine)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = f"{prefix}_{'.'.join(str(p) for p in error['loc'])}"
            raise ValueError(f"{where}: {str(error['msg']).removeprefix('Value error, ')}") from None
    return out


def secret_source_fields() -> set[str]:
    """Return the keys of the sources' settings that hold secrets (declared ``SecretStr``)."""
    return {
        f"{prefix}_{name}"
        for prefix, model in source_settings_models().items()
        for name, field in model.model_fields.items()
        if "SecretStr" in repr(field.annotation) or field.annotation is SecretStr
    }


def source_setting_fields(models: Mapping[str, type[BaseModel]] | None = None) -> list[str]:
    """Return the keys of the sources' own settings (``prometheus_url``...)."""
    models = source_settings_models() if models is None else models
    return [f"{prefix}_{name}" for prefix, model in models.items() for name in model.model_fields]



class SourceSettingsEnvironment(PydanticBaseSettingsSource):
    """The sources' own settings from the environment (``KAYENTA_<PREFIX>_<FIELD>``, any case)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # not used: __call__ reads the variables itself

    def __call__(self) -> dict[str, Any]:
        keys = set(source_setting_fields())
        found: dict[str, Any] = {}
        for variable, value in os.environ.items():
            key = variable.upper().removeprefix(ENV_PREFIX).lower()
            if variable.upper().startswith(ENV_PREFIX) and key in keys:
                found[key] = value
        return found
