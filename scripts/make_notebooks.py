"""Write the notebooks in notebooks/ from the cells below (outputs stripped). Run: python scripts/make_notebooks.py"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OUT = Path(__file__).resolve().parents[1] / "notebooks"


def md(text: str):
    return new_markdown_cell(text.strip())


def code(text: str):
    return new_code_cell(text.strip())


QUICKSTART = [
    md("""
# Quickstart: from transactions to customer lifetime value

CDNOW's 1/10 sample (2,357 customers who first bought CDs in Q1 1997, purchases to mid-1998), the data of
Fader, Hardie & Lee (2005). We go transactions -> RFM table -> BG/NBD and Gamma-Gamma models -> CLV per customer.
"""),
    code("""
%matplotlib inline
import clvforecast as cf
from clvforecast import plotting

tx = cf.load_cdnow("sample")  # customer_id, date, quantity, amount (US$)
tx.head()
"""),
    md("""
## RFM table
One row per customer, in weeks. `frequency` counts *repeat* purchase days, `recency` is the time from the first to
the last purchase, `T` from the first purchase to the end of the period, `monetary_value` the mean spend per repeat
purchase day.
"""),
    code("""
rfm = cf.rfm_summary(tx, observation_end="1998-06-30", time_unit="W")
print(len(rfm), "customers;", rfm.attrs)
rfm.describe().round(2)
"""),
    md("## Models: BG/NBD for purchases, Gamma-Gamma for spend"),
    code("""
bg = cf.BetaGeo().fit(rfm)
gg = cf.GammaGamma().fit(rfm)
display(bg.summary.round(4), gg.summary.round(4))
print(f"log-likelihoods: BG/NBD {bg.log_likelihood_:,.2f}, Gamma-Gamma {gg.log_likelihood_:,.2f}")
"""),
    md("## Predictive CLV over the next 12 months (10% annual discount rate, 30% margin)"),
    code("""
clv = cf.predictive_clv(bg, gg, rfm, horizon="12M", discount_rate=0.10, margin=0.30)
assert clv.notna().all().all()
print(f"total CLV {clv['clv'].sum():,.0f}; expected purchases {clv['expected_purchases'].sum():,.0f}")
clv.sort_values("clv", ascending=False).head(10).round(3)
"""),
    code("""
import matplotlib.pyplot as plt
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
plotting.plot_forecast_distribution(clv, "clv", ax=axes[0])
plotting.plot_forecast_distribution(clv, "probability_alive", ax=axes[1])
plotting.plot_frequency_recency_heatmap(bg, quantity="probability_alive", rfm=rfm, ax=axes[2]);
"""),
    md("## A self-contained HTML report of the same forecast"),
    code("""
report = cf.ForecastReport(tx, time_unit="W", horizon="12M", discount_rate=0.10, margin=0.30)
print(report.to_markdown()[:800])
"""),
]

VALIDATION = [
    md("""
# Holdout validation: is the forecast good, and better than the historical formula?

