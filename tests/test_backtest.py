"""``kayenta-py backtest``: labelled CSV canaries and stored analyses judged again under other parameters.

The command is driven through the parser :func:`add_backtest_parser` builds on a
fresh ``ArgumentParser`` (the wiring the CLI does), and every count is checked
against a direct computation with :func:`kayenta_py.judge`, with the overrides
applied the way a config file would carry them.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

import kayenta_py
from kayenta_py import KayentaError, Registry, Scope, Verdict
from kayenta_py.backtest.generate import generate_labelled_canaries
from kayenta_py.backtest.overrides import nest
from kayenta_py.backtest.runs import MARGINAL_NOTE
from kayenta_py.cli.backtest import add_backtest_parser, run_backtest
from kayenta_py.examples import EXAMPLES_DIR
from kayenta_py.model.pairs_codec import pairs_from_json
from kayenta_py.model.spec import AnalysisSpec
from kayenta_py.service.analyses import Service
from kayenta_py.service.settings import Settings
from kayenta_py.service.store.repository import Store
from metrics_sources import DemoSource, read_metrics_csv

CONFIG = EXAMPLES_DIR / "checkout.yaml"
CHECKOUT: dict[str, Any] = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
CHECKOUT_METRICS = [m["name"] for m in CHECKOUT["metrics"]]
COUNT = 20
OUTCOME = {"fail": "failed", "pass": "passed", "marginal": "marginal"}


@pytest.fixture
def registry() -> Registry:
    return Registry().load_entry_points()


@pytest.fixture(scope="module")
def canaries(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("canaries")
    generate_labelled_canaries(directory, COUNT, seed=3)
    return directory


def run(registry: Registry, *argv: str | Path) -> tuple[int, str, str]:
    """Parse ``backtest ARGV`` as the CLI will and run it; a KayentaError is exit 2, as in ``main``."""
    parser = argparse.ArgumentParser(prog="kayenta-py")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_backtest_parser(commands)
    args = parser.parse_args(["backtest", *map(str, argv)])
    out = io.StringIO()
    try:
        return run_backtest(args, registry, out), out.getvalue(), ""
    except KayentaError as exc:
        return 2, out.getvalue(), str(exc)


def run_json(registry: Registry, *argv: str | Path) -> dict[str, Any]:
    code, out, err = run(registry, *argv, "--format", "json")
    assert code == 0, err
    document: dict[str, Any] = json.loads(out)
    return document


def native_config(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return checkout.yaml with ``overrides`` written into each mann-whitney metric's judge block."""
    config = copy.deepcopy(CHECKOUT)
    nested = nest(overrides)
    for metric in config["metrics"]:
        block = metric.get("judge") or {}
        if block.get("type", "mann-whitney") != "mann-whitney":
            continue
        for key in ("tolerance", "confidence"):
            if key in nested:
                metric.pop(key, None)  # set once: in the judge block
        merged = {**block, "type": "mann-whitney"}
        for key, value in nested.items():
            merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
        metric["judge"] = merged
    return config


