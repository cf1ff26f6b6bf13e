"""The service's metrics sources: every registered source its settings set up, built from them.

The service names no source. A source class may declare, besides the :class:`MetricsSource`
protocol:

``is_configured(settings: Mapping[str, Any]) -> bool`` (classmethod)
    Whether the service's settings set it up; False: analyses may not name it.
``from_settings(settings: Mapping[str, Any]) -> source`` (classmethod)
    Build it from the service's settings; raise :class:`KayentaError` (``source: ...``) when it
    is not set up. Without it the class is built with no arguments.
``service_source`` (class attribute, default True)
    False for a source that never serves live analyses (``csv``: files named on the command
    line); a config naming it is judged with the service's default source instead.
``setup_hint`` (class attribute)
    What the settings lack when ``is_configured`` is False (named in the error).
``endpoint(settings: Mapping[str, Any]) -> str | None`` (classmethod)
    The address the source reads (Kayenta's account list, the service's start line).
``description`` (class attribute)
    What it reads, for a source with no endpoint (``generated data``).
``settings_model`` and ``settings_prefix`` (class attributes)
    A pydantic model of the source's own settings, read from the service settings
    ``<prefix>_<field>`` (environment ``KAYENTA_<PREFIX>_<FIELD>``).

``settings`` is the service's settings as a mapping (:meth:`Settings.model_dump`: secrets stay
:class:`SecretStr`). A class without ``is_configured`` is always available.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kayenta_py.config.registry import Registry
from kayenta_py.engine.source import MetricsSource
from kayenta_py.model.errors import FieldError

NO_SOURCE = (
    "no metrics source is configured: set KAYENTA_PROMETHEUS_URL (the prometheus source) or "
    "KAYENTA_DEFAULT_SOURCE, or name a source in the request (the demo source serves generated "
    "data only when asked: source demo, KAYENTA_DEFAULT_SOURCE=demo or kayenta-py serve --demo)"
)


def is_service_source(registry: Registry, name: str) -> bool:
    """Return whether ``name`` may serve live analyses (False: its class says ``service_source = False``).

    An unknown name counts as a service source, so that building it names the problem.
    """
    try:
        return bool(getattr(registry.source_class(name), "service_source", True))
    except Exception:
        return True


def set_up_sources(registry: Registry, settings: Mapping[str, Any]) -> list[str]:
    """Return the sources (by name) that have settings of their own and are set up by them."""
    return [n for n in configured_sources(registry, settings) if _has_settings(registry.source_class(n))]


def first_set_up_source(registry: Registry, settings: Mapping[str, Any]) -> str | None:
    """Return the first source (by name) that has settings of its own and is set up by them."""
    return next(iter(set_up_sources(registry, settings)), None)


def ambiguous_default_source(registry: Registry, settings: Mapping[str, Any]) -> str | None:
    """Why no source can be the default when none is named (None: at most one is set up).

    With several set up (Prometheus and CloudWatch, say), taking the first by name would
    silently move every analysis that names no source when a second source is added.
    """
    names = set_up_sources(registry, settings)
    if settings.get("default_source") is not None or len(names) < 2:
        return None
    return (
        f"default_source: {len(names)} sources are set up ({', '.join(names)}); set default_source "
        "(KAYENTA_DEFAULT_SOURCE) to the one that analyses naming no source read"
    )


def describe_source(registry: Registry, name: str, settings: Mapping[str, Any]) -> str:
    """Return what source ``name`` reads, for people: its endpoint, else its ``description``."""
    endpoint = source_endpoint(registry, name, settings)
    if endpoint:
        return endpoint
    return str(getattr(registry.source_class(name), "description", "no endpoint"))


def source_endpoint(registry: Registry, name: str, settings: Mapping[str, Any]) -> str | None:
    """Return the address source ``name`` reads (its ``endpoint``), or None when it names none."""
    endpoint = getattr(registry.source_class(name), "endpoint", None)
    return None if endpoint is None else endpoint(settings)


def is_configured(cls: type[Any], settings: Mapping[str, Any]) -> bool:
    """Return whether the source class ``cls`` is set up by the service's settings."""
    check = getattr(cls, "is_configured", None)
    return True if check is None else bool(check(settings))


def configured_sources(registry: Registry, settings: Mapping[str, Any]) -> list[str]:
    """Return the sources analyses may name: those with settings of their own first, then by name."""
    names = [name for name in registry.source_names() if is_configured(registry.source_class(name), settings)]
    return sorted(names, key=lambda name: (not _has_settings(registry.source_class(name)), name))


def build_source(registry: Registry, name: str, settings: Mapping[str, Any]) -> MetricsSource:
    """Return a new source called ``name``, built from the service's settings."""
    known = configured_sources(registry, settings)
    try:
        cls = registry.source_class(name)
    except Exception:
        cls = None
    factory = getattr(cls, "from_settings", None)
    if cls is None or (name not in known and factory is None):
        raise FieldError("source", f"unknown source {name!r} (known: {', '.join(known)})")
    source: MetricsSource = factory(settings) if factory is not None else cls()
    return source


def _has_settings(cls: type[Any]) -> bool:
    """Whether a source class has settings of its own (a ``settings_model``)."""
    return getattr(cls, "settings_model", None) is not None
