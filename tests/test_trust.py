"""Data never becomes code: attacks through checkpoints and run folders, for every subcommand."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml

from linreg.trust import MODEL, OPTIMIZER, UntrustedData, check_hyperparameters, resolve

SUBCOMMANDS = ["fit", "validate", "test", "predict"]
MODEL_HPARAMS = {
    "_class_path": "linreg.LinearRegression",
    "in_features": 1,
    "out_features": 1,
    "fit_intercept": True,
    "optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1}},
    "lr_scheduler": None,
    "l1": 0.0,
    "l2": 0.0,
}
DATA_HPARAMS = {"_class_path": "linreg.SyntheticDataModule", "n_samples": 100, "seed": 1}


def _checkpoint(path: Path, model: dict | None = None, data: dict | None = None) -> Path:
    """A checkpoint of plain data, as one can be written by anyone: it loads with weights_only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "state_dict": {"linear.weight": torch.ones(1, 1), "linear.bias": torch.zeros(1)},
            "pytorch-lightning_version": "2.6.6",
            "epoch": 0,
            "global_step": 3,
            "hyper_parameters": model if model is not None else MODEL_HPARAMS,
            "datamodule_hyper_parameters": data if data is not None else DATA_HPARAMS,
        },
        path,
    )
    return path


