"""TensorBoard that teaches: every tag of a real run, read back with tensorboard's own tools."""

from __future__ import annotations

import contextlib
import csv
import json
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from linreg import LinearRegression, SyntheticDataModule
from linreg.callbacks import (
    Convergence,
    DivergenceGuard,
    FitPlot,
    OptimumGap,
    ParameterLogger,
    fit_plot,
)
from linreg.errors import UserInputError
from tests.conftest import LEAN, MINI_BATCHES, load_checkpoint, run_linreg, scalars

pytestmark = pytest.mark.slow

# mini-batches of 32 at a plain SGD rate: a learning curve to watch over 6 epochs
NOISY = ("--data.noise", "0.1", "--data.seed", "3", "--trainer.max_epochs", "6",
         "--data.batch_size", "32", "--model.optimizer.lr", "0.5",
         "--trainer.enable_progress_bar", "false", "--fit_plot.every_n_epochs", "2")  # fmt: skip
# No validation split; 80 training rows in batches of 10: 8 steps per epoch, logged every 5.
SHORT = ("--data.n_samples", "100", "--data.val_fraction", "0", "--data.test_fraction", "0.2",
         "--data.batch_size", "10", "--data.n_features", "2", "--data.weight", "[1.0, 2.0]",
         "--trainer.log_every_n_steps", "5", "--trainer.max_epochs", "2",
         "--fit_plot.every_n_epochs", "1", "--trainer.enable_progress_bar", "false")  # fmt: skip


def _accumulator(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={"images": 0, "histograms": 0})
    accumulator.Reload()
    return accumulator


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    cwd = tmp_path_factory.mktemp("noisy")
    result = run_linreg("fit", *NOISY, cwd=cwd)
    return cwd / "lightning_logs" / "version_0", result.stdout


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    cwd = tmp_path_factory.mktemp("short")
    result = run_linreg("fit", *SHORT, cwd=cwd)
    return cwd / "lightning_logs" / "version_0", result.stdout


def _write_csv(path: Path, header: list[str], rows: np.ndarray) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows.tolist())


def test_parameters_are_logged_with_distance_to_truth(noisy_run: tuple[Path, str]) -> None:
    series = scalars(noisy_run[0])
    weight, bias = series["params/weight"], series["params/bias"]
    assert len(weight) == len(series["train/loss"]) >= 5
    assert abs(weight[-1][1] - 3.0) < 0.05 and abs(bias[-1][1] - 0.8) < 0.05
    distance = [value for _, value in series["params/distance_to_true"]]
    assert distance[-1] < distance[0] / 10
    expected = np.hypot(weight[-1][1] - 3.0, bias[-1][1] - 0.8)
    assert distance[-1] == pytest.approx(expected, rel=1e-4)


def test_gap_to_the_exact_optimum(noisy_run: tuple[Path, str]) -> None:
    run_dir, stdout = noisy_run
    series = scalars(run_dir)
    # an independent least-squares fit on the same training split
    data = SyntheticDataModule(noise=0.1, seed=3)
    data.setup("fit")
    x, y = (t.double().numpy() for t in data.datasets["train"][:])
    design = np.hstack([x, np.ones((len(x), 1))])
    solution, *_ = np.linalg.lstsq(design, y, rcond=None)
    optimum_mse = float(np.mean((design @ solution - y) ** 2))
    assert series["optimum/mse"][-1][1] == pytest.approx(optimum_mse, rel=1e-5)

    excess = [value for _, value in series["optimum/train_excess"]]
    assert len(excess) == 6 and min(excess) >= -1e-9
    assert excess[-1] < excess[0]
    train_mse = [value for _, value in series["optimum/train_mse"]]
    assert train_mse[-1] == pytest.approx(optimum_mse + excess[-1], rel=1e-4)
    assert "optimum/val_excess" in series
    assert re.search(
        r"SGD reached a training MSE of [\d.e-]+; the exact least-squares optimum is", stdout
    )


