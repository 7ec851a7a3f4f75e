"""Shared helpers: run the real ``linreg`` command and read back what it wrote."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

LINREG = str(Path(sys.executable).with_name("linreg"))
REPO = Path(__file__).resolve().parents[1]


def run_linreg(
    *args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``linreg`` console script in ``cwd``; fail with its output if it fails."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    result = subprocess.run(
        [LINREG, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,  # like CI: no stdin
    )
    if check and result.returncode != 0:
        pytest.fail(f"linreg {' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}")
    return result


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in a run folder's event files, read with tensorboard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return {
        tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }


def load_checkpoint(path: Path) -> dict:
    """A checkpoint loaded the safe way, as every linreg checkpoint must load."""
    return torch.load(path, map_location="cpu", weights_only=True)


def saved_state(run_dir: Path, name: str = "last.ckpt") -> dict[str, torch.Tensor]:
    """The weights a run saved as ``checkpoints/<name>`` in its folder."""
    return load_checkpoint(run_dir / "checkpoints" / name)["state_dict"]


@pytest.fixture
def linreg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``linreg(*args)`` runs the command's entry point in this test's temporary folder.

    In this process (no interpreter start: seconds saved a run), unless the run needs one of
    its own: an environment (``env=``), or DDP, whose launcher starts ``sys.argv`` again.
    ``check`` fails the test on a non-zero exit, as :func:`run_linreg` does.
    """
    from linreg.cli import main

    monkeypatch.setattr(sys, "argv", ["linreg"])  # LightningCLI warns when both hold arguments

    def run(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
        cwd, check = kwargs.pop("cwd", tmp_path), kwargs.pop("check", True)
        if kwargs or "ddp" in args:
            return run_linreg(*args, cwd=cwd, check=check, **kwargs)
        monkeypatch.chdir(cwd)
        code: int | str | None = 0
        try:
            main(list(args))
        except SystemExit as exit_info:
            code = exit_info.code
        captured = capsys.readouterr()
        result = subprocess.CompletedProcess(
            ["linreg", *args], code or 0, captured.out, captured.err
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"linreg {' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}"
            )
        return result

    return run


@pytest.fixture
def run_main(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int | str | None, str]]:
    """``run_main(*args)``: the ``linreg`` entry point in this process, in this test's folder.

    For commands that stop before training or run briefly (fast: no interpreter start); returns
    the exit code (0 when it ends normally) and what was printed to stderr (what went to stdout
    is then ``run_main.stdout``). Any exception but ``SystemExit`` fails the test.
    """
    from linreg.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LINREG_DEBUG", raising=False)

    monkeypatch.setattr(sys, "argv", ["linreg"])  # LightningCLI warns when both hold arguments

    def run(*args: str) -> tuple[int | str | None, str]:
        code: int | str | None = 0
        try:
            main(list(args))
        except SystemExit as exit_info:
            code = exit_info.code
        captured = capsys.readouterr()
        run.stdout = captured.out  # type: ignore[attr-defined]  # for the tests that read it
        return code, captured.err

    return run


# Fast settings for end-to-end runs: a short fit that still converges on the seed line.
QUICK = ("--trainer.max_epochs", "3", "--trainer.enable_progress_bar", "false")
# linreg's TensorBoard callbacks all switched off: the leanest run
LEAN = ("--parameter_logger", "null", "--optimum_gap", "null", "--fit_plot", "null",
        "--hparams_metrics", "null")  # fmt: skip
# the tutorial's mini-batch SGD (32 rows a step, 25 steps an epoch on the default 800 rows)
MINI_BATCHES = ("--data.batch_size", "32")
# ~625 steps per epoch: slow enough to be stopped or killed mid-run, fast enough for CI
LONG = ("--data.n_samples", "25000", "--data.noise", "0.1", "--data.batch_size", "32", "--trainer.enable_progress_bar",
        "false", "--fit_plot", "null")  # fmt: skip
