"""A newcomer's install: build the wheel, install it in a fresh venv, train from elsewhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO


def _run(
    *command: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True,
                            timeout=600, env=env)  # fmt: skip
    assert result.returncode == 0, (
        f"{command} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    )
    return result


@pytest.mark.slow
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


def _pinned() -> dict[str, str]:
    lines = (REPO / "requirements" / "constraints.txt").read_text().splitlines()
    pins = (line.split("==") for line in lines if "==" in line and not line.startswith("#"))
    return {name.lower().replace("_", "-"): version for name, version in pins}


@pytest.mark.parametrize("group", ["dependencies", "sklearn", "dev"])
def test_lower_bounds_are_the_tested_versions(group: str) -> None:
    """CI tests only the pinned versions, so no lower bound may promise older, untested ones."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = (
        project["dependencies"]
        if group == "dependencies"
        else project["optional-dependencies"][group]
    )
    pinned = _pinned()
    checked = 0
    for requirement in requirements:
        name, bound = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[.*\])?>=([0-9.]+)", requirement).groups()
        if group == "dev" and name in {"pytest", "pytest-xdist", "ruff", "mypy", "build"}:
            continue  # tools, not what linreg runs on
        tested = pinned[name.lower()].split(".")
        assert bound.split(".") == tested[: len(bound.split("."))], (
            f"{requirement}: the tested version is {'.'.join(tested)}; raise the bound to it"
        )
        checked += 1
    assert checked > 0
