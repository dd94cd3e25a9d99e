"""The historical CLV formula, a data-driven lifespan, and per-customer historical forecasts.

Businesses compute customer lifetime value with a simple formula on past transactions (the "seeds' method"):

================================  ==========================================================================
average purchase value            ``APV = revenue / purchases``
average purchase frequency        ``APFR = purchases / customers`` (unique customers who bought in the period)
customer value                    ``CV = APV x APFR`` = revenue per customer per period
annual value                      ``CV x periods_per_year`` (a week of data: x 52; a month: x 12; a year: x 1)
CLV                               ``annual value x margin x lifespan_years``
net CLV                           ``CLV - acquisition_cost`` (per customer)
================================  ==========================================================================

With several customer groups or services, each segment's value is computed first and the segments are then
combined, weighted by their numbers of customers (:func:`historical_clv`).

This module also gives

* :func:`estimate_lifespan`: the average customer lifespan in years from the data itself (1 / churn, churn
  measured between consecutive windows), for users without a lifespan figure;
* :func:`implied_lifetime`: the customer lifetime a fitted BG/NBD model implies (median and truncated
  mean), to set the two side by side;
* :func:`historical_forecast`: what two historical rules predict for each customer over a horizon (the average
  formula and a customer's own run rate), for holdout validation and for :func:`~clvforecast.compare_clv`.

Time is measured at day resolution everywhere in clvforecast: all purchases of a customer on one calendar day
are one transaction. :func:`historical_clv` follows this by default and can count rows instead
(``purchase_unit="row"``).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import integrate, optimize, special

from ._checks import check_number as _check_number
from .exceptions import DataQualityWarning, DataValidationError
from .io import Source, TransactionLog, _entry, _ledger, _to_date, as_log, read_transactions
from .rfm import rfm_summary
from .units import DAYS_PER_UNIT, UNIT_NAMES, check_time_unit, days_per, parse_horizon

__all__ = [
    "HistoricalCLV",
    "ImpliedLifetime",
    "LifespanEstimate",
    "estimate_lifespan",
    "historical_clv",
    "historical_forecast",
    "implied_lifetime",
]

#: Label of the combined row of :attr:`HistoricalCLV.table`.
ALL = "all"
DAYS_PER_YEAR = DAYS_PER_UNIT["Y"]
_VALUE_COLUMNS = ["apv", "apfr", "customer_value", "annual_value", "lifespan_years", "clv", "net_clv"]


# ----------------------------------------------------------------------------------------------------
# shared helpers
# ----------------------------------------------------------------------------------------------------
def _require_amount(log: TransactionLog, where: str) -> None:
    if not log.has_amount:
        raise ValueError(
            f"{where} needs what each purchase was worth, and this log has no amounts (amount=None): pass "
            "amount='<the column of purchase values>', or price= (and quantity=) for line items. For a "
            "frequency-only log use estimate_lifespan, historical_forecast (purchases only) or the purchase models"
        )


def _examples(values: Any, k: int = 3) -> str:
    return ", ".join(repr(v) for v in list(values)[:k])


def _log_for(transactions: Any, read_options: dict[str, Any], where: str, *, amount_optional: bool = False) -> TransactionLog:
    """The source description; a function that needs no amounts reads none unless told (``amount=None``):
    unless ``amount`` or ``price`` is given, or ``returns='net'`` (netting needs the amounts)."""
    if amount_optional and not isinstance(transactions, TransactionLog) and not (
        {"amount", "price"} & set(read_options) or read_options.get("returns") == "net"
    ):
        read_options = {**read_options, "amount": None}
    return as_log(transactions, where=where, **read_options)


def _read(log: TransactionLog, *, segment: Any = None) -> pd.DataFrame:
    """Validated transactions (``customer_id, date, amount[, segment]``) via :func:`read_transactions`.

    ``segment`` may be a column name (read along with the other columns) or a mapping customer -> segment
    (looked up here). Without a segment the column ``segment`` is :data:`ALL` for every row. The result's
    ``attrs["ledger"]`` is the reading's ledger.
    """
    transactions = log.source
    column = segment if isinstance(segment, str) else None
    if segment is not None and column is None and not isinstance(segment, (Mapping, pd.Series)):
        raise TypeError(
            "segment must be None, the name of a column of the transactions, or a mapping (dict or Series) "
            f"customer_id -> segment; got {type(segment).__name__}"
        )
    if column is not None and isinstance(transactions, pd.DataFrame) and column not in transactions.columns:
        shown = ", ".join(repr(str(c)) for c in list(transactions.columns)[:20])
        raise DataValidationError(
            f"segment column {column!r} not found; the transactions have columns {shown}. Pass "
            "segment=<one of those columns> or a mapping (dict or Series) customer_id -> segment"
        )
    extra = tuple(log.extra_columns)
    if column is not None and column not in extra:
        extra = (*extra, column)
    try:
        # The segment column is carried through the reader unchanged, so it is read from a DataFrame, a CSV or
        # a Parquet file alike and the validated rows keep their segment.
        tx = read_transactions(dataclasses.replace(log, extra_columns=extra))
    except DataValidationError as exc:
        if column is not None and str(exc).startswith(f"column {column!r} not found"):
            raise DataValidationError(
                f"segment column {column!r} not found: {exc}; or pass a mapping customer_id -> segment"
            ) from exc
        raise
    if not log.has_amount:
        tx["amount"] = 0.0
    if column is not None:
        tx = tx.rename(columns={column: "segment"})
        missing = tx["segment"].isna()
        if missing.any():
            raise DataValidationError(
                f"segment column {column!r}: {int(missing.sum()):,} of {len(tx):,} rows have no segment, "
                f"e.g. for customers {_examples(tx.loc[missing, 'customer_id'].unique())}; fill them (e.g. "
                "'unknown') or drop those rows"
            )
    elif segment is not None:
        mapping = segment if isinstance(segment, pd.Series) else pd.Series(dict(segment), dtype=object)
        mapping = mapping[mapping.notna()]
        if mapping.index.has_duplicates:
            dup = mapping.index[mapping.index.duplicated()].unique()
            raise DataValidationError(
                f"the segment mapping lists {len(dup):,} customers more than once, e.g. {_examples(dup)}; "
                "give each customer one segment"
            )
        seg = tx["customer_id"].map(mapping)
        unknown = seg.isna()
        if unknown.any():
            ids = tx.loc[unknown, "customer_id"].unique()
            raise DataValidationError(
                f"the segment mapping has no segment for {len(ids):,} of {tx['customer_id'].nunique():,} "
                f"customers in the transactions, e.g. {_examples(ids)}; add them to the mapping (check that "
                f"its keys have the same type as the customer ids, here {tx['customer_id'].dtype})"
            )
        tx["segment"] = seg.to_numpy(dtype=object)
    else:
        tx["segment"] = ALL
    return tx


def _ledger_after(tx: pd.DataFrame, used: int, extra: list[dict[str, Any]]) -> dict[str, Any]:
    """The reading's ledger continued with ``extra`` entries and ``used`` rows."""
    ledger = tx.attrs["ledger"]
    return _ledger(ledger["rows_read"], [*ledger["entries"], *extra], used)


