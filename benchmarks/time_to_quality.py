"""Time to quality: ganpipe's recommended recipe against the tutorial's TF1 GAN and the keras.io
WGAN-GP example, for the same wall-clock budget on the same machine.

    python benchmarks/time_to_quality.py [--budget=600] [--samples=10000]
        [--programs=recommended,tf1_gan,keras_io] [--evaluator=fashion_mnist-v2]
        [--out=docs/results/time_to_quality] [--recipe_param='R1Penalty.every=16' ...]

--programs also takes recommended_unconditional (gin/recommended_unconditional.gin).

The programs run one after another, each in the same process, single-threaded in turn. Each
trains in slices; at every scoring point (--points, seconds of training; scoring time is not
training time) it draws --samples images from fixed noise and scores them with the pinned
evaluator against the 10k test images (FD in its feature space, classes covered, class KL,
precision/recall, and, with evaluator v2, the fraction it calls "not a garment"). ganpipe's
recipe is scored from its generator average (what it samples and saves), a class-conditional
recipe on labels drawn uniformly over its classes; --recipe_param bindings (applied after
the recipe's file) time a variant of the recipe. The TF1 GAN's generator
runs as the tutorial runs it; the keras.io generator in inference mode.

Writes <out>.csv (one row per program and point; with --also, the FD of other evaluators too,
e.g. v1 beside v2 on the same images), <out>.png (FD against seconds, log scale), with --grids
each program's last 64 samples as <out>_<program>_seed<seed>.png,
and prints the table, each program's FD at its last point, and how much sooner the recipe first
reached each peer's final FD (minutes to threshold, linear in log FD between the two scored
points around it, and the ratio of the peer's budget to it).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
import warnings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from ganpipe.console import quiet_tensorflow  # noqa: E402

quiet_tensorflow()

import numpy as np  # noqa: E402
from absl import logging  # noqa: E402

from benchmarks.baselines import experiments, keras_io_wgan_gp, tf1_tutorial  # noqa: E402
from benchmarks.real_run import cpu_name  # noqa: E402
from ganpipe import config  # noqa: E402
from ganpipe.data import load_images  # noqa: E402
from ganpipe.eval import classifier, evaluation, quality  # noqa: E402

DEFAULT_POINTS = "15,30,45,60,75,90,120,180,240,300,360,420,480,540,600"
FIELDS = ("program", "seconds", "steps", "fd", "classes_covered", "class_kl", "precision",
          "recall", "non_garment")  # fmt: skip


class Recipe:
    """ganpipe's gin/recommended.gin, trained through the trainer's own rounds."""

    name = "ganpipe recommended"
    gin_file = "recommended.gin"

    def __init__(self, seed: int, params: tuple[str, ...] = ()):
        config.parse([os.path.join(REPO, "gin", self.gin_file)],
                     ["Intervals.eval_every = 0", f"train.seed = {seed}", *params])  # fmt: skip
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
        return evaluation.generate(
            generator,
            s.latent,
            count,
            s.value_range,
            seed=seed,
            num_classes=s.num_classes,
        )


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


class UnconditionalRecipe(Recipe):
    """gin/recommended_unconditional.gin: the recipe without class labels."""

    name = "ganpipe recommended, unconditional"
    gin_file = "recommended_unconditional.gin"


PROGRAMS = {"recommended": Recipe, "recommended_unconditional": UnconditionalRecipe,
            "tf1_gan": TutorialGAN, "keras_io": KerasIO}  # fmt: skip


def score(scorers, images01: np.ndarray) -> dict:
    """The main evaluator's metrics, plus ``fd_<name>`` for every other evaluator."""
    (evaluator, reference), *others = scorers
    m = quality.score(evaluator, images01, reference, kid_subsets=10)
    row = {k: m.get(k, "") for k in FIELDS[3:]}
    for other, other_reference in others:
        fd = quality.score(other, images01, other_reference, kid_subsets=2)["fd"]
        row[f"fd_{other.spec.name}"] = fd
    return row


def save_grid(images01: np.ndarray, path: str) -> None:
    from PIL import Image

    from ganpipe.training.writers import image_grid

    grid = image_grid(images01[:64], (0.0, 1.0), columns=8)
    Image.fromarray(grid.squeeze(-1) if grid.shape[-1] == 1 else grid).save(path)


def run_program(key: str, args, scorers, writer) -> list[dict]:
    extra = (tuple(args.recipe_param),) if issubclass(PROGRAMS[key], Recipe) else ()
    program = PROGRAMS[key](args.seed, *extra)
    points = [float(p) for p in args.points.split(",") if float(p) <= args.budget]
    rows, trained, images = [], 0.0, None
    for point in points:
        trained += program.run(point - trained)
        row = {"program": program.name, "seconds": round(trained, 1), "steps": program.steps}
        images = program.generate(args.samples, seed=1)
        row.update(score(scorers, images))
        rows.append(row)
        writer.writerow(row)
        print(f"  {program.name:24s} {row['seconds']:7.1f} s {row['steps']:7d} steps "
              f"FD {row['fd']:8.2f} classes {row['classes_covered']}", flush=True)  # fmt: skip
    if args.grids:
        save_grid(images, f"{args.out}_{key}_seed{args.seed}.png")
    return rows


