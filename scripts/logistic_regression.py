"""Logistic regression by subclassing linreg: two Gaussian blobs told apart by a linear boundary.

``LogisticRegression`` is ``LinearRegression`` with three hooks changed: ``loss`` (binary cross
entropy on the logits), ``configure_metrics`` (accuracy, AUROC and the Brier score) and the
evaluation and prediction steps, which turn logits into probabilities. The linear layer,
penalties, optimizer injection and checkpoints are inherited.

``TwoClassDataModule`` serves two blobs: ``x ~ N(±(separation / 2) · u, I)`` with ``u`` the unit
diagonal, labels 0 and 1 as a float column. The best possible accuracy is ``Φ(separation / 2)``,
0.977 at the default separation of 4.

Run, from the repository root:

    .venv/bin/python scripts/logistic_regression.py [--epochs 10]
    PYTHONPATH=scripts .venv/bin/linreg fit \\
        --model logistic_regression.LogisticRegression \\
        --data logistic_regression.TwoClassDataModule --data.n_features 2

OptimumGap skips this model by itself (its loss is not the squared error); FitPlot draws the
logits against the labels.
"""

from __future__ import annotations

import argparse
import math

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MeanSquaredError, MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC

from linreg import ArrayDataModule, LinearRegression
from linreg.errors import UserInputError


class LogisticRegression(LinearRegression):
    """``P(y = 1 | x) = sigmoid(x Wᵀ + b)``, trained on binary cross entropy; forward gives logits.

    Takes ``LinearRegression``'s arguments unchanged (``out_features`` is the number of
    independent binary labels, usually 1). Logged per epoch: ``val/accuracy`` (threshold 0.5),
    ``val/auroc`` and ``val/mse``, the Brier score (mean squared error of the probabilities). The
    Brier score keeps that name on purpose: the ``linreg`` command's checkpoint keeps the model
    with the lowest ``val/mse``, which for a classifier is a proper score to select by.
    """

    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        """Accumulate the validation metrics on probabilities (not logits)."""
        x, y = batch
        self.val_metrics.update(torch.sigmoid(self(x)), y)

    def test_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        """Accumulate the test metrics on probabilities (not logits)."""
        x, y = batch
        self.test_metrics.update(torch.sigmoid(self(x)), y)

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        """Probabilities ``P(y = 1 | x)`` for the batch's ``x``."""
        return torch.sigmoid(self(batch[0]))

    def configure_metrics(self) -> MetricCollection:
        """Accuracy, AUROC and Brier score, fed probabilities by the evaluation steps.

        The steps apply the sigmoid themselves: torchmetrics guesses per batch whether scores
        are logits (any value outside [0, 1]), and logits that all happen to lie in [0, 1]
        would be mistaken for probabilities.
        """
        return MetricCollection(
            {
                "accuracy": BinaryAccuracy(),
                "auroc": BinaryAUROC(),
                "mse": MeanSquaredError(num_outputs=self.linear.out_features),
            }
        )

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        """Binary cross entropy of the logits, computed stably in one fused function."""
        return F.binary_cross_entropy_with_logits(prediction, target)


class TwoClassDataModule(ArrayDataModule):
    """Two Gaussian blobs with identity covariance, labels 0 and 1 in equal expected numbers.

    Args:
        n_samples: rows to generate (train, val and test together).
        n_features: columns of ``x``.
        separation: distance between the two blob centres, in standard deviations.
        batch_size: rows per training step.
        val_fraction: share of rows held out for validation, in ``[0, 1)``.
        test_fraction: share of rows held out for testing, in ``[0, 1)``.
        seed: seed of the data, the split and the shuffling.
    """

    def __init__(
        self,
        n_samples: int = 1000,
        n_features: int = 2,
        separation: float = 4.0,
        batch_size: int = 32,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 42,
    ) -> None:
        super().__init__(batch_size, val_fraction, test_fraction, seed)
        self.save_hyperparameters()
        if n_features < 1:
            raise UserInputError(f"n_features must be at least 1, got {n_features}.")
        if separation < 0:
            raise UserInputError(f"separation is a distance and must be >= 0, got {separation}.")
        self.check_split_sizes(n_samples, source=f"n_samples={n_samples}")

    @property
    def num_features(self) -> int:
        """Columns of ``x``: ``n_features``."""
        return int(self.hparams.n_features)

    def load_arrays(self) -> tuple[Tensor, Tensor]:
        """Generate ``(x, y)`` from ``seed``: ``(n_samples, n_features)`` and ``(n_samples, 1)``."""
        generator = torch.Generator().manual_seed(self.seed)
        n_rows, n_features = self.hparams.n_samples, self.num_features
        y = torch.randint(0, 2, (n_rows, 1), generator=generator).float()
        # Centres at ±(separation / 2) along the unit diagonal, so their distance is `separation`.
        offset = self.hparams.separation / 2 / math.sqrt(n_features)
        x = torch.randn(n_rows, n_features, generator=generator) + (2 * y - 1) * offset
        return x, y


def main() -> None:
    """Fit the classifier, test it, print the boundary and the test accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()

    pl.seed_everything(0)
    data = TwoClassDataModule()
    model = LogisticRegression(in_features=data.num_features)
    trainer = pl.Trainer(max_epochs=args.epochs, logger=False, enable_checkpointing=False)
    trainer.fit(model, data)
    (results,) = trainer.test(model, data, verbose=False)

    weights = ", ".join(f"{w:.3f}" for w in model.linear.weight.detach().flatten().tolist())
    print(f"boundary: x · [{weights}] + {model.linear.bias.item():.3f} = 0")
    bayes = 0.5 * (1 + math.erf(data.hparams.separation / 2 / math.sqrt(2)))
    print(
        f"test accuracy {results['test/accuracy']:.3f} (best possible {bayes:.3f}), "
        f"AUROC {results['test/auroc']:.3f}"
    )


if __name__ == "__main__":
    main()
