"""Shared machinery of the models: input validation, unique-row compression, fitting with retries, standard
errors, summaries and JSON persistence.

This package is the only place in clvforecast that imports ``lifetimes``: estimation is delegated to its
fitters, everything else (log-likelihoods in the published form, covariance matrices, predictions) is computed
here, so the engine can be replaced in one place.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..exceptions import (
    ConvergenceError,
    ConvergenceWarning,
    DataQualityWarning,
    DataValidationError,
    NotFittedError,
)
from ..units import check_time_unit, parse_horizon

FORMAT_NAME = "clvforecast.model"
FORMAT_VERSION = 1
Z_95 = 1.959963984540054  # two-sided 95% normal quantile

# Penalizers tried, in order, when lifetimes does not converge from any starting point without one (lifetimes'
# L2 penalty: coef * sum(params ** 2), added to the *mean* negative log-likelihood on its rescaled time axis).
RETRY_PENALIZERS: tuple[float, ...] = (1e-4, 1e-3, 1e-2)

# Tables with at least this many distinct rows are fitted in two stages (see subsample_start).
WARM_START_MIN_ROWS = 50_000


def import_lifetimes() -> Any:
    """Import lifetimes, hiding the warnings it triggers at import time with recent pandas."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import lifetimes
        import lifetimes.utils  # noqa: F401
    return lifetimes


# ----------------------------------------------------------------------------------------------------------
# validation


def _examples(index: pd.Index, mask: np.ndarray, values: dict[str, np.ndarray] | None = None,
              k: int = 3) -> str:
    """'customer 17 (recency 40.1, T 39.0), ...' for the first ``k`` rows where ``mask`` holds."""
    pos = np.flatnonzero(mask)[:k]
    parts = []
    for i in pos:
        detail = ", ".join(f"{name} {vals[i]!r}" if not isinstance(vals[i], float) else f"{name} {vals[i]:g}"
                           for name, vals in (values or {}).items())
        cid = index[i].item() if isinstance(index[i], np.generic) else index[i]
        parts.append(f"customer {cid!r}" + (f" ({detail})" if detail else ""))
    return ", ".join(parts)


def validate_rfm(rfm: Any, columns: Sequence[str], *, what: str) -> pd.DataFrame:
    """Check an RFM table and return a float64 copy of ``columns`` indexed like ``rfm``.

    Checks: a DataFrame, not empty, the columns present, unique customer ids, finite numbers, integer
    ``frequency >= 0``, ``0 <= recency <= T`` and ``recency == 0`` when ``frequency == 0`` (those that apply
    to the requested columns). A ``customer_id`` column is used as the index when the index is a plain range.
    Raises :class:`~clvforecast.exceptions.DataValidationError` naming the column, the number of rows, up to
    three examples and the fix. The input is never modified.
    """
    if not isinstance(rfm, pd.DataFrame):
        raise TypeError(f"{what} needs an RFM table (a pandas DataFrame); got {type(rfm).__name__}")
    if "customer_id" in rfm.columns and isinstance(rfm.index, pd.RangeIndex):
        rfm = rfm.set_index("customer_id")
    missing = [c for c in columns if c not in rfm.columns]
    if missing:
        raise DataValidationError(
            f"{what}: the RFM table has no column(s) {', '.join(repr(c) for c in missing)} (it has "
            f"{', '.join(repr(c) for c in rfm.columns[:8])}{', ...' if len(rfm.columns) > 8 else ''}); "
            "build it with clvforecast.rfm_summary(...) or clvforecast.calibration_holdout(...), or rename "
            "the columns"
        )
    if len(rfm) == 0:
        raise DataValidationError(
            f"{what}: the RFM table is empty (0 customers); there is nothing to fit or score"
        )
    index = rfm.index
    if not index.is_unique:
        dup = index.duplicated(keep=False)
        n_dup = int(index.duplicated().sum())
        raise DataValidationError(
            f"{what}: customer ids must be unique; {n_dup} rows repeat an id, e.g. "
            f"{', '.join(repr(v) for v in pd.unique(index[dup])[:3].tolist())}; build the table with one row "
            "per customer (clvforecast.rfm_summary does)"
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
                f"{what}: column 'frequency' must hold whole numbers >= 0 (repeat transactions); "
                f"{int(bad.sum())} rows do not, e.g. {_examples(index, bad, {'frequency': f})}"
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
                    f"{_examples(index, bad, {'frequency': f, 'recency': rec, 'T': T})}; recency and T are "
                    "measured from the first purchase, in the table's time unit: rebuild the table with "
                    "clvforecast.rfm_summary"
                )
    return out


