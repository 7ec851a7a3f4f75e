"""Unit tests of the data path: determinism, split sizes, batch shapes, sharding, validation."""

from __future__ import annotations

import math
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from linreg import SyntheticDataModule, TensorDataModule
from linreg.batching import ArrayDataset, BatchIndexSampler, batch_loader
from linreg.data import split_sizes
from linreg.errors import UserInputError


def _setup(**kwargs) -> SyntheticDataModule:
    data = SyntheticDataModule(**kwargs)
    data.setup("fit")
    return data


def test_same_seed_same_data_and_split() -> None:
    first, second = _setup(seed=3), _setup(seed=3)
    for split in ("train", "val", "test"):
        assert torch.equal(first.datasets[split][:][0], second.datasets[split][:][0])
    assert not torch.equal(first.datasets["train"][:][0], _setup(seed=4).datasets["train"][:][0])


def test_targets_follow_the_true_line() -> None:
    data = _setup(n_features=2, weight=[1.0, -2.0], bias=0.5)
    x, y = data.datasets["all"][:]
    assert torch.allclose(y, x[:, :1] - 2 * x[:, 1:] + 0.5)
    assert x.min() >= 0 and x.max() < 1


@pytest.mark.parametrize(
    ("n", "val", "test", "expected"),
    [(1000, 0.1, 0.1, (800, 100, 100)), (50, 0.2, 0.0, (40, 10, 0)), (7, 0.25, 0.25, (3, 2, 2))],
    ids=["default", "no-test", "rounding"],
)
def test_split_sizes(n: int, val: float, test: float, expected: tuple[int, int, int]) -> None:
    assert tuple(split_sizes(n, val, test).values()) == expected


def test_splits_are_disjoint_and_cover_all_rows() -> None:
    data = _setup(n_samples=200)
    rows = torch.cat([data.datasets[s][:][0] for s in ("train", "val", "test")])
    assert len(rows) == 200
    assert torch.equal(rows.sort(dim=0).values, data.datasets["all"][:][0].sort(dim=0).values)


def test_splits_share_the_arrays_instead_of_copying_them() -> None:
    data = _setup(n_samples=200)
    assert all(data.datasets[s].x is data.datasets["all"].x for s in ("train", "val", "test"))


def test_batches_have_the_right_shapes() -> None:
    data = _setup(n_samples=100, n_features=3, weight=[1.0, 2.0, 3.0], batch_size=16)
    batches = list(data.train_dataloader())
    assert [len(x) for x, _ in batches] == [16] * 5
    x, y = batches[0]
    assert x.shape == (16, 3) and y.shape == (16, 1) and x.dtype == y.dtype == torch.float32
    assert sum(len(x) for x, _ in data.val_dataloader()) == 10
    assert sum(len(x) for x, _ in data.predict_dataloader()) == 100


def test_training_order_reshuffles_every_epoch_deterministically() -> None:
    sampler = BatchIndexSampler(100, 10, shuffle=True, seed=1)
    first = torch.cat(list(sampler))
    assert sorted(first.tolist()) == list(range(100))
    sampler.set_epoch(1)
    second = torch.cat(list(sampler))
    assert not torch.equal(first, second)
    again = BatchIndexSampler(100, 10, shuffle=True, seed=1)
    again.set_epoch(1)
    assert torch.equal(torch.cat(list(again)), second)


@pytest.mark.parametrize("n_rows", [99, 100, 101, 7], ids=["divisible", "pad-2", "pad-1", "tiny"])
def test_shards_are_disjoint_equal_and_match_distributed_sampler(n_rows: int) -> None:
    from torch.utils.data import DistributedSampler

    shares = []
    for rank in range(3):
        sampler = BatchIndexSampler(n_rows, 4, shuffle=True, seed=5, num_replicas=3, rank=rank)
        sampler.set_epoch(2)
        shares.append(torch.cat(list(sampler)))
        reference = DistributedSampler(range(n_rows), num_replicas=3, rank=rank, seed=5)
        reference.set_epoch(2)
        assert shares[-1].tolist() == list(reference)
    assert len({len(share) for share in shares}) == 1
    assert all(len(set(share.tolist())) == len(share) for share in shares)  # no row twice
    counts = Counter(torch.cat(shares).tolist())
    assert set(counts) == set(range(n_rows))  # every row is seen
    padding = 3 * math.ceil(n_rows / 3) - n_rows  # rows repeated to make equal shares
    assert sum(counts.values()) == n_rows + padding
    assert sorted(counts.values(), reverse=True)[: padding + 1] == [2] * padding + [1]


