"""rfm_summary and calibration_holdout: Fader-Hardie's published CDNOW summary, lifetimes, hand-derived cases,
and invariants."""

from __future__ import annotations

import importlib.util
import re
import warnings
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from lifetimes.utils import summary_data_from_transaction_data

import clvforecast as cf
from clvforecast.exceptions import DataQualityWarning, DataValidationError

# Published values are rounded to 2 decimals: a correct value is within half a unit of the last digit.
ROUNDING = 0.005 + 1e-9
EXAMPLE_TRANSACTIONS = (
    Path(importlib.util.find_spec("lifetimes").origin).parent / "datasets" / "example_transactions.csv"
)


def _tx(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "date", "amount"])


# --- the published CDNOW summary (Fader, Hardie & Lee 2005) -------------------------------------------------


def test_cdnow_calibration_table_reproduces_the_published_summary(
    cdnow_cal: pd.DataFrame, published_summary: pd.DataFrame
) -> None:
    assert len(cdnow_cal) == 2357 and len(published_summary) == 2357
    assert cdnow_cal.index.equals(published_summary.index.rename("customer_id"))  # ids 1..2357, sorted
    ours = cdnow_cal.loc[published_summary.index]
    assert (ours["frequency"] == published_summary["x"]).all()
    for col, pub in (("recency", "t_x"), ("T", "T"), ("monetary_value", "zbar")):
        worst = (ours[col] - published_summary[pub]).abs().max()
        assert worst <= ROUNDING, f"{col}: max |ours - published {pub}| = {worst}"


def test_cdnow_totals(cdnow_cal: pd.DataFrame, published_summary: pd.DataFrame) -> None:
    assert int(cdnow_cal["frequency"].sum()) == 2457 == int(published_summary["x"].sum())
    assert int(cdnow_cal["holdout_frequency"].sum()) == 1882
    assert int((cdnow_cal["frequency"] > 0).sum()) == 946


def test_cdnow_customer_one_by_hand(cdnow_cal: pd.DataFrame, cdnow_tx: pd.DataFrame) -> None:
    # Customer 1 bought on 1997-01-01 (29.33), 01-18 (29.73), 08-02 (14.96), and 12-12 (26.48) in the holdout.
    assert cdnow_tx.loc[cdnow_tx["customer_id"] == 1, "amount"].tolist() == [29.33, 29.73, 14.96, 26.48]
    row = cdnow_cal.loc[1]
    assert row["frequency"] == 2
    assert row["recency"] == pytest.approx(213 / 7, abs=1e-12)  # 1997-01-01 -> 1997-08-02
    assert row["T"] == pytest.approx(272 / 7, abs=1e-12)  # 1997-01-01 -> 1997-09-30
    assert row["monetary_value"] == pytest.approx((29.73 + 14.96) / 2, abs=1e-12)
    assert row["holdout_frequency"] == 1 and row["holdout_spend"] == pytest.approx(26.48, abs=1e-12)


def test_cdnow_attrs(cdnow_cal: pd.DataFrame) -> None:
    attrs = dict(cdnow_cal.attrs)
    ledger, extremes = attrs.pop("ledger"), attrs.pop("extreme_orders")
    assert attrs == {
        "time_unit": "W",
        "observation_end": "1998-06-30",
        "n_rows_read": 6919,
        "dropped": {},
        "excluded_after_observation_end": 0,
        "calibration_end": "1997-09-30",
        "holdout_duration": 39.0,  # 273 days
        "excluded_new_in_holdout": 0,
    }
    # every CDNOW row reaches the table (all customers first bought in Q1 1997, the log ends on 1998-06-30)
    assert (ledger["rows_read"], ledger["rows_used"], ledger["identity_holds"]) == (6919, 6919, True)
    assert [e["key"] for e in ledger["entries"]] == ["extreme_orders"] and ledger["entries"][0]["rows"] == 0
    assert extremes == [{"customer_id": 1901, "date": "1997-03-20", "value": 1554.58, "period": "calibration"}]
    assert list(cdnow_cal.columns) == [
        "frequency", "recency", "T", "monetary_value",
        "holdout_frequency", "holdout_spend", "holdout_monetary_value",
    ]  # fmt: skip
    assert str(cdnow_cal["frequency"].dtype) == "int64" and str(cdnow_cal.index.dtype) == "int64"
    assert cdnow_cal.index.name == "customer_id"