def _user_module(folder: Path, monkeypatch, module: str, base: str) -> None:
    """``module.Mine``, a subclass of linreg's ``base``, importable from ``folder``."""
    (folder / f"{module}.py").write_text(
        f"from linreg import {base}\n\nclass Mine({base}):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(folder))


def _run(run_main, subcommand: str, checkpoint: str, *extra: str) -> tuple[object, str]:
    args = [subcommand, "--ckpt_path", checkpoint, *extra]
    if subcommand == "predict":
        args += ["--predictions", "out.csv"]
    return run_main(*args)


ATTACKS = {
    "optimizer-is-a-shell": (
        {
            **MODEL_HPARAMS,
            "optimizer": {"class_path": "os.system", "init_args": {"command": "touch PWNED"}},
        },
        DATA_HPARAMS,
        "its model.optimizer names os.system, which is not a torch.optim optimizer",
    ),
    "optimizer-as-a-string": (
        {**MODEL_HPARAMS, "optimizer": "subprocess.getoutput"},
        DATA_HPARAMS,
        "its model.optimizer names subprocess.getoutput",
    ),
    "model-class-imports-a-module": (
        {**MODEL_HPARAMS, "_class_path": "antigravity.Fly"},
        DATA_HPARAMS,
        "its model names antigravity.Fly, which is not a LightningModule that is already loaded",
    ),
    "scheduler-calls-a-function": (
        {
            **MODEL_HPARAMS,
            "lr_scheduler": {
                "class_path": "torch.optim.lr_scheduler.LambdaLR",
                "init_args": {"lr_lambda": "os.system"},
            },
        },
        DATA_HPARAMS,
        "its model.lr_scheduler.init_args.lr_lambda names 'os.system', which is not plain data",
    ),
    "data-class-is-a-function": (
        MODEL_HPARAMS,
        {"_class_path": "os.remove", "path": "important.txt"},
        "its data names os.remove, which is not a LightningDataModule",
    ),
    "nested-class-in-data": (
        MODEL_HPARAMS,
        {**DATA_HPARAMS, "noise": {"class_path": "subprocess.Popen", "init_args": {"args": "id"}}},
        "its data.init_args.noise names subprocess.Popen, which is not a class; only plain data",
    ),
}


@pytest.mark.parametrize("subcommand", SUBCOMMANDS)
@pytest.mark.parametrize(("model", "data", "message"), ATTACKS.values(), ids=ATTACKS.keys())
def test_a_checkpoint_may_not_name_code(
    run_main, tmp_path: Path, subcommand: str, model: dict, data: dict, message: str
) -> None:
    _checkpoint(tmp_path / "shared.ckpt", model, data)
    code, stderr = _run(run_main, subcommand, "shared.ckpt")
    assert code == 2
    errors = [line for line in stderr.splitlines() if line.startswith("linreg: error")]
    assert len(errors) == 1 and "refused shared.ckpt: " in errors[0], stderr
    assert message in errors[0]
    assert not (tmp_path / "PWNED").exists() and "antigravity" not in sys.modules
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.ckpt"]  # nothing written


RUN_CONFIG_ATTACKS = {
    "callback-is-a-shell": ({"trainer": {"callbacks": [{"class_path": "os.system", "init_args": {"command": "touch PWNED"}}]}},
                            "its trainer.callbacks names os.system"),
    "logger-is-a-process": ({"trainer": {"logger": {"class_path": "subprocess.Popen", "init_args": {"args": "id"}}}},
                            "its trainer.logger names subprocess.Popen"),
    "strategy-imports": ({"trainer": {"strategy": "antigravity.Strategy"}}, "its trainer.strategy names antigravity.Strategy"),
    "unknown-place": ({"seed_everything": {"class_path": "os.system"}}, "its seed_everything names os.system"),
}  # fmt: skip


@pytest.mark.parametrize(
    ("config", "message"), RUN_CONFIG_ATTACKS.values(), ids=RUN_CONFIG_ATTACKS.keys()
)
def test_a_run_folder_config_may_not_name_code(
    run_main, tmp_path: Path, config: dict, message: str
) -> None:
    run = tmp_path / "lightning_logs" / "version_0"
    _checkpoint(run / "checkpoints" / "last.ckpt")
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    before = sorted(p for p in tmp_path.rglob("*"))
    code, stderr = run_main("fit", "--ckpt_path", "last", "--trainer.max_epochs", "5")
    assert code == 2
    assert "refused lightning_logs/version_0/config.yaml: " in stderr and message in stderr
    assert not (tmp_path / "PWNED").exists() and "antigravity" not in sys.modules
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_naming_the_checkpoints_own_data_class_keeps_its_settings(
    run_main, tmp_path: Path, monkeypatch
) -> None:
    _user_module(tmp_path, monkeypatch, "my_data", "SyntheticDataModule")
    data = {**DATA_HPARAMS, "_class_path": "my_data.Mine", "n_samples": 60, "weight": [5.0]}
    _checkpoint(tmp_path / "mine.ckpt", data=data)
    code, stderr = run_main("test", "--ckpt_path", "mine.ckpt")
    assert code == 2 and "its data names my_data.Mine" in stderr
    code, stderr = run_main("test", "--ckpt_path", "mine.ckpt", "--data", "my_data.Mine",
                            "--print_config")  # fmt: skip
    assert code == 0, stderr
    config = yaml.safe_load(run_main.stdout)["data"]
    assert config["class_path"] == "my_data.Mine"
    assert config["init_args"]["n_samples"] == 60 and config["init_args"]["weight"] == [5.0]
    code, stderr = run_main("test", "--ckpt_path", "mine.ckpt", "--data", "SyntheticDataModule",
                            "--print_config")  # fmt: skip
    assert code == 0, stderr  # another class: its own defaults, nothing of the checkpoint's
    assert yaml.safe_load(run_main.stdout)["data"]["init_args"]["n_samples"] != 60


def test_a_users_own_class_in_a_checkpoint_needs_naming(
    run_main, tmp_path: Path, monkeypatch
) -> None:
    _user_module(tmp_path, monkeypatch, "my_models", "LinearRegression")
    _checkpoint(tmp_path / "mine.ckpt", {**MODEL_HPARAMS, "_class_path": "my_models.Mine"})
    code, stderr = run_main("test", "--ckpt_path", "mine.ckpt", "--data.n_samples", "100")
    assert code == 2 and "my_models" not in sys.modules
    assert "its model names my_models.Mine" in stderr
    assert (
        "If you trust this file and my_models.Mine is a LightningModule, name it yourself, "
        "e.g. --model my_models.Mine" in stderr
    )
    code, stderr = run_main("test", "--ckpt_path", "mine.ckpt", "--model", "my_models.Mine")
    assert code == 0, stderr  # named by the user: trusted, imported, tested


def test_a_config_written_by_the_user_may_not_pass_off_a_function_as_optimizer(
    run_main, tmp_path: Path
) -> None:
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(
        {"model": {"init_args": {"optimizer": {"class_path": "os.system", "init_args": {"command": "touch PWNED"}}}}}
    ))  # fmt: skip
    code, stderr = run_main("fit", "--config", "mine.yaml")
    assert code == 2
    assert "--model.optimizer os.system is not a torch.optim optimizer" in stderr  # not SGD instead
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.yaml"]


def test_resolve_reads_only_what_is_loaded() -> None:
    assert resolve("torch.optim.Adam", OPTIMIZER) is torch.optim.Adam
    assert resolve("Adam", OPTIMIZER) is torch.optim.Adam  # short names, as jsonargparse takes them
    assert resolve("torch.optim.Optimizer.zero_grad", OPTIMIZER) is None
    assert resolve("this.Zen", OPTIMIZER) is None and "this" not in sys.modules  # never imported
    assert resolve("linreg.cli.main", MODEL) is None  # a function, not a class


def test_plain_hyperparameters_pass() -> None:
    check_hyperparameters(MODEL_HPARAMS, "model", Path("ok.ckpt"), "linreg.LinearRegression")
    with pytest.raises(UntrustedData, match=r"its model\.optimizer names os\.system"):
        check_hyperparameters({**MODEL_HPARAMS, "optimizer": "os.system"}, "model", Path("x.ckpt"),
                              "linreg.LinearRegression")  # fmt: skip
