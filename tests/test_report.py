"""The forecast report, checked as a business reader would read it: the summary first, money in the currency,
plain headers, horizons in words, the silent customers, and the numbers equal to an independent computation."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _browser import NO_BROWSER, colour_count, find_browser, screenshot
from bs4 import BeautifulSoup

import clvforecast as cf
from clvforecast.report import summary as summary_module
from clvforecast.report.compute import Results
from clvforecast.report.summary import SECTIONS, build_summary

CAL_END, OBS_END = "1997-09-30", "1998-06-30"
SECTION_IDS = ["executive", "overview", "data_preparation", "forecast", "top_customers", "silent_customers",
               "tiers", "validation", "models", "methods", "glossary"]
PACKAGE = Path(cf.__file__).parent / "report"


@pytest.fixture(scope="module")
def report(cdnow_tx):
    """BG/NBD named (the paper's checks), 90% ranges (the default) seeded with random_state=0 (the default)."""
    return cf.ForecastReport(
        cdnow_tx, calibration_end=CAL_END, observation_end=OBS_END, time_unit="W", horizon="52W",
        discount_rate=0.10, title="CDNOW test report", currency="$", model="bgnbd",
    )


@pytest.fixture(scope="module")
def soup(report) -> BeautifulSoup:
    return BeautifulSoup(report.to_html(), "html.parser")


@pytest.fixture(scope="module")
def api(cdnow_tx):
    """The forecast computed directly with the public API, as the report should compute it."""
    rfm = cf.rfm_summary(cdnow_tx, observation_end=OBS_END, time_unit="W")
    bg, gg = cf.BetaGeo().fit(rfm), cf.GammaGamma().fit(rfm)
    clv = cf.predictive_clv(bg, gg, rfm, horizon="52W", discount_rate=0.10)
    return rfm, clv


def _text(soup: BeautifulSoup, section: str) -> str:
    return soup.find("section", id=section).get_text(" ", strip=True)


def _money(value: float) -> str:
    """Independent formatting: dollars, thousands separators, 0 decimals from 1,000 up and 2 below."""
    return f"${value:,.0f}" if abs(value) >= 1000 else f"${value:,.2f}"


def _dollars(value: float) -> str:
    """Whole dollars (a column reaching $1,000 is printed so)."""
    return f"${value:,.0f}"


# ------------------------------------------------------------------------------------------------------------
# Structure
# ------------------------------------------------------------------------------------------------------------
def test_summary_section_comes_first_and_sections_are_in_order(soup: BeautifulSoup) -> None:
    ids = [s["id"] for s in soup.find_all("section")]
    assert ids == SECTION_IDS
    assert soup.find("section").find("h2").get_text() == "Summary"
    assert soup.title.string == "CDNOW test report"
    assert [a["href"] for a in soup.find("nav").find_all("a")] == [f"#{i}" for i in SECTION_IDS]


def test_one_template_per_section() -> None:
    templates = {p.stem for p in (PACKAGE / "templates" / "sections").glob("*.j2")}
    assert templates == {spec.id for spec in SECTIONS}


def test_no_function_in_the_report_package_is_over_80_lines() -> None:
    lengths = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lengths[f"{path.name}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert lengths and max(lengths.values()) <= 80, sorted(lengths.items(), key=lambda kv: -kv[1])[:3]


def test_self_contained(soup: BeautifulSoup) -> None:
    images = soup.find_all("img")
    assert len(images) >= 6
    assert all(img["src"].startswith("data:image/png;base64,") for img in images)
    assert not soup.find_all("script", src=True)
    assert not soup.find_all("link", href=True)
    assert "http://" not in str(soup.find("style")) and "https://" not in str(soup.find("style"))


# ------------------------------------------------------------------------------------------------------------
# Numbers as a reader expects them
# ------------------------------------------------------------------------------------------------------------
def test_no_snake_case_header_in_any_table(soup: BeautifulSoup) -> None:
    headers = [th.get_text(" ", strip=True) for th in soup.find_all("th")]
    assert len(headers) > 50
    snake = [h for h in headers if re.search(r"[A-Za-z0-9]_[A-Za-z0-9]", h)]
    assert not snake


def test_money_shows_the_currency_with_0_or_2_decimals(soup: BeautifulSoup) -> None:
    cells = [td.get_text(strip=True) for td in soup.find_all("td") if td["class"][0].startswith("money")]
    assert len(cells) > 100
    one = r"-?\$\d{1,3}(,\d{3})*(\.\d{2})?"
    pattern = re.compile(rf"^{one}( to {one})?$")  # an amount, or a range "$39 to $1,613"
    assert all(pattern.match(c) or c == "n/a" for c in cells), [c for c in cells if not pattern.match(c)][:5]
    assert sum(" to " in c for c in cells) >= 22  # the top customers' ranges and the holdout totals' ranges
    # a column is rounded as one: all 0 decimals or all 2
    for table in soup.find_all("table"):
        for j, th in enumerate(table.find("thead").find_all("th")):
            if th["class"][0] == "money0":
                assert all("." not in r.find_all("td")[j].get_text() for r in table.tbody.find_all("tr"))
    cards = [c.get_text(strip=True) for c in soup.select("#forecast .card .value")]
    assert sum(c.startswith("$") for c in cards) == 3  # revenue, lifetime value, average CLV


def test_horizons_and_durations_in_words(soup: BeautifulSoup) -> None:
    text = soup.get_text(" ", strip=True)
    assert "Forecast for the next 52 weeks" in text and "39-week holdout" in text
    # no "23.1429 weeks" (the methods' "a year is 365.25 days" is a definition, not a duration)
    assert not re.search(r"\d\.\d{2,} (weeks|days|months)", text.replace("365.25 days", ""))


def test_one_number_per_concept(report, soup: BeautifulSoup, api) -> None:
    """The cards' lifetime value is the discounted CLV and equals the tier table's total; every CLV header
    says whether it is discounted."""
    _, clv = api
    cards = {c.select_one(".label").get_text(strip=True): c.select_one(".value").get_text(strip=True)
             for c in soup.select("#forecast .card")}
    assert cards["Lifetime value (discounted)"] == _money(clv["clv"].sum())
    tiers = report.summary["tiers"]["table"]
    col = [c["key"] for c in tiers["columns"]].index("clv_total")
    assert sum(row[col] for row in tiers["rows"]) == pytest.approx(clv["clv"].sum())
    money_headers = [th.get_text(" ", strip=True) for th in soup.find_all("th") if th["class"][0].startswith("money")]
    clv_headers = [h for h in money_headers if "CLV" in h or h.startswith("Value if")]
    assert len(clv_headers) >= 8 and all("discounted" in h for h in clv_headers), clv_headers


def test_glossary_at_the_end(soup: BeautifulSoup) -> None:
    terms = [dt.get_text(strip=True) for dt in soup.select("#glossary dt")]
    for term in ("P(alive)", "Holdout", "Calibration period", "Value if retained"):
        assert term in terms


# ------------------------------------------------------------------------------------------------------------
# The executive summary and the sections, against independent computations
# ------------------------------------------------------------------------------------------------------------
def test_executive_summary_is_worded_from_the_numbers(report, soup: BeautifulSoup, api, cdnow_tx) -> None:
    sentences = report.summary["executive"]["sentences"]
    assert 4 <= len(sentences) <= 6
    text = _text(soup, "executive")
    rfm, clv = api
    assert _money(clv["clv"].sum()) in text  # the value of the base
    ordered = np.sort(clv["clv"].to_numpy())[::-1]
    assert f"top 20% of customers hold {ordered[:472].sum() / ordered.sum():.0%}" in text  # 472 = ceil(0.2 x 2,357)
    # The holdout: spend in (1997-09-30, 1998-06-30] summed directly from the log.
    holdout = cdnow_tx.loc[(cdnow_tx["date"] > CAL_END) & (cdnow_tx["date"] <= OBS_END), "amount"].sum()
    ev = report.results.evaluation
    predicted = ev.metric("total_predicted", "spend")
    err = (predicted - holdout) / holdout
    assert f"{abs(err['bgnbd']):.1%} {'below' if err['bgnbd'] < 0 else 'above'} actual" in text
    assert f"{abs(err['avg_formula']):.1%} {'below' if err['avg_formula'] < 0 else 'above'}" in text
    assert _money(holdout) in _text(soup, "validation")
    # ranking: on CDNOW the run rate orders customers a little better than the model; the text says so
    gini = ev.metric("gini", "spend")
    assert gini.idxmax() == "run_rate" and 0.01 <= gini["run_rate"] - gini["bgnbd"] < 0.05
    assert (f"the run rate did slightly better (Gini {gini['run_rate']:.2f} against {gini['bgnbd']:.2f})"
            in _text(soup, "validation"))
    # no fixed claim that the data contradict
    assert "by design" not in soup.get_text()


def test_silent_customers_listed_with_their_value_if_retained(report, soup: BeautifulSoup, api) -> None:
    rfm, clv = api
    # independently: top 20% by past repeat spend (ties by id), P(alive) < 0.5, silent >= 2 usual gaps
    past = (rfm["frequency"] * rfm["monetary_value"]).sort_index()
    top = past.sort_values(ascending=False, kind="stable").index[:472]
    silence, gap = rfm["T"] - rfm["recency"], rfm["recency"] / rfm["frequency"]
    chosen = [c for c in top if past[c] > 0 and clv.loc[c, "probability_alive"] < 0.5 and silence[c] >= 2 * gap[c]]
    text = _text(soup, "silent_customers")
    assert f"{len(chosen):,} of the 472 customers who spent most in the past" in text
    assert _money(clv.loc[chosen, "clv_if_alive"].sum()) in text
    table = soup.find("section", id="silent_customers").find("table")
    headers = [th.get_text(strip=True) for th in table.find_all("th")]
    assert "Value if retained (discounted)" in headers
    rows = table.tbody.find_all("tr")
    best = clv.loc[chosen, "clv_if_alive"].sort_values(ascending=False).iloc[:20]
    assert [r.td.get_text() for r in rows] == [str(c) for c in best.index]
    values = [r.find_all("td")[headers.index("Value if retained (discounted)")].get_text() for r in rows]
    assert values == [f"${v:,.0f}" for v in best]  # the column reaches $1,000, so whole dollars


def test_overview_numbers(soup: BeautifulSoup) -> None:
    text = _text(soup, "overview")
    # CDNOW sample: 2,357 customers, 6,919 transaction rows = 6,696 purchase days (2,357 first + 4,339 repeat)
    for number in ("2,357", "6,919", "6,696 purchase days", "4,339", "1997-01-01", "1998-06-30"):
        assert number in text
    assert "no row was removed" in _text(soup, "data_preparation")


def test_validation_section_has_metrics_and_paper_diagnostics(soup: BeautifulSoup) -> None:
    sec = soup.find("section", id="validation")
    tables = {h.get_text(): h.find_next("table") for h in sec.find_all("h3")}
    # the calibration fit is the paper's: r = 0.243, alpha = 4.414, a = 0.793, b = 2.426; p = 6.25, q = 3.74, v = 15.44
    bg = tables["Purchase model (BG/NBD) fitted on the calibration period"]
    assert [round(float(td.get_text()), 3) for td in bg.select("tbody tr td:nth-of-type(2)")] == [
        0.243, 4.414, 0.793, 2.426]
    gg = tables["Spend model fitted on the calibration period"]
    assert [round(float(td.get_text()), 2) for td in gg.select("tbody tr td:nth-of-type(2)")] == [6.25, 3.74, 15.44]
    purchases = tables["Holdout purchases: actual total 1,882"]  # the paper's holdout repeat transactions
    assert [td.get_text() for td in purchases.select("tbody tr td:nth-of-type(1)")] == [
        "Model (BG/NBD)", "Historical formula", "Run rate"]
    cond = tables["Average holdout purchases per customer, by repeat purchases in the calibration period"]
    counts = [td.get_text(strip=True) for td in cond.select("tbody tr td:nth-of-type(2)")]
    assert counts == ["1,411", "439", "214", "100", "62", "38", "29", "64"]  # the paper's, x = 0..6, 7+
    captions = [c.get_text() for c in sec.find_all("figcaption")]
    assert any("Repeat purchases to date" in c for c in captions)


def test_summary_matches_the_public_api(report, api) -> None:
    _, clv = api
    fc = report.summary["forecast"]["numbers"]
    assert fc["clv_total"] == pytest.approx(clv["clv"].sum(), rel=1e-9)
    assert fc["expected_purchases"] == pytest.approx(clv["expected_purchases"].sum(), rel=1e-9)
    rows = report.summary["top_customers"]["table"]["rows"]
    assert [r[0] for r in rows] == list(clv["clv"].nlargest(20).index)


def test_summary_is_plain_json(report) -> None:
    data = json.loads(json.dumps(report.summary, allow_nan=False))
    assert list(data)[:3] == ["settings", "sections", "executive"]
    assert data["settings"]["currency"] == "$" and data["settings"]["horizon_words"] == "52 weeks"
    assert json.loads(report.to_json()) == data


def test_markdown_reads_the_same_summary(report) -> None:
    md = report.to_markdown()
    assert md.startswith("# CDNOW test report")
    assert md.index("## Summary") < md.index("## The data") < md.index("## Holdout validation")
    assert report.summary["executive"]["sentences"][0] in md
    assert "| Customer | CLV (discounted) |" in md and "|---|--:|" in md
    assert "data:image/png" not in md and "data:image/png" in report.to_markdown(figures=True)


def test_write_html_and_repr_html(report, tmp_path: Path) -> None:
    path = report.write_html(tmp_path / "sub" / "r.html")
    assert path.read_text(encoding="utf-8") == report.to_html()
    assert '<section id="validation">' in report._repr_html_()


# ------------------------------------------------------------------------------------------------------------
# Ranges (issue 11): on the headline numbers, per customer, and checked on the holdout
# ------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def api_ranges(api):
    """The 90% ranges computed directly with the public API and the report's seed (random_state=0)."""
    rfm, _ = api
    bg, gg = cf.BetaGeo().fit(rfm), cf.GammaGamma().fit(rfm)
    return cf.predictive_clv(bg, gg, rfm, horizon="52W", discount_rate=0.10, interval=0.9, random_state=0)


def test_headline_numbers_carry_both_kinds_of_range_each_labelled(report, soup: BeautifulSoup, api_ranges) -> None:
    totals = api_ranges.attrs["totals"]
    clv_lo, clv_hi = totals["clv"]["lower"], totals["clv"]["upper"]
    first = report.summary["executive"]["sentences"][0]
    assert f"90% range: model-only {_dollars(clv_lo)} to {_dollars(clv_hi)}; backtest-calibrated" in first
    rng = report.summary["forecast"]["ranges"]
    assert rng["model_only"]["purchases"] == pytest.approx([totals["purchases"]["lower"],
                                                            totals["purchases"]["upper"]])
    # the calibrated range carries the model's past errors: 4 earlier cutoffs and the holdout itself
    assert rng["n_cutoffs"] == 5 and rng["calibrated"]["clv"][1] > clv_hi
    assert rng["model_only"]["clv"][0] < rng["expected"]["clv"] < rng["model_only"]["clv"][1]
    cards = {c.select_one(".label").get_text(strip=True): c.select_one(".help").get_text(strip=True)
             for c in soup.select("#forecast .card") if c.select_one(".help")}
    assert cards["Lifetime value (discounted)"].endswith("backtest-calibrated")
    assert f"90% range: {_dollars(clv_lo)} to {_dollars(clv_hi)} model-only" in cards["Lifetime value (discounted)"]
    # every range says what it includes
    text = _text(soup, "forecast")
    assert ("Model-only 90% ranges include the purchase process (chance in when and how often each customer buys), "
            "the uncertainty of the model's parameters and the spend per purchase") in text
    assert "Backtest-calibrated 90% ranges add the model's own errors on the totals" in text
    table = soup.find("section", id="forecast").find("table")
    assert [th.get_text(strip=True) for th in table.find_all("th")] == [
        "Range", "Purchases", "Revenue (undiscounted)", "CLV (discounted)"]
    assert [r.td.get_text() for r in table.tbody.find_all("tr")] == [
        "Expected", "Model-only 90% range", "Backtest-calibrated 90% range"]


def test_top_customers_show_their_ranges(report, soup: BeautifulSoup, api_ranges) -> None:
    table = soup.find("section", id="top_customers").find("table")
    headers = [th.get_text(" ", strip=True) for th in table.find_all("th")]
    assert headers[:5] == ["Customer", "CLV (discounted)", "CLV, 90% range (discounted)", "Expected purchases",
                           "Purchases, 90% range"]
    top = api_ranges["clv"].nlargest(20).index
    rows = table.tbody.find_all("tr")
    for row, c in zip(rows, top, strict=True):
        cells = [td.get_text() for td in row.find_all("td")]
        lo, hi = api_ranges.loc[c, ["clv_lower", "clv_upper"]]
        assert cells[0] == str(c) and cells[2] == f"{_dollars(lo)} to {_dollars(hi)}"
        plo, phi = api_ranges.loc[c, ["expected_purchases_lower", "expected_purchases_upper"]]
        assert cells[4] == f"{plo:,.0f} to {phi:,.0f}"
    caption = _text(soup, "top_customers")
    assert ("they include the purchase process (chance in when and how often each customer buys), the "
            "uncertainty of the model's parameters and the spend per purchase") in caption
    assert "The top customers with their ranges" in caption  # the figure


def test_validation_shows_coverage_pit_and_the_totals_against_their_ranges(report, soup, cdnow_tx) -> None:
    """Coverage and 'inside or not', computed here from the log and the report's bounds."""
    ev = report.results.evaluation
    cal = cdnow_tx[cdnow_tx["date"] <= CAL_END]
    hold = cdnow_tx[(cdnow_tx["date"] > CAL_END) & (cdnow_tx["date"] <= OBS_END)]
    days = hold[hold["customer_id"].isin(cal["customer_id"])].groupby("customer_id")["date"].nunique()
    actual = days.reindex(ev.customers.index, fill_value=0)
    assert actual.sum() == 1882  # the paper's holdout repeat transactions
    lo, hi = ev.customers["bgnbd_purchases_lower"], ev.customers["bgnbd_purchases_upper"]
    coverage = float(((lo <= actual) & (actual <= hi)).mean())
    assert 0.88 <= coverage <= 0.98  # issue 11's acceptance band for CDNOW
    text = _text(soup, "validation")
    assert f"held the actual purchases of {coverage:.1%} of customers" in text
    spend = hold[hold["customer_id"].isin(cal["customer_id"])]["amount"].sum()
    sec = soup.find("section", id="validation")
    table = next(h for h in sec.find_all("h3") if "against the ranges" in h.get_text()).find_next("table")
    assert [th.get_text() for th in table.find_all("th")] == [
        "Range", "Holdout purchases: 90% range", "Actual purchases inside?", "Holdout spend: 90% range",
        "Actual spend inside?"]
    for row in table.tbody.find_all("tr"):
        cells = [td.get_text() for td in row.find_all("td")]
        a, b = (float(x.replace(",", "")) for x in cells[1].split(" to "))
        assert cells[2] == ("yes" if a <= 1882 <= b else "no")
        a, b = (float(x.replace(",", "").replace("$", "")) for x in cells[3].split(" to "))
        assert cells[4] == ("yes" if a <= spend <= b else "no")
    # on CDNOW the model-only range misses 1,882 and the backtest-calibrated one contains it (clv.py's docstring)
    assert [r.find_all("td")[2].get_text() for r in table.tbody.find_all("tr")] == ["no", "yes"]
    assert "fell outside the model-only range of the total" in text
    captions = [f.get_text() for f in sec.find_all("figcaption")]
    assert any("(PIT)" in c for c in captions) and any("against the ranges of the total" in c for c in captions)
    assert "its 90% ranges held the actual purchases of" in _text(soup, "executive")


def test_intervals_off(cdnow_cal) -> None:
    rfm = cdnow_cal[["frequency", "recency", "T", "monetary_value"]].copy()
    rfm.attrs = {"time_unit": "W", "observation_end": CAL_END}
    rep = cf.ForecastReport(rfm=rfm, time_unit="W", horizon="52W", currency="$", interval=None)
    assert rep.results.totals is None and "clv_lower" not in rep.results.clv.columns
    text = BeautifulSoup(rep.to_html(), "html.parser").get_text(" ", strip=True)
    assert "range" not in text.replace("Range (", "").lower().replace("arrange", "")
    assert rep.summary["forecast"]["ranges"] is None


# ------------------------------------------------------------------------------------------------------------
# Other inputs
# ------------------------------------------------------------------------------------------------------------
def test_forecast_only_report_from_rfm_table(cdnow_cal) -> None:
    rfm = cdnow_cal[["frequency", "recency", "T", "monetary_value"]].copy()
    rfm.attrs = {"time_unit": "W", "observation_end": CAL_END}
    rep = cf.ForecastReport(rfm=rfm, time_unit="W", horizon="12M", discount_rate=0.0, currency="GBP")
    soup = BeautifulSoup(rep.to_html(), "html.parser")
    ids = [s["id"] for s in soup.find_all("section")]
    assert "validation" not in ids and "data_preparation" not in ids and ids[0] == "executive"
    assert "Forecast for the next 12 months" in soup.get_text()
    assert "Lifetime value (undiscounted)" in soup.get_text()
    assert re.search(r"GBP\xa0\d", soup.get_text())
    assert len(soup.find_all("img")) >= 3


def test_report_on_a_table_without_attrs_uses_its_time_unit(cdnow_cal) -> None:
    rfm = cdnow_cal[["frequency", "recency", "T", "monetary_value"]].copy()
    rfm.attrs = {}
    bare = cf.ForecastReport(rfm=rfm, time_unit="W", horizon="39W")
    rfm_w = rfm.copy()
    rfm_w.attrs = {"time_unit": "W", "observation_end": CAL_END}
    reference = cf.ForecastReport(rfm=rfm_w, time_unit="W", horizon="39W")
    assert bare.summary["forecast"]["numbers"]["clv_total"] == pytest.approx(
        reference.summary["forecast"]["numbers"]["clv_total"])
    assert bare.results.purchase_model.time_unit_ == "W"


def test_report_rejects_bad_arguments(cdnow_tx) -> None:
    with pytest.raises(ValueError, match="either transactions or rfm"):
        cf.ForecastReport()
    with pytest.raises(ValueError, match="horizon"):
        cf.ForecastReport(cdnow_tx, horizon="ten weeks")
    with pytest.raises(ValueError, match="margin"):
        cf.ForecastReport(cdnow_tx, margin=0)
    with pytest.raises(ValueError, match=r"currency must be a symbol such as '\$'.*ISO code such as 'USD'"):
        cf.ForecastReport(cdnow_tx, currency="US dollars")


def test_a_margin_above_one_is_refused(cdnow_tx) -> None:
    with pytest.raises(ValueError, match=r"more than the whole spend.*pass margin=0\.3 for 30%"):
        cf.ForecastReport(cdnow_tx, margin=30)
    with pytest.raises(ValueError, match=r"1,000% a year.*pass discount_rate=0\.1"):
        cf.ForecastReport(cdnow_tx, discount_rate=10)


def test_dropped_rows_are_shown_step_by_step(cdnow_tx) -> None:
    """Without a ledger (today's io), the section is built from attrs["dropped"] and the rows after the end."""
    tx = cdnow_tx[cdnow_tx["customer_id"] <= 300].copy()
    bad = tx.iloc[:3].assign(customer_id=None)
    late = tx.iloc[:2].assign(date=pd.Timestamp("1998-07-15"))
    log = pd.concat([tx, bad, late], ignore_index=True)
    rep = cf.ForecastReport(log, observation_end=OBS_END, on_invalid="drop", currency="$")
    with pytest.warns(cf.DataQualityWarning):
        prep = rep.summary["data_preparation"]
    assert prep["rows_read"] == len(log) and prep["rows_removed"] == 5
    assert prep["rows_used"] == len(tx) and prep["identity_holds"]
    steps = {row[0]: row[1] for row in prep["table"]["rows"]}
    # the table reads as the identity: rows read, minus each step, equals rows used
    assert steps["Rows read"] == len(log) and steps["Rows used"] == len(tx)
    assert next(v for k, v in steps.items() if "after the observation end" in k.lower()) == -2
    assert steps["Rows read"] + sum(v for k, v in steps.items() if k not in ("Rows read", "Rows used")) == len(tx)
    assert f"{len(log):,} = {len(tx):,} + 3 + 2 (the ledger adds up)" in prep["identity"]


# ------------------------------------------------------------------------------------------------------------
# The later phases plug in: a ledger, a model comparison, intervals
# ------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small(cdnow_cal) -> cf.ForecastReport:
    rfm = cdnow_cal[["frequency", "recency", "T", "monetary_value"]].copy()
    rfm.attrs = {"time_unit": "W", "observation_end": CAL_END}
    return cf.ForecastReport(rfm=rfm, time_unit="W", horizon="52W", currency="$")


def test_a_ledger_becomes_the_data_preparation_section(small) -> None:
    res = small.results
    rfm = res.rfm.copy()
    rfm.attrs["ledger"] = {
        "rows_read": 1000, "rows_used": 880, "identity_holds": True,
        "entries": [
            {"key": "null_customer_id", "label": "Rows without a customer id", "rows": 20, "value": 310.5,
             "customers": None, "note": None},
            {"key": "returns_netted", "label": "Returns netted against their purchases", "rows": 100,
             "value": 2500.0, "customers": 40, "note": "matched by invoice"},
        ],
    }
    s = build_summary(Results(**{**vars(res), "rfm": rfm}), small.settings)
    prep = s["data_preparation"]
    assert prep["rows_removed"] == 120 and "880 reached the analysis" in prep["text"] and "12.0%" in prep["text"]
    assert [c["label"] for c in prep["table"]["columns"]] == [
        "Step", "Rows", "Amount (value of the rows)", "Customers", "Note"]
    assert [r[:4] for r in prep["table"]["rows"]] == [
        ["Rows read", 1000, None, None], ["Rows without a customer id", -20, 310.5, None],
        ["Returns netted against their purchases", -100, 2500.0, 40], ["Rows used", 880, None, None]]
    assert "1,000 = 880 + 20 + 100 (the ledger adds up)" in prep["identity"]
    caveat = next(c for c in s["executive"]["caveats"] if c["key"] == "heavy_cleaning")
    assert "12.0% of the rows read were removed" in caveat["text"] and "returns netted" in caveat["text"]
    assert prep["extreme"] is None and prep["extreme_text"] == ""


def test_extreme_purchase_days_are_listed_largest_first(small) -> None:
    res = small.results
    rfm = res.rfm.copy()
    days = [{"customer_id": 100 + i % 7, "date": f"1997-0{1 + i % 9}-1{i % 10}", "value": 1000.0 + 37 * i,
             "period": "calibration"} for i in range(25)]
    rfm.attrs["extreme_orders"] = days
    rfm.attrs["ledger"] = {"rows_read": 10, "rows_used": 10, "identity_holds": True, "entries": [
        {"key": "extreme_orders", "label": "extreme purchase days", "rows": 0, "value": None, "customers": 7,
         "note": "25 purchase days worth more than 1,000.00 (the fence), listed in attrs['extreme_orders']"}]}
    prep = build_summary(Results(**{**vars(res), "rfm": rfm}), small.settings)["data_preparation"]
    assert prep["extreme_text"].startswith("25 purchase days (more than $1,000) lie far above the rest of the "
                                           "customer base (they belong to 7 customers); the 20 largest are listed.")
    rows = prep["extreme"]["rows"]
    assert [c["label"] for c in prep["extreme"]["columns"]] == ["Customer", "Date", "Value of the purchase day"]
    values = sorted((d["value"] for d in days), reverse=True)[:20]
    assert [r[2] for r in rows] == values and rows[0][:2] == [100 + 24 % 7, "1997-07-14"]
    steps = {r[0]: r for r in prep["table"]["rows"]}
    assert steps["Extreme purchase days"][1] is None  # counted, nothing removed: a blank, not a zero
    assert steps["Extreme purchase days"][-1] == "kept as they are; see Extreme purchase days below"  # no attrs[...]
    # one day of one customer (CDNOW's case): singular words
    rfm.attrs["extreme_orders"] = days[:1]
    rfm.attrs["ledger"]["entries"][0].update(customers=1, note="1 purchase day worth more than 659.60 (the fence)")
    prep = build_summary(Results(**{**vars(res), "rfm": rfm}), small.settings)["data_preparation"]
    assert prep["extreme_text"] == ("1 purchase day (more than $659.60) lies far above the rest of the customer base "
                                    "(it belongs to 1 customer). It is kept in the forecast: check that it is a "
                                    "real order (a wholesale order, a data error?).")


def test_a_model_comparison_plugs_in(small) -> None:
    """A comparison table (a stand-in with compare_models' columns) becomes its section, with plain headers and
    the reason for the choice worded from the rule's numbers; a degenerate fit is said to be passed over."""
    res = small.results
    mc = pd.DataFrame({"label": ["BG/NBD", "Pareto/NBD", "MBG/NBD"], "n_params": [4, 4, 4],
                       "log_likelihood": [-9582.43, -9594.98, -9588.1], "aic": [19172.9, 19198.0, 19184.2],
                       "bic": [19196.0, 19221.1, 19207.3], "mae": [0.785, 0.70, 0.80], "rmse": [1.9, 1.8, 2.0],
                       "pct_error": [-12.1, -11.5, -16.2], "spearman": [0.45, 0.46, 0.44],
                       "tracking_error": [float("nan")] * 3, "tracking_error_pct": [float("nan")] * 3,
                       "converged": [True, False, True], "identified": [True, False, True],
                       "message": ["", "no evidence of dropout", ""], "chosen": [True, False, False]},
                      index=pd.Index(["bgnbd", "pnbd", "mbgnbd"], name="model"))
    mc.attrs.update(chosen="bgnbd", rule_name="mae", rule="holdout MAE: the lowest ... (pnbd passed over)")
    s = build_summary(Results(**{**vars(res), "model_comparison": mc}), small.settings)
    assert [x["id"] for x in s["sections"]].index("model_comparison") == len(s["sections"]) - 4
    sec = s["model_comparison"]
    assert sec["chosen"] == "bgnbd" and sec["chosen_label"] == "BG/NBD"
    headers = [c["label"] for c in sec["table"]["columns"]]
    assert headers == ["Model", "Parameters", "Log-likelihood", "AIC", "BIC", "Average error per customer",
                       "Root mean squared error", "Error of the total", "Rank correlation with what happened",
                       "Fit", "Chosen"]  # no tracking columns of n/a: the table came without a log
    assert [r[0] for r in sec["table"]["rows"]] == ["BG/NBD", "Pareto/NBD", "MBG/NBD"]
    assert [r[-2:] for r in sec["table"]["rows"]] == [["sound", "chosen"], ["degenerate", ""], ["sound", ""]]
    assert sec["table"]["rows"][0][7] == pytest.approx(-0.121)  # percent points to a fraction
    assert ("The forecast uses BG/NBD: it had the lowest average error per customer on the holdout purchases "
            "(0.785, against 0.800 for MBG/NBD). Pareto/NBD was passed over: its fit is degenerate.") in sec["text"]
    assert sec["notes"] == ["Pareto/NBD: no evidence of dropout"]
    html = cf.report.render.to_html(s, {})
    assert "Model comparison" in html and "AIC / BIC" in html  # the glossary explains the scores


def test_ranges_plug_in_from_a_totals_table(small) -> None:
    res = small.results
    totals = pd.DataFrame({"expected": [1500.0, 60000.0, 55000.0], "lower": [1400.0, 50000.0, 45000.0],
                           "upper": [1600.0, 70000.0, 65000.0], "calibrated_lower": [1300.0, 40000.0, 38000.0],
                           "calibrated_upper": [1900.0, 90000.0, 85000.0]},
                          index=pd.Index(["purchases", "revenue", "clv"], name="quantity"))
    totals.attrs = {"level": 0.8, "includes": ["process", "parameter", "spend"],
                    "past_errors": {"purchases": {"n_cutoffs": 3, "mean_pct_error": 12.0},
                                    "spend": {"n_cutoffs": 3, "mean_pct_error": 15.0}}}
    s = build_summary(Results(**{**vars(res), "totals": totals}), small.settings)
    first = s["executive"]["sentences"][0]
    assert ("80% range: model-only $45,000 to $65,000; backtest-calibrated (with the model's past errors) "
            "$38,000 to $85,000") in first
    texts = s["forecast"]["range_texts"]
    assert texts[0].startswith("Model-only 80% ranges include the purchase process") and "spend" in texts[0]
    assert "on the holdout and at 2 earlier cutoffs" in texts[1] and "12% above" in texts[1]
    rows = s["forecast"]["totals_table"]["rows"]
    assert rows[2] == ["Backtest-calibrated 80% range", "1,300 to 1,900", "$40,000 to $90,000",
                       "$38,000 to $85,000"]


def test_the_fit_check_reads_diagnostics_when_the_model_has_them(small) -> None:
    model = small.results.purchase_model
    assert summary_module.fit_problem(model) is None  # CDNOW's calibration fit is sound
    class Diagnosed:
        LABEL = "Pareto/NBD"
        diagnostics_ = {"converged": True, "identified": False, "at_bound": ["beta"], "gradient_norm": 1e-3,
                        "hessian_condition": 1e12, "message": "beta is not identified"}
    problem = summary_module.fit_problem(Diagnosed())
    assert problem == {"short": "a degenerate purchase-model fit",
                       "text": "The Pareto/NBD fit is degenerate: beta is not identified."}


# ------------------------------------------------------------------------------------------------------------
# Read as a reader: headless Chromium
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.skipif(find_browser() is None, reason=NO_BROWSER)
def test_renders_in_headless_chromium(report, tmp_path: Path) -> None:
    html = report.write_html(tmp_path / "r.html")
    page = screenshot(find_browser(), html, tmp_path / "r.png")
    assert page.shape[0] > 5000  # a long page, not an error page
    assert colour_count(page) > 1000  # text, tables and plots give thousands of colours; a blank page a handful
    top = page[:400]
    assert (top.min(axis=2) < 100).mean() > 0.005  # the title and the summary are drawn at the top


def test_the_templates_are_package_data(tmp_path: Path) -> None:
    """A wheel built from this checkout carries every template, and the installed copy renders a report."""
    import os
    import subprocess
    import sys
    import zipfile

    root = PACKAGE.parents[1]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = subprocess.run([*pip, "wheel", str(root), "--no-deps", "--no-build-isolation", "-w", str(tmp_path)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("clvforecast-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    expected = {f"clvforecast/report/{p.relative_to(PACKAGE).as_posix()}" for p in (PACKAGE / "templates").rglob("*.j2")}
    assert len(expected) >= 15 and expected <= names
    target = tmp_path / "site"
    install = subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    code = (
        "import clvforecast as cf, pandas as pd\n"
        "rfm = pd.DataFrame({'frequency': [0, 2, 5, 1] * 60, 'recency': [0.0, 20.0, 30.0, 5.0] * 60,\n"
        "                    'T': 40.0, 'monetary_value': [0.0, 20.0, 35.0, 12.0] * 60})\n"
        "rfm.index = pd.RangeIndex(1, 241, name='customer_id'); rfm.attrs['time_unit'] = 'W'\n"
        "html = cf.ForecastReport(rfm=rfm, currency='$').to_html()\n"
        "print(cf.__file__, html.count('<section'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(target),
                                                                          "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    module, sections = proc.stdout.split()[-2:]
    assert module.startswith(str(target)) and int(sections) >= 8


def test_tier_ranges_read_from_to_with_the_same_decimals(report) -> None:
    """The CLV tiers' 'from' and 'to' columns are one range: one choice of decimals for both (each column on its
    own showed $371.74 beside $370 when the highest CLV passed $1,000)."""
    from types import SimpleNamespace

    from clvforecast.report.format import Formatter
    from clvforecast.report.summary import Context

    tiers = report.summary["tiers"]["table"]
    kinds = {c["key"]: c["kind"] for c in tiers["columns"]}
    assert kinds["clv_from"] == kinds["clv_to"]
    frame = pd.DataFrame({"clv_from": [371.74, 120.5], "clv_to": [2_400.0, 370.2]}, index=["Q1", "Q2"])
    stub = SimpleNamespace(settings=SimpleNamespace(unit_name="week"), disc="discounted", fmt=Formatter("$"),
                           level=0.9)
    alone = Context.table(stub, frame, {"clv_from": "money", "clv_to": "money"}, index="tier")
    paired = Context.table(stub, frame, {"clv_from": "money", "clv_to": "money"}, index="tier",
                           together=("clv_from", "clv_to"))
    assert [c["kind"] for c in alone["columns"][1:]] == ["money2", "money0"]
    assert [c["kind"] for c in paired["columns"][1:]] == ["money0", "money0"]
    # a narrow tier whose ends would both read $6 keeps the cents (CDNOW master: 5.614 to 6.001)
    narrow = pd.DataFrame({"clv_from": [22.7, 5.614], "clv_to": [7_554.9, 6.001]}, index=["Q1", "Q2"])
    paired = Context.table(stub, narrow, {"clv_from": "money", "clv_to": "money"}, index="tier",
                           together=("clv_from", "clv_to"))
    assert [c["kind"] for c in paired["columns"][1:]] == ["money2", "money2"]
