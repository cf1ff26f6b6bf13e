"""Sequential judges of event counts: ``sequential-count`` and ``sequential-histogram``.

Both run the anytime-valid rate-ratio test of Lindon & Malek (NeurIPS 2022); the state is a
small JSON document (log-likelihoods over a fixed grid) updated batch by batch, so live
analyses persist and resume it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from judges.sequential.common import final_share_p
from judges.sequential.rate_ratio import RateRatioTest
from kayenta_py import KayentaError
from kayenta_py.plugin import Assessment, SequentialJudge, clip_p

FloatArray = npt.NDArray[np.float64]

# ---------------------------------------------------------------- rate ratio of counts


class CountParams(BaseModel):
    """Parameters of ``sequential-count`` (and, with its buckets, ``sequential-histogram``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_effect: float = Field(1.2, ge=1, description="smallest relevant ratio of event rates")
    concentration: float = Field(100.0, gt=0, description="k of the Beta prior on the canary's event share")
    min_events: float = Field(
        20,
        ge=0,
        description="effective events the smaller arm would have at the pooled rate; fewer: inconclusive",
    )
    final_share: float = Field(
        0.8, ge=0, lt=1, description="share of the metric's alpha kept for one fixed-horizon look at the end"
    )


class _RateRatioJudge(SequentialJudge):
    """What the two rate-ratio judges share: the test's parameters and the final-look share."""

    min_effect: float
    concentration: float
    min_events: float
    final_share: float

    def _setup(self) -> None:
        self._test = RateRatioTest(self.min_effect, self.concentration)


class SequentialCountJudge(_RateRatioJudge):
    """Error counts: anytime-valid test and confidence sequence for the error-rate ratio.

    A batch per side is ``(events, traffic)``: arrays aligned by time step (errors and
    requests per step). Fails a canary with errors where the baseline has none. Steps
    where either side has no traffic carry no information and are skipped, so a canary
    that never got traffic has no data.

    ``final_share`` of the metric's alpha is kept for one fixed-horizon look when the
    lifetime ends (``RateRatioTest.final_p``); the anytime test gets the rest. At the
    end the metric is inconclusive when the smaller arm (by traffic) would have had
    fewer than ``min_events`` events at the pooled event rate (all events times its
    traffic share: a 10% canary of 130 events expects 13), or when the estimated ratio
    lies past ``min_effect`` without the regression being established: thin evidence
    is never a pass.
    Test: ``tests/test_sequential.py``, ``tests/test_wrong_pass.py``.
    """

    name = "sequential-count"
    batch_shape = "counts"
    params_model = CountParams

    def new_state(self, alpha: float) -> dict[str, Any]:
        """Return the empty state."""
        return {"alpha": alpha, "test": self._test.new_state(), "points": 0}

    def update(self, state: dict[str, Any], baseline: Any, canary: Any) -> dict[str, Any]:
        """Add a batch of ``(events, traffic)`` per side."""
        eb, tb = _events_traffic(baseline, "baseline")
        ec, tc = _events_traffic(canary, "canary")
        if eb.size != ec.size:
            raise KayentaError(f"baseline has {eb.size} steps and canary {ec.size}: align them by time")
        state["test"] = self._test.update(state["test"], eb, tb, ec, tc)
        state["points"] += int(eb.size)
        return state

    def assess(self, state: Mapping[str, Any]) -> Assessment:
        """Evidence on the error-rate ratio."""
        test = state["test"]
        p_reg, p_safe, e_reg = self._test.p_values(test, self.direction)
        events, traffic = test["events"], test["traffic"]
        rates = [e / t if t else math.nan for e, t in zip(events, traffic, strict=True)]
        expected = self._test.expected_events(test)
        inconclusive = None
        if expected < self.min_events:
            inconclusive = (
                f"{events[0] + events[1]:g} events in all, {expected:.3g} effective ones expected on the "
                f"smaller arm at the pooled rate, fewer than min_events {self.min_events:g}"
            )
        elif (leaning := self._test.leaning(test, self.direction)) is not None:
            inconclusive = (
                f"the error-rate ratio estimate {leaning:.3g} is past the relevant "
                f"{self.min_effect:g} (or its inverse) without the regression being established"
            )
        return Assessment(
            p_regression=clip_p(p_reg / (1.0 - self.final_share)),
            # No pass, early or late, before min_events effective events: bursts make fewer unreliable.
            p_safe=p_safe if expected >= self.min_events else 1.0,
            e_regression=e_reg * (1.0 - self.final_share),
            p_final=final_share_p(self._test.final_p(test, self.direction), self.final_share),
            inconclusive=inconclusive,
            ci=self._test.confidence_sequence(test, state["alpha"]),
            estimate=self._test.estimate(test),
            effect_measure="error-rate ratio",
            neutral=1.0,
            observations=int(state["points"]) if test["loglik"] is not None else 0,
            baseline=_count_stats(events[0], traffic[0], state["points"]),
            canary=_count_stats(events[1], traffic[1], state["points"]),
            details={
                "events": {"baseline": events[0], "canary": events[1]},
                "traffic": {"baseline": traffic[0], "canary": traffic[1]},
                "rate": {"baseline": rates[0], "canary": rates[1]},
                "min_effect": self.min_effect,
                "min_events": self.min_events,
                "final_share": self.final_share,
            },
        )


# ---------------------------------------------------------------- histograms


# ---------------------------------------------------------------- helpers




def _events_traffic(value: Any, side: str) -> tuple[FloatArray, FloatArray]:
    if isinstance(value, Mapping):
        events, traffic = value.get("events"), value.get("traffic")
    elif isinstance(value, tuple | list) and len(value) == 2:
        events, traffic = value
    else:
        raise KayentaError(f"{side}: expected (events, traffic) arrays for a sequential-count metric")
    e = np.asarray(events, dtype=np.float64).reshape(-1)
    t = np.asarray(traffic, dtype=np.float64).reshape(-1)
    if e.size != t.size:
        raise KayentaError(f"{side}: {e.size} event counts but {t.size} traffic counts")
    if np.any(e[np.isfinite(e)] > t[np.isfinite(e)] * 1e6 + 1e12):
        raise KayentaError(f"{side}: event counts far above the traffic; are events and traffic swapped?")
    return e, t


def _count_stats(events: float, traffic: float, steps: int) -> Any:
    """The pooled event rate, as summary statistics over ``steps`` time steps."""
    from kayenta_py import SummaryStats

    if not steps:
        return SummaryStats(0.0, 0.0, 0.0, 0.0, 0)
    rate = events / traffic if traffic else 0.0
    return SummaryStats(rate, rate, rate, 0.0, int(steps))
