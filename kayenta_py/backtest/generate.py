"""Realistic labelled canaries to try backtests on: healthy and regressed CSV canaries."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import numpy as np

from kayenta_py.backtest.runs import LABEL_FILE, LABELS_FILE, Label
from kayenta_py.examples.generate import COLUMNS, START, csv_rows, effects_of, write_csv
from kayenta_py.model.errors import KayentaError
from kayenta_py.synthetic import Effects, Traffic, TrafficModel, ar1, traffic_cycle

MODEL = TrafficModel(phi=0.6)  # the example's checkout service, noise autocorrelated minute to minute


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

    The data come from the synthetic traffic model (:mod:`kayenta_py.synthetic`:
    requests, gamma-Poisson error counts whose ratio the CSVs hold, lognormal
    latency percentiles, CPU, orders): a traffic ramp both versions share,
    minute-to-minute bursts they share (they serve the same users), autocorrelated
    noise of their own (AR(1), phi 0.6), and the nuisances that make healthy canaries fail now
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
        baseline, canary = _canary_traffic(rng, minutes, effects)
        write_csv(sub / "baseline.csv", csv_rows(start, baseline))
        write_csv(sub / "canary.csv", csv_rows(start, canary))
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


def _canary_traffic(
    rng: np.random.Generator, minutes: int, effects: Mapping[str, float]
) -> tuple[Traffic, Traffic]:
    """Return the baseline's and the canary's traffic for one canary run (the model's, with nuisances)."""
    phase = float(rng.uniform(0.0, 2.0 * math.pi))
    load = traffic_cycle(60.0 * np.arange(minutes), period=120.0 * minutes, phase=phase)  # half a cycle
    shared = ar1(rng, minutes, 0.05, 0.6)  # bursts: the same users at the same moment
    host_latency = float(rng.lognormal(0.0, 0.03))  # this canary host's own bias, healthy or not
    host = Effects(
        errors=float(rng.lognormal(0.0, 0.15)),
        p50=host_latency,
        p99=host_latency * float(rng.lognormal(0.0, 0.02)),
        saturation=float(rng.lognormal(0.0, 0.03)),
    )
    cold = 1.0 + float(rng.uniform(0.0, 0.3)) * np.exp(-np.arange(minutes) / 2.0)  # cold caches
    return MODEL.pair(rng, load, effects_of(effects) * host, shared=shared, slowdown=cold)