def _purchases(tx: pd.DataFrame, purchase_unit: str) -> pd.DataFrame:
    """One row per purchase: a customer's (segment's) calendar day for ``"day"``, a row for ``"row"``."""
    if purchase_unit == "row":
        return tx
    if purchase_unit != "day":
        raise ValueError(f"purchase_unit must be 'day' or 'row'; got {purchase_unit!r}")
    keys = ["segment", "customer_id", "date"]
    return tx.groupby(keys, sort=False, observed=True, as_index=False)["amount"].sum()


def _segment_totals(purchases: pd.DataFrame) -> pd.DataFrame:
    """customers, purchases and revenue per segment (sorted by segment when the labels can be ordered)."""
    g = purchases.groupby("segment", sort=False, observed=True)
    out = pd.DataFrame(
        {"customers": g["customer_id"].nunique(), "purchases": g.size(), "revenue": g["amount"].sum()}
    ).astype({"customers": "int64", "purchases": "int64", "revenue": "float64"})
    try:
        out = out.sort_index()
    except TypeError:  # labels of mixed types: keep order of appearance
        pass
    out.index.name = "segment"
    return out


# ----------------------------------------------------------------------------------------------------
# historical_clv
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HistoricalCLV:
    """Result of :func:`historical_clv`.

    Attributes
    ----------
    table:
        One row per segment, plus the combined row labelled ``"all"`` (the only row without segments).
        Columns: ``customers`` (unique customers who bought in the period), ``purchases``, ``revenue``
        (currency), ``apv`` (currency per purchase), ``apfr`` (purchases per customer per period),
        ``customer_value`` (currency per customer per period), ``annual_value`` (currency per customer per
        year), ``lifespan_years``, ``clv`` and ``net_clv`` (currency per customer).
    summary:
        The combined row's values as a plain dict, plus the settings and the period the transactions cover.

    The combined row's ``apv``, ``apfr``, ... are available as attributes: ``result.clv``, ``result.net_clv``.
    """

    table: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)

    def _get(self, column: str) -> float:
        return float(self.table.loc[ALL, column])

    apv = property(lambda self: self._get("apv"), doc="Average purchase value (combined row), currency.")
    apfr = property(lambda self: self._get("apfr"), doc="Average purchases per customer per period.")
    customer_value = property(lambda self: self._get("customer_value"), doc="APV x APFR, per period.")
    annual_value = property(lambda self: self._get("annual_value"), doc="Customer value per year.")
    lifespan_years = property(lambda self: self._get("lifespan_years"), doc="Average lifespan used, years.")
    clv = property(lambda self: self._get("clv"), doc="annual value x margin x lifespan, per customer.")
    net_clv = property(lambda self: self._get("net_clv"), doc="CLV minus acquisition cost, per customer.")

    def __repr__(self) -> str:
        s = self.summary
        head = (
            f"HistoricalCLV({s['customers']:,} customers, {s['purchases']:,} purchases, "
            f"{s['period_start']} to {s['period_end']}, periods_per_year={s['periods_per_year']:g}, "
            f"lifespan {s['lifespan_years']:g} years, margin {s['margin']:g})\n"
            f"  APV {self.apv:.4g}  APFR {self.apfr:.4g}  CV {self.customer_value:.4g} per period  "
            f"annual {self.annual_value:.6g}  CLV {self.clv:.6g}  net CLV {self.net_clv:.6g}"
        )
        if len(self.table) > 1:
            head += "\n" + self.table.to_string(float_format=lambda v: f"{v:.6g}")
        return head

    def _repr_html_(self) -> str:
        return self.table.to_html(float_format=lambda v: f"{v:.6g}")


