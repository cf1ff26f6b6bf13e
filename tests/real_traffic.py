"""Real-traffic generators for the sequential judges, written from traffic, not from the judges.

A one-hour canary observed every minute: 20,000 requests a minute over both arms, a canary share of
5%, 10% or 50%, an error rate of 0.2%, latencies around 100 ms. Every generator takes a seeded
:class:`numpy.random.Generator` and returns arrays; nothing here imports or imitates a judge. What
production does, and what is modelled:

* **Traffic** (:func:`minute_traffic`, :func:`split_traffic`): requests per minute follow a mild
  diurnal swing (a one-day sine, random phase; an hour sees a slice of it) times lognormal
  minute-to-minute jitter, Poisson; a binomial split gives each arm its share.
* **Error counts** (:class:`ErrorModel`, :func:`count_pair`): requests are served by 20 pods; the
  canary runs ``round(share * 20)`` of them (at least one), the baseline the rest. Per minute the
  expected errors of each arm are multiplied by an independent Gamma(shape 2, mean 1) factor (a
  negative-binomial minute: a retry storm, a slow dependency), and each pod-minute is a *hiccup*
  with probability 0.005 (a GC pause, a cold cache, a bad node), multiplying that pod's errors by
  20 for the minute; the counts are Poisson given those rates. :data:`NEGBIN`, :data:`HICCUPS`,
  :data:`COMBINED` and :data:`POISSON` are the four models.
* **Latency series** (:class:`SeriesModel`, :func:`latency_pair`): one point a minute per arm,
  log-normal around 100 ms; log-latency is an AR(1) per arm (independent, phi 0.8-0.98, a given
  marginal log-sd), optionally plus a load component both arms share, a trend, a level step that
  hits both arms at the same minute (a dependency got slower), heavy-tailed Pareto noise
  multiplied onto each point, and runs of missing points (NaN) on the canary only (a scrape gap).
* **Per-step percentiles and histograms** (:class:`RequestModel`, :func:`request_latency_pair`):
  each minute each arm's requests are drawn one by one from a log-normal latency whose level
  follows a shared load (AR(1)) and a small per-arm drift; the minute's p99 of each arm is computed
  from those requests (the small arm's p99 is noisier, as a real 10% canary's is), and so are the
  cumulative bucket counts at Prometheus's default bounds (``increase(x_bucket[1m])``).

Drivers: :func:`run` feeds per-look batches to :class:`kayenta_py.SequentialAnalysis` and returns an
:class:`Outcome` (the look of the first ``fail``, the look of an early ``pass``, the final verdict);
:func:`run_mann_whitney` re-runs Kayenta's fixed-horizon Mann-Whitney on all points so far at every
look and fails at the first ``fail``, as Kayenta does.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

import kayenta_py
from kayenta_py import Verdict

FloatArray = npt.NDArray[np.float64]

__all__ = [
    "COMBINED",
    "FAMILY",
    "FINISH",
    "HICCUPS",
    "NEGBIN",
    "POISSON",
    "PROMETHEUS_BOUNDS",
    "REALISTIC",
    "SCENARIOS",
    "CountArm",
    "CountPair",
    "ErrorModel",
    "Feeds",
    "FloatArray",
    "Outcome",
    "RequestLatency",
    "RequestModel",
    "Scenario",
    "SeriesModel",
    "SeriesPair",
    "ar1",
    "canary_pods",
    "count_pair",
    "latency_pair",
    "make_feeds",
    "mann_whitney_config",
    "minute_traffic",
    "per_look",
    "request_latency_pair",
    "run",
    "run_mann_whitney",
    "simulate",
    "simulate_runs",
    "split_traffic",
]

STEPS = 60  # one hour of one-minute steps
RPM = 20_000.0  # requests a minute over both arms
ERROR_RATE = 0.002
PODS = 20
PROMETHEUS_BOUNDS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf,
)  # fmt: skip
FINISH = -1  # Outcome.fail_look of a fail decided by finish(), after the last look


# ---------------------------------------------------------------- traffic


def minute_traffic(
    rng: np.random.Generator,
    n: int = STEPS,
    *,
    rpm: float = RPM,
    diurnal_amplitude: float = 0.3,
    jitter_sd: float = 0.05,
) -> FloatArray:
    """Return total requests per minute over both arms.

    Parameters
    ----------
    rng : numpy.random.Generator
    n : int
        Minutes.
    rpm : float
        Mean requests a minute.
    diurnal_amplitude : float
        Relative amplitude of a one-day sine with a random phase (an hour moves at most
        ``2 pi / 24`` of it: about 8% at 0.3).
    jitter_sd : float
        Log-sd of independent minute-to-minute lognormal jitter (mean 1).
    """
    phase = rng.uniform(0.0, 2.0 * math.pi)
    t = np.arange(n, dtype=np.float64)
    level = rpm * (1.0 + diurnal_amplitude * np.sin(2.0 * math.pi * t / 1440.0 + phase))
    jitter = rng.lognormal(-0.5 * jitter_sd**2, jitter_sd, n)
    return rng.poisson(np.maximum(level * jitter, 0.0)).astype(np.float64)


def split_traffic(
    rng: np.random.Generator, total: FloatArray, canary_share: float
) -> tuple[FloatArray, FloatArray]:
    """Split requests binomially between the arms; return ``(baseline, canary)`` per minute."""
    canary = rng.binomial(total.astype(np.int64), canary_share).astype(np.float64)
    return total - canary, canary


def canary_pods(canary_share: float, pods: int = PODS) -> int:
    """Return the canary's pods: ``round(share * pods)``, at least 1 and at most ``pods - 1``."""
    return min(pods - 1, max(1, round(canary_share * pods)))


