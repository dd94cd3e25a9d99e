"""Predictive customer lifetime value: expected values and predictive intervals, per customer and for the base.

Point forecast
--------------
For each customer, over a horizon cut into steps ``t_1 < ... < t_K = horizon`` (in the model's time unit):

    CLV = sum_k  margin * E[spend] * (E[X(t_k)] - E[X(t_{k-1})]) / (1 + d) ** k

where ``E[X(t)]`` is the purchase model's conditional expected number of purchases in ``(T, T + t]`` (BG/NBD,
Pareto/NBD, MBG/NBD; BG/BB in whole periods), ``E[spend]`` the Gamma-Gamma expected mean spend per transaction,
and ``d`` the annual ``discount_rate`` converted to the step (``(1 + annual) ** (step_days / 365.25) - 1``,
:func:`clvforecast.units.periodic_rate`). Cash flows of step k are discounted at its end, as in lifetimes'
``customer_lifetime_value``. Since an inactive customer buys nothing, ``E[X(t)] = P(alive) E[X(t) | alive]`` and
``clv = probability_alive * clv_if_alive``.

Units are explicit: ``horizon`` and ``step`` are strings such as ``"12M"``, ``"52W"`` (or numbers in the
model's time unit), converted with the day counts of :mod:`clvforecast.units` (a month is 365.25/12 days).
lifetimes instead hard-codes 30-day months for daily data (4.345 weeks for weekly data), so its "12 months"
are 360 days.

Predictive intervals (``interval=0.9``)
---------------------------------------
An interval says where the customer's *actual* outcome will fall, so it carries every source of uncertainty the
models know about, not only the uncertainty of the mean (a posterior of ``E[X]``, as pymc-marketing reports,
covers about 1% of CDNOW customers' actual holdout purchases at 94%):

* **Process** (the count itself). The number of purchases ``X`` in the horizon has the exact distribution
  ``P(X = n | history, theta)`` of the purchase model (BG/NBD, Pareto/NBD, MBG/NBD; BG/BB in whole periods):
  ``P(alive at T) P(X = n | alive) + [n = 0] P(dead)``, the model's ``_p_alive`` per history and its
  ``_alive_pmf`` (purchases while alive, dropout), which depends on the history through ``x`` and ``T`` only and
  is computed once per distinct ``(x, T)`` for ``n = 0..n_max``, ``n_max`` grown (doubling) until the mass above
  it is below ``1e-5``.
* **Parameters**. ``theta`` is drawn ``n_draws`` times from the estimator's asymptotic sampling distribution on
  the log scale (``model.sample_params``: ``log theta ~ Normal(log theta_hat, log_covariance_)``, every draw
  positive), and the customer's predictive distribution is the mixture ``P(X = n | history) = mean_d P(X = n |
  history, theta_d)``. Why not a bootstrap over customers (CLVTools refits the model per replicate): one fit
  instead of hundreds, the same answer asymptotically for the thousands of customers these models need, and
  seeded draws that cost a matrix product. With few customers (a few hundred) the normal approximation on the log
  scale is the weaker part; the fit's ``diagnostics_``/``summary`` say how well the parameters are determined.
* **Spend** (Gamma-Gamma). A purchase's spend is ``Gamma(p, nu)`` and, given the customer's ``x`` repeat
  purchases with mean spend ``m``, ``nu | history ~ Gamma(p x + q, v + x m)`` (shape, rate; the model's
  ``_posterior``); her mean spend is ``p / nu`` with posterior mean the usual ``expected_spend``. The spend of
  ``n`` purchases is then ``S = B * G / H`` with ``G ~ Gamma(n p, 1)``, ``H ~ Gamma(A, 1)``, ``A = p x + q`` and
  ``B = v + x m``: the customer's spend is her own scale ``B`` times a ratio ``R`` whose distribution depends only
  on her purchase history (through the count mixture) and ``x`` (through ``A``), so one computation per unique
  history serves every customer. ``P(R <= r) = P(X = 0) + sum_n P(X = n) I_{r/(1+r)}(n p, A)`` (a beta-prime
  mixture; ``I`` the regularised incomplete beta) is tabulated on a log-spaced grid per ``(x, n)`` and inverted
  by interpolation, no simulation. The Gamma-Gamma *parameter* uncertainty is left out of the per-customer
  bounds (it moves them by about a percent on CDNOW, where the count's spread dominates) and is included in the
  totals, where it does not average out.
* **Discounting**. The purchases' timing within the horizon matters for a discounted value. The interval of
  ``clv`` is ``margin * w * [S_lower, S_upper]`` with ``w`` the customer's expected discount factor per
  purchase (discounted over undiscounted expected purchases, at the point estimates), so ``E[margin * w * S]`` is
  exactly the ``clv`` column. A customer with many purchases is likely alive throughout and buys evenly, so her
  true factor is slightly below ``w``: the upper bound is high by at most ``1 - (1 + d) ** -horizon_years`` (9% for
  10% a year over one year; in practice well under 1%).

Equal-tailed bounds: ``lower`` is the smallest ``n`` with ``P(X <= n) >= (1 - level) / 2`` and ``upper`` the
smallest with ``P(X <= n) >= (1 + level) / 2``. Counts are discrete, so such an interval holds at least
``level`` of the probability and usually a little more (a 90% interval of holdout purchases covers about 95% of
CDNOW customers, as a correct one should).

Totals of the whole base (:func:`forecast_totals`)
--------------------------------------------------
The interval of a total is the distribution of the sum, not the sum of the customers' bounds (which would be far
too wide). Given ``theta`` the customers are independent, so the sum is close to normal with the summed means and
variances (computed from each customer's exact count distribution and the Gamma-Gamma moments, with the
Gamma-Gamma parameters drawn too); over the parameters it is a mixture of those normals, and its quantiles are
the **model-only** interval. The summed mean and variance are computed exactly at each of the ``n_draws`` draws
and, being close to linear in ``log theta``, fitted linearly and evaluated at 20,000 further draws (the delta
method with the draws as evaluation points), so the bounds carry no noticeable Monte Carlo noise. The normal
approximation wants a base of a few hundred customers or more; the lower bounds are clipped at 0.

The model-only interval assumes that nothing hits all customers at once; a season, a campaign or a shift in the
market does. On CDNOW (calibration to 1997-09-30, 39-week holdout) it is about 1,491-1,824 holdout purchases
(1,541-1,768 from the purchase process alone) and misses the 1,882 that happened. The **backtest-calibrated**
interval adds the model's own past errors: the log ratios ``e_k = log(actual / predicted)`` of the totals at K
earlier cutoffs (:func:`~clvforecast.evaluation.backtest`, or ``evaluate_holdout(..., past_cutoffs=...)``) are
taken as draws of the error at the next cutoff, so the total is the model-only distribution times ``exp(eps)``
with ``eps ~ mean(e) + sd(e) sqrt(1 + 1/K) t_{K-1}`` (past bias and spread, Student t for the few cutoffs; it
counts the process noise twice, a small, conservative excess). On CDNOW, from four cutoffs between 1997-05-17
and 1997-07-24 with holdouts ending 1997-09-30 (past errors -9%, -15%, +1%, -12%), it is about 1,444-2,290 and
contains 1,882. Spend errors calibrate revenue and CLV.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from ._checks import check_discount_rate, check_margin
from .exceptions import DataValidationError, ModelAssumptionWarning
from .models import GammaGamma
from .models._base import PurchaseModel, as_duration, table_weights, unique_rows, validate_rfm
from .units import DAYS_PER_UNIT, days_per, periodic_rate

__all__ = ["INTERVAL_COLUMNS", "TOTAL_QUANTITIES", "forecast_totals", "predictive_clv"]

_MAX_CELLS = 2_000_000  # histories x steps (or x counts) evaluated at once
_TAIL = 1e-5  # probability mass allowed above n_max in a customer's count distribution
_CHUNK_CELLS = 2**16  # histories x counts per call of the model's pmf
_N_MAX_CAP = 2**20 - 1
_PROGRESS_AFTER = 2.0  # seconds of work after which a progress bar appears (on a terminal)

#: Interval columns added by ``predictive_clv(..., interval=level)``.
INTERVAL_COLUMNS: tuple[str, ...] = (
    "expected_purchases_lower", "expected_purchases_upper", "clv_lower", "clv_upper",
)
#: Rows of :func:`forecast_totals`.
TOTAL_QUANTITIES: tuple[str, ...] = ("purchases", "revenue", "clv")


def _step_length(step: Any, unit: str) -> float:
    """Length of one step in ``unit``; ``step`` is a unit code ("M"), a duration ("2W") or a number."""
    if isinstance(step, str) and step.strip().upper() in DAYS_PER_UNIT:
        step = "1" + step.strip().upper()
    length = as_duration(step, unit, name="step")
    if length <= 0:
        raise ValueError(f"step must be a positive duration such as 'M', '1W' or '30D'; got {step!r}")
    return length


def _check_interval(interval: Any) -> float | None:
    if interval is None:
        return None
    if isinstance(interval, (bool, np.bool_)) or not isinstance(interval, (int, float, np.integer, np.floating)):
        raise TypeError(f"interval must be a probability such as 0.9 (or None); got {type(interval).__name__}")
    level = float(interval)
    if level > 1 and level < 100:
        raise ValueError(f"interval={interval!r} is not a probability; pass interval={level / 100:g} for {level:g}%")
    if not 0 < level < 1:
        raise ValueError(f"interval must be a probability between 0 and 1 (0.9 for 90%); got {interval!r}")
    return level


def _check_draws(n_draws: Any) -> int:
    if isinstance(n_draws, bool) or not isinstance(n_draws, (int, np.integer)) or n_draws < 1:
        raise ValueError(f"n_draws must be a whole number >= 1 (parameter draws, e.g. 100); got {n_draws!r}")
    return int(n_draws)


# ------------------------------------------------------------------------------------------------------------
# progress


@contextlib.contextmanager
def _progress(label: str, total: float, show: bool | None) -> Iterator[Callable[[float], None]]:
    """``advance(amount)``; a rich bar on stderr that appears once the work has taken ``_PROGRESS_AFTER``
    seconds, only on a terminal (``show=None``), always (``True``) or never (``False``)."""
    enabled = (sys.stderr.isatty() if show is None else bool(show)) and total > 0
    if not enabled:
        yield lambda _amount: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    start, done = time.perf_counter(), 0.0
    bar: Progress | None = None
    task = None

    def advance(amount: float) -> None:
        nonlocal bar, task, done
        done += amount
        if bar is None and (show or time.perf_counter() - start > _PROGRESS_AFTER):
            bar = Progress(TextColumn(label), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                           TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                           transient=True)
            bar.start()
            task = bar.add_task("", total=total)
        if bar is not None and task is not None:
            bar.update(task, completed=done)

    try:
        yield advance
    finally:
        if bar is not None:
            bar.stop()


# ------------------------------------------------------------------------------------------------------------
# the predictive distribution of the counts


@dataclass
class _Counts:
    """Mixture count distributions of unique histories, in buckets of equal ``n_max``."""

    buckets: list[tuple[np.ndarray, np.ndarray]]  # (history rows, pmf (rows, n_max + 1))
    n_hist: int

    def cdf_at(self, rows: np.ndarray, n: np.ndarray) -> np.ndarray:
        """P(X <= n) for history ``rows[i]`` at ``n[i]`` (n may be -1: 0.0)."""
        out = np.empty(len(rows))
        where = np.empty(self.n_hist, dtype=np.int64)
        pos = np.empty(self.n_hist, dtype=np.int64)
        for b, (hrows, _) in enumerate(self.buckets):
            where[hrows], pos[hrows] = b, np.arange(len(hrows))
        for b, (_, pmf) in enumerate(self.buckets):
            sel = np.flatnonzero(where[rows] == b)
            if not len(sel):
                continue
            cdf = np.cumsum(pmf, axis=1)
            k = n[sel]
            if np.any(k > pmf.shape[1] - 1):  # pragma: no cover - callers size n_max to cover n
                raise AssertionError("count beyond n_max")
            out[sel] = np.where(k >= 0, cdf[pos[rows[sel]], np.maximum(k, 0)], 0.0)
        return out

    def quantiles(self, probs: Sequence[float]) -> np.ndarray:
        """(n_hist, len(probs)): smallest n with P(X <= n) >= prob."""
        out = np.empty((self.n_hist, len(probs)))
        for hrows, pmf in self.buckets:
            cdf = np.cumsum(pmf, axis=1)
            for j, pr in enumerate(probs):
                out[hrows, j] = (cdf < pr).sum(axis=1)
        return out

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        mean, m2 = np.empty(self.n_hist), np.empty(self.n_hist)
        for hrows, pmf in self.buckets:
            n = np.arange(pmf.shape[1], dtype="float64")
            mean[hrows], m2[hrows] = pmf @ n, pmf @ (n * n)
        return mean, m2


def _chunks(n_rows: int, size: int) -> Iterator[slice]:
    """Row slices of about ``_CHUNK_CELLS`` cells (small arrays stay in the CPU cache: 2-3x faster)."""
    step = max(64, _CHUNK_CELLS // (size + 1))
    for lo in range(0, n_rows, step):
        yield slice(lo, lo + step)


def _room(size: np.ndarray | int) -> np.ndarray:
    """Round counts up to 8k - 1 (n = 0..n_max is then a multiple of 8 long)."""
    return (np.ceil((np.asarray(size, dtype="float64") + 1.0) / 8.0) * 8.0 - 1.0).astype(np.int64)


def _needed_n_max(pmf: Callable[[np.ndarray, int], np.ndarray], mean: np.ndarray,
                  n_min: np.ndarray | None) -> np.ndarray:
    """n_max per row for the mixture: where ``pmf(rows, size)`` (the count distribution at the point estimate)
    leaves ``_TAIL / 10`` above, plus 25% and 4 for the parameter draws (a row whose mixture still leaves more
    than ``_TAIL`` is grown later). Found by doubling from a guess based on the expected count ``mean``."""
    m = np.nan_to_num(np.maximum(mean, 0.0), nan=0.0, posinf=float(_N_MAX_CAP))
    size = _room(np.minimum(2.0 * m + 6.0 * np.sqrt(m) + 8.0, _N_MAX_CAP))
    need = np.zeros(len(m))
    pending = np.arange(len(m))
    while len(pending):
        redo = []
        for s in np.unique(size[pending]):
            rows_all = pending[size[pending] == s]
            for sl in _chunks(len(rows_all), int(s)):
                rows = rows_all[sl]
                cdf = np.cumsum(pmf(rows, int(s)), axis=1)
                ok = (1.0 - cdf[:, -1] <= _TAIL / 100) | (s >= _N_MAX_CAP)
                need[rows[ok]] = (cdf[ok] < 1.0 - _TAIL / 10).sum(axis=1)
                redo.append(rows[~ok])
        pending = np.concatenate(redo) if redo else np.array([], dtype=np.int64)
        size[pending] = _room(np.minimum(2 * size[pending] + 1, _N_MAX_CAP))
    need = 1.25 * need + 4.0
    if n_min is not None:
        need = np.maximum(need, n_min)
    return _room(np.minimum(need, _N_MAX_CAP))


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenation of ``arange(s, s + l)`` for each start and length (vectorised)."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
    return np.arange(total, dtype=np.int64) + offsets


def _complete(tail: np.ndarray, ids: np.ndarray, n_max: int, redo: list[np.ndarray]) -> np.ndarray:
    """Which count distributions tabulated up to ``n_max`` are complete (probability left above it at most
    ``_TAIL``): the others go to ``redo`` for a longer table, or, at the cap, are kept with a warning."""
    bad = tail > _TAIL
    if bad.any() and n_max < _N_MAX_CAP:
        redo.append(ids[bad])
        return ~bad
    if bad.any():  # pragma: no cover - needs a million purchases in the horizon
        warnings.warn(
            f"{int(bad.sum())} customers' count distributions leave up to {tail.max():.2g} of their probability "
            f"above {n_max:,} purchases; their upper bounds are lower bounds", ModelAssumptionWarning, stacklevel=4,
        )
    return np.ones(len(ids), dtype=bool)


def _count_mixture(
    api: Any,
    theta: np.ndarray,
    draws: np.ndarray,
    t: float,
    hist: Sequence[np.ndarray],
    mean_if_alive: np.ndarray,
    *,
    n_min: np.ndarray | None = None,
    on_moments: Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None = None,
    progress: bool | None = None,
) -> _Counts:
    """The mixture over ``draws`` of ``api._pmf(theta_d, t, n_max, *hist)`` for every unique history.

    Every purchase model's count is ``P(X = n) = P(alive) P(X = n | alive) + [n = 0] (1 - P(alive))`` with
    ``P(X = n | alive)`` depending on the history through ``x`` and ``T`` only (``n_periods`` for BG/BB), not on
    ``t_x``. So the model's ``_alive_pmf`` is computed once per distinct ``(x, T)`` pair and draw (a few thousand
    pairs where there are hundreds of thousands of histories), ``_p_alive`` once per history and draw, and a
    history's mixture is ``mean_d [P_d(alive) A_d(x, T)] + [n = 0] (1 - mean_d P_d(alive))``. ``n_max`` is sized
    per pair (at least the ``n_min`` of its histories), and a pair whose alive distribution leaves more than
    ``_TAIL`` above it (averaged over the draws) is redone with twice the room; a history's tail is at most its
    pair's. ``on_moments(rows, mean, second)`` receives, for each finished group of histories, the per-draw first
    and second moments of the count, arrays of shape (n_draws, len(rows)), for the totals.

    A history's mixture depends only on the history, the draws and ``n_min`` (not on the other histories of the
    table), so scoring a table in parts gives the same distributions.
    """
    hist = [np.asarray(h, dtype="float64") for h in hist]
    x, tx, T = hist
    n_hist, n_draws = len(x), len(draws)
    key, (kx, kT), _ = unique_rows(x, T)
    n_keys = len(kx)
    # histories grouped by pair (CSR layout)
    order = np.argsort(key, kind="stable")
    ptr = np.r_[0, np.cumsum(np.bincount(key, minlength=n_keys))]
    key_min = None
    if n_min is not None:
        key_min = np.zeros(n_keys)
        np.maximum.at(key_min, key, np.asarray(n_min, dtype="float64"))
    size = _needed_n_max(lambda rows, s: api._alive_pmf(theta, t, s, kx[rows], kT[rows]),
                         np.asarray(mean_if_alive, dtype="float64")[order[ptr[:-1]]], key_min)
    pa = np.asarray(api._p_alive_draws(draws, x, tx, T), dtype="float64").reshape(n_draws, n_hist)
    np.clip(pa, 0.0, 1.0, out=pa)
    dead = 1.0 - pa.mean(axis=0)
    buckets: list[tuple[np.ndarray, np.ndarray]] = []
    pending = np.arange(n_keys)
    work = float(np.sum((size + 1.0) * np.diff(ptr))) * n_draws
    with _progress("predictive intervals", work, progress) as advance:
        while len(pending):
            redo: list[np.ndarray] = []
            for s_ in np.unique(size[pending]):
                s_ = int(s_)
                keys_all = pending[size[pending] == s_]
                n = np.arange(s_ + 1, dtype="float64")
                # pairs in chunks of about _MAX_CELLS cells over the draws; their histories in chunks of about
                # _CHUNK_CELLS cells
                per_keys = max(1, _MAX_CELLS // (n_draws * (s_ + 1)))
                for k0 in range(0, len(keys_all), per_keys):
                    keys = keys_all[k0:k0 + per_keys]
                    A = np.empty((n_draws, len(keys), s_ + 1))
                    for d in range(n_draws):
                        A[d] = api._alive_pmf(draws[d], t, s_, kx[keys], kT[keys])
                    np.clip(A, 0.0, 1.0, out=A)
                    keep = _complete(1.0 - A.sum(axis=2).mean(axis=0), keys, s_, redo)
                    if not keep.any():
                        continue
                    keys, A = keys[keep], A[:, keep]
                    m1 = A @ n  # (draws, pairs): moments of the alive distribution
                    m2 = A @ (n * n)
                    lengths = ptr[keys + 1] - ptr[keys]
                    rows_all = order[_ranges(ptr[keys], lengths)]
                    local_all = np.repeat(np.arange(len(keys)), lengths)
                    for sl in _chunks(len(rows_all), s_):
                        rows, local = rows_all[sl], local_all[sl]
                        mix = np.zeros((len(rows), s_ + 1))
                        for d in range(n_draws):
                            mix += pa[d, rows, None] * A[d, local]
                        mix /= n_draws
                        mix[:, 0] += dead[rows]
                        buckets.append((rows, mix))
                        if on_moments is not None:
                            on_moments(rows, pa[:, rows] * m1[:, local], pa[:, rows] * m2[:, local])
                        advance(float(len(rows) * (s_ + 1) * n_draws))
            pending = np.concatenate(redo) if redo else np.array([], dtype=np.int64)
            size[pending] = _room(np.minimum(2 * size[pending] + 1, _N_MAX_CAP))
    return _Counts(buckets, n_hist)


def _ratio_grid(p: float, A: float, n_lo: int, n_hi: int, p_lo: float, p_hi: float) -> np.ndarray:
    """Log grid of r covering the ``p_lo`` quantile of R_{n_lo} to the ``p_hi`` quantile of R_{n_hi}.

    The points lie on a lattice ``k * step`` with ``step = sqrt(1/A) / 2``, half the log-scale spread of the
    narrowest component (R_n is beta-prime(n p, A), whose log has standard deviation about
    ``sqrt(1/(n p) + 1/A)``), plus one point beyond each end. A customer's bounds are read from the lattice points
    around her quantile, which depend only on ``A`` (her ``x``), not on the other customers that set the grid's
    extent: scoring a table in
    parts gives the same bounds.
    """
    lo = special.betaincinv(n_lo * p, A, p_lo)
    hi = special.betaincinv(n_hi * p, A, p_hi)
    log_lo = math.log(lo) - math.log1p(-lo) if 0 < lo < 1 else -30.0
    log_hi = math.log(hi) - math.log1p(-hi) if 0 < hi < 1 else log_lo + 14.0
    step = 0.5 * math.sqrt(1.0 / A)
    k_lo = math.floor(log_lo / step) - 1
    k_hi = max(math.ceil(log_hi / step) + 1, k_lo + 3)
    if k_hi - k_lo > 16_384:  # pragma: no cover - needs an extreme spread of counts for one x
        step = (log_hi - log_lo) / 16_380
        k_lo, k_hi = math.floor(log_lo / step) - 1, math.ceil(log_hi / step) + 1
    return np.arange(k_lo, k_hi + 1, dtype="float64") * step


def _invert(F: np.ndarray, p0: np.ndarray, log_grid: np.ndarray, pr: float) -> np.ndarray:
    """The r with ``F(r) = pr`` per row, from F on a log grid (0 where ``P(X = 0) >= pr``).

    Inverse quadratic interpolation through the three grid points around the crossing, on the normal-quantile
    scale of the continuous part (``log r`` as a quadratic in ``Phi^-1((F - P(X = 0)) / (1 - P(X = 0)))``, on which a beta-prime CDF is close to a straight
    line), linear where that leaves the bracket. With grid steps of the narrowest component's spread the quantile
    is accurate to about 1e-4 relative (tested against root-finding on the exact mixture).
    """
    G = len(log_grid)
    idx = (F < pr).sum(axis=1)  # the first grid point with F >= pr
    val = np.zeros(len(F))
    pos = p0 < pr
    val[pos & (idx == 0)] = math.exp(log_grid[0])
    val[pos & (idx >= G)] = math.exp(log_grid[-1])
    inner = np.flatnonzero(pos & (idx > 0) & (idx < G))
    if not len(inner) or G < 3:
        return val
    i = idx[inner]
    c = np.clip(i, 1, G - 2)  # the middle of three points c-1, c, c+1 (kept inside the grid)
    # F = P(X = 0) + (1 - P(X = 0)) G with G a mixture of beta-prime CDFs, each close to a straight line in
    # log r on the normal-quantile scale: interpolate Phi^-1(G) there
    base, rest = p0[inner], np.maximum(1.0 - p0[inner], 1e-300)
    z = lambda f: special.ndtri(np.clip((f - base) / rest, 1e-300, 1.0 - 1e-16))  # noqa: E731
    t = z(np.full(len(inner), pr))
    f0, f1, f2 = z(F[inner, c - 1]), z(F[inner, c]), z(F[inner, c + 1])
    g0, g1, g2 = log_grid[c - 1], log_grid[c], log_grid[c + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        quad = (g0 * (t - f1) * (t - f2) / ((f0 - f1) * (f0 - f2))
                + g1 * (t - f0) * (t - f2) / ((f1 - f0) * (f1 - f2))
                + g2 * (t - f0) * (t - f1) / ((f2 - f0) * (f2 - f1)))
    a0, a1 = z(F[inner, i - 1]), z(F[inner, i])
    w = np.clip((t - a0) / np.where(a1 > a0, a1 - a0, 1.0), 0.0, 1.0)
    lin = log_grid[i - 1] + w * (log_grid[i] - log_grid[i - 1])
    ok = np.isfinite(quad) & (quad >= log_grid[i - 1]) & (quad <= log_grid[i])
    val[inner] = np.exp(np.where(ok, quad, lin))
    return val


def _spend_ratio_quantiles(counts: _Counts, x: np.ndarray, p: float, q: float,
                           probs: Sequence[float]) -> np.ndarray:
    """(n_hist, len(probs)) quantiles of R, where a customer's spend over the horizon is ``B * R``.

    ``P(R <= r) = P(X = 0) + sum_{n >= 1} P(X = n) I_{r/(1+r)}(n p, p x + q)`` is tabulated once per distinct
    ``x`` on a log grid of ``r`` and inverted by interpolation. The grid spans the quantiles sought for every
    history with that ``x``: for a history whose lowest quantile sought above 0 is at probability ``P(X = 0) + c``,
    with ``n_a`` the first count with ``P(1 <= X <= n_a) >= c / 5``, F is below ``P(X = 0) + c`` at the ``c / 10``
    quantile of ``R_{n_a}``; and with ``n_hi`` the largest count reaching ``P(X <= n) >= 1 - (1 - max(probs)) / 5``,
    F is above ``max(probs)`` at the ``1 - (1 - max(probs)) / 10`` quantile of ``R_{n_hi}`` (``I_n(r)`` decreases
    in ``n``). The grid runs from the lowest of the first over the histories to the second.
    """
    p_max = max(probs)
    ux, x_code = np.unique(x, return_inverse=True)
    # the histories of each x, gathered from the buckets (one large product per x is much faster than many
    # small ones, above all when the BLAS threads compete for busy cores)
    pieces: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for hrows, pmf in counts.buckets:
        codes = x_code[hrows]
        order = np.argsort(codes, kind="stable")
        bounds = np.flatnonzero(np.diff(codes[order])) + 1
        for sel in np.split(order, bounds):
            pieces.setdefault(int(codes[sel[0]]), []).append((hrows[sel], pmf[sel]))
    out = np.zeros((counts.n_hist, len(probs)))
    for j, parts in pieces.items():
        rows = np.concatenate([r for r, _ in parts])
        width = max(pmf.shape[1] for _, pmf in parts)
        P = np.zeros((len(rows), width))
        at = 0
        for r, pmf in parts:
            P[at: at + len(r), : pmf.shape[1]] = pmf
            at += len(r)
        cdf = np.cumsum(P, axis=1)
        # the lowest probability each history needs inverted: the first of probs above her P(X = 0) (the rest
        # of her quantiles are 0), and its distance c from P(X = 0)
        p0 = P[:, 0]
        need = np.full(len(rows), np.nan)
        for pr in sorted(probs, reverse=True):
            need = np.where(p0 < pr, pr - p0, need)
        needs = np.isfinite(need)
        if not needs.any():
            continue  # every quantile sought is 0
        c = need[needs]
        # n_a: the first n >= 1 with P(1 <= X <= n) >= c / 5; below the c / 10 quantile of R_{n_a}, F < P(X = 0) + c
        n_a = 1 + ((cdf[needs, 1:] - p0[needs, None]) < c[:, None] / 5).sum(axis=1)
        n_lo = int(np.min(n_a))
        n_hi = max(1, int(np.max((cdf < 1 - (1 - p_max) / 5).sum(axis=1))))
        top = max(n_hi, int(np.max(np.nonzero(P.max(axis=0) > 1e-12)[0], initial=1)))
        P = P[:, : top + 1]
        A = p * float(ux[j]) + q
        log_grid = _ratio_grid(p, A, n_lo, n_hi, float(np.min(c)) / 10, 1 - (1 - p_max) / 10)
        r = np.exp(log_grid)
        n = np.arange(1, P.shape[1], dtype="float64")[:, None]
        table = special.betainc(n * p, A, (r / (1 + r))[None, :])  # (top, G)
        step = max(1, _MAX_CELLS // len(log_grid))
        for lo in range(0, len(rows), step):
            sl = slice(lo, lo + step)
            Pc = P[sl]
            F = Pc[:, :1] + Pc[:, 1:] @ table  # (rows, G)
            for k, pr in enumerate(probs):
                out[rows[sl], k] = _invert(F, Pc[:, 0], log_grid, pr)
    return out


# ------------------------------------------------------------------------------------------------------------
# the shared computation


@dataclass
class _Forecast:
    """Everything predictive_clv, forecast_totals and evaluate_holdout need, per unique history."""

    index: pd.Index
    codes: np.ndarray
    unit: str
    horizon: float
    p_alive: np.ndarray  # per history
    expected: np.ndarray  # per history, over the horizon
    disc_ratio: np.ndarray  # per history: discounted / undiscounted expected purchases
    discounted: np.ndarray  # per history: discounted expected purchases if alive
    spend: np.ndarray | None  # per customer expected spend per purchase
    scale: np.ndarray | None  # per customer B = v + x m
    attrs: dict[str, Any]
    counts: _Counts | None = None
    level: float | None = None
    count_bounds: np.ndarray | None = None  # per history (lower, upper)
    ratio_bounds: np.ndarray | None = None  # per history (lower, upper) of R
    draw_totals: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # per virtual draw
    weights: np.ndarray | None = None  # customers per row (BG/BB tables with a weight column), else None
    n_draws: int = 0
    notes: list[str] = field(default_factory=list)


_N_VIRTUAL = 20_000  # parameter draws for the totals (through the fitted linear response)


class _VirtualDraws:
    """Many parameter draws for the totals at the cost of a few.

    The expected total and its variance given the parameters are computed exactly at each of the ``n_draws``
    draws; across the draws they are close to linear in ``log theta`` (R^2 of 0.996 on CDNOW), so they are
    fitted by least squares on ``[1, log theta_d - log theta_hat]`` (the means; the logs of the variances) and
    evaluated at ``_N_VIRTUAL`` fresh draws of the same sampling distribution, with the fit's residuals
    (curvature) resampled into the means. This is the delta method on the log scale with the draws as evaluation
    points, and the quantiles of the total carry no noticeable Monte Carlo noise. With fewer draws than
    parameters + 5 the plain mixture over the draws is used.
    """

    def __init__(self, api: Any, gg: Any, theta: np.ndarray, rng: np.random.Generator) -> None:
        self.rng = rng
        self.notes: list[str] = []
        self._z: np.ndarray | None = None
        self._zg: np.ndarray | None = None
        self.api, self.gg, self.theta = api, gg, theta

    def _fresh(self) -> tuple[np.ndarray, np.ndarray | None]:
        if self._z is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ModelAssumptionWarning)  # said once already by the draws
                self._z = np.log(np.asarray(self.api.sample_params(_N_VIRTUAL, self.rng), dtype="float64")) \
                    - np.log(self.theta)[None, :]
                if self.gg is not None:
                    g = np.asarray(self.gg.sample_params(_N_VIRTUAL, self.rng), dtype="float64")
                    self._zg = np.log(g) - np.log(self.gg.params_.to_numpy(dtype="float64"))[None, :]
        return self._z, self._zg

    def totals(self, means: np.ndarray, variances: np.ndarray, z: np.ndarray,
               zg: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        X = np.c_[np.ones(len(means)), z] if zg is None else np.c_[np.ones(len(means)), z, zg]
        if len(means) < X.shape[1] + 5:
            note = (f"totals: {len(means)} parameter draws (fewer than the {X.shape[1] + 5} needed for the "
                    "linear response), so the plain mixture over them is used")
            if note not in self.notes:
                self.notes.append(note)
            return means, variances
        beta, *_ = np.linalg.lstsq(X, means, rcond=None)
        resid = means - X @ beta
        fz, fzg = self._fresh()
        Xv = np.c_[np.ones(len(fz)), fz] if zg is None else np.c_[np.ones(len(fz)), fz, fzg]
        vm = Xv @ beta + resid[self.rng.integers(0, len(resid), len(fz))]
        positive = variances > 0  # 0 for a zero horizon, or for spend draws with an infinite variance (q <= 2)
        if positive.sum() >= X.shape[1] + 5:
            gamma, *_ = np.linalg.lstsq(X[positive], np.log(variances[positive]), rcond=None)
            vv = np.exp(Xv @ gamma)
        else:
            vv = np.full(len(fz), float(np.mean(variances)))
        return vm, vv


def _purchase_api(model: Any, what: str) -> PurchaseModel:
    """The fitted purchase model (any of BetaGeo, ParetoNBD, ModifiedBetaGeo, BetaGeoBetaBinom)."""
    if not isinstance(model, PurchaseModel):
        raise TypeError(
            f"{what}: the first argument must be a fitted purchase model (BetaGeo, ParetoNBD, ModifiedBetaGeo or "
            f"BetaGeoBetaBinom); got {type(model).__name__}. Pass the purchase model first and the "
            "GammaGamma second: predictive_clv(bg, gg, rfm, ...)"
        )
    model._check_fitted()
    return model


def _spend_api(spend_model: Any, what: str) -> GammaGamma:
    if not isinstance(spend_model, GammaGamma):
        raise TypeError(
            f"{what}: spend_model must be a fitted GammaGamma (or None for purchases only); got "
            f"{type(spend_model).__name__}"
        )
    spend_model._check_fitted()
    return spend_model


def _forecast(
    model: Any,
    spend_model: Any,
    rfm: pd.DataFrame,
    *,
    horizon: Any,
    discount_rate: Any,
    margin: Any,
    step: Any,
    interval: Any,
    n_draws: Any,
    random_state: Any,
    progress: bool | None,
    what: str,
    totals: bool = False,
    n_min: pd.Series | None = None,
) -> _Forecast:
    api = _purchase_api(model, what)
    gg = _spend_api(spend_model, what) if spend_model is not None else None
    unit = api.time_unit_
    H = api._horizon(horizon, "horizon")  # whole periods for BG/BB
    step_len = _step_length(step, unit)
    margin = check_margin(margin)
    discount_rate = check_discount_rate(discount_rate)
    level = _check_interval(interval)
    if level is None and totals:
        raise ValueError("forecast_totals needs an interval level such as interval=0.9")
    n_draws = _check_draws(n_draws)
    step_rate = (1.0 + periodic_rate(discount_rate, "D")) ** (step_len * days_per(unit)) - 1.0

    # a table without attrs["time_unit"] is taken to be in the model's unit, with a warning (as fit does)
    # the point forecast is closed-form per row; only the intervals' count distributions gain from grouping
    index, codes, hist = api.histories(rfm, what, warn=True, unique=level is not None)
    hist = [np.asarray(h, dtype="float64") for h in hist]
    # customers per row: BG/BB tables may aggregate identical histories (a ``weight`` column); the totals count
    # each row that many times
    wspec = api._default_weights(rfm, None)
    weights = table_weights(rfm, wspec, len(index), what) if wspec is not None else None
    spend = scale = m_c = None
    if gg is not None:
        spend = np.array(gg.expected_spend(rfm).reindex(index), dtype="float64")  # ours: writable in the output
    if gg is not None and level is not None:  # each customer's spend posterior: for the intervals only
        sdata = validate_rfm(rfm, ("frequency", "monetary_value"), what=what)
        x_c = sdata["frequency"].to_numpy()
        m_c = np.where(x_c > 0, sdata["monetary_value"].to_numpy(), 0.0)
        _, scale = gg._posterior(gg.params_.to_numpy(dtype="float64"), x_c, m_c)
        scale = np.asarray(scale, dtype="float64")

    theta = api.params_.to_numpy(dtype="float64")
    n_steps = max(math.ceil(H / step_len - 1e-9), 0)
    edges = np.minimum(np.arange(1, n_steps + 1) * step_len, H)
    if getattr(api, "DISCRETE", False):
        edges = np.floor(edges + 1e-9)
    discount = (1.0 + step_rate) ** -np.arange(1, n_steps + 1, dtype="float64")
    x, tx, T = hist
    p_alive = np.asarray(api._p_alive(theta, x, tx, T), dtype="float64")
    total = np.zeros(len(x))
    discounted = np.zeros(len(x))
    if n_steps:
        # the alive part depends on (x, T) only, not on t_x (every model: the rate's and the dropout's posteriors
        # given alive at T), so it is computed once per distinct (x, T): far fewer than the histories when dates
        # are daily (the special functions are most of the time)
        pair, (px, pT), _ = unique_rows(x, T)
        p_total, p_disc = np.zeros(len(px)), np.zeros(len(px))
        chunk = max(1, _MAX_CELLS // n_steps)
        for lo in range(0, len(px), chunk):
            sl = slice(lo, lo + chunk)
            # E[purchases in (T, T + t_k] | alive] at every step edge; cumulative, so never decreasing
            cum = api._expected_if_alive(theta, edges[None, :], px[sl, None], np.zeros((1, 1)), pT[sl, None])
            cum = np.maximum.accumulate(np.asarray(cum, dtype="float64"), axis=1)  # guard against rounding
            per_step = np.diff(cum, axis=1, prepend=0.0)
            p_total[sl] = cum[:, -1]
            p_disc[sl] = per_step @ discount
        total, discounted = p_total[pair], p_disc[pair]
    disc_ratio = np.where(total > 0, discounted / np.where(total > 0, total, 1.0), 1.0)
    attrs = {
        "time_unit": unit,
        "horizon": H,
        "step": step_len,
        "n_steps": n_steps,
        "discount_rate": float(discount_rate),
        "discount_rate_per_step": step_rate,
        "margin": float(margin),
        "model": getattr(api, "NAME", type(model).__name__),
    }
    if weights is not None:
        attrs["weight"] = str(wspec)
    fc = _Forecast(index=index, codes=codes, unit=unit, horizon=H, p_alive=p_alive, expected=p_alive * total,
                   disc_ratio=disc_ratio, discounted=discounted, spend=spend, scale=scale, attrs=attrs,
                   weights=weights)
    if level is None:
        return fc

    # -- the predictive distribution -------------------------------------------------------------------------
    seeds = np.random.SeedSequence(random_state).spawn(2)
    draws = np.asarray(api.sample_params(n_draws, np.random.default_rng(seeds[0])), dtype="float64")
    gdraws = (np.asarray(gg.sample_params(n_draws, np.random.default_rng(seeds[1])), dtype="float64")
              if gg is not None else None)
    n_cust = np.bincount(codes, weights=weights, minlength=len(x)).astype("float64")
    w_c = np.ones(len(codes)) if weights is None else weights
    per_hist_min = None
    if n_min is not None:
        per_hist_min = np.zeros(len(x))
        np.maximum.at(per_hist_min, codes, np.asarray(n_min, dtype="float64"))

    sums: dict[str, list[np.ndarray]] = {k: [np.zeros(n_draws), np.zeros(n_draws)] for k in TOTAL_QUANTITIES}
    spend_ok = np.ones(n_draws, dtype=bool)
    if gg is not None and gdraws is not None and m_c is not None:
        # per history: sums over its customers of m and m^2 (m = 0 for x = 0), for the scale B = v + x m
        s1 = np.bincount(codes, weights=w_c * m_c, minlength=len(x))
        s2 = np.bincount(codes, weights=w_c * m_c * m_c, minlength=len(x))
        spend_ok = gdraws[:, 1] > 2.0  # q > 2: every customer's spend has a finite variance

    def on_moments(rows: np.ndarray, first: np.ndarray, second: np.ndarray) -> None:
        w = n_cust[rows]
        var = np.maximum(second - first * first, 0.0)
        sums["purchases"][0] += first @ w
        sums["purchases"][1] += var @ w
        if gdraws is None:
            return
        xr = x[rows]
        for d in range(n_draws):
            p_, q_, v_ = gdraws[d]
            A = p_ * xr + q_
            sb1 = w * v_ + xr * s1[rows]
            sb2 = w * v_ * v_ + 2 * v_ * xr * s1[rows] + xr * xr * s2[rows]
            mean = first[d] * p_ / (A - 1.0) * sb1
            if spend_ok[d]:
                g = (first[d] * p_ / ((A - 1) * (A - 2))
                     + p_ * p_ * (second[d] / ((A - 1) * (A - 2)) - first[d] ** 2 / (A - 1) ** 2))
                v = np.maximum(g, 0.0) * sb2
            else:
                v = np.zeros_like(mean)
            wr = disc_ratio[rows] * margin
            sums["revenue"][0][d] += mean.sum()
            sums["revenue"][1][d] += v.sum()
            sums["clv"][0][d] += (wr * mean).sum()
            sums["clv"][1][d] += (wr * wr * v).sum()

    counts = _count_mixture(api, theta, draws, H, hist, total, n_min=per_hist_min, on_moments=on_moments,
                            progress=progress)
    alpha = (1.0 - level) / 2.0
    fc.counts, fc.level, fc.n_draws = counts, level, n_draws
    fc.count_bounds = counts.quantiles([alpha, 1.0 - alpha])
    if gg is not None:
        p_hat, q_hat = (float(v) for v in gg.params_.iloc[:2])
        fc.ratio_bounds = _spend_ratio_quantiles(counts, x, p_hat, q_hat, [alpha, 1.0 - alpha])
        if not spend_ok.all():
            warnings.warn(
                f"{what}: {int((~spend_ok).sum())} of {n_draws} Gamma-Gamma parameter draws have q <= 2, where "
                "a customer's spend has an infinite variance; those draws count with their means only in the "
                "totals' intervals of revenue and CLV (heavy-tailed spend: look for extreme amounts)",
                ModelAssumptionWarning, stacklevel=3,
            )
            fc.notes.append(f"{int((~spend_ok).sum())} Gamma-Gamma draws with q <= 2 (infinite spend variance)")
    rng_virtual = np.random.default_rng(seeds[0].spawn(1)[0])
    z = np.log(draws) - np.log(theta)[None, :]
    zg = (np.log(gdraws) - np.log(gg.params_.to_numpy(dtype="float64"))[None, :]
          if gg is not None and gdraws is not None else None)
    virtual = _VirtualDraws(api, gg, theta, rng_virtual)
    for k, (means, variances) in sums.items():
        if gg is None and k != "purchases":
            continue
        fc.draw_totals[k] = virtual.totals(means, variances, z, zg if k != "purchases" else None)
    fc.notes.extend(virtual.notes)
    return fc


def _interval_attrs(fc: _Forecast, *, spend: bool) -> dict[str, Any]:
    includes = ["process", "parameter"] + (["spend"] if spend else [])
    return {
        "level": fc.level,
        "includes": includes,
        "bounds": "equal-tailed",
        "n_draws": fc.n_draws,
        "parameter_draws": "asymptotic sampling distribution of the estimates, normal on the log scale",
        "spend": ("Gamma-Gamma posterior of each customer's mean spend and the Gamma spread of each purchase, at "
                  "the Gamma-Gamma point estimates" if spend else None),
        "discounting": ("clv bounds use the customer's expected discount factor per purchase" if spend else None),
        "notes": list(fc.notes),
    }


# ------------------------------------------------------------------------------------------------------------
# public API


def predictive_clv(
    model: Any,
    spend_model: Any,
    rfm: pd.DataFrame,
    *,
    horizon: float | str,
    discount_rate: float = 0.0,
    margin: float = 1.0,
    step: float | str = "M",
    interval: float | None = None,
    n_draws: int = 20,
    random_state: Any = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Discounted expected value of each customer's purchases over ``horizon``, optionally with predictive
    intervals.

    Parameters
    ----------
    model:
        A fitted purchase model: :class:`~clvforecast.BetaGeo`, :class:`~clvforecast.ParetoNBD`,
        :class:`~clvforecast.ModifiedBetaGeo` or :class:`~clvforecast.BetaGeoBetaBinom` (BG/BB: a table with
        ``frequency``, ``recency``, ``n_periods``, horizons in whole periods; a ``weight`` column, customers per
        row, counts in the totals).
    spend_model:
        A fitted :class:`~clvforecast.GammaGamma`, or ``None`` for frequency-only data: then only the purchase
        columns are returned (no spend or CLV columns).
    rfm:
        RFM table in the purchase model's time unit: ``frequency``, ``recency``, ``T`` (BG/BB: ``n_periods``) and,
        with a spend model, ``monetary_value``. A table that does not record its unit (``attrs["time_unit"]``) is
        taken to be in the model's unit, with a :class:`~clvforecast.exceptions.DataQualityWarning` (as ``fit``
        warns).
    horizon:
        Length of the forecast, e.g. ``"12M"``, ``"52W"``, ``"365D"``, or a number in the model's time unit.
    discount_rate:
        Annual discount rate, a fraction in [0, 1) (0.1 for 10% a year; 1 or more is refused), converted to
        the step by compounding.
    margin:
        Profit margin applied to spend, a fraction in [0, 1] (1.0 gives revenue; above 1 is refused).
    step:
        Cash-flow period: a unit code (``"D"``, ``"W"``, ``"M"``, ``"Y"``), a duration (``"2W"``, ``"30D"``)
        or a number in the model's time unit. When the horizon is not a whole number of steps, the last step
        is shorter.
    interval:
        ``None`` (point forecast only) or a level such as ``0.9``: adds equal-tailed predictive intervals that
        include the purchase process, the parameter uncertainty and the spend (see the module docstring).
    n_draws:
        Parameter draws mixed into the intervals (20 by default; the time grows linearly with it). Per customer
        the parameters matter little next to the purchase process; the totals use them through a fitted
        linear response (see :func:`forecast_totals`).
    random_state:
        Seed of the parameter draws (an int or a ``numpy.random.SeedSequence``; ``None``, the default, draws
        fresh randomness). Pass a seed, e.g. 0, for bounds that are the same on every run (reports); with
        ``None`` the bounds of customers whose count sits at a quantile may move by one between runs. The draws
        come from the seed alone, and everything after them is computed per customer (no simulation), so a
        customer's bounds depend only on her history and the seed: scoring a table in batches with the same
        seed (as the Spark engine does) gives the same bounds as scoring it whole, to rounding (1e-12). The
        totals in ``attrs["totals"]`` are of the table given.
    progress:
        Show a progress bar on stderr when the intervals take more than 2 seconds: ``None`` (on a terminal
        only), ``True`` or ``False``.

    Returns
    -------
    DataFrame indexed by customer_id:

    ``expected_purchases``
        Expected purchases over the whole horizon (undiscounted; repeat transactions).
    ``probability_alive``
        Probability that the customer is active at T.
    ``expected_spend``
        Expected spend per transaction (currency; Gamma-Gamma), with a spend model.
    ``clv``
        Expected value over the horizon (currency, discounted, times margin), with a spend model.
    ``clv_if_alive``
        The same for a customer known to be active at T, the value if retained (``clv = probability_alive *
        clv_if_alive``), with a spend model.
    ``expected_purchases_lower``, ``expected_purchases_upper``
        With ``interval``: bounds of the number of purchases she will make over the horizon (whole numbers).
    ``clv_lower``, ``clv_upper``
        With ``interval`` and a spend model: bounds of her actual value over the horizon (currency, discounted,
        times margin; ``clv_lower`` is 0 whenever she may well make no purchase).

    ``attrs`` record ``time_unit``, ``horizon`` and ``step`` (in ``time_unit``), ``n_steps``, the annual and
    per-step discount rates, the ``margin`` and the ``model`` name; with ``interval``, ``attrs["interval"]`` is a
    plain dict: ``level``, ``includes`` (``["process", "parameter", "spend"]``), ``bounds`` (``"equal-tailed"``),
    ``n_draws``, how the parameters are drawn, how spend and discounting enter, and ``notes``; and
    ``attrs["totals"]`` holds the model-only intervals of the totals (:func:`forecast_totals` without past
    errors) as ``{"purchases": {"expected", "lower", "upper"}, "revenue": ..., "clv": ...}``.
    """
    fc = _forecast(model, spend_model, rfm, horizon=horizon, discount_rate=discount_rate, margin=margin,
                   step=step, interval=interval, n_draws=n_draws, random_state=random_state, progress=progress,
                   what="predictive_clv")
    return _clv_frame(fc)


