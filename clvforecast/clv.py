"""Predictive customer lifetime value from a fitted BG/NBD and Gamma-Gamma model.

For each customer, over a horizon cut into steps ``t_1 < ... < t_K = horizon`` (in the model's time unit):

    CLV = sum_k  margin * E[spend] * (E[X(t_k)] - E[X(t_{k-1})]) / (1 + d) ** k

where ``E[X(t)]`` is the BG/NBD conditional expected number of purchases in ``(T, T + t]``, ``E[spend]`` the
Gamma-Gamma expected mean spend per transaction, and ``d`` the annual ``discount_rate`` converted to the step
(``(1 + annual) ** (step_days / 365.25) - 1``, :func:`clvforecast.units.periodic_rate`). Cash flows of step k
are discounted at its end, as in lifetimes' ``customer_lifetime_value``.

Units are explicit: ``horizon`` and ``step`` are strings such as ``"12M"``, ``"52W"`` (or numbers in the
model's time unit), converted with the day counts of :mod:`clvforecast.units` (a month is 365.25/12 days).
lifetimes instead hard-codes 30-day months for daily data (4.345 weeks for weekly data), so its "12 months"
are 360 days.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ._checks import check_discount_rate, check_margin
from .exceptions import DataValidationError
from .models._base import as_duration, check_same_unit, unique_rows, validate_rfm
from .models.beta_geo import BetaGeo, _expected_if_alive, probability_alive
from .models.gamma_gamma import GammaGamma
from .units import DAYS_PER_UNIT, days_per, periodic_rate

_MAX_CELLS = 2_000_000  # histories x steps evaluated at once


def _step_length(step: Any, unit: str) -> float:
    """Length of one step in ``unit``; ``step`` is a unit code ("M"), a duration ("2W") or a number."""
    if isinstance(step, str) and step.strip().upper() in DAYS_PER_UNIT:
        step = "1" + step.strip().upper()
    length = as_duration(step, unit, name="step")
    if length <= 0:
        raise ValueError(f"step must be a positive duration such as 'M', '1W' or '30D'; got {step!r}")
    return length


def predictive_clv(
    bg: BetaGeo,
    gg: GammaGamma,
    rfm: pd.DataFrame,
    *,
    horizon: float | str,
    discount_rate: float = 0.0,
    margin: float = 1.0,
    step: float | str = "M",
) -> pd.DataFrame:
    """Discounted expected value of each customer's purchases over ``horizon``.

    Parameters
    ----------
    bg, gg:
        Fitted :class:`~clvforecast.BetaGeo` and :class:`~clvforecast.GammaGamma` models.
    rfm:
        RFM table (``frequency``, ``recency``, ``T``, ``monetary_value``) in the BG/NBD model's time unit.
    horizon:
        Length of the forecast, e.g. ``"12M"``, ``"52W"``, ``"365D"``, or a number in the model's time unit.
    discount_rate:
        Annual discount rate, a fraction in [0, 1) (0.1 for 10% a year; 1 or more is refused), converted to
        the step by compounding.
    margin:
        Profit margin applied to spend, a fraction in [0, 1] (1.0 gives revenue; above 1 is refused).
    step:
        Cash-flow period: a unit code (``"D"``, ``"W"``, ``"M"``, ``"Y"``), a duration (``"2W"``, ``"30D"``)
        or a number in the model's time unit. When the horizon is not a whole number of steps, the last step
        is shorter.

    Returns
    -------
    DataFrame indexed by customer_id: ``expected_purchases`` (over the whole horizon, undiscounted),
    ``probability_alive`` (at T), ``expected_spend`` (per transaction, currency), ``clv`` (currency,
    discounted, times margin) and ``clv_if_alive`` (the same value for a customer known to be alive at T: the
    value if retained; ``clv = probability_alive * clv_if_alive`` since an inactive customer buys nothing).
    ``attrs`` record the horizon and step (in ``time_unit``), the number of steps, the annual and per-step
    discount rates and the margin.
    """
    bg._check_fitted()
    gg._check_fitted()
    if not isinstance(bg, BetaGeo) or not isinstance(gg, GammaGamma):
        raise TypeError("predictive_clv(bg, gg, rfm, ...) needs a fitted BetaGeo and a fitted GammaGamma")
    unit = bg.time_unit_
    H = as_duration(horizon, unit, name="horizon")
    step_len = _step_length(step, unit)
    margin = check_margin(margin)
    discount_rate = check_discount_rate(discount_rate)
    step_rate = (1.0 + periodic_rate(discount_rate, "D")) ** (step_len * days_per(unit)) - 1.0

    data = validate_rfm(rfm, ("frequency", "recency", "T", "monetary_value"), what="predictive_clv")
    check_same_unit(rfm, unit, "predictive_clv")
    spend = gg.expected_spend(data).to_numpy()

    n_steps = max(math.ceil(H / step_len - 1e-9), 0)
    edges = np.minimum(np.arange(1, n_steps + 1) * step_len, H)
    discount = (1.0 + step_rate) ** -np.arange(1, n_steps + 1, dtype="float64")

    codes, (x, tx, T), _ = unique_rows(*(data[c].to_numpy() for c in ("frequency", "recency", "T")))
    params = bg._param_values()
    p_alive = probability_alive(params, x, tx, T)
    total = np.zeros(len(x))
    discounted = np.zeros(len(x))
    if n_steps:
        chunk = max(1, _MAX_CELLS // n_steps)
        for lo in range(0, len(x), chunk):
            sl = slice(lo, lo + chunk)
            # E[purchases in (T, T + t_k] | alive] at every step edge; cumulative, so never decreasing
            cum = _expected_if_alive(params, edges[None, :], x[sl, None], T[sl, None])
            cum = np.maximum.accumulate(cum, axis=1)  # guard against rounding
            per_step = np.diff(cum, axis=1, prepend=0.0)
            total[sl] = cum[:, -1]
            discounted[sl] = per_step @ discount
    expected = p_alive * total
    clv_if_alive = margin * spend * discounted[codes]
    clv = p_alive[codes] * clv_if_alive
    if not np.all(np.isfinite(clv)):
        bad = ~np.isfinite(clv)
        raise DataValidationError(  # pragma: no cover - the formulas are finite for every valid history
            f"predictive_clv: {int(bad.sum())} customers got a non-finite CLV, e.g. "
            f"{list(data.index[bad][:3])}"
        )
    out = pd.DataFrame(
        {
            "expected_purchases": expected[codes],
            "probability_alive": p_alive[codes],
            "expected_spend": spend,
            "clv": clv,
            "clv_if_alive": clv_if_alive,
        },
        index=data.index,
    )
    out.attrs = {
        "time_unit": unit,
        "horizon": H,
        "step": step_len,
        "n_steps": n_steps,
        "discount_rate": float(discount_rate),
        "discount_rate_per_step": step_rate,
        "margin": float(margin),
    }
    return out
