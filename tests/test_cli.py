"""The command line, used as a user would: Typer's CliRunner for every subcommand, the installed executable once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import clvforecast as cf
from clvforecast.cli import app

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "cdnow_sample.csv"
DATES = ["--calibration-end", "1997-09-30", "--observation-end", "1998-06-30", "--time-unit", "W"]
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def test_summarize_fit_predict_pipeline(tmp_path: Path) -> None:
    rfm_path, models, forecast_path = tmp_path / "rfm.parquet", tmp_path / "models", tmp_path / "forecast.csv"
    r = run("summarize", SAMPLE, "--observation-end", "1997-09-30", "--time-unit", "W", "--out", rfm_path)
    assert r.exit_code == 0, r.stderr
    rfm = pd.read_parquet(rfm_path)
    assert (
        len(rfm) == 2357 and int(rfm["frequency"].sum()) == 2457
    )  # published: 2,357 customers, 2,457 repeats

    r = run("fit", rfm_path, "--out", models)
    assert r.exit_code == 0, r.stderr
    bg = cf.load_model(models / "bgnbd.json")
    # Fader, Hardie & Lee (2005): r = 0.243, alpha = 4.414, a = 0.793, b = 2.426
    assert bg.params_.round(3).tolist() == pytest.approx([0.243, 4.414, 0.793, 2.426], abs=1e-3)

    r = run("predict", models, rfm_path, "--horizon", "39W", "--discount-rate", "0.1", "--out", forecast_path)
    assert r.exit_code == 0, r.stderr
    forecast = pd.read_csv(forecast_path, index_col="customer_id")
    assert list(forecast.columns) == ["expected_purchases", "probability_alive", "expected_spend", "clv",
                                    "clv_if_alive"]
    assert len(forecast) == 2357 and forecast.notna().all().all()
    # customer 1 of the paper: x = 2, t_x = 30.43, T = 38.86 -> 1.226 expected purchases in the next 39 weeks
    assert forecast.loc[1, "expected_purchases"] == pytest.approx(1.226, abs=5e-4)


def test_summarize_csv_with_holdout_and_fit_needs_time_unit(tmp_path: Path) -> None:
    out = tmp_path / "cal.csv"
    assert run("summarize", SAMPLE, *DATES, "--out", out).exit_code == 0
    table = pd.read_csv(out)
    assert int(table["holdout_frequency"].sum()) == 1882  # published holdout repeat transactions
    # A CSV does not record its time unit: fit asks for it instead of guessing.
    msg = one_line_error(run("fit", out, "--out", tmp_path / "m"))
    assert "--time-unit" in msg
    assert run("fit", out, "--time-unit", "W", "--out", tmp_path / "m").exit_code == 0


def test_validate_writes_metrics_tables_and_plots(tmp_path: Path) -> None:
    r = run("validate", SAMPLE, *DATES, "--out", tmp_path / "val")
    assert r.exit_code == 0, r.stderr
    files = {p.name for p in (tmp_path / "val").iterdir()}
    assert {
        "metrics.csv",
        "metrics.json",
        "customers.csv",
        "conditional_expectations.csv",
        "tracking_cumulative.png",
        "conditional_expectations.png",
    } <= files
    metrics = json.loads((tmp_path / "val" / "metrics.json").read_text())
    actual = {m["value"] for m in metrics if m["metric"] == "total_actual" and m["target"] == "purchases"}
    assert actual == {1882}
    assert "Holdout purchases: actual total 1,882" in r.stdout


def test_report_subcommand(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    r = run("-q", "report", SAMPLE, *DATES, "--out", out)
    assert r.exit_code == 0, r.stderr
    assert out.exists() and "Holdout validation" in out.read_text()
    assert str(out.resolve()) in r.stdout


def test_column_flags_and_date_format(tmp_path: Path) -> None:
    tx = cf.load_cdnow("sample").rename(columns={"customer_id": "cust", "date": "day", "amount": "usd"})
    tx["day"] = tx["day"].dt.strftime("%d/%m/%Y")
    src = tmp_path / "renamed.csv"
    tx.to_csv(src, index=False)
    out = tmp_path / "rfm.csv"
    r = run(
        "summarize",
        src,
        "--customer-col",
        "cust",
        "--date-col",
        "day",
        "--amount-col",
        "usd",
        "--date-format",
        "%d/%m/%Y",
        "--time-unit",
        "W",
        "--observation-end",
        "1997-09-30",
        "--out",
        out,
    )
    assert r.exit_code == 0, r.stderr
    assert int(pd.read_csv(out)["frequency"].sum()) == 2457


def test_missing_column_is_one_line_exit_2(tmp_path: Path) -> None:
    src = tmp_path / "no_amount.csv"
    pd.read_csv(SAMPLE).drop(columns="amount").to_csv(src, index=False)
    msg = one_line_error(run("report", src, "--out", tmp_path / "r.html"))
    assert "'amount'" in msg and "customer_id" in msg  # names the missing column and lists those that exist


def test_unparseable_dates_is_one_line_exit_2(tmp_path: Path) -> None:
    src = tmp_path / "bad_dates.csv"
    df = pd.read_csv(SAMPLE)
    df.loc[[3, 10], "date"] = ["1997-13-45", "yesterday"]
    df.to_csv(src, index=False)
    msg = one_line_error(run("summarize", src, "--out", tmp_path / "x.csv"))
    assert "'date'" in msg and "2" in msg and "1997-13-45" in msg


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    r = run("--debug", "summarize", tmp_path / "missing.csv", "--out", tmp_path / "x.csv")
    assert r.exit_code == 2
    assert "Traceback" in r.stderr


def test_help_lists_every_subcommand() -> None:
    r = run("--help")
    assert r.exit_code == 0
    for name in ("summarize", "fit", "predict", "validate", "report", "demo"):
        assert name in r.stdout


def _executable() -> str:
    exe = Path(sys.executable).parent / "clvforecast"
    found = str(exe) if exe.exists() else shutil.which("clvforecast")
    assert found, "the clvforecast executable is not installed (pip install -e .)"
    return found


def test_installed_executable_reports_on_cdnow_master(tmp_path: Path) -> None:
    """The console script, as installed, on the full CDNOW master file (23,570 customers)."""
    out = tmp_path / "master.html"
    proc = subprocess.run(
        [_executable(), "-q", "report", str(ROOT / "data" / "cdnow_master.csv"), *DATES, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.exists() and "23,570" in out.read_text()


def test_installed_executable_bad_input(tmp_path: Path) -> None:
    src = tmp_path / "bad.csv"
    src.write_text("customer_id,date,amount\n1,not-a-date,3.5\n")
    proc = subprocess.run(
        [_executable(), "summarize", str(src), "--out", str(tmp_path / "x.csv")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) == 1
    assert "not-a-date" in proc.stderr


def test_unusable_out_is_refused_before_any_work(tmp_path: Path) -> None:
    assert "is a folder" in one_line_error(run("report", SAMPLE, "--out", tmp_path))
    assert "ending in .parquet" in one_line_error(run("summarize", SAMPLE, "--out", tmp_path / "x.xlsx"))
    assert "ending in .html" in one_line_error(run("report", SAMPLE, "--out", tmp_path / "r.pdf"))


def _hints(message: str) -> list[list[str]]:
    """The flags a message suggests, each as the arguments to add: [['--returns', 'net'], ['--no-amount']]."""
    import re
    import shlex

    found = []
    for m in re.finditer(r"(--[a-z][a-z-]+)((?: (?:'[^']*'|[^\s,;)]+))?)", message):
        flag, value = m.group(1), m.group(2).strip()
        found.append([flag, *shlex.split(value)] if value and not value.startswith("--") else [flag])
    return found


HINT_CASES = {
    "returns": ("customer_id,date,amount\n1,2024-01-01,10\n1,2024-01-05,-5\n2,2024-01-03,7\n2,2024-02-03,7\n",
                "--returns"),
    "missing_id": ("customer_id,date,amount\n1,2024-01-01,10\n,2024-01-05,5\n2,2024-01-03,7\n2,2024-02-03,7\n",
                   "--on-invalid"),
    "date_column": ("customer_id,dates,amount\n1,2024-01-01,10\n1,2024-01-05,5\n", "--date-col"),
    "date_format": ("customer_id,date,amount\n1,13/01/2024,10\n1,25/02/2024,5\n2,14/01/2024,3\n",
                    "--date-format"),
    "encoding": ("customer_id,date,amount,name\n1,2024-01-01,10,Jos\xe9\n1,2024-01-05,5,Ren\xe9e\n", "--encoding"),
}


@pytest.mark.parametrize("case", sorted(HINT_CASES))
def test_every_hint_names_a_flag_and_following_it_works(tmp_path: Path, case: str) -> None:
    """Issue 9: every hint names an argument that exists where the user is: follow it and it works."""
    text, expected_flag = HINT_CASES[case]
    src = tmp_path / "tx.csv"
    src.write_bytes(text.encode("latin-1"))
    args = ["summarize", src, "--time-unit", "D", "--out", tmp_path / "rfm.csv"]
    msg = one_line_error(run(*args))
    assert "=" not in msg.split(";")[-1] or "--" in msg  # no Python keyword left as the fix
    hints = [h for h in _hints(msg) if h[0] == expected_flag]
    assert hints, msg
    help_text = run("summarize", "--help").stdout
    for hint in _hints(msg):
        assert hint[0] in help_text, f"{hint[0]} (from {msg!r}) is not a flag of summarize"
    r = run(*args, *hints[0])
    assert r.exit_code == 0, (msg, hints[0], r.stderr)


def test_paths_and_values_in_messages_are_not_rewritten(tmp_path: Path) -> None:
    missing = tmp_path / "date=2024-01-01" / "missing.csv"
    msg = one_line_error(run("summarize", missing, "--out", tmp_path / "x.csv"))
    assert "date=2024-01-01" in msg and "--date-col" not in msg


def test_folders_and_formats_checked_before_fitting(tmp_path: Path) -> None:
    existing = tmp_path / "taken.csv"
    existing.write_text("x\n")
    assert "is a file; give a folder" in one_line_error(run("validate", SAMPLE, *DATES, "--out", existing))
    rfm = tmp_path / "rfm.csv"
    assert run("summarize", SAMPLE, "--observation-end", "1997-09-30", "--out", rfm).exit_code == 0
    assert "is a file; give a folder" in one_line_error(run("fit", rfm, "--time-unit", "W", "--out", existing))
    # JSON cannot carry an RFM table back into fit/predict, so summarize does not offer it
    assert "ending in .parquet" in one_line_error(run("summarize", SAMPLE, "--out", tmp_path / "rfm.json"))


# --- issue 13 and issue 9 (CLI): every error one line, global flags anywhere, inputs never overwritten ------


def test_usage_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    msg = one_line_error(run("summarize", SAMPLE))
    assert "--out" in msg and "Usage" not in msg
    msg = one_line_error(run("predict", tmp_path, SAMPLE, "--out", tmp_path / "f.csv", "--discount-rate", "abc"))
    assert "--discount-rate" in msg and "number" in msg
    msg = one_line_error(run("summarize", SAMPLE, "--out", tmp_path / "x.csv", "--no-such-flag"))
    assert "--no-such-flag" in msg


def test_quiet_and_debug_after_the_subcommand(tmp_path: Path) -> None:
    out = tmp_path / "rfm.csv"
    r = run("summarize", SAMPLE, "--observation-end", "1997-09-30", "--out", out, "--quiet")
    assert r.exit_code == 0 and out.exists() and r.stderr.strip() == ""
    r = run("summarize", tmp_path / "missing.csv", "--out", tmp_path / "x.csv", "--debug")
    assert r.exit_code == 2 and "Traceback" in r.stderr


def test_warnings_are_one_line_without_source(tmp_path: Path) -> None:
    src = tmp_path / "tx.csv"
    src.write_text("customer_id,date,amount\n1,2024-01-01,10\n1,2024-01-05,5\n2,bad,3\n2,2024-01-02,4\n")
    r = run("summarize", src, "--on-invalid", "drop", "--out", tmp_path / "rfm.csv")
    assert r.exit_code == 0, r.stderr
    warning_lines = [line for line in r.stderr.splitlines() if line.startswith("warning: ")]
    assert warning_lines and "dropped 1 of 4 rows" in warning_lines[0]
    assert "warnings.warn" not in r.stderr and ".py:" not in r.stderr


def test_out_that_is_an_input_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "tx.csv"
    shutil.copy(SAMPLE, src)
    before = src.read_bytes()
    assert "would overwrite the input" in one_line_error(run("summarize", src, "--out", src))
    assert src.read_bytes() == before
    assert "would overwrite the input" in one_line_error(
        run("summarize", src, "--out", tmp_path / "." / "tx.csv")
    )
    rfm = tmp_path / "rfm.parquet"
    assert run("summarize", src, "--observation-end", "1997-09-30", "--out", rfm).exit_code == 0
    assert "would overwrite the input" in one_line_error(run("predict", tmp_path, rfm, "--out", rfm))
    html = tmp_path / "r.html"
    html.write_text("customer_id,date,amount\n")
    assert "would overwrite the input" in one_line_error(run("report", html, "--out", html))


def test_out_below_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    msg = one_line_error(run("summarize", SAMPLE, "--out", blocker / "r.csv"))
    assert "blocker is a file" in msg and "Errno" not in msg
    msg = one_line_error(run("validate", SAMPLE, *DATES, "--out", blocker / "v"))
    assert "blocker is a file" in msg


def test_predict_refuses_tables_it_cannot_key_or_time(tmp_path: Path) -> None:
    rfm, models = tmp_path / "rfm.parquet", tmp_path / "models"
    assert run("summarize", SAMPLE, "--observation-end", "1997-09-30", "--out", rfm).exit_code == 0
    assert run("fit", rfm, "--out", models).exit_code == 0
    table = pd.read_parquet(rfm).reset_index().rename(columns={"customer_id": "cust"})
    no_id = tmp_path / "no_id.csv"
    table.to_csv(no_id, index=False)
    msg = one_line_error(run("predict", models, no_id, "--time-unit", "W", "--out", tmp_path / "f.csv"))
    assert "no customer_id column" in msg
    # a CSV does not record its unit: a daily table must not be read as weeks (the models are weekly)
    daily = tmp_path / "daily.csv"
    assert run("summarize", SAMPLE, "--observation-end", "1997-09-30", "--time-unit", "D",
               "--out", daily).exit_code == 0
    msg = one_line_error(run("predict", models, daily, "--out", tmp_path / "f.csv"))
    assert "does not record its time unit" in msg and "--time-unit" in msg
    msg = one_line_error(run("predict", models, daily, "--time-unit", "D", "--out", tmp_path / "f.csv"))
    assert "'D'" in msg and "'W'" in msg  # the model refuses a table in another unit
    assert run("predict", models, rfm, "--out", tmp_path / "ok.csv").exit_code == 0


def test_fit_on_a_transaction_log_says_so(tmp_path: Path) -> None:
    msg = one_line_error(run("fit", SAMPLE, "--out", tmp_path / "m"))
    assert "transaction log" in msg and "summarize" in msg and "--time-unit" not in msg


def test_folders_and_empty_files_as_rfm_tables(tmp_path: Path) -> None:
    folder = tmp_path / "rfm.csv"
    folder.mkdir()
    assert "is a folder" in one_line_error(run("fit", folder, "--time-unit", "W", "--out", tmp_path / "m"))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert "is empty" in one_line_error(run("fit", empty, "--time-unit", "W", "--out", tmp_path / "m"))


def test_zero_horizon_is_refused(tmp_path: Path) -> None:
    msg = one_line_error(run("report", SAMPLE, "--horizon", "0W", "--out", tmp_path / "r.html"))
    assert "--horizon 0W is zero" in msg


def test_silent_customers_from_the_cli_equal_the_api(tmp_path: Path) -> None:
    rfm, models, out = tmp_path / "rfm.parquet", tmp_path / "models", tmp_path / "silent.csv"
    assert run("summarize", SAMPLE, "--observation-end", "1998-06-30", "--out", rfm).exit_code == 0
    assert run("fit", rfm, "--out", models).exit_code == 0
    r = run("silent", models, rfm, "--horizon", "52W", "--discount-rate", "0.1", "--out", out)
    assert r.exit_code == 0, r.stderr
    table = pd.read_parquet(rfm)
    bg, gg = cf.load_model(models / "bgnbd.json"), cf.load_model(models / "gamma_gamma.json")
    forecast = cf.predictive_clv(bg, gg, table, horizon="52W", discount_rate=0.1)
    expected = cf.silent_customers(forecast, table)
    got = pd.read_csv(out, index_col="customer_id")
    assert len(got) == len(expected) > 0
    assert got.index.tolist() == expected.index.tolist()
    np.testing.assert_allclose(got["clv_if_alive"], expected["clv_if_alive"], rtol=1e-9)
    assert "silent customers" in r.stderr and "if retained" in r.stderr


def test_report_currency_flag(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    r = run("report", SAMPLE, *DATES, "--currency", "$", "--title", "CLV at margin=0.3 (date=1997 cohort)",
            "--out", out)
    assert r.exit_code == 0, r.stderr
    page = out.read_text()
    assert "$" in page
    assert "CLV at margin=0.3 (date=1997 cohort)" in page  # the user's words are not read as hints


def test_report_on_the_online_retail_log(tmp_path: Path) -> None:
    """Issue 9's command on the real retailer's line items (bundled copy of the shared log)."""
    out = tmp_path / "r.html"
    r = run("report", cf.datasets.online_retail_path(), "--customer-col", "Customer ID", "--date-col",
            "InvoiceDate", "--quantity-col", "Quantity", "--price-col", "Price", "--item-col", "StockCode",
            "--invoice-col", "Invoice", "--returns", "net", "--on-invalid", "drop", "--calibration-end",
            "2010-06-30", "--observation-end", "2010-12-09", "--currency", "£", "--out", out)
    assert r.exit_code == 0, r.stderr
    page = out.read_text()
    assert "Data preparation" in page and "£" in page
    # the report's notes name flags, as the command's messages do, not the Python arguments
    assert "--duplicates drop" in page and "duplicates=" not in page.replace("&#39;", "'")
    assert all(line.startswith(("warning: ", "report written")) or not line.strip()
               for line in r.stderr.splitlines()), r.stderr


def test_no_amount_log_through_summarize(tmp_path: Path) -> None:
    src = tmp_path / "visits.csv"
    pd.read_csv(SAMPLE)[["customer_id", "date"]].to_csv(src, index=False)
    out = tmp_path / "rfm.csv"
    r = run("summarize", src, "--no-amount", "--observation-end", "1997-09-30", "--out", out)
    assert r.exit_code == 0, r.stderr
    table = pd.read_csv(out)
    assert "monetary_value" not in table.columns and int(table["frequency"].sum()) == 2457


# --- issue 10 and 11 on the command line: --model, --interval, frequency-only tables -------------------------


def test_fit_and_predict_any_purchase_model_with_intervals(tmp_path: Path) -> None:
    rfm, models = tmp_path / "rfm.parquet", tmp_path / "models"
    assert run("summarize", SAMPLE, "--observation-end", "1997-09-30", "--out", rfm).exit_code == 0
    r = run("fit", rfm, "--model", "pnbd", "--out", models)
    assert r.exit_code == 0, r.stderr
    assert (models / "pnbd.json").exists() and (models / "gamma_gamma.json").exists()
    pnbd = cf.load_model(models / "pnbd.json")
    # the published Pareto/NBD maximum on CDNOW (published-numbers.md): r .553, alpha 10.578, s .606
    assert pnbd.params_[["r", "alpha", "s"]].tolist() == pytest.approx([0.5531, 10.5763, 0.6062], rel=2e-3)
    out = tmp_path / "f.csv"
    r = run("predict", models, rfm, "--interval", "0.9", "--horizon", "39W", "--out", out)
    assert r.exit_code == 0, r.stderr
    f = pd.read_csv(out, index_col="customer_id")
    # equal-tailed bounds of a whole-number count (a skewed count's mean may lie above its 95th percentile)
    assert (f["expected_purchases_lower"] <= f["expected_purchases_upper"]).all()
    assert (f["expected_purchases_upper"] == f["expected_purchases_upper"].round()).all()
    assert (f["clv_lower"] <= f["clv_upper"]).all() and (f["clv_lower"] >= 0).all()
    table = pd.read_parquet(rfm)
    expected = pnbd.expected_purchases(table, "39W")
    np.testing.assert_allclose(f["expected_purchases"], expected.loc[f.index], rtol=1e-9)
    # a second purchase model in the folder: predict asks which
    assert run("fit", rfm, "--out", models).exit_code == 0
    msg = one_line_error(run("predict", models, rfm, "--out", tmp_path / "g.csv"))
    assert "several purchase models" in msg and "--model" in msg
    assert run("predict", models, rfm, "--model", "bgnbd", "--out", tmp_path / "g.csv").exit_code == 0
    assert "--model" in one_line_error(run("fit", rfm, "--model", "nbd", "--out", models))


def test_frequency_only_table_fits_and_predicts_purchases(tmp_path: Path) -> None:
    src, rfm, models, out = (tmp_path / "visits.csv", tmp_path / "rfm.parquet", tmp_path / "m",
                             tmp_path / "f.csv")
    pd.read_csv(SAMPLE)[["customer_id", "date"]].to_csv(src, index=False)
    assert run("summarize", src, "--no-amount", "--observation-end", "1997-09-30", "--out", rfm).exit_code == 0
    r = run("fit", rfm, "--out", models)
    assert r.exit_code == 0, r.stderr
    assert (models / "bgnbd.json").exists() and not (models / "gamma_gamma.json").exists()
    r = run("predict", models, rfm, "--out", out)
    assert r.exit_code == 0, r.stderr
    f = pd.read_csv(out, index_col="customer_id")
    assert {"expected_purchases", "probability_alive"} <= set(f.columns) and "clv" not in f.columns
    msg = one_line_error(run("silent", models, rfm, "--out", tmp_path / "s.csv"))
    assert "spend" in msg


def test_validate_with_a_model_and_intervals(tmp_path: Path) -> None:
    out = tmp_path / "v"
    r = run("validate", SAMPLE, *DATES, "--model", "mbgnbd", "--interval", "0.9", "--out", out)
    assert r.exit_code == 0, r.stderr
    totals = pd.read_csv(out / "totals.csv", index_col=0)
    assert int(totals.loc["purchases", "actual"]) == 1882  # published holdout repeat transactions
    assert (out / "pit.png").exists()
    assert "% of customers" in r.stdout and "interval of the total" in r.stdout


def test_predict_streams_a_large_parquet_table_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above cli._STREAM_ROWS customers a Parquet table is scored chunk by chunk into the Parquet output: the
    same rows and numbers (intervals included) as scoring the whole table, and a repeated id across chunks is
    refused (each chunk alone would not see it)."""
    import pyarrow.parquet as pq

    import clvforecast.cli as cli

    rfm_path, models = tmp_path / "rfm.parquet", tmp_path / "models"
    assert run("summarize", SAMPLE, "--observation-end", "1997-09-30", "--time-unit", "W", "--out",
               rfm_path).exit_code == 0
    assert run("fit", rfm_path, "--out", models).exit_code == 0
    args = ("--horizon", "39W", "--discount-rate", "0.1", "--interval", "0.8")
    whole = tmp_path / "whole.parquet"
    assert run("predict", models, rfm_path, *args, "--out", whole).exit_code == 0
    monkeypatch.setattr(cli, "_STREAM_ROWS", 500)  # 2,357 customers: five chunks
    streamed = tmp_path / "streamed.parquet"
    r = run("predict", models, rfm_path, *args, "--out", streamed)
    assert r.exit_code == 0, r.stderr
    assert pq.ParquetFile(streamed).metadata.num_row_groups == 5
    a, b = pd.read_parquet(whole), pd.read_parquet(streamed)
    assert len(b) == 2357 and list(a.columns) == list(b.columns)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)
    # a chunk's totals are not the table's: the streamed file leaves them out rather than mislabel them
    assert "totals" in a.attrs and "totals" not in b.attrs and b.attrs["interval"] == a.attrs["interval"]

    # a table written by pyarrow keeps its attrs in the pandas metadata's "attributes" (the time unit found)
    import pyarrow as pa

    table = pd.read_parquet(rfm_path)
    by_arrow = tmp_path / "arrow.parquet"
    pq.write_table(pa.Table.from_pandas(table), by_arrow)
    assert b"PANDAS_ATTRS" not in pq.ParquetFile(by_arrow).schema_arrow.metadata
    r = run("predict", models, by_arrow, *args, "--out", tmp_path / "arrow_out.parquet")
    assert r.exit_code == 0, r.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "arrow_out.parquet"), b, check_exact=False,
                                  rtol=1e-12)

    # ids missing in a later chunk (a file from another tool): refused before anything is written
    no_id = table.reset_index().astype({"customer_id": "float64"})
    no_id.loc[2000, "customer_id"] = np.nan
    pq.write_table(pa.Table.from_pandas(no_id, preserve_index=False).replace_schema_metadata(None),
                   tmp_path / "no_id.parquet")
    msg = one_line_error(run("predict", models, tmp_path / "no_id.parquet", "--time-unit", "W",
                             "--out", tmp_path / "n.parquet"))
    assert "1 rows have no customer_id" in msg and not (tmp_path / "n.parquet").exists()

    dup = pd.concat([table, table.iloc[[3]]])
    dup.to_parquet(tmp_path / "dup.parquet")
    msg = one_line_error(run("predict", models, tmp_path / "dup.parquet", "--out", tmp_path / "d.parquet"))
    assert "customer ids must be unique; 1 rows repeat an id" in msg and not (tmp_path / "d.parquet").exists()


