"""LinearRegressor against scikit-learn's LinearRegression and Ridge and NIST's certified values,
inside sklearn's tools, and its SGD solver against the exact answer."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone, is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from linreg.estimator import LinearRegressor
from tests import nist
from tests.conftest import scalars

SCALES = np.array([1.0, 100.0, 0.01, 10.0])
OFFSETS = np.array([0.0, 50.0, -0.03, 20.0])  # within a few scales: x = 0 is near the data
EXACT = {"rtol": 1e-10, "atol": 0.0}  # the exact solver against scikit-learn's


def make_data(
    n_rows: int = 200, n_targets: int | None = None, intercept: float = 7.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Features on very different scales and offsets, a linear target plus noise of std 0.1."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_rows, 4)) * SCALES + OFFSETS
    y = x @ ([1.5, -2.0, 0.5, 3.0] / SCALES) + intercept + 0.1 * rng.normal(size=n_rows)
    if n_targets is not None:
        y = np.stack([y * (k + 1) - k for k in range(n_targets)], axis=1)
    return x, y


@pytest.fixture(scope="module")
def fitted() -> tuple[LinearRegressor, LinearRegression, np.ndarray, np.ndarray]:
    """One LinearRegressor and one scikit-learn LinearRegression fitted on the same rows."""
    x, y = make_data()
    return LinearRegressor().fit(x, y), LinearRegression().fit(x, y), x, y


def assert_close_fit(ours, reference, x: np.ndarray, y: np.ndarray) -> None:
    """SGD's tolerance: coefficients (per standard deviation of each feature), intercept and
    predictions within a small fraction of the noise left by the exact fit; R² to 1e-4."""
    noise = np.std(y - reference.predict(x), axis=0)
    coef_gap = (np.abs(ours.coef_ - reference.coef_) * x.std(axis=0)).transpose()
    assert (coef_gap <= 0.1 * noise).all(), coef_gap
    assert (np.abs(np.subtract(ours.intercept_, reference.intercept_)) <= 0.2 * noise).all()
    assert (np.abs(ours.predict(x) - reference.predict(x)) <= 0.2 * noise).all()
    assert ours.score(x, y) == pytest.approx(reference.score(x, y), abs=1e-4)


def test_exact_matches_sklearn_linear_regression(fitted) -> None:
    ours, reference, x, y = fitted
    assert ours.coef_.shape == ours.stderr_.shape == (4,)
    assert isinstance(ours.intercept_, float) and isinstance(ours.intercept_stderr_, float)
    assert ours.n_features_in_ == 4 and ours.rank_ == reference.rank_ == 4
    np.testing.assert_allclose(ours.coef_, reference.coef_, **EXACT)
    assert ours.intercept_ == pytest.approx(reference.intercept_, rel=1e-10)
    np.testing.assert_allclose(ours.predict(x), reference.predict(x), **EXACT)
    assert ours.score(x, y) == pytest.approx(reference.score(x, y), rel=1e-12)


@pytest.mark.parametrize("n_targets", [1, 3], ids=["one-column", "three-columns"])
def test_two_dimensional_y_as_sklearn(n_targets: int) -> None:
    x, y = make_data(n_targets=n_targets)
    ours, reference = LinearRegressor().fit(x, y), LinearRegression().fit(x, y)
    assert ours.coef_.shape == ours.stderr_.shape == reference.coef_.shape == (n_targets, 4)
    assert ours.intercept_.shape == ours.intercept_stderr_.shape == (n_targets,)
    assert ours.predict(x).shape == (len(x), n_targets)
    np.testing.assert_allclose(ours.coef_, reference.coef_, **EXACT)
    np.testing.assert_allclose(ours.intercept_, reference.intercept_, **EXACT)
    # each target on its own: the same fit, the same standard errors
    alone = LinearRegressor().fit(x, y[:, -1])
    np.testing.assert_allclose(ours.stderr_[-1], alone.stderr_, **EXACT)
    assert ours.intercept_stderr_[-1] == pytest.approx(alone.intercept_stderr_, rel=1e-10)


def test_without_intercept_as_sklearn() -> None:
    x, y = make_data(intercept=0.0)
    ours = LinearRegressor(fit_intercept=False).fit(x, y)
    reference = LinearRegression(fit_intercept=False).fit(x, y)
    assert ours.intercept_ == reference.intercept_ == ours.intercept_stderr_ == 0.0
    assert ours.summary_.terms == ["x0", "x1", "x2", "x3"]
    np.testing.assert_allclose(ours.coef_, reference.coef_, **EXACT)


@pytest.mark.parametrize("n_targets", [None, 2], ids=["1-d-y", "two-targets"])
def test_l2_is_ridge_with_alpha_l2_n_k(n_targets: int | None) -> None:
    x, y = make_data(n_targets=n_targets)
    k = 1 if n_targets is None else n_targets
    ours = LinearRegressor(l2=0.01).fit(x, y)
    reference = Ridge(alpha=0.01 * len(x) * k).fit(x, y)  # our loss is a mean, Ridge's a sum
    np.testing.assert_allclose(ours.coef_, reference.coef_, **EXACT)
    np.testing.assert_allclose(ours.intercept_, reference.intercept_, **EXACT)
    assert np.isnan(ours.stderr_).all()  # no classical standard errors for a ridge fit
    assert "Ridge fit" in ours.summary_.table()


@pytest.mark.parametrize("name", nist.NAMES)
def test_nist_certified_values(name: str) -> None:
    data = nist.load(name)
    model = LinearRegressor(fit_intercept=data.fit_intercept).fit(data.x, data.y)
    coef, se = [*model.coef_], [*model.stderr_]  # NIST's order: the intercept first
    if data.fit_intercept:
        coef, se = [model.intercept_, *coef], [model.intercept_stderr_, *se]
    digits = [nist.lre(a, b) for a, b in zip(coef, data.coef, strict=True)]
    se_digits = [nist.lre(a, b) for a, b in zip(se, data.coef_sd, strict=True)]
    assert min(digits) >= (6 if name == "Filip" else 7), digits
    assert min(se_digits) >= 5, se_digits
    assert model.summary_.r_squared[0] == pytest.approx(data.r_squared, rel=1e-6)


def test_dependent_columns_get_zero_and_a_warning_naming_them() -> None:
    x, y = make_data()
    x = np.column_stack([x, x[:, 1], np.full(len(x), 2.0)])  # x4 duplicates x1; x5 is constant
    with pytest.warns(UserWarning, match=r"0 .*: x4 \(duplicate of x1\), x5 \(constant\)"):
        ours = LinearRegressor().fit(x, y)
    reference = LinearRegression().fit(x, y)  # minimum norm: x1's weight shared with x4
    assert (ours.coef_[4:] == 0).all() and np.isnan(ours.stderr_[4:]).all()
    assert np.isfinite(ours.stderr_[:4]).all()
    assert ours.rank_ == reference.rank_ == 4
    np.testing.assert_allclose(ours.predict(x), reference.predict(x), rtol=1e-9)
    assert "(dropped)" in ours.summary_.table()


def test_float32_columns_are_dependent_to_float32_precision() -> None:
    x = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32)
    x = np.column_stack([x, 0.3 * x[:, 0] + 1.7 * x[:, 1]]).astype(np.float32)  # rounded
    with pytest.warns(UserWarning, match=r"x2 \(linear combination of x0, x1\)"):
        model = LinearRegressor().fit(x, x[:, 0] + 2.0 * x[:, 1])
    np.testing.assert_allclose(model.coef_, [1.0, 2.0, 0.0], atol=1e-6)


def test_dependent_columns_named_as_in_a_data_frame() -> None:
    pd = pytest.importorskip("pandas")
    x, y = make_data()
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"]).assign(b2=lambda f: f.b)
    with pytest.warns(UserWarning, match=r"b2 \(duplicate of b\)"):
        ours = LinearRegressor().fit(frame, y)
    assert list(ours.feature_names_in_) == ["a", "b", "c", "d", "b2"]
    assert ours.summary_.terms == ["intercept", "a", "b", "c", "d", "b2"]


def test_sgd_matches_sklearn_linear_regression(fitted) -> None:
    _, reference, x, y = fitted
    ours = LinearRegressor(solver="sgd").fit(x, y)
    assert ours.coef_.shape == (4,) and isinstance(ours.intercept_, float)
    assert_close_fit(ours, reference, x, y)
    for name in ("summary_", "stderr_", "intercept_stderr_", "rank_"):
        assert not hasattr(ours, name)  # the exact solver's alone


def test_a_refit_with_the_other_solver_leaves_nothing_stale(fitted) -> None:
    _, _, x, y = fitted
    model = LinearRegressor().fit(x, y)
    assert hasattr(model, "summary_")
    model.set_params(solver="sgd", max_epochs=2).fit(x, y)
    assert not hasattr(model, "summary_") and not hasattr(model, "stderr_")


def test_sgd_l2_without_standardizing_is_ridge() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3))
    y = x @ [1.0, -1.0, 2.0] + 0.5 + 0.1 * rng.normal(size=200)
    ours = LinearRegressor(solver="sgd", standardize=False, l2=0.1).fit(x, y)
    reference = Ridge(alpha=0.1 * len(x)).fit(x, y)  # the module's loss is a mean, Ridge's a sum

    def objective(model: LinearRegressor | Ridge) -> float:
        return np.mean((y - model.predict(x)) ** 2) + 0.1 * np.sum(model.coef_**2)

    assert objective(ours) == pytest.approx(objective(reference), rel=1e-3)
    np.testing.assert_allclose(ours.coef_, reference.coef_, atol=1e-2)  # noise is 0.1


@pytest.mark.parametrize("solver", ["exact", "sgd"])
def test_accepts_torch_tensors(fitted, solver: str) -> None:
    _, _, x, y = fitted
    settings = {"solver": solver, "max_epochs": 5}
    from_arrays = LinearRegressor(**settings).fit(x, y)
    tensors = torch.from_numpy(x).requires_grad_(), torch.from_numpy(y)
    from_tensors = LinearRegressor(**settings).fit(*tensors)
    np.testing.assert_allclose(from_tensors.coef_, from_arrays.coef_, rtol=1e-12)
    assert isinstance(from_tensors.predict(tensors[0]), np.ndarray)


def test_works_in_a_pipeline_and_grid_search() -> None:
    x, y = make_data(n_rows=120)
    reference = LinearRegression().fit(x, y).score(x, y)
    pipeline = make_pipeline(StandardScaler(), LinearRegressor()).fit(x, y)
    assert pipeline.score(x, y) == pytest.approx(reference, rel=1e-12)
    sgd = make_pipeline(StandardScaler(), LinearRegressor(solver="sgd", max_epochs=20)).fit(x, y)
    assert sgd.score(x, y) == pytest.approx(reference, abs=1e-3)
    search = GridSearchCV(LinearRegressor(), {"l2": [0.0, 0.1]}, cv=2).fit(x, y)
    assert search.best_params_ == {"l2": 0.0}  # the data is linear: a penalty only hurts
    assert search.best_estimator_.coef_.shape == (4,)


def test_clone_and_params_round_trip() -> None:
    estimator = LinearRegressor(lr=0.01, l2=0.5, trainer_kwargs={"accelerator": "cpu"})
    copy = clone(estimator)
    assert copy is not estimator and copy.get_params() == estimator.get_params()
    assert not hasattr(copy, "coef_")
    assert copy.set_params(l1=0.2, max_epochs=3) is copy
    assert copy.get_params()["l1"] == 0.2 and copy.max_epochs == 3
    with pytest.raises(ValueError, match="Invalid parameter"):
        copy.set_params(learning_rate=0.1)
    assert is_regressor(estimator)
    assert repr(LinearRegressor(solver="sgd")) == "LinearRegressor(solver='sgd')"


def test_predict_before_fit_raises_not_fitted() -> None:
    with pytest.raises(NotFittedError, match="not fitted yet"):
        LinearRegressor().predict(np.zeros((2, 3)))


@pytest.mark.parametrize(
    ("x_shape", "y_shape", "match"),
    [
        pytest.param((10,), (10,), "Expected 2D array, got 1D array", id="1-d-X"),
        pytest.param((10, 2, 2), (10,), "Found array with dim 3", id="3-d-X"),
        pytest.param((0, 2), (0,), r"Found array with 0 sample\(s\)", id="no-rows"),
        pytest.param((10, 0), (10,), r"Found array with 0 feature\(s\)", id="no-columns"),
        pytest.param((10, 2), (9,), "inconsistent numbers of samples: \\[10, 9\\]", id="fewer-targets"),
        pytest.param((10, 2), (10, 1, 1), "Found array with dim 3", id="3-d-y"),
    ],
)  # fmt: skip
def test_bad_shapes_are_clear_value_errors(x_shape: tuple, y_shape: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LinearRegressor().fit(np.ones(x_shape), np.ones(y_shape))


@pytest.mark.parametrize(
    ("settings", "error", "match"),
    [
        pytest.param({"solver": "qr"}, ValueError, "solver must be 'exact' or 'sgd'", id="solver"),
        pytest.param({"l1": 0.1}, ValueError, "l1 needs solver='sgd'", id="exact-l1"),
        pytest.param({"l2": -1.0}, ValueError, "l2 == -1.0, must be >= 0", id="negative-l2"),
        pytest.param({"l2": np.nan}, ValueError, "l2 must be finite", id="nan-l2"),
        pytest.param({"l2": "0.1"}, TypeError, "l2 must be an instance of float", id="text-l2"),
        pytest.param({"solver": "sgd", "optimizer": "NoSuchOptimizer"}, ValueError, "torch.optim optimizer", id="optimizer"),
        pytest.param({"solver": "sgd", "lr": 0.0}, ValueError, "lr == 0.0, must be > 0", id="lr"),
        pytest.param({"solver": "sgd", "batch_size": 0}, ValueError, "batch_size == 0, must be >= 1", id="batch-size"),
        pytest.param({"solver": "sgd", "max_epochs": 0}, ValueError, "max_epochs == 0, must be >= 1", id="max-epochs"),
    ],
)  # fmt: skip
def test_bad_settings_are_clear_errors(fitted, settings: dict, error: type, match: str) -> None:
    _, _, x, y = fitted
    with pytest.raises(error, match=match):
        LinearRegressor(**settings).fit(x, y)


def test_bad_values_are_clear_errors(fitted) -> None:
    ours, _, x, y = fitted
    with pytest.raises(ValueError, match="X has 3 features, but LinearRegressor is expecting 4"):
        ours.predict(x[:, :3])
    for X, Y, match in [
        (np.where(x == x[3, 1], np.nan, x), y, "Input X contains NaN"),
        (x, np.where(y == y[3], np.inf, y), "Input y contains infinity"),
        (x + 1j, y, "Complex data not supported"),
        (x, None, "requires y to be passed, but the target y is None"),
        (np.array([["a", "b"]]), [1.0], "could not convert string to float"),
    ]:
        with pytest.raises(ValueError, match=match):
            LinearRegressor().fit(X, Y)
    numbers = LinearRegressor().fit(x.astype(object), y)  # an object array of numbers is fine
    np.testing.assert_array_equal(numbers.coef_, ours.coef_)


def test_a_diverging_sgd_fit_is_retried_then_refused(fitted) -> None:
    _, _, x, y = fitted
    with (  # 3 retries, all diverge
        pytest.warns(RuntimeWarning, match=r"trying lr (5000|500|50)\. "),
        pytest.raises(ValueError, match=r"training diverged .* also at lr 50"),
    ):
        LinearRegressor(solver="sgd", lr=5e4, momentum=0.0, max_epochs=2).fit(x, y)


def test_a_diverging_first_try_is_retried_at_a_lower_rate() -> None:
    # polynomial features: mini-batches far more curved than the whole; lr 0.05 diverges
    from sklearn.datasets import load_diabetes
    from sklearn.preprocessing import PolynomialFeatures

    x, y = load_diabetes(return_X_y=True)
    sgd = LinearRegressor(solver="sgd")
    pipeline = make_pipeline(PolynomialFeatures(2), StandardScaler(), sgd)
    with pytest.warns(RuntimeWarning, match=r"training diverged at lr 0.05 .* trying lr 0.005"):
        pipeline.fit(x, y)
    reference = make_pipeline(PolynomialFeatures(2), StandardScaler(), LinearRegressor())
    # the constant column of ones, scaled to 0, and sex², scaled: a duplicate of sex
    with pytest.warns(UserWarning, match=r"x0 \(all zero\), x21 \(duplicate of x2\)"):
        reference.fit(x, y)
    assert pipeline.score(x, y) == pytest.approx(reference.score(x, y), abs=0.02)


def test_data_without_signal_fits_the_mean() -> None:
    generator = torch.Generator().manual_seed(1)  # mini-batch noise ends a hair above the start
    x, y = torch.randn(100, 2, generator=generator), torch.randn(100, generator=generator)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model = LinearRegressor(solver="sgd").fit(x, y)
    assert np.abs(model.coef_).max() < 0.2


@pytest.mark.parametrize("solver", ["exact", "sgd"])
def test_quiet_deterministic_and_leaves_global_state(
    solver: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    x, y = make_data(n_rows=64)
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(123)
    expected_draw = torch.rand(1)
    torch.manual_seed(123)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = LinearRegressor(solver=solver, max_epochs=5).fit(x, y)
    assert torch.rand(1) == expected_draw  # the user's random stream is untouched
    assert [str(w.message) for w in caught] == []
    assert capfd.readouterr() == ("", "")  # no progress bar, summary or "GPU available" lines
    assert list(tmp_path.iterdir()) == []  # no lightning_logs, no checkpoints
    second = LinearRegressor(solver=solver, max_epochs=5).fit(x, y)
    np.testing.assert_array_equal(second.coef_, first.coef_)


def test_trainer_kwargs_reach_the_trainer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = make_data(n_rows=100)
    monkeypatch.chdir(tmp_path)
    settings = {"max_epochs": 3, "val_fraction": 0.2, "trainer_kwargs": {"logger": True}}
    LinearRegressor(solver="sgd", **settings).fit(x, y)
    series = scalars(tmp_path / "lightning_logs" / "version_0")
    assert len(series["val/mse"]) == 3  # one per epoch, on the 20 held-out rows


def test_without_scikit_learn_the_import_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import linreg

    for name in [name for name in sys.modules if name.split(".")[0] == "sklearn"]:
        monkeypatch.setitem(sys.modules, name, None)  # makes `import sklearn...` fail
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.delitem(sys.modules, "linreg.estimator")  # imported afresh by linreg's __getattr__
    with pytest.raises(ImportError, match=r'pip install "linreg\[sklearn\]"'):
        linreg.LinearRegressor  # noqa: B018
