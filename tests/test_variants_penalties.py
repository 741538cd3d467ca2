"""The R1, DRAGAN and SNGAN experiment files: each differs from dcgan.gin by exactly its documented
switches; spectral normalisation reaches every weighted critic layer (and no generator layer),
keeps each kernel's largest singular value at 1, and resumes exactly."""

import keras
import numpy as np
import pytest

import gin
from ganpipe.models import factories
from tests.conftest import (
    ADAM_TO_RMSPROP,
    binding_diff,
    make_trainer,
    operative_bindings,
    train_run,
)

# What each file changes on top of dcgan.gin (see the comments in gin/r1.gin, gin/dragan.gin,
# gin/sngan.gin).
DCGAN_SCHEDULE_TO_ONE_ONE = {
    "Schedule.critic_steps": ("5", "1"),
    "Schedule.generator_steps": ("50", "1"),
}
R1_SWITCHES = {
    "train.penalty": ("None", "@R1Penalty()"),
    "R1Penalty.gamma": (None, "10.0"),
    **ADAM_TO_RMSPROP,
    "generator/RMSprop.learning_rate": (None, "0.0001"),
    "critic/RMSprop.learning_rate": (None, "0.0001"),
    **DCGAN_SCHEDULE_TO_ONE_ONE,
}
DRAGAN_SWITCHES = {
    "train.penalty": ("None", "@DraganPenalty()"),
    "DraganPenalty.weight": (None, "10.0"),
    "DraganPenalty.noise_scale": (None, "0.5"),
    "generator/Adam.learning_rate": ("9e-05", "0.0001"),
    "critic/Adam.learning_rate": ("2e-05", "0.0001"),
    "generator/Adam.beta_1": (None, "0.5"),
    "generator/Adam.beta_2": (None, "0.9"),
    "critic/Adam.beta_1": (None, "0.5"),
    "critic/Adam.beta_2": (None, "0.9"),
    **DCGAN_SCHEDULE_TO_ONE_ONE,
}
SNGAN_SWITCHES = {
    "build_critic.spectral_norm": (None, "True"),
    "train.loss": ("'non_saturating'", "'hinge'"),
    "generator/Adam.learning_rate": ("9e-05", "0.0001"),
    "critic/Adam.learning_rate": ("2e-05", "0.0001"),
    "generator/Adam.beta_1": (None, "0.5"),
    "generator/Adam.beta_2": (None, "0.999"),
    "critic/Adam.beta_1": (None, "0.5"),
    "critic/Adam.beta_2": (None, "0.999"),
    **DCGAN_SCHEDULE_TO_ONE_ONE,
}
SWITCHES = {"r1": R1_SWITCHES, "dragan": DRAGAN_SWITCHES, "sngan": SNGAN_SWITCHES}


@pytest.fixture(scope="module")
def dcgan_operative():
    gin.clear_config()
    keras.utils.clear_session()
    return operative_bindings("dcgan")


@pytest.mark.parametrize("experiment", sorted(SWITCHES))
def test_dcgan_to_variant_is_exactly_its_switches(dcgan_operative, experiment):
    gin.clear_config()
    keras.utils.clear_session()
    assert binding_diff(dcgan_operative, operative_bindings(experiment)) == SWITCHES[experiment]


@pytest.mark.parametrize("experiment", sorted(SWITCHES))
def test_variant_trains_under_mixed_bfloat16_with_float32_losses(experiment):
    trainer = make_trainer(experiment, "Numerics.precision = 'mixed_bfloat16'")
    assert trainer.critic.layers[1].compute_dtype == "bfloat16"
    metrics = trainer.train_round(1)
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    assert ("gradient_penalty" in metrics) == (experiment != "sngan")
    if experiment != "sngan":
        assert metrics["gradient_penalty"] > 0


# --- Spectral normalisation ----------------------------------------------------------------------

WEIGHTED = (keras.layers.Dense, keras.layers.Conv2D, keras.layers.Conv2DTranspose)


def _spectral_layers(model):
    return [x for x in model.layers if isinstance(x, keras.layers.SpectralNormalization)]


def _largest_singular_value(kernel):
    """As Keras' SpectralNormalization sees a kernel: a matrix with one column per output unit."""
    kernel = np.asarray(kernel, np.float64)
    return float(np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0])


def _used_spectral_norms(trainer, layers):
    """Largest singular value of each layer's kernel as the layer uses it in training.

    Keras' wrapper normalises in training-mode calls only, writing kernel / sigma_estimate into
    the kernel variable before the wrapped layer reads it; the optimizer's step then moves the
    variable slightly. One training-mode call on a real batch puts the used kernel in place.
    """
    trainer.critic(next(iter(trainer.dataset)), training=True)
    return np.array([_largest_singular_value(layer.layer.kernel) for layer in layers])


