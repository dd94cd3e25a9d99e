"""The forecast report, in four layers (each a module here):

1. :mod:`.compute`: run the public API once (read, fit, forecast, validate, compare) -> ``Results``;
2. :mod:`.summary`: every number and sentence the report shows -> one plain, JSON-able dict, one entry per
   section (:mod:`.format` holds the number formats, the column headers and the glossary);
3. :mod:`.figures`: one function per figure, from the summary and :mod:`clvforecast.plotting`;
4. :mod:`.render`: HTML and Markdown from Jinja templates (``templates/sections/<id>.j2``, one per section,
   built from shared macros), JSON from the summary itself.

Adding a section is one builder in :mod:`.summary` and one template in ``templates/sections/``.
:class:`ForecastReport` ties the layers together and computes each once.
"""

from __future__ import annotations

import html
import sys
import warnings
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from .._checks import check_discount_rate, check_margin
from ..clv import _check_interval
from ..units import check_time_unit
from . import render
from .compute import Results, Settings, _check_past_cutoffs, _date, _positive_horizon, check_model, compute
from .figures import Figure, draw_figures
from .format import check_currency
from .summary import build_summary

__all__ = ["ForecastReport"]


def _given(read_options: dict[str, Any]) -> dict[str, Any]:
    """The read options that differ from TransactionLog's defaults: those a TransactionLog passed as the source
    must not be asked to change (a default is no request)."""
    import dataclasses

    from ..io import TransactionLog

    defaults = {f.name: f.default for f in dataclasses.fields(TransactionLog)}
    return {k: v for k, v in read_options.items() if k not in defaults or defaults[k] != v}


