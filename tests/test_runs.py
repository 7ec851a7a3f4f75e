"""Run folders: claimed once, plain names only, last/best always the newest of their kind."""

from __future__ import annotations

import errno
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from linreg.errors import UserInputError
from linreg.runs import check_version, claim_run_folder, resolve_checkpoint, runs_newest_first
from tests.conftest import LINREG, load_checkpoint, scalars


def test_runs_claimed_together_get_their_own_folders(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        names = list(pool.map(lambda _: claim_run_folder(tmp_path / "runs"), range(16)))
    assert sorted(names, key=lambda n: int(n.split("_")[1])) == [f"version_{i}" for i in range(16)]


def test_a_named_run_is_claimed_by_exactly_one(tmp_path: Path) -> None:
    def claim(_: int) -> str:
        try:
            return claim_run_folder(tmp_path, "exp")
        except UserInputError as error:
            return str(error)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(claim, range(4)))
    assert results.count("exp") == 1
    assert all("is the folder of another run" in r for r in results if r != "exp")


@pytest.mark.parametrize(
    "version", ["../../escape", "/tmp/elsewhere", "a/b", "..", ".", "", "-x", -1, 1.5],
    ids=["parent", "absolute", "nested", "dotdot", "dot", "empty", "dash", "negative", "float"],
)  # fmt: skip
def test_a_run_name_is_a_plain_name(version: object) -> None:
    with pytest.raises(UserInputError, match="is not a plain run name"):
        check_version(version)


def test_a_run_name_taken_by_a_file_is_explained(tmp_path: Path) -> None:
    (tmp_path / "exp").write_text("notes")
    with pytest.raises(
        UserInputError, match=r"exp is a file \(--trainer.logger.init_args.version exp\)"
    ):
        claim_run_folder(tmp_path, "exp")
    assert (tmp_path / "exp").read_text() == "notes"


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (PermissionError(errno.EACCES, "Permission denied"), "permission denied. Run from a folder you can write to"),
        (OSError(errno.EROFS, "Read-only file system"), "read-only file system. Set --trainer.logger.init_args.save_dir"),
        (OSError(errno.ENOSPC, "No space left on device"), "no space left on device"),
    ],
    ids=["no-permission", "read-only", "disk-full"],
)  # fmt: skip
def test_an_unwritable_place_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError, message: str
) -> None:
    # root may write anywhere, so the refusal of the file system is simulated
    def refuse(path: object, *args: object) -> None:
        raise error

    monkeypatch.setattr(os, "mkdir", refuse)
    with pytest.raises(UserInputError, match=message):
        claim_run_folder(tmp_path / "runs", None)


def _checkpoint(path: Path, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {}, "pytorch-lightning_version": "2.6.6"}, path)
    os.utime(path, (mtime, mtime))


def test_last_and_best_are_the_newest_of_their_kind(tmp_path: Path) -> None:
    runs = tmp_path / "lightning_logs"
    _checkpoint(runs / "version_0" / "checkpoints" / "best.ckpt", 100)
    _checkpoint(runs / "version_0" / "checkpoints" / "last.ckpt", 200)
    _checkpoint(runs / "version_1" / "checkpoints" / "last.ckpt", 300)  # diverged: no best
    assert runs_newest_first(runs) == [runs / "version_1", runs / "version_0"]
    assert (
        resolve_checkpoint("test", "last", runs) == runs / "version_1" / "checkpoints" / "last.ckpt"
    )
    assert (
        resolve_checkpoint("test", "best", runs) == runs / "version_0" / "checkpoints" / "best.ckpt"
    )
    named = runs / "version_1"
    with pytest.raises(UserInputError, match=r"the run .*version_1 has no best\.ckpt"):
        resolve_checkpoint("test", "best", named)
    assert resolve_checkpoint("fit", "best", named) is None  # fit starts a new run instead


@pytest.mark.slow
def test_resuming_with_other_checkpoint_options_never_forks_last(linreg, tmp_path: Path) -> None:
    quick = ("--trainer.enable_progress_bar", "false", "--fit_plot", "null")
    linreg("fit", "--trainer.max_epochs", "1", *quick, cwd=tmp_path)
    linreg("fit", "--ckpt_path", "last", "--trainer.max_epochs", "2", "--checkpoint.mode", "max",
               "--checkpoint.monitor", "val/r2", *quick, cwd=tmp_path)  # fmt: skip
    checkpoints = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]
    assert load_checkpoint(checkpoints / "last.ckpt")["epoch"] == 1
    linreg("fit", "--ckpt_path", "last", "--trainer.max_epochs", "3", *quick, cwd=tmp_path)
    assert load_checkpoint(checkpoints / "last.ckpt")["epoch"] == 2  # last is always the newest
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]


