"""Notes: what linreg tells the user about a choice it made or a risk it saw, without stopping."""

from __future__ import annotations

import sys

from lightning.pytorch.utilities import rank_zero_only


@rank_zero_only
def note(message: str) -> None:
    """Print ``linreg: note: <message>`` to standard error, once (on the first DDP process)."""
    print(f"linreg: note: {message}", file=sys.stderr, flush=True)
