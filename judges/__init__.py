"""Built-in judges, registered through the ``kayenta_py.judges`` entry-point group."""

from __future__ import annotations

from judges.mann_whitney import (
    EffectSizeParams,
    MannWhitneyJudge,
    MannWhitneyParams,
    RankSumStatistic,
    WilcoxonInterval,
    wilcoxon_interval,
)
from judges.mean_inequality import MeanInequalityJudge
from judges.sequential.count import RateRatioTest, SequentialCountJudge, SequentialHistogramJudge
from judges.sequential.rank import SequentialRankJudge
from judges.threshold import ThresholdJudge, ThresholdParams

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
