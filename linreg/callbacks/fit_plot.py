"""The tutorial's picture, in TensorBoard: the data as points and the fitted line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor

from linreg.checkpoint_io import atomic_write
from linreg.errors import UserInputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class FitPlot(Callback):
    """Draw the fit at log-spaced epochs and at the end (IMAGES tab and ``fit.png``).

    One input and one output: validation points (training points without a validation split)
    and the fitted line, the seed tutorial's plot. Otherwise: predicted against actual values
    with the ``y = x`` line, one colour per output, named by the data module's ``target_names``
    when it has them. The image is logged under the tag ``fit`` (at the step of ``train/loss``);
    the last one is also saved as ``fit.png``.
    Drawn with matplotlib's non-interactive Agg canvas: no window ever opens.

    Args:
        every_n_epochs: draw after every this many epochs (0: only at the end); ``None``: after
            epochs 1, 4, 16, 64, ... (a run of 1,000 epochs draws 6 pictures, at 0.15 to 0.25 s
            each: drawing never becomes much of a run's time).
        max_points: at most this many validation rows are drawn.
    """

    def __init__(self, every_n_epochs: int | None = None, max_points: int = 500) -> None:
        if every_n_epochs is not None and every_n_epochs < 0:
            raise UserInputError(f"every_n_epochs must be 0 or more, got {every_n_epochs}.")
        if max_points < 1:
            raise UserInputError(f"max_points must be at least 1, got {max_points}.")
        self.every_n_epochs, self.max_points = every_n_epochs, max_points

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """At the chosen epochs (after the epoch's validation), log the picture."""
        epoch = trainer.current_epoch + 1
        if self.every_n_epochs is None:
            if epoch & (epoch - 1) or (epoch.bit_length() - 1) % 2:  # not a power of four
                return
        elif not self.every_n_epochs or epoch % self.every_n_epochs:
            return
        if epoch < (trainer.max_epochs or 0):  # the last epoch is drawn by on_fit_end
            self._draw(trainer, pl_module, save=False)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Log the final picture and save it as ``fit.png`` next to the run's logs."""
        self._draw(trainer, pl_module, save=True)

    def _draw(self, trainer: Trainer, pl_module: LightningModule, save: bool) -> None:
        log_dir = trainer.log_dir if save else None  # a collective call: every process makes it
        if not trainer.is_global_zero:
            return
        points = _sample(trainer, pl_module, self.max_points)
        if points is None:
            return
        step = max(trainer.global_step - 1, 0)  # Lightning's step for train/loss and val/mse
        title = f"epoch {trainer.current_epoch}, step {step}"
        names = getattr(trainer.datamodule, "target_names", None)
        image = render(fit_figure(*points, title=title, names=names))  # for TensorBoard and PNG
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("fit", image, step, dataformats="HWC")
        if log_dir:
            from PIL import Image  # matplotlib's own image library

            with atomic_write(Path(log_dir) / "fit.png") as file:  # a full disk leaves the old one
                Image.fromarray(image).save(file, format="PNG")


def fit_figure(
    x: Tensor, y: Tensor, prediction: Tensor, title: str = "", names: list[str] | None = None
) -> Figure:
    """The picture for rows ``x`` (n, d), targets ``y`` (n, k) and the model's ``prediction``.

    A line through the points when ``d == k == 1``, else predicted against actual; ``names``
    are the ``k`` targets' names for the legend (default: ``output 0``, ``output 1``, ...).
    """
    if names is None or len(names) != y.shape[1]:
        names = [f"output {output}" for output in range(y.shape[1])]
    from matplotlib.figure import Figure  # imported here: only runs that draw pay for it

    figure = Figure(figsize=(6, 4.5), dpi=100)  # no layout engine: it costs more than drawing
    axes = figure.add_subplot()
    if x.shape[1] == 1 and y.shape[1] == 1:
        order = x[:, 0].argsort()
        axes.scatter(x[:, 0], y[:, 0], s=10, c="tab:red", label="data")
        axes.plot(x[order, 0], prediction[order, 0], c="tab:blue", lw=2, label="fitted line")
        axes.set(xlabel="x", ylabel="y")
    else:
        low = float(torch.minimum(y.min(), prediction.min()))
        high = float(torch.maximum(y.max(), prediction.max()))
        for output, name in enumerate(names):
            axes.scatter(y[:, output], prediction[:, output], s=10, label=name)
        axes.plot([low, high], [low, high], c="black", lw=1, label="y = x")
        axes.set(xlabel="actual", ylabel="predicted")
    axes.set_title(title)
    axes.legend()
    return figure


def render(figure: Figure) -> np.ndarray:
    """The figure drawn by matplotlib's non-interactive Agg canvas, as ``(H, W, 3)`` uint8 RGB."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _sample(
    trainer: Trainer, pl_module: LightningModule, max_points: int
) -> tuple[Tensor, Tensor, Tensor] | None:
    """Up to ``max_points`` validation rows (training rows if there is no validation split)."""
    loaders = trainer.val_dataloaders or trainer.train_dataloader
    loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
    if loader is None:
        return None
    xs, ys = [], []
    for batch in loader:
        xs.append(batch[0])
        ys.append(batch[1])
        if sum(len(x) for x in xs) >= max_points:
            break
    if not xs:
        return None
    x, y = torch.cat(xs)[:max_points], torch.cat(ys)[:max_points]
    with torch.no_grad():
        prediction = pl_module(x.to(pl_module.device, pl_module.dtype))
    return x.cpu().float(), y.cpu().float(), prediction.cpu().float()
