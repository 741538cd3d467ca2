"""Optimizer registry and hyperparameter validation."""

import keras
import pytest

from ganpipe import optimizers


@pytest.mark.parametrize(
    "name, cls",
    [
        ("adam", keras.optimizers.Adam),
        ("rmsprop", keras.optimizers.RMSprop),
        ("sgd", keras.optimizers.SGD),
        ("adamw", keras.optimizers.AdamW),
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
