"""compare_clv: a hand-computed comparison, bad input, CDNOW checked against an independent computation."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import clvforecast as cf
from clvforecast.exceptions import DataValidationError

CAL_END, HORIZON = "1997-09-30", "39W"

# Ten customers (ids 1..10), given out of order to check alignment and sorting.
IDS = list(range(1, 11))
PRED = [50, 0, 10, 30, 5, 5, 80, 0, 20, 1]  # total 201
RUN = [25, 0, 30, 10, 0, 7, 60, 0, 0, 2]  # total 134
# RFM inputs: time since last purchase T - recency = id (customer 1 most recent), T = 10.
FREQ = [0, 0, 0, 0, 0, 0, 1, 1, 3, 5]
MONEY = [0, 0, 0, 0, 0, 0, 10, 20, 20, 30]


def hand_inputs() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    idx = pd.Index(IDS, name="customer_id")
    pred = (
        pd.DataFrame({"expected_purchases": 1.0, "clv": np.array(PRED, float)}, index=idx).iloc[::-1].copy()
    )
    hist = pd.DataFrame(
        {
            "avg_formula_purchases": 1.0,
            "avg_formula_spend": 20.1,
            "run_rate_purchases": 0.5,
            "run_rate_spend": np.array(RUN, float),
        },
        index=idx,
    )
    rfm = pd.DataFrame(
        {"frequency": FREQ, "recency": [10.0 - i for i in IDS], "T": 10.0, "monetary_value": MONEY}, index=idx
    )
    return pred, hist, rfm


def test_hand_computed_comparison():
    pred, hist, rfm = hand_inputs()
    res = cf.compare_clv(pred, hist, rfm=rfm)
    t = res.table
    assert list(t.index) == IDS and t.index.name == "customer_id"
    assert t["clv_predictive"].tolist() == PRED and t["clv_run_rate"].tolist() == RUN
    assert t["clv_avg_formula"].tolist() == [20.1] * 10
    # Ranks, 1 = most valuable, ties share the best rank: predictive order 7, 1, 4, 9, 3, {5, 6}, 10, {2, 8}.
    assert t["rank_predictive"].tolist() == [2, 9, 5, 3, 6, 6, 1, 9, 4, 8]
    assert t["rank_run_rate"].tolist() == [3, 7, 2, 4, 7, 5, 1, 7, 7, 6]
    # Quartile tiers cut by position (ties by id) at ceil(2.5) = 3, 5, ceil(7.5) = 8:
    # Q1 {7, 1, 4}, Q2 {9, 3}, Q3 {5, 6, 10}, Q4 {2, 8}.
    assert t["tier"].tolist() == ["Q1", "Q4", "Q2", "Q1", "Q3", "Q3", "Q1", "Q4", "Q2", "Q3"]

    v = res.summary["variants"]
    assert list(v.index) == ["predictive", "avg_formula", "run_rate"]
    assert v["total"].tolist() == pytest.approx([201, 201, 134])
    assert v["mean"].tolist() == pytest.approx([20.1, 20.1, 13.4])
    # Top 20% = 2 customers: predictive {7, 1} hold 130 / 201; run rate {7, 3} hold 90 / 134; the constant
    # average formula, any 2 of 10: 0.2.
    assert v["top20_share"].tolist() == pytest.approx([130 / 201, 0.2, 90 / 134])
    # Top 10% = {7} for both; top 20%: {7, 1} vs {7, 3} -> 1/2.
    assert v.loc["run_rate", "top10_overlap"] == 1.0 and v.loc["run_rate", "top20_overlap"] == 0.5
    assert v.loc["predictive", ["spearman", "top10_overlap", "top20_overlap"]].tolist() == [1.0, 1.0, 1.0]
    assert v.loc["run_rate", "spearman"] == pytest.approx(stats.spearmanr(PRED, RUN).statistic)
    # The plain average formula does not rank customers: rank statistics are undefined.
    assert v.loc["avg_formula", ["spearman", "top10_overlap", "top20_overlap"]].isna().all()

    tiers = res.summary["tiers"]
    assert list(tiers.index) == ["Q1", "Q2", "Q3", "Q4"]
    assert tiers["customers"].tolist() == [3, 2, 3, 2]
    assert tiers["total_predictive"].tolist() == pytest.approx([160, 30, 11, 0])
    assert tiers["share_predictive"].tolist() == pytest.approx([160 / 201, 30 / 201, 11 / 201, 0])
    assert tiers["total_run_rate"].tolist() == pytest.approx([95, 30, 9, 0])
    assert tiers["share_avg_formula"].tolist() == pytest.approx([0.3, 0.2, 0.3, 0.2])
    assert tiers["min_clv"].tolist() == [30, 10, 1, 0] and tiers["max_clv"].tolist() == [80, 20, 5, 0]

    # RFM: score = 1 + floor(5 (rank_min - 1) / 10), ties sharing the lowest rank of their group.
    # R on -(T - recency) = -id: ids 10, 9 -> 1; 8, 7 -> 2; ...; 2, 1 -> 5.
    # F: six zeros rank 1 -> 1; the two 1s rank 7 -> 4; 3 rank 9 -> 5; 5 rank 10 -> 5.
    # M: six zeros -> 1; 10 rank 7 -> 4; the two 20s rank 8 -> 4; 30 rank 10 -> 5.
    assert t["R"].tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert t["F"].tolist() == [1, 1, 1, 1, 1, 1, 4, 4, 5, 5]
    assert t["M"].tolist() == [1, 1, 1, 1, 1, 1, 4, 4, 4, 5]
    assert t.loc[7, "rfm_cell"] == "244" and t.loc[7, "rfm_score"] == 10
    r = res.summary["rfm"]
    assert r["F_customers"].tolist() == [6, 0, 0, 2, 2]
    assert r.loc[1, "F_mean_clv"] == pytest.approx((50 + 0 + 10 + 30 + 5 + 5) / 6)
    assert math.isnan(r.loc[2, "F_mean_clv"])  # empty score
    assert r.loc[5, "R_mean_clv"] == pytest.approx((50 + 0) / 2)

    assert "CLVComparison(10 customers" in repr(res) and "<table" in res._repr_html_()
    assert res.variants == ["predictive", "avg_formula", "run_rate"]


def test_top_mid_low_tiers_and_margin():
    pred, hist, _ = hand_inputs()
    res = cf.compare_clv(pred, hist, tiers="top/mid/low", margin=0.5)
    # Cut at ceil(0.2 x 10) = 2 and 5: top {7, 1}, mid {4, 9, 3}, low the rest.
    assert res.summary["tiers"]["customers"].tolist() == [2, 3, 5]
    assert res.table.loc[[7, 1], "tier"].tolist() == ["top", "top"]
    assert res.table.loc[4, "tier"] == "mid"
    # The margin multiplies the historical values only.
    assert res.summary["variants"].loc["run_rate", "total"] == pytest.approx(67)
    assert res.summary["variants"].loc["predictive", "total"] == pytest.approx(201)
    assert res.summary["rfm"] is None and "R" not in res.table.columns


def test_series_inputs_and_plain_numeric_columns():
    pred, hist, _ = hand_inputs()
    res = cf.compare_clv(pred["clv"], hist["run_rate_spend"].rename("rr"))
    assert list(res.summary["variants"].index) == ["predictive", "rr"]
    res2 = cf.compare_clv(pred["clv"], pd.DataFrame({"a": hist["run_rate_spend"], "b": 1.0}))
    assert list(res2.summary["variants"].index) == ["predictive", "a", "b"]


def test_inputs_are_not_mutated():
    pred, hist, rfm = hand_inputs()
    copies = [x.copy() for x in (pred, hist, rfm)]
    cf.compare_clv(pred, hist, rfm=rfm)
    for before, after in zip(copies, (pred, hist, rfm), strict=True):
        pd.testing.assert_frame_equal(before, after)


def test_bad_input_raises():
    pred, hist, rfm = hand_inputs()
    with pytest.raises(DataValidationError, match=r"1 only in predictive \(e\.g\. 10\).*same calibration"):
        cf.compare_clv(pred, hist.drop(index=10))
    with pytest.raises(
        DataValidationError, match=r"1 of 10 customers have missing or infinite values, e\.g\. 3"
    ):
        cf.compare_clv(pred.assign(clv=lambda d: d["clv"].where(d.index != 3)), hist)
    with pytest.raises(DataValidationError, match="predictive has no 'clv' column"):
        cf.compare_clv(pred.drop(columns="clv"), hist)
    with pytest.raises(DataValidationError, match=r"RFM table lacks 1 of the 10 customers, e\.g\. 5"):
        cf.compare_clv(pred, hist, rfm=rfm.drop(index=5))
    with pytest.raises(DataValidationError, match="lacks column"):
        cf.compare_clv(pred, hist, rfm=rfm.drop(columns="monetary_value"))
    with pytest.raises(ValueError, match="tiers must be one of"):
        cf.compare_clv(pred, hist, tiers="deciles")
    with pytest.raises(ValueError, match="margin must be a finite number >= 0"):
        cf.compare_clv(pred, hist, margin=-1)
    with pytest.raises(TypeError, match="must be a pandas Series or DataFrame"):
        cf.compare_clv([1, 2], hist)
    with pytest.raises(DataValidationError, match="appear more than once"):
        cf.compare_clv(pd.concat([pred, pred.iloc[:1]]), hist)


# ---------------------------------------------------------------------------------------------------------
# CDNOW: calibration 39 weeks, horizon 39 weeks
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cdnow_comparison(cdnow_tx, cdnow_cal):
    bg = cf.BetaGeo().fit(cdnow_cal)
    gg = cf.GammaGamma().fit(cdnow_cal)
    pred = cf.predictive_clv(bg, gg, cdnow_cal, horizon=HORIZON)
    hist = cf.historical_forecast(cdnow_tx, calibration_end=CAL_END, horizon=HORIZON)
    return pred, hist, cf.compare_clv(pred, hist, rfm=cdnow_cal)


def top_set(values: pd.Series, share: float) -> set:
    """The first ceil(share n) customers by value, highest first, ties by id (sort_values is stable)."""
    k = math.ceil(share * len(values))
    return set(values.sort_index().sort_values(ascending=False, kind="stable").index[:k])


def quintile_scores(better: pd.Series) -> np.ndarray:
    """1 + floor(5 x (number of customers with a strictly smaller value) / n)."""
    below = np.searchsorted(np.sort(better.to_numpy()), better.to_numpy(), side="left")
    return 1 + (5 * below) // len(better)


def test_cdnow_comparison_has_every_customer(cdnow_comparison, cdnow_cal):
    pred, hist, res = cdnow_comparison
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same horizon, same margin: no warning
        cf.compare_clv(pred, hist)
    assert len(res.table) == 2357 and res.summary["n_customers"] == 2357
    assert res.table.index.equals(cdnow_cal.index.sort_values())
    assert np.isfinite(res.table.select_dtypes("number").to_numpy()).all()
    # 1,411 customers made no repeat purchase in the calibration period (published): all score F = 1, and the
    # other 946 share the scores above.
    assert (res.table["F"] == 1).sum() == 1411


def test_cdnow_summary_matches_an_independent_computation(cdnow_comparison, cdnow_cal):
    pred, hist, res = cdnow_comparison
    p = pred["clv"].sort_index()
    variants = {"predictive": p, "avg_formula": hist["avg_formula_spend"], "run_rate": hist["run_rate_spend"]}
    v = res.summary["variants"]
    n = 2357
    for name, x in variants.items():
        x = x.sort_index()
        assert v.loc[name, "total"] == pytest.approx(x.sum())
        top = np.sort(x.to_numpy())[::-1][: math.ceil(0.2 * n)]  # 472 customers
        assert v.loc[name, "top20_share"] == pytest.approx(top.sum() / x.sum())
    rr = variants["run_rate"].sort_index()
    assert v.loc["run_rate", "spearman"] == pytest.approx(stats.spearmanr(p, rr).statistic)
    for share, col in ((0.1, "top10_overlap"), (0.2, "top20_overlap")):
        ref = top_set(p, share)
        assert v.loc["run_rate", col] == pytest.approx(len(ref & top_set(rr, share)) / len(ref))
    assert v.loc["avg_formula", ["spearman", "top10_overlap", "top20_overlap"]].isna().all()
    # Quartile tiers: positions by predictive CLV (ties by id), cut at 590, 1179, 1768.
    order = p.sort_values(ascending=False, kind="stable").index
    bounds = [0, 590, 1179, 1768, n]
    tiers = res.summary["tiers"]
    for j, label in enumerate(["Q1", "Q2", "Q3", "Q4"]):
        members = order[bounds[j] : bounds[j + 1]]
        assert (res.table.loc[members, "tier"] == label).all()
        assert tiers.loc[label, "customers"] == len(members)
        assert tiers.loc[label, "share_predictive"] == pytest.approx(p[members].sum() / p.sum())
        assert tiers.loc[label, "total_run_rate"] == pytest.approx(rr[members].sum())
    # RFM quintile scores, computed another way.
    rfm = cdnow_cal.sort_index()
    assert (res.table["R"].to_numpy() == quintile_scores(rfm["recency"] - rfm["T"])).all()
    assert (res.table["F"].to_numpy() == quintile_scores(rfm["frequency"])).all()
    assert (res.table["M"].to_numpy() == quintile_scores(rfm["monetary_value"])).all()
    # Ranks: 1 + number of customers with a strictly larger value.
    larger = n - np.searchsorted(np.sort(p.to_numpy()), p.to_numpy(), side="right")
    assert (res.table["rank_predictive"].to_numpy() == 1 + larger).all()


def test_warns_on_different_horizons_or_margins():
    pred, hist, _ = hand_inputs()
    pred.attrs = {"time_unit": "W", "horizon": 39.0, "margin": 1.0}
    hist.attrs = {"time_unit": "D", "horizon": 273.0}  # 39 weeks: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cf.compare_clv(pred, hist)
    hist.attrs = {"time_unit": "W", "horizon": 52.0}
    with pytest.warns(UserWarning, match="273 days and the historical forecast 364 days"):
        cf.compare_clv(pred, hist)
    hist.attrs = {}
    pred.attrs["margin"] = 0.3
    with pytest.warns(UserWarning, match=r"margin=0\.3.*compare_clv\(\.\.\., margin=0\.3\)"):
        cf.compare_clv(pred, hist)


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=60),
    noise=st.lists(st.floats(0, 1e3, allow_nan=False), min_size=60, max_size=60),
)
def test_comparison_invariants(values, noise):
    n = len(values)
    pred = pd.Series(values, index=pd.Index(range(n), name="customer_id"))
    other = pred + np.array(noise[:n])
    res = cf.compare_clv(pred, pd.DataFrame({"same": pred, "other": other}))
    v, tiers = res.summary["variants"], res.summary["tiers"]
    assert len(res.table) == n
    # Quartile tiers partition the customers into groups whose sizes differ by at most one.
    assert tiers["customers"].sum() == n and tiers["customers"].max() - tiers["customers"].min() <= 1
    # A variant identical to the predictive CLV agrees perfectly; any top 20% of non-negative values holds at
    # least 20% of the total.
    if pred.nunique() > 1:
        assert v.loc["same", "spearman"] == pytest.approx(1.0)
        assert v.loc["same", "top10_overlap"] == 1.0 and v.loc["same", "top20_overlap"] == 1.0
    for name in v.index:
        share = v.loc[name, "top20_share"]
        assert np.isnan(share) or share >= 0.2 - 1e-9
        for col in ("top10_overlap", "top20_overlap"):
            assert np.isnan(v.loc[name, col]) or 0 <= v.loc[name, col] <= 1
    assert (res.table["rank_predictive"] >= 1).all() and (res.table["rank_predictive"] <= n).all()


# ---------------------------------------------------------------------------------------------------------------
# silent_customers: valuable in the past, probably gone, long silent
# ---------------------------------------------------------------------------------------------------------------
def silent_inputs() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ten customers, T = 40 weeks. Past repeat spend = frequency x monetary_value:
    2: 150, 1: 100, 4: 100 (tie: 1 first), 3: 80, 5: 70, 9: 60, 7: 30, 10: 30, 8: 20, 6: 0."""
    idx = pd.Index(range(1, 11), name="customer_id")
    rfm = pd.DataFrame(
        {
            "frequency": [10, 5, 2, 4, 1, 0, 3, 1, 2, 6],
            "recency": [10.0, 30.0, 10.0, 8.0, 5.0, 0.0, 20.0, 39.0, 4.0, 12.0],
            "T": 40.0,
            "monetary_value": [10.0, 30.0, 40.0, 25.0, 70.0, 0.0, 10.0, 20.0, 30.0, 5.0],
        },
        index=idx,
    )
    rfm.attrs["time_unit"] = "W"
    p = np.array([0.1, 0.2, 0.6, 0.3, 0.05, 1.0, 0.4, 0.9, 0.01, 0.45])
    value = np.array([50.0, 90.0, 70.0, 80.0, 50.0, 5.0, 20.0, 10.0, 40.0, 30.0])
    forecast = pd.DataFrame({"probability_alive": p, "clv": p * value, "clv_if_alive": value}, index=idx)
    return forecast.iloc[::-1].copy(), rfm


