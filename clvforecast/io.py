"""Reading transaction logs: map columns, parse, validate, and account for every dropped row.

The work is done by DuckDB: a CSV or Parquet file is scanned by DuckDB directly (it is never loaded into pandas
first), a DataFrame is scanned in place. :func:`open_transactions` is the one place that turns a source into
the clean relation ``tx(customer_id, date DATE, amount DOUBLE[, quantity])`` that :mod:`clvforecast.rfm` builds
on; :func:`read_transactions` returns that relation as a pandas DataFrame.

Validation rules (each row is checked in this order and counted under the first rule it breaks):

``null_customer_id``
    the customer id is missing.
``unparseable_date``
    the date is missing or cannot be parsed (ISO dates and timestamps are understood without help; pass
    ``date_format``, a ``strftime`` pattern such as ``"%Y%m%d"`` or ``"%d/%m/%Y"``, for anything else).
``non_numeric_amount``
    the amount is missing or is not a number.
``negative_amount``
    the amount is below zero (a return or refund).
``zero_amount``
    the amount is exactly zero (a free or fully discounted purchase).

Policy. With ``on_invalid="raise"`` (the default) the first broken rule raises :class:`DataValidationError`
naming the column, the count of bad rows and up to three examples. With ``on_invalid="drop"`` the bad rows are
dropped, counted per reason in ``result.attrs["dropped"]``, and a :class:`DataQualityWarning` says so.
Amounts have their own policy because they are a modelling choice, not an error:

* ``zero_amounts="keep"`` (default): a zero-value purchase is still a purchase (the published CDNOW summary
  counts CDNOW's eight zero-dollar purchases as transactions). ``"drop"`` or ``"raise"`` otherwise.
* ``negative_amounts=None`` (default) follows ``on_invalid``. Returns are not purchases: the BG/NBD and
  Gamma-Gamma models need positive spend. Net returns against their purchases before calling, or ``"drop"``
  them (counted).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd

from .exceptions import DataQualityWarning, DataValidationError

Source = pd.DataFrame | str | os.PathLike

#: Reasons a row can be dropped, in the order the checks are applied.
REASONS: tuple[str, ...] = (
    "null_customer_id",
    "unparseable_date",
    "non_numeric_amount",
    "negative_amount",
    "zero_amount",
)

_CSV_SUFFIXES = (".csv", ".txt", ".tsv", ".csv.gz", ".tsv.gz", ".txt.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")


@dataclass
class Columns:
    """Names of the source's columns that hold each field."""

    customer_id: str = "customer_id"
    date: str = "date"
    amount: str | None = "amount"
    quantity: str | None = None


@dataclass
class Prepared:
    """A DuckDB connection holding the clean view ``tx`` and what validation counted."""

    con: duckdb.DuckDBPyConnection
    n_rows: int
    dropped: dict[str, int] = field(default_factory=dict)
    n_after: int = 0  # valid rows dated after ``observation_end`` (excluded by the caller's SQL)
    has_amount: bool = True
    has_quantity: bool = False

    def close(self) -> None:
        self.con.close()


def _quote_ident(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _source_kind(source: Source) -> str:
    if isinstance(source, pd.DataFrame):
        return "dataframe"
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source).lower()
        if name.endswith(_PARQUET_SUFFIXES):
            return "parquet"
        if name.endswith(_CSV_SUFFIXES):
            return "csv"
        raise DataValidationError(
            f"source {os.fspath(source)!r}: unknown file type; give a .csv, .tsv, .txt or .parquet file, or a DataFrame"
        )
    raise TypeError(f"source must be a pandas DataFrame or a path to a CSV or Parquet file; got {type(source).__name__}")


