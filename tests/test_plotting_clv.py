"""CLV plots: each returns the Axes it drew into, never shows, and draws what the comparison holds."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

import clvforecast as cf  # noqa: E402
from clvforecast import plotting  # noqa: E402
from clvforecast.plotting import (  # noqa: E402
    plot_clv_scatter,
    plot_lorenz,
    plot_predictive_vs_historical,
    plot_tiers,
)

IDS = list(range(1, 11))
PRED = [50, 0, 10, 30, 5, 5, 80, 0, 20, 1]  # total 201; top 20% {7, 1} hold 130 / 201 = 64.7%
RUN = [25, 0, 30, 10, 0, 7, 60, 0, 0, 2]  # total 134; top 20% {7, 3} hold 90 / 134 = 67.2%


@pytest.fixture
def comparison() -> cf.CLVComparison:
    idx = pd.Index(IDS, name="customer_id")
    pred = pd.Series(np.array(PRED, float), index=idx)
    hist = pd.DataFrame({"avg_formula_spend": 20.1, "run_rate_spend": np.array(RUN, float)}, index=idx)
    return cf.compare_clv(pred, hist)


@pytest.fixture(autouse=True)
def no_show(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("plot functions must not call plt.show()")

    monkeypatch.setattr(plt, "show", fail)
    yield
    plt.close("all")


def test_functions_are_listed_in_all():
    for name in ("plot_clv_scatter", "plot_predictive_vs_historical", "plot_lorenz", "plot_tiers"):
        assert name in plotting.__all__ and name in plotting._clv.__all__


def test_scatter_log_scale_all_customers(comparison):
    ax = plot_predictive_vs_historical(comparison)
    assert isinstance(ax, Axes)
    assert ax.get_xscale() == "symlog" and ax.get_yscale() == "symlog"
    points = ax.collections[0].get_offsets()
    assert len(points) == 10
    # x = run rate (the default variant), y = predictive; zeros are kept (shown at 0).
    assert np.asarray(points)[:, 0].tolist() == RUN and np.asarray(points)[:, 1].tolist() == PRED
    assert "run rate" in ax.get_xlabel() and "predictive" in ax.get_ylabel()
    assert plot_clv_scatter is plot_predictive_vs_historical


def test_scatter_draws_into_given_axes_and_passes_kwargs(comparison):
    fig, ax = plt.subplots()
    out = plot_clv_scatter(comparison, "avg_formula", ax=ax, color="red", s=3)
    assert out is ax and len(fig.axes) == 1
    assert np.asarray(ax.collections[0].get_offsets())[:, 0].tolist() == [20.1] * 10
    assert ax.collections[0].get_sizes().tolist() == [3]
    with pytest.raises(
        ValueError, match="variant 'x' is not in the comparison; choose one of avg_formula, run_rate"
    ):
        plot_clv_scatter(comparison, "x")


def test_lorenz_marks_top_20_percent(comparison):
    ax = plot_lorenz(comparison)
    assert isinstance(ax, Axes)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "predictive: top 20% hold 65%" in labels
    assert "run rate: top 20% hold 67%" in labels
    assert "avg formula: top 20% hold 20%" in labels
    # The predictive curve passes through (0.2, 130/201) and ends at (1, 1).
    line = next(ln for ln in ax.get_lines() if ln.get_label().startswith("predictive"))
    x, y = line.get_xdata(), line.get_ydata()
    assert x[2] == pytest.approx(0.2) and y[2] == pytest.approx(130 / 201)
    assert x[-1] == pytest.approx(1.0) and y[-1] == pytest.approx(1.0)
    assert np.all(np.diff(y) >= 0)
    # A marker sits on the top-20% point.
    assert any(
        list(ln.get_xdata()) == [pytest.approx(0.2)] and list(ln.get_ydata()) == [pytest.approx(130 / 201)]
        for ln in ax.get_lines()
    )


def test_lorenz_from_a_series_into_given_axes():
    _, ax = plt.subplots()
    values = pd.Series([8.0, 1.0, 1.0, 0.0, 0.0], index=[5, 4, 3, 2, 1])
    out = plot_lorenz(values, ax=ax, top=0.4, lw=3)
    assert out is ax
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "clv: top 40% hold 90%" in labels  # 8 + 1 of 10
    assert ax.get_lines()[0].get_linewidth() == 3
    with pytest.raises(ValueError, match="top must be a share between 0 and 1"):
        plot_lorenz(values, top=20)
    with pytest.raises(ValueError, match="unknown variant"):
        plot_lorenz(values, variants=["nope"])


def test_tier_bars(comparison):
    ax = plot_tiers(comparison)
    assert isinstance(ax, Axes)
    bars = ax.patches
    assert len(bars) == 4 * 3  # four tiers x three variants
    # The predictive bars: shares 160/201, 30/201, 11/201, 0 (tiers Q1 {7, 1, 4}, Q2 {9, 3}, Q3 {5, 6, 10}).
    heights = [b.get_height() for b in bars[:4]]
    assert heights == pytest.approx([160 / 201, 30 / 201, 11 / 201, 0.0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Q1\n(3)", "Q2\n(2)", "Q3\n(3)", "Q4\n(2)"]
    _, ax2 = plt.subplots()
    assert plot_tiers(comparison, ax=ax2, alpha=0.5) is ax2
    assert ax2.patches[0].get_alpha() == 0.5
    with pytest.raises(TypeError, match="needs the result of compare_clv"):
        plot_tiers(pd.DataFrame())
