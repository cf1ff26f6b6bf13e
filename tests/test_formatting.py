"""The one home of numbers and times (kayenta_py.model.formatting): what every door prints and reads."""

from __future__ import annotations

import math

import pytest

from kayenta_py.model.formatting import epoch_of, format_number, format_score, format_utc, parse_rfc3339


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (1.23456, "1.235"),
        (-0.5, "-0.5"),
        (12345.6, "1.235e+04"),
        (123456.0, "1.235e+05"),
        (0.0001234, "1.234e-04"),
        (None, "n/a"),
        (math.nan, "n/a"),
        (math.inf, "n/a"),
        (True, "n/a"),
        ("3", "n/a"),
    ],
)
def test_format_number(value: object, text: str) -> None:
    assert format_number(value) == text


def test_format_score_has_two_decimals_everywhere() -> None:
    assert format_score(87.5) == "87.50"
    assert format_score(74.996) == "75.00"
    assert format_score(None) == "n/a"
    assert format_score(math.nan) == "n/a"


def test_times_round_trip_and_naive_is_utc() -> None:
    epoch = parse_rfc3339("2026-11-26T09:00:00Z")
    assert epoch == parse_rfc3339("2026-11-26T09:00:00") == parse_rfc3339("2026-11-26T10:00:00+01:00")
    assert format_utc(epoch) == "2026-11-26 09:00:00 UTC"
    assert format_utc(None) == "n/a"
    from datetime import datetime

    assert epoch_of(datetime(2026, 11, 26, 9, 0, 0)) == epoch


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01T00:00:00Z", ""])
def test_parse_rfc3339_rejects_what_is_not_a_time(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_rfc3339(text)
