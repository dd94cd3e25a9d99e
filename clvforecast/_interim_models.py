"""INTERIM ADAPTER -- DELETE WHEN BRANCH ``models`` IS MERGED INTO MAIN.

clv.py and evaluation.py are written against the purchase-model contract of /work/notes/INTERFACES.md section 2
(``_p_alive``, ``_expected_if_alive``, ``_pmf``, ``histories``, ``sample_params``, ``log_covariance_``,
``NAME``/``LABEL``/``HISTORY``/``DISCRETE``; Gamma-Gamma ``_posterior`` and ``sample_params``). The BetaGeo and
GammaGamma on main before that merge lack these names; this module supplies them from today's closed forms in
:mod:`clvforecast.models.beta_geo` and today's ``variance_matrix_`` (delta method to the log scale). A model that
already has the names is returned unchanged, so once the models branch lands every call here is a no-op and the
module (and the three functions clv.py imports from it) can be deleted:

    purchase_model(spec)  -> clvforecast.models.purchase_model(spec)
    purchase_api(model)   -> model
    spend_api(model)      -> model
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from .exceptions import ModelAssumptionWarning
from .models import beta_geo as _bg
from .models._base import check_same_unit, unique_rows, validate_rfm
from .models.beta_geo import BetaGeo
from .models.gamma_gamma import GammaGamma

_CONTRACT = ("_p_alive", "_expected_if_alive", "_pmf", "histories", "sample_params", "log_covariance_")


def purchase_model(spec: Any) -> Any:
    """A purchase model from a name, a class or an instance (names/classes give an unfitted instance)."""
    try:  # the models branch provides this; use it when present
        from .models import purchase_model as real  # type: ignore[attr-defined]
    except ImportError:
        real = None
    if real is not None:
        return real(spec)
    if isinstance(spec, str):
        if spec.strip().lower() in ("bgnbd", "bg/nbd", "betageo"):
            return BetaGeo()
        raise ValueError(
            f"unknown purchase model {spec!r}; available: 'bgnbd' (BG/NBD) -- Pareto/NBD ('pnbd'), MBG/NBD "
            "('mbgnbd') and BG/BB ('bgbb') arrive with the models branch"
        )
    if isinstance(spec, type) and issubclass(spec, BetaGeo):
        return spec()
    if isinstance(spec, BetaGeo) or all(hasattr(spec, n) for n in _CONTRACT):
        return spec
    raise TypeError(
        f"a purchase model must be a name such as 'bgnbd', a model class or a model instance; got "
        f"{type(spec).__name__}"
    )


def _log_covariance(cov: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Cov(log theta) = D^-1 Cov(theta) D^-1 with D = diag(theta) (delta method; exact for the inverse
    information, since lifetimes' engine works in log theta)."""
    return cov / np.outer(theta, theta)


def _sample_log_normal(theta: np.ndarray, log_cov: np.ndarray, n_draws: int, random_state: Any,
                       label: str) -> np.ndarray:
    rng = np.random.default_rng(random_state)
    if not np.all(np.isfinite(log_cov)):
        warnings.warn(
            f"{label}: the parameters' covariance is not available (weakly identified fit), so the draws carry "
            "no parameter uncertainty: every draw is the point estimate",
            ModelAssumptionWarning,
            stacklevel=3,
        )
        return np.tile(theta, (n_draws, 1))
    z = rng.multivariate_normal(np.zeros(len(theta)), log_cov, size=n_draws, method="eigh")
    return np.exp(np.log(theta)[None, :] + z)


