"""End-to-end: the real ``linreg`` command in a temporary folder, artifacts read back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import LEAN, MINI_BATCHES, QUICK, load_checkpoint, saved_state, scalars

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One ``linreg fit`` with no arguments at all: the README's default run."""
    from tests.conftest import run_linreg

    cwd = tmp_path_factory.mktemp("default")
    result = run_linreg("fit", cwd=cwd)
    return cwd / "lightning_logs" / "version_0", result.stdout


def test_default_fit_recovers_the_seed_line(default_run: tuple[Path, str]) -> None:
    run_dir, _ = default_run
    state = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    assert abs(state["linear.weight"].item() - 3.0) <= 1e-3
    assert abs(state["linear.bias"].item() - 0.8) <= 1e-3
    best = load_checkpoint(run_dir / "checkpoints" / "best.ckpt")["state_dict"]
    assert abs(best["linear.weight"].item() - 3.0) <= 1e-3


def test_default_fit_logs_to_tensorboard(default_run: tuple[Path, str]) -> None:
    run_dir, _ = default_run
    series = scalars(run_dir)
    for tag in ("train/loss", "val/mse", "val/mae", "val/r2"):
        assert tag in series, f"{tag} missing; logged: {sorted(series)}"
    val_mse = [value for _, value in series["val/mse"]]
    epochs = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["epoch"] + 1
    assert len(val_mse) == epochs < 10  # one per epoch; converged long before the cap
    assert val_mse[-1] < 1e-10
    assert series["val/r2"][-1][1] > 0.999999
    assert series["optimum/relative_excess"][-1][1] <= 1e-6  # why it stopped
    steps = [step for step, _ in series["train/loss"]]
    assert steps == sorted(steps) and len(steps) == epochs  # a whole-split batch: once an epoch


def test_default_fit_writes_config_and_hparams(default_run: tuple[Path, str]) -> None:
    run_dir, _ = default_run
    hparams = yaml.safe_load((run_dir / "hparams.yaml").read_text())
    assert hparams["in_features"] == 1 and hparams["fit_intercept"] is True
    assert hparams["bias"] == 0.8 and hparams["weight"] == 3.0  # the data module's, merged
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"]["class_path"] == "linreg.LinearRegression"
    assert config["data"]["init_args"]["n_samples"] == 1000
    assert config["trainer"]["max_epochs"] == 1000  # a cap; Convergence stops it
    saved = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["hyper_parameters"]
    optimizer = saved["optimizer"]  # chosen from the data, saved as plain numbers
    assert optimizer["class_path"] == "torch.optim.SGD"
    assert optimizer["init_args"]["nesterov"] is True and 0 < optimizer["init_args"]["lr"] < 1


def test_default_fit_prints_a_plain_summary(default_run: tuple[Path, str]) -> None:
    _, stdout = default_run
    assert "learned weight: 3" in stdout and "true weight:    3" in stdout
    assert "learned bias:   0.8" in stdout
    assert "val/mse" in stdout
    assert "lightning_logs/version_0/checkpoints/best.ckpt" in stdout
    assert "tensorboard --logdir lightning_logs" in stdout


def test_yaml_config_and_print_config_round_trip(linreg, tmp_path: Path) -> None:
    config = tmp_path / "mine.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "trainer": {"max_epochs": 2, "enable_progress_bar": False},
                "model": {
                    "optimizer": {"class_path": "torch.optim.Adam", "init_args": {"lr": 0.05}}
                },
                "data": {"batch_size": 50, "n_samples": 500},
            }
        )
    )
    printed = linreg("fit", "--config", str(config), "--print_config").stdout
    parsed = yaml.safe_load(printed)
    assert parsed["model"]["init_args"]["optimizer"]["class_path"] == "torch.optim.Adam"
    assert parsed["model"]["init_args"]["optimizer"]["init_args"]["lr"] == 0.05
    assert parsed["data"]["init_args"]["batch_size"] == 50
    # the printed config is itself a valid config that trains the same way
    (tmp_path / "printed.yaml").write_text(printed)
    linreg("fit", "--config", "printed.yaml")
    run_dir = tmp_path / "lightning_logs" / "version_0"
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["model"]["init_args"]["optimizer"]["class_path"] == "torch.optim.Adam"
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert checkpoint["epoch"] == 1
    assert checkpoint["optimizer_states"][0]["param_groups"][0]["lr"] == 0.05
    assert checkpoint["hyper_parameters"]["optimizer"]["class_path"] == "torch.optim.Adam"


