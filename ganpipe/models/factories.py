"""Generator and critic factories: block specs from gin in, functional Keras models out.

Models know nothing of losses, optimizers or data pipelines. The critic returns raw, unbounded
scores of shape ``(batch, 1)``; a loss that needs a probability applies the sigmoid itself, in its
numerically safe form.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras

from ganpipe import validate
from ganpipe.models import blocks as blocks_lib
from ganpipe.models import conditioning as conditioning_lib
from ganpipe.models import families as families_lib

InitializerLike = str | dict | Callable[[], Any] | keras.initializers.Initializer


def _initializer_factory(initializer: InitializerLike) -> Callable[[], Any]:
    """Returns a callable that makes a fresh initializer for each layer.

    A fresh instance per layer matters: a Keras 3 initializer instance fixes its seed when created,
    so sharing one instance between two layers of the same shape gives them identical weights.
    """
    if isinstance(initializer, keras.initializers.Initializer):
        config = keras.initializers.serialize(initializer)
        return lambda: keras.initializers.deserialize(config)
    if isinstance(initializer, (str, dict)):
        return lambda: keras.initializers.get(initializer)
    if callable(initializer):
        return initializer
    raise ValueError(
        f"Cannot use {initializer!r} as an initializer: give a Keras initializer name, config "
        "dict, "
        "instance, or a gin reference to an initializer class such as @generator/TruncatedNormal."
    )


def _block_layers(
    name: str,
    blocks: Sequence[blocks_lib.BlockSpec],
    kernel_initializer: InitializerLike,
    bias_initializer: InitializerLike,
    sync_batch_norm: bool,
) -> tuple[list, Callable[[], Any]]:
    """The model's layers, built from its block specs, and its kernel initializer factory."""
    if not blocks:
        raise ValueError(f"The {name} needs at least one block; its `blocks` list is empty.")
    if not isinstance(sync_batch_norm, bool):
        raise ValueError(f"sync_batch_norm must be True or False, got {sync_batch_norm!r}.")
    if sync_batch_norm:
        blocks = [_synchronized(spec) for spec in blocks]
    kernel_factory = _initializer_factory(kernel_initializer)
    layers = blocks_lib.build_blocks(
        blocks,
        kernel_initializer=kernel_factory,
        bias_initializer=_initializer_factory(bias_initializer),
    )
    return layers, kernel_factory


def _functional_model(
    name: str,
    input_shape: Sequence[int],
    layers: list,
    kernel_factory: Callable[[], Any],
    conditioning: conditioning_lib.Conditioning | None,
    num_classes: int | None,
) -> keras.Model:
    """The layers wired into a functional model; a conditional one also takes labels."""
    inputs = keras.Input(shape=tuple(input_shape), name=f"{name}_input")
    if conditioning is not None:
        labels = keras.Input(shape=(), dtype=conditioning_lib.LABEL_DTYPE, name=f"{name}_label")
        outputs = conditioning.wire(name, inputs, labels, layers, num_classes, kernel_factory)
        return keras.Model([inputs, labels], outputs, name=name)
    outputs = conditioning_lib.apply_layers(name, layers, inputs)
    return keras.Model(inputs, outputs, name=name)


def _conditioning(owner: str, registry, conditioning, num_classes):
    """The conditioning instance (or None), checked against ``num_classes`` from the trainer."""
    if conditioning is None and num_classes is None:
        return None
    if conditioning is None:
        raise ValueError(
            f"train.num_classes = {num_classes} makes the run class-conditional, but "
            f"{owner}.conditioning is None. Set it to one of {registry.names()}, or set "
            "train.num_classes = None for an unconditional run."
        )
    if num_classes is None:
        raise ValueError(
            f"{owner}.conditioning = {conditioning!r} needs the number of classes: set "
            "train.num_classes (the trainer passes it to the model factories), or set "
            f"{owner}.conditioning = None."
        )
    validate.at_least("train.num_classes", num_classes, 1)
    return registry.get(conditioning)


