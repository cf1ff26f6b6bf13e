"""Sequential (anytime-valid) judges and :class:`SequentialAnalysis` (issue 6, DESIGN 4.3).

The Monte-Carlo tests are seeded; each bound is the nominal rate plus about two
binomial standard deviations (so a wrong implementation can still fail them) and
each test prints what it measured (``pytest -s``). A canary is "checked at every
look" as a rollout controller would: the newest batch is folded in and the verdict
read; a sequential judge's anytime p-value is the running minimum over looks, so
it is below alpha at the end of a run exactly when it was at some look (checked
directly in ``test_anytime_p_values_are_running_extrema``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from scipy.signal import lfilter
from scipy.special import betaln, logsumexp
from scipy.stats import norm

import kayenta_py
from judges import SequentialCountJudge, SequentialHistogramJudge, SequentialRankJudge
from judges.sequential.rank import _centred_signs
from judges.sequential.rate_ratio import LOG_RATIO_GRID, RateRatioTest
from kayenta_py import (
    CanaryResult,
    Classification,
    ConfigError,
    Direction,
    KayentaError,
    SequentialAnalysis,
    SequentialJudge,
    Verdict,
)

FloatArray = npt.NDArray[np.float64]
CountBatch = tuple[FloatArray, FloatArray]  # (events, traffic) per time step
Batches = list[tuple[Any, Any]]  # (baseline, canary) per look

ALPHA = 0.05
LOOKS = 60
BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, math.inf]


def bound(runs: int, rate: float = ALPHA) -> float:
    """``rate`` plus two binomial standard deviations of a rate measured over ``runs`` runs."""
    return rate + 2.0 * math.sqrt(rate * (1.0 - rate) / runs)


def show(label: str, **values: float | int | str | None) -> None:
    """Print a measured quantity (visible with ``pytest -s``)."""
    text = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
    print(f"\n[sequential] {label}: {text}")


# ---------------------------------------------------------------- generators


def cyclic_traffic(rng: np.random.Generator, steps: int, mean: float) -> tuple[FloatArray, FloatArray]:
    """Requests per step on each side: a strong traffic cycle; the canary's share wanders in 10-30%."""
    t = np.arange(steps, dtype=np.float64)
    cycle = 1.0 + 0.6 * np.sin(2 * math.pi * t / rng.uniform(60, 240) + rng.uniform(0, 2 * math.pi))
    share = rng.uniform(0.12, 0.28) + 0.06 * np.sin(
        2 * math.pi * t / rng.uniform(40, 160) + rng.uniform(0, 2 * math.pi)
    )
    share = np.clip(share, 0.10, 0.30)
    baseline = rng.poisson(mean * cycle * (1.0 - share)).astype(np.float64)
    canary = rng.poisson(mean * cycle * share).astype(np.float64)
    return baseline, canary


def count_batches(
    rng: np.random.Generator,
    *,
    looks: int,
    steps: int,
    mean: float,
    rate_b: float,
    rate_c: float,
    binomial: bool = False,
) -> list[tuple[CountBatch, CountBatch]]:
    """Error counts under traffic cycles, ``steps`` time steps per look."""
    traffic_b, traffic_c = cyclic_traffic(rng, looks * steps, mean)
    if binomial:
        events_b = rng.binomial(traffic_b.astype(np.int64), rate_b).astype(np.float64)
        events_c = rng.binomial(traffic_c.astype(np.int64), rate_c).astype(np.float64)
    else:
        events_b = rng.poisson(rate_b * traffic_b).astype(np.float64)
        events_c = rng.poisson(rate_c * traffic_c).astype(np.float64)
    out = []
    for look in range(looks):
        s = slice(look * steps, (look + 1) * steps)
        out.append(((events_b[s], traffic_b[s]), (events_c[s], traffic_c[s])))
    return out


def ar1(rng: np.random.Generator, phi: float, n: int, sd: float) -> FloatArray:
    """A stationary AR(1) series with marginal standard deviation ``sd``."""
    innovations = rng.normal(0.0, sd * math.sqrt(1.0 - phi * phi), n)
    innovations[0] = rng.normal(0.0, sd)  # start in the stationary distribution
    return np.asarray(lfilter([1.0], [1.0, -phi], innovations), dtype=np.float64)


def latency_series(
    rng: np.random.Generator, phi: float, n: int, *, shift: float = 1.0, sd: float = 10.0
) -> tuple[FloatArray, FloatArray]:
    """Baseline and canary: a trend both share (a cycle and a drift), independent AR(1) noise each.

    The canary is ``shift`` times its series (``1.25``: 25% slower).
    """
    t = np.arange(n, dtype=np.float64)
    trend = (
        100.0 * (1.0 + 0.3 * np.sin(2 * math.pi * (t + rng.uniform(0, 720)) / 720))
        + rng.uniform(-0.05, 0.05) * t
    )
    return trend + ar1(rng, phi, n, sd), shift * (trend + ar1(rng, phi, n, sd))


def rank_batches(baseline: FloatArray, canary: FloatArray, per_look: int) -> Batches:
    return [(baseline[i : i + per_look], canary[i : i + per_look]) for i in range(0, baseline.size, per_look)]


def bucket_probabilities(median: float, sigma: float) -> FloatArray:
    """Probability of each bucket (non-cumulative) for lognormal latencies."""
    finite = np.array(BUCKETS[:-1], dtype=np.float64)
    cdf = norm.cdf((np.log(finite) - math.log(median)) / sigma)
    return np.diff(np.concatenate([[0.0], cdf, [1.0]]))


def histogram_steps(
    rng: np.random.Generator, requests: FloatArray, median: float, sigma: float
) -> FloatArray:
    """Prometheus-style bucket counts per step (cumulative over ``le``) of lognormal latencies."""
    counts = rng.multinomial(requests.astype(np.int64), bucket_probabilities(median, sigma))
    return np.cumsum(counts, axis=1).astype(np.float64)


def histogram_batches(
    rng: np.random.Generator,
    *,
    looks: int,
    steps: int,
    mean: float,
    median: float = 0.08,
    sigma: float = 0.7,
    slowdown: float = 1.0,
) -> Batches:
    requests_b, requests_c = cyclic_traffic(rng, looks * steps, mean)
    hist_b = histogram_steps(rng, requests_b, median, sigma)
    hist_c = histogram_steps(rng, requests_c, median * slowdown, sigma)
    return [(hist_b[i : i + steps], hist_c[i : i + steps]) for i in range(0, looks * steps, steps)]


def lognormal_bucket_quantile(median: float, sigma: float, q: float) -> float:
    """The quantile histogram_quantile reports for exact lognormal bucket fractions."""
    finite = np.array(BUCKETS[:-1], dtype=np.float64)
    cdf = norm.cdf((np.log(finite) - math.log(median)) / sigma)
    index = int(np.searchsorted(cdf, q))
    lower = 0.0 if index == 0 else finite[index - 1]
    below = 0.0 if index == 0 else cdf[index - 1]
    return float(lower + (finite[index] - lower) * (q - below) / (cdf[index] - below))


# ---------------------------------------------------------------- running judges and analyses


def final_assessment(judge: SequentialJudge, batches: Iterable[tuple[Any, Any]], alpha: float) -> Any:
    """Fold every batch into a fresh state (one look each) and return the last assessment."""
    state = judge.new_state(alpha)
    for baseline, canary in batches:
        state = judge.update(state, baseline, canary)
    return judge.assess(state)


def first_rejection(judge: SequentialJudge, batches: Iterable[tuple[Any, Any]], alpha: float) -> int | None:
    """The first look (1-based) at which the judge establishes a regression at ``alpha``."""
    state = judge.new_state(alpha)
    for look, (baseline, canary) in enumerate(batches, start=1):
        state = judge.update(state, baseline, canary)
        if judge.assess(state).p_regression <= alpha:
            return look
    return None


