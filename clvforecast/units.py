"""Time units, horizons and discount rates.

All of clvforecast measures time at day resolution; a ``time_unit`` only scales days:

=====  =======================  ==========================
unit   days per unit            typical use
=====  =======================  ==========================
``D``  1                        daily data
``W``  7                        the BG/NBD paper (CDNOW)
``M``  365.25 / 12 = 30.4375    monthly business reporting
``Y``  365.25                   annual figures
=====  =======================  ==========================

A horizon is a number in the table's unit or a string with its own unit (``"52W"``, ``"12M"``, ``"365D"``,
``"1Y"``); strings are converted with the factors above, never guessed. Discount rates are annual and are
converted to a per-period rate by compounding: ``(1 + annual) ** (days_per_period / 365.25) - 1``.
"""

from __future__ import annotations

import math
import numbers
import re

DAYS_PER_UNIT: dict[str, float] = {"D": 1.0, "W": 7.0, "M": 365.25 / 12.0, "Y": 365.25}
UNIT_NAMES: dict[str, str] = {"D": "days", "W": "weeks", "M": "months", "Y": "years"}

_HORIZON = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([DWMY])\s*$", re.IGNORECASE)


def check_time_unit(time_unit: str) -> str:
    """Return the canonical (upper-case) unit code, or raise ``ValueError`` naming the allowed codes."""
    if not isinstance(time_unit, str) or time_unit.upper() not in DAYS_PER_UNIT:
        allowed = ", ".join(DAYS_PER_UNIT)
        raise ValueError(f"time_unit must be one of {allowed} (days/weeks/months/years); got {time_unit!r}")
    return time_unit.upper()


def days_per(time_unit: str) -> float:
    """Number of days in one ``time_unit`` (D=1, W=7, M=365.25/12, Y=365.25)."""
    return DAYS_PER_UNIT[check_time_unit(time_unit)]


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert a duration ``value`` from one unit to another (``convert(12, "M", "W")`` = 52.18 weeks)."""
    return float(value) * days_per(from_unit) / days_per(to_unit)


def parse_horizon(horizon: float | int | str, time_unit: str) -> float:
    """Length of ``horizon`` expressed in ``time_unit``.

    Parameters
    ----------
    horizon:
        A non-negative number, taken to be in ``time_unit``, or a string ``"<number><unit>"`` such as
        ``"52W"``, ``"12M"``, ``"365D"`` or ``"1Y"`` whose own unit is converted (case and spaces ignored).
    time_unit:
        The unit the result is expressed in (the RFM table's or the model's unit).
    """
    unit = check_time_unit(time_unit)
    if isinstance(horizon, str):
        m = _HORIZON.match(horizon)
        if not m:
            raise ValueError(
                f"horizon {horizon!r} is not understood; give a number in the table's unit ({unit}) or a "
                "string like '52W', '12M', '365D' or '1Y'"
            )
        value = convert(float(m.group(1)), m.group(2).upper(), unit)
    elif isinstance(horizon, bool) or not isinstance(horizon, numbers.Real):  # numpy numbers are Real too
        raise TypeError(f"horizon must be a number or a string like '52W'; got {type(horizon).__name__}")
    else:
        value = float(horizon)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"horizon must be a finite, non-negative duration; got {horizon!r}")
    return value


def describe_horizon(horizon: float | int | str, time_unit: str) -> str:
    """A horizon in words: ``"52 weeks"``; with its own unit, also in ``time_unit``: ``"12 months (52.18 weeks)"``."""
    def words(v: float, code: str) -> str:
        name = UNIT_NAMES[code]
        return f"{v:.4g} {name[:-1] if v == 1 else name}"

    unit = check_time_unit(time_unit)
    in_unit = words(parse_horizon(horizon, unit), unit)
    m = _HORIZON.match(horizon) if isinstance(horizon, str) else None
    if m and m.group(2).upper() != unit:
        return f"{words(float(m.group(1)), m.group(2).upper())} ({in_unit})"
    return in_unit


def periodic_rate(annual_rate: float, time_unit: str) -> float:
    """Convert an annual discount rate to the equivalent compound rate per ``time_unit``.

    ``periodic_rate(0.10, "M")`` is ``1.10 ** (1/12) - 1`` = 0.797% per month.
    """
    if isinstance(annual_rate, bool) or not isinstance(annual_rate, numbers.Real):
        raise TypeError(f"discount_rate must be a number (0.1 for 10%); got {type(annual_rate).__name__}")
    if not math.isfinite(annual_rate) or annual_rate <= -1:
        raise ValueError(
            f"discount_rate must be an annual rate greater than -1 (0.1 for 10%); got {annual_rate!r}"
        )
    return (1.0 + annual_rate) ** (days_per(time_unit) / DAYS_PER_UNIT["Y"]) - 1.0