def _block_of(spec) -> blocks_lib.Block | None:
    """The ``BLOCKS`` entry a spec names, or None where build_blocks will explain what is wrong
    with the spec."""
    if not isinstance(spec, Mapping) or str(spec.get("block")) not in blocks_lib.BLOCKS:
        return None
    return blocks_lib.BLOCKS[str(spec["block"])]


def _synchronized(spec):
    """The spec with ``synchronized=True`` if its block takes that (batch norm, or a block with
    batch norm inside) and it does not set it."""
    block = _block_of(spec)
    if block is None or "synchronized" not in block.arguments:
        return spec
    return {"synchronized": True, **spec}


def _spectral(spec):
    """The spec with ``spectral_norm=True`` if it is a weighted block (``Block.weighted``: it
    holds kernels, every kernel of a residual block included) that does not set it."""
    block = _block_of(spec)
    if block is None or not block.weighted:
        return spec
    return {"spectral_norm": True, **spec}


def _family_or_blocks(owner: str, family, blocks, shape, role: str):
    """The block specs: ``blocks`` as given, or the family's for ``shape``; exactly one of the
    two must be set."""
    if (family is None) == (blocks is None):
        set_both = family is not None
        raise ValueError(
            f"{owner} needs either `blocks` (a list of block specs) or `family` (one of "
            f"{families_lib.FAMILIES.names()}), "
            + ("not both: set the other to None." if set_both else "and has neither.")
        )
    if family is None:
        return blocks
    chosen = families_lib.FAMILIES.get(family)
    if shape is None:
        raise ValueError(
            f"{owner}.family = {family!r} needs the image shape; the trainer passes the data's "
            "(a run directory keeps it in data.json)."
        )
    return chosen.generator_blocks(shape) if role == "generator" else chosen.critic_blocks(shape)


def build_generator(
    *,
    latent_dim: int,
    blocks: Sequence[blocks_lib.BlockSpec] | None = None,
    family: str | None = None,
    output_shape: Sequence[int] | None = None,
    kernel_initializer: InitializerLike = "glorot_uniform",
    bias_initializer: InitializerLike = "zeros",
    sync_batch_norm: bool = False,
    conditioning: Any = None,
    num_classes: int | None = None,
    name: str = "generator",
) -> keras.Model:
    """Builds a generator that maps latent vectors ``(batch, latent_dim)`` to images.

    Args:
        latent_dim: Size of the latent (noise) vector.
        blocks, family: Block specs, applied in order (``ganpipe.models.blocks``); or a
            ``FAMILIES`` name (``'lean'``, ``'resnet'``, ``'r3gan'``) whose blocks follow from
            ``output_shape`` (``ganpipe.models.families``). Set one.
        output_shape: The images' ``(height, width, channels)``; the trainer passes the data's.
        kernel_initializer: Default kernel initializer of weighted blocks.
        bias_initializer: Default bias initializer of weighted blocks.
        sync_batch_norm: Under a multi-replica strategy, batch-norm layers normalise with the
            statistics of the whole global batch (all-reduced every call) instead of each
            replica's share (Keras ``BatchNormalization(synchronized=True)``). Applies to every
            block that takes ``synchronized`` (``batch_norm``, ``res_up``) and does not set it
            itself. No effect on one replica.
        conditioning: None (unconditional: the model takes noise only), or a
            ``GENERATOR_CONDITIONINGS`` name, config dict or instance (``'concat'``): the model
            then takes ``[noise, labels]``. See ``ganpipe.models.conditioning``.
        num_classes: Label classes of a conditional model; the trainer passes
            ``train.num_classes``.
        name: Model name.

    Returns:
        A functional ``keras.Model``.
    """
    latent_dim = validate.at_least("build_generator.latent_dim", latent_dim, 1)
    conditioner = _conditioning(
        "build_generator", conditioning_lib.GENERATOR_CONDITIONINGS, conditioning, num_classes
    )
    blocks = _family_or_blocks("build_generator", family, blocks, output_shape, "generator")
    layers, kernel_factory = _block_layers(
        name, blocks, kernel_initializer, bias_initializer, sync_batch_norm
    )
    return _functional_model(
        name, (int(latent_dim),), layers, kernel_factory, conditioner, num_classes
    )


