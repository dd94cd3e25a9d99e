"""Convert the CDNOW files shipped in the lifetimes wheel into tidy CSV (see data/README.md).

Run by hand: ``python scripts/convert_cdnow.py`` writes ``data/cdnow_sample.csv``, ``data/cdnow_master.csv``
and ``tests/data/cdnow_published_summary.csv``; ``python scripts/convert_cdnow.py --check`` converts into a
temporary folder and fails if any committed file differs byte for byte. The originals are read straight from
the installed ``lifetimes`` package folder (``lifetimes.datasets`` is not imported: it needs pkg_resources,
which current setuptools no longer ships).

The originals are whitespace-separated text with CRLF line endings:

* ``CDNOW_sample.txt``, no header: original customer id (of the master file), sequential id 1..2357 (the ids
  of Fader and Hardie's published summary), date ``YYYYMMDD``, number of CDs, dollar value.
* ``CDNOW_master.txt``, one header line: customer id 1..23570, date ``YYYYMMDD``, number of CDs, dollar value.

The output is ``customer_id,date,quantity,amount`` with ISO dates, amounts with two decimals (as in the
originals), LF line endings, rows in the original order. The published summary
(``cdnow_customers_summary_with_transactions.csv``: ID, x, t_x, T, zbar) is copied verbatim: the tests compare
against it.
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.util
import shutil
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = {
    "sample": Path("data/cdnow_sample.csv"),
    "master": Path("data/cdnow_master.csv"),
    "summary": Path("tests/data/cdnow_published_summary.csv"),
}


def lifetimes_datasets() -> Path:
    """The ``datasets`` folder of the installed lifetimes package."""
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or spec.origin is None:
        raise SystemExit("lifetimes is not installed: pip install lifetimes")
    return Path(spec.origin).parent / "datasets"


def tidy(path: Path, names: list[str], header: int | None) -> pd.DataFrame:
    """Read one original file and return ``customer_id, date (ISO text), quantity, amount``."""
    df = pd.read_csv(path, sep=r"\s+", header=header, names=names, dtype={"date": str})
    out = df[["customer_id", "date", "quantity", "amount"]].copy()
    out["date"] = pd.to_datetime(out["date"], format="%Y%m%d").dt.strftime("%Y-%m-%d")
    return out


def convert(root: Path) -> None:
    """Write the three files under ``root`` (the repository, or a temporary folder for --check)."""
    src = lifetimes_datasets()
    columns = ["customer_id", "date", "quantity", "amount"]
    tables = {
        # The second column is the sequential id 1..2357 that the published summary uses.
        "sample": tidy(src / "CDNOW_sample.txt", ["original_id", *columns], header=None),
        "master": tidy(src / "CDNOW_master.txt", columns, header=0),
    }
    for kind, table in tables.items():
        target = root / OUTPUTS[kind]
        target.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(target, index=False, float_format="%.2f", lineterminator="\n")
        customers, zero = table["customer_id"].nunique(), int((table["amount"] == 0).sum())
        print(f"{target}: {len(table):,} rows, {customers:,} customers, {zero} zero-dollar rows")
    summary = root / OUTPUTS["summary"]
    summary.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "cdnow_customers_summary_with_transactions.csv", summary)
    print(f"{summary}: copied verbatim")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="convert into a temporary folder and compare")
    args = parser.parse_args()
    if not args.check:
        convert(ROOT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        convert(Path(tmp))
        differ = [str(p) for p in OUTPUTS.values() if not filecmp.cmp(Path(tmp) / p, ROOT / p, shallow=False)]
    print("differ: " + ", ".join(differ) if differ else "the committed files match the conversion")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
