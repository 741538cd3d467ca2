"""Training throughput of ganpipe against the tutorial's TF1 code and a Keras ``fit`` GAN, same run.

    python benchmarks/throughput.py                                  # gan (batch 500), dcgan, wgan
    python benchmarks/throughput.py --experiments=dcgan --variants=float32,keras_adam,xla,bf16

For each experiment, in one process and interleaved (``--repeats`` passes over every
implementation, each pass timing ``--seconds`` of training per implementation after a warm-up):

- ``ganpipe`` variants: the shipped gin file (``float32``), and optionally with one speed lever
  switched: ``fused`` (``Numerics.rounds_per_call = 10``), ``one_round``
  (``Numerics.rounds_per_call = 1``, i.e. gan.gin's fused rounds off), ``keras_adam``
  (``Adam.fused = False`` on both sides: Keras' element-wise Adam update instead of the fused
  kernel), ``xla`` (``Numerics.jit_compile = True``), ``bf16`` (``Numerics.precision =
  'mixed_bfloat16'``);
- ``tf1``: benchmarks/baselines/tf1_tutorial.py, the tutorial's graph-mode program;
- ``fit``: benchmarks/baselines/keras_fit.py, ``keras.Model`` + custom ``train_step`` run by
  ``fit``.

All train the same models (equal parameter counts are checked) on the Fashion-MNIST training split
with the same batch and the same critic/generator schedule. Printed: generator updates per second
and real images per second (medians over passes), the ratios of every ganpipe variant to each
baseline and to ganpipe float32, and the achieved GFLOP/s (model FLOPs counted layer by layer,
see ``_flops``) against this machine's matrix-product peak measured in the same run (float32 and
bfloat16 ``tf.matmul``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

from benchmarks.baselines import experiments as baseline_experiments  # noqa: E402
from benchmarks.baselines import keras_fit, tf1_tutorial  # noqa: E402
from ganpipe import config  # noqa: E402
from ganpipe import data as data_module  # noqa: E402

VARIANTS = {
    "float32": [],
    "fused": ["Numerics.rounds_per_call = 10"],
    "one_round": ["Numerics.rounds_per_call = 1"],
    "keras_adam": ["generator/Adam.fused = False", "critic/Adam.fused = False"],
    "xla": ["Numerics.jit_compile = True"],
    "bf16": ["Numerics.precision = 'mixed_bfloat16'"],
}
BATCH = {"gan": 500}  # the gan figure is at batch 500; others use their file's batch


def _layer_flops(layer, input_shape) -> float:
    """Forward multiply-adds x 2 of one layer for one example (dense and convolutions only)."""
    inner = getattr(layer, "layer", layer)
    if isinstance(inner, keras.layers.Dense):
        return 2.0 * int(input_shape[-1]) * inner.units
    if isinstance(inner, keras.layers.Conv2DTranspose):
        kh, kw = inner.kernel_size
        h, w, c = input_shape[1:]
        return 2.0 * kh * kw * int(c) * inner.filters * int(h) * int(w)
    if isinstance(inner, keras.layers.Conv2D):
        kh, kw = inner.kernel_size
        out = layer.compute_output_shape(tuple(input_shape))
        return 2.0 * kh * kw * int(input_shape[-1]) * inner.filters * int(out[1]) * int(out[2])
    return 0.0


def _forward_flops(model: keras.Model) -> tuple[float, float]:
    """(all layers, the first weighted layer) forward FLOPs for one example."""
    total, first = 0.0, None
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        flops = _layer_flops(layer, layer.input.shape)
        if flops and first is None:
            first = flops
        total += flops
    return total, first or 0.0


def _flops(trainer) -> float:
    """FLOPs per generator update, counting dense and convolution layers only.

    Backward costs one forward for the weight gradients and one for the input gradients, and
    only what the update needs is counted (tf.GradientTape prunes the rest). Per example, with
    G/C the generator's/critic's forward FLOPs and G1/C1 those of their first weighted layer:
    a critic update is G + 2C (forward, real and fake) + 2C (weight gradients) + 2(C - C1)
    (input gradients, none into the data); a generator update is G + C (forward) + C (critic
    input gradients only) + G (weight gradients) + G - G1 (input gradients). Weighted by the
    schedule and the batch.
    """
    g, g1 = _forward_flops(trainer.generator)
    c, c1 = _forward_flops(trainer.critic)
    schedule = trainer.settings.schedule
    critic_update = g + 6 * c - 2 * c1
    generator_update = 3 * g - g1 + 2 * c
    per_generator_update = (
        schedule.critic_steps / schedule.generator_steps * critic_update + generator_update
    )
    return per_generator_update * trainer.settings.batch_size


def _matmul_peak(dtype, size=2048, repeats=20) -> float:
    a = tf.random.normal([size, size], dtype=tf.float32)
    a = tf.cast(a, dtype)

    @tf.function
    def chain(x):
        for _ in range(4):
            x = tf.matmul(x, a) * tf.cast(0.01, dtype)
        return tf.reduce_sum(tf.cast(x, tf.float32))

    chain(a).numpy()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        chain(a).numpy()
        rates.append(4 * 2.0 * size**3 / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


class _Ganpipe:
    def __init__(self, experiment, params):
        config.parse([f"gin/{experiment}.gin"], ["train.strategy = 'default'", *params])
        self.trainer = config.make_trainer()

    def run(self, generator_updates):
        self.trainer.train_steps(generator_updates)


def _timed(runner, chunk, seconds) -> float:
    """Generator updates per second over at least ``seconds`` of whole chunks."""
    done, start = 0, time.perf_counter()
    while True:
        runner.run(chunk)
        done += chunk
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", default="gan,dcgan,wgan")
    parser.add_argument("--variants", default="float32", help=f"of {sorted(VARIANTS)}")
    parser.add_argument("--baselines", default="tf1,fit")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="per timing")
    args = parser.parse_args()
    absl_logging.set_verbosity(absl_logging.WARNING)

    peak32 = _matmul_peak(tf.float32)
    peak16 = _matmul_peak(tf.bfloat16)
    print(f"matmul peak (2048^2, median): float32 {peak32:.0f} GFLOP/s, bfloat16 {peak16:.0f}")
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs")
    pixels = data_module.load_images(source="fashion_mnist").images

    for experiment in args.experiments.split(","):
        batch = BATCH.get(experiment)
        batch_params = [f"BATCH_SIZE = {batch}"] if batch else []
        runners = {}
        for variant in args.variants.split(","):
            params = [*batch_params, *VARIANTS[variant]]
            runners[f"ganpipe {variant}"] = _Ganpipe(experiment, params)
        reference = runners[next(iter(runners))].trainer
        g_params, c_params = (
            sum(int(np.prod(v.shape)) for v in model.trainable_variables)
            for model in (reference.generator, reference.critic)
        )
        images = baseline_experiments.scale_pixels(pixels, experiment)
        for name in args.baselines.split(","):
            module = {"tf1": tf1_tutorial, "fit": keras_fit}[name]
            runner = module.make(experiment, images, batch_size=reference.settings.batch_size)
            if (runner.generator_params, runner.critic_params) != (g_params, c_params):
                sys.exit(f"{name} builds other models than ganpipe for {experiment}.")
            runners[name] = runner
        per_round = reference.settings.schedule.generator_steps
        chunk = per_round * (1 if per_round > 1 else 20)
        for runner in runners.values():
            for _ in range(2 if per_round == 1 else 1):
                runner.run(chunk)  # warm-up: tracing, first batches
        rates = {name: [] for name in runners}
        for _ in range(args.repeats):
            for name, runner in runners.items():
                rates[name].append(_timed(runner, chunk, args.seconds))
        flops = _flops(reference)
        schedule = reference.settings.schedule
        images_per_update = (
            schedule.critic_steps / schedule.generator_steps * reference.settings.batch_size
        )
        print(
            f"\n{experiment}: batch {reference.settings.batch_size}, {schedule.critic_steps}/"
            f"{schedule.generator_steps} critic/generator updates per round, "
            f"{flops / 1e9:.3f} GFLOP per generator update; medians of {args.repeats} passes"
        )
        print("| implementation | generator updates/s | images/s | GFLOP/s | of fp32 peak |")
        print("| --- | --- | --- | --- | --- |")
        medians = {name: statistics.median(values) for name, values in rates.items()}
        for name, rate in medians.items():
            print(
                f"| {name} | {rate:.2f} | {rate * images_per_update:.0f} | "
                f"{rate * flops / 1e9:.1f} | {rate * flops / 1e9 / peak32:.0%} |"
            )
        ours = [name for name in medians if name.startswith("ganpipe")]
        for name in ours:
            for other in medians:
                if other not in ours:
                    print(f"{name} / {other}: {medians[name] / medians[other]:.2f}x")
        if "ganpipe float32" in medians:
            for name in ours:
                if name != "ganpipe float32":
                    ratio = medians[name] / medians["ganpipe float32"]
                    print(f"{name} / ganpipe float32: {ratio:.2f}x")
        for runner in runners.values():
            if hasattr(runner, "close"):
                runner.close()


if __name__ == "__main__":
    main()
