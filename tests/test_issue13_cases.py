"""Issue 13 on the command line: every case of the issue that a user can meet there, tried with the installed
command's entry point (Typer's CliRunner). Each bad input must give ONE line on stderr (exit 2) that names what
is wrong (the column, flag, parameter or path); each questionable but usable input exits 0 with one-line warnings.

The same cases through the Python API are tested next to their modules: test_sources.py (encodings, ragged CSVs,
folders, damaged Parquet, date_format, typo and future dates, integer cutoffs, empty holdouts, blank ids),
test_io.py (extra fields), test_persistence.py and test_engine.py (model files, extreme parameters),
test_clv.py (a table without a unit), test_report_options.py (a zero horizon), test_ledger.py and test_retail.py
(the rows of customers new in the holdout).
"""

from __future__ import annotations

import datetime as dt
import json
import pickle
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_persistence import mutated
from typer.testing import CliRunner

import clvforecast as cf
from clvforecast.cli import app

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "cdnow_sample.csv"
runner = CliRunner()


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def one_line_error(result) -> str:  # noqa: ANN001
    """The one error line; any other line on stderr is a one-line warning given before it."""
    lines = _lines(result.stderr)
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    errors = [line for line in lines if not line.startswith("warning: ")]
    assert len(errors) == 1 and errors[0].startswith("error: ") and lines[-1] == errors[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout and ".py:" not in result.stderr
    assert "LINE 1" not in errors[0] and "SELECT" not in errors[0]  # no SQL
    assert "Usage" not in errors[0] and "\u2500" not in result.stderr  # no Typer box
    return errors[0]


def _small_log(path: Path) -> Path:
    """Ten customers, two purchases each in January 2024 (a CSV)."""
    rows = [f"{c},2024-01-{1 + c:02d},{10 + c}.5\n{c},2024-01-{11 + c:02d},{c}.25" for c in range(1, 11)]
    path.write_text("customer_id,date,amount\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("models")
    rfm, models = tmp / "rfm.parquet", tmp / "models"
    assert run("summarize", SAMPLE, "--observation-end", "1997-09-30", "--out", rfm).exit_code == 0
    assert run("fit", rfm, "--out", models).exit_code == 0
    return rfm, models


# --- sources: one line that says what is wrong, not the engine's text ---------------------------------------

SourceCase = Callable[[Path], list[object]]


def _latin1(tmp: Path) -> list[object]:
    src = tmp / "latin.csv"
    src.write_bytes("customer_id,date,amount,name\n1,2024-01-01,5,José\n2,2024-01-02,6,Renée\n".encode("latin-1"))
    return ["summarize", src, "--out", tmp / "o.csv"]


def _extra_field(tmp: Path) -> list[object]:
    src = tmp / "extra.csv"
    src.write_text("customer_id,date,amount\n1,2024-01-01,5\n2,2024-01-02,6,7\n3,2024-01-03,1\n")
    return ["summarize", src, "--out", tmp / "o.csv"]


def _damaged_parquet(tmp: Path) -> list[object]:
    src = tmp / "bad.parquet"
    src.write_bytes(b"PAR1" + b"\x00garbage" * 10)
    return ["summarize", src, "--out", tmp / "o.csv"]


def _folder_named_csv(tmp: Path) -> list[object]:
    (tmp / "orders.csv").mkdir()
    return ["summarize", tmp / "orders.csv", "--out", tmp / "o.csv"]


def _bad_date_format(tmp: Path) -> list[object]:
    return ["summarize", _small_log(tmp / "tx.csv"), "--date-format", "%Q", "--out", tmp / "o.csv"]


def _blank_ids(tmp: Path) -> list[object]:
    src = tmp / "blank.csv"
    src.write_text("customer_id,date,amount\na,2024-01-01,5\n  ,2024-01-02,6\nb,2024-01-03,7\n,2024-01-04,8\n")
    return ["summarize", src, "--out", tmp / "o.csv"]


def _empty_folder_as_rfm(tmp: Path) -> list[object]:
    (tmp / "empty").mkdir()
    return ["fit", tmp / "empty", "--time-unit", "W", "--out", tmp / "m"]


def _out_below_a_file(tmp: Path) -> list[object]:
    (tmp / "blocker").write_text("x")
    return ["summarize", _small_log(tmp / "tx.csv"), "--out", tmp / "blocker" / "r.csv"]


def _holdout_equal_cutoffs(tmp: Path) -> list[object]:
    return ["validate", _small_log(tmp / "tx.csv"), "--calibration-end", "2024-01-21", "--observation-end",
            "2024-01-21", "--out", tmp / "v"]  # fmt: skip


def _holdout_after_the_log(tmp: Path) -> list[object]:
    return ["validate", _small_log(tmp / "tx.csv"), "--calibration-end", "2024-01-21", "--observation-end",
            "2024-06-30", "--out", tmp / "v"]  # fmt: skip


def _zero_horizon(tmp: Path) -> list[object]:
    return ["report", _small_log(tmp / "tx.csv"), "--horizon", "0W", "--out", tmp / "r.html"]


def _missing_out(tmp: Path) -> list[object]:
    return ["summarize", _small_log(tmp / "tx.csv")]


def _not_a_number(tmp: Path) -> list[object]:
    return ["predict", tmp, _small_log(tmp / "tx.csv"), "--out", tmp / "f.csv", "--discount-rate", "abc"]


def _fit_on_a_log(tmp: Path) -> list[object]:
    return ["fit", _small_log(tmp / "tx.csv"), "--out", tmp / "m"]


SOURCE_CASES: dict[str, tuple[SourceCase, tuple[str, ...]]] = {
    "latin-1 CSV": (_latin1, ("latin.csv' is not UTF-8 text", "--encoding latin-1", "iconv")),
    "a row with an extra field": (_extra_field, ("extra.csv", "line 3 has 4 fields where the header has 3")),
    "a damaged Parquet file": (_damaged_parquet, ("bad.parquet", "is not a valid Parquet file")),
    "a folder named orders.csv": (_folder_named_csv, ("orders.csv' is a folder, not a CSV file",)),
    "date_format %Q": (_bad_date_format, ("--date-format '%Q' is not a valid date pattern",)),
    "blank ids in a CSV": (_blank_ids, ("column 'customer_id': 2 of 4 rows have no customer id",
                                        "--on-invalid drop")),
    "an empty folder as an RFM table": (_empty_folder_as_rfm, ("empty is a folder", "RFM table")),
    "--out below a file": (_out_below_a_file, ("blocker is a file", "choose another path")),
    "calibration_end == observation_end": (_holdout_equal_cutoffs, ("the holdout holds no transactions",
                                                                    "--observation-end")),
    "a holdout after the last transaction": (_holdout_after_the_log, ("the holdout holds no transactions",
                                                                      "the last transaction is dated 2024-01-21",
                                                                      "--calibration-end")),
    "a zero horizon": (_zero_horizon, ("--horizon 0W is zero",)),
    "a missing --out": (_missing_out, ("--out",)),
    "--discount-rate abc": (_not_a_number, ("--discount-rate", "number")),
    "fit on a transaction log": (_fit_on_a_log, ("is a transaction log", "clvforecast summarize")),
}


@pytest.mark.parametrize("case", list(SOURCE_CASES))
def test_each_bad_input_is_one_line_naming_what_is_wrong(case: str, tmp_path: Path) -> None:
    build, expected = SOURCE_CASES[case]
    msg = one_line_error(run(*build(tmp_path)))
    for words in expected:
        assert words in msg, (words, msg)
    assert "Errno" not in msg and "(it has )" not in msg


def test_the_empty_holdout_flags_are_the_validate_flags(tmp_path: Path) -> None:
    msg = one_line_error(run(*_holdout_equal_cutoffs(tmp_path)))
    help_text = run("validate", "--help").stdout
    for flag in ("--observation-end", "--calibration-end"):
        assert flag in msg and flag in help_text
    assert "observation_end" not in msg.replace("--observation-end", "")


# --- model files: refused at load, the parameter and its rule named ------------------------------------------

MODEL_CASES = {
    "r = -0.5": ("bgnbd.json", lambda d: d["params"].update(r=-0.5), "parameter 'r' = -0.5 breaks the rule r > 0"),
    "alpha = 0": ("bgnbd.json", lambda d: d["params"].update(alpha=0), "parameter 'alpha' = 0 breaks the rule alpha > 0"),
    "a = -1": ("bgnbd.json", lambda d: d["params"].update(a=-1), "parameter 'a' = -1 breaks the rule a > 0"),
    "b = NaN": ("bgnbd.json", lambda d: d["params"].update(b=float("nan")), "parameter 'b' = nan breaks the rule"),
    "r = Infinity": ("bgnbd.json", lambda d: d["params"].update(r=float("inf")),
                     "parameter 'r' = inf breaks the rule"),
    "Gamma-Gamma p = -1": ("gamma_gamma.json", lambda d: d["params"].update(p=-1),
                           "parameter 'p' = -1 breaks the rule p > 0"),
    "format_version abc": ("bgnbd.json", lambda d: d.update(format_version="abc"),
                           "not a clvforecast model file: format_version"),
    "model as a list": ("bgnbd.json", lambda d: d.update(model=["BetaGeo"]), "not a clvforecast model file"),
}


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_a_bad_model_file_is_refused_naming_the_file_and_the_parameter(case: str, fitted, tmp_path: Path) -> None:  # noqa: ANN001
    rfm, models = fitted
    name, change, expected = MODEL_CASES[case]
    folder = tmp_path / "models"
    shutil.copytree(models, folder)
    d = json.loads((folder / name).read_text())
    change(d)
    (folder / name).write_text(json.dumps(d))  # NaN and Infinity as JSON tokens
    out = tmp_path / "f.csv"
    msg = one_line_error(run("predict", folder, rfm, "--out", out))
    assert f"{name}: " in msg and expected in msg, msg
    assert not out.exists()


def test_a_pickle_renamed_json_is_not_a_model_file(fitted, tmp_path: Path) -> None:  # noqa: ANN001
    rfm, models = fitted
    folder = tmp_path / "models"
    shutil.copytree(models, folder)
    (folder / "bgnbd.json").write_bytes(pickle.dumps({"params": [1, 2]}))
    msg = one_line_error(run("predict", folder, rfm, "--out", tmp_path / "f.csv"))
    assert "bgnbd.json: not a clvforecast model file" in msg and "UnicodeDecodeError" not in msg


def test_an_extreme_but_valid_parameter_gives_finite_predictions(fitted, tmp_path: Path) -> None:  # noqa: ANN001
    rfm, models = fitted
    folder = tmp_path / "models"
    shutil.copytree(models, folder)
    d = json.loads((folder / "bgnbd.json").read_text())
    d["params"]["a"] = 1e12  # crashed with "math domain error" before
    (folder / "bgnbd.json").write_text(json.dumps(d))
    out = tmp_path / "f.csv"
    r = run("predict", folder, rfm, "--out", out)
    assert r.exit_code == 0, r.stderr
    forecast = pd.read_csv(out)
    assert len(forecast) == 2357 and np.isfinite(forecast.drop(columns="customer_id").to_numpy()).all()


# --- usable but questionable input: exit 0, one-line warnings that name the column ---------------------------


def test_a_typo_date_far_beyond_the_rest_warns_in_one_line(tmp_path: Path) -> None:
    days = pd.date_range("2024-01-01", "2024-12-31", freq="3D")
    log = pd.DataFrame({"customer_id": np.arange(len(days)) % 20, "date": days.strftime("%Y-%m-%d"), "amount": 5.0})
    log.loc[len(log)] = [3, "2204-06-01", 9.0]
    src = tmp_path / "typo.csv"
    log.to_csv(src, index=False)
    out = tmp_path / "rfm.parquet"
    r = run("summarize", src, "--out", out)
    assert r.exit_code == 0, r.stderr
    warned = [line for line in _lines(r.stderr) if line.startswith("warning: ")]
    assert all(line.startswith(("warning: ", "wrote ")) for line in _lines(r.stderr)) and ".py:" not in r.stderr
    typo = [w for w in warned if "column 'date': 1 row is dated far beyond the rest" in w]
    assert len(typo) == 1 and "2204-06-01" in typo[0], r.stderr
    assert f"--observation-end {days[-1].date()} (or another date)" in typo[0]  # the fix, as a flag
    assert pd.read_parquet(out).attrs["observation_end"] == days[-1].date().isoformat()  # not 2204


def test_future_dates_warn_in_one_line(tmp_path: Path) -> None:
    soon = dt.date.today() + dt.timedelta(days=40)
    src = _small_log(tmp_path / "tx.csv")
    with src.open("a") as f:
        f.write(f"3,{soon.isoformat()},4.5\n")
    r = run("summarize", src, "--out", tmp_path / "rfm.csv")
    assert r.exit_code == 0, r.stderr
    warned = [line for line in _lines(r.stderr) if line.startswith("warning: ")]
    assert any("1 row is dated after today" in w and soon.isoformat() in w for w in warned), r.stderr
    assert all(line.startswith(("warning: ", "wrote ")) for line in _lines(r.stderr))


def test_a_parquet_dataset_folder_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "tx.parquet"
    folder.mkdir()
    log = pd.read_csv(_small_log(tmp_path / "tx.csv"))
    log.iloc[:7].to_parquet(folder / "part-00000.snappy.parquet", index=False)
    log.iloc[7:].to_parquet(folder / "part-00001.snappy.parquet", index=False)
    (folder / "_SUCCESS").write_text("")
    out = tmp_path / "rfm.csv"
    r = run("summarize", folder, "--observation-end", "2024-01-31", "--out", out)
    assert r.exit_code == 0, r.stderr
    table = pd.read_csv(out)
    assert len(table) == 10 and table["frequency"].tolist() == [1] * 10


# --- load_model on mutated files of every purchase model (test_persistence.py does BG/NBD and Gamma-Gamma) ----

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0.0, -0.0, 1e-300, 1e300, -1.0, 1e12, 1e-12]) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def other_models(cdnow_cal: pd.DataFrame) -> dict[str, tuple[dict, pd.DataFrame]]:
    """A fitted file of each purchase model besides BG/NBD, with a table to score."""
    from clvforecast.models.bgbb import donations

    out = {}
    for name in ("pnbd", "mbgnbd", "bgbb"):
        table = donations() if name == "bgbb" else cdnow_cal.iloc[:400]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = cf.models.purchase_model(name).fit(table)
        out[name] = (model.to_dict(), table)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_files_of_every_purchase_model_are_refused_or_give_finite_predictions(other_models, tmp_path,  # noqa: ANN001
                                                                                       data) -> None:  # noqa: ANN001
    name = data.draw(st.sampled_from(sorted(other_models)))
    table = other_models[name][1]
    d = mutated(other_models[name][0], data, json_values)
    file = tmp_path / f"{name}.json"
    file.write_text(json.dumps(d), encoding="utf-8")
    try:
        loaded = cf.load_model(file)
    except cf.models.ModelFileError as err:  # refused: the message names the file
        assert str(err).startswith(f"{file}: ") and "\n" not in str(err)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.all(np.isfinite(loaded.expected_purchases(table, 3)))
        assert np.all(np.isfinite(loaded.probability_alive(table)))
    _ = loaded.summary
