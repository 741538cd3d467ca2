"""The training input: a resumable stream of global batches, distributed over the replicas."""

from __future__ import annotations

from ganpipe import backend
from ganpipe import data as data_module
from ganpipe.lazy_tf import tf


class InputStream:
    """The run's data stream (``settings``: RunSettings).

    Batch ``b`` of the stream is a pure function of the seed (``make_training_dataset``), so a
    resumed run continues at the first batch it had not consumed. Sharding is by data and
    explicit: replica r of N takes rows [r * B/N, (r + 1) * B/N) of global batch B, and each
    worker's pipeline gathers only the rows of its own replicas, so the replicas together see
    exactly the global batch one replica would.
    """

    def __init__(self, images: data_module.ImageArray, settings, strategy):
        self.images, self.settings, self.strategy = images, settings, strategy

    def dataset(self, start_batch: int, replicas: int = 1, local_replicas=None) -> tf.data.Dataset:
        """The stream from batch ``start_batch`` on: global batches, or with ``replicas`` > 1
        the blocks of ``local_replicas`` (default all) one after another."""
        s = self.settings
        return data_module.make_training_dataset(
            images=self.images,
            batch_size=s.batch_size,
            value_range=s.value_range,
            seed=s.seed,
            start_batch=start_batch,
            replicas=replicas,
            local_replicas=local_replicas,
            with_labels=s.num_classes is not None,
        )

    def iterator(self, start_batch: int):
        """The backend's iterator from batch ``start_batch`` (``backend.training_input``): on
        TensorFlow each replica gets its block; on JAX, rows or NumPy global batches."""
        return backend.training_input(self, start_batch)
