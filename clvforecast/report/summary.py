"""The summary: every number and sentence the report shows, as one plain, JSON-able dict computed once.

Layout of the dict (``json.dumps`` takes it as it is)::

    {"settings": {...},                    # what the report was asked for (currency, horizon, dates, ...)
     "sections": [{"id", "title"}, ...],   # the sections present, in reading order
     "<section id>": {"title": str, ...},  # one entry per section present, read by templates/sections/<id>.j2
     ...}

**Adding a section** is one builder here and one template: decorate a function ``(ctx) -> dict | None`` with
``@section("my_id")`` (sections appear in the order their builders are defined; return None to leave the
section out) and write ``templates/sections/my_id.j2``. Builders read ``ctx.results`` (the pandas objects of
:mod:`.compute`), ``ctx.settings``, ``ctx.fmt`` (:class:`.format.Formatter`) and, for ``last=True`` builders
(the executive summary, the glossary), the other sections in ``ctx.summary``.

Tables are ``{"columns": [{"key", "label", "kind"}], "rows": [[...], ...]}``: ``label`` is the header in
plain words (:data:`.format.LABELS`), ``kind`` says how a cell is printed (:meth:`.format.Formatter.cell`).
Figures are listed by key (``"figures": ["clv_distribution", ...]``) and drawn by :mod:`.figures`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..compare import SILENT_DEFAULTS, _order, tier_labels
from ..units import days_per
from .compute import Results, Settings
from .format import (
    GLOSSARY,
    METHOD_WORDS,
    METHODS,
    Formatter,
    adjective,
    duration_words,
    horizon_words,
    label,
    money_decimals,
)


# ----------------------------------------------------------------------------------------------------------
# The registry of sections
# ----------------------------------------------------------------------------------------------------------
@dataclass
class Context:
    """What a section builder reads."""

    results: Results
    settings: Settings
    fmt: Formatter
    summary: dict[str, Any]

    @property
    def horizon(self) -> str:
        """The horizon in words: ``"52 weeks"``."""
        return horizon_words(self.settings.horizon, self.settings.time_unit)

    @property
    def disc(self) -> str:
        """``"discounted"`` or ``"undiscounted"`` (a 0 discount rate): how the report's CLV is computed."""
        return "discounted" if self.settings.discount_rate else "undiscounted"

    @property
    def level(self) -> float:
        """The level of the forecast's intervals (``attrs["interval"]`` of the CLV table; 0.9 when absent)."""
        interval = self.results.clv.attrs.get("interval")
        level = interval.get("level") if isinstance(interval, dict) else interval
        return float(level) if isinstance(level, (int, float)) and not isinstance(level, bool) else 0.9

    def table(self, df: pd.DataFrame, kinds: dict[str, str], *, index: str | None = None) -> dict[str, Any]:
        """A DataFrame as a summary table (see the module docstring); ``kinds`` picks and orders the columns,
        ``index`` (a key such as ``"customer_id"``) adds the index as the first column."""
        frame = df.reset_index(names=index)[[index, *kinds]] if index else df[list(kinds)]
        kinds = ({index: "text" if not _numeric_index(df) else "id"} if index else {}) | kinds
        columns = []
        for key, kind in kinds.items():
            if kind == "money":
                kind = f"money{money_decimals(frame[key])}"
            words = {"unit": self.settings.unit_name, "disc": self.disc, "level": self.fmt.pct(self.level, 0)}
            columns.append({"key": key, "label": label(key, **words), "kind": kind})
        rows = [[_plain(v) for v in row] for row in frame.itertuples(index=False, name=None)]
        return {"columns": columns, "rows": rows}


@dataclass(frozen=True)
class SectionSpec:
    id: str
    build: Callable[[Context], dict[str, Any] | None]
    last: bool = False


#: The sections, in reading order.
SECTIONS: list[SectionSpec] = []


def section(section_id: str, *, last: bool = False) -> Callable[[Any], Any]:
    """Register a section builder (see the module docstring)."""

    def register(fn: Callable[[Context], dict[str, Any] | None]) -> Callable[[Context], dict[str, Any] | None]:
        SECTIONS.append(SectionSpec(section_id, fn, last))
        return fn

    return register


def build_summary(results: Results, settings: Settings) -> dict[str, Any]:
    """Run every section builder once (``last`` ones after the others) and return the summary dict."""
    summary: dict[str, Any] = {"settings": _settings(settings)}
    summary["settings"]["observation_end"] = results.observation_end  # the last date when not given
    ctx = Context(results, settings, Formatter(settings.currency), summary)
    for spec in sorted(SECTIONS, key=lambda s: s.last):
        entry = spec.build(ctx)
        if entry is not None:
            summary[spec.id] = _plain(entry)
    present = [s.id for s in SECTIONS if s.id in summary]
    ordered = {"settings": summary["settings"]}
    ordered["sections"] = [{"id": k, "title": summary[k]["title"]} for k in present]
    ordered.update({k: summary[k] for k in present})
    return ordered


