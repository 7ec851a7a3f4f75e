"""The tutorial's task end to end, with linreg as a library instead of the command line.

Fits y = 3x + 0.8, tests, prints the learned weight and bias, and saves the tutorial's plot
(data as points, fitted line) to a PNG file.

Run:  .venv/bin/python scripts/train_seed.py [--epochs 10] [--out seed_fit.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lightning.pytorch as pl
import matplotlib

from linreg import LinearRegression, SyntheticDataModule

matplotlib.use("Agg")  # never open a window
import matplotlib.pyplot as plt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("seed_fit.png"), help="the plot (PNG)")
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    out = (
        args.out
        if args.out.suffix.lower() == ".png"
        else args.out.with_name(args.out.name + ".png")
    )

    pl.seed_everything(0)
    data = SyntheticDataModule()  # 1000 points of y = 3x + 0.8, x ~ U(0, 1)
    model = LinearRegression()  # nn.Linear(1, 1), MSE, SGD(lr=0.5)
    trainer = pl.Trainer(max_epochs=args.epochs, logger=False, enable_checkpointing=False)
    trainer.fit(model, data)
    trainer.test(model, data)

    weight, bias = model.linear.weight.item(), model.linear.bias.item()
    print(f"w = {weight:.6f} (true 3), b = {bias:.6f} (true 0.8)")

    x, y = data.datasets["test"][:]  # the test split's rows, as tensors
    plt.scatter(x.numpy(), y.numpy(), s=8, c="tab:red", label="data")
    line_x = x.sort(dim=0).values
    plt.plot(
        line_x.numpy(), model(line_x).detach().numpy(), label=f"y = {weight:.3f}x + {bias:.3f}"
    )
    plt.legend()
    out.parent.mkdir(parents=True, exist_ok=True)
    plt.savefig(out, dpi=100)
    print(f"plot saved to {out}")


if __name__ == "__main__":
    main()
