"""ganpipe on one GPU with JAX, no TensorFlow: throughput, the recipe to FD thresholds, and
wgan.gin to the end of its schedule. One prepared run for a GPU machine that has JAX with CUDA.

    python benchmarks/gpu/run.py --out=DIR            # the real run (about 8 minutes)
    python benchmarks/gpu/run.py --out=DIR --dry_run  # the same steps, tiny, on a CPU (CI)

It sets KERAS_BACKEND=jax and makes `import tensorflow` fail, so it proves the JAX path needs no
TensorFlow. Keras and gin-config may come as wheels (see docs/backends.md). Fashion-MNIST's IDX
files are read from $GANPIPE_IDX_DIR (or .gpudata/ in the checkout, or Debian's folder).
Everything it measures goes to DIR/gpu_results.json as it comes, with DIR/gpu_log.txt and the
sample grids, so a run stopped at its limit still leaves what it finished.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ["KERAS_BACKEND"] = "jax"
sys.modules["tensorflow"] = None  # `import tensorflow` raises ImportError from here on.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
if "GANPIPE_IDX_DIR" not in os.environ and os.path.isdir(os.path.join(REPO, ".gpudata")):
    os.environ["GANPIPE_IDX_DIR"] = os.path.join(REPO, ".gpudata")

import jax  # noqa: E402
import keras  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from ganpipe import config  # noqa: E402
from ganpipe.training import callbacks, writers  # noqa: E402

flags.DEFINE_string("out", None, "Folder for gpu_results.json, gpu_log.txt and the grids.")
flags.DEFINE_bool("dry_run", False, "Tiny models and counts, for a CPU: checks every step.")
flags.DEFINE_float("budget", 450.0, "Seconds for the whole run; each part gets its share.")
flags.DEFINE_list("parts", ["throughput", "recommended", "wgan"], "Which parts to run.")
FLAGS = flags.FLAGS

# (experiment, global batch sizes) timed for throughput.
THROUGHPUT = (("recommended", (64, 512)), ("dcgan", (50,)), ("wgan", (50, 256)))
FD_THRESHOLDS = (20.0, 5.0, 2.0, 1.0)


class Report:
    """Results as they come: printed, appended to the log, rewritten to the JSON file."""

    def __init__(self, folder: str):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        self.results = {"started": time.strftime("%Y-%m-%d %H:%M:%S")}
        self.start = time.perf_counter()

    def say(self, text: str) -> None:
        line = f"[{time.perf_counter() - self.start:7.1f} s] {text}"
        print(line, flush=True)
        with open(os.path.join(self.folder, "gpu_log.txt"), "a") as log:
            log.write(line + "\n")

    def put(self, key: str, value) -> None:
        self.results[key] = value
        with open(os.path.join(self.folder, "gpu_results.json"), "w") as out:
            json.dump(self.results, out, indent=1)

    def left(self) -> float:
        return FLAGS.budget - (time.perf_counter() - self.start)


def build(experiment: str, *params: str):
    """A trainer for gin/<experiment>.gin (tiny under --dry_run) with ``params``."""
    files = [os.path.join(REPO, "gin", f"{experiment}.gin")]
    if FLAGS.dry_run:
        files.append(os.path.join(REPO, "gin", "testing", "tiny.gin"))
    config.parse(files, params)
    return config.make_trainer()


def environment(report: Report) -> None:
    devices = jax.devices()
    report.put(
        "environment",
        {
            "jax": jax.__version__,
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
            "devices": [f"{d.platform}:{d.device_kind}" for d in devices],
            "tensorflow_imported": sys.modules.get("tensorflow") is not None,
        },
    )
    report.say(f"JAX {jax.__version__} on {devices[0].device_kind} ({len(devices)} device(s))")


def throughput(report: Report, seconds: float) -> None:
    """Generator steps per second of each experiment and batch, after compilation."""
    rows = []
    for experiment, batches in THROUGHPUT[:1] if FLAGS.dry_run else THROUGHPUT:
        for batch in batches[:1] if FLAGS.dry_run else batches:
            started = time.perf_counter()
            trainer = build(experiment, f"BATCH_SIZE = {batch}")
            trainer.train_round()  # compiles the updates
            trainer.train_round()
            compile_s = time.perf_counter() - started
            first, steps, t0 = int(trainer.step.numpy()), 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds or steps == 0:
                trainer.train_round()
                steps = int(trainer.step.numpy()) - first
            elapsed = time.perf_counter() - t0
            row = {
                "experiment": experiment, "batch": batch, "generator_steps": steps,
                "seconds": round(elapsed, 3), "steps_per_s": round(steps / elapsed, 2),
                "images_per_s": round(steps * batch / elapsed, 1),
                "build_and_compile_s": round(compile_s, 1),
            }  # fmt: skip
            rows.append(row)
            report.put("throughput", rows)
            report.say(
                f"{experiment} batch {batch}: {row['steps_per_s']} steps/s ({row['images_per_s']}"
                f" images/s), build and compile {row['build_and_compile_s']} s"
            )


def scorer(trainer, num_samples: int):
    s = trainer.settings
    return callbacks.Scorer(
        "fashion_mnist", latent=s.latent, value_range=s.value_range,
        num_samples=num_samples, seed=0, num_classes=s.num_classes,
    )  # fmt: skip


def save_grid(trainer, path: str, count: int = 100) -> None:
    from PIL import Image

    from ganpipe.eval import evaluation

    s = trainer.settings
    images = evaluation.generate(
        trainer.state.sampling_generator, s.latent, count, s.value_range, seed=1,
        num_classes=s.num_classes,
    )  # fmt: skip
    grid = writers.image_grid(images, (0.0, 1.0), columns=10)
    Image.fromarray(grid.squeeze(-1) if grid.shape[-1] == 1 else grid).save(path)


def train_and_score(report: Report, name: str, trainer, seconds: float, chunk: int, every: int):
    """Trains in chunks of ``chunk`` generator steps for up to ``seconds`` (or to num_steps),
    scoring FD on 2,000 samples every ``every`` steps; then FD on 10,000 samples and a grid."""
    small = scorer(trainer, 200 if FLAGS.dry_run else 2000)
    curve, train_s, last_scored = [], 0.0, 0
    limit = trainer.settings.budget.num_steps
    while train_s < seconds and int(trainer.step.numpy()) < limit:
        t0 = time.perf_counter()
        trainer.train_steps(min(chunk, limit - int(trainer.step.numpy())))
        train_s += time.perf_counter() - t0
        step = int(trainer.step.numpy())
        if step - last_scored >= every or step >= limit or train_s >= seconds:
            fd = small(trainer.state.sampling_generator)["eval_fd"]
            curve.append({"step": step, "train_s": round(train_s, 2), "fd_2000": round(fd, 3)})
            last_scored = step
            report.put(f"{name}_curve", curve)
            report.say(f"{name}: step {step}, {train_s:.1f} s of training, FD {fd:.3f}")
    final = scorer(trainer, 200 if FLAGS.dry_run else 10000)(trainer.state.sampling_generator)
    reached = {
        str(t): next((p["train_s"] for p in curve if p["fd_2000"] < t), None) for t in FD_THRESHOLDS
    }
    summary = {"steps": int(trainer.step.numpy()), "train_s": round(train_s, 2),
               "seconds_to_fd_below": reached}  # fmt: skip
    summary.update({k: round(v, 4) for k, v in final.items()})
    report.put(name, summary)
    save_grid(trainer, os.path.join(report.folder, f"{name}_grid.png"))
    report.say(f"{name}: final {summary}")


def main(argv) -> None:
    del argv
    if not FLAGS.out:
        raise app.UsageError("Give --out=DIR.")
    logging.set_verbosity(logging.WARNING)
    # The same update of the same shapes, built again for another part, compiles once.
    jax.config.update("jax_compilation_cache_dir", os.path.join(FLAGS.out, ".jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    report = Report(FLAGS.out)
    environment(report)
    if "throughput" in FLAGS.parts:
        throughput(report, 0.2 if FLAGS.dry_run else 4.0)
    if "recommended" in FLAGS.parts:
        recipe_s = 1.0 if FLAGS.dry_run else min(150.0, 0.45 * report.left())
        chunk, every = (2, 2) if FLAGS.dry_run else (500, 1000)
        train_and_score(report, "recommended", build("recommended"), recipe_s, chunk, every)
    if "wgan" in FLAGS.parts:
        wgan_s = 1.0 if FLAGS.dry_run else max(30.0, report.left() - 60.0)
        chunk, every = (2, 2) if FLAGS.dry_run else (1000, 4000)
        train_and_score(report, "wgan", build("wgan"), wgan_s, chunk, every)
    report.put("finished", time.strftime("%Y-%m-%d %H:%M:%S"))
    report.say("done")


if __name__ == "__main__":
    app.run(main)
