"""Shared fixtures: clean gin/Keras state per test; tiny trainers built from real gin files."""

from __future__ import annotations

import gc
import json
import os
import pathlib
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# One thread per TensorFlow operation in every test process (set before TensorFlow starts, and
# inherited by subprocesses): the two test processes and their subprocesses already keep both
# cores busy, and a pool's threads that wait for work spin on a core another process needs
# (measured on 155 in-process tests: 135 s of CPU with the default pool, 128 s with one thread).
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import gin  # noqa: E402
from ganpipe import config  # noqa: E402
from ganpipe.eval.evaluation import CACHE_DIR_ENV  # noqa: E402
from tests import prestarted  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
GIN = REPO / "gin"
EXPERIMENTS = sorted(p.stem for p in GIN.glob("*.gin"))
FASHION_MNIST_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")


# The longest modules, longest first (seconds of one suite run alone on a 2-core AMD EPYC,
# 2026-12-04): they are handed out first, so the two test processes end together.
FIRST = (
    "tests/test_distribute.py",  # 190: the replica parity processes
    "tests/test_jax_experiments.py",  # 100
    "tests/test_jax_fused.py",  # 90: fused against single rounds, resume, kill -9
    "tests/test_gpu_own_images.py",  # 80: the GPU script's resolution and 64x64 dry runs
    "tests/test_sweep.py",  # 95
    "tests/test_ablation.py",  # 80
    "tests/test_jax_replicas.py",  # 45
    "tests/test_preemption.py",  # 50
    "tests/test_conditional.py",  # 45
    "tests/test_own_data.py",  # 75: an evaluator trained, a run scored
    "tests/eval/test_evaluation.py",  # 40
    "tests/test_trainer.py",  # 40
    "tests/eval/test_inception.py",  # 36
    "tests/test_resume.py",  # 35
    "tests/test_jax_backend.py",  # 32
    "tests/test_backend_parity.py",  # 30
    "tests/test_main.py",  # 30
    "tests/test_multi_worker.py",  # 28
)


def pytest_collection_modifyitems(config, items):
    """Puts the modules of FIRST first, in its order; the rest keep theirs (a stable sort)."""
    del config
    rank = {path: i for i, path in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(FIRST)))


@pytest.fixture(autouse=True, scope="session")
def jax_compilation_cache(tmp_path_factory):
    """One JAX persistent compilation cache for the JAX subprocesses of this test run (both
    xdist workers): a later process that compiles the same program (a resumed run, the same tiny
    experiment in another test) loads it instead, about half of such a process's time. The
    compiled programs are the same, so what the tests check is unchanged."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    cache = str(shared / "jax-compilation-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JAX_COMPILATION_CACHE_DIR", cache)
        patch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
        patch.setenv("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
        yield cache


# XLA's compile flags for this test run: LLVM's expensive optimisation passes off, and the
# backend's optimisation level 1 (of 3). The suite's XLA programs (every JAX update,
# TensorFlow's jit_compile runs) each run a few times, so compiling is most of their time.
# Measured on a 2-core AMD EPYC with AVX-512: the expensive passes were about a quarter of it
# (the JAX every-experiment script: 156 s of CPU with them, 119 s without); level 1 then took
# the first rounds of recommended, dcgan, wgan_gp and sngan from 57 s of CPU to 48 s, with each
# later round as fast as before (level 0 made dcgan's round 12x slower). The programs compute
# the same operations; what a test compares runs under the same flags on both sides.
# One Eigen thread in XLA's CPU kernels, for the reason TF_NUM_INTRAOP_THREADS is 1 above (the
# JAX every-experiment script: 126 s of CPU with Eigen's pool, 114 s without).
TEST_XLA_FLAGS = (
    "--xla_llvm_disable_expensive_passes=true --xla_backend_optimization_level=1 "
    "--xla_cpu_multi_thread_eigen=false"
)


@pytest.fixture(autouse=True, scope="session")
def xla_compile_flags():
    """``TEST_XLA_FLAGS`` after the caller's own ``XLA_FLAGS`` (inherited by subprocesses)."""
    flags = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XLA_FLAGS", flags)
        yield flags


@pytest.fixture(autouse=True, scope="session")
def prestarted_interpreters():
    """Ends the interpreters that test subprocesses are forked from (tests/prestarted.py)."""
    yield
    prestarted.close_servers()


