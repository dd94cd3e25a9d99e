"""read_transactions: each validation rule and its message, drop accounting, dates, source equivalence."""

from __future__ import annotations

import datetime as dt
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import clvforecast as cf
from clvforecast.exceptions import DataQualityWarning, DataValidationError
from clvforecast.io import REASONS, open_transactions


def _log(**overrides: list) -> pd.DataFrame:
    """A small valid log (three customers, five rows); columns can be overridden."""
    data = {
        "customer_id": [1, 1, 2, 3, 3],
        "date": ["2024-01-05", "2024-02-10", "2024-01-20", "2024-03-01", "2024-03-15"],
        "amount": [10.0, 20.0, 5.5, 7.25, 8.0],
    }
    data.update(overrides)
    return pd.DataFrame(data)


def _write(df: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)
    return path


def _as(kind: str, df: pd.DataFrame, tmp_path: Path) -> pd.DataFrame | Path:
    return df if kind == "dataframe" else _write(df, tmp_path / f"log.{kind}")


SOURCES = ["dataframe", "csv", "parquet"]


# --- valid input --------------------------------------------------------------------------------------------


def test_valid_log_is_returned_tidy_in_source_order() -> None:
    out = cf.read_transactions(_log())
    assert list(out.columns) == ["customer_id", "date", "amount"]
    assert out["customer_id"].tolist() == [1, 1, 2, 3, 3]
    assert out["date"].dt.strftime("%Y-%m-%d").tolist() == [
        "2024-01-05", "2024-02-10", "2024-01-20", "2024-03-01", "2024-03-15",
    ]  # fmt: skip
    assert out["amount"].tolist() == [10.0, 20.0, 5.5, 7.25, 8.0]
    assert str(out["customer_id"].dtype) == "int64"
    assert pd.api.types.is_datetime64_dtype(out["date"])
    assert out.attrs == {
        "n_rows_read": 5,
        "dropped": {},
        "ledger": {"rows_read": 5, "rows_used": 5, "entries": [], "identity_holds": True},
    }


def test_input_dataframe_is_not_modified() -> None:
    df = _log(
        customer_id=[1, None, 2, 3, 3], date=["2024-01-05", "x", "2024-01-20", "2024-03-01 10:00", "bad"]
    )
    before = df.copy(deep=True)
    with pytest.warns(DataQualityWarning):
        cf.read_transactions(df, on_invalid="drop")
    pd.testing.assert_frame_equal(df, before)


def test_custom_column_names_quantity_and_frequency_only() -> None:
    df = pd.DataFrame(
        {"Cust": ["a", "b"], "When": ["2024-01-01", "2024-01-02"], "Qty": [2, 1], "Paid": [3.0, 4.0]}
    )
    out = cf.read_transactions(df, customer_id="Cust", date="When", amount="Paid", quantity="Qty")
    assert list(out.columns) == ["customer_id", "date", "amount", "quantity"]
    assert out["quantity"].tolist() == [2, 1]
    freq_only = cf.read_transactions(df, customer_id="Cust", date="When", amount=None)
    assert list(freq_only.columns) == ["customer_id", "date"]


def test_source_column_names_that_equal_internal_names_do_not_clash() -> None:
    # Source columns called like the reader's internal names, mapped to *other* fields.
    df = pd.DataFrame(
        {
            "reason": [7, 7, 8],
            "customer_id": ["2024-01-01", "2024-01-03", "2024-01-02"],  # holds the dates
            "date_raw": [1.5, 2.5, 3.5],  # holds the amounts
            "amount": ["x", "y", "z"],  # unrelated
            "date": [None, None, None],  # unrelated
        }
    )
    out = cf.read_transactions(df, customer_id="reason", date="customer_id", amount="date_raw")
    assert out["customer_id"].tolist() == [7, 7, 8]
    assert out["date"].dt.day.tolist() == [1, 3, 2]
    assert out["amount"].tolist() == [1.5, 2.5, 3.5]
    rfm = cf.rfm_summary(df, customer_id="reason", date="customer_id", amount="date_raw")
    assert rfm.loc[7, "frequency"] == 1 and rfm.loc[7, "monetary_value"] == 2.5


