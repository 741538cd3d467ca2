"""Blocks: every entry builds and runs; bad specs fail clearly; the blocks run under JAX."""

import textwrap

import keras
import numpy as np
import pytest

from ganpipe.models import blocks, factories
from tests.conftest import run_jax

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


# Per block, for that input: the output's shape and the numbers of trainable and non-trainable
# weights.
EXPECTED = {
    "dense": ((2, 8, 8, 5), 2, 0),
    "conv": ((2, 8, 8, 4), 2, 0),
    "conv_transpose": ((2, 16, 16, 4), 2, 0),
    "batch_norm": ((2, 8, 8, 3), 2, 2),
    "layer_norm": ((2, 8, 8, 3), 2, 0),
    "activation": ((2, 8, 8, 3), 0, 0),
    "reshape": ((2, 16, 4, 3), 0, 0),
    "flatten": ((2, 192), 0, 0),
    "max_pool": ((2, 4, 4, 3), 0, 0),
    "avg_pool": ((2, 4, 4, 3), 0, 0),
    "global_avg_pool": ((2, 3), 0, 0),
    "upsample": ((2, 16, 16, 3), 0, 0),
    "dropout": ((2, 8, 8, 3), 0, 0),
    "minibatch_stddev": ((2, 8, 8, 4), 0, 0),
    "pixel_norm": ((2, 8, 8, 3), 0, 0),
    "res_up": ((2, 16, 16, 4), 10, 4),  # conv 3x3 twice and 1x1 shortcut; two batch norms
    "res_down": ((2, 4, 4, 4), 6, 0),  # conv 3x3 twice and 1x1 shortcut
    "r3_res": ((2, 8, 8, 3), 5, 0),  # 1x1, grouped 3x3, and 1x1 without bias
}


def _flat(layers):
    """The Keras layers of a block, residual branches included."""
    return [
        x for layer in layers for x in (layer.layers() if hasattr(layer, "layers") else [layer])
    ]


def _run(layers, x, training):
    for layer in layers:
        x = layer(x) if isinstance(layer, blocks.Residual) else layer(x, training=training)
    return np.asarray(x)


def _np(variable):
    return np.asarray(variable.numpy())


def _conv(x, kernel, bias=0.0):
    """A stride-1 'same' convolution with an odd kernel (kh, kw, in, out), in NumPy."""
    k, (h, w) = kernel.shape[0], x.shape[1:3]
    padded = np.pad(x, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)))
    patches = np.stack([padded[:, i : i + h, j : j + w] for i in range(k) for j in range(k)], 3)
    return np.einsum("bhwpc,pcf->bhwf", patches, kernel.reshape(k * k, *kernel.shape[2:])) + bias


def _leaky(x):
    return np.where(x > 0, x, 0.2 * x)


def _normalized(x, axes, epsilon, layer):
    mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + epsilon) * _np(layer.gamma) + _np(layer.beta)


def _transposed(x, layer):
    """A 2x2 stride-2 transposed convolution: each input pixel paints its own 2x2 patch."""
    kernel = _np(layer.kernel)  # (2, 2, out, in)
    out = np.einsum("bijc,pqfc->bipjqf", x, kernel).reshape(2, 16, 16, -1)
    return out + _np(layer.bias)


def _dropped(x, out):
    dropped = out == 0
    assert 0 < dropped.mean() < 1, dropped.mean()
    return np.where(dropped, 0.0, 2.0 * x)  # rate 0.5: the kept values are scaled by 2


def _r3(x, res):
    first, _, grouped, _, last = res.main
    y = _leaky(_conv(x, _np(first.kernel), _np(first.bias)))
    y = _leaky(_conv(y, _np(grouped.kernel), _np(grouped.bias)))
    return x + _conv(y, _np(last.kernel))


def _branches(x, res):
    return _run(res.main, x, None) + _run(res.shortcut, x, None)


def _pooled(x, reduce):
    return reduce(x.reshape(2, 4, 2, 4, 2, 3), axis=(2, 4))


