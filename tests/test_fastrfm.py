"""The sort-based RFM pass (clvforecast._fastrfm) gives the SQL's table, attrs, warnings and errors exactly.

Every comparison runs the same call twice, once with the numpy pass and once with it switched off
(``rfm._FAST = False``, the DuckDB SQL that the Spark tests also compare against); the hand-derived tables in
test_rfm.py and test_ledger.py run through the numpy pass for DataFrames.
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import clvforecast as cf
from clvforecast import _fastrfm
from clvforecast import rfm as rfm_module
from clvforecast.exceptions import DataValidationError
from clvforecast.io import as_log


def _call(fn: Any, fast: bool, *args: Any, **kwargs: Any) -> tuple[Any, list[str]]:
    """(result or the error's type and text, the warnings' texts) with the numpy pass on or off."""
    saved = rfm_module._FAST
    rfm_module._FAST = fast
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                out: Any = fn(*args, **kwargs)
            except (DataValidationError, ValueError) as exc:
                out = (type(exc).__name__, str(exc))
    finally:
        rfm_module._FAST = saved
    return out, [f"{w.category.__name__}: {w.message}" for w in caught]


def _same(fn: Any, *args: Any, **kwargs: Any) -> Any:
    fast, fast_warnings = _call(fn, True, *args, **kwargs)
    sql, sql_warnings = _call(fn, False, *args, **kwargs)
    if isinstance(sql, pd.DataFrame):
        assert isinstance(fast, pd.DataFrame), fast
        pd.testing.assert_frame_equal(fast, sql, check_exact=True)
        assert fast.attrs == sql.attrs
    else:
        assert fast == sql
    assert fast_warnings == sql_warnings
    return fast


def _used(source: Any, **options: Any) -> bool:
    """Whether the numpy pass takes this log (else the SQL runs)."""
    log = as_log(source, **options)
    return _fastrfm.summarise(log, cal=None, obs=None, unit_code="D", holdout=False, stacklevel=2) is not None


def _log(seed: int, n_customers: int, n_rows: int, *, days: int = 400, gap_ids: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, n_customers, n_rows) * (7 if gap_ids else 1) + 1000
    start = np.datetime64("2020-01-01T00:00:00", "s")
    when = start + rng.integers(0, days * 86_400, n_rows).astype("timedelta64[s]")
    cents = np.where(rng.random(n_rows) < 0.02, 0, rng.integers(1, 40_000, n_rows))
    big = rng.random(n_rows) < 0.01  # a few large lines: extreme purchase days
    cents = np.where(big, rng.integers(500_000, 9_000_000, n_rows), cents)
    return pd.DataFrame({"customer_id": ids, "date": when.astype("datetime64[us]"), "amount": cents / 100})


DATES = st.dates(min_value=dt.date(2019, 11, 1), max_value=dt.date(2021, 6, 1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n_customers=st.integers(1, 60),
    n_rows=st.integers(1, 400),
    days=st.integers(1, 500),
    cal=DATES,
    obs=st.one_of(st.none(), DATES),
    unit=st.sampled_from(["D", "W", "M"]),
)
def test_random_logs_and_cutoffs_give_the_sql_table(
    seed: int, n_customers: int, n_rows: int, days: int, cal: dt.date, obs: dt.date | None, unit: str
) -> None:
    df = _log(seed, n_customers, n_rows, days=days)
    assert _used(df)
    _same(cf.rfm_summary, df, observation_end=obs, time_unit=unit)
    _same(cf.rfm_summary, df, observation_end=cal, time_unit=unit)
    if obs is not None:
        _same(cf.calibration_holdout, df, calibration_end=cal, observation_end=obs, time_unit=unit)
    for frequency_only in (True,):  # amount=None: no money columns
        if frequency_only:
            _same(cf.rfm_summary, df, observation_end=obs, amount=None)


def test_cdnow_tables_are_the_sql_tables() -> None:
    cdnow = cf.load_cdnow()
    assert _used(cdnow)
    _same(cf.rfm_summary, cdnow, observation_end="1997-09-30", time_unit="W")
    _same(cf.rfm_summary, cdnow)
    _same(cf.calibration_holdout, cdnow, calibration_end="1997-09-30", observation_end="1998-06-30", time_unit="W")
    _same(cf.rfm_summary, cdnow, observation_end="1999-12-31")  # long after the last transaction: a warning
    _same(cf.rfm_summary, cdnow, observation_end="1996-01-01")  # before the first: the error


def test_extreme_days_listed_and_counted_as_in_sql() -> None:
    df = _log(7, 300, 5_000)
    df.loc[[10, 20], "amount"] = [99_999.99, 54_321.00]  # two very large lines
    table = _same(cf.calibration_holdout, df, calibration_end="2020-08-31", observation_end="2021-01-31")
    assert len(table.attrs["extreme_orders"]) >= 2
    assert any(e["key"] == "extreme_orders" for e in table.attrs["ledger"]["entries"])


def test_many_buckets_and_pieces_give_the_same_table(monkeypatch: pytest.MonkeyPatch) -> None:
    df = _log(11, 500, 20_000)
    one = _same(cf.calibration_holdout, df, calibration_end="2020-09-30", observation_end="2021-01-31")
    monkeypatch.setattr(_fastrfm, "_PIECE", 1_000)  # 20 pieces, packed on the worker threads
    for rows in (12_000, 1_500):  # 2 buckets of ids (split by one comparison), 14 (by a counting sort)
        monkeypatch.setattr(_fastrfm, "BUCKET_ROWS", rows)
        many = _same(cf.calibration_holdout, df, calibration_end="2020-09-30", observation_end="2021-01-31")
        pd.testing.assert_frame_equal(one, many, check_exact=True)
        assert one.attrs == many.attrs


def test_parquet_file_and_folder_in_row_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    df = _log(3, 200, 6_000)
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, tmp_path / "log.parquet", row_group_size=700)
    (tmp_path / "folder").mkdir()
    pq.write_table(table.slice(0, 2_500), tmp_path / "folder" / "a.parquet", row_group_size=1_000)
    pq.write_table(table.slice(2_500), tmp_path / "folder" / "b.parquet", row_group_size=1_000)
    monkeypatch.setattr(_fastrfm, "_BATCH", 300)  # batches inside a row group
    expected = _same(cf.rfm_summary, df, observation_end="2020-12-31")
    for source in (tmp_path / "log.parquet", tmp_path / "folder"):
        assert _used(source)
        got = _same(cf.rfm_summary, source, observation_end="2020-12-31")
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
    # dates as Parquet DATE values
    days = pa.Table.from_pandas(df.assign(date=df["date"].dt.date), preserve_index=False)
    pq.write_table(days, tmp_path / "days.parquet")
    assert _used(tmp_path / "days.parquet")
    got = _same(cf.rfm_summary, tmp_path / "days.parquet", observation_end="2020-12-31")
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_a_parquet_file_without_statistics_goes_to_the_sql(tmp_path: Path) -> None:
    df = _log(5, 50, 500)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "x.parquet", write_statistics=False)
    assert not _used(tmp_path / "x.parquet")
    _same(cf.rfm_summary, tmp_path / "x.parquet")


@pytest.mark.parametrize(
    "change, options",
    [
        (lambda d: d.assign(amount=d["amount"].where(d.index != 3, -5.0)), {"returns": "drop"}),  # a return
        (lambda d: d.assign(amount=d["amount"].where(d.index != 3, np.nan)), {"on_invalid": "drop"}),
        (lambda d: d.assign(amount=d["amount"] + 0.001), {}),  # not whole cents
        (lambda d: d.assign(amount=d["amount"].where(d.index != 3, 150_000.0)), {}),  # a line of 150,000
        (lambda d: d.assign(customer_id="C" + d["customer_id"].astype(str)), {}),  # text ids
        (lambda d: d.assign(customer_id=d["customer_id"] * 10**9), {}),  # ids too sparse for the key
        (lambda d: d.assign(date=d["date"].dt.strftime("%Y-%m-%d")), {}),  # text dates
        (lambda d: d.assign(date=d["date"].where(d.index != 3, pd.Timestamp("2031-01-01"))), {}),  # future
        (lambda d: d.assign(date=d["date"].where(d.index != 3, pd.NaT)), {"on_invalid": "drop"}),
        (lambda d: d, {"extreme": "cap"}),
        (lambda d: d, {"duplicates": "drop"}),
        (lambda d: d.assign(amount=d["amount"].where(d.index != 3, 0.0)), {"zero_amounts": "drop"}),
    ],
)
def test_logs_that_need_cleaning_go_to_the_sql(change: Any, options: dict[str, Any]) -> None:
    df = change(_log(9, 40, 400))
    assert not _used(df, **options)
    _same(cf.rfm_summary, df, **options)


def test_a_date_long_before_the_rest_widens_the_key() -> None:
    df = _log(9, 40, 400)
    df.loc[3, "date"] = pd.Timestamp("1981-01-01")  # 39 years before: more bits for the day
    assert _used(df)
    _same(cf.rfm_summary, df)
    _same(cf.calibration_holdout, df, calibration_end="2020-06-30", observation_end="2021-01-31")


def test_a_memory_limit_sets_the_buckets_or_leaves_the_table_to_the_sql(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLVFORECAST_MEMORY_LIMIT", "2GB")
    # 2e9 bytes: 8 bytes for each of 100M rows and 44 for each of 10M ids kept, the rest (less 64 MiB) for the
    # threads at 48 bytes a row
    expected = int((2e9 - 8 * 100_000_000 - 44 * 10_000_000 - 64 * 2**20) / (48 * _fastrfm._threads()))
    assert _fastrfm._bucket_rows(100_000_000, 10_000_000) == min(expected, _fastrfm.BUCKET_ROWS)
    monkeypatch.setenv("CLVFORECAST_MEMORY_LIMIT", "100MB")
    with pytest.raises(_fastrfm._Unsupported):
        _fastrfm._bucket_rows(100_000_000, 10_000_000)
    assert _fastrfm._bucket_rows(1_000, 100) == _fastrfm.BUCKET_ROWS  # a small log fits in a small limit
    df = _log(2, 30, 300)
    assert _used(df)
    _same(cf.rfm_summary, df)


# Found by an independent review: each gave a different result on the two paths.

TINY = pd.DataFrame({"customer_id": [1, 1, 2], "date": pd.to_datetime(["2020-01-01", "2020-02-01", "2020-01-05"]),
                     "amount": [1.0, 2.0, 3.0]})


def test_an_invalid_date_format_is_refused_as_by_the_sql() -> None:
    assert not _used(TINY, date_format="abc")
    out = _same(cf.rfm_summary, TINY, date_format="abc")
    assert out[0] == "ValueError"


def test_a_folder_is_read_file_for_file_as_duckdb_reads_it(tmp_path: Path) -> None:
    table = pa.Table.from_pandas(TINY, preserve_index=False)
    pq.write_table(table, tmp_path / "a.parquet")
    pq.write_table(table.set_column(0, "customer_id", pa.array([7, 7, 8])), tmp_path / "b.pq")  # not in its glob
    assert not _used(tmp_path)
    _same(cf.rfm_summary, tmp_path, observation_end="2020-03-01")
    (tmp_path / "b.pq").unlink()
    pq.write_table(table, tmp_path / "_tmp.parquet")  # DuckDB's glob reads it; the folder listing skips it
    assert not _used(tmp_path)
    _same(cf.rfm_summary, tmp_path, observation_end="2020-03-01")


def test_hive_partition_folders_are_left_to_the_sql(tmp_path: Path) -> None:
    (tmp_path / "date=2019-01-01").mkdir()
    pq.write_table(pa.Table.from_pandas(TINY, preserve_index=False), tmp_path / "date=2019-01-01" / "a.parquet")
    assert not _used(tmp_path)
    _same(cf.rfm_summary, tmp_path, observation_end="2020-03-01")


def test_the_new_customers_holdout_spend_is_summed_exactly() -> None:
    # three customers new in the holdout with spends of millions: the SQL summed their DOUBLE spends again
    # through DECIMAL casts, which are not exact above 1e5 (14,703,123.530000001 instead of 14,703,123.53)
    rows = [(1, dt.date(2020, 1, 5), 10.0), (1, dt.date(2020, 3, 5), 20.0), (1, dt.date(2020, 7, 5), 5.0)]
    for customer, cents in zip((2, 3, 4), (686_234_173, 386_369_596, 397_708_584), strict=True):
        day = 0
        while cents:
            part = min(cents, 9_999_999)
            rows.append((customer, dt.date(2020, 7, 1) + dt.timedelta(days=day % 60), part / 100))
            cents -= part
            day += 1
    df = pd.DataFrame(rows, columns=["customer_id", "date", "amount"]).astype({"date": "datetime64[us]"})
    table = _same(cf.calibration_holdout, df, calibration_end="2020-06-30", observation_end="2020-08-31")
    late = next(e for e in table.attrs["ledger"]["entries"] if e["key"] == "new_in_holdout")
    assert late["value"] == (686_234_173 + 386_369_596 + 397_708_584) / 100  # 14,703,123.53, one rounding


def test_dates_outside_pythons_years_are_left_to_the_sql() -> None:
    df = TINY.astype({"date": "datetime64[s]"})
    df.loc[2, "date"] = np.datetime64("-0100-01-01", "s")
    assert not _used(df)
