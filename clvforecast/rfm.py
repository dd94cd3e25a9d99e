"""Recency/frequency/monetary (RFM) tables from transaction logs, computed by DuckDB.

Definitions (Fader, Hardie & Lee 2005; the same as lifetimes' ``summary_data_from_transaction_data``):

* Day resolution: all purchases of a customer on one calendar day are one transaction (amounts summed).
* ``frequency``: number of *repeat* transaction days (transaction days minus one).
* ``recency``: time from the first to the last transaction day (0 when frequency is 0).
* ``T``: time from the first transaction day to the end of the (calibration) period.
* ``monetary_value``: mean spend per repeat transaction day (the first day is excluded; 0 when frequency is 0).

Durations are measured in days and divided by the days in ``time_unit`` (D=1, W=7, M=365.25/12, Y=365.25);
the unit is kept in ``attrs["time_unit"]``. Both functions accept everything
:func:`~clvforecast.io.read_transactions` accepts and give identical tables for a DataFrame, a CSV or a Parquet
file holding the same data. One SQL statement (:data:`_RFM_SQL`) computes both.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from .io import Source, _quote_literal, open_transactions
from .units import days_per

RFM_COLUMNS = ["frequency", "recency", "T", "monetary_value"]
HOLDOUT_COLUMNS = ["holdout_frequency", "holdout_spend", "holdout_monetary_value"]

# {cal} is the calibration end, {obs} the observation end (equal for a plain summary), {unit} days per unit.
_RFM_SQL = """
WITH days AS (
    SELECT customer_id, date AS day, sum(amount) AS spend
    FROM tx WHERE date <= {obs}
    GROUP BY customer_id, date
), per_customer AS (
    SELECT customer_id,
           min(day) FILTER (WHERE day <= {cal}) AS first_day,
           max(day) FILTER (WHERE day <= {cal}) AS last_day,
           count(*) FILTER (WHERE day <= {cal}) AS cal_days,
           sum(spend) FILTER (WHERE day <= {cal}) AS cal_spend,
           arg_min(spend, day) AS first_spend,
           count(*) FILTER (WHERE day > {cal}) AS holdout_frequency,
           coalesce(sum(spend) FILTER (WHERE day > {cal}), 0) AS holdout_spend
    FROM days GROUP BY customer_id
)
SELECT customer_id,
       cal_days - 1 AS frequency,
       date_diff('day', first_day, last_day) / {unit} AS recency,
       date_diff('day', first_day, {cal}) / {unit} AS T,
       CASE WHEN cal_days > 1 THEN (cal_spend - first_spend) / (cal_days - 1) ELSE 0.0 END AS monetary_value,
       holdout_frequency,
       holdout_spend,
       CASE WHEN holdout_frequency > 0 THEN holdout_spend / holdout_frequency ELSE 0.0 END AS holdout_monetary_value
