"""Loading labelled canaries: CSV directories with labels, or the completed analyses of a store."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from kayenta_py.backtest.runs import LABEL_FILE, LABELS_FILE, Label, LabelledCanary
from kayenta_py.config.loader import load_config
from kayenta_py.config.model import CanaryConfig
from kayenta_py.config.registry import Registry, default_registry
from kayenta_py.model.errors import KayentaError
from kayenta_py.model.types import Thresholds, Verdict


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
            canaries.append(
                LabelledCanary(
                    record.id,
                    label,
                    {},
                    {},
                    f"analysis {record.id}",
                    config=configs[body_key],
                    thresholds=Thresholds.from_dict(record.thresholds),
                    past_verdict=record.verdict,
                    pairs=tuple(last_pairs),  # the last interval's full pairs (deltas joined)
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