def test_optimizer_and_lr_from_the_command_line(linreg, tmp_path: Path) -> None:
    linreg(
        "fit", *QUICK, "--model.optimizer", "Adam", "--model.optimizer.lr", "0.02",
        "--model.lr_scheduler", "StepLR", "--model.lr_scheduler.step_size", "1",
        "--model.lr_scheduler.gamma", "0.5", "--data.batch_size", "16",
    )  # fmt: skip
    checkpoint = load_checkpoint(tmp_path / "lightning_logs/version_0/checkpoints/last.ckpt")
    assert type(checkpoint["optimizer_states"][0]["state"][0]["exp_avg"]) is torch.Tensor
    assert checkpoint["lr_schedulers"][0]["_last_lr"] == [0.02 * 0.5**3]
    assert checkpoint["datamodule_hyper_parameters"]["batch_size"] == 16


def test_user_subclass_plugs_in_with_model_option(linreg, tmp_path: Path) -> None:
    (tmp_path / "my_models.py").write_text(
        "import torch\n"
        "from linreg import LinearRegression\n\n"
        "class HuberRegression(LinearRegression):\n"
        "    def loss(self, prediction, target):\n"
        "        return torch.nn.functional.huber_loss(prediction, target, delta=1.0)\n"
    )
    result = linreg("fit", "--model", "my_models.HuberRegression",
                    "--trainer.enable_progress_bar", "false", env={"PYTHONPATH": str(tmp_path)})  # fmt: skip
    assert "learned weight" in result.stdout
    assert "trained 10 epochs: with no exact optimum to measure convergence" in result.stdout
    run_dir = tmp_path / "lightning_logs" / "version_0"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"]["class_path"] == "my_models.HuberRegression"
    state = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    assert abs(state["linear.weight"].item() - 3.0) < 1e-2  # it trained


def test_python_dash_m_runs_the_same_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "linreg", "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "fit" in result.stdout and "predict" in result.stdout


def test_help_says_what_linreg_is(linreg) -> None:
    assert "Train, evaluate and use linear regression models" in linreg("--help").stdout


def test_a_broken_config_file_is_named(linreg, tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("trainer: [1\n")
    result = linreg("fit", "--config", "broken.yaml", check=False)
    assert result.returncode == 2
    assert "linreg: error: --config broken.yaml is not valid YAML: " in result.stderr
    assert "line 2, column 1" in result.stderr


def test_several_outputs_are_summarized_one_per_line(linreg, tmp_path: Path) -> None:
    x = torch.rand(200, 2, generator=torch.Generator().manual_seed(0))
    rows = ["a,b,price,rent"] + [f"{a},{b},{2 * a - b + 1},{a + 3 * b}" for a, b in x.tolist()]
    (tmp_path / "two.csv").write_text("\n".join(rows) + "\n")
    result = linreg("fit", "--data", "linreg.FileDataModule", "--data.path", "two.csv",
                    "--data.target", "[price, rent]", *QUICK)  # fmt: skip
    lines = result.stdout.splitlines()
    price = next(i for i, line in enumerate(lines) if line.startswith("  price: weight "))
    assert lines[price + 1].strip().startswith("bias ")
    assert lines[price + 2].startswith("  rent: weight ")


def test_bad_option_value_is_one_clear_line(linreg, tmp_path: Path) -> None:
    result = linreg("fit", "--data.batch_size", "0", check=False)
    assert result.returncode == 2
    assert "batch_size must be a positive integer, got 0" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "lightning_logs").exists()


def test_without_a_logger_nothing_in_the_working_folder_is_overwritten(
    linreg, tmp_path: Path
) -> None:
    mine = {"config.yaml": "my: config\n", "fit.png": "not a picture"}
    for name, text in mine.items():
        (tmp_path / name).write_text(text)
    linreg("fit", "--trainer.logger", "false", *QUICK)
    assert {name: (tmp_path / name).read_text() for name in mine} == mine
    run_dir = tmp_path / "lightning_logs" / "version_0"  # the run's files got a folder of their own
    assert (run_dir / "config.yaml").exists() and (run_dir / "fit.png").exists()
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    assert not list(run_dir.glob("events.out.tfevents.*"))  # no logger: no TensorBoard file


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trainer.max_epochs", "0"], "--trainer.max_epochs 0 trains nothing; give at least 1"),
        (["--trainer.logger.init_args.version", "../../escape"], "is not a plain run name"),
    ],
    ids=["zero-epochs", "escaping-run-name"],
)
def test_runs_that_would_mislead_are_refused(run_main, tmp_path: Path, args, message) -> None:
    code, stderr = run_main("fit", *args)
    assert code == 2 and message in stderr
    assert list(tmp_path.iterdir()) == []


