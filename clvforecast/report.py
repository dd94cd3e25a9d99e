"""The forecast report: one summary computed once, rendered to HTML, Markdown and JSON.

:class:`ForecastReport` runs the public API (RFM table, BG/NBD and Gamma-Gamma fit, predictive CLV, historical
comparison and, with a calibration cut-off, the holdout evaluation) once, keeps the results, and renders them.
The HTML is a single self-contained file: figures are embedded as PNG data URIs, styles are inline, nothing is
loaded from elsewhere, and it prints cleanly. The Jinja2 template is package data
(``clvforecast/templates/report.html.j2``).

With ``calibration_end``, the report does two things: it *validates* (fit on the data up to ``calibration_end``,
score the holdout to ``observation_end``) and it *forecasts* (fit again on all data up to ``observation_end``, and
forecast the ``horizon`` after it). Without it, it only forecasts.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import math
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._checks import check_discount_rate, check_margin
from .units import UNIT_NAMES, check_time_unit, describe_horizon, parse_horizon

__all__ = ["ForecastReport"]


# ----------------------------------------------------------------------------------------------------------------
# Formatting helpers
# ----------------------------------------------------------------------------------------------------------------
def _fmt(value: Any, kind: str = "num") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if kind == "int":
        return f"{int(round(value)):,}"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "signed_pct":
        return f"{value:+.1f}%"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _table_html(df: pd.DataFrame, *, index: bool = True, digits: int = 3) -> str:
    """A DataFrame as a plain HTML table with numbers formatted for reading."""
    shown = df.copy()
    for c in shown.columns:
        if pd.api.types.is_float_dtype(shown[c]):
            shown[c] = shown[c].map(lambda v: "n/a" if pd.isna(v) else f"{v:,.{digits}f}")
        elif pd.api.types.is_integer_dtype(shown[c]):
            shown[c] = shown[c].map(lambda v: f"{v:,}")
    return shown.to_html(index=index, border=0, escape=True, na_rep="n/a")


def _table_markdown(df: pd.DataFrame, *, index: bool = True, digits: int = 3) -> str:
    if index:
        df = df.copy()
        df.index = df.index.map(str)
    shown = df.reset_index() if index else df
    cols = [str(c) for c in shown.columns]

    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return "n/a" if not math.isfinite(v) else f"{v:,.{digits}f}"
        if isinstance(v, (int, np.integer)):
            return f"{v:,}"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join(lines)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, pd.DataFrame):
        return [_jsonable(r) for r in obj.reset_index().to_dict(orient="records")]
    if isinstance(obj, pd.Series):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, (pd.Timestamp, dt.date)):
        return obj.isoformat()
    return obj


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


@dataclass
class _Figure:
    key: str
    title: str
    png: str
    caption: str = ""


@dataclass
class _Block:
    kind: str  # text | note | list | cards | table | figures
    text: str = ""
    items: list[Any] = field(default_factory=list)
    title: str = ""
    caption: str = ""
    frame: pd.DataFrame | None = None
    index: bool = True

    @property
    def html(self) -> str:
        return _table_html(self.frame, index=self.index) if self.frame is not None else ""


@dataclass
class _Section:
    id: str
    title: str
    blocks: list[_Block] = field(default_factory=list)


def _spend_checks(gg: dict[str, Any]) -> list[str]:
    """Plain-words notes on the Gamma-Gamma fit's assumptions and exclusions."""
    notes = []
    corr, limit = gg.get("spend_frequency_correlation"), gg.get("correlation_threshold")
    if corr is not None and limit is not None and math.isfinite(corr):
        check = (
            f"within the {limit:.1f} threshold clvforecast warns at"
            if abs(corr) <= limit
            else f"beyond the {limit:.1f} threshold clvforecast warns at, so treat the spend forecast with care"
        )
        notes.append(
            "The model assumes spend per purchase is independent of purchase frequency: their correlation among "
            f"repeat customers is {corr:.2f}, {check}."
        )
    if gg.get("n_excluded_zero_spend"):
        notes.append(
            f"{gg['n_excluded_zero_spend']:,} repeat customers whose repeat purchases were all free were left out of "
            "the spend fit; their expected spend is the model's estimate at zero observed spend."
        )
    return notes


