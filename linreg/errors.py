"""The one exception type for user mistakes: shown as a message, never as a traceback."""


class UserInputError(ValueError):
    """A mistake in the user's configuration, data or files.

    The ``linreg`` command prints its message (which names the option, file, row or column and
    says what to do) and exits with status 2, without a traceback unless ``LINREG_DEBUG=1``.
    """