def test_linreg_debug_is_on_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from linreg.cli import debugging

    for value, expected in (
        ("0", False),
        ("", False),
        ("false", False),
        ("1", True),
        ("yes", True),
    ):
        monkeypatch.setenv("LINREG_DEBUG", value)
        assert debugging() is expected, value


def test_a_data_file_named_by_the_checkpoint_is_never_quoted(run_main, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("1.5,2.5,3.5\n4,5,6\n")  # numbers in the first line: not a header
    torch.save(
        {
            "state_dict": {"linear.weight": torch.ones(1, 2), "linear.bias": torch.zeros(1)},
            "pytorch-lightning_version": "2.6.6",
            "hyper_parameters": {"_class_path": "linreg.LinearRegression"},
            "datamodule_hyper_parameters": {
                "_class_path": "linreg.FileDataModule",
                "path": str(secret),
            },
        },
        tmp_path / "given.ckpt",
    )
    code, stderr = run_main("test", "--ckpt_path", "given.ckpt")
    assert code == 2
    assert (
        f"the data file {secret}, which the checkpoint given.ckpt was trained on, cannot be used"
        in stderr
    )
    assert "1.5" not in stderr and "3.5" not in stderr


def test_the_checkpoint_workaround_is_still_needed() -> None:
    """LinRegCLI overrides LightningCLI._parse_ckpt_path (no public hook in Lightning 2.6).

    If this fails, Lightning changed: use its public hook (adapt_checkpoint_hparams, PR #21408)
    or follow the rename, and drop the override.
    """
    import inspect

    from lightning.pytorch.cli import LightningCLI

    assert "self._parse_ckpt_path()" in inspect.getsource(LightningCLI.__init__)
    assert not hasattr(LightningCLI, "adapt_checkpoint_hparams")


@pytest.mark.slow
def test_same_seed_gives_bitwise_identical_parameters(linreg, tmp_path: Path) -> None:
    args = ("fit", "--data.noise", "0.1", "--trainer.max_epochs", "3", *MINI_BATCHES,
            "--model.optimizer.lr", "0.1", "--trainer.enable_progress_bar", "false", *LEAN)  # fmt: skip
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    linreg(*args, "--seed_everything", "7", cwd=tmp_path / "a")
    linreg(*args, "--seed_everything", "7", cwd=tmp_path / "b")
    linreg(*args, "--seed_everything", "8", cwd=tmp_path / "c")
    first, second, other = (
        saved_state(tmp_path / n / "lightning_logs" / "version_0") for n in "abc"
    )
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["linear.weight"], other["linear.weight"])


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


def test_one_callback_of_lightnings_own_by_name(run_main, tmp_path: Path) -> None:
    """``--trainer.callbacks X`` (one, not a list) works as ``--trainer.callbacks+=X`` does."""
    code, stderr = run_main("fit", "--trainer.callbacks", "LearningRateMonitor", *QUICK)
    assert code == 0, stderr
    assert "lr-SGD" in scalars(tmp_path / "lightning_logs" / "version_0")


def test_checkpointing_can_be_switched_off(run_main, tmp_path: Path) -> None:
    code, stderr = run_main("fit", "--trainer.enable_checkpointing", "false", *QUICK)
    assert code == 0, stderr
    run = tmp_path / "lightning_logs" / "version_0"
    assert (run / "config.yaml").exists() and not (run / "checkpoints").exists()
    assert "checkpoint:" not in run_main.stdout


def test_testing_on_a_file_says_which_rows_it_scores(run_main, tmp_path: Path) -> None:
    rows = ["a,y"] + [f"{i / 40},{3 * i / 40 + 0.8}" for i in range(40)]
    (tmp_path / "line.csv").write_text("\n".join(rows) + "\n")
    data = ("--data", "linreg.FileDataModule", "--data.path", "line.csv")
    code, stderr = run_main("fit", *data, *QUICK)
    assert code == 0, stderr
    code, stderr = run_main("test", "--ckpt_path", "best", "--data.path", "line.csv", *QUICK[2:])
    assert code == 0, stderr
    assert "test scores only the test split of line.csv: test_fraction=0.1 of its rows" in stderr
    assert "--data.val_fraction 0 --data.test_fraction 0.9" in stderr


def test_an_abbreviated_option_is_refused(run_main, tmp_path: Path) -> None:
    """argparse would take --trainer.max_epoch for --trainer.max_epochs, behind linreg's back."""
    code, stderr = run_main("fit", "--trainer.max_epoch", "5")
    assert code == 2 and "unrecognized arguments: --trainer.max_epoch 5" in stderr
    assert not (tmp_path / "lightning_logs").exists()
