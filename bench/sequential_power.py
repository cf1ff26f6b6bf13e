"""Sequential (anytime-valid) analysis against Kayenta's re-run Mann-Whitney: false fails and power.

A one-hour canary with a data point every 10 s per side (360 points) is looked at
(i) every minute (60 looks, 6 new points each) and (ii) every 10 s (360 looks, 1
new point each). At each look:

- **sequential**: ``kayenta_py.SequentialAnalysis(config, alpha)`` gets the new
  points (``update``); the canary fails at the first ``fail`` verdict, passes at the
  first early ``pass``, and ``finish()`` ends it after the last look;
- **re-run mann-whitney**: ``kayenta_py.judge`` (Kayenta-parity ``mann-whitney``,
  98% CI) gets ALL the points so far; the canary fails at the first look whose
  verdict is ``fail`` (Kayenta fails on the first bad interval; ``marginal`` does
  not fail);
- **re-run m-w, 5-min warm-up** (an extra row from the same runs): the same, with no
  judgement before minute 5 (30 points per side), as Kayenta's
  ``beginCanaryAnalysisAfterMins`` would do; it separates the false fails of the
  first tiny samples (1 point per side at 10 s) from those of re-looking.

Scenarios (seeded; each run's data is shared by both methods, by both look
frequencies and by every effect of its scenario (latency noise, traffic and baseline
errors; only the canary's errors are drawn anew), so rows are paired comparisons):

(a) iid lognormal latency, median 100 ms, log-sd 0.1;
(b) autocorrelated latency with trends: a shared level (a random one-hour window
    of a real NAB series interpolated to 10 s, or a generated daily sinusoid plus
    a slow AR(1) when the NAB data is absent) times independent lognormal AR(1)
    noise per side (phi 0.9 per 10 s point, marginal log-sd 0.1);
(c) error counts with traffic cycles: binomial errors on Poisson traffic whose
    rate and error rate follow a shared cycle, canary share 20%, baseline error
    rate 0.1%; and a zero-error baseline.

Effects: latency x1.05, x1.10, x1.25 on the canary series; error rates x1.5, x2,
and canary errors where the baseline has none; A/A (no effect) gives the
false-fail rate. Run from the project root::

    .venv/bin/python bench/sequential_power.py              # --runs 200 --seed 1 --alpha 0.05
    .venv/bin/python bench/sequential_power.py --quick      # about 30 s
    .venv/bin/python bench/sequential_power.py --phi 0.98   # stronger autocorrelation in (b)
    .venv/bin/python bench/sequential_power.py --spikes 0.03  # (b) with 3% of points x3 per side

Real traffic (``--suite real-traffic``, or ``--suite all`` for both): the scenarios of
``tests/real_traffic.py`` (imported from there, one copy), one point a minute, 60 looks of one
new minute each, then ``finish()``; 20,000 requests a minute, 0.2% errors, canary share 5%, 10%
or 50%:

(d) error counts: Poisson; negative-binomial (a Gamma(2, mean 1) factor per arm-minute); pod
    hiccups (20 pods, the canary round(share x 20); a pod-minute x20 with probability 0.005);
    both; doubled error rates; errors over a zero baseline;
(e) latency gauges for ``sequential-rank`` (min_points 10): AR(1) per arm (phi 0.8-0.98, log-sd
    0.1 or 0.2), a shared load, trend, level step and canary gaps, Pareto noise (shape 1.5, 3),
    a family of 5 gauges judged together (Bonferroni); +25% on the canary;
(f) requests drawn one by one (log-normal, median 80 ms): per-minute p99 (``sequential-rank``)
    and Prometheus bucket counts (``sequential-histogram``) of the same requests, 10% or 50%
    canary; +10%, +25% on every canary request.

Each row reports the sequential fail rate (A/A: false-fail; else power), the fails decided by
``finish()``, early passes (of a regressed canary: the worst outcome), marginal endings, and the
re-run Mann-Whitney's fail and marginal rates on the same data (per-minute error ratios, gauges
or p99), with the issue's target where it sets one::

    .venv/bin/python bench/sequential_power.py --suite real-traffic          # 200 runs (A/A), 100 (effects)
    .venv/bin/python bench/sequential_power.py --suite real-traffic --quick  # target rows, 8 runs, < 1 min
    .venv/bin/python bench/sequential_power.py --suite all --runs 100        # both suites
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import kayenta_py

# The real-traffic generators live with the tests (one copy): tests/real_traffic.py.
TESTS_DIR = Path(__file__).resolve().parents[1] / "tests"
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))
import real_traffic  # noqa: E402

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

STEP_S = 10  # seconds between data points
POINTS = 360  # one hour at 10 s
WINDOW_S = STEP_S * (POINTS - 1)

LATENCY_MEDIAN = 100.0  # ms
LOG_SD = 0.1  # marginal log-sd of latency noise, (a) and (b)
PHI = 0.9  # AR(1) coefficient per 10 s point, (b); --phi
SPIKE_FACTOR = 3.0  # --spikes: a spiking point of (b) is this many times its value
GENERATED_DAILY_AMPLITUDE = 0.3  # log amplitude of the generated daily cycle, (b) fallback
GENERATED_SLOW_PHI, GENERATED_SLOW_SD = 0.995, 0.1  # shared slow AR(1) of the fallback level

REQUESTS_PER_STEP = 2000.0  # mean requests per 10 s over both versions (200 req/s)
CANARY_SHARE = 0.2
TRAFFIC_AMPLITUDE = 0.5  # relative amplitude of the traffic cycle
CYCLE_MINUTES = (10.0, 30.0)  # period of the traffic cycle, drawn per run
ERROR_RATE = 0.001
# The extra row "re-run m-w, 5-min warm-up": Kayenta's beginCanaryAnalysisAfterMins, i.e. the same
# re-run Mann-Whitney with no judgement before 5 minutes (30 points per side).
WARMUP_MINUTES = 5

# NAB series used as the shared level of (b): 5-minute CPU and request-latency gauges.
NAB_PATTERNS = (
    "realAWSCloudwatch/ec2_cpu_utilization_*.csv",
    "realAWSCloudwatch/rds_cpu_utilization_*.csv",
    "realAWSCloudwatch/grok_asg_anomaly.csv",
    "realKnownCause/ec2_request_latency_system_failure.csv",
)
NAB_MAX_GAP_S = 600.0  # a window may miss at most one 5-minute sample in a row
DEFAULT_NAB = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab"

LATENCY = "latency"
ERRORS = "errors"


@dataclass(frozen=True)
class Case:
    """One row pair of the tables: a scenario and an effect."""

    scenario: str  # key of the data generator
    label: str  # printed scenario
    effect: str  # printed effect
    factor: float  # latency multiplier, error-rate multiplier, or canary error rate (zero baseline)

    @property
    def metric(self) -> str:
        return ERRORS if self.scenario in ("errors", "zero") else LATENCY


CASES: tuple[Case, ...] = (
    *(
        Case(key, label, effect, factor)
        for key, label in (("iid", "(a) iid lognormal"), ("autocorr", "(b) autocorrelated + trend"))
        for effect, factor in (("A/A (false-fail)", 1.0), ("+5%", 1.05), ("+10%", 1.10), ("+25%", 1.25))
    ),
    Case("errors", "(c) errors 0.1%", "A/A (false-fail)", 1.0),
    Case("errors", "(c) errors 0.1%", "x1.5", 1.5),
    Case("errors", "(c) errors 0.1%", "x2", 2.0),
    Case("zero", "(c) zero-error baseline", "A/A (no errors)", 0.0),
    Case("zero", "(c) zero-error baseline", "canary 0.1%", ERROR_RATE),
)
SCENARIO_CODES = {"iid": 1, "autocorr": 2, "errors": 3, "zero": 4}


# ---------------------------------------------------------------- trends (NAB or generated)


@dataclass(frozen=True)
class NabSeries:
    """A NAB series and the starts of its usable one-hour windows."""

    name: str
    times: FloatArray  # epoch seconds
    values: FloatArray
    starts: IntArray  # indices i whose window [t_i, t_i + 1 h] is usable


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def load_nab(root: Path) -> list[NabSeries]:
    """Read the NAB series in place; keep one-hour windows of ordinary behaviour.

    A window is usable when it lies inside the series, overlaps no labelled anomaly
    window (``anomaly_windows.json``), has no gap above ``NAB_MAX_GAP_S`` and only
    positive values (the level multiplies the noise).
    """
    anomalies: Mapping[str, list[list[str]]] = {}
    labels = root / "anomaly_windows.json"
    if labels.is_file():
        anomalies = json.loads(labels.read_text())
    out = []
    for pattern in NAB_PATTERNS:
        for path in sorted(root.glob(pattern)):
            name = path.relative_to(root).as_posix()
            with path.open(newline="") as handle:
                rows = [row for row in csv.reader(handle) if row and row[0] != "timestamp"]
            if len(rows) < 20:
                continue
            times = np.array([_epoch(row[0]) for row in rows], dtype=np.float64)
            values = np.array([float(row[1]) for row in rows], dtype=np.float64)
            order = np.argsort(times, kind="stable")
            times, values = times[order], values[order]
            windows = [(_epoch(a), _epoch(b)) for a, b in anomalies.get(name, [])]
            starts = []
            for i in range(times.size):
                end = times[i] + WINDOW_S
                if end > times[-1]:
                    break
                j = int(np.searchsorted(times, end, side="left"))
                if any(a <= end and times[i] <= b for a, b in windows):
                    continue
                if np.max(np.diff(times[i : j + 1])) > NAB_MAX_GAP_S or np.min(values[i : j + 1]) <= 0:
                    continue
                starts.append(i)
            if starts:
                out.append(NabSeries(name, times, values, np.array(starts, dtype=np.int64)))
    return out


def ar1(rng: np.random.Generator, size: int, phi: float, sd: float) -> FloatArray:
    """A stationary AR(1) series with marginal standard deviation ``sd``."""
    shocks = rng.standard_normal(size)
    out = np.empty(size, dtype=np.float64)
    out[0] = sd * shocks[0]
    scale = sd * math.sqrt(1.0 - phi * phi)
    for k in range(1, size):
        out[k] = phi * out[k - 1] + scale * shocks[k]
    return out


def shared_level(rng: np.random.Generator, nab: Sequence[NabSeries]) -> FloatArray:
    """The level both versions share for one run of (b)."""
    grid = STEP_S * np.arange(POINTS, dtype=np.float64)
    if nab:
        series = nab[int(rng.integers(len(nab)))]
        start = series.times[int(series.starts[int(rng.integers(series.starts.size))])]
        level: FloatArray = np.interp(start + grid, series.times, series.values)
        return level
    phase = rng.uniform(0.0, 86400.0)
    daily = GENERATED_DAILY_AMPLITUDE * np.sin(2.0 * math.pi * (phase + grid) / 86400.0)
    slow = ar1(rng, POINTS, GENERATED_SLOW_PHI, GENERATED_SLOW_SD)
    generated: FloatArray = LATENCY_MEDIAN * np.exp(daily + slow)
    return generated


# ---------------------------------------------------------------- data of one run


@dataclass(frozen=True)
class RunData:
    """One run's 10 s series: latency values, or error counts and requests per step."""

    baseline: FloatArray
    canary: FloatArray
    baseline_traffic: FloatArray | None = None
    canary_traffic: FloatArray | None = None


