"""linreg: linear regression as a clean, fast PyTorch Lightning module."""

from linreg.data import ArrayDataModule, SyntheticDataModule, TensorDataModule
from linreg.files import FileDataModule
from linreg.model import LinearRegression

__all__ = [
    "ArrayDataModule",
    "FileDataModule",
    "LinearRegression",
    "LinearRegressor",
    "SyntheticDataModule",
    "TensorDataModule",
    "main",
]


def __getattr__(name: str) -> object:
    """``linreg.LinearRegressor`` is imported on first use: scikit-learn is optional and slow."""
    if name == "LinearRegressor":
        from linreg.estimator import LinearRegressor

        return LinearRegressor
    raise AttributeError(f"module 'linreg' has no attribute {name!r}")


def main() -> None:
    """Run the ``linreg`` command line."""
    from linreg.cli import main as cli_main

    cli_main()
