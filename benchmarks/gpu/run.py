"""ganpipe on one GPU with JAX, no TensorFlow: throughput, the recipe to FD thresholds, and
wgan.gin to the end of its schedule. One prepared run for a GPU machine that has JAX with CUDA.

    python benchmarks/gpu/run.py --out=DIR            # the real run (about 8 minutes)
    python benchmarks/gpu/run.py --out=DIR --dry_run  # the same steps, tiny, on a CPU (CI)
    python benchmarks/gpu/run.py --out=DIR --parts=resolution,fmnist64 [--cpu_fd_64=FD]

The default parts (throughput, reference, recommended, wgan) fill the whole --budget, so two
more are asked for by name, alone or with others: the parts share one --budget (450 s: about 8
minutes with start-up), resolution and fmnist64 each taking an even share of what is left to
them and the later parts asked for:
  reference   the recipe's update hand-written in pure JAX (benchmarks/gpu/reference.py: no
              Keras, no ganpipe) against ganpipe's (recommended_unconditional.gin), both at
              REFERENCE_ROUNDS rounds per compiled call, at global batch 64, 256 and 1024:
              updates per second, their ratio, peak device memory, and the GPU's busy share
              (nvidia-smi's utilization, sampled while each is timed)
  resolution  the recipe (lean family) on synthetic 3-channel images at 32, 64, 128 and 256
              pixels a side: parameters and multiply-adds per image (ganpipe.models.cost) and
              images per second at global batch 64 and 256, through the trainer's train_steps
              after a warm-up (benchmarks/resolution.py on the GPU); sizes that no longer fit
              its share are listed as skipped.
  fmnist64    Fashion-MNIST's train split stretched to 64x64 (Lanczos) as a prepared data set,
              an evaluator trained on it (train_classifier --data, --fmnist64_epochs epochs),
              then the recipe with gin/data/prepared.gin, FD every 500 steps: the FD curve
              against training time, and the first time FD is at or below --cpu_fd_64 (the FD
              the CPU reaches in 600 s of training), where training stops. That FD is only
              comparable when the CPU's evaluator was trained the same way (same images,
              `--epochs=<--fmnist64_epochs>`, seed 0); its weights still differ a little.

It sets KERAS_BACKEND=jax and makes `import tensorflow` fail, so it proves the JAX path needs no
TensorFlow. Keras and gin-config may come as wheels (see docs/backends.md). Fashion-MNIST's IDX
files are read from $GANPIPE_IDX_DIR (or .gpudata/ in the checkout, or Debian's folder).
Everything it measures goes to DIR/gpu_results.json as it comes, with DIR/gpu_log.txt and the
sample grids, so a run stopped at its limit still leaves what it finished.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import sys
import tempfile
import time
import types

os.environ["KERAS_BACKEND"] = "jax"
sys.modules["tensorflow"] = None  # `import tensorflow` raises ImportError from here on.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
if "GANPIPE_IDX_DIR" not in os.environ and os.path.isdir(os.path.join(REPO, ".gpudata")):
    os.environ["GANPIPE_IDX_DIR"] = os.path.join(REPO, ".gpudata")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from ganpipe import config  # noqa: E402
from ganpipe.training import callbacks, writers  # noqa: E402

flags.DEFINE_string("out", None, "Folder for gpu_results.json, gpu_log.txt and the grids.")
flags.DEFINE_bool("dry_run", False, "Tiny models and counts, for a CPU: checks every step.")
flags.DEFINE_float("budget", 450.0, "Seconds for the whole run; each part gets its share.")
flags.DEFINE_list(
    "parts", ["throughput", "reference", "recommended", "wgan"],
    "Which parts to run, of throughput, reference, resolution, recommended, fmnist64 and wgan.",
)  # fmt: skip
flags.DEFINE_float(
    "cpu_fd_64", None,
    "fmnist64: the FD the recipe reaches on a CPU in 600 s of training at 64x64; the part reports "
    "when FD first falls to it or below and stops there. None: the FD curve alone.",
)  # fmt: skip
flags.DEFINE_integer("fmnist64_epochs", 3, "fmnist64: epochs of its evaluator's training.")
FLAGS = flags.FLAGS

# In the order they run. The parts after throughput train to the budget and share it.
PARTS = ("throughput", "reference", "resolution", "recommended", "fmnist64", "wgan")

# (experiment, global batch sizes, rounds per call) timed for throughput: the recipe at 1 and
# 20 rounds per program, the measurement behind JAX's default of 20 off a CPU
# (backend.rounds_per_call); DCGAN's rounds of 50 generator steps at 1.
THROUGHPUT = (
    ("recommended", (64, 512), (1, 20)),
    ("dcgan", (50,), (1,)),
    ("wgan", (50, 256), (1,)),
)
THROUGHPUT_DRY = (("recommended", (8,), (1, 2)),)
FD_THRESHOLDS = (20.0, 5.0, 2.0, 1.0)
# reference: global batches, and rounds per compiled call (each side's); under --dry_run.
REFERENCE_BATCHES, REFERENCE_ROUNDS = (64, 256, 1024), 100
REFERENCE_DRY = ((8,), 1)
# (square sides, global batches) of the resolution part, and under --dry_run.
RESOLUTION = ((32, 64, 128, 256), (64, 256))
RESOLUTION_DRY = ((16,), (8,))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")  # fmt: skip


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


def build(experiment: str, *params: str, layers: tuple[str, ...] = ()):
    """A trainer for gin/<experiment>.gin, then gin/<layer>.gin for each of ``layers`` (tiny
    under --dry_run), with ``params``."""
    files = [os.path.join(REPO, "gin", f"{name}.gin") for name in (experiment, *layers)]
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
    """Generator steps per second of each experiment, batch and rounds per call, after
    compilation."""
    rows = []
    # --dry_run: the recipe at tiny.gin's batch, the program the test suite has compiled.
    for experiment, batches, counts in THROUGHPUT_DRY if FLAGS.dry_run else THROUGHPUT:
        for batch, rounds in [(b, r) for b in batches for r in counts]:
            row = {"experiment": experiment, "batch": batch, "rounds_per_call": rounds}
            row.update(_steps_per_second(experiment, batch, rounds, seconds))
            rows.append(row)
            report.put("throughput", rows)
            report.say(
                f"{experiment} batch {batch}, {rounds} round(s) per call: {row['steps_per_s']} "
                f"steps/s ({row['images_per_s']} images/s), build and compile "
                f"{row['build_and_compile_s']} s"
            )


def _steps_per_second(experiment: str, batch: int, rounds: int, seconds: float) -> dict:
    keras.utils.clear_session()
    started = time.perf_counter()
    trainer = build(experiment, f"BATCH_SIZE = {batch}", f"Numerics.rounds_per_call = {rounds}")
    trainer.train_rounds(rounds)  # compiles the call
    trainer.train_rounds(rounds)
    compile_s = time.perf_counter() - started
    timed = _timed(trainer, lambda: trainer.train_rounds(rounds), batch, seconds)
    return {**timed, "build_and_compile_s": round(compile_s, 1)}


def _timed(trainer, advance, batch: int, seconds: float) -> dict:
    """Generator steps per second of ``advance()`` calls for ``seconds`` (at least one call)."""
    first, steps, t0 = int(trainer.step.numpy()), 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or steps == 0:
        advance()
        steps = int(trainer.step.numpy()) - first
    elapsed = time.perf_counter() - t0
    return {
        "generator_steps": steps, "seconds": round(elapsed, 3),
        "steps_per_s": round(steps / elapsed, 2), "images_per_s": round(steps * batch / elapsed, 1),
    }  # fmt: skip


class BusyMeter:
    """The GPU's mean utilization (nvidia-smi, sampled every 0.1 s) while the block runs; None
    without nvidia-smi (a CPU)."""

    def __enter__(self):
        import shutil
        import subprocess
        import threading

        self.samples, self.percent = [], None
        self._stop = threading.Event()
        command = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]

        def sample():
            while not self._stop.wait(0.1):
                out = subprocess.run(command, capture_output=True, text=True).stdout.split()
                if out and out[0].isdigit():
                    self.samples.append(int(out[0]))

        self._thread = threading.Thread(target=sample, daemon=True) if shutil.which(
            command[0]
        ) else None  # fmt: skip
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.percent = round(sum(self.samples) / len(self.samples), 1) if self.samples else None


def peak_memory() -> int | None:
    """The first device's peak bytes in use so far (None where the device reports none)."""
    stats = jax.devices()[0].memory_stats() if hasattr(jax.devices()[0], "memory_stats") else None
    return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


