"""Shared machinery of the models: input validation, unique-history compression, the estimator base classes
(fitting through :mod:`._engine`, diagnostics, summaries, parameter draws), JSON persistence with a validating
:func:`load_model`, and the bridge to lifetimes.

Estimation is clvforecast's own (closed-form log-likelihoods and analytic gradients, :mod:`._engine`);
``lifetimes`` is only imported for :meth:`FittedModel.to_lifetimes` / ``from_lifetimes`` and by the tests,
which use it as an independent oracle.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import numbers
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from ..exceptions import (
    ConvergenceWarning,
    DataQualityWarning,
    DataValidationError,
    ModelAssumptionWarning,
    NotFittedError,
)
from ..units import DAYS_PER_UNIT, check_time_unit, parse_horizon
from . import _engine

FORMAT_NAME = "clvforecast.model"
FORMAT_VERSION = 2  # 2: diagnostics and log-scale intervals (version 1 files are still read)
Z_95 = 1.959963984540054  # two-sided 95% normal quantile
WARM_START_MIN_ROWS = _engine.WARM_START_MIN_ROWS


class ModelFileError(ValueError):
    """A model file cannot be used: not a clvforecast model file, or a value in it breaks a rule (named)."""


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
    # the same data without attrs: pandas deep-copies attrs (a ledger, extreme orders) on every column access
    rfm = pd.DataFrame(rfm, copy=False)
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
    cols: dict[str, np.ndarray] = {}
    for c in columns:
        col = rfm[c]
        try:
            vals = np.array(col, dtype="float64")  # a copy: callers may modify it
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
        cols[c] = vals
    out = pd.DataFrame(cols, index=index, copy=False)  # no consolidation copy: one block per column
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


def check_same_unit(rfm: pd.DataFrame, model_unit: str, what: str, *, warn: bool = False) -> None:
    """Raise when the table says it is in another time unit than the model (recency and T would be misread).

    A table without ``attrs["time_unit"]`` (e.g. built by hand) is taken to be in the model's unit, with a
    :class:`DataQualityWarning` when ``warn`` (as the models' prediction methods do).
    """
    if warn and not getattr(rfm, "attrs", {}).get("time_unit"):
        warnings.warn(
            f"{what}: the table does not say its time unit (attrs['time_unit'] is missing); it is taken to be "
            f"in the model's unit {model_unit!r}. Build the table with time_unit={model_unit!r} (or set "
            f"table.attrs['time_unit'] = {model_unit!r}) to silence this",
            DataQualityWarning,
            stacklevel=3,
        )
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


def unique_rows(*columns: np.ndarray, return_levels: bool = False) -> Any:
    """Distinct rows of ``columns``: ``(codes, uniques, counts)``, row i being ``[u[codes[i]] ...]``.

    Each column is factorised by hashing, the codes are combined into one integer key and that is factorised
    again (linear time; about 0.1 s for a million rows). With ``return_levels`` a fourth element gives, per
    column, ``(distinct values, code of each distinct row)`` (what :class:`HistoryData` caches as levels).
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
    values = [np.asarray(levels[i], dtype="float64") for i in range(len(columns))]
    uniques = [values[i][per_column[i]] for i in range(len(columns))]
    counts = np.bincount(row_codes, minlength=len(uniques[0])).astype("float64")
    if return_levels:
        return row_codes, uniques, counts, [(values[i], np.asarray(per_column[i])) for i in range(len(columns))]
    return row_codes, uniques, counts


def table_weights(rfm: pd.DataFrame, weights: Any, n: int, what: str) -> np.ndarray | None:
    """User weights (customers per row) as a float array, or None: an array-like of ``n`` finite numbers >= 0,
    or the name of a column of ``rfm``."""
    if weights is None:
        return None
    if isinstance(weights, str):
        if weights not in rfm.columns:
            raise DataValidationError(f"{what}: weights={weights!r} is not a column of the table")
        weights = rfm[weights]
    try:
        w = np.asarray(weights, dtype="float64").reshape(-1)
    except (TypeError, ValueError) as exc:
        raise DataValidationError(f"{what}: weights must be numbers (customers per row): {exc}") from None
    if len(w) != n:
        raise DataValidationError(f"{what}: weights has {len(w)} values but the table has {n} rows")
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        raise DataValidationError(
            f"{what}: weights must be finite numbers >= 0 (customers per row); {int(bad.sum())} are not, e.g. "
            f"{w[bad][:3].tolist()}"
        )
    if w.sum() <= 0:
        raise DataValidationError(f"{what}: the weights add up to 0: there is no customer to fit")
    return w


# ----------------------------------------------------------------------------------------------------------
# estimator base classes


def _json_float(v: float) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _json_safe(obj: Any) -> Any:
    """Plain JSON values (model files, diagnostics, the report's summary): numpy scalars to Python, NaN, inf and
    missing values to None, dates to ISO strings, tuples to lists."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _json_float(float(obj))
    if isinstance(obj, (pd.Timestamp, dt.date)):
        return obj.date().isoformat() if isinstance(obj, pd.Timestamp) else obj.isoformat()
    if obj is pd.NaT or (obj is not None and not isinstance(obj, str) and pd.api.types.is_scalar(obj)
                         and pd.isna(obj)):
        return None
    return obj


def _one_blas_thread() -> Any:
    """A context in which BLAS runs on one thread (threadpoolctl; nothing when it is not installed)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


class FittedModel:
    """Base class of every model: settings in ``__init__``, fitted state in attributes ending in ``_``.

    Subclasses define ``PARAM_NAMES``, ``NAME``, ``LABEL``, the columns they read and their log-likelihood
    (:meth:`_ll_rows`). This class provides the fit through the engine, ``diagnostics_``, ``summary``,
    ``sample_params``, ``save``/:func:`load_model` and the lifetimes bridge.

    Fitted attributes
    -----------------
    params_ : Series of the estimates (``PARAM_NAMES`` order).
    log_likelihood_ : total log-likelihood at the estimates (the published form).
    log_covariance_ : DataFrame, asymptotic covariance of ``log(theta)`` (inverse observed information in
        log-parameters); rows/columns of parameters that are not identified are NaN, and the identified block is
        then the covariance with those held at their values.
    variance_matrix_ : DataFrame, the same in the parameters' units (delta method: ``theta_i theta_j
        log_cov_ij``).
    diagnostics_ : dict (JSON-able): ``converged`` (bool), ``gradient_norm`` (Euclidean norm of the gradient of
        the total log-likelihood with respect to the log-parameters), ``hessian_condition`` (condition number of
        the observed information in log-parameters; None when it is not positive definite), ``at_bound`` (names of
        parameters at the optimizer's box 1e-10..1e10), ``identified`` (bool, all parameters identified),
        ``unidentified`` (names), ``positive_definite`` (bool), ``message`` (plain words; "" when all is well),
        ``n_evaluations``, ``n_starts_tried``, ``warm_start`` (bool).
    n_customers_ (customers, weights included), time_unit_, penalizer_, fit_info_ (dict: distinct histories,
    engine details).
    """

    PARAM_NAMES: ClassVar[tuple[str, ...]] = ()
    NAME: ClassVar[str] = ""
    LABEL: ClassVar[str] = ""
    LIFETIMES_FITTER: ClassVar[str] = ""
    _REGISTRY: ClassVar[dict[str, type[FittedModel]]] = {}

    params_: pd.Series
    variance_matrix_: pd.DataFrame
    log_likelihood_: float
    n_customers_: int
    time_unit_: str
    penalizer_: float
    fit_info_: dict[str, Any]
    diagnostics_: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.PARAM_NAMES:
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
    def log_covariance_(self) -> pd.DataFrame:
        """Asymptotic covariance of ``log(theta)`` (set by ``fit``; for a model assembled by hand from
        ``params_`` and ``variance_matrix_`` it is derived from those by the delta method)."""
        cov = self.__dict__.get("_log_covariance")
        if cov is None:
            theta = self.theta_
            names = list(self.PARAM_NAMES)
            vm = np.asarray(self.variance_matrix_, dtype="float64")
            cov = pd.DataFrame(vm / np.outer(theta, theta), index=names, columns=names)
        return cov

    @log_covariance_.setter
    def log_covariance_(self, value: pd.DataFrame) -> None:
        self.__dict__["_log_covariance"] = value

    @property
    def theta_(self) -> np.ndarray:
        """The estimates as a float array in ``PARAM_NAMES`` order (what the static closed forms take)."""
        return np.array(self._param_values(), dtype="float64")

    # -- the model's mathematics (subclasses) -------------------------------------------------------------------

    @classmethod
    def _ll_rows(cls, theta: np.ndarray, data: HistoryData, grad: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Log-likelihood of each row of ``data`` and (when ``grad``) its gradient, shape (rows, k)."""
        raise NotImplementedError

    @classmethod
    def _ll_sum(cls, theta: np.ndarray, data: HistoryData, w: np.ndarray) -> tuple[float, np.ndarray]:
        """Weighted total log-likelihood ``sum_i w_i ll_i`` and its gradient (what the optimizer uses; models
        may compute it faster than through per-row gradients)."""
        ll, G = cls._ll_rows(theta, data, True)
        assert G is not None
        return dot(w, ll), np.einsum("i,ij->j", w, G)

    @classmethod
    def _starts(cls, data: HistoryData, w: np.ndarray) -> list[np.ndarray]:
        """Starting points (parameters, not logs) for the optimizer, the most promising first."""
        raise NotImplementedError

    def _messages(self, theta: np.ndarray, unidentified: list[str]) -> list[str]:
        """Plain-words explanations of a degenerate fit (model-specific); [] when nothing specific applies."""
        return []

    # -- fitting ----------------------------------------------------------------------------------------------

    def _estimate(self, data: HistoryData, w: np.ndarray, *, what: str) -> None:
        """Maximise the weighted log-likelihood of ``data`` (distinct rows, weights ``w``) and set the fitted
        attributes ``params_``, ``log_likelihood_``, covariances, ``diagnostics_`` (and warn when needed).

        BLAS runs on one thread meanwhile: scipy's L-BFGS-B calls it on vectors of 4 numbers, and waking its
        threads costs about 6 ms a step on a busy machine (40 times the step itself); the likelihoods use no
        BLAS."""
        with _one_blas_thread():
            self._estimate_unlimited(data, w, what=what)

    def _estimate_unlimited(self, data: HistoryData, w: np.ndarray, *, what: str) -> None:
        pen = self._check_penalizer()
        W = float(w.sum())
        cls = type(self)

        def objective_on(d: HistoryData, ww: np.ndarray) -> _engine.Objective:
            WW = float(ww.sum())

            def fun(phi: np.ndarray) -> tuple[float, np.ndarray]:
                theta = np.exp(phi)
                total, gsum = cls._ll_sum(theta, d, ww)
                value = -total / WW + pen * float(np.sum(theta**2))
                grad = -gsum * theta / WW + 2 * pen * theta**2
                return value, grad

            return fun

        starts = [np.log(s) for s in cls._starts(data, w)]
        n_rows = len(w)
        warm = False
        H0 = None
        sub_evals = 0
        if n_rows >= WARM_START_MIN_ROWS:
            # a ladder of seeded subsamples of the distinct histories: the cold start (L-BFGS-B) on about 10,000
            # rows, Newton from there on 5% of the rows, then Newton on the full table from that optimum and
            # Hessian (each level needs a handful of evaluations of the next, larger one)
            rng = np.random.default_rng(0)
            mask = rng.random(n_rows) < max(0.05, 10_000 / n_rows)
            sub, w_sub = data.subset(mask), w[mask]
            sub_starts, H_sub = starts, None
            try:
                if len(w_sub) >= 3 * 10_000:
                    small = rng.random(len(w_sub)) < 10_000 / len(w_sub)
                    s_best, s_tried = _engine.minimize(objective_on(sub.subset(small), w_sub[small]), starts,
                                                       forward=True)
                    sub_evals += sum(o.n_evaluations for o in s_tried)
                    if np.all(np.linalg.eigvalsh(s_best.hessian) > 0):
                        sub_starts, H_sub = [s_best.phi, *starts], s_best.hessian
                sub_best, sub_tried = _engine.minimize(objective_on(sub, w_sub), sub_starts, H0=H_sub, forward=True)
                sub_evals += sum(o.n_evaluations for o in sub_tried)
                if np.all(np.linalg.eigvalsh(sub_best.hessian) > 0):
                    starts = [sub_best.phi, *starts]
                    H0 = sub_best.hessian
                    warm = True
            except FloatingPointError:
                pass
        fun = objective_on(data, w)
        try:
            best, tried = _engine.minimize(fun, starts, H0=H0)
        except FloatingPointError:
            raise DataValidationError(
                f"{what}: the log-likelihood is not finite at any starting point; check the table (recency and "
                "T in the stated time unit, frequencies that are whole numbers)"
            ) from None
        theta = np.exp(best.phi)
        # the total log-likelihood at the optimum, from the objective's value there (mean, penalty removed)
        loglik = -W * (float(best.value) - pen * float(np.sum(theta**2)))
        # observed information of the total log-likelihood in log-parameters (penalty removed)
        info = W * (best.hessian - np.diag(4 * pen * theta**2))
        grad_total = -W * (best.gradient - 2 * pen * theta**2)
        self._set_fit(theta, loglik, info, grad_total, converged=best.converged, extra={
            "n_evaluations": int(sum(o.n_evaluations for o in tried) + sub_evals),
            "n_starts_tried": len(tried),
            "warm_start": bool(warm and best.start == 0),
        }, notes=best.notes)
        self._warn(what)

    def _set_fit(self, theta: np.ndarray, loglik: float, info: np.ndarray, grad_total: np.ndarray, *,
                 converged: bool, extra: dict[str, Any] | None = None, notes: Sequence[str] = ()) -> None:
        names = list(self.PARAM_NAMES)
        a = _engine.diagnose(np.log(theta), info, names)
        self.params_ = pd.Series(theta, index=names, name="coef")
        self.log_likelihood_ = loglik
        self.log_covariance_ = pd.DataFrame(a.log_covariance, index=names, columns=names)
        self.variance_matrix_ = pd.DataFrame(a.log_covariance * np.outer(theta, theta), index=names,
                                             columns=names)
        unidentified = [n for n, ok in zip(names, a.identified, strict=True) if not ok]
        messages = self._messages(theta, unidentified)
        if unidentified and not messages:
            messages.append(
                f"the data do not pin down {', '.join(unidentified)}: the likelihood is flat in "
                f"{'its' if len(unidentified) == 1 else 'their'} direction, so {'it gets' if len(unidentified) == 1 else 'they get'} no "
                "standard error or interval and predictions rest on the value where the optimizer stopped; use "
                "more customers or a longer calibration period, or another model"
            )
        if not converged and not unidentified and not a.at_bound:
            messages.append(
                "the likelihood maximisation did not reach a point where a Newton step is negligible; treat the "
                "estimates with caution"
            )
        self.diagnostics_ = _json_safe({
            # a degenerate fit is never reported as simply converged
            "converged": bool(converged and a.positive_definite and not a.at_bound and not unidentified),
            "gradient_norm": float(np.linalg.norm(grad_total)),
            "hessian_condition": a.condition,
            "at_bound": a.at_bound,
            "identified": not unidentified,
            "unidentified": unidentified,
            "positive_definite": a.positive_definite,
            "message": "; ".join(messages),
            **(extra or {}),
            "notes": list(notes),
        })

    def _warn(self, what: str) -> None:
        d = self.diagnostics_
        if not d["identified"] or d["at_bound"]:
            warnings.warn(f"{type(self).__name__}: {d['message']}", ModelAssumptionWarning, stacklevel=4)
        elif not d["converged"]:
            warnings.warn(f"{type(self).__name__}: {d['message']}", ConvergenceWarning, stacklevel=4)

    # -- summaries and uncertainty -----------------------------------------------------------------------------

    @property
    def summary(self) -> pd.DataFrame:
        """Estimates with standard errors and 95% intervals: columns ``coef``, ``se``, ``lower``, ``upper``,
        ``identified``.

        Intervals are computed on the log scale (``coef * exp(-/+ 1.96 se_log)``, ``se_log`` from
        ``log_covariance_``), so they are never below zero; ``se`` is the delta-method standard error
        ``coef * se_log``. A parameter the data do not identify (``diagnostics_["unidentified"]``) has NaN
        ``se``, ``lower`` and ``upper`` and ``identified`` False: its ``coef`` is where the optimizer stopped,
        not an estimate. ``summary.attrs["message"]`` repeats ``diagnostics_["message"]``.
        """
        self._check_fitted()
        coef = self.params_.to_numpy()
        se_log = np.sqrt(np.clip(np.diag(self.log_covariance_.to_numpy()), 0, None))
        diagnostics = getattr(self, "diagnostics_", {})
        unidentified = set(diagnostics.get("unidentified", []))
        identified = np.array([n not in unidentified for n in self.PARAM_NAMES]) & np.isfinite(se_log)
        se_log = np.where(identified, se_log, np.nan)
        out = pd.DataFrame(
            {"coef": coef, "se": coef * se_log, "lower": coef * np.exp(-Z_95 * se_log),
             "upper": coef * np.exp(Z_95 * se_log), "identified": identified},
            index=pd.Index(self.PARAM_NAMES, name="parameter"),
        )
        out.attrs["message"] = diagnostics.get("message", "")
        return out

    def sample_params(self, n_draws: int, random_state: Any = None) -> np.ndarray:
        """``n_draws`` parameter vectors (rows, ``PARAM_NAMES`` order) from the estimator's asymptotic sampling
        distribution: ``log(theta) ~ Normal(log(theta_hat), log_covariance_)``, so every draw is positive.

        When some parameters are not identified a :class:`ModelAssumptionWarning` says so and they are held at
        their values while the identified ones are drawn from their conditional covariance.
        """
        self._check_fitted()
        if isinstance(n_draws, bool) or not isinstance(n_draws, (int, np.integer)) or n_draws < 1:
            raise ValueError(f"n_draws must be a whole number >= 1; got {n_draws!r}")
        rng = np.random.default_rng(random_state)
        phi = np.log(self.theta_)
        cov = self.log_covariance_.to_numpy()
        ok = np.isfinite(np.diag(cov))
        if not ok.all():
            held = [n for n, good in zip(self.PARAM_NAMES, ok, strict=True) if not good]
            rest = ("only the other parameters vary across draws (parameter uncertainty is understated)"
                    if ok.any() else "every draw is the point estimate: the draws carry no parameter uncertainty")
            warnings.warn(
                f"{type(self).__name__}.sample_params: {', '.join(held)} "
                f"{'is' if len(held) == 1 else 'are'} not identified by the data (no standard error) and held "
                f"at the fitted value; {rest}",
                ModelAssumptionWarning,
                stacklevel=2,
            )
        draws = np.tile(phi, (int(n_draws), 1))
        if ok.any():
            idx = np.flatnonzero(ok)
            draws[:, idx] = rng.multivariate_normal(phi[idx], cov[np.ix_(idx, idx)], size=int(n_draws),
                                                    method="eigh")
        return np.exp(draws)

    # -- persistence ------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the fitted model, as JSON-compatible values (what ``save`` writes)."""
        self._check_fitted()
        from .. import __version__

        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "model": type(self).__name__,
            "clvforecast_version": __version__,
            "lifetimes_version": _lifetimes_version(),
            "settings": {"penalizer": self.penalizer},
            "params": {n: float(self.params_[n]) for n in self.PARAM_NAMES},
            "variance_matrix": [[_json_float(v) for v in row] for row in self.variance_matrix_.to_numpy()],
            "log_covariance": [[_json_float(v) for v in row] for row in self.log_covariance_.to_numpy()],
            "log_likelihood": _json_float(self.log_likelihood_),
            "n_customers": int(self.n_customers_),
            "time_unit": self.time_unit_,
            "penalizer": float(self.penalizer_),
            "fit_info": _json_safe(self.fit_info_),
            "diagnostics": _json_safe(self.diagnostics_),
        }

    def save(self, path: str | Path) -> Path:
        """Write the fitted model to ``path`` as JSON (never pickle); read it back with :func:`load_model`.

        The file holds the parameters, their covariance matrix, the time unit, the penalizer, the number of
        customers, the log-likelihood, the diagnostics, fit metadata and the library version. Returns the path.
        """
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False), encoding="utf-8")
        return path

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> FittedModel:
        """Rebuild a model from :meth:`to_dict`'s output (no validation: :func:`load_model` validates files)."""
        model = cls(**d.get("settings", {}))
        names = list(cls.PARAM_NAMES)
        theta = np.array([float(d["params"][n]) for n in names], dtype="float64")
        model.params_ = pd.Series(theta, index=names, name="coef")
        cov = np.array([[np.nan if v is None else v for v in row] for row in d["variance_matrix"]],
                       dtype="float64")
        model.variance_matrix_ = pd.DataFrame(cov, index=names, columns=names)
        if isinstance(d.get("log_covariance"), list):  # format 1 files have none: the property derives it
            log_cov = np.array([[np.nan if v is None else v for v in row] for row in d["log_covariance"]],
                               dtype="float64")
            model.log_covariance_ = pd.DataFrame(log_cov, index=names, columns=names)
        ll = d.get("log_likelihood")
        model.log_likelihood_ = float("nan") if ll is None else float(ll)
        model.n_customers_ = int(d["n_customers"])
        model.time_unit_ = check_time_unit(d["time_unit"])
        model.penalizer_ = float(d["penalizer"])
        model.fit_info_ = dict(d.get("fit_info", {}))
        diag = d.get("diagnostics")
        if not isinstance(diag, dict):  # format 1: no diagnostics; identified where a variance is available
            missing = [n for n, v in zip(names, np.diag(cov), strict=True) if not np.isfinite(v)]
            diag = {"converged": not missing, "gradient_norm": None, "hessian_condition": None, "at_bound": [],
                    "identified": not missing, "unidentified": missing, "positive_definite": not missing,
                    "message": "" if not missing else "standard errors were not available in the saved file"}
        model.diagnostics_ = dict(diag)
        return model

    # -- lifetimes bridge -------------------------------------------------------------------------------------

    def to_lifetimes(self) -> Any:
        """The equivalent fitted lifetimes fitter (``params_`` set; its predictions equal this model's for
        tables in this model's time unit ``time_unit_``)."""
        self._check_fitted()
        lifetimes = import_lifetimes()
        fitter = getattr(lifetimes, self.LIFETIMES_FITTER)(penalizer_coef=float(self.penalizer_))
        fitter.params_ = pd.Series(self.theta_, index=list(self.PARAM_NAMES))
        if hasattr(fitter, "conditional_expected_number_of_purchases_up_to_time"):
            fitter.predict = fitter.conditional_expected_number_of_purchases_up_to_time
        return fitter

    @classmethod
    def from_lifetimes(cls, fitter: Any, *, time_unit: str | None = None) -> FittedModel:
        """A clvforecast model with the parameters of a fitted lifetimes fitter of the matching class.

        lifetimes records no time unit: pass the unit of the table the fitter was fitted on (``time_unit``);
        without it days are assumed, with a :class:`~clvforecast.exceptions.DataQualityWarning`. When the fitter
        still holds its data (``fitter.data``), the log-likelihood, covariance and diagnostics are computed on
        it at the fitter's parameters (no refit); otherwise they are unavailable (NaN) and ``diagnostics_``
        says so.
        """
        expected = getattr(import_lifetimes(), cls.LIFETIMES_FITTER)
        if not isinstance(fitter, expected):
            raise TypeError(f"{cls.__name__}.from_lifetimes needs a lifetimes {cls.LIFETIMES_FITTER}; got "
                            f"{type(fitter).__name__}")
        params = getattr(fitter, "params_", None)
        if params is None:
            raise ValueError(f"{cls.__name__}.from_lifetimes: the {cls.LIFETIMES_FITTER} is not fitted (no params_)")
        theta = np.array([float(params[n]) for n in cls.PARAM_NAMES], dtype="float64")
        bad = [n for n, v in zip(cls.PARAM_NAMES, theta, strict=True) if not (math.isfinite(v) and v > 0)]
        if bad:
            raise ValueError(f"{cls.__name__}.from_lifetimes: parameter(s) {', '.join(bad)} of the fitter are "
                             "not finite positive numbers")
        if time_unit is None:
            warnings.warn(
                f"{cls.__name__}.from_lifetimes: lifetimes does not record the time unit; the parameters are "
                "taken to be in days. Pass time_unit='W' (or 'D', 'M', 'Y'), the unit of the table the fitter "
                "was fitted on",
                DataQualityWarning,
                stacklevel=2,
            )
        model = cls(penalizer=float(getattr(fitter, "penalizer_coef", 0.0) or 0.0))
        model.time_unit_ = check_time_unit(time_unit) if time_unit is not None else "D"
        model.penalizer_ = model.penalizer
        model._from_fitter_data(theta, getattr(fitter, "data", None))
        return model

    def _from_fitter_data(self, theta: np.ndarray, data: Any) -> None:
        names = list(self.PARAM_NAMES)
        k = len(names)
        self.fit_info_ = {"source": f"lifetimes.{self.LIFETIMES_FITTER}"}
        prepared = self._lifetimes_data(data) if isinstance(data, pd.DataFrame) else None
        if prepared is None:
            self.n_customers_ = 0
            self._set_fit(theta, float("nan"), np.full((k, k), np.nan), np.full(k, np.nan), converged=False)
            self.diagnostics_["message"] = ("imported from lifetimes without its data: no log-likelihood, "
                                            "standard errors or diagnostics")
            return
        hd, w = prepared
        self.n_customers_ = int(round(float(w.sum())))
        cls = type(self)
        W = float(w.sum())

        def fun(phi: np.ndarray) -> tuple[float, np.ndarray]:
            t = np.exp(phi)
            ll, G = cls._ll_rows(t, hd, True)
            assert G is not None
            return -float(w @ ll) / W, -(w @ G) * t / W

        value, grad = fun(np.log(theta))
        H = _engine.fd_hessian(fun, np.log(theta))
        self._set_fit(theta, -value * W, W * H, -W * grad,
                      converged=bool(np.max(np.abs(np.linalg.lstsq(H, grad, rcond=None)[0])) < 1e-4))

    def _lifetimes_data(self, data: pd.DataFrame) -> tuple[HistoryData, np.ndarray] | None:
        return None