# ---------------------------------------------------------------- error counts


@dataclass(frozen=True)
class ErrorModel:
    """How errors happen, per arm-minute and per pod-minute.

    Attributes
    ----------
    gamma_shape : float or None
        Shape of the Gamma(mean 1) factor multiplying each arm's expected errors each minute,
        independently per arm (None: no factor, Poisson minutes). Shape 2 gives variance
        ``mu + mu**2 / 2`` per arm-minute.
    hiccup_probability : float
        Probability that a pod-minute is a hiccup.
    hiccup_factor : float
        A hiccuping pod's errors are multiplied by this for the minute.
    pods : int
        Pods over both arms; the canary has :func:`canary_pods` of them.
    """

    gamma_shape: float | None = None
    hiccup_probability: float = 0.0
    hiccup_factor: float = 20.0
    pods: int = PODS

    @property
    def label(self) -> str:
        """Return a short name of the model."""
        parts = []
        if self.gamma_shape is not None:
            parts.append(f"negbin(gamma {self.gamma_shape:g})")
        if self.hiccup_probability > 0:
            parts.append(f"hiccups({self.hiccup_probability:g} x{self.hiccup_factor:g})")
        return "+".join(parts) or "poisson"


POISSON = ErrorModel()
NEGBIN = ErrorModel(gamma_shape=2.0)
HICCUPS = ErrorModel(hiccup_probability=0.005)
COMBINED = ErrorModel(gamma_shape=2.0, hiccup_probability=0.005)


@dataclass(frozen=True)
class CountArm:
    """Errors and requests per minute of one arm."""

    events: FloatArray
    traffic: FloatArray

    def ratio(self) -> FloatArray:
        """Return the error ratio per minute (NaN where the arm had no request)."""
        safe = np.where(self.traffic > 0, self.traffic, 1.0)
        out: FloatArray = np.where(self.traffic > 0, self.events / safe, np.nan)
        return out

    def batches(self, looks: int) -> list[tuple[FloatArray, FloatArray]]:
        """Return ``looks`` consecutive ``(events, traffic)`` batches (``sequential-count`` input)."""
        return list(zip(per_look(self.events, looks), per_look(self.traffic, looks), strict=True))


@dataclass(frozen=True)
class CountPair:
    """Baseline and canary error counts over the same minutes."""

    baseline: CountArm
    canary: CountArm


def _arm_errors(
    rng: np.random.Generator, traffic: FloatArray, pods: int, rate: float, model: ErrorModel
) -> FloatArray:
    n = traffic.size
    # Requests spread evenly over the arm's pods (multinomially), per minute.
    per_pod = np.stack(
        [rng.multinomial(int(t), np.full(pods, 1.0 / pods)) for t in traffic.astype(np.int64)]
    ).astype(np.float64)
    mean = per_pod * rate
    if model.gamma_shape is not None:
        shape = model.gamma_shape
        mean = mean * rng.gamma(shape, 1.0 / shape, n)[:, None]
    if model.hiccup_probability > 0:
        hiccup = rng.random((n, pods)) < model.hiccup_probability
        mean = np.where(hiccup, mean * model.hiccup_factor, mean)
    events: FloatArray = np.minimum(rng.poisson(mean).astype(np.float64).sum(axis=1), traffic)
    return events


