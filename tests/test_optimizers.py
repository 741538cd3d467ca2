"""Optimizer registry, hyperparameter validation, and the fused Adam update."""

import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

from ganpipe import config, optimizers
from tests.conftest import make_trainer


@pytest.mark.parametrize(
    "name, cls",
    [
        ("adam", optimizers.Adam),
        ("rmsprop", keras.optimizers.RMSprop),
        ("sgd", keras.optimizers.SGD),
        ("adamw", optimizers.AdamW),
    ],
)
def test_registry_round_trip(name, cls):
    made = optimizers.get(name, "critic")
    assert type(made) is cls
    assert optimizers.get(made, "critic") is made
    assert (
        type(optimizers.get({"class_name": name, "config": {"learning_rate": 0.1}}, "critic"))
        is cls
    )
    assert type(optimizers.get(lambda: cls(learning_rate=0.1), "critic")) is cls


@pytest.mark.parametrize("lr", [-1e-4, 0.0, float("nan")])
def test_bad_learning_rate_names_role_and_binding(lr):
    with pytest.raises(ValueError, match=r"critic optimizer's learning rate.*critic/RMSprop"):
        optimizers.get(keras.optimizers.RMSprop(learning_rate=lr), "critic")


def test_schedule_checked_at_step_zero():
    schedule = keras.optimizers.schedules.ExponentialDecay(-1e-3, decay_steps=10, decay_rate=0.5)
    with pytest.raises(ValueError, match="ExponentialDecay"):
        optimizers.get(keras.optimizers.Adam(learning_rate=schedule), "generator")
    good = keras.optimizers.schedules.ExponentialDecay(1e-3, decay_steps=10, decay_rate=0.5)
    assert optimizers.get(keras.optimizers.Adam(learning_rate=good), "generator")


def test_bad_beta_rejected():
    with pytest.raises(ValueError, match="beta_2 must lie in"):
        optimizers.get(keras.optimizers.Adam(beta_2=1.5), "generator")


def test_unknown_and_missing():
    with pytest.raises(ValueError, match="Unknown optimizer 'adma'.*'adam'"):
        optimizers.get("adma", "generator")
    with pytest.raises(ValueError, match="No generator optimizer"):
        optimizers.get(None, "generator")


@pytest.mark.parametrize("name", optimizers.SCHEDULES.names())
def test_schedule_registry_round_trip(name):
    configs = {
        "piecewise_constant_decay": {"boundaries": [10], "values": [1e-3, 1e-4]},
        "cosine_decay": {"initial_learning_rate": 1e-3, "decay_steps": 10},
    }
    config = configs.get(name, {"initial_learning_rate": 1e-3, "decay_steps": 10})
    if name in ("exponential_decay", "inverse_time_decay"):
        config = {**config, "decay_rate": 0.5}
    schedule = optimizers.SCHEDULES.get({"class_name": name, "config": config})
    assert isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule)
    assert optimizers.SCHEDULES.get(schedule) is schedule
    # A schedule drives the optimizer and is validated at step 0.
    assert optimizers.get(keras.optimizers.SGD(learning_rate=schedule), "critic")


# --- Fused Adam: the same update as Keras' element-wise one, as one kernel per variable.

SHAPES = [(7, 5), (5,), (3, 4, 2)]


def _run(optimizer, steps=4, seed=0):
    """Applies ``steps`` fixed random gradients in a tf.function; returns (weights, op types)."""
    rng = np.random.default_rng(seed)
    variables = [keras.Variable(rng.normal(size=s).astype("float32")) for s in SHAPES]
    grads = [
        [tf.constant(rng.normal(size=s).astype("float32")) for s in SHAPES] for _ in range(steps)
    ]
    optimizer.build(variables)

    @tf.function
    def apply(gradients):
        optimizer.apply_gradients(zip(gradients, variables))

    for gradients in grads:
        apply(gradients)
    graph = apply.get_concrete_function(grads[0]).graph.as_graph_def()
    ops = {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}
    return [np.asarray(v) for v in variables], ops, grads


