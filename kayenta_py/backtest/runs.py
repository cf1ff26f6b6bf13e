"""Backtests: judge labelled past canaries again under other judge parameters.

A backtest replays canaries whose truth is known (a label: ``regression`` or
``healthy``; for stored analyses, by default their past verdict) under a canary
config and judge parameter overrides, and counts verdicts against labels in a
confusion table: rows are the labels, columns the verdicts ``fail``, ``pass``
and ``marginal``. The false-fail rate is the share of healthy canaries that
failed; the missed-regression rate the share of regressions that did not fail.
A marginal verdict counts as *not failed* in both rates.

Canaries come from CSV directories (one subdirectory per canary holding
``baseline.csv``, ``canary.csv`` and an optional ``label`` file, or a
``labels.csv`` at the root), or from the service's store (every completed
analysis' last interval, whose raw metric pairs are kept for this).
:func:`generate_labelled_canaries` writes realistic labelled CSV canaries for
tests and notebooks.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib
import itertools
import json
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TextIO

import numpy as np

from kayenta_py.config.loader import load_config
from kayenta_py.config.model import CanaryConfig
from kayenta_py.config.registry import Registry, default_registry
from kayenta_py.engine.pipeline import judge
from kayenta_py.examples.generate import COLUMNS, START
from kayenta_py.model.errors import ConfigError, KayentaError
from kayenta_py.model.types import FloatArray, MetricSet, Thresholds, Verdict

Label = Literal["regression", "healthy"]
Outcome = Literal["failed", "passed", "marginal"]
LABELS: tuple[Label, ...] = ("regression", "healthy")
OUTCOMES: tuple[Outcome, ...] = ("failed", "passed", "marginal")
LABELS_FILE = "labels.csv"
LABEL_FILE = "label"
MARGINAL_NOTE = "marginal verdicts count as not failed in both rates"
DEFAULT_JUDGE = "mann-whitney"

BacktestProgress = Callable[[int], None]
"""Called with the number of canaries judged since the previous call."""


# ---------------------------------------------------------------- canaries and results


@dataclass(frozen=True)
class LabelledCanary:
    """A past canary to judge again: its metric data, its label and where it came from.

    ``config`` and ``thresholds`` are what it was judged with (stored analyses),
    or None when the backtest's own config applies (CSV canaries).
    """

    name: str
    label: Label
    baseline: Mapping[str, Sequence[MetricSet]]
    canary: Mapping[str, Sequence[MetricSet]]
    origin: str
    config: CanaryConfig | None = None
    thresholds: Thresholds | None = None
    past_verdict: str | None = None


@dataclass(frozen=True)
class CanaryOutcome:
    """One canary's label and the verdict it gets under a setting."""

    name: str
    label: Label
    verdict: Verdict
    score: float | None

    @property
    def outcome(self) -> Outcome:
        """Return the confusion table's column: failed, passed or marginal."""
        if self.verdict is Verdict.FAIL:
            return "failed"
        if self.verdict is Verdict.MARGINAL:
            return "marginal"
        return "passed"


@dataclass(frozen=True)
class Confusion:
    """Counts of verdicts (columns) per label (rows)."""

    counts: Mapping[Label, Mapping[Outcome, int]]

    @classmethod
    def of(cls, outcomes: Iterable[CanaryOutcome]) -> Confusion:
        """Count outcomes by label and verdict."""
        counts: dict[Label, dict[Outcome, int]] = {label: dict.fromkeys(OUTCOMES, 0) for label in LABELS}
        for item in outcomes:
            counts[item.label][item.outcome] += 1
        return cls(MappingProxyType({k: MappingProxyType(v) for k, v in counts.items()}))

    def total(self, label: Label) -> int:
        """Return how many canaries carry ``label``."""
        return sum(self.counts[label].values())

    @property
    def false_fail_rate(self) -> float | None:
        """Return the share of healthy canaries that failed (None without healthy canaries)."""
        total = self.total("healthy")
        return self.counts["healthy"]["failed"] / total if total else None

    @property
    def missed_regression_rate(self) -> float | None:
        """Return the share of regressions that did not fail (passed or marginal), or None."""
        total = self.total("regression")
        return (total - self.counts["regression"]["failed"]) / total if total else None

    def to_dict(self) -> dict[str, dict[str, int]]:
        """Return the counts as ``{label: {outcome: n}}``."""
        return {label: {outcome: row[outcome] for outcome in OUTCOMES} for label, row in self.counts.items()}


