"""The example scripts: their classes in-process, each run as a script and by ``linreg fit``."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F
import yaml
from lightning.pytorch import Trainer

from linreg.errors import UserInputError
from tests.conftest import REPO, load_checkpoint, run_linreg, scalars

SCRIPTS = REPO / "scripts"
QUIET = ("--trainer.enable_progress_bar", "false")


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch):
    """``example("custom_data")`` imports a script from ``scripts/`` as a module."""
    monkeypatch.syspath_prepend(str(SCRIPTS))

    def load(name: str) -> ModuleType:
        return importlib.import_module(name)

    return load


def quick_trainer(epochs: int) -> Trainer:
    return Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


# -- the classes, in-process --------------------------------------------------------------------


def test_polynomial_model_expands_its_inputs(example) -> None:
    polynomial = example("polynomial_regression")
    model = polynomial.PolynomialRegression(in_features=2, degree=3)
    x = torch.tensor([[2.0, -1.0]])
    assert model.linear.in_features == 6 and model.hparams.in_features == 2
    assert torch.equal(model.features(x), torch.tensor([[2.0, -1.0, 4.0, 1.0, 8.0, -1.0]]))
    assert model(x).shape == (1, 1)
    with pytest.raises(UserInputError, match="degree must be at least 1"):
        polynomial.PolynomialRegression(degree=0)


def test_polynomial_model_learns_the_curve(example) -> None:
    polynomial = example("polynomial_regression")
    data = polynomial.QuadraticDataModule(n_samples=500)
    model = polynomial.PolynomialRegression(in_features=data.num_features)
    quick_trainer(epochs=8).fit(model, data)
    assert torch.allclose(model.linear.weight, data.true_weight, atol=0.05)  # [[-1, 2]]
    assert torch.allclose(model.linear.bias, data.true_bias, atol=0.05)  # [0.5]
    x, y = data.datasets["val"][:]
    assert F.mse_loss(model(x), y) < 2 * 0.05**2  # the noise's variance, about


def test_logistic_metrics_see_probabilities_not_logits(example) -> None:
    logistic = example("logistic_regression")
    model = logistic.LogisticRegression(in_features=1)
    with torch.no_grad():
        model.linear.weight.fill_(1.0)
        model.linear.bias.zero_()
    # Logits 0.3 and 0.7 both mean class 1 (probabilities 0.57 and 0.67): one of two right.
    # Read as probabilities, as torchmetrics would read values inside [0, 1], both would be right.
    x, y = torch.tensor([[0.3], [0.7]]), torch.tensor([[0.0], [1.0]])
    model.validation_step((x, y), 0)
    assert model.val_metrics.compute()["val/accuracy"] == 0.5
    probabilities = model.predict_step((x,), 0)
    assert torch.allclose(probabilities, torch.sigmoid(x))
    assert torch.isclose(model.loss(model(x), y), F.binary_cross_entropy_with_logits(x, y))


def test_two_class_data_has_two_separated_classes(example) -> None:
    logistic = example("logistic_regression")
    data = logistic.TwoClassDataModule(n_samples=2000, n_features=3, separation=4.0)
    x, y = data.load_arrays()
    assert x.shape == (2000, 3) and y.shape == (2000, 1) and y.dtype == torch.float32
    assert set(y.unique().tolist()) == {0.0, 1.0} and 0.45 < y.mean() < 0.55
    centres = x[y[:, 0] == 1].mean(dim=0) - x[y[:, 0] == 0].mean(dim=0)
    assert centres.norm() == pytest.approx(4.0, abs=0.2)


def test_saved_tensors_data_module_reads_a_saved_dict(example, tmp_path: Path) -> None:
    custom = example("custom_data")
    path = tmp_path / "data.pt"
    torch.save({"features": torch.randn(50, 2), "targets": torch.randn(50, 2)}, path)
    data = custom.SavedTensorsDataModule(str(path), x_key="features", y_key="targets")
    assert (data.num_features, data.num_targets) == (2, 2)
    assert data.load_arrays()[0].shape == (50, 2)
    with pytest.raises(UserInputError, match="must hold a dict with the keys 'x' and 'y'"):
        _ = custom.SavedTensorsDataModule(str(path)).num_features
    torch.save({"x": Path("not a tensor"), "y": torch.zeros(2)}, tmp_path / "unsafe.pt")
    with pytest.raises(UserInputError, match=r"cannot read tensors from .*unsafe\.pt"):
        _ = custom.SavedTensorsDataModule(str(tmp_path / "unsafe.pt")).num_features


# -- each script as a script --------------------------------------------------------------------

NUMBER = r"(-?\d+\.\d+)"


def run_script(name: str, *args: str, cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / name), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


@pytest.mark.slow
def test_polynomial_script_prints_the_learned_curve(tmp_path: Path) -> None:
    stdout = run_script("polynomial_regression.py", "--epochs", "3", cwd=tmp_path)
    match = re.search(rf"learned: y = {NUMBER} - {NUMBER}·x \+ {NUMBER}·x\^2", stdout)
    assert match, stdout[-2000:]
    assert [float(v) for v in match.groups()] == pytest.approx([0.5, 1.0, 2.0], abs=0.05)
    assert list(tmp_path.iterdir()) == []  # no logs or checkpoints from the script


@pytest.mark.slow
def test_logistic_script_prints_a_high_accuracy(tmp_path: Path) -> None:
    stdout = run_script("logistic_regression.py", "--epochs", "3", cwd=tmp_path)
    match = re.search(rf"test accuracy {NUMBER} \(best possible {NUMBER}\), AUROC {NUMBER}", stdout)
    assert match, stdout[-2000:]
    accuracy, best, auroc = (float(v) for v in match.groups())
    assert accuracy > best - 0.05 and auroc > 0.98


@pytest.mark.slow
def test_custom_data_script_recovers_the_weights_and_saves_them(tmp_path: Path) -> None:
    stdout = run_script("custom_data.py", "--epochs", "3", "--save", "data.pt", cwd=tmp_path)
    match = re.search(rf"learned weight: \[{NUMBER}, {NUMBER}, {NUMBER}\], bias: {NUMBER}", stdout)
    assert match, stdout[-2000:]
    assert [float(v) for v in match.groups()] == pytest.approx([2.0, -1.0, 0.5, 1.0], abs=0.02)
    saved = torch.load(tmp_path / "data.pt", weights_only=True)
    assert saved["x"].shape == (2000, 3) and saved["y"].shape == (2000,)


# -- through the real `linreg fit` --------------------------------------------------------------


def linreg_with_scripts(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``linreg`` with ``scripts/`` importable, as the scripts' docstrings say to run it."""
    path = os.pathsep.join(p for p in (str(SCRIPTS), os.environ.get("PYTHONPATH")) if p)
    return run_linreg(*args, cwd=cwd, env={"PYTHONPATH": path})


