"""Keras 3 layer blocks, addressed by name from gin block specs.

A block spec is a dict such as ``{'block': 'conv', 'filters': 64, 'kernel_size': 5}``. The ``block``
key names an entry of ``BLOCKS``; the other keys are that block's keyword arguments. Every block
builder returns a list of Keras layers. Only ``keras`` and ``keras.ops`` are used here, so the
blocks run under any Keras backend (TensorFlow, JAX, PyTorch).

Layers that take weights (``dense``, ``conv``, ``conv_transpose``) receive the factory's default
kernel and bias initializers unless the spec names its own, and accept ``spectral_norm=True``, which
wraps them in ``keras.layers.SpectralNormalization`` (Miyato et al., 2018).
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
from keras import ops

from ganpipe.models import moments

BlockSpec = Mapping[str, Any]
Initializer = Any


@keras.saving.register_keras_serializable(package="ganpipe")
class MinibatchStddev(keras.layers.Layer):
    """Appends the mean over features of the per-feature batch standard deviation as a channel.

    Gives the critic a direct view of sample diversity, a classic counter to mode collapse
    (Karras et al., 2018, section 3).

    Args:
        group_size: Examples per statistics group; the batch must be divisible by it. ``None``
            uses the whole batch as one group.
        epsilon: Added to the variance before the square root.
    """

    def __init__(self, group_size: int | None = None, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.group_size = group_size
        self.epsilon = epsilon

    def call(self, inputs):
        shape = ops.shape(inputs)
        group = shape[0] if self.group_size is None else self.group_size
        grouped = ops.reshape(inputs, (group, -1) + tuple(shape[1:]))
        variance = ops.var(grouped, axis=0)
        stddev = ops.sqrt(variance + self.epsilon)
        stat = ops.mean(stddev, axis=tuple(range(1, len(shape))), keepdims=True)
        stat = ops.tile(stat, (group,) + (1,) * (len(shape) - 1))
        stat = ops.broadcast_to(stat, tuple(shape[:-1]) + (1,))
        return ops.concatenate([inputs, ops.cast(stat, inputs.dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        channels = None if input_shape[-1] is None else input_shape[-1] + 1
        return tuple(input_shape[:-1]) + (channels,)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="ganpipe")
class PixelNorm(keras.layers.Layer):
    """Normalizes each feature vector to unit mean square (Karras et al., 2018, section 4.2).

    Args:
        epsilon: Added to the mean square before the reciprocal square root.
    """

    def __init__(self, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, inputs):
        return inputs * ops.rsqrt(
            ops.mean(ops.square(inputs), axis=-1, keepdims=True) + self.epsilon
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="ganpipe")
class SyncBatchNorm(keras.layers.BatchNormalization):
    """Batch normalization over the global batch of all replicas (``synchronized=True``).

    Under a multi-replica tf.distribute strategy, the mean and variance are those of the whole
    global batch, all-reduced over the replicas in two passes (the mean first, then the squared
    deviations from it, ``moments.all_reduced_moments``): the same formula ``tf.nn.moments`` uses
    on one replica, so N replicas compute what one replica computes up to summation order.
    (Keras' own ``synchronized=True`` uses E[x^2] - E[x]^2, which loses digits to cancellation
    and so drifts from the one-replica result.) On one replica, or under another backend, it is
    plain batch normalization.
    """

    def __init__(self, **kwargs):
        kwargs.pop("synchronized", None)
        super().__init__(**kwargs)

    def _moments(self, inputs, mask):
        context = None if mask is not None else moments.sync_replica_context()
        if context is None:
            return super()._moments(inputs, mask)
        return moments.all_reduced_moments(inputs, context, self._reduction_axes)


def _batch_norm(spec, kernel_initializer, bias_initializer):
    del kernel_initializer, bias_initializer
    if spec.pop("synchronized", False):
        return [SyncBatchNorm(**spec)]
    return [keras.layers.BatchNormalization(**spec)]


_batch_norm.layer_cls = keras.layers.BatchNormalization


def _weighted(
    layer_cls: type[keras.layers.Layer],
    spec: dict[str, Any],
    kernel_initializer: Callable[[], Initializer],
    bias_initializer: Callable[[], Initializer],
) -> list[keras.layers.Layer]:
    """Builds a layer with weights, giving it fresh default initializers and optional SN."""
    spectral_norm = spec.pop("spectral_norm", False)
    power_iterations = spec.pop("power_iterations", 1)
    spec.setdefault("kernel_initializer", kernel_initializer())
    spec.setdefault("bias_initializer", bias_initializer())
    layer = layer_cls(**spec)
    if spectral_norm:
        layer = keras.layers.SpectralNormalization(layer, power_iterations=power_iterations)
    return [layer]


def _make_weighted(layer_cls):
    def builder(spec, kernel_initializer, bias_initializer):
        return _weighted(layer_cls, spec, kernel_initializer, bias_initializer)

    builder.layer_cls = layer_cls
    return builder


def _make_plain(layer_cls, rename: Mapping[str, str] | None = None):
    def builder(spec, kernel_initializer, bias_initializer):
        del kernel_initializer, bias_initializer
        for old, new in (rename or {}).items():
            if old in spec:
                spec[new] = spec.pop(old)
        return [layer_cls(**spec)]

    builder.layer_cls = layer_cls
    return builder


def _activation(spec, kernel_initializer, bias_initializer):
    del kernel_initializer, bias_initializer
    name = spec.pop("activation")
    if name == "leaky_relu" and "negative_slope" in spec:
        return [keras.layers.LeakyReLU(negative_slope=spec.pop("negative_slope"), **spec)]
    return [keras.layers.Activation(name, **spec)]


_activation.layer_cls = keras.layers.Activation


class Residual:
    """A residual block: ``main(x) + shortcut(x)`` (an identity shortcut when it is empty).

    Not a Keras layer: the factories wire its branches into the functional model with built-in
    layers and an ``Add``, so a saved model holds only Keras layers and loads without ganpipe.
    ``wire(x, apply)`` lets a conditioning rewrite the layers of its branches (conditional batch
    norm)."""

    def __init__(self, main: Sequence, shortcut: Sequence = (), name: str | None = None):
        self.main, self.shortcut, self.name = list(main), list(shortcut), name

    def wire(self, x, apply):
        """``apply(layers, x)`` runs a branch; returns the sum of the two branches."""
        branch = apply(self.main, x)
        skip = apply(self.shortcut, x) if self.shortcut else x
        return keras.layers.Add(name=self.name)([branch, skip])

    def __call__(self, x):
        def apply(layers, y):
            for layer in layers:
                y = layer(y)
            return y

        return self.wire(x, apply)

    def layers(self) -> list:
        return [*self.main, *self.shortcut]


def _required(spec, key: str, block: str):
    if key not in spec:
        raise ValueError(
            f"Block {block!r} needs {key!r}, e.g. {{'block': {block!r}, {key!r}: 64}}."
        )
    return spec.pop(key)


def _conv_factory(spec, kernel_initializer, bias_initializer):
    spectral = spec.pop("spectral_norm", False)

    def conv(filters, kernel_size, **kwargs):
        args = {"filters": filters, "kernel_size": kernel_size, "padding": "same", **kwargs}
        return _weighted(keras.layers.Conv2D, {**args, "spectral_norm": spectral},
                         kernel_initializer, bias_initializer)[0]  # fmt: skip

    return conv


def _res_up(spec, kernel_initializer, bias_initializer):
    """SNGAN/BigGAN generator block (Miyato et al., 2018, appendix; Brock et al., 2019): main
    BN -> ReLU -> 2x nearest upsampling -> 3x3 conv -> BN -> ReLU -> 3x3 conv; shortcut 2x
    upsampling -> 1x1 conv."""
    filters = _required(spec, "filters", "res_up")
    synchronized = spec.pop("synchronized", False)
    conv = _conv_factory(spec, kernel_initializer, bias_initializer)

    def norm():
        return SyncBatchNorm() if synchronized else keras.layers.BatchNormalization()

    relu = keras.layers.Activation
    main = [norm(), relu("relu"), keras.layers.UpSampling2D(2), conv(filters, 3), norm(),
            relu("relu"), conv(filters, 3)]  # fmt: skip
    return [Residual(main, [keras.layers.UpSampling2D(2), conv(filters, 1)], spec.get("name"))]


_res_up.arguments = {"filters", "synchronized", "spectral_norm", "name"}


def _res_down(spec, kernel_initializer, bias_initializer):
    """SNGAN critic block (Miyato et al., 2018, appendix): main ReLU -> 3x3 conv -> ReLU -> 3x3
    conv -> 2x2 average pooling; shortcut 1x1 conv -> pooling. ``first``: the block that reads
    the image (no ReLU before its first conv; shortcut pooling -> 1x1 conv). ``down=False``:
    no pooling."""
    filters = _required(spec, "filters", "res_down")
    first, down = spec.pop("first", False), spec.pop("down", True)
    conv = _conv_factory(spec, kernel_initializer, bias_initializer)
    pool = [keras.layers.AveragePooling2D(2)] if down else []
    relu = keras.layers.Activation
    main = ([] if first else [relu("relu")]) + [conv(filters, 3), relu("relu"), conv(filters, 3)]
    shortcut = pool + [conv(filters, 1)] if first else [conv(filters, 1)] + pool
    return [Residual(main + pool, shortcut, spec.get("name"))]


_res_down.arguments = {"filters", "first", "down", "spectral_norm", "name"}


def _r3_res(spec, kernel_initializer, bias_initializer):
    """R3GAN's normalization-free residual block (Huang et al., 2024, "The GAN is dead; long live
    the GAN!", section 4): identity shortcut; main 1x1 conv to ``filters * expansion`` -> leaky
    ReLU 0.2 -> 3x3 conv (``groups``) -> leaky ReLU 0.2 -> 1x1 conv back to ``filters``, whose
    kernel starts at zero (their fix-up initialization: every block starts as the identity). No
    normalization. ``filters`` must equal the input's channels; change width or resolution
    between blocks with 'conv' (1x1) and 'upsample'/'avg_pool' blocks (R3GAN's transitions)."""
    filters, expansion = _required(spec, "filters", "r3_res"), spec.pop("expansion", 2)
    groups = spec.pop("groups", 1)
    conv = _conv_factory(spec, kernel_initializer, bias_initializer)
    width = int(filters) * int(expansion)
    main = [
        conv(width, 1), keras.layers.LeakyReLU(negative_slope=0.2),
        conv(width, 3, groups=groups), keras.layers.LeakyReLU(negative_slope=0.2),
        conv(filters, 1, use_bias=False, kernel_initializer="zeros"),
    ]  # fmt: skip
    return [Residual(main, (), spec.get("name"))]


_r3_res.arguments = {"filters", "expansion", "groups", "spectral_norm", "name"}

# name -> builder(spec, kernel_initializer, bias_initializer) -> list of layers. The one place a
# block name is turned into layers.
BLOCKS: Mapping[str, Callable[..., list]] = types.MappingProxyType(
    {
        "dense": _make_weighted(keras.layers.Dense),
        "conv": _make_weighted(keras.layers.Conv2D),
        "conv_transpose": _make_weighted(keras.layers.Conv2DTranspose),
        "batch_norm": _batch_norm,
        "layer_norm": _make_plain(keras.layers.LayerNormalization),
        "activation": _activation,
        "reshape": _make_plain(keras.layers.Reshape),
        "flatten": _make_plain(keras.layers.Flatten),
        "max_pool": _make_plain(keras.layers.MaxPooling2D),
        "avg_pool": _make_plain(keras.layers.AveragePooling2D),
        "global_avg_pool": _make_plain(keras.layers.GlobalAveragePooling2D),
        "upsample": _make_plain(keras.layers.UpSampling2D),
        "dropout": _make_plain(keras.layers.Dropout),
        "minibatch_stddev": _make_plain(MinibatchStddev),
        "pixel_norm": _make_plain(PixelNorm),
        "res_up": _res_up,
        "res_down": _res_down,
        "r3_res": _r3_res,
    }
)
# Alternative spellings users reach for first.
_ALIASES = types.MappingProxyType(
    {
        "conv2d": "conv",
        "conv2d_transpose": "conv_transpose",
        "deconv": "conv_transpose",
        "batchnorm": "batch_norm",
        "batch_normalization": "batch_norm",
        "maxpool": "max_pool",
        "max_pooling": "max_pool",
        "linear": "dense",
    }
)


def canonical_name(name: str) -> str:
    """A block name with aliases resolved (``'BatchNorm'`` -> ``'batch_norm'``)."""
    key = name.lower()
    return _ALIASES.get(key, key)


def known_blocks() -> list[str]:
    """Sorted names of every block, aliases included."""
    return sorted({*BLOCKS, *_ALIASES})


def _accepted_arguments(builder) -> set[str] | None:
    if hasattr(builder, "arguments"):
        return set(builder.arguments)
    layer_cls = getattr(builder, "layer_cls", None)
    if layer_cls is None:
        return None
    names: set[str] = set()
    for cls in inspect.getmro(layer_cls):
        if cls is object:
            break
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        names.update(p for p in params if p not in ("self", "kwargs", "args"))
    # Base-layer keyword arguments every Keras layer accepts.
    names.update({"name", "dtype", "trainable", "spectral_norm", "power_iterations"})
    if builder is _activation:
        names.add("negative_slope")
    return names


def build_block(
    spec: BlockSpec,
    *,
    kernel_initializer: Callable[[], Initializer],
    bias_initializer: Callable[[], Initializer],
) -> list[keras.layers.Layer]:
    """Turns one block spec into Keras layers.

    Args:
        spec: Mapping with a ``block`` name and that block's keyword arguments.
        kernel_initializer: Called once per weighted layer for a fresh default kernel initializer.
        bias_initializer: Likewise for biases.

    Returns:
        The layers, in order.

    Raises:
        ValueError: the spec has no ``block`` key, names an unknown block, or passes an argument
            the block does not take.
    """
    if not isinstance(spec, Mapping) or "block" not in spec:
        raise ValueError(
            f"A block spec must be a dict with a 'block' key, got {spec!r}. Example: "
            "{'block': 'dense', 'units': 256, 'activation': 'leaky_relu'}."
        )
    args = dict(spec)
    name = str(args.pop("block"))
    key = name.lower()
    key = _ALIASES.get(key, key)
    if key not in BLOCKS:
        raise ValueError(f"Unknown block {name!r}. Known blocks: {', '.join(known_blocks())}.")
    builder = BLOCKS[key]
    accepted = _accepted_arguments(builder)
    if accepted is not None:
        unknown = sorted(set(args) - accepted)
        if unknown:
            raise ValueError(
                f"Block {name!r} does not take argument(s) {unknown}. It takes: "
                f"{', '.join(sorted(accepted))}."
            )
    return builder(args, kernel_initializer, bias_initializer)


def build_blocks(
    specs: Sequence[BlockSpec],
    *,
    kernel_initializer: Callable[[], Initializer],
    bias_initializer: Callable[[], Initializer],
) -> list[keras.layers.Layer]:
    """Builds every spec in order; see ``build_block``."""
    layers: list[keras.layers.Layer] = []
    for index, spec in enumerate(specs):
        try:
            layers.extend(
                build_block(
                    spec, kernel_initializer=kernel_initializer, bias_initializer=bias_initializer
                )
            )
        except (TypeError, ValueError) as error:
            raise ValueError(f"Block {index} ({spec!r}): {error}") from error
    return layers
