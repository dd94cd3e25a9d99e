"""The Gamma-Gamma model of spend per transaction.

Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value".

A customer's transaction values are Gamma(p, nu) with ``nu ~ Gamma(q, v)`` across customers, so her mean spend
is ``p / nu`` and the population mean is ``p v / (q - 1)`` (finite when ``q > 1``). ``v`` is in currency
units, ``p`` and ``q`` have none. The model assumes that spend per transaction is independent of the number of
transactions; it is fitted on repeat buyers only (``frequency > 0``), using ``monetary_value`` = mean spend
per repeat transaction.

Estimation is clvforecast's engine (:mod:`._engine`): the log-density of the *average* spend (as published)
and its analytic gradient, the gamma functions of the frequency computed once per distinct frequency.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from ..exceptions import DataQualityWarning, DataValidationError, ModelAssumptionWarning
from ._base import (
    FittedModel,
    HistoryData,
    _examples,
    _gather,
    dot,
    fit_time_unit,
    table_weights,
    validate_rfm,
)

PARAM_NAMES = ("p", "q", "v")
_COLUMNS = ("frequency", "monetary_value")

#: |Pearson correlation| between frequency and monetary_value among repeat buyers above which ``fit`` warns
#: that the independence assumption is questionable. 0.3 is where a correlation stops being "weak" by the
#: usual rule of thumb; Fader & Hardie report 0.11 on CDNOW and treat that as negligible.
CORRELATION_THRESHOLD = 0.3


def log_likelihood(params: Any, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Individual log-densities of the average spend ``m`` (= zbar) of ``x`` repeat transactions, x > 0.

    ``f(zbar | p, q, v, x) = G(px+q) / (G(px) G(q)) * v^q zbar^(px-1) x^(px) / (v + x zbar)^(px+q)``
    (Fader & Hardie 2013, eq. 3): -4055.92 in total on CDNOW's 946 repeat buyers.
    """
    p, q, v = params
    px = p * x
    return (
        special.gammaln(px + q) - special.gammaln(px) - special.gammaln(q) + q * math.log(v)
        + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * np.log(v + x * m)
    )


