"""Recency/frequency/monetary (RFM) tables from transaction logs, computed by DuckDB.

Definitions (Fader, Hardie & Lee 2005; the same as lifetimes' ``summary_data_from_transaction_data`` with
``freq="D"``):

* Day resolution: all purchases of a customer on one calendar day are one transaction (amounts summed).
* ``frequency``: number of *repeat* transaction days (transaction days minus one).
* ``recency``: time from the first to the last transaction day (0 when frequency is 0).
* ``T``: time from the first transaction day to the end of the (calibration) period.
* ``monetary_value``: mean spend per repeat transaction day (the first day is excluded; 0 when frequency
  is 0).

Durations are measured in whole days and divided by the days in ``time_unit`` (D=1, W=7, M=365.25/12,
Y=365.25); the unit is kept in ``attrs["time_unit"]``. Both functions accept everything
:func:`~clvforecast.io.read_transactions` accepts and give identical tables for a DataFrame, a CSV or a
Parquet file holding the same data. One SQL statement (:data:`_RFM_SQL`) computes both.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .exceptions import DataValidationError
from .io import NegativeAmounts, OnInvalid, Source, ZeroAmounts, _to_date, open_transactions
from .units import check_time_unit, days_per

__all__ = ["HOLDOUT_COLUMNS", "RFM_COLUMNS", "calibration_holdout", "rfm_summary"]

RFM_COLUMNS = ["frequency", "recency", "T", "monetary_value"]
HOLDOUT_COLUMNS = ["holdout_frequency", "holdout_spend", "holdout_monetary_value"]
_MONEY_COLUMNS = {"monetary_value", "holdout_spend", "holdout_monetary_value"}

# The one statement behind both tables, over the clean view ``tx`` (see clvforecast.io.open_transactions).
# Parameters: $cal (calibration end), $obs (observation end; equal to $cal for a plain summary), both DATE
# and inclusive, and $unit (days per time unit). Customers whose first purchase is after $cal have
# first_day > $cal. Unused output columns cost nothing: DuckDB drops the aggregates nobody selects.
# Money is summed as DECIMAL(38, 10) (amounts are below 1e15, see clvforecast.io): exact, so the result does
# not depend on the order in which rows arrive (threads, source type), and currency sums carry no rounding.
_RFM_SQL = """
WITH days AS (
    SELECT customer_id, date AS day, sum(CAST(amount AS DECIMAL(38, 10))) AS spend
    FROM tx WHERE date <= $obs
    GROUP BY customer_id, date
), per_customer AS (
    SELECT customer_id,
           min(day) AS first_day,
           max(day) FILTER (WHERE day <= $cal) AS last_day,
           count(*) FILTER (WHERE day <= $cal) AS cal_days,
           sum(spend) FILTER (WHERE day <= $cal) - arg_min(spend, day) AS repeat_spend,
           count(*) FILTER (WHERE day > $cal) AS holdout_frequency,
           coalesce(sum(spend) FILTER (WHERE day > $cal), 0) AS holdout_spend
    FROM days GROUP BY customer_id
)
SELECT customer_id,
       first_day,
       cal_days - 1 AS frequency,
       date_diff('day', first_day, last_day) / $unit AS recency,
       date_diff('day', first_day, $cal) / $unit AS T,
       CASE WHEN cal_days > 1 THEN CAST(repeat_spend AS DOUBLE) / (cal_days - 1) ELSE 0.0 END
           AS monetary_value,
       holdout_frequency,
       CAST(holdout_spend AS DOUBLE) AS holdout_spend,
       CASE WHEN holdout_frequency > 0 THEN CAST(holdout_spend AS DOUBLE) / holdout_frequency ELSE 0.0 END
           AS holdout_monetary_value
