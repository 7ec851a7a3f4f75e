"""Checks before a run: a mistake in the options is one line, before anything is written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data.batch_size", "0"], "batch_size must be a positive integer"),
        (["--data.val_fraction", "1.5"], r"val_fraction must be in \[0, 1\)"),
        (["--data.val_fraction", "0.6", "--data.test_fraction", "0.5"], "must be below 1"),
        (["--data.n_samples", "3"], "too few for val_fraction"),
        (["--model.optimizer", "torch.optim.NoSuchOptimizer"], "--model.optimizer"),
        (["--model.l2", "-0.1"], "l2 is a penalty weight and must be >= 0"),
        (["--data.n_features", "2", "--data.weight", "[1.0, 2.0, 3.0]"], "weight has 3 values"),
        (["--trainer.max_epochs", "many"], "--trainer.max_epochs: expected int, got 'many'"),
        (["--trainer.max_epochs", "-2"], "`max_epochs` must be a non-negative integer or -1"),
        (["--model.optimizer.lr", "-1"], "--model.optimizer: Invalid learning rate: -1"),
        (["--model.optimizer", "Foo"], "--model.optimizer: unknown class 'Foo': give a class name"),
        (
            [
                "--data.val_fraction",
                "0",
                "--model.lr_scheduler",
                "torch.optim.lr_scheduler.ReduceLROnPlateau",
            ],
            "ReduceLROnPlateau watches val/mse, but there is no validation split",
        ),
        (["--data.n_samples", "0"], "n_samples must be at least 1, got 0"),
        (["--model.lr_scheduler", "StepLR"], "StepLR needs --model.lr_scheduler.step_size VALUE"),
        (["--model.optimizer", "SparseAdam"], "SparseAdam does not support dense gradients"),
        (["--data.noise", "1e39"], "whose squares overflow float32"),
        (
            ["--data.path", "houses.csv"],
            "no option 'path'; to train on a file, add --data linreg.FileDataModule",
        ),
    ],
    ids=[
        "batch-size",
        "fraction-range",
        "fraction-sum",
        "too-few-rows",
        "unknown-optimizer",
        "negative-l2",
        "weight-length",
        "not-a-number",
        "lightning-refuses",
        "negative-lr",
        "unknown-class-name",
        "plateau-without-validation",
        "no-samples",
        "scheduler-argument-missing",
        "optimizer-without-dense-gradients",
        "targets-beyond-float32",
        "file-option-on-synthetic-data",
    ],
)
def test_config_errors_fail_before_any_work(
    args: list[str], message: str, tmp_path: Path, run_main
) -> None:
    code, stderr = run_main("fit", *args)
    assert code == 2
    error_lines = [line for line in stderr.splitlines() if "linreg: error" in line]
    assert len(error_lines) == 1
    assert re.search(message, error_lines[0]), error_lines[0]
    assert list(tmp_path.iterdir()) == []  # no log folder, no data, nothing written


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["test"], "linreg test needs a trained model: add --ckpt_path best"),
        (["validate", "--data.val_fraction", "0.1"], "linreg validate needs a trained model"),
        (["predict", "--ckpt_path", "plain.ckpt"], "add --predictions out.csv"),
        (["predict", "--ckpt_path", "plain.ckpt", "--predictions", "."], "--predictions . is a folder"),
        (["test", "--ckpt_path", "plain.ckpt", "--data.test_fraction", "0"], "has no test split to test on"),
        (["test", "--ckpt_path", "."], "checkpoint . is a folder; give the path of a .ckpt file"),
        (["test", "--ckpt_path", "text.ckpt"], "text.ckpt is not a linreg checkpoint (torch.load cannot read it"),
    ],
    ids=["test-untrained", "validate-untrained", "predict-nowhere", "predict-into-folder",
         "no-test-split", "folder-as-checkpoint", "text-as-checkpoint"],
)  # fmt: skip
def test_evaluation_commands_refuse_what_they_cannot_do(
    args: list[str], message: str, tmp_path: Path, run_main
) -> None:
    torch.save({"state_dict": {}, "pytorch-lightning_version": "2.6.6"}, tmp_path / "plain.ckpt")
    (tmp_path / "text.ckpt").write_text("hello\n")
    code, stderr = run_main(*args)
    assert code == 2
    error_lines = [line for line in stderr.splitlines() if "linreg: error" in line]
    assert len(error_lines) == 1 and message in error_lines[0], error_lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.ckpt", "text.ckpt"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model.optimizer", "LBFGS"], "--model.optimizer LBFGS needs a closure"),
        (
            ["--model.lr_scheduler", "StepLR", "--model.lr_scheduler.step_size", "0"],
            "--model.lr_scheduler StepLR fails on its first steps (integer modulo by zero)",
        ),
    ],
    ids=["closure-optimizer", "scheduler-failing-when-stepped"],
)
def test_optimizers_and_schedulers_that_would_fail_in_training_fail_first(
    run_main, tmp_path: Path, args: list[str], message: str
) -> None:
    code, stderr = run_main("fit", *args)
    assert code == 2 and message in stderr
    assert "Traceback" not in stderr and not (tmp_path / "lightning_logs").exists()


def test_predictions_are_refused_only_inside_a_run(tmp_path: Path) -> None:
    """A run folder and its checkpoints folder, not any folder called ``checkpoints``."""
    from linreg.errors import UserInputError
    from linreg.preflight import check_predictions_path

    run = tmp_path / "lightning_logs" / "version_0"
    (run / "checkpoints").mkdir(parents=True)
    (run / "hparams.yaml").write_text("{}\n")
    for inside in (run / "out.csv", run / "checkpoints" / "out.csv"):
        with pytest.raises(UserInputError, match="inside a training run's folder"):
            check_predictions_path(str(inside), [])
    elsewhere = tmp_path / "projects" / "checkpoints"
    elsewhere.mkdir(parents=True)
    check_predictions_path(str(elsewhere / "out.csv"), [])  # no run there: fine
    check_predictions_path(str(tmp_path / "lightning_logs" / "out.csv"), [])
