"""A judge's own parameters, declared once: in its ``params_model`` (names, defaults, checks).

scikit-learn's rule: constructing a judge stores its parameters; the model validates them, the
same model the config loader reads a config's ``judge:`` block with, so a default, a range or a
description lives in one place. Checks that need more than the parameters (a threshold judge's
bounds against its direction) and derived state go in the judge's ``_setup``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

from kayenta_py.model.errors import FieldError


class JudgeParameterError(FieldError, ValueError):
    """A judge's parameter is invalid (unknown, out of range); ``field`` is the parameter."""


class JudgeParameters:
    """What :class:`Judge` and :class:`SequentialJudge` share: their own parameters, validated once."""

    name: ClassVar[str]
    params_model: ClassVar[type[BaseModel] | None] = None

    def _store_params(self, given: Mapping[str, Any]) -> None:
        """Validate ``given`` with ``params_model``, store each parameter as an attribute, run ``_setup``.

        Raises
        ------
        JudgeParameterError
            Naming the judge and the parameter, for an unknown or invalid one.
        """
        model = type(self).params_model
        if model is None:
            if given:
                unknown = next(iter(given))
                raise JudgeParameterError(unknown, f"judge {self.name} takes no parameter {unknown}")
        else:
            try:
                validated = model.model_validate(dict(given))
            except ValidationError as exc:
                errors = [
                    (".".join(map(str, e["loc"])), str(e["msg"]).removeprefix("Value error, "))
                    for e in exc.errors()
                ]
                problems = "; ".join([errors[0][1], *(f"{loc}: {msg}" for loc, msg in errors[1:])])
                where = errors[0][0] or self.name
                raise JudgeParameterError(where, f"{problems} ({self.name} judge)") from None
            for field in type(validated).model_fields:
                setattr(self, field, getattr(validated, field))
        self._setup()

    def _setup(self) -> None:
        """Derived state and checks across parameters, once they are stored (default: none)."""
