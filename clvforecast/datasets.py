"""Bundled data sets.

``load_cdnow`` reads the CDNOW CD-retailer transaction logs (Fader & Hardie) shipped with clvforecast, as tidy
transactions ``customer_id, date, quantity, amount``. See ``data/README.md`` for the source and conversion.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import pandas as pd

_FILES = {"sample": "cdnow_sample.csv", "master": "cdnow_master.csv"}


def dataset_path(name: str) -> Path:
    """Path of a bundled data file: package data in an installed wheel, ``data/`` in a source checkout."""
    packaged = resources.files("clvforecast") / "data" / name
    if packaged.is_file():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[1] / "data" / name
    if checkout.is_file():
        return checkout
    raise FileNotFoundError(f"bundled data file {name!r} is missing from this installation of clvforecast")


def cdnow_path(kind: Literal["sample", "master"] = "sample") -> Path:
    """Path of the bundled CDNOW CSV (``kind="sample"``: 2,357 customers; ``"master"``: 23,570)."""
    if kind not in _FILES:
        raise ValueError(f"kind must be 'sample' or 'master'; got {kind!r}")
    return dataset_path(_FILES[kind])


def load_cdnow(kind: Literal["sample", "master"] = "sample") -> pd.DataFrame:
    """CDNOW transactions of the customers who first bought in Q1 1997, 1997-01-01 to 1998-06-30.

    ``kind="sample"``: the 1/10 sample of Fader, Hardie & Lee (2005): 2,357 customers, 6,919 transactions;
    ``customer_id`` is the sample's sequential id 1..2357, so ids match the published summary.
    ``kind="master"``: all 23,570 customers, 69,659 transactions.

    Returns a DataFrame with ``customer_id`` (int), ``date`` (datetime64), ``quantity`` (CDs) and ``amount``
    (US dollars).
    """
    df = pd.read_csv(cdnow_path(kind), dtype={"customer_id": "int64", "quantity": "int64", "amount": "float64"})
    df["date"] = pd.to_datetime(df["date"], format="%Y-%m-%d")
    return df
