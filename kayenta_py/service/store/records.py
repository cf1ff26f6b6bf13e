"""What the store's reads return: frozen domain records, not ORM rows.

Each record has the attribute names of its table's row (:mod:`kayenta_py.service.store.tables`),
so readers (reports, the HTTP answers, Kayenta's and Flagger's documents, Slack, backtests)
read either alike; none of them holds a session or can write through a record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from kayenta_py.model.pairs_codec import BrokenDeltaError, cumulative_document, has_delta
from kayenta_py.model.spec import DoorRecord
from kayenta_py.service.store.errors import UnreadableRecord

RUNNING, COMPLETED, CANCELLED, FAILED = "running", "completed", "cancelled", "failed"
FINAL_STATUSES = frozenset({COMPLETED, CANCELLED, FAILED})

PairsChain = Sequence[tuple[int, list[dict[str, Any]]]]
"""(index, stored pairs) of an analysis' intervals, oldest first: what rebuilds delta-stored pairs."""


class Schedule:
    """When an analysis' intervals fall due and what each one judges (its row and its record share it)."""

    if TYPE_CHECKING:  # the columns of the row, the fields of the record
        start_ts: float
        warmup_s: float
        lifetime_s: float
        interval_s: float
        lookback_s: float | None
        mode: str
        status: str

    @property
    def complete(self) -> bool:
        """Return whether the analysis has ended (its verdict is final)."""
        return self.status in FINAL_STATUSES

    @property
    def end_ts(self) -> float:
        """Return when the analysis' lifetime ends: start + warmup + lifetime."""
        return self.start_ts + self.warmup_s + self.lifetime_s

    def due_ts(self, index: int) -> float:
        """Return when interval ``index`` (0-based) falls due: start + warmup + (index + 1) * interval."""
        return self.start_ts + self.warmup_s + (index + 1) * self.interval_s

    def window(self, index: int) -> tuple[float, float]:
        """Return the metric window of interval ``index``: cumulative, the lookback before it, or
        (sequential mode) the new points since the previous interval."""
        end = self.due_ts(index)
        if self.mode == "sequential":  # only the new points: from the previous interval's end
            return (self.due_ts(index - 1) if index else self.start_ts + self.warmup_s), end
        start = self.start_ts + self.warmup_s if self.lookback_s is None else end - self.lookback_s
        return start, end


def full_pairs(
    analysis_id: str, index: int, document: list[dict[str, Any]], chain: PairsChain | None
) -> list[dict[str, Any]]:
    """Return an interval's full pairs from its stored document (and the chain, when it holds deltas)."""
    if not has_delta(document):
        return document
    if chain is None:
        raise UnreadableRecord(
            analysis_id, f"interval {index} holds deltas; load it with Store.get_analysis"
        )
    earlier = [(i, stored) for i, stored in chain if i <= index]
    try:
        return cumulative_document(earlier)
    except BrokenDeltaError as exc:
        raise UnreadableRecord(analysis_id, str(exc)) from None


def _columns(cls: type[Any], row: Any, **given: Any) -> dict[str, Any]:
    """The values of ``cls``' fields read from ``row`` (by name), less those ``given``."""
    values = {
        f.name: getattr(row, f.name) for f in dataclasses.fields(cls) if f.init and f.name not in given
    }
    return {**values, **given}


@dataclass(frozen=True, kw_only=True)
class Interval:
    """One judgement of an analysis: its window, per-metric results and (see :attr:`pairs`) raw pairs."""

    id: int | None = None
    analysis_id: str
    index: int
    window_start_ts: float
    window_end_ts: float
    due_ts: float
    judged_ts: float
    score: float | None
    verdict: str
    reason: str
    result: dict[str, Any]
    stored_pairs: list[dict[str, Any]] = field(repr=False)
    pairs_digest: dict[str, Any] | None = field(default=None, repr=False)
    chain: PairsChain | None = field(default=None, repr=False, compare=False)
    """The analysis' stored pairs up to this interval (None: read without them)."""

    @property
    def pairs(self) -> list[dict[str, Any]]:
        """Return every metric pair this interval judged, as :func:`pairs_to_json` wrote them."""
        return full_pairs(self.analysis_id, self.index, self.stored_pairs, self.chain)

    @classmethod
    def from_row(cls, row: Any, chain: PairsChain | None = None) -> Self:
        """Return the record of an interval row."""
        return cls(**_columns(cls, row, chain=chain))


@dataclass(frozen=True, kw_only=True)
class IntervalOutcome:
    """What the runner reads of a stored interval: its index and outcome, never its pairs."""

    index: int
    verdict: str
    score: float | None
    reason: str