# --- missing columns ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SOURCES)
def test_missing_column_lists_the_existing_columns(kind: str, tmp_path: Path) -> None:
    source = _as(kind, _log().rename(columns={"customer_id": "CustomerID"}), tmp_path)
    with pytest.raises(DataValidationError) as err:
        cf.read_transactions(source)
    msg = str(err.value)
    assert "column 'customer_id' not found" in msg
    assert "the source has columns 'CustomerID', 'date', 'amount'" in msg
    assert "customer_id='CustomerID'" in msg  # the closest existing name is offered as the fix


def test_several_missing_columns_are_all_named() -> None:
    with pytest.raises(DataValidationError, match=r"column 'cust' not found \(also missing: 'day'\)") as err:
        cf.read_transactions(_log(), customer_id="cust", date="day")
    assert "'customer_id', 'date', 'amount'" in str(err.value)


# --- unparseable dates --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SOURCES)
def test_unparseable_dates_give_count_examples_and_date_format_hint(kind: str, tmp_path: Path) -> None:
    df = _log(date=["2024-01-05", "31/01/2024", "2024-13-01", "2024-03-01", "yesterday"])
    with pytest.raises(DataValidationError) as err:
        cf.read_transactions(_as(kind, df, tmp_path))
    msg = str(err.value)
    assert msg.startswith("column 'date': 3 of 5 rows are missing or could not be parsed as dates")
    assert "e.g. '31/01/2024', '2024-13-01', 'yesterday'" in msg
    assert "date_format" in msg and "on_invalid='drop'" in msg


def test_missing_dates_are_unparseable() -> None:
    df = _log(date=["2024-01-05", None, "2024-01-20", "2024-03-01", "2024-03-15"])
    with pytest.raises(DataValidationError, match=r"1 of 5 rows .* e\.g\. a missing value"):
        cf.read_transactions(df)


def test_dates_not_matching_the_given_date_format_name_the_format() -> None:
    df = _log(date=["05/01/2024", "10/02/2024", "2024-01-20", "01/03/2024", "15/03/2024"])
    with pytest.raises(DataValidationError) as err:
        cf.read_transactions(df, date_format="%d/%m/%Y")
    assert str(err.value).startswith(
        "column 'date': 1 of 5 rows are missing or do not match date_format='%d/%m/%Y', e.g. '2024-01-20'"
    )


@pytest.mark.parametrize("kind", SOURCES)
def test_date_format_parses_day_first_and_compact_dates(kind: str, tmp_path: Path) -> None:
    df = _log(date=["05/01/2024", "10/02/2024", "20/01/2024", "01/03/2024", "15/03/2024"])
    out = cf.read_transactions(_as(kind, df, tmp_path), date_format="%d/%m/%Y")
    assert out["date"].tolist() == [pd.Timestamp(d) for d in _log()["date"]]
    compact = _log(date=[20240105, 20240210, 20240120, 20240301, 20240315])  # integers, as in CDNOW's files
    out = cf.read_transactions(_as(kind, compact, tmp_path), date_format="%Y%m%d")
    assert out["date"].tolist() == [pd.Timestamp(d) for d in _log()["date"]]


@pytest.mark.parametrize("kind", SOURCES)
def test_timestamps_with_times_collapse_to_the_calendar_day(kind: str, tmp_path: Path) -> None:
    stamps = [
        "2024-01-05 00:00:01",
        "2024-01-05 23:59:59",
        "2024-01-06 12:30:00",
        "2024-01-06T08:00:00",
        "2024-01-07",
    ]
    df = _log(date=pd.to_datetime(pd.Series(stamps), format="ISO8601"))
    out = cf.read_transactions(_as(kind, df, tmp_path))
    assert out["date"].dt.strftime("%Y-%m-%d %H:%M").tolist() == [
        "2024-01-05 00:00", "2024-01-05 00:00", "2024-01-06 00:00", "2024-01-06 00:00", "2024-01-07 00:00",
    ]  # fmt: skip
    text = cf.read_transactions(_as(kind, _log(date=stamps), tmp_path))  # the same as text
    pd.testing.assert_series_equal(text["date"], out["date"])


@pytest.mark.parametrize("kind", SOURCES)
def test_timezone_aware_timestamps_keep_their_local_day(kind: str, tmp_path: Path) -> None:
    # 23:30 in New York on 01-05 is 04:30 UTC on 01-06: every source must give the local day, 01-05.
    local = pd.Series(pd.to_datetime(["2024-01-05 23:30", "2024-01-06 00:30"])).dt.tz_localize(
        "America/New_York"
    )
    out = cf.read_transactions(_as(kind, _log(customer_id=[1, 1], date=local, amount=[1.0, 2.0]), tmp_path))
    assert out["date"].tolist() == [pd.Timestamp("2024-01-05"), pd.Timestamp("2024-01-06")]
    text = cf.read_transactions(_log(customer_id=[1], date=["2024-01-05T23:30:00-05:00"], amount=[1.0]))
    assert text["date"].tolist() == [pd.Timestamp("2024-01-05")]