@dataclass(frozen=True)
class SettingResult:
    """The outcome of a backtest under one parameter setting."""

    params: Mapping[str, Any]
    outcomes: tuple[CanaryOutcome, ...]
    confusion: Confusion = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "confusion", Confusion.of(self.outcomes))

    @property
    def label(self) -> str:
        """Return the setting as ``key=value, ...`` (or a note that the config is used as is)."""
        return describe_params(self.params)

    def to_dict(self) -> dict[str, Any]:
        """Return the setting's result as a JSON-ready mapping."""
        return {
            "params": dict(self.params),
            "label": self.label,
            "confusion": self.confusion.to_dict(),
            "false_fail_rate": self.confusion.false_fail_rate,
            "missed_regression_rate": self.confusion.missed_regression_rate,
            "canaries": [
                {"name": o.name, "label": o.label, "verdict": o.verdict.value, "score": o.score}
                for o in self.outcomes
            ],
        }


def describe_params(params: Mapping[str, Any]) -> str:
    """Return ``key=value, ...`` for a setting, or ``config as is`` for no overrides."""
    if not params:
        return "config as is"
    return ", ".join(f"{key}={_show(value)}" for key, value in params.items())


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------- judge parameter overrides


def parse_assignment(text: str, option: str) -> tuple[str, str]:
    """Split ``KEY=VALUE``; a missing ``=`` or key is an error naming the option."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise KayentaError(f"{option}: {text!r} is not KEY=VALUE (e.g. tolerance=0.3)")
    return key, value.strip()


def parse_value(text: str) -> Any:
    """Return a JSON scalar (``0.3``, ``1e-3``, ``true``) as such, anything else as the string."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str | int | float | bool) else text


def nest(params: Mapping[str, Any]) -> dict[str, Any]:
    """Turn dotted keys (``effect_size.allowed_increase``) into nested mappings."""
    nested: dict[str, Any] = {}
    for dotted, value in params.items():
        *parents, leaf = dotted.split(".")
        node = nested
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise KayentaError(f"--set {dotted}: {part} is given a value and sub-keys")
            node = child
        if isinstance(node.get(leaf), dict):
            raise KayentaError(f"--set {dotted}: {leaf} is given a value and sub-keys")
        node[leaf] = value
    return nested


def _merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = _merge(current, value)
        else:
            merged[key] = value
    return merged


def validate_overrides(
    params: Mapping[str, Any], *, judge_type: str = DEFAULT_JUDGE, registry: Registry | None = None
) -> dict[str, Any]:
    """Validate dotted judge-parameter overrides with :func:`load_config`; return them nested.

    A config with one metric judged by ``judge_type`` with these parameters is
    loaded, so every check a config file gets applies: an unknown or misspelled
    key is an error naming it (with the nearest known key), a bad value too.
    """
    nested = nest(params)
    if "type" in nested:
        raise KayentaError("--set type: the judge type is chosen with --judge, not --set")
    probe = {
        "name": "backtest-overrides",
        "metrics": [{"name": "probe", "kind": "custom", "judge": {"type": judge_type, **nested}}],
    }
    try:
        load_config(probe, registry=registry)
    except ConfigError as exc:
        prefix = "metrics[0].judge"
        problems = []
        for issue in exc.issues:
            if issue.path == prefix:
                continue  # the probe's judge as a whole (a missing bound): each metric's is checked later
            key = issue.path.removeprefix(prefix).lstrip(".")
            problems.append(f"--set {key}: {issue.message}")
        if problems:
            raise KayentaError("; ".join(problems)) from None
    return nested


