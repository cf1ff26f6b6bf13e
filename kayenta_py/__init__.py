"""kayenta-py: automated canary analysis with Kayenta-compatible judges and verdicts.

The public Python API (the notebooks' interface): :func:`load_config`,
:func:`judge`, :class:`CanaryResult` and the domain types judges and metrics
sources are written against.
"""

from __future__ import annotations

from kayenta_py._version import __version__
from kayenta_py.backtest.generate import generate_labelled_canaries
from kayenta_py.backtest.runs import backtest
from kayenta_py.config.loader import is_kayenta_config, load_config
from kayenta_py.config.model import KIND_DEFAULTS, CanaryConfig, KindDefaults, MetricConfig, MetricKind
from kayenta_py.config.registry import Registry, default_registry, did_you_mean, use_registry
from kayenta_py.engine.judge import Judge
from kayenta_py.engine.pipeline import (
    Judgement,
    analyze,
    evaluate,
    evaluate_window,
    judge,
    judge_pairs,
    normalize_metric_data,
    pair_metric_sets,
)
from kayenta_py.engine.scoring import Score, score_results
from kayenta_py.engine.sequential import SequentialAnalysis
from kayenta_py.engine.sequential_judge import Assessment, SequentialJudge
from kayenta_py.engine.source import (
    FetchedData,
    MetricsSource,
    Progress,
    Scope,
    SourceError,
    fetch_metric_sets,
)
from kayenta_py.engine.stats import cles, cohens_d, mean_ratio, percentile, summarize
from kayenta_py.engine.zeroin import RootResult, zeroin
from kayenta_py.model.errors import (
    ConfigError,
    ConfigIssue,
    FieldError,
    InputError,
    KayentaError,
    PluginError,
    ThresholdsError,
)
from kayenta_py.model.formatting import format_number
from kayenta_py.model.preprocessing import (
    NanStrategy,
    Outliers,
    OutlierStrategy,
    iqr_outliers,
    ksigma_outliers,
    preprocess,
    remove_nans,
    replace_nans,
)
from kayenta_py.model.types import (
    CanaryResult,
    Classification,
    Direction,
    FloatArray,
    GroupScore,
    MetricResult,
    MetricSet,
    MetricSetPair,
    SummaryStats,
    Thresholds,
    Verdict,
    as_values,
    json_number,
    tag_key,
)
from kayenta_py.reports.html import render_analysis_html, render_result_html
from kayenta_py.synthetic import Effects, TrafficModel, traffic_cycle

__all__ = [
    "KIND_DEFAULTS",
    "Assessment",
    "CanaryConfig",
    "CanaryResult",
    "Classification",
    "ConfigError",
    "ConfigIssue",
    "Direction",
    "Effects",
    "FetchedData",
    "FieldError",
    "FloatArray",
    "GroupScore",
    "InputError",
    "Judge",
    "Judgement",
    "KayentaError",
    "KindDefaults",
    "MetricConfig",
    "MetricKind",
    "MetricResult",
    "MetricSet",
    "MetricSetPair",
    "MetricsSource",
    "NanStrategy",
    "OutlierStrategy",
    "Outliers",
    "PluginError",
    "Progress",
    "Registry",
    "RootResult",
    "Scope",
    "Score",
    "SequentialAnalysis",
    "SequentialJudge",
    "SourceError",
    "SummaryStats",
    "Thresholds",
    "ThresholdsError",
    "TrafficModel",
    "Verdict",
    "__version__",
    "analyze",
    "as_values",
    "backtest",
    "cles",
    "cohens_d",
    "default_registry",
    "did_you_mean",
    "evaluate",
    "evaluate_window",
    "fetch_metric_sets",
    "format_number",
    "generate_labelled_canaries",
    "iqr_outliers",
    "is_kayenta_config",
    "json_number",
    "judge",
    "judge_pairs",
    "ksigma_outliers",
    "load_config",
    "mean_ratio",
    "normalize_metric_data",
    "pair_metric_sets",
    "percentile",
    "preprocess",
    "remove_nans",
    "render_analysis_html",
    "render_result_html",
    "replace_nans",
    "score_results",
    "summarize",
    "tag_key",
    "traffic_cycle",
    "use_registry",
    "zeroin",
]
