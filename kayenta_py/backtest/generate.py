"""Realistic labelled canaries to try backtests on: healthy and regressed CSV canaries."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import numpy as np

from kayenta_py.backtest.runs import LABEL_FILE, LABELS_FILE, Label
from kayenta_py.examples.generate import COLUMNS, START
from kayenta_py.model.errors import KayentaError
from kayenta_py.model.types import FloatArray


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


