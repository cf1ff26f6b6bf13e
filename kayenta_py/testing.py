"""Contract checks a judge or metrics-source plugin runs on itself (as scikit-learn's ``check_estimator``).

Call them from the plugin's own tests; each returns None when the plugin keeps the contract and
raises :class:`AssertionError` naming the plugin, the case and what went wrong otherwise::

    from kayenta_py.testing import check_judge, check_sequential_judge, check_source

    def test_my_plugins_keep_the_contract() -> None:
        check_judge(MyJudge)  # or check_judge(MyJudge, upper=0.5, direction="increase")
        check_sequential_judge(MySequentialJudge, min_effect=1.3)
        check_source(MySource(url), metric, Scope("v1"), start, end, 60.0)

The data are seeded: the checks are deterministic. Fixed-horizon judges see 60 points a side around
100 (normal, sd 5), so give a judge with absolute bounds parameters that data meet. Direction ``either``
makes both changes regressions (a large increase must be High, a large decrease Low): check a
one-sided judge with ``direction="increase"``. A crash fails a check (the engine reports ``Error``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any, NoReturn, get_args

import numpy as np
import numpy.typing as npt

from kayenta_py import Classification, Direction, KayentaError, MetricConfig, MetricResult, MetricSet, Scope
from kayenta_py.plugin import Assessment, BatchShape, Judge, MetricSetPair, MetricsSource, SequentialJudge

__all__ = ["ALPHA", "check_judge", "check_sequential_judge", "check_source"]

ALPHA = 0.05  # the level sequential judges are checked at: new_state(ALPHA)

_FLAGGED = (Classification.HIGH, Classification.LOW)
_FAILING = (Classification.NODATA_FAIL_METRIC, Classification.ERROR)
_HOSTILE = 'v1"} or vector(1) # \' \\ {x="y"}\n) / on() group_left "\\n'
_BOUNDS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, math.inf)  # histogram batches' bucket bounds (le)
Batch = tuple[Any, Any]


def _label(plugin: Any) -> str:
    cls, name = (plugin if isinstance(plugin, type) else type(plugin)), getattr(plugin, "name", None)
    return f"{cls.__module__}.{cls.__qualname__}" + (f" ({name!r})" if isinstance(name, str) else "")


def _fail(plugin: str, case: str, problem: str) -> NoReturn:
    raise AssertionError(f"{plugin}: {case}: {problem}")


def _calling(plugin: str, case: str, what: str, call: Callable[[], Any]) -> Any:
    """Return ``call()``; a crash is a broken contract, reported as an AssertionError naming the case."""
    try:
        return call()
    except Exception as exc:
        raise AssertionError(f"{plugin}: {case}: {what} raised {type(exc).__name__}: {exc}") from exc


def _built(cls: Any, base: type, params: dict[str, Any], plugin: str) -> Any:
    """Check the class (a subclass of ``base`` with a name), build it with defaults and with ``params``."""
    if not (isinstance(cls, type) and issubclass(cls, base) and isinstance(getattr(cls, "name", 0), str)):
        _fail(plugin, "class", f"not a kayenta_py.plugin.{base.__name__} subclass with a `name` (a str)")
    if not getattr(cls, "name", ""):
        _fail(plugin, "class", "an empty `name` (the registry knows a plugin by it)")
    try:  # without its parameters a judge may refuse, as the config loader expects (a config issue)
        if params:
            cls()
    except Exception as exc:
        if not isinstance(exc, KayentaError | ValueError | TypeError):
            _fail(plugin, "built with defaults", f"raised {type(exc).__name__}: {exc}, not a KayentaError")
    return _calling(plugin, f"built with {params or 'defaults'}", "construction", lambda: cls(**params))


def _judged(judge: Any, pair: MetricSetPair, plugin: str, case: str) -> MetricResult:
    result = _calling(plugin, case, "judge(pair)", lambda: judge.judge(pair))
    named = isinstance(result, MetricResult) and result.name == pair.name
    if not (named and isinstance(result.classification, Classification)):
        _fail(plugin, case, f"judge(pair) returned {result!r}, not a MetricResult of metric {pair.name!r}")
    return result  # type: ignore[no-any-return]


def _no_data_problem(result: MetricResult, variant: dict[str, Any]) -> str | None:
    """What is wrong with a result on a side without data (None: nothing), by Kayenta's rules."""
    got = result.classification
    if variant.get("nan_strategy") == "replace":
        return None  # missing data declared harmless: any classification
    if variant.get("critical"):
        ok, rule = got in (Classification.NODATA, *_FAILING) and result.critical, "a critical one fails"
    elif variant.get("must_have_data"):
        ok, rule = got in _FAILING, "one that must have data is NodataFailMetric (or Error)"
    else:
        ok, rule = got is Classification.NODATA, "it is Nodata"
    return None if ok else f"{got.value} (critical={result.critical}); without data {rule}"


