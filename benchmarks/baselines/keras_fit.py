"""Keras ``fit`` baseline: the three experiments written the way the keras.io GAN examples are.

A ``keras.Model`` subclass (``GAN``) holds the generator and the critic; its
``compile(d_optimizer, g_optimizer, d_loss_fn, g_loss_fn)`` stores one optimizer and one loss
per side, and its ``train_step(real_images)`` samples noise with ``keras.random`` inside the step
(from a ``keras.random.SeedGenerator``), runs the critic update(s) and the generator update(s)
under ``tf.GradientTape`` and returns the losses. ``Runner.run`` calls
``model.fit(dataset, steps_per_epoch=rounds, epochs=1, verbose=0)`` over a ``tf.data`` pipeline
of the training images (shuffle, batch, repeat, prefetch).

The experiments (settings in ``experiments.py``) have the models, losses, optimizers, learning
rates, batch size and update schedule of ganpipe's gin/gan.gin, gin/dcgan.gin and gin/wgan.gin
(equal to the tutorial's, and to ``tf1_tutorial``):

- One ``train_step`` is one round of the schedule: ``critic_steps`` critic updates, then
  ``generator_steps`` generator updates. The pipeline's batches hold
  ``critic_steps * batch_size`` images and critic update k takes slice k of the batch, so every
  critic update sees its own real images (``gan``: 1 x 500; ``dcgan`` and ``wgan``: 5 x 50).
- Each critic update and each generator update draws fresh noise, except in ``gan``, whose
  generator update reuses the critic update's noise, as the tutorial's GAN does.
- ``dcgan``'s 50 generator updates per round run in a ``tf.while_loop`` whose trip count is a
  model variable, so a ``run`` whose count is not a multiple of 50 ends with a shortened round
  (5 critic updates, fewer generator updates), as ganpipe's trainer does, without retracing.
- ``wgan`` clips every critic variable to [-0.01, 0.01] after every critic update.

Deliberate differences from ``tf1_tutorial`` (the ways of each framework, kept on purpose):

- Batches come from a shuffled ``tf.data`` pipeline (every image once per epoch, the last
  incomplete batch of each epoch dropped) instead of independent random index draws per step;
  each ``run`` builds a fresh pipeline with its own shuffle seed.
- The critic returns raw scores; the GAN losses apply the sigmoid inside the log in its
  softplus form (-log sigmoid(s) = softplus(-s), -log(1 - sigmoid(s)) = softplus(s)), as
  ganpipe does: the same values, without log(0) once the sigmoid saturates.
- Batch normalization is ``keras.layers.BatchNormalization`` with the tutorial's settings
  (momentum 0.1, epsilon 1e-4, moving variance starting at zero). The generator runs in
  training mode (batch statistics) in both updates, so, as in the tutorial, its moving averages
  move during critic updates too.
- RMSprop is Keras' (rho 0.9, no momentum, epsilon 1e-7 outside the square root, accumulator
  starting at zero), as in ganpipe.
- ``compile`` takes Keras' ``jit_compile`` argument; its default, ``"auto"``, is Keras' own:
  XLA where a GPU is visible, none on a CPU-only machine.
"""

from __future__ import annotations

import itertools

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from benchmarks.baselines import experiments


def non_saturating_critic_loss(real_scores, fake_scores):
    """-log D(x) - log(1 - D(G(z))), batch means, with D the sigmoid of the raw score."""
    return ops.mean(ops.softplus(-real_scores)) + ops.mean(ops.softplus(fake_scores))


def non_saturating_generator_loss(fake_scores):
    """-log D(G(z)), batch mean."""
    return ops.mean(ops.softplus(-fake_scores))


def wasserstein_critic_loss(real_scores, fake_scores):
    """D(G(z)) - D(x), batch means of raw scores."""
    return ops.mean(fake_scores) - ops.mean(real_scores)


def wasserstein_generator_loss(fake_scores):
    """-D(G(z)), batch mean."""
    return -ops.mean(fake_scores)


