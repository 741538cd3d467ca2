"""Long-run flatness: resident memory and step time at the start and the end of a long run.

    python benchmarks/soak.py --gin_file=gin/gan.gin --steps=20000

Trains through ``Trainer.fit`` (every action on: metrics, TensorBoard, samples, checkpoints) into
a temporary run directory, sampling resident memory (from /proc/self/status) and the step rate
over a window at the start (after warm-up) and at the end. A graph that grows while training
(as the seed tutorial's, which builds new ops every 20 steps) shows up as a growing step time and
memory. Prints both windows and their ratios.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

flags.DEFINE_multi_string("gin_file", ["gin/gan.gin"], "Experiment file(s).")
flags.DEFINE_multi_string("gin_param", [], "Extra bindings.")
flags.DEFINE_integer("steps", 20000, "Generator steps in total.")
flags.DEFINE_integer("window", 1000, "Steps per measurement window.")
FLAGS = flags.FLAGS


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def main(argv):
    del argv
    from ganpipe import config

    config.parse(FLAGS.gin_file, [*FLAGS.gin_param, f"NUM_STEPS = {FLAGS.steps}"])
    trainer = config.make_trainer()
    samples: list[tuple[int, float, float]] = []  # (step, time, rss)
    original = trainer.train_round

    def timed_round(*args, **kwargs):
        result = original(*args, **kwargs)
        samples.append((int(trainer.step.numpy()), time.perf_counter(), rss_mib()))
        return result

    trainer.train_round = timed_round
    with tempfile.TemporaryDirectory() as run_dir:
        trainer.fit(run_dir)

    def window(first_step: int):
        points = [s for s in samples if first_step <= s[0] <= first_step + FLAGS.window]
        rates = [(b[0] - a[0]) / (b[1] - a[1]) for a, b in zip(points, points[1:]) if b[1] > a[1]]
        return statistics.median(rates), statistics.median(p[2] for p in points)

    start_rate, start_rss = window(FLAGS.window)  # skip the first window: tracing, warm-up
    end_rate, end_rss = window(FLAGS.steps - FLAGS.window)
    print(f"{' + '.join(FLAGS.gin_file)}, {FLAGS.steps} steps, windows of {FLAGS.window} steps")
    print(
        f"start (steps {FLAGS.window}-{2 * FLAGS.window}): {start_rate:.1f} steps/s, "
        f"RSS {start_rss:.0f} MiB"
    )
    print(f"end (last {FLAGS.window} steps): {end_rate:.1f} steps/s, RSS {end_rss:.0f} MiB")
    print(f"end/start: step rate {end_rate / start_rate:.3f}, RSS {end_rss / start_rss:.3f}")


if __name__ == "__main__":
    app.run(main)
