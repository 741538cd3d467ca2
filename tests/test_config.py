"""Reading the parsed config without building anything (``config.setting``/``train_setting``),
and registering a configurable from a module config.py does not import."""

import dataclasses
import sys

import keras
import pytest

from ganpipe import config
from tests.conftest import GIN, parse


def test_bound_values_come_back_resolved_as_gin_passes_them():
    parse("wgan_gp_ema")
    assert config.train_setting("generator_ema") == 0.999
    assert config.train_setting("value_range") == (-1.0, 1.0)  # bound through %VALUE_RANGE
    latent = config.train_setting("latent")  # @Latent(): the object it makes
    assert (latent.distribution, latent.scale) == ("normal", 0.2)
    factory = config.train_setting("generator")  # @build_generator: a callable with bindings
    generator = factory()
    assert isinstance(generator, keras.Model)
    assert int(generator.inputs[0].shape[-1]) == config.setting("build_generator", "latent_dim")
    assert config.setting("load_images", "source") == "synthetic"  # tiny.gin


def test_unbound_parameters_give_the_signature_default():
    parse("wgan")
    assert config.train_setting("generator_ema") is None
    assert config.train_setting("precision") == "float32"
    assert config.train_setting("num_classes") is None
    assert config.setting("load_images", "split") == "train"


def test_unknown_and_required_parameters_are_refused(tmp_path):
    parse("wgan")
    with pytest.raises(config.ConfigError, match="train has no parameter 'genrator'"):
        config.train_setting("genrator")
    with pytest.raises(config.ConfigError, match="'nothing' is not a configurable"):
        config.setting("nothing", "x")
    only = tmp_path / "only.gin"
    only.write_text("train.batch_size = 4\n")
    config.parse([str(only)])
    with pytest.raises(config.ConfigError, match="train.num_steps is required and not bound"):
        config.train_setting("num_steps")


@dataclasses.dataclass(frozen=True)
class Probe:
    size: int = 1


def test_register_configurable(tmp_path):
    make = config.register_configurable("StructureProbe", Probe)
    assert config.register_configurable("StructureProbe", Probe) is make
    with pytest.raises(ValueError, match="already taken"):
        config.register_configurable("StructureProbe", dict)
    path = tmp_path / "probe.gin"
    path.write_text("StructureProbe.size = 3\n")
    config.parse([str(path)])
    assert make() == Probe(3)
    assert config.setting("StructureProbe", "size") == 3
    config.parse([str(GIN / "wgan.gin")])  # experiment files parse as before


@pytest.mark.parametrize("experiment", ["recommended", "wgan_gp"])
def test_parsing_never_imports_gins_tensorflow_module(experiment):
    # gin's TensorFlow module imports tf.estimator, which TensorFlow 2.16 removed.
    parse(experiment)
    assert "gin.tf" not in sys.modules
