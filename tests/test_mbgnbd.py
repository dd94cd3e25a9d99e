"""ModifiedBetaGeo (MBG/NBD): the published CDNOW estimates, lifetimes as an oracle, a hand-derived likelihood,
and the predictive distribution against sums and a simulation."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from clvforecast.models import ModifiedBetaGeo, _base

NAMES = ["r", "alpha", "a", "b"]


@pytest.fixture(scope="module")
def mbg(cdnow_cal: pd.DataFrame) -> ModifiedBetaGeo:
    return ModifiedBetaGeo().fit(cdnow_cal)


def test_parameters_match_the_published_estimates(mbg: ModifiedBetaGeo) -> None:
    # Batislam et al. (2007) on CDNOW, as lifetimes and pymc-marketing test it: r 0.525, alpha 6.183, a 0.891,
    # b 1.614 (printed to 3 decimals)
    for name, published in {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614}.items():
        assert abs(mbg.params_[name] - published) < 0.0005 + 1e-12, name
    d = mbg.diagnostics_
    assert d["converged"] and d["identified"] and d["message"] == ""
    assert mbg.summary["identified"].all() and (mbg.summary["lower"] > 0).all()


def test_same_estimates_as_lifetimes(mbg: ModifiedBetaGeo, cdnow_cal: pd.DataFrame) -> None:
    lifetimes = _base.import_lifetimes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lifetimes.ModifiedBetaGeoFitter().fit(cdnow_cal["frequency"], cdnow_cal["recency"], cdnow_cal["T"],
                                                    tol=1e-9)
    np.testing.assert_allclose(mbg.params_.to_numpy(), ref.params_[NAMES].to_numpy(), rtol=1e-6)


def test_log_likelihood_by_hand_and_against_lifetimes(cdnow_cal: pd.DataFrame) -> None:
    theta = (0.525, 6.183, 0.891, 1.614)
    r, alpha, a, b = theta
    # x = 0: L = b/(a+b) (alpha/(alpha+T))^r + a/(a+b) (dropped right after the first purchase, or alive and
    # silent)
    ll0 = ModifiedBetaGeo._loglik(theta, np.array([0.0]), np.array([0.0]), np.array([39.0]))[0]
    assert ll0 == pytest.approx(math.log(b / (a + b) * (alpha / (alpha + 39)) ** r + a / (a + b)), rel=1e-13)
    lifetimes = _base.import_lifetimes()
    x, tx, T = (cdnow_cal[c].to_numpy() for c in ("frequency", "recency", "T"))
    one = np.ones(1)
    theirs = np.array([
        -lifetimes.ModifiedBetaGeoFitter._negative_log_likelihood(np.log(theta), x[i:i + 1], tx[i:i + 1],
                                                                  T[i:i + 1], one, 0.0)
        for i in range(0, len(x), 97)
    ])
    np.testing.assert_allclose(ModifiedBetaGeo._loglik(theta, x, tx, T)[::97], theirs, rtol=1e-11)


def test_predictions_equal_lifetimes(mbg: ModifiedBetaGeo, cdnow_cal: pd.DataFrame) -> None:
    ref = mbg.to_lifetimes()
    assert type(ref).__name__ == "ModifiedBetaGeoFitter"
    x, tx, T = (cdnow_cal[c].to_numpy() for c in ("frequency", "recency", "T"))
    np.testing.assert_allclose(mbg.expected_purchases(cdnow_cal, 39).to_numpy(),
                               ref.conditional_expected_number_of_purchases_up_to_time(39, x, tx, T), rtol=1e-9)
    np.testing.assert_allclose(mbg.probability_alive(cdnow_cal).to_numpy(),
                               ref.conditional_probability_alive(x, tx, T), rtol=1e-12)
    for t in (1.0, 39.0, 78.0):
        assert mbg.expected_purchases_new_customer(t) == pytest.approx(ref.expected_number_of_purchases_up_to_time(t),
                                                                       rel=1e-9)
    new = pd.DataFrame({"frequency": [0], "recency": [0.0], "T": [0.0]})
    new.attrs["time_unit"] = "W"
    for n in range(5):
        assert mbg.probability_of_purchases(new, 39, n).iloc[0] == pytest.approx(
            ref.probability_of_n_purchases_up_to_time(39, n), rel=1e-9)
    back = ModifiedBetaGeo.from_lifetimes(ref, time_unit="W")
    np.testing.assert_array_equal(back.params_.to_numpy(), mbg.params_.to_numpy())


@pytest.mark.parametrize(("x", "tx", "T", "t"), [(2, 30.43, 38.86, 39.0), (0, 0.0, 39.0, 52.0), (26, 30.857, 31.0, 52.0)])
def test_pmf_is_a_distribution_with_the_right_mean(x, tx, T, t) -> None:  # noqa: ANN001
    theta = np.array([0.525, 6.183, 0.891, 1.614])
    args = (np.array([x], float), np.array([tx], float), np.array([T], float))
    p = ModifiedBetaGeo._pmf(theta, t, 500, *args)[0]
    assert p.sum() == pytest.approx(1.0, abs=1e-10)
    assert (np.arange(501) * p).sum() == pytest.approx(ModifiedBetaGeo._expected(theta, t, *args)[0], rel=1e-8)


def test_pmf_against_a_simulation_of_the_process() -> None:
    # dropout coin right after the first purchase and after each repeat purchase; customers without a purchase
    # in (0, T] have history (0, 0, T); count their purchases in (T, T + t]
    r, alpha, a, b = 0.525, 6.183, 0.891, 1.614
    T, t, n_sim = 20.0, 39.0, 400_000
    rng = np.random.default_rng(11)
    lam = rng.gamma(r, 1 / alpha, n_sim)
    p = rng.beta(a, b, n_sim)
    dead_at_start = rng.random(n_sim) < p
    k = rng.geometric(p)  # purchases until the dropout coin comes up (after the first purchase's toss)
    first = np.where(dead_at_start, 0, rng.poisson(lam * T))
    kept = (first == 0)
    later = np.where(dead_at_start, 0, np.minimum(rng.poisson(lam * t), k))[kept]
    ours = ModifiedBetaGeo._pmf(np.array([r, alpha, a, b]), t, 6, np.zeros(1), np.zeros(1), np.array([T]))[0]
    for n in range(7):
        se = math.sqrt(ours[n] * (1 - ours[n]) / len(later))
        assert abs(np.mean(later == n) - ours[n]) < 4 * se, n
