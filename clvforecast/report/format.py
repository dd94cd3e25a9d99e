"""Numbers and words for a business reader: money with its currency, thousands separators, percentages,
horizons and durations in words, column headers and the glossary.

Every number the report prints goes through :class:`Formatter`, so that one setting (``currency``) and one set
of rules hold everywhere:

* money: the currency as given (a symbol such as ``"$"`` is prefixed, ``"$1,234"``; a code such as ``"GBP"``
  is prefixed with a space, ``"GBP 1,234"``), to 0 decimals from 1,000 up and to 2 below;
* counts: whole numbers with thousands separators; other numbers: at most 3 significant decimals;
* percentages from fractions (``0.256`` -> ``"25.6%"``);
* a missing or undefined value prints as ``"n/a"``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Any

from ..units import UNIT_NAMES, check_time_unit, parse_horizon


def check_currency(currency: str | None) -> str | None:
    """``currency`` stripped, or ``ValueError`` naming what is accepted (``None``: amounts without a unit).

    Accepted: a symbol (``"$"``, ``"£"``, ``"€"``, ``"R$"``) or a code (``"GBP"``, ``"kr"``) of at most four
    characters, no digits or spaces.
    """
    if currency is None:
        return None
    text = currency.strip() if isinstance(currency, str) else ""
    if not (0 < len(text) <= 4) or any(c.isdigit() or c.isspace() for c in text):
        raise ValueError(
            "currency must be a symbol such as '$', '£' or '€', or an ISO code such as 'USD' or 'GBP'; "
            f"got {currency!r}"
        )
    return currency.strip()


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def money_decimals(values: Any) -> int:
    """0 when the largest magnitude among ``values`` is 1,000 or more, else 2 (one choice for a column)."""
    finite = [abs(float(v)) for v in values if not _missing(v)]
    return 0 if finite and max(finite) >= 1000 else 2


@dataclass(frozen=True)
class Formatter:
    """Formats numbers for the report; ``currency`` is a symbol, an ISO code or None (no unit)."""

    currency: str | None = None

    def money(self, value: Any, decimals: int | None = None) -> str:
        """``"$1,234"``, ``"$12.50"``, ``"GBP 1,234"``, ``"-$3.20"``; 0 decimals from 1,000 up by default."""
        if _missing(value):
            return "n/a"
        v = float(value)
        if decimals is None:
            decimals = 0 if abs(v) >= 1000 else 2
        digits = f"{abs(v):,.{decimals}f}"
        sign = "-" if v < 0 and float(digits.replace(",", "")) != 0 else ""
        cur = self.currency
        if not cur:
            return sign + digits
        if cur[-1].isalpha():  # a code: "GBP 1,234", "kr 50.00"
            return f"{sign}{cur}\u00a0{digits}"
        return f"{sign}{cur}{digits}"

    def count(self, value: Any) -> str:
        """A whole number with thousands separators: ``"2,357"``."""
        return "n/a" if _missing(value) else f"{round(float(value)):,}"

    def number(self, value: Any, decimals: int = 2) -> str:
        """A plain number with separators and ``decimals`` decimals: ``"1,234.57"``."""
        return "n/a" if _missing(value) else f"{float(value):,.{decimals}f}"

    def pct(self, fraction: Any, decimals: int = 1) -> str:
        """A fraction as a percentage: ``0.256`` -> ``"25.6%"``."""
        return "n/a" if _missing(fraction) else f"{100 * float(fraction):.{decimals}f}%"

    def signed_pct(self, fraction: Any, decimals: int = 1) -> str:
        """A signed percentage: ``-0.121`` -> ``"-12.1%"``, ``0.557`` -> ``"+55.7%"``."""
        return "n/a" if _missing(fraction) else f"{100 * float(fraction):+.{decimals}f}%"

    def cell(self, value: Any, kind: str) -> str:
        """One table cell by its column ``kind`` (see :data:`KINDS`)."""
        if kind.endswith("_range"):  # a [lower, upper] pair
            if not isinstance(value, (list, tuple)) or len(value) != 2 or any(_missing(v) for v in value):
                return "n/a"
            base = kind[: -len("_range")]
            return f"{self.cell(value[0], base)} to {self.cell(value[1], base)}"
        if kind.startswith("opt_"):  # blank when there is nothing to show (an informational row of a ledger)
            return "" if value is None else self.cell(value, kind[len("opt_"):])
        if kind == "text" or isinstance(value, str):
            return "" if value is None else str(value)
        if _missing(value):
            return "n/a"
        if kind.startswith("money"):
            return self.money(value, int(kind[-1]) if kind[-1].isdigit() else None)
        if kind == "int":
            return self.count(value)
        if kind == "pct":
            return self.pct(value)
        if kind == "signed_pct":
            return self.signed_pct(value)
        if kind.startswith("num"):
            return self.number(value, int(kind[-1]) if kind[-1].isdigit() else 2)
        if kind == "param":
            v = float(value)
            return f"{v:,.3f}" if v == 0 or 1e-3 <= abs(v) < 1e6 else f"{v:.3g}"
        return str(value)


#: Column kinds of the summary's tables: how :meth:`Formatter.cell` prints them. ``<kind>_range`` cells hold
#: ``[lower, upper]`` and print ``"$12 to $340"``; ``opt_<kind>`` prints None as a blank instead of "n/a".
KINDS = ("text", "id", "date", "int", "money", "money0", "money2", "num1", "num2", "num3", "pct",
         "signed_pct", "param", "formatted", "int_range", "money_range", "money0_range", "money2_range")


def unit_words(value: float, unit: str) -> str:
    """``unit_words(52, "W")`` -> ``"52 weeks"``; 1 gives the singular; up to 3 significant decimals."""
    name = UNIT_NAMES[check_time_unit(unit)]
    return f"{value:,.4g} {name[:-1] if value == 1 else name}"


def horizon_words(horizon: float | int | str, time_unit: str) -> str:
    """A horizon in the words it was given in: ``"12M"`` -> ``"12 months"``, ``52`` (weeks) -> ``"52 weeks"``."""
    m = re.match(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([DWMY])\s*$", horizon, re.IGNORECASE) if isinstance(
        horizon, str) else None
    if m:
        return unit_words(float(m.group(1)), m.group(2).upper())
    return unit_words(parse_horizon(horizon, time_unit), time_unit)


def duration_words(days: float) -> str:
    """A span of days in words: whole weeks (``"39 weeks"``), whole months within two days (``"6 months"``),
    else days with the months beside them (``"162 days (about 5.3 months)"``)."""
    days = float(days)
    if days >= 7 and days % 7 == 0 and days <= 7 * 104:
        return unit_words(days / 7, "W")
    months = days / (365.25 / 12)
    if months >= 1.5 and abs(months - round(months)) * (365.25 / 12) <= 2:
        return unit_words(round(months), "M")
    if days >= 60:
        return f"{days:,.0f} days (about {months:.1f} months)"
    return unit_words(days, "D")


def adjective(words: str) -> str:
    """A duration as an adjective: ``"39 weeks"`` -> ``"39-week"``, ``"162 days (about 5.3 months)"`` ->
    ``"162-day"``."""
    number, unit = words.split()[:2]
    return f"{number}-{unit[:-1] if unit.endswith('s') else unit}"


def date_words(value: Any) -> str:
    """An ISO date as ``"30 June 1998"`` (``"n/a"`` for None)."""
    if value is None:
        return "n/a"
    d = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])
    return f"{d.day} {d:%B %Y}"


def month_words(value: Any) -> str:
    """``"March 1998"``."""
    d = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])
    return f"{d:%B %Y}"


# --------------------------------------------------------------------------------------------------------------
# Column headers: every table column the summary holds has a header in plain words here. ``{unit}`` is the
# report's time unit ("weeks"), ``{disc}`` says how the CLV is discounted.
# --------------------------------------------------------------------------------------------------------------
LABELS: dict[str, str] = {
    "customer_id": "Customer",
    "clv": "CLV ({disc})",
    "clv_lower": "CLV, low end of {level} range",
    "clv_upper": "CLV, high end of {level} range",
    "clv_if_alive": "Value if retained ({disc})",
    "expected_purchases": "Expected purchases",
    "expected_purchases_lower": "Expected purchases, low end of {level} range",
    "expected_purchases_upper": "Expected purchases, high end of {level} range",
    "clv_range": "CLV, {level} range ({disc})",
    "expected_purchases_range": "Purchases, {level} range",
    "probability_alive": "P(alive)",
    "expected_spend": "Expected spend per purchase",
    "frequency": "Repeat purchases",
    "first_purchase": "First purchase",
    "last_purchase": "Last purchase",
    "monetary_value": "Average repeat spend",
    "past_spend": "Past repeat spend",
    "silence": "Silent for ({unit})",
    "usual_gap": "Usual gap ({unit})",
    "tier": "Tier",
    "customers": "Customers",
    "clv_from": "Lowest CLV ({disc})",
    "clv_to": "Highest CLV ({disc})",
    "clv_total": "Total CLV ({disc})",
    "share_of_clv": "Share of CLV",
    "share_of_past_spend": "Share of past repeat spend",
    "method": "Method",
    "variant": "Method",
    "total": "Total value (undiscounted)",
    "mean": "Average per customer (undiscounted)",
    "top20_share": "Share held by its top 20%",
    "spearman": "Rank correlation with the model",
    "rank_correlation": "Rank correlation with what happened",
    "top10_overlap": "Top 10% in common with the model",
    "top20_overlap": "Top 20% in common with the model",
    "total_predicted": "Predicted total",
    "total_actual": "Actual total",
    "pct_error": "Error of the total",
    "mae": "Average error per customer",
    "rmse": "Root mean squared error",
    "top_decile_capture": "Share captured by the predicted top 10%",
    "gini": "Gini (ranking quality)",
    "bucket": "Repeat purchases in the calibration period",
    "actual_purchases": "Actual",
    "bgnbd_purchases": "Model",
    "pnbd_purchases": "Model",
    "mbgnbd_purchases": "Model",
    "avg_formula_purchases": "Historical formula",
    "run_rate_purchases": "Run rate",
    "parameter": "Parameter",
    "coef": "Estimate",
    "se": "Standard error",
    "lower": "95% interval, low",
    "upper": "95% interval, high",
    "score": "Score (5 best)",
    "R_customers": "Customers by recency score",
    "R_mean_clv": "Average CLV by recency score (undiscounted)",
    "F_customers": "Customers by frequency score",
    "F_mean_clv": "Average CLV by frequency score (undiscounted)",
    "M_customers": "Customers by spend score",
    "M_mean_clv": "Average CLV by spend score (undiscounted)",
    "step": "Step",
    "rows": "Rows removed",
    "value": "Amount (value of the rows)",
    "note": "Note",
    "model": "Model",
    "n_params": "Parameters",
    "log_likelihood": "Log-likelihood",
    "aic": "AIC",
    "bic": "BIC",
    "chosen": "Chosen",
    "estimate_note": "Note",
    "ledger_rows": "Rows",
    "date": "Date",
    "day_value": "Value of the purchase day",
    "period": "Period",
    "range_kind": "Range",
    "purchases_range": "Holdout purchases: {level} range",
    "purchases_inside": "Actual purchases inside?",
    "spend_range": "Holdout spend: {level} range",
    "spend_inside": "Actual spend inside?",
    "quantity": "Quantity",
    "purchases": "Purchases",
    "revenue": "Revenue (undiscounted)",
    "total_clv": "CLV ({disc})",
    "target": "Holdout quantity",
    "coverage": "Customers whose actual value fell inside their range",
    "interval_width": "Average width of the range",
    "holdout_total_actual": "Actual total",
    "tracking_error": "Tracking error (purchases)",
    "tracking_error_pct": "Tracking error, share of the actual total",
    "fit": "Fit",
}

#: The purchase models' names for a reader (the evaluation's method codes are the models' short names).
MODEL_LABELS: dict[str, str] = {"bgnbd": "BG/NBD", "pnbd": "Pareto/NBD", "mbgnbd": "MBG/NBD", "bgbb": "BG/BB"}

#: The evaluation's method codes in words: as a table row, and inside a sentence.
METHODS: dict[str, str] = {**{k: f"Model ({v})" for k, v in MODEL_LABELS.items()},
                           "avg_formula": "Historical formula", "run_rate": "Run rate",
                           "predictive": "Model (predictive CLV)"}
METHOD_WORDS: dict[str, str] = {**{k: "the model" for k in MODEL_LABELS}, "avg_formula": "the historical formula",
                                "run_rate": "the run rate", "predictive": "the model"}


def label(key: str, **words: str) -> str:
    """The header of column ``key``; an unknown key becomes words (``"holdout_mae"`` -> ``"Holdout mae"``)."""
    text = LABELS.get(key)
    if text is None:
        text = key.replace("_", " ").strip()
        text = text[:1].upper() + text[1:]
    return text.format(**{"unit": "", "disc": "", "level": "90%", **words}).replace(" ()", "")


#: The glossary at the end of the report: (term, definition, the section whose presence makes it relevant).
GLOSSARY: tuple[tuple[str, str, str | None], ...] = (
    ("CLV (customer lifetime value)", "The value a customer is expected to bring over the forecast horizon: "
     "expected purchases times expected spend per purchase, times the margin, discounted to today.", "spend"),
    ("Discounted / undiscounted", "Discounted values count money further in the future for less (at the "
     "annual discount rate); undiscounted values add it up as it comes. The historical formula is "
     "undiscounted, so comparisons with it use the undiscounted CLV.", "spend"),
    ("P(alive)", "The probability that a customer is still active (has not silently left) at the end of "
     "the data, given when and how often they bought.", None),
    ("Repeat purchases", "Purchases after a customer's first one; purchases on one day count once.", None),
    ("Value if retained", "A customer's CLV if they are known to still be active: what keeping a slipping "
     "customer is worth.", "silent_customers"),
    ("Silent customer", "A customer who spent a lot in the past but has probably left without a word.",
     "silent_customers"),
    ("Tier", "A group of customers by their CLV: Q1 is the most valuable quarter, Q4 the least.", "tiers"),
    ("Historical formula", "The classic average-based CLV: average purchase value x purchase frequency x "
     "time, the same for every customer, ignoring that customers leave.", "tiers"),
    ("Run rate", "Each customer's own past spending rate, extended over the horizon.", "tiers"),
    ("Calibration period", "The earlier part of the data that the models were fitted on for the check.",
     "validation"),
    ("Holdout", "The later part of the data, hidden from the models, on which their predictions were "
     "checked against what customers actually did.", "validation"),
    ("Rank correlation", "How well a method orders customers from most to least valuable (1 = the same "
     "order, 0 = unrelated).", "validation"),
    ("Gini", "A score of how well a ranking puts the customers who buy most first (0 = random, higher is "
     "better).", "validation"),
    ("Range (90% range)", "A predictive interval: where the actual outcome should fall with the stated "
     "probability (90% of the time for a 90% range). The report says what each range includes: the purchase "
     "process (chance in when and how often a customer buys), the uncertainty of the model's parameters, and the "
     "spend per purchase.", "ranges"),
    ("Model-only range", "The range of a total as the model sees it: the customers' own randomness and the "
     "model's parameter uncertainty, with customers independent of each other. It leaves out shocks that hit "
     "every customer at once (a season, a campaign), so it is usually too narrow for a total.", "ranges"),
    ("Backtest-calibrated range", "The model-only range of a total widened (and shifted) by the model's own "
     "past errors on the totals, measured by refitting it at earlier cutoffs and on the holdout.", "calibrated"),
    ("Coverage", "The share of customers whose actual holdout value fell inside their range: about the range's "
     "level (or a little above, for whole-number counts) when the ranges are right.", "coverage"),
    ("PIT (probability integral transform)", "Where each customer's actual holdout purchases fell within their "
     "predicted distribution; when the predictions are right, the PIT histogram is flat.", "coverage"),
    ("BG/NBD", "A purchase model (beta-geometric / negative binomial): while active, each customer buys at "
     "their own steady rate, and after each purchase may leave for good.", "bgnbd"),
    ("Pareto/NBD", "A purchase model: while active, each customer buys at their own steady rate and may leave "
     "for good at any moment, at their own rate.", "pnbd"),
    ("MBG/NBD", "A purchase model like BG/NBD, except that a customer may also leave right after the first "
     "purchase, so one-time buyers are not all counted as active.", "mbgnbd"),
    ("Gamma-Gamma", "The spend model: each customer has their own average spend per purchase, estimated by "
     "blending their own average with everyone's.", "spend"),
    ("AIC / BIC", "Scores of a model's fit to the calibration data that penalise parameters (lower is "
     "better).", "model_comparison"),
)
