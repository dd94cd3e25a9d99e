"""Write notebooks/04_real_retail_data.ipynb from the cells below (outputs stripped).

Run: python scripts/make_notebook_04.py (uses the helpers of scripts/make_notebooks.py)."""

from __future__ import annotations

from make_notebooks import code, md, write

RETAIL = [
    md("""
# A real retailer's log: from raw invoice lines to a validated forecast

The UCI *Online Retail II* data (first year, December 2009 to December 2010): a UK online gift shop's invoice
lines, as a business would export them. It is messy in the ways real logs are: the amount is not a column (it is
quantity x unit price), about 2% of the lines are cancellations with a negative quantity, a fifth have no
customer id, thousands of lines are exact duplicates, and a few orders are enormous. This notebook reads it as
you would read your own data, shows every row's fate in the **ledger**, and validates a forecast on the second
half of the year.

The log ships with clvforecast (`cf.load_online_retail()` gives the raw lines, `cf.datasets.online_retail_path()`
the file; source and licence in `data/README.md`).
"""),
    code("""
%matplotlib inline
from pathlib import Path

import pandas as pd
import clvforecast as cf

path = cf.datasets.online_retail_path()
raw = cf.load_online_retail()
print(f"{len(raw):,} invoice lines, {raw['Invoice'].nunique():,} invoices")
raw.head()
"""),
    md("""
## What is in it, counted with plain pandas

Before the toolkit touches it: cancellations (invoice numbers starting with `C`, negative quantities), lines
without a customer, exact duplicate lines, and the largest single lines.
"""),
    code("""
quirks = pd.Series({
    "cancellation lines (invoice 'C...')": int(raw["Invoice"].astype(str).str.startswith("C").sum()),
    "negative quantities": int((raw["Quantity"] < 0).sum()),
    "no customer id": int(raw["Customer ID"].isna().sum()),
    "price <= 0": int((raw["Price"] <= 0).sum()),
    "exact duplicate lines": int(raw.duplicated().sum()),
})
quirks.to_frame("lines")
"""),
    md("""
## Describe the source once

A `TransactionLog` says which column holds what and how to clean it; every function that takes a source
accepts it (or the same options as keywords). The amount is quantity x price; returns are **netted** against
the same customer's most recent earlier purchases of the same item (a cancelled order disappears, and a
customer with nothing left too); lines without a customer id are dropped and counted.
"""),
    code("""
log = cf.TransactionLog(
    path, customer_id="Customer ID", date="InvoiceDate", quantity="Quantity", price="Price",
    item="StockCode", invoice="Invoice", returns="net", on_invalid="drop",
)
tx = cf.read_transactions(log)
print(f"{len(tx):,} clean lines of {tx['customer_id'].nunique():,} customers")
tx.head()
"""),
    md("""
## The ledger: every row accounted for

Rows read = rows used + every counted reason. Nothing is lost silently; the report shows the same table.
"""),
    code("""
ledger = cf.io.ledger_entries(tx)
print(f"rows read {ledger.attrs['rows_read']:,} = rows used {ledger.attrs['rows_used']:,} "
      f"+ {int(ledger['rows'].sum()):,} counted; identity holds: {ledger.attrs['identity_holds']}")
ledger[["label", "rows", "value", "customers"]]
"""),
    md("""
## An order cancelled two minutes later

Customer 12918's order of £10,953.50 (a manual line, `M`) was cancelled two minutes after it was placed (and a
cancellation of the same amount came two minutes *before* it, with nothing earlier to cancel). Dropping the
cancellation lines, which is all that `on_invalid="drop"` would do, keeps the order and makes this one of the
most valuable customers in the log. With netting, the order and its cancellation cancel out, the customer has
nothing left, and the unmatched cancellation is dropped and counted.
"""),
    code("""
print(raw.loc[raw["Customer ID"] == 12918, ["Invoice", "StockCode", "Quantity", "Price", "InvoiceDate"]])
print("lines of customer 12918 after netting:", int((tx["customer_id"] == 12918).sum()))
dropped_only = cf.read_transactions(path, customer_id="Customer ID", date="InvoiceDate", quantity="Quantity",
                                    price="Price", item="StockCode", invoice="Invoice", returns="drop",
                                    on_invalid="drop")
print("spend of customer 12918 with returns merely dropped:",
      f"£{dropped_only.loc[dropped_only['customer_id'] == 12918, 'amount'].sum():,.2f}")
"""),
    md("""
## Calibration and holdout

Fit on December 2009 to June 2010, check on July to 9 December 2010 (weekly units). Customers whose first
purchase falls in the holdout cannot be scored by a model fitted before they arrived; they are counted in the
ledger, with their rows.
"""),
    code("""
cal = cf.calibration_holdout(tx, calibration_end="2010-06-30", observation_end="2010-12-09", time_unit="W")
print(f"{len(cal):,} customers in the calibration period")
cf.io.ledger_entries(cal)[["label", "rows", "value", "customers"]].tail(4)
"""),
    code("""
ev = cf.evaluate_holdout(tx, calibration_end="2010-06-30", observation_end="2010-12-09", time_unit="W",
                         interval=0.9, random_state=0)
print(ev.summary)
"""),
    md("""
## The report

The same source, one call: the Data preparation section shows the ledger, the validation section the holdout.
"""),
    code("""
import tempfile
report = cf.ForecastReport(path, **log.options(), calibration_end="2010-06-30", observation_end="2010-12-09", time_unit="W",
                           horizon="12M", currency="£", title="Online Retail II: CLV forecast")
out = report.write_html(Path(tempfile.mkdtemp()) / "online_retail_report.html")
print("report written to", out)
[s["title"] for s in report.summary["sections"]]
"""),
]

if __name__ == "__main__":
    write("04_real_retail_data.ipynb", RETAIL)
