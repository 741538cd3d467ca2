"""What a model costs per image: parameters and multiply-adds of its weighted layers.

Multiply-adds (MACs) count the products of dense and convolution layers, the bulk of a GAN's
compute; normalization, activations and pooling are left out (each is a few operations per
activation). One training step of a GAN costs roughly 3x the forward MACs per image for each
network it runs forward and backward.

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


def main(argv) -> None:
    from absl import flags

    from ganpipe import config

    del argv
    values = flags.FLAGS
    config.parse(values.gin_file, values.gin_param)
    generator, critic = experiment_costs(tuple(int(v) for v in values.image_shape.split(",")))
    print(f"generator: {generator} per image")
    print(f"critic:    {critic} per image")


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_multi_string("gin_file", None, "Experiment file(s).")
    flags.DEFINE_multi_string("gin_param", [], "Extra bindings.")
    flags.DEFINE_string("image_shape", "28,28,1", "The data's image shape, H,W,C.")
    flags.mark_flag_as_required("gin_file")
    app.run(main)
