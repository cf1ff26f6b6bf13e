"""Bundled example: a checkout service's config and generated baseline/canary CSVs.

``EXAMPLES_DIR`` holds ``checkout.yaml``, ``baseline.csv``, ``canary-healthy.csv``
and ``canary-regressed.csv``; ``python -m kayenta_py.examples.generate`` rewrites
the CSVs from their fixed seeds.
"""

from __future__ import annotations

from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent

__all__ = ["EXAMPLES_DIR"]
