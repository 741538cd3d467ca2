"""What a run writes: the metrics log, TensorBoard events, sample grids, checkpoints.

Plain writers with no schedule of their own: the callbacks (``ganpipe.training.callbacks``) decide
when each one runs.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping

import numpy as np
from absl import logging

from ganpipe import backend
from ganpipe.backend import array_checkpoints
from ganpipe.data.scaling import image_grid  # noqa: F401 (re-exported)
from ganpipe.lazy_tf import tf
from ganpipe.rundir import SAMPLE_GRID, atomic_write


class MetricsLog:
    """Appends one JSON object per logged step to metrics.jsonl, one whole line per write.

    On resume, rows logged after the restored checkpoint's step are dropped, so the log holds
    each step once.
    """

    def __init__(self, path: str, resume_step: int):
        self.path = path
        if os.path.exists(path):
            with open(path) as f:
                rows = [line for line in f if line.strip()]
            kept = []
            for line in rows:
                try:
                    if json.loads(line)["step"] <= resume_step:
                        kept.append(line if line.endswith("\n") else line + "\n")
                except (ValueError, KeyError):
                    continue  # A torn last line from a killed process.
            if len(kept) != len(rows):
                logging.info(
                    "metrics.jsonl: dropping %d row(s) logged after the checkpoint at step %d.",
                    len(rows) - len(kept),
                    resume_step,
                )
                atomic_write(path, "".join(kept))

    def write(self, row: Mapping[str, float]) -> None:
        line = json.dumps(dict(row), sort_keys=False) + "\n"
        # One write call in append mode: a line is never interleaved or half-written by us.
        with open(self.path, "a") as f:
            f.write(line)
            f.flush()


class TensorBoard:
    """Scalars and image grids as TensorBoard event files."""

    def __init__(self, logdir: str):
        self.plain = None
        if not backend.SUMMARY_OPS:
            self.plain = _plain_writer(logdir)
            return
        self.writer = tf.summary.create_file_writer(logdir)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        if self.plain is not None:
            if self.plain:
                for name, value in values.items():
                    self.plain.add_scalar(name, float(value), step=step)
                self.plain.flush()
            return
        with self.writer.as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(name, value)
        self.writer.flush()

    def image(self, step: int, name: str, grid: np.ndarray) -> None:
        if self.plain is not None:
            return  # The tensorboard package's own writer has no images; samples/ has them.
        with self.writer.as_default(step=step):
            tf.summary.image(name, grid[None], max_outputs=1)
        self.writer.flush()

    def close(self) -> None:
        if self.plain is None:
            self.writer.close()
        elif self.plain:
            self.plain.close()


def _plain_writer(logdir: str):
    """The tensorboard package's own event writer (scalars), or False where it is missing."""
    try:
        from tensorboard.summary import Writer
    except ImportError:
        logging.warning(
            "The tensorboard package is not installed: no TensorBoard events under the %s "
            "backend (metrics.jsonl and plots/ have every metric).",
            backend.NAME,
        )
        return False
    logging.info(
        "TensorBoard under %s: scalars through the tensorboard package's writer; the sample "
        "grids are in samples/ only.", backend.NAME
    )  # fmt: skip
    return Writer(logdir)


class SampleGrid:
    """Draws the generator on the same fixed noise each time and writes samples/step_NNNNNN.png.

    For a class-conditional generator (``num_classes`` set) the grid has one row per class (row
    ``k`` is class ``k``) and one column per noise vector: each column holds one noise vector
    drawn in every class.
    """

    def __init__(
        self,
        directory: str,
        noise: np.ndarray,
        value_range: tuple[float, float],
        num_classes: int | None = None,
    ):
        self.directory = directory
        self.noise = noise
        self.value_range = value_range
        self.columns, self.labels = None, None  # image_grid's: as square as the count allows
        if num_classes is not None:
            self.columns = len(noise)
            self.noise = np.tile(noise, (num_classes, 1))
            self.labels = np.repeat(np.arange(num_classes, dtype=np.int32), len(noise))
        os.makedirs(directory, exist_ok=True)

    def __call__(self, generator, step: int, tensorboard: TensorBoard | None = None) -> str:
        inputs = self.noise if self.labels is None else [self.noise, self.labels]
        images = np.asarray(generator(inputs, training=False)).astype(np.float32)
        grid = image_grid(images, self.value_range, self.columns)
        path = os.path.join(self.directory, SAMPLE_GRID.format(step=step))
        atomic_write(path, backend.encode_png(grid))
        if tensorboard is not None:
            tensorboard.image(step, "samples", grid)
        return path


def fingerprint(variables) -> str:
    """A short SHA-256 of the variables' values in order: equal values, equal fingerprints.

    Logged at the end of a run so that workers (and runs) can be compared at a glance.
    """
    digest = hashlib.sha256()
    for variable in variables:
        digest.update(np.ascontiguousarray(np.asarray(variable)).tobytes())
    return digest.hexdigest()[:16]


def checkpointer(directory: str, checkpoint, keep: int):
    """The checkpointer of ``checkpoint``'s kind: TensorFlow's, or arrays in .npz files."""
    if isinstance(checkpoint, array_checkpoints.ArrayCheckpoint):
        return array_checkpoints.ArrayCheckpointer(directory, checkpoint, keep)
    return Checkpointer(directory, checkpoint, keep)


class Checkpointer:
    """tf.train.CheckpointManager over the run's checkpoints/ folder."""

    def __init__(self, directory: str, checkpoint: tf.train.Checkpoint, keep: int):
        self.checkpoint = checkpoint
        self.manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=keep)

    @property
    def latest(self) -> str | None:
        return self.manager.latest_checkpoint

    def restore(self) -> str | None:
        """Restores the newest readable checkpoint, if any; returns its path.

        A checkpoint whose files are missing, truncated or corrupt (a process killed while
        writing it) is skipped with a warning and the one before it is used. A checkpoint that
        reads fine but does not fit these models is an error: the config changed.
        """

        def does_not_fit(path, error):
            return ValueError(
                f"Checkpoint {path} does not fit the models and optimizers of this config "
                f"({error.__class__.__name__}: {str(error)[:500]}). Train in a new --output_dir."
            )

        def read(path):
            try:
                return self.checkpoint.restore(path).assert_existing_objects_matched()
            except (AssertionError, ValueError) as error:
                raise does_not_fit(path, error) from error

        unreadable = (
            tf.errors.OpError,  # DataLoss, NotFound, OutOfRange, InvalidArgument, ...
            IndexError,  # a truncated data file ("Read less bytes than requested")
            OSError,
        )
        return array_checkpoints.restore_newest(
            self.manager.directory, self.manager.checkpoints, read, unreadable,
            lambda status, path: None,  # read restored it
        )  # fmt: skip

    def save(self, step: int) -> str:
        path = self.manager.save(checkpoint_number=step)
        logging.info("Saved checkpoint %s", path)
        return path