def first_reaching(rows: list[dict], threshold: float) -> float | None:
    """Training seconds at which FD first reaches ``threshold``: linear in log FD between the
    last point above it and the first point at or below it (None if never reached)."""
    for i, row in enumerate(rows):
        if row["fd"] <= threshold:
            if i == 0:
                return row["seconds"]
            before = rows[i - 1]
            span = np.log(before["fd"]) - np.log(row["fd"])
            part = (np.log(before["fd"]) - np.log(threshold)) / span if span > 0 else 1.0
            return float(before["seconds"] + part * (row["seconds"] - before["seconds"]))
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
    parser.add_argument("--also", default="", help="Other evaluators whose FD is also recorded.")
    parser.add_argument("--grids", action="store_true", help="Save each program's last grid.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--recipe_param",
        action="append",
        default=[],
        help="A gin binding applied to the recipe after its file (repeatable), "
        "to time a variant of it, e.g. --recipe_param='R1Penalty.every=16'.",
    )
    parser.add_argument("--out", default=os.path.join(REPO, "docs", "results", "time_to_quality"))
    parser.add_argument("--from_csv", default="",
                        help="Comma-separated CSVs of earlier runs (e.g. one per seed): print "
                        "their table (mean +- std over the files) and exit.")  # fmt: skip
    args = parser.parse_args()
    if args.from_csv:
        aggregate(args.from_csv.split(","))
        return
    logging.set_verbosity(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*shuffle=True.*")
    scorers = []
    for name in [args.evaluator, *filter(None, args.also.split(","))]:
        e = classifier.load_evaluator(name)
        scorers.append((e, evaluation.real_reference(e, e.spec.data_set)))
    evaluator = scorers[0][0]
    fields = [*FIELDS, *(f"fd_{e.spec.name}" for e, _ in scorers[1:])]
    print(f"CPU: {cpu_name()}; evaluator {evaluator.spec.name}; budget {args.budget:.0f} s")
    if args.recipe_param:  # a variant: say which, since its rows carry the recipe's name
        print(f"Recipe bindings: {'; '.join(args.recipe_param)}")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    results = {}
    with open(args.out + ".csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for key in args.programs.split(","):
            results[PROGRAMS[key].name] = run_program(key, args, scorers, writer)
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


def _read(path: str) -> dict:
    results: dict[str, list[dict]] = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            parsed = {k: (v if k == "program" else float(v) if v not in ("", None) else None)
                      for k, v in row.items()}  # fmt: skip
            results.setdefault(row["program"], []).append(parsed)
    return results


REPORT_POINTS = (60.0, 120.0, 300.0, 600.0)


def aggregate(paths: list[str]) -> None:
    """FD near 60/120/300/600 s (each file's scored point nearest to each), mean +- sample std
    over the files; minutes to each peer's final FD."""
    runs = [_read(p) for p in paths]
    print(f"{len(runs)} file(s). FD at the scored point nearest each time (mean +- std):")
    for name in dict.fromkeys(n for r in runs for n in r):
        cells = []
        for point in REPORT_POINTS:
            near = [min(r[name], key=lambda row: abs(row["seconds"] - point)) for r in runs
                    if name in r]  # fmt: skip
            values = [row["fd"] for row in near]
            spread = f" +- {np.std(values, ddof=1):.2f}" if len(values) > 1 else ""
            cells.append(f"{point:.0f}s {np.mean(values):.2f}{spread} (n={len(values)})")
        print(f"  {name}: " + "; ".join(cells))
    recipes = [r[Recipe.name] for r in runs if Recipe.name in r]
    for name in dict.fromkeys(n for r in runs for n in r if n != Recipe.name):
        finals = [r[name][-1] for r in runs if name in r]
        threshold = float(np.mean([f["fd"] for f in finals]))
        budget = float(np.mean([f["seconds"] for f in finals]))
        reached = [first_reaching(rows, threshold) for rows in recipes]
        shown = ", ".join("never" if t is None else f"{t:.0f} s" for t in reached)
        ok = [t for t in reached if t is not None]
        ratio = f"; {budget / np.mean(ok):.1f}x sooner" if ok else ""
        lower = [threshold / rows[-1]["fd"] for rows in recipes]
        print(f"  {name} final FD {threshold:.2f} after {budget:.0f} s: the recipe reached it at "
              f"{shown}{ratio}; the recipe's final FD is {np.mean(lower):.1f}x lower")  # fmt: skip


if __name__ == "__main__":
    main()
