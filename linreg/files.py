"""Your own table as data: CSV, ``.npy`` (memory-mapped) or ``.npz``, checked and standardized."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from linreg.batching import Array, Batch, BatchTransform
from linreg.data import ArrayDataModule
from linreg.errors import UserInputError
from linreg.tables import CHUNK_ROWS, Column, Schema, delimiter_for, load_columns, read_schema


class FileDataModule(ArrayDataModule):
    """Rows of a CSV, ``.npy`` or ``.npz`` file, split and batched like ``SyntheticDataModule``.

    A ``.npy`` file is memory-mapped: batches are read from disk, so a file larger than memory
    trains. Features (and optionally targets) are standardized with statistics of the training
    split; they are saved in the checkpoint, so ``validate``, ``test`` and ``predict`` of a later
    run transform exactly the same way, and predictions come back in the target's units. The
    chosen columns are saved too, by name (the ``target`` and ``features`` hyperparameters), so
    a later run finds them in a file whose columns are in another order.

    Args:
        path: the file: ``.csv`` (header row of column names), ``.npy`` (a 2-D array, columns
            ``column_0``, ``column_1``, ...) or ``.npz`` (arrays ``x``, columns ``x_0``, ...,
            and ``y``, columns ``y`` or ``y_0``, ...; only ``x`` is needed to predict).
        target: the target column: a name or an index, or a list of them for several outputs.
            Default: the last column (``.npz``: the columns of ``y``).
        features: the feature columns (names or indices). Default: every other column.
        delimiter: the CSV field separator, one character (``\\t`` for a tab). Default: tab
            for a ``.tsv`` file, else a comma.
        normalize: standardize the features (mean 0, standard deviation 1 on the training split).
        normalize_target: standardize the targets too (metrics are then in standardized units;
            predictions are always written in the target's own units).
        batch_size: rows per training step.
        val_fraction: share of rows held out for validation, in ``[0, 1)``.
        test_fraction: share of rows held out for testing, in ``[0, 1)``.
        seed: seed of the split and of the shuffling.
    """

    def __init__(
        self,
        path: str,
        target: Column | list[Column] | None = None,
        features: list[Column] | None = None,
        delimiter: str | None = None,
        normalize: bool = True,
        normalize_target: bool = False,
        batch_size: int = 32,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, val_fraction, test_fraction, seed)
        self.save_hyperparameters()
        self.path = Path(path)
        self.target, self.features = target, features
        self.delimiter = delimiter_for(delimiter, self.path)
        self.normalize, self.normalize_target = normalize, normalize_target
        self.statistics: dict[str, Tensor] = {}
        self._schema: Schema | None = None
        self._arrays: tuple[Array, Array | None] | None = None

    # -- what the data module serves ----------------------------------------------------------

    @property
    def source(self) -> str:
        """The file's path, as error messages name it."""
        return str(self.path)

    @property
    def schema(self) -> Schema:
        """The file's columns and the chosen features and targets (read once, header only).

        The chosen columns become the ``features`` and ``target`` hyperparameters, by name: the
        checkpoint keeps them, and a run restored from it looks them up by name.
        """
        if self._schema is None:
            self._schema = read_schema(self.path, self.target, self.features, self.delimiter)
            targets = self._schema.targets
            self.hparams["features"] = self._schema.features
            self.hparams["target"] = targets if len(targets) > 1 else targets[0]
        return self._schema

    @property
    def num_features(self) -> int:
        """Number of feature columns: the model's ``in_features``."""
        return len(self.schema.features)

    @property
    def num_targets(self) -> int:
        """Number of target columns: the model's ``out_features``."""
        return len(self.schema.targets)

    @property
    def feature_names(self) -> list[str]:
        """Names of the feature columns, in the order the model sees them."""
        return self.schema.features

    @property
    def target_names(self) -> list[str]:
        """Names of the target columns: the header of the predictions file."""
        return self.schema.targets

    def check(self, stage: str) -> None:
        """Read and validate the file for ``stage`` now, so a bad file fails before a run starts.

        To fit, validate or test, the target columns must be there; to predict they are ignored
        (absent, partly there or empty, it makes no difference).
        """
        super().check(stage)
        predicting = stage == "predict"
        self._check_columns(predicting)
        if self._arrays is None or (not predicting and self._arrays[1] is None):
            self._arrays = load_columns(
                self.path, self.schema, self.delimiter, targets=not predicting
            )
            self.datasets.clear()  # read anew: the splits are rebuilt from these arrays
        if not predicting:
            self.check_split_sizes(len(self._arrays[0]), source=self.source)

    def load_arrays(self) -> tuple[Array, Array | None]:
        """The feature and target columns, checked: numbers, finite, within float32.

        As :meth:`check` read them for its stage; before that, with the targets if the file has
        them.
        """
        if self._arrays is None:
            self.check("predict" if self.schema.missing(self.schema.targets) else "fit")
        assert self._arrays is not None
        return self._arrays

    def batch_transform(self) -> BatchTransform | None:
        """Standardize each batch, when ``normalize`` or ``normalize_target`` is on."""
        if self.normalize or self.normalize_target:
            return self._standardize
        return None

    def inverse_target(self, prediction: Tensor) -> Tensor:
        """Predictions back in the target's own units."""
        if not self.normalize_target:
            return prediction
        stats = self._statistics(prediction.device)
        return prediction * stats["target_std"] + stats["target_mean"]

    def to_original_units(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor]:
        """A model's ``weight`` ``(outputs, features)`` and ``bias`` for the unstandardized file.

        The model sees ``(x - μx) / σx`` and, with ``normalize_target``, predicts
        ``(y - μy) / σy``; this gives the line in the file's own units.
        """
        stats = self._statistics(weight.device) if self.batch_transform() else {}
        weight, bias = weight.detach(), bias.detach() if bias is not None else None
        bias = torch.zeros(weight.shape[0], device=weight.device) if bias is None else bias
        if self.normalize:
            weight = weight / stats["feature_std"]
            bias = bias - weight @ stats["feature_mean"]
        if self.normalize_target:
            weight = weight * stats["target_std"].unsqueeze(1)
            bias = bias * stats["target_std"] + stats["target_mean"]
        return weight, bias

    # -- Lightning hooks ----------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        """Read and check the file for ``stage`` (no targets when predicting), then split it."""
        self.check(stage)
        super().setup(stage)

    def state_dict(self) -> dict[str, Any]:
        """What a later run needs to read new files the same way: statistics and column names."""
        statistics = self._statistics(torch.device("cpu")) if self.batch_transform() else {}
        return {
            "statistics": statistics,
            "features": self.feature_names,
            "targets": self.target_names,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take the training run's statistics; refuse a file whose features are not the same."""
        if state_dict.get("features") and state_dict["features"] != self.feature_names:
            raise self._not_trained_columns(state_dict["features"])
        self.statistics = {name: value.clone() for name, value in state_dict["statistics"].items()}

    # -- helpers ------------------------------------------------------------------------------

    def _check_columns(self, predicting: bool) -> None:
        """Every chosen feature must be in the file; every target too, unless predicting."""
        schema = self.schema
        missing = schema.missing(schema.features)
        if missing and predicting:
            raise self._not_trained_columns(schema.features)
        if missing:
            raise UserInputError(
                f"{self.path} has no feature column {missing[0]!r}; its columns are: "
                f"{', '.join(schema.columns)}. Check --data.features."
            )
        missing = schema.missing(schema.targets)
        if missing and not predicting:
            raise UserInputError(
                f"{self.path} has no column {missing[0]!r} to use as the target; its columns are: "
                f"{', '.join(schema.columns)}. Set --data.target."
            )

    def _not_trained_columns(self, trained: list[str]) -> UserInputError:
        return UserInputError(
            f"{self.path} does not have the columns the model was trained on: it was trained on "
            f"features {_quoted(trained)}, this file gives {_quoted(self.schema.columns)}. Use a "
            f"file with the same feature columns (in any order)."
        )

    def _standardize(self, batch: Batch) -> Batch:
        stats = self._statistics(batch[0].device)
        x = (
            (batch[0] - stats["feature_mean"]) / stats["feature_std"]
            if self.normalize
            else batch[0]
        )
        if len(batch) == 1:
            return (x,)
        y = batch[1]
        if self.normalize_target:
            y = (y - stats["target_mean"]) / stats["target_std"]
        return x, y

    def _statistics(self, device: torch.device) -> dict[str, Tensor]:
        """Mean and standard deviation of the training split (computed once, or restored)."""
        if not self.statistics:
            self.statistics = self._training_statistics()
        if next(iter(self.statistics.values())).device != device:
            self.statistics = {k: v.to(device) for k, v in self.statistics.items()}
        return self.statistics

    def _training_statistics(self) -> dict[str, Tensor]:
        x, y = self.load_arrays()
        if y is None:
            raise UserInputError(
                f"{self.path}: standardization statistics need training data with targets; "
                f"predict with --ckpt_path of a trained model."
            )
        rows = self._split_rows(len(x))["train"].numpy()
        stats = {}
        for name, array in (("feature", x), ("target", y)):
            mean, std = _mean_std(array, rows)
            stats[f"{name}_mean"], stats[f"{name}_std"] = mean, std
        return stats


def _quoted(names: list[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _mean_std(array: Array, rows: np.ndarray) -> tuple[Tensor, Tensor]:
    """Column means and standard deviations over ``rows``, in float64, chunk by chunk."""
    total = None
    squares = None
    for start in range(0, len(rows), CHUNK_ROWS):
        index = rows[start : start + CHUNK_ROWS]
        chunk = (
            array.index_select(0, torch.from_numpy(index)).double()
            if isinstance(array, Tensor)
            else torch.from_numpy(array[index].astype(np.float64))  # reads only these rows
        )
        total = chunk.sum(0) if total is None else total + chunk.sum(0)
        squares = chunk.square().sum(0) if squares is None else squares + chunk.square().sum(0)
    assert total is not None and squares is not None
    mean = total / len(rows)
    std = torch.sqrt(torch.clamp(squares / len(rows) - mean.square(), min=0))
    std = torch.where(std > 1e-12 * torch.clamp(mean.abs(), min=1), std, torch.ones_like(std))
    return mean.float(), std.float()


__all__ = ["FileDataModule"]
