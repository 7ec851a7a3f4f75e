"""QRFactorization and LeastSquaresSolution: NIST's certified digits, independent references."""

from __future__ import annotations

import nist
import numpy as np
import pytest
import torch
from sklearn.linear_model import LinearRegression, Ridge

from linreg.solution import DroppedColumn, Refinement
from linreg.solver import QRFactorization

F64 = torch.float64


def fit(x, y, fit_intercept=True, chunk_rows=50, l2=0.0, rtol=None):
    """Solve from chunks of ``chunk_rows``."""
    y = y.reshape(len(y), -1)
    qr = QRFactorization(x.shape[1], y.shape[1], fit_intercept)
    for start in range(0, len(x), chunk_rows):
        qr.update(x[start : start + chunk_rows], y[start : start + chunk_rows])
    return qr.solve(l2=l2, rtol=rtol)


def design(x, fit_intercept=True):
    """``Z = [x, 1]`` in numpy float64."""
    x = np.asarray(x, dtype=np.float64)
    return np.column_stack([x, np.ones(len(x))]) if fit_intercept else x


def data(n=200, d=4, k=1, seed=0):
    """Random features on different scales and ``k`` noisy linear targets."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=F64) * torch.logspace(-1, 2, d, dtype=F64) + 3
    w = torch.randn(d, k, generator=g, dtype=F64)
    return x, x @ w + 0.5 + 0.1 * torch.randn(n, k, generator=g, dtype=F64)


@pytest.mark.parametrize("parts", [1, 3], ids=["chunked", "merged"])
@pytest.mark.parametrize("name", nist.NAMES)
def test_nist_certified_coefficients(name: str, parts: int) -> None:
    data_set = nist.load(name)
    solution, refined = nist.solve(data_set, chunk_rows=7, parts=parts)
    theta = solution.theta[:, 0].tolist()
    coef = [theta[-1], *theta[:-1]] if data_set.fit_intercept else theta
    digits = min(nist.lre(a, b) for a, b in zip(coef, data_set.coef, strict=True))
    assert solution.rank == len(coef) and not solution.dropped
    assert digits >= (6 if name == "Filip" else 7)
    assert refined == (name in ("Wampler4", "Wampler5"))


def test_refinement_lifts_wampler5() -> None:
    data_set = nist.load("Wampler5")
    solution = fit(torch.from_numpy(data_set.x), torch.from_numpy(data_set.y), chunk_rows=7)
    refinement = Refinement(solution)
    refinement.update(torch.from_numpy(data_set.x), torch.from_numpy(data_set.y))
    plain, refined = (
        min(nist.lre(c, 1.0) for c in s.theta[:, 0].tolist())
        for s in (solution, refinement.refine())
    )
    assert solution.needs_refinement and solution.error_estimate() > 1e-7
    assert refined >= 8 and refined > plain + 1


@pytest.mark.parametrize("k", [1, 3], ids=["one-target", "three-targets"])
@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "origin"])
def test_matches_numpy_lstsq_and_sklearn(fit_intercept: bool, k: int) -> None:
    x, y = data(k=k)
    solution = fit(x, y, fit_intercept)
    expected = np.linalg.lstsq(design(x, fit_intercept), y.numpy(), rcond=None)[0]
    np.testing.assert_allclose(solution.theta.numpy(), expected, rtol=1e-10, atol=1e-12)
    sklearn = LinearRegression(fit_intercept=fit_intercept).fit(x.numpy(), y.numpy())
    np.testing.assert_allclose(solution.weight.numpy(), sklearn.coef_, rtol=1e-9)
    assert (solution.bias is None) == (not fit_intercept)
    if fit_intercept:
        np.testing.assert_allclose(solution.bias.numpy(), sklearn.intercept_, rtol=1e-9)
    residual = y.numpy() - design(x, fit_intercept) @ expected
    np.testing.assert_allclose(solution.sse.numpy(), (residual**2).sum(0), rtol=1e-9)


@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "origin"])
@pytest.mark.parametrize("k", [1, 2], ids=["one-target", "two-targets"])
def test_ridge_matches_sklearn(k: int, fit_intercept: bool) -> None:
    x, y = data(n=150, k=k, seed=1)
    l2 = 0.05
    solution = fit(x, y, fit_intercept, l2=l2)
    ridge = Ridge(alpha=l2 * len(x) * k, fit_intercept=fit_intercept, solver="svd").fit(
        x.numpy(), y.numpy()
    )
    weight, bias = (
        ridge.coef_.reshape(k, -1),
        np.reshape(ridge.intercept_, -1),
    )  # (4,) for one target
    np.testing.assert_allclose(solution.weight.numpy(), weight, rtol=1e-9)
    if fit_intercept:
        np.testing.assert_allclose(solution.bias.numpy(), bias, rtol=1e-9)
    residual = y.numpy() - x.numpy() @ weight.T - bias
    np.testing.assert_allclose(solution.sse.numpy(), (residual**2).sum(0), rtol=1e-9)


def test_chunking_and_merging_do_not_change_the_factorization() -> None:
    x, y = data(n=120, k=2)
    whole = fit(x, y, chunk_rows=120)
    for chunk_rows in (1, 7, 64):
        np.testing.assert_allclose(fit(x, y, chunk_rows=chunk_rows).theta, whole.theta, rtol=1e-10)
    parts = []
    for rows in (slice(0, 10), slice(10, 11), slice(11, 120)):
        part = QRFactorization(4, 2)
        part.update(x[rows], y[rows])
        parts.append(QRFactorization.from_tensor(part.to_tensor(), 4, 2, True))
    merged = QRFactorization.merge(parts)
    assert merged.rows == 120
    np.testing.assert_allclose(merged.solve().theta, whole.theta, rtol=1e-10)
    np.testing.assert_allclose(merged.mean, y.mean(0), rtol=1e-14)
    np.testing.assert_allclose(merged.m2, ((y - y.mean(0)) ** 2).sum(0), rtol=1e-12)
    np.testing.assert_allclose(merged.squares, (y**2).sum(0), rtol=1e-14)


def test_to_tensor_round_trip_is_exact() -> None:
    x, y = data(n=40, d=3, k=2)
    qr = QRFactorization(3, 2, fit_intercept=False)
    qr.update(x.float(), y)
    flat = qr.to_tensor()
    assert flat.shape == (2 + 5 * 5 + 3 * 2,) and flat.dtype == F64
    back = QRFactorization.from_tensor(flat, 3, 2, fit_intercept=False)
    assert torch.equal(back.to_tensor(), flat) and back.rows == 40
    assert back.default_rtol() == qr.default_rtol() > 1e-10


def test_refinement_pass_merged_across_parts_equals_one_pass() -> None:
    x, y = data(n=120, k=2)
    solution = fit(x, y)
    whole, first, second = Refinement(solution), Refinement(solution), Refinement(solution)
    whole.update(x, y)
    first.update(x[:50], y[:50])
    second.update(x[50:], y[50:])
    merged = first.refine([first.to_tensor(), second.to_tensor()])
    np.testing.assert_allclose(merged.theta, whole.refine().theta, rtol=1e-13)
    np.testing.assert_allclose(merged.theta, solution.theta, rtol=1e-11)
    np.testing.assert_allclose(merged.sse, solution.sse, rtol=1e-10)


def test_refinement_keeps_the_ridge_optimum() -> None:
    x, y = data(n=120)
    solution = fit(x, y, l2=0.1)
    refinement = Refinement(solution)
    refinement.update(x, y)
    refined = refinement.refine()
    np.testing.assert_allclose(refined.theta, solution.theta, rtol=1e-11)
    np.testing.assert_allclose(refined.sse, solution.sse, rtol=1e-10)


def _constant(x):
    return torch.cat([x, torch.full((len(x), 1), 5.0, dtype=x.dtype)], 1)


def _duplicate(x):
    return torch.cat([x, x[:, 1:2]], 1)


def _combination(x):
    return torch.cat([x, 2 * x[:, :1] - 0.5 * x[:, 2:3]], 1)


def _zero(x):
    return torch.cat([x[:, :1], torch.zeros(len(x), 1, dtype=x.dtype), x[:, 1:]], 1)


def _twice(x):
    return torch.cat([x, x[:, :1], x[:, :1] + x[:, 1:2]], 1)


@pytest.mark.parametrize(
    ("make", "dtype", "dropped"),
    [
        pytest.param(
            _constant, F64, [DroppedColumn(3, "constant", (4,))], id="constant"
        ),  # 4: intercept
        pytest.param(_duplicate, F64, [DroppedColumn(3, "duplicate", (1,))], id="duplicate"),
        pytest.param(
            _combination, F64, [DroppedColumn(3, "combination", (0, 2))], id="combination"
        ),
        pytest.param(_zero, F64, [DroppedColumn(1, "all-zero")], id="all-zero"),
        pytest.param(
            _combination,
            torch.float32,
            [DroppedColumn(3, "combination", (0, 2))],
            id="float32-combination",
        ),
        pytest.param(
            _twice,
            F64,
            [DroppedColumn(3, "duplicate", (0,)), DroppedColumn(4, "combination", (0, 1))],
            id="two-dropped",
        ),
    ],
)
def test_dependent_columns_are_dropped_and_named(make, dtype, dropped) -> None:
    x, y = data(n=100, d=3)
    x = make(x.to(dtype))
    y = y.to(dtype)
    solution = fit(x, y)
    assert solution.dropped == dropped
    index = [c.column for c in dropped]
    keep = [j for j in range(x.shape[1]) if j not in index]
    assert solution.rank == len(keep) + 1 and solution.kept.tolist() == [
        j in keep for j in range(x.shape[1])
    ] + [True]
    reduced = fit(x[:, keep], y)
    np.testing.assert_allclose(solution.theta[[*keep, -1]], reduced.theta, rtol=1e-10)
    assert (solution.theta[index] == 0).all()
    assert solution.unscaled_covariance()[index].isnan().all()


def test_float32_data_gets_a_coarser_rank_tolerance() -> None:
    x, y = data(n=100, d=3)
    x = _combination(x.float())
    assert (
        fit(x, y, rtol=1e-10).rank == 5
    )  # float32 rounding looks independent at float64 tolerance
    assert fit(x, y).rank == 4


def test_constant_column_without_intercept_is_kept() -> None:
    x, y = data(n=50, d=2)
    solution = fit(_constant(x), y, fit_intercept=False)
    assert solution.rank == 3 and not solution.dropped


def test_ridge_drops_nothing() -> None:
    x, y = data(n=50, d=2)
    solution = fit(_duplicate(x), y, l2=0.01)
    assert solution.rank == 4 and not solution.dropped
    assert torch.isclose(
        solution.theta[1], solution.theta[2], rtol=1e-9
    ).all()  # the penalty splits the weight


@pytest.mark.parametrize(
    ("n", "rank"), [(1, 1), (3, 3), (6, 6)], ids=["one-row", "three-rows", "exactly-p"]
)
def test_no_more_rows_than_parameters(n: int, rank: int) -> None:
    x, y = data(n=n, d=5)
    solution = fit(x, y)
    assert solution.rank == rank and solution.rows == n
    assert len(solution.dropped) == 6 - rank
    np.testing.assert_allclose(solution.sse, 0, atol=1e-16)
    np.testing.assert_allclose(
        design(x)[:, solution.kept] @ solution.theta[solution.kept].numpy(), y, rtol=1e-9
    )


@pytest.mark.parametrize("l2", [0.0, 0.3], ids=["plain", "ridge"])
def test_objective_sse_and_excess_match_direct_computation(l2: float) -> None:
    x, y = data(n=80, d=3, k=2)
    solution = fit(x, y, l2=l2)
    theta = solution.theta + 0.1 * torch.randn(
        4, 2, generator=torch.Generator().manual_seed(3), dtype=F64
    )
    residual = y.numpy() - design(x) @ theta.numpy()
    np.testing.assert_allclose(solution.sse_at(theta), (residual**2).sum(0), rtol=1e-12)
    objective = (residual**2).mean() + l2 * (theta[:3] ** 2).sum().item()
    np.testing.assert_allclose(solution.objective(theta).item(), objective, rtol=1e-12)
    optimum = solution.objective(solution.theta).item()
    np.testing.assert_allclose(solution.excess(theta).item(), objective - optimum, rtol=1e-9)
    assert solution.excess(solution.theta).item() == 0.0
    assert solution.excess(theta.float()).item() > 0


@pytest.mark.parametrize("l2", [0.0, 0.3], ids=["plain", "ridge"])
def test_curvatures_and_directions_are_the_hessian_eigenpairs(l2: float) -> None:
    x, y = data(n=90, d=3, k=2)
    solution = fit(x, y, l2=l2)
    z = design(x)
    hessian = 2 * z.T @ z / (90 * 2) + 2 * l2 * np.diag([1.0, 1.0, 1.0, 0.0])
    curvatures = solution.curvatures().numpy()
    np.testing.assert_allclose(curvatures, np.linalg.eigvalsh(hessian)[::-1], rtol=1e-10)
    assert (np.diff(curvatures) <= 0).all()
    directions = solution.directions().numpy()
    np.testing.assert_allclose(
        hessian @ directions, directions * curvatures, rtol=1e-8, atol=1e-10 * curvatures[0]
    )


def test_condition_number_is_that_of_the_kept_design() -> None:
    x, y = data(n=60, d=3)
    np.testing.assert_allclose(fit(x, y).condition_number(), np.linalg.cond(design(x)), rtol=1e-10)
    np.testing.assert_allclose(
        fit(_duplicate(x), y).condition_number(), np.linalg.cond(design(x)), rtol=1e-10
    )


def test_update_accepts_any_float_dtype_and_a_flat_target() -> None:
    x, y = data(n=30, d=2)
    qr = QRFactorization(2, 1)
    qr.update(x.float(), y[:, 0].float())
    qr.update(x.to(torch.bfloat16), y.to(torch.bfloat16))
    assert qr.rows == 60 and qr.data_eps == torch.finfo(torch.bfloat16).eps


@pytest.mark.parametrize(
    ("call", "match"),
    [
        pytest.param(
            lambda qr: qr.update(torch.zeros(4, 3), torch.zeros(4, 1)),
            r"x of shape \(n, 2\)",
            id="features",
        ),
        pytest.param(
            lambda qr: qr.update(torch.zeros(4, 2), torch.zeros(5)),
            r"y of shape \(n, 1\)",
            id="targets",
        ),
        pytest.param(
            lambda qr: qr.update(torch.tensor([[1.0, float("nan")]]), torch.ones(1)),
            "NaN",
            id="nan",
        ),
        pytest.param(lambda qr: qr.solve(), "no rows", id="empty"),
        pytest.param(
            lambda qr: QRFactorization.from_tensor(torch.zeros(3), 2, 1),
            "flat tensor of",
            id="flat-size",
        ),
        pytest.param(
            lambda qr: QRFactorization.merge([qr, QRFactorization(3, 1)]),
            "different shapes",
            id="merge",
        ),
        pytest.param(
            lambda qr: QRFactorization(0, 1, fit_intercept=False),
            "at least one parameter",
            id="no-parameters",
        ),
    ],
)
def test_bad_input_is_refused(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call(QRFactorization(2, 1))


def test_a_refused_chunk_leaves_the_state_as_it_was() -> None:
    x, y = data(n=10, d=2)
    qr = QRFactorization(2, 1)
    qr.update(x, y)
    before = qr.to_tensor()
    with pytest.raises(ValueError, match="NaN or infinite"):
        qr.update(torch.tensor([[1.0, float("inf")]]), torch.ones(1))
    assert torch.equal(qr.to_tensor(), before)
    with pytest.raises(ValueError, match="l2 is a penalty weight"):
        qr.solve(l2=-1.0)
