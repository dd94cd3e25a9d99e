"""Recency/frequency/monetary (RFM) tables from transaction logs, computed by DuckDB.

Definitions (Fader, Hardie & Lee 2005; the same as lifetimes' ``summary_data_from_transaction_data`` with
``freq="D"``):

* Day resolution: all purchases of a customer on one calendar day are one transaction (amounts summed): a
  *purchase day*.
* ``frequency``: number of *repeat* transaction days (transaction days minus one).
* ``recency``: time from the first to the last transaction day (0 when frequency is 0).
* ``T``: time from the first transaction day to the end of the (calibration) period.
* ``monetary_value``: mean spend per repeat transaction day (the first day is excluded; 0 when frequency
  is 0).

Durations are measured in whole days and divided by the days in ``time_unit`` (D=1, W=7, M=365.25/12,
Y=365.25); the unit is kept in ``attrs["time_unit"]``. Every function accepts a DataFrame, a CSV/Parquet path or
a :class:`~clvforecast.TransactionLog` and the read options of :func:`~clvforecast.read_transactions` as
keywords, and gives identical tables for a DataFrame, a CSV or a Parquet file holding the same data.

Extreme purchase days. The reference is the base's typical purchase day: each customer's mean purchase-day
value up to the calibration end (one value per customer, so that heavy buyers do not outweigh the rest of the
base). With ``Q1`` and ``Q3`` the quartiles of these values across the customers of the table, a purchase day
is *extreme* when its value exceeds ``Q3 x (Q3 / Q1) ** 3``, that is when its logarithm lies more than three
interquartile ranges above the upper quartile on the log scale (Tukey's "far out" fence, on the scale where
spend is roughly symmetric); the fence is at least ``10 x Q3``, and none is set with fewer than 20 customers.
The quartiles are exact (linear interpolation) in every engine, and cost one pass over the table, not over the
transactions. On the Online Retail II log (2009-2010, returns
netted, calibration to 2010-06-30) the quartiles are 180 and 447 GBP and the fence 6,849 GBP: 56 purchase days
of 15 customers lie above it (33 of them in the calibration period). Extreme days are counted in the ledger and listed in
``attrs["extreme_orders"]`` (see :func:`extreme_orders`); with ``extreme="cap"`` their value is capped at the
fence in ``monetary_value`` (the spend the spend model sees), while the holdout's actual spend is left as it
was.

Cutoffs. ``observation_end`` and ``calibration_end`` are inclusive dates (text is read with ``date_format``
when given; numbers are refused). Without ``observation_end`` the table ends at the last transaction, leaving
out rows dated in the future or far beyond the rest (see :mod:`clvforecast.io`); an ``observation_end`` after
the last transaction warns with the gap. A holdout that holds no transactions is refused.

The ledger. Every table carries ``attrs["ledger"]`` (see :mod:`clvforecast.io`), continued from reading with
the rows after the observation end, the rows of customers new in the holdout, and the extreme purchase days;
``rows_used`` are the rows that reached the table.

The SQL. Each table is defined once, below, in SQL that DuckDB and Spark SQL both run: the only differences
(a day difference, exact quartiles and their elements, the parameter marker) are written as
``DAYS_BETWEEN(a, b)``, ``QUARTILES(x)``, ``Q1(q)``/``Q3(q)`` and ``$name`` and rendered per engine by
:func:`render_sql` (the dialect map :data:`DIALECTS`). A Spark engine registers its clean transactions as the
view ``tx`` (columns ``customer_id, date DATE, amount``), runs ``spark.sql(render_sql(RFM_SQL, "spark"),
args={"cal": ..., "obs": ..., "unit": ..., "cap": ...})`` registers the result as ``rfm``, derives the ledger from its
``n_rows`` and ``spend`` columns exactly as :func:`calibration_holdout` does, and runs :data:`FENCE_SQL` and
(when a customer's ``max_spend`` is above the fence) :data:`EXTREME_SQL` the same way; likewise
:data:`COHORT_SQL`, :data:`PERIODS_SQL` and :data:`DISCRETE_SQL`. The whole table is one pass over the
transactions (the purchase days are not materialised); the fence reads the table, and only customers with an
extreme day are read again.

The numpy pass. For a clean typed log (integer ids, timestamps, amounts in whole cents, nothing to drop; see
:mod:`clvforecast._fastrfm`) :func:`rfm_summary` and :func:`calibration_holdout` compute the same table, attrs
and ledger without DuckDB, by one sort of a packed key per row: 0.8 s instead of 3-5 s for 10M rows on two
cores. Its results are those of the SQL bit for bit (tests/test_fastrfm.py compares the two on random logs and
cutoffs); any other log runs the SQL.
"""

from __future__ import annotations

import datetime as dt
import re
import warnings
from typing import Any

import pandas as pd

from . import _fastrfm
from .exceptions import DataQualityWarning, DataValidationError
from .io import Prepared, _entry, _exact_sum, _plural, _to_date, as_log, open_transactions
from .units import check_time_unit, days_per

__all__ = [
    "DIALECTS",
    "HOLDOUT_COLUMNS",
    "RFM_COLUMNS",
    "calibration_holdout",
    "discrete_summary",
    "extreme_orders",
    "render_sql",
    "rfm_summary",
]