@dataclass(frozen=True, kw_only=True)
class Analysis(Schedule):
    """A canary analysis: what to compare, its schedule, state and verdict, and (when read) its intervals."""

    id: str
    kind: str = "native"
    external_key: str | None = None
    mode: str = "fixed"
    state: dict[str, Any] | None = None
    config_name: str | None = None
    config_version: int | None = None
    config_body: dict[str, Any] = field(default_factory=dict)
    baseline_scope: str = ""
    canary_scope: str = ""
    location: str = ""
    scope_params: dict[str, str] = field(default_factory=dict)
    source: str = ""
    start_ts: float = 0.0
    lifetime_s: float = 0.0
    interval_s: float = 0.0
    warmup_s: float = 0.0
    lookback_s: float | None = None
    step_s: float = 60.0
    thresholds: dict[str, float] = field(default_factory=dict)
    fail_fast: bool = True
    status: str = RUNNING
    verdict: str = "pending"
    score: float | None = None
    reason: str = ""
    error: str | None = None
    intervals_total: int = 1
    mode_reason: str = ""
    alpha: float = 0.05
    family: str = "bonferroni"
    canary_location: str | None = None
    """The canary's own location (Kayenta's experiment scope); None: the baseline's."""
    canary_scope_params: dict[str, str] | None = None
    """The canary's own scope parameters; None: the baseline's."""
    baseline_offset_s: float | None = None
    """The baseline window is the canary's shifted by this many seconds (negative: earlier); None: same."""
    door: DoorRecord = field(default_factory=DoorRecord)
    created_ts: float = 0.0
    updated_ts: float = 0.0
    completed_ts: float | None = None
    intervals: list[Interval] = field(default_factory=list, repr=False)
    """Oldest first; empty when the analysis was read without its intervals."""

    @classmethod
    def from_row(cls, row: Any, *, with_intervals: bool = False) -> Self:
        """Return the record of an analysis row (with its loaded intervals, sharing one pairs chain)."""
        intervals: list[Interval] = []
        if with_intervals:
            rows = list(row.intervals)
            chain = [(i.index, i.stored_pairs) for i in rows]
            intervals = [Interval.from_row(i, chain) for i in rows]
        return cls(**_columns(cls, row, intervals=intervals, **_typed_extra(row.extra or {})))

    def baseline_window(self, index: int) -> tuple[float, float]:
        """Return the baseline's metric window of interval ``index``: its :meth:`window`, shifted."""
        start, end = self.window(index)
        shift = self.baseline_offset_s or 0.0
        return start + shift, end + shift


_EXTRA_FIELDS = (
    "mode_reason",
    "alpha",
    "family",
    "canary_location",
    "canary_scope_params",
    "baseline_offset_s",
)


def stored_extra(
    *,
    mode_reason: str,
    alpha: float,
    family: str,
    canary_location: str | None,
    canary_scope_params: Mapping[str, str] | None,
    door: DoorRecord,
    baseline_offset_s: float | None = None,
) -> dict[str, Any]:
    """Return the analysis row's ``extra`` JSON column for these typed fields (read by from_row)."""
    given = {
        "baseline_offset_s": baseline_offset_s,
        "mode_reason": mode_reason,
        "alpha": alpha,
        "family": family,
        "canary_location": canary_location,
        "canary_scope_params": None if canary_scope_params is None else dict(canary_scope_params),
    }
    return {**{k: v for k, v in given.items() if v is not None}, **door.to_json()}


def _typed_extra(extra: Mapping[str, Any]) -> dict[str, Any]:
    """The typed fields an analysis row's ``extra`` column holds (see :func:`stored_extra`)."""
    defaults = {f.name: f.default for f in dataclasses.fields(Analysis) if f.name in _EXTRA_FIELDS}
    typed = {k: defaults[k] if extra.get(k) is None else extra[k] for k in _EXTRA_FIELDS}
    return {**typed, "door": DoorRecord.from_json(extra)}


@dataclass(frozen=True, kw_only=True)
class VerdictChange:
    """A verdict an analysis published (each change is kept, for audit)."""

    id: int
    analysis_id: str
    verdict: str
    score: float | None
    complete: bool
    reason: str
    created_ts: float

    @classmethod
    def from_row(cls, row: Any) -> Self:
        """Return the record of a verdict row."""
        return cls(**_columns(cls, row))


@dataclass(frozen=True, kw_only=True)
class ConfigVersion:
    """One version of a named canary config: its body, and which API created the config."""

    id: int
    config_id: int
    name: str
    origin: str
    version: int
    body: dict[str, Any]
    created_ts: float

    @classmethod
    def from_row(cls, row: Any) -> Self:
        """Return the record of a config version row (its config loaded)."""
        return cls(**_columns(cls, row))


@dataclass(frozen=True, kw_only=True)
class Notification:
    """A notification to deliver (Slack message, digest), with its delivery state."""

    id: int
    analysis_id: str | None
    kind: str
    channel: str
    status: str
    attempts: int
    payload: dict[str, Any]
    last_error: str | None
    created_ts: float
    updated_ts: float
    dedupe_key: str | None = None
    """What makes queueing it idempotent: (kind, channel, dedupe_key) is unique (None: no key)."""

    @classmethod
    def from_row(cls, row: Any) -> Self:
        """Return the record of a notification row."""
        return cls(**_columns(cls, row))


@dataclass(frozen=True, kw_only=True)
class OutboxEvent:
    """What a notifier must hear of (an analysis finished), stored with the verdict."""

    id: int
    analysis_id: str
    kind: str
    consumer: str
    status: str
    attempts: int
    last_error: str | None
    created_ts: float
    updated_ts: float

    @classmethod
    def from_row(cls, row: Any) -> Self:
        """Return the record of an outbox event row."""
        return cls(**_columns(cls, row))