def apply_overrides(
    config: CanaryConfig,
    params: Mapping[str, Any],
    *,
    judge_type: str = DEFAULT_JUDGE,
    registry: Registry | None = None,
) -> CanaryConfig:
    """Return ``config`` with ``params`` (dotted keys) set in every ``judge_type`` metric's judge.

    Raises
    ------
    KayentaError
        An unknown key or bad value (naming it), or no metric of the config uses ``judge_type``.
    """
    if not params:
        return config
    registry = registry or default_registry()
    nested = validate_overrides(params, judge_type=judge_type, registry=registry)
    params_model = registry.judge_class(judge_type).params_model
    metrics = []
    changed = False
    for metric in config.metrics:
        if metric.judge_type != judge_type:
            metrics.append(metric)
            continue
        merged = _merge(metric.judge_params, nested)
        if params_model is not None:
            merged = params_model.model_validate(merged).model_dump(by_alias=False)
        updated = dataclasses.replace(metric, judge_params=MappingProxyType(merged))
        try:
            updated.build_judge(registry)
        except (KayentaError, ValueError, TypeError) as exc:
            raise KayentaError(f"--set: metric {metric.name!r}: {exc}") from None
        metrics.append(updated)
        changed = True
    if not changed:
        raise KayentaError(
            f"--set: no metric of config {config.name!r} is judged by {judge_type} "
            "(choose the judge whose parameters to change with --judge)"
        )
    return dataclasses.replace(config, metrics=tuple(metrics))


def parse_sweep(texts: Sequence[str]) -> list[dict[str, Any]]:
    """Return the grid of settings ``--sweep KEY=V1,V2 ...`` spans (one empty setting without any)."""
    axes: list[tuple[str, list[Any]]] = []
    for text in texts:
        key, values = parse_assignment(text, "--sweep")
        parsed = [parse_value(v.strip()) for v in values.split(",") if v.strip()]
        if not parsed:
            raise KayentaError(f"--sweep {key}: no values (e.g. {key}=0.1,0.25,0.4)")
        if any(key == other for other, _ in axes):
            raise KayentaError(f"--sweep {key}: given twice; list every value in one --sweep")
        axes.append((key, parsed))
    return [
        dict(zip([k for k, _ in axes], combo, strict=True))
        for combo in itertools.product(*(values for _, values in axes))
    ]


# ---------------------------------------------------------------- loading canaries


