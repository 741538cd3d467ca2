"""Critic weight constraints (applied after each critic update) and penalties (added to its loss).

Penalties: WGAN-GP's gradient penalty (``gradient_penalty``), R1 (``r1``) and DRAGAN (``dragan``).

Constraints are pure functions of a weight value and use ``keras.ops``; the trainer applies them to
every trainable critic weight in cross-replica context, so mirrored copies stay identical.
Penalties need the gradient of the critic with respect to its input, which is a backend operation:
this module takes it with ``tf.GradientTape``.
"""

from __future__ import annotations

import math

import tensorflow as tf
from keras import ops

from ganpipe.registry import Registry


class WeightConstraint:
    """Base class: maps a weight value to its constrained value."""

    name = "base"

    def __call__(self, value):
        raise NotImplementedError


class WeightClip(WeightConstraint):
    """Clips every weight to [-clip_value, clip_value] (Arjovsky et al., 2017, Algorithm 1).

    The paper uses c = 0.01.

    Args:
        clip_value: c > 0.
    """

    name = "weight_clip"

    def __init__(self, clip_value: float = 0.01):
        if (
            not (isinstance(clip_value, (int, float)) and math.isfinite(clip_value))
            or clip_value <= 0
        ):
            raise ValueError(
                f"WeightClip.clip_value must be a finite number > 0, got {clip_value!r}. The WGAN "
                "paper uses 0.01 (set `WeightClip.clip_value = 0.01`)."
            )
        self.clip_value = float(clip_value)

    def __call__(self, value):
        return ops.clip(value, -self.clip_value, self.clip_value)

    def __repr__(self) -> str:
        return f"WeightClip(clip_value={self.clip_value})"


class Penalty:
    """Base class: a per-example critic penalty, already multiplied by its weight."""

    name = "base"

    def __call__(self, critic, real, fake, rng: tf.random.Generator):
        """Returns the weighted penalty, shape ``(batch,)``.

        Args:
            critic: Callable mapping images to scores ``(batch, 1)`` (the live critic).
            real: Real images of this replica.
            fake: Generated images of this replica (treated as constants).
            rng: The trainer's replica-aware random generator.
        """
        raise NotImplementedError


class GradientPenalty(Penalty):
    """WGAN-GP's two-sided gradient penalty (Gulrajani et al., 2017, Algorithm 1).

    weight * (||grad_x D(x_hat)||_2 - target)^2 at x_hat = eps x + (1 - eps) G(z), eps ~ U[0, 1]
    drawn per example. The norm is sqrt(sum(g^2) + epsilon): finite, with a finite gradient, when
    the critic's gradient is exactly zero. The penalty is per example, so the critic should not mix
    examples (no batch norm in the critic; the paper uses layer norm instead).

    Args:
        weight: lambda, 10 in the paper.
        target: The gradient norm aimed at, 1 in the paper.
        epsilon: Added under the square root of the norm.
    """

    name = "gradient_penalty"

    def __init__(self, weight: float = 10.0, target: float = 1.0, epsilon: float = 1e-12):
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"GradientPenalty.weight must be finite and >= 0, got {weight!r}.")
        self.weight = float(weight)
        self.target = float(target)
        self.epsilon = float(epsilon)

    def __call__(self, critic, real, fake, rng):
        batch = tf.shape(real)[0]
        eps_shape = tf.concat([[batch], tf.ones([tf.rank(real) - 1], tf.int32)], axis=0)
        eps = rng.uniform(eps_shape, dtype=real.dtype)
        # Under mixed precision the generator's images arrive in 16 bits; interpolate in the real
        # images' dtype.
        fake = tf.cast(fake, real.dtype)
        interpolates = eps * real + (1.0 - eps) * tf.stop_gradient(fake)
        with tf.GradientTape() as tape:
            tape.watch(interpolates)
            scores = critic(interpolates)
        grads = tape.gradient(scores, interpolates)
        axes = list(range(1, len(real.shape)))
        norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=axes) + self.epsilon)
        return self.weight * tf.square(norm - self.target)

    def __repr__(self) -> str:
        return f"GradientPenalty(weight={self.weight}, target={self.target})"


