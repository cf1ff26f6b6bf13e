"""Adversarial, realistic metric generators for wrong-pass tests, written apart from the judges.

Every generator takes a seeded :class:`numpy.random.Generator` and models production traffic as it
is, not as a textbook would like it:

* **Traffic** (:func:`traffic_profile`, :func:`split_traffic`): requests per step with a slow
  diurnal swing, lognormal step-to-step jitter and a binomial split between the arms, whose shares
  may be far from equal (a canary usually takes 5-10%).
* **Error counts** (:func:`error_events`, :func:`count_pair`): a gamma-Poisson mixture per step,
  i.e. negative-binomial minutes (variance ``mu + mu**2 / dispersion``), plus *pod hiccups*: with a
  small probability per step one arm enters a burst whose length is geometric and whose error rate
  is several times the normal one.
* **Persistent series** (:func:`ar1`, :func:`latency_pair`): log-latency is a shared load component
  (AR(1), phi close to 1, the same for both arms: they serve the same traffic) plus an own AR(1)
  per arm, an optional linear trend and occasional spikes (GC pauses, cache misses).
* **Per-step percentiles** (:func:`quantile_latency_pair`): the p99 of each step is computed from
  the requests actually drawn for that arm in that step, so the smaller arm's percentile is noisier
  and biased, as a real per-step p99 of a 10% canary is.
* **Saturation** (:func:`cpu_pair`) and **negative-valued** metrics (:func:`negative_pair`).
* **Whole scenarios** (:func:`service_metrics`, :func:`zero_traffic_canary`) and writers of wide
  and long CSV files (:func:`write_wide_csv`, :func:`write_long_csv`).

Nothing here imports or imitates a judge: the generators know only what the traffic does.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

__all__ = [
    "START_EPOCH",
    "CountArm",
    "CountPair",
    "FloatArray",
    "SeriesPair",
    "ServiceMetrics",
    "ar1",
    "batches",
    "count_pair",
    "cpu_pair",
    "error_events",
    "hiccup_multiplier",
    "latency_pair",
    "minute_timestamps",
    "negative_pair",
    "quantile_latency_pair",
    "service_metrics",
    "split_traffic",
    "to_json_values",
    "traffic_profile",
    "write_long_csv",
    "write_wide_csv",
    "zero_traffic_canary",
]

START_EPOCH = 1_795_683_600.0  # 2026-11-26T09:00:00Z, the bundled example's start


# ---------------------------------------------------------------- containers


@dataclass(frozen=True)
class CountArm:
    """Error events and requests per step of one arm."""

    events: FloatArray
    traffic: FloatArray

    def ratio(self) -> FloatArray:
        """Return the error ratio per step (NaN where the arm had no traffic)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(
                self.traffic > 0, self.events / np.where(self.traffic > 0, self.traffic, 1.0), np.nan
            )

    def batch(self, start: int, stop: int) -> tuple[FloatArray, FloatArray]:
        """Return ``(events, traffic)`` of steps ``start`` to ``stop`` (a sequential-count batch)."""
        return self.events[start:stop].copy(), self.traffic[start:stop].copy()


@dataclass(frozen=True)
class CountPair:
    """Baseline and canary error counts over the same steps."""

    baseline: CountArm
    canary: CountArm

    @property
    def steps(self) -> int:
        """Return the number of steps."""
        return int(self.baseline.events.size)


@dataclass(frozen=True)
class SeriesPair:
    """Baseline and canary values of one metric, aligned by timestamp."""

    baseline: FloatArray
    canary: FloatArray

    def scaled(self, factor: float) -> SeriesPair:
        """Return both sides multiplied by ``factor`` (a change of unit)."""
        return SeriesPair(self.baseline * factor, self.canary * factor)


