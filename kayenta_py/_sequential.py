"""Anytime-valid (sequential) analysis: judges that stay correct however often they are checked.

A sequential judge keeps a small state per metric, updated with each batch of new
points, and reports anytime-valid p-values for two one-sided questions: "is there a
relevant regression?" (a fail) and "is a relevant regression excluded?" (an early
pass), plus a confidence sequence for its effect. :class:`SequentialAnalysis`
controls the family-wise error over all metrics (Bonferroni, or e-BH) and decides:
fail as soon as a regression is established; pass early when every critical metric
excludes one; otherwise pending until :meth:`SequentialAnalysis.finish`, which passes
with a flag when the evidence is still too thin.

References: Lindon & Malek, NeurIPS 2022 (counts); Waudby-Smith & Ramdas, JRSS-B 2024
(betting confidence sequences); Wang & Ramdas, JRSS-B 2022 (e-BH). DESIGN.md 4.3.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel

from kayenta_py._config import CanaryConfig, MetricConfig, load_config
from kayenta_py._errors import KayentaError
from kayenta_py._model import (
    CanaryResult,
    Classification,
    Direction,
    GroupScore,
    MetricResult,
    SummaryStats,
    Thresholds,
    Verdict,
)
from kayenta_py._registry import Registry, default_registry

SEQUENTIAL_JUDGES = ("sequential-count", "sequential-histogram", "sequential-rank")
EMPTY_STATS = SummaryStats(0.0, 0.0, 0.0, 0.0, 0)


@dataclass(frozen=True)
class Assessment:
    """A sequential judge's current evidence on one metric.

    ``p_regression`` is an anytime-valid p-value for "no relevant regression"
    (small: a regression is established); ``p_safe`` one for "a relevant
    regression" (small: it is excluded). ``e_regression`` is the current
    e-value behind ``p_regression`` (for e-BH). ``ci`` is the confidence
    sequence of ``effect_measure`` at the level asked for.
    """

    p_regression: float
    p_safe: float
    e_regression: float
    ci: tuple[float, float] | None
    estimate: float | None
    effect_measure: str
    observations: int
    baseline: SummaryStats = EMPTY_STATS
    canary: SummaryStats = EMPTY_STATS
    details: Mapping[str, Any] = field(default_factory=dict)


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

    Notes
    -----
    :meth:`update` takes the newest batch of values per metric and returns the
    current :class:`CanaryResult`: verdict ``fail`` as soon as a metric's
    regression is established, ``pass`` early when every critical metric (every
    metric, if none is critical) excludes a relevant regression, otherwise
    ``pending``. :meth:`finish` ends the analysis: ``pass`` unless a regression
    was established, with ``details["inconclusive"]`` and a reason when a critical
    metric still cannot exclude one. :meth:`to_state` / :meth:`from_state`
    persist and resume it.
    """

    def __init__(
        self,
        config: CanaryConfig | Mapping[str, Any] | str,
        alpha: float = 0.05,
        *,
        family: Literal["bonferroni", "e-bh"] = "bonferroni",
        registry: Registry | None = None,
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
        for name, track in self.tracks.items():
            if name in baseline or name in canary:
                if name not in baseline or name not in canary:
                    side = "baseline" if name not in baseline else "canary"
                    raise KayentaError(
                        f"metric {name!r}: the {side} has no batch; give both sides or neither"
                    )
                track.state = track.judge.update(track.state, baseline[name], canary[name])
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
        """Return everything needed to resume (JSON-serializable)."""
        return {
            "alpha": self.alpha,
            "family": self.family,
            "looks": self.looks,
            "metrics": {name: track.state for name, track in self.tracks.items()},
        }

    def restore(self, state: Mapping[str, Any]) -> SequentialAnalysis:
        """Resume from :meth:`to_state`'s output (same config)."""
        self.looks = int(state.get("looks", 0))
        for name, metric_state in state.get("metrics", {}).items():
            if name in self.tracks:
                self.tracks[name].state = dict(metric_state)
        return self

    # ---------------------------------------------------------------- decisions

    def _result(self, *, final: bool) -> CanaryResult:
        assessments = {name: t.judge.assess(t.state) for name, t in self.tracks.items()}
        scored = [n for n, t in self.tracks.items() if not t.config.muted]
        regressed = self._regressed(assessments, scored)
        safe = {n for n in scored if assessments[n].p_safe <= self.level}
        critical = [n for n in scored if self.tracks[n].config.critical] or scored
        results = []
        for name, track in self.tracks.items():
            results.append(self._metric_result(track, assessments[name], name in regressed, name in safe))
        thin = [n for n in critical if n not in safe and n not in regressed]
        if regressed:
            names = ", ".join(sorted(regressed))
            verdict, score = Verdict.FAIL, 0.0
            reason = f"fail: regression established in {names} (anytime-valid, alpha {self.alpha:g})"
        elif scored and not thin:
            verdict, score = Verdict.PASS, 100.0
            reason = (
                f"pass: every {'critical ' if any(self.tracks[n].config.critical for n in scored) else ''}"
                f"metric excludes a relevant regression (alpha {self.alpha:g}) after {self.looks} looks"
            )
        elif final:
            verdict, score = Verdict.PASS, 100.0
            reason = "pass: no regression established over the lifetime"
            if thin:
                reason += f"; inconclusive: the evidence is too thin to exclude one in {', '.join(thin)}"
        else:
            verdict, score = Verdict.PENDING, None
            reason = f"pending: no decision after {self.looks} looks; waiting on {', '.join(thin) or 'data'}"
        groups = tuple(
            GroupScore(
                group,
                0.0
                if any(
                    r.classification is not Classification.PASS
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
        return CanaryResult(
            verdict=verdict,
            score=score,
            reason=reason,
            thresholds=Thresholds(),
            metrics=tuple(results),
            groups=groups,
            judge_name="kayenta-py-sequential",
            warnings=tuple(self.config.warnings)
            + ((f"inconclusive: {', '.join(thin)}",) if final and thin and not regressed else ()),
        )

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
        self, track: _MetricTrack, assessment: Assessment, regressed: bool, safe: bool
    ) -> MetricResult:
        metric = track.config
        if assessment.observations == 0:
            classification = (
                Classification.NODATA_FAIL_METRIC
                if metric.must_have_data and not metric.critical
                else Classification.NODATA
            )
            reason = "no data yet"
        elif regressed:
            classification = (
                Classification.LOW if metric.direction is Direction.DECREASE else Classification.HIGH
            )
            reason = (
                f"regression established: {assessment.effect_measure} confidence sequence "
                f"{_interval(assessment.ci)} excludes no relevant regression "
                f"(anytime p {assessment.p_regression:.3g} <= {self.level:.3g})"
            )
        else:
            classification = Classification.PASS
            state = "relevant regression excluded" if safe else "no regression established yet"
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
                "level": self.level,
                "regression_excluded": safe,
                "observations": assessment.observations,
                **assessment.details,
            },
        )


def _interval(ci: tuple[float, float] | None) -> str:
    if ci is None:
        return "(none yet)"
    return f"[{ci[0]:.4g}, {ci[1]:.4g}]"


def clip_p(value: float) -> float:
    """Return ``value`` clipped into [0, 1] (NaN becomes 1)."""
    if math.isnan(value):
        return 1.0
    return min(1.0, max(0.0, value))