def _clv_frame(fc: _Forecast) -> pd.DataFrame:
    """:func:`predictive_clv`'s table from a forecast (its columns, attrs and, with intervals, model-only
    totals)."""
    codes = fc.codes
    columns: dict[str, np.ndarray] = {
        "expected_purchases": fc.expected[codes],
        "probability_alive": fc.p_alive[codes],
    }
    if fc.spend is not None:
        margin = fc.attrs["margin"]
        clv_if_alive = margin * fc.spend * fc.discounted[codes]
        clv = fc.p_alive[codes] * clv_if_alive
        if not np.all(np.isfinite(clv)):
            bad = ~np.isfinite(clv)
            raise DataValidationError(  # pragma: no cover - the formulas are finite for every valid history
                f"predictive_clv: {int(bad.sum())} customers got a non-finite CLV, e.g. "
                f"{list(fc.index[bad][:3])}"
            )
        columns.update({"expected_spend": fc.spend, "clv": clv, "clv_if_alive": clv_if_alive})
    if fc.count_bounds is not None:
        columns["expected_purchases_lower"] = fc.count_bounds[codes, 0]
        columns["expected_purchases_upper"] = fc.count_bounds[codes, 1]
        if fc.ratio_bounds is not None and fc.scale is not None:
            w = fc.attrs["margin"] * fc.disc_ratio[codes] * fc.scale
            columns["clv_lower"] = w * fc.ratio_bounds[codes, 0]
            columns["clv_upper"] = w * fc.ratio_bounds[codes, 1]
    out = pd.DataFrame(columns, index=fc.index, copy=False)  # the arrays are ours: no consolidation copy
    out.attrs = dict(fc.attrs)
    if fc.level is not None:
        out.attrs["interval"] = _interval_attrs(fc, spend=fc.spend is not None)
        tot = _totals_frame(fc, out)
        out.attrs["totals"] = {
            k: {c: float(tot.loc[k, c]) for c in ("expected", "lower", "upper")} for k in tot.index
        }
    return out


