"""Anytime-valid (sequential) analysis: judges that stay correct however often they are checked.

A sequential judge keeps a small state per metric, updated with each batch of new
points, and reports anytime-valid p-values for two one-sided questions: "is there a
relevant regression?" (a fail) and "is a relevant regression excluded?" (an early
pass), plus a confidence sequence for its effect. :class:`SequentialAnalysis`
controls the family-wise error over all metrics (Bonferroni, or e-BH) and decides:
fail as soon as a regression is established; pass early when every scored metric
excludes one; otherwise pending until :meth:`SequentialAnalysis.finish`, which fails
a metric whose final fixed-horizon look (every judge keeps a share of its alpha for
it) establishes a regression. A pass needs evidence: a critical or must-have metric
without data fails, and a metric whose evidence is too thin (below its judge's
minimum of points or events, or whose estimate points past the relevant effect)
makes the analysis ``marginal`` ("a person decides"), never ``pass``.

References: Lindon & Malek, NeurIPS 2022 (counts); Waudby-Smith & Ramdas, JRSS-B 2024
(betting confidence sequences); Wang & Ramdas, JRSS-B 2022 (e-BH). DESIGN.md 4.3.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from kayenta_py.config.loader import load_config
from kayenta_py.config.model import CanaryConfig, MetricConfig
from kayenta_py.config.registry import Registry, default_registry
from kayenta_py.engine.pipeline import pair_metric_sets
from kayenta_py.engine.scoring import inconclusive_reason
from kayenta_py.engine.source import MetricsSource, Scope, fetch_metric_sets
from kayenta_py.model.errors import KayentaError
from kayenta_py.model.types import (
    CanaryResult,
    Classification,
    Direction,
    GroupScore,
    MetricResult,
    MetricSet,
    MetricSetPair,
    SummaryStats,
    Thresholds,
    Verdict,
)

SEQUENTIAL_JUDGES = ("sequential-count", "sequential-histogram", "sequential-rank")
EMPTY_STATS = SummaryStats(0.0, 0.0, 0.0, 0.0, 0)


@dataclass(frozen=True)
class Assessment:
    """A sequential judge's current evidence on one metric.

    ``p_regression`` is an anytime-valid p-value for "no relevant regression"
    (small: a regression is established); ``p_safe`` one for "a relevant
    regression" (small: it is excluded). ``e_regression`` is the current
    e-value behind ``p_regression`` (for e-BH). ``ci`` is the confidence
    sequence of ``effect_measure`` at the level asked for. ``p_final`` is a
    fixed-horizon p-value for "no relevant regression", read once, when the
    lifetime ends; a judge that keeps part of its alpha for that final look
    reports both p-values already divided by their shares (1: no final look).
    ``inconclusive`` says why the evidence is too thin for a pass at the end of
    the lifetime (fewer points or events than the judge's minimum, or an estimate
    past the relevant effect that is not established); None when it suffices.
    """

    p_regression: float
    p_safe: float
    e_regression: float
    ci: tuple[float, float] | None
    estimate: float | None
    effect_measure: str
    observations: int
    neutral: float = 1.0  # the effect's value when nothing changed (a ratio's 1, theta's 0.5)
    baseline: SummaryStats = EMPTY_STATS
    canary: SummaryStats = EMPTY_STATS
    details: Mapping[str, Any] = field(default_factory=dict)
    p_final: float = 1.0
    inconclusive: str | None = None


class SequentialJudge(ABC):
    """Base class of sequential judges: keyword-only parameters, a JSON state, batch updates."""

    name: ClassVar[str]
    version: ClassVar[str] = "1.0"
    sequential: ClassVar[bool] = True
    params_model: ClassVar[type[BaseModel] | None] = None

    def __init__(
        self,
        *,
        direction: Direction | str = Direction.INCREASE,
        critical: bool = False,
        must_have_data: bool = False,
        nan_strategy: str = "remove",
        outliers: Any = None,
    ) -> None:
        self.direction = Direction(direction)
        self.critical = critical
        self.must_have_data = must_have_data
        self.nan_strategy = nan_strategy
        self.outliers = outliers

    @property
    def full_name(self) -> str:
        """Return the versioned judge name."""
        return f"{self.name}-v{self.version}"

    def get_params(self) -> dict[str, Any]:
        """Return the judge's parameters as given."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    @abstractmethod
    def new_state(self, alpha: float) -> dict[str, Any]:
        """Return the empty state of a metric judged at level ``alpha`` (JSON-serializable)."""

    @abstractmethod
    def update(self, state: dict[str, Any], baseline: Any, canary: Any) -> dict[str, Any]:
        """Fold one batch of new baseline and canary data into ``state`` and return it."""

    @abstractmethod
    def assess(self, state: Mapping[str, Any]) -> Assessment:
        """Return the current evidence held in ``state``."""