def test_summarize_memory_limit_reaches_duckdb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clvforecast.io import MEMORY_LIMIT_ENV, DuckDBEngine

    monkeypatch.delenv(MEMORY_LIMIT_ENV, raising=False)
    msg = one_line_error(run("summarize", SAMPLE, "--memory-limit", "lots", "--out", tmp_path / "r.parquet"))
    assert "--memory-limit 'lots'" in msg and "2GB" in msg
    msg = one_line_error(run("summarize", SAMPLE, "--memory-limit", "10KB", "--out", tmp_path / "r.parquet"))
    assert "--memory-limit '10KB' is too small" in msg and "64MB" in msg
    msg = one_line_error(run("summarize", SAMPLE, "--memory-limit", "2GB", "--engine", "spark",
                             "--out", tmp_path / "r"))
    assert "--memory-limit is DuckDB's" in msg and "spark.driver.memory" in msg
    out = tmp_path / "r.parquet"
    seen: list[str] = []
    connect = DuckDBEngine.connect

    def recording(self: DuckDBEngine) -> object:  # every connection of the step reads the flag's limit
        con = connect(self)
        seen.append(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])
        return con

    monkeypatch.setattr(DuckDBEngine, "connect", recording)
    r = run("summarize", SAMPLE, "--observation-end", "1997-09-30", "--memory-limit", "64MB", "--out", out)
    assert r.exit_code == 0, r.stderr
    assert len(pd.read_parquet(out)) == 2357  # published: 2,357 customers
    assert seen and set(seen) <= {"61.0 MiB", "64.0 MB"}
    assert MEMORY_LIMIT_ENV not in os.environ  # set for the step only (the command may run in-process)