def historical_clv(
    transactions: Source,
    *,
    lifespan_years: float,
    periods_per_year: float = 1,
    margin: float = 1.0,
    acquisition_cost: float = 0.0,
    segment: str | Mapping[Any, Any] | pd.Series | None = None,
    purchase_unit: Literal["day", "row"] = "day",
    **read_options: Any,
) -> HistoricalCLV:
    """Customer lifetime value by the historical (average) formula, overall and per segment.

    ``transactions`` are those of **one measurement period** (a week, a month, a year, ...);
    ``periods_per_year`` says how many such periods make a year. Then, per segment:

    * ``apv = revenue / purchases`` (currency per purchase);
    * ``apfr = purchases / customers``, customers being the unique customers who bought in the period;
    * ``customer_value = apv * apfr`` = revenue per customer in the period;
    * ``annual_value = customer_value * periods_per_year`` (currency per customer per year);
    * ``clv = annual_value * margin * lifespan_years`` and ``net_clv = clv - acquisition_cost``.

    No discounting, no churn within the lifespan: every customer is worth the average for ``lifespan_years``.

    Worked example (weekly data, amounts in millions, lifespan 2 years): five customers bought in one week,
    A 2 purchases worth 2 in total, B 3 worth 4, C 4 worth 1, D 3 worth 1.5, E 1 worth 2: APV = 10.5 / 13 =
    0.8077, APFR = 13 / 5 = 2.6, CV = 2.1 per week, annual 2.1 x 52 = 109.2, CLV = 218.4, net of an
    acquisition cost of 50: 168.4. (The article this example comes from prints 105.664: it averaged the
    customers' own APVs and then dropped the APFR factor; the method as stated gives 218.4.)

    Parameters
    ----------
    transactions:
        A DataFrame or a CSV/Parquet path, read and validated as :func:`~clvforecast.read_transactions` reads
        it.
    lifespan_years:
        Average customer lifespan in years (> 0). Without a figure of your own, use
        :func:`estimate_lifespan`.
    periods_per_year:
        Number of measurement periods in a year: 1 for a year of data, 12 for a month, 52 for a week,
        ``365.25 / days`` in general. A :class:`~clvforecast.exceptions.DataQualityWarning` is raised when the
        transactions span clearly more days than one period.
    margin:
        Profit margin applied to revenue (1.0 = revenue CLV; 0.3 for a 30% gross margin). ``>= 0``.
    acquisition_cost:
        Cost of acquiring one customer, in the currency of the amounts; subtracted for ``net_clv``. ``>= 0``.
    segment:
        ``None`` for one population, the name of a column of ``transactions`` (customer group, service, ...),
        or a mapping (dict or Series) customer_id -> segment. Each segment's values are computed from its own
        purchases; the combined row ``"all"`` weights the segments by their numbers of customers:
        ``customers = sum(n_s)``, ``apv = sum(revenue_s) / sum(purchases_s)``, ``apfr = sum(purchases_s) /
        sum(n_s)``, hence ``customer_value = sum(n_s * customer_value_s) / sum(n_s)`` and likewise ``clv`` and
        ``net_clv``. When each customer is in one segment (customer groups) the combined row is the
        unsegmented formula; a customer buying in several segments (services) counts once in each of them,
        so the combined row is then a value per (customer, segment) pair: to total it, multiply by the sum of
        the segments' customers, not by the number of distinct customers.
    purchase_unit:
        What one purchase is. ``"day"`` (default, as everywhere in clvforecast): all purchases of a customer
        on one calendar day (in one segment) are one purchase, amounts summed. ``"row"``: every row of the log
        is a purchase, for logs holding several distinct orders per customer and day. Revenue is the same
        either way; only ``purchases`` (hence ``apv`` and ``apfr``, not their product) changes.
    **read_options:
        How to read ``transactions`` (columns, ``date_format``, ``on_invalid``, ``returns``, ...): the options
        of :class:`~clvforecast.TransactionLog`, as for :func:`~clvforecast.read_transactions`. The formula
        needs amounts (an ``amount`` column, or ``price`` for line items).

    Returns
    -------
    HistoricalCLV
        ``.table`` (one row per segment plus ``"all"``), ``.summary`` and the combined values as attributes
        (``.apv``, ``.apfr``, ``.customer_value``, ``.annual_value``, ``.lifespan_years``, ``.clv``,
        ``.net_clv``). ``summary["ledger"]`` (and ``table.attrs["ledger"]``) accounts for every row read.

    Raises
    ------
    DataValidationError
        Empty or invalid transactions, an unknown segment column, missing segment values, customers absent
        from the segment mapping.
    ValueError
        ``lifespan_years <= 0``, ``periods_per_year <= 0``, negative ``margin`` or ``acquisition_cost``.
    """
    lifespan = _check_number(lifespan_years, "lifespan_years", positive=True,
                             example=" (years, e.g. 2; see estimate_lifespan)")
    ppy = _check_number(periods_per_year, "periods_per_year", positive=True,
                        example=" (52 for a week of data, 12 for a month, 1 for a year)")
    margin = _check_number(margin, "margin", example=" (1.0 for revenue, 0.3 for a 30% margin)")
    cost = _check_number(acquisition_cost, "acquisition_cost", example=" (currency per customer)")
    if purchase_unit not in ("day", "row"):
        raise ValueError(f"purchase_unit must be 'day' or 'row'; got {purchase_unit!r}")
    log = _log_for(transactions, read_options, "historical_clv")
    _require_amount(log, "historical_clv")
    tx = _read(log, segment=segment)
    if segment is not None and (tx["segment"] == ALL).any():
        raise ValueError(f"a segment is named {ALL!r}, the label of the combined row; rename that segment")
    first, last = tx["date"].min(), tx["date"].max()
    span_days = (last - first).days + 1
    period_days = DAYS_PER_YEAR / ppy
    if span_days > 1.1 * period_days + 1:
        warnings.warn(
            f"the transactions span {span_days:,} days ({first.date()} to {last.date()}) but "
            f"periods_per_year={ppy:g} means one period is {period_days:.1f} days: the annual value "
            f"assumes the transactions cover one period. Pass periods_per_year="
            f"{DAYS_PER_YEAR / span_days:.4g} (365.25 / {span_days}) or give the transactions of one period",
            DataQualityWarning,
            stacklevel=2,
        )
    table = _segment_totals(_purchases(tx, purchase_unit))
    if segment is not None:
        table.loc[ALL] = table.sum()
    table = table.astype({"customers": "int64", "purchases": "int64", "revenue": "float64"})
    table["apv"] = table["revenue"] / table["purchases"]
    table["apfr"] = table["purchases"] / table["customers"]
    table["customer_value"] = table["apv"] * table["apfr"]
    table["annual_value"] = table["customer_value"] * ppy
    table["lifespan_years"] = lifespan
    table["clv"] = table["annual_value"] * margin * lifespan
    table["net_clv"] = table["clv"] - cost
    combined = table.loc[ALL]
    summary: dict[str, Any] = {
        "customers": int(combined["customers"]),
        "distinct_customers": int(tx["customer_id"].nunique()),
        "purchases": int(combined["purchases"]),
        "revenue": float(combined["revenue"]),
        **{c: float(combined[c]) for c in _VALUE_COLUMNS},
        "periods_per_year": ppy,
        "margin": margin,
        "acquisition_cost": cost,
        "purchase_unit": purchase_unit,
        "segments": [s for s in table.index if s != ALL] if segment is not None else [],
        "period_start": str(first.date()),
        "period_end": str(last.date()),
        "period_days": int(span_days),
        "ledger": _ledger_after(tx, len(tx), []),
    }
    table.attrs["ledger"] = summary["ledger"]
    return HistoricalCLV(table=table, summary=summary)


