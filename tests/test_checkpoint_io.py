"""Checkpoints: a killed run resumes exactly, saves are atomic, loading never runs code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from linreg.checkpoint_io import AtomicCheckpointIO
from linreg.cli import main
from linreg.errors import UserInputError
from tests.conftest import LINREG, LONG, load_checkpoint, saved_state, scalars


def _wait_for_epoch(
    checkpoint: Path, epoch: int, process: subprocess.Popen, timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be interrupted"
        if checkpoint.exists() and load_checkpoint(checkpoint)["epoch"] >= epoch:
            return
        time.sleep(0.05)
    pytest.fail(f"no checkpoint of epoch {epoch} within {timeout} s")


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_parameters(linreg, tmp_path: Path) -> None:
    args = ("fit", *LONG, "--trainer.max_epochs", "5")
    reference = tmp_path / "reference"
    reference.mkdir()
    linreg(*args, cwd=reference)

    crashed = tmp_path / "crashed"
    crashed.mkdir()
    process = subprocess.Popen([LINREG, *args], cwd=crashed, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    run_dir = crashed / "lightning_logs" / "version_0"
    _wait_for_epoch(run_dir / "checkpoints" / "last.ckpt", 1, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    interrupted = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert 1 <= interrupted["epoch"] < 4  # a complete checkpoint of an unfinished run

    linreg(*args, "--ckpt_path", "last", cwd=crashed)
    assert sorted(p.name for p in (crashed / "lightning_logs").iterdir()) == ["version_0"]
    resumed, uninterrupted = (
        saved_state(run_dir),
        saved_state(reference / "lightning_logs" / "version_0"),
    )
    for name, value in uninterrupted.items():
        assert torch.equal(resumed[name], value), name  # bit for bit on CPU
    epochs = [step for step, _ in scalars(run_dir)["val/mse"]]
    assert len(epochs) == len(set(epochs)) >= 5  # one log, continued where it stopped
    steps = [step for step, _ in scalars(run_dir)["train/loss"]]
    assert len(steps) == len(set(steps))  # the killed run's points after its checkpoint: purged


def test_atomic_save_never_leaves_a_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    io, path = AtomicCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt"
    lightning = {"pytorch-lightning_version": "2.6.6"}
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "epoch": 1, **lightning}, path)

    def crash_midway(obj: object, file: object) -> None:
        file.write(b"half a checkpoint")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "epoch": 2, **lightning}, path)
    assert io.load_checkpoint(path)["epoch"] == 1  # the previous checkpoint, intact
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temporary left behind
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


EVIL = """
import os, sys, torch
class Payload:
    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[2],))
torch.save({"state_dict": {}, "payload": Payload()}, sys.argv[1])
"""


@pytest.mark.slow
def test_a_checkpoint_that_would_run_code_is_refused(linreg, tmp_path: Path) -> None:
    evil, marker = tmp_path / "evil.ckpt", tmp_path / "pwned"
    (tmp_path / "make_evil.py").write_text(EVIL)
    subprocess.run([Path(LINREG).with_name("python"), "make_evil.py", str(evil), str(marker)],
                   cwd=tmp_path, check=True)  # fmt: skip
    for command in ("test", "fit", "predict"):
        result = linreg(command, "--ckpt_path", str(evil), cwd=tmp_path, check=False)
        assert result.returncode == 2
        assert f"refused to load {evil}" in result.stderr
        assert "Traceback" not in result.stderr
    with pytest.raises(UserInputError, match="refused to load"):
        AtomicCheckpointIO().load_checkpoint(evil)
    from linreg import LinearRegression

    with pytest.raises(UserInputError, match="refused to load"):
        LinearRegression.load_from_checkpoint(evil)
    assert not marker.exists()


def test_missing_or_foreign_checkpoint_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["linreg"])
    torch.save({"weights": torch.ones(2)}, tmp_path / "foreign.ckpt")
    for path, message in (
        ("nope.ckpt", "does not exist"),
        ("foreign.ckpt", "is not a linreg checkpoint"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(["test", "--ckpt_path", path])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["test", "--ckpt_path", "last"])
    assert "no run with a last.ckpt under lightning_logs; train first" in capsys.readouterr().err
