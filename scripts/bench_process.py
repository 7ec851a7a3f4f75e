"""What the command-level benchmarks share: a child process timed and its memory sampled, the
machine described, and large ``.npy`` files written chunk by chunk.

Imported by ``scripts/benchmark.py`` and its modes (``bench_exact.py``, ``bench_accuracy.py``,
``bench_commands.py``); not run on its own.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SCRIPTS = Path(__file__).resolve().parent
WORKERS = SCRIPTS / "bench_workers.py"
LINREG = str(Path(sys.executable).with_name("linreg"))
SAMPLE_EVERY_S = 0.02
DISK_MARGIN = 1 << 30  # leave 1 GiB free on the disk beside any file written


@dataclass
class Measured:
    """A finished child process: wall time (start-up included), peak memory, its output."""

    seconds: float
    peak_anon_mb: float  # RssAnon: memory the process allocated
    peak_rss_mb: float  # VmRSS: also the file pages it maps, which the OS can drop
    returncode: int | None  # None: killed after the timeout
    stdout: str
    stderr: str


def run_measured(
    command: Sequence[str], cwd: Path, timeout: float = 3600.0, env: dict[str, str] | None = None
) -> Measured:
    """Run ``command`` in ``cwd`` (``env`` added to the environment); sample its RssAnon and
    VmRSS from /proc every 20 ms."""
    out, err = cwd / ".stdout.txt", cwd / ".stderr.txt"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
        )
        peak, timed_out = {"RssAnon": 0.0, "VmRSS": 0.0}, False
        while process.poll() is None:
            peak = {key: max(value, status_mb(process.pid, key)) for key, value in peak.items()}
            if time.perf_counter() - started > timeout:
                process.kill()  # our own child, by its id
                process.wait()
                timed_out = True
                break
            time.sleep(SAMPLE_EVERY_S)
        seconds = time.perf_counter() - started
    return Measured(
        seconds=seconds,
        peak_anon_mb=peak["RssAnon"],
        peak_rss_mb=peak["VmRSS"],
        returncode=None if timed_out else process.returncode,
        stdout=out.read_text(),
        stderr=err.read_text(),
    )


def status_mb(pid: int, key: str) -> float:
    """A memory figure of a running process from /proc (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            line = next(line for line in status if line.startswith(key + ":"))
    except (OSError, StopIteration):
        return 0.0
    return int(line.split()[1]) / 1024


def meminfo_gib(key: str) -> float:
    """``MemTotal`` or ``MemAvailable`` of this machine, in GiB."""
    with open("/proc/meminfo") as meminfo:
        line = next(line for line in meminfo if line.startswith(key + ":"))
    return int(line.split()[1]) / 2**20


def load_average() -> float:
    """The 1-minute load average: above the cores, other processes compete for them."""
    with open("/proc/loadavg") as loadavg:
        return float(loadavg.read().split()[0])


def machine() -> dict[str, object]:
    """CPU model, cores, memory and the versions of what the benchmarks run."""
    cpu = platform.processor() or platform.machine()
    with open("/proc/cpuinfo") as cpuinfo:
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), cpu)
    versions: dict[str, str | None] = {}
    for package in ("torch", "lightning", "numpy", "scikit-learn", "scipy"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(meminfo_gib("MemTotal"), 1),
        "python": platform.python_version(),
        **versions,
    }


def describe(info: dict[str, object]) -> str:
    """One line for a table's caption."""
    return (
        f"{info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB; torch {info['torch']}, "
        f"lightning {info['lightning']}, numpy {info['numpy']}, scikit-learn "
        f"{info['scikit-learn']}"
    )


def require_disk(folder: Path, nbytes: int, what: str) -> None:
    """Refuse, with a message, to write ``nbytes`` where the disk has not that much free."""
    free = shutil.disk_usage(folder).free
    if nbytes + DISK_MARGIN > free:
        sys.exit(
            f"benchmark: {what} needs {nbytes / 2**30:.1f} GiB, and the disk holding {folder} has "
            f"{free / 2**30:.1f} GiB free (1 GiB is kept free). Use fewer rows."
        )


def write_npy(
    path: Path, rows: int, columns: int, make_rows: Callable[[int, int], np.ndarray]
) -> None:
    """A float32 ``.npy`` table of ``rows`` x ``columns``, written 1,000,000 rows at a time.

    ``make_rows(start, n)`` gives rows ``start .. start + n``; the table is never all in memory.
    """
    table = np.lib.format.open_memmap(path, "w+", np.float32, (rows, columns))
    for start in range(0, rows, 1_000_000):
        n = min(1_000_000, rows - start)
        table[start : start + n] = make_rows(start, n)
    table.flush()
    del table


def worker(case: str, path: Path, **options: object) -> list[str]:
    """The command that runs one in-process case of ``bench_workers.py`` on the file ``path``."""
    import json

    return [sys.executable, str(WORKERS), case, str(path), json.dumps(options)]


def worker_result(measured: Measured) -> dict[str, object]:
    """The JSON a worker prints as its last line of output."""
    import json

    lines = measured.stdout.strip().splitlines()
    if measured.returncode != 0 or not lines:
        status = "timed out" if measured.returncode is None else f"status {measured.returncode}"
        raise RuntimeError(f"worker failed ({status}): {measured.stderr[-2000:]}")
    result: dict[str, object] = json.loads(lines[-1])
    return result


def linreg_run(cwd: Path, data_path: Path) -> dict[str, Any]:
    """The parameters (file units) and step counts of the `linreg fit` run made in ``cwd``.

    Read from the run's ``last.ckpt``: the layer, turned into the file's units by a data module
    configured as the run's was (its saved hyperparameters and standardization statistics).
    """
    import torch

    from linreg import FileDataModule

    found = sorted(cwd.rglob("last*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise RuntimeError(f"no last.ckpt under {cwd}: cannot read the run's parameters.")
    checkpoint = torch.load(found[-1], map_location="cpu", weights_only=True)
    settings = {
        key: value
        for key, value in checkpoint["datamodule_hyper_parameters"].items()
        if not key.startswith("_")
    }
    data = FileDataModule(**{**settings, "path": str(data_path)})
    data.load_state_dict(checkpoint["FileDataModule"])
    state = checkpoint["state_dict"]
    weight, bias = data.to_original_units(state["linear.weight"], state.get("linear.bias"))
    return {
        "coef": [*weight[0].tolist(), float(bias[0])],
        "epochs": int(checkpoint["epoch"]) + 1,  # saved at the end of epoch `epoch` (from 0)
        "global_step": int(checkpoint["global_step"]),
    }


def epoch_lines(output: str) -> list[str]:
    """Lines of a run's output that speak of epochs (linreg may report how many it ran)."""
    return [
        line.strip()
        for line in output.splitlines()
        if re.search("epoch", line, re.IGNORECASE) and not re.search(r"%\||it/s|s/it", line)
    ][-3:]  # the progress bar's lines left out
