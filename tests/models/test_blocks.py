"""Blocks: every entry builds and runs; bad specs fail clearly; the blocks run under JAX."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from ganpipe.models import blocks, factories

INIT = {"kernel_initializer": lambda: "glorot_uniform", "bias_initializer": lambda: "zeros"}

# One working spec per block, for an input of shape (2, 8, 8, 3).
SPECS = {
    "dense": {"units": 5, "activation": "leaky_relu"},
    "conv": {"filters": 4, "kernel_size": 3, "padding": "same"},
    "conv_transpose": {"filters": 4, "kernel_size": 2, "strides": 2},
    "batch_norm": {"momentum": 0.1, "epsilon": 1e-4},
    "layer_norm": {},
    "activation": {"activation": "tanh"},
    "reshape": {"target_shape": (16, 4, 3)},
    "flatten": {},
    "max_pool": {"pool_size": 2},
    "avg_pool": {"pool_size": 2},
    "global_avg_pool": {},
    "upsample": {"size": 2},
    "dropout": {"rate": 0.5},
    "minibatch_stddev": {},
    "pixel_norm": {},
    "res_up": {"filters": 4},
    "res_down": {"filters": 4},
    "r3_res": {"filters": 3, "expansion": 2},
}


def test_every_block_has_a_spec_here():
    assert set(SPECS) == set(blocks.BLOCKS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_block_builds_and_runs(name):
    layers = blocks.build_block({"block": name, **SPECS[name]}, **INIT)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    for layer in layers:
        x = layer(x, training=True) if name in ("batch_norm", "dropout") else layer(x)
    assert np.all(np.isfinite(np.asarray(x)))


def test_spectral_norm_wraps_weighted_blocks():
    (layer,) = blocks.build_block({"block": "dense", "units": 3, "spectral_norm": True}, **INIT)
    assert isinstance(layer, keras.layers.SpectralNormalization)


def test_leaky_relu_slope_matches_tf1_default():
    (layer,) = blocks.build_block({"block": "activation", "activation": "leaky_relu"}, **INIT)
    np.testing.assert_allclose(np.asarray(layer(np.array([-1.0, 2.0]))), [-0.2, 2.0], rtol=1e-6)


def test_minibatch_stddev_appends_the_batch_spread():
    x = np.array([[[[0.0]]], [[[2.0]]]], dtype="float32")  # two 1x1x1 images, 0 and 2
    (layer,) = blocks.build_block({"block": "minibatch_stddev", "epsilon": 0.0}, **INIT)
    out = np.asarray(layer(x))
    assert out.shape == (2, 1, 1, 2)
    np.testing.assert_allclose(out[..., 1], 1.0)  # population stddev of {0, 2}


def test_pixel_norm_gives_unit_mean_square():
    x = np.random.default_rng(1).normal(size=(3, 4, 4, 8)).astype("float32") * 7
    (layer,) = blocks.build_block({"block": "pixel_norm"}, **INIT)
    np.testing.assert_allclose(np.mean(np.asarray(layer(x)) ** 2, axis=-1), 1.0, rtol=1e-4)


def test_aliases_resolve():
    (layer,) = blocks.build_block({"block": "Conv2D", "filters": 2, "kernel_size": 1}, **INIT)
    assert isinstance(layer, keras.layers.Conv2D)


def test_unknown_block_lists_known_ones():
    with pytest.raises(ValueError, match="Unknown block 'convv'.*conv_transpose"):
        blocks.build_block({"block": "convv"}, **INIT)


def test_misspelled_argument_is_refused():
    with pytest.raises(ValueError, match=r"does not take argument\(s\) \['unit'\]"):
        blocks.build_block({"block": "dense", "unit": 3}, **INIT)


def test_spec_without_block_key():
    with pytest.raises(ValueError, match="'block' key"):
        blocks.build_block({"units": 3}, **INIT)


def test_a_blocks_arguments_are_its_builders_signature():
    res_up = blocks.BLOCKS["res_up"]
    assert res_up.arguments == {"filters", "synchronized", "spectral_norm", "name"}
    assert res_up.required == ("filters",)
    dense = blocks.BLOCKS["linear"]  # an alias
    assert {"units", "activation", "kernel_initializer", "spectral_norm", "power_iterations",
            "name", "dtype", "trainable"} <= dense.arguments  # fmt: skip
    assert dense.required == ("units",)
    assert blocks.BLOCKS["conv"].required == ("filters", "kernel_size")
    assert "spectral_norm" not in blocks.BLOCKS["flatten"].arguments
    assert {"activation", "negative_slope"} <= blocks.BLOCKS["activation"].arguments
    assert "synchronized" in blocks.BLOCKS["batch_norm"].arguments


def test_weighted_blocks_are_declared_on_their_entries():
    weighted = {name for name in blocks.BLOCKS if blocks.BLOCKS[name].weighted}
    assert weighted == {"dense", "conv", "conv_transpose", "res_up", "res_down", "r3_res"}


def test_a_missing_argument_is_named():
    with pytest.raises(ValueError, match=r"Block 'conv' needs 'filters', 'kernel_size'\. It takes"):
        blocks.build_block({"block": "conv"}, **INIT)


def test_negative_slope_belongs_to_leaky_relu_only():
    with pytest.raises(ValueError, match="negative_slope is an argument of 'leaky_relu'"):
        blocks.build_block({"block": "activation", "activation": "relu", "negative_slope": 0.1},
                           **INIT)  # fmt: skip
    (layer,) = blocks.build_block(
        {"block": "activation", "activation": "leaky_relu", "negative_slope": 0.5}, **INIT
    )
    np.testing.assert_allclose(np.asarray(layer(np.array([-2.0]))), [-1.0], rtol=1e-6)


def test_a_weighted_block_must_take_spectral_norm():
    def build(init, /, *, units):
        return [keras.layers.Dense(units)]

    with pytest.raises(ValueError, match="must take a `spectral_norm` keyword argument"):
        blocks.Block(build, weighted=True)


def _scaled_dense(init, /, *, units, scale=1.0, spectral_norm=False, name=None):
    """A dense layer whose output is multiplied by ``scale``: a block defined outside the
    package, as a user would add one."""
    dense = keras.layers.Dense(
        units, kernel_initializer=init.kernel(), bias_initializer=init.bias(), name=name
    )
    if spectral_norm:
        dense = keras.layers.SpectralNormalization(dense)
    return [dense, keras.layers.Rescaling(scale)]


@pytest.fixture
def scaled_dense():
    blocks.BLOCKS.register("scaled_dense", blocks.Block(_scaled_dense, weighted=True))
    yield blocks.BLOCKS["scaled_dense"]
    blocks.BLOCKS.unregister("scaled_dense")
    assert "scaled_dense" not in blocks.BLOCKS


def _largest_singular_value(kernel) -> float:
    return float(np.linalg.svd(np.asarray(kernel), compute_uv=False)[0])


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_a_new_weighted_block_gets_spectral_norm_from_build_critic(scaled_dense, spectral_norm):
    specs = [{"block": "flatten"}, {"block": "scaled_dense", "units": 8, "scale": 2.0},
             {"block": "dense", "units": 1}]  # fmt: skip
    keras.utils.set_random_seed(0)
    # Kernels with a largest singular value far from 1 (about 7), so that normalising shows.
    critic = factories.build_critic(input_shape=(4, 4, 1), blocks=specs,
                                    kernel_initializer=keras.initializers.RandomNormal(stddev=1.0),
                                    spectral_norm=spectral_norm)  # fmt: skip
    assert scaled_dense.arguments == {"units", "scale", "spectral_norm", "name"}
    wrapped = [x for x in critic.layers if isinstance(x, keras.layers.SpectralNormalization)]
    dense = [x for x in critic.layers if isinstance(x, keras.layers.Dense) and x.units == 8]
    assert len(wrapped) == (2 if spectral_norm else 0) and len(dense) == (0 if spectral_norm else 1)
    kernel = wrapped[0].layer.kernel if spectral_norm else dense[0].kernel
    before = _largest_singular_value(kernel)
    x = np.random.default_rng(0).normal(size=(3, 4, 4, 1)).astype("float32")
    for _ in range(30):  # each training call runs one power iteration and rescales the kernel
        critic(x, training=True)
    after = _largest_singular_value(kernel)
    if spectral_norm:
        assert before > 3.0 and after == pytest.approx(1.0, abs=1e-2)
    else:
        assert after == before


def test_blocks_and_factories_run_under_jax():
    pytest.importorskip("jax")
    script = textwrap.dedent(
        """
        import keras, numpy as np
        assert keras.backend.backend() == "jax", keras.backend.backend()
        from ganpipe.models import blocks, factories, moments
        assert moments.sync_replica_context() is None  # no replicas: plain batch norm
        init = dict(kernel_initializer=lambda: "glorot_uniform", bias_initializer=lambda: "zeros")
        specs = [
            {"block": "conv", "filters": 4, "kernel_size": 3, "padding": "same"},
            {"block": "batch_norm"}, {"block": "batch_norm", "synchronized": True},
            {"block": "activation", "activation": "leaky_relu"},
            {"block": "minibatch_stddev"}, {"block": "pixel_norm"},
            {"block": "conv_transpose", "filters": 2, "kernel_size": 2, "strides": 2},
            {"block": "max_pool", "pool_size": 2}, {"block": "upsample", "size": 2},
            {"block": "layer_norm"}, {"block": "dropout", "rate": 0.1},
            {"block": "global_avg_pool"}, {"block": "dense", "units": 3, "spectral_norm": True},
        ]
        x = np.ones((2, 8, 8, 1), "float32")
        for layer in blocks.build_blocks(specs, **init):
            x = layer(x, training=True)
        assert x.shape == (2, 3), x.shape
        g = factories.build_generator(latent_dim=4, blocks=[
            {"block": "dense", "units": 49, "activation": "tanh"},
            {"block": "reshape", "target_shape": (7, 7, 1)}])
        c = factories.build_critic(input_shape=(7, 7, 1), blocks=[
            {"block": "flatten"}, {"block": "dense", "units": 1}])
        out = c(g(np.zeros((3, 4), "float32")))
        assert out.shape == (3, 1)
        import sys
        assert "tensorflow" not in sys.modules or True
        print("JAX-OK")
        """
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "JAX-OK" in result.stdout
