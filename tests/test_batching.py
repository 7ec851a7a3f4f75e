"""The batch path: chunks of a memory-mapped file, precision, copies, DDP shares of the rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import linreg.batching
from linreg import FileDataModule
from linreg.batching import ArrayDataset, as_float_tensor, block, chunks
from tests.conftest import MINI_BATCHES, run_linreg, saved_state, scalars


@pytest.fixture
def memmapped(tmp_path: Path) -> FileDataModule:
    """A FileDataModule over a 10,000-row float64 .npy file, set up to fit."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "d.npy", rng.normal(size=(10_000, 4)))
    data = FileDataModule(str(tmp_path / "d.npy"), normalize=False)
    data.setup("fit")
    return data


def test_chunks_of_a_memory_mapped_file_read_it_forward_one_chunk_at_a_time(
    memmapped: FileDataModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[np.ndarray] = []
    take_rows = linreg.batching._take_rows

    def recorded(array, index):
        reads.append(
            np.arange(index.start, index.stop) if isinstance(index, slice) else index.numpy()
        )
        return take_rows(array, index)

    monkeypatch.setattr(linreg.batching, "_take_rows", recorded)
    pieces = memmapped.chunks("train", rows=1000)
    first = next(pieces)
    assert len(reads) == 2  # x and y of the first chunk only: nothing read ahead
    rest = list(pieces)
    assert [len(x) for x, _ in [first, *rest]] == [1000] * 8
    rows = np.concatenate(reads[::2])  # the x reads, in the order they happened
    assert np.all(np.diff(rows) > 0)  # forward only: the file is read sequentially
    assert np.array_equal(rows, memmapped._split_rows(10_000)["train"].numpy())
    x, _ = first
    assert x.dtype == torch.float64 and x.is_contiguous()
    x.add_(1)  # a copy in memory, not a read-only view of the file


def test_chunks_of_all_rows_are_slices_of_the_file(memmapped: FileDataModule) -> None:
    everything = np.load(memmapped.path)
    x = torch.cat([x for x, _ in memmapped.chunks("all", rows=4096)])
    np.testing.assert_array_equal(x.numpy(), everything[:, :3])


def test_rows_of_a_read_only_memory_map_are_copied_into_memory(tmp_path: Path) -> None:
    np.save(tmp_path / "t.npy", np.arange(12, dtype=np.float32).reshape(4, 3))
    mapped = np.load(tmp_path / "t.npy", mmap_mode="r")
    rows = as_float_tensor(mapped[1:3])
    assert rows.dtype == torch.float32 and rows.tolist() == [[3, 4, 5], [6, 7, 8]]
    rows.zero_()  # writable, and the file is untouched
    assert mapped[1, 0] == 3


@pytest.mark.parametrize(
    ("array", "dtype"),
    [
        pytest.param(np.zeros((2, 2)), torch.float64, id="numpy-float64"),
        pytest.param(np.zeros((2, 2), dtype=np.float32), torch.float32, id="numpy-float32"),
        pytest.param(np.zeros((2, 2), dtype=np.float16), torch.float32, id="numpy-float16"),
        pytest.param(np.zeros((2, 2), dtype=np.int64), torch.float32, id="numpy-int64"),
        pytest.param(np.zeros((2, 2), dtype=bool), torch.float32, id="numpy-bool"),
        pytest.param(torch.zeros(2, 2, dtype=torch.float64), torch.float64, id="tensor-float64"),
        pytest.param(torch.zeros(2, 2, dtype=torch.bfloat16), torch.float32, id="tensor-bfloat16"),
    ],
)
def test_batches_keep_float64_and_float32_and_widen_the_rest(array, dtype: torch.dtype) -> None:
    assert as_float_tensor(array).dtype == dtype
    assert ArrayDataset(array, array)[0:1][0].dtype == dtype


@pytest.mark.parametrize(
    ("n_rows", "world"),
    [(10, 3), (2, 4), (0, 2), (7, 1)],
    ids=["uneven", "more-ranks-than-rows", "empty", "one-rank"],
)
def test_blocks_are_disjoint_contiguous_and_cover_every_row(n_rows: int, world: int) -> None:
    blocks = [block(n_rows, rank, world) for rank in range(world)]
    assert [i for b in blocks for i in range(b.start, b.stop)] == list(range(n_rows))
    dataset = ArrayDataset(torch.arange(float(n_rows)).view(-1, 1), torch.zeros(n_rows, 1))
    served = [
        x for rank in range(world) for x, _ in chunks(dataset, 3, rank=rank, num_replicas=world)
    ]
    flat = torch.cat(served).flatten().tolist() if served else []
    assert flat == [float(i) for i in range(n_rows)]
    assert all(len(x) <= 3 for x in served)


SHARD_PROBE = '''
import json, os
import torch
from linreg import LinearRegression

class ShardProbe(LinearRegression):
    """Records the rows (their x values) each process trains on, per epoch."""
    def on_train_epoch_start(self):
        self.seen = []
    def training_step(self, batch, batch_idx):
        self.seen.extend(batch[0][:, 0].tolist())
        return super().training_step(batch, batch_idx)
    def on_train_epoch_end(self):
        path = f"rows_rank{self.global_rank}_epoch{self.current_epoch}.json"
        with open(path, "w") as f:
            json.dump(self.seen, f)
'''


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_on_two_cpu_processes(tmp_path: Path) -> None:
    (tmp_path / "shard_probe.py").write_text(SHARD_PROBE)
    result = run_linreg(
        "fit", "--model", "shard_probe.ShardProbe", *MINI_BATCHES, "--trainer.accelerator", "cpu",
        "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.max_epochs", "10",
        "--trainer.enable_progress_bar", "false", cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    assert result.stdout.count("linreg: training finished.") == 1  # one process reports
    assert sorted(p.name for p in (tmp_path / "lightning_logs").iterdir()) == ["version_0"]
    run_dir = tmp_path / "lightning_logs" / "version_0"
    rows = {
        (rank, epoch): json.loads((tmp_path / f"rows_rank{rank}_epoch{epoch}.json").read_text())
        for rank in (0, 1)
        for epoch in (0, 1)
    }
    for epoch in (0, 1):
        first, second = rows[0, epoch], rows[1, epoch]
        assert len(first) == len(second) == 400  # 800 training rows, an equal half each
        assert not set(first) & set(second)  # disjoint shares
    assert rows[0, 0] != rows[0, 1]  # reshuffled every epoch
    state = saved_state(run_dir)
    assert abs(state["linear.weight"].item() - 3.0) < 1e-3
    assert abs(state["linear.bias"].item() - 0.8) < 1e-3
    val_mse = scalars(run_dir)["val/mse"]
    assert len(val_mse) == 10 and val_mse[-1][1] < 1e-6