def read_labels(path: Path) -> dict[str, Label]:
    """Read a ``canary,label`` CSV (the first column may also be called ``analysis`` or ``id``)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise KayentaError(f"{path}: cannot read labels: {exc.strerror or exc}") from None
    rows = [(n, row) for n, row in enumerate(csv.reader(text.splitlines()), start=1) if any(row)]
    if not rows:
        raise KayentaError(f"{path}: empty; expected a header 'canary,label' and one line per canary")
    header = [cell.strip().lower() for cell in rows[0][1]]
    keys = [k for k in ("canary", "analysis", "id") if k in header]
    if "label" not in header or not keys:
        raise KayentaError(f"{path} line 1: expected the header 'canary,label', got {','.join(header)!r}")
    key_index, label_index = header.index(keys[0]), header.index("label")
    labels: dict[str, Label] = {}
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise KayentaError(f"{path} line {line}: {len(row)} field(s), the header has {len(header)}")
        name = row[key_index].strip()
        if name in labels:
            raise KayentaError(f"{path} line {line}: {name!r} is labelled twice")
        labels[name] = parse_label(row[label_index], f"{path} line {line}")
    return labels


def parse_label(text: str, where: str) -> Label:
    """Return ``regression`` or ``healthy``; anything else is an error naming ``where``."""
    cleaned = text.strip().lower()
    if cleaned == "regression":
        return "regression"
    if cleaned == "healthy":
        return "healthy"
    raise KayentaError(f"{where}: label {text.strip()!r} is not 'regression' or 'healthy'")


def load_csv_canaries(
    directory: str | Path,
    config: CanaryConfig,
    *,
    labels_path: str | Path | None = None,
    registry: Registry | None = None,
) -> list[LabelledCanary]:
    """Read every canary subdirectory of ``directory`` (sorted by name) with its label.

    Labels come from ``labels_path``, else ``directory/labels.csv``, and from a
    ``label`` file in a canary's directory; the two must agree, and every canary
    needs one.
    """
    registry = registry or default_registry()
    root = Path(directory)
    if not root.is_dir():
        raise KayentaError(f"--canaries: {root}: no such directory")
    listed: dict[str, Label] = {}
    labels_file = Path(labels_path) if labels_path is not None else root / LABELS_FILE
    if labels_path is not None or labels_file.is_file():
        listed = read_labels(labels_file)
    subdirectories = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirectories:
        raise KayentaError(
            f"--canaries: {root}: no canary directories (expected one subdirectory per canary "
            "holding baseline.csv and canary.csv)"
        )
    unknown = sorted(set(listed) - {p.name for p in subdirectories})
    if unknown:
        raise KayentaError(f"{labels_file}: no canary directory {unknown[0]!r} in {root}")
    source_class = registry.source_class("csv")
    canaries = []
    for sub in subdirectories:
        files = {}
        for side in ("baseline", "canary"):
            path = sub / f"{side}.csv"
            if not path.is_file():
                raise KayentaError(
                    f"{sub}: no {side}.csv (each canary directory needs baseline.csv and canary.csv)"
                )
            files[side] = path
        label = listed.get(sub.name)
        label_path = sub / LABEL_FILE
        if label_path.is_file():
            own = parse_label(label_path.read_text(encoding="utf-8"), str(label_path))
            if label is not None and own != label:
                raise KayentaError(f"{label_path}: says {own!r}, but {labels_file} says {label!r}")
            label = own
        if label is None:
            raise KayentaError(
                f"{sub}: no label (write 'regression' or 'healthy' into {label_path}, "
                f"or list it in {labels_file})"
            )
        source = source_class(files=files)
        baseline = {m.name: source.fetch(m, "baseline") for m in config.metrics}
        canary = {m.name: source.fetch(m, "canary") for m in config.metrics}
        canaries.append(LabelledCanary(sub.name, label, baseline, canary, str(sub)))
    return canaries


@dataclass(frozen=True)
class StoredCanaries:
    """Canaries read from a store, and why other completed analyses were left out."""

    canaries: list[LabelledCanary]
    skipped: list[str]


def load_stored_canaries(
    database_url: str, *, labels_path: str | Path | None = None, registry: Registry | None = None
) -> StoredCanaries:
    """Read every completed fixed-mode analysis' last interval from the store at ``database_url``.

    The label is the one ``labels_path`` gives the analysis id, else its past
    verdict (fail: regression, pass: healthy). Left out, with a note each:
    sequential analyses (their intervals hold only new points), analyses with no
    stored interval, and marginal past verdicts without a label.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from kayenta_py.model.errors import StoreError
    from kayenta_py.model.pairs_codec import pairs_from_json
    from kayenta_py.service.store.repository import Store

    registry = registry or default_registry()
    labels = read_labels(Path(labels_path)) if labels_path is not None else {}
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise KayentaError(f"--database-url: {exc}") from None
    database = url.database if url.get_backend_name() == "sqlite" else None
    if database not in (None, "", ":memory:") and not Path(str(database)).expanduser().is_file():
        raise KayentaError(f"--database-url: no database file {url.database}")
    store = Store(database_url)
    canaries: list[LabelledCanary] = []
    skipped: list[str] = []
    seen: set[str] = set()
    configs: dict[str, CanaryConfig] = {}
    try:
        records = []
        offset = 0
        while True:
            page, total = store.list_analyses(status="completed", limit=500, offset=offset)
            records.extend(page)
            offset += len(page)
            if not page or offset >= total:
                break
        for summary in sorted(records, key=lambda r: (r.created_ts, r.id)):
            seen.add(summary.id)
            if summary.mode == "sequential":
                skipped.append(f"{summary.id}: sequential analysis (its intervals hold only new points)")
                continue
            try:
                record = store.get_analysis(summary.id)
                last_pairs = (
                    pairs_from_json(record.intervals[-1].pairs) if record and record.intervals else []
                )
            except (StoreError, KeyError, TypeError, ValueError) as exc:  # a row that cannot be read
                skipped.append(f"{summary.id}: unreadable stored analysis: {exc}")
                continue
            if record is None or not record.intervals:
                skipped.append(f"{summary.id}: no stored interval")
                continue
            label = labels.get(record.id)
            if label is None:
                if record.verdict == Verdict.FAIL.value:
                    label = "regression"
                elif record.verdict == Verdict.PASS.value:
                    label = "healthy"
                else:
                    skipped.append(f"{record.id}: past verdict {record.verdict} and no label")
                    continue
            body_key = json.dumps(record.config_body, sort_keys=True)
            if body_key not in configs:
                try:
                    configs[body_key] = load_config(record.config_body, registry=registry)
                except KayentaError as exc:
                    raise KayentaError(f"analysis {record.id}: its stored config: {exc}") from None
            baseline: dict[str, list[MetricSet]] = {}
            canary: dict[str, list[MetricSet]] = {}
            for pair in last_pairs:  # the last interval's full pairs (IntervalRecord.pairs joins deltas)
                baseline.setdefault(pair.name, []).append(pair.baseline)
                canary.setdefault(pair.name, []).append(pair.canary)
            canaries.append(
                LabelledCanary(
                    record.id,
                    label,
                    baseline,
                    canary,
                    f"analysis {record.id}",
                    config=configs[body_key],
                    thresholds=Thresholds(record.thresholds["pass"], record.thresholds["marginal"]),
                    past_verdict=record.verdict,
                )
            )
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None)
        detail = str(cause if cause is not None else exc).splitlines()[0]
        raise KayentaError(f"--database-url: cannot read analyses from {store!r}: {detail}") from None
    finally:
        store.close()
    unknown = sorted(set(labels) - seen)
    if unknown:
        raise KayentaError(f"{labels_path}: no completed analysis {unknown[0]!r} in {store!r}")
    return StoredCanaries(canaries, skipped)


