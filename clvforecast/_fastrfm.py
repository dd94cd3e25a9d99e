"""The RFM table by one sort, in numpy, for clean typed logs: the same table as :data:`clvforecast.rfm.RFM_SQL`.

DuckDB's two-level group-by (customer-day, then customer, nine aggregates over exact DECIMAL sums) costs about
8 CPU-seconds on 10M rows. When the ids are integers in a dense range, the dates timestamps and the amounts whole
cents, each row packs into one 64-bit integer ``(customer - lowest id) << (day bits + 24) | day << 24 | cents``.
One sort lays out every customer's purchase days in order, with each row's cents beside its key: the first
day, the last day and the number of purchase days follow from comparing neighbours, and every spend from a
running total of the cents read at the ends of days and customers (exact integers). The rows are split by id
range into buckets as they are read (a DataFrame in pieces, Parquet by row group, on a thread per core, with no
copy of the log), and each bucket is sorted and summed on its own thread: numpy lets go of the GIL in both. The
pass keeps 8 bytes a row, and the buckets are sized to ``CLVFORECAST_MEMORY_LIMIT`` when it is set (the CLI's
``--memory-limit``; see :func:`_bucket_rows`).

It is used only where it gives the SQL's table bit for bit, and :func:`summarise` returns None otherwise (the
SQL then runs, with its validation, ledger entries and messages):

* a DataFrame, Parquet file or folder of Parquet files; integer ids in a range of at most ``2 x rows + 2**20``
  values (ids, days and cents in 63 bits); naive (or UTC, in Parquet) timestamps or dates; float64 or integer
  amounts (Parquet: with min/max statistics for the id and date columns);
* nothing to clean: no missing value, no NaN, no negative amount, no zero amount unless zero amounts are kept,
  no date after today and, without an observation end, none far beyond the rest;
* no line items, extra columns, duplicate check, netting or ``extreme="cap"``;
* every amount whole cents below 100,000. Exactness: the SQL casts each amount to DECIMAL(38, 10) and sums
  exactly; for the double ``a`` nearest ``k / 100`` (``|a| < 1e5``) that cast is ``k x 10**8`` (in DuckDB, which
  rounds ``a x 10**10``, whose error is below 0.14, and in Spark, which reads the shortest decimal, ``k / 100``),
  so each exact sum is a sum of integer cents, which float64 adds exactly (below 2**53), and the SQL's
  conversion to DOUBLE is the one correctly rounded division by 100 done here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Rows per bucket: a log with more rows is split by id range as it is read.
BUCKET_ROWS = 8_000_000
#: Rows per piece of the element-wise work (temporaries stay in cache-sized blocks).
_PIECE = 1 << 18
#: Rows per Parquet batch.
_BATCH = 1 << 20
_MAX_AMOUNT = 1e5
_CENTS_BITS = 24  # whole cents below 1e5 x 100 < 2**24
_TICKS_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}
_EPOCH = dt.date(1970, 1, 1)
_FIRST_DAY, _LAST_DAY = (dt.date.min - _EPOCH).days, (dt.date.max - _EPOCH).days  # days since 1970


def _bucket_rows(n_rows: int, n_ids: int) -> int:
    """Rows per bucket: :data:`BUCKET_ROWS`, or fewer under a memory limit (``CLVFORECAST_MEMORY_LIMIT``, the
    CLI's ``--memory-limit``). The pass keeps 8 bytes a row and 44 for each id in the range, and each thread works
    on one bucket with about 48 bytes a row; a limit too small for buckets of 1M rows leaves the table to the SQL,
    which spills to disk."""
    from .io import MEMORY_LIMIT_ENV

    text = os.environ.get(MEMORY_LIMIT_ENV)
    if not text:
        return BUCKET_ROWS
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT])(i?)B\s*", text, flags=re.IGNORECASE)
    if match is None:
        raise _Unsupported("a memory limit DuckDB reads")
    base = 1024 if match[3] else 1000
    limit = float(match[1]) * base ** (1 + "KMGT".index(match[2].upper()))
    kept = 8 * n_rows + _BYTES_PER_ID * n_ids
    if kept + _BYTES_PER_ROW * n_rows <= limit:  # every bucket's work at once fits
        return BUCKET_ROWS
    rows = int((limit - kept - _OVERHEAD) / (_BYTES_PER_ROW * _threads()))
    if rows < 1 << 20:
        raise _Unsupported("a memory limit too small for the pass")
    return min(rows, BUCKET_ROWS)


#: Working memory of a bucket being summed, per row; and what the pass holds beside the rows.
_BYTES_PER_ROW = 48
_BYTES_PER_ID = 44
_OVERHEAD = 64 * 2**20


def _threads() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def _pool() -> Any:
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(_threads())


class _Unsupported(Exception):
    """The log needs something only the SQL path does; the SQL runs instead."""


# --- Reading the columns ------------------------------------------------------------------------------------


class _Columns:
    """Where the three columns come from: :meth:`tasks` give ``(ids, ticks, amounts)`` numpy arrays (ticks in
    ``unit`` since 1970, amounts None without an amount column); ``bounds`` = (id min, id max, tick min, tick
    max), bounds that every row lies within; ``n_rows``."""

    unit: str
    n_rows: int
    has_amount: bool
    exact_bounds = False  # bounds read from the values themselves (else from statistics, checked as read)
    bounds: tuple[int, int, int, int]

    def release(self) -> None:
        """Give back what reading holds (Arrow's memory pool keeps freed buffers)."""

    def tasks(self) -> list[Any]:
        """Zero-argument callables, one per part of the log, each yielding ``(ids, ticks, amounts)`` batches;
        the parts are read and packed on the worker threads, in parallel."""
        raise NotImplementedError


def _numpy_ids(values: Any) -> np.ndarray:
    if not isinstance(values.dtype, np.dtype) or values.dtype.kind not in "iu" or values.dtype == np.uint64:
        raise _Unsupported("ids are not integers")
    return np.asarray(values).astype(np.int64, copy=False)


def _numpy_amounts(values: Any) -> np.ndarray:
    dtype = values.dtype
    if not isinstance(dtype, np.dtype) or not (dtype == np.float64 or (dtype.kind in "iu" and dtype != np.uint64)):
        raise _Unsupported("amounts are not float64 or integers")
    return np.asarray(values).astype(np.float64, copy=False)


class _FrameColumns(_Columns):
    def __init__(self, df: pd.DataFrame, log: Any) -> None:
        from .io import _frame_column

        labels = {str(c): c for c in df.columns}
        if any(name not in labels for name in (log.customer_id, log.date, log.amount) if name is not None):
            raise _Unsupported("a column is missing (the SQL path says which)")
        self.ids = _numpy_ids(_frame_column(df, labels[log.customer_id]))
        dates = _frame_column(df, labels[log.date])
        if not isinstance(dates.dtype, np.dtype) or dates.dtype.kind != "M":
            raise _Unsupported("dates are not timestamps")
        unit = np.datetime_data(dates.dtype)[0]
        if unit not in _TICKS_PER_DAY:
            raise _Unsupported("timestamp unit")
        self.unit = unit
        self.ticks = dates.to_numpy().view(np.int64)
        self.amounts = _numpy_amounts(_frame_column(df, labels[log.amount])) if log.amount is not None else None
        self.has_amount = self.amounts is not None
        self.exact_bounds = True
        self.n_rows = len(df)
        if self.n_rows == 0:
            raise _Unsupported("empty")
        self.bounds = (int(self.ids.min()), int(self.ids.max()), int(self.ticks.min()), int(self.ticks.max()))
        if self.bounds[2] == np.iinfo(np.int64).min:  # NaT
            raise _Unsupported("missing dates")

    def tasks(self) -> list[Any]:
        def part(i: int) -> Any:
            end = i + _PIECE
            yield self.ids[i:end], self.ticks[i:end], None if self.amounts is None else self.amounts[i:end]

        return [functools.partial(part, i) for i in range(0, self.n_rows, _PIECE)]


class _ParquetColumns(_Columns):
    def __init__(self, files: list[Path], log: Any) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.paths = files
        try:
            self.files = [pq.ParquetFile(f) for f in files]
        except (OSError, pa.ArrowException) as exc:  # a damaged file: the SQL path says what is wrong
            raise _Unsupported(str(exc)) from None
        self._local = threading.local()
        self.names = [log.customer_id, log.date] + ([log.amount] if log.amount is not None else [])
        self.has_amount = log.amount is not None
        self.n_rows = 0
        ids: list[int] = []
        ticks: list[int] = []
        units = set()
        for f in self.files:
            schema = f.schema_arrow
            if any(schema.get_field_index(n) < 0 for n in self.names):
                raise _Unsupported("a column is missing from a file")
            id_type, date_type = schema.field(log.customer_id).type, schema.field(log.date).type
            if not pa.types.is_integer(id_type) or id_type == pa.uint64():
                raise _Unsupported("ids are not integers")
            if pa.types.is_timestamp(date_type) and (date_type.tz or "UTC").upper() == "UTC":
                units.add(date_type.unit)
            elif pa.types.is_date32(date_type):
                units.add("D")
            else:
                raise _Unsupported("dates are not naive timestamps or dates")
            if log.amount is not None:
                a_type = schema.field(log.amount).type
                if not (pa.types.is_float64(a_type) or (pa.types.is_integer(a_type) and a_type != pa.uint64())):
                    raise _Unsupported("amounts are not float64 or integers")
            columns = [schema.get_field_index(n) for n in self.names[:2]]
            meta = f.metadata
            for g in range(meta.num_row_groups):
                group = meta.row_group(g)
                if group.num_rows == 0:
                    continue
                for c, kind, out in zip(columns, (id_type, date_type), (ids, ticks), strict=True):
                    st = group.column(c).statistics
                    if st is None or not st.has_min_max or st.null_count:
                        raise _Unsupported("no statistics, or missing values")
                    out += [_raw(st.min, kind), _raw(st.max, kind)]
            self.n_rows += meta.num_rows
        if len(units) != 1 or self.n_rows == 0 or not ids:
            raise _Unsupported("mixed date units, or empty")
        self.unit = units.pop()
        self.bounds = (min(ids), max(ids), min(ticks), max(ticks))

    def tasks(self) -> list[Any]:
        return [functools.partial(self._read, i, g) for i, f in enumerate(self.files)
                for g in range(f.metadata.num_row_groups)]  # fmt: skip

    def release(self) -> None:
        import pyarrow as pa

        self._local = threading.local()
        pa.default_memory_pool().release_unused()

    def _read(self, i: int, group: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """Row group ``group`` of file ``i``, in batches (a file handle per thread: reads run in parallel)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        handles = self._local.__dict__.setdefault("handles", {})
        if i not in handles:
            handles[i] = pq.ParquetFile(self.paths[i])
        batches = handles[i].iter_batches(batch_size=_BATCH, row_groups=[group], columns=self.names, use_threads=False)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except (OSError, pa.ArrowException) as exc:  # a damaged row group: the SQL path says what is wrong
                raise _Unsupported(str(exc)) from None
            if any(col.null_count for col in batch.columns):
                raise _Unsupported("missing values")
            ids = batch.column(0).cast(pa.int64()).to_numpy()
            dates = batch.column(1)
            ticks = dates.cast(pa.int32()).cast(pa.int64()) if pa.types.is_date32(dates.type) else dates.cast(
                pa.int64())
            amounts = batch.column(2).cast(pa.float64()).to_numpy() if len(self.names) == 3 else None
            yield ids, ticks.to_numpy(), amounts


def _raw(value: Any, kind: Any) -> int:
    """A Parquet statistic as the integer the arrays hold (ticks, days since 1970, or the id)."""
    import pyarrow as pa

    return int(pa.scalar(value, type=kind).cast(pa.int32() if pa.types.is_date32(kind) else pa.int64()).as_py())


def _columns(log: Any) -> _Columns:
    from .io import _parquet_files, _source_kind

    kind = _source_kind(log.source)
    if kind == "dataframe":
        return _FrameColumns(log.source, log)
    if kind == "parquet":
        return _ParquetColumns([Path(os.fspath(log.source))], log)
    if kind == "parquet_folder":
        folder = Path(os.fspath(log.source))
        files = _parquet_files(folder)
        # the files DuckDB reads (its glob '**/*.parquet'), and no hive partition ('name=value' folders, whose
        # values DuckDB reads as columns)
        if sorted(p for p in folder.rglob("*.parquet") if p.is_file()) != files or any("=" in part for f in files
                                                            for part in f.relative_to(folder).parts[:-1]):
            raise _Unsupported("files or partitions DuckDB reads otherwise")
        return _ParquetColumns(files, log)
    raise _Unsupported("CSV")


# --- One pass: keys and cents, by bucket ----------------------------------------------------------------------


class _Pass:
    """What one pass over the rows keeps: per bucket (a range of ids) the packed rows up to the observation end,
    and the counts (rows, rows after the end and their cents, the first and last day, days seen)."""

    def __init__(self, cols: _Columns, obs: dt.date | None, today: dt.date, zero_ok: bool) -> None:
        id_lo, id_hi, tick_lo, tick_hi = cols.bounds
        self.per_day = 1 if cols.unit == "D" else _TICKS_PER_DAY[cols.unit]
        self.id_lo = id_lo
        self.m = id_hi - id_lo + 1
        self.day_lo = tick_lo // self.per_day
        span = tick_hi // self.per_day - self.day_lo + 1
        if self.day_lo < _FIRST_DAY or self.day_lo + span > _LAST_DAY:
            raise _Unsupported("dates outside years 1-9999")
        self.span = span
        self.dbits = max(int(span).bit_length(), 1)
        if self.m > 2 * cols.n_rows + (1 << 20):
            raise _Unsupported("ids too sparse for an array per id")
        self.obs_off = (obs - _EPOCH).days - self.day_lo if obs is not None else None
        k = -(-cols.n_rows // _bucket_rows(cols.n_rows, self.m))
        if cols.n_rows >= _PIECE:  # one bucket per core at least: each is sorted and summed on its own thread
            k = max(k, _threads())
        self.width = -(-self.m // k)  # ids per bucket
        self.k = -(-self.m // self.width)
        if self.k >= 1 << 16:
            raise _Unsupported("too many buckets")
        self.cbits = _CENTS_BITS if cols.has_amount else 0
        if int(self.m).bit_length() + self.dbits + self.cbits > 63:
            raise _Unsupported("ids, days and cents do not fit in 63 bits")
        self.packed: list[list[np.ndarray]] = [[] for _ in range(self.k)]
        self.n_tx = 0
        self.n_after = 0
        self.cents_after = 0
        self.day_min: int | None = None
        self.day_max: int | None = None
        self.days_seen = np.zeros(span, np.int64) if obs is None else None
        self._today_off, self._zero_ok = (today - _EPOCH).days - self.day_lo, zero_ok
        self._exact = cols.exact_bounds

        with _pool() as pool:
            for results in pool.map(self._part, cols.tasks()):
                for result in results:
                    self._add(*result)
        cols.release()

    def _part(self, task: Any) -> list[tuple[Any, ...]]:
        """One part of the log (on a worker thread): read, then checked and packed piece by piece."""
        out = []
        for ids, ticks, amounts in task():
            for i in range(0, len(ids), _PIECE):
                out.append(self._piece((ids[i:i + _PIECE], ticks[i:i + _PIECE],
                                        None if amounts is None else amounts[i:i + _PIECE])))  # fmt: skip
        return out

    def _piece(self, piece: tuple[np.ndarray, np.ndarray, np.ndarray | None]) -> tuple[Any, ...]:
        """One piece of rows (on a worker thread): checked, packed and split by bucket."""
        ids, ticks, amounts = piece
        day = ticks // self.per_day if self.per_day != 1 else ticks.astype(np.int64)
        day -= self.day_lo
        lo, hi = int(day.min()), int(day.max())
        if lo < 0 or hi > self._today_off or hi >= self.span:
            raise _Unsupported("dates after today, or statistics that do not bound the values")
        if not self._exact and (ids.min() < self.id_lo or ids.max() >= self.id_lo + self.m):
            raise _Unsupported("statistics that do not bound the values")
        cents = None
        if amounts is not None:
            low = amounts.min()  # NaN makes both comparisons false
            if not (low > 0 or (self._zero_ok and low == 0)) or not amounts.max() < _MAX_AMOUNT:
                raise _Unsupported("negative, zero, large or non-finite amounts")
            c = np.multiply(amounts, 100.0)
            np.rint(c, out=c)
            cents = c.astype(np.int64)
            np.divide(c, 100.0, out=c)
            if not np.array_equal(c, amounts):
                raise _Unsupported("amounts not in whole cents")
        seen = np.bincount(day, minlength=len(self.days_seen)) if self.days_seen is not None else None
        n, n_after, cents_after = len(ids), 0, 0
        if self.obs_off is not None and hi > self.obs_off:
            after = day > self.obs_off
            n_after = int(after.sum())
            keep = ~after
            if cents is not None:
                cents_after = int(cents[after].sum())
                cents = cents[keep]
            ids, day = ids[keep], day[keep]
        packed = ids - self.id_lo
        packed <<= self.dbits
        packed |= day
        if cents is not None:
            packed <<= self.cbits
            packed |= cents
        if self.k == 1:
            return n, n_after, cents_after, lo, hi, seen, [packed]
        if self.k == 2:
            first_of_second = self.width << (self.dbits + self.cbits)
            second = packed >= first_of_second
            return n, n_after, cents_after, lo, hi, seen, [packed[~second], packed[second]]
        # more buckets: a counting sort by bucket (numpy's stable sort of 16-bit integers is a radix sort)
        bucket = ((packed >> (self.dbits + self.cbits)) // self.width).astype(np.uint16)
        order = np.argsort(bucket, kind="stable")
        bounds = np.cumsum(np.bincount(bucket, minlength=self.k))[:-1]
        return n, n_after, cents_after, lo, hi, seen, np.split(packed[order], bounds)

    def _add(self, n: int, n_after: int, cents_after: int, lo: int, hi: int, seen: np.ndarray | None,
             parts: list[np.ndarray]) -> None:  # fmt: skip
        self.n_tx += n
        self.n_after += n_after
        self.cents_after += cents_after
        self.day_min = lo if self.day_min is None else min(self.day_min, lo)
        self.day_max = hi if self.day_max is None else max(self.day_max, hi)
        if seen is not None and self.days_seen is not None:
            self.days_seen += seen
        for b, part in enumerate(parts):
            if len(part):
                self.packed[b].append(part)

    def bucket(self, b: int) -> tuple[np.ndarray, int, int]:
        """Bucket ``b``'s packed rows (one array; the pieces are released) and its customers' range."""
        pieces = self.packed[b]
        joined = pieces[0] if len(pieces) == 1 else np.concatenate(pieces) if pieces else np.empty(0, np.int64)
        self.packed[b] = [joined]
        lo = b * self.width
        return joined, lo, min(self.width, self.m - lo)


# --- Per customer ---------------------------------------------------------------------------------------------


def _purchase_days(packed: np.ndarray, cbits: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """From sorted packed rows: each purchase day's key (customer << bits | day), the running total of cents to
    its end (exact, int64; None without amounts), and a scratch array of the rows' length (free for reuse)."""
    scratch = np.right_shift(packed, cbits) if cbits else packed.copy()
    is_last = np.empty(len(scratch), dtype=bool)
    np.not_equal(scratch[:-1], scratch[1:], out=is_last[:-1])
    is_last[-1:] = True
    day_keys = scratch[is_last]
    running = None
    if cbits:
        np.bitwise_and(packed, (1 << cbits) - 1, out=scratch)
        np.cumsum(scratch, out=scratch)
        running = scratch[is_last]
    return day_keys, running, scratch


def _day_cents(running: np.ndarray) -> np.ndarray:
    """Each purchase day's cents from the running totals at the days' ends."""
    cents = np.empty_like(running)
    cents[:1] = running[:1]
    np.subtract(running[1:], running[:-1], out=cents[1:])
    return cents


def _max_day_cents(running: np.ndarray) -> int:
    """The largest purchase day's cents, a block at a time (no array of every day's cents)."""
    best = int(running[0])
    for i in range(0, len(running) - 1, _PIECE):
        best = max(best, int(np.diff(running[i:i + _PIECE + 1]).max()))
    return best


def _before(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values[index - 1]``, 0 where ``index`` is 0 (the running total before a segment)."""
    out = values[np.maximum(index - 1, 0)]
    out[index == 0] = 0
    return out


def _per_customer(
    packed: np.ndarray, cbits: int, dbits: int, cal_off: int, lo: int, out: dict[str, np.ndarray],
    keep_days: bool, holdout: bool,
) -> dict[str, Any]:
    """The customers ``lo .. lo + m - 1`` (offsets from the lowest id) of one bucket (``packed`` is sorted in
    place), written into ``out``'s arrays (views of length m): first and last purchase day up to ``cal_off``
    (left -1 for none), purchase days up to and after it, rows (``holdout`` only), cents (exact int64) up to and
    after it and on the first day. Returns the bucket's largest purchase day in cents (``max_c``) and, with
    ``keep_days``, the purchase days themselves (``day_keys``, ``running``) for the extreme days."""
    packed.sort()
    day_keys, running, scratch = _purchase_days(packed, cbits)
    kept: dict[str, Any] = {"max_c": 0}
    if not len(day_keys):
        return kept
    cust = np.right_shift(day_keys, dbits, out=scratch[:len(day_keys)])
    is_last = np.empty(len(cust), dtype=bool)
    np.not_equal(cust[:-1], cust[1:], out=is_last[:-1])
    is_last[-1] = True
    ends = np.flatnonzero(is_last)  # each customer's last purchase day
    del is_last
    customer = cust[ends]
    del cust, scratch
    starts = np.concatenate(([0], ends[:-1] + 1))
    day_mask = (1 << dbits) - 1
    last_cal = min(max(cal_off, -1), day_mask)  # the calibration end within the days' bits (-1: before all)
    cal_ends = np.searchsorted(day_keys, (customer << dbits) + last_cal, side="right") - 1  # last day <= cal
    cal_days = cal_ends - starts + 1
    who = customer - lo
    has_cal = cal_days > 0
    out["first"][who] = day_keys[starts] & day_mask
    out["last"][who[has_cal]] = day_keys[cal_ends[has_cal]] & day_mask
    out["cal_days"][who] = cal_days
    out["hold_days"][who] = ends - cal_ends
    if holdout:  # each customer's rows: where her keys begin and end among the sorted rows
        shift = dbits + cbits
        out["n_rows"][who] = (np.searchsorted(packed, (customer + 1) << shift)
                              - np.searchsorted(packed, customer << shift))  # fmt: skip
    if running is not None:
        before = _before(running, starts)
        at_cal = np.where(has_cal, running[np.maximum(cal_ends, 0)], before)
        out["cal_c"][who] = at_cal - before
        out["hold_c"][who] = running[ends] - at_cal
        out["first_c"][who] = running[starts] - before
        if keep_days:
            kept["day_keys"], kept["day_cents"] = day_keys, _day_cents(running)
            kept["max_c"] = int(kept["day_cents"].max())
        else:
            kept["max_c"] = _max_day_cents(running)
    return kept


_PER_CUSTOMER = ("first", "last", "cal_days", "hold_days", "n_rows", "cal_c", "hold_c", "first_c")
_CENTS = ("cal_c", "hold_c", "first_c")  # int64; the days and counts are int32


def _extreme_days(
    run: _Pass, kept: list[dict[str, Any]], in_table: np.ndarray, fence: float
) -> list[tuple[int, dt.date, float]]:
    """The purchase days above ``fence`` of the customers in the table (``in_table``, by offset from the lowest
    id), from the days a bucket kept or else from its sorted rows again (only buckets with such a day);
    largest first."""
    mask = (1 << run.dbits) - 1

    def above(b: int) -> list[tuple[int, dt.date, float]]:
        part = kept[b]
        if part["max_c"] / 100.0 <= fence:
            return []
        if "day_keys" in part:
            day_keys, day_cents = part["day_keys"], part["day_cents"]
        else:
            day_keys, running, _ = _purchase_days(run.bucket(b)[0], run.cbits)
            assert running is not None
            day_cents = _day_cents(running)
        value = day_cents / 100.0
        hit = np.flatnonzero(value > fence)
        hit = hit[in_table[(day_keys[hit] >> run.dbits)]]
        return [(run.id_lo + (key >> run.dbits), _EPOCH + dt.timedelta(days=run.day_lo + (key & mask)), v)
                for key, v in zip(day_keys[hit].tolist(), value[hit].tolist(), strict=True)]  # fmt: skip

    with _pool() as pool:
        found = [day for days in pool.map(above, range(run.k)) for day in days]
    found.sort(key=lambda r: (-r[2], r[0], r[1]))
    return found


def _fence(mean_day_value: np.ndarray, cal: dt.date) -> float | None:
    """The extreme-day fence by :data:`clvforecast.rfm.FENCE_SQL` itself, on DuckDB, over the table's mean
    purchase-day values (DuckDB's own interpolation of the quartiles: no formula of ours matches it bit for bit)."""
    import duckdb

    from .rfm import FENCE_SQL, _run

    con = duckdb.connect()
    try:
        con.register("rfm", pd.DataFrame({"first_day": np.full(len(mean_day_value), np.datetime64(cal, "s")),
                                          "mean_day_value": mean_day_value}))  # fmt: skip
        fence = _run(con, FENCE_SQL, {"cal": cal}).fetchall()[0][0]
    finally:
        con.close()
    return None if fence is None else float(fence)


# --- The table ---------------------------------------------------------------------------------------------------


def summarise(
    log: Any, *, cal: dt.date | None, obs: dt.date | None, unit_code: str, holdout: bool, stacklevel: int
) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """The table and attrs of :func:`clvforecast.rfm._summarise` for a clean typed log, or None (use the SQL)."""
    if (log.line_items or log.quantity is not None or log.extra_columns or log.duplicates_policy is not None
            or log.extreme == "cap" or (log.has_amount and log.returns_policy == "net")
            or log.date_format is not None):  # fmt: skip  (the SQL checks the format, and parses text dates)
        return None
    try:
        with _no_hugepage_advice():
            cols = _columns(log)
            today = dt.date.today()
            run = _Pass(cols, obs, today, zero_ok=log.zero_policy == "keep")
            return _table(run, log, cal=cal, obs=obs, unit_code=unit_code, holdout=holdout, today=today,
                          stacklevel=stacklevel + 1)  # fmt: skip
    except _Unsupported:
        return None


@contextlib.contextmanager
def _no_hugepage_advice() -> Iterator[None]:
    """numpy advises the kernel to back large arrays with huge pages; where the kernel then compacts memory on
    the spot (transparent_hugepage/defrag = madvise, Debian's default), each fresh array waits for it: about a
    quarter of this pass's time on a 2-core machine (0.78 s instead of 1.1 s for 10M rows). The advice is off
    while the pass runs, and restored after."""
    try:
        from numpy._core.multiarray import _set_madvise_hugepage  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - numpy without it
        yield
        return
    global _ADVICE_OFF, _ADVICE_BEFORE
    with _ADVICE_LOCK:  # concurrent passes: the first turns the advice off, the last restores it
        if _ADVICE_OFF == 0:
            _ADVICE_BEFORE = _set_madvise_hugepage(False)
        _ADVICE_OFF += 1
    try:
        yield
    finally:
        with _ADVICE_LOCK:
            _ADVICE_OFF -= 1
            if _ADVICE_OFF == 0:
                _set_madvise_hugepage(_ADVICE_BEFORE)


_ADVICE_LOCK = threading.Lock()
_ADVICE_OFF = 0
_ADVICE_BEFORE = True


def _table(
    run: _Pass, log: Any, *, cal: dt.date | None, obs: dt.date | None, unit_code: str, holdout: bool,
    today: dt.date, stacklevel: int,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    from .io import _dropped, _ledger, _prior_ledger, _suspicious_dates
    from .rfm import (
        HOLDOUT_COLUMNS,
        RFM_COLUMNS,
        _attrs,
        _empty_error,
        _no_holdout_error,
        _warn_after_last,
    )
    from .units import days_per

    assert run.day_min is not None and run.day_max is not None
    first_date = _EPOCH + dt.timedelta(days=run.day_lo + run.day_min)
    last_date = _EPOCH + dt.timedelta(days=run.day_lo + run.day_max)
    given = obs is not None
    if run.days_seen is not None:  # no observation end: the SQL path leaves out dates far beyond the rest
        days = np.flatnonzero(run.days_seen)
        dates = (days + run.day_lo).astype("datetime64[D]")
        month = dates.astype("datetime64[M]").astype(np.int64) + 1970 * 12
        edges = np.flatnonzero(np.concatenate(([True], month[1:] != month[:-1])))
        counts = np.add.reduceat(run.days_seen[days], edges)
        ends = np.append(edges[1:], len(days)) - 1
        months = [(int(month[a]), int(n), dates[a].item(), dates[e].item()) for a, e, n in zip(edges, ends, counts, strict=True)]
        if _suspicious_dates(months, 0)[0] is not None:
            raise _Unsupported("dates far beyond the rest")
        obs = last_date
    assert obs is not None
    cal = obs if cal is None else cal
    _warn_after_last(first_date, last_date, obs, given, stacklevel=stacklevel)
    cal_off = (cal - _EPOCH).days - run.day_lo
    per: dict[str, np.ndarray] = {name: np.full(run.m, -1 if name in ("first", "last") else 0, np.int64 if name in _CENTS else np.int32)
           for name in _PER_CUSTOMER}  # fmt: skip

    def bucket(b: int) -> dict[str, Any]:
        packed, lo, m = run.bucket(b)
        views = {name: values[lo:lo + m] for name, values in per.items()}
        return _per_customer(packed, run.cbits, run.dbits, cal_off, lo, views, run.k <= _threads(), holdout)

    with _pool() as pool:  # numpy lets go of the GIL in the sorts and sums: one bucket per core
        kept = list(pool.map(bucket, range(run.k)))
    first = per.pop("first")
    in_table = (first >= 0) & (first <= cal_off)
    late = first > cal_off
    if holdout and not per["hold_days"].any():
        raise _no_holdout_error(cal, obs, last_date)
    if not in_table.any():
        raise _empty_error(cal, first_date)
    unit = days_per(unit_code)
    t = in_table
    f = first[t]
    del first
    days_in = per.pop("cal_days")[t]
    table: dict[str, Any] = {
        "frequency": days_in.astype(np.int64) - 1,
        "recency": (per.pop("last")[t] - f) / unit,
        "T": (cal_off - f) / unit,
    }
    del f
    fence, extreme_days = None, []
    late_rows = int(per.pop("n_rows")[late].sum())
    late_spend = float(per["hold_c"][late].sum()) / 100.0 if log.has_amount else None
    if log.has_amount:
        cal_c = per.pop("cal_c")[t]
        repeat = days_in > 1
        table["monetary_value"] = np.where(
            repeat, ((cal_c - per.pop("first_c")[t]) / 100.0) / np.where(repeat, days_in - 1, 1), 0.0
        )
        mean_day_value = (cal_c / 100.0) / days_in
        del cal_c
        fence = _fence(mean_day_value, cal)
        del mean_day_value
        if fence is not None:
            extreme_days = _extreme_days(run, kept, in_table, fence)
    del kept
    run.packed = []  # the rows are no longer needed
    if holdout:
        hd = per.pop("hold_days")[t].astype(np.int64)
        table["holdout_frequency"] = hd
        if log.has_amount:
            spend = per.pop("hold_c")[t] / 100.0
            table["holdout_spend"] = spend
            table["holdout_monetary_value"] = np.where(hd > 0, spend / np.where(hd > 0, hd, 1), 0.0)
    per.clear()
    columns = [c for c in RFM_COLUMNS + (HOLDOUT_COLUMNS if holdout else []) if c in table]
    index = pd.Index(run.id_lo + np.flatnonzero(t), name="customer_id", dtype="int64")
    frame = pd.DataFrame({c: table.pop(c) for c in columns}, index=index, copy=False)
    prior = _prior_ledger(log.source) if isinstance(log.source, pd.DataFrame) else None
    rows_read, entries = prior if prior is not None else (run.n_tx, [])
    attrs = _attrs(
        lambda used, extra: _ledger(rows_read, [*entries, *extra], used), _dropped(entries), run.n_tx, log,
        cal=cal, obs=obs, unit_code=unit_code, holdout=holdout,
        after=(run.n_after, float(run.cents_after) / 100.0 if log.has_amount and run.n_after else None),
        late=(int(late.sum()), late_rows, late_spend),
        fence=fence, extreme_days=extreme_days, capped=False,
    )
    return frame, attrs
