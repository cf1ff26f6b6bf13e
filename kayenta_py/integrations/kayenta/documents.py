"""Kayenta's documents of executions: canary and standalone analysis status, results and exceptions."""

from __future__ import annotations

from typing import Any

from kayenta_py.integrations.kayenta.fields import (
    _duration,
)
from kayenta_py.model.kayenta_result import kayenta_judge_result
from kayenta_py.model.types import rfc3339
from kayenta_py.service.store.records import Analysis
from kayenta_py.service.store.tables import (
    CANCELLED,
    COMPLETED,
    FAILED,
)


def execution_status(record: Analysis) -> dict[str, Any]:
    """Return Kayenta's CanaryExecutionStatusResponse for an analysis."""
    door, query = record.door, record.door.query
    end_ts = record.end_ts
    last = record.intervals[-1] if record.intervals else None
    result = None
    if record.status == COMPLETED and last is not None:
        result = {
            "judgeResult": kayenta_judge_result(last.result),
            "canaryDuration": _duration(end_ts - record.start_ts),
            "metricSetPairListId": record.id,
        }
    return {
        "application": query.get("application"),
        "parentPipelineExecutionId": query.get("parentPipelineExecutionId"),
        "pipelineId": record.id,
        "canaryConfigId": door.config_id,
        "complete": record.complete,
        "status": _status(record),
        "exception": _exception(record),
        "result": result,
        "config": record.config_body,
        "canaryExecutionRequest": door.request,
        "metricSetPairListId": record.id if last is not None else None,
        "buildTimeMillis": int(record.created_ts * 1000),
        "buildTimeIso": rfc3339(record.created_ts),
        "startTimeMillis": int(record.start_ts * 1000),
        "startTimeIso": rfc3339(record.start_ts),
        "endTimeMillis": int(end_ts * 1000),
        "endTimeIso": rfc3339(end_ts),
        "storageAccountName": query.get("storageAccountName"),
        "configurationAccountName": query.get("configurationAccountName"),
        "metricsAccountName": query.get("metricsAccountName"),
        "warnings": list(door.warnings),
    }


def standalone_document(record: Analysis) -> dict[str, Any]:
    """Return Kayenta's CanaryAnalysisExecutionStatusResponse for a standalone analysis."""
    door, query = record.door, record.door.query
    status = _status(record)
    executions = [
        {
            "executionId": f"{record.id}-{interval.index}",
            "executionStatus": "SUCCEEDED",
            "result": {"judgeResult": kayenta_judge_result(interval.result)},
            "warnings": [],
        }
        for interval in record.intervals
    ]
    result = None
    if record.complete:
        passed = record.status == COMPLETED and record.verdict == "pass"
        result = {
            "didPassThresholds": passed,
            "hasWarnings": bool(door.warnings),
            "canaryScoreMessage": record.reason,
            "canaryScores": [i.score if i.score is not None else 0.0 for i in record.intervals],
            "canaryExecutionResults": executions,
            "buildTimeIso": rfc3339(record.created_ts),
            "startTimeIso": rfc3339(record.start_ts),
            "endTimeIso": rfc3339(record.completed_ts),
        }
    return {
        "application": query.get("application"),
        "user": query.get("user"),
        "parentPipelineExecutionId": query.get("parentPipelineExecutionId"),
        "pipelineId": record.id,
        "complete": record.complete,
        "executionStatus": status.upper(),
        "status": status,
        "exception": _exception(record),
        "canaryAnalysisExecutionResult": result,
        "canaryExecutionResults": executions,
        "canaryAnalysisExecutionRequest": door.request,
        "canaryConfig": record.config_body,
        "canaryConfigId": door.config_id,
        "metricsAccountName": query.get("metricsAccountName"),
        "storageAccountName": query.get("storageAccountName"),
        "buildTimeIso": rfc3339(record.created_ts),
        "startTimeIso": rfc3339(record.start_ts),
        "endTimeIso": rfc3339(record.completed_ts),
        "warnings": list(door.warnings),
    }


def _status(record: Analysis) -> str:
    return {COMPLETED: "succeeded", FAILED: "terminal", CANCELLED: "canceled"}.get(record.status, "running")


def _exception(record: Analysis) -> dict[str, Any] | None:
    if record.status != FAILED:
        return None
    message = record.error or record.reason
    return {"message": message, "details": {"error": message, "errors": [message]}}


