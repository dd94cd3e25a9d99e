"""The BG/BB model of discrete transaction opportunities (Fader, Hardie & Shang 2010, "Customer-Base
Analysis in a Discrete-Time Noncontractual Setting").

At each opportunity (a yearly donation drive, a weekly visit) an alive customer transacts with probability
``p ~ Beta(alpha, beta)``; before each opportunity after the first she becomes inactive for good with
probability ``theta ~ Beta(gamma, delta)``. A history is ``(x, t_x, n)`` = (``frequency``: opportunities with a
transaction after the first period, ``recency``: index 1..n of the last one, 0 when none, ``n_periods``:
opportunities after the first period). The table may carry a ``weight`` column (customers with that history,
as in the published donations data), used by ``fit`` by default. Horizons are whole numbers of periods.

Likelihood (eq. 5): ``B(alpha+x, beta+n-x)/B(alpha, beta) B(gamma, delta+n)/B(gamma, delta) + sum_{i=0}^{n-t_x-1}
B(alpha+x, beta+t_x-x+i)/B(alpha, beta) B(gamma+1, delta+t_x+i)/B(gamma, delta)``, summed in log space, with an
analytic gradient (digamma functions).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from ..exceptions import DataValidationError
from ._base import HistoryData, PurchaseModel, _examples

PARAM_NAMES = ("alpha", "beta", "gamma", "delta")


def _bb(u: Any, v: Any) -> np.ndarray:
    return special.betaln(u, v)


def _ladder(start: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """``start + [0, steps_0, steps_0 + steps_1, ...]`` along axis 1 (k columns from k steps, the last unused)."""
    out = np.empty_like(steps)
    out[:, 0] = 0.0
    np.cumsum(steps[:, :-1], axis=1, out=out[:, 1:])
    return out + start[:, None]


def _ll_rows(theta: np.ndarray, data: HistoryData, grad: bool) -> tuple[np.ndarray, np.ndarray | None]:
    a, b, g, d = (float(v) for v in theta)
    x, tx, n = data["x"], data["tx"], data["T"]
    base = _bb(a, b) + _bb(g, d)
    A = _bb(a + x, b + n - x) + _bb(g, d + n) - base
    steps = np.maximum(n - tx, 0).astype("int64")  # terms i = 0 .. n - t_x - 1
    k_max = int(steps.max()) if steps.size else 0
    # the terms B(a+x, b+t_x-x+i) B(g+1, d+t_x+i) / (B(a, b) B(g, d)) as one (rows, k_max) array, by the
    # recursion B(p, q+1) = B(p, q) q / (p+q) in logs (one log-beta per row, not per cell); cells i >= n - t_x are
    # off (-inf)
    k = max(k_max, 1)
    i = np.arange(k, dtype="float64")[None, :]
    on = i < steps[:, None]
    p1, q1 = a + x, b + tx - x
    q2 = d + tx
    L1 = _ladder(_bb(p1, q1), np.log(q1[:, None] + i) - np.log(p1[:, None] + q1[:, None] + i))
    L2 = _ladder(_bb(g + 1, q2), np.log(q2[:, None] + i) - np.log(g + 1 + q2[:, None] + i))
    terms = np.where(on, L1 + L2 - base, -np.inf)
    with np.errstate(divide="ignore"):
        B = special.logsumexp(terms, axis=1) if k_max else np.full(len(x), -np.inf)
    ll = np.logaddexp(A, B)
    if not grad:
        return ll, None
    dg = special.digamma
    G = np.empty((len(x), 4))
    # d/dparams of -base
    d_base = np.array([dg(a) - dg(a + b), dg(b) - dg(a + b), dg(g) - dg(g + d), dg(d) - dg(g + d)])
    wA = np.exp(A - ll)
    gA = np.column_stack([
        dg(a + x) - dg(a + b + n), dg(b + n - x) - dg(a + b + n),
        np.full(len(x), dg(g)) - dg(g + d + n), dg(d + n) - dg(g + d + n),
    ])
    G[:] = wA[:, None] * gA
    if k_max:
        wi = np.exp(terms - ll[:, None])  # 0 where off

        def psi(z: np.ndarray) -> np.ndarray:  # digamma(z + i) by psi(z+1) = psi(z) + 1/z
            return _ladder(dg(z), 1.0 / (z[:, None] + i))

        ab = psi(p1 + q1)  # a + b + t_x + i
        gd = psi(g + 1 + q2)  # g + d + 1 + t_x + i
        G[:, 0] += (wi * (dg(p1)[:, None] - ab)).sum(axis=1)
        G[:, 1] += (wi * (psi(q1) - ab)).sum(axis=1)
        G[:, 2] += (wi * (dg(g + 1) - gd)).sum(axis=1)
        G[:, 3] += (wi * (psi(q2) - gd)).sum(axis=1)
    G -= d_base[None, :]
    return ll, G


def _log1p_ratio(u: np.ndarray) -> np.ndarray:
    """``log1p(u) / u``, 1 at u = 0 (no cancellation)."""
    u = np.asarray(u, dtype="float64")
    small = np.abs(u) < 1e-8
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(small, 1 - u / 2, np.log1p(u) / np.where(small, 1.0, u))


def _expm1_ratio(L: np.ndarray) -> np.ndarray:
    """``expm1(L) / L``, 1 at L = 0."""
    small = np.abs(L) < 1e-8
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.where(small, 1 + L / 2, np.expm1(L) / np.where(small, 1.0, L))


def _survival_sum(g: float, dd: np.ndarray, t: Any) -> np.ndarray:
    """``sum_{k=1}^{t} E[(1 - theta)^k]`` with ``theta ~ Beta(g, dd)``: the expected number of the next t
    opportunities at which a customer alive now is still alive.

    Closed form ``dd/(g-1) [1 - G(g+dd) G(dd+t+1) / (G(dd+1) G(g+dd+t))]``, evaluated without cancellation:
    with ``L = sum_{i<t} log1p((1-g)/(g+dd+i))`` (the log of the gamma ratio) it is
    ``dd (expm1(L)/L) sum_{i<t} [log1p(u_i)/u_i] / (g+dd+i)``, ``u_i = (1-g)/(g+dd+i)``, which is smooth
    through g = 1 and exact for huge or tiny parameters (``t`` whole periods; arrays broadcast).
    """
    dd, t = np.broadcast_arrays(np.asarray(dd, dtype="float64"), np.asarray(t, dtype="float64"))
    t_int = np.rint(t).astype("int64")
    out = np.zeros(dd.shape)
    t_max = int(t_int.max()) if t_int.size else 0
    if t_max <= 0:
        return out
    flat_dd, flat_t = dd.reshape(-1), t_int.reshape(-1)
    res = np.zeros(flat_dd.shape)
    for lo in range(0, len(flat_dd), max(1, 2_000_000 // t_max)):
        sl = slice(lo, lo + max(1, 2_000_000 // t_max))
        i = np.arange(t_max, dtype="float64")[None, :]
        denom = g + flat_dd[sl, None] + i
        u = (1 - g) / denom
        on = i < flat_t[sl, None]
        log_terms = np.where(on, np.log1p(u), 0.0)
        L = log_terms.sum(axis=1)
        harmonic = np.where(on, _log1p_ratio(u) / denom, 0.0).sum(axis=1)
        res[sl] = flat_dd[sl] * _expm1_ratio(L) * harmonic
    return res.reshape(dd.shape)


def _log_survival(g: float, dp: np.ndarray, j_max: int) -> np.ndarray:
    """``log E[(1 - theta)^j]`` for j = 0..j_max, theta ~ Beta(g, dp): ``-sum_{i<j} log1p(g/(dp+i))``."""
    i = np.arange(j_max, dtype="float64")[None, :]
    steps = -np.log1p(g / (dp[:, None] + i))
    return np.concatenate([np.zeros((len(dp), 1)), np.cumsum(steps, axis=1)], axis=1)


class BetaGeoBetaBinom(PurchaseModel):
    """BG/BB model for discrete transaction opportunities (Fader, Hardie & Shang 2010).

    The table has one row per customer (or per group of identical customers, with a ``weight`` column):
    ``frequency``, ``recency``, ``n_periods`` as built by ``rfm.discrete_summary``. Parameters ``alpha``,
    ``beta`` (transaction probability ``Beta(alpha, beta)``) and ``gamma``, ``delta`` (dropout probability
    ``Beta(gamma, delta)``), all without unit; ``time_unit_`` is the length of one period. Horizons ``t`` are
    whole numbers of periods (or strings such as ``"3Y"`` for yearly periods).
    """

    PARAM_NAMES = PARAM_NAMES
    NAME = "bgbb"
    LABEL = "BG/BB"
    LIFETIMES_FITTER = "BetaGeoBetaBinomFitter"
    HISTORY = ("frequency", "recency", "n_periods")
    DISCRETE = True

    @classmethod
    def _validate(cls, rfm: Any, what: str) -> pd.DataFrame:
        if not isinstance(rfm, pd.DataFrame):
            raise TypeError(f"{what} needs a table (a pandas DataFrame); got {type(rfm).__name__}")
        if "customer_id" in rfm.columns and isinstance(rfm.index, pd.RangeIndex):
            rfm = rfm.set_index("customer_id")
        missing = [c for c in cls.HISTORY if c not in rfm.columns]
        if missing:
            hint = " (the published donations data call it 'periods')" if "periods" in rfm.columns else ""
            raise DataValidationError(
                f"{what}: the table has no column(s) {', '.join(repr(c) for c in missing)}{hint}; BG/BB needs "
                "frequency, recency and n_periods per customer: build it with "
                "clvforecast.rfm.discrete_summary(...), or rename the columns"
            )
        if len(rfm) == 0:
            raise DataValidationError(f"{what}: the table is empty (0 customers); there is nothing to fit or score")
        if not rfm.index.is_unique:
            raise DataValidationError(
                f"{what}: customer ids must be unique; {int(rfm.index.duplicated().sum())} rows repeat an id"
            )
        out = pd.DataFrame(index=rfm.index)
        for c in cls.HISTORY:
            try:
                vals = np.asarray(rfm[c], dtype="float64")
            except (TypeError, ValueError) as exc:
                raise DataValidationError(f"{what}: column {c!r} must be numeric; got dtype {rfm[c].dtype}") from exc
            bad = ~np.isfinite(vals) | (vals < 0) | (vals != np.floor(vals))
            if bad.any():
                raise DataValidationError(
                    f"{what}: column {c!r} must hold whole numbers >= 0 (counts of periods); {int(bad.sum())} "
                    f"rows do not, e.g. {_examples(rfm.index, bad, {c: vals})}"
                )
            out[c] = vals
        x, tx, n = (out[c].to_numpy() for c in cls.HISTORY)
        for bad, rule in (
            (x > tx, "frequency <= recency (x transactions cannot end before the x-th opportunity)"),
            (tx > n, "recency <= n_periods"),
            ((x == 0) & (tx != 0), "recency == 0 when frequency == 0"),
            ((x > 0) & (tx == 0), "recency >= 1 when frequency >= 1"),
        ):
            if bad.any():
                raise DataValidationError(
                    f"{what}: {int(bad.sum())} rows break {rule}, e.g. "
                    f"{_examples(rfm.index, bad, {'frequency': x, 'recency': tx, 'n_periods': n})}"
                )
        return out

    def _default_weights(self, table: pd.DataFrame, weights: Any) -> Any:
        if weights is None and isinstance(table, pd.DataFrame) and "weight" in table.columns:
            return "weight"
        return weights

    def _check_data(self, x: np.ndarray, tx: np.ndarray, T: np.ndarray, w: np.ndarray, what: str) -> None:
        super()._check_data(x, tx, T, w, what)

    @classmethod
    def _ll_rows(cls, theta: np.ndarray, data: HistoryData, grad: bool) -> tuple[np.ndarray, np.ndarray | None]:
        return _ll_rows(theta, data, grad)

    @classmethod
    def _starts(cls, data: HistoryData, w: np.ndarray) -> list[np.ndarray]:
        return [np.array([1.0, 1.0, 1.0, 1.0]), np.array([0.5, 0.5, 0.5, 3.0]), np.array([2.0, 1.0, 1.0, 5.0]),
                np.array([5.0, 5.0, 0.3, 0.3])]

    def _messages(self, theta: np.ndarray, unidentified: list[str]) -> list[str]:
        a, b, g, d = theta
        if ("gamma" in unidentified or "delta" in unidentified) and g / (g + d) < 0.01:
            return ["no evidence of dropout in the calibration period: the dropout probability per period "
                    f"(gamma/(gamma+delta) = {g / (g + d):.2g}) is indistinguishable from zero and the model "
                    "behaves as if every customer stays active; consider a longer calibration period"]
        return []

    def _lifetimes_data(self, data: pd.DataFrame) -> tuple[HistoryData, np.ndarray] | None:
        need = ("frequency", "recency", "n_periods")
        if not all(c in data.columns for c in need):
            return None
        w = np.asarray(data["weights"], dtype="float64") if "weights" in data.columns else np.ones(len(data))
        x, tx, n = (np.asarray(data[c], dtype="float64") for c in need)
        return HistoryData(x=x, tx=tx, T=n), w

    # -- closed forms -----------------------------------------------------------------------------------------

    @staticmethod
    def _p_alive(theta: Any, x: Any, tx: Any, T: Any) -> np.ndarray:
        """P(alive at opportunity n | x, t_x, n) (still alive after the n observed opportunities)."""
        a, b, g, d = (float(v) for v in theta)
        data = HistoryData(x=x, tx=tx, T=T)
        ll, _ = _ll_rows(np.asarray(theta, dtype="float64"), data, False)
        xx, nn = data["x"], data["T"]
        A = _bb(a + xx, b + nn - xx) + _bb(g, d + nn) - _bb(a, b) - _bb(g, d)
        return np.clip(np.exp(A - ll), 0.0, 1.0).reshape(data.shape)

    @staticmethod
    def _expected_if_alive(theta: Any, t: Any, x: Any, tx: Any, T: Any) -> np.ndarray:
        """E[transactions in the next t opportunities | alive at n] = (alpha+x)/(alpha+beta+n) x expected
        alive opportunities among the t (``t`` whole periods, array-like allowed)."""
        a, b, g, d = (float(v) for v in theta)
        t, x, n = (np.asarray(v, dtype="float64") for v in (t, x, T))
        return (a + x) / (a + b + n) * _survival_sum(g, d + n, t)

    @staticmethod
    def _pmf(theta: Any, t: float, n_max: int, x: Any, tx: Any, T: Any) -> np.ndarray:
        """P(X = k transactions in the next t opportunities | history), k = 0..n_max (exact, finite sums).

        Given alive at n: ``p ~ Beta(alpha+x, beta+n-x)``, ``theta ~ Beta(gamma, delta+n)``; she stays alive for
        J of the t opportunities with ``P(J = j) = B(gamma+1, delta+n+j)/B(gamma, delta+n)`` (j < t) and
        ``B(gamma, delta+n+t)/B(gamma, delta+n)`` (j = t), and makes ``BetaBinomial(j, alpha+x, beta+n-x)``
        transactions in them.
        """
        x, tx, n = (np.atleast_1d(np.asarray(v, dtype="float64")) for v in np.broadcast_arrays(x, tx, T))
        pa = BetaGeoBetaBinom._p_alive(theta, x, tx, n)
        out = BetaGeoBetaBinom._alive_pmf(theta, t, n_max, x, n)
        out *= pa[:, None]
        out[:, 0] += 1.0 - pa
        return np.clip(out, 0.0, 1.0)

    @staticmethod
    def _alive_pmf(theta: Any, t: float, n_max: int, x: Any, T: Any) -> np.ndarray:
        """P(X = k in the next t opportunities | alive at opportunity n, x, n), k = 0..n_max (depends on x and n
        only, not on t_x); see :meth:`_pmf`."""
        a, b, g, d = (float(v) for v in theta)
        x, n = (np.atleast_1d(np.asarray(v, dtype="float64")) for v in np.broadcast_arrays(x, T))
        t_int = int(round(float(t)))
        ap, bp, dp = a + x, b + n - x, d + n
        log_s = _log_survival(g, dp, t_int)  # log P(alive at each of the next j opportunities), j = 0..t
        out = np.zeros((len(x), n_max + 1))
        k = np.arange(n_max + 1, dtype="float64")[None, :]
        ap_, bp_, D = ap[:, None], bp[:, None], (ap + bp)[:, None]
        # BetaBinomial(k; j, ap, bp) for j = 0, 1, ..., t by the urn recursion (no special functions):
        # BB(k; j+1) = BB(k; j) (bp+j-k)/(ap+bp+j) + BB(k-1; j) (ap+k-1)/(ap+bp+j)
        bb = np.zeros((len(x), n_max + 1))
        bb[:, 0] = 1.0
        log_g = np.log(g)
        for j in range(t_int + 1):
            # P(J = j): alive for exactly j of the t opportunities (dies before opportunity j+1), or all t
            if j < t_int:
                pj = np.exp(log_s[:, j] + log_g - np.log(g + dp + j))
            else:
                pj = np.exp(log_s[:, t_int])
            out += pj[:, None] * bb
            if j == t_int:
                break
            nxt = bb * (np.maximum(bp_ + j - k, 0.0) / (D + j))
            nxt[:, 1:] += bb[:, :-1] * ((ap_ + k[:, :-1]) / (D + j))
            bb = nxt
        return out

    @classmethod
    def _expected(cls, theta: Any, t: Any, x: Any, tx: Any, T: Any) -> np.ndarray:
        return cls._p_alive(theta, x, tx, T) * cls._expected_if_alive(theta, t, x, tx, T)


def donations() -> pd.DataFrame:
    """The published donations data of Fader, Hardie & Shang (2010): 11,104 donors over 6 yearly
    opportunities, as 22 rows ``frequency, recency, n_periods, weight`` (``attrs["time_unit"] = "Y"``)."""
    rows = [(0, 0, 3464), (1, 1, 1091), (1, 2, 277), (1, 3, 129), (1, 4, 78), (1, 5, 119), (1, 6, 129),
            (2, 2, 613), (2, 3, 255), (2, 4, 155), (2, 5, 173), (2, 6, 234), (3, 3, 322), (3, 4, 181),
            (3, 5, 225), (3, 6, 357), (4, 4, 240), (4, 5, 284), (4, 6, 512), (5, 5, 335), (5, 6, 728),
            (6, 6, 1203)]
    df = pd.DataFrame([(f, r, 6, w) for f, r, w in rows], columns=["frequency", "recency", "n_periods", "weight"])
    df.index = pd.RangeIndex(1, len(df) + 1, name="customer_id")
    df.attrs["time_unit"] = "Y"
    return df


__all__ = ["BetaGeoBetaBinom", "donations"]