LOSSES = {
    "non_saturating": (non_saturating_critic_loss, non_saturating_generator_loss),
    "wasserstein": (wasserstein_critic_loss, wasserstein_generator_loss),
}


def build_models(spec: experiments.Experiment, seed: int) -> tuple[keras.Model, keras.Model]:
    """The experiment's generator and critic as ``keras.Sequential`` models.

    Every weight and bias starts truncated normal with the experiment's stddev, each layer with
    its own seed. The ``mlp`` models work on flat 784-vectors, the ``dcgan`` ones on 28x28x1.
    """
    seeds = itertools.count(seed * 1000)

    def weights() -> dict:
        return {
            "kernel_initializer": keras.initializers.TruncatedNormal(
                stddev=spec.init_stddev, seed=next(seeds)
            ),
            "bias_initializer": keras.initializers.TruncatedNormal(
                stddev=spec.init_stddev, seed=next(seeds)
            ),
        }

    def batch_norm():
        return keras.layers.BatchNormalization(
            momentum=experiments.BATCH_NORM_DECAY,
            epsilon=experiments.BATCH_NORM_EPSILON,
            moving_variance_initializer="zeros",
        )

    layers = keras.layers
    if spec.architecture == "mlp":
        generator = keras.Sequential(
            [
                keras.Input((spec.latent_dim,)),
                layers.Dense(256, activation="leaky_relu", **weights()),
                layers.Dense(28 * 28, activation="sigmoid", **weights()),
            ],
            name="generator",
        )
        critic = keras.Sequential(
            [
                keras.Input((28 * 28,)),
                layers.Dense(256, activation="leaky_relu", **weights()),
                layers.Dense(1, **weights()),
            ],
            name="critic",
        )
        return generator, critic
    generator = keras.Sequential(
        [
            keras.Input((spec.latent_dim,)),
            layers.Dense(6 * 6 * 128, activation="tanh", **weights()),
            layers.Reshape((6, 6, 128)),
            layers.Conv2DTranspose(
                64, 4, strides=2, padding="valid", activation="leaky_relu", **weights()
            ),
            batch_norm(),
            layers.Conv2DTranspose(1, 2, strides=2, padding="same", activation="tanh", **weights()),
            batch_norm(),
        ],
        name="generator",
    )
    critic = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(64, 5, padding="same", activation="leaky_relu", **weights()),
            layers.MaxPooling2D(2, strides=2, padding="same"),
            layers.Conv2D(128, 5, padding="same", activation="leaky_relu", **weights()),
            layers.MaxPooling2D(2, strides=2, padding="same"),
            layers.Flatten(),
            layers.Dense(512, activation="leaky_relu", **weights()),
            layers.Dense(1, **weights()),
        ],
        name="critic",
    )
    return generator, critic


