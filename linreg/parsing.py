"""The command line before and after jsonargparse: what it names, and its mistakes in one line.

``linreg predict --ckpt_path best --data.path new.csv`` only parses once the checkpoint's model
and data classes are known, so :func:`read_command_line` reads the few options that decide that
(the subcommand, ``--ckpt_path``, the ``--config`` files, the classes and the run folder the user
names) from the given arguments, in order, before the real parse. :func:`one_line` turns
jsonargparse's nested error messages into ``--option: problem``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LOGGER_OPTIONS = ("save_dir", "name", "version")
# options whose value names a class: the user asked for it, so it is trusted (linreg.trust)
CLASS_OPTIONS = {
    "--model", "--data", "--model.optimizer", "--model.lr_scheduler", "--model.init_args.optimizer",
    "--model.init_args.lr_scheduler", "--trainer.logger", "--trainer.callbacks",
    "--trainer.strategy", "--trainer.profiler", "--trainer.plugins", "--trainer.accelerator",
}  # fmt: skip
NOT_CLASS_OPTIONS = {"--ckpt_path", "--predictions", "--seed_everything", "--config", "-c"}


@dataclass
class CommandLine:
    """What the arguments say about the run, read ahead of the parser."""

    subcommand: str | None = None
    ckpt_path: str | None = None
    data_class: str | None = None
    configs: list[str] = field(default_factory=list)
    logger: dict[str, Any] = field(default_factory=dict)
    trusted: set[str] = field(default_factory=set)  # every class path the user typed
    options: set[str] = field(default_factory=set)  # every option given, also in a --config

    def run_folder(self) -> Path:
        """Where ``last``/``best`` are looked for: the named run's folder, else all runs."""
        runs = Path(self.logger.get("save_dir") or ".") / (
            self.logger.get("name") or "lightning_logs"
        )
        version = self.logger.get("version")
        if version in (None, ""):
            return runs
        return runs / (f"version_{version}" if isinstance(version, int) else str(version))


def read_command_line(args: list[str], subcommands: Iterable[str]) -> CommandLine:
    """Read ``args`` in order, as jsonargparse will: a later value wins, configs merge in turn."""
    line = CommandLine()
    names = set(subcommands)
    start = next((i for i, arg in enumerate(args) if arg in names), None)
    if start is None:
        return line
    line.subcommand = args[start]
    tokens = args[start + 1 :]
    index = 0
    while index < len(tokens):
        option, value, index = _option(tokens, index)
        if option is not None:
            line.options.add(option)
        if option is None or value is None:
            continue
        if _names_class(option) and _looks_like_class(value):
            line.trusted.add(value)
        if option in ("--config", "-c"):
            line.configs.append(value)
            _merge_config(line, _config_content(value))
        elif option == "--ckpt_path":
            line.ckpt_path = value
        elif option == "--data":
            line.data_class = value
        elif (key := _logger_key(option)) is not None:
            line.logger[key] = int(value) if value.isdigit() else value
    return line


def _option(tokens: list[str], index: int) -> tuple[str | None, str | None, int]:
    """The option at ``index``, its value (``--opt value`` or ``--opt=value``), the next index."""
    token = tokens[index]
    if not token.startswith("-"):
        return None, None, index + 1
    if "=" in token:
        option, value = token.split("=", 1)
        return option, value, index + 1
    if index + 1 < len(tokens) and not tokens[index + 1].startswith("--"):
        return token, tokens[index + 1], index + 2
    return token, None, index + 1


def _logger_key(option: str) -> str | None:
    for key in LOGGER_OPTIONS:
        if option in (f"--trainer.logger.init_args.{key}", f"--trainer.logger.{key}"):
            return key
    return None


def _config_content(value: str) -> dict[str, Any]:
    """A ``--config`` file's content (or inline YAML); empty if unreadable (the parser says why)."""
    try:
        text = Path(value).read_text() if Path(value).is_file() else value
        content = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError):
        return {}
    return content if isinstance(content, dict) else {}


def _merge_config(line: CommandLine, content: dict[str, Any]) -> None:
    line.trusted.update(_class_paths(content))
    line.options.update(_options(content))
    if content.get("ckpt_path") is not None:
        line.ckpt_path = str(content["ckpt_path"])
    data = content.get("data")
    if isinstance(data, dict) and data.get("class_path"):
        line.data_class = str(data["class_path"])
    logger = (
        (content.get("trainer") or {}).get("logger")
        if isinstance(content.get("trainer"), dict)
        else None
    )
    if isinstance(logger, dict):
        init_args = logger.get("init_args")
        arguments: dict[str, Any] = init_args if isinstance(init_args, dict) else logger
        line.logger.update({k: arguments[k] for k in LOGGER_OPTIONS if k in arguments})


def _options(content: dict[str, Any], prefix: str = "-") -> set[str]:
    """The options a config sets, as on the command line (``--data.path``, also via init_args)."""
    found = set()
    for key, value in content.items():
        option = (
            prefix
            if key == "init_args"
            else f"{prefix}-{key}"
            if prefix == "-"
            else f"{prefix}.{key}"
        )
        found.add(option)
        if isinstance(value, dict):
            found |= _options(value, option)
    return found


