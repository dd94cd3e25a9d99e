"""The report's computation, done once: read the log, choose and fit the models, forecast, validate, compare.

:func:`compute` runs the public API and returns :class:`Results`, the pandas objects and fitted models every
later layer reads (the summary's numbers, the figures' data). Nothing here formats or draws.

With ``calibration_end`` the report *validates* (fit on the data up to ``calibration_end``, score the holdout
to ``observation_end``, with the coverage of the predictive ranges) and *forecasts* (fit again on all data up to
``observation_end`` and forecast the ``horizon`` after it). Without it, it only forecasts. With
``model="auto"`` the purchase models are first compared on the holdout (:func:`~clvforecast.compare_models`)
and the chosen one is used for the validation and the forecast.

Ranges of the totals come in two kinds (:func:`~clvforecast.forecast_totals`): *model-only* (the purchase
process, the parameters' uncertainty and the spend) and, when the holdout and earlier cutoffs give the model's
own past errors on the totals, *backtest-calibrated* (those errors added: shocks that hit every customer at once).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..exceptions import DataValidationError
from ..units import UNIT_NAMES, parse_horizon

#: The purchase models a report can use (BG/BB needs discrete opportunities, which a report does not build).
REPORT_MODELS: tuple[str, ...] = ("bgnbd", "pnbd", "mbgnbd")


@dataclass(frozen=True)
class Settings:
    """What the report was asked for (checked by :class:`~clvforecast.ForecastReport`)."""

    time_unit: str
    horizon: float | str
    horizon_units: float
    discount_rate: float
    margin: float
    title: str
    top_n: int
    currency: str | None
    calibration_end: str | None = None
    observation_end: str | None = None
    model: str = "bgnbd"
    interval: float | None = 0.9
    random_state: Any = 0
    past_cutoffs: int | None = 4
    read_options: dict[str, Any] = field(default_factory=dict)

    @property
    def unit_name(self) -> str:
        """The time unit in words: ``"weeks"``."""
        return UNIT_NAMES[self.time_unit]


@dataclass
class Results:
    """Everything the report computed, as the public API returns it.

    ``rfm`` is the table the forecast was made from, ``clv`` the :func:`~clvforecast.predictive_clv` table
    (discounted; with the ``_lower``/``_upper`` columns when ranges were asked for; without spend columns for a
    log without amounts), ``comparison`` the :func:`~clvforecast.compare_clv` of the *undiscounted* CLV with the
    historical variants (like for like), ``silent`` the :func:`~clvforecast.silent_customers` table.

    ``model_comparison`` is :func:`~clvforecast.compare_models`' table (indexed by model, ``attrs["chosen"]``)
    when the model was chosen automatically; ``totals`` the :func:`~clvforecast.forecast_totals` table of the
    base (rows ``purchases``, ``revenue``, ``clv``; ``expected``, ``lower``, ``upper`` and, when the model's
    past errors were known, ``calibrated_lower``/``calibrated_upper``); ``calibration`` the calibration/holdout
    table behind the validation (its ledger counts the customers new in the holdout); ``notes`` say what could
    not be computed and why (e.g. no backtest-calibrated range).
    """

    rfm: pd.DataFrame
    clv: pd.DataFrame
    purchase_model: Any
    spend_model: Any
    observation_end: str | None
    transactions: pd.DataFrame | None = None
    evaluation: Any = None
    historical: pd.DataFrame | None = None
    comparison: Any = None
    silent: pd.DataFrame | None = None
    model_comparison: pd.DataFrame | None = None
    totals: pd.DataFrame | None = None
    calibration: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def has_spend(self) -> bool:
        """True when the data have amounts (a spend model was fitted and the CLV computed)."""
        return self.spend_model is not None and "clv" in self.clv.columns


# ----------------------------------------------------------------------------------------------------------
# Checks of the settings (ForecastReport calls them, so that a bad argument fails before any work)
# ----------------------------------------------------------------------------------------------------------
def check_model(model: Any, *, holdout: bool) -> str:
    """The purchase model's short name, ``"auto"`` included; ``None`` gives ``"auto"`` with a holdout (a
    ``calibration_end`` or a calibration table), else ``"bgnbd"``."""
    if model is None:
        return "auto" if holdout else "bgnbd"
    if isinstance(model, str) and model.strip().lower() == "auto":
        if not holdout:
            raise ValueError(
                "model='auto' chooses the purchase model on a holdout, and there is none; give calibration_end "
                "(or a calibration_holdout table), or name the model: 'bgnbd', 'pnbd' or 'mbgnbd'"
            )
        return "auto"
    from ..models import purchase_model

    try:
        name = str(purchase_model(model).NAME) if isinstance(model, str) else ""
    except ValueError:
        name = ""
    if name not in REPORT_MODELS:
        raise ValueError(
            f"model={model!r} is not one the report can use; pass 'auto' (compare them on the holdout), "
            "'bgnbd' (BG/NBD), 'pnbd' (Pareto/NBD) or 'mbgnbd' (MBG/NBD)"
        )
    return name


def _positive_horizon(horizon: Any, unit: str) -> float:
    """The horizon in ``unit``; a zero horizon is refused (a forecast of nothing)."""
    value = parse_horizon(horizon, unit)
    if value <= 0:
        shown = horizon if isinstance(horizon, str) else f"{horizon:g}{unit}"
        raise ValueError(f"horizon {shown} is zero; give a positive duration such as '52W' or '12M'")
    return value


def _date(value: Any, name: str, date_format: str | None = None) -> str:
    """A cutoff as an ISO date, with the io module's rules (text read with ``date_format`` when given; an
    ambiguous all-numeric date or a number refused with the fix)."""
    from ..io import _to_date

    return _to_date(value, name, date_format).isoformat()


def _check_past_cutoffs(past_cutoffs: Any) -> int | None:
    if past_cutoffs is None:
        return None
    if isinstance(past_cutoffs, bool) or not isinstance(past_cutoffs, int) or past_cutoffs < 2:
        raise ValueError(f"past_cutoffs must be a whole number of earlier cutoffs >= 2 (or None); got {past_cutoffs!r}")
    return past_cutoffs


# ----------------------------------------------------------------------------------------------------------
# The computation
# ----------------------------------------------------------------------------------------------------------
def compute(settings: Settings, transactions: Any = None, rfm: pd.DataFrame | None = None) -> Results:
    """Run the public API once for the report (see the module docstring)."""
    if transactions is None:
        assert rfm is not None  # ForecastReport requires transactions or rfm
        return _compute_from_table(settings, rfm)
    import clvforecast as cf

    tx = cf.read_transactions(transactions, **settings.read_options)
    tidy: dict[str, Any] = {} if "amount" in tx.columns else {"amount": None}
    obs = settings.observation_end or tx["date"].max().date().isoformat()
    table = cf.rfm_summary(tx, observation_end=obs, time_unit=settings.time_unit, **tidy)
    for key in ("dropped", "n_rows_read", "ledger"):
        if key in tx.attrs and key not in table.attrs:
            table.attrs[key] = tx.attrs[key]
    chosen, mc, ev, cal = settings.model, None, None, None
    notes: list[str] = []
    if settings.calibration_end is not None:
        cal = cf.calibration_holdout(tx, calibration_end=settings.calibration_end, observation_end=obs,
                                     time_unit=settings.time_unit, **tidy)
        mc, chosen = _choose_model(settings, tx, obs, tidy)
        ev, notes = _validate(settings, chosen, cal, tx, tidy)
    res = _forecast(settings, table, obs, chosen, ev)
    res.transactions, res.evaluation, res.model_comparison, res.calibration = tx, ev, mc, cal
    res.notes = notes + res.notes
    if res.has_spend:
        _compare_with_history(settings, res)
    return res


def _compute_from_table(settings: Settings, rfm: pd.DataFrame) -> Results:
    """The report from an RFM table (forecast only) or a calibration table (forecast from its calibration
    end, and validation on its holdout)."""
    unit = rfm.attrs.get("time_unit")
    if unit is not None and unit != settings.time_unit:
        raise ValueError(f"the RFM table is in unit {unit!r} but time_unit={settings.time_unit!r}")
    obs = rfm.attrs.get("calibration_end") or rfm.attrs.get("observation_end")
    chosen, mc, ev = settings.model, None, None
    notes: list[str] = []
    if "holdout_frequency" in rfm.columns:
        if chosen == "auto":
            mc, chosen = _choose_model(settings, rfm, None, {})
        ev, notes = _validate(settings, chosen, rfm, None, {})
    res = _forecast(settings, rfm, None if obs is None else str(obs), chosen, ev)
    res.evaluation, res.model_comparison = ev, mc
    res.calibration = rfm if ev is not None else None
    res.notes = notes + res.notes
    return res


def _choose_model(settings: Settings, source: Any, obs: str | None, tidy: dict[str, Any]
                  ) -> tuple[pd.DataFrame | None, str]:
    """``(comparison table, chosen model)``: the models compared on the holdout with ``compare_models`` when
    the report was asked to choose (``model="auto"``), else ``(None, the model asked for)``."""
    if settings.model != "auto":
        return None, settings.model
    import clvforecast as cf

    compare_models = getattr(cf, "compare_models", None)
    if compare_models is None:  # INTERIM: until the model-integration branch lands on main
        return None, "bgnbd"
    dates = {} if obs is None else {"calibration_end": settings.calibration_end, "observation_end": obs}
    mc = compare_models(source, **dates, time_unit=settings.time_unit, models=REPORT_MODELS, **tidy)
    chosen = str(mc.attrs.get("chosen") or mc.index[0])
    return mc, chosen


def _validate(settings: Settings, chosen: str, cal: pd.DataFrame, tx: pd.DataFrame | None, tidy: dict[str, Any]
              ) -> tuple[Any, list[str]]:
    """The holdout evaluation of the chosen model, with the coverage of its ranges and, from a log, the
    backtest at earlier cutoffs behind the calibrated ranges; and notes on what could not be done."""
    import clvforecast as cf

    kw: dict[str, Any] = dict(model=chosen, interval=settings.interval, random_state=settings.random_state,
                              progress=False)
    if tx is not None:
        kw |= dict(table=cal, **tidy)
    notes: list[str] = []
    if settings.interval is not None and tx is not None and settings.past_cutoffs:
        try:
            return cf.evaluate_holdout(tx, past_cutoffs=settings.past_cutoffs, **kw), notes
        except (ValueError, DataValidationError) as exc:
            notes.append(f"No backtest-calibrated range: the model could not be backtested at "
                         f"{settings.past_cutoffs} earlier cutoffs ({str(exc).split(';')[0]}).")
    elif settings.interval is not None and tx is None:
        notes.append("No backtest-calibrated range: it needs the transaction log (the model is refitted at "
                     "earlier cutoffs), and the report was given a table.")
    return cf.evaluate_holdout(tx if tx is not None else cal, **kw), notes


def _forecast(settings: Settings, table: pd.DataFrame, observation_end: str | None, chosen: str, ev: Any
              ) -> Results:
    """Fit the purchase (and, with amounts, spend) models on ``table`` and forecast every customer over the
    horizon, with ranges when asked."""
    import clvforecast as cf

    pm = cf.models.purchase_model(chosen).fit(table, time_unit=settings.time_unit)
    gg = cf.GammaGamma().fit(table, time_unit=settings.time_unit) if "monetary_value" in table.columns else None
    # predictive_clv's forecast, kept: the totals' ranges below reuse its count distributions and draws
    fc = cf.clv._forecast(
        pm, gg, table, horizon=settings.horizon_units, discount_rate=settings.discount_rate,
        margin=settings.margin, step="M", interval=settings.interval, n_draws=20,
        random_state=settings.random_state, progress=False, what="predictive_clv",
    )
    clv = cf.clv._clv_frame(fc)
    res = Results(rfm=table, clv=clv, purchase_model=pm, spend_model=gg, observation_end=observation_end)
    if gg is not None:
        res.silent = cf.silent_customers(clv, table)
    if settings.interval is not None:
        res.totals = _totals(settings, res, _past_errors(ev), fc)
    return res


def _past_errors(ev: Any) -> pd.DataFrame | None:
    """The model's errors on the holdout totals: at the earlier cutoffs of the backtest and on the holdout
    itself (the latest), as ``forecast_totals(past_errors=...)`` reads them; None without a backtest."""
    totals = getattr(ev, "totals", None)
    past = None if totals is None else totals.attrs.get("past_totals")
    if not past or totals is None:
        return None
    rows = [{"cutoff": r["cutoff"], "target": r["target"], "predicted": r["predicted"], "actual": r["actual"]}
            for r in past]
    rows += [{"cutoff": ev.calibration_end, "target": t, "predicted": float(totals.loc[t, "expected"]),
              "actual": float(totals.loc[t, "actual"])} for t in totals.index]
    return pd.DataFrame(rows)


def _totals(settings: Settings, res: Results, past_errors: pd.DataFrame | None, fc: Any) -> pd.DataFrame:
    """The base's totals with their ranges: model-only from the forecast itself, and backtest-calibrated (as
    ``forecast_totals`` computes them, from the same forecast ``fc``) when the model's past errors are known."""
    import clvforecast as cf

    if past_errors is not None and settings.interval is not None:
        try:
            return cf.clv._totals_with_errors(fc, res.clv, past_errors, settings.random_state)
        except ValueError as exc:
            res.notes.append(f"No backtest-calibrated range: {str(exc).split(';')[0]}.")
    attrs = res.clv.attrs
    out = pd.DataFrame.from_dict(attrs["totals"], orient="index")[["expected", "lower", "upper"]]
    out.index.name = "quantity"
    out.attrs = {"level": attrs["interval"]["level"], "includes": list(attrs["interval"]["includes"]),
                 "n_customers": len(res.clv), "model": attrs.get("model")}
    return out


def _compare_with_history(settings: Settings, res: Results) -> None:
    """The historical formula and run rate over the same horizon, compared with the undiscounted CLV."""
    import clvforecast as cf

    assert res.transactions is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cf.DataQualityWarning)  # said once, when the log was read
        hist = cf.historical_forecast(
            res.transactions, calibration_end=res.observation_end, horizon=settings.horizon_units,
            time_unit=settings.time_unit,
        )
    clv = res.clv
    # Undiscounted, a customer's CLV is margin x expected spend x expected purchases over the horizon: derived
    # from the forecast, not computed again (the historical variants are undiscounted too).
    undiscounted = clv.assign(clv=settings.margin * clv["expected_spend"] * clv["expected_purchases"])
    undiscounted.attrs = {**clv.attrs, "discount_rate": 0.0, "discount_rate_per_step": 0.0}
    res.historical = hist
    res.comparison = cf.compare_clv(undiscounted, hist, rfm=res.rfm, margin=settings.margin)