# ------------------------------------------------------------------------------------------------------------
# totals


def _mixture_quantiles(means: np.ndarray, variances: np.ndarray, probs: Sequence[float]) -> list[float]:
    """Quantiles of the equal-weight mixture of Normal(means[d], variances[d]) (bisection on the CDF)."""
    sd = np.sqrt(np.maximum(variances, 0.0))
    spread = float(np.max(sd)) if len(sd) else 0.0
    lo_all = float(np.min(means - 10 * sd)) - 1e-9
    hi_all = float(np.max(means + 10 * sd)) + 1e-9
    out = []
    for pr in probs:
        lo, hi = lo_all, hi_all
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            with np.errstate(divide="ignore", invalid="ignore"):
                z = np.where(sd > 0, (mid - means) / np.where(sd > 0, sd, 1.0), np.where(mid >= means, np.inf, -np.inf))
            if special.ndtr(z).mean() < pr:
                lo = mid
            else:
                hi = mid
            if hi - lo <= 1e-9 * max(1.0, abs(mid), spread):
                break
        out.append(0.5 * (lo + hi))
    return out


def _totals_frame(fc: _Forecast, per_customer: pd.DataFrame) -> pd.DataFrame:
    assert fc.level is not None
    alpha = (1.0 - fc.level) / 2.0
    rows = {}
    w = np.ones(len(per_customer)) if fc.weights is None else fc.weights
    expected = {"purchases": float(w @ per_customer["expected_purchases"].to_numpy())}
    if "clv" in per_customer:
        expected["revenue"] = float(w @ (per_customer["expected_purchases"] * per_customer["expected_spend"]).to_numpy())
        expected["clv"] = float(w @ per_customer["clv"].to_numpy())
    for k, (means, variances) in fc.draw_totals.items():
        lo, hi = _mixture_quantiles(means, variances, [alpha, 1.0 - alpha])
        rows[k] = {"expected": expected[k], "lower": max(lo, 0.0), "upper": max(hi, 0.0)}
    return pd.DataFrame.from_dict(rows, orient="index")[["expected", "lower", "upper"]]


