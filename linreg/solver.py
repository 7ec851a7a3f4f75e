"""Exact least squares in one streaming pass: Householder QR of ``[Z | Y]``, chunk by chunk.

``Z = [x, 1]`` (the column of ones only with an intercept) and ``Y`` holds ``k`` targets, fitted
independently in one factorization. Memory is O((d + k)²) whatever the number of rows, and the
factorizations of separate parts (DDP processes) merge into the factorization of all rows.
:meth:`QRFactorization.solve` returns a :class:`~linreg.solution.LeastSquaresSolution`.

Example:
    >>> x = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    >>> qr = QRFactorization(n_features=1, n_targets=1)
    >>> qr.update(x[:2], 3 * x[:2] + 1)
    >>> qr.update(x[2:], 3 * x[2:] + 1)
    >>> solution = qr.solve()
    >>> [round(v, 12) for v in solution.theta.flatten().tolist()]  # weight, then bias
    [3.0, 1.0]
    >>> solution.rank, solution.rows
    (2, 4)
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from linreg.solution import DroppedColumn, LeastSquaresSolution

F64 = torch.float64
# A column is dropped when its part independent of the kept columns is below rtol of its norm.
# Float64 data: exact dependencies sit near 1e-16, NIST's Filip (full rank) near 5e-8, so 1e-10
# separates them with room for rounding that grows with the rows. Coarser data is only exact to
# its own epsilon: a column computed from others in float32 is independent at ~1e-7.
RTOL_FLOOR = 1e-10
RTOL_PER_EPS = 32.0


class QRFactorization:
    """Streaming Householder QR of the augmented matrix ``[Z | Y]`` in float64.

    Args:
        n_features: columns of ``x`` (``d``).
        n_targets: columns of ``y`` (``k``).
        fit_intercept: append a column of ones to ``x`` (stored last, as the bias in ``theta``).
    """

    def __init__(self, n_features: int, n_targets: int, fit_intercept: bool = True) -> None:
        if n_features < 0 or n_targets < 1 or n_features + fit_intercept < 1:
            raise ValueError(
                f"need at least one parameter and one target, got n_features={n_features}, "
                f"n_targets={n_targets}, fit_intercept={fit_intercept}."
            )
        self.n_features, self.n_targets, self.fit_intercept = n_features, n_targets, fit_intercept
        self.n_params = n_features + int(fit_intercept)
        q = self.n_params + n_targets
        self.rows = 0
        self.r = torch.zeros(q, q, dtype=F64)  # upper-triangular: [Z | Y] = Q r
        # Per target, for the total sum of squares: mean and M2 (Chan et al.), and Σy².
        self.mean = torch.zeros(n_targets, dtype=F64)
        self.m2 = torch.zeros(n_targets, dtype=F64)
        self.squares = torch.zeros(n_targets, dtype=F64)
        self.data_eps = 0.0  # machine epsilon of the least precise floating chunk seen

    def update(self, x: Tensor, y: Tensor) -> None:
        """Take one chunk: ``x`` of shape ``(n, d)``, ``y`` of shape ``(n, k)`` (or ``(n,)``)."""
        y = y.detach().unsqueeze(1) if y.ndim == 1 else y.detach()
        if x.ndim != 2 or x.shape[1] != self.n_features or y.shape != (x.shape[0], self.n_targets):
            raise ValueError(
                f"expected x of shape (n, {self.n_features}) and y of shape (n, "
                f"{self.n_targets}), got {tuple(x.shape)} and {tuple(y.shape)}."
            )
        if x.shape[0] == 0:
            return
        n, d, p, q = x.shape[0], self.n_features, self.n_params, self.r.shape[0]
        # [r; Z | Y] built column-major, as LAPACK takes it: saves torch a copy of the chunk.
        block = torch.empty(q, q + n, dtype=F64, device=x.device).T
        block[:q] = self.r
        block[q:, :d] = x.detach()
        block[q:, d:p] = 1.0
        block[q:, p:] = y
        with _one_thread():  # a tall, narrow QR gains nothing from threads, and loses to contention
            r = torch.linalg.qr(block, mode="r").R
        if not bool(torch.isfinite(r).all()):
            raise ValueError("the chunk holds NaN or infinite values.")
        y64 = block[q:, p:]
        mean = y64.mean(0)
        moments = (n, mean, (y64 - mean).square().sum(0), y64.square().sum(0))
        self._to(x.device)
        self._add(moments)
        self.r = r
        self.data_eps = max(self.data_eps, _eps(x.dtype), _eps(y.dtype))

    @classmethod
    def merge(cls, parts: Sequence[QRFactorization]) -> QRFactorization:
        """The factorization of all rows of all ``parts`` (e.g. one per DDP process)."""
        if not parts:
            raise ValueError("nothing to merge.")
        first = parts[0]
        merged = cls(first.n_features, first.n_targets, first.fit_intercept)
        shape = (first.n_features, first.n_targets, first.fit_intercept)
        if any((p.n_features, p.n_targets, p.fit_intercept) != shape for p in parts):
            raise ValueError("cannot merge factorizations of different shapes.")
        device = first.r.device
        merged.r = torch.linalg.qr(torch.cat([p.r.to(device) for p in parts]), mode="r").R
        merged._to(device)
        for part in parts:
            part_moments = (part.mean.to(device), part.m2.to(device), part.squares.to(device))
            merged._add((part.rows, *part_moments))
        merged.data_eps = max(p.data_eps for p in parts)
        return merged

    def to_tensor(self) -> Tensor:
        """All the state in one flat float64 tensor of fixed size (for ``all_gather``)."""
        head = torch.tensor([self.rows, self.data_eps], dtype=F64, device=self.r.device)
        return torch.cat([head, self.r.flatten(), self.mean, self.m2, self.squares])

    @classmethod
    def from_tensor(
        cls, flat: Tensor, n_features: int, n_targets: int, fit_intercept: bool = True
    ) -> QRFactorization:
        """The factorization that :meth:`to_tensor` flattened."""
        qr = cls(n_features, n_targets, fit_intercept)
        q, k = qr.r.shape[0], n_targets
        if flat.shape != (2 + q * q + 3 * k,):
            raise ValueError(
                f"expected a flat tensor of {2 + q * q + 3 * k} values, got {tuple(flat.shape)}."
            )
        flat = flat.to(F64)
        qr.rows, qr.data_eps = int(flat[0].item()), float(flat[1].item())
        qr.r = flat[2 : 2 + q * q].reshape(q, q).clone()
        qr.mean, qr.m2, qr.squares = flat[2 + q * q :].reshape(3, k).clone().unbind()
        return qr

    def default_rtol(self) -> float:
        """Rank tolerance for the data seen: ``max(1e-10, 32·eps)``, eps of its coarsest dtype."""
        return max(RTOL_FLOOR, RTOL_PER_EPS * self.data_eps)

    def solve(
        self, l2: float = 0.0, rtol: float | None = None, ridge_scale: Tensor | None = None
    ) -> LeastSquaresSolution:
        """Minimize ``‖Y - Zθ‖²/(n·k) + l2·‖s∘W‖²``; without ``l2``, dependent columns are dropped.

        Args:
            l2: ridge weight on the weights (not the bias), as in the SGD model's penalty.
            ridge_scale: ``s``, one per feature (``None``: 1); the columns' standard deviations
                give the penalty of a model trained on standardized columns.
            rtol: rank tolerance relative to each column's norm; ``None`` for
                :meth:`default_rtol`. Columns are considered in R's ``lm`` order: the intercept
                first, then the features in order; with ``l2 > 0`` none is dropped.
        """
        if self.rows == 0:
            raise ValueError("no rows to solve from: call update() first.")
        if l2 < 0:
            raise ValueError(f"l2 is a penalty weight and must be >= 0, got {l2}.")
        r = self.r.detach().cpu()
        d, k, p = self.n_features, self.n_targets, self.n_params
        tol = self.default_rtol() if rtol is None else rtol
        kept = torch.ones(p, dtype=torch.bool)
        dropped: list[DroppedColumn] = []
        if l2 == 0:
            intercept = d if self.fit_intercept else None
            kept, dropped = _independent_columns(r[:p, :p], intercept, tol)
        # The ridge term as d more rows: √(n·k·l2)·I under the weights.
        ridge = torch.zeros(d, r.shape[1], dtype=F64)
        scale = torch.ones(d, dtype=F64) if ridge_scale is None else ridge_scale.to(F64).cpu()
        ridge[:, :d] = math.sqrt(self.rows * k * l2) * torch.diag(scale)
        index = kept.nonzero().flatten()
        m = len(index)
        if l2 == 0 and m == p:
            s = r  # already the factor of [Z_kept | Y]
        else:
            columns = torch.cat([index, torch.arange(p, p + k)])
            s = torch.linalg.qr(torch.cat([r, ridge])[:, columns], mode="r").R
        theta = torch.zeros(p, k, dtype=F64)
        theta[index] = torch.linalg.solve_triangular(s[:m, :m], s[:m, m:], upper=True)
        penalized = torch.linalg.qr(torch.cat([r[:p, :p], ridge[:, :p]]), mode="r").R
        solution = LeastSquaresSolution(
            theta=theta,
            kept=kept,
            dropped=dropped,
            rows=self.rows,
            l2=float(l2),
            fit_intercept=self.fit_intercept,
            sse=s[m:, m:].square().sum(0),
            tss=(self.m2 if self.fit_intercept else self.squares).cpu().clone(),
            r=s[:m, :m].clone(),
            factor=r,
            penalized=penalized,
            ridge_scale=None if ridge_scale is None or l2 == 0 else scale,
        )
        if l2 > 0:  # s holds the penalized residual: take the data term alone
            solution.sse = solution.sse_at(theta)
        return solution

    def _to(self, device: torch.device) -> None:
        """Keep the target moments on the device of the factor."""
        self.mean, self.m2, self.squares = (
            t.to(device) for t in (self.mean, self.m2, self.squares)
        )

    def _add(self, moments: tuple[int, Tensor, Tensor, Tensor]) -> None:
        """Merge another part's target moments (Chan et al.'s parallel formula: no cancellation)."""
        n_b, mean_b, m2_b, squares_b = moments
        if n_b == 0:
            return
        n = self.rows + n_b
        delta = mean_b - self.mean
        self.m2 = self.m2 + m2_b + delta.square() * (self.rows * n_b / n)
        self.mean = self.mean + delta * (n_b / n)
        self.squares = self.squares + squares_b
        self.rows = n


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch's CPU kernels on one thread for a while (measured: 29 ms a 65,536 x 34 chunk
    on one thread, 55 ms on two with the other core busy, on the 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _eps(dtype: torch.dtype) -> float:
    """Machine epsilon of a floating dtype; 0 for integers (exact)."""
    return torch.finfo(dtype).eps if dtype.is_floating_point else 0.0


def _independent_columns(
    rzz: Tensor, intercept: int | None, rtol: float
) -> tuple[Tensor, list[DroppedColumn]]:
    """Keep each column whose part orthogonal to the kept ones exceeds ``rtol`` of its norm.

    Columns are taken in R's ``lm`` order: the intercept first, then the features. ``rzz``'s
    columns have the same inner products as ``Z``'s, so projecting them is projecting ``Z``'s;
    classical Gram-Schmidt run twice is orthogonal to working precision.
    """
    p = rzz.shape[1]
    order = ([intercept] if intercept is not None else []) + [j for j in range(p) if j != intercept]
    kept = torch.zeros(p, dtype=torch.bool)
    basis = rzz.new_zeros(rzz.shape[0], p)  # orthonormal columns spanning the kept ones
    rank = 0
    dropped = []
    for j in order:
        column = rzz[:, j]
        norm = column.norm()
        if norm > 0:
            kept_basis = basis[:, :rank]
            residual = column - kept_basis @ (kept_basis.T @ column)
            residual = residual - kept_basis @ (kept_basis.T @ residual)
            size = residual.norm()
            if size > rtol * norm:
                basis[:, rank] = residual / size
                rank += 1
                kept[j] = True
                continue
        dropped.append(_why(rzz, kept, j, intercept, rtol))
    return kept, dropped


def _why(rzz: Tensor, kept: Tensor, j: int, intercept: int | None, rtol: float) -> DroppedColumn:
    """Which kept columns column ``j`` depends on: those that carry more than √rtol of it."""
    column = rzz[:, j]
    if column.norm() == 0:
        return DroppedColumn(j, "all-zero")
    index = kept.nonzero().flatten()
    basis = rzz[:, index]
    coef = torch.linalg.lstsq(basis, column[:, None]).solution[:, 0]
    share = coef.abs() * basis.norm(dim=0) / column.norm()
    of = tuple(int(i) for i, c in zip(index, share, strict=True) if c > math.sqrt(rtol))
    if of == (intercept,):
        return DroppedColumn(j, "constant", of)
    if len(of) == 1 and abs(float(coef[index == of[0]]) - 1) <= math.sqrt(rtol):
        return DroppedColumn(j, "duplicate", of)
    return DroppedColumn(j, "combination", of)
