"""Factories: the seed models from the real gin files, exactly; initializers; shape checks."""

import keras
import numpy as np
import pytest

import gin
from ganpipe import config
from ganpipe.models import factories
from tests.conftest import parse


def _models(experiment):
    parse(experiment, tiny=False)
    generator = config.CONFIGURABLES["build_generator"](output_shape=(28, 28, 1))
    critic = config.CONFIGURABLES["build_critic"](input_shape=(28, 28, 1))
    return generator, critic


def test_seed_gan_models_exactly():
    generator, critic = _models("gan")
    assert generator.input_shape == (None, 128)
    assert generator.output_shape == (None, 28, 28, 1)
    # 128*256 + 256 + 256*784 + 784 and 784*256 + 256 + 256 + 1.
    assert generator.count_params() == 234_512
    assert critic.count_params() == 201_217
    assert factories.final_activation(generator) == "sigmoid"
    assert factories.final_activation(critic) is None
    dense = [layer for layer in generator.layers if isinstance(layer, keras.layers.Dense)]
    for layer in dense:
        for weights in (layer.kernel, layer.bias):
            values = np.asarray(weights)
            # Truncated normal, stddev 0.1: cut at two standard deviations.
            assert np.abs(values).max() <= 0.2 + 1e-6
            assert 0.06 < values.std() < 0.1


def test_seed_dcgan_models_exactly():
    generator, critic = _models("dcgan")
    assert generator.input_shape == (None, 4608)
    shapes = [tuple(layer.output.shape[1:]) for layer in generator.layers[1:]]
    assert shapes == [(4608,), (6, 6, 128), (14, 14, 64), (14, 14, 64), (28, 28, 1), (28, 28, 1)]
    assert generator.count_params() == 21_369_925
    transposed = [
        layer for layer in generator.layers if isinstance(layer, keras.layers.Conv2DTranspose)
    ]
    assert [(layer.padding, layer.kernel_size, layer.strides) for layer in transposed] == [
        ("valid", (4, 4), (2, 2)),
        ("same", (2, 2), (2, 2)),
    ]
    norms = [
        layer for layer in generator.layers if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert [(layer.momentum, layer.epsilon) for layer in norms] == [(0.1, 1e-4), (0.1, 1e-4)]
    assert all(np.all(np.asarray(layer.moving_variance) == 0) for layer in norms)
    critic_shapes = [tuple(layer.output.shape[1:]) for layer in critic.layers[1:]]
    assert critic_shapes == [
        (28, 28, 64),
        (14, 14, 64),
        (14, 14, 128),
        (7, 7, 128),
        (6272,),
        (512,),
        (1,),
    ]
    assert critic.count_params() == 3_418_881


def test_each_layer_gets_its_own_initializer_draw():
    spec = {"block": "dense", "units": 8}
    model = factories.build_generator(
        latent_dim=8, blocks=[spec, spec], kernel_initializer=keras.initializers.RandomNormal()
    )
    first, second = (np.asarray(layer.kernel) for layer in model.layers[1:])
    assert not np.allclose(first, second)


def test_gin_initializer_reference_is_fresh_per_layer():
    config.register()
    gin.parse_config("generator/TruncatedNormal.stddev = 0.1")
    with gin.config_scope("generator"):
        factory = config.CONFIGURABLES["TruncatedNormal"]
    spec = {"block": "dense", "units": 8}
    model = factories.build_generator(latent_dim=8, blocks=[spec, spec], kernel_initializer=factory)
    first, second = (np.asarray(layer.kernel) for layer in model.layers[1:])
    assert not np.allclose(first, second)


def test_critic_must_output_one_score():
    with pytest.raises(ValueError, match=r"one score per image.*\(None, 3\)"):
        factories.build_critic(input_shape=(4,), blocks=[{"block": "dense", "units": 3}])


def test_incompatible_block_names_layer_and_shape():
    with pytest.raises(ValueError, match="generator's layer 1 \\(Reshape\\)"):
        factories.build_generator(
            latent_dim=4,
            blocks=[
                {"block": "dense", "units": 10},
                {"block": "reshape", "target_shape": (3, 3, 1)},
            ],
        )


def test_empty_blocks_and_bad_latent():
    with pytest.raises(ValueError, match="at least one block"):
        factories.build_critic(input_shape=(4,), blocks=[])
    with pytest.raises(ValueError, match="latent_dim"):
        factories.build_generator(latent_dim=0, blocks=[{"block": "dense", "units": 1}])


def test_saved_generator_loads_back(tmp_path):
    generator, _ = _models("dcgan")
    path = tmp_path / "g.keras"
    generator.save(path)
    loaded = keras.saving.load_model(path)
    noise = np.random.default_rng(0).normal(size=(2, 4608)).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded(noise)), np.asarray(generator(noise)), atol=1e-5)
