"""End to end on one machine: transactions -> RFM -> BG/NBD + Gamma-Gamma -> 12-month CLV, against lifetimes.

Simulates a BG/NBD-like transaction log with daily dates (1M customers, about 10M transactions over two
years; every customer's first purchase in the first year, purchases while alive at a Gamma-distributed rate,
dropout after each repeat purchase with a Beta-distributed probability, Gamma-Gamma spends with cents, times
of day) and times, each contender in its own process, its FIRST run (as a user sees it, no warm-up):

* clvforecast: ``rfm_summary`` (from the DataFrame, and from the Parquet path), ``BetaGeo().fit``,
  ``GammaGamma().fit`` and ``predictive_clv(horizon="12M", step="M")``;
* lifetimes: ``summary_data_from_transaction_data(freq="D")``, ``BetaGeoFitter().fit``,
  ``GammaGammaFitter().fit`` on the repeat buyers and ``customer_lifetime_value(time=12, freq="D")``.

Targets (issue 12): RFM from 10M rows in <= 1 s from a Parquet path and from a DataFrame; 12-month CLV
(monthly steps) for 1M customers in <= 0.5 s; end to end (DataFrame in, CLV table out, fits included) at
least 12x faster than lifetimes; peak RSS of the whole pipeline from a Parquet path < 1 GB. With ``--cli``
(on by default at full scale) also 100M transactions of 10M customers through the command line
(``summarize`` -> ``fit`` -> ``predict``, writing Parquet) in <= 45 s with no process above 3 GB.

Prints every number, the ratio and whether each target is met; speed depends on the machine (2 cores here)
and on what else runs on it. Exits 1 only when the two pipelines disagree (correctness), never for speed.

    python benchmarks/bench_e2e.py                # 1M customers, ~10M transactions, plus the 100M CLI run
    python benchmarks/bench_e2e.py --scale 0.1    # 100k customers, ~1M transactions (no CLI run)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
START = pd.Timestamp("2022-01-01")
DAYS = 730  # two years of data
OBSERVATION_END = (START + pd.Timedelta(days=DAYS - 1)).date().isoformat()  # 2023-12-31
# Daily rates: lambda ~ Gamma(R, 1/ALPHA) purchases a day while alive; p ~ Beta(A, B) after each repeat.
R, ALPHA, A, B = 1.2, 40.0, 0.6, 6.0
P_GG, Q_GG, V_GG = 6.0, 4.0, 15.0  # spend: nu ~ Gamma(Q, 1/V); each purchase Gamma(P, 1/nu)
TARGET_RFM_S, TARGET_CLV_S, TARGET_RATIO, TARGET_RSS_GB = 1.0, 0.5, 12.0, 1.0
TARGET_CLI_S, TARGET_CLI_GB = 45.0, 3.0


def simulate(n_customers: int, seed: int = 2026, first_id: int = 1) -> pd.DataFrame:
    """A BG/NBD-like log of ``n_customers`` customers with daily dates, sorted by time.

    Customer i buys first on a uniform day of the first year, then while alive as a Poisson process of rate
    ``lambda_i`` (a day); after each repeat purchase she leaves with probability ``p_i``: the repeat purchases
    she would ever make are ``K ~ Geometric(p)``, those that fit before the end are the first ``min(K, N)`` of
    ``N ~ Poisson(lambda * span)`` uniform times. Spends are Gamma(P, nu_i) with ``nu_i ~ Gamma(Q, V)``, in
    cents; times of day are uniform.
    """
    rng = np.random.default_rng(seed)
    first = rng.integers(0, 365, n_customers)
    span = DAYS - first  # days from the first purchase to the end, inclusive of partial last day
    lam = rng.gamma(R, 1.0 / ALPHA, n_customers)
    p = rng.beta(A, B, n_customers)
    k = rng.geometric(p)
    n_pois = rng.poisson(lam * span)
    owner = np.repeat(np.arange(n_customers), n_pois)
    u = rng.random(len(owner)) * span[owner]
    order = np.lexsort((u, owner))  # within each customer in time order
    owner, u = owner[order], u[order]
    rank = np.arange(len(owner)) - np.repeat(np.cumsum(n_pois) - n_pois, n_pois)
    keep = rank < k[owner]  # alive: the first K potential purchases only
    owner, u = owner[keep], u[keep]
    customer = np.concatenate([np.arange(n_customers), owner])
    day = np.concatenate([first, first[owner] + np.floor(u).astype(np.int64)])
    seconds = day * 86_400 + rng.integers(0, 86_400, len(day))
    nu = rng.gamma(Q_GG, 1.0 / V_GG, n_customers)
    amount = np.round(rng.gamma(P_GG, 1.0 / nu[customer]), 2)
    order = np.argsort(seconds, kind="stable")
    return pd.DataFrame(
        {
            "customer_id": customer[order] + first_id,
            "date": START + pd.to_timedelta(seconds[order], unit="s"),
            "amount": np.maximum(amount[order], 0.01),
        }
    )


def write_log(path: Path, n_customers: int, chunk: int = 1_000_000) -> int:
    """Simulate in chunks of customers and append them to one Parquet file (bounded memory); rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, rows = None, 0
    for k, lo in enumerate(range(0, n_customers, chunk)):
        part = simulate(min(chunk, n_customers - lo), seed=2026 + k, first_id=lo + 1)
        table = pa.Table.from_pandas(part, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
        rows += len(part)
    assert writer is not None
    writer.close()
    return rows


# ------------------------------------------------------------------------------------------------------------
# workers (each contender in its own process)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_clvforecast(source: str, parquet: Path, out: Path) -> dict:
    import warnings

    import clvforecast as cf

    data: object = parquet if source == "parquet" else pd.read_parquet(parquet)
    times, cpu = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0, c0 = time.perf_counter(), _cpu()
        rfm = cf.rfm_summary(data, observation_end=OBSERVATION_END, time_unit="D")
        times["rfm"], cpu["rfm"] = time.perf_counter() - t0, _cpu() - c0
        t, c = time.perf_counter(), _cpu()
        bg = cf.BetaGeo().fit(rfm)
        times["bgnbd_fit"], cpu["bgnbd_fit"] = time.perf_counter() - t, _cpu() - c
        t, c = time.perf_counter(), _cpu()
        gg = cf.GammaGamma().fit(rfm)
        times["gg_fit"], cpu["gg_fit"] = time.perf_counter() - t, _cpu() - c
        t, c = time.perf_counter(), _cpu()
        clv = cf.predictive_clv(bg, gg, rfm, horizon="12M", step="M", discount_rate=0.10)
        times["clv"], cpu["clv"] = time.perf_counter() - t, _cpu() - c
        times["total"], cpu["total"] = time.perf_counter() - t0, _cpu() - c0
    clv.to_parquet(out)
    return {"times": times, "cpu": cpu, "peak_mb": _peak_mb(), "customers": len(rfm),
            "params": {**bg.params_.to_dict(), **gg.params_.to_dict()}}


def _cpu() -> float:
    """CPU seconds of this process (all threads): what a step costs whatever else the machine runs."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def worker_lifetimes(parquet: Path, out: Path) -> dict:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes import BetaGeoFitter, GammaGammaFitter
        from lifetimes.utils import summary_data_from_transaction_data

        log = pd.read_parquet(parquet)
        times = {}
        t0 = time.perf_counter()
        rfm = summary_data_from_transaction_data(
            log, "customer_id", "date", "amount", observation_period_end=OBSERVATION_END, freq="D"
        )
        times["rfm"] = time.perf_counter() - t0
        t = time.perf_counter()
        bgf = BetaGeoFitter().fit(rfm["frequency"], rfm["recency"], rfm["T"])
        times["bgnbd_fit"] = time.perf_counter() - t
        t = time.perf_counter()
        rep = rfm[rfm["frequency"] > 0]
        ggf = GammaGammaFitter().fit(rep["frequency"], rep["monetary_value"])
        times["gg_fit"] = time.perf_counter() - t
        t = time.perf_counter()
        monthly = 1.10 ** (1 / 12) - 1
        clv = ggf.customer_lifetime_value(
            bgf, rfm["frequency"], rfm["recency"], rfm["T"], rfm["monetary_value"], time=12,
            discount_rate=monthly, freq="D",
        )
        times["clv"] = time.perf_counter() - t
        times["total"] = time.perf_counter() - t0
    clv.to_frame("clv").to_parquet(out)
    return {"times": times, "peak_mb": _peak_mb(), "customers": len(rfm), "nan": int(clv.isna().sum()),
            "params": {**bgf.params_.to_dict(), **ggf.params_.to_dict()}}


#: The Parquet-path run sets DuckDB's memory limit (clvforecast.io.MEMORY_LIMIT_ENV, the CLI's --memory-limit):
#: without it DuckDB may hold up to 80% of the machine's memory in its hash tables before spilling.
PARQUET_MEMORY_LIMIT = "700MB"


def _run(kind: str, parquet: Path, source: str = "dataframe") -> dict:
    out = WORK / f"e2e_{kind}_{source}.parquet"
    cmd = [sys.executable, __file__, "--worker", kind, "--source", source, "--input", str(parquet),
           "--out", str(out)]
    env = dict(os.environ)
    if source == "parquet":
        env["CLVFORECAST_MEMORY_LIMIT"] = PARQUET_MEMORY_LIMIT
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} ({source}) failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["out"] = out
    return result


# ------------------------------------------------------------------------------------------------------------
# the 100M-row command-line run


def _timed_process(cmd: list[str]) -> tuple[float, float, int, str, float]:
    """Run ``cmd``; (seconds, peak RSS in MB of the process tree sampled every 50 ms, return code, stderr, CPU
    seconds of the process)."""
    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0.0]

    def sample() -> None:
        try:
            parent = psutil.Process(proc.pid)
            while proc.poll() is None:
                procs = [parent, *parent.children(recursive=True)]
                rss = max((p.memory_info().rss for p in procs if p.is_running()), default=0)
                peak[0] = max(peak[0], rss / 2**20)
                time.sleep(0.05)
        except psutil.Error:
            pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    seconds = time.perf_counter() - t0
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return seconds, peak[0], proc.returncode, err, cpu


def cli_run(n_customers: int) -> list[str]:
    """summarize -> fit -> predict on ~10 transactions per customer, Parquet in and out; returns misses."""
    parquet = WORK / f"cli_log_{n_customers}.parquet"
    if not parquet.exists():
        t0 = time.perf_counter()
        rows = write_log(parquet, n_customers)
        print(f"simulated {rows:,} transactions of {n_customers:,} customers in {time.perf_counter() - t0:.0f} s "
              f"-> {parquet} ({parquet.stat().st_size / 2**20:,.0f} MB)")
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(parquet).metadata.num_rows
    exe = str(Path(sys.executable).parent / "clvforecast")
    if not Path(exe).exists():
        exe = shutil.which("clvforecast") or exe
    out = WORK / "cli_out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    steps = {
        "summarize": [exe, "-q", "summarize", str(parquet), "--observation-end", OBSERVATION_END,
                      "--time-unit", "D", "--memory-limit", "2GB", "--out", str(out / "rfm.parquet")],
        "fit": [exe, "-q", "fit", str(out / "rfm.parquet"), "--out", str(out / "models")],
        "predict": [exe, "-q", "predict", str(out / "models"), str(out / "rfm.parquet"), "--horizon", "12M",
                    "--discount-rate", "0.1", "--out", str(out / "forecast.parquet")],
    }
    print(f"\ncommand line on {rows:,} transactions of {n_customers:,} customers (Parquet in and out):")
    total, worst, total_cpu, misses = 0.0, 0.0, 0.0, []
    for name, cmd in steps.items():
        seconds, peak, code, err, cpu = _timed_process(cmd)
        if code != 0:
            print(f"  {name}: failed ({err.strip().splitlines()[-1] if err.strip() else code})")
            return [f"CLI {name} failed"]
        total, worst, total_cpu = total + seconds, max(worst, peak), total_cpu + cpu
        print(f"  {name:<10} {seconds:>7.1f} s   CPU {cpu:>6.1f} s   peak RSS {peak:>7,.0f} MB   "
              f"(load {os.getloadavg()[0]:.1f})")
    print(f"  {'total':<10} {total:>7.1f} s   CPU {total_cpu:>6.1f} s   largest process {worst:,.0f} MB")
    if total > TARGET_CLI_S:
        misses.append(f"100M CLI {total:.0f} s > {TARGET_CLI_S:.0f} s")
    if worst > TARGET_CLI_GB * 1024:
        misses.append(f"100M CLI process {worst:,.0f} MB > {TARGET_CLI_GB:.0f} GB")
    return misses


# ------------------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of 1M customers (~10M transactions)")
    parser.add_argument("--cli", action=argparse.BooleanOptionalAction, default=None,
                        help="also run 100M transactions (x --scale) through the command line (default: at "
                        "full scale only)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--source", default="dataframe", help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        fn = worker_clvforecast if args.worker == "clvforecast" else None
        result = (fn(args.source, args.input, args.out) if fn
                  else worker_lifetimes(args.input, args.out))
        print(json.dumps(result))
        return 0

    WORK.mkdir(exist_ok=True)
    n_customers = round(1_000_000 * args.scale)
    parquet = WORK / f"e2e_log_{n_customers}.parquet"
    if not parquet.exists():
        t0 = time.perf_counter()
        write_log(parquet, n_customers)
        print(f"simulated the log in {time.perf_counter() - t0:.1f} s -> {parquet}")
    import duckdb
    import lifetimes
    import pyarrow.parquet as pq

    import clvforecast

    n_rows = pq.ParquetFile(parquet).metadata.num_rows
    print(f"{n_rows:,} transactions, {n_customers:,} customers, daily dates {START.date()}..{OBSERVATION_END}; "
          f"{os.cpu_count()} CPUs; clvforecast {clvforecast.__version__} (DuckDB {duckdb.__version__}), "
          f"lifetimes {lifetimes.__version__}, pandas {pd.__version__}; first runs, each in its own process")
    load_before = os.getloadavg()[0]
    ours = _run("clvforecast", parquet, "dataframe")
    ours_pq = _run("clvforecast", parquet, "parquet")
    theirs = _run("lifetimes", parquet)

    steps = ("rfm", "bgnbd_fit", "gg_fit", "clv", "total")
    print(f"load average before the runs: {load_before:.1f} on {os.cpu_count()} CPUs (wall times grow with it; "
          "the CPU column is the seconds of CPU the step used, summed over its threads)")
    print(f"\n{'step':<12} {'clvforecast':>12} {'(CPU)':>8} {'(Parquet)':>10} {'lifetimes':>10} {'ratio':>8}")
    for s in steps:
        a, b, c = ours["times"][s], ours_pq["times"][s], theirs["times"][s]
        print(f"{s:<12} {a:>10.2f} s {ours['cpu'][s]:>6.2f} s {b:>8.2f} s {c:>8.2f} s {c / a:>7.1f}x")
    print(f"peak RSS: clvforecast {ours['peak_mb']:,.0f} MB from a DataFrame (input included), "
          f"{ours_pq['peak_mb']:,.0f} MB from a Parquet path (CLVFORECAST_MEMORY_LIMIT={PARQUET_MEMORY_LIMIT}); "
          f"lifetimes {theirs['peak_mb']:,.0f} MB")
    print(f"lifetimes: {theirs['nan']:,} customers with a NaN CLV")

    # correctness: the same customers and CLVs close (lifetimes' 30-day months vs calendar months; its fit's
    # tolerance): median relative difference printed, a gross disagreement fails
    a = pd.read_parquet(ours["out"])["clv"]
    b = pd.read_parquet(theirs["out"])["clv"].reindex(a.index)
    rel = ((a - b).abs() / b.abs().clip(lower=1e-9)).dropna()
    print(f"CLV agreement with lifetimes: median relative difference {rel.median():.2%} (lifetimes uses "
          "30-day months, ours calendar months: about 1.4% apart over a year)")
    failures = [] if len(a) == theirs["customers"] and rel.median() < 0.05 else ["CLVs disagree with lifetimes"]

    misses = []
    scale_rows = n_rows / 10_000_000
    for label, r in (("DataFrame", ours), ("Parquet", ours_pq)):
        if r["times"]["rfm"] > TARGET_RFM_S * max(scale_rows, 1e-9):
            misses.append(f"RFM from a {label} {r['times']['rfm']:.2f} s > {TARGET_RFM_S * scale_rows:.2f} s")
    if ours["times"]["clv"] > TARGET_CLV_S * args.scale:
        misses.append(f"CLV {ours['times']['clv']:.2f} s > {TARGET_CLV_S * args.scale:.2f} s")
    ratio = theirs["times"]["total"] / ours["times"]["total"]
    if ratio < TARGET_RATIO:
        misses.append(f"end to end {ratio:.1f}x < {TARGET_RATIO:.0f}x lifetimes")
    if ours_pq["peak_mb"] > TARGET_RSS_GB * 1024:
        misses.append(f"peak RSS from Parquet {ours_pq['peak_mb']:,.0f} MB > {TARGET_RSS_GB:.0f} GB")
    if args.cli or (args.cli is None and args.scale >= 1):
        misses += cli_run(round(10_000_000 * args.scale))
    print(f"\ntargets (RFM <= {TARGET_RFM_S:g} s per 10M rows, CLV <= {TARGET_CLV_S:g} s per 1M customers, "
          f">= {TARGET_RATIO:g}x lifetimes end to end, < {TARGET_RSS_GB:g} GB from Parquet"
          + (f", 100M CLI <= {TARGET_CLI_S:g} s and < {TARGET_CLI_GB:g} GB" if args.cli or args.scale >= 1 else "")
          + "): " + ("met" if not misses else "missed: " + "; ".join(misses)))
    if failures:
        print("FAILED: " + "; ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
