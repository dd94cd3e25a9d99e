"""Reading transaction logs: one description of the source, validation, line items, returns, and a ledger.

:class:`TransactionLog` describes a source once: where it is, which columns hold what, and the cleaning
policies. Every public function that takes a transaction source accepts a DataFrame, a path or a
``TransactionLog`` and the same *read options* as keywords (``f(source, *, <own arguments>, **read_options)``);
:func:`as_log` is the one place that checks them. The work is done by DuckDB: a CSV or Parquet file (or a folder
of Parquet files, as Spark and pyarrow write them) is scanned by DuckDB directly, a DataFrame is scanned in
place. :func:`open_transactions` turns a source into the clean relation ``tx(customer_id, date DATE, amount
DOUBLE[, quantity, item, invoice, extra columns])`` that :mod:`clvforecast.rfm` builds on;
:func:`read_transactions` returns it as a pandas DataFrame.

Sources give identical results: a DataFrame, a CSV file and a Parquet file holding the same log give the same
rows, values and dtypes. Customer ids keep their type, except that integer ids of any width become ``int64``,
and so do a CSV column of canonical integers (``17``, not ``017`` or ``+17``) or of whole-number decimals
(``17850.0``, as ``DataFrame.to_csv`` writes float ids), and a float column of whole numbers (pandas reads
integer ids with gaps as floats); categorical ids become strings. An id that is empty or only blanks is a
missing id, in a DataFrame as in a file. CSV files are read with ``"`` as the quote and no comment marker, so
no row vanishes (an id such as ``#12`` is an id): ``rows_read`` is the number of records in the file.

Dates are kept at day resolution: a timestamp is reduced to its calendar day (``2024-03-01 23:59`` is
2024-03-01). Timestamps with a time zone keep their *local* calendar day, whatever the source: time-zone-aware
pandas timestamps, ISO strings with an offset in a CSV, and Parquet timestamps whose schema names the zone (as
pandas and pyarrow write them). Parquet timestamps that are only UTC instants (no zone name), zones DuckDB does
not know, and a DataFrame object column of timestamps with *different* offsets (pandas cannot give it one zone)
give their UTC day. Text dates must be ISO 8601 unless ``date_format`` (a ``strftime`` pattern such as
``"%d/%m/%Y"``) is given; it applies to the cutoffs (``calibration_end``, ``observation_end``) too.

Validation rules (each row is checked in this order and counted under the first rule it breaks):

``null_customer_id``
    the customer id is missing (or blank).
``unparseable_date``
    the date is missing or cannot be parsed (ISO dates and timestamps are understood without help; pass
    ``date_format`` for anything else; an all-numeric date such as ``06/01/2011`` is never guessed).
``non_numeric_amount``
    the amount (or the quantity or the unit price of a line item) is missing or is not a finite number
    (currency symbols and thousands separators are not understood), or the amount's size is 1e15 or more,
    which no purchase is (the cap keeps exact sums in range).
``negative_price``
    a line item's unit price is below zero (a bad-debt adjustment, not a sale).
``negative_amount``
    the amount is below zero: a return, cancellation or refund (see *returns* below).
``zero_amount``
    the amount is exactly zero (a free or fully discounted purchase); only checked unless kept, see below.

Policy. With ``on_invalid="raise"`` (the default) the first broken rule raises :class:`DataValidationError`
naming the column, the count of bad rows, up to three examples and the fix. With ``on_invalid="drop"`` the
bad rows are dropped, counted per reason in the ledger, and a :class:`DataQualityWarning` says so. Amounts have
their own policies because they are a modelling choice, not an error:

* ``zero_amounts="keep"`` (the default for a log of purchases): a zero-value purchase is still a purchase (the
  published CDNOW summary counts CDNOW's zero-dollar purchases as transactions). ``"drop"`` (the default for
  line items, ``price`` given: a line at price 0 is a free sample, a test order or a manual adjustment, not a
  purchase of its own) drops them (counted), ``"raise"`` refuses them.
* ``returns``: ``"raise"`` refuses negative amounts (the default, except that an old-style call with
  ``on_invalid="drop"`` and no ``returns`` drops them, as before, with a warning that says they were not
  netted); ``"drop"`` drops the negative lines only (counted; the purchases they cancel still count);
  ``"net"`` nets them against the purchases they cancel (below). ``negative_amounts`` is the old name of
  ``returns``.

Line items. With ``price`` the amount of a line is ``quantity x price`` (``quantity`` 1 when not given);
``item`` and ``invoice`` are kept in the result, and ``item`` is used to match returns.

Returns, netted (``returns="net"``). Each negative line (a return) is matched to the same customer's most
recent *earlier* purchases (of the same ``item`` when an item column is given), consuming them latest first
(LIFO) and reducing their value, never below zero. "Earlier" uses the full timestamp when the source has times
of day (an order cancelled 12 minutes later is matched to that order), and the day otherwise (a purchase and a
return on the same day: the purchase is earlier). Then:

* a purchase line whose whole value was returned is removed (``lines_cancelled``);
* a purchase day (a customer's purchases on one calendar day) whose net value reaches zero (``<= 0``) is no
  longer a purchase: all its lines are removed (``orders_cancelled``), so a fully cancelled order disappears,
  and its customer too when nothing is left (``customers_left_with_nothing``);
* a partly returned line keeps its net value as ``amount`` (``quantity`` stays the ordered quantity);
* every return line is removed: those matched at least in part are counted with the value they netted
  (``returns_netted``); those with nothing to match are counted as ``returns_unmatched``, whose value also
  holds the unmatched part of partly matched returns.

Netting uses the whole log as read, before any cutoff, so ``read_transactions`` followed by ``rfm_summary``
gives the table ``rfm_summary`` gives on the raw log; in a backtest a return dated after ``calibration_end``
can therefore reduce a calibration purchase (as the business's books do). The matching itself is
:func:`clvforecast.netting.net_group`, a pure pandas/numpy function applied only to the (customer[, item])
groups that contain a return; it is fast (the Online Retail II log, 525,461 lines with 9,839 returns, nets in
well under a second).

Duplicates. Rows identical in every column the toolkit reads (customer id, the full timestamp, amount or
quantity and price, item, invoice, extra columns; parsed values) are *exact duplicates*: each group of
identical rows counts all but one. ``duplicates="keep"`` keeps them and warns with the count,
``duplicates="drop"`` drops them (counted). The default, ``None``, checks line-item logs only (``price``,
``item`` or ``invoice`` given), where a repeated line is a likely double load; in a plain log of customer,
date and amount two equal rows are two indistinguishable purchases, and day resolution already merges them.
Cost: the check reads the parsed rows into a table and groups them by every column read; on 10 million rows
(two cores, shared) it adds about 4 seconds to ``rfm_summary``'s 3 to 6, linear in the rows: about 40 seconds
and a table of about 30 bytes per row (3 GB, which DuckDB can spill to disk) for 100 million rows. That is why a
plain log is not checked unless asked (``duplicates="keep"`` or ``"drop"``).
Columns the toolkit does not read (a description, a country) do not take part: rows that differ only there are
the same to every computation here.

Dates. Rows dated after today, or far beyond the rest (after a gap of more than 12 months without any row,
holding less than 1% of the rows: one typo ``2204`` in a 2024 log), are counted and reported in a warning
naming the column, the count and examples; the *default* observation end of :mod:`clvforecast.rfm` is then the
last date before them (they are counted as rows after the observation end) instead of silently moving with
them. (Dates far beyond the rest are looked for when no observation end is given, as in
:func:`read_transactions`; with an observation end they are after it anyway, and counted as such.)

The ledger. Every row read is accounted for: ``result.attrs["ledger"]`` is a JSON-able dict
``{"rows_read", "rows_used", "entries": [{"key", "label", "rows", "value", "customers", "note"}, ...],
"identity_holds"}`` with ``rows_read == rows_used + sum(entry["rows"])`` (entries in pipeline order; ``rows``
is 0 for informational entries). A DataFrame returned by :func:`read_transactions` carries its ledger: passed
back into any function that takes a source, the ledger continues from it (rows removed by the user in between
are counted as such).
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import datetime as dt
import difflib
import gzip
import io as _stdio
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

import duckdb
import numpy as np
import pandas as pd

from .exceptions import DataQualityWarning, DataValidationError
from .netting import net_sorted

#: Environment variable read when a DuckDB connection opens: its memory limit (e.g. ``"2GB"``), above which DuckDB
#: spills large group-bys to disk; DuckDB's default (80% of the machine's memory) when unset. The numpy RFM pass
#: (:mod:`clvforecast._fastrfm`) sizes its buckets to it too.
MEMORY_LIMIT_ENV = "CLVFORECAST_MEMORY_LIMIT"

__all__ = [
    "READ_OPTIONS",
    "REASONS",
    "Prepared",
    "Source",
    "TransactionLog",
    "as_log",
    "ledger_entries",
    "open_transactions",
    "read_transactions",
]

Source: TypeAlias = "pd.DataFrame | str | os.PathLike[str] | TransactionLog"
OnInvalid: TypeAlias = Literal["raise", "drop"]
ZeroAmounts: TypeAlias = Literal["keep", "drop", "raise"]
Returns: TypeAlias = Literal["raise", "drop", "net"]
NegativeAmounts: TypeAlias = Literal["raise", "drop"] | None  # the old name of ``returns``
Duplicates: TypeAlias = Literal["keep", "drop"] | None
Extreme: TypeAlias = Literal["keep", "cap"]

#: Reasons a row can be dropped while reading, in the order the checks are applied.
REASONS: tuple[str, ...] = (
    "null_customer_id",
    "unparseable_date",
    "non_numeric_amount",
    "negative_price",
    "negative_amount",
    "zero_amount",
)

#: Plain-words labels of the ledger's entries, for a business reader.
LABELS: dict[str, str] = {
    "removed_between_calls": "rows removed between reading and this step (by code outside clvforecast)",
    "null_customer_id": "rows without a customer id",
    "unparseable_date": "rows with a missing or unreadable date",
    "non_numeric_amount": "rows with a missing or non-numeric amount, quantity or price",
    "negative_price": "rows with a negative unit price (adjustments, not sales)",
    "negative_amount": "returns and cancellations dropped (not netted against purchases)",
    "zero_amount": "zero-value rows dropped",
    "duplicates": "exact duplicate rows",
    "returns_netted": "returns netted against the customer's earlier purchases",
    "returns_unmatched": "returns with no earlier purchase to net against (dropped)",
    "lines_cancelled": "purchase lines returned in full",
    "orders_cancelled": "purchase days (orders) cancelled in full by returns",
    "customers_left_with_nothing": "customers whose every purchase was returned",
    "suspicious_dates": "rows dated in the future or far beyond the rest",
    "after_observation_end": "rows dated after the observation end",
    "incomplete_period": "rows in the incomplete period before the observation end",
    "new_in_holdout": "rows of customers whose first purchase is in the holdout period",
    "extreme_orders": "extreme purchase days",
}

_CSV_SUFFIXES = (".csv", ".txt", ".tsv", ".csv.gz", ".tsv.gz", ".txt.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"}
_NUMERIC_PREFIXES = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
    "FLOAT", "DOUBLE", "DECIMAL",
)  # fmt: skip
# A canonical integer (no '+', no leading zeros, at most 18 digits so that it fits in int64), optionally written
# as a whole-number decimal ('17850.0', as pandas writes float ids).
_CANONICAL_INT = r"-?(0|[1-9][0-9]{0,17})(\.0*)?"
_MAX_AMOUNT = 1e15
# Source fields that a CSV gives as text, to be parsed and validated here.
_PARSED_FIELDS = ("customer_id", "date_raw", "amount_raw", "quantity_raw", "price_raw")
_NATIVE_ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "utf-16": "utf-16", "utf16": "utf-16",
                     "latin-1": "latin-1", "latin1": "latin-1", "iso-8859-1": "latin-1"}  # fmt: skip
_AMBIGUOUS_DATE = re.compile(r"^\s*(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{2}|\d{4})(\s.*)?$")


# --- The source description ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TransactionLog:
    """A transaction source described once: where it is, which columns hold what, and how to clean it.

    Accepted wherever a source is (``rfm_summary(TransactionLog(...), observation_end=...)``); every function
    that takes a source also accepts the same options as keywords (see :func:`as_log`).

    Parameters
    ----------
    source:
        A pandas DataFrame (never modified), a path to a CSV (``.csv``, ``.tsv``, ``.txt``, optionally gzipped)
        or Parquet file, or a folder of Parquet files (a dataset as Spark and pyarrow write them), or a
        DataFrame returned by :func:`read_transactions` (its ledger then continues).
    customer_id, date:
        Columns holding the customer id and the purchase date or timestamp (only the calendar day is used for
        purchases; the time of day orders returns against purchases).
    amount:
        Column holding the line's value in currency units; ``None`` for frequency-only data (no spend). Not
        used when ``price`` is given.
    quantity, price:
        Line items: with ``price`` the amount is ``quantity x price`` (``quantity`` 1 when not given). Without
        ``price``, ``quantity`` is only carried into the result.
    item, invoice:
        Columns naming the product and the order; kept in the result. Returns are matched to purchases of the
        same item when ``item`` is given.
    extra_columns:
        Further columns carried through unchanged (a segment, a channel).
    date_format:
        ``strftime`` pattern of text dates that are not ISO 8601 (``"%d/%m/%Y"``, ``"%Y%m%d"``); also used for
        the cutoffs given as text.
    encoding:
        Text encoding of a CSV file (default UTF-8), e.g. ``"latin-1"`` or ``"cp1252"``.
    on_invalid:
        ``"raise"`` (default) or ``"drop"`` (counted) for rows breaking a validation rule.
    zero_amounts:
        ``"keep"``, ``"drop"`` (counted) or ``"raise"`` rows worth exactly zero. Default ``None``: ``"keep"`` (a
        zero-dollar purchase is a purchase, as in CDNOW), or ``"drop"`` for line items (``price`` given: a line
        at price 0 is not a purchase of its own).
    returns:
        ``"raise"``, ``"drop"`` (counted) or ``"net"`` (netted against earlier purchases; see the module
        docstring). Default ``None``: ``"raise"``, or ``"drop"`` with ``on_invalid="drop"`` (the old
        behaviour, with a warning that the returns were not netted).
    duplicates:
        ``"keep"`` (count and warn) or ``"drop"`` (count and drop) exact duplicate rows; default ``None``:
        ``"keep"`` for line-item logs (``price``, ``item`` or ``invoice`` given), not checked otherwise.
    extreme:
        ``"keep"`` (default: extreme purchase days are listed in the ledger) or ``"cap"`` (their value is
        capped at the fence in ``monetary_value``, the spend the spend model sees). See
        :mod:`clvforecast.rfm`.
    """

    source: Any
    customer_id: str = "customer_id"
    date: str = "date"
    amount: str | None = "amount"
    quantity: str | None = None
    price: str | None = None
    item: str | None = None
    invoice: str | None = None
    extra_columns: tuple[str, ...] = ()
    date_format: str | None = None
    encoding: str | None = None
    on_invalid: OnInvalid = "raise"
    zero_amounts: ZeroAmounts | None = None
    returns: Returns | None = None
    duplicates: Duplicates = None
    extreme: Extreme = "keep"

    def __post_init__(self) -> None:
        if isinstance(self.source, TransactionLog):
            raise TypeError("source is already a TransactionLog; pass it directly (or use as_log to change options)")
        extra = self.extra_columns
        extra = (extra,) if isinstance(extra, str) else tuple(extra or ())
        object.__setattr__(self, "extra_columns", extra)
        for name in ("customer_id", "date"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise TypeError(f"{name} must name a column (a non-empty string); got {getattr(self, name)!r}")
        for name in ("amount", "quantity", "price", "item", "invoice", "date_format", "encoding"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise TypeError(f"{name} must be a column name (a non-empty string) or None; got {value!r}")
        _choice("on_invalid", self.on_invalid, ("raise", "drop"))
        _choice("zero_amounts", self.zero_amounts, ("keep", "drop", "raise", None))
        _choice("returns", self.returns, ("raise", "drop", "net", None))
        _choice("duplicates", self.duplicates, ("keep", "drop", None))
        _choice("extreme", self.extreme, ("keep", "cap"))
        if self.price is not None and self.amount not in (None, "amount"):
            raise ValueError(
                f"give either amount={self.amount!r} or price={self.price!r}: with price the amount of a line is "
                "quantity x price; pass amount=None"
            )

    # -- derived settings --
    @property
    def has_amount(self) -> bool:
        """Whether the log has purchase values (an amount column, or a price)."""
        return self.price is not None or self.amount is not None

    @property
    def line_items(self) -> bool:
        """Whether the log is described as line items (a price, an item or an invoice column)."""
        return any(v is not None for v in (self.price, self.item, self.invoice))

    @property
    def returns_policy(self) -> Returns:
        """The effective returns policy (``None`` resolved: ``"drop"`` under ``on_invalid="drop"``)."""
        if self.returns is not None:
            return self.returns
        return "drop" if self.on_invalid == "drop" else "raise"

    @property
    def zero_policy(self) -> ZeroAmounts:
        """The effective zero-amount policy (``None`` resolved: ``"drop"`` for line items, else ``"keep"``)."""
        if self.zero_amounts is not None:
            return self.zero_amounts
        return "drop" if self.price is not None else "keep"

    @property
    def duplicates_policy(self) -> str | None:
        """``"keep"``, ``"drop"`` or ``None`` (not checked)."""
        if self.duplicates is not None:
            return self.duplicates
        return "keep" if self.line_items else None

    def options(self) -> dict[str, Any]:
        """The read options (every field but ``source``) as a dict."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "source"}

    def __repr__(self) -> str:
        src = self.source
        if isinstance(src, pd.DataFrame):
            shown = f"DataFrame({len(src):,} rows)"
        elif isinstance(src, (str, os.PathLike)):
            shown = repr(os.fspath(src))
        else:  # e.g. a Spark DataFrame (clvforecast.spark)
            shown = type(src).__name__
        changed = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
            if f.name != "source" and getattr(self, f.name) != f.default
        ]
        return f"TransactionLog({', '.join([shown, *changed])})"


