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

import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..compare import SILENT_DEFAULTS, _order, tier_labels
from ..models._base import _json_safe as _plain
from ..units import days_per
from .compute import Results, Settings
from .format import (
    GLOSSARY,
    METHOD_WORDS,
    METHODS,
    MODEL_LABELS,
    Formatter,
    adjective,
    duration_words,
    horizon_words,
    label,
    money_decimals,
)
from .ranges import both_ranges, card_ranges, includes_words, range_words, totals_ranges


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

    @property
    def spend(self) -> bool:
        """True when the data have amounts (spend, CLV and money); False for a frequency-only log."""
        return self.results.has_spend

    @property
    def model(self) -> str:
        """The purchase model's name for a reader: ``"BG/NBD"``."""
        pm = self.results.purchase_model
        return str(getattr(pm, "LABEL", "") or MODEL_LABELS.get(getattr(pm, "NAME", ""), "the purchase model"))

    @property
    def holdout(self) -> str | None:
        """The holdout's length in words (``"39 weeks"``), or None without a holdout."""
        ev = self.results.evaluation
        if ev is None:
            return None
        return duration_words((pd.Timestamp(ev.observation_end) - pd.Timestamp(ev.calibration_end)).days)

    @property
    def ranges(self) -> dict[str, Any] | None:
        """The base's totals with their ranges (:func:`.ranges.totals_ranges`), or None without ranges."""
        return totals_ranges(self.results.totals, self.holdout)

    def no_spend(self, what: str) -> str:
        """The one sentence a section that needs amounts shows for a frequency-only log."""
        return (f"The transaction log has no amounts, so {what} cannot be computed: this report forecasts "
                "purchases and P(alive) only (read the log with its amount column to see money).")

    def table(
        self, df: pd.DataFrame, kinds: dict[str, str], *, index: str | None = None, together: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """A DataFrame as a summary table (see the module docstring); ``kinds`` picks and orders the columns,
        ``index`` (a key such as ``"customer_id"``) adds the index as the first column. Money columns get their
        decimals from their own values, those in ``together`` (a from/to pair) from all of theirs."""
        frame = df.reset_index(names=index)[[index, *kinds]] if index else df[list(kinds)]
        kinds = ({index: "text" if not _numeric_index(df) else "id"} if index else {}) | kinds

        def cells(keys: Any) -> list[Any]:
            return [v for key in keys for cell in frame[key]
                    for v in (cell if isinstance(cell, (list, tuple)) else [cell])]  # fmt: skip

        def pair_decimals() -> int:  # 2 when whole units would show a row's different ends as one value
            decimals = money_decimals(cells(together))
            pairs = zip(*(frame[k] for k in together), strict=True)
            blurred = any(len({round(float(v)) for v in row}) < len(set(row)) for row in pairs)
            return 2 if decimals == 0 and blurred else decimals

        columns = []
        for key, kind in kinds.items():
            if kind.removeprefix("opt_") in ("money", "money_range"):
                decimals = pair_decimals() if key in together else money_decimals(cells([key]))
                kind = kind.replace("money", f"money{decimals}")
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
    if not (out["random_state"] is None or isinstance(out["random_state"], int)):
        out["random_state"] = repr(out["random_state"])
    return out


def _numeric_index(df: pd.DataFrame) -> bool:
    return pd.api.types.is_numeric_dtype(df.index)


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
        problem = fit_problem(model) if model is not None else None
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
    if r.evaluation is not None and getattr(r.evaluation, "totals", None) is not None:
        tot = r.evaluation.totals
        if "calibrated_covered" not in tot.columns and not bool(tot["covered"].all()):
            found.append({"key": "total_outside_range", "short": "a holdout total outside its model-only range",
                          "text": ("The actual holdout total fell outside the model-only range of the total, and "
                                   "there was no backtest to calibrate the ranges on: read the ranges of the "
                                   "totals as too narrow.")})
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
    fc = s["forecast"]["numbers"]
    sentences = [_value_sentence(ctx, fc)]
    active = fc["mean_probability_alive"]
    sentences.append(
        f"The model counts about {fmt.count(fc['expected_active'])} of them ({fmt.pct(active, 0)}) as still active"
        + ("; the rest have probably left without saying so." if active < 0.995 else
           ": it sees almost nobody leaving."))
    sentences.append(_concentration_sentence(ctx, fc))
    if "validation" in s:
        sentences.append(s["validation"]["headline"])
    silent = s.get("silent_customers")
    if silent and silent.get("numbers", {}).get("n_silent"):
        sentences.append(silent["headline"])
    found = caveats(ctx)
    if not ctx.spend:
        found.append({"key": "no_amounts", "short": "a log without amounts", "text": ctx.no_spend(
            "the value of the customers (CLV, spend, tiers, silent customers)")})
    if found:
        shorts = [c["short"] for c in found]
        listed = shorts[0] if len(shorts) == 1 else ", ".join(shorts[:-1]) + " and " + shorts[-1]
        sentences.append(f"Read these numbers with care: the results show {listed}; see the caveats below.")
    return {"title": "Summary", "sentences": sentences, "caveats": found}


def _value_sentence(ctx: Context, fc: dict[str, Any]) -> str:
    fmt, st, rng = ctx.fmt, ctx.settings, ctx.ranges
    start = (f"Over the next {ctx.horizon}, the {fmt.count(fc['customers'])} customers are expected to make "
             f"{fmt.count(fc['expected_purchases'])} purchases")
    if not ctx.spend:
        return start + (f" ({both_ranges(fmt, rng, 'purchases', money=False)})." if rng else ".")
    how = (f"discounted at {fmt.pct(st.discount_rate, 0)} a year" if st.discount_rate else "undiscounted")
    if st.margin != 1:
        how += f", at a {fmt.pct(st.margin, 0)} margin"
    value = fmt.money(fc["clv_total"]) + (f" ({both_ranges(fmt, rng, 'clv', money=True)})" if rng else "")
    return (f"{start} worth {fmt.money(fc['expected_revenue'])}; their lifetime value ({how}) is {value}.")


def _concentration_sentence(ctx: Context, fc: dict[str, Any]) -> str:
    share, fmt = fc["top20_share"], ctx.fmt
    spread = ("highly concentrated" if share >= 0.6 else "concentrated" if share >= 0.45
              else "moderately concentrated" if share >= 0.3 else "spread fairly evenly")
    if not ctx.spend:
        return (f"Future purchases are {spread}: the top 20% of customers are expected to make "
                f"{fmt.pct(share, 0)} of them.")
    tiers = ctx.summary["tiers"]["numbers"]
    return (f"Value is {spread}: the top 20% of customers hold {fmt.pct(share, 0)} of it, and the "
            f"top quarter ({fmt.count(tiers['top_customers'])} customers, each worth at least "
            f"{fmt.money(tiers['top_min'])}) is worth {fmt.money(tiers['top_total'])}.")


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
    if not ctx.spend:
        out["note"] = ("The log has no amounts: the report counts purchases only (each purchase day of a "
                       "customer is one purchase).")
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


def _capital(text: Any) -> str:
    text = str(text or "")
    return text[:1].upper() + text[1:]


def _ledger_note(entry: dict[str, Any]) -> str:
    """The ledger's note for a reader: the extreme purchase days, whose note speaks to the API user (a fence
    without currency, ``attrs`` and keyword names), point to their own paragraph instead."""
    note = str(entry.get("note") or "")
    if entry.get("key") == "extreme_orders":
        what = "value capped for the spend model" if "capped" in note else "kept as they are"
        return f"{what}; see Extreme purchase days below"
    return note or ("" if entry["rows"] else "counted, nothing removed")


@section("data_preparation")
def data_preparation(ctx: Context) -> dict[str, Any] | None:
    """Every row read accounted for: the ledger table, its identity, and the extreme purchase days."""
    ledger = ledger_of(ctx.results.rfm, ctx.results.transactions)
    if ledger is None:
        return None
    fmt = ctx.fmt
    entries = [e for e in ledger["entries"] if e["rows"] or e.get("value") or e.get("customers") or e.get("note")]
    removed = sum(int(e["rows"]) for e in ledger["entries"])
    read, used = int(ledger["rows_read"]), int(ledger["rows_used"])
    holds = bool(ledger.get("identity_holds", read == used + removed))
    if removed:
        text = (f"Of the {fmt.count(read)} rows read, {fmt.count(used)} reached the analysis and "
                f"{fmt.count(removed)} ({fmt.pct(removed / read)}) were removed, step by step below.")
    else:
        text = f"All {fmt.count(read)} rows read reached the analysis: no row was removed."
    counted = [fmt.count(e["rows"]) for e in ledger["entries"] if e["rows"]]
    identity = (f"Rows read = rows used + every row removed: {fmt.count(read)} = {fmt.count(used)}"
                + "".join(f" + {c}" for c in counted)
                + (" (the ledger adds up)." if holds else
                   f". It does not add up: {fmt.count(read - used - removed)} rows are not accounted for."))
    # Read, minus every row removed (negative), equals used: the identity as a column.
    rows = ([{"step": "Rows read", "ledger_rows": read, "value": None, "customers": None, "note": "in the source"}]
            + [{"step": _capital(e["label"]), "ledger_rows": -int(e["rows"]) if e["rows"] else None,
                "value": e.get("value"), "customers": e.get("customers"),
                "note": _ledger_note(e)} for e in entries]
            + [{"step": "Rows used", "ledger_rows": used, "value": None, "customers": None,
                "note": "reached the models"}])
    frame = pd.DataFrame(rows)
    kinds = {"step": "text", "ledger_rows": "opt_int", "value": "opt_money", "customers": "opt_int", "note": "text"}
    if not frame["value"].notna().any():
        kinds.pop("value")
    if not frame["customers"].notna().any():
        kinds.pop("customers")
    out = {"title": "Data preparation", "text": text, "identity": identity, "rows_read": read,
           "rows_used": used, "rows_removed": removed, "entries": ledger["entries"], "identity_holds": holds,
           "table": ctx.table(frame, kinds)}
    out.update(_extreme_days(ctx))
    out["holdout_note"] = _new_in_holdout(ctx)
    return out


def _extreme_days(ctx: Context) -> dict[str, Any]:
    """The extreme purchase days (``attrs["extreme_orders"]`` of the table): a sentence and a table."""
    listed = ctx.results.rfm.attrs.get("extreme_orders") or []
    if not listed:
        return {"extreme_text": "", "extreme": None}
    entry: dict[str, Any] = next((e for e in ctx.results.rfm.attrs.get("ledger", {}).get("entries", [])
                                  if e.get("key") == "extreme_orders"), {})
    frame = pd.DataFrame(listed).rename(columns={"value": "day_value"})
    frame = frame.sort_values("day_value", ascending=False, kind="stable").set_index("customer_id")
    kinds = {"date": "date", "day_value": "money"}
    fence = re.search(r"more than ([\d,]+(?:\.\d+)?)", str(entry.get("note") or ""))
    limit = f" (more than {ctx.fmt.money(float(fence.group(1).replace(',', '')))})" if fence else ""
    n = ctx.settings.top_n
    days = re.match(r"\s*([\d,]+) purchase days", str(entry.get("note") or ""))  # the ledger's count: all of them
    n_days = int(days.group(1).replace(",", "")) if days else len(listed)
    who = entry.get("customers") or frame.index.nunique()
    text = (f"{ctx.fmt.count(n_days)} purchase {'day' if n_days == 1 else 'days'}{limit} "
            f"{'lies' if n_days == 1 else 'lie'} far above the rest of the customer base ("
            + (f"{'it belongs' if n_days == 1 else 'they belong'} to {ctx.fmt.count(who)} "
               f"{'customer' if int(who) == 1 else 'customers'})")
            + (f"; the {min(n, len(frame))} largest are listed" if n_days > min(n, len(frame)) else "")
            + (". It is kept in the forecast: check that it is a real order" if n_days == 1
               else ". They are kept in the forecast: check that they are real orders")
            + " (a wholesale order, a data error?).")
    if "capped" in str(entry.get("note") or ""):
        text = re.sub(r"(It is|They are) kept in the forecast", lambda m: ("Its" if m.group(1) == "It is" else "Their")
                      + " value is capped for the spend model", text)
    frame = frame.head(n)
    return {"extreme_text": text, "extreme": ctx.table(frame, kinds, index="customer_id")}


def _new_in_holdout(ctx: Context) -> str:
    """The customers whose first purchase is in the holdout (the validation cannot score them)."""
    cal = ctx.results.calibration
    entries = (cal.attrs.get("ledger") or {}).get("entries", []) if cal is not None else []
    new = next((e for e in entries if e.get("key") == "new_in_holdout" and e.get("rows")), None)
    if new is None:
        return ""
    who = f"{ctx.fmt.count(new['customers'])} customers" if new.get("customers") is not None else "Customers"
    return (f"For the holdout check: {who} made their first purchase in the holdout ({ctx.fmt.count(new['rows'])} "
            "rows); the models fitted on the calibration period cannot score them, so they are left out of "
            "the check (the forecast includes them).")


@section("forecast")
def forecast(ctx: Context) -> dict[str, Any]:
    fmt, st, rng = ctx.fmt, ctx.settings, ctx.ranges
    n = _forecast_numbers(ctx)

    def note(quantity: str, money: bool) -> str:
        return card_ranges(fmt, rng, quantity, money=money) if rng else ""

    cards = [{"label": "Expected purchases", "value": fmt.count(n["expected_purchases"]),
              "note": note("purchases", False)}]
    if ctx.spend:
        how = f"discounted at {fmt.pct(st.discount_rate, 0)} a year" if st.discount_rate else "not discounted"
        cards += [
            {"label": "Expected revenue", "value": fmt.money(n["expected_revenue"]),
             "note": "; ".join(x for x in ("undiscounted, before margin", note("revenue", True)) if x)},
            {"label": f"Lifetime value ({ctx.disc})", "value": fmt.money(n["clv_total"]),
             "note": "; ".join(x for x in (f"{how}; margin {fmt.pct(st.margin, 0)}", note("clv", True)) if x)},
            {"label": "Average CLV per customer", "value": fmt.money(n["clv_mean"]),
             "note": f"median {fmt.money(n['clv_median'])}"},
        ]
    cards += [
        {"label": "Expected active customers", "value": fmt.count(n["expected_active"]),
         "note": f"sum of P(alive); average {fmt.pct(n['mean_probability_alive'], 0)}"},
        {"label": "Value held by the top 20%" if ctx.spend else "Purchases by the top 20%",
         "value": fmt.pct(n["top20_share"], 0), "note": ""},
    ]
    name = getattr(ctx.results.purchase_model, "NAME", "")
    alive_note = {
        "bgnbd": "Under BG/NBD a customer can only leave right after a purchase, so customers who never bought "
                 "again have P(alive) = 100%.",
        "mbgnbd": "Under MBG/NBD a customer may leave right after any purchase, the first included, so one-time "
                  "buyers are not all counted as active.",
    }.get(name, "")
    figures = (["clv_distribution"] if ctx.spend else []) + [
        "alive_distribution", "purchases_distribution", "alive_heatmap"]
    out = {"title": f"Forecast for the next {ctx.horizon}", "numbers": n, "cards": cards, "figures": figures,
           "alive_note": alive_note, "ranges": rng}
    if rng:
        out.update(_totals_table(ctx, rng))
    return out


def _totals_table(ctx: Context, rng: dict[str, Any]) -> dict[str, Any]:
    """The base's totals with both kinds of range (one column per quantity), and what each range includes."""
    fmt, pct = ctx.fmt, f"{100 * rng['level']:.0f}%"
    quantities = [q for q in ("purchases", "revenue", "clv") if q in rng["expected"]]
    kinds_of = [("Expected", None), (f"Model-only {pct} range", "model_only")]
    if rng.get("calibrated"):
        kinds_of.append((f"Backtest-calibrated {pct} range", "calibrated"))
    rows = []
    for name, key in kinds_of:
        row: dict[str, Any] = {"range_kind": name}
        for q in quantities:
            money = q != "purchases"
            if key is None:
                row[q] = fmt.money(rng["expected"][q]) if money else fmt.count(rng["expected"][q])
            else:
                row[q] = range_words(fmt, rng[key].get(q), money)
        rows.append(row)
    frame = pd.DataFrame(rows).rename(columns={"clv": "total_clv"})
    kinds = {"range_kind": "text"} | {("total_clv" if q == "clv" else q): "formatted" for q in quantities}
    texts = [rng["model_only_text"]] + ([rng["calibrated_text"]] if rng.get("calibrated") else [])
    texts += [n for n in ctx.results.notes if n.startswith("No backtest-calibrated range")]
    return {"totals_table": ctx.table(frame, kinds), "range_texts": texts,
            "range_figures": ["total_range"]}


def _forecast_numbers(ctx: Context) -> dict[str, Any]:
    clv = ctx.results.clv
    value = clv["clv"] if ctx.spend else clv["expected_purchases"]
    ordered = np.sort(value.to_numpy())[::-1]
    total = float(ordered.sum())
    k = max(1, math.ceil(0.2 * len(ordered)))
    n: dict[str, Any] = {
        "customers": len(clv),
        "expected_purchases": float(clv["expected_purchases"].sum()),
        "expected_active": float(clv["probability_alive"].sum()),
        "mean_probability_alive": float(clv["probability_alive"].mean()),
        "top20_share": float(ordered[:k].sum() / total) if total > 0 else math.nan,
    }
    if ctx.spend:
        n.update(expected_revenue=float((clv["expected_purchases"] * clv["expected_spend"]).sum()),
                 clv_total=float(clv["clv"].sum()), clv_mean=float(clv["clv"].mean()),
                 clv_median=float(clv["clv"].median()))
    rng = ctx.ranges
    if rng:
        n["interval_level"] = rng["level"]
        for q, name in (("clv", "clv_total"), ("revenue", "revenue"), ("purchases", "purchases")):
            for kind, prefix in (("model_only", ""), ("calibrated", "calibrated_")):
                lo_hi = (rng.get(kind) or {}).get(q)
                if lo_hi:
                    n[f"{name}_{prefix}lower"], n[f"{name}_{prefix}upper"] = lo_hi
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


def _ranges_of(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """``<column>_range`` = ``[<column>_lower, <column>_upper]`` per row, when the bounds are there."""
    lo, hi = f"{column}_lower", f"{column}_upper"
    if {lo, hi} <= set(table.columns):
        table = table.assign(**{f"{column}_range": [[a, b] for a, b in zip(table[lo], table[hi], strict=True)]})
    return table


@section("top_customers")
def top_customers(ctx: Context) -> dict[str, Any]:
    r, st = ctx.results, ctx.settings
    clv = r.clv.sort_index()
    by = "clv" if ctx.spend else "expected_purchases"
    top = clv.iloc[_order(clv[by])[: st.top_n]]
    rfm_cols = [c for c in ("frequency", "recency", "T", "monetary_value") if c in r.rfm.columns]
    top = _with_dates(ctx, _ranges_of(_ranges_of(top.join(r.rfm[rfm_cols]), "clv"), "expected_purchases"))
    kinds: dict[str, str] = {"clv": "money", "clv_range": "money_range"} if ctx.spend else {}
    kinds |= {"expected_purchases": "num2", "expected_purchases_range": "int_range", "probability_alive": "pct"}
    if ctx.spend:
        kinds |= {"expected_spend": "money", "frequency": "int", "monetary_value": "money"}
    else:
        kinds |= {"frequency": "int"}
    kinds |= {"last_purchase": "date"} if "last_purchase" in top.columns else {}
    kinds = {k: v for k, v in kinds.items() if k in top.columns}
    caption = (f"{'CLV' if ctx.spend else 'Expected purchases'} over the next {ctx.horizon}"
               + (f", {ctx.disc}" if ctx.spend else "") + ". Repeat purchases "
               + ("and average repeat spend are from the history; expected spend is per purchase." if ctx.spend
                  else "are from the history."))
    interval = r.clv.attrs.get("interval")
    if isinstance(interval, dict):
        caption += (f" Ranges: where the customer's actual {'value and ' if ctx.spend else ''}purchases over "
                    f"the horizon should fall with {ctx.fmt.pct(ctx.level, 0)} probability; they include "
                    f"{includes_words(interval.get('includes'))} (each customer's own).")
    return {
        "title": f"Top {len(top):,} customers by {'CLV' if ctx.spend else 'expected purchases'}",
        "table": ctx.table(top, kinds, index="customer_id"), "caption": caption,
        "figures": ["customer_ranges"] if isinstance(interval, dict) else [],
    }


@section("silent_customers")
def silent_customers(ctx: Context) -> dict[str, Any] | None:
    if not ctx.spend:
        return {"title": "Silent customers", "unavailable": ctx.no_spend(
            "the silent customers (valuable in the past by what they spent, and their value if retained)")}
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
    if not ctx.spend:
        return {"title": "Where the value is", "unavailable": ctx.no_spend(
            "the value of the customers (CLV tiers and the comparison with the historical formula)")}
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
        "table": ctx.table(frame.rename_axis("tier"), kinds, index="tier", together=("clv_from", "clv_to")),
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
    span = ctx.holdout or ""
    headline, sentences = _holdout_words(ctx, ev, targets[-1], span)
    ce = ev.conditional_expectations
    ce_kinds = {"customers": "int"} | {c: "num2" for c in ce.columns if c.endswith("_purchases")}
    out: dict[str, Any] = {
        "title": "Holdout validation", "headline": headline, "sentences": sentences,
        "calibration_end": ev.calibration_end, "observation_end": ev.observation_end, "holdout": span,
        "metrics": {t: _metrics_table(ctx, ev, t) for t in targets},
        "conditional_expectations": ctx.table(ce.rename_axis("bucket"), ce_kinds, index="bucket"),
        "figures": [k for k in ("tracking_cumulative", "tracking_incremental") if ev.tracking is not None]
        + ["conditional_expectations", "period_transactions", "gains"],
        "purchase_params": _params_table(ctx, ev.model),
        "purchase_model": str(getattr(ev.model, "LABEL", "") or ctx.model),
        "spend_params": None if ev.gamma_gamma is None else _params_table(ctx, ev.gamma_gamma),
        "text": ev.summary,
    }
    if ev.interval is not None:
        out["ranges"] = _coverage(ctx, ev, targets)
        out["headline"] = headline[:-1] + out["ranges"]["headline_clause"] + "."
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
    fmt, model = ctx.fmt, ev.method
    show = fmt.money if target == "spend" else fmt.count
    actual = float(ev.metric("total_actual", target).iloc[0])
    pred, err = ev.metric("total_predicted", target), ev.metric("pct_error", target) / 100
    mae, gini = ev.metric("mae", target), ev.metric("gini", target)

    def off(m: str) -> str:
        return f"{fmt.pct(abs(err[m]))} {'below' if err[m] < 0 else 'above'}"

    def per(m: str) -> str:
        return show(mae[m]) if target == "spend" else f"{mae[m]:.2f}"

    sentences = [f"Fitted on the data up to {ev.calibration_end} and asked for the {span} after it, the model "
                 f"put total {target} at {show(pred[model])} against {show(actual)} actual ({off(model)})."]
    headline = f"On the {adjective(span)} holdout, the model's total {target} came out {off(model)} actual"
    if "avg_formula" in err.index:
        closer = abs(err[model]) <= abs(err["avg_formula"])
        sentences.append(f"The historical formula predicted {show(pred['avg_formula'])} ({off('avg_formula')}): "
                         + ("the model came closer." if closer else "the formula came closer on the total."))
        headline += f", against {off('avg_formula')} for the historical formula"
        best = str(mae.idxmin())
        others = ", ".join(f"{per(m)} for {METHOD_WORDS.get(m, m)}" for m in mae.index if m != best)
        sentences.append(f"Customer by customer, {METHOD_WORDS.get(best, best)} erred least: {per(best)} on "
                         f"average against {others}.")
        headline += ("; customer by customer its error was the lowest of the three methods" if best == model
                     else f"; customer by customer {METHOD_WORDS.get(best, best)} erred least")
    ranker, lead = str(gini.idxmax()), float(gini.max() - gini[model])
    order = "In ordering customers from most to least valuable"
    if ranker != model and lead >= 0.01:
        sentences.append(f"{order}, {METHOD_WORDS.get(ranker, ranker)} did {'slightly ' if lead < 0.05 else ''}"
                         f"better (Gini {gini[ranker]:.2f} against {gini[model]:.2f}).")
    elif ranker != model:
        sentences.append(f"{order}, the model and {METHOD_WORDS.get(ranker, ranker)} did about equally well "
                         f"(Gini {gini[model]:.2f}).")
    elif len(gini) > 1:
        sentences.append(f"It also ordered customers best (Gini {gini[model]:.2f}).")
    return headline + ".", sentences


def _coverage_verdict(coverage: float, level: float) -> str:
    if coverage < level - 0.03:
        return "too narrow: fewer customers than the level fell inside"
    if coverage > level + 0.07:
        return "wider than they need to be"
    return "about right (counts are whole numbers, so a range holds a little more than its level)"


def _coverage(ctx: Context, ev: Any, targets: list[str]) -> dict[str, Any]:
    """The coverage of the customers' ranges on the holdout, and the holdout totals against their ranges."""
    fmt, level, m = ctx.fmt, float(ev.interval), ev.method
    pct = fmt.pct(level, 0)
    cov = {t: float(ev.metric("coverage", t)[m]) for t in targets}
    width = {t: float(ev.metric("interval_width", t)[m]) for t in targets}
    frame = pd.DataFrame({"target": [t.capitalize() for t in targets], "coverage": [cov[t] for t in targets],
                          "interval_width": [fmt.money(width[t]) if t == "spend" else f"{width[t]:.1f} purchases"
                                             for t in targets]})
    first = (f"The {pct} ranges of each customer's holdout purchases held the actual purchases of "
             f"{fmt.pct(cov['purchases'])} of customers" + (f" (spend: {fmt.pct(cov['spend'])})" if "spend" in cov
                                                           else "")
             + f": {_coverage_verdict(cov['purchases'], level)}. The ranges include "
             f"{includes_words(['process', 'parameter'] + (['spend'] if 'spend' in cov else []))}.")
    sentences = [first, *_totals_sentences(ctx, ev)]
    return {"level": level, "coverage": cov, "width": width, "sentences": sentences,
            "coverage_table": ctx.table(frame, {"target": "text", "coverage": "pct", "interval_width": "formatted"}),
            "totals_table": _holdout_totals_table(ctx, ev), "figures": ["pit", "holdout_total"],
            "headline_clause": f"; its {pct} ranges held the actual purchases of {fmt.pct(cov['purchases'], 0)} of "
                               "customers"}


def _totals_sentences(ctx: Context, ev: Any) -> list[str]:
    tot, fmt = ev.totals, ctx.fmt
    out: list[str] = []
    if tot is None:
        return out
    for target in tot.index:
        row, money = tot.loc[target], target == "spend"
        actual = fmt.money(row["actual"]) if money else f"{fmt.count(row['actual'])} purchases"
        text = (f"The actual holdout {'spend' if money else 'total'} of {actual} fell "
                f"{'inside' if row['covered'] else 'outside'} the model-only range of the total "
                f"({range_words(fmt, [row['lower'], row['upper']], money)})")
        if "calibrated_lower" in row.index:
            text += (f" and {'inside' if row['calibrated_covered'] else 'outside'} the backtest-calibrated range "
                     f"({range_words(fmt, [row['calibrated_lower'], row['calibrated_upper']], money)})")
        out.append(text + ".")
    if not bool(tot["covered"].all()):
        out.append("The model-only range of a total leaves out shocks that hit every customer at once (a season, "
                   "a campaign): " + ("that is what the backtest-calibrated range adds." if "calibrated_lower"
                                      in tot.columns else "read the model-only ranges of totals as too narrow."))
    return out


def _holdout_totals_table(ctx: Context, ev: Any) -> dict[str, Any] | None:
    tot = ev.totals
    if tot is None:
        return None
    pct = ctx.fmt.pct(float(ev.interval), 0)
    kinds_of = [(f"Model-only {pct} range", "lower", "upper", "covered")]
    if "calibrated_lower" in tot.columns:
        kinds_of.append((f"Backtest-calibrated {pct} range", "calibrated_lower", "calibrated_upper",
                         "calibrated_covered"))
    rows = []
    for name, lo, hi, inside in kinds_of:
        row: dict[str, Any] = {"range_kind": name}
        for target in tot.index:
            row[f"{target}_range"] = [float(tot.loc[target, lo]), float(tot.loc[target, hi])]
            row[f"{target}_inside"] = "yes" if bool(tot.loc[target, inside]) else "no"
        rows.append(row)
    kinds = {"range_kind": "text"}
    for target in tot.index:
        kinds |= {f"{target}_range": "money_range" if target == "spend" else "int_range", f"{target}_inside": "text"}
    return ctx.table(pd.DataFrame(rows), kinds)


_PARAM_WORDS = {"r": "r (shape of purchase rates)", "alpha": "alpha (scale of purchase rates)",
                "a": "a (dropout, beta)", "b": "b (dropout, beta)", "s": "s (shape of dropout rates)",
                "beta": "beta (scale of dropout rates)", "p": "p (shape of spend)",
                "q": "q (shape of spend across customers)", "v": "v (scale of spend across customers)"}


def unidentified(model: Any) -> list[str]:
    """The parameters a fit does not determine: not identified (``summary``'s ``identified`` column,
    ``diagnostics_["unidentified"]``) or at a bound of the search."""
    diag = getattr(model, "diagnostics_", None) or {}
    names = set(diag.get("unidentified") or []) | set(diag.get("at_bound") or [])
    summary = model.summary
    if "identified" in summary.columns:
        names |= {str(k) for k, ok in summary["identified"].items() if not bool(ok)}
    return [str(n) for n in summary.index if str(n) in names]


def _params_table(ctx: Context, model: Any) -> dict[str, Any]:
    """The estimates with their standard errors and 95% intervals; a parameter the data do not determine is
    shown as such, not as an estimate."""
    frame = model.summary[[c for c in ("coef", "se", "lower", "upper") if c in model.summary.columns]]
    frame = frame.astype(object)
    kinds = {c: "param" for c in frame.columns}
    bad = unidentified(model)
    if bad:
        notes = {n: (f"the data do not determine it: the fit stopped at {float(model.summary.loc[n, 'coef']):.3g}, "
                     "which is not an estimate") for n in bad}
        frame.loc[bad, "coef"] = "not identified"
        frame.loc[bad, [c for c in ("se", "lower", "upper") if c in frame.columns]] = None
        frame["estimate_note"] = [notes.get(str(n), "") for n in frame.index]
        kinds["estimate_note"] = "text"
    frame = frame.rename(index=lambda k: _PARAM_WORDS.get(str(k), str(k))).rename_axis("parameter")
    return ctx.table(frame, kinds, index="parameter")


#: How the comparison's columns are printed, in this order (other numeric columns: 3 decimals, after them).
_COMPARISON_KINDS = {"n_params": "int", "log_likelihood": "num2", "aic": "num1", "bic": "num1", "mae": "num3",
                     "rmse": "num3", "pct_error": "signed_pct", "rank_correlation": "num3", "tracking_error": "num1",
                     "tracking_error_pct": "pct"}
#: The comparison's rules (``compare_models(rule=...)``) in words, for the reason of the choice.
_RULE_WORDS = {"mae": "the lowest average error per customer on the holdout purchases",
               "rmse": "the lowest root mean squared error on the holdout purchases",
               "pct_error": "the smallest error of the holdout total", "spearman": "the best ranking of the "
               "customers on the holdout (rank correlation)", "tracking_error": "the lowest tracking error over the "
               "holdout", "aic": "the lowest AIC", "bic": "the lowest BIC"}


@section("model_comparison")
def model_comparison(ctx: Context) -> dict[str, Any] | None:
    """The purchase models side by side (when the report chose the model: ``model="auto"``)."""
    mc = ctx.results.model_comparison
    if mc is None:
        return None
    chosen = str(mc.attrs.get("chosen") or "")
    if not chosen and "chosen" in mc.columns:
        chosen = next((str(k) for k, v in mc["chosen"].items() if bool(v)), "")
    names = {str(k): str(mc.loc[k, "label"]) if "label" in mc.columns else MODEL_LABELS.get(str(k), str(k))
             for k in mc.index}
    sound = _sound_fits(mc)
    frame = mc.rename(columns={"spearman": "rank_correlation"})
    for col in ("pct_error", "tracking_error_pct"):  # percent points, as the evaluation's metrics
        if col in frame.columns:
            frame[col] = frame[col] / 100
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])
               and not pd.api.types.is_bool_dtype(frame[c]) and c not in ("chosen",)]
    numeric = [c for c in _COMPARISON_KINDS if c in numeric] + [c for c in numeric if c not in _COMPARISON_KINDS]
    numeric = [c for c in numeric if frame[c].notna().any()]  # no column of n/a (e.g. no tracking from a table)
    frame = frame[numeric].assign(fit=["sound" if sound[str(k)] else "degenerate" for k in frame.index],
                                  chosen=["chosen" if str(k) == chosen else "" for k in frame.index])
    kinds = {c: _COMPARISON_KINDS.get(c, "num3") for c in numeric} | {"fit": "text", "chosen": "text"}
    frame = frame.rename(index=lambda k: names[str(k)]).rename_axis("model")
    span = f"{adjective(ctx.holdout)} " if ctx.holdout else ""
    text = (f"{len(mc)} purchase models were fitted on the calibration period and scored on the {span}holdout. "
            f"The forecast uses {names.get(chosen, chosen)}: "
            f"{_why(mc, chosen, names, sound)}")
    notes = [f"{names[str(k)]}: {mc.loc[k, 'message']}" for k in mc.index
             if not sound[str(k)] and "message" in mc.columns and mc.loc[k, "message"]]
    return {"title": "Model comparison", "text": text, "chosen": chosen, "chosen_label": names.get(chosen, chosen),
            "rule": mc.attrs.get("rule"), "table": ctx.table(frame, kinds, index="model"), "notes": notes,
            "caption": ("Log-likelihood, AIC and BIC measure the fit to the calibration period (AIC and BIC "
                        "penalise parameters; lower is better); the other columns score the holdout. A degenerate "
                        "fit (not converged, or parameters the data do not determine) is passed over unless every "
                        "fit is.")}