# ----------------------------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------------------------
class ForecastReport:
    """A CLV forecast report for a transaction log (or an RFM table), with optional holdout validation.

    Parameters
    ----------
    transactions:
        A DataFrame or a CSV/Parquet path, read as :func:`~clvforecast.read_transactions` reads it. Either this
        or ``rfm`` is required; with only an RFM table there is no historical-formula comparison and no tracking
        plot.
    rfm:
        An RFM table from :func:`~clvforecast.rfm_summary` (forecast only) or
        :func:`~clvforecast.calibration_holdout` (forecast from the calibration end, plus validation).
    calibration_end, observation_end:
        Dates. With ``calibration_end`` the report validates on the holdout ``(calibration_end, observation_end]``
        and forecasts after ``observation_end`` from a second fit on all data. ``observation_end`` defaults to the
        last transaction date.
    time_unit:
        ``"D"``, ``"W"`` (default), ``"M"`` or ``"Y"``: the unit of recency, T and the model's rates.
    horizon:
        Forecast horizon with its unit (``"52W"`` default, ``"12M"``, ``"365D"``) or a number in ``time_unit``.
    discount_rate:
        Annual discount rate for the CLV (0.10 = 10% a year), converted to monthly steps.
    margin:
        Profit margin applied to spend (1.0 = revenue).
    title:
        Report title.
    top_n:
        Number of customers in the top-customers table.
    customer_id, date, amount, date_format, on_invalid:
        How to read ``transactions`` (see :func:`~clvforecast.read_transactions`).

    The summary is computed on first use (``report.summary``) and reused by every renderer.
    """

    def __init__(
        self,
        transactions: Any = None,
        *,
        rfm: pd.DataFrame | None = None,
        calibration_end: Any = None,
        observation_end: Any = None,
        time_unit: str = "W",
        horizon: float | str = "52W",
        discount_rate: float = 0.10,
        margin: float = 1.0,
        title: str = "Customer lifetime value forecast",
        top_n: int = 20,
        customer_id: str = "customer_id",
        date: str = "date",
        amount: str = "amount",
        date_format: str | None = None,
        on_invalid: str = "raise",
    ) -> None:
        if (transactions is None) == (rfm is None):
            raise ValueError("give either transactions or rfm (an RFM table), not both and not neither")
        self.transactions = transactions
        self.rfm = rfm
        self.calibration_end = calibration_end
        self.observation_end = observation_end
        self.time_unit = check_time_unit(time_unit)
        self.horizon = horizon
        self.horizon_units = parse_horizon(horizon, self.time_unit)
        # A report of zero value says nothing: the margin must be positive; above 1 it is refused.
        self.margin = check_margin(margin, positive=True)
        self.discount_rate = check_discount_rate(discount_rate)
        self.title = title
        self.top_n = int(top_n)
        self.read_kwargs: dict[str, Any] = dict(
            customer_id=customer_id, date=date, amount=amount, date_format=date_format, on_invalid=on_invalid
        )

    # -- computation (once) -----------------------------------------------------------------------------------
    @cached_property
    def _results(self) -> dict[str, Any]:
        import clvforecast as cf

        res: dict[str, Any] = {}
        tx = self.transactions
        if tx is not None:
            # Read and validate once; every later step gets the tidy frame with the canonical column names.
            tx = cf.read_transactions(tx, **self.read_kwargs)
            obs = self.observation_end if self.observation_end is not None else tx["date"].max().date()
            full = cf.rfm_summary(tx, observation_end=obs, time_unit=self.time_unit)
            full.attrs["dropped"] = dict(tx.attrs.get("dropped", {}))
            full.attrs["n_rows_read"] = tx.attrs.get("n_rows_read", len(tx))
            res.update(
                overview_rfm=full, transactions=tx, observation_end=pd.Timestamp(obs).date().isoformat()
            )
            if self.calibration_end is not None:
                res["evaluation"] = cf.evaluate_holdout(
                    tx, calibration_end=self.calibration_end, observation_end=obs, time_unit=self.time_unit
                )
            forecast_rfm = full
        else:
            table = self.rfm
            assert table is not None  # __init__ requires transactions or rfm
            unit = table.attrs.get("time_unit")
            if unit is not None and unit != self.time_unit:
                raise ValueError(f"the RFM table is in unit {unit!r} but time_unit={self.time_unit!r}")
            res["overview_rfm"] = table
            res["observation_end"] = table.attrs.get("calibration_end") or table.attrs.get("observation_end")
            if "holdout_frequency" in table.columns:
                res["evaluation"] = cf.evaluate_holdout(table=table, time_unit=self.time_unit, tracking=False)
            forecast_rfm = table
        bg = cf.BetaGeo().fit(forecast_rfm, time_unit=self.time_unit)
        gg = cf.GammaGamma().fit(forecast_rfm, time_unit=self.time_unit)
        clv = cf.predictive_clv(
            bg,
            gg,
            forecast_rfm,
            horizon=self.horizon_units,
            discount_rate=self.discount_rate,
            margin=self.margin,
        )
        res.update(bg=bg, gg=gg, clv=clv, forecast_rfm=forecast_rfm)
        if tx is not None:
            hist = cf.historical_forecast(
                tx,
                calibration_end=res["observation_end"],
                horizon=self.horizon_units,
                time_unit=self.time_unit,
            )
            res["historical"] = hist
            # Undiscounted, a customer's CLV is margin x expected spend x expected purchases over the horizon:
            # derived from the forecast, not computed again (the historical variants are undiscounted too).
            undiscounted = clv.assign(clv=self.margin * clv["expected_spend"] * clv["expected_purchases"])
            undiscounted.attrs = {**clv.attrs, "discount_rate": 0.0, "discount_rate_per_step": 0.0}
            res["comparison"] = cf.compare_clv(undiscounted, hist, rfm=forecast_rfm, margin=self.margin)
        return res

    @cached_property
    def summary(self) -> dict[str, Any]:
        """Every number the report shows, as plain Python/pandas objects (computed once)."""
        r = self._results
        rfm = r["overview_rfm"]
        clv: pd.DataFrame = r["clv"]
        bg, gg = r["bg"], r["gg"]
        unit = UNIT_NAMES[self.time_unit]
        s: dict[str, Any] = {}
        s["settings"] = {
            "time_unit": self.time_unit,
            "horizon": self.horizon if isinstance(self.horizon, str) else f"{self.horizon:g}{self.time_unit}",
            "horizon_units": self.horizon_units,
            "discount_rate": self.discount_rate,
            "margin": self.margin,
            "calibration_end": None
            if self.calibration_end is None
            else str(pd.Timestamp(self.calibration_end).date()),
            "observation_end": r["observation_end"],
        }
        tx = r.get("transactions")
        overview: dict[str, Any] = {
            "customers": int(len(rfm)),
            "repeat_customers": int((rfm["frequency"] > 0).sum()),
            "repeat_share": float((rfm["frequency"] > 0).mean()),
            "repeat_transactions": int(rfm["frequency"].sum()),
            "transaction_days": int((rfm["frequency"] + 1).sum()),  # purchases at day resolution
            "dropped": dict(rfm.attrs.get("dropped", {})),
            "excluded_after_observation_end": int(rfm.attrs.get("excluded_after_observation_end", 0)),
        }
        if tx is not None:
            dates = tx["date"]
            overview.update(
                transactions=len(tx),  # the valid rows, as read
                rows_read=int(tx.attrs.get("n_rows_read", len(tx))),
                first_date=dates.min().date().isoformat(),
                last_date=dates.max().date().isoformat(),
            )
        s["overview"] = overview
        s["bgnbd"] = {
            "params": bg.summary,
            "log_likelihood": bg.log_likelihood_,
            "n_customers": bg.n_customers_,
        }
        s["gamma_gamma"] = {
            "params": gg.summary,
            "log_likelihood": gg.log_likelihood_,
            "n_customers": gg.n_customers_,
            "population_mean_spend": gg.population_mean_spend,
            "n_excluded_zero_spend": int(gg.fit_info_.get("n_excluded_zero_spend", 0)),
            "spend_frequency_correlation": gg.fit_info_.get("spend_frequency_correlation"),
            "correlation_threshold": gg.fit_info_.get("correlation_threshold"),
        }
        p = bg.params_
        s["interpretation"] = {
            "purchase_rate_while_active": float(p["r"] / p["alpha"]),
            "dropout_probability_per_purchase": float(p["a"] / (p["a"] + p["b"])),
            "mean_spend_per_purchase": float(gg.population_mean_spend),
        }
        s["forecast"] = {
            "expected_purchases": float(clv["expected_purchases"].sum()),
            "expected_revenue": float((clv["expected_purchases"] * clv["expected_spend"]).sum()),
            "clv_total": float(clv["clv"].sum()),
            "clv_mean": float(clv["clv"].mean()),
            "clv_median": float(clv["clv"].median()),
            "mean_probability_alive": float(clv["probability_alive"].mean()),
            "expected_alive_customers": float(clv["probability_alive"].sum()),
        }
        ordered = clv["clv"].sort_values(ascending=False, kind="stable")
        top20 = ordered.iloc[: max(1, math.ceil(0.2 * len(ordered)))].sum()
        s["forecast"]["top20_share"] = float(top20 / ordered.sum()) if ordered.sum() > 0 else float("nan")
        top = clv.loc[ordered.index[: self.top_n]].join(rfm[["frequency", "recency", "T", "monetary_value"]])
        s["top_customers"] = top
        comp = r.get("comparison")
        if comp is not None:
            s["comparison"] = {
                "top20_share": float(comp.summary["variants"].loc["predictive", "top20_share"]),
                "variants": comp.summary["variants"],
                "tiers": comp.summary["tiers"],
                "rfm": comp.summary.get("rfm"),
            }
        ev = r.get("evaluation")
        if ev is not None:
            s["validation"] = {
                "calibration_end": ev.calibration_end,
                "observation_end": ev.observation_end,
                "holdout_duration": ev.holdout_duration,
                "metrics": ev.metrics_table(),
                "bgnbd_params": ev.bgnbd.summary,
                "gamma_gamma_params": None if ev.gamma_gamma is None else ev.gamma_gamma.summary,
                "conditional_expectations": ev.conditional_expectations,
                "text": ev.summary,
            }
        s["unit_name"] = unit
        return s

    # -- figures (drawn once) -------------------------------------------------------------------------------------
    @cached_property
    def _figures(self) -> dict[str, _Figure]:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        from . import plotting

        r, figs = self._results, {}

        def draw(
            key: str, title: str, fn: Any, caption: str = "", size: tuple[float, float] = (6.4, 3.8)
        ) -> None:
            fig, ax = plt.subplots(figsize=size)
            fn(ax)
            figs[key] = _Figure(key, title, _png(fig), caption)

        clv = r["clv"]
        draw(
            "clv_distribution",
            "Predictive CLV per customer",
            lambda ax: plotting.plot_forecast_distribution(clv, "clv", ax=ax),
        )
        draw(
            "alive_distribution",
            "Probability that each customer is still active",
            lambda ax: plotting.plot_forecast_distribution(clv, "probability_alive", ax=ax),
            "under BG/NBD a customer can only drop out right after a purchase, so customers who never bought "
            "again have P(alive) = 1 (the bar at 1.0)",
        )
        draw(
            "purchases_distribution",
            "Expected purchases over the horizon",
            lambda ax: plotting.plot_forecast_distribution(clv, "expected_purchases", ax=ax),
        )
        draw(
            "alive_heatmap",
            "P(alive) by frequency and recency",
            lambda ax: plotting.plot_frequency_recency_heatmap(
                r["bg"], quantity="probability_alive", rfm=r["forecast_rfm"], ax=ax
            ),
            "each cell: the probability that a customer with that history is still active",
        )
        comp = r.get("comparison")
        if comp is not None:
            draw(
                "lorenz",
                "Concentration of value (Lorenz / Pareto curve)",
                lambda ax: plotting.plot_lorenz(comp, ax=ax),
            )
            draw("tiers", "CLV by tier", lambda ax: plotting.plot_tiers(comp, ax=ax))
            draw(
                "predictive_vs_historical",
                "Predictive vs historical (run-rate) CLV",
                lambda ax: plotting.plot_predictive_vs_historical(comp, "run_rate", ax=ax),
            )
        ev = r.get("evaluation")
        if ev is not None:
            if ev.tracking is not None:
                draw(
                    "tracking_cumulative",
                    "Tracking: cumulative repeat transactions",
                    lambda ax: plotting.plot_tracking(ev.tracking, cumulative=True, ax=ax),
                )
                draw(
                    "tracking_incremental",
                    "Tracking: repeat transactions per period",
                    lambda ax: plotting.plot_tracking(ev.tracking, cumulative=False, ax=ax),
                )
            draw(
                "conditional_expectations",
                "Conditional expectations: holdout purchases by calibration frequency",
                lambda ax: plotting.plot_conditional_expectations(ev.conditional_expectations, ax=ax),
            )
            draw(
                "period_transactions",
                "Calibration purchases: actual vs model",
                lambda ax: plotting.plot_period_transactions(ev.period_transactions, ax=ax),
            )
            draw(
                "gains",
                "Gains curve: share of holdout spend captured",
                lambda ax: plotting.plot_gains(ev.customers, target="spend", ax=ax),
            )
        return figs

    # -- the document (sections of blocks), shared by the HTML and Markdown renderers ------------------------------
    @cached_property
    def _sections(self) -> list[_Section]:
        s, figs = self.summary, self._figures
        st, ov, fc, it = s["settings"], s["overview"], s["forecast"], s["interpretation"]
        unit = s["unit_name"]
        horizon = describe_horizon(self.horizon, self.time_unit)
        out: list[_Section] = []

        def figblock(*keys: str) -> _Block:
            return _Block("figures", items=[figs[k] for k in keys if k in figs])

        # Overview
        cards = [
            {"label": "customers", "value": _fmt(ov["customers"], "int")},
            {
                "label": "repeat customers",
                "value": _fmt(ov["repeat_share"], "pct"),
                "help": f"{_fmt(ov['repeat_customers'], 'int')} bought again",
            },
            {
                "label": "repeat transactions",
                "value": _fmt(ov["repeat_transactions"], "int"),
                "help": "purchase days after each customer's first",
            },
        ]
        if "transactions" in ov:
            cards.insert(
                1,
                {
                    "label": "transactions",
                    "value": _fmt(ov["transactions"], "int"),
                    "help": f"{ov['first_date']} to {ov['last_date']}; "
                    f"{_fmt(ov['transaction_days'], 'int')} purchase days",
                },
            )
        sec = _Section("overview", "Data overview", [_Block("cards", items=cards)])
        dropped = ov["dropped"]
        if dropped:
            sec.blocks.append(
                _Block(
                    "note",
                    text="Rows dropped while reading: "
                    + ", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in dropped.items())
                    + ".",
                )
            )
        else:
            sec.blocks.append(
                _Block("text", text="No rows were dropped while reading: every transaction was valid.")
            )
        if ov["excluded_after_observation_end"]:
            sec.blocks.append(
                _Block(
                    "text",
                    text=f"{ov['excluded_after_observation_end']:,} transactions after "
                    f"{st['observation_end']} were excluded.",
                )
            )
        out.append(sec)

        # Forecast
        sec = _Section(
            "forecast",
            f"Forecast for the next {horizon}",
            [
                _Block(
                    "cards",
                    items=[
                        {"label": "expected purchases", "value": _fmt(fc["expected_purchases"], "int")},
                        {
                            "label": "expected revenue",
                            "value": _fmt(fc["expected_revenue"], "money"),
                            "help": "undiscounted, before margin",
                        },
                        {
                            "label": "total CLV",
                            "value": _fmt(fc["clv_total"], "money"),
                            "help": f"discounted at {st['discount_rate']:.0%}/yr, margin {st['margin']:.0%}",
                        },
                        {
                            "label": "mean CLV",
                            "value": _fmt(fc["clv_mean"], "money"),
                            "help": f"median {_fmt(fc['clv_median'], 'money')}",
                        },
                        {
                            "label": "expected active customers",
                            "value": _fmt(fc["expected_alive_customers"], "int"),
                            "help": f"sum of P(alive) (mean {_fmt(fc['mean_probability_alive'], 'pct')}); "
                            "one-time buyers count as active under BG/NBD",
                        },
                        {"label": "value held by top 20%", "value": _fmt(fc["top20_share"], "pct")},
                    ],
                ),
                figblock("clv_distribution", "alive_distribution", "purchases_distribution", "alive_heatmap"),
            ],
        )
        out.append(sec)

        # Top customers
        top = s["top_customers"].rename(
            columns={
                "expected_purchases": "exp. purchases",
                "probability_alive": "P(alive)",
                "expected_spend": "exp. spend",
            }
        )
        out.append(
            _Section(
                "top",
                f"Top {len(top)} customers by CLV",
                [
                    _Block(
                        "table",
                        frame=top.round(3),
                        caption=f"frequency = repeat purchases, recency and T in {unit}, monetary value "
                        "= mean spend per repeat purchase.",
                    )
                ],
            )
        )

        # Tiers and historical comparison
        if "comparison" in s:
            comp = s["comparison"]
            blocks = [
                _Block(
                    "text",
                    text=f"The top 20% of customers hold {_fmt(comp['top20_share'], 'pct')} of the "
                    f"predicted value over {horizon} (undiscounted, as in the curve below; the Pareto 80/20 check).",
                ),
                figblock("lorenz", "tiers"),
                _Block("table", title="CLV tiers (quartiles of predictive CLV)", frame=comp["tiers"]),
                _Block(
                    "text",
                    text=(
                        "The historical formula (average purchase value x purchase frequency x time, the same for every "
                        "customer) and the run-rate (each customer's own past spend rate, extended) ignore churn; the "
                        f"predictive CLV (undiscounted here, for a like-for-like comparison over {horizon}) weighs each "
                        "customer's future by the probability that they are still active."
                    ),
                ),
                _Block("table", title="Predictive vs historical CLV", frame=comp["variants"]),
                figblock("predictive_vs_historical"),
            ]
            if comp.get("rfm") is not None:
                blocks.append(
                    _Block("table", title="Mean predictive CLV by classic RFM score (1-5)", frame=comp["rfm"])
                )
            out.append(_Section("tiers", "CLV tiers and historical vs predictive CLV", blocks))

        # Validation
        if "validation" in s:
            v = s["validation"]
            blocks = [
                _Block(
                    "text",
                    text=(
                        f"Fitted on the data up to {v['calibration_end']}, the models predicted the "
                        f"holdout to {v['observation_end']} ({v['holdout_duration']:g} {unit}); "
                        "the historical formula and the run-rate predicted the same period. The average formula "
                        "counts every calibration purchase, each customer's first included, and ignores churn: it is "
                        "the formula as businesses apply it, and it over-predicts a young cohort's repeat purchases "
                        "by design; the run-rate (each customer's own repeat rate) is the harder baseline."
                    ),
                ),
                _Block(
                    "table",
                    title="Holdout metrics by method",
                    frame=v["metrics"],
                    caption="mae/rmse per customer; pct_error of the total; spearman rank correlation; "
                    "top_decile_capture: share of actual holdout value held by the predicted top 10%; "
                    "gini of the gains curve.",
                ),
                _Block(
                    "table",
                    title="Conditional expectations (holdout purchases by calibration frequency)",
                    frame=v["conditional_expectations"],
                ),
                figblock(
                    "tracking_cumulative",
                    "tracking_incremental",
                    "conditional_expectations",
                    "period_transactions",
                    "gains",
                ),
                _Block("table", title="BG/NBD fitted on the calibration period", frame=v["bgnbd_params"]),
            ]
            if v["gamma_gamma_params"] is not None:
                blocks.append(
                    _Block(
                        "table",
                        title="Gamma-Gamma fitted on the calibration period",
                        frame=v["gamma_gamma_params"],
                    )
                )
            out.append(_Section("validation", "Holdout validation", blocks))

        # Models
        bgp, ggp = s["bgnbd"]["params"], s["gamma_gamma"]["params"]
        out.append(
            _Section(
                "models",
                "Fitted models",
                [
                    _Block(
                        "text",
                        text=f"The models behind the forecast, fitted on all data up to {st['observation_end']}"
                        + (
                            " (the validation section shows the fits on the calibration period)."
                            if "validation" in s
                            else "."
                        ),
                    ),
                    _Block(
                        "table",
                        title=f"BG/NBD (purchases; {s['bgnbd']['n_customers']:,} customers, "
                        f"log-likelihood {s['bgnbd']['log_likelihood']:,.2f})",
                        frame=bgp,
                    ),
                    _Block(
                        "list",
                        items=[
                            f"While active, a typical customer buys r/alpha = {it['purchase_rate_while_active']:.3f} times per "
                            f"{unit[:-1]} (purchase rates vary across customers as a gamma distribution with shape r and "
                            "rate alpha).",
                            f"After each purchase a customer becomes inactive with probability "
                            f"{it['dropout_probability_per_purchase']:.1%} on average (a/(a+b); it varies across customers as "
                            "a beta distribution with parameters a and b).",
                        ],
                    ),
                    _Block(
                        "table",
                        title=f"Gamma-Gamma (spend per purchase; {s['gamma_gamma']['n_customers']:,} repeat "
                        f"customers, log-likelihood {s['gamma_gamma']['log_likelihood']:,.2f})",
                        frame=ggp,
                    ),
                    _Block(
                        "list",
                        items=[
                            f"The average spend per purchase across customers is {it['mean_spend_per_purchase']:,.2f} "
                            "(p*v/(q-1)); each customer's expected spend shrinks their own average toward it, more so the "
                            "fewer purchases they made.",
                            *_spend_checks(s["gamma_gamma"]),
                        ],
                    ),
                    _Block(
                        "text",
                        text="coef: estimate; se: standard error; lower/upper: 95% confidence interval.",
                    ),
                ],
            )
        )

        # Methods
        out.append(
            _Section(
                "methods",
                "Methods and assumptions",
                [
                    _Block(
                        "list",
                        items=[
                            "Day resolution: all purchases of a customer on one calendar day are one transaction.",
                            f"Time unit: {unit} (a month is 365.25/12 days, a year 365.25 days); recency and T are measured in "
                            f"{unit}.",
                            f"Horizon: {horizon} after {st['observation_end']} (given as {st['horizon']!r}).",
                            f"Discount rate: {st['discount_rate']:.1%} a year, compounded monthly; margin {st['margin']:.0%} of "
                            "spend.",
                            "BG/NBD (Fader, Hardie & Lee 2005): while active, purchases follow a Poisson process; after each "
                            "purchase a customer drops out with a customer-specific probability. Gamma-Gamma (Fader & Hardie): "
                            "spend per purchase varies around a customer-specific mean, independent of purchase frequency.",
                            "CLV = sum over monthly steps of margin x expected spend x expected purchases in the step, discounted.",
                            "Estimation by lifetimes on unique (frequency, recency, T) histories with counts as weights.",
                        ],
                    )
                ],
            )
        )
        return out

    # -- renderers ------------------------------------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        from . import __version__

        st = self.summary["settings"]
        period = (
            f"forecast over {describe_horizon(self.horizon, self.time_unit)} after {st['observation_end']}"
        )
        if st["calibration_end"]:
            period += f"; validated on a holdout from {st['calibration_end']}"
        return {
            "title": self.title,
            "subtitle": period,
            "version": __version__,
            "generated": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        }

    def to_html(self) -> str:
        """The report as one self-contained HTML document (figures embedded, no external assets)."""
        import jinja2

        env = jinja2.Environment(
            loader=jinja2.PackageLoader("clvforecast", "templates"),
            autoescape=jinja2.select_autoescape(["html", "j2"]),
        )
        return env.get_template("report.html.j2").render(meta=self._meta(), sections=self._sections)

    def write_html(self, path: str | Path) -> Path:
        """Write :meth:`to_html` to ``path`` (parent folders are created) and return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_html(), encoding="utf-8")
        return path

    def to_markdown(self, *, figures: bool = False) -> str:
        """The report as Markdown; with ``figures=True`` the figures are embedded as PNG data URIs."""
        meta = self._meta()
        lines = [f"# {meta['title']}", "", f"_{meta['subtitle']}_", ""]
        for sec in self._sections:
            lines += [f"## {sec.title}", ""]
            for b in sec.blocks:
                if b.kind in ("text", "note"):
                    lines += [b.text, ""]
                elif b.kind == "list":
                    lines += [f"- {item}" for item in b.items] + [""]
                elif b.kind == "cards":
                    lines += [
                        f"- **{c['label']}**: {c['value']}" + (f" ({c['help']})" if c.get("help") else "")
                        for c in b.items
                    ] + [""]
                elif b.kind == "table" and b.frame is not None:
                    if b.title:
                        lines += [f"### {b.title}", ""]
                    lines += [_table_markdown(b.frame, index=b.index), ""]
                    if b.caption:
                        lines += [f"_{b.caption}_", ""]
                elif b.kind == "figures":
                    for f in b.items:
                        lines += (
                            [f"![{f.title}](data:image/png;base64,{f.png})", ""]
                            if figures
                            else [f"_Figure: {f.title} (see the HTML report)_", ""]
                        )
        return "\n".join(lines)

    def to_json(self, *, indent: int | None = 2) -> str:
        """The summary (numbers and tables, no figures) as JSON; NaN becomes null."""
        s = dict(self.summary)
        s.pop("unit_name", None)
        return json.dumps(_jsonable(s), indent=indent, allow_nan=False)

    def _repr_html_(self) -> str:
        # Notebooks: the same document, without the <html> shell being a problem (browsers accept it inline).
        return self.to_html()

    def __repr__(self) -> str:
        st = f"time_unit={self.time_unit!r}, horizon={self.horizon!r}"
        if self.calibration_end is not None:
            st += f", calibration_end={str(self.calibration_end)!r}"
        return f"ForecastReport({html.escape(self.title)!r}, {st})"
