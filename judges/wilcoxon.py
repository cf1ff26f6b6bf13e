"""The Wilcoxon rank-sum statistic and its Hodges-Lehmann interval (R's wilcox.test with conf.int = TRUE)."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.special import ndtri

from kayenta_py import (
    zeroin,
)

R_ROOT_TOLERANCE = 1e-4
"""R's ``wilcox.test`` root tolerance (``tol.root``): absolute, in the data's unit."""


RELATIVE_ROOT_TOLERANCE = 1e-8
"""The judge's root tolerance, as a fraction of the bracket's width ``range(x) + range(y)``."""


PAIRWISE_LIMIT = 4096
"""Up to this many pairs (``nx ny``) a statistic with a tie tolerance bisects the sorted pairwise
differences (about 1 microsecond an evaluation) instead of searching ``y`` for every ``x``."""


TIE_TOLERANCE = 1e-12
"""Scale-free rule: ``x - mu`` ties ``y`` within this fraction of ``max(|x|, |y|)``."""


RootTolerance = Literal["relative", "r"]
"""How the roots are located: ``relative`` to the data's spread (scale-free) or as R does."""



@dataclass(frozen=True)
class WilcoxonInterval:
    """Confidence interval and Hodges-Lehmann-type estimate for canary minus baseline."""

    lower: float
    upper: float
    estimate: float


class RankSumStatistic:
    """The standardized rank-sum statistic of R's ``wilcox.test`` as a function of the shift.

    ``W(mu)`` ranks ``x - mu`` within the pooled sample ``{x - mu} U {y}``:
    ``dz = (sum of x ranks) - nx(nx+1)/2 - nx ny/2`` and
    ``W = (dz - correction) / sigma`` with the tie-corrected
    ``sigma = sqrt(nx ny / 12 ((nx + ny + 1) - sum(t^3 - t) / ((nx + ny)(nx + ny - 1))))``.

    Parameters
    ----------
    x, y : array_like
        The two samples (canary, baseline).
    correct : bool
        Apply the continuity correction ``0.5 sign(dz)``.
    tie_tolerance : float
        0 (default): ``x - mu`` and ``y`` tie when they are equal in floating
        point, as in R. Positive: they tie when they are within this distance
        (in the data's unit), and ties within ``x`` are those of the data; the
        scale-free interval uses ``1e-12 max(|x|, |y|)``, far above rounding and
        far below any real gap, so that a shift that hits a tie exactly in one
        unit also hits it after the data are multiplied by 10^k.

    Notes
    -----
    Both samples are sorted once; each evaluation then costs O(nx log ny)
    by binary search instead of a full re-ranking, with exactly the same value:
    the x ranks sum to ``nx(nx+1)/2`` among themselves, so ``dz`` is the count
    of ``y`` below each ``x - mu`` plus half the ties. ``x - mu`` is computed
    in floating point as R does, so values that become equal after the shift
    count as ties, as they do in R. With a tie tolerance two shortcuts give the same value: when
    no ``x - mu`` ties a ``y`` the pooled ties are the data's own (sigma precomputed), and up to
    :data:`PAIRWISE_LIMIT` pairs the counts come from bisecting the sorted ``x_i - y_j``.
    Test: ``tests/test_wilcoxon_fast_paths.py`` (the shortcuts); ``mann_whitney_internals``
    conformance cases; ``tests/test_r_reference.py``; ``tests/test_unit_invariance.py``
    (``tie_tolerance``).
    """

    def __init__(
        self, x: npt.ArrayLike, y: npt.ArrayLike, *, correct: bool = True, tie_tolerance: float = 0.0
    ) -> None:
        self.x = np.sort(np.asarray(x, dtype=np.float64))
        self.y = np.sort(np.asarray(y, dtype=np.float64))
        self.nx, self.ny = int(self.x.size), int(self.y.size)
        if self.nx == 0 or self.ny == 0:
            raise ValueError("both samples need at least one value")
        if not tie_tolerance >= 0.0:
            raise ValueError(f"tie_tolerance must be >= 0, not {tie_tolerance!r}")
        self.correct = correct
        self.tie_tolerance = float(tie_tolerance)
        _, y_counts = np.unique(self.y, return_counts=True)
        self._y_ties = int(np.sum(y_counts**3 - y_counts))
        # Runs of equal x in the data (used when ties are found with a tolerance).
        self._x_starts = np.flatnonzero(np.r_[True, self.x[1:] != self.x[:-1]])
        x_counts = np.diff(np.r_[self._x_starts, self.nx])
        # With a tolerance and no x - mu tying a y, the pooled ties are the data's own: sigma is fixed.
        self._untied_sigma = self._sigma(self._y_ties + int(np.sum(x_counts**3 - x_counts)))
        # Small samples with a tolerance: the sorted differences x_i - y_j count W's pairs by bisection.
        self._differences: list[float] | None = None
        if self.tie_tolerance > 0.0 and self.nx * self.ny <= PAIRWISE_LIMIT:
            self._differences = np.sort((self.x[:, None] - self.y[None, :]).ravel()).tolist()
        self.evaluations = 0

    def _sigma(self, ties: int) -> float:
        nx, ny = self.nx, self.ny
        return math.sqrt((nx * ny / 12) * ((nx + ny + 1) - ties / ((nx + ny) * (nx + ny - 1))))

    def __call__(self, mu: float) -> float:
        self.evaluations += 1
        nx, ny = self.nx, self.ny
        differences = self._differences
        if differences is not None:
            # y_j < x_i - mu - tol is x_i - y_j > mu + tol (equal up to rounding at the band's edges).
            pairs = nx * ny
            below_count = pairs - bisect_right(differences, mu + self.tie_tolerance)
            if below_count == pairs - bisect_left(differences, mu - self.tie_tolerance):
                return self._standardize(float(below_count) - pairs / 2, self._untied_sigma)
        shifted = self.x - mu
        if self.tie_tolerance > 0.0:
            below = np.searchsorted(self.y, shifted - self.tie_tolerance, side="left")
            up_to = np.searchsorted(self.y, shifted + self.tie_tolerance, side="right")
            below_sum, up_to_sum = int(below.sum()), int(up_to.sum())
            if below_sum == up_to_sum:  # no x - mu ties a y (the usual case): the same value, sooner
                return self._standardize(float(below_sum) - nx * ny / 2, self._untied_sigma)
            equal = up_to - below
            starts = self._x_starts
        else:
            below = np.searchsorted(self.y, shifted, side="left")
            # Ties with y are rare on continuous data: search the right end only where y[below] ties.
            tied = self.y[np.minimum(below, ny - 1)] == shifted
            equal = np.zeros(nx, dtype=np.intp)
            if tied.any():
                equal[tied] = np.searchsorted(self.y, shifted[tied], side="right") - below[tied]
            # Runs of equal shifted x (values equal after the shift tie, as in R).
            starts = np.flatnonzero(np.r_[True, shifted[1:] != shifted[:-1]])
        dz = float(below.sum()) + 0.5 * float(equal.sum()) - nx * ny / 2
        # Tie groups of the pooled sample: runs of equal x, joined by the y they tie with.
        x_counts = np.diff(np.r_[starts, nx])
        joint = x_counts + equal[starts]
        y_alone = equal[starts]
        ties = self._y_ties + int(np.sum(joint**3 - joint - (y_alone**3 - y_alone)))
        return self._standardize(dz, self._sigma(ties))

    def _standardize(self, dz: float, sigma: float) -> float:
        correction = 0.5 * ((dz > 0) - (dz < 0)) if self.correct else 0.0
        return (dz - correction) / sigma


