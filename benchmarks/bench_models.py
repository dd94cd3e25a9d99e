"""BG/NBD + Gamma-Gamma on a million simulated customers: clvforecast against lifetimes.

Simulates customers from the BG/NBD and Gamma-Gamma processes with the CDNOW estimates as the truth and the
CDNOW design (first purchases spread over 12 weeks, calibration ending 39 weeks after the first day, day
resolution, weekly units), then times

* the BG/NBD fit: ours (lifetimes' fitter on the distinct (frequency, recency, T) rows with counts as weights,
  warm-started from a 5% subsample) against lifetimes' unweighted ``BetaGeoFitter.fit`` on every row;
* the Gamma-Gamma fit (ours, and lifetimes unweighted for reference);
* 12 months of CLV for every customer: ``predictive_clv`` against lifetimes' ``customer_lifetime_value``, both
  with lifetimes' 4.345-week months so that they compute the same numbers (their agreement is printed).

Prints seconds, speed ratios, recovered parameters against the truth and NaN counts. Targets: BG/NBD fit and
CLV at least 10x faster than lifetimes, parameters within 5% of the truth (or 4 standard errors at a small
--scale), no NaN. Exits 1 when a correctness target (parameters, NaN, agreement) is missed; speed depends on
the machine and on the scale (the gain grows with the number of customers per distinct history) and is only
reported.

    python benchmarks/bench_models.py               # 1,000,000 customers (lifetimes' fit takes a while)
    python benchmarks/bench_models.py --scale 0.05  # 50,000 customers
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import clvforecast as cf
from clvforecast.models import beta_geo as bgnbd
from clvforecast.models._base import import_lifetimes, unique_rows

TRUTH_BG = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # alpha in weeks
TRUTH_GG = {"p": 6.25, "q": 3.74, "v": 15.44}
ACQUISITION_DAYS, CALIBRATION_DAYS = 84, 273  # CDNOW: Q1 1997 cohort, calibration to 1997-09-30
LIFETIMES_MONTH_WEEKS = 4.345  # lifetimes' customer_lifetime_value(freq="W") month


def simulate(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """RFM table (weeks, day resolution) of ``n`` customers drawn from the BG/NBD and Gamma-Gamma processes.

    Each customer has ``lambda ~ Gamma(r, alpha)`` and ``p ~ Beta(a, b)``; she stops after each repeat
    purchase with probability p, so the repeat purchases she would ever make are ``K ~ Geometric(p)`` on 1, 2,
    ...; the purchases in (0, T] are ``N ~ Poisson(lambda T)``, she makes ``x = min(K, N)`` of them, and the
    x-th of N uniform purchase times is ``T * Beta(x, N - x + 1)``. Recency is rounded to whole days (at least
    one day after the first purchase). Spend: ``nu ~ Gamma(q, v)`` and the mean of x spends ``~ Gamma(p x, x
    nu)``.
    """
    first_day = rng.integers(0, ACQUISITION_DAYS, n)
    t_days = CALIBRATION_DAYS - first_day
    lam = rng.gamma(TRUTH_BG["r"], 1.0 / TRUTH_BG["alpha"], n)  # per week
    p = rng.beta(TRUTH_BG["a"], TRUTH_BG["b"], n)
    k = rng.geometric(p)
    n_poisson = rng.poisson(lam * t_days / 7.0)
    x = np.minimum(k, n_poisson)
    rep = x > 0
    last = np.zeros(n)
    last[rep] = rng.beta(x[rep], n_poisson[rep] - x[rep] + 1)
    recency_days = np.where(rep, np.clip(np.round(last * t_days), 1, t_days), 0)
    nu = rng.gamma(TRUTH_GG["q"], 1.0 / TRUTH_GG["v"], n)
    spend = np.zeros(n)
    spend[rep] = rng.gamma(TRUTH_GG["p"] * x[rep], 1.0 / (x[rep] * nu[rep]))
    rfm = pd.DataFrame(
        {"frequency": x, "recency": recency_days / 7.0, "T": t_days / 7.0, "monetary_value": spend},
        index=pd.RangeIndex(1, n + 1, name="customer_id"),
    )
    rfm.attrs["time_unit"] = "W"
    return rfm


def recovered(model: cf.BetaGeo | cf.GammaGamma, name: str, truth: float) -> bool:
    """Within 5% of the truth, or within 4 standard errors when a small --scale makes 5% unreachable."""
    error = abs(model.params_[name] - truth)
    return bool(error <= 0.05 * truth or error <= 4 * model.summary.loc[name, "se"])


def timed(fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of 1,000,000 customers")
    parser.add_argument("--seed", type=int, default=2005)
    args, _ = parser.parse_known_args()
    n = max(1000, int(round(1_000_000 * args.scale)))
    lifetimes = import_lifetimes()
    warnings.simplefilter("ignore")  # lifetimes' deprecation and overflow noise
    ok = True

    rfm, secs = timed(simulate, n, np.random.default_rng(args.seed))
    codes, (ux, _, _), _ = unique_rows(*(rfm[c].to_numpy() for c in ("frequency", "recency", "T")))
    repeat = int((rfm["frequency"] > 0).sum())
    print(f"simulated {n:,} customers in {secs:.1f} s: {repeat:,} repeat buyers, max frequency "
          f"{rfm['frequency'].max()}, {len(ux):,} distinct (frequency, recency, T) histories "
          f"({n / len(ux):.1f} customers each)")

    # -- BG/NBD fit ------------------------------------------------------------------------------------------
    bg, ours = timed(cf.BetaGeo().fit, rfm)
    ref, theirs = timed(lifetimes.BetaGeoFitter().fit, rfm["frequency"], rfm["recency"], rfm["T"])
    print(f"\nBG/NBD fit   ours {ours:7.2f} s   lifetimes unweighted {theirs:7.2f} s   "
          f"ratio {theirs / ours:5.1f}x   target >= 10x: {'met' if theirs / ours >= 10 else 'MISSED'}")
    print(f"  warm start: {bg.fit_info_['warm_start']}; log-likelihood {bg.log_likelihood_:,.2f}")
    print(f"  {'param':<6} {'truth':>8} {'ours':>10} {'lifetimes':>10} {'rel. error':>11} {'se':>8}")
    for name, truth in TRUTH_BG.items():
        ok &= recovered(bg, name, truth)
        print(f"  {name:<6} {truth:8.3f} {bg.params_[name]:10.4f} {ref.params_[name]:10.4f} "
              f"{bg.params_[name] / truth - 1:+10.2%} {bg.summary.loc[name, 'se']:8.4f}")
    same = np.allclose(bg.params_.to_numpy(), ref.params_[list(TRUTH_BG)].to_numpy(), rtol=1e-4)
    print(f"  same estimates as the unweighted fit (rtol 1e-4): {same}")
    ok &= same

    # -- Gamma-Gamma fit -------------------------------------------------------------------------------------
    gg, ours_gg = timed(cf.GammaGamma().fit, rfm)
    rep = rfm[rfm["frequency"] > 0]
    _, theirs_gg = timed(lifetimes.GammaGammaFitter().fit, rep["frequency"], rep["monetary_value"])
    print(f"\nGamma-Gamma fit   ours {ours_gg:6.2f} s   lifetimes unweighted {theirs_gg:6.2f} s "
          f"({gg.n_customers_:,} repeat buyers, {gg.fit_info_['n_unique_rows']:,} distinct rows)")
    for name, truth in TRUTH_GG.items():
        ok &= recovered(gg, name, truth)
        print(f"  {name:<6} {truth:8.3f} {gg.params_[name]:10.4f} {gg.params_[name] / truth - 1:+10.2%} "
              f"{gg.summary.loc[name, 'se']:8.4f}")

    # -- CLV, 12 lifetimes months ----------------------------------------------------------------------------
    monthly = 0.01
    annual = (1 + monthly) ** (365.25 / (7 * LIFETIMES_MONTH_WEEKS)) - 1
    clv, ours_clv = timed(cf.predictive_clv, bg, gg, rfm, horizon=12 * LIFETIMES_MONTH_WEEKS,
                          step=LIFETIMES_MONTH_WEEKS, discount_rate=annual)
    bgf = lifetimes.BetaGeoFitter()
    bgf.params_ = bg.params_.copy()
    bgf.predict = bgf.conditional_expected_number_of_purchases_up_to_time
    ggf = lifetimes.GammaGammaFitter()
    ggf.params_ = gg.params_.copy()
    ref_clv, theirs_clv = timed(ggf.customer_lifetime_value, bgf, rfm["frequency"], rfm["recency"], rfm["T"],
                                rfm["monetary_value"], time=12, discount_rate=monthly, freq="W")
    finite = np.isfinite(ref_clv.to_numpy())
    relative = clv["clv"].to_numpy()[finite] / ref_clv.to_numpy()[finite] - 1
    agreement = float(np.max(np.abs(relative)))
    nan_ours = int((~np.isfinite(clv.to_numpy())).sum())
    ratio = theirs_clv / ours_clv
    print(f"\nCLV (12 months, all customers)   ours {ours_clv:6.2f} s   lifetimes {theirs_clv:6.2f} s   "
          f"ratio {ratio:5.1f}x   target >= 10x: {'met' if ratio >= 10 else 'MISSED'}")
    print(f"  NaN/inf: ours {nan_ours}, lifetimes {int((~finite).sum())}; max relative difference where "
          f"lifetimes is finite: {agreement:.1e}; total CLV {clv['clv'].sum():,.0f}")
    ok &= nan_ours == 0 and agreement < 1e-8

    # -- extreme histories -----------------------------------------------------------------------------------
    extreme = pd.DataFrame({"frequency": [1000, 5000, 5000], "recency": [39.0, 39.0, 20.0], "T": [39.0] * 3})
    extreme.attrs["time_unit"] = "W"
    with np.errstate(all="ignore"):
        theirs_x = bgf.conditional_expected_number_of_purchases_up_to_time(
            52, extreme["frequency"], extreme["recency"], extreme["T"]).to_numpy()
    ours_x = bg.expected_purchases(extreme, 52).to_numpy()
    print("\nexpected purchases in 52 weeks for frequency 1000 / 5000 / 5000 (recency 39, 39, 20; T 39):")
    print(f"  ours {np.array2string(ours_x, precision=4)}   "
          f"lifetimes {np.array2string(theirs_x, precision=4)}")
    ok &= bool(np.all(np.isfinite(ours_x)))
    print("where lifetimes' eq. (10) breaks down (other parameters):")
    for params, (x, tx, age, t) in (((2.0, 1.0, 30.0, 30.0), (5000, 10.0, 10.0, 1000.0)),
                                    ((0.243, 4.414, 1.0, 2.426), (2, 30.0, 39.0, 52.0))):
        other = lifetimes.BetaGeoFitter()
        other.params_ = pd.Series(params, index=list(TRUTH_BG))
        with np.errstate(all="ignore"):
            theirs_p = other.conditional_expected_number_of_purchases_up_to_time(t, x, tx, age)
        ours_p = bgnbd.expected_purchases(params, t, np.array([x]), np.array([tx]), np.array([age]))[0]
        ok &= bool(np.isfinite(ours_p))
        print(f"  (r, alpha, a, b) = {params}, x={x}, t_x={tx}, T={age}, t={t}: ours {ours_p:.6g}, "
              f"lifetimes {theirs_p:.6g}")

    print(f"\ncorrectness targets (parameters within 5% or 4 se, same estimates, no NaN, CLV agreement): "
          f"{'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
