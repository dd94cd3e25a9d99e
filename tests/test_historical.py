"""Historical CLV formula, lifespan estimate, BG/NBD implied lifetime, per-customer historical forecasts.

Every expected number is the published worked example (shared/reference/published-numbers.md), derived by hand
in a comment, or computed in the test by independent code (plain pandas / numpy / simulation).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import clvforecast as cf
from clvforecast.exceptions import DataQualityWarning, DataValidationError

CAL_END = "1997-09-30"
# The published BG/NBD estimates on CDNOW, full precision (weekly units).
BGNBD = {"r": 0.2425945, "alpha": 4.4136019, "a": 0.7929199, "b": 2.4258881}

# The worked example: five customers, one week, amounts in millions.
# A: 2 purchases worth 2 in total; B: 3 worth 4; C: 4 worth 1; D: 3 worth 1.5; E: 1 worth 2.
EXAMPLE = {
    "A": [1.0, 1.0],
    "B": [1.0, 1.5, 1.5],
    "C": [0.25, 0.25, 0.25, 0.25],
    "D": [0.5, 0.5, 0.5],
    "E": [2.0],
}


def example_log(same_day: bool = False) -> pd.DataFrame:
    """The example's 13 purchases within the week 2024-01-01..07: each customer's purchases on distinct days
    (day resolution keeps 13 purchases), or all of a customer's purchases on Monday when ``same_day``."""
    rows = [
        (cid, pd.Timestamp("2024-01-01") + pd.Timedelta(days=0 if same_day else i), amt)
        for cid, amounts in EXAMPLE.items()
        for i, amt in enumerate(amounts)
    ]
    return pd.DataFrame(rows, columns=["customer_id", "date", "amount"])


def assert_worked_example(res: cf.HistoricalCLV) -> None:
    assert round(res.apv, 4) == 0.8077  # 10.5 / 13
    assert round(res.apfr, 1) == 2.6  # 13 / 5
    assert round(res.customer_value, 1) == 2.1
    assert round(res.annual_value, 1) == 109.2  # 2.1 x 52
    assert round(res.lifespan_years, 1) == 2.0
    assert round(res.clv, 1) == 218.4  # 109.2 x 2


# ---------------------------------------------------------------------------------------------------------
# historical_clv: the worked example
# ---------------------------------------------------------------------------------------------------------
def test_worked_example_reproduces_published_numbers():
    tx = example_log()
    assert len(tx) == 13 and tx["amount"].sum() == pytest.approx(10.5)
    res = cf.historical_clv(tx, lifespan_years=2, periods_per_year=52, acquisition_cost=50)
    assert_worked_example(res)
    assert round(res.net_clv, 1) == 168.4  # 218.4 - 50
    row = res.table.loc["all"]
    assert (row["customers"], row["purchases"]) == (5, 13)
    assert row["revenue"] == pytest.approx(10.5)
    assert list(res.table.index) == ["all"]
    assert res.summary["period_days"] == 4 and res.summary["purchase_unit"] == "day"
    text = repr(res)
    assert "APV 0.8077" in text and "CLV 218.4" in text and "net CLV 168.4" in text
    assert "<table" in res._repr_html_()


def test_worked_example_without_acquisition_cost_net_equals_clv():
    res = cf.historical_clv(example_log(), lifespan_years=2, periods_per_year=52)
    assert res.net_clv == res.clv
    assert round(res.net_clv, 1) == 218.4


def test_worked_example_from_csv_and_parquet(tmp_path):
    tx = example_log()
    csv, pq = tmp_path / "week.csv", tmp_path / "week.parquet"
    tx.assign(date=tx["date"].dt.strftime("%Y-%m-%d")).to_csv(csv, index=False)
    tx.to_parquet(pq)
    for source in (csv, pq):
        res = cf.historical_clv(source, lifespan_years=2, periods_per_year=52, acquisition_cost=50)
        assert_worked_example(res)
        assert round(res.net_clv, 1) == 168.4


