"""Request bodies of the native API (strict: an unknown field is a 422 naming it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from kayenta_py.model.limits import JsonSafeErrors

Duration = str | StrictFloat | StrictInt


class _Body(JsonSafeErrors):
    """A request body: unknown fields and non-finite numbers are refused; errors are strict JSON."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ThresholdsBody(_Body):
    """Score thresholds."""

    pass_: float = Field(95.0, alias="pass", ge=0, le=100, description="a score at or above it passes (> 0)")
    marginal: float = Field(75.0, ge=0, le=100, description="a score at or below it fails")


class AnalysisRequest(_Body):
    """A live (or retrospective) canary analysis to run."""

    config: dict[str, Any] | None = Field(None, description="an inline canary config (native or Kayenta)")
    config_name: str | None = Field(None, description="the name of a stored config")
    config_version: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description="pin this stored version of config_name (default: the latest at start)",
    )
    baseline_scope: str = Field(min_length=1)
    canary_scope: str = Field(min_length=1)
    scope_params: dict[str, str] = Field(default_factory=dict)
    location: str = ""
    source: str | None = Field(
        None,
        description="metrics source: prometheus or demo (default: the config's, else KAYENTA_DEFAULT_SOURCE, "
        "else prometheus when KAYENTA_PROMETHEUS_URL is set; with none, the analysis is refused)",
    )
    start: datetime | None = Field(None, description="RFC 3339; default now")
    end: datetime | None = Field(None, description="RFC 3339; a past window runs at once")
    lifetime: Duration | None = Field(None, description="ISO 8601 duration or seconds; default PT30M")
    interval: Duration | None = Field(None, description="ISO 8601 duration or seconds; default the lifetime")
    warmup: Duration | None = Field(0, description="ignored data at the start")
    lookback: Duration | None = Field(None, description="window per interval; default since start")
    step: float = Field(60.0, gt=0, description="seconds between metric points")
    thresholds: ThresholdsBody | None = None
    fail_fast: bool = Field(True, description="end with fail at the first failing interval")
    mode: Literal["fixed", "sequential"] | None = Field(
        None,
        description="sequential: anytime-valid judges that may decide early; fixed: Kayenta's test re-run "
        "each interval (default: the config's mode:, else sequential for a native config whose metrics "
        "all have sequential judges, else fixed; answers say which and why in mode, mode_reason)",
    )
    alpha: float = Field(0.05, gt=0, lt=1, description="sequential mode: the canary's false-fail rate")
    family: Literal["bonferroni", "e-bh"] = Field("bonferroni", description="sequential mode: metric family")
    baseline_offset: Duration | None = Field(
        None,
        description="the baseline's own window: the canary's shifted by this signed duration (-P7D, -PT1H, "
        "-1h30m or seconds; negative: earlier), as after a blue-green switch or against last week",
    )
    baseline_start: datetime | None = Field(
        None, description="RFC 3339: an explicit baseline window with baseline_end, as long as the canary's"
    )
    baseline_end: datetime | None = Field(None, description="RFC 3339: the explicit baseline window's end")


class JudgeRequest(_Body):
    """A synchronous judgement of posted values."""

    config: dict[str, Any] | None = None
    config_name: str | None = None
    config_version: int | None = Field(
        None, ge=1, le=2**31 - 1, description="pin this stored version of config_name"
    )
    baseline: dict[str, list[float | None]]
    canary: dict[str, list[float | None]]
    thresholds: ThresholdsBody | None = None


class ConfigCreate(_Body):
    """A new named canary config."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    config: dict[str, Any]


class ConfigUpdate(_Body):
    """A new version of a canary config."""

    config: dict[str, Any]


class Readiness(BaseModel):
    """The answer of /readyz."""

    status: Literal["ready", "not ready"]
    database: bool = Field(description="the database answers")
    writable: bool = Field(description="the database takes writes (not full, not read-only)")
    scheduler: bool = Field(description="the analysis scheduler runs")
    problem: str | None = Field(None, description="why the database is not ready")
    dispatch: str = Field("embedded", description="who runs due intervals: embedded or procrastinate")
    worker: bool = Field(True, description="this replica's dispatcher runs due intervals (its worker is up)")
    worker_problem: str | None = Field(None, description="why the dispatcher's worker is not ready")
    replica: str | None = Field(None, description="this replica's id")
    notifiers: dict[str, list[str]] = Field(
        default_factory=dict, description="where each notifier delivers (URL credentials masked)"
    )


