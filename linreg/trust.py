"""Data never becomes code: what a checkpoint or a run's saved config may name, checked first.

jsonargparse imports and instantiates whatever ``class_path`` a configuration names, and
resolves a dotted string given to a callable-typed option by importing it. So a checkpoint's
hyperparameters or a run folder's ``config.yaml`` could run code when they are parsed like a
user's own configuration. Before linreg hands such data to its parser, every class it names
must be one that is **already imported** (resolved through ``sys.modules`` only, as Lightning's
own ``load_from_checkpoint`` does) and of the kind its place expects: an optimizer is a
``torch.optim.Optimizer``, a scheduler an ``LRScheduler`` or ``ReduceLROnPlateau``, the model a
``LightningModule``, the data a ``LightningDataModule``, a callback a ``Callback``. Arguments of
those classes must be plain data (numbers, strings, lists, mappings) and may not be strings in
a place where a class or a function is expected. A class the user named themselves (on the
command line or in their ``--config``) is trusted: it was imported on their say-so.
"""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import NoneType, UnionType
from typing import Any

from lightning.pytorch import Callback, LightningDataModule, LightningModule
from lightning.pytorch.accelerators import Accelerator
from lightning.pytorch.loggers import Logger
from lightning.pytorch.profilers import Profiler
from lightning.pytorch.strategies import Strategy
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from linreg.errors import UserInputError

Kind = tuple[str, tuple[type, ...]]
MODEL: Kind = ("a LightningModule", (LightningModule,))
DATA: Kind = ("a LightningDataModule", (LightningDataModule,))
OPTIMIZER: Kind = ("a torch.optim optimizer", (Optimizer,))
SCHEDULER: Kind = ("a learning-rate scheduler", (LRScheduler, ReduceLROnPlateau))
CALLBACK: Kind = ("a Lightning callback", (Callback,))
# where a class may stand, and which kind it must be; other places hold plain data only
KINDS: dict[tuple[str, ...], Kind] = {
    ("model",): MODEL,
    ("model", "optimizer"): OPTIMIZER,
    ("model", "lr_scheduler"): SCHEDULER,
    ("data",): DATA,
    ("trainer", "callbacks"): CALLBACK,
    ("trainer", "logger"): ("a Lightning logger", (Logger,)),
    ("trainer", "strategy"): ("a Lightning strategy", (Strategy,)),
    ("trainer", "accelerator"): ("a Lightning accelerator", (Accelerator,)),
    ("trainer", "profiler"): ("a Lightning profiler", (Profiler,)),
}
# named by a class path; the others may also be a registry name ("ddp", "cpu", "simple")
CLASS_KINDS = (MODEL, DATA, OPTIMIZER, SCHEDULER, CALLBACK)
LOADED = " that is already loaded"
# short names jsonargparse accepts for these kinds, and where they live
SHORT_NAMES = {OPTIMIZER: "torch.optim", SCHEDULER: "torch.optim.lr_scheduler"}
PLAIN = (bool, int, float, str, NoneType, Path)


class UntrustedData(UserInputError):
    """Data read from disk names a class or function it may not name."""


def check_run_config(
    config: Mapping[str, Any],
    source: Path,
    trusted: Iterable[str] = (),
    callbacks: Iterable[str] = (),
) -> None:
    """Refuse a run's saved ``config.yaml`` that names anything but expected, loaded classes.

    ``callbacks`` are the config's top-level keys that hold a callback (``insights``, ...).
    """
    check = _Checker(source, set(trusted))
    kinds: dict[tuple[str, ...], Kind] = {**KINDS, **{(key,): CALLBACK for key in callbacks}}
    for key, value in config.items():
        check.value(value, (key,), kinds)


def check_hyperparameters(
    hparams: Mapping[str, Any], where: str, source: Path, default: str, trusted: Iterable[str] = ()
) -> None:
    """Refuse a checkpoint's ``model`` or ``data`` hyperparameters that name unexpected classes.

    ``hparams`` is Lightning's flat form: the ``__init__`` arguments and ``_class_path`` (absent
    when the model was saved without LightningCLI: then it is ``default``'s).
    """
    init_args = {k: v for k, v in hparams.items() if not k.startswith("_")}
    config = {"class_path": hparams.get("_class_path", default), "init_args": init_args}
    _Checker(source, {*trusted, default}).value(config, (where,), KINDS)


def resolve(path: str, kind: Kind, import_allowed: bool = False) -> type | None:
    """The class ``path`` names if it is of ``kind``; imported only when ``import_allowed``."""
    if "." not in path and kind in SHORT_NAMES:
        path = f"{SHORT_NAMES[kind]}.{path}"
    module_name, _, name = path.rpartition(".")
    module = sys.modules.get(module_name)
    if module is None and import_allowed and module_name:
        import importlib

        try:
            module = importlib.import_module(module_name)
        except ImportError:
            return None
    target = getattr(module, name, None) if module is not None else None
    return target if isinstance(target, type) and issubclass(target, kind[1]) else None


