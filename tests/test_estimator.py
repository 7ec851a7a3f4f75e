"""LinearRegressor against scikit-learn's LinearRegression, inside sklearn's tools, and alone."""

from __future__ import annotations

import importlib.util
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
from tests.conftest import scalars

SCALES = np.array([1.0, 100.0, 0.01, 10.0])
OFFSETS = np.array([0.0, 50.0, -0.03, 20.0])  # within a few scales: x = 0 is near the data


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
    """Coefficients (per standard deviation of each feature), intercept and predictions within
    a small fraction of the noise left by the exact fit; R² equal to 1e-4."""
    noise = np.std(y - reference.predict(x), axis=0)
    coef_gap = (np.abs(ours.coef_ - reference.coef_) * x.std(axis=0)).transpose()
    assert (coef_gap <= 0.1 * noise).all(), coef_gap
    assert (np.abs(np.subtract(ours.intercept_, reference.intercept_)) <= 0.2 * noise).all()
    assert (np.abs(ours.predict(x) - reference.predict(x)) <= 0.2 * noise).all()
    assert ours.score(x, y) == pytest.approx(reference.score(x, y), abs=1e-4)


def test_matches_sklearn_linear_regression(fitted) -> None:
    ours, reference, x, y = fitted
    assert ours.coef_.shape == (4,) and isinstance(ours.intercept_, float)
    assert ours.predict(x).shape == (len(x),)
    assert ours.n_features_in_ == 4
    assert_close_fit(ours, reference, x, y)


@pytest.mark.parametrize("n_targets", [1, 3], ids=["one-column", "three-columns"])
def test_two_dimensional_y_as_sklearn(n_targets: int) -> None:
    x, y = make_data(n_targets=n_targets)
    ours, reference = LinearRegressor().fit(x, y), LinearRegression().fit(x, y)
    assert ours.coef_.shape == reference.coef_.shape == (n_targets, 4)
    assert ours.intercept_.shape == reference.intercept_.shape == (n_targets,)
    assert ours.predict(x).shape == (len(x), n_targets)
    assert_close_fit(ours, reference, x, y)


def test_without_intercept_as_sklearn() -> None:
    x, y = make_data(intercept=0.0)  # offset columns: scaling them must not centre them
    ours = LinearRegressor(fit_intercept=False).fit(x, y)
    reference = LinearRegression(fit_intercept=False).fit(x, y)
    assert ours.intercept_ == reference.intercept_ == 0.0
    assert_close_fit(ours, reference, x, y)


def test_l2_without_standardizing_is_ridge() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3))
    y = x @ [1.0, -1.0, 2.0] + 0.5 + 0.1 * rng.normal(size=200)
    ours = LinearRegressor(standardize=False, l2=0.1).fit(x, y)
    reference = Ridge(alpha=0.1 * len(x)).fit(x, y)  # the module's loss is a mean, Ridge's a sum

    def objective(model: LinearRegressor | Ridge) -> float:
        return np.mean((y - model.predict(x)) ** 2) + 0.1 * np.sum(model.coef_**2)

    assert objective(ours) == pytest.approx(objective(reference), rel=1e-3)
    np.testing.assert_allclose(ours.coef_, reference.coef_, atol=1e-2)  # noise is 0.1


def test_accepts_torch_tensors(fitted) -> None:
    ours, _, x, y = fitted
    from_tensors = LinearRegressor().fit(torch.from_numpy(x), torch.from_numpy(y))
    np.testing.assert_allclose(from_tensors.coef_, ours.coef_, rtol=1e-6)
    assert isinstance(from_tensors.predict(torch.from_numpy(x)), np.ndarray)


def test_works_in_a_pipeline_and_grid_search() -> None:
    x, y = make_data(n_rows=120)
    pipeline = make_pipeline(StandardScaler(), LinearRegressor(max_epochs=20)).fit(x, y)
    assert pipeline.score(x, y) == pytest.approx(LinearRegression().fit(x, y).score(x, y), abs=1e-3)
    search = GridSearchCV(LinearRegressor(max_epochs=20), {"l2": [0.0, 0.1]}, cv=2).fit(x, y)
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


def test_predict_before_fit_raises_not_fitted() -> None:
    with pytest.raises(NotFittedError, match="not fitted yet"):
        LinearRegressor().predict(np.zeros((2, 3)))