def count_pair(
    rng: np.random.Generator,
    model: ErrorModel = POISSON,
    n: int = STEPS,
    *,
    canary_share: float = 0.1,
    rpm: float = RPM,
    baseline_rate: float = ERROR_RATE,
    rate_ratio: float = 1.0,
    canary_rate: float | None = None,
) -> CountPair:
    """Return the errors and requests per minute of both arms.

    Parameters
    ----------
    rng : numpy.random.Generator
    model : ErrorModel
        The overdispersion: :data:`POISSON`, :data:`NEGBIN`, :data:`HICCUPS` or :data:`COMBINED`.
    n : int
        Minutes.
    canary_share : float
        The canary's share of requests (and of pods, see :func:`canary_pods`).
    rpm : float
        Requests a minute over both arms.
    baseline_rate : float
        The baseline's error rate (0 for a service without errors).
    rate_ratio : float
        The canary's error rate over the baseline's (1: A/A).
    canary_rate : float or None
        The canary's error rate, overriding ``rate_ratio`` (errors over a zero baseline).
    """
    total = minute_traffic(rng, n, rpm=rpm)
    base_traffic, canary_traffic = split_traffic(rng, total, canary_share)
    k = canary_pods(canary_share, model.pods)
    rate = baseline_rate * rate_ratio if canary_rate is None else canary_rate
    base = _arm_errors(rng, base_traffic, model.pods - k, baseline_rate, model)
    canary = _arm_errors(rng, canary_traffic, k, rate, model)
    return CountPair(CountArm(base, base_traffic), CountArm(canary, canary_traffic))


# ---------------------------------------------------------------- latency series


def ar1(rng: np.random.Generator, n: int, *, phi: float, sd: float) -> FloatArray:
    """Return a stationary AR(1) series with coefficient ``phi`` and marginal sd ``sd``.

    The first value comes from the stationary law, so a short series is as persistent as a long
    one.
    """
    if not 0.0 <= phi < 1.0:
        raise ValueError(f"phi must be in [0, 1), got {phi}")
    shocks = rng.standard_normal(n)
    out = np.empty(n, dtype=np.float64)
    if n == 0:
        return out
    out[0] = sd * shocks[0]
    scale = sd * math.sqrt(1.0 - phi * phi)
    for t in range(1, n):
        out[t] = phi * out[t - 1] + scale * shocks[t]
    return out


@dataclass(frozen=True)
class SeriesModel:
    """A one-point-a-minute latency gauge per arm (seconds), log-normal around ``median``.

    ``log(latency) = log(median) + own + shared + trend * t / n + step * [t >= t0] + log(pareto)``

    Attributes
    ----------
    median : float
        Typical latency (s).
    phi : float
        AR(1) coefficient of each arm's own component, per minute.
    log_sd : float
        Marginal sd of each arm's own component (independent per arm).
    shared_phi, shared_sd : float
        AR(1) load component both arms share (``shared_sd`` 0: none).
    trend : float
        Log change over the hour, both arms alike.
    level_step : float
        Log jump at a random minute (the same for both arms), 0 for none.
    pareto_shape : float or None
        Each point is multiplied by an independent Pareto(shape, minimum 1) draw divided by its
        median (heavy tails: infinite variance below shape 2).
    gap_runs : int
        Runs of NaN on the canary only, each 2-5 minutes long, at random places.
    """

    median: float = 0.1
    phi: float = 0.95
    log_sd: float = 0.1
    shared_phi: float = 0.99
    shared_sd: float = 0.0
    trend: float = 0.0
    level_step: float = 0.0
    pareto_shape: float | None = None
    gap_runs: int = 0

    def with_(self, **changes: Any) -> SeriesModel:
        """Return a copy with ``changes``."""
        return replace(self, **changes)

    @property
    def label(self) -> str:
        """Return a short description."""
        parts = [f"AR(1) phi {self.phi:g} log-sd {self.log_sd:g}"]
        if self.shared_sd:
            parts.append(f"shared load sd {self.shared_sd:g}")
        if self.trend:
            parts.append(f"trend {self.trend:+g}/h")
        if self.level_step:
            parts.append(f"level step {self.level_step:+g}")
        if self.pareto_shape is not None:
            parts.append(f"Pareto {self.pareto_shape:g}")
        if self.gap_runs:
            parts.append(f"{self.gap_runs} canary gaps")
        return ", ".join(parts)