def direct_outcomes(directory: Path, overrides: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Judge every canary directory with kayenta_py.judge: name -> (label, verdict)."""
    config = native_config(overrides)
    outcomes = {}
    for sub in sorted(p for p in directory.iterdir() if p.is_dir()):
        result = kayenta_py.judge(
            config, read_metrics_csv(sub / "baseline.csv"), read_metrics_csv(sub / "canary.csv")
        )
        outcomes[sub.name] = ((sub / "label").read_text().strip(), result.verdict.value)
    return outcomes


def confusion_of(outcomes: Mapping[str, tuple[str, str]]) -> dict[str, dict[str, int]]:
    counts = Counter((label, OUTCOME[verdict]) for label, verdict in outcomes.values())
    return {
        label: {o: counts[(label, o)] for o in ("failed", "passed", "marginal")}
        for label in ("regression", "healthy")
    }


# ---------------------------------------------------------------- the generator


def test_generator_writes_labelled_realistic_canaries(tmp_path: Path) -> None:
    generated = generate_labelled_canaries(tmp_path / "a", COUNT, seed=5)
    again = generate_labelled_canaries(tmp_path / "b", COUNT, seed=5)
    assert [g.name for g in generated] == [f"canary-{i:03d}" for i in range(1, COUNT + 1)]
    assert Counter(g.label for g in generated) == {"regression": 8, "healthy": 12}
    for first, second in zip(generated, again, strict=True):
        assert (first.directory / "label").read_text() == first.label + "\n"
        for name in ("baseline.csv", "canary.csv"):
            assert (first.directory / name).read_bytes() == (second.directory / name).read_bytes()
        data = read_metrics_csv(first.directory / "canary.csv")
        assert sorted(data) == sorted(CHECKOUT_METRICS)
        assert all(len(data[m][0]) == 60 for m in data)
        changed = {k for k, v in first.effects.items() if v != 1.0}
        assert bool(changed) == (first.label == "regression"), first


def test_generated_regressions_are_mostly_caught_and_healthy_mostly_pass(tmp_path: Path) -> None:
    generate_labelled_canaries(tmp_path, 40, seed=11)
    confusion = confusion_of(direct_outcomes(tmp_path, {}))
    assert confusion["regression"]["failed"] >= 0.6 * sum(confusion["regression"].values())
    assert confusion["healthy"]["passed"] >= 0.7 * sum(confusion["healthy"].values())


# ---------------------------------------------------------------- CSV canaries


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"tolerance": 0.3, "confidence": 0.95, "effect_size.allowed_increase": 1.1},
        {"tolerance": 0.1, "effect_size.measure": "cles", "effect_size.allowed_increase": 0.6},
    ],
    ids=["config-as-is", "set-three", "set-cles"],
)
def test_confusion_counts_equal_a_direct_computation(
    registry: Registry, canaries: Path, overrides: dict[str, Any]
) -> None:
    sets = [arg for key, value in overrides.items() for arg in ("--set", f"{key}={value}")]
    document = run_json(registry, "--canaries", canaries, "--config", CONFIG, "--no-progress", *sets)
    expected = direct_outcomes(canaries, overrides)
    assert document["canaries"] == COUNT
    assert document["labels"] == {"regression": 8, "healthy": 12}
    (setting,) = document["settings"]
    assert setting["params"] == overrides
    assert {c["name"]: (c["label"], c["verdict"]) for c in setting["canaries"]} == expected
    confusion = confusion_of(expected)
    assert setting["confusion"] == confusion
    healthy, regression = confusion["healthy"], confusion["regression"]
    assert math.isclose(setting["false_fail_rate"], healthy["failed"] / sum(healthy.values()))
    assert math.isclose(
        setting["missed_regression_rate"],
        (regression["passed"] + regression["marginal"]) / sum(regression.values()),
    )


def test_text_output_is_a_confusion_table_with_both_rates(registry: Registry, canaries: Path) -> None:
    code, out, err = run(registry, "--canaries", canaries, "--config", CONFIG, "--set", "tolerance=0.3")
    assert code == 0, err
    confusion = confusion_of(direct_outcomes(canaries, {"tolerance": 0.3}))
    lines = out.splitlines()
    assert lines[0].startswith(f"backtest of {COUNT} canaries (8 labelled regression, 12 labelled healthy)")
    assert f"({MARGINAL_NOTE})" in lines
    assert "setting: tolerance=0.3 (mann-whitney metrics)" in lines
    header = next(line for line in lines if line.split() == ["failed", "passed", "marginal", "total"])
    assert header.index("failed") > len("labelled regression")
    for label in ("regression", "healthy"):
        row = next(line for line in lines if line.startswith(f"labelled {label}"))
        counts = confusion[label]
        assert [int(n) for n in row.split()[2:]] == [*counts.values(), sum(counts.values())]
    healthy = confusion["healthy"]
    rate = healthy["failed"] / sum(healthy.values())
    assert f"false-fail rate: {rate:.1%} ({healthy['failed']} of 12 healthy canaries failed)" in lines
    assert any(line.startswith("missed-regression rate: ") for line in lines)
    assert "summary" not in out  # one setting, no summary


def test_sweep_prints_one_table_per_value_and_stricter_tolerance_does_not_add_false_fails(
    registry: Registry, canaries: Path
) -> None:
    values = (0.05, 0.25, 0.5, 1.0)
    sweep = "tolerance=" + ",".join(map(str, values))
    code, out, err = run(registry, "--canaries", canaries, "--config", CONFIG, "--sweep", sweep)
    assert code == 0, err
    assert [line for line in out.splitlines() if line.startswith("setting: ")] == [
        f"setting: tolerance={v:g} (mann-whitney metrics)" for v in values
    ]
    summary = out.split(f"summary ({MARGINAL_NOTE}):\n", 1)[1].splitlines()
    assert [line.split()[0] for line in summary] == [f"tolerance={v:g}" for v in values]
    assert all("false-fail" in line and "missed-regression" in line for line in summary)

    document = run_json(registry, "--canaries", canaries, "--config", CONFIG, "--sweep", sweep)
    settings = document["settings"]
    assert [s["params"] for s in settings] == [{"tolerance": v} for v in values]
    false_fails = [s["confusion"]["healthy"]["failed"] for s in settings]
    failed = [s["confusion"]["healthy"]["failed"] + s["confusion"]["regression"]["failed"] for s in settings]
    assert false_fails == sorted(false_fails, reverse=True)
    assert failed == sorted(failed, reverse=True)
    for setting, value in zip(settings, values, strict=True):
        assert setting["confusion"] == confusion_of(direct_outcomes(canaries, {"tolerance": value}))


def test_sweep_grid_with_a_fixed_setting(registry: Registry, canaries: Path) -> None:
    document = run_json(
        registry,
        "--canaries",
        canaries,
        "--config",
        CONFIG,
        "--set",
        "effect_size.allowed_increase=1.05",
        "--sweep",
        "tolerance=0.1,0.4",
        "--sweep",
        "confidence=0.9,0.99",
    )
    assert [s["params"] for s in document["settings"]] == [
        {"effect_size.allowed_increase": 1.05, "tolerance": t, "confidence": c}
        for t in (0.1, 0.4)
        for c in (0.9, 0.99)
    ]
    last = document["settings"][-1]
    assert last["confusion"] == confusion_of(direct_outcomes(canaries, last["params"]))


def test_labels_csv_at_the_root_and_pass_threshold(registry: Registry, tmp_path: Path) -> None:
    generated = generate_labelled_canaries(tmp_path, 6, seed=8, labels="csv")
    assert not any((g.directory / "label").exists() for g in generated)
    assert (tmp_path / "labels.csv").read_text().splitlines()[0] == "canary,label"
    document = run_json(
        registry, "--canaries", tmp_path, "--config", CONFIG, "--pass", "50", "--marginal", "40"
    )
    outcomes = {c["name"]: c for c in document["settings"][0]["canaries"]}
    for g in generated:
        baseline = read_metrics_csv(g.directory / "baseline.csv")
        canary = read_metrics_csv(g.directory / "canary.csv")
        result = kayenta_py.judge(CHECKOUT, baseline, canary, thresholds={"pass": 50, "marginal": 40})
        assert (outcomes[g.name]["label"], outcomes[g.name]["verdict"]) == (g.label, result.verdict.value)


def test_progress_bar_on_a_terminal_only(
    registry: Registry, canaries: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert run(registry, "--canaries", canaries, "--config", CONFIG)[0] == 0
    assert f"0/{COUNT}" in terminal.getvalue() and "backtest:" in terminal.getvalue()

    quiet = Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    assert run(registry, "--canaries", canaries, "--config", CONFIG, "--no-progress")[0] == 0
    assert quiet.getvalue() == ""

    piped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", piped)
    assert run(registry, "--canaries", canaries, "--config", CONFIG)[0] == 0
    assert piped.getvalue() == ""


# ---------------------------------------------------------------- errors


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    generate_labelled_canaries(tmp_path / "canaries", 3, seed=1)
    return tmp_path / "canaries"


def test_missing_directory(registry: Registry, tmp_path: Path) -> None:
    code, _, err = run(registry, "--canaries", tmp_path / "nope", "--config", CONFIG)
    assert code == 2 and err == f"--canaries: {tmp_path / 'nope'}: no such directory"


def test_directory_without_canaries(registry: Registry, tmp_path: Path) -> None:
    code, _, err = run(registry, "--canaries", tmp_path, "--config", CONFIG)
    assert code == 2 and f"{tmp_path}: no canary directories" in err


def test_canary_directory_without_baseline(registry: Registry, broken: Path) -> None:
    (broken / "canary-002" / "baseline.csv").unlink()
    code, _, err = run(registry, "--canaries", broken, "--config", CONFIG)
    assert code == 2 and err.startswith(f"{broken / 'canary-002'}: no baseline.csv")


def test_bad_label_file(registry: Registry, broken: Path) -> None:
    (broken / "canary-003" / "label").write_text("regresion\n")
    code, _, err = run(registry, "--canaries", broken, "--config", CONFIG)
    assert code == 2
    assert err == f"{broken / 'canary-003' / 'label'}: label 'regresion' is not 'regression' or 'healthy'"


def test_bad_label_in_labels_csv(registry: Registry, broken: Path) -> None:
    (broken / "labels.csv").write_text("canary,label\ncanary-001,healthy\ncanary-002,fine\n")
    code, _, err = run(registry, "--canaries", broken, "--config", CONFIG)
    assert (
        code == 2 and err == f"{broken / 'labels.csv'} line 3: label 'fine' is not 'regression' or 'healthy'"
    )


def test_labels_disagreeing_unknown_or_missing(registry: Registry, broken: Path) -> None:
    label = (broken / "canary-001" / "label").read_text().strip()
    other = "healthy" if label == "regression" else "regression"
    (broken / "labels.csv").write_text(f"canary,label\ncanary-001,{other}\n")
    code, _, err = run(registry, "--canaries", broken, "--config", CONFIG)
    assert code == 2 and "canary-001" in err and f"says {other!r}" in err

    (broken / "labels.csv").write_text("canary,label\ncanary-009,healthy\n")
    code, _, err = run(registry, "--canaries", broken, "--config", CONFIG)
    assert code == 2 and err.startswith(f"{broken / 'labels.csv'}: no canary directory 'canary-009'")

    (broken / "labels.csv").unlink()
    (broken / "canary-002" / "label").unlink()
    code, _, err = run(registry, "--canaries", broken, "--config", CONFIG)
    assert code == 2 and err.startswith(f"{broken / 'canary-002'}: no label")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "tolernce=0.3"], "--set tolernce: unknown key; did you mean tolerance?"),
        (
            ["--set", "effect_size.allowed_increse=1.1"],
            "--set effect_size.allowed_increse: unknown key; did you mean allowed_increase?",
        ),
        (["--set", "confidence=1.5"], "--set confidence: "),
        (["--set", "tolerance"], "--set: 'tolerance' is not KEY=VALUE"),
        (["--sweep", "tolerence=0.1,0.2"], "--set tolerence: unknown key; did you mean tolerance?"),
        (["--sweep", "tolerance="], "--sweep tolerance: no values"),
        (
            ["--set", "tolerance=0.2", "--sweep", "tolerance=0.1,0.3"],
            "--sweep tolerance: also given with --set",
        ),
        (["--set", "type=threshold"], "--set type: the judge type is chosen with --judge"),
        (["--judge", "threshold", "--set", "aggregate=p99"], ""),
        (["--judge", "mean-inequality", "--set", "x=1"], "--set x: "),
    ],
)
def test_bad_overrides_exit_2_naming_the_key(
    registry: Registry, broken: Path, argv: list[str], message: str
) -> None:
    code, out, err = run(registry, "--canaries", broken, "--config", CONFIG, *argv)
    if not message:  # a valid override of another judge
        assert code == 0, err
        return
    assert code == 2 and err.startswith(message), err
    assert out == ""


def test_set_for_a_judge_no_metric_uses(registry: Registry, broken: Path, tmp_path: Path) -> None:
    config = tmp_path / "threshold.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "only-threshold",
                "metrics": [
                    {
                        "name": "p99-latency",
                        "kind": "latency",
                        "judge": {"type": "threshold", "max_increase": "+10%"},
                    }
                ],
            }
        )
    )
    code, _, err = run(registry, "--canaries", broken, "--config", config, "--set", "tolerance=0.3")
    assert code == 2 and err.startswith(
        "--set: no metric of config 'only-threshold' is judged by mann-whitney"
    )


def test_config_is_required_with_canaries_and_one_input_is_required(registry: Registry, broken: Path) -> None:
    code, _, err = run(registry, "--canaries", broken)
    assert code == 2 and err.startswith("--config: required with --canaries")
    with pytest.raises(SystemExit) as exit_info:
        run(registry, "--config", CONFIG)
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        run(registry, "--canaries", broken, "--database-url", "sqlite:///x.db")


def test_missing_database_file(registry: Registry, tmp_path: Path) -> None:
    code, _, err = run(registry, "--database-url", f"sqlite:///{tmp_path / 'none.db'}")
    assert code == 2 and err == f"--database-url: no database file {tmp_path / 'none.db'}"
    assert not (tmp_path / "none.db").exists()


def test_database_without_schema(registry: Registry, tmp_path: Path) -> None:
    (tmp_path / "empty.db").touch()
    code, _, err = run(registry, "--database-url", f"sqlite:///{tmp_path / 'empty.db'}")
    assert code == 2 and err.startswith("--database-url: cannot read analyses from") and "analyses" in err


# ---------------------------------------------------------------- stored analyses


def healthy_window(step: float, seconds: float) -> float:
    """Return a past start whose healthy demo canary passes (the demo data are deterministic noise)."""
    now = math.floor(time.time())
    config = kayenta_py.load_config(CHECKOUT)
    for shift in range(0, 1200, 10):
        start = float(now - 900 - shift)
        result = kayenta_py.analyze(
            config,
            DemoSource(),
            Scope("baseline"),
            Scope("canary-healthy"),
            start=start,
            end=start + seconds,
            step=step,
        )
        if result.verdict is Verdict.PASS:
            return start
    raise AssertionError("no passing healthy demo window in the last 35 minutes")


@pytest.fixture
def store_url(tmp_path: Path, registry: Registry) -> tuple[str, dict[str, str]]:
    """A SQLite store holding completed past-window analyses: healthy, regressed, and a sequential one."""
    url = f"sqlite:///{tmp_path / 'data' / 'kayenta.db'}"
    service = Service(Settings(data_dir=tmp_path / "data", database_url=url), registry=registry)
    service.start()
    step, seconds = 10.0, 300.0
    start = healthy_window(step, seconds)
    ids = {}
    try:
        for scope in ("canary-healthy", "canary-regressed"):
            record = service.create_analysis(AnalysisSpec(
                config=CHECKOUT,
                config_name=None,
                baseline_scope="baseline",
                canary_scope=scope,
                source="demo",
                start=start,
                end=start + seconds,
                interval=seconds / 2,
                step=step,
            ))
            ids[scope] = record.id
        sequential = service.create_analysis(AnalysisSpec(
            config={
                "name": "seq",
                "mode": "sequential",
                "metrics": [{"name": "p99-latency", "kind": "latency"}],
            },
            config_name=None,
            baseline_scope="baseline",
            canary_scope="canary-regressed",
            source="demo",
            start=start,
            end=start + seconds,
            interval=seconds / 2,
            step=step,
        ))
        ids["sequential"] = sequential.id
        deadline = time.monotonic() + 60
        for analysis_id in ids.values():
            while not service.store.get_analysis(analysis_id, with_intervals=False).complete:  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the analyses did not complete"
                time.sleep(0.05)
    finally:
        service.stop()
    return url, ids


def stored_pairs(url: str, analysis_id: str) -> list[kayenta_py.MetricSetPair]:
    store = Store(url)
    try:
        record = store.get_analysis(analysis_id)
        assert record is not None and record.intervals
        return pairs_from_json(record.intervals[-1].pairs)
    finally:
        store.close()


def test_stored_analyses_against_their_past_verdicts(
    registry: Registry, store_url: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, ids = store_url
    store = Store(url)
    healthy = store.get_analysis(ids["canary-healthy"])
    store.close()
    assert healthy is not None and len(healthy.intervals) == 2  # the last one is judged again
    document = run_json(registry, "--database-url", url)
    assert document["canaries"] == 2
    assert document["skipped"] == [
        f"{ids['sequential']}: sequential analysis (its intervals hold only new points)"
    ]
    (setting,) = document["settings"]
    assert {c["name"]: (c["label"], c["verdict"]) for c in setting["canaries"]} == {
        ids["canary-healthy"]: ("healthy", "pass"),
        ids["canary-regressed"]: ("regression", "fail"),
    }
    assert setting["false_fail_rate"] == 0.0 and setting["missed_regression_rate"] == 0.0

    overrides = {"tolerance": 0.9, "confidence": 0.999, "effect_size.allowed_increase": 1.3}
    sets = [arg for key, value in overrides.items() for arg in ("--set", f"{key}={value}")]
    document = run_json(registry, "--database-url", url, *sets)
    config = kayenta_py.load_config(native_config(overrides))
    expected = {
        ids[scope]: kayenta_py.judge_pairs(config, stored_pairs(url, ids[scope])).verdict.value
        for scope in ("canary-healthy", "canary-regressed")
    }
    assert {c["name"]: c["verdict"] for c in document["settings"][0]["canaries"]} == expected

    code, out, err = run(registry, "--database-url", url, "--sweep", "tolerance=0.25,2", "--no-progress")
    assert code == 0, err
    assert out.count("setting: tolerance=") == 2 and "summary" in out
    assert "config each analysis' own" in out.splitlines()[0]
    assert out.splitlines()[1:3] == [
        "skipped 1:",
        f"  {ids['sequential']}: sequential analysis (its intervals hold only new points)",
    ]


def test_stored_analyses_with_a_labels_file_and_another_config(
    registry: Registry, store_url: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, ids = store_url
    labels = tmp_path / "labels.csv"
    labels.write_text(f"analysis,label\n{ids['canary-regressed']},healthy\n")
    document = run_json(registry, "--database-url", url, "--labels", labels)
    assert {c["name"]: c["label"] for c in document["settings"][0]["canaries"]} == {
        ids["canary-healthy"]: "healthy",
        ids["canary-regressed"]: "healthy",
    }
    assert document["settings"][0]["false_fail_rate"] == 0.5

    only_latency = tmp_path / "latency.yaml"
    only_latency.write_text(
        yaml.safe_dump({"name": "latency", "metrics": [{"name": "p99-latency", "kind": "latency"}]})
    )
    document = run_json(registry, "--database-url", url, "--config", only_latency)
    assert document["config"] == "latency"
    config = kayenta_py.load_config(only_latency)
    for canary in document["settings"][0]["canaries"]:
        pairs = [p for p in stored_pairs(url, canary["name"]) if p.name == "p99-latency"]
        assert canary["verdict"] == kayenta_py.judge_pairs(config, pairs).verdict.value

    labels.write_text("analysis,label\nno-such-analysis,healthy\n")
    code, _, err = run(registry, "--database-url", url, "--labels", labels)
    assert code == 2 and err.startswith(f"{labels}: no completed analysis 'no-such-analysis'")