@pytest.fixture(autouse=True, scope="session")
def evaluation_cache(tmp_path_factory):
    """Evaluation's disk cache (the reference features) in a temporary folder for the whole
    session, never in ~/.cache/ganpipe; subprocesses inherit it through the environment."""
    folder = str(tmp_path_factory.mktemp("ganpipe-cache"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_DIR_ENV, folder)
        yield folder


@pytest.fixture(autouse=True, scope="session")
def imports_out_of_the_collector():
    """Moves every object alive before the first test out of the garbage collector's reach:
    TensorFlow's, Keras' and the test modules' imports, over 400,000 objects. Each collection
    (Python's own, and the ``clear_session`` calls that collect) would otherwise walk all of
    them (0.35-0.4 s each, measured; the not-slow suite took 5 min 32 s before the freeze and
    2 min 51 s after it). What a test leaves behind is still collected."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


def _gradient_registry() -> dict:
    # TensorFlow registers a gradient function in a process-wide registry for every traced
    # tf.custom_gradient, and never removes it. Keras' optimizer all-reduces its gradients
    # through one (even on one replica), so each traced update keeps its whole graph alive, and
    # with it every variable it captured: 350 MiB per DCGAN trainer, 21 GiB over the suite, enough
    # to make the machine page. Nothing outside a test's own graphs uses the entries it added.
    from tensorflow.python.framework import ops as tf_ops  # no public API for this

    return tf_ops._gradient_registry._registry


@pytest.fixture(autouse=True)
def clean_state():
    gin.clear_config()
    # Without ``gc.collect()``: a full collection before every test walked everything the
    # module's fixtures keep alive, about 7% of the in-process tests' time (measured on 267 of
    # them: 377 s with it, 349 s without, peak memory 2.78 -> 2.92 GB). Python's own collector
    # still frees what a test leaves in cycles.
    keras.utils.clear_session(free_memory=False)
    registry = _gradient_registry()
    before = set(registry)
    yield
    gin.clear_config()
    for name in set(registry) - before:
        if name.startswith("CustomGradient-"):
            del registry[name]


def parse(experiment: str, *params: str, tiny: bool = True) -> str:
    """Parses gin/<experiment>.gin (plus gin/testing/tiny.gin) and bindings."""
    files = [str(GIN / f"{experiment}.gin")]
    if tiny:
        files.append(str(GIN / "testing" / "tiny.gin"))
    return config.parse(files, params)


# A small DCGAN-shaped generator (dense -> reshape -> transposed conv + batch norm -> tanh) for
# tests that train and restore many generators.
SMALL_GENERATOR = (
    "LATENT_DIM = 16",
    "build_generator.latent_dim = 16",
    "build_generator.blocks = ["
    "{'block': 'dense', 'units': 392, 'activation': 'tanh'},"
    "{'block': 'reshape', 'target_shape': (7, 7, 8)},"
    "{'block': 'conv_transpose', 'filters': 8, 'kernel_size': 4, 'strides': 2,"
    " 'padding': 'same', 'activation': 'leaky_relu'},"
    "{'block': 'batch_norm', 'momentum': 0.1, 'epsilon': 1e-4,"
    " 'moving_variance_initializer': 'zeros'},"
    "{'block': 'conv_transpose', 'filters': 1, 'kernel_size': 4, 'strides': 2,"
    " 'padding': 'same', 'activation': 'tanh'}]",
)


def own_latent(experiment: str) -> str:
    """The experiment's own latent size as a binding, undoing tiny.gin's 16."""
    config.parse([str(GIN / f"{experiment}.gin")], [])
    return f"LATENT_DIM = {gin.query_parameter('%LATENT_DIM')}"


def values(variables):
    """NumPy copies of variables' (or arrays') current values."""
    return [np.array(v.numpy() if hasattr(v, "numpy") else v) for v in variables]


def make_trainer(experiment: str, *params: str, tiny: bool = True):
    """A Trainer built from a real experiment file, made tiny, with extra bindings."""
    parse(experiment, *params, tiny=tiny)
    return config.make_trainer()


def run_module(module: str, *args: str, timeout: float = 300, env: dict | None = None):
    """Runs ``python -m <module>`` from the repository root; returns the CompletedProcess.
    ``env`` adds to the environment; a value of None removes the variable."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    return prestarted.run(["-m", module, *args], env=full_env, cwd=REPO, timeout=timeout)


def run_main(*args: str, timeout: float = 300, env: dict | None = None):
    """Runs ``python -m ganpipe.main`` in a subprocess; returns the CompletedProcess."""
    return run_module("ganpipe.main", *args, timeout=timeout, env=env)


# --- Short runs in a run directory (resume tests) ---------------------------------------------


def run_trainer(experiment: str, num_steps: int, *params: str):
    """A fresh tiny, deterministic trainer for ``num_steps`` steps that checkpoints every 2."""
    gin.clear_config()
    keras.utils.clear_session(free_memory=False)
    return make_trainer(
        experiment,
        f"NUM_STEPS = {num_steps}",
        "Intervals.checkpoint_every = 2",
        "Numerics.deterministic = True",
        *params,
    )


