"""RegressionStatistics: NIST's certified values, numpy/scipy references, units, outputs."""

from __future__ import annotations

import csv
import json
import math
from decimal import Decimal, localcontext
from fractions import Fraction

import nist
import numpy as np
import pytest
import torch
from scipy import stats

from linreg.solver import QRFactorization
from linreg.statistics import DroppedTerm, RegressionStatistics

F64 = torch.float64


def summary(x, y, fit_intercept=True, l2=0.0, **names) -> RegressionStatistics:
    """Fit in chunks of 16 rows and summarize."""
    y = y.reshape(len(y), -1)
    qr = QRFactorization(x.shape[1], y.shape[1], fit_intercept)
    for start in range(0, len(x), 16):
        qr.update(x[start : start + 16], y[start : start + 16])
    return RegressionStatistics.from_solution(qr.solve(l2=l2), **names)


def data(n=120, d=3, k=1, seed=0):
    """Features with means and scales far from 0 and 1, and ``k`` noisy linear targets."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=F64) * torch.logspace(-1, 1, d, dtype=F64) + 5
    w = torch.randn(d, k, generator=g, dtype=F64)
    y = x @ w + torch.linspace(-3, 3, k, dtype=F64) + torch.randn(n, k, generator=g, dtype=F64)
    return x, y * torch.logspace(0, 2, k, dtype=F64)


def reference(x, y, fit_intercept):
    """The classical formulas with numpy's inv(ZᵀZ) and scipy's distributions; terms as printed."""
    x, y = x.numpy(), y.numpy().reshape(len(y), -1)
    z = np.column_stack([np.ones(len(x)), x]) if fit_intercept else x
    n, p = z.shape
    beta = np.linalg.lstsq(z, y, rcond=None)[0].T
    sse = ((y - z @ beta.T) ** 2).sum(0)
    df = n - p
    variance = sse / df
    std_err = np.sqrt(np.outer(variance, np.diag(np.linalg.inv(z.T @ z))))
    t = beta / std_err
    half = stats.t.ppf(0.975, df) * std_err
    tss = ((y - y.mean(0)) ** 2).sum(0) if fit_intercept else (y**2).sum(0)
    r_squared = 1 - sse / tss
    df_model = p - int(fit_intercept)
    f = ((tss - sse) / df_model) / variance
    return {
        "coef": beta,
        "std_err": std_err,
        "t": t,
        "p_value": 2 * stats.t.sf(np.abs(t), df),
        "ci_low": beta - half,
        "ci_high": beta + half,
        "residual_std_err": np.sqrt(variance),
        "r_squared": r_squared,
        "adj_r_squared": 1 - (1 - r_squared) * (n - int(fit_intercept)) / df,
        "f_statistic": f,
        "f_p_value": stats.f.sf(f, df_model, df),
        "condition_number": np.linalg.cond(z),
    }


@pytest.mark.parametrize("parts", [1, 3], ids=["chunked", "merged"])
@pytest.mark.parametrize("name", nist.NAMES)
def test_nist_certified_statistics(name: str, parts: int) -> None:
    data_set = nist.load(name)
    solution, _ = nist.solve(data_set, chunk_rows=7, parts=parts)
    result = RegressionStatistics.from_solution(solution)
    digits = [nist.lre(a, b) for a, b in zip(result.std_err[0], data_set.coef_sd, strict=True)]
    digits += [nist.lre(result.residual_std_err[0], data_set.residual_sd)]
    digits += [nist.lre(result.r_squared[0], data_set.r_squared)]
    assert min(digits) >= 5
    assert result.terms[0] == ("intercept" if data_set.fit_intercept else "x0")


@pytest.mark.parametrize("name", nist.NAMES)
def test_certified_values_are_exact(name: str) -> None:
    """The rational-arithmetic fit gives every certified value of every file, to its 15 digits."""
    data_set = nist.load(name)
    exact = nist.exact_fit(data_set)
    assert [_rounded(c) for c in exact.coef] == data_set.coef
    assert [_rounded(s) for s in exact.coef_sd] == data_set.coef_sd
    assert _rounded(exact.residual_sd) == data_set.residual_sd
    assert _rounded(exact.r_squared) == data_set.r_squared


def _rounded(value: Fraction | Decimal) -> float:
    """``value`` rounded to 15 significant digits, as NIST prints."""
    with localcontext() as context:
        context.prec = 40
        if isinstance(value, Fraction):
            value = Decimal(value.numerator) / Decimal(value.denominator)
        return float(f"{value:.15g}")


@pytest.mark.parametrize("k", [1, 2], ids=["one-target", "two-targets"])
@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "origin"])
def test_matches_the_classical_formulas(fit_intercept: bool, k: int) -> None:
    x, y = data(k=k)
    result = summary(x, y, fit_intercept)
    expected = reference(x, y, fit_intercept)
    for name, value in expected.items():
        np.testing.assert_allclose(getattr(result, name), value, rtol=1e-9, err_msg=name)
    assert result.df_resid == 120 - 3 - fit_intercept and result.df_model == 3
    assert result.targets == (["y"] if k == 1 else ["y0", "y1"])


@pytest.mark.parametrize(
    ("feature", "target"),
    [(True, True), (True, False), (False, True)],
    ids=["both", "features-only", "targets-only"],
)
def test_in_units_matches_a_fit_on_the_raw_data(feature: bool, target: bool) -> None:
    x, y = data(k=2, seed=4)
    x = torch.cat([x, x[:, :1]], 1)  # a duplicate, dropped in both fits
    mu, s = (x.mean(0), x.std(0)) if feature else (None, None)
    m, t = (y.mean(0), y.std(0)) if target else (None, None)
    xs = (x - mu) / s if feature else x
    ys = (y - m) / t if target else y
    converted = summary(xs, ys).in_units(mu, s, m, t)
    direct = summary(x, y)
    for name in ("coef", "std_err", "t", "p_value", "ci_low", "ci_high", "covariance"):
        np.testing.assert_allclose(
            getattr(converted, name), getattr(direct, name), rtol=1e-8, atol=1e-12, err_msg=name
        )
    for name in (
        "residual_std_err",
        "r_squared",
        "adj_r_squared",
        "f_statistic",
        "f_p_value",
        "condition_number",
    ):
        np.testing.assert_allclose(
            getattr(converted, name), getattr(direct, name), rtol=1e-9, err_msg=name
        )
    assert converted.dropped == direct.dropped == [DroppedTerm("x3", "duplicate", ("x0",))]


def test_in_units_without_intercept_takes_scales_only() -> None:
    x, y = data()
    converted = summary(x / 4, y / 2, fit_intercept=False).in_units(feature_std=4.0, target_std=2.0)
    np.testing.assert_allclose(converted.coef, summary(x, y, fit_intercept=False).coef, rtol=1e-10)
    with pytest.raises(ValueError, match="needs an intercept"):
        summary(x, y, fit_intercept=False).in_units(feature_mean=x.mean(0))
    with pytest.raises(ValueError, match="standard deviation of 0"):
        summary(x, y).in_units(feature_std=[1.0, 0.0, 1.0])


def test_dropped_columns_have_no_standard_errors() -> None:
    x, y = data()
    x = torch.cat([x, torch.full((120, 1), 2.0, dtype=F64), x[:, :1] + x[:, 1:2]], 1)
    result = summary(x, y, feature_names=["a", "b", "c", "two", "a+b"])
    assert result.terms == ["intercept", "a", "b", "c", "two", "a+b"]
    assert result.dropped == [
        DroppedTerm("two", "constant", ("intercept",)),
        DroppedTerm("a+b", "combination", ("a", "b")),
    ]
    assert (result.coef[0, 4:] == 0).all()
    for name in ("std_err", "t", "p_value", "ci_low", "ci_high"):
        assert (
            np.isnan(getattr(result, name)[0, 4:]).all()
            and np.isfinite(getattr(result, name)[0, :4]).all()
        )
    assert result.df_resid == 120 - 4 and result.df_model == 3
    np.testing.assert_allclose(result.coef[0, :4], summary(x[:, :3], y).coef[0], rtol=1e-10)


def test_ridge_has_coefficients_and_fit_but_no_classical_errors() -> None:
    x, y = data()
    result = summary(x, y, l2=0.1)
    qr = QRFactorization(3, 1)
    qr.update(x, y)
    solution = qr.solve(l2=0.1)
    np.testing.assert_allclose(result.coef[0], solution.theta[[3, 0, 1, 2], 0], rtol=1e-10)
    residual = y - torch.cat([x, torch.ones(120, 1, dtype=F64)], 1) @ solution.theta
    r_squared = 1 - (residual**2).sum() / ((y - y.mean()) ** 2).sum()
    np.testing.assert_allclose(result.r_squared[0], r_squared.item(), rtol=1e-10)
    for name in ("std_err", "t", "p_value", "ci_low", "ci_high", "f_statistic", "f_p_value"):
        assert np.isnan(getattr(result, name)).all(), name
    assert any("Ridge" in note for note in result.notes)


def test_no_residual_degrees_of_freedom() -> None:
    x, y = data(n=4)
    result = summary(x, y)
    assert result.df_resid == 0 and result.df_model == 3
    np.testing.assert_allclose(result.r_squared, 1.0, rtol=1e-9)
    for name in (
        "std_err",
        "p_value",
        "residual_std_err",
        "adj_r_squared",
        "f_statistic",
        "f_p_value",
    ):
        assert np.isnan(getattr(result, name)).all(), name
    assert any("No residual degrees of freedom" in note for note in result.notes)
    assert "nan" in result.table()


def test_degenerate_models() -> None:
    x, y = data(n=30, d=2)
    intercept_only = summary(torch.zeros(30, 0, dtype=F64), y)
    assert intercept_only.r_squared[0] == 0.0 and intercept_only.terms == ["intercept"]
    np.testing.assert_allclose(intercept_only.coef[0, 0], y.mean().item(), rtol=1e-14)
    np.testing.assert_allclose(intercept_only.std_err[0, 0], (y.std() / 30**0.5).item(), rtol=1e-12)
    constant = summary(x, torch.full((30, 1), 2.0, dtype=F64))
    assert np.isnan(constant.r_squared).all() and np.isnan(constant.f_statistic).all()
    nothing = summary(torch.zeros(30, 2, dtype=F64), y, fit_intercept=False)
    assert nothing.df_model == 0 and nothing.r_squared[0] == 0.0 and (nothing.coef == 0).all()


@pytest.mark.parametrize("k", [1, 2], ids=["one-target", "two-targets"])
def test_to_csv_writes_every_term_at_full_precision(tmp_path, k: int) -> None:
    x, y = data(k=k)
    x = torch.cat([x, x[:, :1]], 1)
    result = summary(x, y, feature_names=["a", "b", "c", "a again"])
    result.to_csv(tmp_path / "coef.csv")
    rows = list(csv.reader((tmp_path / "coef.csv").read_text().splitlines()))
    columns = ["term", "coef", "std_err", "t", "p_value", "ci_low", "ci_high"]
    assert rows[0] == (["target", *columns] if k > 1 else columns)
    assert len(rows) == 1 + 5 * k
    for j in range(k):
        block = [row[-7:] for row in rows[1 + 5 * j : 6 + 5 * j]]
        assert [row[0] for row in block] == ["intercept", "a", "b", "c", "a again"]
        assert [float(row[1]) for row in block] == result.coef[j].tolist()  # repr: no digit lost
        assert [float(row[2]) for row in block[:4]] == result.std_err[j, :4].tolist()
        assert block[4][2:] == [""] * 5  # NaN for the dropped column is an empty field
        if k > 1:
            assert {row[0] for row in rows[1 + 5 * j : 6 + 5 * j]} == {f"y{j}"}


def test_to_json_and_to_dict(tmp_path) -> None:
    x, y = data(k=2)
    x = torch.cat([x, torch.zeros(120, 1, dtype=F64)], 1)
    result = summary(x, y, target_names=["price", "volume"])
    result.to_json(tmp_path / "summary.json")
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["n"] == 120 and saved["df_resid"] == 116 and saved["fit_intercept"] is True
    assert [t["target"] for t in saved["targets"]] == ["price", "volume"]
    assert saved["targets"][1]["r_squared"] == result.r_squared[1]
    assert saved["dropped"] == [{"term": "x3", "reason": "all-zero", "of": []}]
    assert saved["targets"][0]["coefficients"][4] == {
        "term": "x3",
        "coef": 0.0,
        **dict.fromkeys(["std_err", "t", "p_value", "ci_low", "ci_high"]),
    }
    assert math.isnan(result.to_dict()["targets"][0]["coefficients"][4]["std_err"])


def test_table_has_a_block_per_target_and_names_what_was_dropped() -> None:
    x, y = data(k=2)
    x = torch.cat([x, x[:, 1:2]], 1)
    table = summary(
        x, y, feature_names=["a", "b", "c", "b2"], target_names=["first", "second"]
    ).table()
    assert table.count("Least squares:") == 2 and "first" in table and "second" in table
    assert table.count("b2") == 3  # a row in each block and the footer
    assert "(dropped)" in table and "Dropped: b2 (duplicate of b)" in table
    assert "R-squared:" in table and "P>|t|" in table


@pytest.mark.parametrize(
    ("names", "match"),
    [
        pytest.param(
            {"feature_names": ["a"]}, "expected 3 feature and 1 target names", id="features"
        ),
        pytest.param(
            {"target_names": ["a", "b"]}, "expected 3 feature and 1 target names", id="targets"
        ),
        pytest.param(
            {"feature_names": ["a", "intercept", "c"]}, "names the intercept", id="intercept"
        ),
    ],
)
def test_bad_names_are_refused(names, match: str) -> None:
    x, y = data(n=10)
    with pytest.raises(ValueError, match=match):
        summary(x, y, **names)
