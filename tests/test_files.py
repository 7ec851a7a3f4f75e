"""Your own data: FileDataModule end to end, predictions to CSV, and every bad input's message."""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from linreg import FileDataModule
from linreg.errors import UserInputError
from tests.conftest import load_checkpoint, run_linreg, scalars

QUIET = ("--trainer.enable_progress_bar", "false", "--fit_plot", "null")
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
def test_predict_from_a_config_file(linreg, trained: Path, tmp_path: Path) -> None:
    shutil.copytree(trained, tmp_path, dirs_exist_ok=True)
    (tmp_path / "predict.yaml").write_text(
        "ckpt_path: best\npredictions: from_config.csv\ndata:\n  path: new.csv\n"
    )
    linreg("predict", "--config", "predict.yaml", cwd=tmp_path)
    assert (tmp_path / "from_config.csv").read_text() == (tmp_path / "predictions.csv").read_text()


@pytest.mark.slow
@pytest.mark.ddp
def test_predictions_keep_row_order_and_count_under_ddp(
    linreg, trained: Path, tmp_path: Path
) -> None:
    shutil.copytree(trained, tmp_path, dirs_exist_ok=True)
    new_x, truth = _table(11, seed=4)  # odd: the two processes get 6 and 5 rows
    _write_csv(tmp_path / "eleven.csv", ["a", "b", "c"], new_x)
    result = linreg(*PREDICT, "--data.path", "eleven.csv", "--predictions", "ddp.csv",
                        "--trainer.accelerator", "cpu", "--trainer.devices", "2",
                        "--trainer.strategy", "ddp", cwd=tmp_path)  # fmt: skip
    assert result.stdout.count("wrote 11 predictions") == 1
    header, *rows = (tmp_path / "ddp.csv").read_text().splitlines()
    assert header == "price,rent" and len(rows) == 11
    predicted = np.array([[float(v) for v in row.split(",")] for row in rows])
    np.testing.assert_allclose(predicted, truth, rtol=1e-3, atol=0.05)  # row i is input row i
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".ddp.csv")]


