"""Computes the objective's parts and first updates on the Keras backend this process runs on.

    KERAS_BACKEND=jax python -m tests.backend_parity INPUTS.npz OUTPUTS.npz

``tests/test_backend_parity.py`` runs it under JAX (with ``import tensorflow`` made to fail) and
calls ``compute`` in its own TensorFlow process on the same inputs, then compares the two. Every
random number comes from ``FixedDraws`` (``fixed_streams``), so both backends see the same
numbers.
"""

from __future__ import annotations

import os
import sys

import numpy as np

LOSS_NAMES = (
    "minimax", "non_saturating", "wasserstein", "hinge", "least_squares", "rpgan",
    "relativistic_average", "relativistic_average_least_squares", "relativistic_average_hinge",
)  # fmt: skip
PENALTIES = ("r1", "r2", "r1_r2", "gradient_penalty", "dragan")
EXPERIMENTS = ("gan", "recommended", "wgan_gp")
PENALIZED = ("recommended", "wgan_gp")  # lazy R1 (due on the first update), the gradient penalty


class FixedDraws:
    """The random-stream interface (``normal``, ``uniform``, ``integers``, ``split``) with
    numbers fixed by a seed and the shape: the same on every backend."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def split(self, count: int):
        return [FixedDraws(self.seed * 31 + i + 1) for i in range(count)]

    @staticmethod
    def _dtype(dtype):
        return np.dtype(getattr(dtype, "as_numpy_dtype", dtype))

    def _rng(self, shape):
        return np.random.default_rng([self.seed, *[int(d) for d in shape]])

    def normal(self, shape, mean=0.0, stddev=1.0, dtype="float32"):
        draw = self._rng(shape).standard_normal(tuple(int(d) for d in shape))
        return (mean + stddev * draw).astype(self._dtype(dtype))

    def uniform(self, shape, minval=0.0, maxval=1.0, dtype="float32"):
        draw = self._rng(shape).uniform(minval, maxval, tuple(int(d) for d in shape))
        return draw.astype(self._dtype(dtype))

    def integers(self, shape, maxval: int, dtype="int32"):
        draw = self._rng(shape).integers(0, maxval, tuple(int(d) for d in shape))
        return draw.astype(self._dtype(dtype))


def _losses(inputs) -> dict:
    from ganpipe import losses

    out = {}
    real, fake = inputs["real_scores"], inputs["fake_scores"]
    for name in LOSS_NAMES:
        loss = losses.get(name)
        out[f"loss/{name}/critic"] = np.asarray(loss.critic(real, fake))
        out[f"loss/{name}/generator"] = np.asarray(loss.generator(fake, real_scores=real))
    return out


def _critic(inputs):
    import keras

    critic = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="tanh"),
         keras.layers.Flatten(), keras.layers.Dense(1)]
    )  # fmt: skip
    critic.set_weights([inputs[f"critic/{i}"] for i in range(len(critic.weights))])
    return critic


def _penalties(inputs) -> dict:
    import keras

    from ganpipe import augment, penalties

    critic = _critic(inputs)
    real, fake = (keras.ops.convert_to_tensor(inputs[k]) for k in ("real", "fake"))
    out = {}
    for name in PENALTIES:
        value = penalties.get(name)(critic, real, fake, FixedDraws(7))
        out[f"penalty/{name}"] = np.asarray(value)
    for name in ("diffaugment", "ada"):
        part = augment.get(name)
        if hasattr(part, "build"):
            part.build()
        if name == "ada":
            part.p.assign(0.6)
        out[f"augment/{name}"] = np.asarray(part(real, FixedDraws(3)))
    return out


def _first_updates(inputs, experiment: str, prefix: str = "") -> dict:
    """The first critic and generator updates of ``experiment`` from the weights in ``inputs``,
    with plain SGD (lr 0.01) on both sides: a weight's step is the learning rate times its
    gradient, so the weights compare gradients (Adam's first step is about lr * sign(g), which
    would compare signs alone)."""
    import keras

    import gin
    from ganpipe import backend, config

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    gin.clear_config()
    config.parse(
        [os.path.join(repo, "gin", f"{experiment}.gin"),
         os.path.join(repo, "gin", "testing", "tiny.gin")],
        ["EMA.decay = None", "EMA.start = 0", "train.generator_optimizer = 'sgd'",
         "train.critic_optimizer = 'sgd'"],
    )  # fmt: skip
    trainer = config.make_trainer()
    s, steps = trainer.state, trainer.steps
    for model, key in ((s.generator, "generator"), (s.critic, "critic")):
        model.set_weights([inputs[f"{experiment}/{key}/{i}"] for i in range(len(model.weights))])
    given, prefix = f"{experiment}/", f"{prefix}{experiment}/"
    real = keras.ops.convert_to_tensor(inputs[given + "real"])
    labels = inputs.get(given + "labels")
    labels = None if labels is None else keras.ops.convert_to_tensor(labels)
    batch = real if labels is None else (real, labels)
    noise = keras.ops.convert_to_tensor(inputs[given + "noise"])
    fake_labels = labels
    if backend.IN_PLACE:  # the state is the variables
        _, critic = steps.critic_update(steps.parts, batch, noise=noise, fake_labels=fake_labels)
        _, generator = steps.generator_update(steps.parts, noise, fake_labels)
    else:
        state = backend.functional(steps.parts)
        state, critic = backend.compile(steps.critic_update)(state, batch, noise, fake_labels)
        state, generator = backend.compile(steps.generator_update)(state, noise, fake_labels)
        backend.load_state(steps.parts, state)
    out = {f"{prefix}metric/{k}": np.asarray(v) for k, v in {**critic, **generator}.items()}
    for model, key in ((s.generator, "generator"), (s.critic, "critic")):
        for i, w in enumerate(model.get_weights()):
            out[f"{prefix}{key}_after/{i}"] = w
    return out


def compute(inputs) -> dict:
    out = {**_losses(inputs), **_penalties(inputs)}
    for experiment in EXPERIMENTS:
        out.update(_first_updates(inputs, experiment))
    return out


def without_second_order(inputs) -> dict:
    """The first updates of the experiments with a penalty, their penalty's input gradient
    cut from the critic's gradient (``stop_gradient``): what dropping the second-order term
    would train. ``tests/test_backend_parity.py`` checks its tolerances refuse it."""
    from keras import ops

    from ganpipe import backend

    exact = backend.input_gradients

    def first_order(fn, x):
        outputs, grads = exact(fn, x)
        return outputs, ops.stop_gradient(grads)

    backend.input_gradients = first_order
    try:
        return {
            k: v
            for experiment in PENALIZED
            for k, v in _first_updates(inputs, experiment, "first_order/").items()
        }
    finally:
        backend.input_gradients = exact


def fixed_streams(patch=setattr) -> None:
    """Makes every update draw from ``FixedDraws`` (by stream id) instead of the backend's
    random streams; ``patch`` is ``setattr`` or a pytest monkeypatch's."""
    from ganpipe.training import steps

    patch(steps.Steps, "random", lambda self, counter, stream: FixedDraws(stream))


if __name__ == "__main__":
    sys.modules["tensorflow"] = None  # This side must not need TensorFlow.
    fixed_streams()
    with np.load(sys.argv[1]) as loaded:
        arrays = {k: loaded[k] for k in loaded.files}
    np.savez(sys.argv[2], **compute(arrays), **without_second_order(arrays))
