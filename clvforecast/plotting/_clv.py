"""CLV plots: predictive vs historical scatter, Lorenz/Pareto curve, tier bars."""

__all__: list[str] = []