FROM per_customer
"""

_DTYPES = {"frequency": "int64", "holdout_frequency": "int64"}


# The calibration cohort by day, for tracking plots. Parameters as for _RFM_SQL. Only customers whose first
# purchase is on or before $cal count; a repeat transaction is a purchase day after the customer's first.
_COHORT_SQL = """
CREATE TEMP TABLE cohort AS
WITH days AS (SELECT DISTINCT customer_id, date AS day FROM tx WHERE date <= $obs),
firsts AS (SELECT customer_id, min(day) AS first_day FROM days GROUP BY customer_id HAVING min(day) <= $cal)
SELECT d.customer_id, d.day, f.first_day FROM days d JOIN firsts f USING (customer_id)
"""


def cohort_days(
    transactions: Source, *, calibration_end: Any, observation_end: Any, **read_kwargs: Any
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The calibration cohort by day, from one DuckDB scan: ``(firsts, repeats)``.

    ``firsts``: customers by first-purchase day (columns ``day``, ``n``), for every customer whose first purchase
    is on or before ``calibration_end``; ``repeats``: their repeat transactions (purchase days after their first,
    up to ``observation_end``) by day. ``read_kwargs`` are those of :func:`~clvforecast.read_transactions`.
    """
    cal, obs = _to_date(calibration_end, "calibration_end"), _to_date(observation_end, "observation_end")
    with open_transactions(transactions, observation_end=obs, warn=False, **read_kwargs) as prep:
        prep.con.execute(_COHORT_SQL, {"cal": cal, "obs": obs})
        firsts = prep.con.execute(
            "SELECT first_day AS day, count(*) AS n FROM (SELECT DISTINCT customer_id, first_day FROM cohort) "
            "GROUP BY 1 ORDER BY 1"
        ).df()
        repeats = prep.con.execute(
            "SELECT day, count(*) AS n FROM cohort WHERE day > first_day GROUP BY 1 ORDER BY 1"
        ).df()
    return firsts, repeats


def _summarise(
    source: Source,
    *,
    calibration_end: Any,
    observation_end: Any,
    time_unit: str,
    holdout: bool,
    read_kwargs: dict[str, Any],
) -> pd.DataFrame:
    unit_code = check_time_unit(time_unit)
    unit = days_per(unit_code)
    obs = _to_date(observation_end, "observation_end") if observation_end is not None else None
    cal = _to_date(calibration_end, "calibration_end") if calibration_end is not None else obs
    if obs is not None and cal is not None and obs < cal:
        raise ValueError(f"observation_end ({obs}) is before calibration_end ({cal}); swap them?")
    columns = ["customer_id"] + RFM_COLUMNS + (HOLDOUT_COLUMNS if holdout else [])
    if read_kwargs.get("amount", "amount") is None:
        columns = [c for c in columns if c not in _MONEY_COLUMNS]
    with open_transactions(source, observation_end=obs, stacklevel=3, **read_kwargs) as prep:
        if obs is None:  # rfm_summary without observation_end: up to the last valid transaction
            obs = cal = prep.last_date
        con, selected = prep.con, ", ".join(columns)
        con.execute(
            f"CREATE TEMP TABLE rfm AS SELECT {selected}, first_day FROM ({_RFM_SQL})",
            {"cal": cal, "obs": obs, "unit": unit},
        )
        # Customers whose first purchase falls after the calibration end (only possible with a holdout).
        late = con.execute("SELECT count(*) FROM rfm WHERE first_day > $cal", {"cal": cal}).fetchone()
        n_late = int(late[0]) if late else 0
        query = f"SELECT {selected} FROM rfm WHERE first_day <= $cal ORDER BY 1"
        table = con.execute(query, {"cal": cal}).df()
    if table.empty:
        raise DataValidationError(
            f"no customer made a purchase on or before {cal} (the first valid transaction is dated "
            f"{prep.first_date}); the table would be empty: check the dates"
        )
    table = table.set_index("customer_id").astype({c: t for c, t in _DTYPES.items() if c in table.columns})
    assert obs is not None and cal is not None
    attrs: dict[str, Any] = {
        "time_unit": unit_code,
        "observation_end": obs.isoformat(),
        "n_rows_read": prep.n_rows,
        "dropped": dict(prep.dropped),
        "excluded_after_observation_end": prep.n_after,
    }
    if holdout:
        attrs["calibration_end"] = cal.isoformat()
        attrs["holdout_duration"] = (obs - cal).days / unit
        attrs["excluded_new_in_holdout"] = n_late
    table.attrs = attrs
    return table