class ForecastReport:
    """A CLV forecast report for a transaction log (or an RFM table), with optional holdout validation.

    Parameters
    ----------
    transactions:
        A DataFrame or a CSV/Parquet path, read as :func:`~clvforecast.read_transactions` reads it. Either this
        or ``rfm`` is required; with only an RFM table there is no historical-formula comparison, no tracking
        plot and no data-preparation section.
    rfm:
        An RFM table from :func:`~clvforecast.rfm_summary` (forecast only) or
        :func:`~clvforecast.calibration_holdout` (forecast from the calibration end, plus validation).
    calibration_end, observation_end:
        Dates. With ``calibration_end`` the report validates on the holdout ``(calibration_end, observation_end]``
        and forecasts after ``observation_end`` from a second fit on all data. ``observation_end`` defaults to the
        last transaction date.
    time_unit:
        ``"D"``, ``"W"`` (default), ``"M"`` or ``"Y"``: the unit of recency, T and the model's rates.
    horizon:
        Forecast horizon with its unit (``"52W"`` default, ``"12M"``, ``"365D"``) or a number in ``time_unit``.
    discount_rate:
        Annual discount rate for the CLV (0.10 = 10% a year), converted to monthly steps.
    margin:
        Profit margin applied to spend (1.0 = revenue).
    title:
        Report title.
    top_n:
        Number of customers in the top-customers and silent-customers tables.
    currency:
        How money is shown: a symbol (``"$"``, ``"£"``, ``"€"``) or an ISO code (``"GBP"``); ``None`` (default)
        shows amounts without a unit.
    model:
        The purchase model: ``"auto"`` (compare BG/NBD, Pareto/NBD and MBG/NBD on the holdout with
        :func:`~clvforecast.compare_models` and forecast with the one it chooses; the default when there is a
        holdout), ``"bgnbd"`` (the default without a holdout), ``"pnbd"`` or ``"mbgnbd"``.
    interval:
        Level of the predictive ranges (0.9 by default: 90%), or ``None`` for point forecasts only. The ranges
        are shown on the headline numbers, in the top-customers table and checked on the holdout.
    random_state:
        Seed of the parameter draws behind the ranges (0 by default, so that a report is the same on every run).
    past_cutoffs:
        With a holdout and a transaction log: the number of earlier cutoffs (4 by default) at which the model
        is refitted to learn its own errors on the totals, for the backtest-calibrated ranges; ``None`` skips
        them.
    customer_id, date, amount, date_format, on_invalid, **read_options:
        How to read ``transactions`` (see :func:`~clvforecast.read_transactions`); ``amount=None`` for a log
        without amounts (purchases and P(alive) only; the sections that need spend say so).

    ``report.summary`` (the JSON-able dict every renderer reads), ``report.results`` (the pandas objects and
    fitted models) and ``report.figures`` are computed on first use, once.
    """

    def __init__(
        self,
        transactions: Any = None,
        *,
        rfm: pd.DataFrame | None = None,
        calibration_end: Any = None,
        observation_end: Any = None,
        time_unit: str = "W",
        horizon: float | str = "52W",
        discount_rate: float = 0.10,
        margin: float = 1.0,
        model: str | None = None,
        interval: float | None = 0.9,
        random_state: Any = 0,
        past_cutoffs: int | None = 4,
        title: str = "Customer lifetime value forecast",
        top_n: int = 20,
        currency: str | None = None,
        customer_id: str = "customer_id",
        date: str = "date",
        amount: str | None = "amount",
        date_format: str | None = None,
        on_invalid: str = "raise",
        **read_options: Any,
    ) -> None:
        if (transactions is None) == (rfm is None):
            raise ValueError("give either transactions or rfm (an RFM table), not both and not neither")
        unit = check_time_unit(time_unit)
        cal = None if calibration_end is None else _date(calibration_end, "calibration_end", date_format)
        obs = None if observation_end is None else _date(observation_end, "observation_end", date_format)
        if cal is not None and obs is not None and cal >= obs:
            raise ValueError(
                f"calibration_end ({cal}) is not before observation_end ({obs}): the holdout between them would "
                "hold nothing; choose a calibration_end before observation_end"
            )
        holdout = cal is not None or (rfm is not None and "holdout_frequency" in rfm.columns)
        self.transactions, self.rfm = transactions, rfm
        self.settings = Settings(
            time_unit=unit,
            horizon=horizon,
            horizon_units=_positive_horizon(horizon, unit),
            # A report of zero value says nothing: the margin must be positive; above 1 it is refused.
            margin=check_margin(margin, positive=True),
            discount_rate=check_discount_rate(discount_rate),
            title=title,
            top_n=int(top_n),
            currency=check_currency(currency),
            calibration_end=cal,
            observation_end=obs,
            model=check_model(model, holdout=holdout),
            interval=_check_interval(interval),
            random_state=random_state,
            past_cutoffs=_check_past_cutoffs(past_cutoffs),
            read_options=_given(dict(customer_id=customer_id, date=date, amount=amount, date_format=date_format,
                                     on_invalid=on_invalid, **read_options)),
        )

    # -- the layers, each computed once ---------------------------------------------------------------------
    @cached_property
    def results(self) -> Results:
        """The fitted models and per-customer tables (see :class:`.compute.Results`)."""
        return _each_warning_once(compute, self.settings, self.transactions, self.rfm)

    @cached_property
    def summary(self) -> dict[str, Any]:
        """Every number and sentence the report shows, as one plain JSON-able dict (see :mod:`.summary`)."""
        return _each_warning_once(build_summary, self.results, self.settings)

    @cached_property
    def figures(self) -> dict[str, Figure]:
        """The figures the summary's sections list, drawn once (PNG, or a sentence when nothing to plot)."""
        return draw_figures(self.summary, self.results)

    # -- renderers ----------------------------------------------------------------------------------------------
    def to_html(self) -> str:
        """The report as one self-contained HTML document (figures embedded, no external assets)."""
        return render.to_html(self.summary, self.figures)

    def write_html(self, path: str | Path) -> Path:
        """Write :meth:`to_html` to ``path`` (parent folders are created) and return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_html(), encoding="utf-8")
        return path

    def to_markdown(self, *, figures: bool = False) -> str:
        """The report as Markdown; with ``figures=True`` the figures are embedded as PNG data URIs."""
        return render.to_markdown(self.summary, self.figures, embed_figures=figures)

    def to_json(self, *, indent: int | None = 2) -> str:
        """The summary (numbers, sentences and tables, no figures) as JSON; undefined numbers are null."""
        return render.to_json(self.summary, indent=indent)

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        st = self.settings
        text = f"time_unit={st.time_unit!r}, horizon={st.horizon!r}"
        if st.calibration_end is not None:
            text += f", calibration_end={st.calibration_end!r}"
        return f"ForecastReport({html.escape(st.title)!r}, {text})"


def _each_warning_once(fn: Any, *args: Any) -> Any:
    """``fn(*args)``, its warnings shown once each: the backtest refits a model at every cutoff, and the same
    caveat would otherwise be repeated for each fit. The user's filters apply where a warning is raised (an
    ``error`` filter raises there) and again when it is shown; the warnings are shown if ``fn`` raises too."""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            return fn(*args)
    finally:  # outside the recording: shown to the user's filters
        _show_once(caught)


def _show_once(caught: list[warnings.WarningMessage]) -> None:
    files = {getattr(m, "__file__", None): name for name, m in list(sys.modules.items())}
    seen: set[tuple[type[Warning], str]] = set()
    for w in caught:
        key = (w.category, str(w.message))
        if key in seen:
            continue
        seen.add(key)
        module = files.get(w.filename)  # the dotted name, for filters by module
        if module:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, module=module)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