@dataclass(frozen=True)
class SeriesPair:
    """Baseline and canary values of one metric, aligned by minute (NaN: no point)."""

    baseline: FloatArray
    canary: FloatArray


def latency_pair(
    rng: np.random.Generator, model: SeriesModel = SeriesModel(), n: int = STEPS, *, factor: float = 1.0
) -> SeriesPair:
    """Return a latency gauge per arm following ``model``; the canary is ``factor`` times slower."""
    t = np.arange(n, dtype=np.float64)
    common = np.full(n, math.log(model.median)) + model.trend * t / max(n, 1)
    if model.shared_sd > 0:
        common = common + ar1(rng, n, phi=model.shared_phi, sd=model.shared_sd)
    if model.level_step:
        common = common + model.level_step * (t >= int(rng.integers(1, max(n, 2))))

    def arm(scale: float) -> FloatArray:
        values: FloatArray = scale * np.exp(common + ar1(rng, n, phi=model.phi, sd=model.log_sd))
        if model.pareto_shape is not None:
            a = model.pareto_shape
            values = values * (1.0 + rng.pareto(a, n)) / 2.0 ** (1.0 / a)
        return values

    baseline = arm(1.0)
    canary = arm(factor)
    for _ in range(model.gap_runs):
        start = int(rng.integers(0, n))
        canary[start : start + int(rng.integers(2, 6))] = np.nan
    return SeriesPair(baseline, canary)


# ---------------------------------------------------------------- requests: p99 and buckets


@dataclass(frozen=True)
class RequestModel:
    """Per-request latency (s): log-normal whose level moves from minute to minute.

    Attributes
    ----------
    median : float
        Median request latency (s) at the mean level.
    sigma : float
        Log-sd of single requests within a minute.
    load_phi, load_sd : float
        AR(1) (marginal sd) of the log-level both arms share: the load they both serve.
    own_phi, own_sd : float
        AR(1) of a small per-arm log-level drift: the arms' pods are not identical from minute to
        minute (noisy neighbours, GC), independently per arm.
    """

    median: float = 0.08
    sigma: float = 0.5
    load_phi: float = 0.95
    load_sd: float = 0.1
    own_phi: float = 0.8
    own_sd: float = 0.02


@dataclass(frozen=True)
class RequestLatency:
    """Per-minute p99 and cumulative bucket counts of both arms, from the same requests.

    ``*_buckets`` are ``(minutes, len(bounds))`` cumulative counts (requests at or below each
    bound in that minute, the last bound ``inf``), as Prometheus's ``increase(x_bucket[1m])``.
    """

    baseline_p99: FloatArray
    canary_p99: FloatArray
    baseline_buckets: FloatArray
    canary_buckets: FloatArray
    bounds: tuple[float, ...]

    def quantiles(self) -> SeriesPair:
        """Return the per-minute p99 of both arms (the ``sequential-rank`` input)."""
        return SeriesPair(self.baseline_p99, self.canary_p99)

    def bucket_batches(self, side: str, looks: int, *, as_dict: bool = True) -> list[Any]:
        """Return ``looks`` batches of one side's bucket counts (``sequential-histogram`` input).

        ``as_dict``: each batch maps a bound ``le`` to its counts per minute; otherwise each is a
        2-D array (minutes x bounds), for a judge configured with ``"buckets"``.
        """
        counts = self.baseline_buckets if side == "baseline" else self.canary_buckets
        parts = per_look(counts, looks)
        if not as_dict:
            return parts
        return [{le: part[:, j].copy() for j, le in enumerate(self.bounds)} for part in parts]