class _Checker:
    """Walks plain data read from ``source``; raises :class:`UntrustedData` at the first offence."""

    def __init__(self, source: Path, trusted: set[str]) -> None:
        self.source, self.trusted = source, trusted

    def value(
        self, value: Any, where: tuple[str, ...], kinds: Mapping[tuple[str, ...], Kind]
    ) -> None:
        """Check ``value``, found at ``where``: a class only where ``kinds`` expects one."""
        kind = kinds.get(where)
        if isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                self.value(item, where if kind else (*where, str(index)), kinds)
        elif isinstance(value, Mapping) and "class_path" in value:
            if kind is None:
                self.refuse(where, value["class_path"], "a class; only plain data may stand there")
            self.instance(value, where, kind, kinds)  # type: ignore[arg-type]
        elif isinstance(value, Mapping):
            for key, item in value.items():
                self.value(item, (*where, str(key)), kinds)
        elif isinstance(value, str) and kind is not None and ("." in value or kind in SHORT_NAMES):
            # a dotted path is an import; bare words are registry names ("ddp", "cpu") or
            # names jsonargparse looks up among classes already imported
            if kind in CLASS_KINDS:
                self.cls(value, where, kind)
            elif value not in self.trusted:
                self.refuse(where, value, kind[0])
        elif not isinstance(value, PLAIN):
            self.refuse(where, repr(value), "plain data")

    def instance(
        self, config: Mapping[str, Any], where: tuple[str, ...], kind: Kind, kinds: Mapping
    ) -> None:
        """A ``{"class_path", "init_args"}`` entry: the class, then each of its arguments."""
        cls = self.cls(config["class_path"], where, kind)
        init_args = config.get("init_args") or {}
        if not isinstance(init_args, Mapping):
            self.refuse((*where, "init_args"), repr(init_args), "a mapping of arguments")
        hints = _hints(cls)
        for name, argument in init_args.items():
            nested = (where[0], str(name))  # the model's optimizer and scheduler
            if len(where) == 1 and nested in kinds:
                self.value(argument, nested, kinds)
                continue
            place = (*where, "init_args", str(name))
            if _has_string(argument) and not _plain_type(hints.get(name, Any)):
                self.refuse(place, repr(argument), "plain data (it may name no class or function)")
            self.value(argument, place, kinds)

    def cls(self, path: Any, where: tuple[str, ...], kind: Kind) -> type:
        """The already-loaded class of ``kind`` that ``path`` names (or one the user named)."""
        cls = resolve(path, kind) if isinstance(path, str) else None
        if cls is None and path in self.trusted:
            cls = resolve(path, kind, import_allowed=True)
        if cls is None:
            self.refuse(where, path, f"{kind[0]}{LOADED}")
        assert cls is not None
        return cls

    def refuse(self, where: tuple[str, ...], what: Any, expected: str) -> typing.NoReturn:
        """Raise the one-line refusal, with the way out for a file the user does trust."""
        option = "--" + ".".join(part for part in where if part != "init_args")
        kind, loaded = expected.removesuffix(LOADED), expected.endswith(LOADED)
        way_out = (  # the user may name a class of the expected kind; nothing else, ever
            f" If you trust this file and {what} is {kind}, name it yourself, e.g. {option} {what}."
            if loaded
            else ""
        )
        raise UntrustedData(
            f"refused {self.source}: its {'.'.join(where)} names {what}, which is not {expected}. "
            f"A checkpoint or a run folder may only name classes linreg has loaded, of the kind "
            f"expected there, so that reading it can never run code.{way_out}"
        )


def _hints(cls: type) -> dict[str, Any]:
    """The ``__init__`` parameter annotations of ``cls`` (``Any`` where they cannot be read)."""
    try:
        return typing.get_type_hints(cls.__init__)  # type: ignore[misc]
    except Exception:  # unresolvable forward references: treat every argument as non-plain
        return {name: Callable for name in inspect.signature(cls).parameters}


def _plain_type(annotation: Any) -> bool:
    """Whether jsonargparse keeps a string given for ``annotation`` as a string (no import)."""
    if annotation in PLAIN or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return True
    if origin in (typing.Union, UnionType, list, tuple, dict, set, frozenset) or (
        isinstance(origin, type) and issubclass(origin, (Iterable, Mapping))
    ):
        return all(_plain_type(arg) for arg in typing.get_args(annotation) if arg is not Ellipsis)
    return False


def _plain_data(value: Any) -> bool:
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _plain_data(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain_data(item) for item in value)
    return isinstance(value, PLAIN)


def _mentions_class(value: Any) -> bool:
    if isinstance(value, Mapping):
        return "class_path" in value or any(_mentions_class(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_mentions_class(item) for item in value)
    return False


def _has_string(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(_has_string(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_string(item) for item in value)
    return isinstance(value, str)


__all__ = ["UntrustedData", "check_hyperparameters", "check_run_config", "resolve"]
