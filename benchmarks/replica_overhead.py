"""Per-round time of one experiment on 1, 2 and 4 logical CPU replicas of the same global batch.

    python benchmarks/replica_overhead.py --gin_file=gin/gan.gin --gin_param=BATCH_SIZE=512

Each configuration runs in its own process (TensorFlow splits the CPU into logical devices only
at start-up, and one process serves one strategy): the default strategy, then MirroredStrategy
over 1, 2 and 4 logical CPUs, in that order, ``--repeats`` times, interleaved. Each process warms
up, then times ``--blocks`` blocks of ``--rounds`` rounds and reports the median seconds per
round. Logical CPUs share the same cores, so more replicas cannot be faster here: the figures are
the strategy's overhead (per-replica graph copies, all-reduces, input splitting), not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = [("default", 1), ("mirrored", 1), ("mirrored", 2), ("mirrored", 4)]


def _measure(args) -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * args.replicas
    )
    sys.path.insert(0, REPO)
    from ganpipe import config

    if args.strategy == "default":
        strategy = ["train.strategy = 'default'"]
    else:
        devices = [f"/cpu:{i}" for i in range(args.replicas)]
        strategy = [
            "train.strategy = @make_strategy()",
            "make_strategy.name = 'mirrored'",
            f"make_strategy.devices = {devices}",
        ]
    config.parse(args.gin_file, [*args.gin_param, *strategy])
    trainer = config.make_trainer()
    for _ in range(args.warmup):
        trainer.train_round()
    times = []
    for _ in range(args.blocks):
        start = time.perf_counter()
        for _ in range(args.rounds - 1):
            trainer.train_round()
        trainer.train_round()  # returns floats, so the block's work has finished
        times.append((time.perf_counter() - start) / args.rounds)
    print("RESULT " + json.dumps({"median": statistics.median(times), "times": times}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gin_file", action="append", default=None)
    parser.add_argument("--gin_param", action="append", default=[])
    parser.add_argument("--rounds", type=int, default=20, help="rounds per timed block")
    parser.add_argument("--blocks", type=int, default=5, help="timed blocks per process")
    parser.add_argument("--warmup", type=int, default=5, help="untimed rounds first")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved passes over configs")
    parser.add_argument("--strategy", help=argparse.SUPPRESS)
    parser.add_argument("--replicas", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.gin_file = args.gin_file or ["gin/gan.gin"]
    if args.strategy:
        _measure(args)
        return

    results: dict[tuple[str, int], list[float]] = {c: [] for c in CONFIGS}
    for repeat in range(args.repeats):
        for strategy, replicas in CONFIGS:
            command = [
                sys.executable,
                os.path.abspath(__file__),
                *(f"--gin_file={f}" for f in args.gin_file),
                *(f"--gin_param={p}" for p in args.gin_param),
                f"--rounds={args.rounds}",
                f"--blocks={args.blocks}",
                f"--warmup={args.warmup}",
                f"--strategy={strategy}",
                f"--replicas={replicas}",
            ]
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
            out = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
            lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if out.returncode or not lines:
                sys.exit(f"{strategy} x{replicas} failed:\n{out.stderr[-3000:]}")
            median = json.loads(lines[0][len("RESULT ") :])["median"]
            results[(strategy, replicas)].append(median)
            print(f"pass {repeat + 1}: {strategy:8s} x{replicas}: {1000 * median:8.2f} ms/round")

    base = statistics.median(results[("default", 1)])
    print(f"\n{' '.join(args.gin_file)} {' '.join(args.gin_param)}")
    print("| strategy | replicas | ms per round (median of passes) | vs default |")
    print("| --- | --- | --- | --- |")
    for (strategy, replicas), values in results.items():
        median = statistics.median(values)
        print(f"| {strategy} | {replicas} | {1000 * median:.2f} | {median / base:.2f}x |")


if __name__ == "__main__":
    main()