# ---------------------------------------------------------------- judging


def backtest(
    canaries: Sequence[LabelledCanary],
    settings: Sequence[Mapping[str, Any]],
    *,
    config: CanaryConfig | None = None,
    thresholds: Thresholds | None = None,
    judge_type: str = DEFAULT_JUDGE,
    registry: Registry | None = None,
    progress: BacktestProgress | None = None,
) -> list[SettingResult]:
    """Judge every canary under every setting (dotted judge-parameter overrides).

    Each canary is judged with ``config`` (else the config it was judged with),
    with the setting applied to every ``judge_type`` metric, and with
    ``thresholds`` (else its own, else the config's).
    """
    registry = registry or default_registry()
    results = []
    for params in settings:
        adjusted: dict[int, CanaryConfig] = {}
        outcomes = []
        for item in canaries:
            base = config or item.config
            if base is None:
                raise KayentaError(f"canary {item.name}: no config to judge it with (give --config)")
            if id(base) not in adjusted:
                adjusted[id(base)] = apply_overrides(base, params, judge_type=judge_type, registry=registry)
            limits = thresholds or (None if config is not None else item.thresholds)
            try:
                result = judge(
                    adjusted[id(base)], item.baseline, item.canary, thresholds=limits, registry=registry
                )
            except KayentaError as exc:
                raise KayentaError(f"{item.origin}: {exc}") from None
            outcomes.append(CanaryOutcome(item.name, item.label, result.verdict, result.score))
            if progress is not None:
                progress(1)
        results.append(SettingResult(MappingProxyType(dict(params)), tuple(outcomes)))
    return results


# ---------------------------------------------------------------- command line