RFM_COLUMNS = ["frequency", "recency", "T", "monetary_value"]
HOLDOUT_COLUMNS = ["holdout_frequency", "holdout_spend", "holdout_monetary_value"]
DISCRETE_COLUMNS = ["frequency", "recency", "n_periods"]
_MONEY_COLUMNS = {"monetary_value", "holdout_spend", "holdout_monetary_value"}

# --- The definitions, once ----------------------------------------------------------------------------------

#: Per engine: how the non-portable constructs are written.
DIALECTS: dict[str, dict[str, str]] = {
    "duckdb": {"days_between": "date_diff('day', {0}, {1})", "quartiles": "quantile_cont({0}, [0.25, 0.75])",
               "q1": "{0}[1]", "q3": "{0}[2]", "param": "$"},
    "spark": {"days_between": "datediff({1}, {0})", "quartiles": "percentile({0}, array(0.25, 0.75))",
              "q1": "{0}[0]", "q3": "{0}[1]", "param": ":"},
}

#: Purchase days up to $obs: one row per customer and calendar day, spend summed exactly as DECIMAL(38, 10)
#: (amounts are below 1e15, see clvforecast.io; exact sums do not depend on the order in which rows arrive),
#: and the rows behind each day (for the ledger).
DAYS_SQL = """
SELECT customer_id, date AS day, sum(CAST(amount AS DECIMAL(38, 10))) AS spend, count(*) AS n_rows
FROM tx WHERE date <= $obs
GROUP BY customer_id, date
"""

#: The RFM table, one statement over ``tx``. Parameters: $cal (calibration end; = $obs for a plain summary),
#: $obs, both inclusive DATEs, $unit (days per time unit); with ``render_sql(..., cap=True)`` also $cap (a
#: purchase day's spend is capped at $cap in monetary_value; ``CAPPED(x)`` renders as ``x`` otherwise).
#: Customers whose first purchase is after $cal have first_day > $cal. ``n_rows`` (rows behind the customer's
#: days), ``max_spend`` (the largest purchase day), ``mean_day_value`` (mean value of the purchase days up to
#: $cal) and ``holdout_spend_exact`` (the holdout spend as DECIMAL, summed for the ledger without a second
#: rounding) feed the ledger and the extreme-day fence.
RFM_SQL = f"""
WITH days AS ({DAYS_SQL}),
per_customer AS (
    SELECT customer_id,
           min(day) AS first_day,
           max(day) FILTER (WHERE day <= $cal) AS last_day,
           count(*) FILTER (WHERE day <= $cal) AS cal_days,
           sum(CAPPED(spend)) FILTER (WHERE day <= $cal) AS cal_spend,
           min_by(CAPPED(spend), day) AS first_spend,
           count(*) FILTER (WHERE day > $cal) AS holdout_frequency,
           coalesce(sum(spend) FILTER (WHERE day > $cal), 0) AS holdout_spend,
           sum(n_rows) AS n_rows,
           max(spend) AS max_spend
    FROM days GROUP BY customer_id
)
SELECT customer_id,
       first_day,
       cal_days - 1 AS frequency,
       DAYS_BETWEEN(first_day, last_day) / $unit AS recency,
       DAYS_BETWEEN(first_day, $cal) / $unit AS T,
       CASE WHEN cal_days > 1 THEN CAST(cal_spend - first_spend AS DOUBLE) / (cal_days - 1) ELSE 0.0 END
           AS monetary_value,
       holdout_frequency,
       CAST(holdout_spend AS DOUBLE) AS holdout_spend,
       holdout_spend AS holdout_spend_exact,
       CASE WHEN holdout_frequency > 0 THEN CAST(holdout_spend AS DOUBLE) / holdout_frequency ELSE 0.0 END
           AS holdout_monetary_value,
       n_rows, CAST(max_spend AS DOUBLE) AS max_spend,
       CAST(cal_spend AS DOUBLE) / cal_days AS mean_day_value
FROM per_customer
"""

#: The extreme-day fence over the RFM table ``rfm``: Q1 and Q3 are the quartiles, across the customers of the
#: table with a positive value, of each customer's mean purchase-day value up to $cal; the fence is Q3 (Q3 / Q1)^3 (Q3 + 3 IQR on the
#: log scale), at least 10 Q3, and none (NULL) with fewer than 20 such customers.
FENCE_SQL = """
SELECT CASE WHEN n >= 20 AND Q1(q) > 0 THEN greatest(Q3(q) * power(Q3(q) / Q1(q), 3), 10 * Q3(q)) END AS fence,
       n, Q1(q) AS q1, Q3(q) AS q3
FROM (SELECT count(*) AS n, QUARTILES(mean_day_value) AS q FROM rfm WHERE first_day <= $cal AND mean_day_value > 0)
"""

