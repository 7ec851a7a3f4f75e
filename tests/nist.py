"""NIST StRD linear regression files for the tests: a loader, the LRE, and an exact solver.

The ``.dat`` files live in ``tests/data/nist/`` (see its README). :func:`load` reads one into
float64 arrays and the certified values; :func:`solve` fits it through ``linreg.solver`` the way
a training run would (chunks, parts merged as under DDP, the refinement pass when asked for);
:func:`exact_fit` recomputes the certified values in rational arithmetic, which is how the
reconstructed files were made and how the tests check all of them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from linreg.solution import LeastSquaresSolution, Refinement
from linreg.solver import QRFactorization

DIR = Path(__file__).parent / "data" / "nist"
NAMES = ["Norris", "Pontius", "NoInt1", "NoInt2", "Filip", "Longley"]
NAMES += [f"Wampler{i}" for i in range(1, 6)]

NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


@dataclass
class Dataset:
    """One NIST dataset: the design columns (without the intercept) and the certified values."""

    name: str
    x: np.ndarray  # (n, d) float64: the predictors, or x, x², … for a polynomial model
    y: np.ndarray  # (n,) float64
    fit_intercept: bool
    polynomial: bool  # one predictor x, expanded to the columns x, x², …
    coef: list[float]  # certified estimates, intercept (B0) first when fitted
    coef_sd: list[float]  # their certified standard deviations
    residual_sd: float
    r_squared: float
    text_x: list[list[str]]  # the data as written, for exact arithmetic
    text_y: list[str]


def load(name: str) -> Dataset:
    """Parse ``tests/data/nist/<name>.dat``."""
    lines = (DIR / f"{name}.dat").read_text().splitlines()
    params = [
        m.groups()
        for m in (re.match(rf"\s*B(\d+)\s+({NUMBER})\s+({NUMBER})\s*$", s) for s in lines)
        if m
    ]
    residual_sd = _value(lines, r"Standard Deviation")
    r_squared = _value(lines, r"R-Squared")
    start = next(i for i, s in enumerate(lines) if re.match(r"Data:\s+y\b", s)) + 1
    rows = [s.split() for s in lines[start:] if s.strip()]
    text_y, text_x = [r[0] for r in rows], [r[1:] for r in rows]
    fit_intercept = params[0][0] == "0"
    powers = len(params) - fit_intercept
    polynomial = len(text_x[0]) == 1 and powers > 1
    if polynomial:
        x1 = np.array([float(r[0]) for r in text_x])
        x = np.column_stack([x1**i for i in range(1, powers + 1)])
    else:
        x = np.array([[float(v) for v in r] for r in text_x])
    return Dataset(
        name=name,
        x=x,
        y=np.array([float(v) for v in text_y]),
        fit_intercept=fit_intercept,
        polynomial=polynomial,
        coef=[float(p[1]) for p in params],
        coef_sd=[float(p[2]) for p in params],
        residual_sd=residual_sd,
        r_squared=r_squared,
        text_x=text_x,
        text_y=text_y,
    )


def solve(data: Dataset, chunk_rows: int = 7, parts: int = 1) -> tuple[LeastSquaresSolution, bool]:
    """Fit ``data`` from chunks, ``parts`` factorizations merged; refined when it says so."""
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    factorizations = []
    for rows in np.array_split(np.arange(len(y)), parts):
        qr = QRFactorization(x.shape[1], 1, data.fit_intercept)
        for start in range(0, len(rows), chunk_rows):
            index = torch.from_numpy(rows[start : start + chunk_rows])
            qr.update(x[index], y[index])
        factorizations.append(qr)
    solution = QRFactorization.merge(factorizations).solve()
    if not solution.needs_refinement:
        return solution, False
    passes = []  # one refinement pass per part, gathered as from DDP processes
    for rows in np.array_split(np.arange(len(y)), parts):
        refinement = Refinement(solution)
        for start in range(0, len(rows), chunk_rows):
            index = torch.from_numpy(rows[start : start + chunk_rows])
            refinement.update(x[index], y[index])
        passes.append(refinement)
    return passes[0].refine(torch.stack([r.to_tensor() for r in passes])), True


def lre(estimate: float, certified: float) -> float:
    """Log relative error: correct significant digits (absolute when certified is 0), capped at 15."""
    error = abs(estimate - certified)
    if certified != 0:
        error /= abs(certified)
    if math.isnan(error):
        return 0.0
    return 15.0 if error == 0 else min(15.0, -math.log10(error))


@dataclass
class ExactFit:
    """A least-squares fit in rational arithmetic; square roots to 40 digits."""

    coef: list[Fraction]  # intercept first when fitted
    coef_sd: list[Decimal]
    residual_sd: Decimal
    r_squared: Fraction
    df: tuple[int, int]  # regression, residual
    ss: tuple[Fraction, Fraction]  # regression, residual sums of squares


def exact_fit(data: Dataset) -> ExactFit:
    """Solve the normal equations exactly on the decimal data as written (polynomials expanded)."""
    y = [Fraction(v) for v in data.text_y]
    z = []
    for row in data.text_x:
        values = [Fraction(v) for v in row]
        if data.polynomial:
            values = [values[0] ** i for i in range(1, data.x.shape[1] + 1)]
        z.append(([Fraction(1)] if data.fit_intercept else []) + values)
    n, p = len(z), len(z[0])
    gram = [[sum(r[i] * r[j] for r in z) for j in range(p)] for i in range(p)]
    inverse = _inverse(gram)
    cross = [sum(r[i] * v for r, v in zip(z, y, strict=True)) for i in range(p)]
    coef = [sum(inverse[i][j] * cross[j] for j in range(p)) for i in range(p)]
    sse = sum(
        (v - sum(c * zi for c, zi in zip(coef, r, strict=True))) ** 2
        for r, v in zip(z, y, strict=True)
    )
    mean = sum(y) / n if data.fit_intercept else Fraction(0)
    tss = sum((v - mean) ** 2 for v in y)
    variance = sse / (n - p)
    return ExactFit(
        coef=coef,
        coef_sd=[_sqrt(variance * inverse[i][i]) for i in range(p)],
        residual_sd=_sqrt(variance),
        r_squared=1 - sse / tss,
        df=(p - data.fit_intercept, n - p),
        ss=(tss - sse, sse),
    )


def _value(lines: list[str], label: str) -> float:
    """The number after ``label`` on the line that starts with it."""
    return float(
        next(m.group(1) for s in lines if (m := re.match(rf"\s*{label}\s+({NUMBER})\s*$", s)))
    )


def _inverse(matrix: list[list[Fraction]]) -> list[list[Fraction]]:
    """Gauss-Jordan inverse, exact."""
    p = len(matrix)
    a = [row[:] + [Fraction(int(i == j)) for j in range(p)] for i, row in enumerate(matrix)]
    for col in range(p):
        pivot = next(r for r in range(col, p) if a[r][col] != 0)
        a[col], a[pivot] = a[pivot], a[col]
        a[col] = [v / a[col][col] for v in a[col]]
        for r in range(p):
            if r != col and a[r][col] != 0:
                factor = a[r][col]
                a[r] = [v - factor * w for v, w in zip(a[r], a[col], strict=True)]
    return [row[p:] for row in a]


def _sqrt(value: Fraction) -> Decimal:
    """√value to 40 significant digits."""
    with localcontext() as context:
        context.prec = 40
        return (Decimal(value.numerator) / Decimal(value.denominator)).sqrt()