def expected_spend(params: Any, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """E[mean spend | x, zbar] = (q-1)/(px+q-1) * pv/(q-1) + px/(px+q-1) * zbar (eq. 5).

    For x = 0 this is the population mean ``p v / (q - 1)``.
    """
    p, q, v = params
    px = p * x
    w = px / (px + q - 1)  # weight of the customer's own mean; 0 for x = 0
    return (1 - w) * (p * v / (q - 1)) + w * np.where(x > 0, m, 0.0)


def _ll_rows(theta: np.ndarray, data: HistoryData, grad: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`log_likelihood` per row of ``data`` (columns ``x``, ``m``) and its analytic gradient."""
    p, q, v = (float(t) for t in theta)
    x, m = data["x"], data["m"]
    xl, xc = data.levels("x")
    pxl = p * xl
    log_vxm = np.log(v + x * m)
    log_m = np.log(m)
    log_x = _gather(np.log, data, "x")
    px = p * x
    ll = ((special.gammaln(pxl + q) - special.gammaln(pxl))[xc] - special.gammaln(q) + q * math.log(v)
          + (px - 1) * log_m + px * log_x - (px + q) * log_vxm)
    if not grad:
        return ll, None
    psi_pxq = special.digamma(pxl + q)[xc]
    G = np.empty((len(x), 3))
    G[:, 0] = x * (psi_pxq - special.digamma(pxl)[xc] + log_m + log_x - log_vxm)
    G[:, 1] = psi_pxq - special.digamma(q) + math.log(v) - log_vxm
    G[:, 2] = q / v - (px + q) / (v + x * m)
    return ll, G


class GammaGamma(FittedModel):
    """Gamma-Gamma model of the mean spend per transaction (Fader & Hardie 2013).

    Parameters
    ----------
    penalizer:
        L2 penalty ``penalizer * sum(params ** 2)`` added to the mean negative log-likelihood. 0 gives the
        maximum-likelihood estimates.

    Attributes (after ``fit``)
    --------------------------
    params_ : Series ``p``, ``q``, ``v`` (``v`` in currency units).
    log_likelihood_ : total log-density of the average spends (the published form; -4055.92 on CDNOW).
    diagnostics_, summary, log_covariance_, variance_matrix_, sample_params : as for the purchase models
        (:class:`~clvforecast.models._base.FittedModel`).
    n_customers_ : number of repeat buyers the model was fitted on (customers with ``frequency > 0``, weights
        included); ``fit_info_["n_excluded_no_repeat"]`` counts the others.
    time_unit_ : carried from the table for consistency (spend has no time dimension).
    fit_info_ : also holds ``spend_frequency_correlation`` (Pearson, repeat buyers).

    Warns :class:`~clvforecast.exceptions.ModelAssumptionWarning` when that correlation exceeds
    :data:`CORRELATION_THRESHOLD` in absolute value, when ``q <= 1`` (infinite population mean spend), or when
    the data do not identify a parameter (e.g. spend almost constant within customers: ``p`` runs off).
    """

    PARAM_NAMES = PARAM_NAMES
    NAME = "gamma_gamma"
    LABEL = "Gamma-Gamma"
    LIFETIMES_FITTER = "GammaGammaFitter"

    @classmethod
    def _ll_rows(cls, theta: np.ndarray, data: HistoryData, grad: bool) -> tuple[np.ndarray, np.ndarray | None]:
        return _ll_rows(theta, data, grad)

    @classmethod
    def _ll_sum(cls, theta: np.ndarray, data: HistoryData, w: np.ndarray) -> tuple[float, np.ndarray]:
        """Weighted total log-likelihood and gradient: the terms that do not involve ``v`` are sums computed
        once per table; per row only ``log(v + x m)`` and ``1 / (v + x m)`` remain."""
        p, q, v = (float(t) for t in theta)
        xl, xc = data.levels("x")
        key = ("gg", id(w), w.size, float(w.sum()))
        if key not in data.cache:
            x, m = data["x"], data["m"]
            log_m = np.log(m)
            wx = np.bincount(xc, weights=w, minlength=len(xl))
            data.cache.clear()
            data.cache[key] = (wx, w * x, dot(w, x * log_m), dot(w, log_m),
                               float(wx @ (xl * np.log(xl))), float(w.sum()), x * m)
        wx, wxx, s_xlogm, s_logm, s_xlogx, W, xm = data.cache[key]
        log_vxm = np.log(v + xm)
        inv = 1.0 / (v + xm)
        a_xlog, a_log = dot(wxx, log_vxm), dot(w, log_vxm)
        a_xinv, a_inv = dot(wxx, inv), dot(w, inv)
        pxl = p * xl
        g_pq, g_p = special.gammaln(pxl + q), special.gammaln(pxl)
        total = (float(wx @ (g_pq - g_p)) - W * special.gammaln(q) + W * q * math.log(v)
                 + p * s_xlogm - s_logm + p * s_xlogx - p * a_xlog - q * a_log)
        psi_pq = special.digamma(pxl + q)
        g = np.array([
            float(wx @ (xl * (psi_pq - special.digamma(pxl)))) + s_xlogm + s_xlogx - a_xlog,
            float(wx @ psi_pq) - W * special.digamma(q) + W * math.log(v) - a_log,
            W * q / v - p * a_xinv - q * a_inv,
        ])
        return total, g

    @classmethod
    def _starts(cls, data: HistoryData, w: np.ndarray) -> list[np.ndarray]:
        mean_m = max(float(w @ data["m"]) / float(w.sum()), 1e-9)
        # p = 2, q = 3 with v making the population mean p v / (q - 1) equal the observed mean spend, then others
        return [np.array([2.0, 3.0, mean_m]), np.array([1.0, 2.0, mean_m]), np.array([5.0, 5.0, 4 * mean_m]),
                np.array([1.0, 1.0, 1.0])]

    def _messages(self, theta: np.ndarray, unidentified: list[str]) -> list[str]:
        if "p" in unidentified and theta[0] > 100:
            return ["spend per transaction hardly varies around each customer's own mean (p runs off to "
                    "infinity), so the data do not identify p; the expected spends are still usable but the "
                    "parameters' intervals are not: check for spend that is a function of the number of purchases"]
        if ("q" in unidentified or "v" in unidentified) and theta[1] > 1e3:
            return ["customers' average spends differ no more than the purchase-to-purchase noise explains (q and v "
                    "run off to infinity together), so the data do not identify q and v: the spend model gives "
                    "every customer the same expected spend per purchase, about the average of all purchases"]
        return []

    @staticmethod
    def _posterior(theta: Any, x: Any, m: Any) -> tuple[np.ndarray, np.ndarray]:
        """Posterior of the customer's ``nu`` given ``x`` repeat transactions of mean value ``m``:
        ``Gamma(shape = q + p x, rate = v + x m)`` (her mean spend is ``p / nu``; for x = 0 the prior)."""
        p, q, v = (float(t) for t in theta)
        x = np.asarray(x, dtype="float64")
        m = np.where(x > 0, np.asarray(m, dtype="float64"), 0.0)
        return q + p * x, v + x * m

    def fit(self, rfm: pd.DataFrame, *, time_unit: str | None = None, weights: Any = None) -> GammaGamma:
        """Estimate ``p, q, v`` from the repeat buyers of an RFM table (``frequency``, ``monetary_value``).

        ``weights``: customers per row (array or column name), for aggregated tables.
        """
        pen = self._check_penalizer()
        data = validate_rfm(rfm, _COLUMNS, what="GammaGamma.fit")
        _check_spend(data, "GammaGamma.fit")
        w_all = table_weights(rfm, weights, len(data), "GammaGamma.fit")
        w_all = np.ones(len(data)) if w_all is None else w_all
        repeat_mask = (data["frequency"].to_numpy() > 0) & (w_all > 0)
        repeat = data[repeat_mask]
        w = w_all[repeat_mask]
        free = repeat["monetary_value"].to_numpy() == 0
        if free.any():
            warnings.warn(
                f"GammaGamma: {int(free.sum()):,} of the {len(repeat):,} repeat buyers spent nothing on "
                f"their repeat purchases (monetary_value 0, e.g. {_examples(repeat.index, free, k=1)}); the "
                "model needs positive spend, so they are left out of the fit, and expected_spend gives them "
                "the model's conditional mean at zero observed spend",
                DataQualityWarning,
                stacklevel=2,
            )
            repeat = repeat[~free]
            w = w[~free]
        n_repeat = len(repeat)
        if n_repeat < 2:
            raise DataValidationError(
                f"GammaGamma.fit: {n_repeat} of the {len(data)} customers "
                f"ha{'s' if n_repeat == 1 else 've'} a repeat purchase (frequency > 0) with positive spend; "
                "the spend model is fitted on those and needs many of them (hundreds or more): use a longer "
                "calibration period or more customers"
            )
        x, m = repeat["frequency"].to_numpy(), repeat["monetary_value"].to_numpy()
        corr = _correlation(x, m)
        if corr is not None and abs(corr) > CORRELATION_THRESHOLD:
            warnings.warn(
                f"GammaGamma: among the {n_repeat} repeat buyers, frequency and monetary_value have "
                f"Pearson correlation {corr:.2f} (|r| > {CORRELATION_THRESHOLD}); the model assumes spend "
                "per transaction is independent of the number of transactions, so expected spends may be "
                "biased. Consider segmenting customers or a model with dependence.",
                ModelAssumptionWarning,
                stacklevel=2,
            )
        self.penalizer_ = pen
        # Spend per transaction does not depend on time: the unit is only recorded (no warning without one).
        self.time_unit_ = fit_time_unit(rfm, time_unit, "GammaGamma.fit", warn=False)
        self.n_customers_ = int(round(float(w.sum())))
        self.fit_info_ = {
            "n_customers": self.n_customers_,
            "n_excluded_no_repeat": int(round(float(w_all[data["frequency"].to_numpy() == 0].sum()))),
            "n_excluded_zero_spend": int(free.sum()),
            "n_rows_fitted": n_repeat,
            "spend_frequency_correlation": corr,
            "correlation_threshold": CORRELATION_THRESHOLD,
            "engine": "clvforecast (closed-form log-likelihood, analytic gradient, L-BFGS-B + Newton)",
        }
        self._estimate(HistoryData(x=x, m=m), np.asarray(w, dtype="float64"), what="GammaGamma.fit")
        params = self.theta_
        if params[1] <= 1:
            warnings.warn(
                f"GammaGamma: q = {params[1]:.3f} <= 1, so the population mean spend p v / (q - 1) is "
                "infinite and expected_spend cannot be computed; the spend distribution is too "
                "heavy-tailed for this model (look for outliers in monetary_value)",
                ModelAssumptionWarning,
                stacklevel=2,
            )
        return self

    def _lifetimes_data(self, data: pd.DataFrame) -> tuple[HistoryData, np.ndarray] | None:
        if not {"frequency", "monetary_value"} <= set(data.columns):
            return None
        x = np.asarray(data["frequency"], dtype="float64")
        m = np.asarray(data["monetary_value"], dtype="float64")
        w = np.asarray(data["weights"], dtype="float64") if "weights" in data.columns else np.ones(len(x))
        keep = (x > 0) & (m > 0)
        return HistoryData(x=x[keep], m=m[keep]), w[keep]

    @property
    def population_mean_spend(self) -> float:
        """E(Z) = p v / (q - 1): mean spend per transaction in the population (currency)."""
        p, q, v = self._param_values()
        return p * v / (q - 1) if q > 1 else math.inf

    def expected_spend(self, rfm: pd.DataFrame) -> pd.Series:
        """Expected mean spend per transaction of each customer (currency), a Series indexed by customer_id.

        A weighted average of the population mean and the customer's observed ``monetary_value``, the weight
        of the latter growing with ``frequency``; customers with ``frequency == 0`` get the population mean.
        Repeat buyers whose repeat purchases were free (``monetary_value == 0``; left out of the fit) get the
        same formula at zero observed spend, ``(q - 1) / (p x + q - 1) * E(Z)``.
        """
        params = self._param_values()
        if params[1] <= 1:
            raise DataValidationError(
                f"GammaGamma.expected_spend: the fitted q = {params[1]:.3f} <= 1 implies an infinite mean "
                "spend; refit on data without extreme monetary values (or with a penalizer)"
            )
        data = validate_rfm(rfm, _COLUMNS, what="GammaGamma.expected_spend")
        _check_spend(data, "GammaGamma.expected_spend")
        x, m = data["frequency"].to_numpy(), data["monetary_value"].to_numpy()
        return pd.Series(expected_spend(params, x, np.where(x > 0, m, 0.0)), index=data.index,
                         name="expected_spend")


def _check_spend(data: pd.DataFrame, what: str) -> None:
    """Refuse negative mean spend of repeat buyers (net returns): the model has no meaning for it."""
    x, m = data["frequency"].to_numpy(), data["monetary_value"].to_numpy()
    bad = (x > 0) & (m < 0)
    if bad.any():
        raise DataValidationError(
            f"{what}: {int(bad.sum())} repeat buyers have a negative monetary_value, e.g. "
            f"{_examples(data.index, bad, {'frequency': x, 'monetary_value': m})}; spend per transaction "
            "must be positive: net returns against their purchases or read the transactions with "
            "negative_amounts='drop'"
        )


def _correlation(x: np.ndarray, m: np.ndarray) -> float | None:
    """Pearson correlation, or None when undefined (fewer than 3 rows or a constant column)."""
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(m) == 0:
        return None
    return float(np.corrcoef(x, m)[0, 1])
