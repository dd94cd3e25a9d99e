"""RFM tables from 10 million transactions of 1 million customers: clvforecast against lifetimes.

Simulates a transaction log (every customer's first purchase in the first year, repeat purchases spread over
the rest of two years at customer-specific rates, times of day, amounts with cents), stores it as Parquet in
``benchmarks/_work/`` and times, each contender in its own process so that peak memories do not mix:

* ``clvforecast.rfm_summary`` and ``clvforecast.calibration_holdout`` on the DataFrame and on the Parquet file
  (the file is read by DuckDB inside the call);
* lifetimes' ``summary_data_from_transaction_data(freq="D")`` on the same DataFrame, and on the Parquet file
  (read with ``pandas.read_parquet`` first, which the timing includes).

Prints seconds (the best of ``--repeat`` runs, default 3, for every contender alike, as timeit does; the
first, cold run beside it), peak resident memory of each process (input included; "+input" is the peak above
the memory held once the input DataFrame is loaded) and the speed ratio, and checks that the tables are identical
(frequency equal, recency, T and monetary value within 1e-9). Targets: at least 5x faster than lifetimes,
peak RSS under 2 GB. Exits 1 when the tables differ; speed and memory depend on the machine and are reported.

    python benchmarks/bench_rfm.py               # 10,000,000 transactions (lifetimes takes a while)
    python benchmarks/bench_rfm.py --scale 0.1   # 1,000,000 transactions, 100,000 customers
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
START, DAYS = pd.Timestamp("2022-01-01"), 730  # two years of data
OBSERVATION_END, CALIBRATION_END = "2023-12-31", "2023-06-30"
TARGET_RATIO, TARGET_RSS_GB = 5.0, 2.0

# name: (library, function, input)
CONTENDERS = {
    "cf-summary-df": ("clvforecast", "rfm_summary", "DataFrame"),
    "cf-summary-parquet": ("clvforecast", "rfm_summary", "Parquet"),
    "cf-holdout-df": ("clvforecast", "calibration_holdout", "DataFrame"),
    "cf-holdout-parquet": ("clvforecast", "calibration_holdout", "Parquet"),
    "lt-summary-df": ("lifetimes", "summary_data_from_transaction_data", "DataFrame"),
    "lt-summary-parquet": ("lifetimes", "summary_data_from_transaction_data", "Parquet"),
}


def simulate(n_tx: int, n_customers: int, seed: int = 2005) -> pd.DataFrame:
    """``n_tx`` transactions of ``n_customers`` customers, in time order.

    Each customer makes a first purchase on a uniform day of the first year; the other ``n_tx - n_customers``
    purchases go to customers in proportion to a Gamma(0.5) purchase rate, on a uniform day between the
    customer's first day and the end of the second year. Times of day are uniform (several purchases of one
    customer on one day do occur); amounts are Gamma(2, 20) dollars rounded to cents.
    """
    rng = np.random.default_rng(seed)
    first = rng.integers(0, 365, n_customers)
    rate = rng.gamma(0.5, 1.0, n_customers)
    repeat_of = np.searchsorted(np.cumsum(rate / rate.sum()), rng.random(n_tx - n_customers), side="right")
    repeat_of = np.minimum(repeat_of, n_customers - 1)
    customer = np.concatenate([np.arange(n_customers), repeat_of])
    span = DAYS - first[repeat_of]
    day = np.concatenate([first, first[repeat_of] + (rng.random(len(repeat_of)) * span).astype(np.int64)])
    seconds = day * 86_400 + rng.integers(0, 86_400, n_tx)
    order = np.argsort(seconds, kind="stable")
    return pd.DataFrame(
        {
            "customer_id": customer[order] + 1,
            "date": START + pd.to_timedelta(seconds[order], unit="s"),
            "amount": np.round(rng.gamma(2.0, 20.0, n_tx), 2),
        }
    )


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(name: str, parquet: Path, out: Path, repeat: int) -> None:
    """Run one contender ``repeat`` times in this process; print seconds (best) and memory as JSON."""
    library, _, source = CONTENDERS[name]
    if library == "clvforecast":
        import clvforecast as cf

        def run(data: object) -> pd.DataFrame:
            if name.startswith("cf-summary"):
                return cf.rfm_summary(data, observation_end=OBSERVATION_END, time_unit="D")
            return cf.calibration_holdout(
                data, calibration_end=CALIBRATION_END, observation_end=OBSERVATION_END, time_unit="D"
            )

    else:
        from lifetimes.utils import summary_data_from_transaction_data

        def run(data: object) -> pd.DataFrame:
            frame = pd.read_parquet(data) if isinstance(data, Path) else data
            return summary_data_from_transaction_data(
                frame, "customer_id", "date", "amount", observation_period_end=OBSERVATION_END, freq="D"
            )

    data: object = pd.read_parquet(parquet) if source == "DataFrame" else parquet
    gc.collect()
    loaded = _current_rss_mb()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        table = run(data)
        times.append(time.perf_counter() - t0)
    table.to_parquet(out)
    print(json.dumps({"seconds": min(times), "first": times[0], "peak_mb": _rss_mb(), "loaded_mb": loaded,
                      "rows": len(table)}))


def _run_worker(name: str, parquet: Path, repeat: int) -> dict:
    out = WORK / f"result_{name}.parquet"
    cmd = [sys.executable, __file__, "--worker", name, "--input", str(parquet), "--out", str(out)]
    proc = subprocess.run([*cmd, "--repeat", str(repeat)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["table"] = out
    return result


def _compare(ours: pd.DataFrame, theirs: pd.DataFrame) -> str | None:
    """None if the tables agree (same customers, equal frequency, other columns within 1e-9)."""
    if len(ours) != len(theirs) or not ours.index.sort_values().equals(theirs.index.sort_values()):
        return f"different customers ({len(ours):,} vs {len(theirs):,})"
    theirs = theirs.loc[ours.index]
    if not np.array_equal(ours["frequency"].to_numpy(), theirs["frequency"].to_numpy()):
        return "frequency differs"
    for col in ("recency", "T", "monetary_value"):
        worst = float(np.max(np.abs(ours[col].to_numpy() - theirs[col].to_numpy())))
        if not worst <= 1e-9:
            return f"{col} differs by up to {worst:g}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scale", type=float, default=1.0, help="fraction of 10M transactions / 1M customers"
    )
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per contender, in one process (the best is compared, as timeit does; the "
                        "first, cold run is shown too)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.input, args.out, args.repeat)
        return 0

    n_tx, n_customers = round(10_000_000 * args.scale), round(1_000_000 * args.scale)
    WORK.mkdir(exist_ok=True)
    parquet = WORK / f"transactions_{n_tx}.parquet"
    if not parquet.exists():
        t0 = time.perf_counter()
        log = simulate(n_tx, n_customers)
        log.to_parquet(parquet, index=False)
        print(f"simulated {n_tx:,} transactions in {time.perf_counter() - t0:.1f} s -> {parquet}")
        del log
    import duckdb
    import lifetimes

    import clvforecast

    print(
        f"{n_tx:,} transactions, {n_customers:,} customers, observation end {OBSERVATION_END}; "
        f"{os.cpu_count()} CPUs; clvforecast {clvforecast.__version__} (DuckDB {duckdb.__version__}), "
        f"lifetimes {lifetimes.__version__}, pandas {pd.__version__}"
    )
    results = {}
    for name in CONTENDERS:
        results[name] = _run_worker(name, parquet, args.repeat)
        r = results[name]
        print(f"  ran {name}: best {r['seconds']:.2f} s, first {r['first']:.2f} s", flush=True)

    print()
    print(
        f"{'input':<10} {'contender':<46} {'best s':>8} {'first s':>8} {'peak RSS':>10} {'+input':>9} "
        f"{'vs lifetimes':>13}"
    )
    failures, misses = [], []
    for name, (library, function, source) in CONTENDERS.items():
        r = results[name]
        baseline = results["lt-summary-df" if source == "DataFrame" else "lt-summary-parquet"]
        ratio = baseline["seconds"] / r["seconds"]
        shown = f"{ratio:.1f}x faster" if library == "clvforecast" else ""
        print(
            f"{source:<10} {library + '.' + function:<46} {r['seconds']:>8.2f} {r['first']:>8.2f} "
            f"{r['peak_mb']:>7,.0f} MB "
            f"{r['peak_mb'] - r['loaded_mb']:>6,.0f} MB {shown:>13}"
        )
        if library == "clvforecast":
            if function == "rfm_summary" and ratio < TARGET_RATIO:
                misses.append(f"{name}: {ratio:.1f}x < {TARGET_RATIO:.0f}x")
            if r["peak_mb"] > TARGET_RSS_GB * 1024:
                misses.append(f"{name}: peak RSS {r['peak_mb']:,.0f} MB > {TARGET_RSS_GB:.0f} GB")

    reference = pd.read_parquet(results["lt-summary-df"]["table"])
    for name in ("cf-summary-df", "cf-summary-parquet", "lt-summary-parquet"):
        problem = _compare(pd.read_parquet(results[name]["table"]), reference)
        if problem:
            failures.append(f"{name} vs lifetimes: {problem}")
    holdout_df = pd.read_parquet(results["cf-holdout-df"]["table"])
    if not holdout_df.equals(pd.read_parquet(results["cf-holdout-parquet"]["table"])):
        failures.append("calibration_holdout: DataFrame and Parquet tables differ")
    print()
    print(
        f"identical results: {'no: ' + '; '.join(failures) if failures else 'yes'} "
        f"({len(reference):,} customers; frequency equal, recency/T/monetary_value within 1e-9; "
        "calibration_holdout equal for DataFrame and Parquet)"
    )
    print(f"targets (>= {TARGET_RATIO:.0f}x lifetimes, peak RSS < {TARGET_RSS_GB:.0f} GB): "
          + ("met" if not misses else "missed: " + "; ".join(misses)))  # fmt: skip
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
