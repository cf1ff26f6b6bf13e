"""Our Mann-Whitney CI and estimate against real R, on about 200 random data sets.

Every data set is sent to ONE ``Rscript`` process, which runs
``wilcox.test(x, y, conf.int=TRUE, exact=FALSE, correct=TRUE, conf.level=...)``
(``x`` the canary, ``y`` the baseline) and prints ``$conf.int`` and
``$estimate`` with 17 significant digits. Ours must agree to 1e-4 absolute,
or 1e-4 relative when the value exceeds 1 in magnitude. The judge itself uses
the scale-free root tolerance: its CI ends agree with R's in the same way, and
so does its estimate, except that where the statistic is exactly 0 on an
interval (a plateau) it may be another point of R's plateau.

The data go to R as C99 hexadecimal floats (``float.hex``), not decimal:
R's own decimal parser (``R_strtod``) is not correctly rounded and reads
about one 17-digit number in ten thousand one ulp off, which would make R
test slightly different data. Hex floats are read exactly.

Without ``Rscript`` the module is skipped, except on CI (``CI`` set), where it
fails: the CI test command must install R (Debian/Ubuntu: ``r-base-core``).
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from judges import MannWhitneyJudge, RankSumStatistic, wilcoxon_interval
from kayenta_py import Classification, FloatArray, MetricSetPair

pytestmark = pytest.mark.r_reference

SEED = 20240611
N_CASES = 200
CONFIDENCES = (0.9, 0.95, 0.98, 0.99)
ABS_TOL = 1e-4
REL_TOL = 1e-4
R_TIMEOUT_SECONDS = 300

# Each line of the data file: confidence;x1,x2,...;y1,y2,...  (hex floats).
R_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
lines <- readLines(args[1], warn = FALSE)
parse <- function(s) as.numeric(strsplit(s, ",", fixed = TRUE)[[1]])
for (line in lines) {
  parts <- strsplit(line, ";", fixed = TRUE)[[1]]
  conf <- as.numeric(parts[1])
  x <- parse(parts[2])
  y <- parse(parts[3])
  out <- tryCatch({
    r <- suppressWarnings(wilcox.test(x, y, conf.int = TRUE, exact = FALSE,
                                      correct = TRUE, conf.level = conf))
    sprintf("%.17g %.17g %.17g", r$conf.int[1], r$conf.int[2], r$estimate)
  }, error = function(e) paste("ERROR", gsub("[\r\n]", " ", conditionMessage(e))))
  cat(out, "\n", sep = "")
}
"""


@dataclass(frozen=True)
class Case:
    """One data set: canary ``x``, baseline ``y`` and the confidence level."""

    index: int
    family: str
    shift: str
    x: FloatArray
    y: FloatArray
    confidence: float

    @property
    def label(self) -> str:
        """Describe the case for failure messages."""
        return (
            f"case {self.index} ({self.family}, {self.shift}, nx={self.x.size}, "
            f"ny={self.y.size}, conf={self.confidence})"
        )


@dataclass(frozen=True)
class Triple:
    """CI ends and location estimate."""

    lower: float
    upper: float
    estimate: float


# A family draws n values with a location shift of ``delta`` (in units of the
# family's scale; 0 gives the baseline distribution).
Family = Callable[[np.random.Generator, int, float], FloatArray]


def _lognormal(rng: np.random.Generator, n: int, delta: float) -> FloatArray:
    return rng.lognormal(mean=4.0 + delta, sigma=0.8, size=n)


def _exponential(rng: np.random.Generator, n: int, delta: float) -> FloatArray:
    return rng.exponential(scale=2.0 * math.exp(delta), size=n)


def _pareto(rng: np.random.Generator, n: int, delta: float) -> FloatArray:
    # Classical Pareto with shape 1.5 and minimum 0.05 (heavy right tail).
    return (rng.pareto(1.5, size=n) + 1.0) * 0.05 * math.exp(delta)


def _normal_negative(rng: np.random.Generator, n: int, delta: float) -> FloatArray:
    return rng.normal(loc=-250.0 + 40.0 * delta, scale=40.0, size=n)


def _normal_mixed_sign(rng: np.random.Generator, n: int, delta: float) -> FloatArray:
    return rng.normal(loc=0.3 * delta, scale=1.0, size=n)


def _rounded_0(rng: np.random.Generator, n: int, delta: float) -> FloatArray:
    return np.round(rng.lognormal(mean=1.5 + delta, sigma=0.5, size=n), 0)


def _rounded_1(rng: np.random.Generator, n: int, delta: float) -> FloatArray:
    return np.round(rng.exponential(scale=1.5 * math.exp(delta), size=n), 1)


def _rounded_2_negative(rng: np.random.Generator, n: int, delta: float) -> FloatArray:
    return np.round(rng.normal(loc=-0.5 + 0.2 * delta, scale=0.3, size=n), 2)


