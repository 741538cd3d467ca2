"""The alternating GAN trainer.

One round is ``critic_steps`` critic updates, then ``generator_steps`` generator updates. A whole
round runs inside one ``tf.function``; each update runs per replica through ``strategy.run``.
Per-example losses are summed per replica and divided by the GLOBAL batch, so Keras' optimizer,
which sums gradients over replicas, applies the gradient of the global-batch mean.

While one side trains the other is not modified: its forward pass uses ``stateless_call`` where it
has state (batch-norm statistics, dropout seeds), so none of its variables are written.

The step counter counts generator updates (``NUM_STEPS``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from ganpipe import actions, constraints, distribute, losses, optimizers
from ganpipe import data as data_module
from ganpipe.models import factories
from ganpipe.rundir import OPERATIVE_CONFIG_FILE, RunDirectory, atomic_write


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How many updates each side gets per round.

    Args:
        critic_steps: Critic updates per round, each on a fresh real batch and fresh noise.
        generator_steps: Generator updates per round, each on fresh noise.
        share_noise: The seed GAN's scheme: the generator update reuses the noise of the round's
            critic update (only with one update each).
    """

    critic_steps: int = 1
    generator_steps: int = 1
    share_noise: bool = False

    def __post_init__(self):
        for name in ("critic_steps", "generator_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Schedule.{name} must be an integer >= 1, got {value!r}.")
        if self.share_noise and (self.critic_steps, self.generator_steps) != (1, 1):
            raise ValueError(
                "Schedule.share_noise reuses one critic update's noise for one generator update; "
                f"it needs critic_steps = generator_steps = 1, got {self.critic_steps}/"
                f"{self.generator_steps}."
            )


_LATENT_DISTRIBUTIONS = ("normal", "uniform")


@dataclasses.dataclass(frozen=True)
class Latent:
    """The latent (noise) distribution.

    Args:
        distribution: ``normal`` (mean 0, standard deviation ``scale``) or ``uniform`` (on
            [-scale, scale]).
        scale: Standard deviation (normal) or half-width (uniform).
    """

    distribution: str = "normal"
    scale: float = 1.0

    def __post_init__(self):
        if self.distribution not in _LATENT_DISTRIBUTIONS:
            raise ValueError(
                f"Latent.distribution must be one of {_LATENT_DISTRIBUTIONS}, got "
                f"{self.distribution!r}."
            )
        if not math.isfinite(self.scale) or self.scale <= 0:
            raise ValueError(f"Latent.scale must be > 0, got {self.scale!r}.")

    def sample(self, rng, shape) -> tf.Tensor:
        """Draws noise of ``shape`` from ``rng`` (a ``tf.random.Generator`` or ReplicaRandom)."""
        if self.distribution == "normal":
            return rng.normal(shape, stddev=self.scale)
        return rng.uniform(shape, minval=-self.scale, maxval=self.scale)


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    return int(value)


def _scores(model_output) -> tf.Tensor:
    # Scores and everything downstream (losses, penalties) are float32 under mixed precision.
    return tf.cast(tf.reshape(model_output, [-1]), tf.float32)


PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def _frozen_call(model: keras.Model, inputs, training: bool = True):
    """Calls ``model`` without writing any of its variables (batch-norm statistics included)."""
    if not model.non_trainable_variables:
        return model(inputs, training=training)
    outputs, _ = model.stateless_call(
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        inputs,
        training=training,
    )
    return outputs


def _count_nonfinite(grads, optimizer=None) -> tf.Tensor:
    """Non-finite gradient entries of this replica (summed over replicas by the round).

    Under dynamic loss scaling (``mixed_float16``) overflowing scaled gradients are expected: the
    LossScaleOptimizer skips that update and lowers its scale, so they are not counted (the
    losses are still checked).
    """
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return tf.constant(0.0)
    grads = [tf.cast(g, tf.float32) for g in grads if g is not None]

    def count():
        return tf.add_n([tf.reduce_sum(tf.cast(~tf.math.is_finite(g), tf.float32)) for g in grads])

    # One read of every gradient: a sum is finite whenever every entry is. Only a non-finite sum
    # (a bad entry, or finite entries overflowing float32) pays for the exact count.
    total = tf.add_n([tf.reduce_sum(g) for g in grads])
    return tf.cond(tf.math.is_finite(total), lambda: tf.constant(0.0), count)


# Stateless random streams: one per use, so no two uses ever share numbers.
_CRITIC_NOISE, _GENERATOR_NOISE, _PENALTY = 0, 1, 2
# Labels of generated images in a class-conditional run: one (batch, 2) draw per update counter,
# column 0 for the critic's fakes, column 1 for the generator update's.
_LABELS = 3
_CRITIC_SIDE, _GENERATOR_SIDE = 0, 1
_STREAMS = 4


class ReplicaRandom:
    """Random numbers for one update, identical however many replicas share the global batch.

    Each draw is made for the whole global batch from the stateless seed
    ``(seed, counter * 4 + stream)``, and each replica keeps its own rows. So replicas get
    different numbers, a run on N replicas draws exactly what a run on one replica draws, and the
    numbers depend only on the seed and the update counter, which checkpoints restore: a resumed
    run continues the same streams. It quacks like ``tf.random.Generator`` (``normal``,
    ``uniform``) with per-replica shapes, so losses and penalties take either.

    Args:
        seed: The run's seed.
        counter: The update's index (the optimizer's iteration count).
        stream: Which use (critic noise, generator noise, penalty).
        global_batch: The global batch; the leading dimension asked for must be its share.
    """

    def __init__(self, seed: int, counter, stream: int, global_batch: int):
        counter = tf.cast(counter, tf.int64)
        self._seed = tf.stack([tf.constant(seed, tf.int64), counter * _STREAMS + stream])
        self._global_batch = global_batch

    def _slice(self, draw, shape, **kwargs):
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context is not None else 1
        per_replica = self._global_batch // replicas
        shape = tf.convert_to_tensor(shape, tf.int32)
        full_shape = tf.concat([[self._global_batch], shape[1:]], axis=0)
        full = draw(full_shape, seed=self._seed, **kwargs)
        if replicas == 1:
            return full
        start = tf.cast(context.replica_id_in_sync_group, tf.int32) * per_replica
        return full[start : start + per_replica]

    def normal(self, shape, mean=0.0, stddev=1.0, dtype=tf.float32):
        return self._slice(tf.random.stateless_normal, shape, mean=mean, stddev=stddev, dtype=dtype)

    def uniform(self, shape, minval=0.0, maxval=1.0, dtype=tf.float32):
        return self._slice(
            tf.random.stateless_uniform, shape, minval=minval, maxval=maxval, dtype=dtype
        )

    def integers(self, shape, maxval: int, dtype=tf.int32):
        """Integers uniform on ``[0, maxval)``."""
        return self._slice(tf.random.stateless_uniform, shape, minval=0, maxval=maxval, dtype=dtype)