def test_purchase_unit_row_counts_rows_day_counts_days():
    same_day = example_log(same_day=True)
    # Counting rows, the example's numbers hold however the purchases fall within the week.
    assert_worked_example(
        cf.historical_clv(same_day, lifespan_years=2, periods_per_year=52, purchase_unit="row")
    )
    # Day resolution merges each customer's Monday purchases: 5 purchases, APV = 10.5 / 5 = 2.1, APFR = 1;
    # revenue per customer, CV = 2.1, and so the CLV, do not change.
    res = cf.historical_clv(same_day, lifespan_years=2, periods_per_year=52)
    assert res.table.loc["all", "purchases"] == 5
    assert res.apv == pytest.approx(2.1) and res.apfr == pytest.approx(1.0)
    assert res.customer_value == pytest.approx(2.1) and res.clv == pytest.approx(218.4)


def test_margin_scales_clv():
    # 30% margin: 218.4 x 0.3 = 65.52; net of 50: 15.52.
    res = cf.historical_clv(
        example_log(), lifespan_years=2, periods_per_year=52, margin=0.3, acquisition_cost=50
    )
    assert res.clv == pytest.approx(65.52)
    assert res.net_clv == pytest.approx(15.52)
    assert res.annual_value == pytest.approx(109.2)  # margin does not change revenue figures


def test_warns_when_transactions_span_more_than_one_period():
    tx = example_log()
    tx.loc[0, "date"] = pd.Timestamp("2024-03-01")  # now 61 days of data for a "week"
    with pytest.warns(DataQualityWarning, match=r"span 61 days.*periods_per_year=52"):
        cf.historical_clv(tx, lifespan_years=2, periods_per_year=52)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cf.historical_clv(tx, lifespan_years=2, periods_per_year=1)  # a year of data: no warning


# ---------------------------------------------------------------------------------------------------------
# historical_clv: segments
# ---------------------------------------------------------------------------------------------------------
# Segment x = {A, B}: 2 customers, 5 purchases, revenue 6: APV 1.2, APFR 2.5, CV 3, annual 156, CLV 312.
# Segment y = {C, D, E}: 3 customers, 8 purchases, revenue 4.5: APV 0.5625, APFR 8/3, CV 1.5, annual 78,
# CLV 156.
# Combined, weighted by customers: (2 x 312 + 3 x 156) / 5 = 218.4, the unsegmented CLV.
SEGMENTS = {"A": "x", "B": "x", "C": "y", "D": "y", "E": "y"}
HAND = {
    "x": dict(
        customers=2,
        purchases=5,
        revenue=6.0,
        apv=1.2,
        apfr=2.5,
        customer_value=3.0,
        annual_value=156.0,
        clv=312.0,
        net_clv=262.0,
    ),
    "y": dict(
        customers=3,
        purchases=8,
        revenue=4.5,
        apv=0.5625,
        apfr=8 / 3,
        customer_value=1.5,
        annual_value=78.0,
        clv=156.0,
        net_clv=106.0,
    ),
}


def check_segments(res: cf.HistoricalCLV) -> None:
    assert list(res.table.index) == ["x", "y", "all"]
    for seg, expected in HAND.items():
        for col, value in expected.items():
            assert res.table.loc[seg, col] == pytest.approx(value), (seg, col)
    t = res.table
    w = t.loc[["x", "y"], "customers"]
    for col in ("customer_value", "annual_value", "clv", "net_clv"):
        assert t.loc["all", col] == pytest.approx((w * t.loc[["x", "y"], col]).sum() / w.sum())
    assert res.clv == pytest.approx(218.4) and res.net_clv == pytest.approx(168.4)
    assert res.table.loc["all", "customers"] == 5 and res.summary["segments"] == ["x", "y"]


def test_segments_from_a_column():
    tx = example_log().assign(group=lambda d: d["customer_id"].map(SEGMENTS))
    check_segments(
        cf.historical_clv(tx, lifespan_years=2, periods_per_year=52, acquisition_cost=50, segment="group")
    )