def _settings(st: Settings) -> dict[str, Any]:
    out = {k: v for k, v in asdict(st).items() if k != "read_options"}
    out["horizon"] = st.horizon if isinstance(st.horizon, str) else f"{st.horizon:g}{st.time_unit}"
    out["horizon_words"] = horizon_words(st.horizon, st.time_unit)
    out["unit_name"] = st.unit_name
    return out


def _numeric_index(df: pd.DataFrame) -> bool:
    return pd.api.types.is_numeric_dtype(df.index)


def _plain(obj: Any) -> Any:
    """JSON-able: numpy scalars to Python, NaN and inf to None, dates to ISO strings, tuples to lists."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, (pd.Timestamp, dt.date)):
        return obj.date().isoformat() if isinstance(obj, pd.Timestamp) else obj.isoformat()
    if obj is pd.NaT or (obj is not None and not isinstance(obj, str) and pd.api.types.is_scalar(obj)
                         and pd.isna(obj)):
        return None
    return obj


# ----------------------------------------------------------------------------------------------------------
# The health of a fit, from the model's own diagnostics_ (set by every fit and kept in model files)
# ----------------------------------------------------------------------------------------------------------
def fit_problem(model: Any) -> dict[str, str] | None:
    """What is wrong with a fitted model, ``{"short", "text"}`` in plain words, or None when it looks sound.

    Read from ``model.diagnostics_`` (converged, identified, at_bound, message): a fit that did not converge,
    ran to a bound or does not identify its parameters is degenerate, and the model's own message says why.
    """
    name = getattr(model, "LABEL", None) or {"GammaGamma": "Gamma-Gamma"}.get(
        type(model).__name__, type(model).__name__)
    kind = "spend" if name == "Gamma-Gamma" else "purchase"
    diag = getattr(model, "diagnostics_", None)
    if not isinstance(diag, dict):
        return None
    if diag.get("converged", True) and diag.get("identified", True) and not diag.get("at_bound"):
        return None
    what = diag.get("message") or (
        f"parameters at their bound: {', '.join(diag.get('at_bound') or [])}" if diag.get("at_bound")
        else "the fit did not converge" if not diag.get("converged", True) else "not identified")
    short = f"a degenerate {kind}-model fit"
    if "dropout" in what:
        short += " (no evidence that customers leave)"
    return {"short": short, "text": f"The {name} fit is degenerate: {what.rstrip('.')}."}


# ----------------------------------------------------------------------------------------------------------
# Caveats (read by the executive summary)
# ----------------------------------------------------------------------------------------------------------
def caveats(ctx: Context) -> list[dict[str, str]]:
    """The main caveats found in the results, most serious first: ``{"key", "short", "text"}``."""
    r, found = ctx.results, []
    for model in (r.purchase_model, r.spend_model):
        problem = fit_problem(model)
        if problem:
            found.append({"key": "degenerate_fit", **problem})
    seasonal = _seasonal_caveat(ctx)
    if seasonal:
        found.append(seasonal)
    prep = ctx.summary.get("data_preparation")
    if prep and prep["rows_read"] and prep["rows_removed"] / prep["rows_read"] > 0.05:
        main = max(prep["entries"], key=lambda e: e["rows"])
        found.append({"key": "heavy_cleaning", "short": "heavy cleaning of the data", "text": (
            f"{ctx.fmt.pct(prep['rows_removed'] / prep['rows_read'])} of the rows read were removed while "
            f"preparing the data, most for: {main['label'].lower()} ({ctx.fmt.count(main['rows'])} rows).")})
    gg = r.spend_model.fit_info_ if r.spend_model is not None else {}
    corr, limit = gg.get("spend_frequency_correlation"), gg.get("correlation_threshold")
    if corr is not None and limit is not None and math.isfinite(corr) and abs(corr) > limit:
        found.append({"key": "spend_correlation", "short": "spend that varies with frequency", "text": (
            f"Spend per purchase and purchase frequency are correlated ({corr:.2f}), which the spend model "
            "assumes they are not: treat the spend forecast with care.")})
    if len(r.clv) < 200:
        found.append({"key": "few_customers", "short": "few customers", "text": (
            f"The data hold only {len(r.clv):,} customers: every estimate here is rough.")})
    return found


def _seasonal_caveat(ctx: Context) -> dict[str, str] | None:
    """Months of the holdout where repeat purchases departed from the model's expectation by more than 25%
    and more than 3 standard deviations of Poisson noise: swings (seasons, promotions) the model ignores."""
    ev = ctx.results.evaluation
    track = getattr(ev, "tracking", None)
    if track is None or "expected" not in track.columns:
        return None
    hold = track[track["period"] == "holdout"]
    month = pd.to_datetime(hold["start"]).dt.to_period("M")
    g = hold.groupby(month)[["actual", "expected"]].sum()
    g = g[g["expected"] > 0]
    z = (g["actual"] - g["expected"]) / np.sqrt(g["expected"])
    off = g[(z.abs() >= 3) & ((g["actual"] / g["expected"] - 1).abs() >= 0.25)]
    if off.empty:
        return None
    ratio = off["actual"] / off["expected"] - 1
    worst = ratio.abs().sort_values(ascending=False).index[:2]
    months = "; ".join(
        f"{p.strftime('%B %Y')} {ctx.fmt.pct(abs(ratio[p]), 0)} {'above' if ratio[p] > 0 else 'below'}"
        for p in worst)
    span = (pd.Timestamp(ev.observation_end) - pd.Timestamp(ev.calibration_end)).days
    partial = f" The holdout covers {duration_words(span)}, less than a year." if span < 365 else ""
    return {"key": "seasonal_holdout", "short": "seasonal swings in the holdout", "text": (
        f"Repeat purchases in some holdout months departed from the model's steady expectation ({months}): "
        f"seasons or promotions the model does not know about.{partial}")}


# ----------------------------------------------------------------------------------------------------------
# The sections, in reading order
# ----------------------------------------------------------------------------------------------------------
@section("executive", last=True)
def executive(ctx: Context) -> dict[str, Any]:
    """Four to six sentences generated from the results, and the caveats behind the last one."""
    s, fmt = ctx.summary, ctx.fmt
    fc, tiers = s["forecast"]["numbers"], s["tiers"]["numbers"]
    sentences = [_value_sentence(ctx, fc)]
    active = fc["mean_probability_alive"]
    sentences.append(
        f"The model counts about {fmt.count(fc['expected_active'])} of them ({fmt.pct(active, 0)}) as still active"
        + ("; the rest have probably left without saying so." if active < 0.995 else
           ": it sees almost nobody leaving."))
    share = fc["top20_share"]
    spread = ("highly concentrated" if share >= 0.6 else "concentrated" if share >= 0.45
              else "moderately concentrated" if share >= 0.3 else "spread fairly evenly")
    sentences.append(
        f"Value is {spread}: the top 20% of customers hold {fmt.pct(fc['top20_share'], 0)} of it, and the "
        f"top quarter ({fmt.count(tiers['top_customers'])} customers, each worth at least "
        f"{fmt.money(tiers['top_min'])}) is worth {fmt.money(tiers['top_total'])}.")
    if "validation" in s:
        sentences.append(s["validation"]["headline"])
    silent = s.get("silent_customers")
    if silent and silent["numbers"]["n_silent"]:
        sentences.append(silent["headline"])
    found = caveats(ctx)
    if found:
        shorts = [c["short"] for c in found]
        listed = shorts[0] if len(shorts) == 1 else ", ".join(shorts[:-1]) + " and " + shorts[-1]
        sentences.append(f"Read these numbers with care: the results show {listed}; see the caveats below.")
    return {"title": "Summary", "sentences": sentences, "caveats": found}


def _value_sentence(ctx: Context, fc: dict[str, Any]) -> str:
    fmt, st = ctx.fmt, ctx.settings
    rng = ""
    if fc.get("clv_total_lower") is not None:
        rng = (f" ({fmt.pct(fc['interval_level'], 0)} range {fmt.money(fc['clv_total_lower'])} to "
               f"{fmt.money(fc['clv_total_upper'])})")
    how = (f"discounted at {fmt.pct(st.discount_rate, 0)} a year" if st.discount_rate else "undiscounted")
    if st.margin != 1:
        how += f", at a {fmt.pct(st.margin, 0)} margin"
    return (
        f"Over the next {ctx.horizon}, the {fmt.count(fc['customers'])} customers are expected to make "
        f"{fmt.count(fc['expected_purchases'])} purchases worth {fmt.money(fc['expected_revenue'])}; their "
        f"lifetime value ({how}) is {fmt.money(fc['clv_total'])}{rng}.")


@section("overview")
def overview(ctx: Context) -> dict[str, Any]:
    r, fmt = ctx.results, ctx.fmt
    rfm = r.rfm
    repeat = int((rfm["frequency"] > 0).sum())
    cards = [{"label": "Customers", "value": fmt.count(len(rfm))}]
    out: dict[str, Any] = {"title": "The data", "customers": len(rfm), "repeat_customers": repeat,
                           "repeat_transactions": int(rfm["frequency"].sum()),
                           "transaction_days": int((rfm["frequency"] + 1).sum())}
    if r.transactions is not None:
        dates = r.transactions["date"]
        out.update(transactions=len(r.transactions), first_date=dates.min().date().isoformat(),
                   last_date=dates.max().date().isoformat())
        cards.append({"label": "Transactions", "value": fmt.count(len(r.transactions)),
                      "note": f"{fmt.count(out['transaction_days'])} purchase days"})
        cards.append({"label": "Period", "value": f"{out['first_date']} to {out['last_date']}", "note": ""})
    cards += [
        {"label": "Repeat customers", "value": fmt.pct(repeat / len(rfm), 0),
         "note": f"{fmt.count(repeat)} bought more than once"},
        {"label": "Repeat purchases", "value": fmt.count(out["repeat_transactions"]),
         "note": "purchase days after each customer's first"},
    ]
    out["cards"] = cards
    return out


def ledger_of(rfm: pd.DataFrame, transactions: pd.DataFrame | None) -> dict[str, Any] | None:
    """The data-preparation ledger (INTERFACES.md, section 1): ``attrs["ledger"]`` of the RFM table or the log
    when present, else one built from ``attrs["dropped"]``, ``attrs["n_rows_read"]`` and the rows after the
    observation end. None when nothing is known (an RFM table given without its history)."""
    for frame in (rfm, transactions):
        if frame is not None and isinstance(frame.attrs.get("ledger"), dict):
            return dict(frame.attrs["ledger"])
    if transactions is None:
        return None
    read = int(transactions.attrs.get("n_rows_read", len(transactions)))
    entries = [{"key": k, "label": k.replace("_", " ").capitalize(), "rows": int(n), "value": None,
                "customers": None, "note": "dropped while reading"} for k, n in
               dict(transactions.attrs.get("dropped", {})).items()]
    after = int(rfm.attrs.get("excluded_after_observation_end", 0))
    if after:
        entries.append({"key": "after_observation_end", "label": "After the observation end", "rows": after,
                        "value": None, "customers": None, "note": f"after {rfm.attrs.get('observation_end')}"})
    used = len(transactions) - after
    removed = sum(e["rows"] for e in entries)
    return {"rows_read": read, "rows_used": used, "entries": entries, "identity_holds": read == used + removed}


@section("data_preparation")
def data_preparation(ctx: Context) -> dict[str, Any] | None:
    ledger = ledger_of(ctx.results.rfm, ctx.results.transactions)
    if ledger is None:
        return None
    fmt = ctx.fmt
    removed = sum(int(e["rows"]) for e in ledger["entries"])
    read = int(ledger["rows_read"])
    steps = [e for e in ledger["entries"] if e["rows"] or e.get("value") or e.get("note")]
    if removed:
        text = (f"Of the {fmt.count(read)} rows read, {fmt.count(ledger['rows_used'])} reached the analysis "
                f"and {fmt.count(removed)} ({fmt.pct(removed / read)}) were removed, step by step below.")
    else:
        text = f"All {fmt.count(read)} rows read reached the analysis: no row was removed."
    if not ledger.get("identity_holds", True):
        text += " The counts do not add up to the rows read: some rows are not accounted for."
    frame = pd.DataFrame(steps, columns=["label", "rows", "value", "customers", "note"]).rename(
        columns={"label": "step"})
    kinds = {"step": "text", "rows": "int", "value": "money", "customers": "int", "note": "text"}
    kinds = {k: v for k, v in kinds.items() if k in ("step", "rows") or frame[k].notna().any()}
    return {"title": "Data preparation", "text": text, "rows_read": read, "rows_used": ledger["rows_used"],
            "rows_removed": removed, "entries": ledger["entries"],
            "identity_holds": bool(ledger.get("identity_holds", True)),
            "table": ctx.table(frame, kinds) if steps else None}


@section("forecast")
def forecast(ctx: Context) -> dict[str, Any]:
    fmt, st = ctx.fmt, ctx.settings
    n = _forecast_numbers(ctx)
    how = f"discounted at {fmt.pct(st.discount_rate, 0)} a year" if st.discount_rate else "not discounted"
    margin = f"margin {fmt.pct(st.margin, 0)}"

    def rng(k: str) -> str:
        if n.get(k + "_lower") is None:
            return ""
        return (f"{fmt.pct(n['interval_level'], 0)} range {fmt.money(n[k + '_lower'])} to "
                f"{fmt.money(n[k + '_upper'])}")

    cards = [
        {"label": "Expected purchases", "value": fmt.count(n["expected_purchases"]), "note": rng("purchases")},
        {"label": "Expected revenue", "value": fmt.money(n["expected_revenue"]),
         "note": "undiscounted, before margin" + (f"; {rng('revenue')}" if rng("revenue") else "")},
        {"label": f"Lifetime value ({ctx.disc})", "value": fmt.money(n["clv_total"]),
         "note": f"{how}; {margin}" + (f"; {rng('clv_total')}" if rng("clv_total") else "")},
        {"label": "Average CLV per customer", "value": fmt.money(n["clv_mean"]),
         "note": f"median {fmt.money(n['clv_median'])}"},
        {"label": "Expected active customers", "value": fmt.count(n["expected_active"]),
         "note": f"sum of P(alive); average {fmt.pct(n['mean_probability_alive'], 0)}"},
        {"label": "Value held by the top 20%", "value": fmt.pct(n["top20_share"], 0), "note": ""},
    ]
    bg_like = type(ctx.results.purchase_model).__name__ == "BetaGeo"
    return {
        "title": f"Forecast for the next {ctx.horizon}", "numbers": n, "cards": cards,
        "figures": ["clv_distribution", "alive_distribution", "purchases_distribution", "alive_heatmap"],
        "alive_note": ("Under BG/NBD a customer can only leave right after a purchase, so customers who never "
                       "bought again have P(alive) = 100%.") if bg_like else "",
    }


def _forecast_numbers(ctx: Context) -> dict[str, Any]:
    clv = ctx.results.clv
    ordered = np.sort(clv["clv"].to_numpy())[::-1]
    total = float(ordered.sum())
    k = max(1, math.ceil(0.2 * len(ordered)))
    n = {
        "customers": len(clv),
        "expected_purchases": float(clv["expected_purchases"].sum()),
        "expected_revenue": float((clv["expected_purchases"] * clv["expected_spend"]).sum()),
        "clv_total": total,
        "clv_mean": float(clv["clv"].mean()),
        "clv_median": float(clv["clv"].median()),
        "expected_active": float(clv["probability_alive"].sum()),
        "mean_probability_alive": float(clv["probability_alive"].mean()),
        "top20_share": float(ordered[:k].sum() / total) if total > 0 else math.nan,
    }
    totals = ctx.results.totals or {}
    for key, name in (("clv", "clv_total"), ("revenue", "revenue"), ("purchases", "purchases")):
        if isinstance(totals.get(key), dict):
            n[f"{name}_lower"], n[f"{name}_upper"] = totals[key].get("lower"), totals[key].get("upper")
            n["interval_level"] = totals.get("level", 0.9)
    return n


def _with_dates(ctx: Context, table: pd.DataFrame) -> pd.DataFrame:
    """``first_purchase`` and ``last_purchase`` dates from ``T`` and ``recency`` and the observation end."""
    obs = ctx.results.observation_end
    if obs is None:
        return table
    end, days = pd.Timestamp(obs), days_per(ctx.settings.time_unit)
    since = pd.to_timedelta(np.round(table["T"].to_numpy() * days), unit="D")
    last = pd.to_timedelta(np.round((table["T"] - table["recency"]).to_numpy() * days), unit="D")
    return table.assign(first_purchase=(end - since).strftime("%Y-%m-%d"),
                        last_purchase=(end - last).strftime("%Y-%m-%d"))


@section("top_customers")
def top_customers(ctx: Context) -> dict[str, Any]:
    r, st = ctx.results, ctx.settings
    clv = r.clv.sort_index()
    top = clv.iloc[_order(clv["clv"])[: st.top_n]]
    top = _with_dates(ctx, top.join(r.rfm[["frequency", "recency", "T", "monetary_value"]]))
    kinds = {"clv": "money"}
    if {"clv_lower", "clv_upper"} <= set(top.columns):
        kinds |= {"clv_lower": "money", "clv_upper": "money"}
    kinds |= {"expected_purchases": "num2", "probability_alive": "pct", "expected_spend": "money",
              "frequency": "int", "monetary_value": "money"}
    kinds |= {"last_purchase": "date"} if "last_purchase" in top.columns else {}
    return {
        "title": f"Top {len(top):,} customers by CLV",
        "table": ctx.table(top, kinds, index="customer_id"),
        "caption": (f"CLV over the next {ctx.horizon}, {ctx.disc}. Repeat purchases and average repeat spend "
                    "are from the history; expected spend is per purchase."),
    }


@section("silent_customers")
def silent_customers(ctx: Context) -> dict[str, Any] | None:
    silent = ctx.results.silent
    if silent is None:
        return None
    fmt, a = ctx.fmt, silent.attrs
    n = {k: a[k] for k in ("n_silent", "n_top", "share_of_top", "value_if_retained", "expected_value")}
    rule = (f"A customer is listed when they are among the top {fmt.pct(a['top_share'], 0)} of customers "
            f"by past repeat spend, their P(alive) is below {fmt.pct(a['max_probability_alive'], 0)}, and "
            f"they have been silent for at least {a['min_silence']:g} times their usual gap between purchases "
            f"(defaults: top {SILENT_DEFAULTS['top_share']:.0%}, below {SILENT_DEFAULTS['max_probability_alive']:.0%}, "
            f"{SILENT_DEFAULTS['min_silence']:g} gaps; clvforecast.silent_customers).")
    if n["n_silent"]:
        headline = (f"{fmt.count(n['n_silent'])} of the {fmt.count(n['n_top'])} customers who spent most in the "
                    f"past ({fmt.pct(n['share_of_top'], 0)}) have probably slipped away without a word: they "
                    f"would be worth {fmt.money(n['value_if_retained'])} over the next {ctx.horizon} if retained, "
                    f"against {fmt.money(n['expected_value'])} expected as things stand.")
    else:
        headline = (f"None of the {fmt.count(n['n_top'])} customers who spent most in the past looks silent: "
                    "each is either probably still active or bought recently for their usual rhythm.")
    shown = _with_dates(ctx, silent.head(ctx.settings.top_n))
    kinds = {"past_spend": "money", "frequency": "int"}
    kinds |= {"last_purchase": "date"} if "last_purchase" in shown.columns else {}
    kinds |= {"silence": "num1", "usual_gap": "num1", "probability_alive": "pct", "clv": "money",
              "clv_if_alive": "money"}
    return {"title": "Silent customers", "numbers": n, "rule": rule, "headline": headline,
            "n_shown": len(shown), "table": ctx.table(shown, kinds, index="customer_id") if len(shown) else None}


@section("tiers")
def tiers(ctx: Context) -> dict[str, Any]:
    r, fmt = ctx.results, ctx.fmt
    clv = r.clv["clv"].sort_index()
    past = (r.rfm["frequency"] * r.rfm["monetary_value"]).reindex(clv.index)
    g = pd.DataFrame({"clv": clv, "past": past, "tier": tier_labels(clv)}).groupby("tier", observed=False)
    frame = pd.DataFrame({"customers": g.size(), "clv_from": g["clv"].min(), "clv_to": g["clv"].max(),
                          "clv_total": g["clv"].sum()})
    frame["share_of_clv"] = frame["clv_total"] / clv.sum() if clv.sum() > 0 else math.nan
    frame["share_of_past_spend"] = g["past"].sum() / past.sum() if past.sum() > 0 else math.nan
    top = frame.iloc[0]
    numbers = {"top_customers": int(top["customers"]), "top_min": float(top["clv_from"]),
               "top_total": float(top["clv_total"]), "top_share": float(top["share_of_clv"])}
    kinds = {"customers": "int", "clv_from": "money", "clv_to": "money", "clv_total": "money",
             "share_of_clv": "pct", "share_of_past_spend": "pct"}
    out: dict[str, Any] = {
        "title": "Where the value is", "numbers": numbers,
        "table": ctx.table(frame.rename_axis("tier"), kinds, index="tier"),
        "text": (f"Customers are ranked by CLV ({ctx.disc}) and cut into quarters: Q1 is the most valuable. "
                 f"The top quarter is worth {fmt.money(top['clv_total'])}, {fmt.pct(top['share_of_clv'], 0)} "
                 "of the total; the last column shows how much of the past repeat spend the same customers "
                 "made."),
        "figures": ["lorenz"],
    }
    if r.comparison is not None:
        out.update(_historical(ctx))
    return out


def _historical(ctx: Context) -> dict[str, Any]:
    """The model against the historical formula and the run rate, all undiscounted over the same horizon."""
    fmt, comp = ctx.fmt, ctx.results.comparison
    v = comp.summary["variants"]
    frame = v.rename(index=lambda k: METHODS.get(k, k))
    kinds = {"total": "money", "mean": "money", "top20_share": "pct", "spearman": "num2",
             "top10_overlap": "pct", "top20_overlap": "pct"}
    model, sentences = v.loc["predictive", "total"], []
    for key, name in (("avg_formula", "historical formula"), ("run_rate", "run rate")):
        if key in v.index:
            ratio = v.loc[key, "total"] / model if model > 0 else math.nan
            sentences.append(f"the {name} puts the base at {fmt.money(v.loc[key, 'total'])}"
                             + (f" ({ratio:.1f} times the model's)" if math.isfinite(ratio) else ""))
    text = (f"Over the same {ctx.horizon}, undiscounted, the model values the base at {fmt.money(model)}; "
            + "; ".join(sentences) + ". The historical formula gives every customer the same value, so it "
            "cannot tell them apart; neither it nor the run rate allows for customers who have left.")
    if "run_rate" in v.index and math.isfinite(v.loc["run_rate", "spearman"]):
        text += (f" The run rate orders customers much like the model (rank correlation "
                 f"{v.loc['run_rate', 'spearman']:.2f}) and shares {fmt.pct(v.loc['run_rate', 'top10_overlap'], 0)} "
                 "of its top 10%.")
    out = {"historical_text": text, "historical": ctx.table(frame.rename_axis("variant"), kinds, index="variant"),
           "figures": ["lorenz", "tiers", "predictive_vs_historical"]}
    rfm = comp.summary.get("rfm")
    if rfm is not None:
        out["rfm"] = ctx.table(rfm, {c: ("int" if c.endswith("customers") else "money") for c in rfm.columns},
                               index="score")
    return out


@section("validation")
def validation(ctx: Context) -> dict[str, Any] | None:
    ev = ctx.results.evaluation
    if ev is None:
        return None
    targets = [t for t in ("purchases", "spend") if (ev.metrics["target"] == t).any()]
    span = duration_words((pd.Timestamp(ev.observation_end) - pd.Timestamp(ev.calibration_end)).days)
    headline, sentences = _holdout_words(ctx, ev, targets[-1], span)
    ce = ev.conditional_expectations
    ce_kinds = {"customers": "int"} | {c: "num2" for c in ce.columns if c.endswith("_purchases")}
    out = {
        "title": "Holdout validation", "headline": headline, "sentences": sentences,
        "calibration_end": ev.calibration_end, "observation_end": ev.observation_end, "holdout": span,
        "metrics": {t: _metrics_table(ctx, ev, t) for t in targets},
        "conditional_expectations": ctx.table(ce.rename_axis("bucket"), ce_kinds, index="bucket"),
        "figures": [k for k in ("tracking_cumulative", "tracking_incremental") if ev.tracking is not None]
        + ["conditional_expectations", "period_transactions", "gains"],
        "purchase_params": _params_table(ctx, ev.bgnbd),
        "spend_params": None if ev.gamma_gamma is None else _params_table(ctx, ev.gamma_gamma),
        "text": ev.summary,
    }
    return out


def _metrics_table(ctx: Context, ev: Any, target: str) -> dict[str, Any]:
    keys = ("total_predicted", "pct_error", "mae", "spearman", "top_decile_capture", "gini")
    frame = pd.DataFrame({k: ev.metric(k, target) for k in keys}).rename(columns={"spearman": "rank_correlation"})
    frame["pct_error"] = frame["pct_error"] / 100
    frame = frame.rename(index=lambda m: METHODS.get(m, m)).rename_axis("method")
    value = "money" if target == "spend" else "int"
    kinds = {"total_predicted": value, "pct_error": "signed_pct", "mae": "money" if target == "spend" else "num2",
             "rank_correlation": "num2", "top_decile_capture": "pct", "gini": "num2"}
    actual = float(ev.metric("total_actual", target).iloc[0])
    shown = ctx.fmt.money(actual) if target == "spend" else ctx.fmt.count(actual)
    return {"title": f"Holdout {target}: actual total {shown}", "table": ctx.table(frame, kinds, index="method")}


def _holdout_words(ctx: Context, ev: Any, target: str, span: str) -> tuple[str, list[str]]:
    """The executive sentence and the section's sentences on the holdout, worded from the metrics."""
    fmt = ctx.fmt
    show = fmt.money if target == "spend" else fmt.count
    actual = float(ev.metric("total_actual", target).iloc[0])
    pred, err = ev.metric("total_predicted", target), ev.metric("pct_error", target) / 100
    mae, gini = ev.metric("mae", target), ev.metric("gini", target)

    def off(m: str) -> str:
        return f"{fmt.pct(abs(err[m]))} {'below' if err[m] < 0 else 'above'}"

    def per(m: str) -> str:
        return show(mae[m]) if target == "spend" else f"{mae[m]:.2f}"

    sentences = [f"Fitted on the data up to {ev.calibration_end} and asked for the {span} after it, the model "
                 f"put total {target} at {show(pred['bgnbd'])} against {show(actual)} actual ({off('bgnbd')})."]
    headline = f"On the {adjective(span)} holdout, the model's total {target} came out {off('bgnbd')} actual"
    if "avg_formula" in err.index:
        closer = abs(err["bgnbd"]) <= abs(err["avg_formula"])
        sentences.append(f"The historical formula predicted {show(pred['avg_formula'])} ({off('avg_formula')}): "
                         + ("the model came closer." if closer else "the formula came closer on the total."))
        headline += f", against {off('avg_formula')} for the historical formula"
        best = str(mae.idxmin())
        others = ", ".join(f"{per(m)} for {METHOD_WORDS[m]}" for m in mae.index if m != best)
        sentences.append(f"Customer by customer, {METHOD_WORDS[best]} erred least: {per(best)} on average "
                         f"against {others}.")
        headline += ("; customer by customer its error was the lowest of the three methods" if best == "bgnbd"
                     else f"; customer by customer {METHOD_WORDS[best]} erred least")
    ranker, lead = str(gini.idxmax()), float(gini.max() - gini["bgnbd"])
    order = "In ordering customers from most to least valuable"
    if ranker != "bgnbd" and lead >= 0.01:
        sentences.append(f"{order}, {METHOD_WORDS[ranker]} did {'slightly ' if lead < 0.05 else ''}better (Gini "
                         f"{gini[ranker]:.2f} against {gini['bgnbd']:.2f}).")
    elif ranker != "bgnbd":
        sentences.append(f"{order}, the model and {METHOD_WORDS[ranker]} did about equally well (Gini "
                         f"{gini['bgnbd']:.2f}).")
    elif len(gini) > 1:
        sentences.append(f"It also ordered customers best (Gini {gini['bgnbd']:.2f}).")
    return headline + ".", sentences