def _sound_fits(mc: pd.DataFrame) -> dict[str, bool]:
    """Per model: did its fit converge with identified parameters (True when the table does not say)."""
    ok = pd.Series(True, index=mc.index)
    for col in ("converged", "identified"):
        if col in mc.columns:
            ok &= mc[col].astype(bool)
    return {str(k): bool(v) for k, v in ok.items()}


def _why(mc: pd.DataFrame, chosen: str, names: dict[str, str], sound: dict[str, bool]) -> str:
    """Why the comparison chose ``chosen``, in words from its rule and numbers."""
    rule = str(mc.attrs.get("rule_name") or mc.attrs.get("rule") or "mae")
    if rule not in _RULE_WORDS or rule not in mc.columns or chosen not in mc.index:
        return str(mc.attrs.get("rule") or f"it is the best by the rule {rule!r}").rstrip(".") + "."
    rivals = [k for k in mc.index if str(k) != chosen and (sound[str(k)] or not sound[chosen])]
    value = f"{float(mc.loc[chosen, rule]):.3f}"
    others = ", ".join(f"{float(mc.loc[k, rule]):.3f} for {names[str(k)]}" for k in rivals)
    if rivals and all(f"{float(mc.loc[k, rule]):.3f}" == value for k in rivals):
        others = f"{value} for every other model: a tie, which goes to the model listed first"
    text = f"it had {_RULE_WORDS[rule]} ({value}" + (f", against {others})." if others else ").")
    passed = [names[str(k)] for k in mc.index if not sound[str(k)] and str(k) != chosen]
    if not sound[chosen]:
        text += " No model fitted soundly, so the choice rests on a degenerate fit: read the forecast with care."
    elif passed:
        text += (f" {' and '.join(passed)} {'was' if len(passed) == 1 else 'were'} passed over: "
                 f"{'its' if len(passed) == 1 else 'their'} fit is degenerate.")
    return text


