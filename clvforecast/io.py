"""Reading transaction logs: map columns, parse, validate, and account for every dropped row.

The work is done by DuckDB: a CSV or Parquet file is scanned by DuckDB directly (it is never loaded into
pandas first), a DataFrame is scanned in place. :func:`open_transactions` is the one place that turns a source
into the clean relation ``tx(customer_id, date DATE, amount DOUBLE[, quantity])`` that :mod:`clvforecast.rfm`
builds on; :func:`read_transactions` returns that relation as a pandas DataFrame.

Sources give identical results: a DataFrame, a CSV file and a Parquet file holding the same log give the same
rows, values and dtypes. Customer ids keep their type, except that integer ids of any width become ``int64``,
and so do a CSV column of canonical integers (``17``, not ``017`` or ``+17``) and a float column of whole
numbers (pandas reads integer ids with gaps as floats); categorical ids become strings.

Dates are kept at day resolution: a timestamp is reduced to its calendar day (``2024-03-01 23:59`` is
2024-03-01). Timestamps with a time zone keep their *local* calendar day, whatever the source: time-zone-aware
pandas timestamps, ISO strings with an offset in a CSV, and Parquet timestamps whose schema names the zone (as
pandas and pyarrow write them). Parquet timestamps that are only UTC instants (no zone name), zones DuckDB does
not know, and a DataFrame object column of timestamps with *different* offsets (pandas cannot give it one zone)
give their UTC day.

Validation rules (each row is checked in this order and counted under the first rule it breaks):

``null_customer_id``
    the customer id is missing.
``unparseable_date``
    the date is missing or cannot be parsed (ISO dates and timestamps are understood without help; pass
    ``date_format``, a ``strftime`` pattern such as ``"%Y%m%d"`` or ``"%d/%m/%Y"``, for anything else).
``non_numeric_amount``
    the amount is missing or is not a finite number (currency symbols and thousands separators are not
    understood), or its size is 1e15 or more, which no purchase is (the cap keeps exact sums in range).
``negative_amount``
    the amount is below zero (a return or refund).
``zero_amount``
    the amount is exactly zero (a free or fully discounted purchase); only checked unless kept, see below.

Policy. With ``on_invalid="raise"`` (the default) the first broken rule raises :class:`DataValidationError`
naming the column, the count of bad rows, up to three examples and the fix. With ``on_invalid="drop"`` the
bad rows are dropped, counted per reason in ``result.attrs["dropped"]``, and a :class:`DataQualityWarning`
says so. Amounts have their own policies because they are a modelling choice, not an error:

* ``zero_amounts="keep"`` (default): a zero-value purchase is still a purchase (the published CDNOW summary
  counts CDNOW's zero-dollar purchases as transactions). ``"drop"`` drops them (counted), ``"raise"`` refuses
  them.
* ``negative_amounts=None`` (default) follows ``on_invalid``. Returns are not purchases: the BG/NBD and
  Gamma-Gamma models need non-negative spend. Net returns against their purchases before calling, or
  ``"drop"`` them (counted).
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

import duckdb
import pandas as pd

from .exceptions import DataQualityWarning, DataValidationError

__all__ = ["REASONS", "Prepared", "Source", "open_transactions", "read_transactions"]

Source: TypeAlias = pd.DataFrame | str | os.PathLike
OnInvalid: TypeAlias = Literal["raise", "drop"]
ZeroAmounts: TypeAlias = Literal["keep", "drop", "raise"]
NegativeAmounts: TypeAlias = Literal["raise", "drop"] | None

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
_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"}
_NUMERIC_PREFIXES = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
    "FLOAT", "DOUBLE", "DECIMAL",
)  # fmt: skip
# A canonical integer: no '+', no leading zeros, at most 18 digits so that it fits in int64.
_CANONICAL_INT = r"-?(0|[1-9][0-9]{0,17})"
_MAX_AMOUNT = 1e15
# Source fields that are parsed and validated; the others (quantity, extra columns) are carried as they are.
_PARSED_FIELDS = ("customer_id", "date_raw", "amount_raw")


@dataclass
class Prepared:
    """A DuckDB connection holding the clean view ``tx`` and what validation counted.

    Use it as a context manager, or call :meth:`close`.
    """

    con: duckdb.DuckDBPyConnection
    n_rows: int  # rows in the source
    dropped: dict[str, int] = field(default_factory=dict)  # rows dropped per reason (reasons that occurred)
    n_after: int = 0  # valid rows dated after ``observation_end`` (the caller's SQL excludes them)
    first_date: dt.date | None = None  # the earliest valid date
    last_date: dt.date | None = None  # the latest valid date
    has_amount: bool = True
    passthrough: tuple[str, ...] = ()  # columns of ``tx`` carried over unchanged (quantity, extra columns)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Prepared:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _quote_ident(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _to_date(value: Any, name: str) -> dt.date:
    """A calendar date from a string, date, datetime or Timestamp (a time of day is dropped)."""
    if value is None:
        raise ValueError(f"{name} is required (a date such as '1997-09-30')")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name}={value!r} is not a date; give e.g. '1997-09-30'") from exc
    if pd.isna(ts):
        raise ValueError(f"{name} is missing; give a date such as '1997-09-30'")
    return ts.date()


# --- Sources ------------------------------------------------------------------------------------------------


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
            f"source {os.fspath(source)!r}: unknown file type; give a .csv, .tsv, .txt (optionally .gz) or "
            ".parquet file, or a DataFrame"
        )
    raise TypeError(
        f"source must be a pandas DataFrame or a path to a CSV or Parquet file; got {type(source).__name__}"
    )


def _check_columns(fields: dict[str, str], present: list[str]) -> None:
    missing = [c for c in dict.fromkeys(fields.values()) if c not in present]
    if not missing:
        return
    if len(present) == 1 and any(sep in present[0] for sep in ",;\t|"):
        raise DataValidationError(
            f"column {missing[0]!r} not found: the file was read as a single column named {present[0]!r}, so "
            "its delimiter or its rows could not be recognised; check for rows with more fields than the header "
            "(unquoted commas in a value) or an unusual delimiter"
        )
    shown = ", ".join(repr(c) for c in present[:30]) + (" ..." if len(present) > 30 else "")
    also = f" (also missing: {', '.join(repr(c) for c in missing[1:])})" if len(missing) > 1 else ""
    key = next(k for k, v in fields.items() if v == missing[0])
    argument = {"date_raw": "date", "amount_raw": "amount"}.get(key, key)
    close = difflib.get_close_matches(missing[0], present, n=1, cutoff=0.6)
    if key.startswith("extra_"):
        fix = f"did you mean {close[0]!r} in extra_columns?" if close else "remove it from extra_columns"
    else:
        fix = (
            f"did you mean {argument}={close[0]!r}?" if close else f"pass {argument}='<the column that holds it>'"
        )
    raise DataValidationError(
        f"column {missing[0]!r} not found{also}; the source has columns {shown or '(none)'}: {fix}"
    )


def _frame_column(df: pd.DataFrame, label: Any) -> pd.Series:
    """One column of ``df`` in a form DuckDB reads as it reads the same values from a file."""
    s = df[label]
    if isinstance(s, pd.DataFrame):
        raise DataValidationError(f"column {label!r} appears {s.shape[1]} times in the DataFrame; rename one")
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_localize(None)  # local wall-clock time: the calendar day where the purchase happened
    if s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) in ("mixed", "mixed-integer"):
        return s.astype("string")  # e.g. ids partly numbers and partly text: all text, as in a CSV file
    return s


def _file_scan(kind: str, path: str, text: list[str] | None = None) -> str:
    """DuckDB table function reading the file; ``text``: CSV columns to read as VARCHAR."""
    # hive_partitioning off: a path like 'date=2024-01-01/tx.csv' must not replace the file's own columns
    if kind == "parquet":
        return f"read_parquet({_quote_literal(path)}, hive_partitioning = false)"
    types = ", ".join(f"{_quote_literal(c)}: 'VARCHAR'" for c in dict.fromkeys(text or []))
    return (
        f"read_csv({_quote_literal(path)}, header = true, hive_partitioning = false"
        f"{f', types = {{{types}}}' if text else ''})"
    )


def _register_source(con: duckdb.DuckDBPyConnection, source: Source, kind: str, fields: dict[str, str]) -> None:
    """Create the view ``raw`` over the source (of ``kind``, see :func:`_source_kind`), one column per field.

    ``fields`` maps our names (``customer_id``, ``date_raw``, ``amount_raw``, ``quantity``) to the source's
    column names. Renaming at the source keeps every later query free of clashes with the source's names.
    """
    if kind == "dataframe":
        df: pd.DataFrame = source  # type: ignore[assignment]
        labels = {str(c): c for c in df.columns}
        _check_columns(fields, list(labels))
        frame = pd.DataFrame({k: _frame_column(df, labels[v]) for k, v in fields.items()}, copy=False)
        try:
            con.register("source_frame", frame)
        except duckdb.Error:  # DuckDB cannot scan strided arrays (df.iloc[::-1]): scan a compact copy
            frame = frame.copy(deep=True)
            con.register("source_frame", frame)
        con.execute("CREATE VIEW raw AS SELECT * FROM source_frame")
        return
    path = os.fspath(source)
    if not Path(path).is_file():
        raise FileNotFoundError(f"no such file: {path!r}")
    if Path(path).stat().st_size == 0:
        raise DataValidationError(f"the file {path!r} is empty (0 bytes); expected a header line and rows")
    try:
        present = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {_file_scan(kind, path)}").fetchall()]
    except duckdb.Error as exc:
        raise DataValidationError(f"could not read {path!r}: {exc}") from exc
    _check_columns(fields, present)
    # In a CSV, id, date and amount are read as text: each bad value is then ours to count and report, and an
    # id column whose first rows look numeric can neither fail further down nor be mangled ('017' is not 17).
    text = [v for k, v in fields.items() if k in _PARSED_FIELDS] if kind == "csv" else None
    select = ", ".join(f"{_quote_ident(v)} AS {k}" for k, v in fields.items())
    con.execute(f"CREATE VIEW raw AS SELECT {select} FROM {_file_scan(kind, path, text)}")


# --- Parsing expressions, chosen by the column's DuckDB type ------------------------------------------------


def _id_exprs(dtype: str, kind: str) -> tuple[str, str | None]:
    """The customer-id expression, and a test which, true for every valid id, allows a cast to BIGINT.

    Integer ids of any width become BIGINT, so every source gives the same id type: a CSV column of canonical
    integers and a float column of whole numbers (ids with gaps, as pandas reads them) too. Text ids in a
    DataFrame or Parquet file stay text.
    """
    if dtype in _INTEGER_TYPES:
        return "CAST(customer_id AS BIGINT)", None
    if dtype.startswith("ENUM"):
        return "CAST(customer_id AS VARCHAR)", None
    if dtype in ("FLOAT", "DOUBLE"):
        return (
            "CASE WHEN isnan(customer_id) THEN NULL ELSE customer_id END",
            "customer_id = round(customer_id) AND abs(customer_id) < 1e18",
        )
    if dtype == "VARCHAR" and kind == "csv":
        return "customer_id", f"regexp_full_match(customer_id, '{_CANONICAL_INT}')"
    return "customer_id", None


def _date_expr(dtype: str, date_format: str | None, zone: str | None = None) -> str:
    if dtype == "DATE":
        return "date_raw"
    if zone and (dtype == "TIMESTAMP WITH TIME ZONE" or dtype.startswith("TIMESTAMPTZ")):
        # the local day in the zone the file was written in (TIMESTAMPTZ_NS etc. cast to microseconds first);
        # the session is in UTC, so a fixed offset is added to the UTC wall-clock time
        instant = "CAST(date_raw AS TIMESTAMPTZ)"
        offset = _OFFSET.match(zone)
        if offset:
            minutes = (1 if offset["sign"] == "+" else -1) * (int(offset["h"]) * 60 + int(offset["m"]))
            return f"CAST(CAST({instant} AS TIMESTAMP) + INTERVAL ({minutes}) MINUTE AS DATE)"
        return f"CAST(timezone({_quote_literal(zone)}, {instant}) AS DATE)"
    if dtype.startswith("TIMESTAMP"):
        return "CAST(date_raw AS DATE)"
    text = "trim(date_raw)" if dtype == "VARCHAR" else "CAST(date_raw AS VARCHAR)"
    if date_format:
        return f"CAST(try_strptime({text}, {_quote_literal(date_format)}) AS DATE)"
    return f"TRY_CAST({text} AS DATE)"


_OFFSET = re.compile(r"^(?P<sign>[+-])(?P<h>\d\d):?(?P<m>\d\d)$")


def _parquet_zone(con: duckdb.DuckDBPyConnection, path: str, column: str) -> str | None:
    """The time zone a Parquet timestamp column was written in (its Arrow schema names it), or None.

    A fixed offset (``+05:30``) is returned as it is; a zone name DuckDB does not know gives None (the UTC
    day), so that an exotic zone never makes a file unreadable.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        kind = pq.read_schema(path).field(column).type
    except (KeyError, OSError, pa.ArrowException):
        return None
    zone = getattr(kind, "tz", None) if pa.types.is_timestamp(kind) else None
    if not zone or _OFFSET.match(zone) or zone.upper() == "UTC":
        return zone if zone and zone.upper() != "UTC" else None
    try:
        con.execute("SELECT timezone($zone, TIMESTAMPTZ '2000-01-01 00:00:00+00')", {"zone": zone}).fetchone()
    except duckdb.Error:
        return None
    return zone


