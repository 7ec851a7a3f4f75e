"""``linreg compare``: the tutorial's ways down the loss surface, side by side on the same data.

Batch gradient descent (every step sees all rows), stochastic gradient descent (one row per
step), mini-batch gradient descent, momentum, AdaGrad, RMSprop and Adam train the same model
from the same initial parameters for the same number of rows seen, each as a named run of one
folder (``lightning_logs/compare_N/<method>``), so TensorBoard overlays them. Every run logs its
loss and its excess over the exact least-squares optimum against rows seen (``by_samples/*``);
the folder gets ``compare.png`` (the paths on the exact loss surface, and the excess against
rows seen) and ``compare.csv`` (what each method reached, and when).
"""

from __future__ import annotations

import copy
import csv
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.core.saving import save_hparams_to_yaml
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor

from linreg import exact
from linreg.batching import batch_loader
from linreg.checkpoint_io import atomic_write
from linreg.errors import UserInputError
from linreg.learning_rate import choose
from linreg.model import LinearRegression, _theta
from linreg.solution import LeastSquaresSolution


@dataclass(frozen=True)
class Method:
    """One way to descend: an optimizer, how many rows a step sees, and in plain words."""

    optimizer: str  # a torch.optim class
    batch: str  # "full" (all training rows), "one" or "mini"
    momentum: float | None
    about: str
    options: tuple[tuple[str, float], ...] = ()  # other arguments of the optimizer


METHODS = {
    "bgd": Method("SGD", "full", 0.0, "batch gradient descent: every step sees every row"),
    "sgd": Method("SGD", "one", 0.0, "stochastic gradient descent: one row per step"),
    "minibatch": Method("SGD", "mini", 0.0, "mini-batch gradient descent"),
    "momentum": Method("SGD", "mini", 0.9, "mini-batches with momentum 0.9"),
    "adagrad": Method("Adagrad", "mini", None, "AdaGrad: each weight's steps shrink over time"),
    # torch's alpha 0.99 averages ~100 steps of gradient sizes: near the optimum RMSprop then
    # keeps taking steps of about lr; 0.999 (Adam's β2) lets its steps shrink and it converges
    "rmsprop": Method(
        "RMSprop", "mini", None, "RMSprop (alpha 0.999): per-weight step sizes", (("alpha", 0.999),)
    ),
    "adam": Method("Adam", "mini", None, "Adam: momentum and per-weight scaling"),
}
RECORDED_POINTS = 2000  # per method, for the picture and the table


@dataclass
class Outcome:
    """What one method did with the budget."""

    method: str
    batch_size: int
    lr: float
    steps: int = 0
    samples: int = 0
    reached: tuple[int, int, float] | None = None  # steps, rows seen, seconds to the tolerance
    theta: Tensor | None = None  # the final (p, k) parameters, weights then bias
    excess: float = math.nan
    path: list[np.ndarray] = field(default_factory=list)  # θ (first target) as it moved
    seen: list[int] = field(default_factory=list)  # rows seen at each point of the path
    excesses: list[float] = field(default_factory=list)