@dataclass
class _MetricTrack:
    config: MetricConfig
    judge: SequentialJudge
    state: dict[str, Any]


class SequentialAnalysis:
    """Judge a canary as its data arrives, with anytime-valid error control.

    Parameters
    ----------
    config : CanaryConfig, mapping or path
        The canary config; metrics without a sequential judge get their
        kind's default (errors: ``sequential-count``, otherwise ``sequential-rank``).
    alpha : float
        The canary's false-fail rate, over all its metrics and all looks.
    family : {"bonferroni", "e-bh"}
        How the family of metrics is controlled: Bonferroni over anytime-valid
        p-values, or e-BH over the current e-values.
    thresholds : Thresholds, optional
        The score thresholds clients compare the score with (default: the
        config's). A sequential verdict has no weighted score; it is reported as
        100 (pass), 0 (fail), or halfway between the thresholds (marginal), so that
        a client reading only the score agrees with the verdict.

    Notes
    -----
    :meth:`update` takes the newest batch of values per metric and returns the
    current :class:`CanaryResult`: verdict ``fail`` as soon as a metric's
    regression is established, ``pass`` early when every scored (not muted) metric
    excludes a relevant regression, otherwise ``pending``. :meth:`finish` ends the
    analysis with one final fixed-horizon look per metric (``Assessment.p_final``,
    Bonferroni over metrics): ``fail`` when it establishes a regression, or when a
    critical or must-have metric has no data; ``marginal`` when a scored metric is
    inconclusive (its data too thin: ``Assessment.inconclusive``) or has no data;
    otherwise ``pass``. :meth:`to_state` and :meth:`restore` persist and resume it.
    Test: ``tests/test_sequential.py``, ``tests/test_wrong_pass.py``.
    """

    def __init__(
        self,
        config: CanaryConfig | Mapping[str, Any] | str,
        alpha: float = 0.05,
        *,
        family: Literal["bonferroni", "e-bh"] = "bonferroni",
        registry: Registry | None = None,
        thresholds: Thresholds | None = None,
    ) -> None:
        if not 0 < alpha < 1:
            raise KayentaError(f"alpha: {alpha} is not between 0 and 1")
        if family not in ("bonferroni", "e-bh"):
            raise KayentaError(f"family: {family!r} is not 'bonferroni' or 'e-bh'")
        self.registry = registry or default_registry()
        self.config = (
            config
            if isinstance(config, CanaryConfig)
            else load_config(
                config if isinstance(config, Mapping) else str(config),
                registry=self.registry,
                mode="sequential",
            )
        )
        self.alpha = alpha
        self.family = family
        self.thresholds = thresholds or self.config.thresholds
        scored = [m for m in self.config.metrics if not m.muted]
        self.level = alpha / max(1, len(scored))  # each metric's share under Bonferroni
        self.tracks: dict[str, _MetricTrack] = {}
        for metric in self.config.metrics:
            judge = metric.build_judge(self.registry)
            if not getattr(judge, "sequential", False):
                raise KayentaError(
                    f"metric {metric.name!r}: judge {metric.judge_type} is not sequential "
                    f"(use one of {', '.join(SEQUENTIAL_JUDGES)})"
                )
            assert isinstance(judge, SequentialJudge)
            self.tracks[metric.name] = _MetricTrack(metric, judge, judge.new_state(self.level))
        self.looks = 0
        self.finished = False
        self.decided: CanaryResult | None = None

    def update(self, baseline: Mapping[str, Any], canary: Mapping[str, Any]) -> CanaryResult:
        """Fold the newest batch of values per metric in and return the current result."""
        if self.decided is not None:
            return self.decided
        unknown = (set(baseline) | set(canary)) - set(self.tracks)
        if unknown:
            raise KayentaError(f"no metric {sorted(unknown)[0]!r} in config {self.config.name!r}")
        updated: dict[str, dict[str, Any]] = {}
        for name, track in self.tracks.items():
            if name in baseline or name in canary:
                if name not in baseline or name not in canary:
                    side = "baseline" if name not in baseline else "canary"
                    raise KayentaError(f"metric {name!r}: the {side} has no batch; give both sides")
                # On a copy: a batch rejected for one metric leaves every metric unchanged.
                updated[name] = track.judge.update(copy_state(track.state), baseline[name], canary[name])
        for name, state in updated.items():
            self.tracks[name].state = state
        self.looks += 1
        result = self._result(final=False)
        if result.verdict is not Verdict.PENDING:
            self.decided = result
        return result

    def finish(self) -> CanaryResult:
        """End the analysis (its lifetime is over) and return the final result."""
        self.finished = True
        if self.decided is not None:
            return self.decided
        self.decided = self._result(final=True)
        return self.decided

    def to_state(self) -> dict[str, Any]:
        """Return everything needed to resume (JSON-serializable), a decision included."""
        decision = None
        if self.decided is not None:
            d = self.decided
            decision = {
                "verdict": d.verdict.value,
                "score": d.score,
                "reason": d.reason,
                "warnings": list(d.warnings),
            }
        return {
            "alpha": self.alpha,
            "family": self.family,
            "looks": self.looks,
            "finished": self.finished,
            "decision": decision,
            "metrics": {name: track.state for name, track in self.tracks.items()},
        }

    def restore(self, state: Mapping[str, Any]) -> SequentialAnalysis:
        """Resume from :meth:`to_state`'s output (same config); a decision taken stays taken."""
        self.looks = int(state.get("looks", 0))
        self.finished = bool(state.get("finished", False))
        for name, metric_state in state.get("metrics", {}).items():
            if name in self.tracks:
                self.tracks[name].state = copy_state(dict(metric_state))
        decision = state.get("decision")
        if decision:
            current = self._result(final=self.finished)
            self.decided = replace(
                current,
                verdict=Verdict(decision["verdict"]),
                score=decision["score"],
                reason=decision["reason"],
                warnings=tuple(decision.get("warnings", current.warnings)),
            )
        return self

    # ---------------------------------------------------------------- decisions

    def _result(self, *, final: bool) -> CanaryResult:
        assessments = {name: t.judge.assess(t.state) for name, t in self.tracks.items()}
        scored = [n for n, t in self.tracks.items() if not t.config.muted]
        regressed = self._regressed(assessments, scored)
        # The final look: once, when the lifetime ends, each metric's fixed-horizon test (Bonferroni).
        at_end = (
            {n for n in scored if n not in regressed and assessments[n].p_final <= self.level}
            if final
            else set()
        )
        regressed |= at_end
        safe = {n for n in scored if n not in regressed and assessments[n].p_safe <= self.level}
        results = [
            self._metric_result(
                track,
                assessments[name],
                name in regressed,
                name in safe,
                final_look=name in at_end,
                final=final,
            )
            for name, track in self.tracks.items()
        ]
        verdict, reason = self._decide(results, scored, regressed, at_end, safe, final)
        return CanaryResult(
            verdict=verdict,
            score=self._score(verdict),
            reason=reason,
            thresholds=self.thresholds,
            metrics=tuple(results),
            groups=_group_scores(results),
            judge_name="kayenta-py-sequential",
            warnings=tuple(self.config.warnings) + ((reason,) if verdict is Verdict.MARGINAL else ()),
        )

    def _decide(
        self,
        results: list[MetricResult],
        scored: list[str],
        regressed: set[str],
        at_end: set[str],
        safe: set[str],
        final: bool,
    ) -> tuple[Verdict, str]:
        """The verdict and its reason: a pass needs every scored metric's evidence."""
        by_name = {r.name: r for r in results}
        missing = [n for n in scored if by_name[n].classification in _NO_DATA]
        # A critical metric without data fails, as in fixed mode; NodataFailMetric is never a pass.
        failing_missing = [
            n
            for n in missing
            if by_name[n].classification is Classification.NODATA_FAIL_METRIC or by_name[n].critical_metric
        ]
        thin = [n for n in scored if by_name[n].details.get("inconclusive") and n not in missing]
        undecided = [n for n in scored if n not in safe and n not in regressed]
        alpha = f"alpha {self.alpha:g}"
        if regressed:
            how = "at the final look" if regressed == at_end else "anytime-valid"
            return (
                Verdict.FAIL,
                f"fail: regression established in {', '.join(sorted(regressed))} ({how}, {alpha})",
            )
        if final and not scored:
            return Verdict.FAIL, "fail: no metric was scored (all are muted), so nothing supports a pass"
        if final and failing_missing:
            return Verdict.FAIL, "fail: no data for " + ", ".join(
                f"{n} ({'critical' if by_name[n].critical_metric else 'must have data'})"
                for n in failing_missing
            )
        if scored and not undecided:
            return Verdict.PASS, (
                f"pass: every scored metric excludes a relevant regression ({alpha}) after {self.looks} looks"
            )
        if final and (missing or thin):
            lacking = [f"{n}: no data" for n in missing] + [
                f"{n}: {by_name[n].details['inconclusive']}" for n in thin
            ]
            return Verdict.MARGINAL, inconclusive_reason(lacking)
        if final:
            return Verdict.PASS, (
                f"pass: no regression established over the lifetime ({alpha}); every scored metric has "
                "enough data and none points to a relevant regression"
            )
        return Verdict.PENDING, (
            f"pending: no decision after {self.looks} looks; waiting on {', '.join(undecided) or 'data'}"
        )

    def _score(self, verdict: Verdict) -> float | None:
        """100 for pass, 0 for fail, halfway between the thresholds for marginal, None while pending."""
        if verdict is Verdict.PASS:
            return 100.0
        if verdict is Verdict.FAIL:
            return 0.0
        if verdict is Verdict.MARGINAL:
            return self.thresholds.marginal_score()
        return None

    def _regressed(self, assessments: Mapping[str, Assessment], scored: list[str]) -> set[str]:
        if self.family == "bonferroni":
            return {n for n in scored if assessments[n].p_regression <= self.level}
        # e-BH (Wang & Ramdas): reject the k largest e-values where e_(k) >= K / (alpha k).
        count = len(scored)
        ranked = sorted(scored, key=lambda n: assessments[n].e_regression, reverse=True)
        rejected = 0
        for k, name in enumerate(ranked, start=1):
            if assessments[name].e_regression >= count / (self.alpha * k):
                rejected = k
        return set(ranked[:rejected])

    def _metric_result(
        self,
        track: _MetricTrack,
        assessment: Assessment,
        regressed: bool,
        safe: bool,
        *,
        final_look: bool,
        final: bool,
    ) -> MetricResult:
        metric = track.config
        inconclusive = None
        if assessment.observations == 0:
            classification = (
                Classification.NODATA_FAIL_METRIC
                if metric.must_have_data and not metric.critical
                else Classification.NODATA
            )
            reason = "no data" if final else "no data yet"
            if metric.critical:
                reason += " (critical metric: the canary fails without it)"
            elif classification is Classification.NODATA_FAIL_METRIC:
                reason += " (the metric must have data)"
        elif regressed:
            below = assessment.estimate is not None and assessment.estimate < assessment.neutral
            lower = metric.direction is Direction.DECREASE or (metric.direction is Direction.EITHER and below)
            classification = Classification.LOW if lower else Classification.HIGH
            reason = (
                (
                    f"regression established at the final look: fixed-horizon p "
                    f"{assessment.p_final:.3g} <= {self.level:.3g} ({assessment.effect_measure} estimate "
                    f"{_number(assessment.estimate)}, confidence sequence {_interval(assessment.ci)})"
                )
                if final_look
                else (
                    f"regression established: {assessment.effect_measure} confidence sequence "
                    f"{_interval(assessment.ci)} excludes no relevant regression "
                    f"(anytime p {assessment.p_regression:.3g} <= {self.level:.3g})"
                )
            )
        else:
            classification = Classification.PASS
            if safe:
                state = "relevant regression excluded"
            elif final and assessment.inconclusive:
                inconclusive = assessment.inconclusive
                state = f"inconclusive ({inconclusive})"
            else:
                state = "no regression established" + ("" if final else " yet")
            reason = (
                f"{state}: {assessment.effect_measure} confidence sequence {_interval(assessment.ci)} "
                f"(anytime p {assessment.p_regression:.3g}, safe p {assessment.p_safe:.3g})"
            )
        return MetricResult(
            name=metric.name,
            classification=classification,
            reason=reason,
            baseline=assessment.baseline,
            canary=assessment.canary,
            judge=track.judge.full_name,
            critical=regressed and metric.critical,
            critical_metric=metric.critical,
            muted=metric.muted,
            groups=metric.groups,
            ci=assessment.ci,
            estimate=assessment.estimate,
            effect_size=assessment.estimate,
            effect_measure=assessment.effect_measure,
            details={
                "p_regression": assessment.p_regression,
                "p_safe": assessment.p_safe,
                "e_regression": assessment.e_regression,
                "p_final": assessment.p_final,
                "level": self.level,
                "regression_excluded": safe,
                "observations": assessment.observations,
                "inconclusive": inconclusive,
                **assessment.details,
            },
        )


