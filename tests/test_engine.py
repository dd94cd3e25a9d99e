"""The estimation engine and what every model shares: analytic gradients against finite differences, honest
diagnostics on a log without dropout, parameter draws, the registry, the lifetimes bridge, and finite
predictions for any positive finite parameters."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import clvforecast as cf
from clvforecast.exceptions import DataQualityWarning, ModelAssumptionWarning
from clvforecast.models import (
    PURCHASE_MODELS,
    BetaGeo,
    BetaGeoBetaBinom,
    GammaGamma,
    ModifiedBetaGeo,
    ParetoNBD,
    PurchaseModel,
    _base,
    purchase_model,
)
from clvforecast.models import gamma_gamma as ggmod
from clvforecast.models.bgbb import donations

CONTINUOUS = (BetaGeo, ParetoNBD, ModifiedBetaGeo)
ALL = (*CONTINUOUS, BetaGeoBetaBinom)

# histories (x, t_x, T): new, silent, typical, recency == T, large x, large x dead long ago
HISTORIES = np.array([(0, 0, 0), (0, 0, 39), (2, 30.43, 38.86), (1, 5, 5), (26, 30.857, 31), (300, 38, 39),
                      (300, 2, 39), (5000, 39, 39), (3, 0.5, 400)], dtype=float)
DISCRETE_HISTORIES = np.array([(0, 0, 0), (0, 0, 6), (2, 4, 6), (6, 6, 6), (1, 1, 30), (25, 30, 30)], dtype=float)


def histories_for(model: type[PurchaseModel]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h = DISCRETE_HISTORIES if model.DISCRETE else HISTORIES
    return h[:, 0], h[:, 1], h[:, 2]


# ----------------------------------------------------------------------------------------------------------
# gradients


def _five_point(f, theta: np.ndarray, j: int) -> np.ndarray:  # noqa: ANN001
    """d f / d theta_j by the five-point stencil (error O(h^4)), h = 1e-3 theta_j."""
    h = 1e-3 * theta[j]

    def at(k: int) -> np.ndarray:
        v = theta.copy()
        v[j] += k * h
        return f(v)

    return (8 * (at(1) - at(-1)) - (at(2) - at(-2))) / (12 * h)


@pytest.mark.parametrize("model", ALL)
@pytest.mark.parametrize("theta", [(0.55, 10.6, 0.6, 11.7), (2.0, 80.0, 3.0, 5.0), (0.3, 2.0, 1.5, 60.0),
                                   (1.2, 0.75, 0.66, 2.78), (5.0, 1.0, 0.05, 0.5)])
def test_log_likelihood_gradient_against_central_differences(model, theta) -> None:  # noqa: ANN001
    x, tx, T = histories_for(model)
    theta = np.array(theta)
    G = model._loglik_grad(theta, x, tx, T)
    assert G.shape == (len(x), 4) and np.all(np.isfinite(G))
    for j in range(4):
        fd = _five_point(lambda v: model._loglik(v, x, tx, T), theta, j)
        np.testing.assert_allclose(G[:, j], fd, rtol=1e-6, atol=1e-9)


def test_gamma_gamma_gradient_against_central_differences() -> None:
    x = np.array([1.0, 2.0, 7.0, 40.0, 1000.0])
    m = np.array([22.35, 5.0, 71.2, 33.3, 0.01])
    for theta in (np.array([6.25, 3.74, 15.44]), np.array([0.5, 1.2, 200.0]), np.array([40.0, 9.0, 1.0])):
        d = _base.HistoryData(x=x, m=m)
        _, G = GammaGamma._ll_rows(theta, d, True)
        for j in range(3):
            fd = _five_point(lambda v: GammaGamma._ll_rows(v, d, False)[0], theta, j)  # noqa: B023
            np.testing.assert_allclose(G[:, j], fd, rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------------------------------------------------------
# honest fits


@pytest.fixture(scope="module")
def no_dropout_log() -> pd.DataFrame:
    """Transactions of 2,000 customers who never drop out (p = 0): Poisson purchases on whole days, rates
    Gamma(0.8, 20 days), first purchases spread over a quarter, observed to the end of the year."""
    rng = np.random.default_rng(3)
    n = 2000
    lam = rng.gamma(0.8, 1 / 20.0, n)
    start = pd.Timestamp("2023-01-01")
    first = rng.integers(0, 90, n)
    span = 364 - first
    k = rng.poisson(lam * span)
    ids = np.repeat(np.arange(n), k)
    days = first[ids] + np.ceil(rng.random(k.sum()) * span[ids]).astype(int)
    rows = pd.DataFrame({"customer_id": np.r_[np.arange(n), ids], "day": np.r_[first, days]})
    return pd.DataFrame({"customer_id": rows["customer_id"], "date": start + pd.to_timedelta(rows["day"], "D"),
                         "amount": 10.0})


@pytest.mark.parametrize("model", [BetaGeo, ModifiedBetaGeo])
def test_a_log_without_dropout_warns_and_reports_no_negative_bound(no_dropout_log: pd.DataFrame, model) -> None:  # noqa: ANN001
    rfm = cf.rfm_summary(no_dropout_log, observation_end="2023-12-31", time_unit="W")
    with pytest.warns(ModelAssumptionWarning, match="no evidence of dropout in the calibration period: the model "
                                                     "behaves like an NBD in which every customer stays active; "
                                                     "consider Pareto/NBD or a longer calibration period"):
        fitted = model().fit(rfm)
    d = fitted.diagnostics_
    assert not d["identified"] and not d["converged"] and "no evidence of dropout" in d["message"]
    assert set(d["unidentified"]) >= {"a"}
    json.dumps(d, allow_nan=False)  # JSON-able
    s = fitted.summary
    assert not (s["lower"] < 0).any()
    assert s.loc[d["unidentified"], ["se", "lower", "upper"]].isna().all().all()
    assert s.loc[["r", "alpha"], "identified"].all() and (s.loc[["r", "alpha"], "lower"] > 0).all()
    # the purchase process is still estimated: r / alpha near the truth 0.8 / (20 days) = 0.28 per week
    assert fitted.params_["r"] / fitted.params_["alpha"] == pytest.approx(0.8 / 20 * 7, rel=0.1)
    with pytest.warns(ModelAssumptionWarning, match="held at the fitted value"):
        draws = fitted.sample_params(50, random_state=1)
    unid = [fitted.PARAM_NAMES.index(n) for n in d["unidentified"]]
    assert np.all(draws[:, unid] == fitted.theta_[unid]) and np.all(draws > 0)


def test_pareto_nbd_without_dropout_warns_too(no_dropout_log: pd.DataFrame) -> None:
    small = no_dropout_log[no_dropout_log["customer_id"] < 400]
    rfm = cf.rfm_summary(small, observation_end="2023-12-31", time_unit="W")
    with pytest.warns(ModelAssumptionWarning, match="no evidence of dropout"):
        fitted = ParetoNBD().fit(rfm)
    assert not fitted.diagnostics_["identified"] and not (fitted.summary["lower"] < 0).any()


def test_diagnostics_of_a_good_fit(cdnow_cal: pd.DataFrame) -> None:
    bg = BetaGeo().fit(cdnow_cal)
    d = bg.diagnostics_
    for key in ("converged", "gradient_norm", "hessian_condition", "at_bound", "identified", "message"):
        assert key in d
    assert d["converged"] and d["identified"] and d["at_bound"] == [] and d["message"] == ""
    assert d["gradient_norm"] < 1e-6 and 1 < d["hessian_condition"] < 1e4
    json.dumps(d, allow_nan=False)


def test_sample_params_follow_the_log_scale_covariance(cdnow_cal: pd.DataFrame) -> None:
    bg = BetaGeo().fit(cdnow_cal)
    draws = bg.sample_params(20_000, random_state=0)
    assert draws.shape == (20_000, 4) and np.all(draws > 0)
    logs = np.log(draws)
    np.testing.assert_allclose(logs.mean(axis=0), np.log(bg.theta_), atol=0.01)
    cov = bg.log_covariance_.to_numpy()
    sd = np.sqrt(np.diag(cov))
    se = np.sqrt((np.outer(sd, sd) ** 2 + cov**2) / len(draws))  # standard error of a sample covariance
    assert np.all(np.abs(np.cov(logs.T) - cov) < 4 * se)
    np.testing.assert_array_equal(bg.sample_params(3, random_state=5), bg.sample_params(3, random_state=5))
    with pytest.raises(ValueError, match="n_draws"):
        bg.sample_params(0)


# ----------------------------------------------------------------------------------------------------------
# registry, interface, bridge


def test_registry_and_class_attributes() -> None:
    assert PURCHASE_MODELS == {"bgnbd": BetaGeo, "pnbd": ParetoNBD, "mbgnbd": ModifiedBetaGeo,
                               "bgbb": BetaGeoBetaBinom}
    for name, cls in PURCHASE_MODELS.items():
        assert cls.NAME == name and issubclass(cls, PurchaseModel)
        assert isinstance(purchase_model(name), cls) and isinstance(purchase_model(cls), cls)
        assert cls.HISTORY == (("frequency", "recency", "n_periods") if cls.DISCRETE else ("frequency", "recency", "T"))
    assert [c.LABEL for c in PURCHASE_MODELS.values()] == ["BG/NBD", "Pareto/NBD", "MBG/NBD", "BG/BB"]
    inst = BetaGeo()
    assert purchase_model(inst) is inst
    assert isinstance(purchase_model("BG/NBD"), BetaGeo)
    assert isinstance(purchase_model("Pareto/NBD"), ParetoNBD) and isinstance(purchase_model("MBG/NBD"), ModifiedBetaGeo)
    assert isinstance(purchase_model("BetaGeoBetaBinom"), BetaGeoBetaBinom)
    with pytest.raises(ValueError, match="unknown purchase model 'ggnbd'"):
        purchase_model("ggnbd")


def test_expected_is_p_alive_times_expected_if_alive_with_broadcast_horizons() -> None:
    edges = np.array([1.0, 5.0, 39.0])
    for model in ALL:
        x, tx, T = histories_for(model)
        theta = np.array([1.2, 0.75, 0.66, 2.78]) if model.DISCRETE else np.array([0.55, 10.6, 0.6, 11.7])
        grid = model._expected_if_alive(theta, edges[None, :], x[:, None], tx[:, None], T[:, None])
        assert grid.shape == (len(x), 3)
        for k, t in enumerate(edges):
            np.testing.assert_allclose(grid[:, k], model._expected_if_alive(theta, t, x, tx, T), rtol=1e-12)
        p = model._p_alive(theta, x, tx, T)
        assert np.all((p >= 0) & (p <= 1))
        np.testing.assert_allclose(model._expected(theta, 5.0, x, tx, T), p * grid[:, 1], rtol=1e-12)


def test_to_lifetimes_gives_the_same_predictions_for_gamma_gamma_and_bg_nbd(cdnow_cal: pd.DataFrame) -> None:
    gg = GammaGamma().fit(cdnow_cal)
    ref = gg.to_lifetimes()
    rep = cdnow_cal[cdnow_cal["frequency"] > 0]
    np.testing.assert_allclose(gg.expected_spend(rep).to_numpy(),
                               ref.conditional_expected_average_profit(rep["frequency"], rep["monetary_value"]),
                               rtol=1e-12)
    back = GammaGamma.from_lifetimes(ref, time_unit="W")
    np.testing.assert_array_equal(back.params_, gg.params_)
    bg = BetaGeo().fit(cdnow_cal)
    lt = bg.to_lifetimes()
    x, tx, T = (cdnow_cal[c].to_numpy() for c in ("frequency", "recency", "T"))
    np.testing.assert_allclose(bg.expected_purchases(cdnow_cal, 39).to_numpy(),
                               lt.conditional_expected_number_of_purchases_up_to_time(39, x, tx, T), rtol=1e-9)
    np.testing.assert_allclose(bg.probability_alive(cdnow_cal).to_numpy(),
                               lt.conditional_probability_alive(x, tx, T), rtol=1e-12)


def test_from_lifetimes_computes_diagnostics_on_the_fitters_data(cdnow_cal: pd.DataFrame) -> None:
    lifetimes = _base.import_lifetimes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitter = lifetimes.BetaGeoFitter().fit(cdnow_cal["frequency"], cdnow_cal["recency"], cdnow_cal["T"])
    ours = BetaGeo().fit(cdnow_cal)
    with pytest.warns(DataQualityWarning, match="does not record the time unit"):
        imported = BetaGeo.from_lifetimes(fitter)
    assert imported.time_unit_ == "D"
    imported = BetaGeo.from_lifetimes(fitter, time_unit="W")
    assert imported.log_likelihood_ == pytest.approx(ours.log_likelihood_, abs=1e-6)
    np.testing.assert_allclose(imported.summary["se"], ours.summary["se"], rtol=1e-3)
    assert imported.diagnostics_["identified"] and imported.n_customers_ == len(cdnow_cal)
    with pytest.raises(TypeError, match="needs a lifetimes BetaGeoFitter"):
        BetaGeo.from_lifetimes(lifetimes.ParetoNBDFitter())
    bare = lifetimes.BetaGeoFitter()
    bare.params_ = fitter.params_
    nodata = BetaGeo.from_lifetimes(bare, time_unit="W")
    assert "without its data" in nodata.diagnostics_["message"] and math.isnan(nodata.log_likelihood_)


def test_predictions_on_a_table_without_a_time_unit_warn_like_fit(cdnow_cal: pd.DataFrame) -> None:
    bg = BetaGeo().fit(cdnow_cal)
    bare = cdnow_cal[["frequency", "recency", "T"]].copy()
    bare.attrs = {}
    for call in (lambda: bg.expected_purchases(bare, 39), lambda: bg.probability_alive(bare),
                 lambda: bg.probability_of_purchases(bare, 39, 1)):
        with pytest.warns(DataQualityWarning, match=r"does not say its time unit.*model's unit 'W'"):
            call()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bg.probability_alive(cdnow_cal)  # a table that says its unit: silent


def test_every_model_fits_and_round_trips_through_a_file(tmp_path, cdnow_cal: pd.DataFrame) -> None:  # noqa: ANN001
    tables = {BetaGeoBetaBinom: donations()}
    for cls in ALL:
        table = tables.get(cls, cdnow_cal)
        m = cls().fit(table)
        loaded = cf.load_model(m.save(tmp_path / f"{cls.NAME}.json"))
        assert type(loaded) is cls
        pd.testing.assert_frame_equal(loaded.summary, m.summary, check_exact=True)
        pd.testing.assert_series_equal(loaded.expected_purchases(table, 3), m.expected_purchases(table, 3),
                                       check_exact=True)
        assert loaded.diagnostics_ == m.diagnostics_


# ----------------------------------------------------------------------------------------------------------
# finite predictions for any positive finite parameters

EXTREMES = [1e-12, 1e-6, 1e-2, 1.0, 1e2, 1e6, 1e12]
param = st.one_of(st.sampled_from(EXTREMES), st.floats(-12, 12).map(lambda e: 10.0**e))


def _check_finite(model: type[PurchaseModel], theta: np.ndarray) -> None:
    x, tx, T = histories_for(model)
    with np.errstate(all="ignore"):
        p = model._p_alive(theta, x, tx, T)
        e = model._expected(theta, 4.0, x, tx, T)
        e_new = model._expected(theta, np.array([1.0, 40.0]), np.zeros(2), np.zeros(2), np.zeros(2))
        pmf = model._pmf(theta, 4.0, 5, x, tx, T)
    assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1)), theta
    assert np.all(np.isfinite(e)) and np.all(e >= 0), theta
    assert np.all(np.isfinite(e_new)) and np.all(e_new >= 0), theta
    assert np.all(np.isfinite(pmf)) and np.all((pmf >= -1e-12) & (pmf <= 1 + 1e-9)), theta


@pytest.mark.parametrize("model", ALL)
def test_predictions_are_finite_at_the_extremes(model) -> None:  # noqa: ANN001
    rng = np.random.default_rng(0)
    corners = [np.array(t) for t in ([1e-12] * 4, [1e12] * 4, [1.0, 1.0, 1e12, 1.0], [1.0, 1.0, 1.0, 1e12],
                                     [1e12, 1e-12, 1e12, 1e-12], [1e-12, 1e12, 1e-12, 1e12])]
    corners += [np.array(EXTREMES)[rng.integers(0, len(EXTREMES), 4)] for _ in range(20)]
    for theta in corners:
        _check_finite(model, theta)


@pytest.mark.parametrize("model", ALL)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(theta=st.tuples(param, param, param, param))
def test_predictions_are_finite_for_any_positive_parameters(model, theta) -> None:  # noqa: ANN001
    _check_finite(model, np.array(theta))


def test_bg_nbd_a_1e12_does_not_crash(cdnow_cal: pd.DataFrame) -> None:
    # issue 13: a = 1e12 crashed expected_purchases with "math domain error" (log1p(-p) at p = 1)
    d = BetaGeo().fit(cdnow_cal).to_dict()
    d["params"]["a"] = 1e12
    model = BetaGeo._from_dict(d)
    e = model.expected_purchases(cdnow_cal, 52)
    assert np.all(np.isfinite(e)) and np.all(e >= 0)


@pytest.mark.parametrize("model", [BetaGeo, ModifiedBetaGeo, ParetoNBD, BetaGeoBetaBinom])
def test_the_fast_weighted_sums_equal_the_per_row_sums(model) -> None:  # noqa: ANN001
    x, tx, T = histories_for(model)
    w = np.arange(1.0, len(x) + 1)
    theta = np.array([1.2, 0.75, 0.66, 2.78]) if model.DISCRETE else np.array([0.55, 10.6, 0.6, 11.7])
    d = _base.HistoryData(x=x, tx=tx, T=T)
    ll, G = model._ll_rows(theta, d, True)
    total, g = model._ll_sum(theta, d, w)
    assert total == pytest.approx(float(w @ ll), rel=1e-12)
    np.testing.assert_allclose(g, w @ G, rtol=1e-10, atol=1e-10)


def test_the_fast_weighted_sum_of_gamma_gamma_equals_the_per_row_sum() -> None:
    x = np.array([1.0, 2.0, 7.0, 2.0, 1000.0])
    m = np.array([22.35, 5.0, 71.2, 33.3, 0.01])
    w = np.array([1.0, 3.0, 0.5, 2.0, 1.0])
    theta = np.array([6.25, 3.74, 15.44])
    d = _base.HistoryData(x=x, m=m)
    ll, G = GammaGamma._ll_rows(theta, d, True)
    total, g = GammaGamma._ll_sum(theta, d, w)
    assert total == pytest.approx(float(w @ ll), rel=1e-12)
    np.testing.assert_allclose(g, w @ G, rtol=1e-10)


def test_weights_are_customers_per_row(cdnow_cal: pd.DataFrame) -> None:
    table = cdnow_cal[["frequency", "recency", "T"]].iloc[::3]
    doubled = pd.concat([table, table.set_axis(table.index + 100_000)])
    doubled.attrs["time_unit"] = "W"
    a = BetaGeo().fit(doubled)
    b = BetaGeo().fit(table, weights=np.full(len(table), 2.0))
    np.testing.assert_allclose(a.params_, b.params_, rtol=1e-8)
    assert a.log_likelihood_ == pytest.approx(b.log_likelihood_, rel=1e-10)
    assert a.n_customers_ == b.n_customers_ == 2 * len(table) and b.fit_info_["weighted"]
    with pytest.raises(cf.DataValidationError, match="weights has 3 values"):
        BetaGeo().fit(table, weights=[1, 2, 3])


def test_gamma_gamma_expected_spend_is_finite_for_any_positive_parameters() -> None:
    x = np.array([0.0, 1.0, 3.0, 5000.0])
    m = np.array([0.0, 1e-6, 25.0, 1e6])
    for p in EXTREMES:
        for q in (1 + 1e-9, 1.5, 1e6, 1e12):
            for v in EXTREMES:
                e = ggmod.expected_spend((p, q, v), x, m)
                assert np.all(np.isfinite(e)) and np.all(e >= 0), (p, q, v)
                shape, rate = GammaGamma._posterior((p, q, v), x, m)
                assert np.all(np.isfinite(shape)) and np.all(rate > 0)


def test_a_model_assembled_by_hand_has_a_log_covariance_and_draws(cdnow_cal: pd.DataFrame) -> None:
    fitted = GammaGamma().fit(cdnow_cal)
    gg = GammaGamma()
    gg.params_ = fitted.params_.copy()
    gg.variance_matrix_ = fitted.variance_matrix_ * 0.0  # no parameter uncertainty: every draw is theta
    gg.time_unit_ = "W"
    np.testing.assert_array_equal(gg.log_covariance_.to_numpy(), np.zeros((3, 3)))
    np.testing.assert_allclose(gg.sample_params(4, random_state=0), np.tile(gg.theta_, (4, 1)), rtol=1e-12)
    assert list(gg.summary.columns) == ["coef", "se", "lower", "upper", "identified"]
    np.testing.assert_allclose(fitted.log_covariance_.to_numpy(),
                               fitted.variance_matrix_.to_numpy() / np.outer(fitted.theta_, fitted.theta_))
