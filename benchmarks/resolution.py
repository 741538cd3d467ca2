"""What a model family costs at each image size: parameters, multiply-adds per image and
training steps per second, side by side in one process.

    python benchmarks/resolution.py [--family=lean] [--sides=28,32,64,128,256] [--channels=3]

Each size trains the recipe (gin/recommended.gin: the lean family by default, the
non-saturating loss with lazy R1, batch 64, a weight average) on synthetic shapes at that size
(3 classes, so the run is class-conditional as the recipe is), through the trainer's own calls
(``train_steps``: ``Numerics.rounds_per_call`` rounds per call, as training makes them), after a
warm-up. Side 28 is the reference: the recipe's own models at Fashion-MNIST's size. Nothing is
written to disk. Run it alone: the figures are as quiet as the machine.
"""

from __future__ import annotations

import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

flags.DEFINE_string("family", "lean", "The model family (lean, resnet, r3gan).")
flags.DEFINE_list("sides", ["28", "32", "64", "128", "256"], "Square sizes, pixels a side.")
flags.DEFINE_integer("channels", 3, "Image channels (28 uses 1, Fashion-MNIST's).")
flags.DEFINE_integer("steps", 200, "Timed generator steps per size.")
flags.DEFINE_integer("warmup", 40, "Untimed steps first.")
flags.DEFINE_integer("batch_size", 64, "The global batch.")
FLAGS = flags.FLAGS


def measure(side: int, channels: int) -> dict:
    """Builds the recipe at ``side`` and times it; returns its costs and rate."""
    import gin
    from ganpipe import config
    from ganpipe.models import cost

    gin.clear_config()
    config.parse(
        ["gin/recommended.gin"],
        [
            f"build_generator.family = '{FLAGS.family}'",
            f"build_critic.family = '{FLAGS.family}'",
            "load_images.source = 'synthetic'",
            f"load_images.image_size = ({side}, {side})",
            f"load_images.channels = {channels}",
            "load_images.num_synthetic = 2048",
            "train.num_classes = 'auto'",
            "train.evaluator = None",
            "Intervals.eval_every = 0",
            f"BATCH_SIZE = {FLAGS.batch_size}",
        ],
    )
    trainer = config.make_trainer()
    generator, critic = cost.cost(trainer.generator), cost.cost(trainer.critic)
    trainer.train_steps(FLAGS.warmup)
    start = time.perf_counter()
    trainer.train_steps(FLAGS.steps)
    seconds = time.perf_counter() - start
    return {
        "side": side, "channels": channels, "generator": generator, "critic": critic,
        "steps_per_second": FLAGS.steps / seconds,
    }  # fmt: skip


def main(argv):
    del argv
    import keras

    rows = []
    for side in (int(s) for s in FLAGS.sides):
        rows.append(measure(side, 1 if side == 28 else FLAGS.channels))
        row = rows[-1]
        print(f"{side}x{side}x{row['channels']}: {row['steps_per_second']:.2f} steps/s",
              flush=True)  # fmt: skip
    base = next((r["steps_per_second"] for r in rows if r["side"] == 28), None)
    print(
        f"\nThe recipe with the {FLAGS.family} family, batch {FLAGS.batch_size}, "
        f"{keras.backend.backend()}, {os.cpu_count()} CPUs ({platform.processor() or '?'}), "
        f"{FLAGS.steps} timed steps after {FLAGS.warmup}:\n"
    )
    print("| size | generator parameters | generator MACs | critic parameters | critic MACs "
          "| steps/s | vs 28x28 |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        ratio = f"{r['steps_per_second'] / base:.2f}" if base else "-"
        print(
            f"| {r['side']}x{r['side']}x{r['channels']} | {r['generator'].parameters:,} | "
            f"{r['generator'].multiply_adds / 1e6:.1f}M | {r['critic'].parameters:,} | "
            f"{r['critic'].multiply_adds / 1e6:.1f}M | {r['steps_per_second']:.2f} | {ratio} |"
        )


if __name__ == "__main__":
    app.run(main)
