"""``benchmark.py --to-accuracy``: how long each tool takes to an answer as good as the exact one.

On ROWS x features float32 columns correlated so that the feature matrix's condition number is
1e3 (singular values log-spaced from 1 to 1e-3, rotated), y = x · w + b + noise (R² about
0.99), saved as an ``.npz`` (``x``, ``y``): the wall time, interpreter start included, of

  linreg fit with its default settings (nothing but the file and the target), the parameters
  read back from its last checkpoint in the file's units;
  linreg fit --model linreg.LeastSquares;
  scikit-learn LinearRegression;
  scikit-learn SGDRegressor: its defaults on the raw columns, and a grid of learning rates
  behind a StandardScaler (the setting scikit-learn recommends for SGD; linreg standardizes
  too);

each in its own process, and whether the R² of its answer on all rows reaches the exact
least-squares R² (numpy lstsq, float64, on all rows) within 1e-4. The time is that of the whole
run: a tool that stops early but short of the target has "not reached" it, with its R² gap.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from bench_process import (
    LINREG,
    epoch_lines,
    linreg_run,
    load_average,
    run_measured,
    worker,
    worker_result,
)

TOLERANCE = 1e-4
CONDITION = 1e3
NOISE = 0.1  # noise std relative to the signal's: R² ≈ 1 / (1 + 0.1²)
SGD_GRID = [  # (learning_rate, eta0): scikit-learn's default schedule, and its adaptive one
    (schedule, eta0) for schedule in ("invscaling", "adaptive") for eta0 in (1e-4, 1e-3, 1e-2, 1e-1)
]
QUICK_SGD_GRID = [("invscaling", 1e-2), ("adaptive", 1e-2)]


def make_data(rows: int, features: int) -> tuple[np.ndarray, np.ndarray]:
    """Features of condition number ``CONDITION``; y = x · w + 0.8 + noise, float32."""
    generator = np.random.default_rng(0)
    rotation = np.linalg.qr(generator.standard_normal((features, features)))[0]
    spectrum = np.logspace(0, -np.log10(CONDITION), features)
    offset = generator.uniform(-1, 1, features)
    x = (generator.standard_normal((rows, features)) * spectrum) @ rotation.T + offset
    weight = np.linspace(-2, 3, features)
    signal = (x - offset) @ weight
    y = x @ weight + 0.8 + NOISE * signal.std() * generator.standard_normal(rows)
    return x.astype(np.float32), y.astype(np.float32)


def cases(path: Path, quick: bool) -> dict[str, list[str]]:
    """Each case's command line (the linreg ones as a user types them)."""
    fit = [LINREG, "fit", "--data", "linreg.FileDataModule", "--data.path", str(path),
           "--data.target", "y"]  # fmt: skip
    commands = {
        "linreg fit (defaults)": fit,
        "linreg fit --model linreg.LeastSquares": [*fit, "--model", "linreg.LeastSquares"],
        "sklearn LinearRegression": worker("sklearn", path, dtype="float32"),
        "sklearn SGDRegressor() (defaults)": worker("sgd", path, params={"random_state": 0}),
    }
    for schedule, eta0 in QUICK_SGD_GRID if quick else SGD_GRID:
        params = {"learning_rate": schedule, "eta0": eta0, "random_state": 0}
        name = f"StandardScaler + SGDRegressor({schedule}, eta0={eta0:g})"
        commands[name] = worker("sgd", path, params=params, scale=True)
    return commands


def to_accuracy(rows: int, features: int, quick: bool, timeout: float) -> dict[str, Any]:
    """Run every case once on one file; R² of each answer against the least-squares R²."""
    folder = Path(tempfile.mkdtemp(prefix="bench_accuracy_", dir=".")).resolve()
    try:
        x, y = make_data(rows, features)
        path = folder / "data.npz"
        np.savez(path, x=x, y=y)
        reference = least_squares_r2(x, y)
        condition = condition_number(x)
        results, load = [], [load_average()]
        for name, command in cases(path, quick).items():
            results.append(run_case(name, command, path, folder, x, y, reference, timeout))
            print(_row(results[-1]), flush=True)
        load.append(load_average())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    report = {"rows": rows, "features": features, "condition_number": condition,
              "least_squares_r2": reference, "tolerance": TOLERANCE, "timeout_s": timeout,
              "load_average": load, "results": results}  # fmt: skip
    print(table(report))
    return report


