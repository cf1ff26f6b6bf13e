"""One interval of a live analysis: fetch its window, judge it (fixed or sequential), say if it ends.

The runner stores what these return; nothing here touches the store or the scheduler.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kayenta_py.config.registry import Registry
from kayenta_py.engine.batches import fetch_sequential_batch
from kayenta_py.engine.pipeline import judge_pairs, pair_metric_sets
from kayenta_py.engine.sequential import SequentialAnalysis
from kayenta_py.engine.source import MetricsSource, fetch_metric_sets
from kayenta_py.model.types import CanaryResult, MetricSetPair, Thresholds, Verdict
from kayenta_py.service.runner_support import (
    ParsedConfigs,
    json_state_decode,
    json_state_encode,
    scopes,
)
from kayenta_py.service.store.records import COMPLETED, Analysis

Final = tuple[str, str, float | None, str]
"""(status, verdict, score, reason) of the interval that ends an analysis."""


@dataclass(frozen=True)
class Judged:
    """An interval's judgement, ready to store: its window, result, pairs, final outcome and state."""

    window: tuple[float, float]
    result: CanaryResult
    pairs: Sequence[MetricSetPair]
    final: Final | None
    state: Mapping[str, Any] | None = None


def judge_sequential(
    analysis: Analysis,
    index: int,
    source: MetricsSource,
    *,
    registry: Registry,
    concurrency: int,
    deadline: float,
    configs: ParsedConfigs | None = None,
) -> Judged:
    """Sequential mode: fold the new points into the persisted state; decide when it can."""
    window = analysis.window(index)
    config = (configs or ParsedConfigs(registry)).get(analysis, "sequential")  # the runner's: parsed once
    sequential = SequentialAnalysis(
        config,
        analysis.alpha,
        family=analysis.family,  # type: ignore[arg-type]
        registry=registry,
        thresholds=Thresholds.from_dict(analysis.thresholds),
    ).restore(json_state_decode(analysis.state or {}))
    batch = fetch_sequential_batch(
        config,
        source,
        *scopes(analysis),
        start=window[0],
        end=window[1],
        step=analysis.step_s,
        after=window[0] if index else None,
        concurrency=concurrency,
        registry=registry,
        deadline=deadline,
        baseline_offset=analysis.baseline_offset_s or 0.0,  # the baseline's own window
    )
    result = sequential.update(batch.baseline, batch.canary)
    last = index == analysis.intervals_total - 1
    if result.verdict is Verdict.PENDING and last:
        result = sequential.finish()
    if batch.warnings:  # series that could not pair: said in the warnings and the reason
        result = dataclasses.replace(
            result,
            warnings=(*result.warnings, *batch.warnings),
            reason=f"{result.reason}; warning: {'; '.join(batch.warnings)}",
        )
    final = None
    if result.verdict is not Verdict.PENDING:
        where = "final interval" if last else "decided early at interval"
        final = (
            COMPLETED,
            result.verdict.value,
            result.score,
            f"{where} {index + 1} of {analysis.intervals_total}: {result.reason}",
        )
    state = json_state_encode(sequential.to_state())
    return Judged(window, result, batch.pairs, final, state)


def judge_fixed(
    analysis: Analysis,
    index: int,
    source: MetricsSource,
    *,
    registry: Registry,
    concurrency: int,
    deadline: float,
    configs: ParsedConfigs | None = None,
) -> Judged:
    """Fixed mode: fetch the interval's window and judge it as a whole."""
    window = analysis.window(index)
    # The mode is the analysis' (a config may state another one that the request overrode).
    config = (configs or ParsedConfigs(registry)).get(analysis, "fixed")  # with the live rule
    thresholds = Thresholds.from_dict(analysis.thresholds)
    data = fetch_metric_sets(
        config,
        source,
        *scopes(analysis),
        start=window[0],
        end=window[1],
        step=analysis.step_s,
        concurrency=concurrency,
        deadline=deadline,
        baseline_offset=analysis.baseline_offset_s or 0.0,  # the baseline's own window
    )
    pairs = pair_metric_sets(config, data.baseline, data.canary, scopes=scopes(analysis))
    result = judge_pairs(config, pairs, thresholds=thresholds, registry=registry)
    return Judged(window, result, pairs, fixed_final(analysis, index, result))


def fixed_final(analysis: Analysis, index: int, result: CanaryResult) -> Final | None:
    """Return the final (status, verdict, score, reason) if this interval ends the analysis."""
    if index == analysis.intervals_total - 1:
        return (
            COMPLETED,
            result.verdict.value,
            result.score,
            (f"final interval {index + 1} of {analysis.intervals_total}: {result.reason}"),
        )
    if analysis.fail_fast and result.verdict is Verdict.FAIL:
        return (
            COMPLETED,
            Verdict.FAIL.value,
            result.score,
            (f"failed fast at interval {index + 1} of {analysis.intervals_total}: {result.reason}"),
        )
    return None
