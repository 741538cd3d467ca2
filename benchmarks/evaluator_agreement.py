"""Does an evaluator rank image sets as the pinned one does? FD of the same image sets under two
evaluators, and the Spearman rank correlation of the two columns.

    python benchmarks/evaluator_agreement.py --evaluator=EVALUATOR_FOLDER \
        [--reference_evaluator=fashion_mnist-v2] [--run=RUN_DIR@CHECKPOINT ...] [--num=5000]

The sets, all of Fashion-MNIST's shape: samples of each --run at its checkpoint (a step number,
``latest`` or ``final``); real train images (the floor); and real train images under every
disturbance of ganpipe/eval/disturb.py (noise, blur, black rectangles, swirl, salt and pepper,
mixed-in noise, dropped classes) at three levels; and pure noise sets. Each evaluator scores
them against its own real reference (the shipped one: the test split; a folder evaluator: its
held-out images). Run it alone: it is CPU-bound.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_string("evaluator", None, "The evaluator to check (a folder or a shipped name).")
flags.DEFINE_string("reference_evaluator", "fashion_mnist-v2", "The evaluator to agree with.")
flags.DEFINE_multi_string("run", [], "RUN_DIR@CHECKPOINT: a generator's samples as one set.")
flags.DEFINE_integer("num", 5000, "Images per set.")
flags.DEFINE_list("levels", ["1", "2", "3"], "Which of each disturbance's levels (0 to 4).")
flags.DEFINE_string("output", None, "Where to write the table as JSON.")
FLAGS = flags.FLAGS


def ranks(values) -> np.ndarray:
    """Ranks from 1, ties given their mean rank."""
    values = np.asarray(values, np.float64)
    order = np.argsort(values, kind="stable")
    out = np.empty(len(values))
    out[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        out[tied] = out[tied].mean()
    return out


def spearman(a, b) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks."""
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def image_sets(num: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Every set in [0, 1]: generated, real, disturbed and noise."""
    from ganpipe.data import load_images
    from ganpipe.eval import disturb, evaluation
    from ganpipe.eval import run as eval_run

    sets = {}
    for spec in FLAGS.run:
        run_dir, _, checkpoint = spec.partition("@")
        restored, setup = eval_run.restore_run_generator(run_dir, checkpoint or "latest")
        sets[f"{os.path.basename(run_dir.rstrip('/'))} step {restored.step}"] = evaluation.generate(
            restored.model,
            setup.latent,
            num,
            setup.value_range,
            seed=seed,
            num_classes=setup.num_classes,
        )  # fmt: skip
    train = load_images(source="fashion_mnist", split="train")
    pick = np.random.default_rng(seed).choice(len(train.images), num, replace=False)
    real, labels = train.images[pick].astype(np.float32) / 255.0, train.labels[pick]
    sets["real train images"] = real
    for name, (_, levels) in disturb.DISTURBANCES.items():
        for index in (int(v) for v in FLAGS.levels):
            level = levels[index]
            sets[f"{name} {level}"] = disturb.disturbed(name, real, labels, level, seed)
    for name, images in disturb.noise_sets(num, real.shape[1:], seed).items():
        sets[f"noise: {name}"] = images
    return sets


def main(argv):
    del argv
    from ganpipe.eval import classifier, evaluation, quality

    evaluators = [classifier.load_evaluator(n) for n in (FLAGS.reference_evaluator,
                                                          FLAGS.evaluator)]  # fmt: skip
    references = [evaluation.real_reference(e, e.spec.data_set) for e in evaluators]
    rows = []
    for name, images in image_sets(FLAGS.num).items():
        fds = [quality.score(e, images, r, kid_subsets=2)["fd"]
               for e, r in zip(evaluators, references)]  # fmt: skip
        rows.append({"set": name, "reference_fd": fds[0], "fd": fds[1]})
        print(f"{name:32s} {fds[0]:12.4f} {fds[1]:12.4f}", flush=True)
    rho = spearman([r["reference_fd"] for r in rows], [r["fd"] for r in rows])
    names = [e.spec.name for e in evaluators]
    print(f"\n| set | FD, {names[0]} | FD, {os.path.basename(names[1])} |")
    print("| --- | ---: | ---: |")
    for r in rows:
        print(f"| {r['set']} | {r['reference_fd']:.4g} | {r['fd']:.4g} |")
    print(f"\nSpearman rank correlation over {len(rows)} sets of {FLAGS.num} images: {rho:.4f}")
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump({"evaluators": names, "rows": rows, "spearman": rho}, f, indent=1)


if __name__ == "__main__":
    flags.mark_flag_as_required("evaluator")
    app.run(main)
