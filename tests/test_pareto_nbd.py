"""ParetoNBD: the published CDNOW numbers, the likelihood against 30-digit quadrature, lifetimes as an oracle,
and the predictive distribution P(X(t) = n | history) against sums and a simulation."""

from __future__ import annotations

import math
import warnings

import mpmath as mp
import numpy as np
import pandas as pd
import pytest

from clvforecast.models import ParetoNBD, _base

BTYD = (0.553, 10.58, 0.606, 11.656)  # BTYD walkthrough's parameters, as printed
# The walkthrough's predictions were computed at its unrounded estimates. These reproduce all seven of its
# printed predictions (25.45647, 0.997874, 1.473434 and the four paradox values) to 4e-7 relative (P(alive),
# printed to 6 digits, to 2e-6): found by least squares on those seven numbers (3 degrees of freedom to
# spare, so the agreement is itself a check); they round to the printed .553, 10.58, .606, 11.657.
BTYD_FULL = (0.55337837, 10.5795306, 0.60589204, 11.65719016)


def rel(a: float, b: float) -> float:
    return abs(a / b - 1)


def hist(*rows: tuple[float, float, float]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["frequency", "recency", "T"], index=pd.RangeIndex(1, len(rows) + 1))
    df.index.name = "customer_id"
    df.attrs["time_unit"] = "W"
    return df


def fixed(theta: tuple[float, ...]) -> ParetoNBD:
    """A ParetoNBD with given parameters (weeks), through the lifetimes bridge's constructor path."""
    m = ParetoNBD.from_lifetimes(_fitter(theta), time_unit="W")
    return m


def _fitter(theta: tuple[float, ...]):  # noqa: ANN202
    lifetimes = _base.import_lifetimes()
    f = lifetimes.ParetoNBDFitter()
    f.params_ = pd.Series(theta, index=["r", "alpha", "s", "beta"])
    return f


@pytest.fixture(scope="module")
def pnbd(cdnow_cal: pd.DataFrame) -> ParetoNBD:
    return ParetoNBD().fit(cdnow_cal)


# ----------------------------------------------------------------------------------------------------------
# published numbers


def test_parameters_log_likelihood_and_standard_errors_match_clvtools(pnbd: ParetoNBD) -> None:
    p = pnbd.params_
    for name, published in {"r": 0.5531, "alpha": 10.5763, "s": 0.6062}.items():
        assert rel(p[name], published) < 0.002, name
    assert rel(p["beta"], 11.6715) < 0.01  # weakly identified
    assert pnbd.log_likelihood_ == pytest.approx(-9594.976, abs=0.01)
    s = pnbd.summary
    for name, se in {"r": 0.0476, "alpha": 0.8427, "s": 0.1873, "beta": 6.2105}.items():
        assert rel(s.loc[name, "se"], se) < 0.01, name
    assert s["identified"].all() and pnbd.diagnostics_["converged"] and pnbd.diagnostics_["message"] == ""
    assert (s["lower"] > 0).all()  # log-scale interval for the weakly identified beta


def test_predictions_at_the_fitted_parameters(pnbd: ParetoNBD) -> None:
    h = hist((26, 30.857, 31))
    assert pnbd.expected_purchases(h, 52).iloc[0] == pytest.approx(25.455, abs=0.002)
    assert pnbd.probability_alive(h).iloc[0] == pytest.approx(0.99787, abs=1e-5)


def test_btyd_walkthrough_numbers() -> None:
    m = fixed(BTYD_FULL)
    h = hist((26, 30.857, 31))
    assert rel(m.expected_purchases(h, 52).iloc[0], 25.45647) < 1e-6
    assert rel(m.probability_alive(h).iloc[0], 0.997874) < 3e-6
    assert rel(m.expected_purchases_new_customer(52), 1.473434) < 1e-6
    paradox = m.expected_purchases(hist((10, 20, 39), (15, 20, 39), (20, 20, 39), (25, 20, 39)), 52).to_numpy()
    for got, published in zip(paradox, [0.7062289, 0.1442396, 0.02250658, 0.00309267], strict=True):
        assert rel(got, published) < 1e-6
    # at the printed (rounded) parameters the same predictions agree with lifetimes' closed forms
    rounded, ref = fixed(BTYD), _fitter(BTYD)
    assert rel(rounded.expected_purchases(h, 52).iloc[0],
               ref.conditional_expected_number_of_purchases_up_to_time(52, 26, 30.857, 31)) < 1e-10
    assert rel(rounded.expected_purchases(h, 52).iloc[0], 25.45647) < 1e-4


# ----------------------------------------------------------------------------------------------------------
# the likelihood against an independent computation