FROM per_customer
ORDER BY customer_id
"""


def _to_date(value: Any, name: str) -> dt.date:
    if value is None:
        raise ValueError(f"{name} is required (a date such as '1997-09-30')")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name}={value!r} is not a date; give e.g. '1997-09-30'") from exc
    if pd.isna(ts):
        raise ValueError(f"{name} is missing; give a date such as '1997-09-30'")
    return ts.date()


def _summarise(
    source: Source, *, calibration_end: Any, observation_end: Any, time_unit: str, holdout: bool, read_kwargs: dict
) -> pd.DataFrame:
    unit = days_per(time_unit)
    cal, obs = _to_date(calibration_end, "calibration_end"), _to_date(observation_end, "observation_end")
    if obs < cal:
        raise ValueError(f"observation_end ({obs}) is before calibration_end ({cal})")
    prep = open_transactions(source, observation_end=obs, **read_kwargs)
    try:
        sql = _RFM_SQL.format(
            cal=f"DATE {_quote_literal(cal.isoformat())}", obs=f"DATE {_quote_literal(obs.isoformat())}", unit=unit
        )
        table = prep.con.execute(sql).df()
    finally:
        prep.close()
    late = table["frequency"].isna()  # customers whose first purchase is after calibration_end
    n_late = int(late.sum())
    table = table.loc[~late]
    if table.empty:
        raise ValueError(
            f"no customer made a purchase on or before {cal}: the table would be empty; check the dates"
        )
    table = table.set_index("customer_id")
    table["frequency"] = table["frequency"].astype("int64")
    table["holdout_frequency"] = table["holdout_frequency"].astype("int64")
    for c in ("recency", "T", "monetary_value", "holdout_spend", "holdout_monetary_value"):
        table[c] = table[c].astype("float64")
    cols = RFM_COLUMNS + (HOLDOUT_COLUMNS if holdout else [])
    if not read_kwargs.get("amount", "amount"):
        cols = [c for c in cols if c not in ("monetary_value", "holdout_spend", "holdout_monetary_value")]
    table = table[cols]
    attrs: dict[str, Any] = {
        "time_unit": time_unit.upper(),
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
    on_invalid: str = "raise",
    zero_amounts: str = "keep",
    negative_amounts: str | None = None,
) -> pd.DataFrame:
    """One row per customer: ``frequency``, ``recency``, ``T`` and ``monetary_value`` up to ``observation_end``.

    Parameters
    ----------
    transactions:
        A DataFrame or a CSV/Parquet path, read exactly as :func:`~clvforecast.io.read_transactions` reads it
        (the column and validation arguments are the same).
    observation_end:
        End of the observation period (inclusive). Transactions after it are excluded and counted in
        ``attrs["excluded_after_observation_end"]``. Defaults to the last transaction date.
    time_unit:
        ``"D"``, ``"W"``, ``"M"`` or ``"Y"``: the unit of ``recency`` and ``T``.

    Returns
    -------
    DataFrame indexed by ``customer_id`` (sorted), columns ``frequency`` (int), ``recency`` and ``T`` (in
    ``time_unit``), ``monetary_value`` (currency per repeat transaction day). ``attrs``: ``time_unit``,
    ``observation_end``, ``n_rows_read``, ``dropped`` (rows dropped per reason) and
    ``excluded_after_observation_end``.
    """
    kwargs = dict(customer_id=customer_id, date=date, amount=amount, date_format=date_format,
                  on_invalid=on_invalid, zero_amounts=zero_amounts, negative_amounts=negative_amounts)
    if observation_end is None:
        prep = open_transactions(transactions, **kwargs, warn=False)
        try:
            last = prep.con.execute("SELECT max(date) FROM tx").fetchone()
        finally:
            prep.close()
        observation_end = last[0] if last else None
    return _summarise(
        transactions, calibration_end=observation_end, observation_end=observation_end,
        time_unit=time_unit, holdout=False, read_kwargs=kwargs,
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
    on_invalid: str = "raise",
    zero_amounts: str = "keep",
    negative_amounts: str | None = None,
) -> pd.DataFrame:
    """Calibration RFM columns plus what each customer did in the holdout period.

    The calibration period runs to ``calibration_end`` (inclusive), the holdout from the day after to
    ``observation_end`` (inclusive). ``frequency``, ``recency``, ``T`` and ``monetary_value`` are those of
    :func:`rfm_summary` at ``calibration_end``; added are ``holdout_frequency`` (transaction days in the holdout),
    ``holdout_spend`` (total spend in the holdout) and ``holdout_monetary_value`` (mean spend per holdout
    transaction day, 0 if none).

    Customers whose first purchase falls after ``calibration_end`` are not in the table (the models cannot score
    them); their number is in ``attrs["excluded_new_in_holdout"]``. ``attrs["holdout_duration"]`` is the holdout
    length in ``time_unit``; the other attrs are those of :func:`rfm_summary` plus ``calibration_end``.
    """
    kwargs = dict(customer_id=customer_id, date=date, amount=amount, date_format=date_format,
                  on_invalid=on_invalid, zero_amounts=zero_amounts, negative_amounts=negative_amounts)
    return _summarise(
        transactions, calibration_end=calibration_end, observation_end=observation_end,
        time_unit=time_unit, holdout=True, read_kwargs=kwargs,
    )
