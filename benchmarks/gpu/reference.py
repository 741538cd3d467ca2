"""The recipe's update written by hand in JAX, with no Keras and no ganpipe: the speed this
hardware allows for it, which benchmarks/gpu/run.py's `reference` part sets ganpipe against.

The update is gin/recommended_unconditional.gin's at 28x28x1 (the lean family):
  generator  dense 128 -> 7x7x128 (no bias), batch norm, ReLU; 4x4 stride-2 transposed
             convolution to 64 channels (no bias), batch norm, ReLU; 4x4 stride-2 transposed
             convolution to 1 channel, tanh
  critic     4x4 stride-2 convolutions to 64 and 128 channels, each with leaky ReLU (0.2);
             flatten, dense to 1
  one round  a critic update (non-saturating loss, R1 on the reals every 16th update with its
             weight scaled by 16, gamma 0.5), then a generator update; Adam (8e-4, beta_1 0,
             beta_2 0.99, epsilon 1e-7) on each; the generator's average (decay 0.995 from
             update 200); batch norm in training mode with running statistics (momentum 0.99)
Real batches are drawn on the device from a uint8 set placed there once. ``rounds`` rounds run
as one ``lax.scan`` in one ``jax.jit`` program with the state donated. Initial weights and the
order of random draws differ from ganpipe's; the arithmetic per round is the same.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

LATENT = 128
WIDTHS = (128, 64, 32)  # channels at 7, 14 and 28 pixels a side (the lean family's 896 / side)
LEARNING_RATE, BETA_2, EPSILON = 8e-4, 0.99, 1e-7
R1_GAMMA, R1_EVERY = 0.5, 16
AVERAGE_DECAY, AVERAGE_START = 0.995, 200
BN_MOMENTUM, BN_EPSILON = 0.99, 1e-3
DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def _glorot(key, shape, fan_in: int, fan_out: int):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return jax.random.uniform(key, shape, jnp.float32, -limit, limit)


def init(key, channels: int = 1) -> dict:
    """The generator's and critic's weights, batch-norm statistics, Adam slots and average."""
    k = jax.random.split(key, 6)
    base = 7 * 7 * WIDTHS[0]
    generator = {
        "dense": _glorot(k[0], (LATENT, base), LATENT, base),
        "bn0": {"gamma": jnp.ones(base), "beta": jnp.zeros(base)},
        "up1": _glorot(k[1], (4, 4, WIDTHS[0], WIDTHS[1]), 16 * WIDTHS[0], 16 * WIDTHS[1]),
        "bn1": {"gamma": jnp.ones(WIDTHS[1]), "beta": jnp.zeros(WIDTHS[1])},
        "up2": _glorot(k[2], (4, 4, WIDTHS[1], channels), 16 * WIDTHS[1], 16 * channels),
        "up2_bias": jnp.zeros(channels),
    }
    critic = {
        "conv1": _glorot(k[3], (4, 4, channels, WIDTHS[1]), 16 * channels, 16 * WIDTHS[1]),
        "conv1_bias": jnp.zeros(WIDTHS[1]),
        "conv2": _glorot(k[4], (4, 4, WIDTHS[1], WIDTHS[0]), 16 * WIDTHS[1], 16 * WIDTHS[0]),
        "conv2_bias": jnp.zeros(WIDTHS[0]),
        "dense": _glorot(k[5], (base, 1), base, 1),
        "dense_bias": jnp.zeros(1),
    }
    statistics = {
        "bn0": {"mean": jnp.zeros(base), "var": jnp.ones(base)},
        "bn1": {"mean": jnp.zeros(WIDTHS[1]), "var": jnp.ones(WIDTHS[1])},
    }

    def slots(tree):
        zeros = jax.tree_util.tree_map(jnp.zeros_like, tree)
        return {"m": zeros, "v": jax.tree_util.tree_map(jnp.zeros_like, tree)}

    return {
        "generator": generator, "critic": critic, "statistics": statistics,
        "average": jax.tree_util.tree_map(jnp.copy, generator),
        "generator_slots": slots(generator), "critic_slots": slots(critic),
        "step": jnp.zeros((), jnp.int32),
    }  # fmt: skip


def _batch_norm(x, weights, statistics, axes):
    mean, var = jnp.mean(x, axes), jnp.var(x, axes)
    out = (x - mean) * jax.lax.rsqrt(var + BN_EPSILON) * weights["gamma"] + weights["beta"]
    moved = {
        "mean": BN_MOMENTUM * statistics["mean"] + (1 - BN_MOMENTUM) * mean,
        "var": BN_MOMENTUM * statistics["var"] + (1 - BN_MOMENTUM) * var,
    }
    return out, moved


def generate(g, statistics, z):
    """(images in [-1, 1], the batch-norm statistics moved by this batch)."""
    x, s0 = _batch_norm(z @ g["dense"], g["bn0"], statistics["bn0"], (0,))
    x = jax.nn.relu(x).reshape(-1, 7, 7, WIDTHS[0])
    x = jax.lax.conv_transpose(x, g["up1"], (2, 2), "SAME", dimension_numbers=DIMENSIONS)
    x, s1 = _batch_norm(x, g["bn1"], statistics["bn1"], (0, 1, 2))
    x = jax.lax.conv_transpose(
        jax.nn.relu(x), g["up2"], (2, 2), "SAME", dimension_numbers=DIMENSIONS
    )
    return jnp.tanh(x + g["up2_bias"]), {"bn0": s0, "bn1": s1}


def score(d, images):
    """The critic's scores, shape (batch,)."""
    x = images
    for name in ("conv1", "conv2"):
        x = jax.lax.conv_general_dilated(x, d[name], (2, 2), "SAME", dimension_numbers=DIMENSIONS)
        x = jax.nn.leaky_relu(x + d[f"{name}_bias"], 0.2)
    return (x.reshape(x.shape[0], -1) @ d["dense"] + d["dense_bias"])[:, 0]