Fit on 1997-01-01..1997-09-30 (39 weeks), predict 1997-10-01..1998-06-30 (39 weeks), as in Fader, Hardie & Lee
(2005), and compare the BG/NBD (+ Gamma-Gamma) forecast with two historical baselines: the average formula (every
customer gets the average rate) and the run-rate (each customer's own past rate).
"""),
    code("""
%matplotlib inline
import matplotlib.pyplot as plt
import clvforecast as cf
from clvforecast import plotting

tx = cf.load_cdnow("sample")
ev = cf.evaluate_holdout(tx, calibration_end="1997-09-30", observation_end="1998-06-30", time_unit="W")
print(ev.summary)
"""),
    md("## The paper's conditional expectations: holdout purchases by calibration frequency"),
    code("""
ev.conditional_expectations.round(4)
"""),
    code("""
fig, axes = plt.subplots(1, 2, figsize=(14, 4))
plotting.plot_conditional_expectations(ev.conditional_expectations, ax=axes[0])
plotting.plot_period_transactions(ev.period_transactions, ax=axes[1]);
"""),
    md("## Tracking repeat transactions, calibration and holdout"),
    code("""
fig, axes = plt.subplots(1, 2, figsize=(14, 4))
plotting.plot_tracking(ev.tracking, cumulative=True, ax=axes[0])
plotting.plot_tracking(ev.tracking, cumulative=False, ax=axes[1]);
"""),
    md("## Metrics per method"),
    code("""
ev.metrics_table().round(3)
"""),
    code("""
plotting.plot_gains(ev.customers, target="spend");
"""),
    md("## Backtest: the same evaluation at several calibration cut-offs (rolling origin), 26-week horizon"),
    code("""
bt = cf.backtest(tx, cutoffs=["1997-06-30", "1997-09-30", "1997-12-30"], horizon="26W", time_unit="W",
                 progress=False)
bt[(bt["metric"] == "mae") & (bt["target"] == "spend")].pivot(index="cutoff", columns="method", values="value").round(2)
"""),
]

HISTORICAL = [
    md("""
# Predictive vs historical CLV

Businesses compute CLV with a simple formula: average purchase value x purchase frequency x customer lifespan,
minus the acquisition cost. Here we compute it exactly, per segment, estimate the lifespan from the data, and compare
it customer by customer with the model-based CLV.
"""),
    code("""
%matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd
import clvforecast as cf
from clvforecast import plotting

tx = cf.load_cdnow("sample")
year1 = tx[tx["date"] <= "1997-12-31"]
"""),
    md("## The formula on one year of data, with a lifespan estimated from churn"),
    code("""
life = cf.estimate_lifespan(year1, window="13W")
life
"""),
    code("""
hist = cf.historical_clv(year1, lifespan_years=life.lifespan_years, periods_per_year=1, acquisition_cost=10.0)
hist
"""),
    md("## Segments: each segment's value first, then combined (weighted by customers)"),
    code("""
first_basket = year1.sort_values("date").groupby("customer_id")["quantity"].first()
segment = (first_basket > 1).map({True: "multi-CD first order", False: "single-CD first order"})
cf.historical_clv(year1, lifespan_years=life.lifespan_years, segment=segment)
"""),
    md("## Customer by customer: predictive vs historical over the same 39 weeks"),
    code("""
cal = cf.calibration_holdout(tx, calibration_end="1997-09-30", observation_end="1998-06-30", time_unit="W")
bg, gg = cf.BetaGeo().fit(cal), cf.GammaGamma().fit(cal)
pred = cf.predictive_clv(bg, gg, cal, horizon="39W")
hf = cf.historical_forecast(tx, calibration_end="1997-09-30", horizon="39W", time_unit="W")
comp = cf.compare_clv(pred, hf, rfm=cal)
comp.summary["variants"].round(3)
"""),
    code("""
fig, axes = plt.subplots(1, 3, figsize=(18, 4.5))
plotting.plot_lorenz(comp, ax=axes[0])
plotting.plot_tiers(comp, ax=axes[1])
plotting.plot_predictive_vs_historical(comp, "run_rate", ax=axes[2]);
"""),
    md("## Which was closer to what customers actually spent in the holdout?"),
    code("""
actual = cal["holdout_spend"]
table = pd.DataFrame({
    "predictive": (pred["clv"] - actual).abs().mean(),
    "avg_formula": (hf["avg_formula_spend"] - actual).abs().mean(),
    "run_rate": (hf["run_rate_spend"] - actual).abs().mean(),
}, index=["mean absolute error per customer"]).T
table.round(2)
"""),
]


def write(name: str, cells: list) -> None:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.write(nb, OUT / name)


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    write("01_quickstart.ipynb", QUICKSTART)
    write("02_holdout_validation.ipynb", VALIDATION)
    write("03_predictive_vs_historical.ipynb", HISTORICAL)
    print("wrote", *sorted(p.name for p in OUT.glob("*.ipynb")))
