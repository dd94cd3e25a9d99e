"""clvforecast: probabilistic customer-lifetime-value forecasting.

Transactions -> RFM table (:func:`rfm_summary`, :func:`calibration_holdout`) -> BG/NBD and Gamma-Gamma models
-> predictive CLV, compared with the historical CLV formula and validated on a holdout period.
"""

from .clv import forecast_totals, predictive_clv
from .compare import CLVComparison, compare_clv, rfm_scores, silent_customers
from .datasets import load_cdnow, load_online_retail
from .evaluation import HoldoutEvaluation, backtest, compare_models, evaluate_holdout, forecast_metrics
from .exceptions import (
    ConvergenceError,
    ConvergenceWarning,
    DataQualityWarning,
    DataValidationError,
    ModelAssumptionWarning,
    NotFittedError,
)
from .historical import (
    HistoricalCLV,
    ImpliedLifetime,
    LifespanEstimate,
    estimate_lifespan,
    historical_clv,
    historical_forecast,
    implied_lifetime,
)
from .io import TransactionLog, read_transactions
from .models import (
    PURCHASE_MODELS,
    BetaGeo,
    BetaGeoBetaBinom,
    GammaGamma,
    ModifiedBetaGeo,
    ParetoNBD,
    load_model,
    purchase_model,
)
from .report import ForecastReport
from .rfm import calibration_holdout, discrete_summary, extreme_orders, rfm_summary
from .units import parse_horizon, periodic_rate

__version__ = "0.1.0"

__all__ = [
    "ForecastReport",
    "HoldoutEvaluation",
    "backtest",
    "compare_models",
    "evaluate_holdout",
    "forecast_metrics",
    "BetaGeo",
    "GammaGamma",
    "load_model",
    "PURCHASE_MODELS",
    "BetaGeoBetaBinom",
    "ModifiedBetaGeo",
    "ParetoNBD",
    "purchase_model",
    "predictive_clv",
    "forecast_totals",
    "CLVComparison",
    "HistoricalCLV",
    "ImpliedLifetime",
    "LifespanEstimate",
    "compare_clv",
    "estimate_lifespan",
    "historical_clv",
    "historical_forecast",
    "implied_lifetime",
    "rfm_scores",
    "silent_customers",
    "ConvergenceError",
    "ConvergenceWarning",
    "DataQualityWarning",
    "DataValidationError",
    "ModelAssumptionWarning",
    "NotFittedError",
    "calibration_holdout",
    "load_cdnow",
    "load_online_retail",
    "parse_horizon",
    "periodic_rate",
    "read_transactions",
    "TransactionLog",
    "discrete_summary",
    "extreme_orders",
    "rfm_summary",
]
