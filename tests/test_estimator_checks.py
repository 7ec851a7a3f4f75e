"""scikit-learn's own estimator checks, for both solvers of LinearRegressor."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from linreg.estimator import LinearRegressor

ESTIMATORS = [
    LinearRegressor(),
    # The checks' data is small (up to 200 rows): 10 epochs of batches of 64 rows fit in about
    # 0.1 s, score R² > 0.5 on their regression data (check_regressors_train asks it) and end
    # below the starting MSE on their pure-noise data (no retry warning).
    LinearRegressor(solver="sgd", batch_size=64, max_epochs=10),
]


@parametrize_with_checks(ESTIMATORS)
def test_scikit_learn_estimator_checks(estimator, check) -> None:
    check(estimator)