_PARAM_WORDS = {"r": "r (shape of purchase rates)", "alpha": "alpha (scale of purchase rates)",
                "a": "a (dropout, beta)", "b": "b (dropout, beta)", "p": "p (shape of spend)",
                "q": "q (shape of spend across customers)", "v": "v (scale of spend across customers)"}


def _params_table(ctx: Context, model: Any) -> dict[str, Any]:
    frame = model.summary.rename(index=lambda k: _PARAM_WORDS.get(str(k), str(k))).rename_axis("parameter")
    return ctx.table(frame, {c: "param" for c in ("coef", "se", "lower", "upper") if c in frame.columns},
                     index="parameter")


@section("model_comparison")
def model_comparison(ctx: Context) -> dict[str, Any] | None:
    """The purchase models side by side (filled when the results carry a ``model_comparison`` table)."""
    mc = ctx.results.model_comparison
    if mc is None:
        return None
    chosen = mc.attrs.get("chosen")
    if chosen is None and "chosen" in mc.columns:
        chosen = next((str(k) for k, v in mc["chosen"].items() if bool(v)), None)
    kinds = {"n_params": "int", "log_likelihood": "num2", "aic": "num1", "bic": "num1"}
    kinds |= {c: "num3" for c in mc.columns if c not in kinds and c != "chosen"
              and pd.api.types.is_numeric_dtype(mc[c])}
    text = f"The forecast uses {chosen}." if chosen else "No model was chosen."
    if mc.attrs.get("reason"):
        text += f" {mc.attrs['reason']}"
    return {"title": "Model comparison", "text": text, "chosen": chosen,
            "table": ctx.table(mc.rename_axis("model"), {k: v for k, v in kinds.items() if k in mc.columns},
                               index="model")}


