"""LeastSquares through the real command: NIST's certified digits, the summary, rank, DDP."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LinearRegression as SklearnLinearRegression

from tests.conftest import load_checkpoint, run_linreg, scalars
from tests.nist import NAMES, load, lre

EXACT = ("--model", "linreg.LeastSquares", "--trainer.enable_progress_bar", "false")


def _write_csv(path: Path, header: list[str], rows: np.ndarray) -> None:
    """Full float64 precision (repr), as a careful user's export would be."""
    lines = [",".join(header)] + [",".join(repr(float(v)) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def _summary(run_dir: Path) -> tuple[list[dict[str, str]], dict]:
    with open(run_dir / "summary.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    return rows, json.loads((run_dir / "summary.json").read_text())


@pytest.mark.parametrize("name", NAMES)
def test_nist_certified_values_through_the_command(run_main, tmp_path: Path, name: str) -> None:
    data = load(name)
    columns = [f"x{i + 1}" for i in range(data.x.shape[1])]  # a polynomial as x, x², ...
    _write_csv(tmp_path / f"{name}.csv", [*columns, "y"], np.column_stack([data.x, data.y]))
    no_intercept = (
        []
        if data.fit_intercept
        else ["--model.fit_intercept", "false", "--data.normalize", "false"]
    )
    code, stderr = run_main(
        "fit", *EXACT, "--data", "linreg.FileDataModule", "--data.path", f"{name}.csv",
        "--data.val_fraction", "0", "--data.test_fraction", "0", *no_intercept,
    )  # fmt: skip
    assert code == 0, stderr
    rows, summary = _summary(tmp_path / "lightning_logs" / "version_0")
    assert [row["term"] for row in rows] == (["intercept"] if data.fit_intercept else []) + columns
    coefficients = [lre(float(row["coef"]), c) for row, c in zip(rows, data.coef, strict=True)]
    deviations = [lre(float(row["std_err"]), c) for row, c in zip(rows, data.coef_sd, strict=True)]
    figures = summary["targets"][0]
    assert min(coefficients) >= (6 if name == "Filip" else 7), coefficients
    assert min(deviations) >= 5, deviations
    assert lre(figures["residual_std_err"], data.residual_sd) >= 5
    assert lre(figures["r_squared"], data.r_squared) >= 5
    assert summary["n"] == len(data.y) and summary["df_resid"] == len(data.y) - len(data.coef)


@pytest.fixture(scope="module")
def diabetes_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, str, np.ndarray, np.ndarray]:
    """scikit-learn's diabetes data (shipped with it, no download) solved by the command."""
    from sklearn.datasets import load_diabetes

    folder = tmp_path_factory.mktemp("diabetes")
    bunch = load_diabetes()
    x, y = bunch.data, bunch.target
    _write_csv(folder / "diabetes.csv", [*bunch.feature_names, "target"], np.column_stack([x, y]))
    result = run_linreg("fit", *EXACT, "--data", "linreg.FileDataModule", "--data.path",
                        "diabetes.csv", "--data.val_fraction", "0", "--data.test_fraction", "0",
                        cwd=folder)  # fmt: skip
    return folder / "lightning_logs" / "version_0", result.stdout, x, y


@pytest.mark.slow
def test_the_summary_matches_scikit_learn_and_is_printed_saved_and_logged(diabetes_run) -> None:
    run_dir, stdout, x, y = diabetes_run
    rows, summary = _summary(run_dir)
    reference = SklearnLinearRegression().fit(x, y)
    coef = np.array([float(row["coef"]) for row in rows])
    np.testing.assert_allclose(coef, [reference.intercept_, *reference.coef_], rtol=1e-9)
    assert summary["targets"][0]["r_squared"] == pytest.approx(reference.score(x, y), rel=1e-12)
    assert round(summary["targets"][0]["r_squared"], 4) == 0.5177  # the README's figure
    assert "Least squares: target" in stdout and "bmi" in stdout and "R-squared" in stdout
    assert f"summary: {run_dir.relative_to(run_dir.parents[1]).as_posix()}" in stdout.replace(
        "./", ""
    )
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    events.Reload()
    assert "summary/text_summary" in events.Tags()["tensors"]
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert checkpoint["state_dict"]["linear.weight"].dtype == torch.float64
    assert checkpoint["epoch"] == 0 and checkpoint["global_step"] == 1  # one pass, one step
    assert "val/mse" not in scalars(run_dir)  # no validation split asked for


@pytest.mark.slow
def test_a_solved_model_predicts_like_the_summary_says(linreg, diabetes_run) -> None:
    run_dir, _, x, y = diabetes_run
    folder = run_dir.parents[1]
    linreg("predict", "--ckpt_path", "last", "--data.path", "diabetes.csv", "--predictions",
               "fitted.csv", "--trainer.enable_progress_bar", "false", cwd=folder)  # fmt: skip
    predicted = np.loadtxt(folder / "fitted.csv", delimiter=",", skiprows=1)
    reference = SklearnLinearRegression().fit(x, y).predict(x)
    np.testing.assert_allclose(predicted, reference, rtol=1e-8)  # written with 9 digits


@pytest.mark.parametrize(
    ("make", "note"),
    [
        (lambda x: np.column_stack([x, np.full(len(x), 4.0)]), "column 'c' is constant: its weight is not identifiable"),
        (lambda x: np.column_stack([x, x[:, 0]]), "column 'c' is duplicate of a"),
        (lambda x: np.column_stack([x, 2 * x[:, 0] - x[:, 1]]), "column 'c' is linear combination of a, b"),
    ],
    ids=["constant", "duplicate", "collinear"],
)  # fmt: skip
def test_dependent_columns_are_named_and_left_out(
    run_main, tmp_path: Path, make, note: str
) -> None:
    x = np.random.default_rng(0).normal(size=(50, 2))
    table = np.column_stack([make(x), x @ [1.5, -2.0] + 0.3])
    _write_csv(tmp_path / "d.csv", ["a", "b", "c", "y"], table)
    code, stderr = run_main("fit", *EXACT, "--data", "linreg.FileDataModule", "--data.path",
                            "d.csv", "--data.val_fraction", "0", "--data.test_fraction", "0")  # fmt: skip
    assert code == 0, stderr
    assert f"linreg: note: {note}" in stderr
    rows, summary = _summary(tmp_path / "lightning_logs" / "version_0")
    by_term = {row["term"]: row for row in rows}
    assert float(by_term["c"]["coef"]) == 0 and by_term["c"]["std_err"] == ""
    assert summary["dropped"][0]["term"] == "c"
    assert summary["targets"][0]["r_squared"] == pytest.approx(1.0, abs=1e-12)  # still exact


@pytest.mark.slow
@pytest.mark.ddp
def test_two_processes_give_the_answer_of_one(linreg, tmp_path: Path) -> None:
    from tests.nist import load as nist

    data = nist("Longley")
    _write_csv(tmp_path / "longley.csv", [f"x{i}" for i in range(1, 7)] + ["y"],
               np.column_stack([data.x, data.y]))  # fmt: skip
    common = ("fit", *EXACT, "--data", "linreg.FileDataModule", "--data.path", "longley.csv",
              "--data.val_fraction", "0", "--data.test_fraction", "0")  # fmt: skip
    linreg(*common, "--trainer.accelerator", "cpu", "--trainer.devices", "2",
               "--trainer.strategy", "ddp", cwd=tmp_path)  # fmt: skip
    rows, _ = _summary(tmp_path / "lightning_logs" / "version_0")
    coefficients = [lre(float(row["coef"]), c) for row, c in zip(rows, data.coef, strict=True)]
    assert min(coefficients) >= 7, coefficients  # each process saw half: the merge is exact


@pytest.mark.parametrize("normalize", ["true", "false"], ids=["standardized", "raw"])
def test_ridge_penalizes_the_weights_the_model_trains(
    run_main, tmp_path: Path, normalize: str
) -> None:
    """l2 weighs the standardized weights when the data is standardized, as SGD's penalty does:
    scikit-learn's Ridge after (or without) a StandardScaler, alpha = l2·n (a mean, not a sum)."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)) * [1.0, 10.0, 0.01]
    y = x @ [1.0, -0.5, 40.0] + 2.0 + 0.1 * rng.normal(size=200)
    _write_csv(tmp_path / "ridge.csv", ["a", "b", "c", "y"], np.column_stack([x, y]))
    code, stderr = run_main("fit", "--model", "linreg.LeastSquares", "--model.l2", "0.1",
                            "--data", "linreg.FileDataModule", "--data.path", "ridge.csv",
                            "--data.normalize", normalize, "--data.val_fraction", "0",
                            "--data.test_fraction", "0", "--trainer.enable_progress_bar",
                            "false")  # fmt: skip
    assert code == 0, stderr
    rows, _ = _summary(tmp_path / "lightning_logs" / "version_0")
    coef = {row["term"]: float(row["coef"]) for row in rows}
    ridge = Ridge(alpha=0.1 * len(x), solver="svd")
    model = make_pipeline(StandardScaler(), ridge) if normalize == "true" else ridge
    model.fit(x, y)
    scale = model[0].scale_ if normalize == "true" else np.ones(3)
    expected = ridge.coef_ / scale
    assert [coef[name] for name in "abc"] == pytest.approx(expected, rel=1e-9)
    intercept = (
        ridge.intercept_ - (model[0].mean_ / scale) @ ridge.coef_
        if normalize == "true"
        else ridge.intercept_
    )
    assert coef["intercept"] == pytest.approx(intercept, rel=1e-9)