def _register_source(con: duckdb.DuckDBPyConnection, source: Source, cols: Columns) -> dict[str, str]:
    """Create the view ``raw`` over the source and return its column types (for the columns we need)."""
    kind = _source_kind(source)
    wanted = [c for c in (cols.customer_id, cols.date, cols.amount, cols.quantity) if c is not None]
    if kind == "dataframe":
        df: pd.DataFrame = source  # type: ignore[assignment]
        present = [str(c) for c in df.columns]
    else:
        path = Path(os.fspath(source))
        if not path.exists():
            raise FileNotFoundError(f"no such file: {os.fspath(source)!r}")
        lit = _quote_literal(os.fspath(path))
        if kind == "parquet":
            scan = f"read_parquet({lit})"
        else:
            scan = f"read_csv({lit}, header = true)"
        try:
            present = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()]
        except duckdb.Error as exc:
            raise DataValidationError(f"could not read {os.fspath(source)!r}: {exc}") from exc
    missing = [c for c in wanted if c not in present]
    if missing:
        shown = ", ".join(repr(c) for c in present[:30]) + (" ..." if len(present) > 30 else "")
        raise DataValidationError(
            f"column {missing[0]!r} not found"
            + (f" (also missing: {', '.join(repr(c) for c in missing[1:])})" if len(missing) > 1 else "")
            + f"; the source has columns {shown}. Pass the right name, e.g. customer_id='CustomerID'."
        )
    if kind == "dataframe":
        sub = df.loc[:, wanted]
        sub.columns = [str(c) for c in sub.columns]
        # DuckDB cannot scan object columns holding mixed Python types; make them strings (None stays missing).
        conv = {}
        for c in sub.columns:
            if sub[c].dtype == object:
                conv[c] = sub[c].map(lambda v: v if v is None or isinstance(v, str) or v != v else str(v))
                conv[c] = conv[c].astype("string")
        if conv:
            sub = sub.assign(**conv)
        con.register("raw_df", sub)
        con.execute("CREATE VIEW raw AS SELECT * FROM raw_df")
    elif kind == "parquet":
        con.execute(f"CREATE VIEW raw AS SELECT * FROM {scan}")
    else:
        # Read date and amount as text so that every bad value is ours to count and report.
        text_cols = [c for c in (cols.date, cols.amount) if c is not None]
        types = "{" + ", ".join(f"{_quote_literal(c)}: 'VARCHAR'" for c in text_cols) + "}"
        con.execute(f"CREATE VIEW raw AS SELECT * FROM read_csv({lit}, header = true, types = {types})")
    return {r[0]: r[1] for r in con.execute("DESCRIBE SELECT * FROM raw").fetchall() if r[0] in wanted}


def _date_expr(col: str, dtype: str, date_format: str | None) -> str:
    q = _quote_ident(col)
    t = dtype.upper()
    if t == "DATE":
        return q
    if t.startswith("TIMESTAMP"):
        return f"CAST({q} AS DATE)"
    text = q if t == "VARCHAR" else f"CAST({q} AS VARCHAR)"
    if date_format:
        return f"CAST(try_strptime(trim({text}), {_quote_literal(date_format)}) AS DATE)"
    return f"TRY_CAST(trim({text}) AS DATE)"


def _amount_expr(col: str, dtype: str) -> str:
    q = _quote_ident(col)
    t = dtype.upper()
    if t == "VARCHAR":
        return f"TRY_CAST(trim({q}) AS DOUBLE)"
    return f"TRY_CAST({q} AS DOUBLE)"


def _examples(con: duckdb.DuckDBPyConnection, column: str, reason: str, k: int = 3) -> list[str]:
    rows = con.execute(
        f"SELECT {_quote_ident(column)} FROM parsed WHERE reason = ? LIMIT {k}", [reason]
    ).fetchall()
    return [repr(r[0]) if not isinstance(r[0], str) else repr(r[0]) for r in rows]


_FIXES = {
    "null_customer_id": "fill the ids or pass on_invalid='drop' to drop those rows (they are counted)",
    "unparseable_date": "pass date_format (e.g. date_format='%d/%m/%Y') or on_invalid='drop'",
    "non_numeric_amount": "clean the column (no currency symbols or thousands separators) or pass on_invalid='drop'",
    "negative_amount": "net returns against their purchases first, or pass negative_amounts='drop'",
    "zero_amount": "pass zero_amounts='keep' to count them as purchases or zero_amounts='drop' to drop them",
}
_WHAT = {
    "null_customer_id": "customer ids are missing",
    "unparseable_date": "values are missing or could not be parsed as dates",
    "non_numeric_amount": "values are missing or not numbers",
    "negative_amount": "amounts are negative (returns?)",
    "zero_amount": "amounts are zero",
}


