"""``benchmark.py --exact``: the exact least-squares answer from a big ``.npy`` file, timed.

On one file of ROWS x (features + 1) float32 (correlated columns, the target last), written
chunk by chunk in a temporary folder under the current directory, each case in its own process
(its peak memory its own, sampled from /proc every 20 ms), interleaved, the fastest of the
repeats kept:

  (a)   `linreg fit --model linreg.LeastSquares` on the file, the whole command;
  (a1)  (a) with OMP_NUM_THREADS=1: on a shared 2-core machine, torch's two OpenMP threads
        wait for a core that another process holds, and the pass can take 10x longer;
  (a')  the same pass in-process (FileDataModule.chunks + QRFactorization) with a timer on each
        part: linreg's check pass, the statistics pass, reading chunks, the QR updates;
  (b)   numpy ``np.linalg.lstsq`` on the table loaded in memory, float64, a column of ones;
  (c)   scikit-learn ``LinearRegression().fit`` on the table as loaded (float32; scikit-learn
        keeps float32 and solves in float32), and (c64) on a float64 copy;
  (d)   one SGD epoch of `linreg fit` (the default model), batch 8192: the streaming baseline.

The answers of (a), (a1), (a'), (b), (c), (c64) are compared coefficient by coefficient. Given
several sizes, (a)'s peak RssAnon per size shows whether its memory grows with the file; it
prints from how many rows the file would be larger than this machine's RAM. A file that does not
fit on the disk is refused before anything is written; a case that would not fit in the memory
available is skipped, with the reason.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from bench_process import (
    LINREG,
    linreg_run,
    load_average,
    meminfo_gib,
    require_disk,
    run_measured,
    worker,
    worker_result,
    write_npy,
)

LABELS = {
    "a": "(a)   linreg fit --model linreg.LeastSquares",
    "a1": "(a1)  (a) with OMP_NUM_THREADS=1",
    "a'": "(a')  the QR pass in-process",
    "b": "(b)   numpy lstsq, float64 in memory",
    "c": "(c)   sklearn LinearRegression, float32",
    "c64": "(c64) sklearn LinearRegression, float64",
    "d": "(d)   linreg fit, one SGD epoch, batch 8192",
}
SOLVERS = ("a", "a1", "a'", "b", "c", "c64")  # the cases that give the least-squares answer
# Bytes per value of the table that a case holds in memory at its peak (estimated): too many
# for the memory available, and the case is skipped rather than swapping the machine.
IN_MEMORY_BYTES = {"b": 4 + 8 + 8, "c": 4 + 4 + 4, "c64": 4 + 8 + 8 + 8}


def make_rows(features: int) -> Any:
    """Rows of the benchmark table: neighbouring columns correlated, y = x · w + 0.8 + noise."""
    weight = np.linspace(-2, 3, features)
    offset = np.linspace(-1, 1, features)

    def rows(start: int, n: int) -> np.ndarray:
        generator = np.random.default_rng([0, start])  # the same rows whatever the chunking
        z = generator.standard_normal((n, features), dtype=np.float32)
        x = z + offset.astype(np.float32)
        x[:, 1:] += 0.9 * z[:, :-1]
        y = x @ weight + 0.8 + 0.1 * generator.standard_normal(n)
        return np.column_stack([x, y.astype(np.float32)])

    return rows


def commands(case: str, path: Path) -> list[str]:
    data = [LINREG, "fit", "--data", "linreg.FileDataModule", "--data.path", str(path),
            "--data.val_fraction", "0", "--data.test_fraction", "0",
            "--trainer.enable_progress_bar", "false", "--fit_plot", "null"]  # fmt: skip
    return {
        "a": [*data, "--model", "linreg.LeastSquares"],
        "a1": [*data, "--model", "linreg.LeastSquares"],
        "a'": worker("qr_pass", path),
        "b": worker("lstsq", path),
        "c": worker("sklearn", path, dtype="float32"),
        "c64": worker("sklearn", path, dtype="float64"),
        "d": [*data, "--data.batch_size", "8192", "--trainer.max_epochs", "1"],
    }[case]


def run_case(case: str, path: Path, folder: Path) -> dict[str, Any]:
    """One run of ``case`` in a fresh working folder: time, peak memory, coefficients, timers."""
    cwd = Path(tempfile.mkdtemp(dir=folder))
    try:
        # one thread: contention for the 2 cores costs torch's OpenMP threads much more than 2x
        env = {"OMP_NUM_THREADS": "1"} if case == "a1" else None
        measured = run_measured(commands(case, path), cwd, env=env)
        result: dict[str, Any] = {
            "case": case,
            "seconds": measured.seconds,
            "peak_anon_mb": measured.peak_anon_mb,
            "peak_rss_mb": measured.peak_rss_mb,
        }
        if measured.returncode != 0:  # recorded, and the other cases still run
            result["failed"] = measured.stderr.strip().splitlines()[-1:]
        elif case in ("a", "a1", "d"):
            result.update(linreg_run(cwd, path))
        else:
            result.update(worker_result(measured))
        failed = f", FAILED: {result['failed']}" if "failed" in result else ""
        print(f"  {LABELS[case]}: {measured.seconds:.2f} s{failed}", flush=True)
        return result
    finally:
        shutil.rmtree(cwd, ignore_errors=True)


def exact(sizes: list[int], features: int, cases: list[str], repeats: int) -> dict[str, Any]:
    """Every case on a file of each size; the fastest of ``repeats`` interleaved runs."""
    folder = Path(tempfile.mkdtemp(prefix="bench_exact_", dir=".")).resolve()
    per_size = []
    try:
        for rows in sizes:
            per_size.append(_one_size(rows, features, cases, repeats, folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    columns = features + 1
    ram_rows = int(meminfo_gib("MemTotal") * 2**30 / (4 * columns))
    peaks = {
        size["rows"]: size["results"]["a"]["peak_anon_mb"]
        for size in per_size
        if "coef" in size["results"].get("a", {})
    }
    print(f"\nA file of {columns} float32 columns is larger than this machine's RAM "
          f"({meminfo_gib('MemTotal'):.1f} GiB) from {ram_rows:,} rows on.")  # fmt: skip
    if len(peaks) > 1:
        growth = ", ".join(f"{rows:,} rows: {mb:.0f} MB" for rows, mb in peaks.items())
        print(f"(a)'s peak RssAnon as the file grows: {growth}")
    return {"features": features, "sizes": per_size, "file_larger_than_ram_from_rows": ram_rows,
            "anon_mb_by_rows": peaks}  # fmt: skip


def _one_size(rows: int, features: int, cases: list[str], repeats: int, folder: Path) -> dict:
    path = folder / f"exact_{rows}x{features}.npy"
    nbytes = rows * (features + 1) * 4
    require_disk(folder, nbytes, f"a {rows:,} x {features + 1} float32 file")
    write_npy(path, rows, features + 1, make_rows(features))
    load = [load_average()]
    available = meminfo_gib("MemAvailable") * 2**30
    skipped = {
        case: f"needs ~{rows * (features + 1) * IN_MEMORY_BYTES[case] / 2**30:.1f} GiB in memory, "
        f"{available / 2**30:.1f} GiB available"
        for case in cases
        if rows * (features + 1) * IN_MEMORY_BYTES.get(case, 0) > 0.8 * available
    }
    best: dict[str, dict[str, Any]] = {}
    for _ in range(repeats):  # interleaved: every case sees the same machine load
        for case in (c for c in cases if c not in skipped):
            result = run_case(case, path, folder)
            peak = max(result["peak_anon_mb"], best.get(case, {}).get("peak_anon_mb", 0.0))
            if case not in best or _better(result, best[case]):
                best[case] = result
            best[case]["peak_anon_mb"] = peak  # the highest of the repeats
    path.unlink()
    load.append(load_average())
    solved = [c for c in SOLVERS if c in best and "coef" in best[c]]
    agreement = {
        f"{one}~{other}": relative_difference(best[one]["coef"], best[other]["coef"])
        for one, other in itertools.combinations(solved, 2)
    }
    size = {"rows": rows, "features": features, "file_mb": nbytes / 2**20, "repeats": repeats,
            "results": best, "skipped": skipped, "agreement": agreement, "load_average": load,
            "targets": targets(best)}  # fmt: skip
    print(table(size))
    return size


def _better(result: dict[str, Any], best: dict[str, Any]) -> bool:
    """A run that worked over one that failed; then the faster."""
    if ("failed" in result) != ("failed" in best):
        return "failed" in best
    return bool(result["seconds"] < best["seconds"])


def relative_difference(coef: list[float], reference: list[float]) -> float:
    """``max |coef - reference| / max |reference|`` over the weights and the intercept."""
    a, b = np.asarray(coef), np.asarray(reference)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def targets(best: dict[str, dict[str, Any]]) -> dict[str, bool | None]:
    """The project's targets for (a): faster, end to end, than (b) and than (c)."""

    def faster(other: str) -> bool | None:
        if any(case not in best or "failed" in best[case] for case in ("a", other)):
            return None
        return bool(best["a"]["seconds"] < best[other]["seconds"])

    return {"a_faster_than_b": faster("b"), "a_faster_than_c": faster("c")}