def _choice(name: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        shown = [repr(a) for a in allowed]
        text = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]
        raise ValueError(f"{name} must be {text}; got {value!r}")


#: The names of the read options (the fields of TransactionLog but ``source``), plus the old alias.
READ_OPTIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TransactionLog) if f.name != "source")
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TransactionLog) if f.name != "source"}


def as_log(source: Any, *, where: str | None = None, **read_options: Any) -> TransactionLog:
    """The one validator of a source and its read options: a :class:`TransactionLog`.

    ``source`` is a DataFrame, a path or a ``TransactionLog``; ``read_options`` are TransactionLog's fields
    (``customer_id``, ``returns``, ...) and the old name ``negative_amounts`` (for ``returns``). An unknown
    option raises ``TypeError`` naming it and the valid ones. With a ``TransactionLog`` a keyword overrides an
    option the log leaves at its default (so that a hint such as "pass returns='drop'" works on it too); an
    option the log sets to another value is refused. ``where`` names the calling function in messages.
    """
    who = f"{where}()" if where else "read option"
    if "negative_amounts" in read_options:
        old = read_options.pop("negative_amounts")
        if old is not None:
            if old not in ("raise", "drop"):
                raise ValueError(f"negative_amounts must be 'raise', 'drop' or None; got {old!r}")
            if read_options.get("returns") not in (None, old):
                raise TypeError(
                    f"negative_amounts={old!r} and returns={read_options['returns']!r} disagree; pass only returns"
                )
            read_options["returns"] = old
    unknown = [k for k in read_options if k not in READ_OPTIONS]
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(name, READ_OPTIONS, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise TypeError(
            f"{who} got an unexpected keyword argument {name!r}{hint}; the read options are "
            f"{', '.join(READ_OPTIONS)}"
        )
    if isinstance(source, TransactionLog):
        clash = [
            k for k, v in read_options.items()
            if getattr(source, k) != v and getattr(source, k) != _DEFAULTS[k]
        ]  # fmt: skip
        if clash:
            k = clash[0]
            raise TypeError(
                f"{k}={read_options[k]!r} is given as a keyword and {k}={getattr(source, k)!r} in the "
                f"TransactionLog; give it once (e.g. dataclasses.replace(log, {k}={read_options[k]!r}))"
            )
        return dataclasses.replace(source, **read_options) if read_options else source
    return TransactionLog(source, **read_options)


# --- The ledger ---------------------------------------------------------------------------------------------


def _entry(
    key: str, rows: int = 0, value: float | None = None, customers: int | None = None, note: str | None = None
) -> dict[str, Any]:
    return {
        "key": key,
        "label": LABELS.get(key, key.replace("_", " ")),
        "rows": int(rows),
        "value": None if value is None or not np.isfinite(value) else float(value),
        "customers": None if customers is None else int(customers),
        "note": note,
    }


def _ledger(rows_read: int, entries: Iterable[dict[str, Any]], rows_used: int) -> dict[str, Any]:
    entries = [dict(e) for e in entries]
    return {
        "rows_read": int(rows_read),
        "rows_used": int(rows_used),
        "entries": entries,
        "identity_holds": int(rows_read) == int(rows_used) + sum(int(e["rows"]) for e in entries),
    }


def ledger_entries(obj: Any) -> pd.DataFrame:
    """The ledger of a table or transaction frame as a DataFrame (one row per entry), with ``rows_read`` and
    ``rows_used`` in its ``attrs``; an empty frame when the object has no ledger."""
    ledger = getattr(obj, "attrs", {}).get("ledger") if not isinstance(obj, dict) else obj
    columns = ["key", "label", "rows", "value", "customers", "note"]
    if not ledger:
        return pd.DataFrame(columns=columns)
    out = pd.DataFrame(ledger["entries"], columns=columns)
    out.attrs = {k: ledger[k] for k in ("rows_read", "rows_used", "identity_holds")}
    return out


def _dropped(entries: Iterable[dict[str, Any]]) -> dict[str, int]:
    """The compatibility view ``attrs["dropped"]``: rows removed while reading, per reason."""
    reading = set(REASONS) | {
        "duplicates", "returns_netted", "returns_unmatched", "lines_cancelled", "orders_cancelled",
        "removed_between_calls",
    }  # fmt: skip
    out: dict[str, int] = {}
    for e in entries:
        if e["rows"] and e["key"] in reading:
            out[e["key"]] = out.get(e["key"], 0) + int(e["rows"])
    return out


def _prior_ledger(df: pd.DataFrame) -> tuple[int, list[dict[str, Any]]] | None:
    """``(rows_read, entries)`` continuing the ledger a DataFrame from :func:`read_transactions` carries."""
    ledger = df.attrs.get("ledger") if isinstance(df.attrs, dict) else None
    if not isinstance(ledger, dict) or not {"rows_read", "rows_used", "entries"} <= set(ledger):
        return None
    used, n = int(ledger["rows_used"]), len(df)
    entries = [dict(e) for e in ledger["entries"]]
    if n > used:  # rows were added since: the earlier accounting no longer describes this frame
        return None
    if n < used:
        entries.append(_entry("removed_between_calls", used - n))
    return int(ledger["rows_read"]), entries


# --- Dates given as arguments -------------------------------------------------------------------------------


def _ambiguous(text: str) -> bool:
    m = _AMBIGUOUS_DATE.match(text)
    return m is not None and int(m[1]) <= 12 and int(m[2]) <= 12 and m[1] != m[2]


def _to_date(value: Any, name: str, date_format: str | None = None) -> dt.date:
    """A calendar date from a string, date, datetime or Timestamp (a time of day is dropped).

    Text is read with ``date_format`` when given (ISO 8601 is understood too); without it, ISO 8601 and other
    unambiguous forms are understood, and an all-numeric date whose day and month could be swapped
    (``06/01/2011``) is refused. Numbers are refused (``19970930`` is not a date to pandas: it would be read
    as nanoseconds).
    """
    if value is None:
        raise ValueError(f"{name} is required (a date such as '1997-09-30')")
    if isinstance(value, (bool, int, float, np.integer, np.floating)):
        text = str(int(value)) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else ""
        compact = (
            f" or the text {text!r} with date_format='%Y%m%d'" if len(text) == 8 and text.isdigit() else ""
        )
        raise TypeError(
            f"{name}={value!r} is a number, not a date; give a date such as '1997-09-30'{compact}"
        )
    if isinstance(value, str):
        text = value.strip()
        if date_format:
            try:
                return dt.datetime.strptime(text, date_format).date()
            except ValueError:
                iso = _iso_date(text)
                if iso is not None:
                    return iso
                raise ValueError(
                    f"{name}={value!r} does not match date_format={date_format!r} (nor is it an ISO date such "
                    "as '1997-09-30')"
                ) from None
        if _ambiguous(text):
            raise ValueError(
                f"{name}={value!r} is ambiguous: day first or month first? Pass date_format='%d/%m/%Y' or "
                "'%m/%d/%Y' (with the separators of the value), or write it as an ISO date such as "
                "'2011-01-06'"
            )
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name}={value!r} is not a date; give e.g. '1997-09-30'") from exc
    if pd.isna(ts):
        raise ValueError(f"{name} is missing; give a date such as '1997-09-30'")
    return ts.date()


