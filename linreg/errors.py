"""User mistakes: one exception type, and how the command line turns errors into one message."""

from __future__ import annotations

import re


class UserInputError(ValueError):
    """A mistake in the user's configuration, data or files.

    The ``linreg`` command prints its message (which names the option, file, row or column and
    says what to do) and exits with status 2, without a traceback unless ``LINREG_DEBUG=1``.
    """


def find_user_error(error: BaseException | None) -> Exception | None:
    """The user mistake behind ``error``, which jsonargparse and Lightning may have wrapped.

    That is a :class:`UserInputError`, or Lightning's ``MisconfigurationException`` (its way of
    refusing a Trainer option, e.g. ``--trainer.max_epochs -2``).
    """
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, (UserInputError, MisconfigurationException)):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


_NOISE = ("Does not validate against", "Subtypes:", "Errors:", "Given value", "Problem with")


def one_line(message: str) -> str:
    """Condense a jsonargparse error (nested, many lines) to ``--option: problem``.

    >>> nested = 'Parser key "data":\\n  Parser key "batch_size":\\n'
    >>> one_line(nested + "    Expected a <class 'int'>. Got value: x")
    "--data.batch_size: expected int, got 'x'"
    """
    keys = re.findall(r'Parser key "([^"]+)"', message)
    option = "--" + ".".join(keys) if keys else ""
    types = [t for t in re.findall(r"Expected a <class '([\w.]+)'>", message) if t != "NoneType"]
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
