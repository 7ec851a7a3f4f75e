"""How much memory this process may still take, so that data too big for it fails with a message.

Checked before anything is allocated: generating ``SyntheticDataModule`` rows, loading the arrays
of an ``.npz`` file, a ``batch_size="full"`` batch. Without the check such data ends in the
kernel's out-of-memory killer, or in swapping for minutes, instead of one line saying what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

from linreg.errors import UserInputError

_CGROUP = Path("/sys/fs/cgroup")


def available_memory() -> int | None:
    """Bytes this process can still allocate: free memory, within a container's limit if any.

    ``MemAvailable`` of ``/proc/meminfo`` (memory the kernel can hand out without swapping),
    else ``os.sysconf``'s free pages; a cgroup v2 limit (``memory.max`` minus
    ``memory.current``) lowers it. ``None`` when the system does not say.
    """
    available = _meminfo_available()
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    limit = _cgroup_room()
    return available if limit is None else min(available, limit)


def gib(n_bytes: float) -> str:
    """``n_bytes`` in the unit people read, e.g. ``9.3 GiB``, ``512.0 MiB``.

    >>> gib(10 * 2**30), gib(3 * 2**20), gib(1536)
    ('10.0 GiB', '3.0 MiB', '1.5 KiB')
    """
    for unit, size in (("GiB", 2**30), ("MiB", 2**20)):
        if n_bytes >= size:
            return f"{n_bytes / size:.1f} {unit}"
    return f"{n_bytes / 2**10:.1f} KiB"


def require_memory(needed: int, what: str, advice: str) -> None:
    """Fail with ``<what> about X GiB of memory, but only Y GiB is available. <advice>``.

    ``what`` ends with its verb, e.g. ``"data.npz: its arrays need"``.
    """
    available = available_memory()
    if available is not None and needed > available:
        raise UserInputError(
            f"{what} about {gib(needed)} of memory, but only {gib(available)} is available. "
            f"{advice}"
        )


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # reported in kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room() -> int | None:
    """What a cgroup v2 memory limit leaves, or None without one."""
    try:
        limit = (_CGROUP / "memory.max").read_text().strip()
        used = int((_CGROUP / "memory.current").read_text())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(int(limit) - used, 0)
