"""linreg: linear regression as a clean, fast PyTorch Lightning module."""

from linreg.callbacks import (
    Convergence,
    DivergenceGuard,
    FitPlot,
    GracefulStop,
    HParamsMetrics,
    OptimumGap,
    ParameterLogger,
    PredictionWriter,
)
from linreg.data import ArrayDataModule, SyntheticDataModule, TensorDataModule
from linreg.errors import UserInputError
from linreg.files import FileDataModule
from linreg.least_squares import LeastSquares
from linreg.model import LinearModel, LinearRegression

__all__ = [
    "ArrayDataModule",
    "Convergence",
    "DivergenceGuard",
    "FileDataModule",
    "FitPlot",
    "GracefulStop",
    "HParamsMetrics",
    "LeastSquares",
    "LinearModel",
    "LinearRegression",
    "LinearRegressor",
    "OptimumGap",
    "ParameterLogger",
    "PredictionWriter",
    "SyntheticDataModule",
    "TensorDataModule",
    "UserInputError",
    "main",
]


def __getattr__(name: str) -> object:
    """``linreg.LinearRegressor`` is imported on first use: scikit-learn is optional and slow."""
    if name == "LinearRegressor":
        from linreg.estimator import LinearRegressor

        return LinearRegressor
    raise AttributeError(f"module 'linreg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


def main() -> None:
    """Run the ``linreg`` command line."""
    from linreg.cli import main as cli_main

    cli_main()
