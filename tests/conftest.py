"""Shared fixtures: Agg backend, seeded randomness, the CDNOW tables."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import clvforecast as cf  # noqa: E402

DATA = Path(__file__).parent / "data"
CAL_END, OBS_END = "1997-09-30", "1998-06-30"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20051)


@pytest.fixture(scope="session")
def cdnow_tx() -> pd.DataFrame:
    return cf.load_cdnow("sample")


@pytest.fixture(scope="session")
def cdnow_cal(cdnow_tx: pd.DataFrame) -> pd.DataFrame:
    """Calibration/holdout table of the CDNOW sample in weeks (the paper's set-up)."""
    return cf.calibration_holdout(cdnow_tx, calibration_end=CAL_END, observation_end=OBS_END, time_unit="W")


@pytest.fixture(scope="session")
def published_summary() -> pd.DataFrame:
    """Fader-Hardie's published CDNOW summary (ID, x, t_x, T, zbar), as shipped by lifetimes."""
    return pd.read_csv(DATA / "cdnow_published_summary.csv").set_index("ID")
