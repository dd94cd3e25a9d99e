"""CLV plots: predictive vs historical scatter, Lorenz/Pareto curve, tier bars.

Each function takes the result of :func:`~clvforecast.compare_clv` (or, where said, plain per-customer
values), draws into ``ax`` (a new figure when ``ax=None``), returns the Axes and never calls ``plt.show()``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..compare import PREDICTIVE, CLVComparison, _order
from ._robust import curves_problem, no_offset, say

__all__ = ["plot_clv_scatter", "plot_lorenz", "plot_predictive_vs_historical", "plot_tiers"]


def _axes(ax: Any) -> Any:
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6.4, 4.8))
    return ax


def _values(data: Any) -> pd.DataFrame:
    """Per-customer values, one column per variant, from a comparison, a DataFrame or a Series."""
    if isinstance(data, CLVComparison):
        t = data.table
        cols = [c for c in t.columns if c.startswith("clv_")]
        return t[cols].rename(columns=lambda c: c[len("clv_"):])
    if isinstance(data, pd.Series):
        return data.to_frame(str(data.name) if data.name is not None else "clv")
    if isinstance(data, pd.DataFrame):
        cols = [c for c in data.columns if str(c).startswith("clv_")]
        if cols:
            return data[cols].rename(columns=lambda c: str(c)[len("clv_"):])
        return data.select_dtypes("number")
    raise TypeError(f"expected a CLVComparison, DataFrame or Series; got {type(data).__name__}")


def _linthresh(*arrays: np.ndarray) -> float:
    """Linear range of a symlog axis: the power of ten at or below the 5th percentile of the positive values
    (so that a few near-zero values do not stretch the axis over many empty decades)."""
    pos = np.concatenate([a[a > 0] for a in arrays])
    if pos.size == 0:
        return 1.0
    return float(10.0 ** math.floor(math.log10(np.percentile(pos, 5))))


def plot_predictive_vs_historical(
    comparison: CLVComparison | pd.DataFrame,
    variant: str | None = None,
    *,
    ax: Any = None,
    **kwargs: Any,
) -> Any:
    """Scatter of each customer's predictive CLV (y) against a historical variant (x), on log scales.

    Both axes are ``symlog`` (logarithmic above a small value, the power of ten below the 5th percentile of
    the positive values, and linear below it) so that customers with a historical value of 0 (one-time
    buyers have a run rate of 0) are shown at 0 rather than dropped; the legend gives their number. The
    dashed diagonal is ``predictive = historical``.

    Parameters
    ----------
    comparison:
        The result of :func:`~clvforecast.compare_clv`, or a DataFrame with ``clv_predictive`` and
        ``clv_<variant>`` columns.
    variant:
        The historical variant on the x axis; default ``"run_rate"`` when present, else the first one.
    ax:
        Matplotlib Axes to draw into; a new figure when None.
    **kwargs:
        Passed to ``ax.scatter`` (e.g. ``s``, ``alpha``, ``color``).
    """
    values = _values(comparison)
    if PREDICTIVE not in values.columns:
        raise ValueError("the comparison has no predictive CLV column ('clv_predictive')")
    others = [c for c in values.columns if c != PREDICTIVE]
    if not others:
        raise ValueError("the comparison has no historical variant to plot against")
    if variant is None:
        variant = "run_rate" if "run_rate" in others else others[0]
    if variant not in others:
        raise ValueError(f"variant {variant!r} is not in the comparison; choose one of {', '.join(others)}")
    x, y = values[variant].to_numpy(float), values[PREDICTIVE].to_numpy(float)
    ax = _axes(ax)
    title = f"Predictive vs historical CLV ({len(x):,} customers)"
    problem = curves_problem(y, "scatter")
    if problem is None and not (x > 0).any():
        problem = (f"Every customer's historical {variant.replace('_', ' ')} value is 0 (nobody bought twice "
                   "before the cut-off), so there is nothing to compare with.")
    if problem:
        return say(ax, problem, title=title)
    n_zero = int((x == 0).sum())
    label = f"customers ({n_zero:,} with historical CLV 0, at x = 0)" if n_zero else "customers"
    style = {"s": 10, "alpha": 0.5, "linewidths": 0, "color": "C0", "label": label} | kwargs
    ax.scatter(x, y, **style)
    lt = _linthresh(x, y)
    hi = float(max(x.max(), y.max(), lt))
    ax.plot([0, hi], [0, hi], ls="--", color="0.4", lw=1, label="predictive = historical")
    ax.set_xscale("symlog", linthresh=lt)
    ax.set_yscale("symlog", linthresh=lt)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(f"historical CLV: {variant.replace('_', ' ')}")
    ax.set_ylabel("predictive CLV")
    ax.set_title(title)
    ax.legend(loc="upper left")
    return ax


#: Short name for :func:`plot_predictive_vs_historical`.
plot_clv_scatter = plot_predictive_vs_historical


def plot_lorenz(
    data: CLVComparison | pd.DataFrame | pd.Series,
    variants: list[str] | None = None,
    *,
    top: float = 0.2,
    ax: Any = None,
    **kwargs: Any,
) -> Any:
    """Pareto (Lorenz) curve of CLV: cumulative share of value held by the most valuable customers.

    Customers are ordered from the most to the least valuable (ties by customer id, as in
    :func:`~clvforecast.compare_clv`); the curve passes through (share of customers, share of total value).
    The share held by the top ``top`` (20%: the "80/20" check) is marked for every variant, and the diagonal
    is the curve of equal values.

    Parameters
    ----------
    data:
        The result of :func:`~clvforecast.compare_clv`, a DataFrame of per-customer values (``clv_*`` columns
        or numeric columns) or a Series.
    variants:
        Which variants to draw; default all (the plain average formula gives every customer the same value,
        so its curve is the diagonal).
    top:
        Share of customers to mark (default 0.2).
    ax:
        Matplotlib Axes to draw into; a new figure when None.
    **kwargs:
        Passed to ``ax.plot`` for every curve (e.g. ``lw``).
    """
    if not 0 < top < 1:
        raise ValueError(f"top must be a share between 0 and 1 (0.2 for the top 20%); got {top!r}")
    values = _values(data).sort_index()
    variants = list(values.columns) if variants is None else list(variants)
    unknown = [v for v in variants if v not in values.columns]
    if unknown:
        raise ValueError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(values.columns)}")
    n = len(values)
    if n == 0:
        raise ValueError("no customers to plot")
    ax = _axes(ax)
    problem = curves_problem(values[variants].to_numpy(float), "Pareto curve")
    if problem:
        return say(ax, problem, title=f"Pareto curve of CLV ({n:,} customers)")
    x = np.arange(0, n + 1) / n
    k = math.ceil(top * n)
    for i, v in enumerate(variants):
        col = values[v]
        total = float(col.sum())
        if total == 0:
            continue
        y = np.concatenate([[0.0], np.cumsum(col.to_numpy(float)[_order(col)]) / total])
        color = f"C{i}"
        ax.plot(x, y, color=color, label=f"{v.replace('_', ' ')}: top {top:.0%} hold {y[k]:.0%}", **kwargs)
        ax.plot([x[k]], [y[k]], "o", color=color, ms=5)
    ax.plot([0, 1], [0, 1], ls=":", color="0.5", lw=1, label="equal values")
    ax.axvline(k / n, color="0.6", lw=0.8, ls="--")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("share of customers, most valuable first")
    ax.set_ylabel("cumulative share of CLV")
    ax.set_title(f"Pareto curve of CLV ({n:,} customers)")
    ax.legend(loc="lower right")
    return no_offset(ax)


def plot_tiers(comparison: CLVComparison, *, ax: Any = None, **kwargs: Any) -> Any:
    """Bars of each CLV tier's share of total value, predictive and historical side by side.

    Tiers are cut on predictive CLV (see :func:`~clvforecast.compare_clv`); for every variant the bar is the
    share of that variant's total value held by the tier's customers, so a model that concentrates value shows
    a tall first bar and the plain average formula shows each tier's share of customers.

    Parameters
    ----------
    comparison:
        The result of :func:`~clvforecast.compare_clv`.
    ax:
        Matplotlib Axes to draw into; a new figure when None.
    **kwargs:
        Passed to ``ax.bar`` (e.g. ``alpha``, ``edgecolor``).
    """
    if not isinstance(comparison, CLVComparison):
        raise TypeError(f"plot_tiers needs the result of compare_clv; got {type(comparison).__name__}")
    tiers = comparison.summary["tiers"]
    variants = [c[len("share_"):] for c in tiers.columns if c.startswith("share_")]
    ax = _axes(ax)
    shares_all = tiers[[f"share_{v}" for v in variants]].to_numpy(float)
    if not np.isfinite(tiers[f"share_{PREDICTIVE}"].to_numpy(float)).any():
        return say(ax, "Every customer's predicted value is zero: no tier holds a share of it.",
                   title="Value by CLV tier")
    pos = np.arange(len(tiers))
    width = 0.8 / max(len(variants), 1)
    for i, v in enumerate(variants):
        shares = tiers[f"share_{v}"].to_numpy(float)
        bars = ax.bar(pos + (i - (len(variants) - 1) / 2) * width, shares, width,
                      label=v.replace("_", " "), color=f"C{i}", **kwargs)
        if v == PREDICTIVE:
            ax.bar_label(bars, labels=[f"{s:.0%}" for s in shares], fontsize=8, padding=2)
    labels = [f"{t}\n({c:,})" for t, c in zip(tiers.index, tiers["customers"], strict=True)]
    ax.set_xticks(pos, labels)
    ax.set_ylim(0, min(1.0, float(np.nanmax(shares_all))) * 1.15)
    ax.set_xlabel(f"tier by predictive CLV ({comparison.summary['tier_scheme']}; customers)")
    ax.set_ylabel("share of total value")
    ax.set_title("Value by CLV tier")
    ax.legend()
    return no_offset(ax)
