"""Plots on degenerate data: constant values, one customer, no repeat buyers, every P(alive) near 1.

No axis may show an offset ("1e-8+1") and no panel may be empty: a plot with nothing to say holds a sentence
instead (checked through the offset text of every axis and :func:`clvforecast.plotting._robust.said`).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import clvforecast as cf
from clvforecast import plotting
from clvforecast.plotting._robust import distribution_problem, is_constant, said, surface_problem


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def offsets(ax) -> list[str]:
    ax.figure.canvas.draw()
    return [axis.get_offset_text().get_text() for a in ax.figure.axes for axis in (a.xaxis, a.yaxis)]


def test_p_alive_within_a_hair_of_one_is_a_sentence_not_an_offset_axis():
    rng = np.random.default_rng(1)
    p = pd.Series(1 - 1e-8 * rng.random(500), name="probability_alive")
    ax = plotting.plot_forecast_distribution(p, "probability_alive")
    assert said(ax) == "All 500 customers have P(alive) 100.0%: a histogram would be one bar."
    assert all(o == "" for o in offsets(ax))


def test_p_alive_spread_over_a_sliver_near_one():
    p = pd.Series(np.linspace(0.9995, 1.0, 50), name="probability_alive")
    ax = plotting.plot_forecast_distribution(p, "probability_alive")
    assert said(ax) == "All 50 customers have P(alive) between 100.0% and 100.0%: a histogram would be one bar." \
        or said(ax) == "All 50 customers have P(alive) 100.0%: a histogram would be one bar."


def test_p_alive_is_drawn_on_its_whole_scale():
    p = pd.Series(np.r_[np.full(90, 1.0), np.linspace(0.2, 0.9, 10)], name="probability_alive")
    ax = plotting.plot_forecast_distribution(p, "probability_alive")
    assert said(ax) is None and ax.get_xlim()[0] <= 0.0 and ax.get_xlim()[1] >= 1.0
    assert all(o == "" for o in offsets(ax))


@pytest.mark.parametrize(
    ("values", "sentence"),
    [
        ([], "No customer has a finite CLV: there is nothing to plot."),
        ([12.5], "There is one customer, with CLV 12.5: a histogram would be one bar."),
        ([7.0] * 30, "All 30 customers have CLV 7: a histogram would be one bar."),
    ],
)
def test_empty_one_customer_and_constant_values(values, sentence):
    assert distribution_problem(values, "clv") == sentence
    ax = plotting.plot_forecast_distribution(pd.Series(values, dtype=float, name="clv"), "clv")
    assert said(ax) == sentence


def test_values_close_together_far_from_zero_show_no_offset():
    """1000.001 .. 1000.01 would get a "+1e3" offset by default; they are plotted in full instead."""
    v = pd.Series(np.linspace(1000.001, 1000.01, 40), name="expected_purchases")
    ax = plotting.plot_forecast_distribution(v, "expected_purchases", log=False)
    assert said(ax) is None
    assert all(o == "" for o in offsets(ax))
    assert any("1000" in t.get_text() for t in ax.get_xticklabels())


def test_is_constant_thresholds():
    assert is_constant([1.0, 1.0 + 1e-9])
    assert not is_constant([1.0, 1.001])
    assert is_constant([0.9995, 1.0], probability=True) and not is_constant([0.99, 1.0], probability=True)
    assert is_constant([]) and is_constant([3.0])


def _rfm(frequency, recency, T):
    rfm = pd.DataFrame({"frequency": frequency, "recency": recency, "T": T, "monetary_value": 0.0},
                       index=pd.Index(range(1, len(frequency) + 1), name="customer_id"))
    rfm.attrs["time_unit"] = "W"
    return rfm


@pytest.fixture(scope="module")
def model(cdnow_cal):
    return cf.BetaGeo().fit(cdnow_cal)


def test_heatmap_without_repeat_buyers_is_a_sentence(model):
    rfm = _rfm([0, 0, 0], [0.0, 0.0, 0.0], [10.0, 20.0, 30.0])
    ax = plotting.plot_frequency_recency_heatmap(model, quantity="probability_alive", rfm=rfm)
    assert said(ax) == "No customer made a repeat purchase, so there is no frequency or recency to plot."


def test_heatmap_colorbar_has_no_offset(model, cdnow_cal):
    ax = plotting.plot_frequency_recency_heatmap(model, quantity="probability_alive", rfm=cdnow_cal)
    assert len(ax.figure.axes) == 2  # the map and its colour bar
    assert all(o == "" for o in offsets(ax))


def test_flat_surface_is_a_sentence():
    assert surface_problem(np.full((3, 4), 1 - 1e-9), "P(alive)") == (
        "P(alive) is 100.0% for every purchase history: the map would be one flat colour.")
    assert surface_problem(np.array([[0.1, 0.9]]), "P(alive)") is None


def _comparison(pred, run):
    idx = pd.Index(range(1, len(pred) + 1), name="customer_id")
    hist = pd.DataFrame({"avg_formula_spend": 1.0, "run_rate_spend": np.asarray(run, float)}, index=idx)
    return cf.compare_clv(pd.Series(np.asarray(pred, float), index=idx), hist)


def test_lorenz_with_all_zero_values_and_with_one_customer():
    zero = pd.Series([0.0, 0.0, 0.0], index=[1, 2, 3], name="clv")
    assert said(plotting.plot_lorenz(zero)) == "Every value is zero: a Pareto curve has nothing to show."
    one = pd.Series([5.0], index=[1], name="clv")
    assert said(plotting.plot_lorenz(one)) == "There is one customer: a Pareto curve needs several."


def test_scatter_without_repeat_buyers_is_a_sentence():
    comp = _comparison([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    sentence = said(plotting.plot_predictive_vs_historical(comp))
    assert sentence is not None and "nobody bought twice" in sentence


def test_tiers_of_all_zero_values_is_a_sentence():
    comp = _comparison([0.0] * 4, [0.0] * 4)
    assert said(plotting.plot_tiers(comp)) == (
        "Every customer's predicted value is zero: no tier holds a share of it.")


def test_one_frequency_bucket_is_a_sentence():
    ce = pd.DataFrame({"customers": [5, 0, 0], "actual_purchases": [0.2, np.nan, np.nan],
                       "bgnbd_purchases": [0.1, np.nan, np.nan]}, index=pd.Index(["0", "1", "2+"], name="frequency"))
    sentence = said(plotting.plot_conditional_expectations(ce))
    assert sentence is not None and sentence.startswith("Every customer made 0 repeat purchase(s)")
    pt = pd.DataFrame({"actual": [5, 0, 0], "expected": [4.9, 0.1, 0.0]}, index=["0", "1", "2+"])
    assert said(plotting.plot_period_transactions(pt)).startswith("Every customer made 0 repeat purchase(s)")


def test_gains_without_holdout_spend_is_a_sentence():
    customers = pd.DataFrame({"actual_spend": [0.0, 0.0, 0.0], "bgnbd_spend": [1.0, 2.0, 3.0]})
    assert said(plotting.plot_gains(customers)) == "No customer has any holdout spend: there is nothing to capture."


def test_ordinary_plots_have_no_offset_either(cdnow_tx):
    ev = cf.evaluate_holdout(cdnow_tx, calibration_end="1997-09-30", observation_end="1998-06-30")
    for ax in (plotting.plot_conditional_expectations(ev), plotting.plot_period_transactions(ev),
               plotting.plot_gains(ev), plotting.plot_tracking(ev, dates=False)):
        assert said(ax) is None and all(o == "" for o in offsets(ax))
