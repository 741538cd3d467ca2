"""The exponential moving average of the generator's weights (``EMA.decay``).

Most tests swap the DCGAN-family models for small ones with the same structure (dense, reshape,
transposed convolutions, batch norm with moving statistics, tanh output), so that whole rounds of
the 5/50 DCGAN schedule run in seconds.
"""

import json
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import gin
from ganpipe import rundir
from ganpipe.training import writers
from tests import prestarted
from tests.conftest import REPO, SMALL_GENERATOR, make_trainer, values

SMALL_MODELS = (
    *SMALL_GENERATOR,
    "build_critic.blocks = ["
    "{'block': 'conv', 'filters': 8, 'kernel_size': 3, 'strides': 2, 'padding': 'same',"
    " 'activation': 'leaky_relu'},"
    "{'block': 'flatten'}, {'block': 'dense', 'units': 1}]",
)


def small(experiment, *params):
    return make_trainer(experiment, *SMALL_MODELS, *params)


def _split(trainer):
    """(average, live) pairs of trainable weights, and of the other variables (statistics)."""
    trainable = {id(v) for v in trainer.generator.trainable_variables}
    pairs = list(zip(trainer.generator_ema.variables, trainer.generator.variables))
    weights = [(e, v) for e, v in pairs if id(v) in trainable]
    state = [(e, v) for e, v in pairs if id(v) not in trainable]
    return weights, state


def _recurrence(initial, lives, decay, start=0):
    """ema_k = d_k * ema_{k-1} + (1 - d_k) * live_k, d_k = 0 for k <= start (float32)."""
    ema = [np.array(w, np.float32) for w in initial]
    for k, live in enumerate(lives, start=1):
        d = np.float32(0.0 if k <= start else decay)
        ema = [d * e + (np.float32(1.0) - d) * w for e, w in zip(ema, live)]
    return ema


def _assert_close_list(actual, expected, rtol=1e-6, atol=1e-7):
    assert len(actual) == len(expected)
    for a, b in zip(actual, expected):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


# --- the formula ----------------------------------------------------------------------------


def test_average_starts_as_a_separate_non_trainable_copy_of_the_live_weights():
    trainer = small("dcgan", "EMA.decay = 0.9")
    average = trainer.generator_ema
    assert average is not trainer.generator
    assert not average.trainable and not average.trainable_variables
    assert trainer.sampling_generator is average
    assert len(average.variables) == len(trainer.generator.variables)
    for e, v in zip(average.variables, trainer.generator.variables):
        assert e is not v
        np.testing.assert_array_equal(np.asarray(e), np.asarray(v))
    off = small("dcgan")
    assert off.generator_ema is None and off.sampling_generator is off.generator


@pytest.mark.parametrize("start", [0, 2])
def test_average_follows_the_recurrence_after_each_generator_update(start):
    decay, updates = 0.75, 5
    trainer = small("dcgan", f"EMA.decay = {decay}", f"EMA.start = {start}")
    weights, state = _split(trainer)
    initial = values(v for _, v in weights)
    lives = []
    for _ in range(updates):
        trainer.train_generator()
        lives.append(values(v for _, v in weights))
    expected = _recurrence(initial, lives, decay, start)
    _assert_close_list(values(e for e, _ in weights), expected)
    # Not trivially equal to the live weights: the average lags behind them.
    assert any(not np.allclose(e, w, rtol=1e-4, atol=1e-6) for e, w in zip(expected, lives[-1]))
    # Batch-norm moving statistics are copied from the live generator.
    assert state, "the small generator has batch norm"
    for e, v in state:
        np.testing.assert_array_equal(np.asarray(e), np.asarray(v))
    assert any(np.any(np.asarray(v) != 0) for _, v in state)


def test_warm_up_copies_the_live_weights():
    trainer = small("dcgan", "EMA.decay = 0.5", "EMA.start = 3")
    weights, _ = _split(trainer)
    for _ in range(3):
        trainer.train_generator()
        for e, v in weights:
            np.testing.assert_array_equal(np.asarray(e), np.asarray(v))
    trainer.train_generator()
    assert any(not np.array_equal(np.asarray(e), np.asarray(v)) for e, v in weights)


