"""Your own data: FileDataModule end to end, predictions to CSV, and every bad input's message."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from linreg import FileDataModule
from linreg.errors import UserInputError
from tests.conftest import load_checkpoint, run_linreg, scalars

QUIET = ("--trainer.enable_progress_bar", "false", "--insights.fit_plot_every_n_epochs", "null")
WEIGHTS = np.array([[2.0, -1.0], [-0.3, 0.1], [0.01, 0.02]])  # 3 features -> 2 targets
BIAS = np.array([5.0, -3.0])


def _table(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features on very different scales (so standardization matters) and exact targets."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3)) * [1, 10, 100] + [0, 50, 1000]
    return x, x @ WEIGHTS + BIAS


def _write_csv(path: Path, header: list[str], table: np.ndarray) -> Path:
    with open(path, "w") as file:
        file.write(",".join(header) + "\n")
        np.savetxt(file, table, delimiter=",", fmt="%.10g")
    return path


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with houses.csv, a run trained on it, and a predictions file from that run."""
    folder = tmp_path_factory.mktemp("trained")
    x, y = _table(2000)
    _write_csv(folder / "houses.csv", ["a", "b", "c", "price", "rent"], np.hstack([x, y]))
    run_linreg("fit", "--data", "linreg.FileDataModule", "--data.path", "houses.csv",
               "--data.target", "[price, rent]", *QUIET, cwd=folder)  # fmt: skip
    new_x, _ = _table(7, seed=1)
    _write_csv(folder / "new.csv", ["a", "b", "c"], new_x)
    run_linreg("predict", "--ckpt_path", "lightning_logs/version_0/checkpoints/best.ckpt",
               "--data.path", "new.csv", "--predictions", "predictions.csv", cwd=folder)  # fmt: skip
    return folder


@pytest.mark.slow
def test_csv_round_trip_three_features_two_targets(trained: Path) -> None:
    header, *rows = (trained / "predictions.csv").read_text().splitlines()
    assert header == "price,rent"
    predicted = np.array([[float(v) for v in row.split(",")] for row in rows])
    _, truth = _table(7, seed=1)
    assert predicted.shape == (7, 2)  # one row per input row, in order
    np.testing.assert_allclose(predicted, truth, rtol=1e-3, atol=0.05)
    series = scalars(trained / "lightning_logs" / "version_0")
    assert {"val/mse_0", "val/mse_1", "val/r2_0", "val/r2_1"} <= set(series)
    assert series["val/r2"][-1][1] > 0.9999


