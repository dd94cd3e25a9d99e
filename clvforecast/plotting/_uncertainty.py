"""Plots of predictive uncertainty: the randomised PIT histogram, customers' intervals, the totals' intervals.

Each function takes the result it draws (a :class:`~clvforecast.evaluation.HoldoutEvaluation`, the table of
:func:`~clvforecast.predictive_clv` or :func:`~clvforecast.forecast_totals`), draws into ``ax`` (a new figure
when ``None``) and returns the Axes; none calls ``plt.show()``. Extra ``**kwargs`` go to the matplotlib call that
draws the data and override the defaults. Degenerate input (nothing to draw) gives a sentence on the axes.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from scipy import stats

__all__ = ["plot_customer_intervals", "plot_pit", "plot_total_intervals"]


def _axes(ax: Axes | None, size: tuple[float, float] = (7, 4.5)) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    return ax


def _say(ax: Axes, text: str, title: str) -> Axes:
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    return ax


def plot_pit(evaluation: Any, *, bins: int = 10, band: float = 0.9, ax: Axes | None = None,
             **kwargs: Any) -> Axes:
    """Histogram of the randomised probability integral transform (PIT) of the holdout purchases.

    For a customer with predictive CDF ``F`` and actual count ``y``, the randomised PIT is ``F(y - 1) + U (F(y) -
    F(y - 1))`` with ``U`` uniform; it is uniform on [0, 1] when the predictive distributions are right (Czado,
    Gneiting & Held 2009). A U shape says the intervals are too narrow, a hump that they are too wide, a slope
    that the forecast is biased (more mass on the right: actuals above the forecast).

    Parameters
    ----------
    evaluation:
        A :class:`~clvforecast.evaluation.HoldoutEvaluation` made with ``interval=...`` (its
        ``customers["pit_purchases"]``), a DataFrame with a ``pit_purchases`` column, or the PIT values.
    bins:
        Number of equal bins on [0, 1].
    band:
        The shaded band holds each bar with this probability if the PIT is uniform (binomial counts); 0 hides it.

    The bars are densities (1 = uniform, the dashed line).
    """
    title = "Randomised PIT of holdout purchases"
    ax = _axes(ax)
    values: Any = evaluation
    level = getattr(evaluation, "interval", None)
    if hasattr(evaluation, "customers"):
        values = evaluation.customers
    if isinstance(values, pd.DataFrame):
        if "pit_purchases" not in values.columns:
            raise ValueError(
                "plot_pit: no pit_purchases column; run evaluate_holdout(..., interval=0.9) to compute the PIT"
            )
        values = values["pit_purchases"]
    pit = np.asarray(values, dtype="float64").ravel()
    pit = pit[np.isfinite(pit)]
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a whole number >= 1; got {bins!r}")
    if not len(pit):
        return _say(ax, "No PIT values to show (no customers).", title)
    n = len(pit)
    counts, edges = np.histogram(pit, bins=bins, range=(0.0, 1.0))
    density = counts * bins / n
    ax.bar(edges[:-1], density, width=np.diff(edges), align="edge",
           **{"color": "C0", "alpha": 0.75, "edgecolor": "white", "label": f"{n:,} customers", **kwargs})
    if 0 < band < 1:
        lo, hi = stats.binom.ppf([(1 - band) / 2, (1 + band) / 2], n, 1.0 / bins) * bins / n
        ax.axhspan(lo, hi, color="grey", alpha=0.2, label=f"{band:.0%} range if uniform")
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, max(1.5, float(density.max()) * 1.15))
    ax.set_xlabel("PIT of the actual holdout purchases")
    ax.set_ylabel("density (1 = uniform)")
    ax.set_title(title + (f" ({level:.0%} intervals evaluated)" if isinstance(level, float) else ""))
    ax.legend(loc="upper center", ncol=2, fontsize="small")
    return ax


_LABELS = {"clv": "CLV", "expected_purchases": "purchases", "purchases": "purchases", "spend": "spend"}


def plot_customer_intervals(table: pd.DataFrame, *, column: str = "clv", top: int = 20, actual: Any = None,
                            ax: Axes | None = None, **kwargs: Any) -> Axes:
    """The ``top`` customers by ``column`` with their predictive intervals (horizontal bars).

    Parameters
    ----------
    table:
        :func:`~clvforecast.predictive_clv` with ``interval=...`` (``column`` ``"clv"`` or
        ``"expected_purchases"``), or ``HoldoutEvaluation.customers`` made with an interval (``column`` e.g.
        ``"bgnbd_purchases"`` or ``"bgnbd_spend"``, whose actuals are then drawn too).
    column:
        The point forecast; its bounds are ``<column>_lower`` and ``<column>_upper``.
    top:
        How many customers, highest ``column`` first.
    actual:
        Optional actual values (a Series by customer_id, or a column name of ``table``) drawn as crosses.
    """
    ax = _axes(ax, (7, max(3.0, 0.28 * top + 1.5)))
    lo_col, hi_col = f"{column}_lower", f"{column}_upper"
    missing = [c for c in (column, lo_col, hi_col) if c not in table.columns]
    if missing:
        raise ValueError(
            f"plot_customer_intervals: the table has no column(s) {missing}; make it with interval=0.9 "
            f"(columns: {list(table.columns)[:12]})"
        )
    if actual is None and column.endswith(("_purchases", "_spend")) and "actual_" + column.split("_")[-1] in table:
        actual = "actual_" + column.split("_")[-1]
    if isinstance(actual, str):
        actual = table[actual]
    rows = table.sort_values(column, ascending=False).head(top)
    what = _LABELS.get(column, _LABELS.get(column.split("_")[-1], column))
    title = f"Top {len(rows)} customers: {what} with predictive intervals"
    if rows.empty:
        return _say(ax, "No customers to show.", title)
    y = np.arange(len(rows))[::-1]
    point, lo, hi = (rows[c].to_numpy(dtype="float64") for c in (column, lo_col, hi_col))
    ax.hlines(y, lo, hi, **{"color": "C0", "linewidth": 3, "alpha": 0.6, "label": "interval", **kwargs})
    ax.plot(point, y, "o", color="C0", label="expected")
    if actual is not None:
        act = pd.Series(actual).reindex(rows.index).to_numpy(dtype="float64")
        ax.plot(act, y, "x", color="black", label="actual")
    ax.set_yticks(y)
    ax.set_yticklabels([str(i) for i in rows.index])
    ax.set_ylabel(str(rows.index.name or "customer"))
    ax.set_xlabel(what)
    ax.set_title(title)
    ax.legend(fontsize="small", loc="lower right")
    return ax


def plot_total_intervals(totals: Any, *, quantity: str = "purchases", ax: Axes | None = None,
                         **kwargs: Any) -> Axes:
    """The interval of a total, model-only and backtest-calibrated, with the actual total when known.

    Parameters
    ----------
    totals:
        :func:`~clvforecast.forecast_totals` (rows ``purchases``, ``revenue``, ``clv``) or
        ``HoldoutEvaluation.totals`` (rows ``purchases``, ``spend``, with ``actual``), or the evaluation.
    quantity:
        The row to draw.
    """
    ax = _axes(ax, (7, 2.8))
    if hasattr(totals, "totals") and not isinstance(totals, pd.DataFrame):
        totals = totals.totals
    if not isinstance(totals, pd.DataFrame):
        raise TypeError("plot_total_intervals needs forecast_totals(...) or an evaluation made with interval=")
    level = totals.attrs.get("level")
    title = f"Total {quantity}" + (f": {level:.0%} intervals" if level else "")
    if quantity not in totals.index:
        return _say(ax, f"No total of {quantity} (rows: {', '.join(map(str, totals.index))}).", title)
    row = totals.loc[quantity]
    kinds = [("model-only", "lower", "upper", "C0")]
    if "calibrated_lower" in row.index and math.isfinite(float(row["calibrated_lower"])):
        kinds.append(("backtest-calibrated", "calibrated_lower", "calibrated_upper", "C1"))
    for k, (_, lo, hi, color) in enumerate(kinds):
        yk = len(kinds) - 1 - k
        ax.hlines(yk, row[lo], row[hi], **{"color": color, "linewidth": 6, "alpha": 0.7, **kwargs})
        # above the bar's middle, so that the label never runs past the frame
        ax.annotate(f"{row[lo]:,.0f} to {row[hi]:,.0f}", ((row[lo] + row[hi]) / 2, yk), xytext=(0, 7),
                    textcoords="offset points", ha="center", va="bottom", fontsize="small")
    ax.plot([row["expected"]] * len(kinds), range(len(kinds)), "o", color="black", label="expected")
    if "actual" in row.index:
        ax.axvline(row["actual"], color="C3", linestyle="--", label=f"actual {row['actual']:,.0f}")
    ax.set_yticks(range(len(kinds)))
    ax.set_yticklabels([k[0] for k in kinds][::-1])
    ax.set_ylim(-0.7, len(kinds) - 0.3)
    ax.set_xlabel(quantity)
    ax.set_title(title)
    ax.legend(fontsize="small", loc="lower right")
    ax.margins(x=0.15)
    return ax
