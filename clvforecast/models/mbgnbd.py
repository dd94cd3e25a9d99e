"""The MBG/NBD purchase model (Batislam, Denizel & Filiztekin 2007, "Empirical validation and comparison of
models for customer base analysis").

As BG/NBD (purchases Poisson with ``lambda ~ Gamma(r, alpha)`` while alive, dropout with probability
``p ~ Beta(a, b)``), except that the dropout coin is also tossed right after the first purchase, so a customer
without repeat purchases can be inactive too. The likelihood is
``G(r+x) alpha^r / G(r) / B(a, b) [B(a, b+x+1) (alpha+T)^-(r+x) + B(a+1, b+x) (alpha+t_x)^-(r+x)]`` and
``P(alive) = 1 / (1 + a/(b+x) ((alpha+T)/(alpha+t_x))^(r+x))`` for every x. Given alive at T, the posterior is
``lambda ~ Gamma(r+x, alpha+T)``, ``p ~ Beta(a, b+x+1)``, so the future is the BG process with ``b + 1`` in
place of ``b``: the BG/NBD closed forms are reused with that shift.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from . import beta_geo as bg
from ._base import HistoryData, PurchaseModel

PARAM_NAMES = ("r", "alpha", "a", "b")


def _log_odds_dead(theta: Any, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
    """log(P(inactive) / P(alive)) = log(a / (b + x)) + (r + x) log((alpha + T) / (alpha + t_x))."""
    r, alpha, a, b = (float(v) for v in theta)
    return np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + T) - np.log(alpha + tx))


class ModifiedBetaGeo(PurchaseModel):
    """MBG/NBD model of repeat purchases (Batislam, Denizel & Filiztekin 2007): BG/NBD with a possible dropout
    right after the first purchase. Same interface, attributes and units as :class:`~clvforecast.BetaGeo`."""

    PARAM_NAMES = PARAM_NAMES
    NAME = "mbgnbd"
    LABEL = "MBG/NBD"
    LIFETIMES_FITTER = "ModifiedBetaGeoFitter"

    @classmethod
    def _ll_rows(cls, theta: np.ndarray, data: HistoryData, grad: bool) -> tuple[np.ndarray, np.ndarray | None]:
        return bg.bg_family_loglik(theta, data, grad, 1)

    @classmethod
    def _ll_sum(cls, theta: np.ndarray, data: HistoryData, w: np.ndarray) -> tuple[float, np.ndarray]:
        return bg.bg_family_sum(theta, data, w, 1)

    @classmethod
    def _starts(cls, data: HistoryData, w: np.ndarray) -> list[np.ndarray]:
        return bg.BetaGeo._starts(data, w)

    _messages = bg.BetaGeo._messages  # the same dropout parameters (a, b), the same degenerate limit

    @staticmethod
    def _p_alive(theta: Any, x: Any, tx: Any, T: Any) -> np.ndarray:
        x, tx, T = (np.asarray(v, dtype="float64") for v in (x, tx, T))
        return special.expit(-_log_odds_dead(theta, x, tx, T))

    @staticmethod
    def _expected_if_alive(theta: Any, t: Any, x: Any, tx: Any, T: Any) -> np.ndarray:
        """E[purchases in (T, T+t] | alive at T]: the BG/NBD expression with ``b + 1``, i.e.
        ``(a+b+x)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x+1; a+b+x; t/(alpha+T+t))]``."""
        r, alpha, a, b = (float(v) for v in theta)
        return bg._expected_if_alive((r, alpha, a, b + 1.0), t, np.asarray(x, dtype="float64"),
                                     np.asarray(T, dtype="float64"))

    @staticmethod
    def _alive_pmf(theta: Any, t: float, n_max: int, x: Any, T: Any) -> np.ndarray:
        """P(X(t) = n | alive at T, x, T), n = 0..n_max: the BG process with ``b + 1`` (depends on x and T only)."""
        x, T = (np.atleast_1d(np.asarray(v, dtype="float64")) for v in np.broadcast_arrays(x, T))
        r, alpha, a, b = (float(v) for v in theta)
        return bg.bg_alive_pmf((r, alpha, a, b + 1.0), t, n_max, x, T)

    @staticmethod
    def _pmf(theta: Any, t: float, n_max: int, x: Any, tx: Any, T: Any) -> np.ndarray:
        """P(X(t) = n | history), n = 0..n_max: P(alive) x (BG process with b+x+1) + [n = 0] P(inactive)."""
        x, tx, T = (np.atleast_1d(np.asarray(v, dtype="float64")) for v in np.broadcast_arrays(x, tx, T))
        r, alpha, a, b = (float(v) for v in theta)
        odds = _log_odds_dead(theta, x, tx, T)
        out = special.expit(-odds)[:, None] * bg.bg_alive_pmf((r, alpha, a, b + 1.0), t, n_max, x, T)
        out[:, 0] += special.expit(odds)
        return np.clip(out, 0.0, 1.0)  # rounding at extreme parameters