def run_analysis(
    analysis: SequentialAnalysis, looks: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]
) -> tuple[CanaryResult, int]:
    """Feed looks until a decision; return the last result and the number of looks used."""
    result = None
    for look, (baseline, canary) in enumerate(looks, start=1):
        result = analysis.update(baseline, canary)
        if result.verdict is not Verdict.PENDING:
            return result, look
    assert result is not None
    return result, len(looks)


def as_looks(name: str, batches: Batches) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    return [({name: b}, {name: c}) for b, c in batches]


ERRORS_CONFIG: dict[str, Any] = {"name": "errors", "metrics": [{"name": "errors", "kind": "errors"}]}
LATENCY_CONFIG: dict[str, Any] = {"name": "latency", "metrics": [{"name": "latency", "kind": "latency"}]}


# ---------------------------------------------------------------- 1. closed form (Lindon & Malek)


def two_sided_log_e_at_one(state: Mapping[str, Any]) -> float:
    """The mixture e-value against r = 1 held in a RateRatioTest state."""
    loglik = np.asarray(state["loglik"], dtype=np.float64)
    log_prior = np.asarray(state["log_prior"], dtype=np.float64)
    return float(logsumexp(log_prior + loglik) - np.interp(0.0, LOG_RATIO_GRID, loglik))


def closed_form_log_bf(n_b: float, n_c: float, rho_c: float, k: float) -> float:
    """Lindon & Malek's beta-binomial Bayes factor against equal rates (log)."""
    rho_b = 1.0 - rho_c
    return float(
        betaln(k * rho_c + n_c, k * rho_b + n_b)
        - betaln(k * rho_c, k * rho_b)
        - n_c * math.log(rho_c)
        - n_b * math.log(rho_b)
    )


@pytest.mark.parametrize(
    ("n_b", "n_c", "rho_c", "k"),
    [
        (0, 0, 0.2, 100.0),
        (50, 10, 0.2, 100.0),
        (0, 12, 0.2, 100.0),
        (1000, 300, 0.25, 100.0),
        (20000, 5100, 0.2, 100.0),
        (300, 80, 0.1, 20.0),
        (300, 80, 0.1, 500.0),
        (40, 40, 0.5, 100.0),
        (10, 100, 0.1, 100.0),
        (700, 160, 0.3, 50.0),
    ],
)
def test_rate_ratio_mixture_equals_lindon_malek_closed_form(
    n_b: int, n_c: int, rho_c: float, k: float
) -> None:
    """Constant traffic shares (the totals may cycle): the grid mixture is the beta-binomial Bayes factor."""
    rng = np.random.default_rng(n_b * 7919 + n_c)
    steps = 12
    total = 1000.0 * (1.0 + 0.8 * np.sin(np.arange(steps)))  # traffic cycles, the share does not
    traffic_b, traffic_c = total * (1.0 - rho_c), total * rho_c
    # Spread the events over the steps at random (only the totals matter), in three batches.
    events_b = rng.multinomial(n_b, np.full(steps, 1.0 / steps)).astype(np.float64)
    events_c = rng.multinomial(n_c, np.full(steps, 1.0 / steps)).astype(np.float64)
    test = RateRatioTest(1.2, concentration=k)
    state = test.new_state()
    for s in (slice(0, 3), slice(3, 8), slice(8, steps)):
        state = test.update(state, events_b[s], traffic_b[s], events_c[s], traffic_c[s])
    expected = closed_form_log_bf(n_b, n_c, rho_c, k)
    got = two_sided_log_e_at_one(state)
    assert math.exp(got - expected) == pytest.approx(1.0, rel=0.01), (got, expected)
    assert state["events"] == [float(n_b), float(n_c)]


# ---------------------------------------------------------------- 2. sequential-count


def test_count_aa_sharp_null_false_fail_rate_under_traffic_cycles() -> None:
    """A/A Poisson errors, min_effect 1.0 (the null's edge): the e-process keeps its level at every look."""
    rng = np.random.default_rng(20261)
    runs = 100
    fails = 0
    for _ in range(runs):
        batches = count_batches(rng, looks=LOOKS, steps=5, mean=400.0, rate_b=0.01, rate_c=0.01)
        p = final_assessment(SequentialCountJudge(min_effect=1.0), batches, ALPHA).p_regression
        fails += p <= ALPHA
    rate = fails / runs
    show("count A/A, min_effect 1.0, 60 looks", runs=runs, false_fail=rate, bound=bound(runs))
    assert rate <= bound(runs)


def test_count_aa_default_analysis_false_fail_rate() -> None:
    """A/A errors through SequentialAnalysis (defaults: min_effect 1.2), checked at every one of 60 looks."""
    rng = np.random.default_rng(20262)
    runs = 150
    fails = passes = 0
    for _ in range(runs):
        batches = count_batches(rng, looks=LOOKS, steps=5, mean=1000.0, rate_b=0.01, rate_c=0.01)
        result, _ = run_analysis(SequentialAnalysis(ERRORS_CONFIG), as_looks("errors", batches))
        fails += result.verdict is Verdict.FAIL
        passes += result.verdict is Verdict.PASS
    rate = fails / runs
    show("count A/A, SequentialAnalysis", runs=runs, false_fail=rate, pass_early=passes / runs)
    assert rate <= bound(runs)
    assert passes / runs >= 0.5  # enough traffic to exclude a 1.2x regression within the hour


def test_count_fails_canary_with_errors_where_baseline_has_none() -> None:
    rng = np.random.default_rng(20263)
    runs = 100
    looks_used, errors_needed = [], []
    for _ in range(runs):
        batches = count_batches(rng, looks=LOOKS, steps=5, mean=1000.0, rate_b=0.0, rate_c=0.005)
        result, look = run_analysis(SequentialAnalysis(ERRORS_CONFIG), as_looks("errors", batches))
        assert result.verdict is Verdict.FAIL, result.reason
        metric = result.metric("errors")
        assert metric.classification is Classification.HIGH
        assert metric.details["events"]["baseline"] == 0.0
        looks_used.append(look)
        errors_needed.append(metric.details["events"]["canary"])
    show(
        "count zero-error baseline, canary 0.5% (about 5 canary errors a look, 1-2 in a traffic trough)",
        runs=runs,
        detected=1.0,
        median_looks=float(np.median(looks_used)),
        max_looks=max(looks_used),
        median_canary_errors_at_fail=float(np.median(errors_needed)),
        max_canary_errors_at_fail=max(errors_needed),
    )
    # The overdispersion-robust score sequence must agree: it needs a dozen steps of evidence that the
    # canary's errors are steady, not one burst (about 50 canary errors against none).
    assert float(np.median(looks_used)) <= 12
    assert max(looks_used) <= 25
    assert max(errors_needed) <= 80


def test_count_detects_doubled_low_error_rate() -> None:
    rng = np.random.default_rng(20264)
    runs = 200
    detected = 0
    looks_used = []
    for _ in range(runs):
        batches = count_batches(
            rng, looks=LOOKS, steps=5, mean=2000.0, rate_b=0.002, rate_c=0.004, binomial=True
        )
        result, look = run_analysis(SequentialAnalysis(ERRORS_CONFIG), as_looks("errors", batches))
        if result.verdict is Verdict.FAIL:
            detected += 1
            looks_used.append(look)
    rate = detected / runs
    show(
        "count 0.2% -> 0.4%",
        runs=runs,
        detected=rate,
        median_looks=float(np.median(looks_used)) if looks_used else None,
    )
    assert rate >= 0.9


def test_count_harmless_difference_with_huge_traffic_does_not_fail() -> None:
    """Ratio 1.05 under min_effect 1.2 with huge traffic: no fail, and the regression is excluded early."""
    rng = np.random.default_rng(20265)
    runs = 100
    fails = passes = 0
    for _ in range(runs):
        batches = count_batches(rng, looks=LOOKS, steps=5, mean=50000.0, rate_b=0.01, rate_c=0.0105)
        analysis = SequentialAnalysis(ERRORS_CONFIG)
        result, _ = run_analysis(analysis, as_looks("errors", batches))
        fails += result.verdict is Verdict.FAIL
        if result.verdict is Verdict.PASS:
            passes += 1
            assert result.metric("errors").details["regression_excluded"] is True
            assert "excludes a relevant regression" in result.reason
    show(
        "count ratio 1.05, min_effect 1.2, huge traffic",
        runs=runs,
        fail=fails / runs,
        pass_early=passes / runs,
    )
    assert fails / runs <= ALPHA
    assert passes / runs >= 0.9


