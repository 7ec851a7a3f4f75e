"""How fast is linreg's Lightning training path next to a hand-written PyTorch loop?

In one process, on the same synthetic data, with the same optimizer (SGD), learning rate,
batch size and number of steps, it times four ways of training ``nn.Linear``:

  (a) hand   a hand-written loop: a permutation per epoch, batches by slicing, no Lightning;
  (b) linreg linreg's LinearRegression + data path in a Lightning Trainer, with what `linreg
             fit` adds by default: TensorBoard logging every 25 steps, the progress bar,
             DivergenceGuard, ParameterLogger, OptimumGap, FitPlot, HParamsMetrics;
  (c) naive  Lightning as a newcomer writes it: DataLoader(TensorDataset(...), shuffle=True)
             and self.log on every step;
  (d) floor  (b) without a logger, callbacks or progress bar: what Lightning's training loop
             itself costs around linreg's model and data path, the most any Lightning run
             of them can reach.

The timed part starts after a warm-up of a few steps. It prints samples/s, the ratio (b)/(a),
the final training MSE of each (a and b take the very same steps, so theirs agree to float
rounding) and the peak extra memory of each case (RSS on CPU, allocated memory on GPU), and
writes the table as JSON. It runs on the GPU unchanged when there is one.

Run:
  .venv/bin/python scripts/benchmark.py                 # batch 64 and 8192 on 1,000,000 x 32
  .venv/bin/python scripts/benchmark.py --quick         # seconds; what CI runs
  .venv/bin/python scripts/benchmark.py --scale         # linreg, N = 1e5, 1e6, 1e7 (x 16)
  .venv/bin/python scripts/benchmark.py --seed-task     # `linreg fit` vs the tutorial's script
  .venv/bin/python scripts/benchmark.py --memmap 30000000  # train on a 2 GB .npy, peak memory
  .venv/bin/python scripts/benchmark.py --csv 1000000   # read and check a CSV file
  .venv/bin/python scripts/benchmark.py --profile 64    # where Lightning's own time goes
  .venv/bin/python scripts/benchmark.py --exact         # exact least squares on a 1.3 GB .npy
  .venv/bin/python scripts/benchmark.py --exact 1000000 10000000  # (a)'s memory as it grows
  .venv/bin/python scripts/benchmark.py --exact --quick # seconds; what CI runs
  .venv/bin/python scripts/benchmark.py --to-accuracy   # time to the least-squares R², 1e6 x 32
  .venv/bin/python scripts/benchmark.py --to-accuracy --quick

The command-level modes live beside this script: --exact in bench_exact.py, --to-accuracy in
bench_accuracy.py (their in-process cases in bench_workers.py), --memmap, --csv and --seed-task
in bench_commands.py, what they share (a child timed, its memory sampled) in bench_process.py.
Every mode records the machine (CPU model, cores, memory, library versions) in the JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from bench_accuracy import to_accuracy
from bench_commands import csv_read, memmap_file, seed_task
from bench_exact import LABELS as EXACT_CASES
from bench_exact import exact
from bench_process import describe, machine
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from linreg import LinearRegression, TensorDataModule
from linreg.cli import FIT_CALLBACKS, PROGRESS_BAR_REFRESH_RATE, TRAINER_DEFAULTS

LR = 0.05


@dataclass
class Result:
    case: str
    rows: int
    features: int
    batch_size: int
    steps: int
    seconds: float
    samples_per_s: float
    final_train_mse: float
    peak_extra_memory_mb: float


# -- the data and the three ways to train it -------------------------------------------------


def make_data(rows: int, features: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """x ~ U(0, 1), y = x · w + 0.8 + noise, the same for every case."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(rows, features, generator=generator)
    weight = torch.linspace(-2, 3, features).unsqueeze(1)
    y = x @ weight + 0.8 + 0.1 * torch.randn(rows, 1, generator=generator)
    return x.to(device), y.to(device)


def initial_model(features: int) -> nn.Linear:
    torch.manual_seed(1)
    return nn.Linear(features, 1)


