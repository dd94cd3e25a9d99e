"""Shared machinery of the models: input validation, unique-row compression, fitting with retries, standard
errors, summaries and JSON persistence.

This package is the only place in clvforecast that imports ``lifetimes``: estimation is delegated to its fitters,
everything else (log-likelihoods in the published form, covariance matrices, predictions) is computed here, so
the engine can be replaced in one place.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..exceptions import ConvergenceError, DataValidationError, NotFittedError
from ..units import check_time_unit, parse_horizon

FORMAT_NAME = "clvforecast.model"
FORMAT_VERSION = 1
Z_95 = 1.959963984540054  # two-sided 95% normal quantile

# Penalizers tried, in order, when lifetimes does not converge from any starting point without one (lifetimes'
# L2 penalty: coef * sum(params ** 2), added to the *mean* negative log-likelihood on its rescaled time axis).
RETRY_PENALIZERS: tuple[float, ...] = (1e-4, 1e-3, 1e-2)


def import_lifetimes() -> Any:
    """Import lifetimes, hiding the warnings it triggers at import time with recent pandas."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import lifetimes
        import lifetimes.utils  # noqa: F401
    return lifetimes


class ConvergenceWarning(UserWarning):
    """The fit needed a fallback (a penalizer) or its standard errors could not be computed."""


# ----------------------------------------------------------------------------------------------------------------
# validation


def _examples(index: pd.Index, mask: np.ndarray, values: dict[str, np.ndarray] | None = None, k: int = 3) -> str:
    """'customer 17 (recency 40.1, T 39.0), customer 23 (...)' for the first ``k`` rows where ``mask`` holds."""
    pos = np.flatnonzero(mask)[:k]
    parts = []
    for i in pos:
        detail = ", ".join(f"{name} {vals[i]!r}" if not isinstance(vals[i], float) else f"{name} {vals[i]:g}"
                           for name, vals in (values or {}).items())
        parts.append(f"customer {index[i]!r}" + (f" ({detail})" if detail else ""))
    return ", ".join(parts)


def validate_rfm(rfm: Any, columns: Sequence[str], *, what: str) -> pd.DataFrame:
    """Check an RFM table and return a float64 copy of ``columns`` indexed like ``rfm``.

    Checks: a DataFrame, not empty, the columns present, unique customer ids, finite numbers, integer
    ``frequency >= 0``, ``0 <= recency <= T`` and ``recency == 0`` when ``frequency == 0`` (those that apply to the
    requested columns). A ``customer_id`` column is used as the index when the index is a plain range.
    Raises :class:`~clvforecast.exceptions.DataValidationError` naming the column, the number of rows, up to three
    examples and the fix. The input is never modified.
    """
    if not isinstance(rfm, pd.DataFrame):
        raise TypeError(f"{what} needs an RFM table (a pandas DataFrame); got {type(rfm).__name__}")
    if "customer_id" in rfm.columns and isinstance(rfm.index, pd.RangeIndex):
        rfm = rfm.set_index("customer_id")
    missing = [c for c in columns if c not in rfm.columns]
    if missing:
        raise DataValidationError(
            f"{what}: the RFM table has no column(s) {', '.join(repr(c) for c in missing)} "
            f"(it has {', '.join(repr(c) for c in rfm.columns[:8])}{', ...' if len(rfm.columns) > 8 else ''}); "
            "build it with clvforecast.rfm_summary(...) or clvforecast.calibration_holdout(...), or rename the columns"
        )
    if len(rfm) == 0:
        raise DataValidationError(f"{what}: the RFM table is empty (0 customers); there is nothing to fit or score")
    index = rfm.index
    if not index.is_unique:
        dup = index.duplicated(keep=False)
        n_dup = int(index.duplicated().sum())
        raise DataValidationError(
            f"{what}: customer ids must be unique; {n_dup} rows repeat an id, e.g. "
            f"{', '.join(repr(v) for v in pd.unique(index[dup])[:3])}; build the table with one row per customer "
            "(clvforecast.rfm_summary does)"
        )
    out = pd.DataFrame(index=index)
    for c in columns:
        col = rfm[c]
        try:
            vals = np.asarray(col, dtype="float64")
        except (TypeError, ValueError) as exc:
            raise DataValidationError(
                f"{what}: column {c!r} must be numeric; got dtype {col.dtype}, e.g. {col.iloc[0]!r}"
            ) from exc
        bad = ~np.isfinite(vals)
        if bad.any():
            raise DataValidationError(
                f"{what}: column {c!r} has {int(bad.sum())} missing or infinite values, e.g. "
                f"{_examples(index, bad)}; drop or fill those customers"
            )
        out[c] = vals
    if "frequency" in out:
        f = out["frequency"].to_numpy()
        bad = (f < 0) | (f != np.floor(f))
        if bad.any():
            raise DataValidationError(
                f"{what}: column 'frequency' must hold whole numbers >= 0 (repeat transactions); {int(bad.sum())} "
                f"rows do not, e.g. {_examples(index, bad, {'frequency': f})}"
            )
    if "recency" in out and "T" in out:
        f, rec, T = (out[c].to_numpy() for c in ("frequency", "recency", "T"))
        for bad, rule in (
            (rec < 0, "recency >= 0"),
            (rec > T, "recency <= T (the last purchase cannot be after the end of the period)"),
            ((f == 0) & (rec != 0), "recency == 0 when frequency == 0 (no repeat purchase)"),
        ):
            if bad.any():
                raise DataValidationError(
                    f"{what}: {int(bad.sum())} rows break {rule}, e.g. "
                    f"{_examples(index, bad, {'frequency': f, 'recency': rec, 'T': T})}; recency and T are measured "
                    "from the first purchase, in the table's time unit: rebuild the table with clvforecast.rfm_summary"
                )
    return out


