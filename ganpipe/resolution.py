"""The image sizes the model families build, and how deep they go at each: pure arithmetic,
no Keras, so that ``python -m ganpipe.prepare`` can check a size without importing it (see
``ganpipe.models.families`` for the families themselves)."""

from __future__ import annotations

from collections.abc import Sequence

MIN_SIDE, MAX_SIDE = 16, 256
# The resolution the models start from (generator) and end at (critic): at most this many pixels
# on the longer side.
BASE_SIDE = 8


class SizeError(ValueError):
    """An image shape no family (or not this family) can build."""


def halvings(height: int, width: int) -> int:
    """How many times the family halves an image of this size: the smallest ``k >= 1`` with the
    longer side divided by ``2**k`` at most ``BASE_SIDE``."""
    k = 1
    while max(height, width) > BASE_SIDE * 2**k:
        k += 1
    return k


def buildable(height: int, width: int) -> bool:
    """Whether the families can build this (height, width)."""
    if not (MIN_SIDE <= height <= MAX_SIDE and MIN_SIDE <= width <= MAX_SIDE):
        return False
    stride = 2 ** halvings(height, width)
    return height % stride == 0 and width % stride == 0


def nearest_sizes(height: int, width: int, count: int = 3) -> list[tuple[int, int]]:
    """The buildable sizes closest to (height, width), nearest first (by the sum of the sides'
    differences, then the closest aspect ratio, then the larger size)."""
    candidates = [
        (h, w)
        for h in range(MIN_SIDE, MAX_SIDE + 1)
        for w in range(MIN_SIDE, MAX_SIDE + 1)
        if abs(h - height) <= 64 and abs(w - width) <= 64 and buildable(h, w)
    ]
    if not candidates:  # far outside the range: the corners of it
        candidates = [(MIN_SIDE, MIN_SIDE), (MAX_SIDE, MAX_SIDE)]
    aspect = height / width
    candidates.sort(
        key=lambda hw: (
            abs(hw[0] - height) + abs(hw[1] - width),  # nearest first
            abs(hw[0] / hw[1] - aspect),  # then the same shape
            -hw[0] - hw[1],  # then the larger
        )
    )
    return candidates[:count]


def check_shape(shape: Sequence[int], setting: str = "the data's image size") -> tuple:
    """``shape`` as a (height, width, channels) tuple of ints, if a family can build it.

    Raises:
        SizeError: naming ``setting``, what is wrong and the nearest buildable sizes.
    """
    try:
        height, width, channels = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise SizeError(f"{setting} must be (height, width, channels), got {shape!r}.") from None
    if channels not in (1, 3):
        raise SizeError(
            f"{setting} has {channels} channels; the model families build 1 (grayscale) or 3 "
            "(RGB). Prepare the data with --channels=1 or --channels=3."
        )
    if buildable(height, width):
        return height, width, channels
    if not (MIN_SIDE <= height <= MAX_SIDE and MIN_SIDE <= width <= MAX_SIDE):
        why = f"each side must be between {MIN_SIDE} and {MAX_SIDE} pixels"
    else:
        stride = 2 ** halvings(height, width)
        why = (
            f"at this size the models halve the image {halvings(height, width)} times, so each "
            f"side must divide by {stride}"
        )
    near = " or ".join(f"{h}x{w}" for h, w in nearest_sizes(height, width))
    raise SizeError(
        f"{setting} is {height}x{width} (height x width); the model families cannot build it: "
        f"{why}. The nearest sizes they build: {near}. Prepare the data at one of them "
        "(python -m ganpipe.prepare --size=H,W), or give the models block lists of your own "
        "(build_generator.blocks, build_critic.blocks) with build_*.family = None."
    )
