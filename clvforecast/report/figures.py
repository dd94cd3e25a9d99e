"""The report's figures: one function each, from the summary and :mod:`clvforecast.plotting`.

A figure function is registered with ``@figure(key, title, caption)`` and takes ``(summary, results)``; it
returns either a function that draws into a matplotlib Axes, or a sentence (a ``str``) when the data leave
nothing to plot. The plotting functions apply the same rule themselves (they draw a sentence into the Axes,
:func:`clvforecast.plotting._robust.say`); such an Axes becomes a sentence here too, never an image of text.

Sections list the figures they show by key (``summary[section]["figures"]``, or any list under a key ending in
``figures``, see :func:`figure_keys`); :func:`draw_figures` draws exactly those, once, as PNG data embedded in
the page. Figures are drawn with offsets off (no ``1e-8+1``
axes).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import plotting
from ..plotting._robust import no_offset, no_repeat_problem, said
from .compute import Results

Draw = Callable[[Any], Any]


@dataclass(frozen=True)
class Figure:
    """A drawn figure (``png``: base64 PNG) or, when the data leave nothing to plot, a ``sentence``."""

    key: str
    title: str
    caption: str = ""
    png: str | None = None
    sentence: str | None = None


_FIGURES: dict[str, tuple[str, str, Callable[[dict[str, Any], Results], Draw | str]]] = {}
#: Figure sizes (inches) other than the default 6.4 x 3.8.
_SIZES: dict[str, tuple[float, float]] = {}


def figure(key: str, title: str, caption: str = "", size: tuple[float, float] | None = None
           ) -> Callable[[Any], Any]:
    """Register a figure function (see the module docstring); ``size`` in inches when not the default."""

    def register(fn: Callable[[dict[str, Any], Results], Draw | str]) -> Any:
        _FIGURES[key] = (title, caption, fn)
        if size is not None:
            _SIZES[key] = size
        return fn

    return register


def figure_keys(entry: Any) -> list[str]:
    """The figures a section entry lists: every list under a key ending in ``figures``, nested dicts included
    (``{"figures": [...], "ranges": {"figures": [...]}}``)."""
    if not isinstance(entry, dict):
        return []
    keys: list[str] = []
    for name, value in entry.items():
        if str(name).endswith("figures") and isinstance(value, list):
            keys += [str(k) for k in value]
        elif isinstance(value, dict):
            keys += figure_keys(value)
    return keys


def draw_figures(summary: dict[str, Any], results: Results) -> dict[str, Figure]:
    """Every figure the summary's sections list, drawn once."""
    keys = [k for sec in summary["sections"] for k in figure_keys(summary[sec["id"]])]
    return {k: draw_figure(k, summary, results) for k in dict.fromkeys(keys)}


def draw_figure(key: str, summary: dict[str, Any], results: Results, size: tuple[float, float] = (6.4, 3.8)
                ) -> Figure:
    """One registered figure: drawn to PNG, or the sentence that replaces it."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    title, caption, fn = _FIGURES[key]
    size = _SIZES.get(key, size)
    title = title.format(unit=summary["settings"]["unit_name"][:-1])
    what = fn(summary, results)
    if isinstance(what, str):
        return Figure(key, title, caption, sentence=what)
    with plt.rc_context({"axes.formatter.useoffset": False}):
        fig, ax = plt.subplots(figsize=size)
        try:
            what(ax)
            sentence = said(ax)
            for other in fig.axes:  # colorbars too
                if other.get_gid() is None:
                    no_offset(other)
            png = None if sentence else _png(fig)
        finally:
            plt.close(fig)
    return Figure(key, title, caption, png=png, sentence=sentence)


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _thousands(ax: Any) -> None:
    """Thousands separators on the x axis (totals run into millions)."""
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


def _model_label(results: Results) -> str:
    """The validated purchase model's name ("BG/NBD", "Pareto/NBD", ...)."""
    return str(getattr(results.evaluation.model, "LABEL", "") or "model")


def _money_label(summary: dict[str, Any], what: str) -> str:
    cur = summary["settings"]["currency"]
    return f"{what} ({cur})" if cur else what


# ----------------------------------------------------------------------------------------------------------
# The figures
# ----------------------------------------------------------------------------------------------------------
@figure("clv_distribution", "CLV per customer")
def clv_distribution(summary: dict[str, Any], results: Results) -> Draw:
    disc = "discounted" if summary["settings"]["discount_rate"] else "undiscounted"

    def draw(ax: Any) -> None:
        plotting.plot_forecast_distribution(results.clv, "clv", ax=ax)
        ax.set_xlabel(_money_label(summary, f"CLV over the next {summary['settings']['horizon_words']}, {disc}"))

    return draw


@figure("alive_distribution", "Probability that each customer is still active")
def alive_distribution(summary: dict[str, Any], results: Results) -> Draw:
    return lambda ax: plotting.plot_forecast_distribution(results.clv, "probability_alive", ax=ax)


@figure("purchases_distribution", "Expected purchases per customer over the horizon")
def purchases_distribution(summary: dict[str, Any], results: Results) -> Draw:
    return lambda ax: plotting.plot_forecast_distribution(results.clv, "expected_purchases", ax=ax)


@figure("alive_heatmap", "P(alive) by number of repeat purchases and time of the last one",
        "each cell: the probability that a customer with that history is still active")