def _past_errors(past_errors: pd.DataFrame, method: str) -> pd.DataFrame:
    """Normalise a table of past totals to ``target, predicted, actual`` (+ ``cutoff``, ``log_error``)."""
    if not isinstance(past_errors, pd.DataFrame):
        raise TypeError(
            "past_errors must be a DataFrame: the result of clvforecast.backtest(...) or of "
            f"clvforecast.evaluation.total_errors(...); got {type(past_errors).__name__}"
        )
    t = past_errors
    if "metric" in t.columns:  # a backtest table
        sel = t[t["metric"].isin(["total_predicted", "total_actual"]) & (t["method"] == method)]
        if sel.empty:
            raise ValueError(
                f"past_errors has no total_predicted/total_actual rows for method {method!r} (methods: "
                f"{sorted(t['method'].unique())}); run backtest(..., model={method!r})"
            )
        t = sel.pivot_table(index=["cutoff", "target"], columns="metric", values="value").reset_index()
        t = t.rename(columns={"total_predicted": "predicted", "total_actual": "actual"})
    missing = [c for c in ("target", "predicted", "actual") if c not in t.columns]
    if missing:
        raise ValueError(f"past_errors has no column(s) {missing}; it needs target, predicted and actual")
    t = t.copy()
    ok = (t["predicted"] > 0) & (t["actual"] > 0)
    t["log_error"] = np.where(ok, np.log(np.where(ok, t["actual"], 1.0) / np.where(ok, t["predicted"], 1.0)),
                              np.nan)
    return t