@dataclass(frozen=True)
class ServiceMetrics:
    """A whole canary: metric name to values, per side, aligned on ``timestamps``."""

    baseline: dict[str, FloatArray]
    canary: dict[str, FloatArray]
    timestamps: FloatArray
    counts: CountPair | None = None
    notes: dict[str, float] = field(default_factory=dict)

    def scaled(self, factor: float) -> ServiceMetrics:
        """Return every metric of both sides multiplied by ``factor``."""
        return ServiceMetrics(
            {k: v * factor for k, v in self.baseline.items()},
            {k: v * factor for k, v in self.canary.items()},
            self.timestamps,
            self.counts,
            dict(self.notes),
        )


# ---------------------------------------------------------------- building blocks


def minute_timestamps(n: int, *, step: float = 60.0, start: float = START_EPOCH) -> FloatArray:
    """Return ``n`` epoch timestamps ``step`` seconds apart."""
    return start + step * np.arange(n, dtype=np.float64)


def ar1(rng: np.random.Generator, n: int, *, phi: float, sigma: float) -> FloatArray:
    """Return a stationary AR(1) series: ``x[t] = phi * x[t-1] + N(0, sigma)``.

    The first value is drawn from the stationary law ``N(0, sigma / sqrt(1 - phi**2))``, so even a
    short series is as persistent as a long one (no burn-in artefact). ``phi`` near 1 (0.95-0.99)
    is the realistic, adversarial case: a short stretch looks far less variable than it is.
    """
    if not 0.0 <= phi < 1.0:
        raise ValueError(f"phi must be in [0, 1), got {phi}")
    x = np.empty(n, dtype=np.float64)
    if n == 0:
        return x
    x[0] = rng.normal(0.0, sigma / math.sqrt(1.0 - phi * phi))
    shocks = rng.normal(0.0, sigma, n)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + shocks[t]
    return x


def traffic_profile(
    rng: np.random.Generator,
    n: int,
    *,
    rpm: float = 2000.0,
    diurnal_amplitude: float = 0.3,
    period_steps: float = 1440.0,
    jitter_cv: float = 0.08,
) -> FloatArray:
    """Return total requests per step: a diurnal sine (random phase) times lognormal jitter, Poisson.

    ``rpm`` is the mean number of requests per step over both arms.
    """
    phase = rng.uniform(0.0, 2.0 * math.pi)
    t = np.arange(n, dtype=np.float64)
    level = rpm * (1.0 + diurnal_amplitude * np.sin(2.0 * math.pi * t / period_steps + phase))
    jitter = rng.lognormal(-0.5 * jitter_cv**2, jitter_cv, n)
    return rng.poisson(np.maximum(level * jitter, 0.0)).astype(np.float64)


def split_traffic(
    rng: np.random.Generator, total: FloatArray, *, canary_share: float, share_jitter: float = 0.0
) -> tuple[FloatArray, FloatArray]:
    """Split requests between baseline and canary, binomially; return ``(baseline, canary)``.

    ``share_jitter`` (a standard deviation on the logit scale) lets the share wander from step to
    step, as a load balancer's does.
    """
    logit = math.log(canary_share / (1.0 - canary_share))
    shares = 1.0 / (1.0 + np.exp(-(logit + rng.normal(0.0, share_jitter, total.size))))
    canary = rng.binomial(total.astype(np.int64), shares).astype(np.float64)
    return total - canary, canary


def hiccup_multiplier(
    rng: np.random.Generator,
    n: int,
    *,
    probability: float,
    factor: tuple[float, float] = (5.0, 20.0),
    mean_length: float = 2.0,
) -> FloatArray:
    """Return a per-step error-rate multiplier: 1, except during pod hiccups.

    A hiccup starts at a step with ``probability``, lasts a geometric number of steps with mean
    ``mean_length`` and multiplies the error rate by a factor drawn uniformly from ``factor``.
    """
    mult = np.ones(n, dtype=np.float64)
    t = 0
    while t < n:
        if probability > 0.0 and rng.random() < probability:
            length = int(rng.geometric(1.0 / mean_length))
            mult[t : t + length] = rng.uniform(*factor)
            t += length
        else:
            t += 1
    return mult


