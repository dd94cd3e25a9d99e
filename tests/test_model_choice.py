"""compare_models on CDNOW: the published log-likelihoods, and every metric against an independent computation
(lifetimes' predictions at the fitted parameters, the tracking curve rebuilt from the raw transactions with
pandas); the rule that chooses, and the refusals."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import clvforecast as cf
from clvforecast.models import _base

CAL_END, OBS_END = "1997-09-30", "1998-06-30"
LIFETIMES = {"bgnbd": "BetaGeoFitter", "pnbd": "ParetoNBDFitter", "mbgnbd": "ModifiedBetaGeoFitter"}
NAMES = {"bgnbd": ["r", "alpha", "a", "b"], "pnbd": ["r", "alpha", "s", "beta"], "mbgnbd": ["r", "alpha", "a", "b"]}


@pytest.fixture(scope="module")
def comparison(cdnow_tx: pd.DataFrame) -> pd.DataFrame:
    return cf.compare_models(cdnow_tx, calibration_end=CAL_END, observation_end=OBS_END, time_unit="W")


def params(comparison: pd.DataFrame, name: str) -> dict[str, float]:
    return comparison.attrs["fits"][name]["params"]


def mbgnbd_loglik(theta: dict[str, float], x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
    """MBG/NBD individual log-likelihood, Batislam, Denizel & Filiztekin (2007), written out here:
    L = G(r+x) alpha^r / G(r) * B(a, b+x+1)/B(a, b) * [(alpha+T)^-(r+x) + a/(b+x) (alpha+t_x)^-(r+x)]."""
    r, alpha, a, b = (theta[k] for k in ("r", "alpha", "a", "b"))
    return (special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
            + special.betaln(a, b + x + 1) - special.betaln(a, b)
            + np.log((alpha + T) ** -(r + x) + a / (b + x) * (alpha + tx) ** -(r + x)))


def test_three_rows_with_the_published_log_likelihoods(comparison: pd.DataFrame, cdnow_cal: pd.DataFrame) -> None:
    c = comparison
    assert list(c.index) == ["bgnbd", "pnbd", "mbgnbd"] and c.index.name == "model"
    assert list(c.columns) == list(cf.evaluation.COMPARISON_COLUMNS)
    assert list(c["label"]) == ["BG/NBD", "Pareto/NBD", "MBG/NBD"]
    assert c.loc["bgnbd", "log_likelihood"] == pytest.approx(-9582.43, abs=0.01)  # Fader, Hardie & Lee (2005)
    assert c.loc["pnbd", "log_likelihood"] == pytest.approx(-9594.976, abs=0.01)  # CLVTools
    # MBG/NBD: its likelihood written out above, at the row's estimates and at the published ones
    x, tx, T = (cdnow_cal[k].to_numpy(dtype=float) for k in ("frequency", "recency", "T"))
    mine = mbgnbd_loglik(params(c, "mbgnbd"), x, tx, T).sum()
    assert c.loc["mbgnbd", "log_likelihood"] == pytest.approx(mine, abs=1e-6)
    published = mbgnbd_loglik(dict(r=0.525, alpha=6.183, a=0.891, b=1.614), x, tx, T).sum()
    assert published <= mine + 1e-9 and mine - published < 0.05  # the printed 3-digit estimates are its maximum
    # information criteria by hand: k = 4 parameters, n = 2,357 customers
    n = len(cdnow_cal)
    np.testing.assert_allclose(c["aic"], 8 - 2 * c["log_likelihood"], rtol=1e-12)
    np.testing.assert_allclose(c["bic"], 4 * math.log(n) - 2 * c["log_likelihood"], rtol=1e-12)
    assert (c["n_params"] == 4).all() and c["converged"].all() and c["identified"].all()
    assert c.attrs["n_customers"] == n and c.attrs["actual_total"] == 1882


def lifetimes_predictions(name: str, theta: dict[str, float], table: pd.DataFrame, t: float) -> np.ndarray:
    lifetimes = _base.import_lifetimes()
    f = getattr(lifetimes, LIFETIMES[name])()
    f.params_ = pd.Series(theta)[NAMES[name]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(f.conditional_expected_number_of_purchases_up_to_time(
            t, table["frequency"], table["recency"], table["T"]), dtype=float)


def tracking_by_hand(tx: pd.DataFrame, name: str, theta: dict[str, float]) -> tuple[float, float]:
    """The holdout's cumulative repeat transactions per week, actual (pandas, from the transactions) and
    expected (lifetimes' unconditional E[X(t)] for each customer from her first purchase day), cumulated from the
    start of the holdout; weeks are the paper's: week w is days 7(w-1)..7w-1 after 1997-01-01, the holdout is
    weeks 40-78 (the last one cut at 1998-06-30)."""
    lifetimes = _base.import_lifetimes()
    f = getattr(lifetimes, LIFETIMES[name])()
    f.params_ = pd.Series(theta)[NAMES[name]]
    days = tx[["customer_id", "date"]].drop_duplicates()
    first = days.groupby("customer_id")["date"].transform("min")
    cohort_first = days.groupby("customer_id")["date"].min()
    cohort_first = cohort_first[cohort_first <= pd.Timestamp(CAL_END)]
    d0 = pd.Timestamp("1997-01-01")
    start, end = (pd.Timestamp(CAL_END) - d0).days + 1, (pd.Timestamp(OBS_END) - d0).days + 1  # 273, 546
    repeat = days[(days["date"] > first) & days["customer_id"].isin(cohort_first.index)]
    rday = (repeat["date"] - d0).dt.days
    edges = np.minimum(np.arange(start + 7, end + 7, 7), end)  # exclusive ends of the holdout weeks
    actual = np.array([((rday >= start) & (rday < e)).sum() for e in edges], dtype=float)
    fday = (cohort_first - d0).dt.days.to_numpy(dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ex = lambda t: np.asarray(f.expected_number_of_purchases_up_to_time(np.clip(t, 0, None) / 7), float)  # noqa: E731
        expected = np.array([np.where(e > fday, ex(e - fday), 0).sum() - np.where(start > fday, ex(start - fday), 0).sum()
                             for e in edges])
    err = np.abs(expected - actual).mean()
    return err, 100 * err / actual[-1]


@pytest.mark.parametrize("name", ["bgnbd", "pnbd", "mbgnbd"])
def test_metrics_equal_an_independent_computation(comparison: pd.DataFrame, cdnow_cal: pd.DataFrame,
                                                  cdnow_tx: pd.DataFrame, name: str) -> None:
    row = comparison.loc[name]
    theta = params(comparison, name)
    y = cdnow_cal["holdout_frequency"].to_numpy(dtype=float)
    p = lifetimes_predictions(name, theta, cdnow_cal, 39.0)
    assert row["mae"] == pytest.approx(np.mean(np.abs(p - y)), rel=1e-7)
    assert row["rmse"] == pytest.approx(np.sqrt(np.mean((p - y) ** 2)), rel=1e-7)
    assert row["pct_error"] == pytest.approx(100 * (p.sum() - 1882) / 1882, rel=1e-6)
    assert row["spearman"] == pytest.approx(stats.pearsonr(stats.rankdata(p), stats.rankdata(y))[0], rel=1e-6)
    err, pct = tracking_by_hand(cdnow_tx, name, theta)
    assert row["tracking_error"] == pytest.approx(err, rel=1e-6)
    assert row["tracking_error_pct"] == pytest.approx(pct, rel=1e-6)


def test_the_chosen_model_follows_the_rule(comparison: pd.DataFrame, cdnow_cal: pd.DataFrame) -> None:
    c = comparison
    assert c.attrs["chosen"] == c["mae"].idxmin() == "pnbd"  # Pareto/NBD has the lowest holdout MAE on CDNOW
    assert c["chosen"].sum() == 1 and c.loc["pnbd", "chosen"]
    assert "mean absolute error" in c.attrs["rule"] and c.attrs["rule_name"] == "mae"
    by_bic = cf.compare_models(cdnow_cal, rule="bic")
    assert by_bic.attrs["chosen"] == by_bic["bic"].idxmin() == "mbgnbd"
    assert by_bic["tracking_error"].isna().all()  # a calibration table alone: no tracking curve
    # the table alone gives the same fits and holdout metrics as the log
    cols = ["log_likelihood", "mae", "rmse", "pct_error", "spearman"]
    pd.testing.assert_frame_equal(by_bic[cols], c[cols], rtol=1e-9)
    with pytest.raises(ValueError, match="undefined for every model"):
        cf.compare_models(cdnow_cal, rule="tracking_error")


class _Degenerate(cf.ParetoNBD):
    """A Pareto/NBD whose fit is reported as unidentified (as a boundary optimum would be)."""

    def fit(self, table, **kw):  # noqa: ANN001, ANN003, ANN201
        super().fit(table, **kw)
        self.diagnostics_ = {**self.diagnostics_, "converged": False, "identified": False,
                             "message": "the data do not pin down beta"}
        return self


def test_a_degenerate_fit_is_passed_over(cdnow_cal: pd.DataFrame) -> None:
    c = cf.compare_models(cdnow_cal, models=("bgnbd", _Degenerate, "mbgnbd"))
    # Pareto/NBD has the lowest MAE but its fit is degenerate: the next best sound fit is chosen
    assert c["mae"].idxmin() == "pnbd"
    assert c.attrs["chosen"] == "mbgnbd" and c.loc["mbgnbd", "chosen"]
    assert "pnbd passed over" in c.attrs["rule"]
    assert c.loc["pnbd", "message"] == "the data do not pin down beta"
    with pytest.warns(cf.ModelAssumptionWarning, match="no model fitted soundly"):
        only = cf.compare_models(cdnow_cal, models=(_Degenerate,))
    assert only.attrs["chosen"] == "pnbd" and "rests on a degenerate fit" in only.attrs["rule"]


def test_refusals(cdnow_cal: pd.DataFrame, cdnow_tx: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="rule must be one of"):
        cf.compare_models(cdnow_cal, rule="best")
    with pytest.raises(ValueError, match="BG/BB"):
        cf.compare_models(cdnow_cal, models=("bgnbd", "bgbb"))
    with pytest.raises(ValueError, match="twice"):
        cf.compare_models(cdnow_cal, models=("bgnbd", cf.BetaGeo))
    with pytest.raises(ValueError, match="unknown purchase model"):
        cf.compare_models(cdnow_cal, models=("bgnbd", "nope"))
    with pytest.raises(TypeError, match="describe how to read a transaction log"):
        cf.compare_models(cdnow_cal, customer_id="cust")
    with pytest.raises(cf.DataValidationError, match="holds no transactions"):
        cf.compare_models(cdnow_tx, calibration_end="1998-06-30", observation_end="1998-09-30")
    mine = cf.BetaGeo()
    cf.compare_models(cdnow_cal, models=(mine,))
    assert not hasattr(mine, "params_")  # instances are copied, not fitted in place


class _Twin(cf.ParetoNBD):
    """A Pareto/NBD whose holdout predictions are BG/NBD's less 1e-9 relative (as degenerate fits that reach the
    same NBD limit are)."""

    def expected_purchases(self, table, t):  # noqa: ANN001, ANN201
        return cf.BetaGeo().fit(table).expected_purchases(table, t) * (1 - 1e-9)


def test_ties_within_rounding_go_to_the_model_listed_first(cdnow_cal: pd.DataFrame) -> None:
    c = cf.compare_models(cdnow_cal, models=("bgnbd", _Twin))
    assert c.loc["pnbd", "mae"] < c.loc["bgnbd", "mae"] < c.loc["pnbd", "mae"] * (1 + 1e-8)
    assert c.attrs["chosen"] == "bgnbd"
    assert cf.compare_models(cdnow_cal, models=(_Twin, "bgnbd")).attrs["chosen"] == "pnbd"


def test_the_chosen_fit_is_rebuilt_from_attrs_without_refitting(comparison: pd.DataFrame, cdnow_cal: pd.DataFrame) -> None:
    from clvforecast.models import model_from_dict

    fit = comparison.attrs["fits"][comparison.attrs["chosen"]]
    model = model_from_dict(fit)
    assert isinstance(model, cf.ParetoNBD) and model.time_unit_ == "W"
    again = cf.ParetoNBD().fit(cdnow_cal)
    pd.testing.assert_series_equal(model.expected_purchases(cdnow_cal, 39), again.expected_purchases(cdnow_cal, 39),
                                   rtol=1e-9)
    with pytest.raises(cf.models.ModelFileError, match="parameter 'r'"):
        model_from_dict({**fit, "params": {**fit["params"], "r": -1.0}})
