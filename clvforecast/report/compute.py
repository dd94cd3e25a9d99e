"""The report's computation, done once: read the log, fit the models, forecast, validate, compare.

:func:`compute` runs the public API and returns :class:`Results`, the pandas objects and fitted models every
later layer reads (the summary's numbers, the figures' data). Nothing here formats or draws.

With ``calibration_end`` the report *validates* (fit on the data up to ``calibration_end``, score the holdout
to ``observation_end``) and *forecasts* (fit again on all data up to ``observation_end`` and forecast the
``horizon`` after it). Without it, it only forecasts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..units import UNIT_NAMES


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
    read_options: dict[str, Any] = field(default_factory=dict)

    @property
    def unit_name(self) -> str:
        """The time unit in words: ``"weeks"``."""
        return UNIT_NAMES[self.time_unit]


@dataclass
class Results:
    """Everything the report computed, as the public API returns it.

    ``rfm`` is the table the forecast was made from, ``clv`` the :func:`~clvforecast.predictive_clv` table
    (discounted), ``comparison`` the :func:`~clvforecast.compare_clv` of the *undiscounted* CLV with the
    historical variants (like for like), ``silent`` the :func:`~clvforecast.silent_customers` table.

    Slots the later phases fill (the summary shows a section or a range as soon as one is set):
    ``model_comparison`` (a DataFrame indexed by model with ``n_params``, ``log_likelihood``, ``aic``,
    ``bic`` and holdout metrics; ``attrs["chosen"]`` names the model used) and ``totals`` (the base's totals
    with intervals: ``{"level": 0.9, "includes": str, "clv"|"revenue"|"purchases": {"value", "lower",
    "upper"}}``).
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
    totals: dict[str, Any] | None = None


def compute(settings: Settings, transactions: Any = None, rfm: pd.DataFrame | None = None) -> Results:
    """Run the public API once for the report (see the module docstring)."""
    import clvforecast as cf

    if transactions is not None:
        tx = cf.read_transactions(transactions, **settings.read_options)
        obs = settings.observation_end or tx["date"].max().date().isoformat()
        table = cf.rfm_summary(tx, observation_end=obs, time_unit=settings.time_unit)
        for key in ("dropped", "n_rows_read", "ledger"):
            if key in tx.attrs and key not in table.attrs:
                table.attrs[key] = tx.attrs[key]
        evaluation = None
        if settings.calibration_end is not None:
            evaluation = cf.evaluate_holdout(
                tx, calibration_end=settings.calibration_end, observation_end=obs, time_unit=settings.time_unit
            )
        res = _forecast(settings, table, pd.Timestamp(obs).date().isoformat())
        res.transactions, res.evaluation = tx, evaluation
        _compare_with_history(settings, res)
        return res
    assert rfm is not None  # ForecastReport requires transactions or rfm
    unit = rfm.attrs.get("time_unit")
    if unit is not None and unit != settings.time_unit:
        raise ValueError(f"the RFM table is in unit {unit!r} but time_unit={settings.time_unit!r}")
    obs = rfm.attrs.get("calibration_end") or rfm.attrs.get("observation_end")
    res = _forecast(settings, rfm, None if obs is None else str(obs))
    if "holdout_frequency" in rfm.columns:
        res.evaluation = cf.evaluate_holdout(table=rfm, time_unit=settings.time_unit, tracking=False)
    return res


def _forecast(settings: Settings, table: pd.DataFrame, observation_end: str | None) -> Results:
    """Fit the purchase and spend models on ``table`` and forecast every customer over the horizon."""
    import clvforecast as cf

    bg = cf.BetaGeo().fit(table, time_unit=settings.time_unit)
    gg = cf.GammaGamma().fit(table, time_unit=settings.time_unit)
    clv = cf.predictive_clv(
        bg, gg, table, horizon=settings.horizon_units, discount_rate=settings.discount_rate,
        margin=settings.margin,
    )
    silent = cf.silent_customers(clv, table)
    return Results(rfm=table, clv=clv, purchase_model=bg, spend_model=gg, observation_end=observation_end,
                   silent=silent)


def _compare_with_history(settings: Settings, res: Results) -> None:
    """The historical formula and run rate over the same horizon, compared with the undiscounted CLV."""
    import clvforecast as cf

    assert res.transactions is not None
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
