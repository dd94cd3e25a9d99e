"""One description of the source (TransactionLog, read options everywhere), hints that work where they are
given, the ledger through every function, frequency-only logs, and the discrete-time table."""

from __future__ import annotations

import dataclasses
import json
import re
import warnings
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

import clvforecast as cf
from clvforecast.evaluation import cohort_days
from clvforecast.exceptions import DataQualityWarning, DataValidationError
from clvforecast.io import READ_OPTIONS, as_log

# Every public function that takes a transaction source, called with its own arguments.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "read_transactions": lambda s, **o: cf.read_transactions(s, **o),
    "rfm_summary": lambda s, **o: cf.rfm_summary(s, observation_end="2024-03-31", **o),
    "calibration_holdout": lambda s, **o: cf.calibration_holdout(
        s, calibration_end="2024-02-15", observation_end="2024-03-31", **o
    ),
    "discrete_summary": lambda s, **o: cf.discrete_summary(s, period="M", observation_end="2024-03-31", **o),
    "cohort_days": lambda s, **o: cohort_days(s, calibration_end="2024-02-15", observation_end="2024-03-31", **o),
    "historical_clv": lambda s, **o: cf.historical_clv(s, lifespan_years=2, periods_per_year=4, **o),
    "estimate_lifespan": lambda s, **o: cf.estimate_lifespan(s, window="30D", **o),
    "historical_forecast": lambda s, **o: cf.historical_forecast(s, calibration_end="2024-02-15", horizon="4W", **o),
}


def _log(**overrides: list) -> pd.DataFrame:
    data = {
        "customer_id": [1, 1, 2, 3, 3, 4, 2, 1],
        "date": ["2024-01-05", "2024-02-10", "2024-01-20", "2024-01-03", "2024-03-15", "2024-02-01", "2024-03-02",
                 "2024-03-20"],
        "amount": [10.0, 20.0, 5.5, 7.25, 8.0, 3.0, 6.0, 4.0],
    }  # fmt: skip
    data.update(overrides)
    return pd.DataFrame(data)