def open_transactions(
    source: Source,
    *,
    customer_id: str = "customer_id",
    date: str = "date",
    amount: str | None = "amount",
    quantity: str | None = None,
    date_format: str | None = None,
    on_invalid: Literal["raise", "drop"] = "raise",
    zero_amounts: Literal["keep", "drop", "raise"] = "keep",
    negative_amounts: Literal["raise", "drop"] | None = None,
    observation_end: Any = None,
    warn: bool = True,
) -> Prepared:
    """Open ``source`` in a new DuckDB connection, validate it and define the clean view ``tx``.

    This is the shared front half of :func:`read_transactions`, :func:`~clvforecast.rfm.rfm_summary` and
    :func:`~clvforecast.rfm.calibration_holdout`; the caller must ``close()`` the result. ``amount=None`` is
    allowed for frequency-only data (``tx.amount`` is then 0 for every row). When ``observation_end`` is given,
    the valid rows dated after it are counted in the same scan (``n_after``).
    """
    if on_invalid not in ("raise", "drop"):
        raise ValueError(f"on_invalid must be 'raise' or 'drop'; got {on_invalid!r}")
    if zero_amounts not in ("keep", "drop", "raise"):
        raise ValueError(f"zero_amounts must be 'keep', 'drop' or 'raise'; got {zero_amounts!r}")
    if negative_amounts not in (None, "raise", "drop"):
        raise ValueError(f"negative_amounts must be None, 'raise' or 'drop'; got {negative_amounts!r}")
    negative_policy = negative_amounts or on_invalid
    cols = Columns(customer_id, date, amount, quantity)
    con = duckdb.connect()
    try:
        types = _register_source(con, source, cols)
        cid, dcol = _quote_ident(customer_id), _quote_ident(date)
        d_expr = _date_expr(date, types[date], date_format)
        a_expr = _amount_expr(amount, types[amount]) if amount is not None else "0.0"
        q_sel = f", {_quote_ident(quantity)} AS quantity" if quantity is not None else ""
        reason = [
            f"WHEN {cid} IS NULL THEN 'null_customer_id'",
            "WHEN _date IS NULL THEN 'unparseable_date'",
        ]
        if amount is not None:
            reason += [
                "WHEN _amount IS NULL OR isnan(_amount) OR isinf(_amount) THEN 'non_numeric_amount'",
                "WHEN _amount < 0 THEN 'negative_amount'",
            ]
            if zero_amounts != "keep":
                reason.append("WHEN _amount = 0 THEN 'zero_amount'")
        extra = f", {_quote_ident(amount)}" if amount is not None else ""
        con.execute(
            f"""CREATE VIEW parsed AS
            SELECT {cid} AS customer_id, {dcol}{extra}, _date, _amount{q_sel},
                   CASE {' '.join(reason)} ELSE NULL END AS reason
            FROM (SELECT *, {d_expr} AS _date, {a_expr} AS _amount FROM raw)"""
        )
        # Quote the source column names in 'parsed' so that examples can be pulled by their original names.
        end_filter = ""
        if observation_end is not None:
            end_filter = f", count(*) FILTER (WHERE reason IS NULL AND _date > DATE {_quote_literal(str(observation_end))})"
        counts = con.execute(
            f"SELECT count(*), {', '.join(f'count(*) FILTER (WHERE reason = {_quote_literal(r)})' for r in REASONS)}"
            f"{end_filter} FROM parsed"
        ).fetchone()
        assert counts is not None
        n_rows = int(counts[0])
        by_reason = {r: int(n) for r, n in zip(REASONS, counts[1 : 1 + len(REASONS)], strict=True) if n}
        n_after = int(counts[-1]) if observation_end is not None else 0
        if n_rows == 0:
            raise DataValidationError(
                "the transaction log is empty (0 rows); check the file or the filter that produced it"
            )
        column_of = {
            "null_customer_id": customer_id,
            "unparseable_date": date,
            "non_numeric_amount": amount,
            "negative_amount": amount,
            "zero_amount": amount,
        }
        dropped: dict[str, int] = {}
        for r, n in by_reason.items():
            policy = {"negative_amount": negative_policy, "zero_amount": zero_amounts}.get(r, on_invalid)
            if policy == "raise":
                col = column_of[r]
                ex = ", ".join(_examples(con, col if r != "null_customer_id" else date, r))
                where = f"e.g. {ex}" if r != "null_customer_id" else f"e.g. in rows dated {ex}"
                raise DataValidationError(
                    f"column {col!r}: {n:,} of {n_rows:,} rows: {_WHAT[r]}, {where}; {_FIXES[r]}"
                )
            dropped[r] = n
        if dropped and sum(dropped.values()) == n_rows:
            raise DataValidationError(
                f"every one of the {n_rows:,} rows was invalid ({_describe(dropped)}); nothing is left to analyse"
            )
        if dropped and warn:
            warnings.warn(
                f"dropped {sum(dropped.values()):,} of {n_rows:,} rows: {_describe(dropped)}",
                DataQualityWarning,
                stacklevel=3,
            )
        con.execute(
            "CREATE VIEW tx AS SELECT customer_id, _date AS date, "
            f"{'_amount' if amount is not None else '0.0'} AS amount{', quantity' if quantity else ''} "
            "FROM parsed WHERE reason IS NULL"
        )
        return Prepared(con, n_rows, dropped, n_after, amount is not None, quantity is not None)
    except BaseException:
        con.close()
        raise


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {r.replace('_', ' ')}" for r, n in counts.items())