class GAN(keras.Model):
    """Generator and critic trained in rounds by ``fit``; one ``train_step`` is one round.

    Args:
        generator: Maps noise ``(batch, latent_dim)`` to images.
        critic: Maps images to raw scores ``(batch, 1)``.
        latent_dim: Noise length.
        noise_stddev: Standard deviation of the Gaussian noise.
        batch_size: Images per critic update; noise vectors per generator update.
        critic_steps: Critic updates per round; each ``train_step`` batch holds
            ``critic_steps * batch_size`` images, one slice per update.
        generator_steps: Generator updates per round (a shorter last round is set through
            ``round_generator_steps``).
        share_noise: The generator update reuses the critic update's noise (1/1 schedule).
        clip_value: Clip every critic variable to [-clip_value, clip_value] after each critic
            update; ``None`` for no clipping.
        seed: Seed of the noise's ``SeedGenerator``.
    """

    def __init__(
        self,
        generator: keras.Model,
        critic: keras.Model,
        *,
        latent_dim: int,
        noise_stddev: float,
        batch_size: int,
        critic_steps: int,
        generator_steps: int,
        share_noise: bool,
        clip_value: float | None,
        seed: int,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if share_noise and (critic_steps, generator_steps) != (1, 1):
            raise ValueError("share_noise needs one critic and one generator update per round.")
        self.generator = generator
        self.critic = critic
        self.latent_dim = latent_dim
        self.noise_stddev = noise_stddev
        self.batch_size = batch_size
        self.critic_steps = critic_steps
        self.generator_steps = generator_steps
        self.share_noise = share_noise
        self.clip_value = clip_value
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.round_generator_steps = keras.Variable(
            generator_steps, dtype="int32", trainable=False, name="round_generator_steps"
        )
        # Both models are built by their Input layers; there is nothing left to build.
        self.built = True

    def compile(self, d_optimizer, g_optimizer, d_loss_fn, g_loss_fn, **kwargs):
        """Stores each side's optimizer and loss; other arguments go to ``keras.Model.compile``.

        Both optimizers are built on their models' variables here, so their slots exist before
        the first (traced) step.
        """
        super().compile(optimizer=None, **kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.d_loss_fn = d_loss_fn
        self.g_loss_fn = g_loss_fn
        d_optimizer.build(self.critic.trainable_variables)
        g_optimizer.build(self.generator.trainable_variables)

    def _noise(self):
        return keras.random.normal(
            (self.batch_size, self.latent_dim),
            stddev=self.noise_stddev,
            seed=self.seed_generator,
        )

    def _critic_update(self, real_images, noise):
        fake_images = self.generator(noise, training=True)
        with tf.GradientTape() as tape:
            real_scores = self.critic(real_images, training=True)
            fake_scores = self.critic(fake_images, training=True)
            loss = self.d_loss_fn(real_scores, fake_scores)
        variables = self.critic.trainable_variables
        grads = tape.gradient(loss, variables)
        self.d_optimizer.apply_gradients(zip(grads, variables))
        if self.clip_value is not None:
            for variable in variables:
                variable.assign(ops.clip(variable, -self.clip_value, self.clip_value))
        return loss

    def _generator_update(self, noise):
        with tf.GradientTape() as tape:
            fake_images = self.generator(noise, training=True)
            loss = self.g_loss_fn(self.critic(fake_images, training=True))
        variables = self.generator.trainable_variables
        grads = tape.gradient(loss, variables)
        self.g_optimizer.apply_gradients(zip(grads, variables))
        return loss

    def train_step(self, real_images):
        if self.share_noise:
            noise = self._noise()
            return {
                "critic_loss": self._critic_update(real_images, noise),
                "generator_loss": self._generator_update(noise),
            }
        size = self.batch_size
        for k in range(self.critic_steps):
            d_loss = self._critic_update(real_images[k * size : (k + 1) * size], self._noise())
        if self.generator_steps == 1:
            g_loss = self._generator_update(self._noise())
        else:
            steps = ops.convert_to_tensor(self.round_generator_steps)
            _, g_loss = tf.while_loop(
                lambda i, _: i < steps,
                lambda i, _: (i + 1, self._generator_update(self._noise())),
                (tf.constant(0), tf.constant(0.0)),
            )
        return {"critic_loss": d_loss, "generator_loss": g_loss}


class Runner:
    """One experiment's ``GAN`` model and its training images.

    Attributes:
        name: The experiment's name.
        batch_size: Real images per critic update, noise vectors per generator update.
        generator_params: Trainable parameters of the generator.
        critic_params: Trainable parameters of the critic.
        critic_steps: Critic updates per round.
        generator_steps: Generator updates per round.
        model: The compiled ``GAN``.
    """

    def __init__(
        self,
        spec: experiments.Experiment,
        images: np.ndarray,
        seed: int,
        jit_compile: bool | str = "auto",
    ):
        self.name = spec.name
        self.batch_size = spec.batch_size
        self.critic_steps = spec.critic_steps
        self.generator_steps = spec.generator_steps
        self._per_step = spec.critic_steps * spec.batch_size
        images = experiments.check_images(images, spec, self._per_step)
        if spec.architecture == "mlp":
            images = images.reshape(len(images), 28 * 28)
        self._images = tf.constant(images)
        self._seed = int(seed)
        self._runs = 0

        generator, critic = build_models(spec, seed)
        self.generator_params = _count(generator)
        self.critic_params = _count(critic)
        optimizer = {"adam": _adam, "rmsprop": keras.optimizers.RMSprop}[spec.optimizer]
        d_loss_fn, g_loss_fn = LOSSES[spec.loss]
        self.model = GAN(
            generator,
            critic,
            latent_dim=spec.latent_dim,
            noise_stddev=spec.noise_stddev,
            batch_size=spec.batch_size,
            critic_steps=spec.critic_steps,
            generator_steps=spec.generator_steps,
            share_noise=spec.share_noise,
            clip_value=spec.clip_value,
            seed=seed,
        )
        self.model.compile(
            d_optimizer=optimizer(learning_rate=spec.critic_learning_rate),
            g_optimizer=optimizer(learning_rate=spec.generator_learning_rate),
            d_loss_fn=d_loss_fn,
            g_loss_fn=g_loss_fn,
            jit_compile=jit_compile,
        )

    def _dataset(self) -> tf.data.Dataset:
        """Shuffled batches of ``critic_steps * batch_size`` images, repeated, prefetched."""
        shuffle_seed = self._seed * 1_000_003 + self._runs
        self._runs += 1
        return (
            tf.data.Dataset.from_tensor_slices(self._images)
            .shuffle(len(self._images), seed=shuffle_seed, reshuffle_each_iteration=True)
            .batch(self._per_step, drop_remainder=True)
            .repeat()
            .prefetch(tf.data.AUTOTUNE)
        )

    def _fit(self, rounds: int, generator_steps: int) -> dict:
        self.model.round_generator_steps.assign(generator_steps)
        # The pipeline shuffles; fit's own shuffle flag does not apply to a tf.data.Dataset.
        history = self.model.fit(
            self._dataset(), steps_per_epoch=rounds, epochs=1, verbose=0, shuffle=False
        )
        return {key: float(values[-1]) for key, values in history.history.items()}

    def run(self, generator_updates: int) -> dict[str, float]:
        """Trains ``generator_updates`` generator updates with the schedule's critic updates.

        Full rounds run in one ``fit`` call; a remainder runs as one shortened round in a
        second call.

        Returns:
            The last critic and generator losses, as floats.
        """
        total = int(generator_updates)
        if total < 1:
            raise ValueError(f"generator_updates must be >= 1, got {generator_updates!r}.")
        rounds, remainder = divmod(total, self.generator_steps)
        losses: dict[str, float] = {}
        if rounds:
            losses = self._fit(rounds, self.generator_steps)
        if remainder:
            losses = self._fit(1, remainder)
        return {"critic_loss": losses["critic_loss"], "generator_loss": losses["generator_loss"]}

    def update_counts(self) -> dict[str, int]:
        """Critic and generator updates run so far (the optimizers' iteration counters)."""
        return {
            "critic": int(self.model.d_optimizer.iterations.numpy()),
            "generator": int(self.model.g_optimizer.iterations.numpy()),
        }


def _adam(learning_rate: float) -> keras.optimizers.Adam:
    return keras.optimizers.Adam(learning_rate=learning_rate, epsilon=experiments.ADAM_EPSILON)


def _count(model: keras.Model) -> int:
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


def make(
    experiment: str,
    images: np.ndarray,
    batch_size: int | None = None,
    seed: int = 0,
    *,
    jit_compile: bool | str = "auto",
) -> Runner:
    """Builds and compiles the Keras ``fit`` version of ``experiment`` (``gan``, ``dcgan``,
    ``wgan``).

    Args:
        experiment: Experiment name.
        images: Training images, float32 ``(N, 28, 28, 1)`` in the experiment's value range
            ([0, 1] for ``gan``, [-1, 1] for ``dcgan`` and ``wgan``; see
            ``experiments.scale_pixels``); at least ``critic_steps * batch_size`` of them.
        batch_size: Overrides the experiment's batch size.
        seed: Seeds the initializers, the noise and the shuffling.
        jit_compile: Passed to ``keras.Model.compile`` (``"auto"``: Keras' default).
    """
    return Runner(experiments.get(experiment, batch_size), images, seed, jit_compile)