def make_run(
    case: Case, seed: int, run: int, nab: Sequence[NabSeries], phi: float = PHI, spikes: float = 0.0
) -> RunData:
    """Seeded data of ``run``; every effect of a scenario sees the same draws up to its effect.

    ``spikes``: in (b), that fraction of points on each side is multiplied by 3 (GC pauses, retries).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, SCENARIO_CODES[case.scenario], run]))
    if case.scenario == "iid":
        base = LATENCY_MEDIAN * np.exp(LOG_SD * rng.standard_normal(POINTS))
        cana = LATENCY_MEDIAN * np.exp(LOG_SD * rng.standard_normal(POINTS)) * case.factor
        return RunData(base, cana)
    if case.scenario == "autocorr":
        level = shared_level(rng, nab)
        base = level * np.exp(ar1(rng, POINTS, phi, LOG_SD))
        cana = level * np.exp(ar1(rng, POINTS, phi, LOG_SD)) * case.factor
        if spikes > 0:
            base *= np.where(rng.random(POINTS) < spikes, SPIKE_FACTOR, 1.0)
            cana *= np.where(rng.random(POINTS) < spikes, SPIKE_FACTOR, 1.0)
        return RunData(base, cana)
    # Error counts: requests follow a cycle (period 10-30 min, amplitude 50%); the error
    # rate rises and falls with the load on both versions alike.
    period = 60.0 * rng.uniform(*CYCLE_MINUTES)
    phase = rng.uniform(0.0, 2.0 * math.pi)
    cycle = 1.0 + TRAFFIC_AMPLITUDE * np.sin(2.0 * math.pi * STEP_S * np.arange(POINTS) / period + phase)
    total = rng.poisson(REQUESTS_PER_STEP * cycle)
    canary_traffic = rng.binomial(total, CANARY_SHARE)
    baseline_traffic = total - canary_traffic
    if case.scenario == "errors":
        base_rate, canary_rate = ERROR_RATE * cycle, ERROR_RATE * case.factor * cycle
    else:  # zero-error baseline; the canary's rate is the case's factor
        base_rate, canary_rate = 0.0 * cycle, case.factor * cycle
    base_errors = rng.binomial(baseline_traffic, np.minimum(base_rate, 1.0))
    canary_errors = rng.binomial(canary_traffic, np.minimum(canary_rate, 1.0))
    return RunData(
        base_errors.astype(np.float64),
        canary_errors.astype(np.float64),
        baseline_traffic.astype(np.float64),
        canary_traffic.astype(np.float64),
    )


# ---------------------------------------------------------------- the two methods


def config(metric: str, *, sequential: bool) -> dict[str, Any]:
    """The canary config: one metric of kind latency or errors (the kinds' default judges)."""
    body: dict[str, Any] = {"name": "sim", "metrics": [{"name": metric, "kind": metric}]}
    if sequential:
        body["mode"] = "sequential"
    return body


def run_sequential(case: Case, data: RunData, per_look: int, alpha: float) -> tuple[int | None, int | None]:
    """Return (look of the fail, look of an early pass); None when it did not happen."""
    analysis = kayenta_py.SequentialAnalysis(config(case.metric, sequential=True), alpha=alpha)
    looks = POINTS // per_look
    for look in range(1, looks + 1):
        part = slice((look - 1) * per_look, look * per_look)
        if data.baseline_traffic is not None and data.canary_traffic is not None:
            new_b: Any = (data.baseline[part], data.baseline_traffic[part])
            new_c: Any = (data.canary[part], data.canary_traffic[part])
        else:
            new_b, new_c = data.baseline[part], data.canary[part]
        verdict = analysis.update({case.metric: new_b}, {case.metric: new_c}).verdict.value
        if verdict == "fail":
            return look, None
        if verdict == "pass":
            return None, (look if look < looks else None)
    final = analysis.finish().verdict.value
    return (looks, None) if final == "fail" else (None, None)


def run_mann_whitney(
    case: Case, data: RunData, per_look: int, judge_config: kayenta_py.CanaryConfig
) -> tuple[int | None, int | None]:
    """Return the first look whose re-run Mann-Whitney (all points so far) fails, and the first
    such look once the warm-up is over (``WARMUP_MINUTES``); None when there is none."""
    if data.baseline_traffic is not None and data.canary_traffic is not None:
        with np.errstate(divide="ignore", invalid="ignore"):  # a step without traffic is NaN (removed)
            base = np.where(data.baseline_traffic > 0, data.baseline / data.baseline_traffic, np.nan)
            cana = np.where(data.canary_traffic > 0, data.canary / data.canary_traffic, np.nan)
    else:
        base, cana = data.baseline, data.canary
    warm = WARMUP_MINUTES * 60 // STEP_S  # points per side before the warm-up is over
    first: int | None = None
    for look in range(1, POINTS // per_look + 1):
        n = look * per_look
        if first is not None and n < warm:
            continue  # the plain re-run has failed already; the warmed-up one does not look yet
        result = kayenta_py.judge(judge_config, {case.metric: base[:n]}, {case.metric: cana[:n]})
        if result.verdict.value == "fail":
            first = look if first is None else first
            if n >= warm:
                return first, look
    return first, None


# ---------------------------------------------------------------- workers

_NAB: list[NabSeries] = []
_PHI = PHI
_SPIKES = 0.0


def _init_worker(nab: list[NabSeries], phi: float, spikes: float) -> None:
    global _NAB, _PHI, _SPIKES
    _NAB, _PHI, _SPIKES = nab, phi, spikes


@dataclass(frozen=True)
class Outcome:
    """One run of one case at one look frequency."""

    run: int
    seq_fail: int | None
    seq_pass: int | None
    mw_fail: int | None
    mw_warm_fail: int | None


def simulate(case: Case, per_look: int, runs: Sequence[int], seed: int, alpha: float) -> list[Outcome]:
    """Run both methods on ``runs`` (a worker task)."""
    judge_config = kayenta_py.load_config(config(case.metric, sequential=False))
    out = []
    for run in runs:
        data = make_run(case, seed, run, _NAB, _PHI, _SPIKES)
        seq_fail, seq_pass = run_sequential(case, data, per_look, alpha)
        out.append(Outcome(run, seq_fail, seq_pass, *run_mann_whitney(case, data, per_look, judge_config)))
    return out


# ---------------------------------------------------------------- report


@dataclass(frozen=True)
class Schedule:
    """A look frequency."""

    per_look: int  # new points per side per look
    runs: int

    @property
    def looks(self) -> int:
        return POINTS // self.per_look

    @property
    def seconds(self) -> int:
        return self.per_look * STEP_S

    @property
    def chunk(self) -> int:
        """Runs per worker task: a 10 s-look run costs about 6 one-minute-look runs."""
        return max(1, 6 // self.per_look)


def _minutes(look: int, schedule: Schedule) -> float:
    return look * schedule.seconds / 60.0


def table(schedule: Schedule, results: Mapping[Case, list[Outcome]], alpha: float) -> list[str]:
    """The printed table of one look frequency, and notes on sequential false fails above alpha."""
    header = (
        f"{'scenario':<28} {'effect':<17} {'method':<26} {'fail rate':>9} {'s.e.':>6} "
        f"{'median min':>10}  {'early pass (median min)':<23}"
    )
    lines = [header, "-" * len(header)]
    notes = []
    for case in CASES:
        outcomes = results[case]
        n = len(outcomes)
        methods = (
            ("sequential", [o.seq_fail for o in outcomes]),
            ("re-run mann-whitney", [o.mw_fail for o in outcomes]),
            (f"re-run m-w, {WARMUP_MINUTES}-min warm-up", [o.mw_warm_fail for o in outcomes]),
        )
        for index, (method, fails) in enumerate(methods):
            detected = [_minutes(f, schedule) for f in fails if f is not None]
            rate = len(detected) / n
            se = math.sqrt(rate * (1.0 - rate) / n)
            digits = 1 if schedule.seconds >= 60 else 2
            median = f"{statistics.median(detected):.{digits}f}" if detected else "-"
            early = "-"
            if method == "sequential":
                passes = [_minutes(o.seq_pass, schedule) for o in outcomes if o.seq_pass is not None]
                early = f"{len(passes) / n:.3f}"
                if passes:
                    early += f" ({statistics.median(passes):.{digits}f})"
            first = index == 0
            lines.append(
                f"{case.label if first else '':<28} {case.effect if first else '':<17} {method:<26} "
                f"{rate:>9.3f} {se:>6.3f} {median:>10}  {early:<23}".rstrip()
            )
            if method == "sequential" and case.factor in (0.0, 1.0) and rate > alpha:
                notes.append(
                    f"NOTE: sequential false-fail rate {rate:.3f} > alpha {alpha:g} on {case.label} "
                    f"(s.e. {se:.3f}; {(rate - alpha) / max(se, 1e-12):.1f} s.e. above)"
                )
    return lines + notes


# ---------------------------------------------------------------- real traffic (suite real-traffic)


@dataclass(frozen=True)
class Target:
    """A done-when target of the issue on a row's sequential fail rate."""

    op: str  # "<=" (A/A: false-fail) or ">=" (power)
    bound: float
    no_early_pass: bool = False  # and no run may pass early
    added: bool = False  # not the issue's own: the tests' (printed with a *)

    def met(self, fail_rate: float, early_pass_rate: float) -> bool:
        ok = fail_rate <= self.bound if self.op == "<=" else fail_rate >= self.bound
        return ok and not (self.no_early_pass and early_pass_rate > 0.0)

    def __str__(self) -> str:
        early = ", no early" if self.no_early_pass else ""
        return f"{self.op} {self.bound:g}{early}{' *' if self.added else ''}"


# Rows of the real-traffic table (keys of real_traffic.SCENARIOS) and the done-when target
# of each; None: measured, no target.
REAL_TRAFFIC_ROWS: tuple[tuple[str, Target | None], ...] = (
    ("poisson-0.1", None),
    ("negbin-0.05", None),
    ("negbin-0.1", Target("<=", 0.075)),
    ("hiccups-0.05", None),
    ("hiccups-0.1", Target("<=", 0.075)),
    ("combined-0.1", None),
    ("combined-0.5", Target("<=", 0.075)),
    ("poisson-x2-0.1", Target(">=", 0.95)),
    ("combined-x2-0.1", Target(">=", 0.80, no_early_pass=True)),
    ("zero-baseline-0.1", Target(">=", 0.90)),
    ("zero-baseline-low-0.1", None),
    ("rank-ar0.8-sd0.1", None),
    ("rank-ar0.95-sd0.1", None),
    ("rank-ar0.98-sd0.1", Target("<=", 0.075)),
    ("rank-realistic", Target("<=", 0.075, added=True)),
    ("pareto-1.5", Target("<=", 0.075)),
    ("pareto-3", Target("<=", 0.075)),
    ("family-5", Target("<=", 0.075)),
    ("rank-ar0.8-sd0.1-x1.25", Target(">=", 0.80)),
    ("rank-ar0.8-sd0.2-x1.25", None),
    ("rank-ar0.98-sd0.1-x1.25", None),
    ("rank-realistic-x1.25", None),
    ("pareto-1.5-x1.25", None),
    ("family-5-x1.25", None),
    ("p99-0.1", Target("<=", 0.075, added=True)),
    ("p99-0.5", None),
    ("histogram-0.1", Target("<=", 0.075)),
    ("histogram-0.5", None),
    ("p99-x1.1", None),
    ("p99-x1.25", Target(">=", 0.80, added=True)),
    ("histogram-x1.1", None),
    ("histogram-x1.25", Target(">=", 0.80, added=True)),
)
# --quick: the rows with a target of the issue, few runs.
QUICK_ROWS = frozenset(key for key, target in REAL_TRAFFIC_ROWS if target is not None and not target.added)
REAL_TRAFFIC_CHUNK = 4  # runs per worker task


@dataclass(frozen=True)
class RealRow:
    """One row of the real-traffic table: the outcomes of both methods on the same runs."""

    scenario: real_traffic.Scenario
    target: Target | None
    sequential: tuple[real_traffic.Outcome, ...]
    mann_whitney: tuple[real_traffic.Outcome, ...]

    def rate(self, attribute: str, mann_whitney: bool = False) -> float:
        outcomes = self.mann_whitney if mann_whitney else self.sequential
        return sum(bool(getattr(o, attribute)) for o in outcomes) / len(outcomes)

    @property
    def at_finish(self) -> float:
        return sum(o.fail_look == real_traffic.FINISH for o in self.sequential) / len(self.sequential)

    def verdict(self) -> str:
        """Whether the sequential rates meet the row's target ("" without one)."""
        if self.target is None:
            return ""
        return "met" if self.target.met(self.rate("failed"), self.rate("passed_early")) else "MISSED"


def real_traffic_table(rows: Sequence[RealRow], alpha: float) -> list[str]:
    """The printed real-traffic table."""
    width = max(len("scenario"), *(len(row.scenario.label) for row in rows))
    header = (
        f"{'scenario':<{width}} {'runs':>4} {'what':<10} {'seq':>6} {'s.e.':>6} {'finish':>6} "
        f"{'early':>6} {'marg':>6} | {'m-w':>6} {'m-w marg':>8} | {'target':<8} {'':<6}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        n = len(row.sequential)
        rate = row.rate("failed")
        se = math.sqrt(rate * (1.0 - rate) / n)
        what = "false-fail" if row.scenario.healthy else "power"
        target = "" if row.target is None else str(row.target)
        lines.append(
            f"{row.scenario.label:<{width}} {n:>4} {what:<10} {rate:>6.3f} {se:>6.3f} {row.at_finish:>6.3f} "
            f"{row.rate('passed_early'):>6.3f} {row.rate('marginal'):>6.3f} | "
            f"{row.rate('failed', True):>6.3f} {row.rate('marginal', True):>8.3f} | {target:<18} "
            f"{row.verdict():<6}".rstrip()
        )
    lines.append("")
    lines.append(
        "seq: sequential fail rate (at a look or at finish()); finish: of which decided by finish(); "
        "early: early pass rate (a regressed canary passing early is the worst outcome); marg: ended "
        "marginal (not a fail; a person decides); m-w / m-w marg: re-run Mann-Whitney (all points so "
        "far at every look, fail at the first fail) on the same runs: fail rate and marginal last "
        f"look; target: the issue's done-when bound on seq (* the tests' own, tests/"
        f"test_sequential_real_traffic.py), met or MISSED (alpha {alpha:g})"
    )
    return lines


def run_real_traffic(args: argparse.Namespace) -> list[str]:
    """Run the real-traffic suite; return its printed lines."""
    keys = [(k, t) for k, t in REAL_TRAFFIC_ROWS if not args.quick or k in QUICK_ROWS]
    lines = [
        "real traffic (tests/real_traffic.py): one-hour canary, one point a minute, 60 looks of 1 new "
        f"minute, then finish(); alpha {args.alpha:g}, seed {args.seed}; sequential-rank with "
        "min_points 10; re-run mann-whitney judges per-minute error ratios, gauges or p99"
    ]
    futures: dict[str, list[Future[list[tuple[real_traffic.Outcome, real_traffic.Outcome | None]]]]] = {}
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for key, _ in keys:
            scenario = real_traffic.SCENARIOS[key]
            runs = args.real_runs if scenario.healthy else args.real_runs_effect
            futures[key] = [
                pool.submit(
                    real_traffic.simulate_runs,
                    scenario,
                    args.seed,
                    range(start, min(start + REAL_TRAFFIC_CHUNK, runs)),
                    True,
                    args.alpha,
                )
                for start in range(0, runs, REAL_TRAFFIC_CHUNK)
            ]
        rows = []
        for key, target in keys:
            pairs = [pair for f in futures[key] for pair in f.result()]
            rows.append(
                RealRow(
                    real_traffic.SCENARIOS[key],
                    target,
                    tuple(seq for seq, _ in pairs),
                    tuple(mw for _, mw in pairs if mw is not None),
                )
            )
    runs_note = f"{args.real_runs} runs per A/A row, {args.real_runs_effect} per effect row"
    return [*lines, runs_note, "", *real_traffic_table(rows, args.alpha)]


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=None, help="runs per row, looks every minute (200)")
    parser.add_argument(
        "--runs-10s", type=int, default=None, help="runs per row, looks every 10 s (default: 2/5 of --runs)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--quick", action="store_true", help="20 and 8 runs per row (about 30 s)")
    parser.add_argument(
        "--trend",
        choices=("auto", "nab", "generated"),
        default="auto",
        help="level of (b): NAB series when present (auto), or forced",
    )
    parser.add_argument(
        "--phi", type=float, default=PHI, help="AR(1) coefficient of (b)'s noise per 10 s point (0.9)"
    )
    parser.add_argument(
        "--spikes", type=float, default=0.0, help="fraction of (b)'s points on each side that spike x3 (0)"
    )
    parser.add_argument("--nab", type=Path, default=DEFAULT_NAB, help="NAB data directory (read in place)")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)), help="worker processes")
    parser.add_argument(
        "--suite",
        choices=("classic", "real-traffic", "all"),
        default="classic",
        help="classic: (a)-(c), 10 s points (default); real-traffic: (d)-(f), tests/real_traffic.py; all",
    )
    parser.add_argument(
        "--real-runs",
        type=int,
        default=None,
        help="real-traffic runs per A/A row (--runs, else 200; --quick 8); effect rows get half",
    )
    args = parser.parse_args(argv)
    if args.real_runs is None:
        args.real_runs = args.runs if args.runs is not None else (8 if args.quick else 200)
    args.real_runs_effect = max(1, args.real_runs // 2) if not args.quick else args.real_runs
    if args.runs is None:
        args.runs = 20 if args.quick else 200
    if args.runs_10s is None:
        args.runs_10s = 8 if args.quick else max(1, 2 * args.runs // 5)
    if args.runs < 1 or args.runs_10s < 1 or args.jobs < 1 or args.real_runs < 1:
        parser.error("--runs, --runs-10s, --real-runs and --jobs must be at least 1")
    if not 0 < args.alpha < 1:
        parser.error("--alpha must be between 0 and 1")
    if not 0 <= args.spikes < 1:
        parser.error("--spikes must be in [0, 1)")
    if not 0 <= args.phi < 1:
        parser.error("--phi must be in [0, 1)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    status = 0
    if args.suite in ("classic", "all"):
        status = run_classic(args)
    if args.suite in ("real-traffic", "all"):
        if args.suite == "all":
            print()
        print("\n".join(run_real_traffic(args)))
    print(f"elapsed {time.perf_counter() - started:.1f} s")
    return status


def run_classic(args: argparse.Namespace) -> int:
    """Run the classic suite, (a)-(c) at 10 s points; print its tables."""
    nab: list[NabSeries] = []
    if args.trend != "generated":
        nab = load_nab(args.nab) if args.nab.is_dir() else []
        if not nab and args.trend == "nab":
            print(f"no usable NAB series under {args.nab}", file=sys.stderr)
            return 1
    print(
        f"sequential power: one-hour canary, a point every {STEP_S} s per side ({POINTS} points), "
        f"alpha {args.alpha:g}, seed {args.seed}, {args.jobs} worker processes "
        f"(numpy {np.__version__}, Python {sys.version.split()[0]})"
    )
    print(f"(a) iid lognormal latency: median {LATENCY_MEDIAN:g} ms, log-sd {LOG_SD:g}")
    noise = (
        f"independent lognormal AR(1) noise per side (phi {args.phi:g} per {STEP_S} s point, "
        f"marginal log-sd {LOG_SD:g})"
        + (f", {args.spikes:.0%} of points per side x{SPIKE_FACTOR:g} (spikes)" if args.spikes else "")
    )
    if nab:
        windows = sum(int(s.starts.size) for s in nab)
        print(
            f"(b) trend source: NAB real series ({args.nab}): a random one-hour window of one of "
            f"{len(nab)} series ({', '.join(Path(s.name).stem for s in nab)}; {windows} usable starts, "
            "labelled anomalies excluded), linearly interpolated to 10 s, as the level both sides share, "
            f"times {noise}"
        )
    else:
        why = "forced" if args.trend == "generated" else f"no NAB data at {args.nab}"
        print(
            f"(b) trend source: generated AR(1)-plus-trend model ({why}): "
            f"level {LATENCY_MEDIAN:g} x exp({GENERATED_DAILY_AMPLITUDE:g} sin(daily, random phase) + "
            f"shared AR(1) phi {GENERATED_SLOW_PHI:g} log-sd {GENERATED_SLOW_SD:g}), times {noise}"
        )
    print(
        f"(c) errors: Poisson requests, {REQUESTS_PER_STEP / STEP_S:g}/s on average with a cycle of "
        f"+-{TRAFFIC_AMPLITUDE:.0%} (period {CYCLE_MINUTES[0]:g}-{CYCLE_MINUTES[1]:g} min), canary share "
        f"{CANARY_SHARE:.0%}; binomial errors, rate {ERROR_RATE:.1%} x the cycle on both sides; "
        "mann-whitney judges per-step error ratios"
    )
    print(
        "methods: sequential = SequentialAnalysis.update with each look's new points (kind defaults: "
        "sequential-rank, sequential-count); re-run mann-whitney = judge on all points so far, "
        "fail at the first look whose verdict is fail (marginal does not fail)"
    )
    schedules = (Schedule(6, args.runs), Schedule(1, args.runs_10s))
    futures: dict[tuple[int, Case], list[Future[list[Outcome]]]] = {}
    with ProcessPoolExecutor(
        max_workers=args.jobs, initializer=_init_worker, initargs=(nab, args.phi, args.spikes)
    ) as pool:
        for schedule in sorted(schedules, key=lambda s: s.per_look):  # the longer tasks first
            for case in CASES:
                futures[(schedule.per_look, case)] = [
                    pool.submit(
                        simulate,
                        case,
                        schedule.per_look,
                        range(start, min(start + schedule.chunk, schedule.runs)),
                        args.seed,
                        args.alpha,
                    )
                    for start in range(0, schedule.runs, schedule.chunk)
                ]
        for schedule in schedules:
            results = {
                case: [o for f in futures[(schedule.per_look, case)] for o in f.result()] for case in CASES
            }
            reduced = " (fewer runs than the 1-minute looks, for time)" if schedule.runs < args.runs else ""
            print()
            print(
                f"looks every {schedule.seconds} s: {schedule.looks} looks of {schedule.per_look} new "
                f"point{'s' if schedule.per_look > 1 else ''} per side; {schedule.runs} runs per row{reduced}"
            )
            print("\n".join(table(schedule, results, args.alpha)))
    print()
    print(
        "fail rate: fraction of runs that failed (A/A rows: the false-fail rate); s.e.: its Monte-Carlo "
        "standard error sqrt(p(1-p)/runs); median min: median minutes to the fail, among runs that "
        "failed; early pass: fraction of runs the sequential analysis passed before the hour ended "
        f"(median minute); re-run m-w, {WARMUP_MINUTES}-min warm-up: the same re-run mann-whitney with no "
        f"judgement before minute {WARMUP_MINUTES} (Kayenta's beginCanaryAnalysisAfterMins; extra row, "
        "same runs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
