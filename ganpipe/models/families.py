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
from ganpipe.resolution import (  # noqa: F401 (part of this module's interface)
    BASE_SIDE,
    MAX_SIDE,
    MIN_SIDE,
    SizeError,
    buildable,
    check_shape,
    halvings,
    nearest_sizes,
)

MIN_CHANNELS, MAX_CHANNELS = 16, 256


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