@pytest.mark.parametrize("mapping", [SEGMENTS, pd.Series(SEGMENTS)], ids=["dict", "series"])
def test_segments_from_a_mapping(mapping):
    res = cf.historical_clv(
        example_log(), lifespan_years=2, periods_per_year=52, acquisition_cost=50, segment=mapping
    )
    check_segments(res)
    assert "x" in repr(res)  # the segment table is shown


def test_services_a_customer_counts_in_each_segment_they_bought_in():
    # Two services; customer 1 buys both. Service s: customer 1 (10 on day 1, 20 on day 2), customer 2 (30):
    # 2 customers, 3 purchases, 60 -> CV 30. Service t: customer 1 (40 on day 1): 1 customer, 1 purchase,
    # 40 -> CV 40. Combined: customers 3 (2 + 1), revenue 100, CV 100 / 3; lifespan 1, yearly data:
    # CLV 33.333.
    tx = pd.DataFrame(
        {
            "customer_id": [1, 1, 2, 1],
            "date": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-01", "2024-01-01"]),
            "amount": [10.0, 20.0, 30.0, 40.0],
            "service": ["s", "s", "s", "t"],
        }
    )
    res = cf.historical_clv(tx, lifespan_years=1, segment="service")
    assert res.table.loc["s", "customer_value"] == pytest.approx(30.0)
    assert res.table.loc["t", "customer_value"] == pytest.approx(40.0)
    assert res.table.loc["all", "customers"] == 3 and res.summary["distinct_customers"] == 2
    # Day resolution is per segment: customer 1's day-1 purchases of s and t are one purchase each.
    assert res.table.loc["all", "purchases"] == 4
    assert res.clv == pytest.approx(100 / 3)


# ---------------------------------------------------------------------------------------------------------
# historical_clv: bad input
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lifespan", [0, -1, math.nan, math.inf])
def test_lifespan_must_be_positive(lifespan):
    with pytest.raises(
        ValueError, match=r"lifespan_years must be a finite number greater than 0.*estimate_lifespan"
    ):
        cf.historical_clv(example_log(), lifespan_years=lifespan, periods_per_year=52)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"periods_per_year": 0}, "periods_per_year must be a finite number greater than 0"),
        ({"margin": -0.1}, "margin must be a finite number >= 0"),
        ({"acquisition_cost": -5}, "acquisition_cost must be a finite number >= 0"),
        ({"purchase_unit": "order"}, "purchase_unit must be 'day' or 'row'"),
    ],
)
def test_bad_settings_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cf.historical_clv(example_log(), **{"lifespan_years": 2, "periods_per_year": 52, **kwargs})


def test_lifespan_must_be_a_number():
    with pytest.raises(TypeError, match="lifespan_years must be a number"):
        cf.historical_clv(example_log(), lifespan_years="2")


def test_empty_transactions_raise():
    empty = example_log().iloc[:0]
    with pytest.raises(DataValidationError, match="empty"):
        cf.historical_clv(empty, lifespan_years=2)


def test_unknown_segment_column_raises(tmp_path):
    tx = example_log()
    with pytest.raises(
        DataValidationError, match=r"segment column 'region' not found.*'customer_id'.*mapping"
    ):
        cf.historical_clv(tx, lifespan_years=2, segment="region")
    path = tmp_path / "tx.csv"
    tx.to_csv(path, index=False)
    with pytest.raises(DataValidationError, match=r"segment column 'region' not found"):
        cf.historical_clv(path, lifespan_years=2, segment="region")


def test_mapping_missing_customers_raises():
    with pytest.raises(DataValidationError, match=r"no segment for 2 of 5 customers.*'D', 'E'.*add them"):
        cf.historical_clv(example_log(), lifespan_years=2, segment={"A": "x", "B": "x", "C": "y"})


def test_mapping_with_keys_of_the_wrong_type_says_so():
    tx = example_log().assign(
        customer_id=lambda d: d["customer_id"].map({"A": 1, "B": 2, "C": 3, "D": 4, "E": 5})
    )
    with pytest.raises(DataValidationError, match=r"same type as the customer ids, here int64"):
        cf.historical_clv(tx, lifespan_years=2, segment={"1": "x", "2": "x", "3": "y", "4": "y", "5": "y"})