def rfm_sql_plain() -> str:
    from clvforecast.rfm import RFM_SQL, render_sql

    return render_sql(RFM_SQL)


def rfm_sql_capped() -> str:
    from clvforecast.rfm import RFM_SQL, render_sql

    return render_sql(RFM_SQL, cap=True)


def test_cdnow_extreme_days_follow_the_documented_fence(cdnow_tx: pd.DataFrame) -> None:
    # Independent computation: each customer's mean positive purchase-day value up to the calibration end, the
    # quartiles of these means across customers (linear interpolation), the fence on the log scale
    # ln Q3 + 3 (ln Q3 - ln Q1), at least 10 x Q3; every day up to the observation end above it is extreme.
    days = cdnow_tx.groupby(["customer_id", "date"])["amount"].sum().reset_index()
    cal = days[(days["date"] <= "1997-09-30") & (days["amount"] > 0)]
    q1, q3 = np.log(np.quantile(cal.groupby("customer_id")["amount"].mean(), [0.25, 0.75]))
    fence = np.exp(max(q3 + 3 * (q3 - q1), q3 + np.log(10)))
    expected = days[days["amount"] > fence].sort_values("amount", ascending=False)
    assert len(expected) >= 1
    capped = cf.calibration_holdout(
        cdnow_tx, calibration_end="1997-09-30", observation_end="1998-06-30", extreme="cap"
    )
    listed = cf.extreme_orders(capped)
    assert listed["customer_id"].tolist() == expected["customer_id"].tolist()
    np.testing.assert_allclose(listed["value"], expected["amount"], rtol=1e-12)
    assert "$cap" not in rfm_sql_plain() and "$cap" in rfm_sql_capped()
    # cap: customer 1901's calibration repeat days, with the extreme day capped at the fence
    mine = days[(days["customer_id"] == 1901) & (days["date"] <= "1997-09-30")].sort_values("date")
    repeat = mine["amount"].iloc[1:].clip(upper=fence)
    assert capped.loc[1901, "monetary_value"] == pytest.approx(repeat.mean(), rel=1e-12)
    entry = capped.attrs["ledger"]["entries"][-1]
    assert entry["key"] == "extreme_orders" and entry["customers"] == len(set(expected["customer_id"]))
    removed = (expected.loc[expected["date"] <= "1997-09-30", "amount"] - fence).sum()
    assert entry["value"] == pytest.approx(removed, rel=1e-12)


# --- agreement with lifetimes -------------------------------------------------------------------------------


def test_equal_to_lifetimes_on_its_example_transactions() -> None:
    raw = pd.read_csv(EXAMPLE_TRANSACTIONS)  # date, id: 5,000 customers, no amounts
    for end in (None, "2014-06-30"):
        theirs = summary_data_from_transaction_data(raw, "id", "date", observation_period_end=end, freq="D")
        ours = cf.rfm_summary(EXAMPLE_TRANSACTIONS, customer_id="id", amount=None, observation_end=end)
        assert list(ours.columns) == ["frequency", "recency", "T"]
        assert len(ours) == len(theirs)
        theirs = theirs.loc[ours.index]
        assert (ours["frequency"] == theirs["frequency"]).all()
        for col in ("recency", "T"):
            assert np.array_equal(ours[col].to_numpy(), theirs[col].to_numpy())


