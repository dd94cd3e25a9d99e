"""Exceptions and warnings raised by clvforecast."""

from __future__ import annotations


class DataValidationError(ValueError):
    """Input data is not usable as given.

    The message names the column, how many rows are affected, up to three examples and the fix.
    """


class NotFittedError(RuntimeError):
    """A model was asked for predictions before ``fit`` was called."""


class ConvergenceError(RuntimeError):
    """The likelihood maximisation did not converge, even after retries."""


class DataQualityWarning(UserWarning):
    """Rows were dropped or the data questions a model assumption; the message says how many and why."""


class ModelAssumptionWarning(UserWarning):
    """The data questions an assumption of the model (e.g. Gamma-Gamma's spend/frequency independence)."""


class ConvergenceWarning(UserWarning):
    """A fit needed a fallback (a penalizer) or its standard errors could not be computed."""
