"""clvforecast: probabilistic customer-lifetime-value forecasting.

Transactions -> RFM table (:func:`rfm_summary`, :func:`calibration_holdout`) -> BG/NBD and Gamma-Gamma models
-> predictive CLV, compared with the historical CLV formula and validated on a holdout period.
"""

from .clv import predictive_clv
from .datasets import load_cdnow
from .exceptions import (
    ConvergenceError,
    DataQualityWarning,
    DataValidationError,
    ModelAssumptionWarning,
    NotFittedError,
)
from .io import read_transactions
from .models import BetaGeo, GammaGamma, load_model
from .rfm import calibration_holdout, rfm_summary
from .units import parse_horizon, periodic_rate

__version__ = "0.1.0"

__all__ = [
    "BetaGeo",
    "GammaGamma",
    "load_model",
    "predictive_clv",
    "ConvergenceError",
    "DataQualityWarning",
    "DataValidationError",
    "ModelAssumptionWarning",
    "NotFittedError",
    "calibration_holdout",
    "load_cdnow",
    "parse_horizon",
    "periodic_rate",
    "read_transactions",
    "rfm_summary",
]