def ganpipe_rate(batch: int, rounds: int, seconds: float) -> dict:
    """ganpipe's recipe update (recommended_unconditional.gin) in calls of ``rounds`` rounds."""
    keras.utils.clear_session()
    gc.collect()
    started = time.perf_counter()
    trainer = build("recommended_unconditional", f"BATCH_SIZE = {batch}",
                    f"Numerics.rounds_per_call = {rounds}")  # fmt: skip
    trainer.train_rounds(rounds)  # compiles the call
    trainer.train_rounds(rounds)
    compile_s = time.perf_counter() - started
    calls, t0 = 0, time.perf_counter()
    with BusyMeter() as busy:
        while calls == 0 or time.perf_counter() - t0 < seconds:
            metrics = trainer.train_rounds(rounds)  # floats: the call has finished
            calls += 1
    elapsed = time.perf_counter() - t0
    return {
        "updates_per_s": round(calls * rounds / elapsed, 1), "compile_s": round(compile_s, 1),
        "finite": all(np.isfinite(v) for v in metrics.values()), "gpu_busy_percent": busy.percent,
    }  # fmt: skip


def reference(report: Report, seconds: float) -> None:
    """The hand-written loop against ganpipe at each batch (see the module docstring)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import reference as hand  # benchmarks/gpu/reference.py

    from ganpipe.data import load_images

    batches, rounds = REFERENCE_DRY if FLAGS.dry_run else (REFERENCE_BATCHES, REFERENCE_ROUNDS)
    if FLAGS.dry_run:
        images = np.random.default_rng(0).integers(0, 256, (256, 28, 28, 1), dtype=np.uint8)
    else:
        images = load_images(source="fashion_mnist", split="train").images
    rows = []
    for batch in batches:
        with BusyMeter() as busy:
            own = hand.updates_per_second(images, batch, rounds, seconds)
        own["gpu_busy_percent"], own["peak_memory_bytes"] = busy.percent, peak_memory()
        ours = ganpipe_rate(batch, rounds, seconds)
        ours["peak_memory_bytes"] = peak_memory()
        row = {
            "batch": batch, "rounds_per_call": rounds, "reference": own, "ganpipe": ours,
            "reference_over_ganpipe": round(own["updates_per_s"] / ours["updates_per_s"], 2),
        }  # fmt: skip
        rows.append(row)
        report.put("reference", rows)
        report.say(
            f"reference batch {batch}: hand-written {own['updates_per_s']} updates/s, ganpipe "
            f"{ours['updates_per_s']} ({row['reference_over_ganpipe']}x); GPU busy "
            f"{own['gpu_busy_percent']} and {ours['gpu_busy_percent']} %"
        )


def share(report: Report, part: str, margin: float = 30.0) -> float:
    """Seconds for ``part``: what is left less ``margin``, split evenly between it and the later
    parts asked for that train to the budget."""
    later = [p for p in PARTS[PARTS.index(part) + 1 :] if p in FLAGS.parts]
    return max(10.0, (report.left() - margin) / (1 + len(later)))


def at_side(side: int, batch: int) -> tuple[str, ...]:
    """Bindings of the recipe at side x side x 3 on synthetic data (benchmarks/resolution.py's)."""
    return (
        "build_generator.family = 'lean'", "build_critic.family = 'lean'",
        "load_images.source = 'synthetic'", f"load_images.image_size = ({side}, {side})",
        "load_images.channels = 3", f"load_images.num_synthetic = {64 if FLAGS.dry_run else 2048}",
        "train.num_classes = 'auto'", "train.evaluator = None", "Intervals.eval_every = 0",
        f"BATCH_SIZE = {batch}",
    )  # fmt: skip


def time_at(side: int, batch: int, seconds: float) -> dict:
    """The recipe's costs at ``side`` and its generator steps per second at ``batch``: calls of
    ``Numerics.rounds_per_call`` rounds, as training makes them, after two untimed ones."""
    from ganpipe.models import cost

    keras.utils.clear_session()
    gc.collect()  # the last size's models and optimizer state leave the device
    started = time.perf_counter()
    trainer = build("recommended", *at_side(side, batch))
    generator, critic = cost.cost(trainer.generator), cost.cost(trainer.critic)
    chunk = 2 if FLAGS.dry_run else trainer.settings.numerics.rounds_per_call
    trainer.train_steps(2 * chunk)  # compiles the call
    compile_s = time.perf_counter() - started
    timed = _timed(trainer, lambda: trainer.train_steps(chunk), batch, seconds)
    return {
        "side": side, "channels": 3, "batch": batch,
        "generator_parameters": generator.parameters, "generator_macs": generator.multiply_adds,
        "critic_parameters": critic.parameters, "critic_macs": critic.multiply_adds,
        **timed, "build_and_compile_s": round(compile_s, 1),
    }  # fmt: skip


def resolution(report: Report, seconds: float, budget: float) -> None:
    """``time_at`` every size and batch, smallest first, while the next (costed as the last one
    was) still fits in ``budget`` seconds; the rest are listed as skipped."""
    sides, batches = RESOLUTION_DRY if FLAGS.dry_run else RESOLUTION
    rows, skipped, start, last = [], [], time.perf_counter(), 0.0
    for side in sides:
        for batch in batches:
            if rows and time.perf_counter() - start + last > budget:
                skipped.append({"side": side, "batch": batch})
                report.put("resolution_skipped", skipped)
                report.say(f"resolution {side}x{side} batch {batch}: skipped (out of its share)")
                continue
            t0 = time.perf_counter()
            rows.append(time_at(side, batch, seconds))
            last = time.perf_counter() - t0
            row = rows[-1]
            report.put("resolution", rows)
            report.say(
                f"resolution {side}x{side}x3 batch {batch}: {row['steps_per_s']} steps/s "
                f"({row['images_per_s']} images/s); generator {row['generator_parameters']:,} "
                f"parameters, {row['generator_macs'] / 1e6:.1f}M MACs; critic "
                f"{row['critic_parameters']:,}, {row['critic_macs'] / 1e6:.1f}M; build and "
                f"compile {row['build_and_compile_s']} s"
            )


def fashion_at(side: int, folder: str, limit: int | None) -> str:
    """Fashion-MNIST's train split stretched to side x side (Lanczos, as ganpipe.prepare),
    written as a prepared data set in ``folder``; returns its path."""
    from PIL import Image

    from ganpipe.data import load_images, prepared

    data = load_images(source="fashion_mnist", split="train", limit=limit)
    images = np.empty((len(data.images), side, side, 1), np.uint8)
    for i, image in enumerate(data.images):
        stretched = Image.fromarray(image[..., 0]).resize((side, side), Image.Resampling.LANCZOS)
        images[i, ..., 0] = np.asarray(stretched)
    path = os.path.join(folder, f"fashion_mnist_{side}")
    prepared.write(path, images, data.labels, FASHION_CLASSES,
                   source=f"{data.source}, stretched to {side}x{side}")  # fmt: skip
    return path


def train_evaluator(data: str, output: str) -> dict:
    """``train_classifier --data=data --output=output`` with --fmnist64_epochs; its card."""
    from ganpipe.eval import own_data, own_training

    args = types.SimpleNamespace(
        data=data, output=output, labels="auto", working_size=32, holdout=0.1, limit=None,
        epochs=1 if FLAGS.dry_run else FLAGS.fmnist64_epochs, batch_size=128,
        learning_rate=2e-3, seed=0,
    )  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):  # the card, printed; it is returned instead
        own_training.train(args)
    with open(os.path.join(output, own_data.CARD)) as f:
        return json.load(f)


