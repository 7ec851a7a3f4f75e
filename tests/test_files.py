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
FIT = ("fit", "--data", "linreg.FileDataModule", *QUIET)
PREDICT = ("predict", "--ckpt_path", "lightning_logs/version_0/checkpoints/best.ckpt")


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
def test_predict_from_a_config_file(trained: Path, tmp_path: Path) -> None:
    shutil.copytree(trained, tmp_path, dirs_exist_ok=True)
    (tmp_path / "predict.yaml").write_text(
        "ckpt_path: best\npredictions: from_config.csv\ndata:\n  path: new.csv\n"
    )
    run_linreg("predict", "--config", "predict.yaml", cwd=tmp_path)
    assert (tmp_path / "from_config.csv").read_text() == (tmp_path / "predictions.csv").read_text()


@pytest.mark.slow
@pytest.mark.ddp
def test_predictions_keep_row_order_and_count_under_ddp(trained: Path, tmp_path: Path) -> None:
    shutil.copytree(trained, tmp_path, dirs_exist_ok=True)
    new_x, truth = _table(11, seed=4)  # odd: the two processes get 6 and 5 rows
    _write_csv(tmp_path / "eleven.csv", ["a", "b", "c"], new_x)
    result = run_linreg(*PREDICT, "--data.path", "eleven.csv", "--predictions", "ddp.csv",
                        "--trainer.accelerator", "cpu", "--trainer.devices", "2",
                        "--trainer.strategy", "ddp", cwd=tmp_path)  # fmt: skip
    assert result.stdout.count("wrote 11 predictions") == 1
    header, *rows = (tmp_path / "ddp.csv").read_text().splitlines()
    assert header == "price,rent" and len(rows) == 11
    predicted = np.array([[float(v) for v in row.split(",")] for row in rows])
    np.testing.assert_allclose(predicted, truth, rtol=1e-3, atol=0.05)  # row i is input row i
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".ddp.csv")]


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
def test_target_columns_partly_there_or_unknown_are_ignored_to_predict(
    trained: Path, tmp_path: Path
) -> None:
    shutil.copytree(trained, tmp_path, dirs_exist_ok=True)
    new_x, truth = _table(4, seed=3)
    _write_csv(tmp_path / "partial.csv", ["a", "b", "c", "price"], np.hstack([new_x, truth[:, :1]]))
    rows = [f"?,{x[2]:.10g},,{x[0]:.10g},{x[1]:.10g}" for x in new_x]  # rent unknown, price empty
    (tmp_path / "unknown.csv").write_text("\n".join(["rent,c,price,a,b", *rows]) + "\n")
    for name in ("partial", "unknown"):
        run_linreg("predict", "--ckpt_path", "best", "--data.path", f"{name}.csv",
                   "--predictions", f"{name}_out.csv", cwd=tmp_path)  # fmt: skip
        header, *_ = (tmp_path / f"{name}_out.csv").read_text().splitlines()
        assert header == "price,rent"
        predicted = np.loadtxt(tmp_path / f"{name}_out.csv", delimiter=",", skiprows=1)
        np.testing.assert_allclose(predicted, truth, rtol=1e-3, atol=0.05)


