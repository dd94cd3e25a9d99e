"""Validation plots: tracking, conditional expectations, period transactions, gains, heatmaps."""

__all__: list[str] = []
