"""Unit tests of LinearRegression: shapes, loss, penalties, optimizer injection, plain hparams."""

from __future__ import annotations

import functools
import io

import pytest
import torch
from lightning.pytorch import Trainer

from linreg import LinearRegression, SyntheticDataModule
from linreg.errors import UserInputError


@pytest.mark.parametrize(("in_features", "out_features"), [(1, 1), (3, 2)], ids=["1to1", "3to2"])
def test_forward_shape(in_features: int, out_features: int) -> None:
    model = LinearRegression(in_features, out_features)
    assert model(torch.zeros(5, in_features)).shape == (5, out_features)


def test_fit_intercept_false_has_no_bias() -> None:
    assert LinearRegression(fit_intercept=False).linear.bias is None


def test_training_loss_is_mse_plus_penalties() -> None:
    model = LinearRegression(2, 1, l1=0.1, l2=0.01)
    with torch.no_grad():
        model.linear.weight.copy_(torch.tensor([[2.0, -3.0]]))
        model.linear.bias.fill_(0.5)
    x, y = torch.tensor([[1.0, 1.0], [0.0, 2.0]]), torch.tensor([[0.0], [1.0]])
    mse = ((torch.tensor([-0.5, -5.5]) - torch.tensor([0.0, 1.0])) ** 2).mean()
    expected = mse + 0.1 * (2 + 3) + 0.01 * (4 + 9)
    assert torch.isclose(model.loss(model(x), y) + model.penalty(), expected)
    assert LinearRegression(2, 1).penalty() == 0.0


class ShrinkToZero(LinearRegression):
    """A ridge penalty of its own: the weight shrinks from 3 to about 0.4."""

    def penalty(self) -> torch.Tensor:
        return 0.5 * self.linear.weight.square().sum()


def test_an_overridden_penalty_is_trained_with() -> None:
    weights = {}
    for model_class in (LinearRegression, ShrinkToZero):
        torch.manual_seed(0)
        model = model_class()
        trainer = Trainer(max_epochs=3, logger=False, enable_checkpointing=False,
                          enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
        trainer.fit(model, SyntheticDataModule())
        weights[model_class] = model.linear.weight.item()
    assert abs(weights[LinearRegression] - 3.0) < 0.2
    assert abs(weights[ShrinkToZero] - 0.43) < 0.1


def test_penalties_are_on_weights_not_bias() -> None:
    model = LinearRegression(1, 1, l1=1.0, l2=1.0)
    with torch.no_grad():
        model.linear.weight.zero_()
        model.linear.bias.fill_(10.0)
    assert float(model.penalty().detach()) == 0.0


def test_default_optimizer_is_sgd_with_the_learning_rate_left_to_the_data() -> None:
    model = LinearRegression()
    assert model.hparams["optimizer"] is None  # nothing given: SGD, lr and momentum from data
    optimizer = model.configure_optimizers()  # no trainer, no data: the fixed fallback
    assert type(optimizer) is torch.optim.SGD
    assert optimizer.param_groups[0]["lr"] == 0.01 and optimizer.param_groups[0]["momentum"] == 0


def test_scheduler_steps_per_batch_when_asked() -> None:
    model = LinearRegression(
        lr_scheduler=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=3),
        lr_scheduler_interval="step",
    )
    assert model.configure_optimizers()["lr_scheduler"]["interval"] == "step"
    with pytest.raises(UserInputError, match="lr_scheduler_interval must be 'epoch' or 'step'"):
        LinearRegression(lr_scheduler_interval="batch")  # type: ignore[arg-type]


def test_injected_optimizer_and_scheduler() -> None:
    model = LinearRegression(
        optimizer=functools.partial(torch.optim.Adam, lr=0.01),
        lr_scheduler=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=3),
    )
    config = model.configure_optimizers()
    assert type(config["optimizer"]) is torch.optim.Adam
    assert config["optimizer"].param_groups[0]["lr"] == 0.01
    assert config["lr_scheduler"]["scheduler"].step_size == 3


def test_hyperparameters_are_plain_data_that_rebuild_the_optimizer() -> None:
    model = LinearRegression(optimizer=functools.partial(torch.optim.Adam, lr=0.01))
    assert model.hparams.optimizer == {
        "class_path": "torch.optim.adam.Adam",
        "init_args": {"lr": 0.01},
    }
    buffer = io.BytesIO()
    torch.save({"hyper_parameters": dict(model.hparams)}, buffer)
    buffer.seek(0)
    hparams = torch.load(buffer, weights_only=True)["hyper_parameters"]
    rebuilt = LinearRegression(**hparams).configure_optimizers()
    assert type(rebuilt) is torch.optim.Adam and rebuilt.param_groups[0]["lr"] == 0.01


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"l1": -1.0}, "l1 is a penalty weight and must be >= 0"),
        ({"l2": -0.5}, "l2 is a penalty weight and must be >= 0"),
        ({"in_features": 0}, "in_features must be at least 1"),
    ],
    ids=["negative-l1", "negative-l2", "zero-features"],
)
def test_invalid_arguments_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        LinearRegression(**kwargs)


def test_metrics_per_output_when_several_outputs(tmp_path) -> None:
    model = LinearRegression(3, 2)
    model.val_metrics.update(
        torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    )
    values = model.val_metrics.compute()
    assert values["val/mse"].tolist() == [0.0, 10.0]
    assert values["val/mae"].tolist() == [0.0, 3.0]


def test_short_fit_on_synthetic_data_matches_least_squares() -> None:
    """Behaviour: with noise, SGD lands on the same line as torch.linalg.lstsq."""
    data = SyntheticDataModule(n_samples=2000, n_features=2, weight=[1.5, -2.0], noise=0.1)
    decay = functools.partial(torch.optim.lr_scheduler.StepLR, step_size=2, gamma=0.5)
    model = LinearRegression(2, 1, lr_scheduler=decay)
    trainer = Trainer(max_epochs=16, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, data)
    x, y = data.datasets["train"][:]
    design = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    solution = torch.linalg.lstsq(design, y).solution.flatten()
    learned = torch.cat([model.linear.weight.flatten(), model.linear.bias]).detach()
    assert torch.allclose(learned, solution, atol=2e-3)