def test_parquet_utc_instants_without_a_zone_name_give_their_utc_day(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # 2024-01-06 04:30 UTC as a bare instant (as Spark writes it): the file does not say where it happened.
    stamps = pa.array([1704515400000000], type=pa.timestamp("us", tz="UTC"))
    table = pa.table({"customer_id": [1], "date": stamps, "amount": [1.0]})
    pq.write_table(table, tmp_path / "utc.parquet")
    assert cf.read_transactions(tmp_path / "utc.parquet")["date"].tolist() == [pd.Timestamp("2024-01-06")]


def test_python_date_objects_are_understood() -> None:
    out = cf.read_transactions(
        _log(customer_id=[1, 2], date=[dt.date(2024, 1, 5), dt.date(2024, 2, 1)], amount=[1, 2])
    )
    assert out["date"].tolist() == [pd.Timestamp("2024-01-05"), pd.Timestamp("2024-02-01")]


# --- customer ids -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SOURCES)
def test_null_customer_ids_are_counted_with_the_rows_dates(kind: str, tmp_path: Path) -> None:
    df = _log(customer_id=pd.array([1, None, 2, None, 3], dtype="Int64"))
    with pytest.raises(DataValidationError) as err:
        cf.read_transactions(_as(kind, df, tmp_path))
    msg = str(err.value)
    assert msg.startswith("column 'customer_id': 2 of 5 rows have no customer id (the rows dated ")
    assert "2024-02-10" in msg and "2024-03-01" in msg and "on_invalid='drop'" in msg


@pytest.mark.parametrize("kind", SOURCES)
def test_integer_ids_with_gaps_stay_integers_after_dropping(kind: str, tmp_path: Path) -> None:
    df = _log(customer_id=[1.0, np.nan, 2.0, 3.0, 3.0])  # how pandas reads integer ids with a gap
    if (
        kind == "csv"
    ):  # a CSV file holds them as '1', '', '2', ... (a float column would be written '1.0': text)
        df["customer_id"] = df["customer_id"].astype("Int64")
    with pytest.warns(DataQualityWarning):
        out = cf.read_transactions(_as(kind, df, tmp_path), on_invalid="drop")
    assert str(out["customer_id"].dtype) == "int64" and out["customer_id"].tolist() == [1, 2, 3, 3]


def test_csv_ids_with_leading_zeros_are_text_and_distinct(tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("customer_id,date,amount\n017,2024-01-01,1\n17,2024-01-02,2\n", encoding="utf-8")
    out = cf.read_transactions(path)
    assert out["customer_id"].tolist() == ["017", "17"]


def test_csv_ids_that_turn_to_text_after_many_numeric_rows_are_read_as_text(tmp_path: Path) -> None:
    # DuckDB's type sniffer samples the first rows; an id column numeric there and text later must not fail.
    rows = [f"{i},2024-01-01,1.0" for i in range(30_000)] + ["A12,2024-01-02,2.0"]
    path = tmp_path / "late_text.csv"
    path.write_text("customer_id,date,amount\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = cf.read_transactions(path)
    assert len(out) == 30_001 and out["customer_id"].iloc[-1] == "A12" and out["customer_id"].iloc[0] == "0"


def test_ids_mixing_numbers_and_text_in_a_dataframe_are_text() -> None:
    df = _log(customer_id=pd.Series([1, 1, "b", "c", "c"], dtype=object))
    out = cf.read_transactions(df)
    assert out["customer_id"].tolist() == ["1", "1", "b", "c", "c"]


# --- amounts ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SOURCES)
def test_non_numeric_amounts_are_counted_with_examples(kind: str, tmp_path: Path) -> None:
    df = _log(amount=["10", "$20.00", "5.5", "1,200", None])
    with pytest.raises(DataValidationError) as err:
        cf.read_transactions(_as(kind, df, tmp_path))
    msg = str(err.value)
    assert msg.startswith("column 'amount': 3 of 5 rows are missing or not finite numbers")
    assert "e.g. '$20.00', '1,200', a missing value" in msg
    assert "currency symbols" in msg and "on_invalid='drop'" in msg


def test_nan_infinite_and_absurd_amounts_are_not_numbers() -> None:
    df = _log(amount=[np.nan, np.inf, 1e16, 5.0, 6.0])  # NaN is also missing in pandas
    with pytest.raises(DataValidationError, match=r"column 'amount': 3 of 5 rows are missing or not finite"):
        cf.read_transactions(df)


@pytest.mark.parametrize("kind", SOURCES)
def test_negative_amounts_are_refused_with_the_fix(kind: str, tmp_path: Path) -> None:
    df = _log(amount=[10.0, -20.0, 5.5, -1.0, 8.0])
    with pytest.raises(DataValidationError) as err:
        cf.read_transactions(_as(kind, df, tmp_path))
    msg = str(err.value)
    assert msg.startswith("column 'amount': 2 of 5 rows have negative amounts (returns or refunds?), e.g. ")
    assert "-20.0" in msg and "returns='net'" in msg and "returns='drop'" in msg


def test_negative_amounts_policy_is_separate_from_on_invalid() -> None:
    df = _log(amount=[10.0, -20.0, 5.5, -1.0, 8.0])
    with pytest.warns(DataQualityWarning, match="dropped 2 of 5 rows: 2 negative amount"):
        out = cf.read_transactions(df, negative_amounts="drop")  # on_invalid stays "raise"
    assert out["amount"].tolist() == [10.0, 5.5, 8.0] and out.attrs["dropped"] == {"negative_amount": 2}
    with pytest.raises(DataValidationError, match="negative amounts"):
        cf.read_transactions(df, on_invalid="drop", negative_amounts="raise")


def test_zero_amounts_are_kept_by_default_and_can_be_dropped_or_refused() -> None:
    df = _log(amount=[10.0, 0.0, 5.5, 0.0, 8.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # keeping them is silent
        kept = cf.read_transactions(df)
    assert kept["amount"].tolist() == [10.0, 0.0, 5.5, 0.0, 8.0] and kept.attrs["dropped"] == {}
    with pytest.warns(DataQualityWarning, match="dropped 2 of 5 rows: 2 zero amount"):
        dropped = cf.read_transactions(df, zero_amounts="drop")
    assert dropped["amount"].tolist() == [10.0, 5.5, 8.0] and dropped.attrs["dropped"] == {"zero_amount": 2}
    with pytest.raises(DataValidationError) as err:
        cf.read_transactions(df, zero_amounts="raise")
    assert str(err.value).startswith("column 'amount': 2 of 5 rows have zero amounts, e.g. 0.0, 0.0;")
    assert "zero_amounts='keep'" in str(err.value)


# --- empty input --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SOURCES)
def test_empty_input_is_refused(kind: str, tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"the transaction log is empty \(0 rows\)"):
        cf.read_transactions(_as(kind, _log().iloc[:0], tmp_path))


def test_empty_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(DataValidationError, match=r"is empty \(0 bytes\)"):
        cf.read_transactions(tmp_path / "empty.csv")


# --- on_invalid="drop" --------------------------------------------------------------------------------------


def _dirty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["a", None, "b", "c", "d", "e", "f", None],
            "date": [
                "2024-01-01",
                "2024-01-02",
                "not a date",
                "2024-01-04",
                "2024-01-05",
                "2024-01-06",
                "",
                "x",
            ],
            "amount": ["1.0", "2.0", "3.0", "four", "-5", "0", "7", "8"],
        }
    )


@pytest.mark.parametrize("kind", SOURCES)
def test_drop_counts_each_row_once_per_reason_and_warns(kind: str, tmp_path: Path) -> None:
    with pytest.warns(DataQualityWarning) as record:
        out = cf.read_transactions(_as(kind, _dirty(), tmp_path), on_invalid="drop", zero_amounts="drop")
    # Rows are counted under the first rule they break: the last row has no id *and* a bad date.
    expected = {
        "null_customer_id": 2,
        "unparseable_date": 2,
        "non_numeric_amount": 1,
        "negative_amount": 1,
        "zero_amount": 1,
    }
    assert out.attrs["dropped"] == expected and list(expected) == [r for r in REASONS if r != "negative_price"]
    assert out.attrs["n_rows_read"] == 8
    assert out["customer_id"].tolist() == ["a"]
    message = str(record[0].message)
    assert len(record) == 1 and message.startswith(
        "dropped 7 of 8 rows: 2 null customer id, 2 unparseable date, 1 non numeric amount, "
        "1 negative amount, 1 zero amount. "
    )
    assert record[0].filename == __file__  # the warning points at the caller's line
    # on_invalid='drop' without a returns policy drops the returns as before, and says they were not netted
    assert "The 1 return (negative amounts) was dropped, not netted" in message and "returns='net'" in message
    ledger = out.attrs["ledger"]
    assert ledger["rows_read"] == 8 and ledger["rows_used"] == 1 and ledger["identity_holds"]
    assert [(e["key"], e["rows"]) for e in ledger["entries"]] == list(expected.items())


def test_drop_that_leaves_nothing_is_an_error() -> None:
    df = _log(date=["x"] * 5)
    with pytest.raises(
        DataValidationError, match=r"every one of the 5 rows is invalid \(5 unparseable date\)"
    ):
        cf.read_transactions(df, on_invalid="drop")


def test_bad_policy_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="on_invalid must be 'raise' or 'drop'; got 'ignore'"):
        cf.read_transactions(_log(), on_invalid="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="zero_amounts must be"):
        cf.read_transactions(_log(), zero_amounts="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative_amounts must be"):
        cf.read_transactions(_log(), negative_amounts="keep")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="returns must be 'raise', 'drop', 'net' or None; got 'keep'"):
        cf.read_transactions(_log(), returns="keep")  # type: ignore[arg-type]


# --- sources ------------------------------------------------------------------------------------------------


def test_unknown_file_type_missing_file_and_wrong_type(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"unknown file type; give a \.csv"):
        cf.read_transactions(tmp_path / "log.xlsx")
    with pytest.raises(FileNotFoundError, match="no such file"):
        cf.read_transactions(tmp_path / "nothing.csv")
    with pytest.raises(TypeError, match="source must be a pandas DataFrame or a path"):
        cf.read_transactions([1, 2, 3])  # type: ignore[arg-type]


def test_duplicate_column_in_a_dataframe_is_named() -> None:
    df = pd.concat([_log(), _log()[["amount"]]], axis=1)
    with pytest.raises(DataValidationError, match="column 'amount' appears 2 times"):
        cf.read_transactions(df)


def _mixed_log() -> pd.DataFrame:
    """Several customers, same-day repeats, timestamps with times, a zero amount, unsorted rows."""
    rng = np.random.default_rng(7)
    n = 200
    days = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 120, n), unit="D")
    times = pd.to_timedelta(rng.integers(0, 86_400, n), unit="s")
    amounts = np.round(rng.gamma(2.0, 15.0, n), 2)
    amounts[5] = 0.0
    return pd.DataFrame({"customer_id": rng.integers(1, 40, n), "date": days + times, "amount": amounts})