@pytest.mark.parametrize("kind", ["count", "histogram"])
def test_overwhelming_evidence_fails_the_canary(kind: str) -> None:
    if kind == "count":  # the robust score sequence needs a few steps of evidence: 10 steps here
        traffic = np.full(10, 10000.0)
        config: dict[str, Any] = ERRORS_CONFIG
        batch: tuple[Any, Any] = ((np.full(10, 100.0), traffic), (np.full(10, 1000.0), traffic))
    else:
        config = {
            "metrics": [{"name": "errors", "judge": {"type": "sequential-histogram", "buckets": BUCKETS}}]
        }
        rng = np.random.default_rng(7)
        requests = np.full(10, 20000.0)
        batch = (histogram_steps(rng, requests, 0.08, 0.7), histogram_steps(rng, requests, 0.3, 0.7))
    result = SequentialAnalysis(config).update({"errors": batch[0]}, {"errors": batch[1]})
    assert result.verdict is Verdict.FAIL


@pytest.mark.parametrize("ratio", [1.5, 0.6])
def test_count_confidence_sequence_covers_true_ratio(ratio: float) -> None:
    """The error-rate ratio's confidence sequence covers the truth at the end, and at every look."""
    rng = np.random.default_rng(int(ratio * 1000))
    runs = 150
    covered_end = covered_always = 0
    widths = []
    for _ in range(runs):
        judge = SequentialCountJudge()
        state = judge.new_state(ALPHA)
        always = True
        ci = None
        for baseline, canary in count_batches(
            rng, looks=8, steps=30, mean=500.0, rate_b=0.01, rate_c=0.01 * ratio
        ):
            state = judge.update(state, baseline, canary)
            ci = judge.assess(state).ci
            always = always and ci is not None and ci[0] <= ratio <= ci[1]
        assert ci is not None
        covered_end += ci[0] <= ratio <= ci[1]
        covered_always += always
        widths.append(ci[1] / ci[0])
    show(
        f"count CS coverage, ratio {ratio}",
        runs=runs,
        covered_end=covered_end / runs,
        covered_every_look=covered_always / runs,
        median_width=float(np.median(widths)),
    )
    assert covered_end / runs >= 0.95
    assert covered_always / runs >= 1.0 - bound(runs)
    assert float(np.median(widths)) < 3.0  # informative, not the whole grid


# ---------------------------------------------------------------- 3 and 6. sequential-rank


def rank_fails(judge: SequentialRankJudge, baseline: FloatArray, canary: FloatArray) -> bool:
    """Whether the judge fails the canary at any look (its anytime p-value is a running minimum) or at
    the final look once the last batch is in."""
    assessment = final_assessment(judge, rank_batches(baseline, canary, 6), ALPHA)
    return bool(assessment.p_regression <= ALPHA or assessment.p_final <= ALPHA)


def rank_aa_rate(phi: float, runs: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    fails = 0
    for _ in range(runs):
        baseline, canary = latency_series(rng, phi, LOOKS * 6)
        fails += rank_fails(SequentialRankJudge(), baseline, canary)
    return fails / runs


@pytest.mark.parametrize(
    "phi",
    [
        0.0,
        0.97,
    ],
)
def test_rank_aa_false_fail_rate_on_autocorrelated_series(phi: float) -> None:
    """A/A AR(1) + shared trend, 60 looks x 6 points, the anytime p-value checked at every look."""
    runs = 300 if phi > 0.95 else 200
    rate = rank_aa_rate(phi, runs, seed=int(phi * 100) + 7)
    show(f"rank A/A phi {phi}", runs=runs, false_fail=rate, bound=bound(runs))
    assert rate <= bound(runs)


def test_rank_aa_false_fail_rate_with_latency_spikes() -> None:
    """A/A AR(1) phi 0.9 + trend where 3% of points on each side spike x3 (GC pauses, retries). The
    spikes dominate the differences' variance and make them look uncorrelated; the robust estimate
    from the signs of the relative differences keeps the inflation honest."""
    rng = np.random.default_rng(303)
    runs = 200
    fails = 0
    for _ in range(runs):
        baseline, canary = latency_series(rng, 0.9, LOOKS * 6)
        baseline = baseline * np.where(rng.random(baseline.size) < 0.03, 3.0, 1.0)
        canary = canary * np.where(rng.random(canary.size) < 0.03, 3.0, 1.0)
        fails += rank_fails(SequentialRankJudge(), baseline, canary)
    show("rank A/A phi 0.9 with spikes", runs=runs, false_fail=fails / runs, bound=bound(runs))
    assert fails / runs <= bound(runs)


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9])
def test_centred_sign_correlation_recovers_the_latent_correlation_through_spikes(phi: float) -> None:
    """sin(pi (agreement - 1/2)) of the relative differences' signs estimates an AR(1)'s phi, spikes or
    not, whatever the batch sizes; the Pearson correlation of the raw differences collapses."""
    rng = np.random.default_rng(int(phi * 10) + 1)
    n = 4000
    baseline = 100.0 * np.exp(0.1 * ar1(rng, phi, n, 1.0))
    canary = 100.0 * np.exp(0.1 * ar1(rng, phi, n, 1.0) + 0.2)  # shifted: the centre is not zero
    spikes = rng.random(n) < 0.03
    canary[spikes] *= 3.0
    accumulators = []
    for size in (1, 7, 500):
        acc: list[Any] = [0, 0.0, 0, 0.0, 0.0]
        for i in range(0, n, size):
            _centred_signs(acc, canary[i : i + size], baseline[i : i + size])
        accumulators.append(acc)
    for other in accumulators[1:]:
        assert other == pytest.approx(accumulators[0], rel=1e-9)
    estimate = math.sin(math.pi * (accumulators[0][3] / accumulators[0][2] - 0.5))
    assert estimate == pytest.approx(phi, abs=0.08)  # a spike flips about half its two pairs' agreement
    if phi == 0.9:
        d = canary - baseline
        assert np.corrcoef(d[:-1], d[1:])[0, 1] < 0.5  # what the raw differences would say


def test_rank_aa_phi_09_beside_mann_whitney_rerun_at_every_look() -> None:
    """Kayenta's practice, re-running Mann-Whitney (98%) on all data so far at every look, beside it."""
    rng = np.random.default_rng(909)
    fixed = kayenta_py.load_config(LATENCY_CONFIG)
    assert fixed.metric("latency").judge_type == "mann-whitney"
    runs = 150
    seq_fails = mw_fails = 0
    for _ in range(runs):
        baseline, canary = latency_series(rng, 0.9, LOOKS * 6)
        seq_fails += rank_fails(SequentialRankJudge(), baseline, canary)
        for n in range(6, LOOKS * 6 + 1, 6):
            verdict = kayenta_py.judge(fixed, {"latency": baseline[:n]}, {"latency": canary[:n]}).verdict
            if verdict is Verdict.FAIL:
                mw_fails += 1
                break
    seq_rate, mw_rate = seq_fails / runs, mw_fails / runs
    show("rank A/A phi 0.9", runs=runs, sequential_false_fail=seq_rate, mann_whitney_rerun_false_fail=mw_rate)
    assert seq_rate <= bound(runs)
    assert mw_rate >= 0.3  # the re-run fixed-horizon test is far above its nominal 2% (one-sided 98%)
    assert seq_rate < mw_rate


