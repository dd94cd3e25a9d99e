"""Per-customer comparison of the predictive CLV with historical CLV variants (:func:`compare_clv`).

Definitions used throughout (deterministic, so that results are reproducible and testable):

* **Order.** Customers are ordered by value, highest first; equal values are ordered by ``customer_id``
  (ascending). This order defines the top-k sets and the tiers.
* **Top x%.** The first ``ceil(x * n)`` customers in that order (the smallest set holding at least x% of the
  customers): 236 of CDNOW's 2,357 for 10%, 472 for 20%.
* **Ranks** (``rank_*`` columns): 1 = most valuable; tied values share the best rank of their group
  (competition ranking, ``method="min"``).
* **Spearman rank correlation**: Pearson correlation of average ranks (ties get the mean of their ranks).
  Undefined (NaN) when a variant gives every customer the same value, as the plain average formula does; its
  top-k overlaps are NaN for the same reason (it does not rank customers).
* **Tiers** by predictive CLV, cut by position in the order above: ``"quartiles"`` (default) gives ``Q1`` (top
  25%), ``Q2``, ``Q3``, ``Q4`` (bottom 25%); ``"top/mid/low"`` gives ``top`` (top 20%), ``mid`` (next 30%),
  ``low`` (bottom 50%). Tier ``j`` holds positions ``ceil(c_{j-1} n) + 1 .. ceil(c_j n)`` for the cumulative
  shares ``c``.
* **RFM scores** (classic quintile scores 1-5, 5 best) from the calibration RFM table: R on the time since the
  last purchase ``T - recency`` (shorter is better), F on ``frequency`` (repeat transactions), M on
  ``monetary_value`` (mean spend per repeat transaction, 0 for one-time buyers). ``score = 1 + floor(5 * (rank
  - 1) / n)`` with ``rank`` the ascending rank of the "better" direction, ties sharing the *lowest* rank of
  their group. Tied customers always get the same score; a tie group straddling a quintile boundary takes the
  lower score, so with many zeros (60% of CDNOW customers never bought again) some scores stay empty.
  ``rfm_cell`` is the three digits (``"545"``), ``rfm_score`` their sum (3-15).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._checks import check_number as _check_number
from .exceptions import DataValidationError
from .units import days_per

__all__ = ["CLVComparison", "compare_clv", "rfm_scores", "silent_customers", "tier_labels"]

PREDICTIVE = "predictive"
TIER_SCHEMES: dict[str, tuple[list[str], list[float]]] = {
    "quartiles": (["Q1", "Q2", "Q3", "Q4"], [0.25, 0.5, 0.75, 1.0]),
    "top/mid/low": (["top", "mid", "low"], [0.2, 0.5, 1.0]),
}
TOP_SHARES = (0.1, 0.2)


@dataclass(frozen=True)
class CLVComparison:
    """Result of :func:`compare_clv`.

    Attributes
    ----------
    table:
        One row per customer (indexed by ``customer_id``, sorted): ``clv_predictive`` and ``clv_<variant>``
        for each historical variant (currency over the horizon), ``rank_predictive`` and ``rank_<variant>`` (1
        = most valuable), ``tier`` (by predictive CLV) and, when an RFM table was given, ``R``, ``F``, ``M``,
        ``rfm_cell``, ``rfm_score``.
    summary:
        A plain dict: ``n_customers``; ``variants`` (DataFrame, one row per variant including ``predictive``:
        ``total``, ``mean``, ``top20_share`` (share of the variant's total held by its own top 20%),
        ``spearman``, ``top10_overlap``, ``top20_overlap`` (share of the predictive top set also in the
        variant's top set; 1 for ``predictive`` itself)); ``tiers`` (DataFrame per tier: ``customers``,
        ``min_clv``, ``max_clv``, then per variant ``total_<v>`` and ``share_<v>``); ``rfm`` (DataFrame,
        score 1-5 by R, F and M: customers and mean predictive CLV, NaN for an empty score) or None;
        ``tier_scheme``.
    """

    table: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def variants(self) -> list[str]:
        """Names of the compared values, ``"predictive"`` first."""
        return list(self.summary["variants"].index)

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"CLVComparison({s['n_customers']:,} customers, tiers {s['tier_scheme']})\n"
            + s["variants"].to_string(float_format=lambda v: f"{v:.4g}")
        )

    def _repr_html_(self) -> str:
        return self.summary["variants"].to_html(float_format=lambda v: f"{v:.4g}")


def _order(values: pd.Series) -> np.ndarray:
    """Positions of the customers by value, highest first, ties by customer_id (the index must be sorted)."""
    return np.lexsort((np.arange(len(values)), -values.to_numpy(dtype=float)))


def _top_set(values: pd.Series, share: float) -> pd.Index:
    k = math.ceil(share * len(values))
    return values.index[_order(values)[:k]]


def _spearman(x: pd.Series, y: pd.Series) -> float:
    rx, ry = x.rank(method="average").to_numpy(), y.rank(method="average").to_numpy()
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def _score(better: pd.Series) -> pd.Series:
    """Quintile score 1-5, 5 for the largest ``better``; ties share the lowest score of their group."""
    rank = better.rank(method="min", ascending=True).to_numpy()
    return pd.Series(1 + np.floor(5 * (rank - 1) / len(better)).astype("int64"), index=better.index)


def tier_labels(values: pd.Series, scheme: str = "quartiles") -> pd.Series:
    """Each customer's tier by ``values`` (highest first, ties by position in the index; sort it by
    customer_id for the order of the module docstring), as an ordered categorical Series.

    ``scheme`` is ``"quartiles"`` (``Q1`` = top 25% .. ``Q4``) or ``"top/mid/low"`` (20% / 30% / 50%); tier
    ``j`` holds positions ``ceil(c_{j-1} n) + 1 .. ceil(c_j n)`` for the cumulative shares ``c``.
    """
    if scheme not in TIER_SCHEMES:
        raise ValueError(f"tiers must be one of {', '.join(map(repr, TIER_SCHEMES))}; got {scheme!r}")
    labels, cum = TIER_SCHEMES[scheme]
    n = len(values)
    bounds = [math.ceil(c * n) for c in cum]
    position = np.empty(n, dtype=np.int64)
    position[_order(values)] = np.arange(n)
    tier_idx = np.searchsorted(np.asarray(bounds), position, side="right")
    return pd.Series(pd.Categorical.from_codes(tier_idx, categories=labels, ordered=True), index=values.index,
                     name="tier")


def rfm_scores(rfm: pd.DataFrame) -> pd.DataFrame:
    """Classic RFM quintile scores (1-5, 5 best) from an RFM table; see the module docstring for ties.

    Returns a DataFrame indexed like ``rfm`` with ``R``, ``F``, ``M`` (int), ``rfm_cell`` (e.g. ``"545"``) and
    ``rfm_score`` (R + F + M).
    """
    missing = [c for c in ("frequency", "recency", "T", "monetary_value") if c not in rfm.columns]
    if missing:
        raise DataValidationError(
            f"the RFM table lacks column(s) {', '.join(map(repr, missing))}; pass the table of "
            "clvforecast.rfm_summary or calibration_holdout (with amounts)"
        )
    out = pd.DataFrame(
        {
            "R": _score(-(rfm["T"] - rfm["recency"])),
            "F": _score(rfm["frequency"].astype(float)),
            "M": _score(rfm["monetary_value"].astype(float)),
        },
        index=rfm.index,
    )
    out["rfm_cell"] = out["R"].astype(str) + out["F"].astype(str) + out["M"].astype(str)
    out["rfm_score"] = out["R"] + out["F"] + out["M"]
    return out


def _as_values(obj: Any, name: str) -> pd.DataFrame:
    """A DataFrame of value columns, named by variant, from a Series or a DataFrame."""
    if isinstance(obj, pd.Series):
        label = str(obj.name) if obj.name is not None and name != PREDICTIVE else name
        return obj.to_frame(label)
    if not isinstance(obj, pd.DataFrame):
        raise TypeError(
            f"{name} must be a pandas Series or DataFrame indexed by customer_id; got {type(obj).__name__}"
        )
    if name == PREDICTIVE:
        if "clv" not in obj.columns:
            raise DataValidationError(
                f"predictive has no 'clv' column (columns: {', '.join(map(repr, obj.columns[:10]))}); "
                "pass the table of clvforecast.predictive_clv or a Series of CLV"
            )
        return obj[["clv"]].rename(columns={"clv": PREDICTIVE})
    spend = [c for c in obj.columns if str(c).endswith("_spend")]
    if spend:  # the table of historical_forecast: compare spend (value), not purchases
        return obj[spend].rename(columns=lambda c: str(c)[: -len("_spend")])
    numeric = obj.select_dtypes("number")
    if numeric.shape[1] == 0:
        raise DataValidationError(f"{name} has no numeric column to compare")
    return numeric.rename(columns=str)


def _check_values(values: pd.DataFrame, name: str) -> None:
    arr = values.to_numpy(dtype=float)
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise DataValidationError(
            f"{name}: {int(bad.sum()):,} of {len(values):,} customers have missing or infinite values, e.g. "
            f"{', '.join(map(repr, values.index[bad][:3]))}; every customer needs a finite value"
        )
    if values.index.has_duplicates:
        dup = values.index[values.index.duplicated()].unique()
        raise DataValidationError(
            f"{name}: {len(dup):,} customer ids appear more than once, e.g. {', '.join(map(repr, dup[:3]))}"
        )


def _check_same_customers(a: pd.Index, b: pd.Index, name_a: str, name_b: str) -> None:
    only_a, only_b = a.difference(b), b.difference(a)
    if len(only_a) or len(only_b):
        parts = []
        if len(only_a):
            parts.append(f"{len(only_a):,} only in {name_a} (e.g. {', '.join(map(repr, only_a[:3]))})")
        if len(only_b):
            parts.append(f"{len(only_b):,} only in {name_b} (e.g. {', '.join(map(repr, only_b[:3]))})")
        raise DataValidationError(
            f"{name_a} has {len(a):,} customers and {name_b} {len(b):,}: {'; '.join(parts)}. Compute both "
            "from the same calibration period (the same calibration_end) so that they cover the same "
            "customers"
        )


def _check_settings(predictive: Any, historical: Any, margin: float) -> None:
    """Warn when the inputs' ``attrs`` show different horizons, or a margin the historical values lack."""
    pa, ha = getattr(predictive, "attrs", {}) or {}, getattr(historical, "attrs", {}) or {}
    try:
        p_days = float(pa["horizon"]) * days_per(pa["time_unit"])
        h_days = float(ha["horizon"]) * days_per(ha["time_unit"])
    except (KeyError, TypeError, ValueError):
        p_days = h_days = math.nan
    if math.isfinite(p_days) and math.isfinite(h_days) and not math.isclose(p_days, h_days, rel_tol=1e-6):
        warnings.warn(
            f"the predictive CLV covers {p_days:g} days and the historical forecast {h_days:g} days: compare "
            "forecasts over the same horizon",
            UserWarning,
            stacklevel=3,
        )
    p_margin = pa.get("margin")
    if isinstance(p_margin, (int, float)) and not math.isclose(float(p_margin), margin):
        warnings.warn(
            f"the predictive CLV was computed with margin={p_margin:g} and the historical values are "
            f"multiplied by margin={margin:g}; pass compare_clv(..., margin={p_margin:g}) to compare like "
            "with like",
            UserWarning,
            stacklevel=3,
        )


def compare_clv(
    predictive: pd.DataFrame | pd.Series,
    historical: pd.DataFrame | pd.Series,
    *,
    rfm: pd.DataFrame | None = None,
    margin: float = 1.0,
    tiers: str = "quartiles",
) -> CLVComparison:
    """Compare model-based CLV with historical CLV variants, customer by customer.

    Parameters
    ----------
    predictive:
        The table of :func:`~clvforecast.predictive_clv` (its ``clv`` column is used) or a Series of CLV,
        indexed by customer_id.
    historical:
        The table of :func:`~clvforecast.historical_forecast` (its ``*_spend`` columns become the variants
        ``avg_formula`` and ``run_rate``), or any Series / DataFrame of per-customer values (each numeric
        column a variant). Use the same horizon as the predictive CLV.
    rfm:
        Optional calibration RFM table (:func:`~clvforecast.calibration_holdout` or
        :func:`~clvforecast.rfm_summary`) for the classic RFM scores; it must cover every customer.
    margin:
        Multiplies the historical values, to match a ``margin`` used for the predictive CLV (default 1.0).
        (The historical variants are undiscounted; compare with a predictive CLV at ``discount_rate=0``.) A
        ``UserWarning`` says so when the inputs' ``attrs`` show a different margin or horizon.
    tiers:
        ``"quartiles"`` (default) or ``"top/mid/low"`` (20% / 30% / 50%), cut on predictive CLV.

    Returns
    -------
    CLVComparison
        ``.table`` (per customer) and ``.summary`` (totals, Spearman rank correlation, top-10% and top-20%
        overlaps, top-20% share of value, tiers, RFM). The definitions of order, ties, top sets, tiers and RFM
        scores are in the :mod:`clvforecast.compare` module docstring.

    Raises
    ------
    DataValidationError
        The inputs do not cover the same customers, hold missing or infinite values or duplicated ids, or
        ``predictive`` has no ``clv`` column.
    """
    if tiers not in TIER_SCHEMES:
        raise ValueError(f"tiers must be one of {', '.join(map(repr, TIER_SCHEMES))}; got {tiers!r}")
    margin = _check_number(margin, "margin", example=" (1.0 for revenue, 0.3 for a 30% margin)")
    _check_settings(predictive, historical, margin)
    pred = _as_values(predictive, PREDICTIVE)
    hist = _as_values(historical, "historical") * float(margin)
    if PREDICTIVE in hist.columns:
        hist = hist.rename(columns={PREDICTIVE: "historical"})
    _check_values(pred, "predictive")
    _check_values(hist, "historical")
    if len(pred) == 0:
        raise DataValidationError("predictive is empty: there are no customers to compare")
    _check_same_customers(pred.index, hist.index, "predictive", "historical")
    values = pred.join(hist).sort_index()
    values.index.name = "customer_id"
    names = list(values.columns)
    n = len(values)

    table = values.add_prefix("clv_")
    for v in names:
        table[f"rank_{v}"] = values[v].rank(method="min", ascending=False).astype("int64")
    labels = TIER_SCHEMES[tiers][0]
    table["tier"] = tier_labels(values[PREDICTIVE], tiers)

    rfm_summary_df = None
    if rfm is not None:
        if not isinstance(rfm, pd.DataFrame):
            raise TypeError(f"rfm must be an RFM DataFrame; got {type(rfm).__name__}")
        missing = values.index.difference(rfm.index)
        if len(missing):
            raise DataValidationError(
                f"the RFM table lacks {len(missing):,} of the {n:,} customers, e.g. "
                f"{', '.join(map(repr, missing[:3]))}; pass the calibration table the forecasts were made "
                "from"
            )
        scores = rfm_scores(rfm.loc[values.index])
        table = table.join(scores)
        parts = {}
        for s in ("R", "F", "M"):
            g = table.groupby(s)["clv_predictive"]
            parts[f"{s}_customers"] = g.size().reindex(range(1, 6), fill_value=0).astype("int64")
            parts[f"{s}_mean_clv"] = g.mean().reindex(range(1, 6))
        rfm_summary_df = pd.DataFrame(parts)
        rfm_summary_df.index.name = "score"

    rows = {}
    for v in names:
        x = values[v]
        total = float(x.sum())
        top20 = _top_set(x, 0.2)
        constant = bool(np.ptp(x.to_numpy()) == 0)
        row = {
            "total": total,
            "mean": total / n,
            "top20_share": float(x[top20].sum()) / total if total != 0 else math.nan,
            "spearman": 1.0 if v == PREDICTIVE else _spearman(values[PREDICTIVE], x),
        }
        for share in TOP_SHARES:
            key = f"top{round(share * 100)}_overlap"
            ref = _top_set(values[PREDICTIVE], share)
            overlap = len(ref.intersection(_top_set(x, share))) / len(ref)
            row[key] = math.nan if constant and v != PREDICTIVE else overlap
        rows[v] = row
    variants = pd.DataFrame.from_dict(rows, orient="index")
    variants.index.name = "variant"

    tier_groups = table.groupby("tier", observed=False)
    tier_df = pd.DataFrame(
        {
            "customers": tier_groups.size().astype("int64"),
            "min_clv": tier_groups["clv_predictive"].min(),
            "max_clv": tier_groups["clv_predictive"].max(),
        }
    )
    for v in names:
        tot = tier_groups[f"clv_{v}"].sum()
        tier_df[f"total_{v}"] = tot
        tier_df[f"share_{v}"] = tot / tot.sum() if tot.sum() != 0 else math.nan
    tier_df.index = pd.CategoricalIndex(tier_df.index, categories=labels, ordered=True, name="tier")

    summary = {
        "n_customers": n,
        "variants": variants,
        "tiers": tier_df,
        "rfm": rfm_summary_df,
        "tier_scheme": tiers,
        "margin": float(margin),
    }
    return CLVComparison(table=table, summary=summary)


#: The defaults of :func:`silent_customers`, quoted by the report.
SILENT_DEFAULTS: dict[str, float] = {"top_share": 0.2, "max_probability_alive": 0.5, "min_silence": 2.0}


def _check_share(value: Any, name: str, *, low_open: bool = True) -> float:
    v = _check_number(value, name)
    if not (0 < v <= 1 if low_open else 0 <= v <= 1):
        raise ValueError(f"{name} must be a share between 0 and 1 (0.2 for 20%); got {value!r}")
    return v


def silent_customers(
    forecast: pd.DataFrame,
    rfm: pd.DataFrame,
    *,
    top_share: float = SILENT_DEFAULTS["top_share"],
    max_probability_alive: float = SILENT_DEFAULTS["max_probability_alive"],
    min_silence: float = SILENT_DEFAULTS["min_silence"],
) -> pd.DataFrame:
    """Valuable customers who are probably slipping away: the "silent customers" a business loses without a
    complaint.

    A customer is silent when all three hold:

    1. **valuable in the past**: among the top ``top_share`` (default 20%) of all customers by past repeat
       spend, ``frequency x monetary_value`` (the currency spent on repeat purchases: an RFM table does not
       hold the first purchase), ordered as :func:`compare_clv` orders (highest first, ties by customer_id),
       and with a past repeat spend above 0;
    2. **probably gone**: P(alive) below ``max_probability_alive`` (default 0.5: more likely inactive than
       active);
    3. **long silent**: the time since the last purchase, ``T - recency``, is at least ``min_silence``
       (default 2) times the customer's usual gap between purchases, ``recency / frequency``: they have missed
       about two purchases they would have made.

    Parameters
    ----------
    forecast:
        The table of :func:`~clvforecast.predictive_clv` (``probability_alive``, ``clv``, ``clv_if_alive``),
        indexed by customer_id.
    rfm:
        The RFM table the forecast was made from (``frequency``, ``recency``, ``T``, ``monetary_value``),
        covering the same customers.
    top_share, max_probability_alive, min_silence:
        The three thresholds above.

    Returns
    -------
    DataFrame indexed by customer_id, most valuable if retained first (ties by customer_id):
    ``past_spend`` (currency), ``frequency``, ``recency``, ``T``, ``silence`` (``T - recency``) and
    ``usual_gap`` (``recency / frequency``), all in the RFM table's time unit, ``probability_alive``,
    ``clv`` (the expected value over the forecast's horizon) and ``clv_if_alive`` (the value if retained: the
    same CLV for a customer known to be active). ``attrs``: the thresholds, ``rule`` (the rule in words),
    ``n_customers``, ``n_top`` (customers in the top tier by past spend), ``n_silent``, ``share_of_top``
    (``n_silent / n_top``), ``value_if_retained`` (total ``clv_if_alive``), ``expected_value`` (total
    ``clv``) and ``time_unit``.
    """
    top_share = _check_share(top_share, "top_share")
    max_probability_alive = _check_share(max_probability_alive, "max_probability_alive")
    min_silence = _check_number(min_silence, "min_silence", example=" (2 for twice the usual gap)")
    table = _silent_inputs(forecast, rfm)
    past = table["frequency"] * table["monetary_value"]
    n = len(table)
    top = past.index[_order(past)[: math.ceil(top_share * n)]]
    top = top[past[top].to_numpy() > 0]
    silence = table["T"] - table["recency"]
    gap = table["recency"] / table["frequency"].where(table["frequency"] > 0)
    chosen = (
        past.index.isin(top)
        & (table["probability_alive"] < max_probability_alive).to_numpy()
        & (silence >= min_silence * gap).fillna(False).to_numpy()
    )
    out = table.loc[chosen, ["frequency", "recency", "T", "probability_alive", "clv", "clv_if_alive"]]
    out.insert(0, "past_spend", past[chosen])
    out.insert(4, "silence", silence[chosen])
    out.insert(5, "usual_gap", gap[chosen])
    out = out.iloc[_order(out["clv_if_alive"])] if len(out) else out
    out.index.name = "customer_id"
    out.attrs = {
        "top_share": top_share,
        "max_probability_alive": max_probability_alive,
        "min_silence": min_silence,
        "rule": (
            f"in the top {top_share:.0%} by past repeat spend, P(alive) below {max_probability_alive:.0%}, and "
            f"silent for at least {min_silence:g} times their usual gap between purchases"
        ),
        "n_customers": n,
        "n_top": len(top),
        "n_silent": len(out),
        "share_of_top": len(out) / len(top) if len(top) else math.nan,
        "value_if_retained": float(out["clv_if_alive"].sum()),
        "expected_value": float(out["clv"].sum()),
        "time_unit": rfm.attrs.get("time_unit"),
    }
    return out


def _silent_inputs(forecast: pd.DataFrame, rfm: pd.DataFrame) -> pd.DataFrame:
    """The forecast and the RFM table joined, sorted by customer_id, after checking both."""
    for obj, name, cols, fix in (
        (forecast, "forecast", ("probability_alive", "clv", "clv_if_alive"),
         "pass the table of clvforecast.predictive_clv (with a spend model)"),
        (rfm, "rfm", ("frequency", "recency", "T", "monetary_value"),
         "pass the RFM table of clvforecast.rfm_summary (with amounts)"),
    ):
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"{name} must be a DataFrame indexed by customer_id; got {type(obj).__name__}")
        missing = [c for c in cols if c not in obj.columns]
        if missing:
            raise DataValidationError(f"{name} lacks column(s) {', '.join(map(repr, missing))}; {fix}")
    _check_same_customers(forecast.index, rfm.index, "forecast", "rfm")
    table = rfm[["frequency", "recency", "T", "monetary_value"]].join(
        forecast[["probability_alive", "clv", "clv_if_alive"]]
    ).sort_index()
    _check_values(table, "silent_customers")
    return table
