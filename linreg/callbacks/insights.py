"""All of linreg's TensorBoard extras behind one callback, each part switchable."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from linreg.callbacks.fit_plot import FitPlot
from linreg.callbacks.hparams import HParamsMetrics
from linreg.callbacks.optimum import OptimumGap
from linreg.callbacks.parameters import ParameterLogger
from linreg.errors import UserInputError


class TrainingInsights(Callback):
    """Parameters over time, the gap to the exact optimum, the fit picture and the HPARAMS tab.

    Each part is its own callback (:class:`ParameterLogger`, :class:`OptimumGap`,
    :class:`FitPlot`, :class:`HParamsMetrics`), usable alone. This one runs the chosen parts
    because Lightning calls every hook of every callback at every step (~5 µs each, even when
    empty): one callback instead of four saves ~0.1 ms per step, 15% of a step at batch 64.

    Args:
        parameters: log the weights and bias at the logging interval (``params/*``).
        max_scalars: above this many weights, log their norm and a histogram only.
        optimum_gap: solve least squares exactly once and log the gap (``optimum/*``).
        fit_plot_every_n_epochs: draw the fit every this many epochs and at the end (``fit``
            image, ``fit.png``); 0 draws only at the end, ``None`` never.
        hparams: log the hyperparameters with the final validation metrics (HPARAMS tab).
    """

    def __init__(
        self,
        parameters: bool = True,
        max_scalars: int = 10,
        optimum_gap: bool = True,
        fit_plot_every_n_epochs: int | None = 5,
        hparams: bool = True,
    ) -> None:
        if max_scalars < 0:
            raise UserInputError(f"max_scalars must be 0 or more, got {max_scalars}.")
        if fit_plot_every_n_epochs is not None and fit_plot_every_n_epochs < 0:
            raise UserInputError(
                f"fit_plot_every_n_epochs must be 0 or more (0: draw only at the end; null: "
                f"never), got {fit_plot_every_n_epochs}."
            )
        parts: list[Callback] = []
        if parameters:
            parts.append(ParameterLogger(max_scalars))
        if optimum_gap:
            parts.append(OptimumGap())
        if fit_plot_every_n_epochs is not None:
            parts.append(FitPlot(fit_plot_every_n_epochs))
        if hparams:
            parts.append(HParamsMetrics())
        self.parts = parts

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Forwarded to the parts."""
        self._forward("on_train_start", trainer, pl_module)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        """Forwarded to the parts."""
        self._forward("on_train_batch_end", trainer, pl_module, *args)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Forwarded to the parts."""
        self._forward("on_train_epoch_end", trainer, pl_module)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Forwarded to the parts."""
        self._forward("on_fit_end", trainer, pl_module)

    def _forward(self, hook: str, *args: Any) -> None:
        for part in self.parts:
            getattr(part, hook)(*args)