@pytest.mark.slow
def test_polynomial_regression_through_the_cli(tmp_path: Path, example) -> None:
    result = linreg_with_scripts(
        "fit", *QUIET, "--trainer.max_epochs", "5",
        "--model", "polynomial_regression.PolynomialRegression",
        "--data", "polynomial_regression.QuadraticDataModule", "--data.noise", "0.05",
        cwd=tmp_path,
    )  # fmt: skip
    assert "true weight:    -1, 2" in result.stdout
    run_dir = tmp_path / "lightning_logs" / "version_0"
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    hparams = checkpoint["hyper_parameters"]
    assert hparams["_class_path"] == "polynomial_regression.PolynomialRegression"
    assert hparams["degree"] == 2 and hparams["in_features"] == 1
    data_hparams = checkpoint["datamodule_hyper_parameters"]
    assert data_hparams["_class_path"] == "polynomial_regression.QuadraticDataModule"
    assert data_hparams["noise"] == 0.05
    state = checkpoint["state_dict"]
    assert state["linear.weight"].tolist()[0] == pytest.approx([-1.0, 2.0], abs=0.05)
    assert state["linear.bias"].item() == pytest.approx(0.5, abs=0.05)
    # The checkpoint predicts from raw x: the expansion is part of the model.
    polynomial = example("polynomial_regression")
    model = polynomial.PolynomialRegression.load_from_checkpoint(
        run_dir / "checkpoints" / "last.ckpt", weights_only=True
    )
    assert model(torch.tensor([[0.5]])).item() == pytest.approx(0.5 - 0.5 + 0.5, abs=0.05)
    assert (run_dir / "fit.png").is_file()


@pytest.mark.slow
def test_logistic_regression_through_the_cli(tmp_path: Path) -> None:
    linreg_with_scripts(
        "fit", *QUIET, "--trainer.max_epochs", "5",
        "--model", "logistic_regression.LogisticRegression",
        "--data", "logistic_regression.TwoClassDataModule", "--data.n_features", "2",
        cwd=tmp_path,
    )  # fmt: skip
    run_dir = tmp_path / "lightning_logs" / "version_0"
    series = scalars(run_dir)
    assert series["val/accuracy"][-1][1] > 0.95  # the best possible is 0.977
    assert series["val/auroc"][-1][1] > 0.98
    assert "optimum/mse" not in series  # OptimumGap stood aside: the loss is not least squares
    best = load_checkpoint(
        run_dir / "checkpoints" / "best.ckpt"
    )  # kept by val/mse, the Brier score
    assert best["hyper_parameters"]["_class_path"] == "logistic_regression.LogisticRegression"
    assert best["state_dict"]["linear.weight"].shape == (1, 2)


@pytest.mark.slow
def test_saved_tensors_through_the_cli(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 3, generator=generator)
    torch.save({"x": x, "y": x @ torch.tensor([2.0, -1.0, 0.5]) + 1.0}, tmp_path / "mine.pt")
    linreg_with_scripts(
        "fit", *QUIET, "--trainer.max_epochs", "5",
        "--data", "custom_data.SavedTensorsDataModule", "--data.path", "mine.pt",
        cwd=tmp_path,
    )  # fmt: skip
    run_dir = tmp_path / "lightning_logs" / "version_0"
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert checkpoint["datamodule_hyper_parameters"]["path"] == "mine.pt"
    assert checkpoint["hyper_parameters"]["in_features"] == 3  # linked from the file's columns
    weight = checkpoint["state_dict"]["linear.weight"]
    assert weight.tolist()[0] == pytest.approx([2.0, -1.0, 0.5], abs=1e-3)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["data"]["class_path"] == "custom_data.SavedTensorsDataModule"