def _add(sums: dict, metrics: dict) -> dict:
    """Adds one update's (or round's) metrics to running sums, key by key."""
    return {k: v + metrics[k] for k, v in sums.items()}


class _Steps:
    """The per-replica update functions and the round that runs them; built once per run."""

    def __init__(
        self,
        *,
        strategy,
        generator,
        critic,
        loss,
        generator_optimizer,
        critic_optimizer,
        schedule,
        latent,
        constraint,
        penalty,
        seed,
        global_batch,
        step,
        num_classes=None,
        generator_ema=None,
        ema_decay=None,
        ema_start=0,
    ):
        self.strategy = strategy
        self.generator = generator
        self.critic = critic
        self.loss = loss
        self.g_opt = generator_optimizer
        self.c_opt = critic_optimizer
        self.schedule = schedule
        self.latent = latent
        self.constraint = constraint
        self.penalty = penalty
        self.seed = int(seed)
        self.batch = int(global_batch)
        self.global_batch = float(global_batch)
        self.step = step
        self.latent_dim = factories.latent_dim(generator)
        self.num_classes = num_classes
        self.ema = generator_ema
        self.ema_decay, self.ema_start = ema_decay, int(ema_start)
        if generator_ema is not None:
            # Trainable weights are averaged after every generator update; the rest (batch-norm
            # moving statistics) are copied from the live model once per round.
            trainable = {id(v) for v in generator.trainable_variables}
            pairs = list(zip(generator_ema.variables, generator.variables))
            self._ema_weights = [(e, v) for e, v in pairs if id(v) in trainable]
            self._ema_state = [(e, v) for e, v in pairs if id(v) not in trainable]
        self._critic_update = self.critic_update
        self._generator_update = self.generator_update
        self._shared_update = self.shared_update

    def compile_updates(self) -> None:
        """XLA-compiles the per-replica updates (``train.jit_compile``); the round around them,
        which reads the input iterator, stays a plain tf.function."""
        self._critic_update = tf.function(self.critic_update, jit_compile=True)
        self._generator_update = tf.function(self.generator_update, jit_compile=True)
        self._shared_update = tf.function(self.shared_update, jit_compile=True)

    def _mean(self, per_example):
        return tf.reduce_sum(per_example) / self.global_batch

    def _random(self, optimizer, stream):
        return ReplicaRandom(self.seed, optimizer.iterations, stream, self.batch)

    def _split(self, batch):
        """(images, labels) of a data batch; labels are None in an unconditional run."""
        if self.num_classes is None:
            return batch, None
        return batch

    @staticmethod
    def _inputs(x, labels):
        """A model's input: ``x`` alone, or ``[x, labels]`` for a conditional model."""
        return x if labels is None else [x, labels]

    def _fake_labels(self, optimizer, side):
        """Labels for generated images, uniform over the classes (None when unconditional)."""
        if self.num_classes is None:
            return None
        batch = self.batch // self.strategy.num_replicas_in_sync
        draw = self._random(optimizer, _LABELS).integers([batch, 2], self.num_classes)
        return draw[:, side]

    def critic_update(self, real, noise=None, fake_labels=None):
        real, real_labels = self._split(real)
        batch = tf.shape(real)[0]
        if noise is None:
            noise = self.latent.sample(
                self._random(self.c_opt, _CRITIC_NOISE), [batch, self.latent_dim]
            )
        if fake_labels is None:
            fake_labels = self._fake_labels(self.c_opt, _CRITIC_SIDE)
        fake = _frozen_call(self.generator, self._inputs(noise, fake_labels))
        variables = self.critic.trainable_variables
        with tf.GradientTape() as tape:
            real_scores = _scores(self.critic(self._inputs(real, real_labels), training=True))
            fake_scores = _scores(self.critic(self._inputs(fake, fake_labels), training=True))
            loss = self._mean(self.loss.critic(real_scores, fake_scores))
            total = loss
            if self.penalty is not None:
                penalty = self._mean(
                    self.penalty(
                        # Interpolates are scored with the real images' labels.
                        lambda x: self.critic(self._inputs(x, real_labels), training=True),
                        real,
                        fake,
                        self._random(self.c_opt, _PENALTY),
                    )
                )
                total = loss + penalty
            # Scaled inside the tape (mixed_float16's loss scaling), or the product is not
            # recorded and every gradient is None.
            scaled = self.c_opt.scale_loss(total)
        grads = tape.gradient(scaled, variables)
        bad_grads = _count_nonfinite(grads, self.c_opt)
        self.c_opt.apply_gradients(zip(grads, variables))
        if self.constraint is not None:
            distribute.update_variables(variables, self.constraint)
        metrics = {
            "critic_loss": loss,
            "critic_real": self._mean(real_scores),
            "critic_fake": self._mean(fake_scores),
            "critic_nonfinite_grads": bad_grads,
        }
        if self.loss.wasserstein_estimate:
            metrics["wasserstein_estimate"] = metrics["critic_real"] - metrics["critic_fake"]
        if self.penalty is not None:
            metrics["gradient_penalty"] = penalty
        return metrics

    def generator_update(self, noise=None, labels=None):
        if noise is None:
            batch = self.batch // self.strategy.num_replicas_in_sync
            noise = self.latent.sample(
                self._random(self.g_opt, _GENERATOR_NOISE), [batch, self.latent_dim]
            )
        if labels is None:
            labels = self._fake_labels(self.g_opt, _GENERATOR_SIDE)
        variables = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            fake = self.generator(self._inputs(noise, labels), training=True)
            scores = _frozen_call(self.critic, self._inputs(fake, labels))
            loss = self._mean(self.loss.generator(_scores(scores)))
            scaled = self.g_opt.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        bad_grads = _count_nonfinite(grads, self.g_opt)
        self.g_opt.apply_gradients(zip(grads, variables))
        self.update_ema()
        return {"generator_loss": loss, "generator_nonfinite_grads": bad_grads}

    def update_ema(self):
        """ema = decay * ema + (1 - decay) * live for every trainable generator weight, after a
        generator update; during the warm-up (the first ``ema_start`` updates) ema = live.

        Runs in cross-replica context through the strategy (``distribute.update_variables``),
        so every mirrored copy of the average gets the same value, computed on its own device.
        """
        if self.ema is None:
            return
        updates = self.g_opt.iterations  # generator updates so far, this one included

        def average(ema, live):
            decay = tf.where(updates > self.ema_start, self.ema_decay, 0.0)
            decay = tf.cast(decay, ema.dtype)
            return decay * ema + (1.0 - decay) * tf.cast(live, ema.dtype)

        distribute.update_variables(
            [e for e, _ in self._ema_weights], average, [v for _, v in self._ema_weights]
        )

    def copy_ema_state(self):
        """Copies the live generator's non-trainable state (batch-norm moving statistics) into
        the average; called in cross-replica context after ``average_replica_state``."""
        if self.ema is None:
            return
        for ema, live in self._ema_state:
            ema.value.assign(live.value)

    def shared_update(self, real):
        batch = tf.shape(self._split(real)[0])[0]
        noise = self.latent.sample(
            self._random(self.c_opt, _CRITIC_NOISE), [batch, self.latent_dim]
        )
        # The generator update reuses the critic's fakes' noise and, when conditional, labels.
        labels = self._fake_labels(self.c_opt, _CRITIC_SIDE)
        metrics = self.critic_update(real, noise, labels)
        metrics.update(self.generator_update(noise, labels))
        return metrics

    def _reduce(self, per_replica):
        return {
            k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
            for k, v in per_replica.items()
        }

    def average_replica_state(self):
        """Makes every replica's copy of the models' non-trainable state (batch-norm moving
        statistics) their mean.

        Keras 3 writes such a variable per replica (aggregation NONE), so without this the copies
        drift apart under a multi-replica strategy and what is saved or evaluated is replica 0's
        estimate from its share of the batch alone. The moving-average update is linear in the
        batch statistics, so averaging once per round equals averaging after every update.
        """
        variables = [
            v.value
            for v in (*self.generator.non_trainable_variables, *self.critic.non_trainable_variables)
            if tf.as_dtype(v.dtype).is_floating
        ]
        if not variables or self.strategy.num_replicas_in_sync == 1:
            return
        local = self.strategy.run(lambda: [tf.identity(v) for v in variables])
        for variable, value in zip(variables, local):
            variable.assign(self.strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None))

    def round(self, iterator, generator_steps):
        """One round; returns the round's mean metrics (global-batch means)."""
        if self.schedule.share_noise:
            metrics = self._reduce(self.strategy.run(self._shared_update, args=(next(iterator),)))
            self.step.assign_add(tf.cast(generator_steps, tf.int64))
            self.average_replica_state()
            self.copy_ema_state()
            return metrics

        # Each side's first update runs before its loop, so the loop's accumulators exist.
        def critic_once():
            return self._reduce(self.strategy.run(self._critic_update, args=(next(iterator),)))

        def generator_once():
            return self._reduce(self.strategy.run(self._generator_update))

        critic_sums = critic_once()
        for _ in tf.range(self.schedule.critic_steps - 1):
            critic_sums = _add(critic_sums, critic_once())
        generator_sums = generator_once()
        for _ in tf.range(generator_steps - 1):
            generator_sums = _add(generator_sums, generator_once())
        self.step.assign_add(tf.cast(generator_steps, tf.int64))
        self.average_replica_state()
        self.copy_ema_state()
        result = {k: v / self.schedule.critic_steps for k, v in critic_sums.items()}
        result.update(
            {k: v / tf.cast(generator_steps, tf.float32) for k, v in generator_sums.items()}
        )
        return result


