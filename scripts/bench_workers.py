"""The in-process cases of ``benchmark.py --exact`` and ``--to-accuracy``, one per process.

Each runs in its own interpreter, so its peak memory is its own; the parent times the whole
process and samples its memory. It prints, as its last line, a JSON object: the coefficients
(weights, then the intercept, in the file's units) and its own timers. Run by the benchmark:

  .venv/bin/python scripts/bench_workers.py CASE FILE '{"option": value}'

CASE is ``qr_pass`` (linreg's exact pass: FileDataModule.chunks + QRFactorization), ``lstsq``
(numpy, float64 in memory), ``sklearn`` (LinearRegression) or ``sgd`` (SGDRegressor). FILE is a
``.npy`` table (the target last) or an ``.npz`` with ``x`` and ``y``.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import json  # noqa: E402  (after the clock: imports are part of what is timed)
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

Result = dict[str, Any]


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The whole table in memory, as stored (float32): ``x`` and the target column ``y``."""
    if path.suffix == ".npz":
        with np.load(path) as archive:
            return archive["x"], archive["y"].reshape(-1)
    table = np.load(path)  # read whole, not memory-mapped
    return table[:, :-1], table[:, -1]  # views of the one table


def qr_pass(path: Path, options: dict[str, Any]) -> Result:
    """(a') What `linreg fit --model linreg.LeastSquares` does, with a timer on each part."""
    import torch

    from linreg import FileDataModule
    from linreg.least_squares import CHUNK_ROWS
    from linreg.solver import QRFactorization

    timers: dict[str, float] = {"import_s": time.perf_counter() - STARTED}
    data = FileDataModule(str(path), val_fraction=0.0, test_fraction=0.0)
    tick = time.perf_counter()
    data.check("fit")  # linreg's pre-flight: reads the file once (finite, in range)
    timers["check_pass_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    data.setup("fit")  # standardization statistics: a second pass
    timers["statistics_pass_s"] = time.perf_counter() - tick
    qr = QRFactorization(data.num_features, data.num_targets, True)
    fetch = update = 0.0
    chunks, last = 0, None
    tick = time.perf_counter()
    iterator = data.chunks("train", CHUNK_ROWS, transform=False)  # as LeastSquares reads it
    while True:
        started = time.perf_counter()
        chunk = next(iterator, None)
        fetch += time.perf_counter() - started
        if chunk is None:
            break
        started = time.perf_counter()
        qr.update(*chunk)
        update += time.perf_counter() - started
        chunks, last = chunks + 1, chunk if len(chunk[0]) == CHUNK_ROWS else last
    timers["qr_pass_s"] = time.perf_counter() - tick
    timers["pass_reading_s"], timers["pass_update_s"] = fetch, update
    tick = time.perf_counter()
    solution = qr.solve()
    timers["solve_s"] = time.perf_counter() - tick
    if last is not None:  # one update again, in its parts: the float64 copy, the QR itself
        x, y = last
        d, p, q = x.shape[1], qr.n_params, qr.r.shape[0]
        block = torch.empty(q, q + len(x), dtype=torch.float64).T  # as update() builds it

        def fill() -> None:
            block[:q], block[q:, :d], block[q:, d:p] = qr.r, x, 1.0
            block[q:, p:] = y.reshape(len(y), -1)

        timers["pass_float64_copy_s"] = _best(fill) * chunks
        fill()
        timers["pass_householder_qr_s"] = _best(lambda: torch.linalg.qr(block, mode="r")) * chunks
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # what contention for the cores costs the threaded LAPACK
        timers["pass_householder_qr_1_thread_s"] = (
            _best(lambda: torch.linalg.qr(block, mode="r")) * chunks
        )
        torch.set_num_threads(threads)
    theta = solution.theta[:, 0].tolist()  # weights, then the bias
    return {"coef": theta, "timers": timers, "chunks": chunks, "threads": torch.get_num_threads()}


def lstsq(path: Path, options: dict[str, Any]) -> Result:
    """(b) ``np.linalg.lstsq`` on the table in memory, float64, with a column of ones."""
    tick = time.perf_counter()
    x, y = load(path)
    read = time.perf_counter() - tick
    tick = time.perf_counter()
    design = np.empty((len(x), x.shape[1] + 1))
    design[:, :-1] = x
    design[:, -1] = 1.0
    target = y.astype(np.float64)
    del x, y
    convert = time.perf_counter() - tick
    tick = time.perf_counter()
    theta = np.linalg.lstsq(design, target, rcond=None)[0]
    solve = time.perf_counter() - tick
    timers = {"read_s": read, "float64_copy_s": convert, "load_s": read + convert, "solve_s": solve}
    return {"coef": theta.tolist(), "timers": timers}


def sklearn(path: Path, options: dict[str, Any]) -> Result:
    """(c) ``LinearRegression().fit`` on the table in memory: float32 as loaded, or float64."""
    from sklearn.linear_model import LinearRegression

    tick = time.perf_counter()
    x, y = load(path)
    if options.get("dtype") == "float64":
        x, y = x.astype(np.float64), y.astype(np.float64)
    timers = {"load_s": time.perf_counter() - tick}
    tick = time.perf_counter()
    model = LinearRegression().fit(x, y)
    timers["solve_s"] = time.perf_counter() - tick
    coef = [*np.ravel(model.coef_).tolist(), float(model.intercept_)]
    return {"coef": coef, "timers": timers, "input_dtype": str(x.dtype),
            "computed_in": str(model.coef_.dtype)}  # fmt: skip


def sgd(path: Path, options: dict[str, Any]) -> Result:
    """``SGDRegressor(**params)``, behind a ``StandardScaler`` when ``scale`` is set."""
    from sklearn.linear_model import SGDRegressor

    tick = time.perf_counter()
    x, y = load(path)
    timers = {"load_s": time.perf_counter() - tick}
    model = SGDRegressor(**options.get("params", {}))
    mean, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
    tick = time.perf_counter()
    if options.get("scale"):
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(x)
        mean, scale = scaler.mean_, scaler.scale_
        model.fit(scaler.transform(x), y)
    else:
        model.fit(x, y)
    timers["fit_s"] = time.perf_counter() - tick
    weight = model.coef_ / scale  # back to the file's units
    bias = float(model.intercept_[0]) - float(weight @ mean)
    return {"coef": [*weight.tolist(), bias], "timers": timers, "n_iter": int(model.n_iter_)}


def _best(function: Callable[[], object], repeats: int = 3) -> float:
    """The fastest of a few runs of ``function``, in seconds."""
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        function()
        times.append(time.perf_counter() - tick)
    return min(times)


CASES: dict[str, Callable[[Path, dict[str, Any]], Result]] = {
    "qr_pass": qr_pass,
    "lstsq": lstsq,
    "sklearn": sklearn,
    "sgd": sgd,
}

if __name__ == "__main__":
    case, path, options = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    result = CASES[case](path, options)
    result["timers"]["in_process_s"] = time.perf_counter() - STARTED
    print(json.dumps(result))