def test_spectral_norm_switch_wraps_every_weighted_critic_layer_and_no_generator_layer():
    trainer = make_trainer("sngan")
    wrapped = _spectral_layers(trainer.critic)
    weighted_blocks = [
        b for b in gin.query_parameter("build_critic.blocks") if b["block"] in ("conv", "dense")
    ]
    assert len(wrapped) == len(weighted_blocks) == 4
    assert not [x for x in trainer.critic.layers if isinstance(x, WEIGHTED)]  # none left bare
    assert not _spectral_layers(trainer.generator)
    assert len([x for x in trainer.generator.layers if isinstance(x, WEIGHTED)]) == 3
    # Each wrapper adds one non-trainable power-iteration vector u; nothing else is added.
    assert sorted(v.path.split("/")[-1] for v in trainer.critic.non_trainable_variables) == (
        ["vector_u"] * 4
    )
    assert not _spectral_layers(make_trainer("dcgan").critic)


def test_a_block_that_sets_spectral_norm_itself_keeps_its_choice():
    blocks = [
        {"block": "conv", "filters": 2, "kernel_size": 3, "spectral_norm": False},
        {"block": "flatten"},
        {"block": "dense", "units": 1},
    ]
    critic = factories.build_critic(input_shape=(8, 8, 1), blocks=blocks, spectral_norm=True)
    assert isinstance(critic.layers[1], keras.layers.Conv2D)
    assert isinstance(critic.layers[3], keras.layers.SpectralNormalization)
    plain = factories.build_critic(input_shape=(8, 8, 1), blocks=blocks)
    assert not _spectral_layers(plain)


def test_spectral_norm_must_be_a_boolean():
    with pytest.raises(ValueError, match="spectral_norm must be True or False"):
        factories.build_critic(
            input_shape=(8, 8, 1), blocks=[{"block": "dense", "units": 1}], spectral_norm="yes"
        )


# Largest singular values of the used kernels (conv 5x5x1x64, conv 5x5x64x128, dense 6272x512,
# dense 512x1), measured on the tiny sngan config with this test's calls: after 5 critic updates
# 1.0068, 1.0475, 1.0290, 1.0; after 15: 1.000003, 1.0085, 1.0135, 1.0; after 40: 1.0, 1.0031,
# 1.0020, 1.0. Keras runs one power iteration per training-mode call (two per critic update here),
# warm-started from the last u. The estimate approaches sigma from below, so the used kernel's
# sigma is >= 1 and falls towards 1 at a rate set by the gap between the kernel's two largest
# singular values (small for these random initial kernels; the 512x1 kernel has one and is exact
# at once). 0.03 leaves twice the largest value measured after 15 updates.
SN_UPDATES = 15
SN_TOLERANCE = 0.03


def test_spectral_norm_keeps_the_largest_singular_value_of_every_used_kernel_near_one():
    trainer = make_trainer("sngan")
    layers = _spectral_layers(trainer.critic)
    for _ in range(5):
        trainer.train_critic()
    early = _used_spectral_norms(trainer, layers)
    for _ in range(SN_UPDATES - 5):
        trainer.train_critic()
    late = _used_spectral_norms(trainer, layers)
    assert np.all(late >= 1.0 - 1e-5), late  # the estimate never overshoots
    assert np.all(late <= 1.0 + SN_TOLERANCE), late
    assert np.max(late) <= np.max(early) + 1e-6  # converging as iterations accumulate


def test_without_spectral_norm_the_same_critic_kernels_are_far_from_one():
    trainer = make_trainer("sngan", "build_critic.spectral_norm = False")
    assert not _spectral_layers(trainer.critic)
    layers = [x for x in trainer.critic.layers if isinstance(x, WEIGHTED)]
    for _ in range(SN_UPDATES):
        trainer.train_critic()
    norms = np.array([_largest_singular_value(x.kernel) for x in layers])
    assert np.all(np.abs(norms - 1.0) > SN_TOLERANCE), norms


def test_the_generator_update_does_not_write_the_critic_under_spectral_norm():
    # The frozen critic runs through stateless_call: its normalised kernel and u are used for
    # that call and then dropped.
    trainer = make_trainer("sngan")
    before = [np.array(v) for v in trainer.critic.variables]
    trainer.train_generator()
    for old, variable in zip(before, trainer.critic.variables):
        np.testing.assert_array_equal(old, np.asarray(variable))


@pytest.mark.slow
def test_sngan_stop_and_resume_matches_a_straight_run_bit_for_bit(tmp_path):
    # The power-iteration vectors u are critic variables, so checkpoints carry them.
    straight_weights, straight_rows = train_run("sngan", tmp_path / "straight", 4)
    train_run("sngan", tmp_path / "resumed", 2)
    resumed_weights, resumed_rows = train_run("sngan", tmp_path / "resumed", 4)
    assert [r["step"] for r in resumed_rows] == [1, 2, 3, 4]
    for straight, resumed in zip(straight_rows, resumed_rows):
        assert resumed["critic_loss"] == straight["critic_loss"]
        assert resumed["generator_loss"] == straight["generator_loss"]
    assert len(straight_weights) == len(resumed_weights)
    for a, b in zip(straight_weights, resumed_weights):
        np.testing.assert_array_equal(b, a)
