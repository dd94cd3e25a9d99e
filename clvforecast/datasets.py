"""Bundled data sets.

:func:`load_cdnow` reads the CDNOW CD-retailer transaction logs (Fader & Hardie) shipped with clvforecast, as
tidy transactions ``customer_id, date, quantity, amount``. In an installed wheel the files are package data
(``clvforecast/data/``); in a source checkout they are read from the repository's ``data/`` folder. See
``data/README.md`` for their source and conversion.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import pandas as pd

__all__ = ["cdnow_path", "dataset_path", "load_cdnow", "load_online_retail", "online_retail_path"]

_FILES = {"sample": "cdnow_sample.csv", "master": "cdnow_master.csv"}
_ONLINE_RETAIL = "online_retail_II_2009_2010.parquet"
_DTYPES = {"customer_id": "int64", "quantity": "int64", "amount": "float64"}


def dataset_path(name: str) -> Path:
    """Path of a bundled data file: package data in an installed wheel, ``data/`` in a source checkout."""
    packaged = resources.files("clvforecast").joinpath("data", name)
    if packaged.is_file():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[1] / "data" / name
    if checkout.is_file():
        return checkout
    raise FileNotFoundError(
        f"bundled data file {name!r} is missing from this installation of clvforecast "
        f"(looked in {packaged} and {checkout}); reinstall the package"
    )


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

    Returns a DataFrame with ``customer_id`` (int64), ``date`` (datetime64, day resolution), ``quantity``
    (int64, CDs bought) and ``amount`` (float64, US dollars; 8 rows in the sample and 80 in the master file
    are zero-dollar purchases, which the published summary counts as transactions), in the original order.

    Examples
    --------
    >>> import clvforecast as cf
    >>> tx = cf.load_cdnow()
    >>> len(tx), tx["customer_id"].nunique()
    (6919, 2357)
    """
    df = pd.read_csv(cdnow_path(kind), dtype=_DTYPES)
    df["date"] = pd.to_datetime(df["date"], format="%Y-%m-%d")
    return df


def online_retail_path() -> Path:
    """Path of the bundled Online Retail II Parquet file (UCI dataset 502, sheet "Year 2009-2010")."""
    return dataset_path(_ONLINE_RETAIL)


def load_online_retail() -> pd.DataFrame:
    """A UK online gift shop's invoice lines, 2009-12-01 to 2010-12-09, exactly as published (UCI Machine
    Learning Repository dataset 502, "Online Retail II", Chen 2012, CC BY 4.0).

    Returns the raw lines: ``Invoice`` (a leading ``C`` marks a cancellation), ``StockCode``, ``Description``,
    ``Quantity`` (negative on cancellations), ``InvoiceDate`` (text, UK local time), ``Price`` (GBP per unit),
    ``Customer ID`` (float; blank on 107,927 rows) and ``Country``: 525,461 rows. Read them with
    :func:`~clvforecast.read_transactions` (``quantity="Quantity", price="Price", item="StockCode",
    invoice="Invoice", returns="net"``; see data/README.md).

    Examples
    --------
    >>> import clvforecast as cf
    >>> len(cf.load_online_retail())
    525461
    """
    return pd.read_parquet(online_retail_path())