def request_latency_pair(
    rng: np.random.Generator,
    model: RequestModel = RequestModel(),
    n: int = STEPS,
    *,
    canary_share: float = 0.1,
    rpm: float = RPM,
    factor: float = 1.0,
    quantile: float = 0.99,
    bounds: Sequence[float] = PROMETHEUS_BOUNDS,
) -> RequestLatency:
    """Return per-minute p99 and bucket counts of requests actually drawn for each arm.

    Each minute each arm serves its binomial share of :func:`minute_traffic`; each request's latency
    is ``exp(N(log(median) + load[t] + own[t], sigma))`` (the canary's ``factor`` times slower). A
    minute without requests has a NaN p99 and zero counts.
    """
    total = minute_traffic(rng, n, rpm=rpm)
    base_traffic, canary_traffic = split_traffic(rng, total, canary_share)
    load = ar1(rng, n, phi=model.load_phi, sd=model.load_sd)
    edges = np.asarray(bounds, dtype=np.float64)

    def arm(traffic: FloatArray, scale: float) -> tuple[FloatArray, FloatArray]:
        own = ar1(rng, n, phi=model.own_phi, sd=model.own_sd)
        p99 = np.full(n, np.nan)
        buckets = np.zeros((n, edges.size))
        with np.errstate(divide="ignore"):
            log_edges = np.log(edges)
        for t in range(n):
            count = int(traffic[t])
            if count == 0:
                continue
            mu = math.log(model.median * scale) + load[t] + own[t]
            # Work on the standard normals of log-latency (exp is monotone): the empirical quantile
            # (linear interpolation, numpy's default) from two order statistics, and each request's
            # bucket from where it falls among the bounds.
            z = rng.standard_normal(count)
            h = (count - 1) * quantile
            lo = math.floor(h)
            hi = min(lo + 1, count - 1)
            part = np.partition(z, [lo, hi]) if hi > lo else np.partition(z, lo)
            x_lo = math.exp(mu + model.sigma * float(part[lo]))
            x_hi = math.exp(mu + model.sigma * float(part[hi]))
            p99[t] = x_lo + (h - lo) * (x_hi - x_lo)
            index = np.searchsorted((log_edges - mu) / model.sigma, z, side="left")
            buckets[t] = np.cumsum(np.bincount(index, minlength=edges.size)[: edges.size])
        return p99, buckets

    base_p99, base_buckets = arm(base_traffic, 1.0)
    canary_p99, canary_buckets = arm(canary_traffic, factor)
    return RequestLatency(base_p99, canary_p99, base_buckets, canary_buckets, tuple(float(b) for b in bounds))


# ---------------------------------------------------------------- drivers


def per_look(values: FloatArray, looks: int) -> list[FloatArray]:
    """Split ``values`` (minutes first) into ``looks`` consecutive, nearly equal batches."""
    return [part.copy() for part in np.array_split(values, looks)]


@dataclass(frozen=True)
class Outcome:
    """How one canary ended.

    Attributes
    ----------
    fail_look : int or None
        The look (1-based) of the first ``fail``; :data:`FINISH` when ``finish()`` failed it.
    early_pass_look : int or None
        The look of an early ``pass`` (before ``finish()``), which ends the canary.
    final : Verdict
        The canary's verdict: ``fail``, the early ``pass``, or ``finish()``'s verdict.
    """

    fail_look: int | None
    early_pass_look: int | None
    final: Verdict

    @property
    def failed(self) -> bool:
        """Return whether the canary failed (at a look or at the finish)."""
        return self.final is Verdict.FAIL

    @property
    def passed_early(self) -> bool:
        """Return whether it passed before the end of its lifetime."""
        return self.early_pass_look is not None

    @property
    def marginal(self) -> bool:
        """Return whether it ended ``marginal`` (a person must decide)."""
        return self.final is Verdict.MARGINAL


def run(
    config: Mapping[str, Any],
    baseline_batches: Mapping[str, Sequence[Any]],
    canary_batches: Mapping[str, Sequence[Any]],
    looks: int,
    *,
    alpha: float = 0.05,
    family: Literal["bonferroni", "e-bh"] = "bonferroni",
) -> Outcome:
    """Feed ``looks`` batches per metric to a :class:`kayenta_py.SequentialAnalysis`.

    Parameters
    ----------
    config : mapping
        A native sequential config.
    baseline_batches, canary_batches : mapping
        Metric name to its batches, one per look (as :meth:`CountArm.batches`, :func:`per_look`
        or :meth:`RequestLatency.bucket_batches` make them).
    looks : int
        Looks before ``finish()``.

    Returns
    -------
    Outcome
        Stops at the first ``fail`` or ``pass``; otherwise ``finish()`` decides.
    """
    analysis = kayenta_py.SequentialAnalysis(dict(config), alpha=alpha, family=family)
    for look in range(1, looks + 1):
        verdict = analysis.update(
            {name: batches[look - 1] for name, batches in baseline_batches.items()},
            {name: batches[look - 1] for name, batches in canary_batches.items()},
        ).verdict
        if verdict is Verdict.FAIL:
            return Outcome(look, None, Verdict.FAIL)
        if verdict is Verdict.PASS:
            return Outcome(None, look, Verdict.PASS)
    final = analysis.finish().verdict
    return Outcome(FINISH if final is Verdict.FAIL else None, None, final)