@pytest.mark.slow
def test_target_column_present_at_predict_time_is_ignored(trained: Path, tmp_path: Path) -> None:
    shutil.copytree(trained, tmp_path, dirs_exist_ok=True)
    new_x, truth = _table(5, seed=2)
    _write_csv(
        tmp_path / "labelled.csv", ["a", "b", "c", "price", "rent"], np.hstack([new_x, truth * 0])
    )
    run_linreg("predict", "--ckpt_path", "best", "--data.path", "labelled.csv",
               "--predictions", "out.csv", cwd=tmp_path)  # fmt: skip
    predicted = np.loadtxt(tmp_path / "out.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(predicted, truth, rtol=1e-3, atol=0.05)


@pytest.mark.slow
def test_test_subcommand_reports_metrics_from_the_checkpoint(trained: Path, tmp_path: Path) -> None:
    shutil.copytree(trained, tmp_path, dirs_exist_ok=True)
    result = run_linreg("test", "--ckpt_path", "best", "--trainer.enable_progress_bar", "false",
                        cwd=tmp_path)  # fmt: skip
    for metric in ("test/mse", "test/mae", "test/r2"):
        assert metric in result.stdout
    series = scalars(tmp_path / "lightning_logs" / "version_1")
    assert series["test/r2"][-1][1] > 0.9999


@pytest.mark.slow
def test_normalized_target_predicts_in_original_units(tmp_path: Path) -> None:
    x, y = _table(1000)
    _write_csv(tmp_path / "data.csv", ["a", "b", "c", "price"], np.hstack([x, y[:, :1] * 1000]))
    run_linreg("fit", "--data", "linreg.FileDataModule", "--data.path", "data.csv",
               "--data.normalize_target", "true", *QUIET, cwd=tmp_path)  # fmt: skip
    checkpoint = load_checkpoint(tmp_path / "lightning_logs/version_0/checkpoints/best.ckpt")
    statistics = checkpoint["FileDataModule"]["statistics"]
    assert statistics["target_std"].item() > 100  # the model learned standardized targets
    run_linreg("predict", "--ckpt_path", "best", "--predictions", "out.csv", cwd=tmp_path)
    predicted = np.loadtxt(tmp_path / "out.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(predicted, y[:, 0] * 1000, rtol=1e-3, atol=20)


def test_standardization_uses_the_training_split_only(tmp_path: Path) -> None:
    x, y = _table(500)
    data = FileDataModule(
        str(_write_csv(tmp_path / "d.csv", ["a", "b", "c", "y"], np.hstack([x, y[:, :1]])))
    )
    data.setup("fit")
    train_rows = data._split_rows(500)["train"].numpy()
    stats = data.state_dict()["statistics"]
    np.testing.assert_allclose(stats["feature_mean"], x[train_rows].mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats["feature_std"], x[train_rows].std(0), rtol=1e-4)
    batch_x, batch_y = data.datasets["train"][:]
    assert abs(batch_x.mean().item()) < 1e-4 and abs(batch_x.std(0).mean().item() - 1) < 1e-2
    np.testing.assert_allclose(batch_y.numpy()[:, 0], y[train_rows, 0], rtol=1e-5)


def test_npy_is_memory_mapped_and_trains(tmp_path: Path) -> None:
    x, y = _table(3000)
    np.save(tmp_path / "table.npy", np.hstack([x, y[:, :1]]).astype(np.float32))
    data = FileDataModule(str(tmp_path / "table.npy"), batch_size=64)
    assert (data.num_features, data.num_targets) == (3, 1)
    data.setup("fit")
    train = data.datasets["train"]
    assert isinstance(train.x, np.memmap) or isinstance(train.x.base, np.memmap)
    assert train.x.flags.owndata is False  # a view of the file, not a copy in memory
    from lightning.pytorch import Trainer

    from linreg import LinearRegression

    model = LinearRegression(3, 1)
    Trainer(max_epochs=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False).fit(model, data)  # fmt: skip
    stats = data.state_dict()["statistics"]
    weight = model.linear.weight.detach()[0] / stats["feature_std"]
    np.testing.assert_allclose(weight.numpy(), WEIGHTS[:, 0], rtol=1e-2, atol=1e-3)


@pytest.mark.slow
def test_npz_with_x_and_y_trains_from_the_command_line(tmp_path: Path) -> None:
    x, y = _table(1000)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    result = run_linreg("fit", "--data", "linreg.FileDataModule", "--data.path", "data.npz",
                        *QUIET, cwd=tmp_path)  # fmt: skip
    assert "val/r2 = 1" in result.stdout


# -- bad input: one message, exit status 2, nothing earlier touched -----------------------------


def _bad_files(folder: Path) -> None:
    (folder / "empty.csv").write_text("")
    (folder / "header_only.csv").write_text("a,b,c,price,rent\n")
    (folder / "words.csv").write_text("a,b,c,price,rent\n1,2,3,4,5\n1,abc,3,4,5\n")
    (folder / "holes.csv").write_text("a,b,c,price,rent\n1,2,3,4,5\n1,nan,3,4,5\n1,2,inf,4,5\n")
    (folder / "ragged.csv").write_text("a,b,c,price,rent\n1,2,3,4,5\n1,2,3\n")
    _write_csv(folder / "few.csv", ["a", "b", "c", "price", "rent"], np.ones((5, 5)))
    _write_csv(folder / "other_columns.csv", ["a", "b", "d"], np.ones((3, 3)))
    np.save(folder / "cube.npy", np.ones((4, 3, 2)))
    torch.save({"weights": torch.ones(2)}, folder / "foreign.ckpt")


FIT = ("fit", "--data", "linreg.FileDataModule", *QUIET)
PREDICT = ("predict", "--ckpt_path", "lightning_logs/version_0/checkpoints/best.ckpt")
BAD_INPUTS = [
    pytest.param((*FIT, "--data.path", "missing.csv"), "data file missing.csv does not exist", id="missing-file"),
    pytest.param((*FIT, "--data.path", "empty.csv"), "empty.csv is empty", id="empty-file"),
    pytest.param((*FIT, "--data.path", "header_only.csv"), "header_only.csv has a header (a, b, c, price, rent) but no data rows", id="header-only"),
    pytest.param((*FIT, "--data.path", "houses.csv", "--data.target", "prize"), "has no column 'prize' to use as the target; its columns are: a, b, c, price, rent", id="unknown-target"),
    pytest.param((*FIT, "--data.path", "houses.csv", "--data.features", "[a, z]"), "has no feature column 'z'; its columns are: a, b, c, price, rent", id="unknown-feature"),
    pytest.param((*FIT, "--data.path", "words.csv"), "words.csv, row 2 (line 3), column 'b' is not a number: 'abc'", id="non-numeric"),
    pytest.param((*FIT, "--data.path", "holes.csv"), "holes.csv has 2 missing or infinite value(s) (NaN/inf); the first is in row 2, column 'b'", id="nan-inf"),
    pytest.param((*FIT, "--data.path", "ragged.csv"), "ragged.csv, row 2 (line 3) has 3 values but the header has 5 columns", id="ragged-row"),
    pytest.param((*FIT, "--data.path", "few.csv"), "few.csv has 5 rows, which leaves 3 for training, fewer than batch_size=32", id="too-few-rows"),
    pytest.param((*FIT, "--data.path", "cube.npy"), "cube.npy holds a 3-D array of shape (4, 3, 2)", id="npy-not-2d"),
    pytest.param((*PREDICT, "--data.path", "other_columns.csv", "--predictions", "p.csv"), "does not have the columns the model was trained on", id="predict-other-columns"),
    pytest.param((*PREDICT, "--data.path", "new.csv", "--predictions", "new.csv"), "is the input file itself", id="predict-over-input"),
    pytest.param(("predict", "--ckpt_path", "nowhere.ckpt"), "checkpoint nowhere.ckpt does not exist", id="missing-checkpoint"),
    pytest.param(("test", "--ckpt_path", "foreign.ckpt"), "foreign.ckpt is not a linreg checkpoint", id="foreign-checkpoint"),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("args", "message"), BAD_INPUTS)
def test_bad_input_is_one_clear_message_and_loses_nothing(
    trained: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    shutil.copytree(trained, tmp_path, dirs_exist_ok=True)
    _bad_files(tmp_path)
    before = _digest(tmp_path)
    result = run_linreg(*args, cwd=tmp_path, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("linreg: error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert _digest(tmp_path) == before  # no file changed, none added: no new run folder either


def test_errors_name_the_file_and_columns_in_python_too(tmp_path: Path) -> None:
    _write_csv(tmp_path / "d.csv", ["x1", "x2", "y"], np.ones((50, 3)))
    with pytest.raises(
        UserInputError, match=r"has no feature column 'x3'; its columns are: x1, x2, y"
    ):
        FileDataModule(str(tmp_path / "d.csv"), features=["x1", "x3"]).check("fit")
    with pytest.raises(UserInputError, match=r"unsupported file type '\.parquet'"):
        (tmp_path / "d.parquet").write_bytes(b"PAR1")
        _ = FileDataModule(str(tmp_path / "d.parquet")).num_features