def _purchase_notes(ctx: Context, pm: Any) -> list[str]:
    """What the purchase model's parameters say, in words; a quantity resting on parameters the data do not
    determine is not quoted."""
    p, fmt, unit = pm.params_, ctx.fmt, ctx.settings.unit_name[:-1]
    bad = set(unidentified(pm))
    name = getattr(pm, "NAME", "bgnbd")

    def unknown(names: tuple[str, ...], what: str) -> str | None:
        missing = [n for n in names if n in bad]
        if not missing:
            return None
        return (f"The data do not determine {what} ({', '.join(missing)} not identified), so the report does not "
                "quote it.")

    notes = [unknown(("r", "alpha"), "the purchase rate") or (
        f"While active, a typical customer buys {p['r'] / p['alpha']:.3f} times per {unit} (r / alpha); "
        "purchase rates vary across customers as a gamma distribution.")]
    if name == "pnbd":
        median = p["beta"] * (2 ** (1 / p["s"]) - 1)
        notes.append(unknown(("s", "beta"), "how long customers stay") or (
            f"A customer may leave at any moment; half of the customers are expected to stay active longer than "
            f"{median:,.1f} {ctx.settings.unit_name} (beta (2^(1/s) - 1)); dropout rates vary across customers as "
            "a gamma distribution."))
    else:
        first = " (the first included)" if name == "mbgnbd" else ""
        notes.append(unknown(("a", "b"), "how often customers leave") or (
            f"After each purchase{first} a customer leaves for good with probability "
            f"{fmt.pct(p['a'] / (p['a'] + p['b']))} on average (a / (a + b)); it varies across customers as a "
            "beta distribution."))
    return notes


