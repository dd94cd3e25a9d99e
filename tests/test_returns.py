"""Returns netted against purchases (returns="net"), line items, and the ledger, on hand-built logs.

Every expected table is derived by hand in the comments from the rule in clvforecast.io's docstring: a return
consumes the same customer's (same item's, when item is given) most recent earlier purchases, latest first; a
purchase day whose net value reaches zero is no longer a purchase; an unmatched return is dropped and counted.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import clvforecast as cf
from clvforecast.exceptions import DataQualityWarning, DataValidationError
from clvforecast.netting import net_group, net_sorted

OBS = "2024-03-31"


def _log(rows: list[tuple], columns: tuple[str, ...] = ("customer_id", "date", "amount")) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns))


def _rfm(log: pd.DataFrame, **kw: object) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        return cf.rfm_summary(log, observation_end=OBS, returns="net", **kw)


def _entries(table: pd.DataFrame) -> dict[str, tuple[int, float | None, int | None]]:
    ledger = table.attrs["ledger"]
    assert ledger["identity_holds"]
    assert ledger["rows_read"] == ledger["rows_used"] + sum(e["rows"] for e in ledger["entries"])
    return {e["key"]: (e["rows"], e["value"], e["customers"]) for e in ledger["entries"]}


# --- the netting cases ----------------------------------------------------------------------------------------


def test_a_partial_return_reduces_the_latest_purchase() -> None:
    log = _log([("a", "2024-01-01", 100.0), ("a", "2024-01-10", 50.0), ("a", "2024-01-12", -30.0)])
    rfm = _rfm(log)
    # The return consumes 30 of the latest earlier purchase (01-10: 50 -> 20); two purchase days remain:
    # frequency 1, recency 9 days, T 90 days (01-01 -> 03-31), monetary value 20.
    assert rfm.loc["a"].tolist() == [1, 9.0, 90.0, 20.0]
    assert _entries(rfm) == {"returns_netted": (1, 30.0, 1)}
    tidy = cf.read_transactions(log, returns="net")
    assert tidy["amount"].tolist() == [100.0, 20.0]  # the return line itself is gone


def test_a_full_cancellation_the_same_day_removes_the_order() -> None:
    # The case: an order of 80,995 x 2.08 = 168,469.60 cancelled twelve minutes later.
    log = _log(
        [
            ("b", "2024-01-01 09:00", 40.0),
            ("b", "2024-01-15 09:15", 168_469.60),
            ("b", "2024-01-15 09:27", -168_469.60),
        ]
    )
    rfm = _rfm(log)
    # 01-15 nets to zero: it is no longer a purchase. Left: 01-01 only -> frequency 0, T 90 days.
    assert rfm.loc["b"].tolist() == [0, 0.0, 90.0, 0.0]
    e = _entries(rfm)
    assert e["returns_netted"] == (1, 168_469.60, 1) and e["orders_cancelled"] == (1, 168_469.60, 1)
    # Dropping the return instead (the old on_invalid='drop') keeps the cancelled order as a purchase.
    with pytest.warns(DataQualityWarning, match="not netted"):
        dropped = cf.rfm_summary(log, observation_end=OBS, on_invalid="drop")
    assert dropped.loc["b", "monetary_value"] == 168_469.60


def test_time_of_day_orders_a_return_before_a_later_order_the_same_day() -> None:
    # A return at 09:00 cannot cancel the order placed at 10:00 the same day: it consumes the earlier purchase
    # of 01-01 (40, which then nets to zero) and 160 of it is unmatched; the 10:00 order stays.
    log = _log([("c", "2024-01-01 12:00", 40.0), ("c", "2024-01-15 09:00", -200.0), ("c", "2024-01-15 10:00", 200.0)])
    rfm = _rfm(log)
    assert rfm.loc["c"].tolist() == [0, 0.0, (pd.Timestamp(OBS) - pd.Timestamp("2024-01-15")).days, 0.0]
    e = _entries(rfm)
    assert e["returns_netted"] == (1, 40.0, 1)
    assert e["returns_unmatched"] == (0, 160.0, 0)  # part of a matched line: no row, its value counted
    assert e["orders_cancelled"] == (1, 40.0, 1)
    # A date-only log cannot order them: the purchase is the earlier on the same day and is cancelled instead.
    dates = log.assign(date=log["date"].str[:10])
    assert _rfm(dates).loc["c"].tolist() == [0, 0.0, 90.0, 0.0]


def test_a_return_weeks_later_consumes_the_older_orders_latest_first() -> None:
    log = _log([("d", "2024-01-01", 30.0), ("d", "2024-01-05", 60.0), ("d", "2024-01-20", 25.0),
                ("d", "2024-03-01", -70.0)])  # fmt: skip
    rfm = _rfm(log)
    # LIFO: 25 of 01-20 (-> 0, day cancelled), then 45 of 01-05 (60 -> 15). Days left: 01-01 (30), 01-05 (15):
    # frequency 1, recency 4, T 90, monetary 15.
    assert rfm.loc["d"].tolist() == [1, 4.0, 90.0, 15.0]
    e = _entries(rfm)
    assert e["returns_netted"] == (1, 70.0, 1) and e["orders_cancelled"] == (1, 25.0, 1)


def test_a_return_with_nothing_to_match_is_dropped_and_counted() -> None:
    log = _log([("e", "2024-01-10", -25.0), ("e", "2024-01-20", 40.0), ("f", "2024-02-01", 10.0)])
    rfm = _rfm(log)
    # The return precedes every purchase of e: unmatched, dropped. e keeps its one purchase on 01-20.
    assert rfm.loc["e"].tolist() == [0, 0.0, 71.0, 0.0]
    assert _entries(rfm) == {"returns_unmatched": (1, 25.0, 1)}
    assert rfm.attrs["ledger"]["rows_used"] == 2


def test_a_return_larger_than_the_purchases_leaves_the_customer_with_nothing() -> None:
    log = _log([("g", "2024-01-01", 20.0), ("g", "2024-01-03", 10.0), ("g", "2024-01-04", -50.0),
                ("h", "2024-01-02", 5.0)])  # fmt: skip
    rfm = _rfm(log)
    # 10 of 01-03, then 20 of 01-01: both days reach zero; 20 is unmatched. g has nothing left.
    assert list(rfm.index) == ["h"]
    e = _entries(rfm)
    assert e["returns_netted"] == (1, 30.0, 1)
    assert e["returns_unmatched"] == (0, 20.0, 0)
    assert e["orders_cancelled"] == (2, 30.0, 1)
    assert e["customers_left_with_nothing"] == (0, None, 1)
    assert rfm.attrs["ledger"]["rows_used"] == 1  # h's row; g's three rows are accounted for above


def test_returns_are_matched_by_item_when_item_is_given() -> None:
    log = _log(
        [
            ("k", "2024-01-01", "X", 2, 5.0),   # 10
            ("k", "2024-01-08", "Y", 1, 30.0),  # 30
            ("k", "2024-01-09", "X", -2, 5.0),  # returns the two X of 01-01
        ],
        ("customer_id", "date", "sku", "qty", "unit_price"),
    )
    by_item = _rfm(log, item="sku", quantity="qty", price="unit_price", amount=None)
    # With the item, the return cancels 01-01 (X): the first purchase is now 01-08 -> frequency 0, T 83 days.
    assert by_item.loc["k"].tolist() == [0, 0.0, 83.0, 0.0]
    assert _entries(by_item)["orders_cancelled"] == (1, 10.0, 1)
    # Without it, the latest earlier purchase (01-08, Y) is reduced: 30 -> 20; frequency 1, recency 7.
    any_item = _rfm(log, quantity="qty", price="unit_price", amount=None)
    assert any_item.loc["k"].tolist() == [1, 7.0, 90.0, 20.0]


def test_a_purchase_line_returned_in_full_leaves_the_rest_of_its_day() -> None:
    log = _log(
        [
            ("m", "2024-01-01", "X", 1, 10.0),
            ("m", "2024-01-05", "X", 3, 4.0),   # 12, returned in full
            ("m", "2024-01-05", "Y", 1, 8.0),   # 8 stays: the day nets to 8
            ("m", "2024-01-06", "X", -3, 4.0),
        ],
        ("customer_id", "date", "item", "quantity", "price"),
    )
    tidy = cf.read_transactions(log, item="item", quantity="quantity", price="price", amount=None, returns="net")
    assert tidy[["item", "amount"]].values.tolist() == [["X", 10.0], ["Y", 8.0]]
    assert tidy.attrs["dropped"] == {"returns_netted": 1, "lines_cancelled": 1}
    rfm = _rfm(log, item="item", quantity="quantity", price="price", amount=None)
    assert rfm.loc["m"].tolist() == [1, 4.0, 90.0, 8.0]


def test_a_day_nets_over_all_its_items() -> None:
    # With item matching the X return only consumes X, but the day's net value is over all its lines.
    log = _log(
        [("n", "2024-01-01", "X", 10.0), ("n", "2024-01-02", "X", 6.0), ("n", "2024-01-02", "Z", 0.0),
         ("n", "2024-01-03", "X", -6.0)],  # fmt: skip
        ("customer_id", "date", "item", "amount"),
    )
    rfm = _rfm(log, item="item")
    # 01-02: X 6 -> 0, Z is a free line (0): the day's net value is 0 -> not a purchase (both lines removed).
    assert rfm.loc["n"].tolist() == [0, 0.0, 90.0, 0.0]
    assert _entries(rfm)["orders_cancelled"] == (2, 6.0, 1)


# --- policies, the ledger and the tidy frame -------------------------------------------------------------


def test_returns_policies_raise_drop_net() -> None:
    log = _log([("a", "2024-01-01", 100.0), ("a", "2024-01-10", 50.0), ("a", "2024-01-12", -30.0)])
    with pytest.raises(DataValidationError, match=r"1 of 3 rows have negative amounts .*returns='net'.*returns='drop'"):
        cf.rfm_summary(log)
    with pytest.warns(DataQualityWarning, match="dropped 1 of 3 rows: 1 negative amount") as record:
        dropped = cf.rfm_summary(log, returns="drop", observation_end=OBS)
    assert "not netted" not in str(record[0].message)  # asked for knowingly: no advice
    assert dropped.loc["a", "monetary_value"] == 50.0
    assert _entries(dropped) == {"negative_amount": (1, -30.0, None)}
    assert cf.rfm_summary(log, negative_amounts="drop", observation_end=OBS).equals(dropped)  # the old name
    assert _rfm(log).loc["a", "monetary_value"] == 20.0


def test_the_ledger_continues_from_read_transactions() -> None:
    log = _log([("a", "2024-01-01", 100.0), ("a", "2024-01-10", 50.0), ("a", "2024-01-12", -30.0),
                (None, "2024-01-13", 5.0), ("b", "2024-04-02", 9.0)])  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        tidy = cf.read_transactions(log, returns="net", on_invalid="drop")
        direct = cf.rfm_summary(log, returns="net", on_invalid="drop", observation_end=OBS)
    assert tidy.attrs["ledger"]["rows_read"] == 5 and tidy.attrs["ledger"]["rows_used"] == 3
    # Passed back in (no options), the frame's ledger continues: nothing is "valid from the start".
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = cf.rfm_summary(tidy, observation_end=OBS)
    pd.testing.assert_frame_equal(again, direct)
    assert again.attrs["ledger"] == direct.attrs["ledger"]
    assert again.attrs["dropped"] == {"null_customer_id": 1, "returns_netted": 1}
    assert _entries(again)["after_observation_end"] == (1, 9.0, None)
    # Rows removed by the user's own code in between are counted as such.
    fewer = tidy[tidy["customer_id"] != "b"]
    assert _entries(cf.rfm_summary(fewer, observation_end=OBS))["removed_between_calls"] == (1, None, None)


def test_net_group_gives_the_same_result_per_group_as_on_all_groups() -> None:
    # The Spark path: net_group on each group alone (applyInPandas) equals net_sorted on all groups at once.
    rng = np.random.default_rng(5)
    n = 300
    frame = pd.DataFrame(
        {
            "customer_id": rng.integers(0, 8, n),
            "item": rng.choice(["x", "y", "z"], n),
            "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 60 * 24 * 30, n), unit="min"),
            "amount": np.round(rng.normal(20, 30, n), 2),
            "row": np.arange(n),
        }
    )
    whole = net_group(frame).set_index("row").sort_index()
    parts = pd.concat([net_group(g) for _, g in frame.groupby(["customer_id", "item"])]).set_index("row")
    pd.testing.assert_frame_equal(parts.sort_index(), whole)
    # value is conserved: every returned unit of value either consumed a purchase or is unmatched
    purchases = frame["amount"] >= 0
    consumed = whole.loc[purchases.to_numpy(), "matched"].sum()
    assert consumed == pytest.approx(whole.loc[~purchases.to_numpy(), "matched"].sum(), abs=1e-6)
    assert (whole["net_amount"] >= 0).all()


def test_net_sorted_is_exact_for_currency() -> None:
    # 0.1 + 0.2 returned against 0.3 leaves exactly zero (micro-unit integers), not 5.5e-17.
    net, matched = net_sorted(np.zeros(3, dtype=int), np.array([0.3, -0.1, -0.2]))
    assert net.tolist() == [0.0, 0.0, 0.0] and matched.tolist() == [0.3, 0.1, 0.2]


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_netting_is_the_same_from_files(kind: str, tmp_path: Path) -> None:
    log = _log([("a", "2024-01-01 10:00", 100.0), ("a", "2024-01-10 08:00", 50.0), ("a", "2024-01-10 08:05", -50.0),
                ("b", "2024-01-03 12:00", 7.5), ("b", "2024-02-03 12:00", -2.5)])  # fmt: skip
    path = tmp_path / f"log.{kind}"
    log.to_csv(path, index=False) if kind == "csv" else log.to_parquet(path, index=False)
    expected = _rfm(log)
    got = _rfm(path)
    pd.testing.assert_frame_equal(got, expected)
    assert got.attrs["ledger"] == expected.attrs["ledger"]


def test_line_items_amount_is_quantity_times_price() -> None:
    log = pd.DataFrame(
        {
            "cust": [1, 1, 2],
            "when": ["2024-01-01", "2024-01-02", "2024-01-03"],
            "qty": [3, 2, 1],
            "unit": [2.5, 10.0, 4.0],
            "sku": ["A", "B", "A"],
            "inv": ["i1", "i2", "i3"],
        }
    )
    out = cf.read_transactions(log, customer_id="cust", date="when", quantity="qty", price="unit", item="sku",
                               invoice="inv", amount=None)  # fmt: skip
    assert list(out.columns) == ["customer_id", "date", "amount", "quantity", "item", "invoice"]
    assert out["amount"].tolist() == [7.5, 20.0, 4.0] and out["quantity"].tolist() == [3, 2, 1]
    assert str(out["quantity"].dtype) == "int64"
    price_only = cf.read_transactions(log, customer_id="cust", date="when", price="unit")  # quantity 1
    assert price_only["amount"].tolist() == [2.5, 10.0, 4.0]
    with pytest.raises(ValueError, match="give either amount='Paid' or price='unit'"):
        cf.read_transactions(log, customer_id="cust", date="when", amount="Paid", price="unit")


def test_negative_prices_and_bad_quantities_are_invalid_rows() -> None:
    log = pd.DataFrame(
        {"customer_id": [1, 1, 2, 3], "date": ["2024-01-01"] * 4, "qty": ["2", "x", "1", "1"],
         "price": [1.0, 1.0, -5.0, 2.0]}  # fmt: skip
    )
    with pytest.raises(DataValidationError, match=r"columns 'qty' and 'price': 1 of 4 rows are missing or not finite"):
        cf.read_transactions(log, quantity="qty", price="price")
    bad_price = log.assign(qty=["2", "3", "1", "1"])
    with pytest.raises(DataValidationError, match=r"column 'price': 1 of 4 rows have a negative unit price") as err:
        cf.read_transactions(bad_price, quantity="qty", price="price")
    assert "on_invalid='drop'" in str(err.value)
    with pytest.warns(DataQualityWarning, match="1 negative price"):  # the hint, followed
        out = cf.read_transactions(bad_price, quantity="qty", price="price", on_invalid="drop")
    assert out["amount"].tolist() == [2.0, 3.0, 2.0]


def test_frequency_only_log_with_returns_option_reads() -> None:
    # Without amounts there is nothing to net: the option is harmless and the purchase columns are there.
    log = _log([(1, "2024-01-01", 1.0), (1, "2024-01-05", 1.0)]).drop(columns="amount")
    rfm = cf.rfm_summary(log, amount=None, returns="net", observation_end="2024-01-31")
    assert list(rfm.columns) == ["frequency", "recency", "T"] and rfm.loc[1].tolist() == [1, 4.0, 30.0]