def test_in_order_shards_are_contiguous_unpadded_blocks() -> None:
    blocks = [
        list(BatchIndexSampler(10, 3, shuffle=False, num_replicas=3, rank=r)) for r in range(3)
    ]
    rows = [i for block in blocks for batch in block for i in range(batch.start, batch.stop)]
    assert rows == list(range(10))


def test_loader_fetches_whole_batches_without_collation() -> None:
    dataset = ArrayDataset(torch.arange(20.0).view(10, 2), torch.arange(10.0).view(10, 1))
    x, y = next(iter(batch_loader(dataset, batch_size=4, shuffle=False)))
    assert x.tolist() == [[0, 1], [2, 3], [4, 5], [6, 7]] and y.flatten().tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
        ({"val_fraction": 1.0}, r"val_fraction must be in \[0, 1\), got 1.0"),
        ({"test_fraction": -0.1}, r"test_fraction must be in \[0, 1\)"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "must be below 1"),
        ({"n_samples": 4}, "too few for val_fraction=0.1"),
        (
            {"batch_size": "half"},
            "batch_size must be a positive integer, got 'half'. Give a number of rows, 'full'",
        ),
        ({"n_features": 2, "weight": [1.0, 2.0, 3.0]}, "weight has 3 values but n_features is 2"),
        ({"noise": -1.0}, "noise is a standard deviation"),
    ],
    ids=[
        "batch-0",
        "val-1",
        "test-negative",
        "fractions-sum",
        "too-few-rows",
        "batch-not-a-number",
        "weight-length",
        "negative-noise",
    ],
)
def test_invalid_configuration_fails_at_construction(kwargs: dict, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        SyntheticDataModule(**kwargs)


def test_tensor_data_module_serves_given_arrays() -> None:
    x, y = torch.randn(100, 3), torch.randn(100)
    data = TensorDataModule(x, y.numpy(), batch_size=10)
    assert (data.num_features, data.num_targets) == (3, 1)
    data.setup("fit")
    batch_x, batch_y = next(iter(data.train_dataloader()))
    assert batch_x.shape == (10, 3) and batch_y.shape == (10, 1)
    assert "x" not in data.hparams and data.hparams.batch_size == 10
    with pytest.raises(UserInputError, match="x has 100 rows but y has 99"):
        TensorDataModule(x, y[:99])
    with pytest.raises(UserInputError, match="x must be 2-D"):
        TensorDataModule(y, y)


# -- batch sizes: a number above the training rows, "full" ----------------------------------


def test_batch_size_above_the_training_rows_is_lowered_with_a_note(
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = _setup(n_samples=40, batch_size=64)  # 32 training rows
    assert [len(x) for x, _ in data.train_dataloader()] == [32]
    assert capsys.readouterr().err == (
        "linreg: note: batch_size=64 is more than the 32 training rows of the data: each "
        "training batch has all 32 (one step per epoch).\n"
    )  # once, and no note for a validation split of 4 rows


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: SyntheticDataModule(n_samples=1000, batch_size="full"), id="synthetic"),
        pytest.param(lambda: TensorDataModule(torch.rand(1000, 2), torch.rand(1000), batch_size="full"), id="tensors"),
    ],
)  # fmt: skip
def test_full_batch_is_every_training_row_in_one_step(make) -> None:
    data = make()
    data.setup("fit")
    assert [len(x) for x, _ in data.train_dataloader()] == [800]  # batch gradient descent
    assert [len(x) for x, _ in data.val_dataloader()] == [100]
    assert sum(len(x) for x, _ in data.predict_dataloader()) == 1000


