"""Critic weight constraints, applied after each critic update: WGAN's weight clipping
(``weight_clip``).

Constraints are pure functions of a weight value and use ``keras.ops``; the trainer applies them to
every trainable critic weight in cross-replica context, so mirrored copies stay identical.
Penalties added to the critic's loss (gradient penalty, R1, DRAGAN) are in ``ganpipe.penalties``.
"""

from __future__ import annotations

import math

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


CONSTRAINTS = Registry(
    "constraint",
    {WeightClip.name: WeightClip},
    aliases={"clip": "weight_clip", "clipping": "weight_clip", "weight_clipping": "weight_clip"},
    base=WeightConstraint,
)


def get_constraint(identifier) -> WeightConstraint | None:
    """Constraint for a name, config dict, instance or None."""
    return CONSTRAINTS.get(identifier)


# Keras-shaped name, as losses.get and penalties.get; get_constraint stays for existing callers.
get = get_constraint
