"""The keras.io example "WGAN-GP overriding Model.train_step" (Fashion-MNIST), re-implemented
from its description, as a time-to-quality baseline.

What the example specifies, and this program does:

- Data: the Fashion-MNIST train split scaled to [-1, 1] ((x - 127.5) / 127.5), batch 512, fed to
  ``Model.fit`` (here: a shuffled, repeated ``tf.data`` pipeline).
- Critic: the 28x28 image zero-padded to 32x32, four 5x5 stride-2 convolutions with 64, 128, 256
  and 512 filters, each followed by leaky ReLU 0.2; dropout 0.3 after the second and third;
  flatten, dropout 0.2, one linear unit.
- Generator: 128-d standard normal noise -> Dense 4*4*256 (no bias) -> batch norm -> leaky ReLU
  0.2 -> reshape 4x4x256; three blocks of 2x upsampling + 3x3 convolution (no bias) + batch norm,
  with 128 and 64 filters and leaky ReLU 0.2, then 1 filter and tanh; the 32x32 output cropped
  to 28x28.
- Objective: Wasserstein critic loss mean D(G(z)) - mean D(x) plus 10 x the gradient penalty
  (||grad D(x_hat)|| - 1)^2 at x_hat = x + alpha (G(z) - x), alpha ~ U(0, 1) per image;
  generator loss -mean D(G(z)). Three critic updates per generator update, each with fresh
  noise and the step's real batch. Adam 2e-4, beta_1 0.5, beta_2 0.9 on both sides.

``Runner.run(seconds)`` trains for about that much wall-clock time (one ``fit`` call, stopped at
the first step boundary past it); ``Runner.generate(n, seed)`` draws images in [-1, 1] from the
generator in inference mode.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf
from keras import layers

LATENT = 128
BATCH = 512
CRITIC_STEPS = 3
GP_WEIGHT = 10.0


def build_critic() -> keras.Model:
    inputs = keras.Input((28, 28, 1))
    x = layers.ZeroPadding2D(2)(inputs)
    for filters, dropout in ((64, 0.0), (128, 0.3), (256, 0.3), (512, 0.0)):
        x = layers.Conv2D(filters, 5, strides=2, padding="same")(x)
        x = layers.LeakyReLU(0.2)(x)
        if dropout:
            x = layers.Dropout(dropout)(x)
    x = layers.Dropout(0.2)(layers.Flatten()(x))
    return keras.Model(inputs, layers.Dense(1)(x), name="keras_io_critic")


def build_generator() -> keras.Model:
    inputs = keras.Input((LATENT,))
    x = layers.Dense(4 * 4 * 256, use_bias=False)(inputs)
    x = layers.LeakyReLU(0.2)(layers.BatchNormalization()(x))
    x = layers.Reshape((4, 4, 256))(x)
    for filters, activation in ((128, None), (64, None), (1, "tanh")):
        x = layers.UpSampling2D(2)(x)
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("tanh")(x) if activation else layers.LeakyReLU(0.2)(x)
    outputs = layers.Cropping2D(2)(x)
    return keras.Model(inputs, outputs, name="keras_io_generator")


class WGANGP(keras.Model):
    """The example's model: ``train_step`` runs the critic updates, then one generator update."""

    def __init__(self, critic, generator, seed: int):
        super().__init__()
        self.critic, self.generator = critic, generator
        self.seeds = keras.random.SeedGenerator(seed)

    def compile(self, d_optimizer, g_optimizer):
        super().compile()
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer

    def _penalty(self, real, fake):
        alpha = keras.random.uniform([tf.shape(real)[0], 1, 1, 1], seed=self.seeds)
        mixed = real + alpha * (fake - real)
        with tf.GradientTape() as tape:
            tape.watch(mixed)
            scores = self.critic(mixed, training=True)
        grads = tape.gradient(scores, [mixed])[0]
        norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]))
        return tf.reduce_mean((norms - 1.0) ** 2)

    def train_step(self, real):
        batch = tf.shape(real)[0]
        for _ in range(CRITIC_STEPS):
            noise = keras.random.normal([batch, LATENT], seed=self.seeds)
            with tf.GradientTape() as tape:
                fake = self.generator(noise, training=True)
                d_loss = tf.reduce_mean(self.critic(fake, training=True)) - tf.reduce_mean(
                    self.critic(real, training=True)
                )
                d_loss += GP_WEIGHT * self._penalty(real, fake)
            weights = self.critic.trainable_variables
            self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, weights), weights))
        noise = keras.random.normal([batch, LATENT], seed=self.seeds)
        with tf.GradientTape() as tape:
            g_loss = -tf.reduce_mean(
                self.critic(self.generator(noise, training=True), training=True)
            )
        weights = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, weights), weights))
        return {"d_loss": d_loss, "g_loss": g_loss}


class Runner:
    """The example, trained in wall-clock slices.

    Args:
        images: Train images, uint8 ``(N, 28, 28, 1)``.
        seed: Seeds weights, noise and data order.
        steps_per_call: Generator updates per ``fit`` call (the granularity of ``run``).
    """

    name = "keras.io WGAN-GP"

    def __init__(self, images: np.ndarray, seed: int = 0):
        keras.utils.set_random_seed(seed)
        x = (images.astype("float32") - 127.5) / 127.5
        self.data = (
            tf.data.Dataset.from_tensor_slices(x).shuffle(len(x), seed=seed).repeat()
            .batch(BATCH, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
        )  # fmt: skip
        self.model = WGANGP(build_critic(), build_generator(), seed)
        self.model.compile(
            keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.9),
            keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.9),
        )
        self.steps = 0

    def run(self, seconds: float) -> float:
        """Trains for about ``seconds`` (one ``fit`` call, stopped after the first step that ends
        past them); returns the seconds spent."""
        start = time.perf_counter()
        runner = self

        class TimeLimit(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                runner.steps += 1
                if time.perf_counter() - start >= seconds:
                    self.model.stop_training = True

        # One generator update per "epoch", so the limit is checked after every step.
        self.model.fit(
            self.data, steps_per_epoch=1, epochs=10**9, verbose=0, callbacks=[TimeLimit()]
        )
        return time.perf_counter() - start

    def generate(self, count: int, seed: int) -> np.ndarray:
        noise = np.random.default_rng(seed).standard_normal((count, LATENT)).astype("float32")
        return np.asarray(self.model.generator.predict(noise, batch_size=500, verbose=0))
