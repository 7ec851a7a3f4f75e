"""User mistakes: one exception type, and how the command line turns errors into one message."""

from __future__ import annotations

import re


class UserInputError(ValueError):
    """A mistake in the user's configuration, data or files.

    The ``linreg`` command prints its message (which names the option, file, row or column and
    says what to do) and exits with status 2, without a traceback unless ``LINREG_DEBUG=1``.
    """


def find_user_error(error: BaseException | None) -> UserInputError | None:
    """The user mistake behind ``error``, which jsonargparse and Lightning may have wrapped."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, UserInputError):
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
    if given is not None and "got" not in reason.lower():
        reason = f"{reason}, got {given!r}"
    return f"{option}: {reason}" if option else reason