def _stddev_channel(x):
    spread = np.sqrt(x.var(axis=0) + 1e-8).mean()
    return np.concatenate([x, np.full(x.shape[:-1] + (1,), spread)], axis=-1)


# Per block: what it computes from the input, its layers and its output, in NumPy.
REFERENCE = {
    "dense": lambda x, ls, out: _leaky(x @ _np(ls[0].kernel) + _np(ls[0].bias)),
    "conv": lambda x, ls, out: _conv(x, _np(ls[0].kernel), _np(ls[0].bias)),
    "conv_transpose": lambda x, ls, out: _transposed(x, ls[0]),
    "batch_norm": lambda x, ls, out: _normalized(x, (0, 1, 2), 1e-4, ls[0]),
    "layer_norm": lambda x, ls, out: _normalized(x, -1, ls[0].epsilon, ls[0]),
    "activation": lambda x, ls, out: np.tanh(x),
    "reshape": lambda x, ls, out: x.reshape(2, 16, 4, 3),
    "flatten": lambda x, ls, out: x.reshape(2, -1),
    "max_pool": lambda x, ls, out: _pooled(x, np.max),
    "avg_pool": lambda x, ls, out: _pooled(x, np.mean),
    "global_avg_pool": lambda x, ls, out: x.mean(axis=(1, 2)),
    "upsample": lambda x, ls, out: x.repeat(2, axis=1).repeat(2, axis=2),
    "dropout": lambda x, ls, out: _dropped(x, out),
    "minibatch_stddev": lambda x, ls, out: _stddev_channel(x),
    "pixel_norm": lambda x, ls, out: x / np.sqrt(np.mean(x**2, axis=-1, keepdims=True) + 1e-8),
    "res_up": lambda x, ls, out: _branches(x, ls[0]),
    "res_down": lambda x, ls, out: _branches(x, ls[0]),
    "r3_res": lambda x, ls, out: _r3(x, ls[0]),
}


def _clone(layers):
    """The block rebuilt from each layer's serialized config (weights not copied)."""

    def copy(layer):
        return keras.layers.deserialize(keras.layers.serialize(layer))

    return [
        blocks.Residual([copy(y) for y in x.main], [copy(y) for y in x.shortcut], x.name)
        if isinstance(x, blocks.Residual)
        else copy(x)
        for x in layers
    ]


def test_every_block_has_an_expected_output_and_a_reference():
    assert set(EXPECTED) == set(REFERENCE) == set(SPECS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_block_computes_its_reference_and_survives_a_config_round_trip(name):
    layers = blocks.build_block({"block": name, **SPECS[name]}, **INIT)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    out = _run(layers, x, training=True)
    shape, trainable, non_trainable = EXPECTED[name]
    assert out.shape == shape
    flat = _flat(layers)
    assert sum(len(layer.trainable_weights) for layer in flat) == trainable
    assert sum(len(layer.non_trainable_weights) for layer in flat) == non_trainable
    if name == "r3_res":  # R3GAN's fix-up initialization: the block starts as the identity
        np.testing.assert_allclose(out, x, atol=1e-6)
    # Random weights, so that no zero kernel, unit scale or zero bias hides a wrong computation.
    rng = np.random.default_rng(1)
    for variable in (v for layer in flat for v in layer.trainable_weights):
        variable.assign(rng.normal(size=variable.shape).astype("float32"))
    out = _run(layers, x, training=True)
    np.testing.assert_allclose(out, REFERENCE[name](x, layers, out), rtol=1e-4, atol=1e-4)
    # The same block from its configs, given the same weights, computes the same.
    clone = _clone(layers)
    _run(clone, x, training=False)  # builds it
    for original, copied in zip(flat, _flat(clone), strict=True):
        assert copied.get_config() == original.get_config()
        copied.set_weights(original.get_weights())
    expected = _run(layers, x, training=False)
    np.testing.assert_allclose(_run(clone, x, training=False), expected, rtol=1e-6, atol=1e-6)


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
        assert "tensorflow" not in sys.modules  # blocks.py imports keras only
        print("JAX-OK")
        """
    )
    result = run_jax("-c", script, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "JAX-OK" in result.stdout
