"""The estimation engine: maximum likelihood on log-parameters with analytic gradients.

Every model supplies its log-likelihood per (unique) history and the gradient with respect to its
parameters; this module turns them into a fit:

* the objective is the weighted *mean* negative log-likelihood of ``phi = log(theta)`` (plus an optional L2
  penalty ``penalizer * sum(theta**2)``), so that its gradient and Hessian are of order one whatever the
  number of customers;
* cold starts are run by scipy's L-BFGS-B inside a box ``LOG_BOUNDS`` on ``phi`` (``1e-10 .. 1e10``), then
  polished by Newton steps on a Hessian obtained by central differences of the analytic gradient (quadratic
  convergence: the reported optimum is accurate to about 1e-10 in ``phi`` when the Hessian is definite);
* large tables are fitted first on a seeded subsample of their distinct histories; its optimum and Hessian
  (of the *mean* objective, so directly comparable) start a Newton iteration on the full table that needs
  a handful of evaluations;
* :func:`diagnose` turns the Hessian of the total log-likelihood in log-parameters into the asymptotic
  covariance of ``log(theta)``, the parameters at a bound or not identified, and plain-words messages.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

#: Box on the log-parameters used by the optimizer (parameters between 1e-10 and 1e10, in the table's units).
LOG_BOUNDS = (math.log(1e-10), math.log(1e10))
#: A parameter whose log lies within this distance of ``LOG_BOUNDS`` is reported ``at_bound``.
BOUND_TOLERANCE = 0.05
#: Standard error of log(theta) above which a parameter counts as not identified by the data: its 95%
#: interval would span more than a factor exp(2 * 1.96 * 3) = 1.3e5.
SE_LOG_MAX = 3.0
#: Tables with at least this many distinct histories are fitted in two stages (subsample, then full table).
WARM_START_MIN_ROWS = 50_000
#: Step in phi of the central differences of the analytic gradient that give the Hessian.
HESSIAN_STEP = 1e-4

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


@dataclass
class Optimum:
    """Result of one optimisation: ``phi`` (log-parameters), mean objective ``value`` and ``gradient``, the
    Hessian of the mean objective ``hessian`` (central differences), whether the Newton polish converged,
    and bookkeeping."""

    phi: np.ndarray
    value: float
    gradient: np.ndarray
    hessian: np.ndarray
    converged: bool
    n_evaluations: int
    start: int = 0
    notes: list[str] = field(default_factory=list)


class _Counted:
    """Wrap an objective: count evaluations and turn non-finite results into +inf (rejected steps)."""

    def __init__(self, fun: Objective) -> None:
        self.fun, self.n = fun, 0

    def __call__(self, phi: np.ndarray) -> tuple[float, np.ndarray]:
        self.n += 1
        with np.errstate(all="ignore"):
            value, grad = self.fun(np.asarray(phi, dtype="float64"))
        if not (math.isfinite(value) and np.all(np.isfinite(grad))):
            return math.inf, np.zeros_like(phi)
        return float(value), np.asarray(grad, dtype="float64")


def fd_hessian(fun: Objective, phi: np.ndarray, h: float = HESSIAN_STEP,
               g0: np.ndarray | None = None) -> np.ndarray:
    """Hessian of ``fun`` at ``phi`` by central differences of its analytic gradient (2k evaluations), or by
    forward differences from the known gradient ``g0`` (k evaluations, relative error about 1e-6)."""
    k = len(phi)
    H = np.empty((k, k))
    for j in range(k):
        e = np.zeros(k)
        if g0 is None:
            e[j] = h
            gp, gm = fun(phi + e)[1], fun(phi - e)[1]
            H[:, j] = (gp - gm) / (2 * h)
        else:
            e[j] = h / 10
            H[:, j] = (fun(phi + e)[1] - g0) / (h / 10)
    return (H + H.T) / 2


def _newton_step(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Newton step with the Hessian's eigenvalues made positive (|lambda|, floored), so it always descends."""
    lam, V = np.linalg.eigh(H)
    top = float(np.max(np.abs(lam))) if lam.size else 1.0
    lam = np.maximum(np.abs(lam), max(top * 1e-12, 1e-300))
    step = -V @ ((V.T @ g) / lam)
    norm = float(np.max(np.abs(step)))
    return step * (5.0 / norm) if norm > 5.0 else step  # at most a factor e^5 per iteration


