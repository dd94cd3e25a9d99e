"""BetaGeoBetaBinom (BG/BB): the published donations estimates, lifetimes as an oracle, the exact predictive
distribution against sums and a simulation, and the table checks."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from clvforecast.exceptions import DataValidationError
from clvforecast.models import BetaGeoBetaBinom, _base
from clvforecast.models.bgbb import donations

NAMES = ["alpha", "beta", "gamma", "delta"]
BTYD = (1.203507, 0.7497667, 0.6567568, 2.783887)  # BTYD walkthrough's estimates


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return donations()


@pytest.fixture(scope="module")
def bgbb(table: pd.DataFrame) -> BetaGeoBetaBinom:
    return BetaGeoBetaBinom().fit(table)


def test_donations_estimates_and_log_likelihood(bgbb: BetaGeoBetaBinom, table: pd.DataFrame) -> None:
    assert table["weight"].sum() == 11104 and len(table) == 22
    assert bgbb.n_customers_ == 11104 and bgbb.fit_info_["weighted"]
    # published: 1.2035, 0.7498, 0.6568, 2.7839 (BTYD's optimizer stops within 2e-4 of the maximum)
    np.testing.assert_allclose(bgbb.params_.to_numpy(), BTYD, rtol=2e-4)
    assert bgbb.log_likelihood_ == pytest.approx(-33225.58, abs=0.01)
    at_btyd = float(table["weight"].to_numpy() @ BetaGeoBetaBinom._loglik(
        BTYD, table["frequency"], table["recency"], table["n_periods"]))
    assert at_btyd <= bgbb.log_likelihood_  # ours is the (higher) maximum
    assert bgbb.diagnostics_["converged"] and bgbb.diagnostics_["identified"]
    assert bgbb.time_unit_ == "Y" and BetaGeoBetaBinom.DISCRETE


def test_same_estimates_as_lifetimes(bgbb: BetaGeoBetaBinom, table: pd.DataFrame) -> None:
    lifetimes = _base.import_lifetimes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lifetimes.BetaGeoBetaBinomFitter().fit(table["frequency"], table["recency"], table["n_periods"],
                                                     weights=table["weight"], tol=1e-9)
    np.testing.assert_allclose(bgbb.params_.to_numpy(), ref.params_[NAMES].to_numpy(), rtol=1e-6)
    # the bridge back, with lifetimes' data: same log-likelihood at lifetimes' parameters
    back = BetaGeoBetaBinom.from_lifetimes(ref, time_unit="Y")
    assert back.log_likelihood_ == pytest.approx(bgbb.log_likelihood_, abs=1e-6)
    assert back.n_customers_ == 11104


def test_log_likelihood_against_lifetimes(table: pd.DataFrame) -> None:
    lifetimes = _base.import_lifetimes()
    for theta in (BTYD, (0.5, 3.0, 2.0, 0.4), (4.0, 1.0, 0.1, 9.0)):
        theirs = lifetimes.BetaGeoBetaBinomFitter._loglikelihood(theta, table["frequency"].to_numpy(),
                                                                table["recency"].to_numpy(),
                                                                table["n_periods"].to_numpy())
        ours = BetaGeoBetaBinom._loglik(theta, table["frequency"], table["recency"], table["n_periods"])
        np.testing.assert_allclose(ours, theirs, rtol=1e-10)


def test_predictions_equal_lifetimes(bgbb: BetaGeoBetaBinom, table: pd.DataFrame) -> None:
    ref = bgbb.to_lifetimes()
    x, tx, n = (table[c].to_numpy() for c in ("frequency", "recency", "n_periods"))
    for m in (1, 5):
        np.testing.assert_allclose(bgbb.expected_purchases(table, m).to_numpy(),
                                   ref.conditional_expected_number_of_purchases_up_to_time(m, x, tx, n), rtol=1e-10)
        np.testing.assert_allclose(bgbb.expected_purchases(table, f"{m}Y").to_numpy(),
                                   ref.conditional_expected_number_of_purchases_up_to_time(m, x, tx, n), rtol=1e-10)
    np.testing.assert_allclose(bgbb.probability_alive(table).to_numpy(),
                               ref.conditional_probability_alive(0, x, tx, n), rtol=1e-10)
    # expected transactions in the first n opportunities of a new customer (FHS 2010 eq. 8)
    a, b, g, d = bgbb.theta_
    for periods in (1, 6, 11):
        by_hand = a / (a + b) * d / (g - 1) * (1 - math.exp(math.lgamma(g + d) - math.lgamma(g + d + periods)
                                                              + math.lgamma(1 + d + periods) - math.lgamma(1 + d)))
        assert bgbb.expected_purchases_new_customer(periods) == pytest.approx(by_hand, rel=1e-11)


def test_horizons_are_whole_periods(bgbb: BetaGeoBetaBinom, table: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="whole number of periods"):
        bgbb.expected_purchases(table, 2.5)
    with pytest.raises(ValueError, match="whole number of periods"):
        bgbb.expected_purchases(table, "6M")


@pytest.mark.parametrize(("x", "tx", "n", "t"), [(0, 0, 6, 5), (2, 4, 6, 5), (6, 6, 6, 10), (0, 0, 0, 3), (3, 6, 6, 0)])
def test_pmf_is_a_distribution_with_the_right_mean(bgbb: BetaGeoBetaBinom, x, tx, n, t) -> None:  # noqa: ANN001
    args = (np.array([x], float), np.array([tx], float), np.array([n], float))
    p = BetaGeoBetaBinom._pmf(bgbb.theta_, t, t + 2, *args)[0]
    assert np.all(p >= 0) and p[t + 1:].sum() == 0  # at most t transactions in t opportunities
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert (np.arange(t + 3) * p).sum() == pytest.approx(BetaGeoBetaBinom._expected(bgbb.theta_, t, *args)[0],
                                                         rel=1e-10, abs=1e-15)


def test_pmf_against_a_simulation_of_the_process() -> None:
    # customers drawn from the priors over 6 + 5 opportunities; keep those with history (x=2, t_x=4, n=6) and
    # count their transactions in opportunities 7..11
    alpha, beta, gamma, delta = BTYD
    n_sim, n_cal, t = 1_000_000, 6, 5
    rng = np.random.default_rng(5)
    p = rng.beta(alpha, beta, n_sim)
    th = rng.beta(gamma, delta, n_sim)
    life = rng.geometric(th)  # number of opportunities alive (dies before opportunity `life`)
    alive = np.arange(1, n_cal + t + 1)[None, :] < life[:, None]
    buys = (rng.random((n_sim, n_cal + t)) < p[:, None]) & alive
    cal = buys[:, :n_cal]
    x = cal.sum(axis=1)
    last = np.where(x > 0, n_cal - np.argmax(cal[:, ::-1], axis=1), 0)
    kept = (x == 2) & (last == 4)
    future = buys[kept, n_cal:].sum(axis=1)
    ours = BetaGeoBetaBinom._pmf(np.array(BTYD), t, t, np.array([2.0]), np.array([4.0]), np.array([6.0]))[0]
    for k in range(t + 1):
        se = math.sqrt(ours[k] * (1 - ours[k]) / kept.sum())
        assert abs(np.mean(future == k) - ours[k]) < 4 * se + 1e-12, k


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.rename(columns={"n_periods": "periods"}), "n_periods.*call it 'periods'"),
    (lambda d: d.assign(recency=d["recency"].where(d.index != 2, 9)), "recency <= n_periods"),
    (lambda d: d.assign(frequency=d["frequency"].where(d.index != 3, 3)), "frequency <= recency"),
    (lambda d: d.assign(frequency=d["frequency"] + 0.5), "whole numbers"),
    (lambda d: d.assign(weight=-d["weight"]), "weights must be finite numbers >= 0"),
])
def test_invalid_tables_are_refused(table: pd.DataFrame, change, message) -> None:  # noqa: ANN001
    with pytest.raises(DataValidationError, match=message):
        BetaGeoBetaBinom().fit(change(table))
