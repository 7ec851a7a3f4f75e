"""The exact answer as a LightningModule: least squares in one pass, with a statistical summary."""

from __future__ import annotations

from typing import Any, Literal

import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor

from linreg.errors import UserInputError
from linreg.model import LinearModel
from linreg.notes import note
from linreg.solution import LeastSquaresSolution, Refinement
from linreg.solver import QRFactorization
from linreg.statistics import LEFT_OUT, RegressionStatistics, not_identifiable

CHUNK_ROWS = 65536
MAX_FEATURES = 4096  # the factor alone is (features + targets)² float64: 134 MB at 4096


class LeastSquares(LinearModel):
    """Linear regression solved exactly: ordinary least squares (or ridge), no optimizer.

    ``linreg fit --model linreg.LeastSquares`` makes one pass over the training split,
    accumulating a Householder QR factorization in float64 (memory O(features²), whatever the
    number of rows), combines the factorizations of all DDP processes, and solves. When the
    float64 answer could be short of 7 correct digits (huge residuals, as in NIST's Wampler
    data), a second pass computes the residual in extended precision and refines it. Then
    ``fit`` ends, however many epochs were allowed. The checkpoint has the same
    ``linear.weight``/``linear.bias`` as :class:`~linreg.model.LinearRegression`'s (in float64),
    so ``linreg test`` and ``linreg predict`` work the same way.

    Linearly dependent columns (constant, duplicated, collinear) are dropped, as R's ``lm``
    does: their weight is 0, they have no standard error, and a note names them. After ``fit``,
    :attr:`statistics` holds the summary (coefficients, standard errors, t, p, confidence
    intervals, R², F, ...) in the data's own units.

    Args:
        in_features: columns of ``x`` (linked to the data module on the command line).
        out_features: columns of ``y``, each fitted on its own.
        fit_intercept: fit the bias ``b``.
        l2: ridge weight: minimize ``MSE + l2 · Σ W²`` (the bias not penalized), the objective
            of :class:`~linreg.model.LinearRegression`: ``W`` are the weights of standardized
            columns when the data module standardizes them; no standard errors when positive.
        refine: run the refinement pass: ``"auto"`` when the error estimate calls for it,
            ``True`` always, ``False`` never.
        chunk_rows: rows per chunk read from a linreg data module (one chunk in memory).
    """

    def __init__(
        self,
        in_features: int = 1,
        out_features: int = 1,
        fit_intercept: bool = True,
        l2: float = 0.0,
        refine: bool | Literal["auto"] = "auto",
        chunk_rows: int = CHUNK_ROWS,
    ) -> None:
        super().__init__(in_features, out_features, fit_intercept, dtype=torch.float64)
        self.save_hyperparameters()
        if not l2 >= 0:
            raise UserInputError(f"l2 is a penalty weight and must be >= 0, got {l2}.")
        if refine not in (True, False, "auto"):
            raise UserInputError(f"refine must be true, false or auto, got {refine!r}.")
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
            raise UserInputError(f"chunk_rows must be a positive integer, got {chunk_rows!r}.")
        if in_features + out_features > MAX_FEATURES:
            raise UserInputError(
                f"LeastSquares keeps a (features + targets)² matrix: {in_features} features and "
                f"{out_features} targets are more than the {MAX_FEATURES} it allows. Train with "
                f"SGD instead (--model linreg.LinearRegression)."
            )
        self.automatic_optimization = False  # no gradients: a pass, then a solve
        self.l2, self.refine, self.chunk_rows = l2, refine, chunk_rows
        self.solution: LeastSquaresSolution | None = None
        self.statistics: RegressionStatistics | None = None
        self._factorization: QRFactorization | None = None
        self._refinement: Refinement | None = None
        self._pass_done = False

    def training_step(self, batch: Any, batch_idx: int) -> None:
        """Add the batch to this pass (or the whole split at once); solve after the last one."""
        if batch_idx == 0:
            self._start_pass()
        data = self.trainer.datamodule
        if batch_idx == 0 and callable(getattr(data, "chunks", None)):  # linreg's data: fast
            for x, y in data.chunks("train", self.chunk_rows, transform=not self._raw()):
                self._add(x, y)
            self._finish_pass()
            return
        self._add(batch[0], batch[1])
        if self.trainer.is_last_batch:
            self._finish_pass()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """No gradient step: the solve sets the parameters; one step per pass keeps the count."""
        return SolveStep(self.parameters())

    def on_train_epoch_start(self) -> None:
        """Every epoch is one pass: the first factorizes, a second one refines."""
        self._pass_done = False

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
        """End the epoch once the pass is done (-1: Lightning's signal to skip the rest)."""
        return -1 if self._pass_done else None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the factorization, so a stopped fit can refine without a new first pass."""
        if self._factorization is not None:
            checkpoint["least_squares"] = {"factorization": self._factorization.to_tensor().cpu()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the factorization and the solution of a stopped fit."""
        saved = checkpoint.get("least_squares")
        if isinstance(saved, dict) and isinstance(saved.get("factorization"), Tensor):
            shape = (
                self.linear.in_features,
                self.linear.out_features,
                self.linear.bias is not None,
            )
            self._factorization = QRFactorization.from_tensor(saved["factorization"], *shape)
            self.solution = self._factorization.solve(self.l2, ridge_scale=self._scale())

    # -- the passes ---------------------------------------------------------------------------

    def _start_pass(self) -> None:
        if self.solution is None:  # the first pass: factorize
            d, k = self.linear.in_features, self.linear.out_features
            self._factorization = QRFactorization(d, k, self.linear.bias is not None)
        else:  # the second: refine
            self._refinement = Refinement(self.solution)

    def _add(self, rows: Tensor, y: Tensor) -> None:
        x = self.features(rows)  # the linear layer's inputs
        y = y.unsqueeze(1) if y.ndim == 1 else y
        if self._refinement is not None:
            self._refinement.update(x, y)
            return
        assert self._factorization is not None
        try:
            self._factorization.update(x, y)
        except ValueError as error:  # a NaN or inf in data that skipped linreg's own checks
            raise UserInputError(
                f"LeastSquares: the training data cannot be used: {error}"
            ) from error

    def _finish_pass(self) -> None:
        """Combine all processes' passes, solve (or refine), set the layer, step."""
        first_pass = self._refinement is None
        if self._refinement is not None:
            gathered = self.all_gather(self._refinement.to_tensor().to(self.device))
            parts = gathered if gathered.ndim == 3 else gathered.unsqueeze(0)
            self.solution = self._refinement.refine(list(parts))
            self._refinement = None
        else:
            self.solution = self._merged_factorization().solve(self.l2, ridge_scale=self._scale())
        self._set_layer()
        self.statistics = self._statistics()
        if first_pass and self.statistics.dropped:
            note(not_identifiable(self.statistics.dropped, LEFT_OUT))
        self.optimizers().step()  # type: ignore[union-attr]
        self._pass_done = True
        refine = first_pass and (
            self.refine is True or (self.refine == "auto" and self.solution.needs_refinement)
        )
        if refine and self.trainer.max_epochs == 1:
            note("LeastSquares: the refinement pass is skipped: --trainer.max_epochs is 1.")
        if not refine or self.trainer.max_epochs == 1:
            self.trainer.should_stop = True

    def _merged_factorization(self) -> QRFactorization:
        """This process's factorization merged with every other process's."""
        assert self._factorization is not None
        flat = self.all_gather(self._factorization.to_tensor().to(self.device))
        if flat.ndim == 2:  # one row per process
            d, k = self.linear.in_features, self.linear.out_features
            fit_intercept = self.linear.bias is not None
            parts = [QRFactorization.from_tensor(t.cpu(), d, k, fit_intercept) for t in flat]
            self._factorization = QRFactorization.merge(parts)
        if self._factorization.rows == 0:
            raise UserInputError("LeastSquares: the training split has no rows.")
        return self._factorization

    def _raw(self) -> bool:
        """Whether the passes read a standardizing linreg data module's rows as stored.

        Solved in the data's own units, the answer is not rounded through the standardized
        values (NIST's Wampler5 needs it). A model with a feature map solves in model space.
        """
        data = self.trainer.datamodule
        plain = type(self).features is LinearModel.features
        return (
            plain
            and callable(getattr(data, "chunks", None))
            and callable(getattr(data, "standardization", None))
        )

    def _scale(self) -> Tensor | None:
        """The ridge's per-weight scale when solving in the data's units for standardized ones.

        The model trains on standardized columns, so ``l2`` weighs their weights, ``σ·W`` in
        the data's units, as it does for :class:`~linreg.model.LinearRegression`.
        """
        if self.l2 == 0 or self._attached() is None or not self._raw():
            return None
        return self.trainer.datamodule.standardization().get("feature_std")

    def _set_layer(self) -> None:
        """Put the solution in the layer, in the units the model sees (standardized or not)."""
        assert self.solution is not None
        weight, bias = self.solution.weight, self.solution.bias
        if self._raw():  # solved in the data's units: standardize, as the batches will be
            weight, bias = _standardized(weight, bias, self.trainer.datamodule.standardization())
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            if self.linear.bias is not None and bias is not None:
                self.linear.bias.copy_(bias)

    def _statistics(self) -> RegressionStatistics:
        """The summary in the data's own units (the data module may have standardized it)."""
        assert self.solution is not None
        data = self.trainer.datamodule
        names = (getattr(data, "feature_names", None), getattr(data, "target_names", None))
        d, k = self.linear.in_features, self.linear.out_features
        features = names[0] if names[0] is not None and len(names[0]) == d else None
        targets = names[1] if names[1] is not None and len(names[1]) == k else None
        statistics = RegressionStatistics.from_solution(self.solution, features, targets)
        units = getattr(data, "standardization", None)
        if self._raw() or not callable(units):
            return statistics
        return statistics.in_units(**units())

    def on_fit_end(self) -> None:
        """Put the summary table in TensorBoard's TEXT tab."""
        if self.statistics is None:
            return
        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger):
                table = "\n".join(f"    {line}" for line in self.statistics.table().splitlines())
                logger.experiment.add_text("summary", table, self.global_step)


