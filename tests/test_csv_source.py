"""The CSV metrics source: real files written to tmp_path, parsed for real."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

import kayenta_py
from kayenta_py import InputError, MetricConfig, MetricSet
from metrics_sources import CsvSource, read_metrics_csv

LATENCY_CONFIG = {"name": "t", "metrics": [{"name": "latency", "kind": "latency"}]}
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC).timestamp()


def write(tmp_path: Path, name: str, text: str, *, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def metric(name: str) -> MetricConfig:
    config = kayenta_py.load_config({"name": "t", "metrics": [{"name": name, "kind": "latency"}]})
    return config.metric(name)


def only(sets: dict[str, list[MetricSet]], name: str) -> MetricSet:
    assert len(sets[name]) == 1
    return sets[name][0]


def values(series: MetricSet) -> list[float]:
    return [float(v) for v in series.values]


def stamps(series: MetricSet) -> list[float]:
    assert series.timestamps is not None
    return [float(t) for t in series.timestamps]


def check_error(path: Path, line: int, *fragments: str) -> str:
    """Assert that reading ``path`` fails naming the file, ``line`` and every fragment."""
    with pytest.raises(InputError) as info:
        read_metrics_csv(path)
    message = str(info.value)
    assert f"{path.name} line {line}:" in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- wide format ------------------------------------------------------------------------


def test_wide_format_one_series_per_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "wide.csv",
        "timestamp,latency,errors\n"
        "2026-11-26T09:00:00Z,0.5,1\n"
        "2026-11-26T09:01:00Z,0.25,2\n"
        "2026-11-26T09:02:00Z,1e-3,3\n",
    )
    sets = read_metrics_csv(path)
    assert list(sets) == ["latency", "errors"]
    latency = only(sets, "latency")
    assert latency.name == "latency"
    assert dict(latency.tags) == {}
    assert values(latency) == [0.5, 0.25, 0.001]
    assert stamps(latency) == [T0, T0 + 60, T0 + 120]
    assert values(only(sets, "errors")) == [1.0, 2.0, 3.0]
    assert latency.values.dtype == np.float64
    assert not latency.values.flags.writeable


def test_wide_missing_and_infinite_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "wide.csv",
        "timestamp,m\n0,\n1,NaN\n2,nan\n3,+Inf\n4,-Inf\n5,Inf\n6, 7.5 \n",
    )
    got = values(only(read_metrics_csv(path), "m"))
    assert all(math.isnan(v) for v in got[:3])
    assert got[3:6] == [math.inf, -math.inf, math.inf]
    assert got[6] == 7.5


def test_header_names_are_stripped_and_column_order_is_free(tmp_path: Path) -> None:
    path = write(tmp_path, "wide.csv", " latency , timestamp \n1.5,100\n2.5,200\n")
    latency = only(read_metrics_csv(path), "latency")
    assert values(latency) == [1.5, 2.5]
    assert stamps(latency) == [100.0, 200.0]


def test_header_only_wide_file_gives_empty_series(tmp_path: Path) -> None:
    path = write(tmp_path, "wide.csv", "timestamp,latency\n")
    latency = only(read_metrics_csv(path), "latency")
    assert len(latency) == 0


def test_blank_lines_are_skipped_and_do_not_shift_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "b.csv", "timestamp,m\n\n1,1\n\n2,2\n,\n3,oops\n")
    check_error(path, 7, "column 'm'", "'oops' is not a number")
    path.write_text("timestamp,m\n\n1,1\n\n2,2\n,\n")
    assert values(only(read_metrics_csv(path), "m")) == [1.0, 2.0]


def test_crlf_line_endings(tmp_path: Path) -> None:
    path = write(tmp_path, "crlf.csv", "timestamp,m\r\n1,1\r\n2,2\r\n3,x\r\n")
    check_error(path, 4, "'x' is not a number")


# --- timestamps -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26T09:00:00Z", T0),
        ("2026-11-26T09:00:00+00:00", T0),
        ("2026-11-26T10:30:00+01:30", T0),
        ("2026-11-26T04:00:00-05:00", T0),
        ("2026-11-26 09:00:00", T0),  # naive: UTC
        ("2026-11-26T09:00:00", T0),
        ("2026-11-26T09:00:00.250Z", T0 + 0.25),
        (str(int(T0)), T0),
        (f"{T0 + 0.5}", T0 + 0.5),
        ("0", 0.0),
    ],
)
def test_timestamp_formats(tmp_path: Path, text: str, expected: float) -> None:
    path = write(tmp_path, "t.csv", f"timestamp,m\n{text},1\n")
    assert stamps(only(read_metrics_csv(path), "m")) == [pytest.approx(expected, abs=1e-6)]


def test_series_are_sorted_by_time_stably_keeping_duplicates(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.csv",
        "timestamp,m\n"
        "2026-11-26T09:02:00Z,3\n"
        "2026-11-26T09:00:00Z,1\n"
        f"{int(T0) + 60},2\n"
        "2026-11-26T09:02:00+00:00,4\n"
        "2026-11-26 09:01:00,5\n",
    )
    series = only(read_metrics_csv(path), "m")
    assert stamps(series) == [T0, T0 + 60, T0 + 60, T0 + 120, T0 + 120]
    assert values(series) == [1.0, 2.0, 5.0, 3.0, 4.0]


# --- long format ------------------------------------------------------------------------


def test_long_format_tags_give_one_series_per_tag_set(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "long.csv",
        "timestamp,metric,value,region,pod\n"
        "20,latency,0.3,us,a\n"
        "10,latency,0.1,us,a\n"
        "10,latency,0.2,eu,b\n"
        "10,errors,5,us,a\n"
        "30,latency,0.4,us,a\n"
        "20,latency,,eu,b\n"
        "10,latency,0.9,eu,\n",
    )
    sets = read_metrics_csv(path)
    assert list(sets) == ["latency", "errors"]
    latency = sets["latency"]
    assert [dict(s.tags) for s in latency] == [
        {"region": "us", "pod": "a"},
        {"region": "eu", "pod": "b"},
        {"region": "eu", "pod": ""},  # an empty tag cell is kept as an empty value
    ]
    assert values(latency[0]) == [0.1, 0.3, 0.4]
    assert stamps(latency[0]) == [10.0, 20.0, 30.0]
    assert values(latency[1])[0] == 0.2
    assert math.isnan(values(latency[1])[1])
    assert values(latency[2]) == [0.9]
    errors = only(sets, "errors")
    assert dict(errors.tags) == {"region": "us", "pod": "a"}
    assert values(errors) == [5.0]


def test_long_format_without_tags(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "long.csv",
        "metric,timestamp,value\nlatency,2,-Inf\nlatency,1,2\ncpu,1,NaN\n",
    )
    sets = read_metrics_csv(path)
    assert values(only(sets, "latency")) == [2.0, -math.inf]
    assert dict(only(sets, "latency").tags) == {}
    assert math.isnan(values(only(sets, "cpu"))[0])


def test_metric_without_value_column_is_wide(tmp_path: Path) -> None:
    path = write(tmp_path, "w.csv", "timestamp,metric\n1,2\n")
    assert values(only(read_metrics_csv(path), "metric")) == [2.0]


def test_utf8_bom_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "bom.csv", "\ufefftimestamp,m\n1,1\n2,x\n", encoding="utf-8")
    check_error(path, 3, "'x' is not a number")
    path.write_bytes("\ufefftimestamp,metric,value\n1,m,4\n".encode())
    assert values(only(read_metrics_csv(path), "m")) == [4.0]


# --- errors -----------------------------------------------------------------------------


def test_bad_number_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "baseline.csv",
        "timestamp,errors,latency\n" + "".join(f"{i},0,1\n" for i in range(5)) + "5,0,abc\n",
    )
    message = check_error(path, 7, "column 'latency'", "'abc' is not a number")
    assert message.endswith("baseline.csv line 7: column 'latency': 'abc' is not a number")


def test_bad_long_value(tmp_path: Path) -> None:
    path = write(tmp_path, "long.csv", "timestamp,metric,value\n1,m,1\n2,m,1_000\n")
    check_error(path, 3, "column 'value'", "'1_000' is not a number")


@pytest.mark.parametrize("stamp", ["yesterday", "2026-13-01T00:00:00Z", "", "inf", "nan"])
def test_bad_timestamp(tmp_path: Path, stamp: str) -> None:
    path = write(tmp_path, "ts.csv", f"timestamp,m\n1,1\n{stamp},2\n")
    check_error(path, 3, "'timestamp'")


def test_empty_file(tmp_path: Path) -> None:
    check_error(write(tmp_path, "empty.csv", ""), 1, "empty")
    check_error(write(tmp_path, "blank.csv", "\n\n"), 1, "empty")
    check_error(write(tmp_path, "bom-only.csv", "\ufeff"), 1, "empty")


def test_missing_timestamp_column(tmp_path: Path) -> None:
    check_error(write(tmp_path, "nots.csv", "time,m\n1,2\n"), 1, "'timestamp'", "'time'")


def test_semicolon_separated_file_gets_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "semi.csv", "timestamp;m\n1;2\n")
    check_error(path, 1, "comma-separated")


def test_header_without_metrics(tmp_path: Path) -> None:
    check_error(write(tmp_path, "alone.csv", "timestamp\n1\n"), 1, "no metric columns")


def test_duplicate_header_names_are_named(tmp_path: Path) -> None:
    path = write(tmp_path, "dup.csv", "timestamp,a,b, a,b,c\n1,2,3,4,5,6\n")
    message = check_error(path, 1, "duplicate")
    assert "'a'" in message
    assert "'b'" in message
    assert "'c'" not in message


def test_unnamed_header_column(tmp_path: Path) -> None:
    check_error(write(tmp_path, "trail.csv", "timestamp,a,\n1,2,\n"), 1, "column(s) 3")


@pytest.mark.parametrize("row", ["4,5,6", "4"])
def test_row_with_wrong_field_count(tmp_path: Path, row: str) -> None:
    path = write(tmp_path, "short.csv", f"timestamp,m\n1,2\n2,3\n{row}\n")
    check_error(path, 4, "header (line 1) has 2")


def test_wrong_field_count_after_a_multiline_quoted_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "quoted.csv",
        'timestamp,metric,value,note\n1,m,2,"two\nlines"\n2,m,3\n',
    )
    check_error(path, 4, "3 field(s)")
    path.write_text('timestamp,metric,value,note\n1,m,2,ok\n2,m,x,"two\nlines"\n')
    check_error(path, 3, "'x' is not a number")  # the line where the record starts


def test_long_row_with_empty_metric_name(tmp_path: Path) -> None:
    path = write(tmp_path, "long.csv", "timestamp,metric,value,pod\n1,m,1,a\n2, ,1,a\n")
    check_error(path, 3, "'metric'", "no metric name")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"timestamp,m\n1,1\n2,caf\xe9\n")
    check_error(path, 3, "UTF-8")


def test_missing_file_names_path_and_reason(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.csv"
    with pytest.raises(InputError, match=r"nowhere\.csv.*No such file"):
        read_metrics_csv(path)
    with pytest.raises(InputError, match=r"cannot read"):
        read_metrics_csv(tmp_path)  # a directory


# --- CsvSource --------------------------------------------------------------------------


def test_source_scopes_fetch_and_missing_metric(tmp_path: Path) -> None:
    baseline = write(tmp_path, "b.csv", "timestamp,latency,errors\n1,1,0\n2,2,0\n")
    canary = write(tmp_path, "k.csv", "timestamp,latency\n1,3\n2,4\n")
    source = CsvSource(files={"baseline": baseline, "canary": str(canary)})
    assert CsvSource.name == "csv"
    assert source.scopes() == ["baseline", "canary"]
    (got,) = source.fetch(metric("latency"), "canary")
    assert values(got) == [3.0, 4.0]
    (errors,) = source.fetch(metric("errors"), "baseline")
    assert values(errors) == [0.0, 0.0]
    assert source.fetch(metric("errors"), "canary") == []


def test_source_unknown_scope_names_it_and_known_scopes(tmp_path: Path) -> None:
    source = CsvSource(files={"baseline": write(tmp_path, "b.csv", "timestamp,m\n1,1\n")})
    with pytest.raises(InputError, match=r"'experiment'.*'baseline'"):
        source.fetch(metric("m"), "experiment")


def test_source_reads_lazily_once_and_caches(tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    source = CsvSource(files={"canary": path})  # does not exist yet: nothing read here
    path.write_text("timestamp,m\n1,1\n")
    assert values(source.fetch(metric("m"), "canary")[0]) == [1.0]
    path.write_text("timestamp,m\n1,999\n")
    assert values(source.fetch(metric("m"), "canary")[0]) == [1.0]


def test_source_errors_are_input_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.csv", "timestamp,m\n1,1\n2,x\n")
    source = CsvSource(files={"baseline": path, "canary": tmp_path / "absent.csv"})
    with pytest.raises(InputError, match=r"bad\.csv line 3"):
        source.fetch(metric("m"), "baseline")
    with pytest.raises(InputError, match=r"absent\.csv"):
        source.fetch(metric("m"), "canary")


def test_source_time_window(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "long.csv",
        "timestamp,metric,value,pod\n"
        + "".join(f"{t},m,{t * 10},a\n" for t in (5, 1, 3, 2, 4))
        + "1,m,7,b\n",
    )
    source = CsvSource(files={"canary": path})
    a, b = source.fetch(metric("m"), "canary", start=2, end=4)
    assert dict(a.tags) == {"pod": "a"}
    assert stamps(a) == [2.0, 3.0]  # start inclusive, end exclusive
    assert values(a) == [20.0, 30.0]
    assert dict(b.tags) == {"pod": "b"}
    assert len(b) == 0  # tag set kept, no points in the window
    (a,) = [s for s in source.fetch(metric("m"), "canary", start=4) if s.tags["pod"] == "a"]
    assert stamps(a) == [4.0, 5.0]
    (a,) = [s for s in source.fetch(metric("m"), "canary", end=2, step=60) if s.tags["pod"] == "a"]
    assert stamps(a) == [1.0]
    with pytest.raises(InputError, match="after"):
        source.fetch(metric("m"), "canary", start=5, end=1)


def test_source_time_window_with_iso_times(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "w.csv",
        "timestamp,m\n" + "".join(f"2026-11-26T09:{minute:02d}:00Z,{minute}\n" for minute in range(10)),
    )
    source = CsvSource(files={"baseline": path})
    (series,) = source.fetch(metric("m"), "baseline", start=T0 + 120, end=T0 + 300)
    assert values(series) == [2.0, 3.0, 4.0]


# --- end to end through the public API --------------------------------------------------


def write_wide(path: Path, samples: np.ndarray) -> Path:
    lines = ["timestamp,latency"]
    lines += [f"{int(T0) + 60 * i},{value!r}" for i, value in enumerate(samples.tolist())]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_end_to_end_regressed_canary_fails(tmp_path: Path) -> None:
    config = kayenta_py.load_config(LATENCY_CONFIG)
    rng = np.random.default_rng(20261126)
    base = rng.lognormal(mean=-3.0, sigma=0.3, size=60)
    canary = rng.lognormal(mean=-3.0, sigma=0.3, size=60) * 2.0
    baseline_sets = read_metrics_csv(write_wide(tmp_path / "baseline.csv", base))
    canary_sets = read_metrics_csv(write_wide(tmp_path / "canary.csv", canary))
    assert len(only(canary_sets, "latency")) == 60
    result = kayenta_py.judge(config, baseline_sets, canary_sets)
    assert result.metric("latency").classification.value == "High"
    assert result.verdict.value == "fail"


def test_end_to_end_similar_canary_passes(tmp_path: Path) -> None:
    config = kayenta_py.load_config(LATENCY_CONFIG)
    rng = np.random.default_rng(7)
    base = rng.lognormal(mean=-3.0, sigma=0.3, size=60)
    canary = rng.lognormal(mean=-3.0, sigma=0.3, size=60)
    result = kayenta_py.judge(
        config,
        read_metrics_csv(write_wide(tmp_path / "baseline.csv", base)),
        read_metrics_csv(write_wide(tmp_path / "canary.csv", canary)),
    )
    assert result.metric("latency").classification.value == "Pass"
    assert result.verdict.value == "pass"


def test_end_to_end_series_missing_on_one_side_is_nodata(tmp_path: Path) -> None:
    config = kayenta_py.load_config(LATENCY_CONFIG)
    rng = np.random.default_rng(3)

    def rows(region: str, samples: np.ndarray) -> str:
        return "".join(f"{int(T0) + 60 * i},latency,{v!r},{region}\n" for i, v in enumerate(samples.tolist()))

    header = "timestamp,metric,value,region\n"
    baseline = write(
        tmp_path,
        "baseline.csv",
        header + rows("us", rng.lognormal(-3, 0.3, 60)) + rows("eu", rng.lognormal(-3, 0.3, 60)),
    )
    canary = write(tmp_path, "canary.csv", header + rows("us", rng.lognormal(-3, 0.3, 60)))
    source = CsvSource(files={"baseline": baseline, "canary": canary})
    assert len(source.fetch(metric("latency"), "baseline")) == 2
    assert [dict(s.tags) for s in source.fetch(metric("latency"), "canary")] == [{"region": "us"}]

    result = kayenta_py.judge(config, read_metrics_csv(baseline), read_metrics_csv(canary))
    by_region = {r.tags["region"]: r for r in result.metrics}
    assert set(by_region) == {"us", "eu"}
    assert by_region["eu"].classification.value == "NodataFailMetric"  # a native metric must have data
    assert by_region["eu"].baseline.count == 60
    assert by_region["eu"].canary.count == 0
    assert by_region["us"].classification.value == "Pass"
