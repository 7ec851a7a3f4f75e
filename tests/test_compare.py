"""linreg compare: runs, curves against rows seen, the picture, the table; and the tutorial's recipe."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import yaml
from PIL import Image

from linreg.compare import METHODS
from tests.conftest import REPO, load_checkpoint, run_linreg, scalars

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``linreg compare`` with its defaults: the tutorial's 50 points, every method."""
    cwd = tmp_path_factory.mktemp("compare")
    result = run_linreg("compare", cwd=cwd)
    return cwd / "lightning_logs" / "compare_0", result.stdout


def _table(folder: Path) -> dict[str, dict[str, str]]:
    with open(folder / "compare.csv", newline="") as file:
        return {row["method"]: row for row in csv.DictReader(file)}


def test_every_method_is_a_named_run_with_curves_against_rows_seen(comparison) -> None:
    folder, _ = comparison
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == sorted(
        [*METHODS, "comparison"]
    )
    starts = {}
    for method in METHODS:
        series = scalars(folder / method)
        excess = series["by_samples/excess"]
        assert excess[0][0] == 0 and excess[-1][0] == int(_table(folder)[method]["samples"])
        assert [step for step, _ in excess] == sorted({step for step, _ in excess})  # rows seen
        starts[method] = excess[0][1]
    assert len(set(starts.values())) == 1  # one initial model for all


def test_every_method_reaches_the_tolerance_on_the_default_data(comparison) -> None:
    folder, stdout = comparison
    table = _table(folder)
    assert list(table) == list(METHODS)
    for method, row in table.items():
        assert row["steps_to_tolerance"] != "not reached", method
        assert float(row["final_excess"]) <= 1e-10, method
        assert abs(float(row["w_0"]) - 3.0) < 1e-4 and abs(float(row["b"]) - 0.8) < 1e-4, method
    batches = {method: int(row["batch_size"]) for method, row in table.items()}
    assert batches["bgd"] == 50 and batches["sgd"] == 1 and batches["adam"] == 10
    assert "method" in stdout and "to tolerance" in stdout and "compare.png" in stdout


def test_the_picture_is_saved_and_in_tensorboard(comparison) -> None:
    folder, _ = comparison
    with Image.open(folder / "compare.png") as image:
        assert image.size == (1200, 500)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder / "comparison"), size_guidance={"images": 0})
    events.Reload()
    assert "compare" in events.Tags()["images"]


def test_equal_budgets_when_every_method_uses_all_of_it(run_main, tmp_path: Path) -> None:
    code, stderr = run_main("compare", "--methods", "[bgd, sgd, adam]", "--budget", "300",
                            "--stop_at_tolerance", "false", "--learning_rates", "{adam: 0.05}")  # fmt: skip
    assert code == 0, stderr
    table = _table(tmp_path / "lightning_logs" / "compare_0")
    assert {method: int(row["samples"]) for method, row in table.items()} == {
        "bgd": 300, "sgd": 300, "adam": 300,
    }  # fmt: skip
    assert float(table["adam"]["lr"]) == 0.05


def test_equal_budgets_when_the_batch_does_not_divide_the_rows(run_main, tmp_path: Path) -> None:
    """15 training rows in mini-batches of 10: no short batch at the end of each pass."""
    code, stderr = run_main("compare", "--methods", "[bgd, sgd, minibatch, adam]",
                            "--budget", "3600", "--mini_batch", "10", "--stop_at_tolerance",
                            "false", "--data.n_samples", "15", "--data.val_fraction", "0",
                            "--data.test_fraction", "0")  # fmt: skip
    assert code == 0, stderr
    table = _table(tmp_path / "lightning_logs" / "compare_0")
    assert {method: int(row["samples"]) for method, row in table.items()} == {
        "bgd": 3600, "sgd": 3600, "minibatch": 3600, "adam": 3600,
    }  # fmt: skip
    assert int(table["minibatch"]["steps"]) == 360 and int(table["bgd"]["steps"]) == 240
    saved = yaml.safe_load((tmp_path / "lightning_logs/compare_0/adam/hparams.yaml").read_text())
    assert saved["optimizer"] == "Adam" and saved["batch_size"] == 10  # the method's, not SGD's
    assert math.isfinite(saved["lr"]) and saved["steps_per_batch"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--methods", "[bgd, newton]"], "--methods: unknown 'newton'; choose from bgd, sgd"),
        (["--budget", "0"], "--budget is a number of rows seen, at least 1"),
        (["--mini_batch", "0"], "--mini_batch must be a positive integer"),
        (["--methods", "[]"], "--methods: none given; choose from bgd"),
        (
            ["--methods", "[adam]", "--learning_rates", "{adam: -1}"],
            "--learning_rates: adam's rate must be a positive number, got -1",
        ),
        (
            ["--methods", "[adam]", "--learning_rates", "{adm: 0.5}"],
            "--learning_rates: 'adm' is not one of the methods compared (adam)",
        ),
        (["--rtol", "-1"], "--rtol must be in (0, 1), got -1"),
        (["--budget", "20"], "--budget 20 is less than one step of the largest batch (50 rows)"),
    ],
    ids=[
        "unknown-method",
        "no-budget",
        "no-batch",
        "no-method",
        "negative-rate",
        "rate-of-no-method",
        "negative-tolerance",
        "budget-below-one-step",
    ],
)
def test_mistakes_are_one_line(run_main, tmp_path: Path, args: list[str], message: str) -> None:
    code, stderr = run_main("compare", *args)
    assert code == 2 and message in stderr
    assert not (tmp_path / "lightning_logs").exists()


def test_the_tutorials_recipe_ends_where_the_tutorial_does(linreg, tmp_path: Path) -> None:
    result = linreg("fit", "--config", str(REPO / "configs" / "tutorial.yaml"),
                        "--trainer.enable_progress_bar", "false", cwd=tmp_path)  # fmt: skip
    checkpoint = load_checkpoint(
        tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    )
    assert checkpoint["global_step"] * 1000 == 30_000  # 30 epochs of 1,000 BGD steps
    weight = float(checkpoint["state_dict"]["linear.weight"])
    bias = float(checkpoint["state_dict"]["linear.bias"])
    assert 2.85 < weight < 3.0 and 0.8 < bias < 0.9  # the tutorial: w ≈ 2.96, b ≈ 0.82
    assert "not converged" in result.stdout  # lr 1e-3 is too small to get there, and says so