@section("models")
def models(ctx: Context) -> dict[str, Any]:
    r, fmt, unit = ctx.results, ctx.fmt, ctx.settings.unit_name
    bg, gg = r.purchase_model, r.spend_model
    p = bg.params_
    purchase = [
        f"While active, a typical customer buys {p['r'] / p['alpha']:.3f} times per {unit[:-1]} (r / alpha); "
        "purchase rates vary across customers as a gamma distribution.",
        f"After each purchase a customer leaves for good with probability {fmt.pct(p['a'] / (p['a'] + p['b']))} "
        "on average (a / (a + b)); it varies across customers as a beta distribution.",
    ]
    spend = [f"The average spend per purchase across customers is {fmt.money(gg.population_mean_spend, 2)}; each "
             "customer's expected spend blends their own average with it, the more so the fewer purchases "
             "they made."]
    if gg.fit_info_.get("n_excluded_zero_spend"):
        spend.append(f"{fmt.count(gg.fit_info_['n_excluded_zero_spend'])} repeat customers whose repeat "
                     "purchases were all free were left out of the spend fit.")
    return {
        "title": "The fitted models",
        "text": (f"The models behind the forecast, fitted on all data up to {r.observation_end or 'the end'}"
                 + (" (the holdout section shows the fits on the calibration period)." if r.evaluation else ".")),
        "purchase": {"name": getattr(bg, "LABEL", "BG/NBD"), "customers": bg.n_customers_,
                     "log_likelihood": bg.log_likelihood_, "params": _params_table(ctx, bg), "notes": purchase},
        "spend": {"name": "Gamma-Gamma", "customers": gg.n_customers_, "log_likelihood": gg.log_likelihood_,
                  "params": _params_table(ctx, gg), "notes": spend},
        "problems": [x["text"] for x in (fit_problem(bg), fit_problem(gg)) if x],
    }


@section("methods")
def methods(ctx: Context) -> dict[str, Any]:
    st, fmt = ctx.settings, ctx.fmt
    cur = f" Amounts are in {st.currency}." if st.currency else " Amounts are in the data's currency."
    return {"title": "Methods and assumptions", "items": [
        "Day resolution: all purchases of a customer on one calendar day count as one purchase.",
        f"Time is measured in {st.unit_name} (a month is 365.25/12 days, a year 365.25 days).",
        f"Horizon: the {ctx.horizon} after {ctx.results.observation_end or 'the end of the data'}.",
        f"Discount rate {fmt.pct(st.discount_rate)} a year, compounded monthly; margin {fmt.pct(st.margin, 0)} "
        f"of spend.{cur}",
        "Purchases: BG/NBD (Fader, Hardie & Lee 2005). Spend per purchase: Gamma-Gamma (Fader & Hardie).",
        "CLV = the sum over monthly steps of margin x expected spend x expected purchases in the step, discounted.",
    ]}


@section("glossary", last=True)
def glossary(ctx: Context) -> dict[str, Any]:
    present = set(ctx.summary)
    items = [{"term": t, "definition": d} for t, d, needs in GLOSSARY if needs is None or needs in present]
    return {"title": "Glossary", "items": items}