class _BetaGeoAPI:
    """Today's fitted BetaGeo seen through the section-2 contract (interim; see the module docstring)."""

    NAME = "bgnbd"
    LABEL = "BG/NBD"
    HISTORY = ("frequency", "recency", "T")
    DISCRETE = False
    PARAM_NAMES = _bg.PARAM_NAMES

    def __init__(self, model: BetaGeo) -> None:
        model._check_fitted()
        self.model = model
        self.params_ = model.params_
        self.time_unit_ = model.time_unit_

    def __getattr__(self, name: str) -> Any:  # everything else (expected_purchases, summary, ...)
        return getattr(self.model, name)

    @property
    def log_covariance_(self) -> pd.DataFrame:
        theta = self.params_.to_numpy(dtype="float64")
        cov = _log_covariance(self.model.variance_matrix_.to_numpy(dtype="float64"), theta)
        return pd.DataFrame(cov, index=list(self.PARAM_NAMES), columns=list(self.PARAM_NAMES))

    def sample_params(self, n_draws: int, random_state: Any = None) -> np.ndarray:
        theta = self.params_.to_numpy(dtype="float64")
        return _sample_log_normal(theta, self.log_covariance_.to_numpy(), n_draws, random_state, "BetaGeo")

    def histories(self, table: pd.DataFrame, what: str) -> tuple[pd.Index, np.ndarray, list[np.ndarray]]:
        data = validate_rfm(table, self.HISTORY, what=what)
        check_same_unit(table, self.time_unit_, what)
        codes, uniq, _ = unique_rows(*(data[c].to_numpy() for c in self.HISTORY))
        return data.index, codes, uniq

    @staticmethod
    def _p_alive(theta: Any, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
        return _bg.probability_alive(tuple(theta), x, tx, T)

    @staticmethod
    def _expected_if_alive(theta: Any, t: Any, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
        return _bg._expected_if_alive(tuple(theta), t, x, T)

    @staticmethod
    def _expected(theta: Any, t: Any, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
        return _BetaGeoAPI._p_alive(theta, x, tx, T) * _BetaGeoAPI._expected_if_alive(theta, t, x, tx, T)

    @staticmethod
    def _pmf(theta: Any, t: float, n_max: int, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
        """P(X(t) = n | x, t_x, T) for n = 0..n_max, rows = histories (the formula of
        :func:`clvforecast.models.beta_geo.probability_of_purchases`, with the n-dependence by recursion):

        ``P(n | alive) = rho(n) NB(n) + [n > 0] rho(n-1) a/(a+b+x+n-1) P(NB >= n)`` with
        ``rho(n) = B(a, b+x+n)/B(a, b+x) = prod_{k<n} (b+x+k)/(a+b+x+k)`` and ``NB(n)`` the negative binomial
        pmf with shape ``r+x`` and success probability ``q = (alpha+T)/(alpha+T+t)``:
        ``NB(n) = q^(r+x) prod_{k<n} (r+x+k)/(k+1) (1-q)``, by cumulative products where ``q^(r+x)`` is a
        normal number and in log space (cumulative sums of logs) for the rows where it underflows.
        """
        r, alpha, a, b = (float(v) for v in theta)
        x, tx, T = (np.asarray(v, dtype="float64").reshape(-1, 1) for v in (x, tx, T))
        k = np.arange(n_max, dtype="float64")[None, :]
        q = (alpha + T) / (alpha + T + t)
        c = r + x
        log_nb0 = c * np.log(q)
        one = np.ones_like(x)
        if t > 0:
            # q^(r+x) underflows for thousands of purchases (and the product of the ratios overflows): those rows
            # are computed in log space
            small = log_nb0[:, 0] < -600.0
            rows = np.flatnonzero(~small) if small.any() else slice(None)
            nb = np.empty((len(x), n_max + 1))
            nb[rows, 0] = 1.0
            nb[rows, 1:] = (c[rows] + k) / (k + 1.0) * (1.0 - q[rows])
            nb[rows] = np.cumprod(nb[rows], axis=1) * np.exp(log_nb0[rows])
            if small.any():
                cs, qs = c[small], q[small]
                with np.errstate(divide="ignore"):
                    steps = np.log((cs + k) / (k + 1.0)) + np.log1p(-qs)
                nb[small] = np.exp(log_nb0[small] + np.concatenate(
                    [np.zeros_like(cs), np.cumsum(steps, axis=1)], axis=1))
        else:
            nb = np.zeros((len(x), n_max + 1))
            nb[:, 0] = 1.0
        dead_ratio = a / (a + b + x + k)  # (n_max,) per row: a/(a+b+x+n-1) at n = k+1
        rho = np.concatenate([one, 1.0 - dead_ratio], axis=1)  # (b+x+k)/(a+b+x+k) = 1 - a/(a+b+x+k)
        np.cumprod(rho, axis=1, out=rho)
        sf = 1.0 - np.cumsum(nb, axis=1) + nb  # P(NB >= n)
        np.clip(sf, 0.0, 1.0, out=sf)
        alive = rho * nb
        alive[:, 1:] += rho[:, :-1] * dead_ratio * sf[:, 1:]
        pa = _bg.probability_alive((r, alpha, a, b), x[:, 0], tx[:, 0], T[:, 0])
        alive *= pa[:, None]
        alive[:, 0] += special.expit(_bg._log_odds_dead((r, alpha, a, b), x[:, 0], tx[:, 0], T[:, 0]))
        return alive


class _GammaGammaAPI:
    """Today's fitted GammaGamma with ``_posterior`` and ``sample_params`` (interim)."""

    PARAM_NAMES = ("p", "q", "v")

    def __init__(self, model: GammaGamma) -> None:
        model._check_fitted()
        self.model = model
        self.params_ = model.params_

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    @staticmethod
    def _posterior(theta: Any, x: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior of the customer's nu (her mean spend is p / nu): Gamma(shape p x + q, rate v + x m)."""
        p, q, v = (float(t) for t in theta)
        x = np.asarray(x, dtype="float64")
        m = np.where(x > 0, np.asarray(m, dtype="float64"), 0.0)
        return p * x + q, v + x * m

    @property
    def log_covariance_(self) -> pd.DataFrame:
        theta = self.params_.to_numpy(dtype="float64")
        cov = _log_covariance(self.model.variance_matrix_.to_numpy(dtype="float64"), theta)
        return pd.DataFrame(cov, index=list(self.PARAM_NAMES), columns=list(self.PARAM_NAMES))

    def sample_params(self, n_draws: int, random_state: Any = None) -> np.ndarray:
        theta = self.params_.to_numpy(dtype="float64")
        return _sample_log_normal(theta, self.log_covariance_.to_numpy(), n_draws, random_state, "GammaGamma")


def purchase_api(model: Any) -> Any:
    """The fitted purchase model itself when it has the section-2 names, else the interim wrapper."""
    if all(hasattr(type(model), n) or hasattr(model, n) for n in _CONTRACT) and hasattr(model, "NAME"):
        return model
    if isinstance(model, BetaGeo):
        return _BetaGeoAPI(model)
    raise TypeError(
        f"predictive intervals need a fitted purchase model (BetaGeo, ...); got {type(model).__name__}"
    )


def spend_api(model: Any) -> Any:
    """The fitted GammaGamma itself when it has ``_posterior`` and ``sample_params``, else the wrapper."""
    if hasattr(model, "_posterior") and hasattr(model, "sample_params"):
        return model
    if isinstance(model, GammaGamma):
        return _GammaGammaAPI(model)
    raise TypeError(f"spend_model must be a fitted GammaGamma; got {type(model).__name__}")