def test_calibration_columns_equal_lifetimes_on_the_calibration_period() -> None:
    # lifetimes' calibration_and_holdout_data does this (summary of the calibration rows at calibration_end),
    # but fails under pandas 3 in its holdout part; the holdout days are counted here directly.
    raw = pd.read_csv(EXAMPLE_TRANSACTIONS, parse_dates=["date"])
    cal_end, obs_end = pd.Timestamp("2014-09-01"), pd.Timestamp("2014-12-31")
    theirs = summary_data_from_transaction_data(
        raw[raw["date"] <= cal_end], "id", "date", observation_period_end=cal_end, freq="D"
    )
    ours = cf.calibration_holdout(
        EXAMPLE_TRANSACTIONS, customer_id="id", amount=None, calibration_end=cal_end, observation_end=obs_end
    )
    assert len(ours) == len(theirs)
    theirs = theirs.loc[ours.index]
    for col in ("frequency", "recency", "T"):
        assert np.array_equal(ours[col].to_numpy(), theirs[col].to_numpy())
    holdout = raw[(raw["date"] > cal_end) & (raw["date"] <= obs_end)]
    days = holdout.groupby("id")["date"].nunique().reindex(ours.index, fill_value=0)
    assert np.array_equal(ours["holdout_frequency"].to_numpy(), days.to_numpy())
    assert ours.attrs["holdout_duration"] == 121  # days, 2014-09-02..2014-12-31
    new = raw.groupby("id")["date"].min()
    assert ours.attrs["excluded_new_in_holdout"] == int(((new > cal_end) & (new <= obs_end)).sum())


def _synthetic_log(seed: int = 3, n: int = 400) -> pd.DataFrame:
    """Amounts with cents, several purchases on one day, timestamps with times of day."""
    rng = np.random.default_rng(seed)
    day = pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 200, n), unit="D")
    time = pd.to_timedelta(rng.integers(0, 86_400, n), unit="s")
    return pd.DataFrame(
        {
            "customer_id": rng.integers(0, 60, n),
            "date": day + time,
            "amount": np.round(rng.gamma(2.0, 20.0, n), 2),
        }
    )


def test_equal_to_lifetimes_with_monetary_value() -> None:
    log = _synthetic_log()
    assert log.assign(day=log["date"].dt.normalize()).duplicated(["customer_id", "day"]).any()
    for end in (None, "2022-05-15"):
        theirs = summary_data_from_transaction_data(
            log, "customer_id", "date", "amount", observation_period_end=end, freq="D"
        )
        ours = cf.rfm_summary(log, observation_end=end)
        theirs = theirs.loc[ours.index]
        assert len(ours) == len(theirs)
        assert (ours["frequency"] == theirs["frequency"]).all()
        for col in ("recency", "T", "monetary_value"):
            np.testing.assert_allclose(ours[col], theirs[col], rtol=0, atol=1e-9)


# --- definitions by hand ------------------------------------------------------------------------------------


def test_same_day_purchases_are_one_transaction_with_summed_spend() -> None:
    log = _tx(
        [
            ("a", "2024-01-01 09:00", 10.0),
            ("a", "2024-01-01 18:00", 5.0),  # same day as the first: not a repeat
            ("a", "2024-01-08", 4.0),
            ("a", "2024-01-08 20:00", 6.0),  # repeat day 1 spends 10
            ("a", "2024-01-15", 20.0),  # repeat day 2 spends 20
            ("b", "2024-01-10", 7.0),
        ]
    )
    rfm = cf.rfm_summary(log, observation_end="2024-01-31")
    assert rfm.loc["a"].tolist() == [2, 14.0, 30.0, 15.0]
    assert rfm.loc["b"].tolist() == [0, 0.0, 21.0, 0.0]