def add_backtest_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Define the ``backtest`` subcommand and its arguments."""
    parser = commands.add_parser(
        "backtest",
        help="judge labelled past canaries again under other judge parameters",
        description="Replay labelled past canaries (CSV directories, or the completed analyses in the "
        "service's store) under a canary config and judge-parameter overrides, and print a confusion "
        "table of verdicts against labels with the false-fail and missed-regression rates. "
        f"{MARGINAL_NOTE.capitalize()}.",
    )
    inputs = parser.add_mutually_exclusive_group(required=True)
    inputs.add_argument(
        "--canaries",
        type=Path,
        metavar="DIR",
        help="one subdirectory per canary with baseline.csv, canary.csv and a 'label' file "
        "(regression or healthy), or a labels.csv (canary,label) in DIR",
    )
    inputs.add_argument(
        "--database-url",
        metavar="URL",
        help="the service's store (SQLAlchemy URL): every completed analysis' last interval, "
        "labelled by its past verdict (fail: regression, pass: healthy) unless --labels says otherwise",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="canary config to judge with (required with --canaries; with --database-url, default: "
        "each analysis' own config)",
    )
    parser.add_argument(
        "--labels",
        type=Path,
        metavar="FILE",
        help="labels CSV (canary,label); canary is an analysis id for stores",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a judge parameter on every metric judged by the --judge judge, e.g. tolerance=0.3, "
        "confidence=0.95, effect_size.allowed_increase=1.1; repeatable",
    )
    parser.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="judge once per value (repeat for a grid), e.g. tolerance=0.1,0.25,0.4",
    )
    parser.add_argument(
        "--judge",
        dest="judge_type",
        default=DEFAULT_JUDGE,
        metavar="NAME",
        help=f"the judge whose parameters --set and --sweep change (default {DEFAULT_JUDGE})",
    )
    parser.add_argument(
        "--pass",
        dest="pass_",
        type=float,
        metavar="SCORE",
        help="pass threshold (default: the config's; for stored analyses without --config, each one's own)",
    )
    parser.add_argument(
        "--marginal", type=float, metavar="SCORE", help="marginal threshold (default: as for --pass)"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run_backtest(args: argparse.Namespace, registry: Registry, out: TextIO) -> int:
    """Run ``kayenta-py backtest``: print the confusion table(s); return exit code 0."""
    fixed: dict[str, Any] = {}
    for text in args.overrides:
        key, value = parse_assignment(text, "--set")
        fixed[key] = parse_value(value)
    grid = parse_sweep(args.sweep)
    for key in grid[0] if grid else {}:
        if key in fixed:
            raise KayentaError(f"--sweep {key}: also given with --set; give it once")
    settings = [{**fixed, **combo} for combo in grid] or [fixed]
    for params in settings:  # every typo is reported before anything is judged
        if params:
            validate_overrides(params, judge_type=args.judge_type, registry=registry)
    config = load_config(args.config, registry=registry) if args.config is not None else None
    skipped: list[str] = []
    if args.canaries is not None:
        if config is None:
            raise KayentaError("--config: required with --canaries (the canary config to judge with)")
        canaries = load_csv_canaries(args.canaries, config, labels_path=args.labels, registry=registry)
        origin = str(args.canaries)
    else:
        stored = load_stored_canaries(args.database_url, labels_path=args.labels, registry=registry)
        canaries, skipped = stored.canaries, stored.skipped
        origin = _safe_url(args.database_url)
        if not canaries:
            raise KayentaError(f"--database-url: no completed analysis to backtest in {origin}")
    thresholds = _thresholds(config, args.pass_, args.marginal)
    bar = _progress_bar(len(settings) * len(canaries), disable=args.no_progress)
    try:
        results = backtest(
            canaries,
            settings,
            config=config,
            thresholds=thresholds,
            judge_type=args.judge_type,
            registry=registry,
            progress=bar.update,
        )
    finally:
        bar.close()
    header = {
        "source": origin,
        "config": config.name if config is not None else "each analysis' own",
        "judge": args.judge_type,
        "canaries": len(canaries),
        "labels": {label: sum(c.label == label for c in canaries) for label in LABELS},
        "skipped": skipped,
        "marginal": MARGINAL_NOTE,
    }
    if args.format == "json":
        json.dump({**header, "settings": [r.to_dict() for r in results]}, out, indent=2, allow_nan=False)
        out.write("\n")
    else:
        out.write(render_backtest(header, results))
    return 0


def _thresholds(
    config: CanaryConfig | None, pass_: float | None, marginal: float | None
) -> Thresholds | None:
    if pass_ is None and marginal is None:
        return None
    default = config.thresholds if config is not None else Thresholds()
    try:
        return Thresholds(
            default.pass_ if pass_ is None else pass_, default.marginal if marginal is None else marginal
        )
    except ValueError as exc:
        raise KayentaError(
            str(exc).replace("thresholds.pass", "--pass").replace("thresholds.marginal", "--marginal")
        ) from None


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


class _Bar:
    """The small part of tqdm's interface the backtest uses (a no-op when there is no bar)."""

    def __init__(self, bar: Any = None) -> None:
        self._bar = bar

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _progress_bar(total: int, *, disable: bool) -> _Bar:
    """Return a tqdm bar on stderr, or none when disabled or stderr is not a terminal."""
    if disable or not sys.stderr.isatty():
        return _Bar()
    tqdm = importlib.import_module("tqdm").tqdm  # tqdm ships no type information
    return _Bar(tqdm(total=total, desc="backtest", unit="canary", file=sys.stderr, leave=False))


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def render_backtest(header: Mapping[str, Any], results: Sequence[SettingResult]) -> str:
    """Render one confusion table per setting, the rates, and a summary of every setting."""
    labels = header["labels"]
    lines = [
        f"backtest of {header['canaries']} canaries ({labels['regression']} labelled regression, "
        f"{labels['healthy']} labelled healthy) from {header['source']}; config {header['config']}",
    ]
    skipped = header["skipped"]
    if skipped:
        lines.append(f"skipped {len(skipped)}:")
        lines += [f"  {note}" for note in skipped]
    lines.append(f"({MARGINAL_NOTE})")
    for result in results:
        confusion = result.confusion
        lines += ["", f"setting: {result.label}" + (f" ({header['judge']} metrics)" if result.params else "")]
        columns = ("failed", "passed", "marginal", "total")
        lines.append(" " * 21 + "".join(f"{c:>10}" for c in columns))
        for label in LABELS:
            row = confusion.counts[label]
            cells = [row[o] for o in OUTCOMES] + [confusion.total(label)]
            lines.append(f"labelled {label:<12}" + "".join(f"{n:>10}" for n in cells))
        healthy, regressions = confusion.counts["healthy"], confusion.counts["regression"]
        lines.append(
            f"false-fail rate: {_rate(confusion.false_fail_rate)} ({healthy['failed']} of "
            f"{confusion.total('healthy')} healthy canaries failed)"
        )
        lines.append(
            f"missed-regression rate: {_rate(confusion.missed_regression_rate)} "
            f"({regressions['passed'] + regressions['marginal']} of {confusion.total('regression')} "
            f"regressions not failed: {regressions['passed']} passed, {regressions['marginal']} marginal)"
        )
    if len(results) > 1:
        lines += ["", f"summary ({MARGINAL_NOTE}):"]
        width = max(len(r.label) for r in results)
        for result in results:
            confusion = result.confusion
            lines.append(
                f"  {result.label:<{width}}  false-fail {_rate(confusion.false_fail_rate):>6}  "
                f"missed-regression {_rate(confusion.missed_regression_rate):>6}"
            )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- generator


