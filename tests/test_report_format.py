"""Numbers and words for a business reader (clvforecast.report.format), checked against hand-written strings."""

from __future__ import annotations

import math

import pytest

from clvforecast.report.format import (
    Formatter,
    adjective,
    check_currency,
    duration_words,
    horizon_words,
    label,
    money_decimals,
)


@pytest.mark.parametrize(
    ("currency", "value", "shown"),
    [
        ("$", 1234.567, "$1,235"),  # 0 decimals from 1,000 up
        ("$", 999.994, "$999.99"),  # 2 below
        ("$", -3.2, "-$3.20"),
        ("$", -0.001, "$0.00"),  # no "-$0.00"
        ("£", 68613.2, "£68,613"),
        ("GBP", 1234.0, "GBP\u00a01,234"),  # a code takes a (non-breaking) space
        ("kr", 50.0, "kr\u00a050.00"),
        (None, 72072.6, "72,073"),  # no currency: the amount alone
        ("$", math.nan, "n/a"),
        ("$", None, "n/a"),
    ],
)
def test_money(currency, value, shown):
    assert Formatter(currency).money(value) == shown


def test_money_decimals_of_a_column_and_cells():
    assert money_decimals([12.5, 999.0]) == 2 and money_decimals([12.5, 1000.0]) == 0
    assert money_decimals([None, math.nan]) == 2
    f = Formatter("$")
    assert f.cell(1234.5, "money2") == "$1,234.50" and f.cell(12.5, "money0") == "$12"
    assert f.cell(0.256, "pct") == "25.6%" and f.cell(-0.121, "signed_pct") == "-12.1%"
    assert f.cell(0.557, "signed_pct") == "+55.7%"
    assert f.cell(2357, "int") == "2,357" and f.cell(1882.0, "int") == "1,882"
    assert f.cell(1901, "id") == "1901"  # ids are not numbers to a reader
    assert f.cell(0.2425945, "param") == "0.243" and f.cell(5.27e-08, "param") == "5.27e-08"
    assert f.cell(22782.029, "param") == "22,782.029" and f.cell(2.01e8, "param") == "2.01e+08"
    assert f.cell(None, "num2") == "n/a" and f.cell("Q1", "text") == "Q1"


def test_check_currency():
    assert check_currency(" $ ") == "$" and check_currency("GBP") == "GBP" and check_currency(None) is None
    for bad in ("", "US dollars", "12", 5):
        with pytest.raises(ValueError, match="currency must be a symbol"):
            check_currency(bad)


def test_horizons_and_durations_in_words():
    assert horizon_words("52W", "W") == "52 weeks"
    assert horizon_words("12M", "W") == "12 months"  # the words it was given in, not 52.18 weeks
    assert horizon_words(39, "W") == "39 weeks" and horizon_words("1Y", "D") == "1 year"
    assert duration_words(273) == "39 weeks"  # 1997-09-30 .. 1998-06-30
    assert duration_words(181) == "6 months"  # within two days of 6 x 30.44
    assert duration_words(162) == "162 days (about 5.3 months)"
    assert duration_words(10) == "10 days"
    assert adjective("39 weeks") == "39-week" and adjective("162 days (about 5.3 months)") == "162-day"


def test_labels_are_words():
    assert label("probability_alive") == "P(alive)"
    assert label("clv", disc="discounted") == "CLV (discounted)"
    assert label("silence", unit="weeks") == "Silent for (weeks)"
    assert label("clv_lower", level="80%") == "CLV, low end of 80% range"
    assert label("holdout_mae") == "Holdout mae"  # an unknown key still reads as words
