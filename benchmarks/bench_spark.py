"""clvforecast on Apache Spark (local mode) against the DuckDB engine, on a 1M-row synthetic log.

Simulates the log of ``bench_rfm.py`` (1,000,000 transactions of 100,000 customers by default: daily dates with
times of day, amounts with cents), writes it as Parquet in ``benchmarks/_work/``, and runs the same steps on
both engines:

* ``calibration_holdout`` and ``rfm_summary`` from the Parquet file: the Spark tables, collected, must equal
  DuckDB's bit for bit, attrs (rows read, dropped, excluded) included;
* ``fit_on_spark`` (distinct histories grouped on Spark, BG/NBD and Gamma-Gamma fitted on the driver) against
  the models' own fit on the pandas table: the same maximum of the likelihood (within 1e-9, relative);
* ``clvforecast.spark.predictive_clv`` (mapInPandas) against ``clvforecast.predictive_clv``: within 1e-9, and
  with seeded 90% predictive intervals (the same bounds, whole-number count bounds identical).

Prints seconds per step (one run each, the Spark session started before; local Spark pays a JVM and Python
worker start-up that a cluster amortises) and exits 1 when a comparison fails. This is the 1M-row acceptance
check of issue 12 (too slow for the unit tests); the unit tests compare the engines on the CDNOW master log.

    python benchmarks/bench_spark.py                  # 1,000,000 transactions, local[*]
    python benchmarks/bench_spark.py --rows 200000 --master local[2]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_rfm import CALIBRATION_END, OBSERVATION_END, WORK, simulate  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--master", default="local[*]")
    args, _ = parser.parse_known_args()  # run_all.py passes every script the same arguments

    import clvforecast as cf
    from clvforecast import spark as cs

    n_customers = max(args.rows // 10, 10)
    path = WORK / f"spark_{args.rows}.parquet"
    if not path.exists():
        WORK.mkdir(exist_ok=True)
        simulate(args.rows, n_customers).to_parquet(path, index=False)
    timings: dict[str, float] = {}
    failures: list[str] = []

    def timed(name: str, fn):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        out = fn()
        timings[name] = time.perf_counter() - t0
        return out

    session = timed("spark: start a local session", lambda: cs.get_session(args.master))
    session.sparkContext.setLogLevel("ERROR")
    print(f"{args.rows:,} transactions, {n_customers:,} customers; Spark {session.version} on {args.master}")

    cutoffs = dict(calibration_end=CALIBRATION_END, observation_end=OBSERVATION_END, time_unit="W")
    duck = timed("duckdb: calibration_holdout (Parquet)", lambda: cf.calibration_holdout(path, **cutoffs))
    table = timed("spark: calibration_holdout (Parquet; 2 passes)", lambda: cs.calibration_holdout(path, **cutoffs))
    got = timed("spark: collect the table to pandas", table.to_pandas)
    try:
        pd.testing.assert_frame_equal(got, duck, check_exact=True)
        assert got.attrs == duck.attrs, (got.attrs, duck.attrs)
        print(f"calibration_holdout: identical ({len(got):,} customers, attrs {got.attrs})")
    except AssertionError as exc:
        failures.append(f"calibration_holdout differs: {exc}")

    duck_rfm = timed("duckdb: rfm_summary (Parquet)", lambda: cf.rfm_summary(path, time_unit="D"))
    spark_rfm = timed("spark: rfm_summary (Parquet) + collect", lambda: cs.rfm_summary(path, time_unit="D").to_pandas())
    try:
        pd.testing.assert_frame_equal(spark_rfm, duck_rfm, check_exact=True)
        assert spark_rfm.attrs == duck_rfm.attrs
        print("rfm_summary: identical")
    except AssertionError as exc:
        failures.append(f"rfm_summary differs: {exc}")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bg = timed("spark: fit_on_spark BG/NBD (group + fit)", lambda: cs.fit_on_spark(cf.BetaGeo(), table))
        gg = timed("spark: fit_on_spark Gamma-Gamma", lambda: cs.fit_on_spark(cf.GammaGamma(), table))
        bg_pd = timed("pandas: BetaGeo().fit", lambda: cf.BetaGeo().fit(duck))
        gg_pd = timed("pandas: GammaGamma().fit", lambda: cf.GammaGamma().fit(duck))
    # The simulated customers never drop out, so BG/NBD's (a, b) are not identified (a -> 0, the likelihood is
    # flat along b): two fits may stop at different points of the same maximum. The maximum is compared.
    for name, a, b in (("BG/NBD", bg, bg_pd), ("Gamma-Gamma", gg, gg_pd)):
        rel_ll = abs(a.log_likelihood_ / b.log_likelihood_ - 1)
        rel = float(np.max(np.abs(a.params_.to_numpy() / b.params_.to_numpy() - 1)))
        print(f"{name} on Spark vs pandas: log-likelihood {a.log_likelihood_:.4f} vs {b.log_likelihood_:.4f} "
              f"(relative difference {rel_ll:.1e}); estimates {a.params_.round(4).to_dict()} vs "
              f"{b.params_.round(4).to_dict()} (max relative difference {rel:.1e})")
        if rel_ll > 1e-9:
            failures.append(f"{name} maxima differ by {rel_ll:.1e}")

    kwargs = dict(horizon="12M", discount_rate=0.1, step="M")
    want = timed("pandas: predictive_clv", lambda: cf.predictive_clv(bg_pd, gg_pd, duck, **kwargs))

    def spark_scores() -> pd.DataFrame:
        with cs._quiet_pandas():
            return cs.predictive_clv(bg_pd, gg_pd, table, **kwargs).toPandas().set_index("customer_id").sort_index()

    scores = timed("spark: predictive_clv (mapInPandas) + collect", spark_scores)
    worst = float(np.max(np.abs(scores.to_numpy() - want.to_numpy())))
    print(f"predictive_clv on Spark vs pandas: max |difference| {worst:.1e}")
    if not scores.index.equals(want.index) or worst > 1e-9:
        failures.append(f"predictive_clv differs by {worst:.1e}")

    # predictive intervals, seeded: the same bounds from the batches of mapInPandas as from one pandas call
    ikwargs = dict(kwargs, interval=0.9, random_state=0)
    iwant = timed("pandas: predictive_clv, interval=0.9", lambda: cf.predictive_clv(bg_pd, gg_pd, duck, **ikwargs))

    def spark_intervals() -> pd.DataFrame:
        with cs._quiet_pandas():
            scored = cs.predictive_clv(bg_pd, gg_pd, table, **ikwargs)
            return scored.toPandas().set_index("customer_id").sort_index()

    igot = timed("spark: predictive_clv, interval=0.9 + collect", spark_intervals)
    iworst = float(np.max(np.abs(igot.to_numpy() - iwant[igot.columns].to_numpy()) /
                          np.maximum(np.abs(iwant[igot.columns].to_numpy()), 1.0)))
    counts = ["expected_purchases_lower", "expected_purchases_upper"]
    print(f"predictive_clv with intervals on Spark vs pandas: max relative difference {iworst:.1e}; count bounds "
          f"{'identical' if igot[counts].equals(iwant[counts]) else 'DIFFER'}")
    if list(igot.columns) != list(iwant.columns) or iworst > 1e-9 or not igot[counts].equals(iwant[counts]):
        failures.append(f"predictive_clv intervals differ (max relative {iworst:.1e})")

    print()
    for name, seconds in timings.items():
        print(f"  {name:<52} {seconds:7.2f} s")
    table.unpersist()
    session.stop()
    for f in failures:
        print("FAILED:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
