"""CSV metrics source: wide (one column per metric) or long (``metric``/``value``) files.

Format (DESIGN section 6): a ``timestamp`` column, ISO 8601 (a naive time is
UTC) or epoch seconds, and either one numeric column per metric (wide), or
``metric`` and ``value`` columns whose other columns are tags (long). Every
error is an :class:`~kayenta_py.InputError` naming the file and the 1-based
line (the header is line 1), as a text editor counts.
"""

from __future__ import annotations

import csv
import io
import math
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from kayenta_py import InputError, MetricConfig, MetricSet, Scope

TIMESTAMP = "timestamp"
METRIC = "metric"
VALUE = "value"

_MISSING = frozenset({"", "nan", "+nan", "-nan"})
_TIMESTAMP_HINT = "expected ISO 8601 such as 2026-11-26T09:00:00Z, or epoch seconds"


def read_metrics_csv(path: str | Path) -> dict[str, list[MetricSet]]:
    """Read a wide or long metrics CSV file.

    Parameters
    ----------
    path
        The file. A UTF-8 byte-order mark is allowed.

    Returns
    -------
    dict[str, list[MetricSet]]
        Metric name to its series: one :class:`MetricSet` per distinct tag set,
        in first-seen order, each sorted by timestamp (stable; duplicate times
        are kept) and time-stamped in epoch seconds (UTC).

    Raises
    ------
    InputError
        The file cannot be read or is malformed; the message names the file,
        the line and, where relevant, the column.
    """
    where = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{where}: cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{where} line {line}: not UTF-8 text ({exc.reason})") from None
    return _parse(text, where)


class CsvSource:
    """Metrics source reading CSV files, one per scope.

    Parameters
    ----------
    files
        Scope to CSV path, e.g. ``{"baseline": "b.csv", "canary": "k.csv"}``.
        Each file is read on first use and cached.
    """

    name = "csv"
    service_source = False  # the files are named on the command line, never by the service

    @classmethod
    def is_configured(cls, settings: Mapping[str, object]) -> bool:
        """Never a service source: the files are named on the command line (``kayenta-py judge``)."""
        return False

    def __init__(self, *, files: Mapping[str, str | Path]) -> None:
        self._files: dict[str, str | Path] = {str(scope): path for scope, path in files.items()}
        self._cache: dict[str, dict[str, list[MetricSet]]] = {}
        self._lock = threading.Lock()

    def scopes(self) -> list[str]:
        """Return the scope names, in the order they were given."""
        return list(self._files)

    def fetch(
        self,
        metric: MetricConfig,
        scope: Scope | str,
        start: float | None = None,
        end: float | None = None,
        step: float | None = None,
    ) -> list[MetricSet]:
        """Return the series of ``metric.name`` in the file of ``scope``.

        Parameters
        ----------
        metric
            The configured metric; only its name is used.
        scope
            One of :meth:`scopes` (a :class:`~kayenta_py.Scope`'s ``scope``, or the name).
        start, end
            When given, keep only points with ``start <= t < end`` (epoch
            seconds). A series left with no points is returned empty, so its
            tag set is still judged (as missing data).
        step
            Ignored: a CSV file is returned at its own resolution.

        Returns
        -------
        list[MetricSet]
            One set per tag set; ``[]`` when the file lacks the metric.

        Raises
        ------
        InputError
            Unknown scope, a malformed file, or ``start`` after ``end``.
        """
        if isinstance(scope, Scope):
            scope = scope.scope
        if scope not in self._files:
            known = ", ".join(repr(s) for s in self._files) or "none"
            raise InputError(f"csv source: unknown scope {scope!r} (known scopes: {known})")
        if start is not None and end is not None and start > end:
            raise InputError(f"csv source: time window start {start} is after its end {end}")
        series = self._read(scope).get(metric.name, [])
        if start is None and end is None:
            return list(series)
        return [_window(s, start, end) for s in series]

    def metric_names(self, scope: Scope | str) -> list[str]:
        """Return the names of the metrics the file of ``scope`` holds (columns or ``metric`` values)."""
        name = scope.scope if isinstance(scope, Scope) else scope
        if name not in self._files:
            raise InputError(f"csv source: unknown scope {name!r}")
        return list(self._read(name))

    def _read(self, scope: str) -> dict[str, list[MetricSet]]:
        with self._lock:
            cached = self._cache.get(scope)
            if cached is None:
                cached = read_metrics_csv(self._files[scope])
                self._cache[scope] = cached
            return cached


def _window(series: MetricSet, start: float | None, end: float | None) -> MetricSet:
    stamps = series.timestamps
    if stamps is None:  # every set read from a CSV file is time-stamped
        return series
    keep = np.ones(stamps.shape, dtype=bool)
    if start is not None:
        keep &= stamps >= start
    if end is not None:
        keep &= stamps < end
    return MetricSet(series.name, series.values[keep], series.tags, stamps[keep])


