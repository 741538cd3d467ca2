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
    return _stream(array, labels if with_labels else None, batch_size, value_range, seed,
                   start_batch)  # fmt: skip


def _stream(array, labels, batch_size, value_range, seed, start_batch):
    per_epoch = len(array) // batch_size
    epoch, offset = divmod(int(start_batch), per_epoch)
    while True:
        order = epoch_order(len(array), seed, epoch)
        for b in range(offset, per_epoch):
            index = order[b * batch_size : (b + 1) * batch_size]
            batch = scale_uint8(array[index], value_range).astype(np.float32)
            yield batch if labels is None else (batch, labels[index].astype(np.int32))
        epoch, offset = epoch + 1, 0
