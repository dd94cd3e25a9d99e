"""Probabilistic models of customer behaviour, estimated by clvforecast's own engine.

Purchase models (one interface, :class:`PurchaseModel`): :class:`BetaGeo` (BG/NBD), :class:`ParetoNBD`,
:class:`ModifiedBetaGeo` (MBG/NBD) and :class:`BetaGeoBetaBinom` (BG/BB, discrete opportunities); the spend
model :class:`GammaGamma`. JSON persistence with ``model.save(path)`` and :func:`load_model`.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import ConvergenceWarning, ModelAssumptionWarning
from ._base import FittedModel, ModelFileError, PurchaseModel, load_model, model_from_dict
from .beta_geo import BetaGeo
from .bgbb import BetaGeoBetaBinom
from .gamma_gamma import CORRELATION_THRESHOLD, GammaGamma
from .mbgnbd import ModifiedBetaGeo
from .pareto_nbd import ParetoNBD

PURCHASE_MODELS: dict[str, type[PurchaseModel]] = {
    cls.NAME: cls for cls in (BetaGeo, ParetoNBD, ModifiedBetaGeo, BetaGeoBetaBinom)
}


def purchase_model(spec: Any) -> PurchaseModel:
    """A purchase model from a name (``"bgnbd"``, ``"pnbd"``, ``"mbgnbd"``, ``"bgbb"``), a class or an instance.

    Names and classes give a new, unfitted instance; an instance is returned as it is.
    """
    if isinstance(spec, PurchaseModel):
        return spec
    if isinstance(spec, type) and issubclass(spec, PurchaseModel):
        return spec()
    if isinstance(spec, str):
        def norm(v: str) -> str:
            return v.strip().lower().replace("/", "").replace("-", "").replace("_", "").replace(" ", "")

        for name, cls in PURCHASE_MODELS.items():  # "bgnbd", "BG/NBD", "BetaGeo", "Pareto/NBD", "ParetoNBD", ...
            if norm(spec) in {name, norm(cls.LABEL), norm(cls.__name__)}:
                return cls()
    raise ValueError(
        f"unknown purchase model {spec!r}; use one of {', '.join(repr(k) for k in PURCHASE_MODELS)} "
        "(BG/NBD, Pareto/NBD, MBG/NBD, BG/BB), a model class or a model instance"
    )


__all__ = [
    "CORRELATION_THRESHOLD",
    "PURCHASE_MODELS",
    "BetaGeo",
    "BetaGeoBetaBinom",
    "ConvergenceWarning",
    "FittedModel",
    "GammaGamma",
    "ModelAssumptionWarning",
    "ModelFileError",
    "ModifiedBetaGeo",
    "ParetoNBD",
    "PurchaseModel",
    "load_model",
    "model_from_dict",
    "purchase_model",
]