def error_events(
    rng: np.random.Generator,
    traffic: FloatArray,
    *,
    rate: float,
    dispersion: float | None = None,
    hiccup_probability: float = 0.0,
    hiccup_factor: tuple[float, float] = (5.0, 20.0),
) -> FloatArray:
    """Return error events per step for ``traffic`` requests at error ``rate``.

    Per step the rate is multiplied by a Gamma(dispersion, 1/dispersion) draw (mean 1), so the
    counts are negative-binomial with variance ``mu + mu**2 / dispersion`` (Poisson when
    ``dispersion`` is None), and by :func:`hiccup_multiplier`. Events never exceed requests.
    """
    n = traffic.size
    mult = np.ones(n) if dispersion is None else rng.gamma(dispersion, 1.0 / dispersion, n)
    mult = mult * hiccup_multiplier(rng, n, probability=hiccup_probability, factor=hiccup_factor)
    events = rng.poisson(traffic * rate * mult).astype(np.float64)
    return np.minimum(events, traffic)


def count_pair(
    rng: np.random.Generator,
    n: int = 60,
    *,
    rpm: float = 2000.0,
    canary_share: float = 0.5,
    share_jitter: float = 0.0,
    baseline_rate: float = 1e-3,
    rate_ratio: float = 1.0,
    dispersion: float | None = None,
    hiccup_probability: float = 0.0,
    diurnal_amplitude: float = 0.3,
) -> CountPair:
    """Return baseline and canary error counts over ``n`` steps sharing one traffic profile.

    The canary's error rate is ``rate_ratio`` times the baseline's. With the defaults (2000 requests
    a minute split evenly, rate 1e-3) the baseline sees about 60 errors in an hour.
    """
    total = traffic_profile(rng, n, rpm=rpm, diurnal_amplitude=diurnal_amplitude)
    base_traffic, canary_traffic = split_traffic(
        rng, total, canary_share=canary_share, share_jitter=share_jitter
    )
    base = error_events(
        rng, base_traffic, rate=baseline_rate, dispersion=dispersion, hiccup_probability=hiccup_probability
    )
    canary = error_events(
        rng,
        canary_traffic,
        rate=baseline_rate * rate_ratio,
        dispersion=dispersion,
        hiccup_probability=hiccup_probability,
    )
    return CountPair(CountArm(base, base_traffic), CountArm(canary, canary_traffic))


def latency_pair(
    rng: np.random.Generator,
    n: int = 60,
    *,
    base: float = 0.2,
    factor: float = 1.0,
    phi: float = 0.95,
    sigma: float = 0.02,
    shared_phi: float = 0.99,
    shared_sigma: float = 0.03,
    iid_sigma: float = 0.03,
    trend_per_step: float = 0.0,
    spike_probability: float = 0.02,
    spike_factor: tuple[float, float] = (1.5, 3.0),
) -> SeriesPair:
    """Return a persistent latency series per arm (seconds), the canary ``factor`` times slower.

    ``log(latency) = log(base) + shared + own + noise + trend * t`` where ``shared`` is one AR(1)
    common to both arms (``shared_phi``, ``shared_sigma``: the load they both serve; stationary sd
    0.21 by default), ``own`` an AR(1) per arm (``phi``, ``sigma``: the pods' own drift, sd 0.064
    by default, so the designed ``factor`` is what the data show), ``noise`` independent per step
    (``iid_sigma``), and a step is a spike (times ``spike_factor``) with ``spike_probability``,
    independently per arm.
    """
    shared = ar1(rng, n, phi=shared_phi, sigma=shared_sigma)
    trend = trend_per_step * np.arange(n, dtype=np.float64)

    def arm(scale: float) -> FloatArray:
        own = ar1(rng, n, phi=phi, sigma=sigma) + rng.normal(0.0, iid_sigma, n)
        spikes = np.where(rng.random(n) < spike_probability, rng.uniform(*spike_factor, n), 1.0)
        values: FloatArray = base * scale * np.exp(shared + own + trend) * spikes
        return values

    baseline = arm(1.0)
    return SeriesPair(baseline, arm(factor))