#: The extreme purchase days (above $fence) up to $obs of the table's customers whose largest day is above it.
EXTREME_SQL = """
SELECT customer_id, date AS day, CAST(sum(CAST(amount AS DECIMAL(38, 10))) AS DOUBLE) AS value
FROM tx
WHERE date <= $obs AND customer_id IN (SELECT customer_id FROM rfm WHERE first_day <= $cal AND max_spend > $fence)
GROUP BY customer_id, date
HAVING sum(CAST(amount AS DECIMAL(38, 10))) > $fence
ORDER BY value DESC, customer_id, day
"""

#: The calibration cohort by day, for tracking plots: every (customer, purchase day) up to $obs of the
#: customers whose first purchase is on or before $cal.
COHORT_SQL = """
WITH d AS (SELECT DISTINCT customer_id, date AS day FROM tx WHERE date <= $obs),
firsts AS (SELECT customer_id, min(day) AS first_day FROM d GROUP BY customer_id HAVING min(day) <= $cal)
SELECT d.customer_id, d.day, f.first_day FROM d JOIN firsts f ON d.customer_id = f.customer_id
"""

#: Purchase periods for the discrete-time table: one row per customer and period index up to $end (the last
#: day of the last complete period). PERIOD(date) is rendered per time unit by :func:`_period_expr`.
PERIODS_SQL = """
SELECT customer_id, PERIOD(date) AS period, count(*) AS n_rows
FROM tx WHERE date <= $end
GROUP BY customer_id, PERIOD(date)
"""

#: The discrete-time table over ``periods``: $cal_period and $end_period are period indexes.
DISCRETE_SQL = """
WITH per_customer AS (
    SELECT customer_id, min(period) AS birth,
           count(*) FILTER (WHERE period <= $cal_period) AS cal_periods,
           max(period) FILTER (WHERE period <= $cal_period) AS last_period,
           count(*) FILTER (WHERE period > $cal_period) AS holdout_frequency,
           sum(n_rows) AS n_rows
    FROM periods GROUP BY customer_id
)
SELECT customer_id, birth,
       cal_periods - 1 AS frequency,
       CASE WHEN cal_periods > 1 THEN last_period - birth ELSE 0 END AS recency,
       $cal_period - birth AS n_periods,
       holdout_frequency,
       $end_period - $cal_period AS holdout_n_periods,
       n_rows
FROM per_customer
"""

_PERIOD_EXPR = {
    "D": "DAYS_BETWEEN(DATE '1970-01-01', {0})",
    # ISO weeks, Monday to Sunday (1970-01-05 was a Monday)
    "W": "CAST(floor(DAYS_BETWEEN(DATE '1970-01-05', {0}) / 7.0) AS BIGINT)",
    "M": "(year({0}) * 12 + month({0}) - 1)",
    "Y": "year({0})",
}


def render_sql(sql: str, dialect: str = "duckdb", *, period: str | None = None, cap: bool = False) -> str:
    """One of this module's SQL definitions written for ``dialect`` (``"duckdb"`` or ``"spark"``).

    ``DAYS_BETWEEN(a, b)`` (days from a to b), ``QUARTILES(x)`` (exact, linear interpolation) and the
    parameter marker ``$name`` (Spark: ``:name``, for ``spark.sql(text, args=...)``) are rendered per engine;
    ``PERIOD(date)`` (the period index of :data:`PERIODS_SQL`) for the time unit ``period``; ``CAPPED(x)`` is
    ``x``, or with ``cap`` ``x`` capped at the parameter ``$cap`` (as DECIMAL(38, 10)).
    """
    d = DIALECTS[dialect]
    capped = r"CASE WHEN \1 > $cap THEN CAST($cap AS DECIMAL(38, 10)) ELSE \1 END" if cap else r"\1"
    sql = re.sub(r"CAPPED\((\w+)\)", capped, sql)
    if period is not None:
        sql = re.sub(r"PERIOD\(([^()]+)\)", lambda m: _PERIOD_EXPR[period].format(m[1]), sql)
    sql = re.sub(
        r"DAYS_BETWEEN\(([^,()]+(?:\([^()]*\))?),\s*([^,()]+(?:\([^()]*\))?)\)",
        lambda m: d["days_between"].format(m[1].strip(), m[2].strip()),
        sql,
    )
    sql = re.sub(r"QUARTILES\(((?:[^()]|\([^()]*\))+)\)", lambda m: d["quartiles"].format(m[1].strip()), sql)
    sql = re.sub(r"\bQ([13])\((\w+)\)", lambda m: d["q" + m[1]].format(m[2]), sql)
    if d["param"] != "$":
        sql = re.sub(r"\$(\w+)", lambda m: d["param"] + m[1], sql)
    return sql


# --- Helpers ------------------------------------------------------------------------------------------------


def _run(
    con: Any, sql: str, params: dict[str, Any], *, prefix: str = "", suffix: str = "", period: str | None = None,
    cap: bool = False,
) -> Any:
    """Execute a definition, rendered for the connection's dialect (``con.dialect``, DuckDB by default), with the
    parameters it uses (DuckDB refuses others)."""
    dialect = getattr(con, "dialect", "duckdb")
    text = render_sql(sql, dialect, period=period, cap=cap)
    used = set(re.findall(re.escape(DIALECTS[dialect]["param"]) + r"(\w+)", text))
    return con.execute(prefix + text + suffix, {k: v for k, v in params.items() if k in used})