def mp_loglik(theta: tuple[float, ...], x: float, tx: float, T: float) -> float:
    """log L from the integral form with 30-digit arithmetic (mpmath's tanh-sinh quadrature)."""
    mp.mp.dps = 30
    r, a, s, b = (mp.mpf(v) for v in theta)
    x, tx, T = mp.mpf(x), mp.mpf(tx), mp.mpf(T)
    alive = (a + T) ** (-(r + x)) * (b + T) ** (-s)
    if T > tx:
        width = (a + tx) / (r + x + 1)  # the integrand's decay scale at t_x: split the range there
        points = sorted({tx, T, *(tx + width * k for k in (0.01, 0.1, 0.3, 1, 2, 4, 8, 16, 32, 64)
                                 if tx + width * k < T)})
        f = lambda u: (a + u) ** (-(r + x)) * (b + u) ** (-(s + 1))  # noqa: E731
        integral = mp.quad(f, points, maxdegree=10)
    else:
        integral = mp.mpf(0)
    log_l = mp.loggamma(r + x) - mp.loggamma(r) + r * mp.log(a) + s * mp.log(b) + mp.log(alive + s * integral)
    return float(log_l)


@pytest.mark.parametrize("theta", [
    BTYD,
    (0.55, 10.0, 0.6, 10.0),  # alpha == beta
    (0.55, 10.0, 0.6, 10.0 + 1e-9),  # alpha close to beta
    (0.55, 10.0, 0.6, 9.999),
    (2.0, 80.0, 3.0, 5.0),  # alpha >> beta: quadrature branch
    (0.3, 2.0, 1.5, 60.0),  # beta >> alpha
    (5.0, 1.0, 0.05, 0.5),
])
@pytest.mark.parametrize("history", [(0, 0.0, 39.0), (1, 0.5, 39.0), (2, 30.43, 38.86), (26, 30.857, 31.0),
                                     (10, 20.0, 39.0), (5000, 39.0, 39.0), (5000, 38.0, 39.0), (3, 12.0, 12.0),
                                     (200, 1.0, 400.0)])
def test_log_likelihood_against_30_digit_quadrature(theta, history) -> None:  # noqa: ANN001
    ours = ParetoNBD._loglik(theta, *(np.array([v], float) for v in history))[0]
    assert np.isfinite(ours)
    assert ours == pytest.approx(mp_loglik(theta, *history), rel=1e-9, abs=1e-9)


def test_log_likelihood_agrees_with_lifetimes_where_lifetimes_is_finite(cdnow_cal: pd.DataFrame) -> None:
    lifetimes = _base.import_lifetimes()
    x, tx, T = (cdnow_cal[c].to_numpy() for c in ("frequency", "recency", "T"))
    for theta in (BTYD, (1.0, 5.0, 2.0, 20.0), (0.4, 20.0, 0.3, 3.0)):
        with np.errstate(all="ignore"):
            theirs = lifetimes.ParetoNBDFitter._conditional_log_likelihood(theta, x, tx, T)
        ok = np.isfinite(theirs)
        assert ok.mean() > 0.99
        np.testing.assert_allclose(ParetoNBD._loglik(theta, x, tx, T)[ok], theirs[ok], rtol=1e-9)


def test_same_estimates_as_lifetimes(pnbd: ParetoNBD, cdnow_cal: pd.DataFrame) -> None:
    # lifetimes' Nelder-Mead with a tightened tolerance (its default 1e-4 stops at about 1e-4 relative)
    lifetimes = _base.import_lifetimes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lifetimes.ParetoNBDFitter().fit(cdnow_cal["frequency"], cdnow_cal["recency"], cdnow_cal["T"],
                                              tol=1e-10)
    np.testing.assert_allclose(pnbd.params_.to_numpy(), ref.params_[["r", "alpha", "s", "beta"]].to_numpy(),
                               rtol=1e-6)


def test_predictions_equal_lifetimes_and_to_lifetimes_round_trip(pnbd: ParetoNBD, cdnow_cal: pd.DataFrame) -> None:
    ref = pnbd.to_lifetimes()
    assert type(ref).__name__ == "ParetoNBDFitter"
    x, tx, T = (cdnow_cal[c].to_numpy() for c in ("frequency", "recency", "T"))
    with np.errstate(all="ignore"):
        e_ref = ref.conditional_expected_number_of_purchases_up_to_time(39, x, tx, T)
        pa_ref = ref.conditional_probability_alive(x, tx, T)
    np.testing.assert_allclose(pnbd.expected_purchases(cdnow_cal, 39).to_numpy(), e_ref, rtol=1e-8)
    np.testing.assert_allclose(pnbd.probability_alive(cdnow_cal).to_numpy(), pa_ref, rtol=1e-8)
    assert pnbd.expected_purchases_new_customer(52) == pytest.approx(ref.expected_number_of_purchases_up_to_time(52),
                                                                      rel=1e-10)
    back = ParetoNBD.from_lifetimes(ref, time_unit="W")
    np.testing.assert_array_equal(back.params_.to_numpy(), pnbd.params_.to_numpy())


# ----------------------------------------------------------------------------------------------------------
# predictive distribution