def quantile_latency_pair(
    rng: np.random.Generator,
    n: int = 60,
    *,
    rpm: float = 2000.0,
    canary_share: float = 0.5,
    quantile: float = 0.99,
    median: float = 0.05,
    request_sigma: float = 0.6,
    factor: float = 1.0,
    phi: float = 0.95,
    sigma: float = 0.03,
    max_requests: int = 3000,
) -> SeriesPair:
    """Return per-step request-latency percentiles computed from the requests each arm served.

    Each step, each arm serves its binomial share of :func:`traffic_profile` requests with
    lognormal latencies (``median`` times a persistent AR(1) load level, ``request_sigma`` on the
    log scale; the canary's ``factor`` times slower); the step's value is the empirical
    ``quantile`` of those requests (at most ``max_requests`` drawn per step, for speed; a step
    with no request is NaN). A small arm's percentile is noisy and biased, as in production.
    """
    total = traffic_profile(rng, n, rpm=rpm)
    base_traffic, canary_traffic = split_traffic(rng, total, canary_share=canary_share)
    load = ar1(rng, n, phi=phi, sigma=sigma)

    def arm(traffic: FloatArray, scale: float) -> FloatArray:
        out = np.full(n, np.nan)
        for t in range(n):
            count = min(int(traffic[t]), max_requests)
            if count > 0:
                draws = rng.lognormal(math.log(median * scale) + load[t], request_sigma, count)
                out[t] = float(np.quantile(draws, quantile))
        return out

    return SeriesPair(arm(base_traffic, 1.0), arm(canary_traffic, factor))


def cpu_pair(
    rng: np.random.Generator,
    n: int = 60,
    *,
    level: float = 0.42,
    factor: float = 1.0,
    phi: float = 0.9,
    sigma: float = 0.01,
) -> SeriesPair:
    """Return CPU utilisation (0-1) per arm: ``level`` plus AR(1) noise, the canary times ``factor``."""
    shared = ar1(rng, n, phi=0.98, sigma=sigma / 2)
    base = np.clip(level + shared + ar1(rng, n, phi=phi, sigma=sigma), 0.0, 1.0)
    canary = np.clip(level * factor + shared + ar1(rng, n, phi=phi, sigma=sigma), 0.0, 1.0)
    return SeriesPair(base, canary)


def negative_pair(
    rng: np.random.Generator,
    n: int = 60,
    *,
    low: float = -10.0,
    high: float = -5.0,
    shift: float = 2.5,
    phi: float = 0.8,
    sigma: float = 0.25,
) -> SeriesPair:
    """Return a negative-valued metric (e.g. a temperature offset or a dB level in ``[low, high]``).

    The baseline wanders (AR(1)) around the lower third of the range, the canary ``shift`` higher;
    both are clipped to ``[low, high]``, so every value is negative and the canary clearly higher.
    """
    centre = low + (high - low) * 0.3
    base = np.clip(centre + ar1(rng, n, phi=phi, sigma=sigma), low, high)
    canary = np.clip(centre + shift + ar1(rng, n, phi=phi, sigma=sigma), low, high)
    return SeriesPair(base, canary)


# ---------------------------------------------------------------- scenarios