def _poisson(rng: np.random.Generator, n: int, delta: float) -> FloatArray:
    lam = 2.0 * math.exp(0.7 * delta)
    return rng.poisson(lam=lam, size=n).astype(np.float64)


def _poisson_rare(rng: np.random.Generator, n: int, delta: float) -> FloatArray:
    # Mostly zeros and ones: error counts.
    lam = 0.4 * math.exp(delta)
    return rng.poisson(lam=lam, size=n).astype(np.float64)


FAMILIES: dict[str, Family] = {
    "lognormal": _lognormal,
    "exponential": _exponential,
    "pareto": _pareto,
    "normal-negative": _normal_negative,
    "normal-mixed-sign": _normal_mixed_sign,
    "lognormal-rounded-0dp": _rounded_0,
    "exponential-rounded-1dp": _rounded_1,
    "normal-negative-rounded-2dp": _rounded_2_negative,
    "poisson-small": _poisson,
    "poisson-rare": _poisson_rare,
}
SHIFTS = ("same", "up", "down")

# Size pairs every run covers: the extremes 3 and 500, equal and unequal.
FIXED_SIZES = (
    (3, 3),
    (3, 500),
    (500, 3),
    (500, 500),
    (3, 4),
    (4, 3),
    (3, 50),
    (50, 3),
    (500, 499),
    (10, 500),
    (500, 10),
    (5, 5),
    (7, 300),
    (300, 7),
    (100, 100),
    (250, 500),
    (500, 250),
    (3, 10),
    (20, 3),
    (500, 100),
)


def _random_size(rng: np.random.Generator) -> int:
    """Log-uniform size in [3, 500]."""
    return int(np.clip(round(math.exp(rng.uniform(math.log(3), math.log(500)))), 3, 500))


def _degenerate(x: FloatArray, y: FloatArray) -> bool:
    """Whether R cannot compute the CI: one value overall, or both samples constant."""
    both_constant = np.unique(x).size == 1 and np.unique(y).size == 1
    return bool(both_constant or np.unique(np.concatenate([x, y])).size == 1)