def table(size: dict[str, Any]) -> str:
    """The size's results as a Markdown table, with the agreement and the targets below it."""
    results = size["results"]
    lines = [
        f"\n{size['rows']:,} rows x {size['features']} features + 1 target, float32 .npy "
        f"({size['file_mb']:.0f} MB), fastest of {size['repeats']} interleaved run(s), each case "
        f"in its own process (load average {size['load_average'][0]:.1f}, then "
        f"{size['load_average'][1]:.1f}):",
        "",
        "| case | wall s (whole process) | pass or solve s | load s | peak RssAnon MB | "
        "peak VmRSS MB | coef diff vs (a) |",
        "|---|---|---|---|---|---|---|",
    ]
    for case, result in results.items():
        timers = result.get("timers", {})
        solve = timers.get("qr_pass_s", timers.get("solve_s"))
        load = timers.get("load_s")
        diff = size["agreement"].get(f"a~{case}")
        if "failed" in result:
            lines.append(f"| {LABELS[case]} | failed: {' '.join(result['failed'])} | | | | | |")
            continue
        lines.append(
            f"| {LABELS[case]} | {result['seconds']:.2f} | {_maybe(solve)} | {_maybe(load)} | "
            f"{result['peak_anon_mb']:.0f} | {result['peak_rss_mb']:.0f} | "
            f"{'-' if diff is None else f'{diff:.1e}'} |"
        )
    for case, why in size["skipped"].items():
        lines.append(f"| {LABELS[case]} | skipped: {why} | | | | | |")
    if "timers" in results.get("a'", {}):
        t = results["a'"]["timers"]
        parts = ", ".join(f"{k.removesuffix('_s')} {v:.2f} s" for k, v in t.items())
        lines.append(f"\n(a') in-process timers: {parts}")
    pairs = ", ".join(f"{k} {v:.1e}" for k, v in size["agreement"].items())
    lines.append(f"max relative coefficient difference: {pairs}")
    lines.append(f"targets: {size['targets']}")
    return "\n".join(lines)


def _maybe(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
