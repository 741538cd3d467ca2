"""Turning an in-memory uint8 data set into a batched float32 tf.data input pipeline."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ganpipe.data.core import ImageArray
from ganpipe.data.scaling import check_value_range, scale_uint8
from ganpipe.lazy_tf import tf
from ganpipe.validate import at_least


def make_dataset(
    *,
    images: ImageArray | np.ndarray,
    batch_size: int,
    value_range: tuple[float, float] = (0.0, 1.0),
    shuffle: bool = True,
    shuffle_buffer: int | None = None,
    seed: int = 0,
    repeat: bool = True,
    drop_remainder: bool = True,
    prefetch: bool = True,
) -> tf.data.Dataset:
    """Builds the training input pipeline: shuffled, repeated, batched, scaled images.

    The data stays uint8 until batched, which keeps the shuffle buffer 4x smaller than float32.
    Pixels are mapped linearly from [0, 255] to value_range (``scaling.scale_uint8``); (0, 1)
    gives exactly x / 255 and (-1, 1) exactly (x - 127.5) / 127.5 in float32.

    Args:
        images: The data set, or a uint8 array of shape (N, H, W, C) or (N, H, W).
        batch_size: Images per batch.
        value_range: (low, high) that pixel values 0 and 255 map to.
        shuffle: Whether to shuffle the examples.
        shuffle_buffer: Shuffle buffer size; None shuffles the whole data set uniformly.
        seed: Shuffle seed; the same seed gives the same order (reshuffled each epoch).
        repeat: Whether to repeat forever.
        drop_remainder: Whether to drop a last, smaller batch, so every batch has batch_size.
        prefetch: Whether to prefetch batches in the background.

    Returns:
        A dataset of float32 tensors of shape (batch_size, H, W, C) (first dim None if
        drop_remainder is False).

    Raises:
        ValueError: For a bad batch_size, value_range, shuffle_buffer or images array.
    """
    array = _image_array(images)
    _check_dataset_arguments(array, batch_size, value_range, shuffle_buffer, drop_remainder)
    num_images = array.shape[0]

    def scale(batch: tf.Tensor) -> tf.Tensor:
        return scale_uint8(batch, value_range)

    dataset = tf.data.Dataset.from_tensor_slices(array)
    if shuffle:
        dataset = dataset.shuffle(
            shuffle_buffer or num_images, seed=seed, reshuffle_each_iteration=True
        )
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(scale, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if prefetch:
        dataset = dataset.prefetch(tf.data.AUTOTUNE)
    return dataset


def make_training_dataset(
    *,
    images: ImageArray | np.ndarray,
    batch_size: int,
    value_range: tuple[float, float] = (0.0, 1.0),
    seed: int = 0,
    start_batch: int = 0,
    replicas: int = 1,
    local_replicas: Sequence[int] | None = None,
    with_labels: bool = False,
) -> tf.data.Dataset:
    """The trainer's input pipeline: an endless stream of batches whose order is a pure function of
    ``seed``, so a resumed run continues exactly where it stopped.

    Epoch ``e`` is a permutation of all images drawn with the stateless seed ``(seed, e)``, cut
    into ``N // batch_size`` batches (the last partial batch of each epoch is dropped: no image is
    repeated or skipped within an epoch apart from those). Batch ``b`` of the stream is therefore
    known without replaying the ones before it, and ``start_batch`` starts there. Only index
    batches flow through tf.data; the images stay in one in-memory uint8 tensor and each batch is
    gathered and scaled in one vectorized step.

    Args:
        images: The data set, or a uint8 array (N, H, W, C) or (N, H, W).
        batch_size: The global batch.
        value_range: (low, high) that pixel values 0 and 255 map to (see ``make_dataset``).
        seed: Seed of the epoch permutations.
        start_batch: Index of the first batch to yield (batches consumed before a resume).
        replicas: Replicas sharing each global batch (over all workers). Each global batch is
            cut, in order, into ``replicas`` equal row blocks: replica ``r`` trains on block
            ``r``, so N replicas see exactly the rows one replica would (sharding by data).
        local_replicas: The replicas this input pipeline feeds (default: all). The dataset
            yields their blocks one after another (``[r0 of batch 0, r1 of batch 0, r0 of batch
            1, ...]``), the order in which tf.distribute hands a worker's elements to its
            replicas. Only those rows are gathered, so a worker reads just its share.
        with_labels: Yield ``(images, labels)`` pairs (labels int32, gathered with the same
            indices as the images, so each label stays with its image); needs an ``ImageArray``
            with labels.

    Returns:
        A dataset of float32 (batch_size, H, W, C) tensors, or with ``replicas > 1`` of
        (batch_size // replicas, H, W, C) blocks; with ``with_labels``, pairs of those and
        int32 (batch,) labels.
    """
    label_array = _training_labels(images, with_labels)
    array = _image_array(images)
    _check_training_arguments(array, batch_size, value_range, start_batch, replicas)
    local = _local_replicas(replicas, local_replicas)
    dataset = _batch_indices(len(array), batch_size, seed, start_batch)
    if replicas > 1 or local != [0]:
        dataset = dataset.map(_replica_blocks(batch_size, replicas, local)).unbatch()
    return dataset.map(
        _gather_and_scale(array, label_array, value_range),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    ).prefetch(tf.data.AUTOTUNE)


def _image_array(images: ImageArray | np.ndarray) -> np.ndarray:
    """The pixel array of ``images``, with a channel axis added to (N, H, W) input."""
    array = images.images if isinstance(images, ImageArray) else np.asarray(images)
    if array.ndim == 3:
        array = array[..., np.newaxis]
    return array


def _check_dataset_arguments(
    array: np.ndarray,
    batch_size: int,
    value_range: tuple[float, float],
    shuffle_buffer: int | None,
    drop_remainder: bool,
) -> None:
    """Raises make_dataset's ValueErrors for a bad images array, batch_size, value_range or
    shuffle_buffer."""
    if array.dtype != np.uint8 or array.ndim != 4:
        raise ValueError(
            "images must be uint8 of shape (N, H, W, C) or (N, H, W); got "
            f"dtype {array.dtype} and shape {array.shape}."
        )
    num_images = array.shape[0]
    at_least("batch_size", batch_size, 1)
    if drop_remainder and batch_size > num_images:
        raise ValueError(
            f"batch_size {batch_size} is larger than the number of images ({num_images}); with "
            "drop_remainder=True the data set would yield no batches. Use a smaller batch_size, "
            "more images, or drop_remainder=False."
        )
    check_value_range(value_range)
    if shuffle_buffer is not None:
        at_least("shuffle_buffer", shuffle_buffer, 1, hint="None shuffles the whole data set.")


def _training_labels(images: ImageArray | np.ndarray, with_labels: bool) -> np.ndarray | None:
    """The int32 labels make_training_dataset yields, or None without ``with_labels``."""
    if not with_labels:
        return None
    label_array = images.labels if isinstance(images, ImageArray) else None
    if label_array is None:
        raise ValueError(
            "with_labels=True needs an ImageArray with labels; this data set has none."
        )
    return np.asarray(label_array).astype(np.int32)


def _check_training_arguments(
    array: np.ndarray,
    batch_size: int,
    value_range: tuple[float, float],
    start_batch: int,
    replicas: int,
) -> None:
    """Raises make_training_dataset's ValueErrors for bad images, batch_size, value_range,
    start_batch or replicas."""
    # make_dataset's checks, on a one-batch probe, keep the two pipelines' rules identical.
    make_dataset(
        images=array[:batch_size] if len(array) >= batch_size else array,
        batch_size=batch_size,
        value_range=value_range,
        shuffle=False,
        repeat=False,
        prefetch=False,
    )
    at_least("start_batch", start_batch, 0)
    if replicas < 1 or batch_size % replicas:
        raise ValueError(
            f"The global batch {batch_size} cannot be split over {replicas} replicas; use a "
            f"multiple of {replicas}."
        )


def _local_replicas(replicas: int, local_replicas: Sequence[int] | None) -> list[int]:
    """The replicas an input pipeline feeds, checked to lie in [0, replicas)."""
    local = list(range(replicas)) if local_replicas is None else [int(r) for r in local_replicas]
    if not local or any(not 0 <= r < replicas for r in local):
        raise ValueError(f"local_replicas must be in [0, {replicas}), got {local_replicas!r}.")
    return local


def _batch_indices(
    num_images: int, batch_size: int, seed: int, start_batch: int
) -> tf.data.Dataset:
    """The endless stream of global batches of image indices, from batch ``start_batch`` on.

    Epoch ``e`` is the stateless permutation of ``range(num_images)`` with seed ``(seed, e)``,
    cut into ``num_images // batch_size`` batches (its last partial batch dropped).
    """
    per_epoch = num_images // batch_size
    start_epoch, offset = divmod(int(start_batch), per_epoch)
    seed = tf.constant(int(seed), tf.int64)

    def epoch_batches(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(num_images, dtype=tf.int64), seed=tf.stack([seed, epoch])
        )
        return tf.data.Dataset.from_tensor_slices(
            tf.reshape(order[: per_epoch * batch_size], [per_epoch, batch_size])
        )

    return (
        tf.data.Dataset.range(start_epoch, np.iinfo(np.int64).max)
        .flat_map(epoch_batches)
        .skip(offset)
    )


def _replica_blocks(batch_size: int, replicas: int, local: list[int]):
    """A map function from a global index batch to the row blocks of the ``local`` replicas:
    ``replicas`` equal blocks in order, of which it keeps rows ``local``, shape
    (len(local), batch_size // replicas)."""
    block = batch_size // replicas
    rows = tf.constant(local, tf.int32)

    def blocks(index):
        return tf.gather(tf.reshape(index, [replicas, block]), rows)

    return blocks


def _gather_and_scale(
    array: np.ndarray, label_array: np.ndarray | None, value_range: tuple[float, float]
):
    """A map function from an index batch to its scaled images (and labels, if given).

    The images stay in one in-memory uint8 tensor; each batch is gathered and scaled in one
    vectorized step. A memory-mapped array (a prepared data set) is not copied into a tensor:
    each batch's rows are read from the map (NumPy, in tf.data's threads), so the process holds
    only the batches in flight and the pages the kernel keeps cached.
    """
    data = _rows_of(array)
    label_data = None if label_array is None else tf.constant(label_array)

    def gather_and_scale(index):
        scaled = scale_uint8(data(index), value_range)
        if label_data is None:
            return scaled
        # The same indices: each label stays with its image, whatever the replica split.
        return scaled, tf.gather(label_data, index)

    return gather_and_scale


def _rows_of(array: np.ndarray):
    """A function from an index batch to those rows of ``array`` as a uint8 tensor."""
    if not isinstance(array, np.memmap):
        data = tf.constant(array)
        return lambda index: tf.gather(data, index)
    row_shape = tuple(int(v) for v in array.shape[1:])

    def read(index):
        # Rows in ascending order read the file forwards; put back in the batch's order.
        order = np.argsort(index, kind="stable")
        rows = np.empty((len(index), *row_shape), np.uint8)
        rows[order] = array[index[order]]
        return rows

    def gather(index):
        rows = tf.numpy_function(read, [index], tf.uint8, stateful=False)
        return tf.ensure_shape(rows, (None, *row_shape))

    return gather