def full_mse(linear: nn.Linear, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return F.mse_loss(linear(x), y).item()


def hand_written(x: Tensor, y: Tensor, batch_size: int, steps: int, timer: Timer) -> nn.Linear:
    """(a) What a careful engineer writes by hand: randperm + slicing."""
    model = initial_model(x.shape[1]).to(x.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    step, epoch = 0, 0
    while step < steps:
        # the same permutation linreg's sampler draws (seed + epoch), so (a) and (b) match
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        for index in order.to(x.device).split(batch_size):
            timer.step(step)
            # index_select gathers rows 2-4x faster than x[index] on CPU
            loss = F.mse_loss(model(x.index_select(0, index)), y.index_select(0, index))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step == steps:
                break
        epoch += 1
    timer.stop(sync=loss)
    return model


def linreg_path(
    x: Tensor, y: Tensor, batch_size: int, steps: int, timer: Timer, extras: bool = True
) -> nn.Linear:
    """(b) linreg's LinearRegression and data path with `linreg fit`'s logging and callbacks."""
    model = LinearRegression(x.shape[1], 1, optimizer=lambda p: torch.optim.SGD(p, lr=LR))
    model.linear.load_state_dict(initial_model(x.shape[1]).state_dict())
    data = TensorDataModule(x.cpu(), y.cpu(), batch_size, val_fraction=0.0, test_fraction=0.0)
    with tempfile.TemporaryDirectory() as logs:
        logger = TensorBoardLogger(logs, name="bench", default_hp_metric=False) if extras else None
        callbacks = [
            TQDMProgressBar(refresh_rate=PROGRESS_BAR_REFRESH_RATE),  # as `linreg fit` sets them
            *(callback() for callback in FIT_CALLBACKS.values()),
        ]
        trainer = _trainer(steps, timer, logger, callbacks if extras else None)
        trainer.log_every_n_steps = TRAINER_DEFAULTS["log_every_n_steps"]
        trainer.fit(model, data)
    return model.linear


def lightning_floor(x: Tensor, y: Tensor, batch_size: int, steps: int, timer: Timer) -> nn.Linear:
    """(d) (b) with nothing added: no logger, no callbacks, no progress bar."""
    return linreg_path(x, y, batch_size, steps, timer, extras=False)


class NaiveRegression(pl.LightningModule):
    """(c) The usual first Lightning model: self.log on every step."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.linear = initial_model(features)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        loss = F.mse_loss(self.linear(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=LR)


def naive_lightning(x: Tensor, y: Tensor, batch_size: int, steps: int, timer: Timer) -> nn.Linear:
    """(c) Plain Lightning with a per-sample TensorDataset loader."""
    model = NaiveRegression(x.shape[1])
    loader = DataLoader(TensorDataset(x.cpu(), y.cpu()), batch_size=batch_size, shuffle=True)
    with tempfile.TemporaryDirectory() as logs:
        _trainer(steps, timer, TensorBoardLogger(logs, name="bench")).fit(model, loader)
    return model.linear


def _trainer(
    steps: int,
    timer: Timer,
    logger: TensorBoardLogger | None,
    callbacks: list[pl.Callback] | None = None,
) -> pl.Trainer:
    return pl.Trainer(
        max_steps=steps,
        max_epochs=-1,
        logger=logger if logger is not None else False,
        callbacks=[TimerCallback(timer), *(callbacks or [])],
        enable_progress_bar=logger is not None,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )


# -- timing and memory --------------------------------------------------------------------------


class Timer:
    """Starts the clock at step ``warmup`` and stops it after the last step."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.started, self.seconds = warmup, 0.0, 0.0

    def step(self, step: int) -> None:
        if step == self.warmup:
            _synchronize()
            self.started = time.perf_counter()

    def stop(self, sync: Tensor | None = None) -> None:
        _synchronize()
        self.seconds = time.perf_counter() - self.started


class TimerCallback(pl.Callback):
    def __init__(self, timer: Timer) -> None:
        self.timer = timer

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        self.timer.step(trainer.global_step)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.timer.stop()


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@contextlib.contextmanager
def peak_memory() -> Iterator[list[float]]:
    """Peak extra memory while the block runs: CUDA allocations on GPU, sampled RSS on CPU."""
    result = [0.0]
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        allocated = torch.cuda.memory_allocated()
        yield result
        result[0] = (torch.cuda.max_memory_allocated() - allocated) / 2**20
        return
    base, peak, done = _rss_mb(), [0.0], threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], _rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield result
    finally:
        done.set()
        sampler.join()
        result[0] = max(peak[0], _rss_mb()) - base


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """The progress bar still renders (users pay for that); only the terminal is spared."""
    with (
        open(os.devnull, "w") as devnull,
        contextlib.redirect_stderr(devnull),
        contextlib.redirect_stdout(devnull),
    ):
        yield


CASES: dict[str, Callable[..., nn.Linear]] = {
    "hand": hand_written,
    "linreg": linreg_path,
    "naive": naive_lightning,
    "floor": lightning_floor,
}


def run_case(name: str, x: Tensor, y: Tensor, batch_size: int, steps: int, warmup: int) -> Result:
    timer = Timer(warmup)
    with peak_memory() as memory, quiet_stderr():
        linear = CASES[name](x, y, batch_size, steps + warmup, timer)
    timed = steps * batch_size
    return Result(
        case=name,
        rows=len(x),
        features=x.shape[1],
        batch_size=batch_size,
        steps=steps,
        seconds=round(timer.seconds, 4),
        samples_per_s=round(timed / timer.seconds),
        final_train_mse=full_mse(linear, x, y),
        peak_extra_memory_mb=round(memory[0], 1),
    )


# -- modes ------------------------------------------------------------------------------------


def compare(
    rows: int, features: int, batches: list[int], samples: int, cases: list[str], repeats: int
) -> list[Result]:
    """Each case ``repeats`` times, interleaved, keeping each one's fastest run.

    Noise on a shared machine only ever adds time, so the fastest of a few interleaved runs
    is the steadiest estimate of each case, and all cases get the same chances.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x, y = make_data(rows, features, device)
    results = []
    for batch_size in batches:
        steps = max(100, samples // batch_size)  # the same steps for every case of a batch size
        best: dict[str, Result] = {}
        for _ in range(repeats):
            for name in cases:
                result = run_case(name, x, y, batch_size, steps, warmup=20)
                if name not in best or result.seconds < best[name].seconds:
                    best[name] = result
        for name in cases:
            results.append(best[name])
            print(_row(best[name]), flush=True)
    return results


def scale(sizes: list[int], features: int, batch_size: int) -> list[dict[str, object]]:
    """One epoch of linreg's path per size: time should grow with N, memory stay near data size."""
    results = []
    for rows in sizes:
        x, y = make_data(rows, features, torch.device("cpu"))
        result = run_case("linreg", x, y, batch_size, math.ceil(rows / batch_size), warmup=20)
        data_mb = (x.nbytes + y.nbytes) / 2**20
        print(_row(result) + f"  = {result.seconds:.2f} s/epoch, data {data_mb:.0f} MB", flush=True)
        results.append({**asdict(result), "epoch_seconds": result.seconds, "data_mb": data_mb})
        del x, y
    return results


def profile_floor(batch_size: int, steps: int = 3000) -> dict[str, float]:
    """cProfile of case (d), Lightning's loop around linreg's model and data path: where it goes.

    Prints the most expensive functions, and returns calls per step of Lightning's hook
    dispatchers and of ``nn.Module.__setattr__`` (Lightning sets ``_current_fx_name`` with it).
    """
    import cProfile
    import pstats

    x, y = make_data(100_000, 32, torch.device("cpu"))
    with quiet_stderr():
        lightning_floor(x, y, batch_size, 50, Timer(10))  # warm-up: imports, first allocations
    profiler = cProfile.Profile()
    with quiet_stderr():
        profiler.runcall(lightning_floor, x, y, batch_size, steps, Timer(10))
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(15)
    counted = ("_call_callback_hooks", "_call_lightning_module_hook", "_call_strategy_hook",
               "__setattr__", "getfullargspec")  # fmt: skip
    per_step = {
        name: sum(calls[1] for (_, _, function), calls in stats.stats.items()  # type: ignore[attr-defined]
                  if function == name) / steps
        for name in counted
    }  # fmt: skip
    print("calls per step:", {name: round(value, 1) for name, value in per_step.items()})
    return per_step


def _row(result: Result) -> str:
    return (
        f"{result.case:>7} batch {result.batch_size:>5} rows {result.rows:>9,}: "
        f"{result.samples_per_s:>12,.0f} samples/s  {1000 * result.seconds / result.steps:7.3f} "
        f"ms/step  final mse {result.final_train_mse:.6g}  "
        f"peak +{result.peak_extra_memory_mb:.0f} MB"
    )


def _ratios(results: list[Result]) -> dict[str, float]:
    ratios = {}
    for result in results:
        if result.case == "hand":
            continue
        hand = next(r for r in results if r.case == "hand" and r.batch_size == result.batch_size)
        ratios[f"{result.case}/hand@{result.batch_size}"] = round(
            result.samples_per_s / hand.samples_per_s, 3
        )
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for CI")
    parser.add_argument("--scale", action="store_true", help="linreg at N = 1e5, 1e6, 1e7")
    parser.add_argument("--seed-task", action="store_true", help="linreg fit vs the tutorial")
    parser.add_argument("--memmap", type=int, metavar="ROWS", help="train on a .npy of ROWS rows")
    parser.add_argument("--csv", type=int, metavar="ROWS", help="read a CSV of ROWS rows")
    parser.add_argument("--profile", type=int, metavar="BATCH", help="profile case (d) at BATCH")
    parser.add_argument("--exact", type=int, nargs="*", metavar="ROWS",
                        help="exact least squares on a .npy of ROWS rows (default 10,000,000); "
                        "several sizes show how (a)'s memory grows")  # fmt: skip
    parser.add_argument("--exact-cases", nargs="+", default=list(EXACT_CASES),
                        choices=list(EXACT_CASES))  # fmt: skip
    parser.add_argument("--to-accuracy", type=int, nargs="?", const=1_000_000, metavar="ROWS",
                        help="time to the least-squares R² (default 1,000,000 rows)")  # fmt: skip
    parser.add_argument("--case-timeout", type=float, default=900.0,
                        help="--to-accuracy: seconds before a case is stopped")  # fmt: skip
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 8192])
    parser.add_argument("--samples", type=int, default=2_500_000, help="rows per timed run")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--repeats", type=int, help="runs per case, the best kept (3; --exact 2)")
    parser.add_argument("--json", default="benchmark.json", help="where to write the results")
    args = parser.parse_args()

    torch.set_float32_matmul_precision("highest")
    for name in ("lightning.pytorch", "lightning.fabric"):  # "GPU available: ..." for every run
        logging.getLogger(name).setLevel(logging.WARNING)
    info = machine()
    report: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        + (torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"),
        **info,
    }
    print(f"machine: {describe(info)}", flush=True)
    repeats = args.repeats or 3
    if args.exact is not None:
        sizes = args.exact or ([100_000] if args.quick else [10_000_000])
        features = 8 if args.quick else args.features
        report["exact"] = exact(
            sizes, features, args.exact_cases, args.repeats or (1 if args.quick else 2)
        )
    elif args.to_accuracy is not None:
        rows, features = (20_000, 8) if args.quick else (args.to_accuracy, args.features)
        report["to_accuracy"] = to_accuracy(rows, features, args.quick, args.case_timeout)
    elif args.seed_task:
        report["seed_task_seconds"] = seed_task(repeats)
    elif args.memmap:
        report["memmap"] = memmap_file(args.memmap)
    elif args.csv:
        report["csv"] = csv_read(args.csv)
    elif args.profile:
        report["profile_calls_per_step"] = profile_floor(args.profile)
    elif args.scale:
        sizes = [10_000, 100_000] if args.quick else [100_000, 1_000_000, 10_000_000]
        report["scale"] = scale(sizes, 16, args.batch_sizes[-1] if not args.quick else 1024)
    else:
        if args.quick:
            args.rows, args.features, args.batch_sizes = 20_000, 8, [64, 1024]
            args.samples, repeats = 6400, 1
        results = compare(args.rows, args.features, args.batch_sizes, args.samples, args.cases,
                          repeats)  # fmt: skip
        report["results"] = [asdict(r) for r in results]
        report["ratios"] = _ratios(results)
        print("ratios (samples/s relative to the hand-written loop):", report["ratios"])
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
