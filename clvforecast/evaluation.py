"""Holdout validation: how good is the forecast, and is it better than the historical formula?

:func:`evaluate_holdout` fits a purchase model (BG/NBD by default; Pareto/NBD, MBG/NBD or BG/BB) and
Gamma-Gamma on a calibration period, predicts the holdout period and scores the prediction against the two
historical baselines of :func:`~clvforecast.historical.historical_forecast` (``avg_formula``: the population's
average rate for everyone; ``run_rate``: each customer's own past rate), per customer and in aggregate, with the
diagnostics of Fader, Hardie & Lee (2005): the conditional-expectation table, the tracking plot of repeat
transactions and the period-transactions histogram. :func:`backtest` repeats this at several calibration cutoffs
(rolling origin). :func:`compare_models` fits several purchase models on one calibration table and chooses one by
a documented rule.

BG/BB (discrete opportunities) is evaluated on a table of ``rfm.discrete_summary`` (given, or built from the log
with periods of ``time_unit``): each customer's holdout count of periods with a purchase, with intervals,
coverage, PIT, conditional expectations and period transactions, past cutoffs and ``backtest``. It has no
tracking curve (it does not model transactions in continuous time), no spend target and no historical baselines
(they predict transactions, not periods with one); an aggregated table (a ``weight`` column) is refused, since the
holdout is scored customer by customer, and so is ``compare_models`` (its likelihood is of another table).

Metrics
-------
Every metric compares one column of actual holdout values ``y`` (purchases or spend, one per customer) with
one column of predictions ``p``; ``n`` is the number of customers.

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
    Spearman's rank correlation: the Pearson correlation of the ranks of ``p`` and ``y``, tied values taking
    the mean of the ranks they span (``scipy.stats.spearmanr``). NaN when either column is constant
    (undefined).
``top_decile_capture``
    The share of the total actual held by the customers the method ranks in its top 10%: the gains curve
    (below) read at ``x = 0.1``. With ``n = 20`` and no ties it is the two highest-predicted customers' actual
    over the total; when ``0.1 n`` is not a whole number the curve is read by linear interpolation (a fraction
    of the next customer). Between ``0`` and ``1`` for non-negative actuals; a random ranking scores about
    ``0.1``.
``gini``
    Twice the area between the gains curve and the diagonal: ``2 * integral_0^1 G(x) dx - 1``. ``0`` for a
    ranking no better than chance, higher is better; the best possible value (ranking by the actuals
    themselves) is below ``1`` and depends on how concentrated the actuals are.
``gini_normalized``
    ``gini`` divided by the Gini of the perfect ranking (the actuals ranked by themselves): ``1`` is the best
    possible ranking, ``0`` chance. NaN when the actuals are all equal (every ranking is then perfect).

The gains curve ``G`` ranks customers by prediction, highest first, and plots the cumulative share of
customers ``x`` against the cumulative share of the total actual ``G(x)``. Ties: customers with the same
prediction are one group; the curve is a straight line across a group, which is the expected curve when ties
are broken at random. So the curve's vertices are ``(0, 0)`` and, after each group of tied predictions,
``(customers so far / n, actual so far / total actual)``; between vertices ``G`` is linear.
``top_decile_capture``, ``gini`` and ``gini_normalized`` are NaN when the total actual is not positive (shares
of it are undefined).

All metric functions accept array-likes or pandas Series of equal length (Series must share their index, in
any order) and raise ``ValueError`` for empty, mismatched or non-finite input.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .clv import _check_interval, _forecast, _purchase_api, _totals_with_errors
from .exceptions import DataValidationError, ModelAssumptionWarning
from .historical import historical_forecast
from .io import Source, _to_date, read_transactions
from .models import GammaGamma, PurchaseModel, purchase_model
from .models._base import check_same_unit
from .rfm import calibration_holdout, cohort_days
from .units import UNIT_NAMES, check_time_unit, days_per, parse_horizon

__all__ = [
    "BASELINES",
    "COMPARISON_COLUMNS",
    "COMPARISON_RULES",
    "INTERVAL_METRICS",
    "METHODS",
    "METRICS",
    "TARGETS",
    "HoldoutEvaluation",
    "backtest",
    "compare_models",
    "conditional_expectations",
    "evaluate_holdout",
    "period_transactions",
    "repeat_transaction_tracking",
    "forecast_metrics",
    "gains_curve",
    "gini_coefficient",
    "mean_absolute_error",
    "percent_total_error",
    "root_mean_squared_error",
    "spearman_correlation",
    "top_decile_capture",
    "total_errors",
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


# ------------------------------------------------------------------------------------------------------------
# Metrics
# ------------------------------------------------------------------------------------------------------------
def _pair(actual: Any, predicted: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate and align two equal-length numeric columns; return float arrays."""
    if isinstance(actual, pd.Series) and isinstance(predicted, pd.Series):
        if not actual.index.equals(predicted.index):
            same = len(actual) == len(predicted) and set(actual.index) == set(predicted.index)
            if not same:
                raise ValueError(
                    "actual and predicted are Series with different indexes "
                    f"({len(actual)} vs {len(predicted)} customers); align them first, "
                    "e.g. predicted.reindex(actual.index)"
                )
            predicted = predicted.reindex(actual.index)
    y = np.asarray(actual, dtype=float).ravel()
    p = np.asarray(predicted, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(
            f"actual and predicted differ in length ({y.size} vs {p.size}); give one value per customer"
        )
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
    with np.errstate(over="ignore"):  # a total near the smallest float: the error is (correctly) huge
        return float(100.0 * (p.sum() - total) / total) if total != 0 else math.nan


def spearman_correlation(actual: Any, predicted: Any) -> float:
    """Spearman rank correlation (ties get the mean of their ranks); NaN if either column is constant."""
    y, p = _pair(actual, predicted)
    if y.size < 2 or np.all(y == y[0]) or np.all(p == p[0]):
        return math.nan
    return float(stats.spearmanr(y, p).statistic)


def _gains_vertices(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``(x, G)`` of the gains curve from ``(0, 0)``; ties in ``p`` form one linear segment."""
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    # The last position of each run of equal predictions (ps is sorted descending).
    ends = np.flatnonzero(np.r_[ps[1:] != ps[:-1], True])
    cum_y = np.cumsum(ys)[ends]
    x = np.r_[0.0, (ends + 1) / y.size]
    g = np.r_[0.0, cum_y / cum_y[-1]]
    return x, g


def gains_curve(actual: Any, predicted: Any) -> pd.DataFrame:
    """The gains (cumulative capture) curve of a ranking by ``predicted``.

    Customers are ranked by prediction, highest first; tied predictions form one group, across which the curve
    is linear (the expected curve under random tie-breaking).

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

    The gains curve read at ``x = share`` (linear interpolation within a group of ties or between customers
    when ``share * n`` is not whole). NaN when the actual total is not positive.
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
    """Gini of the gains curve, ``2 * area under G - 1`` (0 = chance); NaN if the actual total is not > 0.

    With ``normalized=True``, divided by the Gini of the perfect ranking (ranking by ``actual`` itself), so
    that 1 is the best possible ranking; NaN when all actuals are equal.
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
    """All the metrics of :data:`METRICS` for one method and one target: a Series indexed by metric name."""
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


# ---------------------------------------------------------------------------------------------------------
# Diagnostics of Fader, Hardie & Lee (2005)
# ---------------------------------------------------------------------------------------------------------
_PERIOD_NAMES = {"D": "day", "W": "week", "M": "month", "Y": "year"}


def _frequency_buckets(frequency: pd.Series, max_frequency: int) -> pd.Categorical:
    """Calibration frequency as the paper's buckets ``"0", "1", ..., "<max-1>", "<max>+"``."""
    labels = [str(k) for k in range(max_frequency)] + [f"{max_frequency}+"]
    codes = np.minimum(np.asarray(frequency, dtype=np.int64), max_frequency)
    return pd.Categorical.from_codes(codes, categories=labels, ordered=True)


def _check_max_frequency(max_frequency: int) -> int:
    is_int = isinstance(max_frequency, (int, np.integer)) and not isinstance(max_frequency, bool)
    if not is_int or max_frequency < 1:
        raise ValueError(
            f"max_frequency must be a positive integer (7 for the paper's 0..6, 7+); got {max_frequency!r}"
        )
    return int(max_frequency)


def conditional_expectations(
    customers: pd.DataFrame,
    *,
    actual: str = "actual_purchases",
    predicted: Sequence[str] | None = None,
    max_frequency: int = 7,
) -> pd.DataFrame:
    """The paper's conditional-expectation table: mean actual and predicted holdout purchases by frequency.

    Customers are grouped by calibration ``frequency`` (repeat transactions) into
    ``0, 1, ..., max_frequency - 1`` and ``max_frequency+`` (Fader, Hardie & Lee 2005, figure 4: 0..6 and 7+).

    Parameters
    ----------
    customers:
        One row per customer with a ``frequency`` column, the actual column and the predicted columns
        (e.g. :attr:`HoldoutEvaluation.customers`).
    actual:
        Column of actual holdout purchases.
    predicted:
        Columns of predicted holdout purchases; by default every column ending in ``_purchases`` except
        ``actual``.

    Returns
    -------
    DataFrame indexed by the frequency bucket (``"0"`` .. ``"7+"``, every bucket, in order), with
    ``customers`` (count) and the mean of ``actual`` and of each predicted column (in transactions per
    customer over the holdout). A bucket without customers has count 0 and NaN means.
    """
    max_frequency = _check_max_frequency(max_frequency)
    if predicted is None:
        predicted = [c for c in customers.columns if c.endswith("_purchases") and c != actual]
    cols = [actual, *predicted]
    missing = [c for c in ["frequency", *cols] if c not in customers.columns]
    if missing:
        raise ValueError(f"customers has no column(s) {missing}; it has {list(customers.columns)}")
    bucket = _frequency_buckets(customers["frequency"], max_frequency)
    grouped = customers[cols].groupby(bucket, observed=False)
    out = grouped.mean()
    out.insert(0, "customers", grouped.size().astype("int64"))
    out.index = pd.CategoricalIndex(out.index, name="frequency", ordered=True)
    return out


def period_transactions(rfm: pd.DataFrame, model: Any = None, *, max_frequency: int = 7) -> pd.DataFrame:
    """Histogram of calibration frequency, actual vs expected under the purchase model (period transactions).

    ``expected`` for a bucket ``x < max_frequency`` is ``sum_i P(X(T_i) = x)``: the expected number of
    customers with ``x`` repeat purchases within their own calibration time ``T_i``, computed exactly (Fader,
    Hardie & Lee 2005, equation 8, evaluated once per distinct ``T``; no simulation). The last bucket
    ``max_frequency+`` holds the rest, so both columns sum to the number of customers.

    Parameters
    ----------
    rfm:
        The calibration RFM table (``frequency``, ``T``), one row per customer.
    model:
        A fitted purchase model (:class:`~clvforecast.BetaGeo`, ...); without one only ``actual`` is returned.
        The expected count uses the model's exact ``P(X(t) = n)`` for a new customer at each distinct
        exposure ``T`` (``n_periods`` for BG/BB).

    Returns
    -------
    DataFrame indexed by frequency bucket (``"0"`` .. ``"7+"``): ``actual`` (customers) and ``expected``
    (customers, fractional).
    """
    max_frequency = _check_max_frequency(max_frequency)
    api = _purchase_api(model, "period_transactions") if model is not None else None
    # customers per row: 1, or a BG/BB table's weight column (aggregated histories)
    wspec = api._default_weights(rfm, None) if api is not None else None
    rows_w = (np.asarray(rfm[wspec], dtype=float) if isinstance(wspec, str) else np.ones(len(rfm)))
    bucket = _frequency_buckets(rfm["frequency"], max_frequency)
    actual = np.bincount(np.asarray(bucket.codes), weights=rows_w, minlength=max_frequency + 1)
    out = pd.DataFrame({"actual": actual if wspec is not None else actual.astype("int64")},
                       index=pd.CategoricalIndex(bucket.categories, categories=bucket.categories, ordered=True,
                                                 name="frequency"))
    if api is not None:
        check_same_unit(rfm, api.time_unit_, "period_transactions")
        theta = api.theta_
        # a new customer's exposure: T (continuous time) or the number of opportunities (BG/BB)
        col = api.HISTORY[2]
        if col not in rfm.columns:
            raise DataValidationError(
                f"period_transactions: the {api.LABEL} model needs a {col!r} column; the table has "
                f"{list(rfm.columns)}"
            )
        exposure, inverse = np.unique(np.asarray(rfm[col], dtype=float), return_inverse=True)
        weight = np.bincount(inverse.ravel(), weights=rows_w, minlength=len(exposure))
        zero = np.zeros(1)
        head = np.zeros(max_frequency)
        for e, w in zip(exposure, weight, strict=True):
            head += w * np.asarray(api._pmf(theta, float(e), max_frequency - 1, zero, zero, zero))[0]
        out["expected"] = np.r_[head, rows_w.sum() - head.sum()]
    return out


def _tracking_table(
    firsts: pd.DataFrame,
    repeats: pd.DataFrame,
    *,
    calibration_end: dt.date,
    observation_end: dt.date,
    time_unit: str,
    model: Any = None,
) -> pd.DataFrame:
    """Bin repeat transactions into periods of ``time_unit`` and add the model's cohort expectation."""
    unit = days_per(time_unit)
    d0 = pd.Timestamp(firsts["day"].min())
    day = lambda s: (pd.to_datetime(s) - d0).dt.days.to_numpy(dtype=float)  # noqa: E731
    first_day, n_first = day(firsts["day"]), firsts["n"].to_numpy(dtype=float)
    # The grid of periods is anchored so that a period boundary falls at the end of the calibration period.
    c = (pd.Timestamp(calibration_end) - d0).days + 1.0  # day after calibration_end, in days since d0
    e1 = (pd.Timestamp(observation_end) - d0).days + 1.0  # day after observation_end
    n_cal = math.ceil(c / unit - 1e-9)
    n_tot = n_cal + math.ceil((e1 - c) / unit - 1e-9)
    origin = c - n_cal * unit  # <= 0: the start of period 1, in days since d0
    k = np.arange(1, n_tot + 1)
    starts = origin + (k - 1) * unit
    ends = np.minimum(origin + k * unit, e1)  # exclusive ends, in days since d0
    period_of = np.floor((day(repeats["day"]) - origin) / unit + 1e-9).astype(np.int64)
    counts = np.bincount(period_of, weights=repeats["n"].to_numpy(dtype=float), minlength=n_tot)[:n_tot]
    actual = np.rint(counts).astype(np.int64)
    out = pd.DataFrame(
        {
            "start": d0 + pd.to_timedelta(np.ceil(starts - 1e-9), unit="D"),
            "end": d0 + pd.to_timedelta(np.ceil(ends - 1e-9) - 1, unit="D"),
            "period": np.where(k <= n_cal, "calibration", "holdout"),
            "actual": actual,
            "actual_cumulative": np.cumsum(actual),
        },
        index=pd.Index(k, name=_PERIOD_NAMES[time_unit]),
    )
    if model is not None:
        # Cumulative expected repeat transactions at each period end: sum over customers of E[X(end - first)],
        # evaluated once per unique exposure (exposures are whole days for D and W).
        model_unit = days_per(getattr(model, "time_unit_", None) or time_unit)
        exposure = np.clip(ends[:, None] - first_day[None, :], 0.0, None) / model_unit
        uniq, inverse = np.unique(exposure, return_inverse=True)
        ex = np.asarray(model.expected_purchases_new_customer(uniq), dtype=float)
        ex = np.where(uniq > 0, ex, 0.0)
        cumulative = ex[inverse.reshape(exposure.shape)] @ n_first
        out["expected"] = np.diff(cumulative, prepend=0.0)
        out["expected_cumulative"] = cumulative
    return out[[c for c in _TRACKING_COLUMNS if c in out.columns]]


_TRACKING_COLUMNS = [
    "start", "end", "period", "actual", "expected", "actual_cumulative", "expected_cumulative",
]


def repeat_transaction_tracking(
    transactions: Source,
    *,
    calibration_end: Any,
    observation_end: Any,
    time_unit: str = "W",
    model: Any = None,
    **read_options: Any,
) -> pd.DataFrame:
    """Repeat transactions per period, actual and expected, across calibration and holdout (tracking plot).

    The cohort is every customer whose first purchase is on or before ``calibration_end``. A repeat
    transaction is a transaction day of such a customer after their first (purchases on one day are one
    transaction), up to ``observation_end``.

    Periods are ``time_unit`` long (D=1, W=7, M=365.25/12, Y=365.25 days) and laid so that one ends exactly at
    the end of ``calibration_end`` (for CDNOW, weekly, calibration 1997-09-30: week ``w`` is the days
    ``7(w-1) .. 7w-1`` after 1997-01-01, weeks 1-39 are the calibration and 40-78 the holdout, as in Fader,
    Hardie & Lee 2005). The first period starts on or before the earliest first purchase; the last one is cut
    at ``observation_end`` when the holdout is not a whole number of periods.

    The model curve (``model`` a fitted purchase model, anything with ``expected_purchases_new_customer(t)``) is
    the expected repeat transactions of the cohort given each customer's first-purchase time: customer ``i``,
    first purchase at ``s_i``, contributes ``E[X(t - s_i)]`` (the unconditional expectation of the model) to
    the cumulative count at the end ``t`` of a period, for ``t > s_i``. Any continuous-time purchase model
    (BG/NBD, Pareto/NBD, MBG/NBD); BG/BB, which counts periods with a purchase, is refused.

    ``read_options`` say how to read the log (``customer_id=...``, ``amount=None``, ``on_invalid=...``): the
    options of :func:`~clvforecast.read_transactions`.

    Returns
    -------
    DataFrame indexed by period number (named ``week``, ``day``, ``month`` or ``year``; 1 is the first period)
    with ``start`` and ``end`` (first and last calendar day, inclusive), ``period`` (``"calibration"`` or
    ``"holdout"``), ``actual`` (repeat transactions in the period), ``actual_cumulative`` and, with a model,
    ``expected`` and ``expected_cumulative``.
    """
    unit = check_time_unit(time_unit)
    if model is not None and getattr(model, "DISCRETE", False):
        raise ValueError(
            f"repeat_transaction_tracking: the {model.LABEL} model counts periods with a purchase, not "
            "transactions in continuous time, so it has no tracking curve; use period_transactions and "
            "conditional_expectations (evaluate_holdout gives both), or a continuous-time model"
        )
    cal, obs = _to_date(calibration_end, "calibration_end"), _to_date(observation_end, "observation_end")
    if obs < cal:
        raise ValueError(f"observation_end ({obs}) is before calibration_end ({cal})")
    firsts, repeats = cohort_days(transactions, calibration_end=cal, observation_end=obs, **read_options)
    if firsts.empty:
        raise ValueError(f"no customer made a purchase on or before calibration_end={cal}; check the dates")
    return _tracking_table(
        firsts, repeats, calibration_end=cal, observation_end=obs, time_unit=unit, model=model
    )


# ---------------------------------------------------------------------------------------------------------
# Holdout evaluation
# ---------------------------------------------------------------------------------------------------------
METHODS: tuple[str, ...] = ("bgnbd", "avg_formula", "run_rate")
BASELINES: tuple[str, ...] = ("avg_formula", "run_rate")
TARGETS: tuple[str, ...] = ("purchases", "spend")
#: Metrics of the predictive intervals (``evaluate_holdout(..., interval=level)``), for the model's method only.
INTERVAL_METRICS: tuple[str, ...] = ("coverage", "interval_width")


@dataclass(repr=False)
class HoldoutEvaluation:
    """What :func:`evaluate_holdout` measured. All tables are pandas objects; ``str(result)`` is the summary.

    Methods: the purchase model's name (``bgnbd`` for BG/NBD; ``pnbd``, ``mbgnbd``, ``bgbb`` for the others: its
    conditional expectation over the holdout; for spend times the Gamma-Gamma expected spend per transaction),
    ``avg_formula`` and ``run_rate`` (the historical baselines of
    :func:`~clvforecast.historical.historical_forecast`). Targets: ``purchases`` (repeat transaction days in the
    holdout) and ``spend`` (currency in the holdout).

    Attributes
    ----------
    customers:
        One row per calibration customer, indexed by ``customer_id``: the calibration ``frequency``,
        ``recency``, ``T``, ``monetary_value``; ``actual_purchases``, ``actual_spend``; ``<method>_purchases``
        and ``<method>_spend`` for each method; ``probability_alive`` (at the calibration end). With an
        ``interval``: ``<model>_purchases_lower``/``_upper`` (whole numbers) and ``<model>_spend_lower``/``_upper``
        (currency), the equal-tailed predictive bounds of the holdout purchases and spend, and ``pit_purchases``,
        the randomised probability integral transform of the actual count, ``F(y - 1) + U (F(y) - F(y - 1))``
        with ``U`` uniform (uniform on [0, 1] when the predictive distributions are right).
    metrics:
        Tidy table, one row per ``method`` x ``target`` x ``metric`` (see :data:`METRICS`), column ``value``;
        with an ``interval`` also, for the model's method, ``coverage`` (the share of customers whose actual
        value lies within their bounds, inclusive) and ``interval_width`` (mean ``upper - lower``).
    conditional_expectations:
        :func:`conditional_expectations` of the holdout purchases (every method).
    tracking:
        :func:`repeat_transaction_tracking` with the model's curve, or ``None`` when no transaction log was
        given (and for BG/BB, which has no tracking curve).
    period_transactions:
        :func:`period_transactions` under the fitted purchase model.
    model, gamma_gamma:
        The fitted purchase model and Gamma-Gamma (``gamma_gamma`` is ``None`` without amounts); ``bgnbd`` is
        the purchase model too (the name the report has used).
    method:
        The purchase model's method name in the tables (``"bgnbd"``, ...).
    calibration_end, observation_end:
        ISO dates; ``time_unit`` and ``holdout_duration`` (in that unit) complete the set-up.
    interval:
        The level of the predictive intervals (``None`` when not asked).
    totals:
        With an ``interval``: DataFrame indexed by ``target`` (``purchases``, ``spend``) with ``actual`` (the
        holdout total), ``expected``, ``lower``, ``upper`` (model-only interval of the total, see
        :func:`~clvforecast.forecast_totals`) and ``covered`` (bool: the actual total lies within); with
        ``past_cutoffs`` also ``calibrated_lower``, ``calibrated_upper``, ``calibrated_covered`` (the
        backtest-calibrated interval). ``attrs`` as :func:`~clvforecast.forecast_totals`, plus ``past_totals``
        (the earlier cutoffs' totals, records of :func:`total_errors`).
    """

    customers: pd.DataFrame
    metrics: pd.DataFrame
    conditional_expectations: pd.DataFrame
    tracking: pd.DataFrame | None
    period_transactions: pd.DataFrame
    model: Any
    gamma_gamma: Any
    calibration_end: str
    observation_end: str
    time_unit: str
    holdout_duration: float
    method: str = "bgnbd"
    interval: float | None = None
    totals: pd.DataFrame | None = None

    @property
    def bgnbd(self) -> Any:
        """The fitted purchase model (kept under the name of the first model the toolkit had)."""
        return self.model

    def metric(self, metric: str, target: str = "spend") -> pd.Series:
        """One metric for one target, indexed by method (e.g. ``result.metric("mae", "spend")``,
        ``result.metric("coverage", "purchases")``)."""
        m = self.metrics
        sel = m[(m["metric"] == metric) & (m["target"] == target)]
        if sel.empty:
            raise KeyError(
                f"no metric {metric!r} for target {target!r}; metrics: {sorted(m['metric'].unique())}, "
                f"targets: {sorted(m['target'].unique())}"
                + ("" if metric not in INTERVAL_METRICS or self.interval is not None else
                   "; coverage needs evaluate_holdout(..., interval=0.9)")
            )
        return sel.set_index("method")["value"].rename(f"{metric}_{target}")

    def metrics_table(self) -> pd.DataFrame:
        """The metrics as a wide table: rows ``(target, metric)``, one column per method (NaN where a method has
        no such metric, e.g. the coverage of a baseline)."""
        wide = self.metrics.pivot(index=["target", "metric"], columns="method", values="value")
        methods = [self.method, *[m for m in BASELINES if m in wide.columns]]
        order = pd.MultiIndex.from_tuples([(t, k) for t in TARGETS for k in (*METRICS, *INTERVAL_METRICS)
                                           if (t, k) in wide.index])
        return wide.loc[order, methods].rename_axis(columns=None)

    @property
    def summary(self) -> str:
        """A short text report: set-up, totals with % error, MAE per method and the winner for each target;
        with intervals, their coverage and whether the actual total fell inside the total's interval."""
        unit = UNIT_NAMES[self.time_unit]
        n = len(self.customers)
        lines = [
            f"Holdout evaluation: {n:,} customers, calibration to {self.calibration_end}, holdout to "
            f"{self.observation_end} ({self.holdout_duration:g} {unit}).",
        ]
        for target in TARGETS:
            if not (self.metrics["target"] == target).any():
                continue
            total = self.metric("total_predicted", target)
            actual = float(self.metric("total_actual", target).iloc[0])
            pct, mae = self.metric("pct_error", target), self.metric("mae", target)
            fmt = "{:,.0f}" if target == "purchases" else "{:,.2f}"
            lines.append(f"Holdout {target}: actual total {fmt.format(actual)}.")
            rho, top = self.metric("spearman", target), self.metric("top_decile_capture", target)
            for method in total.index:
                lines.append(
                    f"  {method:<12} predicted {fmt.format(total[method])} ({_num(pct[method], '+.1f')}%), "
                    f"MAE {mae[method]:,.3f}, Spearman {_num(rho[method], '.3f')}, "
                    f"top-decile capture {_num(top[method], '.1%')}"
                )
            lines.append(f"  lowest MAE: {mae.idxmin()}")
            if self.interval is not None:
                cov = float(self.metric("coverage", target)[self.method])
                lines.append(f"  {self.interval:.0%} predictive intervals ({self.method}) contain the actual "
                             f"{target} of {cov:.1%} of customers")
                if self.totals is not None and target in self.totals.index:
                    t = self.totals.loc[target]
                    lines.append(
                        f"  {self.interval:.0%} interval of the total, model-only: {fmt.format(t['lower'])} to "
                        f"{fmt.format(t['upper'])} ({'contains' if t['covered'] else 'misses'} the actual)"
                    )
                    if "calibrated_lower" in t.index:
                        lines.append(
                            f"  {self.interval:.0%} interval of the total, backtest-calibrated: "
                            f"{fmt.format(t['calibrated_lower'])} to {fmt.format(t['calibrated_upper'])} "
                            f"({'contains' if t['calibrated_covered'] else 'misses'} the actual)"
                        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary

    def __repr__(self) -> str:
        return (
            f"HoldoutEvaluation({len(self.customers):,} customers, calibration_end={self.calibration_end!r}, "
            f"observation_end={self.observation_end!r}, time_unit={self.time_unit!r}, method={self.method!r})"
        )


def _num(value: float, spec: str) -> str:
    """Format a metric, ``n/a`` when it is undefined (NaN), e.g. Spearman of constant predictions."""
    return "n/a" if math.isnan(value) else format(value, spec)


def _amount_of(log: pd.DataFrame | None) -> str | None:
    """The amount column of a tidy log (``None`` for frequency-only data)."""
    return "amount" if log is not None and "amount" in log.columns else None


def _holdout_table(transactions: Any, table: pd.DataFrame | None, *, calibration_end: Any, observation_end: Any,
                   time_unit: str, model: PurchaseModel, read_options: dict[str, Any], what: str
                   ) -> tuple[pd.DataFrame | None, pd.DataFrame, str]:
    """``(log, calibration table, unit)`` for a holdout evaluation: the tidy log read once (or None), and the
    table given (checked against the model's kind) or built from the log (``calibration_holdout`` for the
    continuous-time models; ``rfm.discrete_summary`` with periods of ``time_unit`` for BG/BB)."""
    if table is None and _is_calibration_table(transactions):
        table, transactions = transactions, None
    log: pd.DataFrame | None = None
    if transactions is not None:
        # Read and validate once (the user's rules apply, dropped rows are reported once); every later pass
        # (RFM table, baselines, tracking) scans this tidy frame with the canonical column names.
        log = read_transactions(transactions, **read_options)
    elif read_options:
        raise TypeError(
            f"{what}: {', '.join(sorted(read_options))} describe how to read a transaction log, but "
            "none was given (only a calibration table)"
        )
    if table is not None:
        cal_table = _check_table(table, calibration_end, observation_end, model)
        return log, cal_table, check_time_unit(cal_table.attrs["time_unit"])
    if log is None:
        raise TypeError(f"{what} needs transactions (a log) or table=calibration_holdout(...)")
    unit = check_time_unit(time_unit)
    if model.DISCRETE:
        from . import rfm as _rfm

        discrete_summary = getattr(_rfm, "discrete_summary", None)
        if discrete_summary is None:  # pragma: no cover - arrives with the data branch
            raise TypeError(
                f"{what}: the {model.LABEL} model needs a discrete-period table; build it with "
                "rfm.discrete_summary(log, period=..., calibration_end=..., observation_end=...) and pass it"
            )
        cal_table = discrete_summary(log, period=unit, calibration_end=calibration_end,
                                     observation_end=observation_end)
        return log, _check_table(cal_table, None, None, model), unit
    cal_table = calibration_holdout(
        log, calibration_end=calibration_end, observation_end=observation_end, time_unit=unit,
        amount=_amount_of(log),
    )
    cal_table.attrs.update({k: log.attrs[k] for k in ("dropped", "n_rows_read") if k in log.attrs})
    return log, cal_table, unit


def _is_calibration_table(obj: Any) -> bool:
    needed = {"frequency", "recency", "holdout_frequency"}
    return isinstance(obj, pd.DataFrame) and needed <= set(obj.columns) and (
        "T" in obj.columns or "n_periods" in obj.columns)


def evaluate_holdout(
    transactions: Source | None = None,
    *,
    calibration_end: Any = None,
    observation_end: Any = None,
    time_unit: str = "W",
    table: pd.DataFrame | None = None,
    model: Any = "bgnbd",
    penalizer: float = 0.0,
    gg_penalizer: float = 0.0,
    max_frequency: int = 7,
    tracking: bool = True,
    interval: float | None = None,
    n_draws: int = 20,
    random_state: Any = None,
    past_cutoffs: int | Sequence[Any] | None = None,
    progress: bool | None = None,
    **read_options: Any,
) -> HoldoutEvaluation:
    """Fit on the calibration period, predict the holdout, and score a purchase model (+ Gamma-Gamma) against
    the historical baselines; with ``interval``, check the calibration of its predictive intervals.

    Parameters
    ----------
    transactions:
        The transaction log (DataFrame, CSV/Parquet path or a source description, read as
        :func:`~clvforecast.read_transactions` reads it with ``read_options``), or a table from
        :func:`~clvforecast.calibration_holdout`.
    calibration_end, observation_end:
        Last day of the calibration period and of the holdout (inclusive). Taken from the table's ``attrs``
        when a calibration table is given.
    time_unit:
        ``"D"``, ``"W"``, ``"M"`` or ``"Y"``: the unit of the models, the tracking periods and the horizon.
        A calibration table keeps its own unit.
    table:
        A :func:`~clvforecast.calibration_holdout` table to use instead of computing one from ``transactions``
        (passing it as ``transactions`` does the same).
    model:
        The purchase model: a name (``"bgnbd"``, ``"pnbd"``, ``"mbgnbd"``, ``"bgbb"``), a class or an instance
        (a copy is refitted on the calibration period). BG/BB needs a discrete table: given, or built from the log
        by ``rfm.discrete_summary`` with periods of ``time_unit`` (see the module docstring for what it supports).
    penalizer, gg_penalizer:
        L2 penalties of the purchase model (when given by name or class) and of
        :class:`~clvforecast.GammaGamma` (0: maximum likelihood).
    max_frequency:
        Last bucket of the conditional-expectation and period-transactions tables (7: the paper's 0..6, 7+).
    tracking:
        Compute the tracking table (needs the transaction log).
    interval:
        A level such as 0.9 to add predictive intervals of each customer's holdout purchases and spend, their
        coverage, the randomised PIT of the counts and the interval of the totals (see
        :func:`~clvforecast.predictive_clv` and :func:`~clvforecast.forecast_totals`); ``None`` skips them.
    n_draws, random_state, progress:
        As :func:`~clvforecast.predictive_clv` (``random_state`` also seeds the PIT's uniforms).
    past_cutoffs:
        With ``interval`` and a transaction log: also a backtest-calibrated interval of the totals, from the
        model's errors at earlier cutoffs whose holdouts end by ``calibration_end`` (nothing after it is used).
        A list of dates, or a number K of cutoffs evenly spaced from half-way into the calibration
        period (or one holdout length before its end, if later) to a quarter of a holdout length before its
        end; each holdout runs to ``min(cutoff + holdout length, calibration_end)``.
    read_options:
        How to read the log (``customer_id=...``, ``amount=None`` for frequency-only data, ``on_invalid=...``,
        ...): the options of :func:`~clvforecast.read_transactions`.

    Given only a calibration table, the result has no tracking table and no historical baselines (only the
    model's method): the average formula counts every calibration purchase including the first, with its
    spend, which the table does not hold. Pass the log too (``evaluate_holdout(log, table=table)``) to get
    both; the models are then fitted on the table as given. Frequency-only data (``amount=None``) gives the
    ``purchases`` target only (the baselines predict purchases without amounts). A holdout without any
    transaction is refused. BG/BB gives the ``purchases`` target (periods with a purchase) of the model only.

    Returns
    -------
    :class:`HoldoutEvaluation`.
    """
    level = _check_interval(interval)
    pm = purchase_model(model)
    if pm is model:  # an instance: fit a copy, never the caller's model
        pm = copy.deepcopy(pm)
    if penalizer and not isinstance(model, str | type):
        raise ValueError("penalizer applies to a model given by name or class; set it on the instance instead")
    if penalizer:
        pm.penalizer = penalizer
    log, cal_table, unit = _holdout_table(transactions, table, calibration_end=calibration_end,
                                          observation_end=observation_end, time_unit=time_unit, model=pm,
                                          read_options=read_options, what="evaluate_holdout")
    discrete = pm.DISCRETE
    cal, obs = cal_table.attrs["calibration_end"], cal_table.attrs["observation_end"]
    horizon = float(cal_table.attrs["holdout_duration"])
    _check_holdout(cal_table, cal, obs, horizon)
    # BG/BB tables count periods with a purchase and carry no spend
    has_spend = "monetary_value" in cal_table.columns and not discrete

    pm.fit(cal_table)
    method = pm.NAME
    history_cols = list(pm.HISTORY)
    rfm_cols = [c for c in (*history_cols, "monetary_value") if c in cal_table.columns]
    customers = cal_table[rfm_cols].copy()
    customers["actual_purchases"] = cal_table["holdout_frequency"].astype(float)
    customers[f"{method}_purchases"] = pm.expected_purchases(cal_table, horizon)
    gg = None
    if has_spend:
        # Gamma-Gamma leaves repeat buyers with zero spend out of its fit (counted, with a warning) and scores
        # them at zero observed spend.
        gg = GammaGamma(penalizer=gg_penalizer).fit(cal_table)
        spend = gg.expected_spend(cal_table)
        customers["actual_spend"] = cal_table["holdout_spend"]
        customers[f"{method}_spend"] = customers[f"{method}_purchases"] * spend
    methods = [method]
    targets = list(TARGETS if has_spend else TARGETS[:1])
    if log is not None and not discrete:
        hist = historical_forecast(log, calibration_end=cal, horizon=horizon, time_unit=unit,
                                   amount="amount" if has_spend else None)
        missing = customers.index.difference(hist.index)
        if len(missing):
            raise ValueError(
                f"historical_forecast has no forecast for {len(missing)} of the {len(customers)} calibration "
                f"customers (e.g. {list(missing[:3])}); check that the log and the table hold the same "
                "customers"
            )
        methods += list(BASELINES)
        for base in BASELINES:
            for target in targets:
                customers[f"{base}_{target}"] = hist[f"{base}_{target}"].reindex(customers.index)
    customers["probability_alive"] = pm.probability_alive(cal_table)
    predictions = [f"{m}_{t}" for t in targets for m in ("actual", *methods)]
    columns = [*rfm_cols, *predictions, "probability_alive"]

    totals = None
    if level is not None:
        fc = _forecast(pm, gg, cal_table, horizon=horizon, discount_rate=0.0, margin=1.0,
                       step=horizon if horizon > 0 else "D", interval=level, n_draws=n_draws,
                       random_state=random_state, progress=progress, what="evaluate_holdout",
                       n_min=customers["actual_purchases"].to_numpy())
        assert fc.count_bounds is not None and fc.counts is not None
        codes = fc.codes
        y = customers["actual_purchases"].to_numpy().astype(np.int64)
        customers[f"{method}_purchases_lower"] = fc.count_bounds[codes, 0]
        customers[f"{method}_purchases_upper"] = fc.count_bounds[codes, 1]
        below = fc.counts.cdf_at(codes, y - 1)
        at = fc.counts.cdf_at(codes, y)
        u = np.random.default_rng(np.random.SeedSequence(random_state).spawn(4)[3]).random(len(y))
        customers["pit_purchases"] = np.clip(below + u * (at - below), 0.0, 1.0)
        columns += [f"{method}_purchases_lower", f"{method}_purchases_upper"]
        if gg is not None and fc.ratio_bounds is not None and fc.scale is not None:
            customers[f"{method}_spend_lower"] = fc.scale * fc.ratio_bounds[codes, 0]
            customers[f"{method}_spend_upper"] = fc.scale * fc.ratio_bounds[codes, 1]
            columns += [f"{method}_spend_lower", f"{method}_spend_upper"]
        columns.append("pit_purchases")
        per_customer = pd.DataFrame({"expected_purchases": customers[f"{method}_purchases"]})
        if gg is not None:
            per_customer["expected_spend"] = fc.spend
            per_customer["clv"] = customers[f"{method}_spend"]
        past = None
        if past_cutoffs is not None:
            if log is None:
                raise TypeError(
                    "evaluate_holdout: past_cutoffs needs the transaction log (the earlier cutoffs are refitted "
                    "on it); pass the log, e.g. evaluate_holdout(log, table=table, ...)"
                )
            past = _past_totals(log, cal, horizon, unit, past_cutoffs, model=model, penalizer=penalizer,
                                gg_penalizer=gg_penalizer)
        tot = _totals_with_errors(fc, per_customer, past, random_state)
        tot = tot.loc[[q for q in ("purchases", "revenue") if q in tot.index]].rename(index={"revenue": "spend"})
        tot.index.name = "target"
        actual = {"purchases": float(customers["actual_purchases"].sum())}
        if gg is not None:
            actual["spend"] = float(customers["actual_spend"].sum())
        tot.insert(0, "actual", [actual[t] for t in tot.index])
        tot["covered"] = (tot["lower"] <= tot["actual"]) & (tot["actual"] <= tot["upper"])
        if "calibrated_lower" in tot.columns:
            tot["calibrated_covered"] = ((tot["calibrated_lower"] <= tot["actual"])
                                         & (tot["actual"] <= tot["calibrated_upper"]))
        tot.attrs = {**tot.attrs, "past_totals": None if past is None else _records(past)}
        totals = tot
    customers = customers[columns]

    metrics = _metrics_table(customers, methods, targets, method if level is not None else None)
    ce = conditional_expectations(customers, max_frequency=max_frequency,
                                  predicted=[f"{m}_purchases" for m in methods])
    pt = period_transactions(cal_table, pm, max_frequency=max_frequency)
    track = None
    if tracking and log is not None and not discrete:
        track = repeat_transaction_tracking(
            log, calibration_end=cal, observation_end=obs, time_unit=unit, model=pm, amount=_amount_of(log)
        )
    return HoldoutEvaluation(
        customers=customers, metrics=metrics, conditional_expectations=ce, tracking=track,
        period_transactions=pt, model=pm, gamma_gamma=gg, calibration_end=cal, observation_end=obs,
        time_unit=unit, holdout_duration=horizon, method=method, interval=level, totals=totals,
    )


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Plain JSON-able records (dates as ISO strings)."""
    out = []
    for rec in frame.to_dict("records"):
        out.append({k: (v.date().isoformat() if isinstance(v, pd.Timestamp) else
                        float(v) if isinstance(v, np.floating) else v) for k, v in rec.items()})
    return out


def _check_holdout(table: pd.DataFrame, cal: str, obs: str, horizon: float) -> None:
    """Refuse a holdout without transactions: every metric of it would be undefined or meaningless."""
    if horizon <= 0 or float(table["holdout_frequency"].sum()) == 0:
        why = (f"observation_end ({obs}) is not after calibration_end ({cal})" if horizon <= 0 else
               f"none of the {len(table):,} customers bought between {cal} and {obs}")
        raise DataValidationError(
            f"evaluate_holdout: the holdout holds no transactions ({why}); choose an observation_end after "
            "calibration_end that the transactions reach, e.g. the last transaction date"
        )


def _is_discrete_table(table: pd.DataFrame) -> bool:
    """A BG/BB calibration table (``n_periods``, ``holdout_n_periods``) rather than a continuous-time one."""
    return "n_periods" in table.columns and "T" not in table.columns


def _check_table(table: pd.DataFrame, calibration_end: Any, observation_end: Any,
                 model: PurchaseModel | None = None) -> pd.DataFrame:
    """Validate a calibration/holdout table against the purchase model's kind (continuous or discrete) and
    make sure its attrs carry the set-up."""
    if not _is_calibration_table(table):
        raise ValueError(
            "table must come from calibration_holdout (columns frequency, recency, T, holdout_frequency"
            "[, monetary_value, holdout_spend]) or, for BG/BB, from rfm.discrete_summary(..., calibration_end=...) "
            f"(frequency, recency, n_periods, holdout_frequency, holdout_n_periods); it has {list(table.columns)}"
        )
    discrete = _is_discrete_table(table)
    if model is not None and model.DISCRETE != discrete:
        if model.DISCRETE:
            raise DataValidationError(
                f"the {model.LABEL} model counts discrete opportunities and needs a table with n_periods and "
                "holdout_n_periods (clvforecast.rfm.discrete_summary(log, period=..., calibration_end=..., "
                "observation_end=...)); this one is a continuous-time table (T). Use model='bgnbd', 'pnbd' or "
                "'mbgnbd' with it"
            )
        raise DataValidationError(
            f"the {model.LABEL} model works in continuous time and needs a table with T (calibration_holdout); "
            "this one is a discrete-period table (n_periods): use model='bgbb' with it"
        )
    attrs = dict(table.attrs)
    for key, given in (("calibration_end", calibration_end), ("observation_end", observation_end)):
        if given is not None:
            given = _to_date(given, key).isoformat()
            if attrs.get(key) not in (None, given):
                raise ValueError(f"{key}={given} differs from the table's {key} ({attrs[key]})")
            attrs[key] = given
        if attrs.get(key) is None:
            raise ValueError(
                f"the table does not say its {key} (attrs lost?); pass {key}=... or rebuild it with "
                "calibration_holdout"
            )
    if "time_unit" not in attrs:
        raise ValueError(
            "the table does not say its time_unit (attrs lost?); rebuild it with calibration_holdout"
        )
    if discrete:
        if "holdout_n_periods" not in table.columns:
            raise ValueError(
                "the discrete-period table has no holdout_n_periods column (the number of holdout periods); "
                "rebuild it with clvforecast.rfm.discrete_summary(..., calibration_end=...)"
            )
        if "weight" in table.columns and not np.allclose(np.asarray(table["weight"], dtype=float), 1.0):
            raise DataValidationError(
                "evaluate_holdout scores customers one by one, but this table aggregates identical histories (a "
                "'weight' column other than 1); give one row per customer, e.g. "
                "table.loc[table.index.repeat(table['weight'])].reset_index(drop=True)"
            )
        periods = np.unique(np.asarray(table["holdout_n_periods"], dtype=float))
        if len(periods) != 1 or periods[0] != np.floor(periods[0]):
            raise DataValidationError(
                "holdout_n_periods must be one whole number shared by every customer (the holdout is the same "
                f"calendar periods for all); got {periods[:5].tolist()}"
            )
        attrs["holdout_duration"] = float(periods[0])
    elif "holdout_duration" not in attrs:
        attrs["holdout_duration"] = (
            (pd.Timestamp(attrs["observation_end"]) - pd.Timestamp(attrs["calibration_end"])).days
            / days_per(attrs["time_unit"])
        )
    if "monetary_value" in table.columns and "holdout_spend" not in table.columns:
        raise ValueError(
            "the table has monetary_value but no holdout_spend; rebuild it with calibration_holdout"
        )
    out = table.copy()
    out.attrs = attrs
    return out


def _coverage(actual: pd.Series, lower: pd.Series, upper: pd.Series) -> float:
    """Share of customers with ``lower <= actual <= upper`` (a relative 1e-9 slack for currency rounding)."""
    y, lo, hi = (np.asarray(v, dtype="float64") for v in (actual, lower, upper))
    slack = 1e-9 * np.maximum(np.abs(y), 1.0)
    return float(np.mean((lo - slack <= y) & (y <= hi + slack)))


def _metrics_table(customers: pd.DataFrame, methods: Sequence[str], targets: Sequence[str],
                   interval_method: str | None = None) -> pd.DataFrame:
    rows = []
    for target in targets:
        actual = customers[f"actual_{target}"]
        for method in methods:
            m = forecast_metrics(actual, customers[f"{method}_{target}"])
            if method == interval_method and f"{method}_{target}_lower" in customers.columns:
                lo, hi = customers[f"{method}_{target}_lower"], customers[f"{method}_{target}_upper"]
                extra = pd.Series({"coverage": _coverage(actual, lo, hi),
                                   "interval_width": float(np.mean(hi - lo))})
                m = pd.concat([m, extra])
            rows.append(
                pd.DataFrame({"method": method, "target": target, "metric": m.index, "value": m.values})
            )
    return pd.concat(rows, ignore_index=True)


def total_errors(backtest_table: pd.DataFrame, method: str | None = None) -> pd.DataFrame:
    """The model's errors on the totals at each cutoff of a :func:`backtest` table.

    Returns
    -------
    DataFrame with one row per cutoff and target: ``cutoff``, ``observation_end``, ``target``, ``predicted``
    and ``actual`` (holdout totals), ``pct_error`` (``100 (predicted - actual) / actual``) and ``log_error``
    (``log(actual / predicted)``, what :func:`~clvforecast.forecast_totals` calibrates on). ``method`` defaults
    to the purchase model of the table (the method that is not a baseline).
    """
    t = backtest_table
    need = {"cutoff", "method", "target", "metric", "value"}
    if not isinstance(t, pd.DataFrame) or not need <= set(t.columns):
        raise ValueError(f"total_errors needs a backtest(...) table with columns {sorted(need)}")
    if method is None:
        models = [m for m in t["method"].unique() if m not in BASELINES]
        if len(models) != 1:
            raise ValueError(f"the table holds methods {sorted(t['method'].unique())}; pass method=...")
        method = str(models[0])
    sel = t[(t["method"] == method) & t["metric"].isin(["total_predicted", "total_actual"])]
    index = ["cutoff", "observation_end", "target"] if "observation_end" in t.columns else ["cutoff", "target"]
    wide = sel.pivot_table(index=index, columns="metric", values="value").reset_index()
    wide = wide.rename(columns={"total_predicted": "predicted", "total_actual": "actual"})
    wide.columns.name = None
    ok = (wide["predicted"] > 0) & (wide["actual"] > 0)
    wide["pct_error"] = np.where(wide["actual"] > 0, 100 * (wide["predicted"] - wide["actual"])
                                 / wide["actual"].where(wide["actual"] > 0, 1.0), np.nan)
    wide["log_error"] = np.where(ok, np.log(wide["actual"].where(ok, 1.0) / wide["predicted"].where(ok, 1.0)),
                                 np.nan)
    return wide[[*index, "predicted", "actual", "pct_error", "log_error"]]


def _past_cutoff_dates(first: pd.Timestamp, cal: pd.Timestamp, h_days: int,
                       past_cutoffs: int | Sequence[Any]) -> list[pd.Timestamp]:
    if isinstance(past_cutoffs, bool):
        raise TypeError("past_cutoffs must be a number of earlier cutoffs (e.g. 4) or a list of dates")
    if isinstance(past_cutoffs, (int, np.integer)):
        k = int(past_cutoffs)
        if k < 2:
            raise ValueError(f"past_cutoffs must be 2 or more earlier cutoffs (or a list of dates); got {k}")
        start = max(first + pd.Timedelta(days=(cal - first).days // 2), cal - pd.Timedelta(days=h_days))
        end = cal - pd.Timedelta(days=max(1, h_days // 4))
        if end <= start:
            raise ValueError(
                f"the calibration period ({first.date()} to {cal.date()}) is too short for earlier cutoffs; "
                "pass past_cutoffs as a list of dates"
            )
        days = np.linspace(0, (end - start).days, k).round().astype(int)
        return [start + pd.Timedelta(days=int(d)) for d in days]
    if isinstance(past_cutoffs, (str, dt.date)):
        past_cutoffs = [past_cutoffs]
    dates = [pd.Timestamp(_to_date(c, "past_cutoffs")) for c in past_cutoffs]
    late = [d for d in dates if d >= cal]
    if late:
        raise ValueError(
            f"past_cutoffs must be before calibration_end ({cal.date()}); got {late[0].date()} (their holdouts "
            "must end by calibration_end so that nothing after it is used)"
        )
    return dates


def _past_totals(log: pd.DataFrame, cal: str, horizon: float, unit: str, past_cutoffs: int | Sequence[Any], *,
                 model: Any, penalizer: float, gg_penalizer: float) -> pd.DataFrame:
    """Totals predicted and actual at earlier cutoffs (holdouts ending by ``cal``), as :func:`total_errors`."""
    cal_ts = pd.Timestamp(cal)
    h_days = round(horizon * days_per(unit))
    first = pd.Timestamp(log["date"].min())
    rows = []
    amount = "amount" if "amount" in log.columns else None
    for c in _past_cutoff_dates(first, cal_ts, h_days, past_cutoffs):
        obs = min(c + pd.Timedelta(days=h_days), cal_ts)
        try:
            res = evaluate_holdout(log, calibration_end=c.date(), observation_end=obs.date(), time_unit=unit,
                                   model=model, penalizer=penalizer, gg_penalizer=gg_penalizer, tracking=False,
                                   amount=amount)
        except Exception as exc:
            exc.add_note(f"evaluate_holdout: while refitting at the earlier cutoff {c.date()} (holdout to "
                         f"{obs.date()}) for past_cutoffs")
            raise
        m = res.metrics
        m = m[m["method"] == res.method].assign(cutoff=c, observation_end=obs)
        rows.append(m)
    return total_errors(pd.concat(rows, ignore_index=True))


# ---------------------------------------------------------------------------------------------------------
# Backtest
# ---------------------------------------------------------------------------------------------------------
def backtest(
    transactions: Source,
    *,
    cutoffs: Sequence[Any],
    horizon: float | str,
    time_unit: str = "W",
    data_end: Any = None,
    model: Any = "bgnbd",
    progress: bool = True,
    penalizer: float = 0.0,
    gg_penalizer: float = 0.0,
    **read_options: Any,
) -> pd.DataFrame:
    """:func:`evaluate_holdout` at several calibration cutoffs (rolling origin), as one tidy metrics table.

    For each cutoff ``c`` the models are fitted on the transactions up to ``c`` (inclusive) and scored on the
    ``horizon`` that follows: the holdout is ``c + 1 day .. c + horizon`` (``horizon`` rounded to whole days;
    ``"39W"`` is 273 days). Customers are those with a purchase on or before ``c``; each cutoff is a separate
    fit.

    Parameters
    ----------
    transactions:
        The transaction log (DataFrame, CSV/Parquet path or source description), read once with
        ``read_options`` as :func:`~clvforecast.read_transactions` reads it.
    cutoffs:
        Calibration end dates (anything :class:`pandas.Timestamp` understands), evaluated in the order given.
        Every ``cutoff + horizon`` must fall on or before ``data_end``, so that no holdout is cut short.
    horizon:
        Holdout length: a number in ``time_unit`` or a string such as ``"39W"``, ``"6M"``.
    data_end:
        Last day the log covers (default: the last transaction date). Give it when the log runs past its last
        transaction, e.g. a shop without sales on the final days of the extract.
    model:
        The purchase model (a name such as ``"bgnbd"``, a class or an instance), as in :func:`evaluate_holdout`.
    progress:
        Show a progress bar (on stderr) when there is more than one cutoff; ``False`` silences it.

    Returns
    -------
    DataFrame with columns ``cutoff`` (calibration end, Timestamp), ``observation_end``, ``customers``,
    ``method``, ``target``, ``metric`` and ``value``: the rows of :attr:`HoldoutEvaluation.metrics` for each
    cutoff. :func:`total_errors` turns it into the model's errors on the totals, which
    :func:`~clvforecast.forecast_totals` (``past_errors=``) uses to calibrate the interval of a total.
    """
    unit = check_time_unit(time_unit)
    h_days = round(parse_horizon(horizon, unit) * days_per(unit))
    if h_days < 1:
        raise ValueError(f"horizon must be at least one day; got {horizon!r}")
    if isinstance(cutoffs, (str, dt.date)) or not len(cutoffs):
        raise ValueError(
            f"cutoffs must be a non-empty list of dates, e.g. ['1997-06-30', '1997-09-30']; got {cutoffs!r}"
        )
    ends = [pd.Timestamp(_to_date(c, "cutoff")) for c in cutoffs]
    if len(set(ends)) != len(ends):
        raise ValueError(f"cutoffs must be distinct; got {[str(c.date()) for c in ends]}")
    tx = read_transactions(transactions, **read_options)
    last = tx["date"].max() if data_end is None else pd.Timestamp(_to_date(data_end, "data_end"))
    late = [c for c in ends if c + pd.Timedelta(days=h_days) > last]
    if late:
        what = "the last transaction" if data_end is None else "data_end"
        raise ValueError(
            f"{len(late)} of {len(ends)} cutoffs leave a holdout that runs past {what} "
            f"({last.date()}), e.g. {late[0].date()} + {h_days} days = "
            f"{(late[0] + pd.Timedelta(days=h_days)).date()}; use earlier cutoffs or a shorter horizon"
            + ("" if data_end is not None else "; or pass data_end= if the log covers later days")
        )
    tables = []
    amount = "amount" if "amount" in tx.columns else None
    with _progress(len(ends) > 1 and progress, len(ends)) as advance:
        for c in ends:
            obs = c + pd.Timedelta(days=h_days)
            try:
                res = evaluate_holdout(
                    tx, calibration_end=c.date(), observation_end=obs.date(), time_unit=unit, model=model,
                    penalizer=penalizer, gg_penalizer=gg_penalizer, tracking=False, amount=amount,
                )
            except Exception as exc:
                exc.add_note(f"backtest: while evaluating the cutoff {c.date()} (holdout to {obs.date()})")
                raise
            m = res.metrics
            m.insert(0, "customers", len(res.customers))
            m.insert(0, "observation_end", obs)
            m.insert(0, "cutoff", c)
            tables.append(m)
            advance(f"cutoff {c.date()}")
    return pd.concat(tables, ignore_index=True)


@contextlib.contextmanager
def _progress(show: bool, total: int) -> Iterator[Callable[[str], None]]:
    """A rich progress bar on stderr (or nothing); yields ``advance(description)``."""
    if not show:
        yield lambda _: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("backtest"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
        TimeElapsedColumn(), console=Console(stderr=True), transient=True,
    ) as bar:
        task = bar.add_task("", total=total)
        yield lambda description: bar.update(task, advance=1, description=description)


# ---------------------------------------------------------------------------------------------------------
# Model choice
# ---------------------------------------------------------------------------------------------------------
#: Columns of :func:`compare_models`, in order.
COMPARISON_COLUMNS: tuple[str, ...] = (
    "label", "n_params", "log_likelihood", "aic", "bic", "mae", "rmse", "pct_error", "spearman",
    "tracking_error", "tracking_error_pct", "converged", "identified", "message", "chosen",
)
#: Rules of :func:`compare_models`: the column and whether higher is better.
COMPARISON_RULES: dict[str, tuple[str, bool]] = {
    "mae": ("mae", False),
    "rmse": ("rmse", False),
    "pct_error": ("pct_error", False),  # compared in absolute value
    "spearman": ("spearman", True),
    "tracking_error": ("tracking_error", False),
    "aic": ("aic", False),
    "bic": ("bic", False),
}
_RULE_WORDS = {
    "mae": "the lowest holdout mean absolute error of each customer's purchases",
    "rmse": "the lowest holdout root mean squared error of each customer's purchases",
    "pct_error": "the smallest error of the holdout total of purchases (in absolute value)",
    "spearman": "the highest Spearman rank correlation of predicted and actual holdout purchases",
    "tracking_error": "the lowest tracking error (the cumulative repeat transactions over the holdout)",
    "aic": "the lowest AIC (calibration fit, penalised by 2 per parameter)",
    "bic": "the lowest BIC (calibration fit, penalised by log(customers) per parameter)",
}


def _tracking_error(track: pd.DataFrame) -> tuple[float, float]:
    """``(mean |expected - actual| of the cumulative holdout curve, the same in % of the actual holdout total)``.

    Both curves are cumulated from the start of the holdout (the calibration periods do not count), over the
    holdout periods of :func:`repeat_transaction_tracking`."""
    hold = track[track["period"] == "holdout"]
    if hold.empty:
        return math.nan, math.nan
    actual = np.cumsum(hold["actual"].to_numpy(dtype=float))
    expected = np.cumsum(hold["expected"].to_numpy(dtype=float))
    err = float(np.mean(np.abs(expected - actual)))
    return err, (100.0 * err / actual[-1] if actual[-1] > 0 else math.nan)


def compare_models(
    source_or_calibration_table: Any,
    *,
    calibration_end: Any = None,
    observation_end: Any = None,
    time_unit: str = "W",
    models: Sequence[Any] = ("bgnbd", "pnbd", "mbgnbd"),
    rule: str = "mae",
    **read_options: Any,
) -> pd.DataFrame:
    """Fit several purchase models on one calibration period, score them on the holdout, and choose one.

    Each model is fitted once, on the same calibration table (built once from the log, or given), and predicts
    each customer's purchases over the holdout (its conditional expectation).

    Parameters
    ----------
    source_or_calibration_table:
        A transaction log (DataFrame, CSV/Parquet path or source description, read once with ``read_options``
        as :func:`~clvforecast.read_transactions` reads it) or a table from
        :func:`~clvforecast.calibration_holdout` (then ``calibration_end``/``observation_end`` come from its
        ``attrs``, and there is no tracking curve: its ``tracking_error`` columns are NaN).
    calibration_end, observation_end:
        Last day of the calibration period and of the holdout (inclusive), for a log.
    time_unit:
        ``"D"``, ``"W"``, ``"M"`` or ``"Y"``: the unit of the models and of the tracking periods (a calibration
        table keeps its own).
    models:
        Continuous-time purchase models, as names (``"bgnbd"``, ``"pnbd"``, ``"mbgnbd"``), classes or instances
        (instances are copied, never fitted in place). BG/BB (``"bgbb"``) models another table (periods, not
        transactions) whose likelihood is not comparable, and is refused.
    rule:
        How the model is chosen: ``"mae"`` (default: the lowest holdout MAE of purchases), ``"rmse"``,
        ``"pct_error"`` (the smallest absolute error of the total), ``"spearman"`` (highest),
        ``"tracking_error"``, ``"aic"`` or ``"bic"`` (lowest). Only sound fits compete: a model whose fit did
        not converge or whose parameters the data do not identify (``diagnostics_``; a degenerate optimum such
        as BG/NBD with no evidence of dropout) is chosen only when no model fitted soundly, and then
        ``attrs["rule"]`` says so and a :class:`~clvforecast.exceptions.ModelAssumptionWarning` is raised.
        Values within 1e-6 (relative) of the best are ties, won by the model listed first (degenerate fits that
        reach the same limit, e.g. three models without dropout that all behave as an NBD, differ only by where
        each optimizer stopped).

    Returns
    -------
    DataFrame indexed by ``model`` (the models' short names, in the order given) with

    ``label``
        ``"BG/NBD"``, ``"Pareto/NBD"``, ``"MBG/NBD"``.
    ``n_params``, ``log_likelihood``, ``aic``, ``bic``
        Number of parameters k, the calibration log-likelihood at the estimates (the published form), ``aic = 2 k
        - 2 LL`` and ``bic = k log(n) - 2 LL`` with n the number of customers.
    ``mae``, ``rmse``, ``pct_error``, ``spearman``
        Holdout metrics of each customer's purchases (see the module docstring): mean absolute error and root
        mean squared error (purchases per customer), signed error of the total in percent, Spearman's rank
        correlation.
    ``tracking_error``, ``tracking_error_pct``
        The tracking curve's error: the mean over the holdout periods of ``|expected - actual|`` cumulative
        repeat transactions, both cumulated from the start of the holdout (purchases), and that mean in percent of
        the actual holdout total. The expected curve is the model's unconditional expectation for the cohort
        given each customer's first-purchase day (:func:`repeat_transaction_tracking`), periods of
        ``time_unit``. NaN when only a calibration table was given.
    ``converged``, ``identified``, ``message``
        From the fit's ``diagnostics_``.
    ``chosen``
        True on the chosen model's row.

    ``attrs``: ``chosen`` (the chosen model's name), ``rule`` (the rule in words, including whether a degenerate
    fit was passed over), ``rule_name``, ``calibration_end``, ``observation_end``, ``time_unit``,
    ``holdout_duration`` (in ``time_unit``), ``n_customers``, ``actual_total`` (holdout purchases) and ``fits``
    (per model its ``to_dict()``: parameters, covariance, diagnostics; JSON-able, what ``save`` writes).
    """
    if rule not in COMPARISON_RULES:
        raise ValueError(f"rule must be one of {', '.join(repr(r) for r in COMPARISON_RULES)}; got {rule!r}")
    if isinstance(models, (str, type, PurchaseModel)):
        models = [models]
    specs = list(models)
    if not specs:
        raise ValueError("models must name at least one purchase model, e.g. ('bgnbd', 'pnbd', 'mbgnbd')")
    fitted_models: list[PurchaseModel] = []
    for spec in specs:
        pm = purchase_model(spec)
        if pm is spec:
            pm = copy.deepcopy(pm)
        if pm.DISCRETE:
            raise ValueError(
                f"compare_models compares continuous-time models on one calibration table; {pm.LABEL} ({pm.NAME!r}) "
                "models periods with a purchase (another table, whose likelihood is not comparable). Evaluate it "
                "on its own: evaluate_holdout(rfm.discrete_summary(...), model='bgbb')"
            )
        fitted_models.append(pm)
    names = [pm.NAME for pm in fitted_models]
    if len(set(names)) != len(names):
        raise ValueError(f"models lists a model twice: {names}")

    log, cal_table, unit = _holdout_table(
        source_or_calibration_table, None, calibration_end=calibration_end, observation_end=observation_end,
        time_unit=time_unit, model=fitted_models[0], read_options=read_options, what="compare_models",
    )
    cal, obs = cal_table.attrs["calibration_end"], cal_table.attrs["observation_end"]
    horizon = float(cal_table.attrs["holdout_duration"])
    _check_holdout(cal_table, cal, obs, horizon)
    actual = cal_table["holdout_frequency"].to_numpy(dtype=float)
    cohort = None
    if log is not None:
        cohort = cohort_days(log, calibration_end=_to_date(cal, "calibration_end"),
                             observation_end=_to_date(obs, "observation_end"), amount=_amount_of(log))

    rows = {}
    fits = {}
    for pm in fitted_models:
        pm.fit(cal_table)
        k = len(pm.PARAM_NAMES)
        ll = float(pm.log_likelihood_)
        n = float(pm.n_customers_)
        predicted = pm.expected_purchases(cal_table, horizon).to_numpy(dtype=float)
        track_err = track_pct = math.nan
        if cohort is not None:
            track = _tracking_table(cohort[0], cohort[1], calibration_end=_to_date(cal, "calibration_end"),
                                    observation_end=_to_date(obs, "observation_end"), time_unit=unit, model=pm)
            track_err, track_pct = _tracking_error(track)
        d = pm.diagnostics_
        rows[pm.NAME] = {
            "label": pm.LABEL, "n_params": k, "log_likelihood": ll, "aic": 2 * k - 2 * ll,
            "bic": k * math.log(n) - 2 * ll,
            "mae": mean_absolute_error(actual, predicted), "rmse": root_mean_squared_error(actual, predicted),
            "pct_error": percent_total_error(actual, predicted), "spearman": spearman_correlation(actual, predicted),
            "tracking_error": track_err, "tracking_error_pct": track_pct,
            "converged": bool(d.get("converged", False)), "identified": bool(d.get("identified", False)),
            "message": str(d.get("message", "") or ""),
        }
        fits[pm.NAME] = pm.to_dict()
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "model"

    column, higher = COMPARISON_RULES[rule]
    score = out[column].abs() if rule == "pct_error" else out[column]
    sound = out["converged"] & out["identified"]
    words = f"holdout {'MAE' if rule == 'mae' else rule}: {_RULE_WORDS[rule]}, among the models whose fit " \
            "converged with identified parameters"
    pool = score[sound & score.notna()]
    if pool.empty:
        pool = score[score.notna()]
        if pool.empty:
            raise ValueError(f"compare_models: {rule} is undefined for every model (e.g. tracking_error without a "
                             "transaction log); choose another rule")
        words += ("; no model fitted soundly (see the message column), so the choice falls back to all models "
                  "and rests on a degenerate fit")
        warnings.warn("compare_models: no model fitted soundly, so the choice rests on a degenerate fit (each "
                      "model's message says why)", ModelAssumptionWarning, stacklevel=2)
    else:
        passed = [m for m in out.index if not sound[m]]
        if passed:
            words += f" ({', '.join(passed)} passed over: {'its' if len(passed) == 1 else 'their'} fit is degenerate)"
    # values within 1e-6 (relative) of the best are ties (degenerate fits that reach the same limit differ only
    # by where each optimizer stopped), won by the model listed first
    top = float(pool.max() if higher else pool.min())
    best = next(m for m in pool.index if abs(float(pool[m]) - top) <= 1e-6 * max(abs(top), 1e-12))
    out["chosen"] = out.index == best
    out = out[list(COMPARISON_COLUMNS)]
    out.attrs = {
        "chosen": str(best), "rule": words, "rule_name": rule, "calibration_end": cal, "observation_end": obs,
        "time_unit": unit, "holdout_duration": horizon, "n_customers": int(len(cal_table)),
        "actual_total": float(actual.sum()), "fits": fits,
    }
    return out
