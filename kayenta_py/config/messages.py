"""Config errors as users read them: pydantic errors as ConfigIssues with paths, known keys, near matches."""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from kayenta_py.config.registry import did_you_mean
from kayenta_py.model.errors import ConfigIssue


def _issues(exc: ValidationError, root: type[BaseModel]) -> list[ConfigIssue]:
    """Turn pydantic's errors into issues with dotted paths and near-match suggestions."""
    issues = []
    for error in exc.errors():
        loc = error["loc"]
        path = _format_path(loc)
        kind = error["type"]
        if kind == "extra_forbidden":
            known = _known_keys(root, loc[:-1])
            message = f"unknown key{did_you_mean(str(loc[-1]), known)}"
        elif kind == "missing":
            message = "required key is missing"
        elif kind == "literal_error":
            expected = error.get("ctx", {}).get("expected", "")
            message = f"{error['input']!r} is not one of {expected}"
            if isinstance(error["input"], str):
                message += did_you_mean(
                    error["input"], [s.strip(" '") for s in str(expected).replace(" or ", ",").split(",")]
                )
        else:
            message = f"{error['msg'].lower()} (got {error['input']!r})"
        issues.append(ConfigIssue(path, message))
    return issues


def _format_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _known_keys(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """Return the keys the model accepts at ``loc`` (field names and aliases)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        info = _field_by_key(current, part)
        if info is None:
            return []
        current = _model_in(info.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [info.alias or name for name, info in current.model_fields.items()]
    return []


def _field_by_key(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None


def _model_in(annotation: Any) -> Any:
    """Return the pydantic model inside an annotation such as ``list[M] | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple, dict):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _unknown_fields(model: BaseModel, path: str) -> list[tuple[str, str]]:
    """List the unknown keys a lenient (Kayenta) model accepted, recursively."""
    found = []
    known = [info.alias or name for name, info in type(model).model_fields.items()]
    for key in model.model_extra or {}:
        where = f"{path}.{key}" if path else key
        found.append((where, f"unknown field, ignored{did_you_mean(key, known)}"))
    for name in type(model).model_fields:
        value = getattr(model, name)
        where = f"{path}.{name}" if path else name
        if isinstance(value, BaseModel):
            found.extend(_unknown_fields(value, where))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    found.extend(_unknown_fields(item, f"{where}[{index}]"))
    return found