def build_critic(
    *,
    input_shape: Sequence[int],
    blocks: Sequence[blocks_lib.BlockSpec] | None = None,
    family: str | None = None,
    kernel_initializer: InitializerLike = "glorot_uniform",
    bias_initializer: InitializerLike = "zeros",
    sync_batch_norm: bool = False,
    spectral_norm: bool = False,
    output_activation: str | None = None,
    conditioning: Any = None,
    num_classes: int | None = None,
    name: str = "critic",
) -> keras.Model:
    """Builds a critic that maps images to one raw score each, shape ``(batch, 1)``.

    The last block must produce one unit. Critics normally end without an activation: losses that
    need a probability apply the sigmoid internally (see ``ganpipe.losses``), and the trainer
    refuses a sigmoid-ended critic with such a loss.

    Args:
        input_shape: Image shape ``(height, width, channels)``; the trainer passes the data's.
        blocks, family: Block specs, applied in order; or a ``FAMILIES`` name, whose blocks
            follow from ``input_shape``. Set one.
        kernel_initializer: Default kernel initializer of weighted blocks.
        bias_initializer: Default bias initializer of weighted blocks.
        sync_batch_norm: As ``build_generator``'s.
        spectral_norm: Wrap every weighted block (``Block.weighted``: dense, conv,
            conv_transpose, the residual blocks) that does not set ``spectral_norm`` itself in
            ``keras.layers.SpectralNormalization`` (Miyato et al., 2018; SNGAN). Keras' wrapper
            divides the kernel by its largest singular value, estimated by one power iteration
            per training-mode call, and writes the result back into the kernel variable before
            the layer uses it.
        output_activation: An activation applied to the score after the last block, e.g.
            ``'sigmoid'`` to reproduce a probability-valued critic under the Wasserstein loss (the
            GAN-to-WGAN ladder's "no output sigmoid" rung). The trainer refuses a sigmoid-ended
            critic with a loss that applies the sigmoid itself.
        conditioning: None (unconditional: the model takes images only), or a
            ``CRITIC_CONDITIONINGS`` name, config dict or instance (``'concat'``,
            ``'projection'``): the model then takes ``[images, labels]``. See
            ``ganpipe.models.conditioning``.
        num_classes: Label classes of a conditional model; the trainer passes
            ``train.num_classes``.
        name: Model name.

    Returns:
        A functional ``keras.Model``.
    """
    blocks = _family_or_blocks("build_critic", family, blocks, input_shape, "critic")
    blocks = _critic_blocks(blocks, output_activation, spectral_norm)
    conditioner = _conditioning(
        "build_critic", conditioning_lib.CRITIC_CONDITIONINGS, conditioning, num_classes
    )
    layers, kernel_factory = _block_layers(
        name, blocks, kernel_initializer, bias_initializer, sync_batch_norm
    )
    model = _functional_model(name, input_shape, layers, kernel_factory, conditioner, num_classes)
    _check_one_score(model)
    return model


def _critic_blocks(
    blocks: Sequence[blocks_lib.BlockSpec], output_activation: str | None, spectral_norm: bool
) -> Sequence[blocks_lib.BlockSpec]:
    """The critic's block specs with build_critic's ``output_activation`` appended and its
    ``spectral_norm`` default applied."""
    if output_activation is not None:
        if not isinstance(output_activation, str) or not output_activation:
            raise ValueError(
                "build_critic.output_activation must be None or an activation name such as "
                f"'sigmoid', got {output_activation!r}."
            )
        blocks = [*blocks, {"block": "activation", "activation": output_activation}]
    if not isinstance(spectral_norm, bool):
        raise ValueError(
            f"build_critic.spectral_norm must be True or False, got {spectral_norm!r}."
        )
    if spectral_norm:
        blocks = [_spectral(spec) for spec in blocks]
    return blocks


