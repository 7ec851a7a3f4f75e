"""TensorBoard that teaches: every tag of a real run, read back with tensorboard's own tools."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from linreg import SyntheticDataModule
from tests.conftest import run_linreg, scalars

pytestmark = pytest.mark.slow

NOISY = ("--data.noise", "0.1", "--data.seed", "3", "--trainer.max_epochs", "6",
         "--trainer.enable_progress_bar", "false", "--insights.fit_plot_every_n_epochs", "2")  # fmt: skip


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
    assert "the exact least-squares optimum is" in stdout and "SGD reached" in stdout


def test_fit_picture_in_tensorboard_and_as_png(noisy_run: tuple[Path, str]) -> None:
    run_dir, _ = noisy_run
    images = _accumulator(run_dir).Images("fit")
    assert [image.step for image in images] == sorted(image.step for image in images)
    assert len(images) == 3  # epochs 2 and 4, then the end (epoch 6)
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
    off = ("--insights.parameters", "false", "--insights.optimum_gap", "false",
           "--insights.fit_plot_every_n_epochs", "null", "--insights.hparams", "false")  # fmt: skip
    result = run_linreg("fit", *off, "--trainer.max_epochs", "2",
                        "--trainer.enable_progress_bar", "false", cwd=tmp_path)  # fmt: skip
    run_dir = tmp_path / "lightning_logs" / "version_0"
    tags = set(scalars(run_dir))
    assert {"train/loss", "val/mse"} <= tags
    assert not any(tag.startswith(("params/", "optimum/", "hparams/")) for tag in tags)
    assert not (run_dir / "fit.png").exists()
    assert "optimum is" not in result.stdout
    assert "learned weight" in result.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_a_real_tensorboard_server_serves_the_run(noisy_run: tuple[Path, str]) -> None:
    logdir = noisy_run[0].parent
    port = _free_port()
    tensorboard = Path(sys.executable).with_name("tensorboard")
    server = subprocess.Popen(
        [str(tensorboard), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline, scalar_tags = time.monotonic() + 60, {}
        while time.monotonic() < deadline and "version_0" not in scalar_tags:
            time.sleep(0.5)
            try:
                scalar_tags = _get_json(f"http://127.0.0.1:{port}/data/plugin/scalars/tags")
            except OSError:
                continue
        assert "version_0" in scalar_tags, "tensorboard did not serve the run within 60 s"
        assert {"train/loss", "val/mse", "optimum/train_excess", "params/weight"} <= set(
            scalar_tags["version_0"]
        )
        image_tags = _get_json(f"http://127.0.0.1:{port}/data/plugin/images/tags")
        assert "fit" in image_tags["version_0"]
    finally:
        server.terminate()
        server.wait(timeout=20)