def _iso_date(text: str) -> dt.date | None:
    try:
        return dt.datetime.fromisoformat(text).date()
    except ValueError:
        return None


# --- Sources ------------------------------------------------------------------------------------------------


def _quote_ident(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _parquet_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name.lower().endswith(_PARQUET_SUFFIXES)
                  and not p.name.startswith((".", "_")))  # fmt: skip


def _source_kind(source: Any) -> str:
    """``"dataframe"``, ``"csv"``, ``"parquet"`` or ``"parquet_folder"``."""
    if isinstance(source, pd.DataFrame):
        return "dataframe"
    if isinstance(source, (str, os.PathLike)):
        path = Path(os.fspath(source))
        name = path.name.lower()
        if path.is_dir():
            if _parquet_files(path):
                return "parquet_folder"
            kind = "a CSV file" if name.endswith(_CSV_SUFFIXES) else "a file"
            raise DataValidationError(
                f"source {os.fspath(source)!r} is a folder, not {kind}, and holds no Parquet files; give the path "
                "of the file inside it, or a folder of .parquet files (a dataset as Spark or pyarrow write it)"
            )
        if name.endswith(_PARQUET_SUFFIXES):
            return "parquet"
        if name.endswith(_CSV_SUFFIXES):
            return "csv"
        raise DataValidationError(
            f"source {os.fspath(source)!r}: unknown file type; give a .csv, .tsv, .txt (optionally .gz) or "
            ".parquet file, a folder of Parquet files, or a DataFrame"
        )
    raise TypeError(
        "source must be a pandas DataFrame or a path to a CSV or Parquet file (or a folder of Parquet files), or "
        f"a TransactionLog; got {type(source).__name__}"
    )


def _argument_of(key: str) -> str:
    return {"date_raw": "date", "amount_raw": "amount", "quantity_raw": "quantity", "price_raw": "price"}.get(
        key, key
    )


def _check_columns(fields: dict[str, str], present: list[str]) -> None:
    missing = [c for c in dict.fromkeys(fields.values()) if c not in present]
    if not missing:
        return
    shown = ", ".join(repr(c) for c in present[:30]) + (" ..." if len(present) > 30 else "")
    also = f" (also missing: {', '.join(repr(c) for c in missing[1:])})" if len(missing) > 1 else ""
    key = next(k for k, v in fields.items() if v == missing[0])
    argument = _argument_of(key)
    close = difflib.get_close_matches(missing[0], present, n=1, cutoff=0.6)
    if key.startswith("extra_"):
        fix = f"did you mean {close[0]!r} in extra_columns?" if close else "remove it from extra_columns"
    else:
        fix = (
            f"did you mean {argument}={close[0]!r}?" if close else f"pass {argument}='<the column that holds it>'"
        )
        if argument == "amount":  # a log of visits: say how to read it without amounts
            fix += ", or amount=None if the log has no amounts (purchases and P(alive) only, no spend)"
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
    if isinstance(s.dtype, pd.CategoricalDtype):
        return s.astype(object).where(s.notna(), None).astype("string")
    if s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) in ("mixed", "mixed-integer"):
        return s.astype("string")  # e.g. ids partly numbers and partly text: all text, as in a CSV file
    return s


def _engine_message(exc: BaseException) -> str:
    """DuckDB's message without the SQL it quotes (``LINE 1: ...``) and without its generic advice."""
    text = str(exc)
    text = re.split(r"\n\s*LINE \d+:", text)[0]
    text = re.split(r"\n\s*Possible (fixes|Solution)", text)[0]
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    first = lines[0] if lines else type(exc).__name__
    return re.sub(r"^[A-Za-z ]+ Error: ", "", first)


def _open_text(path: str, encoding: str) -> Any:
    if path.lower().endswith(".gz"):
        return _stdio.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding, errors="strict", newline="")
    return open(path, encoding=encoding, errors="strict", newline="")  # noqa: SIM115


def _header_delimiter(header: str) -> str | None:
    """The delimiter of a CSV header line: the most frequent of ``,``, ``;``, tab and ``|`` (None: none there).
    The one rule of both engines, so that they split a file the same way."""
    return max(",;\t|", key=header.count) if any(c in header for c in ",;\t|") else None


def _csv_problem(path: str, encoding: str | None) -> str | None:
    """A plain sentence about why a CSV file cannot be read as a table, or None: not text in its encoding,
    or a line with more or fewer fields than the header (the first such line)."""
    enc = encoding or "utf-8"
    try:
        with _open_text(path, enc) as f:
            header = f.readline()
            if not header:
                return None
            delimiter = _header_delimiter(header) or ","
            f.seek(0)
            reader = csv.reader(f, delimiter=delimiter, quotechar='"')
            names = next(reader, [])
            for row in reader:
                if row and len(row) != len(names):
                    sep = {"\t": "tab", ",": "','", ";": "';'", "|": "'|'"}[delimiter]
                    what = "more" if len(row) > len(names) else "fewer"
                    return (
                        f"line {reader.line_num} has {len(row)} fields where the header has {len(names)} "
                        f"({', '.join(repr(n) for n in names[:8])}{' ...' if len(names) > 8 else ''}): "
                        + (
                            f"a value holding an unquoted {sep}? Quote such values (\"a{delimiter}b\") or remove "
                            "the extra field"
                            if what == "more"
                            else "a line cut short? Complete or remove it"
                        )
                    )
    except UnicodeDecodeError as exc:
        return _encoding_message(path, encoding, exc)
    except (OSError, csv.Error, LookupError):
        return None
    return None


def _encoding_message(path: str, encoding: str | None, exc: BaseException | None = None) -> str:
    where = ""
    if isinstance(exc, UnicodeDecodeError):
        where = f" (byte 0x{exc.object[exc.start]:02x} at position {exc.start:,} of a block is not valid)"
    if encoding:
        return (
            f"{path!r} is not text in the encoding {encoding!r}{where}; pass the file's encoding (e.g. "
            "encoding='latin-1' or 'cp1252'), or re-encode the file to UTF-8"
        )
    return (
        f"{path!r} is not UTF-8 text{where}; it is probably in a legacy encoding such as latin-1 or cp1252 (a "
        "spreadsheet export): pass encoding='latin-1' (or the file's encoding), or re-encode it to UTF-8, e.g. "
        "`iconv -f latin1 -t utf-8 in.csv > out.csv`"
    )


