"""Argument checks shared by the modules (one rule, one message, wherever a number is taken)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def check_number(value: Any, name: str, *, positive: bool = False, example: str = "") -> float:
    """``value`` as a finite float, ``> 0`` when ``positive`` else ``>= 0``; a clear error otherwise.

    Python and numpy numbers are accepted, booleans are not. ``example`` is appended to the message, e.g.
    ``" (0.3 for a 30% margin)"``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number{example}; got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or (v <= 0 if positive else v < 0):
        need = "a finite number greater than 0" if positive else "a finite number >= 0"
        raise ValueError(f"{name} must be {need}{example}; got {value!r}")
    return v


def check_margin(value: Any, name: str = "margin", *, positive: bool = False) -> float:
    """A profit margin as a fraction of spend: a number in [0, 1] (``(0, 1]`` when ``positive``).

    A margin above 1 would be more profit than the whole spend: almost always a percentage typed as a whole
    number (30 for 30%); it is refused with the fix.
    """
    v = check_number(value, name, positive=positive, example=" (0.3 for a 30% margin, 1.0 for revenue)")
    if v > 1:
        raise ValueError(
            f"{name}={value!r} is more than the whole spend; a margin is a fraction of spend: pass "
            f"{name}={v / 100:g} for {v:g}%, or 1.0 for revenue"
        )
    return v


def check_discount_rate(value: Any, name: str = "discount_rate") -> float:
    """An annual discount rate as a fraction: a number in [0, 1) (0.1 for 10% a year).

    A rate of 1 or more (100% a year or more) is almost always a percentage typed as a whole number; it is
    refused with the fix ("10 means 1,000% a year; pass 0.10").
    """
    v = check_number(value, name, example=" (annual, 0.1 for 10%)")
    if v >= 1:
        raise ValueError(
            f"{name}={value!r} means {v * 100:,.0f}% a year; a discount rate is an annual fraction: pass "
            f"{name}={v / 100:g} for {v:g}% a year"
        )
    return v