def fmnist64(report: Report, seconds: float) -> None:
    """The recipe on Fashion-MNIST at 64x64 with its own evaluator, in ``seconds`` all told."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ganpipe-fmnist64-") as folder:
        data = fashion_at(64, folder, 400 if FLAGS.dry_run else None)
        prepared_s = time.perf_counter() - start
        evaluator = os.path.join(folder, "evaluator")
        card = train_evaluator(data, evaluator)
        setup = {
            "prepare_s": round(prepared_s, 1),
            "evaluator_s": round(time.perf_counter() - start - prepared_s, 1),
            "evaluator": {k: card[k] for k in ("kind", "accuracy", "negatives_accuracy",
                          "train_images", "held_out_images", "epochs", "parameters")},
        }  # fmt: skip
        report.put("fmnist64_setup", setup)
        report.say(f"fmnist64: data {setup['prepare_s']} s, evaluator {setup['evaluator_s']} s "
                   f"(held-out accuracy {card['accuracy']})")  # fmt: skip
        params = [f"DATA = '{data}'", f"EVALUATOR = '{evaluator}'"]
        if FLAGS.dry_run:  # tiny.gin's synthetic source back to the prepared set
            params += ["load_images.source = 'prepared'", "NUM_STEPS = 4"]
        trainer = build("recommended", *params, layers=("data/prepared",))
        # Training and its scoring stop 30 s before the share ends, for the final score.
        wall = 1.0 if FLAGS.dry_run else max(30.0, seconds - (time.perf_counter() - start) - 30)
        chunk, every = (2, 2) if FLAGS.dry_run else (500, 500)
        train_and_score(report, "fmnist64", trainer, wall, chunk, every, evaluator=evaluator,
                        target=FLAGS.cpu_fd_64, wall=wall)  # fmt: skip


def scorer(trainer, num_samples: int, evaluator: str = "fashion_mnist"):
    s = trainer.settings
    return callbacks.Scorer(
        evaluator, latent=s.latent, value_range=s.value_range, num_samples=num_samples, seed=0,
        num_classes=s.num_classes, data_fingerprint=trainer.images.fingerprint,
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


def train_curve(report: Report, name: str, trainer, small, seconds: float, chunk: int,
                every: int, target: float | None, wall: float | None) -> list[dict]:  # fmt: skip
    """Trains in chunks of ``chunk`` generator steps for up to ``seconds`` of training and
    ``wall`` seconds all told (or to num_steps, or to FD <= ``target``), scoring with ``small``
    every ``every`` steps; each point has the training time (scoring left out) and the wall time
    since the first step."""
    curve, train_s, last_scored, start = [], 0.0, 0, time.perf_counter()
    limit, wall = trainer.settings.budget.num_steps, float("inf") if wall is None else wall
    while train_s < seconds and int(trainer.step.numpy()) < limit:
        t0 = time.perf_counter()
        trainer.train_steps(min(chunk, limit - int(trainer.step.numpy())))
        train_s += time.perf_counter() - t0
        step = int(trainer.step.numpy())
        over = train_s >= seconds or time.perf_counter() - start >= wall
        if step - last_scored >= every or step >= limit or over:
            fd = small(trainer.state.sampling_generator)["eval_fd"]
            curve.append({"step": step, "train_s": round(train_s, 2),
                          "wall_s": round(time.perf_counter() - start, 2),
                          "fd_2000": round(fd, 3)})  # fmt: skip
            last_scored = step
            report.put(f"{name}_curve", curve)
            report.say(f"{name}: step {step}, {train_s:.1f} s of training, FD {fd:.3f}")
            if over or (target is not None and fd <= target):
                break
    return curve


def train_and_score(report: Report, name: str, trainer, seconds: float, chunk: int, every: int,
                    evaluator: str = "fashion_mnist", target: float | None = None,
                    wall: float | None = None):  # fmt: skip
    """``train_curve`` with FD on 2,000 samples of ``evaluator``, then FD on 10,000 samples and
    a grid. With the pinned evaluator, the training time to each of FD_THRESHOLDS; with
    ``target``, the first point at or below it (None where none was)."""
    small = scorer(trainer, 200 if FLAGS.dry_run else 2000, evaluator)
    curve = train_curve(report, name, trainer, small, seconds, chunk, every, target, wall)
    final = scorer(trainer, 200 if FLAGS.dry_run else 10000, evaluator)(
        trainer.state.sampling_generator
    )
    summary = {"steps": int(trainer.step.numpy()), "train_s": curve[-1]["train_s"] if curve else 0}
    if evaluator == "fashion_mnist":
        summary["seconds_to_fd_below"] = {
            str(t): next((p["train_s"] for p in curve if p["fd_2000"] < t), None)
            for t in FD_THRESHOLDS
        }
    if target is not None:
        summary["target_fd"] = target
        summary["reached_target"] = next((p for p in curve if p["fd_2000"] <= target), None)
    summary.update({k: round(v, 4) for k, v in final.items()})
    report.put(name, summary)
    save_grid(trainer, os.path.join(report.folder, f"{name}_grid.png"))
    report.say(f"{name}: final {summary}")


def main(argv) -> None:
    del argv
    if not FLAGS.out:
        raise app.UsageError("Give --out=DIR.")
    unknown = sorted(set(FLAGS.parts) - set(PARTS))
    if unknown:
        raise app.UsageError(f"Unknown --parts {unknown}; the parts are {', '.join(PARTS)}.")
    logging.set_verbosity(logging.WARNING)
    # The same update of the same shapes, built again for another part, compiles once (in the
    # caller's JAX_COMPILATION_CACHE_DIR where it has one).
    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        jax.config.update("jax_compilation_cache_dir", os.path.join(FLAGS.out, ".jax_cache"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    report = Report(FLAGS.out)
    environment(report)
    if "throughput" in FLAGS.parts:
        throughput(report, 0.2 if FLAGS.dry_run else 4.0)
    if "reference" in FLAGS.parts:
        reference(report, 0.2 if FLAGS.dry_run else 3.0)
    if "resolution" in FLAGS.parts:
        resolution(report, 0.2 if FLAGS.dry_run else 3.0, share(report, "resolution"))
    if "recommended" in FLAGS.parts:
        recipe_s = 1.0 if FLAGS.dry_run else min(150.0, 0.45 * report.left())
        chunk, every = (1, 2) if FLAGS.dry_run else (500, 1000)
        train_and_score(report, "recommended", build("recommended"), recipe_s, chunk, every)
    if "fmnist64" in FLAGS.parts:
        fmnist64(report, share(report, "fmnist64"))
    if "wgan" in FLAGS.parts:
        wgan_s = 1.0 if FLAGS.dry_run else max(30.0, report.left() - 60.0)
        chunk, every = (1, 2) if FLAGS.dry_run else (1000, 4000)
        train_and_score(report, "wgan", build("wgan"), wgan_s, chunk, every)
    report.put("finished", time.strftime("%Y-%m-%d %H:%M:%S"))
    report.say("done")


if __name__ == "__main__":
    app.run(main)
