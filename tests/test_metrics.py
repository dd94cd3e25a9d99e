"""Forecast metrics, checked against hand-derived values on a tiny hand-made example, plus invariants."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clvforecast.evaluation import (
    METRICS,
    forecast_metrics,
    gains_curve,
    gini_coefficient,
    mean_absolute_error,
    percent_total_error,
    root_mean_squared_error,
    spearman_correlation,
    top_decile_capture,
)

# Five customers A..E. Actual holdout values and one method's predictions (B and C are tied).
#            A    B    C    D    E
ACTUAL = [4.0, 0.0, 1.0, 3.0, 2.0]  # total 10
PRED = [3.0, 1.0, 1.0, 2.5, 0.5]  # total 8
IDS = list("ABCDE")


def test_mae_rmse_total_by_hand():
    # errors p - y:  -1, 1, 0, -0.5, -1.5
    # |e|: 1 + 1 + 0 + 0.5 + 1.5 = 4        -> MAE = 4 / 5 = 0.8
    # e^2: 1 + 1 + 0 + 0.25 + 2.25 = 4.5    -> RMSE = sqrt(4.5 / 5) = sqrt(0.9)
    assert mean_absolute_error(ACTUAL, PRED) == pytest.approx(0.8)
    assert root_mean_squared_error(ACTUAL, PRED) == pytest.approx(math.sqrt(0.9))
    # totals 8 vs 10 -> 100 * (8 - 10) / 10 = -20 %
    assert percent_total_error(ACTUAL, PRED) == pytest.approx(-20.0)


def test_spearman_by_hand_with_ties():
    # ranks of actual (ascending): A=5, B=1, C=2, D=4, E=3
    # ranks of pred:               A=5, B=2.5, C=2.5 (tied: mean of ranks 2 and 3), D=4, E=1
    # deviations from the mean rank 3: dx = 2,-2,-1,1,0 ; dy = 2,-0.5,-0.5,1,-2
    # sum dx*dy = 4 + 1 + 0.5 + 1 + 0 = 6.5 ; sum dx^2 = 10 ; sum dy^2 = 9.5
    # rho = 6.5 / sqrt(10 * 9.5)
    assert spearman_correlation(ACTUAL, PRED) == pytest.approx(6.5 / math.sqrt(95.0))


def test_gains_curve_by_hand():
    # Ranked by prediction: A (3.0, y=4), D (2.5, y=3), {B, C} tied (1.0, y=0+1), E (0.5, y=2).
    # Vertices after each group: x = 1/5, 2/5, 4/5, 5/5 ; G = 4/10, 7/10, 8/10, 10/10.
    g = gains_curve(ACTUAL, PRED)
    np.testing.assert_allclose(g["share_customers"], [0.0, 0.2, 0.4, 0.8, 1.0])
    np.testing.assert_allclose(g["share_actual"], [0.0, 0.4, 0.7, 0.8, 1.0])


def test_top_decile_capture_by_hand():
    # x = 0.1 is half of customer A's step: G = 0.5 * 0.4 = 0.2
    assert top_decile_capture(ACTUAL, PRED) == pytest.approx(0.2)
    # x = 0.5 falls inside the tied group {B, C}: 0.7 + (0.5 - 0.4) / (0.8 - 0.4) * (0.8 - 0.7) = 0.725
    assert top_decile_capture(ACTUAL, PRED, share=0.5) == pytest.approx(0.725)
    # x = 0.6 (after one of B, C): B first gives 0.7, C first gives 0.8; the tie rule gives their mean, 0.75
    assert top_decile_capture(ACTUAL, PRED, share=0.6) == pytest.approx(0.75)


def test_top_decile_is_the_top_tenth_of_customers():
    # 20 customers, actual = 1..20, predictions rank them perfectly: the top 10% are the two customers with
    # actual 20 and 19: (20 + 19) / (20 * 21 / 2) = 39 / 210
    y = np.arange(1.0, 21.0)
    assert top_decile_capture(y, y * 3 + 1) == pytest.approx(39 / 210)


def test_gini_by_hand():
    # Trapezoids under the gains curve: 0.2*(0+0.4)/2 + 0.2*(0.4+0.7)/2 + 0.4*(0.7+0.8)/2 + 0.2*(0.8+1)/2
    #   = 0.04 + 0.11 + 0.30 + 0.18 = 0.63  -> Gini = 2 * 0.63 - 1 = 0.26
    assert gini_coefficient(ACTUAL, PRED) == pytest.approx(0.26)
    # Perfect ranking (by actual: 4, 3, 2, 1, 0): G = 0.4, 0.7, 0.9, 1.0, 1.0 at x = 0.2 .. 1.0
    #   area = 0.04 + 0.11 + 0.16 + 0.19 + 0.20 = 0.70 -> Gini 0.40 ; normalized = 0.26 / 0.40 = 0.65
    assert gini_coefficient(ACTUAL, ACTUAL) == pytest.approx(0.40)
    assert gini_coefficient(ACTUAL, PRED, normalized=True) == pytest.approx(0.65)


def test_forecast_metrics_collects_everything():
    m = forecast_metrics(pd.Series(ACTUAL, index=IDS), pd.Series(PRED, index=IDS))
    assert list(m.index) == list(METRICS)
    expected = {
        "mae": 0.8, "rmse": math.sqrt(0.9), "total_actual": 10.0, "total_predicted": 8.0, "pct_error": -20.0,
        "spearman": 6.5 / math.sqrt(95.0), "top_decile_capture": 0.2, "gini": 0.26, "gini_normalized": 0.65,
    }
    for k, v in expected.items():
        assert m[k] == pytest.approx(v), k


def test_series_are_aligned_on_their_index():
    y = pd.Series(ACTUAL, index=IDS)
    p = pd.Series(PRED, index=IDS)[::-1]  # same customers, other order
    assert mean_absolute_error(y, p) == pytest.approx(0.8)
    assert gini_coefficient(y, p) == pytest.approx(0.26)


def test_undefined_cases_are_nan_not_errors():
    zeros = [0.0, 0.0, 0.0]
    m = forecast_metrics(zeros, [0.1, 0.2, 0.3])
    assert math.isnan(m["pct_error"]) and math.isnan(m["top_decile_capture"]) and math.isnan(m["gini"])
    assert m["mae"] == pytest.approx(0.2)
    assert math.isnan(spearman_correlation([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]))  # constant predictions
    assert math.isnan(gini_coefficient([2.0, 2.0], [1.0, 3.0], normalized=True))  # every ranking is perfect


@pytest.mark.parametrize(
    ("actual", "predicted", "match"),
    [
        ([1.0, 2.0], [1.0], "differ in length"),
        ([], [], "empty"),
        ([1.0, np.nan], [1.0, 2.0], "non-finite"),
        ([1.0, 2.0], [1.0, np.inf], "non-finite"),
    ],
)
def test_bad_input_raises_clearly(actual, predicted, match):
    with pytest.raises(ValueError, match=match):
        mean_absolute_error(actual, predicted)


def test_mismatched_series_index_raises():
    with pytest.raises(ValueError, match="different indexes"):
        mean_absolute_error(pd.Series([1.0, 2.0], index=[1, 2]), pd.Series([1.0, 2.0], index=[1, 3]))


def test_gains_curve_needs_positive_total():
    with pytest.raises(ValueError, match="positive actual total"):
        gains_curve([0.0, 0.0], [1.0, 2.0])


values = st.lists(st.floats(0, 1e4, allow_nan=False), min_size=2, max_size=40)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_invariants(data):
    y = np.array(data.draw(values))
    p = np.array(data.draw(st.lists(st.floats(0, 1e4, allow_nan=False), min_size=len(y), max_size=len(y))))
    m = forecast_metrics(y, p)
    assert m["mae"] <= m["rmse"] + 1e-9 * (1 + m["rmse"])
    # Any permutation of the customers gives the same metrics.
    perm = np.random.default_rng(len(y)).permutation(len(y))
    pd.testing.assert_series_equal(m, forecast_metrics(y[perm], p[perm]), rtol=1e-9)
    # Rescaling the predictions (exactly, by a power of two, so no ties are created) keeps every ranking
    # metric.
    m2 = forecast_metrics(y, p * 4.0)
    for k in ("spearman", "top_decile_capture", "gini", "gini_normalized"):
        assert (math.isnan(m[k]) and math.isnan(m2[k])) or m[k] == pytest.approx(m2[k], abs=1e-9)
    if y.sum() > 0:
        g = gains_curve(y, p)
        assert (np.diff(g["share_customers"]) > 0).all() and (np.diff(g["share_actual"]) >= -1e-12).all()
        assert g["share_actual"].iloc[-1] == pytest.approx(1.0)
        assert 0.0 <= m["top_decile_capture"] <= 1.0 + 1e-12
        assert -1.0 <= m["gini"] <= _best_gini(y) + 1e-9
        if not math.isnan(m["gini_normalized"]):
            assert m["gini_normalized"] <= 1.0 + 1e-9


def _best_gini(y: np.ndarray) -> float:
    return gini_coefficient(y, y)