def _file_error(exc: BaseException, path: str, kind: str, encoding: str | None) -> DataValidationError:
    """A DataValidationError in plain words for an engine error while reading a file."""
    text = str(exc)
    if kind == "csv":
        if "encod" in text.lower() or "unicode" in text.lower():
            return DataValidationError(_encoding_message(path, encoding))
        problem = _csv_problem(path, encoding)
        if problem:
            return DataValidationError(f"could not read the CSV file {path!r}: {problem}")
        return DataValidationError(f"could not read the CSV file {path!r}: {_engine_message(exc)}")
    if "magic bytes" in text or "parquet" in text.lower() or "thrift" in text.lower():
        return DataValidationError(
            f"could not read {path!r}: it is not a valid Parquet file (damaged, cut short, or not Parquet at "
            f"all): {_engine_message(exc)}"
        )
    return DataValidationError(f"could not read {path!r}: {_engine_message(exc)}")


@dataclass
class _Scan:
    """How to scan a file source: the DuckDB table function, the path, and a temporary copy to delete."""

    kind: str
    path: str
    encoding: str | None = None
    temp: str | None = None

    def function(self, text: Sequence[str] = ()) -> str:
        """DuckDB table function reading the file; ``text``: CSV columns to read as VARCHAR."""
        if self.kind == "parquet":
            # hive_partitioning off: a path like 'date=2024-01-01/tx.parquet' must not replace the file's columns
            return f"read_parquet({_quote_literal(self.path)}, hive_partitioning = false)"
        if self.kind == "parquet_folder":  # a dataset: its partition folders (country=UK/) are columns
            pattern = os.path.join(self.path, "**", "*.parquet")
            return f"read_parquet({_quote_literal(pattern)}, hive_partitioning = true, union_by_name = true)"
        types = ", ".join(f"{_quote_literal(c)}: 'VARCHAR'" for c in dict.fromkeys(text))
        encoding = f", encoding = {_quote_literal(self.encoding)}" if self.encoding else ""
        # quote and comment set: the sniffer must never take '#12' for a comment nor guess another quote
        return (
            f"read_csv({_quote_literal(self.temp or self.path)}, header = true, hive_partitioning = false, "
            f"comment = '', quote = '\"', escape = '\"'{encoding}{f', types = {{{types}}}' if text else ''})"
        )

    def close(self) -> None:
        if self.temp:
            Path(self.temp).unlink(missing_ok=True)
            self.temp = None


def _encoding_name(encoding: str) -> str:
    """Python's name of a text encoding, or a clear refusal naming the argument and examples."""
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(
            f"encoding={encoding!r} is not a known text encoding; e.g. 'utf-8', 'latin-1', 'cp1252', 'utf-16'"
        ) from None


def _prepare_csv(path: str, encoding: str | None) -> _Scan:
    """The scan of a CSV file; a file in an encoding DuckDB cannot read is re-encoded to a temporary UTF-8 copy."""
    if encoding is None:
        return _Scan("csv", path)
    name = _encoding_name(encoding)
    native = _NATIVE_ENCODINGS.get(name.replace("_", "-")) or _NATIVE_ENCODINGS.get(encoding.lower())
    if native == "utf-8":
        return _Scan("csv", path)
    if native:
        return _Scan("csv", path, encoding=native)
    fd, temp = tempfile.mkstemp(suffix=".csv")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out, _open_text(path, encoding) as src:
            shutil.copyfileobj(src, out, 1 << 20)
    except UnicodeDecodeError as exc:
        Path(temp).unlink(missing_ok=True)
        raise DataValidationError(_encoding_message(path, encoding, exc)) from None
    return _Scan("csv", path, temp=temp)


# --- Parsing expressions, chosen by the column's DuckDB type ------------------------------------------------


def _id_exprs(dtype: str, kind: str) -> tuple[str, str | None]:
    """The customer-id expression, and a test which, true for every valid id, allows a cast to BIGINT.

    Integer ids of any width become BIGINT, so every source gives the same id type: a CSV column of canonical
    integers or whole-number decimals and a float column of whole numbers (ids with gaps, as pandas reads
    them) too. Text ids in a DataFrame or Parquet file stay text; blank text is a missing id.
    """
    if dtype in _INTEGER_TYPES:
        return "CAST(customer_id AS BIGINT)", None
    if dtype.startswith("ENUM"):
        return "NULLIF(trim(CAST(customer_id AS VARCHAR), ' '), '')", None
    if dtype in ("FLOAT", "DOUBLE"):
        return (
            "CASE WHEN isnan(customer_id) THEN NULL ELSE customer_id END",
            "customer_id = round(customer_id) AND abs(customer_id) < 1e18",
        )
    if dtype == "VARCHAR":  # spaces around an id are not part of it (' C001 ' is 'C001'; spaces only, in every engine)
        blank = "CASE WHEN trim(customer_id, ' ') = '' THEN NULL ELSE trim(customer_id, ' ') END"
        if kind == "csv":
            return blank, f"regexp_full_match(customer_id, '{_CANONICAL_INT}')"
        return blank, None
    return "customer_id", None


def _date_expr(dtype: str, date_format: str | None, zone: str | None = None, *, timestamp: bool = False) -> str:
    """The date (DATE), or with ``timestamp`` the local timestamp (TIMESTAMP), of ``date_raw``."""
    target = "TIMESTAMP" if timestamp else "DATE"
    if dtype == "DATE":
        return f"CAST(date_raw AS {target})"
    if zone and (dtype == "TIMESTAMP WITH TIME ZONE" or dtype.startswith("TIMESTAMPTZ")):
        # the local time in the zone the file was written in (TIMESTAMPTZ_NS etc. cast to microseconds first);
        # the session is in UTC, so a fixed offset is added to the UTC wall-clock time
        instant = "CAST(date_raw AS TIMESTAMPTZ)"
        offset = _OFFSET.match(zone)
        if offset:
            minutes = (1 if offset["sign"] == "+" else -1) * (int(offset["h"]) * 60 + int(offset["m"]))
            return f"CAST(CAST({instant} AS TIMESTAMP) + INTERVAL ({minutes}) MINUTE AS {target})"
        return f"CAST(timezone({_quote_literal(zone)}, {instant}) AS {target})"
    if dtype.startswith("TIMESTAMP"):
        if not timestamp:
            return "CAST(date_raw AS DATE)"
        if "TIME ZONE" in dtype or dtype.startswith("TIMESTAMPTZ"):  # the UTC wall-clock time (session in UTC)
            return "CAST(CAST(date_raw AS TIMESTAMPTZ) AS TIMESTAMP)"
        return "CAST(date_raw AS TIMESTAMP)"
    if date_format:
        text = "trim(date_raw)" if dtype == "VARCHAR" else "CAST(date_raw AS VARCHAR)"
        return f"CAST(try_strptime({text}, {_quote_literal(date_format)}) AS {target})"
    text = "date_raw" if dtype == "VARCHAR" else "CAST(date_raw AS VARCHAR)"  # the cast ignores blanks around
    return f"TRY_CAST({text} AS {target})"


_OFFSET = re.compile(r"^(?P<sign>[+-])(?P<h>\d\d):?(?P<m>\d\d)$")


def _parquet_zone(con: duckdb.DuckDBPyConnection, path: str, column: str) -> str | None:
    """The time zone a Parquet timestamp column was written in (its Arrow schema names it), or None.

    A fixed offset (``+05:30``) is returned as it is; a zone name DuckDB does not know gives None (the UTC
    day), so that an exotic zone never makes a file unreadable. For a folder, its first file is asked.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if Path(path).is_dir():
        files = _parquet_files(Path(path))
        if not files:
            return None
        path = str(files[0])
    try:
        kind = pq.read_schema(path).field(column).type
    except (KeyError, OSError, pa.ArrowException):
        return None
    zone = getattr(kind, "tz", None) if pa.types.is_timestamp(kind) else None
    if not zone or _OFFSET.match(zone) or zone.upper() == "UTC":
        return zone if zone and zone.upper() != "UTC" else None
    try:
        con.execute("SELECT timezone($zone, TIMESTAMPTZ '2000-01-01 00:00:00+00')", {"zone": zone}).fetchall()[0]
    except duckdb.Error:
        return None
    return zone


def _number_expr(dtype: str, column: str) -> str:
    if dtype.startswith(_NUMERIC_PREFIXES):
        return f"CAST({column} AS DOUBLE)"
    text = f"trim({column})" if dtype == "VARCHAR" else f"CAST({column} AS VARCHAR)"
    return f"TRY_CAST({text} AS DOUBLE)"


def _check_date_format(con: duckdb.DuckDBPyConnection, date_format: str | None) -> None:
    if date_format is None:
        return
    try:
        con.execute("SELECT try_strptime('2000-01-01', $f)", {"f": date_format}).fetchall()[0]
    except duckdb.Error as exc:
        raise _invalid_date_format(date_format, _engine_message(exc)) from None
    _check_date_codes(date_format)


def _invalid_date_format(date_format: str, why: str) -> ValueError:
    return ValueError(
        f"date_format={date_format!r} is not a valid date pattern ({why}); use strftime codes such as %Y %m %d "
        "%H %M %S, e.g. date_format='%d/%m/%Y' or '%Y%m%d'"
    )


def _check_date_codes(date_format: str) -> None:
    """A date pattern must name a day, a month or a year."""
    if not any(code in date_format for code in ("%d", "%j", "%m", "%Y", "%y", "%b", "%B", "%F", "%x", "%c")):
        raise ValueError(
            f"date_format={date_format!r} has no day, month or year code; e.g. date_format='%d/%m/%Y'"
        )


def _exact_sum(expr: str, where: str | None = None) -> str:
    """SQL summing ``expr`` exactly (as DECIMAL(38, 10)), so that a total does not depend on the order in which
    rows arrive (threads, source type); values below 1e15, as every valid amount is. ``where``: the rows summed."""
    value = f"CAST({expr} AS DECIMAL(38, 10))"
    if where:  # a CASE, not a FILTER: the cast must not see the rows left out (NaN, infinity)
        value = f"CASE WHEN {where} THEN {value} END"
    return f"CAST(sum({value}) AS DOUBLE)"


# --- What one pass produced ---------------------------------------------------------------------------------


@dataclass
class Prepared:
    """A DuckDB connection holding the clean view ``tx`` and what reading counted.

    Use it as a context manager, or call :meth:`close`.
    """

    con: duckdb.DuckDBPyConnection
    n_rows: int  # rows in this pass's source
    dropped: dict[str, int] = field(default_factory=dict)  # rows dropped per reason while reading (whole ledger)
    n_after: int = 0  # valid rows dated after ``observation_end`` (the caller's SQL excludes them)
    first_date: dt.date | None = None  # the earliest valid date
    last_date: dt.date | None = None  # the latest valid date
    has_amount: bool = True
    passthrough: tuple[str, ...] = ()  # columns of ``tx`` beside customer_id, date, amount
    log: TransactionLog | None = None
    rows_read: int = 0  # rows of the original source (the ledger's, continued from a tidy frame)
    entries: list[dict[str, Any]] = field(default_factory=list)  # the ledger so far, in pipeline order
    n_tx: int = 0  # rows of ``tx``
    value_after: float | None = None  # their amount, for the ledger
    default_end: dt.date | None = None  # the default observation end (suspicious dates left out)
    order_column: str | None = None  # column of ``tx`` giving the source order, when ``tx`` is a table
    _closers: list[Any] = field(default_factory=list)

    def ledger(self, rows_used: int, extra: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
        """The ledger dict with this pass's entries, ``extra`` entries after them, and ``rows_used``."""
        return _ledger(self.rows_read, [*self.entries, *extra], rows_used)

    def after(self, obs: dt.date) -> tuple[int, float | None]:
        """Rows of ``tx`` dated after ``obs`` and their value (one query; for the line-item path and defaults)."""
        row = self.con.execute(
            f"SELECT count(*), {_exact_sum('amount')} FROM tx WHERE date > $obs", {"obs": obs}
        ).fetchall()[0]
        assert row is not None
        return int(row[0]), (float(row[1]) if row[1] is not None and self.has_amount else None)

    def close(self) -> None:
        self.con.close()
        for closer in self._closers:
            closer()
        self._closers.clear()

    def __enter__(self) -> Prepared:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- Messages -----------------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    if value is None:
        return "a missing value"
    return repr(value) if isinstance(value, str) else str(value)


