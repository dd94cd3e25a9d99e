"""predictive_clv: agreement with lifetimes where the units agree, explicit units, discounting, invariants."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import clvforecast as cf
from clvforecast.exceptions import DataValidationError, NotFittedError
from clvforecast.models import _base
from clvforecast.units import periodic_rate

CAL_END, OBS_END = "1997-09-30", "1998-06-30"


@pytest.fixture(scope="module")
def daily(cdnow_tx: pd.DataFrame) -> pd.DataFrame:
    return cf.calibration_holdout(cdnow_tx, calibration_end=CAL_END, observation_end=OBS_END, time_unit="D")


@pytest.fixture(scope="module")
def daily_models(daily: pd.DataFrame) -> tuple[cf.BetaGeo, cf.GammaGamma]:
    return cf.BetaGeo().fit(daily), cf.GammaGamma().fit(daily)


@pytest.fixture(scope="module")
def weekly_models(cdnow_cal: pd.DataFrame) -> tuple[cf.BetaGeo, cf.GammaGamma]:
    return cf.BetaGeo().fit(cdnow_cal), cf.GammaGamma().fit(cdnow_cal)


def lifetimes_clv(bg: cf.BetaGeo, gg: cf.GammaGamma, rfm: pd.DataFrame, *, day_length: float,
                  monthly_rate: float) -> pd.Series:
    """lifetimes' customer_lifetime_value (12 months of 30 "days", freq="D") with our parameters; the table
    and alpha are expressed in "days" of ``day_length`` real days."""
    lifetimes = _base.import_lifetimes()
    bgf = lifetimes.BetaGeoFitter()
    bgf.params_ = bg.params_.copy()
    bgf.params_["alpha"] /= day_length
    bgf.predict = bgf.conditional_expected_number_of_purchases_up_to_time
    ggf = lifetimes.GammaGammaFitter()
    ggf.params_ = gg.params_.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ggf.customer_lifetime_value(
            bgf, rfm["frequency"], rfm["recency"] / day_length, rfm["T"] / day_length, rfm["monetary_value"],
            time=12, discount_rate=monthly_rate, freq="D",
        )


def test_same_as_lifetimes_with_its_30_day_months(daily: pd.DataFrame, daily_models) -> None:  # noqa: ANN001
    bg, gg = daily_models
    monthly = 0.01  # lifetimes takes a rate per (30-day) month; ours is annual
    annual = (1 + monthly) ** (365.25 / 30) - 1
    ours = cf.predictive_clv(bg, gg, daily, horizon="360D", step="30D", discount_rate=annual)
    theirs = lifetimes_clv(bg, gg, daily, day_length=1.0, monthly_rate=monthly)
    np.testing.assert_allclose(ours["clv"], theirs, rtol=1e-10)


def test_calendar_months_differ_from_lifetimes_only_by_the_month_length(daily: pd.DataFrame,
                                                                        daily_models) -> None:  # noqa: ANN001
    bg, gg = daily_models
    annual = 0.10
    ours = cf.predictive_clv(bg, gg, daily, horizon="12M", step="M", discount_rate=annual)
    lifetimes_30 = lifetimes_clv(bg, gg, daily, day_length=1.0, monthly_rate=periodic_rate(annual, "M"))
    assert np.all(ours["clv"] > lifetimes_30)  # 12 x 30.4375 days is longer than 360
    # lifetimes on a clock whose "day" is 30.4375 / 30 days, i.e. whose 30-day month is a calendar month
    lifetimes_calendar = lifetimes_clv(bg, gg, daily, day_length=(365.25 / 12) / 30,
                                       monthly_rate=periodic_rate(annual, "M"))
    np.testing.assert_allclose(ours["clv"], lifetimes_calendar, rtol=1e-10)


def test_columns_index_and_units(cdnow_cal: pd.DataFrame, weekly_models) -> None:  # noqa: ANN001
    bg, gg = weekly_models
    before = cdnow_cal.copy(deep=True)
    out = cf.predictive_clv(bg, gg, cdnow_cal, horizon="52W", discount_rate=0.1, margin=0.3)
    pd.testing.assert_frame_equal(cdnow_cal, before)
    assert list(out.columns) == ["expected_purchases", "probability_alive", "expected_spend", "clv",
                                 "clv_if_alive"]
    assert out.index.equals(cdnow_cal.index)
    pd.testing.assert_series_equal(out["expected_purchases"], bg.expected_purchases(cdnow_cal, 52),
                                   check_names=False, rtol=1e-12)
    pd.testing.assert_series_equal(out["probability_alive"], bg.probability_alive(cdnow_cal),
                                   check_names=False)
    pd.testing.assert_series_equal(out["expected_spend"], gg.expected_spend(cdnow_cal), check_names=False)
    assert out.attrs["time_unit"] == "W" and out.attrs["horizon"] == 52
    assert out.attrs["n_steps"] == 12  # 52 weeks in months of 365.25/12 days: 11.96 steps, the last short
    assert out.attrs["discount_rate_per_step"] == pytest.approx(1.1 ** (1 / 12) - 1, rel=1e-12)
    json.dumps(out.attrs)  # plain values
    # a number is in the model's unit; the same horizon in other units gives the same result
    for same in (52, "364D"):
        again = cf.predictive_clv(bg, gg, cdnow_cal, horizon=same, discount_rate=0.1, margin=0.3)
        pd.testing.assert_frame_equal(again, out)


def test_undiscounted_clv_is_margin_times_spend_times_purchases(cdnow_cal: pd.DataFrame,
                                                               weekly_models) -> None:  # noqa: ANN001
    bg, gg = weekly_models
    for step in ("M", "W", "2W", 39):
        out = cf.predictive_clv(bg, gg, cdnow_cal, horizon="39W", margin=0.25, step=step)
        np.testing.assert_allclose(out["clv"], 0.25 * out["expected_spend"] * out["expected_purchases"],
                                   rtol=1e-12)
        # the value if retained: an inactive customer buys nothing, so E[X] = P(alive) E[X | alive]
        np.testing.assert_allclose(out["clv_if_alive"] * out["probability_alive"], out["clv"], rtol=1e-12)
        assert (out["clv_if_alive"] >= out["clv"]).all()
    zero = cf.predictive_clv(bg, gg, cdnow_cal, horizon=0)
    assert (zero["clv"] == 0).all() and (zero["expected_purchases"] == 0).all()


def test_discounting_by_hand(cdnow_cal: pd.DataFrame, weekly_models) -> None:  # noqa: ANN001
    bg, gg = weekly_models
    one = cdnow_cal.loc[[1]]
    out = cf.predictive_clv(bg, gg, one, horizon="3M", discount_rate=0.12, step="M")
    month = 365.25 / 12 / 7
    e = [bg.expected_purchases(one, k * month).iloc[0] for k in range(4)]
    d = 1.12 ** (1 / 12)
    expected = gg.expected_spend(one).iloc[0] * sum((e[k] - e[k - 1]) / d**k for k in (1, 2, 3))
    assert out["clv"].iloc[0] == pytest.approx(expected, rel=1e-12)


def test_errors(cdnow_cal: pd.DataFrame, daily: pd.DataFrame, weekly_models) -> None:  # noqa: ANN001
    bg, gg = weekly_models
    with pytest.raises(DataValidationError, match="time unit 'D'"):
        cf.predictive_clv(bg, gg, daily, horizon="12M")
    with pytest.raises(DataValidationError, match="monetary_value"):
        cf.predictive_clv(bg, gg, cdnow_cal.drop(columns="monetary_value"), horizon="12M")
    with pytest.raises(ValueError, match="horizon"):
        cf.predictive_clv(bg, gg, cdnow_cal, horizon="12 months")
    with pytest.raises(ValueError, match="step"):
        cf.predictive_clv(bg, gg, cdnow_cal, horizon="12M", step="0D")
    with pytest.raises(ValueError, match="margin"):
        cf.predictive_clv(bg, gg, cdnow_cal, horizon="12M", margin=-0.1)
    with pytest.raises(ValueError, match="discount_rate"):
        cf.predictive_clv(bg, gg, cdnow_cal, horizon="12M", discount_rate=-1.5)
    # the cases: a percentage typed as a whole number is refused with the fix, which is then accepted
    with pytest.raises(ValueError, match=r"1,000% a year; .*pass discount_rate=0\.1 for 10% a year"):
        cf.predictive_clv(bg, gg, cdnow_cal, horizon="12M", discount_rate=10)
    with pytest.raises(ValueError, match=r"more than the whole spend.*pass margin=0\.3 for 30%"):
        cf.predictive_clv(bg, gg, cdnow_cal, horizon="12M", margin=30)
    cf.predictive_clv(bg, gg, cdnow_cal, horizon="12M", discount_rate=0.1, margin=0.3)
    with pytest.raises(NotFittedError):
        cf.predictive_clv(cf.BetaGeo(), gg, cdnow_cal, horizon="12M")
    with pytest.raises(TypeError, match="BetaGeo"):
        cf.predictive_clv(gg, bg, cdnow_cal, horizon="12M")


def test_no_nan_for_extreme_histories(weekly_models) -> None:  # noqa: ANN001
    bg, gg = weekly_models
    rfm = pd.DataFrame({"frequency": [0, 1, 5000, 5000, 200], "recency": [0.0, 1.0, 39.0, 1.0, 39.0],
                        "T": [0.0, 39.0, 39.0, 39.0, 39.0], "monetary_value": [0.0, 10.0, 1e4, 0.01, 35.0]})
    rfm.attrs["time_unit"] = "W"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = cf.predictive_clv(bg, gg, rfm, horizon="10Y", discount_rate=0.1, step="D")
    assert np.all(np.isfinite(out.to_numpy()))


def test_a_table_without_a_time_unit_warns_like_fit(cdnow_cal: pd.DataFrame, weekly_models) -> None:  # noqa: ANN001
    # issue 13: fit warns on a table that does not record its unit; predictive_clv and forecast_totals do too
    bg, gg = weekly_models
    bare = cdnow_cal.copy()
    bare.attrs = {}
    with pytest.warns(cf.DataQualityWarning, match=r"predictive_clv: the table does not say its time unit.*'W'"):
        out = cf.predictive_clv(bg, gg, bare, horizon="52W")
    # taken to be in the model's unit: the same numbers as the table that says so
    pd.testing.assert_frame_equal(out, cf.predictive_clv(bg, gg, cdnow_cal, horizon="52W"), check_like=True)
    with pytest.warns(cf.DataQualityWarning, match="forecast_totals: the table does not say its time unit"):
        cf.forecast_totals(bg, None, bare.iloc[:200], horizon="52W", random_state=0)


# ----------------------------------------------------------------------------------------------------------
# invariants (hypothesis), on a small table with extreme rows


def _table() -> pd.DataFrame:
    rfm = pd.DataFrame({
        "frequency": [0, 1, 2, 26, 5000],
        "recency": [0.0, 5.0, 30.43, 30.857, 39.0],
        "T": [38.86, 39.0, 38.86, 31.0, 39.0],
        "monetary_value": [0.0, 20.0, 22.35, 40.0, 35.0],
    })
    rfm.attrs["time_unit"] = "W"
    return rfm


@settings(max_examples=40, deadline=None)
@given(d1=st.floats(0, 0.99), d2=st.floats(0, 0.99), horizon=st.floats(0.5, 520))
def test_clv_is_non_increasing_in_the_discount_rate(weekly_models, d1: float, d2: float,  # noqa: ANN001
                                                    horizon: float) -> None:
    bg, gg = weekly_models
    lo, hi = sorted((d1, d2))
    a = cf.predictive_clv(bg, gg, _table(), horizon=horizon, discount_rate=lo)["clv"]
    b = cf.predictive_clv(bg, gg, _table(), horizon=horizon, discount_rate=hi)["clv"]
    assert np.all(np.isfinite(a)) and np.all(b <= a * (1 + 1e-12))


@settings(max_examples=40, deadline=None)
@given(m1=st.floats(0, 1, allow_subnormal=False), m2=st.floats(0, 1, allow_subnormal=False),
       discount=st.floats(0, 0.99))
def test_clv_is_monotone_and_linear_in_the_margin(weekly_models, m1: float, m2: float,  # noqa: ANN001
                                                  discount: float) -> None:
    bg, gg = weekly_models
    lo, hi = sorted((m1, m2))
    a = cf.predictive_clv(bg, gg, _table(), horizon="2Y", discount_rate=discount, margin=lo)["clv"]
    b = cf.predictive_clv(bg, gg, _table(), horizon="2Y", discount_rate=discount, margin=hi)["clv"]
    assert np.all(a <= b * (1 + 1e-12))
    one = cf.predictive_clv(bg, gg, _table(), horizon="2Y", discount_rate=discount, margin=1.0)["clv"]
    np.testing.assert_allclose(b, hi * one, rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(h1=st.floats(0, 520), h2=st.floats(0, 520), discount=st.floats(0, 0.99))
def test_clv_is_non_decreasing_in_the_horizon(weekly_models, h1: float, h2: float,  # noqa: ANN001
                                              discount: float) -> None:
    bg, gg = weekly_models
    lo, hi = sorted((h1, h2))
    a = cf.predictive_clv(bg, gg, _table(), horizon=lo, discount_rate=discount)["clv"]
    b = cf.predictive_clv(bg, gg, _table(), horizon=hi, discount_rate=discount)["clv"]
    assert np.all(a <= b * (1 + 1e-12) + 1e-12)


def test_numpy_numbers_are_accepted_and_margins_follow_one_rule(cdnow_cal):
    bg, gg = cf.BetaGeo().fit(cdnow_cal), cf.GammaGamma().fit(cdnow_cal)
    plain = cf.predictive_clv(bg, gg, cdnow_cal, horizon="12M", discount_rate=0.1, margin=0.25)
    numpy = cf.predictive_clv(bg, gg, cdnow_cal, horizon="12M", discount_rate=np.float32(0.1),
                              margin=np.float32(0.25))
    np.testing.assert_allclose(numpy["clv"], plain["clv"], rtol=1e-6)
    assert (cf.predictive_clv(bg, gg, cdnow_cal, horizon="12M", margin=0)["clv"] == 0).all()
    with pytest.raises(ValueError, match="margin must be a finite number >= 0"):
        cf.predictive_clv(bg, gg, cdnow_cal, horizon="12M", margin=-0.1)
    with pytest.raises(TypeError, match="margin must be a number"):
        cf.predictive_clv(bg, gg, cdnow_cal, horizon="12M", margin="30%")


@pytest.mark.parametrize("name", ["bgnbd", "pnbd", "mbgnbd", "bgbb"])
def test_the_alive_part_does_not_depend_on_recency(name: str) -> None:
    """predictive_clv computes E[purchases | alive] once per distinct (x, T): that is right only if no model's
    alive part reads t_x. Checked on random parameters and histories, t_x moved over its whole range."""
    rng = np.random.default_rng(7)
    cls = cf.models.PURCHASE_MODELS[name]
    for _ in range(5):
        theta = rng.uniform(0.3, 5.0, 4)
        T = rng.integers(1, 60, 50).astype(float)
        x = np.floor(rng.uniform(0, 1, 50) * T)
        t = np.array([[1.0, 4.0, 13.0, 52.0]])
        tx_a = np.where(x > 0, np.floor(rng.uniform(0, 1, 50) * T) + 0.0, 0.0)
        tx_b = np.where(x > 0, T, 0.0)
        a = cls._expected_if_alive(theta, t, x[:, None], tx_a[:, None], T[:, None])
        b = cls._expected_if_alive(theta, t, x[:, None], tx_b[:, None], T[:, None])
        np.testing.assert_array_equal(a, b)


def test_clv_of_a_customer_is_the_same_alone_or_with_others(cdnow_cal: pd.DataFrame, weekly_models) -> None:  # noqa: ANN001
    """The per-(x, T) sharing must not mix customers up: scoring each of a few customers alone gives the same
    numbers as scoring them together with the whole table."""
    bg, gg = weekly_models
    full = cf.predictive_clv(bg, gg, cdnow_cal, horizon=39)
    for cid in cdnow_cal.index[[0, 5, 17, 123, 1000]]:
        alone = cf.predictive_clv(bg, gg, cdnow_cal.loc[[cid]], horizon=39)
        pd.testing.assert_frame_equal(alone, full.loc[[cid]], check_exact=False, rtol=1e-12)


def test_every_output_column_can_be_edited(cdnow_cal: pd.DataFrame, weekly_models) -> None:  # noqa: ANN001
    """The output is the user's table: no column may be a read-only view of the model's arrays."""
    bg, gg = weekly_models
    out = cf.predictive_clv(bg, gg, cdnow_cal, horizon=39, interval=0.8, random_state=0)
    out.iloc[0:3, :] = 0.0
    out.loc[out.index[5], "expected_spend"] = 1.0
    assert (out.iloc[0:3] == 0.0).all().all() and out.loc[out.index[5], "expected_spend"] == 1.0
