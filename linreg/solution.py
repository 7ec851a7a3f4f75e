"""The exact least-squares optimum, what it costs elsewhere, and its optional refinement pass.

A :class:`LeastSquaresSolution` comes from :meth:`linreg.solver.QRFactorization.solve`. Its
objective is the SGD model's: ``‖Y - Zθ‖²_F / (n·k) + l2·‖W‖²_F`` with ``Z = [x, 1]``; ``theta``
is ``(p, k)``, the weights first and the bias last. Everything is float64 on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

F64 = torch.float64
EPS = torch.finfo(F64).eps / 2  # unit roundoff
# Refine when the error bound allows fewer than 7 correct digits (NIST: Wampler4 and 5, whose
# residuals are huge) and the correction converges, u·κ² well below 1 (not on Filip, κ ~ 5e9).
REFINE_ABOVE = 1e-7
REFINE_KAPPA2 = 1e-3


@dataclass(frozen=True)
class DroppedColumn:
    """A column of ``Z`` left out as linearly dependent on kept ones (R's ``lm``: coefficient NA).

    Attributes:
        column: its index in ``theta`` (features ``0..d-1``; the intercept, ``d``, is considered
            first and so never dropped).
        reason: ``"all-zero"``, ``"constant"`` (a multiple of the intercept), ``"duplicate"`` (of
            one kept column), or ``"combination"`` (of the kept columns in ``of``).
        of: the kept columns (``theta`` indices) it is made of.
    """

    column: int
    reason: str
    of: tuple[int, ...] = ()


@dataclass
class LeastSquaresSolution:
    """The optimum ``theta`` and the R factors that price any other ``theta`` exactly.

    Dropped columns have weight 0 and no standard error. Attributes:
        theta: ``(p, k)``, weights first, bias last (0 for dropped columns).
        kept: ``(p,)`` bool, the columns used.
        dropped: why each other column was left out, in the order they were found.
        rows: ``n``.
        l2: the ridge weight solved with.
        fit_intercept: whether the last parameter is a bias.
        sse: ``(k,)`` the data term ``‖y_j - Zθ_j‖²`` at ``theta``.
        tss: ``(k,)`` total sum of squares: centred with an intercept, uncentred without.
        r: ``(rank, rank)`` R factor of the kept columns, with the ridge rows when ``l2 > 0``:
            ``rᵀr = Z_keptᵀ Z_kept + n·k·l2·I_weights``.
        factor: ``(q, q)`` R factor of ``[Z | Y]`` (all columns).
        penalized: ``(p, p)`` R factor of ``Z`` with the ridge rows (all columns).
        ridge_scale: ``(d,)`` per-weight scale ``s`` of the penalty ``l2·‖s∘W‖²`` (``None``: 1):
            the columns' standard deviations penalize the weights of standardized columns.
    """

    theta: Tensor
    kept: Tensor
    dropped: list[DroppedColumn]
    rows: int
    l2: float
    fit_intercept: bool
    sse: Tensor
    tss: Tensor
    r: Tensor
    factor: Tensor
    penalized: Tensor
    ridge_scale: Tensor | None = None

    @property
    def rank(self) -> int:
        """Number of kept columns."""
        return int(self.kept.sum())

    @property
    def weight(self) -> Tensor:
        """``(k, d)``, ``nn.Linear``'s layout."""
        return self.theta[: self._d].T

    @property
    def bias(self) -> Tensor | None:
        """``(k,)``, or ``None`` without an intercept."""
        return self.theta[-1] if self.fit_intercept else None

    def sse_at(self, theta: Tensor) -> Tensor:
        """``(k,)`` ``‖y_j - Zθ_j‖²`` for any ``theta``: ``‖R_zz θ - R_zy‖² + ‖R_yy‖²``."""
        p = self.theta.shape[0]
        return (self.factor[:, p:] - self.factor[:, :p] @ _f64(theta)).square().sum(0)

    def objective(self, theta: Tensor) -> Tensor:
        """The training objective ``Σ sse / (n·k) + l2·‖W‖²`` at ``theta`` (a scalar)."""
        theta = _f64(theta)
        penalty = self.l2 * self._scaled(theta[: self._d]).square().sum()
        return self.sse_at(theta).sum() / (self.rows * theta.shape[1]) + penalty

    def excess(self, theta: Tensor) -> Tensor:
        """``objective(theta) - objective(self.theta)`` as ``‖R (θ - θ*)‖² / (n·k)`` (≥ 0)."""
        delta = _f64(theta) - self.theta
        return (self.penalized @ delta).square().sum() / (self.rows * delta.shape[1])

    def curvatures(self) -> Tensor:
        """``(p,)`` eigenvalues of the objective's Hessian (per target), largest first."""
        scale = 2 / (self.rows * self.theta.shape[1])
        return scale * torch.linalg.svdvals(self.penalized).square()

    def directions(self) -> Tensor:
        """``(p, p)``: column ``i`` is the Hessian's eigenvector for ``curvatures()[i]``."""
        return torch.linalg.svd(self.penalized).Vh.T

    def condition_number(self) -> float:
        """``σmax / σmin`` of ``Z`` over the kept columns (no ridge); NaN when nothing is kept."""
        p = self.theta.shape[0]
        if self.rank == 0:
            return float("nan")
        s = torch.linalg.svdvals(self.factor[:p, :p][:, self.kept])
        return float(s[0] / s[-1])

    def unscaled_covariance(self) -> Tensor:
        """``(p, p)`` ``(rᵀr)⁻¹`` on the kept columns, NaN on dropped ones (times σ², the SEs²)."""
        p = self.theta.shape[0]
        inverse = torch.linalg.solve_triangular(self.r, torch.eye(self.rank, dtype=F64), upper=True)
        covariance = torch.full((p, p), float("nan"), dtype=F64)
        index = self.kept.nonzero().flatten()
        covariance[index[:, None], index] = inverse @ inverse.T
        return covariance

    def error_estimate(self) -> float:
        """Bound on the largest relative error of a coefficient left by float64 QR.

        First-order perturbation of the column-scaled problem (``R_s = r·D⁻¹``, ``θ_s = D·θ``)
        under a backward error of ``u·‖R_s‖``, coefficient by coefficient:
        ``u·‖R_s‖·(‖R_s⁻¹[i]‖·‖θ_s‖ + ‖(R_sᵀR_s)⁻¹[i]‖·‖r‖) / |θ_s[i]|``; NIST's datasets land
        5-600 times above their real errors. Zero coefficients are skipped.
        """
        scaled, inverse = self._scaled_inverse()
        if scaled is None:
            return 0.0
        top = float(torch.linalg.matrix_norm(scaled, ord=2))
        theta = self.theta[self.kept] * self.r.norm(dim=0)[:, None]
        residual = (self.sse + self._penalty_sse()).sqrt()
        bound = inverse.norm(dim=1)[:, None] * theta.norm(dim=0)
        bound = bound + (inverse @ inverse.T).norm(dim=1)[:, None] * residual
        relative = EPS * top * bound / theta.abs()
        return float(relative[theta != 0].max()) if bool((theta != 0).any()) else 0.0

    @property
    def needs_refinement(self) -> bool:
        """Whether a :class:`Refinement` pass should be run: the error estimate is above
        :data:`REFINE_ABOVE` and one corrected semi-normal step can reduce it (``u·κ_s² <``
        :data:`REFINE_KAPPA2`; beyond that, as on NIST's Filip, the step makes things worse).
        It judges the float64 solve: a refined solution still answers as its origin did.
        """
        scaled, _ = self._scaled_inverse()
        if scaled is None:
            return False
        s = torch.linalg.svdvals(scaled)
        effective = EPS * float(s[0] / s[-1]) ** 2 < REFINE_KAPPA2
        return effective and self.error_estimate() > REFINE_ABOVE

    def refined(self, gradient: Tensor, sse: Tensor | None = None) -> LeastSquaresSolution:
        """One step of corrected semi-normal equations: ``θ + r⁻¹r⁻ᵀ(g - n·k·l2·W)``.

        Args:
            gradient: ``(p, k)`` ``Zᵀ(Y - Zθ)`` at this ``theta``, summed over all rows in
                extended precision (see :class:`Refinement`).
            sse: ``(k,)`` ``‖y_j - Zθ_j‖²`` at this ``theta`` from the same pass; without it the
                new SSE comes from the factor.
        """
        g = _f64(gradient)
        k = g.shape[1]
        step = g - self.rows * k * self._penalty_gradient()
        delta = torch.zeros_like(self.theta)
        solve = torch.linalg.solve_triangular
        half = solve(self.r.T, step[self.kept], upper=False)
        delta[self.kept] = solve(self.r, half, upper=True)
        theta = self.theta + delta
        if sse is None:
            new_sse = self.sse_at(theta)
        else:  # ‖y - Zθ - Zδ‖² expanded around the accurate SSE at θ
            p = self.theta.shape[0]
            change = (self.factor[:p, :p] @ delta).square().sum(0) - 2 * (delta * g).sum(0)
            new_sse = (_f64(sse) + change).clamp(min=0)
        return replace(self, theta=theta, sse=new_sse)

    def _scaled_inverse(self) -> tuple[Tensor | None, Tensor]:
        """``r`` with unit columns, and its inverse (``None`` when nothing is kept)."""
        if self.rank == 0:
            return None, self.r
        scaled = self.r / self.r.norm(dim=0)
        eye = torch.eye(self.rank, dtype=F64)
        return scaled, torch.linalg.solve_triangular(scaled, eye, upper=True)

    @property
    def _d(self) -> int:
        """Number of features."""
        return self.theta.shape[0] - int(self.fit_intercept)

    def _penalty_gradient(self) -> Tensor:
        """``l2·W`` on the weight rows, 0 on the bias: half the penalty's gradient."""
        gradient = self.l2 * self.theta
        if self.ridge_scale is not None:
            gradient[: self._d] *= self.ridge_scale.to(gradient).square().unsqueeze(1)
        if self.fit_intercept:
            gradient[-1] = 0
        return gradient

    def _penalty_sse(self) -> Tensor:
        """``(k,)`` the ridge rows' share of the penalized residual, ``n·k·l2·‖W_j‖²``."""
        k = self.theta.shape[1]
        return self.rows * k * self.l2 * self._scaled(self.theta[: self._d]).square().sum(0)

    def _scaled(self, weights: Tensor) -> Tensor:
        """``s∘W``: the weight rows as the penalty weighs them."""
        if self.ridge_scale is None:
            return weights
        return weights * self.ridge_scale.to(weights).unsqueeze(1)


class Refinement:
    """The optional second pass: ``Zᵀ(Y - Zθ)`` and the SSE at ``theta`` in extended precision.

    Feed every row once with :meth:`update`, then :meth:`refine`. Under DDP, ``all_gather``
    every process's :meth:`to_tensor` and pass them all to :meth:`refine`, which adds them
    exactly: the processes' gradients are large and cancel in their sum (the residual is
    orthogonal to ``Z`` only over all rows), so a float64 ``all_reduce`` would lose the digits
    this pass is for (NIST's Wampler5 from 2-4 parts: 6.8-7.7 digits instead of 9.4-9.8).

    Args:
        solution: the solution to refine.
    """

    def __init__(self, solution: LeastSquaresSolution) -> None:
        self.solution = solution
        self.theta = solution.theta.numpy().astype(np.longdouble)
        self.gradient = np.zeros(self.theta.shape, dtype=np.longdouble)
        self.sse = np.zeros(self.theta.shape[1], dtype=np.longdouble)

    def update(self, x: Tensor, y: Tensor) -> None:
        """Accumulate one chunk (``x`` ``(n, d)``, ``y`` ``(n, k)`` or ``(n,)``)."""
        x64 = x.detach().to("cpu", F64).numpy()
        n, d = x64.shape
        # Rows of Zᵀ and Yᵀ: numpy's longdouble products (no BLAS) run fastest on contiguous rows.
        zt = np.ones((self.theta.shape[0], n), dtype=np.longdouble)
        zt[:d] = x64.T
        yt = y.detach().to("cpu", F64).reshape(n, -1).numpy().T.astype(np.longdouble)
        residual = yt - self.theta.T @ zt
        self.gradient += zt @ residual.T
        self.sse += np.square(residual).sum(axis=1)

    def to_tensor(self) -> Tensor:
        """``(2, p·k + k)`` float64: high and low parts of ``[gradient.flatten(), sse]``."""
        flat = np.concatenate([self.gradient.ravel(), self.sse])
        high = flat.astype(np.float64)
        return torch.from_numpy(np.stack([high, (flat - high).astype(np.float64)]))

    def refine(self, parts: Sequence[Tensor] | Tensor | None = None) -> LeastSquaresSolution:
        """The refined solution from this pass, or from all processes' :meth:`to_tensor`.

        Args:
            parts: every process's :meth:`to_tensor`, as a list or stacked (``all_gather``'s
                ``(world_size, 2, p·k + k)``); ``None`` for this pass alone.
        """
        gathered = [self.to_tensor()] if parts is None else list(parts)
        values = torch.stack([t.detach().to("cpu", F64).reshape(2, -1) for t in gathered])
        total = torch.tensor([math.fsum(v) for v in values.flatten(0, 1).T.tolist()], dtype=F64)
        p, k = self.theta.shape
        return self.solution.refined(total[: p * k].reshape(p, k), total[p * k :])


def _f64(tensor: Tensor) -> Tensor:
    """A float64 CPU copy, detached."""
    return tensor.detach().to("cpu", F64)