def test_rank_detects_25_percent_latency_regression() -> None:
    """+25% latency on AR(1) phi 0.9 with a trend: detected in >= 97%, as often as the re-run Mann-Whitney."""
    rng = np.random.default_rng(925)
    fixed = kayenta_py.load_config(LATENCY_CONFIG)
    runs = 200
    seq_detected = mw_detected = 0
    seq_looks = []
    for _ in range(runs):
        baseline, canary = latency_series(rng, 0.9, LOOKS * 6, shift=1.25)
        analysis = SequentialAnalysis(LATENCY_CONFIG)
        result, look = run_analysis(analysis, as_looks("latency", rank_batches(baseline, canary, 6)))
        if result.verdict is Verdict.PENDING:
            result = analysis.finish()
        if result.verdict is Verdict.FAIL:
            assert result.metric("latency").classification is Classification.HIGH
            seq_detected += 1
            seq_looks.append(look)
        for n in range(6, LOOKS * 6 + 1, 6):
            if (
                kayenta_py.judge(fixed, {"latency": baseline[:n]}, {"latency": canary[:n]}).verdict
                is Verdict.FAIL
            ):
                mw_detected += 1
                break
    show(
        "rank +25% phi 0.9",
        runs=runs,
        sequential_detected=seq_detected / runs,
        mann_whitney_rerun_detected=mw_detected / runs,
        sequential_median_looks=float(np.median(seq_looks)) if seq_looks else None,
    )
    assert seq_detected / runs >= 0.97
    # As often as the re-run Mann-Whitney, up to Monte-Carlo slack (it detects nearly every run at look 1).
    assert seq_detected / runs >= mw_detected / runs - 0.03


def test_rank_direction_decrease_is_mirrored() -> None:
    config = {"metrics": [{"name": "throughput", "kind": "business", "direction": "decrease"}]}
    rng = np.random.default_rng(31)
    runs = 60
    down_fails = up_fails = 0
    for _ in range(runs):
        baseline, canary = latency_series(rng, 0.9, LOOKS * 6, shift=0.75)
        result, _ = run_analysis(
            SequentialAnalysis(config), as_looks("throughput", rank_batches(baseline, canary, 6))
        )
        if result.verdict is Verdict.FAIL:
            down_fails += 1
            assert result.metric("throughput").classification is Classification.LOW
        baseline, canary = latency_series(rng, 0.9, LOOKS * 6, shift=1.25)
        result, _ = run_analysis(
            SequentialAnalysis(config), as_looks("throughput", rank_batches(baseline, canary, 6))
        )
        up_fails += result.verdict is Verdict.FAIL
    show(
        "rank direction decrease",
        runs=runs,
        detected_decrease=down_fails / runs,
        failed_on_increase=up_fails / runs,
    )
    assert down_fails / runs >= 0.7  # phi 0.9: the autocorrelation bound costs power (issue 12)
    assert up_fails == 0


def test_rank_either_direction_labels_a_decrease_low() -> None:
    config = {"metrics": [{"name": "kpi", "kind": "custom"}]}
    rng = np.random.default_rng(32)
    baseline, canary = latency_series(rng, 0.0, 240, shift=0.6)
    result, _ = run_analysis(SequentialAnalysis(config), as_looks("kpi", rank_batches(baseline, canary, 6)))
    assert result.verdict is Verdict.FAIL
    estimate = result.metric("kpi").estimate
    assert estimate is not None and estimate < 0.5
    assert result.metric("kpi").classification is Classification.LOW


def final_look_series(fraction: float, n: int = 120) -> tuple[FloatArray, FloatArray]:
    """A flat baseline and a canary above it at a shuffled ``fraction`` of n points (no autocorrelation)."""
    rng = np.random.default_rng(3)
    signs = np.where(rng.permutation(n) < fraction * n, 1.0, -1.0)
    baseline = np.full(n, 100.0)
    return baseline, baseline + signs * rng.uniform(1.0, 2.0, n)


def test_final_look_fails_what_the_confidence_sequence_cannot_establish() -> None:
    """theta 0.70 on 120 independent points: the time-uniform boundary is still too wide at 0.05, the one
    fixed-horizon look at the end (half the alpha) is not. Pending before finish, fail at it."""
    baseline, canary = final_look_series(0.70)
    analysis = SequentialAnalysis(LATENCY_CONFIG)
    result, _ = run_analysis(analysis, as_looks("latency", rank_batches(baseline, canary, 6)))
    assert result.verdict is Verdict.PENDING
    details = result.metric("latency").details
    assert details["p_regression"] > ALPHA
    assert details["p_final"] <= ALPHA
    final = analysis.finish()
    assert final.verdict is Verdict.FAIL
    assert "final look" in final.reason
    metric = final.metric("latency")
    assert metric.classification is Classification.HIGH
    assert metric.reason.startswith("regression established at the final look: fixed-horizon p")
    # The fixed-horizon p-value is the one-sided normal test on the long-run sd, over its alpha share.
    n, estimate, sd = details["observations"], metric.estimate, details["long_run_sd"]
    assert estimate is not None
    assert estimate == pytest.approx(0.70)
    expected = norm.sf((estimate - 0.56) / (sd / math.sqrt(n))) / 0.7  # the final look's share of alpha
    assert details["p_final"] == pytest.approx(expected, rel=1e-9)


def test_final_share_splits_the_alpha_and_zero_turns_the_final_look_off() -> None:
    baseline, canary = final_look_series(0.74)
    batches = rank_batches(baseline, canary, 6)
    split = final_assessment(SequentialRankJudge(), batches, ALPHA)
    whole = final_assessment(SequentialRankJudge(final_share=0.0), batches, ALPHA)
    assert whole.p_final == 1.0
    assert 0 < whole.p_regression < 1
    assert split.p_regression == pytest.approx(whole.p_regression / 0.3)  # the sequence keeps 30%
    assert split.p_final < ALPHA
    off = {"name": "latency", "kind": "latency", "judge": {"type": "sequential-rank", "final_share": 0}}
    analysis = SequentialAnalysis({"name": "off", "metrics": [off]})
    run_analysis(analysis, as_looks("latency", rank_batches(*final_look_series(0.70), 6)))
    # Without the final look the canary the final look fails (test above) is inconclusive, never a pass.
    assert analysis.finish().verdict is Verdict.MARGINAL
    with pytest.raises(KayentaError, match="final_share"):
        SequentialRankJudge(final_share=1.0)
    whole_alpha = {"type": "sequential-rank", "final_share": 1}
    with pytest.raises(ConfigError, match="final_share"):
        SequentialAnalysis({"metrics": [{"name": "x", "kind": "latency", "judge": whole_alpha}]})


def test_rank_nan_points_are_dropped() -> None:
    rng = np.random.default_rng(33)
    baseline, canary = latency_series(rng, 0.5, 120, shift=1.1)
    holed_b, holed_c = baseline.copy(), canary.copy()
    holed_b[::7] = np.nan
    holed_c[3::11] = np.nan
    holed_c[5] = np.inf
    keep = np.isfinite(holed_b) & np.isfinite(holed_c)
    judge = SequentialRankJudge()
    with_nans = final_assessment(judge, rank_batches(holed_b, holed_c, 12), ALPHA)
    without = final_assessment(judge, [(holed_b[keep], holed_c[keep])], ALPHA)
    assert with_nans.observations == int(keep.sum()) < baseline.size
    assert with_nans.estimate == pytest.approx(without.estimate)
    assert with_nans.baseline.count == with_nans.canary.count == int(keep.sum())
    assert math.isfinite(with_nans.canary.mean) and math.isfinite(with_nans.baseline.mean)
    # Through the analysis, too; the result stays strict JSON.
    result = SequentialAnalysis(LATENCY_CONFIG).update({"latency": holed_b}, {"latency": holed_c})
    assert result.metric("latency").details["observations"] == int(keep.sum())
    json.dumps(result.to_dict(), allow_nan=False)


