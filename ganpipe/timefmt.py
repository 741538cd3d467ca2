"""Durations as people read them."""

from __future__ import annotations

import datetime
import math


def format_duration(seconds: float) -> str:
    """``seconds`` as ``H:MM:SS`` (``D days, H:MM:SS`` past a day), rounded to the second;
    ``"?"`` when it is not finite (an estimate with nothing to go on yet)."""
    if not math.isfinite(seconds):
        return "?"
    return str(datetime.timedelta(seconds=int(round(seconds))))
