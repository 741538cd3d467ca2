"""Model families: block lists for any image size, so that one gin line sets the resolution.

A family turns an image shape ``(height, width, channels)`` into the generator's and the
critic's block specs (``ganpipe.models.blocks``). The rules every family shares:

- **Depth follows the size.** The models work at ``k`` resolutions, each twice the last: the
  smallest ``k >= 1`` that brings the longer side to 8 pixels or less (28 -> 7 in 2 halvings,
  64 -> 8 in 3, 256 -> 8 in 5). Each side must divide by ``2**k``; 48x64 works at 6x8, 12x16,
  24x32 and 48x64.
- **Width follows the size.** A feature map whose longer side is ``s`` pixels has
  ``product / s`` channels (rounded to a multiple of 4, at least 16 and at most 256), so each
  resolution level costs about the same number of multiply-adds and the cost grows with the
  number of levels, not with the pixel count. ``product`` is the family's: the lean DCGAN's is
  896 (128 channels at 7x7, 64 at 14x14).
- **Sides from 16 to 256 pixels**, 1 or 3 channels. A size a family cannot build is refused with
  the nearest sizes it can.

At 28x28x1 each family gives exactly the block lists of its ``gin/models/<family>_28.gin`` file
(tests/models/test_families.py checks it), so those runs keep their weights and results.

    build_generator.family = 'lean'   # gin/models/lean.gin
    build_critic.family = 'lean'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from ganpipe.registry import Registry

MIN_SIDE, MAX_SIDE = 16, 256
# The resolution the models start from (generator) and end at (critic): at most this many pixels
# on the longer side.
BASE_SIDE = 8
MIN_CHANNELS, MAX_CHANNELS = 16, 256


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
    differences, then the larger size first)."""
    candidates = [
        (h, w)
        for h in range(MIN_SIDE, MAX_SIDE + 1)
        for w in range(MIN_SIDE, MAX_SIDE + 1)
        if abs(h - height) <= 64 and abs(w - width) <= 64 and buildable(h, w)
    ]
    if not candidates:  # far outside the range: the corners of it
        candidates = [(MIN_SIDE, MIN_SIDE), (MAX_SIDE, MAX_SIDE)]
    candidates.sort(key=lambda hw: (abs(hw[0] - height) + abs(hw[1] - width), -hw[0] - hw[1]))
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


def channels_at(product: int, side: int) -> int:
    """Channels of a feature map whose longer side is ``side``: ``product / side``, rounded to a
    multiple of 4 and kept within [MIN_CHANNELS, MAX_CHANNELS]."""
    width = 4 * round(product / side / 4)
    return max(MIN_CHANNELS, min(MAX_CHANNELS, width))


