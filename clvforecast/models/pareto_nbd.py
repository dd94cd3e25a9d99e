"""The Pareto/NBD purchase model (Schmittlein, Morrison & Colombo 1987).

While alive, a customer buys as a Poisson process with rate ``lambda ~ Gamma(r, alpha)``; her lifetime is
exponential with rate ``mu ~ Gamma(s, beta)`` (dropout can happen at any time, not only after a purchase).
``alpha`` and ``beta`` are in the table's time unit; ``r`` and ``s`` have none.

The likelihood of a history ``(x, t_x, T)`` is written in its integral form (Fader & Hardie 2005, note 009)

    L = G(r+x) alpha^r beta^s / G(r) * [ (alpha+T)^-(r+x) (beta+T)^-s
                                          + s * I ],   I = Int_{t_x}^{T} (alpha+u)^-(r+x) (beta+u)^-(s+1) du.

With ``w = (alpha+t_x)/(alpha+u)``, ``m = r+s+x``, ``q = (alpha-beta)/(alpha+t_x)``, ``e = s+1`` this is
``I = (alpha+t_x)^-m J`` with ``J = Int_{w_T}^{1} w^(m-1) (1 - q w)^-e dw`` and ``w_T = (alpha+t_x)/(alpha+T)``.
When ``alpha < beta`` the roles are exchanged (``w = (beta+t_x)/(beta+u)``, ``q = (beta-alpha)/(beta+t_x)``,
``e = r+x``), so that always ``0 <= q < 1`` (the substitution of Fader & Hardie's note, as in lifetimes and
BTYD). Then:

* for small ``q`` and ``e q`` (``q <= 0.1``, ``e q <= 2``: ``alpha`` close to ``beta``, where the two branches
  meet) ``J`` is the convergent series ``sum_k (e)_k/k! q^k
  (1 - w_T^(m+k))/(m+k)`` (the 2F1 series, written without cancellation: ``1 - w_T^(m+k)`` is accumulated from
  ``1 - w_T = (T - t_x)/(alpha+T)``, exact when ``t_x`` is close to ``T``);
* otherwise ``J`` is integrated in ``t = log w``, where the integrand increases to its maximum at ``t = 0``, on
  panels that double in width away from it, the first scaled to the integrand's slope there (large for large
  ``x`` or for ``q`` near 1), 6 Gauss-Legendre points each, in log space (about 2e-9 relative).

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
import pandas as pd
from scipy import special

from ._base import HistoryData, PurchaseModel, _gather, dot

PARAM_NAMES = ("r", "alpha", "s", "beta")

_Q_SERIES = 0.1  # q up to which the series is used (with e q <= _EQ_SERIES): it converges in ~20 terms
_EQ_SERIES = 2.0
_CHUNK = 4096  # rows per block in the quadrature


def _composite_rule(breaks: list[float], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of an ``n``-point Gauss-Legendre rule on each panel between consecutive ``breaks``."""
    x, w = np.polynomial.legendre.leggauss(n)
    nodes, weights = [], []
    for lo, hi in zip(breaks[:-1], breaks[1:], strict=True):
        nodes.append(lo + (hi - lo) * (x + 1) / 2)
        weights.append(w * (hi - lo) / 2)
    return np.concatenate(nodes), np.concatenate(weights)


# fraction of log(1 + t/(beta+T)), graded towards 0 (the lifetime density s exp(-s z) is largest there)
_Z_NODES, _Z_WEIGHTS = _composite_rule([0.0, 1e-4, 1e-3, 1e-2, 0.05, 0.15, 0.3, 0.5, 0.75, 1.0], 8)


