"""The mode of a live analysis (fixed or sequential): the request's, the config's, or the default."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kayenta_py.config.loader import load_config
from kayenta_py.config.model import CanaryConfig
from kayenta_py.config.registry import Registry, default_registry
from kayenta_py.engine.batches import batch_shape
from kayenta_py.model.errors import ConfigError

KAYENTA_API_KINDS = ("kayenta", "kayenta-standalone")  # analyses started through Kayenta's API


def choose_mode(
    requested: str | None,
    config: CanaryConfig,
    body: Mapping[str, Any],
    *,
    kind: str = "native",
    registry: Registry | None = None,
) -> tuple[str, str]:
    """Return a live analysis' mode and why: the request's, else the config's, else the default.

    The default is ``sequential`` for a native config started through the native API, Flagger
    or the demo, when every metric's judge resolves to a sequential one under mode sequential
    (a metric naming a fixed judge, ``mann-whitney`` or ``threshold``, keeps the config fixed:
    explicit judges win; so does one whose sequential judge cannot run on it, an errors metric
    without a ``traffic_query`` for ``sequential-count``). Kayenta configs and every analysis
    of Kayenta's API default to ``fixed`` (Kayenta's re-run test, for parity). Test:
    ``tests/test_live_sequential_default.py``.
    """
    if requested is not None:
        return requested, "stated in the request"
    if config.mode == "sequential" or (config.format == "native" and config.mode_stated):
        return config.mode, "stated in the config"  # a Kayenta config's mode is fixed unless it says so
    if kind in KAYENTA_API_KINDS:
        return "fixed", "the default of Kayenta's API (Kayenta's re-run test)"
    if config.format != "native":
        return "fixed", "the default for Kayenta configs (Kayenta's re-run test)"
    why = _not_sequential(body, registry or default_registry())
    if why is not None:
        return "fixed", f"fixed by default because {why}"
    return "sequential", "the default for native configs (every metric has a sequential judge)"


def _not_sequential(body: Mapping[str, Any], registry: Registry) -> str | None:
    """Why a native config cannot be judged sequentially as it is (None: it can)."""
    default = body.get("judge")
    if isinstance(default, Mapping) and _fixed_judge(default.get("type"), registry):
        return f"its default judge is the fixed judge {default['type']}"
    for metric in body.get("metrics") or ():
        if not isinstance(metric, Mapping):
            continue
        name, judge = metric.get("name"), metric.get("judge")
        if isinstance(judge, Mapping) and _fixed_judge(judge.get("type"), registry):
            return f"metric {name!r} names the fixed judge {judge['type']}"
        for key in ("tolerance", "confidence"):
            if metric.get(key) is not None:
                return f"metric {name!r} sets {key}, a parameter of the fixed judge mann-whitney"
    try:
        sequential = load_config(body, registry=registry, mode="sequential")
    except ConfigError as exc:  # a parameter only the fixed judges take, say
        issue = exc.issues[0] if exc.issues else None
        return f"it does not load in sequential mode ({issue or exc})"
    for metric in sequential.metrics:
        if not getattr(registry.judge_class(metric.judge_type), "sequential", False):
            return f"metric {metric.name!r} names the fixed judge {metric.judge_type}"
        if batch_shape(metric, registry) == "counts" and not metric.traffic_query:
            return f"metric {metric.name!r} has no traffic_query for {metric.judge_type}"
    return None


def _fixed_judge(name: Any, registry: Registry) -> bool:
    """Whether ``name`` is a registered judge without a sequential form."""
    try:
        return isinstance(name, str) and not getattr(registry.judge_class(name), "sequential", False)
    except Exception:  # an unknown judge: the config's own validation says so
        return False