def _standardized(
    weight: Tensor, bias: Tensor | None, units: dict[str, Tensor | None]
) -> tuple[Tensor, Tensor | None]:
    """``weight`` ``(k, d)`` and ``bias`` of ``y = x Wᵀ + b`` for standardized ``x`` and ``y``."""
    mean_x, std_x = units.get("feature_mean"), units.get("feature_std")
    mean_y, std_y = units.get("target_mean"), units.get("target_std")
    if bias is not None and mean_x is not None:
        bias = bias + weight @ mean_x.to(weight)
    if std_x is not None:
        weight = weight * std_x.to(weight)
    if bias is not None and mean_y is not None:
        bias = bias - mean_y.to(bias)
    if std_y is not None:
        weight = weight / std_y.to(weight).unsqueeze(1)
        bias = bias / std_y.to(bias) if bias is not None else None
    return weight, bias


class SolveStep(torch.optim.Optimizer):
    """The optimizer of a model that is solved, not trained: its step changes nothing.

    :class:`LeastSquares` writes its solution into the layer itself; stepping this once per
    pass lets Lightning count the pass as a step (checkpoints are written after steps).
    """

    def __init__(self, params: Any) -> None:
        super().__init__(params, defaults={})

    def step(self, closure: Any = None) -> Any:
        """Run the closure if given; leave the parameters as they are."""
        return closure() if closure is not None else None


__all__ = ["LeastSquares", "SolveStep"]
