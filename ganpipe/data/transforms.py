"""Shape conversions applied to in-memory uint8 image arrays after loading."""

from __future__ import annotations

import numpy as np

from ganpipe.lazy_tf import tf

SUPPORTED_CHANNELS = (1, 3)

# ITU-R BT.601 luma weights, the same ones Pillow uses for RGB -> "L".
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)

# Resizing runs in float32, so chunking bounds the temporary memory for large data sets.
_RESIZE_CHUNK = 4096


def validate_image_size(image_size: tuple[int, int] | None) -> tuple[int, int] | None:
    """Checks that image_size is None or a pair of positive ints and returns it as a tuple."""
    if image_size is None:
        return None
    size = tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in size):
        raise ValueError(f"image_size must be (height, width) with positive ints; got {image_size}")
    return int(size[0]), int(size[1])


def validate_channels(channels: int | None) -> int | None:
    """Checks that channels is None, 1 or 3."""
    if channels is not None and channels not in SUPPORTED_CHANNELS:
        raise ValueError(f"channels must be one of {SUPPORTED_CHANNELS} or None; got {channels}")
    return channels


def convert_channels(images: np.ndarray, channels: int | None) -> np.ndarray:
    """Converts (N, H, W, C) uint8 images to the requested number of channels.

    Args:
        images: uint8 array with C in {1, 3, 4}; a 4th (alpha) channel is dropped.
        channels: 1 (grayscale, via luma), 3 (RGB, gray replicated) or None to keep C.

    Returns:
        The converted uint8 array (the input itself when nothing changes).
    """
    channels = validate_channels(channels)
    if images.shape[-1] == 4:
        images = images[..., :3]
    if channels is None or images.shape[-1] == channels:
        return images
    if channels == 3:
        return np.repeat(images, 3, axis=-1)
    gray = np.tensordot(images.astype(np.float32), _LUMA_WEIGHTS, axes=([-1], [0]))
    return np.clip(np.rint(gray), 0, 255).astype(np.uint8)[..., np.newaxis]


def resize_images(images: np.ndarray, image_size: tuple[int, int] | None) -> np.ndarray:
    """Resizes (N, H, W, C) uint8 images to image_size = (height, width) if it differs.

    Bilinear with antialiasing, so that shrinking large photos does not alias.

    Args:
        images: uint8 array.
        image_size: Target (height, width), or None to keep the native size.

    Returns:
        A uint8 array of shape (N, height, width, C).
    """
    image_size = validate_image_size(image_size)
    if image_size is None or tuple(images.shape[1:3]) == image_size:
        return images
    out = np.empty((images.shape[0], *image_size, images.shape[-1]), dtype=np.uint8)
    for start in range(0, images.shape[0], _RESIZE_CHUNK):
        chunk = tf.image.resize(
            images[start : start + _RESIZE_CHUNK], image_size, method="bilinear", antialias=True
        )
        out[start : start + _RESIZE_CHUNK] = np.clip(np.rint(chunk.numpy()), 0, 255)
    return out


def finish(
    images: np.ndarray, *, image_size: tuple[int, int] | None, channels: int | None
) -> np.ndarray:
    """Converts channels and resizes, in whichever order moves fewer channels through resize."""
    if channels is not None and channels > images.shape[-1]:
        return convert_channels(resize_images(images, image_size), channels)
    return resize_images(convert_channels(images, channels), image_size)
