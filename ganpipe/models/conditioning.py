"""Class conditioning: how a label enters a generator or a critic.

A conditional generator takes ``(noise, label)`` and a conditional critic ``(image, label)``;
labels are integers in ``[0, num_classes)``, shape ``(batch,)``. Which wiring is used is a
registry choice (``build_generator.conditioning``, ``build_critic.conditioning``):

- generator ``concat``: the label's code (one-hot, or a learned embedding) is concatenated to the
  noise before the first block (Mirza & Osindero, 2014).
- critic ``concat``: the label's code is appended to the image as constant extra channels (every
  pixel carries it) before the first block. For a fully connected critic that starts with
  ``flatten`` this is the paper's concatenation of ``y`` to ``x``, with ``y`` repeated per pixel.
- critic ``projection``: the blocks up to the last one compute ``phi(x)`` (must be a vector), the
  last block, ``dense`` with one unit and no activation, is ``psi``, and the score is
  ``psi(phi(x)) + <embed(y), phi(x)>`` (Miyato & Koyama, 2018).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
from keras import ops

from ganpipe import validate
from ganpipe.registry import Registry

LABEL_DTYPE = "int32"


@keras.saving.register_keras_serializable(package="ganpipe")
class OneHot(keras.layers.Layer):
    """Integer labels ``(batch,)`` -> one-hot rows ``(batch, num_classes)``."""

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)

    def call(self, labels):
        return ops.one_hot(ops.cast(labels, "int32"), self.num_classes, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.num_classes,)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="ganpipe")
class LabelChannels(keras.layers.Layer):
    """``[images (b, h, w, c), codes (b, k)]`` -> ``(b, h, w, c + k)``: each code as k constant
    channels."""

    def call(self, inputs):
        images, codes = inputs
        shape = ops.shape(images)
        codes = ops.cast(codes, images.dtype)[:, None, None, :]
        planes = ops.broadcast_to(codes, (shape[0], shape[1], shape[2], ops.shape(codes)[-1]))
        return ops.concatenate([images, planes], axis=-1)

    def compute_output_shape(self, input_shape):
        images, codes = input_shape
        channels = None if images[-1] is None or codes[-1] is None else images[-1] + codes[-1]
        return tuple(images[:-1]) + (channels,)


def apply_layers(name: str, layers: Sequence[keras.layers.Layer], outputs, replace=None):
    """Applies ``layers`` in order (a residual block wires its branches); ``replace(layer, x)``,
    when given, is called instead of ``layer(x)`` for every plain layer, inside residual blocks
    too, and returns the output or None to apply the layer as it is."""

    def one(layer, x):
        if hasattr(layer, "wire"):  # blocks.Residual
            return layer.wire(x, lambda branch, y: apply_layers(name, branch, y, replace))
        out = replace(layer, x) if replace is not None else None
        return layer(x) if out is None else out

    for index, layer in enumerate(layers):
        try:
            outputs = one(layer, outputs)
        except Exception as error:  # Keras raises several types for shape mismatches.
            raise ValueError(
                f"The {name}'s layer {index} ({layer.__class__.__name__}) cannot take an input of "
                f"shape {tuple(outputs.shape)}: {error}"
            ) from error
    return outputs


class Conditioning:
    """Base class: wires a label input into a model made of ``layers``.

    Args:
        embedding_dim: None codes the label one-hot; an integer uses a learned
            ``Embedding(num_classes, embedding_dim)`` instead.
    """

    name = "base"
    # Set (to the reason) where the label's code has a width of its own: an embedding_dim is
    # then refused with this message.
    fixed_width: str | None = None

    def __init__(self, embedding_dim: int | None = None):
        if embedding_dim is not None and self.fixed_width is not None:
            raise ValueError(self.fixed_width)
        if embedding_dim is not None:
            validate.at_least(
                f"The {self.name} conditioning's embedding_dim",
                embedding_dim,
                1,
                hint="None (the default) codes the label one-hot.",
            )
        self.embedding_dim = embedding_dim

    def _code(self, labels, num_classes: int, initializer: Callable[[], object], prefix: str):
        if self.embedding_dim is None:
            return OneHot(num_classes, name=f"{prefix}_one_hot")(labels)
        return keras.layers.Embedding(
            num_classes,
            self.embedding_dim,
            embeddings_initializer=initializer(),
            name=f"{prefix}_embedding",
        )(labels)

    def wire(self, name, inputs, labels, layers, num_classes, initializer):
        """The model's output from its main input, its label input and its block layers."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(embedding_dim={self.embedding_dim})"


class ConcatNoise(Conditioning):
    """Generator: the label's code concatenated to the noise (Mirza & Osindero, 2014)."""

    name = "concat"

    def wire(self, name, inputs, labels, layers, num_classes, initializer):
        code = self._code(labels, num_classes, initializer, f"{name}_label")
        joined = keras.layers.Concatenate(name=f"{name}_noise_and_label")([inputs, code])
        return apply_layers(name, layers, joined)


