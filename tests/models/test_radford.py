"""The DCGAN of Radford et al. (2015) at 28x28x1 and 32x32x3: shapes, sizes, layers, settings."""

import keras
import numpy as np
import pytest

import gin
from ganpipe import config
from ganpipe.models import factories
from tests.conftest import make_trainer, parse

# Parameter counts by hand, every variable included (a batch norm over c channels holds 4c: scale,
# offset, moving mean, moving variance). No biases before batch norm; 5x5 kernels.
GENERATOR_28 = (
    100 * 7 * 7 * 256  # project: dense 100 -> 12544, no bias
    + 4 * 256  # batch norm
    + 5 * 5 * 256 * 128  # transposed conv 256 -> 128, no bias
    + 4 * 128  # batch norm
    + 5 * 5 * 128 * 1
    + 1  # transposed conv 128 -> 1, with bias (tanh output)
)
CRITIC_28 = (
    5 * 5 * 1 * 128
    + 128  # conv 1 -> 128 with bias (no batch norm on the first layer)
    + 5 * 5 * 128 * 256  # conv 128 -> 256, no bias
    + 4 * 256  # batch norm
    + 7 * 7 * 256 * 1
    + 1  # dense to the single score
)
GENERATOR_32 = (
    100 * 4 * 4 * 512
    + 4 * 512
    + 5 * 5 * 512 * 256
    + 4 * 256
    + 5 * 5 * 256 * 128
    + 4 * 128
    + 5 * 5 * 128 * 3
    + 3
)
CRITIC_32 = (
    5 * 5 * 3 * 128
    + 128
    + 5 * 5 * 128 * 256
    + 4 * 256
    + 5 * 5 * 256 * 512
    + 4 * 512
    + 4 * 4 * 512 * 1
    + 1
)
# Non-trainable: the moving mean and variance of each batch norm.
MOVING_28 = (2 * 256 + 2 * 128, 2 * 256)
MOVING_32 = (2 * (512 + 256 + 128), 2 * (256 + 512))

CASES = [
    ("dcgan_radford", (28, 28, 1), GENERATOR_28, CRITIC_28, MOVING_28),
    ("dcgan_radford_cifar10", (32, 32, 3), GENERATOR_32, CRITIC_32, MOVING_32),
]

WEIGHTED = (keras.layers.Dense, keras.layers.Conv2D, keras.layers.Conv2DTranspose)
POOLING = (
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
)


def _models(experiment, image_shape):
    parse(experiment, tiny=False)
    generator = config.CONFIGURABLES["build_generator"]()
    critic = config.CONFIGURABLES["build_critic"](input_shape=image_shape)
    return generator, critic


def _value_layers(model):
    """The layers that change values, in order (input, reshape and flatten left out)."""
    skip = (keras.layers.InputLayer, keras.layers.Reshape, keras.layers.Flatten)
    return [layer for layer in model.layers if not isinstance(layer, skip)]


def _activation_name(layer):
    activation = getattr(layer, "activation", None)
    if isinstance(layer, keras.layers.LeakyReLU):
        return "leaky_relu"
    name = getattr(activation, "__name__", None)
    return None if name in (None, "linear") else name


@pytest.mark.parametrize("experiment, image_shape, generator_params, critic_params, moving", CASES)
def test_shapes_and_parameter_counts(
    experiment, image_shape, generator_params, critic_params, moving
):
    generator, critic = _models(experiment, image_shape)
    assert generator.input_shape == (None, 100)
    assert generator.output_shape == (None, *image_shape)
    assert critic.output_shape == (None, 1)
    assert generator.count_params() == generator_params
    assert critic.count_params() == critic_params
    non_trainable = [
        sum(int(np.prod(v.shape)) for v in model.non_trainable_variables)
        for model in (generator, critic)
    ]
    assert tuple(non_trainable) == moving


@pytest.mark.parametrize("experiment, image_shape", [c[:2] for c in CASES])
def test_generator_layers_follow_the_guidelines(experiment, image_shape):
    generator, _ = _models(experiment, image_shape)
    layers = _value_layers(generator)
    weighted = [i for i, layer in enumerate(layers) if isinstance(layer, WEIGHTED)]
    assert isinstance(layers[0], keras.layers.Dense)  # project (then reshape)
    assert all(isinstance(layers[i], keras.layers.Conv2DTranspose) for i in weighted[1:])
    assert all(layers[i].strides == (2, 2) for i in weighted[1:])
    # Every layer but the output: weights -> batch norm -> ReLU.
    for i in weighted[:-1]:
        assert _activation_name(layers[i]) is None and not layers[i].use_bias
        assert isinstance(layers[i + 1], keras.layers.BatchNormalization)
        assert _activation_name(layers[i + 2]) == "relu"
    # The output: no batch norm, tanh, and it is the last layer.
    assert weighted[-1] == len(layers) - 1
    assert _activation_name(layers[-1]) == "tanh"
    assert factories.output_range(generator) == (-1.0, 1.0)
    assert not any(isinstance(layer, POOLING) for layer in layers)


