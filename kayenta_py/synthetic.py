"""Synthetic canary traffic: one model of a service's per-step metrics, deterministic from a seed.

The demo metrics source, the backtest's labelled canaries, the bundled example CSVs and notebook
03 all draw their data from :class:`TrafficModel`, so there is one traffic model to read, test
and change. Per step ``t`` of one arm (the baseline or the canary):

* **load** ``L_t = 1 + a sin(phase + 2 pi t / period)``: the traffic cycle (:func:`traffic_cycle`),
  the same for both arms;
* **requests** ``N_t ~ Poisson(R L_t)``;
* **errors**: the step's error rate is ``r_t = E m_err b_t G_t`` with ``G_t ~ Gamma(k, 1/k)`` (mean
  1, variance ``1/k``), and ``errors_t ~ Poisson(N_t r_t)``: a gamma-Poisson mixture (a negative
  binomial, Greenwood & Yule 1920), overdispersed: variance about ``mu + mu^2/k`` for a mean ``mu``;
* **latency**: a request's latency is lognormal; the step's median is
  ``p50_t = P50 m_p50 L_t b_t s_t exp(e50_t)`` and its 99th percentile
  ``p99_t = P99 m_p99 L_t b_t s_t exp(e99_t)`` (never below the median), so the log-sd of the
  step's latencies is ``ln(p99_t / p50_t) / z_0.99`` (:meth:`Traffic.latency_histogram` draws its
  buckets);
* **saturation** ``min(1, C m_sat L_t exp(es_t))`` (CPU utilization);
* **orders** ``~ Poisson(O m_orders L_t)`` (a business metric).

``e50``, ``e99`` and ``es`` are the arm's own AR(1) noise (:func:`ar1`, coefficient ``phi``);
``b_t = exp(shared_t)`` is a burst both arms share (the same users at the same moment: slower and
more errors), ``s_t`` a slowdown of one arm (cold caches). The ``m`` multipliers are the
:class:`Effects`, applied to the canary. Every draw comes from the generator passed in, in a fixed
order, so a seed gives the same traffic again. Tests: ``tests/test_synthetic.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from kayenta_py.model.errors import FieldError
from kayenta_py.model.types import FloatArray

Z99 = 2.3263478740408408  # the standard normal distribution's 0.99 quantile
_erf = np.vectorize(math.erf, otypes=[np.float64])


@dataclass(frozen=True)
class Effects:
    """Multipliers a canary's regression (or a host's bias) applies to the traffic model.

    Parameters
    ----------
    errors : float
        Multiplier of the error rate (4.0: four times the errors).
    p50, p99 : float
        Multipliers of the median and the 99th-percentile latency.
    saturation : float
        Multiplier of the saturation (CPU utilization), still capped at 1.
    orders : float
        Multiplier of the business metric (0.9: 10% of the orders lost).
    """

    errors: float = 1.0
    p50: float = 1.0
    p99: float = 1.0
    saturation: float = 1.0
    orders: float = 1.0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise FieldError(f"effects.{field.name}", f"{value!r} is not a positive multiplier")

    def __mul__(self, other: Effects) -> Effects:
        """Return both effects at once (a regression on a host with its own bias)."""
        return Effects(**{f.name: getattr(self, f.name) * getattr(other, f.name) for f in fields(self)})


NO_EFFECT = Effects()


@dataclass(frozen=True)
class Traffic:
    """One arm's generated metrics, one value per step (arrays of equal length)."""

    requests: FloatArray
    errors: FloatArray
    p50: FloatArray
    p99: FloatArray
    saturation: FloatArray
    orders: FloatArray

    @property
    def error_ratio(self) -> FloatArray:
        """Errors per request of each step (0 for a step without requests)."""
        out = np.zeros_like(self.errors)
        return np.divide(self.errors, self.requests, out=out, where=self.requests > 0)

    @property
    def latency_sd(self) -> FloatArray:
        """Log-sd of each step's lognormal latency: ``ln(p99 / p50) / z_0.99``."""
        return np.log(self.p99 / self.p50) / Z99

    def latency_histogram(self, rng: np.random.Generator, bounds: npt.ArrayLike) -> FloatArray:
        """Draw each step's requests into latency buckets, cumulative as Prometheus' ``le`` buckets.

        Each of the step's ``requests`` has a lognormal latency with median ``p50`` and 99th
        percentile ``p99``; the counts per bucket are multinomial.

        Parameters
        ----------
        rng : numpy.random.Generator
            The source of the draws.
        bounds : array_like
            Increasing, positive upper bounds (seconds) of the finite buckets.

        Returns
        -------
        numpy.ndarray
            Shape ``(steps, len(bounds) + 1)``: the requests at or below each bound, the last
            column (``+Inf``) being every request of the step.
        """
        edges = np.asarray(bounds, dtype=np.float64)
        if edges.ndim != 1 or not edges.size or not np.all(edges > 0) or not np.all(np.diff(edges) > 0):
            raise FieldError("bounds", "the bucket bounds must be positive and increasing")
        sigma = np.maximum(self.latency_sd, 1e-9)
        z = (np.log(edges)[None, :] - np.log(self.p50)[:, None]) / sigma[:, None]
        below = 0.5 * (1.0 + _erf(z / math.sqrt(2.0)))
        steps = below.shape[0]
        probabilities = np.diff(np.hstack([np.zeros((steps, 1)), below, np.ones((steps, 1))]), axis=1)
        counts = rng.multinomial(self.requests.astype(np.int64), np.clip(probabilities, 0.0, 1.0))
        return np.cumsum(counts, axis=1).astype(np.float64)