def _amount_expr(dtype: str) -> str:
    if dtype.startswith(_NUMERIC_PREFIXES):
        return "CAST(amount_raw AS DOUBLE)"
    text = "trim(amount_raw)" if dtype == "VARCHAR" else "CAST(amount_raw AS VARCHAR)"
    return f"TRY_CAST({text} AS DOUBLE)"


def _validate(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    fields: dict[str, str],
    policy: dict[str, str],
    date_format: str | None,
    obs: dt.date | None,
    zone: str | None = None,
) -> Prepared:
    """Define the views ``parsed`` and ``tx`` and count, in one scan, the rows and what is wrong with them."""
    types = {r[0]: r[1].upper() for r in con.execute("DESCRIBE SELECT * FROM raw").fetchall()}
    has_amount = "amount_raw" in fields
    carried = [k for k in fields if k not in _PARSED_FIELDS]  # quantity and extra columns, as they are
    id_expr, id_integer_test = _id_exprs(types["customer_id"], kind)
    reason = ["WHEN customer_id IS NULL THEN 'null_customer_id'", "WHEN date IS NULL THEN 'unparseable_date'"]
    amount = "CAST(0 AS DOUBLE) AS amount"
    if has_amount:
        amount = f"amount_raw, {_amount_expr(types['amount_raw'])} AS amount"
        reason += [  # 'NOT abs(amount) < cap' is also true for NaN and infinity
            f"WHEN amount IS NULL OR NOT abs(amount) < {_MAX_AMOUNT} THEN 'non_numeric_amount'",
            "WHEN amount < 0 THEN 'negative_amount'",
        ]
        if policy["zero_amount"] != "keep":
            reason.append("WHEN amount = 0 THEN 'zero_amount'")
    quantity = "".join(f", {k}" for k in carried)
    con.execute(
        f"""CREATE VIEW parsed AS
        SELECT *, CASE {" ".join(reason)} ELSE NULL END AS reason
        FROM (SELECT {id_expr} AS customer_id, date_raw, {_date_expr(types["date_raw"], date_format, zone)} AS date,
                     {amount}{quantity}
              FROM raw)"""
    )
    by_reason = ", ".join(f"count(*) FILTER (WHERE reason = '{r}')" for r in REASONS)
    integer_ids = f"bool_and({id_integer_test}) FILTER (WHERE reason IS NULL)" if id_integer_test else "false"
    row = con.execute(
        f"""SELECT count(*), {by_reason},
                   count(*) FILTER (WHERE reason IS NULL AND date > $obs),
                   min(date) FILTER (WHERE reason IS NULL),
                   max(date) FILTER (WHERE reason IS NULL),
                   {integer_ids}
            FROM parsed""",
        {"obs": obs},
    ).fetchone()
    assert row is not None
    n_rows = int(row[0])
    if n_rows == 0:
        raise DataValidationError("the transaction log is empty (0 rows); check the source")
    dropped = {r: int(n) for r, n in zip(REASONS, row[1 : 1 + len(REASONS)], strict=True) if n}
    customer = "CAST(customer_id AS BIGINT)" if row[-1] else "customer_id"
    out_names = tuple("quantity" if k == "quantity" else fields[k] for k in carried)
    extra = "".join(f", {k} AS {_quote_ident(name)}" for k, name in zip(carried, out_names, strict=True))
    con.execute(
        f"CREATE VIEW tx AS SELECT {customer} AS customer_id, date, amount{extra} "
        "FROM parsed WHERE reason IS NULL"
    )
    n_after, first_date, last_date = int(row[-4]), row[-3], row[-2]
    return Prepared(con, n_rows, dropped, n_after, first_date, last_date, has_amount, out_names)