def table_time_unit(rfm: pd.DataFrame, default: str | None) -> str | None:
    """The table's ``attrs["time_unit"]`` (canonical code), or ``default`` when the table carries none."""
    unit = getattr(rfm, "attrs", {}).get("time_unit")
    return check_time_unit(unit) if unit else default


def check_same_unit(rfm: pd.DataFrame, model_unit: str, what: str) -> None:
    """Raise when the table says it is in another time unit than the model (recency and T would be misread).

    A table without ``attrs["time_unit"]`` (e.g. built by hand) is taken to be in the model's unit.
    """
    unit = table_time_unit(rfm, None)
    if unit is not None and unit != model_unit:
        raise DataValidationError(
            f"{what}: the RFM table is in time unit {unit!r} but the model was fitted in {model_unit!r}; recency and "
            f"T would be misread. Rebuild the table with time_unit={model_unit!r} (or refit the model on a "
            f"{unit!r} table)"
        )


def as_duration(t: Any, time_unit: str, name: str = "t") -> float:
    """A duration in ``time_unit`` from a number (already in ``time_unit``) or a string such as ``"52W"``."""
    try:
        return parse_horizon(t.item() if isinstance(t, np.generic) else t, time_unit)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name}: {exc}") from None


def unique_rows(*columns: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Distinct rows of the given columns: ``(codes, uniques, counts)`` with ``row i == uniques[:, codes[i]]``."""
    keys = pd.MultiIndex.from_arrays([np.asarray(c) for c in columns])
    codes, uniq = pd.factorize(keys)
    uniques = [np.asarray(uniq.get_level_values(i), dtype="float64") for i in range(len(columns))]
    return codes, uniques, np.bincount(codes, minlength=len(uniq)).astype("float64")


# ----------------------------------------------------------------------------------------------------------------
# fitting


def fit_with_retries(
    fit_once: Callable[[float, np.ndarray | None], Any],
    starts: Sequence[np.ndarray | None],
    penalizer: float,
    *,
    model: str,
) -> tuple[Any, dict[str, Any]]:
    """Run a lifetimes fit, retrying from other starting points and then with small penalizers.

    ``fit_once(penalizer, initial_params)`` returns a fitted lifetimes fitter or raises. Attempts: every start with
    the requested ``penalizer``, then every start with each of :data:`RETRY_PENALIZERS` larger than it. A fit counts
    when lifetimes reports success and the parameters are finite and positive. Returns the fitter and metadata
    (``penalizer`` actually used, ``start``, ``attempts``); warns with :class:`ConvergenceWarning` when a penalizer
    had to be added; raises :class:`~clvforecast.exceptions.ConvergenceError` when nothing works.
    """
    LifetimesConvergenceError = import_lifetimes().utils.ConvergenceError

    penalizers = [float(penalizer)] + [p for p in RETRY_PENALIZERS if p > penalizer]
    attempts, last_error = 0, ""
    for pen in penalizers:
        for k, x0 in enumerate(starts):
            attempts += 1
            try:
                # lifetimes prints the optimizer output on failure and resets warning filters: contain both.
                with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), \
                        np.errstate(all="ignore"):
                    warnings.simplefilter("ignore")
                    fitter = fit_once(pen, x0)
            except (LifetimesConvergenceError, np.linalg.LinAlgError, FloatingPointError, OverflowError) as exc:
                last_error = str(exc).strip() or type(exc).__name__
                continue
            values = np.asarray(fitter.params_, dtype="float64")
            if not (np.all(np.isfinite(values)) and np.all(values > 0)):
                last_error = f"non-finite parameters {values}"
                continue
            info = {"penalizer": pen, "start": k, "attempts": attempts, "converged": True}
            if pen != penalizer:
                warnings.warn(
                    f"{model}: the likelihood maximisation did not converge from {len(starts)} starting points "
                    f"without a penalty; it converged with penalizer={pen:g} (an L2 penalty on the parameters), "
                    "which shrinks the estimates slightly. The value is in fit_info_['penalizer']; check the data "
                    "(enough repeat buyers, a long enough calibration period) before relying on the estimates.",
                    ConvergenceWarning,
                    stacklevel=3,
                )
            return fitter, info
    raise ConvergenceError(
        f"{model}: the likelihood maximisation did not converge after {attempts} attempts ({len(starts)} starting "
        f"points, penalizers {', '.join(f'{p:g}' for p in penalizers)}); last error: {last_error}. Try a larger "
        "penalizer (e.g. penalizer=0.1), a longer calibration period or more customers, and check that the table "
        "has repeat buyers with varied histories."
    )


def numerical_hessian(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Central-difference Hessian of a scalar function ``f`` at ``x`` (used on log-parameters, so ``h`` is relative)."""
    n = len(x)
    H = np.empty((n, n))
    E = np.eye(n) * h
    f0 = f(x)
    for i in range(n):
        H[i, i] = (f(x + 2 * E[i]) - 2 * f0 + f(x - 2 * E[i])) / (4 * h * h)
        for j in range(i + 1, n):
            H[i, j] = H[j, i] = (
                f(x + E[i] + E[j]) - f(x + E[i] - E[j]) - f(x - E[i] + E[j]) + f(x - E[i] - E[j])
            ) / (4 * h * h)
    return H


def covariance_from_loglik(loglik: Callable[[np.ndarray], float], params: np.ndarray, names: Sequence[str],
                           model: str) -> pd.DataFrame:
    """Asymptotic covariance of the estimates: inverse observed information, in the parameters' original units.

    The Hessian of the *total* negative log-likelihood is taken numerically with respect to the log-parameters
    (well conditioned) and transformed with the delta method, ``Cov(theta) = D H^-1 D`` with ``D = diag(theta)``;
    at the optimum this equals the inverse Hessian in the original parameters. When the Hessian is not positive
    definite the matrix is NaN and a :class:`ConvergenceWarning` says that the parameters are weakly identified.
    """
    logp = np.log(params)
    with np.errstate(all="ignore"):
        H = numerical_hessian(lambda lp: -loglik(np.exp(lp)), logp)
    try:
        np.linalg.cholesky(H)
        cov_log = np.linalg.inv(H)
        cov = cov_log * np.outer(params, params)
        cov = (cov + cov.T) / 2
    except np.linalg.LinAlgError:
        cov = np.full((len(params), len(params)), np.nan)
        warnings.warn(
            f"{model}: the Hessian of the log-likelihood is not positive definite at the estimates, so standard "
            "errors are not available (variance_matrix_ and summary['se'] are NaN); the parameters are weakly "
            "identified by this data",
            ConvergenceWarning,
            stacklevel=3,
        )
    return pd.DataFrame(cov, index=list(names), columns=list(names))


# ----------------------------------------------------------------------------------------------------------------
# estimator base class


def _json_float(v: float) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


class FittedModel:
    """Base class of the models: settings in ``__init__``, fitted state in attributes ending in ``_``.

    Subclasses define ``PARAM_NAMES`` and implement ``fit``; this class provides ``summary``, ``save`` and the
    not-fitted check.
    """

    PARAM_NAMES: ClassVar[tuple[str, ...]] = ()
    _REGISTRY: ClassVar[dict[str, type[FittedModel]]] = {}

    params_: pd.Series
    variance_matrix_: pd.DataFrame
    log_likelihood_: float
    n_customers_: int
    time_unit_: str
    penalizer_: float
    fit_info_: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        FittedModel._REGISTRY[cls.__name__] = cls

    def __init__(self, penalizer: float = 0.0) -> None:
        self.penalizer = penalizer

    def __repr__(self) -> str:
        return f"{type(self).__name__}(penalizer={self.penalizer!r})"

    def _check_penalizer(self) -> float:
        pen = self.penalizer
        if isinstance(pen, bool) or not isinstance(pen, (int, float)) or not math.isfinite(pen) or pen < 0:
            raise ValueError(f"penalizer must be a finite number >= 0; got {pen!r}")
        return float(pen)

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call .fit(rfm) with an RFM table first "
                "(or load a saved model with clvforecast.load_model(path))"
            )

    def _param_values(self) -> tuple[float, ...]:
        self._check_fitted()
        return tuple(float(self.params_[n]) for n in self.PARAM_NAMES)

    @property
    def summary(self) -> pd.DataFrame:
        """Estimates with standard errors and Wald 95% bounds: columns ``coef``, ``se``, ``lower``, ``upper``.

        ``se`` is the square root of the diagonal of ``variance_matrix_`` (inverse observed information of the
        unpenalised log-likelihood, in the parameters' original units); ``lower``/``upper`` are
        ``coef -/+ 1.96 se``.
        """
        self._check_fitted()
        se = np.sqrt(np.diag(self.variance_matrix_.to_numpy()))
        coef = self.params_.to_numpy()
        return pd.DataFrame(
            {"coef": coef, "se": se, "lower": coef - Z_95 * se, "upper": coef + Z_95 * se},
            index=pd.Index(self.PARAM_NAMES, name="parameter"),
        )

    # -- persistence ---------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the fitted model, as JSON-compatible values (what ``save`` writes)."""
        self._check_fitted()
        from .. import __version__

        lifetimes_version = getattr(import_lifetimes(), "__version__", None)
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "model": type(self).__name__,
            "clvforecast_version": __version__,
            "lifetimes_version": lifetimes_version,
            "settings": {"penalizer": self.penalizer},
            "params": {n: float(self.params_[n]) for n in self.PARAM_NAMES},
            "variance_matrix": [[_json_float(v) for v in row] for row in self.variance_matrix_.to_numpy()],
            "log_likelihood": _json_float(self.log_likelihood_),
            "n_customers": int(self.n_customers_),
            "time_unit": self.time_unit_,
            "penalizer": float(self.penalizer_),
            "fit_info": self.fit_info_,
        }

    def save(self, path: str | Path) -> Path:
        """Write the fitted model to ``path`` as JSON (never pickle); read it back with :func:`load_model`.

        The file holds the parameters, their covariance matrix, the time unit, the penalizer used, the number of
        customers, the log-likelihood, fit metadata and the library versions. Returns the path.
        """
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False), encoding="utf-8")
        return path

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> FittedModel:
        model = cls(**d.get("settings", {}))
        names = list(cls.PARAM_NAMES)
        model.params_ = pd.Series([float(d["params"][n]) for n in names], index=names, name="coef")
        cov = np.array([[np.nan if v is None else v for v in row] for row in d["variance_matrix"]], dtype="float64")
        model.variance_matrix_ = pd.DataFrame(cov, index=names, columns=names)
        ll = d.get("log_likelihood")
        model.log_likelihood_ = float("nan") if ll is None else float(ll)
        model.n_customers_ = int(d["n_customers"])
        model.time_unit_ = check_time_unit(d["time_unit"])
        model.penalizer_ = float(d["penalizer"])
        model.fit_info_ = dict(d.get("fit_info", {}))
        return model


def load_model(path: str | Path) -> FittedModel:
    """Read a model written by ``model.save(path)`` (JSON) and return a fitted :class:`BetaGeo` or :class:`GammaGamma`.

    Predictions of the loaded model are identical to those of the saved one.
    """
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not a clvforecast model file (not valid JSON: {exc})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT_NAME:
        raise ValueError(f"{path} is not a clvforecast model file (written by model.save(path))")
    if int(d.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(
            f"{path} was written in model format {d['format_version']} by clvforecast "
            f"{d.get('clvforecast_version')}; this version reads format {FORMAT_VERSION}: upgrade clvforecast"
        )
    cls = FittedModel._REGISTRY.get(d.get("model", ""))
    if cls is None:
        raise ValueError(f"{path}: unknown model type {d.get('model')!r}; known: {', '.join(FittedModel._REGISTRY)}")
    try:
        return cls._from_dict(d)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: the {d['model']} model file is incomplete or corrupt ({exc!r})") from None
