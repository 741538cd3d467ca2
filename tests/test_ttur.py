"""TTUR (Heusel et al., 2017): gin/ttur.gin is the Radford DCGAN with two learning rates."""

import keras
import numpy as np
import pytest

import gin
from tests.conftest import binding_diff, make_trainer, operative_bindings

# What ttur.gin changes on top of dcgan_radford.gin (see the comments in gin/ttur.gin).
TTUR_SWITCHES = {
    "critic/Adam.learning_rate": ("0.0002", "0.0004"),
    "generator/Adam.learning_rate": ("0.0002", "0.0001"),
}


def test_dcgan_radford_to_ttur_is_exactly_the_ttur_switches():
    base = operative_bindings("dcgan_radford")
    gin.clear_config()
    keras.utils.clear_session()
    ttur = operative_bindings("ttur")
    assert binding_diff(base, ttur) == TTUR_SWITCHES
    # The schedule stays one update each.
    assert ttur["Schedule.critic_steps"] == ttur["Schedule.generator_steps"] == "1"


def _changes(variables, before):
    return np.concatenate([np.abs(np.asarray(v) - b).ravel() for v, b in zip(variables, before)])


@pytest.mark.parametrize(
    "experiment, critic_lr, generator_lr",
    [("ttur", 4e-4, 1e-4), ("dcgan_radford", 2e-4, 2e-4)],
)
def test_one_update_moves_each_side_by_its_learning_rate(experiment, critic_lr, generator_lr):
    trainer = make_trainer(experiment)
    assert float(trainer.critic_optimizer.learning_rate) == pytest.approx(critic_lr)
    assert float(trainer.generator_optimizer.learning_rate) == pytest.approx(generator_lr)

    # Adam's first step is lr * m / (sqrt(v) + eps) with the bias-corrected m = g and v = g^2,
    # i.e. lr * g / (|g| + eps): every weight whose gradient is not tiny moves by lr.
    critic_before = [np.array(v) for v in trainer.critic.trainable_variables]
    generator_before = [np.array(v) for v in trainer.generator.trainable_variables]
    trainer.train_critic()
    critic_step = _changes(trainer.critic.trainable_variables, critic_before)
    assert not _changes(trainer.generator.trainable_variables, generator_before).any()
    trainer.train_generator()
    generator_step = _changes(trainer.generator.trainable_variables, generator_before)

    assert np.median(critic_step) == pytest.approx(critic_lr, rel=0.02)
    assert np.median(generator_step) == pytest.approx(generator_lr, rel=0.02)
    assert critic_step.max() <= critic_lr * 1.001
    assert generator_step.max() <= generator_lr * 1.001
    ratio = np.median(critic_step) / np.median(generator_step)
    assert ratio == pytest.approx(critic_lr / generator_lr, rel=0.03)