@dataclass(frozen=True)
class GeneratedCanary:
    """A generated canary: its directory, label, and the multiplier applied to each metric."""

    name: str
    label: Label
    directory: Path
    effects: Mapping[str, float]
    kind: str


REGRESSION_KINDS = ("latency", "errors", "latency+errors", "saturation", "orders")
REGRESSION_WEIGHTS = (0.3, 0.25, 0.15, 0.15, 0.15)


def generate_labelled_canaries(
    directory: str | Path,
    count: int = 20,
    seed: int = 0,
    *,
    regression_share: float = 0.4,
    minutes: int = 60,
    labels: Literal["files", "csv"] = "files",
) -> list[GeneratedCanary]:
    """Write ``count`` labelled canaries (checkout.yaml's metrics) into ``directory``.

    Each canary is ``canary-NNN/`` with ``baseline.csv`` and ``canary.csv``
    (one row per minute, wide) and, with ``labels="files"``, a ``label`` file;
    with ``labels="csv"``, one ``labels.csv`` at the root instead.

    The data are realistic: a traffic ramp both versions share, minute-to-minute
    bursts they share (they serve the same users), autocorrelated noise of their
    own (AR(1), phi 0.6), and the nuisances that make healthy canaries fail now
    and then: every canary host has its own small bias (latency and CPU a few
    percent, error ratio about 15%) and starts with cold caches (slower for
    its first minutes). Regressions (a ``regression_share`` of the canaries, at
    random positions) multiply metrics by known factors, returned in
    ``effects``: latency (p99 x1.08-1.6, p50 part of it, a little CPU), errors
    (x1.25-4), both, saturation (CPU x1.1-1.4 and some p99) or lost orders
    (x0.8-0.95); some are subtle on purpose, as real ones are.
    """
    if count < 1:
        raise KayentaError(f"count: {count} canaries; at least 1")
    if not 0 <= regression_share <= 1:
        raise KayentaError(f"regression_share: {regression_share:g} is not between 0 and 1")
    if minutes < 2:
        raise KayentaError(f"minutes: {minutes}; at least 2")
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    regressed = set(rng.choice(count, size=round(count * regression_share), replace=False).tolist())
    width = max(3, len(str(count)))
    generated = []
    for index in range(count):
        name = f"canary-{index + 1:0{width}d}"
        label: Label = "regression" if index in regressed else "healthy"
        kind = str(rng.choice(REGRESSION_KINDS, p=REGRESSION_WEIGHTS)) if label == "regression" else "none"
        effects = _effects(kind, rng)
        sub = root / name
        sub.mkdir(exist_ok=True)
        start = START - timedelta(hours=6 * (count - index))
        baseline, canary = _canary_rows(rng, start, minutes, effects)
        _write_rows(sub / "baseline.csv", baseline)
        _write_rows(sub / "canary.csv", canary)
        if labels == "files":
            (sub / LABEL_FILE).write_text(label + "\n", encoding="utf-8")
        generated.append(GeneratedCanary(name, label, sub, MappingProxyType(effects), kind))
    if labels == "csv":
        with (root / LABELS_FILE).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["canary", "label"])
            writer.writerows([g.name, g.label] for g in generated)
    return generated