def test_every_generator_update_of_a_dcgan_round_updates_the_average():
    # One whole 5/50 round (train_round) against the same updates made one by one, recording the
    # live weights after each of the 50 generator updates.
    decay = 0.9
    in_round = small("dcgan", f"EMA.decay = {decay}")
    assert (
        in_round.settings.schedule.critic_steps,
        in_round.settings.schedule.generator_steps,
    ) == (5, 50)
    weights, state = _split(in_round)
    initial = values(v for _, v in weights)
    in_round.train_round()
    assert int(in_round.generator_optimizer.iterations.numpy()) == 50

    one_by_one = small("dcgan")
    for _ in range(5):
        one_by_one.train_critic()
    trainable = one_by_one.generator.trainable_variables
    lives = []
    for _ in range(50):
        one_by_one.train_generator()
        lives.append(values(trainable))
    # The same training: the live weights of both agree.
    _assert_close_list(values(v for _, v in weights), lives[-1], rtol=1e-5, atol=1e-7)

    average = values(e for e, _ in weights)
    _assert_close_list(average, _recurrence(initial, lives, decay), rtol=1e-5, atol=1e-7)
    # An average updated once per round would be 0.9 * initial + 0.1 * last: far from it.
    once = _recurrence(initial, lives[-1:], decay)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(average, once)) > 1e-3
    for e, v in state:
        np.testing.assert_array_equal(np.asarray(e), np.asarray(v))


def test_fused_rounds_average_exactly_what_single_rounds_average():
    def run(rounds_per_call):
        trainer = small(
            "wgan",
            "Schedule.critic_steps = 2",
            "EMA.decay = 0.8",
            f"Numerics.rounds_per_call = {rounds_per_call}",
        )
        trainer.train_steps(6)
        assert int(trainer.generator_optimizer.iterations.numpy()) == 6
        return values(trainer.generator_ema.variables), values(trainer.generator.variables)

    single_average, single_live = run(1)
    fused_average, fused_live = run(4)
    for a, b in zip(single_average + single_live, fused_average + fused_live):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(single_average, single_live))


def _rounds_recurrence(trainer, decay, rounds):
    """Trains ``rounds`` one-generator-update rounds; returns (average, recurrence)."""
    weights, _ = _split(trainer)
    initial = values(v for _, v in weights)
    lives = []
    for _ in range(rounds):
        trainer.train_round()
        lives.append(values(v for _, v in weights))
    return values(e for e, _ in weights), _recurrence(initial, lives, decay)


def test_shared_noise_rounds_update_the_average():
    # gan.gin: one critic and one generator update per round on the same noise.
    trainer = make_trainer("gan", "EMA.decay = 0.6")
    assert trainer.settings.schedule.share_noise
    average, expected = _rounds_recurrence(trainer, 0.6, 3)
    _assert_close_list(average, expected)


def test_xla_compiled_updates_update_the_average():
    from tensorflow.python.framework import config as tf_config  # no public switch-off

    tf_config.disable_op_determinism()  # turned on process-wide by Numerics.deterministic tests
    trainer = small("wgan", "Numerics.jit_compile = True", "EMA.decay = 0.6", *FAST)
    assert trainer.jit_compile
    average, expected = _rounds_recurrence(trainer, 0.6, 3)
    _assert_close_list(average, expected)


# --- the live run is untouched; outputs come from the average ------------------------------

FAST = ("generator/RMSprop.learning_rate = 0.01", "critic/RMSprop.learning_rate = 0.01")


def _fit(run_dir, *params, steps=3):
    gin.clear_config()
    keras.utils.clear_session()
    trainer = small("wgan", f"NUM_STEPS = {steps}", "Numerics.deterministic = True", *FAST, *params)
    trainer.fit(str(run_dir))
    rows = [json.loads(line) for line in open(run_dir / "metrics.jsonl")]
    return trainer, rows


LOSS_KEYS = ("critic_loss", "generator_loss", "critic_real", "critic_fake")