def _examples(con: duckdb.DuckDBPyConnection, reason: str, columns: Sequence[str], k: int = 3) -> str:
    select = ", ".join(columns)
    rows = con.execute(f"SELECT {select} FROM parsed_view WHERE reason = ? LIMIT {k}", [reason]).fetchall()
    if len(columns) == 1:
        return ", ".join(_show(r[0]) for r in rows)
    return ", ".join("(" + ", ".join(_show(v) for v in r) + ")" for r in rows)


def _error_message(
    reason: str, n: int, n_rows: int, log: TransactionLog, con: duckdb.DuckDBPyConnection
) -> str:
    rows, counted = f"{n:,} of {n_rows:,} rows", "to drop those rows (they are counted)"
    if reason == "null_customer_id":
        return (
            f"column {log.customer_id!r}: {rows} have no customer id (the rows dated "
            f"{_examples(con, reason, ['date_raw'])}); fill them in, or pass on_invalid='drop' {counted}"
        )
    if reason == "unparseable_date":
        examples = _examples(con, reason, ["date_raw"])
        if log.date_format:
            return (
                f"column {log.date!r}: {rows} are missing or do not match date_format={log.date_format!r}, "
                f"e.g. {examples}; fix the format or pass on_invalid='drop' {counted}"
            )
        values = [r[0] for r in con.execute(
            "SELECT date_raw FROM parsed_view WHERE reason = ? AND date_raw IS NOT NULL LIMIT 50", [reason]
        ).fetchall()]
        numeric = [m for m in (_AMBIGUOUS_DATE.match(str(v)) for v in values) if m]
        if numeric:
            m = numeric[0]
            sep = re.findall(r"[/.\-]", m.group(0))[0]
            year = "%Y" if len(m[3]) == 4 else "%y"
            day_first, month_first = f"%d{sep}%m{sep}{year}", f"%m{sep}%d{sep}{year}"
            if any(int(x[1]) > 12 for x in numeric) and not any(int(x[2]) > 12 for x in numeric):
                fix = f"date_format={day_first!r} (day first)"
            elif any(int(x[2]) > 12 for x in numeric) and not any(int(x[1]) > 12 for x in numeric):
                fix = f"date_format={month_first!r} (month first)"
            else:
                fix = f"date_format={day_first!r} (day first) or {month_first!r} (month first)"
            ambiguous = " (is 06/01/2011 the 6th of January or the 1st of June?)" if any(
                _ambiguous(x.group(0)) for x in numeric) else ""
            return (
                f"column {log.date!r}: {rows} are missing or could not be parsed as dates, e.g. {examples}: "
                f"numeric dates such as {m.group(0).strip()!r} are never guessed{ambiguous}; pass {fix}, or "
                f"on_invalid='drop' {counted}"
            )
        return (
            f"column {log.date!r}: {rows} are missing or could not be parsed as dates, e.g. {examples}; "
            f"pass date_format (e.g. date_format='%d/%m/%Y' or '%Y%m%d') or on_invalid='drop' {counted}"
        )
    if reason == "non_numeric_amount":
        if log.price is not None:
            cols = [c for c in (log.quantity, log.price) if c]
            shown = " and ".join(repr(c) for c in cols)
            raw = ["quantity_raw", "price_raw"] if log.quantity else ["price_raw"]
            return (
                f"column{'s' if len(cols) > 1 else ''} {shown}: {rows} are missing or not finite numbers, e.g. "
                f"{_examples(con, reason, raw)}; write plain numbers or pass on_invalid='drop' {counted}"
            )
        if log.amount is None and log.quantity is not None:
            return (
                f"column {log.quantity!r}: {rows} are missing or not numbers, e.g. "
                f"{_examples(con, reason, ['quantity_raw'])}; write plain numbers or pass on_invalid='drop' "
                f"{counted}"
            )
        return (
            f"column {log.amount!r}: {rows} are missing or not finite numbers below {_MAX_AMOUNT:.0e}, e.g. "
            f"{_examples(con, reason, ['amount_raw'])}; write plain numbers (no currency symbols or thousands "
            f"separators) or pass on_invalid='drop' {counted}"
        )
    if reason == "negative_price":
        return (
            f"column {log.price!r}: {rows} have a negative unit price (adjustments such as bad debt, not sales), "
            f"e.g. {_examples(con, reason, ['price_raw'])}; pass on_invalid='drop' {counted}"
        )
    if reason == "negative_amount":
        if log.price is not None:  # line items: no amount column, the value is quantity x price
            what = f"columns {log.quantity or 'quantity'!r} x {log.price!r}: {rows} have a negative value"
            examples = _examples(con, reason, ["quantity_raw", "price_raw"] if log.quantity else ["price_raw"])
        else:
            what = f"column {log.amount!r}: {rows} have negative amounts"
            examples = _examples(con, reason, ["amount_raw"])
        return (
            f"{what} (returns or refunds?), e.g. {examples}; pass returns='net' to net them against the "
            "customer's earlier purchases (a fully returned order then no longer counts), or returns='drop' to "
            "drop only these rows (counted; the purchases they cancel then still count)"
        )
    return (
        f"column {log.amount or log.price!r}: {rows} have zero amounts, e.g. {_examples(con, reason, ['amount'])}; "
        f"pass zero_amounts='keep' to count them as purchases or zero_amounts='drop' {counted}"
    )


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {r.replace('_', ' ')}" for r, n in counts.items())


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


# --- Reading ------------------------------------------------------------------------------------------------


def _fields(log: TransactionLog) -> dict[str, str]:
    """Our names (``customer_id``, ``date_raw``, ...) -> the source's column names."""
    fields = {"customer_id": log.customer_id, "date_raw": log.date}
    if log.price is not None:
        fields["price_raw"] = log.price
    elif log.amount is not None:
        fields["amount_raw"] = log.amount
    if log.quantity is not None:
        fields["quantity_raw"] = log.quantity
    if log.item is not None:
        fields["item"] = log.item
    if log.invoice is not None:
        fields["invoice"] = log.invoice
    # DuckDB's names are case-insensitive: 'Date' would clash with the result's 'date'
    taken = {"customer_id", "date", "amount"}
    taken |= {k for k in ("quantity", "item", "invoice") if getattr(log, k) is not None}
    for i, name in enumerate(log.extra_columns):
        if not isinstance(name, str):
            raise TypeError(f"extra_columns must be column names (strings); got {name!r}")
        if name.casefold() in taken:
            raise ValueError(f"extra_columns: {name!r} is a column of the result already; rename it first")
        taken.add(name.casefold())
        fields[f"extra_{i}"] = name
    return fields


def _check_file(path: str, kind: str) -> None:
    """A file source exists and is not empty (a folder is checked by :func:`_source_kind`)."""
    if kind in ("csv", "parquet"):
        if not Path(path).exists():
            raise FileNotFoundError(f"no such file: {path!r}")
        if Path(path).stat().st_size == 0:
            raise DataValidationError(f"the file {path!r} is empty (0 bytes); expected a header line and rows")


def _check_csv_columns(path: str, encoding: str | None, present: list[str]) -> None:
    """A CSV file read as one column whose name holds a delimiter: the file's problem in plain words."""
    if len(present) == 1 and any(sep in present[0] for sep in ",;\t|"):
        problem = _csv_problem(path, encoding)
        raise DataValidationError(
            f"could not read the CSV file {path!r}: "
            + (problem or f"it was read as a single column named {present[0]!r}; check its delimiter")
        )


def _register_source(con: duckdb.DuckDBPyConnection, log: TransactionLog, kind: str, fields: dict[str, str]) -> _Scan | None:
    """Create the view ``raw`` over the source, one column per field (renamed at the source, so that later
    queries never clash with the source's own names). Returns the file scan (to close), or None."""
    source = log.source
    if kind == "dataframe":
        df: pd.DataFrame = source
        labels = {str(c): c for c in df.columns}
        _check_columns(fields, list(labels))
        frame = pd.DataFrame({k: _frame_column(df, labels[v]) for k, v in fields.items()}, copy=False)
        try:
            con.register("source_frame", frame)
        except duckdb.Error:  # DuckDB cannot scan strided arrays (df.iloc[::-1]): scan a compact copy
            frame = frame.copy(deep=True)
            con.register("source_frame", frame)
        con.execute("CREATE VIEW raw AS SELECT * FROM source_frame")
        return None
    path = os.fspath(source)
    _check_file(path, kind)
    scan = _prepare_csv(path, log.encoding) if kind == "csv" else _Scan(kind, path)
    try:
        try:
            described = con.execute(f"DESCRIBE SELECT * FROM {scan.function()}").fetchall()
        except duckdb.Error as exc:
            raise _file_error(exc, path, kind, log.encoding) from None
        present = [r[0] for r in described]
        if kind == "csv":
            _check_csv_columns(path, log.encoding, present)
        _check_columns(fields, present)
        # In a CSV, parsed fields are read as text: each bad value is then ours to count and report, and an
        # id column whose first rows look numeric can neither fail further down nor be mangled ('017' is not 17).
        text = [v for k, v in fields.items() if k in _PARSED_FIELDS] if kind == "csv" else []
        select = ", ".join(f"{_quote_ident(v)} AS {k}" for k, v in fields.items())
        con.execute(f"CREATE VIEW raw AS SELECT {select} FROM {scan.function(text)}")
    except BaseException:
        scan.close()
        raise
    return scan