@pytest.mark.parametrize("ids", ["int", "str"])
def test_dataframe_csv_and_parquet_give_identical_results(ids: str, tmp_path: Path) -> None:
    df = _mixed_log()
    if ids == "str":
        df["customer_id"] = "c" + df["customer_id"].astype(str)
    csv, parquet = _write(df, tmp_path / "log.csv"), _write(df, tmp_path / "log.parquet")
    for read in (
        cf.read_transactions,
        lambda s: cf.rfm_summary(s, observation_end="2023-03-31", time_unit="W"),
        lambda s: cf.calibration_holdout(s, calibration_end="2023-02-28", observation_end="2023-04-30"),
    ):
        expected = read(df)
        for source in (csv, parquet):
            got = read(source)
            pd.testing.assert_frame_equal(got, expected, check_exact=True)
            assert got.attrs == expected.attrs
    if ids == "int":
        assert str(expected.index.dtype) == "int64"
    else:
        assert pd.api.types.is_string_dtype(expected.index.dtype)


def test_open_transactions_exposes_counts_and_closes(tmp_path: Path) -> None:
    with open_transactions(_log(), observation_end="2024-02-29") as prep:
        assert prep.n_rows == 5 and prep.n_after == 2
        assert (prep.first_date, prep.last_date) == (dt.date(2024, 1, 5), dt.date(2024, 3, 15))
        assert prep.con.execute("SELECT count(*) FROM tx").fetchone() == (5,)
    with pytest.raises(Exception, match=re.compile("closed", re.IGNORECASE)):
        prep.con.execute("SELECT 1")


