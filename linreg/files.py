"""Your own table as data: CSV, ``.npy`` (memory-mapped) or ``.npz``, checked and standardized."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from linreg.batching import Batch, BatchTransform, chunks, served_dtype
from linreg.data import CHUNK_ROWS, FLOAT32_SQUARE_LIMIT, ArrayDataModule
from linreg.errors import UserInputError
from linreg.standardize import Standardizer, checked_statistics, training_statistics
from linreg.tables import Column, Columns, Schema, delimiter_for, load_columns, read_schema


class FileDataModule(ArrayDataModule):
    """Rows of a CSV, ``.npy`` or ``.npz`` file, split and batched like ``SyntheticDataModule``.

    Values keep the file's precision: a CSV is read as float64, an ``.npz``'s float64 or
    float32 arrays stay so, a ``.npy`` file is memory-mapped as it is (batches are read from
    disk, so a file larger than memory trains); other numbers come as float32. Features (and
    optionally targets) are standardized with statistics of the training split, computed once
    in float64 when the data is set up to fit; they are saved in the checkpoint, so
    ``validate``, ``test`` and ``predict`` of a later run transform exactly the same way, and
    predictions come back in the target's units. The chosen columns are saved too, by name (the
    ``target`` and ``features`` hyperparameters), so a later run finds them in a file whose
    columns are in another order.

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
        batch_size: rows per training step, ``"full"`` (all the training rows) or ``"auto"``
            (all of them up to 65,536, else batches of 65,536).
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
        batch_size: int | Literal["auto", "full"] = "auto",
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
        self._schema: Schema | None = None
        self._columns: Columns | None = None
        self._standardizer = Standardizer(normalize, normalize_target)

    # -- what the data module serves ----------------------------------------------------------

    @property
    def source(self) -> str:
        """The file's path, as error messages name it."""
        return str(self.path)

    @property
    def schema(self) -> Schema:
        """The file's columns and the chosen features and targets (header only, read once)."""
        if self._schema is None:
            self._schema = read_schema(self.path, self.target, self.features, self.delimiter)
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

    @property
    def statistics(self) -> dict[str, Tensor]:
        """Standardization statistics (float64): ``feature_mean``, ``feature_std``, ...

        Empty until :meth:`setup` computed them from the training split, or a checkpoint
        restored them.
        """
        return self._standardizer.statistics

    def check(self, stage: str) -> None:
        """Read and validate the file for ``stage`` now, so a bad file fails before a run starts.

        To fit, validate or test, the target columns must be there; to predict they are ignored
        (absent, partly there or empty, it makes no difference). The rows are read once per
        stage: calling this again (``setup`` does) reads nothing.
        """
        super().check(stage)
        predicting = stage == "predict"
        self._check_columns(predicting)
        self._record_columns()
        if self._columns is None or (not predicting and self._columns.y is None):
            self._columns = load_columns(
                self.path, self.schema, self.delimiter, targets=not predicting
            )
            self.datasets.clear()  # read anew: the splits are rebuilt from these arrays
        if not predicting:
            self.check_split_sizes(len(self._columns.x), source=self.source)
        self._check_range()

    def load_arrays(self) -> tuple[Any, Any]:
        """The feature and target columns, checked: numbers, finite, within float32.

        As :meth:`check` read them for its stage; before that, with the targets if the file has
        them.
        """
        if self._columns is None:
            self.check("predict" if self.schema.missing(self.schema.targets) else "fit")
        assert self._columns is not None
        return self._columns.x, self._columns.y

    def batch_transform(self) -> BatchTransform | None:
        """Standardize each batch, when ``normalize`` or ``normalize_target`` is on."""
        if self.normalize or self.normalize_target:
            return self._standardize
        return None

    def inverse_target(self, prediction: Tensor) -> Tensor:
        """Predictions back in the target's own units (float64 when they were standardized)."""
        if not self.normalize_target:
            return prediction
        self._require_statistics()
        prediction = prediction.double()
        get = self._standardizer.get
        return prediction * get("target_std", prediction) + get("target_mean", prediction)

    def standardization(self) -> dict[str, Tensor | None]:
        """How the model sees the data: ``x_s = (x - feature_mean) / feature_std``, and the same
        for the targets; ``None`` where that part is not standardized. Float64.

        Exact summaries (:class:`~linreg.least_squares.LeastSquares`) use it to report in the
        data's own units.
        """
        if self.batch_transform() is not None:
            self._require_statistics()
        parts = {"feature": self.normalize, "target": self.normalize_target}
        return {
            f"{part}_{moment}": self.statistics[f"{part}_{moment}"] if on else None
            for part, on in parts.items()
            for moment in ("mean", "std")
        }

    def to_original_units(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor]:
        """A model's ``weight`` ``(outputs, features)`` and ``bias`` for the unstandardized file.

        The model sees ``(x - μx) / σx`` and, with ``normalize_target``, predicts
        ``(y - μy) / σy``; this gives the line in the file's own units, in float64.
        """
        weight = weight.detach().double()
        bias = (
            bias.detach().double()
            if bias is not None
            else torch.zeros(weight.shape[0], dtype=torch.float64, device=weight.device)
        )
        if self.batch_transform() is not None:
            self._require_statistics()
        get = self._standardizer.get
        if self.normalize:
            weight = weight / get("feature_std", weight)
            bias = bias - weight @ get("feature_mean", weight)
        if self.normalize_target:
            weight = weight * get("target_std", weight).unsqueeze(1)
            bias = bias * get("target_std", bias) + get("target_mean", bias)
        return weight, bias

    # -- Lightning hooks ----------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        """Check the file for ``stage`` (read once), split it once, compute the statistics once.

        The standardization statistics come from the training split, in one pass, unless a
        checkpoint restored them already; to predict they must come from a checkpoint.
        """
        self.check(stage)
        super().setup(stage)
        if stage != "predict" and self.batch_transform() is not None and not self.statistics:
            train = self.datasets["train"]
            self._standardizer.set(training_statistics(chunks(train, CHUNK_ROWS, transform=False)))
            self._check_range()

    def state_dict(self) -> dict[str, Any]:
        """What a later run needs to read new files the same way: statistics and column names."""
        return {
            "statistics": {name: value.cpu() for name, value in self.statistics.items()},
            "features": self.feature_names,
            "targets": self.target_names,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take the training run's statistics, checked; refuse a file with other features."""
        if not isinstance(state_dict, dict):
            raise UserInputError(
                f"the checkpoint's data state is invalid: it is {type(state_dict).__name__}, not "
                f"a table. Use another checkpoint, or train again."
            )
        trained = state_dict.get("features")
        if trained and trained != self.feature_names:
            if not isinstance(trained, list) or not all(isinstance(n, str) for n in trained):
                raise UserInputError(
                    f"the checkpoint's data state is invalid: its feature names are "
                    f"{type(trained).__name__}, not a list of names. Use another checkpoint, "
                    f"or train again."
                )
            raise self._not_trained_columns(trained)
        needed = (("feature_mean", "feature_std") if self.normalize else ()) + (
            ("target_mean", "target_std") if self.normalize_target else ()
        )
        self._standardizer.set(
            checked_statistics(
                state_dict.get("statistics", {}), self.feature_names, self.target_names, needed
            )
        )
        self._check_range()

    # -- helpers ------------------------------------------------------------------------------

    def _check_columns(self, predicting: bool) -> None:
        """Every chosen feature must be in the file; every target too, unless predicting."""
        schema = self.schema
        missing = schema.missing(schema.features)
        if missing and predicting:
            raise self._not_trained_columns(schema.features)
        if missing:
            what = f"{missing[0]!r}{_index_range(schema.columns, missing[0])}"
            raise UserInputError(
                f"{self.path} has no feature column {what}; its columns are: "
                f"{', '.join(schema.columns)}. Check --data.features."
            )
        missing = schema.missing(schema.targets)
        if missing and not predicting:
            what = f"{missing[0]!r}{_index_range(schema.columns, missing[0])}"
            raise UserInputError(
                f"{self.path} has no column {what} to use as the target; its columns are: "
                f"{', '.join(schema.columns)}. Set --data.target."
            )

    def _record_columns(self) -> None:
        """The chosen columns become the ``features`` and ``target`` hyperparameters, by name.

        The checkpoint keeps them, and a run restored from it looks the columns up by name.
        """
        targets = self.schema.targets
        self.hparams["features"] = self.schema.features
        self.hparams["target"] = targets if len(targets) > 1 else targets[0]

    def _not_trained_columns(self, trained: list[str]) -> UserInputError:
        return UserInputError(
            f"{self.path} does not have the columns the model was trained on: it was trained on "
            f"features {_quoted(trained)}, this file gives {_quoted(self.schema.columns)}. Use a "
            f"file with the same feature columns (in any order)."
        )

    def _require_statistics(self) -> None:
        if not self.statistics:
            raise UserInputError(
                f"{self.path}: standardization statistics need training data with targets; "
                f"predict with --ckpt_path of a trained model."
            )

    def _standardize(self, batch: Batch) -> Batch:
        self._require_statistics()
        return self._standardizer(batch)

    def _check_range(self) -> None:
        """What the model gets must stay within ``FLOAT32_SQUARE_LIMIT``, after the transform.

        Checked on each column's smallest and largest value (the transform keeps their order),
        in the precision of the batches, once the statistics a column needs are known.
        """
        if self._columns is None:
            return
        x, y, extremes = self._columns.x, self._columns.y, self._columns.extremes
        names = self.feature_names + (self.target_names if y is not None else [])
        for j, name in enumerate(names):
            kind, array, k = ("feature", x, j) if j < x.shape[1] else ("target", y, j - x.shape[1])
            assert array is not None
            standardized = self.normalize if kind == "feature" else self.normalize_target
            if standardized and not self.statistics:
                continue  # checked when the statistics are computed or restored
            ends = torch.tensor([extremes.low[j], extremes.high[j]], dtype=torch.float64)
            if standardized:
                ends = ends.to(served_dtype(array))
                mean = self.statistics[f"{kind}_mean"][k].to(ends.dtype)
                std = self.statistics[f"{kind}_std"][k].to(ends.dtype)
                ends = (ends - mean) / std
            wrong = ~torch.isfinite(ends) | (ends.abs() > FLOAT32_SQUARE_LIMIT)
            if wrong.any():
                end = int(wrong.nonzero()[0])
                raw = (extremes.low if end == 0 else extremes.high)[j]
                row = int((extremes.low_row if end == 0 else extremes.high_row)[j]) + 1
                raise self._out_of_range(
                    name, kind, row, float(raw), float(ends[end]), standardized
                )

    def _out_of_range(
        self, name: str, kind: str, row: int, raw: float, value: float, standardized: bool
    ) -> UserInputError:
        where = f"{self.path}, row {row}, column {name!r} holds {raw:g}"
        limit = f"at most {FLOAT32_SQUARE_LIMIT:.0e} in size, so that its square fits in float32"
        if standardized:
            return UserInputError(
                f"{where}, which the training split's mean and standard deviation standardize to "
                f"{value:.3g}: too large for linreg's float32 model ({limit}). That value lies "
                f"far outside the training data in this column: check it, or train on data that "
                f"covers it."
            )
        option = "--data.normalize true" if kind == "feature" else "--data.normalize_target true"
        return UserInputError(
            f"{where}: too large for linreg's float32 model ({limit}). Standardize the {kind}s "
            f"({option}), or rescale that column (change its units)."
        )


def _quoted(names: list[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _index_range(columns: list[str], missing: str) -> str:
    """`` (as an index: out of range, 0 to 2 or -3 to -1)`` when the name is a number."""
    if not missing.lstrip("-").isdigit():
        return ""
    n = len(columns)
    return f" (as an index: out of range, 0 to {n - 1} or -{n} to -1)"


__all__ = ["FileDataModule"]