#: Whether a clean typed log is summarised by the sort in numpy (:mod:`clvforecast._fastrfm`; the same table).
_FAST = True

_DTYPES = {"frequency": "int64", "holdout_frequency": "int64"}
_EXTREME_LIST_MAX = 1000


def _cutoffs(
    log: Any, calibration_end: Any, observation_end: Any
) -> tuple[dt.date | None, dt.date | None]:
    fmt = log.date_format
    obs = _to_date(observation_end, "observation_end", fmt) if observation_end is not None else None
    cal = _to_date(calibration_end, "calibration_end", fmt) if calibration_end is not None else None
    if obs is not None and cal is not None and obs < cal:
        raise ValueError(f"observation_end ({obs}) is before calibration_end ({cal}); swap them?")
    return cal, obs


def _warn_after_last(
    first: dt.date | None, last: dt.date | None, obs: dt.date, given: bool, stacklevel: int
) -> None:
    """An observation end after the last transaction: warn with the gap (T would count days without data)."""
    if not given or last is None or first is None or obs <= last:
        return
    gap = (obs - last).days
    if gap <= max(1, 0.01 * (obs - first).days):
        return
    warnings.warn(
        f"observation_end={obs} is {gap:,} days after the last transaction ({last}): T and the holdout count "
        f"{gap:,} days in which nobody could have bought anything. Pass observation_end={last.isoformat()!r} "
        "unless the log really covers those days",
        DataQualityWarning,
        stacklevel=stacklevel + 1,
    )


def _extremes(
    prep: Prepared, obs: dt.date, cal: dt.date
) -> tuple[float | None, list[tuple[Any, dt.date, float]]]:
    """The fence (None when the base is too small) and the extreme purchase days (customer, day, value)."""
    fence = _run(prep.con, FENCE_SQL, {"cal": cal}).fetchall()[0][0]
    if fence is None:
        return None, []
    fence = float(fence)
    any_above = prep.con.execute(
        "SELECT count(*) FROM rfm WHERE first_day <= $cal AND max_spend > $fence", {"cal": cal, "fence": fence}
    ).fetchall()[0][0]
    if not any_above:
        return fence, []
    return fence, [(r[0], r[1], float(r[2])) for r in _run(
        prep.con, EXTREME_SQL, {"obs": obs, "cal": cal, "fence": fence}
    ).fetchall()]