def test_rank_misaligned_batches_are_errors() -> None:
    judge = SequentialRankJudge()
    with pytest.raises(KayentaError, match="align"):
        judge.update(judge.new_state(ALPHA), np.ones(5), np.ones(4))
    analysis = SequentialAnalysis(LATENCY_CONFIG)
    with pytest.raises(KayentaError, match="align"):
        analysis.update({"latency": [1.0, 2.0, 3.0]}, {"latency": [1.0, 2.0]})


# ---------------------------------------------------------------- 4. sequential-histogram


def test_histogram_aa_false_fail_rate() -> None:
    """A/A lognormal latencies under traffic cycles; min_effect 1.0 (the null's edge), every look checked."""
    rng = np.random.default_rng(4401)
    runs, looks = 80, 25
    fails = 0
    for _ in range(runs):
        batches = histogram_batches(rng, looks=looks, steps=5, mean=100.0)
        judge = SequentialHistogramJudge(buckets=BUCKETS, min_effect=1.0)
        fails += final_assessment(judge, batches, ALPHA).p_regression <= ALPHA
    rate = fails / runs
    show(f"histogram A/A, min_effect 1.0, {looks} looks", runs=runs, false_fail=rate, bound=bound(runs))
    assert rate <= bound(runs)


def test_histogram_detects_slower_canary() -> None:
    config = {
        "metrics": [
            {
                "name": "latency",
                "kind": "latency",
                "judge": {"type": "sequential-histogram", "buckets": BUCKETS},
            }
        ]
    }
    rng = np.random.default_rng(4402)
    runs = 100
    detected = 0
    looks_used = []
    for _ in range(runs):
        batches = histogram_batches(rng, looks=LOOKS, steps=5, mean=100.0, slowdown=1.6)
        result, look = run_analysis(SequentialAnalysis(config), as_looks("latency", batches))
        if result.verdict is Verdict.FAIL:
            detected += 1
            looks_used.append(look)
            assert result.metric("latency").classification is Classification.HIGH
    show(
        "histogram canary 1.6x slower",
        runs=runs,
        detected=detected / runs,
        median_looks=float(np.median(looks_used)) if looks_used else None,
    )
    assert detected / runs >= 0.9


def test_histogram_reports_quantiles_per_quantile_of_interest() -> None:
    rng = np.random.default_rng(4403)
    median, sigma, slowdown = 0.08, 0.7, 1.6
    judge = SequentialHistogramJudge(buckets=BUCKETS, quantiles=[0.5, 0.9, 0.99])
    batches = histogram_batches(
        rng, looks=10, steps=10, mean=300.0, median=median, sigma=sigma, slowdown=slowdown
    )
    assessment = final_assessment(judge, batches, ALPHA)
    assert assessment.p_regression <= ALPHA
    rows = assessment.details["quantiles"]
    assert [row["quantile"] for row in rows] == [0.5, 0.9, 0.99]
    for row in rows:
        q = row["quantile"]
        for side, m in (("baseline", median), ("canary", median * slowdown)):
            got = row[f"{side}_quantile"]
            true = m * math.exp(sigma * float(norm.ppf(q)))
            assert got == pytest.approx(lognormal_bucket_quantile(m, sigma, q), rel=0.08), (side, q)
            assert got == pytest.approx(true, rel=0.35), (side, q, true)
        assert row["ratio"] > 1.0
        assert row["threshold"] in BUCKETS
        assert row["ratio_ci"] is not None and row["ratio_ci"][0] > 1.0


def test_histogram_wrong_shapes_are_errors() -> None:
    judge = SequentialHistogramJudge(buckets=BUCKETS)
    state = judge.new_state(ALPHA)
    good = np.cumsum(np.ones((3, len(BUCKETS))), axis=1)
    with pytest.raises(KayentaError, match="bucket counts"):
        judge.update(state, good[:, :-1], good[:, :-1])  # one bucket short
    with pytest.raises(KayentaError, match="bucket counts"):
        judge.update(state, good[0], good[0])  # 1-D: steps missing
    with pytest.raises(KayentaError, match="cumulative"):
        judge.update(state, good[:, ::-1], good)  # decreasing over le
    with pytest.raises(KayentaError, match="align"):
        judge.update(state, good, good[:2])
    with pytest.raises(KayentaError, match="increase"):
        SequentialHistogramJudge(buckets=[0.1, 0.05, math.inf])
    with pytest.raises(ConfigError, match="buckets"):
        kayenta_py.load_config(
            {
                "mode": "sequential",
                "metrics": [{"name": "h", "judge": {"type": "sequential-histogram", "buckets": [1.0]}}],
            }
        )
    # Without buckets the bounds come from the first batch's le keys; plain arrays cannot say them.
    unbounded = SequentialHistogramJudge()
    with pytest.raises(KayentaError, match="mapping of bucket bound"):
        unbounded.update(unbounded.new_state(ALPHA), good, good)
    with pytest.raises(KayentaError, match="differ"):
        unbounded.update(unbounded.new_state(ALPHA), {1.0: [1], 2.0: [2]}, {1.0: [1], 3.0: [2]})
    assert judge.assess(state).observations == 0  # nothing was folded in by the rejected batches


# ---------------------------------------------------------------- 5. SequentialAnalysis


FAMILY_CONFIG: dict[str, Any] = {
    "name": "family",
    "metrics": [
        # All non-critical (no early pass on the error metrics alone), each at the edge of its null.
        {
            "name": "errors",
            "kind": "errors",
            "critical": False,
            "judge": {"type": "sequential-count", "min_effect": 1.0},
        },
        {
            "name": "errors-5xx",
            "kind": "errors",
            "critical": False,
            "judge": {"type": "sequential-count", "min_effect": 1.0},
        },
        {
            "name": "latency-histogram",
            "kind": "latency",
            "judge": {"type": "sequential-histogram", "buckets": BUCKETS, "min_effect": 1.0},
        },
        {"name": "latency-p99", "kind": "latency", "judge": {"type": "sequential-rank", "min_effect": 0.51}},
        {"name": "cpu", "kind": "saturation", "judge": {"type": "sequential-rank", "min_effect": 0.51}},
    ],
}


def family_looks(rng: np.random.Generator, looks: int) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """Five independent A/A metrics of mixed kinds, ``looks`` batches of each."""
    errors = count_batches(rng, looks=looks, steps=5, mean=400.0, rate_b=0.01, rate_c=0.01)
    errors_5xx = count_batches(rng, looks=looks, steps=5, mean=400.0, rate_b=0.003, rate_c=0.003)
    histogram = histogram_batches(rng, looks=looks, steps=5, mean=60.0)
    p99 = rank_batches(*latency_series(rng, 0.9, looks * 12), 12)
    cpu = rank_batches(*latency_series(rng, 0.5, looks * 12), 12)
    out: list[tuple[Mapping[str, Any], Mapping[str, Any]]] = []
    for i in range(looks):
        parts = {"errors": errors[i], "errors-5xx": errors_5xx[i], "latency-histogram": histogram[i]}
        parts |= {"latency-p99": p99[i], "cpu": cpu[i]}
        out.append(({k: v[0] for k, v in parts.items()}, {k: v[1] for k, v in parts.items()}))
    return out


@pytest.mark.parametrize("family", ["bonferroni", "e-bh"])
def test_family_wise_false_fail_rate(family: str) -> None:
    """Five A/A metrics at the edge of their nulls, every look checked: the canary's false-fail rate."""
    rng = np.random.default_rng(5500 + len(family))
    runs, looks = 60, 15
    fails = 0
    failed_metrics: dict[str, int] = {}
    for _ in range(runs):
        analysis = SequentialAnalysis(FAMILY_CONFIG, family=family)  # type: ignore[arg-type]
        result, _ = run_analysis(analysis, family_looks(rng, looks))
        if result.verdict is Verdict.FAIL:
            fails += 1
            for metric in result.failed_metrics:
                failed_metrics[metric.name] = failed_metrics.get(metric.name, 0) + 1
    rate = fails / runs
    show(
        f"family of 5 A/A metrics, {family}, {looks} looks",
        runs=runs,
        false_fail=rate,
        by_metric=str(failed_metrics),
    )
    assert analysis.level == pytest.approx(ALPHA / 5)
    assert rate <= bound(runs)