_NO_DATA = (Classification.NODATA, Classification.NODATA_FAIL_METRIC)


def _group_scores(results: list[MetricResult]) -> tuple[GroupScore, ...]:
    """Score each group 100 when all its scored metrics pass, else 0 (sequential verdicts have no weights)."""
    return tuple(
        GroupScore(
            group,
            0.0
            if any(
                r.classification is not Classification.PASS or r.details.get("inconclusive")
                for r in results
                if group in r.groups and not r.muted
            )
            else 100.0,
            False,
            0.0,
            {},
        )
        for group in dict.fromkeys(g for r in results for g in r.groups)
    )


def _number(value: float | None) -> str:
    return "(none yet)" if value is None else f"{value:.4g}"


def _interval(ci: tuple[float, float] | None) -> str:
    if ci is None:
        return "(none yet)"
    return f"[{ci[0]:.4g}, {ci[1]:.4g}]"


def copy_state(value: Any) -> Any:
    """A deep copy of a JSON-like judge state (dicts, lists, scalars), much faster than ``copy.deepcopy``.

    A list of scalars (a grid of log-likelihoods) is copied in one step; scalars are immutable.
    """
    if isinstance(value, dict):
        return {k: copy_state(v) for k, v in value.items()}
    if isinstance(value, list):
        if not value or not (isinstance(value[0], dict | list) or isinstance(value[-1], dict | list)):
            return list(value)  # a list of scalars (state lists are homogeneous or short records)
        return [copy_state(v) for v in value]
    return value


