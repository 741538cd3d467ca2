"""Keras 3 layer blocks, addressed by name from gin block specs.

A block spec is a dict such as ``{'block': 'conv', 'filters': 64, 'kernel_size': 5}``. The ``block``
key names an entry of the ``BLOCKS`` registry (a ``Block``); the other keys are that block's
keyword arguments, checked against its builder's signature. Every block builder returns a list of
Keras layers. Only ``keras`` and ``keras.ops`` are used here, so the blocks run under any Keras
backend (TensorFlow, JAX, PyTorch).

Weighted blocks (``Block.weighted``: ``dense``, ``conv``, ``conv_transpose`` and the residual
blocks) receive the factory's default kernel and bias initializers unless the spec names its own,
and accept ``spectral_norm=True``, which wraps their kernels in
``keras.layers.SpectralNormalization`` (Miyato et al., 2018).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
from keras import ops

from ganpipe.models import moments
from ganpipe.registry import Registry

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


@dataclasses.dataclass(frozen=True)
class Initializers:
    """A model's default initializers, as factories: each weighted layer calls them for fresh
    instances of its own (a Keras initializer instance fixes its seed when made, so two layers
    sharing one would start with equal weights).

    Attributes:
        kernel: Makes the default kernel initializer.
        bias: Makes the default bias initializer.
    """

    kernel: Callable[[], Initializer]
    bias: Callable[[], Initializer]


@dataclasses.dataclass(frozen=True)
class Block:
    """A ``BLOCKS`` entry: how a block name turns into layers.

    Attributes:
        build: ``build(init, /, **arguments) -> list of layers``. ``init`` is the model's
            ``Initializers``; the keyword arguments are the spec's keys other than ``'block'``. Its
            signature is what the block accepts: a spec passing anything else is refused, and a
            keyword parameter without a default is required.
        weighted: The block holds kernels. It must then take ``spectral_norm`` (True wraps its
            kernels in ``keras.layers.SpectralNormalization``), and
            ``build_critic.spectral_norm = True`` sets that on every spec of it that does not
            set it itself.
    """

    build: Callable[..., list]
    weighted: bool = False

    def __post_init__(self):
        if self.weighted and "spectral_norm" not in self.arguments:
            raise ValueError(
                f"The weighted block builder {self.build!r} must take a `spectral_norm` keyword "
                "argument (build_critic.spectral_norm sets it)."
            )

    def _parameters(self) -> list[inspect.Parameter]:
        parameters = list(inspect.signature(self.build).parameters.values())[1:]
        plain = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        return [p for p in parameters if p.kind in plain]

    @property
    def arguments(self) -> frozenset[str]:
        """The spec keys this block accepts (read off ``build``'s signature)."""
        return frozenset(p.name for p in self._parameters())

    @property
    def required(self) -> tuple[str, ...]:
        """The spec keys this block needs (``build``'s keyword parameters without a default)."""
        return tuple(p.name for p in self._parameters() if p.default is inspect.Parameter.empty)


def _layer_signature(layer_cls, *extra: inspect.Parameter) -> inspect.Signature:
    """``(init, /, *, <the layer's own arguments>, <Keras' base-layer arguments>, *extra)``: the
    signature of a block that makes one ``layer_cls``."""
    parameters = [inspect.Parameter("init", inspect.Parameter.POSITIONAL_ONLY)]
    seen = {p.name for p in extra}
    for cls in (layer_cls, keras.layers.Layer):
        for p in inspect.signature(cls.__init__).parameters.values():
            if p.name == "self" or p.name in seen or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            seen.add(p.name)
            parameters.append(p.replace(kind=inspect.Parameter.KEYWORD_ONLY))
    return inspect.Signature([*parameters, *extra])


def _keyword(name: str, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)


def _weighted(
    layer_cls: type[keras.layers.Layer],
    init: Initializers,
    arguments: dict[str, Any],
    spectral_norm: bool = False,
    power_iterations: int = 1,
) -> keras.layers.Layer:
    """A layer with weights, given fresh default initializers and optional SN."""
    arguments.setdefault("kernel_initializer", init.kernel())
    arguments.setdefault("bias_initializer", init.bias())
    layer = layer_cls(**arguments)
    if spectral_norm:
        layer = keras.layers.SpectralNormalization(layer, power_iterations=power_iterations)
    return layer


def _weighted_layer(layer_cls) -> Block:
    """A block of one weighted Keras layer; takes the layer's arguments and spectral norm's."""

    def build(init, /, *, spectral_norm=False, power_iterations=1, **arguments):
        return [_weighted(layer_cls, init, arguments, spectral_norm, power_iterations)]

    build.__signature__ = _layer_signature(
        layer_cls, _keyword("spectral_norm", False), _keyword("power_iterations", 1)
    )
    return Block(build, weighted=True)


def _plain_layer(layer_cls) -> Block:
    """A block of one Keras layer without default initializers; takes the layer's arguments."""

    def build(init, /, **arguments):
        del init
        return [layer_cls(**arguments)]

    build.__signature__ = _layer_signature(layer_cls)
    return Block(build)


def _batch_norm(init, /, *, synchronized=False, **arguments):
    del init
    return [(SyncBatchNorm if synchronized else keras.layers.BatchNormalization)(**arguments)]


_batch_norm.__signature__ = _layer_signature(keras.layers.BatchNormalization)


def _activation(init, /, *, activation, negative_slope=None, **arguments):
    del init
    if negative_slope is not None:
        if activation != "leaky_relu":
            raise ValueError(
                f"negative_slope is an argument of 'leaky_relu', not of {activation!r}."
            )
        return [keras.layers.LeakyReLU(negative_slope=negative_slope, **arguments)]
    return [keras.layers.Activation(activation, **arguments)]


_activation.__signature__ = _layer_signature(
    keras.layers.Activation, _keyword("negative_slope", None)
)


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


def _conv_factory(init: Initializers, spectral_norm: bool):
    def conv(filters, kernel_size, **kwargs):
        args = {"filters": filters, "kernel_size": kernel_size, "padding": "same", **kwargs}
        return _weighted(keras.layers.Conv2D, init, args, spectral_norm)

    return conv


def _res_up(init, /, *, filters, synchronized=False, spectral_norm=False, name=None):
    """SNGAN/BigGAN generator block (Miyato et al., 2018, appendix; Brock et al., 2019): main
    BN -> ReLU -> 2x nearest upsampling -> 3x3 conv -> BN -> ReLU -> 3x3 conv; shortcut 2x
    upsampling -> 1x1 conv."""
    conv = _conv_factory(init, spectral_norm)

    def norm():
        return SyncBatchNorm() if synchronized else keras.layers.BatchNormalization()

    relu = keras.layers.Activation
    main = [norm(), relu("relu"), keras.layers.UpSampling2D(2), conv(filters, 3), norm(),
            relu("relu"), conv(filters, 3)]  # fmt: skip
    return [Residual(main, [keras.layers.UpSampling2D(2), conv(filters, 1)], name)]


def _res_down(init, /, *, filters, first=False, down=True, spectral_norm=False, name=None):
    """SNGAN critic block (Miyato et al., 2018, appendix): main ReLU -> 3x3 conv -> ReLU -> 3x3
    conv -> 2x2 average pooling; shortcut 1x1 conv -> pooling. ``first``: the block that reads
    the image (no ReLU before its first conv; shortcut pooling -> 1x1 conv). ``down=False``:
    no pooling."""
    conv = _conv_factory(init, spectral_norm)
    pool = [keras.layers.AveragePooling2D(2)] if down else []
    relu = keras.layers.Activation
    main = ([] if first else [relu("relu")]) + [conv(filters, 3), relu("relu"), conv(filters, 3)]
    shortcut = pool + [conv(filters, 1)] if first else [conv(filters, 1)] + pool
    return [Residual(main + pool, shortcut, name)]


def _r3_res(init, /, *, filters, expansion=2, groups=1, spectral_norm=False, name=None):
    """R3GAN's normalization-free residual block (Huang et al., 2024, "The GAN is dead; long live
    the GAN!", section 4): identity shortcut; main 1x1 conv to ``filters * expansion`` -> leaky
    ReLU 0.2 -> 3x3 conv (``groups``) -> leaky ReLU 0.2 -> 1x1 conv back to ``filters``, whose
    kernel starts at zero (their fix-up initialization: every block starts as the identity). No
    normalization. ``filters`` must equal the input's channels; change width or resolution
    between blocks with 'conv' (1x1) and 'upsample'/'avg_pool' blocks (R3GAN's transitions)."""
    conv = _conv_factory(init, spectral_norm)
    width = int(filters) * int(expansion)
    main = [
        conv(width, 1), keras.layers.LeakyReLU(negative_slope=0.2),
        conv(width, 3, groups=groups), keras.layers.LeakyReLU(negative_slope=0.2),
        conv(filters, 1, use_bias=False, kernel_initializer="zeros"),
    ]  # fmt: skip
    return [Residual(main, (), name)]


# The one place a block name is turned into layers. A new block: its builder above, its entry
# here (weighted=True if it holds kernels), and a spec for it in tests/models/test_blocks.py.
BLOCKS = Registry(
    "block",
    {
        "dense": _weighted_layer(keras.layers.Dense),
        "conv": _weighted_layer(keras.layers.Conv2D),
        "conv_transpose": _weighted_layer(keras.layers.Conv2DTranspose),
        "batch_norm": Block(_batch_norm),
        "layer_norm": _plain_layer(keras.layers.LayerNormalization),
        "activation": Block(_activation),
        "reshape": _plain_layer(keras.layers.Reshape),
        "flatten": _plain_layer(keras.layers.Flatten),
        "max_pool": _plain_layer(keras.layers.MaxPooling2D),
        "avg_pool": _plain_layer(keras.layers.AveragePooling2D),
        "global_avg_pool": _plain_layer(keras.layers.GlobalAveragePooling2D),
        "upsample": _plain_layer(keras.layers.UpSampling2D),
        "dropout": _plain_layer(keras.layers.Dropout),
        "minibatch_stddev": _plain_layer(MinibatchStddev),
        "pixel_norm": _plain_layer(PixelNorm),
        "res_up": Block(_res_up, weighted=True),
        "res_down": Block(_res_down, weighted=True),
        "r3_res": Block(_r3_res, weighted=True),
    },
    # Alternative spellings users reach for first.
    aliases={
        "conv2d": "conv",
        "conv2d_transpose": "conv_transpose",
        "deconv": "conv_transpose",
        "batchnorm": "batch_norm",
        "batch_normalization": "batch_norm",
        "maxpool": "max_pool",
        "max_pooling": "max_pool",
        "linear": "dense",
    },
    base=Block,
    instantiate=False,
)


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
        ValueError: the spec has no ``block`` key, names an unknown block, passes an argument
            the block does not take or leaves out one it needs.
    """
    if not isinstance(spec, Mapping) or "block" not in spec:
        raise ValueError(
            f"A block spec must be a dict with a 'block' key, got {spec!r}. Example: "
            "{'block': 'dense', 'units': 256, 'activation': 'leaky_relu'}."
        )
    args = dict(spec)
    name = str(args.pop("block"))
    block = BLOCKS[name]
    takes = f"It takes: {', '.join(sorted(block.arguments))}."
    unknown = sorted(set(args) - block.arguments)
    if unknown:
        raise ValueError(f"Block {name!r} does not take argument(s) {unknown}. {takes}")
    missing = [key for key in block.required if key not in args]
    if missing:
        raise ValueError(f"Block {name!r} needs {', '.join(map(repr, missing))}. {takes}")
    return block.build(Initializers(kernel_initializer, bias_initializer), **args)


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
