"""The HTML forecast report, checked as a user would read it: sections, tables, embedded figures, no assets."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

import clvforecast as cf

CAL_END, OBS_END = "1997-09-30", "1998-06-30"


@pytest.fixture(scope="module")
def report(cdnow_tx):
    return cf.ForecastReport(
        cdnow_tx,
        calibration_end=CAL_END,
        observation_end=OBS_END,
        time_unit="W",
        horizon="52W",
        discount_rate=0.10,
        title="CDNOW test report",
    )


@pytest.fixture(scope="module")
def soup(report) -> BeautifulSoup:
    return BeautifulSoup(report.to_html(), "html.parser")


def test_sections_present(soup: BeautifulSoup) -> None:
    ids = [s["id"] for s in soup.find_all("section")]
    assert ids == ["overview", "forecast", "top", "tiers", "validation", "models", "methods"]
    assert soup.title.string == "CDNOW test report"


def test_self_contained(soup: BeautifulSoup) -> None:
    images = soup.find_all("img")
    assert len(images) >= 6  # the issue asks for at least six figures
    assert all(img["src"].startswith("data:image/png;base64,") for img in images)
    assert not soup.find_all("script", src=True)
    assert not soup.find_all("link", href=True)  # no external stylesheets or fonts
    assert "http://" not in str(soup.find("style")) and "https://" not in str(soup.find("style"))


def test_overview_numbers(soup: BeautifulSoup) -> None:
    text = soup.find("section", id="overview").get_text(" ", strip=True)
    # CDNOW sample: 2,357 customers, 6,919 transactions, 4,339 repeat transactions over the 78 weeks
    # (published-numbers.md: "4,339 actual" cumulative repeat transactions at week 78)
    # 6,919 transaction rows are 6,696 purchase days (2,357 first + 4,339 repeat)
    for number in ("2,357", "6,919", "6,696 purchase days", "4,339", "1997-01-01", "1998-06-30"):
        assert number in text
    assert "No rows were dropped" in text


def test_validation_section_has_metrics_and_paper_diagnostics(soup: BeautifulSoup) -> None:
    sec = soup.find("section", id="validation")
    tables = sec.find_all("table")
    assert len(tables) == 4  # metrics, conditional expectations, BG/NBD and Gamma-Gamma on the calibration period
    # the calibration fit is the paper's: r = 0.243, alpha = 4.414, a = 0.793, b = 2.426; p = 6.25, q = 3.74, v = 15.44
    bg_cells = [td.get_text(strip=True) for td in tables[2].select("tbody tr td:nth-of-type(1)")]
    assert [round(float(c), 3) for c in bg_cells] == [0.243, 4.414, 0.793, 2.426]
    gg_cells = [td.get_text(strip=True) for td in tables[3].select("tbody tr td:nth-of-type(1)")]
    assert [round(float(c), 2) for c in gg_cells] == [6.25, 3.74, 15.44]
    metrics = tables[0].get_text(" ", strip=True)
    for word in ("bgnbd", "avg_formula", "run_rate", "mae", "top_decile_capture", "gini", "1,882.000"):
        assert word in metrics
    cond = tables[1]
    # the paper's customer counts by calibration frequency 0..6, 7+
    counts = [td.get_text(strip=True) for td in cond.select("tbody tr td:nth-of-type(1)")]
    assert counts == ["1,411", "439", "214", "100", "62", "38", "29", "64"]
    captions = [c.get_text() for c in sec.find_all("figcaption")]
    assert any("Tracking" in c for c in captions) and any("Conditional expectations" in c for c in captions)


def test_models_section_parameters(soup: BeautifulSoup) -> None:
    text = soup.find("section", id="models").get_text(" ", strip=True)
    for word in ("BG/NBD", "Gamma-Gamma", "alpha", "coef", "lower", "upper"):
        assert word in text
    methods = soup.find("section", id="methods").get_text(" ", strip=True)
    for word in ("weeks", "Discount rate: 10.0%", "margin", "Day resolution"):
        assert word in methods


def test_summary_matches_the_public_api(report, cdnow_tx) -> None:
    """The report is a view of the public API: its totals equal what the API computes directly."""
    rfm = cf.rfm_summary(cdnow_tx, observation_end=OBS_END, time_unit="W")
    bg, gg = cf.BetaGeo().fit(rfm), cf.GammaGamma().fit(rfm)
    clv = cf.predictive_clv(bg, gg, rfm, horizon="52W", discount_rate=0.10)
    fc = report.summary["forecast"]
    assert fc["clv_total"] == pytest.approx(clv["clv"].sum(), rel=1e-9)
    assert fc["expected_purchases"] == pytest.approx(clv["expected_purchases"].sum(), rel=1e-9)
    top = report.summary["top_customers"]
    assert list(top.index) == list(clv["clv"].nlargest(20).index)


def test_markdown_and_json(report) -> None:
    md = report.to_markdown()
    assert md.startswith("# CDNOW test report")
    for heading in (
        "## Data overview",
        "## Holdout validation",
        "## Fitted models",
        "## Methods and assumptions",
    ):
        assert heading in md
    assert "data:image/png" not in md and "data:image/png" in report.to_markdown(figures=True)
    data = json.loads(report.to_json())
    assert data["overview"]["customers"] == 2357
    assert data["settings"]["time_unit"] == "W" and data["settings"]["horizon_units"] == 52
    rows = {(m["target"], m["metric"]): m for m in data["validation"]["metrics"]}
    assert rows[("purchases", "total_actual")]["bgnbd"] == 1882  # published holdout repeat transactions
    assert "NaN" not in report.to_json()


def test_write_html_and_repr_html(report, tmp_path: Path) -> None:
    path = report.write_html(tmp_path / "sub" / "r.html")
    assert path.read_text(encoding="utf-8") == report.to_html()
    assert '<section id="validation">' in report._repr_html_()


def test_forecast_only_report_from_rfm_table(cdnow_cal) -> None:
    rfm = cdnow_cal[["frequency", "recency", "T", "monetary_value"]].copy()
    rfm.attrs = {"time_unit": "W", "observation_end": CAL_END}
    rep = cf.ForecastReport(rfm=rfm, time_unit="W", horizon="39W", discount_rate=0.0)
    soup = BeautifulSoup(rep.to_html(), "html.parser")
    ids = [s["id"] for s in soup.find_all("section")]
    assert "validation" not in ids and "tiers" not in ids and "forecast" in ids
    assert len(soup.find_all("img")) >= 4


def test_report_rejects_bad_arguments(cdnow_tx) -> None:
    with pytest.raises(ValueError, match="either transactions or rfm"):
        cf.ForecastReport()
    with pytest.raises(ValueError, match="horizon"):
        cf.ForecastReport(cdnow_tx, horizon="ten weeks")
    with pytest.raises(ValueError, match="margin"):
        cf.ForecastReport(cdnow_tx, margin=0)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium is not installed here")
def test_renders_in_headless_chromium(report, tmp_path: Path) -> None:
    html = report.write_html(tmp_path / "r.html")
    png = tmp_path / "r.png"
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,3000",
            f"--screenshot={png}",
            html.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert png.exists()
    from PIL import Image  # pillow comes with matplotlib

    with Image.open(png) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000) or []
    # text, tables and embedded plots give thousands of colours; a blank or error page a handful
    assert len(colours) > 1000


def test_report_on_a_table_without_attrs_uses_its_time_unit(cdnow_cal) -> None:
    """The report's time_unit reaches the models: no fit in days of a weekly table that lost its attrs."""
    rfm = cdnow_cal[["frequency", "recency", "T", "monetary_value"]].copy()
    rfm.attrs = {}
    bare = cf.ForecastReport(rfm=rfm, time_unit="W", horizon="39W")
    rfm_w = rfm.copy()
    rfm_w.attrs = {"time_unit": "W", "observation_end": CAL_END}
    reference = cf.ForecastReport(rfm=rfm_w, time_unit="W", horizon="39W")
    assert bare.summary["forecast"]["clv_total"] == pytest.approx(reference.summary["forecast"]["clv_total"])
    assert bare._results["bg"].time_unit_ == "W"


def test_a_margin_above_one_is_refused(cdnow_tx) -> None:
    with pytest.raises(ValueError, match=r"more than the whole spend.*pass margin=0\.3 for 30%"):
        cf.ForecastReport(cdnow_tx, margin=30)
    with pytest.raises(ValueError, match=r"1,000% a year.*pass discount_rate=0\.1"):
        cf.ForecastReport(cdnow_tx, discount_rate=10)