def _fused_rounds(steps: _Steps):
    def rounds(iterator, count, generator_steps):
        """``count`` rounds in one call; returns their mean metrics."""
        sums = steps.round(iterator, generator_steps)
        for _ in tf.range(count - 1):
            sums = _add(sums, steps.round(iterator, generator_steps))
        return {k: v / tf.cast(count, v.dtype) for k, v in sums.items()}

    return rounds


def _check_compatible(generator, critic, loss, image_shape, value_range) -> None:
    out_shape = tuple(generator.output_shape[1:])
    if out_shape != tuple(image_shape):
        raise ValueError(
            f"The generator outputs images of shape {out_shape} but the data's images are "
            f"{tuple(image_shape)}. Change the generator's last blocks (e.g. its reshape "
            "target_shape) or the data's image_size/channels."
        )
    bounded = factories.output_range(generator)
    if bounded is not None and tuple(float(v) for v in value_range) != bounded:
        raise ValueError(
            f"The generator ends in {factories.final_activation(generator)} (outputs in "
            f"{list(bounded)}) but the data is scaled to {list(value_range)}. Set "
            f"train.value_range (the VALUE_RANGE macro) = {bounded}, or change the generator's "
            "final activation."
        )
    if bounded is None:
        logging.info(
            "The generator's output is not bounded by a final sigmoid/tanh; data scaled to %s.",
            list(value_range),
        )
    if loss.uses_sigmoid and factories.final_activation(critic) == "sigmoid":
        raise ValueError(
            f"The critic ends in a sigmoid, but the {loss.name} loss applies the sigmoid itself "
            "(in the numerically safe softplus form). Remove the critic's final sigmoid."
        )


