"""Built-in metrics sources (entry-point group ``kayenta_py.metrics_sources``)."""

from __future__ import annotations

from metrics_sources._csv import CsvSource, read_metrics_csv

__all__ = ["CsvSource", "read_metrics_csv"]
