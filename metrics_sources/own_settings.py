"""A source's own settings (``<prefix>_<field>`` keys of the service's settings), validated with names.

The service validates them when it loads its settings; a source built straight from the environment
(``kayenta-py query --source NAME``) validates them here, and a bad value is a
:class:`~kayenta_py.plugin.FieldError` naming the setting and its variable, never a stack trace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from kayenta_py.plugin import FieldError

Model = TypeVar("Model", bound=BaseModel)


def own_settings(model: type[Model], prefix: str, settings: Mapping[str, Any]) -> Model:
    """Return the ``<prefix>_*`` entries of ``settings`` (prefix dropped) validated by ``model``.

    Raises
    ------
    FieldError
        Naming the first bad setting (``datadog_site``) and its variable (``KAYENTA_DATADOG_SITE``).
    """
    start = prefix + "_"
    own = {key.removeprefix(start): value for key, value in settings.items() if key.startswith(start)}
    try:
        return model.model_validate(own)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = start + ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        raise FieldError(name, f"{message} (KAYENTA_{name.upper()})") from None


class SourceSettings(BaseModel):
    """Base of a source's settings model: the ``<prefix>_<field>`` keys of the service's settings.

    A subclass sets ``prefix`` (its source's ``settings_prefix``) and declares its fields; unknown keys
    are ignored and a bad value's input is never shown in an error.
    """

    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)
    prefix: ClassVar[str]

    @classmethod
    def from_service(cls, settings: Mapping[str, Any]) -> Self:
        """Return the ``<prefix>_*`` entries of the service's settings (prefix dropped), validated.

        Raises
        ------
        FieldError
            Naming the first bad setting and its variable (see :func:`own_settings`).
        """
        return own_settings(cls, cls.prefix, settings)
