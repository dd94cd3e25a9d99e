"""The BG/NBD purchase model (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way").

While alive, a customer buys as a Poisson process with rate ``lambda ~ Gamma(r, alpha)`` (per unit of time);
after each purchase she becomes inactive with probability ``p ~ Beta(a, b)``. A customer's history is
``(x, t_x, T)`` = (``frequency``, ``recency``, ``T``) of the RFM table, in the table's time unit; ``alpha`` is
in that unit too (``r/alpha`` is the mean purchase rate per unit of time), ``r``, ``a``, ``b`` have no unit.

Estimation is clvforecast's engine (:mod:`._engine`): the log-likelihood of eq. (6) and its analytic gradient
on the distinct ``(x, t_x, T)`` rows weighted by their counts, the special functions of ``x`` computed once
per distinct frequency. The predictions are closed forms computed in log space where it matters, so that
they stay finite and accurate for any valid history (``frequency`` in the thousands, ``recency == T``, long
horizons) and any positive parameters: lifetimes' eq. (10) returns NaN where scipy's 2F1 fails (large
frequency and horizon, e.g. r=2, alpha=1, a=b=30, x=5000, t=1000) and inf at a = 1.

The module-level functions (``log_likelihood``, ``probability_alive``, ``expected_purchases``,
``probability_of_purchases``, ``_expected_if_alive(params, t, x, T)``) are kept for callers that use them
directly; the class exposes the same closed forms with the common signatures of
:class:`~clvforecast.models._base.PurchaseModel`.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import integrate, special, stats

from ._base import HistoryData, PurchaseModel, _gather, dot

PARAM_NAMES = ("r", "alpha", "a", "b")


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
_CONCENTRATED = 1e10  # a + b above which the dropout probability's posterior is treated as a point mass
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
    if a + b > _CONCENTRATED:
        return _expected_if_alive_concentrated(params, t, x, T)
    # p | history ~ Beta(a, b+x) is also a point mass, at p = 1, when b + x is tiny next to a (b -> 0 with no
    # repeat purchase: every customer drops out after her first purchase); the closed form is 0/0 there
    xa = np.asarray(x, dtype="float64")
    var_p = a * (b + xa) / ((a + b + xa) ** 2 * (a + b + xa + 1))
    if np.any(var_p < 1e-14):
        t_, x_, T_ = np.broadcast_arrays(np.asarray(t, dtype="float64"), xa, np.asarray(T, dtype="float64"))
        conc = np.broadcast_to(var_p < 1e-14, x_.shape)
        out = np.empty(x_.shape)
        out[conc] = _expected_if_alive_concentrated(params, t_[conc], x_[conc], T_[conc])
        if (~conc).any():
            out[~conc] = _expected_if_alive(params, t_[~conc], x_[~conc], T_[~conc])
        return out
    if abs(a - 1) < _A_NEAR_ONE:
        lo = _expected_if_alive_closed((r, alpha, 1 - _A_NEAR_ONE, b), t, x, T)
        hi = _expected_if_alive_closed((r, alpha, 1 + _A_NEAR_ONE, b), t, x, T)
        w = (a - (1 - _A_NEAR_ONE)) / (2 * _A_NEAR_ONE)
        return (1 - w) * lo + w * hi
    return _expected_if_alive_closed(params, t, x, T)


def _expected_if_alive_concentrated(params: Any, t: Any, x: Any, T: Any) -> np.ndarray:
    """The alive part of eq. (10) when p | history ~ Beta(a, b+x) is a point mass (variance below 1e-10):
    E[g(p)] = g(E[p]) to that order, with g(p) = (1 - ((alpha+T)/(alpha+T+p t))^(r+x)) / p (the closed form loses
    all precision there)."""
    r, alpha, a, b = params
    t_, x_, T_ = np.broadcast_arrays(np.asarray(t, dtype="float64"), np.asarray(x, dtype="float64"),
                                     np.asarray(T, dtype="float64"))
    p = a / (a + b + x_)
    L = np.log1p(p * t_ / (alpha + T_))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(p > 0, -np.expm1(-(r + x_) * L) / np.where(p > 0, p, 1.0), (r + x_) * t_ / (alpha + T_))


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
            if p <= 0.0:
                return 0.0 if a > 1 else math.inf
            log_d += (a - 1) * math.log(p)
        if with_b:
            if p >= 1.0:
                return 0.0 if bx > 1 else math.inf
            log_d += (bx - 1) * math.log1p(-p)
        return math.exp(min(log_d, 700.0))

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
# shared by BG/NBD and MBG/NBD


def bg_family_loglik(theta: np.ndarray, data: HistoryData, grad: bool, shift: int
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """Log-likelihood (and gradient) of the BG/NBD (``shift = 0``) or MBG/NBD (``shift = 1``) per row.

    ``L = G(r+x) alpha^r / G(r) / B(a, b) * [B(a, b+x+shift) (alpha+T)^-(r+x)
    + [x+shift > 0] B(a+1, b+x+shift-1) (alpha+t_x)^-(r+x)]``: BG/NBD eq. (6) of Fader, Hardie & Lee (2005)
    for ``shift = 0``; for MBG/NBD (Batislam et al. 2007) a customer can also drop out right after her first
    purchase, which shifts ``b + x`` by one and gives the second term to every customer. The gradient is
    analytic (digamma functions, computed once per distinct frequency).
    """
    r, alpha, a, b = (float(v) for v in theta)
    x = data["x"]
    xs_levels, xs_codes = data.levels("x")
    bx = b + xs_levels + shift  # b + x (+1) per distinct frequency
    has_dead = xs_levels + shift > 0
    bx_dead = np.where(has_dead, bx - 1, 1.0)
    lg = special.gammaln(r + xs_levels)[xs_codes] - special.gammaln(r) + r * math.log(alpha) - special.betaln(a, b)
    beta_alive = special.betaln(a, bx)
    beta_dead = np.where(has_dead, special.betaln(a + 1, bx_dead), -np.inf)
    log_aT = _gather(lambda v: np.log(alpha + v), data, "T")
    log_atx = _gather(lambda v: np.log(alpha + v), data, "tx")
    rx = r + x
    A = beta_alive[xs_codes] - rx * log_aT
    with np.errstate(invalid="ignore"):
        B = beta_dead[xs_codes] - rx * log_atx
    L = np.logaddexp(A, B)
    ll = lg + L
    if not grad:
        return ll, None
    wA = np.exp(A - L)
    wB = np.exp(B - L)  # 0 where there is no second term
    inv_aT = _gather(lambda v: 1.0 / (alpha + v), data, "T")
    inv_atx = _gather(lambda v: 1.0 / (alpha + v), data, "tx")
    psi_ab_x = special.digamma(a + bx)  # a + b + x (+1): same for both terms
    dA_da = (special.digamma(a) - psi_ab_x)[xs_codes]
    dA_db = (special.digamma(bx) - psi_ab_x)[xs_codes]
    dB_da = (special.digamma(a + 1) - psi_ab_x)[xs_codes]
    dB_db = (np.where(has_dead, special.digamma(bx_dead), 0.0) - psi_ab_x)[xs_codes]
    G = np.empty((len(x), 4))
    G[:, 0] = ((special.digamma(r + xs_levels) - special.digamma(r))[xs_codes] + math.log(alpha)
               - wA * log_aT - wB * np.where(wB > 0, log_atx, 0.0))
    G[:, 1] = r / alpha - rx * (wA * inv_aT + wB * inv_atx)
    dab = special.digamma(a + b)
    G[:, 2] = -(special.digamma(a) - dab) + wA * dA_da + wB * dB_da
    G[:, 3] = -(special.digamma(b) - dab) + wA * dA_db + wB * dB_db
    return ll, G


def bg_family_sum(theta: np.ndarray, data: HistoryData, w: np.ndarray, shift: int) -> tuple[float, np.ndarray]:
    """Weighted total of :func:`bg_family_loglik` and its gradient, computed for speed on large tables.

    Customers without repeat purchase (x = 0, t_x = 0) have a likelihood that depends on T only: their weights
    are summed per distinct T and their terms computed once per T. For the others, every quantity that depends
    on one column (gamma functions of x, logs of alpha + T, of alpha + t_x) is computed once per distinct value
    and the row weights are aggregated onto those values by ``bincount`` for the gradient. Same numbers as
    ``w @ ll`` and ``w @ G``.
    """
    r, alpha, a, b = (float(v) for v in theta)
    xl, xc = data.levels("x")
    tl, tc = data.levels("tx")
    Tl, Tc = data.levels("T")
    key = ("bg_split", id(w), w.size, float(w.sum()))
    if key not in data.cache:
        x = data["x"]
        rep = np.flatnonzero(x > 0)
        zero = x == 0
        data.cache.clear()
        data.cache[key] = (x[rep], xc[rep], tc[rep], Tc[rep], w[rep],
                           np.bincount(Tc[zero], weights=w[zero], minlength=len(Tl)),
                           np.bincount(xc, weights=w, minlength=len(xl)), float(w.sum()),
                           np.bincount(xc[rep], weights=w[rep], minlength=len(xl)))
    x, xc_r, tc_r, Tc_r, w_r, w0_T, wx, W, wx_rep = data.cache[key]
    nT, nt, nx = len(Tl), len(tl), len(xl)
    bx = b + xl + shift
    has_dead = xl + shift > 0
    bx_dead = np.where(has_dead, bx - 1, 1.0)
    beta_alive = special.betaln(a, bx)
    beta_dead = np.where(has_dead, special.betaln(a + 1, bx_dead), -np.inf)
    log_aT = np.log(alpha + Tl)
    log_atx = np.log(alpha + tl)
    inv_aT = 1.0 / (alpha + Tl)
    inv_atx = 1.0 / (alpha + tl)
    psi_ab_x = special.digamma(a + bx)
    dA_da = special.digamma(a) - psi_ab_x
    dA_db = special.digamma(bx) - psi_ab_x
    dB_da = special.digamma(a + 1) - psi_ab_x
    dB_db = np.where(has_dead, special.digamma(bx_dead), 0.0) - psi_ab_x
    # customers without repeat purchase, per distinct T (x = 0, t_x = 0)
    i0 = int(np.flatnonzero(xl == 0)[0]) if np.any(xl == 0) else -1
    total = 0.0
    sA_T = np.zeros(nT)
    sB_0 = np.zeros(nT)
    if i0 >= 0 and w0_T.any():
        A0 = beta_alive[i0] - r * log_aT
        if shift:
            B0 = beta_dead[i0] - r * math.log(alpha)  # t_x = 0
            L0 = np.logaddexp(A0, B0)
            wA0 = np.exp(A0 - L0)
        else:
            L0, wA0 = A0, np.ones(nT)
        total += float(w0_T @ L0)
        sA_T += w0_T * wA0
        sB_0 = w0_T * (1 - wA0)
    # repeat customers, row by row
    rx = r + x
    A = beta_alive[xc_r] - rx * log_aT[Tc_r]
    B = beta_dead[xc_r] - rx * log_atx[tc_r]
    d = A - B
    e = np.exp(-np.abs(d))
    L = np.maximum(A, B) + np.log1p(e)
    wA = np.where(d >= 0, 1.0, e) / (1.0 + e)
    wwA = w_r * wA
    wwB = w_r - wwA
    total += dot(w_r, L) + float(wx @ special.gammaln(r + xl)) - W * (
        special.gammaln(r) - r * math.log(alpha) + special.betaln(a, b))
    bA_T = np.bincount(Tc_r, weights=wwA, minlength=nT)  # the repeat customers' alive weights per T
    rA_T = np.bincount(Tc_r, weights=wwA * rx, minlength=nT) + r * sA_T  # sA_T: the x = 0 customers so far
    sA_T += bA_T
    sB_t = np.bincount(tc_r, weights=wwB, minlength=nt)
    sA_x = np.bincount(xc_r, weights=wwA, minlength=nx)
    sB_x = wx_rep - sA_x  # wwB = w - wwA
    rB_t = np.bincount(tc_r, weights=wwB * rx, minlength=nt)
    if i0 >= 0:
        sA_x[i0] += float(sA_T.sum() - bA_T.sum())
        sB_x[i0] = float(sB_0.sum())
    log_a0 = math.log(alpha)
    dab = special.digamma(a + b)
    g = np.empty(4)
    g[0] = (float(wx @ special.digamma(r + xl)) - W * (special.digamma(r) - log_a0)
            - float(sA_T @ log_aT) - float(sB_t @ log_atx) - float(sB_0.sum()) * log_a0)
    g[1] = W * r / alpha - float(rA_T @ inv_aT) - float(rB_t @ inv_atx) - float(sB_0.sum()) * r / alpha
    g[2] = -W * (special.digamma(a) - dab) + float(sA_x @ dA_da) + float(sB_x @ dB_da)
    g[3] = -W * (special.digamma(b) - dab) + float(sA_x @ dA_db) + float(sB_x @ dB_db)
    return total, g


def bg_alive_pmf(params: Any, t: float, n_max: int, x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(n purchases in (T, T+t] | alive at T) for n = 0..n_max (rows: histories), BG process with
    ``lambda ~ Gamma(r+x, alpha+T)`` and ``p ~ Beta(a, b+x)`` (pass ``b+1`` for MBG/NBD): eq. (8) of the paper
    with updated parameters, ``B(a, b'+n)/B(a, b') NB(n) + [n > 0] B(a+1, b'+n-1)/B(a, b') P(NB >= n)``.

    Computed by recursion in n (no special function per cell, which made this the bottleneck of the predictive
    intervals): with ``b' = b + x``, ``rho(n) = B(a, b'+n)/B(a, b') = prod_{k<n} (b'+k)/(a+b'+k)`` and
    ``B(a+1, b'+n-1)/B(a, b') = rho(n-1) a/(a+b'+n-1)``; the negative binomial pmf with shape ``c = r+x`` and
    ``q = (alpha+T)/(alpha+T+t)`` is ``NB(0) = q^c``, ``NB(n+1) = NB(n) (c+n)/(n+1) (1-q)`` by cumulative
    products where ``q^c`` is a normal number, and by cumulative sums of logs for the rows where it underflows
    (thousands of purchases); ``P(NB >= n) = 1 - sum_{k<n} NB(k)`` (absolute error about 1e-16).
    """
    r, alpha, a, b = (float(v) for v in params)
    x = np.asarray(x, dtype="float64").reshape(-1, 1)
    T = np.asarray(T, dtype="float64").reshape(-1, 1)
    t = float(t)
    rows = len(x)
    k = np.arange(n_max, dtype="float64")[None, :]
    nb = np.zeros((rows, n_max + 1))
    with np.errstate(all="ignore"):
        if t > 0:
            aT = alpha + T
            log_q = -np.log1p(t / aT)
            one_q = t / (aT + t)  # 1 - q without cancellation
            c = r + x
            log_nb0 = c * log_q
            small = log_nb0[:, 0] < -600.0  # q^c underflows (and the products of the ratios would overflow)
            normal = ~small
            if normal.any():
                nn = nb[normal]
                nn[:, 0] = 1.0
                nn[:, 1:] = (c[normal] + k) / (k + 1.0) * one_q[normal]
                np.cumprod(nn, axis=1, out=nn)
                nn *= np.exp(log_nb0[normal])
                nb[normal] = nn
            if small.any():
                steps = np.log(c[small] + k) - np.log(k + 1.0) + np.log(one_q[small])
                nb[small, 0] = 0.0
                nb[small, 1:] = np.cumsum(steps, axis=1)
                nb[small] = np.exp(nb[small] + log_nb0[small])
        else:
            nb[:, 0] = 1.0
        bx = b + x
        denom = a + bx + k
        dead = a / denom  # a/(a+b'+n-1) at n = k+1
        rho = np.empty((rows, n_max + 1))
        rho[:, 0] = 1.0
        rho[:, 1:] = (bx + k) / denom  # (b'+k)/(a+b'+k), without the cancellation of 1 - a/(...)
        np.cumprod(rho, axis=1, out=rho)
        sf = np.cumsum(nb, axis=1)
        np.subtract(1.0, sf, out=sf)
        sf += nb  # P(NB >= n)
        np.clip(sf, 0.0, 1.0, out=sf)
        out = rho * nb
        out[:, 1:] += rho[:, :-1] * dead * sf[:, 1:]
    return np.nan_to_num(out, nan=0.0, posinf=1.0)


