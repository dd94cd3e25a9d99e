"""BetaGeo (BG/NBD): the published CDNOW numbers, numerical stability, invariants and input checks.

Reference values: Fader, Hardie & Lee (2005) and the notes collected in
../shared/reference/published-numbers.md; extreme histories against the paper's eq. (10) evaluated with
60-digit arithmetic (mpmath, outside this suite).
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

import clvforecast as cf
from clvforecast.exceptions import DataValidationError, NotFittedError
from clvforecast.models import _base
from clvforecast.models import beta_geo as bgmod

# Full-precision BG/NBD estimates on CDNOW (CLVTools / BTYD), used where the paper's figures come from them.
FULL = (0.2425945, 4.4136019, 0.7929199, 2.4258881)


def rel(a: float, b: float) -> float:
    return abs(a / b - 1)


def hist(*rows: tuple[float, float, float], unit: str | None = "W") -> pd.DataFrame:
    """An RFM table from (frequency, recency, T) rows, ids 1..n."""
    df = pd.DataFrame(rows, columns=["frequency", "recency", "T"], index=pd.RangeIndex(1, len(rows) + 1))
    df.index.name = "customer_id"
    if unit:
        df.attrs["time_unit"] = unit
    return df


@pytest.fixture(scope="module")
def bg(cdnow_cal: pd.DataFrame) -> cf.BetaGeo:
    return cf.BetaGeo().fit(cdnow_cal)


# ----------------------------------------------------------------------------------------------------------
# published numbers


def test_parameters_and_log_likelihood_match_the_paper(bg: cf.BetaGeo) -> None:
    for name, published in {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}.items():
        assert abs(bg.params_[name] - published) < 0.001, name
    assert bg.log_likelihood_ == pytest.approx(-9582.43, abs=0.05)
    assert bg.n_customers_ == 2357
    assert bg.time_unit_ == "W"
    assert bg.penalizer_ == 0.0
    assert bg.fit_info_["n_unique_histories"] < bg.n_customers_  # fitted on distinct histories


def test_log_likelihood_is_eq_6_in_closed_form() -> None:
    # hand-derived: x = 0 gives B(a, b)/B(a, b) * (alpha / (alpha + T))^r
    r, alpha, a, b = FULL
    ll = bgmod.log_likelihood(FULL, np.array([0.0]), np.array([0.0]), np.array([39.0]))[0]
    assert ll == pytest.approx(r * math.log(alpha / (alpha + 39.0)), rel=1e-12)
    # x = 1, t_x = T: B(a, b+1)/B(a, b) + B(a+1, b)/B(a, b) = b/(a+b) + a/(a+b) = 1, so L = r alpha^r /
    # (alpha+T)^(r+1)
    ll = bgmod.log_likelihood(FULL, np.array([1.0]), np.array([10.0]), np.array([10.0]))[0]
    assert ll == pytest.approx(math.log(r * alpha**r / (alpha + 10.0) ** (r + 1)), rel=1e-12)


def test_point_predictions_match_the_paper(bg: cf.BetaGeo) -> None:
    # x = 2, t_x = 30.43, T = 38.86 over 39 weeks: 1.226
    e = bg.expected_purchases(hist((2, 30.43, 38.86)), 39).iloc[0]
    assert rel(e, 1.226) < 1e-3
    # x = 26, t_x = 30.857, T = 31, t = 52: 25.75659 purchases, P(alive) 0.9688523
    h = hist((26, 30.857, 31))
    assert rel(bg.expected_purchases(h, 52).iloc[0], 25.75659) < 1e-3
    assert rel(bg.probability_alive(h).iloc[0], 0.9688523) < 1e-3


def test_increasing_frequency_paradox(bg: cf.BetaGeo) -> None:
    h = hist((10, 20, 39), (15, 20, 39), (20, 20, 39), (25, 20, 39))
    got = bg.expected_purchases(h, 52).to_numpy()
    published = [0.3474606, 0.04283391, 0.004158973, 0.0003583685]
    for g, p in zip(got, published, strict=True):
        assert rel(g, p) < 1e-3
    assert np.all(np.diff(got) < 0)


def test_unconditional_expectation(bg: cf.BetaGeo) -> None:
    got = bg.expected_purchases_new_customer([1, 3, 78])
    assert isinstance(got, np.ndarray)
    for g, p in zip(got, [0.0532, 0.1506, 1.8576], strict=True):
        assert rel(g, p) < 1e-3
    one = bg.expected_purchases_new_customer(52)
    assert isinstance(one, float)
    assert rel(one, 1.444004) < 1e-3
    assert bg.expected_purchases_new_customer("364D") == pytest.approx(one, rel=1e-12)


def test_holdout_expectations_by_frequency_match_the_paper(bg: cf.BetaGeo, cdnow_cal: pd.DataFrame) -> None:
    # the paper's conditional expectations over the 39 holdout weeks, averaged by calibration frequency 0..6,
    # 7+
    e = bg.expected_purchases(cdnow_cal, 39)
    by_x = e.groupby(np.minimum(cdnow_cal["frequency"], 7)).mean().to_numpy()
    published = [0.2251, 0.5231, 1.0441, 1.5203, 2.1638, 2.6538, 3.5040, 6.1570]
    np.testing.assert_allclose(by_x, published, rtol=1e-4)  # the paper prints 4 decimals


def test_summary_and_covariance(bg: cf.BetaGeo, cdnow_cal: pd.DataFrame) -> None:
    s = bg.summary
    assert list(s.columns) == ["coef", "se", "lower", "upper", "identified"]
    assert list(s.index) == ["r", "alpha", "a", "b"]
    assert s["identified"].all() and s.attrs["message"] == ""
    cov = bg.variance_matrix_.to_numpy()
    np.testing.assert_allclose(cov, cov.T, rtol=0, atol=0)
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    np.testing.assert_allclose(s["se"], np.sqrt(np.diag(cov)))
    # 95% intervals on the log scale: coef * exp(-/+ 1.96 se / coef), so never below zero
    se_log = s["se"] / s["coef"]
    np.testing.assert_allclose(s["lower"], s["coef"] * np.exp(-1.959963984540054 * se_log))
    np.testing.assert_allclose(s["upper"], s["coef"] * np.exp(1.959963984540054 * se_log))
    np.testing.assert_allclose(bg.log_covariance_.to_numpy(), cov / np.outer(s["coef"], s["coef"]))
    # independent check: inverse of a finite-difference Hessian of the paper's log-likelihood (original units)
    x, tx, T = (cdnow_cal[c].to_numpy() for c in ("frequency", "recency", "T"))
    theta = bg.params_.to_numpy()

    def nll(v: np.ndarray) -> float:
        return -float(bgmod.log_likelihood(v, x, tx, T).sum())

    h = 1e-4 * theta
    H = np.empty((4, 4))
    for i in range(4):
        for j in range(4):
            ei, ej = np.eye(4)[i] * h[i], np.eye(4)[j] * h[j]
            corners = nll(theta + ei + ej) - nll(theta + ei - ej)
            corners += nll(theta - ei - ej) - nll(theta - ei + ej)
            H[i, j] = corners / (4 * h[i] * h[j])
    np.testing.assert_allclose(cov, np.linalg.inv(H), rtol=1e-3, atol=1e-7)


def test_same_estimates_as_an_unweighted_lifetimes_fit(bg: cf.BetaGeo, cdnow_cal: pd.DataFrame) -> None:
    # lifetimes (the oracle: its own likelihood, autograd gradients, scipy BFGS) with a tightened tolerance
    lifetimes = _base.import_lifetimes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lifetimes.BetaGeoFitter().fit(cdnow_cal["frequency"], cdnow_cal["recency"], cdnow_cal["T"],
                                            tol=1e-9)
    names = ["r", "alpha", "a", "b"]
    np.testing.assert_allclose(bg.params_.to_numpy(), ref.params_[names].to_numpy(), rtol=1e-6)
    # lifetimes' standard errors are right (its off-diagonal covariances are not: they are not even symmetric)
    np.testing.assert_allclose(bg.summary["se"], ref.standard_errors_[names], rtol=1e-4)


# ----------------------------------------------------------------------------------------------------------
# numerical stability


@pytest.mark.parametrize(
    ("x", "tx", "T", "t", "expected", "p_alive"),
    # eq. (10) and P(alive) with 60-digit arithmetic, FULL parameters, written out independently of our code:
    #   d = a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x) (0 for x = 0);  P(alive) = 1 / (1 + d)
    #   E = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x)
    #       * 2F1(r + x, b + x; a + b + x - 1; t / (alpha + T + t))) / (1 + d)     (mpmath, mp.dps = 60)
    [
        (5000, 39, 39, 52, 4276.3902627502524, 0.9998414863622655),
        (5000, 39, 39, 5200, 41019.496276141988, 0.9998414863622655),
        (5000, 38, 39, 52, 6.6870820941102268e-44, 1.5634733243690705e-47),
        (1000, 365, 365, 1, 2.702614212897398, 0.99920883554202866),
        (200, 30, 39, 39, 2.1862970038886305e-16, 1.5895398547625846e-18),
        (0, 0, 39, 52, 0.2509532752728745, 1.0),
        (1, 0.5, 1e4, 52, 1.5265759033292633e-6, 0.0002366204845913169),
    ],
)
def test_extreme_histories_against_high_precision(x, tx, T, t, expected, p_alive) -> None:  # noqa: ANN001
    args = (np.array([x], float), np.array([tx], float), np.array([T], float))
    assert rel(bgmod.expected_purchases(FULL, t, *args)[0], expected) < 1e-8
    assert rel(bgmod.probability_alive(FULL, *args)[0], p_alive) < 1e-10


def test_closed_form_agrees_with_lifetimes_and_with_quadrature() -> None:
    lifetimes = _base.import_lifetimes()
    ref = lifetimes.BetaGeoFitter()
    ref.params_ = pd.Series(FULL, index=["r", "alpha", "a", "b"])
    for x in (0, 1, 3, 10, 40):
        for T, tx_frac in ((39.0, 0.5), (39.0, 1.0), (5.0, 0.2)):
            tx = 0.0 if x == 0 else T * tx_frac
            for t in (0.5, 39.0, 400.0):
                ours = bgmod.expected_purchases(FULL, t, np.array([x]), np.array([tx]), np.array([T]))[0]
                theirs = ref.conditional_expected_number_of_purchases_up_to_time(t, x, tx, T)
                assert rel(ours, theirs) < 1e-7
                alive = bgmod.probability_alive(FULL, np.array([x]), np.array([tx]), np.array([T]))[0]
                assert rel(ours, alive * bgmod._expected_if_alive_quad(FULL, t, x, T)) < 1e-7


def test_a_close_to_one_and_unusual_parameters_stay_accurate() -> None:
    # eq. (10) is 0/0 at a = 1 and scipy's 2F1 fails for large c near z = 1; the quadrature over the dropout
    # probability (no special case; checked against 40-digit arithmetic to 1e-10) is the reference here
    grid = [(0.24, 4.4, 1.0, 2.4), (0.24, 4.4, 1 + 1e-9, 2.4), (0.3, 2.0, 0.2, 0.3), (5.0, 0.1, 3.0, 0.05),
            (2.0, 1.0, 30.0, 30.0)]
    for params in grid:
        for x, tx, T in ((0, 0.0, 0.0), (0, 0.0, 10.0), (1, 5.0, 10.0), (3, 9.0, 10.0), (5000, 39.0, 39.0)):
            for t in (0.1, 10.0, 1000.0):
                got = bgmod.expected_purchases(params, t, np.array([x]), np.array([tx]), np.array([T]))[0]
                alive = bgmod.probability_alive(params, np.array([x]), np.array([tx]), np.array([T]))[0]
                assert rel(got, alive * bgmod._expected_if_alive_quad(params, t, x, T)) < 1e-7


def test_no_nan_or_inf_for_any_valid_history(bg: cf.BetaGeo) -> None:
    f = np.repeat([0, 1, 2, 50, 500, 5000], 4)
    T = np.tile([0.0, 1 / 7, 39.0, 520.0], 6)
    tx = np.where(f > 0, T, 0.0)
    h = pd.DataFrame({"frequency": f, "recency": tx, "T": T})
    h.attrs["time_unit"] = "W"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings either
        for t in (0, 1e-6, 1, 52, "10Y"):
            e = bg.expected_purchases(h, t)
            assert np.all(np.isfinite(e)) and np.all(e >= 0)
        for n in (0, 1, 10, 5000):
            p = bg.probability_of_purchases(h, 52, n)
            assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))
        p_alive = bg.probability_alive(h)
    assert np.all(np.isfinite(p_alive)) and np.all((p_alive >= 0) & (p_alive <= 1))


# ----------------------------------------------------------------------------------------------------------
# P(X(t) = n)


def test_probability_of_purchases_for_a_new_customer_is_eq_8(bg: cf.BetaGeo) -> None:
    lifetimes = _base.import_lifetimes()
    ref = lifetimes.BetaGeoFitter()
    ref.params_ = bg.params_.copy()
    h = hist((0, 0.0, 0.0))
    for n in range(6):
        ours = bg.probability_of_purchases(h, 52, n).iloc[0]
        assert rel(ours, ref.probability_of_n_purchases_up_to_time(52, n)) < 1e-10


@pytest.mark.parametrize(("x", "tx", "T"), [(2, 30.43, 38.86), (26, 30.857, 31.0), (10, 20.0, 39.0)])
def test_probability_of_purchases_is_a_distribution_with_the_right_mean(bg: cf.BetaGeo, x, tx, T) -> None:  # noqa: ANN001
    h = hist((x, tx, T))
    p = cf.BetaGeo._pmf(bg.theta_, 39, 399, np.array([x], float), np.array([tx], float), np.array([T], float))[0]
    for n in (0, 1, 5):  # the public method is the same distribution
        assert bg.probability_of_purchases(h, 39, n).iloc[0] == pytest.approx(p[n], rel=1e-12)
    assert p.sum() == pytest.approx(1.0, abs=1e-9)
    assert (np.arange(400) * p).sum() == pytest.approx(bg.expected_purchases(h, 39).iloc[0], rel=1e-8)


def test_probability_of_purchases_by_integrating_the_individual_model() -> None:
    # P(n | history) = E[lik(history | lambda, p) P(n | lambda, p, state at T)] / E[lik(history | lambda, p)]
    # over the Gamma(r, alpha) x Beta(a, b) prior, with the individual-level model of the paper (section 2):
    # alive at T with likelihood (1-p)^x lambda^x e^(-lambda T), or dead after the last purchase, p
    # (1-p)^(x-1) lambda^x e^(-lambda t_x); an alive customer makes n purchases in t with probability (1-p)^n
    # Poisson(n; lambda t) + [n > 0] p (1-p)^(n-1) P(Poisson(lambda t) >= n). Gauss-Laguerre in lambda x
    # Gauss-Jacobi in p.
    r, alpha, a, b = FULL
    x, tx, T, t = 2, 30.43, 38.86, 39.0
    u, wu = special.roots_genlaguerre(120, r + x - 1)  # weight lambda^(r+x-1) e^(-lambda (alpha + t_x))
    v, wv = special.roots_jacobi(40, b - 1, a - 1)  # weight (1-p)^(b-1) p^(a-1), p = (1+v)/2
    lam, p = np.meshgrid(u / (alpha + tx), (1 + v) / 2, indexing="ij")
    w = np.outer(wu, wv)
    alive = (1 - p) ** x * np.exp(-lam * (T - tx))
    dead = p * (1 - p) ** (x - 1)
    denominator = (w * (alive + dead)).sum()
    pois = stats.poisson(lam * t)
    for n in (0, 1, 3, 8):
        p_n_alive = (1 - p) ** n * pois.pmf(n) + (p * (1 - p) ** (n - 1) * pois.sf(n - 1) if n > 0 else 0.0)
        numerator = (w * (alive * p_n_alive + (dead if n == 0 else 0.0))).sum()
        ours = bgmod.probability_of_purchases(FULL, t, n, np.array([x]), np.array([tx]), np.array([T]))[0]
        assert rel(ours, numerator / denominator) < 1e-8


# ----------------------------------------------------------------------------------------------------------
# invariants (hypothesis)

histories = st.tuples(
    st.integers(0, 5000), st.floats(0, 1), st.floats(0, 2000, allow_subnormal=False)
).map(lambda v: (v[0], 0.0 if v[0] == 0 else v[1] * v[2], v[2]))


@settings(max_examples=150, deadline=None)
@given(h=histories)
def test_probability_alive_is_a_probability(h: tuple[int, float, float]) -> None:
    p = bgmod.probability_alive(FULL, *(np.array([v], float) for v in h))[0]
    assert 0.0 <= p <= 1.0


@settings(max_examples=150, deadline=None)
@given(h=histories, t1=st.floats(0, 1e4), t2=st.floats(0, 1e4))
def test_expected_purchases_are_finite_and_non_decreasing_in_t(h: tuple[int, float, float], t1: float,
                                                              t2: float) -> None:
    lo, hi = sorted((t1, t2))
    args = tuple(np.array([v], float) for v in h)
    e_lo, e_hi = bgmod.expected_purchases(FULL, lo, *args)[0], bgmod.expected_purchases(FULL, hi, *args)[0]
    assert np.isfinite(e_lo) and np.isfinite(e_hi)
    assert 0.0 <= e_lo <= e_hi * (1 + 1e-9) + 1e-300


# ----------------------------------------------------------------------------------------------------------
# API behaviour


def test_predictions_are_indexed_by_customer_and_do_not_modify_the_input(bg: cf.BetaGeo,
                                                                        cdnow_cal: pd.DataFrame) -> None:
    before = cdnow_cal.copy(deep=True)
    attrs = json.dumps(cdnow_cal.attrs, sort_keys=True, default=str)
    sub = cdnow_cal.iloc[[5, 0, 2]]
    for s in (bg.expected_purchases(sub, 39), bg.probability_alive(sub),
              bg.probability_of_purchases(sub, 39, 1)):
        assert isinstance(s, pd.Series)
        assert s.index.equals(sub.index)
    pd.testing.assert_frame_equal(cdnow_cal, before)
    assert json.dumps(cdnow_cal.attrs, sort_keys=True, default=str) == attrs


def test_horizon_strings_are_converted_with_the_model_unit(bg: cf.BetaGeo, cdnow_cal: pd.DataFrame) -> None:
    sub = cdnow_cal.head(20)
    weeks = bg.expected_purchases(sub, 52)
    pd.testing.assert_series_equal(bg.expected_purchases(sub, "52W"), weeks)
    pd.testing.assert_series_equal(bg.expected_purchases(sub, "364D"), weeks)
    pd.testing.assert_series_equal(bg.expected_purchases(sub, "12M"), bg.expected_purchases(sub, 365.25 / 7))
    with pytest.raises(ValueError, match="horizon"):
        bg.expected_purchases(sub, "52 weeks")
    with pytest.raises(ValueError):
        bg.expected_purchases(sub, -1)


def test_a_table_in_another_unit_is_refused(bg: cf.BetaGeo, cdnow_tx: pd.DataFrame) -> None:
    daily = cf.calibration_holdout(cdnow_tx, calibration_end="1997-09-30", observation_end="1998-06-30",
                                   time_unit="D")
    with pytest.raises(DataValidationError, match="time unit 'D'.*fitted in 'W'"):
        bg.probability_alive(daily)
    # a table without attrs is taken to be in the model's unit
    plain = pd.DataFrame(daily[["frequency"]].assign(recency=daily["recency"] / 7, T=daily["T"] / 7))
    plain.attrs = {}
    assert np.all(np.isfinite(bg.probability_alive(plain)))


def test_fit_in_days_gives_the_same_model_in_other_units(cdnow_tx: pd.DataFrame, bg: cf.BetaGeo) -> None:
    daily = cf.calibration_holdout(cdnow_tx, calibration_end="1997-09-30", observation_end="1998-06-30",
                                   time_unit="D")
    bd = cf.BetaGeo().fit(daily)
    assert bd.time_unit_ == "D"
    assert bd.params_["alpha"] == pytest.approx(7 * bg.params_["alpha"], rel=1e-4)
    shape = ["r", "a", "b"]
    assert bd.params_[shape].to_numpy() == pytest.approx(bg.params_[shape].to_numpy(), rel=1e-4)
    # the likelihood is a density of the x purchase times (rate^x), so it shifts by -sum(x) * log(7)
    shift = daily["frequency"].sum() * math.log(7)
    assert bd.log_likelihood_ == pytest.approx(bg.log_likelihood_ - shift, abs=0.01)
    assert bd.expected_purchases(daily.head(5), "39W").to_numpy() == pytest.approx(
        bg.expected_purchases(cf.calibration_holdout(cdnow_tx, calibration_end="1997-09-30",
                                                     observation_end="1998-06-30", time_unit="W").head(5), 39)
        .to_numpy(), rel=1e-4)


def test_not_fitted(cdnow_cal: pd.DataFrame) -> None:
    model = cf.BetaGeo()
    assert repr(model) == "BetaGeo(penalizer=0.0)"
    with pytest.raises(NotFittedError, match=r"call \.fit\(rfm\)"):
        model.expected_purchases(cdnow_cal, 10)
    with pytest.raises(NotFittedError):
        _ = model.summary


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.drop(columns="T"), "no column.*'T'"),
        (lambda d: d.iloc[:0], "empty"),
        (lambda d: pd.concat([d, d.iloc[:2]]), "2 rows repeat an id"),
        (lambda d: d.assign(frequency=d["frequency"] + 0.5), "whole numbers"),
        (lambda d: d.assign(recency=d["recency"].where(d.index != 1, 100.0)), r"recency <= T.*customer 1 "),
        (lambda d: d.assign(recency=d["recency"] - 0.5), r"recency >= 0|recency == 0"),
        (lambda d: d.assign(T=d["T"].where(d.index != 3, np.nan)), r"'T' has 1 missing"),
    ],
)
def test_invalid_tables_are_refused_with_a_clear_message(cdnow_cal: pd.DataFrame, change, message) -> None:  # noqa: ANN001
    with pytest.raises(DataValidationError, match=message):
        cf.BetaGeo().fit(change(cdnow_cal))


def test_degenerate_data(cdnow_cal: pd.DataFrame) -> None:
    with pytest.raises(DataValidationError, match="single customer"):
        cf.BetaGeo().fit(cdnow_cal.iloc[:1])
    no_repeat = cdnow_cal[cdnow_cal["frequency"] == 0]
    with pytest.raises(DataValidationError, match=r"none of the 1411 customers has a repeat purchase"):
        cf.BetaGeo().fit(no_repeat)
    with pytest.raises(TypeError, match="DataFrame"):
        cf.BetaGeo().fit(cdnow_cal.to_numpy())
    with pytest.raises(ValueError, match="penalizer"):
        cf.BetaGeo(penalizer=-1).fit(cdnow_cal)


def test_a_penalizer_shrinks_the_estimates_and_is_recorded(cdnow_cal: pd.DataFrame, bg: cf.BetaGeo) -> None:
    pen = cf.BetaGeo(penalizer=0.01).fit(cdnow_cal)
    assert pen.penalizer_ == 0.01
    assert float(np.sum(pen.params_**2)) < float(np.sum(bg.params_**2))
    assert pen.log_likelihood_ < bg.log_likelihood_  # the unpenalised optimum is the maximum


def test_warm_start_on_large_tables_reaches_the_same_maximum(monkeypatch: pytest.MonkeyPatch,
                                                            cdnow_cal: pd.DataFrame, bg: cf.BetaGeo) -> None:
    monkeypatch.setattr(_base, "WARM_START_MIN_ROWS", 100)
    warm = cf.BetaGeo().fit(cdnow_cal)
    assert warm.diagnostics_["warm_start"] is True and warm.diagnostics_["converged"]
    np.testing.assert_allclose(warm.params_, bg.params_, rtol=1e-7)
    assert warm.log_likelihood_ == pytest.approx(bg.log_likelihood_, abs=1e-8)


def test_time_unit_of_a_table_without_attrs(cdnow_cal):
    """A weekly table that lost its attrs (e.g. read back from CSV) must not be misread as days silently."""
    bare = cdnow_cal[["frequency", "recency", "T"]].copy()
    bare.attrs = {}
    with pytest.warns(cf.DataQualityWarning, match="does not say its time unit"):
        assert cf.BetaGeo().fit(bare).time_unit_ == "D"
    explicit = cf.BetaGeo().fit(bare, time_unit="W")
    reference = cf.BetaGeo().fit(cdnow_cal)
    assert explicit.time_unit_ == "W"
    pd.testing.assert_series_equal(explicit.expected_purchases(bare, "52W"),
                                   reference.expected_purchases(cdnow_cal, "52W"))
    with pytest.raises(cf.DataValidationError, match="time_unit='D' but the RFM table says it is in 'W'"):
        cf.BetaGeo().fit(cdnow_cal, time_unit="D")