class PathRecorder(Callback):
    """Follow one run: its parameters, rows seen, excess over the optimum, time to tolerance."""

    def __init__(
        self,
        outcome: Outcome,
        solution: LeastSquaresSolution,
        tolerance: float,
        every: int,
        stop: bool = True,
    ) -> None:
        self.outcome, self.solution, self.tolerance = outcome, solution, tolerance
        self.every, self.stop = every, stop  # stop: end the run once the tolerance is reached
        self._start = 0.0

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Record the start; the clock starts here (after the run's set-up)."""
        self._record(trainer, pl_module, force=True)
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Count the rows; record every ``every`` steps (and the step that reaches tolerance)."""
        outcome = self.outcome
        outcome.steps += 1
        outcome.samples += len(batch[0])
        self._record(trainer, pl_module, force=outcome.steps % self.every == 0)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """The final parameters and excess."""
        self._record(trainer, pl_module, force=True)
        self.outcome.theta = _theta(pl_module)  # type: ignore[arg-type]

    def _record(self, trainer: Trainer, pl_module: LightningModule, force: bool) -> None:
        outcome = self.outcome
        theta = _theta(pl_module)  # type: ignore[arg-type]
        excess = float(self.solution.excess(theta))
        reached_now = outcome.reached is None and excess <= self.tolerance
        if reached_now:
            outcome.reached = (outcome.steps, outcome.samples, time.perf_counter() - self._start)
            trainer.should_stop = trainer.should_stop or self.stop
        outcome.excess = excess
        if not (force or reached_now) or (outcome.seen and outcome.seen[-1] == outcome.samples):
            return
        outcome.path.append(theta[:, 0].numpy())
        outcome.seen.append(outcome.samples)
        outcome.excesses.append(excess)
        values = {"by_samples/excess": excess}
        for logger in trainer.loggers:
            logger.log_metrics(values, step=outcome.samples)


def compare(
    template: LightningModule,
    data: Any,
    folder: Path,
    methods: Sequence[str],
    budget: int | None,
    learning_rates: dict[str, float] | None,
    mini_batch: int,
    rtol: float,
    stop_at_tolerance: bool = True,
    accelerator: str = "cpu",
) -> list[Outcome]:
    """Train every method on ``data`` from ``template``'s initial parameters; write the results."""
    check_options(methods, learning_rates, rtol)
    if not isinstance(template, LinearRegression) or template.l1:
        raise UserInputError(
            "linreg compare trains linreg.LinearRegression (no L1 penalty): leave --model out."
        )
    if not callable(getattr(data, "chunks", None)):
        raise UserInputError(
            "linreg compare needs a linreg data module (a subclass of linreg.ArrayDataModule)."
        )
    data.setup("fit")
    train = data.datasets["train"]
    linear = template.linear
    d, k, intercept = linear.in_features, linear.out_features, linear.bias is not None
    split = exact.factorize(data.chunks("train"), template.features, d, k, intercept)
    solution = split.solved(float(template.l2))
    curvature = split.curvature(template.l2)
    tolerance = exact.tolerance(split.qr, float(solution.objective(solution.theta)), rtol)
    rows = len(train)
    budget = budget or _default_budget(rows)
    whole = max(_batch_rows(METHODS[name], rows, mini_batch) for name in methods)
    if budget < whole:
        raise UserInputError(
            f"--budget {budget} is less than one step of the largest batch ({whole} rows): "
            f"give at least {whole}."
        )
    outcomes = []
    for name in methods:
        method = METHODS[name]
        batch = _batch_rows(method, rows, mini_batch)
        lr = (learning_rates or {}).get(name)
        if lr is None and method.batch == "full":  # the largest step that descends straight
            lr = 1 / curvature.largest
        if lr is None:
            choice = choose(method.optimizer, curvature, batch, method.momentum)
            assert choice is not None
            lr = choice.lr
        outcome = Outcome(name, batch, lr)
        model = copy.deepcopy(template)  # the same initial parameters for every method
        arguments: dict[str, Any] = {"lr": lr, **dict(method.options)}
        if method.momentum is not None:
            arguments["momentum"] = method.momentum
        model.hparams["optimizer"] = {
            "class_path": f"torch.optim.{method.optimizer}",
            "init_args": arguments,
        }
        model.lr_scheduler, model.steps_per_batch = None, 1
        steps = math.ceil(budget / batch)
        logger = TensorBoardLogger(
            folder.parent, name=folder.name, version=name, default_hp_metric=False
        )
        every = max(1, steps // RECORDED_POINTS)
        recorder = PathRecorder(outcome, solution, tolerance, every, stop_at_tolerance)
        trainer = Trainer(
            max_steps=steps, max_epochs=-1, logger=logger, callbacks=[recorder], devices=1,
            accelerator=accelerator,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            num_sanity_val_steps=0, limit_val_batches=0, log_every_n_steps=max(1, steps // 100),
        )  # fmt: skip
        # whole batches only, so that every method sees the same rows per step and budget
        loader = batch_loader(train, batch, shuffle=True, seed=data.seed, drop_last=True)
        trainer.fit(model, train_dataloaders=loader)
        params = {"method": name, "optimizer": method.optimizer, "batch_size": batch, "lr": lr,
                  "momentum": method.momentum or 0.0, "budget_samples": budget,
                  "steps": outcome.steps}  # fmt: skip
        logger.log_hyperparams(params, metrics={"hparams/final_excess": outcome.excess})
        # hparams.yaml was written once, from the template's optimizer: say this method's
        logger.hparams.update({**model.hparams, "steps_per_batch": 1, **params})
        save_hparams_to_yaml(Path(logger.log_dir) / "hparams.yaml", logger.hparams)
        logger.finalize("success")
        outcomes.append(outcome)
    _write_csv(folder / "compare.csv", outcomes, intercept)
    image = _write_figure(folder, outcomes, solution, tolerance)
    logger = TensorBoardLogger(folder.parent, name=folder.name, version="comparison")
    logger.experiment.add_image("compare", image, 0, dataformats="HWC")
    logger.finalize("success")
    return outcomes


def check_options(
    methods: Sequence[str], learning_rates: dict[str, float] | None, rtol: float
) -> None:
    """The methods, their rates and the tolerance, before anything is trained or written."""
    check_methods(methods)
    check_learning_rates(learning_rates or {}, methods)
    if not 0 < rtol < 1:
        raise UserInputError(f"--rtol must be in (0, 1), got {rtol:g}.")


def check_methods(methods: Sequence[str]) -> None:
    """Every name one of :data:`METHODS`, and at least one."""
    if not methods:
        raise UserInputError(f"--methods: none given; choose from {', '.join(METHODS)}.")
    unknown = [name for name in methods if name not in METHODS]
    if unknown:
        raise UserInputError(
            f"--methods: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(METHODS)}."
        )


def check_learning_rates(learning_rates: dict[str, float], methods: Sequence[str]) -> None:
    """Each rate for a method being compared, and a positive number."""
    for name, lr in learning_rates.items():
        if name not in methods:
            raise UserInputError(
                f"--learning_rates: {name!r} is not one of the methods compared "
                f"({', '.join(methods)})."
            )
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise UserInputError(
                f"--learning_rates: {name}'s rate must be a positive number, got {lr!r}."
            )


def _batch_rows(method: Method, rows: int, mini_batch: int) -> int:
    """Rows per step of ``method``: all of them, one, or a mini-batch."""
    return {"full": rows, "one": 1, "mini": min(mini_batch, rows)}[method.batch]


def _default_budget(rows: int) -> int:
    """Rows seen per method: enough for batch gradient descent's steps, at least 300 of them."""
    return rows * 300


def table(outcomes: Sequence[Outcome]) -> str:
    """The comparison as a fixed-width table: what each method reached, and how fast."""
    widths = (10, 6, 9, 7, 10, 30, 13)
    names = ("method", "batch", "lr", "steps", "rows seen", "to tolerance", "final excess")
    header = " ".join(
        f"{n:<{w}}" if i == 0 else f"{n:>{w}}"
        for i, (n, w) in enumerate(zip(names, widths, strict=True))
    )
    lines = [header, "-" * len(header)]
    for o in outcomes:
        reached = "not reached"
        if o.reached:
            reached = f"{o.reached[0]} steps, {o.reached[1]} rows, {o.reached[2]:.2f} s"
        cells = (
            o.method,
            o.batch_size,
            f"{o.lr:.3g}",
            o.steps,
            o.samples,
            reached,
            f"{o.excess:.3g}",
        )
        lines.append(
            " ".join(
                f"{c!s:<{w}}" if i == 0 else f"{c!s:>{w}}"
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
        )
    return "\n".join(lines)


def _parameters(theta: Tensor, fit_intercept: bool) -> dict[str, float]:
    """``w_0, …, b`` (one target) or ``w_<target>_<feature>, …, b_<target>``, by name."""
    p, k = theta.shape
    d = p - int(fit_intercept)
    named = {}
    for j in range(k):
        tag = "" if k == 1 else f"{j}_"
        named.update({f"w_{tag}{i}": float(theta[i, j]) for i in range(d)})
    if fit_intercept:
        named.update({("b" if k == 1 else f"b_{j}"): float(theta[-1, j]) for j in range(k)})
    return named


def _write_csv(path: Path, outcomes: Sequence[Outcome], fit_intercept: bool) -> None:
    """``compare.csv``: one row per method, the final parameters by name."""
    rows = []
    for o in outcomes:
        assert o.theta is not None
        reached = o.reached or ("not reached",) * 3
        rows.append({
            "method": o.method, "batch_size": o.batch_size, "lr": o.lr, "steps": o.steps,
            "samples": o.samples, "steps_to_tolerance": reached[0],
            "samples_to_tolerance": reached[1],
            "seconds_to_tolerance": f"{reached[2]:.4f}" if o.reached else reached[2],
            "final_excess": o.excess, **_parameters(o.theta, fit_intercept),
        })  # fmt: skip
    with atomic_write(path, "w") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _write_figure(
    folder: Path, outcomes: Sequence[Outcome], solution: LeastSquaresSolution, tolerance: float
) -> np.ndarray:
    """``compare.png``: the paths on the exact loss surface, and the excess against rows seen."""
    from matplotlib.figure import Figure

    from linreg.callbacks.fit_plot import render

    optimum = solution.theta[:, 0].numpy()
    hessian = (solution.penalized.T @ solution.penalized).numpy() / solution.rows  # one target
    if len(optimum) == 2:  # the plane of the parameters themselves
        axes_vectors, labels = (
            np.eye(2),
            (
                "weight" if solution.fit_intercept else "w_0",
                "bias" if solution.fit_intercept else "w_1",
            ),
        )
        title = "paths on the exact MSE surface"
    else:
        directions = solution.directions().numpy()
        axes_vectors = np.stack([directions[:, 0], directions[:, -1]], axis=1)
        labels = ("along the largest curvature", "along the smallest curvature")
        title = "paths projected on the directions of largest and smallest curvature"
    figure = Figure(figsize=(12, 5), dpi=100)
    surface, curves = figure.subplots(1, 2)
    coordinates = {o.method: (np.array(o.path) - optimum) @ axes_vectors for o in outcomes}
    points = np.concatenate(list(coordinates.values()))
    low, high = points.min(axis=0), points.max(axis=0)
    span = np.maximum(high - low, 1e-12)
    a = np.linspace(low[0] - 0.1 * span[0], high[0] + 0.1 * span[0], 200)
    c = np.linspace(low[1] - 0.1 * span[1], high[1] + 0.1 * span[1], 200)
    grid_a, grid_c = np.meshgrid(a, c)
    deltas = grid_a[..., None] * axes_vectors[:, 0] + grid_c[..., None] * axes_vectors[:, 1]
    excess = np.einsum("...i,ij,...j->...", deltas, hessian, deltas)
    shift = (optimum @ axes_vectors) if len(optimum) == 2 else np.zeros(2)
    levels = np.geomspace(max(excess.min(), excess.max() * 1e-8, 1e-300), excess.max(), 15)
    surface.contour(
        grid_a + shift[0], grid_c + shift[1], excess, levels=levels, colors="0.75", linewidths=0.8
    )
    for o in outcomes:
        path = coordinates[o.method] + shift
        surface.plot(path[:, 0], path[:, 1], lw=1.2, label=o.method, marker=".", ms=2)
    surface.plot(*shift, marker="*", ms=14, color="black", ls="none", label="least-squares optimum")
    surface.set(xlabel=labels[0], ylabel=labels[1], title=title)
    surface.legend(fontsize=8)
    for o in outcomes:
        curves.plot(np.maximum(o.seen, 1), np.maximum(o.excesses, 1e-300), lw=1.2, label=o.method)
    curves.axhline(tolerance, color="black", ls="--", lw=0.8, label="tolerance")
    curves.set(
        xscale="log",
        yscale="log",
        xlabel="rows seen",
        ylabel="training MSE above the optimum",
        title="excess loss against rows seen",
    )
    curves.legend(fontsize=8)
    image = render(figure)
    from PIL import Image

    with atomic_write(folder / "compare.png") as file:
        Image.fromarray(image).save(file, format="PNG")
    return image
