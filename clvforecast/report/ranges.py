"""The report's ranges (predictive intervals) in numbers and words: what each range includes, for a reader.

Two kinds of range appear on totals (see :func:`clvforecast.forecast_totals`):

* **model-only**: the distribution of the total as the model sees it: each customer's purchase process, the
  uncertainty of the model's parameters and the spend per purchase, with customers independent of each other;
* **backtest-calibrated**: the model-only distribution widened and shifted by the model's own errors on the
  totals at earlier cutoffs and on the holdout, which carry the shocks that hit every customer at once.

Per customer there is one kind (:func:`clvforecast.predictive_clv` with ``interval``): the purchase process,
the purchase model's parameter uncertainty and the customer's spend per purchase.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from .format import Formatter

_INCLUDES = {"process": "the purchase process (chance in when and how often each customer buys)",
             "parameter": "the uncertainty of the model's parameters",
             "spend": "the spend per purchase"}


def includes_words(includes: Any) -> str:
    """``["process", "parameter", "spend"]`` in words, joined with commas and "and"."""
    parts = [_INCLUDES.get(str(k), str(k)) for k in (includes or ["process", "parameter"])]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def pair(row: pd.Series, low: str, high: str) -> list[float] | None:
    """``[row[low], row[high]]`` when both are there and finite, else None."""
    if low not in row.index or high not in row.index:
        return None
    values = [float(row[low]), float(row[high])]
    return values if all(math.isfinite(v) for v in values) else None


def totals_ranges(totals: pd.DataFrame | None, holdout: str | None) -> dict[str, Any] | None:
    """The base's totals with their ranges, as plain numbers and sentences (None without ranges).

    ``{"level", "includes", "expected": {quantity: value}, "model_only": {quantity: [lo, hi]},
    "calibrated": {quantity: [lo, hi]} | None, "n_cutoffs", "past_pct_error": {target: %}, "model_only_text",
    "calibrated_text"}``; quantities are ``purchases``, ``revenue``, ``clv`` (purchases only without amounts).
    ``holdout`` is the holdout's length in words, for the calibrated range's sentence.
    """
    if totals is None:
        return None
    level = float(totals.attrs.get("level", 0.9))
    includes = list(totals.attrs.get("includes") or ["process", "parameter"])
    out: dict[str, Any] = {
        "level": level, "includes": includes,
        "expected": {q: float(totals.loc[q, "expected"]) for q in totals.index},
        "model_only": {q: pair(totals.loc[q], "lower", "upper") for q in totals.index},
        "calibrated": None,
    }
    pct = f"{100 * level:.0f}%"
    out["model_only_text"] = (
        f"Model-only {pct} ranges include {includes_words(includes)}; they take customers to be independent "
        "of each other, so they leave out shocks that hit every customer at once (a season, a campaign, a "
        "change in the market).")
    if "calibrated_lower" in totals.columns:
        out["calibrated"] = {q: pair(totals.loc[q], "calibrated_lower", "calibrated_upper") for q in totals.index}
        past = totals.attrs.get("past_errors") or {}
        k = int(past.get("purchases", {}).get("n_cutoffs", 0))
        out["n_cutoffs"] = k
        out["past_pct_error"] = {t: float(v["mean_pct_error"]) for t, v in past.items()}
        err = out["past_pct_error"].get("purchases")
        bias = "" if err is None else (
            f"; at those cutoffs the actual purchases were on average {abs(err):.0f}% "
            f"{'above' if err >= 0 else 'below'} the model's forecast")
        where = (f"on the holdout and at {k - 1} earlier cutoffs" if k > 1 else "on the holdout")
        span = f" (holdouts of up to {holdout}, the model refitted each time)" if holdout else ""
        out["calibrated_text"] = (
            f"Backtest-calibrated {pct} ranges add the model's own errors on the totals, measured {where}{span}"
            f"{bias}: they carry the shocks that hit every customer at once, as far as the past shows them.")
    return out


def range_words(fmt: Formatter, lo_hi: list[float] | None, money: bool) -> str:
    """``"$1,200 to $3,400"`` or ``"1,871 to 2,194"`` (``"n/a"`` without a range)."""
    if lo_hi is None:
        return "n/a"
    show = fmt.money if money else fmt.count
    return f"{show(lo_hi[0])} to {show(lo_hi[1])}"


def both_ranges(fmt: Formatter, rng: dict[str, Any], quantity: str, *, money: bool) -> str:
    """``"90% range: model-only $64,723 to $77,366; backtest-calibrated (with the model's past errors) $55,000
    to $95,000"``."""
    text = f"{100 * rng['level']:.0f}% range: model-only {range_words(fmt, rng['model_only'].get(quantity), money)}"
    cal = (rng.get("calibrated") or {}).get(quantity)
    if cal is not None:
        text += f"; backtest-calibrated (with the model's past errors) {range_words(fmt, cal, money)}"
    return text


def card_ranges(fmt: Formatter, rng: dict[str, Any], quantity: str, *, money: bool) -> str:
    """The short form for a card: ``"90% range: $62,560 to $74,849 model-only, $65,884 to $92,972
    backtest-calibrated"``."""
    text = f"{100 * rng['level']:.0f}% range: {range_words(fmt, rng['model_only'].get(quantity), money)} model-only"
    cal = (rng.get("calibrated") or {}).get(quantity)
    return text + (f", {range_words(fmt, cal, money)} backtest-calibrated" if cal is not None else "")
