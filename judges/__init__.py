"""Built-in judges, registered through the ``kayenta_py.judges`` entry-point group."""

from __future__ import annotations

from judges._mann_whitney import (
    EffectSizeParams,
    MannWhitneyJudge,
    MannWhitneyParams,
    RankSumStatistic,
    WilcoxonInterval,
    wilcoxon_interval,
)
from judges._mean_inequality import MeanInequalityJudge
from judges._sequential_counts import RateRatioTest, SequentialCountJudge, SequentialHistogramJudge
from judges._sequential_rank import SequentialRankJudge
from judges._threshold import ThresholdJudge, ThresholdParams

__all__ = [
    "EffectSizeParams",
    "MannWhitneyJudge",
    "MannWhitneyParams",
    "MeanInequalityJudge",
    "RankSumStatistic",
    "RateRatioTest",
    "SequentialCountJudge",
    "SequentialHistogramJudge",
    "SequentialRankJudge",
    "ThresholdJudge",
    "ThresholdParams",
    "WilcoxonInterval",
    "wilcoxon_interval",
]