def test_full_batch_under_ddp_is_this_process_share() -> None:
    data = _setup(n_samples=1000, batch_size="full")
    data.trainer = SimpleNamespace(world_size=3, global_rank=1, strategy=SimpleNamespace(root_device=torch.device("cpu")))  # fmt: skip
    assert [len(x) for x, _ in data.train_dataloader()] == [267]  # ceil(800 / 3), one step


def test_linnerud_trains_with_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    """scikit-learn's linnerud data: 20 rows, so 16 for training, 2 to validate, 2 to test."""
    from lightning.pytorch import Trainer
    from sklearn.datasets import load_linnerud

    from linreg import LinearRegression

    x, y = load_linnerud(return_X_y=True)
    data = TensorDataModule(x, y, batch_size=32)
    model = LinearRegression(data.num_features, data.num_targets)
    Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False).fit(model, data)  # fmt: skip
    assert [len(batch) for batch, _ in data.train_dataloader()] == [16]
    err = capsys.readouterr().err.splitlines()
    notes = [line for line in err if "linreg: note" in line and "the given arrays" in line]
    assert notes == [
        "linreg: note: batch_size=32 is more than the 16 training rows of the given arrays: each "
        "training batch has all 16 (one step per epoch).",
        "linreg: note: the validation split of the given arrays has only 2 row(s) "
        "(val_fraction=0.1 of 20 rows): its metrics, R² above all, say little. Use more rows or "
        "a larger val_fraction.",
    ]