@pytest.mark.parametrize(
    ("x_shape", "y_shape", "match"),
    [
        pytest.param((10,), (10,), "Expected a 2-D array", id="1-d-X"),
        pytest.param((10, 2, 2), (10,), "Expected a 2-D array", id="3-d-X"),
        pytest.param((0, 2), (0,), "at least one sample", id="no-rows"),
        pytest.param((10, 2), (9,), r"y must have shape \(10,\)", id="fewer-targets"),
        pytest.param((10, 2), (10, 1, 1), r"y must have shape \(10,\)", id="3-d-y"),
    ],
)
def test_bad_shapes_are_clear_value_errors(x_shape: tuple, y_shape: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LinearRegressor().fit(np.ones(x_shape), np.ones(y_shape))


def test_bad_values_and_settings_are_clear_value_errors(fitted) -> None:
    ours, _, x, y = fitted
    with pytest.raises(ValueError, match="X has 3 features, but LinearRegressor is expecting 4"):
        ours.predict(x[:, :3])
    with pytest.raises(ValueError, match="X contains NaN"):
        LinearRegressor().fit(np.where(x == x[3, 1], np.nan, x), y)
    for settings, match in [
        ({"optimizer": "NoSuchOptimizer"}, "torch.optim optimizer"),
        ({"lr": 0.0}, "lr must be a positive number"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"max_epochs": 0}, "max_epochs must be a positive integer"),
    ]:
        with pytest.raises(ValueError, match=match):
            LinearRegressor(**settings).fit(x, y)
    with (  # 3 retries, all diverge
        pytest.warns(RuntimeWarning, match="trying lr 5000"),
        pytest.raises(ValueError, match=r"training diverged .* also at lr 50"),
    ):
        LinearRegressor(lr=5e4, momentum=0.0, max_epochs=2).fit(x, y)
    for X, Y, match in [
        (x + 1j, y, "complex values are not supported"),
        (x, None, "expected an array, got None"),
        (np.array([["a", "b"]]), [1.0], "expected numbers"),
    ]:
        with pytest.raises(ValueError, match=match):
            LinearRegressor().fit(X, Y)


def test_a_diverging_first_try_is_retried_at_a_lower_rate() -> None:
    # polynomial features: mini-batches far more curved than the whole; lr 0.05 diverges
    from sklearn.datasets import load_diabetes
    from sklearn.preprocessing import PolynomialFeatures

    x, y = load_diabetes(return_X_y=True)
    pipeline = make_pipeline(PolynomialFeatures(2), StandardScaler(), LinearRegressor())
    with pytest.warns(RuntimeWarning, match=r"training diverged at lr 0.05 .* trying lr 0.005"):
        pipeline.fit(x, y)
    reference = make_pipeline(PolynomialFeatures(2), StandardScaler(), LinearRegression())
    assert pipeline.score(x, y) == pytest.approx(reference.fit(x, y).score(x, y), abs=0.02)


def test_data_without_signal_fits_the_mean() -> None:
    generator = torch.Generator().manual_seed(1)  # mini-batch noise ends a hair above the start
    x, y = torch.randn(100, 2, generator=generator), torch.randn(100, generator=generator)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model = LinearRegressor().fit(x, y)
    assert np.abs(model.coef_).max() < 0.2


def test_quiet_deterministic_and_leaves_global_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    x, y = make_data(n_rows=64)
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(123)
    expected_draw = torch.rand(1)
    torch.manual_seed(123)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = LinearRegressor(max_epochs=5).fit(x, y)
    assert torch.rand(1) == expected_draw  # the user's random stream is untouched
    assert [str(w.message) for w in caught] == []
    assert capfd.readouterr() == ("", "")  # no progress bar, summary or "GPU available" lines
    assert list(tmp_path.iterdir()) == []  # no lightning_logs, no checkpoints
    np.testing.assert_array_equal(LinearRegressor(max_epochs=5).fit(x, y).coef_, first.coef_)


def test_trainer_kwargs_reach_the_trainer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = make_data(n_rows=100)
    monkeypatch.chdir(tmp_path)
    LinearRegressor(max_epochs=3, val_fraction=0.2, trainer_kwargs={"logger": True}).fit(x, y)
    series = scalars(tmp_path / "lightning_logs" / "version_0")
    assert len(series["val/mse"]) == 3  # one per epoch, on the 20 held-out rows


def test_works_without_scikit_learn(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh copy of the module, imported while scikit-learn cannot be, uses its stand-ins."""
    for name in ("sklearn", "sklearn.base", "sklearn.exceptions"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import sklearn...` fail
    spec = importlib.util.spec_from_file_location("estimator_without_sklearn", _estimator_path())
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.BaseEstimator is module._ParamsBase

    estimator = module.LinearRegressor(max_epochs=20, l2=0.0)
    with pytest.raises(module.NotFittedError) as not_fitted:
        estimator.predict(np.zeros((1, 4)))
    assert isinstance(not_fitted.value, ValueError) and isinstance(not_fitted.value, AttributeError)
    assert estimator.set_params(lr=0.04) is estimator and estimator.get_params()["lr"] == 0.04
    with pytest.raises(ValueError, match="Invalid parameter"):
        estimator.set_params(alpha=1.0)
    x, y = make_data(n_rows=100)
    reference = LinearRegression().fit(x, y)
    assert estimator.fit(x, y).score(x, y) == pytest.approx(reference.score(x, y), abs=1e-3)


def _estimator_path() -> str:
    import linreg.estimator

    return str(linreg.estimator.__file__)
