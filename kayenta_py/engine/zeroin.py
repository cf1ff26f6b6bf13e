"""Brent's root finder ("zeroin"), following the published algorithm step by step.

References
----------
R. P. Brent, *Algorithms for Minimization without Derivatives*, Prentice-Hall
(1973), chapter 4, procedure ``zero``; the same iteration R's ``uniroot``
runs (``R_zeroin2``), which is what makes our Mann-Whitney confidence
intervals land on the same point of a plateau as R's and Kayenta's.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

_EPS = sys.float_info.epsilon


@dataclass(frozen=True)
class RootResult:
    """A root found by :func:`zeroin`, with the iterations used and the final bracket width."""

    root: float
    iterations: int
    bracket_width: float
    converged: bool


def zeroin(
    f: Callable[[float], float],
    lower: float,
    upper: float,
    *,
    f_lower: float | None = None,
    f_upper: float | None = None,
    tol: float = 1e-4,
    max_iter: int = 1000,
) -> RootResult:
    """Find a root of ``f`` in [lower, upper] by Brent's method.

    Parameters
    ----------
    f : callable
        The function; ``f(lower)`` and ``f(upper)`` must not have the same sign.
    lower, upper : float
        The bracket.
    f_lower, f_upper : float, optional
        Known values of ``f`` at the bracket ends (as R's ``uniroot`` accepts).
    tol : float
        Absolute tolerance, in the unit of the bracket; the step is never smaller
        than ``2 eps |b| + tol / 2``. A constant (R's ``uniroot`` and
        ``wilcox.test`` use 1e-4) makes the result depend on the unit of ``x``;
        for a scale-free root, pass a tolerance proportional to the bracket, or
        solve on ``[0, 1]`` in the bracket's own coordinate, as the Mann-Whitney
        judge does.
    max_iter : int
        Iteration limit; the best point so far is returned with ``converged=False``.

    Notes
    -----
    Each iteration keeps three points: ``b`` the best estimate, ``a`` the
    previous one and ``c`` with f(c) of opposite sign to f(b). It tries inverse
    quadratic interpolation (secant when only two points are distinct) and
    falls back to bisection when the interpolated step is not safely inside
    the bracket or the previous step did not shrink enough. Every step is a
    difference of points times a ratio of function values, so the iteration is
    affine-equivariant: mapping the variable ``t`` to ``a + s t`` (tolerance ``s tol``) maps
    every iterate the same way, up to rounding and the ``2 eps |b|`` term.
    Test: every Mann-Whitney conformance case; ``tests/test_unit_invariance.py``.
    """
    a, b = float(lower), float(upper)
    fa = f(a) if f_lower is None else float(f_lower)
    fb = f(b) if f_upper is None else float(f_upper)
    if fa == 0.0:
        return RootResult(a, 0, 0.0, True)
    if fb == 0.0:
        return RootResult(b, 0, 0.0, True)
    if (fa > 0.0) == (fb > 0.0):
        raise ValueError(f"f({a}) = {fa} and f({b}) = {fb} have the same sign: no bracketed root")
    c, fc = a, fa
    for iteration in range(1, max_iter + 2):
        previous_step = b - a
        if abs(fc) < abs(fb):
            # Make b the best approximation so far.
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2.0 * _EPS * abs(b) + tol / 2.0
        new_step = (c - b) / 2.0
        if abs(new_step) <= tol_act or fb == 0.0:
            return RootResult(b, iteration - 1, abs(c - b), True)
        if abs(previous_step) >= tol_act and abs(fa) > abs(fb):
            # Interpolate: secant when a == c, else inverse quadratic through a, b, c.
            cb = c - b
            if a == c:
                t1 = fb / fa
                p = cb * t1
                q = 1.0 - t1
            else:
                q = fa / fc
                t1 = fb / fc
                t2 = fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0.0:
                q = -q
            else:
                p = -p
            # Accept the interpolation only if it falls well inside the bracket
            # and shrinks faster than the step before last.
            if p < 0.75 * cb * q - abs(tol_act * q) / 2.0 and p < abs(previous_step * q / 2.0):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0.0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0.0 and fc > 0.0) or (fb < 0.0 and fc < 0.0):
            c, fc = a, fa
    return RootResult(b, max_iter, abs(c - b), False)
