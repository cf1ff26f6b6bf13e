"""The ``kayenta-py`` command, run as a real process: output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kayenta_py.examples import EXAMPLES_DIR
from kayenta_py.examples.generate import write_examples

CONFIG = EXAMPLES_DIR / "checkout.yaml"
BASELINE = EXAMPLES_DIR / "baseline.csv"


def kayenta(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the installed console script (beside this interpreter)."""
    script = Path(sys.executable).parent / "kayenta-py"
    return subprocess.run(
        [str(script), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def test_regressed_canary_fails_naming_the_regressed_latency() -> None:
    run = kayenta(
        "judge", "--config", CONFIG, "--baseline", BASELINE, "--canary", EXAMPLES_DIR / "canary-regressed.csv"
    )
    assert run.returncode == 1, run.stderr
    lines = {line.split()[0]: line for line in run.stdout.splitlines() if line.strip()}
    assert lines["p99-latency"].split()[2] == "High"
    assert "verdict: FAIL" in run.stdout
    assert "Traceback" not in run.stderr


def test_healthy_canary_passes() -> None:
    run = kayenta(
        "judge", "--config", CONFIG, "--baseline", BASELINE, "--canary", EXAMPLES_DIR / "canary-healthy.csv"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "verdict: PASS" in run.stdout


def test_json_output_is_to_dict() -> None:
    run = kayenta(
        "judge",
        "--config",
        CONFIG,
        "--baseline",
        BASELINE,
        "--canary",
        EXAMPLES_DIR / "canary-regressed.csv",
        "--format",
        "json",
    )
    assert run.returncode == 1
    document = json.loads(run.stdout)
    assert document["verdict"] == "fail" and document["score"] == 0.0
    p99 = next(m for m in document["metrics"] if m["name"] == "p99-latency")
    assert p99["classification"] == "High"
    assert p99["ci"][0] > 0 and p99["estimate"] > 0
    assert set(p99["baseline"]) == {"min", "max", "mean", "std", "count"}
    assert p99["baseline"]["count"] == 60


def test_bundled_examples_are_what_the_generator_writes(tmp_path: Path) -> None:
    for path in write_examples(tmp_path):
        assert path.read_bytes() == (EXAMPLES_DIR / path.name).read_bytes(), path.name


def test_bad_csv_row_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    canary = tmp_path / "canary.csv"
    lines = (EXAMPLES_DIR / "canary-healthy.csv").read_text().splitlines()
    lines[6] = lines[6].replace(",", ",oops,", 1)  # line 7 gets an extra field
    canary.write_text("\n".join(lines) + "\n")
    run = kayenta("judge", "--config", CONFIG, "--baseline", BASELINE, "--canary", canary)
    assert run.returncode == 2
    assert "canary.csv" in run.stderr and "line 7" in run.stderr
    assert "Traceback" not in run.stderr


def test_misspelled_config_key_exits_2_naming_its_path(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.read_text().replace("allowed_increase: 1.1", "alowed_increase: 1.1"))
    run = kayenta(
        "judge", "--config", config, "--baseline", BASELINE, "--canary", EXAMPLES_DIR / "canary-healthy.csv"
    )
    assert run.returncode == 2
    assert (
        "metrics[2].judge.effect_size.alowed_increase: unknown key; did you mean allowed_increase?"
        in run.stderr
    )


def test_marginal_exits_3(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "name: m\nmetrics:\n  - {name: p50-latency, kind: latency}\n  - {name: p99-latency, kind: latency}\n"
    )
    run = kayenta(
        "judge",
        "--config",
        config,
        "--baseline",
        BASELINE,
        "--canary",
        EXAMPLES_DIR / "canary-regressed.csv",
        "--pass",
        "90",
        "--marginal",
        "40",
    )
    assert run.returncode == 3, run.stdout
    assert "score: 50.00" in run.stdout and "verdict: MARGINAL" in run.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pass", "101"], "--pass: 101 is not between 0 and 100"),
        (["--pass", "60", "--marginal", "70"], "--marginal: 70 is above --pass (60)"),
    ],
)
def test_bad_thresholds_exit_2(args: list[str], message: str) -> None:
    run = kayenta(
        "judge",
        "--config",
        CONFIG,
        "--baseline",
        BASELINE,
        "--canary",
        EXAMPLES_DIR / "canary-healthy.csv",
        *args,
    )
    assert run.returncode == 2
    assert message in run.stderr


def test_missing_file_and_usage_errors_exit_2(tmp_path: Path) -> None:
    run = kayenta(
        "judge",
        "--config",
        CONFIG,
        "--baseline",
        tmp_path / "nope.csv",
        "--canary",
        EXAMPLES_DIR / "canary-healthy.csv",
    )
    assert run.returncode == 2 and "nope.csv" in run.stderr and "Traceback" not in run.stderr
    assert kayenta("judge", "--config", CONFIG).returncode == 2
    assert kayenta("frobnicate").returncode == 2


def test_validate_and_plugins() -> None:
    run = kayenta("validate", "--config", CONFIG)
    assert run.returncode == 0
    assert "valid native config 'checkout' with 5 metrics" in run.stdout
    assert "error-ratio: kind errors, groups errors, direction increase, critical true" in run.stdout
    run = kayenta("plugins")
    assert "mann-whitney" in run.stdout and "threshold" in run.stdout and "csv" in run.stdout


def test_backtest_command_prints_a_confusion_table(tmp_path: Path) -> None:
    from kayenta_py import generate_labelled_canaries

    generate_labelled_canaries(tmp_path / "canaries", count=6, seed=1)
    run = kayenta("backtest", "--canaries", tmp_path / "canaries", "--config", CONFIG, "--no-progress")
    assert run.returncode == 0, run.stderr
    assert "labelled regression" in run.stdout and "false-fail rate" in run.stdout
    bad = kayenta("backtest", "--canaries", tmp_path / "nope", "--config", CONFIG)
    assert bad.returncode == 2 and "nope" in bad.stderr
