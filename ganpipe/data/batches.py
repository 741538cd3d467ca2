"""The training stream without TensorFlow: NumPy batches for the JAX backend.

The same structure as ``pipeline.make_training_dataset``: an endless stream of global batches,
epoch ``e`` a permutation of every image drawn from the seed and ``e`` alone, cut into
``N // batch_size`` batches (the last partial one dropped), so batch ``b`` is known without
replaying those before it and a resumed run continues at the batch it had not consumed. The
permutations come from NumPy's PCG64 seeded with ``(seed, e)``, not from TensorFlow's stateless
shuffle, so the two backends see the images in different orders.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ganpipe.data.core import ImageArray
from ganpipe.data.scaling import check_value_range, scale_uint8


def epoch_order(num_images: int, seed: int, epoch: int) -> np.ndarray:
    """Epoch ``epoch``'s permutation of ``range(num_images)``."""
    return np.random.Generator(np.random.PCG64([int(seed), int(epoch)])).permutation(num_images)


def training_batches(
    *,
    images: ImageArray,
    batch_size: int,
    value_range: tuple[float, float] = (0.0, 1.0),
    seed: int = 0,
    start_batch: int = 0,
    with_labels: bool = False,
) -> Iterator:
    """Float32 ``(batch_size, H, W, C)`` batches (with int32 labels: pairs) from ``start_batch``.

    Raises:
        ValueError: a batch larger than the data set, a negative start, or labels asked of a
            data set without them.
    """
    array, labels = checked_arrays(images, batch_size, value_range, start_batch, with_labels)
    return _stream(array, labels, value_table(value_range),
                   IndexStream(len(array), batch_size, seed, start_batch))  # fmt: skip


def checked_arrays(images, batch_size: int, value_range, start_batch: int, with_labels: bool):
    """``(images as NHWC uint8, labels or None)`` of a stream's data, after checking the
    stream's arguments (the ValueErrors of ``training_batches``)."""
    array = images.images if isinstance(images, ImageArray) else np.asarray(images)
    if array.ndim == 3:
        array = array[..., np.newaxis]
    labels = getattr(images, "labels", None)
    if with_labels and labels is None:
        raise ValueError(
            "with_labels=True needs an ImageArray with labels; this data set has none."
        )
    if not 1 <= batch_size <= len(array):
        raise ValueError(
            f"batch_size must be in [1, {len(array)}] (the number of images); got {batch_size}."
        )
    if start_batch < 0:
        raise ValueError(f"start_batch must be >= 0, got {start_batch}.")
    check_value_range(value_range)
    return array, labels if with_labels else None


def value_table(value_range) -> np.ndarray:
    """The float32 value of each of the 256 pixel values (``scale_uint8``'s, elementwise): a
    batch looked up in it is the same numbers as ``scale_uint8`` of the batch."""
    return scale_uint8(np.arange(256, dtype=np.uint8), value_range)


def gather(array, labels, rows, table):
    """The batch of ``rows``: float32 images through ``table`` (with int32 labels: a pair)."""
    batch = table[np.asarray(array[rows])]
    return batch if labels is None else (batch, labels[rows].astype(np.int32))


class IndexStream:
    """The rows of each batch of the stream, from ``start_batch`` on: ``take(count)`` gives the
    next ``count`` batches' rows as an int32 ``(count, batch_size)`` array. ``training_batches``
    gathers these rows on the host; the JAX trainer gathers them on the device."""

    def __init__(self, num_images: int, batch_size: int, seed: int, start_batch: int = 0):
        self.num_images, self.batch_size, self.seed = int(num_images), int(batch_size), int(seed)
        self.per_epoch = self.num_images // self.batch_size
        self.epoch, self.offset = divmod(int(start_batch), self.per_epoch)
        self._order = None

    def take(self, count: int) -> np.ndarray:
        rows = np.empty((int(count), self.batch_size), np.int32)
        for i in range(int(count)):
            if self._order is None:
                self._order = epoch_order(self.num_images, self.seed, self.epoch)
            start = self.offset * self.batch_size
            rows[i] = self._order[start : start + self.batch_size]
            self.offset += 1
            if self.offset == self.per_epoch:
                self.epoch, self.offset, self._order = self.epoch + 1, 0, None
        return rows


def _stream(array, labels, table, rows: IndexStream):
    while True:
        yield gather(array, labels, rows.take(1)[0], table)