def check_judge(judge_class: type[Judge], **params: Any) -> None:
    """Check a fixed-horizon judge against the contract of :class:`kayenta_py.plugin.Judge`.

    Parameters
    ----------
    judge_class : type
        A :class:`~kayenta_py.plugin.Judge` subclass.
    **params
        Parameters the judge is built with (its own and the common ones, e.g. ``direction``).

    Raises
    ------
    AssertionError
        Naming the plugin, the case and the problem, when the judge breaks the contract.

    Notes
    -----
    Checked: a ``name``; construction with defaults (or KayentaError, ValueError, TypeError if
    parameters are required) and ``params``; ``judge(pair)`` never raises and returns a
    :class:`MetricResult` naming the metric; identical, equal constant and all-zero samples are
    never High or Low; a large increase is High, a large decrease Low where the direction allows,
    and no shift is flagged the other way or against it; judging is deterministic; an empty or
    all-NaN side is ``Nodata``, ``NodataFailMetric`` (or ``Error``) with ``must_have_data``, fails
    the canary (``critical=True``) if ``critical``: never ``Pass`` unless ``nan_strategy='replace'``.
    """
    plugin = _label(judge_class)
    judge = _built(judge_class, Judge, params, plugin)
    direction = Direction(getattr(judge, "direction", Direction.EITHER))
    rng = np.random.default_rng(20261126)
    base, up, down = rng.normal(100.0, 5.0, 60), rng.normal(300.0, 15.0, 60), rng.normal(33.0, 1.7, 60)

    def pair(baseline: npt.ArrayLike, canary: npt.ArrayLike) -> MetricSetPair:
        return MetricSetPair.of("contract-metric", baseline, canary, {"region": "contract"})

    def run(case: str, baseline: npt.ArrayLike, canary: npt.ArrayLike) -> MetricResult:
        return _judged(judge, pair(baseline, canary), plugin, case)

    five, fifty, zeros, high, low = np.full(60, 5.0), np.full(60, 50.0), np.zeros(60), *_FLAGGED
    same: dict[str, npt.NDArray[np.float64]] = {"identical samples": base, "equal constants": five}
    for case, values in (same | {"all zeros": zeros}).items():
        if (got := run(case, values, values.copy()).classification) in _FLAGGED:
            _fail(plugin, case, f"classified {got.value}, not Pass")
    for case, baseline, canary, expected, allowed in (
        ("a large increase", base, up, high, direction.allows_high()),
        ("a large decrease", base, down, low, direction.allows_low()),
        ("constant series, canary higher", five, fifty, high, None),  # None: Pass or expected
        ("constant series, canary lower", fifty, five, low, None),
    ):
        got = run(case, baseline, canary).classification
        if (got in _FLAGGED and (got is not expected or allowed is False)) or (allowed and got != expected):
            _fail(plugin, case, f"classified {got.value} with direction {direction.value}")
    first, again = run("a large increase", base, up), run("a large increase, judged again", base, up)
    if (first.classification, first.reason) != (again.classification, again.reason):
        _fail(plugin, "determinism", "the same pair judged twice gave two results")
    run("infinite values", np.append(base, math.inf), np.append(base, [math.inf, -math.inf]))
    run("an all-infinite canary", base, np.full(5, math.inf))
    nan, none = np.full(60, math.nan), np.empty(0)
    sides = {"an empty baseline": (none, base), "an empty canary": (base, none), "both empty": (none, none)}
    sides |= {"an all-NaN baseline": (nan, base), "an all-NaN canary": (base, nan), "all NaN": (nan, nan)}
    for variant in ({}, {"must_have_data": True}, {"critical": True}, {"nan_strategy": "replace"}):
        built = _built(judge_class, Judge, {**params, **variant}, plugin)
        for side, (b, c) in sides.items():
            case = side + "".join(f", {k}={v}" for k, v in variant.items())
            if problem := _no_data_problem(_judged(built, pair(b, c), plugin, case), variant):
                _fail(plugin, case, f"classified {problem}")


