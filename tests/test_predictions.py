"""Predictions: to a file or standard output, never over an input, never half-written."""

from __future__ import annotations

import csv
import io
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from linreg.callbacks.predictions import PredictionWriter, remove_stale_parts
from linreg.errors import UserInputError
from tests.conftest import run_linreg

QUIET = ("--trainer.enable_progress_bar", "false")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with houses.csv and a model trained on it (best and last checkpoints)."""
    folder = tmp_path_factory.mktemp("trained")
    x = np.random.default_rng(0).uniform(size=(60, 2))
    rows = ["a,b,price"] + [f"{a},{b},{a + 2 * b + 0.5}" for a, b in x]
    (folder / "houses.csv").write_text("\n".join(rows) + "\n")
    run_linreg("fit", "--data", "linreg.FileDataModule", "--data.path", "houses.csv",
               "--trainer.max_epochs", "2", *QUIET, cwd=folder)  # fmt: skip
    return folder


def _predict(folder: Path, output: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return run_linreg("predict", "--ckpt_path", "best", "--data.path", "houses.csv",
                      "--predictions", output, *QUIET, cwd=folder, **kwargs)  # fmt: skip


@pytest.mark.slow
def test_predictions_to_standard_output(trained: Path) -> None:
    before = sorted(p.name for p in trained.iterdir())
    result = _predict(trained, "-")
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["price"] and len(rows) == 61  # header and one row per input row
    assert float(rows[1][0]) == pytest.approx(float(_first_row(trained)), abs=0.2)
    assert "linreg: wrote 60 predictions to standard output" in result.stderr
    assert sorted(p.name for p in trained.iterdir()) == before  # no part file left


@pytest.mark.slow
def test_standard_output_holds_only_the_predictions(trained: Path) -> None:
    """The progress bar, on by default, must not mix into a pipe of predictions."""
    result = run_linreg("predict", "--ckpt_path", "best", "--data.path", "houses.csv",
                        "--predictions", "-", cwd=trained)  # fmt: skip
    lines = result.stdout.splitlines()
    assert lines[0] == "price" and len(lines) == 61
    assert all(float(line) == float(line) for line in lines[1:])  # numbers only, no bar
    assert "Be aware" not in result.stderr  # fit-only callbacks mean nothing to predict


def _first_row(folder: Path) -> float:
    a, b, _ = (float(v) for v in (folder / "houses.csv").read_text().splitlines()[1].split(","))
    return a + 2 * b + 0.5


@pytest.mark.slow
@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("houses.csv", "--predictions houses.csv is houses.csv, an input of this command"),
        ("lightning_logs/version_0/checkpoints/best.ckpt", "an input of this command"),
        ("./houses.csv", "an input of this command"),
        ("link.csv", "--predictions link.csv is a link"),
        ("fifo", "--predictions fifo is not a regular file"),
        ("lightning_logs/version_0/checkpoints/last.ckpt", "inside a training run's folder"),
        ("lightning_logs/version_0/config.yaml", "inside a training run's folder"),
        ("lightning_logs/version_0/predictions.csv", "inside a training run's folder"),
        ("houses.npy", "is an existing .npy file, which a CSV of predictions would replace"),
        ("nowhere/out.csv", "the folder nowhere does not exist; create it first"),
    ],
    ids=[
        "training-data",
        "checkpoint",
        "same-file-other-spelling",
        "symlink-to-stdout",
        "fifo",
        "another-checkpoint-of-the-run",
        "the-runs-config",
        "into-a-run-folder",
        "a-data-file",
        "no-such-folder",
    ],
)
def test_an_input_or_special_file_is_never_the_output(
    trained: Path, output: str, message: str
) -> None:
    if not (trained / "link.csv").is_symlink():
        (trained / "link.csv").symlink_to("/dev/stdout")
    if not (trained / "fifo").exists():
        os.mkfifo(trained / "fifo")
    if not (trained / "houses.npy").exists():
        np.save(trained / "houses.npy", np.zeros((3, 3)))
    contents = {p: p.read_bytes() for p in trained.rglob("*") if p.is_file() and not p.is_symlink()}
    result = _predict(trained, output, check=False)
    assert result.returncode == 2
    assert message in result.stderr.strip().splitlines()[-1]
    assert {p: p.read_bytes() for p in contents} == contents
    assert (trained / "link.csv").is_symlink()


def test_stale_parts_of_dead_runs_are_removed(tmp_path: Path) -> None:
    dead_pid = _dead_pid()
    output = tmp_path / "out.csv"
    stale = [
        tmp_path / f".out.csv.{dead_pid}-0a1b2c3d.part0",
        tmp_path / f".out.csv.{dead_pid}.0a1b2c3d.tmp",
    ]
    alive = tmp_path / f".out.csv.{os.getpid()}-deadbeef.part0"  # a run still going on
    for path in [*stale, alive, tmp_path / ".other.csv.1-abc.part0"]:
        path.write_text("1\n")
    remove_stale_parts(output)
    assert not any(path.exists() for path in stale)
    assert alive.exists() and (tmp_path / ".other.csv.1-abc.part0").exists()


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped): no process has it now."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


class _FullDisk(io.StringIO):
    def close(self) -> None:
        raise OSError(28, "No space left on device")


def test_a_failed_close_still_removes_the_part(tmp_path: Path) -> None:
    writer = PredictionWriter(str(tmp_path / "out.csv"))
    part = writer._part_path(0)
    part.write_text("1.0\n")
    writer._part = _FullDisk()
    writer.on_exception(None, None, OSError(28, "No space left on device"))  # type: ignore[arg-type]
    assert not part.exists()


@pytest.mark.slow
def test_a_prediction_beyond_float32_is_refused_and_nothing_written(trained: Path) -> None:
    (trained / "out.csv").write_text("old\n")
    (trained / "huge.csv").write_text("a,b\n1e38,1e38\n1,2\n")
    result = run_linreg("predict", "--ckpt_path", "best", "--data.path", "huge.csv",
                        "--predictions", "out.csv", *QUIET, cwd=trained, check=False)  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert (trained / "out.csv").read_text() == "old\n"
    assert not list(trained.glob(".out.csv.*"))


def test_non_finite_predictions_are_refused(tmp_path: Path) -> None:
    writer = PredictionWriter(str(tmp_path / "out.csv"))
    writer._part = io.StringIO()
    trainer = type("T", (), {"datamodule": None, "world_size": 1, "global_rank": 0})()
    writer.on_predict_batch_end(trainer, None, torch.tensor([[1.0], [2.0]]))  # type: ignore[arg-type]
    with pytest.raises(UserInputError, match="the prediction for row 4 is not a finite number"):
        writer.on_predict_batch_end(trainer, None, torch.tensor([[1.0], [float("inf")]]))  # type: ignore[arg-type]