@pytest.mark.parametrize(("x", "tx", "T", "t"), [(2, 30.43, 38.86, 39.0), (26, 30.857, 31.0, 52.0),
                                                 (0, 0.0, 39.0, 39.0), (0, 0.0, 0.0, 78.0), (10, 20.0, 39.0, 5.0)])
def test_pmf_is_a_distribution_with_the_right_mean(x, tx, T, t) -> None:  # noqa: ANN001
    theta = np.array(BTYD)
    n_max = 400
    p = ParetoNBD._pmf(theta, t, n_max, np.array([x], float), np.array([tx], float), np.array([T], float))[0]
    assert np.all(p >= 0)
    assert p.sum() == pytest.approx(1.0, abs=1e-10)
    mean = ParetoNBD._expected(theta, t, np.array([x], float), np.array([tx], float), np.array([T], float))[0]
    assert (np.arange(n_max + 1) * p).sum() == pytest.approx(mean, rel=1e-7)


def test_pmf_against_a_simulation_of_the_process() -> None:
    # customers drawn from the priors; those without a purchase in (0, T] have the history (0, 0, T); count
    # their purchases in (T, T + t]. 4 standard errors of each simulated frequency.
    r, alpha, s, beta = BTYD
    T, t, n_sim = 10.0, 30.0, 400_000
    rng = np.random.default_rng(7)
    lam = rng.gamma(r, 1 / alpha, n_sim)
    mu = rng.gamma(s, 1 / beta, n_sim)
    tau = rng.exponential(1 / mu)
    first = rng.poisson(lam * np.minimum(tau, T))
    later = rng.poisson(lam * np.clip(np.minimum(tau, T + t) - T, 0, None))
    kept = later[first == 0]
    ours = ParetoNBD._pmf(np.array(BTYD), t, 6, np.array([0.0]), np.array([0.0]), np.array([T]))[0]
    for n in range(7):
        freq = float(np.mean(kept == n))
        se = math.sqrt(ours[n] * (1 - ours[n]) / len(kept))
        assert abs(freq - ours[n]) < 4 * se + 1e-12, n
    assert ParetoNBD().__class__.DISCRETE is False


def mp_log_I(theta: tuple[float, ...], x: float, tx: float, T: float) -> float:
    """log of Int_{t_x}^T (alpha+u)^-(r+x) (beta+u)^-(s+1) du with 30 digits (mpmath)."""
    mp.mp.dps = 30
    r, a, s, b = (mp.mpf(v) for v in theta)
    f = lambda u: (a + u) ** (-(r + x)) * (b + u) ** (-(s + 1))  # noqa: E731
    width = (a + tx) / (r + x + 1)
    points = sorted({mp.mpf(tx), mp.mpf(T), *(tx + width * k for k in (0.1, 1, 4, 16, 64) if tx + width * k < T)})
    return float(mp.log(mp.quad(f, points, maxdegree=10)))


@pytest.mark.parametrize("theta", [(0.9965, 19.9962, 0.8152, 310.67), (0.5, 300.0, 0.8, 20.0), (2.0, 5.0, 1.0, 5.0)])
def test_integrals_by_segments_equal_30_digit_quadrature(theta) -> None:  # noqa: ANN001
    # daily histories share few (x, t_x or T) values: the integrals are sums of segments between them
    from clvforecast.models import pareto_nbd as P

    rng = np.random.default_rng(4)
    n = 6000
    T = rng.integers(1, 400, n).astype(float)
    x = rng.poisson(3, n).astype(float)
    tx = np.where(x > 0, np.ceil(T * rng.beta(3, 1, n)), 0.0)
    tx[:50] = T[:50]  # t_x == T: I = 0
    seg = P._Segments(x, tx, T)
    assert seg.worthwhile(n) and len(seg.adj) > 0 and len(seg.gen) > 0
    ours, G = seg.log_I(*theta, True)
    direct, G_direct = P._log_I_direct(*theta, x, tx, T, True)
    assert np.array_equal(np.isfinite(ours), np.isfinite(direct)) and not np.isfinite(ours[:50]).any()
    ok = np.isfinite(ours)
    np.testing.assert_allclose(ours[ok], direct[ok], rtol=0, atol=5e-9)  # the direct rule's own accuracy
    np.testing.assert_allclose(G[ok], G_direct[ok], rtol=1e-7, atol=1e-9)
    for i in [*seg.adj[:3], *seg.gen[:3], int(np.argmax(np.where(ok, T - tx, 0)))]:
        assert ours[i] == pytest.approx(mp_log_I(theta, x[i], tx[i], T[i]), rel=1e-11, abs=1e-11), i
    # the weighted gradient sum without the per-row matrix
    w = rng.uniform(0.5, 2.0, n)
    seg.log_I(*theta, True, keep=True)
    np.testing.assert_allclose(seg.grad_dot(w), w[ok] @ G[ok], rtol=1e-9)
