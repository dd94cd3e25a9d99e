"""The report on a real retail log (Online Retail II, bundled: the shared extract): its Data preparation section
accounts for every row read, checked against a direct pandas computation on the raw file."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from bs4 import BeautifulSoup

import clvforecast as cf

RETAIL = Path(cf.datasets.online_retail_path())
READ = dict(customer_id="Customer ID", date="InvoiceDate", quantity="Quantity", price="Price", item="StockCode",
            invoice="Invoice", returns="net", on_invalid="drop")

pytestmark = pytest.mark.skipif(not RETAIL.exists(), reason=f"the Online Retail II log is not here ({RETAIL})")


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return pd.read_parquet(RETAIL)


@pytest.fixture(scope="module")
def report() -> cf.ForecastReport:
    """Point forecasts with BG/NBD: the data preparation does not depend on the model or the ranges (the full
    report, with model="auto" and ranges, is timed by hand: see the report's note)."""
    rep = cf.ForecastReport(str(RETAIL), **READ, calibration_end="2010-06-30", observation_end="2010-12-09",
                            currency="£", model="bgnbd", interval=None, title="Online Retail II")
    with pytest.warns(cf.DataQualityWarning):
        rep.summary  # noqa: B018
    return rep


def _rows(prep: dict) -> dict[str, list]:
    return {r[0]: r for r in prep["table"]["rows"]}


def test_the_ledger_table_adds_up_to_the_rows_read(report, raw) -> None:
    prep = report.summary["data_preparation"]
    rows = _rows(prep)
    assert prep["rows_read"] == len(raw) == rows["Rows read"][1] == 525_461
    removed = [r[1] for k, r in rows.items() if k not in ("Rows read", "Rows used") and r[1] is not None]
    assert rows["Rows read"][1] + sum(removed) == rows["Rows used"][1] == prep["rows_used"]  # the identity
    assert prep["identity_holds"] and "(the ledger adds up)" in prep["identity"]


def test_the_counts_equal_a_pandas_computation_on_the_raw_file(report, raw) -> None:
    rows = _rows(report.summary["data_preparation"])
    no_id = raw["Customer ID"].isna()
    value = raw["Quantity"] * raw["Price"]
    assert rows["Rows without a customer id"][1] == -int(no_id.sum()) == -107_927
    assert rows["Rows without a customer id"][2] == pytest.approx(float(value[no_id].sum()))
    kept = raw[~no_id]
    assert rows["Zero-value rows dropped"][1] == -int((value[~no_id] == 0).sum())
    returns = int((kept["Quantity"] < 0).sum())  # every return line is either netted or unmatched (dropped)
    netted = -rows["Returns netted against the customer's earlier purchases"][1]
    unmatched = -rows["Returns with no earlier purchase to net against (dropped)"][1]
    assert netted + unmatched == returns == 9_839
    duplicated = kept.duplicated(["Customer ID", "Price", "Quantity", "StockCode", "Invoice", "InvoiceDate"])
    dup = rows["Exact duplicate rows"]
    assert dup[1] is None and dup[3] == kept.loc[duplicated, "Customer ID"].nunique()  # kept, counted
    assert dup[4].startswith(f"{int(duplicated.sum()):,} rows repeat another row")
    assert "Rows dated after the observation end" not in rows  # 2010-12-09 is the last day of the extract
    assert pd.to_datetime(raw["InvoiceDate"]).max().date().isoformat() == "2010-12-09"


def test_cancelled_orders_extreme_days_and_new_customers_are_shown(report, raw) -> None:
    prep = report.summary["data_preparation"]
    rows = _rows(prep)
    assert rows["Purchase days (orders) cancelled in full by returns"][1] < 0
    assert rows["Purchase lines returned in full"][1] < 0
    # the extreme purchase days: listed largest first, each above the fence the text gives
    fence = float(re.search(r"more than £([\d,]+)", prep["extreme_text"]).group(1).replace(",", ""))
    values = [r[2] for r in prep["extreme"]["rows"]]
    assert values == sorted(values, reverse=True) and min(values) > fence - 1
    assert len(values) == 20 and "the 20 largest are listed" in prep["extreme_text"]
    # customers new in the holdout: those whose first purchase (a line with an id and a positive value) is after
    # the calibration end, counted directly
    pos = raw[raw["Customer ID"].notna() & (raw["Quantity"] * raw["Price"] > 0)]
    first = pd.to_datetime(pos["InvoiceDate"]).groupby(pos["Customer ID"]).min()
    new = int((first > "2010-06-30 23:59:59").sum())
    shown = int(re.search(r"([\d,]+) customers made their first purchase", prep["holdout_note"]).group(1)
                .replace(",", ""))
    # netting moves a few either way: a customer whose early orders were all cancelled starts later; one whose
    # every holdout purchase was returned is left with nothing (1,339 by this count, 1,331 after netting)
    assert abs(shown - new) <= 20
    html = BeautifulSoup(report.to_html(), "html.parser")
    text = html.find("section", id="data_preparation").get_text(" ", strip=True)
    assert "525,461" in text and "Extreme purchase days" in text and "£" in text


def test_the_html_data_preparation_table_shows_every_count(report, raw) -> None:
    """The rendered section (not only the summary dict) shows each count of the ledger, with its sign."""
    html = BeautifulSoup(report.to_html(), "html.parser")
    table = html.find("section", id="data_preparation").find("table")
    cells = {tr.find_all(["td", "th"])[0].get_text(strip=True): [td.get_text(strip=True) for td in
                                                                   tr.find_all(["td", "th"])[1:]]
             for tr in table.find_all("tr")[1:]}
    assert cells["Rows read"][0] == f"{len(raw):,}"
    no_id = int(raw["Customer ID"].isna().sum())
    assert cells["Rows without a customer id"][0] == f"-{no_id:,}"
    for label, row in _rows(report.summary["data_preparation"]).items():
        if isinstance(row[1], int) and label not in ("Rows read", "Rows used"):
            assert cells[label][0] in (f"{row[1]:,}", f"\u2212{-row[1]:,}"), (label, cells[label])
    used = report.summary["data_preparation"]["rows_used"]
    assert cells["Rows used"][0] == f"{used:,}"
