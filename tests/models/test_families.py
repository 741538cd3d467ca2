"""The fast model families: the lean DCGAN's shapes, parameters and multiply-adds; residual
blocks (SNGAN/BigGAN up/down, R3GAN's normalization-free block); conditional batch norm."""

import keras
import numpy as np
import pytest

from ganpipe import config
from ganpipe.models import cost, factories
from tests.conftest import parse


def _models(experiment, *params):
    parse(experiment, *params, tiny=False)
    generator = config.CONFIGURABLES["build_generator"](output_shape=(28, 28, 1))
    critic = config.CONFIGURABLES["build_critic"](input_shape=(28, 28, 1))
    return generator, critic


def test_lean_dcgan_shapes_parameters_and_multiply_adds():
    generator, critic = _models("recommended_unconditional")
    assert generator.input_shape == (None, 128) and generator.output_shape == (None, 28, 28, 1)
    assert factories.final_activation(generator) == "tanh"
    # Dense 128 -> 6272 (no bias), BN, ConvT 128 -> 64 (4x4, no bias), BN, ConvT 64 -> 1 (+bias).
    g_params = 128 * 6272 + 2 * 6272 + 16 * 128 * 64 + 2 * 64 + 16 * 64 + 1
    assert cost.cost(generator).parameters == g_params + 2 * 6272 + 2 * 64  # + BN statistics
    # MACs: 128 * 6272 + 7*7 inputs * 16 * 128 * 64 + 14*14 inputs * 16 * 64.
    assert cost.cost(generator).multiply_adds == 128 * 6272 + 49 * 16 * 128 * 64 + 196 * 16 * 64
    # Critic: 14*14 outputs * 16 * 64 + 7*7 outputs * 16 * 64 * 128 + 6272.
    assert cost.cost(critic).multiply_adds == 196 * 16 * 64 + 49 * 16 * 64 * 128 + 6272
    assert cost.cost(generator).multiply_adds < 10e6 and cost.cost(critic).multiply_adds < 10e6


def test_the_recommended_recipe_adds_class_conditioning_to_the_lean_models():
    # What `python -m ganpipe.models.cost --gin_file=recommended.gin` prints: conditional batch
    # norm swaps each batch norm's scale and offset (6272 + 64 channels) for 10 per-class ones;
    # the projection critic adds a 10 x 6272 class embedding. Multiply-adds are the lean pair's.
    parse("recommended_unconditional", tiny=False)
    plain_generator, plain_critic = cost.experiment_costs((28, 28, 1))
    parse("recommended", tiny=False)
    generator, critic = cost.experiment_costs((28, 28, 1))
    channels = 6272 + 64
    assert generator.parameters == plain_generator.parameters + (10 - 1) * 2 * channels
    assert critic.parameters == plain_critic.parameters + 10 * 6272
    assert (generator.multiply_adds, critic.multiply_adds) == (
        plain_generator.multiply_adds, plain_critic.multiply_adds)  # fmt: skip


def _generator(blocks, **kwargs):
    return factories.build_generator(latent_dim=8, blocks=blocks, **kwargs)


HEAD = [{"block": "dense", "units": 4 * 4 * 16}, {"block": "reshape", "target_shape": (4, 4, 16)}]


def test_residual_blocks_change_resolution_and_width_and_hold_only_keras_layers():
    up = _generator([*HEAD, {"block": "res_up", "filters": 8}])
    assert up.output_shape == (None, 8, 8, 8)
    assert any(isinstance(layer, keras.layers.Add) for layer in up.layers)
    critic = factories.build_critic(
        input_shape=(8, 8, 1),
        blocks=[{"block": "res_down", "filters": 8, "first": True},
                {"block": "res_down", "filters": 16}, {"block": "res_down", "filters": 16,
                                                       "down": False},
                {"block": "global_avg_pool"}, {"block": "dense", "units": 1}],
    )  # fmt: skip
    assert critic.layers[-3].output.shape == (None, 2, 2, 16)
    for model in (up, critic):
        assert all(type(layer).__module__.startswith("keras.") for layer in model.layers)


def test_r3gan_block_starts_as_the_identity():
    model = _generator([*HEAD, {"block": "r3_res", "filters": 16, "expansion": 2}])
    before = keras.Model(model.input, model.layers[2].output)  # the reshape's output
    z = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(model(z)), np.asarray(before(z)))
    # It has trainable branches that move it away from the identity once trained.
    assert len(model.trainable_weights) == 2 + 5  # dense; the block: 3 kernels, 2 biases


def test_spectral_norm_reaches_every_kernel_of_a_residual_block():
    critic = factories.build_critic(
        input_shape=(8, 8, 1), spectral_norm=True,
        blocks=[{"block": "res_down", "filters": 4, "first": True}, {"block": "flatten"},
                {"block": "dense", "units": 1}],
    )  # fmt: skip
    wrapped = [x for x in critic.layers if isinstance(x, keras.layers.SpectralNormalization)]
    assert len(wrapped) == 3 + 1  # two 3x3 convs and the shortcut's 1x1; the dense