def newton(fun: _Counted, phi: np.ndarray, H0: np.ndarray | None = None, *, max_iter: int = 60,
           step_tol: float = 1e-10, forward: bool = False, refresh: float = 1e-3
           ) -> tuple[np.ndarray, float, np.ndarray, np.ndarray, bool]:
    """Damped Newton iterations inside ``LOG_BOUNDS``: returns ``(phi, value, gradient, hessian, converged)``.

    ``H0`` (e.g. a subsample's Hessian of the mean objective) is used until the steps become small, then the
    Hessian is recomputed by central differences; a failed line search also refreshes it. Converged when a
    full Newton step on a fresh Hessian is below ``step_tol`` in every log-parameter (or only pushes against
    the box). ``forward``: Hessians by forward differences (half the evaluations; for large tables).
    ``refresh``: a step of ``H0`` smaller than this (in every log-parameter) triggers the fresh Hessian.
    """
    lo, hi = LOG_BOUNDS
    phi = np.clip(np.asarray(phi, dtype="float64"), lo, hi)
    f, g = fun(phi)

    def hessian() -> np.ndarray:
        return fd_hessian(fun, phi, g0=g if forward else None)

    H, fresh = (H0, False) if H0 is not None else (hessian(), True)
    converged = False
    flat = 0  # accepted iterations in a row that moved without changing the value (a flat direction)
    for _ in range(max_iter):
        step = _newton_step(H, g)
        trial = np.clip(phi + step, lo, hi)
        move = trial - phi
        if fresh and float(np.max(np.abs(move))) < step_tol:
            converged = True
            break
        t, accepted = 1.0, False
        gnorm = float(np.linalg.norm(g))
        while t > 1e-8:
            cand = np.clip(phi + t * step, lo, hi)
            f2, g2 = fun(cand)
            if f2 <= f + 1e-4 * float(g @ (cand - phi)) and f2 < f:
                accepted = True
                break
            # within rounding of the optimum the value cannot tell: a smaller gradient can
            if abs(f2 - f) <= 1e-13 * max(1.0, abs(f)) and float(np.linalg.norm(g2)) < gnorm:
                accepted = True
                break
            t /= 4
        if not accepted:
            if fresh:
                # no progress along a Newton direction of a fresh Hessian: at the optimum within rounding
                converged = float(np.max(np.abs(move))) < 1e-6
                break
            H, fresh = hessian(), True
            continue
        moved = float(np.max(np.abs(cand - phi)))
        flat = flat + 1 if (f - f2 <= 1e-11 * max(1.0, abs(f)) and moved > 1e-4) else 0
        phi, f, g = cand, f2, g2
        if flat >= 3:  # drifting along a flat direction (a parameter running off): stop, not converged
            break
        if not fresh and moved < refresh:
            H, fresh = hessian(), True
        elif fresh and moved > 1e-2:
            H = hessian()
    if not fresh:
        H = hessian()
    return phi, f, g, H, converged


def minimize(fun: Objective, starts: Sequence[np.ndarray], *, H0: np.ndarray | None = None,
             accept: Callable[[Optimum], bool] | None = None, forward: bool = False
             ) -> tuple[Optimum, list[Optimum]]:
    """Minimise ``fun`` (mean objective of log-parameters) from each start until one is acceptable.

    With ``H0`` the first start is taken to be a warm start (Newton iterations from it with that Hessian);
    other starts run L-BFGS-B in the box and a Newton polish. ``accept(opt)`` (default: converged with a
    positive definite Hessian) stops the search early. Returns the best optimum (lowest value) and all tried.
    """
    counted = _Counted(fun)
    lo, hi = LOG_BOUNDS
    tried: list[Optimum] = []
    for k, start in enumerate(starts):
        phi0 = np.clip(np.asarray(start, dtype="float64"), lo, hi)
        notes: list[str] = []
        n0 = counted.n
        if k == 0 and H0 is not None:
            # warm start on a large table, where each evaluation is costly: the subsample's Hessian is used
            # while the steps exceed 0.003, and the optimum is taken as reached when a Newton step on a fresh
            # Hessian is below 1e-8 in every log-parameter (relative error about 1e-8 in the parameters, far
            # inside their standard errors; about two full-table evaluations fewer than 1e-3 and 1e-10)
            phi, f, g, H, conv = newton(counted, phi0, H0, forward=True, step_tol=1e-8, refresh=3e-3)
        else:
            if not math.isfinite(counted(phi0)[0]):
                continue
            res = optimize.minimize(counted, phi0, jac=True, method="L-BFGS-B", bounds=[(lo, hi)] * len(phi0),
                                    options={"maxiter": 2000, "ftol": 1e-12, "gtol": 1e-9, "maxcor": 20})
            if not res.success:
                notes.append(f"L-BFGS-B: {res.message}")
            phi, f, g, H, conv = newton(counted, res.x, forward=forward)
        if not math.isfinite(f):
            continue
        opt = Optimum(phi, f, g, H, conv, counted.n - n0, start=k, notes=notes)
        tried.append(opt)
        ok = accept(opt) if accept is not None else (conv and bool(np.all(np.linalg.eigvalsh(H) > 0)))
        if ok:
            break
        # the same (degenerate) optimum reached from two starts: more starts will not find another one
        if any(abs(o.value - opt.value) <= 1e-9 * max(1.0, abs(opt.value)) for o in tried[:-1]):
            break
    if not tried:
        raise FloatingPointError("the log-likelihood is not finite at any starting point")
    best = min(tried, key=lambda o: o.value)
    return best, tried


