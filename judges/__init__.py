"""Built-in judges, registered through the ``kayenta_py.judges`` entry-point group."""

from __future__ import annotations

from judges.mann_whitney import MannWhitneyJudge
from judges.mann_whitney_params import EffectSizeParams, MannWhitneyParams
from judges.mean_inequality import MeanInequalityJudge
from judges.sequential.count import SequentialCountJudge
from judges.sequential.histogram import SequentialHistogramJudge
from judges.sequential.rank import SequentialRankJudge
from judges.sequential.rate_ratio import RateRatioTest
from judges.threshold import ThresholdJudge, ThresholdParams
from judges.wilcoxon import RankSumStatistic, WilcoxonInterval, wilcoxon_interval

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