# ----------------------------------------------------------------------------------------------------
# estimate_lifespan
# ----------------------------------------------------------------------------------------------------
_AUTO_WINDOWS = ("1Y", "6M", "3M", "1M")


@dataclass(frozen=True)
class LifespanEstimate:
    """Result of :func:`estimate_lifespan`.

    Attributes
    ----------
    lifespan_years:
        Estimated average customer lifespan, years: ``window_years / churn``.
    churn:
        Pooled churn per window: customers active in a window and not in the next, over customers active in a
        window (summed over consecutive pairs).
    annual_churn:
        The same churn expressed per year: ``1 - (1 - churn) ** (1 / window_years)``.
    window:
        The window as given or chosen (e.g. ``"6M"``); ``window_days`` its length in days, ``window_years`` in
        years.
    table:
        One row per pair of consecutive windows, indexed by the first window's number: ``start``, ``end`` (the
        first window's dates, inclusive), ``active``, ``retained`` (also active in the next window),
        ``churned``, ``churn``.
    """

    lifespan_years: float
    churn: float
    annual_churn: float
    window: str
    window_days: int
    window_years: float
    table: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"LifespanEstimate(lifespan_years={self.lifespan_years:.3g}, churn per {self.window} window="
            f"{self.churn:.3f}, annual_churn={self.annual_churn:.3f}, {len(self.table)} window pairs from "
            f"{self.summary['start']} to {self.summary['end']})\n"
            + self.table.to_string(float_format=lambda v: f"{v:.4f}")
        )

    def _repr_html_(self) -> str:
        return (
            f"<p>Estimated lifespan <b>{self.lifespan_years:.3g} years</b> (churn {self.churn:.3f} per "
            f"{self.window} window, {self.annual_churn:.3f} per year)</p>" + self.table.to_html()
        )


