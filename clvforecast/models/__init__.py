"""Probabilistic models of customer behaviour.

BG/NBD purchases (:class:`BetaGeo`) and Gamma-Gamma spend (:class:`GammaGamma`), estimated with lifetimes
behind this package; JSON persistence with ``model.save(path)`` and :func:`load_model`.
"""

from ._base import ConvergenceWarning, FittedModel, load_model
from .beta_geo import BetaGeo
from .gamma_gamma import CORRELATION_THRESHOLD, GammaGamma

__all__ = [
    "CORRELATION_THRESHOLD",
    "BetaGeo",
    "ConvergenceWarning",
    "FittedModel",
    "GammaGamma",
    "load_model",
]