def test_missing_segment_values_raise():
    tx = example_log().assign(group=lambda d: d["customer_id"].map(SEGMENTS))
    tx.loc[tx["customer_id"] == "E", "group"] = None
    with pytest.raises(
        DataValidationError, match=r"segment column 'group': 1 of 13 rows have no segment.*'E'"
    ):
        cf.historical_clv(tx, lifespan_years=2, segment="group")


def test_segment_named_all_is_refused():
    with pytest.raises(ValueError, match="named 'all'"):
        cf.historical_clv(example_log(), lifespan_years=2, segment={c: "all" for c in EXAMPLE})


def test_segment_of_wrong_type_raises():
    with pytest.raises(TypeError, match="segment must be None, the name of a column"):
        cf.historical_clv(example_log(), lifespan_years=2, segment=3)


def test_inputs_are_not_mutated():
    tx = example_log().assign(group=lambda d: d["customer_id"].map(SEGMENTS))
    before = tx.copy()
    mapping = dict(SEGMENTS)
    cf.historical_clv(tx, lifespan_years=2, periods_per_year=52, segment="group")
    cf.historical_clv(tx, lifespan_years=2, periods_per_year=52, segment=mapping)
    pd.testing.assert_frame_equal(tx, before)
    assert mapping == SEGMENTS