@pytest.fixture(scope="module")
def trained_default_target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a run trained on d.csv (a, b, y) with the default target: the last column."""
    folder = tmp_path_factory.mktemp("default_target")
    x, y = _table(200)
    _write_csv(folder / "d.csv", ["a", "b", "y"], np.hstack([x[:, :2], y[:, :1]]))
    run_linreg(*FIT, "--data.path", "d.csv", "--trainer.max_epochs", "1", cwd=folder)
    return folder


@pytest.mark.slow
def test_columns_are_found_by_name_when_the_target_was_the_default(
    trained_default_target: Path, tmp_path: Path
) -> None:
    shutil.copytree(trained_default_target, tmp_path, dirs_exist_ok=True)
    checkpoint = load_checkpoint(tmp_path / "lightning_logs/version_0/checkpoints/best.ckpt")
    hparams = checkpoint["datamodule_hyper_parameters"]
    assert (hparams["features"], hparams["target"]) == (["a", "b"], "y")
    x, _ = _table(6, seed=4)
    a, b = (f"{v:.10g}" for v in x[:, 0]), (f"{v:.10g}" for v in x[:, 1])
    layouts = {  # the same rows: no target, an extra last column, the target first and empty
        "ab": ["a,b", *(f"{i},{j}" for i, j in zip(a, b, strict=True))],
        "extra": ["b,a,extra", *(f"{v:.10g},{u:.10g},7" for u, v in x[:, :2])],
        "target_first": ["y,a,b", *(f",{u:.10g},{v:.10g}" for u, v in x[:, :2])],
    }
    outputs = []
    for name, lines in layouts.items():
        (tmp_path / f"{name}.csv").write_text("\n".join(lines) + "\n")
        run_linreg("predict", "--ckpt_path", "best", "--data.path", f"{name}.csv",
                   "--predictions", f"{name}_out.csv", cwd=tmp_path)  # fmt: skip
        outputs.append((tmp_path / f"{name}_out.csv").read_text())
    assert outputs[0].startswith("y\n") and len(outputs[0].splitlines()) == 7
    assert outputs[1] == outputs[0] and outputs[2] == outputs[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("file", "target", "name"),
    [
        pytest.param("d.csv", "1", "b", id="csv-index"),
        pytest.param("d.npy", "0", "column_0", id="npy-index"),
        pytest.param("d.npy", "-2", "column_2", id="npy-negative-index"),
    ],
)
def test_a_column_index_on_the_command_line_is_the_target(
    tmp_path: Path, file: str, target: str, name: str
) -> None:
    x, _ = _table(100)
    table = np.hstack([x, x[:, :1]])
    _write_csv(tmp_path / "d.csv", ["a", "b", "c", "y"], table)
    np.save(tmp_path / "d.npy", table)
    run_linreg(*FIT, "--data.path", file, "--data.target", target, "--trainer.max_epochs", "1",
               cwd=tmp_path)  # fmt: skip
    checkpoint = load_checkpoint(tmp_path / "lightning_logs/version_0/checkpoints/best.ckpt")
    hparams = checkpoint["datamodule_hyper_parameters"]
    assert hparams["target"] == name and name not in hparams["features"]
    assert len(hparams["features"]) == 3


@pytest.mark.slow
def test_messy_but_valid_csv_trains(tmp_path: Path) -> None:
    """A byte-order mark, blank lines (also before the header), quoted numbers and an unused
    text column with the separator inside quotes: all valid CSV."""
    x, y = _table(400)
    rows = [
        f'"{r[0]:.10g}","Smith, J.",{r[1]:.10g},{r[2]:.10g},{t:.10g}'
        for r, t in zip(x, y[:, 0], strict=True)
    ]
    text = "\n".join(["", "", "a,name,b,c,y", "", *rows[:200], "", *rows[200:]]) + "\n"
    (tmp_path / "messy.csv").write_text(text, encoding="utf-8-sig")
    result = run_linreg(*FIT, "--data.path", "messy.csv", "--data.features", "[a, b, c]",
                        cwd=tmp_path)  # fmt: skip
    assert "val/r2 = 1" in result.stdout
    checkpoint = load_checkpoint(tmp_path / "lightning_logs/version_0/checkpoints/best.ckpt")
    assert checkpoint["FileDataModule"]["features"] == ["a", "b", "c"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("file", "options"),
    [
        pytest.param("d.tsv", (), id="tsv-default"),
        pytest.param("d.txt", ("--data.delimiter", "\\t"), id="backslash-t"),
    ],
)
def test_tab_separated_files(tmp_path: Path, file: str, options: tuple[str, ...]) -> None:
    x, y = _table(100)
    with open(tmp_path / file, "w") as out:
        out.write("a\tb\tc\ty\n")
        np.savetxt(out, np.hstack([x, y[:, :1]]), delimiter="\t", fmt="%.10g")
    run_linreg(*FIT, "--data.path", file, *options, "--trainer.max_epochs", "1", cwd=tmp_path)
    checkpoint = load_checkpoint(tmp_path / "lightning_logs/version_0/checkpoints/best.ckpt")
    assert checkpoint["FileDataModule"]["features"] == ["a", "b", "c"]


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
def test_npz_trains_with_chosen_columns_and_predicts_from_x_alone(tmp_path: Path) -> None:
    x, y = _table(1000)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    result = run_linreg(*FIT, "--data.path", "data.npz", "--data.features", "[x_0, 1, x_2]",
                        "--data.target", "y_1", cwd=tmp_path)  # fmt: skip
    assert "val/r2 = 1" in result.stdout
    new_x, truth = _table(5, seed=5)
    np.savez(tmp_path / "new.npz", x=new_x)  # no y: enough to predict
    run_linreg("predict", "--ckpt_path", "best", "--data.path", "new.npz",
               "--predictions", "out.csv", cwd=tmp_path)  # fmt: skip
    header, *_ = (tmp_path / "out.csv").read_text().splitlines()
    assert header == "y_1"
    predicted = np.loadtxt(tmp_path / "out.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(predicted, truth[:, 1], rtol=1e-3, atol=0.05)


def test_npz_features_and_target_are_honoured(tmp_path: Path) -> None:
    x, y = _table(50)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    data = FileDataModule(str(tmp_path / "data.npz"), features=["x_0", 2], target="y_0")
    data.check("fit")
    assert (data.feature_names, data.target_names) == (["x_0", "x_2"], ["y_0"])
    features, targets = data.load_arrays()
    np.testing.assert_allclose(features, x[:, [0, 2]], rtol=1e-6)
    np.testing.assert_allclose(targets, y[:, :1], rtol=1e-6)


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
    (folder / "wide.csv").write_text("a,b,c,price,rent\n" + "1,2,3,4,5,6\n" * 50)
    (folder / "narrow.csv").write_text("a,b,c,price,rent\n1,2,3,4,5\n1,2,3,4\n")
    (folder / "huge.csv").write_text("a,b,c,price,rent\n1,2,3,4,5\n1,2,1e39,4,5\n")
    np.save(folder / "huge.npy", np.array([[1.0, 2.0, 3.0], [1.0, -1e39, 3.0]]))
    (folder / "latin1.csv").write_bytes(
        "a,b,c,price,rent\n1,2,3,4,5\n\xe9,2,3,4,5\n".encode("latin-1")
    )
    (folder / "semicolon.csv").write_text("a;b;c;price;rent\n1;2;3;4;5\n")
    (folder / "blank_lines.csv").write_text("\n\na,b,c,price,rent\n\n1,2,3,4,5\n\n1,abc,3,4,5\n")
    (folder / "duplicate.csv").write_text("a,a,c,price,rent\n1,2,3,4,5\n")
    _write_csv(folder / "partial.csv", ["a", "b", "c", "price"], np.ones((50, 4)))
    np.savez(folder / "data.npz", x=np.ones((50, 3)), y=np.ones(50))
    np.savez(folder / "x_only.npz", x=np.ones((50, 3)))
    np.savez(folder / "no_x.npz", features=np.ones((50, 3)))
    torch.save({"weights": torch.ones(2)}, folder / "foreign.ckpt")
    torch.save({"state_dict": {"layer.weight": torch.ones(2, 32)}, "pytorch-lightning_version": "2.6.6"},
               folder / "other_model.ckpt")  # fmt: skip
    (folder / "no_header.csv").write_text("1,2,3,4,5\n" * 50)
    (folder / "trailing_comma.csv").write_text("a,b,c,price,rent,\n" + "1,2,3,4,5,\n" * 50)
    (folder / "labels.csv").write_text("id,a,b,c,price,rent\n" + "r,1,2,3,4,5\n" * 50)


BAD_INPUTS = [
    pytest.param((*FIT, "--data.path", "missing.csv"), "data file missing.csv does not exist", id="missing-file"),
    pytest.param((*FIT, "--data.path", "empty.csv"), "empty.csv is empty", id="empty-file"),
    pytest.param((*FIT, "--data.path", "header_only.csv"), "header_only.csv has a header (a, b, c, price, rent) but no data rows", id="header-only"),
    pytest.param((*FIT, "--data.path", "houses.csv", "--data.target", "prize"), "has no column 'prize' to use as the target; its columns are: a, b, c, price, rent. Set --data.target.", id="unknown-target"),
    pytest.param((*FIT, "--data.path", "houses.csv", "--data.target", "7"), "has no column '7' to use as the target; its columns are: a, b, c, price, rent. Set", id="target-index-out-of-range"),
    pytest.param(("test", "--ckpt_path", "best", "--data.path", "partial.csv"), "partial.csv has no column 'rent' to use as the target; its columns are: a, b, c, price. Set", id="test-without-a-target"),
    pytest.param((*FIT, "--data.path", "houses.csv", "--data.features", "[a, a]"), "--data.features names column 'a' twice", id="feature-twice"),
    pytest.param((*FIT, "--data.path", "duplicate.csv"), "duplicate.csv: the header names column 'a' twice", id="header-name-twice"),
    pytest.param((*FIT, "--data.path", "wide.csv"), "wide.csv, row 1 (line 2) has 6 values but the header has 5 columns", id="rows-wider-than-header"),
    pytest.param((*FIT, "--data.path", "narrow.csv"), "narrow.csv, row 2 (line 3) has 4 values but the header has 5 columns", id="row-narrower-than-header"),
    pytest.param((*FIT, "--data.path", "blank_lines.csv"), "blank_lines.csv, row 2 (line 7), column 'b' is not a number: 'abc'", id="blank-lines-not-counted"),
    pytest.param((*FIT, "--data.path", "huge.csv"), "huge.csv, row 2, column 'c' holds 1e+39, too large for float32", id="csv-beyond-float32"),
    pytest.param((*FIT, "--data.path", "huge.npy"), "huge.npy, row 2, column 'column_1' holds -1e+39, too large for float32", id="npy-beyond-float32"),
    pytest.param((*FIT, "--data.path", "latin1.csv"), "latin1.csv is not UTF-8 text. Save it as UTF-8", id="not-utf8"),
    pytest.param((*FIT, "--data.path", "semicolon.csv"), "found only one column in the header 'a;b;c;price;rent'; is the separator ';'? Set --data.delimiter ';'.", id="wrong-separator"),
    pytest.param((*FIT, "--data.path", "houses.csv", "--data.delimiter", ";;"), "--data.delimiter must be one character", id="delimiter-two-characters"),
    pytest.param((*FIT, "--data.path", "data.npz", "--data.target", "nonsense"), "data.npz has no column 'nonsense' to use as the target; its columns are: x_0, x_1, x_2, y.", id="npz-unknown-target"),
    pytest.param((*FIT, "--data.path", "x_only.npz"), "x_only.npz has no column 'y' to use as the target", id="npz-fit-without-y"),
    pytest.param((*FIT, "--data.path", "no_x.npz"), "linreg: error: no_x.npz must hold an array named 'x' (the features)", id="npz-without-x"),
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
    pytest.param(("test", "--ckpt_path", "other_model.ckpt"), "other_model.ckpt is not a checkpoint of LinearRegression: it holds layer.weight", id="other-lightning-model"),
    pytest.param((*FIT, "--data.path", "no_header.csv"), "no_header.csv: the first line (1, 2, 3, 4, 5) holds numbers, not column names", id="no-header"),
    pytest.param((*FIT, "--data.path", "trailing_comma.csv"), "column 6 of the header has no name (a delimiter at the end of the line?)", id="trailing-delimiter"),
    pytest.param((*FIT, "--data.path", "labels.csv", "--data.target", "rent"), "column 'id' is not a number: 'r'. Fix or remove that row. If the column holds text in every row, leave it out: --data.features \"[a, b, c, price]\"", id="text-column"),
    pytest.param((*FIT, "--data.path", "houses.csv", "--data.target", "[]"), "--data.target is an empty list", id="no-target"),
    pytest.param((*FIT, "--data.path", "houses.csv", "--model.fit_intercept", "false"), "centres the features, which puts an intercept back: add --data.normalize false", id="origin-line-on-centred-data"),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("args", "message"), BAD_INPUTS)
def test_bad_input_is_one_clear_message_and_loses_nothing(
    trained: Path, tmp_path: Path, args: tuple[str, ...], message: str, run_main
) -> None:
    shutil.copytree(trained, tmp_path, dirs_exist_ok=True)
    _bad_files(tmp_path)
    before = _digest(tmp_path)
    code, stderr = run_main(*args)  # each case fails before any training: run in-process
    assert code == 2, stderr[-2000:]
    errors = [line for line in stderr.splitlines() if line.startswith("linreg: error:")]
    assert len(errors) == 1 and message in errors[0], stderr[-2000:]
    assert _digest(tmp_path) == before  # no file changed, none added: no new run folder either


def test_errors_name_the_file_and_columns_in_python_too(tmp_path: Path) -> None:
    _write_csv(tmp_path / "d.csv", ["x1", "x2", "y"], np.ones((50, 3)))
    with pytest.raises(
        UserInputError, match=r"has no feature column 'x3'; its columns are: x1, x2, y"
    ):
        FileDataModule(str(tmp_path / "d.csv"), features=["x1", "x3"]).check("fit")
    np.save(tmp_path / "words.npy", np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(UserInputError, match=r"holds <U1 values; linreg needs numbers"):
        FileDataModule(str(tmp_path / "words.npy")).check("fit")
    np.save(tmp_path / "one.npy", np.ones((50, 3)))
    (tmp_path / "one.npy").rename(tmp_path / "one.npz")
    with pytest.raises(
        UserInputError, match=r"one.npz is not a readable .npz archive \(it holds one"
    ):
        FileDataModule(str(tmp_path / "one.npz")).check("fit")
    with pytest.raises(UserInputError, match=r"unsupported file type '\.parquet'"):
        (tmp_path / "d.parquet").write_bytes(b"PAR1")
        _ = FileDataModule(str(tmp_path / "d.parquet")).num_features
