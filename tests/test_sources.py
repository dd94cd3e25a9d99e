"""Sources that trip users: encodings, ragged and sniffed CSVs, folders, damaged Parquet, ids, dates, cutoffs.

Each case asserts that the message names what is wrong (column, argument, path, line) in one sentence, and,
where it gives a fix, that following the fix works.
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import pandas as pd
import pytest

import clvforecast as cf
from clvforecast.exceptions import DataQualityWarning, DataValidationError


def _log(**overrides: list) -> pd.DataFrame:
    data = {
        "customer_id": [1, 1, 2, 3, 3],
        "date": ["2024-01-05", "2024-02-10", "2024-01-20", "2024-03-01", "2024-03-15"],
        "amount": [10.0, 20.0, 5.5, 7.25, 8.0],
    }
    data.update(overrides)
    return pd.DataFrame(data)


def _one_sentence(message: str) -> None:
    assert "\n" not in message and "LINE 1" not in message and "SELECT" not in message


# --- CSV files ------------------------------------------------------------------------------------------------


def test_ids_beginning_with_a_hash_are_ids_not_comments(tmp_path: Path) -> None:
    # DuckDB's sniffer would take '#' for a comment marker and lose those rows without a count.
    rows = [f"{'#' if i % 3 == 0 else ''}{i},2024-01-{1 + i % 28:02d},{i}.5" for i in range(1000)]
    path = tmp_path / "hash.csv"
    path.write_text("customer_id,date,amount\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = cf.read_transactions(path)
    assert len(out) == 1000 and out.attrs["n_rows_read"] == 1000
    assert out.attrs["ledger"]["rows_read"] == 1000 and "#0" in set(out["customer_id"])


def test_quoted_fields_with_commas_and_quotes_are_one_field(tmp_path: Path) -> None:
    path = tmp_path / "quoted.csv"
    path.write_text('customer_id,date,amount,note\n1,2024-01-01,5,"a, b"\n2,2024-01-02,6,"say ""hi"""\n')
    out = cf.read_transactions(path, extra_columns=["note"])
    assert out["note"].tolist() == ["a, b", 'say "hi"']