def _adam_by_hand(seed, grads, learning_rate, beta_1, beta_2, epsilon, weight_decay=0.0):
    lr = learning_rate
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=s).astype("float64") for s in SHAPES]
    m = [np.zeros(s) for s in SHAPES]
    v = [np.zeros(s) for s in SHAPES]
    for t, gradients in enumerate(grads, start=1):
        alpha = lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        for i, g in enumerate(gradients):
            g = g.numpy().astype("float64")
            weights[i] = weights[i] - weights[i] * weight_decay * lr
            m[i] = m[i] + (g - m[i]) * (1 - beta_1)
            v[i] = v[i] + (g * g - v[i]) * (1 - beta_2)
            weights[i] = weights[i] - alpha * m[i] / (np.sqrt(v[i]) + epsilon)
    return weights


@pytest.mark.parametrize("cls, weight_decay", [(optimizers.Adam, None), (optimizers.AdamW, 0.1)])
def test_fused_adam_runs_one_kernel_and_matches_the_formula_and_keras(cls, weight_decay):
    hyper = dict(learning_rate=0.05, beta_1=0.5, beta_2=0.9, epsilon=1e-3)
    kwargs = {**hyper, **({} if weight_decay is None else {"weight_decay": weight_decay})}
    fused, fused_ops, grads = _run(cls(**kwargs))
    plain, plain_ops, _ = _run(cls(fused=False, **kwargs))
    assert "ResourceApplyAdam" in fused_ops
    assert "ResourceApplyAdam" not in plain_ops
    by_hand = _adam_by_hand(0, grads, weight_decay=weight_decay or 0.0, **hyper)
    start = [np.random.default_rng(0).normal(size=s) for s in SHAPES]
    for a, b, c, w0 in zip(fused, plain, by_hand, start):
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
        assert np.abs(a - w0).max() > 0.01  # the weights really moved


def test_a_checkpoint_of_keras_adam_restores_into_fused_adam(tmp_path):
    """Checkpoints do not depend on ``fused``: same slots, same checkpoint keys."""
    plain = optimizers.Adam(learning_rate=0.05, fused=False)
    _run(plain)
    path = tf.train.Checkpoint(optimizer=plain).write(str(tmp_path / "ckpt"))
    fused = optimizers.Adam(learning_rate=0.05)
    fused.build([keras.Variable(np.zeros(s, "float32")) for s in SHAPES])
    tf.train.Checkpoint(optimizer=fused).read(path).assert_consumed()
    assert int(fused.iterations) == 4
    for a, b in zip(fused.variables, plain.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_amsgrad_falls_back_to_keras_update_and_says_so(caplog):
    with caplog.at_level(logging.INFO, logger="absl"):
        optimizer = optimizers.Adam(learning_rate=0.05, amsgrad=True)
    assert "no fused kernel for amsgrad=True" in caplog.text
    weights, ops, _ = _run(optimizer)
    reference, _, _ = _run(keras.optimizers.Adam(learning_rate=0.05, amsgrad=True))
    assert "ResourceApplyAdam" not in ops
    for a, b in zip(weights, reference):
        np.testing.assert_array_equal(a, b)


def test_fused_must_be_a_bool():
    with pytest.raises(ValueError, match="Adam.fused must be True or False"):
        optimizers.Adam(fused="yes")


def test_gin_switches_fusion_per_role_and_catches_a_misspelt_adam_parameter():
    trainer = make_trainer("dcgan", "generator/Adam.fused = False")
    assert type(trainer.generator_optimizer) is optimizers.Adam
    assert (trainer.generator_optimizer.fused, trainer.critic_optimizer.fused) == (False, True)
    with pytest.raises(config.ConfigError, match=r"did you mean \['learning_rate'\]"):
        config.parse(["gin/dcgan.gin"], ["generator/Adam.learning_rat = 1e-3"])