def test_the_average_leaves_live_training_bit_identical(tmp_path):
    off, off_rows = _fit(tmp_path / "off")
    off_live = values([*off.generator.variables, *off.critic.variables])
    on, on_rows = _fit(tmp_path / "on", "EMA.decay = 0.5")
    on_live = values([*on.generator.variables, *on.critic.variables])
    assert [{k: r[k] for k in LOSS_KEYS} for r in on_rows] == [
        {k: r[k] for k in LOSS_KEYS} for r in off_rows
    ]
    for a, b in zip(off_live, on_live):
        np.testing.assert_array_equal(a, b)
    weights, _ = _split(on)
    assert any(not np.array_equal(np.asarray(e), np.asarray(v)) for e, v in weights)


def _outputs(model, noise):
    return np.asarray(model(noise, training=False))


def test_samples_evaluation_and_saved_generators_come_from_the_average(tmp_path):
    gin.clear_config()
    keras.utils.clear_session()
    trainer = small("wgan", "NUM_STEPS = 3", *FAST, "EMA.decay = 0.5")
    seen = []

    def evaluation(generator):
        seen.append(generator)
        return {"eval_fd": 10.0 - len(seen)}  # improves every time: the best checkpoint moves

    trainer.evaluate_with(evaluation, every=1)
    run = tmp_path / "run"
    trainer.fit(str(run))
    assert seen and all(g is trainer.generator_ema for g in seen)

    noise = np.random.default_rng(0).normal(0, 1, (6, 16)).astype(np.float32)
    average, live = _outputs(trainer.generator_ema, noise), _outputs(trainer.generator, noise)
    assert np.max(np.abs(average - live)) > 1e-3
    saved = keras.saving.load_model(run / "generator.keras")
    np.testing.assert_array_equal(_outputs(saved, noise), average)
    assert saved.trainable  # saved as an ordinary generator
    saved_live = keras.saving.load_model(run / rundir.LIVE_GENERATOR)
    np.testing.assert_array_equal(_outputs(saved_live, noise), live)

    # The last sample grid is the average's view of the fixed noise, not the live generator's.
    fixed = trainer.settings.latent.sample(
        tf.random.Generator.from_seed(trainer.settings.seed + 1),
        [trainer.settings.intervals.num_samples, 16],
    ).numpy()
    png = tf.io.decode_png(tf.io.read_file(str(run / "samples" / "step_000003.png"))).numpy()
    np.testing.assert_array_equal(
        png,
        writers.image_grid(_outputs(trainer.generator_ema, fixed), trainer.settings.value_range),
    )
    assert not np.array_equal(
        png, writers.image_grid(_outputs(trainer.generator, fixed), trainer.settings.value_range)
    )

    # Latest and best checkpoints hold the average.
    for folder in ("checkpoints", "checkpoints/best"):
        path = tf.train.latest_checkpoint(str(run / folder))
        names = [name for name, _ in tf.train.list_variables(path)]
        assert any(name.startswith("generator_ema/") for name in names), folder


def test_evaluate_scores_the_average_or_the_live_weights(tmp_path):
    from ganpipe.eval import evaluation
    from ganpipe.eval import run as eval_run

    run = tmp_path / "run"
    trainer, _ = _fit(run, "EMA.decay = 0.5")
    (run / rundir.CONFIG_FILE).write_text(gin.config_str())  # as `ganpipe.main` writes it
    noise = np.random.default_rng(1).normal(0, 1, (5, 16)).astype(np.float32)
    average, live = _outputs(trainer.generator_ema, noise), _outputs(trainer.generator, noise)
    for checkpoint in ("latest", "final"):
        for use_live, expected in ((False, average), (True, live)):
            gin.clear_config()
            keras.utils.clear_session()
            restored, _ = eval_run.restore_run_generator(str(run), checkpoint, live=use_live)
            assert restored.weights == (evaluation.LIVE if use_live else evaluation.AVERAGE)
            assert restored.step == 3
            np.testing.assert_allclose(_outputs(restored.model, noise), expected, rtol=0, atol=1e-6)


# --- stop and resume ------------------------------------------------------------------------


