"""linreg: linear regression as a clean, fast PyTorch Lightning module."""

from linreg.callbacks import (
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
from linreg.model import LinearRegression

__all__ = [
    "ArrayDataModule",
    "DivergenceGuard",
    "FileDataModule",
    "FitPlot",
    "GracefulStop",
    "HParamsMetrics",
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