def read_transactions(
    source: Source,
    *,
    customer_id: str = "customer_id",
    date: str = "date",
    amount: str | None = "amount",
    quantity: str | None = None,
    date_format: str | None = None,
    on_invalid: Literal["raise", "drop"] = "raise",
    zero_amounts: Literal["keep", "drop", "raise"] = "keep",
    negative_amounts: Literal["raise", "drop"] | None = None,
) -> pd.DataFrame:
    """Read a transaction log into a tidy, validated DataFrame.

    Parameters
    ----------
    source:
        A pandas DataFrame, or a path to a CSV (``.csv``, ``.tsv``, ``.txt``, optionally gzipped) or Parquet
        file. Files are scanned by DuckDB.
    customer_id, date, amount, quantity:
        Names of the source columns holding the customer id, the purchase date (or timestamp; only the calendar
        day is used), the purchase value in currency units, and optionally the number of items.
        ``amount=None`` reads frequency-only data.
    date_format:
        ``strftime`` pattern for text dates that are not ISO 8601, e.g. ``"%Y%m%d"`` or ``"%d/%m/%Y"``.
    on_invalid:
        ``"raise"`` (default): raise :class:`~clvforecast.exceptions.DataValidationError` on the first kind of bad
        row, naming the column, the count and up to three examples. ``"drop"``: drop bad rows, count them per
        reason in ``attrs["dropped"]`` and warn (:class:`~clvforecast.exceptions.DataQualityWarning`).
    zero_amounts:
        ``"keep"`` (default) counts zero-value purchases as purchases; ``"drop"`` drops them (counted);
        ``"raise"`` treats them as an error.
    negative_amounts:
        Returns and refunds. ``None`` (default) follows ``on_invalid``; ``"raise"`` or ``"drop"`` (counted).

    Returns
    -------
    DataFrame with columns ``customer_id``, ``date`` (datetime64, midnight), ``amount`` (float) and
    ``quantity`` if requested, in source order, with ``attrs`` ``n_rows_read`` and ``dropped``
    (``{reason: count}``; see the module docstring for the reasons).
    """
    prep = open_transactions(
        source,
        customer_id=customer_id,
        date=date,
        amount=amount,
        quantity=quantity,
        date_format=date_format,
        on_invalid=on_invalid,
        zero_amounts=zero_amounts,
        negative_amounts=negative_amounts,
    )
    try:
        out = prep.con.execute("SELECT * FROM tx").df()
    finally:
        prep.close()
    out["date"] = pd.to_datetime(out["date"])
    if amount is None:
        out = out.drop(columns="amount")
    out.attrs["n_rows_read"] = prep.n_rows
    out.attrs["dropped"] = dict(prep.dropped)
    return out