def build_cases(seed: int = SEED, count: int = N_CASES) -> list[Case]:
    """Return ``count`` seeded, non-degenerate data set pairs covering every family and shift."""
    rng = np.random.default_rng(seed)
    names = list(FAMILIES)
    cases = []
    for index in range(count):
        family = names[index % len(names)]
        shift = SHIFTS[(index // len(names)) % len(SHIFTS)]
        confidence = CONFIDENCES[index % len(CONFIDENCES)]
        if index < len(FIXED_SIZES):
            nx, ny = FIXED_SIZES[index]
        else:
            nx, ny = _random_size(rng), _random_size(rng)
        magnitude = float(rng.uniform(0.1, 1.0))
        delta = {"same": 0.0, "up": magnitude, "down": -magnitude}[shift]
        draw = FAMILIES[family]
        for _attempt in range(100):
            x, y = draw(rng, nx, delta), draw(rng, ny, 0.0)
            if not _degenerate(x, y):
                break
        else:
            raise AssertionError(f"could not draw a non-degenerate {family} case of sizes {nx}, {ny}")
        cases.append(Case(index, family, shift, x, y, confidence))
    return cases


CASES = build_cases()


def _hex(values: FloatArray) -> str:
    return ",".join(float(v).hex() for v in values)


def run_r(cases: list[Case], rscript: str) -> list[Triple | str]:
    """Run every case through one Rscript process; an R error comes back as its message."""
    with tempfile.TemporaryDirectory(prefix="kayenta-r-reference-") as tmp:
        script, data = Path(tmp) / "wilcox.R", Path(tmp) / "cases.txt"
        script.write_text(R_SCRIPT, encoding="utf-8")
        data.write_text(
            "".join(f"{c.confidence.hex()};{_hex(c.x)};{_hex(c.y)}\n" for c in cases),
            encoding="utf-8",
        )
        completed = subprocess.run(
            [rscript, "--vanilla", str(script), str(data)],
            capture_output=True,
            text=True,
            timeout=R_TIMEOUT_SECONDS,
            check=False,
        )
    if completed.returncode != 0:
        pytest.fail(f"Rscript exited with {completed.returncode}:\n{completed.stderr}")
    lines = completed.stdout.splitlines()
    if len(lines) != len(cases):
        pytest.fail(f"Rscript printed {len(lines)} lines for {len(cases)} cases:\n{completed.stderr}")
    results: list[Triple | str] = []
    for line in lines:
        if line.startswith("ERROR"):
            results.append(line)
        else:
            lower, upper, estimate = (float(v) for v in line.split())
            results.append(Triple(lower, upper, estimate))
    return results


def _rscript() -> str:
    path = shutil.which("Rscript")
    if path is not None:
        return path
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(
            "Rscript not found, but CI is set: the CI test command must install R "
            "(apt-get install r-base-core) so the R reference tests run",
            pytrace=False,
        )
    pytest.skip("Rscript not found: install R (r-base-core) to compare with R's wilcox.test")


@functools.cache
def _r_results_for(rscript: str) -> list[Triple | str]:
    return run_r(CASES, rscript)


def r_results() -> list[Triple | str]:
    """R's CI and estimate for every case, from one Rscript run shared by the tests.

    Called from the test bodies (not a fixture) so that a missing Rscript on CI
    is reported as a test failure, not a setup error.
    """
    return _r_results_for(_rscript())


def agrees(ours: float, theirs: float) -> bool:
    """Within 1e-4 absolute, or 1e-4 relative when |R's value| > 1."""
    if math.isnan(ours) or math.isnan(theirs):
        return False
    difference = abs(ours - theirs)
    return difference <= ABS_TOL or (abs(theirs) > 1 and difference <= REL_TOL * abs(theirs))


def mismatch(case: Case, ours: Triple, theirs: Triple | str) -> str | None:
    """Describe how ``ours`` differs from R's result, or None when they agree."""
    if isinstance(theirs, str):
        return f"{case.label}: R failed ({theirs}); ours {ours}"
    fields = ("lower", "upper", "estimate")
    bad = [f for f in fields if not agrees(getattr(ours, f), getattr(theirs, f))]
    if not bad:
        return None
    detail = "; ".join(
        f"{f}: ours {getattr(ours, f)!r} vs R {getattr(theirs, f)!r} "
        f"(diff {getattr(ours, f) - getattr(theirs, f):.3g})"
        for f in bad
    )
    return f"{case.label}: {detail}"


def test_cases_cover_the_brief() -> None:
    sizes = {n for c in CASES for n in (c.x.size, c.y.size)}
    assert min(sizes) == 3
    assert max(sizes) == 500
    assert any(c.x.size != c.y.size for c in CASES)
    assert {c.confidence for c in CASES} == set(CONFIDENCES)
    assert {c.family for c in CASES} == set(FAMILIES)
    assert {(c.family, c.shift) for c in CASES} == {(f, s) for f in FAMILIES for s in SHIFTS}
    assert any(min(c.x.min(), c.y.min()) < 0 for c in CASES)
    assert not any(_degenerate(c.x, c.y) for c in CASES)


def test_wilcoxon_interval_matches_r() -> None:
    expected = r_results()
    problems = []
    for case, theirs in zip(CASES, expected, strict=True):
        got = wilcoxon_interval(case.x, case.y, case.confidence)
        ours = Triple(got.lower, got.upper, got.estimate)
        problem = mismatch(case, ours, theirs)
        if problem is not None:
            problems.append(problem)
    assert not problems, f"{len(problems)} of {len(CASES)} cases differ from R's wilcox.test:\n" + "\n".join(
        problems
    )


# A handful of cases for the full judge: extremes, ties, shifts both ways, negatives.
JUDGE_CASE_INDICES = (0, 1, 3, 6, 8, 13, 17, 27, 52, 125)


def on_r_plateau(case: Case, ours: float, theirs: Triple | str) -> bool:
    """Whether ``ours`` and R's estimate are both exact roots of the uncorrected statistic.

    The statistic is a step function; where it is exactly 0 on an interval, every
    point of it is R's estimate, and R returns the first one its iteration reaches,
    which depends on its absolute tolerance and on how the bracket ends round. The
    judge's scale-free rule (``root_tolerance="relative"``) may reach another point
    of the same interval.
    """
    if isinstance(theirs, str):
        return False
    statistic = RankSumStatistic(case.x, case.y, correct=False)
    return statistic(ours) == 0.0 and statistic(theirs.estimate) == 0.0


def test_mann_whitney_judge_matches_r() -> None:
    # The judge uses the scale-free root tolerance: its CI ends agree with R's to
    # 1e-4, and its estimate too, or it lies on the same zero plateau as R's.
    expected = r_results()
    problems = []
    for index in JUDGE_CASE_INDICES:
        case = CASES[index]
        judge = MannWhitneyJudge(confidence=case.confidence)
        result = judge.judge(MetricSetPair.of(f"case{index}", case.y, case.x))
        assert result.classification is not Classification.ERROR, result.reason
        assert result.ci is not None, f"{case.label}: no CI ({result.reason})"
        assert result.estimate is not None, f"{case.label}: no estimate ({result.reason})"
        theirs = expected[index]
        estimate = result.estimate
        if on_r_plateau(case, estimate, theirs):
            assert isinstance(theirs, Triple)
            estimate = theirs.estimate
        ours = Triple(result.ci[0], result.ci[1], estimate)
        problem = mismatch(case, ours, theirs)
        if problem is not None:
            problems.append(problem)
    assert not problems, "the judge's CI differs from R's:\n" + "\n".join(problems)
