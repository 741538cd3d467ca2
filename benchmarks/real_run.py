"""A real run against the tutorial's TF1 program: what a user's ``ganpipe.main`` run pays for the
loop and its callbacks.

    python benchmarks/real_run.py [--steps=800] [--repeats=3] [--batch_size=500]

Interleaved in one process, ``--repeats`` times: (1) ``Trainer.fit`` of gin/gan.gin (batch 500,
its 20 fused rounds per call) into a fresh run directory with every output on: a metrics row,
TensorBoard scalars and a progress line every 100 steps, a sample grid every 100 steps, a
checkpoint every 200 steps; (2) the tutorial's TF1 graph-mode GAN
(benchmarks/baselines/tf1_tutorial.py) for the same number of steps. ganpipe's rate is read from
its own metrics.jsonl (``elapsed_seconds``) over the second half of the run; the TF1 program is
timed over the same second half. Printed: steps/s of each pass, the medians and their ratio, and
the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from absl import logging  # noqa: E402

from benchmarks.baselines import experiments, tf1_tutorial  # noqa: E402
from ganpipe import config  # noqa: E402
from ganpipe.data import load_images  # noqa: E402

OUTPUTS = [
    "Intervals.log_every = 100",
    "Intervals.sample_every = 100",
    "Intervals.checkpoint_every = 200",
    "train.strategy = 'default'",
]


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def ganpipe_rate(steps: int, batch_size: int) -> float:
    """Steps per second over the second half of a real run, from its metrics.jsonl."""
    params = [f"NUM_STEPS = {steps}", f"BATCH_SIZE = {batch_size}", *OUTPUTS]
    with tempfile.TemporaryDirectory() as run_dir:
        config.parse([os.path.join(REPO, "gin", "gan.gin")], params)
        config.make_trainer().fit(run_dir)
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            rows = {row["step"]: row for row in map(json.loads, f)}
    half = steps // 2 // 100 * 100  # a logged step
    return (steps - half) / (rows[steps]["elapsed_seconds"] - rows[half]["elapsed_seconds"])


def tf1_rate(runner, steps: int) -> float:
    half = steps // 2 // 100 * 100
    runner.run(half)
    start = time.perf_counter()
    runner.run(steps - half)
    return (steps - half) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=500)
    args = parser.parse_args()
    logging.set_verbosity(logging.WARNING)
    images = load_images(source="fashion_mnist").images
    scaled = experiments.scale_pixels(images, "gan")
    ours, theirs = [], []
    for repeat in range(args.repeats):
        ours.append(ganpipe_rate(args.steps, args.batch_size))
        runner = tf1_tutorial.make("gan", scaled, batch_size=args.batch_size)
        theirs.append(tf1_rate(runner, args.steps))
        print(f"pass {repeat + 1}: ganpipe {ours[-1]:.2f} steps/s, TF1 {theirs[-1]:.2f} steps/s")
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores")
    print(f"gan.gin batch {args.batch_size}, {args.steps} steps, second half, every output on:")
    print(f"  ganpipe real run {a:.2f} steps/s, TF1 tutorial {b:.2f} steps/s: {a / b:.2f}x")


if __name__ == "__main__":
    main()
