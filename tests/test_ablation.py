"""Config-swap ablations: parse the real experiment files, swap one binding, assert its effect."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import gin
from tests.conftest import (
    ADAM_TO_RMSPROP,
    EXPERIMENTS,
    binding_diff,
    make_trainer,
    operative_bindings,
)


def _max_abs(variables):
    return max(float(np.max(np.abs(np.asarray(v)))) for v in variables)


@pytest.mark.parametrize("clip", [0.01, 0.05])
def test_clipping_keeps_every_critic_weight_in_range_after_every_update(clip):
    trainer = make_trainer("wgan", f"WeightClip.clip_value = {clip}")
    assert _max_abs(trainer.critic.trainable_variables) > clip  # stddev 0.05 initial weights
    for _ in range(3):
        trainer.train_critic()
        assert _max_abs(trainer.critic.trainable_variables) <= clip * (1 + 1e-6)
    trainer.train_round()
    assert _max_abs(trainer.critic.trainable_variables) <= clip * (1 + 1e-6)


def test_without_clipping_critic_weights_leave_the_range():
    trainer = make_trainer("wgan", "train.critic_constraint = None")
    trainer.train_critic()
    assert _max_abs(trainer.critic.trainable_variables) > 0.01


def _op_types(trainer):
    """Every op type in the traced round, including loop bodies and nested functions."""
    concrete = trainer.compiled_round.get_concrete_function(trainer.iterator, tf.constant(1))
    graph_def = concrete.graph.as_graph_def()
    ops = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        ops.update(node.op for node in function.node_def)
    return ops


SIGMOID_OR_LOG = {"Log", "Log1p", "Sigmoid", "Softplus", "LogSigmoid"}


@pytest.mark.parametrize(
    "experiment, params, expect_log",
    [
        ("wgan", (), False),
        ("wgan_gp", (), False),
        ("wgan", ("train.loss = 'non_saturating'",), True),
        ("dcgan", (), True),
        ("dcgan", ("train.loss = 'hinge'",), False),
        ("dcgan", ("train.loss = 'least_squares'",), False),
        ("dcgan", ("train.loss = 'minimax'",), True),
    ],
)
def test_loss_switch_decides_whether_the_graph_has_log_or_sigmoid(experiment, params, expect_log):
    ops = _op_types(make_trainer(experiment, *params))
    assert bool(ops & SIGMOID_OR_LOG) == expect_log, sorted(ops & SIGMOID_OR_LOG)


@pytest.mark.parametrize("critic_steps", [5, 2])
def test_critic_steps_sets_the_update_ratio(critic_steps):
    trainer = make_trainer("wgan", f"Schedule.critic_steps = {critic_steps}")
    for _ in range(3):
        trainer.train_round()
    assert int(trainer.generator_optimizer.iterations) == 3
    assert int(trainer.critic_optimizer.iterations) == 3 * critic_steps


def test_dcgan_schedule_is_5_critic_then_50_generator_updates():
    trainer = make_trainer("dcgan")
    trainer.train_round()
    assert int(trainer.critic_optimizer.iterations) == 5
    assert int(trainer.generator_optimizer.iterations) == 50


@pytest.mark.parametrize(
    "experiment, params, cls, lr",
    [
        ("wgan", (), keras.optimizers.RMSprop, 5e-5),
        ("dcgan", (), keras.optimizers.Adam, 2e-5),
        ("wgan_gp", (), keras.optimizers.Adam, 1e-4),
        (
            "wgan",
            ("train.critic_optimizer = @critic/SGD", "critic/SGD.learning_rate = 0.1"),
            keras.optimizers.SGD,
            0.1,
        ),
    ],
)
def test_optimizer_binding_picks_the_critic_optimizer(experiment, params, cls, lr):
    trainer = make_trainer(experiment, *params)
    assert type(trainer.critic_optimizer) is cls or isinstance(trainer.critic_optimizer, cls)
    assert float(trainer.critic_optimizer.learning_rate) == pytest.approx(lr)
    before = [np.array(v) for v in trainer.critic.trainable_variables]
    trainer.train_critic()
    # The update really went through this optimizer.
    assert int(trainer.critic_optimizer.iterations) == 1
    assert any(
        not np.array_equal(b, np.asarray(v))
        for b, v in zip(before, trainer.critic.trainable_variables)
    )


def test_wgan_gp_uses_penalty_not_clipping():
    trainer = make_trainer("wgan_gp")
    assert trainer.constraint is None and trainer.penalty is not None
    metrics = trainer.train_critic()
    assert metrics["gradient_penalty"] > 0


@pytest.mark.parametrize(
    "value_range, low, high", [("(0.0, 1.0)", 0.0, 1.0), ("(-1.0, 1.0)", -1.0, 1.0)]
)
def test_output_scaling_binding_scales_the_data(value_range, low, high):
    trainer = make_trainer("dcgan", f"VALUE_RANGE = {value_range}")
    batch = next(iter(trainer.dataset)).numpy()
    assert batch.min() >= low and batch.max() <= high
    assert batch.min() == pytest.approx(low)  # synthetic images have black pixels


def test_output_scaling_must_match_a_bounded_generator():
    with pytest.raises(ValueError, match=r"ends in sigmoid.*\[0.0, 1.0\].*VALUE_RANGE"):
        make_trainer("gan", "VALUE_RANGE = (-1.0, 1.0)")


# --- The difference between experiments' operative configs is exactly the documented switches.

# What wgan.gin changes on top of dcgan.gin (see the comments in gin/wgan.gin and WORKSPACE.md).
WGAN_SWITCHES = {
    "train.loss": ("'non_saturating'", "'wasserstein'"),
    "train.critic_constraint": ("None", "@WeightClip()"),
    "WeightClip.clip_value": (None, "0.01"),
    **ADAM_TO_RMSPROP,
    "generator/RMSprop.learning_rate": (None, "5e-05"),
    "critic/RMSprop.learning_rate": (None, "5e-05"),
    "Schedule.generator_steps": ("50", "1"),
}
# Keys where gan.gin and dcgan.gin differ: the seed's two models and their data scaling,
# batch, step budget, learning rates, noise and schedule.
DCGAN_KEYS = {
    "LATENT_DIM",
    "BATCH_SIZE",
    "NUM_STEPS",
    "VALUE_RANGE",
    "Latent.scale",
    "build_generator.blocks",
    "build_critic.blocks",
    "generator/TruncatedNormal.stddev",
    "critic/TruncatedNormal.stddev",
    "generator/Adam.learning_rate",
    "critic/Adam.learning_rate",
    "Schedule.critic_steps",
    "Schedule.generator_steps",
    "Schedule.share_noise",
    "Intervals.eval_every",  # evaluation cadence, matched to each experiment's speed
    "build_generator.sync_batch_norm",  # batch-norm statistics over the global batch
    "Numerics.rounds_per_call",  # gan.gin fuses its cheap rounds (a speed switch, same numbers)
}


@pytest.fixture(scope="module")
def operative_configs():
    configs = {}
    for name in ("gan", "dcgan", "wgan"):
        gin.clear_config()
        keras.utils.clear_session()
        configs[name] = operative_bindings(name)
    return configs


def test_dcgan_to_wgan_is_exactly_the_wgan_switches(operative_configs):
    assert binding_diff(operative_configs["dcgan"], operative_configs["wgan"]) == WGAN_SWITCHES


def test_gan_to_wgan_is_the_model_switches_plus_the_wgan_switches(operative_configs):
    diff = binding_diff(operative_configs["gan"], operative_configs["wgan"])
    # gan.gin already has one generator update per round, as wgan.gin does.
    assert set(diff) == (DCGAN_KEYS | set(WGAN_SWITCHES)) - {"Schedule.generator_steps"}
    for key in set(WGAN_SWITCHES) - DCGAN_KEYS:
        assert diff[key] == WGAN_SWITCHES[key]


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Every shipped experiment trained for 2 tiny steps, once, with the plots and the SavedModel
    on: run directory -> last row (or the error it raised)."""
    folder = tmp_path_factory.mktemp("tiny_runs")
    rows = {}
    outputs = ("Outputs.plots = True", "Outputs.saved_model = True")
    for experiment in EXPERIMENTS:
        keras.utils.clear_session()  # collects the previous experiment's trainer first
        try:
            rows[experiment] = make_trainer(experiment, *outputs).fit(str(folder / experiment))
        except Exception as error:  # reported by the experiment's own test below
            rows[experiment] = error
    return folder, rows


