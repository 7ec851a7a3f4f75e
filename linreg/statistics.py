"""The statistical summary of an exact least-squares fit, as R's ``lm`` and statsmodels print it.

Per target and term (the intercept first, then the features in the data's order): coefficient,
standard error, t, two-sided p-value and 95% confidence interval; per target: R², adjusted R²,
F and its p-value, the residual standard error. The conventions are R's, statsmodels' and
NIST's: with an intercept R² uses the centred total sum of squares and the model has
``rank - 1`` degrees of freedom; without one the uncentred sum and ``rank``. A dropped
(linearly dependent) column has coefficient 0 and NaN for the rest; a ridge fit (``l2 > 0``) has
no classical standard errors, so those are NaN too. Arrays are numpy float64, ``(k, p)`` for
``k`` targets and ``p`` terms.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import numpy as np
from torch import Tensor

from linreg.solution import DroppedColumn, LeastSquaresSolution

INTERCEPT = "intercept"
COLUMNS = ["coef", "std_err", "t", "p_value", "ci_low", "ci_high"]
ArrayLike = Tensor | np.ndarray | Sequence[float] | float


@dataclass(frozen=True)
class DroppedTerm:
    """A term left out as linearly dependent (``reason`` as in ``DroppedColumn``)."""

    term: str
    reason: str
    of: tuple[str, ...] = ()

    def describe(self) -> str:
        """``"x3 (duplicate of x1)"``."""
        of = ", ".join(self.of)
        why = {
            "all-zero": "all zero",
            "constant": "constant",
            "duplicate": f"duplicate of {of}",
        }.get(
            self.reason, f"linear combination of {of}" if len(self.of) > 1 else f"multiple of {of}"
        )
        return f"{self.term} ({why})"


def dropped_terms(dropped: Sequence[DroppedColumn], names: Sequence[str]) -> list[DroppedTerm]:
    """The solver's dropped columns by name; ``names`` in theta's order (features, intercept)."""
    return [DroppedTerm(names[c.column], c.reason, tuple(names[i] for i in c.of)) for c in dropped]


LEFT_OUT = ("it is left out of the fit (weight 0, no standard error)",
            "they are left out of the fit (weight 0, no standard error)")  # fmt: skip


def not_identifiable(dropped: Sequence[DroppedTerm], fate: tuple[str, str] = LEFT_OUT) -> str:
    """One line naming dependent columns: ``column 'k' is constant: its weight is ...``.

    ``fate`` says what becomes of them, for one column and for several.
    """
    if len(dropped) == 1:
        term = dropped[0]
        what = term.describe().removeprefix(f"{term.term} (").removesuffix(")")
        return f"column {term.term!r} is {what}: its weight is not identifiable; {fate[0]}."
    terms = ", ".join(term.describe() for term in dropped)
    return f"columns {terms} are not identifiable: {fate[1]}."


@dataclass
class RegressionStatistics:
    """Coefficient table and model figures of a least-squares fit, for ``k`` targets."""

    terms: list[str]
    targets: list[str]
    coef: np.ndarray
    std_err: np.ndarray
    t: np.ndarray
    p_value: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    covariance: np.ndarray  # (k, p, p): σ²·(ZᵀZ)⁻¹, NaN where undefined
    n: int
    df_model: int
    df_resid: int
    residual_std_err: np.ndarray
    r_squared: np.ndarray
    adj_r_squared: np.ndarray
    f_statistic: np.ndarray
    f_p_value: np.ndarray
    condition_number: float
    fit_intercept: bool
    l2: float
    kept: np.ndarray  # (p,) bool
    design: np.ndarray  # (p, p): an R factor of the design, columns in term order
    dropped: list[DroppedTerm] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_solution(
        cls,
        solution: LeastSquaresSolution,
        feature_names: Sequence[str] | None = None,
        target_names: Sequence[str] | None = None,
    ) -> RegressionStatistics:
        """The summary of ``solution`` (which carries the sums of squares it needs).

        Args:
            solution: from :meth:`linreg.solver.QRFactorization.solve`, refined or not.
            feature_names: one per feature; default ``x0, x1, …``.
            target_names: one per target; default ``y`` (one target) or ``y0, y1, …``.
        """
        p, k = solution.theta.shape
        d = p - int(solution.fit_intercept)
        features = list(feature_names) if feature_names is not None else [f"x{i}" for i in range(d)]
        targets = list(target_names) if target_names is not None else _default_targets(k)
        if len(features) != d or len(targets) != k:
            raise ValueError(
                f"expected {d} feature and {k} target names, "
                f"got {len(features)} and {len(targets)}."
            )
        if solution.fit_intercept and INTERCEPT in features:
            raise ValueError(f"{INTERCEPT!r} names the intercept; rename that feature.")
        order = [d, *range(d)] if solution.fit_intercept else list(range(d))
        names = [*features, INTERCEPT]  # in theta's order
        n, rank = solution.rows, solution.rank
        df_resid, df_model = n - rank, rank - int(solution.fit_intercept)
        sse, tss = solution.sse.numpy(), solution.tss.numpy()
        notes = []
        with np.errstate(divide="ignore", invalid="ignore"):
            variance = sse / df_resid if df_resid > 0 else np.full(k, np.nan)
            # Undefined for a constant target; exactly 0 for a model of the intercept alone.
            r_squared = np.where(tss > 0, 1 - sse / tss if df_model > 0 else 0.0, np.nan)
            f_statistic = (tss - sse) / df_model / variance if df_model > 0 else np.full(k, np.nan)
            f_statistic[tss == 0] = np.nan
        unscaled = solution.unscaled_covariance().numpy()[np.ix_(order, order)]
        covariance = variance[:, None, None] * unscaled
        if solution.l2 > 0:
            covariance[:] = np.nan
            f_statistic[:] = np.nan
            notes.append(
                f"Ridge fit (l2 = {solution.l2:g}): no classical standard errors, tests or F."
            )
        if df_resid <= 0:
            notes.append("No residual degrees of freedom: standard errors and tests are undefined.")
        dropped = dropped_terms(solution.dropped, names)
        if dropped:
            notes.append("Linearly dependent columns dropped (coefficient 0, no standard error).")
        summary = cls(
            terms=[names[i] for i in order],
            targets=targets,
            coef=solution.theta.numpy()[order].T.copy(),
            covariance=covariance,
            n=n,
            df_model=df_model,
            df_resid=df_resid,
            residual_std_err=np.sqrt(variance),
            r_squared=r_squared,
            adj_r_squared=np.full(k, np.nan),
            f_statistic=f_statistic,
            f_p_value=np.full(k, np.nan),
            condition_number=solution.condition_number(),
            fit_intercept=solution.fit_intercept,
            l2=solution.l2,
            kept=solution.kept.numpy()[order],
            design=solution.factor[:p, :p].numpy()[:, order],
            dropped=dropped,
            notes=notes,
            **_tests_placeholder(k, p),
        )
        summary._compute_tests()
        return summary

    def in_units(
        self,
        feature_mean: ArrayLike | None = None,
        feature_std: ArrayLike | None = None,
        target_mean: ArrayLike | None = None,
        target_std: ArrayLike | None = None,
    ) -> RegressionStatistics:
        """The same fit in the data's own units, made on ``(x - μ)/s`` and ``(y - m)/t``.

        Coefficients and their full covariance go through the Jacobian of that affine map; t,
        p and intervals follow; R², adjusted R² and F do not change; the residual standard error
        scales by ``t``; the condition number is the original design's. ``None`` is the
        identity. A mean needs an intercept (the centred model has one in the data's units).
        """
        p, d, k = len(self.terms), len(self.terms) - int(self.fit_intercept), len(self.targets)
        mu, s = _vector(feature_mean, d, 0.0), _vector(feature_std, d, 1.0)
        m, t = _vector(target_mean, k, 0.0), _vector(target_std, k, 1.0)
        if not self.fit_intercept and (mu.any() or m.any()):
            raise ValueError("centred data needs an intercept to be expressed in its own units.")
        if (s == 0).any() or (t == 0).any():
            raise ValueError("a standard deviation of 0 cannot be undone.")
        first = int(self.fit_intercept)
        # Z_original = Z_standardized · M, so θ_original = t · M⁻¹ θ_standardized (+ m on the bias).
        to_design, to_coef = np.eye(p), np.eye(p)
        to_design[range(first, p), range(first, p)] = s
        to_coef[range(first, p), range(first, p)] = 1 / s
        if self.fit_intercept:
            to_design[0, 1:], to_coef[0, 1:] = mu, -mu / s
        coef = t[:, None] * (self.coef @ to_coef.T)
        if self.fit_intercept:
            coef[:, 0] += m
        valid = np.outer(self.kept, self.kept)
        covariance = np.full_like(self.covariance, np.nan)
        for j in range(k):
            if np.isfinite(self.covariance[j][valid]).all():
                moved = to_coef @ np.where(valid, self.covariance[j], 0.0) @ to_coef.T
                covariance[j] = np.where(valid, t[j] ** 2 * moved, np.nan)
        design = self.design @ to_design
        result = replace(
            self,
            coef=coef,
            covariance=covariance,
            residual_std_err=self.residual_std_err * np.abs(t),
            condition_number=_condition(design[:, self.kept]),
            design=design,
            notes=[*self.notes, "In the data's own units (the fit was made on standardized data)."],
        )
        result._compute_tests()
        return result

    def table(self) -> str:
        """A fixed-width text summary, one block per target, in the spirit of statsmodels'."""
        width = max(9, *(len(term) for term in self.terms))
        rule = "=" * (width + 6 * 13)
        blocks = []
        for j, target in enumerate(self.targets):
            left = [
                ("Observations:", f"{self.n}"),
                ("Df residuals:", f"{self.df_resid}"),
                ("Df model:", f"{self.df_model}"),
                ("Residual std. err.:", _g(self.residual_std_err[j])),
                ("Condition number:", _g(self.condition_number)),
            ]
            right = [
                ("R-squared:", _g(self.r_squared[j])),
                ("Adj. R-squared:", _g(self.adj_r_squared[j])),
                ("F-statistic:", _g(self.f_statistic[j])),
                ("Prob (F-statistic):", _g(self.f_p_value[j])),
                ("L2 penalty:", _g(self.l2)),
            ]
            lines = [f"Least squares: {target}".center(len(rule)).rstrip(), rule]
            lines += [
                f"{a:<20}{b:>16}      {c:<20}{e:>16}"
                for (a, b), (c, e) in zip(left, right, strict=True)
            ]
            header = ["coef", "std err", "t", "P>|t|", "[0.025", "0.975]"]
            lines += [rule, " " * width + "".join(f"{h:>13}" for h in header), "-" * len(rule)]
            for i, term in enumerate(self.terms):
                values = [getattr(self, c)[j, i] for c in COLUMNS]
                row = term.ljust(width) + "".join(f"{_g(v):>13}" for v in values)
                lines.append(row + ("  (dropped)" if not self.kept[i] else ""))
            lines.append(rule)
            blocks.append("\n".join(lines))
        footer = [f"Dropped: {dropped.describe()}" for dropped in self.dropped]
        footer += [f"Note: {note}" for note in self.notes]
        return "\n\n".join(blocks) + ("\n" + "\n".join(footer) if footer else "") + "\n"

    def to_csv(self, path: str | Path | IO[str]) -> None:
        """One row per term (``target`` first when several): full precision, NaN as empty."""
        if not isinstance(path, (str, Path)):
            self._write_csv(path)
            return
        with open(path, "w", newline="") as file:
            self._write_csv(file)

    def to_json(self, path: str | Path | IO[str]) -> None:
        """:meth:`to_dict` as JSON; NaN and infinities become ``null``."""
        text = json.dumps(_finite(self.to_dict()), indent=2) + "\n"
        if isinstance(path, (str, Path)):
            Path(path).write_text(text)
        else:
            path.write(text)

    def _write_csv(self, file: IO[str]) -> None:
        several = len(self.targets) > 1
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow((["target"] if several else []) + ["term", *COLUMNS])
        for j, target in enumerate(self.targets):
            for i, term in enumerate(self.terms):
                values = [_csv_number(getattr(self, c)[j, i]) for c in COLUMNS]
                writer.writerow(([target] if several else []) + [term, *values])

    def to_dict(self) -> dict[str, Any]:
        """Model figures per target with their coefficient tables, dropped terms and notes."""
        targets = []
        for j, target in enumerate(self.targets):
            coefficients = [
                {"term": term, **{c: float(getattr(self, c)[j, i]) for c in COLUMNS}}
                for i, term in enumerate(self.terms)
            ]
            figures = ("residual_std_err", "r_squared", "adj_r_squared", "f_statistic", "f_p_value")
            targets.append(
                {
                    "target": target,
                    **{f: float(getattr(self, f)[j]) for f in figures},
                    "coefficients": coefficients,
                }
            )
        return {
            "n": self.n,
            "df_model": self.df_model,
            "df_resid": self.df_resid,
            "fit_intercept": self.fit_intercept,
            "l2": self.l2,
            "condition_number": self.condition_number,
            "terms": self.terms,
            "targets": targets,
            "dropped": [
                {"term": x.term, "reason": x.reason, "of": list(x.of)} for x in self.dropped
            ],
            "notes": self.notes,
        }

    def _compute_tests(self) -> None:
        """Standard errors, t, p, 95% intervals from ``coef`` and ``covariance``; adj. R², F's p."""
        from scipy import stats  # imported here: it costs 0.3 s, paid only by exact fits

        df = self.df_resid if self.df_resid > 0 else np.nan
        first = int(self.fit_intercept)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.std_err = np.sqrt(np.diagonal(self.covariance, axis1=1, axis2=2))
            self.t = self.coef / self.std_err
            self.p_value = 2 * stats.t.sf(np.abs(self.t), df)
            half = stats.t.ppf(0.975, df) * self.std_err
            self.adj_r_squared = 1 - (1 - self.r_squared) * (self.n - first) / df
            self.f_p_value = stats.f.sf(self.f_statistic, self.df_model or np.nan, df)
        self.ci_low, self.ci_high = self.coef - half, self.coef + half


def _tests_placeholder(k: int, p: int) -> dict[str, np.ndarray]:
    """NaN arrays for the fields :meth:`RegressionStatistics._compute_tests` fills."""
    return {
        name: np.full((k, p), np.nan) for name in ("std_err", "t", "p_value", "ci_low", "ci_high")
    }


def _default_targets(k: int) -> list[str]:
    """``["y"]``, or ``["y0", "y1", …]`` for several targets."""
    return ["y"] if k == 1 else [f"y{j}" for j in range(k)]


def _vector(value: ArrayLike | None, size: int, default: float) -> np.ndarray:
    """``value`` as a float64 vector of ``size`` (a scalar broadcast, ``None`` as ``default``)."""
    if value is None:
        return np.full(size, default)
    if isinstance(value, Tensor):
        value = value.detach().cpu().double().numpy()
    array = np.broadcast_to(np.asarray(value, dtype=np.float64).reshape(-1), (size,))
    return array.copy()


def _condition(design: np.ndarray) -> float:
    """``σmax / σmin`` (NaN without columns)."""
    if design.shape[1] == 0:
        return math.nan
    s = np.linalg.svd(design, compute_uv=False)
    return float(s[0] / s[-1])


def _g(value: float) -> str:
    """A number in 6 significant digits, at most 12 characters."""
    return f"{value:.6g}"


def _csv_number(value: float) -> str:
    """Shortest text that reads back as the same float64; NaN as the empty field."""
    return "" if math.isnan(value) else repr(float(value))


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by ``None`` (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
