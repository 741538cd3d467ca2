"""Training throughput of the same gin files on the TensorFlow and JAX backends, side by side.

    python benchmarks/backends.py                      # recipe, recipe without R1, gan, dcgan
    python benchmarks/backends.py --cases=recipe --repeats=3 --seconds=30
    python benchmarks/backends.py --cases=gan_b16,recipe --variants=tensorflow,jax,jax_1 \
        --before=/path/to/an/older/checkout    # jax_before, tensorflow_before: that checkout

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
    # Dispatch-bound: the fully connected GAN at a small batch, where an update's arithmetic
    # takes well under a millisecond and the cost of each call dominates.
    "gan_b16": ("gan.gin", ["BATCH_SIZE = 16"]),
}
# variant -> (Keras backend, extra bindings): TensorFlow as the gin file says (or, unset, its
# backend's default rounds per call); TensorFlow with one round per call; JAX with --jax_rounds
# rounds per program (fused); JAX with one round per program; and jax_before and
# tensorflow_before, the checkout given by --before on JAX or TensorFlow as its gin file says.
VARIANTS = ("tensorflow", "tensorflow_1", "jax", "jax_1", "jax_before", "tensorflow_before")


def worker(case: str, seconds: float, extra: list[str]) -> dict:
    repo = os.environ.get("GANPIPE_REPO", REPO)
    sys.path.insert(0, repo)
    import keras

    from ganpipe import config

    gin_file, bindings = CASES[case]
    config.parse(
        [os.path.join(repo, "gin", gin_file)], ["Intervals.eval_every = 0", *bindings, *extra]
    )
    trainer = config.make_trainer()
    # One call as training makes it: rounds_per_call rounds.
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


def _run_worker(case: str, variant: str, seconds: float, args) -> dict:
    backend = "tensorflow" if variant.startswith("tensorflow") else "jax"
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "JAX_PLATFORMS": "cpu"}  # fmt: skip
    extra = {"jax": [f"Numerics.rounds_per_call = {args.jax_rounds}",
                     f"Intervals.log_every = {max(100, args.jax_rounds)}"],
             "jax_1": ["Numerics.rounds_per_call = 1"],
             "tensorflow_1": ["Numerics.rounds_per_call = 1"]}.get(variant, [])  # fmt: skip
    if variant.endswith("_before"):
        env["GANPIPE_REPO"] = os.path.abspath(args.before)
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", f"--cases={case}",
         f"--seconds={seconds}", *[f"--bind={b}" for b in extra]],
        capture_output=True, text=True, env=env, timeout=1800,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"{case} on {variant} failed:\n{result.stderr[-3000:]}")
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
    parser.add_argument("--variants", default="tensorflow,jax")
    parser.add_argument("--jax_rounds", type=int, default=20, help="rounds per program (jax)")
    parser.add_argument("--before", default=None, help="an older checkout (*_before variants)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bind", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    before = any(v.endswith("_before") for v in variants)
    if set(variants) - set(VARIANTS) or (before and not args.before):
        parser.error(f"--variants are of {', '.join(VARIANTS)}; *_before needs --before")
    cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown cases {unknown}; known: {', '.join(CASES)}")
    if args.worker:
        print(json.dumps(worker(cases[0], args.seconds, args.bind)))
        return
    print(f"CPU: {_cpu()}; {args.repeats} repeats of {args.seconds:.0f} s per case and variant")
    rates: dict[tuple[str, str], list[float]] = {}
    for repeat in range(args.repeats):
        for case in cases:
            order = variants if repeat % 2 == 0 else variants[::-1]
            for variant in order:
                row = _run_worker(case, variant, args.seconds, args)
                rates.setdefault((case, variant), []).append(row["steps_per_s"])
                print(f"  pass {repeat + 1}: {case:13s} {variant:10s} "
                      f"{row['steps_per_s']:8.2f} steps/s (warm-up {row['warmup_s']} s)",
                      flush=True)  # fmt: skip
    first = variants[0]
    print(f"\nMedian generator updates per second; each variant / {first}.")
    print("| case | " + " | ".join(variants) + " | " + " | ".join(
        f"{v} / {first}" for v in variants[1:]) + " |")  # fmt: skip
    print("| --- |" + " ---: |" * (2 * len(variants) - 1))
    for case in cases:
        median = {v: statistics.median(rates[(case, v)]) for v in variants}
        cells = [f"{median[v]:.1f}" for v in variants]
        cells += [f"{median[v] / median[first]:.2f}x" for v in variants[1:]]
        print(f"| {case} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
