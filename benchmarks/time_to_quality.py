"""Time to quality: ganpipe's recommended recipe against the tutorial's TF1 GAN and the keras.io
WGAN-GP example, for the same wall-clock budget on the same machine.

    python benchmarks/time_to_quality.py [--budget=600] [--samples=10000]
        [--programs=recommended,tf1_gan,keras_io] [--evaluator=fashion_mnist-v2]
        [--out=docs/results/time_to_quality]

The programs run one after another, each in the same process, single-threaded in turn. Each
trains in slices; at every scoring point (--points, seconds of training; scoring time is not
training time) it draws --samples images from fixed noise and scores them with the pinned
evaluator against the 10k test images (FD in its feature space, classes covered, class KL,
precision/recall, and, with evaluator v2, the fraction it calls "not a garment"). ganpipe's
recipe is scored from its generator average (what it samples and saves); the TF1 GAN's generator
runs as the tutorial runs it; the keras.io generator in inference mode.

Writes <out>.csv (one row per program and point) and <out>.png (FD against seconds, log scale),
and prints the table, each program's FD at its last point, and how much sooner the recipe first
reached each peer's final FD (minutes to threshold, and the ratio of the budget to it).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402
from absl import logging  # noqa: E402

from benchmarks.baselines import experiments, keras_io_wgan_gp, tf1_tutorial  # noqa: E402
from ganpipe import config  # noqa: E402
from ganpipe.data import load_images  # noqa: E402
from ganpipe.eval import classifier, evaluation, quality  # noqa: E402

DEFAULT_POINTS = "15,30,60,120,180,240,300,360,420,480,540,600"
FIELDS = ("program", "seconds", "steps", "fd", "classes_covered", "class_kl", "precision",
          "recall", "non_garment")  # fmt: skip


class Recipe:
    """ganpipe's gin/recommended.gin, trained through the trainer's own rounds."""

    name = "ganpipe recommended"

    def __init__(self, seed: int):
        config.parse([os.path.join(REPO, "gin", "recommended.gin")],
                     ["train.eval_every = 0", f"train.seed = {seed}"])  # fmt: skip
        self.trainer = config.make_trainer()
        self.steps = 0

    def run(self, seconds: float) -> float:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            self.trainer.train_steps(100)
        self.steps = int(self.trainer.step.numpy())
        return time.perf_counter() - start

    def generate(self, count: int, seed: int) -> np.ndarray:
        state = self.trainer.state
        generator = state.generator_ema or state.generator
        s = self.trainer.settings
        return evaluation.generate(generator, s.latent, count, s.value_range, seed=seed)


class TutorialGAN:
    """The tutorial's fully connected GAN, in its own TF1 graph-mode program."""

    name = "tutorial TF1 GAN"

    def __init__(self, seed: int):
        images = load_images(source="fashion_mnist", split="train").images
        self.runner = tf1_tutorial.make("gan", experiments.scale_pixels(images, "gan"), seed=seed)
        self.steps = 0

    def run(self, seconds: float) -> float:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            self.runner.run(50)
            self.steps += 50
        return time.perf_counter() - start

    def generate(self, count: int, seed: int) -> np.ndarray:
        return np.clip(self.runner.generate(count, seed), 0.0, 1.0)


class KerasIO:
    name = keras_io_wgan_gp.Runner.name

    def __init__(self, seed: int):
        images = load_images(source="fashion_mnist", split="train").images
        self.runner = keras_io_wgan_gp.Runner(images, seed=seed)

    @property
    def steps(self) -> int:
        return self.runner.steps

    def run(self, seconds: float) -> float:
        return self.runner.run(seconds)

    def generate(self, count: int, seed: int) -> np.ndarray:
        return np.clip((self.runner.generate(count, seed) + 1.0) / 2.0, 0.0, 1.0)


PROGRAMS = {"recommended": Recipe, "tf1_gan": TutorialGAN, "keras_io": KerasIO}


def score(evaluator, reference, images01: np.ndarray) -> dict:
    m = quality.score(evaluator, images01, reference, kid_subsets=10)
    return {k: m.get(k, "") for k in FIELDS[3:]}


def run_program(key: str, args, evaluator, reference, writer) -> list[dict]:
    program = PROGRAMS[key](args.seed)
    points = [float(p) for p in args.points.split(",") if float(p) <= args.budget]
    rows, trained = [], 0.0
    for point in points:
        trained += program.run(point - trained)
        row = {"program": program.name, "seconds": round(trained, 1), "steps": program.steps}
        row.update(score(evaluator, reference, program.generate(args.samples, seed=1)))
        rows.append(row)
        writer.writerow(row)
        print(f"  {program.name:24s} {row['seconds']:7.1f} s {row['steps']:7d} steps "
              f"FD {row['fd']:8.2f} classes {row['classes_covered']}", flush=True)  # fmt: skip
    return rows


def first_reaching(rows: list[dict], threshold: float) -> float | None:
    for row in rows:
        if row["fd"] <= threshold:
            return row["seconds"]
    return None


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, rows in results.items():
        ax.plot([r["seconds"] for r in rows], [r["fd"] for r in rows], marker="o", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("training seconds (2-core CPU)")
    ax.set_ylabel("FD (evaluator feature space, 10k samples)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=600.0)
    parser.add_argument("--points", default=DEFAULT_POINTS)
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--programs", default="recommended,tf1_gan,keras_io")
    parser.add_argument("--evaluator", default="fashion_mnist-v2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(REPO, "docs", "results", "time_to_quality"))
    args = parser.parse_args()
    logging.set_verbosity(logging.WARNING)
    evaluator = classifier.load_evaluator(args.evaluator)
    reference = evaluation.real_reference(evaluator, "fashion_mnist")
    print(f"CPU: {cpu_name()}; evaluator {evaluator.spec.name}; budget {args.budget:.0f} s")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    results = {}
    with open(args.out + ".csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for key in args.programs.split(","):
            results[PROGRAMS[key].name] = run_program(key, args, evaluator, reference, writer)
            f.flush()
    plot(results, args.out + ".png")
    summarize(results)


def summarize(results: dict) -> None:
    recipe = results.get(Recipe.name)
    print("\nFD at the last point:")
    for name, rows in results.items():
        print(f"  {name:24s} {rows[-1]['fd']:8.2f} after {rows[-1]['seconds']:.0f} s, "
              f"{rows[-1]['steps']} steps")  # fmt: skip
    if recipe is None:
        return
    for name, rows in results.items():
        if name == Recipe.name:
            continue
        threshold, budget = rows[-1]["fd"], rows[-1]["seconds"]
        reached = first_reaching(recipe, threshold)
        if reached is None:
            print(f"  the recipe never reached {name}'s final FD {threshold:.2f}")
            continue
        print(f"  the recipe reached {name}'s final FD {threshold:.2f} within {reached:.0f} s "
              f"({reached / 60:.2f} min): {budget / reached:.1f}x sooner; its own final FD is "
              f"{threshold / recipe[-1]['fd']:.1f}x lower")  # fmt: skip


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
