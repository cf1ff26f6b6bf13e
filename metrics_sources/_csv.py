"""CSV metrics source (placeholder: being written)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kayenta_py import MetricSet


def read_metrics_csv(path: str | Path) -> dict[str, list[MetricSet]]:
    raise NotImplementedError


class CsvSource:
    name = "csv"

    def __init__(self, **kwargs: Any) -> None:
        raise NotImplementedError
