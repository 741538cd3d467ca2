"""Training throughput of the same gin files on the TensorFlow and JAX backends, side by side.

    python benchmarks/backends.py                      # recipe, recipe without R1, gan, dcgan
    python benchmarks/backends.py --cases=recipe --repeats=3 --seconds=30

A Keras backend is chosen once per process, so each measurement is a worker process
(``--worker``) that builds the experiment from its shipped gin file on the full Fashion-MNIST
training split, trains until its compiled calls are built (not timed), then times ``--seconds``
of training and prints generator updates per second. The driver alternates the backends within
each repeat, so both see the same machine load, and prints the median per case and backend and
the ratio TensorFlow / JAX. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# case -> (gin file, bindings): the recipe, the recipe without its penalty (the second
# derivative's share), the tutorial GAN at batch 500 and the tutorial DCGAN.
CASES = {
    "recipe": ("recommended.gin", []),
    "recipe_no_r1": ("recommended.gin", ["train.penalty = None"]),
    "gan_b500": ("gan.gin", ["BATCH_SIZE = 500"]),
    "dcgan": ("dcgan.gin", []),
}
BACKENDS = ("tensorflow", "jax")


def worker(case: str, seconds: float) -> dict:
    sys.path.insert(0, REPO)
    import keras

    from ganpipe import config

    gin_file, bindings = CASES[case]
    config.parse([os.path.join(REPO, "gin", gin_file)], ["Intervals.eval_every = 0", *bindings])
    trainer = config.make_trainer()
    # One call as training makes it: rounds_per_call rounds (gan.gin fuses 20 on TensorFlow;
    # JAX runs them as a Python loop of compiled updates).
    chunk = trainer.settings.schedule.generator_steps * trainer.settings.numerics.rounds_per_call
    started = time.perf_counter()
    trainer.train_steps(chunk)  # builds the compiled calls
    trainer.train_steps(chunk)
    warmup = time.perf_counter() - started
    first, t0 = int(trainer.step.numpy()), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        trainer.train_steps(chunk)
    steps = int(trainer.step.numpy()) - first
    elapsed = time.perf_counter() - t0
    return {
        "case": case, "backend": keras.backend.backend(), "steps": steps,
        "seconds": round(elapsed, 2), "steps_per_s": steps / elapsed, "warmup_s": round(warmup, 1),
    }  # fmt: skip


def _run_worker(case: str, backend: str, seconds: float) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "JAX_PLATFORMS": "cpu"}  # fmt: skip
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", f"--cases={case}",
         f"--seconds={seconds}"],
        capture_output=True, text=True, env=env, timeout=1800,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"{case} on {backend} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        name = next(line.split(":", 1)[1].strip() for line in info.splitlines()
                    if line.startswith("model name"))  # fmt: skip
        avx512 = "avx512f" in info
        return f"{name} ({os.cpu_count()} cores, AVX-512 {'yes' if avx512 else 'no'})"
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown cases {unknown}; known: {', '.join(CASES)}")
    if args.worker:
        print(json.dumps(worker(cases[0], args.seconds)))
        return
    print(f"CPU: {_cpu()}; {args.repeats} repeats of {args.seconds:.0f} s per case and backend")
    rates: dict[tuple[str, str], list[float]] = {}
    for repeat in range(args.repeats):
        for case in cases:
            order = BACKENDS if repeat % 2 == 0 else BACKENDS[::-1]
            for backend in order:
                row = _run_worker(case, backend, args.seconds)
                rates.setdefault((case, backend), []).append(row["steps_per_s"])
                print(f"  pass {repeat + 1}: {case:13s} {backend:10s} "
                      f"{row['steps_per_s']:8.2f} steps/s (warm-up {row['warmup_s']} s)",
                      flush=True)  # fmt: skip
    print("\n| case | TensorFlow steps/s | JAX steps/s | TensorFlow / JAX |")
    print("| --- | ---: | ---: | ---: |")
    for case in cases:
        tf_rate = statistics.median(rates[(case, "tensorflow")])
        jax_rate = statistics.median(rates[(case, "jax")])
        print(f"| {case} | {tf_rate:.2f} | {jax_rate:.2f} | {tf_rate / jax_rate:.2f}x |")


if __name__ == "__main__":
    main()
