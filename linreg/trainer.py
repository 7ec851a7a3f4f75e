"""Lightning's Trainer with what the ``linreg`` command adds to its methods.

LightningCLI builds each subcommand's options from the Trainer method of the same name, so an
option of ``linreg predict`` is an argument of :meth:`LinRegTrainer.predict`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule, Trainer

from linreg.callbacks.predictions import PredictionWriter
from linreg.compare import METHODS, Outcome, check_options, compare, table
from linreg.errors import UserInputError
from linreg.exact import RTOL
from linreg.runs import claim_run_folder

DEFAULT_METHODS = list(METHODS)


class LinRegTrainer(Trainer):
    """``Trainer`` whose ``predict`` writes predictions to a file, and that can ``compare``."""

    def compare(
        self,
        model: LightningModule,
        datamodule: LightningDataModule,
        methods: list[str] = DEFAULT_METHODS,  # read, never changed
        budget: int | None = None,
        learning_rates: dict[str, float] | None = None,
        mini_batch: int = 10,
        rtol: float = RTOL,
        stop_at_tolerance: bool = True,
    ) -> list[Outcome]:
        """Train several gradient-descent methods side by side, from the same start.

        Each method is a run of ``lightning_logs/compare_N/<method>`` (``tensorboard --logdir``
        that folder overlays them), and the folder gets ``compare.png`` and ``compare.csv``.

        Args:
            model: the model whose initial parameters every method starts from.
            datamodule: the data (linreg's data modules; the tutorial's 50 points by default).
            methods: among bgd, sgd, minibatch, momentum, adagrad, rmsprop, adam.
            budget: rows seen by each method (the same for all: a fair comparison); default
                300 passes over the training rows.
            learning_rates: per method, e.g. ``{adam: 0.05}``; the others are chosen from the
                data's curvature (SGD's family) or the size of the answer (adaptive ones).
            mini_batch: rows per step of the mini-batch methods.
            rtol: how close to the exact optimum counts as reached (relative).
            stop_at_tolerance: end each method's run when it reaches the tolerance (false: use
                the whole budget, to watch where each one settles).
        """
        if isinstance(mini_batch, bool) or not isinstance(mini_batch, int) or mini_batch < 1:
            raise UserInputError(f"--mini_batch must be a positive integer, got {mini_batch!r}.")
        if budget is not None and (isinstance(budget, bool) or budget < 1):
            raise UserInputError(f"--budget is a number of rows seen, at least 1; got {budget!r}.")
        check_options(methods, learning_rates, rtol)
        runs = Path(self.default_root_dir) / "lightning_logs"
        folder = runs / claim_run_folder(runs, prefix="compare")
        try:
            outcomes = compare(
                model, datamodule, folder, methods, budget, learning_rates, mini_batch, rtol,
                stop_at_tolerance,
                accelerator="cpu",  # tiny models: the CPU is fastest, and every method gets it
            )  # fmt: skip
        except UserInputError:  # refused before any run: leave no empty folder
            with contextlib.suppress(OSError):
                folder.rmdir()
                folder.parent.rmdir()  # lightning_logs too, if it holds nothing else
            raise
        print(f"\n{table(outcomes)}\n\n  saved: {folder / 'compare.png'}, {folder / 'compare.csv'}")
        print(f"  see the curves: tensorboard --logdir {folder}", flush=True)
        return outcomes

    def predict(
        self,
        model: LightningModule | None = None,
        dataloaders: Any | None = None,
        datamodule: LightningDataModule | None = None,
        return_predictions: bool | None = None,
        ckpt_path: str | Path | None = None,
        weights_only: bool | None = None,
        predictions: str | None = None,
    ) -> Any:
        """Run inference on your data, and write the predictions to a file.

        Args:
            model: the model to predict with.
            dataloaders: the data to predict on, if not ``datamodule``'s.
            datamodule: the data module whose ``predict_dataloader`` gives the data.
            return_predictions: also return the predictions (default: not when writing them).
            ckpt_path: the checkpoint whose weights to predict with.
            weights_only: load the checkpoint with ``torch.load(weights_only=...)``.
            predictions: CSV file to write the predictions to (one row per input row, in
                order; ``-`` for standard output).
        """
        if predictions is not None:
            self.callbacks.append(PredictionWriter(predictions))
            return_predictions = bool(return_predictions)
        return super().predict(
            model, dataloaders, datamodule, return_predictions, ckpt_path, weights_only
        )