def table_time_unit(rfm: pd.DataFrame, default: str = "D") -> str:
    """The table's ``attrs["time_unit"]`` (canonical code), or ``default`` when the table carries none."""
    unit = getattr(rfm, "attrs", {}).get("time_unit")
    return check_time_unit(unit) if unit else default


def fit_time_unit(rfm: pd.DataFrame, time_unit: str | None, what: str, *, warn: bool = True) -> str:
    """The unit a model is fitted in: ``time_unit`` if given (it must agree with the table's attrs), else the
    table's ``attrs["time_unit"]``, else days, with a :class:`DataQualityWarning` (when ``warn``): a weekly table
    that lost its attrs (read back from CSV, say) would otherwise be misread as days without a word."""
    stored = getattr(rfm, "attrs", {}).get("time_unit")
    if time_unit is not None:
        unit = check_time_unit(time_unit)
        if stored and check_time_unit(stored) != unit:
            raise DataValidationError(
                f"{what}: time_unit={unit!r} but the RFM table says it is in {stored!r} (attrs['time_unit'])"
            )
        return unit
    if stored:
        return check_time_unit(stored)
    if warn:
        warnings.warn(
            f"{what}: the RFM table does not say its time unit (attrs['time_unit'] is missing); recency and T "
            "are taken to be in days. Pass time_unit='W' (or 'D', 'M', 'Y') to fit, or build the table with "
            "rfm_summary(..., time_unit=...)",
            DataQualityWarning,
            stacklevel=3,
        )
    return "D"


def check_same_unit(rfm: pd.DataFrame, model_unit: str, what: str) -> None:
    """Raise when the table says it is in another time unit than the model (recency and T would be misread).

    A table without ``attrs["time_unit"]`` (e.g. built by hand) is taken to be in the model's unit.
    """
    unit = table_time_unit(rfm, model_unit)
    if unit != model_unit:
        raise DataValidationError(
            f"{what}: the RFM table is in time unit {unit!r} but the model was fitted in {model_unit!r}; "
            f"recency and T would be misread. Rebuild the table with time_unit={model_unit!r} (or refit the "
            f"model on a {unit!r} table)"
        )


def as_duration(t: Any, time_unit: str, name: str = "t") -> float:
    """A duration in ``time_unit`` from a number (already in ``time_unit``) or a string such as ``"52W"``."""
    try:
        return parse_horizon(t.item() if isinstance(t, np.generic) else t, time_unit)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name}: {exc}") from None