def _extreme_entry(
    fence: float, rows: list[tuple[Any, dt.date, float]], cal: dt.date, capped: bool, currency: bool
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    listed = [
        {"customer_id": _plain(r[0]), "date": r[1].isoformat(), "value": r[2],
         "period": "calibration" if r[1] <= cal else "holdout"}
        for r in rows[:_EXTREME_LIST_MAX]
    ]  # fmt: skip
    removed = sum(r[2] - fence for r in rows if r[1] <= cal) if capped else None
    more = f" (the {_EXTREME_LIST_MAX:,} largest are listed)" if len(rows) > _EXTREME_LIST_MAX else ""
    note = (
        f"{_plural(len(rows), 'purchase day')} worth more than {fence:,.2f} (the fence: Q3 + 3 IQR, on the log scale, of "
        f"the customers' mean purchase-day value), listed in attrs['extreme_orders']{more}; "
        + (
            f"capped at the fence in monetary_value (extreme='cap'), {removed:,.2f} less spend for the spend model"
            if capped
            else "kept as they are (pass extreme='cap' to cap the spend the spend model sees)"
        )
    )
    entry = _entry("extreme_orders", 0, removed if currency else None, len({r[0] for r in rows}), note)
    return listed, entry


def _plain(value: Any) -> Any:
    """A JSON-able id (numpy integers to int)."""
    return value.item() if hasattr(value, "item") else value


def _arguments(
    source: Any, calibration_end: Any, observation_end: Any, holdout: bool, read_options: dict[str, Any], where: str
) -> tuple[Any, dt.date | None, dt.date | None]:
    """The source description and the cutoffs of a table, checked (shared by every engine)."""
    log = as_log(source, where=where, **read_options)
    cal, obs = _cutoffs(log, calibration_end, observation_end)
    if holdout and cal is not None and obs is not None and cal == obs:
        raise DataValidationError(
            f"calibration_end and observation_end are both {cal}: the holdout holds no transactions; pass a "
            "later observation_end (or an earlier calibration_end)"
        )
    return log, cal, obs


def _fetch_pandas(con: Any, sql: str, params: dict[str, Any]) -> tuple[pd.DataFrame, bool]:
    """The final table on DuckDB: a pandas DataFrame sorted by customer, and whether it is empty."""
    table = con.execute(sql + " ORDER BY 1", params).df()
    return table, table.empty


def _summarise(
    source: Any,
    *,
    calibration_end: Any,
    observation_end: Any,
    time_unit: str,
    holdout: bool,
    read_options: dict[str, Any],
    where: str,
) -> pd.DataFrame:
    unit_code = check_time_unit(time_unit)
    log, cal, obs = _arguments(source, calibration_end, observation_end, holdout, read_options, where)
    fast = (_fastrfm.summarise(log, cal=cal, obs=obs, unit_code=unit_code, holdout=holdout, stacklevel=4)
            if _FAST else None)  # fmt: skip
    if fast is not None:
        table, attrs = fast
        table.attrs = attrs
        return table
    with open_transactions(log, observation_end=obs, stacklevel=3, where=where) as prep:
        table, attrs = _build(
            prep, log, cal=cal, obs=obs, unit_code=unit_code, holdout=holdout, stacklevel=4, fetch=_fetch_pandas
        )
    table = table.set_index("customer_id").astype({c: t for c, t in _DTYPES.items() if c in table.columns})
    table.attrs = attrs
    return table


def _build(
    prep: Prepared,
    log: Any,
    *,
    cal: dt.date | None,
    obs: dt.date | None,
    unit_code: str,
    holdout: bool,
    stacklevel: int,
    fetch: Any,
) -> tuple[Any, dict[str, Any]]:
    """The RFM table and its attrs from the clean transactions ``tx`` of ``prep``, on any engine.

    Runs this module's SQL on ``prep.con`` (rendered for its ``dialect``); ``fetch(con, sql, params) -> (table,
    empty)`` gives the final table in the engine's form (DuckDB: a pandas DataFrame, sorted; Spark: a cached
    Spark DataFrame). ``stacklevel`` places warnings (at the caller of the public function).
    """
    unit = days_per(unit_code)
    columns = ["customer_id"] + RFM_COLUMNS + (HOLDOUT_COLUMNS if holdout else [])
    if not log.has_amount:
        columns = [c for c in columns if c not in _MONEY_COLUMNS]
    given = obs is not None
    if obs is None:  # rfm_summary without observation_end: up to the last regular transaction
        obs = prep.default_end
    if cal is None:
        cal = obs
    assert obs is not None and cal is not None
    _warn_after_last(prep.first_date, prep.last_date, obs, given, stacklevel=stacklevel)
    con = prep.con
    params = {"cal": cal, "obs": obs, "unit": unit}
    # only the columns used: DuckDB leaves out the aggregates nobody selects (no holdout ones in a summary;
    # a summary's rows are counted by reading, a holdout table needs the rows of the new customers)
    kept = [*columns, "first_day"]
    if holdout:
        kept += ["n_rows"]  # the holdout columns are among ``columns`` already
        if log.has_amount:
            kept += ["holdout_spend_exact"]  # DECIMAL: the new customers' spend summed exactly
    if log.has_amount:
        kept += ["max_spend", "mean_day_value"]
    pruned = (f"CREATE TEMP TABLE rfm AS SELECT {', '.join(kept)} FROM (", ")")
    _run(con, RFM_SQL, params, prefix=pruned[0], suffix=pruned[1])
    n_late = late_rows = holdout_days = 0
    late_spend = None
    if holdout:
        # summed exactly: the same total whatever the order in which the engine adds the customers
        late_value = _exact_sum("holdout_spend_exact", "first_day > $cal") if log.has_amount else "NULL"
        row = con.execute(  # a customer first seen after the calibration end has only holdout days
            f"""SELECT count(*) FILTER (WHERE first_day > $cal), sum(n_rows) FILTER (WHERE first_day > $cal),
                       {late_value}, sum(n_rows), sum(holdout_frequency)
                FROM rfm""",
            {"cal": cal},
        ).fetchall()[0]
        n_late, late_rows, late_spend = int(row[0]), int(row[1] or 0), row[2]
        rows_within, holdout_days = int(row[3] or 0), int(row[4] or 0)
        n_after = prep.n_tx - rows_within
        after: tuple[int, Any] | None = None  # counted below only when there are such rows
    elif given and prep.order_column is None:
        after = (prep.n_after, prep.value_after)  # counted while reading
        n_after = after[0]
    else:
        after = prep.after(obs) if obs < (prep.last_date or obs) else (0, None)
        n_after = after[0]
    fence, extreme_days = _extremes(prep, obs, cal) if log.has_amount else (None, [])
    capped = log.extreme == "cap" and bool(extreme_days)
    if capped:  # a second pass with the cap: only when asked for and needed
        con.execute("DROP TABLE rfm")
        _run(con, RFM_SQL, {**params, "cap": fence}, prefix=pruned[0], suffix=pruned[1], cap=True)
    if holdout and holdout_days == 0:
        raise _no_holdout_error(cal, obs, prep.last_date)
    selected = ", ".join(columns)
    table, empty = fetch(con, f"SELECT {selected} FROM rfm WHERE first_day <= $cal", {"cal": cal})
    if empty:
        raise _empty_error(cal, prep.first_date)
    value_after: float | None = None
    if n_after:
        if after is None:
            after = ((prep.n_after, prep.value_after) if given and prep.order_column is None
                     and prep.n_after == n_after else prep.after(obs))
        n_after, value_after = after
    attrs = _attrs(
        prep.ledger, prep.dropped, prep.n_tx, log, cal=cal, obs=obs, unit_code=unit_code, holdout=holdout,
        after=(n_after, value_after), late=(n_late, late_rows, late_spend), fence=fence, extreme_days=extreme_days,
        capped=capped,
    )
    return table, attrs


def _no_holdout_error(cal: dt.date, obs: dt.date, last: dt.date | None) -> DataValidationError:
    return DataValidationError(
        f"the holdout holds no transactions ({cal + dt.timedelta(days=1)} to {obs}; the last transaction "
        f"is dated {last}); pass an earlier calibration_end or a later observation_end"
    )


def _empty_error(cal: dt.date, first: dt.date | None) -> DataValidationError:
    return DataValidationError(
        f"no customer made a purchase on or before {cal} (the first valid transaction is dated "
        f"{first}); the table would be empty: check the dates"
    )


def _attrs(
    ledger_of: Any,
    dropped: dict[str, int],
    n_tx: int,
    log: Any,
    *,
    cal: dt.date,
    obs: dt.date,
    unit_code: str,
    holdout: bool,
    after: tuple[int, float | None],
    late: tuple[int, int, Any],
    fence: float | None,
    extreme_days: list[tuple[Any, dt.date, float]],
    capped: bool,
) -> dict[str, Any]:
    """A table's attrs and ledger (every engine): ``ledger_of(rows_used, extra)`` continues the reading's
    ledger; ``n_tx`` rows reached the table's pass, ``after`` = (rows after ``obs``, their value), ``late`` =
    (customers new in the holdout, their rows, their spend)."""
    n_after, value_after = after
    n_late, late_rows, late_spend = late
    rows_used = n_tx - n_after - late_rows
    listed, extreme_entry = (
        _extreme_entry(fence, extreme_days, cal, capped, log.has_amount)
        if fence is not None and extreme_days else ([], None)
    )
    extra = []
    if n_after:
        extra.append(_entry("after_observation_end", n_after, value_after if log.has_amount else None,
                            note=f"after {obs}"))  # fmt: skip
    if n_late:
        extra.append(
            _entry("new_in_holdout", late_rows, float(late_spend) if log.has_amount and late_spend is not None
                   else None, n_late,
                   f"their first purchase is after the calibration end ({cal}): the models cannot score them")
        )  # fmt: skip
    if extreme_entry:
        extra.append(extreme_entry)
    ledger = ledger_of(rows_used, extra)
    attrs: dict[str, Any] = {
        "time_unit": unit_code,
        "observation_end": obs.isoformat(),
        "n_rows_read": ledger["rows_read"],
        "dropped": dict(dropped),
        "excluded_after_observation_end": n_after,
    }
    if holdout:
        attrs["calibration_end"] = cal.isoformat()
        attrs["holdout_duration"] = (obs - cal).days / days_per(unit_code)
        attrs["excluded_new_in_holdout"] = n_late
    attrs["ledger"] = ledger
    attrs["extreme_orders"] = listed
    return attrs


# --- Public -------------------------------------------------------------------------------------------------


def rfm_summary(
    transactions: Any, *, observation_end: Any = None, time_unit: str = "D", **read_options: Any
) -> pd.DataFrame:
    """One row per customer: ``frequency``, ``recency``, ``T``, ``monetary_value`` up to ``observation_end``.

    Parameters
    ----------
    transactions:
        A DataFrame (not modified), a CSV/Parquet path or a :class:`~clvforecast.TransactionLog`, read exactly
        as :func:`~clvforecast.read_transactions` reads it (a DataFrame from ``read_transactions`` continues its
        ledger).
    observation_end:
        End of the observation period, inclusive (a date, or a string such as ``"1998-06-30"``; text is read
        with ``date_format`` when given). Transactions after it are excluded and counted in the ledger.
        Defaults to the date of the last valid transaction (leaving out dates in the future or far beyond the
        rest, with a warning).
    time_unit:
        ``"D"``, ``"W"``, ``"M"`` or ``"Y"``: the unit of ``recency`` and ``T`` (7 days per ``W``, 365.25/12
        per ``M``, 365.25 per ``Y``).
    **read_options:
        The options of :class:`~clvforecast.TransactionLog` (``customer_id``, ``date``, ``amount``; ``amount=None``
        for frequency-only data, which leaves out ``monetary_value``; ``price``, ``returns``, ``extreme``, ...).

    Returns
    -------
    DataFrame indexed by ``customer_id`` (sorted), columns ``frequency`` (int64, repeat transaction days),
    ``recency`` and ``T`` (float, in ``time_unit``), ``monetary_value`` (float, currency units per repeat
    transaction day; 0 when ``frequency`` is 0). ``attrs``: ``time_unit``, ``observation_end`` (ISO date),
    ``ledger`` (every row read accounted for), ``extreme_orders`` (list of ``{customer_id, date, value,
    period}``), and for compatibility ``n_rows_read``, ``dropped`` (rows dropped per reason while reading) and
    ``excluded_after_observation_end`` (rows).

    Examples
    --------
    >>> import clvforecast as cf
    >>> rfm = cf.rfm_summary(cf.load_cdnow(), observation_end="1997-09-30", time_unit="W")
    >>> rfm.loc[1, ["frequency", "recency", "T"]].round(2).tolist()
    [2.0, 30.43, 38.86]
    """
    return _summarise(
        transactions, calibration_end=None, observation_end=observation_end, time_unit=time_unit,
        holdout=False, read_options=read_options, where="rfm_summary",
    )


def calibration_holdout(
    transactions: Any,
    *,
    calibration_end: Any,
    observation_end: Any,
    time_unit: str = "D",
    **read_options: Any,
) -> pd.DataFrame:
    """Calibration RFM columns plus what each customer did in the holdout period.

    The calibration period runs to ``calibration_end`` (inclusive), the holdout from the day after to
    ``observation_end`` (inclusive). ``frequency``, ``recency``, ``T`` and ``monetary_value`` are those of
    :func:`rfm_summary` at ``calibration_end``; added are ``holdout_frequency`` (int64, transaction days in
    the holdout), ``holdout_spend`` (total spend in the holdout, currency units) and
    ``holdout_monetary_value`` (mean spend per holdout transaction day, 0 if none). Source, column and
    read options are those of :func:`rfm_summary`. A holdout without any transaction is refused.

    Customers whose first purchase falls after ``calibration_end`` are not in the table (the models cannot
    score them); their number is in ``attrs["excluded_new_in_holdout"]`` and, with their rows, in the ledger.
    ``attrs["holdout_duration"]`` is the holdout length in ``time_unit`` (273 days = 39 weeks for CDNOW); the
    other attrs are those of :func:`rfm_summary` plus ``calibration_end``.

    Examples
    --------
    >>> import clvforecast as cf
    >>> cal = cf.calibration_holdout(cf.load_cdnow(), calibration_end="1997-09-30",
    ...                              observation_end="1998-06-30", time_unit="W")
    >>> int(cal["frequency"].sum()), int(cal["holdout_frequency"].sum()), cal.attrs["holdout_duration"]
    (2457, 1882, 39.0)
    """
    if calibration_end is None or observation_end is None:
        raise ValueError("calibration_holdout needs both calibration_end and observation_end (dates)")
    return _summarise(
        transactions, calibration_end=calibration_end, observation_end=observation_end, time_unit=time_unit,
        holdout=True, read_options=read_options, where="calibration_holdout",
    )


def extreme_orders(table: pd.DataFrame) -> pd.DataFrame:
    """The extreme purchase days of an RFM table (from its ``attrs``): ``customer_id``, ``date``, ``value``,
    ``period`` (``"calibration"`` or ``"holdout"``), largest first; empty when there are none."""
    rows = table.attrs.get("extreme_orders") or []
    out = pd.DataFrame(rows, columns=["customer_id", "date", "value", "period"])
    out["date"] = pd.to_datetime(out["date"])
    return out


def cohort_days(
    transactions: Any, *, calibration_end: Any, observation_end: Any, **read_options: Any
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The calibration cohort by day, from one DuckDB scan: ``(firsts, repeats)``.

    ``firsts``: customers by first-purchase day (columns ``day``, ``n``), for every customer whose first purchase
    is on or before ``calibration_end``; ``repeats``: their repeat transactions (purchase days after their first,
    up to ``observation_end``) by day. ``read_options`` are those of :func:`~clvforecast.read_transactions`.
    """
    log = as_log(transactions, where="cohort_days", **read_options)
    cal, obs = _cutoffs(log, calibration_end, observation_end)
    with open_transactions(log, observation_end=obs, warn=False) as prep:
        _run(prep.con, COHORT_SQL, {"cal": cal, "obs": obs}, prefix="CREATE TEMP TABLE cohort AS ")
        firsts = prep.con.execute(
            "SELECT first_day AS day, count(*) AS n FROM (SELECT DISTINCT customer_id, first_day FROM cohort) "
            "GROUP BY 1 ORDER BY 1"
        ).df()
        repeats = prep.con.execute(
            "SELECT day, count(*) AS n FROM cohort WHERE day > first_day GROUP BY 1 ORDER BY 1"
        ).df()
    return firsts, repeats


# --- Discrete time (BG/BB) ----------------------------------------------------------------------------------


def _period_index(day: dt.date, unit: str) -> int:
    if unit == "D":
        return (day - dt.date(1970, 1, 1)).days
    if unit == "W":
        return (day - dt.date(1970, 1, 5)).days // 7
    if unit == "M":
        return day.year * 12 + day.month - 1
    return day.year


def _period_end(index: int, unit: str) -> dt.date:
    """The last day of period ``index``."""
    if unit == "D":
        return dt.date(1970, 1, 1) + dt.timedelta(days=index)
    if unit == "W":
        return dt.date(1970, 1, 5) + dt.timedelta(days=7 * index + 6)
    if unit == "M":
        year, month = divmod(index + 1, 12)
        return dt.date(year, month + 1, 1) - dt.timedelta(days=1)
    return dt.date(index, 12, 31)


def _last_complete(day: dt.date, unit: str) -> int:
    """The last period that ends on or before ``day``."""
    index = _period_index(day, unit)
    return index if _period_end(index, unit) == day else index - 1


def discrete_summary(
    transactions: Any,
    *,
    period: str,
    observation_end: Any = None,
    calibration_end: Any = None,
    **read_options: Any,
) -> pd.DataFrame:
    """A discrete-time table for the BG/BB model: purchase opportunities are calendar periods.

    Periods are calendar periods of ``period``: ``"D"`` days, ``"W"`` ISO weeks (Monday to Sunday), ``"M"``
    calendar months, ``"Y"`` calendar years. A customer *purchases in* a period when they have at least one
    transaction dated in it. The customer's first purchase period (the *birth* period) is not an opportunity:
    the opportunities are the periods after it, up to the last **complete** period on or before
    ``observation_end`` (the period ending on ``observation_end`` counts, a period cut by it does not: its rows
    are left out and counted in the ledger as ``incomplete_period``).

    Columns (int64): ``frequency`` (periods after the birth period with a purchase), ``recency`` (the index
    1..n_periods of the last such period, 0 when none), ``n_periods`` (opportunities after the birth period up
    to the end; 0 for a customer born in the last period). With ``calibration_end`` the calibration columns end
    at the last complete period on or before it, and ``holdout_frequency`` (holdout periods with a purchase) and
    ``holdout_n_periods`` (periods from there to the end) are added; customers born later are left out (counted
    as new in the holdout). ``attrs``: ``time_unit`` (the period code), ``observation_end`` and
    ``calibration_end`` (the last days of the last periods used), ``ledger``.

    ``observation_end`` defaults to the last transaction (leaving out dates in the future or far beyond the
    rest); ``read_options`` are those of :func:`~clvforecast.read_transactions` (amounts are not needed).
    """
    unit = check_time_unit(period)
    log = as_log(transactions, where="discrete_summary", **read_options)
    cal_given, obs_given = _cutoffs(log, calibration_end, observation_end)
    with open_transactions(log, observation_end=obs_given, stacklevel=2, where="discrete_summary") as prep:
        obs = obs_given if obs_given is not None else prep.default_end
        assert obs is not None
        _warn_after_last(prep.first_date, prep.last_date, obs, obs_given is not None, stacklevel=2)
        end_period = _last_complete(obs, unit)
        cal_period = _last_complete(cal_given, unit) if cal_given is not None else end_period
        if cal_given is not None and cal_period >= end_period:
            raise DataValidationError(
                f"calibration_end={cal_given} and observation_end={obs} leave no whole {unit} period between "
                "them: the holdout holds no transactions; pass a later observation_end"
            )
        end_day = _period_end(end_period, unit)
        con = prep.con
        _run(con, PERIODS_SQL, {"end": end_day}, prefix="CREATE TEMP TABLE periods AS ", period=unit)
        params = {"cal_period": cal_period, "end_period": end_period}
        _run(con, DISCRETE_SQL, params, prefix="CREATE TEMP TABLE discrete AS ")
        row = con.execute(
            """SELECT count(*) FILTER (WHERE birth > $c), sum(n_rows) FILTER (WHERE birth > $c), sum(n_rows),
                      sum(n_rows) FILTER (WHERE birth <= $c), sum(holdout_frequency)
               FROM discrete""",
            {"c": cal_period},
        ).fetchall()[0]
        assert row is not None
        n_late, late_rows = int(row[0]), int(row[1] or 0)
        rows_within, rows_used, holdout_freq = int(row[2] or 0), int(row[3] or 0), int(row[4] or 0)
        if cal_given is not None and holdout_freq == 0:
            raise DataValidationError(
                f"the holdout holds no transactions (the periods after {_period_end(cal_period, unit)} to "
                f"{end_day}); pass an earlier calibration_end or a later observation_end"
            )
        columns = ["customer_id", *DISCRETE_COLUMNS]
        if cal_given is not None:
            columns += ["holdout_frequency", "holdout_n_periods"]
        table = con.execute(
            f"SELECT {', '.join(columns)} FROM discrete WHERE birth <= $c ORDER BY 1", {"c": cal_period}
        ).df()
        if table.empty:
            raise DataValidationError(
                f"no customer made a purchase in a complete {unit} period on or before "
                f"{_period_end(cal_period, unit)}; the table would be empty: check the dates and the period"
            )
        n_after, value_after = prep.after(obs)
        n_incomplete = prep.n_tx - rows_within - n_after
        extra = []
        if n_after:
            extra.append(_entry("after_observation_end", n_after, value_after, note=f"after {obs}"))
        if n_incomplete:
            extra.append(_entry("incomplete_period", n_incomplete, None, None,
                                f"dated {end_day + dt.timedelta(days=1)} to {obs}, a {unit} period that "
                                "observation_end cuts"))  # fmt: skip
        if n_late:
            extra.append(_entry("new_in_holdout", late_rows, None, n_late,
                                "their first purchase period is after the calibration periods"))  # fmt: skip
        ledger = prep.ledger(rows_used, extra)
    table = table.set_index("customer_id").astype("int64")
    table.attrs = {
        "time_unit": unit,
        "observation_end": end_day.isoformat(),
        "ledger": ledger,
        "n_rows_read": ledger["rows_read"],
        "dropped": dict(prep.dropped),
    }
    if cal_given is not None:
        table.attrs["calibration_end"] = _period_end(cal_period, unit).isoformat()
    return table
