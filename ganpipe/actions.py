"""Side effects of training, called by the trainer at intervals: never inside a step.

Metrics log (JSON lines), TensorBoard summaries, sample grids from fixed noise, checkpoints, the
console progress line, and the non-finite guard.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import time
from collections.abc import Mapping

import numpy as np
import tensorflow as tf
from absl import logging

from ganpipe.rundir import atomic_write


class Preempted(RuntimeError):
    """SIGTERM or SIGINT arrived; the run checkpointed and stopped. Rerun to resume."""


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; the run stops before anything non-finite is saved."""


NONFINITE_GRADIENTS = ("critic_nonfinite_grads", "generator_nonfinite_grads")


def non_finite(metrics: Mapping[str, float]) -> dict[str, float]:
    """The metrics that show a NaN/Inf: a non-finite loss, or non-finite gradient entries."""
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    bad.update({k: metrics[k] for k in NONFINITE_GRADIENTS if metrics.get(k, 0.0) > 0})
    return bad


def non_finite_message(bad: Mapping[str, float], step: int, last_checkpoint: str | None) -> str:
    """Names the side(s), the step and the last good checkpoint."""
    sides = sorted(
        {
            "critic" if k.startswith(("critic", "gradient", "wasserstein")) else "generator"
            for k in bad
        }
    )
    return (
        f"Non-finite value(s) {dict(bad)} in the round ending at step {step}, on the "
        f"{' and '.join(sides)} side. No checkpoint was written after it; the last good checkpoint "
        f"is {last_checkpoint or 'none (none saved yet)'}. Lower the learning rate, check the data "
        "scaling, add a penalty or constraint, or set train.non_finite = 'skip'; rerunning the "
        "same command resumes from that checkpoint."
    )


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
        self.writer = tf.summary.create_file_writer(logdir)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        with self.writer.as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(name, value)
        self.writer.flush()

    def image(self, step: int, name: str, grid: np.ndarray) -> None:
        with self.writer.as_default(step=step):
            tf.summary.image(name, grid[None], max_outputs=1)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def image_grid(
    images: np.ndarray, value_range: tuple[float, float], columns: int = 8
) -> np.ndarray:
    """Tiles ``(n, h, w, c)`` images scaled in ``value_range`` into one uint8 grid, 2-pixel gaps."""
    low, high = value_range
    scaled = np.clip((images - low) / (high - low), 0.0, 1.0)
    scaled = np.round(scaled * 255.0).astype(np.uint8)
    n, h, w, c = scaled.shape
    rows = math.ceil(n / columns)
    pad = 2
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 255, np.uint8)
    for index in range(n):
        r, col = divmod(index, columns)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[top : top + h, left : left + w] = scaled[index]
    return grid


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
        self.columns, self.labels = 8, None
        if num_classes is not None:
            self.columns = len(noise)
            self.noise = np.tile(noise, (num_classes, 1))
            self.labels = np.repeat(np.arange(num_classes, dtype=np.int32), len(noise))
        os.makedirs(directory, exist_ok=True)

    def __call__(self, generator, step: int, tensorboard: TensorBoard | None = None) -> str:
        inputs = self.noise if self.labels is None else [self.noise, self.labels]
        images = np.asarray(generator(inputs, training=False)).astype(np.float32)
        grid = image_grid(images, self.value_range, self.columns)
        path = os.path.join(self.directory, f"step_{step:06d}.png")
        atomic_write(path, tf.io.encode_png(grid).numpy())
        if tensorboard is not None:
            tensorboard.image(step, "samples", grid)
        return path


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    return str(datetime.timedelta(seconds=int(round(seconds))))


