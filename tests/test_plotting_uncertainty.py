"""Uncertainty plots: the PIT histogram draws the densities of the PIT values, the interval plots draw the
bounds they are given; ax=, **kwargs and degenerate input are handled."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import clvforecast as cf
from clvforecast import plotting
from clvforecast.plotting import plot_customer_intervals, plot_pit, plot_total_intervals


@pytest.fixture(scope="module")
def ev(cdnow_cal: pd.DataFrame):
    return cf.evaluate_holdout(cdnow_cal, interval=0.9)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_exported():
    for name in ("plot_pit", "plot_customer_intervals", "plot_total_intervals"):
        assert name in plotting.__all__


def test_pit_bars_are_the_histogram_densities(ev):
    ax = plot_pit(ev, bins=5)
    heights = [p.get_height() for p in ax.patches if p.get_width() == pytest.approx(0.2)]
    pit = ev.customers["pit_purchases"].to_numpy()
    expected = np.histogram(pit, bins=5, range=(0, 1))[0] * 5 / len(pit)
    np.testing.assert_allclose(heights, expected)
    assert "90%" in ax.get_title()
    # the same from the values, into a given axes, with a matplotlib keyword
    _, given = plt.subplots()
    out = plot_pit(pit, bins=5, ax=given, color="red", band=0)
    assert out is given
    assert [p.get_height() for p in out.patches] == pytest.approx(list(expected))


def test_pit_of_uniform_values_lies_in_the_band():
    pit = (np.arange(1000) + 0.5) / 1000
    ax = plot_pit(pit, bins=10)
    assert [p.get_height() for p in ax.patches[:10]] == pytest.approx([1.0] * 10)


def test_pit_errors_and_degenerate_input(ev, cdnow_cal):
    with pytest.raises(ValueError, match="interval=0.9"):
        plot_pit(cf.evaluate_holdout(cdnow_cal))
    with pytest.raises(ValueError, match="bins"):
        plot_pit(ev, bins=0)
    ax = plot_pit(np.array([]))
    assert "No PIT values" in ax.texts[0].get_text()


def test_customer_intervals(ev, cdnow_cal):
    ax = plot_customer_intervals(ev.customers, column="bgnbd_purchases", top=5)
    top = ev.customers.sort_values("bgnbd_purchases", ascending=False).head(5)
    segs = ax.collections[0].get_segments()
    lows = sorted(s[0][0] for s in segs)
    assert lows == sorted(top["bgnbd_purchases_lower"].tolist())
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [str(i) for i in top.index]  # the highest at the top (y = 4)
    assert any(line.get_label() == "actual" for line in ax.get_lines())  # actuals found in the table
    fc = cf.predictive_clv(ev.model, ev.gamma_gamma, cdnow_cal, horizon="52W", interval=0.8)
    ax = plot_customer_intervals(fc, top=3)
    assert len(ax.collections[0].get_segments()) == 3
    with pytest.raises(ValueError, match="interval=0.9"):
        plot_customer_intervals(fc.drop(columns=["clv_lower"]))
    ax = plot_customer_intervals(fc.iloc[:0])
    assert "No customers" in ax.texts[0].get_text()


def test_total_intervals(ev, cdnow_cal):
    ax = plot_total_intervals(ev)
    t = ev.totals.loc["purchases"]
    (seg,) = ax.collections[0].get_segments()
    assert seg[0][0] == pytest.approx(t["lower"]) and seg[1][0] == pytest.approx(t["upper"])
    assert any("actual 1,882" in line.get_label() for line in ax.get_lines())
    tot = cf.forecast_totals(ev.model, ev.gamma_gamma, cdnow_cal, horizon="52W")
    ax = plot_total_intervals(tot, quantity="clv")
    assert "clv" in ax.get_title()
    ax = plot_total_intervals(tot, quantity="nope")
    assert "No total of nope" in ax.texts[0].get_text()
