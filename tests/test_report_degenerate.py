"""A report on a log whose fit is degenerate: customers who buy as Poisson processes and never leave.

The BG/NBD then finds no dropout (a -> 0 or b -> infinity) and every P(alive) is within a hair of 1 (the case
that once gave a P(alive) axis reading -1.6 ... 0.0 with a "1e-8+1" offset). The report must say so in its
summary, and show a sentence instead of a one-bar histogram, with no offset axis and no empty panel.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from _browser import NO_BROWSER, colour_count, find_browser, screenshot
from bs4 import BeautifulSoup

import clvforecast as cf
from clvforecast.plotting._robust import said
from clvforecast.report import figures as report_figures


def simulate_no_dropout(n: int = 200, seed: int = 7, days: int = 546) -> pd.DataFrame:
    """Purchases of ``n`` customers who each buy as a Poisson process with a gamma-distributed rate (mean one
    purchase in 30 days), from a first purchase in the first 90 days to the end, and never leave."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(2.0, 1 / 60, n)
    firsts = rng.integers(0, 90, n)
    ids, offsets = [], []
    for i in range(n):
        t = firsts[i] + np.concatenate([[0.0], np.cumsum(rng.exponential(1 / rates[i], size=200))])
        t = t[t < days]
        ids += [i + 1] * len(t)
        offsets += list(t.astype(int))
    dates = pd.Timestamp("2020-01-01") + pd.to_timedelta(offsets, unit="D")
    return pd.DataFrame({"customer_id": ids, "date": dates, "amount": rng.gamma(4.0, 10.0, len(ids)).round(2)})


@pytest.fixture(scope="module")
def built() -> tuple[cf.ForecastReport, list[tuple[str, str]]]:
    """The report, and every warning emitted while it was computed (category, text)."""
    import warnings

    tx = simulate_no_dropout()
    rep = cf.ForecastReport(tx, calibration_end="2020-12-31", currency="£", title="No dropout", model="bgnbd")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every emission counts, whatever the registry
        rep.summary  # noqa: B018 (the fit warns that its Hessian is singular: expected here)
    return rep, [(w.category.__name__, str(w.message)) for w in caught]


@pytest.fixture(scope="module")
def report(built) -> cf.ForecastReport:
    return built[0]


def test_the_fit_is_degenerate_and_the_summary_says_so(report) -> None:
    p = report.results.purchase_model.params_
    assert p["a"] < 1e-4 or p["b"] > 1e4  # no dropout found: the premise of this file
    assert report.results.clv["probability_alive"].min() > 1 - 1e-6
    text = " ".join(report.summary["executive"]["sentences"])
    assert "degenerate purchase-model fit (no evidence that customers leave)" in text
    caveat = report.summary["executive"]["caveats"][0]["text"]
    assert "no evidence of dropout in the calibration period" in caveat and "Pareto/NBD" in caveat
    assert report.summary["models"]["problems"]  # and the models section shows it too


def test_each_caveat_is_warned_once_though_the_backtest_refits(built) -> None:
    texts = built[1]
    assert any("no evidence of dropout" in t for _, t in texts)  # the degenerate fit, at every cutoff
    assert len(texts) == len(set(texts)), texts


def test_a_sentence_replaces_the_one_bar_histogram(report) -> None:
    fig = report.figures["alive_distribution"]
    assert fig.png is None
    assert fig.sentence == "All 200 customers have P(alive) 100.0%: a histogram would be one bar."
    soup = BeautifulSoup(report.to_html(), "html.parser")
    box = soup.find("section", id="forecast").find("div", class_="figure-sentence")
    assert "a histogram would be one bar" in box.get_text()
    assert not [img for img in soup.find_all("img") if "still active" in img["alt"]]


def test_no_offset_axes_and_no_empty_panels(report) -> None:
    """Every figure the report draws, drawn again here without the report's rc settings: no axis has an
    offset or scientific multiplier, and every drawn Axes holds data (or is a sentence)."""
    summary, results = report.summary, report.results
    for key in report.figures:
        title, _, fn = report_figures._FIGURES[key]
        what = fn(summary, results)
        if isinstance(what, str):
            continue
        fig, ax = plt.subplots()
        what(ax)
        fig.canvas.draw()
        if said(ax) is None:
            assert ax.lines or ax.patches or ax.collections, f"{key}: an empty panel"
        for a in fig.axes:
            for axis in (a.xaxis, a.yaxis):
                offset = axis.get_offset_text().get_text()
                assert offset == "" or offset.isdigit(), f"{key}: offset {offset!r}"  # a year on a date axis
        plt.close(fig)
    drawn = [f for f in report.figures.values() if f.png]
    assert len(drawn) >= 8 and all(f.png or f.sentence for f in report.figures.values())


def test_markdown_and_json_of_the_degenerate_report(report) -> None:
    md = report.to_markdown()
    assert "_Probability that each customer is still active: All 200 customers" in md
    assert "£" in md and "None of the" in md  # nobody is silent when nobody leaves
    assert "NaN" not in report.to_json()  # the singular Hessian leaves standard errors undefined: null


@pytest.mark.skipif(find_browser() is None, reason=NO_BROWSER)
def test_degenerate_report_renders_in_headless_chromium(report, tmp_path: Path) -> None:
    html = report.write_html(tmp_path / "degenerate.html")
    page = screenshot(find_browser(), html, tmp_path / "degenerate.png")
    assert page.shape[0] > 4000 and colour_count(page) > 1000


def test_the_model_section_puts_the_warning_first_and_no_unidentified_estimate(report) -> None:
    soup = BeautifulSoup(report.to_html(), "html.parser")
    sec = soup.find("section", id="models")
    first = sec.find("h2").find_next_sibling()
    assert "note" in first.get("class", []) and "The BG/NBD fit is degenerate" in first.get_text()
    table = sec.find("table")
    rows = {r.td.get_text(): [td.get_text() for td in r.find_all("td")] for r in table.tbody.find_all("tr")}
    summary = report.results.purchase_model.summary
    assert not summary.loc["a", "identified"] and not summary.loc["b", "identified"]  # the premise
    for name in ("a (dropout, beta)", "b (dropout, beta)"):
        assert rows[name][1] == "not identified" and rows[name][2:5] == ["n/a"] * 3
        assert "which is not an estimate" in rows[name][5]
    assert float(rows["r (shape of purchase rates)"][1]) == pytest.approx(summary.loc["r", "coef"], abs=1e-3)
    notes = sec.get_text(" ", strip=True)
    assert "The data do not determine how often customers leave (a, b not identified)" in notes
    assert "leaves for good with probability" not in notes  # no "0.0% leave" from a parameter at its edge
