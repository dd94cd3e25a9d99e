"""Holdout validation: how good is the forecast, and is it better than the historical formula?

:func:`evaluate_holdout` fits BG/NBD and Gamma-Gamma on a calibration period, predicts the holdout period and
scores the prediction against the two historical baselines of :func:`~clvforecast.historical.historical_forecast`
(``avg_formula``: the population's average rate for everyone; ``run_rate``: each customer's own past rate), per
customer and in aggregate, with the diagnostics of Fader, Hardie & Lee (2005): the conditional-expectation table,
the tracking plot of repeat transactions and the period-transactions histogram. :func:`backtest` repeats this at
several calibration cutoffs (rolling origin).

Metrics
-------
Every metric compares one column of actual holdout values ``y`` (purchases or spend, one per customer) with one
column of predictions ``p``; ``n`` is the number of customers.

``mae``
    Mean absolute error, ``sum |p - y| / n`` (units of the target: transactions or currency per customer).
``rmse``
    Root mean squared error, ``sqrt(sum (p - y)^2 / n)``; always ``>= mae``.
``total_actual``, ``total_predicted``
    ``sum y`` and ``sum p``: the aggregate the business sees.
``pct_error``
    ``100 * (sum p - sum y) / sum y``: the error of the total in percent, signed (negative = under-forecast);
    NaN when ``sum y = 0`` (a relative error of nothing is undefined).
``spearman``
    Spearman's rank correlation: the Pearson correlation of the ranks of ``p`` and ``y``, tied values taking the
    mean of the ranks they span (``scipy.stats.spearmanr``). NaN when either column is constant (undefined).
``top_decile_capture``
    The share of the total actual held by the customers the method ranks in its top 10%: the gains curve
    (below) read at ``x = 0.1``. With ``n = 20`` and no ties it is the two highest-predicted customers' actual
    over the total; when ``0.1 n`` is not a whole number the curve is read by linear interpolation (a fraction of
    the next customer). Between ``0`` and ``1`` for non-negative actuals; a random ranking scores about ``0.1``.
``gini``
    Twice the area between the gains curve and the diagonal: ``2 * integral_0^1 G(x) dx - 1``. ``0`` for a
    ranking no better than chance, higher is better; the best possible value (ranking by the actuals
    themselves) is below ``1`` and depends on how concentrated the actuals are.
``gini_normalized``
    ``gini`` divided by the Gini of the perfect ranking (the actuals ranked by themselves): ``1`` is the best
    possible ranking, ``0`` chance. NaN when the actuals are all equal (every ranking is then perfect).

The gains curve ``G`` ranks customers by prediction, highest first, and plots the cumulative share of customers
``x`` against the cumulative share of the total actual ``G(x)``. Ties: customers with the same prediction are one
group; the curve is a straight line across a group, which is the expected curve when ties are broken at random.
So the curve's vertices are ``(0, 0)`` and, after each group of tied predictions,
``(customers so far / n, actual so far / total actual)``; between vertices ``G`` is linear. ``top_decile_capture``,
``gini`` and ``gini_normalized`` are NaN when the total actual is not positive (shares of it are undefined).

All metric functions accept array-likes or pandas Series of equal length (Series must share their index, in any
order) and raise ``ValueError`` for empty, mismatched or non-finite input.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "METRICS",
    "forecast_metrics",
    "gains_curve",
    "gini_coefficient",
    "mean_absolute_error",
    "percent_total_error",
    "root_mean_squared_error",
    "spearman_correlation",
    "top_decile_capture",
]

#: The metrics of :func:`forecast_metrics`, in order (see the module docstring for definitions).
METRICS: tuple[str, ...] = (
    "mae",
    "rmse",
    "total_actual",
    "total_predicted",
    "pct_error",
    "spearman",
    "top_decile_capture",
    "gini",
    "gini_normalized",
)


# ---------------------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------------------
def _pair(actual: Any, predicted: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate and align two equal-length numeric columns; return float arrays."""
    if isinstance(actual, pd.Series) and isinstance(predicted, pd.Series):
        if not actual.index.equals(predicted.index):
            if len(actual) != len(predicted) or not actual.index.sort_values().equals(predicted.index.sort_values()):
                raise ValueError(
                    "actual and predicted are Series with different indexes "
                    f"({len(actual)} vs {len(predicted)} customers); align them first, e.g. predicted.reindex(actual.index)"
                )
            predicted = predicted.reindex(actual.index)
    y = np.asarray(actual, dtype=float).ravel()
    p = np.asarray(predicted, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"actual and predicted differ in length ({y.size} vs {p.size}); give one value per customer")
    if y.size == 0:
        raise ValueError("actual and predicted are empty; a metric needs at least one customer")
    for name, a in (("actual", y), ("predicted", p)):
        bad = ~np.isfinite(a)
        if bad.any():
            raise ValueError(
                f"{name} has {int(bad.sum())} non-finite value(s) (NaN or inf) among {a.size}, "
                f"e.g. at position {int(np.flatnonzero(bad)[0])}; drop or fill them first"
            )
    return y, p