def _records(text: str, where: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (first line number, fields) of each CSV record that has a non-blank field."""
    reader = csv.reader(io.StringIO(text, newline=""))
    previous = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(f"{where} line {reader.line_num}: malformed CSV: {exc}") from None
        line, previous = previous + 1, reader.line_num
        if any(field.strip() for field in row):  # blank lines and ",,," rows are skipped
            yield line, row


def _parse(text: str, where: str) -> dict[str, list[MetricSet]]:
    records = _records(text, where)
    first = next(records, None)
    if first is None:
        raise InputError(f"{where} line 1: the file is empty (expected a header line)")
    header_line, header = first
    columns = _header(header, header_line, where)
    if METRIC in columns and VALUE in columns:
        return _parse_long(records, columns, header_line, where)
    return _parse_wide(records, columns, header_line, where)


def _header(fields: Sequence[str], line: int, where: str) -> list[str]:
    columns = [field.strip() for field in fields]
    unnamed = [str(i + 1) for i, name in enumerate(columns) if not name]
    if unnamed:
        raise InputError(f"{where} line {line}: header column(s) {', '.join(unnamed)} have no name")
    duplicates = [name for name, count in Counter(columns).items() if count > 1]
    if duplicates:
        names = ", ".join(repr(name) for name in duplicates)
        raise InputError(f"{where} line {line}: duplicate column name(s) {names}")
    if TIMESTAMP not in columns:
        hint = ""
        if len(columns) == 1 and any(sep in columns[0] for sep in ";\t|"):
            hint = "; is the file comma-separated?"
        shown = ", ".join(repr(name) for name in columns)
        raise InputError(f"{where} line {line}: no {TIMESTAMP!r} column (columns: {shown}){hint}")
    if len(columns) == 1:
        raise InputError(
            f"{where} line {line}: no metric columns; expected one column per metric (wide) "
            f"or {METRIC!r} and {VALUE!r} columns (long) besides {TIMESTAMP!r}"
        )
    return columns


def _rows(
    records: Iterator[tuple[int, list[str]]], columns: Sequence[str], header_line: int, where: str
) -> Iterator[tuple[int, list[str]]]:
    """Yield the data records, checking that each has as many fields as the header."""
    for line, row in records:
        if len(row) != len(columns):
            raise InputError(
                f"{where} line {line}: {len(row)} field(s), but the header "
                f"(line {header_line}) has {len(columns)}"
            )
        yield line, row


def _parse_wide(
    records: Iterator[tuple[int, list[str]]], columns: list[str], header_line: int, where: str
) -> dict[str, list[MetricSet]]:
    time_index = columns.index(TIMESTAMP)
    metric_indices = [i for i in range(len(columns)) if i != time_index]
    stamps: list[float] = []
    values: list[list[float]] = [[] for _ in metric_indices]
    for line, row in _rows(records, columns, header_line, where):
        stamps.append(_timestamp(row[time_index], line, where))
        for column_values, index in zip(values, metric_indices, strict=True):
            column_values.append(_number(row[index], columns[index], line, where))
    return {
        columns[index]: [_series(columns[index], {}, stamps, column_values)]
        for index, column_values in zip(metric_indices, values, strict=True)
    }


def _parse_long(
    records: Iterator[tuple[int, list[str]]], columns: list[str], header_line: int, where: str
) -> dict[str, list[MetricSet]]:
    time_index = columns.index(TIMESTAMP)
    metric_index = columns.index(METRIC)
    value_index = columns.index(VALUE)
    reserved = {time_index, metric_index, value_index}
    tag_indices = [i for i in range(len(columns)) if i not in reserved]
    tag_names = [columns[i] for i in tag_indices]
    # metric -> tag values (in column order) -> (timestamps, values); dicts keep first-seen order
    found: dict[str, dict[tuple[str, ...], tuple[list[float], list[float]]]] = {}
    for line, row in _rows(records, columns, header_line, where):
        name = row[metric_index].strip()
        if not name:
            raise InputError(f"{where} line {line}: column {METRIC!r} is empty (no metric name)")
        stamp = _timestamp(row[time_index], line, where)
        value = _number(row[value_index], VALUE, line, where)
        key = tuple(row[i].strip() for i in tag_indices)
        stamps, values = found.setdefault(name, {}).setdefault(key, ([], []))
        stamps.append(stamp)
        values.append(value)
    return {
        name: [
            _series(name, dict(zip(tag_names, key, strict=True)), stamps, values)
            for key, (stamps, values) in by_tags.items()
        ]
        for name, by_tags in found.items()
    }


def _series(
    name: str, tags: Mapping[str, str], stamps: Sequence[float], values: Sequence[float]
) -> MetricSet:
    times = np.asarray(stamps, dtype=np.float64)
    order = np.argsort(times, kind="stable")
    return MetricSet(name, np.asarray(values, dtype=np.float64)[order], tags, times[order])


def _number(text: str, column: str, line: int, where: str) -> float:
    """Parse a metric value: empty or NaN is missing (NaN); Inf, +Inf, -Inf are infinities."""
    cleaned = text.strip()
    if cleaned.lower() in _MISSING:
        return math.nan
    if "_" not in cleaned:  # float() would accept "1_000"
        try:
            return float(cleaned)
        except ValueError:
            pass
    raise InputError(f"{where} line {line}: column {column!r}: {text!r} is not a number")


def _timestamp(text: str, line: int, where: str) -> float:
    """Parse epoch seconds or ISO 8601 (naive means UTC) into epoch seconds."""
    cleaned = text.strip()
    if not cleaned:
        raise InputError(f"{where} line {line}: column {TIMESTAMP!r} is empty ({_TIMESTAMP_HINT})")
    if "_" not in cleaned:
        try:
            seconds = float(cleaned)
        except ValueError:
            pass
        else:
            if math.isfinite(seconds):
                return seconds
            raise InputError(f"{where} line {line}: column {TIMESTAMP!r}: {text!r} is not a finite time")
    try:
        moment = datetime.fromisoformat(cleaned)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    except (ValueError, OverflowError):
        raise InputError(
            f"{where} line {line}: column {TIMESTAMP!r}: {text!r} is not a timestamp ({_TIMESTAMP_HINT})"
        ) from None
