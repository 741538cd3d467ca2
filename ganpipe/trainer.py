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

    def sample(self, rng: tf.random.Generator, shape) -> tf.Tensor:
        if self.distribution == "normal":
            return rng.normal(shape, stddev=self.scale)
        return rng.uniform(shape, minval=-self.scale, maxval=self.scale)


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    return int(value)


def _scores(model_output) -> tf.Tensor:
    return tf.reshape(model_output, [-1])


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
        rng,
        global_batch,
        step,
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
        self.rng = rng
        self.global_batch = float(global_batch)
        self.step = step
        self.latent_dim = int(generator.input_shape[-1])

    def _mean(self, per_example):
        return tf.reduce_sum(per_example) / self.global_batch

    def critic_update(self, real, noise=None):
        batch = tf.shape(real)[0]
        if noise is None:
            noise = self.latent.sample(self.rng, [batch, self.latent_dim])
        fake = _frozen_call(self.generator, noise)
        variables = self.critic.trainable_variables
        with tf.GradientTape() as tape:
            real_scores = _scores(self.critic(real, training=True))
            fake_scores = _scores(self.critic(fake, training=True))
            loss = self._mean(self.loss.critic(real_scores, fake_scores))
            total = loss
            if self.penalty is not None:
                penalty = self._mean(
                    self.penalty(lambda x: self.critic(x, training=True), real, fake, self.rng)
                )
                total = loss + penalty
        grads = tape.gradient(total, variables)
        self.c_opt.apply_gradients(zip(grads, variables))
        if self.constraint is not None:
            distribute.update_variables(variables, self.constraint)
        metrics = {
            "critic_loss": loss,
            "critic_real": self._mean(real_scores),
            "critic_fake": self._mean(fake_scores),
        }
        if self.loss.wasserstein_estimate:
            metrics["wasserstein_estimate"] = metrics["critic_real"] - metrics["critic_fake"]
        if self.penalty is not None:
            metrics["gradient_penalty"] = penalty
        return metrics

    def generator_update(self, noise=None):
        if noise is None:
            batch = tf.cast(self.global_batch, tf.int32) // self.strategy.num_replicas_in_sync
            noise = self.latent.sample(self.rng, [batch, self.latent_dim])
        variables = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            fake = self.generator(noise, training=True)
            loss = self._mean(self.loss.generator(_scores(_frozen_call(self.critic, fake))))
        grads = tape.gradient(loss, variables)
        self.g_opt.apply_gradients(zip(grads, variables))
        return {"generator_loss": loss}

    def shared_update(self, real):
        batch = tf.shape(real)[0]
        noise = self.latent.sample(self.rng, [batch, self.latent_dim])
        metrics = self.critic_update(real, noise)
        metrics.update(self.generator_update(noise))
        return metrics

    def _reduce(self, per_replica):
        return {
            k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
            for k, v in per_replica.items()
        }

    def round(self, iterator, generator_steps):
        """One round; returns the round's mean metrics (global-batch means)."""
        if self.schedule.share_noise:
            metrics = self._reduce(self.strategy.run(self.shared_update, args=(next(iterator),)))
            self.step.assign_add(tf.cast(generator_steps, tf.int64))
            return metrics
        critic_sums = None
        for _ in tf.range(self.schedule.critic_steps):
            metrics = self._reduce(self.strategy.run(self.critic_update, args=(next(iterator),)))
            if critic_sums is None:
                critic_sums = metrics
            else:
                critic_sums = {k: critic_sums[k] + v for k, v in metrics.items()}
        # Autograph needs the accumulators to exist before the loop: run the first update outside.
        g_sum = self._reduce(self.strategy.run(self.generator_update))["generator_loss"]
        for _ in tf.range(generator_steps - 1):
            g_sum += self._reduce(self.strategy.run(self.generator_update))["generator_loss"]
        self.step.assign_add(tf.cast(generator_steps, tf.int64))
        result = {k: v / self.schedule.critic_steps for k, v in critic_sums.items()}
        result["generator_loss"] = g_sum / tf.cast(generator_steps, tf.float32)
        return result


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
        log_every: Steps between metrics rows and progress lines.
        sample_every: Steps between sample grids.
        checkpoint_every: Steps between checkpoints.
        keep_checkpoints: Checkpoints kept.
        num_samples: Images in each sample grid (drawn from the same fixed noise every time).
        max_train_seconds: Optional wall-clock budget for the whole run (resumes included): on
            reaching it, training stops as if at the last step (checkpoint, samples, generator).
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
        log_every: int = 100,
        sample_every: int = 1000,
        checkpoint_every: int = 1000,
        keep_checkpoints: int = 3,
        num_samples: int = 64,
        max_train_seconds: float | None = None,
    ):
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
        self.log_every, self.sample_every = log_every, sample_every
        self.checkpoint_every, self.keep_checkpoints = checkpoint_every, keep_checkpoints
        self.num_samples, self.seed = num_samples, int(seed)
        if max_train_seconds is not None and not max_train_seconds > 0:
            raise ValueError(
                f"train.max_train_seconds must be > 0 or None, got {max_train_seconds!r}."
            )
        self.max_train_seconds = max_train_seconds
        self.schedule, self.latent = schedule, latent
        self.value_range = tuple(float(v) for v in value_range)
        self.loss = losses.get(loss)
        self.constraint = constraints.get_constraint(critic_constraint)
        self.penalty = constraints.get_penalty(penalty)
        self.strategy = (
            distribute.make_strategy(strategy) if isinstance(strategy, str) else strategy
        )
        distribute.split_global_batch(self.batch_size, self.strategy)

        # Seeds Python, NumPy, TensorFlow and Keras before anything random is created (the data
        # order included), so a run is reproducible from `seed` alone.
        keras.utils.set_random_seed(self.seed)
        self.images = data()
        logging.info("Data: %s", data_module.describe(self.images))
        self.dataset = data_module.make_dataset(
            images=self.images,
            batch_size=self.batch_size,
            value_range=self.value_range,
            seed=self.seed,
        )

        with self.strategy.scope():
            self.generator = generator()
            self.critic = critic(input_shape=tuple(self.images.images.shape[1:]))
            _check_compatible(
                self.generator,
                self.critic,
                self.loss,
                self.images.images.shape[1:],
                self.value_range,
            )
            self.generator_optimizer = optimizers.get(generator_optimizer, "generator")
            self.critic_optimizer = optimizers.get(critic_optimizer, "critic")
            self.generator_optimizer.build(self.generator.trainable_variables)
            self.critic_optimizer.build(self.critic.trainable_variables)
            self.rng = tf.random.Generator.from_seed(self.seed)
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
            rng=self.rng,
            global_batch=self.batch_size,
            step=self.step,
        )
        self._round = tf.function(self._steps.round)
        self._iterator = iter(self.strategy.experimental_distribute_dataset(self.dataset))

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
            self._generator_fn = tf.function(
                lambda: self._steps._reduce(self.strategy.run(self._steps.generator_update))
            )
        return {k: float(v) for k, v in self._generator_fn().items()}

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
        run_dir = RunDirectory(output_dir, config_text, config_header)
        with run_dir:
            return self._fit(run_dir, operative_config)

    def _fit(self, run_dir: RunDirectory, operative_config) -> dict[str, float]:
        checkpoint = tf.train.Checkpoint(
            generator=self.generator,
            critic=self.critic,
            generator_optimizer=self.generator_optimizer,
            critic_optimizer=self.critic_optimizer,
            rng=self.rng,
            step=self.step,
            elapsed=self.elapsed,
        )
        checkpointer = actions.Checkpointer(
            run_dir.join("checkpoints"), checkpoint, self.keep_checkpoints
        )
        restored = checkpointer.restore()
        start = int(self.step.numpy())
        if restored:
            logging.info("Resuming from %s at step %d.", restored, start)
        metrics_log = actions.MetricsLog(run_dir.join("metrics.jsonl"), start)
        tensorboard = actions.TensorBoard(run_dir.join("tensorboard"))
        noise_shape = [self.num_samples, int(self.generator.input_shape[-1])]
        fixed_noise = self.latent.sample(
            tf.random.Generator.from_seed(self.seed + 1), noise_shape
        ).numpy()
        samples = actions.SampleGrid(run_dir.join("samples"), fixed_noise, self.value_range)
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
        while current < self.num_steps and not over_budget():
            metrics = self.train_round(min(self.schedule.generator_steps, self.num_steps - current))
            previous, current = current, int(self.step.numpy())
            actions.check_finite(metrics, current, checkpointer.latest)
            self.elapsed.assign(base_elapsed + time.perf_counter() - clock)
            if previous == start and operative_config is not None:
                atomic_write(run_dir.join(OPERATIVE_CONFIG_FILE), operative_config())
            done = current >= self.num_steps or over_budget()
            if done and current < self.num_steps:
                logging.info(
                    "Time budget of %.0f s reached at step %d; stopping.",
                    self.max_train_seconds,
                    current,
                )

            def crossed(every, previous=previous, current=current, done=done):
                return done or previous // every != current // every

            if crossed(self.log_every):
                rate = progress.rate(current)
                row = {"step": current, "elapsed_seconds": round(float(self.elapsed.numpy()), 3)}
                row.update(metrics)
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
                samples(self.generator, current, tensorboard)
            if crossed(self.checkpoint_every):
                checkpointer.save(current)

        model_path = run_dir.join("generator.keras")
        if not os.path.exists(model_path) or current > start:
            tmp = run_dir.join(".generator.tmp.keras")
            self.generator.save(tmp)
            os.replace(tmp, model_path)
            logging.info("Saved the generator to %s", model_path)
        tensorboard.close()
        return last_row