def traffic_cycle(
    timestamps: npt.ArrayLike, *, period: float = 86_400.0, amplitude: float = 0.15, phase: float = 0.0
) -> FloatArray:
    """Return the load of each timestamp: ``1 + amplitude * sin(phase + 2 pi t / period)``.

    A daily cycle by default (``period`` in the timestamps' unit, seconds); both arms of a canary
    see the same load.
    """
    if not period > 0:
        raise FieldError("period", f"{period!r} is not positive")
    if not 0 <= amplitude < 1:
        raise FieldError("amplitude", f"{amplitude!r} is not in [0, 1)")
    t = np.asarray(timestamps, dtype=np.float64)
    return 1.0 + amplitude * np.sin(phase + 2.0 * math.pi * t / period)


def ar1(rng: np.random.Generator, n: int, sd: float, phi: float = 0.0) -> FloatArray:
    """Return ``n`` steps of stationary AR(1) noise with marginal standard deviation ``sd``.

    ``x_0 ~ N(0, sd^2)`` and ``x_t = phi x_(t-1) + N(0, sd^2 (1 - phi^2))``; ``phi = 0`` gives
    independent steps. It always draws ``n`` standard normals, whatever ``sd`` and ``phi``.
    """
    if not 0 <= phi < 1:
        raise FieldError("phi", f"{phi!r} is not in [0, 1)")
    z = rng.standard_normal(n)
    if phi == 0:
        return sd * z
    out = np.empty(n)
    innovation = sd * math.sqrt(1.0 - phi * phi)
    if n:
        out[0] = sd * z[0]
    for i in range(1, n):
        out[i] = phi * out[i - 1] + innovation * z[i]
    return out