def mann_whitney_config(config: Mapping[str, Any]) -> kayenta_py.CanaryConfig:
    """Return the fixed-mode twin of a sequential config: every metric judged by ``mann-whitney``."""
    metrics = [
        {**{k: v for k, v in metric.items() if k != "judge"}, "judge": {"type": "mann-whitney"}}
        for metric in config["metrics"]
    ]
    body = {k: v for k, v in config.items() if k not in ("mode", "metrics")}
    return kayenta_py.load_config({**body, "metrics": metrics})


def run_mann_whitney(
    config: kayenta_py.CanaryConfig | Mapping[str, Any],
    baseline: Mapping[str, FloatArray],
    canary: Mapping[str, FloatArray],
    looks: int,
) -> Outcome:
    """Re-run a fixed-horizon Mann-Whitney on all points so far at every look, as Kayenta does.

    ``config`` is a fixed-mode config (see :func:`mann_whitney_config`); ``baseline`` and ``canary``
    map metric names to per-minute values (error ratios, gauges, per-minute p99). The canary fails
    at the first look whose verdict is ``fail`` (``marginal`` does not fail); it never passes early;
    its final verdict is the last look's.
    """
    n = min(int(v.shape[0]) for v in (*baseline.values(), *canary.values()))
    stops = [part[-1] + 1 for part in np.array_split(np.arange(n), looks)]
    verdict = Verdict.PENDING
    for look, stop in enumerate(stops, start=1):
        verdict = kayenta_py.judge(
            config,
            {name: values[:stop] for name, values in baseline.items()},
            {name: values[:stop] for name, values in canary.items()},
        ).verdict
        if verdict is Verdict.FAIL:
            return Outcome(look, None, Verdict.FAIL)
    return Outcome(None, None, verdict)


# ---------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    """One canary scenario: what the traffic does, which judge reads it, and the canary's effect.

    Attributes
    ----------
    key : str
        Stable name; it seeds the runs (with the seed and the run number).
    label : str
        Printed description.
    data : str
        ``"counts"`` (``sequential-count`` on errors and requests), ``"series"`` (one
        ``sequential-rank`` metric per entry of ``series``, judged together), ``"p99"``
        (``sequential-rank`` on the per-minute p99 of drawn requests) or ``"histogram"``
        (``sequential-histogram`` on the bucket counts of the same requests).
    errors : ErrorModel
        Error model of ``"counts"``.
    canary_share : float
        The canary's share of traffic (``"counts"``, ``"p99"``, ``"histogram"``).
    rate_ratio : float
        Canary error rate over the baseline's.
    baseline_rate : float
        The baseline's error rate.
    canary_rate : float or None
        The canary's error rate, overriding ``rate_ratio``.
    series : tuple of SeriesModel
        The gauges of ``"series"`` (one metric each).
    factor : float
        Latency multiplier of the canary (``"series"``, ``"p99"``, ``"histogram"``).
    requests : RequestModel
        Request latency of ``"p99"`` and ``"histogram"``.
    min_points : int
        ``min_points`` of every ``sequential-rank`` judge.
    """

    key: str
    label: str
    data: str
    errors: ErrorModel = POISSON
    canary_share: float = 0.1
    rate_ratio: float = 1.0
    baseline_rate: float = ERROR_RATE
    canary_rate: float | None = None
    series: tuple[SeriesModel, ...] = (SeriesModel(),)
    factor: float = 1.0
    requests: RequestModel = RequestModel()
    min_points: int = 10

    @property
    def healthy(self) -> bool:
        """Return whether the canary is as good as the baseline (an A/A run)."""
        if self.data == "counts":
            rate = self.baseline_rate * self.rate_ratio if self.canary_rate is None else self.canary_rate
            return rate <= self.baseline_rate
        return self.factor <= 1.0

    def config(self) -> dict[str, Any]:
        """Return the native sequential config the scenario is judged with."""
        metrics: list[dict[str, Any]]
        if self.data == "counts":
            metrics = [{"name": "errors", "kind": "errors", "judge": {"type": "sequential-count"}}]
        elif self.data == "histogram":
            metrics = [{"name": "latency", "kind": "latency", "judge": {"type": "sequential-histogram"}}]
        else:
            judge = {"type": "sequential-rank", "min_points": self.min_points}
            names = ["latency"] if self.data == "p99" else self.metric_names()
            metrics = [{"name": name, "kind": "latency", "judge": dict(judge)} for name in names]
        return {"name": f"real-traffic-{self.key}", "mode": "sequential", "metrics": metrics}

    def metric_names(self) -> list[str]:
        """Return the metric names of a ``"series"`` scenario."""
        if len(self.series) == 1:
            return ["latency"]
        return [f"latency-{i + 1}" for i in range(len(self.series))]

    def rng(self, seed: int, run: int) -> np.random.Generator:
        """Return the Generator of one run (independent streams per scenario, seed and run)."""
        return np.random.default_rng([seed, zlib.crc32(self.key.encode()), run])


@dataclass(frozen=True)
class Feeds:
    """One run's data: sequential batches per metric, and per-minute values for Mann-Whitney."""

    baseline_batches: dict[str, list[Any]]
    canary_batches: dict[str, list[Any]]
    baseline_values: dict[str, FloatArray]
    canary_values: dict[str, FloatArray]


