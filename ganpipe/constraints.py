"""Critic weight constraints (applied after each critic update) and penalties (added to its loss).

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


CONSTRAINTS = Registry(
    "constraint",
    {WeightClip.name: WeightClip},
    aliases={"clip": "weight_clip", "clipping": "weight_clip", "weight_clipping": "weight_clip"},
    base=WeightConstraint,
)
PENALTIES = Registry(
    "penalty",
    {GradientPenalty.name: GradientPenalty},
    aliases={"gp": "gradient_penalty", "wgan_gp": "gradient_penalty"},
    base=Penalty,
)


def get_constraint(identifier) -> WeightConstraint | None:
    """Constraint for a name, config dict, instance or None."""
    return CONSTRAINTS.get(identifier)


def get_penalty(identifier) -> Penalty | None:
    """Penalty for a name, config dict, instance or None."""
    return PENALTIES.get(identifier)