def test_report_model_and_interval_flags(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    r = run("report", SAMPLE, "--observation-end", "1997-09-30", "--model", "pnbd", "--interval", "0", "--out", out)
    assert r.exit_code == 0, r.stderr
    html = out.read_text()
    assert "Pareto/NBD" in html and "90% range" not in html
    msg = one_line_error(run("report", SAMPLE, "--model", "auto", "--out", tmp_path / "a.html"))
    assert "--model auto" in msg and "--calibration-end" in msg
    msg = one_line_error(run("report", SAMPLE, "--model", "bgbb", "--out", tmp_path / "b.html"))
    assert "--model bgbb" in msg and "pnbd" in msg
    msg = one_line_error(run("report", SAMPLE, "--interval", "90", "--out", tmp_path / "c.html"))
    assert "--interval 0.9" in msg


def test_a_warning_repeated_by_several_fits_is_printed_once(tmp_path: Path) -> None:
    """The report refits the model at each past cutoff; a log simulated without dropout makes every BG/NBD fit
    warn the same words, which the command prints once."""
    rng = np.random.default_rng(3)
    rows = []
    for c in range(300):  # Poisson buyers who never leave: no evidence of dropout
        first = rng.integers(0, 60)
        days = np.sort(np.concatenate([[first], first + rng.integers(1, 400 - first, rng.poisson(6))]))
        rows += [(c, pd.Timestamp("2023-01-01") + pd.Timedelta(days=int(d)), 10.0) for d in days]
    path = tmp_path / "tx.csv"
    pd.DataFrame(rows, columns=["customer_id", "date", "amount"]).to_csv(path, index=False)
    r = run("report", path, "--calibration-end", "2023-09-30", "--observation-end", "2024-02-04",
            "--time-unit", "W", "--model", "bgnbd", "--out", tmp_path / "r.html")
    assert r.exit_code == 0, r.stderr
    warned = [line for line in r.stderr.splitlines() if line.startswith("warning: ")]
    assert warned and len(warned) == len(set(warned)), r.stderr


def test_an_unexpected_error_is_one_line_and_the_traceback_is_behind_debug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something inside broke\nsecond line")

    monkeypatch.setattr(cf, "rfm_summary", broken)
    r = run("summarize", SAMPLE, "--out", tmp_path / "r.parquet")
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.exit_code == 1 and len(lines) == 1, r.stderr
    assert lines[0].startswith("error: unexpected RuntimeError: something inside broke (a bug")
    assert "--debug" in lines[0] and "Traceback" not in r.stderr + r.stdout
    r = run("--debug", "summarize", SAMPLE, "--out", tmp_path / "r.parquet")
    assert r.exit_code == 1 and isinstance(r.exception, RuntimeError)