def test_fit_picture_in_tensorboard_and_as_png(noisy_run: tuple[Path, str]) -> None:
    run_dir, _ = noisy_run
    images = _accumulator(run_dir).Images("fit")
    assert [image.step for image in images] == sorted(image.step for image in images)
    assert len(images) == 3  # epochs 2 and 4, then the end (epoch 6)
    # at the steps of the scalars (Lightning's: the last step taken), not one later
    assert {image.step for image in images} <= {step for step, _ in scalars(run_dir)["val/mse"]}
    png = run_dir / "fit.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as picture:
        picture.verify()
    with Image.open(png) as picture:
        assert 300 <= picture.width <= 2000 and 200 <= picture.height <= 2000


def test_hparams_tab_has_final_metrics_not_placeholder(noisy_run: tuple[Path, str]) -> None:
    run_dir, _ = noisy_run
    series = scalars(run_dir)
    assert "hp_metric" not in series
    assert series["hparams/val_mse"][-1][1] == pytest.approx(series["val/mse"][-1][1])
    assert series["hparams/val_r2"][-1][1] == pytest.approx(series["val/r2"][-1][1])
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    plugin_data = [
        HParamsPluginData.FromString(value.metadata.plugin_data.content)
        for path in run_dir.glob("events.out.tfevents.*")
        for event in EventFileLoader(str(path)).Load()
        for value in event.summary.value
        if value.metadata.plugin_data.plugin_name == "hparams"
    ]
    experiment = next(data.experiment for data in plugin_data if data.HasField("experiment"))
    assert {info.name.tag for info in experiment.metric_infos} == {
        "hparams/val_mse",
        "hparams/val_r2",
    }
    session = next(d.session_start_info for d in plugin_data if d.HasField("session_start_info"))
    assert session.hparams["noise"].number_value == pytest.approx(0.1)
    assert session.hparams["n_samples"].number_value == 1000
    # each class under its own name, not one overwriting the other; no LightningCLI internals
    assert session.hparams["model"].string_value == "linreg.model.LinearRegression"
    assert session.hparams["data"].string_value == "linreg.data.SyntheticDataModule"
    assert session.hparams["seed_everything"].number_value == 0
    assert not [name for name in session.hparams if name.startswith("_")]


def test_many_features_log_norm_histogram_and_scatter(tmp_path: Path) -> None:
    run_linreg("fit", "--data.n_features", "12", "--data.weight", "1.5", "--trainer.max_epochs", "2",
               "--model.optimizer", "SGD", "--model.optimizer.lr", "0.05",
               "--trainer.enable_progress_bar", "false", cwd=tmp_path)  # fmt: skip
    run_dir = tmp_path / "lightning_logs" / "version_0"
    series = scalars(run_dir)
    assert "params/weight_norm" in series and "params/weight_0_0" not in series
    assert "params/distance_to_true" in series
    assert "params/weight_histogram" in _accumulator(run_dir).Tags()["histograms"]
    assert (run_dir / "fit.png").stat().st_size > 5000


def test_each_callback_can_be_switched_off(tmp_path: Path) -> None:
    result = run_linreg("fit", *LEAN, "--trainer.max_epochs", "2",
                        "--trainer.enable_progress_bar", "false", cwd=tmp_path)  # fmt: skip
    run_dir = tmp_path / "lightning_logs" / "version_0"
    tags = set(scalars(run_dir))
    assert {"train/loss", "val/mse"} <= tags
    assert not any(tag.startswith(("params/", "optimum/", "hparams/")) for tag in tags)
    assert not (run_dir / "fit.png").exists()
    assert "optimum is" not in result.stdout
    assert "learned weight" in result.stdout