@pytest.mark.parametrize("kind", SOURCES)
def test_extra_columns_are_carried_through_unchanged(kind: str, tmp_path: Path) -> None:
    log = _log(channel=["web", "shop", "web", "app", "web"], date=["2024-01-05", "bad", "2024-01-20",
                                                                    "2024-03-01", "2024-03-15"])
    with pytest.warns(DataQualityWarning, match="dropped 1 of 5 rows: 1 unparseable date"):
        out = cf.read_transactions(_as(kind, log, tmp_path), extra_columns=["channel"], on_invalid="drop")
    assert list(out.columns) == ["customer_id", "date", "amount", "channel"]
    assert out["channel"].tolist() == ["web", "web", "app", "web"]  # the row with the bad date is dropped
    with pytest.raises(ValueError, match="'amount' is a column of the result already"):
        cf.read_transactions(log, extra_columns=["amount"])
    with pytest.raises(DataValidationError, match="column 'region' not found"):
        cf.read_transactions(log, extra_columns=["region"])


def test_reversed_and_strided_dataframes() -> None:
    """DuckDB cannot scan negative-stride numpy arrays (df.iloc[::-1]); those columns are copied first."""
    log = _log()
    forward = cf.read_transactions(log)
    backward = cf.read_transactions(log.iloc[::-1])
    assert backward["amount"].tolist() == forward["amount"].tolist()[::-1]
    assert cf.read_transactions(log.iloc[::2])["amount"].tolist() == [10.0, 5.5, 8.0]
    assert log.equals(_log())  # the input is not modified