LIVE_GENERATOR_FILE = "generator_live.keras"


def _save_model(model: keras.Model, path: str) -> None:
    """Saves ``model`` to ``path`` through a temporary file, as a trainable model (the weight
    average is frozen only while it trains)."""
    tmp = os.path.join(os.path.dirname(path), ".generator.tmp.keras")
    frozen = not model.trainable
    model.trainable = True
    try:
        model.save(tmp)
    finally:
        model.trainable = not frozen
    os.replace(tmp, path)
    logging.info("Saved the generator to %s", path)


def _ema_settings(decay, start) -> tuple[float | None, int]:
    """Validates ``train.generator_ema`` (the decay, or None) and ``train.generator_ema_start``."""
    if decay is not None:
        if (
            not isinstance(decay, (int, float, np.floating))
            or isinstance(decay, bool)
            or not 0.0 < float(decay) < 1.0
        ):
            raise ValueError(
                f"train.generator_ema is the decay of the generator's weight average and must be "
                f"a number strictly between 0 and 1 (0.999 is common), or None to turn the "
                f"average off; got {decay!r}."
            )
        decay = float(decay)
    if not isinstance(start, (int, np.integer)) or isinstance(start, bool) or start < 0:
        raise ValueError(
            f"train.generator_ema_start (generator updates during which the average copies the "
            f"live weights) must be an integer >= 0, got {start!r}."
        )
    if decay is None and start:
        raise ValueError(
            f"train.generator_ema_start = {start} is set but train.generator_ema is None. Set "
            "train.generator_ema (e.g. 0.999) to average the generator's weights, or drop the "
            "start."
        )
    return decay, int(start)


def _averaged_copy(generator: keras.Model, strategy, precision: str) -> keras.Model:
    """A non-trainable copy of ``generator`` (same architecture and policy, built under the
    strategy's scope) holding the live weights: the start of the exponential moving average."""
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        with strategy.scope():
            copy = keras.models.clone_model(generator)
            if [tuple(v.shape) for v in copy.variables] != [
                tuple(v.shape) for v in generator.variables
            ]:
                raise ValueError(
                    "The generator could not be copied for train.generator_ema: the copy's "
                    "weights do not match the generator's. Set train.generator_ema = None."
                )
            copy.trainable = False
            for target, source in zip(copy.variables, generator.variables):
                target.assign(source)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    return copy


def _check_labels(images: data_module.ImageArray, num_classes: int) -> None:
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


class _SignalFlag:
    """Turns SIGTERM/SIGINT into a flag the training loop checks after each round.

    The round in flight finishes; the loop then checkpoints, flushes and stops. A second signal
    of the same kind falls through to Python's default handling. Installed only in the main
    thread (signal handlers cannot be set elsewhere).
    """

    def __init__(self):
        self.received: signal.Signals | None = None
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        del frame
        self.received = signal.Signals(signum)
        logging.warning(
            "%s received: finishing this round, then checkpointing and stopping.",
            self.received.name,
        )
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))

    def restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


