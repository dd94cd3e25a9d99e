"""The BG/NBD purchase model (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way").

While alive, a customer buys as a Poisson process with rate ``lambda ~ Gamma(r, alpha)`` (per unit of time);
after each purchase she becomes inactive with probability ``p ~ Beta(a, b)``. A customer's history is
``(x, t_x, T)`` = (``frequency``, ``recency``, ``T``) of the RFM table, in the table's time unit; ``alpha`` is
in that unit too (``r/alpha`` is the mean purchase rate per unit of time), ``r``, ``a``, ``b`` have no unit.

Estimation is done by lifetimes' ``BetaGeoFitter`` on the distinct ``(x, t_x, T)`` rows weighted by their
counts (the same maximum as an unweighted fit, at a cost that grows with the number of distinct histories).
The log-likelihood, the covariance matrix and all predictions are computed here in closed form, in log space
where it matters, so that they stay finite and accurate for any valid history (``frequency`` in the thousands,
``recency == T``, long horizons) and any parameters: lifetimes' eq. (10) returns NaN where scipy's 2F1 fails
(large frequency and horizon, e.g. r=2, alpha=1, a=b=30, x=5000, t=1000) and inf at a = 1.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import integrate, special, stats

from ..exceptions import DataValidationError
from ._base import (
    FittedModel,
    as_duration,
    check_same_unit,
    covariance_from_engine,
    fit_time_unit,
    fit_with_retries,
    import_lifetimes,
    subsample_start,
    unique_rows,
    validate_rfm,
)

PARAM_NAMES = ("r", "alpha", "a", "b")
_COLUMNS = ("frequency", "recency", "T")

# Starting points (log-parameters on lifetimes' time axis, where T is rescaled to max(T) = 1): lifetimes'
# default first, then a few spread-out alternatives.
_STARTS: tuple[dict[str, Any], ...] = (
    {},
    {"initial_params": np.zeros(4)},
    {"initial_params": np.log([0.5, 0.1, 1.0, 3.0])},
    {"initial_params": np.log([2.0, 1.0, 0.5, 0.5])},
)


# ----------------------------------------------------------------------------------------------------------
# closed forms (vectorised; x, tx, T arrays in the model's time unit, params = (r, alpha, a, b))


def log_likelihood(params: Any, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Individual log-likelihoods, Fader, Hardie & Lee (2005) eq. (6), in the table's time unit.

    ``L = B(a, b+x)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+T)^(r+x))
    + [x > 0] B(a+1, b+x-1)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+t_x)^(r+x))``.
    """
    r, alpha, a, b = params
    common = special.gammaln(r + x) - special.gammaln(r) + r * math.log(alpha) - special.betaln(a, b)
    alive = special.betaln(a, b + x) - (r + x) * np.log(alpha + T)
    dead = np.where(
        x > 0, special.betaln(a + 1, np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + tx), -np.inf
    )
    return common + np.logaddexp(alive, dead)


