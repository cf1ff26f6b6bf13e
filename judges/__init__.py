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
from judges._sequential import (
    RateRatioTest,
    SequentialCountJudge,
    SequentialHistogramJudge,
    SequentialRankJudge,
)
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
