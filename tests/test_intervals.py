"""Predictive intervals: the exact count distribution against an independent simulation, the spend ratio
against root-finding and simulation, the totals against published and independent numbers, calibration (PIT,
coverage) on data simulated from the model, and the API around them."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special, stats

import clvforecast as cf
from clvforecast import clv as C
from clvforecast.exceptions import DataValidationError
from clvforecast.models.beta_geo import probability_of_purchases

CAL_END, OBS_END = "1997-09-30", "1998-06-30"
PUBLISHED = dict(r=0.2425945, alpha=4.4136019, a=0.7929199, b=2.4258881)


@pytest.fixture(scope="module")
def models(cdnow_cal: pd.DataFrame) -> tuple[cf.BetaGeo, cf.GammaGamma]:
    return cf.BetaGeo().fit(cdnow_cal), cf.GammaGamma().fit(cdnow_cal)


def fixed_bg(params: dict[str, float] = PUBLISHED, unit: str = "W") -> cf.BetaGeo:
    """A BG/NBD with given parameters and no parameter uncertainty (zero covariance: every draw is theta)."""
    bg = cf.BetaGeo()
    bg.params_ = pd.Series(params)
    bg.variance_matrix_ = pd.DataFrame(0.0, index=list(params), columns=list(params))
    bg.time_unit_ = unit
    return bg


def fixed_gg(model: cf.GammaGamma) -> cf.GammaGamma:
    gg = cf.GammaGamma()
    gg.params_ = model.params_.copy()
    gg.variance_matrix_ = model.variance_matrix_ * 0.0
    gg.time_unit_ = model.time_unit_
    return gg


def mixture_pmf(model: cf.BetaGeo, t: float, x, tx, T, n_draws: int = 1, seed: int = 0) -> np.ndarray:  # noqa: ANN001
    """The count distribution through the code path of the intervals (the mixture engine), one row per history,
    padded with zeros to a common width."""
    api = model
    hist = [np.atleast_1d(np.asarray(v, dtype="float64")) for v in (x, tx, T)]
    theta = api.params_.to_numpy(dtype="float64")
    draws = api.sample_params(n_draws, seed)
    mean = api._expected_if_alive(theta, t, *hist)
    counts = C._count_mixture(api, theta, draws, t, hist, mean, progress=False)
    width = max(p.shape[1] for _, p in counts.buckets)
    out = np.zeros((len(hist[0]), width))
    for rows, pmf in counts.buckets:
        out[rows, : pmf.shape[1]] = pmf
    return out


# ------------------------------------------------------------------------------------------------------------
# the exact count distribution (BG/NBD): an independent simulation, sum to 1, the mean


def simulate_bgnbd_conditional(rng: np.random.Generator, p: dict[str, float], x: float, tx: float, T: float,
                               t: float, n: int) -> np.ndarray:
    """Purchases in (T, T + t] of n customers with history (x, t_x, T), simulated from the model's definition.

    From the individual likelihood (Fader, Hardie & Lee 2005, eq. 3-6): given (lambda, p) a customer alive at T
    contributes (1-p)^x lambda^x e^(-lambda T) and one who dropped out after her last purchase p (1-p)^(x-1)
    lambda^x e^(-lambda t_x). Integrating over the Gamma(r, alpha) x Beta(a, b) prior, the customer is alive with
    probability A / (A + D), A = B(a, b+x) / (alpha+T)^(r+x), D = [x > 0] B(a+1, b+x-1) / (alpha+t_x)^(r+x), and
    then lambda ~ Gamma(r+x, alpha+T), p ~ Beta(a, b+x). An alive customer buys at rate lambda and drops out after
    each purchase with probability p; the purchases are simulated one by one.
    """
    r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
    log_a = special.betaln(a, b + x) - (r + x) * np.log(alpha + T)
    log_d = special.betaln(a + 1, b + x - 1) - (r + x) * np.log(alpha + tx) if x > 0 else -np.inf
    p_alive = 1.0 / (1.0 + np.exp(log_d - log_a))
    alive = rng.random(n) < p_alive
    lam = rng.gamma(r + x, 1.0 / (alpha + T), n)
    drop = rng.beta(a, b + x, n)
    count = np.zeros(n, dtype=np.int64)
    clock = rng.exponential(1.0 / lam)
    active = alive & (clock <= t)
    while active.any():
        count[active] += 1
        active &= rng.random(n) >= drop
        clock[active] += rng.exponential(1.0 / lam[active])
        active &= clock <= t
    return count


HISTORIES = [(0, 0.0, 38.86), (2, 30.43, 38.86), (7, 35.0, 38.0), (3, 5.0, 38.0), (26, 30.857, 31.0)]


@pytest.mark.parametrize("x,tx,T", HISTORIES)
def test_exact_pmf_agrees_with_an_independent_simulation(rng, x, tx, T):  # noqa: ANN001
    t, n = 39.0, 200_000
    sim = simulate_bgnbd_conditional(rng, PUBLISHED, x, tx, T, t, n)
    pmf = mixture_pmf(fixed_bg(), t, x, tx, T)[0]
    top = min(len(pmf), int(sim.max()) + 1)
    freq = np.bincount(sim, minlength=top)[:top] / n
    se = np.sqrt(pmf[:top] * (1 - pmf[:top]) / n)
    z = np.abs(freq - pmf[:top]) / np.maximum(se, 1e-12)
    assert (z < 4.5).all(), (x, np.flatnonzero(z >= 4.5), freq[:8], pmf[:8])
    # and the cumulative distribution (what the bounds are read from)
    F, Fs = np.cumsum(pmf[:top]), np.cumsum(freq)
    assert np.max(np.abs(F - Fs) / np.sqrt(F * (1 - F) / n + 1e-12)) < 4.5


def test_pmf_sums_to_one_and_its_mean_is_the_expected_purchases(cdnow_cal, models):  # noqa: ANN001
    bg, _ = models
    x, tx, T = (cdnow_cal[c].to_numpy() for c in ("frequency", "recency", "T"))
    for t in (1.0, 39.0, 104.0):
        pmf = mixture_pmf(fixed_bg(dict(bg.params_)), t, x, tx, T)
        assert (pmf >= 0).all()
        np.testing.assert_allclose(pmf.sum(axis=1), 1.0, atol=C._TAIL)  # the mass above n_max is below 1e-5
        mean = pmf @ np.arange(pmf.shape[1])
        expected = bg.expected_purchases(cdnow_cal, t).to_numpy()
        np.testing.assert_allclose(mean, expected, rtol=1e-4, atol=1e-6)


def test_pmf_equals_the_closed_form_of_each_probability(models):  # noqa: ANN001
    # the recursion of the adapter against models.beta_geo.probability_of_purchases (betaln and scipy's nbinom)
    bg, _ = models
    theta = tuple(bg.params_)
    x = np.array([0.0, 1.0, 2.0, 26.0, 300.0, 5000.0])
    tx = np.array([0.0, 5.0, 30.43, 30.857, 39.0, 39.0])
    T = np.array([38.86, 39.0, 38.86, 31.0, 39.0, 39.0])
    pmf = cf.BetaGeo._pmf(theta, 52.0, 40, x, tx, T)
    for n in (0, 1, 2, 5, 17, 40):
        np.testing.assert_allclose(pmf[:, n], probability_of_purchases(theta, 52.0, n, x, tx, T), rtol=1e-9,
                                   atol=1e-15)


def test_mixture_is_the_average_over_the_draws(models):  # noqa: ANN001
    bg, _ = models
    api = bg
    draws = api.sample_params(7, 3)
    x, tx, T = np.array([0.0, 4.0]), np.array([0.0, 20.0]), np.array([30.0, 38.0])
    pmf = mixture_pmf(bg, 26.0, x, tx, T, n_draws=7, seed=3)
    mean = pmf @ np.arange(pmf.shape[1])
    direct = np.mean([api._expected(d, 26.0, x, tx, T) for d in draws], axis=0)
    np.testing.assert_allclose(mean, direct, rtol=1e-5)
    # the draws are lognormal around the estimate with the delta-method covariance of the log parameters
    many = api.sample_params(4000, 1)
    cov = np.cov(np.log(many).T)
    se_log = np.sqrt(np.diag(bg.variance_matrix_)) / bg.params_.to_numpy()
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), se_log, rtol=0.06)


# ------------------------------------------------------------------------------------------------------------
# spend


def test_spend_ratio_quantiles_by_root_finding(rng):  # noqa: ANN001
    # R given the count: beta-prime(n p, A); written here with scipy.stats.betaprime and brentq
    p, q = 6.25, 3.74
    rows = []
    for x in (0.0, 1.0, 5.0, 40.0):
        lam = rng.uniform(0.2, 1.5) * (x + 1)
        rows.append(stats.poisson.pmf(np.arange(80), lam))
    pmf = np.array(rows)
    pmf /= pmf.sum(axis=1, keepdims=True)
    counts = C._Counts([(np.arange(4), pmf)], 4)
    xs = np.array([0.0, 1.0, 5.0, 40.0])
    got = C._spend_ratio_quantiles(counts, xs, p, q, [0.05, 0.5, 0.95])
    for i, x in enumerate(xs):
        A = p * x + q
        n = np.arange(1, pmf.shape[1])
        for k, pr in enumerate((0.05, 0.5, 0.95)):
            if pmf[i, 0] >= pr:
                assert got[i, k] == 0
                continue
            F = lambda r, i=i, A=A, pr=pr, n=n: pmf[i, 0] + pmf[i, 1:] @ stats.betaprime.cdf(r, n * p, A) - pr  # noqa: E731
            exact = optimize.brentq(F, 1e-9, 1e4, xtol=1e-12)
            assert got[i, k] == pytest.approx(exact, rel=1e-3), (x, pr)


def test_clv_bounds_agree_with_a_simulation_of_the_spend(cdnow_cal, models, rng):  # noqa: ANN001
    # No parameter uncertainty: a customer's spend over the horizon is the sum of her purchases' Gamma(p, nu)
    # spends with nu ~ Gamma(p x + q, v + x m) (the Gamma-Gamma posterior), her count from the exact pmf.
    bg, gg = models
    bg0, gg0 = fixed_bg(dict(bg.params_)), fixed_gg(gg)
    ids = [1, 157, 841, 1516, 18]
    table = cdnow_cal.loc[ids]
    out = cf.predictive_clv(bg0, gg0, table, horizon=39, interval=0.9, step=39)
    p, q, v = gg.params_
    pmf = mixture_pmf(bg0, 39.0, *(table[c].to_numpy() for c in ("frequency", "recency", "T")))
    n = 400_000
    for i, cid in enumerate(ids):
        x, m = table.loc[cid, "frequency"], table.loc[cid, "monetary_value"]
        k = rng.choice(pmf.shape[1], n, p=pmf[i] / pmf[i].sum())
        nu = rng.gamma(p * x + q, 1.0 / (v + x * m), n)
        spend = np.where(k > 0, rng.gamma(np.maximum(k * p, 1e-300), 1.0 / nu), 0.0)
        lo, hi = np.quantile(spend, [0.05, 0.95])
        assert out.loc[cid, "clv_upper"] == pytest.approx(hi, rel=0.02), cid
        if lo == 0:
            assert out.loc[cid, "clv_lower"] == 0
        else:
            assert out.loc[cid, "clv_lower"] == pytest.approx(lo, rel=0.03), cid
        # the interval's mean is the clv column
        assert spend.mean() == pytest.approx(out.loc[cid, "clv"], rel=0.02)


def test_discounting_scales_the_bounds_by_the_expected_discount_factor(cdnow_cal, models):  # noqa: ANN001
    bg, gg = models
    plain = cf.predictive_clv(bg, gg, cdnow_cal, horizon="52W", interval=0.9, random_state=0)
    disc = cf.predictive_clv(bg, gg, cdnow_cal, horizon="52W", interval=0.9, discount_rate=0.1, margin=0.3,
                             random_state=0)
    factor = disc["clv"] / plain["clv"]  # margin x the customer's expected discount factor per purchase
    pos = plain["clv_upper"] > 0
    np.testing.assert_allclose(disc["clv_upper"][pos] / plain["clv_upper"][pos], factor[pos], rtol=1e-9)
    assert ((factor > 0.3 / 1.1) & (factor < 0.3)).all()
    pd.testing.assert_series_equal(disc["expected_purchases_upper"], plain["expected_purchases_upper"])


# ------------------------------------------------------------------------------------------------------------
# totals


def test_process_only_total_matches_the_issue_and_an_independent_sum(cdnow_cal, models):  # noqa: ANN001
    # With the parameters fixed, the total of holdout purchases is a sum of independent counts: normal with the
    # summed means and variances. The issue quotes about [1,541, 1,768] for this 90% interval on CDNOW.
    bg, gg = models
    bg0 = fixed_bg(dict(bg.params_))
    tot = cf.forecast_totals(bg0, None, cdnow_cal, horizon=39, interval=0.9)
    assert list(tot.index) == ["purchases"]
    assert tot.loc["purchases", "lower"] == pytest.approx(1541, abs=6)
    assert tot.loc["purchases", "upper"] == pytest.approx(1768, abs=6)
    # independently: moments of the pmf written out in this file
    x, tx, T = (cdnow_cal[c].to_numpy() for c in ("frequency", "recency", "T"))
    P = conditional_pmf(tuple(bg.params_), 39.0, 200, x, tx, T)
    n = np.arange(201)
    mean, var = (P @ n).sum(), (P @ n**2 - (P @ n) ** 2).sum()
    z = stats.norm.ppf(0.95)
    assert tot.loc["purchases", "lower"] == pytest.approx(mean - z * np.sqrt(var), rel=1e-6)
    assert tot.loc["purchases", "upper"] == pytest.approx(mean + z * np.sqrt(var), rel=1e-6)


def conditional_pmf(theta, t: float, n_max: int, x, tx, T) -> np.ndarray:  # noqa: ANN001
    """P(X(t) = n | x, t_x, T), n = 0..n_max, written out here (Fader, Hardie & Lee 2005, eq. 8 with the
    posterior parameters of a customer alive at T, weighted by P(alive); scipy's nbinom for the counts)."""
    r, alpha, a, b = theta
    x, tx, T = (np.asarray(v, dtype=float)[:, None] for v in (x, tx, T))
    n = np.arange(n_max + 1)[None, :]
    q = (alpha + T) / (alpha + T + t)
    log_alive = special.betaln(a, b + x) - (r + x) * np.log(alpha + T)
    log_dead = np.where(x > 0, special.betaln(a + 1, np.maximum(b + x - 1, 1e-9)) - (r + x) * np.log(alpha + tx),
                        -np.inf)
    p_alive = 1 / (1 + np.exp(log_dead - log_alive))
    base = special.betaln(a, b + x)
    nb = stats.nbinom(r + x, q)
    alive = np.exp(special.betaln(a, b + x + n) - base) * nb.pmf(n)
    alive += np.where(n > 0, np.exp(special.betaln(a + 1, np.maximum(b + x + n - 1, 1e-9)) - base), 0) * nb.sf(n - 1)
    return p_alive * alive + (n == 0) * (1 - p_alive)


def test_total_with_parameter_uncertainty_against_brute_force(cdnow_cal, models):  # noqa: ANN001
    # 200 customers; brute force: 250 parameter draws, each with the exact mean and variance of the total (the
    # pmf written out above), one normal per draw; the mixture's quantiles by sampling.
    bg, _ = models
    table = cdnow_cal.iloc[:200]
    tot = cf.forecast_totals(bg, None, table, horizon=39, interval=0.9, random_state=5)
    api = bg
    draws = api.sample_params(250, 11)
    x, tx, T = (table[c].to_numpy() for c in ("frequency", "recency", "T"))
    n = np.arange(81)
    means, sds = [], []
    for d in draws:
        P = conditional_pmf(d, 39.0, 80, x, tx, T)
        m1, m2 = P @ n, P @ n**2
        means.append(m1.sum())
        sds.append(np.sqrt((m2 - m1**2).sum()))
    rng = np.random.default_rng(0)
    sample = np.repeat(means, 800) + np.repeat(sds, 800) * rng.standard_normal(250 * 800)
    lo, hi = np.quantile(sample, [0.05, 0.95])
    width = hi - lo
    assert tot.loc["purchases", "lower"] == pytest.approx(lo, abs=0.05 * width)
    assert tot.loc["purchases", "upper"] == pytest.approx(hi, abs=0.05 * width)
    # wider than the process-only interval
    only = cf.forecast_totals(fixed_bg(dict(bg.params_)), None, table, horizon=39, interval=0.9)
    assert only.loc["purchases", "upper"] - only.loc["purchases", "lower"] < 0.95 * width


def test_spend_total_variance_against_a_simulation(cdnow_cal, models, rng):  # noqa: ANN001
    bg, gg = models
    bg0, gg0 = fixed_bg(dict(bg.params_)), fixed_gg(gg)
    table = cdnow_cal.loc[[1, 157, 18, 2, 841, 3]]
    fc = C._forecast(bg0, gg0, table, horizon=39, discount_rate=0.0, margin=1.0, step=39, interval=0.9,
                     n_draws=1, random_state=0, progress=False, what="test", totals=True)
    means, variances = fc.draw_totals["revenue"]
    p, q, v = gg.params_
    pmf = mixture_pmf(bg0, 39.0, *(table[c].to_numpy() for c in ("frequency", "recency", "T")))
    n = 300_000
    total = np.zeros(n)
    for i, cid in enumerate(table.index):
        x, m = table.loc[cid, "frequency"], table.loc[cid, "monetary_value"]
        k = rng.choice(pmf.shape[1], n, p=pmf[i] / pmf[i].sum())
        nu = rng.gamma(p * x + q, 1.0 / (v + x * m), n)
        total += np.where(k > 0, rng.gamma(np.maximum(k * p, 1e-300), 1.0 / nu), 0.0)
    assert means[0] == pytest.approx(total.mean(), rel=0.01)
    assert np.sqrt(variances[0]) == pytest.approx(total.std(), rel=0.03)


def test_forecast_totals_api_and_past_errors(cdnow_cal, models):  # noqa: ANN001
    bg, gg = models
    tot = cf.forecast_totals(bg, gg, cdnow_cal, horizon="52W", discount_rate=0.1, margin=0.3, random_state=0)
    assert list(tot.index) == ["purchases", "revenue", "clv"] and tot.index.name == "quantity"
    assert list(tot.columns) == ["expected", "lower", "upper"]
    clv = cf.predictive_clv(bg, gg, cdnow_cal, horizon="52W", discount_rate=0.1, margin=0.3, interval=0.9,
                            random_state=0)
    assert tot.loc["clv", "expected"] == pytest.approx(clv["clv"].sum())
    assert tot.loc["revenue", "expected"] == pytest.approx((clv["expected_purchases"] * clv["expected_spend"]).sum())
    assert clv.attrs["totals"]["clv"]["lower"] == pytest.approx(tot.loc["clv", "lower"])
    assert (tot["lower"] < tot["expected"]).all() and (tot["expected"] < tot["upper"]).all()
    # the distribution of the sum is far narrower than the sum of the customers' bounds
    assert tot.loc["clv", "upper"] < 0.5 * clv["clv_upper"].sum()
    json.dumps(tot.attrs)
    json.dumps(tot.to_dict("index"))
    # past errors: +10% and +20% under-forecasts shift and widen the interval
    past = pd.DataFrame({"target": ["purchases", "purchases", "spend", "spend"],
                         "predicted": [100.0, 100.0, 10.0, 10.0], "actual": [110.0, 120.0, 11.0, 12.0]})
    cal = cf.forecast_totals(bg, gg, cdnow_cal, horizon="52W", past_errors=past)
    # shifted up by the past under-forecasts and wider (two cutoffs: a Student t with one degree of freedom)
    assert (cal["calibrated_lower"] + cal["calibrated_upper"] > cal["lower"] + cal["upper"]).all()
    assert (cal["calibrated_upper"] - cal["calibrated_lower"] > 2 * (cal["upper"] - cal["lower"])).all()
    mid = np.sqrt(cal["calibrated_lower"] * cal["calibrated_upper"]) / np.sqrt(cal["lower"] * cal["upper"])
    np.testing.assert_allclose(mid, np.exp(np.mean(np.log([1.1, 1.2]))), rtol=0.05)
    info = cal.attrs["past_errors"]["purchases"]
    assert info["n_cutoffs"] == 2
    assert info["mean_log_error"] == pytest.approx(np.mean(np.log([1.1, 1.2])))
    with pytest.raises(ValueError, match="at least two earlier cutoffs"):
        cf.forecast_totals(bg, gg, cdnow_cal, horizon="52W", past_errors=past.iloc[[0, 2]])
    with pytest.raises(ValueError, match="interval level"):
        cf.forecast_totals(bg, gg, cdnow_cal, horizon="52W", interval=None)


# ------------------------------------------------------------------------------------------------------------
# calibration on data simulated from the model


def simulate_population(rng: np.random.Generator, p: dict[str, float], n: int, t: float) -> pd.DataFrame:
    """Calibration histories and holdout counts of n BG/NBD customers, event by event, CDNOW-like design:
    first purchases spread over 12 weeks, calibration 39 weeks from the first day, holdout ``t`` weeks."""
    T = 39.0 - rng.uniform(0, 12, n)
    lam = rng.gamma(p["r"], 1.0 / p["alpha"], n)
    drop = rng.beta(p["a"], p["b"], n)
    x = np.zeros(n)
    tx = np.zeros(n)
    y = np.zeros(n)
    clock = rng.exponential(1.0 / lam)
    active = clock <= T + t
    while active.any():
        in_cal = active & (clock <= T)
        x[in_cal] += 1
        tx[in_cal] = clock[in_cal]
        y[active & ~in_cal] += 1
        active &= rng.random(n) >= drop
        clock[active] += rng.exponential(1.0 / lam[active])
        active &= clock <= T + t
    table = pd.DataFrame({"frequency": x, "recency": tx, "T": T, "holdout_frequency": y.astype(np.int64)},
                         index=pd.RangeIndex(1, n + 1, name="customer_id"))
    table.attrs = {"time_unit": "W", "calibration_end": "2020-09-30", "observation_end": "2021-06-30",
                   "holdout_duration": t}
    return table


def test_pit_is_uniform_and_coverage_as_expected_on_simulated_customers():
    rng = np.random.default_rng(7)
    table = simulate_population(rng, PUBLISHED, 6000, 39.0)
    ev = cf.evaluate_holdout(table, interval=0.9, random_state=1)
    pit = ev.customers["pit_purchases"]
    counts = np.histogram(pit, bins=10, range=(0, 1))[0]
    assert stats.chisquare(counts).pvalue > 1e-3, counts
    cov = float(ev.metric("coverage", "purchases")["bgnbd"])
    # the probability each customer's interval holds under her own predictive distribution, averaged
    c = ev.customers
    lo, hi = c["bgnbd_purchases_lower"].to_numpy(), c["bgnbd_purchases_upper"].to_numpy()
    pmf = mixture_pmf(ev.model, 39.0, *(table[k].to_numpy() for k in ("frequency", "recency", "T")),
                      n_draws=20, seed=0)
    F = np.cumsum(pmf, axis=1)
    rows = np.arange(len(F))
    inside = F[rows, hi.astype(int)] - np.where(lo > 0, F[rows, np.maximum(lo.astype(int) - 1, 0)], 0.0)
    expected = inside.mean()
    assert expected >= 0.9
    assert abs(cov - expected) < 4 * np.sqrt(expected * (1 - expected) / len(c))
    assert ev.totals.loc["purchases", "covered"]  # no common shock in simulated data


# ------------------------------------------------------------------------------------------------------------
# API


def test_interval_columns_attrs_and_reproducibility(cdnow_cal, models):  # noqa: ANN001
    bg, gg = models
    out = cf.predictive_clv(bg, gg, cdnow_cal, horizon="52W", discount_rate=0.1, margin=0.3, interval=0.9,
                            random_state=0)
    assert list(out.columns) == ["expected_purchases", "probability_alive", "expected_spend", "clv",
                                 "clv_if_alive", *C.INTERVAL_COLUMNS]
    point = cf.predictive_clv(bg, gg, cdnow_cal, horizon="52W", discount_rate=0.1, margin=0.3)
    pd.testing.assert_frame_equal(out[point.columns], point)
    assert np.isfinite(out.to_numpy()).all()
    c = out
    assert (c["expected_purchases_lower"] <= c["expected_purchases_upper"]).all()
    assert (c["clv_lower"] <= c["clv_upper"]).all() and (c["clv_lower"] <= c["clv"]).all()
    # the upper bound is 0 only for customers who make no purchase with probability 95% or more
    zero = c["clv_upper"] == 0
    assert (c.loc[zero, "expected_purchases_upper"] == 0).all()
    assert (c["expected_purchases_lower"] % 1 == 0).all()
    iv = out.attrs["interval"]
    assert iv["level"] == 0.9 and iv["includes"] == ["process", "parameter", "spend"]
    json.dumps(out.attrs)
    again = cf.predictive_clv(bg, gg, cdnow_cal, horizon="52W", discount_rate=0.1, margin=0.3, interval=0.9,
                              random_state=0)
    pd.testing.assert_frame_equal(out, again)
    other = cf.predictive_clv(bg, gg, cdnow_cal, horizon="52W", discount_rate=0.1, margin=0.3, interval=0.9,
                              random_state=1)
    assert (other["clv_upper"] - out["clv_upper"]).abs().max() < 0.2 * out["clv_upper"].max()
    wider = cf.predictive_clv(bg, gg, cdnow_cal, horizon="52W", interval=0.98, random_state=0)
    assert (wider["expected_purchases_upper"] >= c["expected_purchases_upper"]).all()


def test_frequency_only_gives_the_purchase_columns(cdnow_cal, models):  # noqa: ANN001
    bg, _ = models
    table = cdnow_cal.drop(columns=["monetary_value", "holdout_spend", "holdout_monetary_value"])
    out = cf.predictive_clv(bg, None, table, horizon="52W")
    assert list(out.columns) == ["expected_purchases", "probability_alive"]
    ivl = cf.predictive_clv(bg, None, table, horizon="52W", interval=0.8)
    assert list(ivl.columns) == ["expected_purchases", "probability_alive", "expected_purchases_lower",
                                 "expected_purchases_upper"]
    assert ivl.attrs["interval"]["includes"] == ["process", "parameter"]
    assert set(ivl.attrs["totals"]) == {"purchases"}


def test_bad_interval_arguments(cdnow_cal, models):  # noqa: ANN001
    bg, gg = models
    with pytest.raises(ValueError, match=r"pass interval=0\.9 for 90%"):
        cf.predictive_clv(bg, gg, cdnow_cal, horizon="52W", interval=90)
    with pytest.raises(ValueError, match="between 0 and 1"):
        cf.predictive_clv(bg, gg, cdnow_cal, horizon="52W", interval=1.0)
    with pytest.raises(TypeError, match="probability"):
        cf.predictive_clv(bg, gg, cdnow_cal, horizon="52W", interval="90%")
    with pytest.raises(ValueError, match="n_draws"):
        cf.predictive_clv(bg, gg, cdnow_cal, horizon="52W", interval=0.9, n_draws=0)
    with pytest.raises(TypeError, match="spend_model must be a fitted GammaGamma"):
        cf.predictive_clv(bg, bg, cdnow_cal, horizon="52W")
    with pytest.raises(TypeError, match="purchase model first"):
        cf.predictive_clv(gg, bg, cdnow_cal, horizon="52W")


def test_extreme_histories_stay_finite(models):  # noqa: ANN001
    bg, gg = models
    rfm = pd.DataFrame({"frequency": [0, 1, 5000, 5000, 200], "recency": [0.0, 1.0, 39.0, 1.0, 39.0],
                        "T": [0.0, 39.0, 39.0, 39.0, 39.0], "monetary_value": [0.0, 10.0, 1e4, 0.01, 35.0]})
    rfm.attrs["time_unit"] = "W"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = cf.predictive_clv(bg, gg, rfm, horizon="1Y", discount_rate=0.1, interval=0.9)
    assert np.isfinite(out.to_numpy()).all()
    # the heavy buyer alive at T: some 6,600 purchases a year while alive, and a dropout probability of about
    # a / (b + x) = 1.6e-4 after each, so she may well stop within the year: a wide interval around the mean
    row = out.loc[2]
    assert row["expected_purchases_lower"] < row["expected_purchases"] < row["expected_purchases_upper"]
    assert row["expected_purchases_upper"] > 5000


def test_progress_bar_can_be_forced(cdnow_cal, models, capsys):  # noqa: ANN001
    bg, gg = models
    out = cf.predictive_clv(bg, gg, cdnow_cal.iloc[:50], horizon="52W", interval=0.9, progress=True)
    assert len(out) == 50


def test_an_unidentified_fit_gives_point_draws_with_a_warning(cdnow_cal, models):  # noqa: ANN001
    bg, gg = models
    nan = fixed_bg(dict(bg.params_))
    nan.variance_matrix_ = bg.variance_matrix_ * np.nan
    with pytest.warns(cf.ModelAssumptionWarning, match="no parameter uncertainty"):
        out = cf.predictive_clv(nan, gg, cdnow_cal, horizon="52W", interval=0.9)
    assert np.isfinite(out.to_numpy()).all()


def test_table_errors_name_the_column(cdnow_cal, models):  # noqa: ANN001
    bg, gg = models
    with pytest.raises(DataValidationError, match="monetary_value"):
        cf.predictive_clv(bg, gg, cdnow_cal.drop(columns="monetary_value"), horizon="12M", interval=0.9)


@pytest.mark.parametrize("model_cls", [cf.BetaGeo, cf.ParetoNBD])
def test_bounds_do_not_depend_on_how_customers_are_batched(cdnow_cal, models, model_cls):  # noqa: ANN001
    # the Spark engine scores batch by batch with random_state=0: a customer's bounds must depend only on her
    # history and the seed (the parameter draws), not on the other customers of the batch
    model = model_cls().fit(cdnow_cal)
    _, gg = models
    kw = dict(horizon="52W", discount_rate=0.1, margin=0.3, interval=0.9, random_state=0)
    whole = cf.predictive_clv(model, gg, cdnow_cal, **kw)
    odd, even = cdnow_cal.iloc[1::2], cdnow_cal.iloc[::2]
    parts = pd.concat([cf.predictive_clv(model, gg, odd, **kw), cf.predictive_clv(model, gg, even, **kw)])
    parts = parts.loc[whole.index]
    for c in ("expected_purchases_lower", "expected_purchases_upper"):
        pd.testing.assert_series_equal(parts[c], whole[c])  # whole numbers: identical
    for c in ("clv_lower", "clv_upper", "clv", "expected_purchases"):
        pd.testing.assert_series_equal(parts[c], whole[c], rtol=1e-10)
    # and run to run with the same seed, every number is identical
    pd.testing.assert_frame_equal(cf.predictive_clv(model, gg, odd, **kw), parts.loc[odd.index])
    # the same customers in another order, and each scored alone: the same bounds
    shuffled = cdnow_cal.sample(frac=1.0, random_state=3)
    again = cf.predictive_clv(model, gg, shuffled, **kw).loc[whole.index]
    for c in ("expected_purchases_lower", "expected_purchases_upper"):
        pd.testing.assert_series_equal(again[c], whole[c])
    for c in ("clv_lower", "clv_upper"):
        pd.testing.assert_series_equal(again[c], whole[c], rtol=1e-10)
    for cid in (1, 18, 1516):  # a one-off buyer, a light and a heavy repeat buyer
        alone = cf.predictive_clv(model, gg, cdnow_cal.loc[[cid]], **kw)
        for c in ("expected_purchases_lower", "expected_purchases_upper", "clv_lower", "clv_upper"):
            assert alone.loc[cid, c] == pytest.approx(whole.loc[cid, c], rel=1e-10, abs=1e-12), (cid, c)


# ------------------------------------------------------------------------------------------------------------
# every purchase model: the exact count distribution of the intervals against an independent simulation, and
# calibration on data simulated from the model

OTHERS = {  # published CDNOW estimates (weeks); BG/BB: the donations data (years)
    "pnbd": (cf.ParetoNBD, dict(r=0.553, alpha=10.58, s=0.606, beta=11.656)),
    "mbgnbd": (cf.ModifiedBetaGeo, dict(r=0.525, alpha=6.183, a=0.891, b=1.614)),
    "bgnbd": (cf.BetaGeo, PUBLISHED),
    "bgbb": (cf.BetaGeoBetaBinom, dict(alpha=1.2035, beta=0.7498, gamma=0.6568, delta=2.7839)),
}


def fixed_model(name: str):  # noqa: ANN201
    """The model with the published parameters and no parameter uncertainty (zero covariance)."""
    cls, params = OTHERS[name]
    m = cls()
    m.params_ = pd.Series(params)
    m.variance_matrix_ = pd.DataFrame(0.0, index=list(params), columns=list(params))
    m.time_unit_ = "Y" if name == "bgbb" else "W"
    return m


def simulate_conditional(name: str, p: dict[str, float], x: float, tx: float, T: float, t: float,
                         rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Purchases in (T, T + t] of customers with history (x, t_x, T), by importance sampling from each model's
    definition. The latent purchase rate lambda and dropout variable (the rate mu of Pareto/NBD, the probability
    p of BG/NBD and MBG/NBD) are drawn from a two-component proposal, one shaped like the posterior of a customer
    still alive at T and one like that of a customer who dropped out at t_x, and weighted by prior x likelihood of
    the history / proposal density. Given the draw, the customer is alive at T with probability (alive term) /
    (likelihood), and an alive customer's future is simulated from the process. Returns counts and weights.

    Likelihoods given the latent variables (the definitions of the models):
    Pareto/NBD: lam^x [e^(-(lam+mu)T) + mu/(lam+mu) (e^(-(lam+mu)t_x) - e^(-(lam+mu)T))] (alive: the first term);
    BG/NBD: lam^x [(1-p)^x e^(-lam T) + [x>0] p (1-p)^(x-1) e^(-lam t_x)];
    MBG/NBD: lam^x [(1-p)^(x+1) e^(-lam T) + p (1-p)^x e^(-lam t_x)] (a coin also after the first purchase).
    """
    r, alpha = p["r"], p["alpha"]
    if name == "pnbd":
        s_, beta = p["s"], p["beta"]
        comps = [((r + x, alpha + T), (s_, beta + T)), ((r + x, alpha + tx), (s_ + 1, beta + tx))]
        prior_v = stats.gamma(s_, scale=1 / beta)
        dens_v = lambda v, a_, b_: stats.gamma.logpdf(v, a_, scale=1 / b_)  # noqa: E731
        draw_v = lambda a_, b_, m: rng.gamma(a_, 1 / b_, m)  # noqa: E731
    else:
        shift = 1 if name == "mbgnbd" else 0
        a, b = p["a"], p["b"]
        comps = [((r + x, alpha + T), (a, b + x + shift))]
        if x + shift > 0:
            comps.append(((r + x, alpha + tx), (a + 1, b + x + shift - 1)))
        prior_v = stats.beta(a, b)
        dens_v = stats.beta.logpdf
        draw_v = lambda a_, b_, m: rng.beta(a_, b_, m)  # noqa: E731
    which = rng.integers(0, len(comps), n)
    lam, v = np.empty(n), np.empty(n)
    for c, ((lk, lr), (va, vb)) in enumerate(comps):
        on = which == c
        lam[on] = rng.gamma(lk, 1 / lr, on.sum())
        v[on] = draw_v(va, vb, on.sum())
    log_q = special.logsumexp([stats.gamma.logpdf(lam, lk, scale=1 / lr) + dens_v(v, va, vb)
                               for (lk, lr), (va, vb) in comps], axis=0) - np.log(len(comps))
    log_prior = stats.gamma.logpdf(lam, r, scale=1 / alpha) + prior_v.logpdf(v)
    with np.errstate(divide="ignore"):
        if name == "pnbd":
            la = x * np.log(lam) - (lam + v) * T
            ld = (x * np.log(lam) + np.log(v / (lam + v)) - (lam + v) * tx
                  + np.log(-np.expm1(-(lam + v) * (T - tx))))
            tau = rng.exponential(1.0 / v)
            count = rng.poisson(lam * np.minimum(tau, t))
        else:
            la = x * np.log(lam) + (x + shift) * np.log1p(-v) - lam * T
            ld = (x * np.log(lam) + np.log(v) + (x + shift - 1) * np.log1p(-v) - lam * tx
                  if x + shift > 0 else np.full(n, -np.inf))
            k = rng.geometric(v)  # purchases until (and including) the one after which she drops out
            count = np.minimum(rng.poisson(lam * t), k)
    log_l = np.logaddexp(la, ld)
    log_w = log_prior + log_l - log_q
    w = np.exp(log_w - log_w.max())
    alive = rng.random(n) < np.exp(la - log_l)
    return np.where(alive, count, 0), w


@pytest.mark.parametrize("name", ["pnbd", "mbgnbd", "bgnbd"])
@pytest.mark.parametrize("x,tx,T", [(0, 0.0, 38.86), (2, 30.43, 38.86), (4, 12.0, 38.0), (1, 2.0, 38.0)])
def test_exact_pmf_of_each_model_against_an_independent_simulation(name, x, tx, T):  # noqa: ANN001
    t = 39.0
    rng = np.random.default_rng(11)
    counts, w = simulate_conditional(name, OTHERS[name][1], x, tx, T, t, rng, 300_000)
    ess = w.sum() ** 2 / (w**2).sum()
    pmf = mixture_pmf(fixed_model(name), t, x, tx, T)[0]
    top = min(len(pmf), int(counts.max()) + 1)
    freq = np.bincount(counts, weights=w, minlength=top)[:top] / w.sum()
    F, Fs = np.cumsum(pmf[:top]), np.cumsum(freq)
    se = np.sqrt(F * (1 - F) / ess) + 1e-9
    assert ess > 30_000
    assert np.max(np.abs(F - Fs) / se) < 4.5, (name, x, F[:6], Fs[:6])
    assert pmf.sum() == pytest.approx(1.0, abs=C._TAIL)
    one = pd.DataFrame({"frequency": [x], "recency": [tx], "T": [T]}, index=pd.Index([7], name="customer_id"))
    one.attrs["time_unit"] = "W"
    expected = fixed_model(name).expected_purchases(one, t).iloc[0]  # the public method
    assert pmf @ np.arange(len(pmf)) == pytest.approx(expected, rel=1e-4)


def test_exact_pmf_of_bgbb_against_a_simulation():
    # BG/BB histories are discrete: customers drawn from the priors over 6 + 4 opportunities, those with the
    # history kept (rejection), their transactions in the next 4 opportunities counted
    p = OTHERS["bgbb"][1]
    n_sim, n_cal, t = 1_000_000, 6, 4
    rng = np.random.default_rng(3)
    prob, death = rng.beta(p["alpha"], p["beta"], n_sim), rng.beta(p["gamma"], p["delta"], n_sim)
    life = rng.geometric(death)  # alive at opportunities 1 .. life - 1
    alive = np.arange(1, n_cal + t + 1)[None, :] < life[:, None]
    buys = (rng.random((n_sim, n_cal + t)) < prob[:, None]) & alive
    x = buys[:, :n_cal].sum(axis=1)
    last = np.where(x > 0, n_cal - np.argmax(buys[:, :n_cal][:, ::-1], axis=1), 0)
    for hx, htx in ((0, 0), (3, 6), (2, 3)):
        kept = (x == hx) & (last == htx)
        sim = np.bincount(buys[kept, n_cal:].sum(axis=1), minlength=t + 1) / kept.sum()
        pmf = mixture_pmf(fixed_model("bgbb"), float(t), hx, htx, n_cal)[0][: t + 1]
        se = np.sqrt(pmf * (1 - pmf) / kept.sum()) + 1e-9
        assert np.max(np.abs(sim - pmf) / se) < 4.5, (hx, htx, sim, pmf)


def simulate_model_population(name: str, rng: np.random.Generator, n: int, t: float) -> pd.DataFrame:
    """Calibration histories and holdout counts of n customers simulated from the model's definition (CDNOW-like:
    first purchases over 12 weeks, calibration to week 39, holdout of t weeks)."""
    p = OTHERS[name][1]
    T = 39.0 - rng.uniform(0, 12, n)
    lam = rng.gamma(p["r"], 1.0 / p["alpha"], n)
    if name == "pnbd":
        tau = rng.exponential(1.0 / rng.gamma(p["s"], 1.0 / p["beta"], n))
        end = np.minimum(tau, T)
        x = rng.poisson(lam * end).astype(float)
        tx = np.where(x > 0, end * rng.beta(np.maximum(x, 1), 1), 0.0)  # the last of x uniform times
        y = rng.poisson(lam * np.clip(np.minimum(tau, T + t) - T, 0, None))
    else:  # MBG/NBD: a dropout coin after the first purchase (time 0) and after each repeat purchase
        drop = rng.beta(p["a"], p["b"], n)
        x, tx, y = np.zeros(n), np.zeros(n), np.zeros(n)
        active = rng.random(n) >= drop
        clock = rng.exponential(1.0 / lam)
        active &= clock <= T + t
        while active.any():
            cal = active & (clock <= T)
            x[cal] += 1
            tx[cal] = clock[cal]
            y[active & ~cal] += 1
            active &= rng.random(n) >= drop
            clock[active] += rng.exponential(1.0 / lam[active])
            active &= clock <= T + t
    table = pd.DataFrame({"frequency": x, "recency": tx, "T": T, "holdout_frequency": y.astype(np.int64)},
                         index=pd.RangeIndex(1, n + 1, name="customer_id"))
    table.attrs = {"time_unit": "W", "calibration_end": "2020-09-30", "observation_end": "2021-06-30",
                   "holdout_duration": t}
    return table


def check_calibration(ev, table, hist_cols, t):  # noqa: ANN001, ANN201
    """PIT uniform (chi-square over 10 bins) and coverage equal to what the model's own distributions imply."""
    counts = np.histogram(ev.customers["pit_purchases"], bins=10, range=(0, 1))[0]
    assert stats.chisquare(counts).pvalue > 1e-3, counts
    method = ev.method
    cov = float(ev.metric("coverage", "purchases")[method])
    c = ev.customers
    lo, hi = c[f"{method}_purchases_lower"].to_numpy(), c[f"{method}_purchases_upper"].to_numpy()
    pmf = mixture_pmf(ev.model, t, *(table[k].to_numpy() for k in hist_cols), n_draws=20, seed=0)
    F = np.cumsum(pmf, axis=1)
    rows = np.arange(len(F))
    inside = F[rows, hi.astype(int)] - np.where(lo > 0, F[rows, np.maximum(lo.astype(int) - 1, 0)], 0.0)
    expected = inside.mean()
    assert expected >= 0.9
    assert abs(cov - expected) < 4 * np.sqrt(expected * (1 - expected) / len(c)), (cov, expected)
    return cov


@pytest.mark.parametrize("name", ["pnbd", "mbgnbd"])
def test_coverage_and_pit_on_customers_simulated_from_each_model(name):  # noqa: ANN001
    table = simulate_model_population(name, np.random.default_rng(5), 4000, 39.0)
    ev = cf.evaluate_holdout(table, model=name, interval=0.9, random_state=1)
    assert ev.method == name
    check_calibration(ev, table, ("frequency", "recency", "T"), 39.0)
    assert ev.totals.loc["purchases", "covered"]


def simulate_bgbb_population(rng: np.random.Generator, n: int, n_cal: int, t: int) -> pd.DataFrame:
    p = OTHERS["bgbb"][1]
    prob, death = rng.beta(p["alpha"], p["beta"], n), rng.beta(p["gamma"], p["delta"], n)
    life = rng.geometric(death)
    alive = np.arange(1, n_cal + t + 1)[None, :] < life[:, None]
    buys = (rng.random((n, n_cal + t)) < prob[:, None]) & alive
    x = buys[:, :n_cal].sum(axis=1)
    last = np.where(x > 0, n_cal - np.argmax(buys[:, :n_cal][:, ::-1], axis=1), 0)
    table = pd.DataFrame({"frequency": x, "recency": last, "n_periods": n_cal,
                          "holdout_frequency": buys[:, n_cal:].sum(axis=1), "holdout_n_periods": t},
                         index=pd.RangeIndex(1, n + 1, name="customer_id"))
    table.attrs = {"time_unit": "Y", "calibration_end": "2006-12-31", "observation_end": "2011-12-31"}
    return table


def test_bgbb_coverage_and_pit_on_simulated_donors():
    table = simulate_bgbb_population(np.random.default_rng(8), 6000, 6, 5)
    ev = cf.evaluate_holdout(table, model="bgbb", interval=0.9, random_state=2)
    assert ev.method == "bgbb" and ev.holdout_duration == 5 and ev.tracking is None
    assert list(ev.metrics["target"].unique()) == ["purchases"] and list(ev.metrics["method"].unique()) == ["bgbb"]
    check_calibration(ev, table, ("frequency", "recency", "n_periods"), 5.0)
    assert list(ev.period_transactions.columns) == ["actual", "expected"]
    assert ev.period_transactions["expected"].sum() == pytest.approx(6000)
    # a continuous-time model on a discrete table (and the reverse) is refused with the fix
    with pytest.raises(cf.DataValidationError, match="use model='bgbb'"):
        cf.evaluate_holdout(table, model="bgnbd")
    cont = simulate_model_population("mbgnbd", np.random.default_rng(1), 300, 39.0)
    with pytest.raises(cf.DataValidationError, match="discrete_summary"):
        cf.evaluate_holdout(cont, model="bgbb")
    with pytest.raises(TypeError, match="past_cutoffs needs the transaction log"):
        cf.evaluate_holdout(table, model="bgbb", interval=0.9, past_cutoffs=3)
    weighted = table.assign(weight=2)
    with pytest.raises(cf.DataValidationError, match="one row per customer"):
        cf.evaluate_holdout(weighted, model="bgbb")


def test_bgbb_forecasts_in_whole_periods_and_weighted_totals():
    from clvforecast.models.bgbb import donations

    agg = donations()  # 22 rows with a weight column: 11,104 donors
    bgbb = cf.BetaGeoBetaBinom().fit(agg)
    out = cf.predictive_clv(bgbb, None, agg, horizon="5Y", interval=0.9, random_state=0)
    pd.testing.assert_series_equal(out["expected_purchases"], bgbb.expected_purchases(agg, 5), check_names=False)
    assert (out["expected_purchases_upper"] <= 5).all()  # at most one transaction per opportunity
    with pytest.raises(ValueError, match="whole number of periods"):
        cf.predictive_clv(bgbb, None, agg, horizon=2.5)
    # the aggregated table's totals count each row `weight` times: those of the 11,104 rows one by one
    expanded = agg.loc[agg.index.repeat(agg["weight"])].drop(columns="weight").reset_index(drop=True)
    expanded.index.name = "customer_id"
    expanded.attrs["time_unit"] = "Y"
    a = cf.forecast_totals(bgbb, None, agg, horizon=5, random_state=0)
    b = cf.forecast_totals(bgbb, None, expanded, horizon=5, random_state=0)
    assert a.loc["purchases", "expected"] == pytest.approx((out["expected_purchases"] * agg["weight"]).sum())
    pd.testing.assert_frame_equal(a, b, rtol=1e-9)
    assert a.attrs["n_customers"] == 22 and b.attrs["n_customers"] == 11104


def test_seeded_calls_give_identical_numbers_run_to_run(cdnow_cal, models):  # noqa: ANN001
    # the report and the CLI pass random_state=0: every number must be the same on every run
    bg, gg = models
    a = cf.forecast_totals(bg, gg, cdnow_cal, horizon="26W", random_state=0)
    b = cf.forecast_totals(bg, gg, cdnow_cal, horizon="26W", random_state=0)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    table = simulate_model_population("pnbd", np.random.default_rng(3), 800, 26.0)
    e1 = cf.evaluate_holdout(table, model="pnbd", interval=0.9, random_state=0)
    e2 = cf.evaluate_holdout(table, model="pnbd", interval=0.9, random_state=0)
    pd.testing.assert_frame_equal(e1.customers, e2.customers, check_exact=True)
    pd.testing.assert_frame_equal(e1.totals, e2.totals, check_exact=True)
    pd.testing.assert_frame_equal(e1.metrics, e2.metrics, check_exact=True)
