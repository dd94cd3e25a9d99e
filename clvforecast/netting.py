"""Netting returns against earlier purchases: the rule, as one pure function shared by every engine.

The rule (``returns="net"`` in :class:`~clvforecast.TransactionLog`):

* A *return* is a line with a negative value (a cancellation, a refund); a *purchase* is a line with a value of
  zero or more. Lines are grouped by customer, and by customer and item when the log names an ``item`` column.
* Within a group, lines are taken in time order: by timestamp (the time of day counts when the source has one:
  a cancellation 12 minutes after its order is later than the order), purchases before returns at the same
  timestamp (a date-only log: a return and a purchase on one day are at the same time, so the purchase is
  earlier), then in source order.
* Each return consumes the value of the group's earlier purchases **latest first** (LIFO): the most recent
  purchase is reduced first, down to zero, then the one before it, and so on. A purchase's value never goes
  below zero.
* The part of a return with no earlier purchase value left to consume is *unmatched*.

This module only matches values; :mod:`clvforecast.io` then applies the consequences (a purchase day whose net
value reaches zero is no longer a purchase, unmatched returns are dropped and counted, ...).

Values are matched in exact integer arithmetic on micro-units of currency (``round(value * 1e6)``), so that a
return of the full value of its purchases leaves exactly zero, whatever the binary rounding of the amounts.

Spark: :func:`net_group` takes and returns pandas DataFrames, so it runs as is under ``applyInPandas`` on the
lines of the groups that contain a return (only those: the other groups are unchanged by definition), grouped
into hash buckets of groups so that each pandas call nets many groups (``clvforecast.spark.SparkEngine.net``).

The local engine (DuckDB) calls :func:`net_sorted` once on all affected groups, sorted; the results are the same
because groups never interact.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["NET_COLUMNS", "NET_SCHEMA", "SCALE", "net_group", "net_sorted"]

#: Values are matched in integer units of 1 / SCALE currency.
SCALE = 1_000_000
#: Columns :func:`net_group` reads (``ts`` may be a date or a timestamp) and writes.
NET_COLUMNS = ("row", "ts", "amount")
#: The output schema of :func:`net_group` as a Spark DDL string.
NET_SCHEMA = "row long, net_amount double, matched double"


def net_sorted(group: np.ndarray, amount: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LIFO matching on lines already sorted by (group, time, purchases before returns, source order).

    Parameters
    ----------
    group:
        Integer group code of each line (lines of one group are contiguous).
    amount:
        Signed value of each line in currency units (negative: a return).

    Returns
    -------
    ``(net_amount, matched)``: for a purchase, the value left after the returns consumed it (``>= 0``) and the
    value they consumed; for a return, ``net_amount`` 0 and ``matched`` the part of its value (``>= 0``) that
    consumed earlier purchases (the rest is unmatched).
    """
    n = len(amount)
    units = np.rint(np.asarray(amount, dtype=float) * SCALE)
    # Python integers: exact for any amount below the 1e15 cap of clvforecast.io
    values = [int(v) for v in units]
    groups = np.asarray(group).tolist()
    left = list(values)  # purchase value left, in micro-units
    matched = [0] * n
    stack: list[int] = []
    current = None
    for i in range(n):
        if groups[i] != current:
            current, stack = groups[i], []
        v = values[i]
        if v >= 0:
            if v > 0:
                stack.append(i)
            continue
        need = -v
        left[i] = 0
        while need and stack:
            j = stack[-1]
            take = left[j] if left[j] <= need else need
            left[j] -= take
            matched[j] += take
            need -= take
            if left[j] == 0:
                stack.pop()
        matched[i] = -v - need
    net = np.asarray(left, dtype=float) / SCALE
    # a purchase nothing consumed keeps its exact amount (no round trip through micro-units)
    untouched = (units >= 0) & (np.asarray(matched) == 0)
    net[untouched] = np.asarray(amount, dtype=float)[untouched]
    return net, np.asarray(matched, dtype=float) / SCALE


def net_group(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`net_sorted` on the lines of one or more whole groups, in any order (a Spark ``applyInPandas`` UDF).

    ``frame`` has the columns ``row`` (the line's position in the source, int), ``ts`` (its time), ``amount``
    (signed value) and the group's key columns (everything else; all lines of a group must be present). Returns
    ``row``, ``net_amount`` and ``matched`` (see :func:`net_sorted`).
    """
    keys = [c for c in frame.columns if c not in NET_COLUMNS]
    order = frame.assign(_is_return=frame["amount"] < 0).sort_values(
        [*keys, "ts", "_is_return", "row"], kind="stable"
    )
    group = order.groupby(keys, sort=False, dropna=False).ngroup().to_numpy() if keys else np.zeros(len(order))
    net, matched = net_sorted(group, order["amount"].to_numpy(dtype=float))
    return pd.DataFrame({"row": order["row"].to_numpy(dtype="int64"), "net_amount": net, "matched": matched})
