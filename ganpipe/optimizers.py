"""Optimizers and learning-rate schedules, configured separately for generator and critic.

Gin files bind Keras' own optimizer classes under role scopes and pass them as factories (no
parentheses), so the trainer creates them inside ``strategy.scope()``::

    critic/RMSprop.learning_rate = 5e-5
    train.critic_optimizer = @critic/RMSprop

``get`` also takes a name (``'adam'``), a Keras config dict, or an instance.

``Adam`` and ``AdamW`` here are Keras' classes with one change, ``fused`` (default on): each
variable's update runs as TensorFlow's single ``ResourceApplyAdam`` kernel, one pass over the
weight and its two slots, instead of Keras' dozen element-wise operations, each a full pass over
memory. Same formula, same slots, same checkpoints; on the seed DCGAN's 21.2M-weight dense layer
it is the difference between a memory-bound update and a cheap one (docs/results.md, "Speed").
``fused = False`` gives Keras' own update.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import keras
from absl import logging

from ganpipe.lazy_tf import tf
from ganpipe.registry import Registry


def _handle(variable):
    """The resource handle of a Keras or TensorFlow variable (this device's copy when mirrored)."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle


class _FusedAdamStep:
    """Runs Adam's per-variable update as ``tf.raw_ops.ResourceApplyAdam``.

    The kernel computes exactly Keras' update: m += (g - m)(1 - beta_1);
    v += (g^2 - v)(1 - beta_2); w -= alpha m / (sqrt(v) + epsilon) with
    alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t), t = iterations + 1. AdamW's decoupled weight
    decay is applied by Keras before this step, as without fusion.
    """

    def __init__(self, *args, fused: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(fused, bool):
            raise ValueError(f"{type(self).__name__}.fused must be True or False, got {fused!r}.")
        self.fused = fused
        from ganpipe import backend  # Here: the backend imports the data and the models.

        self._use_fused = fused and backend.FUSED_OPTIMIZERS and not self.amsgrad
        if fused and not self._use_fused:
            why = "amsgrad=True" if self.amsgrad else f"the {backend.NAME} backend"
            logging.info(
                "%s: no fused kernel for %s; using Keras' element-wise update.",
                type(self).__name__,
                why,
            )

    def update_step(self, gradient, variable, learning_rate):
        if not self._use_fused:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]),
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
            use_locking=False,
        )

    def get_config(self):
        return {**super().get_config(), "fused": self.fused}


def _fused_init(keras_class):
    """An ``__init__`` whose signature is ``keras_class``'s named parameters plus ``fused``.

    Without ``**kwargs`` in the signature, gin rejects a misspelt parameter while parsing (with
    close-match hints) instead of Keras rejecting it when the trainer is built.
    """

    def __init__(self, *args, **kwargs):
        _FusedAdamStep.__init__(self, *args, **kwargs)

    params = inspect.signature(keras_class.__init__).parameters.values()
    named = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
    fused = inspect.Parameter("fused", inspect.Parameter.KEYWORD_ONLY, default=True)
    __init__.__signature__ = inspect.Signature([*named, fused])
    return __init__


class Adam(_FusedAdamStep, keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with a fused update (``fused``, default True)."""

    __init__ = _fused_init(keras.optimizers.Adam)


class AdamW(_FusedAdamStep, keras.optimizers.AdamW):
    """``keras.optimizers.AdamW`` with a fused update (``fused``, default True)."""

    __init__ = _fused_init(keras.optimizers.AdamW)


OPTIMIZERS = Registry(
    "optimizer",
    {
        "adam": Adam,
        "adamw": AdamW,
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