def _lifetimes_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("lifetimes")
    except metadata.PackageNotFoundError:  # pragma: no cover
        return None


def import_lifetimes() -> Any:
    """Import lifetimes, hiding the warnings it triggers at import time with recent pandas."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import lifetimes
        import lifetimes.utils  # noqa: F401
    return lifetimes


class HistoryData:
    """Rows of a model's data (distinct histories) as named float arrays, with cached level factorisations:
    ``levels(name)`` returns ``(values, inverse)`` so that a function of one column (a gamma function of the
    frequency, a log of T) is computed once per distinct value and gathered."""

    def __init__(self, levels: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
                 **columns: np.ndarray) -> None:
        arrays = np.broadcast_arrays(*(np.asarray(v, dtype="float64") for v in columns.values()))
        self.cols = {k: np.ravel(a) for k, a in zip(columns, arrays, strict=True)}
        self.shape = arrays[0].shape if arrays else ()
        self._levels: dict[str, tuple[np.ndarray, np.ndarray]] = dict(levels or {})
        self.cache: dict[Any, Any] = {}  # model-specific precomputations that depend only on the data

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]

    def __len__(self) -> int:
        return len(next(iter(self.cols.values())))

    def levels(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self._levels:
            codes, values = pd.factorize(self.cols[name])
            self._levels[name] = (np.asarray(values, dtype="float64"), codes)
        return self._levels[name]

    def subset(self, mask: np.ndarray) -> HistoryData:
        levels = {k: (vals, codes[mask]) for k, (vals, codes) in self._levels.items()}
        return HistoryData(levels=levels, **{k: v[mask] for k, v in self.cols.items()})


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """``a @ b`` for long 1-d arrays without BLAS: numpy's BLAS dot spawns threads, which on a busy machine
    costs up to ten times a single pass."""
    return float(np.einsum("i,i->", a, b))


def _gather(fn: Any, data: HistoryData, name: str) -> np.ndarray:
    """``fn(column)`` computed on the distinct values of the column and gathered back to the rows."""
    values, codes = data.levels(name)
    return np.asarray(fn(values))[codes]


class PurchaseModel(FittedModel):
    """Base class of the purchase models (BG/NBD, Pareto/NBD, MBG/NBD, BG/BB): one interface for all.

    Subclasses implement the closed forms as static methods on ``theta`` (1-d float array in ``PARAM_NAMES``
    order) and history arrays (broadcastable, in the model's time unit): ``_loglik``, ``_loglik_grad``,
    ``_p_alive``, ``_expected_if_alive``, ``_pmf``, ``_alive_pmf``; this class provides ``_expected``, ``fit``, the prediction
    methods and ``histories``.
    """

    HISTORY: ClassVar[tuple[str, str, str]] = ("frequency", "recency", "T")
    DISCRETE: ClassVar[bool] = False

    # -- static closed forms -----------------------------------------------------------------------------------

    @classmethod
    def _loglik(cls, theta: Any, x: Any, tx: Any, T: Any) -> np.ndarray:
        """Log-likelihood of each history (the published form, in the model's time unit)."""
        d = HistoryData(x=x, tx=tx, T=T)
        return cls._ll_rows(np.asarray(theta, dtype="float64"), d, False)[0].reshape(d.shape)

    @classmethod
    def _loglik_grad(cls, theta: Any, x: Any, tx: Any, T: Any) -> np.ndarray:
        """Gradient of :meth:`_loglik` with respect to ``theta``: shape (len(x), k)."""
        d = HistoryData(x=x, tx=tx, T=T)
        G = cls._ll_rows(np.asarray(theta, dtype="float64"), d, True)[1]
        assert G is not None
        return G

    @staticmethod
    def _p_alive(theta: Any, x: Any, tx: Any, T: Any) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def _expected_if_alive(theta: Any, t: Any, x: Any, tx: Any, T: Any) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def _pmf(theta: Any, t: float, n_max: int, x: Any, tx: Any, T: Any) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def _alive_pmf(theta: Any, t: float, n_max: int, x: Any, T: Any) -> np.ndarray:
        """P(X(t) = n | alive at T, x, T) for n = 0..n_max (rows: histories; it does not depend on t_x)."""
        raise NotImplementedError

    @classmethod
    def _p_alive_draws(cls, draws: np.ndarray, x: Any, tx: Any, T: Any) -> np.ndarray:
        """``_p_alive`` at each row of ``draws`` (parameter vectors): shape (len(draws), len(x)). Models whose
        P(alive) has work that depends on the histories only override this to do it once."""
        return np.array([cls._p_alive(d, x, tx, T) for d in np.asarray(draws, dtype="float64")])

    @classmethod
    def _expected(cls, theta: Any, t: Any, x: Any, tx: Any, T: Any) -> np.ndarray:
        """E[purchases in (T, T+t] | history] = P(alive) * E[purchases | alive]."""
        return cls._p_alive(theta, x, tx, T) * cls._expected_if_alive(theta, t, x, tx, T)

    # -- data --------------------------------------------------------------------------------------------------

    @classmethod
    def _validate(cls, rfm: Any, what: str) -> pd.DataFrame:
        return validate_rfm(rfm, cls.HISTORY, what=what)

    def histories(self, table: pd.DataFrame, what: str = "predict", *, warn: bool = False, unique: bool = True
                  ) -> tuple[pd.Index, np.ndarray, list[np.ndarray]]:
        """Validate ``table``, check its time unit against the model's and compress it to distinct histories:
        ``(index, codes, [x, tx, T])``, row i of the table being history ``codes[i]`` (``T`` is ``n_periods`` for
        BG/BB). With ``unique=False`` the rows are not compressed (``codes`` is ``0..n-1``): cheaper when the work
        per history is a closed form anyway. ``what`` names the caller in error messages. A table that does not record its unit
        (``attrs["time_unit"]``) is taken to be in the model's unit; with ``warn`` a
        :class:`~clvforecast.exceptions.DataQualityWarning` says so (the model's prediction methods warn, as
        ``fit`` does)."""
        self._check_fitted()
        data = self._validate(table, what)
        if warn and not getattr(table, "attrs", {}).get("time_unit"):
            warnings.warn(
                f"{what}: the table does not say its time unit (attrs['time_unit'] is missing); its "
                f"{self.HISTORY[1]} and {self.HISTORY[2]} are taken to be in the model's unit "
                f"{self.time_unit_!r}. Build the table with time_unit={self.time_unit_!r} (or set "
                f"table.attrs['time_unit'] = {self.time_unit_!r}) to silence this",
                DataQualityWarning,
                stacklevel=3,
            )
        check_same_unit(table, self.time_unit_, what)
        columns = [data[c].to_numpy() for c in self.HISTORY]
        if not unique:
            return data.index, np.arange(len(data)), columns
        codes, uniq, _ = unique_rows(*columns)
        return data.index, codes, uniq

    def _histories(self, table: pd.DataFrame, method: str) -> tuple[pd.Index, np.ndarray, list[np.ndarray]]:
        return self.histories(table, f"{type(self).__name__}.{method}", warn=True)

    def _horizon(self, t: Any, name: str = "t") -> float:
        tt = as_duration(t, self.time_unit_, name)
        if self.DISCRETE:
            k = round(tt)
            if abs(tt - k) > 1e-9 * max(1.0, abs(tt)):
                raise ValueError(
                    f"{name}: {type(self).__name__} counts whole transaction opportunities (periods of "
                    f"{self.time_unit_!r}); {t!r} is {tt:g} periods. Give a whole number of periods"
                )
            tt = float(k)
        return tt

    # -- fit ---------------------------------------------------------------------------------------------------

    def _check_data(self, x: np.ndarray, tx: np.ndarray, T: np.ndarray, w: np.ndarray, what: str) -> None:
        """Refuse tables that cannot identify a purchase model (one customer, no repeat buyer, no time)."""
        total = float(w.sum())
        n: Any = int(total) if total == int(total) else f"{total:,.1f}"
        if np.count_nonzero(w) < 2:
            raise DataValidationError(
                f"{what}: the table has a single customer; the {self.LABEL} parameters describe a population "
                "and need many customers (hundreds or more)"
            )
        if not np.any((x > 0) & (w > 0)):
            raise DataValidationError(
                f"{what}: none of the {n} customers has a repeat purchase (frequency is 0 for all), so "
                "purchase and dropout rates cannot be estimated; use a longer calibration period or more "
                "customers"
            )
        if np.all(T[w > 0] == 0):
            raise DataValidationError(
                f"{what}: T is 0 for all {n} customers (everyone was observed for no time); set the "
                "observation/calibration end after the first purchases"
            )

    def fit(self, table: pd.DataFrame, *, time_unit: str | None = None, weights: Any = None) -> Self:
        """Estimate the parameters by maximum likelihood from a table with one row per customer (or per
        group of identical customers with ``weights``).

        ``time_unit`` is the unit of the table's time columns; by default the table's ``attrs["time_unit"]``,
        else days with a warning. ``weights``: customers per row (an array or a column name; BG/BB also reads
        a ``weight`` column by default). After the fit, ``diagnostics_`` says whether the estimates can be
        trusted; a fit at a bound or with parameters the data do not identify warns with a
        :class:`~clvforecast.exceptions.ModelAssumptionWarning`.
        """
        what = f"{type(self).__name__}.fit"
        pen = self._check_penalizer()
        data = self._validate(table, what)
        unit = fit_time_unit(table, time_unit, what)
        w_user = table_weights(table, self._default_weights(table, weights), len(data), what)
        cols = [data[c].to_numpy() for c in self.HISTORY]
        codes, uniq, counts, lev = unique_rows(*cols, return_levels=True)
        if w_user is not None:
            counts = np.bincount(codes, weights=w_user, minlength=len(counts))
        keep = counts > 0
        x, tx, T = (u[keep] for u in uniq)
        levels = {name: (vals, c[keep]) for name, (vals, c) in zip(("x", "tx", "T"), lev, strict=True)}
        w = counts[keep]
        self._check_data(x, tx, T, w, what)
        self.time_unit_ = unit
        self.penalizer_ = pen
        n = float(w.sum())
        self.n_customers_ = int(round(n))
        self.fit_info_ = {
            "n_customers": self.n_customers_,
            "n_repeat_customers": int(round(float(w[x > 0].sum()))),
            "n_unique_histories": int(len(x)),
            "weighted": w_user is not None,
            "mean_T": float(w @ T) / n,
            "engine": "clvforecast (closed-form log-likelihood, analytic gradient, L-BFGS-B + Newton)",
        }
        self._estimate(HistoryData(levels=levels, x=x, tx=tx, T=T), w, what=what)
        return self

    def _default_weights(self, table: pd.DataFrame, weights: Any) -> Any:
        return weights

    def _lifetimes_data(self, data: pd.DataFrame) -> tuple[HistoryData, np.ndarray] | None:
        need = ("frequency", "recency", "n_periods" if self.DISCRETE else "T")
        if not all(c in data.columns for c in need):
            return None
        w = np.asarray(data["weights"], dtype="float64") if "weights" in data.columns else np.ones(len(data))
        cols = [np.asarray(data[c], dtype="float64") for c in need]
        return HistoryData(x=cols[0], tx=cols[1], T=cols[2]), w

    # -- predictions -------------------------------------------------------------------------------------------

    def expected_purchases(self, table: pd.DataFrame, t: float | str) -> pd.Series:
        """Expected number of repeat purchases of each customer in the next ``t`` after the end of her history.

        ``t``: a number in the model's time unit (``time_unit_``) or a string such as ``"52W"``, ``"12M"``
        (whole periods for BG/BB). Returns a Series indexed by customer_id (purchases, no unit).
        """
        self._check_fitted()
        tt = self._horizon(t)
        index, codes, (x, tx, T) = self._histories(table, "expected_purchases")
        values = self._expected(self.theta_, tt, x, tx, T)
        return pd.Series(values[codes], index=index, name="expected_purchases")

    def probability_alive(self, table: pd.DataFrame) -> pd.Series:
        """Probability that each customer is still active at the end of her history, in [0, 1]."""
        index, codes, (x, tx, T) = self._histories(table, "probability_alive")
        values = self._p_alive(self.theta_, x, tx, T)
        return pd.Series(values[codes], index=index, name="probability_alive")

    def probability_of_purchases(self, table: pd.DataFrame, t: float | str, n: int) -> pd.Series:
        """P(X(t) = n): probability that each customer makes exactly ``n`` purchases in the next ``t``."""
        self._check_fitted()
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a whole number of purchases >= 0; got {n!r}")
        tt = self._horizon(t)
        index, codes, (x, tx, T) = self._histories(table, "probability_of_purchases")
        values = self._pmf(self.theta_, tt, int(n), x, tx, T)[:, int(n)]
        return pd.Series(np.clip(values, 0.0, 1.0)[codes], index=index,
                         name=f"probability_of_{int(n)}_purchases")

    def expected_purchases_new_customer(self, t: Any) -> float | np.ndarray:
        """Unconditional E[X(t)]: expected repeat purchases in the ``t`` after a first purchase.

        ``t`` is a number (model's time unit), a string such as ``"52W"``, or an array-like of these; returns
        a float for a scalar ``t`` and an ndarray otherwise.
        """
        self._check_fitted()
        scalar = isinstance(t, (str, int, float, np.number))
        items = np.atleast_1d(np.asarray(t, dtype=object)).ravel()
        ts = np.array([self._horizon(v) for v in items], dtype="float64")
        zero = np.zeros_like(ts)
        values = self._expected(self.theta_, ts, zero, zero, zero)
        return float(values[0]) if scalar else values.reshape(np.shape(t))


# ----------------------------------------------------------------------------------------------------------
# loading


def _fail(path: Path, text: str) -> ModelFileError:
    return ModelFileError(f"{path}: {text}")


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _validate_model_dict(d: Any, path: Path) -> type[FittedModel]:
    """Check the structure and every value of a model file; return the model class. Raises
    :class:`ModelFileError` naming the key or parameter and the rule it breaks."""
    if not isinstance(d, dict) or d.get("format") != FORMAT_NAME:
        raise _fail(path, "not a clvforecast model file (it has no \"format\": \"clvforecast.model\"; model "
                          "files are written by model.save(path))")
    version = d.get("format_version")
    if not (isinstance(version, int) and not isinstance(version, bool)) or version < 1:
        raise _fail(path, f"not a clvforecast model file: format_version must be a whole number >= 1; got "
                          f"{version!r}")
    if version > FORMAT_VERSION:
        raise _fail(path, f"written in model format {version} by clvforecast {d.get('clvforecast_version')}; "
                          f"this version reads formats up to {FORMAT_VERSION}: upgrade clvforecast")
    name = d.get("model")
    if not isinstance(name, str):
        raise _fail(path, f"not a clvforecast model file: \"model\" must be a model name such as \"BetaGeo\"; "
                          f"got {name!r}")
    cls = FittedModel._REGISTRY.get(name)
    if cls is None:
        raise _fail(path, f"unknown model type {name!r}; known: {', '.join(sorted(FittedModel._REGISTRY))}")
    names = list(cls.PARAM_NAMES)
    params = d.get("params")
    if not isinstance(params, dict):
        raise _fail(path, f"the {name} model file is incomplete or corrupt: \"params\" must be an object with "
                          f"{', '.join(names)}")
    missing = [n for n in names if n not in params]
    extra = [n for n in params if n not in names]
    if missing or extra:
        raise _fail(path, f"the {name} model file is incomplete or corrupt: parameters "
                          f"{'missing: ' + ', '.join(missing) if missing else ''}"
                          f"{'; ' if missing and extra else ''}{'unknown: ' + ', '.join(extra) if extra else ''}"
                          f" (a {name} has {', '.join(names)})")
    for n in names:
        v = params[n]
        if not _is_number(v):
            raise _fail(path, f"parameter {n!r} = {v!r} breaks the rule: it must be a number")
        if not math.isfinite(v):
            raise _fail(path, f"parameter {n!r} = {v!r} breaks the rule: it must be finite")
        if v <= 0:
            raise _fail(path, f"parameter {n!r} = {v!r} breaks the rule {n} > 0 (every {name} parameter is "
                              "positive)")
    k = len(names)
    for key in ("variance_matrix", "log_covariance"):
        if key == "log_covariance" and key not in d:
            continue  # format 1 files have none
        cov = d.get(key)
        if (not isinstance(cov, list) or len(cov) != k
                or not all(isinstance(row, list) and len(row) == k for row in cov)):
            raise _fail(path, f"the {name} model file is incomplete or corrupt: \"{key}\" must be a {k} x {k} "
                              "list of lists")
        for i, row in enumerate(cov):
            for j, v in enumerate(row):
                if v is not None and not (_is_number(v) and math.isfinite(v)):
                    raise _fail(path, f"{key}[{i}][{j}] = {v!r} breaks the rule: a finite number or null")
            if row[i] is not None and row[i] < 0:
                raise _fail(path, f"{key}[{i}][{i}] = {row[i]!r} breaks the rule: a variance is >= 0")
    ll = d.get("log_likelihood")
    if ll is not None and not (_is_number(ll) and math.isfinite(ll)):
        raise _fail(path, f"log_likelihood = {ll!r} breaks the rule: a finite number or null")
    nc = d.get("n_customers")
    if not (isinstance(nc, int) and not isinstance(nc, bool)) or nc < 0:
        raise _fail(path, f"n_customers = {nc!r} breaks the rule: a whole number >= 0")
    unit = d.get("time_unit")
    if not isinstance(unit, str) or unit.upper() not in DAYS_PER_UNIT:
        raise _fail(path, f"time_unit = {unit!r} breaks the rule: one of {', '.join(DAYS_PER_UNIT)}")
    pen: Any = d.get("penalizer")
    if not _is_number(pen) or not math.isfinite(pen) or pen < 0:
        raise _fail(path, f"penalizer = {pen!r} breaks the rule: a finite number >= 0")
    settings = d.get("settings", {})
    if not isinstance(settings, dict) or set(settings) - {"penalizer"}:
        raise _fail(path, f"settings = {settings!r} breaks the rule: an object with at most \"penalizer\"")
    sp = settings.get("penalizer", 0.0)
    if not _is_number(sp) or not math.isfinite(sp) or sp < 0:
        raise _fail(path, f"settings.penalizer = {sp!r} breaks the rule: a finite number >= 0")
    for key in ("fit_info", "diagnostics"):
        if key in d and not isinstance(d[key], dict):
            raise _fail(path, f"{key} = {d[key]!r} breaks the rule: a JSON object")
    diag = d.get("diagnostics")
    if isinstance(diag, dict):
        for key in ("at_bound", "unidentified"):
            v = diag.get(key, [])
            if not isinstance(v, list) or any(n not in names for n in v):
                raise _fail(path, f"diagnostics.{key} = {v!r} breaks the rule: a list of parameter names")
    return cls


def model_from_dict(d: dict[str, Any]) -> FittedModel:
    """The fitted model described by ``d``, a ``model.to_dict()`` (what ``save`` writes; e.g. the fits that
    :func:`~clvforecast.compare_models` keeps in ``attrs["fits"]``), validated as :func:`load_model` validates a
    file (:class:`ModelFileError` naming the key or parameter and the rule it breaks)."""
    where = Path("<model dict>")
    cls = _validate_model_dict(d, where)
    try:
        return cls._from_dict(d)
    except (KeyError, TypeError, ValueError) as exc:  # pragma: no cover - the checks above cover the keys
        raise _fail(where, f"the {d['model']} model description is incomplete or corrupt ({exc!r})") from None


def load_model(path: str | Path) -> FittedModel:
    """Read a model written by ``model.save(path)`` (JSON): a fitted :class:`BetaGeo`, :class:`ParetoNBD`,
    :class:`ModifiedBetaGeo`, :class:`BetaGeoBetaBinom` or :class:`GammaGamma`.

    The file is validated before any model is built: its structure, the format version, the model name, and
    every value (parameters finite and positive, a square variance matrix of finite numbers or nulls with
    non-negative variances, a known time unit, ...). A file that breaks a rule is refused with a
    :class:`ModelFileError` (a ``ValueError``) that names the key or parameter and the rule. Predictions of the
    loaded model are identical to those of the saved one.
    """
    path = Path(path)
    if path.is_dir():
        raise _fail(path, "is a folder, not a model file (model files are written by model.save(path))")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
        d = json.loads(text)
    except UnicodeDecodeError:
        raise _fail(path, "not a clvforecast model file (not UTF-8 JSON text; model files are written by "
                          "model.save(path), and pickles are never read)") from None
    except json.JSONDecodeError as exc:
        raise _fail(path, f"not a clvforecast model file (not valid JSON: {exc})") from None
    cls = _validate_model_dict(d, path)
    try:
        return cls._from_dict(d)
    except (KeyError, TypeError, ValueError) as exc:  # pragma: no cover - the checks above cover the keys
        raise _fail(path, f"the {d['model']} model file is incomplete or corrupt ({exc!r})") from None
