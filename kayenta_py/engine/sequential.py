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

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from kayenta_py.config.loader import load_config
from kayenta_py.config.model import CanaryConfig, MetricConfig
from kayenta_py.config.registry import Registry, default_registry
from kayenta_py.engine.scoring import inconclusive_reason
from kayenta_py.engine.sequential_judge import Assessment, SequentialJudge, copy_state
from kayenta_py.model.errors import FieldError, KayentaError
from kayenta_py.model.types import (
    CanaryResult,
    Classification,
    Direction,
    GroupScore,
    MetricResult,
    Thresholds,
    Verdict,
)


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
            raise FieldError("alpha", f"{alpha} is not between 0 and 1")
        if family not in ("bonferroni", "e-bh"):
            raise FieldError("family", f"{family!r} is not 'bonferroni' or 'e-bh'")
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
                    f"(use one of {', '.join(sequential_judge_names(self.registry))})"
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


def sequential_judge_names(registry: Registry) -> list[str]:
    """Return the registered judges with a sequential form."""
    return [n for n in registry.judge_names() if getattr(registry.judge_class(n), "sequential", False)]


def _number(value: float | None) -> str:
    return "(none yet)" if value is None else f"{value:.4g}"


def _interval(ci: tuple[float, float] | None) -> str:
    if ci is None:
        return "(none yet)"
    return f"[{ci[0]:.4g}, {ci[1]:.4g}]"