def _calibrated(means: np.ndarray, variances: np.ndarray, errors: np.ndarray, probs: Sequence[float],
                rng: np.random.Generator, n: int = 200_000) -> tuple[list[float], dict[str, Any]]:
    """Quantiles of (model-only total) * exp(eps), eps ~ mean(e) + sd(e) sqrt(1 + 1/K) t_{K-1}."""
    K = len(errors)
    mu, sd = float(np.mean(errors)), float(np.std(errors, ddof=1))
    d = rng.integers(0, len(means), n)
    total = means[d] + np.sqrt(np.maximum(variances[d], 0.0)) * rng.standard_normal(n)
    eps = mu + sd * math.sqrt(1.0 + 1.0 / K) * rng.standard_t(K - 1, n)
    values = np.maximum(total, 0.0) * np.exp(np.clip(eps, -50.0, 50.0))
    info = {"n_cutoffs": K, "mean_log_error": mu, "sd_log_error": sd,
            "mean_pct_error": float(100 * (math.exp(mu) - 1))}
    return [float(v) for v in np.quantile(values, probs)], info


def forecast_totals(
    model: Any,
    spend_model: Any,
    rfm: pd.DataFrame,
    *,
    horizon: float | str,
    discount_rate: float = 0.0,
    margin: float = 1.0,
    step: float | str = "M",
    interval: float = 0.9,
    past_errors: pd.DataFrame | None = None,
    n_draws: int = 20,
    random_state: Any = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Purchases, revenue and CLV of the whole base over ``horizon``, with the interval of each total.

    Arguments as :func:`predictive_clv`; ``spend_model=None`` gives the purchases row only.

    ``past_errors``: the model's errors on the totals at earlier cutoffs, to calibrate the interval on them: a
    :func:`~clvforecast.backtest` table (its ``total_predicted``/``total_actual`` rows of the same model) or a
    table with columns ``target`` (``"purchases"``/``"spend"``), ``predicted`` and ``actual``
    (:func:`clvforecast.evaluation.total_errors`). At least two cutoffs are needed. The spend errors calibrate
    revenue and CLV (discounting and margin scale the total without changing its relative error).

    Returns
    -------
    DataFrame indexed by ``quantity`` (``purchases``, ``revenue``, ``clv``) with

    ``expected``
        The point forecast: the sum of the customers' expected values (``predictive_clv`` columns
        ``expected_purchases``, ``expected_purchases * expected_spend`` and ``clv``). Revenue is undiscounted
        spend; CLV is discounted and times ``margin``.
    ``lower``, ``upper``
        Model-only interval: the distribution of the sum over customers (process, parameter and spend
        uncertainty; customers independent given the parameters). It ignores shocks common to all customers.
    ``calibrated_lower``, ``calibrated_upper``
        With ``past_errors``: the backtest-calibrated interval, the model-only distribution times the past
        errors' spread and bias (see the module docstring).

    ``attrs``: ``level``, ``n_customers``, ``horizon``, ``time_unit``, ``model``, ``n_draws``, ``includes``,
    ``methods`` (one sentence per interval kind) and, with ``past_errors``, ``past_errors`` = per target
    ``{n_cutoffs, mean_log_error, sd_log_error, mean_pct_error}``. ``out.to_dict("index")`` gives plain dicts.
    """
    fc = _forecast(model, spend_model, rfm, horizon=horizon, discount_rate=discount_rate, margin=margin,
                   step=step, interval=interval, n_draws=n_draws, random_state=random_state, progress=progress,
                   what="forecast_totals", totals=True)
    return _totals_with_errors(fc, _clv_frame(fc), past_errors, random_state)


def _totals_with_errors(fc: _Forecast, per_customer: pd.DataFrame, past_errors: pd.DataFrame | None,
                        random_state: Any) -> pd.DataFrame:
    out = _totals_frame(fc, per_customer)
    out.index.name = "quantity"
    assert fc.level is not None
    alpha = (1.0 - fc.level) / 2.0
    method = fc.attrs["model"]
    attrs: dict[str, Any] = {
        "level": fc.level,
        "n_customers": len(fc.index),
        "horizon": fc.horizon,
        "time_unit": fc.unit,
        "model": method,
        "n_draws": fc.n_draws,
        "includes": ["process", "parameter"] + (["spend"] if fc.spend is not None else []),
        "methods": {
            "model-only": ("lower/upper: the distribution of the sum over customers, who are independent given "
                           "the parameters (normal given the parameters, mixed over parameter draws); it ignores "
                           "shocks that hit every customer at once"),
        },
        "notes": list(fc.notes),
    }
    if past_errors is not None:
        errs = _past_errors(past_errors, method)
        rng = np.random.default_rng(np.random.SeedSequence(random_state).spawn(3)[2])
        lows, highs, info = [], [], {}
        for quantity in out.index:
            target = "purchases" if quantity == "purchases" else "spend"
            e = errs.loc[errs["target"] == target, "log_error"].dropna().to_numpy(dtype="float64")
            if len(e) < 2:
                raise ValueError(
                    f"past_errors holds {len(e)} usable past total(s) of {target}; the calibrated interval needs "
                    "at least two earlier cutoffs (backtest(..., cutoffs=[...]) with two or more dates)"
                )
            means, variances = fc.draw_totals[quantity]
            (lo, hi), info[target] = _calibrated(means, variances, e, [alpha, 1.0 - alpha], rng)
            lows.append(lo)
            highs.append(hi)
        out["calibrated_lower"], out["calibrated_upper"] = lows, highs
        attrs["past_errors"] = info
        attrs["methods"]["backtest-calibrated"] = (
            "calibrated_lower/upper: the model-only distribution times exp(eps), eps drawn from the past log "
            "errors of the totals (their mean and spread, Student t over the cutoffs): carries the model's own "
            "past misses, shocks included"
        )
    out.attrs = attrs
    return out
