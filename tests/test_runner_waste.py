"""The per-interval work of a live analysis (issue 15, capacity): no waste in the interval path.

A run of an analysis (``AnalysisRunner._run``) must not redo what does not change: its config
is parsed once per analysis (not per interval), it reads neither stored pairs nor stored
results of earlier intervals (the interval indices, the analysis row, and the previous
interval's small digest for the delta encoding), and each interval stores one JSON dialect
(Kayenta's judgeResult is derived from the native result on read, for Kayenta's documents).
Real SQLite and PostgreSQL stores (the ``store`` fixture), the demo source, a clock the test moves.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import event, select

import kayenta_py
from kayenta_py.config.loader import load_config
from kayenta_py.config.registry import default_registry
from kayenta_py.integrations.kayenta.documents import standalone_document
from kayenta_py.model.kayenta_result import kayenta_judge_result
from kayenta_py.service.runner import AnalysisRunner
from kayenta_py.service.runner_support import RunnerMetrics
from kayenta_py.service.store.repository import Store
from kayenta_py.service.store.tables import COMPLETED, IntervalRecord
from metrics_sources.demo import DemoSource

CONFIG: dict[str, Any] = {
    "name": "waste",
    "thresholds": {"pass": 95, "marginal": 75},
    "metrics": [
        {"name": "p50-latency", "kind": "latency"},
        {"name": "cpu-utilization", "kind": "saturation"},
        {"name": "orders-per-minute", "kind": "business", "direction": "decrease"},
    ],
}
INTERVAL, INTERVALS, STEP = 60.0, 4, 10.0


class Recording:
    """A dispatcher that only records what the runner asks (the test runs each due run itself)."""

    engine = "recording"

    def __init__(self) -> None:
        self.scheduled: list[tuple[str, float]] = []

    def bind(self, run: Any, scheduler: Any, *, resume: Any, running: Any) -> None:
        pass

    def start(self) -> None:
        pass

    def stop(self, graceful: bool = True) -> None:
        pass

    def schedule(self, analysis_id: str, when: float, *, source: str | None = None) -> None:
        self.scheduled.append((analysis_id, when))

    def cancel(self, analysis_id: str) -> None:
        pass

    def state(self) -> Any:
        return None

    def queue_depth(self) -> dict[str, int]:
        return {}


def new_analysis(store: Store, mode: str, start_ts: float) -> str:
    analysis = store.create_analysis(
        config_name="waste",
        config_version=1,
        config_body=CONFIG,
        baseline_scope="baseline",
        canary_scope="canary",
        source="demo",
        mode=mode,
        start_ts=start_ts,
        lifetime_s=INTERVAL * INTERVALS,
        interval_s=INTERVAL,
        step_s=STEP,
        thresholds={"pass": 95.0, "marginal": 75.0},
        fail_fast=False,
        intervals_total=INTERVALS,
    )
    return analysis.id


@pytest.mark.parametrize("mode", ["fixed", "sequential"])
def test_each_run_parses_nothing_again_and_reads_no_pairs_or_results(
    store: Store, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    parses: list[str] = []
    real_load = load_config

    def counting_load(*args: Any, **kwargs: Any) -> Any:
        parses.append(kwargs.get("mode", "?"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr("kayenta_py.service.runner_support.load_config", counting_load)
    now = [time.time() - 10 * INTERVAL]  # the demo's data exist for any time: judge the past
    dispatcher = Recording()
    runner = AnalysisRunner(
        store,
        {"demo": DemoSource()}.__getitem__,
        registry=default_registry(),
        metrics=RunnerMetrics.create(CollectorRegistry()),
        clock=lambda: now[0],
        dispatcher=dispatcher,
    )
    analysis_id = new_analysis(store, mode, now[0])
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        for index in range(INTERVALS):
            record_due = store.get_analysis(analysis_id, with_intervals=False)
            assert record_due is not None
            if record_due.complete:  # sequential mode may decide early
                break
            now[0] = record_due.due_ts(index) + 1.0
            runner._run(analysis_id)
            assert index in store.judged_indices(analysis_id)
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    final = store.get_analysis(analysis_id, with_intervals=False)
    assert final is not None and final.status == COMPLETED
    judged = len(store.judged_indices(analysis_id))
    assert judged >= 1 and (mode == "sequential" or judged == INTERVALS)
    assert parses == [mode], parses  # once for the analysis, not once per interval

    # Each run read no stored pairs and no stored results: the SELECTs on intervals name only
    # the index, or the previous interval's window start and digest (the delta encoding).
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "intervals" in s]
    assert reads, statements
    for statement in reads:
        columns = statement.split("FROM", 1)[0]
        assert not re.search(r"intervals\.(pairs|result)\b", columns), statement
    # Each due run scheduled the next due time without reading the analysis again.
    assert [when for _, when in dispatcher.scheduled] == [
        final.due_ts(i) for i in range(1, len(dispatcher.scheduled) + 1)
    ]


def test_an_interval_stores_one_dialect_and_kayenta_documents_derive_the_other(store: Store) -> None:
    baseline = {"latency": [10.0 + (i % 7) * 0.1 for i in range(40)]}
    canary = {"latency": [10.0 + (i % 5) * 0.1 for i in range(40)]}
    result = kayenta_py.judge(
        {"name": "one", "metrics": [{"name": "latency", "kind": "latency"}]}, baseline, canary
    )
    analysis_id = new_analysis(store, "fixed", time.time() - 10 * INTERVAL)
    analysis = store.get_analysis(analysis_id, with_intervals=False)
    assert analysis is not None
    assert store.record_interval(analysis_id, 0, analysis.window(0), analysis.due_ts(0), result, [])
    with store.session() as session:
        stored = session.scalars(select(IntervalRecord.result)).one()
    assert "kayenta" not in stored  # one dialect stored
    assert {k: v for k, v in stored.items() if k != "judge_name"} == result.to_dict()
    assert kayenta_judge_result(stored) == result.to_kayenta()  # derived on read, the same document
    store.finish_analysis(analysis_id, COMPLETED, result.verdict.value, result.score, "done")
    loaded = store.get_analysis(analysis_id)
    assert loaded is not None
    [execution] = standalone_document(loaded)["canaryExecutionResults"]
    assert execution["result"]["judgeResult"] == result.to_kayenta()


def test_rows_stored_with_both_dialects_keep_their_kayenta_result() -> None:
    # Rows written before one dialect carry Kayenta's result under "kayenta": returned as stored.
    old = {"verdict": "pass", "score": 100.0, "reason": "r", "metrics": [], "groups": [], "kayenta": {"x": 1}}
    assert kayenta_judge_result(old) == {"x": 1}
    fresh = {k: v for k, v in old.items() if k != "kayenta"}
    derived = kayenta_judge_result(fresh)
    assert derived["judgeName"] == "kayenta-py" and derived["score"]["classification"] == "Pass"
    assert kayenta_judge_result({**fresh, "judge_name": "kayenta-py-sequential"})["judgeName"] == (
        "kayenta-py-sequential"
    )


def test_sequential_catching_up_folds_each_interval_into_the_state_of_the_one_before(store: Store) -> None:
    # After a restart several intervals are due at once and judged in one run: each must start
    # from the state the previous one stored (not the state read when the run began).
    start = time.time() - 10 * INTERVAL
    now = [start]

    def runner() -> AnalysisRunner:
        return AnalysisRunner(
            store,
            {"demo": DemoSource()}.__getitem__,
            registry=default_registry(),
            metrics=RunnerMetrics.create(CollectorRegistry()),
            clock=lambda: now[0],
            dispatcher=Recording(),
        )

    one_by_one, caught_up = new_analysis(store, "sequential", start), new_analysis(store, "sequential", start)
    stepping = runner()
    for index in range(3):
        now[0] = start + (index + 1) * INTERVAL + 1.0
        stepping._run(one_by_one)
    runner()._run(caught_up)  # intervals 0, 1 and 2 due at once: one run judges them in order

    def observations(analysis_id: str) -> list[Any]:
        analysis = store.get_analysis(analysis_id)
        assert analysis is not None
        return [
            [m["details"].get("observations") for m in interval.result["metrics"]]
            for interval in analysis.intervals
        ]

    stepped = observations(one_by_one)
    assert len(stepped) == 3 and stepped[2] != stepped[0]  # the state grew
    assert observations(caught_up) == stepped