def unique_rows(*columns: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Distinct rows of ``columns``: ``(codes, uniques, counts)``, row i being ``[u[codes[i]] ...]``.

    Each column is factorised by hashing, the codes are combined into one integer key and that is factorised
    again (linear time; about 0.1 s for a million rows).
    """
    codes, levels = zip(*(pd.factorize(np.asarray(c)) for c in columns), strict=True)
    sizes = [len(u) for u in levels]
    if math.prod(sizes) < 2**62:
        key = np.zeros(len(codes[0]), dtype="int64")
        for code, size in zip(codes, sizes, strict=True):
            key = key * size + code
        row_codes, first = pd.factorize(key)
        # decode the distinct keys back into one code per column
        per_column, rest = [], np.asarray(first, dtype="int64")
        for size in reversed(sizes):
            per_column.append(rest % size)
            rest = rest // size
        per_column.reverse()
    else:  # pragma: no cover - needs more than 2**62 combinations of distinct values
        row_codes, uniq = pd.factorize(pd.MultiIndex.from_arrays(list(codes)))
        per_column = [np.asarray(uniq.get_level_values(i)) for i in range(len(codes))]
    uniques = [np.asarray(levels[i], dtype="float64")[per_column[i]] for i in range(len(columns))]
    return row_codes, uniques, np.bincount(row_codes, minlength=len(uniques[0])).astype("float64")


# ----------------------------------------------------------------------------------------------------------
# fitting


@contextlib.contextmanager
def _quiet_engine() -> Iterator[None]:
    """lifetimes prints the optimizer output on failure and resets warning filters: contain both."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def _engine_errors() -> tuple[type[BaseException], ...]:
    return (import_lifetimes().utils.ConvergenceError, np.linalg.LinAlgError, FloatingPointError,
            OverflowError)


def subsample_start(fit_rows: Callable[[np.ndarray], Any], n_rows: int,
                    to_initial_params: Callable[[Any], np.ndarray]) -> list[dict[str, Any]]:
    """A warm start for large tables: ``[{"initial_params": ..., "hess_inv0": ...}]``, or ``[]``.

    With :data:`WARM_START_MIN_ROWS` distinct rows or more, ``fit_rows(mask)`` fits the model on a random
    (seeded) 5% of the distinct rows (at least 10,000), with their counts as weights: an unbiased estimate of
    the full log-likelihood up to a factor. Its estimates and the inverse of its Hessian then start the full
    fit, which converges in a few quasi-Newton iterations instead of some 25 (the maximum reached is the
    same, within the optimizer's tolerance). Any failure of the small fit just means no warm start.
    """
    if n_rows < WARM_START_MIN_ROWS:
        return []
    mask = np.random.default_rng(0).random(n_rows) < max(0.05, 10_000 / n_rows)
    try:
        with _quiet_engine():
            fitter = fit_rows(mask)
            H = (fitter._hessian_ + fitter._hessian_.T) / 2
            np.linalg.cholesky(H)
            H_inv = np.linalg.inv(H)
            x0 = np.asarray(to_initial_params(fitter), dtype="float64")
    except _engine_errors():
        return []
    if not (np.all(np.isfinite(x0)) and np.all(np.isfinite(H_inv))):
        return []
    return [{"initial_params": x0, "hess_inv0": (H_inv + H_inv.T) / 2}]


def fit_with_retries(
    fit_once: Callable[[float, dict[str, Any]], Any],
    starts: Sequence[dict[str, Any]],
    penalizer: float,
    *,
    model: str,
) -> tuple[Any, dict[str, Any]]:
    """Run a lifetimes fit, retrying from other starting points and then with small penalizers.

    ``fit_once(penalizer, start)`` returns a fitted lifetimes fitter or raises; ``start`` holds keyword
    arguments for the lifetimes ``fit`` (``initial_params``, optionally ``hess_inv0``; ``{}`` for lifetimes'
    default). Attempts: every start with the requested ``penalizer``, then every start with each of
    :data:`RETRY_PENALIZERS` larger than it. A fit counts when lifetimes reports success and the parameters
    are finite and positive. Returns the fitter and metadata (``penalizer`` actually used, ``start``,
    ``attempts``); warns with :class:`ConvergenceWarning` when a penalizer had to be added; raises
    :class:`~clvforecast.exceptions.ConvergenceError` when nothing works.
    """
    penalizers = [float(penalizer)] + [p for p in RETRY_PENALIZERS if p > penalizer]
    attempts, last_error = 0, ""
    for pen in penalizers:
        for k, start in enumerate(starts):
            attempts += 1
            try:
                with _quiet_engine():
                    fitter = fit_once(pen, start)
            except _engine_errors() as exc:
                last_error = str(exc).strip() or type(exc).__name__
                continue
            values = np.asarray(fitter.params_, dtype="float64")
            if not (np.all(np.isfinite(values)) and np.all(values > 0)):
                last_error = f"non-finite parameters {values}"
                continue
            info = {"penalizer": pen, "start": k, "attempts": attempts, "converged": True}
            if pen != penalizer:
                warnings.warn(
                    f"{model}: the likelihood maximisation did not converge from {len(starts)} starting "
                    f"points with penalizer={penalizer:g}; it converged with penalizer={pen:g} (an L2 "
                    "penalty on the parameters), which shrinks the estimates slightly. The value is in "
                    "penalizer_ and fit_info_['penalizer']; check the data (enough repeat buyers, a long "
                    "enough calibration period) before relying on the estimates.",
                    ConvergenceWarning,
                    stacklevel=3,
                )
            return fitter, info
    raise ConvergenceError(
        f"{model}: the likelihood maximisation did not converge after {attempts} attempts ({len(starts)} "
        f"starting points, penalizers {', '.join(f'{p:g}' for p in penalizers)}); last error: {last_error}. "
        "Try a larger penalizer (e.g. penalizer=0.1), a longer calibration period or more customers, and "
        "check that the table has repeat buyers with varied histories."
    )


def covariance_from_engine(hessian: np.ndarray, scaled_params: np.ndarray, params: np.ndarray,
                           n: float, penalizer: float, names: Sequence[str], model: str) -> pd.DataFrame:
    """Asymptotic covariance of the estimates (inverse observed information) in the parameters' original
    units.

    lifetimes fits log-parameters ``phi`` (on its rescaled time axis for BG/NBD) by minimising the *mean*
    penalised negative log-likelihood and returns its exact Hessian (autograd). The log-likelihood differs
    from the paper's only by a constant on that axis and ``d phi = d log(theta)`` for every parameter, so
    after removing the penalty's Hessian ``diag(4 penalizer exp(2 phi))`` and multiplying by the number of
    customers ``n``, ``Cov(log theta) = H^-1`` and the delta method gives ``Cov(theta) = D H^-1 D`` with ``D =
    diag(theta)`` (equal, at the optimum, to the inverse Hessian in the original parameters). lifetimes' own
    ``variance_matrix_`` multiplies ``H^-1`` by ``theta_j^2`` column-wise instead, which gets the variances
    right but not the covariances (its matrix is not even symmetric).

    When the Hessian is not positive definite the matrix is NaN and a :class:`ConvergenceWarning` says that
    the parameters are weakly identified.
    """
    H = n * (np.asarray(hessian, dtype="float64") - np.diag(4.0 * penalizer * np.asarray(scaled_params) ** 2))
    H = (H + H.T) / 2
    try:
        np.linalg.cholesky(H)
        cov = np.linalg.inv(H) * np.outer(params, params)
        cov = (cov + cov.T) / 2
    except np.linalg.LinAlgError:
        cov = np.full((len(params), len(params)), np.nan)
        warnings.warn(
            f"{model}: the Hessian of the log-likelihood is not positive definite at the estimates, so "
            "standard errors are not available (variance_matrix_ and summary['se'] are NaN); the "
            "parameters are weakly identified by this data",
            ConvergenceWarning,
            stacklevel=3,
        )
    return pd.DataFrame(cov, index=list(names), columns=list(names))


# ----------------------------------------------------------------------------------------------------------
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

    # -- persistence ----------------------------------------------------------------------------------------

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

        The file holds the parameters, their covariance matrix, the time unit, the penalizer used, the number
        of customers, the log-likelihood, fit metadata and the library versions. Returns the path.
        """
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False), encoding="utf-8")
        return path

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> FittedModel:
        model = cls(**d.get("settings", {}))
        names = list(cls.PARAM_NAMES)
        model.params_ = pd.Series([float(d["params"][n]) for n in names], index=names, name="coef")
        cov = np.array([[np.nan if v is None else v for v in row] for row in d["variance_matrix"]],
                       dtype="float64")
        model.variance_matrix_ = pd.DataFrame(cov, index=names, columns=names)
        ll = d.get("log_likelihood")
        model.log_likelihood_ = float("nan") if ll is None else float(ll)
        model.n_customers_ = int(d["n_customers"])
        model.time_unit_ = check_time_unit(d["time_unit"])
        model.penalizer_ = float(d["penalizer"])
        model.fit_info_ = dict(d.get("fit_info", {}))
        return model


def load_model(path: str | Path) -> FittedModel:
    """Read a model written by ``model.save(path)`` (JSON): a fitted :class:`BetaGeo` or :class:`GammaGamma`.

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
        raise ValueError(
            f"{path}: unknown model type {d.get('model')!r}; known: {', '.join(FittedModel._REGISTRY)}"
        )
    try:
        return cls._from_dict(d)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: the {d['model']} model file is incomplete or corrupt ({exc!r})") from None