def service_metrics(
    rng: np.random.Generator,
    n: int = 60,
    *,
    error_ratio_factor: float = 1.0,
    latency_factor: float = 1.0,
    cpu_factor: float = 1.0,
    canary_share: float = 0.5,
    dispersion: float | None = 5.0,
    hiccup_probability: float = 0.02,
    rpm: float = 20000.0,
    baseline_rate: float = 2e-3,
) -> ServiceMetrics:
    """Return a checkout-like canary: ``error-ratio``, ``p99-latency``, ``cpu-utilization``.

    The error ratio is events / requests per step from :func:`count_pair` (negative-binomial,
    hiccups), latency from :func:`latency_pair` (persistent, spiky), CPU from :func:`cpu_pair`;
    the ``*_factor`` arguments make the canary worse (or better) by that ratio.
    """
    counts = count_pair(
        rng,
        n,
        rpm=rpm,
        canary_share=canary_share,
        baseline_rate=baseline_rate,
        rate_ratio=error_ratio_factor,
        dispersion=dispersion,
        hiccup_probability=hiccup_probability,
    )
    latency = latency_pair(rng, n, factor=latency_factor)
    cpu = cpu_pair(rng, n, factor=cpu_factor)
    return ServiceMetrics(
        baseline={
            "error-ratio": counts.baseline.ratio(),
            "p99-latency": latency.baseline,
            "cpu-utilization": cpu.baseline,
        },
        canary={
            "error-ratio": counts.canary.ratio(),
            "p99-latency": latency.canary,
            "cpu-utilization": cpu.canary,
        },
        timestamps=minute_timestamps(n),
        counts=counts,
        notes={
            "error_ratio_factor": error_ratio_factor,
            "latency_factor": latency_factor,
            "cpu_factor": cpu_factor,
        },
    )


def zero_traffic_canary(
    rng: np.random.Generator, n: int = 60, *, errors_as_nan: bool = False, idle_cpu: float = 0.01
) -> ServiceMetrics:
    """Return a healthy baseline beside a canary that received no traffic at all.

    The canary's error counts are all 0 (its error ratio 0, or NaN as 0/0 with ``errors_as_nan``),
    its latency all NaN (no request to time), its CPU near ``idle_cpu`` (an idle pod).
    """
    healthy = service_metrics(rng, n)
    canary = {
        "error-ratio": np.full(n, np.nan) if errors_as_nan else np.zeros(n),
        "p99-latency": np.full(n, np.nan),
        "cpu-utilization": np.clip(idle_cpu + rng.normal(0.0, idle_cpu / 5, n), 0.0, 1.0),
    }
    return ServiceMetrics(healthy.baseline, canary, healthy.timestamps, notes={"idle_cpu": idle_cpu})


# ---------------------------------------------------------------- output


def to_json_values(values: FloatArray) -> list[float | None]:
    """Return values as JSON numbers, a missing (non-finite) value as null."""
    return [float(v) if math.isfinite(float(v)) else None for v in values]


def _cell(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_wide_csv(path: Path, timestamps: FloatArray, columns: Mapping[str, FloatArray]) -> Path:
    """Write a wide CSV: ``timestamp`` (ISO 8601, UTC) and one column per metric; NaN as empty."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", *columns])
        for i, ts in enumerate(timestamps):
            writer.writerow([_iso(float(ts)), *(_cell(float(col[i])) for col in columns.values())])
    return path


def write_long_csv(
    path: Path,
    timestamps: FloatArray,
    series: Sequence[tuple[str, Mapping[str, str], FloatArray]],
) -> Path:
    """Write a long CSV: ``timestamp,metric,value`` and one column per tag; one row per point.

    ``series`` lists ``(metric, tags, values)``; every series must use the same tag names.
    """
    tag_names: list[str] = sorted({name for _, tags, _ in series for name in tags})
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "metric", "value", *tag_names])
        for metric, tags, values in series:
            for i, ts in enumerate(timestamps):
                writer.writerow(
                    [_iso(float(ts)), metric, _cell(float(values[i])), *(tags[t] for t in tag_names)]
                )
    return path


def batches(n: int, size: int) -> Iterator[tuple[int, int]]:
    """Yield ``(start, stop)`` of consecutive batches of ``size`` steps covering ``n`` steps."""
    for start in range(0, n, size):
        yield start, min(start + size, n)