def test_money_sums_are_exact_for_currency_amounts() -> None:
    # In binary floating point 51.87 + 69.23 - 51.87 != 69.23; the decimal sums are exact.
    log = _tx([(1, "1997-01-04", 51.87), (1, "1997-02-14", 69.23), (1, "1997-12-07", 15.49)])
    rfm = cf.rfm_summary(log, observation_end="1997-12-31")
    assert rfm.loc[1, "monetary_value"] == (69.23 + 15.49) / 2


def test_time_units_only_scale() -> None:
    log = _synthetic_log()
    days = cf.rfm_summary(log, observation_end="2022-07-01", time_unit="D")
    for unit, per in (("W", 7.0), ("M", 365.25 / 12), ("Y", 365.25), ("w", 7.0)):
        scaled = cf.rfm_summary(log, observation_end="2022-07-01", time_unit=unit)
        assert scaled.attrs["time_unit"] == unit.upper()
        np.testing.assert_allclose(scaled[["recency", "T"]], days[["recency", "T"]] / per, rtol=1e-15)
        pd.testing.assert_series_equal(scaled["frequency"], days["frequency"])
    with pytest.raises(ValueError, match="time_unit must be one of D, W, M, Y"):
        cf.rfm_summary(log, time_unit="Q")


def test_observation_end_defaults_to_the_last_transaction() -> None:
    log = _tx([(1, "2024-01-01", 1.0), (1, "2024-01-11", 2.0), (2, "2024-01-21", 3.0)])
    rfm = cf.rfm_summary(log)
    assert rfm.attrs["observation_end"] == "2024-01-21"
    assert rfm["T"].tolist() == [20.0, 0.0]


def test_transactions_after_observation_end_are_excluded_and_counted() -> None:
    log = _tx(
        [
            (1, "2024-01-01", 1.0),
            (1, "2024-01-10", 2.0),
            (1, "2024-02-05", 50.0),  # after the end
            (2, "2024-01-20", 3.0),
            (3, "2024-02-01", 4.0),  # after the end: customer 3 is not in the table
        ]
    )
    rfm = cf.rfm_summary(log, observation_end="2024-01-31")
    assert rfm.attrs["excluded_after_observation_end"] == 2
    assert list(rfm.index) == [1, 2]
    assert rfm.loc[1].tolist() == [1, 9.0, 30.0, 2.0]
    cal = cf.calibration_holdout(log, calibration_end="2024-01-15", observation_end="2024-01-31")
    assert cal.attrs["excluded_after_observation_end"] == 2
    assert cal.attrs["excluded_new_in_holdout"] == 1  # customer 2 first bought on 01-20
    assert list(cal.index) == [1] and cal.loc[1, "holdout_spend"] == 0.0  # the 50.0 is after the end


def test_calibration_holdout_by_hand() -> None:
    log = _tx(
        [
            (1, "2024-01-01", 10.0),
            (1, "2024-01-05", 20.0),
            (1, "2024-01-20", 30.0),  # holdout
            (1, "2024-01-20", 6.0),  # holdout, same day
            (1, "2024-01-28", 12.0),  # holdout
            (2, "2024-01-09", 5.0),
            (3, "2024-01-18", 8.0),  # first purchase in the holdout: left out, counted
            (3, "2024-01-25", 9.0),
        ]
    )
    cal = cf.calibration_holdout(
        log, calibration_end="2024-01-10", observation_end="2024-01-31", time_unit="W"
    )
    assert list(cal.index) == [1, 2]
    assert cal.loc[1, ["frequency", "recency", "T", "monetary_value"]].tolist() == [1, 4 / 7, 9 / 7, 20.0]
    assert cal.loc[1, ["holdout_frequency", "holdout_spend", "holdout_monetary_value"]].tolist() == [
        2,
        48.0,
        24.0,
    ]
    assert cal.loc[2].tolist() == [0, 0.0, 1 / 7, 0.0, 0, 0.0, 0.0]
    assert cal.attrs["excluded_new_in_holdout"] == 1
    assert cal.attrs["holdout_duration"] == 3.0  # 21 days
    assert (cal.attrs["calibration_end"], cal.attrs["observation_end"]) == ("2024-01-10", "2024-01-31")


