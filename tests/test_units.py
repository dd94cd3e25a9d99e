"""Time units, horizons and discount rates, against hand-computed values."""

from __future__ import annotations

import math

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

from clvforecast.units import DAYS_PER_UNIT, check_time_unit, convert, days_per, parse_horizon, periodic_rate


def test_days_per_unit() -> None:
    assert DAYS_PER_UNIT == {"D": 1.0, "W": 7.0, "M": 30.4375, "Y": 365.25}
    assert [days_per(u) for u in ("d", "W", "m", "Y")] == [1.0, 7.0, 30.4375, 365.25]


def test_check_time_unit() -> None:
    assert check_time_unit("w") == "W"
    for bad in ("Q", "weeks", "", None, 7):
        with pytest.raises(ValueError, match=r"time_unit must be one of D, W, M, Y .*got"):
            check_time_unit(bad)  # type: ignore[arg-type]


def test_convert() -> None:
    assert convert(12, "M", "W") == pytest.approx(365.25 / 7, rel=1e-15)  # 52.18 weeks
    assert convert(1, "Y", "D") == 365.25
    assert convert(39, "W", "D") == 273.0
    assert convert(2, "W", "W") == 2.0


@pytest.mark.parametrize(
    ("horizon", "unit", "expected"),
    [
        ("52W", "W", 52.0),
        ("12M", "W", 365.25 / 7),
        ("365D", "Y", 365 / 365.25),
        ("1Y", "D", 365.25),
        ("39w", "D", 273.0),
        (" 6 m ", "M", 6.0),
        (".5Y", "M", 6.0),
        ("1.5W", "D", 10.5),
        (52, "W", 52.0),
        (0, "D", 0.0),
        (2.5, "M", 2.5),
        (np.int64(3), "W", 3.0),
        (np.float64(0.25), "Y", 0.25),
    ],
)
def test_parse_horizon(horizon: object, unit: str, expected: float) -> None:
    got = parse_horizon(horizon, unit)  # type: ignore[arg-type]
    assert isinstance(got, float) and got == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("bad", ["52", "W52", "52 weeks", "-3W", "1e3D", "", "52Q"])
def test_parse_horizon_rejects_unclear_strings(bad: str) -> None:
    with pytest.raises(ValueError, match=r"is not understood; give a number in the table's unit \(W\)"):
        parse_horizon(bad, "W")


def test_parse_horizon_rejects_negative_infinite_and_non_numbers() -> None:
    for bad in (-1, math.inf, math.nan):
        with pytest.raises(ValueError, match="horizon must be a finite, non-negative duration"):
            parse_horizon(bad, "W")
    for bad in (True, None, [52], b"52W"):
        with pytest.raises(TypeError, match="horizon must be a number or a string like '52W'"):
            parse_horizon(bad, "W")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="time_unit must be one of"):
        parse_horizon("52W", "weeks")


def test_periodic_rate_by_hand() -> None:
    assert periodic_rate(0.10, "M") == pytest.approx(1.10 ** (1 / 12) - 1, rel=1e-14)  # 0.797% a month
    assert periodic_rate(0.10, "M") == pytest.approx(0.0079741404, abs=1e-10)
    assert periodic_rate(0.10, "Y") == pytest.approx(0.10, rel=1e-14)
    assert periodic_rate(0.10, "W") == pytest.approx(1.10 ** (7 / 365.25) - 1, rel=1e-14)
    assert periodic_rate(0.0, "D") == 0.0
    assert periodic_rate(-0.5, "Y") == pytest.approx(-0.5)  # shrinking money is allowed, above -100%


def test_periodic_rate_rejects_bad_rates() -> None:
    for bad in (-1.0, -2.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="discount_rate must be an annual rate greater than -1"):
            periodic_rate(bad, "M")
    with pytest.raises(TypeError, match="discount_rate must be a number"):
        periodic_rate("10%", "M")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="time_unit must be one of"):
        periodic_rate(0.1, "Q")


@given(rate=st.floats(-0.9, 5.0), unit=st.sampled_from(["D", "W", "M", "Y"]))
def test_periodic_rates_compound_back_to_the_annual_rate(rate: float, unit: str) -> None:
    periods_per_year = 365.25 / days_per(unit)
    assert (1 + periodic_rate(rate, unit)) ** periods_per_year == pytest.approx(1 + rate, rel=1e-9)


@given(
    value=st.floats(0, 1e6, allow_nan=False),
    a=st.sampled_from(["D", "W", "M", "Y"]),
    b=st.sampled_from(["D", "W", "M", "Y"]),
)
def test_conversions_round_trip_and_agree_with_horizon_strings(value: float, a: str, b: str) -> None:
    assert convert(convert(value, a, b), b, a) == pytest.approx(value, rel=1e-12, abs=1e-12)
    text = f"{value:.6f}"  # horizon strings are plain decimals
    assert parse_horizon(f"{text}{a}", b) == pytest.approx(convert(float(text), a, b), rel=1e-12, abs=1e-12)


def test_describe_horizon_in_words() -> None:
    from clvforecast.units import describe_horizon

    assert describe_horizon("52W", "W") == "52 weeks"
    assert describe_horizon(39, "W") == "39 weeks"
    assert describe_horizon("12M", "W") == "12 months (52.18 weeks)"  # 365.25 / 7 = 52.18 weeks in a year
    assert describe_horizon("1Y", "M") == "1 year (12 months)"