def _log_odds_dead(params: Any, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
    """log(P(inactive) / P(alive)) given the history; -inf for x = 0 (no repeat purchase: surely alive)."""
    r, alpha, a, b = params
    with np.errstate(divide="ignore"):
        return np.where(
            x > 0,
            np.log(a) - np.log(np.maximum(b + x - 1, 1e-300))
            + (r + x) * (np.log(alpha + T) - np.log(alpha + tx)),
            -np.inf,
        )


def probability_alive(params: Any, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(alive at T | x, t_x, T) = 1 / (1 + [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)).

    Fader & Hardie, note 021 ("Computing P(alive) using the BG/NBD model").
    """
    return special.expit(-_log_odds_dead(params, x, tx, T))


def _hyp2f1(A: float, B: float, c: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Gauss' 2F1(A, B; c; z) for 0 <= z < 1: scipy, with the power series where scipy gives no finite value.

    scipy returns NaN for z close to 1 when c is large (thousands); there the series
    ``sum_k (A)_k (B)_k / ((c)_k k!) z^k`` converges fast because its terms shrink like ``(k z / c)^k``.
    """
    c, z = np.broadcast_arrays(np.asarray(c, dtype="float64"), np.asarray(z, dtype="float64"))
    with np.errstate(all="ignore"):
        out = np.array(special.hyp2f1(A, B, c, z), dtype="float64")
    bad = ~np.isfinite(out)
    if np.any(bad):
        cb, zb = c[bad], z[bad]
        term, total = np.ones_like(cb), np.ones_like(cb)
        active = np.ones(cb.shape, dtype=bool)
        for k in range(_SERIES_MAX_TERMS):
            term = term * ((A + k) * (B + k) / ((cb + k) * (k + 1)) * zb)
            total = total + term
            active = np.abs(term) > 1e-17 * np.abs(total)
            if not active.any():
                break
        total[active] = np.nan  # not converged: left to the quadrature fallback
        out[bad] = total
    return out


_SERIES_MAX_TERMS = 20_000
_A_NEAR_ONE = 3e-5  # |a - 1| below which eq. (10) is interpolated between a = 1 -/+ this (0/0 at a = 1)


def _expected_if_alive(params: Any, t: float | np.ndarray, x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """E[purchases in (T, T+t] | alive at T, x, T): the alive part of eq. (10).

    Eq. (10) has ``(a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)]`` with
    ``z = t/(alpha+T+t)``. The hypergeometric function overflows for large x; Euler's transformation
    ``2F1(A, B; C; z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z)`` turns the bracket into
    ``1 - (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)``, whose parameters do not grow with x (the series then
    converges faster as x grows). The expression is 0/0 at a = 1, so within 3e-5 of it the result is
    interpolated linearly in a (relative error about 1e-8). Rows that are still not finite fall back to a
    one-dimensional integral.
    """
    r, alpha, a, b = params
    if abs(a - 1) < _A_NEAR_ONE:
        lo = _expected_if_alive_closed((r, alpha, 1 - _A_NEAR_ONE, b), t, x, T)
        hi = _expected_if_alive_closed((r, alpha, 1 + _A_NEAR_ONE, b), t, x, T)
        w = (a - (1 - _A_NEAR_ONE)) / (2 * _A_NEAR_ONE)
        return (1 - w) * lo + w * hi
    return _expected_if_alive_closed(params, t, x, T)


def _expected_if_alive_closed(params: Any, t: float | np.ndarray, x: np.ndarray, T: np.ndarray) -> np.ndarray:
    r, alpha, a, b = params
    c = a + b - 1 + x
    z = t / (alpha + T + t)
    log1mz = -np.log1p(t / (alpha + T))  # log(1 - z), exact for small z
    F = _hyp2f1(a + b - 1 - r, a - 1, c, z)
    with np.errstate(all="ignore"):
        one_minus_G = -np.expm1((a - 1) * log1mz) - np.exp((a - 1) * log1mz) * (F - 1)
        e = c / (a - 1) * one_minus_G
    bad = ~np.isfinite(e) | (e < 0)
    if np.any(bad):
        e = np.array(e, dtype="float64", copy=True)
        tb, xb, Tb = np.broadcast_arrays(t, x, T)
        e[bad] = [_expected_if_alive_quad(params, ti, xi, Ti)
                  for ti, xi, Ti in zip(tb[bad], xb[bad], Tb[bad], strict=True)]
    return e


def _expected_if_alive_quad(params: Any, t: float, x: float, T: float) -> float:
    """Same as :func:`_expected_if_alive` by quadrature over the posterior of the dropout probability p.

    Given alive at T, lambda | history ~ Gamma(r+x, alpha+T) and p | history ~ Beta(a, b+x); a customer with
    (lambda, p) makes ``(1 - exp(-lambda p t)) / p`` purchases in expectation over the next t, whose mean over
    lambda is ``g(p) = (1 - ((alpha+T)/(alpha+T+p t))^(r+x)) / p``, bounded by ``(r+x) t / (alpha+T)``. Its
    mean over the Beta posterior is integrated in two pieces split at the posterior mean; a singular endpoint
    factor (``p^(a-1)`` with a < 1, ``(1-p)^(b+x-1)`` with b+x < 1) is handled exactly as a QAWS weight.
    """
    r, alpha, a, b = params
    if t == 0:
        return 0.0
    k, bx = alpha + T, b + x
    log_beta = special.betaln(a, bx)
    m = a / (a + bx)

    def g(p: float) -> float:
        if p == 0:
            return (r + x) * t / k
        return -math.expm1(-(r + x) * math.log1p(p * t / k)) / p

    def density(p: float, with_a: bool, with_b: bool) -> float:
        """Parts of the Beta(a, b+x) density; a factor is only requested away from its singular endpoint."""
        log_d = -log_beta
        if with_a:
            log_d += (a - 1) * math.log(p)
        if with_b:
            log_d += (bx - 1) * math.log1p(-p)
        return math.exp(log_d)

    opts: dict[str, Any] = dict(epsabs=0.0, epsrel=1e-11, limit=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        # below the mean: a singular p^(a-1) (a < 1) is a QAWS weight; above: a singular (1-p)^(b+x-1)
        if a < 1:
            below = integrate.quad(lambda p: g(p) * density(p, False, True), 0.0, m, weight="alg",
                                   wvar=(a - 1, 0.0), **opts)[0]
        else:
            below = integrate.quad(lambda p: g(p) * density(p, True, True), 0.0, m, **opts)[0]
        if bx < 1:
            above = integrate.quad(lambda p: g(p) * density(p, True, False), m, 1.0, weight="alg",
                                   wvar=(0.0, bx - 1), **opts)[0]
        else:
            sd = math.sqrt(a * bx / ((a + bx) ** 2 * (a + bx + 1)))
            points = [q for q in (m + 3 * sd, m + 10 * sd, m + 30 * sd) if q < 1]
            above = integrate.quad(lambda p: g(p) * density(p, True, True), m, 1.0, points=points, **opts)[0]
    return float(below + above)


def expected_purchases(params: Any, t: float | np.ndarray, x: np.ndarray, tx: np.ndarray,
                       T: np.ndarray) -> np.ndarray:
    """Conditional expected number of purchases in (T, T+t], eq. (10): P(alive) x E[purchases | alive]."""
    return probability_alive(params, x, tx, T) * _expected_if_alive(params, t, x, T)


def probability_of_purchases(params: Any, t: float, n: int, x: np.ndarray, tx: np.ndarray,
                             T: np.ndarray) -> np.ndarray:
    """P(exactly n purchases in (T, T+t] | x, t_x, T).

    Conditioning on the state at T: an inactive customer makes none; an alive one (posterior
    ``lambda ~ Gamma(r+x, alpha+T)``, ``p ~ Beta(a, b+x)``) starts the BG process afresh, so eq. (8) of the
    paper applies with updated parameters: ``P(n | alive) = B(a, b+x+n)/B(a, b+x) NB(n; r+x, q) + [n > 0]
    B(a+1, b+x+n-1)/B(a, b+x) P(NB(r+x, q) >= n)`` with ``q = (alpha+T)/(alpha+T+t)``; ``P(n) = P(alive) P(n |
    alive) + [n = 0] (1 - P(alive))``. For a new customer (x = t_x = T = 0) this is eq. (8).
    """
    r, alpha, a, b = params
    q = (alpha + T) / (alpha + T + t)
    base = special.betaln(a, b + x)
    nb = stats.nbinom(r + x, q)
    alive_part = np.exp(special.betaln(a, b + x + n) - base + nb.logpmf(n))
    if n > 0:
        alive_part = alive_part + np.exp(special.betaln(a + 1, b + x + n - 1) - base) * nb.sf(n - 1)
    pa = probability_alive(params, x, tx, T)
    out = pa * alive_part
    if n == 0:
        out = out + special.expit(_log_odds_dead(params, x, tx, T))  # 1 - P(alive), without cancellation
    return np.clip(out, 0.0, 1.0)


# ----------------------------------------------------------------------------------------------------------
# estimator


class BetaGeo(FittedModel):
    """BG/NBD model of repeat purchases, estimated with lifetimes' ``BetaGeoFitter``.

    Parameters
    ----------
    penalizer:
        L2 penalty coefficient passed to lifetimes (``penalizer * sum(params ** 2)`` added to the mean
        negative log-likelihood on lifetimes' rescaled time axis). 0 gives the maximum-likelihood estimates.

    Attributes (after ``fit``)
    --------------------------
    params_ : Series ``r``, ``alpha``, ``a``, ``b``; ``alpha`` is in ``time_unit_``.
    variance_matrix_ : DataFrame, asymptotic covariance of the estimates (inverse observed information of the
        unpenalised log-likelihood, original units). lifetimes' own ``variance_matrix_`` has the right
        diagonal but wrong off-diagonal entries (it scales row-wise, ``theta_j^2 H^-1_ij``, so it is not even
        symmetric); ours is ``theta_i theta_j H^-1_ij``.
    summary : DataFrame ``coef``, ``se``, ``lower``, ``upper`` (Wald 95%).
    log_likelihood_ : total log-likelihood in the paper's form (eq. 6) in ``time_unit_`` (-9582.43 on CDNOW in
        weeks). lifetimes' ``_negative_log_likelihood_`` is a mean on a rescaled time axis and not comparable.
    n_customers_, time_unit_ (``attrs["time_unit"]`` of the table, "D" when absent), penalizer_ (the penalizer
    actually used: larger than ``penalizer`` when a retry needed one), fit_info_ (dict: number of distinct
    histories, starting point, warm start, attempts, lifetimes' objective).

    Predictions take an RFM table in the model's time unit: a table whose ``attrs["time_unit"]`` differs is
    refused with a :class:`~clvforecast.exceptions.DataValidationError` (recency and T would be misread; it is
    not converted silently); a table without that attribute is taken to be in the model's unit. Horizons
    ``t`` are numbers in ``time_unit_`` or strings with their own unit (``"52W"``, ``"12M"``), converted.

    Examples
    --------
    >>> bg = BetaGeo().fit(rfm)                      # doctest: +SKIP
    >>> bg.expected_purchases(rfm, "52W")            # doctest: +SKIP
    """

    PARAM_NAMES = PARAM_NAMES

    def fit(self, rfm: pd.DataFrame, *, time_unit: str | None = None) -> BetaGeo:
        """Estimate ``r, alpha, a, b`` from an RFM table (``frequency``, ``recency``, ``T``, one row each).

        ``time_unit`` is the unit of ``recency`` and ``T``; by default the table's ``attrs["time_unit"]`` (set
        by :func:`~clvforecast.rfm_summary`), else days with a warning. ``alpha`` is in that unit.

        Raises :class:`~clvforecast.exceptions.DataValidationError` for an invalid table, one customer or no
        repeat buyer, and :class:`~clvforecast.exceptions.ConvergenceError` when no retry converges.
        """
        penalizer = self._check_penalizer()
        data = validate_rfm(rfm, _COLUMNS, what="BetaGeo.fit")
        unit = fit_time_unit(rfm, time_unit, "BetaGeo.fit")
        x, tx, T = (data[c].to_numpy() for c in _COLUMNS)
        n = len(data)
        n_repeat = int((x > 0).sum())
        if n < 2:
            raise DataValidationError(
                "BetaGeo.fit: the RFM table has a single customer; the BG/NBD parameters describe a "
                "population and need many customers (hundreds or more)"
            )
        if n_repeat == 0:
            raise DataValidationError(
                f"BetaGeo.fit: none of the {n} customers has a repeat purchase (frequency is 0 for all), so "
                "purchase and dropout rates cannot be estimated; use a longer calibration period or more "
                "customers"
            )
        if np.all(T == 0):
            raise DataValidationError(
                f"BetaGeo.fit: T is 0 for all {n} customers (everyone was observed for no time); set the "
                "observation/calibration end after the first purchases"
            )
        _, (ux, utx, uT), counts = unique_rows(x, tx, T)

        BetaGeoFitter = import_lifetimes().BetaGeoFitter

        def fit_once(pen: float, start: dict[str, Any]) -> Any:
            return BetaGeoFitter(penalizer_coef=pen).fit(ux, utx, uT, weights=counts, **start)

        def fit_rows(mask: np.ndarray) -> Any:
            return BetaGeoFitter(penalizer_coef=penalizer).fit(ux[mask], utx[mask], uT[mask],
                                                                weights=counts[mask])

        def to_initial_params(sub: Any) -> np.ndarray:  # lifetimes' time axis for the full data
            return np.log(np.asarray(sub.params_[list(PARAM_NAMES)]) * [1.0, 1.0 / uT.max(), 1.0, 1.0])

        warm = subsample_start(fit_rows, len(ux), to_initial_params)
        fitter, info = fit_with_retries(fit_once, [*warm, *_STARTS], penalizer, model="BetaGeo")
        info["warm_start"] = bool(warm) and info["start"] == 0
        params = np.asarray(fitter.params_[list(PARAM_NAMES)], dtype="float64")

        scaled = params * np.array([1.0, fitter._scale, 1.0, 1.0])  # lifetimes' time axis: max(T) = 1
        self.params_ = pd.Series(params, index=list(PARAM_NAMES), name="coef")
        self.log_likelihood_ = float(np.dot(counts, log_likelihood(params, ux, utx, uT)))
        self.variance_matrix_ = covariance_from_engine(
            fitter._hessian_, scaled, params, n, info["penalizer"], PARAM_NAMES, "BetaGeo"
        )
        self.n_customers_ = n
        self.time_unit_ = unit
        self.penalizer_ = info["penalizer"]
        self.fit_info_ = {
            **info,
            "n_customers": n,
            "n_repeat_customers": n_repeat,
            "n_unique_histories": len(ux),
            "engine": "lifetimes.BetaGeoFitter (weighted on distinct histories)",
            "engine_objective": float(fitter._negative_log_likelihood_),
        }
        return self

    # -- predictions ----------------------------------------------------------------------------------------

    def _histories(self, rfm: pd.DataFrame, what: str) -> tuple[pd.Index, np.ndarray, list[np.ndarray]]:
        """Validate, check the unit, and compress to distinct histories: (index, codes, [x, t_x, T])."""
        self._check_fitted()
        data = validate_rfm(rfm, _COLUMNS, what=what)
        check_same_unit(rfm, self.time_unit_, what)
        codes, uniq, _ = unique_rows(*(data[c].to_numpy() for c in _COLUMNS))
        return data.index, codes, uniq

    def expected_purchases(self, rfm: pd.DataFrame, t: float | str) -> pd.Series:
        """Expected number of repeat purchases of each customer in the next ``t`` after ``T`` (eq. 10).

        ``t``: a number in the model's time unit (``time_unit_``) or a string such as ``"52W"``, ``"12M"``,
        ``"365D"``. Returns a Series indexed by customer_id (purchases, no unit).
        """
        self._check_fitted()
        tt = as_duration(t, self.time_unit_)
        index, codes, (x, tx, T) = self._histories(rfm, "BetaGeo.expected_purchases")
        values = expected_purchases(self._param_values(), tt, x, tx, T)
        return pd.Series(values[codes], index=index, name="expected_purchases")

    def probability_alive(self, rfm: pd.DataFrame) -> pd.Series:
        """Probability that each customer is still active at the end of her observation (at T), in [0, 1]."""
        index, codes, (x, tx, T) = self._histories(rfm, "BetaGeo.probability_alive")
        values = probability_alive(self._param_values(), x, tx, T)
        return pd.Series(values[codes], index=index, name="probability_alive")

    def probability_of_purchases(self, rfm: pd.DataFrame, t: float | str, n: int) -> pd.Series:
        """P(X(t) = n): probability that each customer makes exactly ``n`` purchases in the next ``t``."""
        self._check_fitted()
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a whole number of purchases >= 0; got {n!r}")
        tt = as_duration(t, self.time_unit_)
        index, codes, (x, tx, T) = self._histories(rfm, "BetaGeo.probability_of_purchases")
        values = probability_of_purchases(self._param_values(), tt, int(n), x, tx, T)
        return pd.Series(values[codes], index=index, name=f"probability_of_{int(n)}_purchases")

    def expected_purchases_new_customer(self, t: Any) -> float | np.ndarray:
        """Unconditional E[X(t)] (eq. 9): expected repeat purchases in the ``t`` after a first purchase.

        ``t`` is a number (model's time unit), a string such as ``"52W"``, or an array-like of these; returns
        a float for a scalar ``t`` and an ndarray otherwise.
        """
        self._check_fitted()
        scalar = isinstance(t, (str, int, float, np.number))
        items = np.atleast_1d(np.asarray(t, dtype=object)).ravel()
        ts = np.array([as_duration(v, self.time_unit_) for v in items], dtype="float64")
        zero = np.zeros_like(ts)
        values = expected_purchases(self._param_values(), ts, zero, zero, zero)
        return float(values[0]) if scalar else values.reshape(np.shape(t))