def test_calibration_holdout_needs_ordered_dates_and_customers() -> None:
    log = _tx([(1, "2024-01-05", 1.0)])
    with pytest.raises(ValueError, match=r"observation_end \(2024-01-01\) is before calibration_end"):
        cf.calibration_holdout(log, calibration_end="2024-02-01", observation_end="2024-01-01")
    with pytest.raises(DataValidationError, match="no customer made a purchase on or before 2024-01-01"):
        cf.calibration_holdout(log, calibration_end="2024-01-01", observation_end="2024-02-01")
    with pytest.raises(ValueError, match="is not a date"):
        cf.calibration_holdout(log, calibration_end="soon", observation_end="2024-02-01")


def test_frequency_only_tables_leave_out_money() -> None:
    log = _tx([(1, "2024-01-01", 1.0), (1, "2024-01-03", 2.0)]).drop(columns="amount")
    cal = cf.calibration_holdout(log, amount=None, calibration_end="2024-01-02", observation_end="2024-01-04")
    assert list(cal.columns) == ["frequency", "recency", "T", "holdout_frequency"]
    assert cal.loc[1].tolist() == [0, 0.0, 1.0, 1]


def test_validation_options_pass_through_and_are_reported() -> None:
    log = _tx([(1, "2024-01-01", 1.0), (1, "bad", 2.0), (1, "2024-01-03", 0.0), (2, "2024-01-02", -4.0)])
    with pytest.raises(DataValidationError, match="could not be parsed as dates"):
        cf.rfm_summary(log)
    with pytest.warns(DataQualityWarning, match="dropped 3 of 4 rows") as record:
        rfm = cf.rfm_summary(log, on_invalid="drop", zero_amounts="drop")
    assert record[0].filename == __file__
    assert rfm.attrs["dropped"] == {"unparseable_date": 1, "negative_amount": 1, "zero_amount": 1}
    assert rfm.attrs["n_rows_read"] == 4 and list(rfm.index) == [1]


def test_the_input_is_not_modified() -> None:
    log = _synthetic_log()
    before = log.copy(deep=True)
    cf.calibration_holdout(log, calibration_end="2022-04-01", observation_end="2022-07-01")
    pd.testing.assert_frame_equal(log, before)


# --- invariants ---------------------------------------------------------------------------------------------