def rfm_summary(
    transactions: Source,
    *,
    observation_end: Any = None,
    time_unit: str = "D",
    customer_id: str = "customer_id",
    date: str = "date",
    amount: str | None = "amount",
    date_format: str | None = None,
    on_invalid: OnInvalid = "raise",
    zero_amounts: ZeroAmounts = "keep",
    negative_amounts: NegativeAmounts = None,
) -> pd.DataFrame:
    """One row per customer: ``frequency``, ``recency``, ``T``, ``monetary_value`` up to ``observation_end``.

    Parameters
    ----------
    transactions:
        A DataFrame (not modified) or a CSV/Parquet path, read exactly as
        :func:`~clvforecast.io.read_transactions` reads it: the column arguments (``customer_id``, ``date``,
        ``amount``; ``amount=None`` for frequency-only data, which leaves out ``monetary_value``) and the
        validation arguments (``date_format``, ``on_invalid``, ``zero_amounts``, ``negative_amounts``) are the
        same.
    observation_end:
        End of the observation period, inclusive (a date, or a string such as ``"1998-06-30"``).
        Transactions after it are excluded and counted in ``attrs["excluded_after_observation_end"]``.
        Defaults to the date of the last valid transaction.
    time_unit:
        ``"D"``, ``"W"``, ``"M"`` or ``"Y"``: the unit of ``recency`` and ``T`` (7 days per ``W``, 365.25/12
        per ``M``, 365.25 per ``Y``).

    Returns
    -------
    DataFrame indexed by ``customer_id`` (sorted), columns ``frequency`` (int64, repeat transaction days),
    ``recency`` and ``T`` (float, in ``time_unit``), ``monetary_value`` (float, currency units per repeat
    transaction day; 0 when ``frequency`` is 0). ``attrs``: ``time_unit``, ``observation_end`` (ISO date),
    ``n_rows_read``, ``dropped`` (rows dropped per reason) and ``excluded_after_observation_end`` (rows).

    Examples
    --------
    >>> import clvforecast as cf
    >>> rfm = cf.rfm_summary(cf.load_cdnow(), observation_end="1997-09-30", time_unit="W")
    >>> rfm.loc[1, ["frequency", "recency", "T"]].round(2).tolist()
    [2.0, 30.43, 38.86]
    """
    return _summarise(
        transactions,
        calibration_end=None,
        observation_end=observation_end,
        time_unit=time_unit,
        holdout=False,
        read_kwargs=dict(
            customer_id=customer_id,
            date=date,
            amount=amount,
            date_format=date_format,
            on_invalid=on_invalid,
            zero_amounts=zero_amounts,
            negative_amounts=negative_amounts,
        ),
    )


def calibration_holdout(
    transactions: Source,
    *,
    calibration_end: Any,
    observation_end: Any,
    time_unit: str = "D",
    customer_id: str = "customer_id",
    date: str = "date",
    amount: str | None = "amount",
    date_format: str | None = None,
    on_invalid: OnInvalid = "raise",
    zero_amounts: ZeroAmounts = "keep",
    negative_amounts: NegativeAmounts = None,
) -> pd.DataFrame:
    """Calibration RFM columns plus what each customer did in the holdout period.

    The calibration period runs to ``calibration_end`` (inclusive), the holdout from the day after to
    ``observation_end`` (inclusive). ``frequency``, ``recency``, ``T`` and ``monetary_value`` are those of
    :func:`rfm_summary` at ``calibration_end``; added are ``holdout_frequency`` (int64, transaction days in
    the holdout), ``holdout_spend`` (total spend in the holdout, currency units) and
    ``holdout_monetary_value`` (mean spend per holdout transaction day, 0 if none). Source, column and
    validation arguments are those of :func:`rfm_summary`.

    Customers whose first purchase falls after ``calibration_end`` are not in the table (the models cannot
    score them); their number is in ``attrs["excluded_new_in_holdout"]``. ``attrs["holdout_duration"]`` is
    the holdout length in ``time_unit`` (273 days = 39 weeks for CDNOW); the other attrs are those of
    :func:`rfm_summary` plus ``calibration_end``.

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
        transactions,
        calibration_end=calibration_end,
        observation_end=observation_end,
        time_unit=time_unit,
        holdout=True,
        read_kwargs=dict(
            customer_id=customer_id,
            date=date,
            amount=amount,
            date_format=date_format,
            on_invalid=on_invalid,
            zero_amounts=zero_amounts,
            negative_amounts=negative_amounts,
        ),
    )