def zero_baseline_looks(
    rng: np.random.Generator, looks: int
) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """Errors only on the canary; latency A/A (iid)."""
    errors = count_batches(rng, looks=looks, steps=5, mean=1000.0, rate_b=0.0, rate_c=0.004)
    latency = rank_batches(*latency_series(rng, 0.0, looks * 6), 6)
    return [
        ({"errors": e[0], "latency": lat[0]}, {"errors": e[1], "latency": lat[1]})
        for e, lat in zip(errors, latency, strict=True)
    ]


DECISION_CONFIG: dict[str, Any] = {
    "name": "decisions",
    "metrics": [{"name": "errors", "kind": "errors"}, {"name": "latency", "kind": "latency"}],
}


def test_fails_as_soon_as_a_regression_is_established() -> None:
    rng = np.random.default_rng(51)
    analysis = SequentialAnalysis(DECISION_CONFIG)
    assert analysis.level == pytest.approx(ALPHA / 2)
    looks = zero_baseline_looks(rng, LOOKS)
    failed_at = None
    for look, (baseline, canary) in enumerate(looks, start=1):
        result = analysis.update(baseline, canary)
        p = result.metric("errors").details["p_regression"]
        if p <= analysis.level:
            assert result.verdict is Verdict.FAIL
            failed_at = look
            break
        assert result.verdict is Verdict.PENDING, (look, result.reason)
        assert result.score is None
    assert failed_at is not None and failed_at <= 10
    assert result.score == 0.0
    assert "errors" in result.reason and "latency" not in result.reason
    errors = result.metric("errors")
    assert errors.classification is Classification.HIGH
    assert errors.critical is True  # kind errors is critical by default
    assert errors.ci is not None and errors.ci[0] > 1.2
    assert result.metric("latency").classification is Classification.PASS
    json.dumps(result.to_dict(), allow_nan=False)
    # Decided: later batches (even healthy ones, or nonsense) return the same result.
    frozen = result.to_dict()
    for baseline, canary in looks[failed_at : failed_at + 3]:
        assert analysis.update(baseline, canary).to_dict() == frozen
    assert analysis.update({"no-such-metric": [1.0]}, {}).to_dict() == frozen
    assert analysis.finish().to_dict() == frozen


def test_no_early_pass_while_a_scored_metric_is_open_then_pass_once_every_one_excludes() -> None:
    """errors (critical) excludes a 1.2x regression with huge traffic; latency (not critical) is open.

    An early pass needs every scored metric to exclude a relevant regression, not only the
    critical ones: with latency 60% worse the errors metric alone must not pass the canary.
    """
    rng = np.random.default_rng(52)
    errors = count_batches(rng, looks=LOOKS, steps=5, mean=50000.0, rate_b=0.01, rate_c=0.01)
    worse = latency_series(rng, 0.9, LOOKS * 6)
    latency = rank_batches(worse[0], worse[1] * 1.6, 6)
    analysis = SequentialAnalysis(DECISION_CONFIG)
    for look in range(10):  # the robust score sequence needs a few looks to exclude 1.2x
        result = analysis.update(
            {"errors": errors[look][0], "latency": latency[look][0]},
            {"errors": errors[look][1], "latency": latency[look][1]},
        )
        assert result.verdict is Verdict.PENDING, result.reason
    assert result.metric("errors").details["regression_excluded"] is True
    assert result.metric("latency").details["regression_excluded"] is False
    assert "latency" in result.reason.split("waiting on")[1]
    # Only errors in the config: it passes early, as soon as its regression is excluded.
    only_errors = SequentialAnalysis({"name": "errors", "metrics": [{"name": "errors", "kind": "errors"}]})
    for look in range(LOOKS):
        result = only_errors.update({"errors": errors[look][0]}, {"errors": errors[look][1]})
        if result.verdict is not Verdict.PENDING:
            break
    assert result.verdict is Verdict.PASS, result.reason
    assert look < 10
    assert result.score == 100.0
    assert result.reason.startswith("pass: every scored metric excludes a relevant regression")
    analysis = only_errors
    # Decided: a later huge regression does not change it.
    frozen = result.to_dict()
    bad = ({"errors": (np.zeros(5), np.full(5, 1e4))}, {"errors": (np.full(5, 500.0), np.full(5, 1e4))})
    assert analysis.update(*bad).to_dict() == frozen


def test_without_critical_metrics_every_metric_must_exclude_then_finish_flags_thin_evidence() -> None:
    config = {
        "metrics": [
            {"name": "busy", "kind": "errors", "critical": False},
            {"name": "quiet", "kind": "errors", "critical": False},
        ]
    }
    rng = np.random.default_rng(53)
    busy = count_batches(rng, looks=20, steps=5, mean=50000.0, rate_b=0.01, rate_c=0.01)
    quiet = count_batches(rng, looks=20, steps=5, mean=50.0, rate_b=0.01, rate_c=0.01)
    analysis = SequentialAnalysis(config)
    for i in range(20):
        result = analysis.update(
            {"busy": busy[i][0], "quiet": quiet[i][0]}, {"busy": busy[i][1], "quiet": quiet[i][1]}
        )
        assert result.verdict is Verdict.PENDING, result.reason
    assert result.metric("busy").details["regression_excluded"] is True
    assert result.metric("quiet").details["regression_excluded"] is False
    assert "quiet" in result.reason and "busy" not in result.reason.split("waiting on")[1]
    final = analysis.finish()
    assert final.verdict in (Verdict.PASS, Verdict.MARGINAL)
    quiet_result = final.metric("quiet")
    if final.verdict is Verdict.MARGINAL:  # quiet's estimate points past 1.2: a person decides
        assert quiet_result.details["inconclusive"]
        assert any("inconclusive" in w and "quiet" in w for w in final.warnings)
        assert "inconclusive" in final.reason and "quiet" in final.reason
    else:
        assert quiet_result.details["inconclusive"] is None
    assert analysis.update({"busy": busy[0][0]}, {"busy": busy[0][1]}).to_dict() == final.to_dict()


def test_finish_with_few_points_is_marginal_and_without_data_fails() -> None:
    rng = np.random.default_rng(54)
    baseline, canary = latency_series(rng, 0.5, 8)  # fewer than min_points (10)
    analysis = SequentialAnalysis(LATENCY_CONFIG)
    for b, c in rank_batches(baseline, canary, 4):
        assert analysis.update({"latency": b}, {"latency": c}).verdict is Verdict.PENDING
    final = analysis.finish()
    assert final.verdict is Verdict.MARGINAL
    assert final.score is not None
    assert final.thresholds.marginal < final.score < final.thresholds.pass_  # a score reader agrees
    assert any("inconclusive" in w for w in final.warnings)
    assert "too thin" in final.reason and "latency" in final.reason and "min_points 10" in final.reason
    assert final.metric("latency").details["inconclusive"].startswith("8 aligned points")
    # An analysis that never saw data fails: a native metric must have data unless it opts out.
    empty = SequentialAnalysis(LATENCY_CONFIG).finish()
    assert empty.verdict is Verdict.FAIL, empty.reason
    assert empty.metric("latency").classification is Classification.NODATA_FAIL_METRIC
    assert "no data for latency" in empty.reason
    # Opted out of must_have_data: no data is still no evidence, so marginal, never pass.
    optional = {"name": "x", "metrics": [{"name": "latency", "kind": "latency", "must_have_data": False}]}
    nothing = SequentialAnalysis(optional).finish()
    assert nothing.verdict is Verdict.MARGINAL
    assert nothing.metric("latency").classification is Classification.NODATA


