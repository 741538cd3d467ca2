"""Core types shared by the data loaders: the in-memory image container and errors."""

from __future__ import annotations

import dataclasses

import numpy as np


class DatasetNotFoundError(FileNotFoundError):
    """Raised when no way of obtaining the requested data set worked.

    The message lists every way to get the data and why each attempt failed, so that the
    user can fix the problem without reading the source.
    """


@dataclasses.dataclass(frozen=True)
class ImageArray:
    """A whole image data set held in memory.

    Attributes:
        images: uint8 array of shape (N, H, W, C); C is 1 for grayscale.
        labels: int64 array of shape (N,), or None when the source has no labels.
        source: Human-readable description of where the data came from.
        class_names: The classes' names in label order, where the source has them.
        fingerprint: The SHA-256 of a prepared data set's pixels (``ganpipe.prepare``), which
            an evaluator trained on it is pinned to; None for other sources.
    """

    images: np.ndarray
    labels: np.ndarray | None
    source: str
    class_names: tuple[str, ...] = ()
    fingerprint: str | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(
                "ImageArray.images must be a uint8 array of shape (N, H, W, C); got "
                f"dtype {self.images.dtype} and shape {self.images.shape}."
            )
        if self.labels is not None and self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"ImageArray.labels has shape {self.labels.shape} but there are "
                f"{self.images.shape[0]} images."
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The (H, W, C) shape of a single image."""
        height, width, channels = self.images.shape[1:]
        return int(height), int(width), int(channels)


def record(images: ImageArray) -> dict:
    """What a run directory keeps of its training data (``data.json``)."""
    return {
        "image_shape": list(images.image_shape),
        "count": len(images),
        "labelled": images.labels is not None,
        "class_names": list(images.class_names),
        "source": images.source,
        "fingerprint": images.fingerprint,
    }


def describe(images: ImageArray) -> str:
    """Summarizes a data set in one line.

    Args:
        images: The data set to describe.

    Returns:
        A line such as "60000 images of 28x28x1 uint8, with labels, from IDX files in ...".
    """
    height, width, channels = images.image_shape
    labels = "with labels" if images.labels is not None else "no labels"
    return (
        f"{len(images)} images of {height}x{width}x{channels} {images.images.dtype}, "
        f"{labels}, from {images.source}"
    )


def check_labels(images: ImageArray, num_classes: int) -> None:
    """A class-conditional run needs labels, all in [0, num_classes)."""
    if images.labels is None:
        raise ValueError(
            f"train.num_classes = {num_classes} makes the run class-conditional, but the data "
            f"({images.source}) has no labels. Use a labelled source (fashion_mnist, mnist, idx "
            "files with a labels file, tfds:<name> with labels, synthetic), or set "
            "train.num_classes = None."
        )
    low, high = int(np.min(images.labels)), int(np.max(images.labels))
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"The data's labels run from {low} to {high}, but train.num_classes = {num_classes} "
            f"needs them in [0, {num_classes}). Set train.num_classes = {max(high + 1, 1)} (or "
            "more), or relabel the data."
        )