def test_best_is_the_newest_run_that_has_one(tmp_path: Path, run_main) -> None:
    older, newer = (
        tmp_path / "lightning_logs" / v / "checkpoints" for v in ("version_0", "version_1")
    )
    for age, (folder, name) in enumerate(
        ((newer, "last.ckpt"), (older, "last.ckpt"), (older, "best.ckpt"))
    ):
        folder.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": {}, "pytorch-lightning_version": "2.6.6"}, folder / name)
        os.utime(folder / name, (1e9 - age, 1e9 - age))  # version_1 was written last
    code, stderr = run_main("test", "--ckpt_path", "best")
    assert code == 2
    assert ("linreg: note: the newest run, lightning_logs/version_1, has no best.ckpt (no "
            "validation split to pick a best by, or it diverged before one was kept); using "
            "lightning_logs/version_0/checkpoints/best.ckpt.") in stderr  # fmt: skip
    # the older run's best was taken: it is then refused for holding no weights
    assert "lightning_logs/version_0/checkpoints/best.ckpt is not a checkpoint of" in stderr


@pytest.mark.slow
def test_a_finished_run_is_never_overwritten(linreg, tmp_path: Path) -> None:
    quick = ("--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false")
    linreg("fit", "--data.n_features", "2", "--data.weight", "1.0",
               "--trainer.logger.init_args.version", "exp", *quick, cwd=tmp_path)  # fmt: skip
    run_dir = tmp_path / "lightning_logs" / "exp"
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    again = linreg("fit", "--model.optimizer.lr", "0.1", "--trainer.logger.init_args.version",
                       "exp", *quick, cwd=tmp_path, check=False)  # fmt: skip
    assert again.returncode == 2
    assert ("lightning_logs/exp is the folder of another run (--trainer.logger.init_args.version "
            "exp): choose another name, or continue that run") in again.stderr  # fmt: skip
    other_shape = linreg("test", "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt"),
                             "--data.n_features", "3", cwd=tmp_path, check=False)  # fmt: skip
    assert other_shape.returncode == 2
    assert "was trained on data of another shape: its linear.weight has shape [1, 2], but this " \
           "data gives [1, 3]" in other_shape.stderr  # fmt: skip
    for result in (again, other_shape):
        assert "Traceback" not in result.stderr
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
    assert [p.name for p in (tmp_path / "lightning_logs").iterdir()] == ["exp"]


@pytest.mark.slow
def test_continuing_a_named_run_takes_its_checkpoint_and_its_settings(
    linreg, tmp_path: Path
) -> None:
    quiet = ("--trainer.enable_progress_bar", "false", "--fit_plot", "null")
    linreg("fit", "--trainer.max_epochs", "2", "--model.optimizer.lr", "0.1",
               "--data.noise", "0.1", "--trainer.logger.init_args.version", "a", *quiet, cwd=tmp_path)  # fmt: skip
    linreg("fit", "--trainer.max_epochs", "2", "--trainer.logger.init_args.version", "b",
               *quiet, cwd=tmp_path)  # fmt: skip
    runs = tmp_path / "lightning_logs"
    other = {p: p.read_bytes() for p in (runs / "b").rglob("*") if p.is_file()}
    # run b is the newest, but "last" is looked for in the named run a
    linreg("fit", "--trainer.logger.init_args.version", "a", "--trainer.max_epochs", "3",
               "--ckpt_path", "last", cwd=tmp_path)  # fmt: skip
    checkpoint = load_checkpoint(runs / "a" / "checkpoints" / "last.ckpt")
    assert checkpoint["epoch"] == 2  # continued: epochs 0 and 1 before, 2 now
    assert checkpoint["optimizer_states"][0]["param_groups"][0]["lr"] == 0.1  # a's settings
    assert checkpoint["datamodule_hyper_parameters"]["noise"] == 0.1
    assert not (runs / "a" / "fit.png").exists()  # a's switched-off plot stays off
    assert {p: p.read_bytes() for p in (runs / "b").rglob("*") if p.is_file()} == other
    before = {p: p.read_bytes() for p in (runs / "a").rglob("*") if p.is_file()}
    done = linreg("fit", "--trainer.logger.init_args.version", "a", "--trainer.max_epochs",
                      "3", "--ckpt_path", "last", cwd=tmp_path, check=False)  # fmt: skip
    assert done.returncode == 2
    assert "has already trained 3 epoch(s) and --trainer.max_epochs is 3" in done.stderr
    assert {p: p.read_bytes() for p in (runs / "a").rglob("*") if p.is_file()} == before


@pytest.mark.slow
def test_three_runs_at_once_get_their_own_folders(tmp_path: Path) -> None:
    args = [LINREG, "fit", "--trainer.max_epochs", "2", "--trainer.enable_progress_bar", "false"]
    processes = [subprocess.Popen(args, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True) for _ in range(3)]  # fmt: skip
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    assert all(process.returncode == 0 for process in processes)
    runs = sorted(p.name for p in (tmp_path / "lightning_logs").iterdir())
    assert runs == ["version_0", "version_1", "version_2"]
    reported = sorted(
        line.split("/")[-1] for out in outputs for line in out.splitlines() if "logs:" in line
    )
    assert reported == runs  # each process wrote (and reported) its own folder
    for run in runs:
        run_dir = tmp_path / "lightning_logs" / run
        assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
        assert len(scalars(run_dir)["val/mse"]) == 2
        assert (run_dir / "config.yaml").exists() and (run_dir / "hparams.yaml").exists()
        assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["epoch"] == 1
