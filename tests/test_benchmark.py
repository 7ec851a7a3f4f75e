"""The benchmark script runs (CI-sized), and linreg's path does the hand-written loop's math."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_quick_benchmark_runs_and_linreg_matches_the_hand_written_loop(tmp_path: Path) -> None:
    report = tmp_path / "benchmark.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "benchmark.py"), "--quick", "--json", str(report)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(report.read_text())["results"]
    by_case = {(r["case"], r["batch_size"]): r for r in results}
    assert {case for case, _ in by_case} == {"hand", "linreg", "naive", "floor"}
    for batch_size in {batch for _, batch in by_case}:
        hand, linreg = by_case["hand", batch_size], by_case["linreg", batch_size]
        assert by_case["floor", batch_size]["final_train_mse"] == linreg["final_train_mse"]
        # the same steps in the same order: the same training loss, to float rounding
        assert linreg["final_train_mse"] == pytest.approx(hand["final_train_mse"], rel=1e-5)
        assert hand["samples_per_s"] > 0 and linreg["samples_per_s"] > 0
    assert "ratios" in result.stdout