def test_silent_customers_by_hand():
    forecast, rfm = silent_inputs()
    out = cf.silent_customers(forecast, rfm, top_share=0.5)
    # Top 5 by past spend: 2, 1, 4, 3, 5. Customer 2 bought 10 weeks ago with a usual gap of 30/5 = 6 weeks
    # (10 < 2 x 6: not silent); customer 3 has P(alive) 0.6. Customers 1 (silent 30 >= 2 x 1), 4 (32 >= 2 x 2)
    # and 5 (35 >= 2 x 5) are silent; 9 would be, but is not in the top half by past spend.
    assert list(out.index) == [4, 1, 5]  # by value if retained: 80, then 50 and 50 (ties by id)
    assert out["past_spend"].tolist() == [100.0, 100.0, 70.0]
    assert out["silence"].tolist() == [32.0, 30.0, 35.0] and out["usual_gap"].tolist() == [2.0, 1.0, 5.0]
    assert out["clv_if_alive"].tolist() == [80.0, 50.0, 50.0]
    a = out.attrs
    assert (a["n_customers"], a["n_top"], a["n_silent"]) == (10, 5, 3) and a["share_of_top"] == pytest.approx(0.6)
    assert a["value_if_retained"] == pytest.approx(180.0)
    assert a["expected_value"] == pytest.approx(0.3 * 80 + 0.1 * 50 + 0.05 * 50)
    assert "top 50% by past repeat spend" in a["rule"] and a["time_unit"] == "W"