def levels(height: int, width: int) -> list[tuple[int, int]]:
    """The (height, width) of every resolution, from the base up to the image's own."""
    k = halvings(height, width)
    return [(height // 2 ** (k - i), width // 2 ** (k - i)) for i in range(k + 1)]


@dataclasses.dataclass(frozen=True)
class Family:
    """A ``FAMILIES`` entry.

    Attributes:
        name: Its registry name.
        product: Channels times the longer side at every resolution (see the module docstring).
        generator: (levels, channels per level, image channels) -> the generator's block specs.
        critic: (levels, channels per level) -> the critic's block specs.
        summary: One line for docs and ``python -m ganpipe.models.cost``.
    """

    name: str
    product: int
    generator: Callable[[list, list, int], list]
    critic: Callable[[list, list], list]
    summary: str

    def widths(self, height: int, width: int) -> tuple[list, list]:
        """The resolutions and their channels, base first."""
        sizes = levels(height, width)
        return sizes, [channels_at(self.product, max(h, w)) for h, w in sizes]

    def generator_blocks(self, shape: Sequence[int]) -> list[dict]:
        height, width, channels = check_shape(shape, "build_generator's output shape")
        sizes, widths = self.widths(height, width)
        return self.generator(sizes, widths, channels)

    def critic_blocks(self, shape: Sequence[int]) -> list[dict]:
        height, width, _ = check_shape(shape, "build_critic's input shape")
        return self.critic(*self.widths(height, width))


_RELU = {"block": "activation", "activation": "relu"}
_LEAKY = {"block": "activation", "activation": "leaky_relu", "negative_slope": 0.2}


def _start(sizes, widths, **dense) -> tuple[dict, dict]:
    """Dense to the base resolution's features, reshaped to a (height, width, channels) map."""
    (height, width), channels = sizes[0], widths[0]
    return (
        {"block": "dense", "units": height * width * channels, **dense},
        {"block": "reshape", "target_shape": (height, width, channels)},
    )


def _lean_generator(sizes, widths, channels):
    dense, reshape = _start(sizes, widths, use_bias=False)
    blocks = [dense, {"block": "batch_norm"}, _RELU, reshape]
    for filters in widths[1:-1]:
        blocks += [
            {"block": "conv_transpose", "filters": filters, "kernel_size": 4, "strides": 2,
             "padding": "same", "use_bias": False},
            {"block": "batch_norm"},
            _RELU,
        ]  # fmt: skip
    blocks.append(
        {"block": "conv_transpose", "filters": channels, "kernel_size": 4, "strides": 2,
         "padding": "same", "activation": "tanh"}
    )  # fmt: skip
    return blocks


def _lean_critic(sizes, widths):
    blocks = []
    for filters in reversed(widths[:-1]):
        blocks += [
            {"block": "conv", "filters": filters, "kernel_size": 4, "strides": 2,
             "padding": "same"},
            _LEAKY,
        ]  # fmt: skip
    return [*blocks, {"block": "flatten"}, {"block": "dense", "units": 1}]


def _resnet_generator(sizes, widths, channels):
    dense, reshape = _start(sizes, widths)
    blocks = [dense, reshape]
    blocks += [{"block": "res_up", "filters": filters} for filters in widths[1:]]
    return [
        *blocks,
        {"block": "batch_norm"},
        _RELU,
        {"block": "conv", "filters": channels, "kernel_size": 3, "padding": "same",
         "activation": "tanh"},
    ]  # fmt: skip


def _resnet_critic(sizes, widths):
    down = list(reversed(widths[:-1]))
    blocks = [{"block": "res_down", "filters": down[0], "first": True}]
    blocks += [{"block": "res_down", "filters": filters} for filters in down[1:]]
    return [
        *blocks,
        {"block": "res_down", "filters": down[-1], "down": False},
        _RELU,
        {"block": "global_avg_pool"},
        {"block": "dense", "units": 1},
    ]


def r3_groups(filters: int) -> int:
    """Groups of an r3_res block's 3x3 convolution: the largest count up to 6, and up to one
    group per 8 channels, that divides the channels."""
    limit = max(1, min(6, filters // 8))
    return next(g for g in range(limit, 0, -1) if filters % g == 0)


def _r3(filters: int) -> dict:
    return {"block": "r3_res", "filters": filters, "groups": r3_groups(filters)}


def _r3gan_generator(sizes, widths, channels):
    dense, reshape = _start(sizes, widths)
    blocks = [dense, reshape, _r3(widths[0])]
    for filters in widths[1:]:
        blocks += [
            {"block": "upsample", "size": 2, "interpolation": "bilinear"},
            {"block": "conv", "filters": filters, "kernel_size": 1},
            _r3(filters),
        ]
    return [
        *blocks,
        {"block": "conv", "filters": channels, "kernel_size": 1, "activation": "tanh"},
    ]


def _r3gan_critic(sizes, widths):
    down = list(reversed(widths))
    blocks = [{"block": "conv", "filters": down[0], "kernel_size": 1}, _r3(down[0])]
    for filters in down[1:]:
        blocks += [
            {"block": "avg_pool", "pool_size": 2},
            {"block": "conv", "filters": filters, "kernel_size": 1},
            _r3(filters),
        ]
    return [*blocks, {"block": "flatten"}, {"block": "dense", "units": 1}]


FAMILIES = Registry(
    "model family",
    {
        "lean": Family(
            "lean",
            896,
            _lean_generator,
            _lean_critic,
            "lean DCGAN: 4x4 stride-2 (transposed) convolutions, batch norm in the generator",
        ),
        "resnet": Family(
            "resnet",
            448,
            _resnet_generator,
            _resnet_critic,
            "SNGAN/BigGAN residual up- and down-blocks, batch norm in the generator",
        ),
        "r3gan": Family(
            "r3gan",
            672,
            _r3gan_generator,
            _r3gan_critic,
            "R3GAN: normalization-free grouped residual blocks, bilinear resampling",
        ),
    },  # fmt: skip
    base=Family,
    instantiate=False,
)