def test_a_one_row_validation_split_trains_and_reports_r2_as_nan(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ten rows leave one to validate and one to test: R² of one row does not exist."""
    from lightning.pytorch import Trainer

    from linreg import LinearRegression

    x = np.random.default_rng(0).uniform(size=(10, 2))
    data = TensorDataModule(x, x @ [1.0, 2.0] + 0.5)
    model = LinearRegression(data.num_features, data.num_targets)
    trainer = Trainer(max_epochs=2, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, data)
    assert "has only 1 row(s)" in capsys.readouterr().err
    assert math.isnan(trainer.callback_metrics["val/r2"])
    assert math.isfinite(trainer.callback_metrics["val/mse"])
    (tested,) = trainer.test(model, data, verbose=False)
    assert math.isnan(tested["test/r2"]) and math.isfinite(tested["test/mae"])


def test_empty_splits_are_still_refused() -> None:
    with pytest.raises(
        UserInputError,
        match=r"n_samples=3 has 3 rows, too few for val_fraction=0.1: the val split would be empty",
    ):
        SyntheticDataModule(n_samples=3)
    with pytest.raises(UserInputError, match=r"has 2 rows, which leaves none for training"):
        TensorDataModule(torch.rand(2, 1), torch.rand(2), val_fraction=0.5, test_fraction=0.4)


# -- precision ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "dtype"),
    [
        pytest.param(torch.rand(50, 2, dtype=torch.float64), torch.float64, id="float64-kept"),
        pytest.param(torch.rand(50, 2), torch.float32, id="float32-kept"),
        pytest.param(torch.rand(50, 2).half(), torch.float32, id="float16-widened"),
        pytest.param(torch.randint(0, 9, (50, 2)), torch.float32, id="integers"),
        pytest.param(np.random.default_rng(0).random((50, 2)), torch.float64, id="numpy-float64"),
    ],
)
def test_batches_keep_the_precision_of_the_given_arrays(x, dtype: torch.dtype) -> None:
    data = TensorDataModule(x, torch.rand(50), batch_size=8)
    data.setup("fit")
    batch_x, batch_y = next(iter(data.train_dataloader()))
    assert batch_x.dtype == dtype and batch_y.dtype == torch.float32
    assert next(data.chunks("val"))[0].dtype == dtype


def test_synthetic_data_stays_float32() -> None:
    x, y = next(_setup(n_samples=100).chunks("all"))
    assert x.dtype == y.dtype == torch.float32


# -- chunks: a whole split in big pieces, for exact solvers -----------------------------------


def test_chunks_serve_the_split_in_row_order_without_padding() -> None:
    data = SyntheticDataModule(n_samples=1000)  # not set up: chunks() does it
    pieces = list(data.chunks("train", rows=300))
    assert [len(x) for x, _ in pieces] == [300, 300, 200]
    x = torch.cat([x for x, _ in pieces])
    y = torch.cat([y for _, y in pieces])
    assert torch.equal(x, data.datasets["train"][:][0]) and torch.equal(
        y, data.datasets["train"][:][1]
    )
    everything = torch.cat([x for x, _ in data.chunks("all")])
    assert torch.equal(everything, data.datasets["all"][:][0])


@pytest.mark.parametrize(
    ("split", "world"),
    [("train", 3), ("val", 3), ("val", 16)],
    ids=["train-3", "val-3", "more-processes-than-rows"],
)
def test_chunks_under_ddp_are_disjoint_blocks_covering_the_split(split: str, world: int) -> None:
    data = _setup(n_samples=101)  # train 81, val 10
    whole = data.datasets[split][:][0]
    blocks = []
    for rank in range(world):
        data.trainer = SimpleNamespace(world_size=world, global_rank=rank)
        blocks.append([x for x, _ in data.chunks(split, rows=4)])
    sizes = [sum(len(x) for x in block) for block in blocks]
    assert max(sizes) - min(sizes) <= 1  # balanced, unpadded
    assert all(block == [] for block, size in zip(blocks, sizes, strict=True) if size == 0)
    rows = torch.cat([x for block in blocks for x in block])
    assert torch.equal(rows, whole)  # disjoint, every row once, rank order is row order


def test_chunks_refuse_an_unknown_split_or_size() -> None:
    data = _setup(n_samples=100)
    with pytest.raises(
        ValueError, match="split must be 'train', 'val', 'test' or 'all', got 'validation'"
    ):
        next(data.chunks("validation"))
    with pytest.raises(ValueError, match="rows must be a positive integer, got 0"):
        next(data.chunks("train", rows=0))


# -- data that does not fit, values the float32 model cannot take ------------------------------


def test_synthetic_rows_beyond_memory_are_refused_before_generating(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("linreg.data.available_memory", lambda: 16 * 2**30)
    with pytest.raises(
        UserInputError,
        match=r"^n_samples=10000000000 rows of 1 feature\(s\) need about 335\.3 GiB of memory to generate, but only 16\.0 GiB is available\. Use fewer samples: at most about 477,218,588 here\.$",
    ):
        SyntheticDataModule(n_samples=10_000_000_000)
    SyntheticDataModule(n_samples=1_000_000)  # what fits is accepted, and nothing generated yet


def test_synthetic_rows_beyond_this_machine_memory_are_refused() -> None:
    with pytest.raises(
        UserInputError, match=r"n_samples=10000000000 rows .* need about .* GiB of memory"
    ):
        SyntheticDataModule(n_samples=10_000_000_000)


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        pytest.param(torch.tensor([[1.0], [float("nan")], [3.0]]), torch.ones(3), r"the given arrays: x\[1, 0\] is nan \(10 value\(s\) of x are NaN or infinite\)\. Remove or fill those rows\.", id="nan"),
        pytest.param(torch.ones(3, 1), torch.tensor([1.0, float("inf"), 3.0]), r"the given arrays: y\[1, 0\] is inf", id="inf"),
        pytest.param(torch.ones(3, 1), torch.tensor([1.0, 2.0, 3e38]), r"the given arrays: y\[2, 0\] is 3e\+38, too large for linreg's float32 model \(at most 1e\+18 in size, so that its square fits in float32\)\. Rescale that column", id="near-float32-max"),
    ],
)  # fmt: skip
def test_tensor_values_the_model_cannot_take_are_refused(x, y, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        TensorDataModule(x.repeat(10, 1), y.repeat(10), batch_size=4)


def test_a_full_batch_that_cannot_fit_in_memory_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    data = SyntheticDataModule(n_samples=1000, n_features=3, weight=1.0, batch_size="full")
    monkeypatch.setattr("linreg.data.available_memory", lambda: 10_000)
    with pytest.raises(
        UserInputError,
        match=r"^batch_size='full' puts all 800 training rows of the data in one batch, about 37\.5 KiB of memory with its transformed copies, but only 9\.8 KiB is available\. Use a batch size such as 65536\.$",
    ):
        data.setup("fit")
