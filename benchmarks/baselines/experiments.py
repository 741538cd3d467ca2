"""The three experiments both baselines run, as plain settings, and checks on their inputs.

The numbers are those of ganpipe's shipped experiment files (gin/gan.gin, gin/dcgan.gin,
gin/wgan.gin and the gin/models/*.gin they include), which follow the seed tutorial.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One experiment's models, loss, optimizers and update schedule.

    Attributes:
        name: ``gan``, ``dcgan`` or ``wgan``.
        architecture: ``mlp`` (the fully connected models) or ``dcgan`` (the convolutional ones).
        batch_size: Real images per critic update and noise vectors per generator update.
        latent_dim: Length of the noise vector.
        noise_stddev: Standard deviation of the Gaussian noise.
        init_stddev: Standard deviation of the truncated-normal initializer of every weight and
            bias.
        loss: ``non_saturating`` (critic -log D(x) - log(1 - D(G(z))), generator -log D(G(z)),
            with D the sigmoid of the critic's score) or ``wasserstein`` (critic
            D(G(z)) - D(x), generator -D(G(z)), raw scores).
        optimizer: ``adam`` or ``rmsprop``, for both sides.
        critic_learning_rate: Critic optimizer's learning rate.
        generator_learning_rate: Generator optimizer's learning rate.
        critic_steps: Critic updates per round, each on its own real batch and noise.
        generator_steps: Generator updates per round, each on its own noise.
        share_noise: The generator update reuses the critic update's noise (1/1 schedule only).
        clip_value: Every critic weight is clipped to [-clip_value, clip_value] after every
            critic update; ``None`` for no clipping.
        value_range: The range the images are scaled to, matching the generator's output.
    """

    name: str
    architecture: str
    batch_size: int
    latent_dim: int
    noise_stddev: float
    init_stddev: float
    loss: str
    optimizer: str
    critic_learning_rate: float
    generator_learning_rate: float
    critic_steps: int
    generator_steps: int
    share_noise: bool
    clip_value: float | None
    value_range: tuple[float, float]


# Adam's epsilon for both sides (TF1's AdamOptimizer default, which gin/losses/non_saturating.gin
# sets for ganpipe's Keras Adam too).
ADAM_EPSILON = 1e-8
# Leaky ReLU slope: tf.nn.leaky_relu's default and Keras' 'leaky_relu' activation's.
LEAKY_SLOPE = 0.2
# The seed's hand-written batch norm: moving averages with decay 0.1, epsilon 1e-4, moving mean
# and variance starting at zero.
BATCH_NORM_DECAY = 0.1
BATCH_NORM_EPSILON = 1e-4

_DCGAN = Experiment(
    name="dcgan",
    architecture="dcgan",
    batch_size=50,
    latent_dim=6 * 6 * 128,
    noise_stddev=0.2,
    init_stddev=0.05,
    loss="non_saturating",
    optimizer="adam",
    critic_learning_rate=2e-5,
    generator_learning_rate=9e-5,
    critic_steps=5,
    generator_steps=50,
    share_noise=False,
    clip_value=None,
    value_range=(-1.0, 1.0),
)

EXPERIMENTS: dict[str, Experiment] = {
    "gan": Experiment(
        name="gan",
        architecture="mlp",
        batch_size=500,
        latent_dim=128,
        noise_stddev=1.0,
        init_stddev=0.1,
        loss="non_saturating",
        optimizer="adam",
        critic_learning_rate=2e-4,
        generator_learning_rate=2e-4,
        critic_steps=1,
        generator_steps=1,
        share_noise=True,
        clip_value=None,
        value_range=(0.0, 1.0),
    ),
    "dcgan": _DCGAN,
    # gin/wgan.gin: dcgan.gin with the Wasserstein loss, clipping at 0.01, RMSprop 5e-5 for both
    # sides and 5 critic updates per generator update; models, noise and batch stay DCGAN's.
    "wgan": dataclasses.replace(
        _DCGAN,
        name="wgan",
        loss="wasserstein",
        optimizer="rmsprop",
        critic_learning_rate=5e-5,
        generator_learning_rate=5e-5,
        critic_steps=5,
        generator_steps=1,
        clip_value=0.01,
    ),
}


def get(experiment: str, batch_size: int | None = None) -> Experiment:
    """The named experiment, with its batch size replaced when ``batch_size`` is given."""
    if experiment not in EXPERIMENTS:
        raise ValueError(
            f"Unknown experiment {experiment!r}; known: {', '.join(sorted(EXPERIMENTS))}."
        )
    spec = EXPERIMENTS[experiment]
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
        spec = dataclasses.replace(spec, batch_size=int(batch_size))
    return spec


def check_images(images: np.ndarray, spec: Experiment, min_count: int) -> np.ndarray:
    """Checks shape, count and value range; returns the images as C-contiguous float32.

    Args:
        images: Training images, shape ``(N, 28, 28, 1)``, scaled to ``spec.value_range``.
        spec: The experiment.
        min_count: The fewest images the caller's sampling needs.

    Raises:
        ValueError: Wrong shape, too few images, or values outside the experiment's range.
    """
    images = np.ascontiguousarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[1:] != (28, 28, 1):
        raise ValueError(f"images must have shape (N, 28, 28, 1), got {images.shape}.")
    if images.shape[0] < min_count:
        raise ValueError(
            f"{spec.name} with batch {spec.batch_size} needs at least {min_count} images, got "
            f"{images.shape[0]}."
        )
    low, high = spec.value_range
    if float(images.min()) < low - 1e-6 or float(images.max()) > high + 1e-6:
        raise ValueError(
            f"{spec.name} expects images in [{low}, {high}] (see scale_pixels), got values in "
            f"[{images.min()}, {images.max()}]."
        )
    return images


def scale_pixels(pixels: np.ndarray, experiment: str) -> np.ndarray:
    """Maps uint8 pixels ``(N, 28, 28, 1)`` to the experiment's range, as ganpipe's data does.

    [0, 1] is x / 255 (the tutorial's GAN); [-1, 1] is (x - 127.5) / 127.5 (its DCGAN).
    """
    low, high = get(experiment).value_range
    divisor = 255.0 / (high - low)
    return (np.asarray(pixels, np.float64) / divisor + low).astype(np.float32)
