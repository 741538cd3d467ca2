"""Mean and variance of the global batch under a tf.distribute strategy, in two passes.

``SyncBatchNorm`` (``ganpipe/models/blocks.py``) and DRAGAN's batch standard deviation
(``ganpipe/penalties.py``) both need statistics of the whole global batch while each replica
holds only its share. This is the one implementation. It lives in ``models/`` because blocks.py
may import nothing outside keras at module level (the blocks run under ``KERAS_BACKEND=jax``,
tested in tests/models), so it cannot use ``ganpipe/distribute.py``, which imports tensorflow
at import time. This module imports keras only; tensorflow is imported inside the functions, and
only when the Keras backend is TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence


def sync_replica_context():
    """The TensorFlow replica context when several replicas run in sync, else None.

    None under another Keras backend, in cross-replica context and with one replica in sync:
    there is then nothing to all-reduce and callers use their one-replica formula.
    """
    from ganpipe import backend  # Here: the backend imports the models' layers.

    return backend.sync_replica_context()


def all_reduced_moments(
    inputs, context, axes: Sequence[int] | None = None, *, keepdims: bool = False
):
    """Mean and variance over ``axes`` of the global batch (every replica's ``inputs``).

    Two passes, each all-reduced with a sum over the replicas: the mean first, then the mean of
    the squared deviations from it. That is the formula ``tf.nn.moments`` applies on one
    replica, so N replicas get the one-replica value up to summation order. (E[x^2] - E[x]^2,
    which Keras' ``synchronized=True`` batch norm uses, loses digits to cancellation.) The
    variance is the population variance (divided by the count, not count - 1).

    Args:
        inputs: This replica's share of the batch, a TensorFlow tensor.
        context: The replica context to all-reduce in (``sync_replica_context()``).
        axes: The axes reduced over; None reduces over every value.
        keepdims: Keep the reduced axes with size 1 (ignored when ``axes`` is None: the moments
            are then scalars).

    Returns:
        ``(mean, variance)``, in the dtype of ``inputs``.
    """
    import tensorflow as tf  # The caller holds a TensorFlow replica context.

    total = tf.distribute.ReduceOp.SUM
    if axes is None:
        count = tf.cast(tf.size(inputs), inputs.dtype)
        local_sum = tf.reduce_sum(inputs)
    else:
        axes = list(axes)
        count = tf.cast(tf.reduce_prod(tf.gather(tf.shape(inputs), axes)), inputs.dtype)
        # Kept dimensions, so the mean broadcasts against this replica's inputs below.
        local_sum = tf.reduce_sum(inputs, axis=axes, keepdims=True)
    count = context.all_reduce(total, count)
    mean = context.all_reduce(total, local_sum) / count
    local_squares = tf.reduce_sum(tf.square(inputs - mean), axis=axes, keepdims=axes is not None)
    variance = context.all_reduce(total, local_squares) / count
    if axes is not None and not keepdims:
        mean, variance = tf.squeeze(mean, axes), tf.squeeze(variance, axes)
    return mean, variance