def run_case(
    name: str, command: list[str], path: Path, folder: Path, x: np.ndarray, y: np.ndarray,
    reference: float, timeout: float,
) -> dict[str, Any]:  # fmt: skip
    cwd = Path(tempfile.mkdtemp(dir=folder))
    try:
        measured = run_measured(command, cwd, timeout)
        result: dict[str, Any] = {"case": name, "seconds": measured.seconds,
                                  "peak_anon_mb": measured.peak_anon_mb}  # fmt: skip
        if measured.returncode is None:
            result.update(reached=False, r2=None, note=f"stopped after the {timeout:.0f} s limit")
            return result
        if measured.returncode != 0:  # recorded, and the other cases still run
            failed = measured.stderr.strip().splitlines()[-1:]
            result.update(reached=False, r2=None, note=f"failed: {' '.join(failed)}")
            return result
        if command[0] == LINREG:
            result.update(linreg_run(cwd, path))
            result["printed"] = epoch_lines(measured.stdout + "\n" + measured.stderr)
        else:
            result.update(worker_result(measured))
    finally:
        shutil.rmtree(cwd, ignore_errors=True)
    r2 = r_squared(x, y, result["coef"])
    result.update(r2=r2, r2_gap=reference - r2, reached=bool(reference - r2 <= TOLERANCE))
    return result


def least_squares_r2(x: np.ndarray, y: np.ndarray) -> float:
    """R² of the exact least-squares fit on all rows (numpy lstsq in float64, an intercept)."""
    design = np.column_stack([x.astype(np.float64), np.ones(len(x))])
    theta = np.linalg.lstsq(design, y.astype(np.float64), rcond=None)[0]
    return r_squared(x, y, theta.tolist())


def r_squared(x: np.ndarray, y: np.ndarray, coef: list[float]) -> float:
    """``1 - SSE / TSS`` of ``x · w + b`` (``coef`` = weights, then b) on all rows, float64."""
    weight, bias = np.asarray(coef[:-1]), coef[-1]
    sse = tss = 0.0
    mean = float(np.mean(y, dtype=np.float64))
    for start in range(0, len(x), 1_000_000):  # float64 a million rows at a time
        rows = slice(start, start + 1_000_000)
        target = y[rows].astype(np.float64)
        sse += float(np.sum((target - x[rows].astype(np.float64) @ weight - bias) ** 2))
        tss += float(np.sum((target - mean) ** 2))
    return 1.0 - sse / tss


def condition_number(x: np.ndarray) -> float:
    """``σmax / σmin`` of the centred feature matrix."""
    covariance = np.cov(x, rowvar=False, dtype=np.float64)
    eigenvalues = np.linalg.eigvalsh(covariance)
    return float(np.sqrt(eigenvalues[-1] / eigenvalues[0]))


def _row(result: dict[str, Any]) -> str:
    r2 = "-" if result["r2"] is None else f"{result['r2']:.6f}"
    return f"{result['case']:<58} {result['seconds']:8.2f} s  R² {r2}  reached: {result['reached']}"


def table(report: dict[str, Any]) -> str:
    lines = [
        f"\n{report['rows']:,} rows x {report['features']} float32 features (condition number "
        f"{report['condition_number']:.3g}), least-squares R² {report['least_squares_r2']:.6f}; "
        f"target: R² within {report['tolerance']:g} of it. One run per case, each in its own "
        f"process, wall time including interpreter start and loading (load average "
        f"{report['load_average'][0]:.1f}, then {report['load_average'][1]:.1f}):",
        "",
        "| case | wall s | fit s | R² | R² gap | reached | epochs / iterations | peak RssAnon MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        fit = r.get("timers", {}).get("fit_s", r.get("timers", {}).get("solve_s"))
        r2 = "-" if r["r2"] is None else f"{r['r2']:.6f}"
        gap = "-" if r.get("r2_gap") is None else f"{r['r2_gap']:.1e}"
        steps = (f"{r['epochs']} epochs, {r['global_step']} steps" if "epochs" in r
                 else f"{r['n_iter']} epochs" if "n_iter" in r else "-")  # fmt: skip
        lines.append(
            f"| {r['case']} | {r['seconds']:.2f} | {'-' if fit is None else f'{fit:.2f}'} | {r2} "
            f"| {gap} | {'yes' if r['reached'] else 'no'} | {steps} | {r['peak_anon_mb']:.0f} |"
        )
    for r in report["results"]:
        if r.get("printed"):
            lines.append(f"{r['case']} printed: " + " / ".join(r["printed"]))
        if r.get("note"):
            lines.append(f"{r['case']}: {r['note']}")
    return "\n".join(lines)