# ----------------------------------------------------------------------------------------------------------
# estimator


class BetaGeo(PurchaseModel):
    """BG/NBD model of repeat purchases (Fader, Hardie & Lee 2005).

    Parameters
    ----------
    penalizer:
        L2 penalty ``penalizer * sum(params ** 2)`` added to the mean negative log-likelihood (parameters in
        the table's time unit). 0 gives the maximum-likelihood estimates.

    Attributes (after ``fit``)
    --------------------------
    params_ : Series ``r``, ``alpha``, ``a``, ``b``; ``alpha`` is in ``time_unit_``.
    log_likelihood_ : total log-likelihood in the paper's form (eq. 6) in ``time_unit_`` (-9582.43 on CDNOW in
        weeks).
    diagnostics_, summary, log_covariance_, variance_matrix_, sample_params : see
        :class:`~clvforecast.models._base.FittedModel`. When the data show no dropout (``a -> 0``) the fit
        warns: "no evidence of dropout in the calibration period: ...".
    n_customers_, time_unit_ (``attrs["time_unit"]`` of the table, "D" when absent), penalizer_, fit_info_.

    Predictions take an RFM table in the model's time unit: a table whose ``attrs["time_unit"]`` differs is
    refused with a :class:`~clvforecast.exceptions.DataValidationError`; a table without that attribute is
    taken to be in the model's unit, with a warning. Horizons ``t`` are numbers in ``time_unit_`` or strings
    with their own unit (``"52W"``, ``"12M"``), converted.

    Examples
    --------
    >>> bg = BetaGeo().fit(rfm)                      # doctest: +SKIP
    >>> bg.expected_purchases(rfm, "52W")            # doctest: +SKIP
    """

    PARAM_NAMES = PARAM_NAMES
    NAME = "bgnbd"
    LABEL = "BG/NBD"
    LIFETIMES_FITTER = "BetaGeoFitter"
    _SHIFT = 0

    @classmethod
    def _ll_rows(cls, theta: np.ndarray, data: HistoryData, grad: bool) -> tuple[np.ndarray, np.ndarray | None]:
        return bg_family_loglik(theta, data, grad, cls._SHIFT)

    @classmethod
    def _ll_sum(cls, theta: np.ndarray, data: HistoryData, w: np.ndarray) -> tuple[float, np.ndarray]:
        return bg_family_sum(theta, data, w, cls._SHIFT)

    @classmethod
    def _starts(cls, data: HistoryData, w: np.ndarray) -> list[np.ndarray]:
        rate = max(float(w @ data["x"]) / max(float(w @ data["T"]), 1e-12), 1e-9)  # repeat purchases per unit
        t_max = max(float(np.max(data["T"])), 1e-9)
        return [np.array([1.0, 1.0 / rate, 1.0, 1.0]), np.array([1.0, t_max, 1.0, 1.0]),
                np.array([0.3, 0.3 / rate, 0.5, 3.0]), np.array([3.0, 3.0 / rate, 2.0, 2.0])]

    def _messages(self, theta: np.ndarray, unidentified: list[str]) -> list[str]:
        r, alpha, a, b = theta
        if ("a" in unidentified or "b" in unidentified) and a / (a + b) < 0.01:
            return ["no evidence of dropout in the calibration period: the model behaves like an NBD in which "
                    "every customer stays active; consider Pareto/NBD or a longer calibration period"]
        return []

    @staticmethod
    def _p_alive(theta: Any, x: Any, tx: Any, T: Any) -> np.ndarray:
        """P(alive at T | x, t_x, T) (Fader & Hardie, note 021)."""
        return probability_alive(tuple(theta), *(np.asarray(v, dtype="float64") for v in (x, tx, T)))

    @staticmethod
    def _expected_if_alive(theta: Any, t: Any, x: Any, tx: Any, T: Any) -> np.ndarray:
        """E[purchases in (T, T+t] | alive at T, history] (the alive part of eq. 10; ``tx`` is not used)."""
        return _expected_if_alive(tuple(theta), t, np.asarray(x, dtype="float64"), np.asarray(T, dtype="float64"))

    @staticmethod
    def _alive_pmf(theta: Any, t: float, n_max: int, x: Any, T: Any) -> np.ndarray:
        """P(X(t) = n | alive at T, x, T) for n = 0..n_max (depends on x and T only, not on t_x)."""
        x, T = (np.atleast_1d(np.asarray(v, dtype="float64")) for v in np.broadcast_arrays(x, T))
        return bg_alive_pmf(tuple(float(v) for v in theta), t, n_max, x, T)

    @staticmethod
    def _pmf(theta: Any, t: float, n_max: int, x: Any, tx: Any, T: Any) -> np.ndarray:
        """P(X(t) = n | history) for n = 0..n_max: P(alive) P(n | alive) + [n = 0] (1 - P(alive))."""
        x, tx, T = (np.atleast_1d(np.asarray(v, dtype="float64")) for v in np.broadcast_arrays(x, tx, T))
        params = tuple(float(v) for v in theta)
        odds = _log_odds_dead(params, x, tx, T)  # log odds of having dropped out
        out = special.expit(-odds)[:, None] * bg_alive_pmf(params, t, n_max, x, T)
        out[:, 0] += special.expit(odds)
        return np.clip(out, 0.0, 1.0)  # rounding at extreme parameters