def _quiet(call: Callable[[], Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        return call()


def _hint(message: str) -> tuple[str, str]:
    """The first argument a message tells the user to pass: ``pass name='value'`` or ``did you mean name='value'``."""
    m = re.search(r"(?:pass|did you mean) (\w+)=('(?:[^']|'')*')", message)
    assert m, f"no hint in: {message}"
    return m[1], m[2][1:-1]


# --- the hints, followed -------------------------------------------------------------------------------------

BAD = {
    "null ids": (_log(customer_id=[1, None, 2, 3, 3, 4, 2, 1]), "on_invalid", "drop"),
    "returns": (_log(amount=[10.0, 20.0, 5.5, 7.25, -8.0, 3.0, 6.0, 4.0]), "returns", "net"),
    "day-first dates": (
        _log(date=["05/01/2024", "10/02/2024", "20/01/2024", "03/01/2024", "15/03/2024", "01/02/2024",
                   "02/03/2024", "20/03/2024"]),  # fmt: skip
        "date_format", "%d/%m/%Y",
    ),
    "a column under another name": (_log().rename(columns={"customer_id": "CustomerID"}), "customer_id",
                                     "CustomerID"),  # fmt: skip
}


@pytest.mark.parametrize("function", list(FUNCTIONS))
@pytest.mark.parametrize("case", list(BAD))
def test_every_hint_names_an_argument_that_works_where_it_is_given(function: str, case: str) -> None:
    log, name, value = BAD[case]
    call = FUNCTIONS[function]
    if function == "estimate_lifespan" and case == "returns":  # it reads no amounts unless told
        assert _quiet(lambda: call(log)) is not None
    with pytest.raises(DataValidationError) as err:
        _quiet(lambda: call(log, amount="amount") if function == "estimate_lifespan" else call(log))
    assert _hint(str(err.value)) == (name, value)
    result = _quiet(lambda: call(log, **{name: value}))  # following the hint works
    assert result is not None


def test_the_zero_amount_and_duplicate_and_extreme_hints_work() -> None:
    log = _log(amount=[10.0, 0.0, 5.5, 7.25, 8.0, 3.0, 6.0, 4.0])
    with pytest.raises(DataValidationError) as err:
        cf.rfm_summary(log, zero_amounts="raise")
    name, value = _hint(str(err.value))
    assert (name, value) == ("zero_amounts", "keep")
    assert cf.rfm_summary(log, zero_amounts=value).loc[1, "frequency"] == 2
    dup = pd.concat([_log(), _log().iloc[[0]]], ignore_index=True).assign(sku="x")
    with pytest.warns(DataQualityWarning, match="1 row repeats another row exactly") as record:
        cf.rfm_summary(dup, item="sku")
    name, value = _hint(str(record[0].message))
    assert (name, value) == ("duplicates", "drop")
    table = cf.rfm_summary(dup, item="sku", duplicates=value)
    assert {e["key"]: e["rows"] for e in table.attrs["ledger"]["entries"]}["duplicates"] == 1


# --- TransactionLog and the read options ---------------------------------------------------------------------


def test_an_unknown_read_option_is_named_with_the_valid_ones() -> None:
    with pytest.raises(TypeError, match=r"rfm_summary\(\) got an unexpected keyword argument 'retruns' \(did you "
                       r"mean returns\?\); the read options are customer_id, date, amount"):  # fmt: skip
        cf.rfm_summary(_log(), retruns="net")
    with pytest.raises(TypeError, match="read_transactions.* 'observation_end'"):
        cf.read_transactions(_log(), observation_end="2024-01-01")


def test_a_transaction_log_is_accepted_wherever_a_source_is() -> None:
    raw = _log(amount=[10.0, 20.0, 5.5, 7.25, -8.0, 3.0, 6.0, 4.0]).rename(columns={"customer_id": "cust"})
    log = cf.TransactionLog(raw, customer_id="cust", returns="net")
    for name, call in FUNCTIONS.items():
        by_log = _quiet(lambda call=call: call(log))
        by_keywords = _quiet(lambda call=call: call(raw, customer_id="cust", returns="net"))
        if isinstance(by_log, pd.DataFrame):
            pd.testing.assert_frame_equal(by_log, by_keywords, obj=name)
        elif isinstance(by_log, tuple):
            for a, b in zip(by_log, by_keywords, strict=True):
                pd.testing.assert_frame_equal(a, b, obj=name)
        else:
            assert by_log.summary == by_keywords.summary, name
    assert "customer_id='cust'" in repr(log) and "DataFrame(8 rows)" in repr(log)


def test_keywords_complete_a_transaction_log_but_never_contradict_it() -> None:
    log = cf.TransactionLog(_log(), returns="net")
    assert as_log(log, on_invalid="drop").on_invalid == "drop"  # left at its default in the log: completed
    assert as_log(log, returns="net") is not None  # the same value twice is fine
    with pytest.raises(TypeError, match=r"returns='drop' is given as a keyword and returns='net' in the "
                       r"TransactionLog; give it once"):  # fmt: skip
        as_log(log, returns="drop")
    assert as_log(_log(), negative_amounts="drop").returns == "drop"  # the old name
    with pytest.raises(TypeError, match="disagree"):
        as_log(_log(), negative_amounts="drop", returns="net")
    assert set(READ_OPTIONS) == {f.name for f in dataclasses.fields(cf.TransactionLog)} - {"source"}
    with pytest.raises(ValueError, match="duplicates must be 'keep', 'drop' or None; got 'yes'"):
        cf.TransactionLog(_log(), duplicates="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="extreme must be 'keep' or 'cap'; got 'clip'"):
        cf.TransactionLog(_log(), extreme="clip")  # type: ignore[arg-type]


# --- the ledger everywhere -------------------------------------------------------------------------------


def _check(ledger: dict[str, Any], rows_read: int) -> dict[str, int]:
    json.dumps(ledger)
    assert set(ledger) == {"rows_read", "rows_used", "entries", "identity_holds"}
    for entry in ledger["entries"]:
        assert set(entry) == {"key", "label", "rows", "value", "customers", "note"} and entry["label"]
    assert ledger["rows_read"] == rows_read and ledger["identity_holds"]
    assert ledger["rows_read"] == ledger["rows_used"] + sum(e["rows"] for e in ledger["entries"])
    return {e["key"]: e["rows"] for e in ledger["entries"]}


def test_the_ledger_travels_through_every_function() -> None:
    # 9 rows: a missing id, a return netted against customer 3's purchase of 01-03 (7.25 -> 0: day cancelled),
    # a row after the observation end (2024-04-02).
    log = pd.concat([
        _log(customer_id=[1, 1, 2, 3, 3, None, 2, 1], amount=[10.0, 20.0, 5.5, 7.25, 8.0, 3.0, 6.0, 4.0]),
        pd.DataFrame({"customer_id": [3, 5], "date": ["2024-01-04", "2024-04-02"], "amount": [-7.25, 1.0]}),
    ], ignore_index=True)  # fmt: skip
    opts = {"on_invalid": "drop", "returns": "net"}
    tidy = _quiet(lambda: cf.read_transactions(log, **opts))
    assert _check(tidy.attrs["ledger"], 10) == {"null_customer_id": 1, "returns_netted": 1, "orders_cancelled": 1}
    rfm = _quiet(lambda: cf.rfm_summary(log, observation_end="2024-03-31", **opts))
    assert _check(rfm.attrs["ledger"], 10)["after_observation_end"] == 1
    cal = _quiet(lambda: cf.calibration_holdout(tidy, calibration_end="2024-01-10", observation_end="2024-03-31"))
    rows = _check(cal.attrs["ledger"], 10)
    # after 01-10 first bought: customer 2 (01-20, 03-02) and customer 3 (03-15; its 01-03 day was cancelled)
    assert rows["new_in_holdout"] == 3 and cal.attrs["excluded_new_in_holdout"] == 2
    disc = _quiet(lambda: cf.discrete_summary(tidy, period="M", observation_end="2024-03-31"))
    _check(disc.attrs["ledger"], 10)
    hist = _quiet(lambda: cf.historical_clv(tidy, lifespan_years=2, periods_per_year=4))
    assert _check(hist.summary["ledger"], 10) == {"null_customer_id": 1, "returns_netted": 1, "orders_cancelled": 1}
    life = _quiet(lambda: cf.estimate_lifespan(log, window="30D", **opts))
    assert "before_first_window" in _check(life.summary["ledger"], 10)
    fc = _quiet(lambda: cf.historical_forecast(log, calibration_end="2024-02-15", horizon="4W", **opts))
    assert _check(fc.attrs["ledger"], 10)["after_observation_end"] == 4  # 02-15 < 03-02, 03-15, 03-20, 04-02


def test_ledger_entries_as_a_frame() -> None:
    rfm = _quiet(lambda: cf.rfm_summary(_log(customer_id=[1, None, 2, 3, 3, 4, 2, 1]), on_invalid="drop"))
    frame = cf.io.ledger_entries(rfm)
    assert frame["key"].tolist() == ["null_customer_id"] and frame.attrs["rows_read"] == 8
    assert cf.io.ledger_entries(pd.DataFrame()).empty


# --- frequency-only logs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("function", list(FUNCTIONS))
def test_frequency_only_logs_work_in_every_function(function: str) -> None:
    log = _log().drop(columns="amount")
    if function == "historical_clv":  # needs spend: says so in a sentence that names what works instead
        with pytest.raises(ValueError, match="historical_clv needs what each purchase was worth.*estimate_lifespan"):
            FUNCTIONS[function](log, amount=None)
        return
    result = _quiet(lambda: FUNCTIONS[function](log, amount=None))
    if isinstance(result, pd.DataFrame):
        assert not {"amount", "monetary_value", "holdout_spend", "avg_formula_spend"} & set(result.columns)


# --- discrete time --------------------------------------------------------------------------------------------


def test_discrete_summary_by_hand() -> None:
    log = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a", "b", "c", "d"],
            "date": ["2024-01-15", "2024-01-20", "2024-03-02", "2024-05-31", "2024-02-10", "2024-06-05",
                     "2024-04-01"],
        }  # fmt: skip
    )
    table = cf.discrete_summary(log, period="M", observation_end="2024-06-10", amount=None)
    # The last complete month before 06-10 is May; June (c's purchase) is cut and counted.
    # a: born January; purchases in March and May -> frequency 2, recency 4 (May is the 4th month after
    #    January), n_periods 4 (Feb..May). b: born February -> 0, 0, 3. d: born April -> 0, 0, 1.
    assert table.loc["a"].tolist() == [2, 4, 4]
    assert table.loc["b"].tolist() == [0, 0, 3] and table.loc["d"].tolist() == [0, 0, 1]
    assert "c" not in table.index and table.attrs["time_unit"] == "M"
    assert table.attrs["observation_end"] == "2024-05-31"
    assert _check(table.attrs["ledger"], 7) == {"incomplete_period": 1}
    held = cf.discrete_summary(log, period="M", calibration_end="2024-03-15", observation_end="2024-05-31",
                               amount=None)  # fmt: skip
    # calibration ends with February (the last complete month on or before 03-15); holdout March..May.
    # a: frequency 0, recency 0, n_periods 1 (Feb); holdout March and May -> 2, of 3. b: born Feb: 0, 0, 0; 0 of 3.
    assert list(held.columns) == ["frequency", "recency", "n_periods", "holdout_frequency", "holdout_n_periods"]
    assert held.loc["a"].tolist() == [0, 0, 1, 2, 3] and held.loc["b"].tolist() == [0, 0, 0, 0, 3]
    assert "d" not in held.index  # born in April, in the holdout
    rows = _check(held.attrs["ledger"], 7)
    assert rows == {"after_observation_end": 1, "new_in_holdout": 1}
    assert held.attrs["calibration_end"] == "2024-02-29" and (held.dtypes == "int64").all()


def test_discrete_summary_weeks_are_iso_weeks() -> None:
    # 2024-01-01 is a Monday: 01-01 and 01-07 are one week, 01-08 the next; 01-14 (Sunday) ends week 2.
    log = pd.DataFrame({"customer_id": [1, 1, 1], "date": ["2024-01-01", "2024-01-07", "2024-01-08"]})
    table = cf.discrete_summary(log, period="W", observation_end="2024-01-14", amount=None)
    assert table.loc[1].tolist() == [1, 1, 1]
    with pytest.raises(DataValidationError, match="no whole W period"):
        cf.discrete_summary(log, period="W", calibration_end="2024-01-10", observation_end="2024-01-13", amount=None)


def test_discrete_summary_years_donations_style() -> None:
    log = pd.DataFrame({"customer_id": [1, 1, 1, 2, 2], "date": ["1995-03-01", "1997-06-01", "1997-07-01",
                                                                "1995-01-01", "1996-01-01"]})  # fmt: skip
    table = cf.discrete_summary(log, period="Y", observation_end="2001-12-31", amount=None)
    # 1: born 1995, bought in 1997 only -> frequency 1, recency 2, n_periods 6 (1996..2001); 2: 1, 1, 6.
    assert table.loc[1].tolist() == [1, 2, 6] and table.loc[2].tolist() == [1, 1, 6]