@dataclass(frozen=True)
class TrafficModel:
    """The parameters of one service's synthetic traffic (see the module for the model).

    Parameters
    ----------
    requests : float
        Mean requests per step at load 1 (``R``).
    error_rate : float
        Mean errors per request (``E``).
    error_shape : float
        Shape ``k`` of the gamma mixing the error rate: smaller is more overdispersed.
    p50, p99 : float
        Median and 99th-percentile latency (seconds) at load 1.
    p50_sd, p99_sd : float
        Marginal sd of each step's log-noise on the median and the 99th percentile.
    saturation, saturation_sd : float
        Saturation at load 1 (``C``, a fraction) and the sd of its log-noise.
    orders : float
        Mean orders per step at load 1 (``O``).
    phi : float
        AR(1) coefficient of every noise from one step to the next (0: independent steps).
    """

    requests: float = 6000.0
    error_rate: float = 0.002
    error_shape: float = 8.0
    p50: float = 0.045
    p99: float = 0.180
    p50_sd: float = 0.05
    p99_sd: float = 0.08
    saturation: float = 0.42
    saturation_sd: float = 0.04
    orders: float = 120.0
    phi: float = 0.0

    def __post_init__(self) -> None:
        positive = ("requests", "error_shape", "p50", "p99", "saturation")
        for name in positive:
            if not getattr(self, name) > 0:
                raise FieldError(name, f"{getattr(self, name)!r} is not positive")
        for name in ("p50_sd", "p99_sd", "saturation_sd", "orders"):
            if not getattr(self, name) >= 0:
                raise FieldError(name, f"{getattr(self, name)!r} is negative")
        if not 0 <= self.error_rate <= 1:
            raise FieldError("error_rate", f"{self.error_rate!r} is not in [0, 1]")
        if self.p99 < self.p50:
            raise FieldError("p99", f"{self.p99!r} is below p50 ({self.p50!r})")
        if not 0 <= self.phi < 1:
            raise FieldError("phi", f"{self.phi!r} is not in [0, 1)")

    def simulate(
        self,
        rng: np.random.Generator,
        load: npt.ArrayLike,
        effects: Effects = NO_EFFECT,
        *,
        shared: npt.ArrayLike | None = None,
        slowdown: npt.ArrayLike | None = None,
    ) -> Traffic:
        """Draw one arm's traffic for each step of ``load``.

        Parameters
        ----------
        rng : numpy.random.Generator
            The source of every draw, in a fixed order: the latency and saturation noise, the
            error-rate gamma, the requests, the orders, then the errors (the only draw an error
            multiplier changes, last so that two arms drawing from equal generators share the rest).
        load : array_like
            The load of each step (:func:`traffic_cycle`), non-negative.
        effects : Effects
            Multipliers of this arm (a canary's regression).
        shared : array_like, optional
            Log-burst of each step both arms share (``b_t = exp(shared)``; :func:`ar1`).
        slowdown : array_like, optional
            Latency multiplier of each step of this arm only (cold caches).

        Returns
        -------
        Traffic
            The arm's requests, errors, latency percentiles, saturation and orders per step.
        """
        level = np.asarray(load, dtype=np.float64)
        if level.ndim != 1 or not np.all(np.isfinite(level)) or np.any(level < 0):
            raise FieldError("load", "the load must be one finite, non-negative value per step")
        n = level.size
        burst = np.exp(self._per_step("shared", shared, n, 0.0))
        slow = self._per_step("slowdown", slowdown, n, 1.0)
        e50 = ar1(rng, n, self.p50_sd, self.phi)
        e99 = ar1(rng, n, self.p99_sd, self.phi)
        es = ar1(rng, n, self.saturation_sd, self.phi)
        mixing = rng.gamma(self.error_shape, 1.0 / self.error_shape, n)
        requests = rng.poisson(self.requests * level).astype(np.float64)
        orders = rng.poisson(self.orders * effects.orders * level).astype(np.float64)
        rate = np.minimum(1.0, self.error_rate * effects.errors * burst * mixing)
        errors = np.minimum(rng.poisson(requests * rate), requests).astype(np.float64)
        latency = level * burst * slow
        p50 = self.p50 * effects.p50 * latency * np.exp(e50)
        p99 = np.maximum(self.p99 * effects.p99 * latency * np.exp(e99), p50)
        saturation = np.minimum(1.0, self.saturation * effects.saturation * level * np.exp(es))
        return Traffic(requests, errors, p50, p99, saturation, orders)

    def pair(
        self,
        rng: np.random.Generator,
        load: npt.ArrayLike,
        effects: Effects = NO_EFFECT,
        *,
        shared: npt.ArrayLike | None = None,
        slowdown: npt.ArrayLike | None = None,
    ) -> tuple[Traffic, Traffic]:
        """Draw a baseline and then a canary over the same load and shared bursts.

        ``effects`` and ``slowdown`` apply to the canary only; each arm has its own noise.
        """
        baseline = self.simulate(rng, load, NO_EFFECT, shared=shared)
        return baseline, self.simulate(rng, load, effects, shared=shared, slowdown=slowdown)

    @staticmethod
    def _per_step(name: str, values: npt.ArrayLike | None, n: int, default: float) -> FloatArray:
        if values is None:
            return np.full(n, default)
        out = np.asarray(values, dtype=np.float64)
        if out.shape != (n,) or not np.all(np.isfinite(out)):
            raise FieldError(name, f"needs one finite value per step ({n})")
        return out