def _values(rng: np.random.Generator, steps: int, effect: float) -> Batch:
    """Latency-like series: a shared trend, autocorrelated (MA(2)) noise per side; the canary x ``effect``."""
    trend = 100.0 * (1.0 + 0.1 * np.sin(rng.uniform(0.0, 6.0) + np.arange(steps) / 7.0))
    noise = [np.convolve(rng.normal(0.0, 0.03, steps + 2), np.ones(3), "valid") for _ in "bc"]
    return trend * np.exp(noise[0]), effect * trend * np.exp(noise[1])


def _counts(rng: np.random.Generator, steps: int, effect: float) -> Batch:
    """(events, traffic) per side: the canary has a quarter of the traffic, its error rate x ``effect``."""
    load = 1.0 + 0.3 * np.sin(rng.uniform(0.0, 6.0) + np.arange(steps) / 5.0)
    traffic_b, traffic_c = rng.poisson(1500.0 * load).astype(float), rng.poisson(500.0 * load).astype(float)
    events_b = rng.poisson(0.004 * traffic_b).astype(float)
    return (events_b, traffic_b), (rng.poisson(0.004 * effect * traffic_c).astype(float), traffic_c)


def _histogram(rng: np.random.Generator, steps: int, effect: float) -> Batch:
    """{bound: cumulative bucket counts} per side, lognormal latencies; the canary's times ``effect``."""
    def side(median: float) -> dict[float, npt.NDArray[np.float64]]:
        cdf = [0.5 * (1.0 + math.erf(math.log(b / median) / (0.6 * math.sqrt(2.0)))) for b in _BOUNDS[:-1]]
        shares = np.diff([0.0, *cdf, 1.0])
        counts = np.cumsum([rng.multinomial(n, shares) for n in rng.poisson(400.0, steps)], axis=1)
        return {bound: counts[:, i].astype(float) for i, bound in enumerate(_BOUNDS)}
    return side(0.1), side(0.1 * effect)


_GENERATORS = {"values": _values, "counts": _counts, "histogram": _histogram}


def _empty_batches(shape: str) -> list[Batch]:
    """The batches the engine hands over for a window without points (histogram: no series, or no points)."""
    none, columns = np.empty(0), {b: np.empty(0) for b in _BOUNDS}
    by_shape: dict[str, list[Batch]] = {"counts": [((none, none), (none, none))]}
    return (by_shape | {"histogram": [({}, {}), (columns, dict(columns))]}).get(shape, [(none, none)])


