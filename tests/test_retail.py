"""The Online Retail II log (2009-2010), read as a user would: line items, returns netted, the ledger.

The expected numbers come from an independent pandas implementation of the documented rule written here (a
plain Python stack per customer and item), never from the toolkit's output.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import clvforecast as cf
from clvforecast.exceptions import DataQualityWarning

PATH = cf.datasets.online_retail_path()  # bundled in data/ (UCI Online Retail II, CC BY 4.0)

OPTIONS = dict(
    customer_id="Customer ID", date="InvoiceDate", quantity="Quantity", price="Price", item="StockCode",
    invoice="Invoice", returns="net", on_invalid="drop",
)
CAL_END, OBS_END = "2010-06-30", "2010-12-09"


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return pd.read_parquet(PATH)


@pytest.fixture(scope="module")
def tidy() -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        return cf.read_transactions(PATH, **OPTIONS)


@pytest.fixture(scope="module")
def cal() -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        return cf.calibration_holdout(PATH, calibration_end=CAL_END, observation_end=OBS_END, time_unit="W",
                                      **OPTIONS)  # fmt: skip


def independent_netting(raw: pd.DataFrame) -> pd.DataFrame:
    """The rule, in plain pandas and Python: the purchase lines that survive, with their net value.

    Rows without a customer id are dropped (on_invalid='drop'; every negative-price row is one of them), so are
    zero-value lines (line items: zero_amounts defaults to 'drop'). Per (customer, item), lines in order of
    timestamp, purchases before returns at the same time, then file order; each return consumes the latest
    earlier purchases first. A purchase line consumed in full goes, and so does every line of a purchase day
    touched by a return whose net value is <= 0.
    """
    df = raw[raw["Customer ID"].notna()].copy()
    assert (df["Price"] >= 0).all()
    df["value"] = df["Quantity"] * df["Price"]
    df = df[df["value"] != 0]
    df["ts"] = pd.to_datetime(df["InvoiceDate"])
    df["row"] = np.arange(len(df))
    df["is_return"] = df["value"] < 0
    value = df["value"].to_numpy()
    left = np.where(df["is_return"], 0.0, value)  # value left of each purchase line, by position
    consumed = np.zeros(len(df))
    with_returns = df.loc[df["is_return"], ["Customer ID", "StockCode"]].drop_duplicates()
    affected = df.reset_index(drop=True).merge(with_returns, on=["Customer ID", "StockCode"])
    affected = affected.sort_values(["Customer ID", "StockCode", "ts", "is_return", "row"])
    stack: list[int] = []
    previous = None
    for key, i, is_return in zip(
        zip(affected["Customer ID"], affected["StockCode"], strict=True), affected["row"], affected["is_return"],
        strict=True,
    ):
        if key != previous:
            stack, previous = [], key
        if not is_return:
            stack.append(i)
            continue
        need = -value[i]
        while need > 1e-9 and stack:
            j = stack[-1]
            take = min(need, left[j])
            left[j] -= take
            consumed[j] += take
            need -= take
            if left[j] <= 1e-9:
                stack.pop()
    df["net"] = left
    df["consumed"] = consumed
    purchases = df[~df["is_return"]].copy()
    purchases["day"] = purchases["ts"].dt.normalize()
    day = purchases.groupby(["Customer ID", "day"]).agg(net=("net", "sum"), touched=("consumed", "max"))
    cancelled = day[(day["touched"] > 0) & (day["net"] <= 1e-9)].index
    on_cancelled = purchases.set_index(["Customer ID", "day"]).index.isin(cancelled)
    gone = (purchases["consumed"] > 0) & (purchases["net"] <= 1e-9)
    return purchases[~on_cancelled & ~gone]


def test_online_retail_ledger_adds_up_and_netting_matches_an_independent_implementation(
    raw: pd.DataFrame, tidy: pd.DataFrame
) -> None:
    ledger = tidy.attrs["ledger"]
    assert ledger["rows_read"] == len(raw) == 525_461
    assert ledger["identity_holds"]
    assert ledger["rows_read"] == ledger["rows_used"] + sum(e["rows"] for e in ledger["entries"])
    assert ledger["rows_used"] == len(tidy)
    json.dumps(ledger)  # plain JSON
    rows = {e["key"]: e["rows"] for e in ledger["entries"]}
    assert rows["null_customer_id"] == int(raw["Customer ID"].isna().sum()) == 107_927
    kept = raw[raw["Customer ID"].notna()]
    assert rows["zero_amount"] == int((kept["Quantity"] * kept["Price"] == 0).sum())
    # every cancellation line with a customer is a return that was netted or had nothing to net against
    assert rows["returns_netted"] + rows["returns_unmatched"] == int((kept["Quantity"] < 0).sum()) == 9_839

    expected = independent_netting(raw)
    assert len(tidy) == len(expected)
    assert tidy["amount"].sum() == pytest.approx(expected["net"].sum(), rel=1e-12, abs=1e-6)
    assert tidy["customer_id"].nunique() == expected["Customer ID"].nunique()
    per_customer = expected.groupby(expected["Customer ID"].astype("int64"))["net"].sum()
    ours = tidy.groupby("customer_id")["amount"].sum()
    pd.testing.assert_series_equal(ours.sort_index(), per_customer.sort_index(), check_names=False, rtol=1e-9)
    # no purchase day with a net value <= 0 remains, nor any line
    assert (tidy.groupby(["customer_id", "date"])["amount"].sum() > 0).all()
    assert (tidy["amount"] > 0).all()
    # ids: whole-number floats became int64
    assert str(tidy["customer_id"].dtype) == "int64"


def test_a_cancelled_order_no_longer_counts(tidy: pd.DataFrame) -> None:
    # Customer 12918 ordered 10,953.50 on 2010-03-23 at 15:22 and cancelled it at 15:24 (C502264); a first
    # cancellation at 15:20 precedes the order and has nothing to match. Nothing is left of the customer.
    assert 12918 not in set(tidy["customer_id"])
    # Customer 17949's order of 8,985.60 at 11:04 on 2010-01-29 was cancelled at 11:05.
    day = tidy[(tidy["customer_id"] == 17949) & (tidy["date"] == "2010-01-29")]
    assert day["amount"].sum() != pytest.approx(8985.60)


def test_calibration_holdout_ledger_and_the_new_customers(raw: pd.DataFrame, cal: pd.DataFrame,
                                                          tidy: pd.DataFrame) -> None:
    ledger = cal.attrs["ledger"]
    assert ledger["identity_holds"] and ledger["rows_read"] == 525_461
    entries = {e["key"]: e for e in ledger["entries"]}
    # customers new in the holdout: first (net) purchase after the calibration end, rows counted
    first = tidy.groupby("customer_id")["date"].min()
    new = first.index[first > CAL_END]
    assert entries["new_in_holdout"]["customers"] == len(new) == cal.attrs["excluded_new_in_holdout"]
    assert entries["new_in_holdout"]["rows"] == int(tidy["customer_id"].isin(new).sum())
    assert ledger["rows_used"] == int((~tidy["customer_id"].isin(new)).sum())  # the log ends on OBS_END
    assert set(cal.index) == set(first.index[first <= CAL_END])
    # the spend the table holds is the net spend
    in_table = tidy[tidy["customer_id"].isin(cal.index)]
    holdout = in_table[in_table["date"] > CAL_END]["amount"].sum()
    assert cal["holdout_spend"].sum() == pytest.approx(holdout, rel=1e-9)
    assert "extreme_orders" in entries and cal.attrs["extreme_orders"]


def test_duplicates_are_counted_over_the_columns_read(raw: pd.DataFrame, tidy: pd.DataFrame) -> None:
    # The README's 6,865 exact duplicates are over all columns and all rows; among rows with a customer id and
    # a non-zero value, over the columns read (customer, timestamp, quantity, price, item, invoice):
    kept = raw[raw["Customer ID"].notna() & (raw["Quantity"] * raw["Price"] != 0)]
    read = ["Customer ID", "InvoiceDate", "Quantity", "Price", "StockCode", "Invoice"]
    expected = int(kept.duplicated(read).sum())
    entry = next(e for e in tidy.attrs["ledger"]["entries"] if e["key"] == "duplicates")
    assert entry["rows"] == 0 and entry["note"].startswith(f"{expected:,} rows repeat another row")
    # duplicates='drop' on the first 60,000 lines (as a DataFrame): the same count, dropped, the ledger adds up
    head = raw.iloc[:60_000]
    part = head[head["Customer ID"].notna() & (head["Quantity"] * head["Price"] != 0)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        dropped = cf.read_transactions(head, duplicates="drop", **OPTIONS)
    entry = next(e for e in dropped.attrs["ledger"]["entries"] if e["key"] == "duplicates")
    assert entry["rows"] == int(part.duplicated(read).sum()) > 0 and dropped.attrs["ledger"]["identity_holds"]


def test_the_same_lines_give_the_same_result_from_a_dataframe_a_csv_and_parquet(raw: pd.DataFrame,
                                                                                tmp_path: Path) -> None:
    # 'Customer ID' is a float column with blanks: to_csv writes '13085.0', which must read as the integer id.
    part = raw.iloc[:40_000]
    part.to_csv(tmp_path / "lines.csv", index=False)
    part.to_parquet(tmp_path / "lines.parquet", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        frames = [cf.read_transactions(s, **OPTIONS) for s in (part, tmp_path / "lines.csv", tmp_path / "lines.parquet")]
    for other in frames[1:]:
        pd.testing.assert_frame_equal(other, frames[0], check_exact=True)
        assert other.attrs["ledger"] == frames[0].attrs["ledger"]
    assert str(frames[0]["customer_id"].dtype) == "int64" and frames[0].attrs["ledger"]["rows_read"] == 40_000
