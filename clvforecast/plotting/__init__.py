"""Plots. Every function is ``plot_x(..., ax=None, **kwargs) -> matplotlib.axes.Axes`` and never calls
``plt.show()``: pass an Axes to draw into your own figure, or leave ``ax=None`` for a new one.

CLV plots (predictive vs historical, Lorenz/Pareto curve, tiers) live in :mod:`._clv`; validation plots
(tracking, conditional expectations, period transactions, gains, frequency/recency heatmaps) in
:mod:`._validation`.
"""

from ._clv import *  # noqa: F403
from ._clv import __all__ as _clv_all
from ._forecast import *  # noqa: F403
from ._forecast import __all__ as _forecast_all
from ._uncertainty import *  # noqa: F403
from ._uncertainty import __all__ as _uncertainty_all
from ._validation import *  # noqa: F403
from ._validation import __all__ as _validation_all

__all__ = [*_clv_all, *_forecast_all, *_uncertainty_all, *_validation_all]
