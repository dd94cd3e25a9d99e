"""Issue 9: each failure listed at the top of the issue, tried again as the user tried it.

Most failures already have a test next to the module they concern; this file holds the ones that had none (or
only a test of the Python API where the user also met the failure on the command line). The map, failure by
failure (test names, file::test):

1. amount = quantity x price: test_returns.py::test_line_items_amount_is_quantity_times_price.
2. on_invalid="drop" kept the cancelled orders: test_returns.py::test_a_full_cancellation_the_same_day_removes_the_order
   (the issue's 168,469.60 order) and here: the ranking by CLV and the holdout's actual spend.
3. read_transactions' cleaning lost afterwards: test_returns.py::test_the_ledger_continues_from_read_transactions
   (rfm_summary), test_ledger.py::test_the_ledger_travels_through_every_function, and here through ForecastReport.
4. hints naming arguments that do not exist: test_ledger.py::test_every_hint_names_an_argument_that_works_where_it_is_given
   (every function with a source), test_cli.py::test_every_hint_names_a_flag_and_following_it_works, and here
   ForecastReport and evaluate_holdout, and the CLI's rate and margin hints.
5. a log without amounts: test_ledger.py::test_frequency_only_logs_work_in_every_function,
   test_report_options.py (ForecastReport), test_cli.py::test_no_amount_log_through_summarize, and here report and
   validate on the command line.
6. ids change type with the source: test_sources.py::test_whole_number_float_ids_in_a_csv_are_integers_as_in_the_dataframe.
7. discount_rate=10 / margin=30 accepted: test_clv.py::test_errors (predictive_clv), test_report.py::
   test_a_margin_above_one_is_refused (ForecastReport), and here `clvforecast predict` / `report`.
   date_format ignored by the cutoffs: test_sources.py::test_date_format_applies_to_the_cutoffs, and here on the CLI.
   '#' ids lost to CSV sniffing: test_sources.py::test_ids_beginning_with_a_hash_are_ids_not_comments, and here on
   the CLI.
8. --out overwriting the input, predict losing ids or reading days as weeks:
   test_cli.py::test_out_that_is_an_input_is_refused, test_cli.py::test_predict_refuses_tables_it_cannot_key_or_time.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import clvforecast as cf
from clvforecast.cli import app
from clvforecast.evaluation import evaluate_holdout
from clvforecast.exceptions import DataQualityWarning, DataValidationError

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "cdnow_sample.csv"
CAL_END, OBS_END = "1997-09-30", "1998-06-30"
runner = CliRunner()


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result) -> str:  # noqa: ANN001
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def _quiet(call):  # noqa: ANN001, ANN202
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call()


@pytest.fixture(scope="module")
def small(cdnow_tx: pd.DataFrame) -> pd.DataFrame:
    """The first 300 CDNOW customers (about 900 rows): enough for a report, fast."""
    return cdnow_tx[cdnow_tx["customer_id"] <= 300].reset_index(drop=True)


# --- failure 2: a cancelled order ranked a customer third by CLV and inflated the holdout's actual spend -------


def _with_a_cancelled_order(tx: pd.DataFrame) -> pd.DataFrame:
    """CDNOW plus customer 99999: 20.00 on 1997-01-05 and 25.00 on 1997-05-02, an order of 168,469.60 on
    1997-03-01 09:15 cancelled at 09:27, and in the holdout an order of 5,000.00 on 1998-02-02 10:00 returned in
    full on 1998-02-20 (no other purchase of that customer after it)."""
    timed = tx.assign(date=tx["date"].dt.strftime("%Y-%m-%d 12:00"))
    extra = pd.DataFrame(
        {
            "customer_id": [99999] * 6,
            "date": ["1997-01-05 12:00", "1997-03-01 09:15", "1997-03-01 09:27", "1997-05-02 12:00",
                     "1998-02-02 10:00", "1998-02-20 10:00"],  # fmt: skip
            "quantity": [1] * 6,
            "amount": [20.0, 168_469.60, -168_469.60, 25.0, 5_000.0, -5_000.0],
        }
    )
    return pd.concat([timed, extra], ignore_index=True)


def test_a_cancelled_order_neither_ranks_its_customer_nor_counts_as_holdout_spend(cdnow_tx: pd.DataFrame) -> None:
    log = _with_a_cancelled_order(cdnow_tx)
    # The old reading (on_invalid='drop' alone) drops the two cancellation lines and keeps the orders they
    # cancel, but now says so.
    with pytest.warns(DataQualityWarning, match="not netted"):
        old = cf.calibration_holdout(log, calibration_end=CAL_END, observation_end=OBS_END, time_unit="W",
                                     on_invalid="drop")  # fmt: skip
    assert old.loc[99999, "monetary_value"] == pytest.approx((168_469.60 + 25.0) / 2)
    net = _quiet(lambda: cf.calibration_holdout(log, calibration_end=CAL_END, observation_end=OBS_END,
                                                time_unit="W", returns="net"))  # fmt: skip
    # By hand: the 03-01 order nets to zero (09:27 is after 09:15) and is no longer a purchase; calibration
    # purchase days 01-05 (20) and 05-02 (25): frequency 1, recency 117 days = 16.714 weeks, monetary 25.
    # Holdout: the 1998-02-02 order is consumed in full by the 02-20 return: no holdout purchase, no spend.
    row = net.loc[99999]
    assert row["frequency"] == 1 and row["recency"] == pytest.approx(117 / 7)
    assert row["monetary_value"] == 25.0
    assert row["holdout_frequency"] == 0 and row["holdout_spend"] == 0.0
    assert old.loc[99999, "holdout_spend"] == 5_000.0  # what the old reading counted as actual spend
    entries = {e["key"]: e for e in net.attrs["ledger"]["entries"]}
    assert entries["orders_cancelled"]["rows"] == 2
    assert entries["orders_cancelled"]["value"] == pytest.approx(168_469.60 + 5_000.0)

    # The ranking by CLV: with the cancelled order kept the customer is first; netted, nowhere near the top.
    def rank(table: pd.DataFrame) -> int:
        bg = _quiet(lambda: cf.BetaGeo().fit(table))
        gg = _quiet(lambda: cf.GammaGamma().fit(table))
        clv = cf.predictive_clv(bg, gg, table, horizon="52W", discount_rate=0.1)["clv"]
        return int(clv.rank(ascending=False, method="min")[99999])

    assert rank(old) == 1
    assert rank(net) > 100

    # evaluate_holdout's actual spend: the sum of the holdout purchases, netted (not the 5,000 returned order)
    ev = _quiet(lambda: evaluate_holdout(log, calibration_end=CAL_END, observation_end=OBS_END, returns="net"))
    in_holdout = cdnow_tx[cdnow_tx["date"] > CAL_END]["amount"].sum()  # CDNOW has no returns
    assert float(ev.metric("total_actual", "spend").iloc[0]) == pytest.approx(in_holdout, rel=1e-12)


# --- failure 3: cleaning done with read_transactions reaches the report ---------------------------------------


def test_the_report_continues_the_ledger_of_read_transactions(small: pd.DataFrame) -> None:
    log = small.assign(customer_id=small["customer_id"].astype("float"))
    log.loc[[3, 7, 9], "customer_id"] = None
    with pytest.warns(DataQualityWarning, match="dropped 3 of"):
        tidy = cf.read_transactions(log, on_invalid="drop")
    rep = cf.ForecastReport(tidy, observation_end=OBS_END, model="bgnbd", interval=None, currency="$")
    prep = _quiet(lambda: rep.summary["data_preparation"])
    assert (prep["rows_read"], prep["rows_removed"], prep["rows_used"]) == (len(log), 3, len(log) - 3)
    assert prep["identity_holds"] and "no row was removed" not in prep["text"]
    steps = {row[0]: row[1] for row in prep["table"]["rows"]}
    assert steps["Rows without a customer id"] == -3
    assert "Rows without a customer id" in rep.to_html()


# --- failure 4: every hint names an argument of the function it comes from ------------------------------------

CALLS = {
    "ForecastReport": lambda s, **o: cf.ForecastReport(s, observation_end=OBS_END, model="bgnbd", interval=None,
                                                       **o).summary,
    "evaluate_holdout": lambda s, **o: evaluate_holdout(s, calibration_end=CAL_END, observation_end=OBS_END, **o),
    "repeat_transaction_tracking": lambda s, **o: cf.evaluation.repeat_transaction_tracking(
        s, calibration_end=CAL_END, observation_end=OBS_END, **o),
    "compare_models": lambda s, **o: cf.evaluation.compare_models(
        s, calibration_end=CAL_END, observation_end=OBS_END, models=("bgnbd",), **o),
    "backtest": lambda s, **o: cf.evaluation.backtest(s, cutoffs=[CAL_END], horizon="13W", progress=False, **o),
}


def _bad_logs(small: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, str, str]]:
    negative = small.copy()
    negative.loc[5, "amount"] = -5.0
    no_id = small.assign(customer_id=small["customer_id"].astype("float"))
    no_id.loc[5, "customer_id"] = None
    day_first = small.assign(date=small["date"].dt.strftime("%d/%m/%Y"))
    return {"returns": (negative, "returns", "net"), "missing ids": (no_id, "on_invalid", "drop"),
            "day-first dates": (day_first, "date_format", "%d/%m/%Y")}


@pytest.mark.parametrize("function", list(CALLS))
@pytest.mark.parametrize("case", ["returns", "missing ids", "day-first dates"])
def test_report_and_evaluation_hints_name_an_argument_that_works(small: pd.DataFrame, function: str,
                                                                 case: str) -> None:
    log, name, value = _bad_logs(small)[case]
    with pytest.raises(DataValidationError) as err:
        _quiet(lambda: CALLS[function](log))
    m = re.search(r"(?:pass|did you mean) (\w+)=('(?:[^']|'')*')", str(err.value))
    assert m and (m[1], m[2][1:-1]) == (name, value), str(err.value)
    assert _quiet(lambda: CALLS[function](log, **{name: value})) is not None  # the hint, followed


def test_the_old_keyword_named_by_the_old_hint_works_in_the_report(small: pd.DataFrame) -> None:
    # The issue: ForecastReport said "pass negative_amounts='drop'", which was then a TypeError.
    negative = small.copy()
    negative.loc[5, "amount"] = -5.0
    rep = cf.ForecastReport(negative, observation_end=OBS_END, model="bgnbd", interval=None,
                            negative_amounts="drop")  # fmt: skip
    prep = _quiet(lambda: rep.summary["data_preparation"])
    assert {row[0]: row[1] for row in prep["table"]["rows"]}[
        "Returns and cancellations dropped (not netted against purchases)"] == -1


# --- failures 4 and 7 on the command line: rates and margins refused, the fix named as a flag ------------------


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("fitted")
    rfm, models = tmp / "rfm.parquet", tmp / "models"
    assert run("summarize", SAMPLE, "--observation-end", CAL_END, "--out", rfm).exit_code == 0
    assert run("fit", rfm, "--out", models).exit_code == 0
    return rfm, models


@pytest.mark.parametrize(("flag", "bad", "fix", "words"), [
    ("--discount-rate", "10", "0.1", "1,000% a year"),
    ("--margin", "30", "0.3", "more than the whole spend"),
])
def test_predict_refuses_a_rate_or_margin_in_percent_and_names_the_flag(fitted, tmp_path: Path, flag: str,  # noqa: ANN001
                                                                        bad: str, fix: str, words: str) -> None:
    rfm, models = fitted
    out = tmp_path / "f.csv"
    msg = one_line_error(run("predict", models, rfm, flag, bad, "--out", out))
    assert words in msg and f"pass {flag} {fix} for {bad}%" in msg, msg
    assert "_rate=" not in msg and "margin=" not in msg  # no Python keyword on the command line
    assert not out.exists()
    r = run("predict", models, rfm, flag, fix, "--out", out)  # the hint, followed
    assert r.exit_code == 0, r.stderr
    assert len(pd.read_csv(out)) == 2357


def test_report_refuses_a_rate_or_margin_in_percent(tmp_path: Path) -> None:
    msg = one_line_error(run("report", SAMPLE, "--margin", "30", "--out", tmp_path / "r.html"))
    assert "pass --margin 0.3 for 30%" in msg
    msg = one_line_error(run("report", SAMPLE, "--discount-rate", "10", "--out", tmp_path / "r.html"))
    assert "pass --discount-rate 0.1 for 10% a year" in msg


# --- failure 5 on the command line: a log without amounts in report and validate ---------------------------


@pytest.fixture(scope="module")
def visits(small: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("visits") / "visits.csv"
    small[["customer_id", "date"]].to_csv(path, index=False, date_format="%Y-%m-%d")
    return path


def test_report_without_amounts_from_the_command_line(visits: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    r = run("report", visits, "--no-amount", "--observation-end", OBS_END, "--out", out)
    assert r.exit_code == 0, r.stderr
    page = out.read_text()
    assert "The transaction log has no amounts, so " in page and "expected purchases" in page.lower()
    # without --no-amount the missing column is named, and the fix is a flag of this subcommand
    msg = one_line_error(run("report", visits, "--observation-end", OBS_END, "--out", tmp_path / "x.html"))
    assert "'amount'" in msg and "--no-amount" in msg


def test_validate_without_amounts_from_the_command_line(visits: Path, small: pd.DataFrame, tmp_path: Path) -> None:
    out = tmp_path / "v"
    r = run("validate", visits, "--no-amount", "--calibration-end", CAL_END, "--observation-end", OBS_END,
            "--time-unit", "W", "--out", out)
    assert r.exit_code == 0, r.stderr
    customers = pd.read_csv(out / "customers.csv")
    assert not [c for c in customers.columns if "spend" in c]
    # the actual holdout purchases, counted directly: purchase days after the calibration end
    days = small[["customer_id", "date"]].drop_duplicates()
    assert f"actual total {int((days['date'] > CAL_END).sum()):,}" in r.stdout


# --- failure 7 on the command line: cutoffs read with --date-format; '#' ids kept ---------------------------


def test_cutoffs_follow_date_format_on_the_command_line(cdnow_tx: pd.DataFrame, tmp_path: Path) -> None:
    src = tmp_path / "dmy.csv"
    cdnow_tx.assign(date=cdnow_tx["date"].dt.strftime("%d/%m/%Y")).to_csv(src, index=False)
    out = tmp_path / "cal.csv"
    r = run("summarize", src, "--date-format", "%d/%m/%Y", "--calibration-end", "01/09/1997",
            "--observation-end", "30/06/1998", "--out", out)
    assert r.exit_code == 0, r.stderr
    assert len(pd.read_csv(out)) == 2357  # 1 September 1997, not 9 January (199 customers)
    msg = one_line_error(run("summarize", SAMPLE, "--calibration-end", "01/09/1997", "--observation-end",
                             OBS_END, "--out", tmp_path / "x.csv"))  # fmt: skip
    assert "--calibration-end 01/09/1997 is ambiguous" in msg and "--date-format '%d/%m/%Y'" in msg


def test_hash_ids_are_kept_on_the_command_line(tmp_path: Path) -> None:
    rows = [f"{'#' if i % 3 == 0 else ''}{i % 250},2024-01-{1 + i % 28:02d},{i}.5" for i in range(1000)]
    src = tmp_path / "hash.csv"
    src.write_text("customer_id,date,amount\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "rfm.csv"
    r = run("summarize", src, "--observation-end", "2024-01-28", "--out", out)
    assert r.exit_code == 0, r.stderr
    table = pd.read_csv(out, dtype={"customer_id": str})
    # ids: i % 250 with a '#' when i % 3 == 0, counted directly
    expected = {f"{'#' if i % 3 == 0 else ''}{i % 250}" for i in range(1000)}
    assert set(table["customer_id"]) == expected and "warning" not in r.stderr


# --- build item 10: the line-item flags on the command line, on a hand-built log ---------------------------

LINES = """cust,ts,sku,qty,price,inv
1,2024-01-01 10:00,X,2,5.0,i1
1,2024-01-01 10:00,X,2,5.0,i1
1,2024-01-10 09:00,Y,1,30.0,i2
1,2024-01-10 09:30,Y,-1,30.0,C3
1,2024-02-01 12:00,X,1,5.0,i4
2,2024-01-05 08:00,X,3,2.0,i5
2,2024-01-20 08:00,Z,-1,4.0,C6
2,2024-01-25 08:00,X,1,2.0,i7
"""
LINE_FLAGS = ["--customer-col", "cust", "--date-col", "ts", "--quantity-col", "qty", "--price-col", "price",
              "--item-col", "sku", "--invoice-col", "inv", "--observation-end", "2024-02-29", "--time-unit", "D"]


def test_line_item_flags_returns_and_duplicates_on_the_command_line(tmp_path: Path) -> None:
    src = tmp_path / "lines.csv"
    src.write_text(LINES)
    # default: returns are refused, with the count and the fixes as flags
    msg = one_line_error(run("summarize", src, *LINE_FLAGS, "--out", tmp_path / "x.csv"))
    assert "columns 'qty' x 'price'" in msg and "('-1', '30.0')" in msg  # crashed in DuckDB's binder before
    assert "2 of 8 rows" in msg and "--returns net" in msg and "--returns drop" in msg

    # --returns net --duplicates drop, by hand (amount = qty x price; matched by item, latest first):
    #   customer 1: 01-01 X 10 (its exact duplicate dropped); 01-10 Y 30 cancelled by C3 at 09:30 -> the day nets
    #     to 0 and is no purchase; 02-01 X 5 -> frequency 1, recency 31 days, T 59 days (to 02-29), monetary 5.
    #   customer 2: C6 returns Z, never bought: unmatched, dropped; 01-05 X 6, 01-25 X 2 -> frequency 1,
    #     recency 20, T 55, monetary 2.
    #   rows: 8 read = 4 used + 1 duplicate + 1 return netted + 1 order cancelled (i2) + 1 return unmatched.
    out = tmp_path / "net.parquet"
    r = run("summarize", src, *LINE_FLAGS, "--returns", "net", "--duplicates", "drop", "--out", out)
    assert r.exit_code == 0, r.stderr
    table = pd.read_parquet(out)
    assert table.loc[1].tolist() == [1, 31.0, 59.0, 5.0]
    assert table.loc[2].tolist() == [1, 20.0, 55.0, 2.0]
    ledger = table.attrs["ledger"]
    rows = {e["key"]: e["rows"] for e in ledger["entries"]}
    assert (ledger["rows_read"], ledger["rows_used"]) == (8, 4) and ledger["identity_holds"]
    assert rows["duplicates"] == 1 and rows["returns_netted"] == 1 and rows["returns_unmatched"] == 1
    assert rows["orders_cancelled"] + rows.get("lines_cancelled", 0) == 1

    # --returns drop, duplicates kept (line items are checked by default) with a one-line warning and its count:
    #   customer 1: 01-01 20 (both lines), 01-10 30 (its return dropped, the order kept), 02-01 5 -> frequency 2,
    #     recency 31, T 59, monetary (30 + 5) / 2 = 17.5; customer 2 as above.
    out = tmp_path / "drop.csv"
    r = run("summarize", src, *LINE_FLAGS, "--returns", "drop", "--out", out)
    assert r.exit_code == 0, r.stderr
    table = pd.read_csv(out, index_col="customer_id")
    assert table.loc[1].tolist() == [2, 31.0, 59.0, 17.5]
    assert table.loc[2].tolist() == [1, 20.0, 55.0, 2.0]
    warnings_ = [line for line in r.stderr.splitlines() if line.startswith("warning: ")]
    assert any("1 row repeats another row exactly" in w and "--duplicates drop" in w for w in warnings_)
    assert any("2 negative amount" in w for w in warnings_), r.stderr


def test_returns_in_line_items_are_refused_with_the_fix_and_the_fix_works() -> None:
    # A line-item log (no amount column) with a cancellation line crashed in DuckDB ("amount_raw" not found)
    # instead of giving the returns message.
    lines = pd.DataFrame({"customer_id": [1, 1, 2], "date": ["2024-01-01", "2024-01-02", "2024-01-03"],
                          "qty": [2, -2, 1], "price": [5.0, 5.0, 2.0]})  # fmt: skip
    with pytest.raises(DataValidationError) as err:
        cf.read_transactions(lines, quantity="qty", price="price")
    msg = str(err.value)
    assert "columns 'qty' x 'price': 1 of 3 rows have a negative value" in msg and "(-2, 5.0)" in msg
    m = re.search(r"pass (\w+)='(\w+)'", msg)
    assert m and (m[1], m[2]) == ("returns", "net")
    tidy = _quiet(lambda: cf.read_transactions(lines, quantity="qty", price="price", returns="net"))
    # by hand: the return (2 x 5 = -10) consumes customer 1's purchase of 10 in full: only customer 2's 2.0 is left
    assert tidy["customer_id"].tolist() == [2] and tidy["amount"].tolist() == [2.0]