def _non_negative(owner: str, name: str, value, hint: str) -> float:
    """``value`` as a float, or a ValueError naming ``owner.name`` unless it is finite and >= 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{owner}.{name} must be a finite number >= 0, got {value!r}. {hint}")
    return float(value)


def _input_gradient(critic, images):
    """The gradient of the critic's summed scores with respect to ``images``, in float32.

    Each score depends on its own image only (critics used with a penalty do not mix examples),
    so row i is grad_x D(x_i). Under mixed precision the scores may be 16-bit; the gradient is
    cast to float32 before any norm is taken.
    """
    with tf.GradientTape() as tape:
        tape.watch(images)
        scores = critic(images)
    grads = tape.gradient(scores, images)
    return tf.cast(grads, tf.float32)


def _squared_norms(grads):
    """Per-example squared L2 norm of a batch of gradients, shape ``(batch,)``."""
    return tf.reduce_sum(tf.square(grads), axis=list(range(1, len(grads.shape))))


class R1Penalty(Penalty):
    """The R1 regulariser (Mescheder et al., 2018): a zero-centred gradient penalty on the real
    data only.

    (gamma / 2) * ||grad_x D(x)||_2^2 at every real image x; the generated images are not used.
    The paper's image experiments (and the configs of its public code, `reg_param: 10.`) use
    gamma = 10 with the non-saturating loss. The penalty is per example, so the critic should
    not mix examples (no batch norm).

    Args:
        gamma: gamma >= 0 (the paper: 10).
    """

    name = "r1"

    def __init__(self, gamma: float = 10.0):
        self.gamma = _non_negative(
            "R1Penalty",
            "gamma",
            gamma,
            "Mescheder et al. (2018) use 10 (`R1Penalty.gamma = 10.0`).",
        )

    def __call__(self, critic, real, fake, rng):
        del fake, rng  # R1 looks at the real images only and draws nothing.
        grads = _input_gradient(critic, real)
        return 0.5 * self.gamma * _squared_norms(grads)

    def __repr__(self) -> str:
        return f"R1Penalty(gamma={self.gamma})"


def _global_std(images):
    """Standard deviation of every value of the global batch (all replicas, all pixels).

    On one replica this is ``tf.math.reduce_std`` over the whole batch (NumPy's ``x.std()``).
    Under a multi-replica strategy the sum and then the squared deviations are all-reduced, so N
    replicas get the one-replica value up to summation order.
    """
    images = tf.stop_gradient(images)
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return tf.math.reduce_std(images)
    count = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(tf.size(images), images.dtype))
    mean = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(images)) / count
    squares = tf.reduce_sum(tf.square(images - mean))
    return tf.sqrt(context.all_reduce(tf.distribute.ReduceOp.SUM, squares) / count)


class DraganPenalty(Penalty):
    """DRAGAN's gradient penalty around the real data (Kodali et al., 2017).

    weight * (||grad_x D(x_hat)||_2 - target)^2 with, for each real image x,

        delta = noise_scale * std(batch) * u,   u ~ U[0, 1) independently per pixel,
        x_hat = x + alpha * delta,              alpha ~ U[0, 1) per example (interpolate=True),
        x_hat = x + delta                       (interpolate=False),

    where std(batch) is the standard deviation of all values of the global real batch. This is
    the form of the authors' public code (DRAGAN.ipynb: the batch plus 0.5 * its std times
    uniform noise, then a random point on the segment from x to that perturbed x, lambda = 10,
    target 1). The paper writes the perturbation as a zero-mean Gaussian around x; the code's
    noise is one-sided ([0, 1)), which is what this class reproduces. The norm is
    sqrt(sum(g^2) + epsilon), finite with a finite gradient when the critic's gradient is zero.
    The generated images are not used.

    Both random tensors come from one draw of ``rng`` (alpha is its first column), because the
    trainer's stateless generator returns the same numbers for every call within an update.

    Args:
        weight: lambda >= 0 (10 in the paper and code).
        noise_scale: c >= 0, the perturbation's size in units of the batch's standard deviation
            (0.5 in the code).
        interpolate: Draw x_hat uniformly on the segment from x to x + delta (the code) instead
            of at x + delta.
        target: The gradient norm aimed at (1 in the paper and code).
        epsilon: Added under the square root of the norm.
    """

    name = "dragan"

    def __init__(
        self,
        weight: float = 10.0,
        noise_scale: float = 0.5,
        interpolate: bool = True,
        target: float = 1.0,
        epsilon: float = 1e-12,
    ):
        self.weight = _non_negative(
            "DraganPenalty", "weight", weight, "Kodali et al. (2017) use 10."
        )
        self.noise_scale = _non_negative(
            "DraganPenalty",
            "noise_scale",
            noise_scale,
            "It is in units of the real batch's standard deviation; the authors' code uses 0.5.",
        )
        if not isinstance(interpolate, bool):
            raise ValueError(
                f"DraganPenalty.interpolate must be True or False, got {interpolate!r}."
            )
        self.interpolate = interpolate
        self.target = _non_negative("DraganPenalty", "target", target, "The paper uses 1.")
        self.epsilon = _non_negative(
            "DraganPenalty", "epsilon", epsilon, "It only keeps the norm differentiable at 0."
        )

    def perturb(self, real, rng):
        """The points x_hat where the gradient is taken (one per real image)."""
        shape = tf.shape(real)
        batch = shape[0]
        size = tf.reduce_prod(shape[1:])
        draw = rng.uniform(tf.stack([batch, size + 1]), dtype=real.dtype)
        alpha = draw[:, :1] if self.interpolate else tf.ones_like(draw[:, :1])
        noise = tf.reshape(draw[:, 1:], shape)
        alpha = tf.reshape(alpha, tf.concat([[batch], tf.ones([tf.rank(real) - 1], tf.int32)], 0))
        delta = (self.noise_scale * _global_std(real)) * noise
        return real + alpha * delta

    def __call__(self, critic, real, fake, rng):
        del fake  # DRAGAN looks at the neighbourhood of the real images only.
        grads = _input_gradient(critic, self.perturb(real, rng))
        norm = tf.sqrt(_squared_norms(grads) + self.epsilon)
        return self.weight * tf.square(norm - self.target)

    def __repr__(self) -> str:
        return (
            f"DraganPenalty(weight={self.weight}, noise_scale={self.noise_scale}, "
            f"interpolate={self.interpolate}, target={self.target})"
        )


CONSTRAINTS = Registry(
    "constraint",
    {WeightClip.name: WeightClip},
    aliases={"clip": "weight_clip", "clipping": "weight_clip", "weight_clipping": "weight_clip"},
    base=WeightConstraint,
)
PENALTIES = Registry(
    "penalty",
    {
        GradientPenalty.name: GradientPenalty,
        R1Penalty.name: R1Penalty,
        DraganPenalty.name: DraganPenalty,
    },
    aliases={
        "gp": "gradient_penalty",
        "wgan_gp": "gradient_penalty",
        "r1_penalty": "r1",
        "r1_regularization": "r1",
        "dragan_penalty": "dragan",
    },
    base=Penalty,
)


def get_constraint(identifier) -> WeightConstraint | None:
    """Constraint for a name, config dict, instance or None."""
    return CONSTRAINTS.get(identifier)


def get_penalty(identifier) -> Penalty | None:
    """Penalty for a name, config dict, instance or None."""
    return PENALTIES.get(identifier)