def _parsed_view(
    con: duckdb.DuckDBPyConnection, log: TransactionLog, kind: str, fields: dict[str, str], zone: str | None,
    with_ts: bool, carry: Sequence[str] = (),
) -> tuple[dict[str, str], str | None]:
    """Define the view ``parsed``: the parsed fields and the first rule each row breaks (``reason``).

    ``carry``: columns of ``raw`` passed through unchanged. Returns the source's DuckDB types and the test that
    allows integer ids.
    """
    types = {r[0]: r[1].upper() for r in con.execute("DESCRIBE SELECT * FROM raw").fetchall()}
    id_expr, id_integer_test = _id_exprs(types["customer_id"], kind)
    date_expr = _date_expr(types["date_raw"], log.date_format, zone)
    source = "raw"
    if with_ts:  # the timestamp is parsed once and gives the date (a date-only value parses as midnight)
        ts = _date_expr(types["date_raw"], log.date_format, zone, timestamp=True)
        source = f"(SELECT *, {ts} AS ts0 FROM raw)"
        date_expr = f"coalesce(CAST(ts0 AS DATE), {date_expr})"
    cols = [f"{id_expr} AS customer_id", "date_raw", f"{date_expr} AS date"]
    if with_ts:
        cols.append(f"coalesce(ts0, CAST({date_expr} AS TIMESTAMP)) AS ts")
    reason = ["WHEN customer_id IS NULL THEN 'null_customer_id'", "WHEN date IS NULL THEN 'unparseable_date'"]
    finite = f"abs(amount) < {_MAX_AMOUNT}"  # false for NaN and infinity too
    if "quantity_raw" in fields:
        cols += ["quantity_raw", f"{_number_expr(types['quantity_raw'], 'quantity_raw')} AS quantity"]
    if log.price is not None:
        quantity = "quantity" if "quantity_raw" in fields else "1.0"
        cols += ["price_raw", f"{_number_expr(types['price_raw'], 'price_raw')} AS price"]
        amount = f"{quantity} * price"
        bad = (
            f"quantity IS NULL OR NOT abs(quantity) < {_MAX_AMOUNT} OR " if "quantity_raw" in fields else ""
        ) + f"price IS NULL OR NOT abs(price) < {_MAX_AMOUNT} OR NOT {finite}"
        reason += [f"WHEN {bad} THEN 'non_numeric_amount'", "WHEN price < 0 THEN 'negative_price'"]
    elif log.amount is not None:
        cols += ["amount_raw"]
        amount = _number_expr(types["amount_raw"], "amount_raw")
        reason.append(f"WHEN amount IS NULL OR NOT {finite} THEN 'non_numeric_amount'")
    else:
        amount = "CAST(0 AS DOUBLE)"
    if "quantity_raw" in fields and log.price is None:
        reason.append(f"WHEN quantity IS NULL OR NOT abs(quantity) < {_MAX_AMOUNT} THEN 'non_numeric_amount'")
    if log.has_amount:
        if log.returns_policy != "net":
            reason.append("WHEN amount < 0 THEN 'negative_amount'")
        if log.zero_policy != "keep":
            reason.append("WHEN amount = 0 THEN 'zero_amount'")
    cols += [k for k in fields if k in ("item", "invoice") or k.startswith("extra_")]
    cols += list(carry)
    inner = ", ".join(cols)
    # 'amount' refers to the inner select's quantity * price when there is a price: compute it in a middle layer
    con.execute(
        f"""CREATE VIEW parsed_view AS
        SELECT *, CASE {" ".join(reason)} ELSE NULL END AS reason
        FROM (SELECT *, {amount} AS amount FROM (SELECT {inner} FROM {source}))"""
    )
    return types, id_integer_test


@dataclass
class _Counts:
    n_rows: int
    dropped: dict[str, int]
    values: dict[str, float | None]
    first_date: dt.date | None
    last_date: dt.date | None
    n_after: int
    value_after: float | None
    integer_ids: bool
    whole_quantity: bool
    months: list[tuple[int, int, dt.date, dt.date]]  # (year * 12 + month - 1, valid rows, first, last day)
    future: int


def _count(
    con: duckdb.DuckDBPyConnection, log: TransactionLog, fields: dict[str, str], id_integer_test: str | None,
    obs: dt.date | None, today: dt.date, by_month: bool,
) -> _Counts:
    """One scan of ``parsed``: the rows, the reasons, and (``by_month``) the dates' spread by month.

    Only counts (a month number is a cheap integer key); the value of the rows a reason drops is summed by a
    second query, run only when rows are dropped.
    """
    valid = "reason IS NULL"
    by_reason = ", ".join(f"count(*) FILTER (WHERE reason = '{r}')" for r in REASONS)
    integer_ids = f"bool_and({id_integer_test}) FILTER (WHERE {valid})" if id_integer_test else "false"
    whole_q = (
        f"bool_and(quantity = round(quantity) AND abs(quantity) < 1e15) FILTER (WHERE {valid})"
        if "quantity_raw" in fields else "false"
    )
    # By month only when the spread of the dates matters (no observation end given: the default one must leave
    # out dates far beyond the rest); grouping costs about 5% of an RFM table, so it is skipped otherwise.
    month = "year(date) * 12 + month(date) - 1" if by_month else "NULL"
    rows = con.execute(
        f"""SELECT {month} AS month, count(*), {by_reason},
                   count(*) FILTER (WHERE {valid} AND date > $obs),
                   {_exact_sum('amount', f"{valid} AND date > $obs")},
                   min(date) FILTER (WHERE {valid}), max(date) FILTER (WHERE {valid}),
                   NULL,
                   count(*) FILTER (WHERE {valid} AND date > $today),
                   {integer_ids}, {whole_q}
            FROM parsed{" GROUP BY 1" if by_month else ""}""",
        {"obs": obs, "today": today},
    ).fetchall()
    n_rows = sum(int(r[1]) for r in rows)
    if n_rows == 0:
        raise DataValidationError("the transaction log is empty (0 rows); check the source")
    k = len(REASONS)
    dropped = {
        reason: n for i, reason in enumerate(REASONS) if (n := sum(int(r[2 + i]) for r in rows))
    }
    values: dict[str, float | None] = {}
    if dropped and log.has_amount:
        values = {
            r[0]: (float(r[1]) if r[1] is not None else None)
            for r in con.execute(
                f"""SELECT reason, {_exact_sum("amount", f"abs(amount) < {_MAX_AMOUNT}")}
                    FROM parsed WHERE reason IS NOT NULL GROUP BY reason"""
            ).fetchall()
        }
    base = 2 + k
    # valid rows of each month: its rows less those a reason removes (column base + 4, left NULL in the query)
    rows = [(*r[: base + 4], int(r[1]) - sum(int(r[2 + i]) for i in range(k)), *r[base + 5 :]) for r in rows]
    has = [r for r in rows if int(r[base + 4])]  # months holding valid rows
    after_values = [r[base + 1] for r in rows if r[base + 1] is not None]
    months = sorted((int(r[0]), int(r[base + 4]), r[base + 2], r[base + 3]) for r in has if r[0] is not None)
    # (without by_month there is one row, month NULL: no spread, only the future dates are checked)
    return _Counts(
        n_rows=n_rows,
        dropped=dropped,
        values=values,
        first_date=min(r[base + 2] for r in has) if has else None,
        last_date=max(r[base + 3] for r in has) if has else None,
        n_after=sum(int(r[base]) for r in rows),
        value_after=float(sum(after_values)) if after_values and log.has_amount else None,
        integer_ids=bool(has) and id_integer_test is not None and all(r[base + 6] for r in has),
        whole_quantity=bool(has) and "quantity_raw" in fields and all(r[base + 7] for r in has),
        months=months,
        future=sum(int(r[base + 5]) for r in rows),
    )


def _suspicious_dates(
    months: list[tuple[int, int, dt.date, dt.date]], future: int
) -> tuple[dt.date | None, int, int]:
    """``(cut, n_far, n_future)``: valid dates after ``cut`` are far beyond the rest (after a gap of more than
    12 months without a row, holding less than 1% of the rows); the number of such rows and of rows dated after
    ``today`` (``future``, as counted)."""
    total = sum(m[1] for m in months)
    for i in range(1, len(months)):
        gap = months[i][0] - months[i - 1][0] - 1
        later = sum(m[1] for m in months[i:])
        if gap > 12 and later < 0.01 * total:
            return months[i - 1][3], later, future
    return None, 0, future


