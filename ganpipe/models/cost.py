"""What a model costs per image: parameters and multiply-adds of its weighted layers.

Multiply-adds (MACs) count the products of dense and convolution layers, the bulk of a GAN's
compute; normalization, activations and pooling are left out (each is a few operations per
activation). One training step of a GAN costs roughly 3x the forward MACs per image for each
network it runs forward and backward.

  python -m ganpipe.models.cost                 # every model family at 32, 64, 128, 256 pixels
  python -m ganpipe.models.cost --gin_file=gin/recommended.gin [--image_shape=28,28,1]
"""

from __future__ import annotations

import dataclasses
import math

import keras


@dataclasses.dataclass(frozen=True)
class Cost:
    parameters: int
    multiply_adds: int  # per image, forward

    def __str__(self) -> str:
        return f"{self.parameters:,} parameters, {self.multiply_adds / 1e6:.2f}M multiply-adds"


def _layer_macs(layer) -> int:
    if isinstance(layer, keras.layers.SpectralNormalization):
        layer = layer.layer
    if isinstance(layer, keras.layers.Dense):
        out = layer.output.shape if hasattr(layer, "output") else None
        positions = math.prod(out[1:-1]) if out is not None and len(out) > 2 else 1
        return positions * int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
    if isinstance(layer, keras.layers.Conv2DTranspose):
        h, w = layer.input.shape[1:3]
        kh, kw, c_out, c_in = layer.kernel.shape
        return h * w * kh * kw * c_in * c_out
    if isinstance(layer, keras.layers.Conv2D):
        h, w = layer.output.shape[1:3]
        kh, kw, c_in, c_out = layer.kernel.shape
        return h * w * kh * kw * c_in * c_out
    return 0


def _layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        else:
            yield layer


def cost(model: keras.Model) -> Cost:
    """Parameters and forward multiply-adds per image of a built functional model."""
    macs = sum(_layer_macs(layer) for layer in _layers(model))
    return Cost(int(model.count_params()), int(macs))


def experiment_costs(image_shape: tuple[int, ...]) -> tuple[Cost, Cost]:
    """The generator's and the critic's costs as the parsed gin config builds them: through the
    trainer's own ``state.build_models``, so a class-conditional experiment's factories get its
    classes as in training."""
    import tensorflow as tf

    from ganpipe import config
    from ganpipe.training import state

    generator, critic = state.build_models(
        config.CONFIGURABLES["build_generator"],
        config.CONFIGURABLES["build_critic"],
        image_shape=image_shape,
        num_classes=config.train_setting("num_classes"),
        precision="float32",
        strategy=tf.distribute.get_strategy(),
    )
    return cost(generator), cost(critic)


# The sizes the family table shows (square, pixels a side).
TABLE_SIDES = (32, 64, 128, 256)


def family_costs(family: str, shape: tuple[int, int, int]) -> tuple[Cost, Cost]:
    """An unconditional family pair's costs at ``shape`` (latent 128, as the shipped files)."""
    from ganpipe.models import factories

    generator = factories.build_generator(latent_dim=128, family=family, output_shape=shape)
    critic = factories.build_critic(input_shape=shape, family=family)
    return cost(generator), cost(critic)


def family_table(sides=TABLE_SIDES, channels: int = 3) -> str:
    """A Markdown table: each family's parameters and multiply-adds per image at each size."""
    from ganpipe.models import families

    rows = [
        "| family | size | generator parameters | generator MACs | critic parameters "
        "| critic MACs |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name in families.FAMILIES.names():
        for side in sides:
            generator, critic = family_costs(name, (side, side, channels))
            rows.append(
                f"| {name} | {side}x{side}x{channels} | {generator.parameters:,} | "
                f"{generator.multiply_adds / 1e6:.1f}M | {critic.parameters:,} | "
                f"{critic.multiply_adds / 1e6:.1f}M |"
            )
    return "\n".join(rows)


def main(argv) -> None:
    from absl import flags

    from ganpipe import config

    del argv
    values = flags.FLAGS
    if not values.gin_file:
        channels = int(values.image_shape.split(",")[-1]) if values.image_shape else 3
        print(f"Per image, forward pass, unconditional, latent 128, {channels} channel(s):")
        print(family_table(channels=channels))
        return
    config.parse(values.gin_file, values.gin_param)
    shape = values.image_shape or "28,28,1"
    generator, critic = experiment_costs(tuple(int(v) for v in shape.split(",")))
    print(f"generator: {generator} per image")
    print(f"critic:    {critic} per image")


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_multi_string(
        "gin_file", None, "Experiment file(s); without one, the model families' table."
    )
    flags.DEFINE_multi_string("gin_param", [], "Extra bindings.")
    flags.DEFINE_string(
        "image_shape", None,
        "The data's image shape, H,W,C (default 28,28,1 with --gin_file; the table takes its C).",
    )  # fmt: skip
    app.run(main)