MIXED_CONFIG: dict[str, Any] = {
    "name": "mixed",
    "metrics": [
        {"name": "errors", "kind": "errors"},
        {
            "name": "latency-histogram",
            "kind": "latency",
            "judge": {"type": "sequential-histogram", "buckets": BUCKETS},
        },
        {"name": "latency-p99", "kind": "latency"},
        {"name": "conversion", "kind": "business", "direction": "decrease", "judge": {"min_effect": 0.6}},
    ],
}


def mixed_looks(rng: np.random.Generator, looks: int) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    errors = count_batches(rng, looks=looks, steps=5, mean=200.0, rate_b=0.01, rate_c=0.012)
    histogram = histogram_batches(rng, looks=looks, steps=5, mean=40.0, slowdown=1.05)
    p99 = rank_batches(*latency_series(rng, 0.9, looks * 6), 6)
    conversion = rank_batches(*latency_series(rng, 0.5, looks * 6), 6)
    out: list[tuple[Mapping[str, Any], Mapping[str, Any]]] = []
    for i in range(looks):
        parts = {
            "errors": errors[i],
            "latency-histogram": histogram[i],
            "latency-p99": p99[i],
            "conversion": conversion[i],
        }
        out.append(({k: v[0] for k, v in parts.items()}, {k: v[1] for k, v in parts.items()}))
    return out


@pytest.mark.parametrize("family", ["bonferroni", "e-bh"])
def test_state_round_trip_resumes_to_the_same_results(family: str) -> None:
    rng = np.random.default_rng(55)
    looks = mixed_looks(rng, 24)
    uninterrupted = SequentialAnalysis(MIXED_CONFIG, family=family)  # type: ignore[arg-type]
    first = SequentialAnalysis(MIXED_CONFIG, family=family)  # type: ignore[arg-type]
    for baseline, canary in looks[:12]:
        expected = uninterrupted.update(baseline, canary)
        assert first.update(baseline, canary).to_dict() == expected.to_dict()
    assert expected.verdict is Verdict.PENDING  # the interesting case: resumed mid-analysis
    state = json.loads(json.dumps(first.to_state(), allow_nan=False))
    resumed = SequentialAnalysis(MIXED_CONFIG, family=family).restore(state)  # type: ignore[arg-type]
    assert resumed.looks == 12
    for baseline, canary in looks[12:]:
        assert resumed.update(baseline, canary).to_dict() == uninterrupted.update(baseline, canary).to_dict()
    assert resumed.finish().to_dict() == uninterrupted.finish().to_dict()
    assert json.loads(json.dumps(resumed.to_state(), allow_nan=False)) == json.loads(
        json.dumps(uninterrupted.to_state(), allow_nan=False)
    )


def test_state_round_trip_after_a_decision_keeps_the_decision() -> None:
    config = {"metrics": [{"name": "errors", "kind": "errors"}]}
    analysis = SequentialAnalysis(config, family="e-bh")
    traffic = np.full(5, 1000.0)
    none, some = np.zeros(5), np.full(5, 4.0)
    result = analysis.update({"errors": (none, traffic)}, {"errors": (some, traffic)})
    while result.verdict is Verdict.PENDING:
        result = analysis.update({"errors": (none, traffic)}, {"errors": (some, traffic)})
    assert result.verdict is Verdict.FAIL
    resumed = SequentialAnalysis(config, family="e-bh").restore(json.loads(json.dumps(analysis.to_state())))
    # Now the baseline errs and the canary does not: the current e-value falls back.
    later = ({"errors": (np.full(5, 40.0), traffic)}, {"errors": (none, traffic)})
    assert analysis.update(*later).verdict is Verdict.FAIL
    assert resumed.update(*later).verdict is Verdict.FAIL


def test_a_rejected_update_leaves_the_analysis_unchanged() -> None:
    analysis = SequentialAnalysis(DECISION_CONFIG)
    before = json.dumps(analysis.to_state())
    errors = (np.full(5, 3.0), np.full(5, 1000.0))
    with pytest.raises(KayentaError, match="align"):
        analysis.update({"errors": errors, "latency": [1.0, 2.0]}, {"errors": errors, "latency": [1.0]})
    assert json.dumps(analysis.to_state()) == before


def test_state_size_does_not_grow_with_points() -> None:
    rng = np.random.default_rng(56)
    count_looks = count_batches(rng, looks=1000, steps=1, mean=500.0, rate_b=0.01, rate_c=0.01)
    baseline, canary = latency_series(rng, 0.9, 1000 * 6)
    rank_looks = rank_batches(baseline, canary, 6)
    hist_looks = histogram_batches(rng, looks=300, steps=1, mean=50.0)
    for judge, looks in (
        (SequentialCountJudge(), count_looks),
        (SequentialRankJudge(), rank_looks),
        (SequentialHistogramJudge(buckets=BUCKETS), hist_looks),
    ):
        state = judge.new_state(ALPHA)
        sizes = {}
        for i, (b, c) in enumerate(looks, start=1):
            state = judge.update(state, b, c)
            if i in (10, len(looks)):
                sizes[i] = len(json.dumps(state, allow_nan=False))
        show(f"state size {judge.name}", after_10=sizes[10], **{f"after_{len(looks)}": sizes[len(looks)]})
        assert sizes[len(looks)] <= 1.3 * sizes[10], (judge.name, sizes)
        per_look = 6 if judge.name == "sequential-rank" else 1
        assert judge.assess(state).observations == len(looks) * per_look


def test_anytime_p_values_are_running_extrema() -> None:
    """p_regression and p_safe never increase from one look to the next (they are running minima)."""
    rng = np.random.default_rng(57)
    baseline, canary = latency_series(rng, 0.9, 240, shift=1.05)
    cases: list[tuple[SequentialJudge, Batches]] = [
        (
            SequentialCountJudge(),
            list(count_batches(rng, looks=40, steps=5, mean=300.0, rate_b=0.01, rate_c=0.011)),
        ),
        (SequentialRankJudge(), rank_batches(baseline, canary, 6)),
        (
            SequentialHistogramJudge(buckets=BUCKETS),
            histogram_batches(rng, looks=40, steps=5, mean=60.0, slowdown=1.05),
        ),
    ]
    for judge, batches in cases:
        state = judge.new_state(ALPHA)
        previous = (1.0, 1.0)
        for b, c in batches:
            state = judge.update(state, b, c)
            a = judge.assess(state)
            assert 0.0 <= a.p_regression <= previous[0] + 1e-12, judge.name
            assert 0.0 <= a.p_safe <= previous[1] + 1e-12, judge.name
            assert a.e_regression >= 0.0
            previous = (a.p_regression, a.p_safe)


def test_configuration_errors() -> None:
    fixed = kayenta_py.load_config({"metrics": [{"name": "latency", "kind": "latency"}]})
    assert fixed.mode == "fixed"
    with pytest.raises(KayentaError, match="not sequential"):
        SequentialAnalysis(fixed)  # a fixed-horizon (mann-whitney) judge
    with pytest.raises(KayentaError, match="not sequential"):
        SequentialAnalysis({"metrics": [{"name": "latency", "judge": {"type": "mann-whitney"}}]})
    analysis = SequentialAnalysis(LATENCY_CONFIG)
    with pytest.raises(KayentaError, match="latncy"):
        analysis.update({"latncy": [1.0]}, {"latncy": [1.0]})
    with pytest.raises(KayentaError, match="canary"):
        analysis.update({"latency": [1.0]}, {})
    with pytest.raises(KayentaError, match="alpha"):
        SequentialAnalysis(LATENCY_CONFIG, alpha=1.5)
    with pytest.raises(KayentaError, match="family"):
        SequentialAnalysis(LATENCY_CONFIG, family="holm")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="min_effect"):
        SequentialAnalysis({"metrics": [{"name": "e", "kind": "errors", "judge": {"min_effect": 0.5}}]})
    with pytest.raises(KayentaError, match="traffic"):
        SequentialAnalysis(ERRORS_CONFIG).update({"errors": [1.0, 2.0, 3.0]}, {"errors": [1.0, 2.0, 3.0]})
    assert analysis.looks == 0