def open_transactions(
    source: Any,
    *,
    observation_end: Any = None,
    warn: bool = True,
    stacklevel: int = 2,
    where: str | None = None,
    engine: Any = None,
    **read_options: Any,
) -> Prepared:
    """Open ``source`` in a new DuckDB connection, validate it and define the clean relation ``tx``.

    The shared front half of :func:`read_transactions` and :mod:`clvforecast.rfm`; close the result (or use it
    in a ``with`` block). ``tx(customer_id, date DATE, amount DOUBLE[, quantity, item, invoice, extra
    columns])`` holds the rows that survive reading (validation, duplicates, returns); ``amount`` is 0 for
    frequency-only data. ``read_options`` are those of :class:`TransactionLog` (see :func:`as_log`). When
    ``observation_end`` is given, the rows dated after it are counted (``n_after``). ``stacklevel`` places the
    :class:`DataQualityWarning` (2: at the caller of the function that calls this). ``engine``: what runs the SQL
    (default :class:`DuckDBEngine`; :mod:`clvforecast.spark` passes its Spark engine, and then ``prep.con`` runs
    Spark SQL).
    """
    engine = engine or _DUCKDB
    log = as_log(source, where=where, **read_options)
    obs = _to_date(observation_end, "observation_end", log.date_format) if observation_end is not None else None
    fields = _fields(log)
    kind = engine.kind(log.source)
    prior = _prior_ledger(log.source) if kind == "dataframe" else None
    con = engine.connect()
    prep: Prepared | None = None
    scan: Any = None
    try:
        engine.check_date_format(con, log.date_format)
        dup_policy = log.duplicates_policy if prior is None or log.duplicates is not None else None
        net = log.has_amount and log.returns_policy == "net"
        materialise = net or dup_policy is not None
        name = "the DataFrame" if kind in ("dataframe", "spark") else repr(os.fspath(log.source))
        try:
            scan = engine.register(con, log, kind, fields, ordered=materialise)
            zone = engine.zone(con, log, kind)
            carry = engine.carry if materialise else ()
            types, id_test = _parsed_view(con, log, kind, fields, zone, with_ts=materialise, carry=carry)
            if materialise:  # parse once: the line-item steps read the parsed rows again (raw text left out)
                raw = ("date_raw", "amount_raw", "quantity_raw", "price_raw")
                names = [r[0] for r in con.execute("DESCRIBE parsed_view").fetchall() if r[0] not in raw]
                keep = ", ".join(_quote_ident(n) for n in names)
                con.execute(f"CREATE TEMP TABLE parsed AS SELECT {keep} FROM parsed_view")
            else:
                con.execute("CREATE VIEW parsed AS SELECT * FROM parsed_view")
            today = dt.date.today()
            counts = _count(con, log, fields, id_test, obs, today, by_month=obs is None)
        except engine.errors as exc:
            raise engine.error(exc, log, kind, scan, name) from None
        policy: dict[str, str] = dict.fromkeys(REASONS, log.on_invalid)
        policy["negative_amount"] = log.returns_policy
        policy["zero_amount"] = log.zero_policy
        for reason, n in counts.dropped.items():
            if policy[reason] == "raise":
                raise DataValidationError(_error_message(reason, n, counts.n_rows, log, con))
        if counts.dropped and sum(counts.dropped.values()) == counts.n_rows:
            raise DataValidationError(
                f"every one of the {counts.n_rows:,} rows is invalid ({_describe(counts.dropped)}); nothing is "
                "left to analyse. Check the column arguments and date_format"
            )
        rows_read, entries = prior if prior is not None else (counts.n_rows, [])
        entries = list(entries)
        for reason in REASONS:
            if reason in counts.dropped:
                note = None
                if reason == "negative_amount":
                    note = "pass returns='net' to net them against the purchases they cancel"
                entries.append(_entry(reason, counts.dropped[reason], counts.values.get(reason), note=note))
        messages: list[str] = []
        if counts.dropped:
            text = f"dropped {sum(counts.dropped.values()):,} of {counts.n_rows:,} rows: {_describe(counts.dropped)}"
            if "negative_amount" in counts.dropped and log.returns is None:
                n = counts.dropped["negative_amount"]
                text += (
                    f". The {_plural(n, 'return')} (negative amounts) {'was' if n == 1 else 'were'} dropped, not "
                    "netted: the purchases they cancel still count; pass returns='net' to net them, or "
                    "returns='drop' to drop them knowingly"
                )
            messages.append(text)
        customer = "CAST(customer_id AS BIGINT)"
        if counts.integer_ids and types["customer_id"] == "VARCHAR":
            customer = "CAST(regexp_replace(customer_id, '\\.0*$', '') AS BIGINT)"
        elif not counts.integer_ids:
            customer = "customer_id"
        extras = [(k, fields[k]) for k in fields if k.startswith("extra_")]
        out_cols = [f"{customer} AS customer_id", "date", "amount"]
        passthrough: list[str] = []
        if "quantity_raw" in fields:
            out_cols.append("CAST(quantity AS BIGINT) AS quantity" if counts.whole_quantity else "quantity")
            passthrough.append("quantity")
        for k in ("item", "invoice"):
            if k in fields:
                out_cols.append(k)
                passthrough.append(k)
        for k, src in extras:
            out_cols.append(f"{k} AS {_quote_ident(src)}")
            passthrough.append(src)
        prep = Prepared(
            con, counts.n_rows, {}, counts.n_after, counts.first_date, counts.last_date, log.has_amount,
            tuple(passthrough), log, rows_read, entries, counts.n_rows - sum(counts.dropped.values()),
            counts.value_after,
        )
        if scan is not None:
            prep._closers.append(scan.close)
        if materialise:
            _line_items(prep, out_cols, dup_policy, net, messages, engine)
        else:
            con.execute(f"CREATE VIEW tx AS SELECT {', '.join(out_cols)} FROM parsed WHERE reason IS NULL")
        # suspicious dates: in the future, or far beyond the rest
        cut, n_far, n_future = _suspicious_dates(counts.months, counts.future)
        prep.default_end = prep.last_date
        already = any(e["key"] == "suspicious_dates" for e in entries)
        if n_far or n_future:
            limit = min(today, cut) if cut else today
            row = con.execute("SELECT max(date) FROM tx WHERE date <= $d", {"d": limit}).fetchall()[0]
            last_regular = row[0] if row else None
            if last_regular is not None:
                prep.default_end = last_regular
            if not already:
                parts = []
                if n_far:
                    ex = con.execute(
                        "SELECT DISTINCT date FROM tx WHERE date > $c ORDER BY date LIMIT 3", {"c": cut}
                    ).fetchall()
                    parts.append(
                        f"{_plural(n_far, 'row is', 'rows are')} dated far beyond the rest (after more than a year "
                        f"without any row; e.g. {', '.join(str(r[0]) for r in ex)}; the rest end on {cut}): a typo?"
                    )
                if n_future:
                    ex = con.execute(
                        "SELECT DISTINCT date FROM tx WHERE date > $t ORDER BY date LIMIT 3",
                        {"t": today},
                    ).fetchall()
                    parts.append(
                        f"{_plural(n_future, 'row is', 'rows are')} dated after today ({today}), e.g. "
                        f"{', '.join(str(r[0]) for r in ex)}"
                    )
                if last_regular is None:
                    end = "every row is affected; check the dates"
                elif where in (None, "read_transactions"):
                    end = (
                        "they are kept here; the tables (rfm_summary, calibration_holdout, discrete_summary) end "
                        f"by default on {prep.default_end}, the last date before them; fix the dates, or give "
                        "those functions an observation_end"
                    )
                else:
                    end = (
                        f"the default observation end is {prep.default_end}, the last date before them (they are "
                        "counted as rows after the observation end); fix the dates, or pass "
                        f"observation_end='{prep.default_end}' (or another date) to choose the end yourself"
                    )
                text = f"column {log.date!r}: {'; '.join(parts)}; {end}"
                messages.append(text)
                prep.entries.append(_entry("suspicious_dates", 0, None, None, text))
        prep.dropped = _dropped(prep.entries)
        if warn:
            for message in messages:
                warnings.warn(message, DataQualityWarning, stacklevel=stacklevel + 1)
        return prep
    except BaseException:
        if prep is not None:
            prep.close()
        else:
            con.close()
            if scan is not None:
                scan.close()
        raise


class DuckDBEngine:
    """The engine of :func:`open_transactions`: what reading does that is not the shared SQL, on DuckDB.

    Everything else (the parsing and validation SQL, the policies, the messages, the netting's consequences
    and the ledger) is shared: :mod:`clvforecast.spark` runs the same code on Spark with its own engine, an
    object with the same attributes and methods (the statements it receives are DuckDB's, which its connection
    translates).
    """

    #: The SQL dialect of :func:`clvforecast.rfm.render_sql` for the connection's statements.
    dialect = "duckdb"
    #: The engine's errors: those raised while reading become DataValidationErrors (:meth:`error`).
    errors: tuple[type[BaseException], ...] = (duckdb.Error,)
    #: The source order of a row of the materialised table ``parsed`` (in SQL), for returns and duplicates.
    row_number = "rowid"
    #: Columns of ``raw`` that parsing carries into ``parsed`` when the line-item steps run (Spark: its order).
    carry: tuple[str, ...] = ()

    def kind(self, source: Any) -> str:
        """``"dataframe"``, ``"csv"``, ``"parquet"`` or ``"parquet_folder"`` (refusing anything else)."""
        return _source_kind(source)

    def connect(self) -> Any:
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")  # zoned Parquet timestamps give their UTC day on every machine
            limit = os.environ.get(MEMORY_LIMIT_ENV)
            if limit:  # DuckDB spills larger aggregations to its temp_directory instead of holding them
                con.execute("SET memory_limit = $limit", {"limit": limit})
        except BaseException:
            con.close()
            raise
        return con

    def check_date_format(self, con: Any, date_format: str | None) -> None:
        _check_date_format(con, date_format)

    def register(self, con: Any, log: TransactionLog, kind: str, fields: dict[str, str], *, ordered: bool) -> Any:
        """Define the view ``raw`` (one column per field); ``ordered``: the source order will be asked for (here
        always kept: ``rowid`` of the materialised table). Returns an object to ``close()`` at the end, or None."""
        return _register_source(con, log, kind, fields)

    def zone(self, con: Any, log: TransactionLog, kind: str) -> str | None:
        """The time zone of a Parquet timestamp column (its local day is the purchase day), or None."""
        return _parquet_zone(con, os.fspath(log.source), log.date) if kind.startswith("parquet") else None

    def error(self, exc: BaseException, log: TransactionLog, kind: str, scan: Any, name: str) -> Exception:
        """A DataValidationError in plain words for an engine error while reading."""
        if scan is not None:
            return _file_error(exc, scan.path, scan.kind, log.encoding)
        return DataValidationError(f"could not read {name}: {_engine_message(exc)}")

    def net(self, con: Any, lines: str, keys: list[str]) -> None:
        """Match returns (:mod:`clvforecast.netting`) in the (``keys``) groups of the view ``lines`` that hold a
        return, and register the result as the view ``net_result(_row, net_amount, matched)``."""
        on = " AND ".join(f"l.{k} IS NOT DISTINCT FROM g.{k}" for k in keys)
        key_list = ", ".join(f"l.{k}" for k in keys)
        affected = con.execute(
            f"""WITH g AS (SELECT DISTINCT {', '.join(keys)} FROM {lines} WHERE amount < 0)
                SELECT dense_rank() OVER (ORDER BY {key_list}) AS grp, l._row, l.amount
                FROM {lines} l JOIN g ON {on}
                ORDER BY {key_list}, l.ts, l.amount < 0, l._row"""
        ).fetchnumpy()
        net_amount, matched = net_sorted(np.asarray(affected["grp"]), np.asarray(affected["amount"], dtype=float))
        result = pd.DataFrame(
            {"_row": np.asarray(affected["_row"], dtype="int64"), "net_amount": net_amount, "matched": matched}
        )
        con.register("net_result", result)


_DUCKDB = DuckDBEngine()


# --- Netting's consequences, stated once (DuckDB and Spark SQL) --------------------------------------------
# Over the views ``lines`` (the valid lines: _row, customer_id, date, amount, ...) and ``net_result`` (the output
# of clvforecast.netting for the lines of the groups holding a return: _row, net_amount, matched).

#: The lines of the groups holding a return, with their net value and the value matched.
NET_LINES_SQL = """
SELECT l._row, l.customer_id, l.date, l.amount, n.net_amount, n.matched
FROM net_result n JOIN lines l ON l._row = n._row
"""

#: Purchase days touched by a return whose net value, over all their lines, reaches zero: no longer purchases.
CANCELLED_DAYS_SQL = """
WITH touched AS (SELECT DISTINCT customer_id, date FROM net WHERE amount >= 0 AND matched > 0)
SELECT l.customer_id, l.date, count(*) AS n_lines
FROM lines l JOIN touched t ON l.customer_id = t.customer_id AND l.date = t.date
     LEFT JOIN net n ON n._row = l._row
WHERE l.amount >= 0
GROUP BY l.customer_id, l.date
HAVING sum(coalesce(n.net_amount, l.amount)) <= 0
"""