@dataclass
class Assessment:
    """What :func:`diagnose` finds: covariance of log-parameters (NaN where not identified), per-parameter
    identification, parameters at a bound, the condition number and whether the Hessian is positive
    definite."""

    log_covariance: np.ndarray
    identified: np.ndarray
    at_bound: list[str]
    condition: float
    positive_definite: bool
    se_log: np.ndarray


def diagnose(phi: np.ndarray, info: np.ndarray, names: Sequence[str]) -> Assessment:
    """Assess a fit from the observed information ``info`` (Hessian of the *total* negative log-likelihood
    in log-parameters).

    A parameter is *not identified* when its log lies at the optimizer's box (``BOUND_TOLERANCE``), when the
    Hessian is not positive definite in a direction that involves it, or when the standard error of its log
    exceeds ``SE_LOG_MAX``. The covariance of the identified block is the inverse of their sub-Hessian (the
    conditional covariance with the others held at their values); other entries are NaN.
    """
    k = len(phi)
    lo, hi = LOG_BOUNDS
    at_bound = [names[j] for j in range(k) if phi[j] <= lo + BOUND_TOLERANCE or phi[j] >= hi - BOUND_TOLERANCE]
    info = (info + info.T) / 2
    lam, V = np.linalg.eigh(info) if np.all(np.isfinite(info)) else (np.full(k, np.nan), np.eye(k))
    pd_ok = bool(np.all(np.isfinite(lam)) and lam.min() > 0)
    condition = float(lam.max() / lam.min()) if pd_ok else math.inf
    identified = np.array([n not in at_bound for n in names])
    se_log = np.full(k, np.nan)
    if pd_ok:
        cov = np.linalg.inv(info)
        se_log = np.sqrt(np.clip(np.diag(cov), 0, None))
        identified &= se_log <= SE_LOG_MAX
    elif np.all(np.isfinite(lam)):
        top = max(float(np.max(np.abs(lam))), 1e-300)
        for i in np.flatnonzero(lam <= 1e-12 * top):
            identified &= np.abs(V[:, i]) < 0.1  # parameters that load on a flat or wrong-signed direction
    else:
        identified[:] = False
    cov_log = np.full((k, k), np.nan)
    idx = np.flatnonzero(identified)
    while idx.size:
        sub = info[np.ix_(idx, idx)]
        try:
            np.linalg.cholesky(sub)
        except np.linalg.LinAlgError:
            # drop the parameter with the weakest curvature and try again
            worst = idx[int(np.argmin(np.diag(sub)))]
            identified[worst] = False
            idx = np.flatnonzero(identified)
            continue
        c = np.linalg.inv(sub)
        c = (c + c.T) / 2
        if np.all(np.sqrt(np.clip(np.diag(c), 0, None)) <= SE_LOG_MAX):
            cov_log[np.ix_(idx, idx)] = c
            if not pd_ok:
                se_log[idx] = np.sqrt(np.diag(c))
            break
        worst = idx[int(np.argmax(np.diag(c)))]
        identified[worst] = False
        idx = np.flatnonzero(identified)
    se_log = np.where(identified, se_log, np.nan)
    return Assessment(cov_log, identified, at_bound, condition, pd_ok, se_log)