# --- Messages -----------------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    if value is None:
        return "a missing value"
    return repr(value) if isinstance(value, str) else str(value)


def _examples(con: duckdb.DuckDBPyConnection, reason: str, k: int = 3) -> str:
    column = "date_raw" if reason in ("null_customer_id", "unparseable_date") else "amount_raw"
    rows = con.execute(f"SELECT {column} FROM parsed WHERE reason = ? LIMIT {k}", [reason]).fetchall()
    return ", ".join(_show(r[0]) for r in rows)


def _error_message(
    reason: str, n: int, n_rows: int, names: dict[str, str], examples: str, date_format: str | None
) -> str:
    rows, counted = f"{n:,} of {n_rows:,} rows", "to drop those rows (they are counted)"
    if reason == "null_customer_id":
        return (
            f"column {names['customer_id']!r}: {rows} have no customer id (the rows dated {examples}); "
            f"fill them in, or pass on_invalid='drop' {counted}"
        )
    if reason == "unparseable_date":
        if date_format:
            return (
                f"column {names['date']!r}: {rows} are missing or do not match date_format={date_format!r}, "
                f"e.g. {examples}; fix the format or pass on_invalid='drop' {counted}"
            )
        return (
            f"column {names['date']!r}: {rows} are missing or could not be parsed as dates, e.g. {examples}; "
            f"pass date_format (e.g. date_format='%d/%m/%Y' or '%Y%m%d') or on_invalid='drop' {counted}"
        )
    column = names["amount"]
    if reason == "non_numeric_amount":
        return (
            f"column {column!r}: {rows} are missing or not finite numbers below {_MAX_AMOUNT:.0e}, e.g. "
            f"{examples}; write plain numbers (no currency symbols or thousands separators) or pass "
            f"on_invalid='drop' {counted}"
        )
    if reason == "negative_amount":
        return (
            f"column {column!r}: {rows} have negative amounts (returns or refunds?), e.g. {examples}; "
            f"net them against their purchases first, or pass negative_amounts='drop' {counted}"
        )
    return (
        f"column {column!r}: {rows} have zero amounts, e.g. {examples}; pass zero_amounts='keep' to count "
        f"them as purchases or zero_amounts='drop' {counted}"
    )


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {r.replace('_', ' ')}" for r, n in counts.items())


