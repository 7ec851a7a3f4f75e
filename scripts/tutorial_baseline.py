"""The seed tutorial's plain-PyTorch linear regression, made runnable: the "before" of linreg.

Kept here unchanged so that `scripts/benchmark.py --seed-task` compares against it anywhere.
Run: .venv/bin/python scripts/tutorial_baseline.py [STEPS]

Same data, model, loss, optimizer and step count as the tutorial: 50 points x ~ U(0, 1),
y = 3x + 0.8, nn.Linear(1, 1), MSE, SGD lr=1e-3, 30,000 full-batch steps, on the GPU when
there is one. The plot is left out; the learned parameters are printed instead.
Use it as the "before" side of an end-to-end comparison.
"""

import sys

import torch
from torch import nn, optim


class Lr(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, x):
        return self.linear(x)


def main(steps: int = 30000) -> None:
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    x = torch.rand([50, 1])
    y = x * 3 + 0.8
    x, y = x.to(device), y.to(device)
    model = Lr().to(device)
    criterion = nn.MSELoss()
    optimizer = optim.SGD(model.parameters(), lr=1e-3)
    for _ in range(steps):
        out = model(x)
        loss = criterion(y, out)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    w = model.linear.weight.item()
    b = model.linear.bias.item()
    print(
        f"steps={steps} w={w:.6f} b={b:.6f} loss={loss.item():.3e} "
        f"|w-3|={abs(w - 3):.2e} |b-0.8|={abs(b - 0.8):.2e}"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30000)