def wilcoxon_interval(
    canary: npt.ArrayLike,
    baseline: npt.ArrayLike,
    confidence: float = 0.98,
    *,
    estimate: Literal["r", "kayenta"] = "r",
    root_tolerance: RootTolerance = "r",
) -> WilcoxonInterval:
    """Return the CI and location estimate of R's two-sample ``wilcox.test``.

    Equivalent to R's ``wilcox.test(canary, baseline, conf.int=TRUE,
    exact=FALSE, correct=TRUE, conf.level=confidence)``: each CI end is the
    root in mu of ``W(mu) -/+ z`` found by Brent's zeroin on
    ``[min(x) - max(y), max(x) - min(y)]``, or that bracket end when there is
    no sign change; the estimate is the root of ``W`` without continuity
    correction, as R computes it (``estimate="r"``). Kayenta's Scala port keeps
    the continuity correction for the estimate (``estimate="kayenta"``); the
    two agree on smooth data and can differ by a plateau's width on heavily
    tied small samples.

    Parameters
    ----------
    canary, baseline : array_like
        The samples ``x`` and ``y``; the interval is for ``x - y``.
    confidence : float
        Confidence level of the interval.
    estimate : {"r", "kayenta"}
        Root of the uncorrected statistic (R) or of the corrected one (Kayenta).
    root_tolerance : {"r", "relative"}
        ``"r"`` (default): R's rule, zeroin in mu with the absolute tolerance
        ``tol.root = 1e-4``. It reproduces R and Kayenta to the last digit,
        including the point of a plateau zeroin lands on, but depends on the
        data's unit: on data of magnitude 1e-4 or less (error ratios) the
        bracket is narrower than the tolerance and zeroin stops at once,
        wherever it is (Kayenta's own ``problem_case`` vector shows it).

        ``"relative"`` (scale-free; the ``mann-whitney`` judge's rule): zeroin
        runs in the bracket's own coordinate ``t = (mu - mu_min) / (mu_max -
        mu_min)`` on ``[0, 1]`` with tolerance :data:`RELATIVE_ROOT_TOLERANCE`
        (1e-8), that is, in mu, ``1e-8 * (range(x) + range(y))``, and ``x - mu``
        ties ``y`` within ``1e-12 max(|x|, |y|)``. Multiplying both samples by
        ``c`` leaves every step of the iteration bit for bit the same (the
        bracket is exactly [0, 1] and the statistic takes the same values), so
        the CI and estimate are multiplied by ``c`` up to rounding (a relative
        error of about 1e-15), the same point of a plateau included. R parity
        holds where R's absolute tolerance 1e-4 is negligible against the data:
        both CI ends are then within 1e-4 of R's (absolute, or relative above
        1), and so is the estimate, except where the uncorrected statistic is
        exactly 0 on an interval: every point of it is a root, and R returns
        the first its iteration reaches, which depends on its tolerance and on
        whether ``max(x) - (max(x) - min(y))`` rounds back to ``min(y)``; ours
        may be another point of the same interval (checked against R by
        ``tests/test_r_reference.py``).

    Notes
    -----
    The root finder is Brent's procedure ``zero`` (:func:`kayenta_py.zeroin`,
    the iteration of R's ``R_zeroin2``). Its steps are affine-equivariant (each
    is a difference of points times a ratio of function values), which is why
    running it in ``t`` instead of mu changes nothing but rounding.

    References
    ----------
    R Core Team, ``stats::wilcox.test`` (R 4.x); Bauer, "Constructing
    confidence sets using rank statistics", JASA 67 (1972); R. P. Brent,
    *Algorithms for Minimization without Derivatives* (1973), chapter 4.
    Test: ``mann_whitney`` conformance cases and ``tests/test_r_reference.py``
    (``"r"``); ``tests/test_unit_invariance.py`` and the judge's comparison
    with R in ``tests/test_r_reference.py`` (``"relative"``).
    """
    x = np.asarray(canary, dtype=np.float64)
    y = np.asarray(baseline, dtype=np.float64)
    if root_tolerance == "r":
        tie_tolerance = 0.0
    elif root_tolerance == "relative":
        magnitude = max(float(np.max(np.abs(x), initial=0.0)), float(np.max(np.abs(y), initial=0.0)))
        tie_tolerance = TIE_TOLERANCE * magnitude
    else:
        raise ValueError(f"root_tolerance must be 'relative' or 'r', not {root_tolerance!r}")
    corrected = RankSumStatistic(x, y, correct=True, tie_tolerance=tie_tolerance)
    mu_min = float(corrected.x[0] - corrected.y[-1])
    mu_max = float(corrected.x[-1] - corrected.y[0])
    if root_tolerance == "r":
        # zeroin in mu itself: origin 0, unit 1 (t * 1.0 + 0.0 is t exactly).
        origin, unit, t_min, t_max, tol = 0.0, 1.0, mu_min, mu_max, R_ROOT_TOLERANCE
    else:
        origin, unit, t_min, t_max, tol = mu_min, mu_max - mu_min, 0.0, 1.0, RELATIVE_ROOT_TOLERANCE

    def at(t: float) -> float:
        return origin + t * unit

    w_min, w_max = corrected(mu_min), corrected(mu_max)
    z = float(ndtri(1.0 - (1.0 - confidence) / 2.0))

    def root(zq: float) -> float:
        f_lower = w_min - zq
        if f_lower <= 0:
            return mu_min
        f_upper = w_max - zq
        if f_upper >= 0:
            return mu_max
        found = zeroin(
            lambda t: corrected(at(t)) - zq,
            t_min,
            t_max,
            f_lower=f_lower,
            f_upper=f_upper,
            tol=tol,
        )
        return at(found.root)

    lower, upper = root(z), root(-z)
    statistic = (
        corrected
        if estimate == "kayenta"
        else RankSumStatistic(x, y, correct=False, tie_tolerance=tie_tolerance)
    )
    location = at(zeroin(lambda t: statistic(at(t)), t_min, t_max, tol=tol).root)
    return WilcoxonInterval(lower, upper, location)


