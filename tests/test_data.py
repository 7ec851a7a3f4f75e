"""Unit tests of the data path: determinism, split sizes, batch shapes, sharding, validation."""

from __future__ import annotations

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


@pytest.mark.parametrize("n_rows", [100, 101, 7], ids=["even", "odd", "tiny"])
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
    assert set(torch.cat(shares).tolist()) == set(range(n_rows))
    if n_rows % 3 == 0:
        assert len(set(torch.cat(shares).tolist())) == n_rows


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
        ({"n_samples": 40, "batch_size": 64}, "fewer than batch_size=64"),
        ({"n_features": 2, "weight": [1.0, 2.0, 3.0]}, "weight has 3 values but n_features is 2"),
        ({"noise": -1.0}, "noise is a standard deviation"),
    ],
    ids=[
        "batch-0",
        "val-1",
        "test-negative",
        "fractions-sum",
        "too-few-rows",
        "batch-too-big",
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
