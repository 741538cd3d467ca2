"""TF1 graph-mode baseline: the seed tutorial's training code, re-implemented.

Re-implements the training programs of the tutorial ganpipe started from (its GAN and DCGAN
listings) in their own style: ``tf.compat.v1`` placeholders
for images and noise, variables made by hand with ``tf.compat.v1.get_variable`` inside
``variable_scope``s (``generator_*`` / ``discriminator_*``, which select each optimizer's
``var_list``), the tutorial's hand-written batch normalization, ``tf.compat.v1.train`` optimizers,
and one ``Session.run`` with a ``feed_dict`` per update. Every step draws its real batch as the
tutorial does (``choice(arange(N), batch, replace=False)`` indices into the training images) and
its noise with NumPy's Gaussian sampler.

Experiments (settings in ``experiments.py``, equal to ganpipe's gin files):

- ``gan``: the tutorial's fully connected GAN: batch 500, Adam 2e-4 on both sides, per step one
  critic update then one generator update fed the same noise.
- ``dcgan``: the tutorial's DCGAN: batch 50, Adam 2e-5 (critic) / 9e-5 (generator), rounds of
  5 critic updates (each on a fresh batch and fresh noise) followed by 50 generator updates (each
  on fresh noise).
- ``wgan``: the tutorial gives only the list of WGAN changes, no code. This is the DCGAN program
  with those changes as ganpipe's gin/wgan.gin makes them (Arjovsky et al., 2017): no sigmoid on
  the critic's score and no log in the losses, every critic variable clipped to [-0.01, 0.01]
  after every critic update (the tutorial says "before"; the paper's Algorithm 1 clips after the
  update, as ganpipe does), RMSProp 5e-5 on both sides, rounds of 5 critic updates and 1
  generator update.

Deliberate differences from the tutorial:

- No ``tf.compat.v1.disable_eager_execution()``: each model is built in its own ``tf.Graph`` and
  run by a ``tf.compat.v1.Session`` bound to that graph, with TensorFlow's default session
  options, so graph-mode and eager code can share a process.
- No printing, no sample images, no TensorBoard writer. Each update fetches its loss (the
  tutorial also fetched the critic's outputs, to print them).
- Random numbers come from a ``numpy.random.RandomState(seed)`` per runner instead of NumPy's
  global state, and the graph's initializers are seeded from ``seed``.
- The batch size is a parameter (default the tutorial's), and DCGAN/WGAN train on the images
  given (the tutorial's DCGAN took the first 200 training images "for the demo").
- A ``run`` whose generator-update count is not a multiple of the round's ends with a shortened
  round (all its critic updates, then the remaining generator updates), as ganpipe's trainer
  does.
- RMSProp is TF1's ``RMSPropOptimizer`` with decay 0.9 and no momentum, as ganpipe's Keras
  RMSprop (rho 0.9); TF1's own epsilon (1e-10, inside the square root) and mean-square
  accumulator starting at one are kept.

As in the tutorial, the generator's batch norm runs in training mode and updates its moving
averages on every pass through the generator, critic updates included, and the critic outputs
a sigmoid probability whose log the GAN losses take directly.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from benchmarks.baselines import experiments

v1 = tf.compat.v1


def _leaky_relu(x):
    return tf.nn.leaky_relu(x, alpha=experiments.LEAKY_SLOPE)


def _initializer(stddev: float):
    return v1.truncated_normal_initializer(stddev=stddev)


def _dense(inputs, in_size: int, out_size: int, stddev: float, activation=None):
    """The tutorial's add_layer: inputs @ weights + bias, then the activation."""
    weights = v1.get_variable(
        "f_weights", shape=[in_size, out_size], initializer=_initializer(stddev)
    )
    bias = v1.get_variable("f_bias", shape=[1, out_size], initializer=_initializer(stddev))
    outputs = tf.matmul(inputs, weights) + bias
    return outputs if activation is None else activation(outputs)


def _conv(inputs, filter_shape, stddev: float, activation):
    """The tutorial's add_cnn_layer: stride-1 SAME convolution, bias, activation."""
    kernel = v1.get_variable("c_weights", shape=filter_shape, initializer=_initializer(stddev))
    bias = v1.get_variable("c_bias", shape=[filter_shape[3]], initializer=_initializer(stddev))
    outputs = tf.nn.conv2d(inputs, kernel, strides=[1, 1, 1, 1], padding="SAME")
    return activation(tf.nn.bias_add(outputs, bias))


