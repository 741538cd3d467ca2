"""Scores a trained generator with the pinned evaluator, or computes the real-data floor.

    python -m ganpipe.evaluate --run_dir=runs/wgan [--checkpoint=best|latest|final|PATH]
                               [--num_samples=10000] [--live_generator] [--seed=0]
                               [--evaluator=NAME] [--output_json=PATH]
                               [--inception [--inception_weights=PATH]]
    python -m ganpipe.evaluate --reference --data_set=fashion_mnist

The first form rebuilds the run's generator from its config.gin, restores the chosen weights, draws
``num_samples`` images from fixed noise, compares them with the data set's test split, prints a
table and writes eval.json into the run directory. A run trained with ``EMA.decay`` is
scored on its generator weight average unless ``--live_generator`` is given. The second
compares a sample of real training images with the test split: what a perfect generator would
score.

Inception FID/KID (the FID of papers) are off by default: ``--inception`` runs InceptionV3 at
299x299 over the samples and as many real test images, which takes minutes on a CPU, and needs
Keras' ImageNet weights for it (about 90 MB, downloaded into ~/.keras/models unless they are
there or ``--inception_weights`` names the file). Without them, or under the JAX backend, the two
metrics are skipped with a message saying why.
"""

from __future__ import annotations

import json
import os
import sys

from ganpipe.console import quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # before anything imports TensorFlow

from absl import app, flags, logging  # noqa: E402

flags.DEFINE_string("run_dir", None, "Run directory to evaluate.")
flags.DEFINE_string(
    "checkpoint",
    "latest",
    "best (by FD during training), latest, final (generator.keras) or a path.",
)
flags.DEFINE_integer("num_samples", 10000, "Generated images to score.")
flags.DEFINE_bool(
    "live_generator",
    False,
    "For a run trained with EMA.decay: score the live generator weights instead of "
    "their moving average (the default, as in its samples and generator.keras).",
)
flags.DEFINE_integer("seed", 0, "Seed of the evaluation noise and KID subsets.")
flags.DEFINE_bool("reference", False, "Score real training images instead (the real-data floor).")
flags.DEFINE_string("data_set", "fashion_mnist", "With --reference: the data set.")
flags.DEFINE_string(
    "evaluator", None,
    "Evaluator name, e.g. fashion_mnist-v1 for numbers comparable with older results, or an "
    "evaluator folder (train_classifier --data). Default: the run's own train.evaluator folder "
    "where it names one, else the run's data set's newest evaluator; with --reference, "
    "--data_set's.",
)  # fmt: skip
flags.DEFINE_string("output_json", None, "Also write the result here.")
flags.DEFINE_bool(
    "inception",
    False,
    "Also compute Inception FID/KID (Lucic et al., 2018), the FID of papers: InceptionV3 at "
    "299x299 over the samples and as many real test images (minutes on a CPU), with Keras' "
    "ImageNet weights, downloaded (about 90 MB) into ~/.keras/models unless they are there or "
    "--inception_weights names them. TensorFlow backend only; skipped with a message where the "
    "weights or TensorFlow are missing.",
)
flags.DEFINE_string(
    "inception_weights",
    None,
    "With --inception: a local InceptionV3 no-top weights file (Keras' "
    "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5), so nothing is downloaded.",
)
FLAGS = flags.FLAGS


def table(result: dict) -> str:
    """A two-column text table of a result's metrics, in the metric table's order and formats."""
    from ganpipe.eval import metric_table

    return metric_table.text_table(result["metrics"])


def check_count(flag: str, value: int, minimum: int) -> None:
    """A ValueError naming ``flag`` unless ``value`` is an integer >= ``minimum``."""
    if value < minimum:
        raise ValueError(f"{flag} must be an integer >= {minimum}, got {value}.")


def main(argv) -> int:
    del argv
    from ganpipe import rundir
    from ganpipe.eval import evaluation, quality, run

    try:
        check_count("--num_samples", FLAGS.num_samples, quality.MIN_SAMPLES)
        if FLAGS.inception_weights and not FLAGS.inception:
            raise ValueError(
                "--inception_weights is read only with --inception: add --inception to compute "
                "Inception FID/KID, or leave --inception_weights out."
            )
        if FLAGS.reference:
            result = evaluation.reference_floor(
                FLAGS.evaluator or FLAGS.data_set, num_samples=FLAGS.num_samples, seed=FLAGS.seed
            )
            target = None
        else:
            if not FLAGS.run_dir:
                raise ValueError("Give --run_dir=RUN (or --reference for the real-data floor).")
            result = run.evaluate_run(
                FLAGS.run_dir,
                checkpoint=FLAGS.checkpoint,
                num_samples=FLAGS.num_samples,
                seed=FLAGS.seed,
                inception=FLAGS.inception,
                inception_weights=FLAGS.inception_weights,
                live=FLAGS.live_generator,
                evaluator=FLAGS.evaluator,
            )
            target = os.path.join(FLAGS.run_dir, rundir.EVAL)
    except (ValueError, FileNotFoundError) as error:
        print(f"ganpipe.evaluate: error: {error}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2) + "\n"
    for path in (target, FLAGS.output_json):
        if path:
            rundir.atomic_write(path, text)
            logging.info("Wrote %s", path)
    print(f"{result['what']}  (evaluator {result['evaluator']})")
    print(table(result))
    if "inception" in result and result["inception"].startswith("skipped"):
        print(result["inception"])
    return 0


if __name__ == "__main__":
    app.run(main)