def _J_series(m: np.ndarray, q: np.ndarray, e: np.ndarray, L: np.ndarray, grad: bool) -> tuple[np.ndarray, ...]:
    """``J`` and ``dJ/dm, dJ/dq, dJ/de, dJ/dw_T`` by the series (rows with small ``q``, ``e q``)."""
    lw = np.log1p(-L)  # log w_T
    wpow = np.exp(m * lw)  # w_T^(m+k), k = 0
    one_minus = -np.expm1(m * lw)  # 1 - w_T^(m+k), accumulated without cancellation
    wpow_m1 = np.exp((m - 1) * lw)  # w_T^(m+k-1)
    c = np.ones_like(q)  # (e)_k / k!
    H = np.zeros_like(q)  # d log c / d e
    qk = np.ones_like(q)  # q^k
    qk1 = np.zeros_like(q)  # q^(k-1)
    J = np.zeros_like(q)
    Jm = np.zeros_like(q)
    Jq = np.zeros_like(q)
    Je = np.zeros_like(q)
    Jw = np.zeros_like(q)
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
        H = H + 1.0 / (e + k)
        c = c * ((e + k) / (k + 1))
        qk1 = qk
        qk = qk * q
        one_minus = one_minus + wpow * L
        wpow = wpow * (1 - L)
        wpow_m1 = wpow_m1 * (1 - L)
        if k > 2 and float(np.max(np.abs(c * qk) * (1 + (k + 1) * (1 + H)))) < 1e-17:
            break
    return J, Jm, Jq, Je, Jw


_GL6 = np.polynomial.legendre.leggauss(6)


def _J_ladder(m: np.ndarray, q: np.ndarray, omq: np.ndarray, e: np.ndarray, L: np.ndarray, grad: bool
              ) -> tuple[np.ndarray, ...]:
    """``log J`` and the ratios ``J_m/J, J_q/J, J_e/J, J_wT/J`` by quadrature in ``t = log w`` (0 <= q < 1).

    In ``t`` the integrand ``exp(m t) (1 - q e^t)^-e`` increases up to ``t = 0`` with slope at least ``m``; it is
    integrated on panels that double in width going left from ``t = 0``, the first one ``1/(2 slope)`` wide
    (``slope`` = its slope at 0, which is large for large x or for q near 1), up to ``t = log w_T`` or to where
    it has fallen by a factor e^45; 6 Gauss-Legendre points per panel, in log space (about 2e-9 relative).
    """
    n = len(m)
    logJ = np.full(n, -np.inf)
    R = np.zeros((n, 4))
    Rt = -np.log1p(-L)  # the range of t
    slope = m + e * q / omq
    reach = np.minimum(Rt * slope, 45.0 * slope / m)
    P = np.clip(np.ceil(np.log2(2 * reach + 1)), 1, 60).astype(int)
    P = np.where(L > 0, P, 0)
    xg, wg = _GL6
    for p_ in np.unique(P[P > 0]):
        rows = np.flatnonzero(P == p_)
        c = (2.0 ** np.arange(p_ + 1) - 1) / 2
        for lo in range(0, len(rows), _CHUNK):
            sl = rows[lo:lo + _CHUNK]
            mm, qq, oo, ee = m[sl, None, None], q[sl, None, None], omq[sl, None, None], e[sl, None, None]
            brk = -np.minimum(c[None, :] / slope[sl, None], Rt[sl, None])  # (rows, p+1), decreasing
            hi, lo_ = brk[:, :-1, None], brk[:, 1:, None]
            half = (hi - lo_) / 2
            t = lo_ + half * (xg[None, None, :] + 1)
            em1 = np.expm1(t)
            one_qw = oo - qq * em1  # 1 - q e^t without cancellation near t = 0
            log_1qw = np.log(one_qw)
            top = -ee * np.log(oo)  # the log-integrand at t = 0, its maximum
            ex = np.exp(mm * t - ee * log_1qw - top)
            ex *= half * wg[None, None, :]
            ex = ex.reshape(len(sl), -1)
            S = ex.sum(axis=1)
            with np.errstate(divide="ignore"):
                logJ[sl] = top[:, 0, 0] + np.log(S)
            if grad:
                Sp = np.where(S > 0, S, 1.0)
                R[sl, 0] = np.einsum("ij,ij->i", ex, t.reshape(len(sl), -1)) / Sp
                ratio = ((em1 + 1) / one_qw).reshape(len(sl), -1)
                R[sl, 1] = e[sl] * np.einsum("ij,ij->i", ex, ratio) / Sp
                R[sl, 2] = -np.einsum("ij,ij->i", ex, log_1qw.reshape(len(sl), -1)) / Sp
                ell_T = -(m[sl] - 1) * Rt[sl] - e[sl] * np.log(omq[sl] + q[sl] * L[sl])
                with np.errstate(over="ignore", invalid="ignore"):
                    R[sl, 3] = np.where(np.isfinite(logJ[sl]), -np.exp(ell_T - logJ[sl]), 0.0)
    return (logJ, R[:, 0], R[:, 1], R[:, 2], R[:, 3])