def mean_absolute_error(actual: Any, predicted: Any) -> float:
    """Mean absolute error ``sum |predicted - actual| / n``, in the unit of the target."""
    y, p = _pair(actual, predicted)
    return float(np.mean(np.abs(p - y)))


def root_mean_squared_error(actual: Any, predicted: Any) -> float:
    """Root mean squared error ``sqrt(sum (predicted - actual)^2 / n)``, in the unit of the target."""
    y, p = _pair(actual, predicted)
    return float(np.sqrt(np.mean((p - y) ** 2)))


def percent_total_error(actual: Any, predicted: Any) -> float:
    """Signed error of the total in percent, ``100 * (sum predicted - sum actual) / sum actual``.

    Negative means the method under-forecasts the total. NaN when the actual total is 0.
    """
    y, p = _pair(actual, predicted)
    total = y.sum()
    return float(100.0 * (p.sum() - total) / total) if total != 0 else math.nan


def spearman_correlation(actual: Any, predicted: Any) -> float:
    """Spearman rank correlation (ties get the mean of their ranks); NaN if either column is constant."""
    y, p = _pair(actual, predicted)
    if y.size < 2 or np.all(y == y[0]) or np.all(p == p[0]):
        return math.nan
    return float(stats.spearmanr(y, p).statistic)


def _gains_vertices(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``(x, G)`` of the gains curve, starting at ``(0, 0)``; ties in ``p`` form one linear segment."""
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    # The last position of each run of equal predictions (ps is sorted descending).
    ends = np.flatnonzero(np.r_[ps[1:] != ps[:-1], True])
    cum_y = np.cumsum(ys)[ends]
    x = np.r_[0.0, (ends + 1) / y.size]
    g = np.r_[0.0, cum_y / y.sum()]
    return x, g


def gains_curve(actual: Any, predicted: Any) -> pd.DataFrame:
    """The gains (cumulative capture) curve of a ranking by ``predicted``.

    Customers are ranked by prediction, highest first; tied predictions form one group, across which the curve is
    linear (the expected curve under random tie-breaking).

    Returns
    -------
    DataFrame with one row per vertex, starting at ``(0, 0)`` and ending at ``(1, 1)``: ``share_customers``
    (cumulative share of customers, 0..1) and ``share_actual`` (cumulative share of the actual total, 0..1).
    Raises ``ValueError`` when the actual total is not positive.
    """
    y, p = _pair(actual, predicted)
    if not y.sum() > 0:
        raise ValueError(f"the gains curve needs a positive actual total; got {y.sum():g}")
    x, g = _gains_vertices(y, p)
    return pd.DataFrame({"share_customers": x, "share_actual": g})


def top_decile_capture(actual: Any, predicted: Any, share: float = 0.1) -> float:
    """Share of the actual total held by the top ``share`` of customers ranked by ``predicted``.

    The gains curve read at ``x = share`` (linear interpolation within a group of ties or between customers when
    ``share * n`` is not whole). NaN when the actual total is not positive.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be between 0 and 1 (0.1 for the top decile); got {share!r}")
    y, p = _pair(actual, predicted)
    if not y.sum() > 0:
        return math.nan
    x, g = _gains_vertices(y, p)
    return float(np.interp(share, x, g))


def _gini(y: np.ndarray, p: np.ndarray) -> float:
    x, g = _gains_vertices(y, p)
    area = float(np.sum(np.diff(x) * (g[1:] + g[:-1]) / 2.0))
    return 2.0 * area - 1.0


def gini_coefficient(actual: Any, predicted: Any, *, normalized: bool = False) -> float:
    """Gini of the gains curve, ``2 * area under G - 1`` (0 = chance); NaN when the actual total is not positive.

    With ``normalized=True``, divided by the Gini of the perfect ranking (ranking by ``actual`` itself), so that
    1 is the best possible ranking; NaN when all actuals are equal.
    """
    y, p = _pair(actual, predicted)
    if not y.sum() > 0:
        return math.nan
    g = _gini(y, p)
    if not normalized:
        return g
    best = _gini(y, y)
    return g / best if best > 0 else math.nan


def forecast_metrics(actual: Any, predicted: Any) -> pd.Series:
    """All the metrics of :data:`METRICS` for one method and one target, as a Series indexed by metric name."""
    y, p = _pair(actual, predicted)
    total = y.sum()
    positive = total > 0
    values = {
        "mae": mean_absolute_error(y, p),
        "rmse": root_mean_squared_error(y, p),
        "total_actual": float(total),
        "total_predicted": float(p.sum()),
        "pct_error": percent_total_error(y, p),
        "spearman": spearman_correlation(y, p),
        "top_decile_capture": top_decile_capture(y, p),
        "gini": gini_coefficient(y, p) if positive else math.nan,
        "gini_normalized": gini_coefficient(y, p, normalized=True) if positive else math.nan,
    }
    return pd.Series(values, name="value", dtype=float)[list(METRICS)]
