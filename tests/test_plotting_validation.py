"""Validation plots: each returns its Axes, draws what the table holds, honours ax= and **kwargs."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import QuadMesh

import clvforecast.plotting as plotting
from clvforecast.evaluation import HoldoutEvaluation, evaluate_holdout, gains_curve
from clvforecast.plotting import (
    plot_conditional_expectations,
    plot_frequency_recency_heatmap,
    plot_gains,
    plot_period_transactions,
    plot_tracking,
)


@pytest.fixture(scope="module")
def result(cdnow_tx: pd.DataFrame) -> HoldoutEvaluation:
    return evaluate_holdout(cdnow_tx, calibration_end="1997-09-30", observation_end="1998-06-30")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _line(ax: Axes, label_start: str):
    return next(line for line in ax.get_lines() if line.get_label().startswith(label_start))


def test_exported():
    from clvforecast.plotting import _validation

    assert set(_validation.__all__) == {
        "plot_tracking", "plot_conditional_expectations", "plot_period_transactions", "plot_gains",
        "plot_frequency_recency_heatmap",
    }
    assert set(_validation.__all__) <= set(plotting.__all__)


@pytest.mark.parametrize("cumulative", [True, False])
def test_plot_tracking_in_period_numbers(result, cumulative):
    fig, ax = plt.subplots()
    out = plot_tracking(result.tracking, cumulative=cumulative, dates=False, ax=ax, linewidth=3)
    assert out is ax
    col = "_cumulative" if cumulative else ""
    actual, expected = _line(ax, "actual"), _line(ax, "BG/NBD")
    np.testing.assert_array_equal(actual.get_xdata(), np.arange(1, 79))
    np.testing.assert_allclose(actual.get_ydata(), result.tracking["actual" + col])
    np.testing.assert_allclose(expected.get_ydata(), result.tracking["expected" + col])
    assert actual.get_linewidth() == 3  # kwargs reach the lines
    assert ax.get_xlabel() == "week"
    # The calibration end: week 39 (cumulative values at period ends) or between 39 and 40 (per period).
    vlines = [ln for ln in ax.get_lines() if ln.get_label().startswith("_") and len(set(ln.get_xdata())) == 1]
    assert vlines and vlines[0].get_xdata()[0] == (39 if cumulative else 39.5)


@pytest.mark.parametrize("cumulative", [True, False])
def test_plot_tracking_in_dates(result, cumulative):
    """By default the x axis is in calendar dates: week 1 of CDNOW is 1997-01-01..01-07, week 78 ends 1998-06-30."""
    import matplotlib.dates as mdates

    ax = plot_tracking(result.tracking, cumulative=cumulative)
    x = np.asarray(_line(ax, "actual").get_xdata()).astype("datetime64[h]")
    if cumulative:  # each period's last day
        assert x[0] == np.datetime64("1997-01-07T00") and x[-1] == np.datetime64("1998-06-30T00")
    else:  # the middle of each week: 3.5 days after its first day
        assert x[0] == np.datetime64("1997-01-04T12") and x[-1] == np.datetime64("1998-06-27T12")
    assert isinstance(ax.xaxis.get_major_formatter(), mdates.ConciseDateFormatter)
    # the calibration ends on 1997-09-30 (the last day of week 39)
    vline = next(ln for ln in ax.get_lines() if ln.get_label().startswith("_") and len(set(ln.get_xdata())) == 1)
    boundary = np.asarray(vline.get_xdata()).astype("datetime64[h]")[0]
    assert boundary == (np.datetime64("1997-09-30T00") if cumulative else np.datetime64("1997-09-30T12"))
    ax.figure.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert any("1997" in t or "1998" in t for t in labels + [ax.xaxis.get_offset_text().get_text()])


def test_plot_tracking_accepts_the_evaluation_and_makes_its_own_axes(result):
    ax = plot_tracking(result)
    assert isinstance(ax, Axes) and len(ax.get_lines()) >= 2


def test_plot_tracking_without_a_tracking_table(result, cdnow_cal):
    alone = evaluate_holdout(cdnow_cal)
    with pytest.raises(TypeError, match="no tracking table"):
        plot_tracking(alone)


def test_plot_conditional_expectations(result):
    ax = plot_conditional_expectations(result, marker="x")
    ce = result.conditional_expectations
    np.testing.assert_allclose(_line(ax, "actual").get_ydata(), ce["actual_purchases"])
    np.testing.assert_allclose(_line(ax, "BG/NBD").get_ydata(), ce["bgnbd_purchases"])
    assert {t.get_text() for t in ax.get_xticklabels()} == set(ce.index)
    assert len(ax.get_lines()) == 4  # actual + three methods
    assert _line(ax, "BG/NBD").get_marker() == "x"
    only = plot_conditional_expectations(ce, methods="bgnbd")
    assert len(only.get_lines()) == 2
    with pytest.raises(ValueError, match="unknown method"):
        plot_conditional_expectations(ce, methods=["pareto"])


def test_plot_period_transactions(result):
    ax = plot_period_transactions(result.period_transactions, alpha=0.5)
    heights = [p.get_height() for p in ax.patches]
    pt = result.period_transactions
    np.testing.assert_allclose(heights, np.r_[pt["actual"], pt["expected"]])
    assert all(p.get_alpha() == 0.5 for p in ax.patches)


@pytest.mark.parametrize("target", ["spend", "purchases"])
def test_plot_gains(result, target):
    ax = plot_gains(result, target=target)
    c = result.customers
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert sum(lbl.split(" (")[0] in ("BG/NBD", "average formula", "run rate") for lbl in labels) == 3
    g = gains_curve(c[f"actual_{target}"], c[f"bgnbd_{target}"])
    np.testing.assert_allclose(_line(ax, "BG/NBD").get_ydata(), g["share_actual"])
    gini = result.metric("gini", target)["bgnbd"]
    assert f"BG/NBD (Gini {gini:.2f})" in labels
    assert ax.get_xlim() == (0, 1)


@pytest.mark.parametrize("quantity", ["expected_purchases", "probability_alive"])
def test_plot_frequency_recency_heatmap(result, quantity):
    ax = plot_frequency_recency_heatmap(result, quantity=quantity, n_recency=20)
    mesh = next(c for c in ax.collections if isinstance(c, QuadMesh))
    z = np.asarray(mesh.get_array()).reshape(int(result.customers["frequency"].max()) + 1, 20)
    assert np.isfinite(z).all()
    if quantity == "probability_alive":
        assert (z >= 0).all() and (z <= 1).all()
        assert np.allclose(z[0], 1.0)  # no repeat purchase: alive for sure under the BG/NBD
        # At the last recency (recency = T), more purchases mean more surely alive; at recency 0, less.
        assert np.all(np.diff(z[1:, -1]) >= -1e-12) and np.all(np.diff(z[1:, 0]) <= 1e-12)
    else:
        # A customer who just bought (recency = T) is expected to buy more the more often she bought.
        assert np.all(np.diff(z[:, -1]) > 0)


def test_plot_frequency_recency_heatmap_from_a_model(result):
    ax = plot_frequency_recency_heatmap(result.bgnbd, T=40, max_frequency=10, t="52W", cmap="magma")
    mesh = next(c for c in ax.collections if isinstance(c, QuadMesh))
    assert mesh.get_cmap().name == "magma"
    assert np.asarray(mesh.get_array()).size == 11 * 50
    assert ax.get_xlabel() == "recency (weeks), for a customer who first bought 40 weeks before the end"
    with pytest.raises(ValueError, match="give T and max_frequency"):
        plot_frequency_recency_heatmap(result.bgnbd)
    with pytest.raises(ValueError, match="quantity must be one of"):
        plot_frequency_recency_heatmap(result, quantity="clv")
    with pytest.raises(TypeError, match="fitted BetaGeo"):
        plot_frequency_recency_heatmap(object(), T=1, max_frequency=1)


def test_plots_never_show(result, monkeypatch):
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("plt.show() was called"))
    plot_tracking(result)
    plot_conditional_expectations(result)
    plot_period_transactions(result)
    plot_gains(result)
    plot_frequency_recency_heatmap(result)


def test_legends_name_the_evaluated_model_and_the_pit_is_no_method(cdnow_cal) -> None:
    """An evaluation of Pareto/NBD is labelled so (not "BG/NBD"), and its pit_purchases column (which ends like
    a method's purchases) is not drawn as a method."""
    ev = evaluate_holdout(cdnow_cal, model="pnbd", interval=0.9, random_state=0, progress=False)
    assert "pit_purchases" in ev.customers.columns

    def legend(ax):
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        plt.close(ax.figure)
        return labels

    assert legend(plotting.plot_period_transactions(ev)) == ["actual", "Pareto/NBD expected"]
    assert legend(plotting.plot_period_transactions(ev.period_transactions, model_label="MBG/NBD"))[1] == (
        "MBG/NBD expected")
    assert legend(plotting.plot_conditional_expectations(ev)) == ["actual", "Pareto/NBD"]
    gains = legend(plotting.plot_gains(ev, target="purchases"))
    assert [g.split(" (")[0] for g in gains] == ["random", "perfect", "Pareto/NBD"]
