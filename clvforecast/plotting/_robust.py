"""Plots that stay readable on degenerate data: no offset axes, and a sentence where a plot would say nothing.

Every plot function calls :func:`no_offset` on the Axes it drew (a P(alive) histogram of values all within
1e-8 of 1 would otherwise read ``-1.6 ... 0.0`` with a ``1e-8+1`` offset), and asks one of the ``*_problem``
functions below whether its data can be plotted at all. When a problem is found the function draws the
sentence into the Axes with :func:`say` instead of an empty or single-bar panel. The report asks the same
functions first and prints the sentence instead of an image.

The checks are pure functions of the data (no matplotlib), so they are tested directly.
"""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np

#: Two values closer than this share of the larger magnitude are "the same" for a reader.
RELATIVE_TOLERANCE = 1e-6
#: P(alive) values spread over less than this (0.1 percentage point) show as one bar.
PROBABILITY_TOLERANCE = 1e-3

_NAMES = {
    "clv": "CLV",
    "probability_alive": "P(alive)",
    "expected_purchases": "expected purchases",
    "expected_spend": "expected spend per purchase",
}


def no_offset(ax: Any) -> Any:
    """Turn off the offset ("1e-8+1") and scientific notation on every linear axis of ``ax``; returns ``ax``."""
    for axis in (ax.xaxis, ax.yaxis):
        fmt = axis.get_major_formatter()
        if hasattr(fmt, "set_useOffset"):
            fmt.set_useOffset(False)
        if hasattr(fmt, "set_scientific"):
            fmt.set_scientific(False)
    return ax


#: The ``gid`` of an Axes that holds a sentence instead of a plot (see :func:`said`).
SENTENCE_GID = "clvforecast-sentence"


def say(ax: Any, sentence: str, *, title: str | None = None) -> Any:
    """Replace the content of ``ax`` by ``sentence`` (wrapped, centred, no ticks or frame); returns ``ax``."""
    ax.clear()
    ax.set_axis_off()
    ax.set_gid(SENTENCE_GID)
    ax.text(0.5, 0.5, textwrap.fill(sentence, 60), ha="center", va="center", transform=ax.transAxes,
            fontsize=10, color="0.25")
    if title:
        ax.set_title(title)
    return ax


def said(ax: Any) -> str | None:
    """The sentence :func:`say` put in ``ax`` (on one line), or None when ``ax`` holds a plot."""
    if ax.get_gid() != SENTENCE_GID or not ax.texts:
        return None
    return " ".join(ax.texts[0].get_text().split())


def _finite(values: Any) -> np.ndarray:
    v = np.asarray(values, dtype=float).ravel()
    return v[np.isfinite(v)]


def is_constant(values: Any, *, probability: bool = False) -> bool:
    """True when the finite ``values`` are equal for a reader (within 0.1 point for probabilities, else within
    a millionth of their magnitude)."""
    v = _finite(values)
    if v.size < 2:
        return True
    spread = float(v.max() - v.min())
    if probability:
        return spread < PROBABILITY_TOLERANCE
    return spread <= RELATIVE_TOLERANCE * max(float(np.abs(v).max()), 1e-12)


def _show(value: float, column: str) -> str:
    if column == "probability_alive":
        return f"{value:.1%}"
    return f"{value:,.4g}"


def distribution_problem(values: Any, column: str = "clv") -> str | None:
    """Why a histogram of ``values`` (one per customer) would say nothing, or None when it is worth drawing."""
    v = _finite(values)
    name = _NAMES.get(column, column.replace("_", " "))
    if v.size == 0:
        return f"No customer has a finite {name}: there is nothing to plot."
    if v.size == 1:
        return f"There is one customer, with {name} {_show(v[0], column)}: a histogram would be one bar."
    if is_constant(v, probability=column == "probability_alive"):
        lo, hi = float(v.min()), float(v.max())
        where = (f"{_show(lo, column)}" if _show(lo, column) == _show(hi, column)
                 else f"between {_show(lo, column)} and {_show(hi, column)}")
        return f"All {v.size:,} customers have {name} {where}: a histogram would be one bar."
    return None


def surface_problem(z: Any, label: str) -> str | None:
    """Why a heatmap of ``z`` would be one flat colour, or None."""
    v = _finite(z)
    if v.size == 0:
        return f"There is no finite {label} to map."
    if is_constant(v, probability=label == "P(alive)"):
        shown = f"{v.mean():.1%}" if label == "P(alive)" else f"{v.mean():,.4g}"
        return f"{label} is {shown} for every purchase history: the map would be one flat colour."
    return None


def no_repeat_problem(frequency: Any) -> str | None:
    """A sentence when no customer made a repeat purchase (frequency and recency plots say nothing)."""
    f = _finite(frequency)
    if f.size == 0 or f.max() <= 0:
        return "No customer made a repeat purchase, so there is no frequency or recency to plot."
    return None


def curves_problem(values: Any, what: str) -> str | None:
    """A sentence when the columns of ``values`` (customers x variants) hold nothing to rank or accumulate."""
    v = np.asarray(values, dtype=float)
    if v.ndim == 1:
        v = v[:, None]
    if v.shape[0] < 2:
        return f"There {'is one customer' if v.shape[0] == 1 else 'are no customers'}: a {what} needs several."
    if not np.isfinite(v).any() or np.nansum(np.abs(v)) == 0:
        return f"Every value is zero: a {what} has nothing to show."
    return None
