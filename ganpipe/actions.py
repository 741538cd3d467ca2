"""Side effects of training, called by the trainer at intervals: never inside a step.

Metrics log (JSON lines), TensorBoard summaries, sample grids from fixed noise, checkpoints, the
console progress line, and the non-finite guard.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import time
from collections.abc import Mapping

import numpy as np
import tensorflow as tf
from absl import logging

from ganpipe.rundir import atomic_write


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; the run stops before anything non-finite is saved."""


def check_finite(metrics: Mapping[str, float], step: int, last_checkpoint: str | None) -> None:
    """Raises NonFiniteLossError naming the side and step where a loss is not finite."""
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    if not bad:
        return
    sides = sorted(
        {
            "critic" if k.startswith(("critic", "gradient", "wasserstein")) else "generator"
            for k in bad
        }
    )
    raise NonFiniteLossError(
        f"Non-finite value(s) {bad} at step {step} on the {' and '.join(sides)} side. No "
        "checkpoint was written after it; the last good checkpoint is "
        f"{last_checkpoint or 'none (none saved)'}. "
        "Lower the learning rate, check the data scaling, or add a penalty/constraint, then rerun "
        "the same command to resume from that checkpoint."
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
    """Draws the generator on the same fixed noise each time and writes samples/step_NNNNNN.png."""

    def __init__(self, directory: str, noise: np.ndarray, value_range: tuple[float, float]):
        self.directory = directory
        self.noise = noise
        self.value_range = value_range
        os.makedirs(directory, exist_ok=True)

    def __call__(self, generator, step: int, tensorboard: TensorBoard | None = None) -> str:
        images = np.asarray(generator(self.noise, training=False))
        grid = image_grid(images, self.value_range)
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


class Checkpointer:
    """tf.train.CheckpointManager over the run's checkpoints/ folder."""

    def __init__(self, directory: str, checkpoint: tf.train.Checkpoint, keep: int):
        self.checkpoint = checkpoint
        self.manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=keep)

    @property
    def latest(self) -> str | None:
        return self.manager.latest_checkpoint

    def restore(self) -> str | None:
        """Restores the latest checkpoint, if any; returns its path."""
        path = self.manager.latest_checkpoint
        if path is None:
            return None
        try:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as error:
            raise ValueError(
                f"Checkpoint {path} does not fit the models and optimizers of this config "
                f"({error.__class__.__name__}: {str(error)[:500]}). Train in a new --output_dir."
            ) from error
        return path

    def save(self, step: int) -> str:
        path = self.manager.save(checkpoint_number=step)
        logging.info("Saved checkpoint %s", path)
        return path