def test_whole_number_float_ids_in_a_csv_are_integers_as_in_the_dataframe(tmp_path: Path) -> None:
    # pandas writes float ids (ids with gaps) as '17850.0': the same log must give the same ids from every source
    df = _log(customer_id=[17850.0, 17850.0, None, 13047.0, 13047.0])
    df.to_csv(tmp_path / "f.csv", index=False)
    df.to_parquet(tmp_path / "f.parquet", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        frames = [cf.read_transactions(s, on_invalid="drop") for s in (df, tmp_path / "f.csv", tmp_path / "f.parquet")]
    for out in frames:
        assert out["customer_id"].tolist() == [17850, 17850, 13047, 13047]
        assert str(out["customer_id"].dtype) == "int64"
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("customer_id,date,amount\n17850.0,2024-01-01,1\n17851,2024-01-02,2\n017,2024-01-03,3\n")
    assert cf.read_transactions(mixed)["customer_id"].tolist() == ["17850.0", "17851", "017"]  # '017' is text


def test_blank_ids_are_missing_ids_in_a_dataframe_as_in_a_csv(tmp_path: Path) -> None:
    df = _log(customer_id=["a", "", "b", "  ", "b"])
    df.to_csv(tmp_path / "blank.csv", index=False)
    for source in (df, tmp_path / "blank.csv"):
        with pytest.raises(DataValidationError, match=r"column 'customer_id': 2 of 5 rows have no customer id"):
            cf.read_transactions(source)
        with pytest.warns(DataQualityWarning, match="2 null customer id"):
            out = cf.read_transactions(source, on_invalid="drop")
        assert out["customer_id"].tolist() == ["a", "b", "b"]


def test_spaces_around_an_id_are_not_part_of_it(tmp_path: Path) -> None:
    # ' C001 ' and 'C001' are one customer (spreadsheet exports pad ids), in a DataFrame as in a CSV; padded
    # numbers in a CSV are still integer ids
    df = _log(customer_id=["C001", " C001 ", "C002", "C002  ", "  C003"])
    df.to_csv(tmp_path / "padded.csv", index=False)
    for source in (df, tmp_path / "padded.csv"):
        rfm = cf.rfm_summary(source, observation_end="2024-03-31")
        assert rfm.index.tolist() == ["C001", "C002", "C003"]
        assert rfm["frequency"].tolist() == [1, 1, 0]
    numbers = tmp_path / "numbers.csv"
    numbers.write_text("customer_id,date,amount\n 17850 ,2024-01-01,1\n17850,2024-01-02,2\n13047,2024-01-03,3\n")
    assert cf.read_transactions(numbers)["customer_id"].tolist() == [17850, 17850, 13047]


def test_a_latin1_csv_is_named_as_not_utf8_and_encoding_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("customer_id,date,amount,name\n1,2024-01-01,5,José\n2,2024-01-02,6,Renée\n".encode("latin-1"))
    with pytest.raises(DataValidationError) as err:
        cf.read_transactions(path, extra_columns=["name"])
    msg = str(err.value)
    _one_sentence(msg)
    assert "is not UTF-8 text" in msg and "encoding='latin-1'" in msg and "iconv" in msg
    out = cf.read_transactions(path, extra_columns=["name"], encoding="latin-1")  # the hint, followed
    assert out["name"].tolist() == ["José", "Renée"]
    cp = tmp_path / "cp1252.csv"  # an encoding DuckDB does not read natively: re-encoded on the fly
    cp.write_bytes("customer_id,date,amount,name\n1,2024-01-01,5,€uro\n".encode("cp1252"))
    assert cf.read_transactions(cp, extra_columns=["name"], encoding="cp1252")["name"].tolist() == ["€uro"]
    with pytest.raises(ValueError, match="encoding='klingon' is not a known text encoding"):
        cf.read_transactions(cp, encoding="klingon")


def test_a_row_with_fewer_fields_is_named_too(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    path.write_text("customer_id,date,amount\n1,2024-01-01,5\n2,2024-01-02\n")
    with pytest.raises(DataValidationError, match="line 3 has 2 fields where the header has 3") as err:
        cf.read_transactions(path)
    _one_sentence(str(err.value))


# --- folders and Parquet ----------------------------------------------------------------------------------


def test_a_folder_named_like_a_csv_file_is_said_to_be_a_folder(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").mkdir()
    with pytest.raises(DataValidationError, match=r"'.*orders\.csv' is a folder, not a CSV file"):
        cf.read_transactions(tmp_path / "orders.csv")


def test_a_parquet_dataset_folder_is_read(tmp_path: Path) -> None:
    # As Spark writes it: part files, a _SUCCESS marker; and as pyarrow writes a partitioned dataset.
    folder = tmp_path / "tx.parquet"
    folder.mkdir()
    log = _log()
    log.iloc[:3].to_parquet(folder / "part-00000-abc.snappy.parquet", index=False)
    log.iloc[3:].to_parquet(folder / "part-00001-abc.snappy.parquet", index=False)
    (folder / "_SUCCESS").write_text("")
    out = cf.read_transactions(folder)
    assert sorted(out["amount"].tolist()) == sorted(log["amount"].tolist()) and out.attrs["n_rows_read"] == 5
    partitioned = tmp_path / "by_channel"
    log.assign(channel=["web", "web", "shop", "shop", "web"]).to_parquet(partitioned, partition_cols=["channel"])
    out = cf.read_transactions(partitioned, extra_columns=["channel"])
    assert sorted(zip(out["amount"], out["channel"], strict=True)) == sorted(
        zip(log["amount"], ["web", "web", "shop", "shop", "web"], strict=True)
    )
    empty = tmp_path / "empty.parquet"
    empty.mkdir()
    with pytest.raises(DataValidationError, match="is a folder, not a file, and holds no Parquet files"):
        cf.read_transactions(empty)


def test_a_damaged_parquet_file_is_said_to_be_damaged_without_sql(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1" + b"\x00garbage" * 10)
    with pytest.raises(DataValidationError, match="is not a valid Parquet file") as err:
        cf.read_transactions(path)
    _one_sentence(str(err.value))
    assert "read_parquet" not in str(err.value)


# --- dates in the data -------------------------------------------------------------------------------------


def test_an_invalid_date_format_names_date_format() -> None:
    with pytest.raises(ValueError, match=r"date_format='%Q' is not a valid date pattern") as err:
        cf.read_transactions(_log(), date_format="%Q")
    _one_sentence(str(err.value))
    with pytest.raises(ValueError, match="has no day, month or year code"):
        cf.read_transactions(_log(), date_format="%H:%M")


def test_ambiguous_numeric_dates_in_the_data_are_refused_with_both_formats() -> None:
    log = _log(date=["06/01/2011", "07/01/2011", "08/02/2011", "09/03/2011", "10/04/2011"])
    with pytest.raises(DataValidationError) as err:
        cf.read_transactions(log)
    msg = str(err.value)
    assert "numeric dates such as '06/01/2011' are never guessed" in msg
    assert "date_format='%d/%m/%Y' (day first) or '%m/%d/%Y' (month first)" in msg
    out = cf.read_transactions(log, date_format="%d/%m/%Y")  # the hint, followed
    assert out["date"].iloc[0] == pd.Timestamp("2011-01-06")
    day_first = _log(date=["31/01/2011", "07/01/2011", "28/02/2011", "09/03/2011", "10/04/2011"])
    with pytest.raises(DataValidationError, match=r"pass date_format='%d/%m/%Y' \(day first\), or"):
        cf.read_transactions(day_first)


def test_a_typo_date_far_beyond_the_rest_warns_and_does_not_move_the_default_end() -> None:
    days = pd.date_range("2024-01-01", "2024-12-31", freq="3D").strftime("%Y-%m-%d").tolist()
    log = pd.DataFrame({"customer_id": [i % 20 for i in range(len(days))], "date": days, "amount": 5.0})
    log.loc[len(log)] = [3, "2204-06-01", 9.0]  # a typo for 2024
    with pytest.warns(DataQualityWarning) as record:
        rfm = cf.rfm_summary(log)
    msg = " ".join(str(r.message) for r in record)
    assert "column 'date': 1 row is dated far beyond the rest" in msg and "2204-06-01" in msg
    assert rfm.attrs["observation_end"] == days[-1]  # not 2204
    entries = {e["key"]: e for e in rfm.attrs["ledger"]["entries"]}
    assert entries["after_observation_end"]["rows"] == 1 and rfm.attrs["ledger"]["identity_holds"]
    assert "suspicious_dates" in entries
    # following the hint: an explicit observation_end is used as given
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        assert cf.rfm_summary(log, observation_end="2024-12-31").attrs["observation_end"] == "2024-12-31"


def test_future_dates_warn_with_count_and_examples() -> None:
    soon = dt.date.today() + dt.timedelta(days=40)
    log = _log(date=["2024-01-05", "2024-02-10", "2024-01-20", "2024-03-01", soon.isoformat()])
    with pytest.warns(DataQualityWarning, match=rf"1 row is dated after today \({dt.date.today()}\), e.g. {soon}"):
        rfm = cf.rfm_summary(log)
    assert rfm.attrs["observation_end"] == "2024-03-01"
    with pytest.warns(DataQualityWarning, match="dated after today"):
        tidy = cf.read_transactions(log)
    assert len(tidy) == 5  # reading keeps them; the default observation end leaves them out, counted
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # passed on, the frame does not warn twice
        again = cf.rfm_summary(tidy)
    assert again.attrs["observation_end"] == "2024-03-01"
    assert {e["key"]: e["rows"] for e in again.attrs["ledger"]["entries"]}["after_observation_end"] == 1


# --- dates given as arguments ---------------------------------------------------------------------------------


def test_an_integer_observation_end_is_refused_naming_the_argument(cdnow_tx: pd.DataFrame) -> None:
    with pytest.raises(TypeError, match=r"observation_end=19970930 is a number, not a date") as err:
        cf.rfm_summary(cdnow_tx, observation_end=19970930)
    assert "'19970930' with date_format='%Y%m%d'" in str(err.value)
    rfm = cf.rfm_summary(cdnow_tx, observation_end="19970930", date_format="%Y%m%d")  # the hint, followed
    assert rfm.attrs["observation_end"] == "1997-09-30"


def test_date_format_applies_to_the_cutoffs(cdnow_tx: pd.DataFrame) -> None:
    # '01/09/1997' day first is 1 September 1997: every CDNOW customer (first purchases in Q1 1997) is in.
    text = cdnow_tx.assign(date=cdnow_tx["date"].dt.strftime("%d/%m/%Y"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        cal = cf.calibration_holdout(text, calibration_end="01/09/1997", observation_end="30/06/1998",
                                     date_format="%d/%m/%Y")  # fmt: skip
    assert len(cal) == 2357 and cal.attrs["calibration_end"] == "1997-09-01"
    # an ISO cutoff is understood with any date_format
    iso = cf.calibration_holdout(text, calibration_end="1997-09-01", observation_end="1998-06-30",
                                 date_format="%d/%m/%Y")  # fmt: skip
    pd.testing.assert_frame_equal(iso, cal)


def test_an_ambiguous_cutoff_without_date_format_is_refused(cdnow_tx: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"calibration_end='01/09/1997' is ambiguous: day first or month first"):
        cf.calibration_holdout(cdnow_tx, calibration_end="01/09/1997", observation_end="1998-06-30")


def test_an_observation_end_after_the_last_transaction_warns_with_the_gap(cdnow_tx: pd.DataFrame) -> None:
    with pytest.warns(DataQualityWarning, match=r"observation_end=1999-06-30 is 365 days after the last transaction "
                      r"\(1998-06-30\)"):  # fmt: skip
        cf.rfm_summary(cdnow_tx, observation_end="1999-06-30")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cf.rfm_summary(cdnow_tx, observation_end="1998-06-30")


@pytest.mark.parametrize(("cal_end", "obs_end"), [("1998-06-30", "1998-06-30"), ("1998-06-30", "1998-12-31")])
def test_an_empty_holdout_is_refused(cdnow_tx: pd.DataFrame, cal_end: str, obs_end: str) -> None:
    with pytest.raises(DataValidationError, match="the holdout holds no transactions") as err:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataQualityWarning)
            cf.calibration_holdout(cdnow_tx, calibration_end=cal_end, observation_end=obs_end)
    _one_sentence(str(err.value))
