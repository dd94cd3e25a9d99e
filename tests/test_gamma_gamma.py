"""GammaGamma: the published CDNOW numbers (Fader & Hardie, "The Gamma-Gamma Model of Monetary Value"), the
independence check, and input validation."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import clvforecast as cf
from clvforecast.exceptions import (
    DataQualityWarning,
    DataValidationError,
    ModelAssumptionWarning,
    NotFittedError,
)
from clvforecast.models import gamma_gamma as ggmod


@pytest.fixture(scope="module")
def gg(cdnow_cal: pd.DataFrame) -> cf.GammaGamma:
    with warnings.catch_warnings():
        # CDNOW's spend/frequency correlation (0.11) is below the threshold: no warning
        warnings.simplefilter("error", ModelAssumptionWarning)
        return cf.GammaGamma().fit(cdnow_cal)


def test_parameters_and_log_likelihood_match_the_note(gg: cf.GammaGamma) -> None:
    for name, published in {"p": 6.25, "q": 3.74, "v": 15.44}.items():
        assert abs(gg.params_[name] - published) < 0.02, name
    assert gg.log_likelihood_ == pytest.approx(-4055.92, abs=0.05)
    assert gg.n_customers_ == 946  # the repeat buyers
    assert gg.fit_info_["n_excluded_no_repeat"] == 1411
    assert gg.fit_info_["spend_frequency_correlation"] == pytest.approx(0.11, abs=0.01)
    assert gg.population_mean_spend == pytest.approx(35.17, abs=0.01)


def test_expected_spend_of_the_first_ten_customers(gg: cf.GammaGamma, cdnow_cal: pd.DataFrame) -> None:
    got = gg.expected_spend(cdnow_cal.head(10))
    published = [24.65, 18.91, 35.17, 35.17, 35.17, 71.46, 18.91, 35.17, 27.28, 35.17]
    np.testing.assert_allclose(got.to_numpy(), published, atol=0.02)
    assert got.index.equals(cdnow_cal.index[:10])
    assert got.name == "expected_spend"


def test_log_likelihood_is_the_density_of_the_average_spend() -> None:
    # independent derivation: given nu, the sum of x spends is Gamma(p x, nu), so zbar ~ Gamma(p x, x nu);
    # with nu ~ Gamma(q, v) that makes zbar ~ BetaPrime(p x, q) with scale v / x.
    params = (6.25, 3.74, 15.44)
    x = np.array([1.0, 2.0, 7.0, 40.0])
    m = np.array([22.35, 5.0, 71.2, 33.3])
    expected = stats.betaprime.logpdf(m, params[0] * x, params[1], scale=params[2] / x)
    np.testing.assert_allclose(ggmod.log_likelihood(params, x, m), expected, rtol=1e-12)


def test_expected_spend_is_the_credibility_weighted_mean() -> None:
    # eq. (5) by hand: p = 2, q = 3, v = 10 -> population mean p v / (q - 1) = 10; x = 2 -> weight 4 / 6
    got = ggmod.expected_spend((2.0, 3.0, 10.0), np.array([0.0, 2.0]), np.array([123.0, 40.0]))
    np.testing.assert_allclose(got, [10.0, 10.0 / 3 + 40.0 * 4 / 6])


def test_summary_and_covariance(gg: cf.GammaGamma, cdnow_cal: pd.DataFrame) -> None:
    s = gg.summary
    assert list(s.index) == ["p", "q", "v"] and list(s.columns) == ["coef", "se", "lower", "upper", "identified"]
    cov = gg.variance_matrix_.to_numpy()
    np.testing.assert_array_equal(cov, cov.T)
    # independent check: inverse of a finite-difference Hessian of the published log-likelihood
    rep = cdnow_cal[cdnow_cal["frequency"] > 0]
    x, m = rep["frequency"].to_numpy(float), rep["monetary_value"].to_numpy()
    theta = gg.params_.to_numpy()

    def nll(v: np.ndarray) -> float:
        return -float(ggmod.log_likelihood(v, x, m).sum())

    h = 1e-4 * theta
    H = np.empty((3, 3))
    for i in range(3):
        for j in range(3):
            ei, ej = np.eye(3)[i] * h[i], np.eye(3)[j] * h[j]
            corners = nll(theta + ei + ej) - nll(theta + ei - ej)
            corners += nll(theta - ei - ej) - nll(theta - ei + ej)
            H[i, j] = corners / (4 * h[i] * h[j])
    np.testing.assert_allclose(cov, np.linalg.inv(H), rtol=1e-3)


def test_strong_spend_frequency_correlation_warns(cdnow_cal: pd.DataFrame) -> None:
    dependent = cdnow_cal.copy()
    rep = dependent["frequency"] > 0
    # frequent buyers spend more per transaction
    dependent.loc[rep, "monetary_value"] += 10.0 * dependent.loc[rep, "frequency"]
    with pytest.warns(ModelAssumptionWarning, match=r"Pearson correlation 0\.72 \(\|r\| > 0\.3\)"):
        model = cf.GammaGamma().fit(dependent)
    assert model.fit_info_["spend_frequency_correlation"] > ggmod.CORRELATION_THRESHOLD


def test_a_degenerate_spend_distribution_is_reported_not_hidden(cdnow_cal: pd.DataFrame) -> None:
    # spend almost a function of frequency: p runs off to infinity (the likelihood keeps rising)
    dependent = cdnow_cal.copy()
    rep = dependent["frequency"] > 0
    dependent.loc[rep, "monetary_value"] += 50.0 * dependent.loc[rep, "frequency"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = cf.GammaGamma().fit(dependent)
    messages = [str(w.message) for w in caught if issubclass(w.category, ModelAssumptionWarning)]
    assert any("do not identify p" in m for m in messages)
    d = model.diagnostics_
    assert "p" in d["unidentified"] and not d["identified"] and not d["converged"]
    s = model.summary
    assert not s.loc["p", "identified"] and np.isnan(s.loc["p", ["se", "lower", "upper"]].astype(float)).all()
    assert (s["lower"].dropna() > 0).all()
    assert model.penalizer_ == 0.0


def test_frequency_zero_customers_get_the_population_mean_whatever_their_monetary_value(
    gg: cf.GammaGamma, cdnow_cal: pd.DataFrame
) -> None:
    new = cdnow_cal[cdnow_cal["frequency"] == 0].head(3).assign(monetary_value=[0.0, 5.0, 1e6])
    np.testing.assert_allclose(gg.expected_spend(new), gg.population_mean_spend, rtol=1e-12)


def test_degenerate_and_invalid_data(cdnow_cal: pd.DataFrame) -> None:
    with pytest.raises(DataValidationError, match="0 of the 1411 customers have a repeat purchase"):
        cf.GammaGamma().fit(cdnow_cal[cdnow_cal["frequency"] == 0])
    with pytest.raises(DataValidationError, match="1 of the 1 customers has a repeat purchase"):
        cf.GammaGamma().fit(cdnow_cal.head(1))
    negative = cdnow_cal.assign(monetary_value=cdnow_cal["monetary_value"].where(cdnow_cal.index != 1, -5.0))
    message = r"1 repeat buyers have a negative monetary_value, e\.g\. customer 1 \(frequency 2, "
    with pytest.raises(DataValidationError, match=message):
        cf.GammaGamma().fit(negative)
    with pytest.raises(DataValidationError, match="no column.*'monetary_value'"):
        cf.GammaGamma().fit(cdnow_cal.drop(columns="monetary_value"))
    with pytest.raises(NotFittedError):
        cf.GammaGamma().expected_spend(cdnow_cal)


def test_repeat_buyers_with_zero_spend_are_left_out_of_the_fit(gg: cf.GammaGamma,
                                                                cdnow_cal: pd.DataFrame) -> None:
    free = cdnow_cal.assign(monetary_value=cdnow_cal["monetary_value"].where(cdnow_cal.index != 1, 0.0))
    with pytest.warns(DataQualityWarning, match=r"1 of the 946 repeat buyers spent nothing.*customer 1\)"):
        model = cf.GammaGamma().fit(free)
    assert model.n_customers_ == 945 and model.fit_info_["n_excluded_zero_spend"] == 1
    without = cf.GammaGamma().fit(cdnow_cal.drop(index=1))
    np.testing.assert_allclose(model.params_, without.params_, rtol=1e-6)
    # scored with eq. (5) at zero observed spend: the population mean shrunk by (q - 1) / (p x + q - 1)
    p, q, _ = model.params_
    assert model.expected_spend(free.loc[[1]]).iloc[0] == pytest.approx(
        (q - 1) / (2 * p + q - 1) * model.population_mean_spend, rel=1e-12
    )


def test_infinite_population_mean_is_refused(gg: cf.GammaGamma, cdnow_cal: pd.DataFrame) -> None:
    heavy = ggmod.GammaGamma._from_dict({**gg.to_dict(), "params": {"p": 6.0, "q": 0.9, "v": 15.0}})
    with pytest.raises(DataValidationError, match=r"q = 0\.900 <= 1 implies an infinite mean spend"):
        heavy.expected_spend(cdnow_cal)


def test_fit_does_not_modify_the_table(cdnow_cal: pd.DataFrame) -> None:
    before = cdnow_cal.copy(deep=True)
    cf.GammaGamma().fit(cdnow_cal)
    pd.testing.assert_frame_equal(cdnow_cal, before)


def test_same_estimates_as_lifetimes(gg: cf.GammaGamma, cdnow_cal: pd.DataFrame) -> None:
    # issue 10: parameters equal lifetimes' GammaGammaFitter to 1e-6 relative where it converges (its fit on the
    # 946 repeat customers; a tighter tol makes it stop with ConvergenceError: precision loss)
    from clvforecast.models import _base

    lifetimes = _base.import_lifetimes()
    rep = cdnow_cal[cdnow_cal["frequency"] > 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lifetimes.GammaGammaFitter().fit(rep["frequency"], rep["monetary_value"])
    np.testing.assert_allclose(gg.params_.to_numpy(), ref.params_[["p", "q", "v"]].to_numpy(), rtol=1e-6)