def _plain(value: Any) -> Any:
    """A comparable, JSON-like copy (tuples as lists, NaN as a string, dataclasses as dicts)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    value = value.item() if isinstance(value, np.generic) else value
    return "nan" if isinstance(value, float) and math.isnan(value) else value


def _json(state: Any, plugin: str, case: str) -> Any:
    if not isinstance(state, dict):
        _fail(plugin, case, f"the state is a {type(state).__name__}, not a dict")
    # Strict JSON (no NaN): the store keeps states in PostgreSQL, whose json type refuses NaN.
    return _calling(plugin, case, "json.dumps(state) (strict)", lambda: json.dumps(state, allow_nan=False))


def _assessment_problem(found: Any) -> str | None:
    if not isinstance(found, Assessment):
        return f"a {type(found).__name__}, not an Assessment"
    ps = (found.p_regression, found.p_safe, found.p_final)
    sane = all(isinstance(p, float | int) and 0.0 <= p <= 1.0 for p in ps) and found.e_regression >= 0.0
    sane &= isinstance(found.observations, int) and found.observations >= 0 and bool(found.effect_measure)
    sane &= found.ci is None or (len(found.ci) == 2 and found.ci[0] <= found.ci[1])
    expected = "p-values in [0, 1], an e-value >= 0, a count, an ordered ci and an effect_measure"
    return None if sane else f"expected {expected}, got {found}"


class _Engine:
    """Calls a sequential judge as :class:`kayenta_py.SequentialAnalysis` does, checking each answer."""

    def __init__(self, judge: SequentialJudge, plugin: str, shape: str) -> None:
        self.judge, self.plugin, self.shape = judge, plugin, shape

    def new(self, case: str) -> dict[str, Any]:
        state: dict[str, Any] = _calling(self.plugin, case, "new_state", lambda: self.judge.new_state(ALPHA))
        _json(state, self.plugin, case + ", new_state")
        return state

    def update(self, state: dict[str, Any], batch: Batch, case: str) -> Any:
        return _calling(self.plugin, case, "update", lambda: self.judge.update(state, *batch))

    def assess(self, state: dict[str, Any], case: str) -> Any:
        found = _calling(self.plugin, case, "assess", lambda: self.judge.assess(state))
        if problem := _assessment_problem(found):
            _fail(self.plugin, case, f"assessment: {problem}")
        return _plain(found)

    def stream(self, seed: int, effect: float, looks: int, case: str, *, resume: bool = False) -> Any:
        """Feed ``looks`` batches; return the first assessment establishing a regression, or the last.

        ``resume``: a twin passed through JSON assesses alike; at look 3 assess reads, empties do nothing."""
        rng, plugin = np.random.default_rng(seed), self.plugin
        state, twin, decided = self.new(case), self.new(case), None
        for look in range(1, looks + 1):
            where, batch = f"{case}, look {look}", _GENERATORS[self.shape](rng, 5, effect)
            state = self.update(state, batch, where)
            before = _json(state, plugin, where) if resume and look == 3 else ""
            found = self.assess(state, where)
            if before and _json(state, plugin, where) != before:
                _fail(plugin, where, "assess changed the state (it must only read it)")
            for empty in _empty_batches(self.shape) if before else []:
                if self.assess(self.update(json.loads(before), empty, where + ", empty"), where) != found:
                    _fail(plugin, where, "an empty batch changed the assessment")
            if resume:
                twin = self.update(json.loads(_json(twin, plugin, where)), batch, where + " (resumed)")
                if self.assess(twin, where) != found:
                    _fail(plugin, where, "a state passed through JSON assesses otherwise")
            decided = decided or (found if found["p_regression"] <= ALPHA else None)
            if decided and not resume:
                break
        return decided or found


def check_sequential_judge(judge_class: type[SequentialJudge], **params: Any) -> None:
    """Check a sequential judge against the contract of :class:`kayenta_py.plugin.SequentialJudge`.

    Parameters
    ----------
    judge_class : type
        A :class:`~kayenta_py.plugin.SequentialJudge` subclass.
    **params
        Parameters the judge is built with.

    Raises
    ------
    AssertionError
        Naming the plugin, the case and the problem, when the judge breaks the contract.

    Notes
    -----
    Called as :class:`kayenta_py.SequentialAnalysis` calls it (``new_state(ALPHA)``; ``update(state,
    baseline, canary)`` and ``assess(state)`` every look), 5 steps a look shaped as the engine shapes
    ``batch_shape`` (``values``: 1-D arrays, ``counts``: ``(events, traffic)``, ``histogram``: ``{le:
    cumulative counts}``). Checked: ``name``, ``sequential``, a known ``batch_shape``; construction as
    in :func:`check_judge`; states are dicts of strict JSON (PostgreSQL refuses NaN); nothing raises;
    sane assessments (p-values in [0, 1], e-value >= 0, count, ordered interval); empty batches leave
    a new state undecided without observations and later change nothing; ``assess`` only reads; a
    state passed through JSON every look assesses alike; at most 2 of 5 seeded A/A streams of 8 looks
    fail; a large regression in the judge's direction (x3; /3 for ``decrease``) is established within
    30 looks in 3 seeded streams (failing and establishing count the anytime test and the final look).
    """
    plugin = _label(judge_class)
    judge = _built(judge_class, SequentialJudge, params, plugin)
    if getattr(judge_class, "sequential", False) is not True:
        _fail(plugin, "class", "`sequential` is not True; the engine will not run it")
    if (shape := getattr(judge_class, "batch_shape", "values")) not in get_args(BatchShape):
        _fail(plugin, "class", f"batch_shape {shape!r} is none of the engine's {get_args(BatchShape)}")
    engine = _Engine(judge, plugin, shape)
    for i, empty in enumerate(_empty_batches(shape), start=1):
        case = f"an empty {shape} batch on a new state (form {i})"
        found = engine.assess(engine.update(engine.new(case), empty, case), case)
        if found["observations"] or min(found[p] for p in ("p_regression", "p_safe", "p_final")) <= ALPHA:
            _fail(plugin, case, f"decided without data: {found}")
    effect = 1.0 / 3.0 if Direction(judge.direction) is Direction.DECREASE else 3.0
    engine.stream(7099, effect, 4, f"a regression (x{effect:.3g}) resumed from JSON", resume=True)
    for seed in range(7100, 7103):
        case = f"a large regression (x{effect:.3g}), seed {seed}"
        if min((found := engine.stream(seed, effect, 30, case))["p_regression"], found["p_final"]) > ALPHA:
            _fail(plugin, case, f"not established in 30 looks; the last assessment: {found}")
    streams = [engine.stream(7200 + run, 1.0, 8, f"A/A stream {run}") for run in range(5)]
    if (fails := sum(min(s["p_regression"], s["p_final"]) <= ALPHA for s in streams)) > 2:
        _fail(plugin, "A/A streams", f"{fails} of 5 failed at alpha {ALPHA:g} in 8 looks; at most 2 may")


def _source_problem(sets: Any, metric: MetricConfig, start: float | None, end: float | None) -> str | None:
    """What is wrong with what ``fetch`` returned (None: nothing)."""
    if not isinstance(sets, list):
        return f"fetch returned a {type(sets).__name__}, not a list of MetricSet"
    low, high = -math.inf if start is None else start, math.inf if end is None else end
    for i, found in enumerate(sets):
        if not isinstance(found, MetricSet):
            return f"item {i} is a {type(found).__name__}, not a MetricSet"
        if found.name != metric.name:
            return f"series {i} is named {found.name!r}, not the metric's {metric.name!r}"
        values = np.asarray(found.values)
        if values.dtype != np.float64 or values.ndim != 1:  # inf is a value (an overflowing quantile)
            return f"series {i}: values not 1-D float64 ({values.dtype}, {values.shape})"
        if (stamps := found.timestamps) is None:
            continue
        if not np.isfinite(stamps).all() or (stamps.size > 1 and not (np.diff(stamps) > 0).all()):
            return f"series {i}: timestamps are not finite and strictly increasing"
        if (outside := stamps[(stamps < low) | (stamps > high)]).size:
            return f"series {i}: {outside.size} timestamp(s) outside [{start}, {end}], e.g. {outside[0]:g}"
    return None


def check_source(
    source: MetricsSource, metric: MetricConfig, scope: Scope, start: float | None, end: float | None,
    step: float | None,
) -> None:
    """Check a metrics source against the contract of :class:`kayenta_py.plugin.MetricsSource`.

    Parameters
    ----------
    source : MetricsSource
        The source, configured (e.g. pointed at a test server holding data for ``scope``).
    metric : MetricConfig
        A metric it can fetch for ``scope`` (``load_config(...).metric(name)``), which has data.
    scope : Scope
    start, end, step : float or None
        The window (epoch seconds) and resolution, passed to ``fetch`` as the engine does.

    Raises
    ------
    AssertionError
        Naming the source, the case and the problem, when the source breaks the contract.

    Notes
    -----
    Checked: ``isinstance(source, MetricsSource)``; ``fetch`` returns a list of :class:`MetricSet`
    named after the metric, 1-D float64 values (NaN a gap; inf allowed, judges drop it),
    timestamps (when given) finite, increasing and in [start, end]; fetching twice gives the
    same; the security rule (a scope never changes a query): a scope value, location or
    parameter with quotes, braces, backslashes and newlines raises a
    :class:`~kayenta_py.KayentaError` or returns data keeping these rules.
    """
    plugin = _label(source)
    if not isinstance(source, MetricsSource):
        _fail(plugin, "protocol", "not a kayenta_py.plugin.MetricsSource (no fetch method)")

    def fetch(at: Scope, case: str, *, refusable: bool = False) -> Any:
        try:
            sets = source.fetch(metric, at, start, end, step)
        except Exception as exc:
            if refusable and isinstance(exc, KayentaError):
                return []  # refused, as it should be when it cannot escape the scope
            hint = " (expected data or a KayentaError)" * refusable
            raise AssertionError(f"{plugin}: {case}: fetch raised {type(exc).__name__}: {exc}{hint}") from exc
        if problem := _source_problem(sets, metric, start, end):
            _fail(plugin, case, problem)
        return _plain([(s.tags, s.values, s.timestamps) for s in sets])

    if fetch(scope, f"fetch {metric.name!r} for scope {scope.scope!r}") != fetch(scope, "fetching again"):
        _fail(plugin, "fetching again", "the same fetch returned other data")
    fetch(Scope(_HOSTILE, scope.location, scope.params), "a hostile scope value", refusable=True)
    hostile = Scope(scope.scope, _HOSTILE, {**scope.params, "x": _HOSTILE})
    fetch(hostile, "a hostile location and parameter", refusable=True)