def make_feeds(scenario: Scenario, rng: np.random.Generator, n: int = STEPS, looks: int = STEPS) -> Feeds:
    """Draw one run of ``scenario``: ``looks`` batches per metric over ``n`` minutes."""
    if scenario.data == "counts":
        pair = count_pair(
            rng,
            scenario.errors,
            n,
            canary_share=scenario.canary_share,
            baseline_rate=scenario.baseline_rate,
            rate_ratio=scenario.rate_ratio,
            canary_rate=scenario.canary_rate,
        )
        return Feeds(
            {"errors": pair.baseline.batches(looks)},
            {"errors": pair.canary.batches(looks)},
            {"errors": pair.baseline.ratio()},
            {"errors": pair.canary.ratio()},
        )
    if scenario.data == "series":
        base: dict[str, FloatArray] = {}
        cana: dict[str, FloatArray] = {}
        for name, model in zip(scenario.metric_names(), scenario.series, strict=True):
            pair_ = latency_pair(rng, model, n, factor=scenario.factor)
            base[name], cana[name] = pair_.baseline, pair_.canary
        return Feeds(
            {k: per_look(v, looks) for k, v in base.items()},
            {k: per_look(v, looks) for k, v in cana.items()},
            base,
            cana,
        )
    requests = request_latency_pair(
        rng, scenario.requests, n, canary_share=scenario.canary_share, factor=scenario.factor
    )
    values = ({"latency": requests.baseline_p99}, {"latency": requests.canary_p99})
    if scenario.data == "histogram":
        return Feeds(
            {"latency": requests.bucket_batches("baseline", looks)},
            {"latency": requests.bucket_batches("canary", looks)},
            *values,
        )
    return Feeds(
        {"latency": per_look(requests.baseline_p99, looks)},
        {"latency": per_look(requests.canary_p99, looks)},
        *values,
    )


def simulate(
    scenario: Scenario,
    seed: int,
    run_index: int,
    *,
    mann_whitney: bool = False,
    alpha: float = 0.05,
    looks: int = STEPS,
) -> tuple[Outcome, Outcome | None]:
    """Run one seeded canary of ``scenario``; return the sequential and (optionally) the re-run
    Mann-Whitney outcomes, judged on the same data."""
    feeds = make_feeds(scenario, scenario.rng(seed, run_index), looks=looks)
    config = scenario.config()
    sequential = run(config, feeds.baseline_batches, feeds.canary_batches, looks, alpha=alpha)
    if not mann_whitney:
        return sequential, None
    mw = run_mann_whitney(mann_whitney_config(config), feeds.baseline_values, feeds.canary_values, looks)
    return sequential, mw


def simulate_runs(
    scenario: Scenario, seed: int, runs: Sequence[int], mann_whitney: bool = False, alpha: float = 0.05
) -> list[tuple[Outcome, Outcome | None]]:
    """Run :func:`simulate` for each of ``runs`` (a worker task: picklable, module level)."""
    return [simulate(scenario, seed, r, mann_whitney=mann_whitney, alpha=alpha) for r in runs]


