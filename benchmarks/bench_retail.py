"""The Online Retail II path end to end: line items, returns netted, duplicates, the ledger, the RFM table.

Times, on the shared Online Retail II log (525,461 invoice lines, 9,839 cancellation lines with a customer),
each in a fresh process state within one process (the best of ``--repeat`` runs, the first, cold run beside it):

* ``read_transactions`` with line items and ``returns="drop"`` (no netting: the cost of reading and checking);
* the same with ``returns="net"`` (the difference is the netting);
* ``calibration_holdout`` with ``returns="net"`` (read + net + the RFM table: the whole path of a report);
* a plain pandas reading of the same rule (pandas ``read_parquet``, quantity x price, and the LIFO netting in a
  Python loop over the (customer, item) groups that hold a return), as the peer a user would write.

Prints seconds and the ledger of the calibration table. Skips (exit 0) when the log is not in the workplace.

    python benchmarks/bench_retail.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
CANDIDATES = [HERE.parent / "data" / "online_retail_II_2009_2010.parquet"]  # bundled (data/README.md)
OPTIONS = dict(
    customer_id="Customer ID", date="InvoiceDate", quantity="Quantity", price="Price", item="StockCode",
    invoice="Invoice", on_invalid="drop",
)


def pandas_netting(path: Path) -> float:
    """The rule in plain pandas: the total net spend (for the timing, and as a check)."""
    df = pd.read_parquet(path)
    df = df[df["Customer ID"].notna()]
    df = df.assign(value=df["Quantity"] * df["Price"], ts=pd.to_datetime(df["InvoiceDate"]))
    df = df[df["value"] != 0].reset_index(drop=True)
    value = df["value"].to_numpy()
    left = np.where(value < 0, 0.0, value)
    consumed = np.zeros(len(df))
    keys = ["Customer ID", "StockCode"]
    groups = df.loc[value < 0, keys].drop_duplicates()
    affected = df.reset_index().merge(groups, on=keys).assign(ret=lambda d: d["value"] < 0)
    affected = affected.sort_values([*keys, "ts", "ret", "index"])
    stack: list[int] = []
    previous = None
    for key, i, ret in zip(zip(affected[keys[0]], affected[keys[1]], strict=True), affected["index"],
                           affected["ret"], strict=True):  # fmt: skip
        if key != previous:
            stack, previous = [], key
        if not ret:
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
    purchases = df.assign(net=left, consumed=consumed)[value >= 0]
    purchases = purchases.assign(day=purchases["ts"].dt.normalize())
    day = purchases.groupby(["Customer ID", "day"]).agg(net=("net", "sum"), touched=("consumed", "max"))
    cancelled = day[(day["touched"] > 0) & (day["net"] <= 1e-9)].index
    keep = ~purchases.set_index(["Customer ID", "day"]).index.isin(cancelled)
    keep &= ~((purchases["consumed"] > 0) & (purchases["net"] <= 1e-9)).to_numpy()
    return float(purchases.loc[keep, "net"].sum())


def timed(run, repeat: int) -> tuple[float, float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - t0)
    return min(times), times[0], result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args, _ = parser.parse_known_args()  # run_all passes the other scripts' options along
    path = next((p for p in CANDIDATES if p.exists()), None)
    if path is None:
        print("skipped: the Online Retail II log is not in this workplace")
        return 0
    import duckdb

    import clvforecast as cf

    warnings.simplefilter("ignore", cf.DataQualityWarning)
    print(f"{path.name}; clvforecast {cf.__version__} (DuckDB {duckdb.__version__}), pandas {pd.__version__}")
    runs = {
        "read_transactions, returns='drop'": lambda: cf.read_transactions(path, returns="drop", **OPTIONS),
        "read_transactions, returns='net'": lambda: cf.read_transactions(path, returns="net", **OPTIONS),
        "calibration_holdout, returns='net'": lambda: cf.calibration_holdout(
            path, calibration_end="2010-06-30", observation_end="2010-12-09", time_unit="W", returns="net",
            **OPTIONS,
        ),
        "pandas: read + the same netting": lambda: pandas_netting(path),
    }
    results = {}
    print(f"\n{'contender':<40} {'best s':>8} {'first s':>8}")
    for name, run in runs.items():
        best, first, results[name] = timed(run, args.repeat)
        print(f"{name:<40} {best:>8.2f} {first:>8.2f}", flush=True)
    tidy = results["read_transactions, returns='net'"]
    ours, theirs = float(tidy["amount"].sum()), results["pandas: read + the same netting"]
    same = abs(ours - theirs) <= 1e-6 * max(1.0, abs(theirs))
    print(f"\nnet spend: clvforecast {ours:,.2f}, pandas {theirs:,.2f}: {'equal' if same else 'DIFFERENT'}")
    table = results["calibration_holdout, returns='net'"]
    ledger = table.attrs["ledger"]
    print(f"ledger of the calibration table: {ledger['rows_read']:,} rows read, {ledger['rows_used']:,} used, "
          f"identity {'holds' if ledger['identity_holds'] else 'BROKEN'}")  # fmt: skip
    for e in ledger["entries"]:
        value = f"{e['value']:,.2f}" if e["value"] is not None else ""
        customers = f"{e['customers']:,}" if e["customers"] is not None else ""
        print(f"  {e['key']:<30} {e['rows']:>9,} rows {value:>15} {customers:>7} customers")
    return 0 if same and ledger["identity_holds"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
