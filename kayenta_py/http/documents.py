"""JSON documents of the native API: analyses, verdicts, intervals, configs, links."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from fastapi import HTTPException, Request

from kayenta_py.http.errors import one_line
from kayenta_py.http.schemas import (
    ThresholdsBody,
)
from kayenta_py.model.formatting import epoch_of
from kayenta_py.model.types import rfc3339
from kayenta_py.service.analyses import Service
from kayenta_py.service.store.records import Analysis, ConfigVersion, Interval


def _write_problem(service: Service) -> str | None:
    """Return why the database cannot take writes (``Store.check_writable``), or None."""
    try:
        return service.store.check_writable()
    except Exception as exc:  # the check itself failing is a problem too
        return f"{type(exc).__name__}: {one_line(exc)}"


def verdict_document(record: Analysis) -> dict[str, Any]:
    """Return ``{verdict, score, complete, reason}`` for rollout controllers."""
    score = record.score if record.score is not None and math.isfinite(record.score) else None
    return {"verdict": record.verdict, "score": score, "complete": record.complete, "reason": record.reason}


def analysis_summary(service: Service, request: Request, record: Analysis) -> dict[str, Any]:
    """Return an analysis without its intervals."""
    return {
        "id": record.id,
        "status": record.status,
        **verdict_document(record),
        "config_name": record.config_name,
        "config_version": record.config_version,
        "baseline_scope": record.baseline_scope,
        "canary_scope": record.canary_scope,
        "scope_params": record.scope_params,
        "location": record.location,
        "source": record.source,
        "start": rfc3339(record.start_ts),
        "end": rfc3339(record.end_ts),
        "lifetime_s": record.lifetime_s,
        "interval_s": record.interval_s,
        "warmup_s": record.warmup_s,
        "lookback_s": record.lookback_s,
        **baseline_document(record),
        "step_s": record.step_s,
        "thresholds": record.thresholds,
        "fail_fast": record.fail_fast,
        "mode": record.mode,
        "mode_reason": record.mode_reason or None,
        "intervals_total": record.intervals_total,
        "error": record.error,
        "created": rfc3339(record.created_ts),
        "updated": rfc3339(record.updated_ts),
        "completed": rfc3339(record.completed_ts),
        "links": _links(service, request, record.id),
    }


def baseline_document(record: Analysis) -> dict[str, Any]:
    """Return where the baseline comes from: its offset and window (the canary's when no offset)."""
    shift = record.baseline_offset_s or 0.0
    return {
        "baseline_offset_s": record.baseline_offset_s,
        "baseline_start": rfc3339(record.start_ts + shift),
        "baseline_end": rfc3339(record.end_ts + shift),
    }


def interval_document(interval: Interval, baseline_offset_s: float | None = None) -> dict[str, Any]:
    """Return one judged interval: its windows (the baseline's shifted by the offset) and results."""
    shift = baseline_offset_s or 0.0
    return {
        "index": interval.index,
        "window": {"start": rfc3339(interval.window_start_ts), "end": rfc3339(interval.window_end_ts)},
        "baseline_window": {
            "start": rfc3339(interval.window_start_ts + shift),
            "end": rfc3339(interval.window_end_ts + shift),
        },
        "due": rfc3339(interval.due_ts),
        "judged": rfc3339(interval.judged_ts),
        "score": interval.score,
        "verdict": interval.verdict,
        "reason": interval.reason,
        "groups": interval.result.get("groups", []),
        "metrics": interval.result.get("metrics", []),
    }


def config_document(record: ConfigVersion, *, with_body: bool = True) -> dict[str, Any]:
    """Return a stored config version."""
    document: dict[str, Any] = {
        "name": record.name,
        "version": record.version,
        "created": rfc3339(record.created_ts),
    }
    if with_body:
        document["config"] = record.body
    else:
        document["metrics"] = len(record.body.get("metrics", []))
    return document


def _links(service: Service, request: Request, analysis_id: str) -> dict[str, str]:
    base = (service.settings.public_url or str(request.base_url)).rstrip("/")
    own = f"{base}/api/v1/analyses/{analysis_id}"
    return {"self": own, "verdict": f"{own}/verdict", "report": f"{own}/report", "cancel": f"{own}/cancel"}


def _analysis(service: Service, analysis_id: str, *, with_intervals: bool = True) -> Analysis:
    record = service.store.get_analysis(analysis_id, with_intervals=with_intervals)
    if record is None:
        raise HTTPException(404, f"no analysis {analysis_id!r}")
    return record


def _given(thresholds: ThresholdsBody | None) -> dict[str, float] | None:
    """Return the thresholds a body gave: only its keys (a missing one is the config's, not 95 or 75)."""
    return None if thresholds is None else thresholds.model_dump(by_alias=True, exclude_unset=True)


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else epoch_of(moment)


def _nan(values: dict[str, list[float | None]]) -> dict[str, list[float]]:
    return {name: [math.nan if v is None else v for v in series] for name, series in values.items()}