def test_stop_and_resume_matches_a_straight_run_for_the_average(tmp_path):
    params = ("EMA.decay = 0.5", "EMA.start = 1")
    straight, straight_rows = _fit(tmp_path / "straight", *params, steps=4)
    _fit(tmp_path / "resumed", *params, steps=2)
    resumed, resumed_rows = _fit(tmp_path / "resumed", *params, steps=4)
    assert [r["step"] for r in resumed_rows] == [1, 2, 3, 4]
    for straight_row, resumed_row in zip(straight_rows, resumed_rows):
        for key in LOSS_KEYS:
            assert resumed_row[key] == straight_row[key], (straight_row["step"], key)
    for model in ("generator_ema", "generator", "critic"):
        for a, b in zip(getattr(straight, model).variables, getattr(resumed, model).variables):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_checkpoint_without_the_average_is_refused(tmp_path):
    _fit(tmp_path / "run", steps=1)
    with pytest.raises(ValueError, match="holds no generator weight average"):
        _fit(tmp_path / "run", "EMA.decay = 0.5", steps=2)


def test_skip_undoes_the_average_with_the_round(tmp_path):
    trainer = small("wgan", "EMA.decay = 0.5")
    before = trainer.state.snapshot()
    trainer.train_round()
    weights, _ = _split(trainer)
    assert any(not np.array_equal(np.asarray(e), b) for (e, _), b in zip(weights, before))
    trainer.state.restore_snapshot(before)
    for e, b in zip(trainer.generator_ema.variables, before[len(trainer.generator.variables) :]):
        np.testing.assert_array_equal(np.asarray(e), b)


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.1", "True", "'0.99'"])
def test_decay_must_lie_strictly_between_zero_and_one(value):
    with pytest.raises(ValueError, match=r"EMA.decay .* strictly between 0 and 1"):
        small("gan", f"EMA.decay = {value}")


@pytest.mark.parametrize("value", ["-1", "1.5", "True"])
def test_start_must_be_a_count(value):
    with pytest.raises(ValueError, match=r"EMA.start .* integer >= 0"):
        small("gan", "EMA.decay = 0.9", f"EMA.start = {value}")


def test_start_without_a_decay_is_refused():
    with pytest.raises(ValueError, match="EMA.start = 5 is set but EMA.decay is None"):
        small("gan", "EMA.start = 5")


# --- two replicas ---------------------------------------------------------------------------

TWO_REPLICAS = textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from ganpipe import config
    from tests.conftest import values
    from tests.test_ema import SMALL_MODELS, _recurrence, _split
    config.parse(["gin/wgan.gin", "gin/testing/tiny.gin"], [*SMALL_MODELS,
        "train.strategy = @make_strategy()", "make_strategy.name = 'mirrored'",
        "make_strategy.devices = ['/cpu:0', '/cpu:1']", "EMA.decay = 0.5",
        "generator/RMSprop.learning_rate = 0.01"])
    trainer = config.make_trainer()
    assert trainer.strategy.num_replicas_in_sync == 2
    weights, state = _split(trainer)
    initial = values(v for _, v in weights)
    lives = []
    for _ in range(3):  # wgan: one generator update per round
        trainer.train_round()
        lives.append(values(v for _, v in weights))
    def copies(variable):
        return [np.asarray(x) for x in
                trainer.strategy.experimental_local_results(variable.value)]
    disagree = [e.path for e in trainer.generator_ema.variables
                if not all(np.array_equal(c, copies(e)[0]) for c in copies(e))]
    expected = _recurrence(initial, lives, 0.5)
    error = max(float(np.max(np.abs(copies(e)[1] - x))) for (e, _), x in zip(weights, expected))
    statistics = [bool(np.array_equal(copies(e)[1], copies(v)[0])) for e, v in state]
    print("RESULT " + json.dumps({"disagree": disagree, "error": error,
                                  "statistics_copied": statistics,
                                  "lag": float(max(np.max(np.abs(a - b))
                                                   for a, b in zip(expected, lives[-1])))}))
    """
)


@pytest.mark.slow
def test_the_average_stays_identical_on_every_replica():
    result = prestarted.run(["-c", TWO_REPLICAS], cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))
    found = json.loads(line[len("RESULT ") :])
    assert found["disagree"] == []
    assert found["error"] < 1e-6
    assert found["lag"] > 1e-3  # the average is not just the live weights
    assert found["statistics_copied"] and all(found["statistics_copied"])
