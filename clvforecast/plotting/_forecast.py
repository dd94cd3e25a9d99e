"""Forecast plots: the distribution of a per-customer forecast (CLV, P(alive), expected purchases)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ._robust import distribution_problem, no_offset, say

__all__ = ["plot_forecast_distribution"]

_LABELS = {
    "clv": "predictive CLV (currency)",
    "probability_alive": "P(alive)",
    "expected_purchases": "expected purchases over the horizon",
    "expected_spend": "expected spend per purchase (currency)",
}


def _number(value: float) -> str:
    """3 significant digits below 1,000 (``0.787``, ``29.1``), whole numbers with separators from 1,000 up
    (``1,971`` rather than ``1.97e+03``)."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def plot_forecast_distribution(
    forecast: pd.DataFrame | pd.Series,
    column: str = "clv",
    *,
    bins: int = 40,
    log: bool | None = None,
    ax: Any = None,
    **kwargs: Any,
) -> Any:
    """Histogram of one per-customer forecast column, with its mean and median marked.

    Parameters
    ----------
    forecast:
        The table of :func:`~clvforecast.predictive_clv` (or any DataFrame holding ``column``), or a Series.
    column:
        ``"clv"`` (default), ``"probability_alive"``, ``"expected_purchases"`` or ``"expected_spend"``.
    log:
        Log-scale count axis; by default on for skewed columns (CLV, expected purchases).
    ax, kwargs:
        Axes to draw into (a new figure when ``None``); ``kwargs`` go to ``Axes.hist``.

    Returns
    -------
    matplotlib.axes.Axes

    P(alive) is drawn on its whole range, 0 to 1. When the histogram would say nothing (no customer, one
    customer, or every value the same for a reader, e.g. every P(alive) within 0.1 point of 1), the Axes holds
    a sentence saying so instead (:func:`clvforecast.plotting._robust.distribution_problem`).
    """
    import matplotlib.pyplot as plt

    values = forecast if isinstance(forecast, pd.Series) else forecast[column]
    name = column if not isinstance(forecast, pd.Series) else (forecast.name or column)
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6))
    label = _LABELS.get(str(name), str(name))
    problem = distribution_problem(v, str(name))
    if problem:
        return say(ax, problem, title=f"Distribution of {label.split(' (')[0]}")
    kwargs.setdefault("color", "#2f6f9f")
    kwargs.setdefault("edgecolor", "white")
    if name == "probability_alive":
        kwargs.setdefault("range", (0.0, 1.0))
    ax.hist(v, bins=bins, **kwargs)
    if log is None:
        log = name in ("clv", "expected_purchases")
    if log:
        ax.set_yscale("log")
    if v.size:
        ax.axvline(v.mean(), color="#c0392b", lw=1.5, label=f"mean {_number(v.mean())}")
        ax.axvline(np.median(v), color="#333333", lw=1.2, ls="--", label=f"median {_number(np.median(v))}")
        ax.legend(frameon=False, fontsize=9)
    ax.set_xlabel(label)
    ax.set_ylabel("customers" + (" (log scale)" if log else ""))
    ax.set_title(f"Distribution of {label.split(' (')[0]}")
    return no_offset(ax)
