"""load_cdnow: the bundled CDNOW logs checked against the original files, from a checkout and a wheel."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import clvforecast as cf
from clvforecast.datasets import cdnow_path

ROOT = Path(__file__).resolve().parents[1]
ORIGINALS = Path(importlib.util.find_spec("lifetimes").origin).parent / "datasets"


@pytest.mark.parametrize(
    ("kind", "rows", "customers", "zero_dollar"),
    [("sample", 6_919, 2_357, 8), ("master", 69_659, 23_570, 80)],
)
def test_load_cdnow_sizes_types_and_period(kind: str, rows: int, customers: int, zero_dollar: int) -> None:
    tx = cf.load_cdnow(kind)  # type: ignore[arg-type]
    assert len(tx) == rows and tx["customer_id"].nunique() == customers
    assert list(tx.columns) == ["customer_id", "date", "quantity", "amount"]
    assert str(tx["customer_id"].dtype) == "int64" and str(tx["quantity"].dtype) == "int64"
    assert pd.api.types.is_datetime64_dtype(tx["date"]) and tx["amount"].dtype == np.float64
    assert (tx["date"] == tx["date"].dt.normalize()).all()
    assert (tx["date"].min(), tx["date"].max()) == (pd.Timestamp("1997-01-01"), pd.Timestamp("1998-06-30"))
    assert sorted(tx["customer_id"].unique()) == list(range(1, customers + 1))
    assert int((tx["amount"] == 0).sum()) == zero_dollar and (tx["amount"] >= 0).all()
    # All customers made their first purchase in the first quarter of 1997.
    assert tx.groupby("customer_id")["date"].min().max() <= pd.Timestamp("1997-03-31")


def _original(kind: str) -> pd.DataFrame:
    if kind == "sample":  # no header; the second column is the sequential id of the published summary
        names = ["original_id", "customer_id", "date", "quantity", "amount"]
        return pd.read_csv(ORIGINALS / "CDNOW_sample.txt", sep=r"\s+", header=None, names=names)
    names = ["customer_id", "date", "quantity", "amount"]
    return pd.read_csv(ORIGINALS / "CDNOW_master.txt", sep=r"\s+", header=0, names=names)


@pytest.mark.parametrize("kind", ["sample", "master"])
def test_bundled_files_hold_the_original_rows(kind: str) -> None:
    ours, original = cf.load_cdnow(kind), _original(kind)  # type: ignore[arg-type]
    assert ours["customer_id"].tolist() == original["customer_id"].tolist()
    assert ours["date"].dt.strftime("%Y%m%d").astype(int).tolist() == original["date"].tolist()
    assert ours["quantity"].tolist() == original["quantity"].tolist()
    np.testing.assert_array_equal(ours["amount"].to_numpy(), original["amount"].to_numpy())


def test_sample_customers_are_master_customers_renumbered() -> None:
    sample, master = _original("sample"), cf.load_cdnow("master")
    # One sequential id per original (master) id, numbered 1..2357 in the order of the file.
    pairs = sample[["original_id", "customer_id"]].drop_duplicates()
    assert pairs["original_id"].is_unique and pairs["customer_id"].tolist() == list(range(1, 2358))
    # The sample holds all the transactions of its customers in the master file.
    from_master = master[master["customer_id"].isin(pairs["original_id"])]
    assert len(from_master) == len(sample)
    np.testing.assert_allclose(from_master["amount"].sum(), sample["amount"].sum(), rtol=1e-12)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind must be 'sample' or 'master'; got 'full'"):
        cf.load_cdnow("full")  # type: ignore[arg-type]


def test_checkout_reads_the_repository_data_folder() -> None:
    assert cdnow_path("sample") == ROOT / "data" / "cdnow_sample.csv"


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Build the wheel from this checkout (no network: the installed hatchling, no deps) and install it."""
    wheels, target = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("site")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = subprocess.run(
        [*pip, "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-w", str(wheels)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("clvforecast-*.whl")
    install = subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(target), str(wheel)], capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    return wheel, target


def test_wheel_carries_the_cdnow_files(installed_wheel: tuple[Path, Path]) -> None:
    wheel, _ = installed_wheel
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert {"clvforecast/data/cdnow_sample.csv", "clvforecast/data/cdnow_master.csv"} <= names
        assert "clvforecast/report/templates/report.html.j2" in names  # the report template is package data too
        assert (
            zf.read("clvforecast/data/cdnow_sample.csv") == (ROOT / "data" / "cdnow_sample.csv").read_bytes()
        )


def test_load_cdnow_from_an_installed_wheel(installed_wheel: tuple[Path, Path], tmp_path: Path) -> None:
    _, target = installed_wheel
    code = (
        "import json, clvforecast as cf\n"
        "s, m = cf.load_cdnow('sample'), cf.load_cdnow('master')\n"
        "print(json.dumps({'module': cf.__file__, 'path': str(cf.datasets.cdnow_path('sample')),\n"
        "    'sample': [len(s), int(s.customer_id.nunique())],\n"
        "    'master': [len(m), int(m.customer_id.nunique())], 'date': str(s.date.dtype)}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(target)}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["module"].startswith(str(target))  # the installed copy, not this checkout
    assert got["path"] == str(target / "clvforecast" / "data" / "cdnow_sample.csv")
    assert got["sample"] == [6_919, 2_357] and got["master"] == [69_659, 23_570]
    assert got["date"].startswith("datetime64")