OWN_MODELS = """
from linreg import LinearRegression

class Halved(LinearRegression):
    def forward(self, x):
        return 0.5 * self.linear(x)

class BiasPenalty(LinearRegression):
    def penalty(self):
        return 0.01 * self.linear.bias.square().sum()
"""


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        ("Halved", "forward() is not its linear layer on features()"),
        ("BiasPenalty", "penalty() is its own"),
    ],
    ids=["own-forward", "own-penalty"],
)
def test_optimum_gap_skips_models_that_are_not_plain_least_squares(
    tmp_path: Path, model: str, reason: str
) -> None:
    (tmp_path / "own_models.py").write_text(OWN_MODELS)
    result = run_linreg("fit", "--model", f"own_models.{model}", "--trainer.max_epochs", "2",
                        "--trainer.enable_progress_bar", "false", cwd=tmp_path,
                        env={"PYTHONPATH": str(tmp_path)})  # fmt: skip
    assert f"OptimumGap: no exact optimum to compare with (the model's {reason}" in result.stderr
    assert "optimum is" not in result.stdout
    tags = scalars(tmp_path / "lightning_logs" / "version_0")
    assert "params/weight" in tags and not any(tag.startswith("optimum/") for tag in tags)


def test_optimum_gap_is_logged_every_epoch_without_validation(short_run: tuple[Path, str]) -> None:
    run_dir, stdout = short_run
    series = scalars(run_dir)
    assert "val/mse" not in series and "optimum/val_excess" not in series
    for tag in ("optimum/mse", "optimum/train_mse", "optimum/train_excess"):
        assert [step for step, _ in series[tag]] == [7, 15], tag  # the end of each epoch
    assert "SGD reached a training MSE of" in stdout


def test_parameters_are_logged_at_every_epoch_end(short_run: tuple[Path, str]) -> None:
    run_dir, _ = short_run
    series = scalars(run_dir)
    assert [step for step, _ in series["train/loss"]] == [4, 9, 14]
    for tag in ("params/bias", "params/weight_0_1", "params/weight_norm"):
        assert [step for step, _ in series[tag]] == [4, 7, 9, 14, 15], tag  # no step twice
    final = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    assert series["params/bias"][-1][1] == pytest.approx(float(final["linear.bias"][0]))
    assert series["params/weight_0_1"][-1][1] == pytest.approx(float(final["linear.weight"][0, 1]))