def _adam(weights, grads, slots, step):
    t = (step + 1).astype(jnp.float32)
    alpha = LEARNING_RATE * jnp.sqrt(1 - BETA_2**t)  # beta_1 = 0: its bias correction is 1
    v = jax.tree_util.tree_map(lambda v, g: BETA_2 * v + (1 - BETA_2) * g * g, slots["v"], grads)
    new = jax.tree_util.tree_map(
        lambda w, g, v: w - alpha * g / (jnp.sqrt(v) + EPSILON), weights, grads, v
    )
    return new, {"m": grads, "v": v}


def _round(state, reals, key):
    key_critic, key_generator = jax.random.split(key)
    batch = reals.shape[0]
    g, d, step = state["generator"], state["critic"], state["step"]

    def critic_loss(d):
        z = jax.random.normal(key_critic, (batch, LATENT))
        fakes, statistics = generate(g, state["statistics"], z)
        fakes = jax.lax.stop_gradient(fakes)
        loss = jnp.mean(jax.nn.softplus(score(d, fakes)) + jax.nn.softplus(-score(d, reals)))

        def r1(d):
            grads = jax.grad(lambda x: jnp.sum(score(d, x)))(reals)
            return 0.5 * R1_GAMMA * R1_EVERY * jnp.mean(jnp.sum(grads**2, axis=(1, 2, 3)))

        penalty = jax.lax.cond(step % R1_EVERY == 0, r1, lambda d: jnp.zeros(()), d)
        return loss + penalty, (loss, statistics)

    (_, (d_loss, statistics)), grads = jax.value_and_grad(critic_loss, has_aux=True)(d)
    d, critic_slots = _adam(d, grads, state["critic_slots"], step)

    def generator_loss(g):
        z = jax.random.normal(key_generator, (batch, LATENT))
        fakes, moved = generate(g, statistics, z)
        return jnp.mean(jax.nn.softplus(-score(d, fakes))), moved

    (g_loss, statistics), grads = jax.value_and_grad(generator_loss, has_aux=True)(g)
    g, generator_slots = _adam(g, grads, state["generator_slots"], step)
    decay = jnp.where(step >= AVERAGE_START, AVERAGE_DECAY, 0.0)
    average = jax.tree_util.tree_map(lambda a, w: decay * a + (1 - decay) * w, state["average"], g)
    new = {
        "generator": g, "critic": d, "statistics": statistics, "average": average,
        "generator_slots": generator_slots, "critic_slots": critic_slots, "step": step + 1,
    }  # fmt: skip
    return new, jnp.stack([d_loss, g_loss])


def compile_rounds(rounds: int, batch: int):
    """``call(state, images, key) -> (state, mean losses)``: ``rounds`` rounds in one program,
    each drawing a batch of ``images`` (uint8, on the device) by random rows."""

    def call(state, images, key):
        def body(state, key):
            key_rows, key_round = jax.random.split(key)
            rows = jax.random.randint(key_rows, (batch,), 0, images.shape[0])
            reals = images[rows].astype(jnp.float32) / 127.5 - 1.0
            return _round(state, reals, key_round)

        state, losses = jax.lax.scan(body, state, jax.random.split(key, rounds))
        return state, jnp.mean(losses, axis=0)

    return jax.jit(call, donate_argnums=0)


def updates_per_second(images: np.ndarray, batch: int, rounds: int, seconds: float) -> dict:
    """Generator updates per second of the hand-written loop, after compiling and one warm-up
    call: ``rounds`` rounds per call at global batch ``batch`` for at least ``seconds``."""
    started = time.perf_counter()
    data = jax.device_put(images)
    state = init(jax.random.key(0), images.shape[-1])
    call, key = compile_rounds(rounds, batch), jax.random.key(1)
    state, losses = call(state, data, key)
    losses.block_until_ready()
    compile_s = time.perf_counter() - started
    calls, t0 = 0, time.perf_counter()
    while calls == 0 or time.perf_counter() - t0 < seconds:
        key, sub = jax.random.split(key)
        state, losses = call(state, data, sub)
        calls += 1
    losses.block_until_ready()
    elapsed = time.perf_counter() - t0
    return {
        "updates_per_s": round(calls * rounds / elapsed, 1),
        "compile_s": round(compile_s, 1),
        "final_losses": [round(float(x), 4) for x in np.asarray(losses)],
        "finite": bool(np.all(np.isfinite(np.asarray(losses)))),
    }