def estimate_lifespan(
    transactions: Source,
    *,
    window: str | float | None = None,
    end: Any = None,
    **read_options: Any,
) -> LifespanEstimate:
    """Average customer lifespan in years, estimated from churn between consecutive windows.

    Method. The period up to ``end`` is cut into consecutive windows of equal length, counted back from
    ``end`` (an incomplete first window is left out). A customer is *active* in a window when they made at
    least one purchase in it. For each pair of consecutive windows ``k, k+1``, ``churned_k`` is the number of
    customers active in ``k`` and not in ``k+1``. Pooled churn ``c = sum(churned_k) / sum(active_k)`` is the
    share of active customers lost per window. With a constant churn ``c`` a customer's lifetime is
    geometric, lasting ``1 / c`` windows on average, so::

        lifespan_years = window_years / c            (= 1 / annual churn for a one-year window)

    ``annual_churn = 1 - (1 - c) ** (1 / window_years)`` is reported as well. This is the lifespan the
    historical formula assumes (:func:`historical_clv`).

    What it measures, and why it differs from the BG/NBD model (:func:`implied_lifetime`). On CDNOW's
    calibration period (to 1997-09-30, three 91-day windows) 74% of active customers are lost per quarter and
    the estimate is 0.34 years (1.04 years from 6-month windows over all 78 weeks), while the BG/NBD model
    fitted to the same calibration data implies a median lifetime of about 11 years (and 6.2 expected years
    alive within 10 years). Both are right about different things:

    * Inactivity is not churn. A customer who skips a window and buys again later counts here as churned. Most
      CDNOW customers buy less than once a quarter, so windowed churn is high and the lifespan short; longer
      windows reduce this bias, at the price of fewer windows.
    * In the BG/NBD model a customer can drop out only right after a repeat purchase (with probability ``p``),
      so slow buyers stay "alive" for a very long time while making few purchases; with CDNOW's parameters
      (``r = 0.24``, ``a = 0.79``) the lifetime distribution is so heavy-tailed that its mean is infinite.
      A long model lifetime is therefore not a high value: the model's expected purchases already fall with
      the customer's rate and probability of being alive.

    Use this estimate as the formula's "how long does an active customer keep buying" figure, and prefer the
    model for per-customer forecasts.

    Parameters
    ----------
    transactions:
        A DataFrame or a CSV/Parquet path (columns ``customer_id`` and ``date``; amounts are not needed). Any
        transaction counts as activity.
    window:
        Window length: a string such as ``"1Y"``, ``"6M"``, ``"26W"``, ``"90D"`` or a number of days. Default:
        the longest of 1Y, 6M, 3M, 1M that fits at least twice into the data (an annual window is the classic
        "1 / annual churn"). Windows are whole days (``round(days)``).
    end:
        Last day of the last window (inclusive); default the last transaction date. Later transactions are
        ignored. Pass a calibration end to estimate from calibration data only.
    **read_options:
        How to read ``transactions``: the options of :class:`~clvforecast.TransactionLog`, as for
        :func:`~clvforecast.read_transactions`. Amounts are not read unless ``amount`` or ``price`` is given,
        or ``returns='net'`` (then fully returned orders are not activity).

    Returns
    -------
    LifespanEstimate
        ``lifespan_years``, ``churn`` (per window), ``annual_churn``, ``window``, and the inputs: ``table``
        (per window pair: dates, active, retained, churned, churn) and ``summary`` (customers, windows, start,
        end).

    Raises
    ------
    DataValidationError
        Empty or invalid transactions.
    ValueError
        Fewer than two whole windows fit in the data (pass a shorter ``window``), or no active customer was
        lost between any two windows (no churn to measure: the lifespan would be infinite).
    """
    log = _log_for(transactions, read_options, "estimate_lifespan", amount_optional=True)
    tx = _read(log)
    last_day = pd.Timestamp(_to_date(end, "end", log.date_format)) if end is not None else tx["date"].max()
    n_read = len(tx)
    tx = tx.loc[tx["date"] <= last_day]
    if tx.empty:
        raise ValueError(f"no transaction on or before end={last_day.date()}; check end")
    span_days = (last_day - tx["date"].min()).days + 1
    if window is None:
        for w in _AUTO_WINDOWS:
            if span_days // round(parse_horizon(w, "D")) >= 2:
                window = w
                break
        else:
            raise ValueError(
                f"the transactions span only {span_days} days, too short for two one-month windows; pass "
                "window= a number of days (e.g. window='7D'), at most half the span"
            )
    window_days = round(parse_horizon(window, "D"))
    if window_days < 1:
        raise ValueError(f"window must be at least one day; got {window!r}")
    n_windows = span_days // window_days
    if n_windows < 2:
        raise ValueError(
            f"the transactions span {span_days} days ({tx['date'].min().date()} to {last_day.date()}), fewer "
            f"than two {window!r} windows of {window_days} days; pass a shorter window, e.g. "
            f"window='{max(1, span_days // 2)}D'"
        )
    start = last_day - pd.Timedelta(days=n_windows * window_days - 1)
    n_upto = len(tx)
    tx = tx.loc[tx["date"] >= start]
    extra = []
    if n_read > n_upto:
        extra.append(_entry("after_observation_end", n_read - n_upto, None, None, f"after end={last_day.date()}"))
    if n_upto > len(tx):
        extra.append(_entry("before_first_window", n_upto - len(tx), None, None,
                            f"before {start.date()}, the start of the first whole window"))
    k = ((tx["date"] - start).dt.days // window_days).to_numpy()
    active = pd.DataFrame({"customer_id": tx["customer_id"].to_numpy(), "k": k}).drop_duplicates()
    nxt = active.assign(k=active["k"] - 1, retained=True)
    pairs = active.loc[active["k"] < n_windows - 1].merge(nxt, on=["customer_id", "k"], how="left")
    per_window = pairs.groupby("k").agg(active=("customer_id", "size"), retained=("retained", "count"))
    per_window = per_window.reindex(range(n_windows - 1), fill_value=0)
    table = pd.DataFrame(
        {
            "start": [(start + pd.Timedelta(days=int(i) * window_days)).date() for i in per_window.index],
            "end": [(start + pd.Timedelta(days=(int(i) + 1) * window_days - 1)).date()
                    for i in per_window.index],
            "active": per_window["active"].astype("int64"),
            "retained": per_window["retained"].astype("int64"),
        }
    )
    table["churned"] = table["active"] - table["retained"]
    table["churn"] = table["churned"] / table["active"].where(table["active"] > 0)
    table.index.name = "window"
    total_active, total_churned = int(table["active"].sum()), int(table["churned"].sum())
    if total_active == 0:
        raise ValueError(
            f"no customer was active in the first {n_windows - 1} of the {n_windows} windows; pass a "
            "longer window"
        )
    if total_churned == 0:
        raise ValueError(
            f"every customer active in a window was active in the next one ({total_active:,} "
            "customer-windows): no churn was observed, so the lifespan cannot be estimated; use more data "
            "or a shorter window"
        )
    churn = total_churned / total_active
    window_years = window_days / DAYS_PER_YEAR
    lifespan = window_years / churn
    annual_churn = 1.0 - (1.0 - churn) ** (1.0 / window_years)
    summary = {
        "lifespan_years": lifespan,
        "churn": churn,
        "annual_churn": annual_churn,
        "window": str(window),
        "window_days": int(window_days),
        "n_windows": int(n_windows),
        "start": str(start.date()),
        "end": str(last_day.date()),
        "customers": int(tx["customer_id"].nunique()),
        "active": total_active,
        "churned": total_churned,
        "ledger": _ledger_after(tx, len(tx), extra),
    }
    table.attrs["ledger"] = summary["ledger"]
    return LifespanEstimate(
        lifespan_years=lifespan, churn=churn, annual_churn=annual_churn, window=str(window),
        window_days=int(window_days), window_years=window_years, table=table, summary=summary,
    )


# ----------------------------------------------------------------------------------------------------
# implied_lifetime (BG/NBD)
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImpliedLifetime:
    """Result of :func:`implied_lifetime`: the BG/NBD population's lifetime distribution, summarised.

    Attributes
    ----------
    median_years:
        Median lifetime (time from the first purchase to dropout), years.
    truncated_mean_years:
        ``E[min(lifetime, horizon)]``, years: the expected years alive within ``horizon_years``.
    horizon_years:
        The truncation horizon, years.
    alive_at_horizon:
        Share of customers still alive at the horizon, ``S(horizon)``.
    mean_years:
        ``E[lifetime]`` in years when it is finite (``r > 1`` and ``a > 1``), else ``math.inf``.
    params:
        ``r, alpha, a, b`` and the model's ``time_unit``.
    """

    median_years: float
    truncated_mean_years: float
    horizon_years: float
    alive_at_horizon: float
    mean_years: float
    params: dict[str, Any]

    def survival(self, t_years: Any) -> np.ndarray:
        """Share of customers still alive ``t_years`` after their first purchase (array-like)."""
        p = self.params
        t = np.asarray(t_years, dtype=float) * DAYS_PER_YEAR / days_per(p["time_unit"])
        return _bgnbd_survival(t, p["r"], p["alpha"], p["a"], p["b"])

    def __repr__(self) -> str:
        mean = "infinite" if math.isinf(self.mean_years) else f"{self.mean_years:.3g} years"
        return (
            f"ImpliedLifetime(median {self.median_years:.3g} years, mean within {self.horizon_years:g} years "
            f"{self.truncated_mean_years:.3g} years, {self.alive_at_horizon:.1%} alive at "
            f"{self.horizon_years:g} years, mean {mean})"
        )


def _bgnbd_survival(t: Any, r: float, alpha: float, a: float, b: float) -> np.ndarray:
    """P(lifetime > t) = E[exp(-lambda p t)] = 2F1(r, a; a + b; -t / alpha), t in the model's unit."""
    return special.hyp2f1(r, a, a + b, -np.asarray(t, dtype=float) / alpha)


def implied_lifetime(
    model: Any, *, horizon: str | float = "10Y", time_unit: str | None = None
) -> ImpliedLifetime:
    """Customer lifetime implied by a fitted BG/NBD model (Fader, Hardie & Lee 2005).

    In the BG/NBD model a customer buys at rate ``lambda ~ Gamma(r, alpha)`` while alive and drops out right
    after each repeat purchase with probability ``p ~ Beta(a, b)``. The number of repeat purchases before
    dropout is geometric, so given ``(lambda, p)`` the lifetime (from the first purchase to dropout) is
    exponential with rate ``lambda * p``, and the population's survival function is::

        S(t) = E[exp(-lambda p t)] = E_p[(alpha / (alpha + p t)) ** r] = 2F1(r, a; a + b; -t / alpha)

    (Euler's integral of the Gauss hypergeometric function). Its mean ``E[1/lambda] E[1/p] =
    alpha / (r - 1) * (a + b - 1) / (a - 1)`` is infinite unless ``r > 1`` and ``a > 1``: on CDNOW
    ``r = 0.24`` and ``a = 0.79``, so the mean lifetime is not a usable figure. Reported instead are the
    median (solving ``S(t) = 1/2``) and the mean truncated at ``horizon``, ``integral_0^horizon S(t) dt``. See
    :func:`estimate_lifespan` for why these differ from a windowed churn estimate.

    Parameters
    ----------
    model:
        A fitted :class:`~clvforecast.BetaGeo` (its ``params_`` and ``time_unit_`` are used) or a mapping with
        ``r``, ``alpha``, ``a``, ``b`` in the unit ``time_unit``.
    horizon:
        Truncation horizon for the mean, a string such as ``"10Y"`` or ``"520W"`` or a number in the model's
        unit.
    time_unit:
        Unit of ``alpha`` when ``model`` is a mapping (``"D"``, ``"W"``, ``"M"``, ``"Y"``; default ``"D"``);
        for a fitted model its ``time_unit_`` is used.
    """
    params = getattr(model, "params_", model)
    if params is None or not hasattr(params, "__getitem__"):
        raise TypeError("model must be a fitted BetaGeo or a mapping with r, alpha, a, b")
    try:
        r, alpha, a, b = (float(params[k]) for k in ("r", "alpha", "a", "b"))
    except KeyError as exc:
        raise ValueError(f"model parameters must include r, alpha, a and b; missing {exc}") from exc
    for name, v in (("r", r), ("alpha", alpha), ("a", a), ("b", b)):
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"BG/NBD parameter {name} must be a positive finite number; got {v!r}")
    unit = check_time_unit(time_unit or getattr(model, "time_unit_", None) or "D")
    h = parse_horizon(horizon, unit)
    if h <= 0:
        raise ValueError(f"horizon must be positive; got {horizon!r}")
    to_years = days_per(unit) / DAYS_PER_YEAR

    def excess(t: float) -> float:
        return float(_bgnbd_survival(t, r, alpha, a, b)) - 0.5

    hi = alpha
    while excess(hi) > 0:  # S decreases to 0; double until it is below one half
        hi *= 2.0
    median = optimize.brentq(excess, 0.0, hi, xtol=1e-10 * hi, rtol=1e-12)
    truncated, _ = integrate.quad(lambda t: float(_bgnbd_survival(t, r, alpha, a, b)), 0.0, h, limit=200)
    mean = alpha / (r - 1.0) * (a + b - 1.0) / (a - 1.0) * to_years if r > 1 and a > 1 else math.inf
    return ImpliedLifetime(
        median_years=median * to_years,
        truncated_mean_years=truncated * to_years,
        horizon_years=h * to_years,
        alive_at_horizon=float(_bgnbd_survival(h, r, alpha, a, b)),
        mean_years=mean,
        params={"r": r, "alpha": alpha, "a": a, "b": b, "time_unit": unit},
    )


