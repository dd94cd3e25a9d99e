"""The report's options: the model choice, a log without amounts, and arguments that leave nothing to forecast."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest
from bs4 import BeautifulSoup

import clvforecast as cf
from clvforecast.models import ParetoNBD

CAL_END, OBS_END = "1997-09-30", "1998-06-30"


# ------------------------------------------------------------------------------------------------------------
# Model choice (issue 10 item 4)
# ------------------------------------------------------------------------------------------------------------
def test_the_default_model_is_auto_with_a_holdout_and_bgnbd_without(cdnow_tx) -> None:
    assert cf.ForecastReport(cdnow_tx, calibration_end=CAL_END).settings.model == "auto"
    assert cf.ForecastReport(cdnow_tx).settings.model == "bgnbd"
    assert cf.ForecastReport(cdnow_tx, model="Pareto/NBD").settings.model == "pnbd"
    with pytest.raises(ValueError, match="model='auto' chooses the purchase model on a holdout, and there is none"):
        cf.ForecastReport(cdnow_tx, model="auto")
    with pytest.raises(ValueError, match=r"model='bgbb' is not one the report can use; pass 'auto'"):
        cf.ForecastReport(cdnow_tx, model="bgbb")
    with pytest.raises(ValueError, match="model='gompertz' is not one the report can use"):
        cf.ForecastReport(cdnow_tx, model="gompertz")


@pytest.fixture(scope="module")
def auto_report(cdnow_tx):
    """model="auto" with a stand-in compare_models that chooses Pareto/NBD and records how it was called.

    The stand-in has compare_models' signature and result (a DataFrame indexed by model, attrs chosen/rule);
    the real function lives in the model-integration stream."""
    calls = []

    def compare_models(source, *, calibration_end, observation_end, time_unit, models=("bgnbd", "pnbd", "mbgnbd"),
                       rule="mae", **read_options):
        calls.append({"source": source, "calibration_end": calibration_end, "observation_end": observation_end,
                      "time_unit": time_unit, "models": tuple(models), "read_options": read_options})
        table = pd.DataFrame({"label": ["BG/NBD", "Pareto/NBD", "MBG/NBD"], "n_params": [4, 4, 4],
                              "log_likelihood": [-9582.43, -9594.98, -9588.1], "aic": [19172.86, 19197.95, 19184.2],
                              "bic": [19195.9, 19221.0, 19207.3], "mae": [0.79, 0.78, 0.80],
                              "converged": True, "identified": True, "message": "", "chosen": [False, True, False]},
                             index=pd.Index(list(models), name="model"))
        table.attrs.update(chosen="pnbd", rule_name=rule, rule="holdout MAE: ...")
        return table

    mp = pytest.MonkeyPatch()
    mp.setattr(cf, "compare_models", compare_models, raising=False)
    rep = cf.ForecastReport(cdnow_tx, calibration_end=CAL_END, observation_end=OBS_END, currency="$",
                            past_cutoffs=None)
    rep.summary  # noqa: B018 (computed while the stand-in is in place)
    mp.undo()
    return rep, calls


def test_auto_compares_the_models_and_forecasts_with_the_chosen_one(auto_report) -> None:
    rep, calls = auto_report
    (call,) = calls
    assert call["calibration_end"] == CAL_END and call["observation_end"] == OBS_END and call["time_unit"] == "W"
    assert call["models"] == ("bgnbd", "pnbd", "mbgnbd")
    assert isinstance(rep.results.purchase_model, ParetoNBD)  # the forecast uses the chosen model
    assert rep.results.evaluation.method == "pnbd"  # and so does the validation
    soup = BeautifulSoup(rep.to_html(), "html.parser")
    sec = soup.find("section", id="model_comparison")
    assert [th.get_text() for th in sec.find_all("th")] == [
        "Model", "Parameters", "Log-likelihood", "AIC", "BIC", "Average error per customer", "Fit", "Chosen"]
    assert [r.td.get_text() for r in sec.tbody.find_all("tr")] == ["BG/NBD", "Pareto/NBD", "MBG/NBD"]
    text = sec.get_text(" ", strip=True)
    assert ("The forecast uses Pareto/NBD: it had the lowest average error per customer on the holdout purchases "
            "(0.780, against 0.790 for BG/NBD, 0.800 for MBG/NBD).") in text
    assert "Model (Pareto/NBD)" in soup.find("section", id="validation").get_text()
    models = soup.find("section", id="models").get_text(" ", strip=True)
    assert "Pareto/NBD (2,357 customers" in models and "s (shape of dropout rates)" in models
    # the median lifetime quoted is beta (2^(1/s) - 1) at the fitted parameters
    p = rep.results.purchase_model.params_
    assert f"longer than {p['beta'] * (2 ** (1 / p['s']) - 1):,.1f} weeks" in models
    assert "Pareto/NBD (Schmittlein, Morrison & Colombo 1987) (chosen by the model comparison above)" in (
        soup.find("section", id="methods").get_text(" ", strip=True))
    assert "Under BG/NBD" not in soup.get_text()


# ------------------------------------------------------------------------------------------------------------
# A log without amounts (issue 9 item 7)
# ------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def frequency_only(cdnow_tx):
    log = cdnow_tx[["customer_id", "date"]]
    return cf.ForecastReport(log, amount=None, calibration_end=CAL_END, observation_end=OBS_END, model="bgnbd",
                             currency="$", title="No amounts")


def test_frequency_only_log_gives_purchases_and_p_alive(frequency_only, cdnow_tx) -> None:
    clv = frequency_only.results.clv
    assert {"expected_purchases", "probability_alive", "expected_purchases_lower"} <= set(clv.columns)
    assert not {"clv", "expected_spend", "clv_if_alive", "clv_lower"} & set(clv.columns)
    # the purchases equal those of the same log read with its amounts (spend plays no part in them)
    rfm = cf.rfm_summary(cdnow_tx, observation_end=OBS_END, time_unit="W")
    expected = cf.BetaGeo().fit(rfm).expected_purchases(rfm, 52)
    assert frequency_only.summary["forecast"]["numbers"]["expected_purchases"] == pytest.approx(expected.sum())
    ev = frequency_only.results.evaluation
    assert list(ev.metric("mae", "purchases").index) == ["bgnbd", "avg_formula", "run_rate"]  # the baselines


def test_sections_that_need_spend_say_so_in_one_sentence(frequency_only) -> None:
    soup = BeautifulSoup(frequency_only.to_html(), "html.parser")
    for section in ("silent_customers", "tiers"):
        sec = soup.find("section", id=section)
        paragraphs = sec.find_all("p")
        assert len(paragraphs) == 1 and not sec.find("table") and not sec.find("img")
        assert paragraphs[0].get_text().startswith("The transaction log has no amounts, so ")
        assert paragraphs[0].get_text().count(". ") == 0  # one sentence
    assert not [td for td in soup.find_all("td") if td["class"][0].startswith("money")]
    assert "$" not in soup.get_text()  # no money anywhere
    assert all(t.tbody.find_all("tr") for t in soup.find_all("table"))  # no empty table
    assert re.search(r"\bnan\b", soup.get_text(), re.IGNORECASE) is None
    json.loads(frequency_only.to_json())  # no NaN (allow_nan=False inside)
    assert "a log without amounts" in " ".join(frequency_only.summary["executive"]["sentences"])
    assert "Top 20 customers by expected purchases" in soup.get_text()


# ------------------------------------------------------------------------------------------------------------
# Arguments that leave nothing to forecast (issue 13)
# ------------------------------------------------------------------------------------------------------------
def test_a_zero_horizon_is_refused(cdnow_tx) -> None:
    with pytest.raises(ValueError, match=r"^horizon 0W is zero; give a positive duration"):
        cf.ForecastReport(cdnow_tx, horizon="0W")
    with pytest.raises(ValueError, match=r"^horizon 0M is zero; give a positive duration"):
        cf.ForecastReport(cdnow_tx, horizon="0M")
    with pytest.raises(ValueError, match=r"^horizon 0W is zero"):
        cf.ForecastReport(cdnow_tx, horizon=0)


def test_cutoffs_that_leave_nothing_are_refused(cdnow_tx) -> None:
    with pytest.raises(ValueError, match=r"calibration_end \(1998-06-30\) is not before observation_end "
                                         r"\(1998-06-30\).*choose a calibration_end before observation_end"):
        cf.ForecastReport(cdnow_tx, calibration_end=OBS_END, observation_end=OBS_END)
    with pytest.raises(ValueError, match="the holdout holds no transactions"):
        cf.ForecastReport(cdnow_tx, calibration_end="1998-06-30", model="bgnbd").summary  # noqa: B018
    with pytest.raises(ValueError, match="no customer made a purchase on or before 1996-12-01"):
        cf.ForecastReport(cdnow_tx, observation_end="1996-12-01").summary  # noqa: B018


def test_a_one_day_horizon_stays_finite(cdnow_cal) -> None:
    rfm = cdnow_cal[["frequency", "recency", "T", "monetary_value"]].copy()
    rfm.attrs = {"time_unit": "W", "observation_end": CAL_END}
    rep = cf.ForecastReport(rfm=rfm, horizon="1D", currency="$")
    numbers = rep.summary["forecast"]["numbers"]
    assert all(math.isfinite(v) for v in numbers.values() if isinstance(v, float))
    assert 0 < numbers["clv_total_lower"] <= numbers["clv_total"] <= numbers["clv_total_upper"]
    assert "Forecast for the next 1 day" in rep.to_html()
    json.loads(rep.to_json())


def test_cutoffs_are_read_with_date_format_and_ambiguous_ones_refused(cdnow_tx) -> None:
    rep = cf.ForecastReport(cdnow_tx, calibration_end="30/09/1997", observation_end="30/06/1998",
                            date_format="%d/%m/%Y")
    assert (rep.settings.calibration_end, rep.settings.observation_end) == (CAL_END, OBS_END)
    with pytest.raises(ValueError, match=r"calibration_end='06/01/1997' is ambiguous.*date_format='%d/%m/%Y'"):
        cf.ForecastReport(cdnow_tx, calibration_end="06/01/1997")
    with pytest.raises(TypeError, match="calibration_end=19970930 is a number, not a date"):
        cf.ForecastReport(cdnow_tx, calibration_end=19970930)


def test_a_transaction_log_description_is_a_source(cdnow_tx) -> None:
    """A TransactionLog describes the source once; the report's own defaults do not clash with it."""
    renamed = cdnow_tx.rename(columns={"customer_id": "cust", "date": "day", "amount": "spend"})
    log = cf.TransactionLog(renamed, customer_id="cust", date="day", amount="spend")
    rep = cf.ForecastReport(log, observation_end=OBS_END, interval=None, currency="$")
    direct = cf.ForecastReport(cdnow_tx, observation_end=OBS_END, interval=None, currency="$")
    assert rep.summary["forecast"]["numbers"]["clv_total"] == pytest.approx(
        direct.summary["forecast"]["numbers"]["clv_total"], rel=1e-12)
    with pytest.raises(TypeError, match="given as a keyword and customer_id='cust' in the TransactionLog"):
        cf.ForecastReport(log, customer_id="other").summary  # noqa: B018
