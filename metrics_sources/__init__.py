"""Built-in metrics sources (entry-point group ``kayenta_py.metrics_sources``)."""

from __future__ import annotations

from metrics_sources.cloudwatch import CloudWatchSource
from metrics_sources.csv import CsvSource, read_metrics_csv
from metrics_sources.datadog import DatadogSource
from metrics_sources.demo import DemoSource
from metrics_sources.graphite import GraphiteSource
from metrics_sources.influxdb import InfluxDBSource
from metrics_sources.newrelic import NewRelicSource
from metrics_sources.prometheus import MAX_POINTS, PrometheusSource
from metrics_sources.promql import TemplateError, build_query, escape_string, render

__all__ = [
    "MAX_POINTS",
    "CloudWatchSource",
    "CsvSource",
    "DatadogSource",
    "DemoSource",
    "GraphiteSource",
    "InfluxDBSource",
    "NewRelicSource",
    "PrometheusSource",
    "TemplateError",
    "build_query",
    "escape_string",
    "read_metrics_csv",
    "render",
]