# ----------------------------------------------------------------------------------------------------
# historical_forecast
# ----------------------------------------------------------------------------------------------------
def historical_forecast(
    transactions: Source,
    *,
    calibration_end: Any,
    horizon: str | float,
    time_unit: str = "W",
    segment: str | Mapping[Any, Any] | pd.Series | None = None,
    **read_options: Any,
) -> pd.DataFrame:
    """What two historical rules predict for each customer over ``horizon`` after ``calibration_end``.

    The calibration period runs from the first transaction in ``transactions`` to ``calibration_end``
    (inclusive), ``L = days / days_per(time_unit)`` units long (CDNOW: 1997-01-01 to 1997-09-30 is 273 days =
    39 weeks). Purchases are transaction days (day resolution), spend is in the currency of ``amount``;
    nothing is discounted and nobody churns.

    ``avg_formula_purchases``, ``avg_formula_spend``
        The historical formula (:func:`historical_clv`) applied per customer: every customer gets the
        population's (or their segment's) average per customer and unit of time,
        ``purchases / customers / L`` and ``revenue / customers / L``, times the horizon. As in the formula,
        *all* calibration purchases count, including each customer's first, and every customer who bought in
        the calibration period counts, whenever they joined.
    ``run_rate_purchases``, ``run_rate_spend``
        Each customer's own observed rate over their own time as a customer: ``frequency / T`` repeat
        purchases and ``frequency * monetary_value / T`` repeat spend per unit of time (the RFM definitions of
        :func:`~clvforecast.rfm_summary` at ``calibration_end``: first purchase excluded, ``T`` from the first
        purchase to ``calibration_end``), times the horizon; 0 when ``T = 0``.

    Compare ``*_purchases`` with a holdout's repeat transactions and the models' ``expected_purchases``, and
    ``*_spend`` with holdout spend and predictive CLV (undiscounted, margin 1). Note the avg formula's
    purchases include first purchases: in a cohort acquired within the calibration period it over-predicts
    repeat purchases by design; that bias is the formula's, and is what the comparison shows.

    Parameters
    ----------
    transactions:
        A DataFrame or CSV/Parquet path, read as :func:`~clvforecast.read_transactions` reads it; rows after
        ``calibration_end`` are ignored.
    calibration_end:
        Last day of the calibration period (inclusive), e.g. ``"1997-09-30"``.
    horizon:
        Forecast length: a number in ``time_unit`` or a string such as ``"39W"``, ``"12M"``.
    time_unit:
        Unit of the rates (``"D"``, ``"W"``, ``"M"``, ``"Y"``); only scales.
    segment:
        Optional column name or mapping customer_id -> segment: the average formula then uses each segment's
        average (each customer must be in exactly one segment).
    **read_options:
        How to read ``transactions``: the options of :class:`~clvforecast.TransactionLog`, as for
        :func:`~clvforecast.read_transactions` (``amount=None`` for frequency-only data).

    Returns
    -------
    DataFrame indexed by ``customer_id`` (every customer with a purchase on or before ``calibration_end``,
    sorted), columns ``avg_formula_purchases``, ``avg_formula_spend``, ``run_rate_purchases``,
    ``run_rate_spend`` (only the two ``*_purchases`` columns for frequency-only data, ``amount=None``).
    ``attrs``: ``time_unit``, ``horizon`` (in ``time_unit``), ``calibration_start``,
    ``calibration_end``, ``calibration_length`` (``L``), ``ledger`` (rows after ``calibration_end`` counted as
    after the observation end), and ``avg_formula_rates`` (per segment: customers,
    purchases, revenue, purchases and spend per customer per unit).
    """
    unit = check_time_unit(time_unit)
    h = parse_horizon(horizon, unit)
    log = _log_for(transactions, read_options, "historical_forecast")
    cal = pd.Timestamp(_to_date(calibration_end, "calibration_end", log.date_format))
    tx = _read(log, segment=segment)
    n_read = len(tx)
    tx = tx.loc[tx["date"] <= cal]
    if tx.empty:
        raise ValueError(f"no purchase on or before calibration_end={cal.date()}; check the dates")
    start = tx["date"].min()
    length = ((cal - start).days + 1) / days_per(unit)
    rates = _segment_totals(_purchases(tx, "day"))
    rates["purchases_per_unit"] = rates["purchases"] / rates["customers"] / length
    rates["spend_per_unit"] = rates["revenue"] / rates["customers"] / length
    seg_of = tx.groupby("customer_id", sort=True)["segment"]
    n_seg = seg_of.nunique()
    if (n_seg > 1).any():
        many = n_seg.index[n_seg > 1]
        raise DataValidationError(
            f"{len(many):,} customers have purchases in more than one segment, e.g. {_examples(many)}; the "
            "average formula gives each customer one segment's value: pass a mapping customer_id -> segment"
        )
    customer_segment = seg_of.first()
    # The log is read once: the RFM table is built from the validated rows (canonical column names).
    rfm = rfm_summary(tx, observation_end=cal.date(), time_unit=unit)
    customer_segment = customer_segment.reindex(rfm.index)
    T = rfm["T"].to_numpy()
    safe_T = np.where(T > 0, T, 1.0)
    freq = rfm["frequency"].to_numpy(dtype=float)
    out = pd.DataFrame(
        {
            "avg_formula_purchases": customer_segment.map(rates["purchases_per_unit"]).to_numpy(float) * h,
            "avg_formula_spend": customer_segment.map(rates["spend_per_unit"]).to_numpy(float) * h,
            "run_rate_purchases": np.where(T > 0, freq / safe_T, 0.0) * h,
            "run_rate_spend": np.where(T > 0, freq * rfm["monetary_value"].to_numpy() / safe_T, 0.0) * h,
        },
        index=rfm.index,
    )
    if not log.has_amount:  # frequency-only data: purchases only
        out = out[["avg_formula_purchases", "run_rate_purchases"]]
    extra = [_entry("after_observation_end", n_read - len(tx), None, None, f"after calibration_end={cal.date()}")]
    out.attrs = {
        "time_unit": unit,
        "time_unit_name": UNIT_NAMES[unit],
        "horizon": h,
        "calibration_start": str(start.date()),
        "calibration_end": str(cal.date()),
        "calibration_length": length,
        "avg_formula_rates": rates.reset_index().to_dict(orient="records"),
        "ledger": _ledger_after(tx, len(tx), [e for e in extra if e["rows"]]),
    }
    return out