@section("models")
def models(ctx: Context) -> dict[str, Any]:
    r, fmt = ctx.results, ctx.fmt
    pm, gg = r.purchase_model, r.spend_model
    spend = None
    if gg is not None:
        notes = [f"The average spend per purchase across customers is {fmt.money(gg.population_mean_spend, 2)}; "
                 "each customer's expected spend blends their own average with it, the more so the fewer purchases "
                 "they made."]
        if gg.fit_info_.get("n_excluded_zero_spend"):
            notes.append(f"{fmt.count(gg.fit_info_['n_excluded_zero_spend'])} repeat customers whose repeat "
                         "purchases were all free were left out of the spend fit.")
        spend = {"name": "Gamma-Gamma", "customers": gg.n_customers_, "log_likelihood": gg.log_likelihood_,
                 "params": _params_table(ctx, gg), "notes": notes}
    return {
        "title": "The fitted models",
        "problems": [x["text"] for x in (fit_problem(pm), fit_problem(gg) if gg is not None else None) if x],
        "text": (f"The models behind the forecast, fitted on all data up to {r.observation_end or 'the end'}"
                 + (" (the holdout section shows the fits on the calibration period)." if r.evaluation else ".")),
        "purchase": {"name": ctx.model, "customers": pm.n_customers_, "log_likelihood": pm.log_likelihood_,
                     "params": _params_table(ctx, pm), "notes": _purchase_notes(ctx, pm)},
        "spend": spend,
        "no_spend": "" if gg is not None else ctx.no_spend("a spend model"),
    }


