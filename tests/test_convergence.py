"""Defaults that reach the answer: the data's learning rate, train until converged, or say why not."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from linreg.learning_rate import Curvature, choose, steps_needed
from tests.conftest import scalars
from tests.nist import load

pytestmark = pytest.mark.slow


def _write_csv(path: Path, header: list[str], rows: np.ndarray) -> None:
    lines = [",".join(header)] + [",".join(repr(float(v)) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def _diabetes(folder: Path) -> list[str]:
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    _write_csv(
        folder / "diabetes.csv",
        [*data.feature_names, "target"],
        np.column_stack([data.data, data.target]),
    )
    return ["--data.path", "diabetes.csv", "--data.target", "target"]


def _linnerud(folder: Path) -> list[str]:
    from sklearn.datasets import load_linnerud

    data = load_linnerud()
    table = np.column_stack([data.data, data.target])
    _write_csv(folder / "linnerud.csv", [*data.feature_names, *data.target_names], table)
    return ["--data.path", "linnerud.csv", "--data.target", f"[{', '.join(data.target_names)}]"]


def _nist(name: str) -> callable:
    def make(folder: Path) -> list[str]:
        data = load(name)
        header = [f"x{i + 1}" for i in range(data.x.shape[1])] + ["y"]
        _write_csv(folder / f"{name}.csv", header, np.column_stack([data.x, data.y]))
        return ["--data.path", f"{name}.csv", "--data.target", "y"]

    return make


def _correlated(folder: Path) -> list[str]:
    """20 correlated features (condition number about 1e3 after standardizing), some noise."""
    rng = np.random.default_rng(0)
    n, d = 1000, 20
    x = rng.normal(size=(n, d)) * np.logspace(0, -2.4, d) + rng.normal(size=(n, 1))
    x = x @ np.linalg.qr(rng.normal(size=(d, d)))[0]
    standardized = np.column_stack([np.ones(n), (x - x.mean(0)) / x.std(0)])
    assert 5e2 < np.linalg.cond(standardized) < 5e3
    y = x @ rng.normal(size=d) + 0.5 + 0.1 * rng.normal(size=n)
    _write_csv(
        folder / "correlated.csv", [f"x{i}" for i in range(d)] + ["y"], np.column_stack([x, y])
    )
    return ["--data.path", "correlated.csv", "--data.target", "y"]


TABLES = {
    "diabetes": _diabetes,
    "linnerud": _linnerud,
    "norris": _nist("Norris"),
    "pontius": _nist("Pontius"),
    "correlated-20": _correlated,
}


@pytest.mark.parametrize("make", TABLES.values(), ids=TABLES.keys())
def test_pure_defaults_reach_the_exact_optimum(run_main, tmp_path: Path, make) -> None:
    options = make(tmp_path)
    code, stderr = run_main("fit", "--data", "linreg.FileDataModule", *options,
                            "--trainer.enable_progress_bar", "false")  # fmt: skip
    assert code == 0, stderr
    assert "from the data's largest curvature" in stderr  # the learning rate, said
    relative = scalars(tmp_path / "lightning_logs" / "version_0")["optimum/relative_excess"]
    assert relative[-1][1] <= 1e-6, relative[-5:]


def test_the_default_line_converges_in_a_few_epochs(run_main, tmp_path: Path) -> None:
    code, stderr = run_main("fit", "--trainer.enable_progress_bar", "false")
    assert code == 0, stderr
    series = scalars(tmp_path / "lightning_logs" / "version_0")
    assert series["optimum/relative_excess"][-1][1] <= 1e-6
    assert len(series["val/mse"]) < 10  # stopped once converged, far below the 1000-epoch cap


@pytest.mark.parametrize("normalize", ["true", "false"], ids=["standardized", "raw"])
def test_dependent_columns_are_named_and_do_not_derail_training(
    run_main, tmp_path: Path, normalize: str
) -> None:
    """A constant column (k = 4) and a duplicate (a2 = a) beside y = a + 2b + 0.5."""
    x = np.random.default_rng(0).uniform(size=(200, 2))
    table = np.column_stack([x, np.full(200, 4.0), x[:, 0], x @ [1.0, 2.0] + 0.5])
    _write_csv(tmp_path / "dependent.csv", ["a", "b", "k", "a2", "y"], table)
    code, stderr = run_main("fit", "--data", "linreg.FileDataModule", "--data.path",
                            "dependent.csv", "--data.normalize", normalize,
                            "--trainer.enable_progress_bar", "false")  # fmt: skip
    assert code == 0, stderr  # raw columns: the constant's curvature (2·4²) sets the rate
    assert (
        "linreg: note: columns k (constant), a2 (duplicate of a) are not identifiable: gradient "
        "descent gives them some of many values" in stderr
    )
    stdout = run_main.stdout
    assert "converged after" in stdout
    assert "(not identifiable, one of many equally good values: k (constant), a2 (duplicate" in (
        stdout
    )
    weights = next(line for line in stdout.splitlines() if "learned weight" in line)
    w_a, w_b, w_k, w_a2 = (float(v) for v in weights.split(":")[1].split(","))
    bias = float(next(line for line in stdout.splitlines() if "learned bias" in line).split()[-1])
    assert w_a + w_a2 == pytest.approx(1.0, abs=1e-4) and w_b == pytest.approx(2.0, abs=1e-4)
    assert bias + 4 * w_k == pytest.approx(0.5, abs=1e-4)  # the constant and the bias share
    if normalize == "true":  # standardized, the constant is all zero: its weight is no value
        assert w_k == 0 and bias == pytest.approx(0.5, abs=1e-4)


def test_one_tolerance_sets_the_stop_and_the_verdict(run_main, tmp_path: Path) -> None:
    code, stderr = run_main("fit", "--optimum_gap.rtol", "0.01", "--model.optimizer.lr", "0.01",
                            "--trainer.enable_progress_bar", "false")  # fmt: skip
    assert code == 0, stderr
    relative = scalars(tmp_path / "lightning_logs" / "version_0")["optimum/relative_excess"]
    assert relative[-1][1] <= 0.01 < relative[-2][1]  # stopped at the first epoch within 1 %
    assert "the training objective is within 0.01 of the exact optimum's" in run_main.stdout
    code, stderr = run_main("fit", "--convergence.rtol", "0.01")
    assert code == 2 and "Convergence has no option 'rtol'" in stderr


@pytest.mark.parametrize("name", ["Longley", "Filip"])
def test_ill_conditioned_data_is_said_to_be_out_of_reach(
    run_main, tmp_path: Path, capsys, name: str
) -> None:
    options = _nist(name)(tmp_path)
    code, stderr = run_main("fit", "--data", "linreg.FileDataModule", *options,
                            "--trainer.max_epochs", "20", "--trainer.enable_progress_bar", "false")  # fmt: skip
    assert code == 0, stderr
    stdout = run_main.stdout
    assert "For the exact answer use --model linreg.LeastSquares" in stderr  # before training
    assert "not converged: stopped at the epoch cap after 20 epochs" in stdout  # and after
    assert "(these are where SGD stopped, not the least-squares coefficients)" in stdout


def test_an_explicit_epoch_count_means_exactly_that_many(run_main, tmp_path: Path) -> None:
    code, stderr = run_main(
        "fit", "--trainer.max_epochs", "7", "--trainer.enable_progress_bar", "false"
    )
    assert code == 0, stderr
    assert len(scalars(tmp_path / "lightning_logs" / "version_0")["val/mse"]) == 7


@pytest.mark.parametrize("scale", [1e-12, 1.0, 1e12], ids=["tiny-units", "plain", "huge-units"])
def test_a_columns_units_change_nothing(run_main, tmp_path: Path, scale: float) -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(200, 3))
    y = x @ [1.0, -2.0, 0.5] + 0.3 + 0.01 * rng.normal(size=200)
    x[:, 1] *= scale  # e.g. farads: values around 1e-12
    _write_csv(tmp_path / "units.csv", ["a", "b", "c", "y"], np.column_stack([x, y]))
    code, stderr = run_main("fit", "--data", "linreg.FileDataModule", "--data.path", "units.csv",
                            "--trainer.enable_progress_bar", "false")  # fmt: skip
    assert code == 0, stderr
    series = scalars(tmp_path / "lightning_logs" / "version_0")
    assert series["optimum/relative_excess"][-1][1] <= 1e-6
    assert series["val/r2"][-1][1] == pytest.approx(0.9999, abs=1e-3)


def test_adaptive_optimizers_get_a_rate_that_converges(run_main, tmp_path: Path) -> None:
    for number, optimizer in enumerate(["Adam", "Adagrad", "RMSprop"]):
        code, stderr = run_main(
            "fit", "--model.optimizer", optimizer, "--trainer.enable_progress_bar", "false"
        )
        assert code == 0, stderr
        relative = scalars(tmp_path / "lightning_logs" / f"version_{number}")[
            "optimum/relative_excess"
        ]
        assert relative[-1][1] <= 1e-6, optimizer


def test_the_rules_themselves() -> None:
    curvature = Curvature(largest=2.5, smallest=0.13, row=4.0, rows=800, scale=3.0)
    full = choose("SGD", curvature, 800, None)
    assert full is not None and full.nesterov and full.lr == pytest.approx(1 / 2.5)
    assert full.momentum == pytest.approx((math.sqrt(2.5 / 0.13) - 1) / (math.sqrt(2.5 / 0.13) + 1))
    one_row = choose("SGD", curvature, 1, 0.0)  # a single row is the most curved batch there is
    assert one_row is not None and one_row.lr == pytest.approx(1 / 4.0)
    assert choose("Adam", curvature, 32, None).lr == pytest.approx(0.05 * 3.0)
    assert choose("LBFGS", curvature, 32, None) is None  # no rule: the caller falls back
    plain = choose("SGD", curvature, 32, 0.0)
    assert steps_needed(full, full.momentum, curvature, 800, 1e12) < steps_needed(
        plain, 0.0, curvature, 800, 1e12
    )
    diverging = type(plain)(lr=1.0, momentum=None, reason="")  # lr·λmax = 2.5 > 2
    assert steps_needed(diverging, 0.0, curvature, 800, 1e12) == math.inf
