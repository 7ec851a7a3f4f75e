"""Learning rates from the data: the loss surface's curvatures set the step that cannot diverge.

For the MSE of a linear model the loss is a quadratic whose curvatures (the Hessian's
eigenvalues, λmax ≥ … ≥ λmin) are known exactly from one pass over the training rows
(:mod:`linreg.exact`). Gradient descent is stable below ``2/λmax`` and shrinks the error along
each direction by ``|1 - lr·λ|`` per step, so it needs about ``κ·ln(1/tolerance)`` steps with
``κ = λmax/λmin``. Mini-batches add noise: a batch of ``B`` rows behaves as if the largest
curvature were ``L_B = (c_max + (B - 1)·λmax) / B``, ``c_max`` the largest curvature of a single
row, and ``1/L_B`` is a step that mini-batch noise cannot make diverge (Ma, Bassily and Belkin,
2018). Nesterov's momentum ``β = (√κ - 1)/(√κ + 1)`` at ``lr = 1/L`` needs only about
``√κ·ln(1/tolerance)/2`` steps (Nesterov, 1983), and unlike the heavy ball tuned the same way
it does not first grow the error a thousandfold, which float32 cannot afford.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Heavy ball's momentum grows with the condition number; mini-batch noise is amplified by
# 1/(1 - β), so batches that are not the whole split keep it lower.
MAX_MOMENTUM = {"full": 0.9999, "mini": 0.99}
# Adaptive optimizers move each parameter by about lr per step, whatever the curvature: their
# rate is a fraction of the size of the answer (in the model's units).
ADAPTIVE = {"Adam": 0.05, "AdamW": 0.05, "NAdam": 0.05, "RAdam": 0.05, "Adamax": 0.05,
            "RMSprop": 0.02, "Adagrad": 0.5, "Adadelta": 0.33}  # fmt: skip


@dataclass(frozen=True)
class Curvature:
    """What the learning rate is chosen from (per target; the model's units)."""

    largest: float  # λmax of the Hessian of the training objective
    smallest: float  # λmin over the identifiable directions (> 0)
    row: float  # c_max: the largest curvature of one row's loss
    rows: int  # training rows (of this process, under DDP)
    scale: float  # the largest size of the optimum's parameters

    def batch(self, batch_size: int) -> float:
        """``L_B``: the largest curvature as a mini-batch of ``batch_size`` rows sees it."""
        b = max(1, min(batch_size, self.rows))
        return (self.row + (b - 1) * self.largest) / b if b < self.rows else self.largest


@dataclass(frozen=True)
class Choice:
    """A learning rate (and momentum) chosen from the data, and how it was chosen."""

    lr: float
    momentum: float | None
    reason: str
    nesterov: bool = False


def choose(
    optimizer: str, curvature: Curvature, batch_size: int, momentum: float | None
) -> Choice | None:
    """The learning rate for ``optimizer`` (a ``torch.optim`` class name) on this data.

    ``momentum`` is the user's (``None``: choose it too, for SGD). ``None`` when linreg has
    no rule for this optimizer.
    """
    if optimizer in ADAPTIVE:
        lr = ADAPTIVE[optimizer] * max(curvature.scale, 1e-3)
        return Choice(
            lr,
            None,
            f"{ADAPTIVE[optimizer]:g} x the optimum's largest parameter {curvature.scale:.3g}",
        )
    if optimizer != "SGD":
        return None
    top = curvature.batch(batch_size)
    where = f"the data's largest curvature {curvature.largest:.3g}"
    if top > curvature.largest * 1.001:
        where += f" ({top:.3g} for batches of {batch_size} rows)"
    if momentum is None:  # Nesterov's momentum tuned to the curvatures
        kappa = top / curvature.smallest
        cap = MAX_MOMENTUM["full" if batch_size >= curvature.rows else "mini"]
        beta = min((math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1), cap)
        return Choice(1 / top, beta, f"{where} and smallest {curvature.smallest:.3g}", True)
    if momentum == 0:
        if batch_size >= curvature.rows:  # exact gradients: the fastest fixed step
            rate = 2 / (curvature.largest + curvature.smallest)
            return Choice(rate, None, f"{where} and smallest {curvature.smallest:.3g}")
        return Choice(1 / top, None, where)
    # twice plain SGD's effective step lr/(1 - β): faster, and still overshooting visibly
    return Choice(2 * (1 - momentum) / top, None, where)


def steps_needed(
    choice: Choice, momentum: float, curvature: Curvature, batch_size: int, reduction: float
) -> float:
    """Steps for gradient descent (with momentum) to cut the objective's excess by ``reduction``."""
    slowest = (curvature.smallest, curvature.batch(batch_size))
    rate = max(_rate(choice.lr, momentum, c, choice.nesterov) for c in slowest)
    if rate >= 1:
        return math.inf
    if rate <= 0 or reduction <= 1:  # one step lands on the optimum, or it is there already
        return 1.0
    return math.log(reduction) / -math.log(rate) / 2  # the objective is squared


def _rate(lr: float, beta: float, curvature: float, nesterov: bool) -> float:
    """Spectral radius of the momentum iteration on one direction of curvature ``curvature``."""
    a = lr * curvature
    if nesterov:  # x' = (1 + β)(1 - a)x - β(1 - a)x_prev
        matrix = np.array([[(1 + beta) * (1 - a), -beta * (1 - a)], [1.0, 0.0]])
    else:  # the heavy ball: x' = (1 + β - a)x - βx_prev
        matrix = np.array([[1 + beta - a, -beta], [1.0, 0.0]])
    return float(np.abs(np.linalg.eigvals(matrix)).max())


__all__ = ["ADAPTIVE", "Choice", "Curvature", "choose", "steps_needed"]
