"""linreg: linear regression as a clean, fast PyTorch Lightning module."""

from linreg.data import ArrayDataModule, SyntheticDataModule
from linreg.files import FileDataModule
from linreg.model import LinearRegression

__all__ = ["ArrayDataModule", "FileDataModule", "LinearRegression", "SyntheticDataModule", "main"]


def main() -> None:
    """Run the ``linreg`` command line."""
    from linreg.cli import main as cli_main

    cli_main()
