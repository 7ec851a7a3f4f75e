"""The benchmark script's modes run (CI-sized) and what they report is consistent and right."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def benchmark(tmp_path: Path, *args: str) -> tuple[dict[str, Any], str]:
    """Run ``scripts/benchmark.py`` in ``tmp_path``: its JSON report and its printed output."""
    report = tmp_path / "benchmark.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "benchmark.py"), *args, "--json", str(report)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(report.read_text())
    assert data["cores"] >= 1 and data["cpu"] and data["torch"] and data["scikit-learn"]
    return data, result.stdout


def test_quick_benchmark_runs_and_linreg_matches_the_hand_written_loop(tmp_path: Path) -> None:
    report, stdout = benchmark(tmp_path, "--quick")
    by_case = {(r["case"], r["batch_size"]): r for r in report["results"]}
    assert set(by_case) == {
        (c, b) for c in ("hand", "linreg", "naive", "floor") for b in (64, 1024)
    }
    for (case, batch_size), result in by_case.items():
        # every case ran the stated steps (--quick: 6400 samples, at least 100 steps) ...
        assert result["steps"] == max(100, 6400 // batch_size)
        # ... and its samples/s are those steps over its time (seconds rounded to 0.1 ms)
        timed = result["steps"] * batch_size
        assert result["samples_per_s"] == pytest.approx(timed / result["seconds"], rel=0.01)
        hand = by_case["hand", batch_size]
        if case != "hand":  # the recorded ratios are the samples/s over the hand-written loop's
            ratio = report["ratios"][f"{case}/hand@{batch_size}"]
            assert ratio == pytest.approx(result["samples_per_s"] / hand["samples_per_s"], abs=1e-3)
    for batch_size in (64, 1024):
        hand, linreg = by_case["hand", batch_size], by_case["linreg", batch_size]
        assert by_case["floor", batch_size]["final_train_mse"] == linreg["final_train_mse"]
        # the same steps in the same order: the same training loss, to float rounding
        assert linreg["final_train_mse"] == pytest.approx(hand["final_train_mse"], rel=1e-5)
    printed = next(line for line in stdout.splitlines() if line.startswith("ratios"))
    assert ast.literal_eval(printed.split(":", 1)[1].strip()) == report["ratios"]


def test_exact_mode_solvers_agree_and_memory_is_sampled(tmp_path: Path) -> None:
    cases = ("a", "a'", "b", "c", "c64")  # (a1) and (d) are (a) again and an SGD epoch: skipped
    report, stdout = benchmark(
        tmp_path, "--exact", "--quick", "--repeats", "1", "--exact-cases", *cases
    )
    (size,) = report["exact"]["sizes"]
    results, agreement = size["results"], size["agreement"]
    assert set(results) == set(cases)
    # linreg's command, its pass in-process, numpy and scikit-learn in float64: one answer
    for pair in ("a~a'", "a~b", "a~c64", "b~c64"):
        assert agreement[pair] < 1e-6, (pair, agreement)
    # scikit-learn keeps float32 input in float32: close, not to float64's digits
    assert results["c"]["computed_in"] == "float32"
    assert agreement["a~c"] < 1e-3
    for case, result in results.items():
        assert result["peak_anon_mb"] > 0 and result["peak_rss_mb"] >= result["peak_anon_mb"], case
        assert result["seconds"] > 0
    timers = results["a'"]["timers"]
    assert timers["pass_reading_s"] + timers["pass_update_s"] <= timers["qr_pass_s"]
    assert results["a'"]["chunks"] == 2  # 100,000 rows in chunks of 65,536
    assert results["a"]["epochs"] == 1
    assert set(size["targets"]) == {"a_faster_than_b", "a_faster_than_c"}
    assert "| (a)   linreg fit --model linreg.LeastSquares |" in stdout
    assert not list(tmp_path.glob("bench_exact_*")), "the temporary folder is left behind"


def test_to_accuracy_least_squares_reaches_the_target(tmp_path: Path) -> None:
    report, stdout = benchmark(tmp_path, "--to-accuracy", "--quick", "--case-timeout", "300")
    accuracy = report["to_accuracy"]
    assert 500 < accuracy["condition_number"] < 2000
    results = {r["case"]: r for r in accuracy["results"]}
    assert {"linreg fit (defaults)", "sklearn SGDRegressor() (defaults)"} <= set(results)
    assert sum(case.startswith("StandardScaler + SGDRegressor(") for case in results) == 2
    for exact in ("linreg fit --model linreg.LeastSquares", "sklearn LinearRegression"):
        assert results[exact]["reached"], results[exact]
    best = accuracy["least_squares_r2"]
    for case, result in results.items():
        if result["r2"] is not None:  # no linear answer beats least squares on its own rows
            assert result["r2"] <= best + 1e-12, case
            assert result["reached"] == (best - result["r2"] <= accuracy["tolerance"]), case
    defaults = results["linreg fit (defaults)"]  # whatever linreg's defaults are today
    assert defaults["r2"] is None or defaults["epochs"] >= 1
    assert "| linreg fit --model linreg.LeastSquares |" in stdout