def clip_p(value: float) -> float:
    """Return ``value`` clipped into [0, 1] (NaN becomes 1)."""
    if math.isnan(value):
        return 1.0
    return min(1.0, max(0.0, value))


# ---------------------------------------------------------------- live data


@dataclass(frozen=True)
class SequentialBatch:
    """One window's data shaped for each metric's sequential judge, and the raw pairs behind it."""

    baseline: dict[str, Any]
    canary: dict[str, Any]
    pairs: list[MetricSetPair]
    warnings: list[str]


def fetch_sequential_batch(
    config: CanaryConfig,
    source: MetricsSource,
    baseline: Scope,
    canary: Scope,
    *,
    start: float,
    end: float,
    step: float,
    after: float | None = None,
    concurrency: int = 8,
    registry: Registry | None = None,
    deadline: float | None = None,
) -> SequentialBatch:
    """Fetch the newest window from ``source`` and shape it as batches for :meth:`SequentialAnalysis.update`.

    ``sequential-count`` metrics fetch their ``query`` (events per step) and
    ``traffic_query`` (requests per step), summed over series; ``sequential-histogram``
    metrics fetch bucket series labelled ``le``; ``sequential-rank`` metrics one series
    per side. Baseline and canary are aligned on common timestamps; points at or
    before ``after`` (the previous window's end) are dropped, so no point counts twice.
    ``deadline`` bounds the whole fetch (see :func:`fetch_metric_sets`).
    """
    registry = registry or default_registry()
    fetched: list[MetricConfig] = []
    for metric in config.metrics:
        fetched.append(metric)
        if metric.judge_type == "sequential-count":
            if not metric.traffic_query:
                raise KayentaError(f"metric {metric.name!r}: sequential-count needs a traffic_query")
            fetched.append(replace(metric, name=f"{metric.name}{TRAFFIC_SUFFIX}", query=metric.traffic_query))
    data = fetch_metric_sets(
        replace(config, metrics=tuple(fetched)),
        source,
        baseline,
        canary,
        start=start,
        end=end,
        step=step,
        concurrency=concurrency,
        deadline=deadline,
    )
    batches_b: dict[str, Any] = {}
    batches_c: dict[str, Any] = {}
    warnings: list[str] = []
    pairs = pair_metric_sets(
        replace(config, metrics=tuple(fetched)), data.baseline, data.canary, scopes=(baseline, canary)
    )
    for metric in config.metrics:
        sides = (data.baseline.get(metric.name, []), data.canary.get(metric.name, []))
        if metric.judge_type == "sequential-count":
            traffic = (
                data.baseline.get(metric.name + TRAFFIC_SUFFIX, []),
                data.canary.get(metric.name + TRAFFIC_SUFFIX, []),
            )
            counts_b, counts_c = _summed(sides[0], traffic[0]), _summed(sides[1], traffic[1])
            times = _common(list(counts_b), list(counts_c), after)
            batches_b[metric.name] = (_at(counts_b[0], times), _at(counts_b[1], times))
            batches_c[metric.name] = (_at(counts_c[0], times), _at(counts_c[1], times))
        elif metric.judge_type == "sequential-histogram":
            given = metric.judge_params.get("buckets")
            columns_b = _histogram(sides[0], metric.name)
            columns_c = _histogram(sides[1], metric.name)
            bounds = [float(x) for x in given] if given else sorted(columns_b)
            times = _common([columns_b[b] for b in bounds if b in columns_b], list(columns_c.values()), after)
            batches_b[metric.name] = {b: _at(columns_b[b], times) for b in bounds if b in columns_b}
            batches_c[metric.name] = {b: _at(column, times) for b, column in columns_c.items()}
        else:
            mine = [p for p in pairs if p.name == metric.name]
            warnings.extend(dict.fromkeys(p.warning for p in mine if p.warning))
            paired = [p for p in mine if len(p.baseline) and len(p.canary)]
            if len(paired) > 1:
                warnings.append(
                    f"metric {metric.name!r}: {len(paired)} pairs of series; only the first "
                    f"({paired[0].tags or 'no labels'}) is judged (name the labels to keep in pair_on)"
                )
            series_b = _by_time(paired[0].baseline) if paired else {}
            series_c = _by_time(paired[0].canary) if paired else {}
            times = _common([series_b], [series_c], after)
            batches_b[metric.name] = _at(series_b, times)
            batches_c[metric.name] = _at(series_c, times)
    return SequentialBatch(batches_b, batches_c, pairs, warnings)


