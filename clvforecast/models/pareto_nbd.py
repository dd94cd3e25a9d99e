"""The Pareto/NBD purchase model (Schmittlein, Morrison & Colombo 1987).

While alive, a customer buys as a Poisson process with rate ``lambda ~ Gamma(r, alpha)``; her lifetime is
exponential with rate ``mu ~ Gamma(s, beta)`` (dropout can happen at any time, not only after a purchase).
``alpha`` and ``beta`` are in the table's time unit; ``r`` and ``s`` have none.

The likelihood of a history ``(x, t_x, T)`` is written in its integral form (Fader & Hardie 2005, note 009)

    L = G(r+x) alpha^r beta^s / G(r) * [ (alpha+T)^-(r+x) (beta+T)^-s
                                          + s * I ],   I = Int_{t_x}^{T} (alpha+u)^-(r+x) (beta+u)^-(s+1) du.

With ``w = (alpha+t_x)/(alpha+u)``, ``m = r+s+x``, ``q = (alpha-beta)/(alpha+t_x)``, ``e = s+1`` this is
``I = (alpha+t_x)^-m J`` with ``J = Int_{w_T}^{1} w^(m-1) (1 - q w)^-e dw`` and ``w_T = (alpha+t_x)/(alpha+T)``.
The integrand has no parameter that grows with ``x`` except the power ``w^(m-1)``, so:

* for ``|q| <= 1/2`` (``alpha`` and ``beta`` within a factor of about two; always the case near ``alpha =
  beta``, where lifetimes' 2F1 form changes branch) ``J`` is the convergent series ``sum_k (e)_k/k! q^k
  (1 - w_T^(m+k))/(m+k)`` (the 2F1 series, in a form without cancellation: ``1 - w_T^(m+k)`` is accumulated
  from ``1 - w_T = (T - t_x)/(alpha+T)``);
* otherwise ``J`` is integrated by a composite Gauss-Legendre rule graded towards ``w = 1``, where both
  ``w^(m-1)`` (large ``x``) and ``(1 - q w)^-e`` (``beta << alpha``) are sharp, in log space.

Both give ``J`` and its derivatives in ``m``, ``q``, ``e`` and ``w_T`` (differentiating under the integral), so
the gradient of the log-likelihood is analytic. Every term is computed in logs: finite for any valid history
(x in the thousands, ``t_x = T``) and any positive parameters.

Predictions (Fader & Hardie, note 009): ``P(alive) = 1 / (1 + s I / ((alpha+T)^-(r+x) (beta+T)^-s))``; given
alive at T, ``lambda ~ Gamma(r+x, alpha+T)`` and ``mu ~ Gamma(s, beta+T)``, so
``E[X(t) | alive] = (r+x)(beta+T) / ((alpha+T)(s-1)) [1 - ((beta+T)/(beta+T+t))^(s-1)]`` (the limit
``log(1 + t/(beta+T))`` at ``s = 1``), and ``P(X(t) = n | alive)`` mixes the negative binomial count of a
customer alive until ``min(t, tau)`` over the Pareto (Lomax) remaining lifetime ``tau``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special

from ._base import HistoryData, PurchaseModel, _gather

PARAM_NAMES = ("r", "alpha", "s", "beta")

_Q_SERIES = 0.5  # |q| up to which the series is used
_CHUNK = 4096  # rows per block in the quadrature


def _composite_rule(breaks: list[float], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of an ``n``-point Gauss-Legendre rule on each panel between consecutive ``breaks``."""
    x, w = np.polynomial.legendre.leggauss(n)
    nodes, weights = [], []
    for lo, hi in zip(breaks[:-1], breaks[1:], strict=True):
        nodes.append(lo + (hi - lo) * (x + 1) / 2)
        weights.append(w * (hi - lo) / 2)
    return np.concatenate(nodes), np.concatenate(weights)


