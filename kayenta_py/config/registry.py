"""Plugin registry: judges and metrics sources, found through entry points or registered by hand."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from typing import Any, Generic, TypeVar

from kayenta_py.model.errors import PluginError
from kayenta_py.model.formatting import did_you_mean as did_you_mean  # re-exported: plugins use it

JUDGES_GROUP = "kayenta_py.judges"
SOURCES_GROUP = "kayenta_py.metrics_sources"

T = TypeVar("T")


class _Kind(Generic[T]):
    """The plugins of one kind (judges or sources), keyed by name."""

    def __init__(self, kind: str, group: str) -> None:
        self.kind = kind
        self.group = group
        self._plugins: dict[str, T] = {}
        self._origins: dict[str, str] = {}

    def register(self, name: str, plugin: T, *, origin: str, replace: bool) -> None:
        existing = self._plugins.get(name)
        if existing is not None and not replace and existing is not plugin:
            raise PluginError(
                f"duplicate {self.kind} {name!r}: registered by {self._origins[name]} and again by {origin}"
            )
        self._plugins[name] = plugin
        self._origins[name] = origin

    def get(self, name: str) -> T:
        try:
            return self._plugins[name]
        except KeyError:
            known = ", ".join(sorted(self._plugins)) or "none"
            raise PluginError(
                f"unknown {self.kind} {name!r}{did_you_mean(name, self._plugins)} (known: {known})"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._plugins)


class Registry:
    """Judges and metrics sources by name.

    ``Registry()`` starts empty; :meth:`load_entry_points` adds every plugin that
    installed distributions declare (the built-ins declare theirs the same way).
    Tests build a fresh registry and register what they need.
    """

    def __init__(self) -> None:
        self._judges: _Kind[type[Any]] = _Kind("judge", JUDGES_GROUP)
        self._sources: _Kind[type[Any]] = _Kind("metrics source", SOURCES_GROUP)
        self._lock = threading.Lock()

    def register_judge(self, cls: type[Any], *, name: str | None = None, replace: bool = False) -> None:
        """Register a judge class under ``name`` (default: its ``name`` attribute)."""
        self._judges.register(_plugin_name(cls, name), cls, origin=_origin(cls), replace=replace)

    def register_source(self, cls: type[Any], *, name: str | None = None, replace: bool = False) -> None:
        """Register a metrics-source class under ``name`` (default: its ``name`` attribute)."""
        self._sources.register(_plugin_name(cls, name), cls, origin=_origin(cls), replace=replace)

    def judge_class(self, name: str) -> type[Any]:
        """Return the judge class called ``name``."""
        return self._judges.get(name)

    def source_class(self, name: str) -> type[Any]:
        """Return the metrics-source class called ``name``."""
        return self._sources.get(name)

    def judge_names(self) -> list[str]:
        """Return the names of the registered judges."""
        return self._judges.names()

    def source_names(self) -> list[str]:
        """Return the names of the registered metrics sources."""
        return self._sources.names()

    def load_entry_points(self) -> Registry:
        """Register every plugin declared in the installed distributions' entry points."""
        with self._lock:
            for kind in (self._judges, self._sources):
                seen: dict[str, str] = {}
                for entry in metadata.entry_points(group=kind.group):
                    if entry.name in seen and seen[entry.name] != entry.value:
                        raise PluginError(
                            f"duplicate {kind.kind} {entry.name!r}: entry points {seen[entry.name]} "
                            f"and {entry.value} in group {kind.group}"
                        )
                    seen[entry.name] = entry.value
                    try:
                        plugin = entry.load()
                    except Exception as exc:  # a broken plugin must not hide which one it is
                        raise PluginError(
                            f"cannot load {kind.kind} {entry.name!r} ({entry.value}): {exc}"
                        ) from exc
                    kind.register(entry.name, plugin, origin=f"entry point {entry.value}", replace=False)
        return self


def _plugin_name(cls: type[Any], name: str | None) -> str:
    resolved = name or getattr(cls, "name", None)
    if not isinstance(resolved, str) or not resolved:
        raise PluginError(f"{cls!r} has no plugin name: give it a 'name' attribute or pass name=")
    return resolved


def _origin(cls: type[Any]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


_default: Registry | None = None
_default_lock = threading.Lock()


def default_registry() -> Registry:
    """Return the process-wide registry, loading entry points on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Registry().load_entry_points()
        return _default


@contextmanager
def use_registry(registry: Registry) -> Iterator[Registry]:
    """Make ``registry`` the process-wide registry inside a ``with`` block (for tests)."""
    global _default
    with _default_lock:
        previous, _default = _default, registry
    try:
        yield registry
    finally:
        with _default_lock:
            _default = previous