def test_mode_sequential_gives_each_kind_its_default_judge() -> None:
    metrics = [
        {"name": "errors", "kind": "errors", "traffic_query": "sum(rate(requests[1m]))"},
        {"name": "latency", "kind": "latency"},
        {"name": "cpu", "kind": "saturation"},
        {"name": "orders", "kind": "business", "direction": "decrease"},
        {"name": "other"},
        {
            "name": "histogram",
            "kind": "latency",
            "judge": {"type": "sequential-histogram", "buckets": [0.1, 1, "+inf"]},
        },
        {"name": "tight", "kind": "latency", "judge": {"min_effect": 0.6}},
    ]
    config = kayenta_py.load_config({"mode": "sequential", "metrics": metrics})
    assert config.mode == "sequential"
    expected: dict[str, type[SequentialCountJudge | SequentialRankJudge | SequentialHistogramJudge]] = {
        "errors": SequentialCountJudge,
        "latency": SequentialRankJudge,
        "cpu": SequentialRankJudge,
        "orders": SequentialRankJudge,
        "other": SequentialRankJudge,
        "histogram": SequentialHistogramJudge,
        "tight": SequentialRankJudge,
    }
    assert {m.name: m.judge_type for m in config.metrics} == {k: v.name for k, v in expected.items()}
    assert config.metric("errors").traffic_query == "sum(rate(requests[1m]))"
    analysis = SequentialAnalysis(config)
    for name, cls in expected.items():
        assert type(analysis.tracks[name].judge) is cls, name
    assert analysis.tracks["histogram"].judge.get_params()["buckets"] == [0.1, 1.0, math.inf]
    assert analysis.tracks["tight"].judge.get_params()["min_effect"] == 0.6
    assert analysis.tracks["orders"].judge.direction is Direction.DECREASE
    assert analysis.tracks["errors"].config.critical is True
    # Without the key, a native mapping given to SequentialAnalysis is read in sequential mode too;
    # the same mapping loaded on its own stays fixed-horizon (Kayenta's Mann-Whitney).
    plain = {"metrics": metrics[:5]}
    assert {type(t.judge) for t in SequentialAnalysis(plain).tracks.values()} == {
        SequentialCountJudge,
        SequentialRankJudge,
    }
    assert {m.judge_type for m in kayenta_py.load_config(plain).metrics} == {"mann-whitney"}


# ---------------------------------------------------------------- no wrong pass (issue 11)


def doubled_hour(rng: np.random.Generator, share_c: float = 0.5) -> list[tuple[CountBatch, CountBatch]]:
    """60 one-minute steps, 12 looks; about 60 baseline and 120 canary events at equal traffic."""
    total = 100000.0
    traffic_c = np.full(60, total * share_c)
    traffic_b = np.full(60, total * (1 - share_c))
    rate = 60 / (60 * total * 0.5)
    events_b = rng.poisson(rate * traffic_b).astype(np.float64)
    events_c = rng.poisson(2 * rate * traffic_c).astype(np.float64)
    return [
        ((events_b[s], traffic_b[s]), (events_c[s], traffic_c[s]))
        for s in (slice(i * 5, (i + 1) * 5) for i in range(12))
    ]


@pytest.mark.parametrize("share_c", [0.5, 0.1])
def test_doubled_error_rate_never_ends_pass(share_c: float) -> None:
    """The final look (sequential-count keeps half its alpha for it) fails most doubled rates;
    the rest are inconclusive (the estimate is past 1.2), so none passes."""
    verdicts: dict[str, int] = {}
    for seed in range(40):
        analysis = SequentialAnalysis(ERRORS_CONFIG)
        looks = as_looks("errors", doubled_hour(np.random.default_rng(seed), share_c))
        result, _ = run_analysis(analysis, looks)
        final = analysis.finish() if result.verdict is Verdict.PENDING else result
        verdicts[final.verdict.value] = verdicts.get(final.verdict.value, 0) + 1
    show("doubled error rate, 40 runs", share_c=share_c, **verdicts)
    assert "pass" not in verdicts
    assert verdicts.get("fail", 0) >= (30 if share_c == 0.5 else 10)


def test_count_final_look_is_the_signed_root_likelihood_ratio() -> None:
    """One step, constant shares: the likelihood's final look is the binomial signed-root LR test at r = 1.2.

    The robust score sequence, which must agree, needs three steps: one step decides nothing.
    """
    judge = SequentialCountJudge(final_share=0.5)
    one_step = (np.array([60.0]), np.array([1e5])), (np.array([120.0]), np.array([1e5]))
    state = judge.update(judge.new_state(ALPHA), *one_step)
    assert judge.assess(state).p_final == 1.0
    likelihood_only = {k: v for k, v in state["test"].items() if k != "robust"}
    p_final = 2 * judge._test.final_p(likelihood_only, kayenta_py.Direction.INCREASE)
    # Canary share of events p = r / (1 + r); MLE 2/3, boundary 1.2 / 2.2.
    n, k, p0 = 180.0, 120.0, 1.2 / 2.2

    def loglik(p: float) -> float:
        return k * math.log(p) + (n - k) * math.log(1 - p)
    z = math.sqrt(2 * (loglik(k / n) - loglik(p0)))
    # The grid's maximum sits within 0.005 of log 2 in log r: compare loosely.
    assert p_final == pytest.approx(2 * float(norm.sf(z)), rel=0.05)


def test_zero_canary_traffic_fails_a_critical_errors_metric() -> None:
    steps = np.full(5, 1000.0)
    analysis = SequentialAnalysis(DECISION_CONFIG)
    for _ in range(12):
        result = analysis.update(
            {"errors": (np.full(5, 3.0), steps), "latency": np.full(5, 0.2)},
            {"errors": (np.zeros(5), np.zeros(5)), "latency": np.full(5, np.nan)},
        )
        assert result.verdict is Verdict.PENDING, result.reason
    final = analysis.finish()
    assert final.verdict is Verdict.FAIL
    assert final.metric("errors").classification is Classification.NODATA
    assert "errors (critical)" in final.reason


@pytest.mark.parametrize("must_have_data", [True, False])
def test_all_nan_canary_never_passes(must_have_data: bool) -> None:
    config = {"metrics": [{"name": "latency", "kind": "latency", "must_have_data": must_have_data}]}
    analysis = SequentialAnalysis(config)
    rng = np.random.default_rng(9)
    for _ in range(20):
        result = analysis.update({"latency": rng.normal(1, 0.1, 10)}, {"latency": np.full(10, np.nan)})
        assert result.verdict is Verdict.PENDING
    final = analysis.finish()
    expected = Verdict.FAIL if must_have_data else Verdict.MARGINAL
    assert final.verdict is expected, final.reason


def test_kayenta_mode_must_have_data_is_never_a_pass() -> None:
    kayenta = {
        "name": "k",
        "classifier": {"groupWeights": {"g": 100}},
        "metrics": [
            {
                "name": "latency",
                "query": {"type": "prometheus", "metricName": "x"},
                "groups": ["g"],
                "analysisConfigurations": {"canary": {"mustHaveData": True, "direction": "increase"}},
            }
        ],
    }
    final = SequentialAnalysis(kayenta).finish()
    assert final.verdict is Verdict.FAIL
    assert final.metric("latency").classification is Classification.NODATA_FAIL_METRIC


def test_histogram_final_look_and_thin_quantiles() -> None:
    judge = SequentialHistogramJudge(buckets=BUCKETS, quantiles=[0.5, 0.99])
    state = judge.new_state(ALPHA)
    rng = np.random.default_rng(11)
    requests = np.full(5, 40.0)
    for _ in range(3):
        state = judge.update(
            state, histogram_steps(rng, requests, 0.1, 0.5), histogram_steps(rng, requests, 0.1, 0.5)
        )
    assessment = judge.assess(state)
    assert assessment.inconclusive is not None and "p99" in assessment.inconclusive
    assert 0 < assessment.p_final <= 1
