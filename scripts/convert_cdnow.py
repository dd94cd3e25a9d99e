"""Convert the CDNOW files shipped in the lifetimes wheel into tidy CSV (see data/README.md).

Run once by hand: ``python scripts/convert_cdnow.py``. It reads the files straight from the installed
``lifetimes`` package directory (no import of ``lifetimes.datasets``, which needs pkg_resources).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def _lifetimes_datasets() -> Path:
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or spec.origin is None:
        raise SystemExit("lifetimes is not installed")
    return Path(spec.origin).parent / "datasets"


def convert() -> None:
    src = _lifetimes_datasets()
    # CDNOW_sample.txt: original id, sequential id (1..2357, the ids of the published summary), date, CDs, dollars.
    sample = pd.read_csv(
        src / "CDNOW_sample.txt", sep=r"\s+", header=None,
        names=["original_id", "customer_id", "date", "quantity", "amount"], dtype={"date": str},
    )
    # CDNOW_master.txt: customer id, date, CDs, dollars (with a header line).
    master = pd.read_csv(
        src / "CDNOW_master.txt", sep=r"\s+", header=0,
        names=["customer_id", "date", "quantity", "amount"], dtype={"date": str},
    )
    for name, df in (("cdnow_sample", sample), ("cdnow_master", master)):
        out = df[["customer_id", "date", "quantity", "amount"]].copy()
        out["date"] = pd.to_datetime(out["date"], format="%Y%m%d").dt.strftime("%Y-%m-%d")
        out.to_csv(ROOT / "data" / f"{name}.csv", index=False, float_format="%.2f")
        print(f"{name}: {len(out)} rows, {out['customer_id'].nunique()} customers")
    # The published Fader-Hardie summary (x, t_x, T, zbar), used only by the tests as the reference.
    summary = pd.read_csv(src / "cdnow_customers_summary_with_transactions.csv")
    summary.to_csv(ROOT / "tests" / "data" / "cdnow_published_summary.csv", index=False)
    print(f"published summary: {len(summary)} rows")


if __name__ == "__main__":
    convert()