def test_a_row_with_an_extra_field_names_its_line_and_field_counts(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("customer_id,date,amount\n1,2024-01-01,5\n2,2024-01-02,6,extra\n3,2024-01-03,7\n")
    with pytest.raises(DataValidationError) as err:
        cf.read_transactions(path)
    msg = str(err.value)
    assert "line 3 has 4 fields where the header has 3 ('customer_id', 'date', 'amount')" in msg
    assert "\n" not in msg and "sniff" not in msg.lower() and "LINE 1" not in msg


@pytest.mark.parametrize("unit", ["us", "ns"])
def test_parquet_zone_names_give_local_days_at_any_precision(unit: str, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # 2024-01-06 04:30 UTC is 2024-01-05 23:30 in New York, where the file says the purchase happened
    instant = 1704515400 * (10**6 if unit == "us" else 10**9)
    stamps = pa.array([instant], type=pa.timestamp(unit, tz="America/New_York"))
    pq.write_table(pa.table({"customer_id": [1], "date": stamps, "amount": [1.0]}), tmp_path / "ny.parquet")
    assert cf.read_transactions(tmp_path / "ny.parquet")["date"].tolist() == [pd.Timestamp("2024-01-05")]


def test_fixed_offset_zones_in_parquet_give_local_days(tmp_path: Path) -> None:
    # pandas writes a fixed offset as the zone name '+05:30'; 01:00 on 01-02 there is 19:30 UTC on 01-01
    stamps = pd.Series(pd.to_datetime(["2024-01-01T23:30+05:30", "2024-01-02T01:00+05:30"]))
    path = _write(_log(customer_id=[1, 1], date=stamps, amount=[1.0, 2.0]), tmp_path / "offset.parquet")
    assert cf.read_transactions(path)["date"].tolist() == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-02")]


def test_hive_style_paths_do_not_replace_the_files_columns(tmp_path: Path) -> None:
    folder = tmp_path / "date=2024-01-01"
    folder.mkdir()
    for suffix in (".csv", ".parquet"):
        path = _write(_log(), folder / f"tx{suffix}")
        assert cf.read_transactions(path)["date"].tolist() == pd.to_datetime(_log()["date"]).tolist()


def test_extra_columns_clash_case_insensitively_and_name_the_argument() -> None:
    with pytest.raises(ValueError, match="'Date' is a column of the result already"):
        cf.read_transactions(_log(), extra_columns=["Date"])
    with pytest.raises(DataValidationError, match="remove it from extra_columns"):
        cf.read_transactions(_log(), extra_columns=["region"])


def test_strided_extension_arrays() -> None:
    log = pd.DataFrame({
        "customer_id": pd.array([1, 1, 2], dtype="Int64"),
        "date": pd.array(["2024-01-01", "2024-01-05", "2024-01-02"], dtype="string"),
        "amount": pd.array([1.0, 2.0, 3.0], dtype="Float64"),
    })
    assert cf.read_transactions(log.iloc[::-1])["amount"].tolist() == [3.0, 2.0, 1.0]
