"""A scikit-learn estimator: ``LinearRegressor().fit(X, y).predict(X)``, exact by default.

``solver="exact"`` solves least squares with :mod:`linreg.solver` and keeps the statistical
summary of :mod:`linreg.statistics`; ``solver="sgd"`` trains linreg's LightningModule, quietly,
to watch or compare training. scikit-learn checks the inputs, as for its own estimators.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(100, 2))
>>> model = LinearRegressor().fit(X, X @ [1.0, 2.0] + 3.0 + rng.normal(scale=0.1, size=100))
>>> model.coef_.round(3), round(model.intercept_, 3), model.stderr_.round(3)
(array([0.989, 2.017]), 2.984, array([0.012, 0.012]))
>>> model.predict([[1.0, 1.0]]).round(3)
array([5.99])
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import math
import warnings
from collections.abc import Iterator
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torch import Tensor, nn

from linreg.data import TensorDataModule, split_sizes
from linreg.model import LinearRegression
from linreg.solution import Refinement
from linreg.solver import QRFactorization
from linreg.statistics import RegressionStatistics

try:
    from sklearn.base import BaseEstimator, RegressorMixin
    from sklearn.utils import check_scalar
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as error:  # validate_data is scikit-learn 1.6's
    raise ImportError(
        'linreg.LinearRegressor needs scikit-learn 1.6 or later: pip install "linreg[sklearn]".'
    ) from error

CHUNK_VALUES = 2**20  # the exact solver factors X in chunks of about this many numbers (8 MB)
RETRIES = 3  # a diverged SGD fit is tried again at lr / 10, this many times, with a warning
AUTO_STEPS = 1000  # max_epochs=None: about this many optimizer steps ...
MIN_AUTO_EPOCHS = 10  # ... in at least this many epochs, for the learning rate to decay


class LinearRegressor(RegressorMixin, BaseEstimator):
    """Linear least squares as a scikit-learn regressor, solved exactly or trained by SGD.

    Both solvers minimize linreg's objective ``‖Y - XWᵀ - b‖²/(n·k) + l2·‖W‖²`` for ``n`` rows
    and ``k`` targets (the intercept not penalized): ``l2`` is ``Ridge(alpha=l2·n·k)``.

    ``"exact"``: float64 Householder QR of the rows, chunk by chunk, and a pass in extended
    precision when its error estimate calls for one (NIST's certified values to 7 digits or
    more). Linearly dependent columns (a duplicate, a constant beside the intercept) get
    coefficient 0, no standard error and a ``UserWarning`` naming them, as R's ``lm`` drops them
    (scikit-learn's ``LinearRegression`` shares their weight: minimum norm, same predictions).

    ``"sgd"``: a Lightning ``Trainer`` (CPU, no logs, no files) trains
    :class:`~linreg.model.LinearRegression` on standardized columns from zero coefficients and the
    mean target, with momentum and a cosine decay of the learning rate. A fit that ends worse
    than its start (heavy-tailed features make some mini-batches far more curved than the whole)
    is trained again at a tenth of the rate, up to three times, each with a ``RuntimeWarning``.
    It has no ``summary_`` nor standard errors. The arguments after ``solver`` are its own.

    Args:
        fit_intercept: fit the intercept ``b``.
        l2: weight of the L2 penalty on the coefficients (not the intercept).
        solver: ``"exact"`` or ``"sgd"``.
        standardize: train on standardized columns (centred with an intercept, divided by their
            standard deviation); the penalties then weigh their coefficients, as after a
            ``StandardScaler``. ``False``: the exact solver's objective.
        optimizer: name of a ``torch.optim`` optimizer, e.g. ``"SGD"`` or ``"Adam"``.
        lr: learning rate at the start of training.
        momentum: momentum, for optimizers that take one (SGD, RMSprop).
        lr_decay: decay the learning rate to 0 along a cosine over the epochs.
        l1: weight of the L1 penalty on the coefficients (not the intercept); SGD only.
        batch_size: rows per step; capped at the number of training rows.
        max_epochs: passes over the rows; ``None``: enough for about 1,000 steps, at least 10.
        val_fraction: share of rows held out for validation metrics (which only a logger keeps).
        seed: seed of the split and of the shuffling.
        trainer_kwargs: ``Trainer`` arguments over the defaults, e.g. ``{"logger": True}``.
        verbose: show the progress bar, the model summary and Lightning's messages.

    Attributes:
        coef_: ``(n_features,)`` after a 1-D ``y``, else ``(n_targets, n_features)``.
        intercept_: a float after a 1-D ``y``, else ``(n_targets,)``; 0 without an intercept.
        n_features_in_, feature_names_in_: as in scikit-learn (names come from data frames).
        rank_: exact: the rank of ``X`` (centred when fitting an intercept).
        stderr_, intercept_stderr_: exact: the standard errors, shaped as ``coef_`` and
            ``intercept_``; NaN for dropped columns and when ``l2 > 0``.
        summary_: exact: the :class:`~linreg.statistics.RegressionStatistics` (t, p, confidence
            intervals, R², F, ...); ``print(summary_.table())`` shows it as statsmodels does.
    """

    def __init__(
        self,
        fit_intercept: bool = True,
        l2: float = 0.0,
        solver: str = "exact",
        standardize: bool = True,
        optimizer: str = "SGD",
        lr: float = 0.05,
        momentum: float = 0.9,
        lr_decay: bool = True,
        l1: float = 0.0,
        batch_size: int = 32,
        max_epochs: int | None = None,
        val_fraction: float = 0.0,
        seed: int = 0,
        trainer_kwargs: dict[str, Any] | None = None,
        verbose: bool = False,
    ) -> None:
        # scikit-learn's convention: store the arguments unchanged, check them in fit.
        self.fit_intercept = fit_intercept
        self.l2 = l2
        self.solver = solver
        self.standardize = standardize
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.lr_decay = lr_decay
        self.l1 = l1
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.val_fraction = val_fraction
        self.seed = seed
        self.trainer_kwargs = trainer_kwargs
        self.verbose = verbose

    def fit(self, X: Any, y: Any) -> LinearRegressor:
        """Fit ``X`` ``(n_samples, n_features)`` to ``y`` ``(n_samples[, n_targets])``."""
        for name in [name for name in vars(self) if name.endswith("_")]:
            delattr(self, name)  # a refit with the other solver leaves nothing stale
        self._check_params()
        # float32 stays float32 until the solver: its rank tolerance follows the data's epsilon
        x, y = validate_data(
            self,
            _numpy(X),
            _numpy(y),
            dtype=[np.float64, np.float32],
            multi_output=True,
            y_numeric=True,
        )
        targets = np.asarray(y, dtype=np.float64).reshape(len(x), -1)
        weight, bias = (self._solve if self.solver == "exact" else self._train)(x, targets)
        single = y.ndim == 1
        self.coef_ = weight[0] if single else weight
        self.intercept_: float | np.ndarray = float(bias[0]) if single else bias
        if self.solver == "exact":
            se, first = self.summary_.std_err, int(self.fit_intercept)  # the intercept first
            se_b = se[:, 0] if first else np.zeros(len(se))
            self.stderr_ = se[0, first:] if single else se[:, first:]
            self.intercept_stderr_ = float(se_b[0]) if single else se_b
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predictions: ``(n_samples,)`` after a 1-D ``y``, else ``(n_samples, n_targets)``."""
        check_is_fitted(self, "coef_")
        x = validate_data(self, _numpy(X), dtype=np.float64, reset=False)
        return x @ self.coef_.T + self.intercept_

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's tags: a regressor that fits one target or several at once."""
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _check_params(self) -> None:
        """Check the parameters the chosen solver uses; ``ValueError``/``TypeError`` as sklearn."""
        if self.solver not in ("exact", "sgd"):
            raise ValueError(f"solver must be 'exact' or 'sgd', got {self.solver!r}.")
        for name in ("l1", "l2"):
            if not math.isfinite(check_scalar(getattr(self, name), name, Real, min_val=0.0)):
                raise ValueError(f"{name} must be finite, got {getattr(self, name)}.")
        if self.solver == "exact":
            if self.l1:
                raise ValueError("l1 needs solver='sgd': an exact L1 fit takes another algorithm.")
            return
        check_scalar(self.lr, "lr", Real, min_val=0.0, include_boundaries="neither")
        check_scalar(self.batch_size, "batch_size", Integral, min_val=1)
        optimizer = getattr(torch.optim, str(self.optimizer), None)
        if not (isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer)):
            raise ValueError(
                f"optimizer must name a torch.optim optimizer, e.g. 'SGD', got {self.optimizer!r}."
            )

    def _solve(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The exact fit: QR in chunks, the refinement pass when it pays; sets the summary."""
        rows = max(1, CHUNK_VALUES // (x.shape[1] + y.shape[1] + 1))

        def chunks() -> Iterator[tuple[Tensor, Tensor]]:  # copies: X may be read-only
            for i in range(0, len(x), rows):
                yield torch.tensor(x[i : i + rows]), torch.tensor(y[i : i + rows])

        qr = QRFactorization(x.shape[1], y.shape[1], self.fit_intercept)
        for chunk in chunks():
            qr.update(*chunk)
        solution = qr.solve(l2=self.l2)
        if solution.needs_refinement:
            refinement = Refinement(solution)
            for chunk in chunks():
                refinement.update(*chunk)
            solution = refinement.refine()
        names = getattr(self, "feature_names_in_", None)
        self.summary_ = RegressionStatistics.from_solution(solution, names)
        self.rank_ = solution.rank - int(self.fit_intercept)
        if self.summary_.dropped:
            warnings.warn(
                "LinearRegressor: linearly dependent columns of X get coefficient 0 (R's lm "
                "drops them too): " + ", ".join(term.describe() for term in self.summary_.dropped),
                UserWarning,
                stacklevel=3,
            )
        bias = solution.bias if solution.bias is not None else torch.zeros(y.shape[1])
        return solution.weight.numpy().copy(), bias.numpy().copy()

    def _train(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The SGD fit in the data's units, retried at lower rates while it diverges."""
        offset, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
        if self.standardize:  # without an intercept, centring would change the model: scale only
            offset = x.mean(axis=0) if self.fit_intercept else offset
            scale = np.sqrt(((x - offset) ** 2).mean(axis=0))
            scale[scale == 0] = 1.0  # constant columns stay as they are
        start = float(np.mean((y - (y.mean(axis=0) if self.fit_intercept else 0.0)) ** 2))
        lr = self.lr
        for attempt in range(RETRIES + 1):
            linear = self._train_once((x - offset) / scale, y, lr)
            weight = linear.weight.detach().double().numpy() / scale
            bias = 0.0 if linear.bias is None else linear.bias.detach().double().numpy()
            with np.errstate(over="ignore", invalid="ignore"):  # a diverged fit may hold NaN
                bias = bias - weight @ offset  # w·(x - offset)/scale + b in the data's units
                mse = float(np.mean((y - (x @ weight.T + bias)) ** 2))
            # At least as good as the start (mini-batch noise may leave a hair above).
            if mse <= start * (1 + 1e-2) + np.finfo(np.float32).eps * np.mean(y**2):
                break
            if attempt == RETRIES:
                hint = "" if self.standardize else " or set standardize=True"
                raise ValueError(
                    f"training diverged (training MSE {mse:.3g}, {start:.3g} at the start), also "
                    f"at lr {lr:g}: lower lr (now {self.lr}){hint}."
                )
            warnings.warn(
                f"LinearRegressor: training diverged at lr {lr:g} (training MSE {mse:.3g}); "
                f"trying lr {lr / 10:g}. Set lr lower to skip this.",
                RuntimeWarning,
                stacklevel=3,
            )
            lr /= 10
        return weight, bias

    def _train_once(self, x: np.ndarray, y: np.ndarray, lr: float) -> nn.Linear:
        """Train a fresh LinearRegression on the (standardized) rows, quietly, RNG untouched."""
        train_rows = split_sizes(len(x), self.val_fraction, 0.0)["train"]
        batch_size = max(1, min(self.batch_size, train_rows))
        auto = max(MIN_AUTO_EPOCHS, math.ceil(AUTO_STEPS / math.ceil(train_rows / batch_size)))
        options: dict[str, Any] = {
            "max_epochs": auto if self.max_epochs is None else self.max_epochs,
            "accelerator": "cpu",  # a table that fits in a notebook trains fastest on the CPU
            "devices": 1,
            "logger": False,
            "enable_checkpointing": False,
            "enable_progress_bar": self.verbose,
            "enable_model_summary": self.verbose,
            "num_sanity_val_steps": 0,
            **({"limit_val_batches": 0} if not self.val_fraction else {}),
            **(self.trainer_kwargs or {}),
        }
        check_scalar(options["max_epochs"], "max_epochs", Integral, min_val=1)
        optimizer = getattr(torch.optim, self.optimizer)  # a name checked by _check_params
        arguments = {"lr": lr}
        if "momentum" in inspect.signature(optimizer).parameters:
            arguments["momentum"] = self.momentum
        scheduler = None
        if self.lr_decay:
            scheduler = functools.partial(
                torch.optim.lr_scheduler.CosineAnnealingLR, T_max=options["max_epochs"]
            )
        data = TensorDataModule(
            torch.from_numpy(x.astype(np.float32)),
            torch.from_numpy(y.astype(np.float32)),
            batch_size=batch_size,
            val_fraction=self.val_fraction,
            test_fraction=0.0,
            seed=self.seed,
        )
        with _quiet(self.verbose), torch.random.fork_rng(devices=[]):  # nn.Linear's init draws
            model = LinearRegression(
                data.num_features,
                data.num_targets,
                fit_intercept=self.fit_intercept,
                optimizer=functools.partial(optimizer, **arguments),
                lr_scheduler=scheduler,
                l1=self.l1,
                l2=self.l2,
                steps_per_batch=1,  # one step per batch, as max_epochs counts them
            )
            with torch.no_grad():  # deterministic start: zero coefficients, mean target
                model.linear.weight.zero_()
                if model.linear.bias is not None:
                    model.linear.bias.copy_(torch.as_tensor(data.y).mean(dim=0))
            Trainer(**options).fit(model, datamodule=data)
        return model.linear


def _numpy(data: Any) -> Any:
    """A tensor as a numpy array (on the CPU, detached); anything else as it is."""
    return data.detach().cpu().numpy() if isinstance(data, Tensor) else data


@contextlib.contextmanager
def _quiet(verbose: bool) -> Iterator[None]:
    """Unless ``verbose``: no Lightning INFO lines ("GPU available: ...") nor advice warnings."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        if not verbose:
            # Advice meant for big training runs ("few batches", "no workers", "GPU available
            # but not used") and Lightning's own deprecations say nothing to a notebook user.
            warnings.simplefilter("ignore", PossibleUserWarning)
            warnings.filterwarnings("ignore", category=FutureWarning, module="lightning")
            for logger in loggers:
                logger.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)
