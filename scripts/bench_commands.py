"""``benchmark.py --memmap``, ``--csv`` and ``--seed-task``: the `linreg` command and its file
reading, timed from outside.

  --memmap ROWS  one SGD epoch of `linreg fit` on a ROWS x 17 float32 .npy, peak memory;
  --csv ROWS     read and check a CSV of ROWS x 6 numbers, with and without a text column;
  --seed-task    `linreg fit` (defaults) against the tutorial's 30,000-step script.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_process import LINREG, SCRIPTS, require_disk, run_measured, write_npy


def memmap_file(rows: int, features: int = 16) -> dict[str, float]:
    """Train one epoch on a .npy file of ``rows`` x (features + 1) float32 through `linreg fit`.

    The file is memory-mapped: the peak memory of the training process should stay far below
    the file's size.
    """
    with tempfile.TemporaryDirectory(dir=".") as folder:
        path = Path(folder).resolve() / "big.npy"
        require_disk(Path(folder), rows * (features + 1) * 4, f"a {rows:,}-row file")
        generator = np.random.default_rng(0)
        weight = np.linspace(-2, 3, features, dtype=np.float32)

        def make_rows(start: int, n: int) -> np.ndarray:  # called in row order
            x = generator.random((n, features), dtype=np.float32)
            return np.column_stack([x, x @ weight + 0.8])

        write_npy(path, rows, features + 1, make_rows)
        command = [LINREG, "fit", "--data", "linreg.FileDataModule", "--data.path", str(path),
                   "--data.batch_size", "8192", "--trainer.max_epochs", "1",
                   "--trainer.enable_progress_bar", "false",
                   "--fit_plot", "null"]  # fmt: skip
        measured = run_measured(command, Path(folder))
        if measured.returncode:
            raise RuntimeError(f"linreg fit failed: {measured.stderr[-3000:]}")
        file_mb = path.stat().st_size / 2**20
    print(f"{rows:,} rows x {features + 1} columns: file {file_mb:.0f} MB, one epoch of "
          f"`linreg fit` {measured.seconds:.1f} s; peak memory of the process: "
          f"{measured.peak_anon_mb:.0f} MB allocated (RssAnon), {measured.peak_rss_mb:.0f} MB "
          f"resident incl. file pages the OS can drop (VmRSS)")  # fmt: skip
    return {"rows": rows, "file_mb": file_mb, "seconds": measured.seconds,
            "peak_anon_mb": measured.peak_anon_mb, "peak_rss_mb": measured.peak_rss_mb}  # fmt: skip


def csv_read(rows: int) -> dict[str, float]:
    """Seconds to read and check a CSV of ``rows`` x 6 numbers, and the same with a text column.

    Numbers only go through NumPy's C parser; a text column sends the file to the csv module.
    """
    from linreg import FileDataModule

    generator = np.random.default_rng(0)
    table = generator.random((rows, 6))
    result: dict[str, float] = {"rows": float(rows)}
    with tempfile.TemporaryDirectory() as folder:
        for case, header, text in (
            ("numbers_only", "a,b,c,d,e,y", ""),
            ("text_column", "id,a,b,c,d,e,y", "r,"),
        ):
            path = Path(folder) / f"{case}.csv"
            with open(path, "w") as file:
                file.write(header + "\n")
                file.writelines(text + ",".join(f"{v:.8g}" for v in row) + "\n" for row in table)
            started = time.perf_counter()
            FileDataModule(str(path), features=["a", "b", "c", "d", "e"]).check("fit")
            result[f"{case}_seconds"] = time.perf_counter() - started
            result[f"{case}_mb"] = path.stat().st_size / 2**20
    numbers, with_text = result["numbers_only_seconds"], result["text_column_seconds"]
    print(f"read and check {rows:,} rows x 6 columns ({result['numbers_only_mb']:.0f} MB): "
          f"numbers only {numbers:.2f} s, with a text column {with_text:.2f} s")  # fmt: skip
    return result


def seed_task(repeats: int) -> dict[str, float]:
    """Wall time of the tutorial's 30,000-step script against `linreg fit`: with its defaults,
    with the tutorial's own recipe (configs/tutorial.yaml), and `linreg compare`."""
    baseline = SCRIPTS / "tutorial_baseline.py"
    quiet = ("--trainer.enable_progress_bar", "false")
    commands = {
        "tutorial": [sys.executable, str(baseline)],
        "linreg_fit": [LINREG, "fit", *quiet],
        "tutorial_config": [
            LINREG,
            "fit",
            "--config",
            str(SCRIPTS.parent / "configs" / "tutorial.yaml"),
            *quiet,
        ],
        "compare": [LINREG, "compare"],
        "import_only": [sys.executable, "-c", "import linreg.cli"],  # start-up's share
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    with tempfile.TemporaryDirectory() as cwd:
        for _ in range(repeats):  # interleaved, so both see the same machine load
            for name, command in commands.items():
                started = time.perf_counter()
                subprocess.run(command, cwd=cwd, check=True, capture_output=True)
                times[name].append(time.perf_counter() - started)
    best = {name: min(values) for name, values in times.items()}
    tutorial = best["tutorial"]
    print(f"tutorial script: {tutorial:.2f} s (best of {repeats}, interleaved); starting Python "
          f"and importing linreg.cli: {best['import_only']:.2f} s")  # fmt: skip
    for name, what in (("linreg_fit", "linreg fit (defaults)"),
                       ("tutorial_config", "linreg fit --config configs/tutorial.yaml"),
                       ("compare", "linreg compare (defaults)")):  # fmt: skip
        print(f"  {what}: {best[name]:.2f} s, {best[name] / tutorial:.2f} x the tutorial's script")
    return best