def test_residual_block_needs_its_filters():
    with pytest.raises(ValueError, match="needs 'filters'"):
        _generator([*HEAD, {"block": "res_up"}])


def test_class_batch_norm_starts_as_batch_norm_and_learns_per_class_scales():
    blocks = [*HEAD, {"block": "batch_norm"}, {"block": "res_up", "filters": 4}]
    model = _generator(blocks, conditioning="class_batch_norm", num_classes=3)
    z = np.random.default_rng(1).normal(size=(6, 8)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2], np.int32)
    first = np.asarray(model([z, labels], training=True))
    second = np.asarray(model([z, np.roll(labels, 1)], training=True))
    np.testing.assert_allclose(first, second, atol=1e-6)  # gamma = 1, beta = 0 for every class
    gammas = [x for x in model.layers if x.name.endswith("_gamma")]
    assert len(gammas) == 3  # the head's batch norm and the two inside the residual block
    weights = gammas[0].get_weights()[0]
    gammas[0].set_weights([weights * np.array([[1.0], [3.0], [0.5]])])
    third = np.asarray(model([z, np.roll(labels, 1)], training=True))
    assert not np.allclose(first, third, atol=1e-3)
    assert all(type(layer).__module__.startswith("keras.") for layer in model.layers)


def test_class_batch_norm_needs_batch_norm_blocks():
    with pytest.raises(ValueError, match="needs batch-norm blocks"):
        _generator(HEAD, conditioning="class_batch_norm", num_classes=3)


# The model families at any size (ganpipe/models/families.py).


@pytest.mark.parametrize("family", ["lean", "resnet", "r3gan"])
def test_each_family_at_28x28_is_exactly_its_28_file(family):
    import gin
    from ganpipe.models import families

    gin.clear_config()
    config.parse([f"gin/models/{family}_28.gin"])
    chosen = families.FAMILIES.get(family)
    assert chosen.generator_blocks((28, 28, 1)) == list(
        gin.query_parameter("build_generator.blocks")
    )
    assert chosen.critic_blocks((28, 28, 1)) == list(gin.query_parameter("build_critic.blocks"))


@pytest.mark.parametrize("family", ["lean", "resnet", "r3gan"])
@pytest.mark.parametrize("shape", [(16, 16, 1), (48, 64, 3), (64, 64, 3), (128, 96, 1)])
def test_each_family_builds_a_pair_for_the_size_it_is_given(family, shape):
    generator = factories.build_generator(latent_dim=16, family=family, output_shape=shape)
    critic = factories.build_critic(input_shape=shape, family=family)
    assert generator.output_shape == (None, *shape)
    assert critic.output_shape == (None, 1)
    assert factories.final_activation(generator) == "tanh"


def test_depth_and_width_follow_the_size():
    from ganpipe.models import families

    assert families.levels(64, 64) == [(8, 8), (16, 16), (32, 32), (64, 64)]
    assert families.levels(48, 64) == [(6, 8), (12, 16), (24, 32), (48, 64)]
    lean = families.FAMILIES.get("lean")
    # channels x longer side = 896, between 16 and 256.
    assert lean.widths(64, 64)[1] == [112, 56, 28, 16]
    assert lean.widths(256, 256)[1] == [112, 56, 28, 16, 16, 16]
    # Each level costs about the same, so 64x64 costs about twice 28x28, not 5x (its pixels).
    small = [c.multiply_adds for c in cost.family_costs("lean", (28, 28, 1))]
    large = [c.multiply_adds for c in cost.family_costs("lean", (64, 64, 1))]
    assert all(1.5 < b / a < 2.5 for a, b in zip(small, large))


def test_a_size_no_family_can_build_is_refused_with_the_nearest_sizes():
    from ganpipe.models import families

    with pytest.raises(families.SizeError, match=r"100x100.*divide by 16.*96x96"):
        factories.build_critic(input_shape=(100, 100, 3), family="lean")
    with pytest.raises(families.SizeError, match=r"between 16 and 256.*256x256"):
        families.check_shape((300, 300, 3))
    with pytest.raises(families.SizeError, match="1 \\(grayscale\\) or 3"):
        families.check_shape((64, 64, 2))


def test_blocks_and_family_are_one_or_the_other():
    with pytest.raises(ValueError, match="not both"):
        factories.build_critic(input_shape=(28, 28, 1), family="lean", blocks=HEAD)
    with pytest.raises(ValueError, match="has neither"):
        factories.build_critic(input_shape=(28, 28, 1))
    with pytest.raises(ValueError, match="unknown|Unknown|not a known"):
        factories.build_critic(input_shape=(28, 28, 1), family="leen")


def test_the_cost_table_lists_every_family_at_32_to_256():
    table = cost.family_table(sides=(32, 256), channels=1)
    for name in ("lean", "resnet", "r3gan"):
        assert f"| {name} | 32x32x1 |" in table and f"| {name} | 256x256x1 |" in table
