"""Built-in metrics sources, registered through the ``kayenta_py.metrics_sources`` entry-point group."""

from __future__ import annotations

from metrics_sources._csv import CsvSource, read_metrics_csv

__all__ = ["CsvSource", "read_metrics_csv"]