def _log_I_direct(r: float, alpha: float, s: float, beta: float, x: np.ndarray, tx: np.ndarray, T: np.ndarray,
                  grad: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """``log I`` per row and (with ``grad``) its gradient in ``(r, alpha, s, beta)``.

    ``I = Int_{t_x}^T (alpha+u)^-(r+x) (beta+u)^-(s+1) du``. With ``c = max(alpha, beta)`` and ``w = (c+t_x)/(c+u)``
    it is ``(c+t_x)^-m J`` with ``J = Int_{w_T}^1 w^(m-1) (1 - q w)^-e dw``, ``0 <= q = |alpha-beta|/(c+t_x) < 1``,
    ``e = s+1`` when alpha >= beta and ``e = r+x`` otherwise (the substitution of Fader & Hardie's note, which
    keeps q in [0, 1)). ``J`` comes from its series for small ``q`` and ``e q``, else from :func:`_J_ladder`.
    """
    n = len(x)
    m = r + s + x
    if alpha >= beta:
        A = alpha + tx
        q = (alpha - beta) / A
        omq = (beta + tx) / A
        e = np.full(n, s + 1.0)
        L = (T - tx) / (alpha + T)
    else:
        A = beta + tx
        q = (beta - alpha) / A
        omq = (alpha + tx) / A
        e = r + x
        L = (T - tx) / (beta + T)
    series = (q <= _Q_SERIES) & (e * q <= _EQ_SERIES) & (L > 0)
    logJ = np.full(n, -np.inf)
    Rm, Rq, Re, Rw = (np.zeros(n) for _ in range(4))
    if series.any():
        J, Jm, Jq, Je, Jw = _J_series(m[series], q[series], e[series], L[series], grad)
        with np.errstate(divide="ignore"):
            logJ[series] = np.log(J)
        if grad:
            Jp = np.where(J > 0, J, np.inf)
            Rm[series], Rq[series], Re[series], Rw[series] = Jm / Jp, Jq / Jp, Je / Jp, Jw / Jp
    quad = ~series & (L > 0)
    if quad.any():
        lj, a0, a1, a2, a3 = _J_ladder(m[quad], q[quad], omq[quad], e[quad], L[quad], grad)
        logJ[quad] = lj
        Rm[quad], Rq[quad], Re[quad], Rw[quad] = a0, a1, a2, a3
    log_A = np.log(A)
    with np.errstate(invalid="ignore"):
        log_I = -m * log_A + logJ
    if not grad:
        return log_I, None
    G = np.empty((n, 4))
    if alpha >= beta:
        G[:, 0] = -log_A + Rm
        G[:, 2] = -log_A + Rm + Re
        G[:, 1] = -m / A + Rq * (beta + tx) / A**2 + Rw * (T - tx) / (alpha + T) ** 2
        G[:, 3] = -Rq / A
    else:
        G[:, 0] = -log_A + Rm + Re
        G[:, 2] = -log_A + Rm
        G[:, 3] = -m / A + Rq * (alpha + tx) / A**2 + Rw * (T - tx) / (beta + T) ** 2
        G[:, 1] = -Rq / A
    return log_I, G


class _Segments:
    """The histories' ``I = Int_{t_x}^{T} f_x(u) du`` as sums of integrals between consecutive values.

    For each distinct frequency ``x`` the distinct values ``v`` among its histories' ``t_x`` and ``T`` are sorted,
    and ``f_x`` is integrated over each gap between consecutive values (a *segment*). A history's ``I`` is the sum
    of the segments between its ``t_x`` and ``T``, computed as the difference of two suffix sums (from the largest
    value down) in log space: ``I = S(t_x) - S(T)``. With daily dates a million histories share about a tenth as
    many ``(x, v)`` values, and the segments are short (one or two quadrature panels), so this is 10-30 times less
    quadrature than integrating each history. The difference loses nothing to the common part above ``T`` (it is
    the same floating-point number in both sums); what remains is rounding, about ``1e-16 / (1 - S(T)/S(t_x))``
    relative, and a history whose ``t_x`` and ``T`` are consecutive values takes its segment directly.
    Built once per table (it depends on the data only) and cached on the :class:`HistoryData`.
    """

    def __init__(self, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> None:
        n = len(x)
        xc, xl = pd.factorize(x)
        self.xl = np.asarray(xl, dtype="float64")
        # distinct (x, v) pairs sorted by x code then v, by hashing (no sort of the 2n values)
        vc, vu = pd.factorize(np.concatenate([tx, T]))
        vsorted = np.sort(np.asarray(vu, dtype="float64"))
        rank = np.empty(len(vu), dtype=np.int64)
        rank[np.argsort(np.asarray(vu, dtype="float64"), kind="stable")] = np.arange(len(vu))
        key = np.concatenate([xc, xc]).astype(np.int64) * len(vu) + rank[vc]
        kc, ku = pd.factorize(key)
        ku = np.asarray(ku, dtype=np.int64)
        korder = np.argsort(ku, kind="stable")
        where = np.empty(len(ku), dtype=np.int64)
        where[korder] = np.arange(len(ku))
        pair_of = where[kc]
        skey = ku[korder]
        pg, pv = skey // len(vu), vsorted[skey % len(vu)]
        n_pairs = len(pv)
        first = np.r_[True, pg[1:] != pg[:-1]]
        start = np.maximum.accumulate(np.where(first, np.arange(n_pairs), 0))
        pos = np.arange(n_pairs) - start  # position of the value within its frequency's values
        size = np.bincount(pg, minlength=len(xl))  # values per frequency
        # segments: between the values k and k + 1 of a frequency; in a 2-d layout, one row per frequency, the
        # segment k of a frequency with K values at column K - 2 - k (the top segment first), so that cumulative
        # log-sums along the row are the suffix sums S
        seg = pg[:-1] == pg[1:]
        self.seg_x = self.xl[pg[:-1][seg]]
        self.seg_lo, self.seg_hi = pv[:-1][seg], pv[1:][seg]
        self.seg_row = pg[:-1][seg]
        self.seg_col = size[self.seg_row] - 2 - pos[:-1][seg]
        self.shape = (len(xl), max(int(size.max()) - 1, 1))
        seg_of_pair = np.full(n_pairs, -1, dtype=np.int64)
        seg_of_pair[np.flatnonzero(seg)] = np.arange(int(seg.sum()))
        # a value's suffix sum: the cell of its own segment (the one above it); a frequency's top value has none
        # (cell -1: the sentinel appended after the table, S = 0)
        top = pos == size[pg] - 1
        pair_cell = np.where(top, -1, pg * self.shape[1] + (size[pg] - 2 - pos))
        a, b = pair_of[:n], pair_of[n:]
        self.n_rows = n
        same = a == b  # t_x == T: I = 0
        adjacent = b == a + 1  # one segment between t_x and T: taken directly
        self.adj = np.flatnonzero(adjacent)
        self.adj_seg = seg_of_pair[a[adjacent]]
        self.gen = np.flatnonzero(~same & ~adjacent)
        self.cell_a, self.cell_b = pair_cell[a[self.gen]], pair_cell[b[self.gen]]
        self.n_segments = len(self.seg_x)
        self.cells = self.shape[0] * self.shape[1]

    def worthwhile(self, n_rows: int) -> bool:
        return self.n_segments < 0.6 * n_rows and self.cells < 4 * n_rows + 100_000

    def _suffix(self, values: np.ndarray) -> np.ndarray:
        """Log suffix sums of per-segment log values, flattened, with a sentinel -inf appended (cell -1)."""
        M = np.full(self.shape, -np.inf)
        M[self.seg_row, self.seg_col] = values
        return np.append(np.logaddexp.accumulate(M, axis=1).ravel(), -np.inf)

    def log_I(self, r: float, alpha: float, s: float, beta: float, grad: bool, *, keep: bool = False
              ) -> tuple[np.ndarray, np.ndarray | None]:
        """``log I`` per row and, with ``grad``, its gradient per row; with ``keep`` (and ``grad``) the gradient
        is not formed per row but kept for :meth:`grad_dot`."""
        lseg, gseg = _log_I_direct(r, alpha, s, beta, self.seg_x, self.seg_lo, self.seg_hi, grad)
        logS = self._suffix(lseg)
        la, lb = logS[self.cell_a], logS[self.cell_b]
        d = lb - la  # log(S(T) / S(t_x)) < 0 (-inf when T is the top value)
        one_m = -np.expm1(d)  # 1 - S(T)/S(t_x), without cancellation
        log_I = np.full(self.n_rows, -np.inf)
        log_I[self.gen] = la + np.log(one_m)
        log_I[self.adj] = lseg[self.adj_seg]
        if not grad:
            return log_I, None
        assert gseg is not None
        if keep:
            self._kept = (lseg, gseg, logS, d, one_m)
            return log_I, None
        G = np.zeros((self.n_rows, 4))
        rho = np.exp(d)
        with np.errstate(divide="ignore"):
            log_abs = lseg[:, None] + np.log(np.abs(gseg))
        finite = np.isfinite(logS)
        S_safe = np.where(finite, logS, 0.0)
        for j in range(4):
            g = gseg[:, j]
            lp = self._suffix(np.where(g > 0, log_abs[:, j], -np.inf))
            ln = self._suffix(np.where(g < 0, log_abs[:, j], -np.inf))
            # the suffix means of the segments' gradients (0 where the suffix is empty)
            gbar = np.where(finite, np.exp(lp - S_safe) - np.exp(ln - S_safe), 0.0)
            G[self.gen, j] = (gbar[self.cell_a] - rho * gbar[self.cell_b]) / one_m
            G[self.adj, j] = g[self.adj_seg]
        return log_I, G


    def grad_dot(self, w: np.ndarray) -> np.ndarray:
        """``sum_i w_i d log I_i / d theta`` for the state kept by ``log_I(..., keep=True)``, without forming the
        gradient per row: ``d log I = (gbar(t_x) - rho gbar(T)) / (1 - rho)`` with ``gbar`` the segments' suffix
        means of the gradient, so the rows' weights are gathered per cell, carried down the suffixes once, and
        the sum is one product per parameter over the segments."""
        lseg, gseg, logS, d, one_m = self._kept
        wg = w[self.gen]
        n_cells = self.cells
        a = np.where(self.cell_a >= 0, self.cell_a, n_cells)
        b = np.where(self.cell_b >= 0, self.cell_b, n_cells)
        Wc = (np.bincount(a, weights=wg / one_m, minlength=n_cells + 1)
              - np.bincount(b, weights=wg * np.exp(d) / one_m, minlength=n_cells + 1))[:n_cells].reshape(self.shape)
        S2 = logS[:-1].reshape(self.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            lp = np.where(Wc > 0, np.log(np.abs(Wc)) - S2, -np.inf)
            ln = np.where(Wc < 0, np.log(np.abs(Wc)) - S2, -np.inf)
        # sum over the cells k at or below each segment (k >= its column) of W_k / S_k, in logs
        Vp = np.logaddexp.accumulate(lp[:, ::-1], axis=1)[:, ::-1][self.seg_row, self.seg_col]
        Vn = np.logaddexp.accumulate(ln[:, ::-1], axis=1)[:, ::-1][self.seg_row, self.seg_col]
        coef = np.exp(lseg + Vp) - np.exp(lseg + Vn)
        coef += np.bincount(self.adj_seg, weights=w[self.adj], minlength=self.n_segments)
        return coef @ gseg


def _log_I(r: float, alpha: float, s: float, beta: float, x: np.ndarray, tx: np.ndarray, T: np.ndarray,
           grad: bool, data: HistoryData | None = None, keep: bool = False) -> tuple[np.ndarray, Any]:
    """``log I`` per row and (with ``grad``) its gradient in ``(r, alpha, s, beta)``: by segments
    (:class:`_Segments`, cached on ``data``) when the histories share few ``(x, t_x or T)`` values, else
    history by history (:func:`_log_I_direct`). With ``keep`` the segments' gradient is returned as the
    :class:`_Segments` object itself (for :meth:`_Segments.grad_dot`) instead of per row."""
    if len(x) >= 2_000:
        seg = data.cache.get("pnbd_segments") if data is not None else None
        if seg is None:
            seg = _Segments(x, tx, T)
            if data is not None:
                data.cache["pnbd_segments"] = seg
        if seg.worthwhile(len(x)):
            log_I, G = seg.log_I(r, alpha, s, beta, grad, keep=keep)
            return log_I, (seg if keep and grad else G)
    return _log_I_direct(r, alpha, s, beta, x, tx, T, grad)


def _terms(theta: Any, data: HistoryData, grad: bool, keep: bool = False) -> tuple[Any, ...]:
    """``(l1, l2, common, log_aT, log_bT, dlogI)``: log of the alive term, of the ``s I`` term, the common
    factor, and the gradient of ``log I`` (None without ``grad``)."""
    r, alpha, s, beta = (float(v) for v in theta)
    x, tx, T = data["x"], data["tx"], data["T"]
    xl, xc = data.levels("x")
    log_aT = _gather(lambda v: np.log(alpha + v), data, "T")
    log_bT = _gather(lambda v: np.log(beta + v), data, "T")
    log_I, dI = _log_I(r, alpha, s, beta, x, tx, T, grad, data, keep)
    l1 = -(r + x) * log_aT - s * log_bT
    l2 = math.log(s) + log_I
    common = (special.gammaln(r + xl) - special.gammaln(r))[xc] + r * math.log(alpha) + s * math.log(beta)
    return l1, l2, common, log_aT, log_bT, dI


def _ll_rows(theta: np.ndarray, data: HistoryData, grad: bool) -> tuple[np.ndarray, np.ndarray | None]:
    r, alpha, s, beta = (float(v) for v in theta)
    l1, l2, common, log_aT, log_bT, dI = _terms(theta, data, grad)
    LL = np.logaddexp(l1, l2)
    ll = common + LL
    if not grad:
        return ll, None
    x, T = data["x"], data["T"]
    xl, xc = data.levels("x")
    p1 = np.exp(l1 - LL)
    p2 = np.exp(l2 - LL)
    G = np.empty((len(x), 4))
    G[:, 0] = ((special.digamma(r + xl) - special.digamma(r))[xc] + math.log(alpha) - p1 * log_aT + p2 * dI[:, 0])
    G[:, 1] = r / alpha - p1 * (r + x) / (alpha + T) + p2 * dI[:, 1]
    G[:, 2] = math.log(beta) - p1 * log_bT + p2 * (1.0 / s + dI[:, 2])
    G[:, 3] = s / beta - p1 * s / (beta + T) + p2 * dI[:, 3]
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
    def _ll_sum(cls, theta: np.ndarray, data: HistoryData, w: np.ndarray) -> tuple[float, np.ndarray]:
        """Weighted total and gradient without forming the per-row gradient matrix."""
        r, alpha, s, beta = (float(v) for v in theta)
        l1, l2, common, log_aT, log_bT, dI = _terms(theta, data, True, keep=True)
        LL = np.logaddexp(l1, l2)
        x, T = data["x"], data["T"]
        xl, xc = data.levels("x")
        wx = np.bincount(xc, weights=w, minlength=len(xl))
        W = float(w.sum())
        wp1 = w * np.exp(l1 - LL)
        wp2 = w - wp1
        total = dot(w, LL) + float(wx @ special.gammaln(r + xl)) - W * (
            special.gammaln(r) - r * math.log(alpha) - s * math.log(beta))
        if isinstance(dI, _Segments):
            gI = dI.grad_dot(wp2)  # sum_i wp2_i d log I_i / d theta
        else:
            gI = np.array([dot(wp2, dI[:, k]) for k in range(4)])
        g = np.array([
            float(wx @ special.digamma(r + xl)) - W * (special.digamma(r) - math.log(alpha))
            - dot(wp1, log_aT) + gI[0],
            W * r / alpha - dot(wp1, (r + x) / (alpha + T)) + gI[1],
            W * math.log(beta) - dot(wp1, log_bT) + float(wp2.sum()) / s + gI[2],
            W * s / beta - s * dot(wp1, 1.0 / (beta + T)) + gI[3],
        ])
        return total, g

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

    @classmethod
    def _p_alive_draws(cls, draws: np.ndarray, x: Any, tx: Any, T: Any) -> np.ndarray:
        """P(alive) at each parameter draw, the histories' integration segments built once."""
        d = HistoryData(x=x, tx=tx, T=T)
        out = np.empty((len(draws), len(d)))
        for k, theta in enumerate(np.asarray(draws, dtype="float64")):
            l1, l2, *_ = _terms(theta, d, False)
            out[k] = special.expit(l1 - l2)
        return out

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
        x, tx, T = (np.atleast_1d(np.asarray(v, dtype="float64")) for v in np.broadcast_arrays(x, tx, T))
        p_alive = ParetoNBD._p_alive(theta, x, tx, T)
        out = ParetoNBD._alive_pmf(theta, t, n_max, x, T)
        out *= p_alive[:, None]
        out[:, 0] += 1.0 - p_alive
        return np.clip(out, 0.0, 1.0)  # rounding at extreme parameters

    @staticmethod
    def _alive_pmf(theta: Any, t: float, n_max: int, x: Any, T: Any) -> np.ndarray:
        """P(X(t) = n | alive at T, x, T), n = 0..n_max (depends on x and T only); see :meth:`_pmf`."""
        r, alpha, s, beta = (float(v) for v in theta)
        x, T = (np.atleast_1d(np.asarray(v, dtype="float64")) for v in np.broadcast_arrays(x, T))
        t = float(t)
        out = np.zeros((len(x), n_max + 1))
        if t <= 0:
            out[:, 0] = 1.0
            return out
        k = np.arange(n_max, dtype="float64")
        for lo in range(0, len(x), 512):
            sl = slice(lo, lo + 512)
            rx, aT, bT = (r + x[sl])[:, None], (alpha + T[sl])[:, None], (beta + T[sl])[:, None]
            with np.errstate(all="ignore"):
                Z = np.log1p(t / bT)  # (rows, 1)
                z = _Z_NODES[None, :] * Z
                wts = _Z_WEIGHTS[None, :] * Z * (s * np.exp(-s * z))  # lifetime density in z
                total = wts.sum(axis=1, keepdims=True)
                exact = -np.expm1(-s * Z)  # P(tau <= t)
                wts = np.where(total > 0, wts * exact / np.where(total > 0, total, 1.0), 0.0)
                # the nodes u inside (0, t) and the node u = t for a customer alive throughout, P(tau > t)
                u = np.concatenate([bT * np.expm1(z), np.full_like(Z, t)], axis=1)
                w = np.concatenate([wts, np.exp(-s * Z)], axis=1)
                log_p = np.log(u) - np.log(aT + u)  # log of the NB's success probability u/(alpha+T+u)
                log_nb0 = -rx * np.log1p(u / aT)
                # NB(n; u) = C(n) NB(0) p^n with C(n) = prod_{k<n} (rx+k)/(k+1) and NB(0) = (aT/(aT+u))^rx, so
                # the sum over the nodes is C(n) sum_j w_j NB_j(0) p_j^n: powers of p in blocks of 16 counts
                # (multiplications only). Rows where NB(0) underflows at some node or C(n) overflows (thousands
                # of purchases) are computed in logs.
                log_c = np.concatenate([np.zeros((len(rx), 1)),
                                        np.cumsum(np.log(rx + k) - np.log(k + 1.0), axis=1)], axis=1)
                small = (np.min(log_nb0, axis=1) < -600.0) | (log_c[:, -1] > 600.0)
                normal = np.flatnonzero(~small)
                if len(normal):
                    a = w[normal] * np.exp(log_nb0[normal])  # (rows, nodes)
                    lp = log_p[normal]
                    block = 16
                    powers = np.exp(lp[:, :, None] * np.arange(block, dtype="float64"))  # p^0 .. p^15
                    step = np.exp(lp * block)
                    S = np.empty((len(normal), n_max + 1))
                    for start in range(0, n_max + 1, block):
                        width = min(block, n_max + 1 - start)
                        S[:, start:start + width] = np.einsum("ij,ijb->ib", a, powers[:, :, :width])
                        a = a * step
                    out[lo + normal] = np.nan_to_num(S * np.exp(log_c[normal]), nan=0.0)
                small = np.flatnonzero(small)
                if len(small):
                    steps = (np.log(rx[small, :, None] + k) - np.log(k + 1.0)) + log_p[small][:, :, None]
                    ls = np.concatenate([np.zeros(steps.shape[:2] + (1,)), np.cumsum(steps, axis=2)], axis=2)
                    nb = np.exp(ls + log_nb0[small][:, :, None])
                    out[lo + small] = np.nan_to_num(np.einsum("ij,ijn->in", w[small], nb), nan=0.0)
        return out