# Quadrature for J: distance from w = 1 as a fraction f of the interval length 1 - w_T, on panels that halve
# towards f = 0 (6 Gauss-Legendre points each) down to 2^-K, K chosen per row 12 halvings below the scale on
# which the integrand changes there (w^(m-1) for large x, (1 - q w)^-e for q near 1), and a few panels that
# halve towards the other end (more when w_T is near 0 and m < 1, where w^(m-1) is singular at 0).
_RULES: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _rule(K: int, far: int) -> tuple[np.ndarray, np.ndarray]:
    key = (K, far)
    if key not in _RULES:
        breaks = sorted({0.0, 1.0, *(2.0**-k for k in range(1, K + 1)), *(1 - 2.0**-k for k in range(2, far + 1))})
        _RULES[key] = _composite_rule(breaks, 6)
    return _RULES[key]


# fraction of log(1 + t/(beta+T)), graded towards 0 (the lifetime density s exp(-s z) is largest there)
_Z_NODES, _Z_WEIGHTS = _composite_rule([0.0, 1e-4, 1e-3, 1e-2, 0.05, 0.15, 0.3, 0.5, 0.75, 1.0], 8)


def _J_series(m: np.ndarray, q: np.ndarray, e: float, L: np.ndarray, grad: bool) -> tuple[np.ndarray, ...]:
    """``J`` and ``dJ/dm, dJ/dq, dJ/de, dJ/dw_T`` by the series (rows with |q| small enough)."""
    lw = np.log1p(-L)  # log w_T
    wpow = np.exp(m * lw)  # w_T^(m+k), k = 0
    one_minus = -np.expm1(m * lw)  # 1 - w_T^(m+k)
    wpow_m1 = np.exp((m - 1) * lw)  # w_T^(m+k-1)
    c, H = 1.0, 0.0  # (e)_k / k! and its log-derivative in e
    qk = np.ones_like(q)  # q^k
    qk1 = np.zeros_like(q)  # q^(k-1)
    J = np.zeros_like(q)
    Jm = np.zeros_like(q)
    Jq = np.zeros_like(q)
    Je = np.zeros_like(q)
    Jw = np.zeros_like(q)
    aq = float(np.max(np.abs(q))) if q.size else 0.0
    for k in range(100_000):
        mk = m + k
        D = one_minus / mk
        t = c * qk
        J += t * D
        if grad:
            Jm -= t * (wpow * lw + D) / mk
            if k:
                Jq += c * k * qk1 * D
            Je += t * H * D
            Jw -= t * wpow_m1
        # next term
        H += 1.0 / (e + k)
        c *= (e + k) / (k + 1)
        qk1 = qk
        qk = qk * q
        one_minus = one_minus + wpow * L
        wpow = wpow * (1 - L)
        wpow_m1 = wpow_m1 * (1 - L)
        if abs(c) * aq ** (k + 1) * max(1.0, (k + 1) * (1 + H)) < 1e-17 and k > e * aq:
            break
    return J, Jm, Jq, Je, Jw


