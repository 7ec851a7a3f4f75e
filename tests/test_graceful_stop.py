"""Ctrl-C and SIGTERM: stop at a batch end, keep the last checkpoint, leave outputs intact."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import LINREG, LONG, load_checkpoint, run_linreg

pytestmark = pytest.mark.slow


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [LINREG, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        stdin=subprocess.DEVNULL,  # not the xdist worker's own channel
        start_new_session=True,
        # pytest-xdist workers ignore SIGINT, and children inherit that: give Ctrl-C back
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def _wait_for(condition, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be stopped"
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"not ready to be stopped within {timeout} s")


@pytest.mark.parametrize(
    ("signum", "cause", "status"),
    [(signal.SIGINT, "Ctrl-C", 1), (signal.SIGTERM, "SIGTERM", 143)],
    ids=["ctrl-c", "sigterm"],
)
def test_a_stopped_fit_keeps_its_last_checkpoint_and_says_how_to_go_on(
    tmp_path: Path, signum: int, cause: str, status: int
) -> None:
    process = _start(["fit", *LONG, "--trainer.max_epochs", "200"], tmp_path)
    checkpoint = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    _wait_for(checkpoint.exists, process)
    process.send_signal(signum)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == status
    kept = f"interrupted by {cause}; the last checkpoint is kept: ./lightning_logs/version_0/checkpoints/last.ckpt"
    assert kept in output and "Continue with: linreg fit --ckpt_path" in output
    assert "Traceback" not in output and "training finished" not in output
    assert torch.isfinite(load_checkpoint(checkpoint)["state_dict"]["linear.weight"]).all()


def test_sigterm_during_predict_leaves_the_old_output(tmp_path: Path) -> None:
    run_linreg("fit", "--data.n_samples", "100", "--trainer.max_epochs", "1",
               "--trainer.enable_progress_bar", "false", cwd=tmp_path)  # fmt: skip
    (tmp_path / "out.csv").write_text("old\n")
    # 2,000,000 rows in batches of 32: minutes of predicting, stopped after a second
    process = _start(["predict", "--ckpt_path", "last", "--data.n_samples", "2000000",
                      "--predictions", "out.csv", "--trainer.enable_progress_bar", "false"], tmp_path)  # fmt: skip
    _wait_for(lambda: any(tmp_path.glob(".out.csv.*.part0")), process)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 143
    assert "linreg: stopped by SIGTERM; nothing was written." in output
    assert (tmp_path / "out.csv").read_text() == "old\n"
    assert not list(tmp_path.glob(".out.csv.*"))
