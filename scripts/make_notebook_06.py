"""Write notebooks/06_uncertainty.ipynb from the cells below (outputs stripped).

Run: python scripts/make_notebook_06.py (uses the helpers of scripts/make_notebooks.py)."""

from __future__ import annotations

from make_notebooks import OUT, code, md, write

UNCERTAINTY = [
    md("""
# How sure is the forecast? Predictive intervals, checked on a holdout

A forecast of 1.2 purchases next year is an average; the customer will make 0, 1, 2 or 5. A business asks how
sure we are: a range for next year's revenue from today's customers, and a range per customer that marketing can
rank on. `predictive_clv(..., interval=0.9)` gives each customer an equal-tailed 90% interval of what she will
actually buy and be worth, and `forecast_totals` the interval of the base's totals. Both include

* the **purchase process**: the exact distribution of the count under the model (alive or not, purchases while
  alive, dropout after each purchase);
* the **parameter uncertainty**: the estimates' sampling distribution, drawn on the log scale;
* the **spend**: each customer's Gamma-Gamma posterior of her mean spend and the spread of each purchase.

We fit on CDNOW's first 39 weeks and check the intervals on the next 39 (Fader, Hardie & Lee 2005).
"""),
    code("""
%matplotlib inline
import numpy as np
import pandas as pd
import matplotlib.pyplot as plt
import clvforecast as cf
from clvforecast import plotting

tx = cf.load_cdnow("sample")
cal = cf.calibration_holdout(tx, calibration_end="1997-09-30", observation_end="1998-06-30", time_unit="W")
bg, gg = cf.BetaGeo().fit(cal), cf.GammaGamma().fit(cal)
bg.summary.round(4)
"""),
    md("""
## Each customer's range over the next 39 weeks

`expected_purchases` and `clv` are the usual point forecasts; `_lower` and `_upper` bound what the customer will
actually do with 90% probability. Counts are whole numbers, so the bounds are too. The lower bound is 0 for most
customers: even an active customer may well buy nothing in a given half-year.
"""),
    code("""
fc = cf.predictive_clv(bg, gg, cal, horizon="39W", interval=0.9, step="39W", random_state=0)
print(fc.attrs["interval"]["includes"], fc.attrs["interval"]["n_draws"], "parameter draws")
fc.sort_values("clv", ascending=False).head(10).round(2)
"""),
    md("""
## Do the ranges hold? Coverage on the holdout

The share of customers whose actual holdout purchases fall inside their own 90% interval should be at least 90%,
and a little more: with whole-number bounds an equal-tailed interval holds more than 90% of the probability.
"""),
    code("""
ev = cf.evaluate_holdout(tx, calibration_end="1997-09-30", observation_end="1998-06-30", time_unit="W",
                         interval=0.9, past_cutoffs=4, random_state=0)
print("coverage of purchases:", ev.metric("coverage", "purchases").round(3).to_dict())
print("coverage of spend:    ", ev.metric("coverage", "spend").round(3).to_dict())
ev.metrics_table().loc[(slice(None), ["mae", "coverage", "interval_width"]), :].round(3)
"""),
    md("""
For comparison, an interval of the *mean* only (the posterior of each customer's expected purchases, what a
Bayesian fit reports when asked for uncertainty) contains almost nobody's actual count: the mean is a fraction,
the actual count a whole number, and the parameters are well determined by 2,357 customers.
"""),
    code("""
theta = bg.params_.to_numpy()
log_cov = bg.variance_matrix_.to_numpy() / np.outer(theta, theta)  # covariance of the log-parameters
draws = np.exp(np.random.default_rng(0).multivariate_normal(np.log(theta), log_cov, size=200))
means = []
for d in draws:
    m = cf.BetaGeo()
    m.params_, m.time_unit_ = pd.Series(d, index=bg.params_.index), "W"
    means.append(m.expected_purchases(cal, 39).to_numpy())
lo, hi = np.quantile(np.array(means), [0.05, 0.95], axis=0)
y = cal["holdout_frequency"].to_numpy()
print(f"parameter-only 90% intervals contain the actual holdout purchases of {np.mean((lo <= y) & (y <= hi)):.1%} "
      "of customers")
"""),
    md("""
## The randomised PIT

For each customer, the predictive CDF at her actual count, randomised within the jump of the count
(`F(y-1) + U (F(y) - F(y-1))`), is uniform when the forecast distribution is right. A U shape would say the
intervals are too narrow, a hump too wide, a slope a bias.
"""),
    code("""
fig, axes = plt.subplots(1, 2, figsize=(14, 4.5))
plotting.plot_pit(ev, ax=axes[0])
plotting.plot_customer_intervals(ev.customers, column="bgnbd_purchases", top=15, ax=axes[1]);
"""),
    md("""
## The whole base: the distribution of the sum, and the model's past errors

The interval of a total is not the sum of the customers' bounds (far too wide): given the parameters the
customers are independent, so the sum is close to normal; over the parameter draws it is a mixture. This
**model-only** interval assumes nothing hits all customers at once. A season or a market shift does, and on
CDNOW the model under-forecast the holdout by 12%: 1,653 expected, 1,882 happened.

The **backtest-calibrated** interval carries the model's own past misses: it refits at earlier cutoffs (here four,
with holdouts ending by 1997-09-30, so nothing after the calibration end is used), takes the log ratios of
actual to predicted totals as draws of the next error (bias and spread, Student t over the few cutoffs) and
applies them to the model-only distribution.
"""),
    code("""
print(ev.totals.round(1).to_string())
pd.DataFrame(ev.totals.attrs["past_totals"]).round(3)
"""),
    code("""
fig, axes = plt.subplots(1, 2, figsize=(14, 3))
plotting.plot_total_intervals(ev, quantity="purchases", ax=axes[0])
plotting.plot_total_intervals(ev, quantity="spend", ax=axes[1]);
"""),
    md("""
## Next year's totals for today's customers

Fitted on all the data to 1998-06-30, 52 weeks ahead, 10% a year discount, 30% margin. `past_errors` takes a
`backtest` table (or `cf.evaluation.total_errors` of one) for the calibrated interval.
"""),
    code("""
rfm = cf.rfm_summary(tx, observation_end="1998-06-30", time_unit="W")
bg_all, gg_all = cf.BetaGeo().fit(rfm), cf.GammaGamma().fit(rfm)
bt = cf.backtest(tx, cutoffs=["1997-09-30", "1997-10-31", "1997-11-30", "1997-12-30"], horizon="26W",
                 progress=False)
totals = cf.forecast_totals(bg_all, gg_all, rfm, horizon="52W", discount_rate=0.10, margin=0.30, past_errors=bt,
                            random_state=0)
display(cf.evaluation.total_errors(bt).round({"predicted": 1, "actual": 1, "pct_error": 2, "log_error": 3}))
totals.round(0)
"""),
]

if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    write("06_uncertainty.ipynb", UNCERTAINTY)
    print("wrote", OUT / "06_uncertainty.ipynb")
