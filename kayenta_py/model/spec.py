"""What a canary analysis is asked to do: one typed spec that every door builds.

The native HTTP API, Kayenta's API, Flagger's hooks, the demo and the CLI each translate their
request into an :class:`AnalysisSpec`; the service validates it once
(:meth:`kayenta_py.service.analyses.Service.create_analysis`) and stores it. What only a door
needs to answer in its own dialect (Kayenta's request and query, its warnings) rides in
:class:`DoorRecord`, typed too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Door = Literal["native", "kayenta", "kayenta-standalone", "flagger"]


@dataclass(frozen=True, kw_only=True)
class DoorRecord:
    """What a door keeps with an analysis to answer about it later (stored as given).

    ``request`` is the request as received (Kayenta's execution request, Flagger's payload),
    ``query`` its query parameters (Kayenta's account names), ``config_id`` the Kayenta config
    id it named, ``warnings`` what the door noticed while translating it, ``demo`` the demo
    canary's label (``healthy``, ``regressed``).
    """

    request: Mapping[str, Any] | None = None
    query: Mapping[str, str] = field(default_factory=dict)
    config_id: str | None = None
    warnings: tuple[str, ...] = ()
    demo: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the record as stored (JSON)."""
        out: dict[str, Any] = {}
        if self.request is not None:
            out["request"] = dict(self.request)
        if self.query:
            out["query"] = dict(self.query)
        if self.config_id is not None:
            out["config_id"] = self.config_id
        if self.warnings:
            out["warnings"] = list(self.warnings)
        if self.demo is not None:
            out["demo"] = self.demo
        return out

    @classmethod
    def from_json(cls, stored: Mapping[str, Any]) -> DoorRecord:
        """Return the record :meth:`to_json` wrote (older rows: Flagger's payload as ``flagger``)."""
        request = stored.get("request", stored.get("flagger"))
        return cls(
            request=None if request is None else dict(request),
            query=dict(stored.get("query") or {}),
            config_id=stored.get("config_id"),
            warnings=tuple(stored.get("warnings") or ()),
            demo=stored.get("demo"),
        )


@dataclass(frozen=True, kw_only=True)
class AnalysisSpec:
    """A canary analysis as a door asks for it, before validation.

    Durations (``lifetime``, ``interval``, ``warmup``, ``lookback``) are ISO 8601 (``PT30M``),
    Go-style (``1m30s``) or seconds; times are epoch seconds. ``config`` (an inline body) or
    ``config_name`` (a stored config, ``config_version`` pinning one version) names the config.
    ``canary_location`` and ``canary_scope_params`` default to the baseline's. ``mode`` None is
    the default mode for the door and config (see :func:`kayenta_py.service.modes.choose_mode`);
    ``alpha`` and ``family`` apply in sequential mode. ``external_key`` makes creation
    idempotent per door (Flagger's canary): a second spec with the same key returns the first
    analysis. ``baseline_offset`` (a signed duration, negative: earlier) or ``baseline_start`` and
    ``baseline_end`` (epoch seconds) give the baseline its own window (see
    :mod:`kayenta_py.service.baseline_window`); ``baseline_fields`` names those fields in errors
    as the door calls them.
    """

    baseline_scope: str
    canary_scope: str
    config: Mapping[str, Any] | None = None
    config_name: str | None = None
    config_version: int | None = None
    scope_params: Mapping[str, str] = field(default_factory=dict)
    location: str = ""
    canary_location: str | None = None
    canary_scope_params: Mapping[str, str] | None = None
    source: str | None = None
    start: float | None = None
    end: float | None = None
    lifetime: str | float | None = None
    interval: str | float | None = None
    warmup: str | float | None = 0
    lookback: str | float | None = None
    step: float = 60.0
    thresholds: Mapping[str, Any] | None = None
    fail_fast: bool = True
    mode: str | None = None
    alpha: float = 0.05
    family: str = "bonferroni"
    door: Door = "native"
    external_key: str | None = None
    record: DoorRecord = field(default_factory=DoorRecord)
    baseline_offset: str | float | None = None
    baseline_start: float | None = None
    baseline_end: float | None = None
    baseline_fields: Mapping[str, str] = field(default_factory=dict)