class Progress:
    """The console progress line: step / total, rates, losses, time left."""

    def __init__(self, total_steps: int, start_step: int):
        self.total = total_steps
        self.last_step = start_step
        self.last_time = time.perf_counter()

    def rate(self, step: int) -> float:
        """Steps per second since the previous call; resets the interval."""
        now = time.perf_counter()
        elapsed = max(now - self.last_time, 1e-9)
        rate = (step - self.last_step) / elapsed
        self.last_step, self.last_time = step, now
        return rate

    def line(
        self,
        step: int,
        steps_per_second: float,
        row: Mapping[str, float],
        budget_left: float | None = None,
    ) -> str:
        """The progress line; ``budget_left`` (seconds) caps the time-left estimate."""
        left = (self.total - step) / steps_per_second if steps_per_second > 0 else math.inf
        if budget_left is not None:
            left = min(left, max(budget_left, 0.0))
        shown = " | ".join(
            f"{name} {row[name]:.4g}"
            for name in (
                "critic_loss",
                "generator_loss",
                "wasserstein_estimate",
                "gradient_penalty",
            )
            if name in row
        )
        return (
            f"step {step}/{self.total} ({100.0 * step / self.total:.1f}%) | "
            f"{steps_per_second:.1f} steps/s | {shown} | elapsed {_clock(row['elapsed_seconds'])} "
            f"| left {_clock(left)}"
        )


class Evaluation:
    """Scores the generator with the pinned evaluator against the data set's test split.

    Args:
        data_set: Which evaluator and test split (``load_images`` source name).
        latent: The run's noise distribution.
        value_range: The generator's output range, mapped to [0, 1] for the evaluator.
        num_samples: Images generated per evaluation (from fixed noise).
        seed: Seed of that noise and of KID's subsets.
        num_classes: A class-conditional run's classes: images are generated with labels
            uniform over them, and ``conditional_accuracy`` is added where the evaluator has the
            same classes.
    """

    def __init__(
        self,
        data_set: str,
        *,
        latent,
        value_range,
        num_samples: int,
        seed: int,
        num_classes: int | None = None,
    ):
        from ganpipe.eval import classifier, evaluation

        self._evaluation = evaluation
        self.evaluator = classifier.load_evaluator(data_set)
        self.reference = evaluation.real_reference(self.evaluator, data_set)
        self.latent, self.value_range = latent, value_range
        self.num_samples, self.seed = num_samples, seed
        self.num_classes = num_classes
        self.labels = evaluation.conditional_labels(self.evaluator, num_classes, num_samples, seed)

    def __call__(self, generator) -> dict[str, float]:
        from ganpipe.eval import quality

        images = self._evaluation.generate(
            generator,
            self.latent,
            self.num_samples,
            self.value_range,
            seed=self.seed,
            num_classes=self.num_classes,
        )
        scores = quality.score(
            self.evaluator, images, self.reference, seed=self.seed, labels=self.labels
        )
        scores.pop("num_samples")
        return {f"eval_{name}": float(value) for name, value in scores.items()}


def fingerprint(variables) -> str:
    """A short SHA-256 of the variables' values in order: equal values, equal fingerprints.

    Logged at the end of a run so that workers (and runs) can be compared at a glance.
    """
    digest = hashlib.sha256()
    for variable in variables:
        digest.update(np.ascontiguousarray(np.asarray(variable)).tobytes())
    return digest.hexdigest()[:16]


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
        candidates = list(reversed(self.manager.checkpoints))
        for index, path in enumerate(candidates):
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            except (
                tf.errors.OpError,  # DataLoss, NotFound, OutOfRange, InvalidArgument, ...
                IndexError,  # a truncated data file ("Read less bytes than requested")
                OSError,
            ) as error:
                following = candidates[index + 1] if index + 1 < len(candidates) else None
                logging.warning(
                    "Checkpoint %s is unreadable (%s: %s); %s.",
                    path,
                    type(error).__name__,
                    str(error).splitlines()[0][:200],
                    f"falling back to {following}" if following else "no older one is left",
                )
                continue
            except (AssertionError, ValueError) as error:
                raise ValueError(
                    f"Checkpoint {path} does not fit the models and optimizers of this config "
                    f"({error.__class__.__name__}: {str(error)[:500]}). Train in a new "
                    "--output_dir."
                ) from error
            return path
        if candidates:
            raise ValueError(
                f"No readable checkpoint in {self.manager.directory} (tried {candidates}). "
                "Move that folder away to restart the run from scratch."
            )
        return None

    def save(self, step: int) -> str:
        path = self.manager.save(checkpoint_number=step)
        logging.info("Saved checkpoint %s", path)
        return path