def _effects(kind: str, rng: np.random.Generator) -> dict[str, float]:
    """Return the multiplier of each metric for a regression kind (all 1.0 when healthy)."""
    effects = dict.fromkeys(COLUMNS, 1.0)
    if "latency" in kind:
        slower = float(rng.uniform(0.08, 0.6))
        effects["p99-latency"] = 1.0 + slower
        effects["p50-latency"] = 1.0 + slower * float(rng.uniform(0.5, 1.0))
        effects["cpu-utilization"] = 1.0 + 0.2 * slower
    if "errors" in kind:
        effects["error-ratio"] = float(rng.uniform(1.25, 4.0))
    if kind == "saturation":
        hotter = float(rng.uniform(0.1, 0.4))
        effects["cpu-utilization"] = 1.0 + hotter
        effects["p99-latency"] = 1.0 + 0.5 * hotter
    if kind == "orders":
        effects["orders-per-minute"] = float(rng.uniform(0.8, 0.95))
    return {k: round(v, 4) for k, v in effects.items()}


def _ar1(rng: np.random.Generator, n: int, sd: float, phi: float = 0.6) -> FloatArray:
    """Return stationary AR(1) noise with marginal standard deviation ``sd``."""
    noise = np.empty(n)
    noise[0] = rng.normal(0.0, sd)
    innovation = sd * math.sqrt(1.0 - phi * phi)
    for i in range(1, n):
        noise[i] = phi * noise[i - 1] + rng.normal(0.0, innovation)
    return noise


def _canary_rows(
    rng: np.random.Generator, start: datetime, minutes: int, effects: Mapping[str, float]
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Return baseline and canary rows for one canary run."""
    phase = rng.uniform(0.0, 2.0 * math.pi)
    load = 1.0 + 0.15 * np.sin(phase + np.linspace(0.0, math.pi, minutes))
    burst = np.exp(_ar1(rng, minutes, 0.05))  # shared: the same users at the same moment
    host_latency = float(rng.lognormal(0.0, 0.03))  # this canary host's own bias, healthy or not
    host = {
        "error-ratio": float(rng.lognormal(0.0, 0.15)),
        "p50-latency": host_latency,
        "p99-latency": host_latency * float(rng.lognormal(0.0, 0.02)),
        "cpu-utilization": float(rng.lognormal(0.0, 0.03)),
        "orders-per-minute": 1.0,
    }
    cold = 1.0 + float(rng.uniform(0.0, 0.3)) * np.exp(-np.arange(minutes) / 2.0)  # cold caches
    sides = []
    for is_canary in (False, True):
        f = {k: effects[k] * host[k] for k in COLUMNS} if is_canary else dict.fromkeys(COLUMNS, 1.0)
        warm = cold if is_canary else np.ones(minutes)
        errors = 0.002 * f["error-ratio"] * rng.gamma(8.0, 1 / 8.0, minutes) * burst
        p50 = 0.045 * f["p50-latency"] * load * burst * warm * np.exp(_ar1(rng, minutes, 0.05))
        p99 = 0.180 * f["p99-latency"] * load * burst * warm * np.exp(_ar1(rng, minutes, 0.08))
        cpu = np.minimum(1.0, 0.42 * f["cpu-utilization"] * load * np.exp(_ar1(rng, minutes, 0.04)))
        orders = rng.poisson(120.0 * f["orders-per-minute"] * load)
        rows = []
        for minute in range(minutes):
            rows.append(
                {
                    "timestamp": (start + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z"),
                    "error-ratio": f"{errors[minute]:.6f}",
                    "p50-latency": f"{p50[minute]:.5f}",
                    "p99-latency": f"{p99[minute]:.5f}",
                    "cpu-utilization": f"{cpu[minute]:.4f}",
                    "orders-per-minute": str(int(orders[minute])),
                }
            )
        sides.append(rows)
    return sides[0], sides[1]


def _write_rows(path: Path, rows: Sequence[Mapping[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=("timestamp", *COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
