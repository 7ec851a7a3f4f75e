"""A newcomer's install: build the wheel, install it in a fresh venv, train from elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def _run(
    *command: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True,
                            timeout=600, env=env)  # fmt: skip
    assert result.returncode == 0, (
        f"{command} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    )
    return result


def test_wheel_installs_and_trains_outside_the_repository(tmp_path: Path) -> None:
    wheels, venv, elsewhere = tmp_path / "wheels", tmp_path / "venv", tmp_path / "elsewhere"
    elsewhere.mkdir()
    _run(
        sys.executable, "-m", "pip", "wheel", REPO, "--no-deps", "--wheel-dir", wheels, cwd=tmp_path
    )
    (wheel,) = wheels.glob("linreg-*.whl")
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    # the wheel's dependencies resolve against the pinned versions (no install: a dry run) ...
    constraints = REPO / "requirements" / "constraints.txt"
    pip = (venv / "bin" / "python", "-m", "pip", "install", "--quiet", "-c", constraints)
    _run(*pip, "--dry-run", wheel, cwd=tmp_path)
    # ... and the wheel alone runs on them (this environment's copies: no reinstall of torch)
    _run(*pip, "--no-deps", wheel, cwd=tmp_path)
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    result = _run(venv / "bin" / "linreg", "fit", "--trainer.max_epochs", "1",
                  "--trainer.enable_progress_bar", "false", cwd=elsewhere, env=env)  # fmt: skip
    assert "linreg: training finished." in result.stdout
    assert (elsewhere / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt").exists()
    typed = _run(
        venv / "bin" / "python",
        "-c",
        "import linreg, pathlib; print(pathlib.Path(linreg.__file__).with_name('py.typed').exists())",
        cwd=elsewhere,
        env=env,
    )
    assert str(venv) in _run(venv / "bin" / "python", "-c", "import linreg; print(linreg.__file__)",
                             cwd=elsewhere, env=env).stdout  # the wheel's linreg, not the repo's  # fmt: skip
    assert typed.stdout.strip() == "True"
