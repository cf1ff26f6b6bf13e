"""Kayenta's CanaryJudgeResult, derived from a result's native JSON (:meth:`CanaryResult.to_dict`).

One mapping for both uses: :meth:`CanaryResult.to_kayenta` calls it on a fresh result, and the
Kayenta-compatible documents call it on a stored interval's native result, so the store keeps
one JSON dialect per interval. Test: ``tests/test_kayenta_result.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_JUDGE_NAME = "kayenta-py"
JUDGE_NAME_KEY = "judge_name"
"""Where a stored native result keeps its judge's name (Kayenta's ``judgeName``)."""


def kayenta_metric_result(metric: Mapping[str, Any]) -> dict[str, Any]:
    """Return Kayenta's CanaryAnalysisResult for one metric of a native result (``metrics[i]``)."""
    return {
        "name": metric["name"],
        "tags": dict(metric.get("tags") or {}),
        "classification": metric["classification"],
        "classificationReason": metric["reason"],
        "groups": list(metric.get("groups") or []),
        "experimentMetadata": {"stats": metric["canary"]},
        "controlMetadata": {"stats": metric["baseline"]},
        "resultMetadata": {"ratio": metric.get("mean_ratio")},
        "critical": metric["critical"],
        "muted": metric["muted"],
    }


def kayenta_judge_result(native: Mapping[str, Any], judge_name: str | None = None) -> dict[str, Any]:
    """Return Kayenta's CanaryJudgeResult of a native result document.

    ``judge_name`` defaults to the one the document keeps (``judge_name``), else ``kayenta-py``.
    A stored document written before the store kept one dialect carries its Kayenta result
    under ``kayenta``: that one is returned as it was stored.
    """
    stored = native.get("kayenta")
    if isinstance(stored, Mapping):
        return dict(stored)
    name = judge_name or native.get(JUDGE_NAME_KEY) or DEFAULT_JUDGE_NAME
    score = native.get("score")
    return {
        "judgeName": name,
        "results": [kayenta_metric_result(m) for m in native.get("metrics", [])],
        "groupScores": [
            {"name": g["name"], "score": g["score"], "classification": "", "classificationReason": ""}
            for g in native.get("groups", [])
        ],
        "score": {
            "score": score if score is not None else 0.0,
            "classification": str(native["verdict"]).capitalize(),
            "classificationReason": native["reason"],
        },
    }
