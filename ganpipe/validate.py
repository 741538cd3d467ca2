"""Checks of argument values shared by every module, each raising an error that names the binding
(or argument) to change. Imports nothing heavy, so any module may use it."""

from __future__ import annotations

import numbers
from typing import Any


def at_least(
    name: str, value: Any, minimum: int, *, hint: str = "", error: type[Exception] = ValueError
) -> int:
    """``value`` as an int, if it is an integer (a Python or NumPy one, not a bool) of at least
    ``minimum``.

    Args:
        name: What the value is set by, as the user writes it (``train.log_every``,
            ``ADA.interval``); the message starts with it.
        value: The value to check.
        minimum: The smallest value allowed.
        hint: A sentence appended to the message (what the value means, a typical setting).
        error: The exception class raised (a ValueError subclass of the caller's, say).

    Raises:
        ``error`` (ValueError by default): ``"<name> must be an integer >= <minimum>, got
        <value!r>."``, then the hint.
    """
    # bool is an int subclass, but True for a count is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        message = f"{name} must be an integer >= {minimum}, got {value!r}."
        raise error(f"{message} {hint}" if hint else message)
    return int(value)