def _J_quad(m: np.ndarray, q: np.ndarray, omq: np.ndarray, e: float, L: np.ndarray, grad: bool
            ) -> tuple[np.ndarray, ...]:
    """``log J`` and the ratios ``J_m/J, J_q/J, J_e/J, J_wT/J`` by graded Gauss-Legendre quadrature in log
    space (rows where the series would converge slowly). ``omq = 1 - q`` computed without cancellation."""
    n = len(m)
    logJ = np.empty(n)
    R = np.zeros((n, 4))
    wT = 1 - L
    # steepest relative change of the log-integrand near w = 1, in units of the interval
    slope = (np.abs(m - 1) + np.where(q > 0, e * q / np.maximum(omq, 1e-300), e * np.abs(q) / (1 + np.abs(q) * wT))) * L
    K = np.clip(np.ceil(np.log2(1 + slope)) + 12, 16, 48)
    K = (np.ceil(K / 8) * 8).astype(int)
    far = np.where((m < 1) & (wT < 0.01), 24, 8)
    for (k_, f_) in sorted(set(zip(K.tolist(), far.tolist(), strict=True))):
        rows = np.flatnonzero((K == k_) & (far == f_))
        d_nodes, d_weights = _rule(k_, f_)
        for lo in range(0, len(rows), _CHUNK):
            sl = rows[lo:lo + _CHUNK]
            mm, qq, oo, LL = m[sl, None], q[sl, None], omq[sl, None], L[sl, None]
            dL = d_nodes[None, :] * LL
            log_w = np.log1p(-dL)
            one_qw = oo + qq * dL  # 1 - q w
            log_1qw = np.log(one_qw)
            ell = (mm - 1) * log_w - e * log_1qw
            top = np.max(ell, axis=1, keepdims=True)
            wt = d_weights[None, :] * np.exp(ell - top)
            S = wt.sum(axis=1)
            with np.errstate(divide="ignore"):
                logJ[sl] = top[:, 0] + np.log(S) + np.log(L[sl])
            if grad:
                Sp = np.where(S > 0, S, 1.0)
                R[sl, 0] = (wt * log_w).sum(axis=1) / Sp
                R[sl, 1] = (wt * (e * (1 - dL) / one_qw)).sum(axis=1) / Sp
                R[sl, 2] = -(wt * log_1qw).sum(axis=1) / Sp
                ell_T = (m[sl] - 1) * np.log1p(-L[sl]) - e * np.log(omq[sl] + q[sl] * L[sl])
                with np.errstate(over="ignore", invalid="ignore"):
                    R[sl, 3] = np.where(np.isfinite(logJ[sl]), -np.exp(ell_T - logJ[sl]), 0.0)
    return (logJ, R[:, 0], R[:, 1], R[:, 2], R[:, 3])


