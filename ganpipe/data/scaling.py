"""Pixel scaling: uint8 data to the generator's value range, and generator outputs to [0, 1].

The input pipelines, the evaluation and the sample grids use these, so each map is written once.
This module imports NumPy only; tensorflow is imported inside ``scale_uint8``, and only when it
is given something other than a NumPy array, so importing it pulls in no other part of ganpipe.
"""

from __future__ import annotations

import math

import numpy as np


def check_value_range(value_range) -> tuple[float, float]:
    """``(low, high)`` as floats; raises ValueError unless ``low < high``."""
    low, high = (float(v) for v in value_range)
    if not low < high:
        raise ValueError(f"value_range must be (low, high) with low < high; got {value_range}")
    return low, high


def scale_uint8(pixels, value_range):
    """Maps uint8 pixels linearly from [0, 255] to ``value_range``, in float32.

    x -> (x - offset) / divisor with divisor = 255 / (high - low) and offset = -low * divisor,
    the form of both usual formulas: (0, 1) has offset 0 and divisor 255, (-1, 1) offset and
    divisor 127.5. It is computed in float64 and rounded once to float32, which gives bit-exact
    x / 255 and (x - 127.5) / 127.5 and lands 0 and 255 exactly on float32(low) and
    float32(high) for any range.

    Args:
        pixels: uint8 values: a NumPy array, or a TensorFlow tensor (as inside tf.data).
        value_range: ``(low, high)`` that pixel values 0 and 255 map to.

    Returns:
        float32 values of the same shape and kind (NumPy array or tensor) as ``pixels``. Both
        kinds give the same numbers.
    """
    low, high = check_value_range(value_range)
    divisor = 255.0 / (high - low)
    offset = -low * divisor
    if isinstance(pixels, np.ndarray):
        wide, narrow = pixels.astype(np.float64), lambda x: x.astype(np.float32)
    else:
        import tensorflow as tf  # Only tensors need it.

        wide, narrow = tf.cast(pixels, tf.float64), lambda x: tf.cast(x, tf.float32)
    return narrow((wide - offset) / divisor)


def to_unit_range(images, value_range) -> np.ndarray:
    """Maps generator outputs in ``value_range`` to [0, 1], clipping what falls outside.

    Args:
        images: Generator outputs (any array-like: NumPy, a tensor, bfloat16 under mixed
            precision).
        value_range: ``(low, high)``, the generator's output range.

    Returns:
        A float32 NumPy array of the same shape, in [0, 1].
    """
    low, high = check_value_range(value_range)
    images = np.asarray(images).astype(np.float32)  # bfloat16 outputs under mixed precision
    return np.clip((images - low) / (high - low), 0.0, 1.0)


def image_grid(
    images: np.ndarray, value_range: tuple[float, float], columns: int | None = None
) -> np.ndarray:
    """Tiles ``(n, h, w, c)`` images scaled in ``value_range`` into one uint8 grid, 2-pixel gaps;
    by default as square as ``n`` allows (100 images: 10 x 10), so no last row is part-empty."""
    scaled = np.round(to_unit_range(images, value_range) * 255.0).astype(np.uint8)
    n, h, w, c = scaled.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    pad = 2
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 255, np.uint8)
    for index in range(n):
        r, col = divmod(index, columns)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[top : top + h, left : left + w] = scaled[index]
    return grid