@st.composite
def transaction_logs(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 40))
    ids = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    days = draw(st.lists(st.integers(0, 60), min_size=n, max_size=n))
    seconds = draw(st.lists(st.integers(0, 86_399), min_size=n, max_size=n))
    cents = draw(st.lists(st.integers(1, 100_000), min_size=n, max_size=n))
    return pd.DataFrame(
        {
            "customer_id": ids,
            "date": pd.Timestamp("2020-02-20")
            + pd.to_timedelta(days, unit="D")
            + pd.to_timedelta(seconds, unit="s"),
            "amount": np.asarray(cents) / 100,
        }
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=transaction_logs(), cut=st.integers(0, 70), extra=st.integers(0, 30))
def test_invariants(log: pd.DataFrame, cut: int, extra: int) -> None:
    cal_end = pd.Timestamp("2020-02-20") + pd.Timedelta(days=cut)
    obs_end = cal_end + pd.Timedelta(days=extra)
    firsts = log.groupby("customer_id")["date"].min().dt.normalize()
    if not (firsts <= cal_end).any():
        return  # no customer to summarise (tested elsewhere)
    day = log["date"].dt.normalize()
    if not ((day > cal_end) & (day <= obs_end)).any():
        with pytest.raises(DataValidationError, match="holds no transactions"):
            cf.calibration_holdout(log, calibration_end=cal_end, observation_end=obs_end)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", "observation_end=.* after the last transaction", DataQualityWarning)
        cal = cf.calibration_holdout(log, calibration_end=cal_end, observation_end=obs_end)
    assert (cal["recency"] >= 0).all() and (cal["recency"] <= cal["T"]).all()
    assert str(cal["frequency"].dtype) == "int64" and (cal["frequency"] >= 0).all()
    assert ((cal["monetary_value"] > 0) == (cal["frequency"] > 0)).all()  # amounts are positive
    assert ((cal["holdout_monetary_value"] > 0) == (cal["holdout_frequency"] > 0)).all()
    assert (cal["holdout_spend"] >= 0).all()
    assert np.isfinite(cal.to_numpy(dtype=float)).all()
    # Every customer who bought by the calibration end is in the table, and only they.
    assert set(cal.index) == set(firsts.index[firsts <= cal_end])
    new = (firsts > cal_end) & (firsts <= obs_end)
    assert cal.attrs["excluded_new_in_holdout"] == int(new.sum())
    # frequency + 1 transaction days up to the calibration end, each customer.
    days = log.assign(day=day).query("day <= @cal_end").groupby("customer_id")["day"]
    assert (cal["frequency"] + 1).equals(days.nunique().loc[cal.index].rename("frequency"))
    # The ledger: every row is used, after the observation end, or a new customer's.
    ledger = cal.attrs["ledger"]
    kept = log[(day <= obs_end) & log["customer_id"].isin(cal.index)]
    rows = {e["key"]: e["rows"] for e in ledger["entries"]}
    assert ledger["rows_read"] == len(log) and ledger["rows_used"] == len(kept) and ledger["identity_holds"]
    assert rows.get("after_observation_end", 0) == int((day > obs_end).sum())
    assert rows.get("new_in_holdout", 0) == int(log["customer_id"].isin(new.index[new]).sum() - (
        (day > obs_end) & log["customer_id"].isin(new.index[new])).sum())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=transaction_logs())
def test_equal_to_lifetimes_on_random_logs(log: pd.DataFrame) -> None:
    theirs = summary_data_from_transaction_data(log, "customer_id", "date", "amount", freq="D")
    ours = cf.rfm_summary(log)
    theirs = theirs.loc[ours.index]
    assert len(ours) == len(theirs)
    assert (ours["frequency"] == theirs["frequency"]).all()
    cols = ["recency", "T", "monetary_value"]
    np.testing.assert_allclose(ours[cols], theirs[cols], rtol=0, atol=1e-9)


def test_the_sql_definitions_render_for_spark_without_duckdb_constructs() -> None:
    from clvforecast import rfm

    for name in ("DAYS_SQL", "RFM_SQL", "FENCE_SQL", "EXTREME_SQL", "COHORT_SQL", "PERIODS_SQL", "DISCRETE_SQL"):
        duck = rfm.render_sql(getattr(rfm, name), "duckdb", period="W", cap=True)
        spark = rfm.render_sql(getattr(rfm, name), "spark", period="W", cap=True)
        for text in (duck, spark):
            assert "DAYS_BETWEEN" not in text and "QUARTILES" not in text and "PERIOD(" not in text, name
            assert "CAPPED" not in text and "Q1(" not in text, name
        assert "$" not in spark and "date_diff" not in spark and "quantile_cont" not in spark, name
        # the same parameters, marked per engine
        assert sorted(set(re.findall(r"\$(\w+)", duck))) == sorted(set(re.findall(r":(\w+)", spark))), name
    assert "datediff(last_day, first_day)" in rfm.render_sql(rfm.RFM_SQL, "spark")
    fence = rfm.render_sql(rfm.FENCE_SQL, "spark")
    assert "percentile(mean_day_value, array(0.25, 0.75))" in fence and "q[0]" in fence  # 0-based
    assert "q[1]" in rfm.render_sql(rfm.FENCE_SQL, "duckdb") and "q[0]" not in rfm.render_sql(rfm.FENCE_SQL)
