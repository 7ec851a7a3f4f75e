"""Polynomial regression by subclassing linreg: a curve ``y = 0.5 - x + 2x²`` learned by SGD.

``PolynomialRegression`` is ``LinearRegression`` whose ``features`` expand each input
column into its powers ``[x, x², …, x^degree]``; the rest (MSE, penalties, metrics, optimizer,
checkpoints) is inherited. The expansion lives in the model rather than in the data module
because the polynomial is part of the model: a checkpoint then predicts from the raw ``x`` (its
``degree`` is a saved hyperparameter), the data module stays a plain table of ``x`` and ``y``
(swap in any other), and FitPlot draws the fitted curve over the raw ``x``. ``in_features`` stays
the data's column count, so the CLI's link to ``data.num_features`` still holds.

``QuadraticDataModule`` serves the curve: ``x ~ U(-1, 1)``, ``y = c0 + c1·x + c2·x² + noise``.

Run, from the repository root:

    .venv/bin/python scripts/polynomial_regression.py [--epochs 10] [--degree 2]
    PYTHONPATH=scripts .venv/bin/linreg fit \\
        --model polynomial_regression.PolynomialRegression \\
        --data polynomial_regression.QuadraticDataModule --data.noise 0.05 [--model.degree 3]

The model is still linear in its parameters, so the exact optimum is known: the learning rate
comes from the curvature of the powers of ``x`` and OptimumGap measures SGD against least
squares on them (``linreg.LeastSquares`` itself fits the raw columns only).
"""

from __future__ import annotations

import argparse

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from linreg import ArrayDataModule, LinearRegression
from linreg.errors import UserInputError


class PolynomialRegression(LinearRegression):
    """``y = Σₖ (x^k) Wₖᵀ + b`` for ``k = 1 … degree``: linear regression on the powers of ``x``.

    Inputs should be roughly in ``[-1, 1]`` (standardize them first otherwise): higher powers of
    large values make the loss surface too steep for a single learning rate.

    Args:
        in_features: columns of ``x`` (linked to the data module on the command line).
        out_features: columns of ``y``.
        degree: highest power of ``x``; the linear layer has ``in_features · degree`` inputs,
            ordered ``[x₁ … x_d, x₁² … x_d², …]``.
        fit_intercept: learn the constant term ``b``.
        optimizer: builds the optimizer from the parameters; ``None`` means SGD with the
            learning rate and momentum chosen from the curvature of the expanded features.
        lr_scheduler: optional scheduler factory, stepped per epoch.
        l1: weight of the L1 penalty on all polynomial coefficients (not ``b``).
        l2: weight of the L2 penalty on all polynomial coefficients (not ``b``).
    """

    def __init__(
        self,
        in_features: int = 1,
        out_features: int = 1,
        degree: int = 2,
        fit_intercept: bool = True,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        l1: float = 0.0,
        l2: float = 0.0,
    ) -> None:
        super().__init__(in_features, out_features, fit_intercept, optimizer, lr_scheduler, l1, l2)
        if degree < 1:
            raise UserInputError(f"degree must be at least 1, got {degree}.")
        # Replace the parent's layer with a wider one; penalties, the exact optimum and the
        # CLI summary all read ``self.linear``, so they keep working on the coefficients.
        self.linear = nn.Linear(in_features * degree, out_features, bias=fit_intercept)

    def features(self, x: Tensor) -> Tensor:
        """``[x, x², …, x^degree]`` side by side: shape ``(batch, in_features · degree)``.

        The linear layer's inputs. As this is the model's only change, everything linreg
        computes exactly for a linear model (the learning rate from the curvature, the gap to
        the least-squares optimum) holds for the polynomial too.
        """
        return torch.cat([x**power for power in range(1, self.hparams.degree + 1)], dim=1)


class QuadraticDataModule(ArrayDataModule):
    """The curve ``y = c0 + c1·x + c2·x² + noise`` with ``x ~ U(-1, 1)``, split and batched.

    ``true_weight`` (``[[c1, c2]]``) and ``true_bias`` (``[c0]``) are the coefficients a
    degree-2 ``PolynomialRegression`` should learn; the CLI prints them next to the learned ones.

    Args:
        n_samples: rows to generate (train, val and test together).
        c0: constant term.
        c1: coefficient of ``x``.
        c2: coefficient of ``x²``.
        noise: standard deviation of the Gaussian noise added to ``y``.
        batch_size: rows per training step.
        val_fraction: share of rows held out for validation, in ``[0, 1)``.
        test_fraction: share of rows held out for testing, in ``[0, 1)``.
        seed: seed of the data, the split and the shuffling.
    """

    def __init__(
        self,
        n_samples: int = 1000,
        c0: float = 0.5,
        c1: float = -1.0,
        c2: float = 2.0,
        noise: float = 0.05,
        batch_size: int = 32,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 42,
    ) -> None:
        super().__init__(batch_size, val_fraction, test_fraction, seed)
        self.save_hyperparameters()
        if noise < 0:
            raise UserInputError(f"noise is a standard deviation and must be >= 0, got {noise}.")
        self.check_split_sizes(n_samples, source=f"n_samples={n_samples}")
        self.true_weight = torch.tensor([[c1, c2]])
        self.true_bias = torch.tensor([c0])

    @property
    def num_features(self) -> int:
        """One input column, ``x``."""
        return 1

    def load_arrays(self) -> tuple[Tensor, Tensor]:
        """Generate ``(x, y)`` from ``seed``, both of shape ``(n_samples, 1)``."""
        generator = torch.Generator().manual_seed(self.seed)
        x = torch.rand(self.hparams.n_samples, 1, generator=generator) * 2 - 1
        c0, c1, c2 = self.hparams.c0, self.hparams.c1, self.hparams.c2
        y = c0 + c1 * x + c2 * x**2
        return x, y + self.hparams.noise * torch.randn(y.shape, generator=generator)


def polynomial(bias: float, weights: list[float]) -> str:
    """``"0.5 - 1·x + 2·x^2"`` from the constant term and the coefficients of ``x, x², …``."""
    text = f"{bias:.4f}"
    for power, weight in enumerate(weights, start=1):
        term = "x" if power == 1 else f"x^{power}"
        text += f" {'-' if weight < 0 else '+'} {abs(weight):.4f}·{term}"
    return text


def main() -> None:
    """Fit the curve, then print the learned polynomial next to the true one."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--degree", type=int, default=2)
    args = parser.parse_args()

    pl.seed_everything(0)
    data = QuadraticDataModule()
    model = PolynomialRegression(in_features=data.num_features, degree=args.degree)
    trainer = pl.Trainer(max_epochs=args.epochs, logger=False, enable_checkpointing=False)
    trainer.fit(model, data)
    trainer.test(model, data)

    weights = model.linear.weight.detach().flatten().tolist()
    print(f"learned: y = {polynomial(model.linear.bias.item(), weights)}")
    true = data.true_weight.flatten().tolist()
    print(f"true:    y = {polynomial(data.true_bias.item(), true)}")


if __name__ == "__main__":
    main()
