"""A deterministic toy data set of simple shapes, for tests and quick experiments."""

from __future__ import annotations

import numpy as np

from ganpipe.validate import at_least

SHAPE_CLASSES = ("rectangle", "disc", "triangle")


def make_shapes(
    *, num: int, image_size: tuple[int, int], channels: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Draws one bright shape per image on a dark, slightly noisy background.

    The label is the index of the shape in SHAPE_CLASSES. Shapes vary in position, size and
    brightness (and colour when channels is 3), so a GAN has structure to learn.

    Args:
        num: Number of images.
        image_size: (height, width).
        channels: 1 or 3.
        seed: Seed; the same seed always gives the same images.

    Returns:
        (images uint8 (num, H, W, channels), labels int64 (num,)).
    """
    at_least("num_synthetic", num, 1)
    height, width = image_size
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(SHAPE_CLASSES), size=num).astype(np.int64)
    scale = min(height, width)
    cy = rng.uniform(0.3, 0.7, size=(num, 1, 1)) * height
    cx = rng.uniform(0.3, 0.7, size=(num, 1, 1)) * width
    size = rng.uniform(0.12, 0.28, size=(num, 1, 1)) * scale
    aspect = rng.uniform(0.5, 1.0, size=(num, 1, 1))
    # Pixel centres, so shapes are symmetric about (cy, cx).
    y = np.arange(height, dtype=np.float32).reshape(1, -1, 1) + 0.5
    x = np.arange(width, dtype=np.float32).reshape(1, 1, -1) + 0.5
    dy, dx = y - cy, x - cx

    rectangle = (np.abs(dy) <= size * aspect) & (np.abs(dx) <= size)
    disc = dy**2 + dx**2 <= size**2
    # Apex up: the half-width grows from 0 at the top edge to `size` at the bottom edge.
    triangle = (np.abs(dy) <= size) & (np.abs(dx) <= (dy + size) / 2)
    label = labels.reshape(-1, 1, 1)
    mask = np.where(label == 0, rectangle, np.where(label == 1, disc, triangle))

    if channels == 1:
        colour = rng.uniform(180, 255, size=(num, 1, 1, 1))
    else:
        colour = rng.uniform(0.4, 1.0, size=(num, 1, 1, channels)) * 255
    background = rng.integers(0, 25, size=(num, height, width, channels))
    images = np.where(mask[..., np.newaxis], colour, background)
    return np.rint(images).astype(np.uint8), labels