# --- Public -------------------------------------------------------------------------------------------------


def open_transactions(
    source: Source,
    *,
    customer_id: str = "customer_id",
    date: str = "date",
    amount: str | None = "amount",
    quantity: str | None = None,
    extra_columns: Sequence[str] = (),
    date_format: str | None = None,
    on_invalid: OnInvalid = "raise",
    zero_amounts: ZeroAmounts = "keep",
    negative_amounts: NegativeAmounts = None,
    observation_end: Any = None,
    warn: bool = True,
    stacklevel: int = 2,
) -> Prepared:
    """Open ``source`` in a new DuckDB connection, validate it and define the clean view ``tx``.

    The shared front half of :func:`read_transactions`, :func:`~clvforecast.rfm.rfm_summary` and
    :func:`~clvforecast.rfm.calibration_holdout`; close the result (or use it in a ``with`` block). The view
    ``tx(customer_id, date DATE, amount DOUBLE[, quantity])`` holds the valid rows; the arguments are those of
    :func:`read_transactions`. ``amount=None`` reads frequency-only data (``tx.amount`` is then 0). When
    ``observation_end`` is given, the valid rows dated after it are counted in the same scan (``n_after``).
    ``stacklevel`` places the :class:`DataQualityWarning` (2: at the caller of the function that calls this).
    """
    if on_invalid not in ("raise", "drop"):
        raise ValueError(f"on_invalid must be 'raise' or 'drop'; got {on_invalid!r}")
    if zero_amounts not in ("keep", "drop", "raise"):
        raise ValueError(f"zero_amounts must be 'keep', 'drop' or 'raise'; got {zero_amounts!r}")
    if negative_amounts not in (None, "raise", "drop"):
        raise ValueError(f"negative_amounts must be None, 'raise' or 'drop'; got {negative_amounts!r}")
    policy: dict[str, str] = dict.fromkeys(REASONS, on_invalid)
    policy["negative_amount"] = negative_amounts or on_invalid
    policy["zero_amount"] = zero_amounts
    obs = _to_date(observation_end, "observation_end") if observation_end is not None else None
    fields = {"customer_id": customer_id, "date_raw": date}
    if amount is not None:
        fields["amount_raw"] = amount
    if quantity is not None:
        fields["quantity"] = quantity
    if isinstance(extra_columns, str):
        extra_columns = [extra_columns]
    # DuckDB's names are case-insensitive: 'Date' would clash with the result's 'date'
    taken = {"customer_id", "date", "amount", *(["quantity"] if quantity is not None else [])}
    for i, name in enumerate(extra_columns):
        if name.casefold() in taken:
            raise ValueError(f"extra_columns: {name!r} is a column of the result already; rename it first")
        taken.add(name.casefold())
        fields[f"extra_{i}"] = name

    kind = _source_kind(source)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")  # zoned Parquet timestamps give their UTC day on every machine
        try:
            _register_source(con, source, kind, fields)
            zone = _parquet_zone(con, os.fspath(source), date) if kind == "parquet" else None  # type: ignore[arg-type]
            prep = _validate(con, kind, fields, policy, date_format, obs, zone)
        except duckdb.Error as exc:
            name = "the DataFrame" if kind == "dataframe" else repr(os.fspath(source))  # type: ignore[arg-type]
            raise DataValidationError(f"could not read {name}: {exc}") from exc
        names = {"customer_id": customer_id, "date": date, "amount": amount or ""}
        for reason, n in prep.dropped.items():
            if policy[reason] == "raise":
                message = _error_message(reason, n, prep.n_rows, names, _examples(con, reason), date_format)
                raise DataValidationError(message)
        if prep.dropped and sum(prep.dropped.values()) == prep.n_rows:
            raise DataValidationError(
                f"every one of the {prep.n_rows:,} rows is invalid ({_describe(prep.dropped)}); nothing is "
                "left to analyse. Check the column arguments and date_format"
            )
        if prep.dropped and warn:
            warnings.warn(
                f"dropped {sum(prep.dropped.values()):,} of {prep.n_rows:,} rows: {_describe(prep.dropped)}",
                DataQualityWarning,
                stacklevel=stacklevel + 1,
            )
        return prep
    except BaseException:
        con.close()
        raise