def _check_one_score(critic: keras.Model) -> None:
    """Raises unless the critic outputs one score per image, shape (batch, 1)."""
    if tuple(critic.output_shape[1:]) != (1,):
        raise ValueError(
            f"The critic must output one score per image, shape (batch, 1), but its blocks give "
            f"{tuple(critic.output_shape)}. End the critic with {{'block': 'dense', 'units': 1}}."
        )


def generator_arguments(
    factory: Callable[..., keras.Model], image_shape: Sequence[int] | None, num_classes,
    unconditional: bool = False,
) -> dict:  # fmt: skip
    """What the trainer (and evaluation) passes a generator factory: ``num_classes`` for a
    conditional run, ``conditioning=None`` for one made ``unconditional`` (``'auto'`` classes on
    unlabelled data), and the data's ``output_shape`` where the factory takes one (a family
    follows it)."""
    import inspect

    arguments = {} if num_classes is None else {"num_classes": num_classes}
    if unconditional:
        arguments["conditioning"] = None
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a callable without a signature: pass nothing more
        return arguments
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    if image_shape is not None and ("output_shape" in parameters or takes_any):
        arguments["output_shape"] = tuple(int(v) for v in image_shape)
    return arguments


def final_activation(model: keras.Model) -> str | None:
    """Name of the activation the model's output passes through last, if one can be read off.

    Shape-only layers (reshape, flatten) are looked through. Returns ``None`` where the last
    value-changing layer has no activation (for example, a batch norm).
    """
    for layer in reversed(model.layers):
        if isinstance(layer, (keras.layers.Reshape, keras.layers.Flatten, keras.layers.InputLayer)):
            continue
        inner = getattr(layer, "layer", layer)  # Look inside wrappers (spectral norm).
        activation = getattr(inner, "activation", None)
        if activation is None:
            return None
        name = getattr(activation, "__name__", str(activation))
        return None if name == "linear" else name
    return None


# Output value ranges of bounded final activations; used to check that the data is scaled to
# match the generator.
ACTIVATION_RANGES = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}


def latent_dim(generator: keras.Model) -> int:
    """The size of a generator's noise input (its first input when it also takes labels)."""
    return int(generator.inputs[0].shape[-1])


def output_range(model: keras.Model) -> tuple[float, float] | None:
    """The value range of the generator's output, where its final activation bounds it."""
    return ACTIVATION_RANGES.get(final_activation(model) or "")


def _portable_layer(layer):
    """The built-in Keras layer that computes what ``layer`` computes at inference, or a plain
    clone of it."""
    config = layer.get_config()
    if isinstance(layer, blocks_lib.SyncBatchNorm):
        # Synchronization only changes how training-time batch statistics are all-reduced.
        config.pop("synchronized", None)
        return keras.layers.BatchNormalization.from_config(config)
    if isinstance(layer, conditioning_lib.OneHot):
        return keras.layers.CategoryEncoding(
            num_tokens=layer.num_classes, output_mode="one_hot", name=layer.name,
            dtype=layer.dtype_policy,
        )  # fmt: skip
    return layer.__class__.from_config(config)


def portable(model: keras.Model) -> keras.Model:
    """A copy of ``model`` made of built-in Keras layers only, with the same weights: what
    ``generator.keras`` holds, so that ``keras.saving.load_model`` loads it in a process that never
    imported ganpipe. Raises ValueError naming a layer that has no built-in equivalent."""
    for layer in model.layers:
        known = isinstance(layer, (blocks_lib.SyncBatchNorm, conditioning_lib.OneHot))
        if not known and not type(layer).__module__.startswith("keras."):
            raise ValueError(
                f"The layer {layer.name!r} ({type(layer).__name__}) has no built-in Keras "
                "equivalent; a model holding it loads only after `import ganpipe.models.blocks` "
                "(or the module that defines it)."
            )
    copy = keras.models.clone_model(model, clone_function=_portable_layer)
    copy.set_weights(model.get_weights())
    return copy