def test_images_and_histograms_are_at_the_steps_of_the_scalars(short_run: tuple[Path, str]) -> None:
    accumulator = _accumulator(short_run[0])
    assert [event.step for event in accumulator.Histograms("params/weight_histogram")] == [7, 15]
    assert [image.step for image in accumulator.Images("fit")] == [7, 15]  # drawn without val


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ParameterLogger(max_scalars=-2), "max_scalars must be 0 or more, got -2"),
        (lambda: FitPlot(every_n_epochs=-1), "every_n_epochs must be 0 or more, got -1"),
        (lambda: FitPlot(max_points=0), "max_points must be at least 1, got 0"),
        (lambda: OptimumGap(rtol=0), r"rtol must be in \(0, 1\), got 0"),
        (lambda: DivergenceGuard(check_every_n_steps=0), "check_every_n_steps must be at least 1"),
    ],
    ids=[
        "max-scalars",
        "every-n-epochs",
        "max-points",
        "optimum-rtol",
        "check-interval",
    ],
)
def test_callback_arguments_are_checked(make, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        make()


def test_a_bad_callback_option_is_one_line_before_any_work(tmp_path: Path) -> None:
    result = run_linreg("fit", "--fit_plot.every_n_epochs", "-1", cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "linreg: error: every_n_epochs must be 0 or more, got -1."
    )
    assert not (tmp_path / "lightning_logs").exists()


def test_fit_plot_names_the_outputs_after_the_targets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    figures = []
    render = fit_plot.render
    monkeypatch.setattr(fit_plot, "render", lambda figure: figures.append(figure) or render(figure))
    x, y = torch.rand(20, 2), torch.rand(20, 2)
    trainer = SimpleNamespace(
        log_dir=str(tmp_path), is_global_zero=True, val_dataloaders=[[(x, y)]], loggers=[],
        datamodule=SimpleNamespace(target_names=["price, usd", "rent"]), current_epoch=1,
        global_step=10,
    )  # fmt: skip
    FitPlot().on_fit_end(trainer, LinearRegression(in_features=2, out_features=2))
    legend = [text.get_text() for text in figures[0].axes[0].get_legend().get_texts()]
    assert legend == ["price, usd", "rent", "y = x"]
    assert (tmp_path / "fit.png").exists()


def test_prediction_header_quotes_target_names(tmp_path: Path) -> None:
    x = np.random.default_rng(0).uniform(size=(60, 2))
    name = 'price, "usd"'
    _write_csv(tmp_path / "houses.csv", ["a", "b", name], np.column_stack([x, x @ [1.0, 2.0]]))
    data = ("--data", "linreg.FileDataModule", "--data.path", "houses.csv")
    run_linreg("fit", *data, "--trainer.max_epochs", "2", "--trainer.enable_progress_bar", "false",
               cwd=tmp_path)  # fmt: skip
    run_linreg("predict", "--ckpt_path", "best", "--data.path", "houses.csv", "--predictions",
               "out.csv", "--trainer.enable_progress_bar", "false", cwd=tmp_path)  # fmt: skip
    with open(tmp_path / "out.csv", newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == [name] and len(rows) == 61
    assert float(rows[1][0]) == pytest.approx(x[0] @ [1.0, 2.0], abs=0.1)


@pytest.mark.ddp
def test_ddp_predict_with_fewer_rows_than_processes_fails_early(tmp_path: Path) -> None:
    rows = np.random.default_rng(0).uniform(size=(60, 3))
    _write_csv(tmp_path / "train.csv", ["a", "b", "y"], rows)
    _write_csv(tmp_path / "one.csv", ["a", "b", "y"], rows[:1])
    run_linreg("fit", "--data", "linreg.FileDataModule", "--data.path", "train.csv",
               "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false", cwd=tmp_path)  # fmt: skip
    result = run_linreg(
        "predict", "--ckpt_path", "best", "--data.path", "one.csv", "--predictions", "out.csv",
        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
        "--trainer.enable_progress_bar", "false", cwd=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "fewer rows than the 2 processes" in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr
    left = sorted(path.name for path in tmp_path.iterdir())
    assert left == ["lightning_logs", "one.csv", "train.csv"]  # no out.csv, no part files


def test_data_on_a_scale_float32_cannot_train_suggests_standardizing(tmp_path: Path) -> None:
    x = np.random.default_rng(0).uniform(size=(60, 2))
    _write_csv(tmp_path / "huge.csv", ["a", "b", "y"], np.column_stack([x, 1e30 * x[:, 0]]))
    result = run_linreg("fit", "--data", "linreg.FileDataModule", "--data.path", "huge.csv",
                        "--trainer.max_epochs", "2", cwd=tmp_path, check=False)  # fmt: skip
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()[-1]
    assert "huge.csv, row " in message and "column 'y' holds " in message  # before any step
    assert "Standardize the targets (--data.normalize_target true)" in message
    assert not (tmp_path / "lightning_logs").exists()


def test_a_loss_growing_without_bound_is_divergence_even_while_finite(tmp_path: Path) -> None:
    # lr 1.0 is above the stable 0.8: the loss grows ~1.5x a step, finite for hundreds of steps
    result = run_linreg("fit", "--model.optimizer.lr", "1.0", "--trainer.max_epochs", "3",
                        "--data.batch_size", "32", "--trainer.enable_progress_bar", "false",
                        cwd=tmp_path, check=False)  # fmt: skip
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()[-1]
    assert re.search(
        r"the training loss grew from [\d.]+ to [\d.e+]+ at step \d+ \(epoch 0\)", message
    )
    assert "--model.optimizer.lr 0.1" in message and "data's scale" not in message
    assert "linreg: training finished" not in result.stdout
    assert not list(tmp_path.rglob("*.ckpt"))  # a diverged model is never saved


def test_a_rate_too_large_for_a_whole_batch_is_not_blamed_on_the_data(run_main) -> None:
    """A whole-split batch takes 50 steps before its loss is seen: NaN by then is the rate's."""
    code, stderr = run_main("fit", "--model.optimizer.lr", "10", "--trainer.enable_progress_bar",
                            "false")  # fmt: skip
    assert code == 2
    assert "the loss was already nan after the first 50 steps" in stderr
    assert "--model.optimizer.lr 1;" in stderr and "data's scale" not in stderr


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


@contextlib.contextmanager
def _tensorboard(logdir: Path, timeout: float = 60) -> Iterator[str]:
    """A real ``tensorboard`` on 127.0.0.1, at a port it picks itself (no race), and its URL.

    ``--port 0`` lets the server bind a free port; the URL is read from the line it prints once
    it listens ("TensorBoard x.y at http://127.0.0.1:PORT/ ...").
    """
    tensorboard = Path(sys.executable).with_name("tensorboard")
    server = subprocess.Popen(
        [str(tensorboard), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read_stderr() -> None:  # all of it, to the end: a full pipe would block the server
        assert server.stderr is not None
        for line in server.stderr:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:  # the server ended
                break
            seen.append(line)
            served = re.search(r"TensorBoard \S+ at (http://127\.0\.0\.1:\d+/)", line)
            if served:
                yield served.group(1)
                return
        pytest.fail(
            f"tensorboard did not say where it serves within {timeout} s (exit status "
            f"{server.poll()}); its output:\n{''.join(seen)[-4000:]}"
        )
    finally:
        server.terminate()
        server.wait(timeout=20)
        reader.join(timeout=20)
        assert server.stderr is not None
        server.stderr.close()


def _get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_a_real_tensorboard_server_serves_the_run(noisy_run: tuple[Path, str]) -> None:
    logdir = noisy_run[0].parent
    with _tensorboard(logdir) as url:
        deadline, scalar_tags = time.monotonic() + 60, {}
        while time.monotonic() < deadline and "version_0" not in scalar_tags:
            time.sleep(0.5)
            try:
                scalar_tags = _get_json(f"{url}data/plugin/scalars/tags")
            except OSError:
                continue
        assert "version_0" in scalar_tags, "tensorboard did not serve the run within 60 s"
        assert {"train/loss", "val/mse", "optimum/train_excess", "params/weight"} <= set(
            scalar_tags["version_0"]
        )
        image_tags = _get_json(f"{url}data/plugin/images/tags")
        assert "fit" in image_tags["version_0"]


def test_fit_pictures_are_log_spaced(run_main, tmp_path: Path) -> None:
    code, stderr = run_main("fit", "--trainer.max_epochs", "20", "--data.batch_size", "32",
                            "--trainer.enable_progress_bar", "false")  # fmt: skip
    assert code == 0, stderr
    images = _accumulator(tmp_path / "lightning_logs" / "version_0").Images("fit")
    steps_per_epoch = 25
    assert [image.step for image in images] == [s * steps_per_epoch - 1 for s in (1, 4, 16, 20)]


def test_a_plain_lightning_data_module_gets_the_exact_optimum_too() -> None:
    """Any data module's batches are read for the curvature and the gap, not only linreg's."""
    from lightning.pytorch import LightningDataModule, Trainer
    from torch.utils.data import DataLoader, TensorDataset

    class Plain(LightningDataModule):
        def setup(self, stage: str) -> None:
            x = torch.rand(400, 2, generator=torch.Generator().manual_seed(0))
            y = (x @ torch.tensor([1.0, -2.0]) + 0.5).unsqueeze(1)
            self.train, self.val = TensorDataset(x[:320], y[:320]), TensorDataset(x[320:], y[320:])

        def train_dataloader(self) -> DataLoader:
            return DataLoader(self.train, batch_size=32, shuffle=True)

        def val_dataloader(self) -> DataLoader:
            return DataLoader(self.val, batch_size=80)

    model = LinearRegression(2, 1)
    trainer = Trainer(max_epochs=300, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False,
                      callbacks=[OptimumGap(), Convergence()])  # fmt: skip
    trainer.fit(model, Plain())
    assert model.learning_rate is not None and "curvature" in model.learning_rate.reason
    assert trainer.callback_metrics["optimum/relative_excess"] <= 1e-6
    assert trainer.current_epoch < 50  # converged, not stopped by the cap
    assert model.linear.weight.detach().tolist()[0] == pytest.approx([1.0, -2.0], abs=1e-4)