class Trainer:
    """Builds everything a run needs from its parts, then trains: ``Trainer(...).fit(output_dir)``.

    Construction validates every setting, loads the data and builds the models and optimizers
    under the strategy's scope, writing nothing, so a bad config fails before any compute is spent
    or any file is touched. ``fit`` owns the run directory and the side effects; ``train_round``
    is one round with none (tests drive it directly). Registered in gin as ``train``.

    Args:
        num_steps: Generator updates to reach in total (``NUM_STEPS``).
        batch_size: The global batch, over all replicas (``BATCH_SIZE``).
        generator: Factory returning the generator (gin: ``@build_generator``).
        critic: Factory taking ``input_shape`` and returning the critic (``@build_critic``).
        data: Factory returning the training images (``@load_images``).
        loss: A ``ganpipe.losses`` name or instance.
        generator_optimizer: Optimizer factory, name or instance (``@generator/Adam``).
        critic_optimizer: Likewise for the critic.
        value_range: Pixel range the data is scaled to; must match the generator's output.
        schedule: Updates per round for each side.
        latent: Noise distribution.
        critic_constraint: Applied to every critic weight after every critic update (clipping).
        penalty: Added to the critic loss (gradient penalty).
        strategy: A ``ganpipe.distribute`` strategy name, or a strategy.
        seed: Seeds weights, noise and data order.
        num_classes: None for an unconditional GAN; an integer makes the run class-conditional:
            the data must have labels in ``[0, num_classes)``, both model factories get
            ``num_classes`` (set ``build_generator.conditioning`` and
            ``build_critic.conditioning``), the critic sees each real image with its label and
            generated images with labels drawn uniformly from the classes, and sample grids
            show one row per class.
        log_every: Steps between metrics rows and progress lines.
        sample_every: Steps between sample grids.
        checkpoint_every: Steps between checkpoints.
        keep_checkpoints: Checkpoints kept.
        num_samples: Images in each sample grid (drawn from the same fixed noise every time).
        non_finite: What a NaN/Inf loss or gradient does: ``stop`` (default: stop at once, naming
            the side, the step and the last good checkpoint; nothing non-finite is saved) or
            ``skip`` (undo that round's updates and go on with the next data; the run still
            stops after ``max_skips`` consecutive skips). ``skip`` keeps a host copy of every
            variable, refreshed after each good round.
        max_skips: Consecutive skipped rounds tolerated under ``skip``.
        deterministic: Turn on TensorFlow's op determinism (for the whole process), so that runs
            and resumed runs agree bit for bit even where multithreaded kernels (the gradient
            penalty's second-order convolution gradients) would otherwise differ in the last
            bits. It can slow some kernels.
        precision: ``float32``, or a Keras mixed-precision policy for both models:
            ``mixed_bfloat16`` (CPUs with AMX, TPUs, recent GPUs) or ``mixed_float16`` (GPUs;
            Keras' LossScaleOptimizer then wraps both optimizers). Weights, critic scores and
            losses stay float32.
        evaluator: Data set whose pinned evaluator scores samples during training (for
            example ``'fashion_mnist'``); None turns evaluation off.
        eval_every: Steps between evaluations (0: never). Each writes ``eval_*`` metrics and
            keeps the checkpoint with the lowest FD in ``checkpoints/best``.
        eval_samples: Generated images per evaluation.
        max_train_seconds: Optional wall-clock budget for the whole run (resumes included): on
            reaching it, training stops as if at the last step (checkpoint, samples, generator).
        rounds_per_call: Rounds fused into one tf.function call, so that small models are not
            bound by the per-call cost of Python and the runtime. Logging, checkpoints, the
            non-finite check (and what ``skip`` undoes) and signals act between calls; a call
            never runs past the next ``log_every`` boundary, and a logged row holds the mean
            metrics of that call's rounds.
        jit_compile: XLA-compile each per-replica critic and generator update. On one replica
            only: with several, it is turned off with a warning (the all-reduces run outside XLA
            here). XLA's stateless random generators give other numbers than TensorFlow's kernels
            for the same seed, so an XLA run draws other noise than a plain run: reproducible and
            resumable with the same setting, not equal to the run without it.
        generator_ema: The decay of an exponential moving average of the generator's weights
            (Karras et al., 2018; Yazici et al., 2019), e.g. 0.999; None (default) turns it off.
            The average is a separate, non-trainable copy of the generator, started from the
            live weights and updated after every generator update: ``ema = decay * ema + (1 -
            decay) * live`` for every trainable weight, while batch-norm moving statistics are
            copied from the live generator. Samples, evaluation (and the best-FD checkpoint),
            ``generator.keras`` and ``python -m ganpipe.evaluate`` then use the average; the
            live generator is saved as ``generator_live.keras``; checkpoints hold both. Training
            itself is unchanged.
        generator_ema_start: Generator updates during which the average just copies the live
            weights (a warm-up); averaging starts with update ``generator_ema_start + 1``.
    """

    def __init__(
        self,
        *,
        num_steps: int,
        batch_size: int,
        generator: Callable[[], keras.Model],
        critic: Callable[..., keras.Model],
        data: Callable[[], data_module.ImageArray],
        loss: Any,
        generator_optimizer: Any,
        critic_optimizer: Any,
        value_range: Sequence[float] = (0.0, 1.0),
        schedule: Schedule = Schedule(),
        latent: Latent = Latent(),
        critic_constraint: Any = None,
        penalty: Any = None,
        strategy: str | tf.distribute.Strategy = "auto",
        seed: int = 0,
        num_classes: int | None = None,
        log_every: int = 100,
        sample_every: int = 1000,
        checkpoint_every: int = 1000,
        keep_checkpoints: int = 3,
        num_samples: int = 64,
        precision: str = "float32",
        non_finite: str = "stop",
        max_skips: int = 10,
        deterministic: bool = False,
        evaluator: str | None = None,
        eval_every: int = 0,
        eval_samples: int = 2000,
        max_train_seconds: float | None = None,
        rounds_per_call: int = 1,
        jit_compile: bool = False,
        generator_ema: float | None = None,
        generator_ema_start: int = 0,
    ):
        # First: a multi-worker strategy must configure TensorFlow before any op runs.
        self.strategy = (
            distribute.make_strategy(strategy) if isinstance(strategy, str) else strategy
        )
        self.num_steps = _positive_int("NUM_STEPS (train.num_steps)", num_steps)
        self.batch_size = _positive_int("BATCH_SIZE (train.batch_size)", batch_size)
        for name, value in (
            ("log_every", log_every),
            ("sample_every", sample_every),
            ("checkpoint_every", checkpoint_every),
            ("keep_checkpoints", keep_checkpoints),
            ("num_samples", num_samples),
        ):
            _positive_int(f"train.{name}", value)
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise ValueError(f"train.seed must be an integer, got {seed!r}.")
        if not isinstance(schedule, Schedule):
            raise ValueError(f"train.schedule must be a Schedule (@Schedule()), got {schedule!r}.")
        if not isinstance(latent, Latent):
            raise ValueError(f"train.latent must be a Latent (@Latent()), got {latent!r}.")
        self.rounds_per_call = _positive_int("train.rounds_per_call", rounds_per_call)
        self.ema_decay, self.ema_start = _ema_settings(generator_ema, generator_ema_start)
        if not isinstance(jit_compile, bool):
            raise ValueError(f"train.jit_compile must be True or False, got {jit_compile!r}.")
        if jit_compile and deterministic:
            raise ValueError(
                "train.jit_compile = True and train.deterministic = True cannot be combined: XLA "
                "has no deterministic kernels for some gradients (max-pooling's among them). "
                "Turn one of them off."
            )
        self.log_every, self.sample_every = log_every, sample_every
        self.checkpoint_every, self.keep_checkpoints = checkpoint_every, keep_checkpoints
        self.num_samples, self.seed = num_samples, int(seed)
        if max_train_seconds is not None and not max_train_seconds > 0:
            raise ValueError(
                f"train.max_train_seconds must be > 0 or None, got {max_train_seconds!r}."
            )
        self.max_train_seconds = max_train_seconds
        if not isinstance(eval_every, int) or eval_every < 0:
            raise ValueError(f"train.eval_every must be an integer >= 0, got {eval_every!r}.")
        _positive_int("train.eval_samples", eval_samples)
        if num_classes is not None:
            _positive_int("train.num_classes", num_classes)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.eval_every = eval_every if evaluator else 0
        self.eval_samples = eval_samples
        self._evaluation = None
        if evaluator and eval_every:
            # Loaded now so a missing evaluator or test split stops the run before training.
            self._evaluation = actions.Evaluation(
                evaluator,
                latent=latent,
                value_range=tuple(float(v) for v in value_range),
                num_samples=eval_samples,
                seed=self.seed,
                num_classes=self.num_classes,
            )
        elif eval_every and not evaluator:
            logging.warning("train.eval_every is set but train.evaluator is None: no evaluation.")
        distribute.split_global_batch(self.batch_size, self.strategy)
        self.best_fd = tf.Variable(np.inf, dtype=tf.float64, trainable=False, name="best_fd")
        self.schedule, self.latent = schedule, latent
        self.value_range = tuple(float(v) for v in value_range)
        self.loss = losses.get(loss)
        self.constraint = constraints.get_constraint(critic_constraint)
        self.penalty = constraints.get_penalty(penalty)

        if deterministic:
            tf.config.experimental.enable_op_determinism()
            logging.info("TensorFlow op determinism is on (train.deterministic = True).")
        # Seeds Python, NumPy, TensorFlow and Keras before anything random is created (the data
        # order included), so a run is reproducible from `seed` alone.
        keras.utils.set_random_seed(self.seed)
        self.images = data()
        logging.info("Data: %s", data_module.describe(self.images))
        if self.num_classes is not None:
            _check_labels(self.images, self.num_classes)
        self._start_batch = 0

        if non_finite not in ("stop", "skip"):
            raise ValueError(f"train.non_finite must be 'stop' or 'skip', got {non_finite!r}.")
        self.non_finite = non_finite
        self.max_skips = _positive_int("train.max_skips", max_skips)
        if precision not in PRECISIONS:
            raise ValueError(f"train.precision must be one of {PRECISIONS}, got {precision!r}.")
        self.precision = precision
        previous_policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy(precision)
        try:
            with self.strategy.scope():
                # A conditional run passes the class count to both factories.
                classes = {} if self.num_classes is None else {"num_classes": self.num_classes}
                self.generator = generator(**classes)
                self.critic = critic(input_shape=tuple(self.images.images.shape[1:]), **classes)
        finally:
            keras.config.set_dtype_policy(previous_policy)
        self.generator_ema = None
        if self.ema_decay is not None:
            # Built last, so the live models' initial weights do not depend on the switch.
            self.generator_ema = _averaged_copy(self.generator, self.strategy, precision)
        with self.strategy.scope():
            _check_compatible(
                self.generator,
                self.critic,
                self.loss,
                self.images.images.shape[1:],
                self.value_range,
            )
            self.generator_optimizer = optimizers.get(generator_optimizer, "generator")
            self.critic_optimizer = optimizers.get(critic_optimizer, "critic")
            if precision == "mixed_float16":
                # float16 gradients underflow without loss scaling (Micikevicius et al., 2018).
                self.generator_optimizer = keras.optimizers.LossScaleOptimizer(
                    self.generator_optimizer
                )
                self.critic_optimizer = keras.optimizers.LossScaleOptimizer(self.critic_optimizer)
            self.generator_optimizer.build(self.generator.trainable_variables)
            self.critic_optimizer.build(self.critic.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.elapsed = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="elapsed")
        logging.info(
            "Generator: %d parameters; critic: %d parameters; loss %s; %d critic / %d generator "
            "updates per round; constraint %s; penalty %s.",
            self.generator.count_params(),
            self.critic.count_params(),
            self.loss.name,
            schedule.critic_steps,
            schedule.generator_steps,
            self.constraint,
            self.penalty,
        )
        self._steps = _Steps(
            strategy=self.strategy,
            generator=self.generator,
            critic=self.critic,
            loss=self.loss,
            generator_optimizer=self.generator_optimizer,
            critic_optimizer=self.critic_optimizer,
            schedule=schedule,
            latent=latent,
            constraint=self.constraint,
            penalty=self.penalty,
            seed=self.seed,
            global_batch=self.batch_size,
            step=self.step,
            num_classes=self.num_classes,
            generator_ema=self.generator_ema,
            ema_decay=self.ema_decay,
            ema_start=self.ema_start,
        )
        if jit_compile and self.strategy.num_replicas_in_sync > 1:
            logging.warning(
                "train.jit_compile = True is ignored on %d replicas: XLA is used here only for "
                "one replica's updates. Training without XLA.",
                self.strategy.num_replicas_in_sync,
            )
            jit_compile = False
        if jit_compile:
            self._steps.compile_updates()
            logging.info("XLA: the critic and generator updates are compiled (jit_compile).")
        self.jit_compile = jit_compile
        self._round = tf.function(self._steps.round)
        self._rounds = tf.function(_fused_rounds(self._steps))
        self._iterator = self._input_iterator(start_batch=0)

    @property
    def dataset(self) -> tf.data.Dataset:
        """The global-batch stream from where training starts (or resumed), undistributed."""
        return self._dataset(self._start_batch)

    def _dataset(
        self, start_batch: int, replicas: int = 1, local_replicas: Sequence[int] | None = None
    ) -> tf.data.Dataset:
        return data_module.make_training_dataset(
            images=self.images,
            batch_size=self.batch_size,
            value_range=self.value_range,
            seed=self.seed,
            start_batch=start_batch,
            replicas=replicas,
            local_replicas=local_replicas,
            with_labels=self.num_classes is not None,
        )

    def _input_iterator(self, start_batch: int):
        """The distributed input: each replica gets its block of every global batch.

        Sharding is by data and explicit: each worker's pipeline gathers only the rows of its own
        replicas (replica r of N takes rows [r * B/N, (r + 1) * B/N) of global batch B), so the
        replicas together see exactly the global batch one replica would, with nothing dropped or
        repeated within an epoch beyond each epoch's final partial batch.
        """
        replicas = self.strategy.num_replicas_in_sync

        def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
            local = replicas // context.num_input_pipelines
            first = context.input_pipeline_id * local
            return self._dataset(start_batch, replicas, range(first, first + local))

        return iter(self.strategy.distribute_datasets_from_function(dataset_fn))

    @property
    def sampling_generator(self) -> keras.Model:
        """The generator that samples, evaluation and ``generator.keras`` use: the moving
        average of the weights when ``train.generator_ema`` is set, else the live generator."""
        return self.generator if self.generator_ema is None else self.generator_ema

    def _state(self) -> list:
        return [
            *self.generator.variables,
            *(self.generator_ema.variables if self.generator_ema is not None else ()),
            *self.critic.variables,
            *self.generator_optimizer.variables,
            *self.critic_optimizer.variables,
            self.step,
        ]

    def _refuse_checkpoints_without_average(self, directory: str) -> None:
        """With ``train.generator_ema`` on, refuses to resume from a checkpoint written without
        the weight average: a run does not switch the average on midway."""
        latest = tf.train.latest_checkpoint(directory)
        if self.generator_ema is None or latest is None:
            return
        try:
            names = [name for name, _ in tf.train.list_variables(latest)]
        except (tf.errors.OpError, OSError, ValueError):
            return  # Unreadable: Checkpointer.restore falls back to an older one or says so.
        if not any(name.startswith("generator_ema/") for name in names):
            raise ValueError(
                f"Checkpoint {latest} holds no generator weight average: it was written with "
                "train.generator_ema = None, and a run does not switch the average on midway. "
                "Train in a new --output_dir, or set train.generator_ema = None to resume it."
            )

    def _snapshot(self) -> list[np.ndarray]:
        return [np.array(v.numpy() if hasattr(v, "numpy") else v) for v in self._state()]

    def _restore_snapshot(self, values: list[np.ndarray]) -> None:
        for variable, value in zip(self._state(), values):
            variable.assign(value)

    def train_critic(self) -> dict[str, float]:
        """One critic update on the next real batch, nothing else; returns its metrics."""
        if not hasattr(self, "_critic_fn"):
            self._critic_fn = tf.function(
                lambda it: self._steps._reduce(
                    self.strategy.run(self._steps.critic_update, args=(next(it),))
                )
            )
        return {k: float(v) for k, v in self._critic_fn(self._iterator).items()}

    def train_generator(self) -> dict[str, float]:
        """One generator update, nothing else; returns its metrics."""
        if not hasattr(self, "_generator_fn"):

            def generator_once():
                metrics = self._steps._reduce(self.strategy.run(self._steps.generator_update))
                self._steps.copy_ema_state()
                return metrics

            self._generator_fn = tf.function(generator_once)
        return {k: float(v) for k, v in self._generator_fn().items()}

    def train_rounds(self, count: int, generator_steps: int | None = None) -> dict[str, float]:
        """Runs ``count`` rounds in one call; returns their mean metrics."""
        steps = self.schedule.generator_steps if generator_steps is None else generator_steps
        metrics = self._rounds(self._iterator, tf.constant(count), tf.constant(steps))
        return {k: float(v) for k, v in metrics.items()}

    def _rounds_for(self, current: int, limit: int) -> tuple[int, int]:
        """(rounds, generator steps per round) of the next call from step ``current``."""
        per_round = self.schedule.generator_steps
        left = limit - current
        if left < per_round:
            return 1, left
        next_log = (current // self.log_every + 1) * self.log_every
        to_log = -(-(next_log - current) // per_round)
        return max(1, min(self.rounds_per_call, left // per_round, to_log)), per_round

    def train_steps(self, generator_updates: int) -> dict[str, float]:
        """Trains ``generator_updates`` more generator updates (no side effects); last metrics."""
        target = int(self.step.numpy()) + generator_updates
        metrics = {}
        while int(self.step.numpy()) < target:
            count, steps = self._rounds_for(int(self.step.numpy()), target)
            metrics = self._call(count, steps)
        return metrics

    def _call(self, count: int, steps: int) -> dict[str, float]:
        if count == 1:
            return self.train_round(steps)
        return self.train_rounds(count, steps)

    def train_round(self, generator_steps: int | None = None) -> dict[str, float]:
        """Runs one round (``generator_steps`` defaults to the schedule's); returns its metrics."""
        steps = self.schedule.generator_steps if generator_steps is None else generator_steps
        metrics = self._round(self._iterator, tf.constant(steps))
        return {k: float(v) for k, v in metrics.items()}

    def fit(
        self,
        output_dir: str,
        *,
        config_text: str = "",
        config_header: Sequence[str] = (),
        operative_config: Callable[[], str] | None = None,
    ) -> dict[str, float]:
        """Trains to ``num_steps``, writing the run directory; resumes from its last checkpoint.

        Args:
            output_dir: The run directory.
            config_text: The parsed config, saved as config.gin and compared on resume.
            config_header: Comment lines for config.gin.
            operative_config: Returns the operative config, written once training has started.

        Returns:
            The last metrics row.
        """
        role = distribute.worker_role(self.strategy)
        if role.is_chief:
            with RunDirectory(output_dir, config_text, config_header) as run_dir:
                return self._fit(run_dir, operative_config, run_dir.join("checkpoints"))
        # Every worker runs the same loop (saving reads variables in lockstep with the others),
        # but only the chief writes the run directory: another worker restores from the chief's
        # checkpoints and writes its identical copies to a scratch folder removed at the end.
        scratch = tempfile.mkdtemp(prefix=f"ganpipe-{role.name.replace(' ', '-')}-")
        logging.info(
            "This process is %s, not the chief: the chief alone writes %s. This worker resumes "
            "from the chief's checkpoints there and writes its own copies to %s, removed at the "
            "end.",
            role.name,
            output_dir,
            scratch,
        )
        try:
            with RunDirectory(scratch, config_text, config_header) as run_dir:
                return self._fit(run_dir, operative_config, os.path.join(output_dir, "checkpoints"))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _fit(
        self, run_dir: RunDirectory, operative_config, restore_directory: str
    ) -> dict[str, float]:
        checkpoint = tf.train.Checkpoint(
            generator=self.generator,
            critic=self.critic,
            generator_optimizer=self.generator_optimizer,
            critic_optimizer=self.critic_optimizer,
            step=self.step,
            elapsed=self.elapsed,
            best_fd=self.best_fd,
            **({} if self.generator_ema is None else {"generator_ema": self.generator_ema}),
        )
        checkpointer = actions.Checkpointer(
            run_dir.join("checkpoints"), checkpoint, self.keep_checkpoints
        )
        best = actions.Checkpointer(run_dir.join("checkpoints", "best"), checkpoint, 1)
        self._refuse_checkpoints_without_average(restore_directory)
        if restore_directory == run_dir.join("checkpoints"):
            restored = checkpointer.restore()
        else:
            restored = actions.Checkpointer(
                restore_directory, checkpoint, self.keep_checkpoints
            ).restore()
        start = int(self.step.numpy())
        if restored:
            # Continue the data stream at the first batch the restored run had not consumed.
            consumed = int(self.critic_optimizer.iterations.numpy())
            self._start_batch = consumed
            self._iterator = self._input_iterator(start_batch=consumed)
            logging.info(
                "Resuming from %s at step %d (batch %d of the data stream).",
                restored,
                start,
                consumed,
            )
        metrics_log = actions.MetricsLog(run_dir.join("metrics.jsonl"), start)
        tensorboard = actions.TensorBoard(run_dir.join("tensorboard"))
        noise_shape = [self.num_samples, factories.latent_dim(self.generator)]
        if self.num_classes is not None:
            # A per-class grid: one row per class, one fixed noise vector per column.
            noise_shape[0] = max(1, self.num_samples // self.num_classes)
        fixed_noise = self.latent.sample(
            tf.random.Generator.from_seed(self.seed + 1), noise_shape
        ).numpy()
        samples = actions.SampleGrid(
            run_dir.join("samples"), fixed_noise, self.value_range, num_classes=self.num_classes
        )
        progress = actions.Progress(self.num_steps, start)

        current, last_row = start, {}
        images_per_round = self.batch_size * self.schedule.critic_steps
        clock, base_elapsed = time.perf_counter(), float(self.elapsed.numpy())

        def over_budget():
            return (
                self.max_train_seconds is not None
                and float(self.elapsed.numpy()) >= self.max_train_seconds
            )

        if current >= self.num_steps or over_budget():
            logging.info(
                "The run already reached step %d of %d (elapsed %.0f s).",
                current,
                self.num_steps,
                float(self.elapsed.numpy()),
            )
        signals = _SignalFlag()
        skips = 0
        snapshot = self._snapshot() if self.non_finite == "skip" else None
        while current < self.num_steps and not over_budget():
            metrics = self._call(*self._rounds_for(current, self.num_steps))
            previous, current = current, int(self.step.numpy())
            bad = actions.non_finite(metrics)
            if bad and self.non_finite == "skip" and skips < self.max_skips:
                skips += 1
                logging.warning(
                    "Skipped the round ending at step %d: non-finite %s. Its updates were undone "
                    "(%d consecutive skip(s); the run stops after %d).",
                    current,
                    bad,
                    skips,
                    self.max_skips,
                )
                self._restore_snapshot(snapshot)
                current = previous
                continue
            if bad:
                raise actions.NonFiniteLossError(
                    actions.non_finite_message(bad, current, checkpointer.latest)
                )
            skips = 0
            if snapshot is not None:
                snapshot = self._snapshot()
            for name in actions.NONFINITE_GRADIENTS:
                metrics.pop(name, None)
            self.elapsed.assign(base_elapsed + time.perf_counter() - clock)
            if previous == start and operative_config is not None:
                atomic_write(run_dir.join(OPERATIVE_CONFIG_FILE), operative_config())
            done = current >= self.num_steps or over_budget() or signals.received is not None
            if done and current < self.num_steps and signals.received is None:
                logging.info(
                    "Time budget of %.0f s reached at step %d; stopping.",
                    self.max_train_seconds,
                    current,
                )

            def crossed(every, previous=previous, current=current, done=done):
                return done or previous // every != current // every

            evaluated = {}
            if self._evaluation is not None and crossed(self.eval_every):
                eval_start = time.perf_counter()
                evaluated = self._evaluation(self.sampling_generator)
                if evaluated["eval_fd"] < float(self.best_fd.numpy()):
                    self.best_fd.assign(evaluated["eval_fd"])
                    best.save(current)
                # Evaluation time does not count against the training budget.
                clock += time.perf_counter() - eval_start
                logging.info(
                    "eval at step %d: %s",
                    current,
                    ", ".join(f"{k[5:]} {v:.4g}" for k, v in evaluated.items()),
                )
            if crossed(self.log_every) or evaluated:
                rate = progress.rate(current)
                row = {"step": current, "elapsed_seconds": round(float(self.elapsed.numpy()), 3)}
                row.update(metrics)
                row.update(evaluated)
                row["steps_per_second"] = rate
                row["images_per_second"] = rate / self.schedule.generator_steps * images_per_round
                metrics_log.write(row)
                tensorboard.scalars(current, {k: v for k, v in row.items() if k != "step"})
                budget_left = (
                    None
                    if self.max_train_seconds is None
                    else self.max_train_seconds - row["elapsed_seconds"]
                )
                logging.info(progress.line(current, rate, row, budget_left))
                last_row = row
            if crossed(self.sample_every) or previous == start:
                samples(self.sampling_generator, current, tensorboard)
            # `done` was decided before a signal that lands during this round's actions; such a
            # signal still checkpoints the round.
            if crossed(self.checkpoint_every) or signals.received is not None:
                checkpointer.save(current)
            if signals.received is not None:
                tensorboard.close()
                signals.restore()
                raise actions.Preempted(
                    f"Stopped by {signals.received.name} after step {current}; checkpoint "
                    f"{checkpointer.latest} holds it. Rerun the same command to resume."
                )
        signals.restore()

        model_path = run_dir.join("generator.keras")
        if not os.path.exists(model_path) or current > start:
            _save_model(self.sampling_generator, model_path)
            if self.generator_ema is not None:
                # generator.keras holds the average; the live weights are kept beside it.
                _save_model(self.generator, run_dir.join(LIVE_GENERATOR_FILE))
        logging.info(
            "Weights fingerprint at step %d: generator %s, critic %s%s.",
            current,
            actions.fingerprint(self.generator.variables),
            actions.fingerprint(self.critic.variables),
            ""
            if self.generator_ema is None
            else f", generator average {actions.fingerprint(self.generator_ema.variables)}",
        )
        tensorboard.close()
        return last_row
