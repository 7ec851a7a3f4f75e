"""TensorBoard logging where runs started at the same moment never share a ``version_N`` folder."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only


class RunLogger(TensorBoardLogger):
    """Lightning's ``TensorBoardLogger`` with race-free run folders.

    Lightning picks ``version_N`` by listing the folder and creates it later, so several runs
    started together can pick the same N and write into one folder. Here the folder is claimed
    with ``mkdir``, which only one process can win; the others take the next number.
    """

    def _get_next_version(self) -> int:
        version = super()._get_next_version()
        if rank_zero_only.rank != 0:  # other DDP processes receive rank 0's folder
            return version
        root = Path(self.root_dir)
        root.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                (root / f"version_{version}").mkdir()
                return version
            except FileExistsError:
                version += 1
