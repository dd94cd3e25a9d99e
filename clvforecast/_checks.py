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