def model_weights(trainer) -> list[np.ndarray]:
    """Copies of the generator's and the critic's weights, in that order."""
    return [np.array(v) for v in trainer.generator.weights + trainer.critic.weights]


def metrics_rows(run_dir) -> list[dict]:
    """The rows of a run directory's metrics.jsonl."""
    with open(pathlib.Path(run_dir) / "metrics.jsonl") as f:
        return [json.loads(line) for line in f]


def logged_steps(run_dir) -> list:
    """The step of each row of a run directory's metrics.jsonl ([] before the first row; None
    for a torn last line, as a killed process may leave)."""
    path = pathlib.Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    steps = []
    for line in path.read_text().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except ValueError:
            steps.append(None)
    return steps


def train_run(experiment: str, run_dir, num_steps: int, *params: str):
    """Trains (or resumes) a tiny run to ``num_steps``; returns its weights and metrics rows."""
    trainer = run_trainer(experiment, num_steps, *params)
    trainer.fit(str(run_dir))
    return model_weights(trainer), metrics_rows(run_dir)


# --- Operative configs: what an experiment file switches --------------------------------------

# dcgan.gin's Adam swapped for RMSprop on both sides: its bindings leave the operative config (the
# RMSprop learning rates differ per experiment and are listed with each).
ADAM_TO_RMSPROP = {
    "train.generator_optimizer": ("@generator/Adam", "@generator/RMSprop"),
    "train.critic_optimizer": ("@critic/Adam", "@critic/RMSprop"),
    "generator/Adam.learning_rate": ("9e-05", None),
    "generator/Adam.epsilon": ("1e-08", None),
    "critic/Adam.learning_rate": ("2e-05", None),
    "critic/Adam.epsilon": ("1e-08", None),
}


def gin_bindings(text: str) -> dict[str, str]:
    """gin config text -> {binding: value text}."""
    bindings, key, value = {}, None, []
    for line in text.splitlines() + ["#"]:
        match = re.match(r"^([\w/.%]+) = (.*)$", line)
        if match or line.startswith("#") or not line.strip():
            if key:
                bindings[key] = " ".join(value).replace("\\", "").strip()
                key = None
            if match:
                key, value = match.group(1), [match.group(2)]
        else:
            value.append(line.strip())
    return bindings


def operative_bindings(experiment: str) -> dict[str, str]:
    """The bindings the experiment file sets that training used."""
    overrides = (
        "load_images.source = 'synthetic'",
        "load_images.num_synthetic = 500",
        "train.strategy = 'default'",
    )
    explicit = gin_bindings(parse(experiment, *overrides, tiny=False))
    config.make_trainer()
    operative = gin_bindings(gin.operative_config_str())
    used = {k: v for k, v in operative.items() if k in explicit}
    # The overrides above, for speed, are the same in every experiment and are not switches.
    for override in overrides:
        used.pop(override.split(" = ")[0], None)
    return used


def binding_diff(a: dict, b: dict) -> dict:
    """{binding: (value in a, value in b)} for every binding whose values differ."""
    return {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}


# --- A tiny GAN state, built without a trainer ------------------------------------------------


def tiny_state(average: bool = False):
    """A ``GANState`` of two tiny models, each with batch-norm statistics, and built Adam
    optimizers: the generator maps 4 numbers to a 2x3x1 image; with ``average``, a weight
    average too."""
    from ganpipe.training import state

    strategy = tf.distribute.get_strategy()
    generator = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(6), keras.layers.BatchNormalization(),
         keras.layers.Reshape((2, 3, 1))]
    )  # fmt: skip
    critic = keras.Sequential(
        [keras.Input((2, 3, 1)), keras.layers.Flatten(), keras.layers.Dense(4),
         keras.layers.BatchNormalization(), keras.layers.Dense(1)]
    )  # fmt: skip
    g_opt, c_opt = state.build_optimizers(
        "adam", "adam", precision="float32", generator=generator, critic=critic,
        resolve=lambda identifier, role: keras.optimizers.get(identifier),
    )  # fmt: skip
    ema = state.averaged_copy(generator, strategy, "float32") if average else None
    step, elapsed, best_fd = state.counters(strategy)
    return state.GANState(generator, critic, g_opt, c_opt, step, elapsed, best_fd, ema)


def jax_env(**extra: str) -> dict:
    """This environment under KERAS_BACKEND=jax on the CPU, with the repository importable."""
    return {
        **os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO),
        **extra,
    }  # fmt: skip


def run_jax(*args, timeout=600):
    """Runs ``python ARGS`` from the repository root under KERAS_BACKEND=jax (on the CPU)."""
    return prestarted.run(list(args), env=jax_env(), cwd=REPO, timeout=timeout)