# ---------------------------------------------------------------------------------------------------------
# historical_clv: invariants (hypothesis)
# ---------------------------------------------------------------------------------------------------------
purchases = st.lists(
    st.tuples(st.integers(0, 7), st.integers(0, 6), st.floats(0.01, 1000, allow_nan=False)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=purchases,
    scale=st.floats(0.1, 10),
    lifespan=st.floats(0.1, 20),
    margin=st.floats(0, 1),
    groups=st.lists(st.sampled_from("pq"), min_size=8, max_size=8),
)
def test_formula_invariants(rows, scale, lifespan, margin, groups):
    tx = pd.DataFrame(rows, columns=["customer_id", "day", "amount"])
    tx["date"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(tx["day"], unit="D")
    tx = tx[["customer_id", "date", "amount"]]
    base = cf.historical_clv(tx, lifespan_years=lifespan, periods_per_year=52, margin=margin)
    # CLV = revenue per customer x 52 x margin x lifespan, whatever counts as a purchase.
    per_customer = tx["amount"].sum() / tx["customer_id"].nunique()
    assert base.clv == pytest.approx(per_customer * 52 * margin * lifespan, rel=1e-9, abs=1e-9)
    # Linear in the amounts; unchanged by the order of the rows.
    scaled = cf.historical_clv(
        tx.assign(amount=tx["amount"] * scale), lifespan_years=lifespan, periods_per_year=52, margin=margin
    )
    assert scaled.clv == pytest.approx(base.clv * scale, rel=1e-9, abs=1e-9)
    shuffled = cf.historical_clv(
        tx.iloc[np.arange(len(tx))[::-1]], lifespan_years=lifespan, periods_per_year=52, margin=margin
    )
    assert shuffled.clv == pytest.approx(base.clv, rel=1e-12, abs=1e-12)
    # Customer groups: the combined row is the customer-weighted mean of the segments, and the unsegmented
    # value.
    seg = cf.historical_clv(
        tx, lifespan_years=lifespan, periods_per_year=52, margin=margin, segment=dict(enumerate(groups))
    )
    parts = seg.table.drop(index="all")
    weighted = (parts["customers"] * parts["clv"]).sum() / parts["customers"].sum()
    assert seg.clv == pytest.approx(weighted, rel=1e-9, abs=1e-9)
    assert seg.clv == pytest.approx(base.clv, rel=1e-9, abs=1e-9)


# ---------------------------------------------------------------------------------------------------------
# estimate_lifespan
# ---------------------------------------------------------------------------------------------------------
def windows_log() -> pd.DataFrame:
    """Three 10-day windows ending 2024-01-30: W0 = Jan 1-10, W1 = Jan 11-20, W2 = Jan 21-30.

    Active: W0 {1, 2, 3, 4}, W1 {1, 2, 5}, W2 {1, 5, 6}. A purchase on 2023-12-31 (before W0) is left out.
    """
    rows = [
        (9, "2023-12-31"),
        (1, "2024-01-01"),
        (1, "2024-01-05"),
        (2, "2024-01-10"),
        (3, "2024-01-03"),
        (4, "2024-01-09"),
        (1, "2024-01-11"),
        (2, "2024-01-20"),
        (5, "2024-01-15"),
        (1, "2024-01-30"),
        (5, "2024-01-21"),
        (6, "2024-01-25"),
    ]
    return pd.DataFrame(rows, columns=["customer_id", "date"]).assign(
        date=lambda d: pd.to_datetime(d["date"])
    )


def test_estimate_lifespan_hand_computed():
    # W0 -> W1: 4 active, 2 retained (1, 2), churn 1/2; W1 -> W2: 3 active, 2 retained (1, 5), churn 1/3.
    # Pooled churn = (2 + 1) / (4 + 3) = 3/7 per 10 days; lifespan = (10 / 365.25) / (3/7) years.
    est = cf.estimate_lifespan(windows_log(), window="10D")
    assert est.churn == pytest.approx(3 / 7)
    assert est.lifespan_years == pytest.approx(70 / (3 * 365.25))
    assert est.annual_churn == pytest.approx(1 - (4 / 7) ** 36.525)
    assert est.window_days == 10 and est.summary["n_windows"] == 3
    assert est.summary["start"] == "2024-01-01" and est.summary["end"] == "2024-01-30"
    t = est.table
    assert list(t["active"]) == [4, 3] and list(t["retained"]) == [2, 2] and list(t["churned"]) == [2, 1]
    assert list(t["churn"]) == pytest.approx([1 / 2, 1 / 3])
    assert [str(d) for d in t["start"]] == ["2024-01-01", "2024-01-11"]
    assert [str(d) for d in t["end"]] == ["2024-01-10", "2024-01-20"]
    assert "lifespan_years" in repr(est) and "<table" in est._repr_html_()


def test_estimate_lifespan_end_and_numeric_window():
    # end = Jan 20, window 10 days: W0 = Jan 1-10, W1 = Jan 11-20: churn 2/4, lifespan = 20 days in years.
    est = cf.estimate_lifespan(windows_log(), window=10, end="2024-01-20")
    assert est.churn == pytest.approx(0.5)
    assert est.lifespan_years == pytest.approx(20 / 365.25)


def test_annual_window_is_one_over_annual_churn():
    # Two years; 10 customers active in year 1, 4 of them again in year 2: annual churn 0.6, lifespan 1/0.6.
    d1, d2 = pd.Timestamp("2022-01-01"), pd.Timestamp("2023-03-01")
    tx = pd.DataFrame({"customer_id": list(range(10)) + [0, 1, 2, 3, 10], "date": [d1] * 10 + [d2] * 5})
    est = cf.estimate_lifespan(tx, window="1Y", end="2023-12-31")
    assert est.window_days == 365
    assert est.churn == pytest.approx(0.6)
    assert est.lifespan_years == pytest.approx((365 / 365.25) / 0.6)
    auto = cf.estimate_lifespan(tx, end="2023-12-31")  # the default picks the one-year window
    assert auto.window == "1Y" and auto.churn == pytest.approx(0.6)


def test_estimate_lifespan_bad_input():
    with pytest.raises(ValueError, match=r"fewer than two '1Y' windows.*shorter window"):
        cf.estimate_lifespan(windows_log(), window="1Y")
    with pytest.raises(ValueError, match="too short for two one-month windows"):
        cf.estimate_lifespan(windows_log())
    steady = pd.DataFrame(
        {"customer_id": [1, 1, 1], "date": pd.to_datetime(["2024-01-01", "2024-01-06", "2024-01-10"])}
    )
    with pytest.raises(ValueError, match="no churn was observed"):
        cf.estimate_lifespan(steady, window="5D")
    with pytest.raises(DataValidationError, match="empty"):
        cf.estimate_lifespan(windows_log().iloc[:0], window="10D")
    with pytest.raises(ValueError, match="no transaction on or before"):
        cf.estimate_lifespan(windows_log(), window="10D", end="2020-01-01")


# ---------------------------------------------------------------------------------------------------------
# implied_lifetime (BG/NBD)
# ---------------------------------------------------------------------------------------------------------
def simulate_bgnbd_lifetimes(params: dict, n: int, rng: np.random.Generator) -> np.ndarray:
    """Lifetimes simulated from the BG/NBD story itself: lambda ~ Gamma(r, alpha), p ~ Beta(a, b); the
    customer makes J ~ Geometric(p) (J >= 1) repeat purchases, exponential(lambda) apart, and drops out after
    the J-th."""
    lam = rng.gamma(params["r"], 1 / params["alpha"], n)
    p = rng.beta(params["a"], params["b"], n)
    j = rng.geometric(p)
    return rng.gamma(j, 1 / lam)


def test_implied_lifetime_matches_simulation_on_cdnow_parameters(rng):
    life = cf.implied_lifetime(BGNBD, time_unit="W", horizon="10Y")
    tau_weeks = simulate_bgnbd_lifetimes(BGNBD, 400_000, rng)
    tau_years = tau_weeks * 7 / 365.25
    # The median's standard error here is under 1%; the truncated mean's under 0.3%.
    assert life.median_years == pytest.approx(np.median(tau_years), rel=0.03)
    assert life.truncated_mean_years == pytest.approx(np.minimum(tau_years, 10).mean(), rel=0.01)
    assert life.alive_at_horizon == pytest.approx((tau_years > 10).mean(), abs=0.005)
    assert math.isinf(life.mean_years)  # a = 0.79 <= 1 and r = 0.24 <= 1: E[lifetime] is infinite
    assert life.survival([0.0])[0] == pytest.approx(1.0)
    assert life.survival(life.median_years) == pytest.approx(0.5)
    assert "median" in repr(life) and "mean infinite" in repr(life)


def test_implied_lifetime_finite_mean_matches_closed_form_and_simulation(rng):
    # r, a > 1: E[lifetime] = E[1/lambda] E[1/p] = alpha / (r - 1) x (a + b - 1) / (a - 1) = 2 x 2.5 = 5 days.
    params = {"r": 3.0, "alpha": 4.0, "a": 3.0, "b": 3.0}
    life = cf.implied_lifetime(params, time_unit="D", horizon="100000D")
    assert life.mean_years == pytest.approx(5 / 365.25)
    assert life.truncated_mean_years == pytest.approx(5 / 365.25, rel=1e-4)
    tau = simulate_bgnbd_lifetimes(params, 200_000, rng)
    assert life.median_years * 365.25 == pytest.approx(np.median(tau), rel=0.02)


def test_implied_lifetime_bad_input():
    with pytest.raises(ValueError, match="missing 'b'"):
        cf.implied_lifetime({"r": 1, "alpha": 1, "a": 1}, time_unit="W")
    with pytest.raises(ValueError, match="parameter alpha must be a positive"):
        cf.implied_lifetime({**BGNBD, "alpha": -1}, time_unit="W")
    with pytest.raises(ValueError, match="horizon must be positive"):
        cf.implied_lifetime(BGNBD, time_unit="W", horizon=0)


@pytest.fixture(scope="module")
def bgnbd(cdnow_cal):
    return cf.BetaGeo().fit(cdnow_cal)


def test_lifespan_estimate_vs_bgnbd_lifetime_on_cdnow(cdnow_tx, cdnow_cal, bgnbd):
    """The windowed estimate and the BG/NBD lifetime measure different things (see estimate_lifespan)."""
    # Calibration data only (1997-01-01..09-30, 273 days): the default window is 3 months (91 days), 3 of
    # them.
    est = cf.estimate_lifespan(cdnow_tx, end=CAL_END)
    assert est.window == "3M" and est.window_days == 91 and est.summary["n_windows"] == 3
    # Independent computation: active sets per 91-day window counted back from the calibration end.
    tx = cdnow_tx[cdnow_tx["date"] <= CAL_END]
    start = pd.Timestamp(CAL_END) - pd.Timedelta(days=3 * 91 - 1)
    active = [
        set(
            tx.loc[
                (tx["date"] >= start + pd.Timedelta(days=91 * k))
                & (tx["date"] < start + pd.Timedelta(days=91 * (k + 1))),
                "customer_id",
            ]
        )
        for k in range(3)
    ]
    lost = [len(active[k] - active[k + 1]) for k in range(2)]
    churn = sum(lost) / (len(active[0]) + len(active[1]))
    assert len(active[0]) == 2357  # every CDNOW customer made their first purchase in Q1 1997
    assert est.churn == pytest.approx(churn)
    assert est.lifespan_years == pytest.approx(91 / 365.25 / churn)
    # The model fitted here implies the same lifetime as the published parameters...
    life = cf.implied_lifetime(bgnbd, horizon="10Y")
    published = cf.implied_lifetime(BGNBD, time_unit="W", horizon="10Y")
    assert life.params["time_unit"] == "W"
    assert life.median_years == pytest.approx(published.median_years, rel=1e-3)
    assert life.truncated_mean_years == pytest.approx(published.truncated_mean_years, rel=1e-3)
    # ... a median of about 11 years (half the customers alive after 567 weeks), against a windowed
    # lifespan under a year: CDNOW customers buy rarely, so a quiet quarter counts as churn in the window
    # estimate, while the model lets customers drop out only right after a repeat purchase.
    assert 10 < life.median_years < 12
    assert est.lifespan_years < 1 < life.truncated_mean_years < life.median_years


# ---------------------------------------------------------------------------------------------------------
# historical_forecast
# ---------------------------------------------------------------------------------------------------------
def forecast_log() -> pd.DataFrame:
    rows = [
        (1, "2024-01-01", 10.0),
        (1, "2024-01-01", 5.0),
        (1, "2024-01-05", 20.0),  # 2 purchase days, 35
        (2, "2024-01-03", 30.0),  # one purchase
        (4, "2024-01-10", 15.0),  # first purchase on the calibration end: T = 0
        (3, "2024-01-12", 99.0),  # after the calibration end: not a customer yet
        (1, "2024-01-15", 50.0),  # after the calibration end: ignored
    ]
    return pd.DataFrame(rows, columns=["customer_id", "date", "amount"]).assign(
        date=lambda d: pd.to_datetime(d["date"])
    )


def test_historical_forecast_hand_computed():
    # Calibration 2024-01-01..10: 10 days. Customers 1, 2, 4: 4 purchase days, revenue 80.
    # avg formula per customer per day: 4 / 3 / 10 purchases, 80 / 3 / 10 spend; over 20 days: 8/3 and 160/3.
    # run rate: customer 1 frequency 1, T = 9 days, repeat spend 20: 20/9 purchases and 400/9 spend over
    # 20 days;
    # customer 2 frequency 0; customer 4 T = 0: both 0.
    out = cf.historical_forecast(forecast_log(), calibration_end="2024-01-10", horizon="20D", time_unit="D")
    assert list(out.index) == [1, 2, 4] and out.index.name == "customer_id"
    assert list(out.columns) == [
        "avg_formula_purchases",
        "avg_formula_spend",
        "run_rate_purchases",
        "run_rate_spend",
    ]
    assert out["avg_formula_purchases"].tolist() == pytest.approx([8 / 3] * 3)
    assert out["avg_formula_spend"].tolist() == pytest.approx([160 / 3] * 3)
    assert out["run_rate_purchases"].tolist() == pytest.approx([20 / 9, 0, 0])
    assert out["run_rate_spend"].tolist() == pytest.approx([400 / 9, 0, 0])
    assert out.attrs["calibration_length"] == 10 and out.attrs["horizon"] == 20
    assert out.attrs["calibration_start"] == "2024-01-01" and out.attrs["time_unit"] == "D"
    assert np.isfinite(out.to_numpy()).all()
    # Units only scale: the same forecast in weeks ("20D" = 20/7 weeks, rates per week).
    weekly = cf.historical_forecast(
        forecast_log(), calibration_end="2024-01-10", horizon="20D", time_unit="W"
    )
    pd.testing.assert_frame_equal(weekly, out, check_exact=False, rtol=1e-12)


def test_historical_forecast_by_segment():
    # Segment g = {1, 2}: 3 purchase days, 65 -> per customer per day 0.15 and 3.25;
    # h = {4}: 1 day, 15 -> 0.1 and 1.5.
    out = cf.historical_forecast(
        forecast_log(),
        calibration_end="2024-01-10",
        horizon=10,
        time_unit="D",
        segment={1: "g", 2: "g", 3: "h", 4: "h"},
    )
    assert out["avg_formula_purchases"].tolist() == pytest.approx([1.5, 1.5, 1.0])
    assert out["avg_formula_spend"].tolist() == pytest.approx([32.5, 32.5, 15.0])
    tx = forecast_log().assign(seg=["g", "k", "g", "g", "h", "h", "g"])
    with pytest.raises(
        DataValidationError, match=r"1 customers have purchases in more than one segment, e\.g\. 1"
    ):
        cf.historical_forecast(tx, calibration_end="2024-01-10", horizon=10, time_unit="D", segment="seg")


def test_historical_forecast_bad_input():
    with pytest.raises(ValueError, match="no purchase on or before calibration_end=2023-01-01"):
        cf.historical_forecast(forecast_log(), calibration_end="2023-01-01", horizon="39W")
    with pytest.raises(ValueError, match="horizon 'soon' is not understood"):
        cf.historical_forecast(forecast_log(), calibration_end="2024-01-10", horizon="soon")
    with pytest.raises(ValueError, match="time_unit must be one of"):
        cf.historical_forecast(forecast_log(), calibration_end="2024-01-10", horizon=1, time_unit="fortnight")


def test_historical_forecast_cdnow(cdnow_tx, cdnow_cal, published_summary):
    out = cf.historical_forecast(cdnow_tx, calibration_end=CAL_END, horizon="39W")
    assert len(out) == 2357 and out.index.equals(cdnow_cal.index)
    # Calibration 1997-01-01..09-30 is 273 days = 39 weeks, so over a 39-week horizon the avg formula gives
    # each customer the calibration's purchases and revenue per customer: 2,357 first + 2,457 repeat
    # transactions (published) = 4,814 purchase days.
    assert out.attrs["calibration_length"] == pytest.approx(39.0)
    assert out["avg_formula_purchases"].sum() == pytest.approx(2357 + 2457)
    cal = cdnow_tx[cdnow_tx["date"] <= CAL_END]
    assert out["avg_formula_spend"].sum() == pytest.approx(cal["amount"].sum())
    # Run rate from Fader-Hardie's published summary (x, T, zbar; T rounded to 2 decimals, zbar to cents).
    ps = published_summary.loc[out.index]
    rate = np.where(ps["T"] > 0, ps["x"] / ps["T"], 0.0)
    assert out["run_rate_purchases"].to_numpy() == pytest.approx(rate * 39, rel=1e-3)
    assert out["run_rate_spend"].sum() == pytest.approx((rate * ps["zbar"]).sum() * 39, rel=1e-3)


def test_amount_column_is_required_by_the_formula():
    with pytest.raises(ValueError, match=r"historical_clv needs what each purchase was worth.*amount=None") as err:
        cf.historical_clv(example_log(), lifespan_years=2, amount=None)
    assert "estimate_lifespan" in str(err.value)  # what works without amounts is named


def test_historical_forecast_of_frequency_only_data_has_purchases_only():
    full = cf.historical_forecast(forecast_log(), calibration_end="2024-01-10", horizon=10)
    log = forecast_log().drop(columns="amount")
    counts = cf.historical_forecast(log, calibration_end="2024-01-10", horizon=10, amount=None)
    assert list(counts.columns) == ["avg_formula_purchases", "run_rate_purchases"]
    pd.testing.assert_frame_equal(counts, full[list(counts.columns)], check_exact=True)