_REFERENCES = {"bgnbd": "BG/NBD (Fader, Hardie & Lee 2005)", "pnbd": "Pareto/NBD (Schmittlein, Morrison & Colombo "
               "1987)", "mbgnbd": "MBG/NBD (Batislam, Denizel & Filiztekin 2007)"}


@section("methods")
def methods(ctx: Context) -> dict[str, Any]:
    st, fmt = ctx.settings, ctx.fmt
    cur = f" Amounts are in {st.currency}." if st.currency else " Amounts are in the data's currency."
    name = getattr(ctx.results.purchase_model, "NAME", "bgnbd")
    chosen = " (chosen by the model comparison above)" if ctx.results.model_comparison is not None else ""
    items = [
        "Day resolution: all purchases of a customer on one calendar day count as one purchase.",
        f"Time is measured in {st.unit_name} (a month is 365.25/12 days, a year 365.25 days).",
        f"Horizon: the {ctx.horizon} after {ctx.results.observation_end or 'the end of the data'}.",
        f"Purchases: {_REFERENCES.get(name, ctx.model)}{chosen}."
        + (" Spend per purchase: Gamma-Gamma (Fader & Hardie)." if ctx.spend else " No spend model: the log has "
           "no amounts."),
    ]
    if ctx.spend:
        items[3:3] = [f"Discount rate {fmt.pct(st.discount_rate)} a year, compounded monthly; margin "
                      f"{fmt.pct(st.margin, 0)} of spend.{cur}"]
        items.append("CLV = the sum over monthly steps of margin x expected spend x expected purchases in the step, "
                     "discounted.")
    interval = ctx.results.clv.attrs.get("interval")
    if isinstance(interval, dict):
        items.append(
            f"Ranges: equal-tailed {fmt.pct(ctx.level, 0)} predictive intervals from the model's exact distribution "
            f"of each customer's purchases, mixed over {interval.get('n_draws', 20)} draws of the parameters from "
            "their estimated sampling distribution (normal on the log scale)"
            + (", with each customer's Gamma-Gamma spend" if ctx.spend else "")
            + f"; the draws are seeded (random_state={st.random_state!r}), so the report is the same on every run."
            " Ranges of totals are the distribution of the sum (clvforecast.forecast_totals).")
    return {"title": "Methods and assumptions", "items": items}


@section("glossary", last=True)
def glossary(ctx: Context) -> dict[str, Any]:
    s = ctx.summary
    present = {k for k in s if not (isinstance(s[k], dict) and s[k].get("unavailable"))}
    present |= {"spend"} if ctx.spend else set()
    rng = s.get("forecast", {}).get("ranges")
    present |= {"ranges"} if rng else set()
    present |= {"calibrated"} if rng and rng.get("calibrated") else set()
    present |= {"coverage"} if s.get("validation", {}).get("ranges") else set()
    present.add(str(getattr(ctx.results.purchase_model, "NAME", "bgnbd")))
    mc = ctx.results.model_comparison
    present |= {str(k) for k in mc.index} if mc is not None else set()
    items = [{"term": t, "definition": d} for t, d, needs in GLOSSARY if needs is None or needs in present]
    return {"title": "Glossary", "items": items}