def alive_heatmap(summary: dict[str, Any], results: Results) -> Draw | str:
    problem = no_repeat_problem(results.rfm["frequency"])
    if problem:
        return problem
    return lambda ax: plotting.plot_frequency_recency_heatmap(
        results.purchase_model, quantity="probability_alive", rfm=results.rfm, ax=ax)


@figure("lorenz", "Concentration of value (Pareto curve)")
def lorenz(summary: dict[str, Any], results: Results) -> Draw:
    data = results.comparison if results.comparison is not None else results.clv["clv"].rename("model")
    return lambda ax: plotting.plot_lorenz(data, ax=ax)


@figure("tiers", "Share of value by CLV tier", "shares of each method's own undiscounted total")
def tiers(summary: dict[str, Any], results: Results) -> Draw:
    return lambda ax: plotting.plot_tiers(results.comparison, ax=ax)


@figure("predictive_vs_historical", "Model CLV vs each customer's run rate",
        "both undiscounted over the horizon; the dashed line is equality")
def predictive_vs_historical(summary: dict[str, Any], results: Results) -> Draw:
    def draw(ax: Any) -> None:
        plotting.plot_predictive_vs_historical(results.comparison, "run_rate", ax=ax)
        if said(ax) is None:
            ax.set_xlabel(_money_label(summary, "run-rate value"))
            ax.set_ylabel(_money_label(summary, "model CLV, undiscounted"))

    return draw


@figure("tracking_cumulative", "Repeat purchases to date, actual vs model")
def tracking_cumulative(summary: dict[str, Any], results: Results) -> Draw:
    return lambda ax: plotting.plot_tracking(results.evaluation.tracking, cumulative=True, ax=ax,
                                             model_label=_model_label(results))


@figure("tracking_incremental", "Repeat purchases per {unit}, actual vs model")
def tracking_incremental(summary: dict[str, Any], results: Results) -> Draw:
    return lambda ax: plotting.plot_tracking(results.evaluation.tracking, cumulative=False, ax=ax,
                                             model_label=_model_label(results))


@figure("conditional_expectations", "Holdout purchases by number of earlier repeat purchases")
def conditional_expectations(summary: dict[str, Any], results: Results) -> Draw:
    return lambda ax: plotting.plot_conditional_expectations(results.evaluation.conditional_expectations, ax=ax)


@figure("period_transactions", "Customers by number of repeat purchases in the calibration period")
def period_transactions(summary: dict[str, Any], results: Results) -> Draw:
    return lambda ax: plotting.plot_period_transactions(results.evaluation.period_transactions, ax=ax,
                                                        model_label=_model_label(results))


@figure("gains", "Share of holdout spend captured by the customers ranked first")
def gains(summary: dict[str, Any], results: Results) -> Draw:
    ev = results.evaluation
    target = "spend" if "actual_spend" in ev.customers.columns else "purchases"
    return lambda ax: plotting.plot_gains(ev.customers, target=target, ax=ax)


# ----------------------------------------------------------------------------------------------------------
# Ranges
# ----------------------------------------------------------------------------------------------------------
@figure("total_range", "The forecast total and its ranges",
        "the dot is the expected total; each bar the range of one kind (see the list above)", size=(7.5, 2.6))
def total_range(summary: dict[str, Any], results: Results) -> Draw:
    money = results.totals is not None and "clv" in results.totals.index
    quantity = "clv" if money else "purchases"
    disc = "discounted" if summary["settings"]["discount_rate"] else "undiscounted"
    words = (_money_label(summary, f"lifetime value of the base, {disc}") if money else "purchases of the base")

    def draw(ax: Any) -> None:
        plotting.plot_total_intervals(results.totals, quantity=quantity, ax=ax)
        ax.set_title("")
        _thousands(ax)
        ax.set_xlabel(f"{words}, next {summary['settings']['horizon_words']}")

    return draw


@figure("customer_ranges", "The top customers with their ranges",
        "the dot is the expected value, the bar the customer's range", size=(6.4, 5.2))
def customer_ranges(summary: dict[str, Any], results: Results) -> Draw:
    money = results.has_spend
    column = "clv" if money else "expected_purchases"
    top = min(int(summary["settings"]["top_n"]), 20)

    def draw(ax: Any) -> None:
        plotting.plot_customer_intervals(results.clv, column=column, top=top, ax=ax)
        if said(ax) is None:
            ax.set_title("")
            ax.set_ylabel("customer")
            ax.set_xlabel(_money_label(summary, "CLV over the horizon") if money else "purchases over the horizon")

    return draw


@figure("pit", "Where the actual holdout purchases fell in their predicted distributions (PIT)",
        "flat when the predictions are right; a U shape means ranges too narrow, a hump too wide, a slope a bias")
def pit(summary: dict[str, Any], results: Results) -> Draw:
    return lambda ax: plotting.plot_pit(results.evaluation, ax=ax)


@figure("holdout_total", "Holdout purchases: the actual total against the ranges of the total",
        "the dashed line is what happened", size=(6.4, 2.8))
def holdout_total(summary: dict[str, Any], results: Results) -> Draw:
    def draw(ax: Any) -> None:
        plotting.plot_total_intervals(results.evaluation.totals, quantity="purchases", ax=ax)
        ax.set_title("")
        _thousands(ax)
        ax.set_xlabel("repeat purchases in the holdout")

    return draw
