"""Durations as the progress line and the sweep log print them."""

import math

import pytest

from ganpipe.timefmt import format_duration


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0, "0:00:00"),
        (0.4, "0:00:00"),
        (59.6, "0:01:00"),
        (3661.2, "1:01:01"),
        (90061, "1 day, 1:01:01"),
        (math.inf, "?"),
        (-math.inf, "?"),
        (math.nan, "?"),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
