"""Loading a canary config: a file, text or mapping, native or Kayenta, into one CanaryConfig."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from kayenta_py.config.kayenta import _from_kayenta
from kayenta_py.config.model import CanaryConfig, Mode
from kayenta_py.config.native import _from_native
from kayenta_py.config.registry import Registry, default_registry
from kayenta_py.model.errors import ConfigError, ConfigIssue
from kayenta_py.model.limits import Limits, check_config_document


def load_config(
    source: str | Path | Mapping[str, Any],
    *,
    registry: Registry | None = None,
    mode: Mode | None = None,
    limits: Limits | None = None,
) -> CanaryConfig:
    """Load and validate a canary config: a path to YAML/JSON, or a mapping.

    Native configs are validated strictly (an unknown key is an error naming
    its path, with the nearest known key). Kayenta canary configs are
    recognised by their shape and accepted as Kayenta accepts them: unknown
    fields become warnings on the returned config. ``mode`` overrides the
    config's own (``sequential`` gives metrics without a judge their kind's
    sequential judge). A config that could not be stored as JSON (nested deeper or
    larger than ``limits`` allow, holding a NUL or a non-finite number) is refused first.

    Raises
    ------
    ConfigError
        With every problem found, each naming its path.
    """
    origin: str | None = None
    if isinstance(source, Mapping):
        raw: Any = source
    else:
        path = Path(source)
        origin = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([ConfigIssue("", f"cannot read: {exc.strerror}")], source=origin) from None
        raw = _parse_text(text, origin)
    if not isinstance(raw, Mapping):
        raise ConfigError([ConfigIssue("", "the config must be a mapping of keys")], source=origin)
    if limits is not None:  # a door of the service: the document is stored as strict JSON
        check_config_document(raw, limits)
    registry = registry or default_registry()
    if is_kayenta_config(raw):
        return _from_kayenta(raw, registry, origin, mode)
    return _from_native(raw, registry, origin, mode)


def _parse_text(text: str, origin: str) -> Any:
    try:
        if origin.endswith(".json"):
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            [ConfigIssue(f"line {exc.lineno}", f"invalid JSON: {exc.msg}")], source=origin
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue(where, f"invalid YAML: {problem}")], source=origin) from None


def is_kayenta_config(raw: Mapping[str, Any]) -> bool:
    """Return whether a mapping looks like a Kayenta canary config rather than a native one."""
    if "classifier" in raw or "applications" in raw or "configVersion" in raw:
        return True
    judge = raw.get("judge")
    if isinstance(judge, Mapping) and "judgeConfigurations" in judge:
        return True
    metrics = raw.get("metrics")
    if isinstance(metrics, list):
        return any(
            isinstance(m, Mapping) and ("analysisConfigurations" in m or isinstance(m.get("query"), Mapping))
            for m in metrics
        )
    return False