def _class_paths(value: Any) -> set[str]:
    """Every ``class_path`` in a user's config: classes the user asked for, so trusted."""
    if isinstance(value, dict):
        found = {value["class_path"]} if isinstance(value.get("class_path"), str) else set()
        return found.union(*(_class_paths(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(_class_paths(item) for item in value))
    return set()


def _names_class(option: str) -> bool:
    """Whether ``option`` takes a class: a known one, or a top-level callback (``--fit_plot``)."""
    option = option.rstrip("+")
    top_level = option.startswith("--") and "." not in option and option not in NOT_CLASS_OPTIONS
    return option in CLASS_OPTIONS or option.endswith(".class_path") or top_level


def _looks_like_class(value: str) -> bool:
    return re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", value) is not None


_NOISE = ("Does not validate against", "Subtypes:", "Errors:", "Given value", "Problem with")


def one_line(message: str) -> str:
    """Condense a jsonargparse error (nested, many lines) to ``--option: problem``.

    >>> nested = 'Parser key "data":\\n  Parser key "batch_size":\\n'
    >>> one_line(nested + "    Expected a <class 'int'>. Got value: x")
    "--data.batch_size: expected int, got 'x'"
    >>> literal = "\\n- Expected a typing.Literal['auto', 'full']"
    >>> one_line(nested + "- Expected a <class 'int'>" + literal)
    "--data.batch_size: expected int or one of 'auto', 'full'"
    """
    keys = re.findall(r'Parser key "([^"]+)"', message)
    option = "--" + ".".join(keys) if keys else ""
    found = re.findall(r"Expected an? (?:<class '([\w.]+)'>|typing\.Literal\[([^\]]+)\])", message)
    types = [cls or f"one of {words}" for cls, words in found if cls != "NoneType"]
    values = re.findall(r"(?:Given|Got) value: (.*?)(?:\. Got value:.*)?$", message, re.MULTILINE)
    given = next((v for v in values if not v.startswith(("NestedArg", "Namespace"))), None)
    if types:
        reason = "expected " + " or ".join(dict.fromkeys(types))
    else:
        lines = [line.strip(" -") for line in message.splitlines()]
        details = [
            line
            for line in lines
            if line
            and not line.startswith(_NOISE)
            and "Parser key" not in line
            and "NoneType" not in line
        ]
        reason = details[-1] if details else message.strip().splitlines()[0]
        reason, given = _plainer(reason, message, given)
    if given is not None and "got" not in reason.lower():
        reason = f"{reason}, got {given!r}"
    return f"{option}: {reason}" if option else reason


def _plainer(reason: str, message: str, given: str | None) -> tuple[str, str | None]:
    """jsonargparse's wording for common mistakes, said the way a user thinks of them.

    >>> _plainer("Expected a dot import path string: Foo", "", "Foo")[0][:22]
    "unknown class 'Foo': g"
    """
    if match := re.search(r"Expected a dot import path string: (\S+)", reason):
        return (
            f"unknown class {match.group(1)!r}: give a class name such as SGD or Adam, or a full "
            f"import path such as torch.optim.AdamW"
        ), None
    if match := re.search(r"Multiple subclasses with name (\w+)\..*ambiguity: (.*?)\.?$", reason):
        return (
            f"{match.group(1)!r} names several classes ({match.group(2)}): give the full path, "
            f"e.g. {match.group(2).split(',')[0].strip()}"
        ), None
    if match := re.search(r"Option '(\w+)' is not accepted", reason):
        where = _innermost_class(message)
        hint = ""
        if where == "SyntheticDataModule" and match.group(1) in ("path", "target", "features"):
            hint = "; to train on a file, add --data linreg.FileDataModule before --data.path"
        return f"{where} has no option {match.group(1)!r}{hint}", None
    if match := re.search(r"the following arguments are required: ([\w, ]+)", reason):
        where = _innermost_class(message)
        needed = [name.strip() for name in match.group(1).split(",")]
        option = "--" + ".".join(re.findall(r'Parser key "([^"]+)"', message))
        return f"{where} needs " + ", ".join(f"{option}.{name} VALUE" for name in needed), None
    if match := re.search(r"File does not exist: (.*)$", reason):
        return f"file {match.group(1)} does not exist", None
    if message.startswith("Problems parsing config"):
        problem = re.sub(r"\s*in \"<unicode string>\", ", " at ", " ".join(message.split()[3:]))
        return f"the config file is not valid YAML: {problem}", None
    return reason, given


def _innermost_class(message: str) -> str:
    """The short name of the last ``class_path`` a jsonargparse message names."""
    owners = re.findall(r"class_path[=' ]+'?([\w.]+)'", message)
    return owners[-1].rsplit(".", 1)[-1] if owners else "this class"


__all__ = ["CommandLine", "one_line", "read_command_line"]