@pytest.mark.parametrize("experiment, image_shape", [c[:2] for c in CASES])
def test_critic_layers_follow_the_guidelines(experiment, image_shape):
    _, critic = _models(experiment, image_shape)
    layers = _value_layers(critic)
    assert not any(isinstance(layer, POOLING) for layer in critic.layers)
    dense = [layer for layer in critic.layers if isinstance(layer, keras.layers.Dense)]
    # No hidden fully connected layer: the one dense layer is the final score.
    assert len(dense) == 1 and dense[0] is layers[-1] and dense[0].units == 1
    assert isinstance(critic.layers[-2], keras.layers.Flatten)
    convs = [i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Conv2D)]
    assert all(layers[i].strides == (2, 2) for i in convs)
    # The first layer: leaky ReLU straight away, no batch norm.
    first = convs[0]
    assert first == 0 and _activation_name(layers[0]) == "leaky_relu"
    assert not isinstance(layers[1], keras.layers.BatchNormalization)
    # Every later convolution: batch norm, then leaky ReLU with slope 0.2.
    for i in convs[1:]:
        assert isinstance(layers[i + 1], keras.layers.BatchNormalization)
        assert isinstance(layers[i + 2], keras.layers.LeakyReLU)
        assert layers[i + 2].negative_slope == pytest.approx(0.2)
    batch_norms = [
        i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(batch_norms) == len(convs) - 1
    # Keras' leaky_relu function, used by the first layer, has slope 0.2 as well.
    x = np.array([-1.0, 2.0], np.float32)
    np.testing.assert_allclose(layers[0].activation(x), [-0.2, 2.0])


@pytest.mark.parametrize("experiment, image_shape", [c[:2] for c in CASES])
def test_weights_start_from_normal_002_and_biases_at_zero(experiment, image_shape):
    generator, critic = _models(experiment, image_shape)
    for model in (generator, critic):
        for layer in model.layers:
            if not isinstance(layer, WEIGHTED):
                continue
            kernel = np.asarray(layer.kernel)
            if kernel.size >= 10_000:  # enough draws for a tight estimate
                assert abs(kernel.mean()) < 1e-3
                assert kernel.std() == pytest.approx(0.02, rel=0.03)
                # Untruncated: about 0.27% of N(0, s) lies beyond 3s.
                assert 0.001 < np.mean(np.abs(kernel) > 0.06) < 0.005
            if layer.use_bias:
                assert not np.asarray(layer.bias).any()


@pytest.mark.parametrize("experiment, image_shape", [c[:2] for c in CASES])
def test_generator_output_lies_in_minus_one_one(experiment, image_shape):
    generator, _ = _models(experiment, image_shape)
    z = np.random.default_rng(0).uniform(-1.0, 1.0, size=(16, 100)).astype(np.float32)
    # Larger weights push tanh into saturation, where the bound must still hold.
    for scale in (1.0, 50.0):
        for layer in generator.layers:
            if isinstance(layer, WEIGHTED):
                layer.kernel.assign(np.asarray(layer.kernel) * scale)
        images = np.asarray(generator(z, training=True))
        assert images.shape == (16, *image_shape)
        assert images.min() >= -1.0 and images.max() <= 1.0
        assert images.std() > 0
    assert np.abs(images).max() > 0.99  # saturated at the large scale


@pytest.mark.parametrize("experiment", ["dcgan_radford", "dcgan_radford_cifar10"])
def test_training_settings_of_the_paper(experiment):
    parse(experiment, tiny=False)
    assert gin.query_parameter("%BATCH_SIZE") == 128
    assert gin.query_parameter("%VALUE_RANGE") == (-1.0, 1.0)
    assert gin.query_parameter("Latent.distribution") == "uniform"
    assert gin.query_parameter("Latent.scale") == 1.0
    gin.clear_config()
    trainer = make_trainer(experiment)  # tiny data, the experiment's models and optimizers
    for optimizer in (trainer.generator_optimizer, trainer.critic_optimizer):
        assert isinstance(optimizer, keras.optimizers.Adam)
        assert float(optimizer.learning_rate) == pytest.approx(2e-4)
        assert optimizer.beta_1 == 0.5
    assert (trainer.settings.schedule.critic_steps, trainer.settings.schedule.generator_steps) == (
        1,
        1,
    )
    assert (
        trainer.settings.latent.distribution == "uniform" and trainer.settings.latent.scale == 1.0
    )


def test_cifar10_experiment_trains_on_tiny_32x32x3_synthetic_data():
    trainer = make_trainer("dcgan_radford_cifar10")
    assert trainer.images.images.shape == (64, 32, 32, 3)
    assert "synthetic" in trainer.images.source
    batch = next(iter(trainer.dataset)).numpy()
    assert batch.shape == (8, 32, 32, 3) and batch.min() >= -1.0 and batch.max() <= 1.0
    generator_before = [np.array(v) for v in trainer.generator.trainable_variables]
    metrics = trainer.train_steps(2)
    assert int(trainer.step.numpy()) == 2
    assert all(np.isfinite(v) for v in metrics.values())
    assert any(
        not np.array_equal(b, np.asarray(v))
        for b, v in zip(generator_before, trainer.generator.trainable_variables)
    )
