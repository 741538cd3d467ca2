"""Optimizers and learning-rate schedules, configured separately for generator and critic.

Gin files bind Keras' own optimizer classes under role scopes and pass them as factories (no
parentheses), so the trainer creates them inside ``strategy.scope()``::

    critic/RMSprop.learning_rate = 5e-5
    train.critic_optimizer = @critic/RMSprop

``get`` also takes a name (``'adam'``), a Keras config dict, or an instance.
"""

from __future__ import annotations

import math
from typing import Any

import keras

from ganpipe.registry import Registry

OPTIMIZERS = Registry(
    "optimizer",
    {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "rmsprop": keras.optimizers.RMSprop,
        "sgd": keras.optimizers.SGD,
    },
    base=keras.optimizers.Optimizer,
)

SCHEDULES = Registry(
    "learning-rate schedule",
    {
        "exponential_decay": keras.optimizers.schedules.ExponentialDecay,
        "cosine_decay": keras.optimizers.schedules.CosineDecay,
        "piecewise_constant_decay": keras.optimizers.schedules.PiecewiseConstantDecay,
        "polynomial_decay": keras.optimizers.schedules.PolynomialDecay,
        "inverse_time_decay": keras.optimizers.schedules.InverseTimeDecay,
    },
    base=keras.optimizers.schedules.LearningRateSchedule,
)

# Hyperparameter -> (lowest allowed, highest allowed, lowest inclusive, highest inclusive).
_BOUNDS = {
    "beta_1": (0.0, 1.0, True, False),
    "beta_2": (0.0, 1.0, True, False),
    "rho": (0.0, 1.0, True, False),
    "momentum": (0.0, math.inf, True, False),
    "epsilon": (0.0, math.inf, False, False),
}


def _number(value: Any) -> float:
    try:
        return float(keras.ops.convert_to_numpy(value))
    except (TypeError, ValueError):
        return float(value)


def validate(optimizer: keras.optimizers.Optimizer, role: str) -> None:
    """Raises ValueError, naming the gin binding to change, for a hyperparameter out of range."""
    cls = type(optimizer).__name__
    lr = optimizer._learning_rate  # The schedule itself, where there is one.
    if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
        first = _number(lr(0))
        where = f"{role}/{type(lr).__name__} (its value at step 0)"
    else:
        first = _number(lr)
        where = f"{role}/{cls}.learning_rate"
    if not math.isfinite(first) or first <= 0:
        raise ValueError(
            f"The {role} optimizer's learning rate must be a finite number > 0, got {first:.6g}. "
            f"Set {where} to a positive value."
        )
    for name, (low, high, low_inclusive, high_inclusive) in _BOUNDS.items():
        if not hasattr(optimizer, name):
            continue
        value = getattr(optimizer, name)
        if value is None or callable(value):
            continue
        value = _number(value)
        too_low = value < low if low_inclusive else value <= low
        too_high = value > high if high_inclusive else value >= high
        if too_low or too_high or math.isnan(value):
            interval = (
                f"{'[' if low_inclusive else '('}{low}, {high}{']' if high_inclusive else ')'}"
            )
            raise ValueError(
                f"The {role} optimizer's {name} must lie in {interval}, got {value:.6g}. "
                f"Set {role}/{cls}.{name}."
            )


def get(identifier: Any, role: str) -> keras.optimizers.Optimizer:
    """Creates (or passes through) an optimizer and validates it.

    Call inside ``strategy.scope()``: Keras' TensorFlow optimizer binds to the strategy in scope
    when it is created.

    Args:
        identifier: A factory (gin reference), name, config dict or instance.
        role: "generator" or "critic", for error messages.
    """
    if identifier is None:
        raise ValueError(
            f"No {role} optimizer is configured. Bind one, e.g. `train.{role}_optimizer = "
            f"@{role}/Adam` with `{role}/Adam.learning_rate = 2e-4`."
        )
    optimizer = OPTIMIZERS.get(identifier)
    validate(optimizer, role)
    return optimizer
