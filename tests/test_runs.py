"""Run folders: claimed once, plain names only, last/best always the newest of their kind."""

from __future__ import annotations

import errno
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from linreg.errors import UserInputError
from linreg.runs import check_version, claim_run_folder, resolve_checkpoint, runs_newest_first
from tests.conftest import load_checkpoint


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