def _conv_transpose(inputs, filter_shape, out_shape, padding: str, stddev: float, activation):
    """The tutorial's add_cnn_transpose_layer: stride-2 transposed convolution, bias, activation.

    ``filter_shape`` is (height, width, output channels, input channels).
    """
    kernel = v1.get_variable("ct_weights", shape=filter_shape, initializer=_initializer(stddev))
    bias = v1.get_variable("ct_bias", shape=[out_shape[3]], initializer=_initializer(stddev))
    outputs = tf.nn.conv2d_transpose(
        inputs, kernel, output_shape=out_shape, strides=[1, 2, 2, 1], padding=padding
    )
    return activation(tf.nn.bias_add(outputs, bias))


def _max_pool(inputs):
    return tf.nn.max_pool(inputs, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")


def _batch_norm(inputs, channels: int):
    """The tutorial's batch_normalization in training mode.

    Normalizes with the batch's mean and variance over every axis but the last, and updates the
    moving mean and variance (decay 0.1, both starting at zero) whenever the output is computed.
    """
    gamma = v1.get_variable("bn_gamma", shape=[channels], initializer=v1.ones_initializer())
    beta = v1.get_variable("bn_beta", shape=[channels], initializer=v1.zeros_initializer())
    moving_mean = v1.get_variable(
        "bn_mean", shape=[channels], initializer=v1.zeros_initializer(), trainable=False
    )
    moving_variance = v1.get_variable(
        "bn_variance", shape=[channels], initializer=v1.zeros_initializer(), trainable=False
    )
    axes = list(range(len(inputs.shape) - 1))
    mean, variance = tf.nn.moments(inputs, axes)
    decay = experiments.BATCH_NORM_DECAY
    update_mean = v1.assign(moving_mean, moving_mean * decay + mean * (1 - decay))
    update_variance = v1.assign(moving_variance, moving_variance * decay + variance * (1 - decay))
    with tf.control_dependencies([update_mean, update_variance]):
        return tf.nn.batch_normalization(
            inputs, mean, variance, beta, gamma, experiments.BATCH_NORM_EPSILON
        )


def _mlp_generator(noise, spec: experiments.Experiment):
    """latent -> Dense 256, leaky ReLU -> Dense 784, sigmoid."""
    stddev = spec.init_stddev
    with v1.variable_scope("generator_1"):
        hidden = _leaky_relu(_dense(noise, spec.latent_dim, 256, stddev))
    with v1.variable_scope("generator_2"):
        return tf.nn.sigmoid(_dense(hidden, 256, 28 * 28, stddev))


def _mlp_critic(images, spec: experiments.Experiment, output, reuse: bool):
    """784 -> Dense 256, leaky ReLU -> Dense 1, then ``output``."""
    stddev = spec.init_stddev
    with v1.variable_scope("discriminator_1", reuse=reuse):
        hidden = _dense(images, 28 * 28, 256, stddev, _leaky_relu)
    with v1.variable_scope("discriminator_2", reuse=reuse):
        return _dense(hidden, 256, 1, stddev, output)


def _dcgan_generator(noise, spec: experiments.Experiment):
    """latent -> Dense 4608, tanh -> 6x6x128 -> ConvT 64 4x4/2 VALID, leaky ReLU, BN -> ConvT 1
    2x2/2 SAME, tanh, BN -> 28x28x1."""
    batch, stddev = spec.batch_size, spec.init_stddev
    with v1.variable_scope("generator_1"):
        hidden = _dense(noise, spec.latent_dim, 6 * 6 * 128, stddev, tf.nn.tanh)
        hidden = tf.reshape(hidden, (batch, 6, 6, 128))
    with v1.variable_scope("generator_2"):
        hidden = _conv_transpose(
            hidden, [4, 4, 64, 128], [batch, 14, 14, 64], "VALID", stddev, _leaky_relu
        )
        hidden = _batch_norm(hidden, 64)
    with v1.variable_scope("generator_3"):
        hidden = _conv_transpose(
            hidden, [2, 2, 1, 64], [batch, 28, 28, 1], "SAME", stddev, tf.nn.tanh
        )
        return _batch_norm(hidden, 1)


def _dcgan_critic(images, spec: experiments.Experiment, output, reuse: bool):
    """Conv 64 5x5, leaky ReLU, pool -> Conv 128 5x5, leaky ReLU, pool -> Dense 512, leaky ReLU
    -> Dense 1, then ``output``."""
    batch, stddev = spec.batch_size, spec.init_stddev
    with v1.variable_scope("discriminator_0", reuse=reuse):
        hidden = _max_pool(_conv(images, [5, 5, 1, 64], stddev, _leaky_relu))
    with v1.variable_scope("discriminator_1", reuse=reuse):
        hidden = _max_pool(_conv(hidden, [5, 5, 64, 128], stddev, _leaky_relu))
        hidden = tf.reshape(hidden, [batch, 7 * 7 * 128])
    with v1.variable_scope("discriminator_4", reuse=reuse):
        hidden = _dense(hidden, 7 * 7 * 128, 512, stddev, _leaky_relu)
    with v1.variable_scope("discriminator_5", reuse=reuse):
        return _dense(hidden, 512, 1, stddev, output)


_MODELS = {"mlp": (_mlp_generator, _mlp_critic), "dcgan": (_dcgan_generator, _dcgan_critic)}


def _optimizer(spec: experiments.Experiment, learning_rate: float):
    if spec.optimizer == "adam":
        return v1.train.AdamOptimizer(learning_rate=learning_rate, epsilon=experiments.ADAM_EPSILON)
    return v1.train.RMSPropOptimizer(learning_rate=learning_rate, decay=0.9, momentum=0.0)


def _count(variables) -> int:
    return int(sum(np.prod(v.shape.as_list()) for v in variables))


class Runner:
    """One experiment's graph, its session and its NumPy random state.

    Attributes:
        name: The experiment's name.
        batch_size: Real images per critic update, noise vectors per generator update.
        generator_params: Trainable parameters of the generator.
        critic_params: Trainable parameters of the critic.
        critic_steps: Critic updates per round.
        generator_steps: Generator updates per round.
        graph: The ``tf.Graph`` holding the models and updates.
        session: The ``tf.compat.v1.Session`` running ``graph``.
    """

    def __init__(self, spec: experiments.Experiment, images: np.ndarray, seed: int):
        self._spec = spec
        self.name = spec.name
        self.batch_size = spec.batch_size
        self.critic_steps = spec.critic_steps
        self.generator_steps = spec.generator_steps
        images = experiments.check_images(images, spec, spec.batch_size)
        if spec.architecture == "mlp":
            images = images.reshape(len(images), 28 * 28)
        self._images = images
        self._rng = np.random.RandomState(seed)

        build_generator, build_critic = _MODELS[spec.architecture]
        wasserstein = spec.loss == "wasserstein"
        critic_output = None if wasserstein else tf.nn.sigmoid
        self.graph = tf.Graph()
        with self.graph.as_default():
            v1.set_random_seed(seed)
            self._global_steps = (
                tf.Variable(0, trainable=False, name="global_step_d"),
                tf.Variable(0, trainable=False, name="global_step_g"),
            )
            global_step_d, global_step_g = self._global_steps
            self._image_x = v1.placeholder(tf.float32, [None, *images.shape[1:]], name="image_x")
            self._noise_x = v1.placeholder(tf.float32, [None, spec.latent_dim], name="noise_x")
            real = build_critic(self._image_x, spec, critic_output, reuse=False)
            fake_images = self._fake_images = build_generator(self._noise_x, spec)
            fake = build_critic(fake_images, spec, critic_output, reuse=True)
            if wasserstein:
                self._d_loss = tf.reduce_mean(fake) - tf.reduce_mean(real)
                self._g_loss = -tf.reduce_mean(fake)
            else:
                self._d_loss = -tf.reduce_mean(v1.log(real) + v1.log(1.0 - fake))
                self._g_loss = -tf.reduce_mean(v1.log(fake))

            trainable = v1.trainable_variables()
            g_vars = [v for v in trainable if "generator_" in v.name]
            d_vars = [v for v in trainable if "discriminator_" in v.name]
            self.generator_params = _count(g_vars)
            self.critic_params = _count(d_vars)
            self._train_d = _optimizer(spec, spec.critic_learning_rate).minimize(
                self._d_loss, global_step=global_step_d, var_list=d_vars
            )
            if spec.clip_value is not None:
                c = spec.clip_value
                with tf.control_dependencies([self._train_d]):
                    self._train_d = tf.group(
                        *[v1.assign(v, tf.clip_by_value(v, -c, c)) for v in d_vars]
                    )
            self._train_g = _optimizer(spec, spec.generator_learning_rate).minimize(
                self._g_loss, global_step=global_step_g, var_list=g_vars
            )
            init = v1.global_variables_initializer()
        self.graph.finalize()
        self.session = v1.Session(graph=self.graph)
        self.session.run(init)

    def _real_batch(self) -> np.ndarray:
        count = len(self._images)
        index = self._rng.choice(np.arange(count), size=self.batch_size, replace=False)
        return self._images[index]

    def _noise(self) -> np.ndarray:
        noise = self._rng.normal(
            loc=0.0, scale=self._spec.noise_stddev, size=(self.batch_size, self._spec.latent_dim)
        )
        return np.array(noise, dtype="float32")

    def _critic_update(self, noise: np.ndarray) -> float:
        _, loss = self.session.run(
            [self._train_d, self._d_loss],
            feed_dict={self._image_x: self._real_batch(), self._noise_x: noise},
        )
        return loss

    def _generator_update(self, noise: np.ndarray) -> float:
        _, loss = self.session.run([self._train_g, self._g_loss], feed_dict={self._noise_x: noise})
        return loss

    def run(self, generator_updates: int) -> dict[str, float]:
        """Trains ``generator_updates`` generator updates with the schedule's critic updates.

        Returns:
            The last critic and generator losses, as floats.
        """
        total = int(generator_updates)
        if total < 1:
            raise ValueError(f"generator_updates must be >= 1, got {generator_updates!r}.")
        done = 0
        d_loss = g_loss = float("nan")
        while done < total:
            steps = min(self.generator_steps, total - done)
            if self._spec.share_noise:
                noise = self._noise()
                d_loss = self._critic_update(noise)
                g_loss = self._generator_update(noise)
            else:
                for _ in range(self.critic_steps):
                    d_loss = self._critic_update(self._noise())
                for _ in range(steps):
                    g_loss = self._generator_update(self._noise())
            done += steps
        return {"critic_loss": float(d_loss), "generator_loss": float(g_loss)}

    def generate(self, count: int, seed: int) -> np.ndarray:
        """``count`` images from the generator (as the tutorial runs it: batch norm in training
        mode), in the experiment's value range, shaped ``(count, 28, 28, 1)``, from noise seeded
        by ``seed``. Drawn in batches of the training batch size; changes no weight (a batch-norm
        moving average moves, as on every pass through the tutorial's generator)."""
        rng = np.random.default_rng(seed)
        noise = rng.normal(0.0, self._spec.noise_stddev, (count, self._spec.latent_dim))
        out = [
            self.session.run(
                self._fake_images,
                feed_dict={self._noise_x: noise[i : i + self.batch_size].astype("float32")},
            )
            for i in range(0, count, self.batch_size)
        ]
        return np.concatenate(out).reshape(count, 28, 28, 1)

    def update_counts(self) -> dict[str, int]:
        """Critic and generator updates run so far (the optimizers' global steps)."""
        critic, generator = self.session.run(self._global_steps)
        return {"critic": int(critic), "generator": int(generator)}

    def close(self) -> None:
        """Closes the session."""
        self.session.close()


def make(
    experiment: str, images: np.ndarray, batch_size: int | None = None, seed: int = 0
) -> Runner:
    """Builds the tutorial-style TF1 program of ``experiment`` (``gan``, ``dcgan``, ``wgan``).

    Args:
        experiment: Experiment name.
        images: Training images, float32 ``(N, 28, 28, 1)`` in the experiment's value range
            ([0, 1] for ``gan``, [-1, 1] for ``dcgan`` and ``wgan``; see
            ``experiments.scale_pixels``).
        batch_size: Overrides the experiment's batch size.
        seed: Seeds the graph's initializers and the NumPy batches and noise.
    """
    return Runner(experiments.get(experiment, batch_size), images, seed)
