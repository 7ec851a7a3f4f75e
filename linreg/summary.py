"""The plain-words report printed at the end of ``linreg fit``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor

from linreg import exact
from linreg.model import LinearModel

SUMMARY_CSV, SUMMARY_JSON = "summary.csv", "summary.json"


def fit_summary(trainer: Trainer, model: LightningModule, data: Any, log_dir: str | None) -> str:
    """Learned vs true parameters, final validation metrics, where the logs and checkpoints are.

    For an exactly solved model (one with ``statistics``), the statistical summary instead of
    the learned parameters, and where its CSV and JSON are.
    """
    lines = ["", "linreg: training finished."]
    linear = getattr(model, "linear", None)
    statistics = getattr(model, "statistics", None)
    if statistics is not None:
        lines.extend(["", statistics.table(), ""])
        if log_dir:
            lines.append(f"  summary: {os.path.join(log_dir, SUMMARY_CSV)}, {SUMMARY_JSON}")
    elif linear is not None:
        verdict = _verdict(trainer)
        lines.extend(verdict)
        if verdict and "not" in verdict[0]:
            name = type(trainer.optimizers[0]).__name__ if trainer.optimizers else "training"
            lines.append(f"  (these are where {name} stopped, not the least-squares coefficients)")
        weight, bias = _zero_columns_out(trainer, linear.weight), linear.bias
        dependent = exact.dependent_columns(trainer, float(getattr(model, "l2", 0.0)))
        if dependent:
            terms = ", ".join(term.describe() for term in dependent)
            lines.append(f"  (not identifiable, one of many equally good values: {terms})")
        convert = getattr(data, "to_original_units", None)
        if callable(convert) and weight.shape[1] == getattr(data, "num_features", -1):
            weight, bias = convert(weight, bias)
            if getattr(data, "normalize", False) or getattr(data, "normalize_target", False):
                lines.append("  (weights and bias in the data's own units, before standardization)")
        lines.extend(_parameter_lines(weight, bias, getattr(data, "target_names", None)))
        true_weight = getattr(data, "true_weight", None)
        if true_weight is not None:
            lines.append(f"  true weight:    {_numbers(true_weight)}")
            lines.append(f"  true bias:      {_numbers(data.true_bias)}")
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    if metrics:
        lines.append(
            "  final validation: " + ", ".join(f"{k} = {v:.4g}" for k, v in metrics.items())
        )
    if log_dir:
        lines.append(f"  logs: {log_dir}")
    for kind, path in checkpoint_paths(trainer).items():
        lines.append(f"  {kind} checkpoint: {path}")
    if trainer.logger is not None and log_dir:
        lines.append(
            f"  see the curves: tensorboard --logdir {os.path.dirname(os.path.normpath(log_dir))}"
        )
    return "\n".join(lines)


def _verdict(trainer: Trainer) -> list[str]:
    """Whether training reached the exact optimum, from :class:`OptimumGap`, in plain words."""
    from linreg.callbacks.convergence import Convergence
    from linreg.callbacks.optimum import OptimumGap

    gap = next((c.gap for c in trainer.callbacks if isinstance(c, OptimumGap) and c.gap), None)
    epochs = trainer.current_epoch  # completed epochs
    stopper = next((c for c in trainer.callbacks if isinstance(c, Convergence)), None)
    if gap is None:
        if stopper is None or not trainer.should_stop or trainer.interrupted:
            return []
        return [
            f"  trained {epochs} epoch{'s' if epochs != 1 else ''}: with no exact optimum to "
            f"measure convergence against, linreg stops there; --trainer.max_epochs N trains "
            f"exactly N."
        ]
    inner = getattr(trainer.lightning_module, "inner_steps", lambda: 1)()
    updates = trainer.global_step * inner
    where = f"after {epochs} epoch{'s' if epochs != 1 else ''} ({updates} optimizer steps)"
    if gap.converged:
        return [
            f"  converged {where}: the training objective is within {gap.rtol:g} of the exact "
            f"optimum's (relative gap {gap.relative:.2g})."
        ]
    why = "the epoch cap"
    if stopper is not None and stopper.wait_count >= stopper.patience:
        why = f"no progress for {stopper.patience} epochs"
    lines = [
        f"  not converged: stopped at {why} {where}; the training objective is "
        f"{gap.relative:.3g} (relative) above the exact optimum, more than the {gap.rtol:g} "
        f"asked for."
    ]
    if type(trainer.lightning_module).features is LinearModel.features:  # a plain linear fit
        lines.append(
            "  for the exact answer: linreg fit --model linreg.LeastSquares (same data options)"
        )
    return lines


def _zero_columns_out(trainer: Trainer, weight: Tensor) -> Tensor:
    """``weight`` with 0 for columns that are all zero as the model sees them.

    A constant column, standardized, is all zero: its weight never changes the predictions,
    so its value (the untouched initial one) means nothing, and in the file's units it would
    move the bias. 0 is the answer least squares gives it.
    """
    split = exact.split_of(trainer)
    if split is None:
        return weight
    d = split.qr.n_features
    dropped = split.solved(0.0).dropped
    zero = [c.column for c in dropped if c.reason == "all-zero" and c.column < d]
    if not zero or weight.shape[1] != d:
        return weight
    weight = weight.detach().clone()
    weight[:, zero] = 0.0
    return weight


def save_statistics(model: LightningModule, log_dir: str | None) -> None:
    """Write an exactly solved model's summary to ``summary.csv`` and ``summary.json``."""
    statistics = getattr(model, "statistics", None)
    if statistics is None or not log_dir:
        return
    from linreg.checkpoint_io import atomic_write

    for name, write in ((SUMMARY_CSV, statistics.to_csv), (SUMMARY_JSON, statistics.to_json)):
        with atomic_write(Path(log_dir) / name, "w") as file:
            write(file)


def checkpoint_paths(trainer: Trainer) -> dict[str, str]:
    """``best`` (the monitored checkpoint) and ``last`` (unmonitored, every epoch), as written."""
    paths = {}
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.best_model_path:
            paths["last" if callback.monitor is None else "best"] = callback.best_model_path
    return dict(sorted(paths.items()))


def _parameter_lines(weight: Any, bias: Any, names: list[str] | None) -> list[str]:
    """``learned weight/bias`` lines: one pair per output when there are several."""
    if weight.shape[0] == 1:
        lines = [f"  learned weight: {_numbers(weight)}"]
        return lines + ([f"  learned bias:   {_numbers(bias)}"] if bias is not None else [])
    names = names if names and len(names) == weight.shape[0] else None
    lines = []
    for output in range(weight.shape[0]):
        name = names[output] if names else f"output {output}"
        lines.append(f"  {name}: weight {_numbers(weight[output])}")
        if bias is not None:
            lines.append(f"  {' ' * len(name)}  bias   {_numbers(bias[output : output + 1])}")
    return lines


def _numbers(values: Any) -> str:
    return ", ".join(f"{v:.6g}" for v in values.detach().cpu().flatten().tolist())