#: Every line the netting removes, with the ledger key it is counted under (``fate``).
REMOVED_SQL = """
SELECT l._row, l.customer_id, l.amount, 0.0 AS matched, 'orders_cancelled' AS fate
FROM lines l JOIN cancelled_days c ON l.customer_id = c.customer_id AND l.date = c.date
WHERE l.amount >= 0
UNION ALL
SELECT n._row, n.customer_id, n.amount, n.matched, CASE
    WHEN n.amount < 0 AND n.matched > 0 THEN 'returns_netted'
    WHEN n.amount < 0 THEN 'returns_unmatched'
    ELSE 'lines_cancelled' END AS fate
FROM net n
WHERE (n.amount < 0 OR (n.matched > 0 AND n.net_amount <= 0))
  AND NOT (n.amount >= 0 AND EXISTS (SELECT 1 FROM cancelled_days c
                                     WHERE c.customer_id = n.customer_id AND c.date = n.date))
"""

#: Customers with purchases of whom every purchase line was removed.
LEFT_WITH_NOTHING_SQL = """
WITH r AS (SELECT customer_id, count(*) FILTER (WHERE amount >= 0) AS gone FROM removed GROUP BY customer_id),
     p AS (SELECT customer_id, count(*) AS bought FROM lines
           WHERE amount >= 0 AND customer_id IN (SELECT customer_id FROM r) GROUP BY customer_id)
SELECT count(*) FROM r JOIN p ON r.customer_id = p.customer_id WHERE gone = bought
"""

#: The clean transactions after netting ({columns}: the line's columns, amount as coalesce(n.net_amount, l.amount)).
NETTED_TX_SQL = """
SELECT {columns} FROM lines l LEFT JOIN net n ON n._row = l._row
WHERE l._row NOT IN (SELECT _row FROM removed)
"""


def _line_items(
    prep: Prepared, out_cols: list[str], dup_policy: str | None, net: bool, messages: list[str], engine: Any
) -> None:
    """Materialise the valid rows in source order, count (and drop) exact duplicates, and net returns.

    Defines the table ``tx`` (with a column ``_row``, the row's position in the source). The netting's steps
    touch only the (customer[, item]) groups that hold a return, so their cost grows with the returns, not with
    the log.
    """
    con, log = prep.con, prep.log
    assert log is not None
    # DuckDB: CREATE TABLE preserves the scan's order, so the rowid of the table ``parsed`` is the source order
    con.execute(
        f"CREATE TEMP VIEW valid AS SELECT {engine.row_number} AS _row, {', '.join(out_cols)}, ts FROM parsed "
        "WHERE reason IS NULL"
    )
    prep.order_column = "_row"
    names = [r[0] for r in con.execute("DESCRIBE valid").fetchall()]
    identity = [c for c in names if c not in ("_row", "date")]  # ts holds the date and the time of day
    lines = "valid"
    if dup_policy is not None:
        part = ", ".join(_quote_ident(c) for c in identity)
        row = con.execute(
            f"""SELECT sum(n - 1), {_exact_sum('(n - 1) * a')}, count(DISTINCT c) FROM (
                    SELECT customer_id AS c, any_value(amount) AS a, count(*) AS n FROM valid
                    GROUP BY {part} HAVING count(*) > 1)"""
        ).fetchall()[0]
        n_dup = int(row[0] or 0)
        if n_dup:
            value = float(row[1]) if row[1] is not None and log.has_amount else None
            if dup_policy == "drop":
                prep.entries.append(_entry("duplicates", n_dup, value, int(row[2]), "dropped (duplicates='drop')"))
                con.execute(
                    f"""CREATE TEMP TABLE lines AS SELECT * FROM valid
                        WHERE _row IN (SELECT min(_row) FROM valid GROUP BY {part})"""
                )
                lines = "lines"
                messages.append(f"dropped {_plural(n_dup, 'exact duplicate row')} (duplicates='drop')")
            else:
                kept = (
                    f"{n_dup:,} rows repeat another row in every column read; kept (duplicates='keep'); pass "
                    "duplicates='drop' to drop them"
                )
                prep.entries.append(_entry("duplicates", 0, value, int(row[2]), kept))
                source_names = {"customer_id": log.customer_id, "ts": log.date, "quantity": log.quantity,
                                "item": log.item, "invoice": log.invoice, "amount": log.price or log.amount}
                shown = ", ".join(repr(source_names.get(c) or c) for c in identity)
                worth = f", worth {value:,.2f} in total" if value is not None else ""
                messages.append(
                    f"{_plural(n_dup, 'row repeats', 'rows repeat')} another row exactly (in every column read: "
                    f"{shown}){worth}; they are kept as purchases: pass duplicates='drop' to drop them"
                )
    out = ", ".join(_quote_ident(c) for c in names if c != "ts")
    if not net:
        con.execute(f"CREATE TEMP TABLE tx AS SELECT {out} FROM {lines}")
        _refresh(prep)
        return
    keys = ["customer_id"] + (["item"] if log.item is not None else [])
    engine.net(con, lines, keys)
    if lines != "lines":
        con.execute(f"CREATE TEMP VIEW lines AS SELECT * FROM {lines}")
    for name, sql in (("net", NET_LINES_SQL), ("cancelled_days", CANCELLED_DAYS_SQL), ("removed", REMOVED_SQL)):
        con.execute(f"CREATE TEMP TABLE {name} AS {sql}")
    con.unregister("net_result")
    stats = {
        r[0]: r[1:]
        for r in con.execute(
            f"""SELECT fate, count(*), {_exact_sum("CASE WHEN amount < 0 THEN matched ELSE amount END")},
                      {_exact_sum("CASE WHEN amount < 0 THEN -amount - matched ELSE 0 END")},
                      count(DISTINCT customer_id)
               FROM removed GROUP BY fate"""
        ).fetchall()
    }
    unmatched_value = sum(float(s[2] or 0) for k, s in stats.items() if k in ("returns_netted", "returns_unmatched"))
    n_days = int(con.execute("SELECT count(*) FROM cancelled_days").fetchall()[0][0])
    # customers left with nothing: every purchase line of theirs removed (only customers with a return qualify)
    n_left = int(con.execute(LEFT_WITH_NOTHING_SQL).fetchall()[0][0])
    for key in ("returns_netted", "returns_unmatched", "lines_cancelled", "orders_cancelled"):
        if key == "returns_unmatched":
            n, _, _, cust = stats.get(key, (0, 0.0, 0.0, 0))
            if n or unmatched_value:
                why = "value includes the unmatched part of partly matched returns" if unmatched_value else None
                prep.entries.append(_entry(key, int(n), unmatched_value, int(cust), why))
            continue
        if key not in stats:
            continue
        n, value, _, cust = stats[key]
        note = None
        if key == "returns_netted":
            note = "value: the purchase value these returns cancelled" + (" (matched by item)" if log.item else "")
        elif key == "orders_cancelled":
            note = (
                f"{n_days:,} purchase days whose net value reached zero; value: their value before the "
                "returns (part of the value netted above)"
            )
        elif key == "lines_cancelled":
            note = "value: their value before the returns (part of the value netted above)"
        prep.entries.append(_entry(key, int(n), float(value or 0), int(cust), note))
    if n_left:
        prep.entries.append(
            _entry("customers_left_with_nothing", 0, None, n_left, "every purchase of these customers was returned")
        )
    cols = ", ".join(
        "coalesce(n.net_amount, l.amount) AS amount" if c == "amount" else f"l.{_quote_ident(c)}"
        for c in names if c != "ts"
    )
    con.execute(f"CREATE TEMP TABLE tx AS {NETTED_TX_SQL.format(columns=cols)}")
    _refresh(prep)


def _refresh(prep: Prepared) -> None:
    """Recount ``tx`` after the line-item steps (rows, dates, rows after the observation end)."""
    row = prep.con.execute("SELECT count(*), min(date), max(date) FROM tx").fetchall()[0]
    assert row is not None
    prep.n_tx, prep.first_date, prep.last_date = int(row[0]), row[1], row[2]
    if prep.n_tx == 0:
        raise DataValidationError(
            "no purchase is left after netting the returns and dropping duplicates "
            f"({', '.join(e['key'] for e in prep.entries if e['rows'])}); check the returns and the columns"
        )


def read_transactions(source: Any, **read_options: Any) -> pd.DataFrame:
    """Read a transaction log into a tidy, validated DataFrame.

    Parameters
    ----------
    source:
        A pandas DataFrame (not modified), a path to a CSV (``.csv``, ``.tsv``, ``.txt``, optionally
        gzipped) or Parquet file, a folder of Parquet files, or a :class:`TransactionLog`. Files are scanned by
        DuckDB.
    **read_options:
        The options of :class:`TransactionLog`: ``customer_id``, ``date``, ``amount`` (``None``:
        frequency-only data), ``quantity``, ``price``, ``item``, ``invoice``, ``extra_columns``,
        ``date_format``, ``encoding``, ``on_invalid``, ``zero_amounts``, ``returns`` (old name
        ``negative_amounts``), ``duplicates``, ``extreme``. See the module docstring for the rules.

    Returns
    -------
    DataFrame with columns ``customer_id``, ``date`` (datetime64, midnight of the purchase day), ``amount``
    (float, currency units, net of returns with ``returns="net"``; absent for frequency-only data), and
    ``quantity``, ``item``, ``invoice`` and the extra columns when given, in source order. ``attrs``:
    ``ledger`` (every row read accounted for; see the module docstring), ``n_rows_read`` (rows in the source)
    and ``dropped`` (``{reason: rows}`` removed while reading). Passed back into any function that takes a
    source, the ledger continues.

    Examples
    --------
    >>> import pandas as pd, clvforecast as cf
    >>> log = pd.DataFrame({"customer_id": [1, 1, 2], "date": ["2024-01-05 10:30", "2024-01-05", "bad"],
    ...                     "amount": [10.0, 5.0, 7.0]})
    >>> cf.read_transactions(log, on_invalid="drop").attrs["dropped"]
    {'unparseable_date': 1}
    """
    log = as_log(source, where="read_transactions", **read_options)
    with open_transactions(log, stacklevel=2, where="read_transactions") as prep:
        columns = ["customer_id", "date", *["amount"] * prep.has_amount, *map(_quote_ident, prep.passthrough)]
        order = f" ORDER BY {prep.order_column}" if prep.order_column else ""
        out = prep.con.execute(f"SELECT {', '.join(columns)} FROM tx{order}").df()
    out["date"] = pd.to_datetime(out["date"])
    ledger = prep.ledger(len(out))
    out.attrs["ledger"] = ledger
    out.attrs["n_rows_read"] = ledger["rows_read"]
    out.attrs["dropped"] = dict(prep.dropped)
    return out