@pytest.mark.slow
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_trains_two_steps_tiny(experiment, tiny_runs):
    folder, rows = tiny_runs
    row = rows[experiment]
    if isinstance(row, Exception):
        raise row
    assert row["step"] == 2
    assert all(np.isfinite(v) for v in row.values())
    for output in ("generator.keras", "generator_savedmodel/saved_model.pb",
                   "plots/metrics.png", "samples/timeline.png"):  # fmt: skip
        assert (folder / experiment / output).exists(), output


LOADER = """
import json, sys
import numpy as np
import keras
out = {}
for path in sys.argv[1:]:
    model = keras.saving.load_model(path)
    noise = np.random.default_rng(0).normal(size=(3, model.inputs[0].shape[-1])).astype("float32")
    inputs = noise if len(model.inputs) == 1 else [noise, np.array([0, 1, 2], "int32")]
    images = np.asarray(model(inputs, training=False))
    out[path] = [list(images.shape), bool(np.all(np.isfinite(images)))]
assert not any(name.startswith("ganpipe") for name in sys.modules), "ganpipe was imported"
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_every_saved_generator_loads_and_generates_without_ganpipe(tiny_runs, tmp_path):
    folder, _ = tiny_runs
    paths = sorted(str(p) for p in folder.glob("*/generator*.keras"))
    assert len(paths) >= len(EXPERIMENTS)
    result = subprocess.run(
        [sys.executable, "-c", LOADER, *paths], cwd=tmp_path, capture_output=True, text=True,
        timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.split("RESULT ", 1)[1])
    for path in paths:
        shape, finite = found[path]
        assert shape[0] == 3 and shape[1:] in ([28, 28, 1], [32, 32, 3]) and finite, path


SAVED_MODEL_LOADER = """
import json, sys
import numpy as np
# No Keras at all: a None entry makes every `import keras` fail.
for name in ("keras", "tf_keras"):
    sys.modules[name] = None