def _log_J(r: float, alpha: float, s: float, beta: float, x: np.ndarray, tx: np.ndarray, T: np.ndarray,
           grad: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """``log J`` per row and (with ``grad``) the ratios ``J_m/J, J_q/J, J_e/J, J_wT/J`` as columns."""
    A = alpha + tx
    m = r + s + x
    q = (alpha - beta) / A
    omq = (beta + tx) / A
    e = s + 1.0
    L = (T - tx) / (alpha + T)  # 1 - w_T
    series = (np.abs(q) <= _Q_SERIES) & (np.where(q >= 0, e * q <= 20.0, e * np.abs(q) <= 3.0))
    logJ = np.empty(len(m))
    R = np.zeros((len(m), 4)) if grad else None
    if series.any():
        J, Jm, Jq, Je, Jw = _J_series(m[series], q[series], e, L[series], grad)
        with np.errstate(divide="ignore"):
            logJ[series] = np.log(J)
        if R is not None:
            Jp = np.where(J > 0, J, 1.0)
            R[series] = np.column_stack([Jm, Jq, Je, Jw]) / Jp[:, None] * (J > 0)[:, None]
    quad = ~series
    if quad.any():
        lj, *ratios = _J_quad(m[quad], q[quad], omq[quad], e, L[quad], grad)
        logJ[quad] = lj
        if R is not None:
            R[quad] = np.column_stack(ratios)
    return logJ, R


def _terms(theta: Any, data: HistoryData, grad: bool) -> tuple[np.ndarray, ...]:
    """``(l1, l2, common, extra...)``: log of the alive term, log of the ``s I`` term, the common factor."""
    r, alpha, s, beta = (float(v) for v in theta)
    x, tx, T = data["x"], data["tx"], data["T"]
    xl, xc = data.levels("x")
    log_aT = _gather(lambda v: np.log(alpha + v), data, "T")
    log_bT = _gather(lambda v: np.log(beta + v), data, "T")
    log_A = _gather(lambda v: np.log(alpha + v), data, "tx")
    logJ, R = _log_J(r, alpha, s, beta, x, tx, T, grad)
    l1 = -(r + x) * log_aT - s * log_bT
    with np.errstate(divide="ignore"):
        l2 = math.log(s) - (r + s + x) * log_A + logJ
    common = (special.gammaln(r + xl) - special.gammaln(r))[xc] + r * math.log(alpha) + s * math.log(beta)
    return l1, l2, common, log_aT, log_bT, log_A, R


def _ll_rows(theta: np.ndarray, data: HistoryData, grad: bool) -> tuple[np.ndarray, np.ndarray | None]:
    r, alpha, s, beta = (float(v) for v in theta)
    l1, l2, common, log_aT, log_bT, log_A, R = _terms(theta, data, grad)
    LL = np.logaddexp(l1, l2)
    ll = common + LL
    if not grad:
        return ll, None
    assert R is not None
    x, tx, T = data["x"], data["tx"], data["T"]
    xl, xc = data.levels("x")
    p1 = np.exp(l1 - LL)
    p2 = np.exp(l2 - LL)
    Rm, Rq, Re, Rw = R.T
    A = alpha + tx
    m = r + s + x
    G = np.empty((len(x), 4))
    G[:, 0] = ((special.digamma(r + xl) - special.digamma(r))[xc] + math.log(alpha)
               - p1 * log_aT + p2 * (-log_A + Rm))
    G[:, 1] = (r / alpha - p1 * (r + x) / (alpha + T)
               + p2 * (-m / A + Rq * (beta + tx) / A**2 + Rw * (T - tx) / (alpha + T) ** 2))
    G[:, 2] = math.log(beta) - p1 * log_bT + p2 * (1.0 / s - log_A + Rm + Re)
    G[:, 3] = s / beta - p1 * s / (beta + T) - p2 * Rq / A
    return ll, G


def _pow_ratio(c: float, Lg: np.ndarray) -> np.ndarray:
    """``(1 - exp(-c Lg)) / c``, with its limit ``Lg`` at ``c = 0`` (no cancellation near it)."""
    if abs(c) < 1e-300:
        return np.asarray(Lg, dtype="float64")
    cl = c * np.asarray(Lg, dtype="float64")
    with np.errstate(over="ignore"):
        return np.where(np.abs(cl) < 1e-8, Lg * (1 - cl / 2), -np.expm1(-cl) / c)


class ParetoNBD(PurchaseModel):
    """Pareto/NBD model of repeat purchases (Schmittlein, Morrison & Colombo 1987).

    Same interface, attributes and units as :class:`~clvforecast.BetaGeo`; the parameters are ``r``,
    ``alpha`` (purchase rates ``Gamma(r, alpha)``, alpha in the time unit) and ``s``, ``beta`` (dropout rates
    ``Gamma(s, beta)``, beta in the time unit). ``beta`` is often weakly identified (its interval is wide): the
    summary's log-scale interval shows it honestly.
    """

    PARAM_NAMES = PARAM_NAMES
    NAME = "pnbd"
    LABEL = "Pareto/NBD"
    LIFETIMES_FITTER = "ParetoNBDFitter"

    @classmethod
    def _ll_rows(cls, theta: np.ndarray, data: HistoryData, grad: bool) -> tuple[np.ndarray, np.ndarray | None]:
        return _ll_rows(theta, data, grad)

    @classmethod
    def _starts(cls, data: HistoryData, w: np.ndarray) -> list[np.ndarray]:
        rate = max(float(w @ data["x"]) / max(float(w @ data["T"]), 1e-12), 1e-9)
        t_mean = max(float(w @ data["T"]) / float(w.sum()), 1e-9)
        return [np.array([1.0, 1.0 / rate, 1.0, t_mean]), np.array([0.5, 0.5 / rate, 0.5, t_mean]),
                np.array([2.0, 2.0 / rate, 2.0, 4 * t_mean]), np.array([1.0, 1.0, 1.0, 1.0])]

    def _messages(self, theta: np.ndarray, unidentified: list[str]) -> list[str]:
        r, alpha, s, beta = theta
        horizon = float(getattr(self, "fit_info_", {}).get("mean_T", 1.0) or 1.0)
        if ("s" in unidentified or "beta" in unidentified) and s / beta * horizon < 0.01:
            return ["no evidence of dropout in the calibration period: the dropout rates (s/beta per unit of "
                    f"time = {s / beta:.2g}) are indistinguishable from zero and the model behaves like an NBD in "
                    "which every customer stays active; consider a longer calibration period"]
        return []

    @staticmethod
    def _p_alive(theta: Any, x: Any, tx: Any, T: Any) -> np.ndarray:
        """P(alive at T | history) = 1 / (1 + s I / ((alpha+T)^-(r+x) (beta+T)^-s))."""
        d = HistoryData(x=x, tx=tx, T=T)
        l1, l2, *_ = _terms(np.asarray(theta, dtype="float64"), d, False)
        return special.expit(l1 - l2).reshape(d.shape)

    @staticmethod
    def _expected_if_alive(theta: Any, t: Any, x: Any, tx: Any, T: Any) -> np.ndarray:
        """E[purchases in (T, T+t] | alive at T] = (r+x)(beta+T)/(alpha+T) (1 - ((beta+T)/(beta+T+t))^(s-1))
        / (s-1)."""
        r, alpha, s, beta = (float(v) for v in theta)
        t, x, T = (np.asarray(v, dtype="float64") for v in (t, x, T))
        bT = beta + T
        return (r + x) / (alpha + T) * bT * _pow_ratio(s - 1.0, np.log1p(t / bT))

    @staticmethod
    def _pmf(theta: Any, t: float, n_max: int, x: Any, tx: Any, T: Any) -> np.ndarray:
        """P(X(t) = n | history), n = 0..n_max.

        Given alive at T the remaining lifetime ``tau`` has ``P(tau > u) = (b/(b+u))^s`` with ``b = beta+T``
        and the count until ``min(t, tau)`` is negative binomial with ``r+x`` and ``(alpha+T)/(alpha+T+u)``:
        ``P(n | alive) = (b/(b+t))^s NB(n; t) + Int_0^t s b^s (b+u)^-(s+1) NB(n; u) du``, integrated over
        ``z = log(1 + u/b)`` by a graded Gauss-Legendre rule whose weights are rescaled so that the lifetime
        density integrates exactly (the probabilities add up to one).
        """
        r, alpha, s, beta = (float(v) for v in theta)
        x, tx, T = (np.atleast_1d(np.asarray(v, dtype="float64")) for v in np.broadcast_arrays(x, tx, T))
        t = float(t)
        p_alive = ParetoNBD._p_alive(theta, x, tx, T)
        n = np.arange(n_max + 1, dtype="float64")
        out = np.zeros((len(x), n_max + 1))
        rx_all, aT_all, bT_all = r + x, alpha + T, beta + T
        for lo in range(0, len(x), 2048):
            sl = slice(lo, lo + 2048)
            rx, aT, bT = rx_all[sl, None, None], aT_all[sl, None, None], bT_all[sl, None, None]
            Z = np.log1p(t / bT)  # (rows, 1, 1)
            z = _Z_NODES[None, :, None] * Z
            dens = s * np.exp(-s * z)  # lifetime density in z
            wts = _Z_WEIGHTS[None, :, None] * Z * dens
            exact = -np.expm1(-s * Z)  # P(tau <= t)
            total = wts.sum(axis=1, keepdims=True)
            wts = np.where(total > 0, wts * exact / np.where(total > 0, total, 1.0), 0.0)
            u = bT * np.expm1(z)
            nn = n[None, None, :]
            with np.errstate(all="ignore"):
                lognb = (special.gammaln(rx + nn) - special.gammaln(rx) - special.gammaln(nn + 1)
                         - rx * np.log1p(u / aT) + nn * (np.log(u) - np.log(aT + u)))
                lognb = np.where((u == 0) & (nn == 0), 0.0, lognb)
                inside = (wts * np.exp(lognb)).sum(axis=1)
                lognb_t = (special.gammaln(rx + nn) - special.gammaln(rx) - special.gammaln(nn + 1)
                           - rx * np.log1p(t / aT) + nn * (math.log(t) - np.log(aT + t))) if t > 0 else \
                    np.where(nn == 0, 0.0, -np.inf)
                alive_to_t = np.exp(-s * Z[:, :, 0])  # P(tau > t)
                outside = alive_to_t * np.exp(lognb_t[:, 0, :] if t > 0 else lognb_t[0])
            out[sl] = np.nan_to_num(inside + outside, nan=0.0)
        out *= p_alive[:, None]
        out[:, 0] += 1.0 - p_alive
        return out