# The family of five gauges judged together: mixed persistence, spread, shared load, trend, a level
# step and canary gaps.
FAMILY: tuple[SeriesModel, ...] = (
    SeriesModel(phi=0.8, log_sd=0.1),
    SeriesModel(phi=0.9, log_sd=0.2, shared_sd=0.1),
    SeriesModel(phi=0.95, log_sd=0.1, trend=0.2, level_step=0.3),
    SeriesModel(phi=0.98, log_sd=0.2),
    SeriesModel(phi=0.98, log_sd=0.1, gap_runs=2),
)
# A gauge with everything production adds: shared load, a trend, a level step, canary gaps.
REALISTIC = SeriesModel(phi=0.95, log_sd=0.1, shared_sd=0.1, trend=0.2, level_step=0.3, gap_runs=2)


def _scenarios() -> dict[str, Scenario]:
    out: list[Scenario] = []
    for errors, name in (
        (POISSON, "poisson"),
        (NEGBIN, "negbin"),
        (HICCUPS, "hiccups"),
        (COMBINED, "combined"),
    ):
        for share in (0.05, 0.1, 0.5):
            out.append(
                Scenario(
                    f"{name}-{share:g}",
                    f"errors {errors.label}, {share:.0%} share, A/A",
                    "counts",
                    errors=errors,
                    canary_share=share,
                )
            )
    out += [
        Scenario("poisson-x2-0.1", "errors poisson, 10% share, rate x2", "counts", rate_ratio=2.0),
        Scenario(
            "combined-x2-0.1",
            f"errors {COMBINED.label}, 10% share, rate x2",
            "counts",
            errors=COMBINED,
            rate_ratio=2.0,
        ),
        Scenario(
            "zero-baseline-0.1",
            "errors poisson, 10% share, zero baseline, canary 0.2%",
            "counts",
            baseline_rate=0.0,
            canary_rate=ERROR_RATE,
        ),
        Scenario(
            "zero-baseline-low-0.1",
            "errors poisson, 10% share, zero baseline, canary 0.02%",
            "counts",
            baseline_rate=0.0,
            canary_rate=ERROR_RATE / 10,
        ),
    ]
    for phi in (0.8, 0.95, 0.98):
        for sd in (0.1, 0.2):
            model = SeriesModel(phi=phi, log_sd=sd)
            out.append(
                Scenario(f"rank-ar{phi:g}-sd{sd:g}", f"rank {model.label}, A/A", "series", series=(model,))
            )
            out.append(
                Scenario(
                    f"rank-ar{phi:g}-sd{sd:g}-x1.25",
                    f"rank {model.label}, +25%",
                    "series",
                    series=(model,),
                    factor=1.25,
                )
            )
    out.append(Scenario("rank-realistic", f"rank {REALISTIC.label}, A/A", "series", series=(REALISTIC,)))
    out.append(
        Scenario(
            "rank-realistic-x1.25",
            f"rank {REALISTIC.label}, +25%",
            "series",
            series=(REALISTIC,),
            factor=1.25,
        )
    )
    for shape in (1.5, 3.0):
        model = SeriesModel(phi=0.95, log_sd=0.1, pareto_shape=shape)
        out.append(Scenario(f"pareto-{shape:g}", f"rank {model.label}, A/A", "series", series=(model,)))
        out.append(
            Scenario(
                f"pareto-{shape:g}-x1.25", f"rank {model.label}, +25%", "series", series=(model,), factor=1.25
            )
        )
    out.append(
        Scenario("family-5", "5 rank gauges (mixed persistence), Bonferroni, A/A", "series", series=FAMILY)
    )
    out.append(
        Scenario(
            "family-5-x1.25",
            "5 rank gauges (mixed persistence), Bonferroni, all +25%",
            "series",
            series=FAMILY,
            factor=1.25,
        )
    )
    for data, what in (("p99", "rank on per-minute p99"), ("histogram", "histogram on bucket counts")):
        for share in (0.1, 0.5):
            out.append(
                Scenario(f"{data}-{share:g}", f"{what}, {share:.0%} canary, A/A", data, canary_share=share)
            )
        out.append(Scenario(f"{data}-x1.25", f"{what}, 10% canary, +25%", data, factor=1.25))
        out.append(Scenario(f"{data}-x1.1", f"{what}, 10% canary, +10%", data, factor=1.1))
    return {s.key: s for s in out}


SCENARIOS: dict[str, Scenario] = _scenarios()
