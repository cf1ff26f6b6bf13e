"""``POST /api/v1/judge``: judge posted baseline and canary values with a config, synchronously."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException

from kayenta_py.config.registry import did_you_mean
from kayenta_py.engine.pipeline import judge as judge_canary
from kayenta_py.http.dependencies import ServiceDep, require_write
from kayenta_py.http.documents import _given, _nan
from kayenta_py.http.schemas import JudgeRequest

router = APIRouter(tags=["judge"])


@router.post("/api/v1/judge", dependencies=[Depends(require_write)])
def judge(body: JudgeRequest, service: ServiceDep) -> dict[str, Any]:
    """Judge posted baseline and canary values with a config, synchronously."""
    config, _, _, _ = service.resolve_config(body.config, body.config_name, body.config_version)
    given = _given(body.thresholds)
    thresholds = None if given is None else config.thresholds.overridden(given)
    known = [m.name for m in config.metrics]
    for side, data in (("baseline", body.baseline), ("canary", body.canary)):
        for name in data:
            if name not in known:  # posted data that no metric would judge: a typo, never ignored
                message = f"the config has no metric {name!r}{did_you_mean(name, known)}"
                raise HTTPException(422, [{"loc": ["body", side, name], "msg": message}])
    result = judge_canary(
        config, _nan(body.baseline), _nan(body.canary), thresholds=thresholds, registry=service.registry
    )
    return result.to_dict()