TRAFFIC_SUFFIX = "#traffic"


def _by_time(metric_set: MetricSet) -> dict[float, float]:
    stamps = metric_set.timestamps if metric_set.timestamps is not None else np.arange(metric_set.values.size)
    return {float(t): float(v) for t, v in zip(stamps.tolist(), metric_set.values.tolist(), strict=True)}


def _summed(
    events: list[MetricSet], traffic: list[MetricSet]
) -> tuple[dict[float, float], dict[float, float]]:
    """Events and traffic per timestamp, summed over series (NaN counts as 0 events, missing traffic)."""
    out_events: dict[float, float] = {}
    out_traffic: dict[float, float] = {}
    for metric_set in events:
        for t, v in _by_time(metric_set).items():
            out_events[t] = out_events.get(t, 0.0) + (v if math.isfinite(v) else 0.0)
    for metric_set in traffic:
        for t, v in _by_time(metric_set).items():
            if math.isfinite(v):
                out_traffic[t] = out_traffic.get(t, 0.0) + v
    return {t: out_events.get(t, 0.0) for t in out_traffic}, out_traffic


def _histogram(sets: list[MetricSet], name: str) -> dict[float, dict[float, float]]:
    """Bucket counts by bound (``le``) and timestamp, summed over series, from series labelled ``le``."""
    by_bound: dict[float, dict[float, float]] = {}
    for metric_set in sets:
        le = metric_set.tags.get("le")
        if le is None:
            raise KayentaError(f"metric {name!r}: a histogram series has no 'le' label")
        try:
            bound = math.inf if le in ("+Inf", "Inf", "inf") else float(le)
        except ValueError:
            raise KayentaError(f"metric {name!r}: le={le!r} is not a bucket bound") from None
        series = by_bound.setdefault(bound, {})
        for t, v in _by_time(metric_set).items():
            series[t] = series.get(t, 0.0) + v
    return by_bound


def _common(
    baseline: list[dict[float, float]], canary: list[dict[float, float]], after: float | None
) -> list[float]:
    if not baseline or not canary:
        return []
    times = set(baseline[0])
    for series in (*baseline[1:], *canary):
        times &= set(series)
    return sorted(t for t in times if after is None or t > after)


def _at(series: dict[float, float], times: list[float]) -> npt.NDArray[np.float64]:
    return np.array([series[t] for t in times], dtype=np.float64)