@pytest.mark.slow
def test_target_column_present_at_predict_time_is_ignored(
    linreg, trained: Path, tmp_path: Path
) -> None:
    shutil.copytree(trained, tmp_path, dirs_exist_ok=True)
    new_x, truth = _table(5, seed=2)
    _write_csv(
        tmp_path / "labelled.csv", ["a", "b", "c", "price", "rent"], np.hstack([new_x, truth * 0])
    )
    linreg("predict", "--ckpt_path", "best", "--data.path", "labelled.csv",
               "--predictions", "out.csv", cwd=tmp_path)  # fmt: skip
    predicted = np.loadtxt(tmp_path / "out.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(predicted, truth, rtol=1e-3, atol=0.05)


@pytest.mark.slow
def test_target_columns_partly_there_or_unknown_are_ignored_to_predict(
    linreg, trained: Path, tmp_path: Path
) -> None:
    shutil.copytree(trained, tmp_path, dirs_exist_ok=True)
    new_x, truth = _table(4, seed=3)
    _write_csv(tmp_path / "partial.csv", ["a", "b", "c", "price"], np.hstack([new_x, truth[:, :1]]))
    rows = [f"?,{x[2]:.10g},,{x[0]:.10g},{x[1]:.10g}" for x in new_x]  # rent unknown, price empty
    (tmp_path / "unknown.csv").write_text("\n".join(["rent,c,price,a,b", *rows]) + "\n")
    for name in ("partial", "unknown"):
        linreg("predict", "--ckpt_path", "best", "--data.path", f"{name}.csv",
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
    linreg, trained_default_target: Path, tmp_path: Path
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
        linreg("predict", "--ckpt_path", "best", "--data.path", f"{name}.csv",
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
    linreg, tmp_path: Path, file: str, target: str, name: str
) -> None:
    x, _ = _table(100)
    table = np.hstack([x, x[:, :1]])
    _write_csv(tmp_path / "d.csv", ["a", "b", "c", "y"], table)
    np.save(tmp_path / "d.npy", table)
    linreg(*FIT, "--data.path", file, "--data.target", target, "--trainer.max_epochs", "1",
               cwd=tmp_path)  # fmt: skip
    checkpoint = load_checkpoint(tmp_path / "lightning_logs/version_0/checkpoints/best.ckpt")
    hparams = checkpoint["datamodule_hyper_parameters"]
    assert hparams["target"] == name and name not in hparams["features"]
    assert len(hparams["features"]) == 3


@pytest.mark.slow
def test_messy_but_valid_csv_trains(linreg, tmp_path: Path) -> None:
    """A byte-order mark, blank lines (also before the header), quoted numbers and an unused
    text column with the separator inside quotes: all valid CSV."""
    x, y = _table(400)
    rows = [
        f'"{r[0]:.10g}","Smith, J.",{r[1]:.10g},{r[2]:.10g},{t:.10g}'
        for r, t in zip(x, y[:, 0], strict=True)
    ]
    text = "\n".join(["", "", "a,name,b,c,y", "", *rows[:200], "", *rows[200:]]) + "\n"
    (tmp_path / "messy.csv").write_text(text, encoding="utf-8-sig")
    result = linreg(*FIT, "--data.path", "messy.csv", "--data.features", "[a, b, c]",
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
def test_tab_separated_files(linreg, tmp_path: Path, file: str, options: tuple[str, ...]) -> None:
    x, y = _table(100)
    with open(tmp_path / file, "w") as out:
        out.write("a\tb\tc\ty\n")
        np.savetxt(out, np.hstack([x, y[:, :1]]), delimiter="\t", fmt="%.10g")
    linreg(*FIT, "--data.path", file, *options, "--trainer.max_epochs", "1", cwd=tmp_path)
    checkpoint = load_checkpoint(tmp_path / "lightning_logs/version_0/checkpoints/best.ckpt")
    assert checkpoint["FileDataModule"]["features"] == ["a", "b", "c"]


@pytest.mark.slow
def test_test_subcommand_reports_metrics_from_the_checkpoint(
    linreg, trained: Path, tmp_path: Path
) -> None:
    shutil.copytree(trained, tmp_path, dirs_exist_ok=True)
    result = linreg("test", "--ckpt_path", "best", "--trainer.enable_progress_bar", "false",
                        cwd=tmp_path)  # fmt: skip
    for metric in ("test/mse", "test/mae", "test/r2"):
        assert metric in result.stdout
    series = scalars(tmp_path / "lightning_logs" / "version_1")
    assert series["test/r2"][-1][1] > 0.9999


@pytest.mark.slow
def test_normalized_target_predicts_in_original_units(linreg, tmp_path: Path) -> None:
    x, y = _table(1000)
    _write_csv(tmp_path / "data.csv", ["a", "b", "c", "price"], np.hstack([x, y[:, :1] * 1000]))
    linreg("fit", "--data", "linreg.FileDataModule", "--data.path", "data.csv",
               "--data.normalize_target", "true", *QUIET, cwd=tmp_path)  # fmt: skip
    checkpoint = load_checkpoint(tmp_path / "lightning_logs/version_0/checkpoints/best.ckpt")
    statistics = checkpoint["FileDataModule"]["statistics"]
    assert statistics["target_std"].item() > 100  # the model learned standardized targets
    linreg("predict", "--ckpt_path", "best", "--predictions", "out.csv", cwd=tmp_path)
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
def test_npz_trains_with_chosen_columns_and_predicts_from_x_alone(linreg, tmp_path: Path) -> None:
    x, y = _table(1000)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    result = linreg(*FIT, "--data.path", "data.npz", "--data.features", "[x_0, 1, x_2]",
                        "--data.target", "y_1", cwd=tmp_path)  # fmt: skip
    assert "val/r2 = 1" in result.stdout
    new_x, truth = _table(5, seed=5)
    np.savez(tmp_path / "new.npz", x=new_x)  # no y: enough to predict
    linreg("predict", "--ckpt_path", "best", "--data.path", "new.npz",
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
    _write_csv(folder / "few.csv", ["a", "b", "c", "price", "rent"], np.ones((3, 5)))
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
    (folder / "utf16.csv").write_text("a,b,c,price,rent\n" + "1,2,3,4,5\n" * 50, encoding="utf-16")
    (folder / "decimal.csv").write_text("a;b;c;price;rent\n" + "1,5;2;3;4;5\n" * 50)
    (folder / "open_quote.csv").write_text(
        "a,b,c,price,rent\n" + "1,2,3,4,5\n" * 20 + '1,"2,3,4,5\n' + "1,2,3,4,5\n" * 29
    )
    (folder / "target_only.csv").write_text("price\n" + "1\n" * 50)
    (folder / "huge_target.csv").write_text("a,b,c,price,rent\n" + "1,2,3,3e38,5\n" * 50)
    os.mkfifo(folder / "pipe.csv")
    with zipfile.ZipFile(folder / "bomb.npz", "w") as archive:  # headers that ask for 82 GiB
        for name, shape in (("x", (10**9, 10)), ("y", (10**9,))):
            with archive.open(f"{name}.npy", "w") as member:
                header = {"descr": "<f8", "fortran_order": False, "shape": shape}
                np.lib.format.write_array_header_1_0(member, header)


BAD_INPUTS = [
    pytest.param((*FIT, "--data.path", "missing.csv"), "data file missing.csv does not exist", id="missing-file"),
    pytest.param((*FIT, "--data.path", "empty.csv"), "empty.csv is empty", id="empty-file"),
    pytest.param((*FIT, "--data.path", "header_only.csv"), "header_only.csv has a header (a, b, c, price, rent) but no data rows", id="header-only"),
    pytest.param((*FIT, "--data.path", "houses.csv", "--data.target", "prize"), "has no column 'prize' to use as the target; its columns are: a, b, c, price, rent. Set --data.target.", id="unknown-target"),
    pytest.param((*FIT, "--data.path", "houses.csv", "--data.target", "7"), "has no column '7' (as an index: out of range, 0 to 4 or -5 to -1) to use as the target; its columns are: a, b, c, price, rent. Set", id="target-index-out-of-range"),
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
    pytest.param((*FIT, "--data.path", "few.csv"), "few.csv has 3 rows, too few for val_fraction=0.1: the val split would be empty. Use more rows or set val_fraction to 0.", id="too-few-rows"),
    pytest.param((*FIT, "--data.path", "cube.npy"), "cube.npy holds a 3-D array of shape (4, 3, 2)", id="npy-not-2d"),
    pytest.param((*PREDICT, "--data.path", "other_columns.csv", "--predictions", "p.csv"), "does not have the columns the model was trained on", id="predict-other-columns"),
    pytest.param((*PREDICT, "--data.path", "new.csv", "--predictions", "new.csv"), "is new.csv, an input of this command", id="predict-over-input"),
    pytest.param(("predict", "--ckpt_path", "nowhere.ckpt"), "checkpoint nowhere.ckpt does not exist", id="missing-checkpoint"),
    pytest.param(("test", "--ckpt_path", "foreign.ckpt"), "foreign.ckpt is not a linreg checkpoint", id="foreign-checkpoint"),
    pytest.param(("test", "--ckpt_path", "other_model.ckpt"), "other_model.ckpt is not a checkpoint of LinearRegression: it holds layer.weight", id="other-lightning-model"),
    pytest.param((*FIT, "--data.path", "no_header.csv"), "no_header.csv: the first line (1, 2, 3, 4, 5) holds numbers, not column names", id="no-header"),
    pytest.param((*FIT, "--data.path", "trailing_comma.csv"), "column 6 of the header has no name (a delimiter at the end of the line?)", id="trailing-delimiter"),
    pytest.param((*FIT, "--data.path", "labels.csv", "--data.target", "rent"), "column 'id' is not a number: 'r'. Fix or remove that row. If the column holds text in every row, leave it out: --data.features \"[a, b, c, price]\"", id="text-column"),
    pytest.param((*FIT, "--data.path", "houses.csv", "--data.target", "[]"), "--data.target is an empty list", id="no-target"),
    pytest.param((*FIT, "--data.path", "houses.csv", "--model.fit_intercept", "false"), "centres the features, which puts an intercept back: add --data.normalize false", id="origin-line-on-centred-data"),
    pytest.param((*FIT, "--data.path", "utf16.csv"), "utf16.csv is UTF-16 text; linreg reads UTF-8. Convert it, e.g. iconv -f UTF-16 -t UTF-8 utf16.csv > utf16_utf8.csv", id="utf16"),
    pytest.param((*FIT, "--data.path", "decimal.csv", "--data.delimiter", ";"), "decimal.csv, row 1 (line 2), column 'a' is not a number: '1,5'. This file seems to use decimal commas: convert them to points (1,5 → 1.5)", id="decimal-comma"),
    pytest.param((*FIT, "--data.path", "open_quote.csv"), "open_quote.csv, row 21 (line 22), column 'b': a quote (\") opens a value that is never closed: the value runs to the end of the file (line 51)", id="unterminated-quote"),
    pytest.param((*FIT, "--data.path", "target_only.csv"), "target_only.csv has only one column, 'price', the target: linreg needs at least one feature column besides it.", id="only-a-target"),
    pytest.param((*FIT, "--data.path", "huge_target.csv", "--data.target", "price"), "huge_target.csv, row 1, column 'price' holds 3e+38: too large for linreg's float32 model (at most 1e+18 in size, so that its square fits in float32). Standardize the targets (--data.normalize_target true)", id="target-overflows-float32-squares"),
    pytest.param((*FIT, "--data.path", "pipe.csv"), "data file pipe.csv is a named pipe (FIFO), not a regular file.", id="fifo"),
    pytest.param((*FIT, "--data.path", "/dev/zero"), "data file /dev/zero is a device, not a regular file.", id="device"),
    pytest.param((*FIT, "--data.path", "."), "data file . is a directory, not a regular file.", id="directory"),
    pytest.param((*FIT, "--data.path", "bomb.npz"), "bomb.npz: its arrays ('x' (1000000000, 10) float64: 74.5 GiB, 'y' (1000000000,) float64: 7.5 GiB) need about 82.0 GiB of memory", id="npz-beyond-memory"),
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


# -- precision: the file's own ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "save", "dtype"),
    [
        pytest.param("d.csv", lambda p, t: _write_csv(p, ["a", "b", "c", "y"], t), torch.float64, id="csv-float64"),
        pytest.param("d.npy", lambda p, t: np.save(p, t), torch.float64, id="npy-float64"),
        pytest.param("d.npy", lambda p, t: np.save(p, t.astype(np.float32)), torch.float32, id="npy-float32"),
        pytest.param("d.npy", lambda p, t: np.save(p, t.astype(np.float16)), torch.float32, id="npy-float16"),
        pytest.param("d.npy", lambda p, t: np.save(p, t.astype(np.int32)), torch.float32, id="npy-int32"),
        pytest.param("d.npz", lambda p, t: np.savez(p, x=t[:, :3], y=t[:, 3]), torch.float64, id="npz-float64"),
        pytest.param("d.npz", lambda p, t: np.savez(p, x=t[:, :3].astype(np.float32), y=t[:, 3].astype(np.float32)), torch.float32, id="npz-float32"),
        pytest.param("d.npz", lambda p, t: np.savez(p, x=t[:, :3].astype(np.int64), y=t[:, 3].astype(np.int64)), torch.float32, id="npz-int64"),
    ],
)  # fmt: skip
def test_batches_come_in_the_precision_of_the_file(
    tmp_path: Path, name: str, save, dtype: torch.dtype
) -> None:
    x, y = _table(200)
    save(tmp_path / name, np.hstack([x, y[:, :1]]))
    data = FileDataModule(str(tmp_path / name), normalize=False, batch_size=16)
    data.setup("fit")
    batch_x, batch_y = next(iter(data.train_dataloader()))
    assert batch_x.dtype == batch_y.dtype == dtype
    standardized = FileDataModule(str(tmp_path / name), batch_size=16)
    standardized.setup("fit")
    assert standardized.statistics["feature_std"].dtype == torch.float64
    assert next(iter(standardized.train_dataloader()))[0].dtype == dtype
    if name.endswith(".npy") and dtype == torch.float64:
        assert isinstance(data.datasets["all"].x, np.ndarray)  # still memory-mapped


def test_csv_values_are_kept_to_the_last_digit(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text(
        "a,y\n" + "".join(f"{100000000 + i / 7:.17g},{i}\n" for i in range(50))
    )
    data = FileDataModule(str(tmp_path / "d.csv"), normalize=False)
    x, _ = data.load_arrays()
    assert x.dtype == torch.float64
    np.testing.assert_array_equal(x[:, 0].numpy(), [100000000 + i / 7 for i in range(50)])


# -- standardization statistics: once, stable, scale-invariant --------------------------------


def test_statistics_of_a_large_offset_column_are_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = np.column_stack([1e8 + rng.normal(size=100_000) * 1e-3, rng.normal(size=100_000)])
    np.save(tmp_path / "d.npy", np.column_stack([x, x[:, 1]]))
    data = FileDataModule(str(tmp_path / "d.npy"), val_fraction=0.0, test_fraction=0.0)
    data.setup("fit")  # two chunks of 65,536 rows and less, merged
    stats = data.statistics
    mean = [math.fsum(column) / len(column) for column in x.T]  # exactly rounded references
    std = [
        math.sqrt(math.fsum((column - m) ** 2) / len(column))
        for column, m in zip(x.T, mean, strict=True)
    ]
    np.testing.assert_allclose(stats["feature_mean"].numpy(), mean, rtol=1e-15, atol=1e-15)
    # E[x²] - mean² gave 0 or garbage here
    np.testing.assert_allclose(stats["feature_std"].numpy(), std, rtol=1e-12)
    standardized = torch.cat([x for x, _ in data.chunks("train")])
    np.testing.assert_allclose(standardized.std(0, correction=0).numpy(), [1, 1], rtol=1e-9)


@pytest.mark.parametrize("scale", [1e-12, 1e12], ids=["farads", "huge"])
@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_standardized_batches_do_not_depend_on_a_column_scale(
    tmp_path: Path, scale: float, suffix: str
) -> None:
    x, y = _table(500)
    scaled = x.copy()
    scaled[:, 1] *= scale
    batches = []
    for name, table in (("plain", x), ("scaled", scaled)):
        path = tmp_path / f"{name}{suffix}"
        if suffix == ".npy":
            np.save(path, np.hstack([table, y[:, :1]]))
        else:
            with open(path, "w") as file:
                file.write("a,b,c,y\n")
                np.savetxt(file, np.hstack([table, y[:, :1]]), delimiter=",", fmt="%.17g")
        data = FileDataModule(str(path))
        data.setup("fit")
        batches.append(torch.cat([x for x, _ in data.chunks("all")]))
    np.testing.assert_allclose(batches[1].numpy(), batches[0].numpy(), rtol=1e-12, atol=1e-12)
    assert batches[0].std(0).min() > 0.5  # the column is standardized, not taken as constant


def test_a_column_is_constant_only_when_all_its_values_are_equal(tmp_path: Path) -> None:
    rows = 100
    tiny = np.linspace(1e-12, 2e-12, rows)  # varies, at a small scale
    constant = np.full(rows, 0.1)  # the same value: its float64 mean may differ from it by an ulp
    np.save(tmp_path / "d.npy", np.column_stack([tiny, constant, np.arange(rows)]))
    data = FileDataModule(str(tmp_path / "d.npy"))
    data.setup("fit")
    std = data.statistics["feature_std"]
    train = data.datasets["train"][:][0]
    assert std[0] == pytest.approx(np.std(tiny[data._split_rows(rows)["train"].numpy()]), rel=1e-9)
    assert std[1] == 1.0 and torch.all(train[:, 1].abs() < 1e-15)
    assert train[:, 0].std(correction=0) == pytest.approx(1.0, rel=1e-9)


def test_the_file_is_read_split_and_summarized_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import linreg.files

    x, y = _table(300)
    _write_csv(tmp_path / "d.csv", ["a", "b", "c", "y"], np.hstack([x, y[:, :1]]))
    calls: Counter[str] = Counter()

    def counted(name: str, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapper

    for name in ("read_schema", "load_columns", "training_statistics"):
        monkeypatch.setattr(linreg.files, name, counted(name, getattr(linreg.files, name)))
    data = FileDataModule(str(tmp_path / "d.csv"))
    monkeypatch.setattr(data, "_split_rows", counted("split", data._split_rows))
    assert data.num_features == 3 and data.hparams["features"] is None  # reading, not recording
    data.check("fit")  # what the command does first
    assert data.hparams["features"] == ["a", "b", "c"] and data.hparams["target"] == "y"
    data.setup("fit")
    for loader in (data.train_dataloader(), data.val_dataloader()):
        list(loader)
    list(data.chunks("train"))
    data.state_dict()
    data.to_original_units(torch.ones(1, 3), torch.zeros(1))
    assert calls == {"read_schema": 1, "load_columns": 1, "training_statistics": 1, "split": 1}


def test_statistics_are_restored_not_recomputed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import linreg.files

    x, y = _table(300)
    path = str(_write_csv(tmp_path / "d.csv", ["a", "b", "c", "y"], np.hstack([x, y[:, :1]])))
    trained = FileDataModule(path)
    trained.setup("fit")
    state = trained.state_dict()
    monkeypatch.setattr(linreg.files, "training_statistics", None)  # must not be called
    for stage in ("fit", "test", "predict"):
        restored = FileDataModule(path)
        restored.check(stage)
        restored.load_state_dict(state)  # as the command does, before setup
        restored.setup(stage)
        assert torch.equal(restored.statistics["feature_std"], state["statistics"]["feature_std"])


def test_a_float32_checkpoint_of_an_earlier_version_still_loads(tmp_path: Path) -> None:
    x, y = _table(100)
    path = str(_write_csv(tmp_path / "d.csv", ["a", "b", "c", "y"], np.hstack([x, y[:, :1]])))
    old = {
        "statistics": {
            "feature_mean": torch.tensor([0.0, 50.0, 1000.0]),
            "feature_std": torch.tensor([1.0, 10.0, 100.0]),
            "target_mean": torch.tensor([5.0]),
            "target_std": torch.tensor([2.0]),
        },
        "features": ["a", "b", "c"],
        "targets": ["y"],
    }
    data = FileDataModule(path)
    data.load_state_dict(old)
    assert all(value.dtype == torch.float64 for value in data.statistics.values())
    data.setup("predict")
    x_batch, read = data.datasets["all"][:3][0], data.load_arrays()[0][:3].numpy()
    np.testing.assert_allclose(x_batch.numpy(), (read - [0, 50, 1000]) / [1, 10, 100], rtol=1e-12)


STATS = {"feature_mean": torch.zeros(3, dtype=torch.float64), "feature_std": torch.ones(3, dtype=torch.float64),
         "target_mean": torch.zeros(1, dtype=torch.float64), "target_std": torch.ones(1, dtype=torch.float64)}  # fmt: skip
DAMAGED = "the checkpoint's standardization statistics are invalid: "
ADVICE = r"\. The checkpoint is damaged or was not written by linreg fit; use another one, or train again\.$"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"feature_std": torch.ones(2, dtype=torch.float64)}, DAMAGED + r"'feature_std' has shape \[2\], but there are 3 feature column\(s\) \(a, b, c\)" + ADVICE, id="wrong-length"),
        pytest.param({"target_mean": torch.zeros(1, 1)}, DAMAGED + r"'target_mean' has shape \[1, 1\], but there are 1 target column\(s\) \(y\)", id="wrong-shape"),
        pytest.param({"feature_mean": torch.tensor([0.0, float("nan"), 0.0])}, DAMAGED + r"'feature_mean' is nan for column 'b'" + ADVICE, id="nan"),
        pytest.param({"feature_std": torch.tensor([1.0, 1.0, 0.0])}, DAMAGED + r"'feature_std' is 0 for column 'c', and a standard deviation must be positive" + ADVICE, id="zero-std"),
        pytest.param({"target_std": torch.tensor([-2.0])}, DAMAGED + r"'target_std' is -2 for column 'y', and a standard deviation must be positive", id="negative-std"),
        pytest.param({"feature_std": torch.tensor([1, 1, 1])}, DAMAGED + r"'feature_std' holds torch.int64, not floating-point numbers", id="integers"),
        pytest.param({"feature_std": [1.0, 1.0, 1.0]}, DAMAGED + r"'feature_std' holds list, not floating-point numbers", id="not-a-tensor"),
        pytest.param({"feature_mean": None}, r"the checkpoint holds no standardization statistics for the features \('feature_mean' is missing\), but --data.normalize is true: the model was trained without standardizing them\. Set --data.normalize false, as in training, or give a checkpoint trained with it\.", id="missing"),
    ],
)  # fmt: skip
def test_damaged_checkpoint_statistics_are_refused(
    tmp_path: Path, change: dict, message: str
) -> None:
    _write_csv(tmp_path / "d.csv", ["a", "b", "c", "y"], np.ones((50, 4)))
    statistics = {k: v for k, v in {**STATS, **change}.items() if v is not None}
    data = FileDataModule(str(tmp_path / "d.csv"), normalize_target=True)
    with pytest.raises(UserInputError, match=message):
        data.load_state_dict(
            {"statistics": statistics, "features": ["a", "b", "c"], "targets": ["y"]}
        )


def test_checkpoint_data_state_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    _write_csv(tmp_path / "d.csv", ["a", "b", "c", "y"], np.ones((50, 4)))
    data = FileDataModule(str(tmp_path / "d.csv"))
    with pytest.raises(
        UserInputError,
        match=r"the checkpoint's standardization statistics are invalid: they are str, not a table of tensors",
    ):
        data.load_state_dict({"statistics": "mean", "features": ["a", "b", "c"]})
    with pytest.raises(
        UserInputError, match=r"the checkpoint's data state is invalid: it is list, not a table"
    ):
        data.load_state_dict([1, 2])  # type: ignore[arg-type]


# -- values the float32 model cannot take, after the transform --------------------------------


def test_unstandardized_values_near_float32_max_are_refused(tmp_path: Path) -> None:
    table = np.ones((50, 3))
    table[7, 1] = 3e38
    np.save(tmp_path / "big_feature.npy", table)
    with pytest.raises(
        UserInputError,
        match=r"^.*big_feature.npy, row 8, column 'column_1' holds 3e\+38: too large for linreg's float32 model \(at most 1e\+18 in size, so that its square fits in float32\)\. Standardize the features \(--data.normalize true\), or rescale that column \(change its units\)\.$",
    ):
        FileDataModule(str(tmp_path / "big_feature.npy"), normalize=False).check("fit")
    FileDataModule(str(tmp_path / "big_feature.npy")).setup("fit")  # standardized: fine
    table = np.ones((50, 3))
    table[:, 2] = np.linspace(-3e38, 3e38, 50)
    _write_csv(tmp_path / "big_target.csv", ["a", "b", "price"], table)
    with pytest.raises(
        UserInputError,
        match=r"big_target.csv, row 1, column 'price' holds -3e\+38: too large for linreg's float32 model .* Standardize the targets \(--data.normalize_target true\), or rescale that column",
    ):
        FileDataModule(str(tmp_path / "big_target.csv")).check("fit")
    data = FileDataModule(str(tmp_path / "big_target.csv"), normalize_target=True)
    data.setup("fit")
    assert torch.isfinite(torch.cat([y for _, y in data.chunks("all")])).all()


def test_values_far_outside_the_training_data_are_refused_before_predicting(tmp_path: Path) -> None:
    x, y = _table(100)
    path = str(_write_csv(tmp_path / "d.csv", ["a", "b", "c", "y"], np.hstack([x, y[:, :1]])))
    trained = FileDataModule(path)
    trained.setup("fit")
    state = trained.state_dict()
    state["statistics"]["feature_mean"][2] = 1000.0
    state["statistics"]["feature_std"][2] = 1e-10  # a column that barely varied in training
    new = np.full((5, 3), 1000.0)
    new[3, 2] = 1e20
    _write_csv(tmp_path / "new.csv", ["a", "b", "c"], new)
    data = FileDataModule(str(tmp_path / "new.csv"), features=["a", "b", "c"], target="y")
    data.check("predict")
    with pytest.raises(
        UserInputError,
        match=r"new.csv, row 4, column 'c' holds 1e\+20, which the training split's mean and standard deviation standardize to 1e\+30: too large for linreg's float32 model \(at most 1e\+18 in size, so that its square fits in float32\)\. That value lies far outside the training data in this column: check it, or train on data that covers it\.$",
    ):
        data.load_state_dict(state)


# -- the file itself: not a file, unreadable, too big -----------------------------------------


def test_a_path_that_is_not_a_regular_file_is_named_for_what_it_is(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "pipe.csv")
    cases = {
        str(tmp_path): "is a directory",
        str(tmp_path / "pipe.csv"): r"is a named pipe \(FIFO\)",  # never opened: would block
        "/dev/zero": "is a device",  # never read: would never end
    }
    for path, kind in cases.items():
        with pytest.raises(
            UserInputError,
            match=rf"^data file {path} {kind}, not a regular file\. Give the path of a \.csv, \.npy or \.npz file \(--data\.path\); to read from a pipe, save its output to a file first\.$",
        ):
            FileDataModule(path).check("fit")


def test_an_unreadable_file_says_permission_denied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import linreg.schema

    path = _write_csv(tmp_path / "d.csv", ["a", "y"], np.ones((50, 2)))

    def denied(file, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(linreg.schema, "open", denied, raising=False)
    with pytest.raises(
        UserInputError,
        match=rf"^data file {path} cannot be read: permission denied\. Make it readable for you \(e\.g\. chmod a\+r {path}\), or copy it somewhere you can read it\.$",
    ):
        FileDataModule(str(path)).check("fit")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_for_real(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "d.csv", ["a", "y"], np.ones((50, 2)))
    path.chmod(0)
    with pytest.raises(UserInputError, match="cannot be read: permission denied"):
        FileDataModule(str(path)).check("fit")


def test_an_npz_declaring_more_memory_than_there_is_is_refused_before_reading(
    tmp_path: Path,
) -> None:
    import zipfile

    path = tmp_path / "bomb.npz"
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("x.npy", "w") as member,  # a header that asks for 74.5 GiB, no data
    ):
        np.lib.format.write_array_header_1_0(
            member, {"descr": "<f8", "fortran_order": False, "shape": (1_000_000_000, 10)}
        )
    data = FileDataModule(str(path))
    assert data.num_features == 10  # the header is enough for the columns
    with pytest.raises(
        UserInputError,
        match=r"bomb.npz: its arrays \('x' \(1000000000, 10\) float64: 74.5 GiB\) need about 74.5 GiB of memory, but only .* GiB is available\. Save the table as one \.npy file instead, e\.g\. np\.save\('table\.npy', np\.column_stack\(\[x, y\]\)\): linreg memory-maps a \.npy file rather than loading it\.$",
    ):
        data.check("predict")


# -- messages that used to mislead --------------------------------------------------------------


def _csv(folder: Path, name: str, text: str, encoding: str = "utf-8") -> str:
    (folder / name).write_bytes(text.encode(encoding))
    return str(folder / name)


@pytest.mark.parametrize(
    ("name", "text", "kwargs", "message"),
    [
        pytest.param("y_only.csv", "y\n1\n2\n3\n", {}, r"y_only.csv has only one column, 'y', the target: linreg needs at least one feature column besides it\. Add the feature columns to the file\.$", id="only-the-target"),
        pytest.param("two.csv", "a,b\n1,2\n", {"target": ["a", "b"]}, r"two.csv: every column \(a, b\) is a target, none is left as a feature\. Name fewer targets with --data.target\.$", id="every-column-a-target"),
        pytest.param("semicolons.csv", "a;b;y\n1,5;2,25;3\n", {"delimiter": ";"}, r"semicolons.csv, row 1 \(line 2\), column 'a' is not a number: '1,5'\. This file seems to use decimal commas: convert them to points \(1,5 → 1\.5\), e\.g\. sed 's/,/\./g' .*semicolons.csv > .*semicolons_points.csv\. If the commas separate thousands, remove them instead\.$", id="decimal-comma"),
        pytest.param("quoted.csv", 'a,b,y\n1,2,3\n"1,5","2,25",3\n', {}, r"quoted.csv, row 2 \(line 3\), column 'a' is not a number: '1,5'\. This file seems to use decimal commas: convert them to points \(1,5 → 1\.5\), e\.g\. export it again with a point as the decimal separator\. If the commas", id="decimal-comma-quoted"),
        pytest.param("guess.csv", "a;b;y\n1,5;2,25;3\n", {}, r"guess.csv: found only one column in the header 'a;b;y'; is the separator ';'\? Set --data.delimiter ';'\. Its numbers seem to use decimal commas too: convert them to points \(1,5 → 1\.5\)\.$", id="separator-and-decimal-comma"),
        pytest.param("open_quote.csv", 'a,b,y\n1,2,3\n4,"5,6\n7,8,9\n1,2,3\n', {}, r'open_quote.csv, row 2 \(line 3\), column \'b\': a quote \(\"\) opens a value that is never closed: the value runs to the end of the file \(line 5\)\. Close that quote, or remove it\.$', id="unterminated-quote"),
        pytest.param("long_quote.csv", 'a,b,y\n1,"2\n3",4\n5,6,7\n', {}, r"long_quote.csv, row 1 \(line 2\), column 'b': a quote \(\"\) opens a value that runs on over the line breaks to line 3\. Close that quote, or remove it\.$", id="quote-over-lines"),
        pytest.param("later_quote.csv", 'a,b,y\n' + '1,2,3\n' * 20 + '7,"8,9\n', {}, r"later_quote.csv, row 21 \(line 22\), column 'b': a quote \(\"\) opens a value that is never closed: the value runs to the end of the file \(line 22\)", id="quote-in-the-last-row"),
    ],
)  # fmt: skip
def test_csv_problems_are_named_for_what_they_are(
    tmp_path: Path, name: str, text: str, kwargs: dict, message: str
) -> None:
    with pytest.raises(UserInputError, match=message):
        FileDataModule(_csv(tmp_path, name, text), **kwargs).check("fit")


@pytest.mark.parametrize(
    ("encoding", "name"),
    [
        ("utf-16", "UTF-16"),
        ("utf-32", "UTF-32"),
        ("utf-16-le", "UTF-16LE"),
        ("utf-16-be", "UTF-16BE"),
    ],
    ids=["utf16-bom", "utf32-bom", "utf16le-no-bom", "utf16be-no-bom"],
)
def test_utf16_and_utf32_files_are_told_to_convert_from_what_they_are(
    tmp_path: Path, encoding: str, name: str
) -> None:
    path = _csv(tmp_path, "wide.csv", "a,b,y\n" + "1,2,3\n" * 50, encoding)
    with pytest.raises(
        UserInputError,
        match=rf"^{path} is {name} text; linreg reads UTF-8\. Convert it, e\.g\. iconv -f {name} -t UTF-8 {path} > {tmp_path}/wide_utf8\.csv, or save it as 'CSV UTF-8'\.$",
    ):
        FileDataModule(path).check("fit")


def test_a_binary_file_named_csv_is_not_text(tmp_path: Path) -> None:
    (tmp_path / "sheet.csv").write_bytes(b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" * 20)
    with pytest.raises(
        UserInputError,
        match=r"sheet.csv is not a text file \(it holds NUL bytes; a spreadsheet file renamed \.csv\?\)\. Save the table as CSV UTF-8, or as a \.npy array\.$",
    ):
        FileDataModule(str(tmp_path / "sheet.csv")).check("fit")