import tensorflow as tf
out = {}
for path in sys.argv[1:]:
    model = tf.saved_model.load(path)
    (spec,) = [s for s in model.serve.concrete_functions[0].structured_input_signature[0]]
    specs = spec if isinstance(spec, (list, tuple)) else [spec]
    noise = np.random.default_rng(0).normal(size=(3, specs[0].shape[-1])).astype("float32")
    inputs = noise if len(specs) == 1 else [noise, np.array([0, 1, 2], "int32")]
    out[path] = np.asarray(model.serve(inputs)).tolist()
assert not [n for n, m in sys.modules.items() if n.startswith("keras") and m is not None]
assert not any(name.startswith("ganpipe") for name in sys.modules), "ganpipe was imported"
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_every_savedmodel_generates_what_generator_keras_generates_without_keras(
    tiny_runs, tmp_path
):
    folder, _ = tiny_runs
    exports = sorted(str(p) for p in folder.glob("*/generator_savedmodel"))
    assert len(exports) == len(EXPERIMENTS)
    result = subprocess.run(
        [sys.executable, "-c", SAVED_MODEL_LOADER, *exports], cwd=tmp_path, capture_output=True,
        text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.split("RESULT ", 1)[1])
    for path in exports:
        model = keras.saving.load_model(os.path.join(os.path.dirname(path), "generator.keras"))
        noise = np.random.default_rng(0).normal(size=(3, model.inputs[0].shape[-1]))
        noise = noise.astype("float32")
        inputs = noise if len(model.inputs) == 1 else [noise, np.array([0, 1, 2], "int32")]
        expected = np.asarray(model(inputs, training=False))
        # The same weights and graph in inference mode; only kernel choice may differ.
        np.testing.assert_allclose(np.array(found[path]), expected, rtol=1e-4, atol=1e-5)