def test_silent_customers_defaults_and_thresholds():
    forecast, rfm = silent_inputs()
    assert list(cf.silent_customers(forecast, rfm).index) == [1]  # top 20% = {2, 1}; 2 is not silent
    # with no silence condition, every top-half customer with P(alive) < 0.5
    assert sorted(cf.silent_customers(forecast, rfm, top_share=0.5, min_silence=0).index) == [1, 2, 4, 5]
    assert list(cf.silent_customers(forecast, rfm, top_share=0.5, max_probability_alive=0.08).index) == [5]
    empty = cf.silent_customers(forecast, rfm, max_probability_alive=0.01)
    assert empty.empty and empty.attrs["n_silent"] == 0 and empty.attrs["value_if_retained"] == 0.0


def test_silent_customers_bad_input():
    forecast, rfm = silent_inputs()
    with pytest.raises(DataValidationError, match=r"forecast lacks column\(s\) 'clv_if_alive'.*predictive_clv"):
        cf.silent_customers(forecast.drop(columns="clv_if_alive"), rfm)
    with pytest.raises(DataValidationError, match=r"rfm lacks column\(s\) 'monetary_value'"):
        cf.silent_customers(forecast, rfm.drop(columns="monetary_value"))
    with pytest.raises(DataValidationError, match="1 only in forecast"):
        cf.silent_customers(forecast, rfm.iloc[1:])
    with pytest.raises(ValueError, match="top_share must be a share between 0 and 1"):
        cf.silent_customers(forecast, rfm, top_share=20)
    with pytest.raises(ValueError, match=r"min_silence must be a finite number >= 0 \(2 for twice the usual gap\)"):
        cf.silent_customers(forecast, rfm, min_silence=-1)
    before = (forecast.copy(), rfm.copy())
    cf.silent_customers(forecast, rfm)
    pd.testing.assert_frame_equal(forecast, before[0])
    pd.testing.assert_frame_equal(rfm, before[1])


def test_tier_labels_match_compare_clv():
    pred, hist, _ = hand_inputs()
    res = cf.compare_clv(pred, hist)
    labels = cf.compare.tier_labels(pred["clv"].sort_index())
    assert labels.tolist() == res.table["tier"].tolist()
