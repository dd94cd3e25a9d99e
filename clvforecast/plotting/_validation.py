"""Validation plots: tracking, conditional expectations, period transactions, gains, frequency/recency maps.

Each function takes the table it draws (from :mod:`clvforecast.evaluation`) or a whole
:class:`~clvforecast.evaluation.HoldoutEvaluation`, draws into ``ax`` (a new figure when ``None``) and returns
the Axes; none calls ``plt.show()``. Extra ``**kwargs`` go to the matplotlib call that draws the data (each
line of a line plot, the bars, the heatmap mesh) and override the defaults.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from ._robust import no_offset, no_repeat_problem, say, surface_problem

__all__ = [
    "plot_conditional_expectations",
    "plot_frequency_recency_heatmap",
    "plot_gains",
    "plot_period_transactions",
    "plot_tracking",
]

#: Display names of the evaluation's methods (a purchase model's short name, or a baseline).
METHOD_LABELS = {"bgnbd": "BG/NBD", "pnbd": "Pareto/NBD", "mbgnbd": "MBG/NBD", "bgbb": "BG/BB",
                 "avg_formula": "average formula", "run_rate": "run rate"}
_MODEL_STYLE = dict(color="C0", linestyle="--")
_STYLE = {"actual": dict(color="black", linestyle="-"), "bgnbd": _MODEL_STYLE, "pnbd": _MODEL_STYLE,
          "mbgnbd": _MODEL_STYLE, "bgbb": _MODEL_STYLE,
          "avg_formula": dict(color="C1", linestyle=":"), "run_rate": dict(color="C2", linestyle="-.")}
#: Columns that end like a method's prediction but are not one.
_NOT_METHODS = ("actual", "pit")


def _model_label(obj: Any, model_label: str | None) -> str:
    """The purchase model's name for a legend: ``model_label``, else the evaluation's model (``obj.model``),
    else "BG/NBD"."""
    if model_label:
        return model_label
    model = getattr(obj, "model", None)
    return str(getattr(model, "LABEL", "") or "BG/NBD")


def _axes(ax: Axes | None) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    return ax


def _table(obj: Any, attr: str) -> pd.DataFrame:
    """``obj`` itself when it is a DataFrame, else ``obj.<attr>`` (a HoldoutEvaluation)."""
    if isinstance(obj, pd.DataFrame):
        return obj
    table = getattr(obj, attr, None)
    if not isinstance(table, pd.DataFrame):
        what = "with no tracking table (pass the log to evaluate_holdout)" if attr == "tracking" else ""
        got = f"{type(obj).__name__} {what}".rstrip()
        raise TypeError(f"expected a DataFrame or a HoldoutEvaluation with .{attr}; got {got}")
    return table


def _require(table: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what}: the table has no column(s) {missing}; it has {list(table.columns)}")


def _methods(columns: Any, suffix: str, methods: Any) -> list[str]:
    found = [c[: -len(suffix)] for c in columns if c.endswith(suffix) and not c.startswith(_NOT_METHODS)]
    if methods is None:
        return found
    methods = [methods] if isinstance(methods, str) else list(methods)
    unknown = [m for m in methods if m not in found]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; the table has {found}")
    return methods


def plot_tracking(
    tracking: Any, *, cumulative: bool = True, dates: bool | None = None, model_label: str | None = None,
    ax: Axes | None = None, **kwargs: Any
) -> Axes:
    """Repeat transactions per period, actual vs the model's cohort expectation (Fader, Hardie & Lee, fig. 3).

    Parameters
    ----------
    tracking:
        :attr:`HoldoutEvaluation.tracking` (from :func:`~clvforecast.evaluation.repeat_transaction_tracking`)
        or the evaluation itself.
    cumulative:
        ``True``: cumulative repeat transactions at the end of each period; ``False``: transactions per
        period.
    dates:
        ``True`` (default when the table has its ``start`` and ``end`` dates): calendar dates on the x axis,
        cumulative values at each period's last day and per-period values at its middle. ``False``: period
        numbers (week 1, 2, ...).
    model_label:
        The purchase model's name in the legend ("Pareto/NBD"); by default the evaluation's model, else
        "BG/NBD".

    A vertical line marks the end of the calibration period.
    """
    table = _table(tracking, "tracking")
    suffix = "_cumulative" if cumulative else ""
    _require(table, ["period", "actual" + suffix], "plot_tracking")
    if dates is None:
        dates = {"start", "end"} <= set(table.columns)
    ax = _axes(ax)
    x, boundary = _tracking_axis(table, cumulative, bool(dates))
    for name, label in (("actual", "actual"), ("expected", f"{_model_label(tracking, model_label)} expected")):
        col = name + suffix
        if col in table.columns:
            style = _STYLE["actual" if name == "actual" else "bgnbd"]
            ax.plot(x, table[col].to_numpy(), **{"label": label, **style, **kwargs})
    if boundary is not None:
        ax.axvline(boundary, color="grey", linestyle=":", linewidth=1)
        ax.annotate(" holdout", (boundary, 1), xycoords=("data", "axes fraction"),
                    va="top", ha="left", color="grey", fontsize="small")
    period = table.index.name or "period"
    if dates:
        import matplotlib.dates as mdates

        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_xlabel("date" if cumulative else f"date (middle of each {period})")
    else:
        ax.set_xlabel(period)
    ax.set_ylabel("cumulative repeat transactions" if cumulative else f"repeat transactions per {period}")
    ax.set_title("Tracking repeat transactions" + (" (cumulative)" if cumulative else ""))
    ax.legend()
    no_offset(ax)
    return ax


def _tracking_axis(table: pd.DataFrame, cumulative: bool, dates: bool) -> tuple[Any, Any]:
    """The x values of the tracking plot and the position of the calibration end (None without a holdout).

    Cumulative values sit at period ends, so the calibration ends at the last calibration period; per-period
    values sit mid-period, so the boundary lies half-way to the next one.
    """
    is_cal = (table["period"] == "calibration").to_numpy()
    if dates:
        start, end = pd.to_datetime(table["start"]), pd.to_datetime(table["end"])
        x = end if cumulative else start + (end + pd.Timedelta(days=1) - start) / 2
        x = x.to_numpy()
        last_end = end[is_cal].max() if is_cal.any() else None
        boundary = None if last_end is None else (last_end if cumulative else last_end + pd.Timedelta(hours=12))
    else:
        x = table.index.to_numpy()
        boundary = x[is_cal].max() + (0 if cumulative else 0.5) if is_cal.any() else None
    if not is_cal.any() or is_cal.all():
        boundary = None
    return x, boundary


def plot_conditional_expectations(
    conditional_expectations: Any, *, methods: Any = None, ax: Axes | None = None, **kwargs: Any
) -> Axes:
    """Mean holdout purchases by calibration frequency, actual vs each method (Fader, Hardie & Lee, fig. 4).

    ``conditional_expectations`` is :attr:`HoldoutEvaluation.conditional_expectations` (or the evaluation);
    ``methods`` selects methods (default: every ``<method>_purchases`` column).
    """
    table = _table(conditional_expectations, "conditional_expectations")
    _require(table, ["actual_purchases"], "plot_conditional_expectations")
    ax = _axes(ax)
    problem = _one_bucket(table["customers"] if "customers" in table.columns else table["actual_purchases"])
    if problem:
        return say(ax, problem, title="Conditional expectations")
    x = np.arange(len(table))
    ax.plot(x, table["actual_purchases"].to_numpy(), **{"label": "actual", "marker": "o", **_STYLE["actual"],
                                                        **kwargs})
    for m in _methods(table.columns, "_purchases", methods):
        style = _STYLE.get(m, {})
        ax.plot(x, table[f"{m}_purchases"].to_numpy(), **{"label": METHOD_LABELS.get(m, m), "marker": "s",
                                                          **style, **kwargs})
    ax.set_xticks(x, [str(v) for v in table.index])
    ax.set_xlabel("repeat transactions in the calibration period")
    ax.set_ylabel("mean holdout transactions per customer")
    ax.set_title("Conditional expectations")
    ax.legend()
    return no_offset(ax)


def _one_bucket(counts: pd.Series) -> str | None:
    """A sentence when every customer falls in one calibration-frequency bucket (a one-point plot)."""
    filled = counts[counts.fillna(0) > 0]
    if len(filled) >= 2:
        return None
    if len(filled) == 0:
        return "No customer to show by calibration frequency."
    return (f"Every customer made {filled.index[0]} repeat purchase(s) in the calibration period: there is "
            "one group, so there is no pattern by frequency to show.")


def plot_period_transactions(period_transactions: Any, *, model_label: str | None = None, ax: Axes | None = None,
                             **kwargs: Any) -> Axes:
    """Customers by calibration frequency, actual vs expected under the purchase model (bars side by side).

    ``period_transactions`` is :attr:`HoldoutEvaluation.period_transactions` (or the evaluation);
    ``model_label`` names the model in the legend (by default the evaluation's model, else "BG/NBD").
    """
    table = _table(period_transactions, "period_transactions")
    _require(table, ["actual"], "plot_period_transactions")
    ax = _axes(ax)
    problem = _one_bucket(table["actual"])
    if problem:
        return say(ax, problem, title="Frequency of repeat transactions")
    x = np.arange(len(table))
    cols = [c for c in ("actual", "expected") if c in table.columns]
    width = 0.8 / len(cols)
    for i, col in enumerate(cols):
        label = "actual" if col == "actual" else f"{_model_label(period_transactions, model_label)} expected"
        color = "0.3" if col == "actual" else "C0"
        ax.bar(x + (i - (len(cols) - 1) / 2) * width, table[col].to_numpy(dtype=float), width,
               **{"label": label, "color": color, **kwargs})
    ax.set_xticks(x, [str(v) for v in table.index])
    ax.set_xlabel("repeat transactions in the calibration period")
    ax.set_ylabel("customers")
    ax.set_title("Frequency of repeat transactions")
    ax.legend()
    return no_offset(ax)


def plot_gains(
    customers: Any, *, target: str = "spend", methods: Any = None, ax: Axes | None = None, **kwargs: Any
) -> Axes:
    """Gains curves: share of actual holdout ``target`` captured by the top x% of customers, one per method.

    Customers are ranked by each method's prediction (ties as in :func:`~clvforecast.evaluation.gains_curve`).
    The diagonal is a random ranking, the thin grey curve the best possible one (ranking by the actuals); the
    legend gives each method's Gini. ``customers`` is :attr:`HoldoutEvaluation.customers` (or the evaluation);
    ``target`` is ``"spend"`` or ``"purchases"``.
    """
    from ..evaluation import gains_curve, gini_coefficient

    table = _table(customers, "customers")
    _require(table, [f"actual_{target}"], "plot_gains")
    actual = table[f"actual_{target}"]
    ax = _axes(ax)
    sentence = None
    if len(actual) < 2:
        sentence = f"There {'is one customer' if len(actual) == 1 else 'are no customers'}: a gains curve needs several."
    elif not (actual.to_numpy(dtype=float) > 0).any():
        sentence = f"No customer has any holdout {target}: there is nothing to capture."
    if sentence:
        return say(ax, sentence, title=f"Gains curve ({target})")
    best = gains_curve(actual, actual)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="random")
    ax.plot(best["share_customers"], best["share_actual"], color="grey", linewidth=1,
            label=f"perfect (Gini {gini_coefficient(actual, actual):.2f})")
    for m in _methods(table.columns, f"_{target}", methods):
        g = gains_curve(actual, table[f"{m}_{target}"])
        gini = gini_coefficient(actual, table[f"{m}_{target}"])
        style = {k: v for k, v in _STYLE.get(m, {}).items() if k == "color"}
        ax.plot(g["share_customers"], g["share_actual"],
                **{"label": f"{METHOD_LABELS.get(m, m)} (Gini {gini:.2f})", **style, **kwargs})
    ax.axvline(0.1, color="grey", linewidth=0.5)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("share of customers, ranked by prediction")
    ax.set_ylabel(f"share of actual holdout {target}")
    ax.set_title(f"Gains curve ({target})")
    ax.legend(loc="lower right")
    return no_offset(ax)


_QUANTITIES = {"expected_purchases": "expected purchases", "probability_alive": "P(alive)"}


def plot_frequency_recency_heatmap(
    model: Any,
    *,
    quantity: str = "expected_purchases",
    t: float | str | None = None,
    T: float | None = None,
    max_frequency: int | None = None,
    n_recency: int = 50,
    rfm: pd.DataFrame | None = None,
    ax: Axes | None = None,
    **kwargs: Any,
) -> Axes:
    """Heatmap of a BG/NBD prediction over frequency x recency for a customer observed for ``T``.

    Parameters
    ----------
    model:
        A fitted :class:`~clvforecast.BetaGeo`, or a :class:`~clvforecast.evaluation.HoldoutEvaluation` (its
        model, its calibration table as ``rfm`` and its holdout length as ``t``).
    quantity:
        ``"expected_purchases"`` (in the next ``t``) or ``"probability_alive"``.
    t:
        Horizon of the expected purchases: a number in the model's unit or a string such as ``"52W"``
        (default: 1 unit, or the evaluation's holdout length).
    T:
        The customers' age (time since the first purchase) in the model's unit; default ``rfm["T"].max()``.
    max_frequency:
        Highest frequency shown; default ``rfm["frequency"].max()``.
    n_recency:
        Number of recency values from 0 to ``T``.
    rfm:
        A calibration table supplying the defaults of ``T`` and ``max_frequency``.

    Recency is capped by ``T``; a customer with frequency 0 has recency 0, so that row is constant.
    """
    if quantity not in _QUANTITIES:
        raise ValueError(f"quantity must be one of {list(_QUANTITIES)}; got {quantity!r}")
    if hasattr(model, "bgnbd") and hasattr(model, "customers"):
        rfm = model.customers if rfm is None else rfm
        t = model.holdout_duration if t is None else t
        model = model.bgnbd
    if not hasattr(model, "params_") or not hasattr(model, "probability_alive"):
        raise TypeError(f"model must be a fitted BetaGeo or a HoldoutEvaluation; got {type(model).__name__}")
    if T is None or max_frequency is None:
        if rfm is None:
            raise ValueError("give T and max_frequency, or rfm= (a calibration table) to take them from")
        if max_frequency is None and no_repeat_problem(rfm["frequency"]):
            return say(_axes(ax), str(no_repeat_problem(rfm["frequency"])),
                       title=f"{_QUANTITIES[quantity]} by frequency and recency")
        T = float(rfm["T"].max()) if T is None else T
        max_frequency = int(rfm["frequency"].max()) if max_frequency is None else max_frequency
    if not (math.isfinite(float(T)) and float(T) > 0):
        raise ValueError(f"T must be a positive duration in the model's unit; got {T!r}")
    if int(max_frequency) < 1 or int(n_recency) < 2:
        raise ValueError(f"need max_frequency >= 1 and n_recency >= 2; got {max_frequency!r}, {n_recency!r}")
    T, max_frequency, n_recency = float(T), int(max_frequency), int(n_recency)
    freq = np.arange(max_frequency + 1)
    rec = np.linspace(0.0, T, n_recency)
    f_grid, r_grid = np.meshgrid(freq, rec, indexing="ij")
    r_grid = np.where(f_grid == 0, 0.0, r_grid)  # no repeat purchase: recency is 0 by definition
    grid = pd.DataFrame({"frequency": f_grid.ravel(), "recency": r_grid.ravel(), "T": T})
    grid.attrs["time_unit"] = model.time_unit_
    if quantity == "probability_alive":
        z = model.probability_alive(grid)
        label = "P(alive)"
    else:
        t = 1.0 if t is None else t
        z = model.expected_purchases(grid, t)
        unit = {"D": "days", "W": "weeks", "M": "months", "Y": "years"}.get(model.time_unit_, "")
        label = f"expected purchases in the next {t if isinstance(t, str) else f'{t:g} {unit}'}"
    z = np.asarray(z, dtype=float).reshape(f_grid.shape)
    ax = _axes(ax)
    problem = surface_problem(z, _QUANTITIES[quantity])
    if problem:
        return say(ax, problem, title=f"{_QUANTITIES[quantity]} by frequency and recency")
    step = rec[1] - rec[0]
    edges_r = np.r_[rec - step / 2, rec[-1] + step / 2].clip(0, T)
    edges_f = np.arange(max_frequency + 2) - 0.5
    style: dict[str, Any] = {"cmap": "viridis", "shading": "flat"}
    if quantity == "probability_alive":
        style.update(vmin=0.0, vmax=1.0)  # a probability keeps its whole scale
    mesh = ax.pcolormesh(edges_r, edges_f, z, **{**style, **kwargs})
    bar = ax.figure.colorbar(mesh, ax=ax, label=label)
    no_offset(bar.ax)
    unit = {"D": "days", "W": "weeks", "M": "months", "Y": "years"}.get(model.time_unit_, "")
    ax.set_xlabel(f"recency ({unit}), for a customer who first bought {T:.3g} {unit} before the end")
    ax.set_ylabel("frequency (repeat transactions)")
    ax.set_title(f"{_QUANTITIES[quantity]} by frequency and recency")
    return no_offset(ax)