class ConcatChannels(Conditioning):
    """Critic: the label's code as constant extra channels of the image."""

    name = "concat"

    def wire(self, name, inputs, labels, layers, num_classes, initializer):
        if len(inputs.shape) != 4:
            raise ValueError(
                f"The critic's concat conditioning appends the label as image channels; it needs "
                f"images (h, w, c), got input shape {tuple(inputs.shape[1:])}."
            )
        code = self._code(labels, num_classes, initializer, f"{name}_label")
        joined = LabelChannels(name=f"{name}_image_and_label")([inputs, code])
        return apply_layers(name, layers, joined)


class Projection(Conditioning):
    """Critic: ``psi(phi(x)) + <embed(y), phi(x)>`` (Miyato & Koyama, 2018).

    ``phi`` is every block but the last and must give a vector per image; the last block, ``psi``,
    must be a dense layer with one unit and no activation. The label's embedding has
    ``phi``'s width; ``embedding_dim`` is therefore fixed and must be left None.
    """

    name = "projection"
    fixed_width = (
        "The projection critic's label embedding has the width of phi(x) (the last hidden "
        "layer); leave its embedding_dim unset."
    )

    def wire(self, name, inputs, labels, layers, num_classes, initializer):
        psi = layers[-1] if layers else None
        inner = getattr(psi, "layer", psi)  # Look inside a spectral-norm wrapper.
        activation = getattr(getattr(inner, "activation", None), "__name__", None)
        if not (
            isinstance(inner, keras.layers.Dense)
            and inner.units == 1
            and activation in (None, "linear")
        ):
            raise ValueError(
                "The projection critic's last block is psi: it must be "
                "{'block': 'dense', 'units': 1} with no activation, got "
                f"{type(inner).__name__}."
            )
        phi = apply_layers(name, layers[:-1], inputs)
        if len(phi.shape) != 2:
            raise ValueError(
                "The projection critic needs phi(x), the output of every block but the last, to "
                f"be a vector per image; it has shape {tuple(phi.shape[1:])}. Add a 'flatten' (or "
                "a dense block) before the final dense(1)."
            )
        features = int(phi.shape[-1])
        embedded = keras.layers.Embedding(
            num_classes, features, embeddings_initializer=initializer(), name=f"{name}_embedding"
        )(labels)
        unconditional = psi(phi)
        inner_product = keras.layers.Dot(axes=1, name=f"{name}_projection")([embedded, phi])
        return keras.layers.Add(name=f"{name}_score")([unconditional, inner_product])


class ClassBatchNorm(Conditioning):
    """Generator: conditional batch normalization (de Vries et al., 2017; Miyato & Koyama, 2018;
    the class-conditional generators of SNGAN and BigGAN). Every batch-norm layer of the
    generator (inside residual blocks too) normalizes without its own scale and offset, and each
    class has its own: ``gamma(y) * BN(x) + beta(y)``, with ``gamma`` and ``beta`` class
    embeddings starting at 1 and 0 (so at initialization it is plain batch norm). The noise is
    not concatenated with the label. Built from Keras layers only.
    """

    name = "class_batch_norm"
    fixed_width = (
        "Conditional batch norm learns one scale and one offset per class and channel; "
        "leave its embedding_dim unset."
    )

    def wire(self, name, inputs, labels, layers, num_classes, initializer):
        del initializer
        count = [0]

        def modulated(layer, x):
            if not isinstance(layer, keras.layers.BatchNormalization):
                return None
            count[0] += 1
            prefix = f"{name}_cbn{count[0]}"
            config = {**layer.get_config(), "center": False, "scale": False, "name": prefix}
            normalized = type(layer).from_config(config)(x)
            channels = int(x.shape[-1])
            shape = (1,) * (len(x.shape) - 2) + (channels,)

            def embedding(kind, start):
                e = keras.layers.Embedding(
                    num_classes, channels, embeddings_initializer=start, name=f"{prefix}_{kind}"
                )(labels)
                return keras.layers.Reshape(shape, name=f"{prefix}_{kind}_shape")(e)

            scaled = keras.layers.Multiply(name=f"{prefix}_scale")(
                [normalized, embedding("gamma", "ones")]
            )
            return keras.layers.Add(name=f"{prefix}_offset")([scaled, embedding("beta", "zeros")])

        outputs = apply_layers(name, layers, inputs, modulated)
        if not count[0]:
            raise ValueError(
                f"build_generator.conditioning = 'class_batch_norm' needs batch-norm blocks in "
                f"the {name}; it has none. Add 'batch_norm' blocks or use 'concat'."
            )
        return outputs


GENERATOR_CONDITIONINGS = Registry(
    "generator conditioning",
    {ConcatNoise.name: ConcatNoise, ClassBatchNorm.name: ClassBatchNorm},
    aliases={
        "concatenate": "concat",
        "concatenation": "concat",
        "cbn": "class_batch_norm",
        "conditional_batch_norm": "class_batch_norm",
    },
    base=(ConcatNoise, ClassBatchNorm),
)
CRITIC_CONDITIONINGS = Registry(
    "critic conditioning",
    {ConcatChannels.name: ConcatChannels, Projection.name: Projection},
    aliases={
        "concatenate": "concat",
        "concatenation": "concat",
        "projection_discriminator": "projection",
    },
    base=(ConcatChannels, Projection),
)
