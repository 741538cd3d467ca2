"""Where the JAX backend's time goes on a CPU: each layer of an experiment's models, and the
critic's R1 second derivative, timed on TensorFlow (oneDNN) and on JAX (XLA:CPU) with XLA flags.

    python benchmarks/xla_cpu.py                        # the recipe's layers, default variants
    python benchmarks/xla_cpu.py --variants=tf,jax,jax_xnnpack --repeats=3

Each variant is a worker process (a Keras backend is chosen once per process, XLA reads its
flags once) that builds the experiment's generator and critic from the gin file and times, at
the training batch size, for every convolution, transposed convolution and dense layer: the
forward pass, the gradient with respect to its input and with respect to its weights (each with
its forward pass; an update needs both).
Then the whole critic on real images: its gradient (a critic update without the penalty) and
the gradient of the R1 term (a gradient of a gradient). Each timing is the median of 5 blocks
of calls of at least 0.2 s, after 3 calls that compile. The driver alternates the variants
within each repeat and prints milliseconds per call (medians over repeats) and each JAX
variant's time over TensorFlow's. An XLA flag that this jaxlib does not know fails its worker;
the table says so. Run it alone on the machine.
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
sys.path.insert(0, REPO)

from benchmarks.backends import _cpu  # noqa: E402

# variant -> (Keras backend, environment).
VARIANTS = {
    "tf": ("tensorflow", {}),
    "tf_no_onednn": ("tensorflow", {"TF_ENABLE_ONEDNN_OPTS": "0"}),
    "jax": ("jax", {}),
    "jax_xnnpack": ("jax", {"XLA_FLAGS": "--xla_cpu_use_xnnpack=true"}),
    "jax_onednn": ("jax", {"XLA_FLAGS": "--xla_cpu_use_onednn=true"}),
    "jax_fast_math": ("jax", {"XLA_FLAGS": "--xla_cpu_enable_fast_math=true"}),
    "jax_one_thread_eigen": ("jax", {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"}),
}
KERNEL_LAYERS = ("Conv2D", "Conv2DTranspose", "Dense")


def _median_ms(call, *args) -> float:
    for _ in range(3):
        call(*args)
    n, started = 1, time.perf_counter()
    call(*args)
    once = max(time.perf_counter() - started, 1e-5)
    n = max(1, int(0.2 / once))
    blocks = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n):
            call(*args)
        blocks.append((time.perf_counter() - started) / n)
    return 1000 * statistics.median(blocks)


def _models(gin_file: str):
    from ganpipe import config

    config.parse([gin_file], ["Intervals.eval_every = 0"])
    trainer = config.make_trainer()
    s = trainer.settings
    return s.batch_size, trainer.generator, trainer.critic, s.num_classes


def _kernel_layers(model):
    """(name, layer, input shape without the batch) of each convolution and dense layer."""
    rows = []
    for layer in model.layers:
        if type(layer).__name__ in KERNEL_LAYERS:
            rows.append((f"{model.name}/{layer.name}", layer, tuple(layer.input.shape[1:])))
    return rows


def _tf_calls(layer):
    import tensorflow as tf

    @tf.function
    def forward(x):
        return layer(x)

    def gradient_of(wrt_input: bool):
        @tf.function
        def gradient(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(tf.square(layer(x)))
            return tape.gradient(loss, x if wrt_input else layer.trainable_variables[0])

        return gradient

    return forward, gradient_of(True), gradient_of(False)


def _tf_critic_calls(critic, gamma):
    import tensorflow as tf

    weights = critic.trainable_variables

    @tf.function
    def critic_gradient(images, labels):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.softplus(-critic([images, labels] if labels is not None
                                                       else images)))  # fmt: skip
        return tape.gradient(loss, weights)

    @tf.function
    def r1_gradient(images, labels):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(images)
                total = tf.reduce_sum(critic([images, labels] if labels is not None else images))
            grads = inner.gradient(total, images)
            loss = gamma / 2 * tf.reduce_mean(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]))
        return outer.gradient(loss, weights)

    return critic_gradient, r1_gradient


def _jax_calls(layer):
    import jax
    import jax.numpy as jnp

    weights = [v.value for v in layer.trainable_variables]
    others = [v.value for v in layer.non_trainable_variables]

    def loss(x, w):
        return jnp.sum(jnp.square(layer.stateless_call(w, others, x)[0]))

    forward = jax.jit(lambda x: layer.stateless_call(weights, others, x)[0])
    to_input = jax.jit(jax.grad(loss, 0))
    # The kernel alone, as on TensorFlow (the bias's gradient is a sum).
    to_kernel = jax.jit(jax.grad(lambda x, kernel: loss(x, [kernel, *weights[1:]]), 1))
    return (lambda x: jax.block_until_ready(forward(x)),
            lambda x: jax.block_until_ready(to_input(x, weights)),
            lambda x: jax.block_until_ready(to_kernel(x, weights[0])))  # fmt: skip


def _jax_critic_calls(critic, gamma):
    import jax
    import jax.numpy as jnp

    weights = [v.value for v in critic.trainable_variables]
    others = [v.value for v in critic.non_trainable_variables]

    def scores(w, images, labels):
        inputs = [images, labels] if labels is not None else images
        return critic.stateless_call(w, others, inputs)[0]

    def loss(w, images, labels):
        return jnp.mean(jax.nn.softplus(-scores(w, images, labels)))

    def r1(w, images, labels):
        grads = jax.grad(lambda x: jnp.sum(scores(w, x, labels)))(images)
        return gamma / 2 * jnp.mean(jnp.sum(jnp.square(grads), axis=(1, 2, 3)))

    critic_gradient, r1_gradient = jax.jit(jax.grad(loss)), jax.jit(jax.grad(r1))
    return (lambda x, y: jax.block_until_ready(critic_gradient(weights, x, y)),
            lambda x, y: jax.block_until_ready(r1_gradient(weights, x, y)))  # fmt: skip


def worker(gin_file: str, gamma: float = 0.5) -> dict:
    import keras
    import numpy as np

    batch, generator, critic, num_classes = _models(gin_file)
    backend = keras.backend.backend()
    rng = np.random.default_rng(0)
    times = {}
    for name, layer, shape in _kernel_layers(generator) + _kernel_layers(critic):
        x = keras.ops.convert_to_tensor(rng.standard_normal((batch, *shape)).astype("float32"))
        calls = _tf_calls(layer) if backend == "tensorflow" else _jax_calls(layer)
        for what, call in zip(("forward", "input gradient", "kernel gradient"), calls):
            times[f"{name} {shape}: {what}"] = _median_ms(call, x)
    image_shape = tuple(critic.inputs[0].shape[1:])
    images = keras.ops.convert_to_tensor(
        rng.uniform(-1, 1, (batch, *image_shape)).astype("float32"))  # fmt: skip
    labels = None if num_classes is None else keras.ops.convert_to_tensor(
        rng.integers(0, num_classes, batch).astype("int32"))  # fmt: skip
    gradient, r1 = (_tf_critic_calls(critic, gamma) if backend == "tensorflow"
                    else _jax_critic_calls(critic, gamma))  # fmt: skip
    times["critic: loss gradient (an update without the penalty)"] = _median_ms(
        gradient, images, labels)  # fmt: skip
    times["critic: R1 gradient (gradient of a gradient)"] = _median_ms(r1, images, labels)
    return {"backend": backend, "batch": batch, "times_ms": times}


def _run_worker(variant: str, gin_file: str) -> dict | None:
    backend, extra = VARIANTS[variant]
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "JAX_PLATFORMS": "cpu", **extra}  # fmt: skip
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", f"--gin_file={gin_file}"],
        capture_output=True, text=True, env=env, timeout=1800,
    )  # fmt: skip
    if result.returncode != 0:
        print(f"  {variant} failed ({extra}): {result.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def _table(variants, times) -> None:
    items = list(dict.fromkeys(item for v in variants for item in times.get(v, {})))
    base = "tf" if "tf" in variants else variants[0]
    others = [v for v in variants if v != base]
    print(
        f"\n| item | {' | '.join(f'{v} ms' for v in variants)} | "
        f"{' | '.join(f'{v} / {base}' for v in others)} |"
    )
    print("| --- |" + " ---: |" * (len(variants) + len(others)))
    for item in items:
        ms = {v: statistics.median(times[v][item]) for v in variants if item in times.get(v, {})}
        cells = [f"{ms[v]:.2f}" if v in ms else "failed" for v in variants]
        ratios = [f"{ms[v] / ms[base]:.2f}x" if v in ms and base in ms else "" for v in others]
        print(f"| {item} | {' | '.join(cells)} | {' | '.join(ratios)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gin_file", default=os.path.join(REPO, "gin", "recommended.gin"))
    parser.add_argument("--variants", default="tf,tf_no_onednn,jax,jax_xnnpack,jax_onednn")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.gin_file)))
        return
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    print(f"CPU: {_cpu()}; {args.gin_file}; {args.repeats} repeats; milliseconds per call")
    times: dict[str, dict[str, list[float]]] = {}
    for repeat in range(args.repeats):
        for variant in variants if repeat % 2 == 0 else variants[::-1]:
            row = _run_worker(variant, args.gin_file)
            if row is None:
                continue
            for item, ms in row["times_ms"].items():
                times.setdefault(variant, {}).setdefault(item, []).append(ms)
            print(f"  pass {repeat + 1}: {variant} done (batch {row['batch']})", flush=True)
    _table(variants, times)


if __name__ == "__main__":
    main()