def read_transactions(
    source: Source,
    *,
    customer_id: str = "customer_id",
    date: str = "date",
    amount: str | None = "amount",
    quantity: str | None = None,
    extra_columns: Sequence[str] = (),
    date_format: str | None = None,
    on_invalid: OnInvalid = "raise",
    zero_amounts: ZeroAmounts = "keep",
    negative_amounts: NegativeAmounts = None,
) -> pd.DataFrame:
    """Read a transaction log into a tidy, validated DataFrame.

    Parameters
    ----------
    source:
        A pandas DataFrame (not modified), or a path to a CSV (``.csv``, ``.tsv``, ``.txt``, optionally
        gzipped) or Parquet file. Files are scanned by DuckDB.
    customer_id, date, amount, quantity:
        Names of the source columns holding the customer id, the purchase date (or timestamp; only the
        calendar day is used), the purchase value in currency units, and optionally the number of items.
        ``amount=None`` reads frequency-only data.
    extra_columns:
        Further source columns to carry through unchanged under their own names (e.g. a segment or channel
        column); they are not validated.
    date_format:
        ``strftime`` pattern for text dates that are not ISO 8601, e.g. ``"%Y%m%d"`` or ``"%d/%m/%Y"``.
    on_invalid:
        ``"raise"`` (default): raise :class:`~clvforecast.exceptions.DataValidationError` on the first kind
        of bad row, naming the column, the count and up to three examples. ``"drop"``: drop bad rows, count
        them per reason in ``attrs["dropped"]`` and warn
        (:class:`~clvforecast.exceptions.DataQualityWarning`).
    zero_amounts:
        ``"keep"`` (default) counts zero-value purchases as purchases; ``"drop"`` drops them (counted);
        ``"raise"`` treats them as an error.
    negative_amounts:
        Returns and refunds. ``None`` (default) follows ``on_invalid``; ``"raise"`` or ``"drop"`` (counted).

    Returns
    -------
    DataFrame with columns ``customer_id``, ``date`` (datetime64, midnight of the purchase day), ``amount``
    (float, currency units; absent when ``amount=None``) and ``quantity`` if requested, in source order, with
    ``attrs`` ``n_rows_read`` (rows in the source) and ``dropped`` (``{reason: rows}`` for the reasons that
    dropped rows; see the module docstring).

    Examples
    --------
    >>> import pandas as pd, clvforecast as cf
    >>> log = pd.DataFrame({"customer_id": [1, 1, 2], "date": ["2024-01-05 10:30", "2024-01-05", "bad"],
    ...                     "amount": [10.0, 5.0, 7.0]})
    >>> cf.read_transactions(log, on_invalid="drop").attrs["dropped"]
    {'unparseable_date': 1}
    """
    with open_transactions(
        source,
        customer_id=customer_id,
        date=date,
        amount=amount,
        quantity=quantity,
        extra_columns=extra_columns,
        date_format=date_format,
        on_invalid=on_invalid,
        zero_amounts=zero_amounts,
        negative_amounts=negative_amounts,
    ) as prep:
        columns = ["customer_id", "date", *["amount"] * prep.has_amount, *map(_quote_ident, prep.passthrough)]
        out = prep.con.execute(f"SELECT {', '.join(columns)} FROM tx").df()
    out["date"] = pd.to_datetime(out["date"])
    out.attrs["n_rows_read"] = prep.n_rows
    out.attrs["dropped"] = dict(prep.dropped)
    return out
