"""Reliability: crash and resume, reproducibility, DDP, divergence, config errors, safe loading."""

from __future__ import annotations

import json
import os
import re
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
from tests.conftest import LEAN, LINREG, load_checkpoint, run_linreg, scalars

# the tutorial's mini-batch SGD (32 rows a step, 25 steps an epoch on the default 800 rows)
MINI_BATCHES = ("--data.batch_size", "32")
# ~625 steps per epoch: slow enough to be killed mid-run, fast enough for CI
LONG = ("--data.n_samples", "25000", "--data.noise", "0.1", "--data.batch_size", "32", "--trainer.enable_progress_bar", "false",
        "--fit_plot", "null")  # fmt: skip


def _state(run_dir: Path, name: str = "last.ckpt") -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoints" / name)["state_dict"]


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
    resumed, uninterrupted = _state(run_dir), _state(reference / "lightning_logs" / "version_0")
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


@pytest.mark.slow
def test_same_seed_gives_bitwise_identical_parameters(linreg, tmp_path: Path) -> None:
    args = ("fit", "--data.noise", "0.1", "--trainer.max_epochs", "3", *MINI_BATCHES,
            "--model.optimizer.lr", "0.1", "--trainer.enable_progress_bar", "false", *LEAN)  # fmt: skip
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    linreg(*args, "--seed_everything", "7", cwd=tmp_path / "a")
    linreg(*args, "--seed_everything", "7", cwd=tmp_path / "b")
    linreg(*args, "--seed_everything", "8", cwd=tmp_path / "c")
    first, second, other = (_state(tmp_path / n / "lightning_logs" / "version_0") for n in "abc")
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["linear.weight"], other["linear.weight"])


SHARD_PROBE = '''
import json, os
import torch
from linreg import LinearRegression

class ShardProbe(LinearRegression):
    """Records the rows (their x values) each process trains on, per epoch."""
    def on_train_epoch_start(self):
        self.seen = []
    def training_step(self, batch, batch_idx):
        self.seen.extend(batch[0][:, 0].tolist())
        return super().training_step(batch, batch_idx)
    def on_train_epoch_end(self):
        path = f"rows_rank{self.global_rank}_epoch{self.current_epoch}.json"
        with open(path, "w") as f:
            json.dump(self.seen, f)
'''


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_on_two_cpu_processes(tmp_path: Path) -> None:
    (tmp_path / "shard_probe.py").write_text(SHARD_PROBE)
    result = run_linreg(
        "fit", "--model", "shard_probe.ShardProbe", *MINI_BATCHES, "--trainer.accelerator", "cpu",
        "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.max_epochs", "10",
        "--trainer.enable_progress_bar", "false", cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    assert result.stdout.count("linreg: training finished.") == 1  # one process reports
    assert sorted(p.name for p in (tmp_path / "lightning_logs").iterdir()) == ["version_0"]
    run_dir = tmp_path / "lightning_logs" / "version_0"
    rows = {
        (rank, epoch): json.loads((tmp_path / f"rows_rank{rank}_epoch{epoch}.json").read_text())
        for rank in (0, 1)
        for epoch in (0, 1)
    }
    for epoch in (0, 1):
        first, second = rows[0, epoch], rows[1, epoch]
        assert len(first) == len(second) == 400  # 800 training rows, an equal half each
        assert not set(first) & set(second)  # disjoint shares
    assert rows[0, 0] != rows[0, 1]  # reshuffled every epoch
    state = _state(run_dir)
    assert abs(state["linear.weight"].item() - 3.0) < 1e-3
    assert abs(state["linear.bias"].item() - 0.8) < 1e-3
    val_mse = scalars(run_dir)["val/mse"]
    assert len(val_mse) == 10 and val_mse[-1][1] < 1e-6


@pytest.mark.slow
def test_divergence_stops_at_the_first_nonfinite_loss_and_keeps_good_checkpoint(
    linreg,
    tmp_path: Path,
) -> None:
    # two good epochs at lr 0.5, then the scheduler multiplies the rate by 1000
    result = linreg(
        "fit", *MINI_BATCHES, "--model.optimizer.lr", "0.5", "--model.lr_scheduler", "StepLR",
        "--model.lr_scheduler.step_size", "2",
        "--model.lr_scheduler.gamma", "1000", "--trainer.max_epochs", "6",
        "--trainer.enable_progress_bar", "false", cwd=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("linreg: error: training diverged")
    assert "learning rate 500" in message and "--model.optimizer.lr 50" in message
    step = int(message.split(" at step ")[1].split()[0])
    assert 50 < step <= 60  # 25 steps per epoch: epoch 2 starts after step 50
    assert "Traceback" not in result.stderr
    checkpoints = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    for name in ("last.ckpt", "best.ckpt"):
        checkpoint = load_checkpoint(checkpoints / name)
        assert checkpoint["epoch"] == 1
        assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values())


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
def test_last_checkpoint_follows_every_epoch_not_only_improvements(linreg, tmp_path: Path) -> None:
    # noisy data: val/mse stops improving after a few epochs, training goes on
    linreg("fit", "--data.noise", "1.0", "--trainer.max_epochs", "8", *LEAN, *MINI_BATCHES,
               "--trainer.enable_progress_bar", "false", cwd=tmp_path)  # fmt: skip
    checkpoints = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    best, last = (load_checkpoint(checkpoints / name) for name in ("best.ckpt", "last.ckpt"))
    assert best["epoch"] < 7  # the case Lightning 2.6 gets wrong: the best epoch is not the last
    assert (last["epoch"], last["global_step"]) == (7, 8 * 25)

    no_validation = tmp_path / "no_validation"
    no_validation.mkdir()
    result = linreg("fit", "--data.val_fraction", "0", "--trainer.max_epochs", "2",
                        "--trainer.enable_progress_bar", "false", cwd=no_validation)  # fmt: skip
    checkpoints = no_validation / "lightning_logs" / "version_0" / "checkpoints"
    assert [p.name for p in checkpoints.iterdir()] == ["last.ckpt"]  # nothing to pick a best by
    assert load_checkpoint(checkpoints / "last.ckpt")["epoch"] == 1
    assert "could not find the monitored key" not in result.stderr


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
